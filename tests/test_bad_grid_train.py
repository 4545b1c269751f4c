"""Grid points that fail are printed and shown in the report; training a front-end without weights is
one message (issue 19)."""
from __future__ import annotations

import json

import pytest

from classifiers.featureset import synthetic_feature_set, write_feature_set
from classifiers.grid import failed_summary, main as grid_main
from report.build import render_report
from conftest import only_results
from test_report import write_results


@pytest.fixture(scope="module")
def huge_results(tmp_path_factory):
    """A real grid on features of size 1e30: the linear-SVM points fail (sklearn: dual coefficients
    not finite), the RBF points run."""
    tmp = tmp_path_factory.mktemp("huge")
    d = synthetic_feature_set(n_clips=60, n_features=8, n_classes=3, n_folds=3, separation=4.0, seed=0)
    d["X"] = d["X"] * 1e30
    fs = write_feature_set(tmp / "fs", **d, meta={"seed": 0, "dataset": "toy", "arch": "vgg"})
    return fs, tmp


def test_grid_prints_its_failed_points(huge_results, tmp_path, capsys):
    fs, _ = huge_results
    out = tmp_path / "res"
    grid_main(["--features", str(fs), "--grid", "small", "--classifier", "svm", "--jobs", "1",
               "--out", str(out)])
    printed = capsys.readouterr()
    assert printed.out.strip().splitlines()[-1] == str(only_results(out))
    err = printed.err
    assert "2 grid point(s) failed and were left out of the search" in err
    assert "svm seed 0 {\"C\": 0.1, \"kernel\": \"linear\"}: ValueError: The dual coefficients" in err
    assert "svm seed 0 {\"C\": 8.0, \"kernel\": \"linear\"}" in err
    res = json.loads(only_results(out).read_text())
    assert all(len(e["failed_points"]) == 2 for e in res["entries"])   # per protocol, printed once


def test_report_shows_the_failed_points(huge_results, tmp_path, capsys):
    fs, _ = huge_results
    grid_main(["--features", str(fs), "--grid", "small", "--classifier", "svm", "--jobs", "1",
               "--out", str(tmp_path / "results" / "toy" / "vgg")])
    capsys.readouterr()
    md = (render_report(results=[tmp_path / "results"], out=tmp_path / "report") / "report.md").read_text()
    section = md.split("## Failed grid points", 1)[1].split("\n## ", 1)[0]
    assert "2 grid point(s) failed" in section
    assert '`{"C": 0.1, "kernel": "linear"}`: ValueError: The dual coefficients' in section
    assert section.count("toy / vgg") == 2   # once per point, not once per protocol


def test_no_failed_points_no_section(tmp_path):
    write_results(tmp_path, "gtzan", "vgg", {("svm", "split"): [0.6, 0.62]})
    md = (render_report(results=[tmp_path], out=tmp_path / "report") / "report.md").read_text()
    assert "Failed grid points" not in md


def test_malformed_failed_points_are_a_note(tmp_path):
    f = write_results(tmp_path, "gtzan", "vgg", {("svm", "split"): [0.6, 0.62]})
    data = json.loads(f.read_text())
    data["entries"][0]["failed_points"] = "C=1 failed"
    f.write_text(json.dumps(data))
    md = (render_report(results=[tmp_path], out=tmp_path / "report") / "report.md").read_text()
    assert "failed_points is not a list of objects" in md and "| vgg |" in md


def test_failed_summary_names_runs_without_a_result():
    res = {"entries": [{"classifier": "svm", "protocol": "split", "failed_points": [],
                        "errors": ["seed 1: every grid point failed"]}]}
    assert failed_summary(res) == "1 run(s) have no result:\n  svm split: seed 1: every grid point failed"
    assert failed_summary({"entries": [{"classifier": "svm", "protocol": "split", "failed_points": []}]}) == ""


@pytest.mark.parametrize("extra", [[], ["--dry-run"]], ids=["train", "dry-run"])
def test_train_mfcc_says_it_has_no_weights(extra, tmp_path, monkeypatch, capsys):
    from audiodata import datasets
    from trained.train import main as train_main

    def no_data(*a, **k):
        raise AssertionError("the dataset must not be read for an untrainable --arch")
    monkeypatch.setattr(datasets, "load_dataset", no_data)
    with pytest.raises(SystemExit) as e:
        train_main(["--arch", "mfcc", "--out", str(tmp_path / "o")] + extra)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "mfcc has no weights to train" in err and "samplecnn" in err and "bad keyword" not in err
