"""Sample-level front-end (Lee et al. 2017 / 2018): stacked 3-sample convs and 3x max-pools on the waveform."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .init import init_weights, keeps_global_rng
from .layers import check_input, layer_names, needs_grad, norm_layer, unfold_matmul


class SampleLevel(nn.Module):
    """conv0 (kernel 3, stride 3) then six blocks of conv (kernel 3, 'same') + ReLU + max-pool 3.

    Input ``(batch, samples)``; with 350 000 samples the averaged maps have lengths
    116666, 38888, 12962, 4320, 1440, 480, 160.

    Parameters
    ----------
    filters : int
        F, filters of every conv; 7 averaged layers give ``7 * F`` features (512 -> 3584, 16 -> 112).
    seed : int
        Seed of the random weights (see ``architectures.init``).
    batchnorm : bool or "running"
        BatchNorm with batch statistics after each conv (the study's leak experiment); "running":
        trained batch norm with running statistics (``layers.norm_layer``); off by default.
    fast : bool
        Use the matmul form of the 1-channel conv0 and apply ReLU after the max-pools (same result).
    """

    input_kind = "waveform"
    n_blocks = 6

    @keeps_global_rng
    def __init__(self, filters: int = 512, seed: int = 0, batchnorm: bool = False, fast: bool = True):
        super().__init__()
        self.filters, self.seed, self.batchnorm, self.fast = int(filters), seed, bool(batchnorm), bool(fast)
        if batchnorm == "running":  # trained batch norm (running statistics), see layers.norm_layer
            self.batchnorm = "running"
        self.conv0 = nn.Conv1d(1, self.filters, 3, stride=3)
        self.norm0 = norm_layer(self.filters, 1, batchnorm)
        self.convs = nn.ModuleList(nn.Conv1d(self.filters, self.filters, 3, padding=1) for _ in range(self.n_blocks))
        self.norms = nn.ModuleList(norm_layer(self.filters, 1, batchnorm) for _ in range(self.n_blocks))
        self.layers = [(name, self.filters) for name in ["conv0"] + layer_names("pool", self.n_blocks)]
        self.feature_length = sum(c for _, c in self.layers)
        init_weights(self, seed)

    @property
    def dims(self) -> dict:
        return {"filters": self.filters, "seed": self.seed, "batchnorm": self.batchnorm, "fast": self.fast}

    def extract_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Averaged layers' outputs, each ``(batch, filters, time)``, from ``x`` ``(batch, samples)``."""
        check_input(x, self.input_kind, "sample-level", min_length=3 ** (self.n_blocks + 1))
        inplace = not needs_grad(x, [self])  # ReLU in place where autograd does not need its input
        if self.fast and not self.batchnorm:
            # conv0 has one input channel and stride == kernel: a reshape and one matmul
            h = F.relu(unfold_matmul(x, self.conv0.weight, self.conv0.bias, stride=3), inplace=inplace)
        else:
            h = F.relu(self.norm0(self.conv0(x[:, None, :])))
        outputs = [h]
        for conv, norm in zip(self.convs, self.norms):
            h = norm(conv(h))  # TF 'same' for kernel 3 is one zero each side
            if self.fast:  # ReLU is increasing: after the pool it is the same, on a third of the values
                h = F.relu(F.max_pool1d(h, 3), inplace=inplace)
            else:
                h = F.max_pool1d(F.relu(h), 3)
            outputs.append(h)
        return outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, filters, time)``: the last pooled map."""
        return self.extract_features(x)[-1]
