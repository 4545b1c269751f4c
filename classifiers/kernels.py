"""Fast grid scorers: every kernel from one distance matrix, every ELM from one hidden layer.

A *scorer* fits one grid point on a task's training clips and predicts its test clips, for every point
and task of a protocol at once, so work shared between points and tasks is done once:

- ``FastSVM``: the float64 Gram matrix ``X X'`` and squared distances ``|x|^2 + |y|^2 - 2 x.y`` (the
  formula libsvm itself uses) are computed once; each rbf kernel is ``exp(-gamma D)``, the linear kernel
  is the Gram matrix, and ``SVC(kernel="precomputed")`` is fitted on its blocks for every C and task.
- ``FastELM``: one hidden layer of ``max(n_hidden)`` units per seed over all clips; an ELM of ``k`` units
  uses the first ``k`` (``elm.draw_hidden`` makes that the same layer a ``k``-unit ELM draws). The
  training Gram ``H'H`` of a task is the all-clips Gram minus the held-out clips' part, its leading
  ``k x k`` block gives the ``k``-unit ELM. One Cholesky (or QR) factorization per task serves every
  ``k`` (leading blocks); it is used where the layer is well conditioned, so that it equals the
  pseudo-inverse solution, and the pseudo-inverse itself is computed otherwise.

Each scorer's ``run(points, tasks, jobs, progress)`` returns ``(pred, errors)``: ``pred[p][t]`` the class
indices predicted for task ``t``'s test clips by point ``p`` (None if it failed), and ``errors`` mapping a
failed point to its reason. The straightforward scorers in ``reference.py`` have the same interface.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg
from joblib import Parallel, delayed
from scipy.linalg import lapack
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from .elm import code_targets, draw_hidden, hidden_activations, solve_output
from .grids import resolve_gamma

__all__ = ["FastSVM", "FastELM", "feature_sources", "CHOLESKY_RCOND", "QR_RCOND"]

# Below this reciprocal condition number of the hidden layer H (i.e. cond(H'H) above 1e8) the normal
# equations lose too many digits to reproduce the pseudo-inverse.
CHOLESKY_RCOND = 1e-4
# QR is backward stable for least squares; the pseudo-inverse's cut-off (1e6 eps s_max) cannot bite
# while cond(H) stays far below 1 / PINV_RCOND.
QR_RCOND = 1e-7


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
            G = Xs @ Xs.T
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


class FastELM:
    """ELM grid from one hidden layer per seed. ``y`` holds class indices (n_clips,), ``seed`` seeds
    the hidden layer exactly as ``ELMClassifier(random_state=seed)`` does."""

    name = "elm-shared-layer"

    def __init__(self, X, y, n_classes, seed, alpha=0.0, input_scale=1.0, standardize=False):
        self.X, self.y, self.n_classes = X, np.asarray(y), n_classes
        self.seed, self.alpha, self.input_scale, self.standardize = seed, alpha, input_scale, standardize
        self.solver_counts = {"cholesky": 0, "qr": 0, "pinv": 0}

    def _solvers(self, G, HT, H_train, T_train):
        """A function ``k -> output weights (k, n_classes)`` for one task's training clips.

        Factorizations have the prefix property: the Cholesky factor ``R`` of ``H'H`` and the QR factors
        of ``H`` restricted to the first ``k`` units are the leading blocks of the full ones, so each is
        computed once per task and serves every ``k``. Which one answers depends on ``cond(H[:, :k])``
        (estimated from the triangular factor): Cholesky below ``1 / CHOLESKY_RCOND``, QR below
        ``1 / QR_RCOND``, the pseudo-inverse itself above (where its cut-off may drop directions).
        """
        if self.alpha > 0:
            def ridge(k):
                self.solver_counts["cholesky"] += 1
                return scipy.linalg.solve(G[:k, :k] + self.alpha * np.eye(k), HT[:k], assume_a="pos")
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
        for ids, Xs in feature_sources(X, tasks, self.standardize):
            H = hidden_activations(Xs, W, b)
            G_all = HT_all = None
            for t in ids:
                train, test = tasks[t]
                held = np.setdiff1d(np.arange(n), train, assume_unique=True)
                if held.size < train.size:  # cheaper to subtract the held-out clips' part
                    if G_all is None:
                        G_all, HT_all = H.T @ H, H.T @ T
                    G = G_all - H[held].T @ H[held]
                    HT = HT_all - H[held].T @ T[held]
                else:
                    G, HT = H[train].T @ H[train], H[train].T @ T[train]
                H_train, T_train, H_test = H[train], T[train], H[test]
                solve = self._solvers(G, HT, H_train, T_train)
                for p, k in enumerate(ks):
                    try:
                        beta = solve(k)
                        pred[p][t] = np.argmax(H_test[:, :k] @ beta, axis=1)
                    except Exception as e:  # recorded, the grid goes on
                        errors.setdefault(p, _describe(e))
                    if progress is not None:
                        progress.update(1)
        return pred, errors
