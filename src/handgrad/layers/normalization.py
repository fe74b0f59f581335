"""Normalisation over the features of each position: LayerNorm.

(BatchNorm, which normalises over the batch, lives in regularization.py for now.)"""

from __future__ import annotations

import numpy as np

from .. import validate
from ..functions import column_sums, row_sums
from .base import Layer, check_sizes

#: eps lies strictly between these: above 0 (no division by zero for a constant row) and below 1
#: (a larger one would swamp the variance of any normalised activations). One rule for LayerNorm
#: and GPT, applied by their constructors, by load, and to Hugging Face's ``layer_norm_epsilon``.
EPS_RANGE = (0.0, 1.0)


def check_eps(eps, who: str = "LayerNorm", name: str = "eps") -> float:
    """``eps`` as a float if ``EPS_RANGE[0] < eps < EPS_RANGE[1]``; ValueError naming it otherwise."""
    return validate.real(eps, name, who=who, low=EPS_RANGE[0], high=EPS_RANGE[1], low_open=True, high_open=True)


class LayerNorm(Layer):
    """Layer normalisation (Ba, Kiros and Hinton 2016) over the last axis, as PyTorch's
    ``nn.LayerNorm(num_features)``: each position is normalised by its own mean and (biased)
    variance over its D = ``num_features`` values, then scaled and shifted per feature:

        ``x_hat = (x - mean(x)) / sqrt(var(x) + eps)``,  ``y = gamma * x_hat + beta``.

    The same in training and evaluation (no running statistics).

    Shapes:
        gamma, beta: ``(D,)``, ones and zeros at first.
        x: ``(..., D)``, any leading shape (``(N, D)``, ``(N, T, D)``); y has x's shape.

    Backward, with ``dout = dL/dy``, ``g = dout * gamma`` and ``r = 1 / sqrt(var + eps)`` per
    position, means taken over the last axis:
        ``dx = r * (g - mean(g) - x_hat * mean(g * x_hat))``
    (the two subtracted terms are the paths through the mean and through the variance);
        ``dgamma += sum over positions of dout * x_hat``,  ``dbeta += sum over positions of dout``.

    The layer computes in its parameters' dtype (``dtype``: float16, float32 unless asked, or
    float64): the input is cast to it. ``forward`` zeroes dgamma and dbeta first. ``eps`` lies in
    ``EPS_RANGE``, (0, 1). ``apply(x)`` is the same y, caching nothing and touching no gradient
    (inference: a GPT's generation).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, dtype=np.float32) -> None:
        super().__init__()
        # The limits load applies to a saved LayerNorm (and to a GPT's eps), from the same checks.
        self.num_features = validate.positive_int(num_features, "num_features", who="LayerNorm")
        self.eps = check_eps(eps)
        dtype = validate.float_dtype(dtype, who="LayerNorm")
        self.params = {"gamma": np.ones(self.num_features, dtype), "beta": np.zeros(self.num_features, dtype)}
        self.grads = {key: np.zeros_like(value) for key, value in self.params.items()}
        self._cache = None

    @property
    def gamma(self) -> np.ndarray:
        return self.params["gamma"]

    @property
    def beta(self) -> np.ndarray:
        return self.params["beta"]

    def spec(self) -> dict:
        return {"type": self.name, "num_features": self.num_features, "eps": self.eps}

    @classmethod
    def param_shapes(cls, spec: dict) -> dict:
        (n,) = check_sizes(spec, "num_features")
        check_eps(spec.get("eps", 1e-5))
        return {"gamma": (n,), "beta": (n,)}

    @classmethod
    def from_spec(cls, spec: dict, dtype=np.float32) -> "LayerNorm":
        return cls(spec["num_features"], eps=spec.get("eps", 1e-5), dtype=dtype)

    def _normalized(self, x):
        """``(x_hat, inv_std, shape)``: x's rows (M, D) centred and scaled to unit variance, one
        new buffer, and ``1 / sqrt(var + eps)`` (M,) per row. The check both forwards share."""
        x = self._input(x).astype(self.params["gamma"].dtype, copy=False)
        D = self.num_features
        if x.shape[-1] != D:
            raise ValueError(f"LayerNorm: expected input of shape (..., {D}) (the last axis normalised), got {x.shape}")
        rows = x.reshape(-1, D)
        # x_hat is built in one buffer: centred, then scaled in place. The variance comes from an
        # einsum over the centred rows (one read, no squared temporary).
        x_hat = rows - (row_sums(rows) / D)[:, None]
        var = np.einsum("md,md->m", x_hat, x_hat) / D
        inv_std = 1.0 / np.sqrt(var + x.dtype.type(self.eps))
        x_hat *= inv_std[:, None]
        return x_hat, inv_std, x.shape

    def _scale_and_shift(self, x_hat, out=None):
        """``y = gamma * x_hat + beta``, into ``out`` (``x_hat`` itself when nothing keeps it)."""
        y = np.multiply(x_hat, self.params["gamma"], out=out)
        y += self.params["beta"]
        return y

    def apply(self, x):
        """``y`` for ``x`` (..., D), caching nothing and leaving the gradients alone: the
        forward formula, for inference (a GPT's generation)."""
        x_hat, _, shape = self._normalized(x)
        return self._scale_and_shift(x_hat, out=x_hat).reshape(shape)

    def forward(self, x):
        """:meth:`apply`, keeping ``x_hat`` and ``1 / sqrt(var + eps)`` for backward."""
        x_hat, inv_std, shape = self._normalized(x)
        self._zero_own_grads()
        self._cache = (x_hat, inv_std, shape)
        return self._scale_and_shift(x_hat).reshape(shape)  # a new array: x_hat is kept

    def backward(self, dout):
        self._require_forward(self._cache)
        x_hat, inv_std, shape = self._cache
        gamma = self.params["gamma"]
        D = self.num_features
        dout = self._check_dout(dout, shape).reshape(-1, D).astype(gamma.dtype, copy=False)
        dout_xhat = dout * x_hat
        self.add_to_grad("gamma", column_sums(dout_xhat))
        self.add_to_grad("beta", column_sums(dout))
        # mean(g) and mean(g x_hat) with g = dout * gamma are matrix-vector products with gamma
        # (BLAS, and no g temporary): sum_d dout_d gamma_d and sum_d (dout x_hat)_d gamma_d.
        mean_g = (dout @ gamma) / D
        mean_g_xhat = (dout_xhat @ gamma) / D
        dx = dout * gamma
        dx -= mean_g[:, None]
        np.multiply(x_hat, mean_g_xhat[:, None], out=dout_xhat)  # reuse the buffer
        dx -= dout_xhat
        dx *= inv_std[:, None]
        return dx.reshape(shape)
