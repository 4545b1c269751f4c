"""Reading a training checkpoint into a model: a checkpoint is an architecture with weights.

``docs/formats.md`` "Checkpoints". ``trained/checkpoint.py`` writes them (``save_checkpoint``).

A checkpoint is a ``torch.save`` of a dict with the keys of ``KEYS``:

``arch``, ``dims`` (the front-end's constructor arguments), ``state_dict`` (front-end only),
``backend_state_dict``, ``fold`` (1..K, or ``None`` for a split dataset), ``dataset``, ``config``
(the training configuration), ``history`` (one dict per epoch), ``epoch`` (epochs done),
``optimizer_state_dict``; plus two extensions: ``classes`` (the output units' labels, in order) and
``trainer_state`` (scheduler, AMP scaler, early-stopping counters: what resuming needs).

Checkpoints of ``trained.train`` also carry ``IDENTITY_KEYS``: ``width``, ``seed``, ``folds`` (K, or
``None`` for a split dataset), ``fold_seed`` (seed of generated folds, ``None`` when the dataset defines
its folds or split), ``train_ids`` and ``val_ids`` (every clip id of the training and validation
portions), ``dataset_key`` (``audiodata.datasets.dataset_key``). Older checkpoints lack them; they still
load, but nothing can prove which clips they saw (the grid refuses to score their features).

For ``arch == "samplecnn"`` the whole SampleCNN (blocks and its own head) is the "front-end":
``state_dict`` holds all of it and ``backend_state_dict`` is empty. Other architectures are rebuilt as
``architectures.ARCHITECTURES[arch](**dims)``, the Pons et al. 2018 back-end as
``PonsBackend(**config["backend"])``.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

import architectures
from architectures.backend import FrontEndClassifier, PonsBackend
from architectures.samplecnn import SampleCNN

__all__ = ["KEYS", "IDENTITY_KEYS", "SAMPLECNN", "CheckpointError", "read_checkpoint", "build_frontend_from",
           "load_frontend", "load_model", "checkpoint_paths"]

KEYS = ("arch", "dims", "state_dict", "backend_state_dict", "fold", "dataset", "config", "history",
        "epoch", "optimizer_state_dict")
IDENTITY_KEYS = ("width", "seed", "fold", "folds", "fold_seed", "train_ids", "val_ids", "dataset",
                 "dataset_key")
SAMPLECNN = "samplecnn"  # trained.train's end-to-end model; its blocks read out like a front-end's


class CheckpointError(ValueError):
    """A file that is not a usable checkpoint, or one that does not match the requested model."""


def read_checkpoint(path) -> dict:
    """Load and validate a checkpoint dict (on CPU).

    Raises
    ------
    CheckpointError
        The file is missing, unreadable, not a dict, or lacks some of ``KEYS``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # torch raises many types (pickle, zip, runtime) for a bad file
        raise CheckpointError(f"checkpoint {path}: not a readable torch checkpoint "
                              f"({type(e).__name__}: {e})") from e
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"checkpoint {path}: expected a dict with keys {list(KEYS)}, "
                              f"found a {type(ckpt).__name__}")
    missing = [k for k in KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path}: not a trained.train checkpoint, missing keys "
                              f"{missing} (expected {list(KEYS)})")
    return ckpt


def build_frontend_from(arch: str, dims: dict) -> nn.Module:
    """An untrained front-end of ``arch`` with constructor arguments ``dims``."""
    if arch == SAMPLECNN:
        return SampleCNN(**dims)
    if set(dims) == {"identity"}:  # a user's own module (architectures/custom.py), rebuilt from its spec
        return _custom_from(arch, dims["identity"])
    if arch not in architectures.ARCHITECTURES:
        raise CheckpointError(f"unknown architecture {arch!r}; available: "
                              f"{', '.join(sorted(architectures.ARCHITECTURES))}, {SAMPLECNN}")
    return architectures.ARCHITECTURES[arch](**dims)


def _custom_from(arch: str, identity: dict) -> nn.Module:
    """The user's front-end of a checkpoint, built again from its spec and options; its source file must
    be the one it was trained from (same SHA-256), else the weights would be read into another network."""
    from toolkit.provenance import sha256_file
    from .custom import CustomFrontend
    source, want = identity.get("source"), identity.get("source_sha256")
    if want is not None:
        found = sha256_file(source) if source and os.path.isfile(source) else None
        if found != want:
            raise CheckpointError(f"{arch}: the checkpoint was trained from {source} with SHA-256 {want[:12]}..., "
                                  + ("which no longer exists" if found is None else f"which now has {found[:12]}...")
                                  + "; train it again or restore that file")
    layer_types = identity.get("layer_types")
    return CustomFrontend(identity["spec"], options=identity.get("options"), seed=int(identity.get("seed", 0)),
                          width=identity.get("width", "large"), input=identity.get("input_kind"), init="keep",
                          layer_types=None if layer_types == "extract_features" else layer_types)


def _load_state(module: nn.Module, state: dict, what: str, path) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        # strict loading reports missing / unexpected keys and shape mismatches: the dims do not match
        raise CheckpointError(f"checkpoint {path}: the {what} weights do not fit the model built "
                              f"from its dims ({e})") from e


def load_frontend(path, expected_arch: str | None = None, expected_dims: dict | None = None
                  ) -> nn.Module:
    """The trained front-end stored in checkpoint ``path``, in eval mode on the CPU.

    Parameters
    ----------
    path : str or Path
        A checkpoint written by ``trained.train``.
    expected_arch : str, optional
        The architecture the caller asked for; a different one is an error.
    expected_dims : dict, optional
        Constructor arguments the caller expects (e.g. the width's channel counts); any key whose
        value differs from the checkpoint's ``dims`` is an error.

    Returns
    -------
    nn.Module
        ``ARCHITECTURES[arch](**dims)`` (or ``SampleCNN(**dims)``) with the trained ``state_dict``.

    Raises
    ------
    CheckpointError
        Not a checkpoint, missing keys, wrong architecture, dims that differ or do not fit the weights.
    """
    ckpt = read_checkpoint(path)
    arch, dims = ckpt["arch"], ckpt["dims"]
    if expected_arch is not None and arch != expected_arch:
        raise CheckpointError(f"checkpoint {path} holds architecture {arch!r}, but {expected_arch!r} "
                              f"was requested")
    if expected_dims:
        diff = {k: (v, dims.get(k)) for k, v in expected_dims.items() if dims.get(k) != v}
        if diff:
            raise CheckpointError(f"checkpoint {path}: dims do not match the requested model "
                                  "(key: expected, found): "
                                  + ", ".join(f"{k}: {e!r}, {f!r}" for k, (e, f) in diff.items()))
    try:
        model = build_frontend_from(arch, dims)
    except TypeError as e:
        raise CheckpointError(f"checkpoint {path}: dims {dims} are not valid arguments of "
                              f"{arch!r} ({e})") from e
    _load_state(model, ckpt["state_dict"], "front-end", path)
    stats = (ckpt.get("config") or {}).get("input_stats")
    if stats:  # trained on standardised log-mel values (the released recipe): extraction feeds it the same
        model.input_stats = {"mean": float(stats["mean"]), "std": float(stats["std"])}
    return model.eval()


def load_model(path) -> tuple[nn.Module, dict]:
    """The whole trained classifier of a checkpoint and the checkpoint dict.

    Returns a ``SampleCNN`` for ``samplecnn`` or a ``FrontEndClassifier`` (front-end + Pons back-end);
    both have ``logits(x) -> (batch, n_classes)``.
    """
    ckpt = read_checkpoint(path)
    frontend = load_frontend(path)
    if ckpt["arch"] == SAMPLECNN:
        return frontend, ckpt
    backend_dims = ckpt["config"].get("backend")
    if backend_dims is None:
        raise CheckpointError(f"checkpoint {path}: config lacks 'backend' (the back-end's dims)")
    backend = PonsBackend(**backend_dims)
    _load_state(backend, ckpt["backend_state_dict"], "back-end", path)
    return FrontEndClassifier(frontend, backend).eval(), ckpt


def checkpoint_paths(run_dir) -> tuple[Path, Path]:
    """``(latest, best)`` checkpoint paths of a training run folder."""
    run_dir = Path(os.fspath(run_dir))
    return run_dir / "checkpoint.pt", run_dir / "best.pt"
