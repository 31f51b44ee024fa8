"""Optimizers: PyTorch's SGD and Adam update rules, applied in place to each parameter's array.

With g = param.grad, θ the parameter, λ the weight decay (added to the gradient: L2, as torch.optim):

    SGD:   g ← g + λθ;   b ← g on the first step, else b ← μb + (1 − dampening)g;
           g ← g + μb if nesterov else b (when μ > 0);   θ ← θ − lr·g
    Adam:  g ← g + λθ;   m ← β₁m + (1 − β₁)g;   v ← β₂v + (1 − β₂)g²;   t ← t + 1
           θ ← θ − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)

All state lives in the parameter's dtype: hyperparameters are Python floats, which numpy treats as weak,
so a float32 model stays float32. Parameters whose grad is None (unused this step) are skipped.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np

from tinygrad_conv.allocator import keep_freed_memory
from tinygrad_conv.tensor import Tensor


def _number(value: Any, name: str, minimum: float = 0.0, positive: bool = False) -> float:
    """A finite real number ≥ minimum (> minimum if positive), as a Python float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < minimum or (positive and value == minimum):
        relation = ">" if positive else ">="
        raise ValueError(f"{name} must be a finite number {relation} {minimum:g}, got {value!r}")
    return value


class Optimizer:
    """Holds the parameters (any iterable of leaf Tensors with requires_grad, e.g. model.parameters())
    and per-parameter `state` (a dict per parameter, as torch.optim's)."""

    def __init__(self, params: Iterable[Tensor]):
        if isinstance(params, Tensor):
            raise TypeError("params must be an iterable of Parameters, got a single Tensor: pass [tensor]")
        try:
            params = list(params)
        except TypeError:
            hint = " (pass model.parameters())" if hasattr(params, "parameters") else ""
            raise TypeError(f"params must be an iterable of Parameters, got {type(params).__name__}{hint}") from None
        if not params:
            raise ValueError("the optimizer got an empty parameter list (did the model define no parameters?)")
        first_index: dict[int, int] = {}
        for index, param in enumerate(params):
            if not isinstance(param, Tensor):
                raise TypeError(f"params[{index}] must be a Parameter, got {type(param).__name__}")
            if not param.requires_grad:
                raise TypeError(f"params[{index}] is a Tensor with requires_grad=False: it would never get a grad")
            if param._ctx is not None:
                raise TypeError(f"params[{index}] is the result of an op, not a leaf tensor: it cannot be optimized")
            if id(param) in first_index:
                raise ValueError(f"params[{index}] is the same tensor as params[{first_index[id(param)]}]: "
                                 "each parameter must appear once")
            first_index[id(param)] = index
        self.params: list[Tensor] = params
        self.state: dict[Tensor, dict[str, Any]] = {param: {} for param in params}
        keep_freed_memory()  # a training loop frees and reallocates the same temporaries every step: allocator.py

    def zero_grad(self) -> None:
        """Forget every gradient (grad = None), so the next backward() starts from zero."""
        for param in self.params:
            param.grad = None

    def step(self) -> None:
        """Update every parameter that has a grad, in place."""
        for param in self.params:
            if param.grad is not None:
                self._update(param, self._grad(param), self.state[param])

    def _update(self, param: Tensor, grad: np.ndarray, state: dict[str, Any]) -> None:
        raise NotImplementedError

    @staticmethod
    def _grad(param: Tensor) -> np.ndarray:
        grad = param.grad
        if grad.shape != param.shape:
            raise ValueError(f"a parameter of shape {param.shape} has a grad of shape {grad.shape}")
        return grad if grad.dtype == param.dtype else grad.astype(param.dtype)


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, dampening, Nesterov momentum and L2 weight decay."""

    def __init__(self, params: Iterable[Tensor], lr: float, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False):
        self.lr = _number(lr, "lr", positive=True)
        self.momentum = _number(momentum, "momentum")
        self.dampening = _number(dampening, "dampening")
        self.weight_decay = _number(weight_decay, "weight_decay")
        if not isinstance(nesterov, bool):
            raise TypeError(f"nesterov must be True or False, got {nesterov!r}")
        if nesterov and (self.momentum == 0 or self.dampening != 0):
            raise ValueError(f"nesterov=True needs momentum > 0 and dampening = 0, got momentum={momentum!r} "
                             f"and dampening={dampening!r}")
        self.nesterov = nesterov
        super().__init__(params)

    def _update(self, param: Tensor, grad: np.ndarray, state: dict[str, Any]) -> None:
        lr, momentum, weight_decay = float(self.lr), float(self.momentum), float(self.weight_decay)
        if weight_decay:
            grad = grad + weight_decay * param.data
        if momentum:
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = state["momentum_buffer"] = grad.copy()
            else:
                buffer *= momentum
                buffer += (1 - float(self.dampening)) * grad
            grad = grad + momentum * buffer if self.nesterov else buffer
        param.data -= lr * grad


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; weight_decay is added to the gradient (L2, not AdamW)."""

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0):
        self.lr = _number(lr, "lr", positive=True)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        for i, beta in enumerate(betas):
            if _number(beta, f"betas[{i}]") >= 1:
                raise ValueError(f"betas[{i}] must be in [0, 1), got {beta!r}")
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = _number(eps, "eps")
        self.weight_decay = _number(weight_decay, "weight_decay")
        super().__init__(params)

    def _update(self, param: Tensor, grad: np.ndarray, state: dict[str, Any]) -> None:
        lr, eps, weight_decay = float(self.lr), float(self.eps), float(self.weight_decay)
        beta1, beta2 = float(self.betas[0]), float(self.betas[1])
        if weight_decay:
            grad = grad + weight_decay * param.data
        if not state:
            state.update(step=0, exp_avg=np.zeros_like(param.data), exp_avg_sq=np.zeros_like(param.data))
        state["step"] += 1
        step, exp_avg, exp_avg_sq = state["step"], state["exp_avg"], state["exp_avg_sq"]
        exp_avg *= beta1
        exp_avg += (1 - beta1) * grad
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * np.square(grad)
        step_size = lr / (1 - beta1**step)
        denom = np.sqrt(exp_avg_sq)
        denom /= math.sqrt(1 - beta2**step)
        denom += eps
        np.divide(exp_avg, denom, out=denom)
        denom *= step_size
        param.data -= denom


__all__ = ["Optimizer", "SGD", "Adam"]
