"""Trained models of a cross-validated dataset: fold k is scored with fold k's own model's features."""
from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.svm import SVC

from classifiers.featureset import synthetic_feature_set, write_feature_set
from classifiers.grid import run_grid
from classifiers.grids import resolve_gamma

FOLDS = 3


def _per_fold_sets(tmp_path, seed=0, folds=range(1, FOLDS + 1)):
    """One feature set per fold model: same clips and folds, features of model k = a model-specific
    random projection of the signal, so a mix-up of models changes the numbers."""
    base = synthetic_feature_set(n_clips=90, n_features=12, n_classes=3, n_folds=FOLDS, separation=1.5,
                                 seed=4)
    paths = []
    for k in folds:
        rng = np.random.default_rng(100 * seed + k)
        X = np.abs(base["X"] @ rng.standard_normal((12, 12))).astype(np.float32)
        seen = sorted(base["ids"][base["fold"] != k].tolist())  # model k trained on the other folds
        meta = {"weights": "trained", "seed": seed, "model_fold": k, "arch": "vgg",
                "checkpoint": f"runs/trained/seed{seed}/fold{k}/best.pt", "model_train_ids": seen}
        paths.append(write_feature_set(tmp_path / f"vgg_seed{seed}_fold{k}", X, base["y"], base["ids"],
                                       fold=base["fold"], meta=meta))
    return paths, base


def test_each_fold_is_scored_with_its_own_model(tmp_path):
    paths, base = _per_fold_sets(tmp_path)
    out = run_grid(paths, classifier="svm", protocol="auto", grid="small", out=tmp_path / "res",
                   progress=False)
    res = json.loads(out.read_text())
    y, fold = base["y"], base["fold"]
    for entry in res["entries"]:
        run = entry["runs"][0]
        assert run["features"] == [str(p) for p in paths]
        choices = run.get("selected_per_fold") or [run["selected"]] * FOLDS
        for k, (params, acc) in enumerate(zip(choices, run["fold_accuracies"]), start=1):
            X = np.load(paths[k - 1] / "features.npz")["X"]   # model k's features, and only those
            kw = {key: v for key, v in params.items() if key != "gamma_rule"}
            if kw.get("kernel") == "rbf":
                kw["gamma"] = resolve_gamma(kw["gamma"], X.shape[1])
            clf = SVC(**kw).fit(X[fold != k], y[fold != k])
            assert acc == pytest.approx(np.mean(clf.predict(X[fold == k]) == y[fold == k]), abs=1e-12)
        assert run["accuracy"] == pytest.approx(np.mean(run["fold_accuracies"]))
        assert sorted(run["predictions"]["ids"]) == sorted(base["ids"].tolist())


def test_two_seeds_are_two_runs(tmp_path):
    a, _ = _per_fold_sets(tmp_path, seed=0)
    b, _ = _per_fold_sets(tmp_path, seed=1)
    res = json.loads(run_grid(a + b, classifier="svm", protocol="cv-best", grid="small",
                              out=tmp_path / "res", progress=False).read_text())
    assert res["entries"][0]["n_runs"] == 2
    assert [r["seed"] for r in res["entries"][0]["runs"]] == [0, 1]


def test_missing_fold_model_is_named(tmp_path):
    paths, _ = _per_fold_sets(tmp_path, folds=[1, 3])
    with pytest.raises(ValueError, match=r"missing the models of folds \[2\]"):
        run_grid(paths, classifier="svm", grid="small", out=tmp_path / "res", progress=False)
