"""Synflow of study front-ends (issue 21): the value ``studies.proxies`` computes agrees with a float64
computation written out here (model and input cast to double, every weight and buffer made absolute, an
all-ones clip of the study's full input, R = sum of the output, sum |W dR/dW| over the front-end's
conv / linear weights).

Measured (small width, seed 0, the study's 350000-sample / 1376-frame input): float32 against float64
differs by 9.1e-7 relative for sample-level and 1.25e-6 for frame-level, so float32 does not reach 1e-6
everywhere; the implementation computes in float64 always (as zero-cost-nas ``synflow.py`` does,
``net.double()``), and agrees with the float64 computation here to rounding (< 1e-10; the test asks for
that, tighter than the 1e-6 the issue asks, so that a float32 implementation fails it). The float32
figures are not asserted: they depend on the platform's reduction order.
"""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from studies import proxies as P


def _study_net(arch):
    from architectures.backend import PonsBackend, frontend_output, init_he_normal
    from features.extract import build_frontend, input_spec
    fe = build_frontend(arch, width="small", seed=0)
    spec = input_spec(fe, None)  # the study's full input
    shape = (spec.length,) if fe.input_kind == "waveform" else (spec.length, 96)
    fe.fast = False
    x = torch.zeros(2, *shape)
    with torch.no_grad():
        channels = frontend_output(fe.eval(), x[:1]).shape[1]
    return P.Judged(fe, init_he_normal(PonsBackend(channels, 6, batchnorm=False), 0)).eval(), x


def _synflow_by_hand(net, shape, dtype):
    model = copy.deepcopy(net).to(dtype)
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.abs())
    model.zero_grad(set_to_none=True)
    model(torch.ones(1, *shape, dtype=dtype)).sum().backward()
    layers = [m for m in model.frontend.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]
    assert layers and all(m.weight.grad is not None for m in layers)
    return sum(float((m.weight.detach().double() * m.weight.grad.double()).abs().sum()) for m in layers)


@pytest.mark.parametrize("arch", ["sample-level", "frame-level"])
def test_synflow_agrees_with_float64_computation(arch):
    net, x = _study_net(arch)
    got, note = P.synflow(net, x)
    ref64 = _synflow_by_hand(net, x.shape[1:], torch.float64)
    assert note == "" and got > 0 and abs(got - ref64) / ref64 < 1e-10, (got, ref64)
    # the network scored is left as it was (float32, signed weights)
    first = next(m for m in net.frontend.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d)))
    assert first.weight.dtype == torch.float32 and (first.weight < 0).any()

