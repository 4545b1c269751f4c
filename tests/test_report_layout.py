"""The report answers first: per dataset a headline, a ranked leaderboard, figures with one colour per
front-end, a chance line and a legend that tells the depth curves apart, the significance as a compact
matrix with the full tables collapsed and in significance.csv, empty sections as one line; and it fits a
1400 px and a 900 px browser window (headless Chromium; skipped where it is absent)."""
from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from test_report import write_results
from report import figures
from report.build import render_report

STUDY = ["sample-level", "frame-level", "frame-level-many", "7x96", "7x86", "timbral", "temporal",
         "timbral+temporal", "timbral+time", "vgg"]
OWN = ["waveform_cnn.WaveformCNN-1a2b3c4d", "spectrogram_cnn.SpectrogramCNN-9f8e7d6c"]
GROUPS = [(c, p) for c in ("svm", "elm") for p in ("cv-best", "nested-cv")]


def _demo_like(tmp_path):
    """What `make demo` reports: 12 front-ends with 3 runs and the MFCC baseline scored once, SVM and ELM
    under cv-best and nested-cv, on a 3-class dataset."""
    rng = np.random.default_rng(0)
    means = {}
    for a in STUDY + OWN:
        base = 0.4 + 0.4 * rng.random()
        means[a] = base
        write_results(tmp_path, "synthetic", a, {g: list(np.clip(base + rng.normal(0, 0.02, 3), 0, 1))
                                                  for g in GROUPS}, width="small", feature_length=112)
    write_results(tmp_path, "synthetic", "mfcc", {g: [0.55] for g in GROUPS}, width="small", feature_length=120)
    return render_report([tmp_path / "results"], out=tmp_path / "report", log=lambda m: None), means


def test_headline_leaderboard_matrix_and_collapsed_tables(tmp_path):
    out, means = _demo_like(tmp_path)
    md = (out / "report.md").read_text()
    section = md.split("## Dataset: synthetic", 1)[1]
    headline = section.strip().split("\n\n")[0]
    best = max(means, key=means.get)
    assert headline.startswith("SVM, cv-best (optimistic): **") and f"**{best}** leads" in headline
    assert "points ahead of" in headline and "MFCC baseline 55.0%" in headline and "chance 33.3%" in headline
    assert "significantly" in headline or "significance n/a" in headline
    assert "Your front-end **waveform_cnn.WaveformCNN-1a2b3c4d** ranks" in headline
    # the leaderboard comes before the figures and is sorted by its first column, best first
    board = section.index("Leaderboard, random weights, width small")
    assert board < section.index("![") < section.index("### Significance")
    rows = [line.split(" | ") for line in section[board:].split("\n") if re.match(r"^\| \d+ \|", line)][:13]
    first = [float(r[3].split("\u00a0")[0]) for r in rows]
    assert first == sorted(first, reverse=True) and len(rows) == 13
    assert rows[0][1] == best
    # the significance: 4 matrices of 12 rows (upper triangle), not 4 x 78 rows of pairs; those collapsed
    matrices = section.split("### Significance (synthetic)")[1].split("<details>")[0]
    assert matrices.count("accuracy of the row's front-end minus the column's") == 4
    assert "<details><summary>Every pairwise test on synthetic" in section
    assert "<details><summary>Every result on synthetic" in section
    html = (out / "report.html").read_text()
    assert html.count("<details>") >= 3 and "<strong>" in html
    with open(out / "significance.csv", newline="") as f:
        sig = list(csv.DictReader(f))
    assert len(sig) == 4 * 78  # every pair of the 13 in each of the 4 groups
    vgg_mfcc = next(r for r in sig if {r["a"], r["b"]} == {"vgg", "mfcc"} and r["classifier"] == "svm")
    assert vgg_mfcc["p_t"] != "" and vgg_mfcc["t_note"] == ""  # one-sample test against the baseline
    # empty sections are one line each
    assert "**Random vs trained**: no trained-weight results yet" in md and "## Random vs trained" not in md
    assert "**Published orderings**: none of the study's" in md


def test_one_colour_per_front_end_across_figures_and_a_chance_line(tmp_path, monkeypatch):
    drawn = []
    real = figures.save_figure

    def keep(fig, path, dpi=100):
        bars = {}
        for ax in fig.axes:
            leg = ax.get_legend()
            labels = {t.get_text(): h for h, t in zip(leg.legend_handles, leg.get_texts())} if leg else {}
            for name, handle in labels.items():
                if hasattr(handle, "get_facecolor"):
                    bars[name] = tuple(np.round(handle.get_facecolor(), 3))
            lines = [c for c in ax.collections if getattr(c, "get_linestyle", None)]
            drawn.append((path.name, bars, [c.get_segments()[0][0][1] for c in lines if len(c.get_segments())]))
        return real(fig, path, dpi)

    monkeypatch.setattr(figures, "save_figure", keep)
    _demo_like(tmp_path)
    bar_figs = [d for d in drawn if d[0].startswith("fig_bars_")]
    assert len(bar_figs) == 2
    (_, a, ya), (_, b, yb) = bar_figs
    archs = STUDY + OWN
    assert all(x in a for x in archs) and all(a[x] == b[x] for x in archs)  # the same colour in both
    assert len({a[x] for x in archs}) == len(archs)  # and no two front-ends share one
    assert any(abs(y - 100 / 3) < 1e-6 for y in ya) and any(abs(y - 55.0) < 1e-6 for y in ya)  # chance, MFCC
    rgb = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in figures.PALETTE[:len(archs)]], float)
    gaps = [np.abs(rgb[i] - rgb[j]).sum() for i in range(len(rgb)) for j in range(i)]
    assert min(gaps) > 60  # distinct shades, not light and dark variants of one hue side by side


def test_depth_legend_tells_layer_alone_from_layers_1_to_k(tmp_path):
    from report.rank import per_layer_figures
    import matplotlib.pyplot as plt
    seen = {}
    real = figures.save_figure

    def keep(fig, path, dpi=100):
        for line in fig.axes[0].get_legend().get_lines():
            seen[line.get_label()] = (line.get_linestyle(), line.get_marker(), line.get_markerfacecolor(),
                                      line.get_color())
        return real(fig, path, dpi)

    import report.rank as rank
    rank.save_figure, old = keep, rank.save_figure
    try:
        curve = {"dataset": "d", "arch": "x", "width": "small", "weights": "random", "n_classes": 4,
                 "layers": [{"name": "c1"}, {"name": "c2"}],
                 "curves": [{"classifier": clf, "protocol": "split", "mode": m,
                             "points": [{"k": 1, "mean": 0.5}, {"k": 2, "mean": 0.6}]}
                            for clf in ("svm", "elm") for m in ("alone", "cumulative")]}
        per_layer_figures([curve], tmp_path)
    finally:
        rank.save_figure = old
    plt.close("all")
    alone = seen["SVM split, layer k alone"]
    together = seen["SVM split, layers 1..k together"]
    assert alone[0] != together[0] and alone[2] != together[2]  # dotted and hollow against solid and filled
    assert alone[1] == together[1] != seen["ELM split, layers 1..k together"][1], list(seen)  # a marker each
    lines = [v for k, v in seen.items() if not k.startswith("chance")]
    assert {v[3] for v in lines} == {figures.colour_of("x")}  # the front-end's colour, as in every figure
    assert "chance (25.0%)" in seen


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


_PROBE = ("<script>window.addEventListener('load',function(){var o=[];document.querySelectorAll('.scroll')"
          ".forEach(function(d,i){if(d.scrollWidth>d.clientWidth+1)o.push(i)});var e=document.documentElement;"
          "var r=document.createElement('pre');r.id='probe';r.textContent=JSON.stringify({overflow:o,"
          "page:e.scrollWidth,view:window.innerWidth,boxes:document.querySelectorAll('.scroll').length});"
          "document.body.appendChild(r)});</script>")


@pytest.mark.parametrize("width", [1400, 900])
def test_fits_the_window_in_headless_chromium(tmp_path, width):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    plt = pytest.importorskip("matplotlib.pyplot")
    out, _ = _demo_like(tmp_path)
    common = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={width},1800"]
    shot = tmp_path / f"shot{width}.png"
    subprocess.run([*common, f"--screenshot={shot}", (out / "report.html").resolve().as_uri()],
                   capture_output=True, timeout=120, check=False)
    assert shot.is_file(), "chromium wrote no screenshot"
    img = plt.imread(shot)[..., :3]
    assert img.shape[:2] == (1800, width)
    assert img.std() > 0.05 and (img < 0.5).mean() > 0.005  # text and figures, not blank white
    # the layout itself: no table box wider than the page's column, no page wider than the window
    probe = tmp_path / "probe.html"
    probe.write_text((out / "report.html").read_text().replace("</body>", _PROBE + "</body>"))
    r = subprocess.run([*common, "--dump-dom", probe.resolve().as_uri()], capture_output=True, text=True,
                       timeout=120, check=False)
    found = re.search(r'<pre id="probe">([^<]*)</pre>', r.stdout)
    assert found, r.stderr[-500:]
    layout = json.loads(found.group(1).replace("&gt;", ">"))
    assert layout["boxes"] >= 9 and layout["overflow"] == [], layout
    assert layout["page"] <= layout["view"], layout
