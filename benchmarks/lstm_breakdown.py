"""Where the sequential-MNIST LSTM's training step goes, beside PyTorch's.

    python benchmarks/lstm_breakdown.py [--data-dir ../shared/data] [--rounds 7]
                                        [--json benchmarks/results/lstm_breakdown.json]

The model of ``sequences.py``'s first row (LSTM 128 over 28 rows of 28 pixels, the last state,
Affine 10; Adam 1e-3, batch 100, float32, 2 threads). Each round times, in turn (the first
alternating between rounds, a 0.3 s pause before each block):

* handgrad's training step and PyTorch's (``nn.LSTM``), 20 steps on the same batches;
* the step's recurrent matrix products alone, 28 ``h_{t-1} Wh`` forward and 28 ``dA_t Wh^T``
  backward, (100 x 128) by (128 x 512) and (100 x 512) by (512 x 128): NumPy's (OpenBLAS) and
  PyTorch's (MKL), 20 steps' worth.

Reported: the medians over the rounds, the spread, and what is left of handgrad's step besides
those products (the gates' element-wise work, one NumPy call at a time, and the input and output
products).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402

import handgrad as hg  # noqa: E402
from machine import machine_line, ms_per_step_in_turns, write_results  # noqa: E402
from sequences import handgrad_epoch, lstm_classifier, torch_epoch, torch_lstm_classifier  # noqa: E402

STEPS, T, N, H = 20, 28, 100, 128


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("HANDGRAD_DATA"))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results", "lstm_breakdown.json"))
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    import torch

    torch.set_num_threads(2)
    print(machine_line(), flush=True)
    (x, t), _ = hg.data.load_dataset("mnist", data_dir=args.data_dir)
    model = lstm_classifier(H)
    net = torch_lstm_classifier(torch, model)
    ours = hg.optim.Adam(lr=1e-3)
    theirs = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    rng = np.random.default_rng(0)
    order = np.concatenate([rng.choice(len(x), N, replace=False) for _ in range(STEPS)])  # STEPS batches

    def handgrad_steps():
        handgrad_epoch(model, ours, x, t, order, N)

    def torch_steps():
        torch_epoch(torch, net, theirs, x, t, order, N,
                    lambda n, xb, tb: torch.nn.functional.cross_entropy(n(xb), tb))

    def uniform(*shape):
        return rng.uniform(-1 / np.sqrt(H), 1 / np.sqrt(H), shape).astype(np.float32)

    h, Wh = uniform(N, H), uniform(H, 4 * H)
    dA = uniform(N, 4 * H)
    th, tWh, tdA = (torch.from_numpy(a) for a in (h, Wh, dA))

    def numpy_products():
        for _ in range(STEPS * T):
            h @ Wh
            dA @ Wh.T

    def torch_products():
        with torch.no_grad():
            for _ in range(STEPS * T):
                th @ tWh
                tdA @ tWh.T

    runners = {"handgrad step": handgrad_steps, "PyTorch step": torch_steps,
               "NumPy's recurrent products": numpy_products, "PyTorch's recurrent products": torch_products}
    ms = ms_per_step_in_turns(runners, args.rounds, STEPS)
    median = {name: float(np.median(values)) for name, values in ms.items()}
    rest = median["handgrad step"] - median["NumPy's recurrent products"]
    print(f"\nper training step (batch {N}, {T} time steps), median of {args.rounds} rounds:")
    print("| part | ms | range |")
    print("|---|---|---|")
    for name, values in ms.items():
        print(f"| {name} | {median[name]:.2f} | {min(values):.2f}-{max(values):.2f} |")
    print(f"| handgrad's step without its recurrent products | {rest:.2f} | |")
    step_ratio = median["handgrad step"] / median["PyTorch step"]
    products_ratio = median["NumPy's recurrent products"] / median["PyTorch's recurrent products"]
    print(f"\nhandgrad / PyTorch, the step: {step_ratio:.2f}x; the recurrent products alone: {products_ratio:.2f}x")
    print(machine_line())
    write_results(args.json, {"steps_per_block": STEPS, "rounds": args.rounds, "ms_per_step": median,
                              "ms_per_step_runs": ms, "handgrad_step_without_recurrent_products_ms": rest})


if __name__ == "__main__":
    main()
