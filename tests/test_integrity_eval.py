"""Issue 9, evaluation and training side: every result is named by, and checked against, what made it.

Each test writes the case as it failed before (a truncated feature set, a leak of test clips into a
trained model, results of other settings in one folder...), runs the command, and asserts the outcome.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from sklearn.svm import SVC
from threadpoolctl import threadpool_limits

from classifiers.featureset import load_feature_set, synthetic_feature_set, write_feature_set
from classifiers.grid import main, run_grid
from classifiers.grids import resolve_gamma
from report.load import load_results
from audiodata.datasets import stratified_folds


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(1):
        yield


def _set(folder, n=60, folds=3, seed=0, meta=None, separation=3.0, **kw):
    d = synthetic_feature_set(n_clips=n, n_features=8, n_classes=3, n_folds=folds, separation=separation,
                              seed=seed)
    d.update(kw)
    return write_feature_set(folder, **d, meta=meta)


def _foldless(folder, n=60, seed=0, meta=None):
    d = synthetic_feature_set(n_clips=n, n_features=8, n_classes=3, n_folds=3, seed=seed)
    d.pop("fold")
    return write_feature_set(folder, **d, meta=meta), d


def _cli_error(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: ") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    return err


# --- case 14 (grid part): tracebacks instead of messages -------------------------------------------

def test_truncated_features_npz_is_one_message(tmp_path, capsys):
    fs = _set(tmp_path / "fs")
    npz = fs / "features.npz"
    npz.write_bytes(npz.read_bytes()[: npz.stat().st_size // 2])  # was: zipfile.BadZipFile traceback
    err = _cli_error(["--features", str(fs), "--out", str(tmp_path / "o")], capsys)
    assert str(npz) in err and "truncated or damaged" in err


def test_meta_json_that_is_a_list_is_one_message(tmp_path, capsys):
    fs = _set(tmp_path / "fs")
    (fs / "meta.json").write_text("[1, 2]")  # was: AttributeError 'list' object has no attribute 'get'
    err = _cli_error(["--features", str(fs), "--out", str(tmp_path / "o")], capsys)
    assert str(fs / "meta.json") in err and "expected a JSON object" in err and "found a JSON list" in err


def test_out_that_is_an_existing_file_is_refused(tmp_path, capsys):
    fs = _set(tmp_path / "fs")
    (tmp_path / "taken").write_text("mine")
    err = _cli_error(["--features", str(fs), "--grid", "small", "--out", str(tmp_path / "taken")], capsys)
    assert "--out" in err and "taken is an existing file" in err
    assert (tmp_path / "taken").read_text() == "mine"


def test_features_changed_after_their_meta_are_refused(tmp_path):
    fs = _set(tmp_path / "fs")
    other = _set(tmp_path / "other", seed=3)
    shutil.copy(other / "features.npz", fs / "features.npz")  # new bytes under the old meta.json
    with pytest.raises(ValueError, match="differs from the .* recorded in meta.json"):
        load_feature_set(fs)


# --- fold-less feature sets: the grid makes the folds ----------------------------------------------

def test_foldless_set_is_scored_on_stratified_folds_of_fold_seed(tmp_path):
    fs, d = _foldless(tmp_path / "fs", n=60)
    assert json.loads((fs / "meta.json").read_text())["protocol_hint"] is None
    res = json.loads(run_grid([fs], classifier="svm", protocol="cv-best", grid="small", folds=4,
                              fold_seed=7, out=tmp_path / "res", progress=False).read_text())
    assert res["feature_sets"][0]["generated_folds"] == {"folds": 4, "fold_seed": 7}
    fold = stratified_folds(d["ids"], d["y"], 4, 7)
    run = res["entries"][0]["runs"][0]
    kw = {k: v for k, v in run["selected"].items() if k != "gamma_rule"}
    assert len(run["fold_accuracies"]) == 4
    X, y = d["X"].astype(np.float64), d["y"]
    for k, acc in enumerate(run["fold_accuracies"], start=1):
        clf = SVC(**kw).fit(X[fold != k], y[fold != k])
        assert acc == pytest.approx(np.mean(clf.predict(X[fold == k]) == y[fold == k]), abs=1e-12)


def test_foldless_set_with_too_few_clips_says_which_protocol_and_classes(tmp_path, capsys):
    fs, _ = _foldless(tmp_path / "fs", n=12)  # 4 clips per class; the default is 10 folds
    err = _cli_error(["--features", str(fs), "--grid", "small", "--out", str(tmp_path / "o")], capsys)
    assert str(fs) in err and "cv-best and nested-cv cannot run" in err and "10 stratified folds" in err
    assert "{'class0': 4, 'class1': 4, 'class2': 4}" in err and "--folds 4 or fewer" in err


def test_foldless_set_with_the_split_protocol_is_refused(tmp_path, capsys):
    fs, _ = _foldless(tmp_path / "fs")
    err = _cli_error(["--features", str(fs), "--protocol", "split", "--out", str(tmp_path / "o")], capsys)
    assert "protocol 'split' needs a train/val/test split" in err and str(fs) in err


def test_older_sets_with_generated_fold_arrays_still_read(tmp_path):
    fs = _set(tmp_path / "fs", meta={"protocol_hint": "folds"})
    res = json.loads(run_grid([fs], classifier="svm", protocol="cv-best", grid="small", folds=7,
                              out=tmp_path / "res", progress=False).read_text())
    run = res["entries"][0]["runs"][0]
    assert len(run["fold_accuracies"]) == 3 and res["feature_sets"][0]["generated_folds"] is None


# --- case 4: the grid refuses to score a clip a model saw ------------------------------------------

def _trained_per_fold(tmp_path, seen_of, folds=3, fold_seed=None, foldless=False):
    base = synthetic_feature_set(n_clips=60, n_features=8, n_classes=3, n_folds=folds, seed=4)
    if fold_seed is not None:
        base["fold"] = stratified_folds(base["ids"], base["y"], folds, fold_seed)
    paths = []
    for k in range(1, folds + 1):
        X = np.abs(base["X"] + 0.1 * k).astype(np.float32)
        meta = {"weights": "trained", "arch": "vgg", "seed": 0, "model_fold": k,
                "checkpoint": f"runs/trained/toy/vgg_large_seed0/fold{k}/best.pt",
                "model_train_ids": seen_of(base, k)}
        if fold_seed is not None:
            meta.update(model_folds=folds, model_fold_seed=fold_seed)
        arrays = {key: v for key, v in base.items() if not (foldless and key == "fold")}
        arrays["X"] = X
        paths.append(write_feature_set(tmp_path / f"fold{k}", **arrays, meta=meta))
    return paths, base


def test_model_that_trained_on_test_clips_is_refused_naming_count_and_model(tmp_path):
    def seen(base, k):  # model 2 also trained on 5 clips of its own held-out fold
        ids = base["ids"][base["fold"] != k].tolist()
        return sorted(ids + (base["ids"][base["fold"] == k][:5].tolist() if k == 2 else []))
    paths, _ = _trained_per_fold(tmp_path, seen)
    with pytest.raises(ValueError, match=r"fold2: refusing to score 5 of the 21 clips of held-out fold 2 "
                                         r"that the model \(runs/trained/toy/vgg_large_seed0/fold2/best.pt\)"):
        run_grid(paths, classifier="svm", grid="small", out=tmp_path / "res", progress=False)
    assert not (tmp_path / "res").exists()


def test_trained_set_without_model_train_ids_is_refused(tmp_path, capsys):
    fs = _set(tmp_path / "fs", meta={"weights": "trained", "checkpoint": "old/best.pt",
                                     "model_train_ids": None})
    err = _cli_error(["--features", str(fs), "--grid", "small", "--out", str(tmp_path / "o")], capsys)
    assert "old/best.pt" in err and "model_train_ids missing or null" in err


def test_external_pretrained_weights_are_scored_with_a_note(tmp_path):
    fs = _set(tmp_path / "fs", meta={"weights": "trained", "arch": "hear:tiny"})
    logged = []
    res = json.loads(run_grid([fs], classifier="svm", protocol="cv-best", grid="small",
                              out=tmp_path / "res", progress=False, log=logged.append).read_text())
    assert res["entries"][0]["n_runs"] == 1
    assert logged == [f"feature set {fs}: weights trained outside this toolkit (hear:tiny); the grid "
                      "cannot check which clips they were trained on"]


def test_split_model_that_trained_on_test_clips_is_refused(tmp_path):
    d = synthetic_feature_set(n_clips=60, n_features=8, n_classes=3, seed=0)
    test = d["ids"][d["split"] == "test"].tolist()
    fs = write_feature_set(tmp_path / "fs", **d, meta={"weights": "trained", "checkpoint": "m.pt",
                                                       "model_train_ids": sorted(test[:3])})
    with pytest.raises(ValueError, match=r"refusing to score 3 of the \d+ clips of the test split .*m.pt"):
        run_grid([fs], classifier="svm", grid="small", out=tmp_path / "res", progress=False)


def test_foldless_per_fold_models_are_scored_on_their_own_folds(tmp_path):
    """The models held out stratified folds of fold seed 5: the grid rebuilds those (not --fold-seed's)
    and scores fold k with model k only; ids consistent with another seed would be refused."""
    def seen(base, k):
        return sorted(base["ids"][base["fold"] != k].tolist())
    paths, base = _trained_per_fold(tmp_path, seen, fold_seed=5, foldless=True)
    logged = []
    res = json.loads(run_grid(paths, classifier="svm", protocol="cv-best", grid="small", fold_seed=0,
                              out=tmp_path / "res", progress=False, log=logged.append).read_text())
    assert any("using its model's folds (3 folds, fold seed 5)" in m for m in logged)
    run = res["entries"][0]["runs"][0]
    assert run["model_fold_of_each_fold"] == [1, 2, 3] and len(run["fold_accuracies"]) == 3
    for fs in paths:  # the same models claiming fold seed 6: the clips they saw overlap the folds
        meta = json.loads((fs / "meta.json").read_text())
        meta["model_fold_seed"] = 6
        (fs / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="refusing to score .* clips of held-out fold 1"):
        run_grid(paths, classifier="svm", protocol="cv-best", grid="small", out=tmp_path / "r2",
                 progress=False)


# --- case 10 ---------------------------------------------------------------------------------------

def test_one_inner_split_with_one_class_does_not_fail_the_svm(tmp_path):
    """Two classes, 3 folds, fold 3 all 'a': the nested-CV inner training set made of fold 3 alone holds
    one class. Before, that failed every SVM point, and with them cv-best and nested-cv ("failed")."""
    rng = np.random.default_rng(0)
    y = np.array(["a"] * 16 + ["b"] * 8)
    fold = np.array([1, 2] * 4 + [3] * 8 + [1, 2] * 4)
    X = (rng.standard_normal((24, 4)) + (y == "b")[:, None] * 4).astype(np.float32) + 5
    ids = np.array([f"c{i:02d}" for i in range(24)])
    fs = write_feature_set(tmp_path / "fs", X, y, ids, fold=fold)
    res = json.loads(run_grid([fs], classifier="svm", grid="small", out=tmp_path / "res",
                              progress=False).read_text())
    by = {e["protocol"]: e for e in res["entries"]}
    assert by["cv-best"]["mean"] is not None and by["nested-cv"]["mean"] is not None
    assert by["cv-best"]["failed_points"] == []
    assert any("held a single class (a)" in n for n in by["nested-cv"]["notes"])
    # the two folds with both classes are scored by real fits: separable data, near perfect
    assert by["cv-best"]["runs"][0]["fold_accuracies"][0] >= 0.9


def test_the_same_feature_set_twice_counts_once(tmp_path):
    fs = _set(tmp_path / "fs")
    copy = tmp_path / "copy"
    shutil.copytree(fs, copy)
    logged = []
    res = json.loads(run_grid([fs, fs, copy], classifier="svm", protocol="cv-best", grid="small",
                              out=tmp_path / "res", progress=False, log=logged.append).read_text())
    e = res["entries"][0]
    assert e["n_runs"] == 1 and e["std"] is None  # was: "2 runs", +- 0.00
    assert len(logged) == 2 and all("counted once" in m for m in logged)
    assert "same folder" in logged[0] and "same features_sha256" in logged[1]
    assert res["notes"] == logged


# --- results identity ------------------------------------------------------------------------------

def test_results_record_settings_and_feature_sets_and_never_overwrite_other_settings(tmp_path,
                                                                                      monkeypatch):
    fs = _set(tmp_path / "fs", meta={"config_key": "abc123"})
    monkeypatch.chdir(tmp_path)
    a = run_grid([fs], classifier="svm", grid="small", progress=False)
    b = run_grid([fs], classifier="svm", grid="small", standardize=True, progress=False)
    assert a != b and a.exists() and b.exists()  # was: one folder, the second replaced the first
    ra, rb = json.loads(a.read_text()), json.loads(b.read_text())
    assert a.parent.name == f"synthetic_large_random_{ra['results_key']}"
    assert ra["grid_settings"]["standardize"] is False and rb["grid_settings"]["standardize"] is True
    rec = ra["feature_sets"][0]
    assert rec["config_key"] == "abc123" and rec["path"] == str(fs)
    assert rec["features_sha256"] == json.loads((fs / "meta.json").read_text())["features_sha256"]
    again = run_grid([fs], classifier="svm", grid="small", progress=False)
    assert again == a
    assert [r["accuracy"] for e in json.loads(again.read_text())["entries"] for r in e["runs"]] == \
        [r["accuracy"] for e in ra["entries"] for r in e["runs"]]
    # --out is a root: another configuration into the same --out goes to its own folder, never onto a
    root = tmp_path / "shared"
    c = run_grid([fs], classifier="svm", grid="small", out=root, progress=False)
    d = run_grid([fs], classifier="svm", grid="small", standardize=True, out=root, progress=False)
    assert c.parent.name == a.parent.name and d.parent.name == b.parent.name and c != d
    assert json.loads(c.read_text())["results_key"] == ra["results_key"]


# --- report side -----------------------------------------------------------------------------------

def test_report_skips_results_whose_feature_set_changed(tmp_path):
    fs = _set(tmp_path / "features" / "synthetic" / "vgg_large_random_seed0", meta={"arch": "vgg"})
    out = run_grid([fs], classifier="svm", grid="small", progress=False,
                   out=tmp_path / "results" / "synthetic" / "vgg")
    rows, read, messages = load_results([tmp_path / "results"], log=lambda m: None)
    assert rows and not messages
    _set(fs, seed=9, meta={"arch": "vgg"})  # re-extracted with other settings since
    rows, read, messages = load_results([tmp_path / "results"], log=lambda m: None)
    assert not rows and not read
    assert len(messages) == 1 and str(out) in messages[0] and str(fs) in messages[0] \
        and "changed since these results were computed" in messages[0]
    shutil.rmtree(fs)  # gone from disk: nothing to compare with, the results are read
    rows, _, messages = load_results([tmp_path / "results"], log=lambda m: None)
    assert rows and not messages


def test_report_reads_a_file_whose_seeds_mix_int_and_str(tmp_path):
    fs = _set(tmp_path / "fs")
    out = run_grid([fs], classifier="svm", protocol="cv-best", grid="small", progress=False,
                   out=tmp_path / "results" / "synthetic" / "x")
    data = json.loads(out.read_text())
    run = data["entries"][0]["runs"][0]
    data["entries"][0]["runs"] = [dict(run, seed="2"), dict(run, seed=0), dict(run, seed=None)]
    out.write_text(json.dumps(data))  # was: TypeError '<' not supported between 'int' and 'str'
    rows, read, messages = load_results([out], log=lambda m: None)
    assert len(rows) == 1 and rows[0]["seeds"] == [0, "2", None] and rows[0]["n_runs"] == 3
    from report.build import render_report
    report = render_report([out], out=tmp_path / "report", log=lambda m: None)
    assert report.exists()


# --- training: folds from --fold-seed (case 4), checkpoints prove their folds, resume (case 6) -------

TRAIN = dict(arch="sample-level", recipe="toolkit-2025", width="small", input_seconds=1.0, batch_size=4, workers=0,
             cache_dir=None, progress=False, evaluate=False, epochs=1)


def test_training_holds_out_the_fold_seed_folds_whatever_the_seed(tmp_path):
    """Before, trained.train made its folds with --seed: for seed 5 fold 1's model trained on clips
    of the grid's fold 1 (folds of --fold-seed 0)."""
    from conftest import write_class_folders
    from audiodata.datasets import dataset_key, load_dataset
    from architectures.checkpoint import IDENTITY_KEYS, read_checkpoint
    from trained.train import train
    root = write_class_folders(tmp_path / "data", per_class=6)
    run = train(dataset="folder", root=root, folds=3, fold=1, seed=5, fold_seed=0,
                out=tmp_path / "runs", **TRAIN)
    ds = load_dataset("folder", root=root, folds=3, seed=0)
    fold = stratified_folds(ds.ids, ds.labels, 3, 0)
    assert not np.array_equal(fold, stratified_folds(ds.ids, ds.labels, 3, 5))  # the seed would matter
    ckpt = read_checkpoint(run / "fold1" / "best.pt")
    assert all(k in ckpt for k in IDENTITY_KEYS)
    held, seen = set(ds.ids[fold == 1]), set(ckpt["train_ids"]) | set(ckpt["val_ids"])
    assert held and not held & seen and held | seen == set(ds.ids.tolist())
    assert (ckpt["width"], ckpt["seed"], ckpt["fold"], ckpt["folds"], ckpt["fold_seed"]) == \
        ("small", 5, 1, 3, 0)
    assert ckpt["dataset"] == ds.name and ckpt["dataset_key"] == dataset_key(ds)
    meta = json.loads((run / "fold1" / "meta.json").read_text())
    assert meta["fold_seed"] == 0 and meta["dataset_key"] == ckpt["dataset_key"]


def test_resume_refuses_a_checkpoint_of_another_dataset_state(tmp_path, capsys):
    """Before, a run folder resumed whatever dataset it was pointed at ("resuming after epoch 1")."""
    from conftest import tone, write_audio, write_class_folders
    from trained.train import main as train_main, train
    root = write_class_folders(tmp_path / "data", per_class=6)
    out = tmp_path / "runs"
    train(dataset="folder", root=root, folds=3, fold=1, out=out, **TRAIN)
    write_audio(root / "low" / "low0.wav", tone(1.0, 16000, freq=330.0))  # a file replaced since
    argv = ["--arch", "sample-level", "--recipe", "toolkit-2025", "--width", "small", "--dataset", "folder", "--root", str(root),
            "--folds", "3", "--fold", "1", "--epochs", "2", "--input-seconds", "1", "--batch-size", "4",
            "--workers", "0", "--cache-dir", str(tmp_path / "cache"), "--out", str(out), "--no-evaluate"]
    with pytest.raises(SystemExit) as e:
        train_main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "checkpoint.pt was trained on another dataset state" in err and "--no-resume" in err


def test_random_feature_sets_from_extraction_are_not_taken_for_trained_ones(tmp_path):
    """Extraction writes ``model_train_ids: null`` for random weights; the grid must score them."""
    from classifiers.featureset import synthetic_feature_set, write_feature_set
    from classifiers.grid import run_grid
    d = synthetic_feature_set(n_clips=60, n_features=6, n_folds=3, separation=3.0, seed=0)
    fs = write_feature_set(tmp_path / "fs" / "vgg_small_random_seed0", **d,
                           meta={"arch": "vgg", "weights": "random", "model_train_ids": None,
                                 "n_params": 1, "gflop_per_clip": 0.1})
    res = json.loads(run_grid([fs], classifier="svm", grid="small", out=tmp_path / "res",
                              progress=False).read_text())
    assert res["entries"] and min(e["mean"] for e in res["entries"]) > 0.9
