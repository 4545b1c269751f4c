"""7x96 front-end (Dieleman & Schrauwen 2014): one conv over 7 frames and all 96 mel bands.

Fast path (``layers.band_conv_max``: im2col + one GEMM per clip, the 3585 filters padded to 3600 for
the GEMM, bias and ReLU fused); see docs/performance.md for its figures.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import StudyFrontEnd
from .init import init_weights, keeps_global_rng
from .layers import act_norm, N_MELS, band_conv_max, check_input, norm_layer

KERNEL = (7, N_MELS)


class Conv7x96(StudyFrontEnd):
    """conv 7 (time) x 96 (mel), valid, F filters, ReLU. One averaged layer of F features.

    Input ``(batch, frames, 96)``; 1376 frames give a ``(batch, F, 1370)`` map.

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
        Compute the conv as im2col + GEMM (``layers.band_conv_max``; bias and ReLU fused, same result).
    """

    input_kind = "spectrogram"

    @keeps_global_rng
    def __init__(self, filters: int = 3585, seed: int = 0, batchnorm: bool = False, fast: bool = True):
        super().__init__()
        self.store_common(filters, seed, batchnorm, fast)
        self.conv = nn.Conv2d(1, self.filters, KERNEL)
        self.norm = norm_layer(self.filters, 2, batchnorm)
        self.layers = [("conv", self.filters)]
        self.feature_length = self.filters
        init_weights(self, seed)


    def extract_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[conv]``, ``(batch, filters, frames - 6)``, from ``x`` ``(batch, frames, 96)``."""
        check_input(x, self.input_kind, "7x96", min_length=KERNEL[0])
        if self.fast and not self.batchnorm:
            return [band_conv_max(x, [self.conv], relu=True)]
        return [act_norm(self.norm, self.conv(x[:, None]), F.relu).squeeze(3)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, filters, time)``."""
        return self.extract_features(x)[0]
