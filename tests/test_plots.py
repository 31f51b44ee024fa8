"""A run's pictures: what each figure shows, read back from the matplotlib figure before it is saved."""

import math

import numpy as np
import pytest

from tinygrad_conv import plots

pytest.importorskip("matplotlib")


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions make, kept open instead of being written."""
    made = []
    monkeypatch.setattr(plots, "_save", lambda plt, fig, path: made.append(fig))
    yield made
    import matplotlib.pyplot as plt

    for fig in made:
        plt.close(fig)


def _history(epochs: int) -> list[dict]:
    return [{"epoch": e, "lr": 0.1 * (1 + math.cos(math.pi * (e - 1) / epochs)) / 2, "train_loss": 1.0 / e,
             "train_accuracy": min(0.999, 0.5 + 0.05 * e), "test_loss": 1.2 / e,
             "test_accuracy": min(0.985, 0.6 + 0.04 * e), "seconds": 0.1} for e in range(1, epochs + 1)]


METRICS = {"model": "digits-cnn", "data": "digits",
           "args": {"optimizer": "sgd", "lr": 0.1, "batch_size": 64, "epochs": 30, "seed": 3}}


def test_run_title_names_model_data_optimizer_lr_batch_epochs_and_seed():
    assert plots.run_title(METRICS) == ("digits-cnn on digits · sgd, momentum 0.9, lr 0.1 (cosine) · batch 64 · "
                                        "30 epochs · seed 3")
    assert plots.run_title({}) == ""


def test_curves_show_test_loss_the_learning_rate_a_zoomed_accuracy_axis_and_integer_epochs(figures, tmp_path):
    plots.plot_curves(_history(30), tmp_path / "curves.png", plots.run_title(METRICS))
    (fig,) = figures
    assert fig._suptitle.get_text().startswith("digits-cnn on digits · sgd")
    titled = {ax.get_title(): ax for ax in fig.axes if ax.get_title()}
    loss, accuracy, lr = titled["loss"], titled["accuracy, 98–100%"], titled["learning rate of each epoch"]
    assert [line.get_label() for line in loss.get_lines()] == ["train (running average over the epoch)",
                                                               "test (full pass, end of epoch)"]
    np.testing.assert_allclose(loss.get_lines()[1].get_ydata(), [1.2 / e for e in range(1, 31)])
    np.testing.assert_allclose(lr.get_lines()[0].get_ydata(), [h["lr"] for h in _history(30)])
    # the final half's accuracies lie between 98.5% and 99.9%: the axis starts a little below 98.5, ends at 100
    low, high = accuracy.get_ylim()
    assert low == 98 and 100 <= high < 101
    full = [ax for ax in fig.axes if ax.get_ylabel() == "0–100%"]
    assert len(full) == 1 and full[0].get_ylim() == (0, 102)
    for ax in (loss, accuracy, lr):
        ticks = ax.get_xticks()
        assert all(float(t).is_integer() and 1 <= t <= 30 for t in ticks) and 1 in ticks and 30 in ticks


def test_curves_take_an_old_history_without_test_loss_or_lr(figures, tmp_path):
    old = [{k: v for k, v in h.items() if k not in ("test_loss", "lr")} for h in _history(3)]
    old[1]["train_loss"] = None  # an epoch whose batches were all skipped
    plots.plot_curves(old, tmp_path / "curves.png")
    (fig,) = figures
    assert "learning rate of each epoch" not in [ax.get_title() for ax in fig.axes]
    assert [float(t) for t in fig.axes[0].get_xticks()] == [1.0, 2.0, 3.0]


def test_epoch_ticks_are_integers_every_epoch_or_every_fifth():
    assert plots._epoch_ticks([1, 2, 3]) == [1, 2, 3]
    assert plots._epoch_ticks(list(range(1, 31))) == [1, 5, 10, 15, 20, 25, 30]
    assert plots._epoch_ticks(list(range(1, 101))) == [1, *range(20, 101, 20)]


def test_confusion_titles_the_accuracy_and_writes_every_nonzero_count_readably(figures, tmp_path):
    confusion = np.diag([36, 37, 34])
    confusion[2, 0] = 2
    confusion[0, 1] = 1
    plots.plot_confusion(confusion, tmp_path / "confusion.png")
    (fig,) = figures
    ax = fig.axes[0]
    assert "accuracy 97.27% (107/110)" in ax.get_title()
    texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t for t in ax.texts}
    assert {cell: t.get_text() for cell, t in texts.items()} == {
        (0, 0): "36", (1, 1): "37", (2, 2): "34", (2, 0): "2", (0, 1): "1"}
    # the off-diagonal cells have a scale of their own: a single mistake is as strongly coloured as the diagonal
    colours = ax.get_images()[0].get_array()
    assert colours[0, 1][:3].sum() < 2.0 and colours[1, 0][:3].sum() == 3.0  # 1 mistake coloured; 0 white
    for (i, j), text in texts.items():
        red, green, blue = colours[i, j][:3]
        luminance = 0.2126 * red + 0.7152 * green + 0.0722 * blue
        assert text.get_color() == ("black" if luminance > 0.5 else "white")


def test_filters_have_a_colour_bar_symmetric_around_zero(figures, tmp_path):
    weight = np.random.default_rng(0).normal(size=(6, 1, 3, 3))
    weight[2, 0, 1, 1] = -3.0
    plots.plot_filters(weight, tmp_path / "filters.png")
    (fig,) = figures
    image = next(ax for ax in fig.axes if ax.get_images()).get_images()[0]
    assert image.get_clim() == (-3.0, 3.0) and image.get_cmap().name == "RdBu_r"
    assert any(ax.get_ylabel().startswith("weight") for ax in fig.axes)  # the colour bar


def test_misclassified_shows_each_wrong_image_titled_true_and_predicted(figures, tmp_path):
    images = np.random.default_rng(0).random((40, 1, 8, 8)).astype(np.float32)
    labels = np.arange(40) % 10
    predictions = labels.copy()
    predictions[[3, 17]] = [1, 0]
    plots.plot_misclassified(images, labels, predictions, tmp_path / "m.png")
    (fig,) = figures
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["true 3 → pred 1", "true 7 → pred 0"]
    assert fig._suptitle.get_text() == "misclassified test images: 2 of 40"


def test_misclassified_shows_at_most_24_and_says_how_many_there_are(figures, tmp_path):
    labels = np.zeros(30, np.int64)
    plots.plot_misclassified(np.zeros((30, 1, 4, 4)), labels, labels + 1, tmp_path / "m.png", ["cat", "dog"])
    (fig,) = figures
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 24 and titles[0] == "true cat → pred dog"
    assert fig._suptitle.get_text() == "misclassified test images: 30 of 30, the first 24 shown"


def test_misclassified_with_no_mistakes_says_none(figures, tmp_path):
    labels = np.arange(5)
    plots.plot_misclassified(np.zeros((5, 3, 4, 4)), labels, labels, tmp_path / "m.png")
    (fig,) = figures
    assert fig._suptitle.get_text() == "misclassified test images: 0 of 5"
    assert [t.get_text() for t in fig.axes[0].texts] == ["none"]


def test_every_picture_is_written_as_a_png(tmp_path):
    labels = np.arange(10)
    plots.plot_curves(_history(4), tmp_path / "curves.png", "t")
    plots.plot_filters(np.ones((4, 3, 3, 3)), tmp_path / "filters.png")
    plots.plot_confusion(np.eye(10, dtype=np.int64), tmp_path / "confusion.png")
    plots.plot_misclassified(np.zeros((10, 1, 8, 8)), labels, (labels + 1) % 10, tmp_path / "misclassified.png")
    for name in ("curves", "filters", "confusion", "misclassified"):
        assert (tmp_path / f"{name}.png").read_bytes().startswith(b"\x89PNG")
