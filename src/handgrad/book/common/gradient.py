"""The book's ``common.gradient``: numerical gradients by central differences, handgrad's.

``numerical_gradient(f, x)`` perturbs each element of ``x`` in place, calls ``f(x)`` and restores
it (the book's semantics, so ``f`` may ignore its argument). handgrad's step is ``1e-5`` (the
book's is ``1e-4``): in float64 the truncation error, ``O(eps^2)``, is then smaller than the
book's and the rounding error still negligible. On a float32 array it warns that the result is
not meaningful.
"""

import numpy as np

from handgrad.gradcheck import numerical_gradient as _handgrad_numerical_gradient


def numerical_gradient(f, x):
    """``df/dx`` of the scalar ``f(x)``, of x's shape, by central differences."""
    return _handgrad_numerical_gradient(f, x).astype(x.dtype, copy=False)


def numerical_gradient_2d(f, X):
    """The gradient of ``f`` at each row of ``X`` separately (``f`` maps one row to a scalar);
    a 1-D ``X`` is one row."""
    X = np.asarray(X)
    if X.ndim == 1:
        return numerical_gradient(f, X)
    return np.stack([numerical_gradient(f, row) for row in X])
