"""ConvNet training speed, handgrad against PyTorch CPU, side by side in one run; run by hand.

    python benchmarks/convnet_speed.py [--batches 30] [--repeats 5] [--models simple deep]
                                       [--json benchmarks/results/convnet_speed.json]
                                       [--time-to 0.99 --data-dir ../shared/data]

One step = forward + backward + Adam update on a batch of 100 images, float32, 2 threads
(OMP_NUM_THREADS / torch.set_num_threads; handgrad's batch split over ``--threads``, default 2,
as ``handgrad train`` trains the ConvNets: :mod:`handgrad.threads`), for SimpleConvNet and DeepConvNet (the book's
networks, as ``hg.model`` builds them, dropout in training mode): MNIST's first training images
when ``--data-dir`` is given (or ``HANDGRAD_DATA`` set), else uniform random ones. The PyTorch
networks mirror handgrad's layers one for one, in the same order (Relu after each max pool: see
``hg.model.SimpleConvNet``), from PyTorch's default initial weights. handgrad and PyTorch
alternate, with a 0.3 s pause before each, each repeat timing ``--batches`` steps (DeepConvNet a
third as many); the table gives medians and the spread (min-max) of the per-step time, then where
handgrad's time goes, layer by layer (SimpleConvNet) or by layer type (DeepConvNet), and inside
the convolution.

``--time-to A``: also the seconds of training (evaluation excluded) until SimpleConvNet reaches
test accuracy A on MNIST, checked every 100 steps, batch 100, handgrad and PyTorch from the same
initial weights (handgrad's, copied) and the same batch order, taking turns every 100 steps.
``--recipe readme`` (the default) is README's recipe for 99 %: Adam 1e-3, L2 1e-4 on the
weights (not the biases), the learning rate annealed by a cosine over 15 epochs (stepped after
each epoch), at most 15 epochs; ``--recipe plain`` is Adam 1e-3 alone, at most 8 epochs.

To time an older commit with this script, put its source first on the path:
``git worktree add /tmp/old COMMIT`` then ``PYTHONPATH=/tmp/old/src python benchmarks/convnet_speed.py ...``
(the results record which source was timed).

``--torch-profile``: also PyTorch's profiler on its SimpleConvNet, on MNIST's images and on
random ones (needs ``--data-dir``).

``--gemm-floor``: also the time of the matrix products alone in DeepConvNet's six convolutions
(forward, dW, dx, with the shapes of the path each layer takes), beside PyTorch's whole step
from the same run and this machine's float32 GEMM rate on a 2048 x 2048 product.
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
from machine import Stopwatch, handgrad_source, machine_line, write_results  # noqa: E402

BATCH = 100
MODELS = {"simple": "SimpleConvNet", "deep": "DeepConvNet"}


def build_handgrad(model_name):
    return getattr(hg.model, MODELS[model_name])(seed=0)


def torch_network(torch, model_name):
    """handgrad's network, layer for layer, as torch.nn modules."""
    nn = torch.nn
    if model_name == "simple":
        return nn.Sequential(nn.Conv2d(1, 30, 5), nn.MaxPool2d(2, 2), nn.ReLU(), nn.Flatten(),
                             nn.Linear(30 * 12 * 12, 100), nn.ReLU(), nn.Linear(100, 10))
    layers, channels = [], 1
    for filters, (pad1, pad2) in ((16, (1, 1)), (32, (1, 2)), (64, (1, 1))):
        layers += [nn.Conv2d(channels, filters, 3, padding=pad1), nn.ReLU(),
                   nn.Conv2d(filters, filters, 3, padding=pad2), nn.MaxPool2d(2, 2), nn.ReLU()]
        channels = filters
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(64 * 4 * 4, 50), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(50, 10), nn.Dropout(0.5))


def batch_at(i, n):
    start = (i * BATCH) % n
    return slice(start, start + BATCH)


def handgrad_stepper(model_name, x, t, threads=1):
    model = build_handgrad(model_name)
    optimizer = hg.optim.Adam(lr=1e-3)
    # As `handgrad train --model cnn/deep-cnn` trains: each batch split over `threads` threads.
    splitter = hg.threads.BatchThreads(model, threads) if threads > 1 else None

    def step(i):
        index = batch_at(i, len(x))
        hg.train.train_step(model, optimizer, x[index], t[index], parallel=splitter, count=False)
    return step


def torch_stepper(model_name, x, t):
    import torch

    torch.set_num_threads(2)
    torch.manual_seed(0)
    net = torch_network(torch, model_name)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    inputs, labels = torch.from_numpy(x), torch.from_numpy(t)

    def step(i):
        index = batch_at(i, len(x))
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


def breakdown(model, x, t, batches, by_type=False):
    """Seconds per step spent in each layer's forward and backward (or each layer type's, summed),
    in the optimizer, and inside the convolution (im2col, col2im)."""
    watch = Stopwatch()
    timed, totals = watch.timed, watch.totals
    # (getattr: the script also times older handgrad sources, before the row shifts existed)
    originals = {name: getattr(conv_module, name) for name in ("im2col", "col2im", "shifted_rows", "add_shifted_rows")
                 if hasattr(conv_module, name)}
    for index, layer in enumerate(model.layers):
        label = layer.name if by_type else f"{index} {layer.name}"
        layer.forward = timed(f"{label} forward", layer.forward)
        layer.backward = timed(f"{label} backward", layer.backward)
    labels = {"im2col": "  conv im2col (forward; stride-1 dx)", "col2im": "  conv col2im (inside backward)",
              "shifted_rows": "  conv shifted_rows (forward, row shifts)",
              "add_shifted_rows": "  conv add_shifted_rows (dx, row shifts)"}
    for name, function in originals.items():
        setattr(conv_module, name, timed(labels[name], function))
    optimizer = hg.optim.Adam(lr=1e-3)
    update = timed("optimizer update", optimizer.update)
    loss_layer = model.loss_layer
    loss_layer.forward = timed("loss forward", loss_layer.forward)
    loss_layer.backward = timed("loss backward", loss_layer.backward)
    try:
        for i in range(batches + 1):
            if i == 1:  # the first step warms up (allocations, BLAS threads): not counted
                totals.clear()
            index = batch_at(i, len(x))
            model.loss(x[index], t[index])
            model.backward(input_grad=False)
            update(model.params, model.grads)
    finally:
        for name, function in originals.items():
            setattr(conv_module, name, function)
    return {name: seconds / batches for name, seconds in totals.items()}


def train_in_chunks(step, accuracy, orders, target, check_every=100, end_of_epoch=lambda: None):
    """Run ``step(index)`` over the batches of each epoch's order, then ``end_of_epoch()`` (the
    schedule), checking ``accuracy()`` every ``check_every`` steps (not timed). Yields after
    every check, so that two trainings can take turns on the machine, and stops once the target
    is reached or the epochs run out; the last value yielded is the result:
    {seconds of steps, steps, accuracy, history: [(steps, accuracy) at every check]}."""
    result = {"seconds": 0.0, "steps": 0, "accuracy": 0.0, "history": []}
    for order in orders:
        for start in range(0, len(order), BATCH):
            began = time.perf_counter()
            step(order[start:start + BATCH])
            result["seconds"] += time.perf_counter() - began
            result["steps"] += 1
            if result["steps"] % check_every == 0:
                result["accuracy"] = accuracy()
                result["history"].append((result["steps"], result["accuracy"]))
                yield result
                if result["accuracy"] >= target:
                    return
        end_of_epoch()
    yield result


RECIPES = {"readme": "Adam 1e-3, L2 1e-4 on the weights, cosine annealing over 15 epochs",
           "plain": "Adam 1e-3"}


def time_to_accuracy(data_dir, target, recipe="readme"):
    import torch

    max_epochs, weight_decay = (15, 1e-4) if recipe == "readme" else (8, 0.0)
    (x, t), (x_test, t_test) = hg.data.load_dataset("mnist", data_dir=data_dir, flatten=False, download=False)
    model = hg.model.SimpleConvNet(seed=0, weight_decay=weight_decay)
    optimizer = hg.optim.Adam(lr=1e-3)
    torch.set_num_threads(2)
    net = torch_network(torch, "simple")
    with torch.no_grad():  # handgrad's initial weights; Linear stores Affine's W transposed
        for ours, theirs in zip([model.layers[0], model.layers[4], model.layers[6]], [net[0], net[4], net[6]]):
            W = ours.params["W"]
            theirs.weight.copy_(torch.from_numpy(W.T.copy() if W.ndim == 2 else W))
            theirs.bias.copy_(torch.from_numpy(ours.params["b"]))
    # handgrad's L2 adds weight_decay * W to the gradient of every weight (not the biases), which
    # is what torch.optim.Adam's weight_decay does to the parameters it is given.
    weights = [p for p in net.parameters() if p.ndim >= 2]
    biases = [p for p in net.parameters() if p.ndim < 2]
    torch_optimizer = torch.optim.Adam([{"params": weights, "weight_decay": weight_decay},
                                        {"params": biases, "weight_decay": 0.0}], lr=1e-3)
    if recipe == "readme":
        ours_schedule = hg.optim.CosineAnnealingLR(optimizer, max_epochs)
        theirs_schedule = torch.optim.lr_scheduler.CosineAnnealingLR(torch_optimizer, max_epochs)
        end_of_epoch = {"handgrad": ours_schedule.step, "PyTorch": theirs_schedule.step}
    else:
        end_of_epoch = {"handgrad": lambda: None, "PyTorch": lambda: None}
    orders = [np.random.default_rng(epoch).permutation(len(x)) for epoch in range(max_epochs)]

    def our_step(index):
        model.loss(x[index], t[index])
        model.backward(input_grad=False)
        optimizer.update(model.params, model.grads)

    inputs, labels = torch.from_numpy(x), torch.from_numpy(t)

    def their_step(index):
        index = torch.from_numpy(index)
        torch_optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(inputs[index]), labels[index]).backward()
        torch_optimizer.step()

    def their_accuracy():
        with torch.no_grad():
            scores = [net(torch.from_numpy(x_test[i:i + 1000])).argmax(1).numpy() for i in range(0, len(x_test), 1000)]
        return float((np.concatenate(scores) == t_test).mean())

    # The two trainings take turns, 100 steps each, so that a slower or faster spell of this
    # shared machine falls on both alike.
    runs = {"handgrad": train_in_chunks(our_step, lambda: model.accuracy(x_test, t_test), orders, target,
                                        end_of_epoch=end_of_epoch["handgrad"]),
            "PyTorch": train_in_chunks(their_step, their_accuracy, orders, target,
                                       end_of_epoch=end_of_epoch["PyTorch"])}
    results, running = {}, list(runs)
    while running:
        for name in list(running):
            time.sleep(0.3)  # as in the speed table: the other side's idle threads stop spinning
            try:
                results[name] = next(runs[name])
            except StopIteration:
                running.remove(name)
    return {name: {**result, "ms_per_step": 1000 * result["seconds"] / result["steps"],
                   "reached": result["accuracy"] >= target, "recipe": RECIPES[recipe]}
            for name, result in results.items()}


def gemm_floor(torch_step_ms, repeats=7):
    """The matrix products alone of handgrad's DeepConvNet step: for each convolution, the
    forward, dW and dx products of the path it takes (row shifts: one GEMM each for the whole
    batch; im2col: one per image), on random arrays of their shapes, plus the 2048 x 2048 rate.
    No change to the copies and additions around them can take a step below this."""
    rng = np.random.default_rng(0)

    def median_ms(product, repeats=repeats):
        product()  # warm up
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            product()
            times.append(time.perf_counter() - started)
        return 1000 * float(np.median(times))

    def random(*shape):
        return rng.standard_normal(shape, dtype=np.float32)

    model, n = build_handgrad("deep"), BATCH
    shape, rows, flops, total = (n, 1, 28, 28), [], 0.0, 0.0
    im2col_total = im2col_all_flops = 0.0
    for index, layer in enumerate(model.layers):
        out_shape = layer.forward(np.zeros(shape, np.float32)).shape
        if isinstance(layer, hg.layers.Convolution):
            fn, c, kh, kw = layer.params["W"].shape
            h, w = shape[2:]
            oh, ow = out_shape[2:]
            input_grad = index > 0  # the first layer computes no dx
            # im2col's products, one GEMM per image (what every layer ran before the row shifts)
            fields = c * kh * kw + 1  # with the bias row
            W_col, col, dout = random(fn, fields), random(n, fields, oh * ow), random(n, fn, oh * ow)
            im2col_ms = median_ms(lambda: np.matmul(W_col, col)) + \
                median_ms(lambda: np.matmul(dout, col.transpose(0, 2, 1)).sum(axis=0))
            if input_grad:
                W_flipped, dout_col = random(c, fn * kh * kw), random(n, fn * kh * kw, h * w)
                im2col_ms += median_ms(lambda: np.matmul(W_flipped, dout_col))
            im2col_flops = 2 * n * oh * ow * fn * c * kh * kw * (3 if input_grad else 2)
            if layer._uses_row_shifts():
                m = n * h * ow  # one GEMM column per input row and output column
                W_rows, X_rows, dZ = random(kh * fn, kw * c), random(kw * c, m), random(kh * fn, m)
                times = {"forward": median_ms(lambda: W_rows @ X_rows), "dW": median_ms(lambda: dZ @ X_rows.T),
                         "dx": median_ms(lambda: W_rows.T @ dZ) if input_grad else 0.0}
                layer_flops = 2 * (kh * fn) * (kw * c) * m * (3 if input_grad else 2)
            else:
                times = {"forward": median_ms(lambda: np.matmul(W_col, col)),
                         "dW": median_ms(lambda: np.matmul(dout, col.transpose(0, 2, 1)).sum(axis=0)),
                         "dx": median_ms(lambda: np.matmul(W_flipped, dout_col)) if input_grad else 0.0}
                layer_flops = im2col_flops
            rows.append({"layer": index, "filters": fn, "channels": c, "map": [oh, ow],
                         "path": "row shifts" if layer._uses_row_shifts() else "im2col",
                         **{f"{name}_ms": ms for name, ms in times.items()}, "gflop": layer_flops / 1e9,
                         "im2col_per_image_ms": im2col_ms, "im2col_gflop": im2col_flops / 1e9})
            flops += layer_flops
            total += sum(times.values())
            im2col_total += im2col_ms
            im2col_all_flops += im2col_flops
        shape = out_shape
    square = random(2048, 2048)
    peak = 2 * 2048 ** 3 / median_ms(lambda: square @ square, 5) / 1e6  # GFLOP/s
    return {"layers": rows, "gemm_ms": total, "gflop": flops / 1e9, "gflop_per_s": flops / 1e6 / total,
            "peak_gflop_per_s": peak, "at_peak_ms": flops / 1e6 / peak, "torch_step_ms": torch_step_ms,
            "im2col_per_image_ms": im2col_total, "im2col_gflop_per_s": im2col_all_flops / 1e6 / im2col_total}


def torch_profile(data_dir, steps=30):
    """PyTorch's own profile of a SimpleConvNet forward and backward (no optimizer), per step:
    self CPU time of its busiest operators, on MNIST's first 100 training images and on uniform
    random ones (PyTorch's max pooling is faster on MNIST's many equal values)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(2)
    (x, t), _ = hg.data.load_dataset("mnist", data_dir=data_dir, flatten=False, download=False)
    images = {"MNIST": torch.from_numpy(np.ascontiguousarray(x[:BATCH])),
              "random": torch.from_numpy(np.random.default_rng(0).random((BATCH, 1, 28, 28), dtype=np.float32))}
    labels = torch.from_numpy(t[:BATCH])
    torch.manual_seed(0)
    net = torch_network(torch, "simple")
    profiles = {}
    for name, inputs in images.items():
        def step():
            net.zero_grad()
            torch.nn.functional.cross_entropy(net(inputs), labels).backward()
        for _ in range(10):
            step()
        with profile(activities=[ProfilerActivity.CPU]) as run:
            for _ in range(steps):
                step()
        profiles[name] = {event.key: event.self_cpu_time_total / steps / 1000 for event in run.key_averages()}
    return profiles


def compare(model_name, x, t, batches, repeats, threads=1):
    ours = handgrad_stepper(model_name, x, t, threads)
    theirs, torch_version = torch_stepper(model_name, x, t)
    ours_times, theirs_times = [], []
    for _ in range(repeats):
        # A pause before each runner: idle-spinning OpenMP / OpenBLAS threads of the previous
        # one would otherwise steal this one's cores.
        time.sleep(0.3)
        ours_times.append(time_steps(ours, batches))
        time.sleep(0.3)
        theirs_times.append(time_steps(theirs, batches))
    ratios = [ours / theirs for ours, theirs in zip(ours_times, theirs_times)]
    parts = breakdown(build_handgrad(model_name), x, t, batches, by_type=model_name != "simple")
    return {"model": MODELS[model_name], "batch": BATCH, "steps_per_repeat": batches, "repeats": repeats,
            "torch_version": torch_version, "handgrad_threads": threads,
            "handgrad_ms": 1000 * float(np.median(ours_times)), "torch_ms": 1000 * float(np.median(theirs_times)),
            "handgrad_runs_ms": [1000 * v for v in ours_times], "torch_runs_ms": [1000 * v for v in theirs_times],
            "ratio": float(np.median(ours_times) / np.median(theirs_times)), "ratio_per_repeat": ratios,
            "breakdown_ms": {k: 1000 * v for k, v in parts.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["simple", "deep"])
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "convnet_speed.json"))
    parser.add_argument("--time-to", type=float, help="also time SimpleConvNet to this MNIST test accuracy")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="readme",
                        help="--time-to's training: README's 99 %% recipe (default) or plain Adam")
    parser.add_argument("--gemm-floor", action="store_true",
                        help="also time the GEMMs alone of DeepConvNet's convolutions")
    parser.add_argument("--torch-profile", action="store_true",
                        help="also PyTorch's profile of SimpleConvNet on MNIST's images and on random ones")
    parser.add_argument("--data-dir", default=os.environ.get("HANDGRAD_DATA"))
    parser.add_argument("--threads", type=int, default=2,
                        help="handgrad's batch split over this many threads (1: none), as `handgrad train --model "
                        "cnn/deep-cnn` runs it; PyTorch uses 2 threads either way (default: 2)")
    args = parser.parse_args()
    if args.batches < 1 or args.repeats < 1:
        parser.error(f"--batches and --repeats must be at least 1, got {args.batches} and {args.repeats}")
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    if args.time_to is not None and not 0 < args.time_to <= 1:
        parser.error(f"--time-to is a test accuracy in (0, 1], got {args.time_to}")
    if args.gemm_floor and "deep" not in args.models:
        parser.error("--gemm-floor times DeepConvNet's convolutions: keep 'deep' in --models")
    try:
        if args.time_to or args.torch_profile:  # they need MNIST: say so before the speed table, not after
            hg.data.load_dataset("mnist", data_dir=args.data_dir, flatten=False, download=False)
        run(args)
    except hg.data.DataError as error:
        parser.exit(1, f"{parser.prog}: error: {error}\n")


def run(args) -> None:
    count = BATCH * (args.batches + 1)
    if args.data_dir:  # MNIST's own images: PyTorch's max pooling runs faster on their many ties
        (x, t), _ = hg.data.load_dataset("mnist", data_dir=args.data_dir, flatten=False, download=False)
        x, t, images = np.ascontiguousarray(x[:count]), t[:count], "MNIST training images"
    else:
        rng = np.random.default_rng(0)
        x = rng.random((count, 1, 28, 28), dtype=np.float32)
        t, images = rng.integers(0, 10, len(x)), "uniform random images"
    rows = [compare(name, x, t, args.batches if name == "simple" else max(args.batches // 3, 1), args.repeats,
                    args.threads) for name in args.models]
    for row in rows:
        row["images"] = images
    print(f"batch {BATCH} of {images}, forward + backward + Adam update, float32, 2 threads (handgrad's batch over "
          f"{args.threads}); ms per step, "
          f"median of {args.repeats} repeats (spread min-max)")
    print(f"| network | handgrad {hg.__version__} | PyTorch {rows[0]['torch_version']} | handgrad / PyTorch time "
          "(ratio of medians; repeat by repeat) |")
    print("|---|---|---|---|")
    for row in rows:
        ours, theirs = row["handgrad_runs_ms"], row["torch_runs_ms"]
        print(f"| {row['model']} | {row['handgrad_ms']:.2f} ({min(ours):.2f}-{max(ours):.2f}) | "
              f"{row['torch_ms']:.2f} ({min(theirs):.2f}-{max(theirs):.2f}) | {row['ratio']:.2f}x "
              f"({min(row['ratio_per_repeat']):.2f}x-{max(row['ratio_per_repeat']):.2f}x) |")
    for row in rows:
        print(f"\nwhere handgrad's time goes in a {row['model']} step (ms; total "
              f"{sum(v for k, v in row['breakdown_ms'].items() if not k.startswith(' ')):.2f}):")
        for name, ms in sorted(row["breakdown_ms"].items()):
            print(f"  {name:<34} {ms:6.2f}")
    results = {"rows": rows, "handgrad_source": handgrad_source()}
    if results["handgrad_source"]["path"] != str(Path(__file__).resolve().parent.parent / "src" / "handgrad"):
        print(f"handgrad timed from {results['handgrad_source']['path']} "
              f"(commit {results['handgrad_source']['commit'][:12]})")
    deep = [row for row in rows if row["model"] == "DeepConvNet"]
    if args.gemm_floor and deep:
        floor = results["gemm_floor"] = gemm_floor(deep[0]["torch_ms"])
        print("\nDeepConvNet's convolutions, their matrix products alone, as handgrad runs them (ms):")
        print("| layer | C -> FN | map | path | forward | dW | dx | GFLOP | im2col, one GEMM per image: all three |\n"
              "|---|---|---|---|---|---|---|---|---|")
        for layer in floor["layers"]:
            print(f"| {layer['layer']} | {layer['channels']} -> {layer['filters']} | {layer['map'][0]}x{layer['map'][1]} "
                  f"| {layer['path']} | {layer['forward_ms']:.2f} | {layer['dW_ms']:.2f} | {layer['dx_ms']:.2f} "
                  f"| {layer['gflop']:.2f} | {layer['im2col_per_image_ms']:.2f} |")
        print(f"GEMMs alone: {floor['gemm_ms']:.1f} ms for {floor['gflop']:.2f} GFLOP ({floor['gflop_per_s']:.0f} GFLOP/s); "
              f"PyTorch's whole step in this run: {floor['torch_step_ms']:.1f} ms "
              f"({floor['gemm_ms'] / floor['torch_step_ms']:.2f}x it); at this machine's 2048 x 2048 rate "
              f"({floor['peak_gflop_per_s']:.0f} GFLOP/s) the same products would take {floor['at_peak_ms']:.1f} ms; "
              f"im2col's, one GEMM per image, take {floor['im2col_per_image_ms']:.1f} ms "
              f"({floor['im2col_gflop_per_s']:.0f} GFLOP/s)")
    if args.torch_profile:
        profiles = results["torch_profile_ms"] = torch_profile(args.data_dir)
        busiest = sorted(profiles["MNIST"], key=lambda op: -profiles["MNIST"][op])[:8]
        print("\nPyTorch's SimpleConvNet forward + backward, self CPU ms per step of its busiest operators "
              "(MNIST images / random images):")
        for op in busiest:
            print(f"  {op:<44} {profiles['MNIST'][op]:6.2f} / {profiles['random'].get(op, 0.0):6.2f}")
    if args.time_to:
        results["time_to_accuracy"] = time_to_accuracy(args.data_dir, args.time_to, args.recipe)
        print(f"\nSimpleConvNet to {args.time_to:.1%} MNIST test accuracy (checked every 100 steps; "
              f"{RECIPES[args.recipe]}, batch 100, same initial weights and batch order, taking turns every 100 steps):")
        for name, row in results["time_to_accuracy"].items():
            print(f"  {name:<9} {row['seconds']:6.1f} s of training, {row['steps']} steps "
                  f"({row['ms_per_step']:.2f} ms each), accuracy {row['accuracy']:.4f}"
                  f"{'' if row['reached'] else ' (target not reached)'}")
        print("  test accuracy at every 600th step (an epoch), handgrad / PyTorch:")
        histories = [dict(row["history"]) for row in results["time_to_accuracy"].values()]
        for steps in range(600, max(max(h) for h in histories) + 1, 600):
            print(f"    {steps:5d}: " + " / ".join(f"{h[steps]:.4f}" if steps in h else "-" for h in histories))
    print(machine_line())
    write_results(args.json, results)


if __name__ == "__main__":
    main()
