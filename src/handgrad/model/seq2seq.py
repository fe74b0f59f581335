"""Sequence to sequence: an LSTM encoder reads a question, an LSTM decoder writes the answer,
one character at a time (the second book, chapters 7 and 8), with every gradient written out.

Three variants, the book's: plain (the decoder starts from the encoder's last state),
``peeky`` (that state is also fed to every decoder step and to the output layer) and
``attention`` (each decoder step looks back at all the encoder's states). ``reverse_input``
reads the question backwards, which the book shows helps. Batch-first, token ids stay integers.
"""

from __future__ import annotations


import numpy as np

from .. import init as initializers
from .. import validate
from ..data.text import CharVocab
from ..layers import LSTM, Affine, Attention, Embedding
from ..layers.base import check_sizes
from .base import Model

__all__ = ["Seq2seq"]

#: The longest question or answer a model may be built for (the book's are 29 and 11).
MAX_LENGTH = 4096


class Seq2seq(Model):
    """A character-level seq2seq model trained with teacher forcing.

    Shapes: questions ``x`` (N, Tq) ids, answers ``t`` (N, Ta) ids starting with the start
    symbol (the book's ``_``). Training predicts ``t[:, 1:]`` from ``t[:, :-1]``: scores
    ``(N, Ta - 1, V)``. Children (paths of ``params``): ``enc_embed`` (V, D), ``encoder``
    LSTM (D -> H), ``dec_embed`` (V, D), ``decoder`` LSTM (D [+ H if peeky] -> H),
    ``attention`` (no parameters), ``out`` Affine ((H or 2H) -> V).

    Forward, with ``hs = encoder(enc_embed(x))`` (N, Tq, H) and ``h = hs[:, -1]``:
    ``o = decoder(dec_embed(t_in) [, h at every step]) `` from initial state h;
    plain: ``scores = out(o)``; peeky: ``out([h, o])``; attention: ``out([attend(o, hs), o])``.
    Backward retraces it in reverse; ``h`` collects its gradient from every place it was used
    (the decoder's initial state, each peeky step, each attended position).
    """

    task = "seq2seq"

    def __init__(self, vocab: CharVocab, question_length: int, answer_length: int, embed: int = 16,
                 hidden: int = 128, peeky: bool = False, attention: bool = False, reverse_input: bool = False,
                 seed=None, dtype=np.float32) -> None:
        super().__init__()
        if peeky and attention:
            raise ValueError("Seq2seq: choose peeky or attention, not both")
        dtype = validate.float_dtype(dtype, who="Seq2seq")
        self.vocab = vocab if isinstance(vocab, CharVocab) else CharVocab(vocab)
        if "_" not in self.vocab.chars:
            raise ValueError("Seq2seq: the vocabulary needs the start symbol '_' (answers begin with it)")
        if any(not isinstance(ch, str) or len(ch) != 1 for ch in self.vocab.chars):
            raise ValueError(f"Seq2seq: the vocabulary must list single characters, got {self.vocab.chars[:5]!r:.60}")
        self.peeky, self.attention, self.reverse_input = bool(peeky), bool(attention), bool(reverse_input)
        # The limits load applies to a saved Seq2seq, from the same check (_sizes): a model that
        # can be built can be saved and loaded back.
        sizes = {"question_length": question_length, "answer_length": answer_length, "embed": embed, "hidden": hidden}
        sizes = {key: int(value) if isinstance(value, np.integer) else value for key, value in sizes.items()}
        try:
            self._sizes({"vocab": "".join(self.vocab.chars), "peeky": self.peeky, "attention": self.attention,
                         "reverse_input": self.reverse_input, **sizes})
        except ValueError as error:
            raise ValueError(f"Seq2seq: {error}") from None
        self.question_length, self.answer_length = sizes["question_length"], sizes["answer_length"]
        self.embed, self.hidden = sizes["embed"], sizes["hidden"]
        V, D, H = len(self.vocab), self.embed, self.hidden
        rng = initializers.as_generator(seed)

        def normal(shape, std):
            return (rng.standard_normal(shape) * std).astype(dtype)

        def lstm(n_in):  # the book's initialisation: Xavier-like 1/sqrt(fan_in)
            return LSTM(normal((n_in, 4 * H), 1 / np.sqrt(n_in)), normal((H, 4 * H), 1 / np.sqrt(H)), np.zeros(4 * H, dtype))

        self.add_child("enc_embed", Embedding(normal((V, D), 0.01)))
        self.add_child("encoder", lstm(D))
        self.add_child("dec_embed", Embedding(normal((V, D), 0.01)))
        self.add_child("decoder", lstm(D + H if peeky else D))
        if attention:
            self.add_child("attention", Attention())
        n_out = 2 * H if (peeky or attention) else H
        self.add_child("out", Affine(normal((n_out, V), 1 / np.sqrt(n_out)), np.zeros(V, dtype)))
        self._cache = None

    # --- description --------------------------------------------------------------------------

    def spec(self) -> dict:
        return {"model": "Seq2seq", "vocab": "".join(self.vocab.chars), "question_length": self.question_length,
                "answer_length": self.answer_length, "embed": self.embed, "hidden": self.hidden, "peeky": self.peeky,
                "attention": self.attention, "reverse_input": self.reverse_input}

    @classmethod
    def _sizes(cls, spec: dict):
        vocab = spec.get("vocab")
        if not isinstance(vocab, str) or not 1 <= len(vocab) < 2**16 or "_" not in vocab:
            raise ValueError(f"vocab must be a string of characters with the start symbol '_', got {str(vocab)[:40]}")
        validate.unicode_text(vocab, "vocab")
        if len(set(vocab)) != len(vocab):
            raise ValueError(f"vocab lists a character twice ({len(vocab)} entries, {len(set(vocab))} distinct)")
        for key in ("peeky", "attention", "reverse_input"):
            if not isinstance(spec.get(key), bool):
                raise ValueError(f"{key} must be true or false, got {str(spec.get(key))[:20]}")
        D, H = check_sizes(spec, "embed", "hidden")
        check_sizes(spec, "question_length", "answer_length", limit=MAX_LENGTH + 1)  # generation loops over them
        return len(vocab), D, H

    @classmethod
    def param_shapes(cls, spec: dict) -> dict:
        V, D, H = cls._sizes(spec)
        n_dec = D + H if spec["peeky"] else D
        n_out = 2 * H if (spec["peeky"] or spec["attention"]) else H
        return {"enc_embed.W": (V, D), "encoder.Wx": (D, 4 * H), "encoder.Wh": (H, 4 * H), "encoder.b": (4 * H,),
                "dec_embed.W": (V, D), "decoder.Wx": (n_dec, 4 * H), "decoder.Wh": (H, 4 * H), "decoder.b": (4 * H,),
                "out.W": (n_out, V), "out.b": (V,)}

    @classmethod
    def from_spec(cls, spec: dict, dtype=np.float32) -> "Seq2seq":
        cls._sizes(spec)
        return cls(CharVocab(spec["vocab"]), spec["question_length"], spec["answer_length"], embed=spec["embed"],
                   hidden=spec["hidden"], peeky=spec["peeky"], attention=spec["attention"],
                   reverse_input=spec["reverse_input"], seed=0, dtype=dtype)

    def describe(self) -> str:
        variant = "attention" if self.attention else "peeky" if self.peeky else "plain"
        return (f"seq2seq ({variant}{', reversed input' if self.reverse_input else ''}), embedding {self.embed}, "
                f"LSTM {self.hidden}, vocabulary {len(self.vocab)}")

    # --- modes (as Sequential) ------------------------------------------------------------------

    @property
    def input_shape(self) -> tuple:
        return (self.question_length,)

    # --- forward and backward -------------------------------------------------------------------

    def _check_ids(self, ids, length: int, what: str) -> np.ndarray:
        ids = np.asarray(ids)
        if ids.ndim != 2 or ids.shape[1] != length:
            raise ValueError(f"Seq2seq: expected {what} of shape (N, {length}), got {ids.shape}")
        return ids

    def encode(self, x) -> np.ndarray:
        """The encoder's states ``hs`` (N, Tq, H) for questions ``x`` (N, Tq)."""
        x = self._check_ids(x, self.question_length, "questions")
        if self.reverse_input:
            x = x[:, ::-1]
        embedded = self.call_child("enc_embed", self._children["enc_embed"].forward, x)
        return self.call_child("encoder", self._children["encoder"].forward, embedded)

    def decode(self, hs: np.ndarray, t_in) -> np.ndarray:
        """Scores (N, T, V) of the next character after each of ``t_in`` (N, T), given the
        encoder's states ``hs``."""
        c = self._children
        h = hs[:, -1]
        embedded = self.call_child("dec_embed", c["dec_embed"].forward, t_in)
        steps = embedded.shape[1]
        if self.peeky:
            embedded = np.concatenate([embedded, np.repeat(h[:, None], steps, axis=1)], axis=2)
        c["decoder"].set_state(h)
        o = self.call_child("decoder", c["decoder"].forward, embedded)
        if self.attention:
            features = np.concatenate([self.call_child("attention", c["attention"].forward, o, hs), o], axis=2)
        elif self.peeky:
            features = np.concatenate([np.repeat(h[:, None], steps, axis=1), o], axis=2)
        else:
            features = o
        return self.call_child("out", c["out"].forward, features)

    def scores_and_targets(self, x, t):
        """What ``fit`` trains on: scores for ``t[:, 1:]`` from ``t[:, :-1]`` (teacher forcing)."""
        t = self._check_ids(t, self.answer_length, "answers")
        hs = self.encode(x)
        scores = self.decode(hs, t[:, :-1])
        self._cache = hs.shape
        return scores, t[:, 1:]

    def predict(self, x, t):
        return self.scores_and_targets(x, t)[0]

    def backward_from_scores(self, dscores, input_grad: bool = False):
        """Add the gradients of the last scores ``dscores`` (N, Ta - 1, V) into every parameter's
        gradient; returns None (ids have none)."""
        self._require_forward(self._cache)
        c, H = self._children, self.hidden
        dfeatures = self.call_child("out", c["out"].backward, dscores)
        dhs = np.zeros(self._cache, dtype=dfeatures.dtype)
        if self.attention:
            dcontext, do = dfeatures[..., :H], dfeatures[..., H:]
            do_att, dhs_att = self.call_child("attention", c["attention"].backward, dcontext)
            do = do + do_att
            dhs += dhs_att
            dh = 0.0
        elif self.peeky:
            dh, do = dfeatures[..., :H].sum(axis=1), dfeatures[..., H:]
        else:
            do, dh = dfeatures, 0.0
        dembedded = self.call_child("decoder", c["decoder"].backward, do)
        dh = dh + c["decoder"].dh
        if self.peeky:
            dh = dh + dembedded[..., self.embed:].sum(axis=1)
            dembedded = dembedded[..., :self.embed]
        self.call_child("dec_embed", c["dec_embed"].backward, dembedded)
        dhs[:, -1] += dh
        dx_embedded = self.call_child("encoder", c["encoder"].backward, dhs)
        self.call_child("enc_embed", c["enc_embed"].backward, dx_embedded)
        return None

    # --- answering -----------------------------------------------------------------------------

    def generate(self, x) -> np.ndarray:
        """Greedy answers (N, Ta) for questions ``x`` (N, Tq): the start symbol, then at each
        step the most likely next character given the ones chosen so far."""
        x = self._check_ids(x, self.question_length, "questions")
        start = self.vocab.id_of("_")
        answers = np.full((len(x), self.answer_length), start, dtype=np.int64)
        with self.mode(False):
            hs = self.encode(x)
            for step in range(1, self.answer_length):
                answers[:, step] = self.decode(hs, answers[:, :step])[:, -1].argmax(axis=-1)
        return answers

    def count_correct(self, x, t, scores, targets) -> tuple[int, int]:
        """Whole answers right, of all answers: in training mode from the teacher-forced scores
        (free), in evaluation mode by generating each answer (what a user gets)."""
        if self.training:
            right = np.all(scores.argmax(axis=-1) == targets, axis=1)
        else:
            right = np.all(self.generate(x) == np.asarray(t), axis=1)
        return int(np.sum(right)), len(right)

    def answer(self, question: str) -> str:
        """The model's answer to one question written as text (padded with spaces as the
        book's data are; a question too long or with unknown characters is refused)."""
        if not question:
            raise ValueError("the question is empty")
        if len(question) > self.question_length:
            raise ValueError(f"the question has {len(question)} characters; this model reads at most "
                             f"{self.question_length}")
        ids = self.vocab.encode(question.ljust(self.question_length))[None]
        return self.vocab.decode(self.generate(ids)[0, 1:]).strip()

    def accuracy(self, x, t, batch_size: int = 1000) -> float:
        """Fraction of questions whose generated answer is entirely right."""
        right = sum(int(np.sum(np.all(self.generate(x[i:i + batch_size]) == t[i:i + batch_size], axis=1)))
                    for i in range(0, len(x), batch_size))
        return right / len(x)
