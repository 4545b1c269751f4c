"""The shared classification back-end of Pons et al. 2018 and the front-end + back-end model.

Pons et al. 2018 ("End-to-end learning for music audio tagging at scale", the musicnn back-end) put
the same back-end after every front-end so that only the front-end differs:

    (batch, C, T) -> conv 7 x C, 512 filters            -> h1
                  -> conv 7 x 512 + h1 (residual)       -> h2
                  -> max-pool 2 in time
                  -> conv 7 x 512 + pooled (residual)   -> h3
                  -> [max over time, mean over time]    -> 1024 values
                  -> dropout 0.5 -> dense 500 ReLU -> dropout 0.5 -> dense n_classes

A conv "7 x C spanning all channels" is a ``Conv1d(C, 512, 7)``. Time is padded "same" (3 each side)
so front-ends that leave very few frames (vgg leaves one) still fit; the pool uses ``ceil_mode`` for
the same reason. Batch norm after each conv, on the pooled vector and after the dense layer, as in the
seeds, is on by default (``batchnorm=False`` removes it).
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["PonsBackend", "FrontEndClassifier", "init_he_normal", "frontend_output"]


def frontend_output(frontend: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What a back-end consumes, ``(batch, C, time)``: ``frontend.backend_input(x)`` where the front-end
    has one (a user's own module: its own ``forward``, ``architectures/custom.py``), else ``frontend(x)``."""
    own = getattr(frontend, "backend_input", None)
    return own(x) if own is not None else frontend(x)


class PonsBackend(nn.Module):
    """Back-end of Pons et al. 2018 on a front-end map ``(batch, in_channels, time)``.

    Parameters
    ----------
    in_channels : int
        C, channels of the front-end's ``forward`` output.
    n_classes : int
        Output units.
    filters : int
        Filters of the three convs (512).
    dense : int
        Units of the hidden dense layer (500).
    dropout : float
        Dropout before and after the dense layer (0.5).
    batchnorm : bool
        Batch norm after each conv, on the pooled vector and after the dense layer.
    """

    def __init__(self, in_channels: int, n_classes: int, filters: int = 512, dense: int = 500,
                 dropout: float = 0.5, batchnorm: bool = True):
        super().__init__()
        self.dims = {"in_channels": int(in_channels), "n_classes": int(n_classes),
                     "filters": int(filters), "dense": int(dense), "dropout": float(dropout),
                     "batchnorm": bool(batchnorm)}

        def bn(n):
            return nn.BatchNorm1d(n) if batchnorm else nn.Identity()

        self.conv1 = nn.Conv1d(in_channels, filters, 7, padding=3)
        self.bn1 = bn(filters)
        self.conv2 = nn.Conv1d(filters, filters, 7, padding=3)
        self.bn2 = bn(filters)
        self.pool = nn.MaxPool1d(2, ceil_mode=True)
        self.conv3 = nn.Conv1d(filters, filters, 7, padding=3)
        self.bn3 = bn(filters)
        self.bn_pool = bn(2 * filters)
        self.drop1 = nn.Dropout(dropout)
        self.fc = nn.Linear(2 * filters, dense)
        self.bn_fc = bn(dense)
        self.drop2 = nn.Dropout(dropout)
        self.out = nn.Linear(dense, n_classes)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Class scores ``(batch, n_classes)`` of a front-end map ``(batch, in_channels, time)``."""
        if h.dim() != 3 or h.shape[1] != self.dims["in_channels"]:
            raise ValueError(f"back-end expects (batch, {self.dims['in_channels']}, time), "
                             f"found {tuple(h.shape)}")
        h1 = self.bn1(torch.relu(self.conv1(h)))
        h2 = self.bn2(torch.relu(self.conv2(h1))) + h1
        p = self.pool(h2)
        h3 = self.bn3(torch.relu(self.conv3(p))) + p
        z = torch.cat([h3.amax(dim=2), h3.mean(dim=2)], dim=1)
        z = self.drop1(self.bn_pool(z))
        z = self.drop2(self.bn_fc(torch.relu(self.fc(z))))
        return self.out(z)


class FrontEndClassifier(nn.Module):
    """A front-end followed by a ``PonsBackend``; ``logits(x)`` gives ``(batch, n_classes)``.

    Parameters
    ----------
    frontend : nn.Module
        Any front-end of ``architectures`` (``forward(x) -> (batch, C, time)``).
    backend : PonsBackend
        Back-end whose ``in_channels`` equals C.
    """

    def __init__(self, frontend: nn.Module, backend: nn.Module):
        super().__init__()
        self.frontend = frontend
        self.backend = backend
        self.input_kind = frontend.input_kind

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.backend(frontend_output(self.frontend, x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x)


def init_he_normal(module: nn.Module, seed: int) -> nn.Module:
    """He-normal (fan-in, ReLU gain, not truncated) conv / dense weights and zero biases from a local
    generator: the back-end's (and SampleCNN's) training initialisation, not ``architectures.init``'s
    study init of random front-ends.

    A trained front-end is not re-initialised: it keeps the random weights its ``build(name, width,
    seed)`` drew, so a trained front-end differs from the random one of the same seed only by training.
    """
    g = torch.Generator().manual_seed(int(seed))
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu", generator=g)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module
