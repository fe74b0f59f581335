"""What every layer shares: parameters and their gradients, mode, and the checks that turn
bad input into a message naming the layer."""

from __future__ import annotations

import functools
from contextlib import contextmanager

import numpy as np

from .. import validate
from ..functions import as_float_array


#: Every layer type that ``handgrad.load`` may rebuild, by the name in a saved architecture. Filled
#: by :meth:`Layer.__init_subclass__`, the one place a layer type is registered: every public class
#: defined in a module of ``handgrad.layers``, and any other subclass declared with
#: ``class MyLayer(Layer, register=True)``.
LAYER_TYPES: dict[str, type] = {}


class Layer:
    """A layer: ``y = forward(x)`` and ``dx = backward(dout)``.

    ``params`` and ``grads`` are dicts with the same keys (``"W"``, ``"b"``, ...). Their values
    are the layer's own arrays for its whole life: an optimizer updates the ``params`` arrays in
    place, so any mapping that holds them (a model's ``params``) never falls out of sync.

    Gradients add up (contract v2): ``backward`` adds into ``grads`` (``+=``, or
    :meth:`add_to_grad`), so a weight used at several places (every time step, a residual branch,
    a tied output layer) receives the sum of its uses. A model zeroes every gradient at the start
    of its own ``backward``; a layer with parameters also zeroes its own in ``forward``, so that a
    bare layer used the book's way (forward, backward, read ``dW``, repeat) holds exactly one
    step's gradients. Those two zero a gradient lazily: the step's first :meth:`add_to_grad`
    assigns instead of adding, and reading ``grads`` writes the zeros of any gradient nothing has
    written yet, so nobody sees the difference, and no array is filled with zeros only to be
    added to (for an MLP's first weight, two passes over it a step). ``zero_grad()`` writes them
    at once.

    A layer may own child layers (``add_child``, in forward order); its ``params``, ``grads`` and
    ``buffers`` then list the children's too, by path: ``"attn.W_qkv"``, and each child is an
    attribute of its parent (``self.attn``). A composite writes its own forward and backward,
    calling its children by hand (backward in reverse order): ``dx = self.ln_f.backward(dx)``.
    Each layer knows the name it has in its parent, and a ValueError or TypeError raised by its
    forward or backward is raised again naming the whole path (``"layer 3.attn: ..."``), so no
    call needs wrapping.

    ``backward`` never writes into its argument or into what ``forward`` cached.
    """

    #: True for layers whose ``backward(dout, input_grad=False)`` may skip computing dx and
    #: return None; a model asks that of its first layer, whose dx nobody needs.
    can_skip_input_grad = False

    #: Names of own gradients zeroed lazily and not yet written this step (see the class docstring).
    _unwritten_grads: set | frozenset = frozenset()

    #: The name this layer has in the layer that owns it (``"attn"``, ``"0"``), set when it is
    #: adopted; None for a layer on its own (its errors then name only its type).
    _name_in_parent: str | None = None

    def __init_subclass__(cls, register: bool | None = None, **kwargs) -> None:
        """Register the new layer type (see :data:`LAYER_TYPES`), and make its ``forward`` and
        ``backward`` name the layer's path in the errors they raise."""
        super().__init_subclass__(**kwargs)
        for method_name in ("forward", "backward"):
            method = cls.__dict__.get(method_name)
            if method is not None and not getattr(method, "names_the_path", False):
                setattr(cls, method_name, _naming_the_path(method))
        if register is None:
            register = cls.__module__.startswith(__name__.rpartition(".")[0] + ".") and not cls.__name__.startswith("_")
        if register:
            known = LAYER_TYPES.get(cls.__name__)
            if known is not None and known.__qualname__ != cls.__qualname__:
                raise TypeError(f"layer type {cls.__name__!r} is already registered ({known.__module__}."
                                f"{known.__qualname__}); saved files name layers by type, so names must be unique")
            LAYER_TYPES[cls.__name__] = cls

    def __init__(self) -> None:
        self._own = {"params": {}, "grads": {}, "buffers": {}}
        self._children: dict[str, Layer] = {}
        self.training = True

    def __getattr__(self, name: str):
        # Children are attributes: self.ln_f, self.attn (only reached when nothing else has the name).
        children = self.__dict__.get("_children")
        if children is not None and name in children:
            return children[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # --- parameters, gradients and buffers: the layer's own, then its children's by path ------

    def _flat(self, kind: str) -> dict[str, np.ndarray]:
        own = self._own[kind]
        if not self._children:
            return own  # the layer's own dict: a leaf's params["W"] = ... stays visible
        flat = dict(own)
        for name, child in self._children.items():
            for key, value in getattr(child, kind).items():
                flat[f"{name}.{key}"] = value
        return flat

    @property
    def params(self) -> dict[str, np.ndarray]:
        return self._flat("params")

    @params.setter
    def params(self, value: dict) -> None:
        self._own["params"] = value

    @property
    def grads(self) -> dict[str, np.ndarray]:
        if self._unwritten_grads:
            self._write_zeros()
        return self._flat("grads")

    @grads.setter
    def grads(self, value: dict) -> None:
        self._own["grads"] = value
        self._unwritten_grads = frozenset()

    @property
    def buffers(self) -> dict[str, np.ndarray]:
        """State saved with the model but not trained (BatchNorm's running statistics)."""
        return self._flat("buffers")

    @buffers.setter
    def buffers(self, value: dict) -> None:
        self._own["buffers"] = value

    def zero_grad(self) -> None:
        """Set every gradient, this layer's and its children's, to zero (in place)."""
        self._zero_own_grads()
        self._write_zeros()
        for child in self._children.values():
            child.zero_grad()

    def _zero_grads_lazily(self) -> None:
        """Zero every gradient, this layer's and its children's, lazily (a model's backward
        starts with this): see the class docstring."""
        self._zero_own_grads()
        for child in self._children.values():
            child._zero_grads_lazily()

    def _zero_own_grads(self) -> None:
        """Zero this layer's own gradients lazily (a layer's forward starts with this)."""
        if self._own["grads"]:
            self._unwritten_grads = set(self._own["grads"])

    def _write_zeros(self) -> None:
        """Fill the own gradients zeroed lazily and not written since with zeros."""
        for name in self._unwritten_grads:
            self._own["grads"][name].fill(0)
        self._unwritten_grads = frozenset()

    def add_to_grad(self, name: str, value) -> None:
        """``grads[name] += value``: a use of the parameter ``name`` adds its share of the
        gradient. The step's first share is assigned instead (the gradient was zeroed lazily),
        which is the same sum without a pass of zeros."""
        grad = self._own["grads"][name]
        if name in self._unwritten_grads:
            self._unwritten_grads.discard(name)
            np.copyto(grad, value)
        else:
            grad += value

    # --- children --------------------------------------------------------------------------

    def add_child(self, name: str, layer: "Layer") -> "Layer":
        """Adopt ``layer`` as the child ``name`` (children are listed in forward order)."""
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"{self.name}: a child's name must be a non-empty string without '.', got {name!r}")
        if not isinstance(layer, Layer):
            raise TypeError(f"{self.name}: child {name!r} must be a handgrad Layer, got {type(layer).__name__}")
        if name in self._children:
            raise ValueError(f"{self.name}: there is already a child named {name!r}")
        self._children[name] = layer
        layer._name_in_parent = name
        return layer

    def children(self) -> list[tuple[str, "Layer"]]:
        """``(name, layer)`` of the direct children, in forward order."""
        return list(self._children.items())

    def named_layers(self, prefix: str = ""):
        """Every descendant as ``(path, layer)``, depth first in forward order (``"blocks.2.attn"``)."""
        for name, child in self._children.items():
            path = f"{prefix}{name}"
            yield path, child
            yield from child.named_layers(path + ".")

    def call_child(self, name: str, method, *args, **kwargs):
        """``method(*args)`` of the child ``name``: kept for code written before children named
        their own path in errors (they do now, so this is a plain call)."""
        return method(*args, **kwargs)

    @property
    def name(self) -> str:
        return type(self).__name__

    def forward(self, x):  # pragma: no cover - every layer overrides it
        raise NotImplementedError

    def backward(self, dout):  # pragma: no cover - every layer overrides it
        raise NotImplementedError

    def train(self, mode: bool = True) -> "Layer":
        """Switch to training mode (or to evaluation mode with ``mode=False``), children too."""
        self.training = bool(mode)
        for child in self._children.values():
            child.train(mode)
        return self

    def eval(self) -> "Layer":
        """Switch to evaluation mode."""
        return self.train(False)

    @contextmanager
    def mode(self, training: bool):
        """``with model.mode(False): ...`` runs the block in evaluation mode (``True``: training
        mode) and puts the layer (or model) back in the mode it had, even if the block raises."""
        was_training = self.training
        self.train(training)
        try:
            yield self
        finally:
            self.train(was_training)

    # --- description, for summaries and save/load ----------------------------------------------

    def spec(self) -> dict:
        """The layer's architecture as JSON-able data (no weights): ``{"type": name, ...}``."""
        return {"type": self.name}

    @classmethod
    def from_spec(cls, spec: dict, dtype=np.float32) -> "Layer":
        """A new layer of this type from :meth:`spec`'s output; parameters are zeros of ``dtype``
        until they are filled in."""
        return cls()

    @classmethod
    def param_shapes(cls, spec: dict) -> dict[str, tuple]:
        """The shapes of the parameters and buffers ``from_spec(spec)`` would allocate, keyed
        as in ``params``/``buffers``, computed from the spec alone: loading compares them with
        the stored tensors before anything is allocated. Raises ValueError for a bad spec.
        Layers with parameters override it."""
        return {}

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


def with_layer_path(error: Exception, name: str, raised_by: Layer | None = None) -> Exception:
    """A copy of ``error`` (ValueError or TypeError) whose message starts with the layer path,
    ``name`` in front of any path it already names: ``"layer 3.attn: MultiHeadAttention: ..."``.
    ``raised_by``: the layer whose name was just added (so that it adds it only once)."""
    path = f"{name}.{error.layer_path}" if hasattr(error, "layer_path") else str(name)
    message = getattr(error, "bare_message", str(error))
    try:
        new = type(error)(f"layer {path}: {message}")
    except TypeError:  # an exception type that takes other arguments: keep it as it is
        return error
    new.layer_path, new.bare_message, new.raised_by = path, message, raised_by
    return new


def _naming_the_path(method):
    """``method`` (a layer's forward or backward), raising its ValueError or TypeError again with
    the layer's name in its parent in front of the path (each level adds its own name once, so
    the message names the whole path from the model down)."""

    @functools.wraps(method)
    def naming_the_path(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (ValueError, TypeError) as error:
            name = self._name_in_parent
            if name is None or getattr(error, "raised_by", None) is self:  # alone, or said by an override
                raise
            raise with_layer_path(error, name, self) from error

    naming_the_path.names_the_path = True
    return naming_the_path


def check_sizes(spec: dict, *keys: str, limit: int = validate.MAX_SIZE) -> list[int]:
    """``spec[key]`` for each key, each a positive integer below ``limit``; ValueError naming
    the key otherwise. For ``param_shapes``, which must refuse a crafted size before any
    allocation (and for constructors, which apply the same limits: :mod:`handgrad.validate`)."""
    return [validate.positive_int(spec.get(key), key, limit=limit) for key in keys]


class WeightedLayer(Layer, register=False):
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
