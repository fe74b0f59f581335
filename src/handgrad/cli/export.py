"""``handgrad export``: a saved model as an ONNX file, to run it outside Python."""

from __future__ import annotations

import argparse
from pathlib import Path

from .arguments import Command
from .models import load_model
from .process import CommandError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a model.safetensors written by handgrad")
    parser.add_argument("--onnx", required=True, metavar="FILE",
                        help="the ONNX file to write, named *.onnx (an earlier export there is replaced)")
    parser.add_argument("--force", action="store_true", help="replace FILE even if it exists and is not an ONNX model")


def run(args: argparse.Namespace) -> int:
    from ..onnx_export import OPSET, export_onnx, signature

    if Path(args.onnx).exists() and Path(args.onnx).resolve() == Path(args.model).resolve():
        raise CommandError(f"--onnx {args.onnx} is the model file itself: writing there would destroy the model")
    model = load_model(args.model)
    try:
        path = export_onnx(model, args.onnx, force=args.force)
    except ImportError as error:  # the onnx extra is missing: say which, in one line
        raise CommandError(str(error)) from error
    print(f"wrote {path} (ONNX opset {OPSET}): {signature(path)}; the scores before any softmax")
    return 0


EXPORT = Command("export", "write a saved model as an ONNX file, to run it outside Python", add_arguments, run,
                 description="Export a saved model (a Sequential model or a gpt) to ONNX (opset 17, float32): its "
                 "scores / logits before any softmax, for any batch size. Needs the 'onnx' extra: "
                 "pip install \"handgrad[onnx]\".")
