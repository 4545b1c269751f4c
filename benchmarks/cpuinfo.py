"""The CPU a benchmark ran on: its model and the vector extensions that decide the matmul and solver
speeds (from ``/proc/cpuinfo``; ``platform`` where that is missing), printed at the top of a run and
written beside its figures."""
from __future__ import annotations

import os
import platform

__all__ = ["VECTOR_FLAGS", "cpu_info", "cpu_line"]

# The extensions worth naming, in this order (x86 flag names as /proc/cpuinfo spells them; ARM's too).
VECTOR_FLAGS = ("sse4_2", "avx", "fma", "avx2", "avx_vnni", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "amx_fp16",
                "asimd", "sve", "sve2", "bf16", "i8mm")


def cpu_info(path: str = "/proc/cpuinfo") -> dict:
    """``{"model", "vector_extensions" (list, VECTOR_FLAGS order), "logical_cpus", "usable_cpus"}``."""
    model, flags = None, set()
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key in ("model name", "hardware", "cpu model") and model is None:
                    model = value.strip()
                elif key in ("flags", "features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {"model": model or platform.processor() or platform.machine() or "unknown",
            "vector_extensions": [f for f in VECTOR_FLAGS if f in flags],
            "logical_cpus": os.cpu_count(), "usable_cpus": usable}


def cpu_line(info: dict | None = None) -> str:
    """One line for the top of a benchmark's output."""
    info = info or cpu_info()
    ext = " ".join(info["vector_extensions"]) or "none found"
    return (f"CPU: {info['model']}; {info['usable_cpus']} of {info['logical_cpus']} logical CPUs usable; "
            f"vector extensions: {ext}")
