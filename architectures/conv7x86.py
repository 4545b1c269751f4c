"""7x86 front-end (Pons et al. 2016 / 2017): one conv over 7 frames and 86 of the 96 mel bands, max over frequency.

Fast path (``layers.band_conv_max``: im2col + GEMM per time chunk, max over the 11 frequency positions in
cache, the 3585 filters padded to 3600 for the GEMM); see docs/performance.md for its figures.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import StudyFrontEnd
from .init import init_weights, keeps_global_rng
from .layers import act_norm, N_MELS, band_conv_max, check_input, norm_layer

KERNEL = (7, int(0.9 * N_MELS))  # 86 bands: 11 frequency positions remain


class Conv7x86(StudyFrontEnd):
    """conv 7 x 86, valid, F filters, ReLU, max-pool 1 x 11 over the remaining frequency positions.

    Input ``(batch, frames, 96)``; 1376 frames give a ``(batch, F, 1370)`` map (after the pool).

    Parameters
    ----------
    filters : int
        F (3585 large, 120 small).
    seed : int
        Seed of the random weights.
    batchnorm : bool or "running"
        BatchNorm with batch statistics after the conv (the leak experiment); "running": trained
        batch norm with running statistics (``layers.norm_layer``); off by default.
    fast : bool
        Compute the conv as im2col + GEMM with the max over frequency in cache
        (``layers.band_conv_max``; bias and ReLU fused, same result).
    """

    input_kind = "spectrogram"

    @keeps_global_rng
    def __init__(self, filters: int = 3585, seed: int = 0, batchnorm: bool = False, fast: bool = True):
        super().__init__()
        self.store_common(filters, seed, batchnorm, fast)
        self.conv = nn.Conv2d(1, self.filters, KERNEL)
        self.norm = norm_layer(self.filters, 2, batchnorm)
        self.layers = [("pool", self.filters)]
        self.feature_length = self.filters
        init_weights(self, seed)


    def extract_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[pool]``, ``(batch, filters, frames - 6)``, from ``x`` ``(batch, frames, 96)``."""
        check_input(x, self.input_kind, "7x86", min_length=KERNEL[0])
        if self.fast and not self.batchnorm:
            return [band_conv_max(x, [self.conv], relu=True)]
        h = act_norm(self.norm, self.conv(x[:, None]), F.relu)  # (batch, F, frames - 6, 11)
        return [F.max_pool2d(h, (1, h.shape[3])).squeeze(3)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, filters, time)``."""
        return self.extract_features(x)[0]
