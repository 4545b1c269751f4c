"""MFCC baseline: 20 MFCCs of the whole clip and their raw differences, summarised by mean and std over time.

The study's code (``extract_mfcc_features`` in jordipons/elmarc; ``../shared/design/frontends.md``, "mfcc"):
``librosa.feature.mfcc`` of the *whole* decoded clip (no crop to 29 s), the first differences of the MFCC
frames (``m[:, 1:] - m[:, :-1]``) and the first differences of those, and the vector
``[mean(m), std(m), mean(d), std(d), mean(dd), std(dd)]``. Because the input is the whole clip, this
front-end's ``input_kind`` is ``"clip"``: extraction hands it each decoded clip unfitted, and a batch of
clips of unequal length arrives as a list of 1-D tensors.

"""
from __future__ import annotations

import librosa
import numpy as np
import torch
from torch import nn

from audiodata.audio import PUBLISHED_PAD_MODE, SAMPLE_RATE

from .layers import check_input

N_MFCC = 20
N_FFT = 2048  # librosa.feature.mfcc's default window: clips shorter than this are repeat-padded to it


def _min_length(wave: np.ndarray, n: int = N_FFT, published: bool = False) -> np.ndarray:
    """``wave`` repeated to at least ``n`` samples when shorter: by default then cropped to ``n``; with
    ``published`` (``--as-published``) whole copies are appended until it reaches ``n`` and nothing is
    cropped, as the study's code did (elmarc ``src/main.py``, ``extract_mfcc_features``: ``while
    len(src_repeat) < fixed_length: src_repeat = concatenate((src_repeat, src))``)."""
    if wave.shape[0] == 0:
        raise ValueError("mfcc: empty clip (0 samples)")
    if wave.shape[0] >= n:
        return wave
    tiled = np.tile(wave, -(-n // wave.shape[0]))
    return tiled if published else tiled[:n]


def mfcc_statistics(wave: np.ndarray, sr: int = SAMPLE_RATE, published: bool = False) -> np.ndarray:
    """The study's 120 statistics of one whole clip.

    ``librosa.feature.mfcc`` with 20 coefficients and librosa's other defaults (n_fft 2048, hop 512,
    128 mel bands) at ``sr``; ``d`` = raw first differences of the MFCC frames along time, ``dd`` = first
    differences of ``d``; mean and standard deviation (ddof 0) over time of each.

    Parameters
    ----------
    wave : np.ndarray
        ``(samples,)``, the whole clip; repeat-padded to 2048 samples when shorter.
    sr : int
    published : bool
        ``--as-published``: a short clip is repeated in whole copies, uncropped, and the STFT frames are
        reflect-padded (the study's librosa), as :func:`_min_length` and ``audio.log_mel`` say.

    Returns
    -------
    np.ndarray
        ``(120,)`` float32: ``[mean(m), std(m), mean(d), std(d), mean(dd), std(dd)]``, 20 values each.
    """
    wave = _min_length(np.asarray(wave, dtype=np.float32), published=published)
    extra = {"pad_mode": PUBLISHED_PAD_MODE} if published else {}
    m = librosa.feature.mfcc(y=wave, sr=sr, n_mfcc=N_MFCC, **extra)   # (20, frames), frames >= 5
    d = m[:, 1:] - m[:, :-1]
    dd = d[:, 1:] - d[:, :-1]
    return np.concatenate([m.mean(axis=1), m.std(axis=1), d.mean(axis=1), d.std(axis=1),
                           dd.mean(axis=1), dd.std(axis=1)]).astype(np.float32)


class MFCC(nn.Module):
    """Baseline front-end without parameters: the study's 120 MFCC statistics of each whole clip.

    Input: the whole clips at 12 kHz, either a ``(batch, samples)`` tensor (clips of one length) or a
    list of ``(samples_i,)`` tensors (clips of unequal length). The single "layer" is
    ``(batch, 120, 1)`` (a length-1 time axis so that averaging over the non-channel axes is the identity).

    Parameters
    ----------
    seed : int
        Accepted for a uniform interface; unused (nothing is random).
    """

    input_kind = "clip"
    statistics = staticmethod(mfcc_statistics)
    name = "mfcc"

    def __init__(self, seed: int = 0):
        super().__init__()
        self.seed = seed
        self.layers = [("mfcc", 6 * N_MFCC)]
        self.feature_length = 6 * N_MFCC

    @property
    def dims(self) -> dict:
        return {"seed": self.seed}

    def _clips(self, x) -> tuple[list[np.ndarray], torch.Tensor]:
        if isinstance(x, (list, tuple)):
            if not x:
                raise ValueError(f"{self.name}: empty list of clips")
            for i, c in enumerate(x):
                if not isinstance(c, torch.Tensor) or c.dim() != 1 or c.shape[0] == 0 or not c.is_floating_point():
                    found = tuple(c.shape) if isinstance(c, torch.Tensor) else type(c).__name__
                    raise ValueError(f"{self.name}: clip {i}: expected a non-empty 1-D float tensor (samples,), "
                                     f"found {found}")
            return [c.detach().cpu().numpy() for c in x], x[0]
        check_input(x, "waveform", self.name)
        return list(x.detach().cpu().numpy()), x

    def extract_features(self, x) -> list[torch.Tensor]:
        """``[mfcc]``, ``(batch, 120, 1)``; runs in numpy (librosa), one clip at a time.

        Parameters
        ----------
        x : Tensor ``(batch, samples)`` or list of Tensor ``(samples_i,)``
        """
        waves, ref = self._clips(x)
        stats = np.stack([self._statistics(w) for w in waves])
        return [torch.from_numpy(stats).to(device=ref.device, dtype=ref.dtype)[:, :, None]]

    def _statistics(self, w: np.ndarray) -> np.ndarray:
        # as_published is set by features.extract.build_frontend(as_published=True)
        return mfcc_statistics(w, published=bool(getattr(self, "as_published", False)))

    def forward(self, x) -> torch.Tensor:
        """``(batch, 120, 1)``."""
        return self.extract_features(x)[0]
