"""Decode once, in parallel, ahead of the network.

Decoded audio (mono, 12 kHz, float32, the whole clip) is cached on disk as ``.npy`` under a key that covers
the file (absolute path, size, modification time), the sample rate and the decoder's versions, so that
extracting ten architectures from one dataset decodes each file once, and an interrupted run resumes
without decoding again. Files that cannot be decoded are cached as a small JSON error record, so a rerun
reports them again without re-reading them. Every cache file is written atomically (temp file + rename)
with the mode the umask gives, so one ``--cache-dir`` can be shared by several users. The cache only
saves time: an entry that cannot be read (zero bytes, truncated, not an array of audio) is deleted and
the file decoded again, and a cache that cannot be written (disk full, read-only) is skipped with a
warning; neither ever turns into a skipped clip.

Model inputs are then made from the decoded audio in worker threads (crop / repeat-pad for waveform
models, the log-mel spectrogram for spectrogram models) and handed to the network in order, a bounded
number of clips ahead, so decoding overlaps with computing.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from audiodata import audio
from toolkit.provenance import atomic_save_npz, atomic_write_bytes, file_stamp

DEFAULT_CACHE = Path("runs/cache/audio")  # the decode cache of every CLI (--cache-dir)

__all__ = ["DEFAULT_CACHE", "InputSpec", "RateSpec", "too_short", "Prepared", "decode_cached", "prepare", "iter_prepared", "cache_key", "res_type_of", "verify_of", "file_sha256", "VERIFY_AUDIO",
           "model_input",
           "fitted_input", "window_starts", "CROPS", "SPECTROGRAM_INPUT_VERSION"]

# How a clip longer than the input is read: its start (the study's), its middle, or every consecutive
# input-length window (the features averaged over them; the last window padded by the pad rule).
CROPS = ("start", "center", "windows")


def _decoder_version() -> str:
    parts = []
    for name in ("librosa", "soundfile", "soxr", "audioread", "numpy"):
        try:
            parts.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{name}=none")
    return ";".join(parts)


_DECODER = _decoder_version()


@dataclass(frozen=True)
class InputSpec:
    """What a front-end consumes: ``kind`` is ``"waveform"``, ``"spectrogram"`` or ``"clip"`` (the whole
    decoded clip; ``length`` 0, or a crop in samples); ``length`` is in samples or frames; ``pad`` is ``"repeat"`` or ``"zero"``.
    ``published`` (``--as-published``): the audio front of the study's code: resampling with resampy's
    kaiser_best, reflect-padded STFT frames, 0.0 dB zero-padding of spectrograms (docs/fidelity.md)."""
    kind: str
    length: int
    pad: str = "repeat"
    published: bool = False
    min_samples: int = 0   # a decoded clip shorter than this is skipped (``too_short``), ``min_why`` says why
    min_why: str = ""
    crop: str = "start"  # one of CROPS
    verify: str = "stamp"  # how the decode cache knows a file unchanged (``cache_key``)
    # (mean, std): spectrogram inputs standardised as the front-end was trained on them (a released-recipe
    # checkpoint's ``input_stats``, ``trained.train``); empty: the log-mel dB as they are
    standardise: tuple = ()


@dataclass(frozen=True)
class RateSpec:
    """A waveform input of ``length`` samples at ``sr`` Hz (``InputSpec`` plus a rate: HEAR modules and
    SampleCNN decode at their own rate)."""
    kind: str
    length: int
    pad: str
    sr: int
    min_samples: int = 0
    min_why: str = ""
    crop: str = "start"
    verify: str = "stamp"


def too_short(n: int, spec, sr: int = audio.SAMPLE_RATE) -> str | None:
    """The reason a decoded clip of ``n`` samples is too short for ``spec``'s front-end, or None.

    Padding would otherwise repeat a few samples into a whole input (a 1-sample clip becomes a
    constant), which the front-end would turn into features without a word."""
    need = int(getattr(spec, "min_samples", 0) or 0)
    if n >= need:
        return None
    return (f"too short: {n} samples ({1000 * n / sr:.1f} ms at {sr} Hz) after decoding; "
            f"{spec.min_why or 'the front-end'} needs at least {need} ({1000 * need / sr:.1f} ms)")


@dataclass
class Prepared:
    """One clip made ready for the network: ``x`` is ``None`` when it failed, with ``error`` saying why."""
    index: int
    x: np.ndarray | None
    error: str | None
    decode_s: float
    warnings: list
    cut_s: float = 0.0            # seconds of the clip the network did not see (crop start / center)
    windows: int | None = None    # crop windows: x holds this many inputs along a leading axis


def res_type_of(spec) -> str:
    """The resampling filter a spec's audio is decoded with (``--as-published``: the study's)."""
    return audio.PUBLISHED_RES_TYPE if getattr(spec, "published", False) else audio.RES_TYPE


VERIFY_AUDIO = ("stamp", "content")   # --verify-audio: how a file is known to be unchanged
_SHA_MEMO: dict = {}


def file_sha256(path) -> str:
    """SHA-256 of a file's bytes, remembered for this process while its size, mtime and ctime stay the
    same (``cp -p`` restores the mtime but not the ctime, so replaced content is hashed again)."""
    p = os.path.realpath(path)
    st = os.stat(p)
    memo = (p, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    if memo not in _SHA_MEMO:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _SHA_MEMO[memo] = h.hexdigest()
    return _SHA_MEMO[memo]


def verify_of(spec) -> str:
    """How the decode cache knows a file is unchanged: ``stamp`` (size + mtime) or ``content`` (SHA-256)."""
    return getattr(spec, "verify", "stamp") or "stamp"


def cache_key(path: str | os.PathLike, sr: int = audio.SAMPLE_RATE, res_type: str = audio.RES_TYPE,
              verify: str = "stamp") -> str:
    """Key of a file's decoded audio: changes when the file, the sample rate, the resampling filter or
    the decoders change (the default filter adds nothing, so keys made before it was named still hold).

    ``verify="stamp"`` knows the file by its size and modification time: content replaced with the same
    size and the mtime restored (``cp -p``, ``tar``, ``rsync -t``) is not noticed. ``verify="content"``
    adds the SHA-256 of the file's bytes (each file read once more per run)."""
    p = Path(path).resolve()
    st = file_stamp(p)
    stamp = "missing" if st is None else f"{st[0]}:{st[1]}"
    if st is not None and verify == "content":
        try:
            stamp += f":sha256={file_sha256(p)}"
        except OSError:
            stamp = "missing"
    text = f"{p}|{stamp}|sr={sr}|{_DECODER}" + ("" if res_type == audio.RES_TYPE else f"|res={res_type}")
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _unreadable(path) -> str | None:
    """Why ``path`` cannot be read right now (permissions, I/O errors), or None when all its bytes read.

    A decode failure of a file that cannot be read may be transient (fixed with chmod without touching
    size or mtime, a flaky disk or network mount): it is never recorded as the file's error."""
    try:
        with open(path, "rb") as f:
            while f.read(1 << 20):
                pass
    except OSError as e:
        return e.strerror or str(e)
    return None


def decode_cached(path, cache_dir: str | os.PathLike | None, sr: int = audio.SAMPLE_RATE,
                  res_type: str = audio.RES_TYPE, verify: str = "stamp") -> np.ndarray:
    """Decoded mono audio at ``sr`` of ``path`` (resampled with ``res_type``), shape ``(n,)`` float32, read
    from or written to the cache (keyed by :func:`cache_key` with ``verify``).

    Raises ``audio.AudioError`` (also when a cached error record says the file could not be decoded).
    Only errors of the file's content are recorded (``"kind": "content"``); a file that could not be
    read is tried again next time, and so is a record without a kind (written by an older version,
    which also recorded permission and I/O errors).
    """
    if cache_dir is None:
        return audio.load_audio(path, sr=sr, **_filter(res_type))
    key = cache_key(path, sr, res_type, verify)
    base = Path(cache_dir) / key[:2] / key
    npy, err = base.with_suffix(".npy"), base.with_suffix(".err.json")
    if npy.exists():
        wave = _read_cached_wave(npy)
        if wave is not None:
            return wave
    if err.exists():
        try:
            record = json.loads(err.read_text())
            reason = record["reason"]
            if not isinstance(reason, str) or not reason or record.get("kind") != "content":
                raise ValueError("no reason, or an error that may have been transient")
        except Exception:  # damaged or old record (empty, cut, not JSON, no kind): decode again
            _drop(err)
        else:
            raise audio.AudioError(path, reason)
    try:
        wave = audio.load_audio(path, sr=sr, **_filter(res_type))
    except audio.AudioError as e:
        # missing files are not cached as errors (they may appear before the next run), nor files
        # that cannot be read now (permissions, I/O: they may be fixed without changing size or mtime)
        if Path(path).exists() and _unreadable(path) is None:
            _cache_write(err, lambda: atomic_write_bytes(
                err, json.dumps({"path": str(path), "reason": e.reason, "kind": "content"}).encode()))
        raise
    _cache_write(npy, lambda: atomic_write_bytes(npy, _npy_bytes(wave)))
    return wave


def _filter(res_type: str) -> dict:
    """``load_audio``'s keyword for a resampling filter other than the default (none for the default)."""
    return {} if res_type == audio.RES_TYPE else {"res_type": res_type}


def _drop(entry: Path) -> None:
    try:
        entry.unlink(missing_ok=True)
    except OSError:
        pass  # e.g. another user's entry in a shared cache: it is simply not used


def _read_cached_wave(npy: Path) -> np.ndarray | None:
    """A cached decoded clip, or ``None`` (the entry deleted) when it is not a non-empty 1-D float32 array."""
    try:
        wave = np.load(npy, allow_pickle=False)
        if wave.ndim == 1 and wave.dtype == np.float32 and wave.size > 0:
            return wave
    except Exception:  # zero bytes (EOFError), cut short (ValueError), unreadable (OSError), ...
        pass
    _drop(npy)
    return None


_CACHE_WARNED = set()


def _cache_write(entry: Path, write) -> None:
    """Write a cache entry; a cache that cannot be written only costs time, so it is a warning."""
    try:
        write()
    except OSError as e:
        root = str(entry.parent.parent)
        if root not in _CACHE_WARNED:
            _CACHE_WARNED.add(root)
            warnings.warn(f"decode cache {root} cannot be written ({e}); going on without caching",
                          RuntimeWarning, stacklevel=3)


def _npy_bytes(array: np.ndarray) -> bytes:
    import io
    f = io.BytesIO()
    np.save(f, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    return f.getvalue()


def model_input(wave: np.ndarray, spec) -> np.ndarray:
    """A front-end's input from a decoded clip: ``waveform`` (fitted to ``spec.length`` samples),
    ``spectrogram`` (log-mel of the whole clip fitted to ``spec.length`` frames) or ``clip`` (the whole
    clip, any length: the mfcc baseline; cropped to ``spec.length`` samples when that is positive).
    A clip longer than the input is read by ``spec.crop`` (see :func:`fitted_input`)."""
    return fitted_input(wave, spec)[0]


def window_starts(total: int, length: int, hop: int | None = None) -> list[int]:
    """Starts of the ``length``-long windows, ``hop`` apart (default: consecutive), that cover ``total``
    items: ``1 + ceil(max(0, total - length) / hop)`` windows; the last may run past the end."""
    if length < 1:
        raise ValueError(f"window length must be positive, found {length}")
    hop = length if hop is None else int(hop)
    if hop < 1:
        raise ValueError(f"window hop must be at least one sample or frame, found {hop}")
    n = 1 + -(-max(0, total - length) // hop)
    return [i * hop for i in range(n)]


def _fit(x: np.ndarray, spec, kind: str) -> np.ndarray:
    if kind == "waveform":
        return audio.fit_length(x, spec.length, pad=spec.pad)
    return audio.repeat_frames(x, spec.length, pad=spec.pad, **_published(spec))


def _published(spec) -> dict:
    """``--as-published``'s keyword for the spectrogram functions (none by default)."""
    return {"published": True} if getattr(spec, "published", False) else {}


def fitted_input(wave: np.ndarray, spec, hop: int | None = None) -> tuple[np.ndarray, float, int | None]:
    """``(x, cut_s, windows)``: the model input of a decoded clip under ``spec.crop`` (see
    :func:`_fitted_input`), spectrograms standardised by ``spec.standardise`` where it is set."""
    x, cut_s, windows = _fitted_input(wave, spec, hop)
    stats = getattr(spec, "standardise", ())
    if stats and spec.kind == "spectrogram":
        mean, std = stats
        x = ((x - np.float32(mean)) / np.float32(std)).astype(np.float32)
    return x, cut_s, windows


def _fitted_input(wave: np.ndarray, spec, hop: int | None = None) -> tuple[np.ndarray, float, int | None]:
    """``(x, cut_s, windows)``: the model input of a decoded clip under ``spec.crop``.

    ``start`` (the study's) keeps the first ``spec.length`` samples or frames, ``center`` the middle
    ones; ``cut_s`` is then the seconds the network does not see. ``windows`` gives every input-length
    window (``hop`` samples or frames apart; default consecutive) covering the whole clip, the last
    padded by ``spec.pad``, stacked along a new first axis, and their count (``cut_s`` 0). A clip
    shorter than the input is padded whatever the rule. The ``clip`` kind (the mfcc baseline) takes
    the whole clip under ``windows`` (its statistics cover any length).
    """
    crop = getattr(spec, "crop", "start")
    if crop not in CROPS:
        raise ValueError(f"crop must be one of {', '.join(CROPS)}, found {crop!r}")
    sr = getattr(spec, "sr", audio.SAMPLE_RATE)
    if spec.kind == "clip":
        wave = np.asarray(wave)
        if spec.length <= 0 or crop == "windows" or wave.shape[0] <= spec.length:
            return audio.clip_input(wave, 0 if crop == "windows" else spec.length), 0.0, None
        off = (wave.shape[0] - spec.length) // 2 if crop == "center" else 0
        return audio.clip_input(wave[off:off + spec.length]), (wave.shape[0] - spec.length) / sr, None
    if spec.kind == "waveform":
        items, per_s = np.asarray(wave), 1.0 / sr
    elif spec.kind == "spectrogram":
        if crop == "start" and hop is None:  # the study's rule, also the former "repeat-samples" padding
            n_frames = 1 + np.asarray(wave).shape[0] // audio.HOP_LENGTH
            return (audio.spectrogram_input(wave, spec.length, pad=spec.pad, **_published(spec)),
                    max(0, n_frames - spec.length) * audio.HOP_LENGTH / audio.SAMPLE_RATE, None)
        items, per_s = audio.log_mel(wave, **_published(spec)), audio.HOP_LENGTH / audio.SAMPLE_RATE
    else:
        raise ValueError(f"unknown input kind {spec.kind!r}; expected 'waveform', 'spectrogram' or 'clip'")
    total = items.shape[0]
    if crop == "windows" or hop is not None:
        return (np.stack([_fit(items[s:s + spec.length], spec, spec.kind)
                          for s in window_starts(total, spec.length, hop)]), 0.0,
                len(window_starts(total, spec.length, hop)))
    off = (total - spec.length) // 2 if crop == "center" and total > spec.length else 0
    return _fit(items[off:off + spec.length], spec, spec.kind), max(0, total - spec.length) * per_s, None


_model_input = model_input


# Version of how a cached spectrogram input is made from the decoded clip: 2 = the whole clip's log-mel with
# its frames repeated to the input length (version 1 repeated the waveform); old entries are never served.
SPECTROGRAM_INPUT_VERSION = 2
_MEL_SETTINGS = (f"v={SPECTROGRAM_INPUT_VERSION};n_fft={audio.N_FFT};hop={audio.HOP_LENGTH};mels={audio.N_MELS};fmin={audio.FMIN};"
                 f"fmax={audio.FMAX};top_db={audio.TOP_DB};amin={audio.AMIN}")


def _spectrogram_cached(path, spec: InputSpec, cache_dir) -> tuple[np.ndarray, float, int, float, int | None]:
    """A spectrogram model's input, the clip's peak, its decoded length, the seconds the crop left out and
    the number of windows (``crop="windows"``; else None), cached beside the decoded audio (an entry
    without the length, from an older version, is computed again).

    Seven spectrogram front-ends (times the seeds of a study) read the same log-mel; computing it once
    per clip, like decoding, keeps the workers ahead of the network. The key extends the audio's key
    with the log-mel settings, the input length and the padding.
    """
    published = "|published" if spec.published else ""  # resampy, reflect-padded frames, 0 dB padding
    crop = getattr(spec, "crop", "start")
    key = hashlib.sha1(f"{cache_key(path, res_type=res_type_of(spec), verify=verify_of(spec))}|{_MEL_SETTINGS}|{spec.length}|{spec.pad}"
                       f"{published}|crop={crop}".encode()).hexdigest()
    npz = Path(cache_dir) / "inputs" / key[:2] / f"{key}.npz"
    if npz.exists():
        try:
            with np.load(npz, allow_pickle=False) as z:
                x, peak, n, cut_s = z["x"], float(z["peak"]), int(z["n"]), float(z["cut_s"])
            if x.dtype == np.float32 and x.shape[-2:] == (spec.length, audio.N_MELS) \
                    and x.ndim == (3 if crop == "windows" else 2):
                return x, peak, n, cut_s, (x.shape[0] if crop == "windows" else None)
        except Exception:  # zero bytes, cut short (BadZipFile), missing members: compute again
            pass
        _drop(npz)
    wave = decode_cached(path, cache_dir, res_type=res_type_of(spec), verify=verify_of(spec))
    short = too_short(wave.size, spec)
    if short is not None:   # before the log-mel: librosa would only warn about its window
        raise audio.AudioError(path, short)
    x, cut_s, windows = fitted_input(wave, spec)
    x = np.ascontiguousarray(x, dtype=np.float32)
    peak = float(np.abs(wave).max())
    _cache_write(npz, lambda: atomic_save_npz(npz, x=x, peak=np.float64(peak), n=np.int64(wave.size),
                                              cut_s=np.float64(cut_s)))
    return x, peak, int(wave.size), cut_s, windows


def prepare(index: int, path, spec: InputSpec, cache_dir) -> Prepared:
    """Decode (cached) and make the model input of one clip. Never raises for a bad clip.

    ``spec`` may carry a sample rate ``sr`` (``RateSpec``) for models that take
    waveforms at a rate other than 12 kHz. Silent and over-full-scale clips are valid audio; they are noted in ``Prepared.warnings`` (checked
    here on the decoded samples, so a clip read back from the cache is noted too).
    """
    t0 = time.perf_counter()
    notes = []
    sr = getattr(spec, "sr", audio.SAMPLE_RATE)  # a HEAR module or SampleCNN takes its own rate
    try:
        if spec.kind == "spectrogram" and sr != audio.SAMPLE_RATE:
            raise ValueError(f"spectrogram inputs are defined at {audio.SAMPLE_RATE} Hz, not {sr}")
        cut_s, windows = 0.0, None
        if spec.kind == "spectrogram" and cache_dir is not None:
            x, peak, n, cut_s, windows = _spectrogram_cached(path, spec, cache_dir)
        else:
            wave = decode_cached(path, cache_dir, sr=sr, res_type=res_type_of(spec), verify=verify_of(spec))
            peak, n = float(np.abs(wave).max()), wave.size
            x = None
        short = too_short(n, spec, sr)
        if short is not None:
            raise audio.AudioError(path, short)
        if peak == 0.0:
            notes.append("silent clip (all samples are zero): its features are those of silence")
        elif peak > 1.0:
            notes.append("peaks above full scale 1.0 (kept as is, not normalised)")
        if x is None:
            x, cut_s, windows = fitted_input(wave, spec)
        x = np.ascontiguousarray(x, dtype=np.float32)
        if not np.isfinite(x).all():
            raise audio.AudioError(path, "model input has NaN or inf values")
        error = None
    except audio.AudioError as e:
        x, error, cut_s, windows = None, e.reason, 0.0, None
    except Exception as e:  # one bad clip never stops the run: record what went wrong
        x, error, cut_s, windows = None, f"{type(e).__name__}: {e}", 0.0, None
    return Prepared(index, x, error, time.perf_counter() - t0, notes, cut_s, windows)


def iter_prepared(paths, spec: InputSpec, cache_dir, workers: int = 2, ahead: int = 64):
    """Yield :class:`Prepared` for ``paths`` in order, computed by ``workers`` threads.

    Threads, not processes: decoding (libsndfile), resampling (soxr) and the FFTs release the GIL, and
    threads start instantly and hand arrays over without copying, where a process pool paid seconds of
    interpreter start-up and imports for every architecture. At most ``ahead`` clips are in flight,
    which bounds memory while keeping the workers busy while the network runs. ``workers=0`` prepares
    in the calling thread (simplest to debug).
    """
    paths = list(paths)
    with warnings.catch_warnings():
        # audio.load_audio warns about silent / loud files; prepare() records those per clip instead
        # (warnings' own recording is not thread-safe), so they are summarised once at the end
        warnings.filterwarnings("ignore", message=r".*(silent|above full scale).*")
        yield from _iter_prepared(paths, spec, cache_dir, workers, ahead)


def _iter_prepared(paths, spec, cache_dir, workers, ahead):
    if workers <= 0:
        for i, p in enumerate(paths):
            yield prepare(i, p, spec, cache_dir)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        pending = deque()
        nxt = 0
        try:
            while nxt < len(paths) or pending:
                while nxt < len(paths) and len(pending) < max(ahead, workers):
                    pending.append(pool.submit(prepare, nxt, paths[nxt], spec, cache_dir))
                    nxt += 1
                yield pending.popleft().result()
        finally:
            for f in pending:  # interrupted: do not decode what nobody will use
                f.cancel()
