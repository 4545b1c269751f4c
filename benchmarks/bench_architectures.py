"""Throughput of every front-end on this machine, against its float32 matmul rate.

For each architecture: analytic GFLOP per clip (``architectures.cost``), clips/s of a forward pass
(``extract_features``, which is what feature extraction runs) under ``torch.inference_mode()``,
the GFLOP/s achieved and its fraction of the machine's matmul rate. ``--compare-plain`` also times the
straightforward implementation (``fast=False``) and checks both give the same features.

    python benchmarks/bench_architectures.py --width large --clips 2

Writes a CSV (default ``runs/bench/architectures_<width>.csv``); the last line of stdout is its path.
"""
from __future__ import annotations

import argparse
import csv
import platform
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from architectures import ARCHITECTURES, build  # noqa: E402
from architectures.cost import count_params, flops_per_clip  # noqa: E402

N_SAMPLES, N_FRAMES, N_MELS = 350000, 1376, 96  # the study's input sizes (audiodata/audio.py)


def matmul_gflops(size: int = 4096, repeats: int = 5) -> float:
    """Best-of-``repeats`` float32 ``torch.mm`` rate of two ``size`` x ``size`` matrices, in GFLOP/s."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen)
    b = torch.randn(size, size, generator=gen)
    best = float("inf")
    with torch.inference_mode():
        torch.mm(a, b)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9


def time_model(model: torch.nn.Module, x: torch.Tensor, batch_size: int, repeats: int) -> float:
    """Best-of-``repeats`` seconds to run ``extract_features`` over all clips of ``x`` in batches."""
    best = float("inf")
    with torch.inference_mode():
        model.extract_features(x[:1])  # warm-up: MKL-DNN primitive creation, allocator
        for _ in range(repeats):
            start = time.perf_counter()
            for i in range(0, x.shape[0], batch_size):
                model.extract_features(x[i:i + batch_size])
            best = min(best, time.perf_counter() - start)
    return best


def bench_architectures(archs: list[str] | None = None, width: str = "large", clips: int = 2,
                        batch_size: int = 1, repeats: int = 1, threads: int | None = None,
                        compare_plain: bool = False, output: str | None = None) -> Path:
    """Benchmark ``archs`` (default all) and write a CSV; returns its path. Keywords equal the CLI flags."""
    archs = list(archs or ARCHITECTURES)
    if threads:
        torch.set_num_threads(threads)
    peak = matmul_gflops()
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads: float32 matmul {peak:.1f} GFLOP/s")
    gen = torch.Generator().manual_seed(0)
    rows = []
    for name in tqdm(archs, desc="architectures", file=sys.stderr):
        model = build(name, width=width, seed=0)
        shape = (N_SAMPLES,) if model.input_kind == "waveform" else (N_FRAMES, N_MELS)
        x = torch.randn((clips, *shape), generator=gen)
        gflop = flops_per_clip(model, shape) / 1e9
        # the machine is shared: re-measure the matmul rate next to each model so the fraction compares
        # like with like (best of the global and the local measurement)
        local_peak = max(peak, matmul_gflops(2048, 3))
        seconds = time_model(model, x, batch_size, repeats)
        row = {"arch": name, "width": width, "params": count_params(model), "gflop_per_clip": round(gflop, 3),
               "clips_per_s": round(clips / seconds, 3), "gflops": round(gflop * clips / seconds, 1),
               "matmul_gflops": round(local_peak, 1),
               "fraction_of_matmul": round(gflop * clips / seconds / local_peak, 3)}
        if compare_plain and hasattr(model, "fast"):
            model.fast = False
            plain = time_model(model, x, batch_size, repeats)
            row["plain_clips_per_s"] = round(clips / plain, 3)
            row["speedup"] = round(plain / seconds, 2)
            with torch.inference_mode():
                slow = model.extract_features(x[:1])
                model.fast = True
                fast = model.extract_features(x[:1])
            row["max_rel_diff"] = float(max((a - b).abs().max() / b.abs().max().clamp_min(1e-30)
                                            for a, b in zip(fast, slow)))
        rows.append(row)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    print("  ".join(c.rjust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row.get(c, "")).rjust(widths[c]) for c in columns))
    path = Path(output or f"runs/bench/architectures_{width}.csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns + ["threads"])
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "threads": torch.get_num_threads()})
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--archs", nargs="+", choices=list(ARCHITECTURES), default=None,
                        help="architectures to time (default: all)")
    parser.add_argument("--width", choices=["large", "small"], default="large", help="filter-count setting")
    parser.add_argument("--clips", type=int, default=2, help="random clips of the study's length per arch")
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=1, help="clips per forward pass")
    parser.add_argument("--repeats", type=int, default=1, help="timed passes over the clips (best is kept)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--compare-plain", dest="compare_plain", action="store_true",
                        help="also time the straightforward implementation and check equal outputs")
    parser.add_argument("--output", default=None, help="CSV path (default runs/bench/architectures_<width>.csv)")
    args = parser.parse_args(argv)
    print(bench_architectures(**vars(args)))


if __name__ == "__main__":
    main()
