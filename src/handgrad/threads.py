"""One batch, both cores: each training batch split into shards, each shard's forward and
backward run in a thread of its own, the gradients summed.

NumPy's element-wise ufuncs (exp, tanh, add, where) use one core, and a small matrix product gains
little from a second BLAS thread. NumPy releases the GIL inside ufuncs and BLAS calls, though, so
two Python threads, each running half of the batch through the model with one BLAS thread, keep
both cores busy for everything (docs/speed.md measures where it pays).

The maths is the batch's: with shard ``i`` holding ``w_i`` of the ``W`` counted targets (samples,
or tokens that are not the loss's ignore index), the batch's mean loss is ``sum_i (w_i / W) L_i``,
so each shard backpropagates ``dout = w_i / W`` and the shards' gradients add up to the whole
batch's, equal to one thread's up to the order of the sums (tests/test_threads.py, float64 to
1e-12). Each extra thread owns a replica of the model: its own layers (each keeps its own
forward's values for its backward) and its own gradients, but the model's very parameter arrays,
so the optimizer's in-place update reaches every replica.

Dropout draws one thread's masks: each shard draws the whole batch's mask from the same
generator state and keeps its rows (``Dropout.batch_shard``, as MPI's ranks do). What this
cannot split, it refuses: BatchNorm (its statistics are the whole batch's, not a shard's), a
GPT's dropout (its attention draws its own) and a stateful recurrent layer (its state carried
from the last batch is the whole batch's). It never imports the
trainer (``train.train_step`` takes it as its ``parallel``, as it takes MPI's
:class:`~handgrad.distributed.DataParallel`).
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import validate
from .distributed import counted_targets
from .layers import BatchNorm, Dropout

__all__ = ["BatchThreads", "blas_libraries", "threads_setting"]

#: The one setting: how many threads share a training batch (1: no split). ``handgrad train
#: --threads N``, ``fit(..., threads=N)`` and ``fit_lm(..., threads=N)`` set it; without them
#: the environment variable ``HANDGRAD_THREADS`` does, else 1.
ENVIRONMENT_VARIABLE = "HANDGRAD_THREADS"


def threads_setting(threads=None) -> int:
    """``threads`` if given, else ``HANDGRAD_THREADS`` from the environment, else 1; a positive
    integer (at most 64), or ValueError naming where the wrong value came from."""
    if threads is None:
        text = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
        if not text:
            return 1
        try:
            threads = int(text)
        except ValueError:
            raise ValueError(f"{ENVIRONMENT_VARIABLE} must be a positive integer, got {text!r:.40}") from None
        return validate.positive_int(threads, ENVIRONMENT_VARIABLE, limit=65)
    return validate.positive_int(threads, "threads", limit=65)


def blas_libraries() -> list:
    """threadpoolctl's controllers of the BLAS libraries loaded (found once: setting one's thread
    count costs a few microseconds after that); ImportError in one line without threadpoolctl."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        raise ImportError("threads > 1 needs threadpoolctl, to give each thread one BLAS thread: "
                          "pip install 'handgrad[threads]' (or use threads=1)") from None
    return ThreadpoolController().select(user_api="blas").lib_controllers


class BatchThreads:
    """``threads`` threads sharing every training batch of ``model`` (see the module docstring).

    ``forward_backward(model, xb, tb)`` leaves in ``model.grads`` the gradient of the whole
    batch's mean loss and returns ``(loss, correct, counted)``, the interface
    :func:`handgrad.train.train_step` expects of its ``parallel``. Call :meth:`close` (or use
    ``with``) when done: it stops the threads.
    """

    def __init__(self, model, threads: int = 2) -> None:
        self.threads = validate.positive_int(threads, "threads", who="BatchThreads", limit=65)
        refused = [f"layer {path} ({layer.name}{', stateful' if getattr(layer, 'stateful', False) else ''})"
                   for path, layer in model.named_layers()
                   if isinstance(layer, BatchNorm) or getattr(layer, "stateful", False)]
        if getattr(model, "dropout", 0):  # a GPT's dropout also draws inside its attention
            refused.append(f"dropout {model.dropout}")
        if refused:
            raise ValueError(f"threads: a batch split over threads would not train the same model with "
                             f"{', '.join(refused)} (BatchNorm's statistics, a GPT's dropout and a stateful "
                             f"layer's carried state are the whole batch's); use one thread (threads=1, --threads 1)")
        self.model = model
        for _, layer in model.named_layers():
            if isinstance(layer, Dropout) and layer.rng is None:
                layer.rng = np.random.default_rng()  # drawn now, so that the replicas copy it
        shared = {id(array): array for array in [*model.params.values(), *model.buffers.values()]}
        # A deep copy that keeps the model's parameter arrays themselves (deepcopy's memo): layers,
        # caches and gradients of its own, the same weights.
        self.replicas = [model] + [copy.deepcopy(model, dict(shared)) for _ in range(self.threads - 1)]
        for replica in self.replicas[1:]:
            if hasattr(replica, "weight_decay") and not callable(replica.weight_decay):
                replica.weight_decay = 0.0  # the L2 penalty's gradient is added once, by the model itself
        # Dropout: every shard draws the whole batch's mask from the same generator state and keeps
        # its own rows (Dropout.batch_shard, as under MPI), so the masks are one thread's.
        self._dropouts = [[layer for _, layer in replica.named_layers() if isinstance(layer, Dropout)]
                          for replica in self.replicas]
        generators = {}
        for theirs in self._dropouts[1:]:
            for mine, copied in zip(self._dropouts[0], theirs):
                generators.setdefault((id(mine.rng), id(copied.rng)), (mine.rng, copied.rng))
        self._generator_pairs = list(generators.values())
        self._blas = blas_libraries() if self.threads > 1 else []  # refused now, not at the first step
        self._pool = ThreadPoolExecutor(self.threads - 1) if self.threads > 1 else None

    def __enter__(self) -> "BatchThreads":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    @contextlib.contextmanager
    def _one_blas_thread_each(self):
        """Each thread's BLAS calls on one core while the shards run (two threads each asking
        OpenBLAS for two would ask for four on two cores); the BLAS's own setting is put back
        after every step, so nothing else in the process sees it changed."""
        before = [library.num_threads for library in self._blas]
        for library in self._blas:
            library.set_num_threads(1)
        try:
            yield
        finally:
            for library, threads in zip(self._blas, before):
                library.set_num_threads(threads)

    def forward_backward(self, model, xb, tb, step=None) -> tuple[float, int, int]:
        """The batch's mean loss, right predictions and counted targets; ``model.grads`` then
        holds the gradient of that mean loss (nothing is written on a NaN or infinite loss).
        ``step`` is accepted for the trainer's interface and not used: each shard runs the model
        protocol itself (``scores_and_targets``, the loss layer, ``backward(dout)``)."""
        if model is not self.model:
            raise ValueError("BatchThreads: forward_backward got another model than the one it was made for")
        with self._one_blas_thread_each():
            return self._split_step(model, xb, tb)

    def _split_step(self, model, xb, tb) -> tuple[float, int, int]:
        bounds = np.linspace(0, len(xb), self.threads + 1).round().astype(int)
        rows = [(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]
        shards = [(xb[lo:hi], tb[lo:hi]) for lo, hi in rows]
        replicas = self.replicas[:len(shards)]
        for mine, copied in self._generator_pairs:
            copied.bit_generator.state = mine.bit_generator.state
        for dropouts, (lo, hi) in zip(self._dropouts, rows):
            for dropout in dropouts:
                dropout.batch_shard = (int(lo), int(hi), len(xb))
        try:
            return self._shards_step(model, replicas, shards)
        finally:
            for dropouts in self._dropouts:
                for dropout in dropouts:
                    dropout.batch_shard = None

    def _shards_step(self, model, replicas, shards) -> tuple[float, int, int]:
        results = self._in_parallel([(self._forward, (replica, x, t)) for replica, (x, t) in zip(replicas, shards)])
        total = sum(weight for *_, weight in results)  # (scores, targets, loss, weight) per shard
        loss = sum(weight * shard_loss for _, _, shard_loss, weight in results) / total if total else float("nan")
        if not math.isfinite(loss):
            return loss, 0, 0
        self._in_parallel([(replica.backward, (weight / total, False)) for replica, (*_, weight) in zip(replicas, results)])
        grads = model.grads
        for replica in replicas[1:]:
            for name, grad in replica.grads.items():
                grads[name] += grad
        correct = counted = 0
        for replica, (x, t), (scores, targets, _, _) in zip(replicas, shards, results):
            right, count = replica.count_correct(x, t, scores, targets)
            correct, counted = correct + right, counted + count
        return loss, correct, counted

    @staticmethod
    def _forward(replica, x, t):
        scores, targets = replica.scores_and_targets(x, t)
        return scores, targets, replica.loss_layer.forward(scores, targets), counted_targets(replica, scores, targets)

    def _in_parallel(self, calls: list) -> list:
        """``[fn(*args) for fn, args in calls]``, the first in this thread (so that it works
        too), the others on the pool's threads at the same time."""
        futures = [self._pool.submit(fn, *args) for fn, args in calls[1:]]
        first = calls[0][0](*calls[0][1])
        return [first] + [future.result() for future in futures]
