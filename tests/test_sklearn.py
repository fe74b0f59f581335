"""handgrad.sklearn: scikit-learn's own estimator checks, and the estimators inside Pipeline and
GridSearchCV, with string labels, warm starts, partial_fit and early stopping."""

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from handgrad.sklearn import ConvNetClassifier, MLPClassifier, MLPRegressor  # noqa: E402

#: Checks that cannot apply, with the reason (README lists the same).
EXPECTED_FAILED_CHECKS = {}

# Small networks and scikit-learn's own test setting for its MLPs (max_iter=100): the checks
# fit dozens of times, and their toy problems need no more.
ESTIMATORS = [MLPClassifier(max_iter=100),
              MLPRegressor(max_iter=100),
              ConvNetClassifier(n_filters=4, hidden_layer_sizes=(20,), max_iter=100)]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks(ESTIMATORS, expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS.get(type(est).__name__, {}))
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


# --- the estimators in scikit-learn's tools -------------------------------------------------------

from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import sklearn.neural_network  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(X))
    X, y = X[order], y[order]
    return (X[:1200], y[:1200]), (X[1200:], y[1200:])


def test_pipeline_with_a_scaler_learns_the_digits(digits):
    (X, y), (X_test, y_test) = digits
    pipeline = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(50,), max_iter=60, random_state=0))
    with pytest.warns(sklearn.exceptions.ConvergenceWarning):
        pipeline.fit(X, y)
    assert pipeline.score(X_test, y_test) > 0.94
    assert pipeline[-1].n_features_in_ == 64 and pipeline[-1].n_iter_ == 60


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_grid_search_picks_among_the_grid_and_refits(digits):
    (X, y), (X_test, y_test) = digits
    grid = {"hidden_layer_sizes": [(10,), (40,)], "alpha": [1e-4, 1e-1]}
    search = GridSearchCV(MLPClassifier(max_iter=20, random_state=0), grid, cv=3).fit(X / 16, y)
    assert search.best_params_["hidden_layer_sizes"] in grid["hidden_layer_sizes"]
    assert len(search.cv_results_["mean_test_score"]) == 4
    assert search.best_score_ == max(search.cv_results_["mean_test_score"])
    # The refitted best estimator is a fitted handgrad network of the chosen width.
    best = search.best_estimator_
    assert best.model_.layers[0].W.shape == (64, best.hidden_layer_sizes[0])
    assert search.score(X_test / 16, y_test) > 0.9


def test_string_labels_come_back_as_given():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 4))
    y = np.array(["cat", "dog", "emu"])[np.argmax(X[:, :3], axis=1)]
    clf = MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.02, max_iter=200, random_state=0).fit(X, y)
    assert clf.classes_.tolist() == ["cat", "dog", "emu"]
    assert set(clf.predict(X)) <= {"cat", "dog", "emu"}
    assert clf.score(X, y) > 0.9
    proba = clf.predict_proba(X)
    assert proba.shape == (90, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], clf.predict(X))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("make", [lambda **k: MLPClassifier(**k), lambda **k: ConvNetClassifier(n_filters=3, **k)])
def test_random_state_reproduces_the_run(make, digits):
    (X, y), _ = digits
    X, y = X[:300] / 16, y[:300]
    first, second = (make(hidden_layer_sizes=(20,), max_iter=3, random_state=7).fit(X, y) for _ in range(2))
    other = make(hidden_layer_sizes=(20,), max_iter=3, random_state=8).fit(X, y)
    assert first.loss_curve_ == second.loss_curve_
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))
    assert first.loss_curve_ != other.loss_curve_


def test_partial_fit_needs_the_classes_first_and_then_continues(digits):
    (X, y), _ = digits
    X = X / 16
    clf = MLPClassifier(hidden_layer_sizes=(30,), learning_rate_init=0.01, random_state=0)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(X[:100], y[:100])
    for start in list(range(0, 1200, 100)) * 3:
        clf.partial_fit(X[start:start + 100], y[start:start + 100], classes=np.arange(10))
    assert clf.n_iter_ == 36 and clf.t_ == 3600 and len(clf.loss_curve_) == 36
    assert clf.loss_curve_[-1] < clf.loss_curve_[0] / 2
    with pytest.raises(ValueError, match=r"labels \[10\] are not in classes_"):
        clf.partial_fit(X[:2], [3, 10])
    with pytest.raises(ValueError, match="X has 10 features, but MLPClassifier is expecting 64"):
        clf.partial_fit(X[:2, :10], y[:2])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_warm_start_continues_from_the_weights_so_far(digits):
    (X, y), _ = digits
    clf = MLPClassifier(hidden_layer_sizes=(20,), max_iter=5, warm_start=True, random_state=0).fit(X / 16, y)
    weights = clf.coefs_[0].copy()
    model = clf.model_
    clf.fit(X / 16, y)
    assert clf.model_ is model and clf.n_iter_ == 10 and len(clf.loss_curve_) == 10
    assert not np.array_equal(weights, clf.coefs_[0])
    with pytest.raises(ValueError, match="warm_start can only be used where `y` has the same classes"):
        clf.fit(X[:20] / 16, np.full(20, 11))
    cold = MLPClassifier(hidden_layer_sizes=(20,), max_iter=5, random_state=0).fit(X / 16, y)
    cold_model = cold.model_
    assert cold.fit(X / 16, y).model_ is not cold_model and cold.n_iter_ == 5


def test_training_stops_by_scikit_learns_rules(digits):
    (X, y), _ = digits
    X = X / 16
    # No improvement of the training loss by tol for n_iter_no_change + 1 epochs: stop, on the
    # same epoch as scikit-learn's own (the first epoch always improves on an infinite loss).
    stopped = MLPClassifier(hidden_layer_sizes=(20,), tol=10.0, n_iter_no_change=3, random_state=0).fit(X, y)
    theirs = sklearn.neural_network.MLPClassifier(hidden_layer_sizes=(20,), tol=10.0, n_iter_no_change=3,
                                                  random_state=0).fit(X, y)
    assert stopped.n_iter_ == theirs.n_iter_ == 5
    # early_stopping: the validation score decides, and the best epoch's weights are kept.
    early = MLPClassifier(hidden_layer_sizes=(20,), early_stopping=True, n_iter_no_change=2, max_iter=200,
                          random_state=0).fit(X, y)
    assert early.best_loss_ is None and len(early.validation_scores_) == early.n_iter_ < 200
    assert early.best_validation_score_ == max(early.validation_scores_)
    with pytest.warns(sklearn.exceptions.ConvergenceWarning, match=r"Maximum iterations \(2\) reached"):
        MLPClassifier(hidden_layer_sizes=(5,), max_iter=2, random_state=0).fit(X, y)


@pytest.mark.parametrize("bad, message", [
    ({"activation": "identity"}, "hidden_layer_sizes=\\(\\) gives the linear model"),
    ({"solver": "lbfgs"}, "solver must be 'adam' or 'sgd'"),
    ({"hidden_layer_sizes": (10, 0)}, "hidden_layer_sizes must be positive integers"),
    ({"batch_size": 0}, "batch_size must be 'auto' or an integer >= 1"),
    ({"learning_rate_init": -1.0}, "learning_rate_init must be a number > 0"),
    ({"beta_1": 1.0}, r"beta_1 must be in \[0, 1\)"),
    ({"early_stopping": True, "validation_fraction": 1.5}, r"validation_fraction must be in \(0, 1\)"),
])
def test_bad_hyper_parameters_are_named_at_fit(bad, message):
    clf = MLPClassifier(**bad)  # scikit-learn's rule: __init__ only stores
    with pytest.raises(ValueError, match=message):
        clf.fit(np.zeros((4, 2)), [0, 1, 0, 1])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_regressor_learns_one_and_several_outputs():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(400, 3))
    y = np.sin(2 * X[:, 0]) + X[:, 1] * X[:, 2]
    one = MLPRegressor(hidden_layer_sizes=(50,), learning_rate_init=0.01, max_iter=300, random_state=0).fit(X, y)
    assert one.predict(X).shape == (400,) and one.n_outputs_ == 1
    assert one.score(X, y) > 0.95
    Y = np.column_stack([y, X[:, 0] - X[:, 1]])
    two = MLPRegressor(hidden_layer_sizes=(50,), learning_rate_init=0.01, max_iter=300, random_state=0).fit(X, Y)
    assert two.predict(X).shape == (400, 2) and two.n_outputs_ == 2
    assert two.score(X, Y) > 0.95


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_one_epoch_matches_scikit_learns_own_mlp(kind, solver):
    """From the same weights, one epoch (no shuffling) gives scikit-learn's weights: the same
    loss gradient, the same L2 penalty (alpha), the same update rule. (Adam's epsilon sits after
    the bias correction in handgrad, as in PyTorch, and before it in scikit-learn: a negligible
    epsilon makes the two rules one.)"""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 5))
    y = rng.integers(0, 3, size=60) if kind == "classifier" else rng.normal(size=60)
    settings = dict(hidden_layer_sizes=(7, 4), solver=solver, alpha=0.05, batch_size=16, learning_rate_init=0.05,
                    momentum=0.0, shuffle=False, random_state=0, epsilon=1e-30)
    ours = (MLPClassifier if kind == "classifier" else MLPRegressor)(**settings)
    theirs = getattr(sklearn.neural_network, type(ours).__name__)(**settings)
    first = dict(classes=[0, 1, 2]) if kind == "classifier" else {}
    ours.partial_fit(X, y, **first)
    theirs.partial_fit(X, y, **first)
    for mine, other in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        other[...] = mine
    ours._optimizer = ours._new_optimizer(np.float64)  # both optimizers start afresh from these weights
    del theirs._optimizer
    ours.partial_fit(X, y)
    theirs.partial_fit(X, y)
    for mine, other in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(mine, other, rtol=1e-10, atol=1e-12)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_convnet_reads_images_in_every_layout(digits):
    (X, y), (X_test, y_test) = digits
    X, X_test = X / 16, X_test / 16
    settings = dict(n_filters=6, hidden_layer_sizes=(40,), learning_rate_init=0.01, max_iter=8, random_state=0)
    table = ConvNetClassifier(**settings).fit(X, y)
    assert table.image_shape_ == (1, 8, 8)
    images = ConvNetClassifier(**settings).fit(X.reshape(-1, 1, 8, 8), y)
    plain = ConvNetClassifier(**settings).fit(X.reshape(-1, 8, 8), y)
    np.testing.assert_array_equal(table.predict_proba(X_test), images.predict_proba(X_test.reshape(-1, 1, 8, 8)))
    np.testing.assert_array_equal(table.predict_proba(X_test), plain.predict_proba(X_test.reshape(-1, 8, 8)))
    assert table.score(X_test, y_test) > 0.9
    strip = ConvNetClassifier(n_filters=2, max_iter=1, random_state=0).fit(X[:50, :10], y[:50])
    assert strip.image_shape_ == (1, 1, 10)
    with pytest.raises(ValueError, match=r"samples have shape \(8, 4\), but the model was fitted on samples "
                                         r"of shape \(8, 8\)"):
        plain.predict(X_test.reshape(-1, 8, 8)[:, :, :4])
    with pytest.raises(ValueError, match=r"image_shape \(3, 3\) does not hold the 64 features"):
        ConvNetClassifier(image_shape=(3, 3)).fit(X, y)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_diverging_run_is_stopped_with_the_learning_rate_named():
    from handgrad.train import TrainingDiverged

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(50, 3)), rng.normal(size=50) * 1e3
    with pytest.raises(TrainingDiverged, match=r"try a smaller learning_rate_init \(now 1e\+12\)"):
        MLPRegressor(solver="sgd", momentum=0.0, learning_rate_init=1e12, max_iter=20, random_state=0).fit(X, y)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_warm_start_after_early_stopping_goes_on_by_the_training_loss(digits):
    (X, y), _ = digits
    clf = MLPClassifier(hidden_layer_sizes=(10,), early_stopping=True, max_iter=3, warm_start=True,
                        random_state=0).fit(X / 16, y)
    assert clf.best_loss_ is None
    clf.set_params(early_stopping=False).fit(X / 16, y)
    assert clf.n_iter_ == 6 and clf.best_loss_ == min(clf.loss_curve_[3:])
