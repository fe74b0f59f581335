"""The book's ConvNets: ``SimpleConvNet`` (chapter 7) and ``DeepConvNet`` (chapter 8), each a
:class:`~handgrad.model.Sequential`."""

from __future__ import annotations

import numpy as np

from .. import init as initializers
from ..layers import Affine, Convolution, Dropout, Flatten, Layer, Pooling, Relu
from .sequential import Sequential

__all__ = ["SimpleConvNet", "DeepConvNet"]


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
