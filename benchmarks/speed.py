"""Training speed of handgrad against PyTorch CPU eager, scikit-learn and book-style NumPy.

    python benchmarks/speed.py [--repeats 5] [--json benchmarks/results/speed.json] [--skip-mnist]

Everything runs here, side by side, in one process, float32, 2 threads (OMP_NUM_THREADS=2 and
torch.set_num_threads(2)), on the same synthetic MNIST-shaped data (uniform pixels, random
labels): a full training step is forward, backward and a plain SGD update.

* handgrad: `handgrad.fit` for one epoch over the samples (its public API, progress off).
* PyTorch: nn.Sequential + CrossEntropyLoss + optim.SGD, the usual eager loop over a
  permutation, batches gathered by index.
* scikit-learn: MLPClassifier(solver="sgd", batch_size=B, max_iter=1), the same widths.
* book-style: the book's NumPy layers (one-hot labels, softmax then log(y + 1e-7), float64,
  dx computed for every layer, a fresh array for each operation).
* fused NumPy floor: the same step written as one NumPy loop with no layers or checks: the
  fastest NumPy itself allows here, so the gap between it and handgrad is handgrad's overhead.
* SimpleConvNet row: handgrad's fit against the PyTorch loop, both with SGD.

The implementations alternate within each repeat, with a 0.3 s pause before each (so that no
runner's idle-spinning worker threads slow the next one down); the table gives the median samples per second
and the spread (min-max), and the ratio of medians. Then: this machine's float32 GEMM peak
(a 2048 x 2048 matmul) and the GFLOP/s of the 784-1024-10 step; the peak RSS of one 784-1024-10
epoch over 60,000 samples, measured in a fresh process, beside an estimate; and, on real MNIST
(when found), the time to 97 % test accuracy for 784-100-10 with the same Adam and the same
initial weights in handgrad and PyTorch.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
os.environ.setdefault("MKL_NUM_THREADS", "2")

import numpy as np  # noqa: E402

import handgrad as hg  # noqa: E402
from machine import machine_line, write_results  # noqa: E402

CONFIGS = [  # (name, hidden, batch, samples per timing, target ratio handgrad / PyTorch)
    ("784-50-10", 50, 100, 20_000, 2.0),
    ("784-100-10", 100, 100, 20_000, 2.0),
    ("784-256-10", 256, 128, 12_800, 1.3),
    ("784-1024-10", 1024, 256, 7_680, 1.0),
]


PAUSE = 0.3  # seconds between runners


def synthetic(samples, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((samples, 784), dtype=np.float32), rng.integers(0, 10, samples)


# --- the implementations ----------------------------------------------------------------------


def handgrad_epoch(hidden, batch, x, t):
    model = hg.mlp(784, [hidden], 10, seed=0)
    optimizer = hg.optim.SGD(lr=0.01)

    def run():
        hg.fit(model, optimizer, (x, t), epochs=1, batch_size=batch, seed=0, progress=False)
    return run


def torch_epoch(hidden, batch, x, t):
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(784, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10))
    loss_fn = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    inputs, labels = torch.from_numpy(x), torch.from_numpy(t)

    def run():
        order = torch.randperm(len(inputs))
        for start in range(0, len(inputs), batch):
            index = order[start:start + batch]
            optimizer.zero_grad()
            loss_fn(net(inputs[index]), labels[index]).backward()
            optimizer.step()
    return run


def sklearn_epoch(hidden, batch, x, t):
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    def run():
        clf = MLPClassifier(hidden_layer_sizes=(hidden,), solver="sgd", batch_size=batch, max_iter=1,
                            learning_rate_init=0.01, momentum=0.0, alpha=0.0, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(x, t)
    return run


class BookAffine:
    def __init__(self, W, b):
        self.W, self.b = W, b

    def forward(self, x):
        self.x = x
        return np.dot(x, self.W) + self.b

    def backward(self, dout):
        self.dW = np.dot(self.x.T, dout)
        self.db = np.sum(dout, axis=0)
        return np.dot(dout, self.W.T)


class BookRelu:
    def forward(self, x):
        self.mask = x <= 0
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout):
        dout = dout.copy()
        dout[self.mask] = 0
        return dout


def book_softmax(x):
    x = x - x.max(axis=1, keepdims=True)
    return np.exp(x) / np.sum(np.exp(x), axis=1, keepdims=True)


def book_epoch(hidden, batch, x, t):
    rng = np.random.default_rng(0)
    x64 = x.astype(np.float64)
    one_hot = np.eye(10)[t]
    layers = [BookAffine(0.01 * rng.standard_normal((784, hidden)), np.zeros(hidden)), BookRelu(),
              BookAffine(0.01 * rng.standard_normal((hidden, 10)), np.zeros(10))]

    def run():
        order = rng.permutation(len(x64))
        for start in range(0, len(x64), batch):
            index = order[start:start + batch]
            xb, tb = x64[index], one_hot[index]
            out = xb
            for layer in layers:
                out = layer.forward(out)
            y = book_softmax(out)
            -np.sum(tb * np.log(y + 1e-7)) / len(xb)  # the loss, as the book computes it
            dout = (y - tb) / len(xb)
            for layer in reversed(layers):
                dout = layer.backward(dout)
            for layer in (layers[0], layers[2]):
                layer.W -= 0.01 * layer.dW
                layer.b -= 0.01 * layer.db
    return run


def floor_epoch(hidden, batch, x, t):
    """The same step hand-fused into one NumPy loop, no layers, no checks, float32: what NumPy
    itself allows, the floor any NumPy layer library sits on."""
    rng = np.random.default_rng(0)
    W1 = (0.05 * rng.standard_normal((784, hidden))).astype(np.float32)
    W2 = (0.1 * rng.standard_normal((hidden, 10))).astype(np.float32)
    b1, b2 = np.zeros(hidden, np.float32), np.zeros(10, np.float32)

    def run():
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch):
            index = order[start:start + batch]
            xb, tb = x[index], t[index]
            a = xb @ W1
            a += b1
            mask = a > 0
            h = a * mask
            scores = h @ W2
            scores += b2
            scores -= scores.max(axis=1, keepdims=True)
            p = np.exp(scores)
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(len(tb)), tb] -= 1
            p /= len(tb)
            dW2, db2 = h.T @ p, p.sum(axis=0)
            dh = p @ W2.T
            dh *= mask
            dW1, db1 = xb.T @ dh, dh.sum(axis=0)
            W1[...] -= 0.01 * dW1
            b1[...] -= 0.01 * db1
            W2[...] -= 0.01 * dW2
            b2[...] -= 0.01 * db2
    return run


IMPLEMENTATIONS = {"handgrad": handgrad_epoch, "PyTorch": torch_epoch, "scikit-learn": sklearn_epoch,
                   "book-style NumPy": book_epoch, "fused NumPy floor": floor_epoch}


# --- measurements -------------------------------------------------------------------------------


def alternate(runners: dict, repeats: int, samples: int) -> dict:
    """Samples per second of each runner (one epoch over `samples`), the runners taking turns."""
    for run in runners.values():  # warm up: first-call costs, BLAS thread start
        run()
    times = {impl: [] for impl in runners}
    for _ in range(repeats):
        for impl, run in runners.items():
            # A pause between runners: OpenMP and OpenBLAS worker threads keep spinning for a
            # moment after their last call and would steal the next runner's cores.
            time.sleep(PAUSE)
            started = time.perf_counter()
            run()
            times[impl].append(time.perf_counter() - started)
    return {impl: [samples / s for s in seconds] for impl, seconds in times.items()}


def measure(config, repeats, available):
    name, hidden, batch, samples, _ = config
    x, t = synthetic(samples)
    return alternate({impl: IMPLEMENTATIONS[impl](hidden, batch, x, t) for impl in available}, repeats, samples)


def gemm_peak(size=2048, repeats=5):
    a = np.random.default_rng(0).random((size, size), dtype=np.float32)
    b = np.random.default_rng(1).random((size, size), dtype=np.float32)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _timed(fn):
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def step_flops(hidden, batch):
    """Multiply-adds x 2 of one 784-H-10 step: forward, dW and db of both layers, dx of the
    second only (the first layer's input gradient is not computed)."""
    return 2 * batch * (784 * hidden + hidden * 10) * 2 + 2 * batch * hidden * 10


# Peak RSS is read from /proc/self/status (VmHWM), which starts afresh in the new process;
# getrusage's ru_maxrss would carry over the parent's peak across fork and exec.
MEMORY_SCRIPT = """
import sys, numpy as np
sys.path.insert(0, {src!r})
import handgrad as hg
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
rng = np.random.default_rng(0)
x = rng.random((60000, 784), dtype=np.float32); t = rng.integers(0, 10, 60000)
model = hg.mlp(784, [1024], 10, seed=0)
before = peak()
hg.fit(model, hg.optim.Adam(lr=1e-3), (x, t), epochs=1, batch_size=256, seed=0, progress=False)
print(before, peak())
"""


def peak_memory():
    """Peak RSS (bytes) of a fresh process: after importing and making the data, and after one
    epoch of 784-1024-10 with Adam over 60,000 samples."""
    src = str(Path(hg.__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT.format(src=src)], capture_output=True, text=True,
                         check=True)
    before, after = (int(v) for v in out.stdout.split())
    data = 60000 * 784 * 4 + 60000 * 8
    params = (784 * 1024 + 1024 + 1024 * 10 + 10) * 4
    batch_activations = 256 * (784 + 1024 + 1024 + 10 + 10) * 4
    estimate = {"data": data, "params_grads_adam_state": 4 * params, "one_batch_activations": batch_activations}
    return before, after, estimate


def time_to_accuracy(data_dir, target=0.97, check_every=100, max_epochs=5):
    """Seconds of training (evaluation time excluded) until the test accuracy reaches `target`,
    784-100-10, Adam 1e-3, batch 100, the same initial weights and batch order in both."""
    import torch

    try:
        (x, t), (x_test, t_test) = hg.data.load_dataset("mnist", data_dir=data_dir, download=False)
    except Exception as error:  # noqa: BLE001
        return {"skipped": str(error)}
    model = hg.mlp(784, [100], 10, seed=0)
    net = torch.nn.Sequential(torch.nn.Linear(784, 100), torch.nn.ReLU(), torch.nn.Linear(100, 10))
    with torch.no_grad():
        net[0].weight.copy_(torch.from_numpy(model.layers[0].W.T.copy()))
        net[0].bias.copy_(torch.from_numpy(model.layers[0].b))
        net[2].weight.copy_(torch.from_numpy(model.layers[2].W.T.copy()))
        net[2].bias.copy_(torch.from_numpy(model.layers[2].b))
    orders = [np.random.default_rng(epoch).permutation(len(x)) for epoch in range(max_epochs)]
    result = {}

    optimizer = hg.optim.Adam(lr=1e-3)
    elapsed, steps = 0.0, 0
    for order in orders:
        for start in range(0, len(x), 100):
            index = order[start:start + 100]
            began = time.perf_counter()
            model.loss(x[index], t[index])
            model.backward(input_grad=False)
            optimizer.update(model.params, model.grads)
            elapsed += time.perf_counter() - began
            steps += 1
            if steps % check_every == 0 and model.accuracy(x_test, t_test) >= target:
                break
        else:
            continue
        break
    result["handgrad"] = {"seconds": elapsed, "steps": steps}

    torch_opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    inputs, labels, test_inputs = torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(x_test)
    elapsed, steps = 0.0, 0
    for order in orders:
        order = torch.from_numpy(order)
        for start in range(0, len(x), 100):
            index = order[start:start + 100]
            began = time.perf_counter()
            torch_opt.zero_grad()
            torch.nn.functional.cross_entropy(net(inputs[index]), labels[index]).backward()
            torch_opt.step()
            elapsed += time.perf_counter() - began
            steps += 1
            if steps % check_every == 0:
                with torch.no_grad():
                    if (net(test_inputs).argmax(1).numpy() == t_test).mean() >= target:
                        break
        else:
            continue
        break
    result["PyTorch"] = {"seconds": elapsed, "steps": steps}
    return result


def convnet_row(repeats):
    """SimpleConvNet, batch 100, SGD: handgrad's fit against the PyTorch loop, alternating."""
    import torch

    rng = np.random.default_rng(0)
    x = rng.random((2000, 1, 28, 28), dtype=np.float32)
    t = rng.integers(0, 10, len(x))
    model, optimizer = hg.model.SimpleConvNet(seed=0), hg.optim.SGD(lr=0.01)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 30, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2, 2), torch.nn.Flatten(),
                              torch.nn.Linear(30 * 12 * 12, 100), torch.nn.ReLU(), torch.nn.Linear(100, 10))
    torch_opt = torch.optim.SGD(net.parameters(), lr=0.01)
    inputs, labels = torch.from_numpy(x), torch.from_numpy(t)

    def ours():
        hg.fit(model, optimizer, (x, t), epochs=1, batch_size=100, seed=0, progress=False)

    def theirs():
        order = torch.randperm(len(inputs))
        for start in range(0, len(inputs), 100):
            index = order[start:start + 100]
            torch_opt.zero_grad()
            torch.nn.functional.cross_entropy(net(inputs[index]), labels[index]).backward()
            torch_opt.step()

    return alternate({"handgrad": ours, "PyTorch": theirs}, repeats, len(x))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data-dir", default=os.environ.get("HANDGRAD_DATA"))
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "speed.json"))
    parser.add_argument("--skip-mnist", action="store_true", help="skip the time-to-97 %% run on real MNIST")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(2)
    available = ["handgrad", "PyTorch", "book-style NumPy", "fused NumPy floor"]
    try:
        import sklearn  # noqa: F401
        available.insert(2, "scikit-learn")
    except ImportError:
        print("scikit-learn not installed: its column is skipped")

    results = {"rows": []}
    print(machine_line())
    print(f"samples per second (median of {args.repeats}, spread min-max), float32, 2 threads")
    header = "| net, batch | " + " | ".join(available) + " | handgrad / PyTorch | target |"
    print(header)
    print("|" + "---|" * (len(available) + 3))
    peak = gemm_peak()
    for config in CONFIGS:
        rates = measure(config, args.repeats, available)
        med = {impl: float(np.median(r)) for impl, r in rates.items()}
        ratio = med["handgrad"] / med["PyTorch"]
        cells = " | ".join(f"{med[i]:,.0f} ({min(rates[i]):,.0f}-{max(rates[i]):,.0f})" for i in available)
        print(f"| {config[0]}, {config[2]} | {cells} | {ratio:.2f} | >= {config[4]} |", flush=True)
        if "scikit-learn" in med:
            print(f"|   vs scikit-learn: {med['handgrad'] / med['scikit-learn']:.2f}x (target >= 2); "
                  f"vs the fused floor: {med['handgrad'] / med['fused NumPy floor']:.2f}x |", flush=True)
        row = {"net": config[0], "batch": config[2], "samples_per_second": rates, "median": med, "ratio": ratio,
               "target": config[4]}
        if config[1] == 1024:
            steps_per_second = med["handgrad"] / config[2]
            row["gflops"] = step_flops(config[1], config[2]) * steps_per_second / 1e9
        results["rows"].append(row)
    conv = convnet_row(args.repeats)
    med = {impl: float(np.median(r)) for impl, r in conv.items()}
    blanks = " | " * (len(available) - 2)
    print(f"| SimpleConvNet, 100 | {med['handgrad']:,.0f} ({min(conv['handgrad']):,.0f}-{max(conv['handgrad']):,.0f})"
          f" | {med['PyTorch']:,.0f} ({min(conv['PyTorch']):,.0f}-{max(conv['PyTorch']):,.0f}){blanks}"
          f"| {med['handgrad'] / med['PyTorch']:.2f} | >= 0.5 |")
    results["rows"].append({"net": "SimpleConvNet", "batch": 100, "samples_per_second": conv, "median": med,
                            "ratio": med["handgrad"] / med["PyTorch"], "target": 0.5})

    big = next(r for r in results["rows"] if r["net"] == "784-1024-10")
    print(f"\nfloat32 GEMM peak (2048 x 2048 matmul): {peak:.1f} GFLOP/s; handgrad 784-1024-10 step: "
          f"{big['gflops']:.1f} GFLOP/s = {100 * big['gflops'] / peak:.0f}% of peak (target >= 70%)")
    results["gemm_peak_gflops"] = peak

    before, after, estimate = peak_memory()
    total = sum(estimate.values())
    print(f"peak RSS, 784-1024-10 Adam epoch over 60,000 samples: {after / 2**20:.0f} MiB, of which training "
          f"added {(after - before) / 2**20:.0f} MiB (Python, NumPy, data and model before training: "
          f"{before / 2**20:.0f} MiB); estimate of what must be held: "
          + ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in estimate.items()) + f" = {total / 2**20:.0f} MiB")
    results["memory"] = {"peak_rss": after, "rss_before_training": before, "estimate": estimate}

    if not args.skip_mnist:
        reach = time_to_accuracy(args.data_dir)
        results["time_to_97"] = reach
        if "skipped" in reach:
            print(f"time to 97%: skipped ({reach['skipped']})")
        else:
            print("time to 97% test accuracy, MNIST 784-100-10, Adam 1e-3, batch 100, same initial weights: "
                  + "; ".join(f"{k} {v['seconds']:.2f} s ({v['steps']} steps)" for k, v in reach.items()))
    mlp_rows = [row for row in results["rows"] if row["net"] != "SimpleConvNet"]
    for other in ("PyTorch", "scikit-learn", "book-style NumPy", "fused NumPy floor"):
        if all(other in row["median"] for row in mlp_rows):
            ratios = [row["median"]["handgrad"] / row["median"][other] for row in mlp_rows]
            print(f"MLP rows, handgrad / {other} (samples per second): {min(ratios):.2f}x-{max(ratios):.2f}x")
            results.setdefault("mlp_ratio_ranges", {})[other] = [min(ratios), max(ratios)]
    write_results(args.json, results)


if __name__ == "__main__":
    main()
