"""Linear and kNN probes (classifiers/probes.py): same picks and predictions as scikit-learn refitted by
hand, every protocol, near 100 % on separable data and near chance on shuffled labels."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from classifiers.featureset import synthetic_feature_set
from conftest import chance_band
from classifiers.grid import CLASSIFIERS
from classifiers.grids import GRIDS, grid_points
from classifiers.probes import KNNProbe, LinearProbe
from classifiers.protocols import evaluate




def _data(separation, shuffle=False, n_folds=4, n=120, seed=0):
    d = synthetic_feature_set(n_clips=n, n_features=12, n_classes=3, n_folds=n_folds,
                              separation=separation, seed=seed, shuffle_labels=shuffle)
    return d, np.unique(d["y"], return_inverse=True)[1]


def test_probes_are_rows_of_the_classifier_table():
    assert CLASSIFIERS["linear"].engines == {"sklearn": LinearProbe}
    assert CLASSIFIERS["knn"].engines == {"sklearn": KNNProbe}
    assert grid_points(GRIDS["study"]["knn"]) == [{"n_neighbors": 10}]
    assert [p["C"] for p in grid_points(GRIDS["study"]["linear"])] == [1e-3, 1e-2, 1e-1, 1.0, 10.0]


@pytest.mark.parametrize("protocol", ["split", "cv-best", "nested-cv"])
@pytest.mark.parametrize("probe", [LinearProbe, KNNProbe])
def test_separable_near_100_shuffled_near_chance(protocol, probe):
    folds = None if protocol == "split" else 4
    name = "linear" if probe is LinearProbe else "knn"
    for shuffle in (False, True):
        # shuffled: 600 clips under split (180 test clips), 180 under the folds (each one a test clip once)
        n = 600 if shuffle and protocol == "split" else 180
        d, y = _data(separation=10.0, shuffle=shuffle, n_folds=folds, n=n)
        res = evaluate(probe(d["X"], y), grid_points(GRIDS["small"][name]), y, [protocol],
                       split=d.get("split"), fold=d.get("fold"), progress=False)[protocol]
        low, high = chance_band(d, 3) if shuffle else (0.95, 1.0)
        assert low <= res["accuracy"] <= high, (shuffle, res["accuracy"], low, high)


def test_linear_probe_equals_standardised_logistic_regression_by_hand():
    d, y = _data(separation=1.0)
    points = grid_points(GRIDS["study"]["linear"])
    res = evaluate(LinearProbe(d["X"], y), points, y, ["cv-best"], fold=d["fold"], progress=False)["cv-best"]
    scores = []
    for p in points:
        hits = 0
        for k in np.unique(d["fold"]):
            tr, te = d["fold"] != k, d["fold"] == k
            m = make_pipeline(StandardScaler(), LogisticRegression(C=p["C"], max_iter=1000)).fit(d["X"][tr], y[tr])
            hits += np.sum(m.predict(d["X"][te]) == y[te])
        scores.append(hits / len(y))  # pooled over folds
    np.testing.assert_allclose(res["scores"], scores)
    assert res["selected"] == int(np.argmax(scores))


def test_knn_probe_is_cosine_10_nearest_vote():
    d, y = _data(separation=1.0)
    res = evaluate(KNNProbe(d["X"], y), [{"n_neighbors": 10}], y, ["cv-best"], fold=d["fold"],
                   progress=False)["cv-best"]
    want = []
    for k in np.unique(d["fold"]):
        tr, te = d["fold"] != k, d["fold"] == k
        Xn = d["X"] / np.linalg.norm(d["X"], axis=1, keepdims=True)
        sim = Xn[te] @ Xn[tr].T
        nearest = np.argsort(-sim, axis=1, kind="stable")[:, :10]
        votes = np.stack([np.bincount(row, minlength=3) for row in y[tr][nearest]])
        want.append(np.argmax(votes, axis=1))  # ties: the lower class, as scikit-learn
        ref = KNeighborsClassifier(10, metric="cosine", algorithm="brute").fit(d["X"][tr], y[tr])
        np.testing.assert_array_equal(ref.predict(d["X"][te]), want[-1])
    np.testing.assert_array_equal(res["y_pred"], np.concatenate(want))


def test_knn_with_fewer_training_clips_than_k_uses_them_all():
    X = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 1.0]])
    y = np.array([0, 0, 1, 1])
    pred, errors = KNNProbe(X, y).run([{"n_neighbors": 10}], [(np.array([0, 2, 3]), np.array([1]))])
    assert errors == {} and pred[0][0].tolist() == [1]  # 3 neighbours: two of class 1 outvote one
