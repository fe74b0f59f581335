"""Models: each a :class:`Model` (model/base.py), a layer with a loss.

* :class:`Sequential` (model/sequential.py): layers in order, then a loss layer; :func:`mlp`,
  and the tutorial's :class:`TwoLayerNet`;
* :class:`SimpleConvNet`, :class:`DeepConvNet` (model/convnets.py): the book's ConvNets;
* :class:`Seq2seq` (model/seq2seq.py): the second book's encoder-decoder, with attention;
* :class:`GPT` (model/gpt.py): nanoGPT's, every backward by hand.

Data flows one way: a model calls its layers; layers never know about the model.
"""

from __future__ import annotations

from .base import Model
from .sequential import ACTIVATIONS, Sequential, TwoLayerNet, mlp
from .convnets import DeepConvNet, SimpleConvNet
from .seq2seq import Seq2seq
from .gpt import GPT

#: Every model type besides Sequential that ``handgrad.load`` may rebuild, by the name its spec
#: gives (``{"model": "Seq2seq", ...}``). One place, as LAYER_TYPES is for layers.
MODEL_TYPES = {cls.__name__: cls for cls in (Seq2seq, GPT)}

__all__ = ["Model", "Sequential", "mlp", "TwoLayerNet", "SimpleConvNet", "DeepConvNet", "ACTIVATIONS", "Seq2seq",
           "GPT", "MODEL_TYPES"]
