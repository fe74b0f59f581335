"""Layers that only rearrange values: a per-sample reshape, consecutive steps side by side, the
last step of a sequence, and the latest token ids at every position.

Their backward moves ``dout`` back to where each value came from; they have no parameters.
"""

from __future__ import annotations

import numpy as np

from .. import validate
from .base import Layer


def _per_sample_shape(shape, owner: str) -> tuple:
    """``shape`` as a tuple of positive ints, at most one of them -1 (inferred, as NumPy's)."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or not shape:
        raise ValueError(f"{owner}: shape must be a non-empty tuple of sizes, got {shape!r:.60}")
    sizes = []
    for size in shape:
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not (size >= 1 or size == -1) \
                or size >= 2**40:
            raise ValueError(f"{owner}: shape must hold positive sizes (one may be -1), got {tuple(shape)!r:.60}")
        sizes.append(int(size))
    if sizes.count(-1) > 1:
        raise ValueError(f"{owner}: at most one size may be -1 (inferred), got {tuple(sizes)}")
    return tuple(sizes)


class Reshape(Layer):
    """Reshape every sample: ``(N, *) -> (N, *shape)``, keeping the batch axis (PyTorch's
    ``nn.Unflatten(1, shape)`` generalised). One size of ``shape`` may be -1, inferred.

    Sequential MNIST reads each image as 28 rows of 28 pixels: ``Reshape((28, 28))`` turns
    ``(N, 784)`` into ``(N, 28, 28)``, a sequence of T = 28 steps of D = 28 values.

    Shapes: x ``(N, d1, d2, ...)`` with as many values per sample as ``shape`` holds; y
    ``(N, *shape)``. Backward: ``dx`` is ``dout (N, *shape)`` reshaped to x's shape.

    The values keep their dtype (integer token ids stay integers).
    """

    def __init__(self, shape) -> None:
        super().__init__()
        self.shape = _per_sample_shape(shape, "Reshape")
        self._x_shape = None
        self._out_shape = None

    def spec(self) -> dict:
        return {"type": "Reshape", "shape": list(self.shape)}

    @classmethod
    def param_shapes(cls, spec: dict) -> dict:
        _per_sample_shape(spec.get("shape"), "Reshape")
        return {}

    @classmethod
    def from_spec(cls, spec: dict, dtype=np.float32) -> Reshape:
        return cls(spec.get("shape"))

    def __repr__(self) -> str:
        return f"Reshape({self.shape})"

    def _output_shape(self, x_shape: tuple) -> tuple:
        per_sample = int(np.prod(x_shape[1:]))
        known = int(np.prod([s for s in self.shape if s != -1]))
        shape = self.shape
        if -1 in shape and known and per_sample % known == 0:
            shape = tuple(per_sample // known if s == -1 else s for s in shape)
        if int(np.prod(shape)) != per_sample or -1 in shape:
            raise ValueError(
                f"Reshape: expected input of shape (N, *) with {'a multiple of ' if -1 in self.shape else ''}"
                f"{known} values per sample, to reshape each to {self.shape}; got {x_shape} "
                f"({per_sample} values per sample)")
        return (x_shape[0],) + shape

    def forward(self, x):
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise TypeError(f"Reshape: expected a numeric array, got dtype {x.dtype}")
        if x.ndim < 1:
            raise ValueError("Reshape: expected an input with a batch axis (N, *), got a scalar")
        out_shape = self._output_shape(x.shape)
        self._x_shape, self._out_shape = x.shape, out_shape
        return x.reshape(out_shape)

    def backward(self, dout):
        self._require_forward(self._x_shape)
        return self._check_dout(dout, self._out_shape).reshape(self._x_shape)


class LastStep(Layer):
    """The last time step of a sequence: ``y = x[:, T - 1]`` (a many-to-one RNN: the LSTM's last
    hidden state feeds the classifier).

    Shapes: x ``(N, T, *)`` (usually ``(N, T, H)``) with T >= 1; y ``(N, *)``.
    Backward: ``dx`` is zeros of x's shape with ``dout`` at ``t = T - 1`` (the other steps did
    not reach the output).
    """

    def __init__(self) -> None:
        super().__init__()
        self._x_shape = None

    def forward(self, x):
        x = self._input(x)
        if x.ndim < 2 or x.shape[1] == 0:
            raise ValueError(f"LastStep: expected input of shape (N, T, *) with T >= 1, got {x.shape}")
        self._x_shape = x.shape
        return x[:, -1].copy()  # a copy: writing into y must not change the layer below's output

    def backward(self, dout):
        self._require_forward(self._x_shape)
        dout = self._check_dout(dout, (self._x_shape[0],) + self._x_shape[2:])
        dx = np.zeros(self._x_shape, dout.dtype)
        dx[:, -1] = dout
        return dx


class FlattenConsecutive(Layer):
    """Put every ``n`` consecutive time steps side by side: ``(N, T, C) -> (N, T // n, C n)``
    (Karpathy's ``FlattenConsecutive`` from makemore part 5, "Building a WaveNet": the layers of a
    hierarchical model fuse two characters, then two pairs, then two quadruples).

    ``y[b, s] = [x[b, s n] | x[b, s n + 1] | ... | x[b, s n + n - 1]]``: group ``s`` of the
    output holds steps ``s n .. s n + n - 1`` of the input, their C values each, one after the
    other. When only one group is left (``T // n == 1``) the time axis is dropped, as Karpathy's
    ``squeeze(1)``, so that the classifier after it sees ``(N, C n)``.

    Shapes: ``n`` a positive integer; x ``(N, T, C)`` with T a multiple of n; y
    ``(N, T // n, C n)``, or ``(N, C n)`` when ``T == n``. Backward: ``dx`` is ``dout`` reshaped
    to x's shape ``(N, T, C)``, the exact inverse (every value of x reaches exactly one value of
    y, so its gradient is that value's). No parameters.

    The values keep their dtype (integer token ids stay integers), as with :class:`Reshape`.
    """

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = validate.positive_int(n, "n", who="FlattenConsecutive")
        self._x_shape = None
        self._out_shape = None

    def spec(self) -> dict:
        return {"type": "FlattenConsecutive", "n": self.n}

    @classmethod
    def param_shapes(cls, spec: dict) -> dict:
        validate.positive_int(spec.get("n"), "n", who="FlattenConsecutive")
        return {}

    @classmethod
    def from_spec(cls, spec: dict, dtype=np.float32) -> FlattenConsecutive:
        return cls(spec.get("n"))

    def __repr__(self) -> str:
        return f"FlattenConsecutive({self.n})"

    def output_shape(self, x_shape: tuple) -> tuple:
        """The output's shape for an input of shape ``x_shape`` ``(N, T, C)``; ValueError naming
        both shapes if T is not a multiple of n."""
        if len(x_shape) != 3 or x_shape[1] == 0 or x_shape[1] % self.n:
            raise ValueError(f"FlattenConsecutive: expected input of shape (N, T, C) with T a multiple of "
                             f"n = {self.n}, got {tuple(x_shape)}")
        batch, steps, channels = x_shape
        groups = steps // self.n
        return (batch, channels * self.n) if groups == 1 else (batch, groups, channels * self.n)

    def forward(self, x):
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise TypeError(f"FlattenConsecutive: expected a numeric array, got dtype {x.dtype}")
        out_shape = self.output_shape(x.shape)
        self._x_shape, self._out_shape = x.shape, out_shape
        # Row-major memory holds step t's C values right after step t - 1's, so grouping n steps
        # is a reshape: a view of x, no copy (Karpathy's x.view); no layer writes into its input.
        return x.reshape(out_shape)

    def backward(self, dout):
        self._require_forward(self._x_shape)
        dout = self._check_dout(dout, self._out_shape)
        return dout.reshape(self._x_shape).copy()  # a new array, never a view of the caller's dout


class PreviousTokens(Layer):
    """At every position, the ``block_size`` latest token ids, newest first: ``(N, T) -> (N, T,
    block_size)`` with ``y[n, t, k] = x[n, t - k]``, and ``blank`` where ``t - k < 0`` (before the
    sequence starts). makemore.py's MLP (Bengio et al. 2003, over whole words) embeds these and
    concatenates them: its ``idx = torch.roll(idx, 1, 1); idx[:, 0] = <BLANK>``, ``block_size``
    times, where ``<BLANK>`` is an id of its own (the vocabulary size).

    Ids only (integers, kept in their dtype): nothing has a gradient with respect to them, so
    backward returns None, as :class:`Embedding`'s does. No parameters.
    """

    #: A model may ask for no input gradient; there never is one (see backward).
    can_skip_input_grad = True

    def __init__(self, block_size: int, blank: int) -> None:
        super().__init__()
        self.block_size = validate.positive_int(block_size, "block_size", who="PreviousTokens")
        self.blank = validate.integer(blank, "blank", who="PreviousTokens", minimum=0)
        self._out_shape = None

    def spec(self) -> dict:
        return {"type": "PreviousTokens", "block_size": self.block_size, "blank": self.blank}

    @classmethod
    def param_shapes(cls, spec: dict) -> dict:
        cls(spec.get("block_size"), spec.get("blank"))  # the same checks, nothing allocated
        return {}

    @classmethod
    def from_spec(cls, spec: dict, dtype=np.float32) -> PreviousTokens:
        return cls(spec.get("block_size"), spec.get("blank"))

    def __repr__(self) -> str:
        return f"PreviousTokens({self.block_size}, blank={self.blank})"

    def forward(self, ids):
        ids = np.asarray(ids)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"PreviousTokens: token ids must be integers, got dtype {ids.dtype}")
        if ids.ndim != 2:
            raise ValueError(f"PreviousTokens: expected token ids of shape (N, T), got shape {ids.shape}")
        if np.iinfo(ids.dtype).max < self.blank:
            ids = ids.astype(np.int64)  # the blank id must fit (uint8 ids and a blank of 300, say)
        steps = ids.shape[1]
        out = np.full(ids.shape + (self.block_size,), self.blank, ids.dtype)
        for k in range(min(self.block_size, steps)):
            out[:, k:, k] = ids[:, :steps - k]  # k steps back; the first k positions keep the blank
        self._out_shape = out.shape
        return out

    def backward(self, dout, input_grad: bool = True):
        """None: integer ids have no gradient. ``dout`` is checked against y's shape, unless it
        is None, what an :class:`Embedding` above it sends back (its ids have none either)."""
        self._require_forward(self._out_shape)
        if dout is not None:
            self._check_dout(dout, self._out_shape)
        return None
