"""The one registry of ready-made models and datasets, with their defaults and training recipes,
read by the CLI (whose help is generated from it) and by any front end:

* a dataset entry gives its loader, the kind of task it poses and its training defaults (epochs,
  or none when it trains by steps; the batch size; settings tuned for a model on it);
* a model entry gives its builder, the options it reads with their defaults, and how it trains
  (:class:`Training`: the optimizer, Adam's betas, weight decay, gradient clipping and, for a
  language model, nanoGPT's recipe by steps, :class:`Steps`);
* :func:`recipe` resolves both, with overrides, into the :class:`Recipe` that
  ``handgrad train --model MODEL --dataset DATASET`` runs.

Adding a model or a dataset is one entry here; ``handgrad train --model NAME --dataset NAME``
then works, with the options the entry accepts, a clear refusal of the others, and its defaults
in ``handgrad train --help``.

>>> r = recipe("mlp", "digits")
>>> r.epochs, r.batch_size, r.optimizer, r.lr, r.model_options["hidden"]
(100, 32, 'adam', 0.003, [512])
>>> recipe("mlp", "digits", optimizer="sgd").lr
0.1
>>> r = recipe("gpt", "shakespeare")
>>> r.optimizer, r.betas, r.weight_decay, r.max_steps, r.warmup, r.min_lr, r.grad_clip
('adamw', (0.9, 0.99), 0.1, 2000, 100, 0.0001, 1.0)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = [
    "AUGMENTATIONS",
    "DATASETS",
    "DEFAULT_DATASET",
    "DEFAULT_MODEL",
    "LEARNING_RATES",
    "MODELS",
    "MODEL_FOR_KIND",
    "MODEL_OPTIONS",
    "OPTION_DEFAULTS",
    "STEP_OPTIONS",
    "DatasetEntry",
    "ModelEntry",
    "Recipe",
    "Steps",
    "Task",
    "Training",
    "build_model",
    "model_for",
    "default_model",
    "load_task",
    "model_options",
    "recipe",
]


@dataclass
class Task:
    """A dataset ready to train on: ``train`` and ``test`` are ``(x, t)`` pairs.

    ``kind``: ``"images"`` (x ``(N, C, H, W)`` floats, t class labels), ``"signals"`` (x
    ``(N, L)`` floats), ``"seq2seq"`` (x ``(N, Tq)`` and t ``(N, Ta)`` character ids) or
    ``"text"`` (aligned token streams, t[i] the token after x[i]).
    ``sample_shape``: one sample's shape; ``num_classes``: classes, or the vocabulary's size;
    ``vocab``: the character vocabulary of text tasks."""

    name: str
    kind: str
    train: tuple
    test: tuple
    sample_shape: tuple
    num_classes: int
    vocab: object = None


# --- how models train -------------------------------------------------------------------------------


#: Each optimizer's learning rate when none is given: the book's 0.1 for SGD and its momentum
#: variants, 0.01 for AdaGrad, 1e-3 (Adam's paper, torch's) for the adaptive ones.
LEARNING_RATES = {"sgd": 0.1, "momentum": 0.1, "nesterov": 0.1, "adagrad": 0.01, "rmsprop": 1e-3, "adam": 1e-3,
                  "adamw": 1e-3}


@dataclass(frozen=True)
class Steps:
    """Training by steps, as nanoGPT's train.py trains a language model: ``max_steps`` updates
    on random batches; the learning rate warms up linearly for ``warmup`` steps, then decays by
    a cosine to ``lr / min_lr_divisor`` at ``max_steps``; every ``eval_interval`` steps (and
    after the last) the loss is estimated on ``eval_iters`` random batches of each split.
    ``schedule="step"`` (Zero to Hero's): ``lr`` for the first 3/4 of the steps, then ``lr /
    min_lr_divisor`` (150k and 200k steps); ``"constant"`` (makemore.py's): ``lr`` throughout,
    ``min_lr_divisor`` 1, no warmup."""

    max_steps: int = 2000
    warmup: int = 100
    min_lr_divisor: float = 10
    eval_interval: int = 250
    eval_iters: int = 200
    origin: str = "nanoGPT"  # whose recipe it is, for the messages
    schedule: str = "warmup-cosine"  # or "step": lr until 3/4 of max_steps, then min_lr (Zero to Hero's); "constant"


@dataclass(frozen=True)
class Training:
    """How a model trains unless told otherwise.

    ``optimizer``: a name of :data:`handgrad.optim.OPTIMIZERS` (its learning rate comes from
    :data:`LEARNING_RATES`, or from a dataset's tuned settings); ``betas``: Adam's, or None for
    the optimizer's own; ``weight_decay``: torch.optim's, on every parameter, or on weight
    matrices only when ``decay_matrices_only`` (nanoGPT's); ``grad_clip``: the total gradient
    norm to clip to (None: none); ``steps``: the recipe on datasets trained by steps (text);
    ``threads``: how many threads share each batch (:mod:`handgrad.threads`), more than 1 only
    where it measured faster (docs/speed.md), and never more than the machine's cores; a
    dataset's tuned ``"threads"`` overrides it there (the LSTM's, whose gain depends on the
    sequences' length and the batch)."""

    optimizer: str = "adam"
    betas: tuple | None = None
    weight_decay: float = 0.0
    decay_matrices_only: bool = False
    grad_clip: float | None = None
    steps: Steps | None = None
    threads: int = 1


#: nanoGPT's train.py: AdamW with betas (0.9, 0.99) and weight decay 0.1 on matrices only,
#: gradients clipped at 1, warmup then cosine decay to lr / 10, by steps. Each batch split over 2
#: threads: benchmarks/gpt.py measured it faster (docs/speed.md).
NANOGPT = Training(optimizer="adamw", betas=(0.9, 0.99), weight_decay=0.1, decay_matrices_only=True, grad_clip=1.0,
                   steps=Steps(), threads=2)
#: Adam, each batch split over 2 threads: benchmarks/threads.py measured the book's ConvNets
#: faster that way on both instruction sets (docs/speed.md).
SPLIT_BATCH = Training(threads=2)
#: The second book clips its seq2seq models' gradients at a total norm of 5.
BOOK_SEQ2SEQ = Training(grad_clip=5.0)
#: Zero to Hero's makemore parts 3-5: SGD at 0.1, then 0.01 for the last quarter of 200k steps,
#: batches of 32 examples drawn with replacement; the loss of each split estimated every 10k steps.
ZERO_TO_HERO = Training(optimizer="sgd", steps=Steps(max_steps=200_000, warmup=0, min_lr_divisor=10,
                                                     eval_interval=10_000, eval_iters=200, origin="Zero to Hero",
                                                     schedule="step"))
#: makemore.py: AdamW (betas 0.9/0.99, weight decay 0.01 on every parameter) at a constant rate,
#: the test loss every 500 steps (makemore runs until stopped; here 20k steps by default).
MAKEMORE = Training(optimizer="adamw", betas=(0.9, 0.99), weight_decay=0.01,
                    steps=Steps(max_steps=20_000, warmup=0, min_lr_divisor=1, eval_interval=500, eval_iters=10,
                                origin="makemore", schedule="constant"))


# --- datasets -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetEntry:
    """A dataset: ``load(data_dir) -> Task``, the ``kind`` of task, and its training defaults.

    ``epochs``: seconds on the small sets, the book's on the large; None for a dataset trained
    by steps (a language model's text, see :class:`Steps`). ``tuned``: per model name, settings
    chosen for it on this dataset over the model's own (any model option, ``"epochs"``,
    ``"batch_size"``, ``"lr"``, the learning rate of the model's default optimizer,
    ``"augment"``, the augmentation of the training batches, a name of :data:`AUGMENTATIONS`, and
    ``"threads"``, the threads sharing each batch, in place of the model's :class:`Training`'s).
    ``model``: what ``handgrad train --dataset NAME`` trains without ``--model`` (None:
    :data:`DEFAULT_MODEL`)."""

    name: str
    kind: str
    load: Callable
    epochs: int | None
    batch_size: int
    tuned: dict = field(default_factory=dict, hash=False, compare=False)
    model: str | None = None

    @property
    def by_steps(self) -> bool:
        """True for a dataset trained by steps (``--max-steps``), not epochs."""
        return self.epochs is None

    @property
    def mlp(self) -> dict:
        """The settings tuned for ``--model mlp`` (``tuned["mlp"]``; the older name)."""
        return self.tuned.get("mlp", {})


#: The first run, `handgrad train` (an MLP on the embedded digits): chosen by 5-fold cross-validation
#: on the training split alone (benchmarks/choose_defaults.py; README, "How the first run's defaults
#: were chosen"), never by the test split.
DIGITS_MLP = {"hidden": [512], "lr": 3e-3, "epochs": 100}


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


def _names(data_dir, data_file=None) -> Task:
    """makemore's names.txt, or any file of one word a line (``--data-file``)."""
    from .data.words import load_names, read_words

    words = load_names(data_dir) if data_file is None else read_words(data_file)
    return Task(words.source if data_file is not None else "names", "words", words, None, (), words.vocab_size, words)


def _shakespeare(data_dir) -> Task:
    from .data import load_shakespeare

    train_ids, val_ids, vocab = load_shakespeare(data_dir=data_dir)
    return Task("shakespeare", "text", (train_ids[:-1], train_ids[1:]), (val_ids[:-1], val_ids[1:]), (), len(vocab), vocab)


def _warp_digits(xb, rng):
    from .data.images import warp_digits

    return warp_digits(xb, rng)


#: ``handgrad train --augment NAME``: each augmentation of the training batches, ``(function
#: (xb, rng) -> xb, the datasets it fits)``. ``warp``: every 8x8 digit sheared, rotated, scaled
#: and shifted at random (:func:`handgrad.data.images.warp_digits`): UCI's 43 writers wrote
#: upright digits of one size, and people drawing on the web page slant, squeeze and stretch
#: them; the first run (the mlp on the digits) learns with it, and recognises 93.5 % of the drawn
#: test digits instead of 88 % (benchmarks/drawn_digits.py).
AUGMENTATIONS = {"warp": (_warp_digits, ("digits",))}


#: The LSTM's batches split over 2 threads where benchmarks/threads.py measured it faster: 28
#: steps of 28 pixels or 40 of one value at batch 100 (lstm-mnist, lstm-mnist1d); not the
#: digits' 8 steps at batch 32, too little work per NumPy call (lstm-digits).
_LSTM_SPLIT = {"threads": 2}

DATASETS = {entry.name: entry for entry in (
    DatasetEntry("digits", "images", _image_task("digits"), 30, 32, tuned={"mlp": DIGITS_MLP | {"augment": "warp"}}),
    DatasetEntry("mnist", "images", _image_task("mnist"), 5, 100, tuned={"lstm": _LSTM_SPLIT}),
    DatasetEntry("fashion-mnist", "images", _image_task("fashion-mnist"), 5, 100, tuned={"lstm": _LSTM_SPLIT}),
    DatasetEntry("mnist1d", "signals", _mnist1d, 60, 100, tuned={"lstm": _LSTM_SPLIT}),
    DatasetEntry("addition", "seq2seq", _seq2seq_task("addition"), 25, 128, model="seq2seq"),
    DatasetEntry("dates", "seq2seq", _seq2seq_task("dates"), 10, 128, model="seq2seq-attention"),
    DatasetEntry("shakespeare", "text", _shakespeare, None, 12, model="gpt"),  # by steps (--max-steps), not epochs
    DatasetEntry("names", "words", _names, None, 32,
                 tuned={name: {"lr": 5e-4} for name in ("bigram", "mlp-words", "bow", "rnn", "gru", "transformer")},
                 model="transformer"),  # makemore.py's default
)}


#: What `handgrad train` learns with no options: an MLP on the embedded digits, in seconds.
DEFAULT_MODEL, DEFAULT_DATASET = "mlp", "digits"


def load_task(name: str, data_dir=None, data_file=None) -> Task:
    """The dataset ``name`` under the data root; ``data_file``: a file of one word a line, read
    as the ``names`` dataset is (makemore's promise: any such file)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    if data_file is not None:
        if DATASETS[name].kind != "words":
            words = [d.name for d in DATASETS.values() if d.kind == "words"]
            raise ValueError(f"--data-file is a file of words, one a line, for --dataset {'/'.join(words)}; "
                             f"not for --dataset {name}")
        return DATASETS[name].load(data_dir, data_file)
    return DATASETS[name].load(data_dir)


# --- models ---------------------------------------------------------------------------------------


#: Every model option, in the order the CLI lists them (each is ``--name-with-dashes``).
MODEL_OPTIONS = ("hidden", "activation", "batchnorm", "dropout", "init", "weight_decay_l2", "embed", "peeky",
                 "reverse_input", "n_layer", "n_head", "n_embd", "block_size", "no_bias")

#: The model options that mean the same to every model reading them, with their one default
#: (the CLI's flags default to these); the others' defaults depend on the model
#: (:attr:`ModelEntry.defaults`).
OPTION_DEFAULTS = {"activation": "relu", "batchnorm": False, "dropout": 0.0, "init": "he", "weight_decay_l2": 0.0,
                   "peeky": False, "reverse_input": False, "no_bias": False}


@dataclass(frozen=True)
class ModelEntry:
    """A model: ``build(task, options) -> (model, one-line description)``, the dataset
    ``kinds`` it can learn, the ``options`` it reads, the ``defaults`` of those whose default
    depends on the model (``hidden``, ``embed``, a GPT's sizes), and how it trains."""

    name: str
    help: str
    kinds: tuple
    build: Callable
    options: frozenset = field(default_factory=frozenset)
    defaults: dict = field(default_factory=dict, hash=False, compare=False)
    training: Training = Training()

    @property
    def grad_clip(self) -> float | None:
        """The default ``--grad-clip`` (``training.grad_clip``)."""
        return self.training.grad_clip


def _mlp(task: Task, options: dict):
    from .model import mlp

    features = int(np.prod(task.sample_shape))
    hidden = options["hidden"]
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
    hidden = options["hidden"]
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

        hidden = options["hidden"]
        if len(hidden) != 1:
            raise ValueError(f"--model seq2seq takes one --hidden size, got {len(hidden)}")
        (x, t), _ = task.train, task.test
        model = Seq2seq(task.vocab, x.shape[1], t.shape[1], embed=options["embed"], hidden=hidden[0],
                        peeky=options.get("peeky", False), attention=attention,
                        reverse_input=options["reverse_input"], seed=options["seed"])
        return model, model.describe()
    return build


def _gpt(task: Task, options: dict):
    from .model import GPT

    model = GPT(task.num_classes, options["block_size"], options["n_layer"], options["n_head"], options["n_embd"],
                dropout=options["dropout"], bias=not options["no_bias"], seed=options["seed"], vocab=task.vocab)
    return model, model.describe()


def _makemore(name: str):
    def build(task: Task, options: dict):
        from .model.makemore import MAKEMORE_MODELS

        builder, examples = MAKEMORE_MODELS[name]
        sizes = {"block_size": options["block_size"]} if examples == "contexts" else {}
        block = options.get("block_size") or 0
        if name == "wavenet" and (block < 2 or block & (block - 1)):
            raise ValueError(f"--block-size {block}: wavenet fuses two groups of characters at each stage, so its "
                             "context must be a power of 2 (2, 4, 8, 16, ...)")
        if name == "transformer":
            sizes = {"block_size": task.vocab.block_size, "n_layer": options["n_layer"], "n_head": options["n_head"],
                     "n_embd": options["n_embd"]}
        elif name != "bigram":
            if len(options["hidden"]) != 1:
                raise ValueError(f"--model {name} takes one --hidden size, got {len(options['hidden'])}")
            hidden = "n_hidden" if examples == "contexts" else "n_embd2"  # makemore.py's name for it
            sizes |= {"n_embd": options["n_embd"], hidden: options["hidden"][0]}
            if name in ("mlp-words", "bow"):  # makemore.py's: as many positions as the longest word + 1
                sizes["block_size"] = task.vocab.block_size
        model = builder(task.num_classes, seed=options["seed"], **sizes)
        if name == "transformer":  # id 0, the start and end of a word, reads as a line break
            from .data.text import CharVocab

            model.vocab = CharVocab("\n" + task.vocab.chars)
            return model, model.describe()
        context = f", context of {options['block_size']}" if examples == "contexts" else ""
        return model, f"{name} ({sum(p.size for p in model.params.values()):,} parameters{context})"
    return build


_MLP_OPTIONS = frozenset({"hidden", "activation", "init", "seed", "batchnorm", "dropout", "weight_decay_l2"})
_CONV_OPTIONS = frozenset({"init", "seed", "weight_decay_l2"})
_SEQ2SEQ_OPTIONS = frozenset({"hidden", "embed", "reverse_input", "seed"})

MODELS = {entry.name: entry for entry in (
    ModelEntry("mlp", "a multilayer perceptron (--hidden, --activation, --batchnorm, --dropout); on words, "
               "makemore's MLP (mlp-words)",
               ("images", "signals"), _mlp, _MLP_OPTIONS, {"hidden": [100]}),
    ModelEntry("cnn", "the book's SimpleConvNet", ("images",), _convnet("cnn"), _CONV_OPTIONS, training=SPLIT_BATCH),
    ModelEntry("deep-cnn", "the book's DeepConvNet", ("images",), _convnet("deep-cnn"), _CONV_OPTIONS,
               training=SPLIT_BATCH),
    ModelEntry("lstm", "an LSTM reading each image row by row (or a signal value by value), then Affine",
               ("images", "signals"), _lstm, frozenset({"hidden", "seed"}), {"hidden": [128]}),
    ModelEntry("seq2seq", "the second book's seq2seq: LSTM encoder and decoder (--peeky, --reverse-input)",
               ("seq2seq",), _seq2seq(False), _SEQ2SEQ_OPTIONS | {"peeky"}, {"hidden": [128], "embed": 16},
               BOOK_SEQ2SEQ),
    ModelEntry("seq2seq-attention", "seq2seq with the second book's attention over the encoder's states",
               ("seq2seq",), _seq2seq(True), _SEQ2SEQ_OPTIONS, {"hidden": [256], "embed": 16}, BOOK_SEQ2SEQ),
    ModelEntry("gpt", "nanoGPT's model, every backward by hand (--n-layer, --n-head, --n-embd, --block-size)",
               ("text",), _gpt, frozenset({"n_layer", "n_head", "n_embd", "block_size", "dropout", "no_bias", "seed"}),
               {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64}, NANOGPT),
    ModelEntry("bigram", "makemore's bigram: a table of next-character logits", ("words",), _makemore("bigram"),
               frozenset({"seed"}), training=MAKEMORE),
    ModelEntry("mlp-words", "makemore's MLP (Bengio et al. 2003): at each position the last characters' embeddings "
               "side by side (--n-embd, --hidden)", ("words",), _makemore("mlp-words"),
               frozenset({"n_embd", "hidden", "seed"}), {"n_embd": 64, "hidden": [64]}, MAKEMORE),
    ModelEntry("bow", "makemore's BoW: each position adds the mean of the positions so far, then an MLP "
               "(--n-embd, --hidden)", ("words",), _makemore("bow"), frozenset({"n_embd", "hidden", "seed"}),
               {"n_embd": 64, "hidden": [64]}, MAKEMORE),
    ModelEntry("mlp-bn", "Zero to Hero part 3: an MLP over the last --block-size characters, with BatchNorm",
               ("words",), _makemore("mlp-bn"), frozenset({"block_size", "n_embd", "hidden", "seed"}),
               {"block_size": 3, "n_embd": 10, "hidden": [200]}, ZERO_TO_HERO),
    ModelEntry("wavenet", "Zero to Hero part 5: characters fused two by two (FlattenConsecutive, BatchNorm)",
               ("words",), _makemore("wavenet"), frozenset({"block_size", "n_embd", "hidden", "seed"}),
               {"block_size": 8, "n_embd": 24, "hidden": [128]}, ZERO_TO_HERO),
    ModelEntry("rnn", "makemore's RNN: characters read in order by a tanh RNN (--n-embd, --hidden)", ("words",),
               _makemore("rnn"), frozenset({"n_embd", "hidden", "seed"}), {"n_embd": 64, "hidden": [64]}, MAKEMORE),
    ModelEntry("gru", "makemore's GRU (--n-embd, --hidden)", ("words",), _makemore("gru"),
               frozenset({"n_embd", "hidden", "seed"}), {"n_embd": 64, "hidden": [64]}, MAKEMORE),
    ModelEntry("transformer", "makemore's Transformer (a GPT over whole words)", ("words",), _makemore("transformer"),
               frozenset({"n_layer", "n_head", "n_embd", "seed"}), {"n_layer": 4, "n_head": 4, "n_embd": 64},
               MAKEMORE),
)}


#: A model name that means another model on one kind of data: on words (``--dataset names``,
#: ``--data-file``) ``--model mlp`` is makemore.py's MLP (``mlp-words``), as makemore names it;
#: on images and signals it is handgrad's multilayer perceptron.
MODEL_FOR_KIND = {("mlp", "words"): "mlp-words"}


def model_for(name: str, kind: str) -> str:
    """The model ``--model name`` means on data of ``kind`` (see :data:`MODEL_FOR_KIND`)."""
    return MODEL_FOR_KIND.get((name, kind), name)


def model_options(name: str, dataset: str | None = None, options: dict | None = None) -> dict:
    """Every option model ``name`` reads (and ``seed``), resolved: ``options`` where given (not
    None), else the settings tuned for it on ``dataset``, else its defaults; seed 0."""
    if dataset in DATASETS:
        name = model_for(name, DATASETS[dataset].kind)
    entry = _entry(MODELS, name, "model")
    tuned = DATASETS[dataset].tuned.get(name, {}) if dataset in DATASETS else {}
    resolved = {}
    for option in sorted(entry.options - {"seed"}, key=MODEL_OPTIONS.index):
        default = tuned.get(option, entry.defaults.get(option, OPTION_DEFAULTS.get(option)))
        given = (options or {}).get(option)
        resolved[option] = given if given is not None else default
    seed = (options or {}).get("seed")
    return resolved | {"seed": 0 if seed is None else seed}


def build_model(name: str, task: Task, options: dict):
    """``(model, description)`` of the model ``name`` for ``task``, with ``options`` (missing or
    None ones take their defaults, :func:`model_options`); refuses a model that cannot learn
    this kind of data, naming what would."""
    name = model_for(name, task.kind)
    entry = _entry(MODELS, name, "model")
    if task.kind not in entry.kinds:
        fitting = [m.name for m in MODELS.values() if task.kind in m.kinds]
        raise ValueError(f"--model {name} cannot learn {task.name} ({task.kind}); use --model {' or '.join(fitting)}")
    return entry.build(task, model_options(name, task.name, options))


def _entry(table: dict, name: str, what: str):
    if name not in table:
        raise ValueError(f"unknown {what} {name!r}; choose from {', '.join(table)}")
    return table[name]


# --- the resolved recipe ----------------------------------------------------------------------------


#: The options of training by steps only (``max_steps`` also stops a run by epochs).
STEP_OPTIONS = ("eval_interval", "eval_iters", "warmup", "min_lr")
_SCHEDULES = ("constant", "cosine")  # by epochs; by steps, always "warmup-cosine"
_TRAINING_OPTIONS = ("epochs", "batch_size", "optimizer", "lr", "beta2", "weight_decay", "grad_clip", "schedule",
                     "max_steps", "seed", "augment", "threads") + STEP_OPTIONS


@dataclass(frozen=True)
class Recipe:
    """Everything ``handgrad train --model MODEL --dataset DATASET`` trains with, every default
    resolved (:func:`recipe`). ``epochs`` is None for a dataset trained by steps; ``schedule``
    is ``"constant"``, ``"cosine"`` (annealed to 0 over the epochs), ``"warmup-cosine"``
    (by steps: ``warmup``, then down to ``min_lr`` at ``max_steps``) or ``"step"`` (by steps:
    ``lr``, then ``min_lr`` from 3/4 of ``max_steps`` on); ``eval_interval``,
    ``eval_iters``, ``warmup`` and ``min_lr`` are None when training by epochs; ``betas`` is
    None for an optimizer without them; ``model_options``: :func:`model_options`."""

    model: str
    dataset: str
    epochs: int | None
    batch_size: int
    optimizer: str
    lr: float
    betas: tuple | None
    weight_decay: float
    decay_matrices_only: bool
    schedule: str
    grad_clip: float | None
    max_steps: int | None
    warmup: int | None
    min_lr: float | None
    eval_interval: int | None
    eval_iters: int | None
    seed: int
    model_options: dict = field(hash=False)
    augment: str | None = None
    threads: int = 1

    @property
    def by_steps(self) -> bool:
        return self.epochs is None

    def make_optimizer(self):
        """The optimizer, as :data:`handgrad.optim.OPTIMIZERS` builds it with these settings."""
        from .optim import OPTIMIZERS

        extra = {"betas": self.betas} if self.betas is not None else {}
        if self.decay_matrices_only:
            extra["matrices_only"] = True
        return OPTIMIZERS[self.optimizer](lr=self.lr, weight_decay=self.weight_decay, **extra)

    def make_schedule(self):
        """The learning rate's schedule (None: constant): ``lr_at(epoch)`` for ``fit``'s
        ``schedule=``, or ``lr_at(step)`` for ``fit_lm``'s. A run shorter than the warmup
        warms up all along."""
        from .optim import CosineAnnealingLR, StepLR, WarmupCosineLR

        if self.schedule == "warmup-cosine":
            return WarmupCosineLR(self.lr, min(self.warmup, self.max_steps), max(self.max_steps, 1), self.min_lr)
        if self.schedule == "step":  # Zero to Hero: 0.1, then 0.01 from step 150k of 200k
            return StepLR(self.lr, max(self.max_steps * 3 // 4, 1), self.min_lr / self.lr if self.lr else 1.0)
        return CosineAnnealingLR(self.lr, self.epochs) if self.schedule == "cosine" else None

    def make_augment(self):
        """The training batches' augmentation ``(xb, rng) -> xb`` for ``fit``'s ``augment=``,
        or None."""
        return None if self.augment is None else AUGMENTATIONS[self.augment][0]

    def to_dict(self) -> dict:
        return asdict(self)


def _optimizer_betas(name: str):
    """The ``betas`` that optimizer ``name`` takes by default, or None if it has none."""
    from .optim import OPTIMIZERS

    parameter = inspect.signature(OPTIMIZERS[name]).parameters.get("betas")
    return None if parameter is None else tuple(parameter.default)


def _default_threads(training: Training, tuned: dict) -> int:
    """``HANDGRAD_THREADS`` where set, else the setting tuned for the model on the dataset, else
    the model's own, on no more threads than the machine has cores, and on one where
    threadpoolctl (each thread's one BLAS thread) is missing."""
    import os

    from .threads import blas_libraries, threads_setting

    if os.environ.get("HANDGRAD_THREADS", "").strip():
        return threads_setting()
    threads = max(1, min(tuned.get("threads", training.threads), os.cpu_count() or 1))
    if threads > 1:
        try:
            blas_libraries()
        except ImportError:
            return 1
    return threads


def _check_settings(entry: ModelEntry, data: DatasetEntry, given: dict) -> None:
    """Refuse, in the CLI's words, settings that do not fit this model on this dataset."""
    augment = given.get("augment")
    if augment not in (None, "none"):
        if augment not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation {augment!r}; choose from none, {', '.join(AUGMENTATIONS)}")
        fits = AUGMENTATIONS[augment][1]
        if data.name not in fits:
            raise ValueError(f"--augment {augment} applies to --dataset {'/'.join(fits)}, not {data.name}")
    if data.by_steps and "epochs" in given:
        raise ValueError(f"--dataset {data.name} trains by steps: give --max-steps, not --epochs")
    if not data.by_steps:
        flags = [_flag(option) for option in STEP_OPTIONS if option in given]
        if flags:
            stepped = " or ".join(d.name for d in DATASETS.values() if d.by_steps)
            raise ValueError(f"{' and '.join(flags)} appl{'ies' if len(flags) == 1 else 'y'} to training a language "
                             f"model by steps (--dataset {stepped})")
    if data.kind not in entry.kinds:
        fitting = [m.name for m in MODELS.values() if data.kind in m.kinds]
        raise ValueError(f"--model {entry.name} cannot learn {data.name} ({data.kind}); use --model "
                         + " or ".join(fitting))
    ignored = [option for option in MODEL_OPTIONS if option not in entry.options and option in given]
    if ignored:
        readers = [m for m in MODELS.values() if all(option in m.options for option in ignored)]
        users = [m.name for m in readers if data.kind in m.kinds] or [m.name for m in readers]
        raise ValueError(f"{' and '.join(map(_flag, ignored))} appl{'ies' if len(ignored) == 1 else 'y'} to "
                         + (f"--model {' or '.join(users)}" if users else "no one model") + f", not {entry.name}"
                         + "".join(f" (what --model {name} means on {kind})" for (name, kind), meant in MODEL_FOR_KIND.items()
                                   if meant == entry.name and kind == data.kind))


def _flag(option: str) -> str:
    return "--" + option.replace("_", "-")


def default_model(dataset: str) -> str:
    """The model ``handgrad train --dataset DATASET`` trains when no ``--model`` is given."""
    return _entry(DATASETS, dataset, "dataset").model or DEFAULT_MODEL


def recipe(model: str = DEFAULT_MODEL, dataset: str = DEFAULT_DATASET, **overrides) -> Recipe:
    """The :class:`Recipe` that ``handgrad train --model MODEL --dataset DATASET`` runs.

    ``overrides``: the options of ``handgrad train`` by their names (``epochs``, ``batch_size``,
    ``optimizer``, ``lr``, ``beta2``, ``weight_decay``, ``grad_clip``, ``schedule``,
    ``augment`` (``"none"`` for none), ``max_steps``, ``warmup``, ``min_lr``, ``eval_interval``,
    ``eval_iters``, ``seed``, ``threads``) and the
    model options (``hidden``, ``dropout``, ``n_layer``, ...); None, or a model option's
    default, means not given. Settings that do not fit raise ValueError in the CLI's words
    (a model option the model does not read, ``epochs`` for a dataset trained by steps, ...).
    """
    unknown = sorted(set(overrides) - set(_TRAINING_OPTIONS) - set(MODEL_OPTIONS))
    if unknown:
        raise TypeError(f"recipe() got an unexpected keyword argument {unknown[0]!r}")
    data = _entry(DATASETS, dataset, "dataset")
    model = model_for(model, data.kind)
    entry = _entry(MODELS, model, "model")
    given = {k: v for k, v in overrides.items() if v is not None and not (k in OPTION_DEFAULTS and v == OPTION_DEFAULTS[k])}
    _check_settings(entry, data, given)
    tuned = data.tuned.get(model, {})
    training = entry.training
    optimizer = given.get("optimizer", training.optimizer)
    if optimizer not in LEARNING_RATES:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose from {', '.join(LEARNING_RATES)}")
    tuned_lr = tuned.get("lr") if optimizer == training.optimizer else None
    lr = given.get("lr", tuned_lr if tuned_lr is not None else LEARNING_RATES[optimizer])
    betas = training.betas if optimizer == training.optimizer and training.betas else _optimizer_betas(optimizer)
    if "beta2" in given:
        if betas is None:
            takers = [name for name in LEARNING_RATES if _optimizer_betas(name) is not None]
            raise ValueError(f"--beta2 applies to --optimizer {' or '.join(takers)}, not {optimizer}")
        betas = (betas[0], given["beta2"])
    common = {"model": model, "dataset": dataset, "optimizer": optimizer, "lr": lr, "betas": betas,
              "batch_size": given.get("batch_size", tuned.get("batch_size", data.batch_size)),
              "weight_decay": given.get("weight_decay", training.weight_decay),
              "decay_matrices_only": training.decay_matrices_only,
              "grad_clip": given.get("grad_clip", training.grad_clip), "seed": given.get("seed", 0),
              "augment": None if given.get("augment", tuned.get("augment")) == "none"
              else given.get("augment", tuned.get("augment")),
              "model_options": model_options(model, dataset, overrides),
              "threads": given.get("threads", _default_threads(training, tuned))}
    if not data.by_steps:
        if given.get("schedule", "constant") not in _SCHEDULES:
            raise ValueError(f"unknown schedule {given['schedule']!r} for training by epochs; choose from "
                             + ", ".join(_SCHEDULES))
        return Recipe(epochs=given.get("epochs", tuned.get("epochs", data.epochs)), schedule=given.get("schedule", "constant"),
                      max_steps=given.get("max_steps"), warmup=None, min_lr=None, eval_interval=None, eval_iters=None,
                      **common)
    steps = training.steps
    if optimizer != training.optimizer:
        raise ValueError(f"--dataset {dataset} trains with {training.optimizer} ({steps.origin}'s); "
                         f"--optimizer {optimizer} is not offered here")
    described = {"warmup-cosine": "a warmup then a cosine decay", "step": "one step down at 3/4 of the run",
                 "constant": "a constant learning rate"}[steps.schedule]
    if given.get("schedule", steps.schedule) != steps.schedule:
        raise ValueError(f"--model {model} trains by steps with {described} ({steps.origin}'s); "
                         f"--schedule {given['schedule']} is not offered here")
    if steps.schedule != "warmup-cosine" and "warmup" in given:
        raise ValueError(f"--warmup applies to a warmup then a cosine decay; --model {model} trains with {described}")
    min_lr = given.get("min_lr", lr / steps.min_lr_divisor)
    if not 0 <= min_lr <= lr:
        raise ValueError(f"--min-lr must lie between 0 and the learning rate {lr:g}, got {min_lr:g}")
    return Recipe(epochs=None, schedule=steps.schedule, max_steps=given.get("max_steps", steps.max_steps),
                  warmup=given.get("warmup", steps.warmup), min_lr=min_lr,
                  eval_interval=given.get("eval_interval", steps.eval_interval),
                  eval_iters=given.get("eval_iters", steps.eval_iters), **common)
