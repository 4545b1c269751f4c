"""Random weight initialisation shared by every front-end.

The study's TensorFlow code (``jordipons/elmarc``, ``src/dl_models.py``) builds every conv with
``kernel_initializer=tf.contrib.layers.variance_scaling_initializer()``, whose defaults are
``factor=2.0, mode='FAN_IN', uniform=False``. TF1's contrib implementation draws

    truncated_normal(shape, 0.0, stddev=sqrt(1.3 * factor / fan_in))

where ``truncated_normal`` re-draws anything beyond 2 of *its* standard deviations. The factor 1.3 is
contrib's approximate correction for the truncation: a normal cut at +-2 sigma keeps
0.87962566103423978 of its standard deviation, so the weights end up with std
``sqrt(1.3) * 0.8796 * sqrt(2 / fan_in) = 1.0029 * sqrt(2 / fan_in)``.
``tf.keras.initializers.VarianceScaling(2.0, "fan_in", "truncated_normal")`` (TF >= 1.13 and TF2) uses the
exact constant instead, ``stddev = sqrt(2 / fan_in) / 0.87962566103423978``, so its truncated draws have
std exactly ``sqrt(2 / fan_in)``.

We follow the reference code (``variant="tf1"``, the default); ``variant="keras"`` gives the exact
version. The two differ by 0.3 % in scale, and in both the cut is at 2 standard deviations of the
*underlying* normal, i.e. at about 2.28 (tf1) or 2.27 (keras) times ``sqrt(2 / fan_in)``.
Biases are zero. Weights come from a local ``torch.Generator`` seeded with ``seed`` and are drawn in
``module.modules()`` order, so the global RNG is never touched and one seed gives one network.
"""
from __future__ import annotations

import functools
import math

import torch
from torch import nn

# Standard deviation of a unit normal truncated to [-2, 2] (TF's own constant).
TRUNCATED_STD = 0.87962566103423978
# TF1 contrib's approximate correction for the same truncation (sqrt(1.3) * 0.8796 = 1.0029).
TF1_FACTOR = 1.3
VARIANTS = ("tf1", "keras")


def fan_in(weight: torch.Tensor) -> int:
    """Number of inputs feeding one output unit: ``in_channels * prod(kernel)`` (torch layout)."""
    if weight.dim() < 2:
        raise ValueError(f"expected a weight with at least 2 dims (out, in, ...), found shape {tuple(weight.shape)}")
    return int(weight[0].numel())


def he_std(n_in: int, gain: float = 2.0, variant: str = "tf1") -> float:
    """Standard deviation of the normal *before* truncation at +-2 of it.

    Parameters
    ----------
    n_in : int
        Fan-in of the layer.
    gain : float
        Variance factor (2.0 for ReLU, as TF's default).
    variant : {"tf1", "keras"}
        See the module docstring.
    """
    if variant == "tf1":
        return math.sqrt(TF1_FACTOR * gain / n_in)
    if variant == "keras":
        return math.sqrt(gain / n_in) / TRUNCATED_STD
    raise ValueError(f"unknown init variant {variant!r}; available: {', '.join(VARIANTS)}")


def truncated_normal(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Unit normal draws cut at +-2, float32 on the CPU, by re-drawing the rejects (as TF does).

    ``nn.init.trunc_normal_``'s inverse-CDF sampling (``erfinv``) is ~40x slower, which matters for
    the 17M-weight front-ends; rejection touches only the ~4.6 % of draws beyond 2.
    """
    z = torch.empty(shape).normal_(generator=generator)
    flat = z.view(-1)
    reject = (flat.abs() > 2.0).nonzero().squeeze(1)
    while reject.numel():  # later rounds only look at the previous round's rejects
        flat[reject] = torch.empty(reject.numel()).normal_(generator=generator)
        reject = reject[flat[reject].abs() > 2.0]
    return z


@torch.no_grad()
def truncated_he_normal_(weight: torch.Tensor, generator: torch.Generator, variant: str = "tf1") -> torch.Tensor:
    """Fill ``weight`` in place with truncated He-normal values (fan-in, ReLU gain, cut at 2 std).

    Draws are made on the CPU from ``generator`` (so the values do not depend on the weight's device),
    then copied into ``weight``.
    """
    std = he_std(fan_in(weight), variant=variant)
    weight.copy_(truncated_normal(tuple(weight.shape), generator) * std)
    return weight


@torch.no_grad()
def init_weights(module: nn.Module, seed: int, variant: str = "tf1") -> nn.Module:
    """Re-draw every conv / linear weight of ``module`` from ``seed``; zero their biases.

    Parameters
    ----------
    module : nn.Module
        Any front-end. Layers are visited in ``module.modules()`` (registration) order.
    seed : int
        Seed of the local generator; the global RNG state is left untouched.
    variant : {"tf1", "keras"}
        Truncation correction, see the module docstring.

    Returns
    -------
    nn.Module
        ``module`` itself.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, found {seed!r}")
    generator = torch.Generator(device="cpu").manual_seed(seed)
    for layer in module.modules():
        if isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            truncated_he_normal_(layer.weight, generator, variant)
            if layer.bias is not None:
                layer.bias.zero_()
    return module


def keeps_global_rng(init):
    """Decorate a front-end's ``__init__`` so building it leaves the global RNG as it was.

    ``nn.Conv*`` / ``nn.Linear`` constructors run their default ``reset_parameters``, which draws from
    the global generator; those values are thrown away by ``init_weights`` anyway, so the global
    state is saved and restored around the constructor (CPU generator only: nothing here uses CUDA's).
    """
    @functools.wraps(init)
    def wrapper(*args, **kwargs):
        with torch.random.fork_rng(devices=[]):
            return init(*args, **kwargs)
    return wrapper
