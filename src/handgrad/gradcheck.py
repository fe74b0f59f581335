"""Numerical gradients by central differences, and checks of backprop against them.

The check every hand-written backward must pass: nudge each input element by +-eps, watch the
loss, and compare ``(L(x + eps) - L(x - eps)) / (2 eps)`` with what ``backward`` says.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "numerical_gradient",
    "relative_error",
    "gradient_check",
    "GradientCheckReport",
    "DEFAULT_EPS",
    "DEFAULT_THRESHOLD",
]

#: Step for central differences. Its truncation error is O(eps^2) ~ 1e-10 and its rounding
#: error ~ 1e-16 / eps ~ 1e-11 (relative to the loss), both far below the threshold below.
DEFAULT_EPS = 1e-5

#: A backward passes when every relative error (see :func:`relative_error`) is below this, in
#: float64 with ``DEFAULT_EPS``. A correct backward typically scores 1e-9 or less; a wrong one
#: (a missing term, a transposed product, a lost ``/ N``) scores 1e-2 or more.
DEFAULT_THRESHOLD = 1e-6


def numerical_gradient(f, x: np.ndarray, eps: float = DEFAULT_EPS) -> np.ndarray:
    """Gradient of the scalar ``f(x)`` with respect to ``x`` by central differences.

    The book's semantics: each element of ``x`` is perturbed *in place*, ``f(x)`` is called, and
    the element is restored exactly, so ``f`` may ignore its argument and read the array through
    a layer that holds it (``numerical_gradient(lambda _: net.loss(x, t), layer.W)``).

    Shapes: ``x`` any float array (it must be writeable); the result has x's shape, float64.
    Integer arrays are refused: ``x + eps`` would be truncated back to ``x`` and every gradient
    would silently be 0. Use float64: on float32 the result is not meaningful, and a
    RuntimeWarning naming the dtype says so.

    Example:
        The gradient of ``sum(x^2)`` is ``2 x``:

        >>> import numpy as np
        >>> from handgrad.gradcheck import numerical_gradient
        >>> numerical_gradient(lambda x: float(np.sum(x ** 2)), np.array([1.0, -2.0, 0.5])).round(6)
        array([ 2., -4.,  1.])
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"numerical_gradient: x must be a NumPy array (it is perturbed in place), got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(
            f"numerical_gradient: x has dtype {x.dtype}; perturbing an integer array by eps would "
            "be truncated away and give a zero gradient. Use x.astype(np.float64)."
        )
    if x.dtype != np.float64:
        warnings.warn(
            f"numerical_gradient: x has dtype {x.dtype}, so the result is not meaningful: the loss's "
            f"{x.dtype} rounding, divided by 2 eps, is as large as the gradient itself (differences "
            "near 1e-3 from a correct backward). Central differences need float64: give the model "
            "float64 parameters",
            RuntimeWarning,
            stacklevel=2,
        )
    if not x.flags.writeable:
        raise ValueError("numerical_gradient: x must be writeable (it is perturbed in place)")
    grad = np.zeros(x.shape, dtype=np.float64)
    for index in np.ndindex(x.shape):
        original = x[index]
        x[index] = original + eps
        loss_plus = float(f(x))
        x[index] = original - eps
        loss_minus = float(f(x))
        x[index] = original  # restore exactly, not by adding eps back
        grad[index] = (loss_plus - loss_minus) / (2.0 * eps)
    return grad


def relative_error(analytic, numerical) -> float:
    """``max|a - n| / max(max|a|, max|n|)``: the largest disagreement relative to the size of
    the gradient. Scaling by the whole gradient (not element by element) keeps elements that are
    almost zero from reporting huge errors over rounding noise. Two zero gradients give 0."""
    analytic = np.asarray(analytic, dtype=np.float64)
    numerical = np.asarray(numerical, dtype=np.float64)
    if analytic.shape != numerical.shape:
        raise ValueError(f"relative_error: shapes differ, {analytic.shape} vs {numerical.shape}")
    if analytic.size == 0:
        return 0.0
    scale = max(np.max(np.abs(analytic)), np.max(np.abs(numerical)))
    if scale == 0.0:
        return 0.0
    return float(np.max(np.abs(analytic - numerical)) / scale)


@dataclass
class GradientCheckReport:
    """Max relative error of backprop against numerical gradients, per parameter and input."""

    errors: dict[str, float]
    threshold: float
    analytic: dict[str, np.ndarray] = field(repr=False)
    numerical: dict[str, np.ndarray] = field(repr=False)

    @property
    def passed(self) -> bool:
        return all(err < self.threshold for err in self.errors.values())

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        width = max([len(name) for name in self.errors] + [9])
        lines = [f"{'gradient':<{width}}  relative error  (threshold {self.threshold:.0e})"]
        for name, err in self.errors.items():
            verdict = "ok" if err < self.threshold else "FAIL"
            lines.append(f"{name:<{width}}  {err:14.3e}  {verdict}")
        return "\n".join(lines)


def _require_float64(name: str, array: np.ndarray) -> None:
    if array.dtype != np.float64:
        raise TypeError(
            f"gradient_check: {name} has dtype {array.dtype}; gradient checks need float64: in "
            f"{array.dtype} the check's result is not meaningful (rounding alone gives relative errors "
            "near 1e-3, so a correct backward would look broken)"
        )


def gradient_check(
    target,
    x,
    t=None,
    *,
    dout=None,
    eps: float = DEFAULT_EPS,
    threshold: float = DEFAULT_THRESHOLD,
    seed: int | None = 0,
) -> GradientCheckReport:
    """Compare backprop with numerical gradients for a layer, a loss layer or a small model.

    * A layer (``forward(x)`` / ``backward(dout)``): the scalar checked is ``sum(forward(x) * dout)``
      with ``dout`` random (drawn from ``seed``) unless given, so every output element matters.
    * A loss layer (pass ``t``): the scalar is ``forward(x, t)``, and backward gets ``dout=1``.
    * A model (anything with ``loss(x, t)``, ``backward()``, ``params`` and ``grads``): the scalar
      is ``loss(x, t)``; the input gradient is checked too when ``backward()`` returns it.

    Every parameter (by its key in ``params``) and the input (``"x"``) get the maximum
    relative error of :func:`relative_error`; the report passes when all are below
    ``threshold``. Parameters and a float ``x`` must be float64.

    Integer ``x`` (token ids) is passed on as it is, never cast to floats. If ``backward``
    returns no input gradient (an Embedding, or a model that starts with one), only the
    parameters are checked and the report has no ``"x"`` entry; if it does return one (integers
    fed to an Affine), ``x`` is checked as its float64 copy, the values the layer computed with.
    """
    x = np.asarray(x)
    if x.dtype.kind in "iu":
        x = x.copy()  # ids stay integers: an Embedding refuses floats, even whole ones
    else:
        x = np.array(x, dtype=np.float64) if x.dtype.kind == "b" else np.array(x, copy=True)
        _require_float64("x", x)
    params = target.params
    for name, value in params.items():
        _require_float64(f"parameter {name!r}", value)
    inputs = {"x": x}  # what scalar() feeds the target; becomes float64 to check dx of integers

    is_model = hasattr(target, "loss") and callable(target.loss)
    if is_model:
        def scalar(_):
            return target.loss(inputs["x"], t)

        scalar(x)
        dx = target.backward()
    elif t is not None:
        def scalar(_):
            return target.forward(inputs["x"], t)

        scalar(x)
        dx = target.backward(1.0)
    else:
        out = target.forward(x)
        if dout is None:
            dout = np.random.default_rng(seed).standard_normal(np.shape(out))
        dout = np.asarray(dout, dtype=np.float64)

        def scalar(_):
            return float(np.sum(target.forward(inputs["x"]) * dout))

        dx = target.backward(dout)

    analytic = {name: np.array(grad, dtype=np.float64) for name, grad in target.grads.items()}
    if isinstance(dx, np.ndarray):
        analytic["x"] = np.array(dx, dtype=np.float64)
    numerical = {name: numerical_gradient(scalar, params[name], eps) for name in target.grads}
    if "x" in analytic:
        inputs["x"] = x.astype(np.float64)  # integers given to a float layer: their float copy
        numerical["x"] = numerical_gradient(scalar, inputs["x"], eps)
    errors = {name: relative_error(analytic[name], numerical[name]) for name in analytic}
    return GradientCheckReport(errors=errors, threshold=threshold, analytic=analytic, numerical=numerical)
