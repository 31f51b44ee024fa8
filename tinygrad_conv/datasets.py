"""Data sets `tinygrad-conv train --data` accepts: the two bundled sets, MNIST-format IDX folders, image folders.

    load("digits")      1797 UCI digits, 8×8, values 0–16 (data.py): 1437 train / 360 test
    load("mnist5k")     5000 real MNIST digits, 28×28, values 0–255 (mnist5k.npz): 4000 train / 1000 test
    load(FOLDER)        FOLDER holds MNIST-format IDX files: train-images-idx3-ubyte, train-labels-idx1-ubyte,
                        t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each optionally .gz (MNIST, Fashion-MNIST;
                        torchvision leaves them in ROOT/MNIST/raw/, found from ROOT too)
    load(FOLDER, image_size=28)
                        FOLDER holds one subfolder of PNG/JPEG images per class (or train/ and test/ folders
                        that each do); grey or RGB, resized to image_size × image_size

Every loader returns a Dataset: images float32 (N, C, H, W) with pixels / pixel_max in [0, 1], labels int64 (N,)
in 0..K−1, the K class names, and the training images' pixel mean and standard deviation (what the model's input
is standardized with). A malformed input raises DataError with one line that names the file and the problem,
before anything is trained.

IDX (LeCun's format): a big-endian header — two zero bytes, a type byte (0x08: uint8), the number of dimensions
d — then d big-endian uint32 sizes, then the data, row-major. Images are d = 3 (magic 0x00000803), labels d = 1
(0x00000801). Read with one np.frombuffer each: 60,000 images take a fraction of a second.
"""

from __future__ import annotations

import gzip
import math
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from tinygrad_conv import data

BUNDLED = ("digits", "mnist5k")
MNIST5K_FILE = "mnist5k.npz"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC = 0x00000803, 0x00000801
IDX_PARTS = {"train": ("train-images", "train-labels"), "test": ("t10k-images", "t10k-labels")}
MAX_CLASSES = 1000


class DataError(ValueError):
    """A data set that cannot be used: the message names the file or folder and what is wrong, in one line."""


@dataclass
class Dataset:
    """A train/test split ready for training: x float32 (N, C, H, W) in [0, 1], y int64 (N,) in 0..K−1."""

    name: str  # "digits", "mnist5k", or the folder's absolute path
    kind: str  # "bundled", "idx" or "folder"
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    pixel_mean: float
    pixel_std: float
    description: str

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.x_train.shape[2]), int(self.x_train.shape[3])

    def standardize(self, images: np.ndarray) -> np.ndarray:
        return standardize(images, self.pixel_mean, self.pixel_std)


def standardize(images: np.ndarray, mean: float, std: float) -> np.ndarray:
    """(images − mean) / std in float32, as data.standardize (the same expression, so the same bits)."""
    return (np.asarray(images, np.float32) - np.float32(mean)) / np.float32(std)


def pixel_statistics(images: np.ndarray) -> tuple[float, float]:
    """The mean and standard deviation of every pixel of `images`, rounded to 4 decimals (they go to JSON)."""
    mean = float(np.mean(images, dtype=np.float64))
    std = float(np.std(images, dtype=np.float64))
    return round(mean, 4), round(max(std, 1e-4), 4)


# ---------------------------------------------------------------- dispatch


def load(spec: str, image_size: int | None = None, seed: int = 0) -> Dataset:
    """The data set `--data spec` names: a bundled name, an IDX folder or an image folder (see the module doc).

    image_size applies to image folders only (default 28); seed fixes the held-out split of a folder that has
    no test part of its own.
    """
    if spec == "digits":
        return _digits()
    if spec == "mnist5k":
        return load_mnist5k()
    folder = Path(spec).expanduser()
    if not folder.exists():
        raise DataError(f"--data {spec}: not a bundled data set ({', '.join(BUNDLED)}) and no such folder")
    if not folder.is_dir():
        raise DataError(f"--data {spec}: is a file; give the folder that holds the IDX files or class folders")
    idx_folder = find_idx_folder(folder)
    if idx_folder is not None:
        return load_idx_folder(idx_folder, seed=seed)
    return load_image_folder(folder, image_size=28 if image_size is None else image_size, seed=seed)


def _digits() -> Dataset:
    x_train, y_train, x_test, y_test = data.load_split()
    return Dataset("digits", "bundled", x_train, y_train, x_test, y_test, [str(d) for d in range(10)],
                   data.PIXEL_MEAN, data.PIXEL_STD, "1797 UCI handwritten digits, 8×8 (bundled)")


def load_mnist5k() -> Dataset:
    """The bundled 5000 MNIST digits: (4000, 1, 28, 28) train and (1000, 1, 28, 28) test, pixels / 255."""
    arrays = {}
    with resources.files(__package__ or "tinygrad_conv").joinpath(MNIST5K_FILE).open("rb") as file:
        with np.load(file, allow_pickle=False) as archive:
            for part, n in (("train", 4000), ("test", 1000)):
                images, labels = archive[f"{part}_images"], archive[f"{part}_labels"]
                if images.shape != (n, 28, 28) or labels.shape != (n,) or images.dtype != np.uint8 \
                        or labels.dtype != np.uint8 or labels.max() > 9:
                    raise DataError(f"{MNIST5K_FILE} is damaged: {part} images {images.dtype} {images.shape}, "
                                    f"labels {labels.dtype} {labels.shape} (expected uint8 ({n}, 28, 28) and "
                                    f"({n},) in 0..9); reinstall the package")
                arrays[part] = (images, labels)
    (x_train, y_train), (x_test, y_test) = (_to_float(*arrays["train"]), _to_float(*arrays["test"]))
    mean, std = pixel_statistics(x_train)
    return Dataset("mnist5k", "bundled", x_train, y_train, x_test, y_test, [str(d) for d in range(10)], mean, std,
                   "5000 MNIST handwritten digits, 28×28 (bundled)")


def _to_float(images: np.ndarray, labels: np.ndarray, pixel_max: float = 255.0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, H, W) or (N, H, W, C) → float32 (N, C, H, W) in [0, 1]; labels → int64."""
    x = images.astype(np.float32)
    x /= np.float32(pixel_max)
    x = x[:, None] if x.ndim == 3 else np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return x, labels.astype(np.int64)


# ---------------------------------------------------------------- IDX files


def read_idx(path: str | Path, expect_dims: int | None = None) -> np.ndarray:
    """The uint8 array in one IDX file (gzipped if its name ends in .gz), checked against its own header."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DataError(f"{path}: cannot read: {error.strerror or error}") from None
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise DataError(f"{path}: truncated or corrupt gzip file ({error})") from None
    if len(raw) < 4:
        raise DataError(f"{path}: truncated IDX file: {len(raw)} bytes, shorter than its 4-byte magic number")
    magic = int.from_bytes(raw[:4], "big")
    dims = raw[3]
    if raw[:2] != b"\0\0" or raw[2] != 0x08 or not 1 <= dims <= 4 or (expect_dims and dims != expect_dims):
        expected = {3: IDX_IMAGES_MAGIC, 1: IDX_LABELS_MAGIC}.get(expect_dims or 0)
        wanted = f"0x{expected:08X}" if expected else "0x000008NN"
        raise DataError(f"{path}: wrong magic number 0x{magic:08X}, expected {wanted} (an IDX file of unsigned "
                        f"bytes{f' with {expect_dims} dimensions' if expect_dims else ''})")
    header = 4 + 4 * dims
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX file: {len(raw)} bytes, shorter than its {header}-byte header")
    shape = tuple(int(n) for n in np.frombuffer(raw, ">u4", dims, 4))
    size = math.prod(shape)
    if len(raw) - header != size:
        what = "truncated IDX file" if len(raw) - header < size else "IDX file longer than its header says"
        raise DataError(f"{path}: {what}: header says {' × '.join(map(str, shape))} = {size:,} bytes of data, "
                        f"the file has {len(raw) - header:,}")
    return np.frombuffer(raw, np.uint8, size, header).reshape(shape)


def _idx_file(folder: Path, stem: str, dims: int) -> Path | None:
    """folder/stem-idx{dims}-ubyte, or with a dot (stem.idx3-ubyte), uncompressed preferred over .gz."""
    for separator in ("-", "."):
        for suffix in ("", ".gz"):
            path = folder / f"{stem}{separator}idx{dims}-ubyte{suffix}"
            if path.is_file():
                return path
    return None


def find_idx_folder(folder: Path) -> Path | None:
    """The folder holding train-images-idx3-ubyte[.gz]: `folder` itself, folder/raw, or folder/*/raw (as
    torchvision's MNIST(root) leaves it); None if there is none. Several under one root: DataError."""
    candidates = [folder, folder / "raw", *sorted(p for p in folder.glob("*/raw") if p.is_dir())]
    found = [c for c in candidates if _idx_file(c, "train-images", 3) is not None]
    if len(found) > 1 and found[0] != folder:
        raise DataError(f"--data {folder}: holds several IDX data sets ({', '.join(str(f) for f in found)}); "
                        "give one of those folders")
    if not found and any(folder.glob("*idx*-ubyte*")):
        raise DataError(f"--data {folder}: has IDX files but no train-images-idx3-ubyte[.gz] "
                        "(expected train-images/train-labels, and t10k-images/t10k-labels for the test set)")
    return found[0] if found else None


def _idx_pair(folder: Path, part: str) -> tuple[np.ndarray, np.ndarray] | None:
    images_stem, labels_stem = IDX_PARTS[part]
    images_path, labels_path = _idx_file(folder, images_stem, 3), _idx_file(folder, labels_stem, 1)
    if images_path is None and labels_path is None:
        return None
    if images_path is None or labels_path is None:
        missing = f"{images_stem}-idx3-ubyte" if images_path is None else f"{labels_stem}-idx1-ubyte"
        raise DataError(f"{folder}: has the {part} {'labels' if images_path is None else 'images'} but no "
                        f"{missing}[.gz]")
    images, labels = read_idx(images_path, 3), read_idx(labels_path, 1)
    if len(images) != len(labels):
        raise DataError(f"{folder}: {images_path.name} has {len(images):,} images but {labels_path.name} has "
                        f"{len(labels):,} labels")
    if len(images) == 0 or min(images.shape[1:]) == 0:
        raise DataError(f"{images_path}: holds no images (shape {images.shape})")
    return images, labels


def load_idx_folder(folder: str | Path, seed: int = 0) -> Dataset:
    """MNIST-format IDX files in `folder`: train-* and, if present, t10k-* (else 1/7 of train held out, stratified)."""
    folder = Path(folder).resolve()
    train = _idx_pair(folder, "train")
    if train is None:
        raise DataError(f"{folder}: no train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz]")
    test = _idx_pair(folder, "test")
    if test is not None and test[0].shape[1:] != train[0].shape[1:]:
        raise DataError(f"{folder}: test images are {test[0].shape[1]}×{test[0].shape[2]} but training images "
                        f"{train[0].shape[1]}×{train[0].shape[2]}")
    labels = np.concatenate([train[1], test[1]]) if test is not None else train[1]
    num_classes = int(labels.max()) + 1
    if num_classes < 2:
        raise DataError(f"{folder}: every label is 0; a classifier needs at least 2 classes")
    x_train, y_train = _to_float(*train)
    if test is None:
        x_train, y_train, x_test, y_test = data.train_test_split(x_train, y_train,
                                                                 test_size=max(1, len(y_train) // 7), seed=seed)
        held_out = " (no t10k files: 1/7 of train held out as the test set)"
    else:
        (x_test, y_test), held_out = _to_float(*test), ""
    mean, std = pixel_statistics(x_train)
    return Dataset(str(folder), "idx", x_train, y_train, x_test, y_test, [str(c) for c in range(num_classes)],
                   mean, std, f"IDX files in {folder}{held_out}")


# ---------------------------------------------------------------- image folders


def _pillow():
    try:
        from PIL import Image
    except ImportError as error:  # matplotlib depends on Pillow, so this is rare
        raise DataError(f"reading images needs Pillow (pip install pillow): {error}") from None
    return Image


def read_image(path: str | Path, size: tuple[int, int], channels: int | None = None) -> np.ndarray:
    """One image as uint8 (H, W, 3) RGB — or (H, W) grey if channels == 1 — resized to size = (H, W).

    Transparent pixels are laid on white first (a drawing saved with a transparent background is ink on white).
    DataError, naming the file, if Pillow cannot decode it.
    """
    image_module = _pillow()
    path = Path(path)
    try:
        with image_module.open(path) as image:
            image.load()
            if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
                rgba = image.convert("RGBA")
                image = image_module.alpha_composite(image_module.new("RGBA", rgba.size, "white"), rgba)
            image = image.convert("L" if channels == 1 else "RGB")
            if image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), image_module.Resampling.BILINEAR)
            return np.asarray(image, dtype=np.uint8)
    except DataError:
        raise
    except Exception as error:  # PIL.UnidentifiedImageError, OSError for a truncated file, DecompressionBombError…
        raise DataError(f"{path}: unreadable image ({type(error).__name__}: {error})") from None


def _class_images(folder: Path) -> dict[str, list[Path]]:
    """{class name: image paths}, classes and files in sorted order; DataError for no classes or an empty one."""
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DataError(f"{folder}: expected one subfolder of images per class (at least 2), found "
                        f"{len(classes)}{': ' + classes[0].name if classes else ''}")
    if len(classes) > MAX_CLASSES:
        raise DataError(f"{folder}: {len(classes)} class folders; at most {MAX_CLASSES} are supported")
    found = {}
    for class_folder in classes:
        images = sorted(p for p in class_folder.iterdir()
                        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise DataError(f"{class_folder}: empty class folder (no {'/'.join(IMAGE_SUFFIXES)} files)")
        found[class_folder.name] = images
    return found


def _read_images(paths: list[Path], size: tuple[int, int]) -> tuple[np.ndarray, bool]:
    """uint8 (N, H, W, 3) and whether every image is grey (R = G = B everywhere)."""
    stack = np.empty((len(paths), *size, 3), np.uint8)
    for index, path in enumerate(paths):
        stack[index] = read_image(path, size)
    grey = bool(np.array_equal(stack[..., 0], stack[..., 1]) and np.array_equal(stack[..., 1], stack[..., 2]))
    return stack, grey


def load_image_folder(folder: str | Path, image_size: int = 28, seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """Images in one subfolder per class (the folder names are the class names, sorted), resized to
    image_size × image_size; grey (1 channel) if every image is grey, else RGB (3 channels).

    With folder/train/<class>/ and folder/test/<class>/ (the same classes) those are the split; otherwise a
    stratified test_fraction of each class is held out, drawn with `seed`.
    """
    folder = Path(folder).resolve()
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not 4 <= image_size <= 512:
        raise DataError(f"--image-size must be an integer in 4..512, got {image_size!r}")
    size = (image_size, image_size)
    parts = {name: folder / name for name in ("train", "test")}
    if all(p.is_dir() for p in parts.values()):
        train_classes, test_classes = _class_images(parts["train"]), _class_images(parts["test"])
        if list(train_classes) != list(test_classes):
            raise DataError(f"{folder}: train/ and test/ have different class folders: {list(train_classes)} "
                            f"and {list(test_classes)}")
    else:
        train_classes, test_classes = _class_images(folder), None
    classes = list(train_classes)

    def gather(by_class: dict[str, list[Path]]) -> tuple[np.ndarray, np.ndarray, bool]:
        paths = [p for name in classes for p in by_class[name]]
        labels = np.repeat(np.arange(len(classes)), [len(by_class[name]) for name in classes])
        images, grey = _read_images(paths, size)
        return images, labels, grey

    train_images, train_labels, train_grey = gather(train_classes)
    if test_classes is not None:
        test_images, test_labels, test_grey = gather(test_classes)
        grey = train_grey and test_grey
    else:
        n = len(train_labels)
        if n < 2 * len(classes):
            raise DataError(f"{folder}: {n} images in {len(classes)} classes; need at least 2 per class to hold "
                            "some out as a test set (or give train/ and test/ folders)")
        train_images, train_labels, test_images, test_labels = data.train_test_split(
            train_images, train_labels, test_size=max(1, round(test_fraction * n)), seed=seed)
        grey = train_grey
    if grey:
        train_images, test_images = train_images[..., 0], test_images[..., 0]
    x_train, y_train = _to_float(train_images, train_labels)
    x_test, y_test = _to_float(test_images, test_labels)
    mean, std = pixel_statistics(x_train)
    colour = "grey" if grey else "RGB"
    return Dataset(str(folder), "folder", x_train, y_train, x_test, y_test, classes, mean, std,
                   f"{len(y_train) + len(y_test)} {colour} images in {len(classes)} class folders of {folder}, "
                   f"resized to {image_size}×{image_size}")


# ---------------------------------------------------------------- one image for prediction


def ink_box_fraction(images: np.ndarray) -> float:
    """How much of the frame the ink of a typical image spans: the median over images of max(ink height, ink
    width) / image side, ink being pixels above a quarter of the image's maximum. MNIST ≈ 0.71 (digits drawn in
    a 20×20 box in a 28×28 frame); the 8×8 UCI digits ≈ 1."""
    grey = images.mean(axis=1)  # (N, H, W)
    ink = grey > 0.25 * grey.max(axis=(1, 2), keepdims=True)
    rows, cols = ink.any(axis=2), ink.any(axis=1)
    spans = []
    for axis_ink, side in ((rows, grey.shape[1]), (cols, grey.shape[2])):
        first = axis_ink.argmax(axis=1)
        last = side - 1 - axis_ink[:, ::-1].argmax(axis=1)
        spans.append((last - first + 1) / side)
    return round(float(np.median(np.maximum(*spans))), 3)


def dark_background(images: np.ndarray) -> bool:
    """Whether the images are light ink on a dark background (mean of the border pixels below 0.25), as MNIST."""
    border = np.concatenate([images[:, :, 0, :], images[:, :, -1, :], images[:, :, :, 0], images[:, :, :, -1]],
                            axis=-1)
    return bool(border.mean() < 0.25)


def prepare_image(path: str | Path, channels: int, size: tuple[int, int], ink_box: float | None) -> np.ndarray:
    """A user's image as the model saw its training images: float32 (channels, H, W) in [0, 1].

    ink_box None: resized as the training images were. ink_box a fraction (data of light ink on a dark ground,
    channels 1): a dark-on-light drawing is inverted, cropped to its ink, scaled to span ink_box of the frame
    keeping its aspect ratio, centred by its centre of mass (as MNIST was made), and stretched to reach 1.0.
    """
    if ink_box is None:
        pixels = read_image(path, size, channels=1 if channels == 1 else None).astype(np.float32) / 255
        return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)
    image_module = _pillow()
    grey = read_image(path, _native_size(path), channels=1).astype(np.float32) / 255
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if border.mean() > 0.5:  # dark ink on a light ground: make it light on dark, as the training data
        grey = 1 - grey
    grey = np.clip(grey - np.median(border if border.mean() <= 0.5 else 1 - border), 0, None)
    ink = grey > 0.25 * grey.max() if grey.max() > 0 else np.ones_like(grey, bool)
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    crop = grey[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    height, width = size
    scale = ink_box * min(height, width) / max(crop.shape)
    new_h, new_w = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
    resized = image_module.fromarray(np.uint8(np.clip(crop * 255, 0, 255))).resize(
        (new_w, new_h), image_module.Resampling.LANCZOS)
    small = np.asarray(resized, np.float32) / 255
    canvas = np.zeros(size, np.float32)
    total = small.sum()
    cy, cx = ((np.indices(small.shape) * small).sum(axis=(1, 2)) / total if total > 0
              else ((new_h - 1) / 2, (new_w - 1) / 2))
    top = int(np.clip(round(height / 2 - cy), 0, height - new_h))  # centre of mass to (14, 14) as in MNIST
    left = int(np.clip(round(width / 2 - cx), 0, width - new_w))
    canvas[top:top + new_h, left:left + new_w] = small[:height - top, :width - left]
    if canvas.max() > 0:
        canvas /= canvas.max()
    return canvas[None]


def _native_size(path: str | Path) -> tuple[int, int]:
    image_module = _pillow()
    try:
        with image_module.open(path) as image:
            return image.size[1], image.size[0]
    except Exception as error:
        raise DataError(f"{path}: unreadable image ({type(error).__name__}: {error})") from None
