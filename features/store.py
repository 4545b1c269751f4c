"""Where a feature set lives, what names it, and when earlier work may be reused.

The identity model of extraction (``docs/formats.md``, "Feature set"):

- **Settings key** (:func:`settings_key`): SHA-256 of every setting that changes a number: architecture,
  width, seed, input length and padding, batch norm, dataset name and resolved root / manifest / split
  folder, the weights' SHA-256 and a custom front-end's ``identity``, dtype, device type, batch size,
  the torch version and :func:`code_version` (the source files that determine feature bytes).
- **Config key** (:func:`config_key`): the settings key plus ``datasets.dataset_key`` (every clip's id,
  label, split, fold, file size and mtime). It names everything that determines ``features.npz``.
- **One folder, one key**: ``<out>/<dataset>/<arch>_<width>_<weights>_seed<N>[_fold<K>]-<key[:12]>``.
  Another key gets another folder, so no run ever replaces or deletes another configuration's work.
  Two runs of the same key serialise on a hidden ``.<folder>.lock`` (``fcntl.flock``); the second waits, then
  finds the work done.
- **Chunks carry their key** and their clip range; one with a foreign key or another range is never used.
- **Verified reuse**: a folder is "already extracted" only when ``meta.json`` (written last) has the
  config key and the SHA-256 of the ``features.npz`` that is there now.
- **Changed audio**: rows of an earlier feature set with the same settings key are reused chunk by chunk
  where every batch of the chunk holds the same clips (ids, labels, sizes, mtimes) at the same batch
  positions, so the bytes equal a full run; other chunks (changed, new or shifted clips) are computed.
  Never with batch norm (a clip's features then depend on its batch mates' contents).

Every file is written atomically (temp file + rename) with the mode the umask gives.
"""
from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import shutil
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from audiodata import audio
from toolkit.provenance import (atomic_save_npz, atomic_write_json, file_stamp, folder_lock, run_record,  # noqa: F401
                                sha256_file, write_feature_files)
from toolkit.settings import folder_name, stable_key

__all__ = ["Chunks", "ExtractionError", "settings_key", "config_key", "code_version", "sha256_file",
           "safe_name", "readable_name", "feature_set_dir", "lock", "verified", "clip_stamps",
           "reusable_chunks", "checkpoint_info", "write_feature_set", "summary", "KEY_CHARS"]

KEY_CHARS = 12  # hex digits of the config key in a folder name (48 bits: no collision among a study's sets)
# the source files whose contents determine feature bytes (with extract's per-layer means, see extract)
CODE_FILES = ("architectures/*.py", "audiodata/audio.py", "audiodata/decode.py", "features/hear_adapter.py")
_REPO = Path(__file__).resolve().parent.parent


class ExtractionError(RuntimeError):
    """Nothing could be extracted (every clip failed), or the request itself is invalid."""


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- identity

@lru_cache(maxsize=8)
def _files_digest(patterns: tuple) -> str:
    h = hashlib.sha256()
    for pattern in patterns:
        for path in sorted(_REPO.glob(pattern)):
            h.update(f"{path.relative_to(_REPO).as_posix()}\n".encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def code_version(functions=()) -> str:
    """SHA-256 of the source that determines feature bytes: ``CODE_FILES`` and the source of
    ``functions`` (extract's per-layer means and batching). Comments count: a changed file is a
    changed version, which at worst recomputes a feature set that would have come out the same."""
    h = hashlib.sha256(_files_digest(CODE_FILES).encode())
    for fn in functions:
        h.update(inspect.getsource(fn).encode())
    return h.hexdigest()


def settings_key(settings: dict) -> str:
    """SHA-256 of the settings (a JSON-able dict), independent of key order."""
    return stable_key(settings)  # toolkit.settings: the one way settings become a key


def config_key(settings_sha: str, dataset_sha: str) -> str:
    """The key of a feature set: its settings and its clip list (``datasets.dataset_key``)."""
    return hashlib.sha256(f"settings {settings_sha}\ndataset {dataset_sha}\n".encode()).hexdigest()


def clip_stamps(clips) -> list:
    """``[id, label, size, mtime_ns]`` of every clip, in order (``None`` size / mtime: missing file), with
    the file's SHA-256 appended when the clip carries one (``--verify-audio content``)."""
    out = []
    for c in clips:
        sha = [c.sha256] if getattr(c, "sha256", None) else []
        st = file_stamp(c.path)
        out.append([c.id, c.label, *(st if st is not None else (None, None))] + sha)
    return out


def safe_name(text: str) -> str:
    """A folder-name-safe form of any ``--arch`` string (``toolkit.settings.folder_name``); the key
    suffix keeps names distinct."""
    return folder_name(text, empty="arch")


def readable_name(arch: str, width: str, weights_name: str, seed: int, fold=None) -> str:
    return (f"{safe_name(arch)}_{safe_name(width)}_{safe_name(weights_name)}_seed{seed}"
            + (f"_fold{fold}" if fold is not None else ""))


def feature_set_dir(out, dataset: str, readable: str, key: str) -> Path:
    """``<out>/<dataset>/<readable>-<key[:KEY_CHARS]>``; ``ExtractionError`` when ``out`` is a file."""
    out = Path(out)
    for p in (out, out / dataset):
        if p.exists() and not p.is_dir():
            raise ExtractionError(f"--out {out}: {p} is a file, expected a folder (or a path to create)")
    return out / dataset / f"{readable}-{key[:KEY_CHARS]}"


@contextlib.contextmanager
def lock(folder: Path):
    """Hold ``.<folder>.lock`` beside it (``toolkit.provenance.folder_lock``): a second run of the same key
    waits for the first."""
    try:
        with folder_lock(folder, say=_say):
            yield
    except (FileExistsError, NotADirectoryError) as e:
        raise ExtractionError(f"cannot create {Path(folder).parent}: a part of it is a file ({e})") from e


def read_meta(folder: Path) -> dict | None:
    """``meta.json`` of ``folder`` as a dict, or ``None`` when absent, unreadable or not a JSON object."""
    try:
        meta = json.loads((Path(folder) / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return meta if isinstance(meta, dict) else None


def verified(folder: Path, key: str) -> bool:
    """True when ``folder`` holds a finished feature set of ``key`` whose ``features.npz`` still has the
    SHA-256 that ``meta.json`` recorded. Says why when a folder is there but cannot be trusted."""
    folder = Path(folder)
    if not folder.exists():
        return False
    meta_path, npz = folder / "meta.json", folder / "features.npz"
    meta = read_meta(folder)
    why = None
    if meta is None:
        why = f"{meta_path} is missing, unreadable or not a JSON object"
    elif meta.get("config_key") != key:
        why = f"{meta_path} names another configuration ({str(meta.get('config_key'))[:KEY_CHARS]})"
    elif not npz.is_file():
        why = f"{npz} is missing"
    elif meta.get("features_sha256") != sha256_file(npz):
        why = f"{npz} does not have the SHA-256 recorded in meta.json (truncated or replaced)"
    if why is None:
        return True
    _say(f"{folder.name}: recomputing: {why}")
    return False


def checkpoint_info(weights) -> dict:
    """What a trained checkpoint says about the model: seed, width, fold, folds, fold seed, the clips
    it trained and validated on, and its SHA-256. Old checkpoints lack some keys: they come back
    ``None`` (``config`` is searched for seed and width)."""
    from architectures.checkpoint import CheckpointError, read_checkpoint
    try:
        ckpt = read_checkpoint(weights)
    except CheckpointError as e:
        raise ExtractionError(str(e)) from e
    config = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else {}

    def pick(name):
        value = ckpt.get(name)
        return config.get(name) if value is None else value

    def as_int(name, value):
        if value is None:
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ExtractionError(f"checkpoint {weights}: {name} {value!r} is not an integer") from None

    ids = None
    if ckpt.get("train_ids") is not None or ckpt.get("val_ids") is not None:
        ids = sorted({str(i) for i in list(ckpt.get("train_ids") or []) + list(ckpt.get("val_ids") or [])})
    return {"model_seed": as_int("seed", pick("seed")), "width": pick("width"),
            "model_fold": as_int("fold", ckpt.get("fold")), "model_folds": as_int("folds", pick("folds")),
            "model_fold_seed": as_int("fold_seed", pick("fold_seed")), "model_train_ids": ids,
            "model_dataset": ckpt.get("dataset"), "model_dataset_key": ckpt.get("dataset_key"),
            "checkpoint_sha256": sha256_file(weights)}


# ----------------------------------------------------------------------------- chunks

@dataclass
class Chunks:
    """Finished chunks of one run (``<feature set>.partial/chunk_NNNNNN.npz``), kept until the feature set
    is written. Each file holds its config ``key`` and clip range ``lo``, ``hi``."""
    folder: Path
    key: str = ""
    done: dict = field(default_factory=dict)  # chunk index -> (indices, X, skipped, timing)
    crop: dict = field(default_factory=dict)  # chunk index -> compute_chunk's crop record (None: not known)
    chunk_range: object = None  # chunk index -> (lo, hi), set by load()

    def load(self, key: str, chunk_range, n_chunks: int):
        """Read the finished chunks of ``key``; delete damaged ones and any of another key or range."""
        self.key, self.chunk_range = key, chunk_range
        self.folder.mkdir(parents=True, exist_ok=True)
        # for people: which configuration this folder belongs to (never read back for a decision)
        atomic_write_json(self.folder / "config.json", {"key": key})
        for f in sorted(self.folder.glob("chunk_*.npz")):
            why = None
            try:
                c = int(f.stem.split("_")[1])
                with np.load(f, allow_pickle=False) as z:
                    if str(z["key"]) != key:
                        why = "it belongs to another configuration"
                    elif c >= n_chunks or (int(z["lo"]), int(z["hi"])) != chunk_range(c):
                        why = "its clip range is not this run's"
                    else:
                        entry = (z["indices"], z["X"], json.loads(str(z["skipped"])), z["timing"])
                        crop = json.loads(str(z["crop"])) if "crop" in z.files else None
            except Exception as e:  # zero bytes, cut short, missing members, a stray file name
                why = f"damaged ({type(e).__name__}: {e})"
            if why is None:
                self.done[c] = entry
                self.crop[c] = crop
            else:
                _say(f"{f}: not used, {why}; recomputed")
                with contextlib.suppress(OSError):
                    f.unlink()

    def save(self, c: int, indices, X, skipped, timing, crop=None):
        """``timing`` = (decode_s, compute_s, wall_s) of this chunk, so resumed runs report true rates;
        ``crop`` = which clips were cut or windowed (``compute_chunk``), or None where not known."""
        timing = np.asarray(timing, np.float64)
        indices = np.asarray(indices, np.int64)
        lo, hi = self.chunk_range(c)
        atomic_save_npz(self.folder / f"chunk_{c:06d}.npz", key=np.array(self.key), lo=np.int64(lo),
                        hi=np.int64(hi), indices=indices, X=X, skipped=np.array(json.dumps(skipped)),
                        timing=timing, **({} if crop is None else {"crop": np.array(json.dumps(crop))}))
        self.done[c] = (indices, X, skipped, timing)
        self.crop[c] = crop


def reusable_chunks(out_dataset: Path, settings_sha: str, key: str, stamps: list, batch_size: int,
                    chunk_range, n_chunks: int) -> tuple[dict, Path | None]:
    """Chunks whose rows an earlier, verified feature set of the same settings already holds.

    A chunk is reusable when, for each of its batches, the earlier set's batch at the same batch
    position held exactly the same clips (id, label, size, mtime): the numbers are then those a full
    run computes. Returns ``({chunk: (indices, X, skipped, timing)}, the folder reused)``.
    """
    best, best_meta = None, None
    for meta_path in Path(out_dataset).glob("*/meta.json"):
        folder = meta_path.parent
        meta = read_meta(folder)
        if not meta or meta.get("settings_key") != settings_sha or meta.get("config_key") == key:
            continue
        if best_meta is None or str(meta.get("created", "")) > str(best_meta.get("created", "")):
            best, best_meta = folder, meta
    if best is None or not isinstance(best_meta.get("clips"), list):
        return {}, None
    try:
        if best_meta.get("features_sha256") != sha256_file(best / "features.npz"):
            return {}, None
        with np.load(best / "features.npz", allow_pickle=False) as z:
            X_old, ids_old = z["X"], [str(i) for i in z["ids"]]
    except Exception:
        return {}, None
    old = [tuple(s) for s in best_meta["clips"]]
    pos_old = {s[0]: i for i, s in enumerate(old)}
    row_of = {i: r for r, i in enumerate(ids_old)}
    skipped_old = {s.get("id"): s for s in best_meta.get("skipped", []) if isinstance(s, dict) and s.get("id")}
    new = [tuple(s) for s in stamps]
    n = len(new)
    out = {}
    for c in range(n_chunks):
        lo, hi = chunk_range(c)
        same = True
        for b in range(lo, hi, batch_size):
            batch = new[b:min(n, b + batch_size)]
            j = pos_old.get(batch[0][0])
            if j is None or j % batch_size or old[j:min(len(old), j + batch_size)] != batch \
                    or any(s[2] is None for s in batch):
                same = False
                break
        if not same:
            continue
        ids = [new[i][0] for i in range(lo, hi)]
        if any(i not in row_of and i not in skipped_old for i in ids):
            continue
        indices = [i for i in range(lo, hi) if new[i][0] in row_of]
        X = X_old[[row_of[new[i][0]] for i in indices]] if indices else \
            np.zeros((0, X_old.shape[1]), np.float32)
        skipped = [skipped_old[i] for i in ids if i not in row_of]
        out[c] = (np.asarray(indices, np.int64), np.ascontiguousarray(X, np.float32), skipped,
                  np.zeros(3, np.float64))
    return out, best


# ----------------------------------------------------------------------------- the feature set

def write_feature_set(run, session_s: float, warned: dict, progress: bool, extra_meta: dict) -> Path:
    """Write ``features.npz``, then ``meta.json`` (last, with the npz's SHA-256), then drop the chunks.

    A stale ``meta.json`` is removed first: a crash at any point leaves nothing a later run trusts.
    """
    folder, ds, chunks, model, spec = run.folder, run.ds, run.chunks, run.model, run.spec
    order = sorted(chunks.done)
    decode_s, compute_s, total_s = np.sum([chunks.done[c][3] for c in order], axis=0)
    indices = np.concatenate([chunks.done[c][0] for c in order]).astype(np.int64, copy=False)
    X = np.concatenate([chunks.done[c][1] for c in order]).astype(np.float32, copy=False)
    skipped = [s for c in order for s in chunks.done[c][2]]
    skipped = [{"path": str(p["path"]), "id": p.get("id"), "reason": p["reason"]}
               for p in getattr(ds, "problems", [])] + skipped
    if len(indices) == 0:
        raise ExtractionError(f"nothing could be extracted from {len(ds.clips)} clips of "
                              f"{ds.name!r}; first problems: "
                              + "; ".join(f"{s['path']}: {s['reason']}" for s in skipped[:5]))
    clips = [ds.clips[i] for i in indices]
    arrays = dict(X=X, y=np.array([c.label for c in clips]), ids=np.array([c.id for c in clips]))
    if ds.protocol_hint == "split":
        arrays["split"] = np.array([c.split for c in clips])
    elif ds.protocol_hint == "folds":
        arrays["fold"] = np.array([c.fold for c in clips], dtype=np.int64)
    layers, start = [], 0
    for name, ch in model.layers:
        layers.append({"name": name, "channels": int(ch), "start": start, "stop": start + int(ch)})
        start += int(ch)
    assert start == X.shape[1], (start, X.shape)
    from architectures import cost
    shape = (spec.length,) if spec.kind == "waveform" else (spec.length, audio.N_MELS)
    meta = {
        "arch": run.arch, "width": run.width, "weights": run.weights_name,
        "checkpoint": str(run.weights) if run.weights else None, "seed": run.seed, "dataset": ds.name,
        "root": str(ds.root) if ds.root else None, "classes": list(ds.classes),
        "feature_length": int(X.shape[1]), "layers": layers, "dims": getattr(model, "dims", {}),
        "n_clips": int(len(indices)), "skipped": skipped, "protocol_hint": ds.protocol_hint,
        **({"multilabel": ds.info["multilabel"]} if ds.info.get("multilabel") else {}),  # tags manifest
        "input": spec.__dict__, "n_params": int(cost.count_params(model)),
        # an external HEAR module is opaque: its cost is not ours to count
        "gflop_per_clip": None if getattr(model, "opaque_cost", False) else
        float(cost.flops_per_clip(model, shape)) / 1e9,
        "warnings": [{"message": m, "clips": ids[:20], "n_clips": len(ids)}
                     for m, ids in sorted(warned.items())],
        "crop": crop_record(spec, [chunks.crop.get(c) for c in order], int(len(indices))),
        # summed over every session that computed a part (a resumed run counts its earlier parts)
        "timings": {"decode_s": round(float(decode_s), 3), "compute_s": round(float(compute_s), 3),
                    "total_s": round(float(total_s), 3), "this_session_s": round(session_s, 3),
                    "clips_per_s": round(len(indices) / total_s, 3) if total_s > 0 else None,
                    "device": str(next(iter(model.parameters()), torch.empty(0)).device)},
        **extra_meta,
        **run_record(run.cfg),
    }
    meta = write_feature_files(folder, arrays, meta)
    shutil.rmtree(chunks.folder, ignore_errors=True)
    if progress:
        summary(run.arch, meta, warned)
    return folder


def crop_record(spec, per_chunk: list, n_clips: int) -> dict:
    """What ``--crop`` did: how many clips were longer than the input and by how much (start, center),
    or how many were read as several windows (windows). ``clips_counted`` < ``n_clips`` when rows were
    reused from an earlier feature set that did not record it."""
    known = [c for c in per_chunk if c is not None]
    cut = [s for c in known for _, s in c.get("cut", [])]
    win = [k for c in known for _, k in c.get("windows", [])]
    rec = {"rule": getattr(spec, "crop", "start"), "clips_counted": n_clips if len(known) == len(per_chunk)
           else None, "n_cut": len(cut), "cut_s_mean": round(float(np.mean(cut)), 3) if cut else 0.0,
           "cut_s_max": round(float(max(cut)), 3) if cut else 0.0, "n_windowed": len(win),
           "windows_max": int(max(win)) if win else 1,
           "cut_examples": [i for c in known for i, _ in c.get("cut", [])][:20]}
    return rec


def crop_line(meta) -> str | None:
    """One line saying what the network did not see, or None when it saw every clip whole."""
    crop, n = meta.get("crop") or {}, meta["n_clips"]
    if crop.get("n_cut"):
        where = "middle" if crop["rule"] == "center" else "start"
        return (f"  crop {crop['rule']}: {crop['n_cut']} of {n} clips were longer than the input and were "
                f"read at their {where} only ({crop['cut_s_mean']} s left out on average, at most "
                f"{crop['cut_s_max']} s); --crop windows reads them whole")
    if crop.get("n_windowed"):
        return (f"  crop windows: {crop['n_windowed']} of {n} clips were read as consecutive windows (at most "
                f"{crop['windows_max']}), their features averaged")
    return None


def summary(arch, meta, warned):
    t = meta["timings"]
    print(f"{arch}: {meta['n_clips']} clips x {meta['feature_length']} features "
          f"({t['clips_per_s']} clips/s; decode {t['decode_s']} s in workers, network {t['compute_s']} s)",
          file=sys.stderr)
    line = crop_line(meta)
    if line:
        print(line, file=sys.stderr)
    est = meta.get("estimate")
    if est and est.get("seconds") is not None:
        took = t["this_session_s"]
        ratio = f", x{took / est['seconds']:.2f} the estimate" if est["seconds"] > 0 else ""
        print(f"  time: estimated {est['seconds']:.0f} s ({est['basis']}), took {took:.0f} s{ratio}",
              file=sys.stderr)
    for m, ids in sorted(warned.items()):
        print(f"  warning ({len(ids)} clips, e.g. {ids[0]}): {m}", file=sys.stderr)
    if meta["skipped"]:
        print(f"  skipped {len(meta['skipped'])} clips (listed in meta.json):", file=sys.stderr)
        for s in meta["skipped"][:10]:
            print(f"    {s['path']}: {s['reason']}", file=sys.stderr)
        if len(meta["skipped"]) > 10:
            print(f"    ... and {len(meta['skipped']) - 10} more", file=sys.stderr)
