"""Layers with hand-written gradients: ``y = layer.forward(x)``, ``dx = layer.backward(dout)``.

Loss layers take targets: ``loss = layer.forward(x, t)``, ``dx = layer.backward(dout=1.0)``.

:data:`LAYER_TYPES` is the one registry of layer types: saving and loading, trace, summary and
plot all find a layer there by its type name. A layer type registers itself when its class is
defined (``Layer.__init_subclass__``); a new layer in a module of this package is its class, plus
its name on that module's import line below (docs/design.md#adding-a-layer).
"""

from .activations import GELU, Relu, Sigmoid, Tanh
from .base import LAYER_TYPES, Layer
from .composite import Chain, Residual
from .conv import AvgPooling, Convolution, Flatten, Pooling
from .dense import Affine
from .losses import SoftmaxWithLoss
from .regularization import BatchNorm, Dropout
from .embedding import Embedding, PositionEmbedding
from .normalization import LayerNorm
from .attention import Attention, CausalMean, MultiHeadAttention
from .recurrent import GRU, LSTM, RNN
from .shape import FlattenConsecutive, LastStep, PreviousTokens, Reshape

# LAYER_TYPES is filled as the modules above define their layers (Layer.__init_subclass__), and
# the exported names follow it (so the names imported above are re-exports, not unused).
__all__ = ["LAYER_TYPES", "Layer"]
__all__ += LAYER_TYPES.keys()
