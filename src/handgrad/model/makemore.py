"""makemore's models, every gradient by hand: one file of names in, more names out.

Karpathy's makemore (``makemore.py``) and the series built on it (*Neural Networks: Zero to
Hero*, makemore parts 2-5) go from a bigram table to a Transformer. Here each is made of
handgrad's layers, so every backward is one you can read in ``handgrad/layers/``:

================  =============================================================  ================
``--model``       layers (V = vocabulary + 1, the start/end token 0)             examples
================  =============================================================  ================
``bigram``        Embedding (V, V): a table of next-character logits              sequences
``mlp-bn``        Embedding (V, 10), 3 characters side by side (30), Affine 200,   contexts of 3
                  BatchNorm, Tanh, Affine V (part 3, Bengio et al. 2003 + BN)
``wavenet``       Embedding (V, 24), then three times FlattenConsecutive(2),       contexts of 8
                  Affine 128, BatchNorm over (N, T, C), Tanh; Affine V (part 5)
``mlp``           PreviousTokens (the last ``block_size`` ids, a blank id before   sequences
                  the word), Embedding (V + 1, 64), side by side, Affine 64, Tanh,
                  Affine V (makemore.py's MLP, Bengio et al. 2003; its long
                  name ``mlp-words``, as ``--model mlp`` on images is handgrad's)
``bow``           Embedding (V, 64) + PositionEmbedding, Residual(CausalMean),     sequences
                  Residual(Affine 64, Tanh, Affine 64), Affine V (makemore.py's BoW)
``rnn``           Embedding (V, 64), RNN 64 (tanh), Affine V (makemore.py's RNN)    sequences
``gru``           Embedding (V, 64), GRU 64, Affine V (makemore.py's GRU)          sequences
``transformer``   :class:`~handgrad.model.GPT`: 4 blocks, 4 heads, width 64,       sequences
                  tanh GELU, biases, its own output matrix, PyTorch's default
                  initialisation (makemore.py's Transformer)
================  =============================================================  ================

*Contexts* (:func:`handgrad.data.words.contexts`, Zero to Hero's): the model reads the
``block_size`` characters before a position and scores the next one, ``(N, block_size) -> (N,
V)``. *Sequences* (:func:`handgrad.data.words.sequences`, makemore.py's): the model reads a
whole word ``[0, w...]`` and scores every next character at once, ``(N, T) -> (N, T, V)``.

How they differ from the originals, where they do: Zero to Hero's ``Linear`` before a BatchNorm
has no bias; here it has one, initialised to 0, whose gradient is 0 (a BatchNorm's input
gradient sums to 0 over the batch), so it stays 0 under SGD. Its ``BatchNorm1d`` normalises with
the unbiased variance (``torch.var``); handgrad's BatchNorm, as PyTorch's ``nn.BatchNorm1d``,
with the biased one. makemore.py's RNN and GRU start from a learned state and
its GRU applies the reset gate before the hidden matrix (Cho et al.'s form); handgrad's start
from zeros, and its GRU is PyTorch's (the reset gate after ``W_hn h``).
"""

from __future__ import annotations

import numpy as np

from .. import init as initializers
from ..layers import (GRU, RNN, Affine, BatchNorm, CausalMean, Embedding, FlattenConsecutive, PositionEmbedding,
                      PreviousTokens, Reshape, Residual, SoftmaxWithLoss, Tanh)
from .gpt import GPT, _sample
from .sequential import Sequential

__all__ = ["MAKEMORE_MODELS", "bigram", "bow", "generate_words", "gru", "mark_words", "mlp", "mlp_bn", "recurrent",
           "rnn", "sample_words", "transformer", "wavenet", "word_examples"]


def bigram(vocab_size: int, seed=None, dtype=np.float32) -> Sequential:
    """makemore.py's ``Bigram``: ``logits[n, t] = table[x[n, t]]``, a (V, V) table of logits
    that starts at 0 (every next character equally likely), learned as an Embedding's weights."""
    del seed  # nothing random: the table starts at zero, as makemore's
    return Sequential([Embedding(np.zeros((vocab_size, vocab_size), dtype))], loss=SoftmaxWithLoss())


def _pytorch_linear(rng, n_in: int, n_out: int, dtype) -> Affine:
    """An Affine initialised as PyTorch's ``nn.Linear``: W and b uniform in +-1/sqrt(n_in)."""
    return Affine(*initializers.pytorch_linear(n_in, n_out, rng, dtype))


def mlp(vocab_size: int, block_size: int, n_embd: int = 64, n_embd2: int = 64, seed=None,
        dtype=np.float32) -> Sequential:
    """makemore.py's ``MLP`` (Bengio et al. 2003) over whole words: at every position, the
    embeddings of the ``block_size`` latest characters (newest first; a blank id of its own,
    ``vocab_size``, before the word starts) side by side, ``Affine`` to ``n_embd2``, ``Tanh``,
    ``Affine`` to the vocabulary. ``block_size``: makemore.py's, the longest word + 1.
    PyTorch's initialisation (embeddings N(0, 1), Linear uniform)."""
    rng = initializers.as_generator(seed)
    fan_in = block_size * n_embd
    table = rng.standard_normal((vocab_size + 1, n_embd)).astype(dtype)  # + 1: the blank
    layers = [PreviousTokens(block_size, blank=vocab_size), Embedding(table), Reshape((-1, fan_in)),
              _pytorch_linear(rng, fan_in, n_embd2, dtype), Tanh(), _pytorch_linear(rng, n_embd2, vocab_size, dtype)]
    return Sequential(layers, loss=SoftmaxWithLoss(), seed=rng)


def bow(vocab_size: int, block_size: int, n_embd: int = 64, n_embd2: int = 64, seed=None,
        dtype=np.float32) -> Sequential:
    """makemore.py's ``BoW``: token plus position embeddings; a block that adds the causal mean
    of the positions so far (``CausalMean``, its ``CausalBoW``), then an MLP (``Affine`` to
    ``n_embd2``, ``Tanh``, ``Affine`` back), each around a residual connection; ``Affine`` to the
    vocabulary. PyTorch's initialisation (embeddings N(0, 1), Linear uniform)."""
    rng = initializers.as_generator(seed)
    tokens = rng.standard_normal((vocab_size, n_embd)).astype(dtype)
    positions = rng.standard_normal((block_size, n_embd)).astype(dtype)
    layers = [Embedding(tokens), PositionEmbedding(positions), Residual([CausalMean()]),
              Residual([_pytorch_linear(rng, n_embd, n_embd2, dtype), Tanh(), _pytorch_linear(rng, n_embd2, n_embd, dtype)]),
              _pytorch_linear(rng, n_embd, vocab_size, dtype)]
    return Sequential(layers, loss=SoftmaxWithLoss(), seed=rng)


def mlp_bn(vocab_size: int, block_size: int = 3, n_embd: int = 10, n_hidden: int = 200, seed=None,
           dtype=np.float32) -> Sequential:
    """Zero to Hero part 3's MLP with BatchNorm: the embeddings of the ``block_size`` previous
    characters side by side, ``Affine`` to ``n_hidden``, ``BatchNorm`` (its running statistics
    moving by 0.001, part 3's), ``Tanh``, ``Affine`` to the vocabulary. Part 3's initialisation:
    embeddings N(0, 1); the hidden weights N(0, 1) (5/3) / sqrt(fan_in) (Kaiming's gain for
    tanh); the output weights N(0, 1) 0.01 and bias 0, so that the first loss is near -log(1/V)."""
    rng = initializers.as_generator(seed)
    fan_in = n_embd * block_size
    table = rng.standard_normal((vocab_size, n_embd))
    hidden = rng.standard_normal((fan_in, n_hidden)) * (5 / 3) / fan_in ** 0.5
    out = rng.standard_normal((n_hidden, vocab_size)) * 0.01
    layers = [Embedding(table.astype(dtype)), Reshape((fan_in,)),
              Affine(hidden.astype(dtype), np.zeros(n_hidden, dtype)), BatchNorm(n_hidden, momentum=0.001, dtype=dtype),
              Tanh(), Affine(out.astype(dtype), np.zeros(vocab_size, dtype))]
    return Sequential(layers, loss=SoftmaxWithLoss(), seed=rng, input_shape=(block_size,))


def wavenet(vocab_size: int, block_size: int = 8, n_embd: int = 24, n_hidden: int = 128, seed=None,
            dtype=np.float32) -> Sequential:
    """Zero to Hero part 5's hierarchical network ("Building a WaveNet"): the embeddings of the
    ``block_size`` previous characters (a power of 2), fused two at a time by
    ``FlattenConsecutive(2)``, ``Affine``, ``BatchNorm`` over (N, T, C) and ``Tanh``, until one
    group is left; then ``Affine`` to the vocabulary. Part 5's initialisation: weights N(0, 1) /
    sqrt(fan_in), biases 0, the last layer's weights times 0.1 (less confident at first)."""
    if block_size < 2 or block_size & (block_size - 1):
        raise ValueError(f"wavenet: block_size must be a power of 2 (>= 2), each stage fusing two groups; "
                         f"got {block_size}")
    rng = initializers.as_generator(seed)
    layers, width, groups = [Embedding(rng.standard_normal((vocab_size, n_embd)).astype(dtype))], n_embd, block_size
    while groups > 1:
        fan_in = 2 * width
        weight = rng.standard_normal((fan_in, n_hidden)) / fan_in ** 0.5
        layers += [FlattenConsecutive(2), Affine(weight.astype(dtype), np.zeros(n_hidden, dtype)),
                   BatchNorm(n_hidden, dtype=dtype), Tanh()]
        width, groups = n_hidden, groups // 2
    out = rng.standard_normal((n_hidden, vocab_size)) / n_hidden ** 0.5 * 0.1
    layers.append(Affine(out.astype(dtype), np.zeros(vocab_size, dtype)))
    return Sequential(layers, loss=SoftmaxWithLoss(), seed=rng, input_shape=(block_size,))


def transformer(vocab_size: int, block_size: int, n_layer: int = 4, n_head: int = 4, n_embd: int = 64, seed=None,
                dtype=np.float32) -> GPT:
    """makemore.py's ``Transformer`` (its defaults: 4 layers, 4 heads, width 64), as handgrad's
    GPT with what makemore's has: biases, the tanh GELU (its ``NewGELU``), an output matrix of
    its own (``lm_head``, no bias; nanoGPT ties it to the token embedding) and the weights
    PyTorch's modules start from (makemore does not re-initialise them: embeddings N(0, 1),
    Linear uniform in +-1/sqrt(fan_in)); ``block_size``: the longest word + 1."""
    return GPT(vocab_size, block_size, n_layer, n_head, n_embd, bias=True, gelu="tanh", tied_head=False,
               init="pytorch", seed=seed, dtype=dtype)


def recurrent(vocab_size: int, cell: str = "rnn", n_embd: int = 64, n_embd2: int = 64, seed=None,
              dtype=np.float32) -> Sequential:
    """makemore.py's ``RNN`` (``cell="rnn"``, tanh) or ``GRU`` (``cell="gru"``): each character's
    embedding (``n_embd``) read in order by a recurrent layer of ``n_embd2`` units, whose state at
    every position an ``Affine`` turns into the next character's logits. PyTorch's initialisation,
    U(-1/sqrt(H), 1/sqrt(H)); embeddings N(0, 1)."""
    rng = initializers.as_generator(seed)
    H, gates = n_embd2, {"rnn": 1, "gru": 3}[cell]
    bound = 1 / H ** 0.5
    uniform = lambda *shape: rng.uniform(-bound, bound, shape).astype(dtype)  # noqa: E731
    table = rng.standard_normal((vocab_size, n_embd)).astype(dtype)
    if cell == "rnn":
        recurrence = RNN(uniform(n_embd, H), uniform(H, H), uniform(H))
    else:
        recurrence = GRU(uniform(n_embd, gates * H), uniform(H, gates * H), uniform(gates * H), uniform(gates * H))
    return Sequential([Embedding(table), recurrence, Affine(uniform(H, vocab_size), uniform(vocab_size))],
                      loss=SoftmaxWithLoss(), seed=rng)


def rnn(vocab_size: int, n_embd: int = 64, n_embd2: int = 64, seed=None, dtype=np.float32) -> Sequential:
    return recurrent(vocab_size, "rnn", n_embd, n_embd2, seed, dtype)


def gru(vocab_size: int, n_embd: int = 64, n_embd2: int = 64, seed=None, dtype=np.float32) -> Sequential:
    return recurrent(vocab_size, "gru", n_embd, n_embd2, seed, dtype)


rnn.__doc__ = gru.__doc__ = recurrent.__doc__

#: ``--model`` name -> (builder, the examples it learns from: "contexts" or "sequences").
MAKEMORE_MODELS = {"bigram": (bigram, "sequences"), "mlp-words": (mlp, "sequences"), "bow": (bow, "sequences"),
                   "mlp-bn": (mlp_bn, "contexts"),
                   "wavenet": (wavenet, "contexts"), "rnn": (rnn, "sequences"), "gru": (gru, "sequences"),
                   "transformer": (transformer, "sequences")}


def word_examples(model, words, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The examples ``model`` learns ``words`` from: contexts of its own ``block_size`` for a
    model that reads a fixed context (``input_shape`` set), else whole sequences of
    ``block_size`` positions."""
    from ..data.words import contexts, sequences

    context = _context_size(model)
    return contexts(words, context) if context is not None else sequences(words, block_size)


def _context_size(model) -> int | None:
    """The fixed context a model reads, or None for a model of whole sequences."""
    shape = getattr(model, "input_shape", None)
    return None if isinstance(model, GPT) or not shape else int(shape[0])


def generate_words(model, words, count: int, max_length: int | None = None, temperature: float = 1.0,
                   top_k: int | None = None, seed=None) -> list[str]:
    """``count`` new words from ``model``, each drawn character by character from the start
    token until the end token (or ``max_length`` characters; default the longest word of
    ``words``, makemore's): softmax(logits / temperature) over the ``top_k`` most likely, as
    :meth:`GPT.generate` draws (``temperature=0``: the most likely every time). ``words``: the
    :class:`handgrad.data.words.Words` the model learned (its vocabulary)."""
    ids, _ = _draw(model, count, _length(model, words, max_length), temperature, top_k, seed, keep_logits=False)
    return [words.decode(row) for row in ids]


def sample_words(model, words, count: int, max_length: int | None = None, temperature: float = 1.0,
                 top_k: int | None = None, seed=None) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, probabilities)``: what :func:`generate_words` draws with the same arguments and
    seed, the same draws (``[words.decode(row) for row in ids]`` are its words), and what the
    model thought of every character it drew.

    ``ids`` (count, L) int64: the characters drawn after the start token, L = ``max_length``
    (or the longest word); each word ends at its first 0, the end token (the ids after it were
    drawn and mean nothing). ``probabilities`` (count, L, V) float64: ``softmax(logits)`` of
    the model at each step, before temperature and top-k (how sure the model itself was, as
    the web page shows it), so ``probabilities[n, t, ids[n, t]]`` is the model's probability of
    the character it drew at step t."""
    from .. import functions as F

    ids, logits = _draw(model, count, _length(model, words, max_length), temperature, top_k, seed, keep_logits=True)
    return ids, F.softmax(np.asarray(logits, np.float64))


def _length(model, words, max_length: int | None) -> int:
    """The most characters a word may have: ``max_length``, else the longest word of ``words``;
    no more than the model's positions allow after the start token."""
    length = max_length if max_length is not None else words.block_size - 1
    positions = _positions(model)
    return length if positions is None else min(length, positions - 1)


def _positions(model) -> int | None:
    """How many positions a model of whole sequences can read (a GPT's, a BoW's position
    embeddings), or None if any number."""
    if isinstance(model, GPT):
        return model.block_size
    embeddings = [layer for layer in getattr(model, "layers", ()) if isinstance(layer, PositionEmbedding)]
    return embeddings[0].W.shape[0] if embeddings else None


def _draw(model, count: int, length: int, temperature: float, top_k, seed, keep_logits: bool):
    """``(ids (count, length), logits (count, length, V) or None)``: ``length`` characters drawn
    for each of ``count`` words from the start token, and (``keep_logits``) the logits each was
    drawn from. One draw per word and step from ``seed``'s generator, whether the logits are
    kept or not, so both give the same words."""
    rng = initializers.as_generator(seed)
    if isinstance(model, GPT):
        drawn = model.generate(np.zeros((count, 1), np.int64), length, temperature=temperature, top_k=top_k, seed=rng,
                               return_logits=keep_logits)
        ids, logits = drawn if keep_logits else (drawn, None)
        return ids[:, 1:], logits
    context = _context_size(model)
    out = np.zeros((count, (context or 1) + length), np.int64)
    kept = [] if keep_logits else None
    with model.mode(False):
        for step in range(length):
            if context is not None:
                logits = model.predict(out[:, step:step + context])
            else:
                logits = model.predict(out[:, :step + 1])[:, -1]
            if keep_logits:
                kept.append(np.asarray(logits))
            out[:, (context or 1) + step] = _sample(np.asarray(logits, np.float64), temperature, top_k, rng)
    if keep_logits:  # (count, length, V); no steps, no scores (and no V to size them by)
        kept = np.stack(kept, axis=1) if kept else np.zeros((count, 0, 0))
    return out[:, context or 1:], kept


def mark_words(samples, train_words, test_words) -> list[str]:
    """Each sample's group, as makemore prints them: ``"train"`` (in the training set),
    ``"test"`` (in the test set) or ``"new"``."""
    train, test = set(train_words), set(test_words)
    return ["train" if s in train else "test" if s in test else "new" for s in samples]
