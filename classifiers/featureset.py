"""Load, validate and (for tests and benchmarks) write feature sets in the format of ``docs/formats.md``.

A feature set is a folder holding ``features.npz`` (``X``, ``y``, ``ids`` and ``split`` or ``fold``) and
``meta.json``. Everything is checked at load time, so the grid never starts on bad input.
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from toolkit.provenance import write_feature_files

__all__ = ["FeatureSet", "load_feature_set", "check_compatible", "write_feature_set",
           "synthetic_feature_set"]

SPLITS = ("train", "val", "test")


@dataclass
class FeatureSet:
    """One feature set in memory.

    Attributes
    ----------
    path : Path
    X : ndarray, float32, (n_clips, feature_length)
    y, ids : ndarray of str, (n_clips,)
    split : ndarray of str (n_clips,) or None
        ``train`` / ``val`` / ``test`` for split datasets.
    fold : ndarray of int (n_clips,) or None
        1..K for cross-validated datasets (the grid fills in generated folds when the dataset has
        neither split nor folds, ``meta.protocol_hint`` null).
    meta : dict
        The folder's ``meta.json``.
    sha256 : str
        SHA-256 of ``features.npz`` as read.
    """
    path: Path
    X: np.ndarray
    y: np.ndarray
    ids: np.ndarray
    split: np.ndarray | None
    fold: np.ndarray | None
    meta: dict = field(default_factory=dict)
    sha256: str | None = None

    @property
    def kind(self) -> str:
        """``"split"`` or ``"folds"``: which partition the clips carry."""
        return "split" if self.split is not None else "folds"


def load_feature_set(path) -> FeatureSet:
    """Read and validate one feature-set folder.

    Raises ``ValueError`` naming the folder and what is wrong: a missing, truncated or unreadable file,
    a ``meta.json`` that is not an object, a ``features.npz`` whose SHA-256 differs from
    ``meta.features_sha256``, NaN/inf in ``X``, arrays of different lengths, both ``split`` and
    ``fold``, a single class, a missing train/val/test part, fold values outside 1..K, or a class with
    fewer clips than folds. A set with neither ``split`` nor ``fold`` is valid (``fold`` stays None).
    """
    path = Path(path)
    npz, meta_path = path / "features.npz", path / "meta.json"
    if not path.is_dir():
        what = "is a file, not a folder" if path.exists() else "no such folder"
        raise ValueError(f"feature set {path}: {what} (expected a folder with features.npz and meta.json)")
    try:
        raw = npz.read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read feature set {npz}: {e.strerror or e}") from None
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as e:  # zipfile.BadZipFile, EOFError, zlib.error, ValueError: a damaged file
        raise ValueError(f"cannot read feature set {npz}: truncated or damaged "
                         f"({type(e).__name__}: {e}); extract it again") from None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:  # RecursionError: JSON nested too deeply
        raise ValueError(f"cannot read feature-set metadata {meta_path}: {e}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{meta_path}: expected a JSON object of feature-set metadata, found a JSON "
                         f"{type(meta).__name__}")
    missing = [k for k in ("X", "y", "ids") if k not in arrays]
    if missing:
        raise ValueError(f"{npz}: missing arrays {missing}; expected X, y, ids and split or fold")
    X, y, ids = arrays["X"], arrays["y"].astype(str), arrays["ids"].astype(str)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{npz}: X must be (n_clips, feature_length) and non-empty, found {X.shape}")
    if not np.issubdtype(X.dtype, np.number):
        raise ValueError(f"{npz}: X must be numeric, found dtype {X.dtype}")
    bad = ~np.isfinite(X)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise ValueError(f"{npz}: X holds {int(bad.sum())} NaN/inf values in {rows.size} clips "
                         f"(first: {ids[rows[0]] if rows[0] < ids.size else rows[0]})")
    split = arrays.get("split")
    fold = arrays.get("fold")
    if split is not None and fold is not None:
        raise ValueError(f"{npz}: expected at most one of 'split' or 'fold', found both")
    checks = [("y", y), ("ids", ids)] + ([("split", split)] if split is not None else []) + \
        ([("fold", fold)] if fold is not None else [])
    for name, a in checks:
        if a.shape != (X.shape[0],):
            raise ValueError(f"{npz}: {name} has shape {a.shape}, expected ({X.shape[0]},) like X's rows")
    classes = np.unique(y)
    if classes.size < 2:
        raise ValueError(f"{npz}: a single class {classes.tolist()}; classification needs at least two")
    if split is not None:
        split = split.astype(str)
        found = set(np.unique(split))
        if found != set(SPLITS):
            raise ValueError(f"{npz}: split values {sorted(found)}, expected exactly {list(SPLITS)}")
    elif fold is not None:
        if not np.issubdtype(fold.dtype, np.integer):
            raise ValueError(f"{npz}: fold must be integers 1..K, found dtype {fold.dtype}")
        fold = fold.astype(np.int64)
        k = int(fold.max())
        if fold.min() < 1 or set(np.unique(fold)) != set(range(1, k + 1)) or k < 3:
            raise ValueError(f"{npz}: fold values {np.unique(fold).tolist()}, expected every value of "
                             f"1..K with K >= 3")
        counts = {c: int((y == c).sum()) for c in classes}
        small = {c: n for c, n in counts.items() if n < k}
        if small:
            raise ValueError(f"{npz}: classes with fewer clips than the {k} folds: {small}")
    # last: a file that is also malformed gets the message about what is wrong in it
    sha = hashlib.sha256(raw).hexdigest()
    if meta.get("features_sha256") not in (None, sha):
        raise ValueError(f"{npz}: SHA-256 {sha[:12]}... differs from the {str(meta['features_sha256'])[:12]}"
                         f"... recorded in {meta_path.name}: the features changed after their metadata "
                         "was written; extract them again")
    return FeatureSet(path=path, X=X, y=y, ids=ids, split=split, fold=fold, meta=meta, sha256=sha)


def check_compatible(sets: list[FeatureSet]) -> None:
    """Several feature sets are runs of one study only if dataset, clips, labels and partition agree.

    Raises ``ValueError`` naming the first pair of folders that differ and in what.
    """
    if not sets:
        raise ValueError("no feature sets given: expected at least one --features folder")
    first = sets[0]
    for other in sets[1:]:
        where = f"feature sets {first.path} and {other.path}"
        for key in ("dataset", "arch", "width", "weights"):
            if first.meta.get(key) != other.meta.get(key):
                raise ValueError(f"{where} differ in {key}: {first.meta.get(key)!r} vs "
                                 f"{other.meta.get(key)!r}; runs must share dataset and architecture")
        if first.ids.shape != other.ids.shape or not np.array_equal(first.ids, other.ids):
            raise ValueError(f"{where} hold different clips or clip orders")
        if not np.array_equal(first.y, other.y):
            raise ValueError(f"{where} hold different labels for the same clips")
        if first.kind != other.kind or not np.array_equal(
                first.split if first.kind == "split" else first.fold,
                other.split if other.kind == "split" else other.fold):
            raise ValueError(f"{where} use different splits/folds")
        if first.X.shape[1] != other.X.shape[1]:
            raise ValueError(f"{where} have different feature lengths: {first.X.shape[1]} vs "
                             f"{other.X.shape[1]}")


def write_feature_set(path, X, y, ids, split=None, fold=None, meta=None) -> Path:
    """Write a valid feature set (``features.npz`` + ``meta.json``); used by tests and benchmarks.

    ``meta`` entries override the defaults filled in here (dataset ``synthetic``, arch ``random``...).
    Neither ``split`` nor ``fold`` writes a fold-less set (``protocol_hint`` null); ``meta.json``
    records ``features_sha256`` and is written last, as extraction does.
    """
    path = Path(path)
    X = np.asarray(X, dtype=np.float32)
    arrays = {"X": X, "y": np.asarray(y).astype(str), "ids": np.asarray(ids).astype(str)}
    if split is not None:
        arrays["split"] = np.asarray(split).astype(str)
    if fold is not None:
        arrays["fold"] = np.asarray(fold).astype(np.int64)
    full = {"arch": "synthetic", "width": "large", "weights": "random", "checkpoint": None, "seed": 0,
            "dataset": "synthetic", "root": None, "classes": sorted(set(arrays["y"].tolist())),
            "feature_length": int(X.shape[1]),
            "layers": [{"name": "all", "channels": int(X.shape[1]), "start": 0, "stop": int(X.shape[1])}],
            "n_clips": int(X.shape[0]), "skipped": [],
            "protocol_hint": "split" if split is not None else "folds" if fold is not None else None,
            "n_params": 0, "gflop_per_clip": 0.0,
            "timings": {"decode_s": 0.0, "compute_s": 0.0, "total_s": 0.0, "clips_per_s": None}}
    full.update(meta or {})
    write_feature_files(path, arrays, full)  # toolkit.provenance: as extraction writes them (its own SHA-256)
    return path


def synthetic_feature_set(n_clips=120, n_features=20, n_classes=3, n_folds=None, separation=3.0,
                          seed=0, shuffle_labels=False):
    """Gaussian classes with known separability, as arrays for ``write_feature_set``.

    Returns ``dict(X, y, ids, split=... or fold=...)``: ``n_folds=None`` gives a 50/20/30 % train/val/test
    split, otherwise stratified folds 1..n_folds. ``separation`` is each class mean's distance from the
    common centre in units of the noise std; ``shuffle_labels`` permutes labels so nothing is learnable (chance level).
    """
    rng = np.random.default_rng(seed)
    y = np.arange(n_clips) % n_classes
    centers = rng.standard_normal((n_classes, n_features))
    centers *= separation / np.linalg.norm(centers, axis=1, keepdims=True)
    X = centers[y] + rng.standard_normal((n_clips, n_features))
    # Positive, like per-layer means of ReLU maps.
    X = np.abs(X + 2.0).astype(np.float32)
    if shuffle_labels:
        y = rng.permutation(y)
    labels = np.array([f"class{c}" for c in y])
    ids = np.array([f"clip{i:05d}.wav" for i in range(n_clips)])
    out = {"X": X, "y": labels, "ids": ids}
    order = rng.permutation(n_clips)
    if n_folds is None:
        part = np.empty(n_clips, dtype=object)
        a, b = int(0.5 * n_clips), int(0.7 * n_clips)
        part[order[:a]], part[order[a:b]], part[order[b:]] = "train", "val", "test"
        out["split"] = part.astype(str)
    else:
        fold = np.empty(n_clips, dtype=np.int64)
        for c in np.unique(y):  # stratified: each class dealt round-robin over folds
            idx = rng.permutation(np.flatnonzero(y == c))
            fold[idx] = np.arange(idx.size) % n_folds + 1
        out["fold"] = fold
    return out
