"""`tinygrad-conv derive`: the autodiff engine's conv gradients beside the closed form, digit for digit.

For integer-valued float64 data every sum is exact, so the two routes must agree bit for bit:
    dL/dW = dL/dY · im2col(X)ᵀ                       (engine: MatMul's rule; closed form: an explicit product)
    dL/dX = full conv of dL/dY with the flipped kernel (engine: col2im, Unfold's rule; closed form: a convolution)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tinygrad_conv import closed_form
from tinygrad_conv import functional as F
from tinygrad_conv.tensor import Tensor


def compare(x: np.ndarray, weight: np.ndarray, grad_output_seed: int = 0, **conv_args) -> dict[str, np.ndarray]:
    """Engine and closed-form gradients of one conv2d for an integer-valued grad_output."""
    x_t, w_t = Tensor(x, requires_grad=True), Tensor(weight, requires_grad=True)
    y = F.conv2d(x_t, w_t, **conv_args)
    grad_output = np.random.default_rng(grad_output_seed).integers(-3, 4, y.shape).astype(np.float64)
    y.backward(grad_output)
    return {
        "y": y.data,
        "grad_output": grad_output,
        "engine_dW": w_t.grad,
        "closed_dW": closed_form.conv2d_weight_grad(x, weight.shape, grad_output, **conv_args),
        "engine_dX": x_t.grad,
        "closed_dX": closed_form.conv2d_input_grad(x.shape, weight, grad_output, **conv_args),
    }


def _show(name: str, array: np.ndarray, out: Callable[[str], None]) -> None:
    out(f"{name} {array.shape}:")
    out(np.array2string(array.squeeze(), precision=0, floatmode="fixed", suppress_small=True))


def report(out: Callable[[str], None] = print) -> bool:
    """Print both examples; True when every gradient matches exactly."""
    all_exact = True
    out("1) The flipped-kernel example of the README: a 4×4 image, kernel [[a, b], [c, d]] = [[1, 2], [3, 4]],")
    out("   padded top/left so the output keeps the input's size (padding=((1, 0), (1, 0))).")
    x = np.arange(1, 17, dtype=np.float64).reshape(1, 1, 4, 4)
    weight = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    result = compare(x, weight, padding=((1, 0), (1, 0)))
    _show("dL/dY", result["grad_output"], out)
    for grad in ("dW", "dX"):
        _show(f"autodiff {grad}", result[f"engine_{grad}"], out)
        _show(f"closed form {grad}", result[f"closed_{grad}"], out)
    g = result["grad_output"][0, 0]
    terms = " + ".join(f"({g[i, j]:.0f})·{k}" if g[i, j] < 0 else f"{g[i, j]:.0f}·{k}"
                       for (i, j), k in zip([(0, 0), (0, 1), (1, 0), (1, 1)], "dcba"))
    out("   pixel p = x[0,0] feeds y00 through d, y01 through c, y10 through b, y11 through a (the flipped kernel):")
    out(f"   dL/dp = {terms} = {terms.replace('d', '4').replace('c', '3').replace('b', '2').replace('a', '1')}"
        f" = {result['engine_dX'][0, 0, 0, 0]:.0f}")
    exact = all(np.array_equal(result[f"engine_{g}"], result[f"closed_{g}"]) for g in ("dW", "dX"))
    out(f"   exact match: {exact}\n")
    all_exact &= exact

    args = {"stride": 2, "padding": ((1, 2), (0, 1)), "dilation": (2, 1), "groups": 2}
    out(f"2) A random case: input (2, 4, 9, 8), weight (6, 2, 3, 2), {args}")
    rng = np.random.default_rng(1)
    x = rng.integers(-3, 4, (2, 4, 9, 8)).astype(np.float64)
    weight = rng.integers(-3, 4, (6, 2, 3, 2)).astype(np.float64)
    result = compare(x, weight, grad_output_seed=2, **args)
    for grad in ("dW", "dX"):
        difference = np.abs(result[f"engine_{grad}"] - result[f"closed_{grad}"]).max()
        out(f"   {grad}: shape {result[f'engine_{grad}'].shape}, max |autodiff − closed form| = {difference:g}")
    exact = all(np.array_equal(result[f"engine_{g}"], result[f"closed_{g}"]) for g in ("dW", "dX"))
    out(f"   exact match: {exact}")
    return all_exact & exact
