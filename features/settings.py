"""The settings of one extraction (``features.extract.extract``): one front-end, one seed, one dataset.

``ExtractSettings`` is frozen and checks itself when made (``toolkit/settings.py``). The command line
(several ``--arch``, ``--seed`` and ``--weights``) makes one and derives each part from it with
``settings.replace(arch=..., seed=..., weights=...)``; so do the studies.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from audiodata import datasets
from audiodata import decode
from audiodata.decode import CROPS, DEFAULT_CACHE
from toolkit.settings import (ENGINES, PADS, PRECISIONS, WIDTHS, Settings, SettingsError, add_device_arguments,
                              add_engine_arguments, add_width_argument, check_choice, check_device, check_float,
                              check_int, check_seed)

__all__ = ["ExtractSettings", "DEFAULT_OUT", "add_dataset_arguments", "cache_dir_arg"]

DEFAULT_OUT = Path("runs/features")


def cache_dir_arg(value):
    """``--cache-dir none`` (any case) disables the decoded-audio cache."""
    return None if value is None or str(value).lower() == "none" else value


def add_dataset_arguments(p) -> None:
    """``--dataset``, ``--root``, ``--split-dir``, ``--manifest``: which clips (every tool alike)."""
    p.add_argument("--dataset", default="synthetic", choices=list(datasets.DATASETS), help="dataset layout to read")
    p.add_argument("--root", default=None, help="dataset folder (synthetic: generated here if absent)")
    p.add_argument("--split-dir", default=None,
                   help="gtzan: folder with train_filtered.txt / valid_filtered.txt / test_filtered.txt; "
                        "without it the clips carry no split (folds are made where they are used)")
    p.add_argument("--manifest", default=None,
                   help="csv dataset: the manifest file (path,label[,split|fold]; 'a;b' labels: multi-label)")


@dataclass(frozen=True)
class ExtractSettings(Settings):
    """Everything one extraction is given (``python -m features.extract --help`` explains each)."""
    arch: str = "sample-level"
    dataset: str = "synthetic"
    root: object = None
    split_dir: object = None
    manifest: object = None
    width: str = "large"
    input_seconds: float | None = None
    pad: str = "repeat"
    crop: str = "start"
    seed: int = 0
    weights: object = None
    batchnorm: bool = False
    custom: dict | None = None
    as_published: bool = False
    verify_audio: str = "stamp"
    device: str = "auto"
    precision: str = "float32"
    batch_size: int = 8
    workers: int = 2
    engine: str = "local"
    address: str | None = None
    out: object = DEFAULT_OUT
    cache_dir: object = DEFAULT_CACHE

    RECORD_ONLY = ("workers", "engine", "address", "out", "cache_dir")

    def validate(self) -> None:
        if not isinstance(self.arch, str) or not self.arch:
            raise SettingsError("--arch", self.arch, "a front-end name")
        check_choice("--dataset", self.dataset, datasets.DATASETS)
        check_choice("--width", self.width, WIDTHS)
        check_choice("--pad", self.pad, PADS)
        check_choice("--crop", self.crop, CROPS)
        check_choice("--verify-audio", self.verify_audio, decode.VERIFY_AUDIO)
        check_choice("--precision", self.precision, PRECISIONS)
        check_choice("--engine", self.engine, ENGINES)
        check_device("--device", self.device)
        self._set("seed", check_seed("--seed", self.seed))
        self._set("batch_size", check_int("--batch-size", self.batch_size, 1))
        self._set("workers", check_int("--workers", self.workers, 0))
        self._set("input_seconds", check_float("--input-seconds", self.input_seconds, above=0.0, optional=True))
        self._set("cache_dir", cache_dir_arg(self.cache_dir))
        if self.address and self.engine != "ray":
            raise SettingsError("--address", self.address, "no address with --engine local (it is for --engine ray)")

    @classmethod
    def add_arguments(cls, p) -> None:
        """The command-line section shared by extraction and the studies that extract (not --arch/--seed)."""
        add_dataset_arguments(p)
        add_width_argument(p, "large: the study's ~3584 features; small: ~120 (with --weights: the checkpoint's)")
        p.add_argument("--input-seconds", type=float, default=None,
                       help="input length; default: the study's 350000 samples / 1376 frames (about 29 s)")
        p.add_argument("--pad", default="repeat", choices=list(PADS), help="how clips shorter than the input are filled")
        p.add_argument("--crop", default="start", choices=list(CROPS),
                       help="how clips longer than the input are read: start (the study's: the first input "
                            "length only), center (the middle), windows (every consecutive input-length window, "
                            "the last padded, features averaged over them); the summary and meta.json say how "
                            "many clips were cut and by how much; part of the feature set's key")
        add_device_arguments(p, "arithmetic of the networks: float32 is the study's (TF32 off on CUDA); tf32 "
                                "(CUDA only) and bf16 are faster and change the features slightly (measured in "
                                "docs/precision.md); part of the feature set's key")
        p.add_argument("--batch-size", type=int, default=8,
                       help="clips per forward pass; on a GPU that runs out of memory it is halved and the "
                            "run goes on")
        p.add_argument("--workers", type=int, default=2,
                       help="local engine: decoding threads (0: decode in the main thread); ray engine: Ray "
                            "workers, each decoding and embedding whole chunks with its own copy of the model")
        add_engine_arguments(p, "extraction (same feature set byte for byte either way; ray: CPU, or one GPU "
                                "each with --device cuda)")
        p.add_argument("--cache-dir", default=str(DEFAULT_CACHE),
                       help="decoded-audio cache ('none' disables); may be shared by several users")
        p.add_argument("--verify-audio", default="stamp", choices=list(decode.VERIFY_AUDIO),
                       help="how an audio file is known to be unchanged since a feature set or the decode cache "
                            "was made: stamp = size + modification time (content replaced with the same size "
                            "and the mtime restored, as cp -p or tar do, is NOT noticed); content = also the "
                            "SHA-256 of every file (read once more per run)")
