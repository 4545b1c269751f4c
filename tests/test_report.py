"""Tests of the results comparison report (report/*.py).

Every test writes its own results files in the format of docs/formats.md ("Results").
"""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from report import stats as report_stats
from report.published import PUBLISHED, published_figure
from report.build import main, render_report
from report.load import load_results

REPO = Path(__file__).resolve().parent.parent
CLASSES = ["a", "b", "c"]


def _predictions(acc: float, seed: int, n: int = 60) -> dict:
    """Predictions on n clips of which round(acc * n) are right."""
    rng = np.random.default_rng(seed)
    ids = [f"clip{i:03d}.wav" for i in range(n)]
    y_true = [CLASSES[i % 3] for i in range(n)]
    right = np.zeros(n, bool)
    right[rng.choice(n, int(round(acc * n)), replace=False)] = True
    y_pred = [t if ok else CLASSES[(CLASSES.index(t) + 1) % 3] for t, ok in zip(y_true, right)]
    return {"ids": ids, "y_true": y_true, "y_pred": y_pred}


def write_results(root: Path, dataset: str, arch: str, entries: dict, weights: str = "random",
                  width: str = "large", feature_length: int = 3584, predictions: bool = True) -> Path:
    """Write one results.json; entries maps (classifier, protocol) -> list of run accuracies."""
    folder = root / "results" / dataset / f"{arch}_{width}_{weights}"
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for (clf, protocol), accs in entries.items():
        runs = [{"seed": s, "features": f"runs/features/{dataset}/{arch}_{width}_{weights}_seed{s}",
                 "accuracy": a, "selected": {"C": 2}, "fold_accuracies": None,
                 "per_class_accuracy": {}, "labels": CLASSES, "confusion": [],
                 "predictions": _predictions(a, hash((arch, clf, s)) % 2**32) if predictions else None}
                for s, a in enumerate(accs)]
        out.append({"classifier": clf, "protocol": protocol, "optimistic": protocol == "cv-best",
                    "runs": runs, "mean": float(np.mean(accs)),
                    "std": float(np.std(accs, ddof=1)) if len(accs) > 1 else None,
                    "n_runs": len(accs), "failed_points": [], "timings": {"total_s": 1.0}})
    data = {"kind": "randomcnn-results", "version": 1, "dataset": dataset, "arch": arch,
            "width": width, "weights": weights, "feature_length": feature_length,
            "n_params": 1000 + len(arch), "gflop_per_clip": 1.5, "extract_clips_per_s": 4.0,
            "features": [], "entries": out}
    (folder / "results.json").write_text(json.dumps(data))
    return folder / "results.json"


def _summary(folder: Path) -> list[dict]:
    with open(folder / "summary.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_table_holds_means_and_stds(tmp_path):
    accs = {("svm", "split"): [0.61, 0.58, 0.64], ("elm", "split"): [0.45]}
    write_results(tmp_path, "gtzan", "vgg", accs, feature_length=3585)
    write_results(tmp_path, "gtzan", "7x96", {("svm", "split"): [0.40, 0.46, 0.41]},
                  feature_length=3585)
    write_results(tmp_path, "gtzan", "samplecnn", {("samplecnn-basic", "end-to-end"): [0.7, 0.74]},
                  weights="trained", feature_length=512)
    out = render_report(results=[tmp_path / "results"], out=tmp_path / "report")
    rows = {(r["arch"], r["classifier"]): r for r in _summary(out)}
    assert float(rows[("samplecnn", "samplecnn-basic")]["mean_pct"]) == pytest.approx(72.0)
    svm = rows[("vgg", "svm")]
    assert float(svm["mean_pct"]) == pytest.approx(100 * np.mean([0.61, 0.58, 0.64]))
    assert float(svm["std_pct"]) == pytest.approx(100 * np.std([0.61, 0.58, 0.64], ddof=1))
    assert rows[("vgg", "elm")]["std_pct"] == ""  # one run: no std
    md = (out / "report.md").read_text()
    assert "61.0 ± 3.0" in md and "45.0 ± n/a (1 run)" in md
    assert "42.3 ± 3.2" in md  # 7x96: mean 42.33, std 3.21
    assert (out / "report.html").is_file() and list(out.glob("fig_bars_gtzan_*.png"))


def test_published_figure_beside_ours_only_where_it_exists(tmp_path):
    write_results(tmp_path, "gtzan", "vgg", {("svm", "split"): [0.6, 0.62]}, feature_length=3585)
    write_results(tmp_path, "gtzan", "7x96", {("svm", "split"): [0.5, 0.5]}, feature_length=3585)
    write_results(tmp_path, "gtzan", "7x96", {("svm", "split"): [0.8, 0.8]}, weights="trained",
                  feature_length=3585)
    write_results(tmp_path, "gtzan", "vgg", {("svm", "split"): [0.3, 0.3]}, width="small",
                  feature_length=120)
    out = render_report(results=[tmp_path], out=tmp_path / "report")
    rows = {(r["arch"], r["weights"], r["width"]): r for r in _summary(out)}
    vgg = rows[("vgg", "random", "large")]
    assert float(vgg["published_pct"]) == 59.65 and vgg["published_exact"] == "True"
    assert float(vgg["diff_pct"]) == pytest.approx(61.0 - 59.65)
    assert rows[("7x96", "random", "large")]["published_exact"] == "False"
    assert rows[("7x96", "trained", "large")]["published_pct"] == ""
    assert rows[("vgg", "random", "small")]["published_pct"] == ""
    md = (out / "report.md").read_text()
    assert "| 59.65 | +1.4 |" in md and "| ~45.0 | ~+5.0 |" in md
    assert "Not run" in md and "timbral SVM" in md  # says what is missing
    # Published data: exact figures from the text, approximate ones flagged; names mapped.
    assert PUBLISHED[("extended-ballroom", "temporal", "svm")] == (89.82, True, 3584)
    assert PUBLISHED[("us8k", "frame-level-many", "elm")].exact is False
    assert published_figure("us8k", "vgg", "svm", "random", "split", 3585) is None
    assert published_figure("us8k", "vgg", "svm", "random", "nested-cv", 3585).accuracy == 70.74


def test_ttest_matches_scipy_student():
    a, b = [0.61, 0.58, 0.64], [0.50, 0.55, 0.47]
    res = report_stats.ttest(a, b)
    ref = stats.ttest_ind(a, b, equal_var=True)
    assert res["t"] == pytest.approx(ref.statistic) and res["p"] == pytest.approx(ref.pvalue)
    assert res["p"] != pytest.approx(stats.ttest_ind(a, [0.5, 0.55, 0.47, 0.2], equal_var=False).pvalue)
    assert report_stats.ttest([0.6], b) == {"t": None, "p": None, "note": "n/a (1 run)"}


def test_pairwise_tests_use_scipy_and_mcnemar_on_shared_clips(tmp_path):
    write_results(tmp_path, "gtzan", "vgg", {("svm", "split"): [0.70, 0.66, 0.72]})
    write_results(tmp_path, "gtzan", "7x96", {("svm", "split"): [0.40, 0.45, 0.38]})
    write_results(tmp_path, "gtzan", "mfcc", {("svm", "split"): [0.55]}, feature_length=120)
    rows, _, _ = load_results([tmp_path])
    (key, pairs), = report_stats.pairwise_tests(rows).items()
    assert key == ("gtzan", "random", "large", "svm", "split")
    pair = next(p for p in pairs if {p["a"], p["b"]} == {"7x96", "vgg"})
    ref = stats.ttest_ind([0.40, 0.45, 0.38], [0.70, 0.66, 0.72], equal_var=True)
    assert pair["p_t"] == pytest.approx(ref.pvalue)
    mf = next(p for p in pairs if "mfcc" in (p["a"], p["b"]))
    # the MFCC baseline has no weights (scored once): the other side's runs against its one number
    other = [0.70, 0.66, 0.72] if "vgg" in (mf["a"], mf["b"]) else [0.40, 0.45, 0.38]
    assert mf["t_note"] == "" and mf["p_t"] == pytest.approx(stats.ttest_1samp(other, 0.55).pvalue)
    assert mf["p_mcnemar"] is not None
    # McNemar from the first runs' predictions, recounted by hand.
    by = {r["arch"]: r["predictions"][0] for r in rows}
    right = {a: np.array([t == p for t, p in by[a].values()]) for a in ("7x96", "vgg")}
    b = int(np.sum(right["7x96"] & ~right["vgg"]))
    c = int(np.sum(~right["7x96"] & right["vgg"]))
    assert (pair["b_only"], pair["c_only"]) == (b, c)
    assert pair["p_mcnemar"] == pytest.approx(stats.binomtest(b, b + c, 0.5).pvalue)
    assert pair["p_mcnemar"] < 0.05  # 42 vs 70 % on 60 clips


def test_mcnemar_matches_by_id_and_counts_discordant():
    ids = [f"x{i}" for i in range(20)]
    a = {i: ("k", "k") for i in ids}  # a right on everything
    b = {i: ("k", "k" if n >= 7 else "z") for n, i in enumerate(ids)}  # b wrong on 7
    b["x19"] = ("k", "z")  # and on one more
    a["x3"] = ("k", "q")  # a wrong where b is wrong too: concordant
    b["extra"] = ("k", "k")  # not in a: ignored
    res = report_stats.mcnemar(a, dict(reversed(list(b.items()))))
    assert (res["n"], res["b"], res["c"]) == (20, 7, 0)
    assert res["p"] == pytest.approx(stats.binomtest(7, 7, 0.5).pvalue)
    assert report_stats.mcnemar(a, None)["note"] == "n/a (no predictions)"
    assert report_stats.mcnemar(a, {"x1": ("other", "k")})["p"] is None


def test_holm_textbook_example():
    adj = report_stats.holm([0.01, 0.04, None, 0.03, 0.005])
    assert adj[2] is None
    assert adj[0] == pytest.approx(0.03) and adj[4] == pytest.approx(0.02)
    assert adj[3] == pytest.approx(0.06) and adj[1] == pytest.approx(0.06)  # monotone


def test_random_vs_trained_correlation_matches_scipy(tmp_path):
    archs = ["vgg", "7x96", "7x86", "timbral", "sample-level"]
    rnd = [0.60, 0.45, 0.53, 0.52, 0.50]
    trn = [0.80, 0.62, 0.71, 0.75, 0.64]
    for arch, r, t in zip(archs, rnd, trn):
        write_results(tmp_path, "gtzan", arch, {("svm", "split"): [r]})
        write_results(tmp_path, "gtzan", arch, {("svm", "split"): [t]}, weights="trained")
    write_results(tmp_path, "us8k", "vgg", {("svm", "nested-cv"): [0.7]})
    write_results(tmp_path, "us8k", "vgg", {("svm", "nested-cv"): [0.8]}, weights="trained")
    rows, _, _ = load_results([tmp_path])
    pairs = report_stats.random_vs_trained(rows)
    assert len(pairs) == 6
    corr = {c["scope"]: c for c in report_stats.correlations(pairs)}
    g = corr["gtzan / svm / split"]
    assert g["spearman"] == pytest.approx(stats.spearmanr(rnd, trn).statistic)
    assert g["kendall"] == pytest.approx(stats.kendalltau(rnd, trn).statistic)
    assert g["p_kendall"] == pytest.approx(stats.kendalltau(rnd, trn).pvalue)
    assert corr["us8k / svm / nested-cv"]["note"].startswith("cannot be computed (1 pair")
    allp = corr["all pairs pooled (mixes settings)"]
    assert allp["n"] == 6 and allp["spearman"] == pytest.approx(
        stats.spearmanr(rnd + [0.7], trn + [0.8]).statistic)
    out = render_report(results=[tmp_path], out=tmp_path / "report")
    assert (out / "fig_random_vs_trained.png").is_file()


def _ordering(rows, name, dataset):
    return [o for o in report_stats.check_orderings(rows)
            if o["ordering"] == name and o["dataset"] == dataset]


def test_orderings_flip_when_the_numbers_do(tmp_path):
    chain, second = "sample-level > frame-level many-shapes", "frame-level many-shapes > frame-level"
    good = {"sample-level": [0.70, 0.72], "frame-level-many": [0.50, 0.52], "frame-level": [0.40, 0.41]}
    for arch, accs in good.items():
        write_results(tmp_path / "good", "gtzan", arch, {("svm", "split"): accs})
    rows, _, _ = load_results([tmp_path / "good"])
    (o,) = _ordering(rows, chain, "gtzan")
    assert o["holds"] == "yes" and "t-test p < 0.05" in o["detail"]
    assert _ordering(rows, second, "gtzan")[0]["holds"] == "yes"
    assert _ordering(rows, "7x86 > 7x96", "gtzan")[0]["holds"] == "not run"
    assert _ordering(rows, chain, "us8k")[0]["holds"] == "not run"
    bad = dict(good, **{"frame-level": [0.55, 0.56]})  # frame-level now beats many-shapes
    for arch, accs in bad.items():
        write_results(tmp_path / "bad", "gtzan", arch, {("svm", "split"): accs})
    rows, _, _ = load_results([tmp_path / "bad"])
    assert _ordering(rows, second, "gtzan")[0]["holds"] == "no"
    # "top" orderings: temporal and timbral+temporal the two best spectrogram models, then not;
    # the MFCCs (0.95) are not in that field
    top = "temporal and timbral+temporal: the two best spectrogram models"
    for acc_t, expected in ((0.9, "yes"), (0.5, "no")):
        d = tmp_path / f"ballroom{acc_t}"
        write_results(d, "extended-ballroom", "temporal", {("svm", "cv-best"): [acc_t]})
        write_results(d, "extended-ballroom", "timbral+temporal", {("svm", "cv-best"): [0.8]})
        write_results(d, "extended-ballroom", "vgg", {("svm", "cv-best"): [0.7]})
        write_results(d, "extended-ballroom", "mfcc", {("svm", "cv-best"): [0.95]}, feature_length=120)
        rows, _, _ = load_results([d])
        assert _ordering(rows, top, "extended-ballroom")[0]["holds"] == expected


def test_broken_files_are_skipped_with_their_name(tmp_path, capsys):
    good = write_results(tmp_path, "gtzan", "vgg", {("svm", "split"): [0.6, 0.62]})
    trunc = write_results(tmp_path, "gtzan", "7x96", {("svm", "split"): [0.5, 0.5]})
    trunc.write_text(trunc.read_text()[:200])
    nometa = write_results(tmp_path, "gtzan", "7x86", {("svm", "split"): [0.5, 0.5]})
    data = json.loads(nometa.read_text())
    del data["arch"], data["weights"]
    nometa.write_text(json.dumps(data))
    mixed = write_results(tmp_path, "gtzan", "timbral", {("svm", "split"): [0.5, 0.5]})
    data = json.loads(mixed.read_text())
    data["entries"][0]["runs"][1]["features"] = "runs/features/us8k/timbral_large_random_seed1"
    mixed.write_text(json.dumps(data))
    moved = tmp_path / "results" / "us8k" / "x" / "results.json"
    moved.parent.mkdir(parents=True)
    shutil.copy(good, moved)  # says gtzan, lies under results/us8k
    (tmp_path / "results.csv").write_text("dataset,arch\ngtzan,vgg\n")
    out = render_report(results=[tmp_path, tmp_path / "results.csv"], out=tmp_path / "report")
    err = capsys.readouterr().err
    assert f"skipped {tmp_path / 'results.csv'}: not a results.json" in err
    for bad, why in ((trunc, "malformed or truncated JSON"), (nometa, "missing arch, weights"),
                     (mixed, "datasets mixed"), (moved, "datasets mixed")):
        assert str(bad) in err and why in err.split(str(bad))[1].splitlines()[0]
    assert [r["arch"] for r in _summary(out)] == ["vgg"]
    md = (out / "report.md").read_text()
    assert str(trunc) in md and "| vgg |" in md


def test_cli_prints_path_last_and_handles_no_results(tmp_path, capsys):
    main([str(tmp_path / "nothing"), "--out", str(tmp_path / "rep")])
    out = capsys.readouterr()
    assert out.out.strip().splitlines()[-1] == str(tmp_path / "rep")
    assert "no such file or folder" in out.err
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "No usable results" in md and "gtzan, extended-ballroom, us8k" in md
    # an empty section is one line, not a heading over an empty table
    assert "**Random vs trained**: no trained-weight results yet" in md and "## Random vs trained" not in md
    assert "**Published orderings**: none of the study's" in md


def test_report_does_not_import_torch():
    code = "import sys, report.build; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


def test_html_renders_in_headless_chromium(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    plt = pytest.importorskip("matplotlib.pyplot")
    for arch, acc in (("vgg", 0.6), ("7x96", 0.45), ("7x86", 0.52), ("mfcc", 0.53)):
        write_results(tmp_path, "gtzan", arch, {("svm", "split"): [acc, acc + 0.02],
                                                ("elm", "split"): [acc - 0.1, acc - 0.07]})
    out = render_report(results=[tmp_path / "results"], out=tmp_path / "report")
    shot = tmp_path / "shot.png"
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
           "--window-size=1200,1600", (out / "report.html").resolve().as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    assert shot.is_file(), "chromium wrote no screenshot"
    img = plt.imread(shot)[..., :3]
    assert img.shape[:2] == (1600, 1200)
    assert img.std() > 0.05 and (img < 0.5).mean() > 0.005  # text and figures, not blank white


def test_reads_what_the_real_grid_writes(tmp_path):
    """The report reads classifiers.grid's own output (the contract of docs/formats.md)."""
    from classifiers import grid  # an import error here is a failure, not a skip
    from classifiers.featureset import synthetic_feature_set, write_feature_set
    for arch, sep in (("vgg", 3.0), ("7x96", 0.3)):
        d = synthetic_feature_set(n_clips=60, n_features=8, separation=sep, seed=0)
        fs = write_feature_set(tmp_path / "features" / "synthetic" / f"{arch}_large_random_seed0", **d,
                               meta={"arch": arch, "n_params": 10, "gflop_per_clip": 0.1})
        grid.run_grid([fs], classifier="svm", grid="small", progress=False,
                      out=tmp_path / "results" / "synthetic" / f"{arch}_large_random")
    messages = []
    rows, read, _ = load_results([tmp_path / "results"], log=messages.append)
    assert len(read) == 2 and not messages
    assert {r["arch"] for r in rows} == {"vgg", "7x96"} and all(r["predictions"][0] for r in rows)
    (pairs,) = report_stats.pairwise_tests(rows).values()
    assert pairs[0]["n_clips"] > 0 and pairs[0]["p_mcnemar"] is not None
