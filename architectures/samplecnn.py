"""SampleCNN (Lee et al. 2017) with the blocks of Kim, Lee & Nam (ICASSP 2018, TASLP 2019).

The 3^9 model reads 59 049-sample segments at 22 050 Hz: a strided conv (kernel 3, stride 3) gives
19 683 frames, then nine blocks each end with a max-pool of 3, down to 1 frame of 512 channels. A
"conv 1-512" (a dense layer on that frame) with batch norm, ReLU and dropout 0.5, and the output
layer close the model. Table 1 of the 2017 paper counts each conv's weights and bias: 512, 49 280,
49 280, 98 560, 196 864 x 5, 393 728, 262 656 and 25 650 for 50 tags, 1.86M in all; batch norm is
extra. Lee et al. 2017 put batch norm and ReLU after *every* conv layer, conv 1-512 included (as
does the authors' code for Kim et al., where the dense layer is followed by BN and ReLU);
``head_batchnorm=False`` gives the earlier model without it (checkpoints written before it existed).

Blocks (``block=``):

- ``basic``: conv 3 - BN - ReLU - max-pool 3.
- ``se``: basic, then squeeze-and-excitation on the pooled map (global average over time, dense
  ``alpha * C`` ReLU, dense ``C`` sigmoid, channel-wise scale).
- ``res1`` / ``res2``: one or two conv-BN (ReLU and dropout 0.2 between the two), added to the
  input (a 1x1 conv + BN shortcut where the channel count changes), ReLU, max-pool 3.
- ``rese1`` / ``rese2``: as res, with squeeze-and-excitation on the residual branch before the add.

``head`` (``layout=``): ``"released"`` as ``resemul()`` of Kim et al.'s code (tae-jun/resemul, model.py):
the dense layer is as wide as its input (``Dense(x.shape[-1])``: 1024 with multi-level aggregation,
512 without), the blocks concatenated in order 7, 8, 9, batch norm with Keras' defaults (momentum 0.99,
epsilon 1e-3); ``init_keras`` gives their initialisers. ``"toolkit-2025"``: a dense layer of
``channels[-1]`` (512) units whatever its input, the blocks concatenated 9, 8, 7, PyTorch's batch-norm
defaults (the class default, so older checkpoints rebuild as trained).

``alpha`` (``se_ratio``) is the "amplifying ratio": 16 in the ICASSP paper, 2^-3 in the TASLP one
(our default, which gives the TASLP cost ratios 1.09x / 2.20x / 2.29x of parameters). With
``multi_level`` the last three blocks are global-max-pooled and concatenated (512 + 256 + 256 = 1024
values) before the dense layers.

The module also follows the front-end interface of ``docs/formats.md`` (``input_kind``, ``layers``,
``extract_features``, ``forward`` giving ``(batch, channels, time)``, ``dims``), so its trained blocks
can be averaged into a feature set like any front-end; ``logits`` runs the whole classifier.
"""
from __future__ import annotations

import torch
from torch import nn

from audiodata import audio
from audiodata.decode import RateSpec

__all__ = ["SampleCNN", "init_keras", "LAYOUTS", "KERAS_DECAY", "BLOCKS", "SAMPLE_RATE", "SEGMENT_SAMPLES", "CHANNELS", "SMALL_CHANNELS",
           "LR", "LR_FACTOR", "LR_DECREASES", "plateau_patience", "default_weight_decay"]

SAMPLE_RATE = 22050          # Lee et al. 2017 resample MagnaTagATune to 22 050 Hz
SEGMENT_SAMPLES = 3 ** 10    # 59 049: stride-3 first conv then nine pools of 3 leave one frame
# Filters of the first conv and of the nine blocks, Table 1 of Lee et al. 2017.
CHANNELS = (128, 128, 128, 256, 256, 256, 256, 256, 256, 512)
# A 1/8-width model for quick runs and tests (same depth, same shapes in time).
SMALL_CHANNELS = tuple(c // 8 for c in CHANNELS)
BLOCKS = ("basic", "se", "res1", "res2", "rese1", "rese2")

# Training schedule of the papers: SGD (Nesterov 0.9) from LR, divided by 1 / LR_FACTOR = 5 each time
# the validation loss stops decreasing, LR_DECREASES times in all: Lee et al. 2017 ("a total
# decrease of 4 times, the learning rate of the last training was 0.000016" = 0.01 / 5^4).
LR = 0.01
LR_FACTOR = 0.2
LR_DECREASES = 4
LAYOUTS = ("released", "toolkit-2025")
# resemul train.py: SGD(lr, momentum=0.9, decay=1e-6, nesterov=True), a new optimizer every stage; Keras'
# decay scales the rate of update k (0, 1, ... within the stage) by 1 / (1 + decay * k).
KERAS_DECAY = 1e-6


def plateau_patience(block: str) -> int:
    """Epochs in a row without a lower validation loss that end a learning-rate stage.

    3 for the ``basic`` 3^9 model (Lee et al. 2017, "did not decrease more than 3 epochs"); 2 for the
    block models of Kim et al. (2019 journal paper: "does not decrease in 2 epochs"; the 2018 code's
    default). Counted as Keras counts it: the stage ends on the N-th such epoch.
    """
    return 3 if block == "basic" else 2


def default_weight_decay(block: str) -> float:
    """L2 coefficient on the conv / dense kernels: 1e-4 for ReSE-2 (Kim et al. 2018, Table 1 dagger:
    the only block for which a paper states one), else 0 (no regularisation stated)."""
    return 1e-4 if block == "rese2" else 0.0


class SqueezeExcitation(nn.Module):
    """Channel re-weighting: ``x * sigmoid(W2 relu(W1 mean_t(x)))``, hidden size ``round(ratio * C)``.

    Parameters
    ----------
    channels : int
        C, the channel count of the input ``(batch, C, time)``.
    ratio : float
        Amplifying ratio alpha (hidden units = alpha * C, at least 1).
    """

    def __init__(self, channels: int, ratio: float):
        super().__init__()
        hidden = max(1, int(round(channels * ratio)))
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean(dim=2)))))
        return x * w.unsqueeze(2)


class BasicBlock(nn.Module):
    """conv 3 (same) - BN - ReLU - max-pool 3, optionally followed by squeeze-and-excitation."""

    def __init__(self, c_in: int, c_out: int, se_ratio: float | None = None):
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, 3, padding=1)
        self.bn = nn.BatchNorm1d(c_out)
        self.pool = nn.MaxPool1d(3)
        self.se = SqueezeExcitation(c_out, se_ratio) if se_ratio else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.bn(self.conv(x))))
        return self.se(x) if self.se is not None else x


class ResidualBlock(nn.Module):
    """Res-1 / Res-2 (``n_convs`` 1 or 2) and ReSE-1 / ReSE-2 (``se_ratio`` set) of Kim et al.

    branch = conv-BN [- ReLU - dropout 0.2 - conv-BN] [- SE]; out = pool3(relu(shortcut(x) + branch)),
    the shortcut being the identity or, when the channel count changes, a 1x1 conv + BN.
    """

    def __init__(self, c_in: int, c_out: int, n_convs: int, se_ratio: float | None = None,
                 dropout: float = 0.2):
        super().__init__()
        self.conv1 = nn.Conv1d(c_in, c_out, 3, padding=1)
        self.bn1 = nn.BatchNorm1d(c_out)
        if n_convs == 2:
            self.drop = nn.Dropout(dropout)
            self.conv2 = nn.Conv1d(c_out, c_out, 3, padding=1)
            self.bn2 = nn.BatchNorm1d(c_out)
        else:
            self.conv2 = None
        self.se = SqueezeExcitation(c_out, se_ratio) if se_ratio else None
        if c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv1d(c_in, c_out, 1), nn.BatchNorm1d(c_out))
        else:
            self.shortcut = nn.Identity()
        self.pool = nn.MaxPool1d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn1(self.conv1(x))
        if self.conv2 is not None:
            y = self.bn2(self.conv2(self.drop(torch.relu(y))))
        if self.se is not None:
            y = self.se(y)
        return self.pool(torch.relu(self.shortcut(x) + y))


def _make_block(kind: str, c_in: int, c_out: int, se_ratio: float) -> nn.Module:
    if kind == "basic":
        return BasicBlock(c_in, c_out)
    if kind == "se":
        return BasicBlock(c_in, c_out, se_ratio)
    n_convs = int(kind[-1])
    return ResidualBlock(c_in, c_out, n_convs, se_ratio if kind.startswith("rese") else None)


class SampleCNN(nn.Module):
    """The 3^9 SampleCNN: strided conv, nine blocks, dense 512 + dropout 0.5, output layer.

    Parameters
    ----------
    n_classes : int
        Output units (50 for the MagnaTagATune top-50 tags).
    block : str
        One of ``BLOCKS``.
    se_ratio : float
        Amplifying ratio alpha of the SE blocks (``se``, ``rese1``, ``rese2``).
    multi_level : bool
        Concatenate the global max-pool of the last three blocks (Kim et al. 2018).
    channels : sequence of int
        Filters of the first conv and of the nine blocks (10 values); ``CHANNELS`` by default.
    dropout : float
        Dropout before the output layer (0.5).
    head_batchnorm : bool
        Batch norm after the "conv 1-512" dense layer, before its ReLU (Lee et al. 2017: every conv
        layer has batch norm). ``False`` rebuilds models trained before it was added.
    layout : str
        ``"released"`` (dense head as wide as its input, Keras batch-norm defaults) or ``"toolkit-2025"``
        (dense head of ``channels[-1]``); see the module docstring.

    Notes
    -----
    Input ``(batch, samples)`` at 22 050 Hz, ``samples >= SEGMENT_SAMPLES`` (longer inputs leave more
    than one frame; the head global-max-pools over them).
    """

    input_kind = "waveform"
    sample_rate = SAMPLE_RATE

    def __init__(self, n_classes: int = 50, block: str = "basic", se_ratio: float = 0.125,
                 multi_level: bool = False, channels=CHANNELS, dropout: float = 0.5,
                 head_batchnorm: bool = True, layout: str = "toolkit-2025"):
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"SampleCNN layout must be one of {', '.join(LAYOUTS)}, found {layout!r}")
        if block not in BLOCKS:
            raise ValueError(f"unknown SampleCNN block {block!r}; available: {', '.join(BLOCKS)}")
        channels = tuple(int(c) for c in channels)
        if len(channels) != 10 or min(channels) < 1:
            raise ValueError(f"channels must be 10 positive integers (first conv + 9 blocks), "
                             f"found {channels}")
        if n_classes < 1:
            raise ValueError(f"n_classes must be >= 1, found {n_classes}")
        self.dims = {"n_classes": int(n_classes), "block": block, "se_ratio": float(se_ratio),
                     "multi_level": bool(multi_level), "channels": list(channels),
                     "dropout": float(dropout), "head_batchnorm": bool(head_batchnorm), "layout": layout}
        self.conv0 = nn.Conv1d(1, channels[0], 3, stride=3)
        self.bn0 = nn.BatchNorm1d(channels[0])
        self.blocks = nn.ModuleList(
            _make_block(block, channels[i], channels[i + 1], se_ratio) for i in range(9))
        head_in = channels[-1] + (channels[-2] + channels[-3] if multi_level else 0)
        # "conv 1-512" of Table 1: a 1x1 conv on the single remaining frame, i.e. a dense layer.
        head = head_in if layout == "released" else channels[-1]
        self.fc = nn.Linear(head_in, head)
        self.bn_fc = nn.BatchNorm1d(head) if head_batchnorm else nn.Identity()
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(head, n_classes)
        if layout == "released":  # Keras' BatchNormalization defaults
            for m in self.modules():
                if isinstance(m, nn.BatchNorm1d):
                    m.momentum, m.eps = 0.01, 1e-3
        self.layers = [("conv0", channels[0])] + [(f"block{i + 1}", channels[i + 1])
                                                  for i in range(9)]
        self.feature_length = sum(c for _, c in self.layers)

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] < SEGMENT_SAMPLES:
            raise ValueError(f"SampleCNN expects (batch, samples) with samples >= {SEGMENT_SAMPLES}, "
                             f"found {tuple(x.shape)}")
        return x.unsqueeze(1)

    def extract_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of the first conv and of the nine blocks, each ``(batch, C_i, T_i)``.

        ``(batch, 59049)`` gives T = 19683, 6561, ..., 3, 1.
        """
        h = torch.relu(self.bn0(self.conv0(self._check(x))))
        outs = [h]
        for blk in self.blocks:
            h = blk(h)
            outs.append(h)
        return outs

    def input_spec(self, input_seconds: float | None = None, pad: str = "repeat"):
        """Feature read-out input (``features.extract``): a waveform at this model's own 22 050 Hz, as
        long as the study's front-end input (350 000 samples at 12 kHz, about 29.2 s) unless
        ``input_seconds`` says otherwise."""
        seconds = audio.N_SAMPLES / audio.SAMPLE_RATE if input_seconds is None else input_seconds
        return RateSpec("waveform", max(SEGMENT_SAMPLES, int(round(seconds * self.sample_rate))), pad,
                        self.sample_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The last block's map ``(batch, C_9, time)`` (the representation a back-end consumes)."""
        return self.extract_features(x)[-1]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores ``(batch, n_classes)`` of ``(batch, samples)`` segments (before sigmoid/softmax)."""
        outs = self.extract_features(x)
        if self.dims["multi_level"]:
            last = outs[-3:] if self.dims["layout"] == "released" else outs[-3:][::-1]
            z = torch.cat([o.amax(dim=2) for o in last], dim=1)
        else:
            z = outs[-1].amax(dim=2)
        return self.out(self.drop(torch.relu(self.bn_fc(self.fc(z)))))


def init_keras(model: SampleCNN, seed: int) -> SampleCNN:
    """The initialisers of resemul's model.py: ``he_uniform`` (uniform in +-sqrt(6 / fan_in)) on the
    first conv and the blocks' 3-tap convs, ``glorot_uniform`` (+-sqrt(6 / (fan_in + fan_out))) on the
    1x1 shortcut convs, the squeeze-and-excitation dense layers, the head's dense layer and the output
    layer; zero biases (Keras' default), from a local generator. Keras counts a conv's fans as
    kernel x in_channels and kernel x out_channels."""
    import math
    g = torch.Generator().manual_seed(int(seed))
    for m in model.modules():
        if not isinstance(m, (nn.Conv1d, nn.Linear)):
            continue
        w = m.weight
        receptive = w[0, 0].numel()
        fan_in, fan_out = w.shape[1] * receptive, w.shape[0] * receptive
        glorot = isinstance(m, nn.Linear) or m.kernel_size == (1,)
        limit = math.sqrt(6.0 / (fan_in + fan_out)) if glorot else math.sqrt(6.0 / fan_in)
        nn.init.uniform_(w, -limit, limit, generator=g)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    return model
