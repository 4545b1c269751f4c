"""Shared helpers for tests: tiny audio files and dataset trees generated on the fly.

Import the helpers in a test module with ``from conftest import write_wav, write_tree`` (pytest puts
``tests/`` on ``sys.path``), or use the fixtures below.
"""
from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"          # present on developer machines only; tests skip without it

# soundfile format names for the extensions the toolkit reads.
_FORMATS = {".wav": "WAV", ".au": "AU", ".snd": "AU", ".flac": "FLAC", ".ogg": "OGG", ".mp3": "MP3",
            ".aif": "AIFF", ".aiff": "AIFF"}
_SUBTYPES = {".ogg": "VORBIS", ".mp3": "MPEG_LAYER_III"}


def tone(seconds: float = 0.5, sr: int = 12000, channels: int = 1, freq: float = 440.0,
         amplitude: float = 0.5) -> np.ndarray:
    """A sine tone, float32, shape ``(samples,)`` or ``(samples, channels)`` with channel c at
    ``freq * (c + 1)`` (so a mix-down is distinguishable from any single channel)."""
    t = np.arange(int(round(seconds * sr))) / sr
    x = np.stack([amplitude * np.sin(2 * np.pi * freq * (c + 1) * t) for c in range(channels)], axis=1)
    return (x[:, 0] if channels == 1 else x).astype(np.float32)


def audio_bytes(data: np.ndarray, sr: int, ext: str = ".wav", subtype: str | None = None) -> bytes:
    """Encode ``data`` (``(samples,)`` or ``(samples, channels)``) as a file of type ``ext``."""
    buf = io.BytesIO()
    sf.write(buf, data, sr, format=_FORMATS[ext.lower()],
             subtype=subtype or _SUBTYPES.get(ext.lower(), "PCM_16"))
    return buf.getvalue()


def write_audio(path, data: np.ndarray, sr: int = 12000, subtype: str | None = None) -> Path:
    """Write ``data`` to ``path`` in the format its extension names; parents are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(audio_bytes(data, sr, path.suffix, subtype))
    return path


def write_wav(path, seconds: float = 0.5, sr: int = 12000, channels: int = 1, freq: float = 440.0,
              amplitude: float = 0.5, subtype: str | None = None) -> Path:
    """Write a tiny tone file (any extension of ``_FORMATS``) and return its path."""
    return write_audio(path, tone(seconds, sr, channels, freq, amplitude), sr, subtype)


@lru_cache(maxsize=32)
def _template(ext: str, seconds: float, sr: int) -> bytes:
    return audio_bytes(tone(seconds, sr), sr, ext)


def write_tree(root, relpaths, seconds: float = 0.05, sr: int = 12000) -> list[Path]:
    """Write one tiny tone file per relative path under ``root`` (the same bytes for every file of
    one extension, so a 1000-file tree takes a fraction of a second). Returns the paths."""
    root = Path(root)
    out = []
    for rel in relpaths:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_template(path.suffix.lower(), seconds, sr))
        out.append(path)
    return out


def write_class_folders(root, per_class: int = 3, seconds: float = 1.0) -> Path:
    """A ``folder`` dataset under ``root``: classes ``low`` and ``high`` (tones of 220 / 1760 Hz, a 3 %
    pitch step per clip) at 16 kHz, so loading resamples. Returns ``root``."""
    root = Path(root)
    for label, freq in (("low", 220.0), ("high", 1760.0)):
        for i in range(per_class):
            write_audio(root / label / f"{label}{i}.wav", tone(seconds, 16000, freq=freq * (1 + 0.03 * i)),
                        sr=16000)
    return root


def interrupt_after_chunks(monkeypatch, n: int) -> None:
    """Make extraction stop (``KeyboardInterrupt``, as Ctrl-C) right after its ``n``-th saved chunk."""
    from features.store import Chunks
    real = Chunks.save
    saved = []

    def save(self, c, *args, **kwargs):
        real(self, c, *args, **kwargs)
        saved.append(c)
        if len(saved) >= n:
            raise KeyboardInterrupt(f"stopped after {n} chunks")

    monkeypatch.setattr(Chunks, "save", save)


@pytest.fixture
def wav_factory(tmp_path):
    """``wav_factory("name.wav", seconds=..., sr=..., channels=...)`` writes under ``tmp_path``."""
    def make(name: str = "clip.wav", **kwargs) -> Path:
        return write_wav(tmp_path / name, **kwargs)
    return make


@pytest.fixture
def shared_dir():
    """``../shared`` relative to the repository, or a clean skip when it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent (it holds reference material present on developer machines only)")
    return SHARED


def chance_band(d, n_classes, z=4.0):
    """Chance accuracy +- z binomial standard errors over the clips scored (the test split, or every clip
    under folds). With z = 4 the band also holds the best-of-grid lift of cv-best (measured shuffled
    accuracies: 0.24 .. 0.38 for 180 .. 210 clips, bands 0.19 .. 0.47); a leak lifting shuffled labels
    to 0.5 is outside it (the bound was a flat 0.1 .. 0.6)."""
    n = int(np.sum(d["split"] == "test")) if "split" in d else len(d["y"])
    p = 1.0 / n_classes
    half = z * np.sqrt(p * (1 - p) / n)
    assert p + half < 0.5
    return p - half, p + half


def only_results(root) -> Path:
    """The one results.json a grid wrote under ``root`` (its --out: the root, the folder named by the key)."""
    found = sorted(Path(root).rglob("results.json"))
    assert len(found) == 1, found
    return found[0]
