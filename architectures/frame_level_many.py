"""Frame-level many-shapes front-end (Zhu et al. 2016): five parallel strided convs, then the deepening stack."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .deepening import DeepeningStack
from .init import init_weights, keeps_global_rng
from .layers import check_input, needs_grad, norm_layer, pad_time, same_pad, unfold_matmul

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
        Compute the five 1-channel convs as one matmul over shared 512-sample frames (same result).
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

    def _front_fast(self, x: torch.Tensor) -> list[torch.Tensor]:
        # Every kernel's 'same' window is centred at the same place (TF pads (k - 16) / 2 a side for
        # these lengths), so each shorter kernel is the middle of the 512-sample window: embed all five
        # weights in one (5F, 512) matrix, zero outside their span, and do a single matmul.
        # That wastes the zeros (5 x 512 vs 992 taps per filter group) but replaces five tiny-channel
        # convs with one large GEMM; the FLOPs are small next to the stack's either way.
        n = x.shape[1]
        big_left, big_right = same_pad(n, KERNELS[0], STRIDE)
        weight = x.new_zeros(len(KERNELS) * self.filters, KERNELS[0])
        for i, (k, conv) in enumerate(zip(KERNELS, self.convs)):
            offset = big_left - same_pad(n, k, STRIDE)[0]
            weight[i * self.filters:(i + 1) * self.filters, offset:offset + k] = conv.weight[:, 0, :]
        bias = torch.cat([conv.bias for conv in self.convs])
        out = unfold_matmul(pad_time(x, big_left, big_right), weight[:, None], bias, STRIDE)  # (batch, 5F, time)
        return F.relu(out, inplace=not needs_grad(x, [self]))

    def extract_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[conv512, conv256, conv128, conv64, conv32, c1, r2, r3]``, each ``(batch, filters, time)``."""
        check_input(x, self.input_kind, "frame-level-many", min_length=8 * STRIDE)
        if self.fast and not self.batchnorm:
            stacked = self._front_fast(x)  # (batch, 5F, time): the five fronts already concatenated
            return list(stacked.split(self.filters, dim=1)) + self.stack(stacked)
        fronts = self._front_plain(x)
        return fronts + self.stack(torch.cat(fronts, dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, filters, time)``: the final residual map r3."""
        return self.extract_features(x)[-1]
