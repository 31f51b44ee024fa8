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


# ================================================================ datasets.py: --data beyond the 8×8 digits

import gzip  # noqa: E402
import struct  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from tinygrad_conv import datasets  # noqa: E402
from tinygrad_conv.datasets import DataError  # noqa: E402


def write_idx(path: Path, array: np.ndarray, magic: bytes | None = None) -> Path:
    """An IDX file of uint8 `array` (gzipped if the name ends in .gz), as MNIST ships them."""
    array = np.asarray(array, np.uint8)
    header = (magic or b"\0\0\x08" + bytes([array.ndim])) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.tobytes()
    path.write_bytes(gzip.compress(payload, mtime=0) if path.suffix == ".gz" else payload)
    return path


def synthetic_digits(n: int, size: int = 28, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (n, size, size) images of light strokes on black — class 0 a horizontal bar, 1 a vertical bar, 2 a
    diagonal — at random places, with noise: easy to learn, nothing to download."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    images = rng.integers(0, 40, (n, size, size)).astype(np.uint8)
    for image, label in zip(images, labels):
        offset = int(rng.integers(size // 4, 3 * size // 4))
        if label == 0:
            image[offset - 1:offset + 2, 4:-4] = 255
        elif label == 1:
            image[4:-4, offset - 1:offset + 2] = 255
        else:
            np.fill_diagonal(image, 255)
            np.fill_diagonal(image[1:], 255)
    return images, labels.astype(np.uint8)


def write_idx_folder(folder: Path, n_train: int = 210, n_test: int = 60, gz: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for part, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        if n:
            images, labels = synthetic_digits(n, seed=seed)
            write_idx(folder / f"{part}-images-idx3-ubyte{suffix}", images)
            write_idx(folder / f"{part}-labels-idx1-ubyte{suffix}", labels)
    return folder


def write_image_folder(folder: Path, per_class: int = 6, rgb: bool = False, sizes=(28, 40)) -> Path:
    from PIL import Image

    images, labels = synthetic_digits(3 * per_class, size=28)
    for k, (image, label) in enumerate(zip(images, labels)):
        target = folder / ["horizontal", "vertical", "diagonal"][label]
        target.mkdir(parents=True, exist_ok=True)
        picture = Image.fromarray(image).resize((sizes[k % len(sizes)],) * 2)
        if rgb:
            picture = Image.merge("RGB", (picture, picture.point(lambda v: v // 2), picture))
        picture.save(target / f"{k:03d}.{'png' if k % 2 else 'jpg'}")
    return folder


# --- the bundled 28×28 set ---------------------------------------------------------------------------------------

def test_mnist5k_is_uint8_split_stratified_and_loads_without_pickle():
    with resources.as_file(resources.files("tinygrad_conv").joinpath("mnist5k.npz")) as path:
        assert path.stat().st_size < 1_000_000
        with np.load(path, allow_pickle=False) as archive:
            assert sorted(archive.files) == ["test_images", "test_labels", "train_images", "train_labels"]
            assert all(archive[name].dtype == np.uint8 for name in archive.files)
    dataset = datasets.load("mnist5k")
    assert dataset.x_train.shape == (4000, 1, 28, 28) and dataset.x_test.shape == (1000, 1, 28, 28)
    assert dataset.x_train.dtype == np.float32 and dataset.y_train.dtype == np.int64
    assert np.array_equal(np.bincount(dataset.y_test), [100] * 10)
    assert np.array_equal(np.bincount(dataset.y_train), [400] * 10)
    assert dataset.x_train.max() == 1.0 and dataset.x_train.min() == 0.0
    assert dataset.classes == [str(d) for d in range(10)] and dataset.image_size == (28, 28)
    assert 0.12 < dataset.pixel_mean < 0.14 and 0.29 < dataset.pixel_std < 0.32  # MNIST's 0.1307 and 0.3081


def test_digits_through_datasets_is_data_load_split():
    dataset = datasets.load("digits")
    for ours, theirs in zip((dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test), data.load_split()):
        assert np.array_equal(ours, theirs)
    assert np.array_equal(dataset.standardize(dataset.x_test), data.standardize(dataset.x_test))


# --- IDX folders ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder_loads_gzipped_or_not(tmp_path, gz):
    write_idx_folder(tmp_path, gz=gz)
    dataset = datasets.load(str(tmp_path))
    images, labels = synthetic_digits(210)
    assert dataset.kind == "idx" and dataset.x_train.shape == (210, 1, 28, 28) and dataset.x_test.shape[0] == 60
    assert np.array_equal(np.rint(dataset.x_train[:, 0] * 255), images) and np.array_equal(dataset.y_train, labels)
    assert dataset.classes == ["0", "1", "2"]


def test_idx_folder_is_found_where_torchvision_leaves_it(tmp_path):
    write_idx_folder(tmp_path / "MNIST" / "raw", gz=True)
    assert datasets.load(str(tmp_path)).name == str((tmp_path / "MNIST" / "raw").resolve())


def test_idx_folder_without_test_files_holds_out_a_seventh(tmp_path):
    write_idx_folder(tmp_path, n_train=210, n_test=0)
    dataset = datasets.load(str(tmp_path))
    assert len(dataset.y_test) == 30 and len(dataset.y_train) == 180
    assert np.array_equal(np.bincount(dataset.y_test), [10, 10, 10])


def test_reading_60000_idx_images_takes_well_under_a_second(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (60000, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte", images)
    started = time.perf_counter()
    read = datasets.read_idx(tmp_path / "train-images-idx3-ubyte", 3)
    assert time.perf_counter() - started < 0.5
    assert np.array_equal(read, images)


def _cut(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def _replace(path: Path, make) -> None:
    make(path)


BAD_IDX = [
    ("truncated images", lambda f: _cut(f / "train-images-idx3-ubyte", 5000),
     "train-images-idx3-ubyte: truncated IDX file: header says 210 × 28 × 28 = 164,640 bytes of data, the file has "
     "4,984"),
    ("truncated header", lambda f: _cut(f / "train-labels-idx1-ubyte", 6), "shorter than its 8-byte header"),
    ("empty file", lambda f: _cut(f / "train-labels-idx1-ubyte", 0), "shorter than its 4-byte magic number"),
    ("trailing bytes", lambda f: (f / "t10k-labels-idx1-ubyte").write_bytes(
        (f / "t10k-labels-idx1-ubyte").read_bytes() + b"\0"), "IDX file longer than its header says"),
    ("labels as images", lambda f: write_idx(f / "train-images-idx3-ubyte", np.zeros(210)),
     "wrong magic number 0x00000801, expected 0x00000803"),
    ("float magic", lambda f: write_idx(f / "train-labels-idx1-ubyte", np.zeros(210), magic=b"\0\0\x0d\x01"),
     "wrong magic number 0x00000D01, expected 0x00000801"),
    ("not IDX at all", lambda f: (f / "train-images-idx3-ubyte").write_bytes(b"\x89PNG\r\n\x1a\n" * 10),
     "wrong magic number 0x89504E47"),
    ("counts differ", lambda f: write_idx(f / "train-labels-idx1-ubyte", np.zeros(200)),
     "train-images-idx3-ubyte has 210 images but train-labels-idx1-ubyte has 200 labels"),
    ("no labels", lambda f: (f / "train-labels-idx1-ubyte").unlink(),
     "has the train images but no train-labels-idx1-ubyte[.gz]"),
    ("test size differs", lambda f: write_idx(f / "t10k-images-idx3-ubyte", np.zeros((60, 20, 20))),
     "test images are 20×20 but training images 28×28"),
    ("one class", lambda f: (write_idx(f / "train-labels-idx1-ubyte", np.zeros(210)),
                             write_idx(f / "t10k-labels-idx1-ubyte", np.zeros(60))),
     "every label is 0; a classifier needs at least 2 classes"),
]


@pytest.mark.parametrize(("case", "damage", "message"), BAD_IDX, ids=[case[0] for case in BAD_IDX])
def test_bad_idx_files_are_refused_in_one_named_line(tmp_path, case, damage, message):
    damage(write_idx_folder(tmp_path))
    with pytest.raises(DataError) as error:
        datasets.load(str(tmp_path))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_truncated_gzip_idx_file_is_refused(tmp_path):
    write_idx_folder(tmp_path, gz=True)
    _cut(tmp_path / "train-images-idx3-ubyte.gz", 3000)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: truncated or corrupt gzip file"):
        datasets.load(str(tmp_path))


# --- image folders -------------------------------------------------------------------------------------------------

def test_image_folder_keeps_class_names_resizes_and_stays_grey(tmp_path):
    dataset = datasets.load(str(write_image_folder(tmp_path, per_class=10)), image_size=20)
    assert dataset.kind == "folder" and dataset.classes == ["diagonal", "horizontal", "vertical"]  # sorted
    assert dataset.x_train.shape[1:] == (1, 20, 20) and len(dataset.y_train) + len(dataset.y_test) == 30
    assert len(dataset.y_test) == 6 and np.array_equal(np.bincount(dataset.y_test), [2, 2, 2])
    assert 0 <= dataset.x_train.min() and dataset.x_train.max() <= 1


def test_image_folder_of_colour_images_has_three_channels(tmp_path):
    dataset = datasets.load(str(write_image_folder(tmp_path, rgb=True)))
    assert dataset.x_train.shape[1:] == (3, 28, 28)
    assert not np.array_equal(dataset.x_train[:, 0], dataset.x_train[:, 1])


def test_image_folder_with_train_and_test_subfolders_uses_them(tmp_path):
    write_image_folder(tmp_path / "train", per_class=4)
    write_image_folder(tmp_path / "test", per_class=2)
    dataset = datasets.load(str(tmp_path))
    assert len(dataset.y_train) == 12 and len(dataset.y_test) == 6


def _empty_class(folder: Path) -> None:
    (folder / "empty").mkdir()
    (folder / "empty" / "notes.txt").write_text("no images here")


def _not_an_image(folder: Path) -> None:
    (folder / "vertical" / "broken.png").write_bytes(b"this is not a PNG")


def _truncated_png(folder: Path) -> None:
    path = folder / "vertical" / "001.png"
    path.write_bytes(path.read_bytes()[:60])


def _one_class(folder: Path) -> None:
    import shutil

    for name in ("horizontal", "diagonal"):
        shutil.rmtree(folder / name)


BAD_FOLDERS = [
    ("empty class folder", _empty_class, "empty: empty class folder (no .png/.jpg/.jpeg files)"),
    ("unreadable image", _not_an_image, "broken.png: unreadable image (UnidentifiedImageError"),
    ("truncated image", _truncated_png, "001.png: unreadable image"),
    ("one class", _one_class, "expected one subfolder of images per class (at least 2), found 1: vertical"),
]


@pytest.mark.parametrize(("case", "damage", "message"), BAD_FOLDERS, ids=[case[0] for case in BAD_FOLDERS])
def test_bad_image_folders_are_refused_in_one_named_line(tmp_path, case, damage, message):
    write_image_folder(tmp_path)
    damage(tmp_path)
    with pytest.raises(DataError) as error:
        datasets.load(str(tmp_path))
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(("spec", "message"), [
    ("mnist", "--data mnist: not a bundled data set (digits, mnist5k) and no such folder"),
    ("{tmp}/file.txt", "is a file; give the folder"),
    ("{tmp}", "expected one subfolder of images per class (at least 2), found 0"),
])
def test_bad_data_names_are_refused(tmp_path, spec, message):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        datasets.load(spec.format(tmp=tmp_path))


def test_image_folder_train_and_test_must_have_the_same_classes(tmp_path):
    write_image_folder(tmp_path / "train")
    write_image_folder(tmp_path / "test")
    _one_class(tmp_path / "test")
    (tmp_path / "test" / "extra").mkdir()
    (tmp_path / "test" / "extra" / "a.png").write_bytes((tmp_path / "train" / "vertical" / "001.png").read_bytes())
    with pytest.raises(DataError, match="train/ and test/ have different class folders"):
        datasets.load(str(tmp_path))


# --- a user's drawing -----------------------------------------------------------------------------------------------

def test_a_dark_on_light_drawing_is_prepared_like_an_mnist_digit(tmp_path):
    from PIL import Image

    dataset = datasets.load("mnist5k")
    digit = dataset.x_test[0, 0]
    ink_box = datasets.ink_box_fraction(dataset.x_train[:500])
    assert 0.65 < ink_box < 0.8  # MNIST's digits span 20 of 28 pixels
    drawing = np.pad(255 - np.uint8(digit * 255), 14, constant_values=255)  # black ink on white, off-centre margin
    big = Image.fromarray(drawing).resize((224, 224), Image.Resampling.NEAREST)
    big.convert("RGBA").save(tmp_path / "drawn.png")
    prepared = datasets.prepare_image(tmp_path / "drawn.png", 1, (28, 28), ink_box)
    assert prepared.shape == (1, 28, 28) and prepared.dtype == np.float32 and prepared.max() == 1.0
    assert np.corrcoef(prepared.ravel(), digit.ravel())[0, 1] > 0.95  # the same digit, in the same place


def test_a_transparent_background_counts_as_white(tmp_path):
    from PIL import Image

    rgba = np.zeros((30, 30, 4), np.uint8)
    rgba[10:20, 14:16] = (0, 0, 0, 255)  # a black stroke; everything else fully transparent black
    Image.fromarray(rgba, "RGBA").save(tmp_path / "stroke.png")
    grey = datasets.read_image(tmp_path / "stroke.png", (30, 30), channels=1)
    assert grey[0, 0] == 255 and grey[15, 15] == 0
