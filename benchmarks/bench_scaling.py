"""How conv2d forward + backward time grows with the work: image size 8 → 64 and batch 16 → 256, ours and PyTorch.

    python benchmarks/bench_scaling.py [--quick] [--interleave block|call]

float32, Cin = 8, Cout = 16, K = 3, padding 1 (so Ho·Wo = H·W). The work — every FLOP of the three GEMMs, every
im2col/col2im copy — is proportional to N·H·W, so "per unit" = time / (N·H·W), normalised to the first row, is
flat (1.00) when time grows linearly with the work; below 1 means fixed per-call costs being amortised, above 1
means the larger problem runs less efficiently (caches, memory traffic).
"""

from __future__ import annotations

import numpy as np
from bench_conv import make_case, ours_step
from common import (
    Worker,
    fmt,
    median,
    noise,
    print_table,
    start_interleaved,
    time_interleaved,
)

C_IN, C_OUT, K, PAD = 8, 16, 3, 1
IMAGE_SIZES = [8, 16, 32, 64]  # with N = 16
BATCH_SIZES = [16, 64, 256]  # with 16×16 images


def sweep(cases: list[tuple[int, int]], worker: Worker | None, repeats: int, settings: dict) -> list[list[str]]:
    """One table row per (N, H=W): times, ratio, per-unit times normalised to the first row."""
    rows, first = [], None
    for n, size in cases:
        shape = (n, C_IN, size, size, C_OUT, K, PAD)
        fns = {"ours": ours_step(make_case(shape, np.float32), PAD)}
        if worker is not None:
            fns["torch"] = worker.function("bench_conv:remote_torch_step", shape, "float32")
        times = time_interleaved(fns, repeats, **settings)
        ours = median(times["ours"])
        theirs = median(times["torch"]) if worker is not None else None
        units = n * size * size
        per_unit = (ours / units, theirs / units if theirs else None)
        first = first or per_unit
        rows.append([
            str(n), f"{size}x{size}", f"{units:,}", fmt(1e3 * ours), fmt(1e3 * theirs) if theirs else "-",
            fmt(ours / theirs) if theirs else "-", fmt(per_unit[0] / first[0]),
            fmt(per_unit[1] / first[1]) if theirs else "-", fmt(1e6 * per_unit[0], 3), noise(times),
        ])
    return rows


def main() -> None:
    _, repeats, settings, torch = start_interleaved(
        __doc__,
        "conv2d forward+backward scaling (float32, Cin 8 -> Cout 16, K 3, pad 1)",
        [
            "per unit = time / (N*H*W), normalised to the table's first row: flat (1.00) = time linear in the work",
            "ours us/unit: our microseconds per output pixel (all 16 channels, forward+backward)",
            "noise: interquartile range / median of the recorded calls (ours/torch)",
        ],
    )
    headers = ["N", "H x W", "N*H*W", "ours ms", "torch ms", "ours/torch", "ours per unit", "torch per unit",
               "ours us/unit", "noise"]
    worker = Worker() if torch is not None else None
    print_table(headers, sweep([(16, s) for s in IMAGE_SIZES], worker, repeats, settings),
                title="image size (N = 16):")
    print_table(headers, sweep([(n, 16) for n in BATCH_SIZES], worker, repeats, settings),
                title="batch size (16 x 16 images):")
    if worker is not None:
        worker.close()
    if torch is None:
        print("torch not importable: no PyTorch columns")


if __name__ == "__main__":
    main()
