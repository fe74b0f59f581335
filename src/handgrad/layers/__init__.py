"""Layers with hand-written gradients: ``y = layer.forward(x)``, ``dx = layer.backward(dout)``.

Loss layers take targets: ``loss = layer.forward(x, t)``, ``dx = layer.backward(dout=1.0)``.

:data:`LAYER_TYPES` is the one registry of layer types: saving and loading, trace, summary and
plot all find a layer there by its type name. A new layer is added to it here, once.
"""

from .activations import GELU, Relu, Sigmoid, Tanh
from .base import Layer
from .composite import Chain, Residual
from .conv import AvgPooling, Convolution, Flatten, Pooling
from .dense import Affine
from .losses import SoftmaxWithLoss
from .regularization import BatchNorm, Dropout
from .embedding import Embedding
from .normalization import LayerNorm
from .attention import Attention, MultiHeadAttention
from .recurrent import GRU, LSTM, RNN
from .shape import LastStep, Reshape

#: Every layer type that ``handgrad.load`` may rebuild, by the name in a saved architecture.
LAYER_TYPES = {cls.__name__: cls for cls in (Affine, Relu, Sigmoid, Tanh, SoftmaxWithLoss, Dropout, BatchNorm,
                                             Convolution, Pooling, AvgPooling, Flatten, Chain, Residual, Embedding, LayerNorm, MultiHeadAttention, Attention, RNN, LSTM, GRU, Reshape, LastStep, GELU)}

__all__ = ["LAYER_TYPES", "Layer", "Affine", "Relu", "Sigmoid", "Tanh", "SoftmaxWithLoss", "Dropout", "BatchNorm",
           "Convolution", "Pooling", "AvgPooling", "Flatten", "Chain", "Residual", "Embedding", "LayerNorm", "MultiHeadAttention", "Attention", "RNN", "LSTM", "GRU", "Reshape", "LastStep", "GELU"]
