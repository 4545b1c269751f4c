"""Audio CNN front-ends with random (or trained) weights, one ``nn.Module`` per file.

Every front-end has ``input_kind``, ``layers`` (``[(name, channels), ...]`` of the averaged layers),
``feature_length``, ``extract_features(x)``, ``forward(x)`` and ``dims`` (so ``cls(**m.dims)`` rebuilds
it); see ``docs/formats.md``. Names resolve through the plain dict ``ARCHITECTURES``; ``WIDTHS`` holds
the study's "large" (~3500 features) and "small" (~120) settings.
"""
from __future__ import annotations

from torch import nn

from .conv7x86 import Conv7x86
from .conv7x96 import Conv7x96
from .frame_level import FrameLevel
from .frame_level_many import FrameLevelMany
from .mfcc import MFCC
from .sample_level import SampleLevel
from .temporal import Temporal
from .timbral import Timbral
from .timbral_temporal import TimbralTemporal, TimbralTime
from .vgg import VGG

ARCHITECTURES: dict[str, type[nn.Module]] = {
    "sample-level": SampleLevel,
    "frame-level": FrameLevel,
    "frame-level-many": FrameLevelMany,
    "7x96": Conv7x96,
    "7x86": Conv7x86,
    "timbral": Timbral,
    "temporal": Temporal,
    "timbral+temporal": TimbralTemporal,
    "timbral+time": TimbralTime,
    "vgg": VGG,
    "mfcc": MFCC,
}

# Constructor keywords of each width (frontends.md): "large" gives 3584 / 3585 features, "small" 112 / 120.
WIDTHS: dict[str, dict[str, dict[str, int]]] = {
    "sample-level": {"large": {"filters": 512}, "small": {"filters": 16}},  # 7 x F
    "frame-level": {"large": {"filters": 896}, "small": {"filters": 30}},  # 4 x F
    "frame-level-many": {"large": {"filters": 448}, "small": {"filters": 15}},  # 8 x F
    "7x96": {"large": {"filters": 3585}, "small": {"filters": 120}},
    "7x86": {"large": {"filters": 3585}, "small": {"filters": 120}},
    "timbral": {"large": {"n": 256}, "small": {"n": 8}},  # 14 x n
    "temporal": {"large": {"n": 256}, "small": {"n": 8}},  # 14 x n
    "timbral+temporal": {"large": {"n": 128}, "small": {"n": 4}},  # 14 n + 14 n
    "timbral+time": {"large": {"n": 128}, "small": {"n": 4}},
    "vgg": {"large": {"filters": 717}, "small": {"filters": 24}},  # 5 x F
    "mfcc": {"large": {}, "small": {}},  # always 120 statistics
}
WIDTH_NAMES = ("large", "small")


def build(name: str, width: str = "large", seed: int = 0, **kwargs) -> nn.Module:
    """Build front-end ``name`` at ``width`` with random weights drawn from ``seed``.

    Parameters
    ----------
    name : str
        A key of ``ARCHITECTURES``.
    width : {"large", "small"}
        Filter counts of ``WIDTHS[name][width]``; explicit ``kwargs`` override them.
    seed : int
        Seed of the local generator the weights come from.
    **kwargs
        Further constructor keywords (e.g. ``batchnorm=True``, ``fast=False``).

    Returns
    -------
    nn.Module
        The front-end, in eval mode.
    """
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; available: {', '.join(ARCHITECTURES)}")
    if width not in WIDTH_NAMES:
        raise ValueError(f"unknown width {width!r}; available: {', '.join(WIDTH_NAMES)}")
    options = {**WIDTHS[name][width], "seed": seed, **kwargs}
    try:
        model = ARCHITECTURES[name](**options)
    except TypeError as e:
        raise ValueError(f"bad keyword arguments for architecture {name!r}: {sorted(options)} ({e})") from e
    return model.eval()


__all__ = ["ARCHITECTURES", "WIDTHS", "WIDTH_NAMES", "build"] + [c.__name__ for c in ARCHITECTURES.values()]
