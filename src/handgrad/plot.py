"""Pictures of a network learning (matplotlib, the ``plot`` extra; PNG files, no screen needed).

* :func:`training_curves`: loss and accuracies per epoch from a :class:`handgrad.History`
  (:func:`lm_curves`: a language model's loss by step); ``handgrad plot RUN --what curves``
  redraws them from a finished run's history.json.
* :func:`confusion`: the confusion matrix of a model on a dataset.
* :func:`mistakes`: a grid of misclassified images with their true and predicted labels.
* :func:`first_layer_weights`: the first layer's weights (Affine columns or conv filters) as images.
* :func:`activations`: histograms of every activation layer's outputs (the book's chapter-6
  figure on weight initialisation, for any model).

Every function writes the PNG atomically (to a temporary file in the same folder, then renamed;
its mode follows the umask, as any new file's does) and returns its path. An output path that
is an existing folder is refused with a ValueError before anything is computed.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .layers import Affine, Convolution, Relu, Sigmoid, Tanh

__all__ = ["training_curves", "lm_curves", "confusion", "mistakes", "first_layer_weights", "activations", "MissingMatplotlib"]


class MissingMatplotlib(ImportError):
    pass


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise MissingMatplotlib("pictures need matplotlib: pip install 'handgrad[plot]'") from None
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


#: The picture formats a path may ask for by its extension (matplotlib renders each without extras).
FORMATS = (".png", ".svg", ".pdf")


def _output_path(path, what: str) -> Path:
    """``path`` as a Path, refusing one that cannot become a picture file: an extension other
    than .png, .svg or .pdf (``--out a.txt`` once got a PNG under that name), an existing
    folder, or a folder above it that is a file."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what}: output path {path} is a folder; give a file name such as {path / (what + '.png')}")
    if path.suffix.lower() not in FORMATS:
        raise ValueError(f"{what}: cannot write {path}: a picture's name ends in {', '.join(FORMATS)} "
                         f"(the extension chooses the format), not {path.suffix or 'no extension'!r}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{what}: cannot write {path}: {parent} is a file, not a folder")
            break
    return path


def _save(fig, path: Path) -> Path:
    """Render ``fig`` in the format its extension names and put it at ``path`` atomically
    (:func:`handgrad.serialize.atomic_write_bytes`: a temporary name in the same folder, then
    renamed, so a reader never sees half a file)."""
    from .serialize import atomic_write_bytes

    plt = _pyplot()
    try:
        buffer = io.BytesIO()
        fig.savefig(buffer, format=path.suffix.lower()[1:], dpi=100, bbox_inches="tight")
    finally:
        fig.clf()
        plt.close(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, [buffer.getvalue()])
    return path


def lm_curves(history, path) -> Path:
    """A language model's loss by step (``fit_lm``'s history): train and validation at each
    evaluation, and the training loss logged between evaluations (``history.steps``, with
    ``fit_lm(log_interval=k)``) as a thin line when there is one."""
    path = _output_path(path, "lm_curves")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    logged = getattr(history, "steps", None) or []
    if logged:
        ax.plot([r["step"] for r in logged], [r["train_loss"] for r in logged], color="0.6", linewidth=0.8,
                label="train, mean of the steps between logs")
    for key, label in (("train_loss", "train"), ("val_loss", "validation")):
        ax.plot(history["step"], history[key], marker="o", label=label)
    ax.set(xlabel="step", ylabel="cross-entropy loss (nats per character)", title="loss")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def training_curves(history, path, val_label: str = "validation") -> Path:
    """Training loss, and train / validation accuracy, per epoch (``val_label`` names the
    evaluation set, e.g. "test"); a language model's history (by step) gets :func:`lm_curves`."""
    records = getattr(history, "records", None)  # a History, or a plain dict of columns
    if records and "step" in records[0] and "epoch" not in records[0]:
        return lm_curves(history, path)
    path = _output_path(path, "training_curves")
    plt = _pyplot()
    epochs = history["epoch"]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, history["train_loss"], marker="o", label="train")
    if any(v is not None for v in history["val_loss"]):
        ax_loss.plot(epochs, history["val_loss"], marker="o", label=val_label)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    ax_acc.plot(epochs, history["train_accuracy"], marker="o", label="train")
    if any(v is not None for v in history["val_accuracy"]):
        ax_acc.plot(epochs, history["val_accuracy"], marker="o", label=val_label)
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def confusion(model, x, t, path, class_names=None) -> Path:
    """The confusion matrix (rows: true class, columns: predicted), counts in the cells."""
    path = _output_path(path, "confusion")
    plt = _pyplot()
    from .train import confusion_matrix

    matrix = confusion_matrix(t, model.predict_classes(x))
    classes = len(matrix)
    names = class_names or [str(c) for c in range(classes)]
    fig, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax)
    for i in range(classes):
        for j in range(classes):
            if matrix[i, j]:
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if matrix[i, j] > matrix.max() / 2 else "black")
    ax.set(xticks=range(classes), yticks=range(classes), xticklabels=names, yticklabels=names,
           xlabel="predicted", ylabel="true",
           title=f"confusion matrix, accuracy {np.trace(matrix) / len(t):.4f}")
    plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
    return _save(fig, path)


def _as_images(x, image_shape) -> np.ndarray:
    """``x`` as pictures imshow can draw: (N, H, W) or (N, H, W, 3); refuses data that are not
    images of ``image_shape`` ((H, W) or (C, H, W) with C 1 or 3)."""
    x = np.asarray(x)
    shape = tuple(int(d) for d in image_shape)
    per_sample = int(np.prod(x.shape[1:]))
    channels = shape[0] if len(shape) == 3 else 1
    if len(shape) not in (2, 3) or min(shape[-2:]) < 2 or channels not in (1, 3) or per_sample != int(np.prod(shape)):
        raise ValueError(f"mistakes: pictures of mistakes need image data (H, W) or (C, H, W) with C 1 or 3; "
                         f"samples of {per_sample} values do not form images of shape {shape}")
    images = x.reshape((len(x),) + shape)
    if len(shape) == 3:
        images = images[:, 0] if channels == 1 else images.transpose(0, 2, 3, 1)
    return images


def mistakes(model, x, t, path, image_shape, max_images: int = 25, class_names=None) -> Path:
    """A grid of the first ``max_images`` misclassified samples, titled ``true -> predicted``.
    ``x`` must hold images of ``image_shape``, ``(H, W)`` or ``(C, H, W)``; ``t``: labels or
    one-hot rows."""
    path = _output_path(path, "mistakes")
    if max_images < 1:
        raise ValueError(f"mistakes: max_images must be >= 1, got {max_images}")
    t = np.asarray(t)
    labels = t.argmax(axis=-1) if t.ndim == 2 else t
    if len(labels) != len(x):
        raise ValueError(f"mistakes: {len(x)} samples but {len(labels)} labels")
    images = _as_images(x, image_shape)
    plt = _pyplot()
    predicted = model.predict_classes(x)
    all_wrong = np.flatnonzero(predicted != labels)
    wrong = all_wrong[:max_images]
    columns = 5
    rows = max(1, int(np.ceil(len(wrong) / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(2 * columns, 2.2 * rows), squeeze=False, layout="constrained")
    name = (lambda c: class_names[c]) if class_names else str
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong):
        ax.imshow(images[i], cmap="gray")
        ax.set_title(f"{name(int(labels[i]))} -> {name(int(predicted[i]))}", fontsize=9)
    shown = f"; the first {len(wrong)} shown" if len(wrong) < len(all_wrong) else ""
    fig.suptitle(f"{len(all_wrong)} of {len(labels)} misclassified (true -> predicted){shown}")
    return _save(fig, path)


def first_layer_weights(model, path, image_shape=None, max_units: int = 64) -> Path:
    """The first Affine or Convolution layer's weights, at most ``max_units`` of them (the title
    says how many of how many): each convolution filter (its first input channel) or each Affine
    column (one hidden unit's receptive field over the input) as an image. The image's shape is
    ``image_shape``, else the model's ``input_shape``, else the square the inputs fill; inputs
    that are not images (1-D signals such as MNIST-1D's) are drawn as curves."""
    path = _output_path(path, "first_layer_weights")
    if max_units < 1:
        raise ValueError(f"first_layer_weights: max_units must be >= 1, got {max_units}")
    found = next(((i, lay) for i, lay in enumerate(model.layers) if isinstance(lay, (Affine, Convolution))), None)
    if found is None:
        raise ValueError("first_layer_weights: the model has no Affine or Convolution layer")
    index, layer = found
    W = np.asarray(layer.W)
    if isinstance(layer, Convolution):  # (FN, C, FH, FW)
        total, unit = W.shape[0], "filters"
        tiles = W[:max_units, 0]
        if W.shape[1] > 1:
            unit += f" (input channel 0 of {W.shape[1]})"
    else:  # (in, out): column j is unit j's weights over the input
        total, unit = W.shape[1], "units"
        image_shape = _weight_image_shape(model, W.shape[0], image_shape, f"layer {index} {layer.name}")
        tiles = W.T[:max_units]
        if image_shape is not None:
            tiles = tiles.reshape((-1,) + image_shape)
            if len(image_shape) == 3:
                tiles = tiles[:, 0]
                if image_shape[0] > 1:
                    unit += f" (input channel 0 of {image_shape[0]})"
    shown = f"all {total}" if len(tiles) == total else f"first {len(tiles)} of {total}"
    plt = _pyplot()
    columns = min(8, len(tiles))
    rows = int(np.ceil(len(tiles) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.4 * columns, 1.4 * rows + 0.6), squeeze=False,
                             layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, tile in zip(axes.flat, tiles):
        limit = np.abs(tile).max() or 1.0
        if tile.ndim == 1:  # a signal's weights: a curve around 0
            ax.axhline(0.0, color="0.7", linewidth=0.8)
            ax.plot(tile, color="tab:red", linewidth=1.0)
            ax.set_ylim(-1.05 * limit, 1.05 * limit)
        else:
            ax.imshow(tile, cmap="RdBu_r", vmin=-limit, vmax=limit)
    legend = "(weight against input position)" if tiles.ndim == 2 else "(red +, blue -)"
    fig.suptitle(f"layer {index} {layer.name} weights, {shown} {unit}\n{legend}")
    return _save(fig, path)


def _weight_image_shape(model, inputs: int, image_shape, where: str):
    """The (H, W) or (C, H, W) that an Affine layer's ``inputs`` form, or None for 1-D signals."""
    if image_shape is not None:
        image_shape = tuple(int(d) for d in image_shape)
        if int(np.prod(image_shape)) != inputs or len(image_shape) not in (2, 3):
            raise ValueError(f"first_layer_weights: {where} has {inputs} inputs, which are not images "
                             f"of shape {image_shape}")
        return image_shape
    input_shape = getattr(model, "input_shape", None)
    if input_shape is not None and len(input_shape) in (2, 3) and int(np.prod(input_shape)) == inputs:
        return tuple(int(d) for d in input_shape)
    side = int(round(np.sqrt(inputs)))
    return (side, side) if side * side == inputs and side > 1 else None


def activations(model, x, path, bins: int = 30) -> Path:
    """Histograms of each activation layer's (Relu, Sigmoid, Tanh, by type) outputs on ``x``,
    in evaluation mode."""
    path = _output_path(path, "activations")
    plt = _pyplot()
    outputs = []
    with model.mode(False):
        for index, layer, value in model.forward_steps(x):
            if isinstance(layer, (Relu, Sigmoid, Tanh)):
                outputs.append((f"{index} {layer.name}", isinstance(layer, Sigmoid), np.asarray(value).ravel()))
    if not outputs:
        raise ValueError("activations: the model has no activation layers (Relu, Sigmoid, Tanh)")
    fig, axes = plt.subplots(1, len(outputs), figsize=(max(3 * len(outputs), 5), 3.4), squeeze=False,
                             layout="constrained")
    for ax, (name, sigmoid, values) in zip(axes.flat, outputs):
        ax.hist(values, bins=bins, range=(0.0, 1.0) if sigmoid else None, color="tab:blue")
        ax.set_title(name, fontsize=10)
        ax.set_yticks([])
    fig.suptitle(f"activation distributions on {len(x)} samples")
    return _save(fig, path)


def gpt_attention(model, prompt: str, path) -> Path:
    """Every head of every layer of a GPT on ``prompt``: for each position (rows), the weights
    over the positions it may see (columns, the causal mask leaves the upper triangle empty)."""
    path = _output_path(path, "attention")
    plt = _pyplot()
    ids = model.encode(prompt)[None]  # refuses unknown characters
    if ids.shape[1] == 0:
        raise ValueError("the prompt is empty; give at least one character")
    if ids.shape[1] > model.block_size:
        raise ValueError(f"the prompt has {ids.shape[1]} characters; the model's context is {model.block_size}")
    with model.mode(False):
        model.predict(ids)
    blocks = model.blocks
    chars = [repr(c)[1:-1] for c in prompt]
    fig, axes = plt.subplots(len(blocks), model.n_head, squeeze=False, layout="constrained",
                             figsize=(2.6 * model.n_head, 2.6 * len(blocks)))
    for layer, block in enumerate(blocks):
        weights = dict(block.children())["attn"].attention[0]  # (heads, T, T)
        for head in range(model.n_head):
            ax = axes[layer, head]
            ax.imshow(weights[head], cmap="Greys", vmin=0, vmax=1)
            ax.set_title(f"layer {layer}, head {head}", fontsize=9)
            ticks = range(len(chars)) if len(chars) <= 24 else []
            ax.set(xticks=ticks, yticks=ticks)
            if ticks:
                ax.set_xticklabels(chars, fontsize=6)
                ax.set_yticklabels(chars, fontsize=6)
    fig.suptitle(f"attention of every head on {prompt!r} (rows: position, columns: positions attended)")
    return _save(fig, path)


def attention_map(model, question: str, path) -> Path:
    """Where an attention seq2seq model looks: for each character of its answer (rows), the
    attention weights over the characters of the question (columns), the second book's
    figure of chapter 8. The answer is the model's own (greedy)."""
    from .model import GPT

    if isinstance(model, GPT):  # every head of every layer
        return gpt_attention(model, question, path)
    path = _output_path(path, "attention")
    if not getattr(model, "attention", False) or not hasattr(model, "generate"):
        raise ValueError("attention pictures need a seq2seq model with attention (--model seq2seq-attention) "
                         "or a gpt")
    plt = _pyplot()
    answer = model.answer(question)  # refuses a question too long or with unknown characters
    padded = question.ljust(model.question_length)
    ids = model.vocab.encode(padded)[None]
    with model.mode(False):
        generated = model.generate(ids)
        model.decode(model.encode(ids), generated[:, :-1])
    weights = dict(model.children())["attention"].attention[0]  # (answer steps, question characters)
    columns = list(padded[::-1] if model.reverse_input else padded)
    rows = list(model.vocab.decode(generated[0, 1:]))
    fig, ax = plt.subplots(figsize=(max(6, 0.3 * len(columns)), max(3, 0.4 * len(rows))), layout="constrained")
    image = ax.imshow(weights, cmap="Greys", vmin=0, vmax=1, aspect="auto")
    fig.colorbar(image, ax=ax, label="attention weight")
    ax.set(xticks=range(len(columns)), yticks=range(len(rows)), xticklabels=columns, yticklabels=rows,
           xlabel="question" + (" (read backwards)" if model.reverse_input else ""), ylabel="answer",
           title=f"{question.strip()!r} -> {answer!r}")
    return _save(fig, path)
