"""Training: ONE step (:func:`train_step`: forward, backward, clip, update) that every loop
shares (``fit``'s epochs, ``fit_lm``'s steps, ``handgrad.sklearn``, MPI data parallelism), the
epoch and step loops, evaluation, history, early stopping and checkpoints.

``fit`` walks a fresh permutation of the training set every epoch (sampling without
replacement, the last partial batch included), evaluates in eval mode, and with the same seed
produces bit-for-bit the same weights. A run resumed from a checkpoint continues exactly as if
it had never stopped.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import NamedTuple
from pathlib import Path

import numpy as np

from . import serialize, validate
from .distributed import counted_targets
from .optim import clip_grad_norm
from .threads import BatchThreads, threads_setting

__all__ = ["fit", "fit_lm", "train_step", "forward_backward", "Step", "lm_batch", "estimate_loss", "evaluate",
           "confusion_matrix", "History", "TrainingDiverged", "TrainingInterrupted", "ResumeMismatch"]

CHECKPOINT_FORMAT = "handgrad.checkpoint"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


class ResumeMismatch(ValueError):
    """A run asked to resume from a checkpoint with settings that would not continue it exactly."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped ``fit`` or ``fit_lm`` between two steps. ``where`` says how far it got
    (``"epoch 3, step 120 of 450"``); ``checkpoint`` is the file that continues the run exactly
    (``resume=True``), or None when the run was given no checkpoint path."""

    def __init__(self, where: str, checkpoint) -> None:
        super().__init__(where)
        self.where, self.checkpoint = where, checkpoint


class _StopOnInterrupt:
    """Ctrl-C while training: the first asks the loop to stop after the step it is in (so that
    no update is left half done, and the run so far can be saved); a second stops at once.

    Python delivers SIGINT to the main thread only: elsewhere (a thread, or a handler someone
    else installed) nothing changes and Ctrl-C interrupts as it always does."""

    def __init__(self, announce: bool) -> None:
        self.announce, self.requested, self.previous = announce, False, None

    def __enter__(self) -> "_StopOnInterrupt":
        if threading.current_thread() is threading.main_thread() \
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self.previous = signal.signal(signal.SIGINT, self._first_interrupt)
        return self

    def _first_interrupt(self, signum, frame) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)  # the second Ctrl-C stops at once
        if self.announce:
            print("\nhandgrad: stopping after this step to save the run so far (Ctrl-C again to stop at once)",
                  file=sys.stderr, flush=True)

    def agreed(self, parallel) -> bool:
        """Whether to stop now: asked here, or under MPI on any rank (every rank learns it in
        the same step's all-reduce, so all stop after the same step)."""
        return self.requested if parallel is None else parallel.stop_agreed

    def __exit__(self, *exc_info) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


@dataclass
class History:
    """One record per epoch: ``epoch``, ``train_loss``, ``train_accuracy``, ``val_loss``,
    ``val_accuracy`` (None without validation data), ``seconds``, ``lr``, ``steps`` (optimizer
    steps so far). ``history["val_accuracy"]`` gives one column as a list.

    ``train_loss`` and ``train_accuracy`` are averages over the epoch's batches as they were
    trained on (training mode, weights changing along the way), as Keras reports them; they come
    free with the forward pass. ``val_*`` are measured after the epoch, in evaluation mode."""

    records: list = field(default_factory=list)
    best_epoch: int | None = None  # set by early stopping: the epoch whose weights were restored
    #: Training by steps (``fit_lm(log_interval=k)``): every k steps, the mean training loss of
    #: those steps (``step``, ``train_loss``, ``lr``, ``seconds``, ``tokens_per_second``).
    steps: list = field(default_factory=list)

    def __getitem__(self, key: str) -> list:
        return [record[key] for record in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def to_dict(self) -> dict:
        return {"epochs": self.records, "best_epoch": self.best_epoch, **({"steps": self.steps} if self.steps else {})}


# --- one training step ---------------------------------------------------------------------------


class Step(NamedTuple):
    """What one training step measured: the batch's mean data ``loss`` (before the update; no
    weight penalty), and ``correct`` of ``counted`` predictions (0 of 0 when not counted)."""

    loss: float
    correct: int
    counted: int


def forward_backward(model, xb, tb):
    """A batch's ``(scores, targets, loss)`` and, unless the loss is NaN or infinite, its
    gradients in ``model.grads`` (``input_grad=False``: nobody needs dL/d input here)."""
    scores, targets = model.scores_and_targets(xb, tb)
    loss = model.loss_layer.forward(scores, targets)
    if math.isfinite(loss):
        model.backward(input_grad=False)
    return scores, targets, loss


def train_step(model, optimizer, xb, tb, *, grad_clip: float | None = None, parallel=None,
               count: bool = True) -> Step:
    """One training step on the batch ``(xb, tb)``: forward, backward, clip, update.

    1. forward and backward (:func:`forward_backward`); under MPI (``parallel``, a
       :class:`handgrad.distributed.DataParallel`), on this rank's shard, the gradients then
       all-reduced into the whole batch's;
    2. ``grad_clip=max_norm``: the gradients scaled down to that total norm when above it;
    3. ``optimizer.update(model.params, model.grads)``.

    A NaN or infinite loss stops after step 1: nothing is updated, and the caller decides what
    to say (it knows the epoch). ``count``: also count right predictions (``model.count_correct``)."""
    if parallel is None:
        scores, targets, loss = forward_backward(model, xb, tb)
        finite = math.isfinite(loss)
        correct, counted = model.count_correct(xb, tb, scores, targets) if count and finite else (0, 0)
    else:
        loss, correct, counted = parallel.forward_backward(model, xb, tb, forward_backward)
        finite = math.isfinite(loss)
    if finite:
        if grad_clip is not None:
            clip_grad_norm(model.grads, grad_clip)
        optimizer.update(model.params, model.grads)
    return Step(loss, correct, counted)


# --- evaluation ----------------------------------------------------------------------------------


def confusion_matrix(labels, predicted) -> np.ndarray:
    """Counts of (true class, predicted class): rows are true classes, columns predictions;
    as many classes as the largest label seen, plus one."""
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    classes = int(max(labels.max(), predicted.max())) + 1
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def evaluate(model, x, t, batch_size: int = 1000) -> tuple[float, float]:
    """``(mean data loss, accuracy)`` over every sample, in eval mode (the mode is restored).

    The loss is the loss layer's alone: a model's weight penalty (``weight_decay``) is left out,
    as in ``fit``'s history, so that losses compare across penalties and with other libraries.
    It is the mean over every target the loss counts, whatever the batches: a batch's mean loss
    weighs as many targets as it counted (for words padded with the ignore index, its
    characters, not its words)."""
    if len(x) == 0:
        raise ValueError("evaluate: no samples to evaluate")
    loss_sum, targets_counted, correct, counted = 0.0, 0, 0, 0
    with model.mode(False):
        for start in range(0, len(x), batch_size):
            xb, tb = x[start:start + batch_size], t[start:start + batch_size]
            scores, targets = model.scores_and_targets(xb, tb)
            loss = model.loss_layer.forward(scores, targets)
            hits, count = model.count_correct(xb, tb, scores, targets)
            in_batch = counted_targets(model, scores, targets)
            if in_batch:  # a batch of nothing but ignored targets has a loss of nan and no weight
                loss_sum, targets_counted = loss_sum + loss * in_batch, targets_counted + in_batch
            correct, counted = correct + hits, counted + count
    mean_loss = loss_sum / targets_counted if targets_counted else float("nan")  # no target counted: no mean
    return mean_loss, correct / max(counted, 1)


def _copy_params(model) -> dict:
    return {name: value.copy() for name, value in model.params.items()}


def _restore_params(model, saved: dict) -> None:
    for name, value in model.params.items():
        value[...] = saved[name]


def fit(model, optimizer, train, val=None, *, epochs: int = 10, batch_size: int = 100, seed=0,
        schedule=None, scheduler=None, early_stopping: int | None = None, min_delta: float = 0.0, max_steps: int | None = None,
        checkpoint=None, checkpoint_every: int = 0, resume: bool = False, grad_clip: float | None = None,
        progress: bool | None = None, log=None, distributed=False, augment=None, threads: int | None = None) -> History:
    """Train ``model`` with ``optimizer`` on ``train = (x, t)``; returns the :class:`History`.

    * ``val = (x, t)``: evaluated after every epoch (loss and accuracy, eval mode).
    * ``seed``: an int; the permutations come from ``numpy.random.default_rng(seed)``.
    * ``schedule``: the learning rate as a pure function of the epoch, ``schedule.lr_at(e)``
      (``optim.StepLR`` / ``CosineAnnealingLR``): epoch ``e + 1`` trains with ``lr_at(e)``, as
      torch's schedulers stepped after every epoch give. Nothing of it is state, so a resumed
      run needs only the epoch count. (``scheduler=`` is the old spelling of the same.)
    * ``early_stopping=patience``: stop when the validation loss has not improved by more than
      ``min_delta`` for ``patience`` epochs, and restore the best epoch's weights.
    * ``max_steps``: stop after this many optimizer steps, even mid-epoch (the book counts
      iterations, not epochs).
    * ``checkpoint=path`` with ``checkpoint_every=k``: write the whole training state every k
      epochs (atomically); ``resume=True`` continues from that file when it exists. Ctrl-C
      stops the run after the step it is in and writes the checkpoint of that very step
      (``checkpoint_every=0``: only then), then raises :class:`TrainingInterrupted`; resuming
      from it continues exactly, mid-epoch included. A second Ctrl-C stops at once.
    * ``grad_clip=max_norm``: before every update, scale the gradients down to this total norm
      when above it (:func:`handgrad.optim.clip_grad_norm`, torch's ``clip_grad_norm_``), which
      keeps recurrent networks from exploding.
    * ``progress``: a tqdm bar per epoch (default: only when stderr is a terminal and tqdm is
      installed). ``log``: called with each epoch's record (the CLI prints it).
    * ``distributed=True`` (or an mpi4py communicator): data-parallel training over MPI, called
      by every process of ``mpiexec -n K python script.py``; the same weights, history and
      checkpoints as one process with the same ``batch_size`` (each global batch is split into
      K shards; see :mod:`handgrad.distributed`). Rank 0 alone evaluates, writes the checkpoint,
      shows progress and calls ``log``; every rank returns the same history and weights.
    * ``augment``: ``augment(xb, rng) -> xb``, applied to every training batch before its step
      (e.g. :func:`handgrad.data.images.warp_digits`); ``rng`` is
      ``numpy.random.default_rng([seed, step])`` for the run's step number (1, 2, ...), so a
      resumed run and an MPI run (which warps the whole batch, then shards it) see the very
      same batches. Validation data is never augmented.
    * ``threads=k``: each batch split over k threads in this process, each with one BLAS thread
      (:mod:`handgrad.threads`): the same model up to the order of sums, faster only where the
      batch's arrays are large (docs/speed.md). Default: ``HANDGRAD_THREADS``, else 1.

    A NaN or infinite loss raises :class:`TrainingDiverged` naming the epoch and step, with the
    weights restored to those at the start of that epoch (the last ones known to be good).
    """
    if scheduler is not None:
        if schedule is not None:
            raise ValueError("fit: give schedule= (scheduler= is its old spelling), not both")
        schedule = scheduler
    x, t = _checked_data(train, "training")
    val = None if val is None else _checked_data(val, "validation")
    _check_fit_settings(epochs, batch_size, checkpoint, checkpoint_every, early_stopping, max_steps, val, grad_clip)
    augmented = _batch_augmenter(augment, seed)
    threads = threads_setting(threads)
    if threads > 1 and distributed:
        raise ValueError("fit: threads= splits a batch inside one process and distributed= across processes; "
                         "use one of them")
    parallel = _data_parallel(model, distributed)
    _check_batch_norm_batches(model, len(x), batch_size, ranks=1 if parallel is None else parallel.size)
    rng = np.random.default_rng(seed)
    # What decides the trajectory of the run: a resumed run must have the very same.
    settings = {"unit": "epochs", "batch_size": batch_size, "seed": seed if isinstance(seed, int) else repr(seed),
                "optimizer": _settings_of(optimizer), "scheduler": _settings_of(schedule),
                "early_stopping": early_stopping, "min_delta": min_delta, "grad_clip": grad_clip,
                "augment": None if augment is None else getattr(augment, "__qualname__", repr(augment))}
    state = {"epoch": 0, "global_step": 0, "best_loss": math.inf, "best_epoch": None, "wait": 0, "stopped_early": False}
    history, best_weights = History(), None
    if resume and checkpoint is not None and _on_root(parallel, Path(checkpoint).exists):
        state, history, best_weights = _on_root(parallel, lambda: _load_checkpoint(
            checkpoint, model, optimizer, rng, settings, epochs))
    if parallel is not None:
        _start_together(parallel, model, optimizer, rng)

    def save(rng_state, at_state):
        if checkpoint is not None and _is_root(parallel):
            _save_checkpoint(checkpoint, model, optimizer, rng_state, at_state, history, best_weights, settings)

    show_progress = (_want_progress() if progress is None else progress) and _is_root(parallel)
    stop = state.get("stopped_early", False) or (max_steps is not None and state["global_step"] >= max_steps)
    model.train()
    splitter = BatchThreads(model, threads) if threads > 1 else None  # closed when the run ends, however
    with _StopOnInterrupt(announce=_is_root(parallel)) as interrupt, \
            (contextlib.closing(splitter) if splitter is not None else contextlib.nullcontext()):
        while state["epoch"] < epochs and not stop:
            epoch = state["epoch"] + 1
            if schedule is not None:
                optimizer.lr = schedule.lr_at(epoch - 1)
            started = time.perf_counter()
            epoch_rng = rng.bit_generator.state  # a checkpoint mid-epoch draws this epoch's order again
            loop = _Epoch(model, optimizer, x, t, rng.permutation(len(x)), epoch, epochs, batch_size, grad_clip,
                          parallel, state, augmented, splitter)
            bar = _progress_bar(loop.batches, epoch, epochs, loop.done) if show_progress else None
            try:
                stop = loop.run(interrupt, max_steps, bar, functools.partial(save, epoch_rng), checkpoint)
            finally:
                if bar is not None:
                    bar.close()
            loss_sum, correct, counted, seen = loop.sums
            record = {"epoch": epoch, "train_loss": loss_sum / seen, "train_accuracy": correct / max(counted, 1),
                      "val_loss": None, "val_accuracy": None, "lr": optimizer.lr, "steps": state["global_step"]}
            if val is not None:
                record["val_loss"], record["val_accuracy"] = _on_root(parallel, lambda: evaluate(model, *val))
            record["seconds"] = time.perf_counter() - started
            history.records.append(record)
            state["epoch"] = epoch
            if early_stopping is not None:
                if record["val_loss"] < state["best_loss"] - min_delta:
                    state.update(best_loss=record["val_loss"], best_epoch=epoch, wait=0)
                    best_weights = _copy_params(model)
                else:
                    state["wait"] += 1
                    if state["wait"] >= early_stopping:
                        stop = state["stopped_early"] = True
            last = stop or epoch == epochs
            # Every k epochs; and at the end, a checkpoint an interrupted run left is brought up to date.
            if (checkpoint_every and (epoch % checkpoint_every == 0 or last)) \
                    or (not checkpoint_every and last and checkpoint is not None and Path(checkpoint).exists()):
                save(rng.bit_generator.state, state)
            if log is not None and _is_root(parallel):
                log(record)

    if early_stopping is not None and best_weights is not None:
        _restore_params(model, best_weights)
        history.best_epoch = state["best_epoch"]
    return history


def _check_fit_settings(epochs, batch_size, checkpoint, checkpoint_every, early_stopping, max_steps, val,
                        grad_clip) -> None:
    """fit's counts and their combinations, refused in one line before anything runs."""
    _check_count("epochs", epochs, minimum=0)
    _check_count("batch_size", batch_size, minimum=1)
    _check_count("checkpoint_every", checkpoint_every, minimum=0)
    for name, value in (("early_stopping", early_stopping), ("max_steps", max_steps)):
        if value is not None:
            _check_count(name, value, minimum=1)
    if early_stopping is not None and val is None:
        raise ValueError("fit: early_stopping needs validation data (val=...)")
    if grad_clip is not None and not (isinstance(grad_clip, (int, float)) and grad_clip > 0):
        raise ValueError(f"fit: grad_clip must be a number > 0, got {grad_clip!r}")
    if checkpoint_every and checkpoint is None:
        raise ValueError("fit: checkpoint_every needs a checkpoint path")


class _Epoch:
    """One epoch of ``fit``: its minibatches in the epoch's ``order``, each a :func:`train_step`.

    A run resumed mid-epoch skips the batches it trained before it stopped (``state`` holds
    ``step_in_epoch`` and the partial sums). ``sums`` are ``[loss x samples, correct, counted,
    samples]`` over the epoch's batches."""

    def __init__(self, model, optimizer, x, t, order, epoch, epochs, batch_size, grad_clip, parallel, state,
                 augment=None, splitter=None) -> None:
        self.model, self.optimizer, self.x, self.t, self.order = model, optimizer, x, t, order
        self.epoch, self.epochs, self.batch_size, self.grad_clip = epoch, epochs, batch_size, grad_clip
        self.parallel, self.state, self.augment = parallel, state, augment
        self.step_parallel = parallel if parallel is not None else splitter  # MPI's ranks, or this process's threads
        self.batches = range(0, len(x), batch_size)
        self.done = state.pop("step_in_epoch", 0)
        self.sums = list(state.pop("partial", (0.0, 0, 0, 0)))

    def run(self, interrupt, max_steps, bar, save, checkpoint) -> bool:
        """Train the batches; True when ``max_steps`` is reached. A NaN or infinite loss restores
        the weights the epoch started from and raises :class:`TrainingDiverged`; Ctrl-C
        (``interrupt``) saves this very step (``save(state)``, into ``checkpoint``) and raises
        :class:`TrainingInterrupted`."""
        model, parallel, state = self.model, self.parallel, self.state
        last_good = _copy_params(model)
        for step_in_epoch, start in enumerate(self.batches, 1):
            if step_in_epoch <= self.done:
                continue
            index = self.order[start:start + self.batch_size]
            if self.augment is None:
                # This rank's shard under MPI; the loss, counts and gradients are the whole batch's.
                xb, tb = (self.x[index], self.t[index]) if parallel is None else \
                    parallel.local_batch(self.x, self.t, index)
            else:  # the whole batch, on every rank: the shards are the same as one process's
                xb, tb = self.augment(self.x[index], state["global_step"] + 1), self.t[index]
                if parallel is not None:
                    xb, tb = parallel.local_batch(xb, tb, np.arange(len(index)))
            if parallel is not None:
                parallel.stop_requested = interrupt.requested
            step = train_step(model, self.optimizer, xb, tb, grad_clip=self.grad_clip, parallel=self.step_parallel)
            if not math.isfinite(step.loss):
                _restore_params(model, last_good)
                raise TrainingDiverged(
                    f"loss became {step.loss} at epoch {self.epoch}, step {step_in_epoch} (lr {self.optimizer.lr:g}); "
                    f"weights were restored to those at the start of epoch {self.epoch}. Try a smaller learning rate.")
            for i, value in enumerate((step.loss * len(index), step.correct, step.counted, len(index))):
                self.sums[i] += value
            state["global_step"] += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{step.loss:.4f}")
            if interrupt.agreed(parallel):
                save(dict(state, step_in_epoch=step_in_epoch, partial=list(self.sums)))
                raise TrainingInterrupted(f"epoch {self.epoch}, step {step_in_epoch} of {len(self.batches)}",
                                          checkpoint)
            if max_steps is not None and state["global_step"] >= max_steps:
                return True
        return False


def _batch_augmenter(augment, seed):
    """``step, xb -> augment(xb, rng)`` with ``rng`` seeded by ``(seed, step)`` (None: none);
    the augmented batch is checked to keep its shape."""
    if augment is None:
        return None
    if not callable(augment):
        raise ValueError(f"fit: augment must be a function (xb, rng) -> xb, got {type(augment).__name__}")
    entropy = [seed] if isinstance(seed, int) else []

    def augmented(xb, step):
        out = augment(xb, np.random.default_rng(entropy + [step]))
        if getattr(out, "shape", None) != xb.shape:
            raise ValueError(f"fit: augment must return the batch's shape {xb.shape}, got "
                             f"{getattr(out, 'shape', type(out).__name__)}")
        return out
    return augmented


# --- several processes (MPI) ---------------------------------------------------------------------


def _check_batch_norm_batches(model, samples: int, batch_size: int, ranks: int) -> None:
    """Refuse, before the first step, a run in which a BatchNorm would meet a batch (or, under
    MPI, a rank's shard) of one sample: its variance would be 0/0, and the run would otherwise
    stop with an error at the end of the first epoch, having saved nothing."""
    from .layers import BatchNorm

    norms = [path for path, layer in model.named_layers() if isinstance(layer, BatchNorm)]
    if not norms:
        return
    full, last = divmod(samples, batch_size) if samples >= batch_size else (0, samples)
    sizes = ([batch_size] if full else []) + ([last] if last else [])
    # A batch of B split over K ranks: the smallest shard that runs holds B // K rows (1 if B < K).
    too_small = [size for size in sizes if max(1, size // ranks) < 2]
    if not too_small:
        return
    size = too_small[0]
    if ranks > 1:
        where = f"a batch of {size} split over {ranks} MPI processes leaves a shard of 1 sample"
    elif size == batch_size:
        where = f"a batch size of {batch_size} gives batches of 1 sample"
    else:
        where = f"the last batch of each epoch holds 1 sample ({samples} = {full} x {batch_size} + 1)"
    raise ValueError(f"layer {norms[0]}: BatchNorm needs at least 2 samples per batch in training, but {where}; "
                     "choose another batch size")


def _data_parallel(model, distributed):
    """None for one process; for ``distributed=True`` or a communicator, the
    :class:`handgrad.distributed.DataParallel` that splits each batch across the ranks."""
    if distributed is False or distributed is None:
        return None
    from .distributed import DataParallel

    return DataParallel(model, comm=None if distributed is True else distributed)


def _is_root(parallel) -> bool:
    return parallel is None or parallel.is_root


def _on_root(parallel, compute):
    """``compute()``: here for one process; under MPI on rank 0 alone, its result sent to all."""
    return compute() if parallel is None else parallel.from_root(compute)


def _start_together(parallel, model, optimizer, rng) -> None:
    """Every rank from rank 0's weights, optimizer state and random streams (fresh or read from
    rank 0's checkpoint), so that the ranks take identical steps from here on. (Schedules are
    pure functions of the step: nothing of them to send.)"""
    parallel.broadcast_model(model)
    parallel.broadcast_generators(rng)
    optimizer_state = parallel.from_root(optimizer.state_dict)
    if not parallel.is_root:
        optimizer.load_state_dict(optimizer_state)


def _check_count(name: str, value, minimum: int) -> None:
    # bool is an int to Python, and 2.5 epochs would silently run 3.
    validate.integer(value, name, who="fit", minimum=minimum)


def _checked_data(pair, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, t)`` as arrays, refusing what would end in a crash or a silent NaN later."""
    try:
        x, t = (np.asarray(a) for a in pair)
    except (TypeError, ValueError) as error:
        raise ValueError(f"fit: the {what} data must be a pair (inputs, targets) of arrays ({error})") from error
    if len(x) != len(t):
        raise ValueError(f"fit: {len(x)} {what} inputs but {len(t)} targets")
    if len(x) == 0:
        raise ValueError(f"fit: the {what} set is empty")
    if x.dtype.kind not in "fiub":
        raise ValueError(f"fit: {what} inputs must be numbers, got dtype {x.dtype}")
    if x.dtype.kind == "f":
        finite = np.isfinite(x.reshape(len(x), -1)).all(axis=1)
        if not finite.all():
            raise ValueError(f"fit: {what} inputs contain NaN or infinity ({int(np.sum(~finite))} samples, "
                             f"the first at index {int(np.argmin(finite))})")
    return x, t


def _settings_of(thing) -> dict | None:
    """An optimizer's or scheduler's type and hyper-parameters (as constructed, before training)."""
    if thing is None:
        return None
    numbers = {key: (list(value) if isinstance(value, tuple) else value) for key, value in sorted(vars(thing).items())
               if key not in ("step_count", "epoch", "state") and isinstance(value, (int, float, bool, str, tuple))}
    return {"type": type(thing).__name__, **numbers}


# --- progress ------------------------------------------------------------------------------------


def _want_progress() -> bool:
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return sys.stderr.isatty()


def _log_steps(history, step: int, lr: float, logged: dict, log_step) -> None:
    """The mean training loss of the steps since the last log, with their tokens/s, into
    ``history.steps`` (and to ``log_step``); then start counting again."""
    seconds = time.perf_counter() - logged["since"]
    record = {"step": step, "train_loss": logged["loss"] / logged["steps"], "lr": lr, "seconds": seconds,
              "tokens_per_second": logged["tokens"] / seconds if seconds > 0 else None}
    history.steps.append(record)
    if log_step is not None:
        log_step(record)
    logged.update(loss=0.0, steps=0, tokens=0, since=time.perf_counter())


def _step_bar(done: int, total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, desc="steps", leave=False, file=sys.stderr)


def _progress_bar(batches, epoch, epochs, done: int = 0):
    from tqdm.auto import tqdm

    return tqdm(total=len(batches), initial=done, desc=f"epoch {epoch}/{epochs}", leave=False, file=sys.stderr)


# --- checkpoints ---------------------------------------------------------------------------------


def _save_checkpoint(path, model, optimizer, rng_state, state, history, best_weights, settings) -> None:
    tensors = serialize.layer_tensors(model, prefix="model.")
    opt_state = optimizer.state_dict()
    for name, buffers in opt_state["state"].items():
        for key, value in buffers.items():
            tensors[f"optimizer.{key}.{name}"] = value
    for name, value in (best_weights or {}).items():
        tensors[f"best.{name}"] = value
    meta = {
        "state": state, "rng": rng_state, "history": history.to_dict(),
        "model_rng": model.rng.bit_generator.state if hasattr(model, "rng") else None,
        "optimizer": {"type": type(optimizer).__name__, "lr": opt_state["lr"], "step_count": opt_state["step_count"]},
        "settings": settings,
    }
    serialize.write_safetensors(path, tensors, {
        "format": CHECKPOINT_FORMAT, "architecture": json.dumps(model.spec()), "training": json.dumps(meta),
    })


def _describe(value) -> str:
    if isinstance(value, dict):
        return value.get("type", "?") + "(" + ", ".join(f"{k}={v}" for k, v in value.items() if k != "type") + ")"
    return str(value)


def _check_resumable(path, saved: dict, settings: dict, epochs: int, epochs_done: int) -> None:
    """Refuse to resume with settings that would not continue the checkpoint's run exactly."""
    differences = [f"{name} {_describe(saved.get(name))} in the checkpoint, {_describe(value)} now"
                   for name, value in settings.items() if saved.get(name) != value]
    if differences:
        raise ResumeMismatch(f"{path}: cannot resume with other settings than the checkpoint's run: "
                             + "; ".join(differences) + ". Use the same settings, or start a new run (another --out).")
    unit, asked = ("steps", "max_steps") if saved.get("unit") == "steps" else ("epochs", "epochs")
    if epochs < epochs_done:
        raise ResumeMismatch(f"{path}: the checkpoint has already trained {epochs_done} {unit}; "
                             f"{asked}={epochs} asks for fewer. Ask for {epochs_done} or more.")


def _load_checkpoint(path, model, optimizer, rng, settings, epochs):
    tensors, metadata = serialize.read_safetensors(path)
    if metadata.get("format") != CHECKPOINT_FORMAT:
        raise serialize.SerializationError(f"{path}: not a handgrad checkpoint")
    try:
        architecture = json.loads(metadata["architecture"])
        meta = json.loads(metadata["training"])
        done = int(meta["state"]["step" if "step" in meta["state"] else "epoch"])
    except (KeyError, TypeError, ValueError) as error:  # a file that passed its digest but is not ours
        raise serialize.SerializationError(f"{path}: checkpoint metadata missing or malformed ({error!r})") from error
    if architecture != model.spec():
        raise serialize.SerializationError(f"{path}: checkpoint was written for a different architecture")
    if "settings" not in meta:
        raise ResumeMismatch(f"{path}: this checkpoint was written by an earlier handgrad that did not record its "
                             "training settings, so an exact continuation cannot be guaranteed; start a new run")
    _check_resumable(path, meta["settings"], settings, epochs, done)
    serialize.load_weights_into(model, {k: v for k, v in tensors.items() if k.startswith("model.")}, path, prefix="model.")
    try:
        buffers: dict = {}
        for key, value in tensors.items():
            if key.startswith("optimizer."):
                buffer_name, param_name = key[len("optimizer."):].split(".", 1)
                buffers.setdefault(param_name, {})[buffer_name] = value
        optimizer.load_state_dict({"lr": meta["optimizer"]["lr"], "step_count": meta["optimizer"]["step_count"],
                                   "state": buffers})
        rng.bit_generator.state = meta["rng"]
        if meta.get("model_rng") is not None:  # dropout masks continue where they stopped
            model.rng.bit_generator.state = meta["model_rng"]
        history = History(records=list(meta["history"]["epochs"]), best_epoch=meta["history"]["best_epoch"],
                          steps=list(meta["history"].get("steps", [])))
        state = dict(meta["state"])
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise serialize.SerializationError(f"{path}: checkpoint training state malformed ({error!r})") from error
    best = {k[len("best."):]: v for k, v in tensors.items() if k.startswith("best.")} or None
    return state, history, best


# --- language models: training by steps on a token stream (nanoGPT's loop) ----------------------


def lm_batch(x, t, block_size: int, batch_size: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """nanoGPT's ``get_batch``: ``batch_size`` windows of ``block_size`` tokens at random
    starts (uniform over every start that fits) of the aligned streams ``x`` and ``t``
    (``t[i]`` is the token after ``x[i]``); (N, T) int64 each."""
    starts = rng.integers(0, len(x) - block_size + 1, size=batch_size)
    window = starts[:, None] + np.arange(block_size)
    return x[window], t[window]


def row_batch(x, t, batch_size: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Zero to Hero's minibatch: ``batch_size`` examples (rows of ``x`` and ``t``) drawn
    uniformly with replacement (``torch.randint(0, len(x), (batch_size,))``)."""
    rows = rng.integers(0, len(x), size=batch_size)
    return x[rows], t[rows]


def estimate_loss(model, x, t, block_size: int | None, batch_size: int, iters: int, rng) -> float:
    """nanoGPT's ``estimate_loss`` for one split: the mean loss over ``iters`` random batches
    (windows of a stream, or rows of examples when ``block_size`` is None), in evaluation mode."""
    losses = []
    with model.mode(False):
        for _ in range(iters):
            xb, tb = (row_batch(x, t, batch_size, rng) if block_size is None
                      else lm_batch(x, t, block_size, batch_size, rng))
            losses.append(model.loss_layer.forward(*model.scores_and_targets(xb, tb)))
    return float(np.mean(losses))


def _token_stream(pair, name: str, block_size: int | None) -> tuple[np.ndarray, np.ndarray]:
    """``(x, t)``: two aligned 1-D streams of token ids, at least ``block_size`` long; or, with
    no ``block_size``, examples: integer ids ``x`` (N, ...) and targets ``t`` (N, ...), N >= 1."""
    x, t = (np.asarray(a) for a in pair)
    if block_size is None:
        if x.ndim < 1 or t.ndim < 1 or len(x) != len(t) or len(x) == 0 or x.dtype.kind not in "iu" \
                or t.dtype.kind not in "iu":
            raise ValueError(f"fit_lm: the {name} data must be examples, token ids x (N, ...) and targets t (N, ...) "
                             f"with the same N >= 1, got {x.shape} {x.dtype} and {t.shape} {t.dtype}")
        return x, t
    if x.ndim != 1 or x.shape != t.shape or x.dtype.kind not in "iu" or t.dtype.kind not in "iu":
        raise ValueError(f"fit_lm: the {name} data must be two aligned 1-D streams of token ids, got "
                         f"{x.shape} {x.dtype} and {t.shape} {t.dtype}")
    if len(x) < block_size:
        raise ValueError(f"fit_lm: the {name} stream has {len(x)} tokens, fewer than block_size={block_size}")
    return x, t


def fit_lm(model, optimizer, train, val, *, block_size: int | None, batch_size: int = 12, max_steps: int = 2000,
           eval_interval: int = 250, eval_iters: int = 200, schedule=None, grad_clip: float | None = None,
           seed=0, checkpoint=None, checkpoint_every: int = 1, resume: bool = False, log=None,
           log_interval: int = 0, log_step=None, progress: bool | None = None, distributed=False,
           threads: int | None = None) -> History:
    """Train a language model by steps, as nanoGPT's ``train.py``; returns the :class:`History`
    with one record per evaluation (``step``, ``train_loss``, ``val_loss``, ``lr``, ``seconds``,
    ``tokens_per_second``).

    * ``train``, ``val``: aligned token streams ``(x, t)`` with ``t[i]`` the token after ``x[i]``
      (``hg.data.load_dataset("shakespeare")``); batches are random windows (:func:`lm_batch`)
      drawn from ``numpy.random.default_rng(seed)``. With ``block_size=None``, ``train`` and
      ``val`` are examples instead, ids ``x`` (N, ...) and targets ``t`` (N, ...) (makemore's
      names, :mod:`handgrad.data.words`), and batches are random rows (:func:`row_batch`).
    * Every ``eval_interval`` steps and after the last: the mean loss over ``eval_iters`` random
      batches of each split (:func:`estimate_loss`, evaluation mode, its own seeded generator).
    * ``schedule``: an ``optim.WarmupCosineLR``; the optimizer's lr is set from it before each step.
    * ``grad_clip``: clip the gradients' total norm before each update.
    * ``checkpoint=path``: written (atomically) at every ``checkpoint_every``-th evaluation (0:
      only when Ctrl-C stops the run, after the step it is in; a second Ctrl-C stops at once);
      ``resume=True`` continues from it exactly (the same batches, the same evaluations),
      refusing other settings. Ctrl-C raises :class:`TrainingInterrupted`.
    * ``log_interval=k``: every k steps, the mean training loss of those steps, with tokens/s
      (nanoGPT's ``log_interval``), goes to ``history.steps`` and to ``log_step(record)``.
    * ``progress``: a tqdm bar over the steps (default: only when stderr is a terminal and tqdm
      is installed).
    * ``distributed=True``: data-parallel over MPI as in :func:`fit` (each batch's windows split
      across the ranks); rank 0 alone evaluates, writes the checkpoint and calls ``log``.
    * ``threads=k``: each batch split over k threads in this process, each with one BLAS thread
      (:mod:`handgrad.threads`): the same model up to the order of sums, faster where the batch's
      arrays are large enough (docs/speed.md). Default: ``HANDGRAD_THREADS``, else 1.
    """
    if block_size is not None:
        _check_count("block_size", block_size, minimum=1)
    for name, value, minimum in (("batch_size", batch_size, 1),
                                 ("max_steps", max_steps, 0), ("eval_interval", eval_interval, 1),
                                 ("eval_iters", eval_iters, 1), ("checkpoint_every", checkpoint_every, 0),
                                 ("log_interval", log_interval, 0)):
        _check_count(name, value, minimum=minimum)
    streams = {"training": _token_stream(train, "training", block_size),
               "validation": _token_stream(val, "validation", block_size)}
    if grad_clip is not None and not grad_clip > 0:
        raise ValueError(f"fit_lm: grad_clip must be a number > 0, got {grad_clip!r}")
    settings = {"unit": "steps", "block_size": block_size, "batch_size": batch_size, "seed": seed,
                "eval_interval": eval_interval, "eval_iters": eval_iters, "grad_clip": grad_clip,
                "optimizer": _settings_of(optimizer), "schedule": _settings_of(schedule)}
    threads = threads_setting(threads)
    if threads > 1 and distributed:
        raise ValueError("fit_lm: threads= splits a batch inside one process and distributed= across processes; "
                         "use one of them")
    parallel = _data_parallel(model, distributed)
    rng = np.random.default_rng(seed)
    state = {"step": 0}
    history = History()
    if resume and checkpoint is not None and _on_root(parallel, Path(checkpoint).exists):
        state, history, _ = _on_root(parallel, lambda: _load_checkpoint(
            checkpoint, model, optimizer, rng, settings, max_steps))
    if parallel is not None:
        _start_together(parallel, model, optimizer, rng)

    def evaluate_both(step, started, tokens):
        # Evaluation batches come from their own generator, seeded by the step, so that they
        # neither disturb the training batches nor differ between a run and its resumption.
        def measure():
            eval_rng = np.random.default_rng([seed if isinstance(seed, int) else 0, step])
            record = {"step": step, "lr": optimizer.lr,
                      "train_loss": estimate_loss(model, *streams["training"], block_size, batch_size, eval_iters,
                                                  eval_rng),
                      "val_loss": estimate_loss(model, *streams["validation"], block_size, batch_size, eval_iters,
                                                eval_rng),
                      "seconds": time.perf_counter() - started}
            record["tokens_per_second"] = tokens / record["seconds"] if tokens and record["seconds"] > 0 else None
            return record

        record = _on_root(parallel, measure)
        history.records.append(record)
        evaluations = len(history.records) - 1  # the first is at step 0
        last = step == max_steps
        if checkpoint is not None and _is_root(parallel) and (
                (checkpoint_every and (evaluations % checkpoint_every == 0 or last))
                or (not checkpoint_every and last and Path(checkpoint).exists())):
            _save_checkpoint(checkpoint, model, optimizer, rng.bit_generator.state, state, history, None, settings)
        if log is not None and _is_root(parallel):
            log(record)

    model.train()
    started, tokens = time.perf_counter(), 0
    if schedule is not None:
        optimizer.lr = schedule.lr_at(state["step"])  # so that the first record shows the lr the step will use
    if state["step"] == 0 and not history.records:
        evaluate_both(0, started, 0)
        model.train()
        started = time.perf_counter()
    show_progress = (_want_progress() if progress is None else progress) and _is_root(parallel)
    bar = _step_bar(state["step"], max_steps) if show_progress else None
    logged = {"loss": 0.0, "steps": 0, "tokens": 0, "since": time.perf_counter()}  # since the last log_step
    # Each step split over this process's threads (threads > 1) or over MPI's ranks (parallel).
    splitter = BatchThreads(model, threads) if threads > 1 else None
    step_parallel = parallel if parallel is not None else splitter
    try:
        with _StopOnInterrupt(announce=_is_root(parallel)) as interrupt:
            while state["step"] < max_steps:
                if schedule is not None:
                    optimizer.lr = schedule.lr_at(state["step"])
                xb, tb = (row_batch(*streams["training"], batch_size, rng) if block_size is None
                          else lm_batch(*streams["training"], block_size, batch_size, rng))
                tokens += xb.size  # the whole batch's, whichever share of it this rank trains on
                logged["tokens"] += xb.size
                if parallel is not None:  # this rank's windows of the batch
                    xb, tb = parallel.local_batch(xb, tb, np.arange(len(xb)))
                    parallel.stop_requested = interrupt.requested
                loss = train_step(model, optimizer, xb, tb, grad_clip=grad_clip, parallel=step_parallel, count=False).loss
                if not math.isfinite(loss):
                    raise TrainingDiverged(f"loss became {loss} at step {state['step'] + 1} (lr {optimizer.lr:g}). "
                                           "Try a smaller learning rate or --grad-clip.")
                state["step"] += 1
                logged["loss"], logged["steps"] = logged["loss"] + loss, logged["steps"] + 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4f}")
                if log_interval and state["step"] % log_interval == 0:
                    _log_steps(history, state["step"], optimizer.lr, logged, log_step if _is_root(parallel) else None)
                if interrupt.agreed(parallel):
                    if bar is not None:
                        bar.close()
                    if checkpoint is not None and _is_root(parallel):
                        _save_checkpoint(checkpoint, model, optimizer, rng.bit_generator.state, state, history, None,
                                         settings)
                    raise TrainingInterrupted(f"step {state['step']} of {max_steps}", checkpoint)
                if state["step"] % eval_interval == 0 or state["step"] == max_steps:
                    evaluate_both(state["step"], started, tokens)
                    model.train()
                    started, tokens = time.perf_counter(), 0
    finally:
        if splitter is not None:
            splitter.close()
    if bar is not None:
        bar.close()
    return history
