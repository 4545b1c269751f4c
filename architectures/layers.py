"""Small helpers shared by the front-ends: input checks, TensorFlow 'same' padding, conv + norm + act.

Functions only (no base class): each front-end file stays a plain ``nn.Module``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from audiodata.audio import N_MELS  # the spectrogram's mel bands: every spectrogram front-end's height

# Fewest GEMM rows per chunk of band_conv_max: each GEMM re-packs the (k * h, C) weight, so fewer rows
# than this spend a visible share of the time packing (7x86: 2.2 M weights)
MIN_ROWS = 2048


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


def norm_layer(channels: int, dims: int, batchnorm) -> nn.Module:
    """Batch norm after a conv, in one of two modes that must not be confused, or an identity.

    Parameters
    ----------
    channels : int
    dims : {1, 2}
        ``BatchNorm1d`` or ``BatchNorm2d``.
    batchnorm : False, True / "batch", or "running"
        ``False``: no normalisation (random feature extraction, the default everywhere).
        ``True`` or ``"batch"``: the study's leak experiment (Fig. 4.5 of the thesis,
        ``features.extract --batchnorm``): ``track_running_stats=False``, so the *batch's* statistics
        are used in eval mode too and a clip's features depend on the other clips of its batch.
        ``"running"``: ordinary trainable batch norm, as the trained front-ends of Pons et al. 2018
        (``trained.train --frontend-bn running``): batch statistics while training, the running
        averages in eval mode, so an extracted clip's features do not depend on its batch.
    """
    if batchnorm is False or batchnorm is None:
        return nn.Identity()
    cls = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
    if batchnorm is True or batchnorm == "batch":
        return cls(channels, track_running_stats=False)
    if batchnorm == "running":
        return cls(channels)
    raise ValueError(f"batchnorm must be False, True / 'batch' (batch statistics, the leak experiment) "
                     f"or 'running' (trained batch norm, running statistics), found {batchnorm!r}")


def unfold_matmul(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int = 1) -> torch.Tensor:
    """A single-input-channel Conv1d as one matmul (MKL-DNN starves on 1-channel convs).

    The GEMM is ``(out, kernel) x (kernel, frames)`` per clip, so its result is already the
    ``(out, frames)`` map: no ``(frames, out)`` result to transpose (for sample-level's conv0 that
    copy of a 240 MB map cost as much as a conv). Without autograd the GEMM adds the bias and writes
    into the preallocated output.

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
        ``(batch, out, frames)``, contiguous, equal to ``F.conv1d(x[:, None], weight, bias, stride)``.
    """
    kernel = weight.shape[-1]
    patches = x.unfold(1, kernel, stride).transpose(1, 2)  # (batch, kernel, frames), a view
    w = weight.reshape(weight.shape[0], kernel)
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad
                                    or (bias is not None and bias.requires_grad)):
        out = torch.matmul(w, patches)
        return out if bias is None else out + bias[:, None]
    out = x.new_empty(x.shape[0], w.shape[0], patches.shape[2])
    for b in range(x.shape[0]):
        if bias is None:
            torch.mm(w, patches[b], out=out[b])
        else:
            torch.addmm(bias[:, None], w, patches[b], out=out[b])
    return out


def layer_names(prefix: str, count: int) -> list[str]:
    """``["prefix1", ..., "prefixN"]``."""
    return [f"{prefix}{i}" for i in range(1, count + 1)]


def band_conv_max(x: torch.Tensor, convs: list[nn.Conv2d], relu: bool = False,
                  chunk_bytes: int = 1 << 20) -> torch.Tensor:
    """Full-height 2-D convs on a spectrogram, max-pooled over all their frequency positions.

    A ``Conv2d(1, C, (k, h))`` on a ``(time, mel)`` image has one input channel, which starves
    MKL-DNN (the 1 x h convs of timbral run at a few percent of the matmul rate). Here each conv is
    im2col + one GEMM per time-chunk: the ``(frame, position)`` patches of ``k * h`` values (a strided
    view, copied one chunk at a time) times the ``(k * h, C)`` weight matrix, giving
    ``(frames, positions, C)`` with the channels innermost, so the max over positions is a contiguous
    reduction. Chunks are small (``chunk_bytes``, about the L2 cache) so the max reads the GEMM's
    output from cache, not from memory. Every conv writes its column block of ONE preallocated
    ``(batch, frames, sum C)`` map (strided ``out=`` writes, no ``torch.cat``); bias is added after the
    max (a per-channel constant commutes with max exactly) and ReLU is done in place on the pooled map
    (ReLU commutes with max too). With a single position (a conv over all bands) there is no max: the
    GEMM adds the bias and writes the map directly.

    Parameters
    ----------
    x : Tensor
        ``(batch, frames, mel)``.
    convs : list of nn.Conv2d
        Each with one input channel, kernel ``(k, h)``, time padding ``conv.padding[0]``, no frequency
        padding, and the same number of output frames as the others.
    relu : bool
        Apply ReLU (in place) to the pooled map.
    chunk_bytes : int
        Rough bound on the memory of one chunk's GEMM output (or patches).

    Returns
    -------
    Tensor
        ``(batch, sum C_i, frames')``, a transposed view of a channels-innermost map, equal to
        ``torch.cat([conv(x[:, None]).amax(dim=3) for conv in convs], dim=1)`` (then ReLU if ``relu``).
    """
    batch, frames, mel = x.shape
    out_frames = {frames + 2 * c.padding[0] - c.kernel_size[0] + 1 for c in convs}
    assert len(out_frames) == 1, "convs of one call must give equal frame counts"
    if needs_grad(x, convs):  # out= and in-place writes cannot be differentiated (trained/ trains these)
        return _band_conv_max_autograd(x, convs, relu, chunk_bytes)
    out = x.new_empty(batch, out_frames.pop(), sum(c.out_channels for c in convs))
    offset = 0
    for conv in convs:
        assert conv.in_channels == 1 and conv.padding[1] == 0 and conv.stride == (1, 1), conv
        k, h = conv.kernel_size
        channels = conv.out_channels
        positions = mel - h + 1
        padded = pad_time(x, conv.padding[0], conv.padding[0], axis=1)
        patches = padded.unfold(1, k, 1).unfold(2, h, 1)  # (batch, frames', positions, k, h), a view
        weight = conv.weight.reshape(channels, k * h).t()  # (k * h, C), (k, h) order as patches
        block = out[:, :, offset:offset + channels]  # this conv's columns: rows of stride sum C
        step = max(-(-MIN_ROWS // positions), chunk_bytes // (4 * positions * max(channels, k * h)))
        for b in range(batch):
            for start in range(0, out.shape[1], step):
                chunk = patches[b, start:start + step].reshape(-1, k * h)  # the im2col copy
                target = block[b, start:start + step]  # (frames in chunk, C), unit column stride
                if positions == 1:
                    if conv.bias is None:
                        torch.mm(chunk, weight, out=target)
                    else:
                        torch.addmm(conv.bias, chunk, weight, out=target)
                else:
                    y = torch.mm(chunk, weight).view(target.shape[0], positions, channels)
                    torch.amax(y, dim=1, out=target)
        if positions > 1 and conv.bias is not None:
            block += conv.bias
        offset += channels
    if relu:
        out.relu_()
    return out.transpose(1, 2)


def needs_grad(x: torch.Tensor, modules: list[nn.Module]) -> bool:
    """Whether autograd records ops on ``x`` / ``modules``' parameters (then no ``out=`` / in-place tricks)."""
    return torch.is_grad_enabled() and (x.requires_grad or any(
        p.requires_grad for m in modules for p in m.parameters()))


def _band_conv_max_autograd(x: torch.Tensor, convs: list[nn.Conv2d], relu: bool,
                            chunk_bytes: int) -> torch.Tensor:
    """``band_conv_max`` with out-of-place ops only, for training (same values, differentiable)."""
    batch, _, mel = x.shape
    results = []
    for conv in convs:
        k, h = conv.kernel_size
        positions = mel - h + 1
        patches = pad_time(x, conv.padding[0], conv.padding[0], axis=1).unfold(1, k, 1).unfold(2, h, 1)
        weight = conv.weight.reshape(conv.out_channels, k * h).t()
        step = max(1, chunk_bytes // (4 * batch * positions * max(conv.out_channels, k * h)))
        pieces = [(chunk.reshape(-1, k * h) @ weight).reshape(batch, chunk.shape[1], positions, -1).amax(dim=2)
                  for chunk in patches.split(step, dim=1)]
        y = torch.cat(pieces, dim=1)
        results.append(y + conv.bias if conv.bias is not None else y)
    out = torch.cat(results, dim=2)
    return (F.relu(out) if relu else out).transpose(1, 2)
