"""Statistics of the report: summary table, pairwise tests, random vs trained, orderings, cost.

Everything works on the flat rows of :mod:`report.load` and returns plain lists of
dicts, so the markdown, HTML, CSV and figures all show the same numbers.

Tests used (the study's and the paired one the issue asks for):

- The t-test: scipy's independent two-sample t-test on the per-run accuracies, Student's version
  (``equal_var=True``); "n/a (1 run)" when a side has fewer than 2 runs. The study says only "a
  t-test, H0 being that averages are equal" (thesis section 4.5) and its code (jordipons/elmarc) runs
  none, so which version it used is unknown: Student's is the classic test of that H0 and the
  default of ``scipy.stats.ttest_ind``. With equal run counts (3 and 3) Welch's t statistic is the
  same number; only its degrees of freedom (at most 4) are fewer, so its p is never smaller.
- McNemar: the exact (binomial) version on the discordant clips of the two architectures' first
  runs (lowest seed), matched by clip id: the test clips for ``split``, the out-of-fold
  predictions of every clip for the cross-validated protocols. Runs are not pooled because the
  same clip in several runs is not an independent observation.
- Holm's step-down correction over the pairs of one comparison group, beside the raw p-values.
"""
from __future__ import annotations

import math
import warnings
from collections import defaultdict
from itertools import combinations

import numpy as np
from scipy import stats

from architectures import FRONTENDS
from report.published import ORDERINGS, STUDY_DATASETS, base_arch, published_figure

__all__ = ["ALPHA", "ARCH_ORDER", "ttest", "compare", "mcnemar", "holm", "summary_table", "group_rows",
           "pairwise_tests", "random_vs_trained", "correlations", "check_orderings", "cost_table",
           "protocol_label", "sort_key"]

ALPHA = 0.05
ARCH_ORDER = tuple(FRONTENDS)  # the study's order, from the one table of front-ends (no torch imported)
_PROTOCOL_LABEL = {"cv-best": "cv-best (optimistic)"}


def protocol_label(protocol: str) -> str:
    """The protocol as the report prints it (``cv-best`` is labelled optimistic)."""
    return _PROTOCOL_LABEL.get(protocol, protocol)


def sort_key(row: dict) -> tuple:
    """Study datasets first, then arch in the study's order, then the rest alphabetically."""
    ds = row["dataset"]
    arch = row["arch"]
    base = base_arch(arch)  # an "as published" row right after its architecture's own
    return (STUDY_DATASETS.index(ds) if ds in STUDY_DATASETS else len(STUDY_DATASETS), ds,
            row["weights"], row["width"], {"svm": 0, "elm": 1}.get(row["classifier"], 2),
            row["classifier"], row["protocol"],
            ARCH_ORDER.index(base) if base in ARCH_ORDER else len(ARCH_ORDER), arch)


def ttest(a, b) -> dict:
    """Student's two-sample t-test on per-run accuracies (the module docstring says why Student's).

    Parameters
    ----------
    a, b : sequence of float
        Accuracies of the runs of two architectures.

    Returns
    -------
    dict
        ``t``, ``p`` (None when not computable) and ``note`` ("" or the reason).
    """
    if len(a) < 2 or len(b) < 2:
        return {"t": None, "p": None, "note": f"n/a ({min(len(a), len(b))} run)"}
    a, b = np.asarray(a, float), np.asarray(b, float)
    if np.ptp(a) == 0 and np.ptp(b) == 0:  # pooled variance 0: t is undefined or infinite
        return {"t": None, "p": None, "note": "n/a (no variance)"}
    with warnings.catch_warnings():
        # scipy warns about precision loss when one side's runs are identical (variance 0); the
        # pooled variance comes from the other side and the test is still well defined.
        warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
        res = stats.ttest_ind(a, b, equal_var=True)
    if not np.isfinite(res.pvalue):
        return {"t": None, "p": None, "note": "n/a (no variance)"}
    return {"t": float(res.statistic), "p": float(res.pvalue), "note": ""}


def compare(ra: dict, rb: dict) -> dict:
    """:func:`ttest` of two rows, except against the MFCC baseline: it has no weights, so its runs are one
    number (a study scores it once), and the other side's runs are tested against that number with a
    one-sample t-test (H0: their mean equals it). ``t`` is for ``a - b`` either way."""
    fixed = [r["arch"] == "mfcc" and len(set(r["accuracies"])) == 1 for r in (ra, rb)]
    if fixed[0] == fixed[1]:
        return ttest(ra["accuracies"], rb["accuracies"])
    runs, value, sign = (rb["accuracies"], ra["accuracies"][0], -1.0) if fixed[0] else \
        (ra["accuracies"], rb["accuracies"][0], 1.0)
    if len(runs) < 2:
        return {"t": None, "p": None, "note": f"n/a ({len(runs)} run)"}
    a = np.asarray(runs, float)
    if np.ptp(a) == 0:
        return {"t": None, "p": None, "note": "n/a (no variance)"}
    res = stats.ttest_1samp(a, value)
    return {"t": sign * float(res.statistic), "p": float(res.pvalue), "note": ""}


def mcnemar(pred_a: dict | None, pred_b: dict | None) -> dict:
    """Exact McNemar test on the clips both prediction sets share.

    Parameters
    ----------
    pred_a, pred_b : dict or None
        ``{clip id: (y_true, y_pred)}``.

    Returns
    -------
    dict
        ``n`` shared clips, ``b`` (A right, B wrong), ``c`` (A wrong, B right), ``p``
        (``binomtest(b, b + c, 0.5)``, two-sided; 1.0 when there are no discordant clips; None
        when not computable) and ``note``.
    """
    if not pred_a or not pred_b:
        return {"n": 0, "b": None, "c": None, "p": None, "note": "n/a (no predictions)"}
    shared = sorted(set(pred_a) & set(pred_b))
    if not shared:
        return {"n": 0, "b": None, "c": None, "p": None, "note": "n/a (no shared clips)"}
    conflicts = [i for i in shared if pred_a[i][0] != pred_b[i][0]]
    if conflicts:
        return {"n": len(shared), "b": None, "c": None, "p": None,
                "note": f"n/a ({len(conflicts)} clips with different true labels)"}
    right_a = np.array([pred_a[i][0] == pred_a[i][1] for i in shared])
    right_b = np.array([pred_b[i][0] == pred_b[i][1] for i in shared])
    b = int(np.sum(right_a & ~right_b))
    c = int(np.sum(~right_a & right_b))
    p = 1.0 if b + c == 0 else float(stats.binomtest(b, b + c, 0.5).pvalue)
    return {"n": len(shared), "b": b, "c": c, "p": p, "note": ""}


def holm(pvalues) -> list:
    """Holm-adjusted p-values; None entries are left out of the family and stay None.

    Parameters
    ----------
    pvalues : sequence of float or None

    Returns
    -------
    list of float or None
        Same order as the input; ``adjusted[k] <= 0.05`` iff Holm's procedure rejects at 0.05.
    """
    idx = [i for i, p in enumerate(pvalues) if p is not None]
    m = len(idx)
    out = [None] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: pvalues[i])):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))  # monotone step-down
        out[i] = running
    return out


def summary_table(rows: list[dict]) -> list[dict]:
    """The main table: one line per row, in percent, with the published figure beside it.

    Returns
    -------
    list of dict
        Keys ``dataset, arch, width, weights, feature_length, classifier, protocol, n_runs,
        mean_pct, std_pct`` (std None for one run), ``published_pct`` (None where the study has
        no comparable figure), ``published_exact`` (bool or None), ``diff_pct`` (ours minus
        published, or None) and ``source``.
    """
    out = []
    for r in sorted(rows, key=sort_key):
        fig = published_figure(r["dataset"], r["arch"], r["classifier"], r["weights"],
                               r["protocol"], r["feature_length"])
        mean = 100 * r["mean"]
        out.append({
            "dataset": r["dataset"], "arch": r["arch"], "width": r["width"], "weights": r["weights"],
            "feature_length": r["feature_length"], "classifier": r["classifier"],
            "protocol": protocol_label(r["protocol"]), "n_runs": r["n_runs"], "mean_pct": mean,
            "std_pct": None if r["std"] is None else 100 * r["std"],
            "published_pct": None if fig is None else fig.accuracy,
            "published_exact": None if fig is None else fig.exact,
            "diff_pct": None if fig is None else mean - fig.accuracy, "source": r["source"]})
    return out


def group_rows(rows: list[dict], weights: str | None = None) -> dict:
    """Rows that compete with each other: same dataset, weights, width, classifier and protocol.

    The MFCC baseline has neither width nor weights, so it joins every group of its dataset,
    classifier and protocol. End-to-end rows are left out (their classifier is the network).

    Returns
    -------
    dict
        ``(dataset, weights, width, classifier, protocol) -> {arch: row}``.
    """
    groups: dict = defaultdict(dict)
    mfcc = [r for r in rows if r["arch"] == "mfcc" and r["protocol"] != "end-to-end"]
    for r in rows:
        if r["arch"] == "mfcc" or r["protocol"] == "end-to-end":
            continue
        if weights is not None and r["weights"] != weights:
            continue
        groups[(r["dataset"], r["weights"], r["width"], r["classifier"], r["protocol"])][r["arch"]] = r
    for key, members in groups.items():
        for r in mfcc:
            if (r["dataset"], r["classifier"], r["protocol"]) == (key[0], key[3], key[4]):
                members.setdefault("mfcc", r)
    return dict(sorted(groups.items(), key=lambda kv: sort_key(dict(
        zip(("dataset", "weights", "width", "classifier", "protocol"), kv[0]), arch=""))))


def pairwise_tests(rows: list[dict]) -> dict:
    """Every pair of architectures within each comparison group.

    Returns
    -------
    dict
        Group key (see :func:`group_rows`) -> list of dicts with ``a``, ``b``, ``mean_a``,
        ``mean_b``, ``diff`` (percent, a - b), ``t``, ``p_t``, ``p_t_holm``, ``t_note``,
        ``n_clips``, ``b_only`` (clips only a got right), ``c_only``, ``p_mcnemar``,
        ``p_mcnemar_holm``, ``mcnemar_note``.
    """
    out = {}
    for key, members in group_rows(rows).items():
        archs = sorted(members, key=lambda a: ARCH_ORDER.index(a) if a in ARCH_ORDER else 99)
        pairs = []
        for a, b in combinations(archs, 2):
            ra, rb = members[a], members[b]
            t = compare(ra, rb)
            m = mcnemar(ra["predictions"][0], rb["predictions"][0])
            pairs.append({"a": a, "b": b, "mean_a": 100 * ra["mean"], "mean_b": 100 * rb["mean"],
                          "diff": 100 * (ra["mean"] - rb["mean"]), "t": t["t"], "p_t": t["p"],
                          "t_note": t["note"], "n_clips": m["n"], "b_only": m["b"],
                          "c_only": m["c"], "p_mcnemar": m["p"], "mcnemar_note": m["note"]})
        for col in ("p_t", "p_mcnemar"):
            for pair, adj in zip(pairs, holm([p[col] for p in pairs])):
                pair[col + "_holm"] = adj
        if pairs:
            out[key] = pairs
    return out


def random_vs_trained(rows: list[dict]) -> list[dict]:
    """Pairs of rows that differ only in weights (random vs trained).

    Paired by (dataset, arch, width, classifier, protocol); width is part of the key so a small
    random front-end is never set against a large trained one. MFCC and end-to-end rows have no
    counterpart and are left out.

    Returns
    -------
    list of dict
        ``dataset, arch, width, classifier, protocol, random, trained`` (percent).
    """
    def key(r):
        return (r["dataset"], r["arch"], r["width"], r["classifier"], r["protocol"])

    usable = [r for r in rows if r["arch"] != "mfcc" and r["protocol"] != "end-to-end"]
    random = {key(r): r for r in usable if r["weights"] == "random"}
    pairs = []
    for r in sorted((r for r in usable if r["weights"] == "trained"), key=sort_key):
        if key(r) in random:
            pairs.append(dict(zip(("dataset", "arch", "width", "classifier", "protocol"), key(r)),
                              random=100 * random[key(r)]["mean"], trained=100 * r["mean"]))
    return pairs


def correlations(pairs: list[dict]) -> list[dict]:
    """Spearman and Kendall correlations of random against trained accuracy.

    Computed within each (dataset, classifier, protocol) and over all pairs together (which mixes
    datasets of different difficulty, so it is listed last and labelled so).

    Returns
    -------
    list of dict
        ``scope``, ``n``, ``spearman``, ``p_spearman``, ``kendall``, ``p_kendall`` (None when not
        computable) and ``note``.
    """
    scopes = defaultdict(list)
    for p in pairs:
        scopes[f"{p['dataset']} / {p['classifier']} / {protocol_label(p['protocol'])}"].append(p)
    scopes = dict(sorted(scopes.items()))
    if len(scopes) > 1:
        scopes["all pairs pooled (mixes settings)"] = list(pairs)
    out = []
    for scope, ps in scopes.items():
        x = np.array([p["random"] for p in ps])
        y = np.array([p["trained"] for p in ps])
        res = {"scope": scope, "n": len(ps), "spearman": None, "p_spearman": None,
               "kendall": None, "p_kendall": None, "note": ""}
        if len(ps) < 3:
            res["note"] = f"cannot be computed ({len(ps)} pair{'s' * (len(ps) != 1)}; needs 3)"
        elif np.ptp(x) == 0 or np.ptp(y) == 0:
            res["note"] = "cannot be computed (constant accuracies)"
        else:
            s, k = stats.spearmanr(x, y), stats.kendalltau(x, y)
            res.update(spearman=float(s.statistic), p_spearman=float(s.pvalue),
                       kendall=float(k.statistic), p_kendall=float(k.pvalue))
        out.append(res)
    return out


def _significance(ps, alpha: float = ALPHA) -> str:
    """How the t-tests behind an ordering came out, at the level the study states for it."""
    if any(p is None for p in ps):
        return "t-test n/a (fewer than 2 runs or no variance)"
    if all(p < alpha for p in ps):
        return f"t-test p < {alpha:g}" + (" at every step" if len(ps) > 1 else "")
    return f"not significant (t-test p >= {alpha:g}" + (" at some step)" if len(ps) > 1 else ")")


def _p(pvals: dict, a: str, b: str):
    return pvals.get((a, b), pvals.get((b, a)))


def _chain(members: dict, o: dict, pvals: dict) -> tuple[str, str]:
    archs = o["archs"]
    means = [100 * members[a]["mean"] for a in archs]
    holds = all(x > y for x, y in zip(means, means[1:]))
    ps = [_p(pvals, a, b) for a, b in zip(archs, archs[1:])]
    sep = " > " if holds else ", "
    return ("yes" if holds else "no"), (sep.join(f"{a} {m:.1f}" for a, m in zip(archs, means))
                                        + "; " + _significance(ps, o["alpha"]))


def _top(members: dict, o: dict, pvals: dict) -> tuple[str, str]:
    """The named front-ends are the best of ``o["among"]`` (the others of that set that were run)."""
    field = set(o["among"]) if o.get("among") else set(members) - {"mfcc"}
    others = [a for a in members if a in field and a not in o["archs"] and a != "mfcc"]
    if not others:
        return "not run", "no other front-end of the set to compare with"
    worst_named = min(o["archs"], key=lambda a: members[a]["mean"])
    best_other = max(others, key=lambda a: members[a]["mean"])
    holds = members[worst_named]["mean"] > members[best_other]["mean"]
    return ("yes" if holds else "no"), (
        f"{worst_named} {100 * members[worst_named]['mean']:.1f} vs best other {best_other} "
        f"{100 * members[best_other]['mean']:.1f} (of {len(others) + len(o['archs'])} front-ends); "
        + _significance([_p(pvals, worst_named, best_other)], o["alpha"]))


def _beats(members: dict, o: dict, pvals: dict) -> tuple[str, str]:
    """Each named front-end beats the baseline (the MFCCs)."""
    base = o["baseline"]
    if base not in members:
        return "not run", f"no {base} result in this group"
    m0 = members[base]["mean"]
    holds = all(members[a]["mean"] > m0 for a in o["archs"])
    return ("yes" if holds else "no"), (
        ", ".join(f"{a} {100 * members[a]['mean']:.1f}" for a in o["archs"]) + f" vs {base} {100 * m0:.1f}; "
        + _significance([_p(pvals, a, base) for a in o["archs"]], o["alpha"]))


_CHECKS = {"chain": _chain, "top": _top, "best": _top, "beats": _beats}
STUDY_CLASSIFIERS = ("svm", "elm")  # "elm-hpelm" rows are a cross-check, never the study's ELM


def _in_scope(o: dict, width: str, classifier: str) -> bool:
    return (classifier in (o.get("classifiers") or STUDY_CLASSIFIERS)
            and (o.get("widths") is None or width in o["widths"]))


def check_orderings(rows: list[dict], orderings=ORDERINGS) -> list[dict]:
    """Whether the study's orderings hold on random-weight means, each within its published scope.

    Each ordering of :data:`report.published.ORDERINGS` names its dataset, the classifiers and
    widths it covers ("7x86 > 7x96" on GTZAN: SVMs only), its field ("the two best spectrogram
    models": spectrogram front-ends only) and its t-test level; groups outside that scope are not checked.

    Returns
    -------
    list of dict
        ``ordering, dataset, group`` (classifier / protocol / width), ``holds`` ("yes", "no" or
        "not run"), ``detail`` (the means, whether the t-tests agree, or what is missing),
        ``claim`` (the thesis's scope words) and ``source``.
    """
    groups = group_rows(rows, weights="random")
    tests = pairwise_tests([r for r in rows if r["weights"] == "random" or r["arch"] == "mfcc"])
    out = []
    for o in orderings:
        ds = o["dataset"]
        base = {"ordering": o["name"], "dataset": ds, "claim": o.get("claim", ""), "source": o.get("source", "")}
        found = False
        for key, members in groups.items():
            if key[0] != ds or not _in_scope(o, key[2], key[3]) or not any(a in members for a in o["archs"]):
                continue
            found = True
            label = f"{key[3]} / {protocol_label(key[4])} / {key[2]}"
            missing = [a for a in o["archs"] if a not in members]
            if missing:
                out.append({**base, "group": label, "holds": "not run", "detail": "missing " + ", ".join(missing)})
                continue
            pvals = {(p["a"], p["b"]): p["p_t"] for p in tests.get(key, [])}
            holds, detail = _CHECKS[o["kind"]](members, o, pvals)
            out.append({**base, "group": label, "holds": holds, "detail": detail})
        if not found:
            scope = "/".join(o.get("classifiers") or STUDY_CLASSIFIERS) + (
                "" if o.get("widths") is None else ", width " + "/".join(o["widths"]))
            out.append({**base, "group": "-", "holds": "not run",
                        "detail": f"no random-weight results for {', '.join(o['archs'])} in scope ({scope})"})
    return sorted(out, key=lambda r: STUDY_DATASETS.index(r["dataset"]) if r["dataset"] in STUDY_DATASETS
                  else len(STUDY_DATASETS))


def cost_table(rows: list[dict]) -> list[dict]:
    """Parameters, GFLOP per clip and measured extraction time per (arch, width).

    Returns
    -------
    list of dict
        ``arch, width, n_params, gflop_per_clip`` (None when no file recorded them),
        ``s_per_clip`` (median over files of 1 / clips_per_s) and ``datasets``.
    """
    by = defaultdict(list)
    for r in rows:
        if r["protocol"] != "end-to-end":
            by[(r["arch"], r["width"])].append(r)
    out = []
    for (arch, width), rs in sorted(by.items(), key=lambda kv: sort_key(
            {"dataset": "", "weights": "", "width": kv[0][1], "classifier": "", "protocol": "",
             "arch": kv[0][0]})):
        def first(k):
            return next((r[k] for r in rs if r[k] is not None), None)
        speeds = {r["source"]: r["extract_clips_per_s"] for r in rs if r["extract_clips_per_s"]}
        out.append({"arch": arch, "width": width, "n_params": first("n_params"),
                    "gflop_per_clip": first("gflop_per_clip"),
                    "s_per_clip": float(np.median([1 / v for v in speeds.values()])) if speeds else None,
                    "datasets": ", ".join(sorted({r["dataset"] for r in rs}))})
    return out


def fmt_p(p) -> str:
    """A p-value for a table, starred when below ALPHA."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "n/a"
    return (f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}") + (" *" if p < ALPHA else "")
