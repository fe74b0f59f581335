"""nanoGPT's CPU run on Tiny Shakespeare, handgrad beside a PyTorch mirror of nanoGPT's model.

    python benchmarks/gpt.py [--data-dir ../shared/data] [--steps 2000] [--json benchmarks/results/gpt.json]

The configuration of nanoGPT's README for a CPU: 4 layers, 4 heads, 128 wide, context 64,
batch 12, 2000 steps, AdamW lr 1e-3 (beta2 0.99, weight decay 0.1 on matrices), warmup 100 then
cosine to 1e-4, clipping at 1.0, dropout 0, float32. Both models start from the same weights
and see the same batches (handgrad's seeded windows); the mirror is nanoGPT's architecture
written in PyTorch (tests/test_interop.py), eager mode, with scaled-dot-product attention.

handgrad splits each batch over ``--threads`` threads (default 2, as ``handgrad train --model
gpt``; :mod:`handgrad.threads`), each with one BLAS thread; PyTorch runs with 2 threads.

Printed: validation loss every 250 steps for both (nanoGPT's README reports 1.88 at 2000),
training speed in tokens per second side by side, timed in blocks of 30 steps (each runner
takes a block in a row after a 0.3 s pause, alternating who goes first; the median and spread
over the blocks), generation speed with and without the key/value cache at contexts 64 and 256, and a
sample of generated text.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402

import handgrad as hg  # noqa: E402
from handgrad.train import estimate_loss, lm_batch  # noqa: E402
from machine import machine_line, write_results  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from test_interop import nanogpt_mirror  # noqa: E402  (the mirror the parity tests check against)

CONFIG = dict(n_layer=4, n_head=4, n_embd=128, block_size=64)
BATCH, LR, MIN_LR, WARMUP, DECAY, BETA2, CLIP, EVAL_INTERVAL, EVAL_ITERS = 12, 1e-3, 1e-4, 100, 0.1, 0.99, 1.0, 250, 200
BLOCK, PAUSE = 30, 0.3  # steps per timed block, and the pause before each (see the docstring)


def torch_optimizer(torch, net):
    matrices = [p for p in net.parameters() if p.dim() >= 2]
    others = [p for p in net.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": matrices, "weight_decay": DECAY}, {"params": others, "weight_decay": 0.0}],
                             lr=LR, betas=(0.9, BETA2))


def torch_loss(torch, net, idx, targets):
    with torch.no_grad():
        return float(net(torch.from_numpy(idx), torch.from_numpy(targets))[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("HANDGRAD_DATA"))
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results", "gpt.json"))
    parser.add_argument("--block", type=int, default=BLOCK,
                        help=f"steps per timed block (default {BLOCK}); doubling it must change no ratio")
    parser.add_argument("--threads", type=int, default=2,
                        help="handgrad's batch split over this many threads (handgrad.threads; 1: none), as "
                        "`handgrad train --model gpt` runs it; PyTorch uses 2 threads either way (default: 2)")
    args = parser.parse_args()
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    if args.block < 1:
        parser.error(f"--block must be at least 1, got {args.block}")
    block_steps = args.block
    import torch

    torch.set_num_threads(2)
    print(machine_line(), flush=True)
    (x, t), (x_val, t_val) = hg.data.load_dataset("shakespeare", data_dir=args.data_dir)
    _, _, vocab = hg.data.load_shakespeare(data_dir=args.data_dir)
    model = hg.model.GPT(len(vocab), seed=0, vocab=vocab, **CONFIG)
    net = nanogpt_mirror(torch)(len(vocab), CONFIG["block_size"], CONFIG["n_layer"], CONFIG["n_head"],
                                CONFIG["n_embd"], flash=True)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in hg.interop.to_nanogpt(model).items()}, strict=True)
    ours = hg.optim.AdamW(lr=LR, betas=(0.9, BETA2), weight_decay=DECAY, matrices_only=True)
    theirs = torch_optimizer(torch, net)
    schedule = hg.optim.WarmupCosineLR(LR, min(WARMUP, args.steps), args.steps, MIN_LR)
    rng = np.random.default_rng(0)
    block = CONFIG["block_size"]

    splitter = hg.threads.BatchThreads(model, args.threads) if args.threads > 1 else None

    def ours_step(xb, tb):
        model.train()
        hg.train.train_step(model, ours, xb, tb, grad_clip=CLIP, parallel=splitter, count=False)

    def theirs_step(xb, tb):
        net.train()
        theirs.zero_grad(set_to_none=True)
        _, loss = net(torch.from_numpy(xb), torch.from_numpy(tb))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), CLIP)
        theirs.step()

    # Timed in blocks: each runner takes BLOCK steps in a row (as a user runs one library), after a
    # pause, and the runners alternate which goes first; single steps alternated with a short pause
    # let the other runner's spinning BLAS/OpenMP threads slow whoever ran second.
    curve, blocks = [], {"handgrad": [], "PyTorch": []}
    step, turn = 0, 0
    while True:
        if step % EVAL_INTERVAL == 0 or step == args.steps:
            eval_rng = np.random.default_rng([0, step])
            ours_val = estimate_loss(model, x_val, t_val, block, BATCH, EVAL_ITERS, eval_rng)
            eval_rng = np.random.default_rng([0, step])
            net.eval()
            theirs_val = float(np.mean([torch_loss(torch, net, *lm_batch(x_val, t_val, block, BATCH, eval_rng))
                                        for _ in range(EVAL_ITERS)]))
            curve.append({"step": step, "handgrad_val_loss": ours_val, "torch_val_loss": theirs_val})
            print(f"step {step:5d}: val loss handgrad {ours_val:.4f}, PyTorch {theirs_val:.4f}", flush=True)
        if step == args.steps:
            break
        # The next block ends at the next evaluation at the latest; both runners train on its batches.
        stop = min(step + block_steps, (step // EVAL_INTERVAL + 1) * EVAL_INTERVAL, args.steps)
        batches = [(schedule.lr_at(s), *lm_batch(x, t, block, BATCH, rng)) for s in range(step, stop)]
        for name, step_fn in (("handgrad", ours_step), ("PyTorch", theirs_step))[:: 1 if turn % 2 else -1]:
            time.sleep(PAUSE)
            started = time.perf_counter()
            for lr, xb, tb in batches:
                ours.lr = lr
                for group in theirs.param_groups:
                    group["lr"] = lr
                step_fn(xb, tb)
            blocks[name].append((len(batches) * BATCH * block, time.perf_counter() - started))
        step, turn = stop, turn + 1
    # Blocks of a full BLOCK steps (the ones cut short by an evaluation are as long for both, but
    # shorter than the threads' switch is worth): the median and spread of tokens/s over them.
    rates = {name: [tokens / seconds for tokens, seconds in values if tokens == block_steps * BATCH * block]
                   or [tokens / seconds for tokens, seconds in values] for name, values in blocks.items()}
    speed = {name: float(np.median(values)) for name, values in rates.items()}
    spread = {name: [float(min(values)), float(max(values))] for name, values in rates.items()}
    ratios = [a / b for a, b in zip(rates["handgrad"], rates["PyTorch"])]
    print(f"\ntraining speed, blocks of {block_steps} steps of {BATCH} x {block} tokens ({len(rates['handgrad'])} each), "
          f"median (min-max): handgrad {speed['handgrad']:,.0f} ({spread['handgrad'][0]:,.0f}-{spread['handgrad'][1]:,.0f}) "
          f"tokens/s, PyTorch {speed['PyTorch']:,.0f} ({spread['PyTorch'][0]:,.0f}-{spread['PyTorch'][1]:,.0f}) "
          f"tokens/s, ratio {speed['handgrad'] / speed['PyTorch']:.2f}x (block by block {min(ratios):.2f}x-"
          f"{max(ratios):.2f}x)")

    generation = {}
    for context in (64, 256):
        gpt = hg.model.GPT(len(vocab), block_size=context, n_layer=4, n_head=4, n_embd=128, seed=0, vocab=vocab)
        prompt = x_val[None, :8]
        for use_cache in (True, False):
            started = time.perf_counter()
            gpt.generate(prompt, context - 8, temperature=1.0, top_k=None, seed=0, use_cache=use_cache)
            generation[f"context {context}, cache {'on' if use_cache else 'off'}"] = \
                (context - 8) / (time.perf_counter() - started)
    print("generation, tokens per second (one sequence, from 8 tokens up to a full context): "
          + "; ".join(f"{k}: {v:,.0f}" for k, v in generation.items()))
    sample = model.decode(model.generate(model.encode("ROMEO:")[None], 300, temperature=0.8, top_k=200, seed=0)[0])
    print("\nsample (temperature 0.8, top-k 200, seed 0):\n" + sample)
    print("\n| run | val loss at step " + str(args.steps) + " | tokens/s | ratio |")
    print("|---|---|---|---|")
    print(f"| handgrad | {curve[-1]['handgrad_val_loss']:.4f} | {speed['handgrad']:,.0f} | "
          f"{speed['handgrad'] / speed['PyTorch']:.2f}x |")
    print(f"| PyTorch {torch.__version__} mirror, eager | {curve[-1]['torch_val_loss']:.4f} | {speed['PyTorch']:,.0f} | 1.00x |")
    print(machine_line())
    if splitter is not None:
        splitter.close()
    write_results(args.json, {"config": {**CONFIG, "batch": BATCH, "steps": args.steps, "threads": args.threads},
                              "curve": curve,
                              "method": f"alternating blocks of {block_steps} steps, a {PAUSE} s pause before each",
                              "tokens_per_second": speed, "tokens_per_second_spread": spread, "generation_tokens_per_second": generation, "sample": sample})


if __name__ == "__main__":
    main()
