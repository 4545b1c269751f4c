"""The study's classifier grids as named constants, plus small ones for tests.

The values are exactly those of Pons & Serra (ICASSP 2019), "Randomly weighted CNNs for (music) audio
classification" (see ``docs/formats.md`` and the published-results notes):

- SVM: rbf kernel with gamma in {2^-3, 2^-5, 2^-7, 2^-9, 2^-11, 2^-13, 1/#features} and a linear kernel,
  C in {0.1, 2, 8, 32} for each (7 * 4 + 4 = 32 configurations).
- ELM: {100, 250, 500, 1200, 1800, 2500} ReLU hidden units (6 configurations).

Grids are scikit-learn ``param_grid`` lists, so ``GridSearchCV(SVC(), SVM_GRID)`` runs the study's grid
as is. ``1/#features`` is written ``"auto"``, which ``SVC`` resolves to ``1 / X.shape[1]``; the fast
path resolves it the same way (``resolve_gamma``).
"""
from __future__ import annotations

from sklearn.model_selection import ParameterGrid

__all__ = ["SVM_GRID", "ELM_GRID", "LINEAR_GRID", "KNN_GRID", "SMALL_SVM_GRID", "SMALL_ELM_GRID", "GRIDS", "grid_points",
           "resolve_gamma", "ELM_MAX_HIDDEN"]

# 2^-3 ... 2^-13 in steps of 2^-2, then 1/#features ("auto" in SVC's spelling).
_GAMMAS = [2.0 ** -3, 2.0 ** -5, 2.0 ** -7, 2.0 ** -9, 2.0 ** -11, 2.0 ** -13, "auto"]
_CS = [0.1, 2.0, 8.0, 32.0]

SVM_GRID = [
    {"kernel": ["rbf"], "gamma": _GAMMAS, "C": _CS},
    {"kernel": ["linear"], "C": _CS},
]
ELM_GRID = [{"n_hidden": [100, 250, 500, 1200, 1800, 2500]}]

# Small grids for tests and smoke runs: both kernels, both gamma kinds, two Cs; three ELM sizes.
SMALL_SVM_GRID = [
    {"kernel": ["rbf"], "gamma": [2.0 ** -3, "auto"], "C": [0.1, 8.0]},
    {"kernel": ["linear"], "C": [0.1, 8.0]},
]
SMALL_ELM_GRID = [{"n_hidden": [10, 40, 100]}]

# Probes beside the study's classifiers (classifiers/probes.py): logistic regression over C in decades,
# kNN with k = 10 (cosine), as HEAR / X-ARES probe embeddings.
LINEAR_GRID = [{"C": [1e-3, 1e-2, 1e-1, 1.0, 10.0]}]
SMALL_LINEAR_GRID = [{"C": [0.1, 10.0]}]
KNN_GRID = [{"n_neighbors": [10]}]

GRIDS = {"study": {"svm": SVM_GRID, "elm": ELM_GRID, "linear": LINEAR_GRID, "knn": KNN_GRID},
         "small": {"svm": SMALL_SVM_GRID, "elm": SMALL_ELM_GRID, "linear": SMALL_LINEAR_GRID, "knn": KNN_GRID}}

# One hidden layer of this many units is drawn per seed; smaller ELMs use its first units.
ELM_MAX_HIDDEN = 2500


def grid_points(grid) -> list[dict]:
    """The grid's points in ``GridSearchCV`` order (the order that breaks ties: first wins).

    Raises ``ValueError`` for an empty grid (no points), naming the grid.
    """
    try:
        points = list(ParameterGrid(grid))
    except (TypeError, ValueError) as e:
        raise ValueError(f"invalid classifier grid {grid!r}: {e}") from e
    if not points or points == [{}]:
        raise ValueError(f"empty classifier grid {grid!r}: expected at least one parameter value")
    return points


def resolve_gamma(gamma, n_features: int) -> float:
    """The numeric rbf gamma ``SVC`` would use: ``"auto"`` is ``1 / n_features``, ``"scale"`` is refused
    (it depends on the training data's variance, which the study did not use)."""
    if gamma == "auto":
        return 1.0 / n_features
    if isinstance(gamma, str):
        raise ValueError(f"unsupported gamma {gamma!r}: expected a number or 'auto' (1/#features)")
    return float(gamma)
