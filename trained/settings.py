"""The settings of one training run (``trained.train.train``): one architecture, one seed, one dataset.

``TrainSettings`` is frozen and checks itself when made (``toolkit/settings.py``): ``--epochs 0``,
``--lr 0``, ``--batch-size 0`` or ``--n-classes 0`` are one message naming the flag, never silently
replaced by a default. Unset values (``None``) take the recipe's default (``resolved()``), and the
checkpoint records the value that was used. ``identity()`` (without ``fold``, ``seed`` and what changes
no number) names the run folder, so folds trained with another recipe never join this one's results.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from architectures.samplecnn import BLOCKS, LR_DECREASES
from architectures.checkpoint import SAMPLECNN
from architectures.custom import is_custom_spec
from audiodata import datasets
from audiodata.decode import DEFAULT_CACHE
from features.settings import cache_dir_arg
from toolkit.settings import (PADS, TRAIN_PRECISIONS, WIDTHS, Settings, SettingsError, check_choice, check_device,
                              check_float, check_int, check_seed)

__all__ = ["TrainSettings", "RECIPES", "RELEASED", "TOOLKIT_2025", "FRONTEND_BN", "PATCH_SECONDS", "SAMPLECNN_MAX_EPOCHS", "DEFAULT_OUT",
           "DEFAULT_RESULTS"]

DEFAULT_OUT = Path("runs/trained")
DEFAULT_RESULTS = Path("runs/results")
FRONTEND_BN = ("running", "none")  # trained front-end batch norm; "batch" (the leak) is extraction's
PATCH_SECONDS = 15.0  # Pons et al. 2018: 15 s training patches
SAMPLECNN_MAX_EPOCHS = 500  # only a bound: SampleCNN's learning-rate schedule ends its training
RESUMABLE = ("epochs", "patience")
# Training recipes (docs/training.md has the table of every choice and the released line it follows):
# "released": the released code of Pons et al. 2018 (jordipons/music-audio-tagging-at-scale-models,
# models.py) and of Kim et al. 2018 (tae-jun/resemul, model.py / train.py), the default;
# "toolkit-2025": this toolkit's recipe before it (batch norm before the activation, padded back-end with
# a batch norm on the pooled vector, He-normal init, raw dB input, SampleCNN head of 512, no lr decay).
RELEASED, TOOLKIT_2025 = "released", "toolkit-2025"
RECIPES = (RELEASED, TOOLKIT_2025)  # a run resumed with other values of these goes on in the same folder


@dataclass(frozen=True)
class TrainSettings(Settings):
    """Everything one training run is given (``python -m trained.train --help`` explains each field)."""
    arch: str = "sample-level"
    recipe: str = RELEASED
    dataset: str = "synthetic"
    root: object = None
    split_dir: object = None
    manifest: object = None
    folds: int = 10
    fold: int | None = None
    fold_seed: int = 0
    width: str = "large"
    seed: int = 0
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    patience: int | None = None
    input_seconds: float | None = None
    pad: str = "repeat"
    block: str = "basic"
    se_ratio: float = 0.125
    multi_level: bool | None = None     # unset: on for the released recipe (resemul's default), off for toolkit-2025
    segments_per_clip: int | None = None
    batchnorm: bool = True              # the back-end's batch norm (--backend-bn running)
    frontend_bn: str | None = None      # unset: running for the study's front-ends, none for your own module
    patch_seconds: float | None = PATCH_SECONDS
    window_hop_seconds: float | None = None
    weight_decay: float | None = None
    plateau_patience: int | None = None
    lr_decreases: int = LR_DECREASES
    custom: dict | None = None          # your own module's options (architectures.custom.CustomFrontend)
    device: str = "auto"
    precision: str = "auto"
    workers: int = 2
    cache_dir: object = DEFAULT_CACHE
    verify_audio: str = "stamp"         # how the decode cache knows a file unchanged (audiodata.decode.VERIFY_AUDIO)
    out: object = DEFAULT_OUT
    results_out: object = DEFAULT_RESULTS
    resume: bool = True
    evaluate: bool = True

    RECORD_ONLY = ("root", "split_dir", "manifest", "fold", "seed", "device", "workers", "cache_dir", "verify_audio",
                   "out", "results_out", "resume", "evaluate")

    def validate(self) -> None:
        self._set("cache_dir", cache_dir_arg(self.cache_dir))  # --cache-dir none: no cache (as extraction)
        check_choice("--recipe", self.recipe, RECIPES)
        if self.multi_level is not None and not isinstance(self.multi_level, bool):
            raise SettingsError("--multi-level", self.multi_level, "true or false (or unset: the recipe's)")
        check_choice("--dataset", self.dataset, datasets.DATASETS)
        check_choice("--width", self.width, WIDTHS)
        check_choice("--pad", self.pad, PADS)
        check_choice("--verify-audio", self.verify_audio, ("stamp", "content"))  # audiodata.decode.VERIFY_AUDIO
        check_choice("--precision", self.precision, ("auto", *TRAIN_PRECISIONS))
        check_device("--device", self.device)
        if self.frontend_bn is None:  # the study's front-ends: Pons et al. 2018's batch norm; your own: its layers
            self._set("frontend_bn", "none" if is_custom_spec(self.arch) else "running")
        if self.arch == SAMPLECNN:
            check_choice("--block", self.block, BLOCKS)
        else:
            check_choice("--frontend-bn", self.frontend_bn, FRONTEND_BN)
        self._set("seed", check_seed("--seed", self.seed))
        self._set("fold_seed", check_seed("--fold-seed", self.fold_seed))
        self._set("folds", check_int("--folds", self.folds, 2))
        self._set("fold", check_int("--fold", self.fold, 1, self.folds, optional=True))
        self._set("epochs", check_int("--epochs", self.epochs, 1, optional=True))
        self._set("batch_size", check_int("--batch-size", self.batch_size, 1, optional=True))
        self._set("lr", check_float("--lr", self.lr, above=0.0, optional=True))
        self._set("patience", check_int("--patience", self.patience, 1, optional=True))
        self._set("plateau_patience", check_int("--plateau-patience", self.plateau_patience, 1, optional=True))
        self._set("lr_decreases", check_int("--lr-decreases", self.lr_decreases, 0))
        self._set("segments_per_clip", check_int("--segments-per-clip", self.segments_per_clip, 1, optional=True))
        self._set("workers", check_int("--workers", self.workers, 0))
        self._set("input_seconds", check_float("--input-seconds", self.input_seconds, above=0.0, optional=True))
        self._set("se_ratio", check_float("--se-ratio", self.se_ratio, above=0.0))
        for flag, name in (("--patch-seconds", "patch_seconds"), ("--window-hop-seconds", "window_hop_seconds"),
                           ("--weight-decay", "weight_decay")):
            self._set(name, check_float(flag, getattr(self, name), low=0.0, optional=True))
        if self.window_hop_seconds == 0:
            raise SettingsError("--window-hop-seconds", 0, "a number > 0 (or unset: the patch length)")

    def resolved(self, device_type: str) -> "TrainSettings":
        """A copy with the recipe's defaults in place of unset values, and the precision the device
        runs (``toolkit.device.resolve_precision``): what the run actually uses, and records."""
        from toolkit.device import resolve_precision
        sample = self.arch == SAMPLECNN
        return self.replace(multi_level=self.multi_level_used(),
                            epochs=self.epochs or (SAMPLECNN_MAX_EPOCHS if sample else 30),
                            batch_size=self.batch_size or (23 if sample else 16),
                            lr=self.lr or (0.01 if sample else 1e-3),
                            precision=resolve_precision(self.precision, device_type, training=True))

    def multi_level_used(self) -> bool:
        """SampleCNN's multi-level aggregation: as set, else on for the released recipe (resemul's
        train.py builds it unless ``--no-multi``), off for toolkit-2025."""
        return self.recipe == RELEASED if self.multi_level is None else self.multi_level

    def identity(self) -> dict:
        """What changes the weights of every fold (the run folder's key): not the seed (in the folder's
        name), the fold, or ``epochs`` / ``patience`` (a run continues with more epochs, as before)."""
        ident = super().identity()
        for name in RESUMABLE:
            ident.pop(name, None)
        return ident
