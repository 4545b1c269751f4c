"""The front-end benchmark times what extraction runs and writes its figures, fast against plain."""
import csv

from benchmarks.bench_architectures import bench_architectures
from benchmarks.cpuinfo import cpu_info


def test_benchmark_rows_compare_the_fast_path_with_the_plain_layers(tmp_path, capsys):
    out = bench_architectures(["temporal", "7x96"], width="small", clips=2, batch_size=2, repeats=1,
                              seconds=1.0, compare_plain=True, output=str(tmp_path / "arch.csv"))
    rows = list(csv.DictReader(open(out)))
    assert [r["arch"] for r in rows] == ["temporal", "7x96"]
    assert capsys.readouterr().out.startswith("CPU: " + cpu_info()["model"])  # the CPU first
    assert all(cpu_info()["model"] in r["machine"] for r in rows)
    for r in rows:
        assert float(r["clips_per_s"]) > 0 and float(r["matmul_gflops"]) > 0
        fraction = float(r["gflop_per_clip"]) * float(r["clips_per_s"]) / float(r["matmul_gflops"])
        assert abs(fraction - float(r["fraction_of_matmul"])) < 2e-3 + 1e-2 * fraction  # rounding only
        assert float(r["features_max_rel_diff"]) < 1e-5  # the fast path's features are the plain ones'
        assert r["batch_size"] == "2" and r["width"] == "small"
