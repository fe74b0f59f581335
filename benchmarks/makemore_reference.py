"""makemore.py's Transformer trained the way makemore.py trains it, in PyTorch alone: the
reference for the test loss its README quotes ("test logprob of ~1.92").

    python benchmarks/makemore_reference.py [--data-dir ../shared/data] [--seeds 3407 1 2]
                                            [--steps 20000] [--eval-every 1000]
                                            [--json benchmarks/results/makemore_reference.json]

For each seed, as makemore.py does with ``--seed``: ``torch.manual_seed(seed)``; the test set is
the last ``min(1000, 10 %)`` names of ``torch.randperm`` over names.txt (makemore.py's split, drawn
by torch, not handgrad's NumPy-drawn copy of it); then the model is built, so PyTorch's default
initialisation at construction draws what makemore.py's draws (makemore.py's Transformer is
tests/test_interop.py's nanoGPT mirror with its own output matrix, tanh GELU and biases, its
modules made in the same order: the token and position tables, each block's attention and
MLP Linears, the output Linear; LayerNorms draw nothing); AdamW 5e-4, weight decay 0.01, betas
0.9/0.99, eps 1e-8, batches of 32 names drawn with replacement (makemore.py's
``RandomSampler(replacement=True)``; its own sampler's generator, seeded from the global one, not
its exact draws), no clipping, no schedule, 2 threads. Every ``--eval-every`` steps: the mean
loss per predicted character over the whole test split (makemore.py's evaluate averages ten
batches' means, within ~1e-3 of this). Reported: that curve, the best test loss and its step
(makemore.py keeps the model of the best test loss), per seed.

handgrad does not enter the training: only names.txt's reading (strip, drop empty lines, sorted
characters, ids from 1, 0 the start/end token) and the example layout, which
``handgrad train --dataset names`` shares with it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")


from handgrad.data import DataError  # noqa: E402
from handgrad.data.words import Words, load_names, sequences  # noqa: E402
from machine import machine_line, write_results  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_interop import nanogpt_mirror  # noqa: E402  (the mirror the parity tests check against)

N_LAYER, N_HEAD, N_EMBD, BATCH = 4, 4, 64, 32
LR, WEIGHT_DECAY, BETAS, EPS = 5e-4, 0.01, (0.9, 0.99), 1e-8


def test_loss(torch, net, x, y, batch=1000) -> float:
    """The mean loss per predicted character over the whole split."""
    total, counted = 0.0, 0
    net.eval()
    with torch.no_grad():
        for start in range(0, len(x), batch):
            logits, _ = net(x[start:start + batch])
            targets = y[start:start + batch].reshape(-1)
            total += float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets,
                                                             ignore_index=-100, reduction="sum"))
            counted += int((targets != -100).sum())
    net.train()
    return total / counted


def run(torch, words: Words, seed: int, steps: int, eval_every: int) -> dict:
    torch.manual_seed(seed)
    order = torch.randperm(len(words.words)).tolist()
    test_size = min(1000, int(len(words.words) * 0.1))
    pick = lambda indices: Words(tuple(words.words[i] for i in indices), words.chars, words.source)  # noqa: E731
    train_words, test_words = pick(order[:-test_size]), pick(order[-test_size:])
    block_size = max(map(len, words.words)) + 1
    net = nanogpt_mirror(torch)(len(words.chars) + 1, block_size, N_LAYER, N_HEAD, N_EMBD, bias=True, gelu="tanh",
                                tied=False)
    optimizer = torch.optim.AdamW(net.parameters(), lr=LR, betas=BETAS, weight_decay=WEIGHT_DECAY, eps=EPS)
    x, y = (torch.from_numpy(a) for a in sequences(train_words, block_size))
    x_test, y_test = (torch.from_numpy(a) for a in sequences(test_words, block_size))
    sampler = torch.Generator().manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
    curve, started = [], time.perf_counter()
    for step in range(1, steps + 1):
        rows = torch.randint(len(x), (BATCH,), generator=sampler)
        logits, _ = net(x[rows])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[rows].reshape(-1),
                                                 ignore_index=-100)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % eval_every == 0:
            curve.append({"step": step, "test_loss": test_loss(torch, net, x_test, y_test)})
            best = min(curve, key=lambda point: point["test_loss"])
            print(f"  seed {seed} step {step}: test loss {curve[-1]['test_loss']:.4f} "
                  f"(best {best['test_loss']:.4f} at {best['step']:,}); {time.perf_counter() - started:.0f} s",
                  flush=True)
    best = min(curve, key=lambda point: point["test_loss"])
    return {"seed": seed, "steps": steps, "train_names": len(train_words.words), "test_names": len(test_words.words),
            "parameters": int(sum(p.numel() for p in net.parameters())), "test_curve": curve,
            "best_test_loss": best, "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("HANDGRAD_DATA"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[3407, 1, 2],
                        help="makemore.py's --seed values (its default: 3407)")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--eval-every", type=int, default=1_000)
    parser.add_argument("--json", default=str(Path(__file__).resolve().parent / "results" / "makemore_reference.json"))
    args = parser.parse_args()
    if args.steps < 1 or not 1 <= args.eval_every <= args.steps:
        parser.error(f"--steps must be at least 1 and --eval-every in [1, steps], got {args.steps} and {args.eval_every}")
    try:  # the data first: a wrong --data-dir is said in one line before PyTorch loads
        words = load_names(args.data_dir, download=False)
    except DataError as error:
        parser.exit(1, f"{parser.prog}: error: {error}\n")
    try:
        import torch
    except ImportError:
        parser.exit(1, f"{parser.prog}: error: this reference is PyTorch's: pip install torch\n")
    torch.set_num_threads(2)
    print(machine_line(), flush=True)
    rows = []
    for seed in args.seeds:
        rows.append(run(torch, words, seed, args.steps, args.eval_every))
        best = rows[-1]["best_test_loss"]
        print(f"seed {seed}: best test loss {best['test_loss']:.4f} at step {best['step']:,} "
              f"(makemore.py's README: ~1.92)", flush=True)
    path = write_results(args.json, {"benchmark": "makemore.py's Transformer recipe in PyTorch alone",
                                     "rows": rows, "command": " ".join(sys.argv[1:])})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
