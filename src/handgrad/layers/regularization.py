"""Layers that behave differently in training and evaluation: Dropout and BatchNorm."""

from __future__ import annotations

import numpy as np

from .base import Layer, check_sizes


class Dropout(Layer):
    """Inverted dropout: while training, each unit is kept with probability ``1 - p`` and scaled
    by ``1 / (1 - p)``, so the expected output equals the input and evaluation is the identity.

    ``y = x * m`` with ``m = [u >= p] / (1 - p)``, ``u ~ U[0, 1)``; ``dx = dout * m``.
    The random numbers come from ``rng`` (a ``numpy.random.Generator``); a model hands every
    Dropout its own seeded generator. Shapes: any.
    """

    def __init__(self, p: float = 0.5, rng=None) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = float(p)
        self.rng = rng
        self._scale = None  # the mask m of the last training forward, or 1.0 in eval mode
        self.batch_shard = None

    def spec(self) -> dict:
        return {"type": self.name, "p": self.p}

    @classmethod
    def from_spec(cls, spec: dict, dtype=np.float32):
        return cls(p=spec["p"])

    def forward(self, x):
        x = self._input(x)
        if not self.training or self.p == 0.0:
            self._scale = np.ones((), dtype=x.dtype)
            self._shape = x.shape
            return x
        if self.rng is None:
            self.rng = np.random.default_rng()
        uniform = np.float32 if x.dtype == np.float32 else np.float64
        if self.batch_shard is None:
            keep = self.rng.random(x.shape, dtype=uniform) >= self.p
        else:
            keep = self._own_rows_of_global_mask(x.shape, uniform, *self.batch_shard)
        self._scale = keep.astype(x.dtype) / x.dtype.type(1.0 - self.p)
        self._shape = x.shape
        return x * self._scale

    def backward(self, dout):
        self._require_forward(self._scale)
        return self._check_dout(dout, self._shape) * self._scale

    def _own_rows_of_global_mask(self, shape, uniform, start: int, stop: int, total: int) -> np.ndarray:
        # One sample may be several rows of the input (an (N*T, D) reshape of (N, T, D)).
        samples = stop - start
        if samples < 1 or shape[0] % samples:
            raise ValueError(f"Dropout: batch_shard {start}:{stop} of {total} samples does not match an input of "
                             f"shape {shape} (its first axis must be a multiple of {samples})")
        rows = shape[0] // samples
        u = self.rng.random((total * rows,) + tuple(shape[1:]), dtype=uniform)
        return u[start * rows:stop * rows] >= self.p


class BatchNorm(Layer):
    """Batch normalisation (Ioffe and Szegedy 2015) for ``(N, D)``, ``(N, T, C)`` or
    ``(N, C, H, W)`` input: statistics per feature D; per feature C over N and T (a sequence's
    features, the last axis, as Karpathy's ``BatchNorm1d`` in makemore part 5, "Building a
    WaveNet"; PyTorch's ``BatchNorm1d`` wants ``(N, C, L)`` instead, so a mirror transposes); or
    per channel C over N, H and W.

    Training: ``x_hat = (x - mean) / sqrt(var + eps)`` with the batch's mean and biased variance,
    ``y = gamma x_hat + beta``; the running statistics move by ``momentum`` (PyTorch's
    convention): ``running = (1 - momentum) running + momentum batch``, the variance unbiased
    (``m / (m - 1)`` times the batch's, m values per feature). Evaluation uses the running
    statistics.

    Backward, training (m values per feature, ``g = dout * gamma``):
    ``dx = (m g - sum(g) - x_hat sum(g x_hat)) / (m sqrt(var + eps))``,
    ``dgamma += sum(dout x_hat)``, ``dbeta += sum(dout)`` (``forward`` zeroes them first).
    The layer computes in its parameters' dtype (the input is cast to it).
    """

    def __init__(self, num_features: int, momentum: float = 0.1, eps: float = 1e-5, dtype=np.float32) -> None:
        super().__init__()
        if num_features < 1 or not 0.0 <= momentum <= 1.0 or eps <= 0:
            raise ValueError(f"BatchNorm: need num_features >= 1, 0 <= momentum <= 1, eps > 0; "
                             f"got {num_features}, {momentum}, {eps}")
        self.num_features, self.momentum, self.eps = int(num_features), float(momentum), float(eps)
        self.params = {"gamma": np.ones(num_features, dtype), "beta": np.zeros(num_features, dtype)}
        self.grads = {key: np.zeros_like(value) for key, value in self.params.items()}
        self.buffers = {"running_mean": np.zeros(num_features, dtype), "running_var": np.ones(num_features, dtype)}
        self._cache = None

    def spec(self) -> dict:
        return {"type": self.name, "num_features": self.num_features, "momentum": self.momentum, "eps": self.eps}

    @classmethod
    def param_shapes(cls, spec: dict) -> dict:
        (n,) = check_sizes(spec, "num_features")
        return {"gamma": (n,), "beta": (n,), "running_mean": (n,), "running_var": (n,)}

    @classmethod
    def from_spec(cls, spec: dict, dtype=np.float32):
        return cls(spec["num_features"], momentum=spec["momentum"], eps=spec["eps"], dtype=dtype)

    def _axes(self, x):
        """The axes the statistics are taken over: all but the feature axis."""
        feature_axis = 2 if x.ndim == 3 else 1
        if x.ndim not in (2, 3, 4) or x.shape[feature_axis] != self.num_features:
            raise ValueError(f"BatchNorm: expected input of shape (N, {self.num_features}), (N, T, "
                             f"{self.num_features}) or (N, {self.num_features}, H, W), got {x.shape}")
        return {2: (0,), 3: (0, 1), 4: (0, 2, 3)}[x.ndim]

    def _per_feature(self, v, ndim):
        """A per-feature vector shaped to broadcast against the input."""
        return v.reshape(1, -1, 1, 1) if ndim == 4 else v

    def forward(self, x):
        x = self._input(x).astype(self.params["gamma"].dtype, copy=False)
        axes = self._axes(x)
        self._zero_own_grads()
        shape = lambda v: self._per_feature(v.astype(x.dtype, copy=False), x.ndim)  # noqa: E731
        if self.training:
            m = x.size // self.num_features
            if m < 2:
                raise ValueError(f"BatchNorm: training needs more than one value per feature, got input {x.shape}")
            mean = x.mean(axis=axes)
            centred = x - shape(mean)
            var = (centred * centred).mean(axis=axes)
            self.buffers["running_mean"] *= 1.0 - self.momentum
            self.buffers["running_mean"] += self.momentum * mean
            self.buffers["running_var"] *= 1.0 - self.momentum
            self.buffers["running_var"] += self.momentum * var * (m / (m - 1))
        else:
            centred = x - shape(self.buffers["running_mean"])
            var = self.buffers["running_var"].astype(x.dtype)
        inv_std = 1.0 / np.sqrt(var + x.dtype.type(self.eps))
        x_hat = centred * shape(inv_std)
        self._cache = (x_hat, inv_std, axes, self.training)
        return shape(self.params["gamma"]) * x_hat + shape(self.params["beta"])

    def backward(self, dout):
        self._require_forward(self._cache)
        x_hat, inv_std, axes, trained = self._cache
        dout = self._check_dout(dout, x_hat.shape).astype(x_hat.dtype, copy=False)
        shape = lambda v: self._per_feature(v.astype(x_hat.dtype, copy=False), x_hat.ndim)  # noqa: E731
        self.add_to_grad("gamma", np.sum(dout * x_hat, axis=axes))
        self.add_to_grad("beta", np.sum(dout, axis=axes))
        g = dout * shape(self.params["gamma"])
        if not trained:  # eval mode: a fixed affine map per feature
            return g * shape(inv_std)
        m = x_hat.size // self.num_features
        sum_g = np.sum(g, axis=axes)
        sum_g_xhat = np.sum(g * x_hat, axis=axes)
        return (m * g - shape(sum_g) - x_hat * shape(sum_g_xhat)) * shape(inv_std / m)
