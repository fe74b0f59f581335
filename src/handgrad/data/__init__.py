"""Datasets.

``load_dataset(name, data_dir=None, flatten=True)`` returns ``(x_train, t_train), (x_test, t_test)``
with float32 inputs and int64 labels:

* ``digits``: the UCI 8x8 handwritten digits, shipped inside the package (no network). 1797
  images, pixel counts 0..16 scaled to [0, 1]; a fixed, stratified split (20 % of each class) of 1438 train / 359 test.
* ``mnist``, ``fashion-mnist``: 28x28 images scaled to [0, 1], 60000 train / 10000 test, read
  from IDX files under the data root (see :mod:`handgrad.data.fetch`), downloaded when missing.
* ``mnist1d``: 40-point signals (standardised, so not in [0, 1]), 4000 train / 1000 test,
  generated locally (see :mod:`handgrad.data.mnist1d`).

* ``addition``, ``dates``: the second book's seq2seq data (``data.text``): questions and
  answers as int64 character ids, ``(N, Tq)`` and ``(N, Ta)``, the book's split (45000 / 5000)
  and vocabulary (``load_seq2seq`` also returns it).

* ``shakespeare``: Tiny Shakespeare as aligned token streams ``(x, t)``, ``t[i]`` the character
  after ``x[i]`` (int64 ids, nanoGPT's vocabulary and 90 % / 10 % split; ``load_shakespeare``
  also returns the vocabulary). Language models train on random windows of them.
* ``names``: makemore's 32,033 names (``names/names.txt`` under the data root, SHA-256 checked)
  as makemore.py's examples, a name a row (``x = [0, w...]``, ``y = [w..., 0]`` padded with the
  ignore index), its split (31,033 / 1,000). :mod:`handgrad.data.words` reads any file of words
  and holds the other split and the fixed-context examples of Zero to Hero.

``flatten=False`` keeps images as ``(N, 1, H, W)`` (signals as ``(N, 1, 40)``); text is never
flattened.
"""

from __future__ import annotations

import gzip
from importlib import resources

import numpy as np

from .fetch import DataError, DataFile, RemoteDataset, locate
from .idx import IdxError, read_idx
from .mnist1d import make_mnist1d
from .text import CharVocab, load_seq2seq, load_shakespeare

__all__ = ["load_dataset", "DATASET_NAMES", "DATASETS", "REMOTE_DATASETS", "DataError", "IdxError",
           "read_idx", "make_mnist1d", "CLASS_NAMES", "CharVocab", "load_seq2seq", "load_shakespeare",
           "SEQ2SEQ_DATASETS"]

_TORCHVISION_MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")

REMOTE_DATASETS = {
    "mnist": RemoteDataset(
        name="mnist",
        files={
            "train_images": DataFile("train-images-idx3-ubyte.gz",
                                     "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                                     "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
            "train_labels": DataFile("train-labels-idx1-ubyte.gz",
                                     "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                                     "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
            "test_images": DataFile("t10k-images-idx3-ubyte.gz",
                                    "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                                    "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
            "test_labels": DataFile("t10k-labels-idx1-ubyte.gz",
                                    "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                                    "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
        },
        mirrors=_TORCHVISION_MNIST_MIRRORS,
        credit="MNIST: Y. LeCun, C. Cortes, C. J. C. Burges (CC BY-SA 3.0)",
    ),
    "fashion-mnist": RemoteDataset(
        name="fashion-mnist",
        files={
            "train_images": DataFile("train-images-idx3-ubyte.gz",
                                     "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                                     "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
            "train_labels": DataFile("train-labels-idx1-ubyte.gz",
                                     "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                                     "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
            "test_images": DataFile("t10k-images-idx3-ubyte.gz",
                                    "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                                    "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
            "test_labels": DataFile("t10k-labels-idx1-ubyte.gz",
                                    "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                                    "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
        },
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        credit="Fashion-MNIST: H. Xiao, K. Rasul, R. Vollgraf, Zalando Research (MIT)",
    ),
}

#: The names ``load_dataset`` knows. (``handgrad.registry.DATASETS`` holds the entries the CLI trains on.)
DATASET_NAMES = ("digits", "mnist", "fashion-mnist", "mnist1d", "addition", "dates", "shakespeare", "names")
DATASETS = DATASET_NAMES  # the older name, kept working
SEQ2SEQ_DATASETS = ("addition", "dates")

CLASS_NAMES = {
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                      "Bag", "Ankle boot"),
}

DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0


def _load_digits():
    with resources.files(__package__).joinpath("digits.csv.gz").open("rb") as handle:
        table = np.loadtxt(gzip.open(handle, "rt"), delimiter=",", dtype=np.int64)
    images = (table[:, :64] / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    labels = table[:, 64]
    # Stratified and fixed: the same 20 % of every class is the test set, on every machine.
    rng = np.random.default_rng(DIGITS_SPLIT_SEED)
    test = np.zeros(len(labels), dtype=bool)
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(labels == digit))
        test[members[: round(DIGITS_TEST_FRACTION * len(members))]] = True
    return (images[~test], labels[~test]), (images[test], labels[test])


def _load_idx_dataset(name: str, data_dir, download: bool):
    dataset = REMOTE_DATASETS[name]
    arrays = {role: read_idx(locate(dataset, file, data_dir, download)) for role, file in dataset.files.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise IdxError(f"{name}: {split} images {images.shape} and labels {labels.shape} do not fit together")
    def convert(split):
        images = arrays[f"{split}_images"]
        return (images.astype(np.float32) / 255.0).reshape(len(images), 1, *images.shape[1:]), \
            arrays[f"{split}_labels"].astype(np.int64)
    return convert("train"), convert("test")


def _load_mnist1d():
    (x, t), (x_test, t_test) = make_mnist1d()
    return (x.astype(np.float32)[:, None, :], t), (x_test.astype(np.float32)[:, None, :], t_test)


def load_dataset(name: str, data_dir=None, flatten: bool = True, download: bool = True):
    """``(x_train, t_train), (x_test, t_test)`` of a named dataset (see the module docstring).

    ``data_dir``: a data root (``DIR/mnist/...``) searched before ``HANDGRAD_DATA`` and the
    cache. ``download=False`` never touches the network. ``flatten``: ``(N, features)`` if
    True, ``(N, 1, H, W)`` (``(N, 1, L)`` for signals) otherwise.

    Example:
        The digits ship with handgrad (8 x 8 images, no download):

        >>> from handgrad.data import load_dataset
        >>> (x_train, t_train), (x_test, t_test) = load_dataset("digits", flatten=False)
        >>> x_train.shape, x_train.dtype, t_train[:5]
        ((1438, 1, 8, 8), dtype('float32'), array([0, 1, 2, 3, 4]))
    """
    key = name.lower().replace("_", "-")
    if key == "digits":
        train, test = _load_digits()
    elif key in REMOTE_DATASETS:
        train, test = _load_idx_dataset(key, data_dir, download)
    elif key == "mnist1d" or key == "mnist-1d":
        train, test = _load_mnist1d()
    elif key == "shakespeare":
        train_ids, val_ids, _ = load_shakespeare(data_dir, download)
        # A corpus is a stream: inputs, and the next token as the target of each.
        return (train_ids[:-1], train_ids[1:]), (val_ids[:-1], val_ids[1:])
    elif key == "names":
        # makemore.py's examples and split: whole names as rows (see handgrad.data.words).
        from .words import load_names, makemore_split, sequences

        words = load_names(data_dir, download)
        return tuple(sequences(part, words.block_size) for part in makemore_split(words))
    elif key in SEQ2SEQ_DATASETS:
        train, test, _ = load_seq2seq(key, data_dir, download)
        return train, test
    else:
        raise ValueError(f"load_dataset: unknown dataset {name!r}; choose from {', '.join(DATASET_NAMES)}")
    if flatten:
        train = (train[0].reshape(len(train[0]), -1), train[1])
        test = (test[0].reshape(len(test[0]), -1), test[1])
    return train, test

