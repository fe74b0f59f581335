"""Loss layers: ``loss = forward(x, t)`` returns a Python float, ``dx = backward(dout=1.0)``."""

from __future__ import annotations

import numpy as np

from .. import functions as F
from .base import Layer


class SoftmaxWithLoss(Layer):
    """Softmax followed by cross-entropy, fused: the loss is computed from ``log_softmax(x)``
    (no ``delta`` inside a log, so no bias and no overflow), averaged over the batch.

    Shapes: x ``(N, C)`` scores (logits), or ``(C,)`` for one sample (N = 1). ``t``: integer
    labels ``(N,)`` (a scalar for one sample), or one-hot / probability rows of x's shape.

    Backward: ``dx = dout * (y * sum_k(t_k) - t) / N`` with ``y = softmax(x)``: the familiar
    ``(y - t) / N`` when each target row sums to 1 (labels, one-hot, probabilities), and still
    the exact gradient when it does not. N is the number of rows of x (1 for a 1-D input), never
    the labels' length. ``label_smoothing`` follows PyTorch's ``CrossEntropyLoss``.

    Attributes after forward: ``y`` (softmax probabilities), ``t`` (the targets as given),
    ``loss``.
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"SoftmaxWithLoss: label_smoothing must be in [0, 1], got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)
        self.y: np.ndarray | None = None
        self.t = None
        self.loss: float | None = None
        self._target = None

    def spec(self) -> dict:
        return {"type": self.name, "label_smoothing": self.label_smoothing}

    @classmethod
    def from_spec(cls, spec: dict, dtype=np.float32) -> "SoftmaxWithLoss":
        return cls(label_smoothing=float(spec.get("label_smoothing", 0.0)))

    def forward(self, x, t) -> float:
        x = F.check_scores(x, self.name)
        kind, target = F.parse_targets(t, x.shape, self.name)
        log_probs = F.log_softmax(x)
        losses = F.cross_entropy_from_log_probs(log_probs, kind, target, self.label_smoothing)
        self.y = np.exp(log_probs)
        self.t = t
        self._target = (kind, target)
        self.loss = float(np.mean(losses))
        return self.loss

    def backward(self, dout=1.0):
        self._require_forward(self.y)
        if np.ndim(dout) != 0:
            raise ValueError(f"{self.name}: backward expects a scalar dout (the loss is a scalar), got shape {np.shape(dout)}")
        kind, target = self._target
        batch_size = 1 if self.y.ndim == 1 else self.y.shape[0]
        num_classes = self.y.shape[-1]
        if kind == "index" and not self.label_smoothing:
            # y - one_hot(t), without building the one-hot matrix.
            dx = self.y.copy()
            rows = dx.reshape(-1, num_classes)
            rows[np.arange(rows.shape[0]), target.reshape(-1)] -= 1.0
        else:
            q = F.target_distribution(kind, target, num_classes, self.label_smoothing, self.y.dtype)
            dx = self.y * np.sum(q, axis=-1, keepdims=True) - q
        dx *= float(dout) / batch_size
        return dx
