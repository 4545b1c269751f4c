"""Time before work: an estimate of an extraction before it starts, and the clips done as they are done.

:func:`measure_rate` times this machine's convolutions for about half a second (once per device and
process); :func:`part_seconds` turns a planned feature set into seconds: its GFLOP per clip
(``architectures/cost.py``) over that rate, or, for a front-end whose cost is not a GFLOP count (the MFCC
baseline, an opaque HEAR module, a module that cannot run on the meta device), one clip timed through it.

:func:`listening` lets a caller that runs several extractions (``python -m studies``) follow every clip
computed, to draw one overall progress line; while it listens, each extraction's own bar is transient.
"""
from __future__ import annotations

import contextlib
import contextvars
import time

import torch

__all__ = ["measure_rate", "part_seconds", "fmt_s", "listening", "listener", "clips_done"]

_RATES: dict = {}
_LISTENER = contextvars.ContextVar("randomcnn_clips_listener", default=None)


# The shipped front-ends run at 0.79-1.03 of the float32 matmul rate (README "Benchmarks",
# docs/performance.md); a network's time is estimated at this fraction of the measured rate.
MATMUL_FRACTION = 0.85


def measure_rate(device: torch.device, seconds: float = 0.5) -> float:
    """GFLOP/s a front-end reaches here: the float32 rate of a 1024 x 1024 matmul, repeated for about
    ``seconds``, times ``MATMUL_FRACTION``. (A small 3x3 convolution, the former measure, runs at about
    half the matmul rate while the front-ends' GEMM paths run near it, so it overstated their time.)"""
    a = torch.randn(1024, 1024, device=device)
    b = torch.randn(1024, 1024, device=device)
    flop = 2 * 1024 ** 3
    n = 0
    with torch.inference_mode():
        a @ b  # warm-up (allocator, kernel choice)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        while True:
            a @ b
            n += 1
            if device.type == "cuda":
                torch.cuda.synchronize()
            if time.perf_counter() - t0 >= seconds:
                break
    return MATMUL_FRACTION * n * flop / (time.perf_counter() - t0) / 1e9


def rate_of(device: torch.device) -> float:
    """:func:`measure_rate`, measured once per device in this process."""
    key = str(device)
    if key not in _RATES:
        _RATES[key] = measure_rate(device)
    return _RATES[key]


TIME_BELOW_S = 1.0  # a network whose clip should take less than this is timed on one clip instead


def part_seconds(run, rate_gflops: float, prepared_one=None) -> tuple[float, str]:
    """``(seconds per clip, how it was found)`` for a planned extraction (``features.extract.Run``).

    Large networks: their GFLOP per clip over the measured rate (their GEMMs run near the matmul rate).
    Small ones (a clip under ``TIME_BELOW_S`` by that count), the MFCC baseline and modules of unknown
    cost: one clip timed through the model (after one untimed pass), since small layers run far below
    the matmul rate (the small width's 16-filter convolutions ran at a fifth of it). ``prepared_one`` is
    a callable giving one prepared input of the run; without it the GFLOP count is all there is."""
    from architectures import cost
    from audiodata import audio
    spec = run.spec
    g = None
    if not getattr(run.model, "opaque_cost", False):
        shape = (spec.length,) if spec.kind == "waveform" else (spec.length, audio.N_MELS)
        try:
            g = cost.flops_per_clip(run.model, shape) / 1e9
        except Exception:  # a module that cannot run on the meta device
            g = None
    by_count = (g / rate_gflops, f"{g:.3g} GFLOP a clip at {rate_gflops:.0f} GFLOP/s") if g and spec.kind != "clip" \
        else None
    if by_count is not None and (by_count[0] >= TIME_BELOW_S or prepared_one is None):
        return by_count
    if prepared_one is None:
        return 0.0, "cost unknown"
    from features.compute import batch_features
    x = prepared_one()
    if x is None:
        return by_count or (0.0, "cost unknown")
    dev = next(iter(run.model.parameters()), torch.empty(0)).device
    with torch.inference_mode():  # a measurement, not one of the run's batches
        t = torch.from_numpy(x).to(dev)
        windows = getattr(spec, "crop", "start") == "windows" and spec.kind != "clip"
        one = [t] if spec.kind == "clip" else t if windows else t[None]  # windows: the clip's stack is a batch
        batch_features(run.model, one)  # warm-up: allocator, kernel choice, first-call set-up
        t0 = time.perf_counter()
        batch_features(run.model, one)
        took = time.perf_counter() - t0
    return took, "one clip timed"


def fmt_s(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


@contextlib.contextmanager
def listening(fn):
    """Within the block, every extraction calls ``fn(n_clips)`` as clips are computed."""
    token = _LISTENER.set(fn)
    try:
        yield
    finally:
        _LISTENER.reset(token)


def listener():
    return _LISTENER.get()


def clips_done(n: int) -> None:
    fn = _LISTENER.get()
    if fn is not None:
        fn(n)
