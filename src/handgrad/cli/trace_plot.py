"""``handgrad trace`` (every layer's values and gradients on a few samples) and ``handgrad plot``
(pictures of a saved model, or of its run's training curves)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from .arguments import Command, finite_non_negative, positive_int
from .models import DATA_DIR_HELP, dataset_samples, load_model, plot_module
from .process import CommandError

#: The learning rate of the update ratios when neither --lr nor the run records one.
FALLBACK_LR = 1e-3


def add_trace_arguments(parser: argparse.ArgumentParser) -> None:
    from ..data import DATASET_NAMES
    from ..optim import OPTIMIZERS

    parser.add_argument("model", help="a model.safetensors written by handgrad")
    parser.add_argument("--dataset", choices=DATASET_NAMES, help="default: the dataset recorded in the model file, else digits")
    parser.add_argument("--samples", type=positive_int, default=10, help="test samples to trace (default: 10)")
    parser.add_argument("--lr", type=finite_non_negative,
                        help="learning rate of the update-to-weight ratios (default: the one the model was trained "
                        f"with, recorded in its file or in history.json beside it, else {FALLBACK_LR:g})")
    parser.add_argument("--optimizer", choices=list(OPTIMIZERS),
                        help="the optimizer whose update the ratios measure: lr*|grad|/|w| for sgd and momentum, "
                        "lr/rms(w) for adam, adamw, rmsprop and adagrad, which move every weight by about lr "
                        "(default: the one the model was trained with, else sgd's rule)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--data-dir", help=DATA_DIR_HELP)


def training_settings(args: argparse.Namespace) -> tuple[float, str | None]:
    """``(lr, optimizer)`` for the update ratios: --lr and --optimizer, else what the run
    recorded (the model file's metadata ``optimizer`` and ``lr``, else the ``arguments`` of the
    history.json beside it, whose unset optimizer is its model's default in the registry), else
    ``FALLBACK_LR`` with SGD's rule (optimizer None), said in a note on standard error."""
    from ..optim import OPTIMIZERS
    from ..serialize import read_metadata

    metadata = read_metadata(args.model)
    arguments = _history_beside(args.model).get("arguments")
    arguments = arguments if isinstance(arguments, dict) else {}
    lr = args.lr
    if lr is None:
        lr = _number(metadata.get("lr"))
        lr = lr if lr is not None else _number(arguments.get("lr"))
    optimizer = args.optimizer or metadata.get("optimizer") or arguments.get("optimizer") or _default_optimizer(arguments)
    if optimizer is not None and not (isinstance(optimizer, str) and optimizer in OPTIMIZERS):  # a file's record
        raise CommandError(f"{args.model}: the recorded optimizer {str(optimizer)[:40]!r} is none of "
                           f"{', '.join(OPTIMIZERS)}; give --optimizer")
    missing = [name for name, value in (("--lr", lr), ("--optimizer", optimizer)) if value is None]
    if missing:
        print(f"note: {args.model} records no {' or '.join(m[2:] for m in missing)} of its training; the update "
              f"ratios are for {optimizer or 'sgd'} lr {FALLBACK_LR if lr is None else lr:g} ({', '.join(missing)} "
              "set them)", file=sys.stderr)
    return (FALLBACK_LR if lr is None else lr), optimizer


def _number(value) -> float | None:
    """A recorded learning rate (metadata stores strings, history.json numbers), or None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _default_optimizer(arguments: dict) -> str | None:
    """The optimizer a run used when its history.json says ``"optimizer": null``: its model's own."""
    from ..registry import MODELS

    model = arguments.get("model")
    return MODELS[model].training.optimizer if isinstance(model, str) and model in MODELS else None


def _history_beside(model_path) -> dict:
    """history.json of the run folder that holds ``model_path``, or {} when there is none that
    reads as JSON (a model file copied elsewhere; the record is then only its metadata)."""
    path = Path(model_path).parent / "history.json"
    try:
        history = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return history if isinstance(history, dict) else {}


def trace(args: argparse.Namespace) -> int:
    from ..inspect import trace

    model = load_model(args.model)
    x, t, _ = dataset_samples(model, args, args.samples)  # refuses what trace cannot run first
    lr, optimizer = training_settings(args)
    result = trace(model, x, t, lr=lr, optimizer=optimizer)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.format_text())
    return 0


TRACE = Command("trace", "every layer's values and gradients on a few samples, with warnings", add_trace_arguments, trace)


PLOTS = ["confusion", "mistakes", "weights", "activations", "attention", "curves"]


def add_plot_arguments(parser: argparse.ArgumentParser) -> None:
    from ..data import DATASET_NAMES

    parser.add_argument("model", metavar="MODEL",
                        help="a model.safetensors written by handgrad; for --what curves, its run folder (the --out "
                        "of handgrad train) or the model file in it")
    parser.add_argument("--dataset", choices=DATASET_NAMES, help="default: the dataset recorded in the model file, else digits")
    parser.add_argument("--what", choices=PLOTS, default="confusion",
                        help="confusion: the confusion matrix on the test set; mistakes: misclassified images; "
                        "weights: the first layer's weights; activations: histograms of each activation layer; "
                        "attention: where a seq2seq-attention model or a gpt looks (with --text); curves: the "
                        "run's loss and accuracy, from its history.json (default: confusion)")
    parser.add_argument("--text", metavar="TEXT",
                        help="for --what attention: a question for a seq2seq-attention model, or a prompt for a gpt")
    parser.add_argument("--samples", type=positive_int, default=1000, help="samples for --what activations")
    parser.add_argument("--out", help="picture to write, .png, .svg or .pdf (default: WHAT.png beside the model, in "
                        "its run folder)")
    parser.add_argument("--data-dir", help=DATA_DIR_HELP)


def plot(args: argparse.Namespace) -> int:
    plot = plot_module()
    if args.what == "curves":
        return _plot_curves(plot, args)
    model = load_model(args.model)
    # Beside the model, in its run folder: the current folder (a clone of the repository, say) is
    # no place for pictures nobody asked to keep there.
    out = Path(args.out) if args.out else Path(args.model).parent / f"{args.what}.png"
    if args.what == "attention" or args.text is not None:
        if args.what != "attention" or args.text is None:
            raise CommandError("--what attention needs --text QUESTION, and --text goes with --what attention")
        try:
            print(f"wrote {plot.attention_map(model, args.text, out)}")
        except ValueError as error:
            raise CommandError(f"--text {args.text!r}: {error}") from error
        return 0
    x, t, names = dataset_samples(model, args, args.samples if args.what == "activations" else None)
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


def _plot_curves(plot, args: argparse.Namespace) -> int:
    """A finished run's curves, redrawn from its history.json: by epoch (training_curves) or, for
    a language model, by step (lm_curves)."""
    if args.text is not None:
        raise CommandError("--text goes with --what attention")
    given = Path(args.model)
    if not given.exists():
        raise CommandError(f"{given}: no such run folder or model file")
    folder = given if given.is_dir() else given.parent
    source = folder / "history.json"
    if not source.is_file():
        raise CommandError(f"{source}: no such file; --what curves draws the history.json that handgrad train writes "
                           "into its --out folder")
    history, by_steps, val_label = read_history(source)
    out = Path(args.out) if args.out else folder / "curves.png"
    path = plot.lm_curves(history, out) if by_steps else plot.training_curves(history, out, val_label=val_label)
    print(f"wrote {path}")
    return 0


#: The columns each record of a history.json must have to be drawn.
_EPOCH_COLUMNS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy")
_STEP_COLUMNS = ("step", "train_loss", "val_loss")


def read_history(path: Path):
    """``(history, by_steps, val_label)`` from a run's history.json: a :class:`handgrad.History`
    of its records (and of its ``steps``, the training loss logged between evaluations), whether
    it is by steps, and what the validation curve is ("val" with --val-split, else "test").
    A file that is not such a record is a one-line error naming the file and what is wrong."""
    from ..train import History

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise CommandError(f"{path}: cannot read it ({getattr(error, 'strerror', None) or error})") from None
    except ValueError as error:
        raise CommandError(f"{path}: not JSON ({error})") from None
    records = data.get("epochs") if isinstance(data, dict) else None
    if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
        raise CommandError(f"{path}: expected a handgrad history with a non-empty list 'epochs' of records")
    by_steps = "step" in records[0] and "epoch" not in records[0]
    columns = _STEP_COLUMNS if by_steps else _EPOCH_COLUMNS
    for i, record in enumerate(records):
        for column in columns:
            value = record.get(column, "missing")
            optional = column.startswith("val_")  # None without validation data
            if not (isinstance(value, (int, float)) and not isinstance(value, bool) or (optional and value is None)):
                raise CommandError(f"{path}: record {i} of 'epochs': {column!r} must be a number, got {value!r}"
                                   if value != "missing" else f"{path}: record {i} of 'epochs' has no {column!r}")
    steps = data.get("steps") if by_steps else None
    steps = [s for s in steps if isinstance(s, dict) and _is_number(s.get("step")) and _is_number(s.get("train_loss"))] \
        if isinstance(steps, list) else []
    arguments = data.get("arguments") if isinstance(data.get("arguments"), dict) else {}
    val_label = "val" if arguments.get("val_split") else "test"
    history = History(records=records, best_epoch=data.get("best_epoch"))
    history.steps = steps
    return history, by_steps, val_label


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


PLOT = Command("plot", "pictures of a saved model (confusion, mistakes, weights, activations, attention) or of its "
               "run's training curves", add_plot_arguments, plot)
