"""handgrad: neural networks in NumPy whose gradients are written by hand, layer by layer.

``import handgrad as hg`` gives ``hg.functions``, ``hg.layers`` and ``hg.gradcheck``.
"""

__version__ = "0.1.0"

from . import functions, gradcheck, init, layers, optim  # noqa: E402
from .model import Sequential, TwoLayerNet, mlp  # noqa: E402

__all__ = ["functions", "layers", "gradcheck", "init", "optim", "Sequential", "TwoLayerNet", "mlp", "__version__"]
