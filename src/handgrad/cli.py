"""The ``handgrad`` command (also ``python -m handgrad``).

Commands: ``train`` (the main job), ``evaluate``, ``predict``, ``export``, ``walkthrough``, ... Wrong arguments
or inputs end with a one-line error and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from . import __version__, _mpi_env

class CommandError(Exception):
    """An error to report in one line (exit status 1)."""


# --- train ---------------------------------------------------------------------------------------


#: Model options of `handgrad train` (argparse dest -> flag), each read only by some models.
MODEL_OPTIONS = {"hidden": "--hidden", "activation": "--activation", "batchnorm": "--batchnorm",
                 "dropout": "--dropout", "init": "--init", "weight_decay_l2": "--weight-decay-l2",
                 "embed": "--embed", "peeky": "--peeky", "reverse_input": "--reverse-input",
                 "n_layer": "--n-layer", "n_head": "--n-head", "n_embd": "--n-embd", "block_size": "--block-size",
                 "no_bias": "--no-bias"}

#: Options of training by steps (language models), as nanoGPT's train.py: dest -> (flag, default).
LM_OPTIONS = {"eval_interval": ("--eval-interval", 250), "eval_iters": ("--eval-iters", 200),
              "warmup": ("--warmup", 100), "min_lr": ("--min-lr", None)}


def _model_options(args: argparse.Namespace, parser_defaults: dict) -> dict:
    """The model options, refusing one the chosen model does not read (it would be ignored)."""
    from .registry import DATASETS, MODELS

    entry = MODELS[args.model]
    kind = DATASETS[args.dataset].kind
    if kind not in entry.kinds:
        fitting = [m.name for m in MODELS.values() if kind in m.kinds]
        raise CommandError(f"--model {args.model} cannot learn {args.dataset} ({kind}); use --model "
                           + " or ".join(fitting))
    ignored = [flag for dest, flag in MODEL_OPTIONS.items()
               if dest not in entry.options and getattr(args, dest) != parser_defaults[dest]]
    if ignored:
        readers = [m for m in MODELS.values() if all(d in m.options for d, f in MODEL_OPTIONS.items() if f in ignored)]
        users = [m.name for m in readers if kind in m.kinds] or [m.name for m in readers]
        raise CommandError(f"{' and '.join(ignored)} appl{'ies' if len(ignored) == 1 else 'y'} to "
                           + (f"--model {' or '.join(users)}" if users else "no one model") + f", not {args.model}")
    return {dest: getattr(args, dest) for dest in MODEL_OPTIONS} | {"seed": args.seed}


def _train(args: argparse.Namespace) -> int:
    from .registry import DATASETS

    dataset = DATASETS[args.dataset]
    language_model = dataset.kind == "text"
    if language_model and args.epochs is not None:
        raise CommandError(f"--dataset {args.dataset} trains by steps: give --max-steps, not --epochs")
    if not language_model:
        given = [flag for dest, (flag, _) in LM_OPTIONS.items() if getattr(args, dest) is not None]
        if given:
            raise CommandError(f"{' and '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to training a language "
                               "model by steps (--dataset shakespeare)")
    tuned = dataset.mlp if args.model == "mlp" else {}  # the first run's defaults (registry.DIGITS_MLP)
    epochs = args.epochs if args.epochs is not None else tuned.get("epochs", dataset.epochs)
    batch_size = args.batch_size if args.batch_size is not None else dataset.batch_size
    options = _model_options(args, args.defaults)
    plot = _plot_module() if args.plot else None  # a missing matplotlib is said now, not after training
    out = Path(args.out)
    checkpoint = out / "checkpoint.safetensors"
    # Under `mpiexec -n K`: every rank trains its share of each batch; rank 0 alone prints and
    # writes into --out (the others' output goes nowhere, and they need not see --out).
    comm = _mpi_world()
    rank = comm.rank if comm is not None else 0
    if args.resume and not rank and not checkpoint.is_file():
        raise CommandError(f"--resume: no checkpoint at {checkpoint} (write one with --checkpoint-every)")
    with contextlib.ExitStack() as stack:
        if rank:
            stack.enter_context(contextlib.redirect_stdout(stack.enter_context(open(os.devnull, "w"))))
        else:
            stack.enter_context(_claim_output_folder(out, ["model.safetensors", "history.json",
                                                           "checkpoint.safetensors"] + (["curves.png"] if args.plot else [])))
        if comm is not None:
            print(f"data-parallel training on {comm.size} MPI processes: each batch is split into {comm.size} shards")
        if language_model:
            return _train_language_model(out, args, batch_size, options, plot)
        return _train_into(out, args, epochs, batch_size, plot, options, adam_lr=tuned.get("lr", 1e-3))


def _train_language_model(out: Path, args: argparse.Namespace, batch_size: int, options: dict, plot) -> int:
    """nanoGPT's train.py: AdamW (decay on matrices only), warmup then cosine decay, clipping,
    evaluation every --eval-interval steps; ends with the line ``val loss: X``."""
    import handgrad as hg
    from .registry import MODELS, build_model, load_task

    lm = {dest: (getattr(args, dest) if getattr(args, dest) is not None else default)
          for dest, (_, default) in LM_OPTIONS.items()}
    task = load_task(args.dataset, args.data_dir)
    shortest = min(len(task.train[0]), len(task.test[0]))
    if (args.block_size or 0) > shortest:  # say so before building a model that size
        raise CommandError(f"--block-size {args.block_size} is longer than the validation text ({shortest:,} tokens)")
    model, description = build_model(args.model, task, options)
    max_steps = args.max_steps if args.max_steps is not None else 2000
    lr = args.lr if args.lr is not None else 1e-3
    min_lr = lm["min_lr"] if lm["min_lr"] is not None else lr / 10
    if args.optimizer not in (None, "adamw"):
        raise CommandError(f"--dataset {args.dataset} trains with adamw (nanoGPT's); --optimizer {args.optimizer} "
                           "is not offered here")
    optimizer = hg.optim.AdamW(lr=lr, betas=(0.9, args.beta2 if args.beta2 is not None else 0.99),
                               weight_decay=args.weight_decay if args.weight_decay is not None else 0.1,
                               matrices_only=True)
    if not 0 <= min_lr <= lr:
        raise CommandError(f"--min-lr must lie between 0 and the learning rate {lr:g}, got {min_lr:g}")
    warmup = min(lm["warmup"], max_steps)  # a run shorter than the warmup warms up all along
    schedule = hg.optim.WarmupCosineLR(lr, warmup, max(max_steps, 1), min_lr)
    grad_clip = args.grad_clip if args.grad_clip is not None else MODELS[args.model].grad_clip
    block_size = model.block_size
    print(f"dataset {args.dataset}: {len(task.train[0]):,} train, {len(task.test[0]):,} val tokens; model {description}; "
          f"adamw lr {lr:g} -> {min_lr:g} (warmup {warmup}), {max_steps} steps of {batch_size} x {block_size} tokens")

    def log(record):
        speed = f", {record['tokens_per_second']:,.0f} tokens/s" if record["tokens_per_second"] else ""
        print(f"step {record['step']:5d}: train loss {record['train_loss']:.4f}, val loss {record['val_loss']:.4f}  "
              f"(lr {record['lr']:.2e}{speed})", flush=True)

    checkpoint = out / "checkpoint.safetensors"
    history = hg.train.fit_lm(model, optimizer, task.train, task.test, block_size=block_size, batch_size=batch_size,
                              max_steps=max_steps, eval_interval=lm["eval_interval"], eval_iters=lm["eval_iters"],
                              schedule=schedule, grad_clip=grad_clip, seed=args.seed,
                              checkpoint=checkpoint if (args.checkpoint_every or args.resume) else None,
                              resume=args.resume, log=log, distributed=_mpi_world() is not None)
    if _mpi_world() is not None and _mpi_world().rank:  # rank 0 alone writes
        return 0
    if (out / "model.safetensors").is_file() and not args.resume:
        print(f"replacing the model of an earlier run in {out}")
    hg.save(model, out / "model.safetensors", metadata={"dataset": args.dataset})
    from .serialize import atomic_write_bytes

    arguments = {k: v for k, v in vars(args).items() if k not in ("handler", "defaults")}
    arguments.update({**lm, "batch_size": batch_size, "lr": lr, "max_steps": max_steps, "min_lr": min_lr,
                      "grad_clip": grad_clip})
    summary = {"dataset": args.dataset, "val_loss": history["val_loss"][-1], **history.to_dict(), "arguments": arguments}
    atomic_write_bytes(out / "history.json", [json.dumps(summary, indent=2, default=str).encode()])
    print(f"wrote {out / 'model.safetensors'} and {out / 'history.json'}")
    if plot is not None:
        print(f"wrote {plot.lm_curves(history, out / 'curves.png')}")
    print(f"val loss: {history['val_loss'][-1]:.4f}")
    return 0


def _train_into(out: Path, args: argparse.Namespace, epochs: int, batch_size: int, plot, options: dict,
                adam_lr: float = 1e-3) -> int:
    import handgrad as hg
    from .registry import MODELS, build_model, load_task

    checkpoint = out / "checkpoint.safetensors"
    task = load_task(args.dataset, args.data_dir)
    (x_train, t_train), (x_test, t_test) = task.train, task.test

    val, val_name = (x_test, t_test), "test"
    if args.val_split:
        # Hold out the end of a fixed permutation of the training set for validation.
        order = np.random.default_rng(args.seed).permutation(len(x_train))
        n_val = int(round(args.val_split * len(x_train)))
        if not 1 <= n_val < len(x_train):
            raise CommandError(f"--val-split {args.val_split:g} holds out {n_val} of {len(x_train)} training samples; "
                               f"it must leave at least one sample on each side (at least {1 / len(x_train):.2g})")
        val = (x_train[order[:n_val]], t_train[order[:n_val]])
        x_train, t_train = x_train[order[n_val:]], t_train[order[n_val:]]
        val_name = "val"
    elif args.early_stopping:
        raise CommandError("--early-stopping needs --val-split (stopping on the test set would leak it)")

    model, description = build_model(args.model, task, options)
    grad_clip = args.grad_clip if args.grad_clip is not None else MODELS[args.model].grad_clip
    name = args.optimizer or "adam"
    lr = args.lr if args.lr is not None else (0.1 if name in ("sgd", "momentum", "nesterov") else
                                              0.01 if name == "adagrad" else
                                              adam_lr if name == "adam" else 1e-3)
    extra = {"betas": (0.9, args.beta2)} if args.beta2 is not None else {}
    if extra and name not in ("adam", "adamw"):
        raise CommandError(f"--beta2 applies to --optimizer adam or adamw, not {name}")
    optimizer = hg.optim.OPTIMIZERS[name](lr=lr, weight_decay=args.weight_decay or 0.0, **extra)
    scheduler = hg.optim.CosineAnnealingLR(optimizer, epochs) if args.schedule == "cosine" else None
    print(f"dataset {args.dataset}: {len(x_train)} train, {len(val[0])} {val_name} samples; model {description}; "
          f"{name} lr {lr:g}; {epochs} epoch{'' if epochs == 1 else 's'} of batch {batch_size}")

    def log(record):
        print(f"epoch {record['epoch']:3d}  loss {record['train_loss']:.4f}  train acc {record['train_accuracy']:.4f}  "
              f"{val_name} loss {record['val_loss']:.4f}  {val_name} acc {record['val_accuracy']:.4f}  "
              f"({record['seconds']:.2f} s)", flush=True)

    history = hg.fit(model, optimizer, (x_train, t_train), val=val, epochs=epochs, batch_size=batch_size,
                     seed=args.seed, early_stopping=args.early_stopping, scheduler=scheduler, grad_clip=grad_clip,
                     checkpoint=checkpoint if (args.checkpoint_every or args.resume) else None,
                     checkpoint_every=args.checkpoint_every, resume=args.resume, max_steps=args.max_steps, log=log,
                     distributed=_mpi_world() is not None)
    if _mpi_world() is not None and _mpi_world().rank:  # rank 0 alone evaluates and writes
        return 0
    test_accuracy = hg.train.evaluate(model, x_test, t_test)[1]
    if (out / "model.safetensors").is_file() and not args.resume:
        print(f"replacing the model of an earlier run in {out}")
    hg.save(model, out / "model.safetensors", metadata={"dataset": args.dataset})
    from .serialize import atomic_write_bytes

    # The settings as used (defaults resolved), so that history.json says what really ran.
    arguments = {k: v for k, v in vars(args).items() if k not in ("handler", "defaults")}
    arguments.update(epochs=epochs, batch_size=batch_size, lr=lr)
    summary = {"dataset": args.dataset, "test_accuracy": test_accuracy, **history.to_dict(), "arguments": arguments}
    atomic_write_bytes(out / "history.json", [json.dumps(summary, indent=2, default=str).encode()])
    if history.best_epoch is not None:
        print(f"early stopping: restored the weights of epoch {history.best_epoch}")
    print(f"wrote {out / 'model.safetensors'} and {out / 'history.json'}")
    if plot is not None:
        print(f"wrote {plot.training_curves(history, out / 'curves.png', val_label=val_name)}")
    print(f"test accuracy: {test_accuracy:.4f}")
    return 0


def _mpi_world():
    """``MPI.COMM_WORLD`` when ``mpiexec -n K`` (K > 1) started this process, else None."""
    from . import distributed

    if not distributed.launched_by_mpi():
        return None
    try:
        return distributed.world()
    except ImportError as error:
        raise CommandError(str(error)) from error


class _OutputLock:
    """An exclusive lock on an output folder for the life of a run (``flock``: the system drops it
    when the process ends, even after ``kill -9``, so a crashed run never leaves a stale lock).
    A folder this run created and left empty (it failed before writing anything) is removed."""

    NAME = ".handgrad.lock"

    def __init__(self, folder: Path, created: bool) -> None:
        self.folder, self.created, self.handle = folder, created, None
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; runs there are not protected from each other
            return
        self.handle = open(folder / self.NAME, "a")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.close()
            raise CommandError(f"--out {folder}: another handgrad run is writing there now; wait for it to finish "
                               "or choose another --out") from None

    def __enter__(self) -> "_OutputLock":
        return self

    def __exit__(self, *exc_info) -> None:
        if self.handle is not None:
            self.handle.close()  # closing drops the lock
        if self.created and [p.name for p in self.folder.iterdir()] in ([], [self.NAME]):
            (self.folder / self.NAME).unlink(missing_ok=True)
            self.folder.rmdir()


def _claim_output_folder(out: Path, files: list[str]) -> _OutputLock:
    """Check before training that ``out`` can take the run's files, then lock it: a run must not
    be lost at its end to a folder that is a file, a file that is a folder, or no permission."""
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {out} is a file, not a folder")
    for name in files:
        if (out / name).is_dir():
            raise CommandError(f"--out {out}: {out / name} is a folder; the run needs to write a file there")
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        import tempfile

        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        raise CommandError(f"--out {out}: cannot write there ({error.strerror or error})") from error
    return _OutputLock(out, created)


# --- evaluate and predict ------------------------------------------------------------------------


def _load_model(path):
    from .serialize import load

    if Path(path).is_dir():
        hint = Path(path) / "model.safetensors"
        raise CommandError(f"{path} is a folder, not a model file" + (f" (did you mean {hint}?)" if hint.is_file() else ""))
    return load(path)


def _check_fits(model, features: int, what: str) -> None:
    if model.input_size is not None and model.input_size != features:
        raise CommandError(f"the model takes {model.input_size} features per sample, {what} has {features}")


def _as_model_input(model, x: np.ndarray) -> np.ndarray:
    """Rows of features, reshaped to the model's sample shape (images for ConvNets)."""
    x = x.reshape(len(x), -1)
    return x.reshape((len(x),) + model.input_shape) if model.input_shape else x


def _dataset_of(args: argparse.Namespace) -> str:
    """--dataset, else the dataset the model file records, else the embedded digits."""
    from .serialize import read_metadata

    return args.dataset or read_metadata(args.model).get("dataset") or "digits"


def _in_model_vocabulary(ids: np.ndarray, data_vocab, model_vocab, dataset: str) -> np.ndarray:
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


def _evaluate_seq2seq(model, args: argparse.Namespace, dataset: str) -> int:
    from .data import load_seq2seq

    _, (x_test, t_test), data_vocab = load_seq2seq(dataset, data_dir=args.data_dir)
    if x_test.shape[1] != model.question_length or t_test.shape[1] != model.answer_length:
        raise CommandError(f"the model was trained on other text than {dataset}: it takes questions of "
                           f"{model.question_length} and answers of {model.answer_length} characters, {dataset} has "
                           f"{x_test.shape[1]} and {t_test.shape[1]}")
    # The model's own ids: a vocabulary in another order must not be read with the dataset's.
    x_test, t_test = (_in_model_vocabulary(ids, data_vocab, model.vocab, dataset) for ids in (x_test, t_test))
    vocab = model.vocab
    answers = np.concatenate([model.generate(x_test[i:i + 1000]) for i in range(0, len(x_test), 1000)])
    right = np.all(answers == t_test, axis=1)
    print(f"{dataset} test set, {len(t_test)} questions")
    print(f"exact answers: {right.mean():.4f}  ({int(right.sum())}/{len(right)})")
    print("examples (question -> answer, expected), the first five and the first five wrong ones:")
    for i in dict.fromkeys(list(range(5)) + list(np.flatnonzero(~right)[:5])):
        mark = "ok" if right[i] else "WRONG"
        print(f"  {vocab.decode(x_test[i]).strip()!r} -> {vocab.decode(answers[i, 1:]).strip()!r}, "
              f"expected {vocab.decode(t_test[i, 1:]).strip()!r}  {mark}")
    return 0


def _evaluate_language_model(model, args: argparse.Namespace, dataset: str) -> int:
    """A GPT's loss on both splits, as nanoGPT's estimate_loss: 200 random batches of 12."""
    from .data import load_shakespeare
    from .train import estimate_loss

    if dataset != "shakespeare":
        raise CommandError(f"a language model is evaluated on text (shakespeare), not {dataset}")
    if model.vocab is None:
        raise CommandError(f"{args.model}: the model has no vocabulary saved with it, so the text cannot be encoded")
    train_ids, val_ids, data_vocab = load_shakespeare(args.data_dir)
    # Encoded with the model's vocabulary (the same characters in another order are other ids).
    train_ids, val_ids = (_in_model_vocabulary(ids, data_vocab, model.vocab, dataset) for ids in (train_ids, val_ids))
    (x, t), (x_val, t_val) = (train_ids[:-1], train_ids[1:]), (val_ids[:-1], val_ids[1:])
    rng = np.random.default_rng(0)
    train_loss = estimate_loss(model, x, t, model.block_size, 12, 200, rng)
    val_loss = estimate_loss(model, x_val, t_val, model.block_size, 12, 200, rng)
    print(f"{dataset}, 200 random batches of 12 x {model.block_size} characters per split (seed 0)")
    print(f"train loss: {train_loss:.4f}\nval loss: {val_loss:.4f}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .data import SEQ2SEQ_DATASETS, load_dataset
    from .model import Seq2seq
    from .train import confusion_matrix

    from .model import GPT

    model = _load_model(args.model)
    dataset = _dataset_of(args)
    if isinstance(model, GPT):
        return _evaluate_language_model(model, args, dataset)
    if isinstance(model, Seq2seq) != (dataset in SEQ2SEQ_DATASETS):
        raise CommandError(f"a {type(model).__name__} model cannot be evaluated on {dataset}")
    if isinstance(model, Seq2seq):
        return _evaluate_seq2seq(model, args, dataset)
    _require_classifier(model, "handgrad evaluate", dataset)
    args.dataset = dataset
    _, (x_test, t_test) = load_dataset(args.dataset, data_dir=args.data_dir)
    _check_fits(model, x_test.shape[1], f"dataset {args.dataset}")
    confusion = confusion_matrix(t_test, model.predict_classes(_as_model_input(model, x_test)))
    classes = len(confusion)
    accuracy = float(np.trace(confusion) / len(t_test))
    print(f"{args.dataset} test set, {len(t_test)} samples")
    print(f"accuracy: {accuracy:.4f}")
    print("per-class accuracy:")
    for c in range(classes):
        total = confusion[c].sum()
        print(f"  {c}: {confusion[c, c] / total:.4f}  ({confusion[c, c]}/{total})" if total else f"  {c}: -")
    print("confusion matrix (rows: true class, columns: predicted):")
    width = max(4, len(str(confusion.max())) + 1)
    print("     " + "".join(f"{c:>{width}}" for c in range(classes)))
    for c in range(classes):
        print(f"  {c:>2} " + "".join(f"{v:>{width}}" for v in confusion[c]))
    return 0


def _read_image(path: Path, style: str) -> np.ndarray:
    """One image file as one row of model input, preprocessed as the dataset's images were made."""
    from .data import DataError
    from .data.images import read_image

    try:
        pixels, notes = read_image(path, style)
    except DataError as error:
        raise CommandError(str(error)) from error
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    return pixels.reshape(1, -1)


def _read_array(path: Path, features: int | None) -> np.ndarray:
    """A .npy of one sample or of rows of samples, as float32 rows."""
    try:
        x = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise CommandError(f"{path}: not a plain .npy array ({error})") from error
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "biuf":  # strings, structured records, objects
        raise CommandError(f"{path}: expected an array of numbers, got dtype {getattr(x, 'dtype', type(x))}")
    if x.size == 0:
        raise CommandError(f"{path}: the array is empty")
    x = x.reshape(1, -1) if x.ndim <= 1 or x.size == features else x.reshape(len(x), -1)
    return x.astype(np.float64)  # exact for every stored number; cast to the model's precision later


def _in_model_precision(model, x: np.ndarray, what: str) -> np.ndarray:
    """``x`` cast to the model's precision, refusing values that are not finite there: a value
    finite in float64 but beyond float32's range would become infinity, then NaN probabilities."""
    dtype = next(iter(model.params.values())).dtype if model.params else np.dtype(np.float32)
    if not np.isfinite(x).all():
        raise CommandError(f"{what}: contains NaN or infinity; a model's prediction of it would mean nothing")
    with np.errstate(over="ignore"):  # the overflow is the finding, said below without a warning
        cast = x.astype(dtype)
    if not np.isfinite(cast).all():
        largest = float(np.abs(x).max())
        raise CommandError(f"{what}: values too large for {dtype} (the largest is {largest:.3g}; {dtype} holds up to "
                           f"{float(np.finfo(dtype).max):.3g}); a model's prediction of it would mean nothing")
    return cast


def _image_style(args: argparse.Namespace, model) -> str:
    """How to read images for this model: --dataset, else the dataset recorded in the model file,
    else a guess from its input size (784: MNIST, 64: the digits)."""
    from .data import DataError
    from .data.images import image_style
    from .serialize import read_metadata

    dataset = args.dataset or read_metadata(args.model).get("dataset")
    try:
        return image_style(dataset, input_size=model.input_size)
    except DataError as error:
        raise CommandError(str(error)) from error


def _predict(args: argparse.Namespace) -> int:
    from .model import GPT, Seq2seq

    model = _load_model(args.model)
    if args.text is not None or isinstance(model, Seq2seq):
        if isinstance(model, GPT):
            raise CommandError("a language model continues text: use 'handgrad generate MODEL --prompt TEXT'")
        if not isinstance(model, Seq2seq):
            raise CommandError(f"--text is a question for a seq2seq model; this {type(model).__name__} takes FILEs")
        if args.files or args.text is None:
            raise CommandError("a seq2seq model answers --text QUESTION (and takes no files)")
        for text in args.text:
            if not text.strip():  # "" was refused, "   " answered: both are no question
                raise CommandError(f"--text {text!r}: the question is blank")
            try:
                answer = model.answer(text)
                print(answer if answer else "(an empty answer)")
            except ValueError as error:
                raise CommandError(f"--text {text!r}: {error}") from error
        return 0
    if not args.files:
        raise CommandError("give FILE(s) to classify")
    features = model.input_size
    style = None
    for name in args.files:
        path = Path(name)
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        if path.suffix.lower() == ".npy":
            x = _read_array(path, features)
        else:
            style = style or _image_style(args, model)
            x = _read_image(path, style)
        _check_fits(model, x.shape[1], str(path))
        x = _in_model_precision(model, x, str(path))
        probabilities = model.predict_proba(_as_model_input(model, x))
        for i, row in enumerate(probabilities):
            label = f"{path}" if len(probabilities) == 1 else f"{path}[{i}]"
            top = ", ".join(f"{c}: {p:.3f}" for c, p in sorted(enumerate(row), key=lambda cp: -cp[1])[:3])
            print(f"{label}: class {int(row.argmax())}  (probabilities {top})")
    return 0


# --- trace and plot ------------------------------------------------------------------------------


def _plot_module():
    from . import plot

    try:
        plot._pyplot()
    except plot.MissingMatplotlib as error:
        raise CommandError(str(error)) from None
    return plot


def _require_classifier(model, command: str, dataset: str) -> None:
    """trace, plot and evaluate's per-class report work on classifiers (Sequential models) of
    the image and signal datasets; say so instead of failing inside."""
    from .model import Sequential
    from .registry import DATASETS

    if not isinstance(model, Sequential):
        other = {"GPT": "a language model: try 'handgrad generate', or 'plot --what attention --text PROMPT'",
                 "Seq2seq": "a seq2seq model: try 'handgrad evaluate', 'predict --text' or 'plot --what attention'"}
        raise CommandError(f"{command} works on classifiers (mlp, cnn, lstm); this is "
                           + other.get(type(model).__name__, f"a {type(model).__name__}"))
    if dataset in DATASETS and DATASETS[dataset].kind not in ("images", "signals"):
        raise CommandError(f"a classifier cannot be run on {dataset} ({DATASETS[dataset].kind}); "
                           "choose an image or signal dataset")


def _test_samples(model, args, count=None):
    from .data import CLASS_NAMES, load_dataset

    args.dataset = _dataset_of(args)
    _require_classifier(model, f"handgrad {args.command}", args.dataset)
    _, (x_test, t_test) = load_dataset(args.dataset, data_dir=args.data_dir)
    _check_fits(model, x_test.shape[1], f"dataset {args.dataset}")
    if count is not None:
        x_test, t_test = x_test[:count], t_test[:count]
    return _as_model_input(model, x_test), t_test, CLASS_NAMES.get(args.dataset)


def _trace(args: argparse.Namespace) -> int:
    from .inspect import trace

    model = _load_model(args.model)
    x, t, _ = _test_samples(model, args, args.samples)
    result = trace(model, x, t, lr=args.lr)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.format_text())
    return 0


def _plot(args: argparse.Namespace) -> int:
    plot = _plot_module()
    model = _load_model(args.model)
    if args.what == "attention" or args.text is not None:
        if args.what != "attention" or args.text is None:
            raise CommandError("--what attention needs --text QUESTION, and --text goes with --what attention")
        try:
            print(f"wrote {plot.attention_map(model, args.text, Path(args.out or 'attention.png'))}")
        except ValueError as error:
            raise CommandError(f"--text {args.text!r}: {error}") from error
        return 0
    x, t, names = _test_samples(model, args, args.samples if args.what == "activations" else None)
    out = Path(args.out or f"{args.what}.png")
    if args.what == "confusion":
        path = plot.confusion(model, x, t, out, class_names=names)
    elif args.what == "mistakes":
        side = int(round(x.shape[1] ** 0.5))
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


# --- generate -----------------------------------------------------------------------------------


def _generate(args: argparse.Namespace) -> int:
    from .model import GPT

    model = _load_model(args.model)
    if not isinstance(model, GPT):
        raise CommandError(f"{args.model}: generate needs a language model (--model gpt), this is a {type(model).__name__}")
    if model.vocab is None:
        raise CommandError(f"{args.model}: the model has no vocabulary saved with it, so text cannot be encoded")
    try:
        prompt = model.encode(args.prompt)[None] if args.prompt else None
    except ValueError as error:
        raise CommandError(f"--prompt: {error}") from error
    if prompt is None:  # nanoGPT starts from a newline when there is no prompt
        prompt = model.encode("\n" if "\n" in model.vocab.chars else model.vocab.chars[0])[None]
    if not args.temperature >= 0:
        raise CommandError(f"--temperature must be >= 0, got {args.temperature}")
    top_k = min(args.top_k, model.vocab_size)  # as nanoGPT: k above the vocabulary means all of it
    ids = model.generate(prompt, args.tokens, temperature=args.temperature, top_k=top_k, seed=args.seed)
    print(model.decode(ids[0]))
    return 0


# --- serve ----------------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    from .serve import MissingServeExtra, serve

    for name in args.models:
        if Path(name).is_dir():
            _load_model(name)  # says it is a folder, and which model file inside it was meant
        if not Path(name).is_file():
            raise CommandError(f"{name}: no such model file")
    try:
        serve(args.models, host=args.host, port=args.port, copies=args.copies, data_dir=args.data_dir)
    except MissingServeExtra as error:
        raise CommandError(str(error)) from None
    return 0


# --- export --------------------------------------------------------------------------------------


def _export(args: argparse.Namespace) -> int:
    from .onnx_export import OPSET, export_onnx, signature

    if Path(args.onnx).exists() and Path(args.onnx).resolve() == Path(args.model).resolve():
        raise CommandError(f"--onnx {args.onnx} is the model file itself: writing there would destroy the model")
    model = _load_model(args.model)
    try:
        path = export_onnx(model, args.onnx, force=args.force)
    except ImportError as error:  # the onnx extra is missing: say which, in one line
        raise CommandError(str(error)) from error
    print(f"wrote {path} (ONNX opset {OPSET}): {signature(path)}; the scores before any softmax")
    return 0


# --- walkthrough ---------------------------------------------------------------------------------


def _walkthrough(args: argparse.Namespace) -> int:
    from .walkthrough import format_text, walkthrough

    result = walkthrough()
    if args.json:
        # NaN is not JSON: the walkthrough already turns the tutorial's NaNs into null.
        print(json.dumps(result, indent=2, allow_nan=False))
    else:
        print(format_text(result))
    return 0


def _book_run(args: argparse.Namespace) -> int:
    from .book.run import run_script

    if args.script is None:
        raise CommandError("which script? handgrad book-run SCRIPT.py [ARGS...], e.g. ../book/ch05/gradient_check.py")

    return run_script(args.script, args.args, out=args.out, data_dir=args.data_dir)


# --- parser --------------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return value


def _finite_non_negative(text: str) -> float:
    """A rate, a decay, a norm or a temperature: a finite number >= 0 (``inf`` and ``nan`` would
    only surface later as NaN weights and NumPy warnings)."""
    value = float(text)
    if not (np.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _finite_positive(text: str) -> float:
    value = _finite_non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 1 to 65535, got {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


_positive_int.__name__ = "positive integer"  # argparse says "invalid positive integer value: 'x'"
_port.__name__ = "port number"
_non_negative_int.__name__ = "integer >= 0"
_fraction.__name__ = "fraction in [0, 1)"
_finite_non_negative.__name__ = "finite number >= 0"
_finite_positive.__name__ = "finite number > 0"


class _Parser(argparse.ArgumentParser):
    """argparse, with usage mistakes reported in one line instead of the whole usage text."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    from .data import DATASETS
    from .data.images import PREPROCESSING_HELP
    from .model import ACTIVATIONS
    from .optim import OPTIMIZERS
    from .registry import DATASETS as TRAINABLE, MODELS

    parser = _Parser(prog="handgrad",
                                     description="Neural networks in NumPy with gradients written by hand, layer by layer.")
    parser.add_argument("--version", action="version", version=f"handgrad {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = commands.add_parser("train", help="train a model and save it (default: an MLP on the embedded digits, "
                                "in seconds)",
                                description="Train a model (--model) on a dataset (--dataset): classifiers and seq2seq "
                                "models by epochs, printing loss and accuracy; a GPT on text by steps, printing train "
                                "and validation loss. Writes model.safetensors and history.json into --out.")
    train.add_argument("--dataset", choices=list(TRAINABLE), default="digits")
    train.add_argument("--model", choices=list(MODELS), default="mlp",
                       help="; ".join(f"{entry.name}: {entry.help}" for entry in MODELS.values()))
    train.add_argument("--batchnorm", action="store_true", help="BatchNorm after every hidden Affine (mlp)")
    train.add_argument("--dropout", type=_fraction, default=0.0, metavar="P", help="dropout after every hidden layer (mlp)")
    train.add_argument("--hidden", type=_positive_int, nargs="*", metavar="N",
                       help="hidden layer widths (mlp, default: 512 on digits, 100 elsewhere), or the state size (lstm: 128, "
                       "seq2seq: 128, seq2seq-attention: 256)")
    train.add_argument("--embed", type=_positive_int, metavar="D", help="character embedding size (seq2seq, default: 16)")
    train.add_argument("--peeky", action="store_true", help="feed the encoder's state to every decoder step (seq2seq)")
    train.add_argument("--reverse-input", action="store_true", help="read each question backwards (seq2seq)")
    train.add_argument("--grad-clip", type=_finite_positive, metavar="MAX_NORM",
                       help="scale the gradients down to this total norm when above it (as torch's clip_grad_norm_; "
                       "default: none, 5 for seq2seq models as in the book)")
    train.add_argument("--activation", choices=sorted(ACTIVATIONS), default="relu")
    train.add_argument("--init", default="he", help="he, he_uniform, xavier, xavier_uniform (default: he)")
    train.add_argument("--optimizer", choices=list(OPTIMIZERS), help="default: adam (adamw for gpt)")
    train.add_argument("--lr", type=_finite_non_negative, help="learning rate (default: 1e-3 for adam/adamw/rmsprop, 0.1 for sgd; "
                       "3e-3 for adam with mlp on digits)")
    train.add_argument("--beta2", type=_fraction, help="Adam's second-moment decay (default: 0.999; 0.99 for gpt)")
    train.add_argument("--weight-decay", type=_finite_non_negative,
                       help="the optimizer's weight decay, on every parameter (torch.optim's; default 0; "
                       "gpt: 0.1, on weight matrices only, as nanoGPT)")
    train.add_argument("--weight-decay-l2", type=_finite_non_negative, default=0.0, metavar="LAMBDA",
                       help="the model's L2 penalty LAMBDA/2 |W|^2 on the weights only (the book's)")
    train.add_argument("--schedule", choices=["constant", "cosine"], default="constant",
                       help="learning rate: constant, or cosine annealing to 0 over the epochs")
    train.add_argument("--epochs", type=_positive_int,
                       help="default: 100 for mlp on digits (30 for other models), 5 for mnist / fashion-mnist")
    train.add_argument("--max-steps", type=_non_negative_int, metavar="N",
                       help="stop after N optimizer steps (language models train by steps: default 2000)")
    train.add_argument("--n-layer", type=_positive_int, help="gpt: blocks (default: 4)")
    train.add_argument("--n-head", type=_positive_int, help="gpt: attention heads (default: 4)")
    train.add_argument("--n-embd", type=_positive_int, help="gpt: width (default: 128)")
    train.add_argument("--block-size", type=_positive_int, help="gpt: context length in tokens (default: 64)")
    train.add_argument("--no-bias", action="store_true", help="gpt: no biases in LayerNorm and Affine (nanoGPT's bias=False)")
    train.add_argument("--eval-interval", type=_positive_int, help="language models: evaluate every N steps (default: 250)")
    train.add_argument("--eval-iters", type=_positive_int, help="language models: batches per evaluation (default: 200)")
    train.add_argument("--warmup", type=_non_negative_int, help="language models: warmup steps (default: 100)")
    train.add_argument("--min-lr", type=_finite_non_negative, help="language models: the lr the cosine decays to (default: lr / 10)")
    train.add_argument("--batch-size", type=_positive_int,
                       help="default: 32 for digits, 100 for the image sets and mnist1d, 128 for seq2seq, 12 for gpt")
    train.add_argument("--seed", type=_non_negative_int, default=0)
    train.add_argument("--val-split", type=_fraction, default=0.0,
                       help="hold out this fraction of the training set for validation (default: report the test set)")
    train.add_argument("--early-stopping", type=_positive_int, metavar="PATIENCE",
                       help="stop after PATIENCE epochs without a better validation loss (needs --val-split)")
    train.add_argument("--data-dir", help="data root with one folder per dataset (default: $HANDGRAD_DATA, then the cache)")
    train.add_argument("--out", default="handgrad-run",
                       help="output folder (default: handgrad-run); a model there from an earlier run is replaced, "
                       "and two runs at once on one folder are refused")
    train.add_argument("--checkpoint-every", type=_non_negative_int, default=0, metavar="K",
                       help="write a checkpoint every K epochs (0: none; a gpt checkpoints at every evaluation "
                       "when K > 0)")
    train.add_argument("--resume", action="store_true",
                       help="continue from the checkpoint in --out, with the same settings (others are refused)")
    train.add_argument("--plot", action="store_true", help="also write training curves to --out/curves.png (matplotlib)")
    train.set_defaults(handler=_train)
    train.set_defaults(defaults={dest: train.get_default(dest) for dest in MODEL_OPTIONS})

    evaluate = commands.add_parser("evaluate", help="accuracy, per-class accuracy and confusion matrix of a saved model")
    evaluate.add_argument("model", help="a model.safetensors written by handgrad")
    evaluate.add_argument("--dataset", choices=DATASETS,
                          help="default: the dataset recorded in the model file, else digits")
    evaluate.add_argument("--data-dir")
    evaluate.set_defaults(handler=_evaluate)

    predict = commands.add_parser("predict", help="classify .npy arrays or PNG/JPEG digit images; answer --text "
                                  "with a seq2seq model",
                                  description="Classify samples: .npy arrays (one sample, or rows of samples, as the "
                                  "model takes them) or images (PNG, JPEG, ... with the 'images' extra). "
                                  + PREPROCESSING_HELP)
    predict.add_argument("model", help="a model.safetensors written by handgrad")
    predict.add_argument("files", nargs="*", metavar="FILE")
    predict.add_argument("--text", action="append", metavar="TEXT",
                         help="a question for a seq2seq model, e.g. \"september 27, 1994\" (repeatable)")
    predict.add_argument("--dataset", choices=["mnist", "fashion-mnist", "digits"],
                         help="prepare images as this dataset's were made (default: the dataset recorded in the "
                         "model file, else guessed from its input size)")
    predict.set_defaults(handler=_predict)

    trace = commands.add_parser("trace", help="every layer's values and gradients on a few samples, with warnings")
    trace.add_argument("model", help="a model.safetensors written by handgrad")
    trace.add_argument("--dataset", choices=DATASETS, help="default: the dataset recorded in the model file, else digits")
    trace.add_argument("--samples", type=_positive_int, default=10, help="test samples to trace (default: 10)")
    trace.add_argument("--lr", type=_finite_non_negative, default=1e-3, help="learning rate for the update-to-weight ratios")
    trace.add_argument("--json", action="store_true", help="print JSON instead of a table")
    trace.add_argument("--data-dir")
    trace.set_defaults(handler=_trace)

    plot = commands.add_parser("plot", help="pictures of a saved model: confusion, mistakes, weights, activations")
    plot.add_argument("model", help="a model.safetensors written by handgrad")
    plot.add_argument("--dataset", choices=DATASETS, help="default: the dataset recorded in the model file, else digits")
    plot.add_argument("--what", choices=["confusion", "mistakes", "weights", "activations", "attention"],
                      default="confusion")
    plot.add_argument("--text", metavar="TEXT",
                      help="for --what attention: a question for a seq2seq-attention model, or a prompt for a gpt")
    plot.add_argument("--samples", type=_positive_int, default=1000, help="samples for --what activations")
    plot.add_argument("--out", help="PNG file to write (default: WHAT.png)")
    plot.add_argument("--data-dir")
    plot.set_defaults(handler=_plot)

    generate = commands.add_parser("generate", help="text from a trained language model (--model gpt)")
    generate.add_argument("model", help="a model.safetensors written by handgrad train --model gpt")
    generate.add_argument("--prompt", default="", help="the text to continue (default: a newline)")
    generate.add_argument("--tokens", type=_non_negative_int, default=500, help="characters to generate (default: 500)")
    generate.add_argument("--temperature", type=_finite_non_negative, default=0.8,
                          help="divide the logits by this (default: 0.8; 0: always the most likely)")
    generate.add_argument("--top-k", type=_positive_int, default=200, help="sample among the k most likely (default: 200)")
    generate.add_argument("--seed", type=_non_negative_int, default=0)
    generate.set_defaults(handler=_generate)

    serve = commands.add_parser("serve", help="a web page: draw a digit or type a prompt, watch every layer and gradient",
                                description="Serve a web page and its JSON API for the given models (image classifiers "
                                "and GPTs): draw a digit and see the probabilities, every layer's activations and the "
                                "saliency map computed by the model's own backward; or type a prompt and watch a GPT "
                                "write, with each character's probability and every head's attention.")
    serve.add_argument("models", nargs="+", metavar="MODEL", help="model.safetensors files written by handgrad train")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    serve.add_argument("--port", type=_port, default=8000, help="default: 8000")
    serve.add_argument("--copies", type=_positive_int, default=2,
                       help="independent copies of each model, one per concurrent request (default: 2)")
    serve.add_argument("--data-dir", help="data root holding mnist/ etc., for the random test images")
    serve.set_defaults(handler=_serve)

    export = commands.add_parser("export", help="write a saved model as an ONNX file, to run it outside Python",
                                 description="Export a saved model (a Sequential model or a gpt) to ONNX (opset "
                                 "17, float32): its scores / logits before any softmax, for any batch size. "
                                 "Needs the 'onnx' extra: pip install \"handgrad[onnx]\".")
    export.add_argument("model", help="a model.safetensors written by handgrad")
    export.add_argument("--onnx", required=True, metavar="FILE",
                        help="the ONNX file to write, named *.onnx (an earlier export there is replaced)")
    export.add_argument("--force", action="store_true",
                        help="replace FILE even if it exists and is not an ONNX model")
    export.set_defaults(handler=_export)

    walk = commands.add_parser("walkthrough", help="the tutorial's two-layer network, every gradient beside its numerical check",
                               description="Reproduce the tutorial's two-layer example: forward, loss, every backprop "
                               "gradient beside the numerical one, its cross-entropy examples and its pitfalls.")
    walk.add_argument("--json", action="store_true", help="print JSON instead of text")
    walk.set_defaults(handler=_walkthrough)

    book = commands.add_parser("book-run", help="run a script of the book's repository, unchanged, on handgrad",
                               description="Run a script of the Deep Learning from Scratch repository unchanged: "
                               "its common.*, dataset.mnist and chapter modules are handgrad's (handgrad.book), the "
                               "working directory is the script's folder, and plt.show() saves numbered PNGs in --out.")
    book.add_argument("script", nargs="?", help="the book's script, e.g. ../book/ch05/gradient_check.py")
    book.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed on to the script")
    book.add_argument("--out", default="book-run-out",
                      help="folder for the figures and saved parameters (default: book-run-out)")
    book.add_argument("--data-dir", help="data root with mnist/ (default: $HANDGRAD_DATA, then the cache)")
    book.set_defaults(handler=_book_run)
    return parser


class _GuardedOutput:
    """Standard output that survives a reader going away (``handgrad train | head -2``) or a write
    error (``> /dev/full``): the command carries on and finishes its work (a training run still
    saves its model), further output is dropped, and ``main`` reports the failure at the end."""

    def __init__(self, stream) -> None:
        self.stream, self.error = stream, None

    def write(self, text: str) -> int:
        if self.error is None:
            try:
                return self.stream.write(text)
            except OSError as error:
                self._failed(error)
        return len(text)

    def flush(self) -> None:
        if self.error is None:
            try:
                self.stream.flush()
            except OSError as error:
                self._failed(error)

    def _failed(self, error: OSError) -> None:
        self.error = error
        # Python flushes the real stdout once more at exit; point it at /dev/null so that this
        # final flush cannot print "Exception ignored" with a traceback.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass

    def __getattr__(self, name):
        return getattr(self.stream, name)


def main(argv: list[str] | None = None) -> int:
    from .data import DataError
    from .serialize import SerializationError
    from .train import TrainingDiverged

    parser = build_parser()
    if _mpi_env.rank_from_environment():
        # Under mpiexec every rank runs this same command line: rank 0 alone speaks. A mistake in
        # the options is the same on every rank, so the others stay silent about it too.
        sys.stdout = open(os.devnull, "w")
        with contextlib.redirect_stderr(sys.stdout):
            args = parser.parse_args(argv)
    else:
        args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    user_errors = (CommandError, DataError, SerializationError, TrainingDiverged, FileNotFoundError, ValueError)
    output, real_stdout = _GuardedOutput(sys.stdout), sys.stdout
    sys.stdout = output
    try:
        status = args.handler(args)
        output.flush()
    except user_errors as error:
        return _fail(args, error, f"{error}")
    except MemoryError as error:
        return _fail(args, error, f"out of memory ({error or 'the arrays asked for do not fit'}); "
                     "try smaller layers or batches")
    except OSError as error:  # a full disk, a permission: the file and the reason, in one line
        where = f"{error.filename}: " if error.filename else ""
        return _fail(args, error, f"{where}{error.strerror or error}")
    except KeyboardInterrupt:
        if _mpi_env.launched_by_mpi():  # the other ranks would wait for this one forever
            return _end_mpi_job(args, "interrupted", 130)
        print(f"handgrad {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        sys.stdout = real_stdout
    if output.error is not None and not isinstance(output.error, BrokenPipeError):
        # A reader that stopped listening (`| head`) is fine; a failed write is not.
        print(f"handgrad {args.command}: error: could not write to standard output "
              f"({output.error.strerror or output.error})", file=sys.stderr)
        return 1
    return status


def _fail(args, error: BaseException, message: str) -> int:
    """Report a user's mistake in one line; with HANDGRAD_DEBUG=1, show the whole traceback too
    (for reporting a bug in handgrad itself)."""
    if os.environ.get("HANDGRAD_DEBUG"):
        import traceback

        traceback.print_exception(error)
    if _mpi_env.launched_by_mpi():  # the other ranks would wait for this one forever
        return _end_mpi_job(args, message, 1, kind="error: ")
    print(f"handgrad {args.command}: error: {message}", file=sys.stderr)
    return 1


def _end_mpi_job(args, message: str, status: int, kind: str = "") -> int:
    """Under ``mpiexec``, say ``message`` once and end every rank of the job (``MPI_Abort``).

    A mistake in the options, or a Ctrl-C that mpiexec forwards to every process, reaches every
    rank at once: rank 0 says it and aborts the job, which ends the others before they speak.
    Each rank joins MPI *before* it waits (MPI_Init is collective: a rank that slept first kept
    rank 0's abort waiting for it), and a rank that is still alive after the wait failed or was
    interrupted alone, and says so itself."""
    from . import distributed

    rank = _mpi_env.rank_from_environment()
    try:
        comm = distributed.world()
    except ImportError:
        comm = None
    if rank:
        if comm is None:  # no MPI to end the job with: every rank has the same story; rank 0 tells it
            return status
        with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C while waiting
            time.sleep(_MPI_QUIET_SECONDS)
        message = f"(MPI rank {rank}) {message}"
    print(f"handgrad {args.command}: {kind}{message}", file=sys.stderr)
    if comm is not None:
        distributed.abort_job(comm, status)
    return status


#: How long a rank other than 0 waits for rank 0 to end the job before it speaks itself.
_MPI_QUIET_SECONDS = 3.0

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
