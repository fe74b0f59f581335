"""Make the pictures and the trace shown in README; run by hand.

    python benchmarks/make_figures.py        # writes docs/img/*.png and docs/walkthrough_trace.txt

1. docs/img/digits_curves.png: `handgrad train`'s default run (digits, 64-100-10, Adam, 30 epochs).
2. docs/img/init_activations.png: the book's chapter-6 experiment, hidden-layer activations of a
   5-layer sigmoid MLP on 1000 random inputs for three initialisations, side by side.
3. docs/walkthrough_trace.txt: `handgrad.inspect.trace` of the tutorial's network on its example
   and on the unsaturated input of the walkthrough.
4. docs/img/gpt_loss.png and docs/img/gpt_attention.png (with --gpt; needs Tiny Shakespeare, a
   few minutes): nanoGPT's CPU run (4 layers, 4 heads, 128 wide, context 64, batch 12, 2000
   steps, the `handgrad train --dataset shakespeare --model gpt` defaults), its loss by step, and
   every head's attention on a line of the play.
"""

import argparse
import os

from pathlib import Path

import numpy as np

import handgrad as hg
from handgrad import plot
from handgrad.inspect import trace
from handgrad.walkthrough import TUTORIAL_T, TUTORIAL_X, UNSATURATED_X, tutorial_network

DOCS = Path(__file__).resolve().parents[1] / "docs"


def digits_curves() -> Path:
    (x, t), (x_test, t_test) = hg.data.load_dataset("digits")
    model = hg.mlp(64, [100], 10, seed=0)
    history = hg.fit(model, hg.optim.Adam(lr=1e-3), (x, t), val=(x_test, t_test), epochs=30, batch_size=32, seed=0)
    return plot.training_curves(history, DOCS / "img" / "digits_curves.png", val_label="test")


def init_activations() -> Path:
    plt = plot._pyplot()
    x = np.random.default_rng(0).standard_normal((1000, 100))
    inits = [("std 1", 1.0), ("std 0.01", 0.01), ("Xavier", "xavier")]
    fig, axes = plt.subplots(len(inits), 5, figsize=(12, 6.5), sharey="row")
    for row, (name, init) in enumerate(inits):
        model = hg.mlp(100, [100] * 5, 10, activation="sigmoid", init=init, seed=0, dtype=np.float64)
        value = x
        layer_outputs = []
        for layer in model.layers:
            value = layer.forward(value)
            if layer.name == "Sigmoid":
                layer_outputs.append(value.ravel())
        for col, values in enumerate(layer_outputs):
            axes[row, col].hist(values, bins=30, range=(0, 1))
            axes[row, col].set_yticks([])
            axes[row, col].set_title(f"{name}: layer {col + 1}", fontsize=9)
    fig.suptitle("sigmoid activations by layer: std 1 saturates, std 0.01 collapses, Xavier spreads")
    fig.tight_layout()
    return plot._save(fig, DOCS / "img" / "init_activations.png")


def walkthrough_trace() -> Path:
    parts = []
    for title, x in (("the tutorial's example, x = [[1, 2]]", TUTORIAL_X), ("the unsaturated input, x = [[-1, 0.3]]", UNSATURATED_X)):
        result = trace(tutorial_network(), np.array(x), np.array(TUTORIAL_T), lr=0.1)
        parts.append(f"# trace of {title}\n{result.format_text()}\n")
    path = DOCS / "walkthrough_trace.txt"
    path.write_text("\n".join(parts))
    return path


def gpt_figures(data_dir) -> list[Path]:
    _, _, vocab = hg.data.load_shakespeare(data_dir=data_dir)
    train, val = hg.data.load_dataset("shakespeare", data_dir=data_dir)
    model = hg.model.GPT(len(vocab), 64, 4, 4, 128, seed=0, vocab=vocab)
    optimizer = hg.optim.AdamW(lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1, matrices_only=True)
    history = hg.train.fit_lm(model, optimizer, train, val, block_size=64, batch_size=12, max_steps=2000,
                              eval_interval=250, eval_iters=200, grad_clip=1.0, seed=0,
                              schedule=hg.optim.WarmupCosineLR(1e-3, 100, 2000, 1e-4),
                              log=lambda r: print(f"  step {r['step']}: val loss {r['val_loss']:.4f}", flush=True))
    return [plot.lm_curves(history, DOCS / "img" / "gpt_loss.png"),
            plot.gpt_attention(model, "ROMEO: What say you, my lord?", DOCS / "img" / "gpt_attention.png")]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpt", action="store_true", help="also train the GPT and draw its pictures (minutes)")
    parser.add_argument("--data-dir", default=os.environ.get("HANDGRAD_DATA"))
    args = parser.parse_args()
    made = [digits_curves(), init_activations(), walkthrough_trace()]
    if args.gpt:
        made += gpt_figures(args.data_dir)
    for path in made:
        print(f"wrote {path.relative_to(DOCS.parent)}")
