"""Loss layers: ``loss = forward(x, t)`` returns a Python float, ``dx = backward(dout=1.0)``."""

from __future__ import annotations

import numpy as np

from .. import functions as F
from .base import Layer


class SoftmaxWithLoss(Layer):
    """Softmax followed by cross-entropy, fused: the loss is computed from ``log_softmax(x)``
    (no ``delta`` inside a log, so no bias and no overflow), averaged over the counted positions.

    Shapes: x ``(N, C)`` scores (logits), ``(N, T, C)`` for sequences (batch-first: C classes at
    each of T positions), or ``(C,)`` for one sample. ``t``: integer labels of x's shape without
    the class axis, ``(N,)`` / ``(N, T)`` (a scalar for one sample), or one-hot / probability
    rows of x's shape.

    ``ignore_index`` (default -100, PyTorch's; integer labels only): positions whose label equals
    it count in neither the loss nor its mean, and their gradient is 0. The mean is over the M
    counted positions (M = N, or N T for sequences, when nothing is ignored). If every position
    is ignored the loss is nan (0 / 0, as ``torch.nn.functional.cross_entropy``) and the
    gradient is 0.

    Backward: ``dx = dout * (y * sum_k(q_k) - q) / M`` at each counted position, with
    ``y = softmax(x)`` and q the target row (one-hot of the label, or the given row, smoothed as
    ``(1 - eps) q + eps / C`` by ``label_smoothing = eps``, as PyTorch's ``CrossEntropyLoss``):
    the familiar ``(y - t) / M`` when each target row sums to 1, and still the exact gradient
    when it does not. M comes from the scores and the mask, never from the labels' length.

    Attributes after forward: ``y`` (softmax probabilities), ``t`` (the targets as given),
    ``loss``.
    """

    def __init__(self, label_smoothing: float = 0.0, ignore_index: int = -100) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"SoftmaxWithLoss: label_smoothing must be in [0, 1], got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)
        self.ignore_index = F.check_ignore_index(ignore_index, self.name)
        self.y: np.ndarray | None = None
        self.t = None
        self.loss: float | None = None
        self._target = None

    def spec(self) -> dict:
        return {"type": self.name, "label_smoothing": self.label_smoothing, "ignore_index": self.ignore_index}

    @classmethod
    def from_spec(cls, spec: dict, dtype=np.float32) -> "SoftmaxWithLoss":
        # Files written before ignore_index existed have none: they meant PyTorch's default.
        return cls(label_smoothing=float(spec.get("label_smoothing", 0.0)), ignore_index=spec.get("ignore_index", -100))

    def forward(self, x, t) -> float:
        x = F.check_scores(x, self.name)
        kind, target = F.parse_targets(t, x.shape, self.name, self.ignore_index)
        losses, valid, self.y = F.softmax_cross_entropy(x, kind, target, self.label_smoothing, self.ignore_index,
                                                        want_probs=True)
        self.t = t
        self._target = (kind, target, valid)
        self.loss = F.reduce_losses(losses, valid, "mean")
        return self.loss

    def backward(self, dout=1.0):
        self._require_forward(self.y)
        if np.ndim(dout) != 0:
            raise ValueError(f"{self.name}: backward expects a scalar dout (the loss is a scalar), got shape {np.shape(dout)}")
        kind, target, valid = self._target
        num_classes = self.y.shape[-1]
        if kind == "index":
            # y - q with q = (1 - eps) one_hot(t) + eps / C, without building q (C may be 50257).
            eps = self.label_smoothing
            dx = self.y - eps / num_classes if eps else self.y.copy()
            rows = dx.reshape(-1, num_classes)
            labels = target.reshape(-1) if valid is None else np.where(valid, target, 0).reshape(-1)
            rows[np.arange(rows.shape[0]), labels] -= 1.0 - eps
        else:
            q = F.target_distribution(kind, target, num_classes, self.label_smoothing, self.y.dtype)
            dx = self.y * np.sum(q, axis=-1, keepdims=True) - q
        if valid is not None:
            dx[~valid] = 0  # ignored positions: no gradient
            count = int(np.count_nonzero(valid))
        else:
            count = dx.size // num_classes
        dx *= float(dout) / count if count else 0.0
        return dx
