"""Throughput of every front-end on this machine, as a fraction of its float32 matmul rate.

For each architecture: analytic GFLOP per clip (``architectures.cost``), the best-of-``--repeats`` time of
the features (the network and the per-layer means: ``extract_means`` where a front-end has one, else
the means of ``extract_features``' maps) over ``--clips`` random clips in batches of ``--batch-size``
under ``torch.inference_mode()`` (what feature extraction runs), the GFLOP/s achieved and its ratio to the
float32 matmul rate measured right beside it (best of a few 2048 x 2048 products just before and just
after the model, so a shared machine's load hits both sides of the ratio alike). ``--compare-plain``
also times the straightforward layers (``fast=False``), prints plain time / fast time, and checks that the
layer means (the features) agree. The 1-minute load average before and after the run is printed: a
figure taken with other work on the machine (load above the thread count before the run, or above the
thread count plus one after it, this run's own threads included) is a lower bound.

    python benchmarks/bench_architectures.py --clips 8 --compare-plain               # the issue's figures
    python benchmarks/bench_architectures.py --archs vgg --seconds 7.3 --repeats 2    # a quicker look

Writes a CSV (default ``runs/benchmarks/architectures_<width>.csv``); the last line of stdout is its path.
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import platform
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from architectures import ARCHITECTURES, build  # noqa: E402
from benchmarks.cpuinfo import cpu_info, cpu_line  # noqa: E402
from architectures.cost import count_params, flops_per_clip  # noqa: E402
from features.compute import batch_features  # noqa: E402
from toolkit.provenance import atomic_write_bytes  # noqa: E402

N_SAMPLES, N_FRAMES, N_MELS, SAMPLE_RATE = 350000, 1376, 96, 12000  # the study's inputs (audiodata/audio.py)
HOP = 256  # spectrogram hop: 1376 frames ~ 350000 samples


def matmul_gflops(size: int = 2048, repeats: int = 3) -> float:
    """Best-of-``repeats`` float32 ``torch.mm`` rate of two ``size`` x ``size`` matrices, in GFLOP/s."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen)
    b = torch.randn(size, size, generator=gen)
    out = torch.empty(size, size)
    best = float("inf")
    with torch.inference_mode():
        torch.mm(a, b, out=out)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            torch.mm(a, b, out=out)
            best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9


def time_model(model: torch.nn.Module, x: torch.Tensor, batch_size: int, repeats: int,
               min_seconds: float = 1.0) -> float:
    """Best-of-``repeats`` seconds per pass over all clips of ``x`` in batches, computing their features
    (``features.compute.batch_features``: the network and the per-layer means, what extraction runs).
    A timed run makes whole passes until ``min_seconds`` have gone by and is divided by their number, so
    that the light front-ends (a few ms a batch) are not timed on one batch's worth of noise."""
    best = float("inf")
    with torch.inference_mode():
        batch_features(model, x[:batch_size])  # warm-up: MKL-DNN primitive creation, allocator
        for _ in range(repeats):
            passes, start = 0, time.perf_counter()
            while True:
                for i in range(0, x.shape[0], batch_size):
                    batch_features(model, x[i:i + batch_size])
                passes += 1
                elapsed = time.perf_counter() - start
                if elapsed >= min_seconds:
                    break
            best = min(best, elapsed / passes)
    return best


def input_shape(model: torch.nn.Module, seconds: float | None) -> tuple[int, ...]:
    """One clip's shape at the study's length, or at ``seconds`` (at least the model's minimum)."""
    if model.input_kind == "waveform":
        return (N_SAMPLES if seconds is None else max(int(seconds * SAMPLE_RATE), 3 ** 7),)
    return (N_FRAMES if seconds is None else max(int(seconds * SAMPLE_RATE / HOP), 1280), N_MELS)


def bench_architectures(archs: list[str] | None = None, width: str = "large", clips: int = 8,
                        batch_size: int = 8, repeats: int = 3, seconds: float | None = None,
                        threads: int | None = None, compare_plain: bool = False,
                        output: str | None = None) -> Path:
    """Benchmark ``archs`` (default all) and write a CSV; returns its path. Keywords equal the CLI flags."""
    archs = list(archs or ARCHITECTURES)
    if threads:
        torch.set_num_threads(threads)
    load_before = os.getloadavg()[0]
    cpu = cpu_info()
    print(cpu_line(cpu))
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; 1-min load average {load_before:.1f}; "
          f"float32 matmul {matmul_gflops():.1f} GFLOP/s")
    gen = torch.Generator().manual_seed(0)
    rows = []
    for name in tqdm(archs, desc="architectures", file=sys.stderr):
        model = build(name, width=width, seed=0)
        if model.input_kind == "clip":  # the MFCC baseline: librosa on whole clips, no GEMM workload
            tqdm.write(f"{name}: skipped (no network to time against the matmul rate: librosa MFCCs of "
                       "whole clips)", file=sys.stderr)
            continue
        shape = input_shape(model, seconds)
        x = torch.randn((clips, *shape), generator=gen)
        if model.input_kind == "spectrogram":
            x = x * 10 - 30  # log-mel-like dB values
        gflop = flops_per_clip(model, shape) / 1e9
        before = matmul_gflops()
        seconds_fast = time_model(model, x, batch_size, repeats)
        peak = max(before, matmul_gflops())
        row = {"arch": name, "width": width, "input": "x".join(map(str, shape)), "params": count_params(model),
               "gflop_per_clip": round(gflop, 3), "clips_per_s": round(clips / seconds_fast, 3),
               "gflops": round(gflop * clips / seconds_fast, 1), "matmul_gflops": round(peak, 1),
               "fraction_of_matmul": round(gflop * clips / seconds_fast / peak, 3)}
        if compare_plain and hasattr(model, "fast"):
            model.fast = False
            before = matmul_gflops()
            seconds_plain = time_model(model, x, batch_size, repeats)
            peak_plain = max(before, matmul_gflops())
            row["plain_fraction_of_matmul"] = round(gflop * clips / seconds_plain / peak_plain, 3)
            # the ratio of fractions: each time against the matmul rate measured beside it
            row["fast_over_plain"] = round(row["fraction_of_matmul"] / row["plain_fraction_of_matmul"], 2)
            with torch.inference_mode():
                slow = batch_features(model, x[:2])
                model.fast = True
                fast = batch_features(model, x[:2])
            row["features_max_rel_diff"] = float((fast - slow).abs().max() / slow.abs().max().clamp_min(1e-30))
        rows.append(row)
        tqdm.write(", ".join(f"{k} {v}" for k, v in row.items()), file=sys.stderr)  # as it comes: runs are long
    load_after = os.getloadavg()[0]
    # before: other work only; after: this run's own threads count too (a load of `threads` is itself)
    quiet = load_before < torch.get_num_threads() and load_after < torch.get_num_threads() + 1
    print(f"1-min load average after: {load_after:.1f}: "
          + ("a quiet machine" if quiet else "a LOADED machine, the figures are lower bounds"))
    columns = list(dict.fromkeys(k for row in rows for k in row))
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    print("  ".join(c.rjust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row.get(c, "")).rjust(widths[c]) for c in columns))
    path = Path(output or f"runs/benchmarks/architectures_{width}.csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {"batch_size": batch_size, "clips": clips, "repeats": repeats, "threads": torch.get_num_threads(),
             "load_before": round(load_before, 2), "load_after": round(load_after, 2),
             "machine": f"{cpu['model']} x{os.cpu_count()} ({' '.join(cpu['vector_extensions'])})"}
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns + list(extra), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, **extra})
    return atomic_write_bytes(path, buf.getvalue().encode("utf-8"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", choices=list(ARCHITECTURES), default=None, metavar="NAME",
                        help=f"architectures to time: {', '.join(ARCHITECTURES)} (default: all)")
    parser.add_argument("--width", choices=["large", "small"], default="large",
                        help="filter-count setting (default: large)")
    parser.add_argument("--clips", type=int, default=8, help="random clips per architecture (default: 8)")
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=8,
                        help="clips per forward pass, features.extract's default (default: 8)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed passes over the clips, the best is kept (default: 3)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="clip length in seconds (default: the study's 350000 samples / 1376 frames)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--compare-plain", dest="compare_plain", action="store_true",
                        help="also time the plain layers (fast=False) and compare their features")
    parser.add_argument("--output", default=None,
                        help="CSV path (default: runs/benchmarks/architectures_<width>.csv)")
    args = parser.parse_args(argv)
    print(bench_architectures(**vars(args)))


if __name__ == "__main__":
    main()
