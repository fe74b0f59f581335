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


class GELU(Layer):
    """Gaussian error linear unit, with PyTorch's two formulas (``nn.GELU(approximate=...)``):

        ``"none"`` (exact): ``y = x Phi(x)``, ``Phi(x) = (1 + erf(x / sqrt 2)) / 2`` the standard
        normal distribution function;
        ``"tanh"``: ``y = x (1 + tanh(u)) / 2`` with ``u = sqrt(2 / pi) (x + 0.044715 x^3)``.

    Backward (``dout = dL/dy``):
        exact: ``dx = dout * (Phi(x) + x phi(x))``, ``phi(x) = exp(-x^2 / 2) / sqrt(2 pi)``;
        tanh: ``dx = dout * ((1 + tanh u) / 2 + x / 2 (1 - tanh^2 u) sqrt(2 / pi) (1 + 3 * 0.044715 x^2))``.

    NumPy has no erf: Phi comes from :func:`handgrad.functions.normal_cdf` (W. J. Cody's
    rational approximations, ~1e-16 relative in float64, and exact in the left tail where
    PyTorch's ``1 + erf`` cancels; a formula of its own for float32, within 8 ulp). Forward keeps
    the derivative dy/dx itself, computed with y chunk by chunk while the chunk is in the cache
    (:func:`~handgrad.functions.gelu_with_slope`, :func:`~handgrad.functions.tanh_gelu_with_slope`),
    so backward is one multiply; ``apply(x)`` is the same y, caching nothing (inference: a GPT's
    generation).
    Shapes: any; y and dx have x's shape and dtype (integers become float64).
    """

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate
        self._slope = None

    def spec(self) -> dict:
        return {"type": self.name, "approximate": self.approximate}

    @classmethod
    def from_spec(cls, spec: dict, dtype=np.float32) -> "GELU":
        return cls(approximate=spec.get("approximate", "none"))

    def apply(self, x):
        """``y = GELU(x)``, caching nothing: the forward formula, for inference (a GPT's
        generation). :func:`handgrad.functions.gelu` does forward's arithmetic, so the same y to
        the last bit."""
        return F.gelu(self._input(x), self.approximate)

    def forward(self, x):
        """:meth:`apply`, keeping what backward needs: dy/dx itself, computed with y."""
        x = self._input(x)
        with_slope = F.gelu_with_slope if self.approximate == "none" else F.tanh_gelu_with_slope
        y, slope = with_slope(x)
        self._slope = slope  # exact: Phi(x) + x phi(x); tanh: q + 2 y (1 - q) du/dx (see F.tanh_gelu_with_slope)
        return y

    def backward(self, dout):
        self._require_forward(self._slope)
        dout = self._check_dout(dout, self._slope.shape)
        return np.multiply(self._slope, dout, dtype=self._slope.dtype)  # dx = dout * dy/dx
