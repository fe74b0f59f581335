"""What every layer shares: parameters and their gradients, mode, and the checks that turn
bad input into a message naming the layer."""

from __future__ import annotations

import numpy as np

from ..functions import as_float_array


class Layer:
    """A layer: ``y = forward(x)`` and ``dx = backward(dout)``.

    ``params`` and ``grads`` are dicts with the same keys (``"W"``, ``"b"``, ...). Their values
    are the layer's own arrays for its whole life: ``backward`` writes gradients into the
    ``grads`` arrays in place and an optimizer updates the ``params`` arrays in place, so any
    mapping that holds them (a model's ``params``) never falls out of sync.

    ``backward`` never writes into its argument or into what ``forward`` cached.
    """

    #: True for layers whose ``backward(dout, input_grad=False)`` may skip computing dx and
    #: return None; a model asks that of its first layer, whose dx nobody needs.
    can_skip_input_grad = False

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        # State that is saved with the model but not trained (BatchNorm's running statistics).
        self.buffers: dict[str, np.ndarray] = {}
        self.training = True

    @property
    def name(self) -> str:
        return type(self).__name__

    def forward(self, x):  # pragma: no cover - every layer overrides it
        raise NotImplementedError

    def backward(self, dout):  # pragma: no cover - every layer overrides it
        raise NotImplementedError

    def train(self, mode: bool = True) -> "Layer":
        """Switch to training mode (or to evaluation mode with ``mode=False``)."""
        self.training = bool(mode)
        return self

    def eval(self) -> "Layer":
        """Switch to evaluation mode."""
        return self.train(False)

    # --- description, for summaries and save/load ----------------------------------------------

    def spec(self) -> dict:
        """The layer's architecture as JSON-able data (no weights): ``{"type": name, ...}``."""
        return {"type": self.name}

    @classmethod
    def from_spec(cls, spec: dict, dtype=np.float32) -> "Layer":
        """A new layer of this type from :meth:`spec`'s output; parameters are zeros of ``dtype``
        until they are filled in."""
        return cls()

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={v.shape}" for k, v in self.params.items())
        return f"{self.name}({shapes})"

    # --- checks shared by the layers ---------------------------------------------------------

    def _input(self, x) -> np.ndarray:
        """``x`` as a float array (integers become float64), refusing empty or scalar input."""
        x = as_float_array(x, f"{self.name} input")
        if x.ndim == 0:
            raise ValueError(f"{self.name}: expected an array input, got a scalar")
        return x

    def _require_forward(self, cached) -> None:
        if cached is None:
            raise RuntimeError(f"{self.name}: backward() called before forward()")

    def _check_dout(self, dout, expected_shape: tuple) -> np.ndarray:
        dout = as_float_array(dout, f"{self.name} backward dout")
        if dout.shape != tuple(expected_shape):
            raise ValueError(
                f"{self.name}: backward expected dout of shape {tuple(expected_shape)} "
                f"(the shape forward returned), got {dout.shape}"
            )
        return dout


class WeightedLayer(Layer):
    """A layer with a weight ``W`` and a bias ``b`` (Affine, Convolution), exposing the names the
    book and the tutorial use: ``W``, ``b``, ``dW``, ``db``. Assigning ``layer.W = ...`` writes
    into the existing array, so ``params`` (and a model's mapping of it) keeps seeing the
    layer's values."""

    def _init_weight_and_bias(self, W, b, w_shape_name: str, outputs_axis: int) -> None:
        """Validate and adopt ``W`` (its dimensions named by ``w_shape_name``, e.g. "(in, out)")
        and ``b`` (one per output unit, ``W.shape[outputs_axis]`` of them); integers become
        float64, the bias takes W's dtype; the gradients start at zero."""
        W = as_float_array(W, f"{self.name} W")
        if W.ndim != w_shape_name.count(",") + 1:
            raise ValueError(f"{self.name}: W must have shape {w_shape_name}, got shape {W.shape}")
        b = as_float_array(b, f"{self.name} b")
        outputs = W.shape[outputs_axis]
        if b.shape != (outputs,):
            raise ValueError(f"{self.name}: b must have shape ({outputs},) to match W {W.shape}, got {b.shape}")
        self.params = {"W": W, "b": b.astype(W.dtype, copy=False)}
        self.grads = {"W": np.zeros_like(W), "b": np.zeros_like(self.params["b"])}

    @property
    def W(self) -> np.ndarray:
        return self.params["W"]

    @W.setter
    def W(self, value) -> None:
        self._assign("W", value)

    @property
    def b(self) -> np.ndarray:
        return self.params["b"]

    @b.setter
    def b(self, value) -> None:
        self._assign("b", value)

    @property
    def dW(self) -> np.ndarray:
        return self.grads["W"]

    @property
    def db(self) -> np.ndarray:
        return self.grads["b"]

    def _assign(self, key: str, value) -> None:
        value = np.asarray(value)
        if value.shape != self.params[key].shape:
            raise ValueError(f"{self.name}: {key} must keep shape {self.params[key].shape}, got {value.shape}")
        self.params[key][...] = value
