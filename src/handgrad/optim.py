"""Optimizers with the book's interface, ``optimizer.update(params, grads)``, and torch.optim's
hyper-parameter names and update rules (so results carry over between the two).

``params`` and ``grads`` are mappings with the same keys (a model's ``params`` / ``grads``);
every update is written into the ``params`` arrays in place. Per-parameter state (momentum
buffers, running averages) is keyed by the same names; ``state_dict()`` /
``load_state_dict()`` save and restore it exactly, for checkpoints.

Weight decay: ``weight_decay=λ`` adds ``λ p`` to the gradient (L2 regularisation, torch's
``weight_decay``) in every optimizer but :class:`AdamW`, which decays the weights directly,
``p -= lr λ p``, separately from the adaptive step (decoupled weight decay).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["Optimizer", "SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam", "AdamW",
           "StepLR", "CosineAnnealingLR", "WarmupCosineLR", "OPTIMIZERS", "clip_grad_norm"]


class Optimizer:
    """Base class: validation, step counting and per-parameter state."""

    def __init__(self, lr: float, weight_decay: float = 0.0) -> None:
        if not (np.isfinite(lr) and lr >= 0):
            raise ValueError(f"{type(self).__name__}: lr must be a finite number >= 0, got {lr}")
        if not (np.isfinite(weight_decay) and weight_decay >= 0):
            raise ValueError(f"{type(self).__name__}: weight_decay must be a finite number >= 0, got {weight_decay}")
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.step_count = 0
        self.state: dict[str, dict[str, np.ndarray]] = {}
        self._scratch_buffers: dict[str, np.ndarray] = {}

    def _scratch(self, name: str, param: np.ndarray) -> np.ndarray:
        """A buffer shaped and typed like ``param`` for the update's intermediate values, reused
        every step (it holds nothing between steps, so it is not in ``state_dict``). A read-only
        one, as after unpickling from a memory map, is replaced."""
        buffer = self._scratch_buffers.get(name)
        if (buffer is None or buffer.shape != param.shape or buffer.dtype != param.dtype
                or not buffer.flags.writeable):
            buffer = self._scratch_buffers[name] = np.empty_like(param)
        return buffer

    def _check_pairs(self, params, grads) -> None:
        """Every parameter has a gradient of its shape, checked before anything is updated (so a
        refused step leaves no parameter half-way)."""
        if set(params) != set(grads):
            raise KeyError(f"{type(self).__name__}: params and grads have different keys: "
                           f"{sorted(set(params) ^ set(grads))}")
        for name, param in params.items():
            if grads[name].shape != param.shape:
                raise ValueError(f"{type(self).__name__}: gradient {name!r} has shape {grads[name].shape}, "
                                 f"parameter has {param.shape}")

    def update(self, params, grads) -> None:
        """One step: update every array of ``params`` in place from ``grads`` (same keys)."""
        self._check_pairs(params, grads)
        self.step_count += 1
        for name, param in params.items():
            self._update_one(name, param, grads[name], self.state.setdefault(name, {}))

    def _update_one(self, name: str, param: np.ndarray, grad: np.ndarray, state: dict) -> None:
        raise NotImplementedError

    def _decayed(self, param, grad):
        """L2 regularisation as torch applies it: the gradient of ``λ/2 |p|^2`` joins the grad."""
        return grad + self.weight_decay * param if self.weight_decay else grad

    def state_dict(self) -> dict:
        """Everything needed to continue exactly: hyper-parameters, step count, buffers."""
        return {"lr": self.lr, "step_count": self.step_count,
                "state": {name: {k: v.copy() for k, v in s.items()} for name, s in self.state.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.lr = float(state["lr"])
        self.step_count = int(state["step_count"])
        self.state = {name: {k: np.array(v) for k, v in s.items()} for name, s in state["state"].items()}

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in vars(self).items() if k not in ("state", "step_count", "_scratch_buffers", "_flat"))
        return f"{type(self).__name__}({fields})"


class SGD(Optimizer):
    """Stochastic gradient descent, torch.optim.SGD's rule.

    ``g = grad + λ p``; with momentum μ: ``buf = g`` on the first step, then
    ``buf = μ buf + (1 - dampening) g``; the step direction is ``buf``, or ``g + μ buf`` with
    ``nesterov=True``; finally ``p -= lr * direction``.
    """

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False) -> None:
        super().__init__(lr, weight_decay)
        if not momentum >= 0:
            raise ValueError(f"SGD: momentum must be >= 0, got {momentum}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov=True needs momentum > 0 and dampening = 0")
        self.momentum, self.dampening, self.nesterov = float(momentum), float(dampening), bool(nesterov)

    def _update_one(self, name, param, grad, state):
        g = self._decayed(param, grad)
        if self.momentum:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = np.array(g, dtype=param.dtype, copy=True)
            else:
                buf = state["momentum_buffer"]
                buf *= self.momentum
                buf += (1.0 - self.dampening) * g
            buf = state["momentum_buffer"]
            g = g + self.momentum * buf if self.nesterov else buf
        param -= self.lr * g


class Momentum(SGD):
    """SGD with momentum (default 0.9): torch's form of the book's Momentum."""

    def __init__(self, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 0.0) -> None:
        super().__init__(lr, momentum=momentum, weight_decay=weight_decay)


class Nesterov(SGD):
    """Nesterov momentum as torch's ``SGD(nesterov=True)``: step ``g + μ buf``. (The book's
    Nesterov formula is a different rearrangement and gives different iterates.)"""

    def __init__(self, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 0.0) -> None:
        super().__init__(lr, momentum=momentum, weight_decay=weight_decay, nesterov=True)


class AdaGrad(Optimizer):
    """torch.optim.Adagrad: ``sum += g^2``, ``p -= lr_t g / (sqrt(sum) + eps)`` with
    ``lr_t = lr / (1 + (t - 1) lr_decay)``."""

    def __init__(self, lr: float = 0.01, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10) -> None:
        super().__init__(lr, weight_decay)
        self.lr_decay, self.initial_accumulator_value, self.eps = float(lr_decay), float(initial_accumulator_value), float(eps)

    def _update_one(self, name, param, grad, state):
        g = self._decayed(param, grad)
        if "sum" not in state:
            state["sum"] = np.full_like(param, self.initial_accumulator_value)
        state["sum"] += g * g
        lr = self.lr / (1.0 + (self.step_count - 1) * self.lr_decay)
        param -= lr * g / (np.sqrt(state["sum"]) + self.eps)


class RMSprop(Optimizer):
    """torch.optim.RMSprop: ``v = α v + (1 - α) g^2``; ``p -= lr g / (sqrt(v) + eps)``
    (``centered`` subtracts the squared mean gradient under the root; ``momentum`` keeps a
    buffer of those steps)."""

    def __init__(self, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum: float = 0.0, centered: bool = False) -> None:
        super().__init__(lr, weight_decay)
        self.alpha, self.eps, self.momentum, self.centered = float(alpha), float(eps), float(momentum), bool(centered)

    def _update_one(self, name, param, grad, state):
        g = self._decayed(param, grad)
        if "square_avg" not in state:
            state["square_avg"] = np.zeros_like(param)
            if self.centered:
                state["grad_avg"] = np.zeros_like(param)
            if self.momentum:
                state["momentum_buffer"] = np.zeros_like(param)
        square_avg = state["square_avg"]
        square_avg *= self.alpha
        square_avg += (1.0 - self.alpha) * g * g
        if self.centered:
            grad_avg = state["grad_avg"]
            grad_avg *= self.alpha
            grad_avg += (1.0 - self.alpha) * g
            denom = np.sqrt(square_avg - grad_avg * grad_avg) + self.eps
        else:
            denom = np.sqrt(square_avg) + self.eps
        if self.momentum:
            buf = state["momentum_buffer"]
            buf *= self.momentum
            buf += g / denom
            param -= self.lr * buf
        else:
            param -= self.lr * g / denom


_FLAT_BELOW = 16_384  # values: parameters smaller than this are stepped together (Adam.update)
_CHUNK = 65_536  # values of the flat buffers per pass: four such chunks stay in the core's cache


class Adam(Optimizer):
    """torch.optim.Adam: ``m = β1 m + (1 - β1) g``, ``v = β2 v + (1 - β2) g^2``,
    ``p -= lr / (1 - β1^t) * m / (sqrt(v) / sqrt(1 - β2^t) + eps)``."""

    decoupled_weight_decay = False
    matrices_only = False

    def __init__(self, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(lr, weight_decay)
        beta1, beta2 = betas
        if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
            raise ValueError(f"{type(self).__name__}: betas must lie in [0, 1), got {betas}")
        self.betas, self.eps = (float(beta1), float(beta2)), float(eps)
        self._flat = None  # the flat buffers of update(), made on its first step

    # Small parameters are stepped together. Per parameter, the step below is 13 NumPy calls,
    # each with ~1 us of its own cost: a model of 53 small arrays (makemore's Transformer, 205k
    # values) spent 0.94 ms a step in them. So the moments of parameters below _FLAT_BELOW values
    # live in one flat buffer each (``state`` holds views of it, keyed and shaped as before); a
    # step copies their gradients into a flat buffer end to end, runs the arithmetic over it in
    # cache-sized chunks, and subtracts each parameter's slice of the result: 0.74 ms. A large
    # parameter is stepped on its own: its calls' cost is small beside its values', and the copy
    # in and out would cost more than it saves (nanoGPT's GPT, 810k values: 2.4 ms one by one,
    # 2.7 ms all flat, 2.3 ms with the 36 of its 52 arrays below 16,384 values flat; 2-core Intel
    # Xeon). Every value sees the same operations in the same order either way: the same result,
    # bit for bit (tested).

    def update(self, params, grads) -> None:
        self._check_pairs(params, grads)
        names = list(params)
        self.step_count += 1
        small = [name for name in names if params[name].size < _FLAT_BELOW]
        if len({params[name].dtype for name in small}) > 1:
            small = []  # mixed precisions: one parameter at a time
        for name in names:
            if params[name].size >= _FLAT_BELOW or not small:
                self._update_one(name, params[name], grads[name], self.state.setdefault(name, {}))
        if not small:
            return
        flat = self._flat_buffers(small, params)
        g, scratch = flat["grad"], flat["scratch"]
        for name, (start, stop) in flat["slices"].items():  # g: the gradients, end to end
            param, grad, segment = params[name], grads[name], g[start:stop]
            if self.decoupled_weight_decay:
                if self.weight_decay and (not self.matrices_only or param.ndim >= 2):
                    param *= 1.0 - self.lr * self.weight_decay
                np.copyto(segment, grad.reshape(-1))
            elif self.weight_decay:  # L2: g = grad + λ p
                np.multiply(param.reshape(-1), self.weight_decay, out=segment)
                segment += grad.reshape(-1)
            else:
                np.copyto(segment, grad.reshape(-1))
        m, v = flat["exp_avg"], flat["exp_avg_sq"]
        for start in range(0, g.size, _CHUNK):
            chunk = slice(start, start + _CHUNK)
            self._adam_step(m[chunk], v[chunk], g[chunk], scratch[chunk])  # the step, into scratch
        for name, (start, stop) in flat["slices"].items():
            param = params[name]
            param -= scratch[start:stop].reshape(param.shape)

    def _flat_buffers(self, names, params) -> dict:
        """The flat moments, gradient and scratch buffers for these parameters, made on the first
        step (or when the parameters or a loaded state change): each parameter's moments, where
        ``state`` has them, are copied in, and ``state`` then holds views of the buffers."""
        layout = tuple((name, params[name].shape, params[name].dtype) for name in names)
        flat = self._flat
        if flat is not None and flat["layout"] == layout:
            return flat
        dtype = params[names[0]].dtype
        sizes = [params[name].size for name in names]
        ends = np.cumsum(sizes).tolist()
        slices = {name: (end - size, end) for name, size, end in zip(names, sizes, ends)}
        total = ends[-1] if ends else 0
        flat = {"layout": layout, "slices": slices, "grad": np.empty(total, dtype), "scratch": np.empty(total, dtype),
                "exp_avg": np.zeros(total, dtype), "exp_avg_sq": np.zeros(total, dtype)}
        for name, (start, stop) in slices.items():
            state = self.state.setdefault(name, {})
            for key in ("exp_avg", "exp_avg_sq"):
                view = flat[key][start:stop].reshape(params[name].shape)
                if key in state:
                    np.copyto(view, state[key])
                state[key] = view
        self._flat = flat
        return flat

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self._flat = None  # the loaded moments are copied into new flat buffers on the next step

    def __getstate__(self) -> dict:
        # A copy (copy.deepcopy, pickle) would hold the buffers and the state's views of them as
        # separate arrays: it leaves the buffers out and makes its own from its state.
        return {key: value for key, value in vars(self).items() if key != "_flat"}

    def __setstate__(self, values: dict) -> None:
        vars(self).update(values)
        self._flat = None

    def _adam_step(self, m, v, g, scratch):
        """``lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)`` after updating m and v
        with g, in ``scratch`` (returned); every line one pass, no temporaries."""
        beta1, beta2 = self.betas
        np.multiply(g, 1.0 - beta1, out=scratch)
        m *= beta1
        m += scratch  # m = beta1 m + (1 - beta1) g
        np.multiply(g, g, out=scratch)
        scratch *= 1.0 - beta2
        v *= beta2
        v += scratch  # v = beta2 v + (1 - beta2) g^2
        t = self.step_count
        step_size = self.lr / (1.0 - beta1**t)
        denom = np.sqrt(v, out=scratch)
        denom /= math.sqrt(1.0 - beta2**t)
        denom += self.eps  # sqrt(v) / sqrt(1 - beta2^t) + eps
        step = np.divide(m, denom, out=scratch)
        step *= step_size
        return step

    def _update_one(self, name, param, grad, state):
        """One parameter's step: a large parameter's (and every one's when precisions are mixed);
        :meth:`update` steps the small ones together."""
        if self.decoupled_weight_decay:
            if self.weight_decay and (not self.matrices_only or param.ndim >= 2):
                param *= 1.0 - self.lr * self.weight_decay
            g = grad
        else:
            g = self._decayed(param, grad)
        if "exp_avg" not in state:
            state["exp_avg"], state["exp_avg_sq"] = np.zeros_like(param), np.zeros_like(param)
        # One scratch buffer per parameter, kept across steps (not part of the state).
        param -= self._adam_step(state["exp_avg"], state["exp_avg_sq"], g, self._scratch(name, param))


class AdamW(Adam):
    """torch.optim.AdamW: Adam whose weight decay is decoupled, ``p -= lr λ p`` before the step.

    ``matrices_only=True`` decays only parameters of two or more dimensions (weight matrices
    and embeddings), not biases or LayerNorm's gains: nanoGPT's two parameter groups."""

    decoupled_weight_decay = True

    def __init__(self, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.01,
                 matrices_only: bool = False) -> None:
        super().__init__(lr, betas, eps, weight_decay)
        self.matrices_only = bool(matrices_only)


class WarmupCosineLR:
    """nanoGPT's learning rate by step: linear warmup, then cosine decay to ``min_lr``.

    ``lr_at(it) = base_lr (it + 1) / (warmup + 1)`` while ``it < warmup``; ``min_lr`` after
    ``decay_steps``; in between ``min_lr + (base_lr - min_lr) (1 + cos(pi r)) / 2`` with
    ``r = (it - warmup) / (decay_steps - warmup)``. Stateless: the trainer sets the optimizer's
    ``lr = lr_at(step)`` before every step (so a resumed run needs only the step count)."""

    def __init__(self, base_lr: float, warmup_steps: int, decay_steps: int, min_lr: float = 0.0) -> None:
        if not (0 <= warmup_steps <= decay_steps) or decay_steps < 1 or not 0 <= min_lr <= base_lr:
            raise ValueError(f"WarmupCosineLR: need 0 <= warmup_steps <= decay_steps, decay_steps >= 1 and "
                             f"0 <= min_lr <= base_lr; got {warmup_steps}, {decay_steps}, {min_lr}, {base_lr}")
        self.base_lr, self.warmup_steps = float(base_lr), int(warmup_steps)
        self.decay_steps, self.min_lr = int(decay_steps), float(min_lr)

    def lr_at(self, it: int) -> float:
        if it < self.warmup_steps:
            return self.base_lr * (it + 1) / (self.warmup_steps + 1)
        if it > self.decay_steps:
            return self.min_lr
        ratio = (it - self.warmup_steps) / max(self.decay_steps - self.warmup_steps, 1)
        return self.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (self.base_lr - self.min_lr)


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "nesterov": Nesterov, "adagrad": AdaGrad,
              "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}


# --- learning-rate schedules by epoch: pure functions lr_at(epoch), with torch's step() too -------


class _Schedule:
    """A learning rate by epoch, ``lr_at(epoch)``: a pure function of the epoch and the
    hyper-parameters, which is what :func:`handgrad.fit` (``schedule=``) reads, so nothing of a
    schedule is training state (a resumed run needs only the epoch count).

    ``base_lr``: a number, or an optimizer whose ``lr`` it takes; given an optimizer, ``step()``
    also works as torch's ``lr_scheduler``: advance one epoch and set the optimizer's ``lr``."""

    def __init__(self, base_lr) -> None:
        self.optimizer = base_lr if isinstance(base_lr, Optimizer) else None
        self.base_lr = float(self.optimizer.lr if self.optimizer is not None else base_lr)
        if not (math.isfinite(self.base_lr) and self.base_lr >= 0):
            raise ValueError(f"{type(self).__name__}: the base learning rate must be a finite number >= 0, "
                             f"got {self.base_lr}")
        self.epoch = 0

    def step(self) -> float:
        """torch's interface: advance one epoch and set the optimizer's ``lr``; returns it."""
        if self.optimizer is None:
            raise TypeError(f"{type(self).__name__}: step() sets an optimizer's lr; this schedule was made from a "
                            "number (read lr_at(epoch) instead)")
        self.epoch += 1
        self.optimizer.lr = self.lr_at(self.epoch)
        return self.optimizer.lr

    def lr_at(self, epoch: int) -> float:  # pragma: no cover - every schedule overrides it
        raise NotImplementedError


class StepLR(_Schedule):
    """``lr = base_lr * gamma ** (epoch // step_size)`` (torch.optim.lr_scheduler.StepLR)."""

    def __init__(self, base_lr, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(base_lr)
        if step_size < 1:
            raise ValueError(f"StepLR: step_size must be >= 1, got {step_size}")
        self.step_size, self.gamma = int(step_size), float(gamma)

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(_Schedule):
    """``lr = eta_min + (base_lr - eta_min) (1 + cos(pi epoch / T_max)) / 2`` for epochs up to
    ``T_max`` (torch.optim.lr_scheduler.CosineAnnealingLR's closed form)."""

    def __init__(self, base_lr, T_max: int, eta_min: float = 0.0) -> None:
        super().__init__(base_lr)
        if T_max < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be >= 1, got {T_max}")
        self.T_max, self.eta_min = int(T_max), float(eta_min)

    def lr_at(self, epoch: int) -> float:
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2


# --- gradient clipping ----------------------------------------------------------------------------


def clip_grad_norm(grads, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False) -> float:
    """Scale every gradient in place so that their total norm is at most ``max_norm``, as
    ``torch.nn.utils.clip_grad_norm_``; returns the total norm *before* clipping, a float.

    The total norm is the ``norm_type``-norm of all gradients taken together, as if they were
    one long vector: ``(sum_i |g_i|^p)^(1/p)`` (``p = inf``: the largest ``|g_i|``). With
    ``coef = max_norm / (total + 1e-6)``, every gradient is multiplied by ``coef`` when
    ``coef < 1`` and left alone otherwise (the 1e-6 keeps a zero norm from dividing by zero).

    ``grads``: a mapping (``model.grads``; its arrays are the layers' own, so the model sees the
    clipped values), a list or tuple of arrays (None entries skipped, as PyTorch skips
    parameters without a gradient), or one array. A non-finite total (a nan or inf gradient)
    is handled as PyTorch does by default: the factor is nan or 0, so the gradients become
    nan (or 0 where they were finite, for an inf norm); with ``error_if_nonfinite=True`` a
    RuntimeError is raised instead and nothing is changed.
    """
    if isinstance(grads, np.ndarray):
        arrays = [grads]
    elif hasattr(grads, "values"):
        arrays = [g for g in grads.values() if g is not None]
    else:
        arrays = [g for g in grads if g is not None]
    for i, g in enumerate(arrays):
        if not isinstance(g, np.ndarray) or g.dtype.kind != "f":
            raise TypeError(f"clip_grad_norm: gradients must be float NumPy arrays (scaled in place), "
                            f"got {type(g).__name__} {getattr(g, 'dtype', '')} at position {i}")
    max_norm, p = float(max_norm), float(norm_type)
    if not p > 0 and p != 0.0:
        raise ValueError(f"clip_grad_norm: norm_type must be >= 0 or inf, got {norm_type}")
    if not arrays:
        return 0.0
    # The norm of each gradient, then the norm of those norms (PyTorch's order of operations).
    if p == math.inf:
        norms = [float(np.max(np.abs(g))) if g.size else 0.0 for g in arrays]
        total = max(norms)
    else:
        norms = [_vector_norm(g.reshape(-1), p) for g in arrays]
        total = _vector_norm(np.array(norms), p)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"clip_grad_norm: the total norm of order {norm_type} of the gradients is non-finite "
                           f"({total}), so it cannot be clipped. Set error_if_nonfinite=False to scale anyway.")
    with np.errstate(invalid="ignore"):
        coef = max_norm / (total + 1e-6)
        if not coef >= 1.0:  # coef < 1, or nan (a nan norm makes every gradient nan, as in PyTorch)
            for g in arrays:
                g *= coef
    return total


def _vector_norm(v: np.ndarray, p: float) -> float:
    if p == 2.0:
        return math.sqrt(float(np.dot(v, v)))  # BLAS dot: one pass, no squared temporary
    if p == 1.0:
        return float(np.sum(np.abs(v)))
    if p == 0.0:
        return float(np.count_nonzero(v))
    return float(np.sum(np.abs(v) ** p) ** (1.0 / p))
