"""Benchmark of the Ray engine against the local engine on one machine: clips/s and overhead per clip.

For each architecture, on ``--clips`` generated 30 s clips at 22.05 kHz (decode cache warmed first, so
both engines see the same decoding cost):

- local engine (``--workers`` decode threads, the network in this process);
- Ray engine with 1 and with 2 workers (``--ray-workers``), each worker a Ray actor with its own model;
- the Ray engine's start-up (``ray.init`` of a local instance) reported apart, as is the first run's
  worker start (one Python + torch import per actor), since both are paid once per session.

Overhead per clip = (Ray wall time - the actors' start-up - local wall time) / clips; the start-up
(measured apart: start the actors with the model, wait for them) is a fixed cost per run. Also checks that every Ray feature set is byte-identical to the local one. With a
CUDA device in the cluster, ``--device cuda`` measures GPU-actor throughput (one GPU per actor).

    python benchmarks/bench_ray.py --arch sample-level vgg --width small --clips 32
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
from tqdm import tqdm  # noqa: E402

from features import extract as ex, ray_engine  # noqa: E402
from toolkit.ray import connect  # noqa: E402


def make_clips(folder: Path, n: int, seconds: float = 30.0, sr: int = 22050) -> Path:
    """``n`` noisy tone clips in two class folders (a ``folder`` dataset)."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    for i in tqdm(range(n), desc="clips", file=sys.stderr):
        path = folder / ("a" if i % 2 else "b") / f"clip{i:03d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        x = 0.3 * np.sin(2 * np.pi * (220 + 40 * i) * t) + 0.05 * rng.standard_normal(t.size)
        sf.write(path, x.astype(np.float32), sr)
    return folder


def actor_start_s(arch: str, width: str, n: int) -> float:
    """Seconds to start ``n`` Embedder actors holding the model (a fixed cost of every Ray run)."""
    import ray
    model = ex.build_frontend(arch, width=width).eval()
    spec = ex.input_spec(model)
    t0 = time.perf_counter()
    cls = ray.remote(ray_engine.Embedder).options(num_cpus=1)
    actors = [cls.remote(ray.put(model), "cpu", 1, spec, None) for _ in range(n)]
    ray.get([a.pid.remote() for a in actors])
    seconds = time.perf_counter() - t0
    for actor in actors:
        ray.kill(actor)
    return seconds


def timed(**kw) -> tuple[float, Path]:
    t0 = time.perf_counter()
    path = ex.extract(progress=False, **kw)
    return time.perf_counter() - t0, path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--arch", nargs="+", default=["sample-level", "vgg"])
    p.add_argument("--width", default="small", choices=["small", "large"])
    p.add_argument("--clips", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--workers", type=int, default=2, help="local engine decode threads")
    p.add_argument("--ray-workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--device", default="cpu", help="cpu, or cuda for GPU actors")
    p.add_argument("--address", default=None, help="an existing Ray cluster (default: a local instance)")
    a = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench_ray_"))
    try:
        root = make_clips(tmp / "data", a.clips)
        cache = tmp / "cache"
        base = dict(dataset="folder", root=root, width=a.width, batch_size=a.batch_size,
                    cache_dir=cache, device=a.device)
        ex.extract(a.arch[0], out=tmp / "warm", workers=a.workers, progress=False, **base)  # fill the cache
        t0 = time.perf_counter()
        connect(a.address)
        print(f"ray start-up (local instance): {time.perf_counter() - t0:.1f} s")
        rows = []
        for arch in a.arch:
            local_s, local_path = timed(arch=arch, out=tmp / f"local_{arch}", workers=a.workers, **base)
            ref = (local_path / "features.npz").read_bytes()
            row = {"arch": arch, "local": a.clips / local_s}
            for n in a.ray_workers:
                # the first Ray run of a worker count also pays the actors' start (python + torch import)
                s, path = timed(arch=arch, out=tmp / f"ray{n}_{arch}", engine="ray", workers=n,
                                address=a.address, **base)
                same = (path / "features.npz").read_bytes() == ref
                start = actor_start_s(arch, a.width, n)
                row[f"ray{n}"] = a.clips / s
                row[f"ray{n}_start_s"] = start
                # what is left once the actors' start is taken out, per clip
                row[f"ray{n}_overhead_ms"] = 1000.0 * (s - start - local_s) / a.clips
                row[f"ray{n}_identical"] = same
            rows.append(row)
        print(f"\n{a.clips} clips of 30 s, width {a.width}, batch {a.batch_size}, device {a.device}")
        head = f"{'arch':<14} {'local clips/s':>13}" + "".join(
            f" {f'ray x{n} clips/s':>15} {'start s':>7} {'overhead ms/clip':>16} {'identical':>9}"
            for n in a.ray_workers)
        print(head)
        for r in rows:
            line = f"{r['arch']:<14} {r['local']:>13.2f}"
            for n in a.ray_workers:
                line += (f" {r[f'ray{n}']:>15.2f} {r[f'ray{n}_start_s']:>7.1f} "
                         f"{r[f'ray{n}_overhead_ms']:>16.1f} {str(r[f'ray{n}_identical']):>9}")
            print(line)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
