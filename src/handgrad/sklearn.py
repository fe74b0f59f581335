"""scikit-learn estimators built on handgrad's models, optimizers and training step (the
``sklearn`` extra: ``pip install "handgrad[sklearn]"``).

* :class:`MLPClassifier` and :class:`MLPRegressor` take scikit-learn's own ``MLPClassifier`` /
  ``MLPRegressor`` parameters wherever they mean the same thing (``hidden_layer_sizes``,
  ``activation``, ``solver``, ``alpha``, ``batch_size``, ``learning_rate_init``, ``max_iter``,
  ``shuffle``, ``random_state``, ``tol``, ``verbose``, ``warm_start``, ``momentum``,
  ``nesterovs_momentum``, ``early_stopping``, ``validation_fraction``, ``beta_1``, ``beta_2``,
  ``epsilon``, ``n_iter_no_change``), and stop training by scikit-learn's rules: after
  ``n_iter_no_change`` epochs in which the training loss (or, with ``early_stopping``, the
  validation score) did not improve by ``tol``, else after ``max_iter`` epochs with a
  ``ConvergenceWarning``.
* :class:`ConvNetClassifier` classifies images: ``Convolution -> Relu -> 2x2 max pooling ->``
  the MLP's hidden layers ``-> Affine``. ``X`` is ``(N, C, H, W)``, ``(N, H, W)`` or a table
  ``(N, F)`` whose rows are unrolled images of ``image_shape``.

The network is a :class:`handgrad.Sequential` built by :func:`handgrad.mlp` (``model_`` after
``fit``), trained with :mod:`handgrad.optim`'s Adam or SGD, one minibatch at a time by
:func:`handgrad.train.train_step`, the step :func:`handgrad.fit` takes.

Where they differ from scikit-learn's own:

* The classifiers' output layer is a softmax over all classes, two classes included
  (scikit-learn uses one logistic unit for two classes; ``predict_proba`` is the same shape).
  Multilabel targets are not supported.
* ``alpha`` is scikit-learn's L2 penalty, ``alpha / 2 ||W||^2`` divided by the minibatch's
  size: the model's ``weight_decay`` is ``alpha / len(batch)``. ``loss_curve_`` holds the
  mean training loss of each epoch, penalty included, as scikit-learn's does.
* Weights start from He initialisation for ``relu`` and Glorot (Xavier) uniform otherwise.
* The network computes in float32 when ``X`` is float32, else in float64, as scikit-learn's.
* The solvers are ``"adam"`` and ``"sgd"`` (constant learning rate); there is no ``"lbfgs"``,
  no ``learning_rate`` schedule and no ``sample_weight``. ``activation="identity"`` is refused:
  ``hidden_layer_sizes=()`` gives the linear model.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, MultiOutputMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets, type_of_target
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError('handgrad.sklearn needs scikit-learn: pip install "handgrad[sklearn]"') from error

from .layers import Convolution, Flatten, Layer, Pooling, Relu
from .model import Sequential, mlp
from .train import TrainingDiverged, train_step
from . import init as initializers
from . import optim, validate

__all__ = ["MLPClassifier", "MLPRegressor", "ConvNetClassifier"]

#: scikit-learn's activation names -> handgrad's.
_ACTIVATIONS = {"relu": "relu", "logistic": "sigmoid", "tanh": "tanh"}


class SquaredErrorLoss(Layer):
    """``loss = 1/2 mean over samples of sum over outputs (y - t)^2``, ``dy = (y - t) / N``:
    scikit-learn's squared loss for one output (the regressors' loss layer)."""

    def __init__(self) -> None:
        super().__init__()
        self._residual = None

    def forward(self, y, t) -> float:
        y = self._input(y)
        t = np.asarray(t, dtype=y.dtype).reshape(y.shape)
        self._residual = y - t
        return 0.5 * float(np.sum(self._residual ** 2)) / len(y)

    def backward(self, dout=1.0):
        self._require_forward(self._residual)
        return self._residual * (float(dout) / len(self._residual))


class _HandgradNetwork(BaseEstimator):
    """What the three estimators share: the hyper-parameters, their checks, the training loop
    with scikit-learn's stopping rules, warm starts and ``partial_fit``."""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=1e-4,
                 batch_size="auto", learning_rate_init=1e-3, max_iter=200, shuffle=True, random_state=None,
                 tol=1e-4, verbose=False, warm_start=False, momentum=0.9, nesterovs_momentum=True,
                 early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 n_iter_no_change=10):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change

    # --- what each estimator defines ------------------------------------------------------------

    def _encode_targets(self, y, first_call: bool, classes=None) -> np.ndarray:
        raise NotImplementedError

    def _build_network(self, X, dtype, rng) -> Sequential:
        raise NotImplementedError

    def _validation_score(self, X, targets) -> float:
        """``score`` on data already validated, shaped and encoded (early stopping's held-out part)."""
        raise NotImplementedError

    # --- hyper-parameters ------------------------------------------------------------------------

    def _hidden_sizes(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, numbers.Integral) else list(sizes)
        try:
            return [validate.positive_int(s, "hidden_layer_sizes") for s in sizes]
        except ValueError:
            raise ValueError(f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes!r}") from None

    def _check_hyperparameters(self) -> None:
        def positive(name, value, integer=False, zero_ok=False):
            what = f"{'an integer' if integer else 'a number'} {'>= 0' if zero_ok else '> 0'}"
            if integer:
                validate.integer(value, name, minimum=0 if zero_ok else 1, what=what)
            else:
                validate.real(value, name, low=0, low_open=not zero_ok, what=what)

        self._hidden_sizes()
        if self.activation not in _ACTIVATIONS:
            hint = " (hidden_layer_sizes=() gives the linear model)" if self.activation == "identity" else ""
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {self.activation!r}{hint}")
        if self.solver not in ("adam", "sgd"):
            raise ValueError(f"solver must be 'adam' or 'sgd', got {self.solver!r} (handgrad has no lbfgs)")
        if not (self.batch_size == "auto" or (isinstance(self.batch_size, numbers.Integral)
                                              and not isinstance(self.batch_size, bool) and self.batch_size >= 1)):
            raise ValueError(f"batch_size must be 'auto' or an integer >= 1, got {self.batch_size!r}")
        positive("alpha", self.alpha, zero_ok=True)
        positive("learning_rate_init", self.learning_rate_init)
        positive("max_iter", self.max_iter, integer=True)
        positive("tol", self.tol, zero_ok=True)
        positive("momentum", self.momentum, zero_ok=True)
        positive("epsilon", self.epsilon)
        positive("n_iter_no_change", self.n_iter_no_change, integer=True)
        for name in ("beta_1", "beta_2"):
            value = getattr(self, name)
            validate.real(value, name, low=0, high=1, high_open=True, what="in [0, 1)")
        if self.early_stopping and not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}")

    def _resolved_batch_size(self, n_samples: int) -> int:
        if self.batch_size == "auto":
            return min(200, n_samples)
        if self.batch_size > n_samples:
            warnings.warn(f"Got `batch_size` larger than sample size. It is going to be clipped to {n_samples}",
                          UserWarning, stacklevel=3)
        return min(self.batch_size, n_samples)

    def _new_optimizer(self, dtype):
        if self.solver == "adam":
            return optim.Adam(lr=self.learning_rate_init, betas=(self.beta_1, self.beta_2), eps=self.epsilon)
        nesterov = bool(self.nesterovs_momentum) and self.momentum > 0
        return optim.SGD(lr=self.learning_rate_init, momentum=self.momentum, nesterov=nesterov)

    # --- training ------------------------------------------------------------------------------

    def fit(self, X, y):
        """Train on ``X, y`` for up to ``max_iter`` epochs (from scratch unless ``warm_start``);
        returns ``self``."""
        return self._fit(X, y, incremental=False)

    def _fit(self, X, y, incremental: bool, classes=None):
        self._check_hyperparameters()
        fresh = not hasattr(self, "model_") or (not self.warm_start and not incremental)
        X, y = validate_data(self, X, y, reset=fresh, dtype=(np.float64, np.float32), **self._x_rules,
                             **self._y_rules)
        X = self._shape_input(X, reset=fresh)
        targets = self._encode_targets(y, first_call=fresh, classes=classes)
        dtype = X.dtype
        if fresh:
            self._rng = np.random.default_rng(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
            self.model_ = self._build_network(X, dtype, self._rng)
            self._dtype = dtype
            self.n_iter_, self.t_ = 0, 0
            self.loss_curve_ = []
            self._no_improvement_count = 0
            self.best_loss_, self.best_validation_score_, self.validation_scores_ = np.inf, None, None
        X = X.astype(self._dtype, copy=False)
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = self._new_optimizer(self._dtype)
        batch_size = self._resolved_batch_size(len(X))

        early_stopping = self.early_stopping and not incremental
        if early_stopping:
            stratify = targets if isinstance(self, ClassifierMixin) else None
            X, X_val, targets, y_val = train_test_split(X, targets, test_size=self.validation_fraction,
                                                        stratify=stratify,
                                                        random_state=int(self._rng.integers(np.iinfo(np.int32).max)))
            self.validation_scores_ = self.validation_scores_ or []
            self.best_validation_score_ = -np.inf if self.best_validation_score_ is None else self.best_validation_score_
            self.best_loss_ = None
            best_weights = None
        elif self.best_loss_ is None:  # a warm start after a run with early stopping
            self.best_loss_ = np.inf

        for _ in range(1 if incremental else self.max_iter):
            loss = self._run_epoch(X, targets, batch_size)
            self.n_iter_ += 1
            self.t_ += len(X)
            self.loss_curve_.append(loss)
            if self.verbose:
                print(f"Iteration {self.n_iter_}, loss = {loss:.8f}")
            if incremental:
                self.best_loss_ = min(self.best_loss_, loss) if self.best_loss_ is not None else loss
                break
            if early_stopping:
                score = self._validation_score(X_val, y_val)
                self.validation_scores_.append(score)
                if self.verbose:
                    print(f"Validation score: {score:f}")
                improved = score >= self.best_validation_score_ + self.tol
                if score > self.best_validation_score_:
                    self.best_validation_score_ = score
                    best_weights = {name: value.copy() for name, value in self.model_.params.items()}
            else:
                improved = loss <= self.best_loss_ - self.tol
                self.best_loss_ = min(self.best_loss_, loss)
            self._no_improvement_count = 0 if improved else self._no_improvement_count + 1
            if self._no_improvement_count > self.n_iter_no_change:
                if self.verbose:
                    what = "Validation score" if early_stopping else "Training loss"
                    print(f"{what} did not improve more than tol={self.tol} for {self.n_iter_no_change} "
                          "consecutive epochs. Stopping.")
                break
        else:
            if not incremental:
                warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                              "optimization hasn't converged yet.", ConvergenceWarning, stacklevel=3)
        if early_stopping and best_weights is not None:
            for name, value in self.model_.params.items():
                value[...] = best_weights[name]
        self._publish_weights()
        return self

    def _run_epoch(self, X, targets, batch_size: int) -> float:
        """One pass over the data in minibatches (shuffled when ``shuffle``); the mean loss."""
        model, optimizer = self.model_, self._optimizer
        order = self._rng.permutation(len(X)) if self.shuffle else np.arange(len(X))
        total = 0.0
        model.train()
        for start in range(0, len(X), batch_size):
            index = order[start:start + batch_size]
            model.weight_decay = float(self.alpha) / len(index)  # scikit-learn's alpha: per sample of the batch
            penalty = model.weight_penalty()  # scikit-learn's loss_curve_ includes it (of the weights before the step)
            loss = train_step(model, optimizer, X[index], targets[index], count=False).loss + penalty
            if not math.isfinite(loss):
                raise TrainingDiverged(f"{type(self).__name__}: the loss became {loss} in epoch {self.n_iter_ + 1}; "
                                       f"try a smaller learning_rate_init (now {self.learning_rate_init:g})")
            total += loss * len(index)
        model.eval()
        return total / len(X)

    def _shape_input(self, X, reset: bool) -> np.ndarray:
        return X

    def _publish_weights(self) -> None:
        """``coefs_`` and ``intercepts_``: the Affine layers' weights and biases (scikit-learn's names)."""
        affine = [layer for layer in self.model_.layers if hasattr(layer, "W") and layer.W.ndim == 2]
        self.coefs_ = [layer.W for layer in affine]
        self.intercepts_ = [layer.b for layer in affine]

    def _outputs(self, X, batch_size: int = 1000) -> np.ndarray:
        """The network's last-layer outputs for ``X`` (already validated), in evaluation mode."""
        X = X.astype(self._dtype, copy=False)
        with self.model_.mode(False):
            return np.concatenate([self.model_.predict(X[i:i + batch_size]) for i in range(0, len(X), batch_size)])

    def _checked_input(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32), **self._x_rules)
        return self._shape_input(X, reset=False)

    _x_rules: dict = {}

    def __setstate__(self, state) -> None:
        # An estimator unpickled by joblib from a memory map holds read-only arrays; the layers
        # write into their weights, gradients and caches, and the optimizer into its state.
        super().__setstate__(state)
        model = getattr(self, "model_", None)
        if model is None:
            return
        for layer in [layer for _, layer in model.named_layers()] + [model.loss_layer]:
            for arrays in [layer._own[kind] for kind in ("params", "grads", "buffers")] + [vars(layer)]:
                _make_writeable(arrays)
        for arrays in self._optimizer.state.values():
            _make_writeable(arrays)
        self._publish_weights()  # coefs_ and intercepts_ name the (new) writeable arrays


def _make_writeable(arrays: dict) -> None:
    """Replace every read-only array among the values of ``arrays`` by a writeable copy."""
    for key, value in arrays.items():
        if isinstance(value, np.ndarray) and not value.flags.writeable:
            arrays[key] = value.copy()


class _Classifier(ClassifierMixin, _HandgradNetwork):
    """Labels of any type (``classes_``, sorted), softmax outputs, ``predict_proba``."""

    _y_rules = {}

    def _encode_targets(self, y, first_call: bool, classes=None) -> np.ndarray:
        if type_of_target(y) in ("multilabel-indicator", "multiclass-multioutput"):
            raise ValueError(f"{type(self).__name__}: multilabel targets are not supported; give one label per sample")
        check_classification_targets(y)
        if first_call:
            self.classes_ = np.unique(y) if classes is None else np.unique(np.asarray(classes))
        elif classes is not None and not np.array_equal(np.unique(np.asarray(classes)), self.classes_):
            raise ValueError(f"`classes={np.asarray(classes).tolist()}` is not the same as on the first call to partial_fit "
                             f"({self.classes_.tolist()})")
        elif self.warm_start and classes is None and not np.isin(np.unique(y), self.classes_).all():
            raise ValueError("warm_start can only be used where `y` has the same classes as in the previous call "
                             f"to fit: {self.classes_.tolist()}, now {np.unique(y).tolist()}")
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if len(unknown):
            raise ValueError(f"{type(self).__name__}: labels {unknown.tolist()} are not in classes_ {self.classes_.tolist()}")
        return np.searchsorted(self.classes_, y)

    def _validation_score(self, X, targets) -> float:
        return float(np.mean(self._outputs(X).argmax(axis=1) == targets))

    def partial_fit(self, X, y, classes=None):
        """One epoch over ``X, y``, continuing the training so far. The first call must give
        ``classes``, every label that will ever be seen."""
        if not hasattr(self, "model_") and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit")
        return self._fit(X, y, incremental=True, classes=classes)

    def predict_proba(self, X) -> np.ndarray:
        """Probability of each class in ``classes_`` order, ``(n_samples, n_classes)``."""
        scores = self._outputs(self._checked_input(X))
        scores = scores - scores.max(axis=1, keepdims=True)
        probabilities = np.exp(scores)
        return probabilities / probabilities.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X) -> np.ndarray:
        return np.log(self.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        """The most probable class of each sample (a label from ``classes_``)."""
        scores = self._outputs(self._checked_input(X))
        return self.classes_[scores.argmax(axis=1)]


class MLPClassifier(_Classifier):
    """A multilayer perceptron classifier: scikit-learn's ``MLPClassifier`` interface on a
    handgrad network ``Affine -> activation -> ... -> Affine -> SoftmaxWithLoss``.

    Parameters are scikit-learn's (see the module's docstring for the few differences).

    Attributes after ``fit``: ``classes_``, ``n_features_in_`` (and ``feature_names_in_`` for a
    DataFrame), ``model_`` (the :class:`handgrad.Sequential`), ``coefs_`` and ``intercepts_``
    (its Affine layers' arrays), ``loss_curve_``, ``best_loss_``, ``validation_scores_`` and
    ``best_validation_score_`` (with ``early_stopping``), ``n_iter_`` (epochs), ``t_`` (samples seen).

    >>> from handgrad.sklearn import MLPClassifier
    >>> X, y = [[0., 0.], [0., 1.], [1., 0.], [1., 1.]] * 10, ["no", "yes", "yes", "no"] * 10
    >>> clf = MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.05, max_iter=300, random_state=0)
    >>> clf.fit(X, y).predict([[0., 1.], [1., 1.]]).tolist()
    ['yes', 'no']
    """

    def _build_network(self, X, dtype, rng) -> Sequential:
        activation = _ACTIVATIONS[self.activation]
        return mlp(X.shape[1], self._hidden_sizes(), len(self.classes_), activation=activation,
                   init="he" if activation == "relu" else "xavier_uniform", seed=rng, dtype=dtype)


class MLPRegressor(MultiOutputMixin, RegressorMixin, _HandgradNetwork):
    """A multilayer perceptron regressor: scikit-learn's ``MLPRegressor`` interface on a handgrad
    network ``Affine -> activation -> ... -> Affine`` trained on the squared error.

    ``y`` may be ``(n_samples,)`` (``predict`` then returns that shape) or ``(n_samples,
    n_outputs)``. Attributes after ``fit`` as :class:`MLPClassifier`'s, with ``n_outputs_``
    instead of ``classes_``; ``score`` is R^2.
    """

    _y_rules = {"multi_output": True, "y_numeric": True}

    def _encode_targets(self, y, first_call: bool, classes=None) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        if first_call:
            self._one_output = y.ndim == 1
            self.n_outputs_ = 1 if y.ndim == 1 else y.shape[1]
        elif (1 if y.ndim == 1 else y.shape[1]) != self.n_outputs_:
            raise ValueError(f"{type(self).__name__}: y has {1 if y.ndim == 1 else y.shape[1]} outputs, but the "
                             f"model was fitted with {self.n_outputs_}")
        return y.reshape(len(y), -1)

    def _decode_targets(self, encoded) -> np.ndarray:
        return encoded.ravel() if self._one_output else encoded

    def _validation_score(self, X, targets) -> float:
        return float(r2_score(targets, self._outputs(X)))

    def _build_network(self, X, dtype, rng) -> Sequential:
        activation = _ACTIVATIONS[self.activation]
        network = mlp(X.shape[1], self._hidden_sizes(), self.n_outputs_, activation=activation,
                      init="he" if activation == "relu" else "xavier_uniform", seed=rng, dtype=dtype)
        return Sequential(network.layers, loss=SquaredErrorLoss(), seed=network.rng)

    def partial_fit(self, X, y):
        """One epoch over ``X, y``, continuing the training so far."""
        return self._fit(X, y, incremental=True)

    def predict(self, X) -> np.ndarray:
        """``(n_samples,)`` predictions, or ``(n_samples, n_outputs)`` if fitted on 2-D ``y``."""
        return self._decode_targets(self._outputs(self._checked_input(X)).astype(np.float64, copy=False))


class ConvNetClassifier(_Classifier):
    """A small convolutional classifier for images, with scikit-learn's interface:
    ``Convolution(n_filters, kernel_size x kernel_size, same padding) -> Relu -> max pooling
    (2 x 2, stride 2) -> hidden Affine layers (hidden_layer_sizes, activation) -> Affine ->
    SoftmaxWithLoss``.

    ``X``: images ``(N, C, H, W)`` or ``(N, H, W)`` (one channel), or a table ``(N, F)`` whose
    rows are unrolled images of ``image_shape``: ``(C, H, W)`` or ``(H, W)``; ``"auto"``
    (default) reads a row of F = s * s values as one s x s image (digits' 64 -> 8 x 8, MNIST's
    784 -> 28 x 28) and any other row as a one-pixel-high strip, a 1-D signal (1 x F). Pooling
    never shrinks an axis below one pixel. Every other parameter is :class:`MLPClassifier`'s.

    Attributes after ``fit``: :class:`MLPClassifier`'s, and ``image_shape_``, the ``(C, H, W)``
    of one sample as the network reads it.
    """

    _x_rules = {"allow_nd": True}

    def __init__(self, n_filters=16, kernel_size=3, image_shape="auto", hidden_layer_sizes=(100,), activation="relu",
                 *, solver="adam", alpha=1e-4, batch_size="auto", learning_rate_init=1e-3, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, n_iter_no_change=10):
        super().__init__(hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
                         learning_rate_init=learning_rate_init, max_iter=max_iter, shuffle=shuffle,
                         random_state=random_state, tol=tol, verbose=verbose, warm_start=warm_start, momentum=momentum,
                         nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
                         validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         n_iter_no_change=n_iter_no_change)
        self.n_filters = n_filters
        self.kernel_size = kernel_size
        self.image_shape = image_shape

    def _check_hyperparameters(self) -> None:
        super()._check_hyperparameters()
        for name in ("n_filters", "kernel_size"):
            value = getattr(self, name)
            validate.integer(value, name, minimum=1)
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (same padding keeps the image's size), got {self.kernel_size}")

    def _image_shape_for(self, X) -> tuple[int, int, int]:
        """One sample's (C, H, W) as the network reads it, from X's shape and ``image_shape``."""
        if X.ndim == 4:
            return X.shape[1:]
        if X.ndim == 3:
            return (1, *X.shape[1:])
        features = X.shape[1]
        if isinstance(self.image_shape, str):
            if self.image_shape != "auto":
                raise ValueError(f"image_shape must be 'auto', (C, H, W) or (H, W), got {self.image_shape!r}")
            side = math.isqrt(features)
            return (1, side, side) if side * side == features else (1, 1, features)
        shape = tuple(int(d) for d in self.image_shape)
        shape = (1, *shape) if len(shape) == 2 else shape
        if len(shape) != 3 or math.prod(shape) != features:
            raise ValueError(f"image_shape {self.image_shape!r} does not hold the {features} features of a row of X")
        return shape

    def _shape_input(self, X, reset: bool) -> np.ndarray:
        if X.ndim > 4:
            raise ValueError(f"{type(self).__name__}: X must be (N, C, H, W), (N, H, W) or (N, F); got shape {X.shape}")
        if reset:
            self.image_shape_ = self._image_shape_for(X)
            self._sample_shape = X.shape[1:]
        elif X.shape[1:] != self._sample_shape:
            raise ValueError(f"{type(self).__name__}: X's samples have shape {X.shape[1:]}, but the model was fitted "
                             f"on samples of shape {self._sample_shape}")
        return X.reshape(len(X), *self.image_shape_)

    def _build_network(self, X, dtype, rng) -> Sequential:
        channels, height, width = self.image_shape_
        k = self.kernel_size
        conv = Convolution(initializers.get("he")((self.n_filters, channels, k, k), rng, dtype),
                           np.zeros(self.n_filters, dtype), stride=1, pad=k // 2)
        pool_h, pool_w = min(2, height), min(2, width)
        pooled = self.n_filters * ((height - pool_h) // 2 + 1) * ((width - pool_w) // 2 + 1)
        activation = _ACTIVATIONS[self.activation]
        head = mlp(pooled, self._hidden_sizes(), len(self.classes_), activation=activation,
                   init="he" if activation == "relu" else "xavier_uniform", seed=rng, dtype=dtype)
        return Sequential([conv, Relu(), Pooling(pool_h, pool_w, stride=2), Flatten(), *head.layers],
                          seed=rng, input_shape=self.image_shape_)

    def _publish_weights(self) -> None:
        super()._publish_weights()
        self.coefs_ = [self.model_.layers[0].W, *self.coefs_]
        self.intercepts_ = [self.model_.layers[0].b, *self.intercepts_]
