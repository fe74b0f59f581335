"""Models: a sequence of layers ending in a loss layer.

Data flows one way: a model calls its layers; layers never know about the model.
"""

from __future__ import annotations

import numpy as np

from . import functions as F
from . import init as initializers
from .gradcheck import numerical_gradient as _numerical_gradient
from .layers import Affine, Layer, Relu, Sigmoid, SoftmaxWithLoss, Tanh

__all__ = ["Sequential", "mlp", "TwoLayerNet", "ACTIVATIONS"]

ACTIVATIONS = {"relu": Relu, "sigmoid": Sigmoid, "tanh": Tanh}


class Sequential:
    """Layers applied in order, then a loss layer.

    * ``predict(x)``: the scores (the last layer's output), no loss.
    * ``loss(x, t)``: ``predict`` then the loss layer; a Python float.
    * ``backward(dout=1.0)``: backpropagates from the loss through every layer, filling each
      layer's ``grads``; returns the gradient with respect to the input.
    * ``params`` / ``grads``: flat dicts keyed ``"<layer index>.<name>"`` (``"0.W"``) whose values
      are the layers' own arrays, so ``optimizer.update(model.params, model.grads)`` updates the
      layers in place.
    """

    def __init__(self, layers, loss: Layer | None = None) -> None:
        layers = list(layers)
        for index, layer in enumerate(layers):
            if not (callable(getattr(layer, "forward", None)) and callable(getattr(layer, "backward", None))):
                raise TypeError(f"Sequential: layer {index} ({type(layer).__name__}) has no forward/backward")
        self.layers = layers
        self.loss_layer = SoftmaxWithLoss() if loss is None else loss

    # --- parameters --------------------------------------------------------------------------

    @property
    def params(self) -> dict[str, np.ndarray]:
        return {f"{i}.{key}": value for i, layer in enumerate(self.layers) for key, value in layer.params.items()}

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return {f"{i}.{key}": value for i, layer in enumerate(self.layers) for key, value in layer.grads.items()}

    @property
    def num_params(self) -> int:
        return int(sum(value.size for value in self.params.values()))

    @property
    def input_size(self) -> int | None:
        """Features per sample that the first Affine expects (None if there is none)."""
        for layer in self.layers:
            if isinstance(layer, Affine):
                return int(layer.W.shape[0])
        return None

    # --- modes ---------------------------------------------------------------------------------

    @property
    def training(self) -> bool:
        return self.loss_layer.training

    def train(self, mode: bool = True) -> "Sequential":
        """Training mode for every layer (``mode=False``: evaluation mode)."""
        for layer in self.layers + [self.loss_layer]:
            layer.train(mode)
        return self

    def eval(self) -> "Sequential":
        return self.train(False)

    # --- forward and backward ------------------------------------------------------------------

    def predict(self, x) -> np.ndarray:
        for index, layer in enumerate(self.layers):
            x = self._call(index, layer.forward, x)
        return x

    def loss(self, x, t) -> float:
        return self.loss_layer.forward(self.predict(x), t)

    def backward(self, dout: float = 1.0) -> np.ndarray:
        dout = self.loss_layer.backward(dout)
        for index in range(len(self.layers) - 1, -1, -1):
            dout = self._call(index, self.layers[index].backward, dout)
        return dout

    def _call(self, index: int, method, value):
        try:
            return method(value)
        except (ValueError, TypeError) as error:
            # Say where in the model it happened; the layer's message says what.
            raise type(error)(f"layer {index}: {error}") from None

    def accuracy(self, x, t, batch_size: int = 1000) -> float:
        """Fraction of samples whose highest score is the target class, over every sample
        (the last partial batch included), in evaluation mode. ``t``: labels or rows."""
        t = np.asarray(t)
        labels = t.argmax(axis=-1) if t.ndim == 2 else t
        if len(labels) != len(x):
            raise ValueError(f"accuracy: {len(x)} samples but {len(labels)} labels")
        return float(np.mean(self.predict_classes(x, batch_size) == labels)) if len(x) else float("nan")

    def predict_classes(self, x, batch_size: int = 1000) -> np.ndarray:
        """Index of the highest score for every sample, computed in evaluation mode by batches."""
        was_training = self.training
        self.eval()
        try:
            return np.concatenate([self.predict(x[i:i + batch_size]).argmax(axis=-1)
                                   for i in range(0, len(x), batch_size)]) if len(x) else np.zeros(0, int)
        finally:
            self.train(was_training)

    def predict_proba(self, x, batch_size: int = 1000) -> np.ndarray:
        """Softmax probabilities for every sample, in evaluation mode."""
        was_training = self.training
        self.eval()
        try:
            return np.concatenate([F.softmax(self.predict(x[i:i + batch_size])) for i in range(0, len(x), batch_size)])
        finally:
            self.train(was_training)

    # --- description ---------------------------------------------------------------------------

    def spec(self) -> dict:
        return {"layers": [layer.spec() for layer in self.layers], "loss": self.loss_layer.spec()}

    def summary(self, input_shape: tuple | None = None) -> str:
        """A table: each layer, its output shape for one sample, its parameter count; the total."""
        if input_shape is None:
            if self.input_size is None:
                raise ValueError("summary: give input_shape (the model has no Affine layer to read it from)")
            input_shape = (self.input_size,)
        dtype = next(iter(self.params.values())).dtype if self.params else np.float32
        x = np.zeros((1,) + tuple(input_shape), dtype=dtype)
        rows = [("layer", "output shape", "params")]
        was_training = self.training
        self.eval()
        try:
            for index, layer in enumerate(self.layers):
                x = self._call(index, layer.forward, x)
                count = sum(v.size for v in layer.params.values())
                rows.append((f"{index} {layer!r}", str(("N",) + x.shape[1:]).replace("'", ""), f"{count:,}"))
        finally:
            self.train(was_training)
        rows.append(("loss " + self.loss_layer.name, "", ""))
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}" for a, b, c in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.append("-" * len(lines[0]))
        lines.append(f"total parameters: {self.num_params:,}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"{type(self).__name__}([{inner}], loss={self.loss_layer.name})"


def mlp(input_size: int, hidden_sizes, output_size: int, activation: str = "relu", init="he",
        seed=None, dtype=np.float32) -> Sequential:
    """A multilayer perceptron ``Affine -> activation -> ... -> Affine`` with SoftmaxWithLoss.

    ``hidden_sizes``: a list of widths (``[]`` gives logistic regression). ``init``: a name of
    :mod:`handgrad.init`, a std, or an initializer; biases start at 0. ``seed``: an int or a
    ``numpy.random.Generator``. ``dtype``: float32 for training, float64 for gradient checks.
    """
    if isinstance(hidden_sizes, int):
        hidden_sizes = [hidden_sizes]
    sizes = [input_size, *hidden_sizes, output_size]
    if any(not isinstance(s, (int, np.integer)) or s < 1 for s in sizes):
        raise ValueError(f"mlp: layer sizes must be positive integers, got {sizes}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"mlp: unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}")
    rng = initializers.as_generator(seed)
    make_weight = initializers.get(init)
    layers: list[Layer] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(Affine(make_weight((fan_in, fan_out), rng, dtype), np.zeros(fan_out, dtype)))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return Sequential(layers)


class TwoLayerNet(Sequential):
    """The book's chapter-5 network, ``Affine -> Relu -> Affine -> SoftmaxWithLoss``, with the
    book's interface: ``params`` keyed ``W1, b1, W2, b2``, ``gradient(x, t)`` by backprop and
    ``numerical_gradient(x, t)`` by central differences, both returning new dicts.

    ``W ~ weight_init_std * N(0, 1)``, ``b = 0``, float64 as in the book. It is a
    :class:`Sequential` over the same layers, so ``fit``, ``save`` and the optimizers take it.
    """

    _BOOK_NAMES = {"W1": "0.W", "b1": "0.b", "W2": "2.W", "b2": "2.b"}

    def __init__(self, input_size: int, hidden_size: int, output_size: int, weight_init_std: float = 0.01,
                 seed=None, dtype=np.float64) -> None:
        net = mlp(input_size, [hidden_size], output_size, activation="relu", init=weight_init_std, seed=seed, dtype=dtype)
        super().__init__(net.layers, net.loss_layer)

    @property
    def params(self) -> dict[str, np.ndarray]:
        flat = super().params
        return {book: flat[key] for book, key in self._BOOK_NAMES.items()}

    @property
    def grads(self) -> dict[str, np.ndarray]:
        flat = super().grads
        return {book: flat[key] for book, key in self._BOOK_NAMES.items()}

    def gradient(self, x, t) -> dict[str, np.ndarray]:
        self.loss(x, t)
        self.backward()
        return {name: grad.copy() for name, grad in self.grads.items()}

    def numerical_gradient(self, x, t) -> dict[str, np.ndarray]:
        return {name: _numerical_gradient(lambda _: self.loss(x, t), param) for name, param in self.params.items()}
