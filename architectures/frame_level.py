"""Frame-level front-end (Dieleman & Schrauwen 2014): one 512-sample strided conv, then the deepening stack.

No hand-written fast path: measured by ``benchmarks/bench_architectures.py --clips 8 --compare-plain``
(large width, batch 8, 29 s clips) on a quiet 2-core EPYC, the plain ``nn.Conv1d`` layers ran at 1.05 of
the float32 matmul rate measured beside them and a tiled channels-last path at 0.98 (0.94x): it did not
pay the 1.3x a second path must (docs/performance.md).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .deepening import PUBLISHED_ONE_NUMBER, DeepeningStack
from .base import StudyFrontEnd
from .init import init_weights, keeps_global_rng
from .layers import act_norm, check_input, norm_layer

KERNEL, STRIDE = 512, 32


class FrameLevel(StudyFrontEnd):
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
        Accepted for the checkpoints' ``dims``; this front-end has one path (see the module docstring).
    """

    input_kind = "waveform"
    # --as-published: the study's code reduced each of these maps to one number (see PUBLISHED_ONE_NUMBER)
    published_one_number = PUBLISHED_ONE_NUMBER

    @keeps_global_rng
    def __init__(self, filters: int = 896, seed: int = 0, batchnorm: bool = False, fast: bool = True):
        super().__init__()
        self.store_common(filters, seed, batchnorm, fast)
        self.conv = nn.Conv1d(1, self.filters, KERNEL, stride=STRIDE)
        self.norm = norm_layer(self.filters, 1, batchnorm)
        self.stack = DeepeningStack(self.filters, self.filters, batchnorm)
        self.layers = [(name, self.filters) for name in ("frames", "c1", "r2", "r3")]
        self.feature_length = sum(c for _, c in self.layers)
        init_weights(self, seed)


    def extract_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[frames, c1, r2, r3]``, each ``(batch, filters, time)``, from ``x`` ``(batch, samples)``."""
        # the stack needs 7 frames for c1 and 2 for the pool
        check_input(x, self.input_kind, "frame-level", min_length=KERNEL + 7 * STRIDE)
        h = act_norm(self.norm, self.conv(x[:, None, :]), F.relu)
        return [h] + self.stack(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, filters, time)``: the final residual map r3."""
        return self.extract_features(x)[-1]
