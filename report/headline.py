"""The top of each dataset's section: a headline paragraph, ranked leaderboards, the significance as a
compact matrix (the full pairwise tables go to ``significance.csv`` and a collapsed section).

Blocks are those of ``report/build.py``; the numbers are those of :mod:`report.stats` (the same rows, the
same tests), only arranged so that the answer comes first.
"""
from __future__ import annotations

import csv
import io

from report.figures import chance_pct
from report.stats import ALPHA, fmt_p, group_rows, protocol_label, sort_key

__all__ = ["headline", "leaderboards", "significance_blocks", "significance_csv", "SIGNIFICANCE_COLUMNS"]

SIGNIFICANCE_COLUMNS = ("dataset", "weights", "width", "classifier", "protocol", "a", "b", "mean_a_pct",
                        "mean_b_pct", "diff_points", "t", "p_t", "p_t_holm", "t_note", "mcnemar_clips",
                        "only_a_right", "only_b_right", "p_mcnemar", "p_mcnemar_holm", "mcnemar_note")


def _ranked(members: dict) -> list[str]:
    return sorted(members, key=lambda a: (-members[a]["mean"], a))


def _pair(tests: list, a: str, b: str) -> dict | None:
    for p in tests:
        if {p["a"], p["b"]} == {a, b}:
            return p
    return None


def _pct(r) -> str:
    return f"{100 * r['mean']:.1f}%" + ("" if r["std"] is None else f" ± {100 * r['std']:.1f}")


def _group_label(key, many_settings: bool) -> str:
    _, weights, width, clf, protocol = key
    label = f"{clf.upper()}, {protocol_label(protocol)}"
    return label + (f" ({weights} weights, width {width})" if many_settings else "")


def headline(ds: str, rows: list, tests: dict, ranks: list) -> str:
    """One paragraph: per classifier and protocol, the best front-end, how far ahead of the next, whether
    significantly (Student's t-test, Holm over the group's pairs), the MFCC baseline and chance; then the
    rank of each new front-end."""
    groups = {k: m for k, m in group_rows(rows).items() if k[0] == ds}
    settings = {(k[1], k[2]) for k in groups}
    sentences = []
    for key, members in groups.items():
        order = [a for a in _ranked(members) if a != "mfcc"]
        if not order:
            continue
        best = members[order[0]]
        text = f"{_group_label(key, len(settings) > 1)}: **{order[0]}** leads with {_pct(best)}"
        if len(order) > 1:
            second = members[order[1]]
            gap = 100 * (best["mean"] - second["mean"])
            p = _pair(tests.get(key, []), order[0], order[1])
            if p is None or p["p_t"] is None:
                sig = f"significance n/a ({p['t_note'] if p else 'no test'})"
            else:
                sig = ("significantly" if p["p_t_holm"] < ALPHA else "not significantly") + \
                      f", t-test p = {fmt_p(p['p_t'])}, Holm {fmt_p(p['p_t_holm'])}"
            text += f", {gap:.1f} points ahead of {order[1]} ({100 * second['mean']:.1f}%; {sig})"
        if "mfcc" in members:
            m = members["mfcc"]
            text += f"; the MFCC baseline {100 * m['mean']:.1f}%"
            below = [a for a in order if members[a]["mean"] < m["mean"]]
            if below:
                text += f" ({len(below)} of {len(order)} front-ends below it)"
        chance = chance_pct(members)
        if chance is not None:
            text += f"; chance {chance:.1f}%"
        sentences.append(text + ".")
    mine = [r for r in ranks if r["dataset"] == ds]
    for arch in dict.fromkeys(r["arch"] for r in mine):  # one sentence per new front-end
        where = [r for r in mine if r["arch"] == arch]
        parts = ", ".join(f"{r['rank']} of {r['of']} ({r['classifier'].upper()} {protocol_label(r['protocol'])}"
                          + (f", {r['weights']}, {r['width']}" if len(settings) > 1 else "") + ")" for r in where)
        sentences.append(f"Your front-end **{arch}** ranks {parts}.")
    if not sentences:
        return f"No comparable results on {ds} yet."
    return " ".join(sentences)


def leaderboards(ds: str, rows: list) -> list:
    """One ranked table per (weights, width): a row per front-end, a column per classifier and protocol,
    sorted by the first column; each cell the mean ± std over runs with the front-end's rank there."""
    groups = {k: m for k, m in group_rows(rows).items() if k[0] == ds}
    blocks = []
    settings = list(dict.fromkeys((k[1], k[2]) for k in groups))
    for weights, width in settings:
        cols = [k for k in groups if (k[1], k[2]) == (weights, width)]
        archs = list(dict.fromkeys(a for k in cols for a in groups[k]))
        first = groups[cols[0]]
        archs.sort(key=lambda a: (a not in first, -first[a]["mean"] if a in first else 0, a))
        ranks = {k: {a: i + 1 for i, a in enumerate(_ranked(groups[k]))} for k in cols}
        table = []
        for i, a in enumerate(archs):
            cells = []
            for k in cols:
                r = groups[k].get(a)
                cells.append("–" if r is None else (f"{100 * r['mean']:.1f}"
                             + ("" if r["std"] is None else f" ± {100 * r['std']:.1f}") + f" ({ranks[k][a]})")
                             .replace(" ", NBSP))
            runs = sorted({groups[k][a]["n_runs"] for k in cols if a in groups[k]})
            table.append([str(i + 1), a + (" (baseline)" if a == "mfcc" else ""), "/".join(map(str, runs)), *cells])
        caption = (f"Leaderboard, {weights} weights, width {width}: accuracy % (mean ± std over runs; rank in "
                   f"that column), sorted by {cols[0][3].upper()} {protocol_label(cols[0][4])}.")
        blocks += [("p", caption),
                   ("table", ["#", "front-end", "runs", *[f"{k[3].upper()} {protocol_label(k[4])}" for k in cols]],
                    table)]
    return blocks


NBSP = "\u00a0"  # keeps a number and its std or rank on one line in a narrow page


def _matrix(members: dict, pairs: list) -> tuple[list, list]:
    """Upper triangle of row minus column (ranked by mean): columns 2..n, rows 1..n-1."""
    order = _ranked(members)
    head = ["", *[str(j + 1) for j in range(1, len(order))]]
    body = []
    for i, a in enumerate(order[:-1]):
        cells = []
        for j, b in enumerate(order):
            if j == 0:
                continue
            if j <= i:
                cells.append("")
                continue
            p = _pair(pairs, a, b)
            diff = 100 * (members[a]["mean"] - members[b]["mean"])
            mark = "" if p is None or p["p_t_holm"] is None else ("*" if p["p_t_holm"] < ALPHA else "")
            cells.append(f"{round(diff, 1) + 0.0:+.1f}{mark}")
        body.append([f"{i + 1} {a}", *cells])
    return head, body


def significance_blocks(ds: str, tests: dict) -> tuple[list, list]:
    """``(matrix blocks, full blocks)``: a compact matrix per comparison group (row minus column, in
    points, `*` where the Holm-corrected t-test has p < 0.05), and the full pairwise tables."""
    compact, full = [], []
    keys = [k for k in tests if k[0] == ds]
    settings = {(k[1], k[2]) for k in keys}
    for key in keys:
        pairs = tests[key]
        members = {}
        for p in pairs:
            members.setdefault(p["a"], {"mean": p["mean_a"] / 100})
            members.setdefault(p["b"], {"mean": p["mean_b"] / 100})
        head, body = _matrix(members, pairs)
        label = _group_label(key, len(settings) > 1)
        last = _ranked(members)[-1]
        compact += [("p", f"{label}: accuracy of the row's front-end minus the column's, in points (front-ends "
                          f"ranked by mean; column {len(members)} is {last}); `*`: Holm-corrected t-test p < {ALPHA}."),
                    ("table", head, body)]
        full += [("h3", f"{label}"),
                 ("table", ["A", "B", "A − B (points)", "t-test p (Student)", "Holm", "McNemar clips",
                            "only A right", "only B right", "McNemar p (exact)", "Holm"],
                  [[p["a"], p["b"], f"{round(p['diff'], 1) + 0.0:+.1f}", p["t_note"] or fmt_p(p["p_t"]),
                    fmt_p(p["p_t_holm"]) if p["p_t"] is not None else "–", str(p["n_clips"]),
                    "–" if p["b_only"] is None else str(p["b_only"]), "–" if p["c_only"] is None else str(p["c_only"]),
                    p["mcnemar_note"] or fmt_p(p["p_mcnemar"]),
                    fmt_p(p["p_mcnemar_holm"]) if p["p_mcnemar"] is not None else "–"] for p in pairs])]
    return compact, full


def significance_csv(tests: dict) -> bytes:
    """Every pairwise test of every group, one line each (``significance.csv``)."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(SIGNIFICANCE_COLUMNS)
    for key in sorted(tests, key=lambda k: sort_key(dict(zip(("dataset", "weights", "width", "classifier",
                                                                  "protocol"), k), arch=""))):
        for p in tests[key]:
            w.writerow([*key, p["a"], p["b"], f"{p['mean_a']:.4f}", f"{p['mean_b']:.4f}", f"{p['diff']:.4f}",
                        "" if p["t"] is None else f"{p['t']:.6g}", "" if p["p_t"] is None else f"{p['p_t']:.6g}",
                        "" if p.get("p_t_holm") is None else f"{p['p_t_holm']:.6g}", p["t_note"],
                        p["n_clips"], "" if p["b_only"] is None else p["b_only"],
                        "" if p["c_only"] is None else p["c_only"],
                        "" if p["p_mcnemar"] is None else f"{p['p_mcnemar']:.6g}",
                        "" if p.get("p_mcnemar_holm") is None else f"{p['p_mcnemar_holm']:.6g}", p["mcnemar_note"]])
    return buf.getvalue().encode("utf-8")
