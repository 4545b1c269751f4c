"""``python -m studies``: one command for a study, its estimate, resuming and failure summary."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import REPO, write_class_folders
from studies.__main__ import main as study_main
from studies.study import Study, estimate, measure_rate, run_study

WAVE = str(REPO / "examples" / "waveform_cnn.py") + ":WaveformCNN"


@pytest.fixture
def data(tmp_path):
    return write_class_folders(tmp_path / "data", per_class=3)


def _study(tmp_path, data, archs, **kw):
    return Study(dataset="folder", root=str(data), folds=3, archs=archs, seeds=[0, 1], width="small",
                 input_seconds=2.0, workers=0, batch_size=2, classifier="svm", grid="small",
                 out=str(tmp_path / "runs"), cache_dir=str(tmp_path / "cache"), **kw)


def test_estimate_is_gflop_over_rate_plus_decoding():
    plans = [{"arch": "a", "gflop_per_clip": 2.0, "clips_todo": 10},
             {"arch": "a", "gflop_per_clip": 2.0, "clips_todo": 5},
             {"arch": "b", "gflop_per_clip": None, "clips_todo": 10}]
    est = estimate(plans, rate_gflops=4.0, decode_s_per_clip=3.0)
    assert est["gflop"] == 30.0 and est["network_s"] == 7.5 and est["total_s"] == 10.5
    assert est["per_arch"] == {"a": 7.5, "b": 0.0}
    assert measure_rate(torch.device("cpu"), seconds=0.05) > 0.1  # any CPU does > 0.1 GFLOP/s


def test_study_runs_resumes_and_reports(tmp_path, data, capsys):
    st = _study(tmp_path, data, [WAVE, "mfcc"], protocol="cv-best")
    assert run_study(st) == 0
    err = capsys.readouterr().err
    # mfcc has no weights: one feature set whatever the seeds (was one per seed, the same bytes each)
    assert "estimate:" in err and "0 of 3 feature sets already done" in err
    assert "mfcc has no weights: extracted and scored once" in err and "mfcc timed on one clip" in err
    assert "study |" in err and "feature sets 3/3, grids 2/2" in err and "left]" in err  # the overall line
    assert "time: extraction estimated" in err and "the estimate)" in err  # estimate vs measured
    assert len(list((tmp_path / "runs" / "features" / "folder").glob("mfcc_*seed*-*/meta.json"))) == 1
    results = sorted((tmp_path / "runs" / "results" / "folder").glob("*/results.json"))
    # results folders: <arch>_<width>_<weights>_<results key>
    assert [p.parent.name.rsplit("_", 1)[0].split("-")[0] for p in results] == \
        ["mfcc_small_random", "waveform_cnn.WaveformCNN"]
    wave = json.loads(results[1].read_text())
    assert len(wave["features"]) == 2 and [e["protocol"] for e in wave["entries"]] == ["cv-best"]
    md = (tmp_path / "runs" / "report" / "report.md").read_text()
    means = {json.loads(p.read_text())["arch"].split("-")[0]: {e["classifier"]: e["mean"]
                                                            for e in json.loads(p.read_text())["entries"]}
             for p in results}
    for clf in means["mfcc"]:  # the rank the two means imply (ties share the better rank)
        own, base = means["waveform_cnn.WaveformCNN"][clf], means["mfcc"][clf]
        expected = 1 if own >= base else 2
        assert f"rank {expected} of 2 (folder, random weights, width small, {clf.upper()}," in md, (clf, own, base)
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("*") if p.suffix in (".npz", ".json")}
    # rerun: nothing is recomputed
    assert run_study(st) == 0
    err = capsys.readouterr().err
    assert "3 of 3 feature sets already done" in err and err.count("results current, kept") == 2
    assert "report current, kept" in err and "report written" not in err
    assert "nothing was left to extract" in err
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}
    # another grid setting reruns only the grids
    st = st.replace(protocol="nested-cv")
    assert run_study(st) == 0
    err = capsys.readouterr().err
    assert "results current" not in err and "3 of 3 feature sets already done" in err
    after = sorted((tmp_path / "runs" / "results" / "folder").glob("*/results.json"))
    new = [p for p in after if p not in results]  # other settings, other key: new folders, old ones kept
    assert len(new) == 2 and all(p.exists() for p in results)
    protocols = {p.parent.name.split("_")[0]: [e["protocol"] for e in json.loads(p.read_text())["entries"]]
                 for p in new}
    assert sorted(protocols.values()) == [["nested-cv"], ["nested-cv"]]


def test_a_failing_part_is_summarised_and_the_rest_goes_on(tmp_path, data, capsys):
    bad = tmp_path / "bad.py"
    bad.write_text("import not_a_module_anywhere\n")
    code = study_main(["--dataset", "folder", "--root", str(data), "--folds", "3", "--arch", "mfcc",
                       f"{bad}:Net", "--seed", "0", "1", "--width", "small", "--classifier", "svm", "--grid",
                       "small", "--out", str(tmp_path / "runs"), "--cache-dir", "none", "--workers", "0"])
    assert code == 1
    err = capsys.readouterr().err
    assert "summary: 1 of 3 feature sets, 1 of 2 results files, report written" in err
    assert "failed: extract" in err and "(seed 0, 1)" in err
    assert err.count("No module named 'not_a_module_anywhere'") == 2  # found once, summarised once
    assert (tmp_path / "runs" / "report" / "report.md").exists()


def test_estimate_only_writes_nothing(tmp_path, data, capsys):
    code = study_main(["--dataset", "folder", "--root", str(data), "--folds", "3", "--arch", "mfcc", WAVE,
                       "--width", "small", "--out", str(tmp_path / "runs"), "--cache-dir", "none",
                       "--estimate-only"])
    assert code == 0
    err = capsys.readouterr().err
    assert "estimate:" in err and "GFLOP" in err
    assert not (tmp_path / "runs" / "features").exists() or not list((tmp_path / "runs").rglob("*.npz"))


def test_one_error_of_several_seeds_is_printed_once_and_summarised_once(tmp_path, data, capsys):
    """vgg needs 1280 frames: at 2 s every seed fails the same way; said once as it happens, once at the end."""
    st = _study(tmp_path, data, ["vgg"], protocol="cv-best")
    assert run_study(st) == 1
    err = capsys.readouterr().err
    assert err.count("needs at least 1280 frames") == 2, err
    assert "failed: extract vgg (seed 0, 1): " in err


def test_each_model_is_built_once_per_study_and_cudnn_flags_are_restored(tmp_path, data, monkeypatch):
    """The study plans every part for its estimate; extraction takes that plan's model instead of
    building it again (issue 18: it was built twice). Extraction's fixed cuDNN algorithms hold only
    while it computes: torch's flags are the caller's again afterwards."""
    import features.extract as ex
    built, during = [], []
    real_build, real_local = ex.build_frontend, ex._run_local

    def counting_build(arch, **kw):
        built.append((arch, kw.get("seed")))
        return real_build(arch, **kw)

    def recording_local(*a, **kw):
        during.append((torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic))
        return real_local(*a, **kw)

    monkeypatch.setattr(ex, "build_frontend", counting_build)
    monkeypatch.setattr(ex, "_run_local", recording_local)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    assert run_study(_study(tmp_path, data, ["sample-level"])) == 0
    assert sorted(built) == [("sample-level", 0), ("sample-level", 1)]  # once per seed, not twice
    assert during == [(False, True), (False, True)]
    assert (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic) == (True, False)


def test_study_crop_reaches_extraction_and_names_the_feature_sets(tmp_path, data):
    """--crop (and --pad) of the study are extraction's: part of each feature set's settings and key,
    so a study with another crop never reuses these sets."""
    from studies.__main__ import parse_args
    a = parse_args(["--dataset", "folder", "--root", str(data), "--crop", "windows", "--pad", "zero"])
    assert a.settings.crop == "windows" and a.settings.pad == "zero"
    base = a.settings.extract_settings()
    assert (base.crop, base.pad) == ("windows", "zero")
    assert base.key() != base.replace(crop="start").key()
    st = _study(tmp_path, data, ["sample-level"], crop="center")
    assert run_study(st) == 0
    metas = [json.loads(p.read_text()) for p in (tmp_path / "runs" / "features").rglob("meta.json")]
    assert len(metas) == 2 and all(m["config"]["settings"]["crop"] == "center" for m in metas)
