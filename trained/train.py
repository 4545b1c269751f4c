"""Train a front-end (with the Pons et al. 2018 back-end) or SampleCNN end to end.

``python -m trained.train --arch vgg --dataset gtzan --root DATA --split-dir SPLITS`` trains on the
training portion, stops early on validation, and writes under
``runs/trained/<dataset>/<arch>_<width>_seed<seed>/<split|fold<k>>/``: ``checkpoint.pt`` (latest),
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
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

from toolkit.cli import HelpFormatter, interruptible, prog
import architectures
from audiodata import audio, datasets
from audiodata.decode import DEFAULT_CACHE
from toolkit.provenance import atomic_write_json, run_record
from trained import data
from architectures.backend import FrontEndClassifier, PonsBackend, frontend_output, init_he_normal
from architectures.custom import add_arguments as add_custom_arguments
from architectures.custom import is_custom_spec
from architectures.custom import options_from_args as custom_options_from_args
from architectures.checkpoint import SAMPLECNN, read_checkpoint
from trained.loop import StagedLR, Trainer, fit, patch_lengths, windows
from architectures.samplecnn import (BLOCKS, CHANNELS, LR_DECREASES, LR_FACTOR, SAMPLE_RATE, SEGMENT_SAMPLES,
                                     SMALL_CHANNELS, SampleCNN, default_weight_decay)
from architectures.samplecnn import plateau_patience as block_patience
from toolkit.device import resolve_device
from trained.evaluate import evaluate as run_eval
from trained.summary import format_summary, summarize

__all__ = ["train", "build_model", "dry_run", "DEFAULT_OUT"]

DEFAULT_OUT = Path("runs/trained")
DEFAULT_RESULTS = Path("runs/results")
# Settings that must agree between a run and the checkpoint it resumes from.
_RESUME_KEYS = ("arch", "width", "seed", "block", "se_ratio", "multi_level", "batchnorm", "lr",
                "batch_size", "input_seconds", "pad", "segments_per_clip", "fold", "dataset", "folds",
                "fold_seed")
_RESUME_KEYS += ("custom", "frontend_bn", "patch_seconds", "window_hop_seconds", "weight_decay",
                 "plateau_patience", "lr_decreases")
FRONTEND_BN = ("running", "none")  # trained front-end batch norm; "batch" (the leak) is extraction's
PATCH_SECONDS = 15.0  # Pons et al. 2018: 15 s training patches
SAMPLECNN_MAX_EPOCHS = 500  # only a bound: SampleCNN's learning-rate schedule ends its training


def check_trainable(arch: str) -> None:
    """Refuse, before any data is read, a front-end with no weights (the MFCC baseline)."""
    spec = architectures.FRONTENDS.get(arch)
    if spec is not None and spec.input_kind == "clip":
        trainable = [n for n, f in architectures.FRONTENDS.items() if f.input_kind != "clip"]
        raise ValueError(f"--arch {arch}: {arch} has no weights to train (the fixed MFCC baseline: "
                         f"`python -m features.extract --arch {arch}` computes its features); choose a CNN "
                         f"front-end ({', '.join(trainable)}) or {SAMPLECNN}")


def build_model(arch: str, n_classes: int, width: str = "large", seed: int = 0,
                block: str = "basic", se_ratio: float = 0.125, multi_level: bool = False,
                batchnorm: bool = True, input_seconds: float | None = None,
                frontend_bn: str = "running", custom: dict | None = None):
    """``(model, frontend, backend)`` with the initial (random, seeded) weights.

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
    check_trainable(arch)
    if arch == SAMPLECNN:
        channels = CHANNELS if width == "large" else SMALL_CHANNELS
        model = SampleCNN(n_classes, block=block, se_ratio=se_ratio, multi_level=multi_level,
                          channels=channels)
        init_he_normal(model, seed)
        return model, model, None
    if frontend_bn not in FRONTEND_BN:
        raise ValueError(f"--frontend-bn must be one of {', '.join(FRONTEND_BN)}, found {frontend_bn!r} "
                         "(batch-statistics batch norm is extraction's leak experiment, not a training mode)")
    if is_custom_spec(arch):
        if frontend_bn != "none":
            raise ValueError(f"--arch {arch}: --frontend-bn {frontend_bn} adds batch norm after the convs of the "
                             "study's front-ends only; your own module keeps its own layers (--frontend-bn none)")
        from architectures.custom import CustomFrontend
        frontend = CustomFrontend(arch, seed=seed, width=width, **(custom or {}))
    else:
        frontend = architectures.build(arch, width=width, seed=seed,
                                       **({"batchnorm": "running"} if frontend_bn == "running" else {}))
    if not any(p.requires_grad for p in frontend.parameters()):
        raise ValueError(f"architecture {arch!r} has no weights to train (a fixed baseline); "
                         f"choose a CNN front-end or samplecnn")
    with torch.no_grad():  # the back-end's input channels: one probe at the run's input length
        channels = frontend_output(frontend, _example_input(frontend, input_seconds)).shape[1]
    backend = init_he_normal(PonsBackend(channels, n_classes, batchnorm=batchnorm), seed)
    return FrontEndClassifier(frontend, backend), frontend, backend


def _example_input(model, input_seconds: float | None) -> torch.Tensor:
    if getattr(model, "input_kind", None) == "waveform" and isinstance(model, SampleCNN):
        return torch.zeros(1, SEGMENT_SAMPLES)
    n_samples, n_frames = audio.input_lengths(input_seconds)
    if model.input_kind == "waveform":
        return torch.zeros(1, n_samples)
    return torch.zeros(1, n_frames, audio.N_MELS)


def dry_run(arch: str, n_classes: int = 10, width: str = "large", block: str = "basic",
            se_ratio: float = 0.125, multi_level: bool = False, batchnorm: bool = True,
            input_seconds: float | None = None, frontend_bn: str = "running",
            patch_seconds: float | None = PATCH_SECONDS, custom: dict | None = None) -> str:
    """The model summary (layers, output shapes, parameters, totals) as text, without training.

    Front-ends are shown on the input they train on: one patch (``patch_seconds``) when it is
    shorter than the input."""
    model, _, _ = build_model(arch, n_classes, width=width, block=block, se_ratio=se_ratio,
                              multi_level=multi_level, batchnorm=batchnorm,
                              input_seconds=input_seconds, frontend_bn=frontend_bn, custom=custom)
    x = _example_input(model.frontend if hasattr(model, "frontend") else model, input_seconds)
    patch = None if arch == SAMPLECNN else patch_lengths(model.input_kind, input_seconds, patch_seconds)
    if patch is not None:
        x = x[:, :patch[0]]
    title = f"{arch} ({width}{', ' + block if arch == SAMPLECNN else ''}), {n_classes} classes, " \
            f"input {' x '.join(str(v) for v in x.shape[1:])}"
    return format_summary(summarize(model, x), model, title)


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
    if arch == SAMPLECNN:
        opt = torch.optim.SGD(groups, lr=cfg["lr"] or 0.01, momentum=0.9, nesterov=True)
        return opt, StagedLR(opt, cfg["plateau_patience"], LR_FACTOR, cfg["lr_decreases"])
    return torch.optim.Adam(groups, lr=cfg["lr"] or 1e-3), None


def _portion(ds, idx, classes, multilabel, cfg, progress, name):
    clips = [ds.clips[i] for i in idx]
    if cfg["arch"] == SAMPLECNN:
        inp = data.load_inputs(clips, "waveform", SEGMENT_SAMPLES, cfg["pad"], cfg["cache_dir"],
                               segments=True, sample_rate=SAMPLE_RATE,
                               max_segments=cfg["segments_per_clip"], desc=name, progress=progress)
    else:
        kind = cfg["input_kind"]
        n_samples, n_frames = audio.input_lengths(cfg["input_seconds"])
        inp = data.load_inputs(clips, kind, n_samples if kind == "waveform" else n_frames,
                               cfg["pad"], cfg["cache_dir"], workers=cfg["workers"], desc=name,
                               progress=progress)
    kept = np.unique(inp.clip)  # clips that decoded, renumbered 0..k-1
    clip = np.searchsorted(kept, inp.clip)
    y_clip = data.encode_labels([clips[i] for i in kept], classes, multilabel)
    return (inp.x, y_clip[clip], clip), [clips[i] for i in kept], inp.skipped


def train(arch: str = "sample-level", dataset: str = "synthetic", root=None, split_dir=None,
          manifest=None, folds: int = 10, fold: int | None = None, fold_seed: int = 0,
          width: str = "large",
          seed: int = 0, epochs: int | None = None, batch_size: int | None = None, lr: float | None = None,
          patience: int | None = None, input_seconds: float | None = None, pad: str = "repeat",
          block: str = "basic", se_ratio: float = 0.125, multi_level: bool = False,
          segments_per_clip: int | None = None, batchnorm: bool = True, device: str = "auto",
          frontend_bn: str = "running", patch_seconds: float | None = PATCH_SECONDS,
          window_hop_seconds: float | None = None, weight_decay: float | None = None,
          plateau_patience: int | None = None, lr_decreases: int = LR_DECREASES,
          workers: int = 2, cache_dir=DEFAULT_CACHE, out=DEFAULT_OUT, resume: bool = True,
          evaluate: bool = True, results_out=DEFAULT_RESULTS, ds=None, progress: bool = True,
          custom: dict | None = None) -> Path:
    """Train one model per portion (the split, or each fold) and return the run's folder.

    See the module docstring and ``--help`` for the arguments. With ``evaluate`` the test clips
    are predicted by each ``best.pt`` and ``results.json`` is written next to the fold folders.
    """
    check_trainable(arch)
    if arch == SAMPLECNN and block not in BLOCKS:
        raise ValueError(f"unknown SampleCNN block {block!r}; available: {', '.join(BLOCKS)}")
    recipe = _recipe(arch, block, patience, frontend_bn, patch_seconds, window_hop_seconds,
                     weight_decay, plateau_patience, lr_decreases)
    if ds is None:
        from audiodata import datasets
        ds = datasets.load_dataset(dataset, root=root, split_dir=split_dir, manifest=manifest,
                                   folds=folds, seed=fold_seed)
    dev = resolve_device(device)
    batch_size = batch_size or (23 if arch == SAMPLECNN else 16)
    epochs = epochs or (SAMPLECNN_MAX_EPOCHS if arch == SAMPLECNN else 30)
    label = arch  # your own module: its arch_name, as its random-weight feature sets and results are named
    if is_custom_spec(arch):
        from architectures.custom import CustomFrontend
        label = CustomFrontend(arch, seed=seed, width=width, **(custom or {})).arch_name
    run_root = Path(out) / ds.name / f"{label}_{width}_seed{seed}"
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
        used_fold_seed = int(ds.info.get("seed", fold_seed)) if ds.info.get("folds") else None
    if dev.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    for k in todo:
        cfg = dict(arch=arch, dataset=ds.name, root=str(ds.root) if getattr(ds, "root", None) else None,
                   split_dir=str(split_dir) if split_dir else None,
                   manifest=str(manifest) if manifest else None, folds=n_folds, fold=k,
                   fold_seed=used_fold_seed, dataset_key=ds_key, width=width,
                   seed=seed, epochs=epochs, batch_size=batch_size, lr=lr,
                   input_seconds=input_seconds, pad=pad, block=block, se_ratio=se_ratio,
                   multi_level=multi_level, segments_per_clip=segments_per_clip,
                   batchnorm=batchnorm, device=dev.type, workers=workers,
                   cache_dir=str(cache_dir) if cache_dir else None, multilabel=multilabel,
                   amp=dev.type == "cuda", custom=custom, label=label, **recipe)
        _train_one(ds, k, cfg, classes, multilabel, dev, run_root, resume, progress)
    if evaluate:
        return run_eval([run_root], out=results_out, ds=ds, device=dev.type, progress=progress)
    return run_root


def _recipe(arch, block, patience, frontend_bn, patch_seconds, window_hop_seconds, weight_decay,
            plateau_patience, lr_decreases) -> dict:
    """The training-recipe settings of ``cfg``, with the papers' defaults filled in and checked."""
    for name, v in (("patch_seconds", patch_seconds), ("window_hop_seconds", window_hop_seconds),
                    ("weight_decay", weight_decay)):
        if v is not None and not (np.isfinite(v) and v >= 0):
            raise ValueError(f"--{name.replace('_', '-')} must be >= 0, found {v}")
    for name, v, low in (("patience", patience, 1), ("plateau_patience", plateau_patience, 1),
                         ("lr_decreases", lr_decreases, 0)):
        if v is not None and int(v) < low:
            raise ValueError(f"--{name.replace('_', '-')} must be >= {low}, found {v}")
    if arch == SAMPLECNN:  # has its own batch norm and 59 049-sample segments; the schedule stops it
        return dict(frontend_bn=None, patch_seconds=None, window_hop_seconds=None,
                    weight_decay=default_weight_decay(block) if weight_decay is None else float(weight_decay),
                    plateau_patience=plateau_patience or block_patience(block),
                    lr_decreases=int(lr_decreases), patience=patience)
    if frontend_bn not in FRONTEND_BN:
        raise ValueError(f"--frontend-bn must be one of {', '.join(FRONTEND_BN)}, found {frontend_bn!r}")
    return dict(frontend_bn=frontend_bn, patch_seconds=float(patch_seconds) if patch_seconds else None,
                window_hop_seconds=float(window_hop_seconds) if window_hop_seconds else None,
                weight_decay=float(weight_decay or 0.0), plateau_patience=None, lr_decreases=None,
                patience=10 if patience is None else int(patience))


def _train_one(ds, k, cfg, classes, multilabel, dev, run_root, resume, progress) -> Path:
    run_dir = run_root / ("split" if k is None else f"fold{k}")
    run_dir.mkdir(parents=True, exist_ok=True)
    model, frontend, backend = build_model(cfg["arch"], len(classes), cfg["width"], cfg["seed"],
                                           cfg["block"], cfg["se_ratio"], cfg["multi_level"],
                                           cfg["batchnorm"], cfg["input_seconds"],
                                           cfg["frontend_bn"] or "none", cfg.get("custom"))
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
    train_set, _, skip_tr = _portion(ds, part["train"], classes, multilabel, cfg, progress, "train")
    val_set, _, skip_va = _portion(ds, part["val"], classes, multilabel, cfg, progress, "val")
    patch = None if cfg["arch"] == SAMPLECNN else patch_lengths(
        model.input_kind, cfg["input_seconds"], cfg["patch_seconds"], cfg["window_hop_seconds"])
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
    history = fit(t, train_set, val_set, cfg["epochs"], cfg["batch_size"], cfg["seed"],
                  patience=cfg["patience"], resume_from=resume_from, progress=progress,
                  patch=None if patch is None else patch[0])
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
                    "patches, windowed prediction), or SampleCNN (SGD Nesterov 0.01, /5 on plateau, "
                    "4 decreases), on the training portion of a dataset; "
                    "write checkpoints that `python -m features.extract --weights` reads, and "
                    "the end-to-end results. The last line printed is the results (or run) path.")
    p.add_argument("--arch", required=True, metavar="NAME",
                   help=f"front-end ({', '.join(archs)}), or your own pkg.module:Class / path/to/file.py:factory "
                        "(as features.extract: the study's init from --seed, the study's back-end; "
                        "docs/own-architecture.md)")
    add_custom_arguments(p)
    p.add_argument("--dataset", default="synthetic", choices=list(datasets.DATASETS),
                   help="dataset layout to read (as features.extract)")
    p.add_argument("--root", default=None, help="dataset root folder")
    p.add_argument("--split-dir", default=None, help="folder of train/valid/test lists (GTZAN)")
    p.add_argument("--manifest", default=None,
                   help="csv manifest (path,label[,split|fold]); 'a;b;c' labels make it multi-label")
    p.add_argument("--folds", type=int, default=10, help="folds of a cross-validated dataset")
    p.add_argument("--fold", type=int, default=None, help="train only this held-out fold (1..K)")
    p.add_argument("--fold-seed", type=int, default=0,
                   help="seed of generated stratified folds; the same as the grid's --fold-seed "
                        "so each fold's model holds out the fold the grid scores")
    p.add_argument("--width", default="large", choices=["large", "small"])
    p.add_argument("--seed", type=int, nargs="+", default=[0],
                   help="seed(s) of the weights, data order and dropout, one training run each (not the "
                        "folds: see --fold-seed)")
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
    p.add_argument("--multi-level", action="store_true", help="SampleCNN multi-level aggregation")
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
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (CUDA: mixed precision)")
    p.add_argument("--workers", type=int, default=2, help="decoding threads (0: decode in the main thread)")
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE), help="decoded-audio cache")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="output root")
    p.add_argument("--evaluate", action=argparse.BooleanOptionalAction, default=True,
                   help="after training, predict the test clips and write results.json")
    p.add_argument("--results-out", default=str(DEFAULT_RESULTS), help="results root")
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="continue from checkpoint.pt when the run folder has one")
    p.add_argument("--dry-run", action="store_true", help="print the model summary and exit")
    p.add_argument("--n-classes", type=int, default=10, help="output units for --dry-run")
    a = p.parse_args(argv)
    if a.arch not in archs and not is_custom_spec(a.arch):
        p.error(f"unknown --arch {a.arch!r}; available: {', '.join(archs)}, or pkg.module:Class / "
                "path/to/file.py:factory")
    custom = custom_options_from_args(p, argparse.Namespace(**{**vars(a), "arch": [a.arch]}))
    if a.frontend_bn is None:  # the study's front-ends: Pons et al. 2018's batch norm; your own: its layers
        a.frontend_bn = "none" if custom is not None else "running"
    for flag in ("arch_options", "input", "keep_init", "layer_types"):
        delattr(a, flag)
    if a.dry_run:
        try:
            print(dry_run(a.arch, a.n_classes, a.width, a.block, a.se_ratio, a.multi_level,
                          a.backend_bn == "running", a.input_seconds, a.frontend_bn, a.patch_seconds,
                          custom=custom))
        except ValueError as e:
            p.exit(2, f"error: {e}\n")
        return
    kw = {k: v for k, v in vars(a).items() if k not in ("dry_run", "n_classes", "seed", "backend_bn")}
    kw["batchnorm"] = a.backend_bn == "running"
    kw["custom"] = custom
    failed = []
    for seed in a.seed:  # one run per seed; a failed one is reported and the others go on
        try:
            print(train(seed=seed, **kw), flush=True)
        except (ValueError, FileNotFoundError, OSError) as e:
            if len(a.seed) == 1:
                p.exit(2, f"error: {e}\n")
            failed.append(f"seed {seed}: {e}")
            print(f"error: seed {seed}: {e}", file=sys.stderr)
    if failed:
        p.exit(1, f"{len(failed)} of {len(a.seed)} training runs failed:\n" + "\n".join(f"  {f}" for f in failed) + "\n")


if __name__ == "__main__":
    main()
