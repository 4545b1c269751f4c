"""The three-layer "deepening stack" shared by both frame-level front-ends (the study's Fig. 4.3)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import act_norm, needs_grad, norm_layer

KERNEL = 7
# The stack layers whose features the study's code computed as ONE number each (``--as-published``).
# elmarc's ``backend()`` (src/dl_models.py) returns each stack conv transposed to (batch, T', F, 1), and
# ``format_cnn_data`` (src/main.py) averages each entry of the last axis, which has size 1: the layer's
# first feature is the mean over time and all F channels, its other F-1 features stay zero.
# ``features.compute.published_means`` applies it to the per-layer means (docs/fidelity.md, item 1).
PUBLISHED_ONE_NUMBER = ("c1", "r2", "r3")


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
            c1 = act_norm(self.norm1, self.conv1(m), F.relu)
            r2 = act_norm(self.norm2, self.conv2(c1), F.relu) + c1  # conv2/conv3 pad 3 zeros each side
            p = F.max_pool1d(r2, 2)
            r3 = act_norm(self.norm3, self.conv3(p), F.relu) + p
            return [c1, r2, r3]
        # inference: ReLU and the residual adds in place on the convs' fresh outputs (same values,
        # no extra ~40 MB maps to allocate and fill per clip)
        c1 = act_norm(self.norm1, self.conv1(m), torch.relu_)
        r2 = act_norm(self.norm2, self.conv2(c1), torch.relu_).add_(c1)
        p = F.max_pool1d(r2, 2)
        r3 = act_norm(self.norm3, self.conv3(p), torch.relu_).add_(p)
        return [c1, r2, r3]
