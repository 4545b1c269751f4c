"""Everything above a feature set is named by, and checked against, what made it (issue 18's cases):
runs of one thing in the grid, the per-layer grid keeping the settings, results locked and named per
configuration, training's several seeds in one results file, per-fold results labelled partial, a
non-finite loss or batch-norm statistic stopping training, the report's supersede rule, and the study
re-rendering its report and re-deriving results.csv."""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from classifiers import grid as grid_module
from classifiers.featureset import synthetic_feature_set, write_feature_set
from classifiers.grid import run_grid
from classifiers.integrity import GridInputError


def _set(path, seed=0, config=None, n_folds=4, data_seed=0, layers=None, sizes=None):
    d = synthetic_feature_set(n_clips=60, n_features=12, separation=1.0, seed=0, n_folds=n_folds)
    if data_seed:  # other feature bytes (another seed's weights), the same clips and folds
        d["X"] = d["X"] + np.random.default_rng(data_seed).standard_normal(d["X"].shape) * 0.05
    if sizes is not None:  # folds of unequal sizes: pooled and mean cv-best weighting differ
        d.pop("split", None)
        d["fold"] = np.repeat(np.arange(1, len(sizes) + 1), sizes)
    meta = {"arch": "vgg", "seed": seed, "dataset_key": "clips-1",
            "config": dict({"arch": "vgg", "width": "small", "seed": seed, "pad": "repeat", "batch_size": 8,
                            "code_version": "c1", "workers": 2, "out": str(path)}, **(config or {}))}
    if layers:
        meta["layers"] = layers
    return write_feature_set(path, **d, meta=meta)


# ----------------------------------------------------------------------------- runs of one thing

def test_grid_refuses_feature_sets_that_differ_in_more_than_the_seed(tmp_path):
    a = _set(tmp_path / "a", seed=0)
    b = _set(tmp_path / "b", seed=1, config={"pad": "zero"}, data_seed=1)
    with pytest.raises(GridInputError, match=r"are not runs of one thing: they differ in pad \('repeat' vs 'zero'\)"):
        run_grid([a, b], classifier="svm", grid="small", out=tmp_path / "r", progress=False)
    assert not list(tmp_path.glob("r/**/results.json"))
    # what changes no number (workers, out) and the seed itself may differ: two runs
    c = _set(tmp_path / "c", seed=1, config={"workers": 0}, data_seed=1)
    res = json.loads(run_grid([a, c], classifier="svm", grid="small", out=tmp_path / "ok", progress=False).read_text())
    assert [e["n_runs"] for e in res["entries"]] == [2, 2]


def test_grid_refuses_a_seed_given_twice(tmp_path):
    a = _set(tmp_path / "a", seed=0)
    again = _set(tmp_path / "again", seed=0, data_seed=5)  # same seed, other bytes: an older set of it
    with pytest.raises(GridInputError, match=r"are both seed 0: runs of one architecture must have distinct seeds"):
        run_grid([a, again], classifier="svm", grid="small", out=tmp_path / "r", progress=False)


def test_grid_refuses_sets_of_other_clips(tmp_path):
    a = _set(tmp_path / "a", seed=0)
    b = _set(tmp_path / "b", seed=1, data_seed=1)
    meta = json.loads((b / "meta.json").read_text())
    meta["dataset_key"] = "clips-2"  # a file re-encoded since: other clips
    (b / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(GridInputError, match=r"differ in clips \(dataset_key\) \('clips-1' vs 'clips-2'\)"):
        run_grid([a, b], classifier="svm", grid="small", out=tmp_path / "r", progress=False)


def test_per_layer_grid_keeps_the_cv_weighting(tmp_path):
    layers = [{"name": "l1", "channels": 6, "start": 0, "stop": 6}, {"name": "l2", "channels": 6, "start": 6, "stop": 12}]
    fs = _set(tmp_path / "fs", layers=layers, n_folds=None, sizes=[30, 6, 14, 10])
    kw = dict(classifier="svm", protocol="cv-best", grid="small", progress=False)
    res = json.loads(run_grid([fs], per_layer=True, cv_weighting="mean", out=tmp_path / "pl", **kw).read_text())
    alone = {c["mode"]: c for c in res["per_layer"]["curves"]}["alone"]
    for point in alone["points"]:  # each layer alone, scored as the whole set is: with --cv-weighting mean
        name = point["layers"][0]
        mean = json.loads(run_grid([fs], layers=[name], cv_weighting="mean", out=tmp_path / f"m{name}",
                                   **kw).read_text())["entries"][0]["mean"]
        pooled = json.loads(run_grid([fs], layers=[name], cv_weighting="pooled", out=tmp_path / f"p{name}",
                                     **kw).read_text())["entries"][0]["mean"]
        assert point["mean"] == mean
        assert mean != pooled  # the folds' sizes make the two weightings differ: the check can fail


# ----------------------------------------------------------------------------- results named and locked

def _slow_evaluate(monkeypatch, seconds=0.4):
    real = grid_module.evaluate

    def slow(*args, **kwargs):
        time.sleep(seconds)
        return real(*args, **kwargs)
    monkeypatch.setattr(grid_module, "evaluate", slow)


def _both(calls):
    out, threads = [None] * len(calls), []
    for i, call in enumerate(calls):
        def run(i=i, call=call):
            try:
                out[i] = call()
            except Exception as e:  # noqa: BLE001 - the test inspects it
                out[i] = e
        threads.append(threading.Thread(target=run))
        threads[-1].start()
        time.sleep(0.05)
    for t in threads:
        t.join()
    return out


def test_two_configurations_into_one_out_never_replace_each_other(tmp_path, monkeypatch):
    fs = _set(tmp_path / "fs")
    _slow_evaluate(monkeypatch)
    kw = dict(classifier="svm", grid="small", out=tmp_path / "res", progress=False, log=lambda m: None)
    plain, standardized = _both([lambda: run_grid([fs], **kw), lambda: run_grid([fs], standardize=True, **kw)])
    # --out is the root: each configuration its own folder under it, named by its key, both whole
    assert isinstance(plain, Path) and isinstance(standardized, Path) and plain.parent != standardized.parent
    assert plain.parent.parent.parent == standardized.parent.parent.parent == tmp_path / "res"
    assert json.loads(plain.read_text())["grid_settings"]["standardize"] is False
    assert json.loads(standardized.read_text())["grid_settings"]["standardize"] is True


def test_the_same_configuration_twice_at_once_waits_for_the_first(tmp_path, monkeypatch):
    fs = _set(tmp_path / "fs")
    _slow_evaluate(monkeypatch)
    said = []
    kw = dict(classifier="svm", grid="small", out=tmp_path / "res", progress=False, log=said.append)
    first, second = _both([lambda: run_grid([fs], **kw), lambda: run_grid([fs], reuse=True, **kw)])
    assert first == second and first.parent.parent.parent == tmp_path / "res"
    assert any("another run of this same configuration is writing it; waiting" in m for m in said)
    assert any("current, kept" in m for m in said)  # the second reused the first's file


def test_results_csv_is_derived_again_when_it_does_not_match(tmp_path):
    fs = _set(tmp_path / "fs")
    path = run_grid([fs], classifier="svm", grid="small", out=tmp_path / "res", progress=False)
    good = path.with_name("results.csv").read_bytes()
    path.with_name("results.csv").write_text("garbage\n")
    said = []
    again = run_grid([fs], classifier="svm", grid="small", out=tmp_path / "res", progress=False, reuse=True,
                     log=said.append)
    assert again == path and path.with_name("results.csv").read_bytes() == good
    assert any("did not match results.json; derived from it again" in m for m in said)


# ----------------------------------------------------------------------------- the report's rule

def _results_file(path, seeds, accuracy=0.5):
    runs = [{"seed": s, "accuracy": accuracy + 0.01 * s, "features": "x"} for s in seeds]
    data = {"kind": "randomcnn-results", "version": 1, "dataset": "gtzan", "arch": "vgg", "width": "small",
            "weights": "random", "feature_length": 10, "entries": [
                {"classifier": "svm", "protocol": "cv-best", "runs": runs}]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def test_report_shows_the_superset_of_runs_whatever_the_path_order(tmp_path):
    from report.load import load_results
    one = _results_file(tmp_path / "results" / "gtzan" / "a_one" / "results.json", [0])
    three = _results_file(tmp_path / "results" / "gtzan" / "b_three" / "results.json", [0, 1, 2])
    os.utime(one, ns=(2 * 10**18, 2 * 10**18))  # the one-run file is the newer: the superset still wins
    rows, read, messages = load_results([tmp_path / "results"], log=lambda m: None)
    assert len(rows) == 1 and rows[0]["seeds"] == [0, 1, 2] and rows[0]["source"] == str(three)
    assert rows[0]["superseded"] == [str(one)]
    assert any(m.startswith(f"superseded {one} (seeds ['0']) by {three}") and "a superset of the runs" in m
               for m in messages)


def test_report_takes_the_newest_when_no_file_holds_the_others_runs(tmp_path):
    from report.load import load_results
    old = _results_file(tmp_path / "r" / "gtzan" / "b_old" / "results.json", [0, 1])
    new = _results_file(tmp_path / "r" / "gtzan" / "a_new" / "results.json", [1, 2])
    os.utime(old, ns=(10**18, 10**18))
    os.utime(new, ns=(2 * 10**18, 2 * 10**18))
    rows, _, messages = load_results([tmp_path / "r"], log=lambda m: None)
    assert [r["source"] for r in rows] == [str(new)] and any("the newest" in m for m in messages)


def test_report_states_the_rule_and_names_what_it_set_aside(tmp_path):
    from report.build import render_report
    one = _results_file(tmp_path / "results" / "gtzan" / "a_one" / "results.json", [0])
    _results_file(tmp_path / "results" / "gtzan" / "b_three" / "results.json", [0, 1, 2])
    md = (render_report([tmp_path / "results"], out=tmp_path / "report", log=lambda m: None) / "report.md").read_text()
    assert "### Superseded results" in md and "a superset of the runs" in md and f"superseded {one}" in md


def test_report_never_shows_a_partial_result_as_the_end_to_end_figure(tmp_path):
    from report.load import load_results
    path = _results_file(tmp_path / "results" / "gtzan" / "t" / "results.json", [0])
    data = json.loads(path.read_text())
    data["weights"] = "trained"
    data["entries"][0].update(protocol="end-to-end",
                              partial={"runs": {"0": {"folds_trained": [1], "folds": 3}}})
    path.write_text(json.dumps(data))
    rows, _, messages = load_results([tmp_path / "results"], log=lambda m: None)
    assert rows == [] and any("a partial result (seed 0: folds [1] of 3), not the end-to-end figure" in m
                              for m in messages)


# ----------------------------------------------------------------------------- training

def _toy(tmp_path, poison=None):
    """A one-layer model with batch norm; ``poison(model, epoch)`` may corrupt it during training."""
    from trained.loop import Trainer

    class Toy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = torch.nn.BatchNorm1d(4)
            self.fc = torch.nn.Linear(4, 2)
            self.calls = 0

        def logits(self, x):
            if self.training:
                self.calls += 1
                if poison is not None:
                    poison(self)
            return self.fc(self.bn(x))
    model = Toy()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    t = Trainer(model, model, None, opt, None, False, torch.device("cpu"),
                {"arch": "toy", "dims": {}, "fold": None, "dataset": "toy", "config": {}}, tmp_path)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    return model, t, (x, y, np.arange(16)), (x[:4].copy(), y[:4], np.arange(4))


def test_a_nan_training_loss_stops_the_run_naming_epoch_and_clips(tmp_path):
    from trained.loop import FitOptions, NonFinite, fit
    _, t, train_set, val_set = _toy(tmp_path)
    train_set[0][5, 2] = np.nan  # one clip's input
    ids = tuple(f"clip{i}" for i in range(16))
    with pytest.raises(NonFinite, match=r"training loss became nan at epoch 1 on a batch of clips .*clip5"):
        fit(t, train_set, val_set, FitOptions(3, 4, 0, patience=None, row_ids=ids), progress=False)
    assert not (tmp_path / "best.pt").exists()


def test_a_nan_validation_loss_stops_the_run(tmp_path):
    from trained.loop import FitOptions, NonFinite, fit
    _, t, train_set, val_set = _toy(tmp_path)
    val_set[0][1, 0] = np.inf
    with pytest.raises(NonFinite, match="validation loss is nan at epoch 1"):
        fit(t, train_set, val_set, FitOptions(3, 4, 0, patience=None), progress=False)
    assert not (tmp_path / "best.pt").exists()


def test_infinite_batch_norm_statistics_stop_the_run_and_are_never_kept_as_best(tmp_path):
    from architectures.checkpoint import read_checkpoint
    from trained.loop import FitOptions, NonFinite, fit

    def poison(model):
        if model.calls > 4:  # in the second epoch (4 batches an epoch)
            with torch.no_grad():
                model.bn.running_var.fill_(float("inf"))
    _, t, train_set, val_set = _toy(tmp_path, poison)
    with pytest.raises(NonFinite, match=r"after epoch 2, bn.running_var hold NaN or infinite values"):
        fit(t, train_set, val_set, FitOptions(5, 4, 0, patience=None), progress=False)
    best = read_checkpoint(tmp_path / "best.pt")
    assert best["epoch"] == 1 and all(torch.isfinite(v).all() for v in best["state_dict"].values()
                                      if v.is_floating_point())


@pytest.fixture
def folders(tmp_path):
    from conftest import write_class_folders
    return write_class_folders(tmp_path / "data", per_class=6)


def _train_cli(root, out, *extra):
    from trained.train import main
    main(["--arch", "sample-level", "--width", "small", "--dataset", "folder", "--root", str(root), "--folds", "3",
          "--epochs", "1", "--input-seconds", "0.5", "--batch-size", "4", "--workers", "0", "--cache-dir", "none",
          "--patch-seconds", "0", "--recipe", "toolkit-2025", "--out", str(out / "trained"), "--results-out", str(out / "results"),
          *extra])


def test_training_several_seeds_writes_one_results_file_with_every_run(folders, tmp_path, capsys):
    _train_cli(folders, tmp_path, "--seed", "0,1", "--fold", "1")
    printed = capsys.readouterr().out.strip().splitlines()
    res = json.loads(Path(printed[-1]).read_text())
    entry = res["entries"][0]
    assert entry["n_runs"] == 2 and [r["seed"] for r in entry["runs"]] == [0, 1]
    assert len(printed) == 3 and all(Path(p).is_dir() for p in printed[:2])  # two run folders, then the file


def test_a_per_fold_result_is_partial_and_other_recipes_are_other_results(folders, tmp_path, capsys):
    _train_cli(folders, tmp_path, "--fold", "1")
    first = Path(capsys.readouterr().out.strip().splitlines()[-1])
    _train_cli(folders, tmp_path, "--fold", "2", "--lr", "0.01")  # another recipe for fold 2
    second = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert first != second and first.is_file() and second.is_file()
    a, b = (json.loads(p.read_text())["entries"][0] for p in (first, second))
    assert a["partial"]["runs"]["0"] == {"folds_trained": [1], "folds": 3}
    assert b["partial"]["runs"]["0"] == {"folds_trained": [2], "folds": 3}  # fold 1's model is not merged in
    assert len(a["runs"][0]["fold_accuracies"]) == len(b["runs"][0]["fold_accuracies"]) == 1
    runs = sorted((tmp_path / "trained" / "folder").iterdir())
    assert len(runs) == 2 and [sorted(p.name for p in r.iterdir()) for r in runs] in (
        [["fold1"], ["fold2"]], [["fold2"], ["fold1"]])


# ----------------------------------------------------------------------------- the study

def test_study_renders_the_report_again_when_its_results_change_and_rederives_the_csv(tmp_path, capsys):
    from conftest import write_class_folders
    from studies.study import Study, run_study
    data = write_class_folders(tmp_path / "data", per_class=3)
    st = Study(dataset="folder", root=str(data), folds=3, archs=("mfcc",), seeds=(0,), width="small",
               input_seconds=1.0, workers=0, batch_size=2, classifier="svm", grid="small",
               out=str(tmp_path / "runs"), cache_dir=None)
    assert run_study(st) == 0
    (results,) = (tmp_path / "runs" / "results" / "folder").glob("*/results.json")
    report = tmp_path / "runs" / "report" / "report.md"
    capsys.readouterr()
    # a results file changed since the report (a run killed after its last grid, an edit): rendered again
    data_ = json.loads(results.read_text())
    data_["notes"] = ["edited"]
    results.write_text(json.dumps(data_))
    results.with_name("results.csv").write_text("garbage\n")
    before = report.stat().st_mtime_ns
    time.sleep(0.01)
    assert run_study(st) == 0
    err = capsys.readouterr().err
    assert "report current, kept" not in err and report.stat().st_mtime_ns > before
    assert "results.csv did not match results.json: derived from it again" in err
    assert results.with_name("results.csv").read_text().startswith("dataset,arch,width")
    inputs = json.loads((tmp_path / "runs" / "report" / "report_inputs.json").read_text())["results"]
    from toolkit.provenance import sha256_file
    assert inputs == [{"path": str(results), "sha256": sha256_file(results)}]
    # nothing changed: kept
    assert run_study(st) == 0
    assert "report current, kept" in capsys.readouterr().err


def test_training_cache_dir_none_means_no_cache(folders, tmp_path, monkeypatch):
    """--cache-dir none disables the decode cache in training as in extraction (it used to make a folder
    literally named 'none' in the working directory)."""
    from trained.settings import TrainSettings
    assert TrainSettings(cache_dir="none").cache_dir is None and TrainSettings(cache_dir="NONE").cache_dir is None
    monkeypatch.chdir(tmp_path)
    _train_cli(folders, tmp_path, "--seed", "0", "--fold", "1")
    assert not (tmp_path / "none").exists()
