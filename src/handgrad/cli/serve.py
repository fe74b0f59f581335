"""``handgrad serve``: a web page to draw a digit or type a prompt, and watch every layer."""

from __future__ import annotations

import argparse
from pathlib import Path

from .arguments import Command, port, positive_int
from .models import load_model
from .process import CommandError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="+", metavar="MODEL", help="model.safetensors files written by handgrad train")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=port, default=8000, help="default: 8000")
    parser.add_argument("--copies", type=positive_int, default=2,
                        help="independent copies of each model, one per concurrent request (default: 2)")
    parser.add_argument("--data-dir", help="data root holding mnist/ etc., for the random test images")


def run(args: argparse.Namespace) -> int:
    from ..serve import MissingServeExtra, serve

    for name in args.models:
        if Path(name).is_dir():
            load_model(name)  # says it is a folder, and which model file inside it was meant
        if not Path(name).is_file():
            raise CommandError(f"{name}: no such model file")
    try:
        serve(args.models, host=args.host, port=args.port, copies=args.copies, data_dir=args.data_dir)
    except MissingServeExtra as error:
        raise CommandError(str(error)) from None
    return 0


SERVE = Command("serve", "a web page: draw a digit or type a prompt, watch every layer and gradient", add_arguments, run,
                description="Serve a web page and its JSON API for the given models (image classifiers and GPTs): "
                "draw a digit and see the probabilities, every layer's activations and the saliency map computed by "
                "the model's own backward; or type a prompt and watch a GPT write, with each character's probability "
                "and every head's attention.")
