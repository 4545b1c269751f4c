"""VGG-like front-end (Choi et al. 2016): five blocks of 3x3 conv + ELU + max-pool on the spectrogram.

Fast paths and their measured figures: docs/performance.md.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import StudyFrontEnd
from .init import init_weights, keeps_global_rng
from .layers import (act_norm, check_input, conv_taps, layer_names, norm_layer, padded_channels, padded_map,
                     tap_conv, tile_rows, use_tiled)

POOLS = ((4, 2), (4, 3), (5, 2), (4, 2), (4, 4))  # (time, freq); the freq pools take 96 bands to 1
MIN_FRAMES = math.prod(t for t, _ in POOLS)  # 1280: shorter inputs vanish before the last pool


class VGG(StudyFrontEnd):
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
        At inference (no autograd, no batchnorm, ``filters >= layers.TILED_MIN_FILTERS``) run
        ``_tiled_features``: channels-last maps, each conv as shifted GEMMs over tiles of rows, max-pooled in
        cache, ELU after the pool (ELU is increasing, so it commutes with max: same features). Training and
        ``fast=False`` run the plain ``nn.Conv2d`` layers.
    """

    input_kind = "spectrogram"

    @keeps_global_rng
    def __init__(self, filters: int = 717, seed: int = 0, batchnorm: bool = False, fast: bool = True):
        super().__init__()
        self.store_common(filters, seed, batchnorm, fast)
        self.convs = nn.ModuleList(
            nn.Conv2d(1 if i == 0 else self.filters, self.filters, 3, padding=1) for i in range(len(POOLS)))
        self.norms = nn.ModuleList(norm_layer(self.filters, 2, batchnorm) for _ in POOLS)
        self.layers = [(name, self.filters) for name in layer_names("pool", len(POOLS))]
        self.feature_length = sum(c for _, c in self.layers)
        init_weights(self, seed)


    def extract_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Five pooled maps, each ``(batch, filters, time, freq)``, from ``x`` ``(batch, frames, 96)``."""
        check_input(x, self.input_kind, "vgg", min_length=MIN_FRAMES)
        if use_tiled(self, x):
            return self._tiled_features(x)
        h = x[:, None]
        outputs = []
        for conv, norm, pool in zip(self.convs, self.norms, POOLS):
            h = F.max_pool2d(act_norm(norm, conv(h), F.elu), pool)
            outputs.append(h)
        return outputs

    def _tiled_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The fast path: maps channels-last ``(time, freq, F)`` with a zero border (the next conv's
        'same' padding, plus one spare row), returned as ``(batch, F, time, freq)`` permuted views.

        A 3 x 3 conv on a padded map of width ``w + 2``, flattened to rows of positions, is nine GEMMs
        on row-shifted slices (offset ``dy * (w + 2) + dx``; ``layers.tap_conv``); computing all
        ``w + 2`` columns of each output row (2 of them discarded) keeps every slice contiguous. The
        first conv (one input channel) copies its nine shifted slices into a ``(rows, 9)`` block and
        does one GEMM. Tiles are whole pooling rows; each is max-pooled in cache into the next map,
        whose interior then gets ELU. Channels are zero-padded to a multiple of 16
        (``layers.padded_channels``: zero weights and bias give zero maps, sliced off).
        """
        batch, height, width = x.shape
        src = padded_map(x, (height, width), ((1, 2), (1, 1)))  # one spare row: the last tile's overrun
        src[:, 1:1 + height, 1:1 + width] = x
        src = src.reshape(batch, -1, 1)
        outputs = []
        c_in = 1
        for i, (conv, (pt, pf)) in enumerate(zip(self.convs, POOLS)):
            f = padded_channels(conv.out_channels)
            stride = width + 2  # positions per padded row
            offsets = [dy * stride + dx for dy in range(3) for dx in range(3)]
            out_h, out_w = height // pt, width // pf
            nxt = padded_map(x, (out_h, out_w, f), ((1, 2), (1, 1), (0, 0)))
            bias = x.new_zeros(f)
            bias[:conv.out_channels] = conv.bias.detach()
            rows = tile_rows(f, multiple=pt, row_width=stride)
            scratch = x.new_empty(rows * stride, f)
            taps = conv_taps(conv.weight, c_in, f)  # (9, c_in, f), taps in offsets' order
            if i == 0:
                weight = taps[:, 0]  # (9, f)
                cols = x.new_empty(rows * stride, 9)
            for b in range(batch):
                flat = src[b]
                for r in range(0, out_h * pt, rows):
                    rr = min(rows, out_h * pt - r)
                    y = scratch[:rr * stride]
                    first = r * stride
                    if i == 0:
                        block = cols[:rr * stride]
                        for j, o in enumerate(offsets):
                            block[:, j] = flat[first + o:first + o + rr * stride, 0]
                        torch.addmm(bias, block, weight, out=y)
                    else:
                        tap_conv(flat, taps, [first + o for o in offsets], bias, y)
                    grid = y.view(rr // pt, pt, stride, f)[:, :, :out_w * pf]
                    rows_max = grid.amax(dim=1)  # (rr / pt, out_w * pf, F)
                    torch.amax(rows_max.view(rr // pt, out_w, pf, f), dim=2,
                               out=nxt[b, 1 + r // pt:1 + (r + rr) // pt, 1:1 + out_w])
            inner = nxt[:, 1:1 + out_h, 1:1 + out_w]
            F.elu(inner, inplace=True)
            outputs.append(inner[..., :conv.out_channels].permute(0, 3, 1, 2))
            src, height, width, c_in = nxt.reshape(batch, -1, f), out_h, out_w, f
        return outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, filters * freq, time)``: the last pooled map with its frequency axis folded into channels."""
        h = self.extract_features(x)[-1]
        return h.permute(0, 1, 3, 2).reshape(h.shape[0], -1, h.shape[2])
