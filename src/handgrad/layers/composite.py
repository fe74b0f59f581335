"""Layers made of layers: a chain of layers used as one, and a residual connection.

A composite owns its children (``add_child``; each is then an attribute, ``self.body``) and
writes its own forward and backward by hand, calling the children in order and, for backward, in
reverse order (llm.c's spirit: no tape, no autograd). Its ``params`` and ``grads`` list the
children's by path (``"body.0.W"``).
"""

from __future__ import annotations

import numpy as np

from .base import LAYER_TYPES, Layer  # filled as each layer module is imported (Layer.__init_subclass__)


def layer_from_spec(spec, dtype=np.float32) -> Layer:
    """A layer rebuilt from its spec through the one registry, ``handgrad.layers.LAYER_TYPES``."""
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind not in LAYER_TYPES:
        raise ValueError(f"unknown layer type {str(kind)[:80]!r}; known: {', '.join(sorted(LAYER_TYPES))}")
    return LAYER_TYPES[kind].from_spec(spec, dtype)


def child_param_shapes(name: str, spec) -> dict:
    """``param_shapes`` of a child's spec, keyed by the child's path (``"body.0.W"``)."""
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind not in LAYER_TYPES:
        raise ValueError(f"child {name} has unknown layer type {str(kind)[:80]!r}")
    return {f"{name}.{key}": shape for key, shape in LAYER_TYPES[kind].param_shapes(spec).items()}


class Chain(Layer):
    """Layers applied in order, used as one layer (PyTorch's ``nn.Sequential``; handgrad's
    ``Sequential`` is a whole model, with a loss). Children are named ``"0"``, ``"1"``, ...,
    or as given by a dict ``{name: layer}`` (GPT's MLP: ``c_fc``, ``gelu``, ``c_proj``).

    Forward: ``y = f_k(... f_1(f_0(x)))``. Backward, in reverse order:
    ``dx = f_0'(... f_k'(dout))``, each child adding into its own gradients.
    """

    def __init__(self, layers) -> None:
        super().__init__()
        if isinstance(layers, Layer):
            layers = [layers]
        named = layers.items() if isinstance(layers, dict) else ((str(i), layer) for i, layer in enumerate(layers))
        for name, layer in named:
            self.add_child(name, layer)
        if not self._children:
            raise ValueError("Chain: needs at least one layer")

    @property
    def layers(self) -> list[Layer]:
        return list(self._children.values())

    def spec(self) -> dict:
        spec = {"type": self.name, "layers": [layer.spec() for layer in self.layers]}
        names = list(self._children)
        if names != [str(i) for i in range(len(names))]:
            spec["names"] = names
        return spec

    @classmethod
    def _layer_specs(cls, spec: dict) -> list:
        layers = spec.get("layers")
        if not isinstance(layers, list) or not layers:
            raise ValueError(f"{cls.__name__} needs a non-empty list of layers")
        return layers

    @classmethod
    def _names(cls, spec: dict) -> list:
        count = len(cls._layer_specs(spec))
        names = spec.get("names", [str(i) for i in range(count)])
        if not (isinstance(names, list) and len(names) == count and all(isinstance(n, str) for n in names)
                and len(set(names)) == count):
            raise ValueError(f"{cls.__name__} names must be {count} distinct strings, got {str(names)[:60]}")
        return names

    @classmethod
    def param_shapes(cls, spec: dict) -> dict:
        shapes = {}
        for name, layer_spec in zip(cls._names(spec), cls._layer_specs(spec)):
            shapes.update(child_param_shapes(name, layer_spec))
        return shapes

    @classmethod
    def from_spec(cls, spec: dict, dtype=np.float32) -> "Chain":
        return cls({name: layer_from_spec(layer_spec, dtype)
                    for name, layer_spec in zip(cls._names(spec), cls._layer_specs(spec))})

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dout):
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def __repr__(self) -> str:
        return f"{self.name}([{', '.join(repr(layer) for layer in self.layers)}])"


class Residual(Layer):
    """A residual connection around ``body`` (a layer, or a list of layers chained):
    ``y = x + body(x)``.

    Backward: x reaches y along two paths, so its gradient is their sum:
    ``dx = dout + body'(dout)``. Shapes: the body must keep x's shape.
    """

    def __init__(self, body) -> None:
        super().__init__()
        self.add_child("body", body if isinstance(body, Layer) else Chain(body))
        self._x_shape = None

    def spec(self) -> dict:
        return {"type": self.name, "body": self.body.spec()}

    @classmethod
    def param_shapes(cls, spec: dict) -> dict:
        return child_param_shapes("body", spec.get("body"))

    @classmethod
    def from_spec(cls, spec: dict, dtype=np.float32) -> "Residual":
        return cls(layer_from_spec(spec.get("body"), dtype))

    def forward(self, x):
        x = np.asarray(x)
        fx = self.body.forward(x)
        if np.shape(fx) != x.shape:
            raise ValueError(f"Residual: the body must keep the input's shape {x.shape}, it returned {np.shape(fx)}")
        self._x_shape = x.shape
        return x + fx

    def backward(self, dout):
        self._require_forward(self._x_shape)
        dout = self._check_dout(dout, self._x_shape)
        return dout + self.body.backward(dout)

    def __repr__(self) -> str:
        return f"{self.name}({self.body!r})"
