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
    batchnorm : False, True / "batch", "running" or "running-post"
        ``False``: no normalisation (random feature extraction, the default everywhere).
        ``True`` or ``"batch"``: the study's leak experiment (Fig. 4.5 of the thesis,
        ``features.extract --batchnorm``): ``track_running_stats=False``, so the *batch's* statistics
        are used in eval mode too and a clip's features depend on the other clips of its batch.
        ``"running"``: ordinary trainable batch norm, as the trained front-ends of Pons et al. 2018
        (``trained.train --frontend-bn running``): batch statistics while training, the running
        averages in eval mode, so an extracted clip's features do not depend on its batch.
        ``"running-post"``: the same, placed after the activation (``act_norm``), with TensorFlow's
        momentum and epsilon (the released recipe of ``trained.train``).
    """
    if batchnorm is False or batchnorm is None:
        return nn.Identity()
    cls = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
    if batchnorm is True or batchnorm == "batch":
        return cls(channels, track_running_stats=False)
    if batchnorm == "running":
        return cls(channels)
    if batchnorm == "running-post":  # the released models of Pons et al. 2018: activation, then batch norm
        norm = cls(channels, momentum=0.01, eps=1e-3)  # tf.layers.batch_normalization's defaults
        norm.post_activation = True
        return norm
    raise ValueError(f"batchnorm must be False, True / 'batch' (batch statistics, the leak experiment), "
                     f"'running' (trained batch norm, running statistics) or 'running-post' (the same "
                     f"after the activation), found {batchnorm!r}")


def act_norm(norm: nn.Module, z: torch.Tensor, act) -> torch.Tensor:
    """``act(norm(z))``, or ``norm(act(z))`` for a ``"running-post"`` batch norm (``norm_layer``): the
    released models of Pons et al. 2018 put batch norm after each conv's ReLU."""
    return norm(act(z)) if getattr(norm, "post_activation", False) else act(norm(z))


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
    # each conv's block of the map is padded to a multiple of 16 channels (zero weights and bias, sliced
    # off at the end): MKL's GEMM ran 7x86's 3585 columns at 0.67-0.70 of its 3584-column rate
    widths = [padded_channels(c.out_channels) for c in convs]
    out = x.new_empty(batch, out_frames.pop(), sum(widths))
    offset = 0
    for conv, width in zip(convs, widths):
        assert conv.in_channels == 1 and conv.padding[1] == 0 and conv.stride == (1, 1), conv
        k, h = conv.kernel_size
        channels = conv.out_channels
        positions = mel - h + 1
        padded = pad_time(x, conv.padding[0], conv.padding[0], axis=1)
        patches = padded.unfold(1, k, 1).unfold(2, h, 1)  # (batch, frames', positions, k, h), a view
        weight = conv.weight.new_zeros(k * h, width)  # (k * h, C padded), (k, h) order as patches
        weight[:, :channels] = conv.weight.reshape(channels, k * h).t()
        bias = None
        if conv.bias is not None:
            bias = conv.bias.new_zeros(width)
            bias[:channels] = conv.bias
        block = out[:, :, offset:offset + width]  # this conv's columns: rows of stride sum(widths)
        step = max(-(-MIN_ROWS // positions), chunk_bytes // (4 * positions * max(width, k * h)))
        for b in range(batch):
            for start in range(0, out.shape[1], step):
                chunk = patches[b, start:start + step].reshape(-1, k * h)  # the im2col copy
                target = block[b, start:start + step]  # (frames in chunk, C), unit column stride
                if positions == 1:
                    if bias is None:
                        torch.mm(chunk, weight, out=target)
                    else:
                        torch.addmm(bias, chunk, weight, out=target)
                else:
                    y = torch.mm(chunk, weight).view(target.shape[0], positions, width)
                    torch.amax(y, dim=1, out=target)
        if positions > 1 and bias is not None:
            block += bias
        offset += width
    if relu:
        out.relu_()
    if sum(widths) != sum(c.out_channels for c in convs):  # drop the padding channels
        if len(convs) == 1:
            out = out[:, :, :convs[0].out_channels]  # a view
        else:
            starts = [sum(widths[:i]) for i in range(len(convs))]
            keep = torch.cat([torch.arange(s, s + c.out_channels) for s, c in zip(starts, convs)])
            out = out.index_select(2, keep.to(out.device))
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


# ---- channels-last time tiles: the inference fast path of the heavy front-ends ----------------------
# A conv over a channels-last map ``(time, C)`` is a sum of shifted GEMMs, one per kernel tap:
# ``out[t] = bias + sum_j src[t + offset_j] @ W_j``; each shifted ``src`` slice is a contiguous block of
# rows, so no im2col copy is made. Outputs are computed a tile of rows at a time, so a tile stays in the
# L2 cache while the taps accumulate into it and while the non-linearity / pool / residual is applied.
# One tile of conv output, 4 MiB: split between the GEMM's threads and held in L2 + the shared L3 (on a
# loaded 2-core EPYC, 1 thread: 4 MiB tiles ran sample-level 1.4x faster than 512 KiB ones; fewer, larger
# GEMMs also mean fewer thread barriers)
TILE_BYTES = 1 << 22
# Fewest filters for which the heavy front-ends take the tiled path: at the small widths (15-30 filters)
# the GEMMs are too thin and the plain MKL-DNN convs were 2-5x faster; at the large ones (448-896)
# the tiled path wins (docs/performance.md)
TILED_MIN_FILTERS = 64


def use_tiled(model: nn.Module, x: torch.Tensor) -> bool:
    """Whether a heavy front-end runs its tiled inference path: ``fast`` on, no batchnorm, no autograd,
    at least ``TILED_MIN_FILTERS`` filters, a CPU tensor (on a GPU, cuDNN's convs beat thousands of
    small GEMM launches)."""
    return (model.fast and not model.batchnorm and model.filters >= TILED_MIN_FILTERS
            and x.device.type == "cpu" and not needs_grad(x, [model]))


def tile_rows(channels: int, multiple: int = 1, row_width: int = 1) -> int:
    """Rows of output per tile: about ``TILE_BYTES`` of float32, a multiple of ``multiple`` (>= 1 of it).

    ``row_width`` counts map positions per row (a 2-D map's padded width), so the tile holds
    ``rows * row_width`` positions of ``channels`` values.
    """
    rows = TILE_BYTES // (4 * channels * row_width)
    return max(multiple, rows - rows % multiple)


def conv_taps(weight: torch.Tensor, c_in: int | None = None, c_out: int | None = None) -> torch.Tensor:
    """``(C_out, C_in, *kernel)`` conv weight -> ``(taps, c_in, c_out)``, contiguous, taps in row-major
    kernel order; ``c_in`` / ``c_out`` (default: the weight's) zero-pad the channel axes."""
    w_out, w_in = weight.shape[:2]
    taps = weight.detach().reshape(w_out, w_in, -1).permute(2, 1, 0)
    if (c_in or w_in) == w_in and (c_out or w_out) == w_out:
        return taps.contiguous()
    out = taps.new_zeros(taps.shape[0], c_in or w_in, c_out or w_out)
    out[:, :w_in, :w_out] = taps
    return out


def padded_channels(channels: int) -> int:
    """``channels`` rounded up to a multiple of 16: MKL's GEMMs on 717 columns ran at 0.55-0.7 of its rate
    on 720 (same run, 1 thread, 1400 x 717 x 717); the zero channels stay zero through bias 0,
    max-pool and ELU / ReLU and are sliced off."""
    return -(-channels // 16) * 16


def tap_conv(src: torch.Tensor, taps: torch.Tensor, offsets, bias: torch.Tensor | None,
             out: torch.Tensor) -> torch.Tensor:
    """``out = bias + sum_j src[offsets[j] : offsets[j] + len(out)] @ taps[j]``, written in place.

    Parameters
    ----------
    src : Tensor
        ``(rows, C_in)``, contiguous rows (a channels-last map, zero-padded where the conv pads).
    taps : Tensor
        ``(len(offsets), C_in, C_out)`` from ``conv_taps``.
    offsets : sequence of int
        First ``src`` row of each tap's slice.
    bias : Tensor or None
        ``(C_out,)``.
    out : Tensor
        ``(M, C_out)`` with unit column stride (may be a column block of a wider map).
    """
    m = out.shape[0]
    first = offsets[0]
    if bias is None:
        torch.mm(src[first:first + m], taps[0], out=out)
    else:
        torch.addmm(bias, src[first:first + m], taps[0], out=out)
    for j in range(1, len(offsets)):
        out.addmm_(src[offsets[j]:offsets[j] + m], taps[j])
    return out


def padded_map(reference: torch.Tensor, shape: tuple[int, ...], pads: tuple[tuple[int, int], ...]) -> torch.Tensor:
    """An uninitialised ``(batch, *shape)`` map plus zero borders ``pads`` (one ``(before, after)`` per axis
    of ``shape``).

    Only the borders are zeroed: the interior is written by the caller, so no full-size fill is paid.
    Returns the padded tensor; its interior is ``t[(slice(None),) + tuple(slice(a, a + n) ...)]``.
    """
    full = [n + a + b for n, (a, b) in zip(shape, pads)]
    t = reference.new_empty(reference.shape[0], *full)
    for axis, ((before, after), n) in enumerate(zip(pads, shape), start=1):
        if before:
            t.narrow(axis, 0, before).zero_()
        if after:
            t.narrow(axis, before + n, after).zero_()
    return t
