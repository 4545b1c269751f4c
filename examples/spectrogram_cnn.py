"""A small log-mel CNN with its own read-out, to run as a front-end of the study::

    python -m features.extract --arch examples.spectrogram_cnn:SpectrogramCNN --width small --seed 0 1 2

It defines ``extract_features`` (the layers it wants averaged) and ``layers`` (their names and channels),
so no hooks are needed. ``make_model`` shows the factory form:
``--arch examples/spectrogram_cnn.py:make_model --arch-options filters=8``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FILTERS = {"small": 20, "large": 597}  # 6 read-out layers: 120 / 3582 features
POOLS = ((4, 4), (4, 4), (4, 6))  # (time, mel): 1376 x 96 -> 344 x 24 -> 86 x 6 -> 21 x 1


class SpectrogramCNN(nn.Module):
    """Three blocks of conv 3x3 + ELU + max-pool on the study's log-mel ``(batch, frames, 96)``.

    ``extract_features`` returns each block's activated conv output and its pooled map (6 layers), the
    same tensors forward hooks on its conv and pooling layers read.
    """

    input_kind = "spectrogram"

    def __init__(self, filters: int | None = None, width: str = "small"):
        super().__init__()
        f = int(filters or FILTERS[width])
        self.convs = nn.ModuleList(nn.Conv2d(1 if i == 0 else f, f, 3, padding=1) for i in range(len(POOLS)))
        self.acts = nn.ModuleList(nn.ELU() for _ in POOLS)
        self.pools = nn.ModuleList(nn.MaxPool2d(p) for p in POOLS)
        self.layers = [(f"{kind}{i + 1}", f) for i in range(len(POOLS)) for kind in ("conv", "pool")]

    def extract_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Six maps, each ``(batch, filters, time, mel)``, from ``x`` ``(batch, frames, 96)``."""
        h, out = x[:, None], []
        for conv, act, pool in zip(self.convs, self.acts, self.pools):
            h = act(conv(h))
            out.append(h)
            h = pool(h)
            out.append(h)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The last pooled map with its mel axis folded into channels: ``(batch, filters * mel, time)``."""
        h = self.extract_features(x)[-1]
        return h.permute(0, 1, 3, 2).reshape(h.shape[0], -1, h.shape[2])


def make_model(filters: int | None = None, width: str = "small") -> SpectrogramCNN:
    """Factory form of :class:`SpectrogramCNN` (``--arch examples/spectrogram_cnn.py:make_model``)."""
    return SpectrogramCNN(filters=filters, width=width)
