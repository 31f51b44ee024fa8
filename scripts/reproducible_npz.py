"""Byte-reproducible .npz archives for the data sets the package ships (used by the build_*.py scripts)."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # every member's timestamp, so equal arrays give equal bytes


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """np.savez_compressed's archive with every member's timestamp fixed, so equal arrays give equal bytes."""
    stamped = io.BytesIO()
    np.savez_compressed(stamped, **arrays)
    fixed = io.BytesIO()
    with zipfile.ZipFile(stamped) as source, zipfile.ZipFile(fixed, "w") as target:
        for member in source.infolist():
            info = zipfile.ZipInfo(member.filename, date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            target.writestr(info, source.read(member))
    return fixed.getvalue()


def write_npz(arrays: dict[str, np.ndarray], out: Path, root: Path) -> None:
    """Write npz_bytes(arrays) to `out` after checking that it loads back (without pickle) to the same arrays; say
    so with out's path relative to `root`."""
    payload = npz_bytes(arrays)
    with np.load(io.BytesIO(payload), allow_pickle=False) as check:
        for name, array in arrays.items():
            if check[name].dtype != array.dtype or not np.array_equal(check[name], array):
                raise SystemExit(f"round trip changed {name!r}")
    out.write_bytes(payload)
    print(f"wrote {out.relative_to(root)}: {len(payload):,} bytes ({len(payload) / 1024:.1f} KiB), "
          f"sha256 {hashlib.sha256(payload).hexdigest()[:16]}")
