"""Keep freed array memory inside the process, so each training step does not page-fault it in again.

glibc serves blocks above M_MMAP_THRESHOLD with fresh mmap pages and returns freed heap tops above
M_TRIM_THRESHOLD to the OS. A training step frees and reallocates the same few-MB temporaries every time,
and touching fresh pages costs ~2 µs per 4 KiB page: measured here, one conv2d forward+backward of
(64, 16, 14, 14) → 32 channels took 17 ms with glibc's defaults and 4.7 ms with both thresholds raised.
PyTorch keeps its own caching allocator for the same reason. Linux/glibc only; elsewhere a no-op.

The setting is process-wide, so nothing in the library makes it on its own: the training entry point
(`train.train()`, which `tinygrad-conv train` runs) opts in explicitly, and so can any script of yours by calling
`keep_freed_memory()`; the benchmarks call it themselves.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's upper limit for M_MMAP_THRESHOLD on 64-bit systems


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once for this process; True if glibc accepted both."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(mallopt(M_TRIM_THRESHOLD, 1 << 30))
