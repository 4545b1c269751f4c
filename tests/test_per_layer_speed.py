"""``--per-layer`` shares work between its grids: the SVM's Gram of layers 1..k is a sum of per-layer
Grams (``kernels.LayerGrams``), layers 1..K are the full set's own results and layers 1..1 is layer 1
alone. The accuracies equal scoring each subset of layers on its own, as the per-layer path did."""
import json

import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler

from classifiers import kernels
from classifiers.featureset import load_feature_set, synthetic_feature_set, write_feature_set
from classifiers.grid import run_grid
from classifiers.kernels import LayerGrams, _gram_upper, _symmetric, layer_grams

LAYERS = [{"name": "conv1", "channels": 5, "start": 0, "stop": 5},
          {"name": "conv2", "channels": 7, "start": 5, "stop": 12},
          {"name": "pool", "channels": 4, "start": 12, "stop": 16}]


def _direct(X):
    return _symmetric(_gram_upper(np.asarray(X, np.float64).T))


def test_sum_of_layer_grams_is_the_gram_and_is_reused():
    rng = np.random.default_rng(0)
    X = np.abs(rng.standard_normal((50, 16)))
    grams = LayerGrams()
    for a, b in ((0, 5), (5, 12), (12, 16)):  # each layer alone
        np.testing.assert_allclose(grams.gram(X[:, a:b], [b - a]), _direct(X[:, a:b]), rtol=1e-13)
    assert grams.computed == 3
    for k, stop in ((2, 12), (3, 16)):  # layers 1..k: no block computed again
        G = grams.gram(X[:, :stop], [5, 7, 4][:k])
        np.testing.assert_allclose(G, _direct(X[:, :stop]), rtol=1e-12)
        assert not np.array_equal(G, grams.gram(X[:, :5], [5]))  # a sum, not a block served again
    assert grams.computed == 3 and grams.reused >= 5
    # standardized with the statistics of a training set: per column, so the blocks still sum
    Z = StandardScaler().fit(X[:30]).transform(X)
    np.testing.assert_allclose(LayerGrams().gram(Z, [5, 7, 4]), _direct(Z), rtol=1e-12, atol=1e-12)
    # other numbers in one layer: another key, never the kept Gram of the old numbers
    Y = X.copy()
    Y[3, 6] += 1.0
    np.testing.assert_allclose(grams.gram(Y, [5, 7, 4]), _direct(Y), rtol=1e-12)
    assert grams.computed == 4  # only the changed block
    # nothing kept (no memory to spare): still the right Gram
    none = LayerGrams(budget=0)
    np.testing.assert_allclose(none.gram(X, [5, 7, 4]), _direct(X), rtol=1e-12)
    assert none.gram(X, [5, 7, 4]).flags.writeable is False
    with pytest.raises(ValueError, match="do not tile the 16 columns"):
        grams.gram(X, [5, 7])


def _sets(tmp_path, seeds=(0, 1)):
    out = []
    for s in seeds:
        arrays = synthetic_feature_set(n_clips=72, n_features=16, n_classes=3, separation=1.2, seed=7,
                                       n_folds=4)
        arrays["X"] = arrays["X"] + np.random.default_rng(s).normal(0, 0.4, arrays["X"].shape).astype(np.float32)
        out.append(write_feature_set(tmp_path / f"fs{s}", meta={"layers": LAYERS, "seed": s, "arch": "toy"},
                                     **arrays))
    return out


@pytest.mark.parametrize("standardize,classifier", [(False, "svm"), (True, "svm"), (False, "elm")])
def test_shared_per_layer_equals_scoring_each_subset_alone(tmp_path, monkeypatch, standardize, classifier):
    paths = _sets(tmp_path)
    calls = []
    real = LayerGrams.gram
    monkeypatch.setattr(LayerGrams, "gram", lambda self, X, w: calls.append(tuple(w)) or real(self, X, w))
    res = json.loads(run_grid(paths, grid="small", classifier=classifier, per_layer=True,
                              standardize=standardize, out=tmp_path / "r", progress=False).read_text())
    if classifier == "svm":  # the shared Grams served every subset scored: layers 1, 2, 3 alone and 1..2
        assert {(5,), (7,), (4,), (5, 7)} <= set(calls) and (5, 7, 4) not in calls
    sets = [load_feature_set(p) for p in paths]
    reference = {}  # layers -> entries of a grid on a feature set of those columns only (no sharing)
    n_points = 0
    for curve in res["per_layer"]["curves"]:
        for point in curve["points"]:
            names = tuple(point["layers"])
            if names not in reference:
                cols = np.concatenate([np.arange(layer["start"], layer["stop"]) for layer in LAYERS
                                       if layer["name"] in names])
                folders = [write_feature_set(tmp_path / f"ref{len(reference)}_{i}", fs.X[:, cols], fs.y, fs.ids,
                                             fold=fs.fold, meta={"seed": fs.meta["seed"], "arch": "toy"})
                           for i, fs in enumerate(sets)]
                reference[names] = json.loads(run_grid(
                    folders, grid="small", classifier=classifier, standardize=standardize,
                    out=tmp_path / f"ref{len(reference)}", progress=False).read_text())["entries"]
            e = next(e for e in reference[names]
                     if (e["classifier"], e["protocol"]) == (curve["classifier"], curve["protocol"]))
            assert point["accuracies"] == [r["accuracy"] for r in e["runs"]], (curve["mode"], point["k"])
            n_points += 1
    n_curves = len(res["entries"]) * 2  # (classifier, protocol) x modes
    assert len(res["per_layer"]["curves"]) == n_curves and n_points == n_curves * 3
    # the curves carry information: the layers alone do not all score alike
    alone = [c for c in res["per_layer"]["curves"] if c["mode"] == "alone"]
    assert any(len({p["mean"] for p in c["points"]}) > 1 for c in alone)


def test_outside_per_layer_the_gram_is_computed_directly(monkeypatch):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 9))
    y = np.arange(40) % 2
    tasks = [(np.arange(0, 30), np.arange(30, 40))]
    points = [{"kernel": "linear", "C": 1.0}]
    used = []
    monkeypatch.setattr(LayerGrams, "gram", lambda self, X, w: used.append(w) or _direct(X))
    kernels.FastSVM(X, y).run(points, tasks)
    assert used == []
    with layer_grams(LayerGrams(), [4, 5]):
        kernels.FastSVM(X, y).run(points, tasks)
        kernels.FastSVM(X[:, :4], y).run(points, tasks)  # other columns: not these layers, direct
    assert used == [(4, 5)]
