"""Data-parallel training over MPI: the same training on K processes, exactly as on one.

``mpiexec -n K handgrad train ...`` or ``hg.fit(..., distributed=True)`` (PyTorch's
DistributedDataParallel, written out so that it can be read):

1. Every rank starts from rank 0's weights, optimizer state and random generators (broadcast).
2. Every rank draws the same permutation, so all agree on each global minibatch of B samples,
   and takes its shard of it: rank r gets rows ``[r B / K]`` onwards, ``np.array_split``'s uneven
   split (the first ``B mod K`` ranks get one sample more; a batch smaller than K leaves the last
   ranks with no rows for that step: they send zeros).
3. Each rank runs forward and backward on its shard. Its loss is the mean over its M_k counted
   targets (samples, or tokens not equal to ``ignore_index``), its gradient g_k that mean's.
4. One all-reduce per step over one contiguous buffer
   ``[M_k g_k | stop_k | M_k loss_k | M_k | hits | counted]`` (``stop_k``: Ctrl-C on this rank)
   sums every rank's contribution; dividing by ``M = sum M_k`` gives
   ``g = sum_k (M_k / M) g_k``, the gradient of the mean over the whole global batch: the very
   gradient one process computes, whatever the shard sizes (only the order of the sums differs).
5. Every rank applies the same optimizer update to the same weights, so they never drift apart.

Dropout draws the mask of the whole global batch from the shared stream and keeps its own rows
(``Dropout.batch_shard``), so K ranks draw one process's masks. BatchNorm normalises with each
rank's own shard statistics (as DDP without SyncBatchNorm); its running statistics are rank 0's.
Training with BatchNorm under MPI is therefore close to, not equal to, one process's.

Needs the ``distributed`` extra: ``pip install "handgrad[distributed]"`` (mpi4py, and MPICH's
wheel, which brings ``mpiexec``).
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np

from ._mpi_env import launched_by_mpi
from .layers import Dropout

__all__ = ["launched_by_mpi", "world", "DataParallel", "shard", "counted_targets", "abort_job"]

EXTRA = 'pip install "handgrad[distributed]"'


def world():
    """``MPI.COMM_WORLD``, every process of the job (mpi4py starts MPI on import)."""
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError(f"training on several processes needs mpi4py and an MPI library: {EXTRA}") from error
    return MPI.COMM_WORLD


def abort_job(comm=None, status: int = 1) -> None:
    """End every process of the job (``MPI_Abort``): a rank that stops alone would leave the
    others waiting for it in the next all-reduce forever."""
    sys.stdout.flush()
    sys.stderr.flush()
    # mpiexec kills every process at once on an abort, and may drop what it has not yet read
    # from their pipes: give it a moment to forward the message that says why.
    time.sleep(0.5)
    (comm or world()).Abort(status)


_hooked = False


def _abort_on_uncaught_exception(comm) -> None:
    """Make an uncaught exception on any rank print its traceback, say which rank failed, and
    take the whole job down (MPI's semantics), instead of leaving the other ranks hanging."""
    global _hooked
    if _hooked or comm.size == 1:
        return

    def hook(kind, value, traceback):
        import traceback as tb

        # One write: the lines of a traceback written one by one may reach mpiexec cut short.
        sys.stderr.write("".join(tb.format_exception(kind, value, traceback))
                         + f"handgrad: rank {comm.rank} of {comm.size} failed ({kind.__name__}); aborting the whole "
                         "MPI job. A run that wrote checkpoints continues with --resume (fit(..., resume=True)).\n")
        abort_job(comm)

    sys.excepthook = hook
    _hooked = True


def counted_targets(model, scores, targets) -> int:
    """How many targets the model's loss averages over: positions whose label is not the loss's
    ``ignore_index`` (integer labels), else every row of scores (one-hot or probability rows)."""
    targets = np.asarray(targets)
    if targets.shape == np.shape(scores):
        return int(np.prod(np.shape(scores)[:-1]))
    ignore_index = getattr(model.loss_layer, "ignore_index", None)
    if ignore_index is not None and targets.dtype.kind in "iu":
        return int(np.count_nonzero(targets != ignore_index))
    return int(targets.size)


class DataParallel:
    """One model trained by the ranks of ``comm`` (default: every process of the job).

    ``local_batch(x, t, index)`` gives this rank's shard of the global minibatch ``index``;
    ``forward_backward(model, xb, tb)`` computes the shard's loss and gradients and all-reduces
    them, leaving in ``model.grads`` the gradient of the whole global batch's mean loss and
    returning the global ``(loss, hits, counted)``. ``seconds_in_allreduce`` adds up the time
    spent in the all-reduce (waiting for the slowest rank included).
    """

    def __init__(self, model, comm=None) -> None:
        self.comm = world() if comm is None else comm
        self.rank, self.size = self.comm.rank, self.comm.size
        self.is_root = self.rank == 0
        _abort_on_uncaught_exception(self.comm)
        grads = model.grads
        self._names = list(grads)
        if not self._names:
            raise ValueError("DataParallel: the model has no parameters to train")
        dtype = np.result_type(np.float32, *(g.dtype for g in grads.values()))
        sizes = [grads[name].size for name in self._names]
        self._offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        # One contiguous buffer: the gradients, then five numbers (see the module's docstring).
        self._buffer = np.empty(self._offsets[-1] + 5, dtype=dtype)
        # Ctrl-C on any rank: each step's all-reduce carries it, so every rank learns it in the
        # same step and all stop after that step together (a rank that stopped alone would leave
        # the others waiting in the next all-reduce).
        self.stop_requested = False  # this rank's wish, set by the trainer before each step
        self.stop_agreed = False     # any rank's, after the step
        self._dropouts = [layer for _, layer in model.named_layers() if isinstance(layer, Dropout)]
        self._generators = _generators_of(model, self._dropouts)
        self._shard = (0, 0, 0)
        self.seconds_in_allreduce = 0.0
        self.steps = 0

    # --- the start: rank 0's state everywhere --------------------------------------------------

    def broadcast_model(self, model) -> None:
        """Rank 0's parameters and buffers (BatchNorm's running statistics) and the model's
        random generators, on every rank."""
        arrays = list(model.params.values()) + list(model.buffers.values())
        packed = np.concatenate([a.ravel() for a in arrays]) if arrays else np.zeros(0)
        self.comm.Bcast(packed, root=0)
        start = 0
        for array in arrays:
            array[...] = packed[start:start + array.size].reshape(array.shape)
            start += array.size
        self.broadcast_generators()

    def broadcast_generators(self, *extra) -> None:
        """Rank 0's state of the model's generators (dropout), and of ``extra`` generators."""
        generators = self._generators + list(extra)
        states = self.comm.bcast([g.bit_generator.state for g in generators] if self.is_root else None, root=0)
        for generator, state in zip(generators, states):
            generator.bit_generator.state = state

    def from_root(self, compute):
        """``compute()`` run on rank 0 alone (evaluation, reading a checkpoint), its result sent
        to every rank."""
        return self.comm.bcast(compute() if self.is_root else None, root=0)

    # --- one step ------------------------------------------------------------------------------

    def local_batch(self, x, t, index) -> tuple[np.ndarray, np.ndarray]:
        """This rank's samples of the global minibatch ``x[index], t[index]``."""
        start, stop = shard(len(index), self.rank, self.size)
        self._shard = (start, stop, len(index))
        rows = index[start:stop]
        return x[rows], t[rows]

    def forward_backward(self, model, xb, tb, step) -> tuple[float, int, int]:
        """The global batch's mean loss, correct predictions and counted targets; ``model.grads``
        then holds the gradient of that mean. ``step(model, xb, tb)`` returns ``(scores, targets,
        loss)`` after forward and backward (:func:`handgrad.train.forward_backward`, which skips
        backward on a NaN loss; passed in, so that this module never imports the trainer)."""
        start, stop, total = self._shard
        buffer, offsets = self._buffer, self._offsets
        buffer[:] = 0.0
        buffer[-5] = 1.0 if self.stop_requested else 0.0
        if stop > start:  # a batch smaller than K leaves the last ranks idle for this step
            for dropout in self._dropouts:
                dropout.batch_shard = self._shard
            try:
                scores, targets, loss = step(model, xb, tb)
            finally:
                for dropout in self._dropouts:
                    dropout.batch_shard = None
            weight = counted_targets(model, scores, targets)
            if not math.isfinite(loss) and weight:
                buffer[-4] = np.nan  # the sum turns NaN on every rank: all stop together
            elif weight:
                grads = model.grads
                for name, lo, hi in zip(self._names, offsets[:-1], offsets[1:]):
                    np.multiply(grads[name].ravel(), weight, out=buffer[lo:hi])
                hits, counted = model.count_correct(xb, tb, scores, targets)
                buffer[-4:] = weight * loss, weight, hits, counted
        began = time.perf_counter()
        self.comm.Allreduce(_in_place(), buffer)
        self.seconds_in_allreduce += time.perf_counter() - began
        self.steps += 1
        self.stop_agreed = bool(buffer[-5] > 0)
        weight_sum = float(buffer[-3])
        grads = model.grads
        for name, lo, hi in zip(self._names, offsets[:-1], offsets[1:]):
            grad = grads[name]
            np.divide(buffer[lo:hi].reshape(grad.shape), weight_sum or 1.0, out=grad)
        if total < self.size and self._dropouts and model.training:
            self.broadcast_generators()  # the idle ranks drew no masks: give them rank 0's stream
        loss = float(buffer[-4]) / weight_sum if weight_sum else float("nan")
        return loss, int(round(float(buffer[-2]))), int(round(float(buffer[-1])))


def shard(total: int, rank: int, ranks: int) -> tuple[int, int]:
    """Rank ``rank``'s rows ``(start, stop)`` of a global batch of ``total`` split across
    ``ranks``, as ``np.array_split``: the first ``total mod ranks`` get one row more."""
    size, extra = divmod(total, ranks)
    start = rank * size + min(rank, extra)
    return start, start + size + (rank < extra)


def _in_place():
    from mpi4py import MPI

    return MPI.IN_PLACE


def _generators_of(model, dropouts) -> list:
    """The distinct random generators a model's training draws from (the model's, and any a
    Dropout was given of its own), in a fixed order."""
    found = {}
    for generator in [getattr(model, "rng", None)] + [d.rng for d in dropouts]:
        if generator is not None:
            found.setdefault(id(generator), generator)
    return list(found.values())
