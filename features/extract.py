"""Audio -> front-end -> the mean of every feature map of every layer, concatenated -> a feature set.

``python -m features.extract --arch sample-level`` runs it on the embedded synthetic dataset; ``--help``
lists the options. From Python::

    from features.extract import build_frontend, embed, extract
    model = build_frontend("vgg", width="small", seed=0)
    X = embed(model, [wave1, wave2], sr=22050)        # (2, 120) float32
    path = extract("vgg", dataset="gtzan", root="/data/gtzan", split_dir="splits/")

A feature set is a folder with ``features.npz`` and ``meta.json`` (see ``docs/formats.md``), named by a
readable name and the key of everything that determines its bytes (``features/store.py``). Extraction is
resumable: finished chunks are kept in ``<feature set>.partial/`` and reused by a run of the same key; a
finished feature set is reused only when its key matches and ``features.npz`` has the SHA-256 recorded in
``meta.json``; after audio files change, only the chunks holding changed clips are computed again.
"""
from __future__ import annotations

import argparse
import dataclasses
import errno
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from toolkit.cli import HelpFormatter, interruptible, prog  # first: Ctrl-C while importing the rest is one line (toolkit/cli.py)
import numpy as np
import torch
from tqdm import tqdm

import architectures
from architectures.checkpoint import SAMPLECNN, load_frontend
from architectures.custom import add_arguments as add_custom_arguments
from architectures.custom import is_custom_spec
from architectures.custom import options_from_args as custom_options_from_args
from audiodata import audio, datasets, decode
from audiodata.decode import CROPS, DEFAULT_CACHE, InputSpec, fitted_input, model_input  # noqa: F401
from features import ray_engine, store
from features.embed import clip_minimum, embed, input_spec  # noqa: F401
from features.compute import (Batching, _batch, _features_of_batch, _window_means, batch_features,  # noqa: F401
                              compute_chunk, iter_inputs, layer_means, merge_warnings, published_means)
from features.progress import clips_done, fmt_s, part_seconds, rate_of
from features.progress import listener as progress_listener
from features.settings import DEFAULT_OUT, ExtractSettings
from features.store import Chunks, ExtractionError
from toolkit import settings as settings_vocabulary
from toolkit.settings import add_seed_argument
from toolkit.device import (PRECISIONS, AdaptiveBatch, cast_model, check_precision, device_record, fixed_algorithms,  # noqa: F401
                            resolve_device)
from toolkit.ray import RayUnavailable, connect


__all__ = ["ExtractSettings", "extract", "extract_many", "build_frontend", "embed", "layer_means", "input_spec",
           "plan", "compute_chunk", "iter_inputs", "Run", "ExtractionError"]

CHUNK_BATCHES = 4  # batches per resumable chunk: small enough to lose little, large enough to be cheap
HEAR_PREFIX = "hear:"  # --arch hear:MODULE runs an installed HEAR-API module as a front-end
ENGINES = settings_vocabulary.ENGINES




# ----------------------------------------------------------------------------- building blocks

def build_frontend(arch: str, width: str = "large", seed: int = 0, weights=None,
                   batchnorm: bool = False, custom: dict | None = None,
                   as_published: bool = False) -> torch.nn.Module:
    """A front-end with random weights from ``seed``, or the trained weights of checkpoint ``weights``.

    ``arch = "hear:MODULE"`` wraps an installed HEAR module (``features/hear_adapter.py``); ``weights``
    is then its ``model_file_path``. ``arch = "pkg.mod:Name"`` or ``"path/file.py:Name"`` wraps the
    user's module (``architectures/custom.py``; ``weights`` is then a state dict); ``custom`` holds its
    keywords ``options``, ``input``, ``init`` and ``layer_types``.

    ``as_published`` marks the model (``model.as_published``) to be read out as the study's code did
    where that departs from its text (docs/fidelity.md): the frame-level stacks' one number per layer
    (``features.compute.published_means``), the MFCC's uncropped repetition of short clips, and, through
    :func:`input_spec`, the study's audio front (resampy, reflect-padded frames, 0 dB zero-padding).
    """
    model = _build_frontend(arch, width, seed, weights, batchnorm, custom)
    if as_published:
        model.as_published = True
    return model


def _build_frontend(arch, width, seed, weights, batchnorm, custom):
    if is_custom_spec(arch):
        from architectures.custom import CustomFrontend
        return CustomFrontend(arch, seed=seed, width=width, weights=weights, **(custom or {}))
    if arch.startswith(HEAR_PREFIX):
        from features.hear_adapter import HearFrontend
        return HearFrontend(arch[len(HEAR_PREFIX):], model_file_path=weights or "")
    if weights is not None:
        return load_frontend(weights, expected_arch=arch)
    if arch == SAMPLECNN:
        raise ExtractionError("samplecnn has no random-weight version here: pass --weights with a "
                              "checkpoint of `python -m trained.train --arch samplecnn`")
    kwargs = {"batchnorm": True} if batchnorm else {}
    return architectures.build(arch, width=width, seed=seed, **kwargs)


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
    settings_key: str = ""
    meta: dict = None  # identity fields for meta.json (keys, clip stamps, the checkpoint's model_*)
    precision: str = "float32"

    @property
    def n_chunks(self) -> int:
        return (len(self.ds.clips) + self.chunk_size - 1) // self.chunk_size

    def chunk_range(self, c: int) -> tuple[int, int]:
        return c * self.chunk_size, min(len(self.ds.clips), (c + 1) * self.chunk_size)


def _settings(settings, changes: dict) -> ExtractSettings:
    """``settings`` (an ``ExtractSettings``; None: the defaults) with ``changes`` applied. A string in
    place of the settings is taken as ``arch`` (the older call ``extract("vgg", width="small")``)."""
    if isinstance(settings, str):
        changes = dict(changes, arch=settings)
        settings = None
    if settings is not None and not isinstance(settings, ExtractSettings):
        raise TypeError(f"expected ExtractSettings, found {type(settings).__name__}")
    settings = settings or ExtractSettings()
    return settings.replace(**changes) if changes else settings


def extract(settings: ExtractSettings | None = None, /, *, ds=None, progress: bool = True, planned=None,
            **changes) -> Path:
    """Extract one feature set and return its folder. See the module docstring and ``--help``.

    ``settings`` is an :class:`ExtractSettings` (``features/settings.py``); keyword ``changes`` give a copy
    with those fields changed (``extract(s, seed=1)``; ``extract(arch="vgg", width="small")`` from the
    defaults). ``ds`` is an already listed dataset (the study lists it once for every part); ``planned``
    the :class:`Run` that :func:`plan` made of the same settings and ``ds`` (the study plans every part
    for its estimate, and each model is built once): used only when its settings record is these
    settings' and its dataset is ``ds``, else planned again.

    ``engine="ray"`` computes the chunks on Ray workers (``features/ray_engine.py``; ``workers`` is then
    the number of Ray workers and ``address`` an existing cluster's, or None for a local instance). Both
    engines write byte-identical feature sets and resume each other's unfinished runs.

    ``precision`` is ``float32`` (the study's; TF32 off on CUDA), ``tf32`` (CUDA only) or ``bf16``
    (autocast); it is part of the feature set's key. A batch that does not fit in the device's memory is
    computed in halves, and ``meta.json`` records the halvings.

    The dataset is listed without generated folds (``load_dataset(folds=None)``): features do not
    depend on folds; the evaluation makes them. With ``weights`` (a ``trained.train`` checkpoint) the
    model's seed, width and fold come from the checkpoint.

    ``as_published`` computes what the study's code computed where it departs from its text (see
    :func:`build_frontend`; docs/fidelity.md); it is part of the settings, hence of the key.
    """
    s = _settings(settings, changes)
    dev = resolve_run_device(s.device, s.engine, s.address)
    if planned is not None and planned.ds is ds and planned.cfg.get("settings") == s.record():
        run = planned
        run.t_start = time.perf_counter()
    else:
        run = plan(s, dev, ds=ds)
    arch = s.arch
    with store.lock(run.folder):
        if store.verified(run.folder, run.key):
            if progress:
                print(f"{arch}: already extracted with this configuration (key {run.key[:store.KEY_CHARS]}, "
                      "features.npz verified), nothing to do", file=sys.stderr)
            return run.folder
        _warn_small_classes(run.ds, arch)
        _load_chunks(run, progress)
        if progress and s.engine == "local" and progress_listener() is None and run.todo:
            _print_estimate(run, dev, s.cache_dir)
        if s.engine == "ray":
            warned = ray_engine.run_chunks(run, dev, workers=s.workers, cache_dir=s.cache_dir,
                                           progress=progress)
        else:
            # same seed, same features: fixed cuDNN algorithms for the run, torch's flags restored after it;
            # TF32 is set per batch by toolkit.device.precision_context (off unless --precision tf32)
            with fixed_algorithms():
                warned = _run_local(run, dev, s.workers, s.cache_dir, progress)
        return store.write_feature_set(run, time.perf_counter() - run.t_start, warned, progress, run.meta)


def resolve_run_device(device: str, engine: str = "local", address=None) -> torch.device:
    """The device a run's networks use: this process's (``toolkit.device.resolve_device``), or for the
    Ray engine the cluster's (checked on the cluster; ``auto`` is CUDA when the cluster has GPUs)."""
    if engine == "ray":
        try:  # before anything else: a missing Ray or a bad address fails fast
            connect(address)
        except RayUnavailable as e:
            raise ExtractionError(str(e)) from e
        return ray_engine.resolve_cluster_device(device)
    return resolve_device(device)


def _load_chunks(run: Run, progress: bool) -> None:
    """This key's finished chunks, then rows reusable from an earlier feature set of the same settings."""
    run.chunks.load(run.key, run.chunk_range, run.n_chunks)
    if not run.cfg["batchnorm"]:  # batch norm: a clip's features depend on its batch mates' contents
        reuse, source = store.reusable_chunks(run.folder.parent, run.settings_key, run.key,
                                              run.meta["clips"], run.batch_size, run.chunk_range,
                                              run.n_chunks)
        reuse = {c: v for c, v in reuse.items() if c not in run.chunks.done}
        for c, (idx, X, skipped, timing) in reuse.items():
            run.chunks.save(c, idx, X, skipped, timing)
        if reuse:
            n = sum(hi - lo for lo, hi in map(run.chunk_range, reuse))
            run.meta["reused"] = {"from": str(source), "clips": n}
            if progress:
                print(f"{run.arch}: {n} of {len(run.ds.clips)} clips unchanged since {source}: their rows "
                      "are reused; the others are computed", file=sys.stderr)
    run.todo = [c for c in range(run.n_chunks) if c not in run.chunks.done]


def _print_estimate(run: Run, dev, cache_dir) -> None:
    """Before any work: the clips to compute and the time they will take here (``features/progress.py``),
    recorded in ``meta.json`` as ``estimate`` and set against the measured time in the summary."""
    n_todo = sum(hi - lo for lo, hi in map(run.chunk_range, run.todo))

    def one():
        from audiodata.decode import prepare
        return prepare(0, run.ds.clips[0].path, run.spec, cache_dir).x

    per, how = part_seconds(run, rate_of(dev), one)
    run.meta["estimate"] = {"seconds": round(per * n_todo, 1), "basis": how, "clips": n_todo}
    print(f"{run.arch}: {n_todo} of {len(run.ds.clips)} clips to compute on {dev.type}; estimate "
          f"{fmt_s(per * n_todo)} for the network ({how}), decoding alongside in worker threads",
          file=sys.stderr, flush=True)


def _resolved(path) -> str | None:
    return str(Path(path).resolve()) if path else None


# the functions whose source determines feature bytes, bound at import (a test's monkeypatch of a
# module attribute does not change the code version)
_CODE_FUNCTIONS = (layer_means, published_means, batch_features, _features_of_batch, compute_chunk, _window_means,
                   fitted_input)


def _code_version() -> str:
    return store.code_version(_CODE_FUNCTIONS)


def plan(settings: ExtractSettings, dev: torch.device = torch.device("cpu"), ds=None) -> Run:
    """Everything an engine needs (a :class:`Run`): the clips, the model, the keys, the folder.

    Chunks are not read here (``extract`` reads them once it holds the folder's lock).
    """
    s = settings
    arch, width, seed, weights, batch_size, precision = s.arch, s.width, s.seed, s.weights, s.batch_size, s.precision
    input_seconds, pad, batchnorm, engine, as_published = s.input_seconds, s.pad, s.batchnorm, s.engine, s.as_published
    manifest, split_dir = s.manifest, s.split_dir
    t_start = time.perf_counter()
    hear = arch.startswith(HEAR_PREFIX)
    if hear and seed != 0:
        raise ExtractionError(f"{arch}: a HEAR module brings its own weights; --seed must stay 0 (pass "
                              "options in --weights, e.g. 'seed=1' for this project's hear modules)")
    if batch_size < 1:
        raise ExtractionError(f"batch_size must be at least 1, got {batch_size}")
    check_precision(precision, dev)
    ckpt = {}
    if weights is not None and not hear:
        ckpt = store.checkpoint_info(weights)
        if ckpt["model_seed"] is not None:
            seed = ckpt["model_seed"]  # the checkpoint's training seed names the feature set
        if ckpt["width"] in ("large", "small"):
            width = ckpt["width"]
    if ds is None:
        ds = datasets.load_dataset(s.dataset, root=s.root, split_dir=split_dir, manifest=manifest, folds=None,
                                   verify_audio=s.verify_audio)
    model = build_frontend(arch, width=width, seed=seed, weights=weights, batchnorm=batchnorm,
                           custom=s.custom, as_published=as_published).eval()
    arch = getattr(model, "arch_name", None) or arch  # a folder-safe name for any --arch string
    cast_model(model, precision)  # bf16: weights in bfloat16 (the Ray workers get the cast copy)
    if engine == "local":  # the Ray engine's workers move their own copies (dev may exist only there)
        model = model.to(dev)
    spec = input_spec(model, input_seconds, pad, s.crop, name=arch)
    if ds.info.get("verify_audio") == "content":   # the decode cache knows files by their content too
        spec = dataclasses.replace(spec, verify="content")
    weights_name = getattr(model, "weights_name", None) or ("trained" if weights is not None else "random")
    weights_file = weights is not None and Path(str(weights)).is_file()
    code = _code_version()
    identity = getattr(model, "identity", None)  # a user's module: spec, source sha, options, init
    ident = dict(arch=arch, width=width, seed=seed, weights_name=weights_name,
                    weights=None if weights_file or weights is None else str(weights),  # HEAR options
                    weights_sha256=store.sha256_file(weights) if weights_file else None,
                    model_identity=identity, input=spec.__dict__, pad=pad, batchnorm=batchnorm,
                    dataset=ds.name, root=_resolved(ds.root), manifest=_resolved(manifest),
                    split_dir=_resolved(split_dir), precision=precision, device=dev.type, batch_size=batch_size,
                    torch=torch.__version__, code_version=code, as_published=bool(as_published))
    if spec.kind == "spectrogram":  # a feature set made by an older input rule (waveform repetition) is redone
        ident["spectrogram_input_version"] = decode.SPECTROGRAM_INPUT_VERSION
    settings_sha = store.settings_key(ident)
    dataset_sha = datasets.dataset_key(ds)
    key = store.config_key(settings_sha, dataset_sha)
    readable = store.readable_name(arch, width, weights_name, seed, ckpt.get("model_fold"))
    folder = store.feature_set_dir(s.out, ds.name, readable, key)
    # the run record: the settings plus how the work was spread (which changes no number), and the
    # settings object verbatim
    cfg = dict(ident, input_seconds=input_seconds, workers=s.workers, out=str(s.out), engine=engine,
               address=s.address, cache_dir=str(s.cache_dir) if s.cache_dir else None,
               weights=str(weights) if weights else None, settings=s.record())
    meta = {"config_key": key, "settings_key": settings_sha, "dataset_key": dataset_sha,
            "code_version": code, "model_identity": identity, "batch_size": batch_size,
            "clips": store.clip_stamps(ds.clips),
            "model_seed": ckpt.get("model_seed", seed if weights is None else None),
            "model_fold": ckpt.get("model_fold"), "model_folds": ckpt.get("model_folds"),
            "model_fold_seed": ckpt.get("model_fold_seed"), "model_train_ids": ckpt.get("model_train_ids"),
            "checkpoint_sha256": ckpt.get("checkpoint_sha256"),
            "model_dataset_key": ckpt.get("model_dataset_key"),
            # the study's code's computation (--as-published) rather than its text's
            "as_published": bool(as_published)}
    chunks = Chunks(folder.with_name(folder.name + ".partial"))
    chunk_size = batch_size * CHUNK_BATCHES
    meta.update(precision=precision, device_record=device_record(dev) if engine == "local" else None)
    return Run(arch, ds, model, spec, folder, cfg, key, chunks, [], chunk_size, batch_size, width,
               weights_name, weights, seed, t_start, settings_sha, meta, precision)


GRID_FOLDS = 10  # the grid's default --folds, for the warning below


_WARNED_SMALL: set = set()


def _warn_small_classes(ds, arch) -> None:
    """Features never depend on folds, so too few clips per class is only a warning for later."""
    if ds.protocol_hint is not None or ds.info.get("multilabel"):  # tags: the folds are not stratified
        return
    labels, counts = np.unique([c.label for c in ds.clips], return_counts=True)
    small = {str(label): int(n) for label, n in zip(labels, counts) if n < GRID_FOLDS}
    said = (ds.name, str(ds.root), tuple(sorted(small.items())))
    if small and said in _WARNED_SMALL:  # a study's parts share the dataset: said once
        return
    _WARNED_SMALL.add(said)
    if small:
        print(f"{arch}: warning: classes with fewer than {GRID_FOLDS} clips {small}: features are written, "
              f"but the grid's default {GRID_FOLDS} stratified folds will not run on them (use fewer "
              "--folds there)", file=sys.stderr)


def _run_local(run: Run, dev, workers, cache_dir, progress) -> dict:
    """Compute ``run.todo`` in this process (decoding in ``workers`` threads); returns the warnings."""
    clips = run.ds.clips
    n = len(clips)
    todo_idx = [i for c in run.todo for i in range(*run.chunk_range(c))]
    warned = {}
    overall = progress_listener()  # a study's overall line follows the clips; this bar is then transient
    bar = tqdm(total=n, initial=n - len(todo_idx), unit="clip", desc=run.arch, disable=not progress,
               dynamic_ncols=True, file=sys.stderr, leave=overall is None)

    def on_batch(k):
        bar.update(k)
        clips_done(k)
    prepared = iter_inputs([clips[i].path for i in todo_idx], run.spec, cache_dir, workers=workers)
    adaptive = AdaptiveBatch(run.batch_size)  # out-of-memory halvings stick for the rest of the run
    try:
        for c in run.todo:
            lo, hi = run.chunk_range(c)
            idx_ok, X, skipped, timing, w, crop = compute_chunk(
                run.model, dev, clips, (lo, hi), prepared,
                Batching(run.batch_size, run.precision, adaptive=adaptive, on_batch=on_batch))
            merge_warnings(warned, w)
            run.chunks.save(c, idx_ok, X, skipped, timing, crop)
    finally:
        if adaptive.halvings:
            run.meta["batch_halvings"] = [list(h) for h in adaptive.halvings]
            print(f"{run.arch}: out of device memory at batch size {adaptive.halvings[0][0]}: went on with "
                  f"batches of {adaptive.size} (recorded in meta.json as batch_halvings)", file=sys.stderr)
        bar.close()
        if hasattr(prepared, "close"):
            prepared.close()
    return warned


class SomeFailed(ExtractionError):
    """Some parts of a multi-part extraction failed: ``written`` lists the feature sets written,
    ``failed`` the ``(part, reason)`` of the others."""

    def __init__(self, written, failed, total):
        self.written, self.failed = list(written), list(failed)
        lines = "\n".join(f"  {part}: {why}" for part, why in self.failed)
        super().__init__(f"{len(self.failed)} of {total} feature sets failed:\n{lines}")


def _part_name(arch, seed, weights) -> str:
    return f"{arch} --weights {weights}" if weights is not None else f"{arch} seed {seed}"


def extract_many(archs, seeds=(0,), weights=None, settings: ExtractSettings | None = None, **changes) -> list[Path]:
    """Several architectures and seeds over one dataset, decoding each file once (the cache).

    Each part is ``settings`` (with ``changes``) with its ``arch``, ``seed`` and ``weights`` replaced.
    ``weights`` is a list of checkpoints (one feature set each, named by each checkpoint's own seed and
    fold) for a single arch. Every part is tried; each written path is printed as it is done. Raises
    :class:`SomeFailed` (after all parts) when any part failed, naming each and why.
    """
    progress = changes.pop("progress", True)
    base = _settings(settings, changes)
    ds = datasets.load_dataset(base.dataset, root=base.root, split_dir=base.split_dir, manifest=base.manifest,
                               folds=None, verify_audio=base.verify_audio)
    jobs = [(a, s, None) for a in archs for s in seeds] if not weights else \
        [(archs[0], seeds[0], w) for w in weights]
    written, failed = [], []
    for arch, seed, w in jobs:
        try:
            path = extract(base.replace(arch=arch, seed=seed, weights=w), ds=ds, progress=progress)
        except (ExtractionError, ValueError, RuntimeError, OSError) as e:
            failed.append((_part_name(arch, seed, w), _describe(e)))
            print(f"{_part_name(arch, seed, w)} failed: {_describe(e)}", file=sys.stderr)
            continue
        written.append(path)
        print(path, flush=True)
    if failed:
        raise SomeFailed(written, failed, len(jobs))
    return written


def _describe(e: BaseException) -> str:
    text = str(e)
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        text += (" (the disk is full: free space and run the same command again; finished chunks are "
                 "kept, and nothing half-written is ever taken for a finished feature set)")
    return text


def parse_args(argv=None):
    names = list(architectures.ARCHITECTURES)
    p = argparse.ArgumentParser(
        prog=prog("python -m features.extract"),
        description="Run audio through random-weight (or trained) CNN front-ends and write, per clip, "
                    "the mean of every feature map of every layer. Writes one feature set folder "
                    "(features.npz + meta.json) per architecture and seed, named "
                    "<arch>_<width>_<weights>_seed<N>[_fold<K>]-<key>, where the key covers every "
                    "setting, the audio files (sizes, mtimes), the weights and the code; the paths are "
                    "printed one per line, and any failed part is summarised after them (exit 1). "
                    "With no options: sample-level on the embedded synthetic dataset (generated on "
                    "first use). Folds are not made here: the grid and trained.train own them.",
        formatter_class=HelpFormatter)
    p.add_argument("--arch", nargs="+", default=["sample-level"], metavar="NAME",
                   help=f"front-end(s), or 'all'. Choices: {', '.join(names)}; or hear:MODULE for any "
                        "installed module with the HEAR API (its model_file_path goes in --weights); or "
                        "your own nn.Module: pkg.module:Class or path/to/file.py:factory "
                        "(docs/own-architecture.md)")
    add_custom_arguments(p)
    ExtractSettings.add_arguments(p)
    add_seed_argument(p, help="random-weight seed(s); the study averages 3 runs (e.g. --seed 0 1 2); with "
                              "--weights the checkpoint's own training seed is used")
    p.add_argument("--weights", nargs="+", default=None, metavar="CHECKPOINT",
                   help="trained checkpoint(s) from trained.train (one feature set each, named by the "
                        "checkpoint's seed, width and fold) instead of random weights")
    p.add_argument("--as-published", action="store_true",
                   help="compute what the study's code computed where it departs from the thesis text: "
                        "frame-level(-many) stack layers give one number each (and F-1 zeros), short MFCC "
                        "clips repeated uncropped, resampy kaiser_best resampling, reflect-padded STFT "
                        "frames, --pad zero appends 0.0 dB frames (docs/fidelity.md); part of the key")
    p.add_argument("--batchnorm", action="store_true",
                   help="study tool: batch norm with batch statistics, which leaks labels across a batch")
    p.add_argument("--out", default=str(DEFAULT_OUT),
                   help="root of the feature sets: each goes to OUT/<dataset>/<name>-<key>")
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
    if a.weights and len(a.arch) != 1:
        p.error("--weights needs exactly one --arch (the architecture the checkpoints hold)")
    a.custom = custom_options_from_args(p, a)
    a.settings = ExtractSettings.parse(p, a, arch=a.arch[0], seed=a.seed[0],
                                       weights=a.weights[0] if a.weights else None)
    return a


@interruptible
def main(argv=None) -> int:
    a = parse_args(argv)
    s = a.settings
    parts = len(a.weights) if a.weights else len(a.arch) * len(a.seed)
    print(f"extract: {', '.join(a.arch[:4])}{' ...' if len(a.arch) > 4 else ''} on {s.dataset}, width {s.width}, "
          f"{parts} feature set(s): listing the clips and building the network, then the estimate",
          file=sys.stderr, flush=True)
    try:
        extract_many(a.arch, seeds=a.seed, weights=a.weights, settings=a.settings)
    except (ExtractionError, ValueError, OSError) as e:
        print(f"error: {_describe(e)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
