"""handgrad: neural networks in NumPy whose gradients are written by hand, layer by layer.

``import handgrad as hg`` gives ``hg.functions``, ``hg.layers``, ``hg.model``, ``hg.optim``,
``hg.data``, ``hg.init``, ``hg.gradcheck``, ``hg.train``, ``hg.interop``, ``hg.inspect`` and
``hg.plot`` (matplotlib only when drawing), ``hg.distributed`` (mpi4py only under MPI), and at the top ``hg.Sequential``, ``hg.mlp``,
``hg.fit``, ``hg.save``, ``hg.load`` and ``hg.export_onnx``.
"""

from ._version import __version__  # noqa: E402

from ._mpi_env import share_cores_between_ranks  # noqa: E402

share_cores_between_ranks()  # under mpiexec, before NumPy's BLAS starts a thread per core

from . import data, functions, gradcheck, init, inspect, interop, layers, model, optim, plot, train  # noqa: E402
from . import distributed  # noqa: E402  (imports mpi4py only when a communicator is asked for)
from .model import Sequential, TwoLayerNet, mlp  # noqa: E402
from .serialize import load, save  # noqa: E402
from .train import History, evaluate, fit  # noqa: E402
from .onnx_export import export_onnx  # noqa: E402  (imports onnx only when called)

__all__ = ["functions", "layers", "model", "gradcheck", "init", "optim", "data", "train", "interop", "inspect", "plot", "distributed",
           "Sequential", "TwoLayerNet", "mlp",
           "fit", "evaluate", "History", "save", "load", "export_onnx", "__version__"]
