"""Fast grid scorers: every kernel from one distance matrix, every ELM from one hidden layer.

A *scorer* fits one grid point on a task's training clips and predicts its test clips, for every point
and task of a protocol at once, so work shared between points and tasks is done once:

- ``FastSVM``: the float64 Gram matrix ``X X'`` and squared distances ``|x|^2 + |y|^2 - 2 x.y`` (the
  formula libsvm itself uses) are computed once; each rbf kernel is ``exp(-gamma D)``, the linear kernel
  is the Gram matrix, and libsvm is fitted on its blocks for every C and task with the arguments
  ``SVC(kernel="precomputed")`` passes it (``_svc_fit_predict``: SVC's answers, without its per-fit checks).
  Inside ``layer_grams`` (``--per-layer``) the Gram is the sum of the matrix's layers' Grams, shared
  between the grids over subsets of the layers (``LayerGrams``).
- ``FastELM``: one hidden layer of ``max(n_hidden)`` units per seed over all clips; an ELM of ``k`` units
  uses the first ``k`` (``elm.draw_hidden`` makes that the same layer a ``k``-unit ELM draws). Where a
  task has fewer *live* units (not zero on every training clip) than training clips (*primal*), its Gram
  ``H'H`` is a sum of per-block Grams computed once, and one Cholesky (or QR) factorization per task
  serves every ``k`` (leading blocks); otherwise (*dual*) the ``n x n`` kernel ``H H'`` is solved. A
  normal-equation answer is refined once against ``H`` and kept only where that step shows every test
  clip's predicted class beyond doubt; QR (Householder, Q never formed) answers otherwise, and the
  pseudo-inverse itself where even QR could differ from it. Tasks run in ``jobs`` threads.

Each scorer's ``run(points, tasks, jobs, progress)`` returns ``(pred, errors)``: ``pred[p][t]`` the class
indices predicted for task ``t``'s test clips by point ``p`` (None if it failed), and ``errors`` mapping a
failed point to its reason. The straightforward scorers in ``reference.py`` have the same interface.
"""
from __future__ import annotations

import contextlib
import contextvars
import hashlib
import itertools
import os
import threading
from collections import OrderedDict

import numpy as np
import scipy.linalg
from joblib import Parallel, delayed
from scipy.linalg import blas, lapack
from sklearn.preprocessing import StandardScaler
from sklearn.svm import _libsvm
from threadpoolctl import threadpool_limits

from .elm import code_targets, draw_hidden, hidden_activations, solve_output
from .grids import resolve_gamma

__all__ = ["FastSVM", "FastELM", "feature_sources", "available_cpus", "CHOLESKY_RCOND", "MARGIN_SHARE",
           "QR_RCOND", "LayerGrams", "layer_grams"]

# Normal-equation (Cholesky) answers are tried where LAPACK's estimate of 1 / cond(H) from the
# triangular factor is above this: one refinement step then contracts their error by about
# eps cond(H)^2 <= 2e-4, so the step it makes is a faithful measure of that error (``_settled``).
CHOLESKY_RCOND = 1e-6
# A Cholesky answer is kept only if the refinement step moved no test output by more than this share of
# the gap between its clip's two largest outputs: the arg-max (the predicted class) is then the exact
# least-squares one, which the pseudo-inverse gives too. Otherwise QR answers.
MARGIN_SHARE = 0.25
# QR is backward stable for least squares; the pseudo-inverse's cut-off (1e6 eps s_max) cannot bite
# while cond(H) stays far below 1 / PINV_RCOND.
QR_RCOND = 1e-7


def available_cpus() -> int:
    """CPUs this process may run on (``os.sched_getaffinity``; ``os.cpu_count`` where that is missing):
    the default number of parallel SVM fits and ELM tasks."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _householder(A) -> tuple[np.ndarray, np.ndarray]:
    """LAPACK ``dgeqrf`` of ``A`` (m, n) with its optimal workspace: the factored matrix (R in its upper
    triangle, the Householder vectors below) and ``tau``. Q is never formed (``_apply_q`` applies it):
    forming it (``dorgqr``) costs as much again as the factorization."""
    A = np.array(A, dtype=np.float64, order="F")  # a copy: the factorization overwrites it
    lwork, _ = lapack.dgeqrf_lwork(*A.shape)
    f, tau, _, info = lapack.dgeqrf(A, lwork=max(int(lwork), 1), overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"QR factorization failed (dgeqrf info {info})")
    return f, tau


def _apply_q(f, tau, C, trans: str) -> np.ndarray:
    """``Q C`` (``trans="N"``) or ``Q' C`` (``"T"``) with the Q of ``_householder`` (``dormqr``);
    ``C`` has as many rows as the factored matrix."""
    f = f[:, :tau.size]  # the reflectors (a wide matrix has more columns than reflectors)
    C = np.asarray(C, dtype=np.float64, order="F")
    _, work, _ = lapack.dormqr("L", trans, f, tau, C, -1)  # workspace query
    out, _, info = lapack.dormqr("L", trans, f, tau, C, max(int(work[0]), 1))
    if info != 0:
        raise np.linalg.LinAlgError(f"applying Q failed (dormqr info {info})")
    return out


def _tri_rcond(R) -> float:
    """LAPACK's estimate of 1 / cond(R) for an upper-triangular R (0 if singular)."""
    rcond, info = lapack.dtrcon(np.asarray(R, order="F"), norm="1", uplo="U", diag="N")
    return float(rcond) if info == 0 and np.isfinite(rcond) else 0.0


def _cholesky_solve(R, rhs) -> np.ndarray:
    """``(R'R)^-1 rhs`` for an upper-triangular ``R`` (Fortran-ordered, finite: it came from LAPACK)."""
    return scipy.linalg.cho_solve((R, False), rhs, check_finite=False)


def _settled(out, change) -> bool:
    """Whether a refinement step that changed the outputs ``out`` (n_test, n_classes) by ``change``
    left every clip's predicted class beyond doubt: no output of a clip moved by ``MARGIN_SHARE`` of
    the gap between its two largest outputs (a tie fails)."""
    if out.shape[0] == 0 or out.shape[1] < 2:
        return True
    top2 = np.partition(out, -2, axis=1)[:, -2:]
    return bool(np.all(np.abs(change).max(axis=1) < MARGIN_SHARE * (top2[:, 1] - top2[:, 0])))


def _refined_outputs(solve, H_train, T_train, H_test, dual: bool):
    """Test outputs of the least-squares fit of ``T_train`` on ``H_train`` by a normal-equation solver,
    after one step of refinement against ``H_train`` itself, and whether they are settled (``_settled``).

    ``solve(rhs)`` applies the inverse of the factorized ``H'H`` (primal) or ``H H'`` (dual). The
    step is the corrected semi-normal equations: the residual ``T - H beta`` is computed from ``H``,
    not from the rounded Gram, and solved once more. ``H_train`` should be C-contiguous: numpy's
    products with a column slice's transpose ran 3x slower than with a copy.
    """
    if dual:
        beta = H_train.T @ solve(T_train)
        delta = H_train.T @ solve(T_train - H_train @ beta)
    else:
        beta = solve(H_train.T @ T_train)
        delta = solve(H_train.T @ (T_train - H_train @ beta))
    change = H_test @ delta
    out = H_test @ beta + change
    return out, _settled(out, change)


def feature_sources(X, tasks, standardize: bool):
    """Yield ``(task indices, X as float64)`` groups that share one feature matrix.

    Without standardization every task uses the raw features (one group). With it, each distinct
    training set gets ``StandardScaler`` fitted on its own clips only (the test clips stay unseen).
    """
    X = np.asarray(X, dtype=np.float64)
    if not standardize:
        yield list(range(len(tasks))), X
        return
    groups: dict[bytes, list[int]] = {}
    for t, (train, _) in enumerate(tasks):
        groups.setdefault(np.asarray(train).tobytes(), []).append(t)
    for ids in groups.values():
        train = tasks[ids[0]][0]
        yield ids, StandardScaler().fit(X[train]).transform(X)


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def _svc_fit_predict(K_train, y_enc, n_classes, C, K_test) -> np.ndarray:
    """``SVC(kernel="precomputed", C=C).fit(K_train, y).predict(K_test)`` as class positions, by the same
    two libsvm calls with the same arguments ``SVC`` makes, without its per-call input validation (about a
    quarter of a study grid's fit time at 600 clips; the caller passes C-ordered float64 kernels and the
    classes encoded as ``SVC`` encodes them, ``np.unique``'s inverse as float64).
    ``tests/test_kernels_libsvm.py`` checks the predictions equal ``SVC``'s."""
    if n_classes < 2:  # SVC's own refusal, word for word
        raise ValueError(f"The number of classes has to be greater than one; got {n_classes} class")
    _libsvm.set_verbosity_wrap(0)  # as SVC(verbose=False) does before each fit: libsvm prints otherwise
    support, sv, n_support, dual_coef, intercept, prob_a, prob_b, _, _ = _libsvm.fit(
        K_train, y_enc, svm_type=0, sample_weight=np.empty(0), class_weight=np.ones(n_classes),
        kernel="precomputed", C=float(C), nu=0.0, probability=False, degree=3, shrinking=True, tol=1e-3,
        cache_size=200.0, coef0=0.0, gamma=0.0, epsilon=0.0, max_iter=-1, random_seed=0)
    if not (np.isfinite(intercept).all() and np.isfinite(dual_coef).all()):  # as SVC.fit refuses them
        raise ValueError("The dual coefficients or intercepts are not finite. The input data may contain "
                         "large values and need to be preprocessed.")
    pred = _libsvm.predict(K_test, support, sv, n_support, dual_coef, intercept, prob_a, prob_b, svm_type=0,
                           kernel="precomputed", degree=3, coef0=0.0, gamma=0.0, cache_size=200.0)
    return np.asarray(pred, dtype=np.intp)


class FastSVM:
    """Study SVM grid on precomputed kernels. ``y`` holds class indices (n_clips,)."""

    name = "svm-precomputed"

    def __init__(self, X, y, standardize=False):
        self.X, self.y, self.standardize = X, np.asarray(y), standardize

    def _fit_task(self, K, Cs, train, test):
        K_train = np.ascontiguousarray(K[np.ix_(train, train)], dtype=np.float64)
        K_test = np.ascontiguousarray(K[np.ix_(test, train)], dtype=np.float64)
        classes, y_enc = np.unique(self.y[train], return_inverse=True)
        y_enc = np.asarray(y_enc.ravel(), dtype=np.float64, order="C")
        out = []
        for C in Cs:
            try:
                out.append(classes.take(_svc_fit_predict(K_train, y_enc, classes.size, C, K_test)))
            except Exception as e:  # a failed grid point is recorded, the grid goes on
                out.append(_describe(e))
        return out

    def run(self, points, tasks, jobs=1, progress=None):
        """Fit every point on every task; see the module docstring for the return value."""
        pred = [[None] * len(tasks) for _ in points]
        errors: dict[int, str] = {}
        n_features = np.asarray(self.X).shape[1]
        kernels: dict[tuple, list[int]] = {}  # kernel spec -> points using it, in grid order
        for p, params in enumerate(points):
            spec = ("linear", None) if params["kernel"] == "linear" else \
                ("rbf", resolve_gamma(params.get("gamma", "scale"), n_features))
            if params["kernel"] not in ("linear", "rbf"):
                raise ValueError(f"unsupported SVM kernel {params['kernel']!r}: expected rbf or linear")
            kernels.setdefault(spec, []).append(p)
        shared = _LAYER_GRAMS.get()  # read here: joblib may advance jobs_of in a worker thread

        def jobs_of(ids, Xs):  # lazily: a kernel is computed when its first fit is dispatched
            if shared is not None and sum(shared[1]) == Xs.shape[1]:
                G = shared[0].gram(Xs, shared[1])  # the sum of its layers' Grams, shared (--per-layer)
            else:
                G = _symmetric(_gram_upper(Xs.T))  # X X' with syrk: half the flops of a product
            D = None
            if any(kind == "rbf" for kind, _ in kernels):
                sq = np.diag(G).copy()
                D = sq[:, None] + sq[None, :] - 2.0 * G
            for (kind, gamma), pidx in kernels.items():
                K = G if kind == "linear" else np.exp(-gamma * D)
                Cs = [points[p]["C"] for p in pidx]
                for t in ids:
                    yield delayed(job)(K, Cs, pidx, t)

        def job(K, Cs, pidx, t):
            out = self._fit_task(K, Cs, *tasks[t])
            if progress is not None:
                progress.update(len(Cs))
            return t, pidx, out

        # one parallel region over every (kernel, task): no barrier per kernel, at most a few kernels alive
        parallel = Parallel(n_jobs=jobs, prefer="threads", pre_dispatch="2*n_jobs")
        for ids, Xs in feature_sources(self.X, tasks, self.standardize):
            for t, pidx, outs in parallel(jobs_of(ids, Xs)):
                for p, out in zip(pidx, outs):
                    if isinstance(out, str):
                        errors.setdefault(p, out)
                    else:
                        pred[p][t] = out
        return pred, errors


def _blocks(n: int, tasks) -> tuple[np.ndarray, int]:
    """Label each clip by which tasks train on it: clips with one label form a block, and every task's
    training set is a union of blocks (for fold protocols the blocks are the folds)."""
    member = np.zeros((n, len(tasks)), dtype=bool)
    for t, (train, _) in enumerate(tasks):
        member[np.asarray(train), t] = True
    _, label = np.unique(member, axis=0, return_inverse=True)
    label = label.ravel()
    return label, int(label.max()) + 1 if n else 0


def _gram_upper(A) -> np.ndarray:
    """``A' A`` (k, k) with BLAS syrk (half the work of a product); only the upper triangle is set."""
    A = np.asarray(A, dtype=np.float64)
    if A.shape[0] == 0:
        return np.zeros((A.shape[1], A.shape[1]))
    # A C-ordered (n, k) is a Fortran-ordered (k, n): syrk of it without trans gives A' A, no copy.
    return blas.dsyrk(1.0, np.ascontiguousarray(A).T, trans=0, lower=0)


def _symmetric(U) -> np.ndarray:
    """The full symmetric matrix from its upper triangle."""
    return np.triu(U) + np.triu(U, 1).T


def _memory_available() -> int | None:
    """Bytes of memory available to new allocations (``/proc/meminfo``'s MemAvailable), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


class LayerGrams:
    """Grams ``X X'`` of feature matrices whose columns are layers, shared between the grids that score
    subsets of those layers (``--per-layer``: each layer alone and layers 1..k).

    ``X X' = sum_l X_l X_l'`` over its layers' column blocks ``X_l``, and standardization is per column,
    so a standardized matrix's Gram is the sum of its standardized blocks' Grams as well. Each block's
    Gram is kept under a digest of the block's bytes (its shape, dtype and numbers), and each sum of the
    first ``j`` blocks under the tuple of their digests: layers 1..k then cost the Gram of layer k (kept
    from "layer k alone") plus one addition to the kept sum of layers 1..k-1. Keys are contents, so a
    block with other numbers (another seed, another training set's standardization) is another entry and
    nothing stale is ever served. At most ``budget`` bytes are kept (least recently used dropped first,
    default a quarter of the memory available); what is not kept is computed again. The sums agree with
    the Gram computed in one go to rounding (``tests/test_per_layer_speed.py``).
    """

    def __init__(self, budget: int | None = None):
        if budget is None:
            avail = _memory_available()
            budget = avail // 4 if avail else 1 << 30
        self.budget = int(budget)
        self._kept: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.computed = self.reused = 0  # block Grams computed, and Grams (blocks or sums) found kept

    def _get(self, key):
        with self._lock:
            G = self._kept.get(key)
            if G is not None:
                self._kept.move_to_end(key)
                self.reused += 1
            return G

    def _keep(self, key, G) -> None:
        G.flags.writeable = False  # served to several grids: nobody may change it
        with self._lock:
            self._kept[key] = G
            while sum(g.nbytes for g in self._kept.values()) > self.budget and self._kept:
                self._kept.popitem(last=False)

    def gram(self, X, widths) -> np.ndarray:
        """``X X'`` (n, n), float64, read-only, of ``X`` (n, sum(widths)) whose consecutive column blocks
        of ``widths`` are its layers."""
        X = np.asarray(X, dtype=np.float64)
        bounds = np.cumsum([0, *widths])
        if bounds[-1] != X.shape[1] or min(widths, default=0) < 1:
            raise ValueError(f"layer widths {list(widths)} do not tile the {X.shape[1]} columns")
        blocks = [np.ascontiguousarray(X[:, a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
        keys = [_digest(B) for B in blocks]
        done, G = 0, None
        for j in range(len(keys), 0, -1):  # the longest sum of leading blocks already kept
            G = self._get(tuple(keys[:j]))
            if G is not None:
                done = j
                break
        for j in range(done, len(keys)):
            Gj = self._get((keys[j],))
            if Gj is None:
                Gj = _symmetric(_gram_upper(blocks[j].T))
                self.computed += 1
                self._keep((keys[j],), Gj)
            G = Gj if G is None else G + Gj
            if j > 0:  # a new sum of the first j + 1 blocks
                self._keep(tuple(keys[:j + 1]), G)
        return G


def _digest(B) -> str:
    """A digest of an array's shape, dtype and numbers (C-contiguous ``B``)."""
    h = hashlib.blake2b(repr((B.shape, B.dtype.str)).encode(), digest_size=16)
    h.update(B.data)
    return h.hexdigest()


# (LayerGrams, layer widths) while a --per-layer grid runs: FastSVM takes its Gram from there
_LAYER_GRAMS: contextvars.ContextVar = contextvars.ContextVar("layer_grams", default=None)


@contextlib.contextmanager
def layer_grams(cache: LayerGrams, widths):
    """While inside, every ``FastSVM`` grid over a matrix of ``sum(widths)`` columns takes its Gram from
    ``cache`` as the sum of the Grams of its column blocks of ``widths`` (its layers)."""
    token = _LAYER_GRAMS.set((cache, tuple(int(w) for w in widths)))
    try:
        yield cache
    finally:
        _LAYER_GRAMS.reset(token)


class FastELM:
    """ELM grid from one hidden layer per seed. ``y`` holds class indices (n_clips,), ``seed`` seeds
    the hidden layer exactly as ``ELMClassifier(random_state=seed)`` does.

    Two ways to the pseudo-inverse solution ``beta = pinv(H) T`` of a task with ``n`` training clips
    and an ELM of ``k`` units, of which ``m`` are live (not zero on every training clip; dead units are
    zero columns, which the pseudo-inverse gives zero weight):

    - *primal* (``m < n``): ``beta = (H'H)^-1 H'T`` from the Cholesky factor of the Gram. The Gram of
      every task is a sum of per-block Grams (``_blocks``), each computed once, and one factorization
      of the largest primal ``k`` serves every smaller one (leading blocks).
    - *dual* (``m >= n``): ``beta = H' (H H')^-1 T``, the minimum-norm solution the pseudo-inverse gives
      when ``H`` has full row rank; the ``n x n`` kernel ``H H'`` of every clip pair is accumulated unit
      block by unit block over the sizes, and each task's is a sub-matrix.

    Either is tried where the triangular factor shows ``H`` well enough conditioned
    (``CHOLESKY_RCOND``), refined once against ``H`` (``_refined_outputs``), and kept only where the
    refinement moved no test output by ``MARGIN_SHARE`` of its clip's gap between the two largest
    outputs (``_settled``): the predicted classes are then the exact least-squares ones. Otherwise QR
    answers (``QR_RCOND``), and the pseudo-inverse itself where even QR could differ from it (its
    cut-off ``1e6 eps s_max`` may drop directions). ``solver_counts`` counts which answered, once per
    point and task.
    """

    name = "elm-shared-layer"

    def __init__(self, X, y, n_classes, seed, alpha=0.0, input_scale=1.0, standardize=False):
        self.X, self.y, self.n_classes = X, np.asarray(y), n_classes
        self.seed, self.alpha, self.input_scale, self.standardize = seed, alpha, input_scale, standardize
        self.solver_counts = {"cholesky": 0, "dual": 0, "qr": 0, "pinv": 0}
        self._lock = threading.Lock()

    def _count(self, solver: str) -> None:
        with self._lock:  # tasks run in threads
            self.solver_counts[solver] += 1

    def __getstate__(self):  # a task shipped to another process (joblib's Ray backend) takes no lock
        state = dict(self.__dict__)
        state.pop("_lock", None)
        return state

    def __setstate__(self, state):  # its counts then stay in that process: solver_counts is local-only
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- primal: k < n -------------------------------------------------------------------------------
    def _primal_solver(self, G, HT, H_train, T_train, H_test):
        """A function ``k -> test outputs (n_test, n_classes)`` of the ``k``-unit ELM for one task;
        ``G`` holds the upper triangle of its training Gram ``H'H`` over the first units, ``HT`` is ``H'T``.

        Factorizations have the prefix property: the Cholesky factor ``R`` of ``H'H`` and the QR factors
        of ``H`` restricted to the first ``k`` units are the leading blocks of the full ones, so each is
        computed once per task and serves every ``k``.
        """
        if self.alpha > 0:
            def ridge(k):
                self._count("cholesky")
                A = G[:k, :k] + self.alpha * np.eye(k)
                R, info = lapack.dpotrf(A, lower=0, clean=1)
                if info != 0:
                    raise np.linalg.LinAlgError(f"ridge Gram not positive definite (info {info})")
                return H_test[:, :k] @ scipy.linalg.cho_solve((R, False), HT[:k])
            return ridge
        # Units dead on every training clip are zero columns: the pseudo-inverse gives them zero
        # weight and leaves the others as they are, so they are dropped before factorizing.
        keep = np.flatnonzero(H_train.any(axis=0))
        G, H_train, H_test = G[np.ix_(keep, keep)], H_train[:, keep], H_test[:, keep]
        R, info = lapack.dpotrf(G, lower=0, clean=1)
        n_chol = G.shape[0] if info == 0 else max(info - 1, 0)  # leading block that factorized
        qr = {}

        def outputs(k):
            m = int(np.searchsorted(keep, k))  # live units among the first k
            if m == 0:
                return np.zeros((H_test.shape[0], T_train.shape[1]))
            if m <= n_chol and _tri_rcond(R[:m, :m]) > CHOLESKY_RCOND:
                Rm = np.asfortranarray(R[:m, :m])  # one copy, not one per triangular solve
                out, settled = _refined_outputs(
                    lambda rhs: _cholesky_solve(Rm, rhs),
                    np.ascontiguousarray(H_train[:, :m]), T_train, H_test[:, :m], dual=False)
                if settled:
                    self._count("cholesky")
                    return out
            if not qr:  # H_train = Q R; the leading m columns give R[:m, :m] and (Q'T)[:m]
                f, tau = _householder(H_train)
                r = min(f.shape)
                qr.update(R=np.triu(f[:r]), QT=_apply_q(f, tau, T_train, "T")[:r])
            Rq = qr["R"]
            if m <= Rq.shape[0] and _tri_rcond(Rq[:m, :m]) > QR_RCOND:
                self._count("qr")
                return H_test[:, :m] @ scipy.linalg.solve_triangular(Rq[:m, :m], qr["QT"][:m])
            self._count("pinv")
            return H_test[:, :m] @ solve_output(H_train[:, :m], T_train, 0.0)
        return outputs

    # -- dual: k >= n --------------------------------------------------------------------------------
    def _dual_outputs(self, K, H, T, train, test, k):
        """Test outputs (n_test, n_classes) of the ``k``-unit ELM from the clip kernel ``K = H H'``."""
        K_train = K[np.ix_(train, train)]
        T_train = T[train]
        if self.alpha > 0:  # ridge in the dual: (H H' + alpha I)^-1 T
            K_train[np.diag_indices_from(K_train)] += self.alpha
        # K_train is symmetric, so its transpose is the Fortran-ordered matrix LAPACK wants (no copy)
        R, info = lapack.dpotrf(K_train.T, lower=0, clean=1, overwrite_a=1)
        if self.alpha > 0:
            if info != 0:
                raise np.linalg.LinAlgError(f"ridge kernel not positive definite (info {info})")
            self._count("dual")
            return K[np.ix_(test, train)] @ scipy.linalg.cho_solve((R, False), T_train)
        H_train = H[train, :k]
        if info == 0 and _tri_rcond(R) > CHOLESKY_RCOND:
            out, settled = _refined_outputs(lambda rhs: _cholesky_solve(R, rhs),
                                            H_train, T_train, H[test, :k], dual=True)
            if settled:
                self._count("dual")
                return out
        # H_train' = Q [R; 0]: the minimum-norm solution is Q [R'^-1 T; 0] (QR is backward stable).
        f, tau = _householder(H_train.T)
        n = len(train)
        Rq = np.triu(f[:n])
        if _tri_rcond(Rq) > QR_RCOND:
            self._count("qr")
            z = np.zeros((k, T_train.shape[1]))
            z[:n] = scipy.linalg.solve_triangular(Rq, T_train, trans="T")
            beta = _apply_q(f, tau, z, "N")
        else:
            self._count("pinv")
            beta = solve_output(H_train, T_train, 0.0)
        return H[test, :k] @ beta

    def run(self, points, tasks, jobs=1, progress=None):
        """Fit every point on every task, tasks in ``jobs`` threads; see the module docstring for the
        return value."""
        ks = [int(p["n_hidden"]) for p in points]
        pred = [[None] * len(tasks) for _ in points]
        errors: dict[int, str] = {}
        X = np.asarray(self.X)
        W, b = draw_hidden(X.shape[1], max(ks), self.seed)
        W *= self.input_scale
        T = code_targets(self.y, self.n_classes)
        n = X.shape[0]

        def attempt(p, fn):  # a failed point is recorded, the grid goes on
            try:
                return p, np.argmax(fn(), axis=1)
            except Exception as e:
                return p, _describe(e)

        def gather(jobs_done):
            for t, outs in jobs_done:
                for p, out in outs:
                    if isinstance(out, str):
                        errors.setdefault(p, out)
                    else:
                        pred[p][t] = out
                    if progress is not None:
                        progress.update(1)

        # Tasks run in `jobs` threads with one BLAS thread each: a task's factorizations and products
        # are too small (n x n, n ~ 1000; 10-class right-hand sides) for BLAS threads to pay.
        def limit():  # threadpool_limits applies its limit when constructed
            return threadpool_limits(1) if threads > 1 else contextlib.nullcontext()

        def jobs_of(ids, H):
            """The source's tasks as jobs, generated lazily: kernels of the dual sizes are computed
            when their first task is dispatched, while earlier tasks run."""
            sub = [tasks[t] for t in ids]
            # A unit dead (zero) on every training clip of a task adds nothing to its fit, so a task is
            # primal for the k whose *live* units are fewer than its training clips, dual otherwise.
            primal = []
            for train, _ in sub:
                live = np.cumsum(H[np.asarray(train)].any(axis=0))
                primal.append({k: bool(live[k - 1] < np.asarray(train).size) for k in ks})
            # primal part: the Gram of the first kp units, per block of clips
            kp = max([k for k in ks if any(pr[k] for pr in primal)], default=0)
            if kp:
                label, n_blocks = _blocks(n, sub)
                members = [np.flatnonzero(label == g) for g in range(n_blocks)]
                grams = [_gram_upper(H[m, :kp]) for m in members]
                hts = [H[m, :kp].T @ T[m] for m in members]
                G_all, HT_all = sum(grams), sum(hts)

                def primal_task(j, t):
                    train, test = tasks[t]
                    in_train = np.zeros(n, dtype=bool)
                    in_train[train] = True
                    mine = [g for g in range(n_blocks) if in_train[members[g][0]]]
                    if 2 * len(mine) > n_blocks:  # fewer blocks to subtract than to add
                        rest = [g for g in range(n_blocks) if g not in mine]
                        G = G_all - sum(grams[g] for g in rest) if rest else G_all.copy()
                        HT = HT_all - sum(hts[g] for g in rest) if rest else HT_all.copy()
                    else:
                        G, HT = sum(grams[g] for g in mine), sum(hts[g] for g in mine)
                    outputs = self._primal_solver(G, HT, H[train, :kp], T[train], H[test, :kp])
                    return t, [attempt(p, lambda k=k: outputs(k)) for p, k in enumerate(ks) if primal[j][k]]

                for j, t in enumerate(ids):
                    if any(primal[j].values()):
                        yield delayed(primal_task)(j, t)

            def dual_task(t, k, K_full):
                train, test = tasks[t]
                return t, [attempt(p, lambda: self._dual_outputs(K_full, H, T, train, test, k))
                           for p, kk in enumerate(ks) if kk == k]

            # dual part: the clip kernel over the first k units, grown size by size
            dual = sorted({k for k in ks if not all(pr[k] for pr in primal)})
            K, done = (np.zeros((n, n), order="F") if dual else None), 0
            for k in dual:
                K = blas.dsyrk(1.0, H[:, done:k], trans=0, lower=0, beta=1.0, c=K, overwrite_c=1)
                done = k
                K_full = _symmetric(K)  # a copy: K grows on while this size's tasks run
                for j, t in enumerate(ids):
                    if not primal[j][k]:
                        yield delayed(dual_task)(t, k, K_full)

        # Tasks run in `jobs` threads with one BLAS thread each: a task's factorizations and products
        # are too small (n x n, n ~ 1000; 10-class right-hand sides) for BLAS threads to pay.
        threads = max(1, min(int(jobs or 1), len(tasks)))
        parallel = Parallel(n_jobs=threads, prefer="threads", pre_dispatch="2*n_jobs")
        for ids, Xs in feature_sources(X, tasks, self.standardize):
            H = hidden_activations(Xs, W, b)
            jobs_list = jobs_of(ids, H)
            first = next(jobs_list, None)  # the shared Grams, with every BLAS thread
            if first is None:
                continue
            with limit():
                gather(parallel(itertools.chain([first], jobs_list)))
        return pred, errors
