"""benchmarks/bench_per_layer.py and benchmarks/cpuinfo.py: the rows and ratios they write, the CPU they
name, and their one-line refusals of bad values."""
import csv

import pytest

from benchmarks import bench_per_layer
from benchmarks.cpuinfo import cpu_info, cpu_line


def test_cpu_model_and_vector_extensions_from_cpuinfo(tmp_path):
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
                    "flags\t\t: fpu sse4_2 avx2 fma avx512f avx512_bf16 avx512_fp16 amx_tile amx_bf16\n\n"
                    "processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t\t: fpu\n")
    info = cpu_info(str(fake))
    assert info["model"] == "Intel(R) Xeon(R) Platinum 8480+"
    assert info["vector_extensions"] == ["sse4_2", "fma", "avx2", "avx512f", "avx512_bf16", "avx512_fp16",
                                         "amx_tile", "amx_bf16"]
    assert "amx_bf16" in cpu_line(info) and "Platinum 8480+" in cpu_line(info)
    assert cpu_info(str(tmp_path / "missing"))["vector_extensions"] == []


def test_bench_writes_both_tables(tmp_path, capsys):
    bench_per_layer.main(["--clips", "60", "--features", "12", "--layers", "2", "--classes", "3", "--folds", "3",
                          "--grid", "small", "--classifier", "svm", "--today", "--elm-clips", "60",
                          "--elm-classes", "3", "--elm-folds", "3", "--lstsq-tasks", "1", "--jobs", "1",
                          "--out-dir", str(tmp_path)])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("CPU: ") and out[-2:] == [str(tmp_path / "per_layer.csv"), str(tmp_path / "elm_lstsq.csv")]
    (row,) = list(csv.DictReader(open(tmp_path / "per_layer.csv")))
    assert row["classifier"] == "svm" and row["layers"] == "2" and row["cpu"] == cpu_info()["model"]
    one, both, today = float(row["one_grid_s"]), float(row["with_per_layer_s"]), float(row["today_per_layer_part_s"])
    assert 0 < one < both and today > 0
    assert float(row["ratio_with_per_layer"]) == pytest.approx(both / one, rel=1e-3)
    assert float(row["cpu_ratio_with_per_layer"]) == pytest.approx(
        float(row["with_per_layer_cpu_s"]) / float(row["one_grid_cpu_s"]), rel=1e-3)
    assert float(row["saving"]) == pytest.approx(today / float(row["per_layer_part_s"]), rel=1e-3)
    # the scorers' share: inside one grid's CPU, and the per-layer part ran its own (6 more grids' fits)
    inside_one, inside_part = float(row["scorer_cpu_s_one_grid"]), float(row["scorer_cpu_s_per_layer_part"])
    assert 0 < inside_one <= float(row["one_grid_cpu_s"]) + 1e-3 and inside_part > 0
    assert float(row["projection_cpu_s_one_grid"]) == 0  # the SVM has no hidden projection
    assert any(line.startswith("svm where the CPU went: inside the scorer") for line in out)
    (elm,) = list(csv.DictReader(open(tmp_path / "elm_lstsq.csv")))
    assert elm["tasks"] == "6" and elm["lstsq_measured_tasks"] == "2" and elm["lstsq_scaled"] == "True"
    # the CSV rounds the seconds; the ratio (from the unrounded ones) lies within what the rounding allows
    def half_unit(text):
        return 0.5 * 10 ** -len(text.split(".")[1]) if "." in text else 0.5
    lo_s, fa_s = float(elm["lstsq_s"]), float(elm["fast_s"])
    hl, hf = half_unit(elm["lstsq_s"]), half_unit(elm["fast_s"])
    assert (lo_s - hl) / (fa_s + hf) * (1 - 1e-3) <= float(elm["ratio"]) <= (lo_s + hl) / (fa_s - hf) * (1 + 1e-3)
    assert float(elm["agreement"]) > 0.9  # the same ELM solved two ways
    # a second run appends its rows and keeps the old ones
    bench_per_layer.main(["--part", "elm", "--features", "12", "--elm-clips", "40", "--elm-classes", "2",
                          "--elm-folds", "3", "--lstsq-tasks", "0", "--out-dir", str(tmp_path)])
    rows = list(csv.DictReader(open(tmp_path / "elm_lstsq.csv")))
    assert [r["clips"] for r in rows] == ["60", "40"] and rows[1]["lstsq_scaled"] == "False"


@pytest.mark.parametrize("args,message", [
    (["--elm-clips", "100", "200", "--elm-classes", "3"], "one value per size each"),
    (["--layers", "0"], "--layers must be between 1"),
    (["--lstsq-tasks", "-1"], "--lstsq-tasks must be 0"),
    (["--folds", "2"], "--folds at least 3"),
    (["--elm-clips", "100", "--elm-classes", "3", "--elm-folds", "2"], "--elm-folds at least 3"),
])
def test_bad_values_are_one_line(args, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        bench_per_layer.main([*args, "--out-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())  # refused before any work
