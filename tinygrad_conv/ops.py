"""The table of derivative rules: every primitive op, its forward and its backward side by side.

`forward(*inputs)` maps input arrays to one output array. `backward(grad_output, out, *inputs)` maps
dL/d(output) to one dL/d(input) per input — a vector–Jacobian product — given the output and the inputs.
It returns None for an input that needs no gradient (`needs_input_grad`).

Every rule is written once, in the ops of this table (`reshape`, `expand`, `fold`, `matmul`, `*`, ...), and runs
two ways:
- on arrays, the normal fast path: each op in the rule is its forward on arrays, no Tensor is made;
- on Tensors, under `grad(..., create_graph=True)`: each op in the rule records a node, so the gradient is itself
  a graph that can be drawn and differentiated again (second derivatives).

Broadcasting: a binary rule returns its gradient in the *broadcast* shape; the engine sums it back to the input's
shape with `sum_to` (expand's adjoint), the one place broadcasting is undone. Every movement op has its adjoint
here as an op, so each backward is one line: pad ↔ crop, expand ↔ sum_to, index ↔ scatter, unfold ↔ fold
(im2col ↔ col2im), reshape and permute ↔ themselves.

Everything else — conv2d, pooling, softmax — is composed from these ops in functional.py, so its gradients are
derived, never written by hand. How the arrays are computed fast (layouts, GEMM operand order) is kernels.py.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinygrad_conv import kernels
from tinygrad_conv.conv_args import is_int


class Op:
    """One primitive. `parents` are the input Tensors in argument order (never a set); `arguments` the keyword
    arguments it was called with (axes, shapes, kernel sizes)."""

    parents: tuple = ()
    needs_input_grad: tuple[bool, ...] = ()
    recorded_after: int = 0  # the number of the last in-place write before this op ran (tensor.py)
    arguments: dict[str, Any] = {}

    @property
    def name(self) -> str:
        """The op's name, e.g. "MatMul"."""
        return type(self).__name__

    def forward(self, *inputs: np.ndarray, **arguments: Any) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad_output: Any, out: Any, *inputs: Any) -> tuple[Any, ...]:
        raise NotImplementedError


_array_ops: dict[type[Op], Op] = {}


def apply(op_type: type[Op], *inputs: Any, **arguments: Any) -> Any:
    """op_type on inputs: its forward on arrays, or a new node of the graph when an input is a Tensor."""
    for x in inputs:
        if type(x) is not np.ndarray:
            break
    else:  # the fast path: arrays only, through one instance per op (on arrays nothing is recorded)
        op = _array_ops.get(op_type) or _array_ops.setdefault(op_type, op_type())
        return op.forward(*inputs, **arguments)
    for x in inputs:
        if hasattr(x, "_apply"):  # a Tensor: record, with any array beside it as a constant
            tensor = type(x)
            return tensor._apply(op_type, *[y if isinstance(y, tensor) else tensor(y) for y in inputs], **arguments)
    return op_type().forward(*[np.asarray(x) for x in inputs], **arguments)  # numpy scalars become 0-d arrays


def value(x: Any) -> np.ndarray:
    """The array of an array or a Tensor: for the parts of a rule that are constants (masks, counts)."""
    return x if isinstance(x, np.ndarray) else x.data


# ---------------------------------------------------------------- elementwise, binary (broadcasting)


class Add(Op):
    """y = a + b;  dL/da = g,  dL/db = g."""

    def forward(self, a, b):
        return np.add(a, b, out=kernels.elementwise_out(a, b))

    def backward(self, g, out, a, b):
        return g, g


class Sub(Op):
    """y = a − b;  dL/da = g,  dL/db = −g."""

    def forward(self, a, b):
        return a - b

    def backward(self, g, out, a, b):
        return g, -g if self.needs_input_grad[1] else None


class Mul(Op):
    """y = a·b;  dL/da = g·b,  dL/db = g·a."""

    def forward(self, a, b):
        return np.multiply(a, b, out=kernels.elementwise_out(a, b))

    def backward(self, g, out, a, b):
        need_a, need_b = self.needs_input_grad
        return mul(g, b) if need_a else None, mul(g, a) if need_b else None


class Div(Op):
    """y = a / b;  dL/da = g / b,  dL/db = −g·a / b²."""

    def forward(self, a, b):
        return a / b

    def backward(self, g, out, a, b):
        need_a, need_b = self.needs_input_grad
        return g / b if need_a else None, -g * a / (b * b) if need_b else None


class MatMul(Op):
    """Y = A · B (both at least 2-D; leading axes broadcast);  dL/dA = G · Bᵀ,  dL/dB = Aᵀ · G.

    With A = weight and B = cols = im2col(X) this is conv2d's weight gradient: dL/dW = dL/dY · colsᵀ.
    """

    def forward(self, a, b):
        return kernels.matmul(a, b)

    def backward(self, g, out, a, b):
        need_a, need_b = self.needs_input_grad
        return matmul(g, transpose(b)) if need_a else None, matmul(transpose(a), g) if need_b else None


# ---------------------------------------------------------------- elementwise, unary


class Neg(Op):
    """y = −a;  dL/da = −g."""

    def forward(self, a):
        return -a

    def backward(self, g, out, a):
        return (-g,)


class Pow(Op):
    """y = aᵖ for a number p;  dL/da = g·p·aᵖ⁻¹  (0 for p = 0: a⁰ = 1 is constant, even at a = 0)."""

    def forward(self, a, exponent: float):
        return a**exponent

    def backward(self, g, out, a):
        p = self.arguments["exponent"]
        return (g * 0.0 if p == 0 else g * (p * a ** (p - 1)),)


class Exp(Op):
    """y = eᵃ;  dL/da = g·y."""

    def forward(self, a):
        return np.exp(a)

    def backward(self, g, out, a):
        return (g * out,)


class Log(Op):
    """y = ln a;  dL/da = g / a."""

    def forward(self, a):
        return np.log(a)

    def backward(self, g, out, a):
        return (g / a,)


class ReLU(Op):
    """y = max(a, 0);  dL/da = 0 where y ≤ 0, else g: 0 at the kink, and g at a NaN, as PyTorch's rule."""

    def forward(self, a):
        return kernels.relu(a)

    def backward(self, g, out, a):
        return (mul(g, kernels.not_at_most_zero(value(out))),)


class Tanh(Op):
    """y = tanh a;  dL/da = g·(1 − y²)."""

    def forward(self, a):
        return np.tanh(a)

    def backward(self, g, out, a):
        return (g * (1 - out * out),)


class Sigmoid(Op):
    """y = 1 / (1 + e⁻ᵃ);  dL/da = g·y·(1 − y)."""

    def forward(self, a):
        with np.errstate(over="ignore"):  # e⁻ᵃ = inf for very negative a gives y = 0, as it should
            return 1 / (1 + np.exp(-a))

    def backward(self, g, out, a):
        return (g * out * (1 - out),)


class Clamp(Op):
    """y = min(max(a, low), high) (a bound may be None);  dL/da = g where low ≤ a ≤ high, else 0 (as PyTorch)."""

    def forward(self, a, low=None, high=None):
        return np.clip(a, low, high)

    def backward(self, g, out, a):
        low, high = self.arguments.get("low"), self.arguments.get("high")
        inside = np.ones(a.shape, bool)
        if low is not None:
            inside &= value(a) >= low
        if high is not None:
            inside &= value(a) <= high
        return (g * inside,)


# ---------------------------------------------------------------- reductions


def normalize_axes(axis: int | tuple[int, ...] | None, ndim: int) -> tuple[int, ...]:
    """axis as a sorted tuple of non-negative axes (None → all), with a clear error when out of range."""
    axes = range(ndim) if axis is None else (axis,) if isinstance(axis, (int, np.integer)) else axis
    normalized = []
    for ax in axes:
        if not is_int(ax) or not -ndim <= ax < ndim:
            raise ValueError(f"axis {axis!r} is out of range for a tensor with {ndim} dimensions")
        normalized.append(int(ax) % ndim)
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"axis {axis!r} repeats an axis")
    return tuple(sorted(normalized))


def _kept(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    """shape with the reduced axes kept as size 1 (a reduction's keepdims=True shape)."""
    return tuple(1 if ax in axes else n for ax, n in enumerate(shape))


class Sum(Op):
    """y = Σ over axes of a;  dL/da = g copied back over the summed axes."""

    def forward(self, a, axis=None, keepdims=False):
        self.axes = normalize_axes(axis, a.ndim)
        return a.sum(axis=self.axes, keepdims=keepdims)

    def backward(self, g, out, a):
        return (expand(reshape(g, _kept(a.shape, self.axes)), a.shape),)


class Mean(Op):
    """y = (1/n) Σ over axes of a;  dL/da = g / n copied back over the averaged axes."""

    def forward(self, a, axis=None, keepdims=False):
        self.axes = normalize_axes(axis, a.ndim)
        return a.mean(axis=self.axes, keepdims=keepdims)

    def backward(self, g, out, a):
        count = math.prod(a.shape[ax] for ax in self.axes)
        return (expand(reshape(g / count, _kept(a.shape, self.axes)), a.shape),)


class Max(Op):
    """y = max over axes of a;  dL/da = g at the maxima, 0 elsewhere — how ties share it is `ties`:

    ties="first": the first maximum (C order) gets all of g, as PyTorch's max(dim).
    ties="split": each of the k tied maxima gets g/k, as PyTorch's max() without dim and amax().
    ties="pool": as PyTorch's max-pooling, whose kernel scans a window in C order keeping v when v > max or v is
    NaN: the first maximum, or in a window holding NaN the last NaN (where "first" takes the first NaN).
    A window holding NaN has max NaN and its NaNs count as the maxima.
    where (max-pooling's padding): a constant boolean mask broadcast against a; only its True elements take part,
    y = max over them (−inf if none). So padding never takes the gradient: in a window whose real elements are all
    −inf, the first real one does, as in PyTorch.
    The mask is a constant: max is linear in a near any point without ties, so its second derivative is 0.
    """

    def forward(self, a, axis=None, keepdims=False, ties="first", where=None):
        if ties not in ("first", "split", "pool"):
            raise ValueError(f"ties must be 'first', 'split' or 'pool', got {ties!r}")
        if a.size == 0:
            raise ValueError(f"max of an empty tensor of shape {a.shape}")
        self.axes = normalize_axes(axis, a.ndim)
        if where is None:
            return a.max(axis=self.axes, keepdims=keepdims)
        return a.max(axis=self.axes, keepdims=keepdims, where=where, initial=-np.inf)

    def backward(self, g, out, a):
        kept = _kept(a.shape, self.axes)
        a_values, out_values = value(a), value(out).reshape(kept)
        maxima = kernels.equal(a_values, out_values)
        nan_windows = np.isnan(out_values)
        holds_nan = nan_windows.any()
        if holds_nan:  # a window holding NaN has max NaN, and its NaNs are the maxima
            maxima |= np.isnan(a_values) & nan_windows
        where, ties = self.arguments.get("where"), self.arguments.get("ties", "first")
        if where is not None:
            maxima &= where
        if ties == "split":
            mask = maxima / maxima.sum(axis=self.axes, keepdims=True, dtype=a_values.dtype)
        else:
            mask = kernels.first_maxima(a_values, maxima, self.axes)
            if ties == "pool" and holds_nan:  # windows holding NaN: their last NaN instead
                last = kernels.first_maxima(a_values, maxima, self.axes, last=True)
                mask = np.where(nan_windows, last, mask)
        return (mul(expand(reshape(g, kept), a.shape), mask),)


# ---------------------------------------------------------------- movement, each beside its adjoint


class Expand(Op):
    """y = a broadcast to `shape` (size-1 axes stretched, new leading axes);  dL/da = sum_to(g, a's shape)."""

    def forward(self, a, shape):
        return np.broadcast_to(a, shape)

    def backward(self, g, out, a):
        return (sum_to(g, a.shape),)


class SumTo(Op):
    """y = a summed over the axes broadcasting added or stretched, down to `shape`;  dL/da = expand(g, a's shape)."""

    def forward(self, a, shape):
        return kernels.sum_to(a, shape)

    def backward(self, g, out, a):
        return (expand(g, a.shape),)


class Reshape(Op):
    """y = a's elements in C order with a new shape;  dL/da = g reshaped back."""

    def forward(self, a, shape):
        return kernels.reshape(a, shape)

    def backward(self, g, out, a):
        return (reshape(g, a.shape),)


class Permute(Op):
    """y = a with its axes reordered (output axis k is input axis axes[k]);  dL/da = g with the inverse order."""

    def forward(self, a, axes):
        return a.transpose(axes)

    def backward(self, g, out, a):
        axes = self.arguments["axes"]
        return (permute(g, tuple(sorted(range(len(axes)), key=axes.__getitem__))),)


class Pad(Op):
    """y = a surrounded by `value`, pad_width = ((before, after), ...) per axis;  dL/da = crop(g)."""

    def forward(self, a, pad_width, value=0.0):
        return kernels.pad(a, pad_width, value)

    def backward(self, g, out, a):
        return (crop(g, self.arguments["pad_width"]),)


class Crop(Op):
    """y = a without pad_width = ((before, after), ...) per axis;  dL/da = pad(g) with zeros."""

    def forward(self, a, pad_width):
        return a[tuple([slice(before, n - after) for (before, after), n in zip(pad_width, a.shape)])]

    def backward(self, g, out, a):
        return (pad(g, self.arguments["pad_width"]),)


class Index(Op):
    """y = a[index] (slices, ints, integer or boolean arrays);  dL/da = scatter(g): added back where it was read."""

    def forward(self, a, index):
        return a[index]

    def backward(self, g, out, a):
        return (scatter(g, self.arguments["index"], a.shape),)


class Scatter(Op):
    """y = zeros of `shape` with y[index] += a, repeats adding up;  dL/da = g[index]. Index's adjoint.

    Basic slicing writes each element at most once, so assignment suffices; advanced indexing may write an element
    twice (index [0, 0]), so it accumulates with np.add.at, which — unlike `y[index] += a` — keeps repeats.
    """

    def forward(self, a, index, shape):
        y = np.zeros(shape, a.dtype)
        parts = index if isinstance(index, tuple) else (index,)
        if all(p is None or p is Ellipsis or isinstance(p, (slice, int, np.integer)) for p in parts):
            y[index] = a
        else:
            np.add.at(y, index, a)
        return y

    def backward(self, g, out, a):
        return (index(g, self.arguments["index"]),)


class Unfold(Op):
    """im2col: every kernel window of x as a column.  x (N, C, H, W) → cols (C, KH, KW, Ho, Wo, N),

        cols[c, i, j, y, x', n] = x[n, c, y·sh + i·dh, x'·sw + j·dw];    dL/dx = fold(g): col2im.

    so `cols.reshape(C·KH·KW, Ho·Wo·N)` is one GEMM operand. The batch is the last axis (see kernels.py).
    """

    def forward(self, x, kernel_size, stride, dilation):
        return kernels.im2col(x, kernel_size, stride, dilation)

    def backward(self, g, out, x):
        return (fold(g, x.shape[2:], **self.arguments),)


class Fold(Op):
    """col2im, im2col's adjoint: every window's column added back onto the pixels it was read from.
    cols (C, KH, KW, Ho, Wo, N) → x (N, C, H, W) for an image of `output_size` (H, W),

        x[n, c, y·sh + i·dh, x'·sw + j·dw] += cols[c, i, j, y, x', n];    dL/dcols = unfold(g): im2col.

    Summed over the kernel offsets this is the full convolution with the flipped kernel: the input gradient of a
    convolution is fold(Wᵀ · dL/dY), cropped by the padding.
    """

    def forward(self, cols, output_size, kernel_size, stride, dilation):
        return kernels.col2im(cols, output_size, kernel_size, stride, dilation)

    def backward(self, g, out, cols):
        window = self.arguments
        return (unfold(g, window["kernel_size"], window["stride"], window["dilation"]),)


# ---------------------------------------------------------------- the ops as functions, for the rules above
# On Tensors each records a node through `apply`. On arrays, the ones a conv net's backward pass calls most run their
# op's forward directly (the same call as the forward, nothing to record), skipping apply's dispatch.


def mul(a, b):
    if type(a) is type(b) is np.ndarray:
        return np.multiply(a, b, out=kernels.elementwise_out(a, b))
    return apply(Mul, a, b)


def matmul(a, b):
    if type(a) is type(b) is np.ndarray:
        return kernels.matmul(a, b)
    return apply(MatMul, a, b)


def transpose(a):
    """a with its last two axes swapped."""
    if type(a) is np.ndarray:
        return a.swapaxes(-1, -2)
    return permute(a, (*range(a.ndim - 2), a.ndim - 1, a.ndim - 2))


def expand(a, shape: tuple[int, ...]):
    return a if a.shape == shape else apply(Expand, a, shape=shape)


def sum_to(a, shape: tuple[int, ...]):
    return a if a.shape == shape else apply(SumTo, a, shape=shape)


def reshape(a, shape):
    if type(a) is np.ndarray:
        return kernels.reshape(a, shape)
    return apply(Reshape, a, shape=tuple(shape))


def permute(a, axes):
    if type(a) is np.ndarray:
        return a.transpose(axes)
    return apply(Permute, a, axes=tuple(axes))


def pad(a, pad_width, value=0.0):
    return apply(Pad, a, pad_width=pad_width, value=value)


def crop(a, pad_width):
    return apply(Crop, a, pad_width=pad_width)


def index(a, index):
    return apply(Index, a, index=index)


def scatter(a, index, shape):
    return apply(Scatter, a, index=index, shape=tuple(shape))


def unfold(x, kernel_size, stride, dilation):
    return apply(Unfold, x, kernel_size=kernel_size, stride=stride, dilation=dilation)


def fold(cols, output_size, kernel_size, stride, dilation):
    if type(cols) is np.ndarray:
        return kernels.col2im(cols, output_size, kernel_size, stride, dilation)
    return apply(Fold, cols, output_size=tuple(output_size), kernel_size=kernel_size, stride=stride,
                 dilation=dilation)
