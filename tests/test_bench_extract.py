"""The extraction benchmark's memory mode runs ``python -m features.extract`` as the CLI is today and
reports each run's peak resident memory."""
import pytest

from benchmarks.bench_extract import memory_flatness


def test_memory_flatness_runs_the_extractor_and_reports_peaks(tmp_path):
    rows = memory_flatness(["temporal"], "small", [1, 2], batch_size=1, workers=1, data=tmp_path / "audio")
    assert [r["clips"] for r in rows] == [1, 2]
    assert all(r["arch"] == "temporal" and r["peak_rss_mib"] > 50 for r in rows)  # a python + torch process
    assert rows[1]["ratio_to_first"] == pytest.approx(rows[1]["peak_rss_mib"] / rows[0]["peak_rss_mib"], abs=1e-3)
