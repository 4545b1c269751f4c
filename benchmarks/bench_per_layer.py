"""Time ``--per-layer`` against one grid, and the ELM grid against a plain loop of ``lstsq`` fits, in one run.

**per-layer** (``--part per-layer``): generated features of ``--clips`` x ``--features`` in ``--layers``
equal layers (4: frame-level's structure; 7: sample-level's), ``--classes`` classes, ``--folds`` folds,
written as a feature set. For each classifier: ``classifiers.grid.run_grid`` with the study grid under
cv-best and nested-cv (``--grid small``: a quick look), once without and once with ``--per-layer``. Printed: the run with ``--per-layer``
over the run without, and the per-layer part alone (the difference) over one grid. ``--today`` also
scores every subset the per-layer curves hold (each layer alone, layers 1..k) as a feature set of its
own, as ``--per-layer`` did before it shared work, and prints that over one grid too.
A second line per classifier says where the CPU went: the CPU seconds inside the fast scorers
(kernels and libsvm fits; the ELM's projection, Grams and solves) in one grid and in the per-layer
part, the rest being ``run_grid``'s own work, and the ELM's hidden projection alone.

**elm** (``--part elm``): for each ``--elm-clips`` size (with ``--elm-classes`` and ``--elm-folds``
of the same position) the fast ELM grid (``FastELM``, the 6 study sizes, every task of cv-best and
nested-cv: the folds held out and the fold pairs) against the plain loop a researcher writes: per task
and size, ``draw_hidden`` + ReLU, ``numpy.linalg.lstsq`` and the arg-max, with 1 or every CPU's BLAS
threads, whichever ran its largest fit faster (measured first; on a loaded machine many threads can be
many times slower).
The loop is timed on the first ``--lstsq-tasks`` tasks of each kind (fold held out, fold pair) and
scaled by the number of tasks of each kind (``0``: every task, nothing scaled). The share of the timed
tasks' test predictions on which both agree is printed beside it (``lstsq``'s cut-off, ``eps max(m,n)``,
is not the study's ``1e6 eps``, so near-rank-deficient fits may differ on a clip or so).

Each figure is a ratio of two times measured in the same run; on a machine shared with other work only
those ratios mean anything. The CPU model and its vector extensions are printed first and written in
every row. Rows are appended to ``runs/benchmarks/per_layer.csv`` and ``runs/benchmarks/elm_lstsq.csv``
(written atomically); the last line printed is the path of each CSV written. Wall and CPU seconds (this
process's threads, ``time.process_time``) are both given; under load the CPU figures are the steadier.

    python benchmarks/bench_per_layer.py --part per-layer --clips 1500 --features 1024 --layers 4 --today
    python benchmarks/bench_per_layer.py --part elm --elm-clips 1500 6000 8732 --elm-classes 8 10 10 \\
        --elm-folds 5 10 10
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.cpuinfo import cpu_info, cpu_line  # noqa: E402
from classifiers.elm import code_targets, draw_hidden, hidden_activations  # noqa: E402
from classifiers.featureset import synthetic_feature_set, write_feature_set  # noqa: E402
from classifiers.grid import run_grid  # noqa: E402
from classifiers.grids import ELM_GRID, GRIDS, grid_points  # noqa: E402
from classifiers import kernels  # noqa: E402
from classifiers.kernels import FastELM, available_cpus  # noqa: E402
from toolkit.provenance import atomic_write_bytes  # noqa: E402

PER_LAYER_COLUMNS = ["clips", "features", "layers", "classes", "folds", "classifier", "grid", "jobs"] + [
    f"{c}" for kind in ("", "cpu_") for c in (
        f"one_grid_{kind}s", f"with_per_layer_{kind}s", f"{kind}ratio_with_per_layer", f"per_layer_part_{kind}s",
        f"{kind}ratio_per_layer_part", f"today_per_layer_part_{kind}s", f"{kind}ratio_today_part",
        f"{kind}saving")] + ["scorer_cpu_s_one_grid", "scorer_cpu_s_per_layer_part", "projection_cpu_s_one_grid",
                            "projection_cpu_s_per_layer_part", "load_before", "load_after", "cpu",
                            "vector_extensions"]
ELM_COLUMNS = ["clips", "features", "classes", "folds", "tasks", "jobs", "fast_s", "lstsq_s", "ratio",
               "fast_cpu_s", "lstsq_cpu_s", "cpu_ratio",
               "lstsq_measured_tasks", "lstsq_scaled", "lstsq_blas_threads", "agreement", "solvers", "load_before", "load_after",
               "cpu", "vector_extensions"]


def _layers(n_features: int, n_layers: int) -> list[dict]:
    """``n_layers`` near-equal consecutive column blocks (the last ones one wider where it does not divide)."""
    sizes = [n_features // n_layers + (i >= n_layers - n_features % n_layers) for i in range(n_layers)]
    stops = np.cumsum(sizes)
    return [{"name": f"layer{i + 1}", "channels": int(s), "start": int(e - s), "stop": int(e)}
            for i, (s, e) in enumerate(zip(sizes, stops))]


@dataclass(frozen=True)
class PerLayerCase:
    """One per-layer measurement: the generated problem and the grids timed on it."""
    clips: int = 1500
    features: int = 1024
    layers: int = 4
    classes: int = 8
    folds: int = 5
    classifiers: tuple = ("svm", "elm")
    grid: str = "study"
    today: bool = False
    seed: int = 0


@contextlib.contextmanager
def _scorer_cpu():
    """CPU seconds (every thread of this process) inside the fast scorers' ``run`` (the SVM's kernels and
    libsvm fits, the ELM's projection, Grams and solves: what a grid computes), and inside the ELM's hidden
    projection, while the block runs: ``{"scorer": s, "projection": s}``, filled on exit. The rest of a
    grid's time is ``run_grid``'s own (loading, scoring the predictions, writing results)."""
    spent = {"scorer": 0.0, "projection": 0.0}
    real = {"svm": kernels.FastSVM.run, "elm": kernels.FastELM.run, "h": kernels.hidden_activations}

    def timed(fn, key):
        def wrapper(*a, **kw):
            c0 = time.process_time()
            try:
                return fn(*a, **kw)
            finally:
                spent[key] += time.process_time() - c0
        return wrapper
    kernels.FastSVM.run, kernels.FastELM.run = timed(real["svm"], "scorer"), timed(real["elm"], "scorer")
    kernels.hidden_activations = timed(real["h"], "projection")
    try:
        yield spent
    finally:
        kernels.FastSVM.run, kernels.FastELM.run, kernels.hidden_activations = real["svm"], real["elm"], real["h"]


def per_layer(case: PerLayerCase, jobs: int) -> list[dict]:
    clips, features, n_layers, classes, folds = case.clips, case.features, case.layers, case.classes, case.folds
    seed, today = case.seed, case.today
    layers = _layers(features, n_layers)
    arrays = synthetic_feature_set(n_clips=clips, n_features=features, n_classes=classes, n_folds=folds,
                                   separation=2.0, seed=seed)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_per_layer_") as tmp:
        tmp = Path(tmp)
        fs = write_feature_set(tmp / "fs", meta={"layers": layers, "seed": seed, "arch": "bench"}, **arrays)
        for name in case.classifiers:
            load0 = os.getloadavg()[0]

            def timed(paths, out, **kw):  # (wall, CPU of this process's threads) seconds
                t0, c0 = time.perf_counter(), time.process_time()
                run_grid(paths, classifier=name, grid=case.grid, jobs=jobs, out=out, progress=False,
                         log=lambda m: None, **kw)
                return np.array([time.perf_counter() - t0, time.process_time() - c0])
            with _scorer_cpu() as in_one:
                one = timed([fs], tmp / f"{name}_one")
            with _scorer_cpu() as in_both:
                both = timed([fs], tmp / f"{name}_per_layer", per_layer=True)
            in_part = {k: in_both[k] - in_one[k] for k in in_one}
            part = both - one
            today_s = None
            if today:  # every subset of the curves as a feature set of its own, each a full grid
                today_s = np.zeros(2)
                for mode in ("alone", "cumulative"):
                    for k in range(1, n_layers + 1):
                        cols = slice(layers[k - 1]["start"] if mode == "alone" else 0, layers[k - 1]["stop"])
                        sub = write_feature_set(tmp / f"{name}_{mode}{k}", arrays["X"][:, cols], arrays["y"],
                                                arrays["ids"], fold=arrays["fold"], meta={"seed": seed})
                        today_s += timed([sub], tmp / f"{name}_{mode}{k}_r")
            load1 = os.getloadavg()[0]

            def pair(x):  # "wall s / CPU s"
                return f"{x[0]:.1f} / {x[1]:.1f} s"

            def ratio(a, b):
                return f"{a[0] / b[0]:.2f}x / {a[1] / b[1]:.2f}x"
            print(f"{name} (wall / CPU): one grid {pair(one)}; with --per-layer {pair(both)} = {ratio(both, one)} "
                  f"one grid; the per-layer part {pair(part)} = {ratio(part, one)} one grid"
                  + (f"; each subset scored on its own (before sharing) {pair(today_s)} = {ratio(today_s, one)} "
                     f"one grid, {ratio(today_s, part)} the shared per-layer part" if today else "")
                  + f" (load {load0:.1f} -> {load1:.1f})", flush=True)
            print(f"{name} where the CPU went: inside the scorer (kernels and fits / projection and solves) "
                  f"{in_one['scorer']:.1f} s of one grid's {one[1]:.1f} s ({100 * in_one['scorer'] / one[1]:.0f} %), "
                  f"{in_part['scorer']:.1f} s of the per-layer part's {part[1]:.1f} s "
                  f"({100 * in_part['scorer'] / part[1]:.0f} %)"
                  + (f"; of which the ELM's hidden projection {in_one['projection']:.2f} s and "
                     f"{in_part['projection']:.2f} s" if name == "elm" else ""), flush=True)
            row = {"clips": clips, "features": features, "layers": n_layers, "classes": classes, "folds": folds,
                   "classifier": name, "grid": case.grid, "jobs": jobs,
                   "load_before": round(load0, 2), "load_after": round(load1, 2),
                   "scorer_cpu_s_one_grid": in_one["scorer"], "scorer_cpu_s_per_layer_part": in_part["scorer"],
                   "projection_cpu_s_one_grid": in_one["projection"],
                   "projection_cpu_s_per_layer_part": in_part["projection"]}
            for i, kind in enumerate(("", "cpu_")):
                row.update({f"one_grid_{kind}s": one[i], f"with_per_layer_{kind}s": both[i],
                            f"{kind}ratio_with_per_layer": both[i] / one[i], f"per_layer_part_{kind}s": part[i],
                            f"{kind}ratio_per_layer_part": part[i] / one[i]})
                if today:
                    row.update({f"today_per_layer_part_{kind}s": today_s[i],
                                f"{kind}ratio_today_part": today_s[i] / one[i],
                                f"{kind}saving": today_s[i] / part[i]})
            rows.append(row)
    return rows


def _tasks(fold):
    """cv-best's tasks (each fold held out) and nested-cv's (each fold pair), as ``evaluate`` makes them."""
    folds = np.unique(fold)
    singles = [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in folds]
    pairs = [(np.flatnonzero((fold != a) & (fold != b)), np.flatnonzero((fold == a) | (fold == b)))
             for i, a in enumerate(folds) for b in folds[i + 1:]]
    return singles, pairs


def _lstsq_task(X, T, task, ks, seed):
    train, test = task
    out = []
    for k in ks:
        W, b = draw_hidden(X.shape[1], k, seed)
        beta = np.linalg.lstsq(hidden_activations(X[train], W, b), T[train], rcond=None)[0]
        out.append(np.argmax(hidden_activations(X[test], W, b) @ beta, axis=1))
    return out


def _faster_blas(fn, cpus: int) -> int:
    """Of 1 and ``cpus`` BLAS threads, the one under which ``fn()`` ran faster (each timed once)."""
    times = {}
    for threads in sorted({1, cpus}):
        with threadpool_limits(threads):
            t0 = time.perf_counter()
            fn()
            times[threads] = time.perf_counter() - t0
    return min(times, key=times.get)


def elm_vs_lstsq(clips, classes, folds, features, jobs, lstsq_tasks, seed=0) -> dict:
    d = synthetic_feature_set(n_clips=clips, n_features=features, n_classes=classes, n_folds=folds,
                              separation=2.0, seed=seed)
    X = d["X"].astype(np.float64)
    y = np.unique(d["y"], return_inverse=True)[1]
    singles, pairs = _tasks(d["fold"])
    tasks = singles + pairs
    points = grid_points(ELM_GRID)
    ks = [p["n_hidden"] for p in points]
    load0 = os.getloadavg()[0]
    scorer = FastELM(X, y, classes, seed)
    t0, c0 = time.perf_counter(), time.process_time()
    pred, errors = scorer.run(points, tasks, jobs=jobs)
    fast, fast_cpu = time.perf_counter() - t0, time.process_time() - c0
    if errors:
        raise SystemExit(f"error: fast ELM points failed at {clips} clips: {errors}")
    T = code_targets(y, classes)
    n = len(singles) if lstsq_tasks == 0 else min(lstsq_tasks, len(singles))
    m = len(pairs) if lstsq_tasks == 0 else min(lstsq_tasks, len(pairs))
    timed = [(i, singles[i]) for i in range(n)] + [(len(singles) + j, pairs[j]) for j in range(m)]
    # the loop's BLAS threads by measurement: on a loaded machine OpenBLAS's threads wait on each
    # other (lstsq of 1200 x 2500 took 25 s on 2 threads, 1.6 s on 1, with the load at 8 on 2 CPUs)
    threads = _faster_blas(lambda: _lstsq_task(X, T, timed[0][1], ks[-1:], seed), available_cpus())
    seconds, agree, total = {"single": 0.0, "pair": 0.0}, 0, 0
    cpu = {"single": 0.0, "pair": 0.0}
    for t, task in timed:
        t1, c1 = time.perf_counter(), time.process_time()
        with threadpool_limits(threads):
            outs = _lstsq_task(X, T, task, ks, seed)
        kind = "single" if t < len(singles) else "pair"
        seconds[kind] += time.perf_counter() - t1
        cpu[kind] += time.process_time() - c1
        for p, o in enumerate(outs):
            agree += int(np.sum(o == pred[p][t]))
            total += o.size
    def scale(spent):  # seconds per task of each kind times the tasks of that kind
        return spent["single"] / max(n, 1) * len(singles) + (spent["pair"] / m * len(pairs) if m else 0.0)
    lstsq, lstsq_cpu = scale(seconds), scale(cpu)
    scaled = n < len(singles) or m < len(pairs)
    load1 = os.getloadavg()[0]
    print(f"ELM {clips} x {features}, {classes} classes, {folds} folds ({len(tasks)} tasks, {len(ks)} sizes): "
          f"fast grid {fast:.1f} s; lstsq loop {lstsq:.1f} s"
          f"{f' (timed on {n} + {m} of {len(singles)} + {len(pairs)} tasks, scaled)' if scaled else ''}"
          f" with {threads} BLAS thread(s): "
          f"{lstsq / fast:.2f}x wall, {lstsq_cpu / fast_cpu:.2f}x CPU; same predictions on {100 * agree / total:.2f} % of the timed tasks' test "
          f"clips; solvers {scorer.solver_counts} (load {load0:.1f} -> {load1:.1f})", flush=True)
    return {"clips": clips, "features": features, "classes": classes, "folds": folds, "tasks": len(tasks),
            "jobs": jobs, "fast_s": fast, "lstsq_s": lstsq, "ratio": lstsq / fast, "fast_cpu_s": fast_cpu,
            "lstsq_cpu_s": lstsq_cpu, "cpu_ratio": lstsq_cpu / fast_cpu,
            "lstsq_measured_tasks": n + m, "lstsq_scaled": scaled, "lstsq_blas_threads": threads, "agreement": agree / total,
            "solvers": json.dumps(scorer.solver_counts), "load_before": round(load0, 2),
            "load_after": round(load1, 2)}


def append_csv(rows, path, columns) -> Path:
    """``rows`` appended to the CSV at ``path`` (its old rows kept), written atomically."""
    path = Path(path)
    old = []
    if path.exists():
        with open(path, newline="") as f:
            old = [{k: r.get(k) for k in columns} for r in csv.DictReader(f)]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for r in old + rows:
        writer.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()})
    return atomic_write_bytes(path, buf.getvalue().encode("utf-8"))


def _positive(parser, name, values):
    for v in values if isinstance(values, list) else [values]:
        if v < 1:
            parser.exit(2, f"error: {name} must be at least 1, found {v}\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", nargs="+", choices=["per-layer", "elm"], default=["per-layer", "elm"],
                        help="what to time (default both)")
    parser.add_argument("--clips", type=int, default=1500, help="per-layer: clips (default 1500)")
    parser.add_argument("--features", type=int, default=1024, help="features per clip, both parts (default 1024)")
    parser.add_argument("--layers", type=int, default=4,
                        help="per-layer: equal layers (default 4, frame-level's structure; sample-level has 7)")
    parser.add_argument("--classes", type=int, default=8, help="per-layer: classes (default 8)")
    parser.add_argument("--folds", type=int, default=5, help="per-layer: folds (default 5)")
    parser.add_argument("--classifier", nargs="+", choices=["svm", "elm"], default=["svm", "elm"],
                        help="per-layer: grids to time (default both)")
    parser.add_argument("--grid", choices=sorted(GRIDS), default="study",
                        help="per-layer: the grids run (default study; small: a quick look)")
    parser.add_argument("--today", action="store_true",
                        help="per-layer: also score every subset as a feature set of its own (the cost "
                             "before sharing)")
    parser.add_argument("--elm-clips", type=int, nargs="+", default=[1500, 6000, 8732],
                        help="elm: sizes (default 1500 6000 8732)")
    parser.add_argument("--elm-classes", type=int, nargs="+", default=[8, 10, 10],
                        help="elm: classes at each size (default 8 10 10)")
    parser.add_argument("--elm-folds", type=int, nargs="+", default=[5, 10, 10],
                        help="elm: folds at each size (default 5 10 10: the 1500-clip set, UrbanSound8K's)")
    parser.add_argument("--lstsq-tasks", type=int, default=2,
                        help="elm: time the lstsq loop on the first N tasks of each kind and scale by task "
                             "counts (0: every task; default 2)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="threads of the fast grids (default: the CPUs this process may use)")
    parser.add_argument("--out-dir", default="runs/benchmarks", help="where the CSVs go (default runs/benchmarks)")
    args = parser.parse_args(argv)
    _positive(parser, "--clips", args.clips)
    _positive(parser, "--features", args.features)
    _positive(parser, "--elm-clips", args.elm_clips)
    if not 1 <= args.layers <= args.features:
        parser.exit(2, f"error: --layers must be between 1 and --features ({args.features}), found {args.layers}\n")
    if args.classes < 2 or args.folds < 3:
        parser.exit(2, f"error: --classes must be at least 2 and --folds at least 3 (nested-cv trains on all "
                       f"folds but two), found {args.classes} and {args.folds}\n")
    if not len(args.elm_clips) == len(args.elm_classes) == len(args.elm_folds):
        parser.exit(2, "error: --elm-clips, --elm-classes and --elm-folds need one value per size each, found "
                       f"{len(args.elm_clips)}, {len(args.elm_classes)}, {len(args.elm_folds)}\n")
    if min(args.elm_classes) < 2 or min(args.elm_folds) < 3:
        parser.exit(2, "error: --elm-classes must be at least 2 and --elm-folds at least 3 (nested-cv trains "
                       "on all folds but two)\n")
    if args.lstsq_tasks < 0:
        parser.exit(2, f"error: --lstsq-tasks must be 0 (every task) or more, found {args.lstsq_tasks}\n")
    jobs = args.jobs or available_cpus()
    _positive(parser, "--jobs", jobs)
    info = cpu_info()
    print(cpu_line(info), flush=True)
    print("figures are ratios of times measured in this run (a machine shared with other work: nothing else "
          "here is comparable across runs)", flush=True)
    stamp = {"cpu": info["model"], "vector_extensions": " ".join(info["vector_extensions"])}
    written = []
    if "per-layer" in args.part:
        case = PerLayerCase(args.clips, args.features, args.layers, args.classes, args.folds,
                            tuple(args.classifier), args.grid, args.today)
        rows = per_layer(case, jobs)
        written.append(append_csv([dict(r, **stamp) for r in rows], Path(args.out_dir) / "per_layer.csv",
                                  PER_LAYER_COLUMNS))
    if "elm" in args.part:
        rows = [elm_vs_lstsq(n, c, f, args.features, jobs, args.lstsq_tasks)
                for n, c, f in zip(args.elm_clips, args.elm_classes, args.elm_folds)]
        written.append(append_csv([dict(r, **stamp) for r in rows], Path(args.out_dir) / "elm_lstsq.csv",
                                  ELM_COLUMNS))
    for path in written:
        print(path)


if __name__ == "__main__":
    main()
