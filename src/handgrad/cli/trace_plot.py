"""``handgrad trace`` (every layer's values and gradients on a few samples) and ``handgrad plot``
(pictures of a saved model)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .arguments import Command, finite_non_negative, positive_int
from .models import dataset_samples, load_model, plot_module
from .process import CommandError


def add_trace_arguments(parser: argparse.ArgumentParser) -> None:
    from ..data import DATASET_NAMES

    parser.add_argument("model", help="a model.safetensors written by handgrad")
    parser.add_argument("--dataset", choices=DATASET_NAMES, help="default: the dataset recorded in the model file, else digits")
    parser.add_argument("--samples", type=positive_int, default=10, help="test samples to trace (default: 10)")
    parser.add_argument("--lr", type=finite_non_negative, default=1e-3,
                        help="learning rate for the update-to-weight ratios")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--data-dir")


def trace(args: argparse.Namespace) -> int:
    from ..inspect import trace

    model = load_model(args.model)
    x, t, _ = dataset_samples(model, args, args.samples)
    result = trace(model, x, t, lr=args.lr)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.format_text())
    return 0


TRACE = Command("trace", "every layer's values and gradients on a few samples, with warnings", add_trace_arguments, trace)


def add_plot_arguments(parser: argparse.ArgumentParser) -> None:
    from ..data import DATASET_NAMES

    parser.add_argument("model", help="a model.safetensors written by handgrad")
    parser.add_argument("--dataset", choices=DATASET_NAMES, help="default: the dataset recorded in the model file, else digits")
    parser.add_argument("--what", choices=["confusion", "mistakes", "weights", "activations", "attention"],
                        default="confusion")
    parser.add_argument("--text", metavar="TEXT",
                        help="for --what attention: a question for a seq2seq-attention model, or a prompt for a gpt")
    parser.add_argument("--samples", type=positive_int, default=1000, help="samples for --what activations")
    parser.add_argument("--out", help="PNG file to write (default: WHAT.png)")
    parser.add_argument("--data-dir")


def plot(args: argparse.Namespace) -> int:
    plot = plot_module()
    model = load_model(args.model)
    if args.what == "attention" or args.text is not None:
        if args.what != "attention" or args.text is None:
            raise CommandError("--what attention needs --text QUESTION, and --text goes with --what attention")
        try:
            print(f"wrote {plot.attention_map(model, args.text, Path(args.out or 'attention.png'))}")
        except ValueError as error:
            raise CommandError(f"--text {args.text!r}: {error}") from error
        return 0
    x, t, names = dataset_samples(model, args, args.samples if args.what == "activations" else None)
    out = Path(args.out or f"{args.what}.png")
    if args.what == "confusion":
        path = plot.confusion(model, x, t, out, class_names=names)
    elif args.what == "mistakes":
        side = round(x.shape[1] ** 0.5)
        image_shape = model.input_shape or (side, side)
        if int(np.prod(image_shape[-2:])) != x[0].size:
            raise CommandError(f"--what mistakes draws images; dataset {args.dataset} has samples of "
                               f"{x[0].size} values that are not an image")
        path = plot.mistakes(model, x, t, out, image_shape, class_names=names)
    elif args.what == "weights":
        path = plot.first_layer_weights(model, out)
    else:
        path = plot.activations(model, x, out)
    print(f"wrote {path}")
    return 0


PLOT = Command("plot", "pictures of a saved model: confusion, mistakes, weights, activations", add_plot_arguments, plot)
