"""``Sequential``: layers applied in order, then a loss layer; ``mlp`` builds one, and the
tutorial's two-layer network (``TwoLayerNet``) is one with the book's names."""

from __future__ import annotations

import numpy as np

from .. import init as initializers
from .. import validate
from ..gradcheck import numerical_gradient as _numerical_gradient
from ..layers import Affine, BatchNorm, Dropout, Embedding, Layer, Relu, Sigmoid, Tanh
from .base import Model

__all__ = ["Sequential", "mlp", "TwoLayerNet", "two_layer_net_layers", "ACTIVATIONS"]

ACTIVATIONS = {"relu": Relu, "sigmoid": Sigmoid, "tanh": Tanh}


class Sequential(Model):
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
        super().__init__(loss)
        layers = list(layers)
        for index, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential: layer {index} must be a handgrad.layers.Layer, "
                                f"got {type(layer).__name__}")
        # The limits load applies, so a model that trains can be saved and loaded back.
        weight_decay = validate.real(weight_decay, "weight_decay", who="Sequential", low=0)
        if input_shape is not None:
            input_shape = tuple(validate.positive_int(d, "input_shape", who="Sequential") for d in input_shape)
        self.layers = layers  # each layer is named by its index, in its errors too: "layer 3.attn: ..."
        self.weight_decay = float(weight_decay)
        self.input_shape = None if input_shape is None else tuple(int(d) for d in input_shape)
        self.rng = initializers.as_generator(seed)
        self._check_each_layer_and_array_once()
        for _, layer in self.named_layers():
            if hasattr(layer, "rng") and layer.rng is None:
                layer.rng = self.rng

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

    # The list ``layers`` is the one truth: the children are its entries named "0", "1", ... (so
    # parameters are "0.W", as in every file saved since 0.1.0), and a learner who replaces
    # ``model.layers[1]`` replaces the child too. The mapping is rebuilt only when the list's
    # entries change (compared by identity), since training reads it several times a step.
    _children_of: tuple = ()
    _named_children: dict = {}

    @property
    def _children(self) -> dict[str, Layer]:
        return self._named_layer_list()

    def _named_layer_list(self) -> dict[str, Layer]:
        """``{"0": layers[0], ...}``, each layer told its name (its index) for its errors."""
        layers = tuple(self.layers)
        if layers != self._children_of:
            self._named_children = {str(index): layer for index, layer in enumerate(layers)}
            for name, layer in self._named_children.items():
                layer._name_in_parent = name
            self._children_of = layers
        return self._named_children

    @_children.setter
    def _children(self, value) -> None:  # Layer.__init__ starts with none; the list is set after
        pass

    @property
    def input_size(self) -> int | None:
        """Values per sample the model expects (None if it cannot tell)."""
        if self.input_shape is not None:
            return int(np.prod(self.input_shape))
        for layer in self.layers:
            if isinstance(layer, Affine):
                return int(layer.W.shape[0])
        return None

    # --- forward and backward ------------------------------------------------------------------

    def predict(self, x) -> np.ndarray:
        scores = x
        for step in self.forward_steps(x):
            scores = step[2]  # (index, layer, output): the last layer's output
        return scores

    def forward_steps(self, x):
        """The forward pass one layer at a time: yields ``(index, layer, output)`` for each
        layer in order, the last output being :meth:`predict`'s. What ``trace``, ``plot`` and
        the web page show of every layer comes from here."""
        self._named_layer_list()  # each layer names its index in its errors, should the list have changed
        for index, layer in enumerate(self.layers):
            x = layer.forward(x)
            yield index, layer, x

    def backward_steps(self, dscores, input_grad: bool = True):
        """The backward pass one layer at a time, from the gradient of the scores (the last
        layer's output) down: yields ``(index, layer, dx)`` from the last layer to the first,
        ``dx`` being what the layer sends back (dL/d its input). Each layer adds into its own
        gradients; when the walk ends, the weight penalty's gradient is added too.

        ``input_grad=False`` (what training uses) stops at the first layer with parameters,
        which skips computing its dx: below it nothing needs a gradient (a Reshape or Embedding
        before an LSTM, say), so the layers below it are not visited."""
        layers = self.layers
        self._named_layer_list()  # each layer names its index in its errors, should the list have changed
        first = next((i for i, layer in enumerate(layers) if layer.params), 0) if not input_grad else 0
        grad = dscores
        for index in range(len(layers) - 1, first - 1, -1):
            layer = layers[index]
            if index == first and not input_grad and layer.can_skip_input_grad:
                grad = layer.backward(grad, input_grad=False)
            else:
                grad = layer.backward(grad)
            yield index, layer, grad
        self.add_weight_decay_grads()

    def layer_forward(self, index: int, x) -> np.ndarray:
        """``self.layers[index].forward(x)``; a ValueError or TypeError it raises says
        ``"layer <index>: "`` before its message (the layer's message says what went wrong,
        this says where in the model)."""
        self._named_layer_list()  # each layer names its index in its errors, should the list have changed
        return self.layers[index].forward(x)

    def layer_backward(self, index: int, dout, input_grad: bool = True) -> np.ndarray | None:
        """``self.layers[index].backward(dout)``, errors named as in :meth:`layer_forward`.
        ``input_grad=False`` lets a layer that can (``can_skip_input_grad``) skip computing
        dx and return None."""
        self._named_layer_list()  # each layer names its index in its errors, should the list have changed
        layer = self.layers[index]
        if not input_grad and layer.can_skip_input_grad:
            return layer.backward(dout, input_grad=False)
        return layer.backward(dout)

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

    def backward_from_scores(self, dscores, input_grad: bool = True) -> np.ndarray | None:
        """:meth:`backward_steps` to the end; returns dL/dx (None with ``input_grad=False``)."""
        dx = dscores
        for step in self.backward_steps(dscores, input_grad=input_grad):
            dx = step[2]  # (index, layer, dx): what the first layer sent back
        return dx if input_grad else None

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
        dtype = self.dtype
        if self.layers and isinstance(self.layers[0], Embedding):
            dtype = np.int64  # token ids stay integers
        x = np.zeros((1,) + tuple(input_shape), dtype=dtype)
        rows = [("layer", "output shape", "params")]
        with self.mode(False):
            for index, layer, output in self.forward_steps(x):
                count = sum(v.size for v in layer.params.values())
                rows.append((f"{index} {layer!r}", str(("N",) + output.shape[1:]).replace("'", ""), f"{count:,}"))
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
        rng, draw = initializers.as_generator(seed), initializers.get(weight_init_std)
        layers = two_layer_net_layers(input_size, hidden_size, output_size, lambda shape: draw(shape, rng, dtype))
        super().__init__(list(layers.values()))


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


def two_layer_net_layers(input_size: int, hidden_size: int, output_size: int, make_weight, affine=Affine,
                         relu=Relu) -> dict[str, Layer]:
    """The tutorial's two-layer network, defined once: ``"Affine1" -> "Relu1" -> "Affine2"``
    (then a SoftmaxWithLoss), by the book's names. ``make_weight(shape)`` draws each weight, W1
    then W2 (``weight_init_std * randn`` in the book); biases start at zero in W's dtype.

    :class:`TwoLayerNet` is built from it with handgrad's layers and its own generator; the
    book's ``two_layer_net.TwoLayerNet`` (``handgrad book-run``'s stand-in) with the book-module
    layers (``affine``, ``relu``) and NumPy's global generator, as the book's scripts expect."""
    W1 = make_weight((input_size, hidden_size))
    W2 = make_weight((hidden_size, output_size))
    return {"Affine1": affine(W1, np.zeros(hidden_size, W1.dtype)), "Relu1": relu(),
            "Affine2": affine(W2, np.zeros(output_size, W2.dtype))}
