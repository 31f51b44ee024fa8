"""Pictures of a training run (matplotlib, imported here only): curves, first-layer filters, confusion matrix, and
the test images the model gets wrong.

    curves.png         loss, accuracy and learning rate per epoch, the run's settings in the title
    filters.png        the first conv layer's kernels on one colour scale centred on 0, with its colour bar
    confusion.png      counts[true, predicted] on the test set, every non-zero count written in its cell
    misclassified.png  up to 24 test images the final model gets wrong, each titled "true 7 → pred 1"

Each PNG is written atomically (serialization.atomic_write): a crash or a full disk never leaves half a picture.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from tinygrad_conv.serialization import atomic_write

MAX_MISCLASSIFIED = 24


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


def run_title(metrics: dict) -> str:
    """The settings of a run, from its metrics.json: "digits-cnn on digits · sgd, lr 0.1 (cosine) · batch 64 ·
    30 epochs · seed 0"; the parts the metrics do not hold are left out."""
    args = metrics.get("args") or {}
    parts = []
    if metrics.get("model") or metrics.get("data"):
        data = str(metrics.get("data") or args.get("data") or "")
        data = Path(data).name if "/" in data else data  # a folder: its name, not its whole path
        parts.append(" on ".join(p for p in (metrics.get("model"), data) if p))
    if "optimizer" in args and "lr" in args:
        momentum = ", momentum 0.9" if args["optimizer"] == "sgd" else ""
        parts.append(f"{args['optimizer']}{momentum}, lr {args['lr']:g} (cosine)")
    if "batch_size" in args:
        parts.append(f"batch {args['batch_size']}")
    if "epochs" in args:
        parts.append(f"{args['epochs']} epochs")
    if "seed" in args:
        parts.append(f"seed {args['seed']}")
    return " · ".join(parts)


def _values(history: list[dict], key: str, scale: float = 1.0) -> list[float]:
    """history[k][key] for every epoch (×scale), NaN where an epoch lacks it or holds None."""
    return [math.nan if h.get(key) is None else scale * h[key] for h in history]


def _accuracy_limits(series: list[list[float]]) -> tuple[float, float]:
    """y-limits (%) that show the region the run ends in: from a little below the lowest accuracy of the final half
    of the epochs to 100, at most 0–100."""
    final = [v for values in series for v in values[len(values) // 2 :] if math.isfinite(v)]
    if not final:
        return 0.0, 100.5
    low = min(final)
    return max(0.0, math.floor(low - max(0.5, 0.25 * (100 - low)))), 100.3


def _epoch_ticks(epochs: list[int]) -> list[int]:
    """Integer ticks: every epoch up to 12 of them, else the first and every 5th (10th, 20th…) epoch."""
    if not epochs:
        return []
    first, last = min(epochs), max(epochs)
    if last - first < 12:
        return list(range(first, last + 1))
    step = next(s for s in (5, 10, 20, 50, 100, 200, 500, 1000, 10**9) if (last - first) / s <= 8)
    return sorted({first, *range(step, last + 1, step)})


def plot_curves(history: list[dict], path: Path, title: str = "") -> None:
    """Loss (running train, test), accuracy (running train, test) and learning rate per epoch.

    history: metrics.json's, one dict per epoch ("epoch", "train_loss", "train_accuracy", "test_loss",
    "test_accuracy", "lr"; a missing or None value is left out). The accuracy panel spans a little below the final
    half's lowest value to 100%, so the region a run ends in is readable; a short panel under it shows the whole
    0–100% range, the zoomed band shaded. title: the run's settings (run_title), shown above the panels.
    """
    plt = _pyplot()

    epochs = [h["epoch"] for h in history]
    has_lr = any(h.get("lr") is not None for h in history)
    fig = plt.figure(figsize=(13 if has_lr else 9, 4.4), layout="constrained")
    grid = fig.add_gridspec(4, 3 if has_lr else 2)
    loss_ax = fig.add_subplot(grid[:, 0])
    acc_ax = fig.add_subplot(grid[:3, 1])
    full_ax = fig.add_subplot(grid[3, 1], sharex=acc_ax)
    axes = [loss_ax, acc_ax, full_ax]
    style = {"marker": "o" if len(epochs) <= 40 else None, "markersize": 3}
    labels = ("train (running average over the epoch)", "test (full pass, end of epoch)")
    loss_ax.plot(epochs, _values(history, "train_loss"), label=labels[0], **style)
    loss_ax.plot(epochs, _values(history, "test_loss"), label=labels[1], **style)
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy loss", yscale="log", title="loss")
    loss_ax.legend(fontsize=8, loc="best")

    series = [_values(history, "train_accuracy", 100), _values(history, "test_accuracy", 100)]
    low, high = _accuracy_limits(series)
    for values, label in zip(series, labels):
        acc_ax.plot(epochs, values, label=label, **style)
        full_ax.plot(epochs, values, linewidth=1)
    acc_ax.set(ylabel="accuracy (%)", ylim=(low, high), title=f"accuracy, {low:g}–100%")
    acc_ax.tick_params(labelbottom=False)
    acc_ax.legend(fontsize=8, loc="best")
    full_ax.axhspan(low, 100, color="#dddddd", zorder=0)
    full_ax.set(xlabel="epoch", ylabel="0–100%", ylim=(0, 102), yticks=[0, 50, 100])
    full_ax.tick_params(labelsize=7)
    full_ax.yaxis.label.set_size(8)

    if has_lr:
        lr_ax = fig.add_subplot(grid[:, 2])
        lr_ax.plot(epochs, _values(history, "lr"), color="tab:green", **style)
        lr_ax.set(xlabel="epoch", ylabel="learning rate", ylim=(0, None), title="learning rate of each epoch")
        axes.append(lr_ax)
    ticks = _epoch_ticks(epochs)
    for ax in axes:
        ax.set_xticks(ticks)
        if epochs:
            ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
        ax.grid(alpha=0.3)
    acc_ax.tick_params(labelbottom=False)
    if title:
        fig.suptitle(title, fontsize=10)
    _save(plt, fig, path)


def plot_filters(weight: np.ndarray, path: Path) -> None:
    """The first conv layer's kernels (Cout, Cin, KH, KW) as images (the first input channel of each), on one
    diverging colour scale symmetric around 0 (red +, blue −), with its colour bar."""
    plt = _pyplot()
    kernels = weight[:, 0]
    limit = float(np.abs(kernels).max()) or 1.0
    columns = min(len(kernels), 8)
    rows = -(-len(kernels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.3 * columns + 1.0, 1.4 * rows + 0.4), squeeze=False,
                             layout="constrained")
    image = None
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < len(kernels):
            image = ax.imshow(kernels[k], cmap="RdBu_r", vmin=-limit, vmax=limit)
            ax.set_title(f"filter {k}", fontsize=8)
    fig.colorbar(image, ax=axes, shrink=0.8, label="weight (0 is white)")
    channel = " (input channel 0)" if weight.shape[1] > 1 else ""
    fig.suptitle(f"first-layer kernels{channel}: red +, blue −", fontsize=9)
    _save(plt, fig, path)


def _text_colour(rgba) -> str:
    """Black or white, whichever reads better on `rgba` (its relative luminance)."""
    red, green, blue = rgba[:3]
    return "black" if 0.2126 * red + 0.7152 * green + 0.0722 * blue > 0.5 else "white"


def plot_confusion(confusion: np.ndarray, path: Path, classes: list[str] | None = None) -> None:
    """counts[true, predicted] on the test set; ticks labelled with the class names (default 0..K−1).

    The diagonal (correct) is blue and the off-diagonal (mistakes) red, each on a scale of its own, so a cell of
    3 mistakes stands out beside diagonals of 36; every non-zero count is written in its cell, in black or white
    for contrast. The title gives the accuracy.
    """
    plt = _pyplot()
    from matplotlib import colormaps

    confusion = np.asarray(confusion)
    k = len(confusion)
    classes = [str(c) for c in range(k)] if classes is None else list(classes)
    total, correct = int(confusion.sum()), int(np.trace(confusion))
    side = min(4.6 + 0.25 * max(0, k - 10), 16)
    fig, ax = plt.subplots(figsize=(side, side * 0.95), layout="constrained")
    diagonal = np.eye(k, dtype=bool)
    colours = np.ones((k, k, 4))
    blues, reds = colormaps["Blues"], colormaps["Reds"]
    top_right = max(int(confusion[diagonal].max(initial=0)), 1)
    top_wrong = max(int(confusion[~diagonal].max(initial=0)), 1)
    for (i, j), count in np.ndenumerate(confusion):
        if count:  # from the scale's second quarter up, so a count of 1 is still clearly coloured
            colours[i, j] = (blues if i == j else reds)(0.25 + 0.75 * count / (top_right if i == j else top_wrong))
    ax.imshow(colours)
    for (i, j), count in np.ndenumerate(confusion):
        if count:
            ax.text(j, i, str(count), ha="center", va="center", fontsize=7 if k <= 20 else 4,
                    color=_text_colour(colours[i, j]))
    accuracy = f"{100 * correct / total:.2f}% ({correct}/{total})" if total else "no test images"
    ax.set(xlabel="predicted", ylabel="true", xticks=range(k), yticks=range(k))
    ax.set_title(f"test confusion matrix: accuracy {accuracy}\nblue: correct, red: mistakes (each on its own scale)",
                 fontsize=9)
    ax.set_xticklabels(classes, rotation=90 if max(map(len, classes)) > 2 else 0, fontsize=7)
    ax.set_yticklabels(classes, fontsize=7)
    _save(plt, fig, path)


def plot_misclassified(images: np.ndarray, labels: np.ndarray, predictions: np.ndarray, path: Path,
                       classes: list[str] | None = None, max_images: int = MAX_MISCLASSIFIED) -> None:
    """The test images whose prediction is wrong, the first `max_images` in test-set order, each titled
    "true 7 → pred 1". images: (N, C, H, W) pixels in [0, 1] (not standardized); labels, predictions: (N,).
    Grey images are drawn dark ink on white; 3-channel images in colour. No mistakes: a picture saying so."""
    plt = _pyplot()
    images, labels, predictions = np.asarray(images), np.asarray(labels), np.asarray(predictions)
    classes = [str(c) for c in range(int(max(labels.max(initial=0), predictions.max(initial=0))) + 1)] \
        if classes is None else list(classes)
    wrong = np.flatnonzero(labels != predictions)
    shown = wrong[:max_images]
    columns = min(max(len(shown), 1), 8)
    rows = max(-(-len(shown) // columns), 1)
    fig, axes = plt.subplots(rows, columns, figsize=(1.4 * columns + 0.4, 1.55 * rows + 0.5), squeeze=False,
                             layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, index in zip(axes.flat, shown):
        ax.axis("on")
        ax.set(xticks=[], yticks=[])  # a frame, so white paper has an edge
        image = images[index]
        if image.shape[0] == 3:
            ax.imshow(np.clip(image.transpose(1, 2, 0), 0, 1))
        else:
            ax.imshow(image[0], cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(f"true {classes[labels[index]]} → pred {classes[predictions[index]]}", fontsize=7)
    if len(wrong) == 0:
        axes[0, 0].text(0.5, 0.5, "none", ha="center", va="center", fontsize=12, transform=axes[0, 0].transAxes)
    more = f", the first {len(shown)} shown" if len(shown) < len(wrong) else ""
    fig.suptitle(f"misclassified test images: {len(wrong)} of {len(labels)}{more}", fontsize=9)
    _save(plt, fig, path)
