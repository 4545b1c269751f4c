"""The prepared GPU check (benchmarks/gpu_check.py) runs end to end on the CPU (``--device cpu --quick``),
so that a short GPU lease has nothing left to debug."""
from __future__ import annotations

import csv
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check")
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--quick",
                        "--archs", "sample-level", "vgg", "--out", str(out)],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    with open(out / "gpu_check.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return out, rows, r


def _value(rows, section, arch, metric):
    hits = [r for r in rows if (r["section"], r["arch"], r["metric"]) == (section, arch, metric)]
    assert len(hits) == 1, (section, arch, metric, hits)
    return float(hits[0]["value"])


def test_every_section_is_measured(quick_run):
    out, rows, r = quick_run
    assert {r["section"] for r in rows} == {"peak", "throughput", "precision", "end_to_end", "study", "run"}
    assert _value(rows, "peak", "matmul", "float32_tflops") > 0
    for arch in ("sample-level", "vgg"):
        assert _value(rows, "throughput", arch, "best_batch") in (1, 2)
        # measured 4.3e-3 (sample-level) and 3.6e-3 (vgg) by this --quick CPU run: within 2x (was 0.05)
        assert 1e-3 < _value(rows, "precision", arch, "bf16_features_max_rel_change") < 9e-3
    md = (out / "gpu_check.md").read_text()
    assert "| type | cpu |" in md and "## study" in md
    assert str(out / "gpu_check.csv") in r.stdout


def test_figures_are_consistent_with_each_other(quick_run):
    _, rows, _ = quick_run
    peak = _value(rows, "peak", "matmul", "float32_tflops")
    for arch in ("sample-level", "vgg"):
        rate = _value(rows, "throughput", arch, "clips_per_s")
        best = int(_value(rows, "throughput", arch, "best_batch"))
        assert rate == _value(rows, "throughput", arch, f"batch_{best}_clips_per_s")
        tflops = _value(rows, "throughput", arch, "tflops")
        assert tflops == pytest.approx(_value(rows, "throughput", arch, "gflop_per_clip") * rate / 1e3, rel=1e-4)
        assert _value(rows, "throughput", arch, "fraction_of_float32_peak") == pytest.approx(tflops / peak, rel=1e-3)
    # the study estimate: 3 seeds x 13 912 clips at each measured rate, plus decoding once
    per_arch = {a: _value(rows, "study", a, "extraction_s_all_datasets_3_seeds") for a in ("sample-level", "vgg")}
    for arch, s in per_arch.items():
        assert s == pytest.approx(3 * 13912 / _value(rows, "throughput", arch, "clips_per_s"), rel=1e-4)
    total = _value(rows, "study", "all", "total_minutes") * 60
    assert total == pytest.approx(sum(per_arch.values()) + _value(rows, "study", "all", "decode_s"), rel=1e-3)
    e2e = _value(rows, "end_to_end", "sample-level", "end_to_end_over_compute_only")
    assert e2e == pytest.approx(_value(rows, "end_to_end", "sample-level", "compute_only_clips_per_s")
                                / _value(rows, "end_to_end", "sample-level", "extraction_clips_per_s"), rel=1e-3)


def test_refuses_unknown_front_end_and_missing_cuda(tmp_path):
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--device", "cpu",
                        "--archs", "mfcc", "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 2 and "not a CNN front-end of the study: mfcc" in r.stderr
    assert "Traceback" not in r.stderr
    import torch
    if not torch.cuda.is_available():
        r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--device", "cuda",
                            "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True)
        assert r.returncode == 2 and "no CUDA device" in r.stderr and "Traceback" not in r.stderr


def test_shell_entry_point_says_when_there_is_no_gpu(tmp_path):
    import os
    import torch
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the script would run the whole check")
    env = dict(os.environ, PYTHON=sys.executable)
    r = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), str(tmp_path)], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "torch sees no CUDA device" in r.stderr and "--device cpu --quick" in r.stderr
    assert not any(tmp_path.iterdir())  # nothing installed, nothing written
