"""The results comparison report: ``python -m report [RESULTS ...] [--out DIR]``.

Reads every ``results.json`` under ``runs/`` (or the files and folders given) and writes a folder
with ``report.md``, ``report.html`` (self-contained: the same PNGs inlined as base64, simple CSS,
no JavaScript, no network), the PNG figures next to ``report.md`` and ``summary.csv`` (the main
table). Unreadable files and entries are skipped with a message naming them; the report says
what is missing instead of failing.
"""
from __future__ import annotations

import argparse
import base64
import csv
import errno
import html
import io
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from toolkit.cli import HelpFormatter, interruptible, prog
from toolkit.provenance import atomic_write_many
from report.published import (PUBLISHED, PUBLISHED_PROTOCOLS, STUDY_DATASETS, TRAINED_REFERENCES,
                              published_figure)
from report.figures import (bar_charts, batchnorm_chart, read_staged, scatter_random_trained, slug, stage, staged,
                            use_archs)
from report.judge import judge_blocks, multilabel_blocks
from report.load import SUPERSEDE_RULE, find_results, load_results
from report.settings import ReportSettings
from toolkit.provenance import sha256_file
from report.headline import headline, leaderboards, significance_blocks, significance_csv
from report.rank import rank_blocks, rank_new
from report.stats import (check_orderings, correlations, cost_table, fmt_p, pairwise_tests, protocol_label,
                          random_vs_trained, summary_table)

__all__ = ["render_report", "main"]

_SUMMARY_COLUMNS = ("dataset", "arch", "width", "weights", "feature_length", "classifier",
                    "protocol", "n_runs", "mean_pct", "std_pct", "published_pct", "published_exact",
                    "diff_pct",
                    "source")
_CSS = """body{font-family:sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222}
.scroll{max-width:100%;overflow-x:auto;margin:.6em 0 1.2em}
table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #bbb;padding:3px 6px;text-align:left;white-space:nowrap}th{background:#eef;white-space:normal}
td.wrap{white-space:normal;overflow-wrap:anywhere;min-width:9em}
tr:nth-child(even) td{background:#f7f7f7}figure{margin:1em 0}img{max-width:100%;height:auto}
figcaption{font-size:12px;color:#555}code{background:#f2f2f2;padding:0 3px}
details{margin:.6em 0}summary{cursor:pointer;color:#225;font-weight:bold}
h2{border-bottom:1px solid #ccd;padding-bottom:.2em;margin-top:1.6em}"""


def _num(x, spec=".1f", none="–") -> str:
    return none if x is None else format(x, spec)


def _published_cells(s: dict) -> tuple[str, str]:
    if s["published_pct"] is None:
        return "–", "–"
    diff = round(s["diff_pct"], 1) + 0.0  # + 0.0 turns a rounded -0.0 into 0.0
    if s["published_exact"]:
        return f"{s['published_pct']:.2f}", f"{diff:+.1f}"
    return f"~{s['published_pct']:.1f}", f"~{diff:+.1f}"  # read off a chart: +-1 point


def _missing_published(rows: list[dict], dataset: str) -> list[str]:
    """Published settings of a study dataset that no random-weight row reproduces."""
    have = {(r["arch"], r["classifier"]) for r in rows
            if r["dataset"] == dataset and published_figure(
                dataset, r["arch"], r["classifier"], r["weights"], r["protocol"],
                r["feature_length"]) is not None}
    return [f"{arch} {clf.upper()}" for (ds, arch, clf) in PUBLISHED
            if ds == dataset and (arch, clf) not in have]


def _full_table(ds, summary) -> list:
    table = [[s["arch"], s["width"], s["weights"], _num(s["feature_length"], "d"), s["classifier"],
              s["protocol"], str(s["n_runs"]),
              f"{s['mean_pct']:.1f} ± {_num(s['std_pct'], '.1f', 'n/a (1 run)')}", *_published_cells(s)]
             for s in summary if s["dataset"] == ds]
    return [("table", ["architecture", "width", "weights", "features", "classifier", "protocol", "runs",
                       "accuracy % (mean ± std)", "published %", "ours − published"], table)]


def _dataset_blocks(ds: str, rows, summary, tests, figures, ranks) -> list:
    """A dataset's section, the answer first: headline, leaderboard, figures, significance matrix; the
    full tables collapsed (and in summary.csv / significance.csv)."""
    blocks = [("h2", f"Dataset: {ds}"), ("p", headline(ds, rows, tests, ranks))]
    blocks += leaderboards(ds, rows)
    if ds in STUDY_DATASETS:
        ref, who = TRAINED_REFERENCES[ds]
        note = (f"Published figures (the diamonds of the charts; the full table below): random weights, about "
                f"3500 features, protocol {' or '.join(PUBLISHED_PROTOCOLS[ds])}; `~` marks a figure read off "
                f"a chart (±1 point). Fully trained reference quoted by the study: {ref:.1f}% ({who}).")
        missing = _missing_published(rows, ds)
        if missing:
            note += " Not run (published settings without a comparable result of ours): " + ", ".join(missing) + "."
        blocks.append(("p", note))
    for name, caption in figures:
        if name.startswith(f"fig_bars_{ds}_"):
            blocks.append(("img", name, caption))
    compact, full = significance_blocks(ds, tests)
    if compact:
        blocks += [("h3", f"Significance ({ds})")] + compact
    blocks.append(("details", f"Every result on {ds}, with the published figures (also in summary.csv)",
                   _full_table(ds, summary)))
    if full:
        blocks.append(("details", f"Every pairwise test on {ds}: t-test and McNemar, raw and Holm "
                                  "(also in significance.csv)", full))
    return blocks


_METHOD = ("Accuracies are percent, mean ± sample std (ddof 1) over runs, recomputed "
           "from the runs. Protocols: `split` (train / validation / test), "
           "`cv-best (optimistic)` (hyper-parameters picked on the same folds that are "
           "scored: an upper bound), `nested-cv` (picked inside each training fold), "
           "`end-to-end` (a network trained and scored on its own). Significance: "
           "Student's two-sample t-test on per-run accuracies (against the MFCC baseline, which has no "
           "weights and is scored once: a one-sample t-test of the other side's runs against it) and the "
           "exact McNemar test on the first run's predictions of the same clips "
           "(test clips, or out-of-fold predictions for cross-validation); `*` marks "
           "p < 0.05; Holm columns correct for the pairs of one table. Why Student's: the "
           "study says only \"a t-test\" with H0 that the averages are equal (thesis "
           "section 4.5) and its code runs none; Student's is the classic test of that H0 "
           "(scipy's default), and with 3 runs a side Welch's t is the same number with "
           "fewer degrees of freedom, so its p is never smaller. Chance is 1 / the number of classes.")


_PARTS = ("figures", "scatter", "pairs", "corr", "orderings", "costs", "summary", "tests", "ranks")


def _build(rows, read, messages, parts: dict):
    """The report's blocks from the rows, the files read, the messages and the computed ``parts``
    (``_PARTS``: figures, scatter, pairs, correlations, orderings, costs, summary, tests, ranks)."""
    figures, scatter, pairs, corr, orderings, costs, summary, tests, ranks = (parts[k] for k in _PARTS)
    datasets = list(dict.fromkeys(s["dataset"] for s in summary))
    blocks = [("h1", "Random-weight CNN results report"),
              ("p", f"Generated {datetime.now(timezone.utc).isoformat(timespec='seconds')} from "
                    f"{len(read)} results file(s), {len(rows)} result row(s)"
                    + (f"; {len(messages)} problem(s) reported (Sources, at the end)." if messages else "."))]
    if not rows:
        blocks.append(("p", "No usable results: nothing to compare yet. Run `python -m classifiers.grid` "
                            "or `python -m studies`."))
    if any(r.get("as_published") for r in rows):
        blocks.append(("p", "Rows labelled `(as published)` were computed as the study's code did where "
                            "it departs from its text (`--as-published`: one number per frame-level "
                            "stack layer, resampy resampling, reflect-padded frames, the ELM selected by "
                            "the mean of fold accuracies with a new hidden layer at every fit; "
                            "docs/fidelity.md); the rows without the label follow the thesis text. Both "
                            "stand beside the same published figure."))
    for ds in datasets:
        blocks += _dataset_blocks(ds, rows, summary, tests, figures, ranks)

    blocks.append(("h2", "Random vs trained"))
    if pairs:
        blocks.append(("table", ["dataset", "architecture", "width", "classifier", "protocol",
                                 "random %", "trained %"],
                       [[p["dataset"], p["arch"], p["width"], p["classifier"],
                         protocol_label(p["protocol"]), f"{p['random']:.1f}", f"{p['trained']:.1f}"]
                        for p in pairs]))
        blocks.append(("p", "Does the ranking by random-weight accuracy predict the ranking after "
                            "training? Pairs: same dataset, architecture, width, classifier and "
                            "protocol."))
        blocks.append(("table", ["scope", "pairs", "Spearman ρ", "p", "Kendall τ", "p"],
                       [[c["scope"], str(c["n"]), c["note"] or f"{c['spearman']:+.2f}",
                         fmt_p(c["p_spearman"]) if not c["note"] else "–",
                         c["note"] or f"{c['kendall']:+.2f}",
                         fmt_p(c["p_kendall"]) if not c["note"] else "–"] for c in corr]
                       or [["all", "0", "cannot be computed (0 pairs; needs 3)", "–", "–", "–"]]))
        if scatter:
            blocks.append(("img", scatter, "Random-weight against trained accuracy per architecture (the "
                                           "front-ends' colours of the bar charts; filled: SVM)"))
    else:
        blocks[-1] = ("p", "**Random vs trained**: no trained-weight results yet, so nothing to pair "
                           "(`python -m trained.train`, then `features.extract --weights`).")

    checked = [o for o in orderings if o["holds"] != "not run"]
    if checked:
        blocks += [("h2", "Published orderings on our numbers"),
                   ("p", "Random weights, per comparison group, each ordering checked only within the "
                         "scope the thesis gives it (section 4.5: its dataset, and where stated its "
                         "classifier and feature length; 'claim' quotes that scope). 'yes' compares means, "
                         "and says when every step is also significant by the t-test at the study's level."
                         + (f" {len(orderings) - len(checked)} more cannot be checked on these results "
                            "(listed collapsed below)." if len(checked) < len(orderings) else "")),
                   ("table", ["ordering", "dataset", "claim", "classifier / protocol / width", "holds", "detail",
                              "source"],
                    [[o["ordering"], o["dataset"], o.get("claim", ""), o["group"], o["holds"], o["detail"],
                      o.get("source", "")] for o in checked])]
    else:
        blocks.append(("p", f"**Published orderings**: none of the study's {len(orderings)} orderings can be "
                            "checked on these results (they need its datasets and front-ends; listed collapsed "
                            "below)."))
    unchecked = [o for o in orderings if o["holds"] == "not run"]
    if unchecked:
        blocks.append(("details", f"The {len(unchecked)} orderings not checked, and why",
                       [("table", ["ordering", "dataset", "why not"],
                         [[o["ordering"], o["dataset"], o["detail"]] for o in unchecked])]))
    blocks += [("h2", "Cost"),
               ("table", ["architecture", "width", "parameters", "GFLOP / clip",
                          "extraction s / clip", "datasets"],
                [[c["arch"], c["width"], _num(c["n_params"], ",.0f"), _num(c["gflop_per_clip"], ".3g"),
                  _num(c["s_per_clip"], ".3g"), c["datasets"]] for c in costs]
                or [["–", "–", "–", "–", "–", "no results"]])]
    notes = []
    absent = [d for d in STUDY_DATASETS if d not in datasets]
    if absent:
        notes.append("Study datasets with no results: " + ", ".join(absent) + ".")
    if rows and not any(p for r in rows for p in r["predictions"]):
        notes.append("No results file carries predictions: McNemar tests are n/a.")
    blocks += [("h2", "Notes")] + ([("ul", notes)] if notes else []) + \
        [("details", "How to read this report: protocols and tests", [("p", _METHOD)])]
    blocks += [("h2", "Sources"), ("ul", [f"`{f}`" for f in read] or ["no results files read"])]
    if messages:
        blocks += [("h3", "Skipped or corrected"), ("ul", [f"`{m}`" for m in messages])]
    return blocks


def _md(blocks) -> str:
    out = []
    for b in blocks:
        if b[0] in ("h1", "h2", "h3"):
            out.append("#" * int(b[0][1]) + " " + b[1])
        elif b[0] == "p":
            out.append(b[1])
        elif b[0] == "ul":
            out.append("\n".join(f"- {x}" for x in b[1]))
        elif b[0] == "img":
            out.append(f"![{b[2]}]({b[1]})\n\n*{b[2]}*")
        elif b[0] == "table":
            def line(cells):
                return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
            out.append("\n".join([line(b[1]), line(["---"] * len(b[1]))] + [line(r) for r in b[2]]))
        elif b[0] == "details":  # collapsed where markdown renders HTML (GitHub does)
            out.append(f"<details><summary>{html.escape(b[1])}</summary>\n\n" + _md(b[2]).rstrip("\n")
                       + "\n\n</details>")
    return "\n\n".join(out) + "\n"


def _inline_code(text: str) -> str:
    """Escape text and turn `code` spans into <code> and **bold** into <strong> (the only markup the
    blocks use)."""
    parts = html.escape(text).split("`")
    out = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    bold = out.split("**")
    if len(bold) % 2 == 0:  # an unpaired ** stays as written
        return out
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(bold))


def _td(cell) -> str:
    """A table cell; long text (a path, a module's name, a sentence) may wrap, numbers never do."""
    text = str(cell)
    wrap = len(text) > 22 or (len(text) > 14 and " " not in text)
    return f'<td class="wrap">{html.escape(text)}</td>' if wrap else f"<td>{html.escape(text)}</td>"


def _html(blocks, out_dir: Path) -> str:
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>Results report</title><style>{_CSS}</style></head><body>\n"
            + _html_body(blocks, out_dir) + "\n</body></html>\n")


def _html_body(blocks, out_dir: Path) -> str:
    body = []
    for b in blocks:
        if b[0] in ("h1", "h2", "h3"):
            body.append(f"<{b[0]}>{_inline_code(b[1])}</{b[0]}>")
        elif b[0] == "p":
            body.append(f"<p>{_inline_code(b[1])}</p>")
        elif b[0] == "ul":
            body.append("<ul>" + "".join(f"<li>{_inline_code(x)}</li>" for x in b[1]) + "</ul>")
        elif b[0] == "img":
            data = base64.b64encode(read_staged(out_dir / b[1])).decode("ascii")
            body.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(b[2])}">'
                        f"<figcaption>{html.escape(b[2])}</figcaption></figure>")
        elif b[0] == "table":
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in b[1])
            rows = "".join("<tr>" + "".join(_td(c) for c in r) + "</tr>" for r in b[2])
            body.append(f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody>'
                        "</table></div>")
        elif b[0] == "details":
            body.append(f"<details><summary>{_inline_code(b[1])}</summary>\n{_html_body(b[2], out_dir)}</details>")
    return "\n".join(body)


BATCHNORM_KIND = "randomcnn-batchnorm"   # studies.batchnorm's batchnorm.json


def _insert_before(blocks: list, marker: tuple, new: list) -> list:
    """``new`` blocks before the first block starting with ``marker`` (at the end when absent)."""
    at = next((i for i, b in enumerate(blocks) if b[:2] == marker), len(blocks))
    return blocks[:at] + new + blocks[at:]


def _hpelm_note(rows) -> list:
    """Say that ``elm-hpelm`` rows are a cross-check, not the study's ELM."""
    if not any(r["classifier"] == "elm-hpelm" for r in rows):
        return []
    return [("h2", "Cross-checks"),
            ("p", "Rows with classifier `elm-hpelm` come from `--elm-engine hpelm`: a cross-check, not the "
                  "study's ELM. hpelm solves ridge-regularised normal equations (a 50 eps ridge) instead of "
                  "the study's pseudo-inverse, so they are never set beside the published ELM figures.")]


def _failed_points_blocks(rows) -> list:
    """The grid points that failed (how many, which, why), once per results file and classifier (each
    protocol of a classifier searched the same points)."""
    seen, items = set(), []
    for r in rows:
        for f in r.get("failed_points") or []:
            params = json.dumps(f["params"], sort_keys=True, default=str)
            key = (r["source"], r["classifier"], str(f["seed"]), params)
            if key in seen:
                continue
            seen.add(key)
            items.append(f"{r['dataset']} / {r['arch']} ({r['width']}, {r['weights']}) / {r['classifier']}, "
                         f"seed {f['seed']}: `{params}`: {f['reason']} (`{r['source']}`)")
    if not items:
        return []
    return [("h2", "Failed grid points"),
            ("p", f"{len(items)} grid point(s) failed and were left out of the search; the accuracies above "
                  "are the best of the points that ran."),
            ("ul", items)]


def _batchnorm_files(paths) -> list[Path]:
    found = set()
    for p in map(Path, paths):
        if p.is_dir():
            found.update(q.resolve() for q in p.rglob("batchnorm.json"))
        elif p.is_file() and p.name == "batchnorm.json":
            found.add(p.resolve())
    return sorted(found)


def _batchnorm_section(f: Path, k: int) -> tuple[list, str, bytes]:
    """The blocks, figure name and figure of one ``batchnorm.json`` (raises on anything malformed)."""
    r = json.loads(f.read_text(encoding="utf-8"))
    if not isinstance(r, dict) or r.get("kind") != BATCHNORM_KIND:
        found = repr(r.get("kind")) if isinstance(r, dict) else f"a JSON {type(r).__name__}"
        raise ValueError(f"kind {found}, expected {BATCHNORM_KIND!r}")
    cells = {(bool(c["batchnorm"]), int(c["batch_size"])): c for c in r["cells"]}
    sizes = [int(b) for b in r["batch_sizes"]]
    missing = [(bn, b) for b in sizes for bn in (False, True) if (bn, b) not in cells]
    if missing:
        raise ValueError(f"no cell for {missing}")
    name = slug("fig", "batchnorm", r["dataset"], r["arch"], r["width"], k) + ".png"

    def cell(c):
        return f"{100 * c['mean']:.1f}" + (f" ± {100 * c['std']:.1f}" if c.get("std") is not None else "") \
            + f" ({len(c['accuracies'])} runs)"

    def anova_row(what, a):
        df = a.get("df")
        return [what, _num(a.get("groups"), "d"), _num(a.get("runs"), "d"), _num(a.get("distinct_networks"), "d"),
                _num(a.get("F"), ".3g"), "–" if not df else f"{df[0]}, {df[1]}",
                ("n/a" if a.get("p") is None else f"{a['p']:.3g}") + (f" ({a['note']})" if a.get("note") else "")]
    section = [("h3", f"{r['dataset']}, {r['arch']} (width {r['width']})"),
               ("p", f"SVM, `{r['protocol']}`; clips sorted by label before batching; "
                     f"network: {r.get('network', r['arch'])}; {r.get('networks', 'networks: not recorded')}; "
                     f"source `{f}`."),
               ("table", ["batch size", "no batch norm %", "batch norm (batch statistics) %"],
                [[str(b), cell(cells[False, b]), cell(cells[True, b])] for b in sizes]),
               ("table", ["one-way ANOVA over batch sizes", "groups", "runs", "distinct networks", "F",
                          "df", "p"],
                [anova_row("without batch norm", r["anova"]["no_batchnorm"]),
                 anova_row("with batch norm", r["anova"]["batchnorm"]),
                 ["the study, without batch norm", "–", "–", "–", "–", "–",
                  str(r["study"]["anova_p_no_batchnorm"])]]),
               ("img", name, f"{r['dataset']}, {r['arch']}: accuracy against batch size, without and with "
                             "batch norm; mean over runs, error bars one std")]
    return section, name, batchnorm_chart(r)


def _batchnorm_blocks(paths, out_dir: Path, messages: list) -> list:
    """The section of the batch-norm experiment (``python -m studies.batchnorm``): a table and the
    figure of each ``batchnorm.json`` under ``paths``; one malformed in any way is reported in
    ``messages`` (with why) and left out."""
    blocks = []
    for k, f in enumerate(_batchnorm_files(paths)):
        try:
            section, name, png = _batchnorm_section(f, k)
        except Exception as e:  # malformed in any way (types, nesting, values the chart cannot draw)
            messages.append(f"skipped {f}: not a usable batch-norm experiment ({type(e).__name__}: {e})")
            continue
        stage(out_dir / name, png)
        blocks += section
    if not blocks:
        return []
    return [("h2", "Batch norm and batch size (the study's Fig. 4.5)"),
            ("p", "With batch norm using the batch's statistics, a clip's features depend on the other clips "
                  "of its batch; the study (thesis section 4.4) found accuracy then depends on the batch size, "
                  "and does not without batch norm. Run by `python -m studies.batchnorm`.")] + blocks


def _render(rows, read, messages, results, out_dir: Path) -> str:
    """Draw the figures and make the pages (staged, see ``report.figures.staged``); returns report.md."""
    use_archs({r["arch"] for r in rows})  # one colour per front-end in every figure of this report
    summary = summary_table(rows)
    tests = pairwise_tests(rows)
    ranks = rank_new(rows)
    pairs = random_vs_trained(rows)
    corr = correlations(pairs)
    pooled = corr[-1] if corr else None
    title = ("Spearman ρ = {:+.2f}, Kendall τ = {:+.2f} ({} pairs, {})".format(
        pooled["spearman"], pooled["kendall"], pooled["n"], pooled["scope"])
        if pooled and not pooled["note"] else
        f"correlation {pooled['note']}" if pooled else "")
    figures = bar_charts(rows, out_dir)
    scatter = scatter_random_trained(pairs, out_dir, title)
    batchnorm = _batchnorm_blocks(results, out_dir, messages)
    judged = judge_blocks(rows, results, out_dir, messages)  # report/judge.py: each judgement vs trained
    blocks = _build(rows, read, messages, dict(figures=figures, scatter=scatter, pairs=pairs, corr=corr,
                                               orderings=check_orderings(rows), costs=cost_table(rows),
                                               summary=summary, tests=tests, ranks=ranks))
    blocks = _insert_before(blocks, ("h2", "Cost"), batchnorm)
    blocks = _insert_before(blocks, ("h2", "Cost"), _hpelm_note(rows))
    blocks = _insert_before(blocks, ("h2", "Sources"), _failed_points_blocks(rows))
    # a new front-end's rank (also in its dataset's headline) and accuracy vs depth (report/rank.py), right
    # after the datasets, then the judgements (report/judge.py)
    at = next(i for i, b in enumerate(blocks) if b[:2] in (("h2", "Random vs trained"), ("h2", "Cross-checks"))
              or (b[0] == "p" and b[1].startswith("**Random vs trained**")))
    blocks[at:at] = rank_blocks(rows, out_dir) + judged + multilabel_blocks(results, messages)
    superseded = [m for m in messages if m.startswith("superseded ")]
    if superseded:  # the rule, stated, and what it set aside
        at = blocks.index(("h2", "Sources")) + 2
        blocks[at:at] = [("h3", "Superseded results"), ("p", f"Rule: {SUPERSEDE_RULE}."),
                         ("ul", [f"`{m}`" for m in superseded])]
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=_SUMMARY_COLUMNS)
    writer.writeheader()
    writer.writerows(summary)
    markdown = _md(blocks)
    stage(out_dir / "summary.csv", buf.getvalue().encode("utf-8"))
    stage(out_dir / "significance.csv", significance_csv(tests))
    stage(out_dir / "report.html", _html(blocks, out_dir).encode("utf-8"))
    stage(out_dir / "report.md", markdown.encode("utf-8"))
    return markdown


def render_report(settings: ReportSettings | None = None, /, *, log=None, **changes) -> Path:
    """Write the comparison report of the results files under ``settings.results``.

    Parameters
    ----------
    settings : ReportSettings
        ``results`` (results files and folders, searched recursively for ``results.json``) and ``out``
        (the report folder; created if needed; figures of an earlier report there are replaced);
        keyword ``changes`` give a copy with those fields changed (``render_report(results=[...],
        out=...)``); a list in place of the settings is taken as ``results``.
    log : callable or None
        Receives each message about a skipped file or entry; default prints to stderr.

    Returns
    -------
    Path
        The report folder, holding ``report.md``, ``report.html``, ``summary.csv``, PNGs and
        ``report_inputs.json`` (the results files read, by path and SHA-256, and the settings).
    """
    if isinstance(settings, (list, tuple, str, Path)):
        changes, settings = dict(changes, results=settings), None
    settings = settings or ReportSettings()
    settings = settings.replace(**changes) if changes else settings
    results, out_dir = settings.results, Path(settings.out)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ReportWriteError(out_dir, e) from None
    earlier = set(out_dir.glob("fig_*.png"))  # removed at the end unless this report draws them again
    rows, read, messages = load_results(results, log=log)
    with staged() as files:   # figures and pages in memory, then written all or nothing
        markdown = _render(rows, read, messages, results, out_dir)
        # what this report read (paths and bytes), written with the pages: the study renders it again
        # when that differs
        stage(out_dir / INPUTS_FILE, json.dumps({"results": report_inputs(results), "read": read,
                                                 "settings": settings.record()}, indent=2).encode("utf-8"))
        # every file through a temporary file first, then renamed: a failure on the way (a full disk)
        # leaves the earlier report whole, its pages and its figures, never a cut or a mixed one
        atomic_write_many(files)
    for old in earlier:   # figures of settings no longer present
        if old.name not in markdown:
            old.unlink(missing_ok=True)
    return out_dir


INPUTS_FILE = "report_inputs.json"  # what the report read: the study re-renders when this differs


def report_inputs(results) -> list[dict]:
    """``[{path, sha256}]`` of every results file the report of ``results`` reads (in path order)."""
    files, _ = find_results(results)
    out = []
    for f in files:
        try:
            out.append({"path": str(f), "sha256": sha256_file(f)})
        except OSError:
            out.append({"path": str(f), "sha256": None})
    return out


def report_is_current(results, out) -> bool:
    """True when the report in ``out`` was rendered from exactly the results files (paths and bytes)
    that a report of ``results`` would read now."""
    try:
        recorded = json.loads((Path(out) / INPUTS_FILE).read_text(encoding="utf-8"))["results"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return recorded == report_inputs(results) and (Path(out) / "report.html").is_file()


class ReportWriteError(OSError):
    """The report folder cannot be created or written (read-only, full, not a folder): one message."""

    def __init__(self, out_dir, cause: OSError):
        where = cause.filename or out_dir
        why = cause.strerror or str(cause)
        hint = {errno.ENOSPC: "free space and run the same command again; the earlier report's pages are "
                              "left whole",
                errno.EROFS: "the file system is read-only: choose another --out",
                errno.EACCES: "no permission to write there: choose another --out",
                errno.EPERM: "no permission to write there: choose another --out",
                errno.ENOTDIR: "a file is in the way: choose another --out"}.get(cause.errno, "choose another --out")
        super().__init__(cause.errno, f"cannot write the report in {out_dir} ({where}: {why}); {hint}")
        self.filename = str(out_dir)


@interruptible
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog=prog("python -m report"),
        description="Compare results files: tables per dataset with the published figures, bar "
                    "charts, significance tests, random vs trained correlations, the study's "
                    "orderings and cost, as report.md / report.html / summary.csv with PNGs. "
                    "Broken files are skipped with a message naming them.",
        formatter_class=HelpFormatter)
    ReportSettings.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        path = render_report(ReportSettings.parse(parser, args))
    except OSError as e:   # a read-only, full or unwritable --out: one message, no traceback
        if not isinstance(e, ReportWriteError):
            e = ReportWriteError(args.out, e)
        parser.exit(1, f"error: {e.strerror}\n")
    print(path)


if __name__ == "__main__":
    main(sys.argv[1:])
