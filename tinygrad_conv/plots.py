"""Pictures of a training run (matplotlib, imported here only): curves, first-layer filters, confusion matrix.

Each PNG is written atomically (serialization.atomic_write): a crash or a full disk never leaves half a picture.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tinygrad_conv.serialization import atomic_write


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: Path) -> None:
    try:
        atomic_write(path, lambda file: fig.savefig(file, format="png", dpi=110))
    finally:
        plt.close(fig)


def plot_curves(history: list[dict], path: Path) -> None:
    """Training loss, and train/test accuracy, per epoch."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(9, 3.5))
    loss_ax.plot(epochs, [h["train_loss"] for h in history], marker="o")
    loss_ax.set(xlabel="epoch", ylabel="train loss (cross-entropy)", yscale="log", title="loss")
    acc_ax.plot(epochs, [100 * h["train_accuracy"] for h in history], marker="o", label="train")
    acc_ax.plot(epochs, [100 * h["test_accuracy"] for h in history], marker="o", label="test")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    acc_ax.legend()
    fig.tight_layout()
    _save(plt, fig, path)


def plot_filters(weight: np.ndarray, path: Path) -> None:
    """The first conv layer's kernels (Cout, 1, KH, KW) as images, one colour scale centred on 0."""
    plt = _pyplot()
    kernels = weight[:, 0]
    limit = float(np.abs(kernels).max()) or 1.0
    columns = min(len(kernels), 8)
    rows = -(-len(kernels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.3 * columns, 1.4 * rows + 0.3), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < len(kernels):
            ax.imshow(kernels[k], cmap="RdBu_r", vmin=-limit, vmax=limit)
            ax.set_title(f"filter {k}", fontsize=8)
    fig.suptitle("first-layer kernels (red +, blue −)", fontsize=9)
    fig.tight_layout()
    _save(plt, fig, path)


def plot_confusion(confusion: np.ndarray, path: Path, classes: list[str] | None = None) -> None:
    """counts[true, predicted] on the test set; ticks labelled with the class names (default 0..K−1)."""
    plt = _pyplot()
    k = len(confusion)
    classes = [str(c) for c in range(k)] if classes is None else list(classes)
    side = min(4.6 + 0.25 * max(0, k - 10), 16)
    fig, ax = plt.subplots(figsize=(side, side * 0.92))
    ax.imshow(confusion, cmap="Blues")
    for (i, j), count in np.ndenumerate(confusion):
        if count:
            ax.text(j, i, str(count), ha="center", va="center", fontsize=7 if k <= 20 else 4,
                    color="white" if count > confusion.max() / 2 else "black")
    ax.set(xlabel="predicted", ylabel="true", xticks=range(k), yticks=range(k), title="test confusion matrix")
    ax.set_xticklabels(classes, rotation=90 if max(map(len, classes)) > 2 else 0, fontsize=7)
    ax.set_yticklabels(classes, fontsize=7)
    fig.tight_layout()
    _save(plt, fig, path)
