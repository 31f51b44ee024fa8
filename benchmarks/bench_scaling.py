"""Speed and memory at the sizes real data brings: conv2d forward+backward as the batch and the images grow, and
training steps of the demo CNN and of the 28×28 LeNet, ours against PyTorch.

    python benchmarks/bench_scaling.py [--quick] [--force]

Every point runs in fresh processes, one per library (spawned workers), with malloc left at its defaults in both:
what a user's script gets. The two take turns in blocks (see common.time_interleaved); numpy's three GEMMs of the
conv alone, and the composition's floor (im2col, the three GEMMs, col2im, alone), take turns with them in our
process: the least time numpy's BLAS, and the least time any engine running pad → im2col → matmul on numpy, allows.

Memory is the rise of the process's peak resident memory over three calls, above its size before them (the
inputs and the model already in memory): temporaries, gradients, caches, allocator slack, whatever library
allocated them.

Load check: before each point the script measures, for a second, how much CPU other processes use. Above 20% of the
machine it stops without reporting (exit 3): such numbers measure the other processes. --force reports anyway and
marks the table; --quick (a smoke test, not a measurement) never stops.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from bench_conv import composition_floor_step, gemm_bound_step, make_case, ours_step, remote_torch_step
from common import (
    Worker,
    fmt,
    geomean,
    import_torch,
    interleave_settings,
    median,
    noise,
    others_load,
    print_header,
    print_table,
    time_interleaved,
)

C_IN, C_OUT, K, PAD = 8, 16, 3, 1
IMAGE_SIZES = [8, 16, 32, 48, 64]  # with N = 16
BATCH_SIZES = [8, 16, 32, 64, 128, 256]  # with 16×16 images
TRAINING = [("digits-cnn", 64), ("digits-cnn", 256), ("lenet5", 64), ("lenet5", 256)]
QUICK_CONV = [(16, 8), (16, 32), (64, 16)]
QUICK_TRAINING = [("lenet5", 64)]
BUSY = 0.2  # the share of the machine other processes may use before the script refuses to report
MB = 1 / 2**20


# ---------------------------------------------------------------- what each worker builds


def conv_shape(n: int, size: int) -> tuple[int, ...]:
    return (n, C_IN, size, size, C_OUT, K, PAD)


def ours_conv(n: int, size: int):
    return ours_step(make_case(conv_shape(n, size), np.float32), PAD)


def torch_conv(n: int, size: int):
    return remote_torch_step(conv_shape(n, size), "float32")


def gemm_bound(n: int, size: int):
    return gemm_bound_step(conv_shape(n, size), np.float32)[0]


def composition_floor(n: int, size: int):
    return composition_floor_step(conv_shape(n, size), np.float32)


def _trainer(model: str, batch: int):
    """bench_train's Ours (train.build and TrainConfig's optimizer for the model) and one batch of its input size."""
    from bench_train import Ours

    size = (8, 8) if model == "digits-cnn" else (28, 28)
    rng = np.random.default_rng(0)
    images = rng.random((batch, 1, *size), dtype=np.float32)
    labels = np.arange(batch) % 10
    return Ours(0, batch, (images, labels, images, labels), model=model), images, labels


def ours_training(model: str, batch: int):
    trainer, images, labels = _trainer(model, batch)
    return lambda: trainer.step(images, labels)


def torch_training(model: str, batch: int):
    import torch
    from bench_train import Torch

    ours, images, labels = _trainer(model, batch)
    trainer = Torch(torch, ours, seed=0)
    del ours
    return lambda: trainer.step(images, labels)


# ---------------------------------------------------------------- one point


TINY = {"conv": (1, 8), "training": None}  # a small point of each kind, run first: the libraries' one-time set-up


def measure(kind: str, args: tuple, torch_available: bool, repeats: int, settings: dict) -> dict:
    """Time (ms) and peak memory (bytes) of ours, torch's and (conv) the GEMM bound at one point, in fresh workers.

    Each worker first runs a tiny point of the same kind twice, so that one-time set-up (thread pools, kernel
    selection) is not counted as the point's memory."""
    ours_worker = Worker()
    torch_worker = Worker() if torch_available else None
    tiny = TINY[kind] or (args[0], 2)
    try:
        workers = {"ours": ours_worker, "torch": torch_worker}
        fns = {}
        for name, worker in workers.items():
            if worker is None:
                continue
            warm_up = worker.function(f"bench_scaling:{name}_{kind}", *tiny)
            warm_up()
            warm_up()
            fns[name] = worker.function(f"bench_scaling:{name}_{kind}", *args)
        memory = {name: fn.memory(3) for name, fn in fns.items()}
        if kind == "conv":
            fns["bound"] = ours_worker.function("bench_scaling:gemm_bound", *args)
            fns["floor"] = ours_worker.function("bench_scaling:composition_floor", *args)
        times = time_interleaved(fns, repeats, **settings)
    finally:
        for worker in (ours_worker, torch_worker):
            if worker is not None:
                worker.close()
    return {"ms": {name: 1e3 * median(t) for name, t in times.items()}, "memory": memory,
            "noise": noise(times)}


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def megabytes(value: int | None) -> str:
    return fmt(value * MB, 1) if value is not None else "-"


def check_load(quick: bool, force: bool) -> float | None:
    load = others_load()
    if load is not None and load > BUSY and not (quick or force):
        print(f"\nstopped: other processes used {100 * load:.0f}% of the CPUs (more than {100 * BUSY:.0f}%), so the "
              "numbers would measure them; rerun on a quiet machine, or pass --force to report anyway")
        sys.exit(3)
    return load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few points, few repeats: a smoke test")
    parser.add_argument("--force", action="store_true", help="report even when other processes load the machine")
    args = parser.parse_args()
    repeats = 5 if args.quick else 30
    settings = interleave_settings("block", args.quick)
    torch = import_torch()
    print_header("speed and memory vs batch and image size: tinygrad_conv vs PyTorch, each in fresh processes",
                 torch, args.quick, [
                     f"timing: {repeats} recorded calls each, in turns of {settings['block']} "
                     f"({1e3 * settings['settle']:.0f} ms pause + {settings['warmup']} warm-up calls); medians",
                     "conv: float32, Cin 8 -> Cout 16, K 3, padding 1, forward + backward (dX, dW, db)",
                     "bound: numpy's three GEMMs of the conv alone (fwd, dW, dcols), in our process",
                     "floor: the composition's unavoidable array work alone: im2col of the padded input, the three "
                     "GEMMs, col2im of the column gradient (no padding, bias, layout copies or graph)",
                     "MB: rise of peak resident memory over 3 calls, above the process's size before them",
                     f"others: share of the CPUs other processes used in the second before the point "
                     f"(above {100 * BUSY:.0f}% the script stops unless --force)",
                 ])
    has_torch = torch is not None
    conv_points = QUICK_CONV if args.quick else [(16, s) for s in IMAGE_SIZES] + [(n, 16) for n in BATCH_SIZES]
    training_points = QUICK_TRAINING if args.quick else TRAINING

    rows, ratios, floor_ratios, busiest = [], [], [], 0.0
    for n, size in conv_points:
        load = check_load(args.quick, args.force)
        busiest = max(busiest, load or 0.0)
        result = measure("conv", (n, size), has_torch, repeats, settings)
        ms, memory = result["ms"], result["memory"]
        speed = ratio(ms["ours"], ms.get("torch"))
        floor = ratio(ms["floor"], ms.get("torch"))
        if speed:
            ratios.append(speed)
            floor_ratios.append(floor)
        rows.append([str(n), f"{size}x{size}", fmt(ms["ours"]), fmt(ms.get("torch")), fmt(speed), fmt(ms["bound"]),
                     fmt(ratio(ms["bound"], ms.get("torch"))), fmt(ms["floor"]), fmt(floor), megabytes(memory["ours"]),
                     megabytes(memory.get("torch")), fmt(ratio(memory["ours"], memory.get("torch"))),
                     f"{100 * load:.0f}%" if load is not None else "-", result["noise"]])
    print_table(["N", "H x W", "ours ms", "torch ms", "ours/torch", "bound ms", "bound/torch", "floor ms",
                 "floor/torch", "ours MB", "torch MB", "MB ratio", "others", "noise"], rows,
                title="conv2d forward+backward (bound/torch above 1: numpy's GEMMs alone take longer than PyTorch's "
                      "whole conv; floor/torch: the same for the composition's array work)")
    if ratios:
        print(f"ours/torch: geometric mean {geomean(ratios):.2f}, largest {max(ratios):.2f};  "
              f"floor/torch: geometric mean {geomean(floor_ratios):.2f}, largest {max(floor_ratios):.2f}")

    rows = []
    for model, batch in training_points:
        load = check_load(args.quick, args.force)
        busiest = max(busiest, load or 0.0)
        result = measure("training", (model, batch), has_torch, repeats, settings)
        ms, memory = result["ms"], result["memory"]
        per_image = {name: value / batch if value is not None else None for name, value in memory.items()}
        rows.append([model, str(batch), fmt(ms["ours"]), fmt(ms.get("torch")), fmt(ratio(ms["ours"], ms.get("torch"))),
                     fmt(per_image["ours"] * MB, 3) if per_image["ours"] is not None else "-",
                     fmt(per_image["torch"] * MB, 3) if per_image.get("torch") is not None else "-",
                     fmt(ratio(memory["ours"], memory.get("torch"))),
                     f"{100 * load:.0f}%" if load is not None else "-", result["noise"]])
    print_table(["model", "batch", "ours ms", "torch ms", "ours/torch", "ours MB/image", "torch MB/image",
                 "MB ratio", "others", "noise"], rows,
                title="one training step (forward, cross-entropy, backward, optimizer step), train.py's optimizer")
    if busiest > BUSY:
        print(f"\nnote: other processes used up to {100 * busiest:.0f}% of the CPUs during this run: the numbers are "
              "not a measurement of a quiet machine")
    if not has_torch:
        print("torch not importable: no PyTorch columns")


if __name__ == "__main__":
    main()
