"""Sample-level front-end (Lee et al. 2017 / 2018): stacked 3-sample convs and 3x max-pools on the waveform.

Fast paths and their measured figures: docs/performance.md.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import StudyFrontEnd
from .init import init_weights, keeps_global_rng
from .layers import act_norm, check_input, conv_taps, layer_names, norm_layer, padded_map, tap_conv, tile_rows, use_tiled


class SampleLevel(StudyFrontEnd):
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
        At inference (no autograd, no batchnorm, ``filters >= layers.TILED_MIN_FILTERS``) run
        ``_tiled_features``: channels-last maps, each conv as shifted GEMMs over cache-sized time tiles with
        its max-pool and ReLU applied to the tile (same features). Training and ``fast=False`` run the plain
        ``nn.Conv1d`` layers.
    """

    input_kind = "waveform"
    n_blocks = 6

    @keeps_global_rng
    def __init__(self, filters: int = 512, seed: int = 0, batchnorm: bool = False, fast: bool = True):
        super().__init__()
        self.store_common(filters, seed, batchnorm, fast)
        self.conv0 = nn.Conv1d(1, self.filters, 3, stride=3)
        self.norm0 = norm_layer(self.filters, 1, batchnorm)
        self.convs = nn.ModuleList(nn.Conv1d(self.filters, self.filters, 3, padding=1) for _ in range(self.n_blocks))
        self.norms = nn.ModuleList(norm_layer(self.filters, 1, batchnorm) for _ in range(self.n_blocks))
        self.layers = [(name, self.filters) for name in ["conv0"] + layer_names("pool", self.n_blocks)]
        self.feature_length = sum(c for _, c in self.layers)
        init_weights(self, seed)


    def extract_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Averaged layers' outputs, each ``(batch, filters, time)``, from ``x`` ``(batch, samples)``."""
        check_input(x, self.input_kind, "sample-level", min_length=3 ** (self.n_blocks + 1))
        if use_tiled(self, x):
            return self._tiled_features(x)
        h = act_norm(self.norm0, self.conv0(x[:, None, :]), F.relu)
        outputs = [h]
        for conv, norm in zip(self.convs, self.norms):
            h = F.max_pool1d(act_norm(norm, conv(h), F.relu), 3)  # TF 'same' for kernel 3 is one zero each side
            outputs.append(h)
        return outputs

    def _tiled_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The fast path: every map channels-last ``(time, F)`` with one zero row each side (the next
        conv's 'same' padding), returned as ``(batch, F, time)`` transposed views.

        conv0 (stride == kernel == 3) is a reshape of the waveform times a ``(3, F)`` matrix. Each block's
        conv is three GEMMs on row-shifted slices of the padded map (``layers.tap_conv``), one tile of
        conv rows at a time; the tile is max-pooled by 3 straight into the next map, whose rows then get
        ReLU (ReLU is increasing, so relu(max) == max(relu)): the full-resolution conv output, 3x the
        pooled map, never reaches memory.
        """
        batch, n = x.shape
        f = self.filters
        length = (n - 3) // 3 + 1
        h = padded_map(x, (length, f), ((1, 1), (0, 0)))
        w0 = self.conv0.weight.detach().reshape(f, 3).t()
        b0 = self.conv0.bias.detach()
        rows = tile_rows(f)
        frames = x[:, :3 * length].reshape(batch, length, 3)
        for b in range(batch):
            for s in range(0, length, rows):
                e = min(s + rows, length)
                torch.addmm(b0, frames[b, s:e], w0, out=h[b, 1 + s:1 + e]).relu_()
        outputs = [h[:, 1:1 + length].transpose(1, 2)]
        rows = tile_rows(f, multiple=3)
        scratch = x.new_empty(rows, f)
        for conv in self.convs:
            taps, bias = conv_taps(conv.weight), conv.bias.detach()
            pooled = length // 3
            nxt = padded_map(x, (pooled, f), ((1, 1), (0, 0)))
            for b in range(batch):
                src = h[b]
                for s in range(0, 3 * pooled, rows):
                    e = min(s + rows, 3 * pooled)
                    y = tap_conv(src, taps, (s, s + 1, s + 2), bias, scratch[:e - s])
                    torch.amax(y.view(-1, 3, f), dim=1, out=nxt[b, 1 + s // 3:1 + e // 3]).relu_()
            h, length = nxt, pooled
            outputs.append(h[:, 1:1 + length].transpose(1, 2))
        return outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, filters, time)``: the last pooled map."""
        return self.extract_features(x)[-1]
