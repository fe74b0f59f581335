"""Data-parallel training over MPI: measured on this machine beside the other ways to use its
cores and beside PyTorch, and a cost model up to 64 ranks.

    flock /tmp/handgrad-heavy.lock python benchmarks/distributed.py [--repeats 3] [--data-dir ../shared/data]
                                       [--models mlp convnet deep-convnet lstm gpt] [--block-times 1]
                                       [--json benchmarks/results/distributed.json]

Measured, for the MLP (784-100-10, batch 100), SimpleConvNet and DeepConvNet (1x28x28, batch
100), sequences.py's sequential-MNIST LSTM (28 rows of 28 pixels, LSTM 128, batch 100) and the
GPT of nanoGPT's CPU configuration (4 layers, 4 heads, 128 wide, context 64, batch 12), Adam, the
same global batch in every setting, on MNIST's first training images when ``--data-dir`` is
given (else random images; random tokens for the GPT):
* 1 process with 1 BLAS thread; 1 process with 2 BLAS threads; 1 process with the batch split
  over 2 threads of 1 BLAS thread each (:mod:`handgrad.threads`, ``handgrad train --threads 2``);
  ``mpiexec -n 2`` with 1 BLAS thread per rank (``hg.distributed.DataParallel``, the code
  ``fit`` runs under MPI); and, with PyTorch installed, the same network in PyTorch with 2
  intra-op threads (speed.py's MLP, convnet_speed.py's ConvNets, nanoGPT's model with its
  fused attention as gpt.py times it, sequences.py's ``nn.LSTM`` mirror; random tokens, Adam, no
  clipping here);
* time per step, throughput (samples or tokens per second) and its ratio to PyTorch's, and for 2
  ranks the time per step spent in the all-reduce (waiting for the slower rank included) and,
  alone, an all-reduce of the gradient buffer (no training around it).
Each setting runs in a process of its own, timing a block of steps (300, 20, 20, 30 and 60, times
``--block-times``: run it with 2 to check that a longer block changes no ratio) after 3 warm-up
steps; the settings take turns, their order reversed every other round, a 0.3 s pause before
each, ``--repeats`` rounds (3); reported: the median per setting, and the spread of the step
time over the rounds.

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
MODELS = {"mlp": 100, "convnet": 100, "deep-convnet": 100, "lstm": 100, "gpt": 12}  # name: global batch
STEPS = {"mlp": 300, "convnet": 20, "deep-convnet": 20, "lstm": 30, "gpt": 60}
NETWORKS = {"10 Gbit Ethernet": (50e-6, 1.25e9), "100 Gbit InfiniBand": (2e-6, 12.5e9)}
RANKS = (1, 2, 4, 8, 16, 32, 64)


# --- the worker: runs inside each process --------------------------------------------------------


def _build(name: str, data_dir=None):
    """The model and its data: MNIST's first training images for the MLP, the ConvNets and the
    LSTM when ``data_dir`` is given (PyTorch's max pooling runs faster on their many ties, as
    convnet_speed.py found), else random images; random tokens for the GPT."""
    import handgrad as hg
    from handgrad.model import GPT, DeepConvNet, SimpleConvNet

    rng = np.random.default_rng(0)
    if name != "gpt" and data_dir:
        (images, labels), _ = hg.data.load_dataset("mnist", data_dir=data_dir, flatten=False, download=False)
        images, labels = images[:2000].astype(np.float32), labels[:2000]
    else:
        images, labels = rng.standard_normal((2000, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 2000)
    if name == "mlp":
        return hg.mlp(784, [100], 10, seed=0), images.reshape(len(images), 784), labels
    if name == "lstm":  # sequences.py's sequential MNIST: 28 rows of 28 pixels, LSTM 128, Affine 10
        from sequences import lstm_classifier

        return lstm_classifier(128), images.reshape(len(images), 784), labels
    if name in ("convnet", "deep-convnet"):
        return (SimpleConvNet if name == "convnet" else DeepConvNet)(seed=0), images[:500], labels[:500]
    model = GPT(65, 64, 4, 4, 128, seed=0)
    return model, rng.integers(0, 65, (600, 64)), rng.integers(0, 65, (600, 64))


def _seconds_per_step(step, steps: int, before_timing=lambda: None) -> float:
    """The mean time of ``steps`` calls of ``step``, timed as one block after 3 warm-up steps
    (buffers, BLAS and OpenMP threads, the first all-reduce)."""
    for _ in range(3):
        step()
    before_timing()
    began = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - began) / steps


def torch_worker(name: str, steps: int, data_dir=None) -> dict:
    """The PyTorch network of the same shape (speed.py's MLP, convnet_speed.py's ConvNets,
    tests/test_interop.py's nanoGPT mirror with its fused attention, as gpt.py times it) on the
    same data, Adam 1e-4, 2 intra-op threads: the same block of steps as :func:`worker`."""
    import torch

    sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model, x, t = _build(name, data_dir)
    if name == "mlp":
        net = torch.nn.Sequential(torch.nn.Linear(784, 100), torch.nn.ReLU(), torch.nn.Linear(100, 10))
    elif name in ("convnet", "deep-convnet"):
        from convnet_speed import torch_network

        net = torch_network(torch, "simple" if name == "convnet" else "deep")
    elif name == "lstm":
        from sequences import torch_lstm_classifier

        net = torch_lstm_classifier(torch, model)
    else:
        from test_interop import nanogpt_mirror

        net = nanogpt_mirror(torch)(65, 64, 4, 4, 128, flash=True)
    optimizer, batch = torch.optim.Adam(net.parameters(), lr=1e-4), MODELS[name]
    inputs, targets = torch.from_numpy(x), torch.from_numpy(t)
    rng = np.random.default_rng(1)
    net.train()

    def step():
        index = torch.from_numpy(rng.choice(len(x), batch, replace=False))
        optimizer.zero_grad(set_to_none=True)
        if name == "gpt":
            loss = net(inputs[index], targets[index])[1]
        else:
            loss = torch.nn.functional.cross_entropy(net(inputs[index]), targets[index])
        loss.backward()
        optimizer.step()

    return {"step_s": _seconds_per_step(step, steps),
            "parameters": int(sum(p.numel() for p in net.parameters())),
            "handgrad_parameters": int(sum(p.size for p in model.params.values()))}


def worker(name: str, steps: int, distributed: bool, split: int = 1, data_dir=None) -> dict:
    import handgrad as hg
    from handgrad.distributed import DataParallel
    from handgrad.train import forward_backward

    model, x, t = _build(name, data_dir)
    optimizer, batch = hg.optim.Adam(lr=1e-4), MODELS[name]
    parallel = DataParallel(model) if distributed else None
    # The batch split over threads, one BLAS thread each: what `handgrad train --threads 2` runs.
    threads = hg.threads.BatchThreads(model, split) if split > 1 else None
    rng = np.random.default_rng(1)
    model.train()

    def step():
        index = rng.choice(len(x), batch, replace=False)
        if parallel is not None:
            parallel.forward_backward(model, *parallel.local_batch(x, t, index), forward_backward)
        elif threads is not None:
            threads.forward_backward(model, x[index], t[index], forward_backward)
        else:
            forward_backward(model, x[index], t[index])
        optimizer.update(model.params, model.grads)

    def before_timing():
        if parallel is not None:
            parallel.comm.Barrier()
            parallel.seconds_in_allreduce = 0.0

    seconds = _seconds_per_step(step, steps, before_timing)
    if threads is not None:
        threads.close()
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


def _measure(name: str, ranks: int, threads: int, how: str = "", block_times: int = 1, data_dir=None) -> dict:
    """One setting in a process of its own: ``how`` "" (BLAS threads only), "split" (the batch
    over ``threads`` threads of one BLAS thread each) or "torch" (PyTorch, ``threads`` threads)."""
    blas_threads = 1 if how == "split" else threads
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(blas_threads), OMP_NUM_THREADS=str(blas_threads),
               MKL_NUM_THREADS=str(blas_threads))
    command = [sys.executable, __file__, "--worker", name, "--steps", str(STEPS[name] * block_times)]
    if data_dir:
        command += ["--data-dir", str(data_dir)]
    if how == "split":
        command += ["--split", str(threads)]
    elif how == "torch":
        command += ["--torch"]
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
    row.update({key: runs[0][key] for key in ("gradient_bytes", "parameters", "handgrad_parameters") if key in runs[0]})
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
    parser.add_argument("--split", type=int, default=1)
    parser.add_argument("--torch", action="store_true")
    parser.add_argument("--data-dir", help="MNIST's images for the MLP and the ConvNets (else random ones)")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--block-times", type=int, default=1,
                        help="time blocks this many times longer (a check that the block is long enough)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of every setting (default: 3)")
    parser.add_argument("--json", default=str(HERE / "results" / "distributed.json"))
    args = parser.parse_args()
    if args.repeats < 1 or args.block_times < 1:
        parser.error(f"--repeats and --block-times must be at least 1, got {args.repeats} and {args.block_times}")
    sys.path.insert(0, str(HERE.parent / "src"))
    if args.data_dir and not args.worker and not set(args.models) <= {"gpt"}:  # fail now, not in a worker
        import handgrad as hg

        try:
            hg.data.load_dataset("mnist", data_dir=args.data_dir, flatten=False, download=False)
        except hg.data.DataError as error:
            parser.exit(1, f"{parser.prog}: error: {error}\n")
    if args.worker:
        if args.torch:
            result = torch_worker(args.worker, args.steps, args.data_dir)
        else:
            result = worker(args.worker, args.steps, args.distributed, args.split, args.data_dir)
        if result:
            print(json.dumps(result))
        return

    from machine import machine_line, write_results

    print(machine_line(), flush=True)
    measured = {}
    print(f"\n{'model':12} {'setting':29} {'ms/step':>9} {'throughput':>16} {'all-reduce ms/step':>19} {'alone':>7}"
          f"  (ms/step over {args.repeats} rounds)")
    try:
        import torch  # noqa: F401
        with_torch = True
    except ImportError:
        with_torch = False
    models = {name: MODELS[name] for name in args.models}
    for name, batch in models.items():
        unit = "tokens/s" if name == "gpt" else "samples/s"
        per_step = batch * (64 if name == "gpt" else 1)
        settings = (("1 rank, 1 thread", 1, 1, ""), ("1 rank, 2 threads", 1, 2, ""),
                    ("1 rank, batch over 2 threads", 1, 2, "split"), ("2 ranks, 1 thread each", 2, 1, ""))
        settings += (("PyTorch, 2 threads", 1, 2, "torch"),) if with_torch else ()
        runs = {label: [] for label, *_ in settings}
        for round_ in range(args.repeats):
            for label, ranks, threads, how in settings[:: -1 if round_ % 2 else 1]:
                time.sleep(0.3)
                runs[label].append(_measure(name, ranks, threads, how, args.block_times, args.data_dir))
        rows = {}
        for label, ranks, *_ in settings:
            row = rows[label] = _median_run(runs[label])
            row["throughput"] = per_step / row["step_s"]
            extra = (f"{1e3 * row['allreduce_in_step_s']:19.3f} {1e3 * row['allreduce_alone_s']:7.3f}"
                     if ranks > 1 else " " * 27)
            spread = f"  ({1e3 * min(row['step_s_runs']):.2f}-{1e3 * max(row['step_s_runs']):.2f} ms)"
            print(f"{name:12} {label:29} {1e3 * row['step_s']:9.2f} {row['throughput']:10,.0f} {unit:>9}{extra}{spread}",
                  flush=True)
        if with_torch:
            theirs = rows["PyTorch, 2 threads"]["throughput"]
            rows["throughput_over_pytorch"] = {label: rows[label]["throughput"] / theirs
                                               for label, _, _, how in settings if how != "torch"}
            print(f"{name:12} throughput / PyTorch's: " + ", ".join(
                f"{label} {ratio:.2f}x" for label, ratio in rows["throughput_over_pytorch"].items()))
        one, two = rows["1 rank, 1 thread"], rows["2 ranks, 1 thread each"]
        predicted = one["step_s"] * math.ceil(batch / 2) / batch + two["allreduce_alone_s"]
        rows["model_check"] = {"predicted_2_rank_step_s": predicted, "measured_2_rank_step_s": two["step_s"]}
        print(f"{name:12} cost model at K = 2 (this machine's all-reduce): {1e3 * predicted:.2f} ms/step predicted, "
              f"{1e3 * two['step_s']:.2f} measured ({two['step_s'] / predicted:.2f}x)")
        measured[name] = rows

    print("\nCost model, strong scaling (global batch fixed): speed-up over 1 rank at K ranks")
    curves = {}
    for network, (alpha, beta) in NETWORKS.items():
        print(f"\n{network} (latency {alpha * 1e6:g} us, {beta / 1e9:g} GB/s)")
        print(f"{'model':12} {'grad MB':>8} " + " ".join(f"{'K=' + str(k):>7}" for k in RANKS) + "  best K")
        for name, batch in models.items():
            one = measured[name]["1 rank, 1 thread"]
            speedups = [one["step_s"] / modelled_step(one["step_s"], batch, k, one["gradient_bytes"], alpha, beta)
                        for k in RANKS]
            best = RANKS[int(np.argmax(speedups))]
            curves.setdefault(network, {})[name] = dict(zip(map(str, RANKS), speedups))
            print(f"{name:12} {one['gradient_bytes'] / 1e6:8.2f} " + " ".join(f"{s:7.2f}" for s in speedups)
                  + f"  {best}")
    path = write_results(args.json, {"measured": measured, "cost_model": {
        "networks": {k: {"latency_s": a, "bandwidth_bytes_per_s": b} for k, (a, b) in NETWORKS.items()},
        "ranks": list(RANKS), "speedup": curves}})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
