"""The shared classification back-end of Pons et al. 2018 and the front-end + back-end model.

Pons et al. 2018 ("End-to-end learning for music audio tagging at scale", the musicnn back-end) put
the same back-end after every front-end so that only the front-end differs:

    (batch, C, T) -> conv 7 x C, 512 filters            -> h1
                  -> conv 7 x 512 + h1 (residual)       -> h2
                  -> max-pool 2 in time
                  -> conv 7 x 512 + pooled (residual)   -> h3
                  -> [max over time, mean over time]    -> 1024 values
                  -> dropout 0.5 -> dense 500 ReLU -> dropout 0.5 -> dense n_classes

A conv "7 x C spanning all channels" is a ``Conv1d(C, 512, 7)``. Two layouts (``layout=``):

- ``"released"``, as ``backend()`` of the released models.py (jordipons/music-audio-tagging-at-scale-models):
  the first conv unpadded ("valid"), the 2-in-time max-pool rounding down ("valid" pooling), batch
  norm after each conv's ReLU and after the dense layer's ReLU but none on the pooled vector, batch
  norm as TensorFlow's defaults (momentum 0.99 = PyTorch's 0.01, epsilon 1e-3), and the log-mel input
  standardised with one mean and one standard deviation of the training portion (``set_input_stats``;
  the buffers live here so the checkpoint's back-end carries them). A front-end must leave at least 8
  frames (7 for the conv, 2 for the pool).
- ``"toolkit-2025"``, this toolkit's earlier layout: time padded "same" (3 each side) so front-ends
  that leave very few frames (vgg leaves one) still fit, the pool with ``ceil_mode``, a batch norm on
  the pooled vector too, PyTorch's batch-norm defaults, raw dB input. The default of the class, so
  checkpoints written before ``layout`` existed rebuild as they were trained.

``batchnorm=False`` removes every batch norm of either layout.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["PonsBackend", "FrontEndClassifier", "init_he_normal", "init_tf_variance_scaling", "frontend_output",
           "LAYOUTS", "TF_BN_MOMENTUM", "TF_BN_EPS", "MIN_FRAMES_RELEASED"]

LAYOUTS = ("released", "toolkit-2025")
TF_BN_MOMENTUM = 0.01   # tf.layers.batch_normalization / Keras momentum 0.99: new = 0.99 old + 0.01 batch
TF_BN_EPS = 1e-3        # their epsilon
MIN_FRAMES_RELEASED = 8  # unpadded conv of 7 leaves T - 6 frames, and the pool of 2 needs two


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
        Batch norm after each conv and after the dense layer (and, ``toolkit-2025``, on the pooled vector).
    layout : str
        ``"released"`` or ``"toolkit-2025"`` (module docstring).
    """

    def __init__(self, in_channels: int, n_classes: int, filters: int = 512, dense: int = 500,
                 dropout: float = 0.5, batchnorm: bool = True, layout: str = "toolkit-2025"):
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"back-end layout must be one of {', '.join(LAYOUTS)}, found {layout!r}")
        self.dims = {"in_channels": int(in_channels), "n_classes": int(n_classes),
                     "filters": int(filters), "dense": int(dense), "dropout": float(dropout),
                     "batchnorm": bool(batchnorm), "layout": layout}
        released = layout == "released"
        bn_args = {"momentum": TF_BN_MOMENTUM, "eps": TF_BN_EPS} if released else {}

        def bn(n):
            return nn.BatchNorm1d(n, **bn_args) if batchnorm else nn.Identity()

        self.conv1 = nn.Conv1d(in_channels, filters, 7, padding=0 if released else 3)
        self.bn1 = bn(filters)
        self.conv2 = nn.Conv1d(filters, filters, 7, padding=3)
        self.bn2 = bn(filters)
        self.pool = nn.MaxPool1d(2, ceil_mode=not released)
        self.conv3 = nn.Conv1d(filters, filters, 7, padding=3)
        self.bn3 = bn(filters)
        self.bn_pool = nn.Identity() if released else bn(2 * filters)
        # the released recipe's input standardisation (one mean, one std); identity until set
        self.register_buffer("input_mean", torch.zeros(()))
        self.register_buffer("input_std", torch.ones(()))
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
        if self.dims["layout"] == "released" and h.shape[2] < MIN_FRAMES_RELEASED:
            raise ValueError(f"the released back-end (unpadded conv of 7, then a pool of 2 rounding down) needs "
                             f"a front-end map of at least {MIN_FRAMES_RELEASED} frames, found {h.shape[2]}; use a "
                             "longer --input-seconds / --patch-seconds or --recipe toolkit-2025 (padded back-end)")
        h1 = self.bn1(torch.relu(self.conv1(h)))
        h2 = self.bn2(torch.relu(self.conv2(h1))) + h1
        p = self.pool(h2)
        h3 = self.bn3(torch.relu(self.conv3(p))) + p
        z = torch.cat([h3.amax(dim=2), h3.mean(dim=2)], dim=1)
        z = self.drop1(self.bn_pool(z))
        z = self.drop2(self.bn_fc(torch.relu(self.fc(z))))
        return self.out(z)

    def set_input_stats(self, mean: float, std: float) -> None:
        """The training portion's input mean and standard deviation (released recipe, spectrograms)."""
        if not (std > 0 and torch.isfinite(torch.tensor([mean, std])).all()):
            raise ValueError(f"input statistics must be finite with std > 0, found mean {mean}, std {std}")
        self.input_mean.fill_(float(mean))
        self.input_std.fill_(float(std))

    def standardise(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - mean) / std`` with the stored statistics (identity before ``set_input_stats``)."""
        return (x - self.input_mean.to(x.dtype)) / self.input_std.to(x.dtype)


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
        standardise = getattr(self.backend, "standardise", None)
        if standardise is not None and self.input_kind != "waveform":
            x = standardise(x)
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


def init_tf_variance_scaling(module: nn.Module, seed: int) -> nn.Module:
    """``tf.contrib.layers.variance_scaling_initializer()`` with its defaults (factor 2, FAN_IN, not
    uniform), as every conv and dense layer of the released models.py: a normal of standard deviation
    ``sqrt(1.3 * 2 / fan_in)`` truncated at 2 standard deviations (TensorFlow's ``truncated_normal``
    redraws values further out; the 1.3 brings the truncated variance back to about ``2 / fan_in``),
    zero biases (``tf.layers``' default), from a local generator."""
    import math
    g = torch.Generator().manual_seed(int(seed))
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            fan_in = m.weight[0].numel()  # in_channels x kernel (conv) or in_features (dense)
            std = math.sqrt(1.3 * 2.0 / fan_in)
            nn.init.trunc_normal_(m.weight, 0.0, std, -2.0 * std, 2.0 * std, generator=g)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module
