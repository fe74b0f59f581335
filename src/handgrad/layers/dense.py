"""The fully connected layer."""

from __future__ import annotations

import numpy as np

from ..functions import column_sums
from .base import WeightedLayer, check_sizes


class Affine(WeightedLayer):
    """Fully connected layer ``y = x W + b`` (the book's convention: ``W`` is ``(in, out)``;
    PyTorch's ``Linear.weight`` stores its transpose).

    Shapes:
        W: ``(in, out)``; b: ``(out,)``.
        x: ``(N, in)``; ``(N, T, in)`` for sequences, acting on the last axis as PyTorch's
        Linear (y is ``(N, T, out)``); ``(N, C, H, W)`` or any other ``(N, *)`` with ``in``
        values per sample (an image batch), flattened to ``(N, in)``; or ``(in,)`` for one
        sample.
        y: ``(N, out)`` (``(N, T, out)``, ``(out,)``).

    Backward, with ``dout = dL/dy`` of y's shape, and x, dout seen as rows ``(rows, in)``,
    ``(rows, out)``:
        ``dx = dout W^T`` (returned in x's original shape),
        ``dW += x^T dout`` (summed over the rows), ``db += sum_rows dout``.

    The layer computes in its parameters' dtype: the input is cast to it (float64 weights
    compute in float64 whatever the input, as NumPy's promotion does in the book; integers
    become floats). ``dW`` and ``db`` accumulate into the same arrays (``grads``); ``forward``
    zeroes them first. ``apply(x)`` is the same y, caching nothing and touching no gradient
    (inference: a GPT's generation).
    """

    def __init__(self, W, b) -> None:
        super().__init__()
        self._init_weight_and_bias(W, b, "(in, out)", outputs_axis=1)
        self._x_shape: tuple | None = None
        self._x2d: np.ndarray | None = None

    def spec(self) -> dict:
        in_features, out_features = self.params["W"].shape
        return {"type": "Affine", "in_features": int(in_features), "out_features": int(out_features)}

    @classmethod
    def param_shapes(cls, spec: dict) -> dict:
        n_in, n_out = check_sizes(spec, "in_features", "out_features")
        return {"W": (n_in, n_out), "b": (n_out,)}

    @classmethod
    def from_spec(cls, spec: dict, dtype=np.float32) -> "Affine":
        return cls(np.zeros((spec["in_features"], spec["out_features"]), dtype), np.zeros(spec["out_features"], dtype))

    @property
    def x(self) -> np.ndarray | None:
        """The input of the last forward, as rows ``(rows, in)``."""
        return self._x2d

    def _rows(self, x):
        """``(rows, x_shape, out_shape)``: x cast to W's dtype as rows ``(rows, in)``, its shape,
        and y's shape. The check both forwards share."""
        W = self.params["W"]
        x = self._input(x).astype(W.dtype, copy=False)
        in_features, out_features = W.shape
        if x.ndim == 3 and x.shape[-1] == in_features:  # a sequence (N, T, in): the last axis
            return x.reshape(-1, in_features), x.shape, x.shape[:-1] + (out_features,)
        features = x.shape[0] if x.ndim == 1 else int(np.prod(x.shape[1:]))
        if features != in_features:
            raise ValueError(
                f"Affine: expected input of shape (N, {in_features}) (or (N, T, {in_features}), (N, *) with "
                f"{in_features} values per sample, or ({in_features},) for one sample), got {x.shape}")
        if x.ndim == 1:  # one sample
            return x.reshape(1, -1), x.shape, (out_features,)
        return x.reshape(x.shape[0], -1), x.shape, (x.shape[0], out_features)  # (N, *) flattened

    def _affine(self, rows: np.ndarray) -> np.ndarray:
        """``rows W + b``, ``(rows, out)``."""
        out = rows @ self.params["W"]
        out += self.params["b"]  # in place: one pass and no second (rows, out) array
        return out

    def apply(self, x):
        """``y = x W + b``, caching nothing and leaving the gradients alone: the forward
        formula, for inference (a GPT's generation)."""
        rows, _, out_shape = self._rows(x)
        return self._affine(rows).reshape(out_shape)

    def forward(self, x):
        """:meth:`apply`, keeping x's rows for backward (dW = x^T dout)."""
        rows, x_shape, out_shape = self._rows(x)
        self._zero_own_grads()
        self._x_shape, self._x2d, self._out_shape = x_shape, rows, out_shape
        return self._affine(rows).reshape(out_shape)

    #: Sequential may ask the first layer to skip dx, which nobody needs (see backward).
    can_skip_input_grad = True

    def backward(self, dout, input_grad: bool = True):
        """``dx``, after adding into dW and db; with ``input_grad=False`` only the parameter
        gradients are computed and None is returned (the first layer of a model)."""
        self._require_forward(self._x2d)
        W = self.params["W"]
        dout_rows = self._check_dout(dout, self._out_shape).reshape(-1, W.shape[1]).astype(W.dtype, copy=False)
        self.add_to_grad("W", self._x2d.T @ dout_rows)
        self.add_to_grad("b", column_sums(dout_rows))
        if not input_grad:
            return None
        return (dout_rows @ W.T).reshape(self._x_shape)
