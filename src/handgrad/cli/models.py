"""What the commands that take a saved model share: reading it, asking what it learns, and
fitting a dataset's samples to it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .process import CommandError


def task_of(model) -> str:
    """``model.task`` (handgrad.model.base.Model): ``"classifier"``, ``"language model"`` or
    ``"seq2seq"``; what the commands read to choose what to do with a saved model."""
    return model.task


def load_model(path):
    from ..serialize import load

    if Path(path).is_dir():
        hint = Path(path) / "model.safetensors"
        raise CommandError(f"{path} is a folder, not a model file" + (f" (did you mean {hint}?)" if hint.is_file() else ""))
    return load(path)


def check_fits(model, features: int, what: str) -> None:
    if model.input_size is not None and model.input_size != features:
        raise CommandError(f"the model takes {model.input_size} features per sample, {what} has {features}")


def as_model_input(model, x: np.ndarray) -> np.ndarray:
    """Rows of features, reshaped to the model's sample shape (images for ConvNets)."""
    x = x.reshape(len(x), -1)
    return x.reshape((len(x),) + model.input_shape) if model.input_shape else x


def dataset_of(args: argparse.Namespace) -> str:
    """--dataset, else the dataset the model file records, else the embedded digits."""
    from ..serialize import read_metadata

    return args.dataset or read_metadata(args.model).get("dataset") or "digits"


#: The help of ``--data-dir`` for the commands that read a saved model's dataset.
DATA_DIR_HELP = ("data root with one folder per dataset, e.g. DIR/mnist/ (default: the one the model was trained "
                 "with, recorded in its file; then $HANDGRAD_DATA, then the download cache)")


def data_dir_of(args: argparse.Namespace) -> str | None:
    """--data-dir, else the data root the model was trained from (``handgrad train`` records it in
    the model file's metadata as ``data_dir``), else None (``$HANDGRAD_DATA``, then the cache).

    Without this, ``evaluate`` on a GPT trained with ``--data-dir`` went looking in the cache
    and tried to download the text. A recorded root that is no longer a folder is passed over
    with a note: the data would otherwise be downloaded into wherever it used to be."""
    from ..serialize import read_metadata

    if args.data_dir is not None:
        return args.data_dir
    recorded = read_metadata(args.model).get("data_dir")
    if recorded is None:
        return None
    if not Path(recorded).is_dir():
        print(f"note: the data root the model was trained from, {recorded}, is not a folder any more; looking in "
              "$HANDGRAD_DATA and the cache instead (--data-dir DIR says where the data is)", file=sys.stderr)
        return None
    return recorded


def in_model_vocabulary(ids: np.ndarray, data_vocab, model_vocab, dataset: str) -> np.ndarray:
    """``ids`` of ``data_vocab`` as the ids of the same characters in ``model_vocab``; refuses a
    character of the data that the model has never seen."""
    missing = [c for c in data_vocab.chars if c not in model_vocab.chars]
    used = set(np.unique(ids).tolist())
    missing = [c for c in missing if data_vocab.id_of(c) in used]
    if missing:
        shown = "".join(missing[:20]) + ("..." if len(missing) > 20 else "")
        raise CommandError(f"{dataset} has {len(missing)} character{'s' if len(missing) != 1 else ''} that the model's "
                           f"vocabulary lacks ({shown!r}): the model was trained on other text")
    to_model = np.array([model_vocab.chars.index(c) if c in model_vocab.chars else -1 for c in data_vocab.chars],
                        dtype=np.int64)
    return to_model[ids]


def require_classifier(model, command: str, dataset: str) -> None:
    """trace, plot and evaluate's per-class report work on classifiers of the image and signal
    datasets; say so instead of failing inside."""
    from ..registry import DATASETS

    task = task_of(model)
    if task != "classifier":
        other = {"language model": "a language model: try 'handgrad generate', or 'plot --what attention --text PROMPT'",
                 "seq2seq": "a seq2seq model: try 'handgrad evaluate', 'predict --text' or 'plot --what attention'"}
        raise CommandError(f"{command} works on classifiers (mlp, cnn, lstm); this is "
                           + other.get(task, f"a {type(model).__name__}"))
    if dataset in DATASETS and DATASETS[dataset].kind not in ("images", "signals"):
        raise CommandError(f"a classifier cannot be run on {dataset} ({DATASETS[dataset].kind}); "
                           "choose an image or signal dataset")


def dataset_samples(model, args, count=None):
    """The first ``count`` test samples of the model's dataset (all by default), shaped for it,
    their labels and the class names."""
    from ..data import CLASS_NAMES, load_dataset

    args.dataset = dataset_of(args)
    require_classifier(model, f"handgrad {args.command}", args.dataset)
    _, (x_test, t_test) = load_dataset(args.dataset, data_dir=data_dir_of(args))
    check_fits(model, x_test.shape[1], f"dataset {args.dataset}")
    if count is not None:
        x_test, t_test = x_test[:count], t_test[:count]
    return as_model_input(model, x_test), t_test, CLASS_NAMES.get(args.dataset)


def plot_module():
    """:mod:`handgrad.plot`, or a one-line error when matplotlib is missing."""
    from .. import plot

    try:
        plot._pyplot()
    except plot.MissingMatplotlib as error:
        raise CommandError(str(error)) from None
    return plot
