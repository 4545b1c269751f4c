"""Time the study grid (32 SVM + 6 ELM configurations, cv-best over predefined folds) two ways.

The straightforward way is the reference code's: ``GridSearchCV(SVC(), SVM_GRID)`` and ``GridSearchCV``
over ELM sizes, every kernel and hidden layer refitted per point and fold. The fast way is
``classifiers.kernels``. Both run on the same random US8K-shaped features in one process. The
straightforward way can be limited to its first ``--straightforward-folds`` folds (it takes hours on
8732 x 3584 on a small machine); its full time is then extrapolated linearly in folds, which the output
says, and the per-fold accuracies of every grid point are compared on the folds both ran.

    python -m benchmarks.bench_grid --clips 4180 --folds 10 --straightforward-folds 10
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.model_selection import GridSearchCV

from classifiers.elm import ELMClassifier
from classifiers.featureset import synthetic_feature_set
from classifiers.grids import ELM_GRID, SVM_GRID, grid_points
from classifiers.kernels import FastELM, FastSVM
from classifiers.protocols import evaluate


def straightforward(X, y, fold, n_folds, jobs, seed):
    """Per-point, per-fold accuracies (n_points, n_folds) of GridSearchCV on the first n_folds folds."""
    cv = [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(1, n_folds + 1)]
    out = {}
    for name, est, grid in (("svm", __import__("sklearn.svm").svm.SVC(), SVM_GRID),
                            ("elm", ELMClassifier(random_state=seed), ELM_GRID)):
        t0 = time.perf_counter()
        search = GridSearchCV(est, grid, cv=cv, scoring="accuracy", n_jobs=jobs, refit=False).fit(X, y)
        scores = np.stack([search.cv_results_[f"split{i}_test_score"] for i in range(n_folds)], axis=1)
        out[name] = (scores, time.perf_counter() - t0)
    return out


def fast(X, y, fold, n_classes, jobs, seed):
    out = {}
    for name, scorer, grid in (("svm", FastSVM(X, y), SVM_GRID),
                               ("elm", FastELM(X, y, n_classes, seed), ELM_GRID)):
        t0 = time.perf_counter()
        res = evaluate(scorer, grid_points(grid), y, ["cv-best"], fold=fold, jobs=jobs, desc=name)
        out[name] = (res["cv-best"], time.perf_counter() - t0, getattr(scorer, "solver_counts", None))
    return out


def bench(clips=4180, features=3584, classes=10, folds=10, straightforward_folds=1, jobs=1, seed=0,
          separation=2.0):
    d = synthetic_feature_set(n_clips=clips, n_features=features, n_classes=classes, n_folds=folds,
                              separation=separation, seed=seed)
    X, fold = d["X"], d["fold"]
    y = np.unique(d["y"], return_inverse=True)[1]
    print(f"problem: {clips} clips x {features} features, {classes} classes, {folds} folds; jobs={jobs}")
    f = fast(X, y, fold, classes, jobs, seed)
    n = min(straightforward_folds, folds)
    s = straightforward(X, y, fold, n, jobs, seed)
    total_fast = total_slow = 0.0
    for name in ("svm", "elm"):
        res, t_fast, counts = f[name]
        scores, t_slow = s[name]
        t_full = t_slow * folds / n
        same = np.array_equal(res["fold_scores"][:, :n], scores)
        best_slow = int(np.argmax(scores.mean(axis=1))) if n == folds else None
        print(f"{name}: fast {t_fast:.1f} s (all {folds} folds, selected {grid_points(SVM_GRID if name == 'svm' else ELM_GRID)[res['selected']]}, "
              f"cv-best {100 * res['accuracy']:.2f} %{', solvers ' + str(counts) if counts else ''}); "
              f"straightforward {t_slow:.1f} s on {n} fold(s)"
              + (f" -> {t_full:.1f} s extrapolated to {folds}" if n < folds else "")
              + f"; per-fold accuracies of all points identical on the shared folds: {same}"
              + (f"; same selection: {best_slow == res['selected']}" if best_slow is not None else ""))
        total_fast += t_fast
        total_slow += t_full
    label = "extrapolated " if n < folds else ""
    print(f"whole grid: straightforward {label}{total_slow:.1f} s, fast {total_fast:.1f} s, "
          f"ratio {total_slow / total_fast:.1f}x")
    return total_slow / total_fast


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--clips", type=int, nargs="+", default=[4180, 8732])
    parser.add_argument("--features", type=int, default=3584)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--straightforward-folds", type=int, default=1,
                        help="folds the straightforward way runs (its time is extrapolated to all)")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for clips in args.clips:
        bench(clips, args.features, args.classes, args.folds, args.straightforward_folds, args.jobs,
              args.seed)


if __name__ == "__main__":
    main()
