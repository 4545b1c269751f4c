"""Train a front-end (with the Pons et al. 2018 back-end) or SampleCNN end to end.

``python -m trained.train --arch vgg --dataset gtzan --root DATA --split-dir SPLITS`` trains on the
training portion, stops early on validation, and writes under
``runs/trained/<dataset>/<arch>_<width>_seed<seed>-<recipe key>/<split|fold<k>>/`` (the key names every setting
that changes the weights but the seed, the fold and the epochs): ``checkpoint.pt`` (latest),
``best.pt`` (lowest validation loss), ``history.csv`` and ``meta.json``. Cross-validated datasets get
one model per fold (``--fold k`` for one). Then the best models predict their test clips and
``trained.evaluate`` writes a results file in the classifier grid's format.

Generated folds are ``audiodata.datasets.stratified_folds`` with ``--fold-seed`` (default 0, as
extraction and the grid), never with ``--seed``: fold k's model holds out exactly the fold k the grid
scores. Each checkpoint records the clips it trained and validated on (``train_ids``, ``val_ids``) and
the dataset's key; resuming refuses a checkpoint made on another dataset state or fold layout. The front-end of a
checkpoint is read back by ``python -m features.extract --arch NAME --weights best.pt``.

Front-ends (Pons et al. 2018): Adam 1e-3, cross-entropy, batch 16, batch norm with running statistics
after every conv of the front-end (``--frontend-bn running``) and of the back-end, trained on 15 s
patches cut at random offsets (``--patch-seconds``), clip prediction = mean over a moving window of
patches covering the whole input. ``--frontend-bn none --patch-seconds 0`` is the earlier recipe (no
front-end batch norm, whole ~29 s input). ``--arch samplecnn``: SGD with Nesterov momentum 0.9,
learning rate 0.01 divided by 5 when the validation loss has not decreased for 3 (basic) or 2 (other
blocks) epochs, training from the best weights again, stopping after 4 decreases; batch 23,
59 049-sample segments at 22 050 Hz, clip prediction = mean of its segments' predictions.
``--dry-run`` prints the model summary.

``--recipe released`` (the default) builds and trains these as the authors' released code does (Pons et
al. 2018's models.py: ReLU then batch norm, an unpadded first back-end conv, a pool rounding down, no batch
norm on the pooled vector, truncated variance-scaling init, the log-mel input standardised by the training
portion's one mean and std; Kim et al.'s resemul: multi-level aggregation, a dense head as wide as its
input, he_uniform / glorot_uniform init, SGD decay 1e-6); ``--recipe toolkit-2025`` is the recipe before
it. ``docs/training.md`` tabulates every choice with the released function it follows.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from toolkit.cli import HelpFormatter, interruptible, prog  # first: Ctrl-C while importing the rest is one line (toolkit/cli.py)
import numpy as np
import torch

from toolkit.settings import TRAIN_PRECISIONS, add_device_arguments, add_seed_argument, add_width_argument
from features.settings import add_dataset_arguments
import architectures
from audiodata import audio, datasets
from audiodata.decode import DEFAULT_CACHE, InputSpec
from toolkit.provenance import atomic_write_json, run_record
from trained import data
from architectures.backend import (FrontEndClassifier, PonsBackend, frontend_output, init_he_normal,
                                   init_tf_variance_scaling)
from architectures.custom import add_arguments as add_custom_arguments
from architectures.custom import is_custom_spec
from architectures.custom import options_from_args as custom_options_from_args
from architectures.checkpoint import SAMPLECNN, read_checkpoint
from trained.loop import FitOptions, StagedLR, Trainer, fit, patch_lengths, windows
from architectures.samplecnn import (BLOCKS, CHANNELS, KERAS_DECAY, LR_DECREASES, LR_FACTOR, SAMPLE_RATE,
                                     SEGMENT_SAMPLES, SMALL_CHANNELS, SampleCNN, default_weight_decay, init_keras)
from architectures.samplecnn import plateau_patience as block_patience
from toolkit.device import deterministic, resolve_device
from trained.settings import (DEFAULT_OUT, DEFAULT_RESULTS, FRONTEND_BN, PATCH_SECONDS, RECIPES, RELEASED,
                              SAMPLECNN_MAX_EPOCHS, TrainSettings)
from trained.evaluate import evaluate as run_eval
from trained.summary import format_summary, summarize

__all__ = ["TrainSettings", "train", "train_seeds", "run_folder", "build_model", "dry_run", "DEFAULT_OUT"]

# Settings that must agree between a run and the checkpoint it resumes from.
_RESUME_KEYS = ("arch", "width", "seed", "block", "se_ratio", "multi_level", "batchnorm", "lr",
                "batch_size", "input_seconds", "pad", "segments_per_clip", "fold", "dataset", "folds",
                "fold_seed")
_RESUME_KEYS += ("custom", "frontend_bn", "patch_seconds", "window_hop_seconds", "weight_decay",
                 "plateau_patience", "lr_decreases", "precision", "recipe")


def check_trainable(arch: str) -> None:
    """Refuse, before any data is read, a front-end with no weights (the MFCC baseline)."""
    spec = architectures.FRONTENDS.get(arch)
    if spec is not None and spec.input_kind == "clip":
        trainable = [n for n, f in architectures.FRONTENDS.items() if f.input_kind != "clip"]
        raise ValueError(f"--arch {arch}: {arch} has no weights to train (the fixed MFCC baseline: "
                         f"`python -m features.extract --arch {arch}` computes its features); choose a CNN "
                         f"front-end ({', '.join(trainable)}) or {SAMPLECNN}")


def build_model(settings: TrainSettings | str | None, n_classes: int, **changes):
    """``(model, frontend, backend)`` with the initial (random, seeded) weights of ``settings`` (with
    ``changes``; a string is taken as ``arch``).

    ``arch`` may be your own module (``pkg.mod:Class`` or ``path/file.py:factory``, with ``custom`` the
    keywords of ``architectures.custom.CustomFrontend``: options, input, init, layer_types): it gets the
    study's init from ``seed``, as in extraction, and keeps its own layers (``frontend_bn`` must be
    ``"none"``: batch norm is added only to the study's front-ends).

    The front-end is ``architectures.build(arch, width, seed)`` (the random features of the same
    seed; with ``frontend_bn="running"`` plus a batch norm with running statistics after each conv,
    initialised to the identity), followed by a ``PonsBackend`` drawn from ``seed`` (``batchnorm``:
    its batch norm); for ``samplecnn`` the model is a ``SampleCNN`` (``width="small"`` divides its
    channels by 8) and ``backend`` is ``None``.
    """
    s = _train_settings(settings, changes)
    check_trainable(s.arch)
    arch, width, seed, block, batchnorm = s.arch, s.width, s.seed, s.block, s.batchnorm
    input_seconds, frontend_bn = s.input_seconds, s.frontend_bn
    released = s.recipe == RELEASED
    if arch == SAMPLECNN:
        channels = CHANNELS if width == "large" else SMALL_CHANNELS
        model = SampleCNN(n_classes, block=block, se_ratio=s.se_ratio, multi_level=s.multi_level_used(),
                          channels=channels, layout=s.recipe)
        (init_keras if released else init_he_normal)(model, seed)
        return model, model, None
    if frontend_bn not in FRONTEND_BN:
        raise ValueError(f"--frontend-bn must be one of {', '.join(FRONTEND_BN)}, found {frontend_bn!r} "
                         "(batch-statistics batch norm is extraction's leak experiment, not a training mode)")
    if is_custom_spec(arch):
        if frontend_bn != "none":
            raise ValueError(f"--arch {arch}: --frontend-bn {frontend_bn} adds batch norm after the convs of the "
                             "study's front-ends only; your own module keeps its own layers (--frontend-bn none)")
        from architectures.custom import CustomFrontend
        frontend = CustomFrontend(arch, seed=seed, width=width, **(s.custom or {}))
    else:
        bn = "running-post" if released else "running"  # released: batch norm after the activation
        frontend = architectures.build(arch, width=width, seed=seed,
                                       **({"batchnorm": bn} if frontend_bn == "running" else {}))
    if not any(p.requires_grad for p in frontend.parameters()):
        raise ValueError(f"architecture {arch!r} has no weights to train (a fixed baseline); "
                         f"choose a CNN front-end or samplecnn")
    with torch.no_grad():  # the back-end's input channels: one probe at the run's input length
        channels = frontend_output(frontend, _example_input(frontend, input_seconds)).shape[1]
    backend = PonsBackend(channels, n_classes, batchnorm=batchnorm, layout=s.recipe)
    (init_tf_variance_scaling if released else init_he_normal)(backend, seed)
    return FrontEndClassifier(frontend, backend), frontend, backend


def _example_input(model, input_seconds: float | None) -> torch.Tensor:
    if getattr(model, "input_kind", None) == "waveform" and isinstance(model, SampleCNN):
        return torch.zeros(1, SEGMENT_SAMPLES)
    n_samples, n_frames = audio.input_lengths(input_seconds)
    if model.input_kind == "waveform":
        return torch.zeros(1, n_samples)
    return torch.zeros(1, n_frames, audio.N_MELS)


def dry_run(settings: TrainSettings | str | None, n_classes: int = 10, **changes) -> str:
    """The model summary (layers, output shapes, parameters, totals) as text, without training.

    Front-ends are shown on the input they train on: one patch (``patch_seconds``) when it is
    shorter than the input."""
    s = _train_settings(settings, changes)
    model, _, _ = build_model(s, n_classes)
    x = _example_input(model.frontend if hasattr(model, "frontend") else model, s.input_seconds)
    patch = None if s.arch == SAMPLECNN else patch_lengths(model.input_kind, s.input_seconds, s.patch_seconds)
    if patch is not None:
        x = x[:, :patch[0]]
    title = f"{s.arch} ({s.width}{', ' + s.block if s.arch == SAMPLECNN else ''}), {n_classes} classes, " \
            f"input {' x '.join(str(v) for v in x.shape[1:])}"
    return format_summary(summarize(model, x), model, title)


def input_stats(x: np.ndarray) -> tuple[float, float]:
    """One mean and one standard deviation of every value of ``x`` (all clips, frames and mel bands
    together, not per band), in float64: the released recipe's input standardisation, computed on the
    training portion only and applied unchanged to validation, test and prediction."""
    x = np.asarray(x, dtype=np.float64)
    mean = float(x.mean())
    std = float(np.sqrt(np.mean((x - mean) ** 2)))
    if not std > 0:
        raise ValueError(f"the training inputs are constant ({mean}): they cannot be standardised")
    return mean, std


def _param_groups(model, weight_decay: float) -> list[dict]:
    """Conv kernels with an L2 penalty ``weight_decay * sum(w ** 2)`` (Keras' ``l2(weight_decay)``
    kernel regulariser, as the SampleCNN code used: gradient ``2 * weight_decay * w``); the rest
    (biases, batch norm, dense layers) without."""
    convs = (torch.nn.Conv1d, torch.nn.Conv2d)
    kernels = [m.weight for m in model.modules() if isinstance(m, convs)]
    ids = {id(p) for p in kernels}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return [{"params": kernels, "weight_decay": 2.0 * weight_decay}, {"params": rest, "weight_decay": 0.0}]


def _optimizer(arch, model, cfg):
    groups = _param_groups(model, cfg["weight_decay"])
    if arch == SAMPLECNN:  # resemul train.py: SGD(lr, momentum=0.9, decay=1e-6, nesterov=True)
        opt = torch.optim.SGD(groups, lr=cfg["lr"], momentum=0.9, nesterov=True)
        decay = KERAS_DECAY if cfg.get("recipe", RELEASED) == RELEASED else 0.0
        return opt, StagedLR(opt, cfg["plateau_patience"], LR_FACTOR, cfg["lr_decreases"], decay=decay)
    return torch.optim.Adam(groups, lr=cfg["lr"]), None


def _portion(ds, idx, classes, multilabel, cfg, progress, name, frontend):
    clips = [ds.clips[i] for i in idx]
    spec = lambda kind, length: data.clip_spec(InputSpec(kind, length, cfg["pad"], verify=cfg["verify_audio"]),  # noqa: E731
                                               frontend, cfg["arch"])
    if cfg["arch"] == SAMPLECNN:
        inp = data.load_inputs(clips, spec("waveform", SEGMENT_SAMPLES), cfg["cache_dir"],
                               segments=data.Segments(SAMPLE_RATE, cfg["segments_per_clip"]), desc=name,
                               progress=progress)
    else:
        kind = cfg["input_kind"]
        n_samples, n_frames = audio.input_lengths(cfg["input_seconds"])
        inp = data.load_inputs(clips, spec(kind, n_samples if kind == "waveform" else n_frames),
                               cfg["cache_dir"], workers=cfg["workers"], desc=name, progress=progress)
    kept = np.unique(inp.clip)  # clips that decoded, renumbered 0..k-1
    clip = np.searchsorted(kept, inp.clip)
    y_clip = data.encode_labels([clips[i] for i in kept], classes, multilabel)
    return (inp.x, y_clip[clip], clip), [clips[i] for i in kept], inp.skipped


def _train_settings(settings, changes: dict) -> TrainSettings:
    """``settings`` (None: the defaults) with ``changes``; a string in its place is taken as ``arch``."""
    if isinstance(settings, str):
        changes, settings = dict(changes, arch=settings), None
    if settings is not None and not isinstance(settings, TrainSettings):
        raise TypeError(f"expected TrainSettings, found {type(settings).__name__}")
    settings = settings or TrainSettings()
    return settings.replace(**changes) if changes else settings


def run_folder(settings: TrainSettings, dataset_name: str) -> Path:
    """``<out>/<dataset>/<arch>_<width>_seed<seed>-<key>``: the key names the recipe (every setting that
    changes the weights but the seed and the fold, after the defaults are filled in), so folds trained
    with another recipe never share a folder or a results file with these."""
    from toolkit.settings import folder_name, stable_key
    name = f"{folder_name(_label(settings))}_{settings.width}_seed{settings.seed}"
    return Path(settings.out) / folder_name(dataset_name) / f"{name}-{stable_key(settings.identity(), 10)}"


def _label(s: TrainSettings) -> str:
    """The name of the run's architecture: your own module's ``arch_name`` (as its random-weight feature
    sets and results are named), else ``arch``."""
    if is_custom_spec(s.arch):
        from architectures.custom import CustomFrontend
        return CustomFrontend(s.arch, seed=s.seed, width=s.width, **(s.custom or {})).arch_name
    return s.arch


def _load_dataset(s: TrainSettings):
    return datasets.load_dataset(s.dataset, root=s.root, split_dir=s.split_dir, manifest=s.manifest,
                                 folds=s.folds, seed=s.fold_seed)


def train(settings: TrainSettings | None = None, /, *, ds=None, progress: bool = True, **changes) -> Path:
    """Train one model per portion (the split, or each fold) and return the run's folder.

    ``settings`` is a :class:`TrainSettings` (``trained/settings.py``; keyword ``changes`` give a copy with
    those fields changed). See the module docstring and ``--help`` for the fields. With ``evaluate`` the
    test clips are predicted by each ``best.pt`` and the results file is written (its path returned).
    """
    s = _train_settings(settings, changes)
    check_trainable(s.arch)
    ds = ds if ds is not None else _load_dataset(s)
    run_root = _train_seed(s, ds, progress)
    if s.evaluate:
        return run_eval([run_root], out=s.results_out, ds=ds, device=s.device, progress=progress)
    return run_root


def train_seeds(settings: TrainSettings, seeds, ds=None, progress: bool = True) -> tuple[Path | None, list]:
    """One training run per seed (``settings`` with its seed replaced), then ONE results file holding
    every run that finished. Returns ``(results path or None, [(seed, reason) of the failed runs])``;
    with ``settings.evaluate`` off the path is None."""
    check_trainable(settings.arch)
    ds = ds if ds is not None else _load_dataset(settings)
    roots, failed = [], []
    for seed in seeds:  # a failed run is reported and the others go on
        try:
            roots.append(_train_seed(settings.replace(seed=seed), ds, progress))
            print(roots[-1], flush=True)
        except (ValueError, FileNotFoundError, OSError, FloatingPointError) as e:
            failed.append((seed, str(e)))
            if len(seeds) > 1:  # the others go on; main summarises
                print(f"error: seed {seed}: {e}", file=sys.stderr)
    if not settings.evaluate or not roots:
        return None, failed
    return run_eval(roots, out=settings.results_out, ds=ds, device=settings.device, progress=progress), failed


def _train_seed(s: TrainSettings, ds, progress: bool) -> Path:
    """Train every portion of one seed; returns the run folder."""
    dev = resolve_device(s.device)
    s = s.resolved(dev.type)
    arch, fold = s.arch, s.fold
    recipe = _recipe(s)
    run_root = run_folder(s, ds.name)
    if ds.protocol_hint == "split":
        todo = [None]
    else:
        all_folds = sorted({int(c.fold) for c in ds.clips})
        todo = all_folds if fold is None else [fold]
    for k in todo:
        data.portions(ds, k)  # every requested fold checked before any training starts
    classes, multilabel = data.label_space(ds)
    from audiodata.datasets import dataset_key
    ds_key = dataset_key(ds)
    if ds.protocol_hint == "split":
        n_folds, used_fold_seed = None, None
    else:  # generated folds carry their seed in ds.info; a dataset's own folds have none
        n_folds = len({int(c.fold) for c in ds.clips})
        used_fold_seed = int(ds.info.get("seed", s.fold_seed)) if ds.info.get("folds") else None
    with deterministic(dev):
        for k in todo:
            cfg = dict(arch=arch, dataset=ds.name, root=str(ds.root) if getattr(ds, "root", None) else None,
                       split_dir=str(s.split_dir) if s.split_dir else None,
                       manifest=str(s.manifest) if s.manifest else None, folds=n_folds, fold=k,
                       fold_seed=used_fold_seed, dataset_key=ds_key, width=s.width,
                       seed=s.seed, epochs=s.epochs, batch_size=s.batch_size, lr=s.lr,
                       input_seconds=s.input_seconds, pad=s.pad, block=s.block, se_ratio=s.se_ratio,
                       multi_level=s.multi_level, segments_per_clip=s.segments_per_clip,
                       batchnorm=s.batchnorm, device=dev.type, workers=s.workers,
                       cache_dir=str(s.cache_dir) if s.cache_dir else None, verify_audio=s.verify_audio,
                       multilabel=multilabel,
                       precision=s.precision, amp=s.precision in ("fp16", "bf16"), custom=s.custom,
                       label=_label(s), recipe=s.recipe,
                       recipe_key=run_root.name.rpartition("-")[2], settings=s.record(), **recipe)
            _train_one(s, ds, k, cfg, run_root, progress)
    return run_root


def _recipe(s: TrainSettings) -> dict:
    """The training-recipe settings of ``cfg``, with the papers' defaults filled in (values are checked
    by ``TrainSettings``)."""
    if s.arch == SAMPLECNN:  # has its own batch norm and 59 049-sample segments; the schedule stops it
        return dict(frontend_bn=None, patch_seconds=None, window_hop_seconds=None,
                    weight_decay=default_weight_decay(s.block) if s.weight_decay is None else float(s.weight_decay),
                    plateau_patience=s.plateau_patience or block_patience(s.block),
                    lr_decreases=int(s.lr_decreases), patience=s.patience)
    return dict(frontend_bn=s.frontend_bn, patch_seconds=float(s.patch_seconds) if s.patch_seconds else None,
                window_hop_seconds=float(s.window_hop_seconds) if s.window_hop_seconds else None,
                weight_decay=float(s.weight_decay or 0.0), plateau_patience=None, lr_decreases=None,
                patience=10 if s.patience is None else int(s.patience))


def _train_one(s: TrainSettings, ds, k, cfg, run_root, progress) -> Path:
    """Train fold ``k`` (None: the split) of one seed's run in ``run_root``; ``cfg`` is its record."""
    dev, resume = resolve_device(s.device), s.resume
    classes, multilabel = data.label_space(ds)
    run_dir = run_root / ("split" if k is None else f"fold{k}")
    run_dir.mkdir(parents=True, exist_ok=True)
    model, frontend, backend = build_model(s, len(classes))
    cfg["input_kind"] = model.input_kind
    if backend is not None:
        cfg["backend"] = backend.dims
    latest = run_dir / "checkpoint.pt"
    resume_from = None
    if resume and latest.exists():
        resume_from = read_checkpoint(latest)
        old = resume_from["config"]
        if resume_from.get("dataset_key") != cfg["dataset_key"]:
            found = resume_from.get("dataset_key")
            raise ValueError(
                f"{latest} was trained on another dataset state (dataset key "
                f"{str(found)[:12] + '...' if found else 'not recorded'} in the checkpoint, "
                f"{cfg['dataset_key'][:12]}... now: other clips, labels, folds or files, dataset "
                f"{old.get('dataset')!r} then, {cfg['dataset']!r} now); use --no-resume to start again "
                "or another --out")
        diff = {key: (old.get(key), cfg.get(key)) for key in _RESUME_KEYS if old.get(key) != cfg.get(key)}
        if diff:
            raise ValueError(f"{latest} was trained with other settings (key: checkpoint, now): {diff}; "
                             "use --no-resume to start again or another --out")
        if progress:
            print(f"resuming {latest} after epoch {resume_from['epoch']}", file=sys.stderr)
    part = data.portions(ds, k)
    train_set, train_clips, skip_tr = _portion(ds, part["train"], classes, multilabel, cfg, progress, "train", frontend)
    val_set, _, skip_va = _portion(ds, part["val"], classes, multilabel, cfg, progress, "val", frontend)
    patch = None if cfg["arch"] == SAMPLECNN else patch_lengths(
        model.input_kind, cfg["input_seconds"], cfg["patch_seconds"], cfg["window_hop_seconds"])
    if backend is not None and s.recipe == RELEASED and model.input_kind != "waveform":
        mean, std = input_stats(train_set[0])  # the training portion's log-mel values, all together
        backend.set_input_stats(mean, std)
        cfg["input_stats"] = {"mean": mean, "std": std}
    if patch is not None:  # validation predicts a clip as the mean over its moving window of patches
        xw, rows = windows(val_set[0], *patch)
        val_set = (xw, val_set[1][rows], val_set[2][rows])
    model = model.to(dev)
    opt, sched = _optimizer(cfg["arch"], model, cfg)
    base = {"arch": cfg.get("label") or cfg["arch"], "dims": frontend.dims, "fold": k, "dataset": ds.name,
            "config": cfg, "classes": classes, "width": cfg["width"], "seed": cfg["seed"],
            "folds": cfg["folds"], "fold_seed": cfg["fold_seed"],
            "train_ids": [ds.clips[i].id for i in part["train"]],
            "val_ids": [ds.clips[i].id for i in part["val"]], "dataset_key": cfg["dataset_key"]}
    t = Trainer(model, frontend, backend, opt, sched, multilabel, dev, base, run_dir)
    options = FitOptions(cfg["epochs"], cfg["batch_size"], cfg["seed"], patience=cfg["patience"],
                         patch=None if patch is None else patch[0], precision=cfg["precision"],
                         row_ids=tuple(c.id for c in train_clips))
    history = fit(t, train_set, val_set, options, resume_from=resume_from, progress=progress)
    meta = run_record(cfg)
    meta.update(arch=cfg["arch"], dataset=ds.name, fold=k, folds=cfg["folds"],
                fold_seed=cfg["fold_seed"], dataset_key=cfg["dataset_key"], classes=classes,
                n_train_clips=len(part["train"]), n_val_clips=len(part["val"]),
                n_train_rows=len(train_set[0]), n_val_rows=len(val_set[0]),
                train_ids=[ds.clips[i].id for i in part["train"]],
                val_ids=[ds.clips[i].id for i in part["val"]],
                test_ids=[ds.clips[i].id for i in part["test"]],
                skipped=skip_tr + skip_va, epochs_done=len(history),
                n_params=sum(p.numel() for p in model.parameters()),
                seconds_per_epoch=float(np.mean([h["seconds"] for h in history])) if history else None)
    atomic_write_json(run_dir / "meta.json", meta)
    return run_dir


@interruptible
def main(argv=None) -> None:
    archs = list(architectures.ARCHITECTURES) + [SAMPLECNN]
    p = argparse.ArgumentParser(
        prog=prog("python -m trained.train"), formatter_class=HelpFormatter,
        description="Train a front-end + the Pons et al. 2018 back-end (Adam 1e-3, batch norm, 15 s "
                    "patches, windowed prediction; --recipe: as released, or toolkit-2025), or SampleCNN (SGD Nesterov 0.01, /5 on plateau, "
                    "4 decreases), on the training portion of a dataset; "
                    "write checkpoints that `python -m features.extract --weights` reads, and "
                    "the end-to-end results. The last line printed is the results (or run) path.")
    p.add_argument("--arch", required=True, metavar="NAME",
                   help=f"front-end ({', '.join(archs)}), or your own pkg.module:Class / path/to/file.py:factory "
                        "(as features.extract: the study's init from --seed, the study's back-end; "
                        "docs/own-architecture.md)")
    p.add_argument("--recipe", default=RELEASED, choices=RECIPES,
                   help="released (default): as the released code, Pons et al. 2018's models.py (ReLU then batch "
                        "norm in front-end and back-end, the back-end's first conv unpadded, its pool of 2 rounding "
                        "down, no batch norm on the pooled vector, truncated-normal variance-scaling init, the "
                        "log-mel input standardised by the training portion's one mean and std) and Kim et al.'s "
                        "resemul (multi-level aggregation and a dense head as wide as it, 1024; SGD Nesterov 0.9 "
                        "with decay 1e-6; he_uniform / glorot_uniform init); toolkit-2025: this toolkit's earlier "
                        "recipe (batch norm before the activation, padded back-end with a batch norm on the pooled "
                        "vector, He-normal init, raw dB input, SampleCNN head of 512 without multi-level, no decay). "
                        "Part of the run's key: the two never share a folder or results file (docs/training.md)")
    add_custom_arguments(p)
    add_dataset_arguments(p)
    p.add_argument("--folds", type=int, default=10, help="folds of a cross-validated dataset")
    p.add_argument("--fold", type=int, default=None, help="train only this held-out fold (1..K)")
    p.add_argument("--fold-seed", type=int, default=0,
                   help="seed of generated stratified folds; the same as the grid's --fold-seed "
                        "so each fold's model holds out the fold the grid scores")
    add_width_argument(p, "large: the study's front-end widths; small: about 1/8 of the channels")
    add_seed_argument(p, help="seed(s) of the weights, data order and dropout, one training run each, all "
                              "in one results file (not the folds: see --fold-seed)")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"maximum epochs (unset: 30 for front-ends; {SAMPLECNN_MAX_EPOCHS} for samplecnn, "
                        "whose schedule stops it after its 4th learning-rate decrease)")
    p.add_argument("--batch-size", type=int, default=None, help="default 23 for samplecnn, else 16")
    p.add_argument("--lr", type=float, default=None, help="default 0.01 for samplecnn, else 1e-3")
    p.add_argument("--patience", type=int, default=None,
                   help="early stopping: epochs without a better val loss (unset: 10 for front-ends; "
                        "none for samplecnn, whose learning-rate schedule ends training)")
    p.add_argument("--input-seconds", type=float, default=None,
                   help="front-end input length (default: the study's ~29 s); shorter is faster")
    p.add_argument("--pad", default="repeat", choices=["repeat", "zero"])
    p.add_argument("--block", default="basic", choices=BLOCKS, help="SampleCNN block")
    p.add_argument("--se-ratio", type=float, default=0.125, help="SampleCNN SE amplifying ratio")
    p.add_argument("--multi-level", action=argparse.BooleanOptionalAction, default=None,
                   help="SampleCNN multi-level aggregation (unset: on for --recipe released, as resemul's "
                        "default; off for toolkit-2025)")
    p.add_argument("--segments-per-clip", type=int, default=None,
                   help="SampleCNN: at most this many 59049-sample segments per clip (all if unset)")
    p.add_argument("--backend-bn", default="running", choices=("running", "none"),
                   help="batch norm in the back-end: running statistics at prediction (Pons et al. 2018), "
                        "or none. (Extraction's --batchnorm is another thing: the label-leaking study tool.)")
    p.add_argument("--frontend-bn", default=None, choices=FRONTEND_BN,
                   help="(unset: running for the study's front-ends, none for your own module, which keeps "
                        "its own layers) batch norm after every conv of the FRONT-END: 'running' trains it and uses "
                        "its running statistics at prediction and feature extraction (a clip's "
                        "features do not depend on its batch; Pons et al. 2018); 'none': the earlier "
                        "recipe without it. Not extraction's --batchnorm, which uses batch statistics "
                        "(the label-leak experiment)")
    p.add_argument("--patch-seconds", type=float, default=PATCH_SECONDS,
                   help="front-ends train on patches of this length cut at random offsets of the "
                        "input, and predict a clip as the mean over a moving window of patches; 0: "
                        "the whole input (the earlier recipe)")
    p.add_argument("--window-hop-seconds", type=float, default=None,
                   help="hop of the prediction window (unset: the patch length, consecutive patches; "
                        "a last window ends at the input's end)")
    p.add_argument("--weight-decay", type=float, default=None,
                   help="L2 penalty on the conv kernels, Keras l2() convention (loss + wd * sum w^2); "
                        "unset: 1e-4 for samplecnn rese2 (Kim et al. 2018), else 0")
    p.add_argument("--plateau-patience", type=int, default=None,
                   help="samplecnn: epochs without a lower val loss that divide the learning rate by "
                        "5 (unset: 3 for basic, Lee et al. 2017; 2 for the other blocks, Kim et al.)")
    p.add_argument("--lr-decreases", type=int, default=LR_DECREASES,
                   help="samplecnn: training stops when the stage after this many decreases ends")
    add_device_arguments(p)
    p.add_argument("--precision", default="auto", choices=["auto", *TRAIN_PRECISIONS],
                   help="arithmetic of training and prediction: auto = fp16 mixed precision (autocast + "
                        "gradient scaler) on CUDA, float32 on the CPU; bf16: autocast bfloat16; tf32 / fp16: "
                        "CUDA only")
    p.add_argument("--workers", type=int, default=2, help="decoding threads (0: decode in the main thread)")
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE), help="decoded-audio cache")
    p.add_argument("--verify-audio", default="stamp", choices=["stamp", "content"],
                   help="how the decoded-audio cache knows a file unchanged (training reads audio through it; "
                        "it uses no feature sets): stamp = size + mtime (content replaced with the same size "
                        "and the mtime restored, as cp -p or tar do, is NOT noticed); content = also the "
                        "SHA-256 of every file (read once more per run)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="output root")
    p.add_argument("--evaluate", action=argparse.BooleanOptionalAction, default=True,
                   help="after training, predict the test clips and write results.json")
    p.add_argument("--results-out", default=str(DEFAULT_RESULTS), help="results root")
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="continue from checkpoint.pt when the run folder has one")
    p.add_argument("--dry-run", action="store_true", help="print the model summary and exit")
    p.add_argument("--n-classes", type=int, default=10, help="output units for --dry-run")
    a = p.parse_args(argv)
    if a.n_classes < 1:
        p.error(f"--n-classes {a.n_classes}: expected an integer >= 1")
    if a.arch not in archs and not is_custom_spec(a.arch):
        p.error(f"unknown --arch {a.arch!r}; available: {', '.join(archs)}, or pkg.module:Class / "
                "path/to/file.py:factory")
    custom = custom_options_from_args(p, argparse.Namespace(**{**vars(a), "arch": [a.arch]}))
    settings = TrainSettings.parse(p, a, seed=a.seed[0], batchnorm=a.backend_bn == "running", custom=custom)
    if a.dry_run:
        try:
            print(dry_run(settings, a.n_classes))
        except ValueError as e:
            p.exit(2, f"error: {e}\n")
        return
    try:
        path, failed = train_seeds(settings, a.seed)
    except (ValueError, FileNotFoundError, OSError) as e:  # the dataset itself
        p.exit(2, f"error: {e}\n")
    if path is not None:
        print(path, flush=True)
    if failed:
        if len(a.seed) == 1:
            p.exit(2, f"error: {failed[0][1]}\n")
        p.exit(1, f"{len(failed)} of {len(a.seed)} training runs failed:\n"
               + "".join(f"  seed {seed}: {why}\n" for seed, why in failed))


if __name__ == "__main__":
    main()
