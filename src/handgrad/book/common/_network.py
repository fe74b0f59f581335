"""What the book's networks share, on handgrad's layers: the book's interface (``params``,
``predict``, ``loss``, ``accuracy``, ``gradient``, ``numerical_gradient``) over a list of layers.

A network names its parameters the book's way (``W1``, ``b1``, ``gamma1``, ...) and says which
layer owns each (:meth:`BookNetwork._own`). ``params[name]`` *is* that layer's array, so an
optimizer's in-place update (``params[key] -= lr * grads[key]``) and a numerical gradient's
in-place nudge both reach the layer, and nothing can fall out of sync.
"""

import numpy as np

from handgrad.init import normal as _normal

from .gradient import numerical_gradient as _numerical_gradient
from .layers import BatchNormalization, Dropout


def book_weight(shape, weight_init_std, fan_in):
    """``scale * randn(*shape)`` in float64 from NumPy's global generator (so ``np.random.seed``
    repeats a run), with the book's scales: a number is the std itself; ``'relu'``/``'he'``:
    ``sqrt(2 / fan_in)`` (He); ``'sigmoid'``/``'xavier'``: ``sqrt(1 / fan_in)`` (the book's Xavier)."""
    scale = weight_init_std
    if str(weight_init_std).lower() in ("relu", "he"):
        scale = np.sqrt(2.0 / fan_in)
    elif str(weight_init_std).lower() in ("sigmoid", "xavier"):
        scale = np.sqrt(1.0 / fan_in)
    return _normal(float(scale))(tuple(shape), np.random.mtrand._rand, np.float64)


class BookNetwork:
    """The book's network interface over ``self.layers`` (a list, or an OrderedDict whose values
    are the layers) and ``self.last_layer`` (a SoftmaxWithLoss).

    Subclasses build their layers, then call :meth:`_own` for each parameter in the order the
    book's ``gradient`` lists them. ``weight_decay_lambda`` adds ``0.5 lambda sum(W^2)`` over the
    weights named ``W...`` to the loss, and ``lambda W`` to their gradients.
    """

    weight_decay_lambda = 0.0
    #: Whether ``loss(x, t)`` runs Dropout and BatchNormalization in training mode by default
    #: (the book's DeepConvNet does; its MultiLayerNetExtend does not).
    train_in_loss = False

    def _own(self, name, layer, key):
        if not hasattr(self, "params"):
            self.params, self._owners = {}, {}
        self.params[name] = layer.params[key]
        self._owners[name] = (layer, key)

    def _layer_list(self):
        return list(self.layers.values()) if hasattr(self.layers, "values") else list(self.layers)

    def predict(self, x, train_flg=False):
        for layer in self._layer_list():
            x = layer.forward(x, train_flg) if isinstance(layer, (Dropout, BatchNormalization)) else layer.forward(x)
        return x

    def _weight_decay(self):
        if not self.weight_decay_lambda:
            return 0.0
        return 0.5 * self.weight_decay_lambda * sum(float(np.sum(W * W)) for name, W in self.params.items()
                                                    if name.startswith("W"))

    def loss(self, x, t, train_flg=None):
        """The mean cross-entropy of the batch (plus the weight decay term)."""
        train_flg = self.train_in_loss if train_flg is None else train_flg
        return self.last_layer.forward(self.predict(x, train_flg), t) + self._weight_decay()

    def accuracy(self, x, t, batch_size=None):
        """The fraction of ``x`` classified as ``t`` (labels or one-hot rows), predicted in
        batches of ``batch_size`` (all at once if None); every sample counts, the last partial
        batch too."""
        t = np.asarray(t)
        labels = t.argmax(axis=1) if t.ndim != 1 else t
        step = batch_size or max(len(x), 1)
        correct = 0
        for start in range(0, len(x), step):
            scores = self.predict(x[start:start + step], train_flg=False)
            correct += int(np.sum(scores.argmax(axis=1) == labels[start:start + step]))
        return correct / len(x)

    def gradient(self, x, t):
        """Every parameter's gradient by backprop, in a new dict keyed as ``params``."""
        self.loss(x, t, train_flg=True)
        dout = self.last_layer.backward(1.0)
        layers = self._layer_list()
        for index in range(len(layers) - 1, -1, -1):
            layer = layers[index]
            if index == 0 and getattr(layer, "can_skip_input_grad", False):
                layer.backward(dout, input_grad=False)  # nobody reads dL/dx of the input images
            else:
                dout = layer.backward(dout)
        grads = {}
        for name, (layer, key) in self._owners.items():
            grads[name] = layer.grads[key].copy()
            if self.weight_decay_lambda and name.startswith("W"):
                grads[name] += self.weight_decay_lambda * self.params[name]
        return grads

    def numerical_gradient(self, x, t):
        """Every parameter's gradient by central differences (slow: two losses per element)."""
        def loss_of_params(_):
            return self.loss(x, t, train_flg=True)

        return {name: _numerical_gradient(loss_of_params, self.params[name]) for name in self._owners}


#: Where ``save_params``/``load_params`` put and find relative file names; None: the working
#: directory. ``handgrad book-run`` points it at its output folder, so the book's checkout is
#: never written to.
PARAMS_DIR = None


def params_path(file_name):
    """The safetensors file that stands for the book's ``file_name``: ``params.pkl`` becomes
    ``params.safetensors`` (handgrad never writes or reads pickles), relative names resolved
    against :data:`PARAMS_DIR`."""
    from pathlib import Path

    path = Path(file_name)
    if path.suffix == ".pkl":
        path = path.with_suffix(".safetensors")
    if not path.is_absolute() and PARAMS_DIR is not None:
        path = Path(PARAMS_DIR) / path
    return path


class ParamsNotFound(FileNotFoundError):
    """``load_params`` found no safetensors file to read (``book-run`` says so in one line)."""


def _missing_params_message(file_name, path):
    """Why ``load_params(file_name)`` has nothing to read, and how to make it: the book's script
    that trains the file where the book ships it as a pickle."""
    from pathlib import Path

    from handgrad.book import BOOK_PICKLES

    trainer = BOOK_PICKLES.get(Path(file_name).name)
    if trainer:
        how = f"e.g. by handgrad book-run --out {path.parent} {trainer}"
    else:
        how = "e.g. in an earlier book-run with the same --out"
    message = (f"{path}: no such file (handgrad never unpickles; it saves and loads {path.name}, written by "
               f"save_params, {how})")
    if Path(file_name).suffix == ".pkl" and Path(file_name).is_file():
        message += f"; the pickle {Path(file_name).resolve()} is never read"
    return message


class SavesParams:
    """``save_params(file_name)`` / ``load_params(file_name)`` in handgrad's safetensors format."""

    def save_params(self, file_name="params.pkl"):
        from handgrad.serialize import write_safetensors

        path = params_path(file_name)
        write_safetensors(path, self.params, metadata={"format": "handgrad.book params"})
        return path

    def load_params(self, file_name="params.pkl"):
        """Read the parameters saved by :meth:`save_params` into this network's own arrays
        (shapes must match). A ``.pkl`` name is read as its ``.safetensors`` twin: pickles are
        never loaded."""
        from handgrad.serialize import SerializationError, read_safetensors

        path = params_path(file_name)
        if not path.is_file():
            raise ParamsNotFound(_missing_params_message(file_name, path))
        tensors, _ = read_safetensors(path)
        missing = sorted(set(self.params) - set(tensors))
        if missing:
            raise SerializationError(f"{path}: has no {', '.join(missing)} for this network")
        for name, param in self.params.items():
            if tensors[name].shape != param.shape:
                raise SerializationError(f"{path}: {name} has shape {tensors[name].shape}, this network's "
                                         f"is {param.shape}")
            param[...] = tensors[name]
