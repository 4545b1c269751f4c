"""Audio CNN front-ends with random (or trained) weights, one ``nn.Module`` per file.

Every front-end has ``input_kind``, ``layers`` (``[(name, channels), ...]`` of the averaged layers),
``feature_length``, ``extract_features(x)``, ``forward(x)`` and ``dims`` (so ``cls(**m.dims)`` rebuilds
it); see ``docs/formats.md``.

``FRONTENDS`` is the one table of the shipped front-ends, in the study's order: the extraction and training
CLIs take their choices from it, the HEAR modules (``hear.randomcnn_<name>``) are made from it, and the
report orders its tables and colours by it. It is plain data, so reading it imports no torch (the report
and the grid never need torch); ``ARCHITECTURES`` (name -> class) and ``build`` import a front-end's
module only when it is used. Adding a front-end: its module file and one row here
(``docs/adding.md``).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

__all__ = ["FrontEnd", "FRONTENDS", "ARCHITECTURES", "WIDTHS", "WIDTH_NAMES", "build"]

WIDTH_NAMES = ("large", "small")


@dataclass(frozen=True)
class FrontEnd:
    """One shipped front-end.

    Attributes
    ----------
    name : str
        The ``--arch`` name.
    target : str
        ``"module:Class"`` of its ``nn.Module``, the module relative to this package.
    widths : dict
        Constructor keywords of the study's ``"large"`` (~3584 features) and ``"small"`` (~120) widths.
    input_kind : {"waveform", "spectrogram", "clip"}
        What it consumes (the class says the same; ``tests/test_registry.py`` checks it); "clip" is the
        whole decoded clip, never cropped or padded (the MFCC baseline).
    reference : str
        Where the design comes from.
    seeded : bool
        Whether its features depend on the weight seed (False for the MFCC baseline, which has no
        weights: a study extracts and scores it once).
    """
    name: str
    target: str
    widths: dict
    input_kind: str
    reference: str
    seeded: bool = True

    @property
    def hear_module(self) -> str:
        """Its HEAR-API module: ``hear.randomcnn_<name>`` with ``-`` and ``+`` as ``_``."""
        return "hear.randomcnn_" + self.name.replace("-", "_").replace("+", "_")

    def load(self):
        """The ``nn.Module`` class (imports its module, and torch, on first use)."""
        module, cls = self.target.split(":")
        return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


FRONTENDS: dict[str, FrontEnd] = {f.name: f for f in (
    FrontEnd("sample-level", "sample_level:SampleLevel",  # 7 x F features
             {"large": {"filters": 512}, "small": {"filters": 16}}, "waveform", "Lee et al. 2017"),
    FrontEnd("frame-level", "frame_level:FrameLevel",  # 4 x F
             {"large": {"filters": 896}, "small": {"filters": 30}}, "waveform", "Dieleman & Schrauwen 2014"),
    FrontEnd("frame-level-many", "frame_level_many:FrameLevelMany",  # 8 x F
             {"large": {"filters": 448}, "small": {"filters": 15}}, "waveform", "Zhu et al. 2016"),
    FrontEnd("7x96", "conv7x96:Conv7x96",
             {"large": {"filters": 3585}, "small": {"filters": 120}}, "spectrogram", "Dieleman 2014"),
    FrontEnd("7x86", "conv7x86:Conv7x86",
             {"large": {"filters": 3585}, "small": {"filters": 120}}, "spectrogram", "Pons et al. 2016"),
    FrontEnd("timbral", "timbral:Timbral",  # 14 x n
             {"large": {"n": 256}, "small": {"n": 8}}, "spectrogram", "Pons et al. 2016/2017"),
    FrontEnd("temporal", "temporal:Temporal",  # 14 x n
             {"large": {"n": 256}, "small": {"n": 8}}, "spectrogram", "Pons et al. 2016/2017"),
    FrontEnd("timbral+temporal", "timbral_temporal:TimbralTemporal",  # 14 n + 14 n
             {"large": {"n": 128}, "small": {"n": 4}}, "spectrogram", "Pons et al. 2018"),
    FrontEnd("timbral+time", "timbral_temporal:TimbralTime",
             {"large": {"n": 128}, "small": {"n": 4}}, "spectrogram", "Pons et al. 2018"),
    FrontEnd("vgg", "vgg:VGG",  # 5 x F
             {"large": {"filters": 717}, "small": {"filters": 24}}, "spectrogram", "Choi et al. 2016"),
    FrontEnd("mfcc", "mfcc:MFCC",  # always 120 statistics
             {"large": {}, "small": {}}, "clip", "baseline", seeded=False),
)}

# Constructor keywords of each width (frontends.md): "large" gives 3584 / 3585 features, "small" 112 / 120.
WIDTHS: dict[str, dict[str, dict]] = {name: f.widths for name, f in FRONTENDS.items()}


def __getattr__(name):
    """``ARCHITECTURES`` (name -> class) and the classes themselves, imported on first use (PEP 562)."""
    if name == "ARCHITECTURES":
        table = {n: f.load() for n, f in FRONTENDS.items()}
        globals()["ARCHITECTURES"] = table
        return table
    for f in FRONTENDS.values():
        if f.target.split(":")[1] == name:
            return f.load()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build(name: str, width: str = "large", seed: int = 0, **kwargs):
    """Build front-end ``name`` at ``width`` with random weights drawn from ``seed``.

    Parameters
    ----------
    name : str
        A key of ``FRONTENDS``.
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
    if name not in FRONTENDS:
        raise ValueError(f"unknown architecture {name!r}; available: {', '.join(FRONTENDS)}")
    if width not in WIDTH_NAMES:
        raise ValueError(f"unknown width {width!r}; available: {', '.join(WIDTH_NAMES)}")
    options = {**WIDTHS[name][width], "seed": seed, **kwargs}
    try:
        model = FRONTENDS[name].load()(**options)
    except TypeError as e:
        raise ValueError(f"bad keyword arguments for architecture {name!r}: {sorted(options)} ({e})") from e
    return model.eval()
