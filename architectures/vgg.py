"""VGG-like front-end (Choi et al. 2016): five blocks of 3x3 conv + ELU + max-pool on the spectrogram."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .init import init_weights, keeps_global_rng
from .layers import check_input, layer_names, needs_grad, norm_layer

POOLS = ((4, 2), (4, 3), (5, 2), (4, 2), (4, 4))  # (time, freq); the freq pools take 96 bands to 1
MIN_FRAMES = math.prod(t for t, _ in POOLS)  # 1280: shorter inputs vanish before the last pool


class VGG(nn.Module):
    """Five blocks: conv 3x3 ('same', F filters), ELU, max-pool (time x freq) 4x2, 4x3, 5x2, 4x2, 4x4.

    Input ``(batch, frames, 96)``; with 1376 frames the pooled maps are (time x freq) 344x48, 86x16,
    17x8, 4x4, 1x1. Weights use the same truncated He init as the ReLU nets (the study's code did).

    Parameters
    ----------
    filters : int
        F; 5 averaged layers give ``5 * F`` features (717 -> 3585, 24 -> 120).
    seed : int
        Seed of the random weights.
    batchnorm : bool or "running"
        BatchNorm with batch statistics after each conv (the leak experiment); "running": trained
        batch norm with running statistics (``layers.norm_layer``); off by default.
    fast : bool
        Run the convs in channels-last memory format (MKL-DNN's preferred layout) and apply ELU after
        the max-pool instead of before (ELU is increasing, so the result is the same).
    """

    input_kind = "spectrogram"

    @keeps_global_rng
    def __init__(self, filters: int = 717, seed: int = 0, batchnorm: bool = False, fast: bool = True):
        super().__init__()
        self.filters, self.seed, self.batchnorm, self.fast = int(filters), seed, bool(batchnorm), bool(fast)
        if batchnorm == "running":  # trained batch norm (running statistics), see layers.norm_layer
            self.batchnorm = "running"
        self.convs = nn.ModuleList(
            nn.Conv2d(1 if i == 0 else self.filters, self.filters, 3, padding=1) for i in range(len(POOLS)))
        self.norms = nn.ModuleList(norm_layer(self.filters, 2, batchnorm) for _ in POOLS)
        self.layers = [(name, self.filters) for name in layer_names("pool", len(POOLS))]
        self.feature_length = sum(c for _, c in self.layers)
        init_weights(self, seed)

    @property
    def dims(self) -> dict:
        return {"filters": self.filters, "seed": self.seed, "batchnorm": self.batchnorm, "fast": self.fast}

    def extract_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Five pooled maps, each ``(batch, filters, time, freq)``, from ``x`` ``(batch, frames, 96)``."""
        check_input(x, self.input_kind, "vgg", min_length=MIN_FRAMES)
        h = x[:, None]
        if self.fast:
            h = h.contiguous(memory_format=torch.channels_last)
        outputs = []
        for conv, norm, pool in zip(self.convs, self.norms, POOLS):
            if self.fast:
                # ELU is increasing, so it commutes with max exactly: pool first and apply it to 8-48x
                # fewer values (in place where autograd is off: no second ~380 MB map to allocate)
                h = F.max_pool2d(norm(conv(h)), pool)
                h = F.elu(h, inplace=not needs_grad(h, [conv]))
            else:
                h = F.max_pool2d(F.elu(norm(conv(h))), pool)
            outputs.append(h)
        return [o.contiguous() for o in outputs] if self.fast else outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, filters * freq, time)``: the last pooled map with its frequency axis folded into channels."""
        h = self.extract_features(x)[-1]
        return h.permute(0, 1, 3, 2).reshape(h.shape[0], -1, h.shape[2])
