"""Finite-difference gradient checks: is the graph's dL/dx what central differences measure (`gradcheck`), and is
its second derivative what central differences of the first measure (`gradgradcheck`)?

For a random fixed v, L(x) = Σ v ⊙ fn(*inputs). The analytic gradient is `L.backward()`; the numeric one,
per element of every input, is (L(x + eps·e_i) − L(x − eps·e_i)) / (2·eps). As PyTorch's gradcheck:
float64, eps 1e-6, and |analytic − numeric| ≤ atol + rtol·|numeric| for every element.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tinygrad_conv.conv_args import is_int
from tinygrad_conv.tensor import Tensor, enable_grad, grad, no_grad


class GradcheckError(AssertionError):
    """The analytic and numeric gradients of an input disagree."""


def gradcheck(
    fn: Callable[..., Tensor],
    inputs: Tensor | Sequence[Tensor],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
) -> bool:
    """Compare backward() with central differences for every input that requires grad; True, or GradcheckError
    naming the input, the worst element's index, and both values.

    `inputs` is one Tensor or a list/tuple of them (as PyTorch's); those with requires_grad=True must be float64.
    An output that does not require grad has gradient zero, as in PyTorch: it passes only if fn ignores the inputs.
    """
    if not callable(fn):
        raise TypeError(f"gradcheck: fn must be callable, got {type(fn).__name__}")
    inputs = _input_list(inputs)
    for name, value, strictly_positive in (("eps", eps, True), ("atol", atol, False), ("rtol", rtol, False)):
        _check_tolerance(name, value, strictly_positive)
    if not is_int(seed):
        raise TypeError(f"gradcheck: seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"gradcheck: seed must be >= 0, got {seed}")
    checked = [k for k, x in enumerate(inputs) if x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True")

    out = _call(fn, inputs)
    v = np.random.default_rng(seed).standard_normal(out.shape)
    for k in checked:
        inputs[k].grad = None
    if out.requires_grad:  # else no input reaches the output through the graph: every analytic gradient is 0
        (out * v).sum().backward()

    def objective() -> float:
        with no_grad():
            return float(np.sum(_call(fn, inputs).data * v))

    for k in checked:
        x = inputs[k]
        analytic = np.zeros(x.shape) if x.grad is None else x.grad
        numeric = np.zeros(x.shape)
        for i in np.ndindex(x.shape):  # perturb the input's own array in place, whatever its memory layout
            original = x.data[i]
            x.data[i] = original + eps
            plus = objective()
            x.data[i] = original - eps
            minus = objective()
            x.data[i] = original
            numeric[i] = (plus - minus) / (2 * eps)
        excess = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
        if np.any(excess > 0):
            worst = np.unravel_index(int(np.argmax(excess)), x.shape)
            name = f"input {k}" + (f" ({x.name!r})" if x.name else "")
            hint = "" if out.requires_grad else (
                "; fn's output does not require grad, so backward() reached no input "
                "(was it computed under no_grad(), through detach() or through numpy?)"
            )
            raise GradcheckError(
                f"gradcheck failed for {name} of shape {x.shape} at index {tuple(int(i) for i in worst)}: "
                f"analytic {analytic[worst]:.10g}, numeric {numeric[worst]:.10g} (atol={atol}, rtol={rtol}){hint}"
            )
    return True


def gradgradcheck(
    fn: Callable[..., Tensor],
    inputs: Tensor | Sequence[Tensor],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
) -> bool:
    """Check second derivatives, as PyTorch's gradgradcheck: gradcheck of the first derivative itself.

    With random fixed v (shaped like fn's output) and w_k (shaped like input k), the first derivative
    G(x) = Σ_k Σ w_k ⊙ dL/dx_k, L = Σ v ⊙ fn(x), is computed by `grad(..., create_graph=True)`; its own gradient
    dG/dx = H·w (the Hessian-vector product, for every input) is then compared with central differences of G.
    True, or GradcheckError naming the input.
    """
    inputs = _input_list(inputs)
    checked = [k for k, x in enumerate(inputs) if x.requires_grad]
    if not checked:
        raise ValueError("gradgradcheck: no input has requires_grad=True")
    rng = np.random.default_rng(seed if is_int(seed) and seed >= 0 else 0)
    v = rng.standard_normal(_call(fn, inputs).shape)
    ws = [rng.standard_normal(inputs[k].shape) for k in checked]

    def first_derivative(*xs: Tensor) -> Tensor:
        with enable_grad():  # gradcheck evaluates G under no_grad; G itself needs fn's graph
            out = _call(fn, list(xs))
            if not out.requires_grad:
                return Tensor(0.0)
            grads = grad(out, [xs[k] for k in checked], Tensor(v), create_graph=True, allow_unused=True)
            terms = [(g * w).sum() for g, w in zip(grads, ws) if g is not None]
            return sum(terms[1:], terms[0]) if terms else Tensor(0.0)

    return gradcheck(first_derivative, inputs, eps=eps, atol=atol, rtol=rtol, seed=seed)


def _input_list(inputs: Any) -> list[Tensor]:
    """One Tensor, or a list/tuple of Tensors, each float64 if it requires grad."""
    if isinstance(inputs, Tensor):
        return [inputs]
    if not isinstance(inputs, Sequence) or isinstance(inputs, (str, bytes)):
        raise TypeError(f"gradcheck: inputs must be a Tensor or a list/tuple of Tensors, got {type(inputs).__name__}")
    inputs = list(inputs)
    for k, x in enumerate(inputs):
        if not isinstance(x, Tensor):
            raise TypeError(f"gradcheck: inputs must be Tensors, input {k} is {type(x).__name__}")
        if x.requires_grad and x.dtype != np.float64:
            raise TypeError(f"gradcheck: inputs that require grad must be float64 (for finite differences), "
                            f"input {k} is {x.dtype}")
    return inputs


def _check_tolerance(name: str, value: Any, strictly_positive: bool) -> None:
    """eps must be a finite number > 0, atol and rtol finite numbers >= 0 (a NaN would pass every comparison)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"gradcheck: {name} must be a real number, got {type(value).__name__}")
    bound = "> 0" if strictly_positive else ">= 0"
    if not math.isfinite(value) or value < 0 or (strictly_positive and value == 0):
        raise ValueError(f"gradcheck: {name} must be finite and {bound}, got {value!r}")


def _call(fn: Callable[..., Tensor], inputs: list[Tensor]) -> Tensor:
    out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    return out
