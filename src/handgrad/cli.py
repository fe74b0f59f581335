"""The ``handgrad`` command (also ``python -m handgrad``)."""

from __future__ import annotations

import argparse
import json
import sys

from . import __version__


def _walkthrough(args: argparse.Namespace) -> int:
    from .walkthrough import format_text, walkthrough

    result = walkthrough()
    if args.json:
        # NaN is not JSON: the walkthrough already turns the tutorial's NaNs into null.
        print(json.dumps(result, indent=2, allow_nan=False))
    else:
        print(format_text(result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="handgrad",
        description="Neural networks in NumPy with gradients written by hand, layer by layer.",
    )
    parser.add_argument("--version", action="version", version=f"handgrad {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    walk = commands.add_parser(
        "walkthrough",
        help="the tutorial's two-layer network, every gradient beside its numerical check",
        description="Reproduce the tutorial's two-layer example: forward, loss, every backprop "
        "gradient beside the numerical one, its cross-entropy examples and its pitfalls.",
    )
    walk.add_argument("--json", action="store_true", help="print JSON instead of text")
    walk.set_defaults(handler=_walkthrough)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.handler(args)
    except BrokenPipeError:  # `handgrad walkthrough | head` is fine
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
