"""The autodiff engine: a numpy array that remembers how it was made.

A Tensor holds `data` (an ndarray) and, after `backward()`, `grad` (an ndarray of the same shape).
A 0-d Tensor is micrograd's scalar `Value`; the same class carries n-d arrays with broadcasting.

Every Tensor made by a primitive op (ops.py, the table of derivative rules) keeps that op (`tensor.op`); the op
keeps its inputs in argument order (`tensor.parents`: `x * x` has the parent x twice). Backpropagation orders the
graph topologically (iteratively: a 100,000-op chain is fine) and applies each op's rule in reverse — the chain
rule, one op at a time:

    dL/d(input) = op.backward(dL/d(output), output, *inputs),   summed over every use of the input.

`backward()` accumulates the results into `.grad`, on leaves and intermediates alike (as in micrograd): a second
`backward()` through the same graph adds the same gradients again, so call `zero_grad()` /
`optimizer.zero_grad()` between steps. `grad(outputs, inputs)` returns them instead, as torch.autograd.grad; with
`create_graph=True` the rules run on Tensors, so the gradients carry a graph of their own (second derivatives).
The graph lives as long as its output: drop the loss and every intermediate array is freed.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import math
import numbers
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from tinygrad_conv import kernels, ops
from tinygrad_conv.conv_args import is_int, output_size, pair

_writes = itertools.count(1)  # numbers every in-place write: a tensor's _version is the number of its last one
_last_write = 0  # the number of the latest in-place write, to any tensor


def _wrote(tensor: Tensor) -> None:
    """Count an in-place write to tensor: the graphs recorded before it can no longer use its values."""
    global _last_write
    _last_write = tensor._version = next(_writes)


class _GradMode(threading.local):
    """Whether ops record the graph, per thread (as PyTorch's): no_grad in one thread leaves the others alone."""

    enabled = True


_mode = _GradMode()


class no_grad:
    """Context manager and decorator (`@no_grad` or `@no_grad()`): ops inside record no graph, as torch.no_grad.
    On a generator function it covers the generator's own steps, not the caller's code between them."""

    enabled = False

    def __new__(cls, fn: Callable | None = None) -> Any:
        return super().__new__(cls) if fn is None else cls()(fn)

    def __enter__(self) -> None:
        self.previous, _mode.enabled = _mode.enabled, self.enabled

    def __exit__(self, *exc: object) -> None:
        _mode.enabled = self.previous

    def __call__(self, fn: Callable) -> Callable:
        mode = type(self)
        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def generator(*args: Any, **kwargs: Any) -> Any:
                steps = fn(*args, **kwargs)
                try:
                    with mode():
                        value = next(steps)
                    while True:
                        try:
                            sent = yield value
                        except GeneratorExit:
                            with mode():
                                steps.close()
                            raise
                        except BaseException as error:  # thrown in by the caller: into the generator, in the mode
                            with mode():
                                value = steps.throw(error)
                        else:
                            with mode():
                                value = steps.send(sent)
                except StopIteration as stop:
                    return stop.value

            return generator

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with mode():
                return fn(*args, **kwargs)

        return wrapper


class enable_grad(no_grad):
    """Context manager and decorator: ops inside record the graph, even within no_grad (as torch.enable_grad)."""

    enabled = True


def is_grad_enabled() -> bool:
    """Whether ops record the graph now, in this thread (False inside no_grad)."""
    return _mode.enabled


def _as_array(data: Any, dtype: Any = None) -> np.ndarray:
    """data as a real-valued array, as PyTorch types it: numpy arrays keep their dtype, Python floats become
    float64, ints int64 and bools bool; `dtype` (any real numeric dtype) converts."""
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        dtype = np.dtype(dtype)
        if dtype.kind not in "biuf":
            raise TypeError(f"dtype must be a real numeric dtype (float16/32/64, an int or bool), got {dtype}")
    try:
        array = np.array(data, dtype=dtype)
    except (TypeError, ValueError) as error:
        raise TypeError(f"Tensor data must be numbers or a numeric array, got {type(data).__name__}: {error}") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"Tensor data must be real numbers, got dtype {array.dtype} "
                        "(complex, object and string data are not supported)")
    return array


class Tensor:
    """An n-d array that records the primitive ops applied to it, so `backward()` can apply the chain rule.

    Tensor(data, requires_grad=False, dtype=None, name=None): data is copied and typed as PyTorch types it — numpy
    arrays keep their dtype, Python floats become float64, ints int64, bools bool — and only floating tensors can
    require gradients (integer tensors are labels and indices).
    """

    __slots__ = ("_data", "grad", "requires_grad", "name", "_ctx", "_version", "__weakref__")
    __array_ufunc__ = None  # `ndarray * Tensor` defers to Tensor.__rmul__ and gives a Tensor

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None, name: str | None = None):
        if not isinstance(requires_grad, bool):
            raise TypeError(f"requires_grad must be a bool, got {requires_grad!r}")
        self._data: np.ndarray = _as_array(data, dtype)
        self._version = 0
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require gradients (as in PyTorch), got {self.dtype} "
                            "data: pass floats (e.g. [1.0, 2.0]) or dtype=np.float64")
        self.grad: np.ndarray | None = None
        self.requires_grad = requires_grad
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string or None, got {type(name).__name__} {name!r}")
        self.name = name
        self._ctx: ops.Op | None = None

    @classmethod
    def _apply(cls, op_type: type[ops.Op], *parents: Any, **arguments: Any) -> Tensor:
        """Run one primitive forward and, if any input needs a gradient, record it in the graph."""
        op = op_type()
        op.arguments = arguments
        out = cls.__new__(cls)
        try:
            out._data = np.asarray(op.forward(*[p._data for p in parents], **arguments))
        except ValueError as error:  # said at the op, with the shapes (checked only once the op has failed)
            shapes = " and ".join(str(p.shape) for p in parents)
            reason = str(error)
            if len(parents) == 2 and not _broadcastable(parents[0].shape, parents[1].shape):
                reason = "the shapes do not broadcast (aligned from the right, each dimension must be equal or 1)"
            raise ValueError(f"{op_type.__name__} of tensors with shapes {shapes}: {reason}") from None
        out.grad, out.name, out._ctx, out._version = None, None, None, 0
        needs_input_grad = tuple([p.requires_grad for p in parents])
        out.requires_grad = _mode.enabled and True in needs_input_grad
        if out.requires_grad:
            op.parents, op.needs_input_grad = parents, needs_input_grad
            op.recorded_after = _last_write
            out._ctx = op
        return out

    # ------------------------------------------------------------ data, and writing it in place

    @property
    def data(self) -> np.ndarray:
        """The values: the tensor's own ndarray (not a copy), for reading and for writing outside any graph.

        Counted as in-place writes, so a backward pass through a graph recorded before them is refused naming the
        op and the tensor: assigning to `data` (`t.data = array`, and `t.data -= step`, which ends in that
        assignment), item assignment on the tensor (`t[...] = v`) and the methods below (zero_, fill_, copy_, add_,
        mul_). Not seen: writes into the returned array itself (`t.data[...] = v`, `np.copyto(t.data, v)`,
        `out=t.data`), as with PyTorch's `.data`; numpy offers no hook on them. To change part of a tensor that a
        graph may still use, write `t[...] = v`."""
        return self._data

    @data.setter
    def data(self, array: np.ndarray) -> None:
        self._data = np.asarray(array)
        _wrote(self)

    def __setitem__(self, index: Any, value: Any) -> None:
        """self[index] = value, in place, with numpy's indexing (as in __getitem__): an in-place write, counted
        (no graph is recorded; a backward through a graph that used the old values is refused)."""
        self._data[_numpy_index(index)] = value._data if isinstance(value, Tensor) else value
        _wrote(self)

    def zero_(self) -> Tensor:
        """Set every element to 0, in place (no graph is recorded)."""
        return self.fill_(0)

    def fill_(self, value: float) -> Tensor:
        """Set every element to `value`, in place."""
        self._data[...] = value
        _wrote(self)
        return self

    def copy_(self, source: Any) -> Tensor:
        """Copy `source` (broadcast to this shape) into this tensor's array, in place."""
        self._data[...] = source.data if isinstance(source, Tensor) else source
        _wrote(self)
        return self

    def add_(self, other: Any, alpha: float = 1.0) -> Tensor:
        """self += alpha · other, in place."""
        self._data += alpha * (other.data if isinstance(other, Tensor) else np.asarray(other))
        _wrote(self)
        return self

    def mul_(self, other: Any) -> Tensor:
        """self *= other, in place."""
        self._data *= other.data if isinstance(other, Tensor) else np.asarray(other)
        _wrote(self)
        return self

    @property
    def op(self) -> ops.Op | None:
        """The primitive that made this tensor (its name and arguments: `op.name`, `op.arguments`); None for a leaf."""
        return self._ctx

    @property
    def parents(self) -> tuple[Tensor, ...]:
        """The inputs of the op that made this tensor, in argument order (with repeats); () for a leaf."""
        return () if self._ctx is None else self._ctx.parents

    # ------------------------------------------------------------ backward

    def backward(self, grad: Any = None, inputs: Sequence[Tensor] | None = None) -> None:
        """Fill `.grad` of every tensor this one depends on with dL/d(tensor), L being this tensor: intermediate
        tensors too, as micrograd's Value (what the drawings show).

        grad: dL/d(self), shaped like self; may be omitted only when self holds one element (then 1).
        inputs: fill only these tensors' `.grad`, as PyTorch's backward(inputs=...); every other gradient is freed as
        soon as it has been used (the training loop passes the parameters: less memory per step).
        """
        if not self.requires_grad:
            raise ValueError("backward() on a tensor that does not require grad: no input of it has requires_grad=True")
        targets = None
        if inputs is not None:
            chosen = _tensor_list(inputs, "backward(inputs)")
            _check_requires_grad(chosen, "backward(inputs): input")
            targets = set(chosen)
        grad = _seed(self, grad, "backward(grad)")
        for tensor, tensor_grad in _backpropagate([self], [grad], create_graph=False, targets=targets):
            tensor._accumulate(tensor_grad)

    def _accumulate(self, grad: np.ndarray) -> None:
        grad = grad.astype(self.dtype, copy=False)
        if self.grad is None:
            # A rule may pass its grad_output straight through (Add, Reshape), so a leaf owns a C-order copy.
            if self._ctx is None:
                copied = kernels.c_order(grad)
                grad = grad.copy() if copied is grad else copied
            self.grad = grad
        else:
            self.grad = self.grad + grad

    def zero_grad(self) -> None:
        """Forget the accumulated gradient: `.grad = None`."""
        self.grad = None

    def detach(self) -> Tensor:
        """The same values, cut from the graph (shares memory with self.data)."""
        out = Tensor.__new__(Tensor)
        out._data, out.grad, out.requires_grad, out.name, out._ctx, out._version = \
            self._data, None, False, None, None, 0
        return out

    # ------------------------------------------------------------ array protocol

    @property
    def shape(self) -> tuple[int, ...]:
        """The data's shape."""
        return self._data.shape

    @property
    def ndim(self) -> int:
        """The number of axes, len(shape)."""
        return self._data.ndim

    @property
    def dtype(self) -> np.dtype:
        """The data's floating dtype (float16, float32 or float64)."""
        return self._data.dtype

    @property
    def size(self) -> int:
        """The number of elements, the product of shape."""
        return self._data.size

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __iter__(self) -> Iterator[Tensor]:
        """The sub-tensors self[0], self[1], ... along the first axis (each carries the gradient back)."""
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self)))

    def __bool__(self) -> bool:
        """The truth value of a one-element tensor; ambiguous (ValueError) for any other size, as in numpy."""
        if self.data.size != 1:
            raise ValueError(f"the truth value of a tensor with {self.data.size} elements is ambiguous; "
                             "use .item() on a one-element tensor, or t.data.any() / t.data.all()")
        return bool(self.data.item())

    def item(self) -> float:
        """The value of a one-element tensor, as a Python float."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a one-element tensor, got shape {self.shape}")
        return self.data.item()

    def numpy(self) -> np.ndarray:
        """The data itself (not a copy)."""
        return self.data

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if copy:
            return np.array(self.data, dtype=dtype, copy=True)
        return self.data if dtype is None else self.data.astype(dtype, copy=False)

    def __float__(self) -> float:
        return float(self.item())

    def __repr__(self) -> str:
        body = np.array2string(self.data, precision=4, threshold=20, separator=", ", prefix="Tensor(")
        extras = [f"dtype={self.dtype}"] if self.dtype != np.float64 else []
        if self.name:
            extras.insert(0, f"name={self.name!r}")
        if self.requires_grad:
            extras.append("requires_grad=True")
        if self.grad is not None:
            extras.append(f"grad={np.array2string(self.grad, precision=4, threshold=20, separator=', ')}")
        return f"Tensor({body}{''.join(', ' + e for e in extras)})"

    # ------------------------------------------------------------ operators (numbers on either side)

    def _lift(self, other: Any) -> Tensor:
        """A number or array beside this tensor, as a constant Tensor. Beside a floating tensor, Python numbers,
        lists and tuples of them and integer/bool arrays take its dtype (so float32 stays float32); floating numpy
        arrays keep theirs, and beside an integer tensor everything keeps its own (numpy then promotes)."""
        if isinstance(other, Tensor):
            return other
        if isinstance(other, (bool, np.bool_)) or not isinstance(other, (numbers.Number, np.ndarray, list, tuple)):
            raise TypeError(f"cannot combine a Tensor with {type(other).__name__}")
        array = _as_array(other)  # checked as real numbers first
        if self.dtype.kind == "f" and (array.dtype.kind != "f" or not isinstance(other, np.ndarray)):
            return Tensor(array, dtype=self.dtype)
        return Tensor(array)

    def __add__(self, other: Any) -> Tensor:
        return Tensor._apply(ops.Add, self, self._lift(other))

    def __radd__(self, other: Any) -> Tensor:
        return Tensor._apply(ops.Add, self._lift(other), self)

    def __sub__(self, other: Any) -> Tensor:
        return Tensor._apply(ops.Sub, self, self._lift(other))

    def __rsub__(self, other: Any) -> Tensor:
        return Tensor._apply(ops.Sub, self._lift(other), self)

    def __mul__(self, other: Any) -> Tensor:
        return Tensor._apply(ops.Mul, self, self._lift(other))

    def __rmul__(self, other: Any) -> Tensor:
        return Tensor._apply(ops.Mul, self._lift(other), self)

    def __truediv__(self, other: Any) -> Tensor:
        return Tensor._apply(ops.Div, self, self._lift(other))

    def __rtruediv__(self, other: Any) -> Tensor:
        return Tensor._apply(ops.Div, self._lift(other), self)

    def __neg__(self) -> Tensor:
        return Tensor._apply(ops.Neg, self)

    def __pow__(self, exponent: float) -> Tensor:
        if isinstance(exponent, Tensor) or not isinstance(exponent, numbers.Real) or isinstance(exponent, bool):
            raise TypeError(f"the exponent must be a number, got {type(exponent).__name__}")
        return Tensor._apply(ops.Pow, self, exponent=float(exponent))

    def __matmul__(self, other: Any) -> Tensor:
        return matmul(self, self._lift(other))

    def __rmatmul__(self, other: Any) -> Tensor:
        return matmul(self._lift(other), self)

    def __getitem__(self, index: Any) -> Tensor:
        """self[index] with numpy's rules (ints, slices, None, ..., integer arrays, boolean masks); the gradient
        is added back where each element was read. A Tensor in the index must hold integers or booleans."""
        return Tensor._apply(ops.Index, self, index=_numpy_index(index))

    # ------------------------------------------------------------ elementwise

    def exp(self) -> Tensor:
        """eˣ, elementwise."""
        return Tensor._apply(ops.Exp, self)

    def log(self) -> Tensor:
        """ln x, elementwise (natural log)."""
        return Tensor._apply(ops.Log, self)

    def relu(self) -> Tensor:
        """max(x, 0), elementwise (gradient 0 at x = 0, as PyTorch)."""
        return Tensor._apply(ops.ReLU, self)

    def tanh(self) -> Tensor:
        """tanh x, elementwise."""
        return Tensor._apply(ops.Tanh, self)

    def sigmoid(self) -> Tensor:
        """1 / (1 + e⁻ˣ), elementwise."""
        return Tensor._apply(ops.Sigmoid, self)

    # ------------------------------------------------------------ reductions

    # Reductions take numpy's names (axis, keepdims) or PyTorch's (dim, keepdim), not both, each with its library's
    # meaning of an empty tuple: axis=() reduces no axis (numpy), dim=() reduces every axis (PyTorch).

    def sum(self, axis: int | Sequence[int] | None = None, keepdims: bool = False, *, dim: Any = None,
            keepdim: bool | None = None) -> Tensor:
        """Σ over `axis` (None: all axes, giving a 0-d tensor); the reduced axes are dropped, or kept as size 1."""
        axis, keepdims = _reduction_args("sum", axis, keepdims, dim, keepdim)
        return Tensor._apply(ops.Sum, self, axis=axis, keepdims=keepdims)

    def mean(self, axis: int | Sequence[int] | None = None, keepdims: bool = False, *, dim: Any = None,
             keepdim: bool | None = None) -> Tensor:
        """(1/n) Σ over `axis`, n the number of elements reduced (None: all axes); shapes as in sum()."""
        axis, keepdims = _reduction_args("mean", axis, keepdims, dim, keepdim)
        return Tensor._apply(ops.Mean, self, axis=axis, keepdims=keepdims)

    def max(self, axis: int | Sequence[int] | None = None, keepdims: bool = False, *, dim: Any = None,
            keepdim: bool | None = None) -> Tensor:
        """The maximum over `axis` (None: all axes); shapes as in sum(). The values only, as numpy's max and
        PyTorch's amax — where PyTorch's t.max(dim) also returns indices, use argmax(dim) for those.

        Gradient at ties, as PyTorch: with axis=None (torch's x.max()) it is split evenly among all tied maxima;
        with an axis (torch's x.max(dim).values, and max-pooling) it goes whole to the first maximum in C order.
        """
        axis, keepdims = _reduction_args("max", axis, keepdims, dim, keepdim)
        ties = "split" if axis is None else "first"
        return Tensor._apply(ops.Max, self, axis=axis, keepdims=keepdims, ties=ties)

    def argmax(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        """Index of the first maximum along `dim` (None: of the flattened tensor), an int64 tensor with no
        gradient, as torch.argmax."""
        axis, keepdims = _reduction_args("argmax", None, False, dim, keepdim)
        if axis is not None and not is_int(axis):
            raise TypeError(f"argmax(dim=...): dim must be None or an int, got {dim!r}")
        if axis is not None:
            ops.normalize_axes(axis, self.ndim)
        return Tensor(np.argmax(self.data, axis=axis, keepdims=keepdims and axis is not None))

    def clamp(self, min: float | None = None, max: float | None = None) -> Tensor:
        """Each element limited to [min, max] (either may be None); the gradient passes where min ≤ x ≤ max."""
        for name, bound in (("min", min), ("max", max)):
            if bound is not None and (isinstance(bound, bool) or not isinstance(bound, numbers.Real)):
                raise TypeError(f"clamp({name}=...) must be a number or None, got {bound!r}")
        if min is None and max is None:
            raise ValueError("clamp needs min, max or both")
        return Tensor._apply(ops.Clamp, self, low=min, high=max)

    def numel(self) -> int:
        """The number of elements, as PyTorch's numel() (numpy's `size`, which this class keeps: `t.size` is that
        count, not PyTorch's shape method — use `t.shape`)."""
        return self._data.size

    def softmax(self, dim: int = -1) -> Tensor:
        """exp(x) / Σ exp(x) along dim (composed: exp of log_softmax)."""
        from tinygrad_conv import functional

        return functional.softmax(self, dim)

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        """The axes start_dim..end_dim merged into one, as torch.flatten."""
        from tinygrad_conv import functional

        return functional.flatten(self, start_dim, end_dim)

    # ------------------------------------------------------------ movement

    def reshape(self, *shape: int | Sequence[int]) -> Tensor:
        """The same elements in C order with a new shape (ints or one tuple; one entry may be -1, inferred)."""
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return Tensor._apply(ops.Reshape, self, shape=_reshape_target(self.shape, shape))

    def view(self, *shape: int | Sequence[int]) -> Tensor:
        """reshape (PyTorch's name; a copy where numpy cannot make a view)."""
        return self.reshape(*shape)

    def permute(self, *axes: int | Sequence[int]) -> Tensor:
        """Reorder the axes: output axis k is input axis axes[k] (ints or one tuple, a permutation of all axes)."""
        axes = tuple(axes[0]) if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        if set(map(type, axes)) == {int} and sorted(axes) == list(range(self._data.ndim)):  # the common case, fast
            return Tensor._apply(ops.Permute, self, axes=axes)
        if not all(is_int(a) for a in axes):
            raise TypeError(f"permute needs int axes, got {axes}")
        if len(axes) != self.ndim or not all(-self.ndim <= a < self.ndim for a in axes) \
                or sorted(a % self.ndim for a in axes) != list(range(self.ndim)):
            raise ValueError(f"permute needs a reordering of all {self.ndim} axes (each in "
                             f"[{-self.ndim}, {self.ndim}), once), got {axes}")
        return Tensor._apply(ops.Permute, self, axes=tuple(int(a) % self.ndim for a in axes))

    def transpose(self, dim0: int = -2, dim1: int = -1) -> Tensor:
        """Swap two axes (PyTorch's transpose); the last two by default."""
        if not all(is_int(d) and -self.ndim <= d < self.ndim for d in (dim0, dim1)):
            raise ValueError(f"transpose(dim0={dim0!r}, dim1={dim1!r}): both must be axes of a tensor with "
                             f"{self.ndim} dimensions, i.e. ints in [{-self.ndim}, {self.ndim})")
        axes = list(range(self.ndim))
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        return self.permute(axes)

    @property
    def T(self) -> Tensor:
        """All axes reversed (a matrix's transpose)."""
        return self.permute(tuple(reversed(range(self.ndim))))

    def pad(self, pad_width: Sequence[tuple[int, int]], value: float = 0.0) -> Tensor:
        """Pad with `value`: pad_width = ((before, after), ...) for every axis, each ≥ 0."""
        given = pad_width
        try:
            pad_width = tuple([(int(b), int(a)) for b, a in pad_width])
        except (TypeError, ValueError):
            pad_width = None
        if pad_width is None or len(pad_width) != self.ndim or min([min(pair) for pair in pad_width], default=0) < 0:
            raise ValueError(f"pad_width must be {self.ndim} pairs (before, after) of ints >= 0, got {given!r}")
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"pad value must be a real number, got {value!r}")
        shape = tuple([n + b + a for n, (b, a) in zip(self._data.shape, pad_width)])
        _check_allocation(shape, self.dtype, "padding")
        return Tensor._apply(ops.Pad, self, pad_width=pad_width, value=value)

    def im2col(self, kernel_size: tuple[int, int], stride: tuple[int, int] = (1, 1),
               dilation: tuple[int, int] = (1, 1)) -> Tensor:
        """Kernel windows of a (N, C, H, W) tensor as columns (C, KH, KW, Ho, Wo, N) — see ops.Unfold."""
        if self.ndim != 4:
            raise ValueError(f"im2col expects a 4-D input (N, C, H, W), got shape {self.shape}")
        kernel_size, stride = pair(kernel_size, "kernel_size"), pair(stride, "stride")
        dilation = pair(dilation, "dilation")
        for axis, what in ((0, "input height"), (1, "input width")):
            output_size(self.shape[2 + axis], (0, 0), kernel_size[axis], stride[axis], dilation[axis], what)
        return Tensor._apply(ops.Unfold, self, kernel_size=kernel_size, stride=stride, dilation=dilation)


def _check_allocation(shape: tuple[int, ...], dtype: np.dtype, what: str) -> None:
    """Refuse, before allocating, an array larger than this machine's memory (padding=100000 would ask for
    hundreds of GiB and die inside numpy)."""
    size = math.prod(shape) * dtype.itemsize
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: no limit known
        return
    if size > memory:
        raise ValueError(f"{what} would make an array of shape {shape} ({size / 2**30:,.1f} GiB of {dtype}), more "
                         f"than this machine's {memory / 2**30:,.1f} GiB of memory")


def _numpy_index(index: Any) -> Any:
    """An index for numpy: every Tensor in it (alone or in a tuple) replaced by its array (_index_array)."""
    if isinstance(index, Tensor):
        return _index_array(index)
    if isinstance(index, tuple):
        return tuple(_index_array(i) if isinstance(i, Tensor) else i for i in index)
    return index


def _index_array(index: Tensor) -> np.ndarray:
    """A Tensor used as an index, as an integer or boolean array; floats are refused, never truncated."""
    if index.dtype.kind not in "biu":
        raise TypeError(f"tensors used as indices must be integer or boolean, got {index.dtype} (a Tensor holds "
                        "floats: index with a list of ints or a numpy integer or boolean array instead)")
    return index.data


def _broadcastable(*shapes: tuple[int, ...]) -> bool:
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        return False
    return True


def _reduction_args(reduction: str, axis: Any, keepdims: Any, dim: Any, keepdim: Any) -> tuple[Any, bool]:
    """(axis, keepdims) of a reduction from numpy's names or PyTorch's, type-checked (ops.normalize_axes checks
    the range)."""
    if dim is not None:
        if axis is not None:
            raise TypeError(f"{reduction}() got both axis={axis!r} and dim={dim!r}: pass one")
        # PyTorch reduces every axis for dim=() or dim=[]; numpy's axis=() reduces none
        axis = None if isinstance(dim, (tuple, list)) and not dim else dim
    if keepdim is not None:
        if keepdims is not False:
            raise TypeError(f"{reduction}() got both keepdims and keepdim: pass one")
        keepdims = keepdim
    if not isinstance(keepdims, bool):
        raise TypeError(f"{reduction}(keepdims=...) must be True or False, got {keepdims!r}")
    if axis is None or is_int(axis) or (isinstance(axis, (tuple, list)) and all(is_int(a) for a in axis)):
        return axis, keepdims
    raise TypeError(f"{reduction}(axis=...): axis must be None, an int or a sequence of ints, got {axis!r}")


def _reshape_target(old: tuple[int, ...], shape: tuple) -> tuple[int, ...]:
    """`shape` with its one allowed -1 filled in; a clear error unless it holds as many elements as `old`."""
    size = math.prod(old)
    if set(map(type, shape)) == {int} and min(shape) >= 0 and math.prod(shape) == size:  # the common case, fast
        return shape
    if not all(is_int(n) for n in shape):
        raise TypeError(f"reshape needs ints >= 0 and at most one -1, got {shape}")
    if any(n < -1 for n in shape) or shape.count(-1) > 1:
        raise ValueError(f"reshape needs ints >= 0 and at most one -1, got {shape}")
    known = math.prod(n for n in shape if n != -1)
    if -1 in shape and known and size % known == 0:
        shape = tuple(size // known if n == -1 else n for n in shape)
    if -1 in shape or math.prod(shape) != size:
        raise ValueError(f"cannot reshape a tensor of shape {old} ({size} elements) into {shape}")
    return tuple(int(n) for n in shape)


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """a @ b with numpy's rules (batched, broadcasting; a 1-D operand is a row on the left, a column on the right,
    and that axis is dropped from the result); a clear error when the inner sizes differ."""
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul needs operands with at least 1 dimension, got shapes {a.shape} and {b.shape}")
    inner_a, inner_b = a.shape[-1], b.shape[-2] if b.ndim > 1 else b.shape[0]
    if inner_a != inner_b:
        raise ValueError(f"matmul shape mismatch: {a.shape} @ {b.shape} (inner sizes {inner_a} != {inner_b})")
    if a.shape[:-2] != b.shape[:-2] and not _broadcastable(a.shape[:-2], b.shape[:-2]):
        raise ValueError(f"matmul batch shapes do not broadcast: {a.shape} @ {b.shape}")
    if a.ndim > 1 and b.ndim > 1:
        return Tensor._apply(ops.MatMul, a, b)
    out = Tensor._apply(ops.MatMul, a.reshape(1, -1) if a.ndim == 1 else a, b.reshape(-1, 1) if b.ndim == 1 else b)
    rows = () if a.ndim == 1 else out.shape[-2:-1]
    columns = () if b.ndim == 1 else out.shape[-1:]
    return out.reshape(out.shape[:-2] + rows + columns)


# ---------------------------------------------------------------- backpropagation


def _seed(output: Tensor, grad: Any, what: str) -> np.ndarray:
    """dL/d(output) to start from: `grad` checked (a copy, shaped like output and laid out in memory as it is) or,
    when None, 1 for a one-element output."""
    if grad is None:
        if output.data.size != 1:
            raise ValueError(f"{what} without a gradient needs a one-element output, got shape {output.shape}; "
                             "pass dL/d(output) of that shape, or reduce first (e.g. .sum())")
        return np.ones_like(output.data)
    try:
        array = np.asarray(grad.data if isinstance(grad, Tensor) else grad)
    except (TypeError, ValueError):
        array = np.array(None)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{what}: grad must be an array of numbers shaped like the output "
                        f"{output.shape}, got {type(grad).__name__} {grad!r:.60}")
    if array.shape != output.shape:
        raise ValueError(f"{what}: grad has shape {array.shape}, expected the output's {output.shape}")
    return kernels.copy_like(array.astype(output.dtype, copy=False), output.data)


def _toposort(roots: Sequence[Tensor]) -> list[Tensor]:
    """Tensors the roots depend on that need a gradient, each after all of its inputs (depth-first, with an
    explicit stack: no recursion limit)."""
    order: list[Tensor] = []
    visited: set[Tensor] = set()
    for root in roots:
        stack = [(root, False)]
        while stack:
            tensor, inputs_done = stack.pop()
            if inputs_done:
                order.append(tensor)
                continue
            if tensor in visited:
                continue
            visited.add(tensor)
            stack.append((tensor, True))
            if tensor._ctx is not None:
                for parent in tensor._ctx.parents:
                    if parent.requires_grad and parent not in visited:
                        stack.append((parent, False))
    return order


def _backpropagate(roots: Sequence[Tensor], root_grads: Sequence[Any], create_graph: bool,
                   targets: set[Tensor] | None = None) -> list[tuple[Tensor, Any]]:
    """(tensor, dL/d(tensor)) for every tensor the roots depend on, outputs first: the chain rule.

    create_graph=False: the rules run on arrays. True: on Tensors, so each gradient is a Tensor with a graph.
    targets: visit only the tensors on a path to one of them, and return only theirs (None: all).
    """
    order = _toposort(roots)
    if targets is not None:  # inputs first, so a tensor is on a path when one of its parents is
        on_path: set[Tensor] = set()
        for tensor in order:
            if tensor in targets or any(p in on_path for p in tensor.parents):
                on_path.add(tensor)
        order = [t for t in order if t in on_path]
    grads: dict[Tensor, Any] = {}
    for root, root_grad in zip(roots, root_grads):
        grads[root] = grads[root] + root_grad if root in grads else root_grad
    done: list[tuple[Tensor, Any]] = []
    keep = set(order) if targets is not None else None  # backward(): every parent that requires grad is in order
    for tensor in reversed(order):
        grad = grads.pop(tensor, None)
        if grad is None:
            continue
        if targets is None or tensor in targets:  # the others' gradients are freed as soon as they are used
            done.append((tensor, grad))
        op = tensor._ctx
        if op is None:
            continue
        if _last_write > op.recorded_after:  # something was written in place since this op ran
            _check_versions(tensor, op)
        if create_graph:
            parent_grads = op.backward(grad, tensor, *op.parents)
        else:
            parent_grads = op.backward(grad, tensor._data, *[p._data for p in op.parents])
        for parent, parent_grad in zip(op.parents, parent_grads):
            if parent_grad is None or not parent.requires_grad or (keep is not None and parent not in keep):
                continue
            if not create_graph and type(parent_grad) is not np.ndarray:
                parent_grad = np.asarray(parent_grad)  # numpy gives a scalar, not an array, for 0-d arithmetic
            if parent_grad.shape != parent._data.shape:
                parent_grad = ops.sum_to(parent_grad, parent._data.shape)
            grads[parent] = grads[parent] + parent_grad if parent in grads else parent_grad
    return done


def _check_versions(tensor: Tensor, op: ops.Op) -> None:
    """A rule reads its inputs and output as they are now: refuse if one was written in place since the forward."""
    stale = [(k, p) for k, p in enumerate(op.parents) if p._version > op.recorded_after]
    if tensor._version > op.recorded_after:
        stale.append((None, tensor))
    if stale:
        k, written = stale[0]
        what = "output" if k is None else f"input {k}"
        raise RuntimeError(f"the graph through {op.name} was recorded with its {what}{_named(written)}, which has "
                           "been modified in place since (an optimizer step, t.data = ..., t[...] = ... or an in-place "
                           "method), so its gradients would be stale: run the forward pass again after changing it")


def grad(outputs: Tensor | Sequence[Tensor], inputs: Tensor | Sequence[Tensor], grad_outputs: Any = None,
         create_graph: bool = False, allow_unused: bool = False) -> tuple[Tensor | None, ...]:
    """dL/d(input) for every input, L = Σ_k Σ grad_outputs[k] ⊙ outputs[k], as torch.autograd.grad.

    grad_outputs: one gradient per output, shaped like it (None: 1, for one-element outputs). `.grad` is left
    untouched. create_graph=True: the rules run on Tensors, so the returned gradients carry a graph and `grad` of
    them gives second derivatives (Hessian-vector products, gradient penalties). An input the outputs do not
    depend on is an error naming it, unless allow_unused=True (then its gradient is None).
    """
    outputs, inputs = _tensor_list(outputs, "grad: outputs"), _tensor_list(inputs, "grad: inputs")
    if grad_outputs is None or isinstance(grad_outputs, (Tensor, np.ndarray)):
        grad_outputs = [grad_outputs] * len(outputs) if grad_outputs is None else [grad_outputs]
    grad_outputs = list(grad_outputs)
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad: {len(grad_outputs)} grad_outputs for {len(outputs)} outputs (one per output)")
    _check_requires_grad(outputs, "grad: output", " (no input of it has requires_grad=True)")
    _check_requires_grad(inputs, "grad: input")
    seeds = []
    for output, given in zip(outputs, grad_outputs):
        seed = _seed(output, given, "grad(grad_outputs)")
        seeds.append(given if create_graph and isinstance(given, Tensor) else Tensor(seed) if create_graph else seed)

    found: dict[Tensor, Any] = {}
    previous, _mode.enabled = _mode.enabled, create_graph or _mode.enabled
    try:
        for tensor, tensor_grad in _backpropagate(outputs, seeds, create_graph, targets=set(inputs)):
            found[tensor] = tensor_grad
    finally:
        _mode.enabled = previous
    results: list[Tensor | None] = []
    for k, x in enumerate(inputs):
        if x not in found:
            if not allow_unused:
                raise ValueError(f"grad: input {k}{_named(x)} is not used to compute the outputs (pass "
                                 "allow_unused=True to get None for it)")
            results.append(None)
            continue
        g = found[x]
        if not isinstance(g, Tensor):
            g = Tensor(np.asarray(g).astype(x.dtype, copy=False))
        results.append(g)
    return tuple(results)


def _check_requires_grad(tensors: list[Tensor], what: str, why: str = "") -> None:
    """A clear error naming the first of `tensors` that does not require grad ("{what} {k} ... {why}")."""
    for k, tensor in enumerate(tensors):
        if not tensor.requires_grad:
            raise ValueError(f"{what} {k}{_named(tensor)} does not require grad{why}")


def _tensor_list(value: Any, what: str) -> list[Tensor]:
    tensors = [value] if isinstance(value, Tensor) else value
    if not isinstance(tensors, (list, tuple)) or not tensors or not all(isinstance(t, Tensor) for t in tensors):
        raise TypeError(f"{what} must be a Tensor or a non-empty list/tuple of Tensors, got {value!r:.60}")
    return list(tensors)


def _named(tensor: Tensor) -> str:
    return f" ({tensor.name!r}, shape {tensor.shape})" if tensor.name else f" (shape {tensor.shape})"
