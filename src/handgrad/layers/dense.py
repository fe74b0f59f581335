"""The fully connected layer."""

from __future__ import annotations

import numpy as np

from .base import WeightedLayer


class Affine(WeightedLayer):
    """Fully connected layer ``y = x W + b`` (the book's convention: ``W`` is ``(in, out)``;
    PyTorch's ``Linear.weight`` stores its transpose).

    Shapes:
        W: ``(in, out)``; b: ``(out,)``.
        x: ``(N, in)``, or ``(N, *)`` with ``in`` features per sample (an image batch), which is
        flattened to ``(N, in)`` for the product; or ``(in,)`` for one sample.
        y: ``(N, out)`` (``(out,)`` for one sample).

    Backward, with ``dout = dL/dy`` of y's shape:
        ``dx = dout W^T`` (returned in x's original shape),
        ``dW = x^T dout`` (summed over the batch), ``db = sum_n dout_n``.

    Integer ``W``, ``b`` or ``x`` are computed in float64. The output has x's float dtype.
    ``dW`` and ``db`` are written into the same arrays after every backward (``grads``).
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
    def from_spec(cls, spec: dict, dtype=np.float32) -> "Affine":
        return cls(np.zeros((spec["in_features"], spec["out_features"]), dtype), np.zeros(spec["out_features"], dtype))

    @property
    def x(self) -> np.ndarray | None:
        """The input of the last forward, flattened to ``(N, in)``."""
        return self._x2d

    def _weights_as(self, dtype) -> tuple[np.ndarray, np.ndarray]:
        W, b = self.params["W"], self.params["b"]
        return W.astype(dtype, copy=False), b.astype(dtype, copy=False)

    def forward(self, x):
        x = self._input(x)
        in_features = self.params["W"].shape[0]
        features = x.shape[0] if x.ndim == 1 else int(np.prod(x.shape[1:]))
        if features != in_features:
            raise ValueError(
                f"Affine: expected input of shape (N, {in_features}) (or (N, *) with {in_features} "
                f"features per sample, or ({in_features},) for one sample), got {x.shape}"
            )
        x2d = x.reshape(1, -1) if x.ndim == 1 else x.reshape(x.shape[0], -1)
        W, b = self._weights_as(x.dtype)
        out = x2d @ W
        out += b  # in place: one pass and no second (N, out) array
        self._x_shape, self._x2d = x.shape, x2d
        return out[0] if x.ndim == 1 else out

    #: Sequential may ask the first layer to skip dx, which nobody needs (see backward).
    can_skip_input_grad = True

    def backward(self, dout, input_grad: bool = True):
        """``dx``, after writing dW and db; with ``input_grad=False`` only the parameter
        gradients are computed and None is returned (the first layer of a model)."""
        self._require_forward(self._x2d)
        out_features = self.params["W"].shape[1]
        one_sample = len(self._x_shape) == 1
        expected = (out_features,) if one_sample else (self._x_shape[0], out_features)
        dout2d = self._check_dout(dout, expected).reshape(-1, out_features)
        W, _ = self._weights_as(self._x2d.dtype)
        np.matmul(self._x2d.T, dout2d, out=self.grads["W"])
        np.sum(dout2d, axis=0, out=self.grads["b"])
        if not input_grad:
            return None
        dx = dout2d @ W.T
        return dx.reshape(self._x_shape)
