"""The HEAR API over this project's front-ends; ``hear/randomcnn_<arch>.py`` are thin modules over it.

HEAR 2021 common API (hearbenchmark.com; checked by ``hear-validator``):

- ``load_model(model_file_path="") -> model``, a ``torch.nn.Module`` with ``sample_rate`` (one of
  16000, 22050, 32000, 44100, 48000), ``scene_embedding_size`` and ``timestamp_embedding_size`` (ints);
- ``get_scene_embeddings(audio, model) -> (n_sounds, scene_embedding_size)`` float32, for ``audio`` a
  tensor ``(n_sounds, n_samples)`` in [-1, 1] at ``model.sample_rate``;
- ``get_timestamp_embeddings(audio, model) -> (embeddings (n_sounds, n_timestamps, size),
  timestamps (n_sounds, n_timestamps) in ms)``, at regular intervals (within 1 ms), 50 ms apart or less.

Choices made here:

- ``sample_rate = 16000``: our front-ends run at 12 kHz, which HEAR does not accept; 16 kHz is the
  smallest accepted rate above it. Audio is resampled to 12 kHz with ``audiodata.audio.resample``, the
  same resampler ``features.extract`` decodes files with.
- Scene embedding = the per-layer feature-map means exactly as ``features.extract`` computes them
  (``features.extract.embed``: the study's crop / repeat-pad to ~29 s, then ``layer_means``).
- Timestamp embedding = the frame-wise output of ``forward`` (the representation a back-end consumes:
  the last layer, ``(channels, frames)``), linearly interpolated onto a regular 25 ms grid of frame
  centres from 12.5 ms to the end of the clip. Clips longer than the model's input are cut into
  consecutive windows of the input length (the last one repeat-padded), so every timestamp is covered.
  Front-ends that pool time away (vgg, mfcc) have one frame per window: their timestamp embedding is
  constant within a window.

``model_file_path`` (or the environment variable ``RANDOMCNN_HEAR_OPTIONS``, which it overrides) is a
comma-separated list: an item without ``=`` is a checkpoint written by ``trained.train`` (trained
weights); ``key=value`` items set ``seed`` (int, default 0), ``width`` (large | small, default large),
``input_seconds`` (float, default the study's ~29 s) and ``batch_size`` (int, default 8). Empty: random
weights, seed 0, width large. Example: ``load_model("seed=2,width=small")``. Options are checked at
``load_model`` (batch_size >= 1, seed in 0 .. 2**32 - 1, input_seconds > 0, a known width), and the
audio at every call (:func:`check_audio`: at least one sound, float samples in [-1, 1], finite, long
enough for the front-end), each with a message saying what was found and what is expected.
"""
from __future__ import annotations

import copy
import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

import architectures
from audiodata import audio
from features import extract as ex
from features.embed import check_samples

__all__ = ["SAMPLE_RATE", "TIMESTAMP_HOP_MS", "ENV_OPTIONS", "HearModel", "parse_options", "load_model", "check_audio",
           "get_scene_embeddings", "get_timestamp_embeddings", "module_api"]

SAMPLE_RATE = 16000       # Hz: the smallest HEAR-accepted rate above the front-ends' 12 kHz
TIMESTAMP_HOP_MS = 25.0   # HEAR asks for <= 50 ms; 25 ms is what its baselines use
ENV_OPTIONS = "RANDOMCNN_HEAR_OPTIONS"
OPTIONS = {"seed": int, "width": str, "input_seconds": float, "batch_size": int}


def parse_options(model_file_path: str = "") -> dict:
    """``{"checkpoint", "seed", "width", "input_seconds", "batch_size"}`` from the environment and the path."""
    opts = {"checkpoint": None, "seed": 0, "width": "large", "input_seconds": None, "batch_size": 8}
    for source, text in (("$" + ENV_OPTIONS, os.environ.get(ENV_OPTIONS, "")),
                         ("model_file_path", str(model_file_path or ""))):
        for item in filter(None, (t.strip() for t in text.split(","))):
            if "=" not in item:
                if not Path(item).is_file():
                    raise FileNotFoundError(f"{source}: checkpoint {item!r} does not exist; expected a "
                                            "file written by trained.train, or key=value options "
                                            f"({', '.join(OPTIONS)})")
                opts["checkpoint"] = item
                continue
            key, value = (s.strip() for s in item.split("=", 1))
            if key not in OPTIONS:
                raise ValueError(f"{source}: unknown option {key!r}; expected one of {', '.join(OPTIONS)}")
            try:
                opts[key] = OPTIONS[key](value)
            except ValueError as e:
                raise ValueError(f"{source}: option {key}={value!r} is not a valid "
                                 f"{OPTIONS[key].__name__}") from e
    if opts["width"] not in architectures.WIDTH_NAMES:
        raise ValueError(f"width {opts['width']!r}: expected one of {', '.join(architectures.WIDTH_NAMES)}")
    if opts["batch_size"] < 1:
        raise ValueError(f"option batch_size={opts['batch_size']}: expected an integer >= 1")
    if not 0 <= opts["seed"] < 2 ** 32:
        raise ValueError(f"option seed={opts['seed']}: expected an integer in 0 .. 2**32 - 1")
    s = opts["input_seconds"]
    if s is not None and not (math.isfinite(s) and s > 0):
        raise ValueError(f"option input_seconds={s}: expected a finite number of seconds > 0")
    return opts


class HearModel(nn.Module):
    """A front-end with the attributes the HEAR API asks for (``frontend`` holds the network)."""

    sample_rate = SAMPLE_RATE

    def __init__(self, arch: str, frontend: nn.Module, options: dict):
        super().__init__()
        self.arch, self.frontend, self.options = arch, frontend.eval(), dict(options)
        self.weights_name = "trained" if options.get("checkpoint") else "random"
        self.spec = ex.input_spec(frontend, options.get("input_seconds"), "repeat", name=arch)
        # samples of 12 kHz audio one input window covers (a spectrogram input: its frames' hops)
        # (kind "clip", the mfcc baseline, takes the whole clip: its timestamp windows are the study's 29 s)
        self.window = {"waveform": self.spec.length, "clip": audio.N_SAMPLES}.get(
            self.spec.kind, self.spec.length * audio.HOP_LENGTH)
        self.scene_embedding_size = int(frontend.feature_length)
        self.timestamp_embedding_size = int(self._forward_shape()[1])

    def _forward_shape(self) -> tuple:
        shape = (1, self.window) if self.spec.kind != "spectrogram" else (1, self.spec.length, audio.N_MELS)
        with torch.inference_mode():
            try:  # shapes only, no arithmetic
                return tuple(copy.deepcopy(self.frontend).to("meta").forward(torch.zeros(shape, device="meta")).shape)
            except (NotImplementedError, RuntimeError):  # an op without a meta kernel (mfcc): one real pass
                return tuple(self.frontend.forward(torch.zeros(shape, device=self.device)).shape)

    @property
    def device(self) -> torch.device:
        return next(iter(self.frontend.parameters()), torch.empty(0)).device


def load_model(arch: str, model_file_path: str = "") -> HearModel:
    """Front-end ``arch`` with random weights (options) or a checkpoint's trained weights."""
    opts = parse_options(model_file_path)
    frontend = ex.build_frontend(arch, width=opts["width"], seed=opts["seed"], weights=opts["checkpoint"])
    return HearModel(arch, frontend, opts)


FULL_SCALE_TOLERANCE = 1e-4   # float rounding of audio normalised to +-1 (resampled, mixed) is accepted


def check_audio(audio_batch, model: HearModel) -> torch.Tensor:
    """The HEAR input contract: a float tensor ``(n_sounds, n_samples)`` with at least one sound, finite
    samples in [-1, 1] (float rounding allowed), at ``model.sample_rate``, at least as long as the
    front-end needs. Raises ``ValueError`` / ``TypeError`` saying what was found and what is expected."""
    if not isinstance(model, HearModel):
        raise TypeError(f"model: expected the HearModel of load_model(), found {type(model).__name__}")
    try:
        a = torch.as_tensor(audio_batch)
    except (TypeError, ValueError, RuntimeError) as e:
        raise TypeError(f"audio: expected a float tensor (n_sounds, n_samples), found "
                        f"{type(audio_batch).__name__} ({e})") from None
    if a.ndim != 2:
        hint = "; for one sound pass audio[None]" if a.ndim == 1 else ""
        raise ValueError(f"audio: expected a tensor (n_sounds, n_samples) at {model.sample_rate} Hz, "
                         f"found shape {tuple(a.shape)}{hint}")
    if a.shape[0] == 0:
        raise ValueError("audio: an empty batch (0 sounds); expected at least one sound, "
                         f"(n_sounds, n_samples) at {model.sample_rate} Hz")
    if a.shape[1] == 0:
        raise ValueError(f"audio: sounds of 0 samples; expected (n_sounds, n_samples) at {model.sample_rate} Hz")
    if not a.is_floating_point():
        raise TypeError(f"audio: expected float samples in [-1, 1], found dtype {a.dtype} (integer PCM: "
                        "divide by its full scale, e.g. 32768 for int16)")
    x = a.detach().to("cpu", torch.float32)
    check_samples(x.numpy(), "audio", max_peak=1.0 + FULL_SCALE_TOLERANCE,  # the check embed() makes too
                  expected=f"samples in [-1, 1] at {model.sample_rate} Hz",
                  hint=" (the HEAR API's range: normalise, e.g. audio / audio.abs().max())")
    need = getattr(model.spec, "min_samples", 0)
    n12k = int(round(a.shape[1] * audio.SAMPLE_RATE / model.sample_rate))
    if n12k < need:
        raise ValueError(f"audio: {a.shape[1]} samples at {model.sample_rate} Hz ({1000 * a.shape[1] / model.sample_rate:.1f} "
                         f"ms) are too short: {model.spec.min_why} needs at least {need} samples at "
                         f"{audio.SAMPLE_RATE} Hz ({1000 * need / audio.SAMPLE_RATE:.1f} ms)")
    return x


def _waves_12k(audio_batch, model: HearModel) -> list[np.ndarray]:
    x = check_audio(audio_batch, model).numpy()
    return [audio.resample(w, model.sample_rate, audio.SAMPLE_RATE) for w in x]


def get_scene_embeddings(audio_batch, model: HearModel) -> torch.Tensor:
    """``(n_sounds, scene_embedding_size)`` float32: the per-layer means of ``features.extract``."""
    waves = _waves_12k(audio_batch, model)
    X = ex.embed(model.frontend, waves, sr=audio.SAMPLE_RATE, input_seconds=model.options["input_seconds"],
                 pad="repeat", device=str(model.device), batch_size=model.options["batch_size"])
    return torch.from_numpy(X).to(torch.as_tensor(audio_batch).device)


@torch.inference_mode()
def get_timestamp_embeddings(audio_batch, model: HearModel) -> tuple[torch.Tensor, torch.Tensor]:
    """``(n_sounds, n_timestamps, timestamp_embedding_size)`` float32 and timestamps ``(n_sounds,
    n_timestamps)`` in ms, every ``TIMESTAMP_HOP_MS`` (see the module docstring)."""
    waves = _waves_12k(audio_batch, model)
    n = waves[0].shape[0]
    n_windows = max(1, math.ceil(n / model.window))
    inputs = []
    for w in waves:
        for k in range(n_windows):
            seg = w[k * model.window:(k + 1) * model.window]
            inputs.append(audio.waveform_input(seg, model.window) if model.spec.kind != "spectrogram"
                          else audio.spectrogram_input(seg, model.spec.length))
    bs, dev = model.options["batch_size"], model.device
    frames = torch.cat([model.frontend.forward(torch.from_numpy(np.stack(inputs[i:i + bs])).to(dev)).float()
                        for i in range(0, len(inputs), bs)])          # (n_sounds * windows, C, T)
    _, C, T = frames.shape
    frames = frames.reshape(len(waves), n_windows, C, T).permute(0, 2, 1, 3).reshape(len(waves), C, n_windows * T)
    window_ms = 1000.0 * model.window / audio.SAMPLE_RATE
    duration_ms = 1000.0 * n / audio.SAMPLE_RATE
    n_ts = max(1, int(duration_ms // TIMESTAMP_HOP_MS))
    ts = (torch.arange(n_ts, dtype=torch.float64) + 0.5) * TIMESTAMP_HOP_MS
    # fractional frame index of each timestamp: frame j's centre is at (j + 0.5) * window_ms / T
    pos = (ts * T / window_ms - 0.5).clamp(0, n_windows * T - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=n_windows * T - 1)
    frac = (pos - lo).to(frames.dtype).to(dev)
    emb = frames[:, :, lo.to(dev)] * (1 - frac) + frames[:, :, hi.to(dev)] * frac   # (n_sounds, C, n_ts)
    out_dev = torch.as_tensor(audio_batch).device
    timestamps = ts.to(torch.float32).expand(len(waves), n_ts).contiguous()
    return emb.permute(0, 2, 1).contiguous().to(out_dev), timestamps.to(out_dev)


def module_api(arch: str):
    """``(load_model, get_scene_embeddings, get_timestamp_embeddings)`` for a thin per-arch module."""
    from architectures.custom import is_custom_spec  # a user's pkg.mod:Class / file.py:factory works too
    if arch not in architectures.ARCHITECTURES and not is_custom_spec(arch):
        raise ValueError(f"unknown architecture {arch!r}; available: {', '.join(architectures.ARCHITECTURES)}")

    def load(model_file_path: str = "") -> HearModel:
        return load_model(arch, model_file_path)
    load.__doc__ = f"HEAR ``load_model`` for the {arch} front-end (see ``hear.common``)."
    return load, get_scene_embeddings, get_timestamp_embeddings
