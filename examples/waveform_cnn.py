"""A small waveform CNN, written as any PyTorch user would, to run as a front-end of the study::

    python -m features.extract --arch examples/waveform_cnn.py:WaveformCNN --width small --seed 0 1 2

It declares nothing but ``input_kind``: its layers are found by forward hooks (every conv and pooling
layer, each read after its ReLU), named by module path (``frontend.0``, ``blocks.0.0``, ``blocks.0.2``...).
"""
from __future__ import annotations

import torch
from torch import nn

FILTERS = {"small": 16, "large": 512}  # 7 read-out layers: 112 / 3584 features, as the study's widths


class WaveformCNN(nn.Module):
    """A strided frame conv (64 samples, hop 32) then three blocks of conv 3 + ReLU + max-pool 4.

    Parameters
    ----------
    filters : int or None
        Channels of every layer; None takes ``FILTERS[width]``.
    width : {"small", "large"}
        The study width it is compared at (``features.extract --width`` passes it).
    """

    input_kind = "waveform"  # (batch, samples) at 12 kHz

    def __init__(self, filters: int | None = None, width: str = "small"):
        super().__init__()
        f = int(filters or FILTERS[width])
        self.frontend = nn.Sequential(nn.Conv1d(1, f, 64, stride=32), nn.ReLU())
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv1d(f, f, 3, padding=1), nn.ReLU(), nn.MaxPool1d(4)) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, samples)`` -> ``(batch, filters, time)``."""
        h = self.frontend(x[:, None])
        for block in self.blocks:
            h = block(h)
        return h
