"""conv2d forward + backward: ours (composed pad → im2col → matmul → reshape) beside PyTorch's conv2d, beside
PyTorch running the same composition (unfold → matmul → reshape, its autograd deriving the backward), and beside
the time numpy's BLAS needs for the conv's three GEMMs alone.

    python benchmarks/bench_conv.py [--quick] [--interleave block|call]

One repeat = forward, then backward of a fixed random grad_output, giving the gradients of input, weight and
bias. Ours and torch alternate repeat by repeat in this one process; medians after warm-up. A second table splits
our float32 time by primitive (a timer around each), next to torch's whole time: where the gap to torch lies.
"""

from __future__ import annotations

import time

import numpy as np
from common import (
    OpTimers,
    Worker,
    fmt,
    geomean,
    matmul_gflops,
    median,
    noise,
    print_table,
    start_interleaved,
    time_interleaved,
)

from tinygrad_conv import Tensor, kernels
from tinygrad_conv import functional as F
from tinygrad_conv.kernels import matmul

# (N, Cin, H, W, Cout, K, pad)
SHAPES = [
    (64, 1, 8, 8, 8, 3, 1),
    (64, 8, 8, 8, 16, 3, 1),
    (64, 1, 28, 28, 16, 5, 2),
    (64, 16, 14, 14, 32, 3, 1),
    (8, 3, 32, 32, 16, 3, 1),
    (16, 8, 64, 64, 16, 3, 1),  # bench_scaling.py's worst point
]
DTYPES = [np.float32, np.float64]

# conv2d's primitives, grouped for the anatomy table (keys of OpTimers: 'Op.forward' / 'Op.backward')
PARTS = {
    "GEMMs": ("MatMul.forward", "MatMul.backward"),
    "im2col": ("Unfold.forward",),
    "col2im": ("Unfold.backward",),
    "layout": ("Reshape.forward", "Reshape.backward", "Permute.forward", "Permute.backward"),
    "pad+bias": ("Pad.forward", "Pad.backward", "Add.forward", "Add.backward", "SumTo.forward"),
}


def shape_label(shape: tuple[int, ...]) -> str:
    n, c_in, h, w, c_out, k, pad = shape
    return f"{n}x{c_in}x{h}x{w}->{c_out} k{k} p{pad}"


def make_case(shape: tuple[int, ...], dtype: type, seed: int = 0) -> dict[str, np.ndarray]:
    n, c_in, h, w, c_out, k, pad = shape
    rng = np.random.default_rng(seed)
    ho, wo = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    return {
        "x": rng.standard_normal((n, c_in, h, w)).astype(dtype),
        "w": (rng.standard_normal((c_out, c_in, k, k)) / np.sqrt(c_in * k * k)).astype(dtype),
        "b": rng.standard_normal(c_out).astype(dtype),
        "g": rng.standard_normal((n, c_out, ho, wo)).astype(dtype),
    }


def ours_step(case: dict[str, np.ndarray], pad: int):
    x, w, b = (Tensor(case[k], requires_grad=True) for k in "xwb")
    grad_output = case["g"]

    def step() -> tuple[np.ndarray, ...]:
        x.grad = w.grad = b.grad = None
        F.conv2d(x, w, b, padding=pad).backward(grad_output)
        return x.grad, w.grad, b.grad

    return step


def torch_step(torch, case: dict[str, np.ndarray], pad: int, conv=None):
    """One forward + backward of `conv(x, weight, bias, padding)`: torch's conv2d unless given another."""
    conv = conv or torch.nn.functional.conv2d
    x, w, b = (torch.from_numpy(case[k].copy()).requires_grad_() for k in "xwb")
    grad_output = torch.from_numpy(case["g"].copy())

    def step() -> tuple:
        x.grad = w.grad = b.grad = None
        conv(x, w, b, padding=pad).backward(grad_output)
        return x.grad, w.grad, b.grad

    return step


def remote_torch_step(shape: tuple[int, ...], dtype_name: str, composed: bool = False):
    """torch_step for a Worker process: the same case (make_case is seeded), torch's conv2d or our composition."""
    import torch

    case = make_case(shape, np.dtype(dtype_name).type)
    return torch_step(torch, case, shape[-1], conv=torch_unfold_conv2d if composed else None)


def torch_unfold_conv2d(x, weight, bias, padding: int):
    """PyTorch's conv built as ours is: cols = unfold(x) laid out (Cin·K², N·Ho·Wo), one GEMM with the (Cout, Cin·K²)
    weight, reshape to (N, Cout, Ho, Wo), plus bias; autograd derives the backward (fold is unfold's adjoint). What
    the composition costs in the field's reference engine, beside its fused conv2d."""
    import torch

    n, _, h, w = x.shape
    c_out, _, k, _ = weight.shape
    ho, wo = h + 2 * padding - k + 1, w + 2 * padding - k + 1
    cols = torch.nn.functional.unfold(x, k, padding=padding)  # (N, Cin·K², Ho·Wo)
    cols = cols.permute(1, 0, 2).reshape(cols.shape[1], n * ho * wo)
    out = (weight.reshape(c_out, -1) @ cols).reshape(c_out, n, ho, wo).permute(1, 0, 2, 3)
    return out + bias.reshape(1, c_out, 1, 1)


def max_relative_error(ours: tuple[np.ndarray, ...], theirs: tuple) -> float:
    """max over (dX, dW, db) of max|ours − torch| / max|torch|."""
    return max(float(np.abs(a - t).max() / max(np.abs(t).max(), 1e-30)) for a, t in zip(ours, theirs))


def _gemm_operands(shape: tuple[int, ...], dtype: type):
    """The conv's sizes and random GEMM operands: (rows = Cin·K², pixels = N·Ho·Wo, w2d (Cout, rows),
    g (Cout, pixels), rng)."""
    n, c_in, h, w, c_out, k, pad = shape
    rows, pixels = c_in * k * k, n * (h + 2 * pad - k + 1) * (w + 2 * pad - k + 1)
    rng = np.random.default_rng(1)
    w2d = rng.standard_normal((c_out, rows)).astype(dtype)
    g = rng.standard_normal((c_out, pixels)).astype(dtype)
    return rows, pixels, w2d, g, rng


def three_gemms(w2d: np.ndarray, cols2d: np.ndarray, g: np.ndarray) -> np.ndarray:
    """The conv's three GEMMs: forward w2d @ cols2d, weight grad g @ cols2dᵀ (computed as the engine does it: (cols2d
    @ gᵀ)ᵀ when Cin·K² > Cout, see kernels.matmul), column grad w2dᵀ @ g, returned (ᵀ = transposed views, which BLAS
    reads without a copy)."""
    w2d @ cols2d
    matmul(g, cols2d.T)
    return w2d.T @ g


def gemm_bound_step(shape: tuple[int, ...], dtype: type):
    """(fn, FLOPs): fn runs the conv's three GEMMs (`three_gemms`) alone in numpy at the conv's exact shapes. Its time
    is the least numpy's BLAS allows for this conv."""
    rows, pixels, w2d, g, rng = _gemm_operands(shape, dtype)
    cols2d = rng.standard_normal((rows, pixels)).astype(dtype)
    return lambda: three_gemms(w2d, cols2d, g), 3 * 2 * g.shape[0] * rows * pixels


def composition_floor_step(shape: tuple[int, ...], dtype: type):
    """fn running the array work our composition cannot avoid, alone: build the columns (`kernels.im2col` of the
    already padded input), the conv's three GEMMs on them (`three_gemms`), fold the column gradient back
    (`kernels.col2im`). No padding, bias, layout copies or graph: the least time pad → im2col → matmul → reshape can
    take with numpy, whatever engine runs it."""
    n, c_in, h, w, _, k, pad = shape
    rows, pixels, w2d, g, rng = _gemm_operands(shape, dtype)
    padded = kernels.pad(rng.standard_normal((n, c_in, h, w)).astype(dtype), ((0, 0), (0, 0), (pad, pad), (pad, pad)),
                         0.0)
    unit = (1, 1)

    def step() -> None:
        cols = kernels.im2col(padded, (k, k), unit, unit)
        dcols = three_gemms(w2d, cols.reshape(rows, pixels), g)
        kernels.col2im(dcols.reshape(cols.shape), padded.shape[2:], (k, k), unit, unit)

    return step


def anatomy(shape: tuple[int, ...], repeats: int) -> dict[str, float]:
    """Mean ms of one float32 conv fwd+bwd in each part of PARTS, 'engine' (the rest: Tensor bookkeeping, the bias
    gradient's sum, the leaves' gradient copies) and 'total', with a timer around every primitive."""
    step = ours_step(make_case(shape, np.float32), shape[-1])
    for _ in range(3):
        step()
    with OpTimers() as timers:
        started = time.perf_counter()
        for _ in range(repeats):
            step()
        total = time.perf_counter() - started
    unknown = set(timers.seconds) - {key for keys in PARTS.values() for key in keys}
    if unknown:
        raise RuntimeError(f"conv2d ran primitives that PARTS does not group: {sorted(unknown)}")
    ms = {part: 1e3 * sum(timers.seconds.get(key, 0.0) for key in keys) / repeats for part, keys in PARTS.items()}
    ms["total"] = 1e3 * total / repeats
    ms["engine"] = ms["total"] - sum(ms[part] for part in PARTS)
    return ms


def print_anatomy(torch_ms: dict[tuple, float | None], repeats: int) -> None:
    rows = []
    for shape in SHAPES:
        ms, theirs = anatomy(shape, repeats), torch_ms.get(shape)
        rows.append([shape_label(shape), fmt(ms["total"]), *(fmt(ms[part], 3) for part in PARTS),
                     fmt(ms["engine"], 3), fmt(theirs), fmt(ms["GEMMs"] / theirs if theirs else None)])
    print_table(["float32, ms per fwd+bwd", "ours", *PARTS, "engine", "torch", "GEMMs/torch"], rows,
                title=f"where our time goes (means of {repeats} repeats, a timer around every primitive; "
                      "GEMMs/torch = our ratio if everything but the GEMMs took no time)")


def main() -> None:
    args, repeats, settings, torch = start_interleaved(
        __doc__,
        "conv2d forward+backward (dX, dW, db): tinygrad_conv vs PyTorch vs numpy's GEMM bound",
        [
            "bound ms: median time of the conv's three GEMMs alone in numpy at the same shapes, timed in turns with "
            "ours and torch (fwd w2d@cols2d, dW g@cols2d.T, dcols w2d.T@g; FLOPs 3 x 2*Cout*Cin*K^2*N*Ho*Wo) = the "
            "least time numpy's BLAS allows for this conv; ours/bound = how far we are from it (im2col, col2im, "
            "padding, bias, copies, graph).",
            "unfold ms: PyTorch running our composition (unfold -> one GEMM over N*Ho*Wo -> reshape, + bias; autograd "
            "derives the backward), timed in the same turns: what materialising the columns costs in the field's "
            "reference engine; torch ms is its fused conv2d.",
            "noise: interquartile range / median of the recorded repeats (ours/torch)",
        ],
    )

    rows, ratios, bound_ratios, errors = [], {d: [] for d in DTYPES}, {d: [] for d in DTYPES}, {d: 0.0 for d in DTYPES}
    composed_ratios, composed_errors = {d: [] for d in DTYPES}, {d: 0.0 for d in DTYPES}
    torch_f32_ms: dict[tuple, float | None] = {}
    worker = Worker() if torch is not None else None
    for dtype in DTYPES:
        for shape in SHAPES:
            case, pad = make_case(shape, dtype), shape[-1]
            bound_step, flops = gemm_bound_step(shape, dtype)
            fns = {"ours": ours_step(case, pad), "bound": bound_step}
            if worker is not None:
                fns["torch"] = worker.function("bench_conv:remote_torch_step", shape, np.dtype(dtype).name)
                fns["composed"] = worker.function("bench_conv:remote_torch_step", shape, np.dtype(dtype).name, True)
                expected = fns["torch"]()
                errors[dtype] = max(errors[dtype], max_relative_error(fns["ours"](), expected))
                composed_errors[dtype] = max(composed_errors[dtype], max_relative_error(fns["composed"](), expected))
            times = time_interleaved(fns, repeats, **settings)
            ours_ms = 1e3 * median(times["ours"])
            torch_ms = 1e3 * median(times["torch"]) if torch is not None else None
            composed_ms = 1e3 * median(times["composed"]) if torch is not None else None
            if composed_ms:
                composed_ratios[dtype].append(ours_ms / composed_ms)
            bound_s = median(times["bound"])
            ratio = ours_ms / torch_ms if torch_ms else None
            if ratio:
                ratios[dtype].append(ratio)
            bound_ratios[dtype].append(ours_ms / (1e3 * bound_s))
            if dtype is np.float32:
                torch_f32_ms[shape] = torch_ms
            rows.append([shape_label(shape), np.dtype(dtype).name, fmt(ours_ms), fmt(torch_ms), fmt(ratio),
                         fmt(composed_ms), fmt(ours_ms / composed_ms if composed_ms else None),
                         fmt(1e3 * bound_s, 3), fmt(ours_ms / (1e3 * bound_s), 1), fmt(flops / bound_s / 1e9, 1),
                         noise(times)])

    print_table(["shape N x Cin x H x W -> Cout", "dtype", "ours ms", "torch ms", "ours/torch", "unfold ms",
                 "ours/unfold", "bound ms", "ours/bound", "GEMM GF/s", "noise"], rows)
    for dtype in DTYPES:
        name = np.dtype(dtype).name
        line = f"geometric mean {name}: ours/bound {geomean(bound_ratios[dtype]):.2f}"
        if torch is not None:
            line += (f", ours/torch {geomean(ratios[dtype]):.2f}, ours/unfold {geomean(composed_ratios[dtype]):.2f}   "
                     f"(gradients checked against torch: max relative error {errors[dtype]:.1e}, "
                     f"unfold's {composed_errors[dtype]:.1e})")
        print(line)
    if torch is None:
        print("torch not importable: no PyTorch columns, no gradient check")

    if worker is not None:
        worker.close()
    print()
    print_anatomy(torch_f32_ms, repeats)

    big = 3 if args.quick else 10
    print(f"\nreference: numpy matmul 1024x1024x1024: float32 {matmul_gflops(1024, np.float32, big):.1f} GFLOP/s, "
          f"float64 {matmul_gflops(1024, np.float64, big):.1f} GFLOP/s (median of {big})")


if __name__ == "__main__":
    main()
