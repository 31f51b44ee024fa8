"""Byte-reproducible .npz archives for the data sets the package ships (used by the build_*.py scripts)."""

from __future__ import annotations

import io
import zipfile

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
