"""SimpleConvNet speed, handgrad against PyTorch CPU, side by side in one run; run by hand.

    python benchmarks/convnet_speed.py [--batches 30] [--repeats 5] [--json benchmarks/results/convnet_speed.json]

One step = forward + backward + Adam update on a batch of 100 MNIST-shaped images, float32,
2 threads (set OMP_NUM_THREADS / torch.set_num_threads). handgrad and PyTorch alternate, with
a 0.3 s pause before each, each repeat timing `--batches` steps; the table gives medians (and the spread) of the per-step time,
then where handgrad's time goes, layer by layer and inside the convolution.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402

import handgrad as hg  # noqa: E402
from handgrad.layers import conv as conv_module  # noqa: E402
from machine import machine_line, write_results  # noqa: E402

BATCH = 100


def handgrad_stepper(x, t):
    model = hg.model.SimpleConvNet(seed=0)
    optimizer = hg.optim.Adam(lr=1e-3)

    def step(i):
        index = slice((i * BATCH) % len(x), (i * BATCH) % len(x) + BATCH)
        model.loss(x[index], t[index])
        model.backward(input_grad=False)
        optimizer.update(model.params, model.grads)
    return step, model


def torch_stepper(x, t):
    import torch

    torch.set_num_threads(2)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 30, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2, 2), torch.nn.Flatten(),
                              torch.nn.Linear(30 * 12 * 12, 100), torch.nn.ReLU(), torch.nn.Linear(100, 10))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    inputs, labels = torch.from_numpy(x), torch.from_numpy(t)

    def step(i):
        index = slice((i * BATCH) % len(x), (i * BATCH) % len(x) + BATCH)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(inputs[index]), labels[index]).backward()
        optimizer.step()
    return step, torch.__version__


def time_steps(step, batches):
    step(0)  # warm up
    started = time.perf_counter()
    for i in range(1, batches + 1):
        step(i)
    return (time.perf_counter() - started) / batches


def breakdown(model, x, t, batches):
    """Seconds per step spent in each layer's forward and backward, and inside the convolution."""
    totals: dict[str, float] = {}

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            result = fn(*args, **kwargs)
            totals[name] = totals.get(name, 0.0) + time.perf_counter() - started
            return result
        return wrapper

    originals = {"im2col": conv_module.im2col, "col2im": conv_module.col2im}
    for index, layer in enumerate(model.layers):
        layer.forward = timed(f"{index} {layer.name} forward", layer.forward)
        layer.backward = timed(f"{index} {layer.name} backward", layer.backward)
    conv_module.im2col = timed("  conv im2col (inside forward)", originals["im2col"])
    conv_module.col2im = timed("  conv col2im (inside backward)", originals["col2im"])
    optimizer = hg.optim.Adam(lr=1e-3)
    update = timed("optimizer update", optimizer.update)
    loss_forward = timed("loss forward", model.loss_layer.forward)
    loss_backward = timed("loss backward", model.loss_layer.backward)
    model.loss_layer.forward, model.loss_layer.backward = loss_forward, loss_backward
    try:
        for i in range(batches):
            index = slice(i * BATCH, (i + 1) * BATCH)
            model.loss(x[index], t[index])
            model.backward(input_grad=False)
            update(model.params, model.grads)
    finally:
        conv_module.im2col, conv_module.col2im = originals["im2col"], originals["col2im"]
    return {name: seconds / batches for name, seconds in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "convnet_speed.json"))
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.random((BATCH * (args.batches + 1), 1, 28, 28), dtype=np.float32)
    t = rng.integers(0, 10, len(x))
    ours, model = handgrad_stepper(x, t)
    theirs, torch_version = torch_stepper(x, t)
    ours_times, theirs_times = [], []
    for _ in range(args.repeats):
        # A pause before each runner: idle-spinning OpenMP / OpenBLAS threads of the previous
        # one would otherwise steal this one's cores.
        time.sleep(0.3)
        ours_times.append(time_steps(ours, args.batches))
        time.sleep(0.3)
        theirs_times.append(time_steps(theirs, args.batches))
    ours_ms, theirs_ms = 1000 * np.median(ours_times), 1000 * np.median(theirs_times)
    print(f"SimpleConvNet, batch {BATCH}, forward + backward + Adam update, float32, 2 threads")
    print("| implementation | ms per step (median) | spread (min-max) |")
    print("|---|---|---|")
    print(f"| handgrad {hg.__version__} | {ours_ms:.2f} | {1000 * min(ours_times):.2f}-{1000 * max(ours_times):.2f} |")
    print(f"| PyTorch {torch_version} | {theirs_ms:.2f} | {1000 * min(theirs_times):.2f}-{1000 * max(theirs_times):.2f} |")
    ratios = [ours / theirs for ours, theirs in zip(ours_times, theirs_times)]
    print(f"ratio handgrad / PyTorch time: {ours_ms / theirs_ms:.2f}x (ratio of medians; repeat by repeat "
          f"{min(ratios):.2f}x-{max(ratios):.2f}x)")
    parts = breakdown(hg.model.SimpleConvNet(seed=0), x, t, args.batches)
    print("\nwhere handgrad's time goes (ms per step):")
    for name, seconds in sorted(parts.items(), key=lambda item: item[0]):
        print(f"  {name:<34} {1000 * seconds:6.2f}")
    print(machine_line())
    write_results(args.json, {"handgrad_ms": ours_ms, "torch_ms": theirs_ms, "ratio": ours_ms / theirs_ms,
                              "ratio_per_repeat": ratios, "handgrad_runs_ms": [1000 * v for v in ours_times],
                              "torch_runs_ms": [1000 * v for v in theirs_times],
                              "breakdown_ms": {k: 1000 * v for k, v in parts.items()}})


if __name__ == "__main__":
    main()
