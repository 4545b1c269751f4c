"""Evaluation protocols: which clips train, which select, which are scored.

- ``split`` (GTZAN): every point is fitted on ``train`` and scored on ``val``; the best is fitted on
  ``train`` again and scored on ``test`` (the test clips are touched once, after selection).
- ``cv-best`` (Ballroom, US8K, as published): the point with the best accuracy over the predefined
  folds, and that accuracy. Optimistic: the same folds select and score. By default the folds are
  pooled (``weighting="pooled"``: the accuracy over every held-out prediction, i.e. folds weighted by
  their size), as the study's scikit-learn computed it (``GridSearchCV``'s ``iid=True``, its default
  until 0.22); ``weighting="mean"`` is the unweighted mean of fold accuracies (``GridSearchCV`` today).
  The two differ when folds differ in size (UrbanSound8K's folds hold 806 to 990 clips).
- ``nested-cv``: for each outer fold, the point with the best mean accuracy over the other folds (each
  held out in turn from a model trained on the rest of them) is scored on the outer fold, which no
  selection ever saw. The honest number.

Ties go to the first point in grid order, as in ``GridSearchCV``; fold means are ``np.average`` of
``accuracy_score`` values in fold order (weighted by fold size for pooled ``cv-best``), again as
``GridSearchCV`` computes them, so a straightforward grid search selects the same point. Failed points
(see ``failed``) never win.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

import numpy as np
from sklearn.metrics import accuracy_score
from tqdm.auto import tqdm

__all__ = ["EvalOptions", "PROTOCOLS", "CV_WEIGHTINGS", "choose_protocols", "evaluate", "cv_best"]

PROTOCOLS = ("split", "cv-best", "nested-cv")
OPTIMISTIC = {"split": False, "cv-best": True, "nested-cv": False}
CV_WEIGHTINGS = ("pooled", "mean")  # cv-best: folds weighted by size (the study's), or unweighted


def choose_protocols(protocol: str, kind: str) -> list[str]:
    """Protocols to run for ``--protocol`` on a feature set whose partition is ``kind``.

    ``auto`` gives ``split`` for split datasets and ``cv-best`` plus ``nested-cv`` for folds.
    """
    if protocol == "auto":
        return ["split"] if kind == "split" else ["cv-best", "nested-cv"]
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; available: auto, {', '.join(PROTOCOLS)}")
    if (protocol == "split") != (kind == "split"):
        need = "train/val/test split" if protocol == "split" else "fold numbers"
        raise ValueError(f"protocol {protocol!r} needs a feature set with a {need}, found {kind}")
    return [protocol]


def _best(scores: np.ndarray) -> int:
    """First index of the highest finite score (GridSearchCV's tie-break); -1 if none is finite."""
    scores = np.where(np.isfinite(scores), scores, -np.inf)
    return -1 if not np.isfinite(scores).any() else int(np.argmax(scores))


def _acc(y_true, y_pred) -> float:
    return float("nan") if y_pred is None else float(accuracy_score(y_true, y_pred))


def cv_best(outer: np.ndarray, oof_index: np.ndarray, oof, fold_sizes=None, weighting: str = "pooled") -> dict | None:
    """The ``cv-best`` result from ``outer[p, k]`` (accuracy of point p on fold k): the point with the
    best accuracy over the folds (first in grid order on ties); ``oof(selection)`` gives the out-of-fold
    predictions of one point per fold. ``None`` when every point failed.

    Parameters
    ----------
    outer : ndarray (n_points, n_folds)
    oof_index : ndarray (n_scored,)
    oof : callable
    fold_sizes : sequence of int (n_folds,)
        Test clips per fold; needed for ``weighting="pooled"``.
    weighting : {"pooled", "mean"}
        ``pooled``: ``np.average`` of the fold accuracies weighted by ``fold_sizes``, which is the
        accuracy over all held-out predictions (the study's); ``mean``: the unweighted mean.
    """
    if weighting not in CV_WEIGHTINGS:
        raise ValueError(f"unknown cv-best weighting {weighting!r}; expected one of {', '.join(CV_WEIGHTINGS)}")
    weights = None
    if weighting == "pooled":
        if fold_sizes is None or len(fold_sizes) != outer.shape[1]:
            raise ValueError(f"cv-best weighting 'pooled' needs the size of each of the {outer.shape[1]} folds")
        weights = np.asarray(fold_sizes, dtype=np.float64)
    scores = np.average(outer, axis=1, weights=weights)
    best = _best(scores)
    if best < 0:
        return None
    return {"selected": best, "selected_per_fold": None, "accuracy": float(scores[best]), "weighting": weighting,
            "fold_accuracies": outer[best].tolist(), "scores": scores, "fold_scores": outer,
            "test_index": oof_index, "y_pred": oof([best] * outer.shape[1])}


@dataclass(frozen=True)
class EvalOptions:
    """How ``evaluate`` runs: ``jobs`` parallel fits, the progress bar (``progress``, labelled ``desc``),
    and how ``cv-best`` combines its folds (``cv_weighting``: ``pooled`` or ``mean``)."""
    jobs: int = 1
    desc: str | None = None
    progress: bool = True
    cv_weighting: str = "pooled"


def evaluate(scorer, points, y, protocols, split=None, fold=None, options: EvalOptions | None = None, **changes):
    """Run ``protocols`` for one feature set with ``scorer`` (see ``kernels.py``).

    Parameters
    ----------
    scorer : object with ``run(points, tasks, jobs, progress)``
    points : list of dict, grid points in grid order
    y : ndarray of int (n_clips,), class indices
    protocols : list of str
    split : ndarray of str (n_clips,) or None
    fold : ndarray of int (n_clips,) or None
    options : EvalOptions
        ``jobs``, ``desc`` (progress-bar label), ``progress`` and ``cv_weighting`` ({"pooled", "mean"}:
        how ``cv-best`` combines the folds, see :func:`cv_best`); keyword ``changes`` set them one by one.

    Returns
    -------
    dict protocol -> {selected (index), selected_per_fold, accuracy, fold_accuracies, scores (n_points,),
    test_index (n_scored,), y_pred (n_scored,)} and key ``"failed"``: {point index: reason}.
    """
    o = options or EvalOptions()
    o = replace(o, **changes) if changes else o
    jobs, desc, progress, cv_weighting = o.jobs, o.desc, o.progress, o.cv_weighting
    y = np.asarray(y)
    if split is not None:
        return _split(scorer, points, y, np.asarray(split), jobs, desc, progress)
    fold = np.asarray(fold)
    folds = np.unique(fold)
    tasks = [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in folds]
    pairs = {}
    if "nested-cv" in protocols:
        for a in range(len(folds)):
            for b in range(a + 1, len(folds)):
                pairs[a, b] = len(tasks)
                tasks.append((np.flatnonzero((fold != folds[a]) & (fold != folds[b])),
                              np.flatnonzero((fold == folds[a]) | (fold == folds[b]))))
    with tqdm(total=len(points) * len(tasks), desc=desc, disable=not progress, leave=False) as bar:
        pred, failed = scorer.run(points, tasks, jobs=jobs, progress=bar)
    for p in failed:  # a point that failed anywhere is out of every selection
        pred[p] = [None] * len(tasks)
    n_folds = len(folds)
    # outer[p, k]: accuracy on fold k of point p trained on every other fold
    outer = np.array([[_acc(y[tasks[k][1]], pred[p][k]) for k in range(n_folds)]
                      for p in range(len(points))])
    out = {"failed": failed}
    oof_index = np.concatenate([tasks[k][1] for k in range(n_folds)])

    def oof(selection):  # out-of-fold predictions of the point selected for each fold
        return np.concatenate([pred[selection[k]][k] for k in range(n_folds)])

    if "cv-best" in protocols:
        out["cv-best"] = cv_best(outer, oof_index, oof, [len(tasks[k][1]) for k in range(n_folds)], cv_weighting)
    if "nested-cv" in protocols:
        chosen, inner_scores = [], []
        for k in range(n_folds):
            inner = np.full((len(points), n_folds - 1), np.nan)
            for p in range(len(points)):
                for col, j in enumerate(i for i in range(n_folds) if i != k):
                    t = pairs[min(j, k), max(j, k)]
                    test = tasks[t][1]
                    mine = fold[test] == folds[j]  # score fold j only; fold k is never looked at
                    if pred[p][t] is not None:
                        inner[p, col] = _acc(y[test][mine], pred[p][t][mine])
            scores = np.average(inner, axis=1)
            chosen.append(_best(scores))
            inner_scores.append(scores)
        if min(chosen) < 0:
            out["nested-cv"] = None
        else:
            accs = [float(outer[chosen[k], k]) for k in range(n_folds)]
            mode = Counter(chosen).most_common()
            top = max(c for _, c in mode)
            out["nested-cv"] = {
                "selected": min(p for p, c in mode if c == top), "selected_per_fold": chosen,
                "accuracy": float(np.mean(accs)), "fold_accuracies": accs,
                "scores": np.array(inner_scores), "test_index": oof_index, "y_pred": oof(chosen)}
    return out


def _split(scorer, points, y, split, jobs, desc, progress):
    train, val, test = (np.flatnonzero(split == s) for s in ("train", "val", "test"))
    with tqdm(total=len(points) + 1, desc=desc, disable=not progress, leave=False) as bar:
        pred, failed = scorer.run(points, [(train, val)], jobs=jobs, progress=bar)
        scores = np.array([_acc(y[val], pred[p][0]) for p in range(len(points))])
        best = _best(scores)
        if best < 0:
            return {"failed": failed, "split": None}
        final, final_failed = scorer.run([points[best]], [(train, test)], jobs=jobs, progress=bar)
    if final_failed:
        failed = {**failed, best: final_failed[0]}
        return {"failed": failed, "split": None}
    y_pred = final[0][0]
    return {"failed": failed, "split": {
        "selected": best, "selected_per_fold": None, "accuracy": _acc(y[test], y_pred),
        "fold_accuracies": None, "scores": scores, "validation_accuracy": float(scores[best]),
        "test_index": test, "y_pred": y_pred}}
