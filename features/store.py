"""Where a feature set lives and how it is written: the resumable chunks of a run in progress, the
configuration key that decides whether earlier work can be reused, and the final ``features.npz`` +
``meta.json`` (see ``docs/formats.md``). Every file is written atomically (temp file + rename).
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from features import audio
from features.provenance import atomic_save_npz, atomic_write_json, run_record

__all__ = ["Chunks", "config_key", "sha1_file", "feature_set_dir", "checkpoint_fold",
           "write_feature_set", "summary"]


class ExtractionError(RuntimeError):
    """Nothing could be extracted (every clip failed), or the request itself is invalid."""


@dataclass
class Chunks:
    """Finished batches of one run, kept on disk until the feature set is written."""
    folder: Path
    done: dict = field(default_factory=dict)  # chunk index -> (indices, X, skipped)

    def load(self, key: str):
        cfg = self.folder / "config.json"
        if cfg.exists() and json.loads(cfg.read_text()).get("key") != key:
            shutil.rmtree(self.folder)  # left by another configuration: useless here
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(cfg, {"key": key})
        for f in sorted(self.folder.glob("chunk_*.npz")):
            try:
                with np.load(f, allow_pickle=False) as z:
                    self.done[int(f.stem.split("_")[1])] = (
                        z["indices"], z["X"], json.loads(str(z["skipped"])), z["timing"])
            except (OSError, ValueError, KeyError):
                f.unlink(missing_ok=True)  # damaged: recomputed

    def save(self, c: int, indices, X, skipped, timing):
        """``timing`` = (decode_s, compute_s, wall_s) of this chunk, so resumed runs report true rates."""
        timing = np.asarray(timing, np.float64)
        atomic_save_npz(self.folder / f"chunk_{c:06d}.npz", indices=np.asarray(indices, np.int64),
                        X=X, skipped=np.array(json.dumps(skipped)), timing=timing)
        self.done[c] = (np.asarray(indices), X, skipped, timing)


def config_key(cfg: dict, clips, weights_sha: str | None) -> str:
    # how the work is spread (engine, workers, cluster) does not change a single number
    ident = json.dumps({k: cfg[k] for k in sorted(cfg)
                        if k not in ("workers", "out", "cache_dir", "engine", "address")},
                       sort_keys=True, default=str)
    listing = "\n".join(f"{c.id}\t{c.label}\t{c.path}" for c in clips)
    text = f"{ident}\n{weights_sha}\n{torch.__version__}\n{listing}"
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def sha1_file(path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def feature_set_dir(out, dataset: str, arch: str, width: str, weights_name: str, seed: int) -> Path:
    # every architecture name ("7x96", "timbral+temporal") is a valid folder name as it is
    return Path(out) / dataset / f"{arch}_{width}_{weights_name}_seed{seed}"




def checkpoint_fold(weights):
    if weights is None or not Path(str(weights)).is_file():
        return None
    fold = torch.load(weights, map_location="cpu", weights_only=False).get("fold")
    return None if fold is None else int(fold)


def write_feature_set(folder, model, ds, chunks, cfg, key, spec, arch, width, weights_name, weights,
                       seed, session_s, warned, progress) -> Path:
    order = sorted(chunks.done)
    decode_s, compute_s, total_s = np.sum([chunks.done[c][3] for c in order], axis=0)
    indices = np.concatenate([chunks.done[c][0] for c in order]).astype(np.int64)
    X = np.concatenate([chunks.done[c][1] for c in order]).astype(np.float32)
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
    else:
        arrays["fold"] = np.array([c.fold for c in clips], dtype=np.int64)
    layers, start = [], 0
    for name, ch in model.layers:
        layers.append({"name": name, "channels": int(ch), "start": start, "stop": start + int(ch)})
        start += int(ch)
    assert start == X.shape[1], (start, X.shape)
    from architectures import cost
    shape = (spec.length,) if spec.kind == "waveform" else (spec.length, audio.N_MELS)
    meta = {
        "arch": arch, "width": width, "weights": weights_name,
        "checkpoint": str(weights) if weights else None, "seed": seed, "dataset": ds.name,
        # the fold a trained model held out (None: random weights, or a model of a split dataset);
        # the grid scores fold k of a cross-validated dataset only with fold k's own model
        "model_fold": checkpoint_fold(weights),
        "root": str(ds.root) if ds.root else None, "classes": list(ds.classes),
        "feature_length": int(X.shape[1]), "layers": layers, "dims": getattr(model, "dims", {}),
        "n_clips": int(len(indices)), "skipped": skipped, "protocol_hint": ds.protocol_hint,
        "input": spec.__dict__, "n_params": int(cost.count_params(model)),
        # an external HEAR module is opaque: its cost is not ours to count
        "gflop_per_clip": None if getattr(model, "opaque_cost", False) else
        float(cost.flops_per_clip(model, shape)) / 1e9,
        "warnings": [{"message": m, "clips": ids[:20], "n_clips": len(ids)}
                     for m, ids in sorted(warned.items())],
        # summed over every session that computed a part (a resumed run counts its earlier parts)
        "timings": {"decode_s": round(float(decode_s), 3), "compute_s": round(float(compute_s), 3),
                    "total_s": round(float(total_s), 3), "this_session_s": round(session_s, 3),
                    "clips_per_s": round(len(indices) / total_s, 3) if total_s > 0 else None,
                    "device": str(next(iter(model.parameters()), torch.empty(0)).device)},
        "config_key": key,
        **run_record(cfg),
    }
    atomic_save_npz(folder / "features.npz", **arrays)
    atomic_write_json(folder / "meta.json", meta)
    shutil.rmtree(chunks.folder, ignore_errors=True)
    if progress:
        summary(arch, meta, warned)
    return folder


def summary(arch, meta, warned):
    t = meta["timings"]
    print(f"{arch}: {meta['n_clips']} clips x {meta['feature_length']} features "
          f"({t['clips_per_s']} clips/s; decode {t['decode_s']} s in workers, network {t['compute_s']} s)",
          file=sys.stderr)
    for m, ids in sorted(warned.items()):
        print(f"  warning ({len(ids)} clips, e.g. {ids[0]}): {m}", file=sys.stderr)
    if meta["skipped"]:
        print(f"  skipped {len(meta['skipped'])} clips (listed in meta.json):", file=sys.stderr)
        for s in meta["skipped"][:10]:
            print(f"    {s['path']}: {s['reason']}", file=sys.stderr)
        if len(meta["skipped"]) > 10:
            print(f"    ... and {len(meta['skipped']) - 10} more", file=sys.stderr)
