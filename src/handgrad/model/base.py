"""The one model protocol: a :class:`Model` is a :class:`~handgrad.layers.Layer` with a loss.

Every ready model (``Sequential`` and the ConvNets built on it, ``Seq2seq``, ``GPT``) is a
``Model``, and everything that trains, saves, serves, traces or plots a model calls the methods
declared here instead of asking which type it holds:

* ``predict(x)``: the scores (the last layer's output), no loss. ``forward`` is the same.
* ``scores_and_targets(x, t)``: what the loss layer compares for a batch: ``(predict(x), t)``,
  unless the model feeds its targets in (a seq2seq decoder reads the answer, teacher forcing).
* ``loss(x, t)``: the loss layer on those, plus ``weight_penalty()``; a Python float.
* ``backward(dout=1.0)``: zero every gradient, then backpropagate the last loss (times
  ``dout``) into them: exactly one step's gradients. A model writes ``backward_from_scores``.
* ``count_correct(x, t, scores, targets)`` and ``accuracy(x, t)``: how the task counts right
  answers (one per sample, one per token, or whole answers).
* ``params`` / ``grads`` / ``buffers`` / ``named_layers()`` / ``zero_grad()`` / ``train()`` /
  ``eval()`` / ``mode()``: the :class:`Layer`'s, by path (``"0.W"``, ``"h.2.attn.W_qkv"``).

docs/design.md#model-protocol says the same for users.
"""

from __future__ import annotations

import numpy as np

from .. import functions as F
from ..layers import Layer, SoftmaxWithLoss


class Model(Layer):
    """A layer with a loss: see the module docstring for the protocol.

    A subclass builds its children, sets ``self.loss_layer`` (``SoftmaxWithLoss()`` by
    default) and writes :meth:`predict` and :meth:`backward_from_scores`."""

    #: What the model learns, for the commands that choose what to do with a saved model:
    #: ``"classifier"`` (scores (N, C) of one class per sample), ``"language model"`` (next-token
    #: logits (N, T, V)) or ``"seq2seq"`` (answers to questions).
    task = "classifier"

    def __init__(self, loss: Layer | None = None) -> None:
        super().__init__()
        if loss is not None and not isinstance(loss, Layer):
            raise TypeError(f"{self.name}: loss must be a handgrad.layers.Layer (e.g. SoftmaxWithLoss()), "
                            f"got {type(loss).__name__}")
        self.loss_layer = SoftmaxWithLoss() if loss is None else loss

    # --- what a model writes ------------------------------------------------------------------

    def predict(self, x) -> np.ndarray:  # pragma: no cover - every model overrides it
        """The scores for ``x``; keeps what :meth:`backward_from_scores` needs."""
        raise NotImplementedError

    def backward_from_scores(self, dscores, input_grad: bool = True):  # pragma: no cover
        """Add the gradients of the last forward's scores ``dscores`` into every gradient and
        return dL/d input (None where the input has no gradient, or ``input_grad=False``)."""
        raise NotImplementedError

    # --- declared once ------------------------------------------------------------------------

    def forward(self, x) -> np.ndarray:
        return self.predict(x)

    def scores_and_targets(self, x, t):
        """What the loss layer compares for a batch: ``(predict(x), t)``."""
        return self.predict(x), t

    def loss(self, x, t) -> float:
        """The loss of a batch: the loss layer on :meth:`scores_and_targets`, plus
        :meth:`weight_penalty`. Keeps what :meth:`backward` needs."""
        return self.loss_layer.forward(*self.scores_and_targets(x, t)) + self.weight_penalty()

    def weight_penalty(self) -> float:
        """A penalty the model adds to its data loss (the book's L2 weight decay); 0 here."""
        return 0.0

    def backward(self, dout: float = 1.0, input_grad: bool = True):
        """Backpropagate the last :meth:`loss` (times ``dout``): every gradient is zeroed
        first, so they hold exactly this step's (layers add into them, contract v2). Returns
        dL/d input, or None (token ids have none; ``input_grad=False`` skips it)."""
        self._zero_grads_lazily()
        return self.backward_from_scores(self.loss_layer.backward(dout), input_grad=input_grad)

    def train(self, mode: bool = True) -> "Model":
        """Training mode for every layer, the loss layer included (``mode=False``: evaluation)."""
        super().train(mode)
        self.loss_layer.train(mode)
        return self

    def count_correct(self, x, t, scores, targets) -> tuple[int, int]:
        """``(correct, counted)`` for a batch: one prediction per sample for scores ``(N, C)``,
        one per token for ``(N, T, C)``, leaving out positions whose target is the loss's
        ``ignore_index``. Never more correct than counted."""
        targets = np.asarray(targets)
        labels = targets.argmax(axis=-1) if targets.shape == np.shape(scores) else targets
        hits = np.asarray(scores).argmax(axis=-1) == labels
        ignore_index = getattr(self.loss_layer, "ignore_index", None)
        if ignore_index is not None and labels.dtype.kind in "iu":
            counted = labels != ignore_index
            return int(np.sum(hits & counted)), int(np.sum(counted))
        return int(np.sum(hits)), int(hits.size)

    def accuracy(self, x, t, batch_size: int = 1000) -> float:
        """The share of right answers over every sample (the last partial batch included), as
        :meth:`count_correct` counts them, in evaluation mode."""
        if len(x) != len(t):
            raise ValueError(f"accuracy: {len(x)} samples but {len(t)} labels")
        if not len(x):
            return float("nan")
        correct = counted = 0
        with self.mode(False):
            for start in range(0, len(x), batch_size):
                xb, tb = x[start:start + batch_size], t[start:start + batch_size]
                right, count = self.count_correct(xb, tb, *self.scores_and_targets(xb, tb))
                correct, counted = correct + right, counted + count
        return correct / max(counted, 1)

    def predict_classes(self, x, batch_size: int = 1000) -> np.ndarray:
        """Index of the highest score for every sample, computed in evaluation mode by batches."""
        if not len(x):
            return np.zeros(0, int)
        with self.mode(False):
            return np.concatenate([self.predict(x[i:i + batch_size]).argmax(axis=-1)
                                   for i in range(0, len(x), batch_size)])

    def predict_proba(self, x, batch_size: int = 1000) -> np.ndarray:
        """Softmax probabilities for every sample, in evaluation mode."""
        with self.mode(False):
            return np.concatenate([F.softmax(self.predict(x[i:i + batch_size])) for i in range(0, len(x), batch_size)])

    @property
    def num_params(self) -> int:
        return int(sum(value.size for value in self.params.values()))

    @property
    def dtype(self) -> np.dtype:
        """The model's precision: its parameters' dtype (float32 if it has none)."""
        return next(iter(self.params.values())).dtype if self.params else np.dtype(np.float32)

    #: One sample's shape, where the model knows it (``(C, H, W)`` for ConvNets).
    input_shape: tuple | None = None

    @property
    def input_size(self) -> int | None:
        """Values per sample the model expects (None if it cannot tell)."""
        return None if self.input_shape is None else int(np.prod(self.input_shape))
