"""Model cost: parameter counts and analytic FLOPs per clip (2 x multiply-accumulates of convs / linears).

FLOPs come from the *plain* layers' real output shapes: we run one clip with ``fast=False`` (when the
model has that switch) and forward hooks on every ``nn.Conv1d`` / ``nn.Conv2d`` / ``nn.Linear``, so
the count is that of the architecture as specified, not of the zero-padded fused kernels some fast
paths use. The clip runs on a copy of the model on PyTorch's "meta" device: shapes only, no
arithmetic, so even the 300-GFLOP front-ends cost milliseconds. Pools, activations, residual adds and biases are ignored (a few percent at most).
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

_MEASURED = (nn.Conv1d, nn.Conv2d, nn.Linear)


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not) of ``model``."""
    return sum(p.numel() for p in model.parameters())


def layer_flops(layer: nn.Module, output: torch.Tensor) -> int:
    """FLOPs (2 x MACs) of one conv / linear for one clip, from its ``output`` of batch size 1."""
    if isinstance(layer, nn.Linear):
        macs = layer.in_features * output.numel()
    else:  # each output value sums in_channels / groups x kernel products
        macs = (layer.in_channels // layer.groups) * math.prod(layer.kernel_size) * output.numel()
    return 2 * macs


def flops_per_clip(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Analytic FLOPs of one forward pass over one clip.

    Parameters
    ----------
    model : nn.Module
        A front-end (``mfcc`` has no convs and gives 0).
    input_shape : tuple of int
        One clip's shape without the batch axis: ``(samples,)`` or ``(frames, 96)``.

    Returns
    -------
    int
        ``2 * sum(MACs)`` over every conv and linear layer that runs.
    """
    if not any(isinstance(m, _MEASURED) for m in model.modules()):
        return 0
    total = 0

    def hook(layer, _inputs, output):
        nonlocal total
        total += layer_flops(layer, output)

    shadow = copy.deepcopy(model).to(device="meta", dtype=torch.float32)  # counts do not depend on dtype
    if hasattr(shadow, "fast"):
        shadow.fast = False  # the plain path calls every layer module, so every hook fires
    for m in shadow.modules():
        if isinstance(m, _MEASURED):
            m.register_forward_hook(hook)
    with torch.inference_mode():
        shadow.extract_features(torch.zeros((1, *input_shape), device="meta"))
    return total
