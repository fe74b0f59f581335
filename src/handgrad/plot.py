"""Pictures of a network learning (matplotlib, the ``plot`` extra; PNG files, no screen needed).

* :func:`training_curves`: loss and accuracies per epoch from a :class:`handgrad.History`.
* :func:`confusion`: the confusion matrix of a model on a dataset.
* :func:`mistakes`: a grid of misclassified images with their true and predicted labels.
* :func:`first_layer_weights`: the first layer's weights (Affine columns or conv filters) as images.
* :func:`activations`: histograms of every activation layer's outputs (the book's chapter-6
  figure on weight initialisation, for any model).

Every function writes the PNG atomically and returns its path.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["training_curves", "confusion", "mistakes", "first_layer_weights", "activations", "MissingMatplotlib"]


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


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
        fig.clf()
        _pyplot().close(fig)
    return path


def training_curves(history, path, val_label: str = "validation") -> Path:
    """Training loss, and train / validation accuracy, per epoch (``val_label`` names the
    evaluation set, e.g. "test")."""
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


def _as_images(x, image_shape):
    return np.asarray(x).reshape((len(x),) + tuple(image_shape))


def mistakes(model, x, t, path, image_shape, max_images: int = 25, class_names=None) -> Path:
    """A grid of misclassified samples, titled ``true -> predicted``."""
    plt = _pyplot()
    predicted = model.predict_classes(x)
    wrong = np.flatnonzero(predicted != t)[:max_images]
    columns = 5
    rows = max(1, int(np.ceil(len(wrong) / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(2 * columns, 2.2 * rows), squeeze=False)
    images = _as_images(x, image_shape)
    name = (lambda c: class_names[c]) if class_names else str
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong):
        ax.imshow(images[i].squeeze(), cmap="gray")
        ax.set_title(f"{name(int(t[i]))} -> {name(int(predicted[i]))}", fontsize=9)
    fig.suptitle(f"{len(np.flatnonzero(predicted != t))} of {len(t)} misclassified (true -> predicted)")
    return _save(fig, path)


def first_layer_weights(model, path, image_shape=None, max_units: int = 64) -> Path:
    """The first layer's weights as images: each Affine column (one hidden unit's receptive
    field over the input image) or each convolution filter."""
    plt = _pyplot()
    layer = next((lay for lay in model.layers if "W" in lay.params), None)
    if layer is None:
        raise ValueError("first_layer_weights: the model has no layer with weights")
    W = np.asarray(layer.params["W"])
    if W.ndim == 4:  # (FN, C, FH, FW): show channel 0 of every filter
        tiles = W[:max_units, 0]
    else:
        if image_shape is None:
            side = int(round(np.sqrt(W.shape[0])))
            if side * side != W.shape[0]:
                raise ValueError(f"first_layer_weights: {W.shape[0]} inputs are not a square image; give image_shape")
            image_shape = (side, side)
        tiles = W.T[:max_units].reshape((-1,) + tuple(image_shape)[-2:])
    columns = min(8, len(tiles))
    rows = int(np.ceil(len(tiles) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.4 * columns, 1.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, tile in zip(axes.flat, tiles):
        limit = np.abs(tile).max() or 1.0
        ax.imshow(tile, cmap="RdBu_r", vmin=-limit, vmax=limit)
    fig.suptitle(f"layer 0 {layer.name} weights (red +, blue -)")
    return _save(fig, path)


def activations(model, x, path, bins: int = 30) -> Path:
    """Histograms of each activation layer's outputs on ``x`` (evaluation mode)."""
    plt = _pyplot()
    outputs, value = [], x
    with model.mode(False):
        for index, layer in enumerate(model.layers):
            value = layer.forward(value)
            if layer.name in ("Relu", "Sigmoid", "Tanh"):
                outputs.append((f"{index} {layer.name}", np.asarray(value).ravel()))
    if not outputs:
        raise ValueError("activations: the model has no activation layers")
    fig, axes = plt.subplots(1, len(outputs), figsize=(3 * len(outputs), 3), squeeze=False)
    for ax, (name, values) in zip(axes.flat, outputs):
        ax.hist(values, bins=bins, range=(0.0, 1.0) if "Sigmoid" in name else None, color="tab:blue")
        ax.set_title(name, fontsize=10)
        ax.set_yticks([])
    fig.suptitle(f"activation distributions on {len(x)} samples")
    return _save(fig, path)
