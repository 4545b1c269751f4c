"""ELMClassifier: scikit-learn contract, the study's defaults, prefix layers, agreement with hpelm."""
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from classifiers import ELMClassifier
from classifiers.elm import draw_hidden, hidden_activations, hpelm_fit_predict


@parametrize_with_checks([ELMClassifier(n_hidden=20, random_state=0)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def _problem(n=240, d=12, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    X = np.abs(rng.standard_normal((n, d)) + rng.standard_normal((classes, d))[y])
    return X, y


def test_works_with_clone_pipeline_and_gridsearch():
    X, y = _problem()
    elm = ELMClassifier(n_hidden=30, random_state=1)
    assert clone(elm).get_params() == elm.get_params()
    search = GridSearchCV(make_pipeline(StandardScaler(), elm), {"elmclassifier__n_hidden": [5, 60]},
                          cv=3).fit(X, y)
    assert search.best_params_["elmclassifier__n_hidden"] in (5, 60)
    assert search.score(X, y) > 0.5


def test_study_defaults_standard_normal_unscaled_and_seeded():
    X, y = _problem(d=400)
    a = ELMClassifier(n_hidden=300, random_state=7).fit(X, y)
    b = ELMClassifier(n_hidden=300, random_state=7).fit(X, y)
    np.testing.assert_array_equal(a.W_, b.W_)
    assert abs(a.W_.std() - 1.0) < 0.02 and abs(a.W_.mean()) < 0.02  # no 1/sqrt(d) scaling
    assert abs(a.b_.std() - 1.0) < 0.2
    c = ELMClassifier(n_hidden=300, random_state=8).fit(X, y)
    assert not np.array_equal(a.W_, c.W_)


def test_first_units_of_a_big_layer_are_the_small_layer():
    W, b = draw_hidden(10, 250, 3)
    w, c = draw_hidden(10, 40, 3)
    np.testing.assert_array_equal(W[:, :40], w)
    np.testing.assert_array_equal(b[:40], c)


def test_output_weights_are_the_least_squares_fit_of_pm1_targets():
    X, y = _problem()
    elm = ELMClassifier(n_hidden=50, random_state=0).fit(X, y)
    H = hidden_activations(X, elm.W_, elm.b_)
    T = np.where(y[:, None] == np.arange(4), 1.0, -1.0)
    beta = np.linalg.lstsq(H, T, rcond=None)[0]
    np.testing.assert_allclose(elm.beta_, beta, atol=1e-8)


def test_predictions_match_hpelm_with_the_same_hidden_layer():
    X, y = _problem(n=300, d=20)
    train, test = slice(0, 200), slice(200, None)
    elm = ELMClassifier(n_hidden=60, random_state=5).fit(X[train], y[train])
    out = hpelm_fit_predict(X[train], y[train], 4, X[test], elm.W_, elm.b_)
    mine = hidden_activations(X[test], elm.W_, elm.b_) @ elm.beta_
    np.testing.assert_allclose(out, mine, rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(elm.classes_[out.argmax(axis=1)], elm.predict(X[test]))


def test_bad_parameters_are_named():
    X, y = _problem()
    with pytest.raises(ValueError, match="n_hidden"):
        ELMClassifier(n_hidden=0).fit(X, y)
    with pytest.raises(ValueError, match="alpha"):
        ELMClassifier(alpha=-1.0).fit(X, y)
