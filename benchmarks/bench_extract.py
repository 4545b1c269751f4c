"""Benchmark of the extraction pipeline (decode + network + per-layer means), per architecture.

Prints, for each architecture:
- compute-only clips/s: the network and the means over inputs already in memory, in the same batches;
- end-to-end clips/s of ``features.extract.extract`` from audio files with a cold decode cache, and its
  ratio to compute-only (goal: within 1.2x, i.e. decoding is hidden behind the network);
- warm clips/s: end-to-end again with the decode cache filled (what the second architecture of a study sees);
- the straightforward way: ``librosa.load`` one file, run the plain (``fast=False``) net on it, average
  in numpy, next file; and the speed-up of the pipeline against it.

The audio is generated: ``--clips`` files of 30 s at 22.05 kHz (GTZAN-like: the pipeline must resample).

``--memory-clips 100 1000`` instead measures the peak resident memory of ``python -m features.extract`` (a
child process per count, its own peak from ``wait4``) over each number of generated clips, for each
``--arch``, and prints the peaks and their ratio to the first: flat in the number of clips means ~1.0.

    python benchmarks/bench_extract.py --arch sample-level vgg --width large --clips 16
    python benchmarks/bench_extract.py --arch temporal --memory-clips 100 1000

Writes a CSV (``runs/benchmarks/extract*.csv``); its path is printed last.
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import librosa  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402

from audiodata import audio
from features import extract as ex  # noqa: E402


def make_clips(folder: Path, n: int, seconds: float = 30.0, sr: int = 22050) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        label = "a" if i % 2 else "b"
        path = folder / label / f"clip{i:03d}.wav"
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        t = np.arange(int(seconds * sr)) / sr
        x = 0.3 * np.sin(2 * np.pi * (200 + 40 * i) * t) + 0.05 * rng.standard_normal(t.size)
        sf.write(path, x.astype(np.float32), sr, subtype="PCM_16")
    return folder


def straightforward(model, paths, spec) -> float:
    """The reference way: one file at a time, librosa.load, the net, numpy means."""
    t0 = time.perf_counter()
    for p in paths:
        y, _ = librosa.load(p, sr=audio.SAMPLE_RATE, mono=True)
        if spec.kind == "waveform":
            x = audio.waveform_input(y, spec.length, pad="repeat")
        else:
            x = audio.spectrogram_input(y, spec.length, pad="repeat")
        with torch.no_grad():
            outs = model.extract_features(torch.from_numpy(x[None]))
        vec = np.concatenate([o.numpy().reshape(1, o.shape[1], -1).mean(axis=2) for o in outs], axis=1)
        assert np.isfinite(vec).all()
    return time.perf_counter() - t0


def compute_only(model, inputs: np.ndarray, batch_size: int) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(inputs), batch_size):
        ex._features_of_batch(model, inputs[i:i + batch_size], torch.device("cpu"))
    return time.perf_counter() - t0


# Runs a Python child (``-m module ...`` or ``-c code ...``) and, at its exit, writes the high-water mark
# of its own memory map (VmHWM of /proc/self/status, kB) to the file named by RANDOMCNN_PEAK_FILE. Not
# wait4's ru_maxrss: Linux carries the parent's high-water mark over the fork + exec into the child's, so a
# child smaller than the parent (the benchmark's pytest or driver with torch loaded) would read as the
# parent's peak.
_SELF_REPORT = """
import atexit, os, runpy, sys
def _report():
    hwm = next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    with open(os.environ["RANDOMCNN_PEAK_FILE"], "w") as f:
        f.write(hwm)
atexit.register(_report)
mode, target, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
if mode == "-m":
    sys.path.insert(0, os.getcwd())  # as python -m does
    sys.argv = [target, *rest]
    runpy.run_module(target, run_name="__main__", alter_sys=True)
else:
    sys.argv = ["-c", *rest]
    exec(compile(target, "<string>", "exec"), {"__name__": "__main__"})
"""


def peak_rss_mib(argv: list[str]) -> float:
    """Run ``argv`` (``[python, "-m", module, ...]`` or ``[python, "-c", code, ...]``) as a child process and
    return its own peak resident memory in MiB (VmHWM, reported by the child at exit; see ``_SELF_REPORT``)."""
    if len(argv) < 3 or argv[1] not in ("-m", "-c"):
        raise ValueError(f"peak_rss_mib: expected [python, -m, module, ...] or [python, -c, code, ...], got {argv}")
    with tempfile.TemporaryDirectory(prefix="bench_peak_") as tmp:
        report = Path(tmp) / "vmhwm_kb"
        proc = subprocess.run([argv[0], "-c", _SELF_REPORT, *argv[1:]], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, cwd=Path(__file__).resolve().parent.parent,  # this checkout
                              env=dict(os.environ, RANDOMCNN_PEAK_FILE=str(report)))
        if proc.returncode:
            raise RuntimeError(f"{' '.join(argv)} failed: {proc.stderr.decode(errors='replace')[-2000:]}")
        return int(report.read_text()) / 1024


def memory_flatness(archs: list[str], width: str, counts: list[int], batch_size: int, workers: int,
                    data: Path) -> list[dict]:
    """Peak RSS of one extraction run per (arch, clip count), on the first ``count`` generated clips."""
    rows = []
    make_clips(data, max(counts))
    paths = sorted(data.rglob("*.wav"))
    for arch in archs:
        for n in counts:
            with tempfile.TemporaryDirectory(prefix="bench_memory_") as tmp:
                root = Path(tmp) / "audio"
                for p in paths[:n]:  # symlinks: the first n clips, no copies
                    (root / p.parent.name).mkdir(parents=True, exist_ok=True)
                    (root / p.parent.name / p.name).symlink_to(p.resolve())
                argv = [sys.executable, "-m", "features.extract", "--arch", arch, "--width", width,
                        "--dataset", "folder", "--root", str(root), "--batch-size", str(batch_size),
                        "--workers", str(workers), "--out", str(Path(tmp) / "out"),
                        "--cache-dir", str(Path(tmp) / "cache"), "--device", "cpu"]
                t0 = time.perf_counter()
                peak = peak_rss_mib(argv)
                rows.append({"arch": arch, "width": width, "clips": n, "peak_rss_mib": round(peak, 1),
                             "seconds": round(time.perf_counter() - t0, 1)})
            base = next(r for r in rows if r["arch"] == arch and r["clips"] == counts[0])
            rows[-1]["ratio_to_first"] = round(rows[-1]["peak_rss_mib"] / base["peak_rss_mib"], 3)
            print(f"{arch:<18}{width:>7}{n:>7} clips  peak RSS {peak:8.1f} MiB  "
                  f"x{rows[-1]['ratio_to_first']:.3f} of {counts[0]} clips  ({rows[-1]['seconds']} s)", flush=True)
    return rows


def write_csv(rows: list[dict], path: Path) -> Path:
    """Write ``rows`` to ``path`` atomically (a temporary file and a rename)."""
    import io
    from toolkit.provenance import atomic_write_bytes
    columns = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_bytes(path, buf.getvalue().encode("utf-8"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", nargs="+", default=["sample-level", "vgg"])
    p.add_argument("--width", default="large", choices=["large", "small"])
    p.add_argument("--clips", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=8, help="clips per forward pass (default 8, as features.extract)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--skip-straightforward", action="store_true")
    p.add_argument("--data", default="runs/bench/audio", help="where the generated clips are kept")
    p.add_argument("--memory-clips", type=int, nargs="+", default=None, metavar="N",
                   help="measure extraction's peak resident memory at each number of clips instead")
    p.add_argument("--output", default=None, help="CSV path (default: runs/benchmarks/extract[_memory].csv)")
    a = p.parse_args(argv)
    if a.memory_clips:
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {a.batch_size}, "
              f"1-min load average {os.getloadavg()[0]:.1f}")
        rows = memory_flatness(a.arch, a.width, a.memory_clips, a.batch_size, a.workers, Path(a.data))
        print(write_csv(rows, Path(a.output or "runs/benchmarks/extract_memory.csv")))
        return rows

    data = make_clips(Path(a.data), a.clips)
    paths = sorted(str(q) for q in Path(data).rglob("*.wav"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {a.clips} clips of 30 s at 22.05 kHz, "
          f"batch {a.batch_size}, {a.workers} decode workers")
    # one-time process costs (librosa's lazy imports, numba, the cost counter's first run) are paid here,
    # not inside the first timed method
    from architectures import cost
    w0 = audio.load_audio(paths[0])
    audio.spectrogram_input(w0, audio.N_FRAMES)
    cost.flops_per_clip(ex.build_frontend(a.arch[0], width="small"), (audio.N_SAMPLES,)
                        if ex.build_frontend(a.arch[0], width="small").input_kind == "waveform"
                        else (audio.N_FRAMES, audio.N_MELS))
    header = (f"{'arch':<18}{'compute clips/s':>16}{'end-to-end':>12}{'e2e/compute':>12}"
              f"{'warm clips/s':>13}{'straightforward':>16}{'speed-up':>10}")
    rows = []
    for arch in a.arch:
        model = ex.build_frontend(arch, width=a.width, seed=0).eval()
        spec = ex.input_spec(model)
        waves = [audio.load_audio(q) for q in paths]
        maker = audio.waveform_input if spec.kind == "waveform" else audio.spectrogram_input
        inputs = np.stack([maker(w, spec.length) for w in waves]).astype(np.float32)
        compute_only(model, inputs[: a.batch_size], a.batch_size)  # warm-up (allocator, kernels)
        t_compute = compute_only(model, inputs, a.batch_size)

        tmp = Path(tempfile.mkdtemp(prefix="bench_extract_"))
        try:
            kw = dict(dataset="folder", root=data, width=a.width, batch_size=a.batch_size,
                      workers=a.workers, device="cpu", progress=False)
            t0 = time.perf_counter()
            ex.extract(arch, out=tmp / "cold", cache_dir=tmp / "cache", **kw)
            t_cold = time.perf_counter() - t0
            t0 = time.perf_counter()
            ex.extract(arch, out=tmp / "warm", cache_dir=tmp / "cache", **kw)
            t_warm = time.perf_counter() - t0
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        # the straightforward way also runs the plain layer-by-layer modules (fast=False), as a
        # first implementation of the paper's layers would
        plain = ex.build_frontend(arch, width=a.width, seed=0)
        if hasattr(plain, "fast"):
            plain = type(plain)(**{**plain.dims, "fast": False}).eval()
        t_plain = float("nan") if a.skip_straightforward else straightforward(plain, paths, spec)
        n = len(paths)
        rows.append((arch, n / t_compute, n / t_cold, t_cold / t_compute, n / t_warm, n / t_plain,
                     t_plain / t_cold))
        print(header if len(rows) == 1 else "", end="\n" if len(rows) == 1 else "")
        r = rows[-1]
        print(f"{r[0]:<18}{r[1]:>16.2f}{r[2]:>12.2f}{r[3]:>11.2f}x{r[4]:>13.2f}{r[5]:>16.2f}{r[6]:>9.2f}x",
              flush=True)
    keys = ("arch", "compute_clips_per_s", "end_to_end_clips_per_s", "e2e_over_compute", "warm_clips_per_s",
            "straightforward_clips_per_s", "speedup_over_straightforward")
    print(write_csv([dict(zip(keys, r)) for r in rows], Path(a.output or "runs/benchmarks/extract.csv")))
    return rows


if __name__ == "__main__":
    main()
