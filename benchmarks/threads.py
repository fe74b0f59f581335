"""A batch over 2 threads or over 1: where does handgrad's batch split (handgrad.threads) pay?

    python benchmarks/threads.py [--rounds 7] [--json benchmarks/results/threads.json]

Each workload trains the same model from the same weights on the same batches with
``train_step`` in one process (float32): one thread (its BLAS on 2 threads, as a plain run), and
the batch split over 2 threads (each with one BLAS thread). Timed in blocks (a block is 20 steps,
10 for the GPT and SimpleConvNet, 4 for DeepConvNet), the two alternating which goes first, a 0.3 s pause before each; reported: the
median seconds per step of each and the ratio of medians (one thread's time over two threads':
above 1, the split is faster). The registry turns the split on by default only for a workload
where this ratio is above 1 on both instruction sets (``NPY_DISABLE_CPU_FEATURES="X86_V4"``).

Workloads: ``mlp-100`` (784-100-10, batch 100, SGD), ``mlp-1024`` (784-1024-10, batch 256, SGD),
``makemore-transformer`` (makemore.py's: 4 layers, 4 heads, width 64, words of 16, batch 32,
AdamW), ``gpt`` (nanoGPT's CPU configuration: 4 layers, 4 heads, width 128, context 64, batch
12, AdamW), ``simple-cnn`` and ``deep-cnn`` (the book's ConvNets on 28x28 images, batch 100, Adam;
DeepConvNet's dropout drawing one thread's masks), and ``handgrad train --model lstm``'s model (LSTM
128, last state, Affine 10; Adam) on each kind of input it reads: ``lstm-mnist`` (28 steps of 28
pixels, batch 100), ``lstm-digits`` (8 steps of 8, batch 32) and ``lstm-mnist1d`` (40 steps of one
value, batch 100).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402

import handgrad as hg  # noqa: E402
from handgrad.model.makemore import transformer  # noqa: E402
from handgrad.threads import BatchThreads  # noqa: E402
from handgrad.train import train_step  # noqa: E402
from machine import machine_line, write_results  # noqa: E402

PAUSE = 0.3


def workloads(rng):
    """name -> (model, optimizer, the block's batches)."""
    def mlp(hidden, batch):
        x = rng.random((20 * batch, 784), dtype=np.float32)
        t = rng.integers(0, 10, 20 * batch)
        batches = [(x[i:i + batch], t[i:i + batch]) for i in range(0, len(x), batch)]
        return hg.mlp(784, [hidden], 10, seed=0), hg.optim.SGD(lr=0.01), batches

    def tokens(vocab, rows, steps, count):
        x, t = rng.integers(0, vocab, (rows * count, steps)), rng.integers(0, vocab, (rows * count, steps))
        return [(x[i:i + rows], t[i:i + rows]) for i in range(0, len(x), rows)]

    def convnet(make, steps):
        x = rng.random((steps * 100, 1, 28, 28), dtype=np.float32)
        t = rng.integers(0, 10, steps * 100)
        return make(seed=0), hg.optim.Adam(lr=1e-3), [(x[i:i + 100], t[i:i + 100]) for i in range(0, len(x), 100)]

    def lstm(steps, width, batch):
        from handgrad.registry import MODELS, Task

        kind, shape = ("images", (1, steps, width)) if width > 1 else ("signals", (steps,))
        task = Task("timing", kind, None, None, shape, 10)
        x = rng.random((20 * batch, *shape), dtype=np.float32)  # blocks of 20 steps (0.3-0.5 s)
        t = rng.integers(0, 10, 20 * batch)
        model, _ = MODELS["lstm"].build(task, {"hidden": [128], "seed": 0})
        return model, hg.optim.Adam(lr=1e-3), [(x[i:i + batch], t[i:i + batch]) for i in range(0, len(x), batch)]

    return {
        "mlp-100": lambda: mlp(100, 100),
        "mlp-1024": lambda: mlp(1024, 256),
        "makemore-transformer": lambda: (transformer(27, 16, seed=0), hg.optim.AdamW(lr=5e-4),
                                         tokens(27, 32, 16, 20)),
        "gpt": lambda: (hg.model.GPT(65, 64, 4, 4, 128, seed=0), hg.optim.AdamW(lr=1e-3), tokens(65, 12, 64, 10)),
        "simple-cnn": lambda: convnet(hg.model.SimpleConvNet, 10),
        "deep-cnn": lambda: convnet(hg.model.DeepConvNet, 4),
        "lstm-mnist": lambda: lstm(28, 28, 100),
        "lstm-digits": lambda: lstm(8, 8, 32),
        "lstm-mnist1d": lambda: lstm(40, 1, 100),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--only", nargs="+", choices=list(workloads(None)))
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "threads.json"))
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    print(machine_line(), flush=True)
    rows = []
    for name, make in workloads(np.random.default_rng(0)).items():
        if args.only and name not in args.only:
            continue
        model, optimizer, batches = make()
        with BatchThreads(model, 2) as split:
            for xb, tb in batches[:3]:  # warm up both ways (allocations, the pool's thread)
                train_step(model, optimizer, xb, tb)
                train_step(model, optimizer, xb, tb, parallel=split)
            seconds = {1: [], 2: []}
            for round_ in range(args.rounds):
                for threads in ((1, 2) if round_ % 2 else (2, 1)):
                    time.sleep(PAUSE)
                    started = time.perf_counter()
                    for xb, tb in batches:
                        train_step(model, optimizer, xb, tb, parallel=split if threads == 2 else None)
                    seconds[threads].append((time.perf_counter() - started) / len(batches))
        one, two = float(np.median(seconds[1])), float(np.median(seconds[2]))
        rows.append({"workload": name, "steps_per_block": len(batches), "seconds_per_step": {"1": one, "2": two},
                     "spread": {k: [float(min(v)), float(max(v))] for k, v in (("1", seconds[1]), ("2", seconds[2]))},
                     "ratio": one / two})
        print(f"{name:22s} 1 thread {one * 1e3:7.2f} ms/step ({min(seconds[1]) * 1e3:.2f}-{max(seconds[1]) * 1e3:.2f})"
              f"   2 threads {two * 1e3:7.2f} ms/step ({min(seconds[2]) * 1e3:.2f}-{max(seconds[2]) * 1e3:.2f})"
              f"   {one / two:.2f}x", flush=True)
    write_results(args.json, {"benchmark": "threads", "rounds": args.rounds, "pause_s": PAUSE, "rows": rows})
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
