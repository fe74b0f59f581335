"""Element-wise activations. Each caches what its derivative needs, and nothing more."""

from __future__ import annotations

import numpy as np

from .. import functions as F
from .base import Layer


class Relu(Layer):
    """``y = max(x, 0)``; ``dx = dout * [x > 0]``.

    The derivative at exactly 0 is taken as 0 (PyTorch's choice). Unlike the tutorial's
    ``dout[mask] = 0``, backward builds a new array and leaves ``dout`` untouched.
    Shapes: any; y and dx have x's shape.
    """

    def __init__(self) -> None:
        super().__init__()
        self.mask: np.ndarray | None = None  # True where x > 0: where the gradient flows

    def forward(self, x):
        x = self._input(x)
        self.mask = x > 0
        return np.maximum(x, 0)

    def backward(self, dout):
        self._require_forward(self.mask)
        return self._check_dout(dout, self.mask.shape) * self.mask


class Sigmoid(Layer):
    """``y = 1 / (1 + exp(-x))`` (overflow-free, see :func:`handgrad.functions.sigmoid`);
    ``dx = dout * y * (1 - y)``, from the cached output. Shapes: any."""

    def __init__(self) -> None:
        super().__init__()
        self.out: np.ndarray | None = None

    def forward(self, x):
        self.out = F.sigmoid(self._input(x))
        return self.out

    def backward(self, dout):
        self._require_forward(self.out)
        return self._check_dout(dout, self.out.shape) * self.out * (1.0 - self.out)


class Tanh(Layer):
    """``y = tanh(x)``; ``dx = dout * (1 - y^2)``, from the cached output. Shapes: any."""

    def __init__(self) -> None:
        super().__init__()
        self.out: np.ndarray | None = None

    def forward(self, x):
        self.out = np.tanh(self._input(x))
        return self.out

    def backward(self, dout):
        self._require_forward(self.out)
        return self._check_dout(dout, self.out.shape) * (1.0 - self.out * self.out)
