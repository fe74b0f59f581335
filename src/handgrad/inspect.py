"""Watch every gradient go by: a per-layer trace of one forward and backward pass.

``trace(model, x, t)`` runs the model on a batch and records, for every layer, its input and
output (shape, mean, std, min, max; the full values when they are small), the gradient that
arrives at its output and the one it sends back, each parameter's gradient norm and
update-to-weight ratio (:func:`update_ratio`: what the optimizer would do with that gradient),
and the fraction of dead ReLU units; then it looks for trouble (vanishing or exploding
gradients, saturated sigmoids or softmax, dead ReLUs, NaN).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .layers import GRU, LSTM, RNN, Relu, Sigmoid, SoftmaxWithLoss, Tanh

__all__ = ["trace", "Trace", "LayerTrace", "stats", "update_ratio", "ratio_formula"]

#: Thresholds of the warnings, documented in :func:`trace`.
DEAD_RELU_WARNING = 0.5
SATURATION_WARNING = 0.5
VANISHING_RATIO = 1e-3
EXPLODING_NORM = 1e3

#: Optimizers that divide each weight's step by a running size of its own gradient, so that every
#: weight moves by about lr whatever its gradient's size (AdaGrad's steps then shrink as its sum
#: of squared gradients grows).
ADAPTIVE_OPTIMIZERS = ("adagrad", "rmsprop", "adam", "adamw")
#: Optimizers whose step is lr times the gradient plus a velocity carried from earlier steps.
MOMENTUM_OPTIMIZERS = ("momentum", "nesterov")


def ratio_formula(optimizer: str | None = None) -> str:
    """How :func:`update_ratio` measures the step of ``optimizer`` relative to the weight."""
    return "lr/rms(w)" if optimizer in ADAPTIVE_OPTIMIZERS else "lr*|grad|/|w|"


def update_ratio(lr: float, weight, grad, optimizer: str | None = None) -> float | None:
    """The size of one update relative to the weight, ``|update| / |w|`` (norms over the whole
    parameter), or None when ``w`` is 0. Healthy training keeps it around 1e-3.

    SGD (``optimizer`` None or ``"sgd"``) steps by ``lr * grad``: the ratio is
    ``lr |grad| / |w|`` for this batch's gradient. Momentum and Nesterov: the same, which leaves
    out the velocity of earlier steps (with momentum m their steps grow up to 1/(1 - m) times
    this on a steady gradient). Adam, AdamW, RMSprop and AdaGrad divide each weight's step by its
    gradient's running size, so each of the n weights moves by about lr whatever the gradient:
    ``|update| ~ lr sqrt(n)``, and the ratio is ``lr / rms(w)``, the gradient playing no part
    (``lr |grad| / |w|`` would be a number that no step of theirs takes)."""
    weight = np.asarray(weight, dtype=np.float64)
    norm = float(np.sqrt(np.sum(weight * weight)))
    if not norm:
        return None
    if optimizer in ADAPTIVE_OPTIMIZERS:
        return lr * math.sqrt(weight.size) / norm
    return lr * _norm(grad) / norm


def _ratio_meaning(optimizer: str | None) -> str:
    """What the backward table's ratios are, in words, for ``optimizer``."""
    if optimizer in ADAPTIVE_OPTIMIZERS:
        return f"{optimizer} moves every weight by about lr whatever its gradient: |update|/|w| ~ lr/rms(w)"
    if optimizer in MOMENTUM_OPTIMIZERS:
        return ("lr*|grad|/|w|, one step without the velocity of earlier steps, which makes its steps up to "
                "1/(1 - momentum) times larger")
    return "|update|/|w| = lr*|grad|/|w|, SGD's step on this batch"


def stats(array) -> dict:
    """Shape, mean, std, min, max, and whether everything is finite."""
    a = np.asarray(array, dtype=np.float64)
    finite = bool(np.all(np.isfinite(a)))
    return {"shape": list(a.shape), "mean": float(a.mean()), "std": float(a.std()), "min": float(a.min()),
            "max": float(a.max()), "rms": float(np.sqrt(np.mean(a * a))), "finite": finite}


@dataclass
class LayerTrace:
    index: int
    name: str
    input: dict
    output: dict
    grad_output: dict | None = None   # dL/d(output), what backward received
    grad_input: dict | None = None    # dL/d(input), what backward returned
    params: dict = field(default_factory=dict)   # name -> {"norm", "grad_norm", "update_ratio"}
    # For sequence layers (gradients (N, T, F)): the rms of dL/d input at each time step, where
    # gradients that vanish back through time show as a fall from the last step to the first.
    grad_input_by_step: list | None = None
    dead_fraction: float | None = None            # Relu: units that are 0 for every sample
    saturated_fraction: float | None = None       # Sigmoid / Tanh: outputs within 1 % of a bound
    values: dict = field(default_factory=dict)    # full arrays (as lists) when small


@dataclass
class Trace:
    """``loss`` is the objective the gradients belong to: the data loss (what ``fit`` and
    ``evaluate`` report) plus the model's weight penalty, ``penalty`` (0 without weight decay).
    ``lr`` and ``optimizer`` (None: plain SGD's rule, the optimizer not said) are those the
    update ratios are for (:func:`update_ratio`)."""

    layers: list
    loss: float
    loss_layer: dict
    warnings: list
    lr: float
    penalty: float = 0.0
    optimizer: str | None = None

    @property
    def data_loss(self) -> float:
        return self.loss - self.penalty

    def to_dict(self) -> dict:
        return {"loss": self.loss, "data_loss": self.data_loss, "penalty": self.penalty, "lr": self.lr,
                "optimizer": self.optimizer, "update_ratio": ratio_formula(self.optimizer),
                "loss_layer": self.loss_layer, "warnings": self.warnings, "layers": [vars(layer) for layer in self.layers]}

    def format_text(self) -> str:
        """A readable table: forward statistics, then backward, then warnings."""
        head = f"{'layer':<18} {'output shape':<16} {'mean':>10} {'std':>10} {'min':>10} {'max':>10}  notes"
        parts = f" = data {self.data_loss:.6g} + L2 penalty {self.penalty:.6g}" if self.penalty else ""
        lines = [f"forward (loss {self.loss:.6g}{parts})", head, "-" * len(head)]
        for layer in self.layers:
            o = layer.output
            notes = []
            if layer.dead_fraction is not None:
                notes.append(f"dead {100 * layer.dead_fraction:.0f}%")
            if layer.saturated_fraction is not None:
                notes.append(f"saturated {100 * layer.saturated_fraction:.0f}%")
            lines.append(f"{layer.index} {layer.name:<16} {str(tuple(o['shape'])):<16} {o['mean']:10.3g} {o['std']:10.3g} "
                         f"{o['min']:10.3g} {o['max']:10.3g}  {', '.join(notes)}")
        head = (f"{'layer':<18} {'dL/d input rms':>14} {'dL/d output rms':>15}  "
                f"parameters: |grad|, {ratio_formula(self.optimizer)}")
        if self.optimizer is None:  # the library's call without an optimizer: SGD's rule
            title = f"backward (update ratios for lr {self.lr:g})"
        else:
            title = f"backward (update ratios for {self.optimizer} lr {self.lr:g}: {_ratio_meaning(self.optimizer)})"
        lines += ["", title, head, "-" * len(head)]
        for layer in reversed(self.layers):
            grad_in = f"{layer.grad_input['rms']:14.3g}" if layer.grad_input else f"{'-':>14}"
            params = "; ".join(f"{k}: {v['grad_norm']:.3g}, " + (f"{v['update_ratio']:.2g}" if v["update_ratio"] is not None
                                                                  else "- (w = 0)") for k, v in layer.params.items())
            lines.append(f"{layer.index} {layer.name:<16} {grad_in} {layer.grad_output['rms']:15.3g}  {params}")
        steps = [layer for layer in reversed(self.layers) if layer.grad_input_by_step]
        if steps:
            lines += ["", "dL/d input rms by time step (first ... last), sequence layers:"]
        for layer in steps:
            lines.append(f"{layer.index} {layer.name:<16} " + " ".join(f"{v:.2g}" for v in layer.grad_input_by_step))
        lines += ["", "warnings:" if self.warnings else "warnings: none"]
        lines += [f"  - {w}" for w in self.warnings]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format_text()


def _norm(a) -> float:
    return float(np.sqrt(np.sum(np.asarray(a, dtype=np.float64) ** 2)))


def trace(model, x, t, lr: float = 1e-3, train: bool = False, max_values: int = 64,
          optimizer: str | None = None) -> Trace:
    """Trace one forward and backward pass of ``model`` on ``(x, t)``.

    ``lr`` and ``optimizer`` (a name of :data:`handgrad.optim.OPTIMIZERS`; None: SGD's rule) give
    each parameter's update-to-weight ratio (:func:`update_ratio`: ``lr |grad| / |w|`` for SGD,
    ``lr / rms(w)`` for Adam and the other adaptive optimizers; about 1e-3 is healthy).
    ``train``: run in training mode (dropout active, BatchNorm on batch statistics); evaluation
    mode by default, which is deterministic. Arrays of at most ``max_values`` elements are kept
    in full. The model's parameters are not changed (in training mode BatchNorm's running
    statistics move, as in any training forward).

    Warnings: a NaN or infinity anywhere; gradient norms shrinking by more than 1e3 from the
    last parameterised layer to the first (vanishing) or any above 1e3 (exploding); more than
    50 % dead ReLU units or saturated sigmoid/tanh outputs; a softmax whose top probability
    exceeds 0.999 on more than half the samples (its gradients all but vanish). Layers are
    recognised by type (a subclass of Relu is a Relu).
    """
    if not hasattr(model, "forward_steps"):  # a model whose layers run one after another
        raise TypeError(f"trace: expected a handgrad Sequential model, got {type(model).__name__}")
    if np.ndim(x) == 0 or len(x) == 0:
        raise ValueError(f"trace: expected a batch of at least one sample, got an input of shape {np.shape(x)}")
    if optimizer is not None:
        from .optim import OPTIMIZERS

        if optimizer not in OPTIMIZERS:
            raise ValueError(f"trace: unknown optimizer {optimizer!r}; choose from {', '.join(OPTIMIZERS)}")
    with model.mode(train):
        records, value = [], x
        for index, layer, out in model.forward_steps(x):
            record = LayerTrace(index, layer.name, stats(value), stats(out))
            if out.size <= max_values:
                record.values["output"] = np.asarray(out).tolist()
            if isinstance(layer, Relu):
                per_unit = np.asarray(out).reshape(len(out), -1) if np.ndim(out) > 1 else np.asarray(out)[None]
                record.dead_fraction = float(np.mean(np.all(per_unit <= 0, axis=0)))
            elif isinstance(layer, (Sigmoid, Tanh)):
                low, high = (0.01, 0.99) if isinstance(layer, Sigmoid) else (-0.99, 0.99)
                record.saturated_fraction = float(np.mean((out < low) | (out > high)))
            records.append(record)
            value = out
        penalty = model.weight_penalty()
        loss = model.loss_layer.forward(value, t) + penalty
        probabilities = model.loss_layer.y if isinstance(model.loss_layer, SoftmaxWithLoss) else None
        for record, (grad_out, grad_in) in zip(records, _backward_by_layer(model)):
            record.grad_output = stats(grad_out)
            record.grad_input = stats(grad_in) if grad_in is not None else None
            layer = model.layers[record.index]
            if grad_in is not None and isinstance(layer, (RNN, LSTM, GRU)):
                by_step = np.asarray(grad_in, dtype=np.float64)
                record.grad_input_by_step = np.sqrt(np.mean(by_step * by_step, axis=(0, 2))).tolist()
            if grad_out.size <= max_values:
                record.values["grad_output"] = np.asarray(grad_out).tolist()
            if grad_in is not None and grad_in.size <= max_values:
                record.values["grad_input"] = np.asarray(grad_in).tolist()
            layer = model.layers[record.index]
            for key, param in layer.params.items():
                grad = layer.grads[key]
                record.params[key] = {"norm": _norm(param), "grad_norm": _norm(grad),
                                      "update_ratio": update_ratio(lr, param, grad, optimizer)}
                if grad.size <= max_values:
                    record.values[f"d{key}"] = np.asarray(grad).tolist()
        loss_info = {"name": model.loss_layer.name}
        warnings = _warnings(records, loss, probabilities)
        return Trace(records, float(loss), loss_info, warnings, lr, float(penalty), optimizer)


def _backward_by_layer(model):
    """``model.backward()``, step by step (``backward_steps``): (dL/d output, dL/d input) of
    every layer, in forward order. The parameters' gradients end as after ``model.backward()``."""
    pairs = [None] * len(model.layers)
    model.zero_grad()  # as Model.backward starts: layers add into their gradients
    dout = model.loss_layer.backward()
    for index, _, dx in model.backward_steps(dout):
        pairs[index] = (dout, dx)
        dout = dx
    return pairs


def _warnings(records, loss, probabilities) -> list:
    warnings = []
    if not math.isfinite(loss):
        warnings.append(f"the loss is {loss}")
    for r in records:
        for what, s in (("output", r.output), ("gradient", r.grad_output)):
            if s is not None and not s["finite"]:
                warnings.append(f"layer {r.index} {r.name}: NaN or infinity in its {what}")
        if r.dead_fraction is not None and r.dead_fraction > DEAD_RELU_WARNING:
            warnings.append(f"layer {r.index} Relu: {100 * r.dead_fraction:.0f}% of units are dead (0 for every sample)")
        if r.saturated_fraction is not None and r.saturated_fraction > SATURATION_WARNING:
            warnings.append(f"layer {r.index} {r.name}: {100 * r.saturated_fraction:.0f}% of outputs are saturated; "
                            "their gradients nearly vanish")
        steps = r.grad_input_by_step
        if steps and len(steps) > 1 and steps[-1] > 0 and steps[0] / steps[-1] < VANISHING_RATIO:
            warnings.append(f"layer {r.index} {r.name}: gradients vanish back through time: dL/d input rms "
                            f"{steps[-1]:.3g} at the last step, {steps[0]:.3g} at the first")
        for key, p in r.params.items():
            if p["grad_norm"] > EXPLODING_NORM:
                warnings.append(f"layer {r.index} {r.name}: exploding gradient, |d{key}| = {p['grad_norm']:.3g}")
    weighted = [(r.index, r.name, p["grad_norm"]) for r in records for key, p in r.params.items() if key == "W"]
    if len(weighted) >= 2:
        (i0, n0, first), (i1, n1, last) = weighted[0], weighted[-1]
        if last > 0 and first / last < VANISHING_RATIO:
            warnings.append(f"vanishing gradients: |dW| falls from {last:.3g} at layer {i1} {n1} to {first:.3g} "
                            f"at layer {i0} {n0}")
    if probabilities is not None:
        top = np.asarray(probabilities).reshape(-1, np.shape(probabilities)[-1]).max(axis=-1)
        share = float(np.mean(top > 0.999))
        if share > 0.5:
            warnings.append(f"softmax saturated: top probability above 0.999 for {100 * share:.0f}% of samples; "
                            "the loss's gradients are nearly 0 there")
    return warnings
