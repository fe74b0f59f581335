"""Two checkouts of handgrad timed side by side, in blocks, on the same machine and minute: did a
change cost speed?

    git worktree add /tmp/before d786b45
    python benchmarks/compare_commits.py /tmp/before/src . [--rounds 7] [--only mlp-100 gpt]
                                         [--json benchmarks/results/compare_commits.json]

Each checkout's handgrad runs in a worker process of its own (``PYTHONPATH`` set to that
checkout's ``src``), which builds every workload once and then waits. The parent asks the
workers in turn to run one block of a workload, with a 0.3 s pause before each block (so that
the other worker's idle BLAS and OpenMP threads have stopped spinning) and alternating which
worker goes first, for ``--rounds`` rounds; a block is many training steps (an epoch of an MLP,
20 steps of a ConvNet, 30 of the GPT), long enough that the switch costs nothing. Reported: each
worker's median seconds per block with the spread (min-max), and the ratio of medians (A's time
over B's: above 1, B is faster). Both workers use the public API of both commits only
(``fit``, ``fit_lm``, the ready models), float32, 2 BLAS threads each.

The workloads: ``mlp-100`` and ``mlp-1024`` (784-100-10 at batch 100 and 784-1024-10 at batch
256, one epoch of plain SGD over 51,200 synthetic MNIST-shaped samples, as benchmarks/speed.py),
``simple-cnn`` and ``deep-cnn`` (the book's ConvNets on 28x28 inputs, batch 100, 20 and 6 steps of
Adam), ``gpt`` (nanoGPT's CPU configuration: 4 layers, 4 heads, width 128, context 64, batch 12,
30 steps of AdamW on random tokens).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
import time
from pathlib import Path

PAUSE = 0.3
WORKLOADS = ("mlp-100", "mlp-1024", "simple-cnn", "deep-cnn", "gpt")


# --- the worker: one checkout's handgrad ----------------------------------------------------------


def _workloads(names):
    """name -> a function that runs one block (each built once, its data made here)."""
    import numpy as np

    import handgrad as hg
    from handgrad.model import GPT, DeepConvNet, SimpleConvNet

    rng = np.random.default_rng(0)
    built = {}
    for name in names:
        if name.startswith("mlp-"):
            hidden, batch = (100, 100) if name == "mlp-100" else (1024, 256)
            x, t = rng.random((51_200, 784), dtype=np.float32), rng.integers(0, 10, 51_200)
            model, optimizer = hg.mlp(784, [hidden], 10, seed=0), hg.optim.SGD(lr=0.01)

            def block(model=model, optimizer=optimizer, x=x, t=t, batch=batch):
                hg.fit(model, optimizer, (x, t), epochs=1, batch_size=batch, progress=False)
        elif name.endswith("-cnn"):
            steps = 20 if name == "simple-cnn" else 6
            x, t = rng.random((100 * steps, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 100 * steps)
            model = SimpleConvNet(seed=0) if name == "simple-cnn" else DeepConvNet(seed=0)
            optimizer = hg.optim.Adam(lr=1e-3)

            def block(model=model, optimizer=optimizer, x=x, t=t):
                hg.fit(model, optimizer, (x, t), epochs=1, batch_size=100, progress=False)
        elif name == "gpt":
            tokens = rng.integers(0, 65, 50_000)
            model = GPT(65, 64, 4, 4, 128, seed=0)
            optimizer = hg.optim.AdamW(lr=1e-3, weight_decay=0.1)
            state = {"seed": 0}

            quiet = {"progress": False} if "progress" in inspect.signature(hg.train.fit_lm).parameters else {}

            def block(model=model, optimizer=optimizer, tokens=tokens, state=state, quiet=quiet):
                # fit_lm evaluates after its last step: one batch of each split (eval_iters=1), 2 % of a block.
                state["seed"] += 1
                stream = (tokens[:-1], tokens[1:])
                hg.train.fit_lm(model, optimizer, stream, stream, block_size=64, batch_size=12, max_steps=30,
                                eval_interval=10_000, eval_iters=1, seed=state["seed"], **quiet)
        else:
            raise SystemExit(f"unknown workload {name!r}")
        block()  # warm: first-call allocations and caches are not what a user runs for long
        built[name] = block
    return built


def worker(names) -> None:
    import handgrad

    blocks = _workloads(names)
    print(json.dumps({"ready": str(Path(handgrad.__file__).resolve().parent)}), flush=True)
    for line in sys.stdin:
        name = line.strip()
        started = time.perf_counter()
        blocks[name]()
        print(json.dumps({"seconds": time.perf_counter() - started}), flush=True)


# --- the parent -----------------------------------------------------------------------------------


class Worker:
    def __init__(self, src: Path, names) -> None:
        env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2")
        self.process = subprocess.Popen([sys.executable, __file__, "--worker", *names], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, env=env)
        self.path = self._answer()["ready"]

    def _answer(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"a worker stopped (exit {self.process.wait()})")
        return json.loads(line)

    def run(self, name: str) -> float:
        self.process.stdin.write(name + "\n")
        self.process.stdin.flush()
        return self._answer()["seconds"]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def main() -> None:
    if "--worker" in sys.argv:
        worker(sys.argv[sys.argv.index("--worker") + 1:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", help="checkout A's src folder (the one before the change)")
    parser.add_argument("b", help="checkout B's src folder, or the checkout itself")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--only", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "compare_commits.json"))
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    sources = []
    for given in (args.a, args.b):
        src = Path(given).resolve()
        src = src / "src" if (src / "src" / "handgrad").is_dir() else src
        if not (src / "handgrad" / "__init__.py").is_file():
            parser.error(f"{given}: no handgrad package in it (give a checkout or its src folder)")
        sources.append(src)

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import _commit, machine_line, write_results

    print(machine_line())
    workers = [Worker(src, args.only) for src in sources]
    commits = [_commit(Path(w.path)) for w in workers]
    for label, w, commit in zip("AB", workers, commits):
        print(f"{label}: {w.path} (commit {commit[:12]})")
    times = {name: ([], []) for name in args.only}
    for round_ in range(args.rounds):
        for name in args.only:
            order = (0, 1) if round_ % 2 == 0 else (1, 0)
            for i in order:
                time.sleep(PAUSE)
                times[name][i].append(workers[i].run(name))
    for w in workers:
        w.close()

    def median(values):
        ordered = sorted(values)
        middle = len(ordered) // 2
        return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2

    rows = []
    print(f"\n{'workload':12} {'A s/block (min-max)':>26} {'B s/block (min-max)':>26} {'A/B':>6}")
    for name, (a, b) in times.items():
        row = {"workload": name, "a_seconds": a, "b_seconds": b, "a_median": median(a), "b_median": median(b),
               "a_over_b": median(a) / median(b)}
        rows.append(row)
        print(f"{name:12} {row['a_median']:9.3f} ({min(a):.3f}-{max(a):.3f}) {row['b_median']:9.3f} "
              f"({min(b):.3f}-{max(b):.3f}) {row['a_over_b']:6.2f}")
    write_results(args.json, {"benchmark": "compare_commits", "rounds": args.rounds, "pause_s": PAUSE,
                              "a": {"path": workers[0].path, "commit": commits[0]},
                              "b": {"path": workers[1].path, "commit": commits[1]}, "rows": rows,
                              "command": " ".join(["python benchmarks/compare_commits.py", *sys.argv[1:]])})
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
