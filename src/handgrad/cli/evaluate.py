"""``handgrad evaluate`` (a saved model on its test set) and ``handgrad predict`` (files or
questions)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .arguments import Command
from .models import (
    DATA_DIR_HELP,
    as_model_input,
    check_fits,
    data_dir_of,
    dataset_of,
    in_model_vocabulary,
    load_model,
    require_classifier,
    task_of,
)
from .process import CommandError

# --- evaluate ------------------------------------------------------------------------------------


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    from ..data import DATASET_NAMES

    parser.add_argument("model", help="a model.safetensors written by handgrad")
    parser.add_argument("--dataset", choices=DATASET_NAMES, help="default: the dataset recorded in the model file, else digits")
    parser.add_argument("--data-dir", help=DATA_DIR_HELP)


def evaluate(args: argparse.Namespace) -> int:
    from ..data import SEQ2SEQ_DATASETS

    model = load_model(args.model)
    dataset = dataset_of(args)
    args.data_dir = data_dir_of(args)  # the root the model was trained from, unless --data-dir says otherwise
    task = task_of(model)
    if task == "language model":
        return _evaluate_language_model(model, args, dataset)
    if (task == "seq2seq") != (dataset in SEQ2SEQ_DATASETS):
        raise CommandError(f"a {type(model).__name__} model cannot be evaluated on {dataset}")
    if task == "seq2seq":
        return _evaluate_seq2seq(model, args, dataset)
    require_classifier(model, "handgrad evaluate", dataset)
    args.dataset = dataset
    return _evaluate_classifier(model, args)


def _evaluate_classifier(model, args: argparse.Namespace) -> int:
    """Accuracy, per-class accuracy and the confusion matrix on the test split."""
    from ..data import load_dataset
    from ..train import confusion_matrix

    _, (x_test, t_test) = load_dataset(args.dataset, data_dir=args.data_dir)
    check_fits(model, x_test.shape[1], f"dataset {args.dataset}")
    confusion = confusion_matrix(t_test, model.predict_classes(as_model_input(model, x_test)))
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


def _evaluate_seq2seq(model, args: argparse.Namespace, dataset: str) -> int:
    from ..data import load_seq2seq

    _, (x_test, t_test), data_vocab = load_seq2seq(dataset, data_dir=args.data_dir)
    if x_test.shape[1] != model.question_length or t_test.shape[1] != model.answer_length:
        raise CommandError(f"the model was trained on other text than {dataset}: it takes questions of "
                           f"{model.question_length} and answers of {model.answer_length} characters, {dataset} has "
                           f"{x_test.shape[1]} and {t_test.shape[1]}")
    # The model's own ids: a vocabulary in another order must not be read with the dataset's.
    x_test, t_test = (in_model_vocabulary(ids, data_vocab, model.vocab, dataset) for ids in (x_test, t_test))
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
    from ..data import load_shakespeare
    from ..train import estimate_loss

    if dataset != "shakespeare":
        raise CommandError(f"a language model is evaluated on text (shakespeare), not {dataset}")
    if model.vocab is None:
        raise CommandError(f"{args.model}: the model has no vocabulary saved with it, so the text cannot be encoded")
    train_ids, val_ids, data_vocab = load_shakespeare(args.data_dir)
    # Encoded with the model's vocabulary (the same characters in another order are other ids).
    train_ids, val_ids = (in_model_vocabulary(ids, data_vocab, model.vocab, dataset) for ids in (train_ids, val_ids))
    (x, t), (x_val, t_val) = (train_ids[:-1], train_ids[1:]), (val_ids[:-1], val_ids[1:])
    rng = np.random.default_rng(0)
    train_loss = estimate_loss(model, x, t, model.block_size, 12, 200, rng)
    val_loss = estimate_loss(model, x_val, t_val, model.block_size, 12, 200, rng)
    print(f"{dataset}, 200 random batches of 12 x {model.block_size} characters per split (seed 0)")
    print(f"train loss: {train_loss:.4f}\nval loss: {val_loss:.4f}")
    return 0


EVALUATE = Command("evaluate", "accuracy, per-class accuracy and confusion matrix of a saved model",
                   add_evaluate_arguments, evaluate)


# --- predict ------------------------------------------------------------------------------------


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a model.safetensors written by handgrad")
    parser.add_argument("files", nargs="*", metavar="FILE",
                        help=".npy arrays or images (PNG, JPEG, ...) for a classifier to classify")
    parser.add_argument("--text", action="append", metavar="TEXT",
                        help="a question for a seq2seq model, e.g. \"september 27, 1994\" (repeatable: each answer "
                        "is then printed beside its question, 'QUESTION' -> 'ANSWER')")
    parser.add_argument("--dataset", choices=["mnist", "fashion-mnist", "digits"],
                        help="prepare images as this dataset's were made (default: the dataset recorded in the "
                        "model file, else guessed from its input size)")


def predict(args: argparse.Namespace) -> int:
    model = load_model(args.model)
    if args.text is not None or task_of(model) == "seq2seq":
        return _answer(model, args)
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
        check_fits(model, x.shape[1], str(path))
        x = _in_model_precision(model, x, str(path))
        probabilities = model.predict_proba(as_model_input(model, x))
        for i, row in enumerate(probabilities):
            label = f"{path}" if len(probabilities) == 1 else f"{path}[{i}]"
            top = ", ".join(f"{c}: {p:.3f}" for c, p in sorted(enumerate(row), key=lambda cp: -cp[1])[:3])
            print(f"{label}: class {int(row.argmax())}  (probabilities {top})")
    return 0


def _answer(model, args: argparse.Namespace) -> int:
    """A seq2seq model's answer to each --text question: the bare answer to one question, and
    ``'question' -> 'answer'`` lines for several (bare answers one per line could not be told
    apart, nor matched with their questions when one was empty)."""
    task = task_of(model)
    if task == "language model":
        raise CommandError("a language model continues text: use 'handgrad generate MODEL --prompt TEXT'")
    if task != "seq2seq":
        raise CommandError(f"--text is a question for a seq2seq model; this {type(model).__name__} takes FILEs")
    if args.files or args.text is None:
        raise CommandError("a seq2seq model answers --text QUESTION (and takes no files)")
    several = len(args.text) > 1
    for text in args.text:
        if text and not text.strip():  # "   " was answered while "" was refused: both are no question
            raise CommandError(f"--text {text!r}: the question is blank")
        try:
            answer = model.answer(text)
        except ValueError as error:  # "" (the question is empty), a character outside the vocabulary
            raise CommandError(f"--text {text!r}: {error}") from error
        if several:
            print(f"{text!r} -> {answer!r}")
        else:
            print(answer if answer else "(an empty answer)")
    return 0


def _read_image(path: Path, style: str) -> np.ndarray:
    """One image file as one row of model input, preprocessed as the dataset's images were made."""
    from ..data import DataError
    from ..data.images import read_image

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
    from ..data import DataError
    from ..data.images import image_style
    from ..serialize import read_metadata

    dataset = args.dataset or read_metadata(args.model).get("dataset")
    try:
        return image_style(dataset, input_size=model.input_size)
    except DataError as error:
        raise CommandError(str(error)) from error


def _predict_description() -> str:
    from ..data.images import PREPROCESSING_HELP

    return ("Classify samples: .npy arrays (one sample, or rows of samples, as the model takes them) or images (PNG, "
            "JPEG, ... with the 'images' extra). " + PREPROCESSING_HELP)


PREDICT = Command("predict", "classify .npy arrays or PNG/JPEG digit images; answer --text with a seq2seq model",
                  add_predict_arguments, predict, description=_predict_description)
