"""Training runs for tests/test_distributed.py, run by every rank of ``mpiexec -n K``.

``python tests/mpi_worker.py SCENARIO OUT.npz [--epochs E] [--checkpoint PATH] [--resume]``
trains the scenario with ``distributed=True``; rank 0 writes the final weights, the history and
how far every rank's weights and history are from rank 0's. The test imports ``run`` to train
the same scenario in one process, for comparison.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import handgrad as hg
from handgrad.model import GPT, SimpleConvNet


def _classification(n, shape, classes, seed, dtype):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *shape)).astype(dtype)
    rule = rng.standard_normal((int(np.prod(shape)), classes))
    return x, (x.reshape(n, -1) @ rule).argmax(axis=1)


def _jitter(xb, rng):
    """An augmentation (fit's ``augment=``): noise drawn from the step's generator."""
    return xb + rng.normal(0.0, 0.1, xb.shape).astype(xb.dtype)


# name: (model builder, optimizer builder, data, fit's keywords). Batch sizes are chosen so that
# shards are uneven (odd batches) and the last batch is partial, or smaller than K.
SCENARIOS = {
    "mlp_dropout_sgd32": (
        lambda: hg.mlp(12, [24, 16], 4, dropout=0.3, seed=0, dtype=np.float32),
        lambda: hg.optim.Momentum(lr=0.05),
        lambda: _classification(103, (12,), 4, 1, np.float32),
        dict(batch_size=25, epochs=3)),
    "mlp_dropout_adam64": (
        lambda: hg.mlp(12, [24, 16], 4, dropout=0.3, seed=0, dtype=np.float64, weight_decay=1e-3),
        lambda: hg.optim.Adam(lr=1e-2),
        lambda: _classification(103, (12,), 4, 1, np.float64),
        dict(batch_size=25, epochs=3)),
    "convnet_sgd32": (
        lambda: SimpleConvNet(input_dim=(1, 8, 8), filter_num=4, filter_size=3, hidden_size=16, output_size=3, seed=0),
        lambda: hg.optim.SGD(lr=0.05),
        lambda: _classification(45, (1, 8, 8), 3, 2, np.float32),
        dict(batch_size=16, epochs=2)),
    "batch_smaller_than_ranks": (  # batch 1: one rank idle at every step; 7 = 2*3 + 1: a last batch of 1
        lambda: hg.mlp(6, [8], 3, dropout=0.5, seed=3, dtype=np.float64),
        lambda: hg.optim.Adam(lr=1e-2),
        lambda: _classification(7, (6,), 3, 4, np.float64),
        dict(batch_size=3, epochs=2)),
    "mlp_batchnorm": (  # per-rank statistics: close to one process, not equal
        lambda: hg.mlp(12, [24], 4, batchnorm=True, seed=0, dtype=np.float64),
        lambda: hg.optim.SGD(lr=0.05),
        lambda: _classification(103, (12,), 4, 1, np.float64),
        dict(batch_size=26, epochs=2)),
    "mlp_augmented": (  # every batch jittered, whole, on every rank, then sharded
        lambda: hg.mlp(12, [24, 16], 4, seed=0, dtype=np.float64),
        lambda: hg.optim.Adam(lr=1e-2),
        lambda: _classification(103, (12,), 4, 1, np.float64),
        dict(batch_size=25, epochs=2, augment=_jitter)),
    "batch_of_one": (
        lambda: hg.mlp(6, [8], 3, dropout=0.5, seed=3, dtype=np.float64),
        lambda: hg.optim.SGD(lr=0.1),
        lambda: _classification(5, (6,), 3, 4, np.float64),
        dict(batch_size=1, epochs=1)),
}


def _gpt_scenario():
    rng = np.random.default_rng(5)
    stream = rng.integers(0, 11, size=400)
    model = GPT(11, 8, 1, 2, 16, dropout=0.1, seed=0, dtype=np.float64)
    optimizer = hg.optim.AdamW(lr=3e-3, weight_decay=0.1, matrices_only=True)
    return model, optimizer, (stream[:-1], stream[1:]), (stream[300:-1], stream[301:])


def run(name: str, epochs=None, checkpoint=None, resume=False, distributed=False):
    """Train scenario ``name``; returns (model, history)."""
    if name == "gpt":
        model, optimizer, train, val = _gpt_scenario()
        history = hg.train.fit_lm(model, optimizer, train, val, block_size=8, batch_size=5,
                                  max_steps=epochs or 6, eval_interval=3, eval_iters=2, grad_clip=1.0,
                                  checkpoint=checkpoint, resume=resume, distributed=distributed)
        return model, history
    build_model, build_optimizer, data, options = SCENARIOS[name]
    model, optimizer = build_model(), build_optimizer()
    x, t = data()
    options = dict(options)
    if epochs is not None:
        options["epochs"] = epochs
    history = hg.fit(model, optimizer, (x, t), val=(x[:20], t[:20]), seed=7, checkpoint=checkpoint,
                     checkpoint_every=1 if checkpoint else 0, resume=resume, distributed=distributed, **options)
    return model, history


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario")
    parser.add_argument("out")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--checkpoint")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--fail-rank", type=int, help="this rank raises at its third training step")
    args = parser.parse_args(argv)
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    if args.fail_rank == comm.rank:
        calls = {"n": 0}
        original = hg.layers.SoftmaxWithLoss.forward

        def failing(self, x, t):
            calls["n"] += 1
            if calls["n"] == 3:
                raise RuntimeError(f"rank {comm.rank} breaks down on purpose")
            return original(self, x, t)

        hg.layers.SoftmaxWithLoss.forward = failing
    model, history = run(args.scenario, args.epochs, args.checkpoint, args.resume, distributed=True)
    params = model.params
    mine = np.concatenate([value.ravel().astype(np.float64) for value in params.values()])
    losses = np.array(history["train_loss"], dtype=np.float64)
    everyone = comm.gather((mine, losses), root=0)
    if comm.rank == 0:
        np.savez(args.out, size=comm.size, train_loss=losses,
                 val_loss=np.array(history["val_loss"], dtype=np.float64),
                 weights_spread=max(float(np.max(np.abs(w - mine))) for w, _ in everyone),
                 history_spread=max(float(np.max(np.abs(h - losses))) for _, h in everyone),
                 **{f"param:{name}": value for name, value in params.items()})


if __name__ == "__main__":
    sys.exit(main())
