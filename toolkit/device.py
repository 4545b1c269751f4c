"""Where the networks run, in which arithmetic, and what happens when a batch does not fit.

- ``resolve_device("auto" | "cpu" | "cuda[:N]")``: ``auto`` is CUDA when torch sees a GPU, else the CPU.
- ``PRECISIONS``: ``float32`` (the study's, the default: IEEE float32 everywhere, TF32 tensor cores off),
  ``tf32`` (CUDA only: float32 storage, TF32 tensor-core matmuls and convolutions, ~10-bit mantissa
  products), ``bf16`` (weights, inputs and layer outputs in bfloat16, ``cast_model``; the per-layer means
  are still accumulated in float32). Casting the whole network, rather than autocasting, keeps the
  hand-written fast paths (which write into preallocated maps of the input's dtype) valid; a front-end
  without parameters (the MFCC baseline) stays float32. ``precision_context(dev, precision)`` sets the
  TF32 flags for the duration of a block and restores torch's flags afterwards.
- ``AdaptiveBatch``: runs a batch and, when the device runs out of memory, halves the batch size and goes
  on with the same clips (never skipping one), remembering the smaller size for the following batches.
- ``device_record(dev)``: the device model, driver and CUDA versions, recorded with every figure.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["PRECISIONS", "DeviceError", "resolve_device", "check_precision", "resolve_precision", "autocast",
           "deterministic", "precision_context",
           "compute_dtype", "cast_model", "is_out_of_memory", "AdaptiveBatch", "device_record"]

from toolkit.settings import PRECISIONS, TRAIN_PRECISIONS  # noqa: E402 - the one table of precisions


class DeviceError(ValueError):
    """A device or precision that cannot be used here, or a batch that fits nowhere."""


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    device = str(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device != "cpu" and not device.startswith("cuda"):
        raise DeviceError(f"unknown device {device!r}; expected auto, cpu or cuda[:N]")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(f"--device {device} was asked for but torch sees no CUDA device "
                          f"(torch {torch.__version__}); use --device cpu or auto")
    return torch.device(device)


def check_precision(precision: str, dev: torch.device) -> str:
    """``precision`` if it can run on ``dev``; otherwise a ``DeviceError`` saying what would."""
    if precision not in PRECISIONS:
        raise DeviceError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    if precision == "tf32" and dev.type != "cuda":
        raise DeviceError("--precision tf32 uses NVIDIA tensor cores and needs --device cuda; on the CPU "
                          "use float32 (the study's) or bf16")
    return precision


@contextlib.contextmanager
def precision_context(dev: torch.device, precision: str = "float32"):
    """Run the enclosed block in ``precision`` on ``dev``; torch's global flags are restored after it."""
    check_precision(precision, dev)
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32  # PyTorch allows TF32 for cuDNN convs by default: not here
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def resolve_precision(precision: str, device_type: str, training: bool = False) -> str:
    """The one rule for ``--precision``: the precision a run uses on a device of ``device_type``.

    Extraction: ``float32``, ``tf32`` (CUDA only) or ``bf16`` (``PRECISIONS``). Training also takes
    ``fp16`` (CUDA only: autocast float16 with a gradient scaler) and ``auto``: ``fp16`` on CUDA (the
    mixed precision it has always used there), ``float32`` on the CPU; ``bf16`` trains in autocast
    bfloat16. Anything else is a ``DeviceError`` naming ``--precision``.
    """
    allowed = TRAIN_PRECISIONS if training else PRECISIONS
    if precision == "auto" and training:
        return "fp16" if device_type == "cuda" else "float32"
    if precision not in allowed:
        raise DeviceError(f"--precision {precision}: expected one of {', '.join(allowed)}"
                          + (", auto" if training else ""))
    if precision in ("tf32", "fp16") and device_type != "cuda":
        raise DeviceError(f"--precision {precision} needs --device cuda; on the CPU use float32 (the study's) "
                          "or bf16")
    return precision


@contextlib.contextmanager
def autocast(dev: torch.device, precision: str):
    """The block in ``precision`` as training and prediction run it: ``float32`` / ``tf32`` through
    :func:`precision_context`; ``fp16`` / ``bf16`` as autocast mixed precision (TF32 off for what stays
    float32). Torch's flags are restored afterwards."""
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
    with precision_context(dev, "tf32" if precision == "tf32" else "float32"):
        with torch.autocast(dev.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            yield


@contextlib.contextmanager
def fixed_algorithms():
    """cuDNN without benchmark search and with deterministic kernels for the block (extraction: the same
    seed gives the same features); both flags are restored afterwards."""
    saved = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved


@contextlib.contextmanager
def deterministic(dev: torch.device):
    """Fixed algorithms for the block (cuDNN without benchmark search, deterministic kernels, torch's
    deterministic algorithms with warnings), so the same seed gives the same numbers; every flag is
    restored afterwards."""
    saved = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
             torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    if dev.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[0], saved[1]
        torch.use_deterministic_algorithms(saved[2], warn_only=saved[3])


def compute_dtype(model) -> torch.dtype:
    """The dtype a front-end computes in: that of its floating parameters (float32 without any)."""
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def cast_model(model, precision: str):
    """``model`` (in place) in the storage type of ``precision``: bfloat16 for ``bf16`` when it has
    floating parameters, unchanged otherwise. Returns the model."""
    if precision == "bf16" and any(p.is_floating_point() for p in model.parameters()):
        model.to(torch.bfloat16)
    return model


def is_out_of_memory(exc: BaseException) -> bool:
    """True for the device running out of memory (CUDA's error, or an allocator's message saying so)."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


@dataclass
class AdaptiveBatch:
    """Compute ``fn`` over a batch in pieces of at most ``size`` rows, halving ``size`` on out-of-memory.

    ``fn(x) -> np.ndarray`` maps ``(n, ...)`` inputs to ``(n, d)`` outputs, row by row (a row's output
    must not depend on its batch mates, which holds for every front-end without ``--batchnorm``).
    ``halvings`` records each reduction as ``(from, to)``.
    """
    size: int
    halvings: list = field(default_factory=list)

    def __post_init__(self):
        if int(self.size) < 1:
            raise DeviceError(f"batch size must be at least 1, got {self.size}")
        self.size = int(self.size)

    def __call__(self, fn, x: np.ndarray) -> np.ndarray:
        out, start = [], 0
        while start < len(x):
            piece = x[start:start + self.size]
            try:
                out.append(fn(piece))
            except Exception as e:  # noqa: BLE001 - only out-of-memory is handled, the rest re-raised
                if not is_out_of_memory(e):
                    raise
                if self.size == 1:
                    raise DeviceError("one clip does not fit in the device's memory even at batch size 1; "
                                      "use a shorter --input-seconds, the small width, or --device cpu") from None
                new = self.size // 2
                self.halvings.append((self.size, new))
                self.size = new
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                continue
            start += len(piece)
        return np.concatenate(out) if len(out) > 1 else out[0]


def device_record(dev: torch.device) -> dict:
    """What ran the numbers: for CUDA the GPU model, its memory, the driver and CUDA versions."""
    rec = {"type": dev.type, "torch": torch.__version__}
    if dev.type != "cuda":
        return rec
    idx = dev.index if dev.index is not None else torch.cuda.current_device()
    props = torch.cuda.get_device_properties(idx)
    rec.update(name=props.name, memory_gib=round(props.total_memory / 2**30, 1),
               capability=f"{props.major}.{props.minor}", cuda=torch.version.cuda,
               cudnn=torch.backends.cudnn.version())
    try:
        rec["driver"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader", f"--id={idx}"],
            capture_output=True, text=True, timeout=10, check=True).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        rec["driver"] = None
    return rec
