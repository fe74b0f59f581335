"""The book's chapter-5 ``two_layer_net.TwoLayerNet``: ``Affine1 -> Relu1 -> Affine2`` and a
SoftmaxWithLoss, on handgrad's layers, with float64 parameters ``W1, b1, W2, b2``."""

from collections import OrderedDict

from handgrad.model.sequential import two_layer_net_layers

from .common._network import BookNetwork, book_weight
from .common.layers import Affine, Relu, SoftmaxWithLoss


class TwoLayerNet(BookNetwork):
    """``TwoLayerNet(input_size, hidden_size, output_size, weight_init_std=0.01)``; weights
    ``weight_init_std * randn`` from NumPy's global generator (so ``np.random.seed`` repeats a
    run), biases zero. x ``(N, input_size)``, scores ``(N, output_size)``. The network is
    :func:`handgrad.model.sequential.two_layer_net_layers`, the one definition that
    ``handgrad.TwoLayerNet`` is built from too, here with the book-module layers."""

    def __init__(self, input_size, hidden_size, output_size, weight_init_std=0.01):
        self.layers = OrderedDict(two_layer_net_layers(
            input_size, hidden_size, output_size, lambda shape: book_weight(shape, weight_init_std, shape[0]),
            affine=Affine, relu=Relu))
        self.last_layer = SoftmaxWithLoss()
        for idx, name in ((1, "Affine1"), (2, "Affine2")):
            self._own(f"W{idx}", self.layers[name], "W")
            self._own(f"b{idx}", self.layers[name], "b")

    @property
    def lastLayer(self):  # noqa: N802  (the book's name for it in this class)
        return self.last_layer
