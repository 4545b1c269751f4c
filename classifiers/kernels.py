"""Fast grid scorers: every kernel from one distance matrix, every ELM from one hidden layer.

A *scorer* fits one grid point on a task's training clips and predicts its test clips, for every point
and task of a protocol at once, so work shared between points and tasks is done once:

- ``FastSVM``: the float64 Gram matrix ``X X'`` and squared distances ``|x|^2 + |y|^2 - 2 x.y`` (the
  formula libsvm itself uses) are computed once; each rbf kernel is ``exp(-gamma D)``, the linear kernel
  is the Gram matrix, and ``SVC(kernel="precomputed")`` is fitted on its blocks for every C and task.
- ``FastELM``: one hidden layer of ``max(n_hidden)`` units per seed over all clips; an ELM of ``k`` units
  uses the first ``k`` (``elm.draw_hidden`` makes that the same layer a ``k``-unit ELM draws). With
  fewer units than training clips (*primal*) a task's Gram ``H'H`` is a sum of per-block Grams computed
  once, and one Cholesky (or QR) factorization per task serves every ``k`` (leading blocks); with at
  least as many units as clips (*dual*) the ``n x n`` kernel ``H H'`` is solved instead. Either is used
  where the layer is well conditioned, so that it equals the pseudo-inverse solution, and the
  pseudo-inverse itself is computed otherwise.

Each scorer's ``run(points, tasks, jobs, progress)`` returns ``(pred, errors)``: ``pred[p][t]`` the class
indices predicted for task ``t``'s test clips by point ``p`` (None if it failed), and ``errors`` mapping a
failed point to its reason. The straightforward scorers in ``reference.py`` have the same interface.
"""
from __future__ import annotations

import os

import numpy as np
import scipy.linalg
from joblib import Parallel, delayed
from scipy.linalg import blas, lapack
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from .elm import code_targets, draw_hidden, hidden_activations, solve_output
from .grids import resolve_gamma

__all__ = ["FastSVM", "FastELM", "feature_sources", "available_cpus", "CHOLESKY_RCOND", "QR_RCOND"]

# Below this reciprocal condition number of the hidden layer H (i.e. cond(H'H) above 1e8) the normal
# equations lose too many digits to reproduce the pseudo-inverse.
CHOLESKY_RCOND = 1e-4
# QR is backward stable for least squares; the pseudo-inverse's cut-off (1e6 eps s_max) cannot bite
# while cond(H) stays far below 1 / PINV_RCOND.
QR_RCOND = 1e-7


def available_cpus() -> int:
    """CPUs this process may run on (``os.sched_getaffinity``; ``os.cpu_count`` where that is missing):
    the default number of parallel SVM fits."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _tri_rcond(R) -> float:
    """LAPACK's estimate of 1 / cond(R) for an upper-triangular R (0 if singular)."""
    rcond, info = lapack.dtrcon(np.asarray(R, order="F"), norm="1", uplo="U", diag="N")
    return float(rcond) if info == 0 and np.isfinite(rcond) else 0.0


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


class FastSVM:
    """Study SVM grid on precomputed kernels. ``y`` holds class indices (n_clips,)."""

    name = "svm-precomputed"

    def __init__(self, X, y, standardize=False):
        self.X, self.y, self.standardize = X, np.asarray(y), standardize

    def _fit_task(self, K, Cs, train, test):
        K_train = K[np.ix_(train, train)]
        K_test = K[np.ix_(test, train)]
        out = []
        for C in Cs:
            try:
                model = SVC(kernel="precomputed", C=C).fit(K_train, self.y[train])
                out.append(model.predict(K_test))
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
        for ids, Xs in feature_sources(self.X, tasks, self.standardize):
            G = _symmetric(_gram_upper(Xs.T))  # X X' with syrk: half the flops of a product
            D = None
            if any(kind == "rbf" for kind, _ in kernels):
                sq = np.diag(G).copy()
                D = sq[:, None] + sq[None, :] - 2.0 * G
            for (kind, gamma), pidx in kernels.items():
                K = G if kind == "linear" else np.exp(-gamma * D)
                Cs = [points[p]["C"] for p in pidx]

                def job(t, K=K, Cs=Cs):
                    out = self._fit_task(K, Cs, *tasks[t])
                    if progress is not None:
                        progress.update(len(Cs))
                    return out
                results = Parallel(n_jobs=jobs, prefer="threads")(delayed(job)(t) for t in ids)
                for t, outs in zip(ids, results):
                    for p, out in zip(pidx, outs):
                        if isinstance(out, str):
                            errors.setdefault(p, out)
                        else:
                            pred[p][t] = out
                del K
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


class FastELM:
    """ELM grid from one hidden layer per seed. ``y`` holds class indices (n_clips,), ``seed`` seeds
    the hidden layer exactly as ``ELMClassifier(random_state=seed)`` does.

    Two ways to the pseudo-inverse solution ``beta = pinv(H) T`` of a task with ``n`` training clips
    and an ELM of ``k`` units:

    - *primal* (``k < n``): ``beta = (H'H)^-1 H'T`` from the Cholesky factor of the ``k x k`` Gram. The
      Gram of every task is a sum of per-block Grams (``_blocks``), each computed once, and one
      factorization of the largest primal ``k`` serves every smaller one (leading blocks).
    - *dual* (``k >= n``): ``beta = H' (H H')^-1 T``, the minimum-norm solution the pseudo-inverse gives
      when ``H`` has full row rank; the ``n x n`` kernel ``H H'`` of every clip pair is accumulated unit
      block by unit block over the sizes, each task's is a sub-matrix, and the test outputs are
      ``K[test, train] (H_train H_train')^-1 T`` without forming ``beta``.

    Either is used only where the triangular factor shows ``H`` well conditioned (``CHOLESKY_RCOND``),
    so that it equals the pseudo-inverse; otherwise QR (``QR_RCOND``), and the pseudo-inverse itself
    where even QR could differ from it (its cut-off ``1e6 eps s_max`` may drop directions).
    ``solver_counts`` counts which answered, once per point and task.
    """

    name = "elm-shared-layer"

    def __init__(self, X, y, n_classes, seed, alpha=0.0, input_scale=1.0, standardize=False):
        self.X, self.y, self.n_classes = X, np.asarray(y), n_classes
        self.seed, self.alpha, self.input_scale, self.standardize = seed, alpha, input_scale, standardize
        self.solver_counts = {"cholesky": 0, "dual": 0, "qr": 0, "pinv": 0}

    # -- primal: k < n -------------------------------------------------------------------------------
    def _primal_solver(self, G, HT, H_train, T_train):
        """A function ``k -> output weights (k, n_classes)`` for one task; ``G`` holds the upper
        triangle of its training Gram ``H'H`` over the first units, ``HT`` is ``H'T``.

        Factorizations have the prefix property: the Cholesky factor ``R`` of ``H'H`` and the QR factors
        of ``H`` restricted to the first ``k`` units are the leading blocks of the full ones, so each is
        computed once per task and serves every ``k``.
        """
        if self.alpha > 0:
            def ridge(k):
                self.solver_counts["cholesky"] += 1
                A = G[:k, :k] + self.alpha * np.eye(k)
                R, info = lapack.dpotrf(A, lower=0, clean=1)
                if info != 0:
                    raise np.linalg.LinAlgError(f"ridge Gram not positive definite (info {info})")
                return scipy.linalg.cho_solve((R, False), HT[:k])
            return ridge
        # Units dead on every training clip are zero columns: the pseudo-inverse gives them zero
        # weight and leaves the others as they are, so they are dropped before factorizing.
        keep = np.flatnonzero(H_train.any(axis=0))
        G, HT, H_train = G[np.ix_(keep, keep)], HT[keep], H_train[:, keep]
        R, info = lapack.dpotrf(G, lower=0, clean=1)
        n_chol = G.shape[0] if info == 0 else max(info - 1, 0)  # leading block that factorized
        qr = {}

        def solve_kept(m):
            if m <= n_chol and _tri_rcond(R[:m, :m]) > CHOLESKY_RCOND:
                self.solver_counts["cholesky"] += 1
                z = scipy.linalg.solve_triangular(R[:m, :m], HT[:m], trans="T")
                return scipy.linalg.solve_triangular(R[:m, :m], z)
            if not qr:
                Q, Rq = scipy.linalg.qr(H_train, mode="economic")
                qr.update(R=Rq, QT=Q.T @ T_train)
            Rq = qr["R"]
            if m <= Rq.shape[0] and _tri_rcond(Rq[:m, :m]) > QR_RCOND:
                self.solver_counts["qr"] += 1
                return scipy.linalg.solve_triangular(Rq[:m, :m], qr["QT"][:m])
            self.solver_counts["pinv"] += 1
            return solve_output(H_train[:, :m], T_train, 0.0)

        def solve(k):
            m = int(np.searchsorted(keep, k))  # live units among the first k
            beta = np.zeros((k, T_train.shape[1]))
            if m:
                beta[keep[:m]] = solve_kept(m)
            return beta
        return solve

    # -- dual: k >= n --------------------------------------------------------------------------------
    def _dual_outputs(self, K, H, T, train, test, k):
        """Test outputs (n_test, n_classes) of the ``k``-unit ELM from the clip kernel ``K = H H'``."""
        K_train = K[np.ix_(train, train)]
        T_train = T[train]
        if self.alpha > 0:  # ridge in the dual: (H H' + alpha I)^-1 T
            K_train[np.diag_indices_from(K_train)] += self.alpha
        R, info = lapack.dpotrf(K_train, lower=0, clean=1)
        if info == 0 and (self.alpha > 0 or _tri_rcond(R) > CHOLESKY_RCOND):
            self.solver_counts["dual"] += 1
            return K[np.ix_(test, train)] @ scipy.linalg.cho_solve((R, False), T_train)
        if self.alpha > 0:
            raise np.linalg.LinAlgError(f"ridge kernel not positive definite (info {info})")
        # H_train' = Q R: the minimum-norm solution is Q R'^-1 T (QR is backward stable).
        H_train = H[train, :k]
        Q, Rq = scipy.linalg.qr(H_train.T, mode="economic")
        if _tri_rcond(Rq) > QR_RCOND:
            self.solver_counts["qr"] += 1
            beta = Q @ scipy.linalg.solve_triangular(Rq, T_train, trans="T")
        else:
            self.solver_counts["pinv"] += 1
            beta = solve_output(H_train, T_train, 0.0)
        return H[test, :k] @ beta

    def run(self, points, tasks, jobs=1, progress=None):
        """Fit every point on every task; ``jobs`` is unused (BLAS threads do the work)."""
        ks = [int(p["n_hidden"]) for p in points]
        pred = [[None] * len(tasks) for _ in points]
        errors: dict[int, str] = {}
        X = np.asarray(self.X)
        W, b = draw_hidden(X.shape[1], max(ks), self.seed)
        W *= self.input_scale
        T = code_targets(self.y, self.n_classes)
        n = X.shape[0]

        def record(p, t, fn):
            try:
                pred[p][t] = np.argmax(fn(), axis=1)
            except Exception as e:  # recorded, the grid goes on
                errors.setdefault(p, _describe(e))
            if progress is not None:
                progress.update(1)

        for ids, Xs in feature_sources(X, tasks, self.standardize):
            H = hidden_activations(Xs, W, b)
            sub = [tasks[t] for t in ids]
            sizes = [np.asarray(train).size for train, _ in sub]
            # primal part: the Gram of the first kp units, per block of clips
            kp = max([k for k in ks if k < max(sizes)], default=0)
            if kp:
                label, n_blocks = _blocks(n, sub)
                members = [np.flatnonzero(label == g) for g in range(n_blocks)]
                grams = [_gram_upper(H[m, :kp]) for m in members]
                hts = [H[m, :kp].T @ T[m] for m in members]
                G_all = HT_all = None
                for j, t in enumerate(ids):
                    if not any(k < sizes[j] for k in ks):
                        continue
                    train, test = tasks[t]
                    in_train = np.zeros(n, dtype=bool)
                    in_train[train] = True
                    mine = [g for g in range(n_blocks) if in_train[members[g][0]]]
                    if 2 * len(mine) > n_blocks:  # fewer blocks to subtract than to add
                        if G_all is None:
                            G_all, HT_all = sum(grams), sum(hts)
                        rest = [g for g in range(n_blocks) if g not in mine]
                        G = G_all - sum(grams[g] for g in rest) if rest else G_all.copy()
                        HT = HT_all - sum(hts[g] for g in rest) if rest else HT_all.copy()
                    else:
                        G, HT = sum(grams[g] for g in mine), sum(hts[g] for g in mine)
                    solve = self._primal_solver(G, HT, H[train, :kp], T[train])
                    H_test = H[test]
                    for p, k in enumerate(ks):
                        if k < sizes[j]:
                            record(p, t, lambda k=k: H_test[:, :k] @ solve(k))
            # dual part: the clip kernel over the first k units, grown size by size
            dual = sorted({k for k in ks if any(k >= s for s in sizes)})
            K, done = (np.zeros((n, n), order="F") if dual else None), 0
            for k in dual:
                K = blas.dsyrk(1.0, H[:, done:k], trans=0, lower=0, beta=1.0, c=K, overwrite_c=1)
                done = k
                K_full = _symmetric(K)
                for j, t in enumerate(ids):
                    train, test = tasks[t]
                    if k < sizes[j]:
                        continue
                    for p in (p for p, kk in enumerate(ks) if kk == k):
                        record(p, t, lambda: self._dual_outputs(K_full, H, T, train, test, k))
        return pred, errors
