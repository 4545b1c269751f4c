"""What the grid checks before it scores anything, and how its results are named.

- ``prepare_sets``: feature sets given twice (same folder, same ``features.npz`` bytes or the same
  ``config_key``) count once; feature sets without a split or folds of their own get stratified folds
  (``audiodata.datasets.stratified_folds``, the one generator shared with extraction and training);
  and no clip is ever scored through a model that trained or validated on it (``check_no_leak``).
- ``OneClassSafe``: a training set that holds a single class (an inner nested-CV split of a small
  dataset) cannot be fitted by an SVM; its test clips are predicted as that class and the split is
  recorded, instead of failing every grid point and with them the whole result.
- ``results_key`` / ``results_folder`` / ``check_out``: results are named by the grid settings and the
  feature sets' bytes, so results of other settings are never overwritten.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from toolkit.provenance import sha256_file
from toolkit.settings import folder_name, stable_key

__all__ = ["GridInputError", "prepare_sets", "check_no_leak", "OneClassSafe", "check_runs",
           "results_key", "results_folder", "check_out", "feature_set_records", "sha256_file"]

KEY_LENGTH = 10  # hex digits of the results key in folder names


class GridInputError(ValueError):
    """Feature sets the grid refuses to score; the message names the folder and the reason."""


def _counts(y) -> dict:
    classes, counts = np.unique(np.asarray(y, dtype=str), return_counts=True)
    return {str(c): int(n) for c, n in zip(classes, counts)}


def _dedupe(sets, log) -> list:
    """Drop feature sets given twice: same folder, same ``features.npz`` bytes or same config key."""
    kept, seen = [], {}
    for fs in sets:
        keys = [("folder", str(Path(fs.path).resolve()))]
        if getattr(fs, "sha256", None):
            keys.append(("features_sha256", fs.sha256))
        if fs.meta.get("config_key"):
            keys.append(("config_key", str(fs.meta["config_key"])))
        same = next(((what, seen[(what, v)]) for what, v in keys if (what, v) in seen), None)
        if same is not None:
            log(f"feature set {fs.path} is the same as {same[1].path} (same {same[0]}); counted once")
            continue
        for k in keys:
            seen[k] = fs
        kept.append(fs)
    return kept


def _generated_folds(fs, folds: int, fold_seed: int, protocol: str, log) -> None:
    """Give a feature set without split or fold the stratified folds the grid evaluates it on."""
    from audiodata.datasets import stratified_folds
    if protocol == "split":
        raise GridInputError(f"feature set {fs.path}: protocol 'split' needs a train/val/test split, but "
                             "its dataset defines neither a split nor folds; use --protocol auto, "
                             "cv-best or nested-cv (the grid then makes --folds stratified folds)")
    k, seed = int(folds), int(fold_seed)
    if fs.meta.get("model_folds") is not None or fs.meta.get("model_fold_seed") is not None:
        mk, ms = fs.meta.get("model_folds"), fs.meta.get("model_fold_seed")
        if mk is None or ms is None:
            raise GridInputError(f"feature set {fs.path}: its model records model_folds {mk!r} and "
                                 f"model_fold_seed {ms!r}; both are needed to rebuild the folds it held out")
        if (int(mk), int(ms)) != (k, seed):
            log(f"feature set {fs.path}: using its model's folds ({mk} folds, fold seed {ms}) instead of "
                f"--folds {k} --fold-seed {seed}")
        k, seed = int(mk), int(ms)
    need = 3 if protocol in ("auto", "nested-cv") else 2
    if k < need:
        raise GridInputError(f"feature set {fs.path}: {k} folds cannot run "
                             f"{'nested-cv' if need == 3 else 'cv-best'} (needs at least {need})")
    counts = _counts(fs.y)
    small = {c: n for c, n in counts.items() if n < k}
    if small:
        which = {"auto": "cv-best and nested-cv", "cv-best": "cv-best", "nested-cv": "nested-cv"}[protocol]
        raise GridInputError(
            f"feature set {fs.path}: {which} cannot run: {k} stratified folds need at least {k} clips per "
            f"class, and classes {sorted(small)} have fewer (clips per class: {counts}); use --folds "
            f"{max(2, min(counts.values()))} or fewer, or a dataset with a train/val/test split")
    fs.fold = stratified_folds(fs.ids, fs.y, k, seed).astype(np.int64)
    fs.generated_folds = {"folds": k, "fold_seed": seed}


def check_no_leak(fs, log=print) -> None:
    """Refuse a trained feature set whose model trained or validated on a clip the grid would score.

    The scored clips are the ``test`` split, fold ``model_fold`` for a model of one held-out fold, or
    every clip (each fold is held out in turn) for a model trained on the whole dataset. Weights trained
    outside the toolkit (``hear:`` modules) carry no clip list: they are scored with a note.
    """
    meta = fs.meta
    # extraction writes model_train_ids for every set: null for random weights, a list for trained ones
    trained = meta.get("weights") == "trained" or meta.get("model_train_ids") is not None
    if not trained:
        return
    model = meta.get("checkpoint") or meta.get("checkpoint_sha256") or "unknown checkpoint"
    seen = meta.get("model_train_ids")
    if seen is None and str(meta.get("arch", "")).startswith("hear:"):
        log(f"feature set {fs.path}: weights trained outside this toolkit ({meta.get('arch')}); the grid "
            "cannot check which clips they were trained on")
        return
    if seen is None:
        raise GridInputError(
            f"feature set {fs.path}: trained weights ({model}) with no record of the clips the model "
            "trained and validated on (model_train_ids missing or null: a checkpoint from before "
            "trained.train recorded them), so the grid cannot prove no test clip was seen; retrain "
            "with the current trained.train and extract again")
    if not isinstance(seen, list):
        raise GridInputError(f"feature set {fs.path}: model_train_ids must be a list of clip ids, "
                             f"found {type(seen).__name__}")
    seen = set(map(str, seen))
    k = meta.get("model_fold")
    if fs.split is not None:
        scored, where = fs.ids[fs.split == "test"], "the test split"
    elif k is not None:
        if int(k) not in set(np.unique(fs.fold).tolist()):
            raise GridInputError(f"feature set {fs.path}: its model held out fold {k}, which is not one "
                                 f"of the folds {np.unique(fs.fold).tolist()} the grid would use")
        scored, where = fs.ids[fs.fold == int(k)], f"held-out fold {k}"
    else:
        scored, where = fs.ids, "the held-out folds (every clip)"
    leaked = [i for i in scored.tolist() if i in seen]
    if leaked:
        raise GridInputError(
            f"feature set {fs.path}: refusing to score {len(leaked)} of the {len(scored)} clips of {where} "
            f"that the model ({model}) trained or validated on (first: {leaked[0]}); the folds must be "
            "the ones the model held out (same --folds and --fold-seed as trained.train)")


def prepare_sets(sets, folds: int = 10, fold_seed: int = 0, protocol: str = "auto", log=print) -> list:
    """Deduplicate, give fold-less sets their generated folds, and refuse any leak. Returns the sets."""
    sets = _dedupe(sets, log)
    for fs in sets:
        if fs.split is None and fs.fold is None:
            _generated_folds(fs, folds, fold_seed, protocol, log)
    for fs in sets:
        check_no_leak(fs, log)
    return sets


class OneClassSafe:
    """Wraps a scorer (``kernels.py`` interface): tasks whose training clips hold one class only are
    not fitted; their test clips are predicted as that class (what any classifier fitted on the classes
    present predicts) and listed in ``one_class_tasks``."""

    def __init__(self, scorer, y, classes):
        self.scorer, self.y, self.classes = scorer, np.asarray(y), np.asarray(classes)
        self.name = scorer.name
        self.one_class_tasks: list[dict] = []

    def __getattr__(self, attr):  # solver_counts and the like
        return getattr(self.scorer, attr)

    def run(self, points, tasks, jobs=1, progress=None):
        single = [t for t, (train, _) in enumerate(tasks) if np.unique(self.y[train]).size < 2]
        if not single:
            return self.scorer.run(points, tasks, jobs=jobs, progress=progress)
        rest = [t for t in range(len(tasks)) if t not in set(single)]
        pred = [[None] * len(tasks) for _ in points]
        errors = {}
        if rest:
            sub, errors = self.scorer.run(points, [tasks[t] for t in rest], jobs=jobs, progress=progress)
            for p in range(len(points)):
                for j, t in enumerate(rest):
                    pred[p][t] = sub[p][j]
        for t in single:
            train, test = tasks[t]
            only = int(np.unique(self.y[train])[0]) if len(train) else -1
            if only < 0:
                continue  # nothing to train on: every point fails there, as before
            for p in range(len(points)):
                pred[p][t] = np.full(len(test), only, dtype=self.y.dtype)
            self.one_class_tasks.append({"n_train": int(len(train)), "n_test": int(len(test)),
                                         "class": str(self.classes[only])})
            if progress is not None:
                progress.update(len(points))
        return pred, errors


def one_class_note(scorer, seed) -> str | None:
    """The results' note for the single-class training sets a ``OneClassSafe`` met, if any."""
    tasks = getattr(scorer, "one_class_tasks", None)
    if not tasks:
        return None
    classes = sorted({t["class"] for t in tasks})
    return (f"seed {seed}: {len(tasks)} training set(s) held a single class ({', '.join(classes)}), "
            "so they were not fitted: their test clips were predicted as that class")


# extraction settings that may differ between the runs of one thing: the seed and the weights it drew
# (or the checkpoint each run's model was trained into), where the clips lie (``dataset_key`` covers the
# clips themselves), and how the work was spread
_RUN_FIELDS = ("seed", "weights", "weights_sha256", "root", "manifest", "split_dir", "workers", "out", "engine",
               "address", "cache_dir", "settings", "input_seconds")


def _run_identity(fs) -> dict | None:
    """What a feature set is, but for its seed: its extraction settings (``meta.json`` ``config``) and clip
    list key; None for a set that records neither (a hand-made set)."""
    meta = fs.meta
    config = meta.get("config") if isinstance(meta.get("config"), dict) else None
    if config is None and meta.get("dataset_key") is None:
        return None
    ident = {k: v for k, v in (config or {}).items() if k not in _RUN_FIELDS}
    if isinstance(ident.get("model_identity"), dict):
        ident["model_identity"] = {k: v for k, v in ident["model_identity"].items() if k != "seed"}
    ident["clips (dataset_key)"] = meta.get("dataset_key")
    return ident


def check_runs(runs) -> None:
    """Runs are runs of one thing: every run's feature sets agree in everything but the seed, and no seed
    is given twice. Raises ``GridInputError`` naming the setting that differs (or the seed given twice)
    and the two folders."""
    seen = {}
    for run in runs:
        fs = run[0]
        seed = fs.meta.get("seed")
        if seed in seen:
            raise GridInputError(
                f"feature sets {seen[seed][0].path} and {fs.path} are both seed {seed}: runs of one "
                "architecture must have distinct seeds (the same seed twice is the same run twice, or a "
                "feature set made before its clips or settings changed: give the current one only)")
        seen[seed] = run
    base = _run_identity(runs[0][0])
    for run in runs[1:]:
        for fs in run:
            other = _run_identity(fs)
            if base is None or other is None:
                continue
            diff = sorted(k for k in set(base) | set(other) if base.get(k) != other.get(k))
            if diff:
                k = diff[0]
                raise GridInputError(
                    f"feature sets {runs[0][0].path} and {fs.path} are not runs of one thing: they differ in "
                    f"{k} ({base.get(k)!r} vs {other.get(k)!r})"
                    + (f" and {len(diff) - 1} more setting(s) ({', '.join(diff[1:4])})" if len(diff) > 1 else "")
                    + "; runs combine only feature sets whose settings agree but for the seed")


def feature_set_records(sets) -> list[dict]:
    """Per feature set: path, ``config_key`` (from its meta) and ``features_sha256`` (of its bytes)."""
    return [{"path": str(fs.path), "config_key": fs.meta.get("config_key"),
             "features_sha256": getattr(fs, "sha256", None),
             "generated_folds": getattr(fs, "generated_folds", None)} for fs in sets]


def results_key(settings: dict, records: list[dict]) -> str:
    """Short SHA-256 over the grid settings and the feature sets' bytes (order kept)."""
    return stable_key({"settings": settings, "features": [r["features_sha256"] for r in records]}, KEY_LENGTH)


def results_folder(meta: dict, key: str, root="runs/results") -> Path:
    """``<root>/<dataset>/<arch>_<width>_<weights>_<key>`` (root: ``runs/results``)."""
    return Path(root) / folder_name(meta.get("dataset")) / \
        f"{folder_name(meta.get('arch'))}_{folder_name(meta.get('width'))}_{folder_name(meta.get('weights'))}_{key}"


def results_key_of(data) -> str | None:
    """The ``results_key`` a loaded ``results.json`` records (None for anything else)."""
    return data.get("results_key") if isinstance(data, dict) else None


def check_out(out: Path, key: str) -> None:
    """Refuse an ``--out`` that is a file, or a folder holding results of another key."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise GridInputError(f"--out {out} is an existing file; expected a folder (new or holding "
                             "results of the same settings)")
    old = out / "results.json"
    if not old.exists():
        return
    try:
        data = json.loads(old.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        raise GridInputError(f"--out {out} holds a results.json that cannot be read ({e}); remove it or "
                             "choose another --out") from None
    found = results_key_of(data)
    if found != key:
        raise GridInputError(f"--out {out} holds results of other grid settings or feature sets (results "
                             f"key {found!r}, these are {key!r}); choose another --out (or leave it out: "
                             "the default folder is named by the key)")
