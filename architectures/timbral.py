"""Timbral front-end (Pons et al. 2017): six parallel tall convs, each max-pooled over its frequency positions.

Fast paths and their measured figures: docs/performance.md.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import StudyFrontEnd
from .init import init_weights, keeps_global_rng
from .layers import act_norm, N_MELS, band_conv_max, check_input, norm_layer

TALL, SHORT = int(0.9 * N_MELS), int(0.4 * N_MELS)  # 86 and 38 bands
# (time length, height, filter multiple of n), in the study's order: 14n maps in all
SHAPES = ((7, TALL, 1), (3, TALL, 2), (1, TALL, 4), (7, SHORT, 1), (3, SHORT, 2), (1, SHORT, 4))


class Timbral(StudyFrontEnd):
    """Six convs 7x86 (n), 3x86 (2n), 1x86 (4n), 7x38 (n), 3x38 (2n), 1x38 (4n); time 'same', no
    frequency padding, ReLU, max over the whole remaining frequency axis; concatenated (14n maps).

    Input ``(batch, frames, 96)``; output and the single averaged layer are ``(batch, 14n, frames)``.

    Parameters
    ----------
    n : int
        Base filter count (256 large -> 3584 features, 8 small -> 112).
    seed : int
        Seed of the random weights.
    batchnorm : bool or "running"
        BatchNorm with batch statistics after each conv (the leak experiment); "running": trained
        batch norm with running statistics (``layers.norm_layer``); off by default.
    fast : bool
        Compute the six convs as im2col + GEMMs into one map (``layers.band_conv_max``; same result).
    """

    input_kind = "spectrogram"
    SIZE = "n"

    @keeps_global_rng
    def __init__(self, n: int = 256, seed: int = 0, batchnorm: bool = False, fast: bool = True):
        super().__init__()
        self.store_common(n, seed, batchnorm, fast)
        # odd time lengths: TF 'same' is (k - 1) / 2 zeros on each side
        self.convs = nn.ModuleList(nn.Conv2d(1, m * self.n, (k, h), padding=(k // 2, 0)) for k, h, m in SHAPES)
        self.norms = nn.ModuleList(norm_layer(m * self.n, 2, batchnorm) for _, _, m in SHAPES)
        self.channels = sum(m for _, _, m in SHAPES) * self.n
        self.layers = [("timbral", self.channels)]
        self.feature_length = self.channels
        init_weights(self, seed)


    def branch_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The six pooled branches, each ``(batch, m * n, frames)``, in ``SHAPES`` order."""
        if self.fast and not self.batchnorm:
            return list(self.pooled(x).split([c.out_channels for c in self.convs], dim=1))
        outs = []
        for conv, norm in zip(self.convs, self.norms):
            h = act_norm(norm, conv(x[:, None]), F.relu)  # (batch, C, frames, positions)
            outs.append(h.amax(dim=3))
        return outs

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """All six branches at once, ``(batch, 14n, frames)``: the fast path, written into one map."""
        return band_conv_max(x, list(self.convs), relu=True)

    def extract_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[timbral]``, ``(batch, 14n, frames)``, from ``x`` ``(batch, frames, 96)``."""
        check_input(x, self.input_kind, "timbral")
        if self.fast and not self.batchnorm:
            return [self.pooled(x)]  # no torch.cat: the branches share one preallocated map
        return [torch.cat(self.branch_outputs(x), dim=1)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, 14n, frames)``."""
        return self.extract_features(x)[0]
