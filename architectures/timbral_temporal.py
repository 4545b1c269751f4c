"""Timbral + temporal front-end (Pons et al. 2018) and its UrbanSound8K variant timbral+time.

Fast paths and their measured figures: docs/performance.md.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import StudyFrontEnd
from .init import init_weights, keeps_global_rng
from .layers import check_input
from .temporal import LENGTHS, Temporal
from .timbral import Timbral

TIME_LENGTHS = (64, 32, 16, 8)  # natural sounds carry shorter temporal cues (frontends.md)


class TimbralTemporal(StudyFrontEnd):
    """The timbral and temporal branches side by side on the same spectrogram, each with base count n.

    Input ``(batch, frames, 96)``. Two averaged layers (``timbral``, ``temporal``) of 14n maps each;
    ``forward`` concatenates them along channels, ``(batch, 28n, frames)``.

    Parameters
    ----------
    n : int
        Base filter count of both branches, a multiple of 4 (128 large -> 1792 + 1792 = 3584,
        4 small -> 56 + 56).
    seed : int
        Seed of the random weights (drawn for the whole module: timbral convs first).
    batchnorm : bool or "running"
        BatchNorm with batch statistics after each conv (the leak experiment); "running": trained
        batch norm with running statistics (``layers.norm_layer``); off by default.
    fast : bool
        Use both branches' fast paths (same result).
    lengths : tuple of int
        Kernel lengths of the temporal convs.
    """

    input_kind = "spectrogram"
    SIZE = "n"
    EXTRA_DIMS = ("lengths",)
    name = "timbral+temporal"

    @keeps_global_rng
    def __init__(self, n: int = 128, seed: int = 0, batchnorm: bool = False, fast: bool = True,
                 lengths: tuple[int, ...] = LENGTHS):
        super().__init__()
        self.store_common(n, seed, batchnorm, fast)
        self.timbral = Timbral(n=n, seed=seed, batchnorm=batchnorm, fast=fast)
        self.temporal = Temporal(n=n, seed=seed, batchnorm=batchnorm, fast=fast, lengths=lengths)
        self.lengths = self.temporal.lengths
        self.layers = [("timbral", self.timbral.channels), ("temporal", self.temporal.channels)]
        self.feature_length = sum(c for _, c in self.layers)
        init_weights(self, seed)  # one draw sequence for the whole model, not two copies of one seed


    def _sync_fast(self) -> None:
        # keep the branches' switches in step with this module's (tests flip ``fast`` on the instance)
        self.timbral.fast = self.temporal.fast = self.fast

    def extract_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[timbral, temporal]``, each ``(batch, 14n, frames)``, from ``x`` ``(batch, frames, 96)``."""
        check_input(x, self.input_kind, self.name)
        self._sync_fast()
        return [self.timbral.extract_features(x)[0], self.temporal.extract_features(x)[0]]

    def extract_means(self, x: torch.Tensor) -> torch.Tensor:
        """The features, ``(batch, 28n)`` float32: each branch's map averaged over frames (the temporal
        one without its map reaching memory, ``Temporal.extract_means``)."""
        check_input(x, self.input_kind, self.name)
        self._sync_fast()
        return torch.cat([self.timbral.extract_features(x)[0].float().mean(dim=2),
                          self.temporal.extract_means(x)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, 28n, frames)``: both branches' time series, concatenated along channels."""
        return torch.cat(self.extract_features(x), dim=1)


class TimbralTime(TimbralTemporal):
    """timbral+time (UrbanSound8K): as timbral+temporal with temporal kernels of 64, 32, 16, 8 frames."""

    name = "timbral+time"

    @keeps_global_rng
    def __init__(self, n: int = 128, seed: int = 0, batchnorm: bool = False, fast: bool = True,
                 lengths: tuple[int, ...] = TIME_LENGTHS):
        super().__init__(n=n, seed=seed, batchnorm=batchnorm, fast=fast, lengths=lengths)
