"""Rebuild tinygrad_conv/digits.npz from scikit-learn's copy of the UCI handwritten digits (dev only).

    python scripts/build_digits.py

The data is the test set of the UCI "Optical Recognition of Handwritten Digits" (E. Alpaydin and C. Kaynak,
1998, https://doi.org/10.24432/C50P49, CC BY 4.0) as bundled with scikit-learn: 1797 images of 8×8 pixels with
values 0–16, labels 0–9. Written as two uint8 arrays, `images` (1797, 8, 8) and `labels` (1797,), unchanged
otherwise; nothing pickled. The package reads the file with numpy alone and never imports scikit-learn.

The output is byte-for-byte reproducible: np.savez_compressed stamps each zip member with the current time, so
the archive is rewritten with a fixed timestamp (1980-01-01, the zip epoch). The printed SHA-256 shows this.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from reproducible_npz import write_npz  # scripts/, first on sys.path when run as a script
from sklearn.datasets import load_digits

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tinygrad_conv" / "digits.npz"


def digits_arrays() -> dict[str, np.ndarray]:
    """scikit-learn's digits as uint8: images (1797, 8, 8) in 0..16, labels (1797,) in 0..9."""
    bunch = load_digits()
    images, labels = bunch.images, bunch.target
    if images.shape != (1797, 8, 8) or labels.shape != (1797,):
        raise SystemExit(f"unexpected shapes from scikit-learn: images {images.shape}, labels {labels.shape}")
    if not (np.array_equal(images, np.round(images)) and images.min() >= 0 and images.max() <= 16):
        raise SystemExit("scikit-learn's digit pixels are not integers in 0..16; refusing to convert to uint8")
    if labels.min() < 0 or labels.max() > 9:
        raise SystemExit(f"labels outside 0..9: min {labels.min()}, max {labels.max()}")
    return {"images": images.astype(np.uint8), "labels": labels.astype(np.uint8)}


def main() -> int:
    arrays = digits_arrays()
    write_npz(arrays, OUT, ROOT)
    print(f"images {arrays['images'].shape} {arrays['images'].dtype}, labels {arrays['labels'].shape} "
          f"{arrays['labels'].dtype}, per class {np.bincount(arrays['labels']).tolist()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
