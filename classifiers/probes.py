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
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.multiclass import OneVsRestClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

__all__ = ["LinearProbe", "KNNProbe", "LINEAR_MAX_ITER", "KNN_K", "collect", "MULTILABEL_CLASSIFIERS", "tag_matrix",
           "multilabel_scores", "one_vs_rest_model", "one_vs_rest_scores", "evaluate_multilabel",
           "multilabel_entries", "multilabel_csv", "multilabel_table"]

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


# ----------------------------------------------------------------------------- multi-label (a tags manifest)

MULTILABEL_CLASSIFIERS = ("svm", "linear", "knn")  # the ELM has no per-tag score here: not run


def tag_matrix(labels, sep=";", tags=None):
    """``(tags, Y)``: the sorted tags of ``labels`` (each a clip's tags joined by ``sep``, as
    ``audiodata.datasets`` stores them) and ``Y`` (n_clips, n_tags), 1 where a clip has the tag."""
    lists = [str(v).split(sep) for v in labels]
    tags = sorted({t for ts in lists for t in ts}) if tags is None else list(tags)
    col = {t: i for i, t in enumerate(tags)}
    Y = np.zeros((len(lists), len(tags)), dtype=np.int64)
    for i, ts in enumerate(lists):
        Y[i, [col[t] for t in ts]] = 1
    return tags, Y


def multilabel_scores(Y_true, S, tags) -> dict:
    """Macro ROC-AUC and PR-AUC (``roc_auc_score`` / ``average_precision_score``, ``average="macro"``) of
    the scores ``S`` (n_clips, n_tags) over the tags whose test clips hold both classes; the others are
    excluded and named (``tags_excluded``). Both None when no tag can be scored."""
    Y_true, S = np.asarray(Y_true), np.asarray(S, dtype=np.float64)
    keep = np.array([len(np.unique(Y_true[:, j])) == 2 for j in range(Y_true.shape[1])], dtype=bool)
    out = {"tags_scored": int(keep.sum()), "tags_excluded": [t for t, k in zip(tags, keep) if not k]}
    if not keep.any():
        return {**out, "roc_auc": None, "pr_auc": None}
    return {**out, "roc_auc": float(roc_auc_score(Y_true[:, keep], S[:, keep], average="macro")),
            "pr_auc": float(average_precision_score(Y_true[:, keep], S[:, keep], average="macro"))}


def one_vs_rest_model(name, params, n_train, standardize=False):
    """The one-vs-rest probe of ``name`` (``OneVsRestClassifier``: one binary fit per tag): ``linear`` the
    standardised logistic regression of ``C``, ``knn`` the cosine k-NN (score: the fraction of the k
    neighbours with the tag), ``svm`` ``SVC(**params)`` (score: its decision function)."""
    if name == "linear":
        return make_pipeline(StandardScaler(), OneVsRestClassifier(_logistic(params["C"])))
    if name == "knn":
        est = OneVsRestClassifier(_knn(params, n_train))
    elif name == "svm":
        est = OneVsRestClassifier(SVC(**params))
    else:
        raise ValueError(f"classifier {name!r} has no multi-label probe; available: "
                         f"{', '.join(MULTILABEL_CLASSIFIERS)}")
    return make_pipeline(StandardScaler(), est) if standardize else est


def one_vs_rest_scores(name, params, X_train, Y_train, X_test, standardize=False):
    """Per-tag scores (n_test, n_tags) of the one-vs-rest probe fitted on ``(X_train, Y_train)``; a tag
    that is constant in the training clips gets a constant score (scikit-learn's constant predictor)."""
    model = one_vs_rest_model(name, params, len(X_train), standardize)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", message="Label .* is present in all training examples")
        model.fit(X_train, Y_train)
        if name == "knn":
            return model.predict_proba(X_test)
        return model.decision_function(X_test).reshape(len(X_test), -1)


def evaluate_multilabel(name, points, X, Y, tags, protocols, portions=(None, None), standardize=False):
    """The protocols of ``classifiers/protocols.py`` with macro ROC-AUC selecting and scoring:
    ``split`` selects on val, scores test; ``cv-best`` the point of the best mean fold ROC-AUC and its
    fold means; ``nested-cv`` per outer fold the point of the best mean ROC-AUC over the other folds (each
    held out from a model of the rest), scored on the outer fold, averaged. Returns protocol ->
    ``{selected, roc_auc, pr_auc, fold_roc_auc, fold_pr_auc, tags_scored, tags_excluded, scores,
    test_index, S}`` (None when every point failed) and ``"failed"``: {point index: reason}.
    ``portions`` is the feature set's ``(split, fold)`` (either may be None)."""
    split, fold = portions
    X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y)
    failed: dict[int, str] = {}
    cache = {}

    def fit(p, train, test):
        key = (p, train.tobytes(), test.tobytes())
        if key not in cache:
            try:
                S = one_vs_rest_scores(name, points[p], X[train], Y[train], X[test], standardize)
                cache[key] = (S, multilabel_scores(Y[test], S, tags))
            except Exception as e:  # a failed point is recorded and never wins
                failed.setdefault(p, _describe(e))
                cache[key] = (None, {"roc_auc": None, "pr_auc": None, "tags_scored": 0, "tags_excluded": []})
        return cache[key]

    def best(scores):
        scores = np.array([np.nan if s is None else s for s in scores], dtype=np.float64)
        scores[[p in failed for p in range(len(points))]] = np.nan
        return (-1 if not np.isfinite(scores).any() else int(np.nanargmax(scores))), scores

    out = {}
    if split is not None:
        split = np.asarray(split)
        train, val, test = (np.flatnonzero(split == s) for s in ("train", "val", "test"))
        b, scores = best([fit(p, train, val)[1]["roc_auc"] for p in range(len(points))])
        if b < 0:
            return {"failed": failed, "split": None}
        S, m = fit(b, train, test)
        out["split"] = {"selected": b, "roc_auc": m["roc_auc"], "pr_auc": m["pr_auc"], "fold_roc_auc": None,
                        "fold_pr_auc": None, "tags_scored": m["tags_scored"], "tags_excluded": m["tags_excluded"],
                        "scores": scores, "validation_roc_auc": float(scores[b]), "test_index": test, "S": S}
        out["failed"] = failed
        return out
    fold = np.asarray(fold)
    folds = np.unique(fold)

    def outer(p, k):
        return fit(p, np.flatnonzero(fold != folds[k]), np.flatnonzero(fold == folds[k]))

    def result(chosen, scores):
        ms = [outer(chosen[k], k) for k in range(len(folds))]
        rocs, prs = [m["roc_auc"] for _, m in ms], [m["pr_auc"] for _, m in ms]
        finite = lambda v: [x for x in v if x is not None]  # noqa: E731
        top = max(chosen.count(c) for c in chosen)
        return {"selected": min(c for c in chosen if chosen.count(c) == top),  # the mode, lowest on ties
                "selected_per_fold": chosen, "roc_auc": float(np.mean(finite(rocs))) if finite(rocs) else None,
                "pr_auc": float(np.mean(finite(prs))) if finite(prs) else None,
                "fold_roc_auc": rocs, "fold_pr_auc": prs, "tags_scored": [m["tags_scored"] for _, m in ms],
                "tags_excluded": [m["tags_excluded"] for _, m in ms], "scores": scores,
                "test_index": np.concatenate([np.flatnonzero(fold == f) for f in folds]),
                "S": None if any(S is None for S, _ in ms) else np.concatenate([S for S, _ in ms])}

    def mean_roc(p, ks):
        v = [outer(p, k)[1]["roc_auc"] if inner is None else inner(p, *k)[1]["roc_auc"] for k in ks]
        return None if any(x is None for x in v) else float(np.mean(v))

    inner = None
    if "cv-best" in protocols:
        b, scores = best([mean_roc(p, range(len(folds))) for p in range(len(points))])
        out["cv-best"] = None if b < 0 else {**result([b] * len(folds), scores), "selected_per_fold": None}
    if "nested-cv" in protocols:
        def inner(p, k, j):  # trained without folds k and j, scored on j
            return fit(p, np.flatnonzero((fold != folds[k]) & (fold != folds[j])), np.flatnonzero(fold == folds[j]))
        chosen, all_scores = [], []
        for k in range(len(folds)):
            b, scores = best([mean_roc(p, [(k, j) for j in range(len(folds)) if j != k])
                              for p in range(len(points))])
            chosen.append(b)
            all_scores.append(scores)
        out["nested-cv"] = None if min(chosen) < 0 else result(chosen, np.array(all_scores))
    out["failed"] = failed
    return out


MULTILABEL_CSV_FIELDS = ["dataset", "arch", "width", "weights", "classifier", "protocol", "optimistic", "seed",
                         "features", "roc_auc", "pr_auc", "tags_scored", "tags_excluded", "selected",
                         "mean_roc_auc", "mean_pr_auc", "n_runs", "total_s"]


def multilabel_entries(names, runs, protocols, grids, standardize, optimistic, note=print):
    """The results' entries (``classifiers.grid.run_grid``) of a multi-label feature set: per classifier of
    ``names`` that has a one-vs-rest probe and protocol, the runs (one per seed) with ``roc_auc`` and
    ``pr_auc`` in place of ``accuracy`` (which is None), their tags scored and excluded, and the mean."""
    import time

    from .grids import grid_points
    entries = []
    for name in names:
        if name not in MULTILABEL_CLASSIFIERS:
            note(f"{name}: not run on a multi-label dataset (one-vs-rest probes: {', '.join(MULTILABEL_CLASSIFIERS)})")
            continue
        points = grid_points(grids[name])
        per = {p: {"runs": [], "failed_points": [], "total_s": 0.0} for p in protocols}
        for run_sets in runs:
            if len(run_sets) > 1:
                raise ValueError("multi-label feature sets with one model per fold are not supported; extract "
                                 "one feature set per seed")
            fs = run_sets[0]
            sep = fs.meta["multilabel"]["separator"]
            tags, Y = tag_matrix(fs.y, sep, fs.meta["multilabel"].get("tags"))
            t0 = time.perf_counter()
            res = evaluate_multilabel(name, points, fs.X, Y, tags, protocols, portions=(fs.split, fs.fold),
                                      standardize=standardize)
            seconds = time.perf_counter() - t0
            for p in protocols:
                slot = per[p]
                slot["total_s"] += seconds
                slot["failed_points"] += [{"params": dict(points[i]), "reason": why, "seed": fs.meta.get("seed")}
                                          for i, why in sorted(res["failed"].items())]
                r = res[p]
                if r is None:
                    slot.setdefault("errors", []).append(f"seed {fs.meta.get('seed')}: every grid point failed")
                    continue
                test = r["test_index"]
                run = {"seed": fs.meta.get("seed"), "features": str(fs.path), "accuracy": None,
                       "metric": "roc_auc", "roc_auc": r["roc_auc"], "pr_auc": r["pr_auc"],
                       "fold_roc_auc": r["fold_roc_auc"], "fold_pr_auc": r["fold_pr_auc"],
                       "tags": tags, "tags_scored": r["tags_scored"], "tags_excluded": r["tags_excluded"],
                       "selected": dict(points[r["selected"]]), "engine": f"one-vs-rest-{name}",
                       "timings": {"total_s": seconds},
                       "grid_scores": [{"params": dict(points[i]), "score": None if not np.isfinite(v) else float(v)}
                                       for i, v in enumerate(np.atleast_2d(r["scores"])[0])],
                       "predictions": {"ids": fs.ids[test].tolist(), "y_true": Y[test].tolist(),
                                       "scores": None if r["S"] is None else np.asarray(r["S"]).tolist()}}
                if r.get("selected_per_fold") is not None:
                    run["selected_per_fold"] = [dict(points[i]) for i in r["selected_per_fold"]]
                slot["runs"].append(run)
        for p in protocols:
            slot = per[p]
            roc = [r["roc_auc"] for r in slot["runs"] if r["roc_auc"] is not None]
            pr = [r["pr_auc"] for r in slot["runs"] if r["pr_auc"] is not None]
            entry = {"classifier": name, "protocol": p, "optimistic": optimistic[p], "multilabel": True,
                     "metric": "roc_auc", "runs": slot["runs"],
                     "mean": float(np.mean(roc)) if roc else None,  # the macro ROC-AUC, not an accuracy
                     "std": float(np.std(roc, ddof=1)) if len(roc) > 1 else None,
                     "mean_pr_auc": float(np.mean(pr)) if pr else None,
                     "std_pr_auc": float(np.std(pr, ddof=1)) if len(pr) > 1 else None,
                     "n_runs": len(slot["runs"]), "failed_points": slot["failed_points"],
                     "timings": {"total_s": slot["total_s"]}, "standardize": standardize,
                     "fold_weighting": {"cv-best": "mean", "nested-cv": "mean"}.get(p)}
            if "errors" in slot:
                entry["errors"] = slot["errors"]
            entries.append(entry)
    return entries


def multilabel_csv(results) -> str:
    """``results.csv`` of a multi-label results file: ROC-AUC and PR-AUC columns instead of accuracy."""
    import csv
    import io
    import json
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=MULTILABEL_CSV_FIELDS)
    writer.writeheader()
    for e in results["entries"]:
        for r in e["runs"]:
            excluded = r["tags_excluded"]
            writer.writerow({"dataset": results["dataset"], "arch": results["arch"], "width": results["width"],
                             "weights": results["weights"], "classifier": e["classifier"],
                             "protocol": e["protocol"], "optimistic": e["optimistic"], "seed": r["seed"],
                             "features": r["features"], "roc_auc": r["roc_auc"], "pr_auc": r["pr_auc"],
                             "tags_scored": json.dumps(r["tags_scored"]), "tags_excluded": json.dumps(excluded),
                             "selected": json.dumps(r["selected"]), "mean_roc_auc": e["mean"],
                             "mean_pr_auc": e["mean_pr_auc"], "n_runs": e["n_runs"],
                             "total_s": round(r["timings"]["total_s"], 3)})
    return buf.getvalue()


def multilabel_table(results) -> str:
    """The grid's text table for a multi-label results file: macro ROC-AUC and PR-AUC (mean over runs)."""
    lines = [f"{'classifier':<10} {'protocol':<10} {'ROC-AUC':>8} {'PR-AUC':>8} {'runs':>4}  tags excluded (first run)"]
    for e in results["entries"]:
        roc = "failed" if e["mean"] is None else f"{e['mean']:.4f}"
        pr = "-" if e["mean_pr_auc"] is None else f"{e['mean_pr_auc']:.4f}"
        excl = e["runs"][0]["tags_excluded"] if e["runs"] else "-"
        lines.append(f"{e['classifier']:<10} {e['protocol']:<10} {roc:>8} {pr:>8} {e['n_runs']:>4}  {excl}")
    return "\n".join(lines)
