"""Text as token ids: a character vocabulary, the second book's seq2seq data (additions and
dates) and Tiny Shakespeare, each file verified by its SHA-256 like MNIST's.

Token ids are integers (int64) from start to end: they index an ``Embedding`` and are never
turned into floats.
"""

from __future__ import annotations

import numpy as np

from .fetch import DataError, DataFile, RemoteDataset, locate

__all__ = ["CharVocab", "SEQ2SEQ_FILES", "TEXT_DATASETS", "load_seq2seq", "load_shakespeare"]

_BOOK2 = "https://raw.githubusercontent.com/oreilly-japan/deep-learning-from-scratch-2/" \
         "842ae31c2bb070f5116275606ed90396626a2c17/dataset/"

# The two files of the second book's seq2seq chapters (MIT, "Copyright (c) 2018 Koki Saitoh").
# Plain text, so the published and the "raw" checksums are the same.
TEXT_DATASETS = {
    "book2-seq2seq": RemoteDataset(
        name="book2-seq2seq",
        files={
            "addition": DataFile("addition.txt", *["34e0746f5014c11311c9452ee9050bf14e38eca44ec4aaf4d81eba2b38674009"] * 2),
            "dates": DataFile("date.txt", *["62e66a301ce8537868e725512d2a45663fc366526b7e42028cb703bda2b1c79a"] * 2),
        },
        mirrors=(_BOOK2,),
        credit="Deep Learning from Scratch 2, dataset/addition.txt and date.txt (MIT, (c) 2018 Koki Saitoh)",
    ),
    "tinyshakespeare": RemoteDataset(
        name="tinyshakespeare",
        files={"text": DataFile("input.txt", *["86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"] * 2)},
        mirrors=("https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/",),
        credit="Tiny Shakespeare (karpathy/char-rnn), public domain",
    ),
}

#: Dataset name -> its file in the book2-seq2seq folder.
SEQ2SEQ_FILES = {"addition": "addition", "dates": "dates"}

#: The book's split: shuffle with NumPy's legacy seed 1984, keep the last 10 % for testing.
BOOK_SPLIT_SEED = 1984


class CharVocab:
    """Characters and their ids: ``chars[i]`` is the character of id ``i``.

    ``encode(text)`` gives int64 ids (an unknown character is refused, named); ``decode(ids)``
    gives the text back."""

    def __init__(self, chars) -> None:
        self.chars = tuple(chars)
        self._ids = {c: i for i, c in enumerate(self.chars)}
        if len(self._ids) != len(self.chars):
            raise ValueError("CharVocab: a character is listed twice")

    @classmethod
    def in_order_of_appearance(cls, texts) -> "CharVocab":
        """The book's vocabulary: characters numbered in the order they first appear."""
        return cls(dict.fromkeys(c for text in texts for c in text))

    def __len__(self) -> int:
        return len(self.chars)

    def id_of(self, char: str) -> int:
        if char not in self._ids:
            raise ValueError(f"{char!r} is not in the vocabulary ({''.join(self.chars)!r})")
        return self._ids[char]

    def __eq__(self, other) -> bool:
        return isinstance(other, CharVocab) and other.chars == self.chars

    def __repr__(self) -> str:
        return f"CharVocab({''.join(self.chars)!r})"

    def encode(self, text: str) -> np.ndarray:
        unknown = sorted(set(text) - set(self._ids))
        if unknown:
            raise ValueError(f"characters {''.join(unknown)!r} are not in the vocabulary of {len(self)} "
                             f"characters ({''.join(self.chars)!r})")
        return np.fromiter((self._ids[c] for c in text), dtype=np.int64, count=len(text))

    def decode(self, ids) -> str:
        ids = np.asarray(ids)
        if ids.dtype.kind not in "iu" or (ids.size and (ids.min() < 0 or ids.max() >= len(self))):
            raise ValueError(f"ids must be integers in [0, {len(self)}), got {ids.dtype} "
                             f"{ids.min() if ids.size else ''}..{ids.max() if ids.size else ''}")
        return "".join(self.chars[i] for i in ids.reshape(-1))


def _read_text(key: str, role: str, data_dir, download: bool) -> str:
    dataset = TEXT_DATASETS[key]
    path = locate(dataset, dataset.files[role], data_dir, download)
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:  # cannot happen after the checksum; say so if it does
        raise DataError(f"{path}: not UTF-8 text ({error})") from error


def load_seq2seq(name: str, data_dir=None, download: bool = True):
    """``(x_train, t_train), (x_test, t_test), vocab`` of the book's ``addition`` or ``dates``.

    Each line is a question and an answer split at the first ``_`` (the answer keeps it: ``_``
    is the decoder's start symbol). ``x``: (N, Tq) int64 ids of the questions, ``t``: (N, Ta)
    of the answers (7 and 5 characters for addition, 29 and 11 for dates). The vocabulary is
    the book's: characters in order of first appearance, question then answer, line by line.
    The split is the book's too: the lines shuffled with ``numpy.random.seed(1984)`` and the
    last 10 % kept for testing (45,000 / 5,000).
    """
    if name not in SEQ2SEQ_FILES:
        raise ValueError(f"load_seq2seq: unknown dataset {name!r}; choose from {', '.join(SEQ2SEQ_FILES)}")
    lines = _read_text("book2-seq2seq", SEQ2SEQ_FILES[name], data_dir, download).splitlines()
    pairs = [(line[:line.index("_")], line[line.index("_"):]) for line in lines]
    vocab = CharVocab.in_order_of_appearance(q + a for q, a in pairs)
    x = np.stack([vocab.encode(q) for q, _ in pairs])
    t = np.stack([vocab.encode(a) for _, a in pairs])
    order = np.arange(len(x))
    np.random.RandomState(BOOK_SPLIT_SEED).shuffle(order)  # the book's numpy.random.seed + shuffle
    x, t = x[order], t[order]
    split = len(x) - len(x) // 10
    return (x[:split], t[:split]), (x[split:], t[split:]), vocab


def load_shakespeare(data_dir=None, download: bool = True):
    """``train_ids, val_ids, vocab`` of Tiny Shakespeare, nanoGPT's convention: the vocabulary
    is the sorted set of the file's characters (65), the first 90 % of the text is for
    training and the rest for validation; ids are int64 arrays of the whole text."""
    text = _read_text("tinyshakespeare", "text", data_dir, download)
    vocab = CharVocab(tuple(sorted(set(text))))
    ids = vocab.encode(text)
    split = int(0.9 * len(ids))
    return ids[:split], ids[split:], vocab
