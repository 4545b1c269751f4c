"""The report's "judge judged" section: how well each judgement of an untrained architecture predicts the
accuracy it reaches once trained.

Over the architectures of one dataset and width that have a trained (``end-to-end``) result, each
judgement -- every random-weight probe row (SVM, ELM, linear, kNN under each protocol) and every
zero-cost proxy of ``proxies.csv`` (``studies/proxies.py``) -- gets its Spearman and Kendall correlation
(``scipy.stats``) with trained accuracy: per architecture the judgement's mean over seeds against the
trained accuracy's mean over seeds. The 95 % interval is a percentile bootstrap over architectures and
seeds (``BOOTSTRAP`` replicates, ``default_rng(0)``): each replicate draws the architectures with
replacement and, within each drawn architecture, the judgement's and the trained run's seeds with
replacement, and recomputes both means. A replicate whose values are constant has no rank correlation
and is left out (the count is shown). One scatter plot per judgement (panels of one figure per dataset
and width), ``judge.csv`` with every number, and a one-sentence verdict: which judgement ranks the
architectures best here and whether it beats ``params``.

Higher is taken as better for every judgement (accuracy, and each proxy as its paper uses it), so a
negative correlation means the judgement ranks them backwards.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from pathlib import Path

import numpy as np
from scipy import stats

__all__ = ["read_proxies", "judgements", "correlate", "judge_blocks", "BOOTSTRAP", "MIN_ARCHS"]

BOOTSTRAP = 1000
MIN_ARCHS = 3  # fewer architectures than this: no correlation is computed
_FIELDS = ["dataset", "width", "judgement", "kind", "n_archs", "spearman", "spearman_lo", "spearman_hi",
           "p_spearman", "kendall", "kendall_lo", "kendall_hi", "p_kendall", "bootstrap_used"]


def _proxy_files(paths) -> list[Path]:
    found = set()
    for p in map(Path, paths):
        if p.is_dir():
            found.update(q.resolve() for q in p.rglob("proxies.csv"))
        elif p.is_file() and p.name == "proxies.csv":
            found.add(p.resolve())
    return sorted(found)


def read_proxies(paths, messages: list | None = None) -> list[dict]:
    """Rows of every current ``proxies.csv`` under ``paths`` (its ``meta.json`` names its key and the
    CSV's SHA-256; a table that does not match, a half-written one, is skipped with a message). Where
    two tables hold the same (dataset, arch, width, weights), the one written last is used.
    ``value`` is a float or None (not applicable)."""
    messages = messages if messages is not None else []
    tables = {}
    for path in _proxy_files(paths):
        try:
            meta = json.loads((path.parent / "meta.json").read_text(encoding="utf-8"))
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != meta.get("proxies_csv_sha256"):
                raise ValueError("its checksum differs from the one meta.json recorded (edited or half-written)")
            rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
            for r in rows:
                r["value"] = float(r["value"]) if r["value"] not in ("", None) else None
                r["seed"] = int(r["seed"])
                r["seconds"] = float(r["seconds"])
                r["file"] = str(path)
        except (OSError, ValueError, KeyError, TypeError) as e:
            messages.append(f"skipped {path}: {e}")
            continue
        if not rows:
            continue
        ident = tuple(rows[0][k] for k in ("dataset", "arch", "width", "weights"))
        created = (path.parent / "meta.json").stat().st_mtime_ns  # written last: when the table was made
        if ident in tables and tables[ident][0] >= created:
            messages.append(f"skipped {path}: an older proxies table of {'/'.join(ident)} ({tables[ident][2]} is newer)")
            continue
        if ident in tables:
            messages.append(f"skipped {tables[ident][2]}: an older proxies table of {'/'.join(ident)} ({path} is newer)")
        tables[ident] = (created, rows, path)
    return [r for _, rows, _ in tables.values() for r in rows]


def judgements(rows: list[dict], proxy_rows: list[dict]) -> dict:
    """``{(dataset, width): {"trained": {arch: {seed: acc}}, "judgements": {name: (kind, {arch: {seed: v}})}}}``.

    Trained: the ``end-to-end`` rows (trained weights). Judgements: every random-weight row
    (``"<classifier> <protocol>"``, per-seed accuracy) and every proxy with a value.
    """
    out: dict = {}

    def slot(ds, width):
        return out.setdefault((ds, width), {"trained": {}, "judgements": {}})

    for r in rows:
        seeds = [s if s is not None else k for k, s in enumerate(r["seeds"])]
        per_seed = dict(zip(seeds, r["accuracies"]))
        if r["protocol"] == "end-to-end" and r["weights"] == "trained":
            slot(r["dataset"], r["width"])["trained"][r["arch"]] = per_seed
        elif r["weights"] == "random" and r["protocol"] != "end-to-end":
            name = f"{r['classifier']} {r['protocol']}"
            j = slot(r["dataset"], r["width"])["judgements"].setdefault(name, ("probe", {}))
            j[1][r["arch"]] = per_seed
    for p in proxy_rows:
        if p["value"] is None or p["weights"] != "random":
            continue
        j = slot(p["dataset"], p["width"])["judgements"].setdefault(p["proxy"], ("proxy", {}))
        j[1].setdefault(p["arch"], {})[p["seed"]] = p["value"]
    return out


def _rank_corr(x, y) -> tuple[float, float, float, float]:
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return (math.nan,) * 4
    rho, p_rho = stats.spearmanr(x, y)
    tau, p_tau = stats.kendalltau(x, y)
    return float(rho), float(p_rho), float(tau), float(p_tau)


def correlate(judged: dict, trained: dict, n_boot: int = BOOTSTRAP, seed: int = 0) -> dict | None:
    """Spearman and Kendall of per-architecture means, with bootstrap 95 % intervals over
    architectures and seeds (module docstring). ``judged`` and ``trained``: ``{arch: {seed: value}}``.
    None when fewer than ``MIN_ARCHS`` architectures have both."""
    archs = sorted(a for a in judged if a in trained and judged[a] and trained[a])
    if len(archs) < MIN_ARCHS:
        return None
    J = [np.array(list(judged[a].values()), dtype=float) for a in archs]
    T = [np.array(list(trained[a].values()), dtype=float) for a in archs]
    x = np.array([j.mean() for j in J])
    y = np.array([t.mean() for t in T])
    rho, p_rho, tau, p_tau = _rank_corr(x, y)
    rng = np.random.default_rng(seed)
    boot = []
    n = len(archs)
    for _ in range(n_boot):
        pick = rng.integers(0, n, n)
        bx = np.array([J[i][rng.integers(0, len(J[i]), len(J[i]))].mean() for i in pick])
        by = np.array([T[i][rng.integers(0, len(T[i]), len(T[i]))].mean() for i in pick])
        r, _, t, _ = _rank_corr(bx, by)
        if math.isfinite(r):
            boot.append((r, t))
    b = np.array(boot) if boot else np.full((1, 2), np.nan)
    lo, hi = np.nanpercentile(b, [2.5, 97.5], axis=0) if boot else (b[0], b[0])
    return {"archs": archs, "x": x, "y": y, "n_archs": n, "spearman": rho, "p_spearman": p_rho,
            "kendall": tau, "p_kendall": p_tau, "spearman_lo": float(lo[0]), "spearman_hi": float(hi[0]),
            "kendall_lo": float(lo[1]), "kendall_hi": float(hi[1]), "bootstrap_used": len(boot)}


def _fmt(v, spec="+.2f") -> str:
    return "–" if v is None or not math.isfinite(v) else format(v, spec)


def _verdict(ds, width, res: dict) -> str:
    ok = {k: v for k, v in res.items() if math.isfinite(v["spearman"])}
    if not ok:
        return (f"{ds}, width {width}: no judgement varies with the architecture here, so none ranks them "
                "(every correlation is undefined).")
    best = max(ok, key=lambda k: (ok[k]["spearman"], ok[k]["kendall"]))
    b = ok[best]
    ties = [k for k in ok if k != best and ok[k]["spearman"] == b["spearman"] and ok[k]["kendall"] == b["kendall"]]
    text = (f"{ds}, width {width}, {b['n_archs']} architectures: `{best}` ranks the architectures best "
            + (f"(tied with {', '.join(f'`{t}`' for t in ties[:4])}{' and others' if len(ties) > 4 else ''}; "
               if ties else "(")
            + f"Spearman ρ = {b['spearman']:+.2f}, 95 % interval [{b['spearman_lo']:+.2f}, {b['spearman_hi']:+.2f}])")
    if best == "params":
        return text + "; it is `params` itself, so nothing here beats the parameter count."
    if "params" not in ok:
        return text + "; `params` has no correlation here (no proxies table, or constant), so whether it beats it is unknown."
    p = ok["params"]
    clear = b["spearman_lo"] > p["spearman"]
    return text + (f" and beats `params` (ρ = {p['spearman']:+.2f})"
                   + (", its interval lying above it." if clear else
                      ", though its interval reaches down to params' value, so not clearly."))


def _scatter(ds, width, res: dict, out_dir: Path) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from report.figures import save_figure, slug
    names = list(res)
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.9 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        r = res[name]
        x, y = r["x"], 100 * r["y"]
        ax.scatter(x, y, s=18, color="#1f77b4")
        if np.all(x > 0) and x.max() / max(x.min(), 1e-300) > 100:
            ax.set_xscale("log")
        ax.set_title(f"{name}: ρ {_fmt(r['spearman'])}, τ {_fmt(r['kendall'])}", fontsize=8)
        ax.set_xlabel(name if r.get("kind") == "proxy" else f"{name} accuracy", fontsize=7)
        ax.set_ylabel("trained accuracy (%)", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.suptitle(f"{ds}, width {width}: each judgement against trained accuracy (one point per architecture)",
                 fontsize=9)
    fig.tight_layout()
    name = slug("fig", "judge", ds, width) + ".png"
    save_figure(fig, out_dir / name, dpi=90)  # staged with the report's other files
    plt.close(fig)
    return name


def judge_blocks(rows: list[dict], paths, out_dir: Path, messages: list) -> list:
    """The section's report blocks (``report/build.py``'s format), its figures and ``judge.csv`` in
    ``out_dir``; ``[]`` when no dataset and width has a trained result."""
    groups = judgements(rows, read_proxies(paths, messages))
    groups = {k: v for k, v in groups.items() if v["trained"]}
    if not groups:
        (out_dir / "judge.csv").unlink(missing_ok=True)  # an earlier report's numbers are not this one's
        return []
    blocks = [("h2", "Judging the judge: which judgement predicts trained accuracy"),
              ("p", "Per dataset and width, over the architectures with a trained (end-to-end) result: each "
                    "judgement of the untrained network (random-weight probe accuracy per classifier and "
                    "protocol; each zero-cost proxy of `python -m studies.proxies`) against trained accuracy, "
                    "per architecture the mean over seeds. Spearman ρ and Kendall τ (scipy.stats) with 95 % "
                    f"percentile bootstrap intervals over architectures and seeds ({BOOTSTRAP} replicates). "
                    "Higher is taken as better for every judgement.")]
    table_rows = []
    for (ds, width), g in sorted(groups.items()):
        res = {}
        for name, (kind, judged) in sorted(g["judgements"].items(), key=lambda kv: (kv[1][0], kv[0])):
            r = correlate(judged, g["trained"])
            if r is not None:
                r["kind"] = kind
                res[name] = r
        blocks.append(("h3", f"{ds}, width {width}"))
        if not res:
            blocks.append(("p", f"{len(g['trained'])} trained architecture(s) with a judgement; a correlation "
                                f"needs {MIN_ARCHS}."))
            continue
        blocks.append(("p", "Verdict: " + _verdict(ds, width, res)))
        blocks.append(("table", ["judgement", "kind", "architectures", "Spearman ρ [95 %]", "p", "Kendall τ [95 %]",
                                 "p", "bootstrap replicates used"],
                       [[name, r["kind"], str(r["n_archs"]),
                         f"{_fmt(r['spearman'])} [{_fmt(r['spearman_lo'])}, {_fmt(r['spearman_hi'])}]",
                         _fmt(r["p_spearman"], ".3g"),
                         f"{_fmt(r['kendall'])} [{_fmt(r['kendall_lo'])}, {_fmt(r['kendall_hi'])}]",
                         _fmt(r["p_kendall"], ".3g"), f"{r['bootstrap_used']} of {BOOTSTRAP}"]
                        for name, r in sorted(res.items(), key=lambda kv: -np.nan_to_num(kv[1]["spearman"], nan=-9))]))
        blocks.append(("img", _scatter(ds, width, res, out_dir),
                       f"{ds}, width {width}: every judgement against trained accuracy"))
        for name, r in res.items():
            table_rows.append({"dataset": ds, "width": width, "judgement": name, "kind": r["kind"],
                               **{k: r[k] for k in _FIELDS[4:]}})
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=_FIELDS, lineterminator="\n")
    w.writeheader()
    w.writerows(table_rows)
    from report.figures import stage
    stage(out_dir / "judge.csv", buf.getvalue().encode())
    blocks.append(("p", "Every number of this section: `judge.csv`."))
    return blocks


def multilabel_blocks(paths, messages: list) -> list:
    """A section "Multi-label probes" for the results files of multi-label datasets (a tags manifest):
    macro ROC-AUC and PR-AUC per dataset, front-end, classifier and protocol (mean ± std over seeds), and
    the tags excluded (one class in a run's test clips). ``[]`` when there are none. These files hold no
    accuracy and are not among the report's accuracy rows (``report/load.py``)."""
    from report.load import find_results
    files, _ = find_results(paths)
    rows, used = [], []
    for f in files:
        try:
            data = json.loads(Path(f).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            continue  # load.py's reader names the file
        if not isinstance(data, dict) or data.get("kind") != "randomcnn-results" or not data.get("multilabel"):
            continue
        used.append(f"`{f}`")
        for e in data.get("entries") or []:
            try:
                runs = e["runs"]
                roc = [r["roc_auc"] for r in runs if r.get("roc_auc") is not None]
                pr = [r["pr_auc"] for r in runs if r.get("pr_auc") is not None]
                excluded = sorted({t for r in runs for t in _flat(r.get("tags_excluded"))})
                rows.append([str(data.get("dataset")), str(data.get("arch")), str(data.get("width")),
                             str(e["classifier"]), str(e["protocol"]), _mean_std(roc), _mean_std(pr),
                             str(len(runs)), ", ".join(excluded) or "none"])
            except (KeyError, TypeError, ValueError) as err:
                messages.append(f"{f}: a multi-label entry is malformed ({type(err).__name__}: {err}); not shown")
    if not rows:
        return []
    return [("h2", "Multi-label probes: ROC-AUC and PR-AUC"),
            ("p", "Datasets with a tags manifest: one-vs-rest probes (one binary fit per tag), selected and scored "
                  "by macro ROC-AUC (scikit-learn `roc_auc_score`), PR-AUC `average_precision_score`, both "
                  "macro over the tags whose test clips hold both classes; the other tags are excluded (listed). "
                  "Mean ± standard deviation over seeds; not accuracies."),
            ("table", ["dataset", "front-end", "width", "classifier", "protocol", "ROC-AUC", "PR-AUC", "runs",
                       "tags excluded"], sorted(rows)),
            ("p", "Read from (multi-label results files; not among the Sources' accuracy files):"), ("ul", used)]


def _flat(v):
    """``tags_excluded`` is a list of tags (split) or one list per fold (cv-best, nested-cv)."""
    for x in v or []:
        yield from ([x] if isinstance(x, str) else x)


def _mean_std(v) -> str:
    if not v:
        return "–"
    return f"{np.mean(v):.3f}" + (f" ± {np.std(v, ddof=1):.3f}" if len(v) > 1 else "")
