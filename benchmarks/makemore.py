"""makemore with every gradient by hand, beside a PyTorch mirror of each model: the losses the
series publishes, and the speed.

    python benchmarks/makemore.py [--data-dir ../shared/data] [--models mlp-bn wavenet transformer bigram]
                                  [--steps N] [--seeds 1] [--first-seed 0] [--eval-every 500]
                                  [--json benchmarks/results/makemore.json]

For each model and seed: handgrad's model (``handgrad train --dataset names --model M``'s, the
registry's recipe: ``mlp-bn`` and ``wavenet`` on Zero to Hero's split, SGD 0.1 then 0.01 for the
last quarter of 200k steps; ``transformer`` and ``bigram`` on makemore.py's split, AdamW 5e-4,
weight decay 0.01, betas 0.9/0.99) and a PyTorch mirror loaded with the very same initial
weights train on the very same batches (rows drawn with replacement by one NumPy generator),
float32, 2 threads each. ``--steps`` shortens every run (the schedule's step down stays at 3/4).

Reported per model: the split's loss over every example at the end (dev and test for Zero to
Hero's models, as its notebooks report ``split_loss('val')``; test for makemore's, its "test
loss"), for both; the speed in steps per second, timed in blocks of 500 steps each, alternating
which runner goes first, with a 0.3 s pause before each block (the median and spread over the
blocks); 10 names drawn from handgrad's model and the share of 1,000 draws that are new (in
neither the training nor the test set). ``--eval-every N``: the held-out loss (dev, or test on
makemore.py's split) of both every N steps, between timed blocks, and the best of them with its
step: makemore.py evaluates every 500 steps and keeps the model of the best test loss.

The mirrors: Zero to Hero's models written with torch's functional ops on the same parameters
(Embedding rows, view, ``x @ W + b``, ``batch_norm`` over (N, C, T), tanh); makemore's
Transformer as tests/test_interop.py's nanoGPT mirror with makemore's differences (its own
lm_head, tanh GELU, biases); the bigram as a (V, V) table; the RNN and GRU as ``nn.RNN`` and
``nn.GRU`` between the table and a Linear (tests/mirrors.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402

import handgrad as hg  # noqa: E402
from handgrad.data.words import contexts, load_names, makemore_split, sequences, zero_to_hero_split  # noqa: E402
from handgrad.model.makemore import MAKEMORE_MODELS, generate_words, mark_words  # noqa: E402
from handgrad.registry import build_model, load_task, recipe  # noqa: E402
from machine import machine_line, write_results  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from mirrors import ContextsMirror, SequencesMirror  # noqa: E402  (the mirrors the parity tests check against)

BLOCK, PAUSE = 500, 0.3  # steps per timed block, and the pause before each


def mirror_loss(torch, mirror, x, t):
    logits = mirror.logits(x)
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), torch.from_numpy(t).reshape(-1),
                                             ignore_index=-100)


def split_losses(torch, model, mirror, x, t, batch=1000):
    """The mean loss per predicted character over a whole split, handgrad's (``evaluate``, as
    ``handgrad train`` reports it) and the mirror's, batch by batch in the same way."""
    theirs, counted = 0.0, 0
    mirror.training = False
    with torch.no_grad():
        for start in range(0, len(x), batch):
            xb, tb = x[start:start + batch], t[start:start + batch]
            n = int((tb != -100).sum())
            theirs += float(mirror_loss(torch, mirror, xb, tb)) * n
            counted += n
    mirror.training = True
    return hg.train.evaluate(model, x, t, batch_size=batch)[0], theirs / counted


def run(torch, name: str, seed: int, steps: int | None, data_dir, eval_every: int | None = None) -> dict:
    task = load_task("names", data_dir)
    words = task.vocab
    r = recipe(name, "names", seed=seed, max_steps=steps)
    model, description = build_model(name, task, r.model_options)
    kind = MAKEMORE_MODELS[name][1]
    if kind == "contexts":
        train_w, dev_w, test_w = zero_to_hero_split(words)
        make = lambda part: contexts(part, model.input_shape[0])  # noqa: E731
        mirror = ContextsMirror(torch, model)
    else:
        (train_w, test_w), dev_w = makemore_split(words), None
        make = lambda part: sequences(part, words.block_size)  # noqa: E731
        mirror = SequencesMirror(torch, model)
    x, t = make(train_w)
    ours_opt, schedule = r.make_optimizer(), r.make_schedule()
    params = mirror.parameters()
    if r.optimizer == "sgd":
        theirs_opt = torch.optim.SGD(params, lr=r.lr)
    else:
        theirs_opt = torch.optim.AdamW(params, lr=r.lr, betas=r.betas, weight_decay=r.weight_decay)
    rng = np.random.default_rng(seed)
    print(f"{name}: {description}; {r.optimizer} lr {r.lr:g}, {r.max_steps} steps of {r.batch_size}", flush=True)

    def ours_steps(batches):
        model.train()
        for lr, xb, tb in batches:
            ours_opt.lr = lr
            hg.train.train_step(model, ours_opt, xb, tb, count=False)

    def theirs_steps(batches):
        mirror.training = True
        for lr, xb, tb in batches:
            for group in theirs_opt.param_groups:
                group["lr"] = lr
            theirs_opt.zero_grad(set_to_none=True)
            mirror_loss(torch, mirror, xb, tb).backward()
            theirs_opt.step()

    seconds = {"handgrad": [], "PyTorch": []}
    curve = []  # (step, handgrad's, the mirror's loss on the held-out split), every eval_every steps
    held_out = make(dev_w if dev_w is not None else test_w)
    step, turn = 0, 0
    while step < r.max_steps:
        stop = min(step + BLOCK, r.max_steps)
        batches = []
        for s in range(step, stop):
            rows = rng.integers(0, len(x), r.batch_size)
            batches.append((schedule.lr_at(s) if schedule is not None else r.lr, x[rows], t[rows]))
        for who, fn in (("handgrad", ours_steps), ("PyTorch", theirs_steps))[:: 1 if turn % 2 else -1]:
            time.sleep(PAUSE)
            started = time.perf_counter()
            fn(batches)
            seconds[who].append((stop - step, time.perf_counter() - started))
        step, turn = stop, turn + 1
        if eval_every and step % eval_every == 0:  # between timed blocks: not timed
            curve.append((step, *split_losses(torch, model, mirror, *held_out)))
            print(f"  step {step}: held-out loss {curve[-1][1]:.4f} (PyTorch {curve[-1][2]:.4f})", flush=True)
        elif step % (r.max_steps // 10 or 1) < BLOCK:
            print(f"  step {step}", flush=True)
    rates = {who: [n / s for n, s in values if n == BLOCK] or [n / s for n, s in values]
             for who, values in seconds.items()}
    row = {"model": name, "seed": seed, "steps": r.max_steps, "description": description,
           "steps_per_second": {who: float(np.median(v)) for who, v in rates.items()},
           "steps_per_second_spread": {who: [float(min(v)), float(max(v))] for who, v in rates.items()}}
    row["speed_ratio"] = row["steps_per_second"]["handgrad"] / row["steps_per_second"]["PyTorch"]
    if curve:  # makemore.py evaluates every 500 steps and keeps the model of the best test loss
        split = "dev" if dev_w is not None else "test"
        row[f"{split}_curve"] = [{"step": s, "handgrad": ours, "PyTorch": theirs} for s, ours, theirs in curve]
        row[f"best_{split}_loss"] = {who: min(({"loss": point[who], "step": point["step"]}
                                               for point in row[f"{split}_curve"]), key=lambda best: best["loss"])
                                     for who in ("handgrad", "PyTorch")}
    for split, part in (("dev", dev_w), ("test", test_w)):
        if part is not None:
            ours, theirs = split_losses(torch, model, mirror, *make(part))
            row[f"{split}_loss"] = {"handgrad": ours, "PyTorch": theirs}
    train_ours, train_theirs = split_losses(torch, model, mirror, x, t)
    row["train_loss"] = {"handgrad": train_ours, "PyTorch": train_theirs}
    draws = generate_words(model, words, 1000, seed=seed)
    groups = mark_words(draws, train_w.words, test_w.words if dev_w is None else dev_w.words + test_w.words)
    row["samples"] = draws[:10]
    row["share_new"] = groups.count("new") / len(groups)
    losses = ", ".join(f"{split} {row[f'{split}_loss']['handgrad']:.4f} (PyTorch {row[f'{split}_loss']['PyTorch']:.4f})"
                       for split in ("train", "dev", "test") if f"{split}_loss" in row)
    print(f"  {losses}; {row['steps_per_second']['handgrad']:.0f} vs {row['steps_per_second']['PyTorch']:.0f} "
          f"steps/s ({row['speed_ratio']:.2f}x); new names {row['share_new']:.0%}; {', '.join(draws[:10])}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("HANDGRAD_DATA"))
    parser.add_argument("--models", nargs="+", choices=sorted(MAKEMORE_MODELS), default=["mlp-bn", "wavenet"])
    parser.add_argument("--steps", type=int, help="train every model this many steps (default: its recipe's)")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds --first-seed .. + --seeds - 1 (default 0)")
    parser.add_argument("--eval-every", type=int, help=f"also the held-out loss every this many steps (a "
                        f"multiple of {BLOCK}; makemore.py's: 500), and the best of them")
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "makemore.json"))
    args = parser.parse_args()
    if args.steps is not None and args.steps < BLOCK:
        parser.error(f"--steps must be at least {BLOCK} (one timed block)")
    if args.eval_every is not None and (args.eval_every < BLOCK or args.eval_every % BLOCK):
        parser.error(f"--eval-every must be a positive multiple of {BLOCK} (the timed block), got {args.eval_every}")
    import torch

    torch.set_num_threads(2)
    print(machine_line(), flush=True)
    load_names(args.data_dir, download=False)  # a missing file is said now, in one line
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    rows = [run(torch, name, seed, args.steps, args.data_dir, args.eval_every) for name in args.models for seed in seeds]
    write_results(args.json, {"benchmark": "makemore", "rows": rows, "block_steps": BLOCK, "pause_s": PAUSE,
                              "command": " ".join(["python benchmarks/makemore.py", *sys.argv[1:]])})
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
