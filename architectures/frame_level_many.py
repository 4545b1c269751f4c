"""Frame-level many-shapes front-end (Zhu et al. 2016): five parallel strided convs, then the deepening stack.

Fast path, measured by ``benchmarks/bench_architectures.py --seconds 3 --compare-plain`` (large width,
batch 8) on a 2-core EPYC shared with six other jobs (load 9-15): fast over plain 0.33; fast 0.30, plain 0.92
of the matmul rate measured beside it. Under that load these figures are not the quiet machine's; see
docs/performance.md.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .deepening import DeepeningStack
from .init import init_weights, keeps_global_rng
from .layers import check_input, norm_layer, pad_time, same_pad, tile_rows, use_tiled

KERNELS, STRIDE = (512, 256, 128, 64, 32), 32


class FrameLevelMany(nn.Module):
    """Five convs of kernels 512, 256, 128, 64, 32 (stride 32, TF 'same'), F filters each, ReLU,
    concatenated to 5F channels, then the deepening stack with F filters.

    Input ``(batch, samples)``; with 350 000 samples the five maps have 10938 frames, c1 and r2 10932,
    r3 5466.

    Parameters
    ----------
    filters : int
        F; 8 averaged layers (the five convs separately, then c1, r2, r3) give ``8 * F`` features
        (448 -> 3584, 15 -> 120).
    seed : int
        Seed of the random weights.
    batchnorm : bool or "running"
        BatchNorm with batch statistics after each conv (the leak experiment); "running": trained
        batch norm with running statistics (``layers.norm_layer``); off by default.
    fast : bool
        At inference (no autograd, no batchnorm, ``filters >= layers.TILED_MIN_FILTERS``) run channels-last:
        per tile, one copy of the shared 512-sample frames and five GEMMs on its column windows into one
        ``(time, 5F)`` map, then ``DeepeningStack.tiled`` (same features). Training and ``fast=False`` run the
        plain layers.
    """

    input_kind = "waveform"

    @keeps_global_rng
    def __init__(self, filters: int = 448, seed: int = 0, batchnorm: bool = False, fast: bool = True):
        super().__init__()
        self.filters, self.seed, self.batchnorm, self.fast = int(filters), seed, bool(batchnorm), bool(fast)
        if batchnorm == "running":  # trained batch norm (running statistics), see layers.norm_layer
            self.batchnorm = "running"
        self.convs = nn.ModuleList(nn.Conv1d(1, self.filters, k, stride=STRIDE) for k in KERNELS)
        self.norms = nn.ModuleList(norm_layer(self.filters, 1, batchnorm) for _ in KERNELS)
        self.stack = DeepeningStack(len(KERNELS) * self.filters, self.filters, batchnorm)
        self.layers = [(f"conv{k}", self.filters) for k in KERNELS]
        self.layers += [(name, self.filters) for name in ("c1", "r2", "r3")]
        self.feature_length = sum(c for _, c in self.layers)
        init_weights(self, seed)

    @property
    def dims(self) -> dict:
        return {"filters": self.filters, "seed": self.seed, "batchnorm": self.batchnorm, "fast": self.fast}

    def _front_plain(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for k, conv, norm in zip(KERNELS, self.convs, self.norms):
            left, right = same_pad(x.shape[1], k, STRIDE)
            outs.append(F.relu(norm(conv(pad_time(x, left, right)[:, None, :]))))
        return outs

    def _front_tiled(self, x: torch.Tensor) -> torch.Tensor:
        """The five convs + ReLU, channels-last ``(batch, time, 5F)``.

        Every kernel's 'same' window is centred where the 512-sample one is (TF pads ``(k - 16) / 2``
        a side for these lengths, give or take one), so kernel k's window is a column block of the
        512-sample frame. Per tile of frames: one copy of the ``(rows, 512)`` frames, then per kernel one
        GEMM on its ``k`` columns (exact taps, no zero-padded weights) that adds the bias and writes its
        ``F`` columns of the shared map.
        """
        batch, n = x.shape
        big_left, big_right = same_pad(n, KERNELS[0], STRIDE)
        frames = pad_time(x, big_left, big_right).unfold(1, KERNELS[0], STRIDE)  # (batch, time, 512), a view
        length, f = frames.shape[1], self.filters
        out = x.new_empty(batch, length, len(KERNELS) * f)
        blocks = []
        for i, (k, conv) in enumerate(zip(KERNELS, self.convs)):
            offset = big_left - same_pad(n, k, STRIDE)[0]
            assert 0 <= offset <= KERNELS[0] - k, (n, k, offset)
            blocks.append((offset, k, i * f, conv.weight.detach().reshape(f, k).t(), conv.bias.detach()))
        rows = tile_rows(len(KERNELS) * f)
        cols = x.new_empty(rows, KERNELS[0])
        for b in range(batch):
            for s in range(0, length, rows):
                e = min(s + rows, length)
                block = cols[:e - s]
                block.copy_(frames[b, s:e])
                for offset, k, c, weight, bias in blocks:
                    torch.addmm(bias, block[:, offset:offset + k], weight, out=out[b, s:e, c:c + f])
                out[b, s:e].relu_()
        return out

    def extract_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[conv512, conv256, conv128, conv64, conv32, c1, r2, r3]``, each ``(batch, filters, time)``."""
        check_input(x, self.input_kind, "frame-level-many", min_length=8 * STRIDE)
        if use_tiled(self, x):
            stacked = self._front_tiled(x)  # (batch, time, 5F): the five fronts side by side
            return list(stacked.transpose(1, 2).split(self.filters, dim=1)) + self.stack.tiled(stacked)
        fronts = self._front_plain(x)
        return fronts + self.stack(torch.cat(fronts, dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, filters, time)``: the final residual map r3."""
        return self.extract_features(x)[-1]
