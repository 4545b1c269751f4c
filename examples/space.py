"""A search space of 24 small audio front-ends, to judge before training and then train:

    python -m studies --arch space:examples/space.py --width small --seed 0 1 --proxies --train

Factors (2 x 3 x 2 x 2 = 24 networks): the input (12 kHz waveform or the study's log-mel), the depth
(2, 3 or 4 conv blocks), the width (8 or 16 filters per conv) and the filter shape:

- log-mel ``(batch, frames, 96)``: ``square`` 3 x 3 filters, or ``tall`` 7 (frequency) x 1 (time) in the
  first block (timbre, as Pons et al. 2016) then 3 x 3; every block conv + ReLU + 2 x 2 max-pool;
- waveform ``(batch, samples)``: a first ``sample``-level conv (3 samples, stride 3; Lee et al. 2017) or a
  ``frame``-level one (64 samples, stride 32; Dieleman & Schrauwen 2014), then conv 3 + ReLU + max-pool 3.

``SPACE`` names every member (name -> description); each name is also a factory of this module, so a
member is the own front-end ``examples/space.py:<name>`` everywhere (``features.extract``,
``studies.proxies``, ``trained.train``). ``extract_features`` returns each block's activated conv output
(its mean is the block's feature); ``forward`` the last block's map as ``(batch, channels, time)`` (the
mel axis folded into the channels, time max-pooled to at most ``MAX_STEPS`` steps), which the study's
back-end consumes when it is trained.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SPACE", "SpaceNet", "MAX_STEPS"]

MAX_STEPS = 32  # time steps at most that forward hands to a back-end


class SpaceNet(nn.Module):
    """One member of the space (see the module docstring)."""

    def __init__(self, kind: str, depth: int, filters: int, shape: str):
        super().__init__()
        self.input_kind = "spectrogram" if kind == "mel" else "waveform"
        self.kind, self.depth, self.filters, self.shape = kind, int(depth), int(filters), shape
        convs, pools = [], []
        for i in range(self.depth):
            c_in = 1 if i == 0 else filters
            if kind == "mel":
                k = (1, 7) if (shape == "tall" and i == 0) else (3, 3)  # (time, mel)
                convs.append(nn.Conv2d(c_in, filters, k, padding=(k[0] // 2, k[1] // 2)))
                pools.append(nn.MaxPool2d(2))
            elif i == 0 and shape == "frame":
                convs.append(nn.Conv1d(c_in, filters, 64, stride=32))
                pools.append(nn.Identity())
            elif i == 0:
                convs.append(nn.Conv1d(c_in, filters, 3, stride=3))
                pools.append(nn.Identity())
            else:
                convs.append(nn.Conv1d(c_in, filters, 3, padding=1))
                pools.append(nn.MaxPool1d(3))
        self.convs, self.pools = nn.ModuleList(convs), nn.ModuleList(pools)
        self.acts = nn.ModuleList(nn.ReLU() for _ in convs)
        self.layers = [(f"block{i + 1}", filters) for i in range(self.depth)]

    def extract_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, out = x[:, None], []
        for conv, act, pool in zip(self.convs, self.acts, self.pools):
            h = act(conv(h))
            out.append(h)
            h = pool(h)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The last block's activated map as ``(batch, channels, time)``, max-pooled in time to at most
        ``MAX_STEPS`` steps (so the back-end's cost does not depend on the front-end's hop)."""
        h = self.extract_features(x)[-1]
        if h.dim() == 4:  # (batch, C, time, mel) -> (batch, C * mel, time)
            h = h.permute(0, 1, 3, 2).reshape(h.shape[0], -1, h.shape[2])
        if h.shape[-1] > MAX_STEPS:
            h = F.max_pool1d(h, math.ceil(h.shape[-1] / MAX_STEPS), ceil_mode=True)
        return h


SPACE: dict[str, str] = {}


def _member(kind, depth, filters, shape):
    def make() -> SpaceNet:
        return SpaceNet(kind, depth, filters, shape)
    make.__doc__ = f"{kind} input, {depth} blocks, {filters} filters, {shape} filters"
    return make


for _kind, _shapes in (("mel", ("square", "tall")), ("wave", ("sample", "frame"))):
    for _depth in (2, 3, 4):
        for _filters in (8, 16):
            for _shape in _shapes:
                _name = f"{_kind}_d{_depth}_f{_filters}_{_shape}"
                globals()[_name] = _member(_kind, _depth, _filters, _shape)
                globals()[_name].__name__ = _name
                SPACE[_name] = globals()[_name].__doc__
