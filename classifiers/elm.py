"""Extreme learning machine as a scikit-learn estimator, and hpelm as the reference engine.

Defaults reproduce the study's ELM (Python-ELM's ``GenELMClassifier`` with a ``RandomLayer``,
``activation_func='reclinear'``, ``alpha=1``): hidden weights and biases drawn from a standard normal,
no input scaling, ReLU, targets coded -1/+1 (one column per class), output weights from the
pseudo-inverse with ``pinv2``'s cut-off (singular values below ``1e6 * eps * s_max`` dropped), prediction
by arg-max. ``alpha > 0`` gives ridge output weights instead.

Hidden units are drawn unit by unit (bias, then weights) from ``numpy.random.default_rng(random_state)``,
so the first ``k`` units of a 2500-unit layer equal a ``k``-unit layer with the same seed: the fast grid
draws one layer per seed and slices it.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["ELMClassifier", "draw_hidden", "hidden_activations", "solve_output", "PINV_RCOND",
           "code_targets", "hpelm_fit_predict"]

# scipy's old pinv2 default for float64: singular values below 1e6 * eps * s_max are treated as zero.
PINV_RCOND = 1e6 * np.finfo(np.float64).eps


def draw_hidden(n_features: int, n_hidden: int, random_state) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal hidden weights ``W`` (n_features, n_hidden) and biases ``b`` (n_hidden,).

    Row ``j`` of the draw is unit ``j``'s ``[bias, weights...]``, so prefixes of a layer are layers.
    """
    rng = np.random.default_rng(random_state)
    units = rng.standard_normal((n_hidden, n_features + 1))
    return np.ascontiguousarray(units[:, 1:].T), units[:, 0].copy()


def hidden_activations(X, W, b) -> np.ndarray:
    """ReLU hidden layer ``max(X W + b, 0)``: (n_samples, n_features) -> (n_samples, n_hidden), float64."""
    H = np.asarray(X, dtype=np.float64) @ W
    H += b
    return np.maximum(H, 0.0, out=H)


def code_targets(y_index: np.ndarray, n_classes: int) -> np.ndarray:
    """-1/+1 one-column-per-class targets (n_samples, n_classes) from class indices (n_samples,)."""
    T = -np.ones((y_index.size, n_classes))
    T[np.arange(y_index.size), y_index] = 1.0
    return T


def solve_output(H, T, alpha=0.0) -> np.ndarray:
    """Output weights (n_hidden, n_outputs): ``pinv(H) T`` (alpha 0) or ridge ``(H'H + alpha I)^-1 H'T``."""
    if alpha == 0:
        return scipy.linalg.pinv(H, atol=0.0, rtol=PINV_RCOND) @ T
    G = H.T @ H
    G[np.diag_indices_from(G)] += alpha
    return scipy.linalg.solve(G, H.T @ T, assume_a="pos")


class ELMClassifier(ClassifierMixin, BaseEstimator):
    """Extreme learning machine classifier: a fixed random ReLU layer and least-squares output weights.

    Parameters
    ----------
    n_hidden : int, default 1000
        Hidden ReLU units.
    alpha : float, default 0.0
        Ridge penalty on the output weights; 0 uses the pseudo-inverse (the study's choice).
    input_scale : float, default 1.0
        Multiplies the standard-normal hidden weights (1.0: no scaling, as in the study; hpelm would use
        ``3 / sqrt(n_features)``).
    random_state : int, Generator or None, default None
        Seeds the hidden layer (``numpy.random.default_rng``).

    Attributes
    ----------
    classes_ : ndarray (n_classes,)
    W_ : ndarray (n_features, n_hidden)
    b_ : ndarray (n_hidden,)
    beta_ : ndarray (n_hidden, n_classes)
    """

    def __init__(self, n_hidden=1000, alpha=0.0, input_scale=1.0, random_state=None):
        self.n_hidden = n_hidden
        self.alpha = alpha
        self.input_scale = input_scale
        self.random_state = random_state

    def fit(self, X, y):
        """Draw the hidden layer and solve the output weights. X (n_samples, n_features), y (n_samples,)."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        if not (isinstance(self.n_hidden, (int, np.integer)) and self.n_hidden >= 1):
            raise ValueError(f"n_hidden must be a positive integer, found {self.n_hidden!r}")
        if self.alpha < 0:
            raise ValueError(f"alpha must be >= 0, found {self.alpha!r}")
        self._binarizer = LabelBinarizer().fit(y)
        self.classes_ = self._binarizer.classes_
        y_index = np.searchsorted(self.classes_, y)
        W, b = draw_hidden(X.shape[1], int(self.n_hidden), self.random_state)
        self.W_, self.b_ = W * self.input_scale, b
        H = hidden_activations(X, self.W_, self.b_)
        self.beta_ = solve_output(H, code_targets(y_index, self.classes_.size), self.alpha)
        return self

    def decision_function(self, X):
        """Raw outputs (n_samples, n_classes); for two classes the positive class's column minus the
        other's, halved (so the sign gives the class, as scikit-learn expects)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        out = hidden_activations(X, self.W_, self.b_) @ self.beta_
        if self.classes_.size == 2:
            return (out[:, 1] - out[:, 0]) / 2
        return out

    def predict(self, X):
        """Class with the largest output, (n_samples,)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        out = hidden_activations(X, self.W_, self.b_) @ self.beta_
        return self.classes_[np.argmax(out, axis=1)]


def _relu_hpelm(n_features: int, n_outputs: int):
    """An hpelm ``ELM`` that knows a ``relu`` neuron (hpelm 1.0.10 has none, and its custom-ufunc path
    fails inside ``SLFNPython``): register it in the model's function list and its network's table."""
    import hpelm  # imported here: hpelm is only needed for the reference engine

    elm = hpelm.ELM(n_features, n_outputs, classification="c", precision="double")
    elm.flist = tuple(elm.flist) + ("relu",)
    elm.nnet.func["relu"] = lambda X, W, B: np.maximum(np.dot(X, W) + B, 0.0)
    return elm


def hpelm_fit_predict(X_train, y_index, n_classes, X_test, W, b) -> np.ndarray:
    """Train hpelm on given hidden weights and return its raw outputs on ``X_test`` (n_test, n_classes).

    hpelm solves the normal equations with a ``50 eps`` ridge, so it agrees with the pseudo-inverse when
    the hidden layer has full column rank (more training clips than units, no dead units).
    """
    elm = _relu_hpelm(X_train.shape[1], n_classes)
    elm.add_neurons(W.shape[1], "relu", W=np.asarray(W, np.float64), B=np.asarray(b, np.float64))
    elm.train(np.asarray(X_train, np.float64), code_targets(y_index, n_classes), "c")
    return elm.predict(np.asarray(X_test, np.float64))
