"""Read results files (``docs/formats.md``, "Results") into flat rows for the report.

Every problem with one file or one entry is turned into a message naming the file, and the file
or entry is skipped: a report renders from whatever subset of runs is readable.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

from report.published import published_variant
from toolkit.provenance import sha256_file

__all__ = ["KNOWN_DATASETS", "PROTOCOLS", "find_results", "load_results", "read_results_file"]

KNOWN_DATASETS = ("gtzan", "ballroom", "extended-ballroom", "us8k", "synthetic", "folder", "csv")
PROTOCOLS = ("split", "cv-best", "nested-cv", "end-to-end")
_REQUIRED = ("dataset", "arch", "weights", "entries")
# Tolerance when checking a file's own mean / std against the per-run accuracies.
_TOL = 1e-6


class ResultsError(ValueError):
    """A results file (or one of its entries) that cannot be used; the message names the file."""


def find_results(paths) -> tuple[list[Path], list[str]]:
    """Results files under the given files and folders.

    Parameters
    ----------
    paths : iterable of str or Path
        Files (taken as they are) and folders (searched recursively for ``results.json``).

    Returns
    -------
    files : list of Path
        Sorted, without duplicates.
    messages : list of str
        One per path that does not exist.
    """
    files, messages = set(), []
    for p in map(Path, paths):
        if p.is_dir():
            files.update(q.resolve() for q in p.rglob("results.json"))
        elif p.is_file() and p.suffix != ".json":
            # results.csv repeats results.json's rows without the runs and predictions the
            # report's tests need, so only the JSON is read.
            messages.append(f"skipped {p}: not a results.json (only results.json files are read)")
        elif p.is_file():
            files.add(p.resolve())
        else:
            messages.append(f"{p}: no such file or folder; nothing read from it")
    return sorted(files), messages


def _dataset_in_path(path: str, after: str) -> str | None:
    """The known dataset name right after a folder called ``after`` in ``path``, if any."""
    parts = Path(path).parts
    for a, b in zip(parts, parts[1:]):
        if a == after and b in KNOWN_DATASETS:
            return b
    return None


def _accuracy(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0.0 <= value <= 1.0:
        raise ResultsError(f"{where}: accuracy must be a fraction in [0, 1], found {value!r}")
    return float(value)


def _predictions(run: dict, where: str) -> dict | None:
    """``{clip id: (y_true, y_pred)}`` of one run, or None when the run carries no predictions."""
    pred = run.get("predictions")
    if not pred:
        return None
    try:
        ids, y_true, y_pred = pred["ids"], pred["y_true"], pred["y_pred"]
    except (TypeError, KeyError) as e:
        raise ResultsError(f"{where}: predictions need ids, y_true and y_pred") from e
    for name, values in (("ids", ids), ("y_true", y_true), ("y_pred", y_pred)):
        if not isinstance(values, list) or not all(isinstance(v, (str, int)) and not isinstance(v, bool)
                                                   for v in values):
            raise ResultsError(f"{where}: predictions' {name} must be a list of strings or integers, "
                               f"found {type(values).__name__}")
    if not len(ids) == len(y_true) == len(y_pred):
        raise ResultsError(f"{where}: predictions have {len(ids)} ids, {len(y_true)} y_true and "
                           f"{len(y_pred)} y_pred; expected equal lengths")
    return {str(i): (str(t), str(p)) for i, t, p in zip(ids, y_true, y_pred)}


def _seed_order(seed) -> tuple:
    """Sort key of a run's seed: numbers in order, then other values by their text, then missing ones
    (a file whose seeds mix 0 and "1" still sorts)."""
    if seed is None:
        return (2, 0, "")
    if isinstance(seed, (int, float)) and not isinstance(seed, bool):
        return (0, seed, "")
    return (1, 0, str(seed))


def _stale_feature_set(data: dict, path: Path, hashes: dict) -> str | None:
    """Why the results are stale: a feature set they record that is still on disk but whose
    ``features.npz`` no longer has the recorded SHA-256. ``None`` when every one still matches."""
    records = data.get("feature_sets")
    if not isinstance(records, list):
        return None
    for r in records:
        if not isinstance(r, dict) or not r.get("features_sha256") or not isinstance(r.get("path"), str):
            continue
        npz = Path(r["path"]) / "features.npz"
        if not npz.is_file():
            continue  # moved or deleted: nothing to compare with
        if npz not in hashes:
            try:
                hashes[npz] = sha256_file(npz)
            except OSError:
                continue
        if hashes[npz] != r["features_sha256"]:
            return (f"{path}: feature set {r['path']} changed since these results were computed "
                    f"(features.npz SHA-256 {hashes[npz][:12]}... now, {r['features_sha256'][:12]}... "
                    "recorded); run the grid again")
    return None


def _entry_row(entry: dict, meta: dict, where: str) -> dict:
    """One flat row from one entry of a results file."""
    if not isinstance(entry, dict):
        raise ResultsError(f"{where}: expected an object, found {type(entry).__name__}")
    missing = [k for k in ("classifier", "protocol", "runs") if k not in entry]
    if missing:
        raise ResultsError(f"{where}: missing {', '.join(missing)}")
    protocol = entry["protocol"]
    if protocol not in PROTOCOLS:
        raise ResultsError(f"{where}: unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    runs = entry["runs"]
    if not isinstance(runs, list) or not runs:
        raise ResultsError(f"{where}: no runs")
    if entry.get("partial"):  # trained on some folds only: never the end-to-end figure
        covered = "; ".join(f"seed {seed}: folds {p.get('folds_trained')} of {p.get('folds')}"
                            for seed, p in (entry["partial"].get("runs") or {}).items()
                            if isinstance(p, dict)) if isinstance(entry["partial"], dict) else ""
        raise ResultsError(f"{where}: a partial result ({covered or 'fewer folds than its protocol'}), not the "
                           f"{protocol} figure: train every fold (trained.train without --fold) for it")
    runs = sorted(runs, key=lambda r: _seed_order(r.get("seed") if isinstance(r, dict) else None))
    accuracies, predictions, seeds = [], [], []
    for k, run in enumerate(runs):
        if not isinstance(run, dict) or "accuracy" not in run:
            raise ResultsError(f"{where}, run {k}: missing accuracy")
        accuracies.append(_accuracy(run["accuracy"], f"{where}, run {k}"))
        predictions.append(_predictions(run, f"{where}, run {k}"))
        seeds.append(run.get("seed"))
        feat = run.get("features")
        if isinstance(feat, str):
            other = _dataset_in_path(feat, "features")
            if other is not None and other != meta["dataset"]:
                raise ResultsError(f"{where}, run {k}: features {feat} are from dataset {other!r} "
                                   f"but the file is for {meta['dataset']!r}; datasets mixed")
    acc = np.asarray(accuracies)
    mean = float(acc.mean())
    std = float(acc.std(ddof=1)) if len(acc) > 1 else None
    notes = []
    # The report recomputes mean and std from the runs; a disagreement means the file was edited
    # or written by a different version, which a reader should know about.
    if isinstance(entry.get("mean"), (int, float)) and abs(entry["mean"] - mean) > _TOL:
        notes.append(f"{where}: stored mean {entry['mean']} differs from the runs' mean {mean:.6f}; "
                     "the runs' mean is shown")
    if isinstance(entry.get("std"), (int, float)) and std is not None and abs(entry["std"] - std) > _TOL:
        notes.append(f"{where}: stored std {entry['std']} differs from the runs' std {std:.6f}; "
                     "the runs' std is shown")
    failed = entry.get("failed_points") or []
    if not isinstance(failed, list) or not all(isinstance(f, dict) for f in failed):
        notes.append(f"{where}: failed_points is not a list of objects; not shown")
        failed = []
    failed = [{"params": f.get("params"), "seed": f.get("seed"), "reason": str(f.get("reason", "no reason given"))}
              for f in failed]
    labels = runs[0].get("labels")  # the classes the classifier chose among: chance is 1 / their number
    n_classes = len(labels) if isinstance(labels, list) and labels else None
    return dict(meta, classifier=str(entry["classifier"]), protocol=protocol, failed_points=failed, n_classes=n_classes,
                optimistic=protocol == "cv-best" or bool(entry.get("optimistic")),
                accuracies=accuracies, seeds=seeds, predictions=predictions,
                mean=mean, std=std, n_runs=len(accuracies), notes=notes)


def read_results_file(path, _hashes=None) -> tuple[list[dict], list[str]]:
    """Rows of one ``results.json``.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    rows : list of dict
        One per usable entry: the file's metadata (``dataset``, ``arch``, ``width``, ``weights``,
        ``feature_length``, ``n_params``, ``gflop_per_clip``, ``extract_clips_per_s``,
        ``source``) plus ``classifier``, ``protocol``, ``optimistic``, ``accuracies`` (per run,
        sorted by seed), ``seeds``, ``predictions`` (per run: ``{id: (y_true, y_pred)}`` or None),
        ``mean``, ``std`` (ddof=1, None for one run) and ``n_runs``.
    messages : list of str
        Why entries were skipped, or why their stored summary was not used.

    Raises
    ------
    ResultsError
        When the whole file is unusable (unreadable, malformed or truncated JSON, not a results
        file, metadata missing, datasets mixed, or a feature set it records has changed on disk
        since); the message names the file.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise ResultsError(f"{path}: cannot be read ({e})") from e
    except json.JSONDecodeError as e:
        raise ResultsError(f"{path}: malformed or truncated JSON ({e})") from e
    except RecursionError:
        raise ResultsError(f"{path}: JSON nested too deeply to be a results file") from None
    if not isinstance(data, dict) or data.get("kind") != "randomcnn-results":
        raise ResultsError(f"{path}: not a results file (expected \"kind\": \"randomcnn-results\")")
    if data.get("multilabel"):  # ROC-AUC / PR-AUC, no accuracy: report/judge.py's multi-label section
        return [], []
    missing = [k for k in _REQUIRED if data.get(k) in (None, "")]
    if missing:
        raise ResultsError(f"{path}: run without metadata: missing {', '.join(missing)}")
    if data["weights"] not in ("random", "trained"):
        raise ResultsError(f"{path}: weights must be 'random' or 'trained', found {data['weights']!r}")
    if not isinstance(data["entries"], list):
        raise ResultsError(f"{path}: entries must be a list")
    stale = _stale_feature_set(data, path, {} if _hashes is None else _hashes)
    if stale:
        raise ResultsError(stale)
    folder_dataset = _dataset_in_path(str(path), "results")
    if folder_dataset is not None and folder_dataset != data["dataset"]:
        raise ResultsError(f"{path}: file says dataset {data['dataset']!r} but lies under "
                           f"results/{folder_dataset}/; datasets mixed")

    def number(key):
        v = data.get(key)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ResultsError(f"{path}: {key} must be a finite number >= 0, found {v!r}")
        return float(v)

    for key in ("dataset", "arch", "width"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise ResultsError(f"{path}: {key} must be a string, found {type(data[key]).__name__}")
    length = number("feature_length")
    if length is not None and length != int(length):
        raise ResultsError(f"{path}: feature_length must be a whole number, found {data['feature_length']!r}")
    meta = {"dataset": str(data["dataset"]), "arch": str(data["arch"]),
            "width": str(data.get("width") or "-"), "weights": data["weights"],
            "feature_length": int(length) if length else None,
            "n_params": number("n_params"), "gflop_per_clip": number("gflop_per_clip"),
            "extract_clips_per_s": number("extract_clips_per_s"), "source": str(path)}
    variant = published_variant(data.get("as_published"))
    if variant:  # its own rows, labelled, beside the thesis-text rows of the same architecture
        meta.update(arch=f"{meta['arch']} ({variant})", as_published=variant)
    rows, messages = [], []
    for i, entry in enumerate(data["entries"]):
        try:
            row = _entry_row(entry, meta, f"{path}, entry {i}")
        except ResultsError as e:
            messages.append(f"skipped {e}")
            continue
        messages.extend(row.pop("notes"))
        rows.append(row)
    if not rows:
        messages.append(f"{path}: no usable entries")
    return rows, messages


def load_results(paths, log=None) -> tuple[list[dict], list[str], list[str]]:
    """Rows of every readable results file under ``paths``.

    Parameters
    ----------
    paths : iterable of str or Path
    log : callable or None
        Called with each message as it happens; default prints to stderr.

    Returns
    -------
    rows : list of dict
        See :func:`read_results_file`. When several files hold the same setting (dataset, arch,
        width, weights, classifier, protocol), the one ``SUPERSEDE_RULE`` picks is kept (:func:`supersede`).
    read : list of str
        The files rows came from.
    messages : list of str
        Every skipped file or entry, with its name and the reason.
    """
    log = log or (lambda m: print(m, file=sys.stderr))
    files, messages = find_results(paths)
    for m in messages:
        log(m)
    candidates, hashes = [], {}
    for f in files:
        try:
            new, notes = read_results_file(f, hashes)
        except ResultsError as e:
            notes, new = [f"skipped {e}"], []
        except Exception as e:  # malformed in a way no check foresaw: the file is skipped, never the report
            notes, new = [f"skipped {f}: unusable results file ({type(e).__name__}: {e})"], []
        candidates += [(row, f) for row in new]
        for m in notes:
            log(m)
        messages.extend(notes)
    rows, read, notes = supersede(candidates)
    for m in notes:
        log(m)
    messages.extend(notes)
    return rows, read, messages


SUPERSEDE_RULE = ("where several results cover the same (dataset, architecture, width, weights, classifier, "
                  "protocol), the one whose runs (seeds) are a superset of every other's is shown; failing "
                  "that, the newest file; the others are named")
_SAME = ("dataset", "arch", "width", "weights", "classifier", "protocol")


def _newest(path) -> int:
    try:
        return Path(path).stat().st_mtime_ns
    except OSError:
        return 0


def supersede(candidates) -> tuple[list[dict], list[str], list[str]]:
    """``(rows, files read, messages)`` from ``[(row, file)]``: one row per setting (``_SAME``), chosen by
    ``SUPERSEDE_RULE``; each row shown gets ``superseded`` (the files it replaced) and each other file
    a message naming the one shown instead."""
    groups: dict = {}
    for row, f in candidates:
        groups.setdefault(tuple(row[k] for k in _SAME), []).append((row, f))
    rows, notes, read = [], [], []
    for key, group in groups.items():
        seeds = [set(map(str, row["seeds"])) for row, _ in group]
        superset = [i for i, s in enumerate(seeds) if all(s >= t for t in seeds)]
        # a superset of the runs wins (the newest among equal sets of runs); else the newest file
        pick = max(superset or range(len(group)), key=lambda i: (_newest(group[i][1]), str(group[i][1])))
        why = "a superset of the runs" if superset and any(seeds[pick] > t for t in seeds) else "the newest"
        row, f = group[pick]
        others = [str(g) for i, (_, g) in enumerate(group) if i != pick]
        row = dict(row, superseded=others)
        for i, (other, g) in enumerate(group):
            if i != pick:
                notes.append(f"superseded {g} (seeds {sorted(seeds[i])}) by {f} (seeds {sorted(seeds[pick])}, "
                             f"{why}) for {'/'.join(map(str, key))}")
        rows.append(row)
    for row, f in candidates:  # files in path order, each once, if any of its rows is shown
        if any(r["source"] == str(f) for r in rows) and str(f) not in read:
            read.append(str(f))
    return rows, read, notes  # one row per setting, in the order the settings first appear
