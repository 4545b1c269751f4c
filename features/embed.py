"""Features of in-memory audio, exactly as extraction computes them from files.

::

    from features.extract import build_frontend
    from features.embed import embed
    model = build_frontend("vgg", width="small", seed=0)
    X = embed(model, [wave_a, wave_b], sr=44100)                 # (2, 120): one row per clip
    [(Xa, ta)] = embed(model, [long_wave], sr=44100, hop=5.0)    # a row every 5 s, ta = window centres (s)

Nothing is assumed: ``sr`` (the rate of ``waves``) is required, a clip longer than the front-end's input
is read by the ``crop`` the caller names (``start``, the study's, by default), and the same samples
give the same features as ``features.extract`` gives for the file holding them: the same mono mix, the
same resampler cut to the exact length (``audiodata.audio.resample``), the same input rule
(``audiodata.decode.fitted_input``) and the same batch computation (``features.compute``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace

import numpy as np
import torch

from audiodata import audio
from audiodata.decode import CROPS, InputSpec, fitted_input, res_type_of, too_short, window_starts
from features.compute import _batch, _features_of_batch
from toolkit.device import cast_model, check_precision, resolve_device

__all__ = ["embed", "input_spec", "clip_minimum", "check_samples", "Compute", "MAX_PEAK"]

MAX_CHANNELS = 8  # more "channels" than this in a 2-D clip means the array is not channels-first
# Float samples beyond this magnitude (60 dB above full scale) are not audio at full scale +-1: most
# often integer PCM cast to float without scaling (int16 peaks at 32768), or garbage. Loud float files
# (peaks of a few times full scale) are kept as they are, as extraction keeps them.
MAX_PEAK = 1e3


@dataclass(frozen=True)
class Compute:
    """Where and how the network runs: ``device`` (auto, cpu, cuda[:N]), clips per forward pass, and
    the arithmetic (``toolkit.device.PRECISIONS``)."""
    device: str = "auto"
    batch_size: int = 8
    precision: str = "float32"

    def __post_init__(self):
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, found {self.batch_size!r}")


def embed(model, waves, sr=None, *, hop: float | None = None, crop: str = "start",
          input_seconds: float | None = None, pad: str = "repeat", **compute):
    """Feature vectors of in-memory audio: ``(n_clips, feature_length)`` float32, or with ``hop`` one
    ``(features (n_windows, feature_length), centres (n_windows,) in s)`` pair per clip.

    Parameters
    ----------
    waves : one clip ``(samples,)``, a batch ``(batch, samples)``, or a list of clips of any length, each
        ``(samples,)`` or channels-first ``(channels, samples)`` (librosa's convention; mixed to mono).
        Floats are taken as they are (full scale +-1); integer PCM is scaled to +-1. A samples-first
        array such as ``soundfile.read`` returns (``(samples, channels)``) is refused with a message.
    sr : int, required
        The sample rate of ``waves`` in Hz; resampled to the front-end's rate (12 kHz) as extraction does.
    hop : float, optional
        Seconds between the starts of consecutive input-length windows, each embedded on its own, the
        last one padded by ``pad``: time-stamped features of a whole recording.
    crop : {"start", "center", "windows"}
        Without ``hop``, how a clip longer than the input is read (``features.extract --crop``).
    input_seconds, pad : as ``features.extract`` (``None``: the study's ~29 s input).
    **compute : ``device``, ``batch_size``, ``precision`` (:class:`Compute`).

    Raises
    ------
    ValueError
        Naming the clip (``waves[i]``) and what is expected: an empty batch, a clip of 0 samples, NaN or
        inf samples, samples beyond ``MAX_PEAK`` (1e3) in magnitude (integer PCM cast to float without
        scaling, or garbage; the HEAR modules share this check, :func:`check_samples`, at +-1), or a clip
        shorter than the front-end's minimum (:func:`clip_minimum`; extraction skips such a file).
    """
    if sr is None:
        raise ValueError("embed: pass sr=, the sample rate of waves in Hz (the front-ends run at "
                         f"{audio.SAMPLE_RATE} Hz; other rates are resampled)")
    if not isinstance(sr, (int, np.integer)) or isinstance(sr, bool) or sr <= 0:
        raise ValueError(f"embed: sr must be a positive integer sample rate in Hz, found {sr!r}")
    if crop not in CROPS:
        raise ValueError(f"embed: crop must be one of {', '.join(CROPS)}, found {crop!r}")
    if hop is not None and not (np.isfinite(hop) and hop > 0):
        raise ValueError(f"embed: hop must be a positive number of seconds, found {hop!r}")
    try:
        run = Compute(**compute)
    except TypeError:
        unknown = sorted(set(compute) - {"device", "batch_size", "precision"})
        raise TypeError(f"embed() got unexpected keyword argument(s) {', '.join(unknown)}") from None
    waves = _clips(waves)
    dev = resolve_device(run.device)
    check_precision(run.precision, dev)
    if run.precision == "bf16":
        import copy
        model = cast_model(copy.deepcopy(model), run.precision)  # the caller's model stays as it was
    model = model.to(dev).eval()
    spec = input_spec(model, input_seconds, pad, crop)
    rate = getattr(spec, "sr", audio.SAMPLE_RATE)
    res_type = res_type_of(spec)
    clips = [_as_mono(np.asarray(w), sr, rate, f"waves[{i}]", res_type) for i, w in enumerate(waves)]
    for i, w in enumerate(clips):  # extraction skips such a clip (``skipped``); here the caller is told
        short = too_short(w.shape[0], spec, rate)
        if short is not None:
            how = f"after resampling from {sr} Hz" if sr != rate else "as passed"
            raise ValueError(f"waves[{i}]: {short.replace('after decoding', how)}")

    def features(inputs):
        out = [_features_of_batch(model, _batch(inputs[i:i + run.batch_size]), dev, run.precision)
               for i in range(0, len(inputs), run.batch_size)]
        return np.concatenate(out).astype(np.float32, copy=False)

    if hop is None:
        rows, counts = [], []
        for w in clips:
            x, _, k = fitted_input(w, spec)
            rows.extend(list(x) if k is not None else [x])
            counts.append(k or 1)
        X = features(rows)
        if all(k == 1 for k in counts):
            return X
        bounds = np.cumsum([0] + counts)
        return np.stack([X[a:b].astype(np.float64).mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:])]
                        ).astype(np.float32)
    out = []
    for w in clips:
        xs, centres = _windows(w, spec, hop, rate)
        out.append((features(xs), centres))
    return out


def input_spec(model, input_seconds: float | None = None, pad: str = "repeat", crop: str = "start",
               name: str | None = None) -> InputSpec:
    """The input a front-end consumes: waveform samples or spectrogram frames at ``input_seconds``, a
    longer clip read by ``crop`` (``audiodata.decode.CROPS``), with the study's audio front when the
    model is marked ``as_published``, and the shortest decoded clip it can use (:func:`clip_minimum`;
    ``name`` names it in the reason)."""
    if crop not in CROPS:
        raise ValueError(f"crop must be one of {', '.join(CROPS)}, found {crop!r}")
    if hasattr(model, "input_spec"):  # e.g. a HEAR module: waveform at its own sample rate
        spec = dataclasses.replace(model.input_spec(input_seconds, pad), crop=crop)
    else:
        n_samples, n_frames = audio.input_lengths(input_seconds)
        published = bool(getattr(model, "as_published", False))
        if model.input_kind == "waveform":
            spec = InputSpec("waveform", n_samples, pad, published, crop=crop)
        elif model.input_kind == "spectrogram":
            spec = InputSpec("spectrogram", n_frames, pad, published, crop=crop)
        elif model.input_kind == "clip":  # the whole decoded clip, never padded (the mfcc baseline)
            spec = InputSpec("clip", 0 if input_seconds is None else n_samples, pad, published, crop=crop)
        else:
            raise ValueError(f"front-end {type(model).__name__} has unknown input_kind {model.input_kind!r}")
    stats = getattr(model, "input_stats", None)  # a released-recipe checkpoint (architectures.checkpoint)
    if stats and spec.kind == "spectrogram":
        spec = dataclasses.replace(spec, standardise=(float(stats["mean"]), float(stats["std"])))
    if not hasattr(spec, "min_samples"):
        return spec
    need, why = clip_minimum(model, spec.kind, name or getattr(model, "arch_name", None) or type(model).__name__)
    return dataclasses.replace(spec, min_samples=need, min_why=why)


def clip_minimum(model, kind: str, name: str) -> tuple[int, str]:
    """The fewest decoded samples a clip needs for ``model``, and why (the reason names the front-end).

    A model may declare ``min_clip_samples``; otherwise spectrogram and whole-clip (mfcc) inputs need
    one log-mel window (``audio.N_FFT`` = 512 samples, 42.7 ms at 12 kHz), and waveform inputs the
    window of the first convolution (its receptive field: 3 samples for sample-level, 512 for
    frame-level and frame-level-many). Shorter clips would be repeated into a whole input of a few
    samples (a 1-sample clip is a constant), so they are skipped with this reason instead.
    """
    declared = getattr(model, "min_clip_samples", None)
    if declared:
        return int(declared), f"{name} (its declared minimum clip length)"
    if kind in ("spectrogram", "clip"):
        return audio.N_FFT, f"{name} (one log-mel window of {audio.N_FFT} samples)"
    conv = next((m for m in model.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d))), None)
    if conv is None:
        return 1, f"{name}"
    k = (conv.kernel_size[0] - 1) * conv.dilation[0] + 1
    return int(k), f"{name} (the receptive field of its first convolution, {k} samples)"


def _windows(w: np.ndarray, spec, hop: float, rate: int):
    """The inputs of ``hop``-spaced windows of one clip and the centre of each (in the clip, seconds)."""
    if spec.kind == "spectrogram":
        step_s, n = audio.HOP_LENGTH / audio.SAMPLE_RATE, 1 + w.shape[0] // audio.HOP_LENGTH
    else:
        step_s, n = 1.0 / rate, w.shape[0]
    step = int(round(hop / step_s))
    if step < 1:
        raise ValueError(f"embed: hop {hop} s is shorter than one {'frame' if spec.kind == 'spectrogram' else 'sample'}"
                         f" ({step_s:.5f} s)")
    if spec.kind == "clip":  # the mfcc baseline: windows of the input length, never padded
        length = spec.length or audio.input_lengths(None)[0]
        starts = window_starts(n, length, step)
        xs = [w[s:s + length] for s in starts]
    else:
        length = spec.length
        x, _, _ = fitted_input(w, replace(spec, crop="windows"), hop=step)
        starts, xs = window_starts(n, length, step), list(x)
    centres = np.array([(s + min(length, n - s) / 2) * step_s for s in starts])
    return xs, centres


def check_samples(x, name: str, *, max_peak: float, expected: str, hint: str = "") -> float:
    """The samples check every in-memory entry point shares (``embed``, the HEAR modules'
    ``check_audio``): at least one sample, all finite, none beyond ``max_peak`` in magnitude. Raises one
    ``ValueError`` naming ``name`` and saying what was found and what is ``expected``; returns the peak."""
    a = np.asarray(x)
    if a.size == 0:
        raise ValueError(f"{name}: 0 samples; expected {expected}")
    finite = np.isfinite(a)
    if not finite.all():
        bad = int(a.size - np.count_nonzero(finite))
        raise ValueError(f"{name}: has NaN or inf samples ({bad} of {a.size}); expected finite {expected}")
    peak = float(np.abs(a).max())
    if peak > max_peak:
        raise ValueError(f"{name}: samples up to {peak:.6g} in magnitude; expected {expected}{hint}")
    return peak


def _clips(waves) -> list:
    if isinstance(waves, np.ndarray):
        if waves.ndim == 2 and _samples_first(waves.shape):
            raise ValueError(f"waves: expected (batch, samples) or (samples,), found {waves.shape}: pass "
                             "channels first (waves.T) or mix to mono (waves.mean(axis=1))")
        if waves.ndim == 1:
            return [waves]
        if waves.ndim not in (2, 3):
            raise ValueError(f"waves: expected (samples,), (batch, samples) or (batch, channels, samples), "
                             f"found {waves.shape}")
    try:
        clips = list(waves)
    except TypeError:
        raise TypeError(f"waves: expected an array or a list of clips, found {type(waves).__name__}") from None
    if not clips:
        raise ValueError("waves: an empty batch (0 clips); expected at least one clip, (samples,) or "
                         "(channels, samples) each")
    return clips


def _samples_first(shape) -> bool:
    """``(samples, channels)``, as soundfile.read returns: few columns, many more rows."""
    return len(shape) == 2 and shape[1] <= MAX_CHANNELS < shape[0]


def _as_float(w: np.ndarray, name: str) -> np.ndarray:
    """float32 samples at full scale +-1: floats as they are, integer PCM scaled by its type's range."""
    if w.dtype.kind == "f":
        return w.astype(np.float32, copy=False)
    if w.dtype.kind == "i":
        return (w.astype(np.float64) / -float(np.iinfo(w.dtype).min)).astype(np.float32)
    if w.dtype.kind == "u":
        half = (float(np.iinfo(w.dtype).max) + 1) / 2
        return ((w.astype(np.float64) - half) / half).astype(np.float32)
    raise ValueError(f"{name}: expected float or integer PCM samples, found dtype {w.dtype}")


def _as_mono(w: np.ndarray, sr: int, rate: int, name: str, res_type: str = audio.RES_TYPE) -> np.ndarray:
    """One clip as mono float32 at ``rate``, as ``audiodata.audio.load_audio`` makes a file's samples."""
    if _samples_first(w.shape):
        raise ValueError(f"{name}: expected (samples,) or (channels, samples), found {w.shape}: pass "
                         "channels first (w.T) or mix to mono (w.mean(axis=1))")
    w = _as_float(w, name)
    if w.ndim == 2:
        w = w.T.mean(axis=1) if w.shape[0] > 1 else w[0]  # (channels, n): the mix load_audio makes
    if w.ndim != 1:
        raise ValueError(f"{name}: expected a (samples,) or (channels, samples) array, found shape {w.shape}")
    check_samples(w, name, max_peak=MAX_PEAK, expected=SAMPLES_EXPECTED, hint=PEAK_HINT)
    return audio.resample(w, int(sr), rate, res_type=res_type)


SAMPLES_EXPECTED = f"float samples at full scale +-1 (magnitudes up to {MAX_PEAK:g} are taken as they are)"
PEAK_HINT = ("; integer PCM cast to float: divide by its full scale (32768 for int16), or pass the integer "
             "array, which is scaled")
