"""The book's chapter-5 ``two_layer_net.TwoLayerNet``: ``Affine1 -> Relu1 -> Affine2`` and a
SoftmaxWithLoss, on handgrad's layers, with float64 parameters ``W1, b1, W2, b2``."""

from collections import OrderedDict

import numpy as np

from .common._network import BookNetwork, book_weight
from .common.layers import Affine, Relu, SoftmaxWithLoss


class TwoLayerNet(BookNetwork):
    """``TwoLayerNet(input_size, hidden_size, output_size, weight_init_std=0.01)``; weights
    ``weight_init_std * randn``, biases zero. x ``(N, input_size)``, scores ``(N, output_size)``."""

    def __init__(self, input_size, hidden_size, output_size, weight_init_std=0.01):
        self.layers = OrderedDict()
        self.layers["Affine1"] = Affine(book_weight((input_size, hidden_size), weight_init_std, input_size),
                                        np.zeros(hidden_size))
        self.layers["Relu1"] = Relu()
        self.layers["Affine2"] = Affine(book_weight((hidden_size, output_size), weight_init_std, hidden_size),
                                        np.zeros(output_size))
        self.last_layer = SoftmaxWithLoss()
        for idx, name in ((1, "Affine1"), (2, "Affine2")):
            self._own(f"W{idx}", self.layers[name], "W")
            self._own(f"b{idx}", self.layers[name], "b")

    @property
    def lastLayer(self):  # noqa: N802  (the book's name for it in this class)
        return self.last_layer
