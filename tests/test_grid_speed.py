"""The fast grid's shortcuts give the straightforward answers: the n x n dual ELM, Grams summed over
blocks of clips, the whole study grid's picks against GridSearchCV, and ``--jobs`` defaulting to the
CPUs available."""
import os

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from classifiers.elm import ELMClassifier, code_targets, draw_hidden, hidden_activations, solve_output
from classifiers.grid import main as grid_main
from classifiers.grids import grid_points
from classifiers.kernels import FastELM, _blocks, available_cpus
from classifiers.protocols import evaluate
from classifiers.reference import NaiveELM


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(1):
        yield


def _problem(n=120, d=200, classes=4, folds=4, seed=0):
    """Positive features (like per-layer means) with folds 1..folds; d large enough that a ReLU layer of
    more units than clips has full row rank and is well conditioned."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    X = np.abs(rng.standard_normal((n, d)) + 0.8 * rng.standard_normal((classes, d))[y])
    fold = rng.permutation(np.arange(n) % folds) + 1
    return X, y, fold


def test_dual_outputs_equal_the_pseudo_inverse_when_units_outnumber_clips():
    X, y, fold = _problem()
    train, test = np.flatnonzero(fold != 1), np.flatnonzero(fold == 1)
    k = 300  # > 90 training clips: the dual n x n system
    W, b = draw_hidden(X.shape[1], k, 3)
    H, T = hidden_activations(X, W, b), code_targets(y, 4)
    scorer = FastELM(X, y, 4, seed=3)
    K = H @ H.T
    out = scorer._dual_outputs(K, H, T, train, test, k)
    ref = H[test] @ solve_output(H[train], T[train])  # the study's pinv with its cut-off
    assert scorer.solver_counts["dual"] == 1  # answered by the Cholesky of the n x n kernel
    np.testing.assert_allclose(out, ref, rtol=1e-7, atol=1e-9 * np.abs(ref).max())
    # and the predictions of the ELM estimator, refitted the straightforward way
    est = ELMClassifier(n_hidden=k, random_state=3).fit(X[train], y[train])
    np.testing.assert_array_equal(np.argmax(out, axis=1), est.predict(X[test]))


def test_dual_ridge_equals_the_primal_ridge():
    X, y, fold = _problem(n=80)
    train, test = np.flatnonzero(fold != 2), np.flatnonzero(fold == 2)
    k = 150
    W, b = draw_hidden(X.shape[1], k, 0)
    H, T = hidden_activations(X, W, b), code_targets(y, 4)
    scorer = FastELM(X, y, 4, seed=0, alpha=0.5)
    out = scorer._dual_outputs(H @ H.T, H, T, train, test, k)
    est = ELMClassifier(n_hidden=k, alpha=0.5, random_state=0).fit(X[train], y[train])
    ref = hidden_activations(X[test], est.W_, est.b_) @ est.beta_
    np.testing.assert_allclose(out, ref, rtol=1e-8, atol=1e-10 * np.abs(ref).max())


def test_blocks_of_fold_tasks_are_the_folds():
    fold = np.array([1, 2, 3, 1, 2, 3, 3])
    tasks = [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in (1, 2, 3)]
    tasks.append((np.flatnonzero(fold == 3), np.flatnonzero(fold != 3)))  # a nested-cv pair task
    label, n_blocks = _blocks(fold.size, tasks)
    assert n_blocks == 3
    for k in (1, 2, 3):  # one label per fold, different folds different labels
        assert np.unique(label[fold == k]).size == 1
    assert np.unique(label[[0, 1, 2]]).size == 3


@pytest.mark.parametrize("n, ks", [(120, [20, 60, 150, 400]),   # primal and dual sizes in one grid
                                   (60, [10, 30, 45, 200])])    # nested tasks: 30 clips, dual from 30
def test_fast_elm_picks_equal_the_straightforward_loop(n, ks):
    X, y, fold = _problem(n=n)
    points = grid_points([{"n_hidden": ks}])
    fast_scorer = FastELM(X, y, 4, seed=1)
    fast = evaluate(fast_scorer, points, y, ["cv-best", "nested-cv"], fold=fold, progress=False)
    slow = evaluate(NaiveELM(X, y, 4, seed=1), points, y, ["cv-best", "nested-cv"], fold=fold,
                    progress=False)
    for p in ("cv-best", "nested-cv"):
        np.testing.assert_array_equal(fast[p]["scores"], slow[p]["scores"])
        np.testing.assert_array_equal(fast[p]["y_pred"], slow[p]["y_pred"])
        assert fast[p]["selected"] == slow[p]["selected"]
        assert fast[p]["selected_per_fold"] == slow[p]["selected_per_fold"]
    counts = fast_scorer.solver_counts
    assert sum(counts.values()) == len(ks) * (4 + 6)  # every point on every task, once
    assert counts["dual"] > 0 and counts["cholesky"] > 0


@pytest.mark.parametrize("forced", ["qr", "pinv"])
@pytest.mark.parametrize("n, ks", [(120, [20, 60, 150, 400]), (60, [10, 30, 45, 200])])
def test_every_fallback_alone_gives_the_straightforward_picks(monkeypatch, forced, n, ks):
    # Refuse the normal equations (and, for "pinv", QR too) everywhere, so that the fallbacks answer
    # every primal and dual fit, wide primal blocks of nested tasks included.
    import classifiers.kernels as kernels
    monkeypatch.setattr(kernels, "CHOLESKY_RCOND", 2.0)  # no reciprocal condition number exceeds 1
    if forced == "pinv":
        monkeypatch.setattr(kernels, "QR_RCOND", 2.0)
    X, y, fold = _problem(n=n)
    points = grid_points([{"n_hidden": ks}])
    fast_scorer = FastELM(X, y, 4, seed=1)
    fast = evaluate(fast_scorer, points, y, ["cv-best", "nested-cv"], fold=fold, jobs=2, progress=False)
    slow = evaluate(NaiveELM(X, y, 4, seed=1), points, y, ["cv-best", "nested-cv"], fold=fold,
                    progress=False)
    assert not fast["failed"]
    for p in ("cv-best", "nested-cv"):
        np.testing.assert_array_equal(fast[p]["y_pred"], slow[p]["y_pred"])
        assert fast[p]["selected_per_fold"] == slow[p]["selected_per_fold"]
    counts = fast_scorer.solver_counts
    assert counts["cholesky"] == counts["dual"] == 0
    assert counts[forced] > 0 and sum(counts.values()) == len(ks) * (4 + 6)


def test_a_refinement_that_moves_an_output_near_a_tie_is_not_settled():
    from classifiers.kernels import MARGIN_SHARE, _settled
    out = np.array([[1.0, 0.2, 0.0], [0.5, 0.4, -1.0]])  # gaps 0.8 and 0.1
    small = np.full_like(out, 1e-9)
    assert _settled(out, small)
    near = small.copy()
    near[1, 2] = MARGIN_SHARE * 0.1 * 1.01  # a move just over its share of the second clip's gap
    assert not _settled(out, near)
    assert not _settled(np.array([[0.3, 0.3]]), np.zeros((1, 2)))  # an exact tie is never settled


def test_benchmark_asserts_the_same_picks_as_gridsearchcv(tmp_path, capsys):
    # The study grids (32 SVM + 6 ELM points), both protocols, against GridSearchCV on every point
    # and fold; bench_grid raises if any accuracy or pick differs.
    from benchmarks.bench_grid import bench, write_csv
    from benchmarks.cpuinfo import cpu_info
    rows = bench(clips=60, features=12, classes=3, folds=3, jobs=1, seed=0, separation=1.5)
    assert capsys.readouterr().out.startswith("CPU: " + cpu_info()["model"])  # the CPU it ran on, first
    assert [r["classifier"] for r in rows] == ["svm", "elm", "svm+elm"]
    assert all(r["same_picks"] for r in rows)
    assert rows[0]["baseline"].startswith("32/32 points; cv-best 3/3 folds; nested outer fold 1 with 2/2")
    assert all(r["fast_s"] > 0 and r["straightforward_s"] > 0 for r in rows)
    whole = rows[-1]
    assert whole["ratio"] == pytest.approx(whole["straightforward_s"] / whole["fast_s"])
    # straightforward fits: cv-best P K, nested P K (K - 1) inner + K refits, per classifier
    assert whole["total_fits"] == (32 + 6) * 3 * 3 + 2 * 3
    assert whole["cpu_ratio"] == pytest.approx(whole["straightforward_cpu_s"] / whole["fast_cpu_s"])
    # the partial modes for big problems: fast on one task, straightforward on 2 points x 2 fits
    for n_tasks in (1, 2):
        part = bench(clips=60, features=12, classes=3, folds=3, jobs=1, seed=0, separation=1.5, points=2,
                     outer=1, inner=1, classifiers=("elm",), fast_tasks=n_tasks)
        assert part[0]["fast"] == f"{n_tasks}/6 tasks, scaled"
        assert part[0]["measured_fits"] == 4 and part[0]["same_picks"] and part[0]["fast_s"] > 0
    path = write_csv(rows, tmp_path / "grid.csv")
    assert path.read_text().splitlines()[0].startswith("clips,features,classes,folds,jobs,classifier")


def test_benchmark_time_limit_makes_lower_bounds_and_a_finished_search_is_checked():
    from benchmarks.bench_grid import bench
    small = dict(clips=60, features=12, classes=3, folds=3, jobs=1, seed=0, separation=1.5, classifiers=("elm",))
    stopped = bench(**small, timeout=1e-3)  # no search finishes in a millisecond: killed, lower bounds
    assert [r["straightforward_lower_bound"] for r in stopped] == [True, True]
    assert stopped[0]["measured_s"] == pytest.approx(2e-3)  # the cv-best and inner limits
    finished = bench(**small, timeout=120)  # in a child process, finished: real times, picks checked
    assert [r["straightforward_lower_bound"] for r in finished] == [False, False]
    assert finished[0]["same_picks"] and finished[0]["measured_s"] > 2e-3


def test_a_search_that_fails_in_its_child_process_raises_instead_of_counting_as_stopped():
    from sklearn.svm import SVC
    from benchmarks.bench_grid import _search
    X, y = np.full((12, 3), np.nan), np.arange(12) % 2  # every fit fails: GridSearchCV raises
    cv = [(np.arange(6), np.arange(6, 12))]
    with pytest.raises(RuntimeError, match="straightforward search failed"):
        _search(SVC(), [{"C": 1.0}], X, y, cv, 1, timeout=60)


def test_jobs_defaults_to_the_cpus_available(capsys):
    assert available_cpus() == len(os.sched_getaffinity(0))
    with pytest.raises(SystemExit):
        grid_main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"default: the {available_cpus()} CPUs this process may use" in help_text
    from classifiers.grid import build_parser
    assert build_parser().get_default("jobs") == available_cpus()
