"""Layers with hand-written gradients: ``y = layer.forward(x)``, ``dx = layer.backward(dout)``.

Loss layers take targets: ``loss = layer.forward(x, t)``, ``dx = layer.backward(dout=1.0)``.
"""

from .activations import Relu, Sigmoid, Tanh
from .base import Layer
from .dense import Affine
from .losses import SoftmaxWithLoss

__all__ = ["Layer", "Affine", "Relu", "Sigmoid", "Tanh", "SoftmaxWithLoss"]
