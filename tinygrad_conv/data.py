"""The handwritten-digits data set: loading, a fixed stratified train/test split, and shuffled minibatches.

The data is the test set of the UCI "Optical Recognition of Handwritten Digits" (E. Alpaydin and C. Kaynak,
1998, UCI Machine Learning Repository, https://doi.org/10.24432/C50P49, CC BY 4.0), as distributed with
scikit-learn: N = 1797 grey images of 8×8 pixels with integer values 0–16, labels 0–9 (174–183 per class).
It ships as tinygrad_conv/digits.npz — `images` uint8 (1797, 8, 8), `labels` uint8 (1797,), nothing pickled —
rebuilt by scripts/build_digits.py. See NOTICE.

    load_digits()  ->  images float32 (N, 1, 8, 8) = pixels / 16, in [0, 1];  labels int64 (N,)
    load_split()   ->  x_train (1437, 1, 8, 8), y_train (1437,), x_test (360, 1, 8, 8), y_test (360,)
    standardize(x) ->  (x − 0.3055) / 0.3761, the training images' pixel mean and standard deviation
    random_shift(x, rng)  ->  each image moved by −1, 0 or +1 pixels vertically and horizontally, zeros shifted in

The split is stratified: class c, with n_c of the N images, puts test_size · n_c / N of them (rounded by largest
remainder, so the counts add up to test_size exactly) in the test set. Only numpy is needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources

import numpy as np

from tinygrad_conv.conv_args import is_int

DATA_FILE = "digits.npz"
PIXEL_MAX = 16
PIXEL_MEAN, PIXEL_STD = 0.3055, 0.3761  # over the 1437 × 64 pixels of load_split()'s x_train (test_data checks)


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits: images float32 (N, 1, 8, 8) in [0, 1] (pixels / 16) and labels int64 (N,) in 0..9."""
    with resources.files(__package__ or "tinygrad_conv").joinpath(DATA_FILE).open("rb") as file:
        with np.load(file, allow_pickle=False) as archive:
            pixels, labels = archive["images"], archive["labels"]
    images = (pixels.astype(np.float32) / PIXEL_MAX)[:, None, :, :]
    return images, labels.astype(np.int64)


def standardize(images: np.ndarray) -> np.ndarray:
    """(images − PIXEL_MEAN) / PIXEL_STD, float32: inputs of mean 0 and variance 1, as Kaiming init expects."""
    return (np.asarray(images, np.float32) - np.float32(PIXEL_MEAN)) / np.float32(PIXEL_STD)


def random_shift(images: np.ndarray, rng: np.random.Generator, max_shift: int = 1) -> np.ndarray:
    """Augmentation: out[n, :, i, j] = images[n, :, i + dy_n, j + dx_n], and 0 where that falls outside the image.

    images (N, C, H, W); dy_n and dx_n are drawn uniformly from −max_shift..max_shift for each image. Shifting
    by a pixel keeps a digit a digit, so the network sees 9× as many distinct training images.
    """
    n, _, height, width = images.shape
    size = 2 * max_shift + 1
    padded = np.pad(images, ((0, 0), (0, 0), (max_shift, max_shift), (max_shift, max_shift)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (height, width), axis=(2, 3))  # (N, C, s, s, H, W)
    dy, dx = rng.integers(0, size, n), rng.integers(0, size, n)  # window (dy, dx) = shift (dy, dx) − max_shift
    return windows[np.arange(n), :, dy, dx]


def _check_lengths(images: np.ndarray, labels: np.ndarray) -> None:
    if len(images) != len(labels):
        raise ValueError(f"images and labels must have the same length, got {len(images)} images "
                         f"and {len(labels)} labels")


def stratified_test_counts(labels: np.ndarray, test_size: int) -> dict[int, int]:
    """How many test samples each class gives: test_size · n_c / N, rounded by largest remainder.

    Floors first; the test_size − Σ floors samples left over go one each to the classes with the largest
    remainders, ties to the smaller class label. Integer arithmetic, so the result is exact and deterministic.
    """
    classes, counts = np.unique(labels, return_counts=True)
    total = int(counts.sum())
    quotas = [test_size * int(n) // total for n in counts]
    remainders = [test_size * int(n) % total for n in counts]
    left_over = test_size - sum(quotas)
    for index in sorted(range(len(classes)), key=lambda i: -remainders[i])[:left_over]:
        quotas[index] += 1
    return {int(c): q for c, q in zip(classes, quotas)}


def train_test_split(images: np.ndarray, labels: np.ndarray, test_size: int = 360,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A stratified split: (x_train, y_train, x_test, y_test), each class proportionally in the test set.

    images (N, ...) and labels (N,); test_size in 1..N-1. Within each class the test samples are drawn with
    np.random.default_rng(seed), so a seed always gives the same split. Both parts keep the original order.
    """
    images, labels = np.asarray(images), np.asarray(labels)
    _check_lengths(images, labels)
    n = len(labels)
    if not is_int(test_size) or not 1 <= test_size <= n - 1:
        raise ValueError(f"test_size must be an integer in 1..{n - 1} (N - 1 for N = {n} samples), got {test_size!r}")
    rng = np.random.default_rng(seed)
    is_test = np.zeros(n, dtype=bool)
    for label, quota in stratified_test_counts(labels, int(test_size)).items():
        members = np.flatnonzero(labels == label)
        is_test[rng.permutation(members)[:quota]] = True
    return images[~is_test], labels[~is_test], images[is_test], labels[is_test]


def load_split(test_size: int = 360, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """load_digits() split by train_test_split: (1437, 1, 8, 8), (1437,), (360, 1, 8, 8), (360,) by default."""
    images, labels = load_digits()
    return train_test_split(images, labels, test_size=test_size, seed=seed)


def batches(images: np.ndarray, labels: np.ndarray, batch_size: int, *, shuffle: bool = True,
            seed: int | None = None, rng: np.random.Generator | None = None,
            ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One epoch of minibatches (images[i:i+B], labels[i:i+B]); the last may be smaller than batch_size.

    images (N, ...) and labels (N,). With shuffle, the order is a permutation drawn once, when this is called:
    from `rng` if given — advancing it, so successive epochs differ while the whole run stays reproducible —
    else from np.random.default_rng(seed) (seed=None: a fresh, unseeded order). Give seed or rng, not both.
    Without shuffle the batches are consecutive slices in the original order.
    """
    images, labels = np.asarray(images), np.asarray(labels)
    _check_lengths(images, labels)
    if not is_int(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if seed is not None and rng is not None:
        raise ValueError("give seed or rng, not both")
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    order = None
    if shuffle:
        order = (rng if rng is not None else np.random.default_rng(seed)).permutation(len(labels))
    return _batches(images, labels, int(batch_size), order)


def _batches(images: np.ndarray, labels: np.ndarray, batch_size: int,
             order: np.ndarray | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for start in range(0, len(labels), batch_size):
        if order is None:
            yield images[start:start + batch_size], labels[start:start + batch_size]
        else:
            chosen = order[start:start + batch_size]
            yield images[chosen], labels[chosen]
