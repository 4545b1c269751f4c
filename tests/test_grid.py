"""Protocols on generated problems with known answers; fast path == straightforward; the CLI output."""
import csv
import json

import numpy as np
import pytest

from threadpoolctl import threadpool_limits

from classifiers.featureset import synthetic_feature_set, write_feature_set
from conftest import chance_band, only_results
from classifiers.grid import main
from classifiers.grids import SMALL_ELM_GRID, SMALL_SVM_GRID, SVM_GRID, grid_points
from classifiers.kernels import FastELM, FastSVM
from classifiers.protocols import evaluate
from classifiers.reference import NaiveELM, NaiveSVM, straightforward_cv_best


@pytest.fixture(autouse=True)
def _one_blas_thread():
    # Tiny matrices: BLAS threads only contend with each other (and other users of the machine).
    with threadpool_limits(1):
        yield




def _data(separation, shuffle=False, n_folds=5, n=150, seed=0):
    d = synthetic_feature_set(n_clips=n, n_features=16, n_classes=3, n_folds=n_folds,
                              separation=separation, seed=seed, shuffle_labels=shuffle)
    return d, np.unique(d["y"], return_inverse=True)[1]


@pytest.mark.parametrize("protocol", ["split", "cv-best", "nested-cv"])
def test_separable_scores_near_100_and_shuffled_near_chance(protocol):
    folds = None if protocol == "split" else 5
    for shuffle in (False, True):
        # shuffled: 600 clips under split (180 test clips), 210 under the folds (each one a test clip once)
        n = 600 if shuffle and protocol == "split" else 210
        d, y = _data(separation=12.0, shuffle=shuffle, n_folds=folds, n=n)
        points = grid_points(SMALL_SVM_GRID)
        res = evaluate(FastSVM(d["X"], y), points, y, [protocol], split=d.get("split"),
                       fold=d.get("fold"), progress=False)[protocol]
        low, high = chance_band(d, 3) if shuffle else (0.95, 1.0)
        assert low <= res["accuracy"] <= high, (shuffle, res["accuracy"], low, high)


def test_fast_svm_equals_straightforward_and_gridsearchcv():
    d, y = _data(separation=1.5, n=120)
    points = grid_points(SVM_GRID)
    fast = evaluate(FastSVM(d["X"], y), points, y, ["cv-best", "nested-cv"], fold=d["fold"],
                    progress=False)
    slow = evaluate(NaiveSVM(d["X"], y), points, y, ["cv-best", "nested-cv"], fold=d["fold"],
                    progress=False)
    for p in ("cv-best", "nested-cv"):
        np.testing.assert_array_equal(fast[p]["scores"], slow[p]["scores"])
        assert fast[p]["selected_per_fold"] == slow[p]["selected_per_fold"]
        assert fast[p]["selected"] == slow[p]["selected"]
        np.testing.assert_array_equal(fast[p]["y_pred"], slow[p]["y_pred"])
    ref = straightforward_cv_best(d["X"], y, d["fold"], SVM_GRID, None, seed=0)
    assert points[fast["cv-best"]["selected"]] == ref["svm"][0]
    assert fast["cv-best"]["accuracy"] == ref["svm"][1]


@pytest.mark.parametrize("standardize", [False, True])
def test_fast_elm_equals_estimator_refits(standardize):
    d, y = _data(separation=1.0, n=90)
    points = grid_points([{"n_hidden": [5, 30, 60, 120]}])  # 120 > training clips: rank deficient
    fast_scorer = FastELM(d["X"], y, 3, seed=4, standardize=standardize)
    fast = evaluate(fast_scorer, points, y, ["cv-best", "nested-cv"], fold=d["fold"], progress=False)
    slow = evaluate(NaiveELM(d["X"], y, 3, seed=4, standardize=standardize), points, y,
                    ["cv-best", "nested-cv"], fold=d["fold"], progress=False)
    for p in ("cv-best", "nested-cv"):
        np.testing.assert_array_equal(fast[p]["scores"], slow[p]["scores"])
        assert fast[p]["selected_per_fold"] == slow[p]["selected_per_fold"]
    ref = straightforward_cv_best(d["X"], y, d["fold"], None, [{"n_hidden": [5, 30, 60, 120]}],
                                  seed=4) if not standardize else None
    if ref:
        assert points[fast["cv-best"]["selected"]] == ref["elm"][0]
        assert fast["cv-best"]["accuracy"] == ref["elm"][1]
    assert sum(fast_scorer.solver_counts.values()) == 4 * 15  # every point on every task


def test_fast_svm_with_standardize_equals_pipeline():
    d, y = _data(separation=1.5, n=90)
    points = grid_points(SMALL_SVM_GRID)
    a = evaluate(FastSVM(d["X"], y, standardize=True), points, y, ["cv-best"], fold=d["fold"],
                 progress=False)["cv-best"]
    b = evaluate(NaiveSVM(d["X"], y, standardize=True), points, y, ["cv-best"], fold=d["fold"],
                 progress=False)["cv-best"]
    np.testing.assert_array_equal(a["scores"], b["scores"])


@pytest.mark.parametrize("scorer", ["svm", "elm"])
def test_nested_cv_never_scores_a_fold_it_selected_on(scorer):
    d, y = _data(separation=1.0, n=150)
    points = grid_points(SMALL_SVM_GRID if scorer == "svm" else SMALL_ELM_GRID)

    def run(X, labels):
        s = FastSVM(X, labels) if scorer == "svm" else FastELM(X, labels, 3, seed=0)
        return evaluate(s, points, labels, ["nested-cv"], fold=d["fold"], progress=False)["nested-cv"]
    base = run(d["X"], y)
    k = 2  # wreck outer fold 3 (index 2): its selection must not move, its score may
    X, labels = d["X"].copy(), y.copy()
    rows = np.flatnonzero(d["fold"] == k + 1)
    X[rows] = np.random.default_rng(1).random((rows.size, X.shape[1])) * 50
    labels[rows] = np.random.default_rng(2).permutation(labels[rows])
    wrecked = run(X, labels)
    assert wrecked["selected_per_fold"][k] == base["selected_per_fold"][k]
    np.testing.assert_allclose(wrecked["scores"][k], base["scores"][k], atol=0)
    assert not np.allclose(np.delete(wrecked["scores"], k, axis=0), np.delete(base["scores"], k, axis=0))


def test_failed_grid_point_is_recorded_and_the_grid_goes_on():
    d, y = _data(separation=5.0, n=90)
    points = [{"kernel": "linear", "C": -1.0}, {"kernel": "linear", "C": 1.0}]
    res = evaluate(FastSVM(d["X"], y), points, y, ["cv-best"], fold=d["fold"], progress=False)
    assert 0 in res["failed"] and "C" in res["failed"][0]
    assert res["cv-best"]["selected"] == 1 and res["cv-best"]["accuracy"] > 0.9


def test_cli_writes_results_in_the_agreed_format(tmp_path, capsys):
    paths = []
    for seed in (0, 1):
        d = synthetic_feature_set(n_clips=90, n_features=10, n_classes=3, n_folds=3, separation=4.0,
                                  seed=seed)
        meta = {"seed": seed, "dataset": "toy", "arch": "vgg", "n_params": 12, "gflop_per_clip": 0.5,
                "timings": {"decode_s": 1, "compute_s": 1, "total_s": 2, "clips_per_s": 45.0}}
        d["fold"] = synthetic_feature_set(n_clips=90, n_classes=3, n_folds=3, seed=0)["fold"]
        d["X"] = d["X"] if seed == 0 else d["X"] + 0.01
        d["y"] = synthetic_feature_set(n_clips=90, n_classes=3, n_folds=3, seed=0)["y"]
        paths.append(str(write_feature_set(tmp_path / f"fs{seed}", **d, meta=meta)))
    out = tmp_path / "res"
    main(["--features", *paths, "--grid", "small", "--out", str(out)])
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1] == str(only_results(out))  # --out is the root: OUT/<dataset>/<name>_<key>/
    assert only_results(out).parent.parent == out / "toy"
    res = json.loads(only_results(out).read_text())
    assert res["kind"] == "randomcnn-results" and res["version"] == 1 and res["dataset"] == "toy"
    assert res["n_params"] == 12 and res["extract_clips_per_s"] == 45.0 and res["features"] == paths
    assert {(e["classifier"], e["protocol"]) for e in res["entries"]} == {
        (c, p) for c in ("svm", "elm", "linear", "knn") for p in ("cv-best", "nested-cv")}
    for e in res["entries"]:
        assert e["optimistic"] == (e["protocol"] == "cv-best") and e["n_runs"] == 2
        accs = [r["accuracy"] for r in e["runs"]]
        assert e["mean"] == pytest.approx(np.mean(accs)) and e["std"] == pytest.approx(np.std(accs, ddof=1))
        for r in e["runs"]:
            assert len(r["fold_accuracies"]) == 3 and r["accuracy"] == pytest.approx(np.mean(r["fold_accuracies"]))
            p = r["predictions"]
            assert sorted(p["ids"]) == sorted(np.load(paths[0] + "/features.npz")["ids"].tolist())
            assert np.sum(r["confusion"]) == 90
            hit = np.mean(np.array(p["y_true"]) == np.array(p["y_pred"]))
            assert hit == pytest.approx(r["accuracy"], abs=0.02)  # pooled vs fold mean
            assert set(r["per_class_accuracy"]) == set(r["labels"])
    rows = list(csv.DictReader(open(only_results(out).with_name("results.csv"))))
    assert len(rows) == 2 * 4 * 2  # runs x classifiers x protocols


def test_cli_bad_input_exits_with_message(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--features", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert e.value.code == 2 and "missing" in capsys.readouterr().err
