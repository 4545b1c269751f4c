"""A small, deterministic synthetic dataset: 3 timbres x 2 rhythms, written as wav files.

It lets the whole pipeline run (and be tested) without downloading anything. The classes differ
the way music genres do, in timbre and in rhythm, and vary within a class in pitch, tempo, timing,
level, duration and background noise, so neither loudness nor length alone tells them apart:

- timbre ``bright``: band-limited sawtooth (every harmonic, amplitude 1/k: high spectral centroid);
  ``mellow``: odd harmonics only, amplitude 1/k^2 (triangle-like, dark); ``noisy``: band-pass noise
  with a centre frequency drawn per clip (no pitch at all).
- rhythm ``slow``: one note per beat at 66-88 BPM (about 1.1-1.5 onsets/s), long decays;
  ``fast``: a syncopated eighth-note pattern (5 onsets in 8 eighths) at 120-150 BPM (about
  2.5-3.1 onsets/s), short decays.

Files are written at 22 050 Hz (16-bit PCM) on purpose, so that every run also exercises the
resampling to 12 kHz in ``audiodata/audio.py``. The same seed gives the same bytes.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

__all__ = ["TIMBRES", "RHYTHMS", "CLASSES", "SYNTHETIC_SR", "make_synthetic", "synthesize_clip"]

TIMBRES = ("bright", "mellow", "noisy")
RHYTHMS = ("slow", "fast")
CLASSES = tuple(f"{t}-{r}" for t in TIMBRES for r in RHYTHMS)
SYNTHETIC_SR = 22050          # not 12 kHz: loading resamples, as it must for real datasets
_TOP_HZ = 5500.0              # partials stay under the 6 kHz of the log-mel (no aliasing at 12 kHz)
_TABLE = 4096                 # wavetable length (one period); nearest-sample lookup is ~-70 dB clean
_PENTATONIC = np.array([0, 2, 4, 7, 9, 12])   # semitones above the clip's base pitch
_FAST_PATTERN = np.array([1, 0, 1, 1, 0, 1, 0, 1], dtype=bool)   # eighths of one bar


def _wavetable(timbre: str, n_harmonics: int) -> np.ndarray:
    """One period of a band-limited tone, peak 1, shape ``(_TABLE,)``."""
    k = np.arange(1, n_harmonics + 1)
    amp = 1.0 / k if timbre == "bright" else np.where(k % 2 == 1, 1.0 / k**2, 0.0)
    phase = 2 * np.pi * np.arange(_TABLE) / _TABLE
    table = (amp[:, None] * np.sin(k[:, None] * phase[None, :])).sum(axis=0)
    return table / np.abs(table).max()


def _onsets(rhythm: str, length_s: float, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Onset times in seconds and the envelope decay time constant for one clip."""
    if rhythm == "slow":
        step, hits, tau = 60.0 / rng.uniform(66, 88), np.ones(1, dtype=bool), rng.uniform(0.25, 0.4)
    else:
        step, hits, tau = 30.0 / rng.uniform(120, 150), _FAST_PATTERN, rng.uniform(0.06, 0.1)
    grid = np.arange(rng.uniform(0, min(step, length_s / 2)), length_s, step)   # never empty
    times = grid[np.resize(hits, grid.size)]
    times = times + rng.normal(0.0, 0.008, times.size)      # human timing jitter, about 8 ms
    return np.sort(np.clip(times, 0.0, length_s - 0.05)), tau


def synthesize_clip(timbre: str, rhythm: str, rng: np.random.Generator, duration: float = 7.0,
                    sr: int = SYNTHETIC_SR) -> np.ndarray:
    """One synthetic clip.

    Parameters
    ----------
    timbre : one of ``TIMBRES``
    rhythm : one of ``RHYTHMS``
    rng : numpy Generator supplying all the randomness (pitch, tempo, level, noise, ...)
    duration : nominal length in seconds; each clip is 0.85-1.15 times it
    sr : sample rate in Hz

    Returns
    -------
    np.ndarray
        float32, shape ``(samples,)``, peak between -20 and -3 dBFS.
    """
    if timbre not in TIMBRES or rhythm not in RHYTHMS:
        raise ValueError(f"unknown class {timbre}-{rhythm}; timbres {TIMBRES}, rhythms {RHYTHMS}")
    n = max(int(round(duration * rng.uniform(0.85, 1.15) * sr)), sr // 4)
    onsets, tau = _onsets(rhythm, n / sr, rng)
    starts = np.round(onsets * sr).astype(int)
    ends = np.append(starts[1:], n)
    # Per-note envelope: 5 ms attack, exponential decay, cut by the next note; random velocity.
    env = np.zeros(n)
    attack = int(0.005 * sr)
    for s, e in zip(starts, ends):
        t = np.arange(e - s) / sr
        env[s:e] = rng.uniform(0.6, 1.0) * np.exp(-t / tau) * np.minimum(1.0, np.arange(e - s) / attack)
    if timbre == "noisy":
        centre = np.exp(rng.uniform(np.log(800), np.log(3000)))
        sos = signal.butter(2, [centre / 1.5, min(centre * 1.5, _TOP_HZ)], btype="bandpass", fs=sr,
                            output="sos")
        tone = signal.sosfilt(sos, rng.standard_normal(n))
        tone /= np.abs(tone).max()
    else:
        base = np.exp(rng.uniform(np.log(110), np.log(330)))
        freqs = base * 2.0 ** (rng.choice(_PENTATONIC, size=starts.size) / 12.0)
        inst = np.full(n, freqs[0])
        for s, e, f in zip(starts, ends, freqs):
            inst[s:e] = f
        table = _wavetable(timbre, max(1, int(_TOP_HZ // freqs.max())))
        phase = np.cumsum(inst / sr) % 1.0
        tone = table[(phase * _TABLE).astype(int) % _TABLE]
    x = tone * env
    x /= np.abs(x).max()
    snr_db = rng.uniform(20, 35)
    x = x + rng.standard_normal(n) * np.sqrt(np.mean(x**2)) * 10 ** (-snr_db / 20)
    x *= 10 ** (rng.uniform(-20, -3) / 20) / np.abs(x).max()
    return x.astype(np.float32)


def _wav_bytes(x: np.ndarray, sr: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def make_synthetic(root, n_per_class: int = 16, duration: float = 7.0, seed: int = 0,
                   progress: bool = False) -> Path:
    """Write the synthetic dataset to ``root`` (which must not exist yet), atomically.

    Layout: ``<root>/<class>/<class>_<NN>.wav``, ``<root>/manifest.csv`` (path, label, split: per
    class half train, a quarter val, the rest test, drawn with the seed) and ``<root>/synthetic.json``
    with the parameters. Everything is written into a temporary sibling folder and renamed at the
    end, so a crash or a concurrent run never leaves a half-written dataset at ``root``.

    Parameters
    ----------
    root : str or Path
    n_per_class : int
        Clips per class (at least 4, so that every split gets one); 6 classes.
    duration : float
        Nominal clip length in seconds.
    seed : int
        Same seed, same bytes.
    progress : bool
        Say so on stderr, with a bar over the clips (generation takes seconds).

    Returns
    -------
    Path
        ``root``.
    """
    root = Path(root)
    if n_per_class < 4:
        raise ValueError(f"n_per_class must be at least 4 (train/val/test each need a clip), found {n_per_class}")
    if not duration > 0:
        raise ValueError(f"duration must be positive seconds, found {duration}")
    if root.exists():
        raise FileExistsError(f"{root}: already exists; make_synthetic writes a new folder only")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    bar = None
    if progress:
        import sys
        from tqdm import tqdm
        print(f"synthetic dataset: generating {n_per_class * len(CLASSES)} clips of {duration:g} s under {root} "
              "(first use only)", file=sys.stderr, flush=True)
        bar = tqdm(total=n_per_class * len(CLASSES), unit="clip", desc="generating", file=sys.stderr,
                   leave=False, dynamic_ncols=True, mininterval=0.5)
    try:
        rows = []
        for ci, name in enumerate(CLASSES):
            timbre, rhythm = name.split("-")
            (tmp / name).mkdir(parents=True)
            order = np.random.default_rng([seed, ci, 1]).permutation(n_per_class)
            n_train, n_val = n_per_class // 2, n_per_class // 4
            for i in range(n_per_class):
                # One generator per clip, keyed by (seed, class, index): clip i does not change
                # when n_per_class does.
                x = synthesize_clip(timbre, rhythm, np.random.default_rng([seed, ci, 0, i]), duration)
                rel = f"{name}/{name}_{i:02d}.wav"
                (tmp / rel).write_bytes(_wav_bytes(x, SYNTHETIC_SR))
                rank = int(np.flatnonzero(order == i)[0])
                rows.append((rel, name, "train" if rank < n_train else "val" if rank < n_train + n_val else "test"))
                if bar is not None:
                    bar.update(1)
        with open(tmp / "manifest.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["path", "label", "split"])
            w.writerows(sorted(rows))
        params = {"generator": "audiodata/synthetic.py", "n_per_class": n_per_class, "duration": duration,
                  "seed": seed, "sample_rate": SYNTHETIC_SR, "classes": list(CLASSES)}
        (tmp / "synthetic.json").write_text(json.dumps(params, indent=2) + "\n", encoding="utf-8")
        try:
            os.rename(tmp, root)
        except OSError:
            if (root / "manifest.csv").is_file():   # another process finished first: use its copy
                shutil.rmtree(tmp, ignore_errors=True)
                return root
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    return root
