"""Small helpers shared by the front-ends: input checks, TensorFlow 'same' padding, conv + norm + act.

Functions only (no base class): each front-end file stays a plain ``nn.Module``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

N_MELS = 96  # mel bands of the study's spectrogram (frontends.md, common settings)


def check_input(x: torch.Tensor, input_kind: str, name: str, min_length: int = 1) -> torch.Tensor:
    """Validate a batch for a front-end; raise a ValueError that says expected vs found.

    Parameters
    ----------
    x : Tensor
        ``(batch, samples)`` for ``input_kind == "waveform"``, ``(batch, frames, 96)`` for
        ``"spectrogram"``.
    input_kind : {"waveform", "spectrogram"}
    name : str
        Architecture name, for the message.
    min_length : int
        Fewest samples / frames the architecture can process.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, found {type(x).__name__}")
    if input_kind == "waveform":
        ok, expected = x.dim() == 2, "(batch, samples)"
    else:
        ok, expected = x.dim() == 3 and x.shape[2] == N_MELS, f"(batch, frames, {N_MELS})"
    if not ok:
        raise ValueError(f"{name}: expected input {expected}, found {tuple(x.shape)}")
    if x.shape[1] < min_length:
        raise ValueError(f"{name}: input too short: needs at least {min_length} "
                         f"{'samples' if input_kind == 'waveform' else 'frames'}, found {x.shape[1]}")
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a floating point input, found {x.dtype}")
    return x


def same_pad(length: int, kernel: int, stride: int = 1) -> tuple[int, int]:
    """TensorFlow's 'SAME' padding (left, right): output ``ceil(length / stride)``, odd extra on the right."""
    out = -(-length // stride)
    total = max((out - 1) * stride + kernel - length, 0)
    return total // 2, total - total // 2


def pad_time(x: torch.Tensor, left: int, right: int, axis: int = -1) -> torch.Tensor:
    """Zero-pad ``x`` along ``axis`` (any axis; ``F.pad`` counts from the last)."""
    if left == 0 and right == 0:
        return x
    axis = axis % x.dim()
    pads = [0, 0] * (x.dim() - 1 - axis) + [left, right]
    return F.pad(x, pads)


def norm_layer(channels: int, dims: int, batchnorm: bool) -> nn.Module:
    """BatchNorm using the *batch's* statistics (the study's leak experiment) or an identity.

    ``track_running_stats=False`` makes it use batch statistics in eval mode too, which is the point:
    with it a clip's features depend on the other clips in its batch.
    """
    if not batchnorm:
        return nn.Identity()
    cls = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
    return cls(channels, track_running_stats=False)


def relu_conv(conv: nn.Module, norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``relu(norm(conv(x)))``, the straightforward layer of every ReLU front-end."""
    return F.relu(norm(conv(x)))


def unfold_matmul(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int = 1) -> torch.Tensor:
    """A single-input-channel Conv1d as one matmul (MKL-DNN starves on 1-channel convs).

    Parameters
    ----------
    x : Tensor
        ``(batch, length)``, already padded.
    weight : Tensor
        ``(out, 1, kernel)`` Conv1d weight.
    bias : Tensor or None
        ``(out,)``.
    stride : int

    Returns
    -------
    Tensor
        ``(batch, out, frames)``, equal to ``F.conv1d(x[:, None], weight, bias, stride)``.
    """
    kernel = weight.shape[-1]
    patches = x.unfold(1, kernel, stride)  # (batch, frames, kernel), a view
    w = weight.reshape(weight.shape[0], kernel)
    out = torch.matmul(patches, w.t()) if bias is None else torch.addmm(
        bias, patches.reshape(-1, kernel), w.t()).reshape(x.shape[0], -1, w.shape[0])
    return out.transpose(1, 2)


def layer_names(prefix: str, count: int) -> list[str]:
    """``["prefix1", ..., "prefixN"]``."""
    return [f"{prefix}{i}" for i in range(1, count + 1)]


def band_conv_max(x: torch.Tensor, convs: list[nn.Conv2d], chunk_bytes: int = 1 << 26) -> list[torch.Tensor]:
    """Full-height 2-D convs on a spectrogram, max-pooled over all their frequency positions.

    A ``Conv2d(1, C, (k, h))`` on a ``(time, mel)`` image with one input channel starves MKL-DNN.
    At each frequency position it is a ``Conv1d`` with ``h`` input channels (the bands it covers),
    so we stack positions into the batch, run one well-shaped Conv1d per kernel, and keep a running
    max over positions (chunks bound the memory; for the 38-tall filters there are 59 positions).

    Parameters
    ----------
    x : Tensor
        ``(batch, frames, mel)``.
    convs : list of nn.Conv2d
        All with one input channel and the same height ``h`` (kernel ``(k, h)``), time padding
        ``conv.padding[0]`` and no frequency padding.
    chunk_bytes : int
        Rough bound on the memory of one chunk's conv outputs.

    Returns
    -------
    list of Tensor
        One ``(batch, C_i, frames')`` per conv, equal to
        ``conv(x[:, None]).amax(dim=3)`` (before any non-linearity; ReLU commutes with max).
    """
    batch, frames, mel = x.shape
    height = convs[0].kernel_size[1]
    assert all(c.kernel_size[1] == height and c.padding[1] == 0 and c.in_channels == 1 for c in convs)
    positions = mel - height + 1
    widest = max(c.out_channels for c in convs)
    chunk = max(1, min(positions, chunk_bytes // (4 * batch * widest * frames)))
    # (batch, positions, height, frames): each position's bands as channels
    bands = x.transpose(1, 2).unfold(1, height, 1).transpose(2, 3)
    weights = [c.weight[:, 0].transpose(1, 2) for c in convs]  # (C, k, h) -> (C, h, k)
    result: list[torch.Tensor | None] = [None] * len(convs)
    for start in range(0, positions, chunk):
        size = min(chunk, positions - start)
        inp = bands[:, start:start + size].reshape(batch * size, height, frames)
        for i, (conv, weight) in enumerate(zip(convs, weights)):
            y = F.conv1d(inp, weight, conv.bias, padding=conv.padding[0])
            y = y.reshape(batch, size, y.shape[1], y.shape[2]).amax(dim=1)
            result[i] = y if result[i] is None else torch.maximum(result[i], y)
    return result
