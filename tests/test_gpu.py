"""CUDA correctness (``-m gpu``; deselected by default and skipped without a CUDA device).

- Every front-end's features on CUDA equal the CPU's to 1e-5 relative (float32, TF32 off: cuDNN would
  otherwise use TF32 for float32 convs on Ampere and later, about 1e-3 relative), at both widths.
- A training step of SampleCNN and of a front-end + the study's back-end runs on CUDA in float32 and in
  mixed precision (autocast + GradScaler), gives finite losses and lowers the loss on a repeated batch.

``benchmarks/gpu_check.py`` runs these first on a GPU machine.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from architectures import FRONTENDS, build
from architectures.backend import FrontEndClassifier, PonsBackend
from architectures.samplecnn import SEGMENT_SAMPLES, SampleCNN
from features.compute import batch_features
from toolkit.device import precision_context

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

CNN = [n for n, f in FRONTENDS.items() if f.input_kind != "clip"]
REL_TOL = 1e-5


def _input(model, n=2, seed=1):
    gen = torch.Generator().manual_seed(seed)
    if model.input_kind == "waveform":
        return torch.randn((n, 3 * 12000), generator=gen) * 0.1
    return torch.randn((n, 1376, 96), generator=gen) * 10 - 30  # vgg's pools need 1280 frames


@pytest.mark.parametrize("width", ["large", "small"])
@pytest.mark.parametrize("name", CNN)
def test_cuda_features_equal_cpu(name, width):
    model = build(name, width=width, seed=2)
    x = _input(model)
    dev = torch.device("cuda")
    with torch.inference_mode():
        cpu = batch_features(model, x)
        with precision_context(dev, "float32"):  # TF32 off for matmuls and cuDNN convs
            gpu = batch_features(model.to(dev), x.to(dev)).cpu()
    rel = float((gpu - cpu).abs().max() / cpu.abs().max())
    assert rel <= REL_TOL, f"{name} {width}: CUDA vs CPU features differ by {rel:.2e} relative"


def _train_steps(model, x, y, amp: bool, steps: int = 5):
    dev = torch.device("cuda")
    model = model.to(dev).train()
    x, y = x.to(dev), y.to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    losses = []
    with precision_context(dev, "float32"):
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
                loss = nn.functional.cross_entropy(model(x), y)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            losses.append(float(loss))
    return losses


@pytest.mark.parametrize("amp", [False, True], ids=["float32", "mixed"])
def test_samplecnn_training_step(amp):
    torch.manual_seed(0)
    model = SampleCNN(n_classes=4, channels=(16,) * 10)
    x = torch.randn(8, SEGMENT_SAMPLES) * 0.1
    y = torch.arange(8) % 4
    losses = _train_steps(model, x, y, amp)
    assert all(torch.isfinite(torch.tensor(losses))), losses
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize("amp", [False, True], ids=["float32", "mixed"])
def test_frontend_backend_training_step(amp):
    torch.manual_seed(0)
    frontend = build("vgg", width="small", seed=0)
    for p in frontend.parameters():
        p.requires_grad_(True)
    x = _input(frontend, n=8)
    with torch.no_grad():
        channels = frontend(x[:1]).shape[1]
    model = FrontEndClassifier(frontend, PonsBackend(channels, 4))
    y = torch.arange(8) % 4
    losses = _train_steps(model, x, y, amp)
    assert all(torch.isfinite(torch.tensor(losses))), losses
    assert losses[-1] < losses[0], losses
