"""The straightforward way (the reference code's): every grid point and fold fitted from scratch.

These scorers have the ``run`` interface of ``kernels.py`` and serve three purposes: the ``--elm-engine
hpelm`` option runs the ELM grid through hpelm itself; tests check that the fast scorers select and
score exactly like them; the benchmark times them. ``straightforward_cv_best`` is the study's code path
literally: ``GridSearchCV(SVC(), SVM_GRID)`` and ``GridSearchCV`` over ELM sizes with predefined folds.
"""
from __future__ import annotations

import numpy as np
from joblib import Parallel, delayed
from sklearn.model_selection import GridSearchCV, PredefinedSplit
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from .elm import ELMClassifier, draw_hidden, hpelm_fit_predict
from .probes import collect

__all__ = ["NaiveSVM", "NaiveELM", "FreshELM", "HpelmELM", "straightforward_cv_best"]


def _maybe_scaled(estimator, standardize):
    return make_pipeline(StandardScaler(), estimator) if standardize else estimator


class _Naive:
    """Fits ``self.estimator(params)`` on raw features for every (point, task)."""

    def __init__(self, X, y, standardize=False):
        self.X, self.y, self.standardize = np.asarray(X), np.asarray(y), standardize

    def _one(self, params, train, test):
        try:
            model = self.fit_predict(params, train, test)
            return model
        except Exception as e:  # recorded, the grid goes on
            return f"{type(e).__name__}: {e}"

    def run(self, points, tasks, jobs=1, progress=None):
        pairs = [(p, t) for p in range(len(points)) for t in range(len(tasks))]

        def job(p, t):
            out = self._one(points[p], *tasks[t])
            if progress is not None:
                progress.update(1)
            return out
        results = Parallel(n_jobs=jobs, prefer="threads")(delayed(job)(p, t) for p, t in pairs)
        return collect(pairs, results, len(points), len(tasks))


class NaiveSVM(_Naive):
    """``SVC(**params)`` refitted from the raw features for each point and task."""

    name = "svm-sklearn"

    def fit_predict(self, params, train, test):
        model = _maybe_scaled(SVC(**params), self.standardize)
        return model.fit(self.X[train], self.y[train]).predict(self.X[test])


class NaiveELM(_Naive):
    """``ELMClassifier(n_hidden=k, random_state=seed)`` refitted for each point and task."""

    name = "elm-estimator"

    def __init__(self, X, y, n_classes, seed, alpha=0.0, input_scale=1.0, standardize=False):
        super().__init__(X, y, standardize)
        self.seed, self.alpha, self.input_scale = seed, alpha, input_scale

    def fit_predict(self, params, train, test):
        elm = ELMClassifier(n_hidden=int(params["n_hidden"]), alpha=self.alpha,
                            input_scale=self.input_scale, random_state=self.seed)
        model = _maybe_scaled(elm, self.standardize)
        return model.fit(self.X[train], self.y[train]).predict(self.X[test])


class FreshELM(NaiveELM):
    """The study's ELM as its code ran it (``--as-published``): a hidden layer drawn anew at every fit.

    elmarc builds ``GenELMClassifier(hidden_layer=RandomLayer(n_hidden=...))`` without a random state
    and hands it to ``cross_val_score`` (each fold a new draw) or fits it once more for the test set
    (src/main.py), so the network scored on test is not the one that won on validation. Here each fit's
    draw is seeded by the run's seed, the number of units and the fit's training and test clips (a
    SHA-256 of them), so every fit has its own layer and the same inputs still give the same bytes.
    """

    name = "elm-fresh-per-fit"

    def fit_draw(self, n_hidden: int, train, test) -> int:
        """The seed of one fit's hidden layer."""
        import hashlib
        h = hashlib.sha256(f"{self.seed}|{int(n_hidden)}|".encode())
        h.update(np.asarray(train, dtype=np.int64).tobytes())
        h.update(b"|")
        h.update(np.asarray(test, dtype=np.int64).tobytes())
        return int.from_bytes(h.digest()[:8], "little")

    def fit_predict(self, params, train, test):
        n_hidden = int(params["n_hidden"])
        elm = ELMClassifier(n_hidden=n_hidden, alpha=self.alpha, input_scale=self.input_scale,
                            random_state=self.fit_draw(n_hidden, train, test))
        model = _maybe_scaled(elm, self.standardize)
        return model.fit(self.X[train], self.y[train]).predict(self.X[test])


class HpelmELM(NaiveELM):
    """hpelm 1.0.10 with a registered ReLU neuron, fed the hidden layer ``ELMClassifier`` would draw.

    hpelm has no pseudo-inverse (normal equations with a ``50 eps`` ridge), so where the hidden layer is
    rank deficient (more units than training clips) its answers can differ from the study's.
    """

    name = "elm-hpelm"

    def fit_predict(self, params, train, test):
        X_train, X_test = self.X[train].astype(np.float64), self.X[test].astype(np.float64)
        if self.standardize:
            scaler = StandardScaler().fit(X_train)
            X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
        W, b = draw_hidden(self.X.shape[1], int(params["n_hidden"]), self.seed)
        n_classes = int(self.y.max()) + 1
        out = hpelm_fit_predict(X_train, self.y[train], n_classes, X_test, W * self.input_scale, b)
        return np.argmax(out, axis=1)


def straightforward_cv_best(X, y, fold, svm_grid, elm_grid, seed=0, jobs=1, weighting="pooled"):
    """The reference code's cv-best: ``GridSearchCV`` over predefined folds for the SVM and the ELM.

    ``weighting="pooled"`` scores each point as the study's scikit-learn did (``GridSearchCV(iid=True)``,
    the default before 0.22): the fold scores averaged with the folds' test sizes as weights, the
    first best point winning; ``"mean"`` is today's ``GridSearchCV`` (``best_params_``, ``best_score_``).
    Returns ``{"svm": (best_params, best_score), "elm": (best_params, best_score)}``; a grid given as
    None is skipped.
    """
    if weighting not in ("pooled", "mean"):
        raise ValueError(f"unknown weighting {weighting!r}; expected 'pooled' or 'mean'")
    fold = np.asarray(fold)
    cv = PredefinedSplit(fold - 1)
    sizes = np.array([np.sum(fold == k) for k in np.unique(fold)], dtype=np.float64)
    out = {}
    for name, est, grid in (("svm", SVC(), svm_grid),
                            ("elm", ELMClassifier(random_state=seed), elm_grid)):
        if grid is None:
            continue
        search = GridSearchCV(est, grid, cv=cv, scoring="accuracy", n_jobs=jobs, refit=False,
                              error_score=np.nan).fit(X, y)
        if weighting == "mean":
            out[name] = (search.best_params_, float(search.best_score_))
            continue
        res = search.cv_results_
        split = np.array([res[f"split{k}_test_score"] for k in range(len(sizes))]).T  # (points, folds)
        scores = np.average(split, axis=1, weights=sizes)
        best = int(np.argmax(np.where(np.isfinite(scores), scores, -np.inf)))
        out[name] = (res["params"][best], float(scores[best]))
    return out
