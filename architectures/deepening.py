"""The three-layer "deepening stack" shared by both frame-level front-ends (the study's Fig. 4.3)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import conv_taps, needs_grad, norm_layer, padded_map, tap_conv, tile_rows

KERNEL = 7


class DeepeningStack(nn.Module):
    """c1 = conv7(M); r2 = relu(conv7(pad3(c1))) + c1; p = maxpool2(r2); r3 = relu(conv7(pad3(p))) + p.

    Every conv spans all channels of its input (a Conv1d with ``in_channels`` = channels), so it is
    the study's 2-D conv of shape 7 x channels. Not a front-end by itself (no ``dims``/``seed``):
    the owning front-end initialises it.

    Parameters
    ----------
    in_channels : int
        Channels of the map M it receives.
    filters : int
        F, filters of each of the three convs.
    batchnorm : bool
        BatchNorm with batch statistics after each conv.
    """

    def __init__(self, in_channels: int, filters: int, batchnorm: bool = False):
        super().__init__()
        self.conv1 = nn.Conv1d(in_channels, filters, KERNEL)
        self.conv2 = nn.Conv1d(filters, filters, KERNEL, padding=KERNEL // 2)
        self.conv3 = nn.Conv1d(filters, filters, KERNEL, padding=KERNEL // 2)
        self.norm1, self.norm2, self.norm3 = (norm_layer(filters, 1, batchnorm) for _ in range(3))

    def forward(self, m: torch.Tensor) -> list[torch.Tensor]:
        """``m`` ``(batch, in_channels, time)`` -> ``[c1, r2, r3]``, each ``(batch, filters, time')``.

        Times: c1 and r2 have ``time - 6``; r3 has ``(time - 6) // 2``.
        """
        if needs_grad(m, [self]):
            c1 = F.relu(self.norm1(self.conv1(m)))
            r2 = F.relu(self.norm2(self.conv2(c1))) + c1  # conv2/conv3 pad 3 zeros each side
            p = F.max_pool1d(r2, 2)
            r3 = F.relu(self.norm3(self.conv3(p))) + p
            return [c1, r2, r3]
        # inference: ReLU and the residual adds in place on the convs' fresh outputs (same values,
        # no extra ~40 MB maps to allocate and fill per clip)
        c1 = self.norm1(self.conv1(m)).relu_()
        r2 = self.norm2(self.conv2(c1)).relu_().add_(c1)
        p = F.max_pool1d(r2, 2)
        r3 = self.norm3(self.conv3(p)).relu_().add_(p)
        return [c1, r2, r3]

    def tiled(self, m: torch.Tensor) -> list[torch.Tensor]:
        """Inference fast path of ``forward`` on a channels-last map ``m`` ``(batch, time, in_channels)``.

        Each conv is seven GEMMs on row-shifted slices of its (zero-padded) channels-last input
        (``layers.tap_conv``), one cache-sized tile of output rows at a time; ReLU, the residual add
        and the max-pool are applied to the tile while it is in cache. c1 and the pooled map are
        written with 3 zero rows each side (the next conv's padding). Returns ``[c1, r2, r3]`` as
        ``(batch, filters, time')`` transposed views, equal to ``forward(m.transpose(1, 2))``.
        """
        batch, length, _ = m.shape
        f, pad = self.conv1.out_channels, KERNEL // 2
        t1 = length - KERNEL + 1
        c1 = padded_map(m, (t1, f), ((pad, pad), (0, 0)))
        r2 = m.new_empty(batch, t1, f)
        pooled = t1 // 2
        p = padded_map(m, (pooled, f), ((pad, pad), (0, 0)))
        r3 = m.new_empty(batch, pooled, f)
        taps = [conv_taps(c.weight) for c in (self.conv1, self.conv2, self.conv3)]
        biases = [None if c.bias is None else c.bias.detach() for c in (self.conv1, self.conv2, self.conv3)]
        rows = tile_rows(f, multiple=2)
        shifts = range(KERNEL)
        for b in range(batch):
            for s in range(0, t1, rows):
                e = min(s + rows, t1)
                tap_conv(m[b], taps[0], [s + j for j in shifts], biases[0], c1[b, pad + s:pad + e]).relu_()
            for s in range(0, t1, rows):
                e = min(s + rows, t1)
                y = tap_conv(c1[b], taps[1], [s + j for j in shifts], biases[1], r2[b, s:e])
                y.relu_().add_(c1[b, pad + s:pad + e])
                n = (e - s) // 2  # rows is even: only the last tile can leave a row out of the pool
                torch.amax(y[:2 * n].view(n, 2, f), dim=1, out=p[b, pad + s // 2:pad + s // 2 + n])
            for s in range(0, pooled, rows):
                e = min(s + rows, pooled)
                y = tap_conv(p[b], taps[2], [s + j for j in shifts], biases[2], r3[b, s:e])
                y.relu_().add_(p[b, pad + s:pad + e])
        return [c1[:, pad:pad + t1].transpose(1, 2), r2.transpose(1, 2), r3.transpose(1, 2)]
