"""``python -m classifiers.grid``: the study's SVM / ELM grids on feature sets, written as results.

Reads one or more feature sets of one architecture (one per seed: the study's 3 runs), runs each
classifier's grid under each protocol and writes ``results.json`` and ``results.csv`` in the format of
``docs/formats.md`` ("Results"). The last line printed is the path of ``results.json``.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from toolkit.cli import HelpFormatter, interruptible, prog  # first: Ctrl-C while importing the rest is one line (toolkit/cli.py)
import numpy as np
from sklearn.metrics import confusion_matrix

from toolkit.provenance import atomic_write_bytes, atomic_write_json, folder_lock, run_record
from toolkit.ray import (RayUnavailable, connect, head_watched, import_ray, is_worker_loss, joblib_backend,
                         live_cpus)
from toolkit.settings import (ENGINES, Settings, SettingsError, add_engine_arguments, check_choice, check_int,
                              check_seed)

from .featureset import check_compatible, load_feature_set
from . import integrity
from .grids import GRIDS, grid_points, resolve_gamma
from .kernels import FastELM, FastSVM, available_cpus
from .layers import per_layer_scores, select_layers
from .per_fold import evaluate_per_fold, group_runs
from .probes import KNNProbe, LinearProbe
from .protocols import CV_WEIGHTINGS, OPTIMISTIC, PROTOCOLS, choose_protocols, evaluate
from .reference import FreshELM, HpelmELM, NaiveELM, NaiveSVM

__all__ = ["GridSettings", "run_grid", "rederive_csv", "main", "ELM_DEFAULTS", "CLASSIFIERS", "Classifier"]

# The study's ELM (Python-ELM GenELMClassifier + RandomLayer, activation 'reclinear', alpha=1).
ELM_DEFAULTS = {"activation": "relu", "hidden_init": "standard normal weights and biases",
                "input_scale": 1.0, "alpha": 0.0, "targets": "-1/+1 per class",
                "output_weights": "pseudo-inverse, singular values below 1e6*eps*s_max dropped"}


@dataclass(frozen=True)
class Classifier:
    """One classifier the grid runs: its grid is ``GRIDS[grid][name]``; ``engines`` maps engine names to
    scorer classes (``classifiers/kernels.py`` has the contract); a ``randomized`` one (a random hidden
    layer) is also given the number of classes and the run's seed."""
    engines: dict
    default_engine: str
    randomized: bool

    def scorer(self, engine, X, y_index, n_classes, seed, standardize):
        cls = self.engines[engine]
        if self.randomized:
            return cls(X, y_index, n_classes, seed, standardize=standardize)
        return cls(X, y_index, standardize=standardize)


# The one table of classifiers: the CLI's choices, "all", and the results read it (docs/adding.md).
CLASSIFIERS = {
    "svm": Classifier({"fast": FastSVM, "sklearn": NaiveSVM}, "fast", randomized=False),
    "elm": Classifier({"fast": FastELM, "estimator": NaiveELM, "fresh": FreshELM, "hpelm": HpelmELM}, "fast",
                      randomized=True),
    "linear": Classifier({"sklearn": LinearProbe}, "sklearn", randomized=False),  # classifiers/probes.py
    "knn": Classifier({"sklearn": KNNProbe}, "sklearn", randomized=False),
}
SVM_ENGINES = CLASSIFIERS["svm"].engines
ELM_ENGINES = CLASSIFIERS["elm"].engines
# What each ELM engine's output weights are: "fast" and "estimator" are the study's ELM; "hpelm" is a
# cross-check only (hpelm solves ridge-regularised normal equations, not the pseudo-inverse).
ELM_ENGINE_ROLE = {"fast": "study", "estimator": "study",
                   "fresh": "study, as its code ran it (a hidden layer drawn anew at every fit)",
                   "hpelm": "cross-check (not the study's ELM: ridge-regularised normal equations, "
                            "hpelm's 50*eps ridge, instead of the pseudo-inverse)"}
# --as-published: how the study's code combined folds (elmarc src/main.py): the SVM through GridSearchCV
# (iid=True, its default then: folds pooled), every other classifier through cross_val_score(...).mean()
PUBLISHED_WEIGHTING = {"svm": "pooled"}
PUBLISHED_ELM_ENGINE = "fresh"
HPELM_OUTPUT_WEIGHTS = "hpelm: normal equations (H'H + 50 eps I)^-1 H'T, a ridge; not the pseudo-inverse"
BACKENDS = ENGINES  # where joblib runs the scorers' parallel fits (--engine)
CSV_FIELDS = ["dataset", "arch", "width", "weights", "classifier", "protocol", "optimistic", "seed",
              "features", "accuracy", "selected", "mean", "std", "n_runs", "engine", "total_s"]


def _selected(points, index, n_features):
    params = dict(points[index])
    if params.get("gamma") == "auto":  # record the number SVC used and where it came from
        params["gamma"] = resolve_gamma("auto", n_features)
        params["gamma_rule"] = "1/n_features"
    return params


def _run_entry(fs, y_index, classes, res, points, scorer_name, seconds):
    """One run's record (docs/formats.md) from a protocol result."""
    n_features = fs.X.shape[1]
    test = res["test_index"]
    y_true, y_pred = classes[y_index[test]], classes[res["y_pred"]]
    cm = confusion_matrix(y_true, y_pred, labels=classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.diag(cm) / cm.sum(axis=1)
    run = {"seed": fs.meta.get("seed"), "features": str(fs.path), "accuracy": res["accuracy"],
           "selected": _selected(points, res["selected"], n_features),
           "fold_accuracies": res["fold_accuracies"],
           "per_class_accuracy": {c: (None if not np.isfinite(a) else float(a))
                                  for c, a in zip(classes, per_class)},
           "labels": classes.tolist(), "confusion": cm.tolist(),
           "predictions": {"ids": fs.ids[test].tolist(), "y_true": y_true.tolist(),
                           "y_pred": y_pred.tolist()},
           "engine": scorer_name, "timings": {"total_s": seconds},
           "grid_scores": [{"params": _selected(points, p, n_features), "score": s}
                           for p, s in enumerate(np.atleast_2d(res["scores"])[0].tolist())]}
    if res["selected_per_fold"] is not None:
        run["selected_per_fold"] = [_selected(points, p, n_features) for p in res["selected_per_fold"]]
        run.pop("grid_scores")  # nested selection has one score table per outer fold
    if "validation_accuracy" in res:
        run["validation_accuracy"] = res["validation_accuracy"]
    return run


def _parallel(backend, address):
    """joblib's Ray backend for ``backend="ray"`` (``toolkit/ray.py``), else joblib's own."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; available: {', '.join(BACKENDS)}")
    if backend == "local":
        return contextlib.nullcontext()
    try:
        connect(address, what="--engine ray")  # here, so a missing Ray or a bad address is a ValueError
    except RayUnavailable as e:
        raise ValueError(str(e)) from e
    return joblib_backend(address)


RAY_RETRIES = 2  # a grid computation whose Ray workers are lost is run again this many times


def _retrying(backend, address, jobs, compute, note, what):
    """``compute(jobs)`` in the backend's joblib context. On Ray, a computation whose workers were lost
    (a node or a worker process died) is run again on the nodes left, up to ``RAY_RETRIES`` times, with
    no more jobs than they have CPUs, and ``note`` says so; every computation is seeded, so the retried
    one gives the same numbers. Nothing is written before the whole grid is done. The head node lost
    (``toolkit.ray.head_watched``) ends the process after ``HEAD_GRACE_S`` with one message: nothing to
    retry on, and nothing written."""
    for attempt in range(RAY_RETRIES + 1):
        with _parallel(backend, address):
            try:
                if backend != "ray":
                    return compute(jobs)
                with head_watched(import_ray("--engine ray"), what):
                    return compute(jobs)
            except Exception as e:
                if backend != "ray":
                    raise
                ray = import_ray("--engine ray")
                if not is_worker_loss(ray, e):
                    raise
                lost = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[-1]}"[:200]
        left = live_cpus(ray)
        if attempt == RAY_RETRIES or left < 1:
            raise ValueError(f"{what}: Ray workers were lost {attempt + 1} time(s) (last: {lost}) and "
                             f"{left} CPU(s) are left in the cluster; nothing was written: run the same "
                             "command again once the cluster is back")
        jobs = jobs if jobs is None or jobs < 1 else min(jobs, left)
        note(f"{what}: Ray workers were lost ({lost}); retried on the nodes left ({left} CPU(s), "
             f"--jobs {jobs}), attempt {attempt + 2}")


PROTOCOL_CHOICES = ("auto", *PROTOCOLS)
DEFAULT_OUT = "runs/results"  # --out: the root of results, each in a folder named by its key


@dataclass(frozen=True)
class GridSettings(Settings):
    """Everything one grid run is given (``python -m classifiers.grid --help`` explains each field).

    ``identity()`` is what changes numbers (with the layers selected and the feature sets' bytes it
    names the results); ``features``, ``jobs``, ``out``, ``engine`` and ``address`` do not.
    """
    features: tuple = ()
    classifier: str = "all"
    protocol: str = "auto"
    standardize: bool = False
    grid: str = "study"
    elm_engine: str = "fast"
    svm_engine: str = "fast"
    folds: int = 10
    fold_seed: int = 0
    cv_weighting: str = "pooled"
    layers: tuple | None = None
    per_layer: bool = False
    as_published: bool = False
    jobs: int = 1
    engine: str = "local"
    address: str | None = None
    out: object = None

    RECORD_ONLY = ("features", "jobs", "engine", "address", "out", "layers")

    def validate(self) -> None:
        feats = self.features
        self._set("features", tuple(str(f) for f in ([feats] if isinstance(feats, (str, Path)) else feats)))
        if self.layers is not None:
            self._set("layers", tuple(str(x) for x in self.layers))
        check_choice("--classifier", self.classifier, [*CLASSIFIERS, "all"])
        check_choice("--protocol", self.protocol, PROTOCOL_CHOICES)
        check_choice("--grid", self.grid, sorted(GRIDS))
        check_choice("--elm-engine", self.elm_engine, list(ELM_ENGINES))
        check_choice("--svm-engine", self.svm_engine, list(SVM_ENGINES))
        check_choice("--cv-weighting", self.cv_weighting, CV_WEIGHTINGS)
        check_choice("--engine", self.engine, ENGINES)
        self._set("folds", check_int("--folds", self.folds, 2))
        self._set("fold_seed", check_seed("--fold-seed", self.fold_seed))
        if self.jobs != -1:
            try:
                self._set("jobs", check_int("--jobs", self.jobs, 1))
            except SettingsError:
                raise SettingsError("--jobs", self.jobs, "an integer >= 1 (or -1 with --engine ray: every "
                                                         "CPU of the cluster)") from None
        elif self.engine != "ray":
            raise SettingsError("--jobs", self.jobs, "an integer >= 1 (-1 is for --engine ray only)")
        if self.address and self.engine != "ray":
            raise SettingsError("--address", self.address, "no address with --engine local (it is for --engine ray)")
        if self.as_published:  # the study's code fixes the fold weighting and the ELM's hidden layers
            if self.cv_weighting != "pooled":
                raise SettingsError("--cv-weighting", self.cv_weighting, "pooled (the default) with --as-published: "
                                    "the study's code fixes the fold weighting (SVM pooled, ELM and the others the "
                                    "mean of fold accuracies); drop one of the two")
            if self.elm_engine not in ("fast", PUBLISHED_ELM_ENGINE):
                raise SettingsError("--elm-engine", self.elm_engine, f"fast or {PUBLISHED_ELM_ENGINE} with "
                                    "--as-published: the study's code drew a new ELM hidden layer at every fit")
            self._set("elm_engine", PUBLISHED_ELM_ENGINE)

    def identity(self) -> dict:
        """The settings that determine a grid's numbers (the results key adds the layers selected)."""
        return {"classifier": self.classifier, "protocol": self.protocol, "standardize": bool(self.standardize),
                "grid": self.grid, "elm_engine": self.elm_engine, "svm_engine": self.svm_engine,
                "folds": int(self.folds), "fold_seed": int(self.fold_seed), "per_layer": bool(self.per_layer),
                "cv_weighting": self.cv_weighting,
                # only when set, so the keys of results made before the switch still hold
                **({"as_published": True} if self.as_published else {})}


def _grid_settings(settings, changes: dict) -> GridSettings:
    """``settings`` with ``changes``; a list in place of the settings is taken as ``features``."""
    if isinstance(settings, (list, tuple, str, Path)):
        changes = dict(changes, features=settings)
        settings = None
    if "backend" in changes:  # the older name of --engine
        changes["engine"] = changes.pop("backend")
    if settings is not None and not isinstance(settings, GridSettings):
        raise TypeError(f"expected GridSettings, found {type(settings).__name__}")
    settings = settings or GridSettings()
    return settings.replace(**changes) if changes else settings


def run_grid(settings: GridSettings | None = None, /, *, progress: bool = True, log=None,
             reuse: bool = False, **changes) -> Path:
    """Run the grids on ``settings.features`` (feature-set folders) and write the results.

    ``settings`` is a :class:`GridSettings`; keyword ``changes`` give a copy with those fields changed
    (``run_grid(s, cv_weighting="mean")``, or ``run_grid([fs], grid="small")`` from the defaults).
    Returns the path of ``results.json``: ``<out>/<dataset>/<arch>_<width>_<weights>_<key>/`` (``out``
    the root, ``runs/results`` by default, as every tool's ``--out``), the key naming the settings and the
    feature sets' bytes, so runs of another configuration never share a folder; with ``reuse`` a results file of the same key already there is
    returned as it is (the study command's resume).
    """
    s = _grid_settings(settings, changes)
    if not s.features:
        raise SettingsError("--features", "(none)", "at least one feature-set folder")
    features, classifier, protocol, standardize, jobs = s.features, s.classifier, s.protocol, s.standardize, s.jobs
    grid, elm_engine, svm_engine, backend, address = s.grid, s.elm_engine, s.svm_engine, s.engine, s.address
    folds, fold_seed, cv_weighting, layers, per_layer, out = \
        s.folds, s.fold_seed, s.cv_weighting, s.layers, s.per_layer, s.out
    as_published = s.as_published
    names = list(CLASSIFIERS) if classifier == "all" else [classifier]
    engines = {"svm": svm_engine, "elm": elm_engine}  # the CLI's engine flags; others: their default
    t_start = time.perf_counter()
    notes = []
    log = log or (lambda m: print(m, file=sys.stderr))

    def note(message):
        notes.append(message)
        log(message)
    sets = [load_feature_set(f) for f in features]
    sets = integrity.prepare_sets(sets, folds, fold_seed, protocol, log=note)
    check_compatible(sets)
    sets, selection = select_layers(sets, list(layers) if layers else None)  # classifiers/layers.py: --layers
    # the columns scored change numbers too: other settings, other results
    settings = dict(s.identity(), layers=selection)
    records = integrity.feature_set_records(sets)
    key = integrity.results_key(settings, records)
    root = Path(out or DEFAULT_OUT)
    if root.exists() and not root.is_dir():
        raise integrity.GridInputError(f"--out {root} is an existing file; expected a folder (the root of the "
                                       "results, each in a folder named by its key)")
    out = integrity.results_folder(sets[0].meta, key, root=root)  # --out is the root, as in every tool
    integrity.check_out(out, key)  # before the work: a refused --out costs nothing
    with folder_lock(out, say=note):  # the same configuration at once: the second waits, then reuses
        integrity.check_out(out, key)  # again under the lock: another run may have written it meanwhile
        if reuse and (out / "results.json").is_file():  # same key = same settings and feature bytes: current
            note(f"{out / 'results.json'}: results of these settings and feature sets are current, kept")
            if rederive_csv(out / "results.json"):
                note(f"{out / 'results.csv'}: did not match results.json; derived from it again")
            return out / "results.json"
        first = sets[0]
        protocols = choose_protocols(protocol, first.kind)
        runs = group_runs(sets)
        integrity.check_runs(runs)  # runs of one thing: everything but the seed the same, every seed distinct
        classes, y_index = np.unique(first.y, return_inverse=True)
        entries = []
        if first.meta.get("multilabel"):  # a tags manifest: one-vs-rest probes, ROC-AUC / PR-AUC (probes.py)
            from .probes import multilabel_entries
            entries, names = multilabel_entries(names, runs, protocols, GRIDS[grid], standardize, OPTIMISTIC,
                                                note), []
        for name in names:
            points = grid_points(GRIDS[grid][name])
            weighting = PUBLISHED_WEIGHTING.get(name, "mean") if as_published else cv_weighting
            per_protocol = {p: {"runs": [], "failed_points": [], "total_s": 0.0} for p in protocols}
            for run_sets in runs:
                fs = run_sets[0]
                seed = fs.meta.get("seed", 0)

                made = []

                def make_scorer(X, seed=seed):
                    clf = CLASSIFIERS[name]
                    s = clf.scorer(engines.get(name, clf.default_engine), X, y_index, classes.size, seed,
                                   standardize)
                    made.append(integrity.OneClassSafe(s, y_index, classes))
                    return made[-1]

                def compute(jobs_now, run_sets=run_sets, fs=fs, points=points, made=made, seed=seed,
                            weighting=weighting):
                    made.clear()  # a retried computation makes its scorers again
                    # a live tqdm bar does not pickle to Ray workers: none there
                    kw = dict(jobs=jobs_now, desc=f"{name} seed {seed}", progress=progress and backend == "local")
                    if len(run_sets) == 1:
                        scorer = make_scorer(fs.X)
                        return scorer, evaluate(scorer, points, y_index, protocols, split=first.split,
                                                fold=first.fold, cv_weighting=weighting, **kw)
                    return evaluate_per_fold(make_scorer, run_sets, points, y_index, protocols, first.fold,
                                             cv_weighting=weighting, **kw)

                t0 = time.perf_counter()
                scorer, results = _retrying(backend, address, jobs, compute, note, f"{name} seed {seed}")
                seconds = time.perf_counter() - t0
                one_class = [integrity.one_class_note(s, seed) for s in made]
                one_class += [f"seed {seed}: {n}" for s in made for n in dict.fromkeys(getattr(s.scorer, "notes", ()))]
                for p in protocols:
                    slot = per_protocol[p]
                    slot.setdefault("notes", []).extend(n for n in one_class if n)
                    slot["total_s"] += seconds
                    slot["failed_points"] += [{"params": dict(points[i]), "reason": why, "seed": seed}
                                              for i, why in sorted(results["failed"].items())]
                    if results[p] is None:
                        slot.setdefault("errors", []).append(f"seed {seed}: every grid point failed")
                        continue
                    run = _run_entry(fs, y_index, classes, results[p], points, scorer.name, seconds)
                    if len(run_sets) > 1:  # one trained model per held-out fold
                        run["features"] = [str(f.path) for f in run_sets]
                        run["model_fold_of_each_fold"] = [f.meta["model_fold"] for f in run_sets]
                    slot["runs"].append(run)
            for p in protocols:
                slot = per_protocol[p]
                accs = [r["accuracy"] for r in slot["runs"]]
                # hpelm's ELM is not the study's: its rows are labelled "elm-hpelm" so that no report sets
                # them beside the published ELM figures
                label = "elm-hpelm" if name == "elm" and elm_engine == "hpelm" else name
                entry = {"classifier": label, "protocol": p, "optimistic": OPTIMISTIC[p], "runs": slot["runs"],
                         "mean": float(np.mean(accs)) if accs else None,
                         "std": float(np.std(accs, ddof=1)) if len(accs) > 1 else None,
                         "n_runs": len(accs), "failed_points": slot["failed_points"],
                         "timings": {"total_s": slot["total_s"]}, "grid": grid,
                         "standardize": standardize,
                         # how the accuracy combines folds: cv-best pooled (size-weighted, the study's) or
                         # mean; nested-cv is the mean of its outer folds; split has one test set
                         "fold_weighting": {"cv-best": weighting, "nested-cv": "mean"}.get(p)}
                if as_published:
                    entry["as_published"] = True
                if name == "elm":
                    entry["elm"] = dict(ELM_DEFAULTS, engine=elm_engine, role=ELM_ENGINE_ROLE[elm_engine])
                    if elm_engine == "hpelm":
                        entry["elm"]["output_weights"] = HPELM_OUTPUT_WEIGHTS
                if "errors" in slot:
                    entry["errors"] = slot["errors"]
                if slot.get("notes"):
                    entry["notes"] = slot["notes"]
                entries.append(entry)
        meta = first.meta
        clips_per_s = (meta.get("timings") or {}).get("clips_per_s")
        config = {"features": [str(f) for f in features], "classifier": classifier, "protocol": protocol,
                  "standardize": standardize, "jobs": jobs, "grid": grid, "elm_engine": elm_engine,
                   "svm_engine": svm_engine, "engine": backend, "address": address, "folds": folds,
                   "fold_seed": fold_seed, "cv_weighting": cv_weighting, "as_published": bool(as_published)}
        results = {"kind": "randomcnn-results", "version": 1, "dataset": meta.get("dataset"),
                   "arch": meta.get("arch"), "width": meta.get("width"), "weights": meta.get("weights"),
                   "feature_length": int(first.X.shape[1]), "n_params": meta.get("n_params"),
                   "gflop_per_clip": meta.get("gflop_per_clip"), "extract_clips_per_s": clips_per_s,
                   "features": [str(fs.path) for fs in sets],
                   "feature_meta": [fs.meta for fs in sets], "entries": entries,
                   "grid_settings": settings, "results_key": key, "feature_sets": records, "notes": notes,
                   "timings": {"total_s": time.perf_counter() - t_start},
                   # which side computed what the study's code computed (--as-published): the grid here, the
                   # features at extraction; the report labels such rows "as published"
                   **({"multilabel": first.meta["multilabel"]} if first.meta.get("multilabel") else {}),
               "as_published": {"grid": bool(as_published),
                                    "features": all(bool(fs.meta.get("as_published")) for fs in sets)}}
        if as_published and not results["as_published"]["features"]:
            note("--as-published grid on feature sets extracted without --as-published: the features are the "
                 "thesis text's definition (extract with --as-published for the study's code's)")
        if selection is not None:  # its own row in the report, never the full feature set's
            results["arch"] = f"{meta.get('arch')}[{selection['label']}]"
            results["feature_length"], results["layers"] = selection["n_features"], selection
        if per_layer:  # each layer (and layers 1..k) alone: these settings with the features and --out changed
            results["per_layer"] = per_layer_scores(sets, lambda fs, o: json.loads(run_grid(
                s.replace(features=fs, out=o, per_layer=False, layers=None), progress=False).read_text()),
                progress=progress, full={"entries": entries})
        config.update(layers=layers, per_layer=per_layer, settings=s.record())
        results.update(run_record(config))
        path = atomic_write_json(out / "results.json", results)
        atomic_write_bytes(out / "results.csv", _csv(results).encode("utf-8"))
        return path


def rederive_csv(json_path) -> bool:
    """Write ``results.csv`` again from ``results.json`` beside it when the two do not match (a missing,
    edited or truncated CSV); True when it was rewritten."""
    json_path = Path(json_path)
    expected = _csv(json.loads(json_path.read_text(encoding="utf-8"))).encode("utf-8")
    csv_path = json_path.with_name("results.csv")
    try:
        if csv_path.read_bytes() == expected:
            return False
    except OSError:
        pass
    atomic_write_bytes(csv_path, expected)
    return True


def _csv(results) -> str:
    if results.get("multilabel"):
        from .probes import multilabel_csv
        return multilabel_csv(results)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for e in results["entries"]:
        for r in e["runs"]:
            writer.writerow({"dataset": results["dataset"], "arch": results["arch"],
                             "width": results["width"], "weights": results["weights"],
                             "classifier": e["classifier"], "protocol": e["protocol"],
                             "optimistic": e["optimistic"], "seed": r["seed"], "features": r["features"],
                             "accuracy": r["accuracy"], "selected": json.dumps(r["selected"]),
                             "mean": e["mean"], "std": e["std"], "n_runs": e["n_runs"],
                             "engine": r["engine"], "total_s": round(r["timings"]["total_s"], 3)})
    return buf.getvalue()


def table(results) -> str:
    """A short text table: classifier, protocol, mean +- std (percent), runs, selected (first run)."""
    if results.get("multilabel"):
        from .probes import multilabel_table
        return multilabel_table(results)
    lines = [f"{'classifier':<10} {'protocol':<10} {'accuracy %':>14} {'runs':>4}  selected (first run)"]
    for e in results["entries"]:
        acc = "failed" if e["mean"] is None else f"{100 * e['mean']:.2f}" + (
            f" +- {100 * e['std']:.2f}" if e["std"] is not None else "")
        sel = e["runs"][0]["selected"] if e["runs"] else "-"
        flag = " (optimistic)" if e["optimistic"] else ""
        if e.get("as_published"):
            flag += " (as published)"
        if e.get("elm", {}).get("engine") == "hpelm":
            flag += " (hpelm cross-check, not the study's ELM)"
        lines.append(f"{e['classifier']:<10} {e['protocol']:<10} {acc:>14} {e['n_runs']:>4}  {sel}{flag}")
    return "\n".join(lines)


def failed_summary(results) -> str:
    """What of the grid could not be searched: every failed grid point (classifier, seed, its
    parameters, why) once, and every run that failed altogether. Empty when nothing failed.

    A failed point is recorded under the entries' ``failed_points`` (the same points for each protocol
    of a classifier); the others were searched, so the results stand, but the reader is told."""
    points, errors = {}, []
    for e in results.get("entries", []):
        for f in e.get("failed_points") or []:
            key = (e["classifier"], f.get("seed"), json.dumps(f.get("params"), sort_keys=True))
            points.setdefault(key, f.get("reason", "unknown reason"))
        errors += [f"{e['classifier']} {e['protocol']}: {x}" for x in e.get("errors") or []]
    if not points and not errors:
        return ""
    lines = []
    if points:
        lines.append(f"{len(points)} grid point(s) failed and were left out of the search (the others were "
                     "searched; results.json lists them under failed_points):")
        lines += [f"  {clf} seed {seed} {params}: {why}" for (clf, seed, params), why in sorted(
            points.items(), key=lambda kv: (kv[0][0], str(kv[0][1]), kv[0][2]))]
    if errors:
        lines.append(f"{len(errors)} run(s) have no result:")
        lines += [f"  {x}" for x in errors]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m classifiers.grid`` (choices read from the tables)."""
    parser = argparse.ArgumentParser(
        prog=prog("python -m classifiers.grid"),
        description="The study's SVM and ELM grids on feature sets of one architecture (one set per seed:\n"
                    "one run each), under each protocol the sets allow (split; cv-best and nested-cv on\n"
                    "folds), written as results.json and results.csv (docs/formats.md, \"Results\"). The\n"
                    "last line printed is the path of results.json.",
        formatter_class=HelpFormatter)
    parser.add_argument("--features", nargs="+", required=True,
                        help="feature-set folders of one architecture (one per seed = one run each)")
    parser.add_argument("--classifier", choices=[*CLASSIFIERS, "all"], default="all",
                        help="which classifier's grid to run")
    parser.add_argument("--protocol", choices=list(PROTOCOL_CHOICES), default="auto",
                        help="auto: split for train/val/test sets, cv-best and nested-cv for folds")
    parser.add_argument("--standardize", action="store_true",
                        help="z-score features on each training set (off in the study)")
    parser.add_argument("--jobs", type=int, default=available_cpus(),
                        help=f"threads for the SVM fits and the ELM tasks (each ELM task on one BLAS thread); "
                             f"default: the {available_cpus()} CPUs this process may use")
    parser.add_argument("--out", default=argparse.SUPPRESS,
                        help=f"root of the results (default {DEFAULT_OUT}): each run goes to "
                             "OUT/<dataset>/<arch>_<width>_<weights>_<key>/, the key a short hash of the grid "
                             "settings and the feature sets' bytes, so another configuration never replaces it "
                             "(as features.extract --out and trained.train --out)")
    parser.add_argument("--folds", type=int, default=10,
                        help="stratified folds made for feature sets whose dataset defines neither a "
                             "split nor folds (audiodata.datasets.stratified_folds)")
    parser.add_argument("--fold-seed", type=int, default=0,
                        help="seed of those folds (trained models: the one trained.train used)")
    parser.add_argument("--grid", choices=sorted(GRIDS), default="study",
                        help="study: the published grids; small: a few points for smoke tests")
    parser.add_argument("--elm-engine", choices=list(ELM_ENGINES), default="fast",
                        help="fast: the study's ELM (pseudo-inverse), one shared hidden layer; estimator: the "
                             "same ELM, ELMClassifier refitted per fit; hpelm: a CROSS-CHECK, not the study's "
                             "ELM (hpelm solves ridge-regularised normal equations, not the pseudo-inverse; "
                             "results are labelled so)")
    parser.add_argument("--cv-weighting", choices=list(CV_WEIGHTINGS), default="pooled",
                        help="how cv-best combines folds: pooled = accuracy over all held-out predictions "
                             "(folds weighted by size, the study's scikit-learn); mean = unweighted mean of "
                             "fold accuracies")
    parser.add_argument("--as-published", action="store_true",
                        help="run the grids as the study's code did where it departs from its text: cv-best "
                             "pools the SVM's folds (GridSearchCV) but takes the unweighted mean of fold "
                             "accuracies for the ELM and the others (cross_val_score().mean()), and the ELM "
                             "draws a new hidden layer at every fit (engine 'fresh'); part of the results' "
                             "key, labelled 'as published' in the report (docs/fidelity.md)")
    parser.add_argument("--svm-engine", choices=list(SVM_ENGINES), default="fast",
                        help="fast: precomputed kernels; sklearn: SVC refitted per point and fold")
    add_engine_arguments(parser, "the parallel fits run (ray: on Ray workers through joblib's Ray backend; "
                                 "--jobs then counts Ray workers, -1: all the CPUs)")
    parser.add_argument("--backend", dest="engine", choices=list(ENGINES), default=argparse.SUPPRESS, help=argparse.SUPPRESS)  # older name
    parser.add_argument("--layers", nargs="+", default=None, metavar="LAYER",
                        help="score only these layers: names from meta.json, 1-based positions or ranges "
                             "(pool3 pool4; 3-5; 1,3); default: every layer")
    parser.add_argument("--per-layer", action="store_true",
                        help="also score each layer alone and layers 1..k together, per classifier "
                             "(results' per_layer; the report's accuracy-vs-depth curves)")
    return parser


@interruptible
def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = GridSettings.parse(parser, args)
    try:
        path = run_grid(settings)
    except ValueError as e:
        parser.exit(2, f"error: {e}\n")
    except OSError as e:  # an unwritable --out, a full disk
        parser.exit(2, f"error: {e.filename or ''}: {e.strerror or e}\n")
    results = json.loads(Path(path).read_text())
    print(table(results))
    failed = failed_summary(results)
    if failed:
        print(failed, file=sys.stderr)
    print(path)
    return path


if __name__ == "__main__":
    main()
