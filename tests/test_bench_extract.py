"""The extraction benchmark's memory mode runs ``python -m features.extract`` as the CLI is today and
reports each run's peak resident memory."""
import sys
from pathlib import Path

import pytest

from benchmarks import bench_extract
from benchmarks.bench_extract import memory_flatness, peak_rss_mib

def test_memory_flatness_runs_the_extractor_and_reports_peaks(tmp_path, monkeypatch):
    """Each row is one real ``python -m features.extract`` run on the first ``clips`` clips, measured by
    peak_rss_mib (itself checked against known allocations below); the ratio is against the first run."""
    seen = []
    real = bench_extract.peak_rss_mib

    def spy(argv):
        root = argv[argv.index("--root") + 1]
        seen.append((argv[1:3], len(list(Path(root).rglob("*.wav"))), real(argv)))
        return seen[-1][2]

    monkeypatch.setattr(bench_extract, "peak_rss_mib", spy)
    rows = memory_flatness(["temporal"], "small", [1, 2], batch_size=1, workers=1, data=tmp_path / "audio")
    assert [r["clips"] for r in rows] == [1, 2] and all(r["arch"] == "temporal" for r in rows)
    assert [s[:2] for s in seen] == [(["-m", "features.extract"], 1), (["-m", "features.extract"], 2)]
    for row, (_, _, mib) in zip(rows, seen):
        assert row["peak_rss_mib"] == round(mib, 1) and mib > 50  # a python + torch process
    assert rows[0]["ratio_to_first"] == 1.0
    assert rows[1]["ratio_to_first"] == pytest.approx(seen[1][2] / seen[0][2], abs=1e-3)


def _own_hwm_mib() -> float:
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")) / 1024


def test_peak_rss_is_the_childs_own_peak():
    # a child that allocates (and touches) 256 MiB more peaks 256 MiB higher: a known quantity
    floor = 64
    small = peak_rss_mib([sys.executable, "-c", f"b = b'x' * ({floor} << 20)"])
    big = peak_rss_mib([sys.executable, "-c", f"b = b'x' * ({floor + 256} << 20)"])
    assert big - small == pytest.approx(256, abs=8), (small, big)
    assert small == pytest.approx(floor + 10, abs=20)  # the bytes and an interpreter (~10 MiB)
    with pytest.raises(RuntimeError, match="failed: .*boom"):
        peak_rss_mib([sys.executable, "-c", "raise SystemExit('boom')"])


def test_peak_rss_of_a_child_smaller_than_the_parent_is_its_own():
    # wait4's ru_maxrss would read this ~10 MiB child as pytest's own peak (torch loaded): the child's
    # own high-water mark does not
    parent = _own_hwm_mib()
    assert parent > 100  # torch is loaded
    small = peak_rss_mib([sys.executable, "-c", "pass"])
    assert 3 < small < 40 < parent, (small, parent)
    with pytest.raises(ValueError, match="expected \\[python, -m"):
        peak_rss_mib(["/bin/true"])
