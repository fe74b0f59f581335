"""The book's chapter-7 ``simple_convnet.SimpleConvNet``: ``Conv1 -> Relu1 -> Pool1 -> Affine1 ->
Relu2 -> Affine2`` and a SoftmaxWithLoss, on handgrad's layers (float64 parameters)."""

from collections import OrderedDict

import numpy as np

from .common._network import BookNetwork, SavesParams, book_weight
from .common.layers import Affine, Convolution, Pooling, Relu, SoftmaxWithLoss


class SimpleConvNet(SavesParams, BookNetwork):
    """``SimpleConvNet(input_dim=(1, 28, 28), conv_param={'filter_num': 30, 'filter_size': 5,
    'pad': 0, 'stride': 1}, hidden_size=100, output_size=10, weight_init_std=0.01)``.

    x ``(N, C, H, W)`` with ``input_dim = (C, H, W)``; the 2x2 pooling halves the convolution's
    ``OH x OW`` output (rounding down). Parameters ``W1, b1`` (filters ``(FN, C, FS, FS)``),
    ``W2, b2``, ``W3, b3``. ``save_params``/``load_params`` use safetensors files.
    """

    def __init__(self, input_dim=(1, 28, 28), conv_param=None, hidden_size=100, output_size=10,
                 weight_init_std=0.01):
        conv_param = conv_param or {"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1}
        filters, size = conv_param["filter_num"], conv_param["filter_size"]
        pad, stride = conv_param["pad"], conv_param["stride"]
        channels, height, width = input_dim
        conv_h, conv_w = (height + 2 * pad - size) // stride + 1, (width + 2 * pad - size) // stride + 1
        pooled = filters * (conv_h // 2) * (conv_w // 2)
        self.layers = OrderedDict()
        self.layers["Conv1"] = Convolution(
            book_weight((filters, channels, size, size), weight_init_std, channels * size * size), np.zeros(filters),
            stride, pad)
        self.layers["Relu1"] = Relu()
        self.layers["Pool1"] = Pooling(pool_h=2, pool_w=2, stride=2)
        self.layers["Affine1"] = Affine(book_weight((pooled, hidden_size), weight_init_std, pooled),
                                        np.zeros(hidden_size))
        self.layers["Relu2"] = Relu()
        self.layers["Affine2"] = Affine(book_weight((hidden_size, output_size), weight_init_std, hidden_size),
                                        np.zeros(output_size))
        self.last_layer = SoftmaxWithLoss()
        for idx, name in enumerate(("Conv1", "Affine1", "Affine2"), start=1):
            self._own(f"W{idx}", self.layers[name], "W")
            self._own(f"b{idx}", self.layers[name], "b")

    def accuracy(self, x, t, batch_size=100):
        return super().accuracy(x, t, batch_size)
