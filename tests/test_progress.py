"""Time before work: extraction prints its estimate before computing anything, records it, and sets it
against the measured time at the end; per-layer lines name their layers."""
from __future__ import annotations

import json

import torch

from conftest import write_class_folders
from features import compute, extract as ex
from features.progress import listening, measure_rate, part_seconds


def test_estimate_first_then_work_then_estimate_vs_measured(tmp_path, capsys, monkeypatch):
    data = write_class_folders(tmp_path / "data")
    seen = []
    real = compute.compute_chunk

    def spy(*args, **kwargs):  # what had been printed when the first chunk started computing
        seen.append(capsys.readouterr().err)
        return real(*args, **kwargs)

    monkeypatch.setattr(ex, "compute_chunk", spy)
    folder = ex.extract("sample-level", dataset="folder", root=data, out=tmp_path / "fs", cache_dir=None,
                        width="small", workers=0, batch_size=2, input_seconds=1.0)
    assert "sample-level: 6 of 6 clips to compute on cpu; estimate" in seen[0]
    assert "(one clip timed)" in seen[0]  # a small network: timed, not counted (it runs far below the matmul rate)
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["estimate"]["clips"] == 6 and meta["estimate"]["seconds"] >= 0
    err = capsys.readouterr().err
    assert f"time: estimated {meta['estimate']['seconds']:.0f} s" in err and "took" in err


def test_mfcc_time_is_measured_not_zero(tmp_path):
    """The MFCC baseline has no network GFLOP: its clip is timed (the study once said '0 s')."""
    data = write_class_folders(tmp_path / "data")
    from features.settings import ExtractSettings
    base = ExtractSettings(dataset="folder", root=data, out=tmp_path / "fs", width="small")
    run = ex.plan(base.replace(arch="mfcc", cache_dir=None))
    from audiodata.decode import prepare
    per, how = part_seconds(run, 100.0, lambda: prepare(0, run.ds.clips[0].path, run.spec, None).x)
    assert per > 0 and how == "one clip timed"
    net = ex.plan(base.replace(arch="sample-level", input_seconds=1.0))
    per, how = part_seconds(net, 10.0)
    assert per > 0 and how.endswith("GFLOP a clip at 10 GFLOP/s")
    assert measure_rate(torch.device("cpu"), seconds=0.05) > 0.1


def test_a_listener_follows_every_clip_and_silences_the_part_estimate(tmp_path, capsys):
    data = write_class_folders(tmp_path / "data")
    counted = []
    with listening(counted.append):
        ex.extract("sample-level", dataset="folder", root=data, out=tmp_path / "fs", cache_dir=None,
                   width="small", workers=0, batch_size=4, input_seconds=1.0)
    assert sum(counted) == 6 and counted == [4, 2]
    assert "clips to compute" not in capsys.readouterr().err  # the study printed the overall estimate


def test_per_layer_lines_name_the_layers(tmp_path, capsys):
    from test_layers import _sets
    from classifiers.grid import run_grid
    run_grid(_sets(tmp_path, n_folds=4), classifier="svm", grid="small", per_layer=True, out=tmp_path / "r",
             progress=True)
    out = capsys.readouterr().out
    assert "per-layer layer conv2 (alone of 3):" in out and "per-layer layers conv1..conv2 (1..2 of 3):" in out
