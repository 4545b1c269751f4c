"""Trained front-ends on cross-validated datasets: fold k is scored only with fold k's own model.

``trained.train`` trains one model per held-out fold, and ``features.extract --weights`` writes one feature
set per model (``meta.model_fold`` = the fold it never saw). A run of the grid is then the K feature sets
of one seed: for outer fold k, every classifier is trained on the other folds' features *from model k*
and scores fold k's features from model k, so no clip is ever scored through a model that trained on it.

- ``cv-best``: accuracy of point p on fold k comes from model k; the point with the best mean over the
  folds is selected (optimistic, as for random features).
- ``nested-cv``: for outer fold k the point is chosen by inner cross-validation over the other folds
  with model k's features (that model trained on those clips, so the inner scores are optimistic, but
  the selection never sees fold k), then scored on fold k.

Costs K times the grid of a random-feature run: each model's features get their own kernels.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from tqdm.auto import tqdm

from .protocols import EvalOptions, _acc, cv_best, evaluate

__all__ = ["group_runs", "evaluate_per_fold"]


def group_runs(sets) -> list[list]:
    """Group feature sets into runs: one set per run, or the K per-fold sets of one seed per run.

    Raises ``ValueError`` for a mix of per-fold and whole-dataset sets, per-fold sets of a split
    dataset, a fold given twice for one seed, or a seed whose models do not cover every fold.
    """
    model_folds = [fs.meta.get("model_fold") for fs in sets]
    if all(f is None for f in model_folds):
        return [[fs] for fs in sets]
    if any(f is None for f in model_folds):
        mixed = [str(fs.path) for fs in sets if fs.meta.get("model_fold") is None]
        raise ValueError("per-fold trained feature sets cannot be mixed with whole-dataset ones: "
                         f"{', '.join(mixed[:3])} have no model_fold")
    first = sets[0]
    if first.kind == "split":
        raise ValueError(f"{first.path}: a model trained for one fold (model_fold "
                         f"{first.meta['model_fold']}) cannot be evaluated on a train/val/test split")
    folds = [int(k) for k in np.unique(first.fold)]
    by_seed: dict = {}
    for fs in sets:
        seed, k = fs.meta.get("seed", 0), int(fs.meta["model_fold"])
        if k in by_seed.setdefault(seed, {}):
            raise ValueError(f"seed {seed}: two feature sets for the model of fold {k}: "
                             f"{by_seed[seed][k].path} and {fs.path}")
        by_seed[seed][k] = fs
    for seed, per in sorted(by_seed.items()):
        missing = [k for k in folds if k not in per]
        extra = [k for k in per if k not in folds]
        if missing or extra:
            raise ValueError(
                f"seed {seed}: the per-fold trained feature sets must hold one model per fold "
                f"{folds}; missing the models of folds {missing}" + (f", unknown folds {extra}" if extra
                else "") + " (train them with `python -m trained.train --fold K`, then extract each)")
    return [[per[k] for k in folds] for _, per in sorted(by_seed.items())]


def evaluate_per_fold(make_scorer, run_sets, points, y, protocols, fold, options: EvalOptions | None = None,
                      **changes):
    """Like ``protocols.evaluate`` for one run of per-fold feature sets (``run_sets[i]`` = fold i's model);
    ``options`` (and ``changes``) as there.

    Returns ``(scorer, results)``: the last scorer made (for its name) and the dict ``evaluate`` returns.
    """
    o = options or EvalOptions()
    o = replace(o, **changes) if changes else o
    jobs, desc, progress, cv_weighting = o.jobs, o.desc, o.progress, o.cv_weighting
    y, fold = np.asarray(y), np.asarray(fold)
    folds = np.unique(fold)
    n_folds, n_points = len(folds), len(points)
    outer = np.full((n_points, n_folds), np.nan)
    fold_pred = []                      # fold_pred[k][p]: predictions of point p on fold k, model k
    failed, nested = {}, []
    scorer = None
    for k, fs in enumerate(run_sets):
        scorer = make_scorer(fs.X)
        task = (np.flatnonzero(fold != folds[k]), np.flatnonzero(fold == folds[k]))
        with tqdm(total=n_points, desc=f"{desc} (model of fold {folds[k]})", disable=not progress,
                  leave=False) as bar:
            pred, bad = scorer.run(points, [task], jobs=jobs, progress=bar)
        failed.update(bad)
        fold_pred.append([None if p in bad else pred[p][0] for p in range(n_points)])
        outer[:, k] = [_acc(y[task[1]], fold_pred[k][p]) for p in range(n_points)]
        if "nested-cv" in protocols:
            res = evaluate(scorer, points, y, ["nested-cv"], fold=fold,
                           options=replace(o, desc=f"{desc} (inner, model of fold {folds[k]})"))
            failed.update(res["failed"])
            nested.append(None if res["nested-cv"] is None else
                          (res["nested-cv"]["selected_per_fold"][k], res["nested-cv"]["scores"][k]))
    for p in failed:
        outer[p] = np.nan
    oof_index = np.concatenate([np.flatnonzero(fold == k) for k in folds])
    out = {"failed": failed}

    def oof(selection):
        return np.concatenate([fold_pred[k][selection[k]] for k in range(n_folds)])

    if "cv-best" in protocols:
        out["cv-best"] = cv_best(outer, oof_index, oof, [int(np.sum(fold == k)) for k in folds], cv_weighting)
    if "nested-cv" in protocols:
        if any(n is None or n[0] in failed for n in nested):
            out["nested-cv"] = None
        else:
            chosen = [int(n[0]) for n in nested]
            accs = [float(outer[chosen[k], k]) for k in range(n_folds)]
            values, counts = np.unique(chosen, return_counts=True)
            out["nested-cv"] = {
                "selected": int(values[np.argmax(counts)]), "selected_per_fold": chosen,
                "accuracy": float(np.mean(accs)), "fold_accuracies": accs,
                "scores": np.array([n[1] for n in nested]), "test_index": oof_index,
                "y_pred": oof(chosen)}
    return scorer, out
