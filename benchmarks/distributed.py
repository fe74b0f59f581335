"""Data-parallel training over MPI: measured on this machine, and a cost model up to 64 ranks.

    flock /tmp/handgrad-heavy.lock python benchmarks/distributed.py [--repeats 3]
                                       [--json benchmarks/results/distributed.json]

Measured, for the MLP (784-100-10, batch 100), SimpleConvNet (1x28x28, batch 100) and the GPT
of nanoGPT's CPU configuration (4 layers, 4 heads, 128 wide, context 64, batch 12), on random
data of those shapes, Adam, the same global batch in every setting:
* 1 process with 1 BLAS thread, 1 process with 2 BLAS threads, and ``mpiexec -n 2`` with 1 BLAS
  thread per rank (``hg.distributed.DataParallel``, the code ``fit`` runs under MPI);
* time per step, throughput (samples or tokens per second), and for 2 ranks the time per step
  spent in the all-reduce (waiting for the slower rank included) and, alone, an all-reduce of
  the gradient buffer (no training around it).
Each setting runs in a process of its own, timing a block of steps (300, 20 and 15: well past
the first steps' allocations and thread start-up) after 3 warm-up steps; the settings take turns,
their order reversed every other round, a 0.3 s pause before each, ``--repeats`` rounds (3);
reported: the median per setting, and the spread of the step time over the rounds.

On paper (strong scaling: the global batch B fixed, split over K ranks):
``T(K) = C ceil(B / K) / B + 2 (K - 1) (alpha + n / (K beta))``, C the measured 1-thread
compute time per step, n the gradient bytes, a ring all-reduce (2 (K - 1) messages of n / K
bytes, each paying the latency alpha and moving at bandwidth beta: 2 (K - 1) / K of the
gradient bytes per rank). Speed-up ``C / T(K)`` for two networks: 10 Gbit Ethernet (alpha 50 us,
beta 1.25 GB/s) and 100 Gbit InfiniBand (alpha 2 us, beta 12.5 GB/s). The model leaves out that
small shards run BLAS less efficiently, and checks itself against the measured K = 2 point with
this machine's own all-reduce time (shared memory) in place of the network term.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MODELS = {"mlp": 100, "convnet": 100, "gpt": 12}  # name: global batch
STEPS = {"mlp": 300, "convnet": 20, "gpt": 15}
NETWORKS = {"10 Gbit Ethernet": (50e-6, 1.25e9), "100 Gbit InfiniBand": (2e-6, 12.5e9)}
RANKS = (1, 2, 4, 8, 16, 32, 64)


# --- the worker: runs inside each process --------------------------------------------------------


def _build(name: str):
    import handgrad as hg
    from handgrad.model import GPT, SimpleConvNet

    rng = np.random.default_rng(0)
    if name == "mlp":
        model = hg.mlp(784, [100], 10, seed=0)
        return model, rng.standard_normal((2000, 784)).astype(np.float32), rng.integers(0, 10, 2000)
    if name == "convnet":
        model = SimpleConvNet(seed=0)
        return model, rng.standard_normal((500, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 500)
    model = GPT(65, 64, 4, 4, 128, seed=0)
    return model, rng.integers(0, 65, (600, 64)), rng.integers(0, 65, (600, 64))


def worker(name: str, steps: int, distributed: bool) -> dict:
    import handgrad as hg
    from handgrad.distributed import DataParallel
    from handgrad.train import forward_backward

    model, x, t = _build(name)
    optimizer, batch = hg.optim.Adam(lr=1e-4), MODELS[name]
    parallel = DataParallel(model) if distributed else None
    rng = np.random.default_rng(1)
    model.train()

    def step():
        index = rng.choice(len(x), batch, replace=False)
        if parallel is None:
            forward_backward(model, x[index], t[index])
        else:
            parallel.forward_backward(model, *parallel.local_batch(x, t, index), forward_backward)
        optimizer.update(model.params, model.grads)

    for _ in range(3):  # warm up: buffers, BLAS threads, the first all-reduce
        step()
    if parallel is not None:
        parallel.comm.Barrier()
        parallel.seconds_in_allreduce = 0.0
    began = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - began) / steps
    result = {"step_s": seconds, "gradient_bytes": int(sum(g.nbytes for g in model.grads.values())),
              "parameters": int(sum(p.size for p in model.params.values()))}
    if parallel is not None:
        result["allreduce_in_step_s"] = parallel.seconds_in_allreduce / steps
        from mpi4py import MPI

        buffer = np.zeros(result["parameters"] + 4, np.float32)
        parallel.comm.Barrier()
        began = time.perf_counter()
        for _ in range(50):
            parallel.comm.Allreduce(MPI.IN_PLACE, buffer)
        result["allreduce_alone_s"] = (time.perf_counter() - began) / 50
        times = parallel.comm.gather(result["step_s"], root=0)
        if parallel.rank != 0:
            return {}
        result["step_s"] = max(times)
    return result


# --- the driver ----------------------------------------------------------------------------------


def _measure(name: str, ranks: int, threads: int) -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    command = [sys.executable, __file__, "--worker", name, "--steps", str(STEPS[name])]
    if ranks > 1:
        mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
        if mpiexec is None:
            raise SystemExit('benchmarks/distributed.py needs mpiexec: pip install "handgrad[distributed]"')
        command = [mpiexec, "-n", str(ranks), *command, "--distributed"]
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _median_run(runs: list[dict]) -> dict:
    """One setting's rounds as one row: the median of every time, the step times of all rounds."""
    row = {key: float(np.median([run[key] for run in runs])) for key in runs[0] if key.endswith("_s")}
    row.update({key: runs[0][key] for key in ("gradient_bytes", "parameters")})
    row["step_s_runs"] = [run["step_s"] for run in runs]
    return row


def modelled_step(compute_s: float, batch: int, ranks: int, gradient_bytes: int, alpha: float, beta: float) -> float:
    """Ring all-reduce cost model: see the module's docstring."""
    network = 0.0 if ranks == 1 else 2 * (ranks - 1) * (alpha + gradient_bytes / (ranks * beta))
    return compute_s * math.ceil(batch / ranks) / batch + network


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--distributed", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of every setting (default: 3)")
    parser.add_argument("--json", default=str(HERE / "results" / "distributed.json"))
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    sys.path.insert(0, str(HERE.parent / "src"))
    if args.worker:
        result = worker(args.worker, args.steps, args.distributed)
        if result:
            print(json.dumps(result))
        return

    from machine import machine_line, write_results

    print(machine_line(), flush=True)
    measured = {}
    print(f"\n{'model':8} {'setting':22} {'ms/step':>9} {'throughput':>16} {'all-reduce ms/step':>19} {'alone':>7}"
          f"  (ms/step over {args.repeats} rounds)")
    for name, batch in MODELS.items():
        unit = "tokens/s" if name == "gpt" else "samples/s"
        per_step = batch * (64 if name == "gpt" else 1)
        settings = (("1 rank, 1 thread", 1, 1), ("1 rank, 2 threads", 1, 2), ("2 ranks, 1 thread each", 2, 1))
        runs = {label: [] for label, _, _ in settings}
        for round_ in range(args.repeats):
            for label, ranks, threads in settings[:: -1 if round_ % 2 else 1]:
                time.sleep(0.3)
                runs[label].append(_measure(name, ranks, threads))
        rows = {}
        for label, ranks, _ in settings:
            row = rows[label] = _median_run(runs[label])
            row["throughput"] = per_step / row["step_s"]
            extra = (f"{1e3 * row['allreduce_in_step_s']:19.3f} {1e3 * row['allreduce_alone_s']:7.3f}"
                     if ranks > 1 else "")
            spread = f"  ({1e3 * min(row['step_s_runs']):.2f}-{1e3 * max(row['step_s_runs']):.2f} ms)"
            print(f"{name:8} {label:22} {1e3 * row['step_s']:9.2f} {row['throughput']:10,.0f} {unit:>9}{extra}{spread}",
                  flush=True)
        one, two = rows["1 rank, 1 thread"], rows["2 ranks, 1 thread each"]
        predicted = one["step_s"] * math.ceil(batch / 2) / batch + two["allreduce_alone_s"]
        rows["model_check"] = {"predicted_2_rank_step_s": predicted, "measured_2_rank_step_s": two["step_s"]}
        print(f"{name:8} cost model at K = 2 (this machine's all-reduce): {1e3 * predicted:.2f} ms/step predicted, "
              f"{1e3 * two['step_s']:.2f} measured ({two['step_s'] / predicted:.2f}x)")
        measured[name] = rows

    print("\nCost model, strong scaling (global batch fixed): speed-up over 1 rank at K ranks")
    curves = {}
    for network, (alpha, beta) in NETWORKS.items():
        print(f"\n{network} (latency {alpha * 1e6:g} us, {beta / 1e9:g} GB/s)")
        print(f"{'model':8} {'grad MB':>8} " + " ".join(f"{'K=' + str(k):>7}" for k in RANKS) + "  best K")
        for name, batch in MODELS.items():
            one = measured[name]["1 rank, 1 thread"]
            speedups = [one["step_s"] / modelled_step(one["step_s"], batch, k, one["gradient_bytes"], alpha, beta)
                        for k in RANKS]
            best = RANKS[int(np.argmax(speedups))]
            curves.setdefault(network, {})[name] = dict(zip(map(str, RANKS), speedups))
            print(f"{name:8} {one['gradient_bytes'] / 1e6:8.2f} " + " ".join(f"{s:7.2f}" for s in speedups)
                  + f"  {best}")
    path = write_results(args.json, {"measured": measured, "cost_model": {
        "networks": {k: {"latency_s": a, "bandwidth_bytes_per_s": b} for k, (a, b) in NETWORKS.items()},
        "ranks": list(RANKS), "speedup": curves}})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
