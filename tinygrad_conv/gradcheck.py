"""Finite-difference gradient check: is the graph's dL/dx what central differences measure?

For a random fixed v, L(x) = Σ v ⊙ fn(*inputs). The analytic gradient is `L.backward()`; the numeric one,
per element of every input, is (L(x + eps·e_i) − L(x − eps·e_i)) / (2·eps). As PyTorch's gradcheck:
float64, eps 1e-6, and |analytic − numeric| ≤ atol + rtol·|numeric| for every element.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from tinygrad_conv.tensor import Tensor, no_grad


class GradcheckError(AssertionError):
    """The analytic and numeric gradients of an input disagree."""


def gradcheck(
    fn: Callable[..., Tensor],
    inputs: Sequence[Tensor],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
) -> bool:
    """Compare backward() with central differences for every input that requires grad; True, or GradcheckError
    naming the input, the worst element's index, and both values."""
    inputs = list(inputs)
    for k, x in enumerate(inputs):
        if not isinstance(x, Tensor):
            raise TypeError(f"gradcheck inputs must be Tensors, input {k} is {type(x).__name__}")
        if x.requires_grad and x.dtype != np.float64:
            raise TypeError(f"gradcheck needs float64 inputs (finite differences), input {k} is {x.dtype}")
    checked = [k for k, x in enumerate(inputs) if x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True")

    out = fn(*inputs)
    v = np.random.default_rng(seed).standard_normal(out.shape)
    for k in checked:
        inputs[k].grad = None
    (out * v).sum().backward()

    def objective() -> float:
        with no_grad():
            return float(np.sum(fn(*inputs).data * v))

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
            raise GradcheckError(
                f"gradcheck failed for {name} of shape {x.shape} at index {tuple(int(i) for i in worst)}: "
                f"analytic {analytic[worst]:.10g}, numeric {numeric[worst]:.10g} (atol={atol}, rtol={rtol})"
            )
    return True
