"""Seconds per training step / epoch, and the relative cost of the SampleCNN blocks.

``python -m benchmarks.bench_train`` times, on random inputs (no dataset needed):

1. SampleCNN training steps (forward + backward + SGD) of each block against ``basic``, next to the
   TASLP 2019 Table III figures (SE 1.09x parameters / 1.08x time, Res-2 2.20x / 1.92x, ReSE-2
   2.29x / 2.10x);
2. seconds per epoch of front-end + Pons back-end training at the small setting, for an epoch of
   ``--clips`` clips of ``--input-seconds``.

The machine may be shared: every figure is the median of ``--repeats`` timings. CUDA (``--device``)
times under mixed precision, as training does. The last line printed is the JSON path written.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from architectures.samplecnn import SEGMENT_SAMPLES, SMALL_CHANNELS, CHANNELS, SampleCNN
from trained.train import build_model
from toolkit.device import resolve_device

PAPER = {"se": (1.09, 1.08), "res2": (2.20, 1.92), "rese2": (2.29, 2.10)}


def _step_seconds(model, x, y, device, repeats: int) -> float:
    model.train().to(device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, nesterov=True)
    loss_fn = torch.nn.CrossEntropyLoss()
    x, y = x.to(device), y.to(device)
    times = []
    for i in range(repeats + 1):  # the first step warms up allocators and kernels
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.float16, enabled=device.type == "cuda"):
            loss = loss_fn(model.logits(x).float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def bench(device: str = "cpu", width: str = "small", batch_size: int = 4, repeats: int = 3,
          archs=("sample-level", "7x86", "vgg"), clips: int = 32, input_seconds: float = 3.0,
          out: str = "runs/benchmarks/bench_train.json") -> Path:
    """Run both benchmarks, print a table and write the numbers to ``out``."""
    dev = resolve_device(device)
    torch.manual_seed(0)
    channels = CHANNELS if width == "large" else SMALL_CHANNELS
    x = torch.randn(batch_size, SEGMENT_SAMPLES)
    y = torch.randint(0, 50, (batch_size,))
    rows, base = [], None
    print(f"SampleCNN ({width}), batch {batch_size} x {SEGMENT_SAMPLES} samples, {dev.type}")
    print(f"{'block':<7} {'params':>10} {'x basic':>8} {'paper':>6} {'s/step':>8} {'x basic':>8} {'paper':>6}")
    for block in ("basic", "se", "res2", "rese2"):
        m = SampleCNN(50, block, channels=channels)
        n = sum(p.numel() for p in m.parameters())
        s = _step_seconds(m, x, y, dev, repeats)
        base = base or (n, s)
        pp, pt = PAPER.get(block, (1.0, 1.0))
        rows.append({"block": block, "params": n, "param_ratio": n / base[0], "paper_param_ratio": pp,
                     "s_per_step": s, "time_ratio": s / base[1], "paper_time_ratio": pt})
        print(f"{block:<7} {n:>10,} {n / base[0]:>8.2f} {pp:>6.2f} {s:>8.3f} {s / base[1]:>8.2f} {pt:>6.2f}")
    epochs = []
    print(f"\nfront-end + Pons back-end ({width}), epoch of {clips} clips x {input_seconds} s, "
          f"batch {batch_size}, {dev.type}")
    for arch in archs:
        model, _, _ = build_model(arch, 10, width=width, input_seconds=input_seconds)
        kind = model.input_kind
        from audiodata import audio
        n_samples, n_frames = audio.input_lengths(input_seconds)
        xb = torch.randn(batch_size, n_samples) if kind == "waveform" else \
            torch.randn(batch_size, n_frames, audio.N_MELS)
        s = _step_seconds(model, xb, torch.randint(0, 10, (batch_size,)), dev, repeats)
        per_epoch = s * int(np.ceil(clips / batch_size))
        epochs.append({"arch": arch, "s_per_step": s, "s_per_epoch": per_epoch})
        print(f"{arch:<16} {s:>8.3f} s/step  {per_epoch:>8.2f} s/epoch")
    res = {"device": dev.type, "width": width, "batch_size": batch_size, "repeats": repeats,
           "threads": torch.get_num_threads(), "samplecnn": rows, "frontends": epochs,
           "clips": clips, "input_seconds": input_seconds}
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=2) + "\n")
    return path


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_train", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--width", default="small", choices=["small", "large"])
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--archs", nargs="+", default=["sample-level", "7x86", "vgg"])
    p.add_argument("--clips", type=int, default=32, help="clips per epoch for the front-end timing")
    p.add_argument("--input-seconds", type=float, default=3.0)
    p.add_argument("--out", default="runs/benchmarks/bench_train.json")
    a = p.parse_args(argv)
    print(bench(**vars(a)))


if __name__ == "__main__":
    main()
