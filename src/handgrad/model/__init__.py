"""Models: a sequence of layers ending in a loss layer.

Data flows one way: a model calls its layers; layers never know about the model.
"""

from __future__ import annotations


import numpy as np

from .. import functions as F
from .. import init as initializers
from ..gradcheck import numerical_gradient as _numerical_gradient
from ..layers.base import with_layer_path
from ..layers import (Affine, BatchNorm, Convolution, Dropout, Embedding, Flatten, Layer, Pooling, Relu, Sigmoid,
                     SoftmaxWithLoss, Tanh)

__all__ = ["Sequential", "mlp", "TwoLayerNet", "SimpleConvNet", "DeepConvNet", "ACTIVATIONS"]

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

    ``weight_decay=λ`` is the book's L2 regularisation: ``λ/2 sum ||W||^2`` over the weights
    ``W`` (not biases or BatchNorm's gamma/beta) joins the loss, and ``λ W`` their gradients. (An
    optimizer's ``weight_decay`` instead decays every parameter, as torch.optim does; use one or
    the other.) ``seed`` seeds the model's generator, which every Dropout layer draws from.
    ``input_shape``: one sample's shape, ``(C, H, W)`` for ConvNets (inferred for MLPs).

    ``layers`` and ``loss`` must be :class:`handgrad.layers.Layer` instances (subclass ``Layer``
    to write your own); anything else is refused here, not halfway through a training run.

    Example:
        With zero weights every class gets the same score, so the loss is ``log 3``:

        >>> import numpy as np
        >>> import handgrad as hg
        >>> from handgrad.layers import Affine, Relu
        >>> model = hg.Sequential([Affine(np.zeros((4, 5)), np.zeros(5)), Relu(), Affine(np.zeros((5, 3)), np.zeros(3))])
        >>> round(model.loss(np.ones((2, 4)), np.array([0, 2])), 6)
        1.098612
        >>> _ = model.backward()
        >>> {name: grad.shape for name, grad in model.grads.items()}
        {'0.W': (4, 5), '0.b': (5,), '2.W': (5, 3), '2.b': (3,)}
    """

    def __init__(self, layers, loss: Layer | None = None, weight_decay: float = 0.0, seed=None,
                 input_shape: tuple | None = None) -> None:
        if isinstance(layers, Layer):
            raise TypeError(f"Sequential: layers must be a list of layers, got a single {layers.name}; "
                            "wrap it in a list")
        layers = list(layers)
        for index, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential: layer {index} must be a handgrad.layers.Layer, "
                                f"got {type(layer).__name__}")
        if loss is not None and not isinstance(loss, Layer):
            raise TypeError(f"Sequential: loss must be a handgrad.layers.Layer (e.g. SoftmaxWithLoss()), "
                            f"got {type(loss).__name__}")
        if not weight_decay >= 0:
            raise ValueError(f"Sequential: weight_decay must be >= 0, got {weight_decay}")
        self.layers = layers
        self.loss_layer = SoftmaxWithLoss() if loss is None else loss
        self.weight_decay = float(weight_decay)
        self.input_shape = None if input_shape is None else tuple(int(d) for d in input_shape)
        self.rng = initializers.as_generator(seed)
        self._check_each_layer_and_array_once()
        for _, layer in self.named_layers():
            if hasattr(layer, "rng") and layer.rng is None:
                layer.rng = self.rng

    def named_layers(self):
        """Every layer as ``(path, layer)``, nested ones included: ``("3", block)``,
        ``("3.attn", attention)``, ..., in forward order."""
        for index, layer in enumerate(self.layers):
            yield str(index), layer
            yield from layer.named_layers(f"{index}.")

    def _check_each_layer_and_array_once(self) -> None:
        # A layer keeps one call's values between forward and backward, so one layer object at
        # two places would backpropagate the wrong values; and one array under two names would
        # be updated (and decayed, and saved) twice. Weight sharing has one owner (contract v2).
        seen_layers, seen_arrays = {}, {}
        for path, layer in self.named_layers():
            if id(layer) in seen_layers:
                raise ValueError(f"Sequential: the same {layer.name} object is at {seen_layers[id(layer)]} and at "
                                 f"{path}; use two layers (tie weights through one owner)")
            seen_layers[id(layer)] = path
        for name, array in self.params.items():
            if id(array) in seen_arrays:
                raise ValueError(f"Sequential: one array is listed as {seen_arrays[id(array)]} and as {name}; a "
                                 "shared weight must have one owner (the other user adds into the owner's grads)")
            seen_arrays[id(array)] = name

    # --- parameters --------------------------------------------------------------------------

    @property
    def params(self) -> dict[str, np.ndarray]:
        return {f"{i}.{key}": value for i, layer in enumerate(self.layers) for key, value in layer.params.items()}

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return {f"{i}.{key}": value for i, layer in enumerate(self.layers) for key, value in layer.grads.items()}

    @property
    def buffers(self) -> dict[str, np.ndarray]:
        """State saved with the model but not trained (BatchNorm's running statistics), by path."""
        return {f"{i}.{key}": value for i, layer in enumerate(self.layers) for key, value in layer.buffers.items()}

    @property
    def num_params(self) -> int:
        return int(sum(value.size for value in self.params.values()))

    @property
    def input_size(self) -> int | None:
        """Values per sample the model expects (None if it cannot tell)."""
        if self.input_shape is not None:
            return int(np.prod(self.input_shape))
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

    mode = Layer.mode  # ``with model.mode(False): ...``: evaluation mode for the block, then restored

    # --- forward and backward ------------------------------------------------------------------

    def predict(self, x) -> np.ndarray:
        for index in range(len(self.layers)):
            x = self.layer_forward(index, x)
        return x

    def loss(self, x, t) -> float:
        return self.loss_layer.forward(self.predict(x), t) + self.weight_penalty()

    def layer_forward(self, index: int, x) -> np.ndarray:
        """``self.layers[index].forward(x)``; a ValueError or TypeError it raises is raised
        again with ``"layer <index>: "`` before its message (the layer's message says what went
        wrong, this says where in the model), chained to the original."""
        return self._where(index, self.layers[index].forward, x)

    def layer_backward(self, index: int, dout, input_grad: bool = True) -> np.ndarray | None:
        """``self.layers[index].backward(dout)``, errors named as in :meth:`layer_forward`.
        ``input_grad=False`` lets a layer that can (``can_skip_input_grad``) skip computing
        dx and return None."""
        layer = self.layers[index]
        if not input_grad and layer.can_skip_input_grad:
            return self._where(index, lambda d: layer.backward(d, input_grad=False), dout)
        return self._where(index, layer.backward, dout)

    @staticmethod
    def _where(index: int, method, value):
        try:
            return method(value)
        except (ValueError, TypeError) as error:
            raise with_layer_path(error, str(index)) from error

    def decayed_weights(self) -> dict[str, np.ndarray]:
        """The weights ``weight_decay`` applies to, keyed by path (``"0.W"``): every weight
        matrix or filter bank (parameters of two or more dimensions), not biases and not
        normalisation gains. The values are the layers' arrays."""
        return {name: value for name, value in self.params.items() if value.ndim >= 2}

    def weight_penalty(self) -> float:
        """``λ/2 sum ||W||^2`` over :meth:`decayed_weights` (0 without weight decay)."""
        if not self.weight_decay:
            return 0.0
        return 0.5 * self.weight_decay * float(sum(np.sum(W ** 2) for W in self.decayed_weights().values()))

    def add_weight_decay_grads(self) -> None:
        """Add the penalty's gradient ``λ W`` into each decayed weight's gradient (nothing
        without weight decay); :meth:`backward` ends with it."""
        if not self.weight_decay:
            return
        grads = self.grads
        for name, weight in self.decayed_weights().items():
            grads[name] += self.weight_decay * weight

    def zero_grad(self) -> None:
        """Set every gradient to zero: layers add into their gradients (contract v2), and
        :meth:`backward` starts with this so that it leaves exactly one step's gradients."""
        for layer in self.layers:
            layer.zero_grad()

    def backward(self, dout: float = 1.0, input_grad: bool = True) -> np.ndarray | None:
        """Backpropagate; returns dL/dx. ``input_grad=False`` (what ``fit`` uses) stops at the
        first layer with parameters, which skips computing its dx: below it nothing needs a
        gradient (a Reshape or Embedding before an LSTM, say); None is returned."""
        self.zero_grad()
        dout = self.loss_layer.backward(dout)
        first = next((i for i, layer in enumerate(self.layers) if layer.params), 0) if not input_grad else 0
        for index in range(len(self.layers) - 1, first - 1, -1):
            dout = self.layer_backward(index, dout, input_grad=input_grad or index > first)
        self.add_weight_decay_grads()
        return dout if input_grad else None

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
        if not len(x):
            return np.zeros(0, int)
        with self.mode(False):
            return np.concatenate([self.predict(x[i:i + batch_size]).argmax(axis=-1)
                                   for i in range(0, len(x), batch_size)])

    def predict_proba(self, x, batch_size: int = 1000) -> np.ndarray:
        """Softmax probabilities for every sample, in evaluation mode."""
        with self.mode(False):
            return np.concatenate([F.softmax(self.predict(x[i:i + batch_size])) for i in range(0, len(x), batch_size)])

    # --- description ---------------------------------------------------------------------------

    def spec(self) -> dict:
        return {"layers": [layer.spec() for layer in self.layers], "loss": self.loss_layer.spec(),
                "weight_decay": self.weight_decay, "input_shape": self.input_shape and list(self.input_shape)}

    def summary(self, input_shape: tuple | None = None) -> None:
        """Print :meth:`summary_text` (Keras's ``model.summary()`` convention: it prints and
        returns None)."""
        print(self.summary_text(input_shape))

    def summary_text(self, input_shape: tuple | None = None) -> str:
        """A table as a string: each layer, its output shape for one sample, its parameter
        count, and below a composite layer its nested layers by path (``1.body.0``); then the
        total. ``input_shape``: one sample's shape, needed only when the model has no
        ``input_shape`` and no Affine layer to read it from."""
        if input_shape is None:
            input_shape = self.input_shape
        if input_shape is None:
            if self.input_size is None:
                raise ValueError("summary: give input_shape (the model has no Affine layer to read it from)")
            input_shape = (self.input_size,)
        dtype = next(iter(self.params.values())).dtype if self.params else np.float32
        if self.layers and isinstance(self.layers[0], Embedding):
            dtype = np.int64  # token ids stay integers
        x = np.zeros((1,) + tuple(input_shape), dtype=dtype)
        rows = [("layer", "output shape", "params")]
        with self.mode(False):
            for index, layer in enumerate(self.layers):
                x = self.layer_forward(index, x)
                count = sum(v.size for v in layer.params.values())
                rows.append((f"{index} {layer!r}", str(("N",) + x.shape[1:]).replace("'", ""), f"{count:,}"))
                for path, child in layer.named_layers(f"{index}."):
                    label = repr(child) if not child.children() else child.name
                    rows.append((f"  {path} {label}", "", f"{sum(v.size for v in child.params.values()):,}"))
        rows.append(("loss " + self.loss_layer.name, "", ""))
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}".rstrip() for a, b, c in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.append("-" * len(lines[0]))
        lines.append(f"total parameters: {self.num_params:,}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"{type(self).__name__}([{inner}], loss={self.loss_layer.name})"


def mlp(input_size: int, hidden_sizes, output_size: int, activation: str = "relu", init="he",
        seed=None, dtype=np.float32, batchnorm: bool = False, dropout: float = 0.0,
        weight_decay: float = 0.0) -> Sequential:
    """A multilayer perceptron ``Affine -> [BatchNorm] -> activation -> [Dropout] -> ... -> Affine``
    with SoftmaxWithLoss.

    ``hidden_sizes``: a list of widths (``[]`` gives logistic regression). ``init``: a name of
    :mod:`handgrad.init`, a std, or an initializer; biases start at 0. ``seed``: an int or a
    ``numpy.random.Generator``, for the weights and then for dropout. ``dtype``: float32 for
    training, float64 for gradient checks. ``batchnorm`` and ``dropout=p`` add those layers to
    every hidden layer; ``weight_decay``: see :class:`Sequential`.

    Example:
        >>> import numpy as np
        >>> import handgrad as hg
        >>> model = hg.mlp(64, [100], 10, seed=0)
        >>> model
        Sequential([Affine(W=(64, 100), b=(100,)), Relu(), Affine(W=(100, 10), b=(10,))], loss=SoftmaxWithLoss)
        >>> model.predict(np.zeros((2, 64), np.float32)).shape
        (2, 10)
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
            if batchnorm:
                layers.append(BatchNorm(fan_out, dtype=dtype))
            layers.append(ACTIVATIONS[activation]())
            if dropout:
                layers.append(Dropout(dropout))
    return Sequential(layers, weight_decay=weight_decay, seed=rng)


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


def _conv(filters, channels, size, rng, init, dtype, stride=1, pad=0) -> Convolution:
    W = initializers.get(init)((filters, channels, size, size), rng, dtype)
    return Convolution(W, np.zeros(filters, dtype), stride=stride, pad=pad)


def _affine(fan_in, fan_out, rng, init, dtype) -> Affine:
    return Affine(initializers.get(init)((fan_in, fan_out), rng, dtype), np.zeros(fan_out, dtype))


def _pool_then_relu() -> list[Layer]:
    """The book's ``Relu -> Pooling(2x2, stride 2)``, applied in the other order.

    Max pooling and Relu commute: ``max(max(a, 0), max(b, 0)) = max(max(a, b), 0)``, so the
    outputs are equal, and so are the gradients (the gradient reaches the window's first
    maximum when that maximum is > 0, and nothing otherwise, in either order). Relu then runs
    on the pooled map, four times smaller. tests/test_conv_speed_paths.py checks both orders."""
    return [Pooling(2, 2, stride=2), Relu()]


class SimpleConvNet(Sequential):
    """The book's chapter-7 ConvNet: ``Convolution(30 filters 5x5) -> Relu -> Pooling(2x2, stride 2)
    -> Affine(100) -> Relu -> Affine(10) -> SoftmaxWithLoss``, built with the pooling before the
    first Relu (the same function and gradients, less work; see :func:`_pool_then_relu`).

    ``init="he"`` by default (the book uses ``weight_init_std=0.01``; pass ``init=0.01`` for that).
    Input: ``(N, C, H, W)`` images of ``input_dim = (C, H, W)``.
    """

    def __init__(self, input_dim=(1, 28, 28), filter_num: int = 30, filter_size: int = 5, pad: int = 0,
                 stride: int = 1, hidden_size: int = 100, output_size: int = 10, init="he", seed=None,
                 weight_decay: float = 0.0, dtype=np.float32) -> None:
        rng = initializers.as_generator(seed)
        c, h, w = input_dim
        conv_h, conv_w = (h + 2 * pad - filter_size) // stride + 1, (w + 2 * pad - filter_size) // stride + 1
        pooled = filter_num * (conv_h // 2) * (conv_w // 2)
        super().__init__([
            _conv(filter_num, c, filter_size, rng, init, dtype, stride=stride, pad=pad), *_pool_then_relu(), Flatten(),
            _affine(pooled, hidden_size, rng, init, dtype), Relu(),
            _affine(hidden_size, output_size, rng, init, dtype),
        ], weight_decay=weight_decay, seed=rng, input_shape=input_dim)


class DeepConvNet(Sequential):
    """The book's chapter-8 VGG-like network (He initialisation, as in the book):

    ``conv3x3(16) relu conv3x3(16) relu pool | conv3x3(32) relu conv3x3(32, pad 2) relu pool |
    conv3x3(64) relu conv3x3(64) relu pool | affine(50) relu dropout(0.5) affine(10) dropout(0.5)``

    (pools are 2x2 with stride 2; the book's dropout after the last Affine is kept). The Relu
    before each pool is built after it (the same function and gradients, less work; see
    :func:`_pool_then_relu`).
    """

    def __init__(self, input_dim=(1, 28, 28), hidden_size: int = 50, output_size: int = 10, dropout: float = 0.5,
                 init="he", seed=None, weight_decay: float = 0.0, dtype=np.float32) -> None:
        rng = initializers.as_generator(seed)
        c, h, w = input_dim
        layers: list[Layer] = []
        channels = c
        for filters, (pad1, pad2) in ((16, (1, 1)), (32, (1, 2)), (64, (1, 1))):
            layers += [_conv(filters, channels, 3, rng, init, dtype, pad=pad1), Relu(),
                       _conv(filters, filters, 3, rng, init, dtype, pad=pad2), *_pool_then_relu()]
            channels = filters
            # two 3x3 convolutions (each: size + 2 pad - 2), then the 2x2 pool halves the size
            h, w = (h + 2 * (pad1 + pad2) - 4) // 2, (w + 2 * (pad1 + pad2) - 4) // 2
        layers += [Flatten(), _affine(channels * h * w, hidden_size, rng, init, dtype), Relu(), Dropout(dropout),
                   _affine(hidden_size, output_size, rng, init, dtype), Dropout(dropout)]
        super().__init__(layers, weight_decay=weight_decay, seed=rng, input_shape=input_dim)


from .seq2seq import Seq2seq  # noqa: E402  (it builds on the layers above)
from .gpt import GPT  # noqa: E402

#: Every model type besides Sequential that ``handgrad.load`` may rebuild, by the name its spec
#: gives (``{"model": "Seq2seq", ...}``). One place, as LAYER_TYPES is for layers.
MODEL_TYPES = {cls.__name__: cls for cls in (Seq2seq, GPT)}

__all__ += ["Seq2seq", "GPT", "MODEL_TYPES"]
