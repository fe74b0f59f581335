"""Where a GPT training step's time and memory go, by layer type.

    python benchmarks/gpt_breakdown.py [--data-dir ../shared/data] [--steps 30]
                                       [--json benchmarks/results/gpt_breakdown.json]

nanoGPT's CPU configuration (4 layers, 4 heads, 128 wide, context 64, batch 12, float32,
2 threads): every leaf layer's forward and backward are timed, summed by type; what remains of
the step is the model's own code (token + position embeddings summed, the output layer tied to
the token embedding) and AdamW. Memory: the process's peak resident set after the steps, beside
what the parameters, their gradients and AdamW's two moments take.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402

import handgrad as hg  # noqa: E402
from handgrad.train import lm_batch  # noqa: E402
from machine import Stopwatch, machine_line, write_results  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("HANDGRAD_DATA"))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results", "gpt_breakdown.json"))
    args = parser.parse_args()
    print(machine_line(), flush=True)
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
        xb, tb = lm_batch(x, t, 64, 12, rng)
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
    print(f"\none training step: {total_ms:.1f} ms ({12 * 64 / total_ms * 1000:,.0f} tokens/s), by part:")
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
                              "state_mib": state_mib, "peak_rss_mib": peak_mib, "steps": args.steps})


if __name__ == "__main__":
    main()
