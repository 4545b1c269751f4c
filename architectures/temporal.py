"""Temporal front-end (Pons et al. 2016): 1-D convs of long kernels on the spectrogram's energy envelope.

Fast paths and their measured figures: docs/performance.md.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from .base import StudyFrontEnd
from .init import init_weights, keeps_global_rng
from .layers import act_norm, check_input, needs_grad, norm_layer, pad_time, same_pad

LENGTHS = (165, 128, 64, 32)
MULTIPLES = (1, 2, 4, 8)  # filters n - r, 2n - r, 4n - r, 8n - r with r = n / 4: 14n in all


def temporal_filters(n: int) -> list[int]:
    """Filters of the four convs for base count ``n`` (a multiple of 4)."""
    if n <= 0 or n % 4:
        raise ValueError(f"temporal: n must be a positive multiple of 4 (r = n / 4 filters are removed), found {n}")
    return [m * n - n // 4 for m in MULTIPLES]


# GEMM rows per tile of Temporal.extract_means (frames x clips): at batch 8 (a 29 s batch, large width,
# sustained over a second on a 2-core EPYC) 128-frame tiles ran 34.5 ms, 64 37.1, 256 36.9, 36 46.2
MEANS_TILE_ROWS = 1024


def _linear_relu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``relu(x @ weight.T + bias)``: oneDNN's fused op where this torch build has it and it gives the
    plain ops' values (``_onednn_linear_works``; the output is written once, rectified), else ``addmm``
    + in-place ReLU."""
    if _onednn_linear_works(x.dtype):
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "relu", [None], "")
    return torch.addmm(bias, x, weight.t()).relu_()


@functools.lru_cache(maxsize=None)
def _onednn_linear_works(dtype: torch.dtype) -> bool:
    """Whether ``torch.ops.mkldnn._linear_pointwise`` (a private op of torch's CPU builds, used by its
    compiler) exists, runs on ``dtype`` and matches ``relu(addmm)`` on a small example; checked once."""
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")):
        return False
    gen = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(shape, generator=gen).to(dtype) for shape in ((7, 33), (5, 33), (5,)))
    try:
        with torch.inference_mode():
            got = torch.ops.mkldnn._linear_pointwise(x, w, b, "relu", [None], "")
            want = torch.addmm(b, x, w.t()).relu_()
    except Exception:  # absent, another signature, a dtype it refuses: the plain ops
        return False
    tol = 1e-5 if dtype == torch.float32 else 5e-2
    return got.shape == want.shape and bool(torch.allclose(got.float(), want.float(), rtol=tol, atol=tol))


class Temporal(StudyFrontEnd):
    """Mean over the mel axis (an envelope), then four parallel Conv1d (TF 'same', ReLU), concatenated.

    Input ``(batch, frames, 96)``; output and the single averaged layer are ``(batch, 14n, frames)``.

    Parameters
    ----------
    n : int
        Base filter count, a multiple of 4 (256 large -> 3584 features, 8 small -> 112).
    seed : int
        Seed of the random weights.
    batchnorm : bool or "running"
        BatchNorm with batch statistics after each conv (the leak experiment); "running": trained
        batch norm with running statistics (``layers.norm_layer``); off by default.
    fast : bool
        Compute each conv as im2col + one GEMM (exact taps, no zero-padded kernels) that adds the bias
        and writes its column block of one preallocated map, then ReLU in place (same result).
    lengths : tuple of int
        Kernel lengths of the four convs (165, 128, 64, 32; timbral+time uses 64, 32, 16, 8).
    """

    input_kind = "spectrogram"
    SIZE = "n"
    EXTRA_DIMS = ("lengths",)

    @keeps_global_rng
    def __init__(self, n: int = 256, seed: int = 0, batchnorm: bool = False, fast: bool = True,
                 lengths: tuple[int, ...] = LENGTHS):
        super().__init__()
        self.store_common(n, seed, batchnorm, fast)
        self.lengths = tuple(int(k) for k in lengths)
        if len(self.lengths) != len(MULTIPLES) or min(self.lengths) < 1:
            raise ValueError(f"temporal: expected {len(MULTIPLES)} positive kernel lengths, found {lengths}")
        filters = temporal_filters(self.n)
        self.convs = nn.ModuleList(nn.Conv1d(1, f, k) for f, k in zip(filters, self.lengths))
        self.norms = nn.ModuleList(norm_layer(f, 1, batchnorm) for f in filters)
        self.channels = sum(filters)
        self.layers = [("temporal", self.channels)]
        self.feature_length = self.channels
        init_weights(self, seed)


    def branch_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four conv outputs, each ``(batch, filters_i, frames)``."""
        envelope = x.mean(dim=2)  # (batch, frames)
        outs = []
        for k, conv, norm in zip(self.lengths, self.convs, self.norms):
            padded = pad_time(envelope, *same_pad(envelope.shape[1], k))  # even k: extra zero on the right
            outs.append(act_norm(norm, conv(padded[:, None]), F.relu))
        return outs

    def fused_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """The four convs + ReLU into one map, ``(batch, 14n, frames)``: a transposed view of
        ``(batch, frames, 14n)``.

        ``F.conv1d`` with one input channel runs at a few percent of the matmul rate, and
        ``torch.cat`` then copies the ~20 MB map of a clip once more. Here each conv is one
        ``(batch * frames, k) x (k, filters)`` GEMM over the unfolded envelope (a copy of
        ``frames * k`` values, small) whose output is the conv's column block of the shared map
        (a strided ``out=``: the GEMM writes it in place, ld = 14n).
        """
        envelope = x.mean(dim=2)  # (batch, frames)
        batch, frames = envelope.shape
        out = envelope.new_empty(batch * frames, self.channels)
        start = 0
        for k, conv in zip(self.lengths, self.convs):
            patches = pad_time(envelope, *same_pad(frames, k)).unfold(1, k, 1).reshape(batch * frames, k)
            filters = conv.out_channels
            torch.addmm(conv.bias, patches, conv.weight.view(filters, k).t(), out=out[:, start:start + filters])
            start += filters
        return out.relu_().view(batch, frames, self.channels).transpose(1, 2)

    def extract_means(self, x: torch.Tensor) -> torch.Tensor:
        """The features, ``(batch, 14n)`` float32: the mean over frames of ``extract_features``' map.

        On the CPU fast path (``fast``, no batch norm, no autograd, a CPU tensor) the map never reaches
        memory whole: the frames go through the four convs a tile at a time (``MEANS_TILE_ROWS`` GEMM
        rows, all clips of the batch), each conv one GEMM on the unfolded envelope with its bias and
        ReLU applied as the GEMM writes (oneDNN's fused linear + ReLU, ``_linear_relu``), and each
        output is summed over its frames at once. The full map (~160 MB for a batch of 29 s clips at
        the large width) used to be written by the GEMMs, rewritten by the ReLU and read by the mean.
        """
        check_input(x, self.input_kind, "temporal")
        if not (self.fast and not self.batchnorm and x.device.type == "cpu"
                and not needs_grad(x, list(self.convs))):
            return self.extract_features(x)[0].float().mean(dim=2)
        envelope = x.mean(dim=2)  # (batch, frames)
        batch, frames = envelope.shape
        padded = [pad_time(envelope, *same_pad(frames, k)) for k in self.lengths]
        step = max(1, MEANS_TILE_ROWS // batch)  # frames per tile
        sums = torch.zeros(batch, self.channels, dtype=torch.float32, device=x.device)
        for start in range(0, frames, step):
            rows = min(step, frames - start)
            col = 0
            for k, conv, env in zip(self.lengths, self.convs, padded):
                patches = env[:, start:start + rows + k - 1].unfold(1, k, 1).reshape(batch * rows, k)
                y = _linear_relu(patches, conv.weight.view(conv.out_channels, k), conv.bias)
                sums[:, col:col + conv.out_channels] += y.view(batch, rows, -1).sum(dim=1, dtype=torch.float32)
                col += conv.out_channels
        return sums / frames

    def extract_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[temporal]``, ``(batch, 14n, frames)``, from ``x`` ``(batch, frames, 96)``."""
        check_input(x, self.input_kind, "temporal")
        if self.fast and not self.batchnorm and not needs_grad(x, list(self.convs)):
            return [self.fused_outputs(x)]
        return [torch.cat(self.branch_outputs(x), dim=1)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, 14n, frames)``."""
        return self.extract_features(x)[0]
