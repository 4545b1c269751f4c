"""What ``--precision`` buys and costs: speed, feature change and accuracy, in one run.

For each front-end, on this machine's device (``--device``), measured in the same run:

- compute-only clips/s of ``float32`` (the study's), ``bf16`` and, on CUDA, ``tf32`` (best of
  ``--repeats`` timings of one batch, after a warm-up), and the speed-up over ``float32``;
- the change of the features: the largest and the median relative difference
  ``|X_p - X_float32| / max|X_float32|`` over the clips of the synthetic set;
- the SVM accuracy on the synthetic set's split (the study grid, ``classifiers.grid``) with each
  precision's features.

Writes ``runs/benchmarks/precision.csv`` (path printed) with the device record (GPU model, driver, CUDA).

    python benchmarks/bench_precision.py --arch vgg sample-level --width large --device cpu
"""
from __future__ import annotations

import argparse
import copy
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import architectures  # noqa: E402
from features import extract as ex  # noqa: E402
from toolkit.device import cast_model, device_record, resolve_device  # noqa: E402


def _time_batch(model, batch, dev, precision, repeats):
    """Best wall time of ``_features_of_batch`` on one batch (after one warm-up)."""
    ex._features_of_batch(model, batch, dev, precision)
    best = float("inf")
    for _ in range(repeats):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        ex._features_of_batch(model, batch, dev, precision)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def _svm_split_accuracy(folder, tmp):
    from classifiers.grid import run_grid
    res = json.loads(Path(run_grid([folder], classifier="svm", progress=False, out=Path(tmp) / folder.name,
                                   jobs=1)).read_text())
    return {e["protocol"]: e["mean"] for e in res["entries"]}["split"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--arch", nargs="+", default=["vgg", "sample-level", "7x86", "timbral"])
    p.add_argument("--width", default="small", choices=["small", "large"])
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="runs/benchmarks/precision.csv")
    a = p.parse_args(argv)
    dev = resolve_device(a.device)
    precisions = ["float32", "bf16"] + (["tf32"] if dev.type == "cuda" else [])
    record = device_record(dev)
    print(f"device: {json.dumps(record)}; torch {torch.__version__}; {torch.get_num_threads()} threads")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch in a.arch:
            base = architectures.build(arch, width=a.width, seed=0).to(dev).eval()
            spec = ex.input_spec(base)
            shape = (a.batch_size, spec.length) if spec.kind == "waveform" else (a.batch_size, spec.length, 96)
            batch = np.random.default_rng(0).standard_normal(shape).astype(np.float32) * 0.1
            sets, times = {}, {}
            for prec in precisions:
                model = cast_model(copy.deepcopy(base), prec)
                times[prec] = _time_batch(model, batch, dev, prec, a.repeats)
                sets[prec] = ex.extract(arch, width=a.width, seed=0, device=dev.type, precision=prec,
                                        batch_size=a.batch_size, out=Path(tmp) / "fs",
                                        cache_dir="runs/cache/audio", progress=False)
            with np.load(sets["float32"] / "features.npz") as z:
                ref = z["X"]
            for prec in precisions:
                with np.load(sets[prec] / "features.npz") as z:
                    diff = np.abs(z["X"] - ref) / np.abs(ref).max()
                rows.append({"arch": arch, "width": a.width, "precision": prec, "device": dev.type,
                             "device_name": record.get("name", "cpu"),
                             "clips_per_s": round(a.batch_size / times[prec], 3),
                             "speedup_vs_float32": round(times["float32"] / times[prec], 3),
                             "max_rel_diff": float(f"{diff.max():.3g}"),
                             "median_rel_diff": float(f"{np.median(diff):.3g}"),
                             "svm_split_accuracy": round(_svm_split_accuracy(sets[prec], tmp), 4)})
                r = rows[-1]
                print(f"{arch:14s} {prec:8s} {r['clips_per_s']:9.2f} clips/s  x{r['speedup_vs_float32']:.2f}  "
                      f"max rel diff {r['max_rel_diff']:.2e}  median {r['median_rel_diff']:.2e}  "
                      f"SVM split acc {r['svm_split_accuracy']:.4f}", flush=True)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
