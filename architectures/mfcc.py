"""MFCC baseline: 20 MFCCs and their deltas, summarised by mean and standard deviation over time."""
from __future__ import annotations

import librosa
import numpy as np
import torch
from torch import nn

from .layers import check_input

SAMPLE_RATE = 12000  # the study's rate (features/audio.py owns the constant; no runtime import needed)
N_MFCC = 20
DELTA_WIDTH = 9  # librosa.feature.delta's default Savitzky-Golay window (frames)


def mfcc_statistics(wave: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """The 120 statistics of one clip.

    ``librosa.feature.mfcc`` with its defaults (20 coefficients, n_fft 2048, hop 512, 128 mel bands)
    at ``sr``; the "first and second differences" are ``librosa.feature.delta`` of order 1 and 2
    (Savitzky-Golay derivatives over 9 frames, librosa's standard deltas, rather than raw
    ``np.diff``, which is noisier and one frame shorter); then the mean and the standard deviation
    (ddof 0) over time of each of the 60 rows.

    Parameters
    ----------
    wave : np.ndarray
        ``(samples,)`` float.
    sr : int

    Returns
    -------
    np.ndarray
        ``(120,)`` float32: ``[mean(mfcc), mean(delta), mean(delta2), std(mfcc), std(delta), std(delta2)]``,
        20 values each.
    """
    coeffs = librosa.feature.mfcc(y=np.asarray(wave, dtype=np.float32), sr=sr, n_mfcc=N_MFCC)
    if coeffs.shape[1] < DELTA_WIDTH:
        raise ValueError(f"mfcc: clip too short: {coeffs.shape[1]} MFCC frames, deltas need at least {DELTA_WIDTH} "
                         f"(about {DELTA_WIDTH * 512} samples at hop 512)")
    rows = np.concatenate([coeffs, librosa.feature.delta(coeffs, order=1),
                           librosa.feature.delta(coeffs, order=2)], axis=0)  # (60, frames)
    return np.concatenate([rows.mean(axis=1), rows.std(axis=1)]).astype(np.float32)


class MFCC(nn.Module):
    """Baseline front-end without parameters: 120 MFCC statistics per clip, computed with librosa.

    Input ``(batch, samples)`` at 12 kHz. The single "layer" is ``(batch, 120, 1)`` (a length-1 time
    axis so that averaging over the non-channel axes is the identity).

    Parameters
    ----------
    seed : int
        Accepted for a uniform interface; unused (nothing is random).
    """

    input_kind = "waveform"

    def __init__(self, seed: int = 0):
        super().__init__()
        self.seed = seed
        self.layers = [("mfcc", 6 * N_MFCC)]
        self.feature_length = 6 * N_MFCC

    @property
    def dims(self) -> dict:
        return {"seed": self.seed}

    def extract_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[mfcc]``, ``(batch, 120, 1)``, from ``x`` ``(batch, samples)``; runs in numpy, one clip at a time."""
        check_input(x, self.input_kind, "mfcc")
        waves = x.detach().cpu().numpy()
        stats = np.stack([mfcc_statistics(w) for w in waves])
        return [torch.from_numpy(stats).to(device=x.device, dtype=x.dtype)[:, :, None]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, 120, 1)``."""
        return self.extract_features(x)[0]
