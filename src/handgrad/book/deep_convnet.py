"""The book's chapter-8 ``deep_convnet.DeepConvNet`` on handgrad's layers (float64 parameters):

``conv - relu - conv - relu - pool`` three times (16, 16 | 32, 32 | 64, 64 filters of 3x3; the
fourth convolution pads by 2), then ``affine(hidden_size) - relu - dropout(0.5) - affine -
dropout(0.5)`` and a SoftmaxWithLoss; He initialisation.
"""

import numpy as np

from .common._network import BookNetwork, SavesParams, book_weight
from .common.layers import Affine, Convolution, Dropout, Pooling, Relu, SoftmaxWithLoss

_DEFAULT_CONV = (
    {"filter_num": 16, "filter_size": 3, "pad": 1, "stride": 1},
    {"filter_num": 16, "filter_size": 3, "pad": 1, "stride": 1},
    {"filter_num": 32, "filter_size": 3, "pad": 1, "stride": 1},
    {"filter_num": 32, "filter_size": 3, "pad": 2, "stride": 1},
    {"filter_num": 64, "filter_size": 3, "pad": 1, "stride": 1},
    {"filter_num": 64, "filter_size": 3, "pad": 1, "stride": 1},
)


class DeepConvNet(SavesParams, BookNetwork):
    """``DeepConvNet(input_dim=(1, 28, 28), conv_param_1=..., ..., conv_param_6=...,
    hidden_size=50, output_size=10)``. ``layers`` is a list, as in the book; ``loss`` runs the
    Dropouts in training mode, ``predict`` and ``accuracy`` in evaluation mode.
    Parameters ``W1..W6`` (filters), ``W7, W8`` (Affine), and their biases."""

    train_in_loss = True

    def __init__(self, input_dim=(1, 28, 28), conv_param_1=None, conv_param_2=None, conv_param_3=None,
                 conv_param_4=None, conv_param_5=None, conv_param_6=None, hidden_size=50, output_size=10):
        given = (conv_param_1, conv_param_2, conv_param_3, conv_param_4, conv_param_5, conv_param_6)
        conv_params = [p or default for p, default in zip(given, _DEFAULT_CONV)]
        channels, height, width = input_dim
        self.layers = []
        weighted = []
        for idx, param in enumerate(conv_params):
            filters, size, pad, stride = param["filter_num"], param["filter_size"], param["pad"], param["stride"]
            fan_in = channels * size * size
            conv = Convolution(book_weight((filters, channels, size, size), "he", fan_in), np.zeros(filters),
                               stride, pad)
            self.layers += [conv, Relu()]
            weighted.append(conv)
            channels = filters
            height, width = (height + 2 * pad - size) // stride + 1, (width + 2 * pad - size) // stride + 1
            if idx % 2 == 1:
                self.layers.append(Pooling(pool_h=2, pool_w=2, stride=2))
                height, width = height // 2, width // 2
        flat = channels * height * width
        hidden = Affine(book_weight((flat, hidden_size), "he", flat), np.zeros(hidden_size))
        output = Affine(book_weight((hidden_size, output_size), "he", hidden_size), np.zeros(output_size))
        self.layers += [hidden, Relu(), Dropout(0.5), output, Dropout(0.5)]
        weighted += [hidden, output]
        self.last_layer = SoftmaxWithLoss()
        for idx, layer in enumerate(weighted, start=1):
            self._own(f"W{idx}", layer, "W")
            self._own(f"b{idx}", layer, "b")

    def accuracy(self, x, t, batch_size=100):
        return super().accuracy(x, t, batch_size)
