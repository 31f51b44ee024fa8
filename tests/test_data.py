"""The digits data: the shipped file, the stratified split, and minibatches."""

import zipfile
from importlib import resources

import numpy as np
import pytest

from tinygrad_conv import data


@pytest.fixture(scope="module")
def digits():
    return data.load_digits()


@pytest.fixture(scope="module")
def npz_path():
    with resources.as_file(resources.files("tinygrad_conv").joinpath("digits.npz")) as path:
        yield path


# --- the shipped file -------------------------------------------------------------------------------------------

def test_npz_holds_two_uint8_arrays_and_loads_without_pickle(npz_path):
    with np.load(npz_path, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["images", "labels"]
        images, labels = archive["images"], archive["labels"]
    assert images.dtype == np.uint8 and images.shape == (1797, 8, 8)
    assert labels.dtype == np.uint8 and labels.shape == (1797,)
    assert images.max() == 16 and labels.max() == 9


def test_npz_contains_no_object_arrays(npz_path):
    with zipfile.ZipFile(npz_path) as archive:
        for name in archive.namelist():
            with archive.open(name) as member:
                major, _ = np.lib.format.read_magic(member)
                read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                _, _, dtype = read_header(member)
            assert not dtype.hasobject, name


def test_load_digits_shapes_dtypes_and_range(digits):
    images, labels = digits
    assert images.shape == (1797, 1, 8, 8) and images.dtype == np.float32
    assert labels.shape == (1797,) and labels.dtype == np.int64
    assert images.min() == 0.0 and images.max() == 1.0
    assert np.array_equal(np.unique(labels), np.arange(10))
    assert np.array_equal(np.unique(images * 16), np.arange(17))  # pixels / 16, exactly


# --- the split ---------------------------------------------------------------------------------------------------

def test_load_split_default_sizes():
    x_train, y_train, x_test, y_test = data.load_split()
    assert x_train.shape == (1437, 1, 8, 8) and y_train.shape == (1437,)
    assert x_test.shape == (360, 1, 8, 8) and y_test.shape == (360,)
    assert x_train.dtype == x_test.dtype == np.float32 and y_train.dtype == y_test.dtype == np.int64


def test_split_is_stratified_proportionally(digits):
    images, labels = digits
    _, y_train, _, y_test = data.train_test_split(images, labels)
    class_counts, test_counts = np.bincount(labels), np.bincount(y_test, minlength=10)
    assert test_counts.sum() == 360
    assert np.all(np.abs(test_counts - 360 * class_counts / len(labels)) < 1)  # each within rounding
    assert np.array_equal(test_counts + np.bincount(y_train, minlength=10), class_counts)


@pytest.mark.parametrize("test_size", [1, 7, 10, 359, 1000, 1796])
def test_split_sizes_add_up_exactly(digits, test_size):
    images, labels = digits
    _, y_train, _, y_test = data.train_test_split(images, labels, test_size=test_size)
    assert len(y_test) == test_size and len(y_train) == len(labels) - test_size
    expected = test_size * np.bincount(labels) / len(labels)
    assert np.all(np.abs(np.bincount(y_test, minlength=10) - expected) < 1)


def test_split_is_disjoint_and_covers_everything():
    ids = np.arange(1797)  # split the sample indices themselves, so membership is visible
    _, labels = data.load_digits()
    train_ids, y_train, test_ids, y_test = data.train_test_split(ids, labels)
    assert not set(train_ids) & set(test_ids)
    assert np.array_equal(np.sort(np.concatenate([train_ids, test_ids])), ids)
    assert np.array_equal(labels[train_ids], y_train) and np.array_equal(labels[test_ids], y_test)


def test_split_is_deterministic_per_seed_and_differs_across_seeds():
    ids = np.arange(1797)
    _, labels = data.load_digits()
    first = data.train_test_split(ids, labels, seed=3)
    again = data.train_test_split(ids, labels, seed=3)
    other = data.train_test_split(ids, labels, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[2], other[2])


def test_load_split_matches_train_test_split(digits):
    images, labels = digits
    for ours, theirs in zip(data.load_split(seed=5), data.train_test_split(images, labels, seed=5)):
        assert np.array_equal(ours, theirs)


def test_stratified_counts_use_largest_remainder_with_ties_to_smaller_label():
    labels = np.array([0, 0, 1, 1, 2, 2])  # 3 classes of 2; test_size 4 -> 4/3 each: floors 1, 1 left over
    assert data.stratified_test_counts(labels, 4) == {0: 2, 1: 1, 2: 1}


@pytest.mark.parametrize("test_size", [0, -1, 1797, 5000, 2.5, True, "360"])
def test_split_rejects_bad_test_size(digits, test_size):
    images, labels = digits
    with pytest.raises(ValueError, match=r"test_size must be an integer in 1\.\.1796"):
        data.train_test_split(images, labels, test_size=test_size)


def test_split_rejects_mismatched_lengths(digits):
    images, labels = digits
    with pytest.raises(ValueError, match="1797 images and 1796 labels"):
        data.train_test_split(images, labels[:-1])


# --- batches -----------------------------------------------------------------------------------------------------

def _epoch(ids, batch_size=32, **kwargs):
    return [(x, y) for x, y in data.batches(ids, ids, batch_size, **kwargs)]


def test_batches_cover_every_sample_once_and_last_is_smaller():
    ids = np.arange(100)
    epoch = _epoch(ids, seed=0)
    assert [len(y) for _, y in epoch] == [32, 32, 32, 4]
    seen = np.concatenate([y for _, y in epoch])
    assert np.array_equal(np.sort(seen), ids)
    assert all(np.array_equal(x, y) for x, y in epoch)  # images and labels stay paired
    assert not np.array_equal(seen, ids)  # and they were shuffled


def test_batches_keep_trailing_dimensions(digits):
    images, labels = digits
    first_images, first_labels = next(data.batches(images, labels, 64, seed=0))
    assert first_images.shape == (64, 1, 8, 8) and first_labels.shape == (64,)
    assert first_images.dtype == np.float32 and first_labels.dtype == np.int64


def test_batches_without_shuffle_are_consecutive_slices():
    ids = np.arange(10)
    assert [y.tolist() for _, y in _epoch(ids, batch_size=4, shuffle=False)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_batches_are_deterministic_with_a_seed():
    ids = np.arange(100)
    first, again = _epoch(ids, seed=7), _epoch(ids, seed=7)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(first, again))
    assert not np.array_equal(first[0][1], _epoch(ids, seed=8)[0][1])


def test_one_generator_gives_different_epochs_and_a_reproducible_run():
    ids = np.arange(100)

    def run(seed):
        rng = np.random.default_rng(seed)
        return [np.concatenate([y for _, y in _epoch(ids, rng=rng)]) for _ in range(3)]

    first_run, second_run = run(11), run(11)
    assert not np.array_equal(first_run[0], first_run[1]) and not np.array_equal(first_run[1], first_run[2])
    assert all(np.array_equal(a, b) for a, b in zip(first_run, second_run))
    assert all(np.array_equal(np.sort(order), ids) for order in first_run)


def test_batches_draw_the_order_when_called_not_when_iterated():
    ids = np.arange(20)
    rng = np.random.default_rng(0)
    lazy = data.batches(ids, ids, 5, rng=rng)
    expected = np.random.default_rng(0).permutation(20)
    assert np.array_equal(np.concatenate([y for _, y in lazy]), expected)


@pytest.mark.parametrize("batch_size", [0, -3, 2.0, True, None])
def test_batches_reject_bad_batch_size(batch_size):
    ids = np.arange(10)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        data.batches(ids, ids, batch_size)


def test_batches_reject_mismatched_lengths():
    with pytest.raises(ValueError, match="10 images and 9 labels"):
        data.batches(np.zeros((10, 1, 8, 8)), np.zeros(9), 4)


def test_batches_reject_seed_and_rng_together():
    ids = np.arange(10)
    with pytest.raises(ValueError, match="seed or rng, not both"):
        data.batches(ids, ids, 4, seed=0, rng=np.random.default_rng(0))


def test_batches_reject_a_non_generator_rng():
    ids = np.arange(10)
    with pytest.raises(ValueError, match="rng must be a numpy.random.Generator"):
        data.batches(ids, ids, 4, rng=0)


# ---------------------------------------------------------------- standardize and random_shift


def test_standardize_constants_are_the_training_images_mean_and_std():
    x_train = data.load_split()[0]
    assert data.PIXEL_MEAN == pytest.approx(float(x_train.mean()), abs=5e-5)
    assert data.PIXEL_STD == pytest.approx(float(x_train.std()), abs=5e-5)
    standardized = data.standardize(x_train)
    assert standardized.dtype == np.float32 and standardized.shape == x_train.shape
    assert abs(standardized.mean()) < 1e-3 and abs(standardized.std() - 1) < 1e-3


def test_random_shift_moves_each_image_by_at_most_one_pixel_filling_zeros():
    images = np.random.default_rng(0).random((200, 2, 5, 6)).astype(np.float32)
    shifted = data.random_shift(images, np.random.default_rng(1))
    assert shifted.shape == images.shape and shifted.dtype == images.dtype
    padded = np.pad(images, ((0, 0), (0, 0), (1, 1), (1, 1)))
    seen = set()
    for n in range(len(images)):
        matches = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                   if np.array_equal(shifted[n], padded[n, :, 1 + dy : 6 + dy, 1 + dx : 7 + dx])]
        assert len(matches) == 1  # out[i, j] = images[i + dy, j + dx], zero outside
        seen.add(matches[0])
    assert len(seen) == 9  # every shift, (0, 0) included, is drawn


def test_random_shift_is_reproducible_from_the_generator():
    images = data.load_split()[0][:64]
    first = data.random_shift(images, np.random.default_rng(5))
    np.testing.assert_array_equal(first, data.random_shift(images, np.random.default_rng(5)))
    assert not np.array_equal(first, data.random_shift(images, np.random.default_rng(6)))
