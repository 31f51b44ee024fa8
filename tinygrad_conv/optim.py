"""Optimizers: PyTorch's SGD and Adam update rules, applied in place to each parameter's array.

With g = param.grad, θ the parameter, λ the weight decay (added to the gradient: L2, as torch.optim):

    SGD:   g ← g + λθ;   b ← g on the first step, else b ← μb + (1 − dampening)g;
           g ← g + μb if nesterov else b (when μ > 0);   θ ← θ − lr·g
    Adam:  g ← g + λθ;   m ← β₁m + (1 − β₁)g;   v ← β₂v + (1 − β₂)g²;   t ← t + 1
           θ ← θ − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)

All state lives in the parameter's dtype: hyperparameters are Python floats, which numpy treats as weak,
so a float32 model stays float32. Parameters whose grad is None (unused this step) are skipped.

`state_dict()` / `load_state_dict()` save and restore the hyperparameters and every per-parameter buffer
(copies, in torch.optim's layout), so a run resumed from them continues bit for bit as if never stopped.
The schedulers StepLR and CosineAnnealingLR set `optimizer.lr` once per `step()`, with torch.optim.lr_scheduler's
own (recursive) formulas, so their learning rates equal PyTorch's to the last bit:

    StepLR:             lr ← lr·γ when the epoch t is a non-zero multiple of step_size
    CosineAnnealingLR:  lr ← η_min + (lr − η_min)·(1 + cos(πt/T_max)) / (1 + cos(π(t − 1)/T_max)),
                        which is η_min + (lr₀ − η_min)·(1 + cos(πt/T_max))/2 for t ≤ T_max
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from tinygrad_conv.conv_args import is_int
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

    hyperparameter_names: tuple[str, ...] = ()  # saved in state_dict()["param_groups"][0]
    state_kinds: dict[str, str] = {}  # what a stepped parameter's state holds: {name: "array" or "count"}

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
            if param.op is not None:
                raise TypeError(f"params[{index}] is the result of an op, not a leaf tensor: it cannot be optimized")
            if id(param) in first_index:
                raise ValueError(f"params[{index}] is the same tensor as params[{first_index[id(param)]}]: "
                                 "each parameter must appear once")
            first_index[id(param)] = index
        self.params: list[Tensor] = params
        self.state: dict[Tensor, dict[str, Any]] = {param: {} for param in params}

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

    # ------------------------------------------------------------ hyperparameters and checkpoints

    @staticmethod
    def _checked(**hyperparameters: Any) -> dict[str, Any]:
        """The hyperparameters, validated and normalised (Python floats and bools); a subclass defines it."""
        raise NotImplementedError

    def _hyperparameters(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.hyperparameter_names}

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state in torch.optim's layout, as copies that later steps do not change:

            {"state": {index: {"momentum_buffer": ndarray} or {"step": int, "exp_avg": …, "exp_avg_sq": …}},
             "param_groups": [{"lr": …, <the other hyperparameters>, "params": [0, 1, …, n − 1]}]}

        Indices are positions in the parameter list; a parameter that has not been stepped has no entry.
        """
        state = {}
        for index, param in enumerate(self.params):
            if self.state[param]:
                state[index] = {name: value.copy() if isinstance(value, np.ndarray) else value
                                for name, value in self.state[param].items()}
        group = dict(self._hyperparameters(), params=list(range(len(self.params))))
        return {"state": state, "param_groups": [group]}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore hyperparameters and per-parameter state saved by state_dict() (arrays are copied and cast to
        each parameter's dtype). The parameters must be the same in number, order and shapes; otherwise one
        ValueError lists every problem and nothing is loaded."""
        name = type(self).__name__
        if not isinstance(state_dict, Mapping) or set(state_dict) != {"state", "param_groups"}:
            found = sorted(map(str, state_dict)) if isinstance(state_dict, Mapping) else type(state_dict).__name__
            raise ValueError(f"{name}.load_state_dict expects a mapping with keys 'state' and 'param_groups' "
                             f"(from {name}.state_dict()), got {found}")
        groups, saved_state = state_dict["param_groups"], state_dict["state"]
        if not isinstance(groups, (list, tuple)) or len(groups) != 1 or not isinstance(groups[0], Mapping):
            raise ValueError(f"{name}.load_state_dict: 'param_groups' must be a list of one mapping, "
                             f"got {groups!r:.80}")
        if not isinstance(saved_state, Mapping):
            raise ValueError(f"{name}.load_state_dict: 'state' must be a mapping, got {type(saved_state).__name__}")
        group = dict(groups[0])
        problems: list[str] = []
        indices = group.pop("params", None)
        count = len(self.params)
        if not isinstance(indices, (list, tuple)) or list(indices) != list(range(len(indices))):
            problems.append(f"param_groups[0]['params'] must be the list [0, 1, …], got {indices!r:.80}")
        elif len(indices) != count:
            problems.append(f"the state dict is for {len(indices)} parameters, the optimizer has {count}")
        expected = set(self._hyperparameters())
        problems += [f"missing hyperparameter {key!r}" for key in sorted(expected - set(group))]
        problems += [f"unexpected hyperparameter {key!r}" for key in sorted(set(group) - expected, key=str)]
        hyperparameters: dict[str, Any] = {}
        if not problems:
            try:  # a scheduler may have annealed lr to 0, which a checkpoint must be able to restore
                hyperparameters = self._checked(**group, lr_may_be_zero=True)
            except (TypeError, ValueError) as error:
                problems.append(str(error))
        new_state: dict[int, dict[str, Any]] = {}
        for index, entry in saved_state.items():
            if not is_int(index) or not 0 <= index < count:
                problems.append(f"state key {index!r} is not a parameter index in [0, {count})")
                continue
            new_state[int(index)] = self._checked_state(index, entry, self.params[index], problems)
        if problems:
            raise ValueError(f"{name}.load_state_dict: the state dict does not fit this optimizer "
                             f"({len(problems)} problem{'s' * (len(problems) > 1)}; nothing was loaded):\n  "
                             + "\n  ".join(problems))
        vars(self).update(hyperparameters)
        for index, param in enumerate(self.params):
            self.state[param] = new_state.get(index, {})

    def _checked_state(self, index: int, entry: Any, param: Tensor, problems: list[str]) -> dict[str, Any]:
        """One parameter's saved state, validated against state_kinds and the parameter's shape, copied."""
        if not isinstance(entry, Mapping):
            problems.append(f"state[{index}] must be a mapping, got {type(entry).__name__}")
            return {}
        if set(entry) != set(self.state_kinds):
            problems.append(f"state[{index}] has keys {sorted(map(str, entry))}, expected {sorted(self.state_kinds)}")
            return {}
        checked: dict[str, Any] = {}
        for key, kind in self.state_kinds.items():
            value = entry[key]
            if kind == "count":
                number = value.item() if isinstance(value, np.ndarray) and value.shape == () else value
                if isinstance(number, bool) or not isinstance(number, numbers.Real) or number != int(number) \
                        or number < 0:
                    problems.append(f"state[{index}][{key!r}] must be a whole number >= 0, got {value!r}")
                else:
                    checked[key] = int(number)
                continue
            array = np.asarray(value)
            if array.dtype.kind not in "biuf":
                problems.append(f"state[{index}][{key!r}] holds {array.dtype} data, expected real numbers")
            elif array.shape != param.shape:
                problems.append(f"state[{index}][{key!r}] has shape {array.shape}, its parameter has {param.shape}")
            else:
                checked[key] = array.astype(param.dtype, copy=True)
        return checked


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, dampening, Nesterov momentum and L2 weight decay."""

    hyperparameter_names = ("lr", "momentum", "dampening", "weight_decay", "nesterov")
    state_kinds = {"momentum_buffer": "array"}

    def __init__(self, params: Iterable[Tensor], lr: float, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False):
        vars(self).update(self._checked(lr=lr, momentum=momentum, dampening=dampening,
                                        weight_decay=weight_decay, nesterov=nesterov))
        super().__init__(params)

    @staticmethod
    def _checked(lr: Any, momentum: Any, dampening: Any, weight_decay: Any, nesterov: Any,
                 lr_may_be_zero: bool = False) -> dict[str, Any]:
        values = dict(lr=_number(lr, "lr", positive=not lr_may_be_zero), momentum=_number(momentum, "momentum"),
                      dampening=_number(dampening, "dampening"), weight_decay=_number(weight_decay, "weight_decay"))
        if not isinstance(nesterov, bool):
            raise TypeError(f"nesterov must be True or False, got {nesterov!r}")
        if nesterov and (values["momentum"] == 0 or values["dampening"] != 0):
            raise ValueError(f"nesterov=True needs momentum > 0 and dampening = 0, got momentum={momentum!r} "
                             f"and dampening={dampening!r}")
        return dict(values, nesterov=nesterov)

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

    hyperparameter_names = ("lr", "betas", "eps", "weight_decay")
    state_kinds = {"step": "count", "exp_avg": "array", "exp_avg_sq": "array"}

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0):
        vars(self).update(self._checked(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        super().__init__(params)

    @staticmethod
    def _checked(lr: Any, betas: Any, eps: Any, weight_decay: Any, lr_may_be_zero: bool = False) -> dict[str, Any]:
        lr = _number(lr, "lr", positive=not lr_may_be_zero)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        for i, beta in enumerate(betas):
            if _number(beta, f"betas[{i}]") >= 1:
                raise ValueError(f"betas[{i}] must be in [0, 1), got {beta!r}")
        return dict(lr=lr, betas=(float(betas[0]), float(betas[1])), eps=_number(eps, "eps"),
                    weight_decay=_number(weight_decay, "weight_decay"))

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


# ---------------------------------------------------------------- learning-rate schedulers


class LRScheduler:
    """Sets `optimizer.lr` from the epoch count `last_epoch`: construction is epoch 0 (and sets lr to the first
    value of the schedule), each `step()` — call it after `optimizer.step()`, once per epoch — adds one.

    As in torch.optim.lr_scheduler, the lr is updated from the optimizer's current lr (recursively), so a
    change made to `optimizer.lr` from outside carries on; get_last_lr() is a list with one lr per
    parameter group (ours have one)."""

    def __init__(self, optimizer: Optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__} needs a tinygrad_conv.optim Optimizer, "
                            f"got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lrs: list[float] = [optimizer.lr]
        self.last_epoch = -1
        self._last_lr: list[float] = [optimizer.lr]
        self.step()

    def _next_lr(self, lr: float) -> float:
        """The lr for epoch self.last_epoch, given the lr of the epoch before (or the initial lr at epoch 0)."""
        raise NotImplementedError

    def step(self) -> None:
        """Advance one epoch and set optimizer.lr to its learning rate."""
        self.last_epoch += 1
        self.optimizer.lr = self._next_lr(self.optimizer.lr)
        self._last_lr = [self.optimizer.lr]

    def get_last_lr(self) -> list[float]:
        """[the lr this scheduler set last]."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """Everything but the optimizer: the schedule's arguments, base_lrs, last_epoch and the last lr."""
        return {key: list(value) if isinstance(value, list) else value
                for key, value in vars(self).items() if key != "optimizer"}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a state_dict() of the same kind of scheduler; the optimizer's lr is restored by the
        optimizer's own load_state_dict, as in PyTorch."""
        expected = set(self.state_dict())
        if not isinstance(state_dict, Mapping) or set(state_dict) != expected:
            found = sorted(map(str, state_dict)) if isinstance(state_dict, Mapping) else type(state_dict).__name__
            raise ValueError(f"{type(self).__name__}.load_state_dict expects the keys {sorted(expected)}, "
                             f"got {found}")
        restored = dict(state_dict)
        restored.update(self._checked(**{name: restored[name] for name in self._argument_names}))
        if not is_int(restored["last_epoch"]) or restored["last_epoch"] < 0:
            raise ValueError(f"last_epoch must be an int >= 0, got {restored['last_epoch']!r}")
        for key in ("base_lrs", "_last_lr"):
            values = restored[key]
            if not isinstance(values, (list, tuple)) or len(values) != 1:
                raise ValueError(f"{key} must be a list of one learning rate, got {values!r}")
            restored[key] = [_number(values[0], key)]
        restored["last_epoch"] = int(restored["last_epoch"])
        vars(self).update(restored)

    _argument_names: tuple[str, ...] = ()

    @staticmethod
    def _checked(**arguments: Any) -> dict[str, Any]:
        raise NotImplementedError


class StepLR(LRScheduler):
    """Multiply the lr by gamma every step_size epochs: lr₀·γ^⌊t/step_size⌋ (computed as PyTorch does, by
    multiplying the current lr, so the values are PyTorch's bit for bit)."""

    _argument_names = ("step_size", "gamma")

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1):
        vars(self).update(self._checked(step_size=step_size, gamma=gamma))
        super().__init__(optimizer)

    @staticmethod
    def _checked(step_size: Any, gamma: Any) -> dict[str, Any]:
        if not is_int(step_size) or step_size < 1:
            raise ValueError(f"step_size must be a positive int, got {step_size!r}")
        return dict(step_size=int(step_size), gamma=_number(gamma, "gamma"))

    def _next_lr(self, lr: float) -> float:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return lr
        return lr * self.gamma


class CosineAnnealingLR(LRScheduler):
    """Anneal the lr from its initial value lr₀ to eta_min along half a cosine over T_max epochs:
    η_min + (lr₀ − η_min)·(1 + cos(πt/T_max))/2 at epoch t ≤ T_max; past T_max it rises again, as PyTorch's
    (whose recursive formula this computes, so the values are PyTorch's bit for bit)."""

    _argument_names = ("T_max", "eta_min")

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0):
        vars(self).update(self._checked(T_max=T_max, eta_min=eta_min))
        super().__init__(optimizer)

    @staticmethod
    def _checked(T_max: Any, eta_min: Any) -> dict[str, Any]:
        if not is_int(T_max) or T_max < 1:
            raise ValueError(f"T_max must be a positive int, got {T_max!r}")
        return dict(T_max=int(T_max), eta_min=_number(eta_min, "eta_min"))

    def _next_lr(self, lr: float) -> float:
        epoch, period, eta_min, base_lr = self.last_epoch, self.T_max, self.eta_min, self.base_lrs[0]
        if epoch == 0:
            return lr
        if (epoch - 1 - period) % (2 * period) == 0:  # the bottom of the cosine: the formula below would be 0/0
            return lr + (base_lr - eta_min) * (1 - math.cos(math.pi / period)) / 2
        return ((1 + math.cos(math.pi * epoch / period)) / (1 + math.cos(math.pi * (epoch - 1) / period))
                * (lr - eta_min) + eta_min)


__all__ = ["Optimizer", "SGD", "Adam", "LRScheduler", "StepLR", "CosineAnnealingLR"]
