"""Audio decoding, length fitting and the log-mel spectrogram: the one module that reads audio.

Every other module gets its waveforms and spectrograms from here, so the settings of the reference
study (Pons & Serra 2019, see ``docs/formats.md``) are named once, below.

Decoding goes through ``soundfile`` (libsndfile 1.2 decodes WAV, AU/SND, FLAC, OGG/Vorbis and MP3
natively; GTZAN's ``.au`` files are big-endian 16-bit PCM that it reads directly) and is then
resampled with ``librosa.resample(res_type="soxr_hq")``. That is what ``librosa.load`` does in the
end too, but calling ``soundfile`` ourselves lets us tell a missing file from a corrupt or truncated
one, check the header against the data read, and never silently drop into librosa's deprecated
``audioread`` path (one ffmpeg process per file: slow, and it hides decoding errors). Only formats
libsndfile cannot open (m4a, wma, ...) fall back to ``librosa.load``, which needs ffmpeg.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

__all__ = ["SAMPLE_RATE", "N_SAMPLES", "N_FFT", "HOP_LENGTH", "N_MELS", "FMIN", "FMAX", "N_FRAMES",
           "TOP_DB", "AMIN", "RES_TYPE", "PUBLISHED_RES_TYPE", "PUBLISHED_PAD_MODE", "AudioError", "load_audio", "resample", "fit_length", "input_lengths",
           "log_mel", "repeat_frames", "spectrogram_input", "waveform_input", "clip_input"]

# The study's settings (Pons & Serra 2019, thesis ch. 4; ../shared/design/frontends.md).
SAMPLE_RATE = 12000   # Hz: the MSD/MagnaTagATune front-ends of Pons et al. ran at 12 kHz
N_SAMPLES = 350000    # waveform input: about 29.2 s at 12 kHz, the study's crop of a 30 s clip
N_FFT = 512           # 42.7 ms window at 12 kHz
HOP_LENGTH = 256      # 21.3 ms hop (half the window)
N_MELS = 96           # mel bands: the 96 of every spectrogram front-end's input height
FMIN = 0.0            # Hz
FMAX = 6000.0         # Hz: the Nyquist frequency at 12 kHz
N_FRAMES = 1376       # spectrogram input: 1376 x 96 (about 29.4 s); 350000 samples give only 1368
TOP_DB = 80.0         # dB below each clip's maximum at which the log-mel is floored (power_to_db)
AMIN = 1e-10          # power floor before the log (power_to_db)
RES_TYPE = "soxr_hq"  # librosa.resample's default: band-limited, fast, deterministic
# --as-published: what the study's librosa (< 0.10) did by default. ``librosa.load`` resampled with resampy's
# "kaiser_best" filter, and ``melspectrogram``'s STFT centred its frames with reflect padding (librosa 0.10
# changed the default to zero padding). docs/fidelity.md measures both against today's.
PUBLISHED_RES_TYPE = "kaiser_best"
PUBLISHED_PAD_MODE = "reflect"

# libsndfile logs header fields it had to correct as "data : 24000 (should be 11978)" (WAV) or
# "Data Size   : 24000 (should be 11988)" (AU): a declared size larger than the file holds means
# the file was cut short.
_SIZE_FIX = re.compile(r"^\s*(?:data|Data Size)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
# Streaming writers (ffmpeg to a pipe) leave these placeholders in the header: not a truncation.
_STREAMING_SIZES = {0, 0xFFFFFFFF, 0x7FFFFFFF, 0xFFFFFFFF - 8}


class AudioError(ValueError):
    """A file that cannot be used as audio; the message names the path, the reason and what was expected."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}; expected a readable, non-empty audio file "
                         f"(wav, au, flac, ogg, mp3) with finite samples")


def _decode(path: Path) -> tuple[np.ndarray, int]:
    """Decode ``path`` to ``(samples, channels)`` float32 and its sample rate; raise AudioError."""
    try:
        info = sf.info(str(path))
    except sf.LibsndfileError as e:
        if path.suffix.lower() in {".wav", ".au", ".snd", ".flac", ".ogg", ".mp3", ".aif", ".aiff"}:
            raise AudioError(path, f"unreadable or corrupt ({e.error_string})") from e
        return _decode_fallback(path, e)
    for declared, actual in _SIZE_FIX.findall(info.extra_info):
        declared, actual = int(declared), int(actual)
        if declared not in _STREAMING_SIZES and declared > actual + 8:
            raise AudioError(path, f"truncated: the header declares {declared} data bytes, "
                                   f"the file holds {actual}")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise AudioError(path, f"corrupt or truncated ({e})") from e
    # Compressed formats (mp3) declare their length up front; fewer frames means a cut file.
    if info.frames > 0 and data.shape[0] < 0.99 * info.frames:
        raise AudioError(path, f"truncated: decoded {data.shape[0]} of the {info.frames} frames "
                               f"the header declares")
    return data, int(rate)


def _decode_fallback(path: Path, cause: Exception) -> tuple[np.ndarray, int]:
    """librosa.load (audioread/ffmpeg) for containers libsndfile does not know."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # librosa's "PySoundFile failed" notice: we know
            data, rate = librosa.load(str(path), sr=None, mono=False, dtype=np.float32)
    except Exception as e:  # audioread raises many unrelated types (NoBackendError, EOFError, ...)
        detail = str(e) or "no decoding backend (is ffmpeg installed?)"
        raise AudioError(path, f"unreadable: libsndfile says '{cause}', and librosa's audioread "
                               f"fallback failed ({type(e).__name__}: {detail})") from e
    return np.atleast_2d(data).T.astype(np.float32, copy=False), int(rate)


def load_audio(path, sr: int = SAMPLE_RATE, res_type: str = RES_TYPE) -> np.ndarray:
    """Decode an audio file to a mono float32 waveform at ``sr`` Hz.

    Parameters
    ----------
    path : str or Path
        Any file libsndfile reads (wav, au, flac, ogg, mp3, aiff) or, with ffmpeg, other containers.
    sr : int
        Target sample rate; other rates are resampled with ``librosa.resample`` (``RES_TYPE``).
    res_type : str
        ``librosa.resample``'s filter: ``RES_TYPE`` (soxr_hq), or ``PUBLISHED_RES_TYPE`` (resampy's
        kaiser_best, the study's librosa default) for ``--as-published``.

    Returns
    -------
    np.ndarray
        float32, shape ``(n,)``. Channels are averaged. Loud files (peaks above 1.0, possible in
        float formats) and silent files are returned as they are, with a warning.

    Raises
    ------
    AudioError
        Missing, unreadable, corrupt, truncated or empty file, or NaN / inf samples.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "no such file" if not path.exists() else "not a regular file")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    data, rate = _decode(path)
    if data.shape[0] == 0:
        raise AudioError(path, "no samples (0 frames)")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise AudioError(path, f"{bad} NaN or inf samples")
    wave = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    wave = resample(wave, rate, sr, res_type=res_type)
    peak = float(np.abs(wave).max())
    if peak == 0.0:
        warnings.warn(f"{path}: silent (all samples are zero)", stacklevel=2)
    elif peak > 1.0:
        warnings.warn(f"{path}: peaks at {peak:.3g}, above full scale 1.0 (kept as is)", stacklevel=2)
    return wave


def resample(wave: np.ndarray, orig_sr: int, target_sr: int = SAMPLE_RATE, res_type: str = RES_TYPE) -> np.ndarray:
    """Resample a mono waveform with ``librosa.resample(res_type=res_type)`` (default ``RES_TYPE``).

    Parameters
    ----------
    wave : np.ndarray
        Shape ``(samples,)``.
    orig_sr, target_sr : int
        Sample rates in Hz.

    Returns
    -------
    np.ndarray
        float32, shape ``(ceil(samples * target_sr / orig_sr),)``; ``wave`` itself when the rates agree.
    """
    wave = np.asarray(wave)
    if wave.ndim != 1:
        raise ValueError(f"resample: expected a 1-D waveform (samples,), found shape {wave.shape}")
    if orig_sr != target_sr:
        # librosa sizes the output as ceil(n * (target / orig)) in floating point, which gives
        # 12001 samples for one second at 22 050 Hz; the exact count is ceil(n * target / orig).
        n_out = -(-wave.shape[0] * int(target_sr) // int(orig_sr))
        wave = librosa.resample(wave, orig_sr=orig_sr, target_sr=target_sr, res_type=res_type)[:n_out]
    return np.ascontiguousarray(wave, dtype=np.float32)


def fit_length(wave: np.ndarray, n: int, pad: str = "repeat") -> np.ndarray:
    """Crop ``wave`` to its first ``n`` samples, or pad it to ``n``.

    Parameters
    ----------
    wave : np.ndarray
        Shape ``(samples,)``.
    n : int
        Target length.
    pad : {"repeat", "zero"}
        "repeat" tiles the clip (the study's choice for UrbanSound8K); "zero" appends zeros.

    Returns
    -------
    np.ndarray
        Shape ``(n,)``, same dtype as ``wave``.
    """
    wave = np.asarray(wave)
    if wave.ndim != 1:
        raise ValueError(f"fit_length: expected a 1-D waveform (samples,), found shape {wave.shape}")
    if pad not in ("repeat", "zero"):
        raise ValueError(f"fit_length: pad must be 'repeat' or 'zero', found {pad!r}")
    if n < 1:
        raise ValueError(f"fit_length: n must be a positive number of samples, found {n}")
    if wave.shape[0] >= n:
        return wave[:n]
    if wave.shape[0] == 0:
        raise ValueError("fit_length: cannot pad an empty waveform (0 samples)")
    if pad == "repeat":
        return np.tile(wave, -(-n // wave.shape[0]))[:n]
    return np.concatenate([wave, np.zeros(n - wave.shape[0], dtype=wave.dtype)])


def input_lengths(input_seconds: float | None = None) -> tuple[int, int]:
    """The waveform and spectrogram input lengths ``(n_samples, n_frames)`` for a duration.

    ``None`` gives the study's 350 000 samples and 1376 frames; otherwise
    ``round(s * 12000)`` samples and ``round(s * 12000 / 256)`` frames.
    """
    if input_seconds is None:
        return N_SAMPLES, N_FRAMES
    s = float(input_seconds)
    if not np.isfinite(s) or s <= 0 or round(s * SAMPLE_RATE / HOP_LENGTH) < 1:
        raise ValueError(f"input_seconds must be a positive duration of at least one hop "
                         f"({HOP_LENGTH / SAMPLE_RATE:.4f} s), found {input_seconds!r}")
    return int(round(s * SAMPLE_RATE)), int(round(s * SAMPLE_RATE / HOP_LENGTH))


def log_mel(wave: np.ndarray, published: bool = False) -> np.ndarray:
    """The study's log-mel power spectrogram of a 12 kHz waveform, computed with librosa.

    Parameters
    ----------
    wave : np.ndarray
        Shape ``(samples,)`` at ``SAMPLE_RATE``.
    published : bool
        ``--as-published``: the centred frames are reflect-padded (``PUBLISHED_PAD_MODE``), as the study's
        librosa did; by default zero-padded (librosa >= 0.10). Only the first and last two frames differ.

    Returns
    -------
    np.ndarray
        float32, shape ``(1 + samples // HOP_LENGTH, N_MELS)``, time x mel, in dB, floored at
        ``TOP_DB`` below the clip's own maximum.
    """
    wave = np.asarray(wave)
    if wave.ndim != 1 or wave.shape[0] == 0:
        raise ValueError(f"log_mel: expected a non-empty 1-D waveform (samples,), found shape {wave.shape}")
    extra = {"pad_mode": PUBLISHED_PAD_MODE} if published else {}
    mel = librosa.feature.melspectrogram(y=wave, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP_LENGTH,
                                         n_mels=N_MELS, fmin=FMIN, fmax=FMAX, power=2.0, **extra)
    db = librosa.power_to_db(mel, ref=1.0, amin=AMIN, top_db=TOP_DB)
    return np.ascontiguousarray(db.T, dtype=np.float32)


def repeat_frames(frames: np.ndarray, n_frames: int, pad: str = "repeat", published: bool = False) -> np.ndarray:
    """Fit a ``(frames, bands)`` spectrogram to ``n_frames`` along time.

    Crops to the first ``n_frames``; a shorter spectrogram has its frames repeated (``"repeat"``,
    the study's code: the whole clip's frames tiled, then cropped) or is extended with the clip's
    floor value (``"zero"``: silence, ``TOP_DB`` below its maximum or ``10 log10(AMIN)``, whichever is higher).
    With ``published`` (``--as-published``) ``"zero"`` appends 0.0 dB frames, as the study's code did
    (``np.zeros`` filled with the clip's frames: elmarc ``src/main.py``, ``compute_input``).

    Parameters
    ----------
    frames : np.ndarray
        Shape ``(frames, bands)``, at least one frame.
    n_frames : int
    pad : {"repeat", "zero"}
    published : bool

    Returns
    -------
    np.ndarray
        Shape ``(n_frames, bands)``, same dtype.
    """
    frames = np.asarray(frames)
    if frames.ndim != 2 or frames.shape[0] == 0:
        raise ValueError(f"repeat_frames: expected a non-empty (frames, bands) array, found shape {frames.shape}")
    if pad not in ("repeat", "zero"):
        raise ValueError(f"repeat_frames: pad must be 'repeat' or 'zero', found {pad!r}")
    if n_frames < 1:
        raise ValueError(f"repeat_frames: n_frames must be positive, found {n_frames}")
    if frames.shape[0] >= n_frames:
        return frames[:n_frames]
    if pad == "repeat":
        return np.tile(frames, (-(-n_frames // frames.shape[0]), 1))[:n_frames]
    floor = 0.0 if published else max(10.0 * np.log10(AMIN), float(frames.max()) - TOP_DB)
    fill = np.full((n_frames - frames.shape[0], frames.shape[1]), floor, dtype=frames.dtype)
    return np.concatenate([frames, fill])


def spectrogram_input(wave: np.ndarray, n_frames: int = N_FRAMES, pad: str = "repeat",
                      published: bool = False) -> np.ndarray:
    """The input of a spectrogram front-end: ``(n_frames, 96)`` time x mel.

    The log-mel of the whole decoded clip (its 80 dB floor relative to the whole clip's maximum),
    then fitted to ``n_frames`` by :func:`repeat_frames`: cropped to the first ``n_frames``, or, when
    the clip has fewer, its frames repeated and cropped (``pad="repeat"``, the study's code; an
    UrbanSound8K clip of 3 s gives 141 frames, tiled ten times). ``pad="zero"`` appends silent frames.
    ``published`` (``--as-published``): reflect-padded STFT
    frames (:func:`log_mel`) and 0.0 dB zero-padding (:func:`repeat_frames`), as the study's code.

    Parameters
    ----------
    wave : np.ndarray
        Shape ``(samples,)`` at ``SAMPLE_RATE``.
    n_frames : int
    pad : {"repeat", "zero"}
    published : bool

    Returns
    -------
    np.ndarray
        float32, shape ``(n_frames, 96)``.
    """
    wave = np.asarray(wave)
    if wave.ndim != 1:
        raise ValueError(f"spectrogram_input: expected a 1-D waveform (samples,), found shape {wave.shape}")
    if n_frames < 1:
        raise ValueError(f"spectrogram_input: n_frames must be positive, found {n_frames}")
    if pad not in ("repeat", "zero"):
        raise ValueError(f"spectrogram_input: pad must be 'repeat' or 'zero', found {pad!r}")
    return repeat_frames(log_mel(wave, published), n_frames, pad=pad, published=published)


def waveform_input(wave: np.ndarray, n_samples: int = N_SAMPLES, pad: str = "repeat") -> np.ndarray:
    """The input of a waveform front-end: the clip cropped or padded to ``n_samples``, shape ``(n_samples,)``."""
    return fit_length(wave, n_samples, pad=pad)


def clip_input(wave: np.ndarray, max_samples: int = 0) -> np.ndarray:
    """The input of a front-end of input kind ``"clip"`` (the mfcc baseline): the whole decoded clip,
    never padded; cropped to its first ``max_samples`` only when that is positive (an explicit
    ``--input-seconds``). float32, shape ``(samples,)``."""
    wave = np.asarray(wave)
    if wave.ndim != 1 or wave.shape[0] == 0:
        raise ValueError(f"clip_input: expected a non-empty 1-D waveform (samples,), found shape {wave.shape}")
    if max_samples > 0:
        wave = wave[:max_samples]
    return np.ascontiguousarray(wave, dtype=np.float32)
