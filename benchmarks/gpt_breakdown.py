"""Where a GPT training step's time and memory go, by layer type.

    python benchmarks/gpt_breakdown.py [--data-dir ../shared/data] [--steps 30] [--batch 12]
                                       [--json benchmarks/results/gpt_breakdown.json]
    python benchmarks/gpt_breakdown.py --products [--rounds 7] [--json ...]

nanoGPT's CPU configuration (4 layers, 4 heads, 128 wide, context 64, batch 12, float32,
2 threads): every leaf layer's forward and backward are timed, summed by type; what remains of
the step is the model's own code (token + position embeddings summed, the output layer tied to
the token embedding) and AdamW. ``--batch 6`` with ``OMP_NUM_THREADS=1`` is what each of 2 ranks
runs. Memory: the process's peak resident set after the steps, beside
what the parameters, their gradients and AdamW's two moments take.

``--products``: the matrix products of one training step alone, as the layers call them (every
block's query/key/value, attention, output and MLP products, forward and backward, and the
output layer tied to the token embedding), on random arrays of their shapes and layouts: for
the whole batch with BLAS on 2 threads (what one process's step holds), and for half the batch
with BLAS on 1 thread (what each of 2 ranks, or each thread of the batch split, holds), timed in
blocks of 20 steps in turns with PyTorch's whole training step (the nanoGPT mirror with its
fused attention, AdamW, 2 threads; needs PyTorch and threadpoolctl), a 0.3 s pause before each,
``--rounds`` rounds. No arrangement of the element-wise work (LayerNorm, softmax, GELU, AdamW)
takes a step below its products.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402

import handgrad as hg  # noqa: E402
from handgrad.train import lm_batch  # noqa: E402
from machine import Stopwatch, machine_line, ms_per_step_in_turns, write_results  # noqa: E402

BATCH, CONTEXT, WIDTH, HEADS, LAYERS, VOCAB = 12, 64, 128, 4, 4, 65


def step_products(batch: int, rng) -> list:
    """The matrix products of one GPT training step for ``batch`` windows, as callables on random
    arrays laid out as the layers hold them (q, k, v are views into one (N, T, 3C) projection)."""
    m, t, c, heads = batch * CONTEXT, CONTEXT, WIDTH, HEADS
    hd = c // heads

    def random(*shape):
        return rng.standard_normal(shape, dtype=np.float32)

    def affine(d_in, d_out):  # forward, dW, dx (Affine and the attention's projections)
        x, W, dy = random(m, d_in), random(d_in, d_out), random(m, d_out)
        return [lambda: x @ W, lambda: x.T @ dy, lambda: dy @ W.T]

    def heads_of(projection):  # (N, heads, T, hd) views, as MultiHeadAttention._heads
        return projection.reshape(batch, t, 3, heads, hd).transpose(2, 0, 3, 1, 4)

    q, k, v = heads_of(random(batch, t, 3 * c))
    dq, dk, dv = heads_of(random(batch, t, 3 * c))
    A, dA = random(batch, heads, t, t), random(batch, heads, t, t)
    out = random(batch, t, c).reshape(batch, t, heads, hd).transpose(0, 2, 1, 3)
    attention = [lambda: q @ k.swapaxes(-1, -2), lambda: np.matmul(A, v, out=out),  # forward
                 lambda: np.matmul(A.swapaxes(-1, -2), out, out=dv), lambda: out @ v.swapaxes(-1, -2),  # dv, dA
                 lambda: np.matmul(dA.swapaxes(-1, -2), q, out=dk), lambda: np.matmul(dA, k, out=dq)]  # dk, dq
    block = affine(c, 3 * c) + attention + affine(c, c) + affine(c, 4 * c) + affine(4 * c, c)
    wte, xf, dlogits = random(VOCAB, c), random(m, c), random(m, VOCAB)
    head = [lambda: xf @ wte.T, lambda: dlogits.T @ xf, lambda: dlogits @ wte]
    return block * LAYERS + head


def products_floor(rounds: int) -> dict:
    """``--products`` (see the module): ms per step of each setting, medians and ranges."""
    import torch
    from threadpoolctl import threadpool_limits

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
    from test_interop import nanogpt_mirror

    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    whole, half = step_products(BATCH, rng), step_products(BATCH // 2, rng)
    net = nanogpt_mirror(torch)(VOCAB, CONTEXT, LAYERS, HEADS, WIDTH, flash=True)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
    inputs, targets = (torch.from_numpy(rng.integers(0, VOCAB, (BATCH, CONTEXT))) for _ in range(2))

    def torch_step():
        optimizer.zero_grad(set_to_none=True)
        net(inputs, targets)[1].backward()
        optimizer.step()

    def run_all(products):
        for product in products:
            product()

    def half_on_one_thread():
        with threadpool_limits(1, user_api="blas"):
            run_all(half)

    settings = {"products, whole batch, BLAS on 2 threads": lambda: run_all(whole),
                "products, half the batch, BLAS on 1 thread": half_on_one_thread,
                "PyTorch's whole training step, 2 threads": torch_step}
    block = 20

    def block_of(step):
        def run():
            for _ in range(block):
                step()
        return run

    times = ms_per_step_in_turns({name: block_of(step) for name, step in settings.items()}, rounds, block)
    rows = {name: {"ms_per_step": float(np.median(values)), "range_ms": [float(min(values)), float(max(values))]}
            for name, values in times.items()}
    torch_ms = rows["PyTorch's whole training step, 2 threads"]["ms_per_step"]
    print(f"\nper training step (batch {BATCH} x {CONTEXT} tokens), median of {rounds} rounds of {block} steps:")
    print("| setting | ms | range |")
    print("|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['ms_per_step']:.2f} | {row['range_ms'][0]:.2f}-{row['range_ms'][1]:.2f} |")
    print(f"1.2x PyTorch's throughput needs a step of {torch_ms / 1.2:.2f} ms")
    return {"products": rows, "products_count": len(whole), "rounds": rounds, "block_steps": block,
            "step_for_1_2x_pytorch_ms": torch_ms / 1.2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("HANDGRAD_DATA"))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=BATCH, help=f"windows per step (default: {BATCH}, nanoGPT's)")
    parser.add_argument("--products", action="store_true", help="time the step's matrix products alone (see above)")
    parser.add_argument("--rounds", type=int, default=7, help="--products: rounds of blocks (default: 7)")
    parser.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results", "gpt_breakdown.json"))
    args = parser.parse_args()
    if args.rounds < 1 or args.batch < 1:
        parser.error(f"--rounds and --batch must be at least 1, got {args.rounds} and {args.batch}")
    print(machine_line(), flush=True)
    if args.products:
        write_results(args.json, products_floor(args.rounds))
        print(machine_line())
        return
    (x, t), _ = hg.data.load_dataset("shakespeare", data_dir=args.data_dir)
    model = hg.model.GPT(65, 64, 4, 4, 128, seed=0)
    optimizer = hg.optim.AdamW(lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1, matrices_only=True)
    watch = Stopwatch()
    timed, totals = watch.timed, watch.totals

    for _, layer in model.named_layers():
        if not layer.children():  # leaves: their time is not counted twice
            layer.forward = timed(f"{layer.name} forward", layer.forward)
            layer.backward = timed(f"{layer.name} backward", layer.backward)
    model.loss_layer.forward = timed("loss (softmax + cross-entropy) forward", model.loss_layer.forward)
    model.loss_layer.backward = timed("loss backward", model.loss_layer.backward)
    update = timed("AdamW update", optimizer.update)
    rng = np.random.default_rng(0)
    step_seconds = 0.0
    for step in range(args.steps + 2):
        xb, tb = lm_batch(x, t, CONTEXT, args.batch, rng)
        if step == 2:  # the first two steps warm up (allocations, BLAS threads); not counted
            totals.clear()
            step_seconds = 0.0
        started = time.perf_counter()
        model.loss(xb, tb)
        model.backward()
        hg.optim.clip_grad_norm(model.grads, 1.0)
        update(model.params, model.grads)
        step_seconds += time.perf_counter() - started
    per_step = {name: 1000 * seconds / args.steps for name, seconds in totals.items()}
    total_ms = 1000 * step_seconds / args.steps
    per_step["the model's own code (embeddings sum, tied output layer, clipping)"] = total_ms - sum(per_step.values())
    print(f"\none training step: {total_ms:.1f} ms ({args.batch * CONTEXT / total_ms * 1000:,.0f} tokens/s), by part:")
    print("| part | ms per step | share |")
    print("|---|---|---|")
    for name, ms in sorted(per_step.items(), key=lambda item: -item[1]):
        print(f"| {name} | {ms:.2f} | {100 * ms / total_ms:.0f} % |")
    n_params = sum(p.size for p in model.params.values())
    state_mib = 4 * n_params * 4 / 2**20  # parameters, gradients, AdamW's two moments, float32
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nparameters: {n_params:,}; parameters + gradients + AdamW state: {state_mib:.1f} MiB; "
          f"peak RSS of the process (Python, NumPy, the text and its ids, the activations): {peak_mib:.0f} MiB")
    print(machine_line())
    write_results(args.json, {"step_ms": total_ms, "breakdown_ms": per_step, "parameters": n_params,
                              "state_mib": state_mib, "peak_rss_mib": peak_mib, "steps": args.steps,
                              "batch": args.batch})


if __name__ == "__main__":
    main()
