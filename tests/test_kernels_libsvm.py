"""FastSVM fits libsvm directly (``kernels._svc_fit_predict``) with the arguments ``SVC`` passes it: its
predictions must be ``SVC(kernel="precomputed")``'s, clip for clip, for every kind of task a grid makes."""
import numpy as np
import pytest
from sklearn.svm import SVC

from classifiers import kernels


def _problem(seed, n=150, d=12, n_classes=4, overlap=1.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    X = rng.standard_normal((n, d)) * overlap
    X[np.arange(n), y % d] += 1.0  # separable in part: support vectors of every kind (bound, free)
    return X, y


@pytest.mark.parametrize("seed,n_classes,kernel", [(0, 4, "rbf"), (1, 2, "rbf"), (2, 5, "linear"),
                                                   (3, 3, "linear"), (4, 6, "rbf")])
def test_direct_libsvm_predicts_as_svc(seed, n_classes, kernel):
    X, y = _problem(seed, n_classes=n_classes)
    G = X @ X.T
    sq = np.diag(G)
    K = G if kernel == "linear" else np.exp(-0.05 * (sq[:, None] + sq[None, :] - 2 * G))
    train, test = np.arange(100), np.arange(100, 150)
    scorer = kernels.FastSVM(X, y)
    Cs = [0.1, 2.0, 8.0, 32.0]
    ours = scorer._fit_task(K, Cs, train, test)
    differs = 0
    for C, pred in zip(Cs, ours):
        ref = SVC(kernel="precomputed", C=C).fit(K[np.ix_(train, train)], y[train]).predict(K[np.ix_(test, train)])
        np.testing.assert_array_equal(pred, ref)
        differs += int(not np.array_equal(ref, ours[0]))
    assert differs > 0  # the Cs give other models: a fit that ignored C would fail here


def test_classes_missing_from_training_map_back_to_their_labels():
    X, y = _problem(5, n_classes=4)
    y = np.where(y == 0, 3, y) + 2  # labels 3, 4, 5: not 0-based, not contiguous with the indices
    train = np.flatnonzero(y != 4)[:90]  # a training set without label 4
    test = np.setdiff1d(np.arange(y.size), train)
    K = X @ X.T
    (pred,) = kernels.FastSVM(X, y)._fit_task(K, [2.0], train, test)
    ref = SVC(kernel="precomputed", C=2.0).fit(K[np.ix_(train, train)], y[train]).predict(K[np.ix_(test, train)])
    np.testing.assert_array_equal(pred, ref)
    assert set(pred) <= {3, 5} and len(set(pred)) == 2


def test_one_class_is_refused_as_svc_refuses_it():
    X, y = _problem(6)
    train = np.flatnonzero(y == 1)
    (out,) = kernels.FastSVM(X, y)._fit_task(X @ X.T, [1.0], train, np.arange(5))
    assert out == "ValueError: The number of classes has to be greater than one; got 1 class"


def test_libsvm_prints_nothing(capfd):
    from sklearn.svm import _libsvm
    _libsvm.set_verbosity_wrap(1)  # as a verbose SVC elsewhere in the process leaves it
    X, y = _problem(7)
    kernels.FastSVM(X, y)._fit_task(X @ X.T, [1.0], np.arange(100), np.arange(100, 150))
    assert "nSV" not in capfd.readouterr().out
