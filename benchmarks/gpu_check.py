"""The GPU check in one command: correctness, throughput, precision and the whole study's time.

Prepared so that a short lease of a GPU machine leaves nothing to debug (``benchmarks/gpu_check.sh``
installs what is missing and calls this). In one run, on ``--device`` (``auto``: CUDA when present):

1. **matmul peaks** measured in this run: float32 with TF32 off, TF32 (tensor cores) and bf16, the best of a
   few ``N x N`` products (8192 on CUDA), which every fraction below is taken against;
2. **correctness**: each front-end's features on the device against the CPU's, float32 with TF32 off, at
   both widths on a short input (the ``gpu``-marked tests, ``tests/test_gpu.py``, hold the same to 1e-5
   relative); skipped where the device is the CPU;
3. **throughput** per front-end at ``--width`` (large: the study's ~3584 features) on the study's 29 s
   input: clips/s of the features (network + per-layer means, what extraction runs) for each batch size
   of a doubling sweep, TFLOP/s from the analytic FLOPs (``architectures.cost``), the fraction of the
   float32 and TF32 matmul peaks, the peak device memory, and the batch size of the best throughput;
4. **precision**: ``tf32`` (CUDA only) and ``bf16`` at that batch size: speed-up over float32 and the
   features' relative change ``max |X_p - X_32| / max |X_32|``;
5. **end to end**: ``python -m features.extract`` on generated clips (decoding on this machine's CPU cores,
   ``--workers``) against the compute-only rate of the same front-end and batch;
6. **the whole study's extraction time**, estimated from the measured rates: every front-end x 3 seeds x
   (GTZAN 1000 + Extended Ballroom 4180 + UrbanSound8K 8732 clips), plus decoding each dataset once at the
   measured end-to-end decode rate.

Every figure goes to ``<out>/gpu_check.csv`` (one row a figure: section, arch, metric, value, unit) and
``<out>/gpu_check.md`` (tables), with the GPU model, driver and CUDA versions; both written atomically.

    python benchmarks/gpu_check.py --out runs/gpu                  # on a GPU machine (~5 min on one H100/H200)
    python benchmarks/gpu_check.py --device cpu --quick --out /tmp/g   # the same code on the CPU, in seconds

``--quick`` uses the small width, 1 s inputs, two batch sizes and four generated clips; it is what the
default test suite runs (``tests/test_gpu_check.py``).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from architectures import FRONTENDS, build  # noqa: E402
from architectures.cost import flops_per_clip  # noqa: E402
from features.compute import batch_features  # noqa: E402
from toolkit.device import cast_model, device_record, is_out_of_memory, precision_context  # noqa: E402
from toolkit.provenance import atomic_write_bytes  # noqa: E402

SAMPLE_RATE, HOP, N_MELS = 12000, 256, 96
STUDY_SECONDS = 350000 / SAMPLE_RATE  # the study's input: 350 000 samples, 1376 frames (~29.2 s)
#: clips of the study's three datasets (published_results.md): every clip is extracted at the 29 s input
STUDY_DATASETS = {"GTZAN": 1000, "Extended Ballroom": 4180, "UrbanSound8K": 8732}
STUDY_SEEDS = 3
REL_TOL = 1e-5  # device vs CPU features, float32 with TF32 off


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def matmul_tflops(dev, dtype=torch.float32, tf32=False, size=None, repeats=5) -> float:
    """Best-of-``repeats`` rate of one ``size`` x ``size`` product on ``dev`` in TFLOP/s."""
    size = size or (8192 if dev.type == "cuda" else 1024)
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(dev, dtype)
    b = torch.randn(size, size, generator=gen).to(dev, dtype)
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        torch.mm(a, b)
        best = float("inf")
        for _ in range(repeats):
            _sync(dev)
            t0 = time.perf_counter()
            torch.mm(a, b)
            _sync(dev)
            best = min(best, time.perf_counter() - t0)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved
    return 2 * size ** 3 / best / 1e12


def input_shape(model, seconds: float) -> tuple:
    """One clip's shape at ``seconds``, or at the study's length where the front-end needs more (vgg's
    pools need 1280 frames)."""
    if model.input_kind == "waveform":
        shape = (max(int(seconds * SAMPLE_RATE), 3 ** 7),)
    else:
        shape = (max(int(seconds * SAMPLE_RATE / HOP), 1), N_MELS)
    try:
        flops_per_clip(model, shape)  # shapes only (the meta device): refuses a too-short input
    except ValueError:
        return input_shape(model, STUDY_SECONDS) if seconds < STUDY_SECONDS else shape
    return shape


def random_input(model, n, seconds, seed=0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((n, *input_shape(model, seconds)), generator=gen)
    return x * 0.1 if model.input_kind == "waveform" else x * 10 - 30  # waveform-like / log-mel-like dB


def features_on(model, x, dev, precision="float32") -> torch.Tensor:
    with torch.inference_mode(), precision_context(dev, precision):
        return batch_features(model, x.to(dev, next(model.parameters()).dtype)).float().cpu()


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def time_features(model, x, dev, precision="float32", min_seconds=0.5, repeats=3) -> float:
    """Best seconds per batch ``x`` (already on ``dev``), timed over whole passes of ``min_seconds``."""
    with torch.inference_mode(), precision_context(dev, precision):
        batch_features(model, x)  # warm-up: cuDNN autotuning, allocator
        best = float("inf")
        for _ in range(repeats):
            n, t0 = 0, time.perf_counter()
            while True:
                batch_features(model, x)
                _sync(dev)
                n += 1
                if time.perf_counter() - t0 >= min_seconds:
                    break
            best = min(best, (time.perf_counter() - t0) / n)
    return best


class Figures:
    """Rows of (section, arch, metric, value, unit), printed as they come."""

    def __init__(self):
        self.rows = []

    def add(self, section, arch, metric, value, unit=""):
        # 7 significant digits (not decimal places: a CPU's TFLOP/s of a small network is ~1e-4)
        value = float(f"{float(value):.7g}") if isinstance(value, (float, np.floating)) else value
        self.rows.append({"section": section, "arch": arch, "metric": metric, "value": value, "unit": unit})
        print(f"  {section:11s} {arch:17s} {metric:28s} {value} {unit}", file=sys.stderr, flush=True)

    def get(self, section, arch, metric):
        for r in self.rows:
            if (r["section"], r["arch"], r["metric"]) == (section, arch, metric):
                return r["value"]
        return None


def check_correctness(figs, archs, dev, seconds):
    """Device features vs CPU features, float32, TF32 off, both widths."""
    for name in archs:
        for width in ("large", "small"):
            cpu_model = build(name, width=width, seed=0)
            x = random_input(cpu_model, 2, seconds, seed=1)
            ref = features_on(cpu_model, x, torch.device("cpu"))
            got = features_on(build(name, width=width, seed=0).to(dev), x, dev)
            d = rel_diff(got, ref)
            figs.add("correctness", name, f"{width}_max_rel_diff", d, f"<= {REL_TOL} required")
            if not d <= REL_TOL:
                figs.add("correctness", name, f"{width}_FAILED", d)


def sweep_batches(figs, name, model, dev, seconds, batches, gflop, peaks, budget_s):
    """clips/s per batch size (doubling) until out of memory, slower than the best by 10%, or the budget."""
    best = (0.0, None)
    t_start = time.perf_counter()
    for bs in batches:
        try:
            x = random_input(model, bs, seconds).to(dev)
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            s = time_features(model, x, dev, min_seconds=0.3 if dev.type == "cuda" else 0.05, repeats=2)
        except Exception as e:  # noqa: BLE001 - out of memory ends the sweep, anything else is a failure
            if not is_out_of_memory(e):
                raise
            del e
            if dev.type == "cuda":
                torch.cuda.empty_cache()
            figs.add("throughput", name, f"batch_{bs}_out_of_memory", 1)
            break
        rate = bs / s
        figs.add("throughput", name, f"batch_{bs}_clips_per_s", rate, "clips/s")
        if dev.type == "cuda":
            figs.add("throughput", name, f"batch_{bs}_peak_memory", torch.cuda.max_memory_allocated(dev) / 2**30,
                     "GiB")
        del x
        if rate > best[0]:
            best = (rate, bs)
        elif rate < 0.9 * best[0]:
            break
        if time.perf_counter() - t_start > budget_s:
            break
    rate, bs = best
    tflops = gflop * rate / 1e3
    figs.add("throughput", name, "best_batch", bs)
    figs.add("throughput", name, "clips_per_s", rate, "clips/s")
    figs.add("throughput", name, "gflop_per_clip", gflop, "GFLOP")
    figs.add("throughput", name, "tflops", tflops, "TFLOP/s")
    figs.add("throughput", name, "fraction_of_float32_peak", tflops / peaks["float32"])
    if "tf32" in peaks:
        figs.add("throughput", name, "fraction_of_tf32_peak", tflops / peaks["tf32"])
    return bs, rate


def check_precisions(figs, name, width, dev, seconds, bs, rate32):
    precisions = ["bf16"] + (["tf32"] if dev.type == "cuda" else [])
    model = build(name, width=width, seed=0).to(dev)
    x = random_input(model, bs, seconds).to(dev)
    ref = features_on(model, x, dev)
    for p in precisions:
        m = cast_model(build(name, width=width, seed=0).to(dev), p)
        xp = x.to(next(m.parameters()).dtype)
        s = time_features(m, xp, dev, precision=p, min_seconds=0.3 if dev.type == "cuda" else 0.05, repeats=2)
        figs.add("precision", name, f"{p}_speedup_over_float32", (bs / s) / rate32, "x")
        figs.add("precision", name, f"{p}_features_max_rel_change", rel_diff(features_on(m, xp, dev, p), ref))


def end_to_end(figs, name, width, dev, bs, clips, workers, rate_compute, seconds):
    """``python -m features.extract`` on generated clips (decoding included) against compute-only."""
    from audiodata.synthetic import make_synthetic
    with tempfile.TemporaryDirectory() as tmp:
        n_per_class = max(4, -(-clips // 6))
        # the study's datasets are 30 s clips (cropped to the 29.2 s input); --quick decodes 1 s clips
        root = make_synthetic(Path(tmp) / "clips", n_per_class=n_per_class,
                              duration=30.0 if seconds >= STUDY_SECONDS else seconds, seed=0)
        n = sum(1 for _ in root.rglob("*.wav"))
        cmd = [sys.executable, "-m", "features.extract", "--arch", name, "--width", width,
               "--dataset", "synthetic", "--root", str(root), "--device", str(dev), "--batch-size", str(bs),
               "--workers", str(workers), "--out", str(Path(tmp) / "out"), "--cache-dir", str(Path(tmp) / "cache")]
        if seconds < STUDY_SECONDS:
            cmd += ["--input-seconds", str(seconds)]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        t0 = time.perf_counter()
        r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError(f"features.extract failed ({r.returncode}):\n{r.stderr[-3000:]}")
        meta = json.loads(next((Path(tmp) / "out").rglob("meta.json")).read_text())
    t = meta["timings"]
    figs.add("end_to_end", name, "clips", n)
    figs.add("end_to_end", name, "decode_s_per_clip_one_worker", t["decode_s"] / n, "s")
    figs.add("end_to_end", name, "extraction_clips_per_s", n / t["total_s"], "clips/s")
    figs.add("end_to_end", name, "process_wall_s", wall, "s")
    figs.add("end_to_end", name, "compute_only_clips_per_s", rate_compute, "clips/s")
    figs.add("end_to_end", name, "end_to_end_over_compute_only", rate_compute / (n / t["total_s"]), "x")
    return t["decode_s"] / n


def study_estimate(figs, rates: dict, decode_s_per_clip: float, workers: int):
    """Seconds for every front-end x seeds x the three datasets at the measured rates."""
    clips = sum(STUDY_DATASETS.values())
    compute = sum(STUDY_SEEDS * clips / r for r in rates.values() if r)
    decode = clips * decode_s_per_clip / max(workers, 1)  # once: decoded audio is cached
    for name, r in rates.items():
        figs.add("study", name, "extraction_s_all_datasets_3_seeds", STUDY_SEEDS * clips / r, "s")
    figs.add("study", "all", "front_ends", len(rates))
    figs.add("study", "all", "clips_per_seed", clips)
    figs.add("study", "all", "compute_s", compute, "s")
    figs.add("study", "all", "decode_s", decode, "s")
    figs.add("study", "all", "total_minutes", (compute + decode) / 60, "min")


def pytest_gpu(figs, out: Path):
    """The ``gpu``-marked tests, on this machine."""
    # only the files holding gpu tests: collecting the others would import what a GPU image may lack (hpelm)
    files = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "tests").glob("test_*.py"))
             if "mark.gpu" in p.read_text(errors="replace")]
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", *files],
                       cwd=ROOT, capture_output=True, text=True)
    (out / "pytest_gpu.log").write_text(r.stdout + r.stderr)
    last = (r.stdout.strip().splitlines() or ["(no output)"])[-1]
    figs.add("tests", "pytest -m gpu", "exit_status", r.returncode, last)
    return r.returncode


def write_outputs(figs: Figures, record: dict, out: Path) -> tuple[Path, Path]:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["section", "arch", "metric", "value", "unit"], lineterminator="\n")
    w.writeheader()
    w.writerows(figs.rows)
    atomic_write_bytes(out / "gpu_check.csv", buf.getvalue().encode())
    lines = ["# GPU check", "", "| machine | |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in record.items()]
    for section in dict.fromkeys(r["section"] for r in figs.rows):
        lines += ["", f"## {section}", "", "| arch | metric | value | unit |", "| --- | --- | --- | --- |"]
        lines += [f"| {r['arch']} | {r['metric']} | {r['value']} | {r['unit']} |"
                  for r in figs.rows if r["section"] == section]
    atomic_write_bytes(out / "gpu_check.md", ("\n".join(lines) + "\n").encode())
    return out / "gpu_check.csv", out / "gpu_check.md"


def build_parser():
    from toolkit.cli import HelpFormatter
    p = argparse.ArgumentParser(prog="benchmarks/gpu_check.py", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("--out", required=True, help="folder for gpu_check.csv, gpu_check.md and pytest_gpu.log")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N]")
    p.add_argument("--quick", action="store_true",
                   help="small width, 1 s inputs, batches 1 and 2, four clips: the CPU test's settings")
    p.add_argument("--archs", nargs="+", default=None, metavar="NAME",
                   help="front-ends (default: every CNN front-end of the study; the MFCC baseline has no network)")
    p.add_argument("--width", default=None, choices=["large", "small"],
                   help="width of the throughput figures (default: large; small with --quick)")
    p.add_argument("--workers", type=int, default=None, help="decoding threads end to end (default: the CPUs)")
    p.add_argument("--no-tests", action="store_true", help="do not run the gpu-marked tests")
    p.add_argument("--budget-s", type=float, default=25.0, help="seconds of batch sweep per front-end at most")
    return p


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    from toolkit.device import DeviceError, resolve_device
    try:
        dev = resolve_device(a.device)
    except DeviceError as e:
        print(f"gpu_check: {e}", file=sys.stderr)
        return 2
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    archs = a.archs or [n for n, f in FRONTENDS.items() if f.input_kind != "clip"]
    unknown = [n for n in archs if n not in FRONTENDS or FRONTENDS[n].input_kind == "clip"]
    if unknown:
        print(f"gpu_check: not a CNN front-end of the study: {', '.join(unknown)}", file=sys.stderr)
        return 2
    width = a.width or ("small" if a.quick else "large")
    seconds = 1.0 if a.quick else STUDY_SECONDS
    batches = [1, 2] if a.quick else [1, 2, 4, 8, 16, 32, 64, 128]
    workers = a.workers or os.cpu_count() or 1
    record = {**device_record(dev), "cpu": platform.processor() or platform.machine(), "cpu_cores": os.cpu_count(),
              "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
              "width": width, "input_seconds": round(seconds, 3), "quick": a.quick}
    print("gpu_check: " + json.dumps(record), file=sys.stderr)
    figs = Figures()
    t0 = time.perf_counter()
    failed = 0
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        if not a.no_tests:
            failed += pytest_gpu(figs, out) != 0
    peaks = {"float32": matmul_tflops(dev), "bf16": matmul_tflops(dev, torch.bfloat16)}
    if dev.type == "cuda":
        peaks["tf32"] = matmul_tflops(dev, tf32=True)
    for k, v in peaks.items():
        figs.add("peak", "matmul", f"{k}_tflops", v, "TFLOP/s")
    if dev.type == "cuda":
        check_correctness(figs, archs, dev, seconds=2.0)
        failed += sum(1 for r in figs.rows if r["metric"].endswith("_FAILED"))
    rates, decode_per_clip = {}, None
    for name in archs:
        model = build(name, width=width, seed=0).to(dev)
        gflop = flops_per_clip(model, input_shape(model, seconds)) / 1e9
        bs, rate = sweep_batches(figs, name, model, dev, seconds, batches, gflop, peaks, a.budget_s)
        rates[name] = rate
        del model
        check_precisions(figs, name, width, dev, seconds, bs, rate)
        if decode_per_clip is None:  # end to end once, on the first front-end (decoding is the same for all)
            decode_per_clip = end_to_end(figs, name, width, dev, bs, 4 if a.quick else 96, workers, rate,
                                         seconds)
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    study_estimate(figs, rates, decode_per_clip, workers)
    figs.add("run", "all", "wall_s", time.perf_counter() - t0, "s")
    paths = write_outputs(figs, record, out)
    print("\n".join(map(str, paths)))
    if failed:
        print(f"gpu_check: {failed} check(s) failed (see the correctness and tests rows)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
