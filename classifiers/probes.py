"""Linear and kNN probes beside the SVM and the ELM: the probes HEAR and X-ARES score embeddings with.

- ``LinearProbe`` (``--classifier linear``): standardised logistic regression. Each task's training
  clips fit a ``StandardScaler`` (its test clips are never seen by it), then scikit-learn's
  ``LogisticRegression(C, lbfgs, max_iter=LINEAR_MAX_ITER)`` (multinomial) for each ``C`` of the grid
  (``classifiers/grids.py``: 1e-3 ... 10 in decades for the study grid).
- ``KNNProbe`` (``--classifier knn``): ``KNeighborsClassifier(n_neighbors=k, metric="cosine",
  algorithm="brute")`` with k = 10 (or every training clip where a task has fewer than 10), uniform
  votes; scikit-learn breaks a tied vote towards the lower class index, so the result is deterministic.
  It standardises only with ``--standardize``, as the SVM.

Both have the scorer interface of ``classifiers/kernels.py``: ``run(points, tasks, jobs, progress)``
returns ``(pred, errors)``, ``pred[p][t]`` the class indices predicted for task ``t``'s test clips by
grid point ``p``. A point that fails (a solver error) is recorded with its reason; the grid goes on.
"""
from __future__ import annotations

import warnings

import numpy as np
from joblib import Parallel, delayed
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

__all__ = ["LinearProbe", "KNNProbe", "LINEAR_MAX_ITER", "KNN_K"]

LINEAR_MAX_ITER = 1000
KNN_K = 10


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def collect(keys, results, n_points, n_tasks):
    """``(pred, errors)`` of the scorer interface from one output per ``(point, task)`` key: an array, or a
    string (the reason the fit failed; the first one per point is kept). Shared with ``reference.py``."""
    pred = [[None] * n_tasks for _ in range(n_points)]
    errors: dict[int, str] = {}
    for (p, t), out in zip(keys, results):
        if isinstance(out, str):
            errors.setdefault(p, out)
        else:
            pred[p][t] = out
    return pred, errors


class _Probe:
    """Shared ``run``: tasks in ``jobs`` threads, every grid point of a task fitted in one job by
    ``_fit_predict(params, X_train, y_train, X_test)``; a point that raises is recorded with its reason."""

    always_standardize = False

    def __init__(self, X, y, standardize=False):
        self.X, self.y, self.standardize = np.asarray(X, dtype=np.float64), np.asarray(y), standardize
        self.notes: list[str] = []

    def _features(self, train, test):
        X_train, X_test = self.X[train], self.X[test]
        if self.always_standardize or self.standardize:
            scaler = StandardScaler().fit(X_train)
            X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
        return X_train, X_test

    def _task(self, points, train, test):
        X_train, X_test = self._features(train, test)
        out = []
        for params in points:
            try:
                out.append(self._fit_predict(params, X_train, self.y[train], X_test))
            except Exception as e:  # a failed grid point is recorded, the grid goes on
                out.append(_describe(e))
        return out

    def run(self, points, tasks, jobs=1, progress=None):
        def job(t):
            out = self._task(points, *tasks[t])
            if progress is not None:
                progress.update(len(points))
            return out
        results = Parallel(n_jobs=jobs, prefer="threads")(delayed(job)(t) for t in range(len(tasks)))
        keys = [(p, t) for t in range(len(tasks)) for p in range(len(points))]
        return collect(keys, [o for per_point in results for o in per_point], len(points), len(tasks))


def _logistic(C):
    return LogisticRegression(C=float(C), max_iter=LINEAR_MAX_ITER)


def _knn(params, n_train):
    k = min(int(params.get("n_neighbors", KNN_K)), n_train)
    return KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute")


class LinearProbe(_Probe):
    """Standardised multinomial logistic regression for each ``C`` of the grid (see the module docstring)."""

    name = "linear-logistic"
    always_standardize = True

    def _fit_predict(self, params, X_train, y_train, X_test):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # the C grid decides; noted below
            model = _logistic(params["C"]).fit(X_train, y_train)
        if int(np.max(model.n_iter_)) >= LINEAR_MAX_ITER:
            self.notes.append(f"C={params['C']}: lbfgs stopped at {LINEAR_MAX_ITER} iterations")
        return model.predict(X_test)


class KNNProbe(_Probe):
    """Cosine k-nearest-neighbour vote (see the module docstring)."""

    name = "knn-cosine"

    def _fit_predict(self, params, X_train, y_train, X_test):
        return _knn(params, len(X_train)).fit(X_train, y_train).predict(X_test)
