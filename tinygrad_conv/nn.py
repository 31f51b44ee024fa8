"""Layers with parameters, PyTorch's names and defaults, built on functional.py (no backward of their own).

A Module finds its parameters and sub-modules in its own attributes, in the order they were assigned:
`self.conv = Conv2d(...)` registers the layer as "conv" and its weight as "conv.weight" — no registration
calls. Calling a module runs `forward`, with PyTorch's forward hooks around it (`register_forward_hook`): the
drawings use them to cluster a model's ops by module.

Default initialisation is PyTorch's kaiming_uniform_(a=√5), which for both weight and bias is

    U(−1/√fan_in, 1/√fan_in),   fan_in = in_channels/groups · KH · KW  (Conv2d),  in_features  (Linear).

Parameters are float32 unless a dtype is given. Pass `rng` (a np.random.Generator or an int seed) to make
initialisation (and Dropout's masks) reproducible.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from tinygrad_conv import functional as F
from tinygrad_conv.conv_args import (
    check_bool,
    check_groups_divide,
    dropout_probability,
    is_int,
    pair,
    pool_padding,
    positive_int,
    resolve_padding,
)
from tinygrad_conv.tensor import Tensor


class Parameter(Tensor):
    """A Tensor that is a module's learnable state: requires_grad=True, float32 unless `dtype` is given."""

    __slots__ = ()

    def __init__(self, data: Any, dtype: Any = None):
        super().__init__(data, requires_grad=True, dtype=np.float32 if dtype is None else dtype)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class RemovableHandle:
    """What registering a hook returns: `remove()` unregisters it (again: nothing happens)."""

    _next_id = 0

    def __init__(self, hooks: dict) -> None:
        self.hooks, self.id = hooks, RemovableHandle._next_id
        RemovableHandle._next_id += 1

    def remove(self) -> None:
        self.hooks.pop(self.id, None)


class Module:
    """Base class of layers and models: override `forward`; assign parameters and sub-modules as attributes."""

    training: bool = True  # a class default, so subclasses that skip super().__init__() still work

    def __init__(self) -> None:
        self.training = True

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        hooks = self.__dict__.get("_forward_hooks")
        if not hooks:
            return self.forward(*args, **kwargs)
        for hook in list(hooks["pre"].values()):
            hook(self, args)
        output = self.forward(*args, **kwargs)
        for hook in list(hooks["post"].values()):
            hook(self, args, output)
        return output

    def register_forward_pre_hook(self, hook: Callable[[Module, tuple], None]) -> RemovableHandle:
        """Call hook(module, inputs) before every forward, as PyTorch's; `handle.remove()` takes it away."""
        return self._add_hook("pre", hook)

    def register_forward_hook(self, hook: Callable[[Module, tuple, Any], None]) -> RemovableHandle:
        """Call hook(module, inputs, output) after every forward, as PyTorch's; `handle.remove()` takes it away."""
        return self._add_hook("post", hook)

    def _add_hook(self, when: str, hook: Callable) -> RemovableHandle:
        if not callable(hook):
            raise TypeError(f"a forward hook must be callable, got {type(hook).__name__}")
        hooks = self.__dict__.setdefault("_forward_hooks", {"pre": {}, "post": {}})
        handle = RemovableHandle(hooks[when])
        hooks[when][handle.id] = hook
        return handle

    # ------------------------------------------------------------ discovery (instance attributes, in order)

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """(attribute name, module) for each direct sub-module, each module once."""
        seen = set()
        for name, value in vars(self).items():
            if isinstance(value, Module) and id(value) not in seen:
                seen.add(id(value))
                yield name, value

    def children(self) -> Iterator[Module]:
        for _, module in self.named_children():
            yield module

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """(dotted name, module) for this module (named `prefix`, "" by default) and every module inside it,
        depth first in definition order, each module once."""
        seen: set[int] = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{child_name}" if name else child_name, child)
                        for child_name, child in module.named_children()]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) in definition order — "0.weight", "conv1.bias" — each parameter once
        (a parameter shared by two layers is reported under the first name met)."""
        seen_params: set[int] = set()
        seen_modules: set[int] = set()
        stack: list[tuple[str, Any]] = [(prefix, self)]
        while stack:
            name, value = stack.pop()
            if isinstance(value, Parameter):
                if id(value) not in seen_params:
                    seen_params.add(id(value))
                    yield name, value
            elif id(value) not in seen_modules:
                seen_modules.add(id(value))
                members = [(f"{name}.{attr}" if name else attr, member) for attr, member in vars(value).items()
                           if isinstance(member, (Parameter, Module))]
                stack.extend(reversed(members))

    def parameters(self) -> Iterator[Parameter]:
        for _, param in self.named_parameters():
            yield param

    # ------------------------------------------------------------ state

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (grad = None), as optimizer.zero_grad()."""
        for param in self.parameters():
            param.grad = None

    def train(self, mode: bool = True) -> Module:
        """Set `training` on this module and every module inside it (Dropout reads it); returns self."""
        if not isinstance(mode, bool):
            raise TypeError(f"train(mode): mode must be a bool, got {mode!r}")
        for module in self.modules():
            module.training = mode
        return self

    def eval(self) -> Module:
        return self.train(False)

    def state_dict(self) -> dict[str, np.ndarray]:
        """{dotted name: a copy of the parameter's array}, in definition order."""
        return {name: param.data.copy() for name, param in self.named_parameters()}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Copy every array of `state_dict` into the parameter of the same name (keeping the parameter's dtype).

        The keys must be exactly those of state_dict() with the same shapes; otherwise one ValueError lists
        every missing key, unexpected key and shape mismatch, and nothing is loaded.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"load_state_dict expects a mapping of names to arrays, got {type(state_dict).__name__}")
        params = dict(self.named_parameters())
        problems, values = [], {}
        for name, param in params.items():
            if name not in state_dict:
                problems.append(f"missing key {name!r} (the model's parameter has shape {param.shape})")
        for name, value in state_dict.items():
            if name not in params:
                shape = getattr(value, "shape", None)
                problems.append(f"unexpected key {name!r}" + (f" (shape {tuple(shape)})" if shape is not None else ""))
                continue
            try:
                array = np.asarray(value.data if isinstance(value, Tensor) else value)
            except ValueError:
                array = np.empty(0, dtype=object)
            if array.dtype.kind not in "biuf":
                problems.append(f"{name!r} holds {array.dtype} data, expected real numbers")
            elif array.shape != params[name].shape:
                problems.append(f"shape mismatch for {name!r}: the state dict has {array.shape}, "
                                f"the model has {params[name].shape}")
            else:
                values[name] = array
        if problems:
            raise ValueError(f"load_state_dict: the state dict does not fit {type(self).__name__} "
                             f"({len(problems)} problem{'s' * (len(problems) > 1)}; nothing was loaded):\n  "
                             + "\n  ".join(problems))
        for name, array in values.items():
            params[name].copy_(array)  # in place: the parameter (and anything holding it) keeps its array

    # ------------------------------------------------------------ repr, as PyTorch's

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        children = list(self.named_children())
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}(" + self.extra_repr()]
        for name, child in children:
            lines.append(f"  ({name}): " + repr(child).replace("\n", "\n  "))
        return "\n".join(lines) + "\n)"


# ---------------------------------------------------------------- argument checks


def _make_rng(rng: Any) -> np.random.Generator:
    """None → a fresh Generator; an int → a Generator seeded with it; a Generator → itself."""
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, np.random.Generator):
        return rng
    if is_int(rng):
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng must be a numpy Generator, an int seed or None, got {type(rng).__name__}")


def _uniform(rng: np.random.Generator, bound: float, shape: tuple[int, ...], dtype: Any) -> Parameter:
    return Parameter(rng.uniform(-bound, bound, shape), dtype=dtype)


# ---------------------------------------------------------------- layers


class Conv2d(Module):
    """y = conv2d(x, weight, bias): (N, in_channels, H, W) → (N, out_channels, Ho, Wo).

    weight (out_channels, in_channels/groups, KH, KW) and bias (out_channels,) start as U(−1/√fan_in, 1/√fan_in).
    padding: int, (ph, pw), ((top, bottom), (left, right)), 'valid' or 'same' — as functional.conv2d.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple | str = 0,
                 dilation: int | tuple[int, int] = 1, groups: int = 1, bias: bool = True,
                 dtype: Any = None, rng: Any = None):
        super().__init__()
        self.in_channels = positive_int(in_channels, "in_channels")
        self.out_channels = positive_int(out_channels, "out_channels")
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = pair(stride, "stride")
        self.dilation = pair(dilation, "dilation")
        self.groups = positive_int(groups, "groups")
        check_groups_divide(self.groups, self.in_channels, self.out_channels)
        resolve_padding(padding, self.kernel_size, self.stride, self.dilation)  # validates; forward resolves it
        if isinstance(padding, numbers.Integral):
            padding = (int(padding), int(padding))
        elif isinstance(padding, list):
            padding = tuple(tuple(p) if isinstance(p, list) else p for p in padding)
        self.padding = padding
        check_bool(bias, "bias")
        rng = _make_rng(rng)
        fan_in = in_channels // groups * self.kernel_size[0] * self.kernel_size[1]
        bound = 1 / math.sqrt(fan_in)
        self.weight = _uniform(rng, bound, (out_channels, in_channels // groups, *self.kernel_size), dtype)
        self.bias = _uniform(rng, bound, (out_channels,), dtype) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        return text


class ConvTranspose2d(Module):
    """y = conv_transpose2d(x, weight, bias): (N, in_channels, H, W) → (N, out_channels, Ho, Wo), conv2d's adjoint.

    weight (in_channels, out_channels/groups, KH, KW) and bias (out_channels,) start as U(−1/√fan_in, 1/√fan_in)
    with fan_in = out_channels/groups · KH · KW, as PyTorch's.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple = 0,
                 output_padding: int | tuple[int, int] = 0, groups: int = 1, bias: bool = True,
                 dilation: int | tuple[int, int] = 1, dtype: Any = None, rng: Any = None):
        super().__init__()
        self.in_channels = positive_int(in_channels, "in_channels")
        self.out_channels = positive_int(out_channels, "out_channels")
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride, self.dilation = pair(stride, "stride"), pair(dilation, "dilation")
        self.output_padding = pair(output_padding, "output_padding", minimum=0)
        self.groups = positive_int(groups, "groups")
        check_groups_divide(self.groups, self.in_channels, self.out_channels)
        self.padding = resolve_padding(padding, self.kernel_size, self.stride, self.dilation)
        check_bool(bias, "bias")
        rng = _make_rng(rng)
        bound = 1 / math.sqrt(out_channels // groups * self.kernel_size[0] * self.kernel_size[1])
        self.weight = _uniform(rng, bound, (in_channels, out_channels // groups, *self.kernel_size), dtype)
        self.bias = _uniform(rng, bound, (out_channels,), dtype) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, self.output_padding,
                                  self.groups, self.dilation)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, output_padding={self.output_padding}")


class Linear(Module):
    """y = x · weightᵀ + bias: (..., in_features) → (..., out_features); weight (out, in), bias (out,)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype: Any = None, rng: Any = None):
        super().__init__()
        self.in_features = positive_int(in_features, "in_features")
        self.out_features = positive_int(out_features, "out_features")
        check_bool(bias, "bias")
        rng = _make_rng(rng)
        bound = 1 / math.sqrt(in_features)
        self.weight = _uniform(rng, bound, (out_features, in_features), dtype)
        self.bias = _uniform(rng, bound, (out_features,), dtype) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class ReLU(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x)


class _Pool2d(Module):
    def __init__(self, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None,
                 padding: int | tuple[int, int] = 0):
        super().__init__()
        kernel = pair(kernel_size, "kernel_size")
        if stride is not None:
            pair(stride, "stride")
        pool_padding(padding, kernel)
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Maximum of each kernel window; stride defaults to kernel_size; padding counts as −inf."""

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)


class AvgPool2d(_Pool2d):
    """Mean of each kernel window; stride defaults to kernel_size; zero padding counts in the mean."""

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)


class Flatten(Module):
    """(N, C, H, W) → (N, C·H·W): the axes start_dim..end_dim merged into one (defaults as torch.nn.Flatten)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        for name, dim in (("start_dim", start_dim), ("end_dim", end_dim)):
            if not is_int(dim):
                raise TypeError(f"{name} must be an int, got {dim!r}")
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    def forward(self, x: Tensor) -> Tensor:
        return F.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Dropout(Module):
    """While training, zero each element with probability p and scale the rest by 1/(1 − p); identity in eval()."""

    def __init__(self, p: float = 0.5, rng: Any = None):
        super().__init__()
        self.p = dropout_probability(p)
        self.rng = _make_rng(rng)

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training, self.rng)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Sequential(Module):
    """Modules applied in order; children named "0", "1", …; indexable (a slice gives a Sequential), len, iterable."""

    def __init__(self, *modules: Module):
        super().__init__()
        for index, module in enumerate(modules):
            if not isinstance(module, Module):
                raise TypeError(f"Sequential: argument {index} must be a Module, got {type(module).__name__}")
            setattr(self, str(index), module)

    def _layers(self) -> list[Module]:
        return [value for name, value in vars(self).items() if name.isdigit() and isinstance(value, Module)]

    def forward(self, x: Any) -> Any:
        for module in self._layers():
            x = module(x)
        return x

    def __getitem__(self, index: int | slice) -> Module:
        layers = self._layers()
        if isinstance(index, slice):
            return Sequential(*layers[index])
        if not is_int(index):
            raise TypeError(f"Sequential indices must be ints or slices, got {type(index).__name__}")
        if not -len(layers) <= index < len(layers):
            raise IndexError(f"index {index} is out of range for a Sequential of {len(layers)} modules")
        return layers[index]

    def __len__(self) -> int:
        return len(self._layers())

    def __iter__(self) -> Iterator[Module]:
        return iter(self._layers())


__all__ = ["Parameter", "Module", "Conv2d", "ConvTranspose2d", "Linear", "ReLU", "MaxPool2d", "AvgPool2d", "Flatten",
           "Dropout",
           "Sequential"]
