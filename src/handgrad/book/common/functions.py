"""The book's ``common.functions``: handgrad's functions under the book's names.

``softmax``, ``sigmoid``, ``relu`` and ``cross_entropy_error`` are handgrad's own (a softmax per
row, an overflow-free sigmoid, a cross-entropy whose batch size comes from the scores); the few
the book adds are one line each.
"""

import numpy as np

from handgrad.functions import cross_entropy_error, relu, sigmoid, softmax  # noqa: F401  (the book's names)


def identity_function(x):
    """``y = x``: the output layer of a regression."""
    return x


def step_function(x):
    """``1`` where ``x > 0``, else ``0`` (integers), the perceptron's activation."""
    return np.array(np.asarray(x) > 0, dtype=int)


def sigmoid_grad(x):
    """``d sigmoid / dx = sigmoid(x) (1 - sigmoid(x))``."""
    y = sigmoid(x)
    return y * (1.0 - y)


def relu_grad(x):
    """``d relu / dx``: 1 where ``x > 0``, else 0 (0 at exactly 0, as handgrad's Relu layer)."""
    return (np.asarray(x) > 0).astype(np.float64)


def sum_squared_error(y, t):
    """``0.5 * sum((y - t)^2)``."""
    return 0.5 * float(np.sum((np.asarray(y) - np.asarray(t)) ** 2))


def softmax_loss(x, t):
    """Cross-entropy of ``softmax(x)`` against ``t`` (labels or one-hot rows)."""
    return cross_entropy_error(softmax(x), t)
