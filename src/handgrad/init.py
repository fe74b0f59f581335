"""Weight initialisation: He (Kaiming), Xavier (Glorot), plain normal.

An initializer is called as ``init(shape, rng, dtype)`` and returns a new array. ``fan_in`` is
the number of inputs of one output unit: ``in`` for an Affine ``W`` of shape ``(in, out)``,
``C * FH * FW`` for a filter bank ``(FN, C, FH, FW)``.

* ``he_normal``: N(0, 2 / fan_in), for Relu (He et al. 2015; the book's "He").
* ``he_uniform``: U(-b, b) with b = sqrt(6 / fan_in).
* ``xavier_normal``: N(0, 2 / (fan_in + fan_out)) (Glorot and Bengio 2010, as
  ``torch.nn.init.xavier_normal_``; the book's "Xavier" uses 1 / fan_in instead).
* ``xavier_uniform``: U(-b, b) with b = sqrt(6 / (fan_in + fan_out)).
* ``normal(std)``: N(0, std^2), the book's ``weight_init_std``.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

Initializer = Callable[[tuple, np.random.Generator, np.dtype], np.ndarray]

__all__ = ["pytorch_linear", "he_normal", "he_uniform", "xavier_normal", "xavier_uniform", "normal", "get", "as_generator"]


def as_generator(seed=None) -> np.random.Generator:
    """A ``numpy.random.Generator`` from a seed, ``None`` (fresh entropy) or a Generator itself."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def fans(shape: tuple) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of this shape: (in, out) or (FN, C, FH, FW).

    Example:
        >>> from handgrad.init import fans
        >>> fans((784, 100)), fans((30, 1, 5, 5))  # a filter sees C FH FW inputs
        ((784, 100), (25, 750))
    """
    if len(shape) == 2:
        return int(shape[0]), int(shape[1])
    if len(shape) >= 3:
        receptive = int(np.prod(shape[2:]))
        return int(shape[1]) * receptive, int(shape[0]) * receptive
    raise ValueError(f"init: cannot tell fan-in and fan-out of a weight of shape {shape}")


def _normal(shape, std, rng, dtype):
    return (std * rng.standard_normal(shape)).astype(dtype, copy=False)


def _uniform(shape, bound, rng, dtype):
    return rng.uniform(-bound, bound, shape).astype(dtype, copy=False)


def pytorch_linear(n_in: int, n_out: int, rng, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """``(W (n_in, n_out), b (n_out,))`` as PyTorch's ``nn.Linear`` starts them when nothing
    re-initialises them: both uniform in +-1/sqrt(n_in), W drawn first."""
    bound = 1 / np.sqrt(n_in)
    return _uniform((n_in, n_out), bound, rng, dtype), _uniform((n_out,), bound, rng, dtype)


def he_normal(shape, rng, dtype=np.float32):
    """He (Kaiming) normal: ``N(0, 2 / fan_in)``, for layers followed by ReLU.

    Example:
        >>> import numpy as np
        >>> from handgrad.init import he_normal
        >>> W = he_normal((784, 100), np.random.default_rng(0))
        >>> W.shape, W.dtype, round(float(W.std() * 28 / np.sqrt(2)), 1)  # std sqrt(2 / 784)
        ((784, 100), dtype('float32'), 1.0)
    """
    return _normal(shape, math.sqrt(2.0 / fans(shape)[0]), rng, dtype)


def he_uniform(shape, rng, dtype=np.float32):
    """He uniform: ``U(-b, b)`` with ``b = sqrt(6 / fan_in)`` (the same variance, 2 / fan_in)."""
    return _uniform(shape, math.sqrt(6.0 / fans(shape)[0]), rng, dtype)


def xavier_normal(shape, rng, dtype=np.float32):
    """Xavier (Glorot) normal: ``N(0, 2 / (fan_in + fan_out))``, for sigmoid and tanh layers."""
    fan_in, fan_out = fans(shape)
    return _normal(shape, math.sqrt(2.0 / (fan_in + fan_out)), rng, dtype)


def xavier_uniform(shape, rng, dtype=np.float32):
    """Xavier uniform: ``U(-b, b)`` with ``b = sqrt(6 / (fan_in + fan_out))``."""
    fan_in, fan_out = fans(shape)
    return _uniform(shape, math.sqrt(6.0 / (fan_in + fan_out)), rng, dtype)


def normal(std: float) -> Initializer:
    """N(0, std^2) whatever the shape: the book's ``weight_init_std * randn``."""
    if not std > 0:
        raise ValueError(f"init.normal: std must be positive, got {std}")

    def init(shape, rng, dtype=np.float32):
        return _normal(shape, std, rng, dtype)

    init.__name__ = f"normal({std})"
    return init


_BY_NAME = {
    "he": he_normal, "he_normal": he_normal, "he_uniform": he_uniform,
    "xavier": xavier_normal, "xavier_normal": xavier_normal, "xavier_uniform": xavier_uniform,
}


def get(init) -> Initializer:
    """An initializer from a name (``"he"``, ``"xavier_uniform"``, ...), a std (float), or itself."""
    if callable(init):
        return init
    if isinstance(init, (int, float)) and not isinstance(init, bool):
        return normal(float(init))
    if isinstance(init, str) and init.lower() in _BY_NAME:
        return _BY_NAME[init.lower()]
    raise ValueError(f"init: unknown initializer {init!r}; choose from {sorted(_BY_NAME)} or give a std")
