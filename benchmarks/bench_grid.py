"""Time the study grid (32 SVM + 6 ELM points; cv-best and nested-cv, as ``classifiers.grid`` runs them)
the fast way and the straightforward way, in one run, and write the ratios to a CSV.

- **fast**: ``classifiers.kernels`` (``FastSVM``: precomputed kernels shared by every C and task, libsvm
  fits in ``--jobs`` threads; ``FastELM``: one hidden layer, Grams per block of clips, the n x n dual
  where there are fewer training clips than units) through ``protocols.evaluate``, both protocols.
- **straightforward**: ``GridSearchCV(SVC(), SVM_GRID, n_jobs=jobs)`` and ``GridSearchCV`` over
  ``ELMClassifier`` sizes (one pseudo-inverse per point and fold, ``n_jobs=1``: BLAS threads already use
  the cores), over the predefined folds for cv-best; nested-cv the straightforward way is one such
  search per outer fold over the other folds, plus a refit of its pick on the outer training set.

The straightforward way takes hours on 8732 x 3584, so it can be measured on part of the work and
extrapolated by fit counts (the output and the CSV say which): ``--straightforward-points N`` runs
N grid points evenly spaced in grid order, ``--straightforward-folds F`` the first F outer folds
(cv-best-sized fits: all folds but one), ``--straightforward-inner I`` the first I inner folds of outer
fold 1 (nested-sized fits: all folds but two). With ``a`` the measured seconds per cv-best fit and ``b``
per inner fit (wall time over fits), the estimate for P points and K folds is ``a P K`` (cv-best) plus
``b P K (K-1) + a K`` (nested: inner searches and one refit per outer fold). Measured fits are not
scaled otherwise.

Picks: the per-fold accuracies of every straightforward fit are asserted equal to the fast path's on
the same clips (the fast path's inner-fold predictions come from the same scorer on the same tasks),
and where the straightforward search covers every point and fold, its cv-best pick and the nested pick
of outer fold 1 are asserted equal too.

    python benchmarks/bench_grid.py --clips 1500 --features 1024 --classes 8 --folds 5
    python benchmarks/bench_grid.py --clips 8732 --features 3584 --classes 10 --folds 10 \\
        --straightforward-points 6 --straightforward-folds 1 --straightforward-inner 1 \\
        --fast-tasks 2 --straightforward-timeout 120

``--straightforward-timeout S`` runs each straightforward search in a child process and stops it after
S seconds: a stopped search is charged S (its fits took at least that long), so its figures and the
ratios are lower bounds, printed ">=" and flagged in the CSV's ``straightforward_lower_bound`` column.
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.svm import SVC  # noqa: E402

from benchmarks.cpuinfo import cpu_info, cpu_line  # noqa: E402
from classifiers.elm import ELMClassifier  # noqa: E402
from classifiers.featureset import synthetic_feature_set  # noqa: E402
from classifiers.grids import ELM_GRID, SVM_GRID, grid_points  # noqa: E402
from classifiers.kernels import FastELM, FastSVM, available_cpus as default_jobs  # noqa: E402
from classifiers.protocols import evaluate  # noqa: E402

PROTOCOLS = ["cv-best", "nested-cv"]
COLUMNS = ["clips", "features", "classes", "folds", "jobs", "classifier", "points", "fast_s",
           "straightforward_s", "ratio", "fast_cpu_s", "straightforward_cpu_s", "cpu_ratio",
           "straightforward_cv_best_s", "ratio_vs_cv_best_only", "measured_s", "measured_fits",
           "total_fits", "baseline", "fast", "same_picks", "solvers", "straightforward_lower_bound",
           "load_before", "load_after", "cpus", "machine"]


def _cpu_snapshot() -> tuple[float, dict]:
    """CPU seconds of this process (all threads), and of each live descendant (joblib's loky workers)
    from ``/proc``; on machines shared with other work CPU time is steadier than wall time."""
    own = time.process_time()
    try:
        tick, me = os.sysconf("SC_CLK_TCK"), os.getpid()
        parent, cpu = {}, {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                except OSError:  # gone meanwhile
                    continue
                parent[int(entry)] = int(fields[1])
                cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    except (OSError, ValueError, AttributeError):  # no /proc: own CPU only
        return own, {}

    def descends(pid):
        while pid > 1:
            pid = parent.get(pid, 0)
            if pid == me:
                return True
        return False
    return own, {pid: c for pid, c in cpu.items() if pid != me and descends(pid)}


class _Clock:
    """Wall and CPU seconds of a ``with`` block. CPU counts this process and the descendants alive at
    its end (what they used inside the block); a worker that exits inside the block is not counted."""

    def __enter__(self):
        self.wall, self._cpu = time.perf_counter(), _cpu_snapshot()
        return self

    def __exit__(self, *exc):
        own, kids = _cpu_snapshot()
        self.wall = time.perf_counter() - self.wall
        self.cpu = own - self._cpu[0] + sum(c - self._cpu[1].get(pid, 0.0) for pid, c in kids.items())


def _search_now(est, points, X, y, cv, jobs):
    grid = [{k: [v] for k, v in p.items()} for p in points]
    with _Clock() as clock:
        s = GridSearchCV(est, grid, cv=cv, scoring="accuracy", n_jobs=jobs, refit=False,
                         error_score=np.nan).fit(X, y)
    return np.stack([s.cv_results_[f"split{i}_test_score"] for i in range(len(cv))], axis=1), clock


class _Timed:
    """Wall and CPU seconds of a search run in a child process (``cpu`` NaN where unknown)."""

    def __init__(self, wall, cpu=float("nan")):
        self.wall, self.cpu = float(wall), float(cpu)


def _search(est, points, X, y, cv, jobs, timeout=None):
    """GridSearchCV over ``points`` (grid order kept): per-point, per-split accuracies (None if stopped)
    and its clock (``.wall``, ``.cpu``).

    With ``timeout`` the search runs in a child process of its own session, killed with its workers
    after ``timeout`` seconds; then the accuracies are None and the clock's wall time is the limit (the
    search's fits took at least that long between them) and its CPU time unknown. A search that fails
    in the child raises here with the child's message.
    """
    if timeout is None:
        return _search_now(est, points, X, y, cv, jobs)
    import multiprocessing as mp
    import signal
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)

    def run():
        os.setsid()  # a session of its own: the kill below takes joblib's workers with it
        try:
            acc, clock = _search_now(est, points, X, y, cv, jobs)
            child.send(("ok", acc, clock.wall, clock.cpu))
        except BaseException as e:  # told to the parent, which raises it
            child.send(("error", f"{type(e).__name__}: {e}", 0.0, 0.0))

    proc = ctx.Process(target=run, daemon=False)
    proc.start()
    child.close()  # the parent's copy: a child that dies without a word is then seen as EOF
    try:
        if parent.poll(timeout):
            try:
                status, acc, wall, cpu = parent.recv()
            except EOFError:
                status, acc = "error", f"the search process ended with exit code {proc.join() or proc.exitcode}"
            if status != "ok":
                raise RuntimeError(f"straightforward search failed: {acc}")
            return acc, _Timed(wall, cpu)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return None, _Timed(timeout)
    finally:
        proc.join()


def _spaced(n_points, n):
    return sorted({int(round(i)) for i in np.linspace(0, n_points - 1, min(n, n_points))})


def _accuracies(pred, y, tasks):
    return np.array([[np.nan if pp[t] is None else np.mean(pp[t] == y[tasks[t][1]])
                      for t in range(len(tasks))] for pp in pred])


def compare(name, scorer, est, points, X, y, fold, jobs, n_points, n_outer, n_inner, fast_tasks=None,
            timeout=None):
    """Fast and straightforward timings for one classifier, with the pick checks. Returns a CSV row."""
    folds = np.unique(fold)
    K, P = folds.size, len(points)
    n_tasks = K + K * (K - 1) // 2  # what evaluate fits for cv-best + nested-cv: folds and fold pairs
    outer_tasks = [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in folds]
    if fast_tasks is not None:
        fast_tasks = max(1, min(fast_tasks, K))
    res = None
    with _Clock() as fast:
        if fast_tasks is None:
            res = evaluate(scorer, points, y, PROTOCOLS, fold=fold, jobs=jobs, desc=name, progress=False)
            failed = res["failed"]
        else:  # the first fast_tasks cv-best tasks only, scaled to all tasks below
            pred, failed = scorer.run(points, outer_tasks[:fast_tasks], jobs=jobs)
    if failed:
        raise SystemExit(f"error: fast {name} grid points failed: {failed}")
    if fast_tasks is None:
        fast_s, fast_cpu = fast.wall, fast.cpu
    elif fast_tasks == 1:  # every task charged the shared work (kernels, hidden layer): an upper bound
        fast_s, fast_cpu = fast.wall * n_tasks, fast.cpu * n_tasks
    else:  # shared work once, plus the cost of one more task measured as the difference to one task
        with _Clock() as one:
            scorer.run(points, outer_tasks[:1], jobs=jobs)

        def scaled(many, single):
            per_task = max(many - single, 0.0) / (fast_tasks - 1)
            return single - per_task + per_task * n_tasks
        fast_s, fast_cpu = scaled(fast.wall, one.wall), scaled(fast.cpu, one.cpu)
    fold_scores = res["cv-best"]["fold_scores"] if res else _accuracies(pred, y, outer_tasks[:fast_tasks])

    sub = _spaced(P, n_points)
    sub_points = [points[i] for i in sub]
    n_outer, n_inner = min(n_outer, K, fold_scores.shape[1]), min(n_inner, K - 1)
    sf_jobs = jobs if name == "svm" else 1
    outer_acc, a = _search(est, sub_points, X, y, outer_tasks[:n_outer], sf_jobs, timeout)
    rest = np.flatnonzero(fold != folds[0])
    inner = [(np.flatnonzero(fold[rest] != j), np.flatnonzero(fold[rest] == j)) for j in folds[1:1 + n_inner]]
    inner_acc, b = _search(est, sub_points, X[rest], y[rest], inner, sf_jobs, timeout)
    stopped = outer_acc is None or inner_acc is None  # then the straightforward times are lower bounds

    # picks: the same accuracies on every fit both ways ran (a stopped search gave none to compare)
    same = outer_acc is None or np.array_equal(fold_scores[sub][:, :n_outer], outer_acc)
    tasks = [(rest[tr], rest[te]) for tr, te in inner]
    if inner_acc is not None:
        same &= np.array_equal(_accuracies(scorer.run(sub_points, tasks, jobs=jobs)[0], y, tasks), inner_acc)
    full = len(sub) == P and not stopped
    if res and full and n_outer == K:
        same &= int(np.argmax(outer_acc.mean(axis=1))) == res["cv-best"]["selected"]
    if res and full and n_inner == K - 1:
        same &= int(np.argmax(inner_acc.mean(axis=1))) == res["nested-cv"]["selected_per_fold"][0]

    n_a, n_b = len(sub) * n_outer, len(sub) * n_inner
    exact_cv = full and n_outer == K

    def total(measure):  # straightforward seconds for the whole grid from the measured fits
        per_a, per_b = getattr(a, measure) / n_a, getattr(b, measure) / n_b
        cv_best = getattr(a, measure) if exact_cv else per_a * P * K
        return cv_best, cv_best + per_b * P * K * (K - 1) + per_a * K
    cv_best_s, slow_s = total("wall")
    cv_best_cpu, slow_cpu = total("cpu")
    counts = getattr(scorer, "solver_counts", None)
    picks = (f"cv-best pick {points[res['cv-best']['selected']]}, {100 * res['cv-best']['accuracy']:.2f} %"
             if res else f"measured on {fast_tasks} of {n_tasks} tasks, scaled by task count")
    print(f"{name}: fast {fast_s:.1f} s wall, {fast_cpu:.1f} s CPU (cv-best + nested-cv, {P} points; "
          f"{picks}{'; solvers ' + str(counts) if counts else ''})")
    at_least = ">= " if stopped else ""
    if stopped:
        print(f"  straightforward: stopped at the {timeout:.0f} s limit "
              f"({'cv-best' if outer_acc is None else ''}{' and ' if outer_acc is None and inner_acc is None else ''}"
              f"{'inner' if inner_acc is None else ''} search unfinished): its times below are lower bounds")
    print(f"  straightforward: measured {at_least}{a.wall + b.wall:.1f} s wall on {len(sub)} point(s) x ({n_outer} "
          f"cv-best + {n_inner} inner) fit(s) -> {at_least}{slow_s:.1f} s wall, {slow_cpu:.1f} s CPU for the "
          f"grid (cv-best {cv_best_s:.1f} s{'' if exact_cv else ' extrapolated'}, nested extrapolated)")
    print(f"  ratio {at_least}{slow_s / fast_s:.1f}x wall, {slow_cpu / fast_cpu:.1f}x CPU (vs straightforward "
          f"cv-best only: {at_least}{cv_best_s / fast_s:.1f}x wall, {cv_best_cpu / fast_cpu:.1f}x CPU); "
          f"same accuracies{' and picks' if res and full else ''}"
          f"{' on the fits that finished' if stopped else ''}: {bool(same)}")
    assert same, f"{name}: the fast path disagrees with the straightforward one"
    return {"classifier": name, "points": P, "fast_s": fast_s, "straightforward_s": slow_s,
            "ratio": slow_s / fast_s, "fast_cpu_s": fast_cpu, "straightforward_cpu_s": slow_cpu,
            "cpu_ratio": slow_cpu / fast_cpu, "straightforward_cv_best_s": cv_best_s,
            "ratio_vs_cv_best_only": cv_best_s / fast_s, "measured_s": a.wall + b.wall,
            "measured_fits": n_a + n_b, "total_fits": P * K * K + K,
            "baseline": f"{len(sub)}/{P} points; cv-best {n_outer}/{K} folds; nested outer fold 1 with "
                        f"{n_inner}/{K - 1} inner folds; scaled by fit counts",
            "fast": "all tasks" if fast_tasks is None else f"{fast_tasks}/{n_tasks} tasks, scaled",
            "same_picks": bool(same), "solvers": counts, "straightforward_lower_bound": stopped}


def bench(clips=1500, features=1024, classes=8, folds=5, jobs=None, seed=0, separation=2.0,
          points=None, outer=None, inner=None, classifiers=("svm", "elm"), fast_tasks=None, timeout=None):
    jobs = jobs or default_jobs()
    d = synthetic_feature_set(n_clips=clips, n_features=features, n_classes=classes, n_folds=folds,
                              separation=separation, seed=seed)
    X, fold = d["X"], d["fold"]
    y = np.unique(d["y"], return_inverse=True)[1]
    load0 = os.getloadavg()[0]
    cpu = cpu_info()
    print(cpu_line(cpu))
    print(f"problem: {clips} clips x {features} features, {classes} classes, {folds} folds; jobs {jobs}; "
          f"load average {load0:.2f} on {default_jobs()} CPUs")
    rows = []
    for name in classifiers:
        grid = SVM_GRID if name == "svm" else ELM_GRID
        pts = grid_points(grid)
        scorer = FastSVM(X, y) if name == "svm" else FastELM(X, y, classes, seed)
        est = SVC() if name == "svm" else ELMClassifier(random_state=seed)
        rows.append(compare(name, scorer, est, pts, X, y, fold, jobs, points or len(pts),
                            outer or folds, inner or folds - 1, fast_tasks, timeout))
    fast_s = sum(r["fast_s"] for r in rows)
    slow_s = sum(r["straightforward_s"] for r in rows)
    cv_s = sum(r["straightforward_cv_best_s"] for r in rows)
    fast_cpu = sum(r["fast_cpu_s"] for r in rows)
    slow_cpu = sum(r["straightforward_cpu_s"] for r in rows)
    rows.append({"classifier": "+".join(classifiers), "points": sum(r["points"] for r in rows),
                 "fast_s": fast_s, "straightforward_s": slow_s, "ratio": slow_s / fast_s,
                 "fast_cpu_s": fast_cpu, "straightforward_cpu_s": slow_cpu, "cpu_ratio": slow_cpu / fast_cpu,
                 "fast": "; ".join(r["fast"] for r in rows),
                 "straightforward_cv_best_s": cv_s, "ratio_vs_cv_best_only": cv_s / fast_s,
                 "measured_s": sum(r["measured_s"] for r in rows),
                 "measured_fits": sum(r["measured_fits"] for r in rows),
                 "total_fits": sum(r["total_fits"] for r in rows),
                 "baseline": "sum of the rows above",
                 "same_picks": all(r["same_picks"] for r in rows), "solvers": None,
                 "straightforward_lower_bound": any(r["straightforward_lower_bound"] for r in rows)})
    load1 = os.getloadavg()[0]
    at_least = ">= " if rows[-1]["straightforward_lower_bound"] else ""
    print(f"whole grid: fast {fast_s:.1f} s, straightforward {at_least}{slow_s:.1f} s: ratio "
          f"{at_least}{slow_s / fast_s:.1f}x "
          f"wall, {slow_cpu / fast_cpu:.1f}x CPU (vs straightforward cv-best only {cv_s / fast_s:.1f}x); "
          f"load average {load0:.2f} -> {load1:.2f}")
    for r in rows:
        r.update(clips=clips, features=features, classes=classes, folds=folds, jobs=jobs,
                 load_before=round(load0, 2), load_after=round(load1, 2), cpus=default_jobs(),
                 machine=f"{platform.node()} {cpu['model']} ({' '.join(cpu['vector_extensions'])})")
    return rows


def write_csv(rows, path) -> Path:
    from toolkit.provenance import atomic_write_bytes
    import io
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS)
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()})
    return atomic_write_bytes(Path(path), buf.getvalue().encode("utf-8"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=1500, help="clips (default 1500)")
    parser.add_argument("--features", type=int, default=1024, help="features per clip (default 1024)")
    parser.add_argument("--classes", type=int, default=8, help="classes (default 8)")
    parser.add_argument("--folds", type=int, default=5, help="predefined folds (default 5)")
    parser.add_argument("--classifier", nargs="+", choices=["svm", "elm"], default=["svm", "elm"],
                        help="grids to time (default both)")
    parser.add_argument("--straightforward-points", type=int, default=None,
                        help="grid points the straightforward way runs, evenly spaced (default all)")
    parser.add_argument("--straightforward-folds", type=int, default=None,
                        help="outer folds the straightforward cv-best search runs (default all)")
    parser.add_argument("--straightforward-inner", type=int, default=None,
                        help="inner folds of outer fold 1 the straightforward nested search runs "
                             "(default all: folds - 1)")
    parser.add_argument("--fast-tasks", type=int, default=None,
                        help="time the fast way on the first N cv-best tasks only: N=1 charges every "
                             "task the shared work (an upper bound); N>=2 also times one task and counts "
                             "the shared work once plus the difference per task "
                             "(default: every task of both protocols, nothing scaled)")
    parser.add_argument("--straightforward-timeout", type=float, default=None, metavar="SECONDS",
                        help="stop each straightforward search after SECONDS (run in a child process); "
                             "a stopped search makes its times, and the ratios, lower bounds (printed "
                             "'>=', column straightforward_lower_bound) (default: no limit)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="threads of the fast SVM fits and ELM tasks, and GridSearchCV(SVC)'s n_jobs "
                             "(default: the CPUs this process may use)")
    parser.add_argument("--seed", type=int, default=0, help="data and ELM seed (default 0)")
    parser.add_argument("--separation", type=float, default=2.0,
                        help="class separation of the generated features (default 2.0)")
    parser.add_argument("--output", default="runs/benchmarks/grid.csv",
                        help="CSV written, rows appended if it exists (default runs/benchmarks/grid.csv)")
    args = parser.parse_args(argv)
    for name in ("clips", "features", "classes", "folds"):
        if getattr(args, name) < 2:
            parser.exit(2, f"error: --{name} must be at least 2, found {getattr(args, name)}\n")
    if args.straightforward_timeout is not None and not args.straightforward_timeout > 0:
        parser.exit(2, "error: --straightforward-timeout must be a positive number of seconds, found "
                       f"{args.straightforward_timeout}\n")
    rows = bench(args.clips, args.features, args.classes, args.folds, args.jobs, args.seed, args.separation,
                 args.straightforward_points, args.straightforward_folds, args.straightforward_inner,
                 tuple(args.classifier), args.fast_tasks, args.straightforward_timeout)
    out = Path(args.output)
    if out.exists():
        with open(out, newline="") as f:
            old = list(csv.DictReader(f))
        rows = [{k: r.get(k) for k in COLUMNS} for r in old] + rows
    print(write_csv(rows, out))


if __name__ == "__main__":
    main()
