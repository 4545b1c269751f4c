"""Figures of the report (matplotlib, Agg backend, PNG files next to ``report.md``)."""
from __future__ import annotations

import contextlib
import contextvars
import io
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: the report is written on servers without a display
import matplotlib.pyplot as plt  # noqa: E402

from report.published import published_figure  # noqa: E402
from report.stats import ARCH_ORDER, group_rows, protocol_label  # noqa: E402
from toolkit.provenance import atomic_write_bytes  # noqa: E402

__all__ = ["bar_charts", "scatter_random_trained", "colour_of", "use_archs", "chance_pct", "PALETTE", "batchnorm_chart", "slug", "save_figure", "staged", "stage",
           "read_staged"]

_CMAP = plt.get_cmap("tab20")


def slug(*parts) -> str:
    """A file-name-safe name from parts (``"fig", "us8k", "cv-best"`` -> ``fig_us8k_cv-best``)."""
    return "_".join(re.sub(r"[^A-Za-z0-9.-]+", "-", str(p)).strip("-") for p in parts)


_STAGED = contextvars.ContextVar("report_staged_files", default=None)


@contextlib.contextmanager
def staged():
    """Within the block, :func:`save_figure` and :func:`stage` keep files in memory (the dict yielded,
    path -> bytes) instead of writing them; the report then writes them all at once with
    ``toolkit.provenance.atomic_write_many``, so the earlier report stays whole when writing fails."""
    files = {}
    token = _STAGED.set(files)
    try:
        yield files
    finally:
        _STAGED.reset(token)


def stage(path, data: bytes) -> Path:
    """Keep ``data`` for ``path`` (inside :func:`staged`), or write it atomically now (outside)."""
    files = _STAGED.get()
    if files is None:
        return atomic_write_bytes(path, data)
    files[Path(path)] = data
    return Path(path)


def read_staged(path) -> bytes:
    """The bytes of a figure written or staged for ``path``."""
    files = _STAGED.get()
    if files is not None and Path(path) in files:
        return files[Path(path)]
    return Path(path).read_bytes()


def save_figure(fig, path, dpi: int = 100) -> Path:
    """``fig`` as a PNG for ``path``, never written in place: staged (see :func:`staged`) or written
    through a temporary file and a rename, so a full disk or a crash never leaves a cut figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return stage(path, buf.getvalue())


# Distinct colours, one per front-end in every figure of a report: the study's front-ends by their order
# (tab10, then six more from Kelly's / Trubetskoy's lists of distinct colours), other front-ends (yours,
# layer selections, HEAR modules) the colours after those, in sorted order, so no two share a shade.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf", "#000075", "#f032e6", "#469990", "#800000", "#fabed4", "#ffe119",
           "#aaffc3", "#dcbeff", "#9a6324", "#808000", "#3cb44b", "#4363d8")
_OTHERS = contextvars.ContextVar("report_other_archs", default=())


def use_archs(archs) -> None:
    """Fix the colours of the front-ends outside the study's for this report (call once per report)."""
    _OTHERS.set(tuple(sorted(a for a in set(archs) if a not in ARCH_ORDER)))


def colour_of(arch: str) -> str:
    """The colour of ``arch`` in every figure of the report (see ``PALETTE``); MFCC is black."""
    if arch == "mfcc":
        return "#000000"
    study = [a for a in ARCH_ORDER if a != "mfcc"]
    if arch in study:
        return PALETTE[study.index(arch)]
    others = _OTHERS.get()
    k = others.index(arch) if arch in others else sum(map(ord, arch))
    return PALETTE[(len(study) + k) % len(PALETTE)]


_colour = colour_of


def chance_pct(members) -> float | None:
    """100 / the number of classes of a group's rows (uniform guessing), or None when not recorded."""
    ns = {r.get("n_classes") for r in members.values() if r.get("n_classes")}
    return 100.0 / ns.pop() if len(ns) == 1 else None


def bar_charts(rows: list[dict], out_dir: Path) -> list[tuple[str, str]]:
    """Bar charts like the study's Figs. 4.6 to 4.11.

    One figure per (dataset, weights, width, protocol): a group of bars per classifier (SVM, ELM),
    one bar per architecture with the std over runs as error bar, the MFCC baseline of that
    classifier as a dashed line over the group, and the published figure as a black diamond
    (hollow when read off a chart) where one exists.

    Parameters
    ----------
    rows : list of dict
        Rows of :func:`report.load.load_results`.
    out_dir : Path
        Where the PNGs go.

    Returns
    -------
    list of (str, str)
        ``(file name, caption)`` per figure written.
    """
    figures: dict = {}
    for (ds, weights, width, clf, protocol), members in group_rows(rows).items():
        figures.setdefault((ds, weights, width, protocol), {})[clf] = members
    written = []
    for (ds, weights, width, protocol), by_clf in figures.items():
        classifiers = sorted(by_clf, key=lambda c: (c != "svm", c != "elm", c))
        archs = [a for a in ARCH_ORDER if any(a in m for m in by_clf.values()) and a != "mfcc"]
        archs += sorted({a for m in by_clf.values() for a in m} - set(ARCH_ORDER))
        if not archs:
            continue
        width_bar = 0.8 / len(archs)
        fig, ax = plt.subplots(figsize=(max(6.0, 2.2 + 0.45 * len(archs) * len(classifiers)), 4.2))
        approx_seen = exact_seen = mfcc_seen = chance_seen = False
        for g, clf in enumerate(classifiers):
            members = by_clf[clf]
            for k, arch in enumerate(archs):
                if arch not in members:
                    continue
                r = members[arch]
                x = g - 0.4 + (k + 0.5) * width_bar
                ax.bar(x, 100 * r["mean"], width_bar * 0.92, color=_colour(arch),
                       yerr=0 if r["std"] is None else 100 * r["std"], capsize=2,
                       error_kw={"elinewidth": 0.8}, label=arch if g == 0 or arch not in
                       {a for c in classifiers[:g] for a in by_clf[c]} else None)
                pub = published_figure(ds, arch, clf, weights, protocol, r["feature_length"])
                if pub is not None:
                    ax.plot(x, pub.accuracy, "D", ms=4.5, color="black",
                            markerfacecolor="black" if pub.exact else "white", zorder=3)
                    exact_seen |= pub.exact
                    approx_seen |= not pub.exact
            if "mfcc" in members:
                ax.hlines(100 * members["mfcc"]["mean"], g - 0.45, g + 0.45, colors="black",
                          linestyles="--", linewidth=1.2, zorder=4,
                          label="MFCC baseline" if not mfcc_seen else None)
                mfcc_seen = True
            chance = chance_pct(members)
            if chance is not None:
                ax.hlines(chance, g - 0.48, g + 0.48, colors="#666666", linestyles=":", linewidth=1.4, zorder=4,
                          label=f"chance (1 / {round(100 / chance)} classes)" if not chance_seen else None)
                chance_seen = True
        if exact_seen:
            ax.plot([], [], "D", ms=4.5, color="black", label="published")
        if approx_seen:
            ax.plot([], [], "D", ms=4.5, color="black", markerfacecolor="white",
                    label="published (~, read off a chart)")
        ax.set_xticks(range(len(classifiers)), [c.upper() for c in classifiers])
        ax.set_xlim(-0.5, len(classifiers) - 0.5)
        ax.set_ylim(0, 100)
        ax.set_ylabel("accuracy (%)")
        ax.grid(axis="y", alpha=0.3)
        ax.set_title(f"{ds}: {weights} weights, width {width}, {protocol_label(protocol)}",
                     fontsize=10)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        fig.tight_layout()
        name = slug("fig", "bars", ds, weights, width, protocol) + ".png"
        save_figure(fig, out_dir / name, dpi=100)
        plt.close(fig)
        written.append((name, f"{ds}, {weights} weights, width {width}, "
                              f"{protocol_label(protocol)}: mean accuracy over runs, error bars "
                              "one std; dashed: the MFCC baseline; dotted: chance"))
    return written


def scatter_random_trained(pairs: list[dict], out_dir: Path, title: str) -> str | None:
    """Random-weight against trained accuracy, one point per pair, coloured by dataset.

    Parameters
    ----------
    pairs : list of dict
        From :func:`report.stats.random_vs_trained`.
    out_dir : Path
    title : str
        Shown above the plot (the correlations).

    Returns
    -------
    str or None
        The file name, or None when there are no pairs.
    """
    if not pairs:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    datasets = sorted({p["dataset"] for p in pairs})
    markers = "os^vDP*X"
    for i, ds in enumerate(datasets):
        ps = [p for p in pairs if p["dataset"] == ds]
        for clf in sorted({p["classifier"] for p in ps}):
            q = [p for p in ps if p["classifier"] == clf]
            colours = [colour_of(p["arch"]) for p in q]  # the front-end's colour, as in the bar charts
            ax.scatter([p["random"] for p in q], [p["trained"] for p in q],
                       marker=markers[i % len(markers)], s=36, edgecolors=colours,
                       facecolors=colours if clf == "svm" else "none", label=f"{ds} {clf.upper()}")
        for p in ps:
            ax.annotate(p["arch"], (p["random"], p["trained"]), textcoords="offset points",
                        xytext=(4, 3), fontsize=7)
    lo = min(min(p["random"], p["trained"]) for p in pairs)
    hi = max(max(p["random"], p["trained"]) for p in pairs)
    pad = max(2.0, 0.08 * (hi - lo))
    lims = (max(0.0, lo - pad), min(100.0, hi + pad))
    ax.plot(lims, lims, color="grey", linewidth=0.8, linestyle=":", label="trained = random")
    ax.set_xlim(lims)
    ax.set_ylim(lims)
    ax.set_xlabel("random weights: accuracy (%)")
    ax.set_ylabel("trained: accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    name = "fig_random_vs_trained.png"
    save_figure(fig, out_dir / name, dpi=100)
    plt.close(fig)
    return name


def batchnorm_chart(result: dict) -> bytes:
    """The batch-norm experiment like the study's Fig. 4.5: accuracy against batch size, without and with
    batch norm (batch statistics), mean over runs with one std as error bar, and the ANOVAs in the title.

    Parameters
    ----------
    result : dict
        A ``batchnorm.json`` written by ``python -m studies.batchnorm``.

    Returns
    -------
    bytes
        The PNG (no timestamp in its metadata: the same result gives the same bytes).
    """
    import io
    sizes = list(result["batch_sizes"])
    x = range(len(sizes))
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for bn, colour, label in ((False, "tab:blue", "no batch norm"), (True, "tab:red", "batch norm (batch statistics)")):
        cells = {c["batch_size"]: c for c in result["cells"] if c["batchnorm"] == bn}
        means = [100 * cells[b]["mean"] for b in sizes]
        stds = [0.0 if cells[b]["std"] is None else 100 * cells[b]["std"] for b in sizes]
        shift = 0.06 if bn else -0.06
        ax.errorbar([i + shift for i in x], means, yerr=stds, marker="o", capsize=3, color=colour, label=label)
    ax.set_xticks(list(x), [str(b) for b in sizes])
    ax.set_xlabel("batch size (clips sorted by label)")
    ax.set_ylabel("accuracy (%)")
    ax.grid(axis="y", alpha=0.3)

    def p_text(a):
        return "n/a" if a["p"] is None else f"{a['p']:.3g}"
    anova = result["anova"]
    ax.set_title(f"{result['dataset']}, {result['arch']} ({result['width']}), SVM {result['protocol']}, "
                 f"{len(result['seeds'])} run(s)\nANOVA over batch sizes: no BN p = "
                 f"{p_text(anova['no_batchnorm'])}, BN p = {p_text(anova['batchnorm'])} "
                 f"(study, no BN: {result['study']['anova_p_no_batchnorm']})", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()
