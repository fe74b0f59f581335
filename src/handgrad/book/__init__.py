"""The module layout of *Deep Learning from Scratch* (Koki Saitoh, O'Reilly Japan), implemented on
handgrad, so that the book's own scripts run unchanged (``handgrad book-run ch05/gradient_check.py``).

The names and signatures are the book's (``common.layers.Affine(W, b)``, ``network.gradient(x, t)``,
``load_mnist(normalize, flatten, one_hot_label)``); the code underneath is handgrad's layers, with
the book's pitfalls fixed (see README, "The book's scripts"). Nothing here is copied from the book.

:data:`PROVIDED_MODULES` maps each module name a book script imports to the handgrad module that
stands in for it, :data:`CHAPTER_MODULES` the same for the chapters' own modules;
:mod:`handgrad.book.run` installs them before the script starts and refuses every unpickling
while it runs (:mod:`handgrad.book.no_pickle`).
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

#: The chapter modules that sit next to the book's scripts: the chapter folder the book keeps each
#: in, and the handgrad module that stands in for it. Which file a script gets is decided when it
#: imports the name, by the file's content, never by its folder's name: see :mod:`handgrad.book.run`.
CHAPTER_MODULES = {
    "two_layer_net": ("ch05", "handgrad.book.two_layer_net"),
    "simple_convnet": ("ch07", "handgrad.book.simple_convnet"),
    "deep_convnet": ("ch08", "handgrad.book.deep_convnet"),
}

#: SHA-256 of each chapter module's file as the book's repository has it, at the commit named in
#: ../shared/book1/SOURCES.md (07b11618), with CRLF line ends read as LF. A file with another
#: digest (ch04's own two_layer_net.py, or a reader's edit) is not the book's, and is not stood in for.
BOOK_FILE_SHA256 = {
    "two_layer_net": "f833e408caee28fd62a81af91422c38dd89a05f225fd413b34e8129133d4a9dd",
    "simple_convnet": "d1f63fe7f7c54b8a1614b49c9b15cd8c4b56fceb30251f29b66ae85607a5bf7e",
    "deep_convnet": "73b12055ed9c5cea60f85cc75e9ef11c7c6c803356236769bc728cf520f1a3a1",
}

#: The pickled weight files the book's repository ships (left out of ../shared/book1), each with
#: the book's script that trains its safetensors equivalent under ``book-run`` (None: the book
#: has no script that makes it).
BOOK_PICKLES = {
    "sample_weight.pkl": None,  # ch03: weights of a 784-50-100-10 sigmoid network, trained elsewhere
    "params.pkl": "ch07/train_convnet.py",
    "deep_convnet_params.pkl": "ch08/train_deepnet.py",
}
