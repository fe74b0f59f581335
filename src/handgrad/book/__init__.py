"""The module layout of *Deep Learning from Scratch* (Koki Saitoh, O'Reilly Japan), implemented on
handgrad, so that the book's own scripts run unchanged (``handgrad book-run ch05/gradient_check.py``).

The names and signatures are the book's (``common.layers.Affine(W, b)``, ``network.gradient(x, t)``,
``load_mnist(normalize, flatten, one_hot_label)``); the code underneath is handgrad's layers, with
the book's pitfalls fixed (see README, "The book's scripts"). Nothing here is copied from the book.

:data:`PROVIDED_MODULES` maps each module name a book script imports to the handgrad module that
stands in for it; :mod:`handgrad.book.run` installs them before the script starts.
"""

from __future__ import annotations

#: The book's module name -> the handgrad module that stands in for it.
PROVIDED_MODULES = {
    "common": "handgrad.book.common",
    "common.functions": "handgrad.book.common.functions",
    "common.gradient": "handgrad.book.common.gradient",
    "common.layers": "handgrad.book.common.layers",
    "common.optimizer": "handgrad.book.common.optimizer",
    "common.multi_layer_net": "handgrad.book.common.multi_layer_net",
    "common.multi_layer_net_extend": "handgrad.book.common.multi_layer_net_extend",
    "common.trainer": "handgrad.book.common.trainer",
    "common.util": "handgrad.book.common.util",
    "dataset": "handgrad.book.dataset",
    "dataset.mnist": "handgrad.book.dataset.mnist",
}

#: The chapter modules that sit next to the book's scripts, and the chapter folder each belongs to
#: (ch04 has its own, different two_layer_net.py, which stays the book's).
CHAPTER_MODULES = {
    "two_layer_net": ("ch05", "handgrad.book.two_layer_net"),
    "simple_convnet": ("ch07", "handgrad.book.simple_convnet"),
    "deep_convnet": ("ch08", "handgrad.book.deep_convnet"),
}
