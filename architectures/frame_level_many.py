"""Frame-level many-shapes front-end (Zhu et al. 2016): five parallel strided convs, then the deepening stack.

No hand-written fast path: measured by ``benchmarks/bench_architectures.py --clips 8 --compare-plain``
(large width, batch 8, 29 s clips) on a quiet 2-core EPYC, the plain layers ran at 0.82 of the float32
matmul rate measured beside them and a tiled channels-last path at 0.86 (1.04x): it did not pay the 1.3x a
second path must (docs/performance.md).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .deepening import PUBLISHED_ONE_NUMBER, DeepeningStack
from .base import StudyFrontEnd
from .init import init_weights, keeps_global_rng
from .layers import act_norm, check_input, norm_layer, pad_time, same_pad

KERNELS, STRIDE = (512, 256, 128, 64, 32), 32


class FrameLevelMany(StudyFrontEnd):
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
        Accepted for the checkpoints' ``dims``; this front-end has one path (see the module docstring).
    """

    input_kind = "waveform"
    # --as-published: the study's code reduced each of these maps to one number (see PUBLISHED_ONE_NUMBER)
    published_one_number = PUBLISHED_ONE_NUMBER

    @keeps_global_rng
    def __init__(self, filters: int = 448, seed: int = 0, batchnorm: bool = False, fast: bool = True):
        super().__init__()
        self.store_common(filters, seed, batchnorm, fast)
        self.convs = nn.ModuleList(nn.Conv1d(1, self.filters, k, stride=STRIDE) for k in KERNELS)
        self.norms = nn.ModuleList(norm_layer(self.filters, 1, batchnorm) for _ in KERNELS)
        self.stack = DeepeningStack(len(KERNELS) * self.filters, self.filters, batchnorm)
        self.layers = [(f"conv{k}", self.filters) for k in KERNELS]
        self.layers += [(name, self.filters) for name in ("c1", "r2", "r3")]
        self.feature_length = sum(c for _, c in self.layers)
        init_weights(self, seed)


    def _front_plain(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for k, conv, norm in zip(KERNELS, self.convs, self.norms):
            left, right = same_pad(x.shape[1], k, STRIDE)
            outs.append(act_norm(norm, conv(pad_time(x, left, right)[:, None, :]), F.relu))
        return outs

    def extract_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[conv512, conv256, conv128, conv64, conv32, c1, r2, r3]``, each ``(batch, filters, time)``."""
        check_input(x, self.input_kind, "frame-level-many", min_length=8 * STRIDE)
        fronts = self._front_plain(x)
        return fronts + self.stack(torch.cat(fronts, dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, filters, time)``: the final residual map r3."""
        return self.extract_features(x)[-1]
