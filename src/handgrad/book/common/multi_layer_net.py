"""The book's ``common.multi_layer_net.MultiLayerNet``: a fully connected network
``(Affine -> activation) x len(hidden_size_list) -> Affine -> SoftmaxWithLoss`` on handgrad's
layers, with optional weight decay."""

from collections import OrderedDict

import numpy as np

from ._network import BookNetwork, book_weight
from .layers import Affine, BatchNormalization, Dropout, Relu, Sigmoid, SoftmaxWithLoss

ACTIVATIONS = {"relu": Relu, "sigmoid": Sigmoid}


class MultiLayerNet(BookNetwork):
    """``MultiLayerNet(input_size, hidden_size_list, output_size, activation='relu',
    weight_init_std='relu', weight_decay_lambda=0)``.

    Layers ``Affine1, Activation_function1, ..., Affine{L}`` (L = len(hidden_size_list) + 1),
    parameters ``W1, b1, ..., W{L}, b{L}`` in float64; ``weight_init_std``: a std, ``'relu'``/``'he'``
    or ``'sigmoid'``/``'xavier'``. Shapes: x ``(N, input_size)``, scores ``(N, output_size)``.
    """

    def __init__(self, input_size, hidden_size_list, output_size, activation="relu", weight_init_std="relu",
                 weight_decay_lambda=0, use_dropout=False, dropout_ration=0.5, use_batchnorm=False):
        if activation not in ACTIVATIONS:
            raise ValueError(f"MultiLayerNet: activation must be 'relu' or 'sigmoid', got {activation!r}")
        self.input_size, self.output_size = input_size, output_size
        self.hidden_size_list = list(hidden_size_list)
        self.hidden_layer_num = len(self.hidden_size_list)
        self.weight_decay_lambda = weight_decay_lambda
        self.use_dropout, self.use_batchnorm = use_dropout, use_batchnorm
        sizes = [input_size] + self.hidden_size_list + [output_size]
        self.layers = OrderedDict()
        self.params = {}
        self._owners = {}
        for idx in range(1, len(sizes)):
            fan_in, fan_out = sizes[idx - 1], sizes[idx]
            affine = Affine(book_weight((fan_in, fan_out), weight_init_std, fan_in), np.zeros(fan_out))
            self.layers[f"Affine{idx}"] = affine
            self._own(f"W{idx}", affine, "W")
            self._own(f"b{idx}", affine, "b")
            if idx == len(sizes) - 1:
                break
            if use_batchnorm:
                norm = BatchNormalization(np.ones(fan_out), np.zeros(fan_out))
                self.layers[f"BatchNorm{idx}"] = norm
                self._own(f"gamma{idx}", norm, "gamma")
                self._own(f"beta{idx}", norm, "beta")
            self.layers[f"Activation_function{idx}"] = ACTIVATIONS[activation]()
            if use_dropout:
                self.layers[f"Dropout{idx}"] = Dropout(dropout_ration)
        self.last_layer = SoftmaxWithLoss()
