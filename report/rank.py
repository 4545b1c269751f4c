"""Report sections for a new front-end: its rank among the study's, and accuracy vs depth per front-end.

- **Rank.** In every comparison group (same dataset, weights, width, classifier and protocol:
  :func:`report.stats.group_rows`) that holds a front-end the study did not ship (a user's
  module, or a ``--layers`` selection), that front-end's rank by mean accuracy (1 = best; ties share
  the better rank), and the study's t-test against each other member (``report_stats.ttest``, Holm
  over the pairs of the new front-end, ``report_stats.holm``). Where trained results exist for some
  front-ends of that dataset, classifier and protocol, the random-vs-trained rank correlation
  (``report_stats.correlations``) says how far a random-weight ranking predicts the trained one.
- **Accuracy vs depth.** Every results file written with ``classifiers.grid --per-layer`` gives one
  figure: per classifier and protocol, layers 1..k together (solid) and each layer alone (dashed).
"""
from __future__ import annotations

import json
from pathlib import Path

from report.figures import colour_of, plt, save_figure, slug
from report.stats import (ARCH_ORDER, compare, correlations, fmt_p, group_rows, holm, protocol_label,
                          random_vs_trained)

__all__ = ["is_new", "rank_new", "per_layer_curves", "per_layer_figures", "rank_blocks"]


def is_new(arch: str) -> bool:
    """A front-end the study did not ship (a user's module, a layer selection, a HEAR module)."""
    return arch not in ARCH_ORDER


def rank_new(rows: list[dict]) -> list[dict]:
    """Rank and t-tests of each new front-end within its comparison groups.

    Returns
    -------
    list of dict
        ``dataset, weights, width, classifier, protocol, arch, mean`` (percent), ``rank``, ``of``
        (members of the group), ``trust`` (the matching random-vs-trained correlation row, or None) and
        ``vs``: per other member ``b, mean_b, diff`` (points, new - b), ``p``, ``p_holm``, ``note``.
    """
    corr = {c["scope"]: c for c in correlations(random_vs_trained(rows))}
    out = []
    for (ds, weights, width, clf, protocol), members in group_rows(rows).items():
        for arch in sorted(a for a in members if is_new(a)):
            row = members[arch]
            others = sorted((b for b in members if b != arch), key=lambda b: -members[b]["mean"])
            tests = [compare(row, members[b]) for b in others]
            adjusted = holm([t["p"] for t in tests])
            scope = f"{ds} / {clf} / {protocol_label(protocol)}"
            out.append({
                "dataset": ds, "weights": weights, "width": width, "classifier": clf, "protocol": protocol,
                "arch": arch, "mean": 100 * row["mean"],
                "rank": 1 + sum(members[b]["mean"] > row["mean"] for b in others), "of": len(members),
                "trust": corr.get(scope),
                "vs": [{"b": b, "mean_b": 100 * members[b]["mean"],
                        "diff": 100 * (row["mean"] - members[b]["mean"]), "p": t["p"], "p_holm": adj,
                        "note": t["note"]} for b, t, adj in zip(others, tests, adjusted)]})
    return out


def _number_or_none(x) -> bool:
    return x is None or (isinstance(x, (int, float)) and not isinstance(x, bool) and x == x
                         and abs(x) != float("inf"))


def _usable_per_layer(per: dict) -> bool:
    """A ``per_layer`` section the curves can be drawn from (a malformed one is left out, not drawn)."""
    layers, curves = per.get("layers"), per.get("curves")
    if not isinstance(layers, list) or not all(isinstance(x, dict) and "name" in x for x in layers):
        return False
    if not isinstance(curves, list):
        return False
    for c in curves:
        if not isinstance(c, dict) or not all(k in c for k in ("classifier", "protocol", "mode", "points")):
            return False
        if not isinstance(c["points"], list) or not all(
                isinstance(p, dict) and isinstance(p.get("k"), int) and _number_or_none(p.get("mean"))
                for p in c["points"]):
            return False
    return True


def per_layer_curves(rows: list[dict]) -> list[dict]:
    """The ``per_layer`` sections of the results files behind ``rows`` (one per file that has one).

    Returns
    -------
    list of dict
        ``dataset, arch, width, weights, source, layers, curves`` (see ``classifiers/layers.py``).
    """
    out, seen = [], set()
    for r in rows:
        if r["source"] in seen:
            continue
        seen.add(r["source"])
        try:
            data = json.loads(Path(r["source"]).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            continue  # the loader already reported an unreadable file
        per = data.get("per_layer") if isinstance(data, dict) else None
        if isinstance(per, dict) and per.get("curves") and _usable_per_layer(per):
            out.append({k: r.get(k) for k in ("dataset", "arch", "width", "weights", "source", "n_classes")}
                       | {"layers": per["layers"], "curves": per["curves"]})
    return out


def chance_of(curve: dict) -> float | None:
    """Chance accuracy (percent) of a per-layer curve's dataset, when its class count is known."""
    n = curve.get("n_classes")
    return 100.0 / n if n else None


DEPTH_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")  # one per classifier and protocol of a depth plot


def per_layer_figures(curves: list[dict], out_dir: Path) -> list[tuple[str, str]]:
    """One accuracy-vs-depth PNG per front-end; returns ``(file name, caption)`` pairs."""
    written = []
    for c in curves:
        names = [layer["name"] for layer in c["layers"]]
        fig, ax = plt.subplots(figsize=(max(5.0, 0.55 * len(names) + 3) + 3.2, 3.6))
        # the front-end's colour, as in every other figure of the report; each classifier and protocol its
        # marker; layers 1..k: solid line, filled markers; layer k alone: dotted line, hollow markers, so the
        # two differ in the legend's short samples too (dashes of a 2-point sample looked solid)
        colour, markers = colour_of(c["arch"]), {}
        for curve in c["curves"]:
            label = f"{curve['classifier'].upper()} {protocol_label(curve['protocol'])}"
            marker = markers.setdefault(label, DEPTH_MARKERS[len(markers) % len(DEPTH_MARKERS)])
            pts = [p for p in curve["points"] if p["mean"] is not None]
            together = curve["mode"] == "cumulative"
            ax.plot([p["k"] for p in pts], [100 * p["mean"] for p in pts], color=colour,
                    linestyle="-" if together else (0, (1.5, 1.5)), linewidth=1.6 if together else 1.3,
                    marker=marker, ms=4 if together else 4.5,
                    markerfacecolor=colour if together else "white",
                    label=f"{label}, layers 1..k together" if together else f"{label}, layer k alone")
        for c_ in (chance_of(c),):
            if c_ is not None:
                ax.axhline(c_, color="#666666", linestyle=":", linewidth=1.2, label=f"chance ({c_:.1f}%)")
        ax.set_xticks(range(1, len(names) + 1))
        ax.set_xticklabels([f"{i + 1}\n{n}" for i, n in enumerate(names)], fontsize=7,
                           rotation=0 if len(names) <= 8 else 45)
        ax.set_xlabel("layer k (depth)")
        ax.set_ylabel("accuracy %")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), handlelength=4.0)
        ax.set_title(f"{c['dataset']}: {c['arch']} ({c['weights']}, {c['width']})", fontsize=9)
        name = slug("fig", "layers", c["dataset"], c["arch"], c["width"], c["weights"]) + ".png"
        fig.tight_layout()
        save_figure(fig, out_dir / name, dpi=110)
        plt.close(fig)
        written.append((name, f"Accuracy vs depth, {c['arch']} on {c['dataset']} ({c['weights']} weights, "
                              f"width {c['width']}), in the front-end's colour: solid line and filled markers, "
                              "layers 1..k together; dotted line and hollow markers, layer k alone; one marker "
                              "per classifier and protocol"))
    return written


def _trust(t) -> str:
    if t is None:
        return "no trained results for this dataset, classifier and protocol: the rank is not yet checked " \
               "against training"
    if t["note"]:
        return f"random-vs-trained rank correlation {t['note']}"
    return (f"random-vs-trained rank correlation over {t['n']} front-ends: Spearman ρ = {t['spearman']:+.2f} "
            f"(p {fmt_p(t['p_spearman'])}), Kendall τ = {t['kendall']:+.2f} (p {fmt_p(t['p_kendall'])})")


def rank_blocks(rows: list[dict], out_dir: Path) -> list:
    """The report's blocks (``report/build.py`` format) for both sections; empty when neither applies."""
    blocks = []
    ranks = rank_new(rows)
    if ranks:
        blocks += [("h2", "New front-ends among the study's"),
                   ("p", "Rank by mean accuracy within each comparison group (1 = best); Student's t-test on "
                         "per-run accuracies against every other front-end of the group, Holm-corrected "
                         "over those pairs; `*` marks p < 0.05.")]
        for r in ranks:  # the rank itself is in the dataset's headline; each group's tests collapsed here
            blocks.append(("details", f"{r['arch']}: rank {r['rank']} of {r['of']} ({r['dataset']}, {r['weights']} "
                                      f"weights, width {r['width']}, {r['classifier'].upper()}, "
                                      f"{protocol_label(r['protocol'])}; {r['mean']:.1f}%)",
                           [("table", ["against", "its accuracy %", "difference (points)", "t-test p", "Holm"],
                             [[v["b"], f"{v['mean_b']:.1f}", f"{round(v['diff'], 1) + 0.0:+.1f}",
                               v["note"] or fmt_p(v["p"]), fmt_p(v["p_holm"]) if v["p"] is not None else "–"]
                              for v in r["vs"]]),
                            ("p", "How far to trust the ranking: " + _trust(r["trust"]) + ".")]))
    curves = per_layer_curves(rows)
    if curves:
        blocks += [("h2", "Accuracy vs depth"),
                   ("p", "Each point is the full grid on those layers' features only "
                         "(`classifiers.grid --per-layer`): where the information lives, which layers to "
                         "keep (`--layers`) and whether depth helps.")]
        for name, caption in per_layer_figures(curves, out_dir):
            blocks.append(("img", name, caption))
    return blocks
