"""Layer selection (``classifiers.grid --layers``) and per-layer scores (``--per-layer``)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from classifiers.featureset import load_feature_set, synthetic_feature_set, write_feature_set
from classifiers.grid import main as grid_main
from classifiers.grid import run_grid
from report.build import render_report
from classifiers.layers import LayerSelectionError, parse_layers, select_layers

LAYERS = [{"name": "conv1", "channels": 4, "start": 0, "stop": 4},
          {"name": "conv2", "channels": 6, "start": 4, "stop": 10},
          {"name": "pool", "channels": 2, "start": 10, "stop": 12}]


def _sets(tmp_path, seeds=(0, 1), n_folds=None):
    out = []
    for s in seeds:
        arrays = synthetic_feature_set(n_clips=60, n_features=12, n_classes=3, separation=1.5, seed=7,
                                       n_folds=n_folds)
        # the seeds differ in their features (like random weights), not in clips, labels or partition
        arrays["X"] = arrays["X"] + np.random.default_rng(s).normal(0, 0.3, arrays["X"].shape).astype(np.float32)
        out.append(write_feature_set(tmp_path / f"fs{s}", meta={"layers": LAYERS, "seed": s, "arch": "toy"},
                                     **arrays))
    return out


def test_parse_names_positions_and_ranges():
    assert parse_layers(["conv2"], LAYERS) == [1]
    assert parse_layers(["3", "1"], LAYERS) == [0, 2]
    assert parse_layers(["1-2"], LAYERS) == [0, 1]
    assert parse_layers(["pool,1"], LAYERS) == [0, 2]
    with pytest.raises(LayerSelectionError, match=r"'conv9'.*1:conv1, 2:conv2, 3:pool"):
        parse_layers(["conv9"], LAYERS)
    with pytest.raises(LayerSelectionError, match=r"positions run 1..3"):
        parse_layers(["2-4"], LAYERS)


def test_selection_keeps_exactly_those_columns(tmp_path):
    sets = [load_feature_set(p) for p in _sets(tmp_path)]
    chosen, sel = select_layers(sets, ["pool", "1"])
    np.testing.assert_array_equal(chosen[1].X, np.concatenate([sets[1].X[:, 0:4], sets[1].X[:, 10:12]], 1))
    assert sel["names"] == ["conv1", "pool"] and sel["label"] == "1,3" and sel["n_features"] == 6
    assert [x["start"] for x in chosen[0].meta["layers"]] == [0, 4]


def test_layers_recorded_and_scored_on_the_selection(tmp_path):
    paths = _sets(tmp_path)
    res = json.loads(run_grid(paths, classifier="svm", grid="small", layers=["2"], out=tmp_path / "r",
                              progress=False).read_text())
    assert res["arch"] == "toy[2]" and res["layers"]["names"] == ["conv2"]
    assert res["feature_length"] == 6 and res["config"]["layers"] == ["2"]
    # the same numbers as a feature set holding only those columns
    sub = []
    for p in paths:
        fs = load_feature_set(p)
        sub.append(write_feature_set(tmp_path / ("sub_" + p.name), fs.X[:, 4:10], fs.y, fs.ids,
                                     split=fs.split, meta={"seed": fs.meta["seed"], "arch": "toy"}))
    ref = json.loads(run_grid(sub, classifier="svm", grid="small", out=tmp_path / "r2",
                              progress=False).read_text())
    assert res["entries"][0]["mean"] == ref["entries"][0]["mean"]


def test_per_layer_curve_ends_at_the_full_accuracy(tmp_path):
    paths = _sets(tmp_path, n_folds=4)
    res = json.loads(run_grid(paths, classifier="svm", grid="small", per_layer=True, out=tmp_path / "r",
                              progress=False).read_text())
    per = res["per_layer"]
    assert [x["name"] for x in per["layers"]] == ["conv1", "conv2", "pool"]
    full = {(e["classifier"], e["protocol"]): e for e in res["entries"]}
    cumulative = [c for c in per["curves"] if c["mode"] == "cumulative"]
    assert {(c["classifier"], c["protocol"]) for c in cumulative} == set(full)
    for c in cumulative:
        last = c["points"][-1]
        assert last["k"] == 3 and last["n_features"] == 12
        assert last["accuracies"] == [r["accuracy"] for r in full[(c["classifier"], c["protocol"])]["runs"]]
    alone = [c for c in per["curves"] if c["mode"] == "alone"]
    assert all([p["layers"] for p in c["points"]] == [["conv1"], ["conv2"], ["pool"]] for c in alone)
    # a single layer scores differently from all three (the curve carries information)
    svm = next(c for c in alone if c["classifier"] == "svm" and c["protocol"] == "nested-cv")
    assert len({p["mean"] for p in svm["points"]}) > 1
    # the report draws the curves of every results file that has them
    report = render_report([str(tmp_path / "r")], out=tmp_path / "report", log=lambda m: None)
    assert "Accuracy vs depth" in (report / "report.md").read_text()
    assert [p.name for p in report.glob("fig_layers_*.png")] == ["fig_layers_synthetic_toy_large_random.png"]


def test_cli_bad_layer_is_one_line(tmp_path, capsys):
    paths = _sets(tmp_path, seeds=(0,))
    with pytest.raises(SystemExit) as e:
        grid_main(["--features", str(paths[0]), "--layers", "nope", "--grid", "small"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --layers 'nope'") and "\n" not in err
