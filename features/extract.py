"""Audio -> front-end -> the mean of every feature map of every layer, concatenated -> a feature set.

``python -m features.extract --arch sample-level`` runs it on the embedded synthetic dataset; ``--help``
lists the options. From Python::

    from features.extract import build_frontend, embed, extract
    model = build_frontend("vgg", width="small", seed=0)
    X = embed(model, [wave1, wave2], sr=22050)        # (2, 120) float32
    path = extract("vgg", dataset="gtzan", root="/data/gtzan", split_dir="splits/")

A feature set is a folder with ``features.npz`` and ``meta.json`` (see ``docs/formats.md``). Extraction is
resumable: finished batches are kept in ``<feature set>.partial/`` and reused when the same configuration
is run again, and a finished feature set with the same configuration is not recomputed.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

import architectures
from features import audio, datasets
from features.decode import InputSpec, iter_prepared
from architectures.custom import is_custom_spec
from features.store import (Chunks, ExtractionError, checkpoint_fold, config_key, feature_set_dir,
                            sha1_file, write_feature_set)

SAMPLECNN = "samplecnn"  # trained.train's end-to-end model; its blocks read out like a front-end's

__all__ = ["extract", "extract_many", "build_frontend", "embed", "layer_means", "input_spec",
           "plan", "compute_chunk", "iter_inputs", "Run", "ExtractionError"]

DEFAULT_OUT = Path("runs/features")
DEFAULT_CACHE = Path("runs/cache/audio")
CHUNK_BATCHES = 4  # batches per resumable chunk: small enough to lose little, large enough to be cheap
HEAR_PREFIX = "hear:"  # --arch hear:MODULE runs an installed HEAR-API module as a front-end
ENGINES = ("local", "ray")




# ----------------------------------------------------------------------------- building blocks

def build_frontend(arch: str, width: str = "large", seed: int = 0, weights=None,
                   batchnorm: bool = False, custom: dict | None = None) -> torch.nn.Module:
    """A front-end with random weights from ``seed``, or the trained weights of checkpoint ``weights``.

    ``arch = "hear:MODULE"`` wraps an installed HEAR module (``features/hear_adapter.py``); ``weights``
    is then its ``model_file_path``. ``arch = "pkg.mod:Name"`` or ``"path/file.py:Name"`` wraps the
    user's module (``architectures/custom.py``; ``weights`` is then a state dict); ``custom`` holds its
    keywords ``options``, ``input``, ``init`` and ``layer_types``.
    """
    if is_custom_spec(arch):
        from architectures.custom import CustomFrontend
        return CustomFrontend(arch, seed=seed, width=width, weights=weights, **(custom or {}))
    if arch.startswith(HEAR_PREFIX):
        from features.hear_adapter import HearFrontend
        return HearFrontend(arch[len(HEAR_PREFIX):], model_file_path=weights or "")
    if weights is not None:
        from trained.checkpoint import load_frontend  # only needed for trained weights
        return load_frontend(weights, expected_arch=arch)
    if arch == SAMPLECNN:
        raise ExtractionError("samplecnn has no random-weight version here: pass --weights with a "
                              "checkpoint of `python -m trained.train --arch samplecnn`")
    kwargs = {"batchnorm": True} if batchnorm else {}
    return architectures.build(arch, width=width, seed=seed, **kwargs)


def layer_means(outputs) -> torch.Tensor:
    """Mean of each feature map over all its non-channel axes, concatenated: ``(batch, sum(C))``.

    float32: PyTorch's CPU reductions sum in cascades, so even a 116 666-step map's mean is within a
    few 1e-7 of the float64 one (``tests/test_extract.py`` checks it), while a float64 reduction
    (an up-cast of every element) cost more than the temporal network itself and ~0.4 s per
    sample-level clip.
    """
    means = []
    for out in outputs:
        if out.dim() == 2:
            means.append(out.float())
        else:
            means.append(out.float().mean(dim=tuple(range(2, out.dim()))))
    return torch.cat(means, dim=1)


def input_spec(model, input_seconds: float | None = None, pad: str = "repeat") -> InputSpec:
    """The input a front-end consumes: waveform samples or spectrogram frames at ``input_seconds``."""
    if hasattr(model, "input_spec"):  # e.g. a HEAR module: waveform at its own sample rate
        return model.input_spec(input_seconds, pad)
    n_samples, n_frames = audio.input_lengths(input_seconds)
    if model.input_kind == "waveform":
        return InputSpec("waveform", n_samples, pad)
    if model.input_kind == "spectrogram":
        return InputSpec("spectrogram", n_frames, pad)
    raise ValueError(f"front-end {type(model).__name__} has unknown input_kind {model.input_kind!r}")


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ExtractionError("--device cuda was asked for but torch sees no CUDA device "
                              f"(torch {torch.__version__}); use --device cpu or auto")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise ExtractionError(f"unknown device {device!r}; expected auto, cpu or cuda[:N]")
    return torch.device(device)


@torch.inference_mode()
def _features_of_batch(model, batch: np.ndarray, device: torch.device) -> np.ndarray:
    x = torch.from_numpy(batch).to(device, non_blocking=True)
    return layer_means(model.extract_features(x)).cpu().numpy()


def embed(model, waves, sr: int = audio.SAMPLE_RATE, input_seconds: float | None = None,
          pad: str = "repeat", device: str = "auto", batch_size: int = 8) -> np.ndarray:
    """Feature vectors of in-memory audio: ``waves`` is one 1-D array or a list of them (any length,
    at sample rate ``sr``; stereo as ``(channels, n)``). Returns ``(n_clips, feature_length)`` float32."""
    if isinstance(waves, np.ndarray) and waves.ndim == 1:
        waves = [waves]
    dev = resolve_device(device)
    model = model.to(dev).eval()
    spec = input_spec(model, input_seconds, pad)
    inputs = []
    for i, w in enumerate(waves):
        w = _as_mono(np.asarray(w, dtype=np.float32), sr, f"waves[{i}]")
        if spec.kind == "waveform":
            inputs.append(audio.waveform_input(w, spec.length, pad=pad))
        else:
            inputs.append(audio.spectrogram_input(w, spec.length, pad=pad))
    out = [_features_of_batch(model, np.stack(inputs[i:i + batch_size]).astype(np.float32), dev)
           for i in range(0, len(inputs), batch_size)]
    return np.concatenate(out).astype(np.float32)


def _as_mono(w: np.ndarray, sr: int, name: str) -> np.ndarray:
    if w.ndim == 2:
        w = w.mean(axis=0)  # (channels, n), librosa's convention
    if w.ndim != 1 or w.size == 0:
        raise ValueError(f"{name}: expected a non-empty (n,) or (channels, n) array, found shape {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError(f"{name}: has NaN or inf samples")
    if sr != audio.SAMPLE_RATE:
        import librosa
        w = librosa.resample(w, orig_sr=sr, target_sr=audio.SAMPLE_RATE, res_type=audio.RES_TYPE)
    return w


# ----------------------------------------------------------------------------- the run

@dataclass
class Run:
    """One planned extraction, shared by the engines: the clips, the model, where the chunks go.

    ``todo`` lists the chunk indices still to compute; chunk ``c`` holds clips
    ``[c * chunk_size, min(n, (c + 1) * chunk_size))`` and is computed in batches of ``batch_size``
    starting at ``c * chunk_size``, whichever engine computes it, so the numbers never depend on the engine
    or on how a run was interrupted.
    """
    arch: str
    ds: object
    model: torch.nn.Module
    spec: object
    folder: Path
    cfg: dict
    key: str
    chunks: Chunks
    todo: list
    chunk_size: int
    batch_size: int
    width: str
    weights_name: str
    weights: object
    seed: int
    t_start: float

    def chunk_range(self, c: int) -> tuple[int, int]:
        return c * self.chunk_size, min(len(self.ds.clips), (c + 1) * self.chunk_size)


def iter_inputs(paths, spec, cache_dir, workers: int = 2):
    """Prepared model inputs of ``paths`` in order (``features.decode.iter_prepared``; a ``spec`` with
    an ``sr`` decodes at that rate, for HEAR modules and SampleCNN)."""
    return iter_prepared(paths, spec, cache_dir, workers=workers)


def compute_chunk(model, dev, clips, lo: int, hi: int, batch_size: int, prepared, on_batch=None):
    """Features of the clips ``lo..hi`` (one chunk), in batches of ``batch_size`` from ``lo``.

    Parameters
    ----------
    model : nn.Module on ``dev``
    clips : sequence of objects with ``path`` and ``id`` (indexable by the global clip index)
    prepared : iterator of ``features.decode.Prepared`` for exactly the clips ``lo..hi``, in order
    on_batch : callable(n_clips), optional, called after every batch (progress bars)

    Returns
    -------
    indices : list of int, the clips that gave features, in order
    X : ndarray (len(indices), feature_length) float32
    skipped : list of {path, id, reason}
    timing : (decode_s, compute_s, wall_s)
    warned : dict message -> list of clip ids
    """
    idx_ok, feats, skipped, warned = [], [], [], {}
    decode_s = compute_s = 0.0
    t_chunk = time.perf_counter()
    for b in range(lo, hi, batch_size):
        # a batch always holds the same clips (those of [b, b + batch_size) that decoded), so an
        # interrupted run resumed later, or another engine, computes exactly the same numbers
        xs, ok = [], []
        for i in range(b, min(hi, b + batch_size)):
            p = next(prepared)
            decode_s += p.decode_s
            for w in p.warnings:
                warned.setdefault(w, []).append(clips[i].id)
            if p.error is not None:
                skipped.append({"path": str(clips[i].path), "id": clips[i].id, "reason": p.error})
            else:
                xs.append(p.x)
                ok.append(i)
        if xs:
            t0 = time.perf_counter()
            f = _features_of_batch(model, np.stack(xs), dev)
            compute_s += time.perf_counter() - t0
            finite = np.isfinite(f).all(axis=1)
            for j in np.flatnonzero(~finite):
                skipped.append({"path": str(clips[ok[j]].path), "id": clips[ok[j]].id,
                                "reason": "the network produced NaN or inf features"})
            idx_ok += [ok[j] for j in np.flatnonzero(finite)]
            feats.append(f[finite].astype(np.float32))
        if on_batch is not None:
            on_batch(min(hi, b + batch_size) - b)
    X = np.concatenate(feats) if feats else np.zeros((0, model.feature_length), np.float32)
    return idx_ok, X, skipped, (decode_s, compute_s, time.perf_counter() - t_chunk), warned


def extract(arch: str = "sample-level", dataset: str = "synthetic", root=None, split_dir=None,
            manifest=None, width: str = "large", input_seconds: float | None = None, seed: int = 0,
            device: str = "auto", batch_size: int = 8, workers: int = 2, out=DEFAULT_OUT,
            weights=None, pad: str = "repeat", batchnorm: bool = False, folds: int = 10,
            fold_seed: int = 0, cache_dir=DEFAULT_CACHE, ds=None, progress: bool = True,
            engine: str = "local", address: str | None = None, custom: dict | None = None,
            _stop_after_chunks=None, _ray_options=None) -> Path:
    """Extract one feature set and return its folder. See the module docstring and ``--help``.

    ``engine="ray"`` computes the chunks on Ray workers (``features/ray_engine.py``; ``workers`` is then
    the number of Ray workers and ``address`` an existing cluster's, or None for a local instance). Both
    engines write byte-identical feature sets and resume each other's unfinished runs.
    """
    if engine not in ENGINES:
        raise ExtractionError(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
    if engine == "ray":
        from features import ray_engine
        try:  # before anything else: a missing Ray or a bad address fails fast
            ray_engine.connect(address)
        except ray_engine.RayUnavailable as e:
            raise ExtractionError(str(e)) from e
        dev = ray_engine.resolve_device(device)
    else:
        dev = resolve_device(device)
    run = plan(arch, dataset=dataset, root=root, split_dir=split_dir, manifest=manifest, width=width,
               input_seconds=input_seconds, seed=seed, dev=dev, batch_size=batch_size, workers=workers,
               out=out, weights=weights, pad=pad, batchnorm=batchnorm, folds=folds, fold_seed=fold_seed,
               cache_dir=cache_dir, ds=ds, progress=progress, engine=engine, address=address,
               custom=custom)
    if isinstance(run, Path):
        return run  # already extracted with this configuration
    if engine == "ray":
        warned = ray_engine.run_chunks(run, dev, workers=workers, cache_dir=cache_dir, progress=progress,
                                       **(_ray_options or {}))
    else:
        warned = _run_local(run, dev, workers, cache_dir, progress, _stop_after_chunks)
    return write_feature_set(run.folder, run.model, run.ds, run.chunks, run.cfg, run.key, run.spec,
                              run.arch, run.width, run.weights_name, run.weights, run.seed,
                              time.perf_counter() - run.t_start, warned, progress)


def plan(arch, dataset="synthetic", root=None, split_dir=None, manifest=None, width="large",
         input_seconds=None, seed=0, dev=torch.device("cpu"), batch_size=8, workers=2, out=DEFAULT_OUT,
         weights=None, pad="repeat", batchnorm=False, folds=10, fold_seed=0, cache_dir=DEFAULT_CACHE,
         ds=None, progress=True, engine="local", address=None, custom=None):
    """Everything an engine needs (a :class:`Run`), or the feature set's folder when it is already done."""
    t_start = time.perf_counter()
    hear = arch.startswith(HEAR_PREFIX)
    if hear and seed != 0:
        raise ExtractionError(f"{arch}: a HEAR module brings its own weights; --seed must stay 0 (pass "
                              "options in --weights, e.g. 'seed=1' for this project's hear modules)")
    if ds is None:
        ds = datasets.load_dataset(dataset, root=root, split_dir=split_dir, manifest=manifest,
                                   folds=folds, seed=fold_seed)
    model = build_frontend(arch, width=width, seed=seed, weights=weights, batchnorm=batchnorm,
                           custom=custom).eval()
    identity = getattr(model, "identity", None)  # a user's module: spec, source sha, options, init
    arch = getattr(model, "arch_name", None) or arch  # a folder-safe name for any --arch string
    if engine == "local":  # the Ray engine's workers move their own copies (dev may exist only there)
        model = model.to(dev)
    if dev.type == "cuda" and engine == "local":
        torch.backends.cudnn.benchmark = False  # same seed, same features: fixed algorithms
        torch.backends.cudnn.deterministic = True
        # float32 means float32: no TF32 tensor-core rounding (PyTorch allows it for cuDNN convs by default)
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    spec = input_spec(model, input_seconds, pad)
    weights_name = getattr(model, "weights_name", None) or ("trained" if weights is not None else "random")
    fold_of_ckpt = None if hear else checkpoint_fold(weights)
    folder = feature_set_dir(out, ds.name, arch.replace(":", "-"), width, weights_name, seed)
    if fold_of_ckpt is not None:
        folder = folder.with_name(folder.name + f"_fold{fold_of_ckpt}")
    if hear and weights:  # one folder per model file / options string
        folder = folder.with_name(folder.name + "_" + hashlib.sha1(str(weights).encode()).hexdigest()[:8])
    cfg = dict(arch=arch, dataset=ds.name, root=str(ds.root) if ds.root else None,
               split_dir=str(split_dir) if split_dir else None,
               manifest=str(manifest) if manifest else None, width=width,
               input_seconds=input_seconds, seed=seed, device=dev.type, batch_size=batch_size,
               workers=workers, out=str(out), weights=str(weights) if weights else None, pad=pad,
               batchnorm=batchnorm, folds=folds, fold_seed=fold_seed, cache_dir=str(cache_dir) if cache_dir else None,
               input=spec.__dict__, dtype="float32", engine=engine, address=address, identity=identity)
    weights_file = weights is not None and Path(weights).is_file()
    key = config_key(cfg, ds.clips, sha1_file(weights) if weights_file else None)

    meta_path = folder / "meta.json"
    if meta_path.exists() and (folder / "features.npz").exists():
        try:
            if json.loads(meta_path.read_text()).get("config_key") == key:
                if progress:
                    print(f"{arch}: already extracted with this configuration, nothing to do")
                return folder
        except ValueError:
            pass  # unreadable meta: recompute

    chunks = Chunks(folder.with_name(folder.name + ".partial"))
    chunks.load(key)
    n = len(ds.clips)
    chunk_size = batch_size * CHUNK_BATCHES
    todo = [c for c in range((n + chunk_size - 1) // chunk_size) if c not in chunks.done]
    return Run(arch, ds, model, spec, folder, cfg, key, chunks, todo, chunk_size, batch_size, width,
               weights_name, weights, seed, t_start)


def _run_local(run: Run, dev, workers, cache_dir, progress, stop_after=None) -> dict:
    """Compute ``run.todo`` in this process (decoding in ``workers`` threads); returns the warnings."""
    clips = run.ds.clips
    n = len(clips)
    todo_idx = [i for c in run.todo for i in range(*run.chunk_range(c))]
    warned = {}
    bar = tqdm(total=n, initial=n - len(todo_idx), unit="clip", desc=run.arch, disable=not progress,
               dynamic_ncols=True, file=sys.stderr)
    prepared = iter_inputs([clips[i].path for i in todo_idx], run.spec, cache_dir, workers=workers)
    try:
        for c in run.todo:
            lo, hi = run.chunk_range(c)
            idx_ok, X, skipped, timing, w = compute_chunk(run.model, dev, clips, lo, hi, run.batch_size,
                                                          prepared, on_batch=bar.update)
            merge_warnings(warned, w)
            run.chunks.save(c, idx_ok, X, skipped, timing)
            if stop_after is not None and len(run.chunks.done) >= stop_after:
                raise KeyboardInterrupt("stopped for a test")
    finally:
        bar.close()
        if hasattr(prepared, "close"):
            prepared.close()
    return warned


def merge_warnings(into: dict, new: dict) -> dict:
    for message, ids in new.items():
        into.setdefault(message, []).extend(ids)
    return into


def extract_many(archs, seeds=(0,), weights=None, **kwargs) -> list[Path]:
    """Several architectures and seeds over one dataset, decoding each file once (the cache).

    ``weights`` is a list of checkpoints (one feature set each, e.g. one per fold) for a single arch.
    A failed architecture is reported and the others go on; raises only when none succeeded.
    """
    names = kwargs.pop("dataset", "synthetic")
    ds = datasets.load_dataset(names, root=kwargs.get("root"), split_dir=kwargs.get("split_dir"),
                               manifest=kwargs.get("manifest"), folds=kwargs.get("folds", 10),
                               seed=kwargs.get("fold_seed", 0))
    jobs = [(a, s, None) for a in archs for s in seeds] if not weights else \
        [(archs[0], seeds[0], w) for w in weights]
    written, failed = [], []
    for arch, seed, w in jobs:
        try:
            path = extract(arch, dataset=names, seed=seed, weights=w, ds=ds, **kwargs)
        except (ExtractionError, ValueError, RuntimeError) as e:
            failed.append((arch, seed, str(e)))
            print(f"{arch} (seed {seed}) failed: {e}", file=sys.stderr)
            continue
        written.append(path)
        print(path, flush=True)
    if failed and written:
        print(f"{len(failed)} of {len(jobs)} feature sets failed: "
              + ", ".join(f"{a} seed {s}" for a, s, _ in failed), file=sys.stderr)
    if not written:
        raise ExtractionError("no feature set could be written: "
                              + "; ".join(f"{a} seed {s}: {e}" for a, s, e in failed))
    return written


def parse_args(argv=None):
    names = list(architectures.ARCHITECTURES)
    p = argparse.ArgumentParser(
        prog="python -m features.extract",
        description="Run audio through random-weight (or trained) CNN front-ends and write, per clip, "
                    "the mean of every feature map of every layer. Writes one feature set folder "
                    "(features.npz + meta.json) per architecture and seed; the last line printed is "
                    "the path of the last one. With no options: sample-level on the embedded synthetic "
                    "dataset (generated on first use).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--arch", nargs="+", default=["sample-level"], metavar="NAME",
                   help=f"front-end(s), or 'all'. Choices: {', '.join(names)}; or hear:MODULE for any "
                        "installed module with the HEAR API (its model_file_path goes in --weights); or "
                        "your own nn.Module: pkg.module:Class or path/to/file.py:factory "
                        "(docs/own-architecture.md)")
    p.add_argument("--arch-options", nargs="+", default=None, metavar="OPT",
                   help="your own --arch: keyword options of its class or factory, as JSON "
                        "('{\"filters\": 64}') or key=value pairs")
    p.add_argument("--input", default=None, choices=["waveform", "log-mel"],
                   help="your own --arch, when the module declares no input_kind: 12 kHz waveform "
                        "(batch, samples) or the study's log-mel (batch, frames, 96)")
    p.add_argument("--keep-init", action="store_true",
                   help="your own --arch: keep the weights as the module builds them (under "
                        "torch.manual_seed(--seed)) instead of the study's init from --seed")
    p.add_argument("--layer-types", default=None, metavar="TYPES",
                   help="your own --arch: read these layers by forward hooks, comma-separated: conv, "
                        "pool, linear or class names (default: the module's extract_features when it "
                        "has one, else conv,pool)")
    p.add_argument("--dataset", default="synthetic", choices=list(datasets.DATASETS),
                   help="dataset layout to read")
    p.add_argument("--root", default=None, help="dataset folder (synthetic: generated here if absent)")
    p.add_argument("--split-dir", default=None,
                   help="gtzan: folder with train_filtered.txt / valid_filtered.txt / test_filtered.txt; "
                        "without it, 10 stratified folds")
    p.add_argument("--manifest", default=None, help="csv dataset: the manifest file (path,label[,split|fold])")
    p.add_argument("--width", default="large", choices=["large", "small"],
                   help="large: the study's ~3584 features; small: ~120")
    p.add_argument("--input-seconds", type=float, default=None,
                   help="input length; default: the study's 350000 samples / 1376 frames (about 29 s)")
    p.add_argument("--pad", default="repeat", choices=["repeat", "zero"],
                   help="how clips shorter than the input are filled")
    p.add_argument("--seed", type=int, nargs="+", default=[0],
                   help="random-weight seed(s); the study averages 3 runs (e.g. --seed 0 1 2)")
    p.add_argument("--weights", nargs="+", default=None, metavar="CHECKPOINT",
                   help="trained checkpoint(s) from trained.train (one feature set each) instead of random weights")
    p.add_argument("--batchnorm", action="store_true",
                   help="study tool: batch norm with batch statistics, which leaks labels across a batch")
    p.add_argument("--folds", type=int, default=10, help="folds for datasets without predefined splits")
    p.add_argument("--fold-seed", type=int, default=0,
                   help="shuffling seed of those folds (kept apart from --seed so every run shares folds)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--workers", type=int, default=2,
                   help="local engine: decoding threads (0: decode in the main thread); ray engine: Ray "
                        "workers, each decoding and embedding whole chunks with its own copy of the model")
    p.add_argument("--engine", default="local", choices=list(ENGINES),
                   help="local: this process; ray: Ray workers (CPU, or one GPU each with --device cuda), "
                        "same feature set byte for byte. Needs pip install '.[ray]'")
    p.add_argument("--address", default=None,
                   help="ray engine: address of an existing Ray cluster (host:port, ray://host:10001 or "
                        "auto); default: start a local Ray instance")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="output folder")
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE), help="decoded-audio cache ('none' disables)")
    a = p.parse_args(argv)
    if a.arch == ["all"]:
        a.arch = names
    unknown = [x for x in a.arch if x not in names and x != SAMPLECNN and not x.startswith(HEAR_PREFIX)
               and not is_custom_spec(x)]
    if unknown:
        p.error(f"unknown architecture {unknown[0]!r}; available: {', '.join(names)}, all "
                f"({SAMPLECNN} with --weights; hear:MODULE for a HEAR module; pkg.module:Class or "
                f"path/to/file.py:factory for your own)")
    if SAMPLECNN in a.arch and not a.weights:
        p.error(f"--arch {SAMPLECNN} reads out a trained SampleCNN: give its checkpoint with --weights")
    if a.batch_size < 1:
        p.error(f"--batch-size must be at least 1, got {a.batch_size}")
    if a.address and a.engine != "ray":
        p.error("--address applies to --engine ray only")
    if a.weights and len(a.arch) != 1:
        p.error("--weights needs exactly one --arch (the architecture the checkpoints hold)")
    return a


def custom_options(a) -> dict | None:
    """The ``custom`` keywords of :func:`build_frontend` from the CLI's own-architecture flags."""
    if not any(is_custom_spec(x) for x in a.arch):
        return None
    return {"options": a.arch_options, "input": a.input, "init": "keep" if a.keep_init else "study",
            "layer_types": a.layer_types}


def main(argv=None) -> int:
    a = parse_args(argv)
    cache = None if a.cache_dir.lower() == "none" else a.cache_dir
    try:
        extract_many(a.arch, seeds=a.seed, weights=a.weights, dataset=a.dataset, root=a.root,
                     split_dir=a.split_dir, manifest=a.manifest, width=a.width,
                     input_seconds=a.input_seconds, device=a.device, batch_size=a.batch_size,
                     workers=a.workers, out=a.out, pad=a.pad, batchnorm=a.batchnorm, folds=a.folds, fold_seed=a.fold_seed,
                     cache_dir=cache, engine=a.engine, address=a.address, custom=custom_options(a))
    except (ExtractionError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
