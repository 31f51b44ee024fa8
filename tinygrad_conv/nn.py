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
            array = _fitting_array(name, value, params[name].shape, problems)
            if array is not None:
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


def _fitting_array(name: str, value: Any, shape: tuple[int, ...], problems: list[str]) -> np.ndarray | None:
    """value as an array of real numbers shaped like the model's `shape`, or None with the problem appended."""
    try:
        array = np.asarray(value.data if isinstance(value, Tensor) else value)
    except ValueError:
        array = np.empty(0, dtype=object)
    if array.dtype.kind not in "biuf":
        problems.append(f"{name!r} holds {array.dtype} data, expected real numbers")
    elif array.shape != shape:
        problems.append(f"shape mismatch for {name!r}: the state dict has {array.shape}, the model has {shape}")
    else:
        return array
    return None


def _pick(modules: list[Module], index: Any, container: str) -> Module:
    """modules[index] for an int index, with the errors a container of modules gives."""
    if not is_int(index):
        raise TypeError(f"{container} indices must be ints or slices, got {type(index).__name__}")
    if not -len(modules) <= index < len(modules):
        raise IndexError(f"index {index} is out of range for a {container} of {len(modules)} modules")
    return modules[index]


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
        return Sequential(*layers[index]) if isinstance(index, slice) else _pick(layers, index, "Sequential")

    def __len__(self) -> int:
        return len(self._layers())

    def __iter__(self) -> Iterator[Module]:
        return iter(self._layers())


__all__ = ["Parameter", "Module", "Conv2d", "ConvTranspose2d", "Linear", "ReLU", "MaxPool2d", "AvgPool2d", "Flatten",
           "Dropout",
           "Sequential"]


# ---------------------------------------------------------------- buffers: state that is not a parameter
#
# A buffer is an array a module keeps and saves but does not learn (BatchNorm2d's running statistics).
# `register_buffer(name, array)` stores it as an attribute and remembers its name; state_dict() then holds
# each module's buffers after its parameters ("1.running_mean"), as PyTorch's does, and load_state_dict()
# restores them in place. A model without buffers keeps exactly the state dict it had before.

_parameters_state_dict = Module.state_dict
_parameters_load_state_dict = Module.load_state_dict


def _register_buffer(self: Module, name: str, array: np.ndarray) -> None:
    """Keep `array` as the attribute `name` and save it in state_dict() (as torch's register_buffer)."""
    if not isinstance(name, str) or not name.isidentifier():
        raise TypeError(f"a buffer name must be an identifier, got {name!r}")
    if not isinstance(array, np.ndarray):
        raise TypeError(f"buffer {name!r} must be a numpy array, got {type(array).__name__}")
    names = vars(self).setdefault("_buffer_names", [])
    if name not in names:
        names.append(name)
    setattr(self, name, array)


def _named_buffers(self: Module, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
    """(dotted name, array) for every buffer of this module and the modules inside it, in module order."""
    for module_name, module in self.named_modules(prefix):
        for name in vars(module).get("_buffer_names", ()):
            yield (f"{module_name}.{name}" if module_name else name), getattr(module, name)


def _buffers(self: Module) -> Iterator[np.ndarray]:
    for _, array in _named_buffers(self):
        yield array


def _state_dict(self: Module) -> dict[str, np.ndarray]:
    """{dotted name: a copy of the array} for every parameter and buffer; each module's own parameters come
    before its buffers, which come before its sub-modules' entries (PyTorch's order)."""
    params = _parameters_state_dict(self)
    buffers = dict(_named_buffers(self))
    if not buffers:
        return params
    result: dict[str, np.ndarray] = {}
    for module_name, module in self.named_modules():
        own = module_name + "." if module_name else ""
        for key, array in params.items():
            if key.startswith(own) and "." not in key[len(own):]:
                result[key] = array
        for name in vars(module).get("_buffer_names", ()):
            result[own + name] = buffers[own + name].copy()
    result.update((key, array) for key, array in params.items() if key not in result)
    return result


def _load_state_dict(self: Module, state_dict: Mapping[str, Any]) -> None:
    """Load parameters (Module's rules) and buffers (cast to each buffer's dtype, in place); one ValueError
    lists every problem of either, and then nothing is loaded."""
    buffers = dict(_named_buffers(self))
    if not buffers or not isinstance(state_dict, Mapping):
        return _parameters_load_state_dict(self, state_dict)
    problems, values = [], {}
    for name, buffer in buffers.items():
        if name not in state_dict:
            problems.append(f"missing key {name!r} (the model's buffer has shape {buffer.shape})")
            continue
        array = _fitting_array(name, state_dict[name], buffer.shape, problems)
        if array is not None:
            values[name] = array
    rest = {key: value for key, value in state_dict.items() if key not in buffers}
    if problems:  # check the parameters too, so the error lists everything, and leave them as they were
        saved = _parameters_state_dict(self)
        try:
            _parameters_load_state_dict(self, rest)
        except ValueError as error:
            problems = str(error).split("\n  ")[1:] + problems
        else:
            _parameters_load_state_dict(self, saved)
        raise ValueError(f"load_state_dict: the state dict does not fit {type(self).__name__} "
                         f"({len(problems)} problem{'s' * (len(problems) > 1)}; nothing was loaded):\n  "
                         + "\n  ".join(problems))
    _parameters_load_state_dict(self, rest)
    for name, array in values.items():
        buffers[name][...] = array  # in place, keeping the buffer's dtype


Module.register_buffer = _register_buffer  # type: ignore[attr-defined]
Module.named_buffers = _named_buffers  # type: ignore[attr-defined]
Module.buffers = _buffers  # type: ignore[attr-defined]
Module.state_dict = _state_dict  # type: ignore[method-assign]
Module.load_state_dict = _load_state_dict  # type: ignore[method-assign]


# ---------------------------------------------------------------- more layers


class Tanh(Module):
    """tanh x, elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return x.tanh()


class Sigmoid(Module):
    """1 / (1 + e⁻ˣ), elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return x.sigmoid()


class CrossEntropyLoss(Module):
    """loss(input, target) = F.cross_entropy(input, target): the batch mean of −log softmax(input)[n, target[n]],
    input (N, C) logits, target (N,) class indices. Only reduction='mean' (PyTorch's default) exists here."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        if reduction != "mean":
            raise ValueError(f"CrossEntropyLoss supports only reduction='mean', got {reduction!r}")
        self.reduction = reduction

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.cross_entropy(input, target)


class ModuleList(Module):
    """A list of modules, named "0", "1", … like Sequential's (so "0.weight" in state_dict()), that does not
    call them: index it (a slice gives a ModuleList), len, iterate, append, extend."""

    def __init__(self, modules: Any = None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _modules(self) -> list[Module]:
        return [value for name, value in vars(self).items() if name.isdigit() and isinstance(value, Module)]

    def append(self, module: Module) -> ModuleList:
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList.append expects a Module, got {type(module).__name__}")
        setattr(self, str(len(self)), module)
        return self

    def extend(self, modules: Any) -> ModuleList:
        if isinstance(modules, Module) and not isinstance(modules, (ModuleList, Sequential)):
            raise TypeError(f"ModuleList.extend expects an iterable of Modules, got {type(modules).__name__}")
        for index, module in enumerate(modules):
            if not isinstance(module, Module):
                raise TypeError(f"ModuleList: item {index} must be a Module, got {type(module).__name__}")
            self.append(module)
        return self

    def __getitem__(self, index: int | slice) -> Any:
        modules = self._modules()
        return ModuleList(modules[index]) if isinstance(index, slice) else _pick(modules, index, "ModuleList")

    def __len__(self) -> int:
        return len(self._modules())

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules())


class BatchNorm2d(Module):
    """Normalise each channel of (N, C, H, W) over N, H and W, then scale and shift it:

        y = (x − μ) / √(σ² + eps) · weight + bias,   weight (C,) starts at 1, bias (C,) at 0 (if affine).

    Training (or track_running_stats=False): μ and σ² are the batch's mean and biased variance over (N, H, W),
    and the running statistics move towards them, with the unbiased variance (n/(n − 1)·σ², n = N·H·W):

        running ← (1 − momentum)·running + momentum·batch   (momentum=None: the average of all batches so far)

    eval(): μ and σ² are running_mean and running_var. Composed from Tensor ops (mean, subtraction, power), so
    its gradients are derived; running_mean, running_var and num_batches_tracked are buffers in state_dict().
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, dtype: Any = None):
        super().__init__()
        self.num_features = positive_int(num_features, "num_features")
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not 0 < eps < math.inf:
            raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
        if momentum is not None and (isinstance(momentum, bool) or not isinstance(momentum, numbers.Real)
                                     or not 0 <= momentum <= 1):
            raise ValueError(f"momentum must be a number in [0, 1] or None, got {momentum!r}")
        self.eps = float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.affine = check_bool(affine, "affine")
        self.track_running_stats = check_bool(track_running_stats, "track_running_stats")
        dtype = np.dtype(np.float32 if dtype is None else dtype)
        self.weight = Parameter(np.ones(num_features), dtype=dtype) if affine else None
        self.bias = Parameter(np.zeros(num_features), dtype=dtype) if affine else None
        self.dtype = dtype
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype))
            self.register_buffer("running_var", np.ones(num_features, dtype))
            self.register_buffer("num_batches_tracked", np.array(0, np.int64))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"BatchNorm2d expects a Tensor, got {type(x).__name__}")
        if x.ndim != 4:
            raise ValueError(f"BatchNorm2d expects a 4-D input (N, C, H, W), got shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm2d({self.num_features}) got an input with {x.shape[1]} channels "
                             f"(shape {x.shape})")
        if x.dtype != self.dtype:
            raise TypeError(f"BatchNorm2d holds {self.dtype} parameters and statistics, got a {x.dtype} input")
        shape = (1, self.num_features, 1, 1)
        if self.training or not self.track_running_stats:
            count = x.shape[0] * x.shape[2] * x.shape[3]
            if self.training and count <= 1:
                raise ValueError(f"BatchNorm2d needs more than 1 value per channel when training, got input "
                                 f"shape {x.shape}")
            mean = x.mean(axis=(0, 2, 3), keepdims=True)
            centered = x - mean
            var = (centered * centered).mean(axis=(0, 2, 3), keepdims=True)  # biased: divides by N·H·W
            if self.training and self.track_running_stats:
                self._update_running_stats(mean.data.reshape(-1), var.data.reshape(-1), count)
        else:
            centered = x - Tensor(self.running_mean.reshape(shape))
            var = Tensor(self.running_var.reshape(shape))
        y = centered * (var + self.eps) ** -0.5
        if self.affine:
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        return y

    def _update_running_stats(self, mean: np.ndarray, var: np.ndarray, count: int) -> None:
        self.num_batches_tracked += 1
        factor = 1 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = var * (count / (count - 1))
        self.running_mean *= 1 - factor
        self.running_mean += factor * mean
        self.running_var *= 1 - factor
        self.running_var += factor * unbiased

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


__all__ += ["Tanh", "Sigmoid", "CrossEntropyLoss", "ModuleList", "BatchNorm2d"]
