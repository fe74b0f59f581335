"""The one registry of ready-made models and datasets, read by the CLI (and by any front end):
a dataset name gives its loader and the kind of task it poses; a model name gives a builder
that takes the task's shapes and the options, and returns the model.

Adding a model or a dataset is one entry here; ``handgrad train --model NAME --dataset NAME``
then works, with the options the entry accepts and a clear refusal of the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

__all__ = ["Task", "DatasetEntry", "ModelEntry", "DATASETS", "MODELS", "load_task", "build_model"]


@dataclass
class Task:
    """A dataset ready to train on: ``train`` and ``test`` are ``(x, t)`` pairs.

    ``kind``: ``"images"`` (x ``(N, C, H, W)`` floats, t class labels), ``"signals"`` (x
    ``(N, L)`` floats), or ``"seq2seq"`` (x ``(N, Tq)`` and t ``(N, Ta)`` character ids).
    ``sample_shape``: one sample's shape; ``num_classes``: classes, or the vocabulary's size;
    ``vocab``: the character vocabulary of text tasks."""

    name: str
    kind: str
    train: tuple
    test: tuple
    sample_shape: tuple
    num_classes: int
    vocab: object = None


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    kind: str
    load: Callable  # (data_dir) -> Task
    epochs: int     # defaults for `handgrad train`: seconds on the small sets, the book's on the large
    batch_size: int
    # --model mlp's own defaults here (keys "hidden", "lr" for Adam, "epochs"), over the general ones.
    mlp: dict = field(default_factory=dict, hash=False, compare=False)


#: The first run, `handgrad train` (an MLP on the embedded digits): chosen by 5-fold cross-validation
#: on the training split alone (benchmarks/choose_defaults.py; README, "How the first run's defaults
#: were chosen"), never by the test split.
DIGITS_MLP = {"hidden": [512], "lr": 3e-3, "epochs": 100}


@dataclass(frozen=True)
class ModelEntry:
    name: str
    help: str
    kinds: tuple                      # the dataset kinds it can learn
    build: Callable                   # (task, options) -> (model, one-line description)
    options: frozenset = field(default_factory=frozenset)  # the model options it reads
    grad_clip: float | None = None    # the default --grad-clip (the book clips seq2seq at 5)


# --- datasets -------------------------------------------------------------------------------------


def _image_task(name: str):
    def load(data_dir) -> Task:
        from .data import load_dataset

        train, test = load_dataset(name, data_dir=data_dir, flatten=False)
        return Task(name, "images", train, test, train[0].shape[1:], 10)
    return load


def _mnist1d(data_dir) -> Task:
    from .data import load_dataset

    train, test = load_dataset("mnist1d")
    return Task("mnist1d", "signals", train, test, train[0].shape[1:], 10)


def _seq2seq_task(name: str):
    def load(data_dir) -> Task:
        from .data import load_seq2seq

        train, test, vocab = load_seq2seq(name, data_dir=data_dir)
        return Task(name, "seq2seq", train, test, train[0].shape[1:], len(vocab), vocab)
    return load


def _shakespeare(data_dir) -> Task:
    from .data import load_shakespeare

    train_ids, val_ids, vocab = load_shakespeare(data_dir=data_dir)
    return Task("shakespeare", "text", (train_ids[:-1], train_ids[1:]), (val_ids[:-1], val_ids[1:]), (), len(vocab), vocab)


DATASETS = {entry.name: entry for entry in (
    DatasetEntry("digits", "images", _image_task("digits"), 30, 32, mlp=DIGITS_MLP),
    DatasetEntry("mnist", "images", _image_task("mnist"), 5, 100),
    DatasetEntry("fashion-mnist", "images", _image_task("fashion-mnist"), 5, 100),
    DatasetEntry("mnist1d", "signals", _mnist1d, 60, 100),
    DatasetEntry("addition", "seq2seq", _seq2seq_task("addition"), 25, 128),
    DatasetEntry("dates", "seq2seq", _seq2seq_task("dates"), 10, 128),
    DatasetEntry("shakespeare", "text", _shakespeare, 0, 12),  # trained by steps (--max-steps), not epochs
)}


def load_task(name: str, data_dir=None) -> Task:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    return DATASETS[name].load(data_dir)


# --- models ---------------------------------------------------------------------------------------


def _mlp(task: Task, options: dict):
    from .model import mlp

    features = int(np.prod(task.sample_shape))
    hidden = options["hidden"] if options["hidden"] is not None else DATASETS[task.name].mlp.get("hidden", [100])
    model = mlp(features, hidden, task.num_classes, activation=options["activation"], init=options["init"],
                seed=options["seed"], batchnorm=options["batchnorm"], dropout=options["dropout"],
                weight_decay=options["weight_decay_l2"])
    description = (f"mlp {'-'.join(map(str, [features, *hidden, task.num_classes]))} {options['activation']}"
                   + (" batchnorm" if options["batchnorm"] else "")
                   + (f" dropout {options['dropout']:g}" if options["dropout"] else ""))
    return model, description


def _convnet(kind: str):
    def build(task: Task, options: dict):
        from .model import DeepConvNet, SimpleConvNet

        cls = SimpleConvNet if kind == "cnn" else DeepConvNet
        model = cls(input_dim=task.sample_shape, init=options["init"], seed=options["seed"],
                    weight_decay=options["weight_decay_l2"])
        return model, cls.__name__
    return build


def _lstm(task: Task, options: dict):
    """Read each sample as a sequence and classify it from the LSTM's last state: an image's
    rows (sequential MNIST: 28 steps of 28 pixels), or a signal's values one at a time."""
    from .layers import LSTM, Affine, LastStep, Reshape
    from .model import Sequential

    if task.kind == "images":
        steps, width = task.sample_shape[-2], int(np.prod(task.sample_shape)) // task.sample_shape[-2]
    else:
        steps, width = int(np.prod(task.sample_shape)), 1
    hidden = options["hidden"] if options["hidden"] is not None else [128]
    if len(hidden) != 1:
        raise ValueError(f"--model lstm takes one --hidden size, got {len(hidden)}")
    H = hidden[0]
    rng = np.random.default_rng(options["seed"])
    bound = 1 / np.sqrt(H)  # PyTorch's LSTM initialisation, so that curves compare

    def uniform(*shape):
        return rng.uniform(-bound, bound, shape).astype(np.float32)

    layers = [Reshape((steps, width)), LSTM(uniform(width, 4 * H), uniform(H, 4 * H), uniform(4 * H) + uniform(4 * H)),
              LastStep(), Affine(uniform(H, task.num_classes), uniform(task.num_classes))]
    model = Sequential(layers, seed=options["seed"], input_shape=task.sample_shape)
    return model, f"LSTM {H} over {steps} steps of {width} values, last state -> Affine {task.num_classes}"


def _seq2seq(attention: bool):
    def build(task: Task, options: dict):
        from .model import Seq2seq

        hidden = options["hidden"] if options["hidden"] is not None else [256 if attention else 128]
        if len(hidden) != 1:
            raise ValueError(f"--model seq2seq takes one --hidden size, got {len(hidden)}")
        (x, t), _ = task.train, task.test
        model = Seq2seq(task.vocab, x.shape[1], t.shape[1], embed=options["embed"] or 16, hidden=hidden[0],
                        peeky=options["peeky"], attention=attention, reverse_input=options["reverse_input"],
                        seed=options["seed"])
        return model, model.describe()
    return build


def _gpt(task: Task, options: dict):
    from .model import GPT

    model = GPT(task.num_classes, options["block_size"] or 64, options["n_layer"] or 4, options["n_head"] or 4,
                options["n_embd"] or 128, dropout=options["dropout"], bias=not options["no_bias"], seed=options["seed"],
                vocab=task.vocab)
    return model, model.describe()


_MLP_OPTIONS = frozenset({"hidden", "activation", "init", "seed", "batchnorm", "dropout", "weight_decay_l2"})
_CONV_OPTIONS = frozenset({"init", "seed", "weight_decay_l2"})
_SEQ2SEQ_OPTIONS = frozenset({"hidden", "embed", "reverse_input", "seed"})

MODELS = {entry.name: entry for entry in (
    ModelEntry("mlp", "a multilayer perceptron (--hidden, --activation, --batchnorm, --dropout)",
               ("images", "signals"), _mlp, _MLP_OPTIONS),
    ModelEntry("cnn", "the book's SimpleConvNet", ("images",), _convnet("cnn"), _CONV_OPTIONS),
    ModelEntry("deep-cnn", "the book's DeepConvNet", ("images",), _convnet("deep-cnn"), _CONV_OPTIONS),
    ModelEntry("lstm", "an LSTM reading each image row by row (or a signal value by value), then Affine",
               ("images", "signals"), _lstm, frozenset({"hidden", "seed"})),
    ModelEntry("seq2seq", "the second book's seq2seq: LSTM encoder and decoder (--peeky, --reverse-input)",
               ("seq2seq",), _seq2seq(False), _SEQ2SEQ_OPTIONS | {"peeky"}, grad_clip=5.0),
    ModelEntry("seq2seq-attention", "seq2seq with the second book's attention over the encoder's states",
               ("seq2seq",), _seq2seq(True), _SEQ2SEQ_OPTIONS, grad_clip=5.0),
    ModelEntry("gpt", "nanoGPT's model, every backward by hand (--n-layer, --n-head, --n-embd, --block-size)",
               ("text",), _gpt, frozenset({"n_layer", "n_head", "n_embd", "block_size", "dropout", "no_bias", "seed"}),
               grad_clip=1.0),
)}


def build_model(name: str, task: Task, options: dict):
    """``(model, description)`` of the model ``name`` for ``task``; refuses a model that cannot
    learn this kind of data, naming what would."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    entry = MODELS[name]
    if task.kind not in entry.kinds:
        fitting = [m.name for m in MODELS.values() if task.kind in m.kinds]
        raise ValueError(f"--model {name} cannot learn {task.name} ({task.kind}); use --model {' or '.join(fitting)}")
    return entry.build(task, options)
