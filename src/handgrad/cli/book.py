"""The tutorial and the book: ``handgrad walkthrough`` (the two-layer example, every gradient
beside its numerical check) and ``handgrad book-run`` (a script of the book's repository,
unchanged, on handgrad)."""

from __future__ import annotations

import argparse
import json

from .arguments import Command
from .process import CommandError


#: The walkthrough's languages (handgrad.walkthrough.LANGUAGES, written here so that the parser
#: is built without importing the walkthrough's NumPy code).
WALKTHROUGH_LANGUAGES = ("en", "ko")


def add_walkthrough_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--lang", choices=WALKTHROUGH_LANGUAGES, default="en",
                        help="the language of the explanations: en (English, the default) or ko (Korean, the "
                        "tutorial's); the numbers are the same")


def walkthrough(args: argparse.Namespace) -> int:
    from ..walkthrough import format_text, walkthrough

    result = walkthrough(args.lang)
    if args.json:
        # NaN is not JSON: the walkthrough already turns the tutorial's NaNs into null. Korean
        # stays readable (UTF-8), not \uXXXX escapes.
        print(json.dumps(result, indent=2, allow_nan=False, ensure_ascii=False))
    else:
        print(format_text(result, args.lang))
    return 0


WALKTHROUGH = Command("walkthrough", "the tutorial's two-layer network, every gradient beside its numerical check",
                      add_walkthrough_arguments, walkthrough,
                      description="Reproduce the tutorial's two-layer example: forward, loss, every backprop gradient "
                      "beside the numerical one, its cross-entropy examples and its pitfalls.")


def add_book_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("script", nargs="?", help="the book's script, e.g. ../book/ch05/gradient_check.py")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed on to the script")
    parser.add_argument("--out", default="book-run-out",
                        help="folder for the figures and saved parameters (default: book-run-out)")
    parser.add_argument("--data-dir", help="data root with mnist/ (default: $HANDGRAD_DATA, then the cache)")


def book_run(args: argparse.Namespace) -> int:
    from ..book.run import run_script

    if args.script is None:
        raise CommandError("which script? handgrad book-run SCRIPT.py [ARGS...], e.g. ../book/ch05/gradient_check.py")
    return run_script(args.script, args.args, out=args.out, data_dir=args.data_dir)


BOOK_RUN = Command("book-run", "run a script of the book's repository, unchanged, on handgrad", add_book_run_arguments,
                   book_run, description="Run a script of the Deep Learning from Scratch repository unchanged: its "
                   "common.*, dataset.mnist and chapter modules are handgrad's (handgrad.book), the working directory "
                   "is the script's folder, and plt.show() saves numbered PNGs in --out.")
