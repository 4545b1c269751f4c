"""Frame-level front-end (Dieleman & Schrauwen 2014): one 512-sample strided conv, then the deepening stack.

Fast path, measured by ``benchmarks/bench_architectures.py --seconds 3 --compare-plain`` (large width,
batch 8) on a 2-core EPYC shared with six other jobs (load 9-15): fast over plain 0.58; fast 0.50, plain 0.87
of the matmul rate measured beside it. Under that load these figures are not the quiet machine's; see
docs/performance.md.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .deepening import DeepeningStack
from .init import init_weights, keeps_global_rng
from .layers import check_input, norm_layer, tile_rows, use_tiled

KERNEL, STRIDE = 512, 32


class FrameLevel(nn.Module):
    """conv (kernel 512, stride 32, valid) + ReLU, then the deepening stack (c1, r2, r3).

    Input ``(batch, samples)``; with 350 000 samples the averaged maps have lengths
    10922, 10916, 10916, 5458.

    Parameters
    ----------
    filters : int
        F, filters of the frame conv and of each stack conv; 4 averaged layers give ``4 * F``
        features (896 -> 3584, 30 -> 120).
    seed : int
        Seed of the random weights.
    batchnorm : bool or "running"
        BatchNorm with batch statistics after each conv (the leak experiment); "running": trained
        batch norm with running statistics (``layers.norm_layer``); off by default.
    fast : bool
        At inference (no autograd, no batchnorm, ``filters >= layers.TILED_MIN_FILTERS``) run channels-last:
        the frame conv as GEMMs over tiles of copied 512-sample frames, the stack as ``DeepeningStack.tiled``
        (same features). Training and ``fast=False`` run the plain ``nn.Conv1d`` layers.
    """

    input_kind = "waveform"

    @keeps_global_rng
    def __init__(self, filters: int = 896, seed: int = 0, batchnorm: bool = False, fast: bool = True):
        super().__init__()
        self.filters, self.seed, self.batchnorm, self.fast = int(filters), seed, bool(batchnorm), bool(fast)
        if batchnorm == "running":  # trained batch norm (running statistics), see layers.norm_layer
            self.batchnorm = "running"
        self.conv = nn.Conv1d(1, self.filters, KERNEL, stride=STRIDE)
        self.norm = norm_layer(self.filters, 1, batchnorm)
        self.stack = DeepeningStack(self.filters, self.filters, batchnorm)
        self.layers = [(name, self.filters) for name in ("frames", "c1", "r2", "r3")]
        self.feature_length = sum(c for _, c in self.layers)
        init_weights(self, seed)

    @property
    def dims(self) -> dict:
        return {"filters": self.filters, "seed": self.seed, "batchnorm": self.batchnorm, "fast": self.fast}

    def extract_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[frames, c1, r2, r3]``, each ``(batch, filters, time)``, from ``x`` ``(batch, samples)``."""
        # the stack needs 7 frames for c1 and 2 for the pool
        check_input(x, self.input_kind, "frame-level", min_length=KERNEL + 7 * STRIDE)
        if use_tiled(self, x):
            h = self._tiled_frames(x)  # (batch, time, F)
            return [h.transpose(1, 2)] + self.stack.tiled(h)
        h = F.relu(self.norm(self.conv(x[:, None, :])))
        return [h] + self.stack(h)

    def _tiled_frames(self, x: torch.Tensor) -> torch.Tensor:
        """relu(frame conv), channels-last ``(batch, time, F)``: per tile of frames, one copy of the
        ``(rows, 512)`` frames (an overlapping strided view) and one GEMM that adds the bias."""
        batch, n = x.shape
        length = (n - KERNEL) // STRIDE + 1
        out = x.new_empty(batch, length, self.filters)
        weight, bias = self.conv.weight.detach().reshape(self.filters, KERNEL).t(), self.conv.bias.detach()
        frames = x.unfold(1, KERNEL, STRIDE)  # (batch, time, 512), a view
        rows = tile_rows(max(self.filters, KERNEL))
        cols = x.new_empty(rows, KERNEL)
        for b in range(batch):
            for s in range(0, length, rows):
                e = min(s + rows, length)
                block = cols[:e - s]
                block.copy_(frames[b, s:e])
                torch.addmm(bias, block, weight, out=out[b, s:e]).relu_()
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, filters, time)``: the final residual map r3."""
        return self.extract_features(x)[-1]
