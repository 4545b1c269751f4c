"""Multi-label datasets (issue 21): a CSV manifest with a ``tags`` column (tags separated by ';'), one-vs-rest
probes scored by macro ROC-AUC and PR-AUC, tags with one class in the test clips excluded and counted."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.preprocessing import StandardScaler

from audiodata import datasets
from classifiers.featureset import write_feature_set
from classifiers.grid import run_grid, table
from classifiers.probes import evaluate_multilabel, tag_matrix
from conftest import write_wav

TAGS = ["bass", "drums", "voice"]


def _manifest(root, rows, header="path,tags,split"):
    root.mkdir(parents=True, exist_ok=True)
    (root / "manifest.csv").write_text(header + "\n" + "".join(r + "\n" for r in rows))
    return root / "manifest.csv"


def test_tags_manifest_makes_a_multilabel_dataset(tmp_path):
    root = tmp_path / "d"
    for i in range(4):
        write_wav(root / f"c{i}.wav", seconds=0.2, freq=200 + 100 * i)
    m = _manifest(root, ["c0.wav,drums;bass,train", "c1.wav, voice ,val", "c2.wav,bass;bass,test",
                         "c3.wav,voice;drums,train"])
    ds = datasets.load_dataset("csv", manifest=m, folds=None)
    by_id = {c.id: c for c in ds.clips}
    assert by_id["c0.wav"].tags == ("bass", "drums") and by_id["c0.wav"].label == "bass;drums"
    assert by_id["c1.wav"].tags == ("voice",) and by_id["c2.wav"].tags == ("bass",)
    assert ds.info["multilabel"] == {"separator": ";", "tags": TAGS}
    # without a split column: plain shuffled folds (tag sets are not strata), every clip in one fold
    m2 = _manifest(tmp_path / "e", [f"../d/c{i}.wav,{'bass' if i % 2 else 'bass;voice'}" for i in range(4)],
                   header="path,tags")
    ds2 = datasets.load_dataset("csv", manifest=m2, folds=2)
    assert sorted(c.fold for c in ds2.clips) == [1, 1, 2, 2]
    # a single-label manifest has no tags
    m3 = _manifest(tmp_path / "f", ["../d/c0.wav,rock,train", "../d/c1.wav,pop,val", "../d/c2.wav,pop,test"],
                   header="path,label,split")
    assert all(c.tags is None for c in datasets.load_dataset("csv", manifest=m3, folds=None).clips)
    assert "multilabel" not in datasets.load_dataset("csv", manifest=m3, folds=None).info


@pytest.mark.parametrize("cell, needle", [("drums;;bass", "has an empty tag"), ("drums;", "has an empty tag"),
                                          ('""', "is empty")])
def test_malformed_tags_row_names_file_and_line(tmp_path, cell, needle):
    root = tmp_path / "d"
    write_wav(root / "a.wav", seconds=0.2)
    m = _manifest(root, ["a.wav,bass,train", f"a.wav,{cell},test"])
    with pytest.raises(ValueError) as e:
        datasets.load_dataset("csv", manifest=m, folds=None)
    msg = str(e.value)
    assert msg.startswith(f"{m}: line 3: tags ") and needle in msg and "separated by ';'" in msg


def test_label_and_tags_together_is_refused(tmp_path):
    m = _manifest(tmp_path / "d", ["a.wav,x,bass"], header="path,label,tags")
    with pytest.raises(ValueError, match="both 'label' and 'tags'"):
        datasets.load_dataset("csv", manifest=m, folds=None)


def _tagged(n=90, d=8, seed=0, shuffle=False):
    """Features where tag j is on when feature j is positive (plus noise); labels ';'-joined."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    Y = (X[:, :3] + 0.3 * rng.normal(size=(n, 3)) > 0).astype(int)
    Y[Y.sum(axis=1) == 0, 0] = 1  # every clip has a tag
    if shuffle:
        Y = Y[rng.permutation(n)]
    labels = [";".join(t for t, on in zip(TAGS, row) if on) for row in Y]
    return X, Y, labels


def test_tag_matrix_round_trip():
    _, Y, labels = _tagged()
    tags, Y2 = tag_matrix(labels)
    assert tags == TAGS and np.array_equal(Y2, Y)


@pytest.mark.parametrize("name", ["linear", "knn", "svm"])
def test_separable_tags_near_1_shuffled_near_half(name):
    params = {"linear": [{"C": 1.0}], "knn": [{"n_neighbors": 10}], "svm": [{"kernel": "linear", "C": 1.0}]}[name]
    fold = np.arange(180) % 3 + 1
    for shuffle, low, high in ((False, 0.8 if name == "knn" else 0.9, 1.0), (True, 0.3, 0.7)):
        X, Y, _ = _tagged(n=180, shuffle=shuffle)
        r = evaluate_multilabel(name, params, X, Y, TAGS, ["cv-best", "nested-cv"], portions=(None, fold))
        for p in ("cv-best", "nested-cv"):
            assert low <= r[p]["roc_auc"] <= high and r[p]["pr_auc"] is not None, (name, shuffle, p, r[p]["roc_auc"])


def test_grid_writes_roc_pr_auc_equal_to_sklearn_on_the_same_predictions(tmp_path):
    X, Y, labels = _tagged(n=90)
    split = np.array(["train"] * 50 + ["val"] * 20 + ["test"] * 20)
    # "voice" only ever off in the test clips: one class there, excluded and counted
    test = np.flatnonzero(split == "test")
    for i in test:
        labels[i] = ";".join(t for t in labels[i].split(";") if t != "voice") or "bass"
    tags, Y = tag_matrix(labels)
    ids = [f"c{i:03d}.wav" for i in range(len(labels))]
    fs = write_feature_set(tmp_path / "fs", X, labels, ids, split=split,
                           meta={"multilabel": {"separator": ";", "tags": TAGS}, "dataset": "csv"})
    path = run_grid([fs], classifier="linear", grid="small", out=tmp_path / "res", progress=False, log=lambda m: None)
    res = json.loads(path.read_text())
    assert res["multilabel"]["separator"] == ";"
    (entry,) = res["entries"]
    (run,) = entry["runs"]
    assert entry["multilabel"] and entry["metric"] == "roc_auc" and run["accuracy"] is None
    assert run["tags_scored"] == 2 and run["tags_excluded"] == ["voice"]
    # the selected C by hand: per-tag binary logistic regressions on standardised features, val ROC-AUC
    sc = StandardScaler().fit(X[split == "train"])
    tr, va = sc.transform(X[split == "train"]), sc.transform(X[split == "val"])

    def scores(C, Xe):
        return np.stack([LogisticRegression(C=C, max_iter=1000).fit(tr, Y[split == "train", j]).decision_function(Xe)
                         for j in range(len(TAGS))], axis=1)
    val = []
    for C in (0.1, 10.0):
        keep = [j for j in range(3) if len(np.unique(Y[split == "val", j])) == 2]
        val.append(roc_auc_score(Y[split == "val"][:, keep], scores(C, va)[:, keep], average="macro"))
    best = [0.1, 10.0][int(np.argmax(val))]
    assert run["selected"] == {"C": best}
    S = scores(best, sc.transform(X[test]))
    np.testing.assert_allclose(run["predictions"]["scores"], S, rtol=1e-6, atol=1e-9)
    # ROC-AUC / PR-AUC: sklearn on the stored predictions, tags with both classes in the test clips
    yt, st = np.array(run["predictions"]["y_true"]), np.array(run["predictions"]["scores"])
    assert np.array_equal(yt, Y[test])
    keep = [0, 1]  # bass, drums
    assert run["roc_auc"] == pytest.approx(roc_auc_score(yt[:, keep], st[:, keep], average="macro"), rel=1e-12)
    assert run["pr_auc"] == pytest.approx(average_precision_score(yt[:, keep], st[:, keep], average="macro"), rel=1e-12)
    assert run["roc_auc"] == pytest.approx(np.mean([roc_auc_score(Y[test, j], S[:, j]) for j in keep]), rel=1e-9)
    assert entry["mean"] == run["roc_auc"] and entry["mean_pr_auc"] == run["pr_auc"]
    rows = list(csv.DictReader(open(path.parent / "results.csv")))
    assert len(rows) == 1 and float(rows[0]["roc_auc"]) == run["roc_auc"] and "accuracy" not in rows[0]
    assert float(rows[0]["pr_auc"]) == run["pr_auc"] and json.loads(rows[0]["tags_excluded"]) == ["voice"]
    assert "ROC-AUC" in table(res) and "accuracy" not in table(res)


def test_tags_manifest_extract_then_grid_gives_roc_pr_auc(tmp_path):
    """The whole path: a tags manifest, extraction (the feature set carries the tags), the grid's results."""
    from features import extract as ex
    root = tmp_path / "d"
    rows = []
    for i in range(18):
        write_wav(root / f"c{i:02d}.wav", seconds=0.5, freq=150 + 60 * i)
        tags = ["bass"] + (["voice"] if i % 2 else []) + (["drums"] if i % 3 == 0 else [])
        rows.append(f"c{i:02d}.wav,{';'.join(tags)},{['train', 'train', 'val', 'test'][i % 4] if i < 16 else 'test'}")
    m = _manifest(root, rows)
    fs = ex.extract("examples.waveform_cnn:WaveformCNN", dataset="csv", manifest=m, out=tmp_path / "fs",
                    cache_dir=tmp_path / "c", seed=0, width="small", workers=0, batch_size=2, progress=False,
                    input_seconds=0.5)
    meta = json.loads((fs / "meta.json").read_text())
    assert meta["multilabel"] == {"separator": ";", "tags": TAGS}
    res = json.loads(run_grid([fs], classifier="all", grid="small", out=tmp_path / "res", progress=False,
                              log=lambda m: None).read_text())
    assert [e["classifier"] for e in res["entries"]] == ["svm", "linear", "knn"]  # no ELM: not one-vs-rest
    for e in res["entries"]:
        (run,) = e["runs"]
        # "bass" is on for every clip: one class in the test clips, excluded and counted
        assert run["tags_excluded"] == ["bass"] and run["tags_scored"] == 2
        yt, st = np.array(run["predictions"]["y_true"]), np.array(run["predictions"]["scores"])
        assert run["roc_auc"] == pytest.approx(roc_auc_score(yt[:, 1:], st[:, 1:], average="macro"), rel=1e-12)
        assert run["pr_auc"] == pytest.approx(average_precision_score(yt[:, 1:], st[:, 1:]), rel=1e-12)


def test_report_shows_roc_pr_auc_not_accuracy(tmp_path):
    from report.build import render_report
    X, Y, labels = _tagged(n=60)
    split = np.array(["train"] * 30 + ["val"] * 15 + ["test"] * 15)
    for seed in (0, 1):
        fs = write_feature_set(tmp_path / f"fs{seed}", X + 0.01 * seed, labels, [f"c{i:03d}" for i in range(60)],
                               split=split, meta={"multilabel": {"separator": ";", "tags": TAGS}, "seed": seed})
        if seed == 0:
            first = fs
    path = run_grid([first, fs], classifier="knn", grid="small", out=tmp_path / "results" / "synthetic" / "r",
                    progress=False, log=lambda m: None)
    res = json.loads(path.read_text())
    (entry,) = res["entries"]
    rocs = [r["roc_auc"] for r in entry["runs"]]
    prs = [r["pr_auc"] for r in entry["runs"]]
    msgs = []
    md = (render_report([tmp_path / "results"], out=tmp_path / "rep", log=msgs.append) / "report.md").read_text()
    assert "Multi-label probes: ROC-AUC and PR-AUC" in md
    assert f"`{path.resolve()}`" in md
    row = next(line for line in md.splitlines() if "| knn |" in line)
    assert f"{np.mean(rocs):.3f} ± {np.std(rocs, ddof=1):.3f}" in row
    assert f"{np.mean(prs):.3f} ± {np.std(prs, ddof=1):.3f}" in row
    assert not any("accuracy" in m for m in msgs), msgs  # not read (and refused) as accuracy rows


def test_fold_protocols_equal_sklearn_per_fold_and_exclude_per_fold():
    X, Y, _ = _tagged(n=60, seed=3)
    fold = np.arange(60) % 3 + 1
    Y[fold == 2, 2] = 0  # "voice" absent from fold 2: excluded there only
    points = [{"C": 0.01}, {"C": 1.0}]
    r = evaluate_multilabel("linear", points, X, Y, TAGS, ["cv-best", "nested-cv"], portions=(None, fold))
    for p in ("cv-best", "nested-cv"):
        res = r[p]
        assert res["tags_excluded"] == [[], ["voice"], []] and res["tags_scored"] == [3, 2, 3]
        S, idx = np.asarray(res["S"]), res["test_index"]
        start, rocs, prs = 0, [], []
        for k in (1, 2, 3):
            n = int(np.sum(fold == k))
            yt, st = Y[idx[start:start + n]], S[start:start + n]
            keep = [j for j in range(3) if len(np.unique(yt[:, j])) == 2]
            rocs.append(roc_auc_score(yt[:, keep], st[:, keep], average="macro"))
            prs.append(average_precision_score(yt[:, keep], st[:, keep], average="macro"))
            start += n
        np.testing.assert_allclose(res["fold_roc_auc"], rocs, rtol=1e-12)
        np.testing.assert_allclose(res["fold_pr_auc"], prs, rtol=1e-12)
        assert res["roc_auc"] == pytest.approx(np.mean(rocs), rel=1e-12)
        assert res["pr_auc"] == pytest.approx(np.mean(prs), rel=1e-12)
    # cv-best picks the point of the best mean fold ROC-AUC, by hand
    means = []
    for params in points:
        per = []
        for k in (1, 2, 3):
            tr, te = fold != k, fold == k
            sc = StandardScaler().fit(X[tr])
            S = np.stack([LogisticRegression(C=params["C"], max_iter=1000).fit(sc.transform(X[tr]), Y[tr, j])
                          .decision_function(sc.transform(X[te])) for j in range(3)], axis=1)
            keep = [j for j in range(3) if len(np.unique(Y[te, j])) == 2]
            per.append(roc_auc_score(Y[te][:, keep], S[:, keep], average="macro"))
        means.append(np.mean(per))
    np.testing.assert_allclose(r["cv-best"]["scores"], means, rtol=1e-9)
    assert r["cv-best"]["selected"] == int(np.argmax(means))


def test_no_small_class_warning_for_tag_combinations(tmp_path, capsys):
    """A tags manifest without splits: extraction's 'classes with fewer than 10 clips' warning would list
    tag combinations, which are not classes (its folds are not stratified): it is not given."""
    from audiodata import datasets
    from features import extract as ex
    root = tmp_path / "d"
    rows = []
    for i in range(6):
        write_wav(root / f"c{i}.wav", seconds=0.3, freq=200 + 50 * i)
        rows.append(f"c{i}.wav,{'bass;voice' if i % 2 else 'bass'}")
    ds = datasets.load_dataset("csv", manifest=_manifest(root, rows, header="path,tags"), folds=None)
    assert ds.info.get("multilabel") and ds.protocol_hint is None
    ex._warn_small_classes(ds, "vgg")
    assert "fewer than" not in capsys.readouterr().err
