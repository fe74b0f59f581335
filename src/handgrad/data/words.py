"""One thing per line (names, words, company names...) as makemore reads it, and the two
splits people publish makemore results with.

makemore's promise is one text file in, more things like it out. Its preprocessing
(``create_datasets`` in makemore.py): every line stripped, empty lines dropped; the vocabulary
is the sorted set of the characters; id 0 is the token that starts and ends a word (Zero to
Hero's ``"."``), the characters are ids 1 to V; the block size is the longest word + 1.

Two ways to split, each reproducible without PyTorch:

* :func:`makemore_split`, makemore.py's shape: a test set of ``min(1000, 10 %)`` words, the rest
  for training. makemore draws it with ``torch.randperm`` after ``torch.manual_seed(3407)``;
  here the permutation is NumPy's (``default_rng(3407)``), so the sizes are makemore's and the
  names in each set are not.
* :func:`zero_to_hero_split`, the notebooks' exactly: ``random.seed(42); random.shuffle(words)``,
  then 80 / 10 / 10 % train / dev / test.

Two ways to make examples of a split:

* :func:`contexts`, Zero to Hero's ``build_dataset``: for every character of every word and its
  end, the ``block_size`` ids before it (0 before the word starts) and the id to predict.
* :func:`sequences`, makemore.py's ``CharDataset``: each word as one row, ``x = [0, w...]`` padded
  with 0, ``y = [w..., 0]`` padded with :data:`IGNORE` (ignored by the loss), ``block_size``
  columns.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .fetch import DataError, DataFile, RemoteDataset, locate

__all__ = ["IGNORE", "MAX_WORD_LENGTH", "MIN_WORDS", "NAMES", "Words", "contexts", "load_names", "makemore_split", "read_words", "sequences",
           "zero_to_hero_split"]

#: makemore's names.txt (MIT, karpathy/makemore; the licence travels beside it as LICENSE-makemore).
NAMES = RemoteDataset(
    name="names",
    files={"names": DataFile("names.txt", *["0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"] * 2)},
    mirrors=("https://raw.githubusercontent.com/karpathy/makemore/master/",),
    credit="makemore's names.txt (karpathy/makemore, MIT): the most common 32K names of ssa.gov, 2018",
)

#: The longest line a words file may hold: makemore's models see block_size = longest + 1 positions,
#: and a Transformer's attention grows with its square; a longer line is almost always not a word list.
MAX_WORD_LENGTH = 64

#: The target of a padded position, which the loss skips: PyTorch's default ``ignore_index`` and
#: handgrad's SoftmaxWithLoss's (makemore.py pads with -1 and passes ``ignore_index=-1``).
IGNORE = -100

#: The largest words file read (makemore's names.txt is 228 KB): bigger is almost never a word list,
#: and every line becomes examples in memory.
MAX_FILE_BYTES = 64 * 2 ** 20

# How much of a file is looked at for NUL bytes before it is read as text.
_SNIFF_BYTES = 8192


@dataclass(frozen=True)
class Words:
    """The words of a file and their vocabulary: ``chars`` (sorted) are ids 1 to V, id 0 starts
    and ends a word. ``source``: where the words came from, for messages."""

    words: tuple
    chars: str
    source: str = "words"

    @classmethod
    def of(cls, words, source: str = "words") -> "Words":
        words = tuple(words)
        return cls(words, "".join(sorted(set("".join(words)))), source)

    @property
    def vocab_size(self) -> int:
        """The characters and the start/end token."""
        return len(self.chars) + 1

    @property
    def block_size(self) -> int:
        """The longest word + 1: makemore's positions (the start token, then every character)."""
        return max(map(len, self.words)) + 1

    def encode(self, word: str) -> np.ndarray:
        """The word's ids (1 to V), int64, without start or end token."""
        ids = [self.chars.find(c) + 1 for c in word]
        if 0 in ids:
            unknown = "".join(sorted({c for c, i in zip(word, ids) if i == 0}))
            raise ValueError(f"{word!r}: characters {unknown!r} are not in the vocabulary of {self.source} "
                             f"({self.chars!r})")
        return np.asarray(ids, dtype=np.int64)

    def decode(self, ids) -> str:
        """The characters of ``ids`` up to the first 0 (the end token)."""
        out = []
        for i in np.asarray(ids).reshape(-1):
            if i == 0:
                break
            if not 0 < i <= len(self.chars):
                raise ValueError(f"id {i} is outside the vocabulary of {self.vocab_size} tokens")
            out.append(self.chars[i - 1])
        return "".join(out)


def read_words(path, max_length: int = MAX_WORD_LENGTH) -> Words:
    """The words of a text file, one a line, as makemore reads them (see the module docstring).

    Refused in one line naming the file: a file that is not there, binary (a NUL byte, or not
    UTF-8), empty once stripped, of one distinct character only (nothing to learn), or with a
    line longer than ``max_length`` characters (line number given)."""
    path = Path(path)
    try:
        if path.is_dir():
            raise DataError(f"{path}: is a folder; give a text file with one word (or name) a line")
        if path.exists() and not path.is_file():  # a FIFO would block forever, /dev/zero never end
            raise DataError(f"{path}: not a regular file (a pipe, a device or a socket); give a text file with "
                            "one word a line")
        if path.exists() and path.stat().st_size > MAX_FILE_BYTES:
            raise DataError(f"{path}: {path.stat().st_size:,} bytes, over the limit of {MAX_FILE_BYTES:,} for a "
                            "file of words")
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read it ({error.strerror or error})") from None
    if b"\0" in data[:_SNIFF_BYTES]:
        raise DataError(f"{path}: a binary file (it holds NUL bytes); give a text file with one word a line")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text (at byte offset {error.start}); give a text file with one word a "
                        "line") from None
    words = []
    for number, line in enumerate(text.splitlines(), 1):
        word = line.strip()
        if not word:
            continue
        if len(word) > max_length:
            raise DataError(f"{path}: line {number} is {len(word)} characters long, over the limit of {max_length} "
                            "for one word (one word or name a line)")
        words.append(word)
    if not words:
        raise DataError(f"{path}: no words in it (every line is empty or blank)")
    result = Words.of(words, source=path.name)
    if len(result.chars) < 2:
        raise DataError(f"{path}: every word is made of the one character {result.chars!r}; there is nothing to learn")
    return result


def load_names(data_dir=None, download: bool = True) -> Words:
    """makemore's ``names.txt`` (32,032 names), found under the data root as ``names/names.txt``
    like the other datasets and verified by its SHA-256."""
    path = locate(NAMES, NAMES.files["names"], data_dir, download)
    return read_words(path)


#: The fewest words either split can make three (or two) non-empty parts of: 10 % of them is one.
MIN_WORDS = 10


def _check_splittable(words: Words) -> None:
    if len(words.words) < MIN_WORDS:
        raise ValueError(f"{words.source}: {len(words.words)} words are too few to split: the test (and dev) sets "
                         f"hold 10 % of them, so at least {MIN_WORDS} are needed")


def makemore_split(words: Words, seed: int = 3407) -> tuple[Words, Words]:
    """``(train, test)``: makemore.py's sizes, a test set of ``min(1000, 10 %)`` words (see the
    module docstring); the vocabulary stays the whole file's. At least :data:`MIN_WORDS` words."""
    _check_splittable(words)
    test_size = min(1000, int(len(words.words) * 0.1))
    order = np.random.default_rng(seed).permutation(len(words.words))
    pick = lambda indices: Words(tuple(words.words[i] for i in indices), words.chars, words.source)  # noqa: E731
    return pick(order[:len(order) - test_size]), pick(order[len(order) - test_size:])


def zero_to_hero_split(words: Words, seed: int = 42) -> tuple[Words, Words, Words]:
    """``(train, dev, test)``: Zero to Hero's ``random.seed(42); random.shuffle(words)``, then the
    first 80 %, the next 10 % and the rest; the vocabulary stays the whole file's. At least
    :data:`MIN_WORDS` words."""
    _check_splittable(words)
    shuffled = list(words.words)
    random.Random(seed).shuffle(shuffled)  # the same draws as random.seed(seed); random.shuffle(...)
    n1, n2 = int(0.8 * len(shuffled)), int(0.9 * len(shuffled))
    return tuple(Words(tuple(part), words.chars, words.source)
                 for part in (shuffled[:n1], shuffled[n1:n2], shuffled[n2:]))


def contexts(words: Words, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Zero to Hero's examples: ``x`` (N, block_size) the ids before each character (0 before
    the word), ``y`` (N,) the character's id, one example for every character and every end."""
    xs, ys = [], []
    for word in words.words:
        context = [0] * block_size
        for i in [*words.encode(word).tolist(), 0]:
            xs.append(context)
            ys.append(i)
            context = context[1:] + [i]
    return np.asarray(xs, dtype=np.int64).reshape(-1, block_size), np.asarray(ys, dtype=np.int64)


def sequences(words: Words, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """makemore.py's examples: ``x`` (N, block_size) ``[0, w...]`` padded with 0, ``y`` (N,
    block_size) ``[w..., 0]`` padded with :data:`IGNORE` (the loss's ignore_index)."""
    longest = max(map(len, words.words))
    if longest + 1 > block_size:
        raise ValueError(f"sequences: a word of {longest} characters needs block_size >= {longest + 1}, "
                         f"got {block_size}")
    x = np.zeros((len(words.words), block_size), dtype=np.int64)
    y = np.full((len(words.words), block_size), IGNORE, dtype=np.int64)
    for row, word in enumerate(words.words):
        ids = words.encode(word)
        x[row, 1:1 + len(ids)] = ids
        y[row, :len(ids)] = ids
        y[row, len(ids)] = 0
    return x, y
