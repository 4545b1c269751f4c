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
from report.figures import bar_charts, batchnorm_chart, read_staged, scatter_random_trained, slug, stage, staged
from report.load import SUPERSEDE_RULE, find_results, load_results
from toolkit.provenance import atomic_write_json, sha256_file
from report.rank import rank_blocks
from report.settings import ReportSettings
from report.stats import (check_orderings, correlations, cost_table, fmt_p, pairwise_tests, protocol_label,
                          random_vs_trained, summary_table)

__all__ = ["render_report", "main"]

_SUMMARY_COLUMNS = ("dataset", "arch", "width", "weights", "feature_length", "classifier",
                    "protocol", "n_runs", "mean_pct", "std_pct", "published_pct", "published_exact",
                    "diff_pct",
                    "source")
_CSS = """body{font-family:sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:13px}
th,td{border:1px solid #bbb;padding:3px 7px;text-align:left}th{background:#eef}
tr:nth-child(even) td{background:#f7f7f7}figure{margin:1em 0}img{max-width:100%}
figcaption{font-size:12px;color:#555}code{background:#f2f2f2;padding:0 3px}"""


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


def _dataset_blocks(ds: str, rows, summary, tests, figures) -> list:
    blocks = [("h2", f"Dataset: {ds}")]
    table = [[s["arch"], s["width"], s["weights"], _num(s["feature_length"], "d"), s["classifier"],
              s["protocol"], str(s["n_runs"]),
              f"{s['mean_pct']:.1f} ± {_num(s['std_pct'], '.1f', 'n/a (1 run)')}", *_published_cells(s)]
             for s in summary if s["dataset"] == ds]
    blocks.append(("table", ["architecture", "width", "weights", "features", "classifier",
                             "protocol", "runs", "accuracy % (mean ± std)", "published %",
                             "ours − published"], table))
    if ds in STUDY_DATASETS:
        ref, who = TRAINED_REFERENCES[ds]
        blocks.append(("p", f"Published figures: random weights, about 3500 features, protocol "
                            f"{' or '.join(PUBLISHED_PROTOCOLS[ds])}; `~` marks a figure read off a "
                            f"chart (±1 point). Fully trained reference quoted by the study: "
                            f"{ref:.1f}% ({who})."))
        missing = _missing_published(rows, ds)
        if missing:
            blocks.append(("p", "Not run (published settings without a comparable result of "
                                "ours): " + ", ".join(missing) + "."))
    for name, caption in figures:
        if name.startswith(f"fig_bars_{ds}_"):
            blocks.append(("img", name, caption))
    for key, pairs in tests.items():
        if key[0] != ds:
            continue
        _, weights, width, clf, protocol = key
        blocks.append(("h3", f"Significance: {ds}, {weights} weights, width {width}, "
                             f"{clf.upper()}, {protocol_label(protocol)}"))
        blocks.append(("table", ["A", "B", "A − B (points)", "t-test p (Student)", "Holm",
                                 "McNemar clips", "only A right", "only B right",
                                 "McNemar p (exact)", "Holm"],
                       [[p["a"], p["b"], f"{round(p['diff'], 1) + 0.0:+.1f}", p["t_note"] or fmt_p(p["p_t"]),
                         fmt_p(p["p_t_holm"]) if p["p_t"] is not None else "–",
                         str(p["n_clips"]), _num(p["b_only"], "d"), _num(p["c_only"], "d"),
                         p["mcnemar_note"] or fmt_p(p["p_mcnemar"]),
                         fmt_p(p["p_mcnemar_holm"]) if p["p_mcnemar"] is not None else "–"]
                        for p in pairs]))
    return blocks


_PARTS = ("figures", "scatter", "pairs", "corr", "orderings", "costs", "summary", "tests")


def _build(rows, read, messages, parts: dict):
    """The report's blocks from the rows, the files read, the messages and the computed ``parts``
    (``_PARTS``: figures, scatter, pairs, correlations, orderings, costs, summary, tests)."""
    figures, scatter, pairs, corr, orderings, costs, summary, tests = (parts[k] for k in _PARTS)
    datasets = list(dict.fromkeys(s["dataset"] for s in summary))
    blocks = [("h1", "Random-weight CNN results report"),
              ("p", f"Generated {datetime.now(timezone.utc).isoformat(timespec='seconds')} from "
                    f"{len(read)} results file(s), {len(rows)} result row(s); "
                    f"{len(messages)} problem(s) reported (see the last section).")]
    overview = []
    if not rows:
        overview.append("No usable results: nothing to compare yet. Run `python -m classifiers.grid`.")
    absent = [d for d in STUDY_DATASETS if d not in datasets]
    if absent:
        overview.append("Study datasets with no results: " + ", ".join(absent) + ".")
    if not any(r["weights"] == "trained" for r in rows):
        overview.append("No trained-weight results: random vs trained cannot be compared yet.")
    if rows and not any(p for r in rows for p in r["predictions"]):
        overview.append("No results file carries predictions: McNemar tests are n/a.")
    blocks += [("h2", "What is here and what is missing"),
               ("ul", overview or ["Every study dataset has results."]),
               ("p", "Accuracies are percent, mean ± sample std (ddof 1) over runs, recomputed "
                     "from the runs. Protocols: `split` (train / validation / test), "
                     "`cv-best (optimistic)` (hyper-parameters picked on the same folds that are "
                     "scored: an upper bound), `nested-cv` (picked inside each training fold), "
                     "`end-to-end` (a network trained and scored on its own). Significance: "
                     "Student's two-sample t-test on per-run accuracies and the "
                     "exact McNemar test on the first run's predictions of the same clips "
                     "(test clips, or out-of-fold predictions for cross-validation); `*` marks "
                     "p < 0.05; Holm columns correct for the pairs of one table. Why Student's: the "
                     "study says only \"a t-test\" with H0 that the averages are equal (thesis "
                     "section 4.5) and its code runs none; Student's is the classic test of that H0 "
                     "(scipy's default), and with 3 runs a side Welch's t is the same number with "
                     "fewer degrees of freedom, so its p is never smaller.")]
    if any(r.get("as_published") for r in rows):
        blocks.append(("p", "Rows labelled `(as published)` were computed as the study's code did where "
                            "it departs from its text (`--as-published`: one number per frame-level "
                            "stack layer, resampy resampling, reflect-padded frames, the ELM selected by "
                            "the mean of fold accuracies with a new hidden layer at every fit; "
                            "docs/fidelity.md); the rows without the label follow the thesis text. Both "
                            "stand beside the same published figure."))
    for ds in datasets:
        blocks += _dataset_blocks(ds, rows, summary, tests, figures)

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
        blocks.append(("img", scatter, "Random-weight against trained accuracy per architecture"))

    blocks += [("h2", "Published orderings on our numbers"),
               ("p", "Random weights, per comparison group, each ordering checked only within the "
                     "scope the thesis gives it (section 4.5: its dataset, and where stated its "
                     "classifier and feature length; 'claim' quotes that scope). 'yes' compares means, "
                     "and says when every step is also significant by the t-test at the study's level."),
               ("table", ["ordering", "dataset", "claim", "classifier / protocol / width", "holds", "detail",
                          "source"],
                [[o["ordering"], o["dataset"], o.get("claim", ""), o["group"], o["holds"], o["detail"],
                  o.get("source", "")] for o in orderings])]
    blocks += [("h2", "Cost"),
               ("table", ["architecture", "width", "parameters", "GFLOP / clip",
                          "extraction s / clip", "datasets"],
                [[c["arch"], c["width"], _num(c["n_params"], ",.0f"), _num(c["gflop_per_clip"], ".3g"),
                  _num(c["s_per_clip"], ".3g"), c["datasets"]] for c in costs]
                or [["–", "–", "–", "–", "–", "no results"]])]
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
    return "\n\n".join(out) + "\n"


def _inline_code(text: str) -> str:
    """Escape text and turn `code` spans into <code> (the only markup the blocks use)."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _html(blocks, out_dir: Path) -> str:
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
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>"
                           for r in b[2])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>Results report</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


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


def _batchnorm_blocks(paths, out_dir: Path, messages: list) -> list:
    """The section of the batch-norm experiment (``python -m studies.batchnorm``): a table and the
    figure of each ``batchnorm.json`` under ``paths``; unreadable ones are reported in ``messages``."""
    blocks = []
    for k, f in enumerate(_batchnorm_files(paths)):
        try:
            r = json.loads(f.read_text(encoding="utf-8"))
            if r.get("kind") != BATCHNORM_KIND:
                raise ValueError(f"kind {r.get('kind')!r}, expected {BATCHNORM_KIND!r}")
            cells = {(bool(c["batchnorm"]), int(c["batch_size"])): c for c in r["cells"]}
            sizes = [int(b) for b in r["batch_sizes"]]
            missing = [(bn, b) for b in sizes for bn in (False, True) if (bn, b) not in cells]
            if missing:
                raise ValueError(f"no cell for {missing}")
            name = slug("fig", "batchnorm", r["dataset"], r["arch"], r["width"], k) + ".png"
            stage(out_dir / name, batchnorm_chart(r))
        except (OSError, ValueError, KeyError, TypeError) as e:
            messages.append(f"skipped {f}: not a usable batch-norm experiment ({type(e).__name__}: {e})")
            continue

        def cell(c):
            return f"{100 * c['mean']:.1f}" + (f" ± {100 * c['std']:.1f}" if c.get("std") is not None else "") \
                + f" ({len(c['accuracies'])} runs)"

        def anova_row(what, a):
            df = a.get("df")
            return [what, _num(a.get("groups"), "d"), _num(a.get("runs"), "d"), _num(a.get("distinct_networks"), "d"),
                    _num(a.get("F"), ".3g"), "–" if not df else f"{df[0]}, {df[1]}",
                    ("n/a" if a.get("p") is None else f"{a['p']:.3g}") + (f" ({a['note']})" if a.get("note") else "")]
        blocks += [("h3", f"{r['dataset']}, {r['arch']} (width {r['width']})"),
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
    if not blocks:
        return []
    return [("h2", "Batch norm and batch size (the study's Fig. 4.5)"),
            ("p", "With batch norm using the batch's statistics, a clip's features depend on the other clips "
                  "of its batch; the study (thesis section 4.4) found accuracy then depends on the batch size, "
                  "and does not without batch norm. Run by `python -m studies.batchnorm`.")] + blocks


def _render(rows, read, messages, results, out_dir: Path) -> str:
    """Draw the figures and make the pages (staged, see ``report.figures.staged``); returns report.md."""
    summary = summary_table(rows)
    tests = pairwise_tests(rows)
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
    blocks = _build(rows, read, messages, dict(figures=figures, scatter=scatter, pairs=pairs, corr=corr,
                                               orderings=check_orderings(rows), costs=cost_table(rows),
                                               summary=summary, tests=tests))
    blocks = _insert_before(blocks, ("h2", "Cost"), batchnorm)
    blocks = _insert_before(blocks, ("h2", "Random vs trained"), _hpelm_note(rows))
    blocks = _insert_before(blocks, ("h2", "Sources"), _failed_points_blocks(rows))
    at = blocks.index(("h2", "Sources"))  # a new front-end's rank, accuracy vs depth (report_rank.py)
    blocks[at:at] = rank_blocks(rows, out_dir)
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
        The report folder, holding ``report.md``, ``report.html``, ``summary.csv`` and PNGs.
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
        # every file through a temporary file first, then renamed: a failure on the way (a full disk)
        # leaves the earlier report whole, its pages and its figures, never a cut or a mixed one
        atomic_write_many(files)
    for old in earlier:   # figures of settings no longer present
        if old.name not in markdown:
            old.unlink(missing_ok=True)
    try:  # what this report read (paths and bytes): the study renders it again when that differs
        atomic_write_json(out_dir / INPUTS_FILE, {"results": report_inputs(results), "read": read,
                                                  "settings": settings.record()})
    except OSError as e:
        raise ReportWriteError(out_dir, e) from None
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
