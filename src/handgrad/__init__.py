"""handgrad: neural networks in NumPy whose gradients are written by hand, layer by layer.

``import handgrad as hg`` gives ``hg.functions``, ``hg.layers`` and ``hg.gradcheck``.
"""

__version__ = "0.1.0"

from . import functions, gradcheck, layers  # noqa: E402

__all__ = ["functions", "layers", "gradcheck", "__version__"]
