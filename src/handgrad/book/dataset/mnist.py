"""The book's ``dataset.mnist.load_mnist``, reading handgrad's verified MNIST files.

The files come from the data root (``DATA_DIR``, which ``handgrad book-run --data-dir`` sets;
else ``$HANDGRAD_DATA``; else handgrad's cache, downloaded and checked by SHA-256 when missing).
Nothing is pickled: the book caches the arrays as ``mnist.pkl``; handgrad reads the IDX files.
"""

import numpy as np

from handgrad.data import load_dataset as _load_dataset
from handgrad.functions import one_hot as _one_hot

#: The data root holding ``mnist/train-images-idx3-ubyte.gz`` etc.; None: $HANDGRAD_DATA, then the cache.
DATA_DIR = None

train_num = 60000
test_num = 10000
img_dim = (1, 28, 28)
img_size = 784


def load_mnist(normalize=True, flatten=True, one_hot_label=False):
    """``(x_train, t_train), (x_test, t_test)``, as the book's:

    * images ``(N, 784)`` (``flatten=False``: ``(N, 1, 28, 28)``), float32 in [0, 1] when
      ``normalize``, else uint8 0..255;
    * labels ``(N,)`` uint8, or ``(N, 10)`` float64 one-hot rows when ``one_hot_label``.
    """
    (x_train, t_train), (x_test, t_test) = _load_dataset("mnist", data_dir=DATA_DIR, flatten=flatten)

    def images(x):
        # handgrad's loader scales the pixels by 1/255 in float32; each k/255 rounds back to k.
        return x if normalize else np.rint(x * 255.0).astype(np.uint8)

    def labels(t):
        return _one_hot(t, 10) if one_hot_label else t.astype(np.uint8)

    return (images(x_train), labels(t_train)), (images(x_test), labels(t_test))
