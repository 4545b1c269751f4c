"""``features.extract --arch hear:MODULE``: any module with the HEAR API as a front-end.

The module is imported, checked for the three HEAR functions (``load_model``, ``get_scene_embeddings``,
``get_timestamp_embeddings``) and its model for the HEAR attributes (``sample_rate``,
``scene_embedding_size``, ``timestamp_embedding_size``); what is missing is named. Audio is decoded
directly at the module's ``sample_rate`` (the decode cache keys on the rate), cropped or repeat-padded
to the study's input duration (``--input-seconds`` to change it) and handed to ``get_scene_embeddings``
in batches. The feature set is a normal one with a single layer named ``"scene"``, so the grid and the
report treat it like any front-end. ``--weights`` is the module's ``model_file_path``.

The model's ``weights_name`` attribute, when it has one (this project's ``hear`` modules do), says
``random`` or ``trained``; any other module counts as ``trained`` (HEAR modules are pretrained
embeddings). Its cost is not counted (``gflop_per_clip`` is null): the module is opaque to us.
"""
from __future__ import annotations

import importlib

import numpy as np
import torch
from torch import nn

from audiodata import audio
from audiodata.decode import RateSpec

__all__ = ["REQUIRED_FUNCTIONS", "REQUIRED_ATTRIBUTES", "HearError", "RateSpec", "load_module",
           "HearFrontend"]

REQUIRED_FUNCTIONS = ("load_model", "get_scene_embeddings", "get_timestamp_embeddings")
REQUIRED_ATTRIBUTES = ("sample_rate", "scene_embedding_size", "timestamp_embedding_size")


class HearError(ValueError):
    """A module that does not follow the HEAR API (the message names what is missing or wrong)."""


def load_module(name: str):
    """Import HEAR module ``name`` and check it has the three API functions."""
    try:
        module = importlib.import_module(name)
    except ImportError as e:
        raise HearError(f"hear:{name}: cannot import module {name!r} ({e}); install it into this "
                        "environment (pip install ...) or put it on PYTHONPATH") from e
    missing = [f for f in REQUIRED_FUNCTIONS if not callable(getattr(module, f, None))]
    if missing:
        raise HearError(f"hear:{name}: module {module.__name__} ({getattr(module, '__file__', '?')}) lacks "
                        f"the HEAR function(s) {', '.join(missing)}; a HEAR module defines "
                        f"{', '.join(REQUIRED_FUNCTIONS)}")
    return module


class HearFrontend(nn.Module):
    """A HEAR module's model behind the front-end interface of ``docs/formats.md``.

    ``extract_features(x)`` takes ``(batch, samples)`` at ``sample_rate`` and returns
    ``[(batch, scene_embedding_size)]``: one "layer", ``scene``.
    """

    input_kind = "waveform"
    opaque_cost = True  # features.extract: do not count FLOPs of someone else's model

    def __init__(self, module_name: str, model_file_path: str = ""):
        super().__init__()
        self.module_name, self.model_file_path = module_name, model_file_path
        module = load_module(module_name)
        try:
            model = module.load_model(model_file_path) if model_file_path else module.load_model()
        except Exception as e:
            raise HearError(f"hear:{module_name}: load_model({model_file_path!r}) failed: "
                            f"{type(e).__name__}: {e}") from e
        missing = [a for a in REQUIRED_ATTRIBUTES if not hasattr(model, a)]
        if missing:
            raise HearError(f"hear:{module_name}: the model load_model() returned "
                            f"({type(model).__name__}) lacks the HEAR attribute(s) {', '.join(missing)}")
        for a in REQUIRED_ATTRIBUTES:
            value = getattr(model, a)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise HearError(f"hear:{module_name}: model.{a} must be a positive int, found {value!r}")
        if isinstance(model, nn.Module):
            self.model = model  # a submodule: .to(device) moves it, its parameters are counted
        else:
            self._opaque = model
        self.sample_rate = int(model.sample_rate)
        self.layers = [("scene", int(model.scene_embedding_size))]
        self.feature_length = int(model.scene_embedding_size)
        self.weights_name = getattr(model, "weights_name", None) or "trained"
        self.dims = {"module": module_name, "model_file_path": model_file_path}

    @property
    def hear_model(self):
        return self.model if "model" in self._modules else self._opaque

    def input_spec(self, input_seconds: float | None = None, pad: str = "repeat") -> RateSpec:
        """The study's input duration (or ``input_seconds``) at this module's sample rate."""
        seconds = audio.N_SAMPLES / audio.SAMPLE_RATE if input_seconds is None else float(input_seconds)
        return RateSpec("waveform", int(round(seconds * self.sample_rate)), pad, self.sample_rate)

    def extract_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.ndim != 2:
            raise ValueError(f"hear:{self.module_name}: expected audio (batch, samples), found {tuple(x.shape)}")
        module = importlib.import_module(self.module_name)  # by name: the module object does not pickle
        emb = torch.as_tensor(module.get_scene_embeddings(x, self.hear_model))
        if emb.shape != (x.shape[0], self.feature_length):
            raise HearError(f"hear:{self.module_name}: get_scene_embeddings returned shape "
                            f"{tuple(emb.shape)}; expected ({x.shape[0]}, {self.feature_length}) "
                            "= (n_sounds, scene_embedding_size)")
        return [emb.to(torch.float32)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.extract_features(x)[0]
