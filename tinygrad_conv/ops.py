"""The table of derivative rules: every primitive op, its forward and its backward side by side.

Each op maps input arrays to one output array (`forward`) and maps dL/d(output) — `grad_output`,
shaped like the output — to one dL/d(input) per input (`backward`), i.e. a vector–Jacobian product.
An op returns None for an input that does not need a gradient (`needs_input_grad`), so no work is
wasted on, say, the gradient of a network's input image.

Broadcasting: a binary rule returns its gradient in the *broadcast* shape; the engine sums it back
to the input's shape in exactly one place, `tensor.unbroadcast`.

Everything else — conv2d, pooling, softmax — is composed from these ops in functional.py, so their
gradients are derived, never written by hand. The two rules that carry a convolution's backward:
  MatMul:  dL/dA = dL/dY · Bᵀ   (with A = weight and B = im2col(X): dL/dW = dL/dY · im2col(X)ᵀ)
  Unfold:  im2col's adjoint is col2im, which adds every window's gradient back where it was read —
           the full convolution of dL/dY with the flipped kernel.
"""

from __future__ import annotations

import numpy as np


class Op:
    """One primitive. `parents` are the input Tensors in argument order (never a set)."""

    parents: tuple = ()
    needs_input_grad: tuple[bool, ...] = ()

    def forward(self, *inputs: np.ndarray, **kwargs) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad_output: np.ndarray) -> tuple[np.ndarray | None, ...]:
        raise NotImplementedError


# ---------------------------------------------------------------- elementwise, binary (broadcasting)


class Add(Op):
    """y = a + b;  dy/da = 1, dy/db = 1."""

    def forward(self, a, b):
        return a + b

    def backward(self, grad_output):
        return grad_output, grad_output


class Sub(Op):
    """y = a − b;  dy/da = 1, dy/db = −1."""

    def forward(self, a, b):
        return a - b

    def backward(self, grad_output):
        return grad_output, -grad_output if self.needs_input_grad[1] else None


class Mul(Op):
    """y = a·b;  dy/da = b, dy/db = a."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, grad_output):
        need_a, need_b = self.needs_input_grad
        return (grad_output * self.b if need_a else None, grad_output * self.a if need_b else None)


class Div(Op):
    """y = a / b;  dy/da = 1/b, dy/db = −a/b²."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, grad_output):
        need_a, need_b = self.needs_input_grad
        grad_a = grad_output / self.b if need_a else None
        grad_b = -grad_output * self.a / (self.b * self.b) if need_b else None
        return grad_a, grad_b


class MatMul(Op):
    """Y = A @ B (batched, broadcasting, 1-D operands as numpy);  dL/dA = dL/dY · Bᵀ, dL/dB = Aᵀ · dL/dY."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, grad_output):
        a, b, grad = self.a, self.b, grad_output
        # A 1-D operand is a row (left) or a column (right) vector whose extra axis the product dropped.
        if b.ndim == 1:
            b, grad = b[:, None], grad[..., None]
        if a.ndim == 1:
            a, grad = a[None, :], np.expand_dims(grad, -2)
        need_a, need_b = self.needs_input_grad
        grad_a = grad @ np.swapaxes(b, -1, -2) if need_a else None
        grad_b = np.swapaxes(a, -1, -2) @ grad if need_b else None
        if need_a and self.a.ndim == 1:
            grad_a = grad_a[..., 0, :]
        if need_b and self.b.ndim == 1:
            grad_b = grad_b[..., 0]
        return grad_a, grad_b


# ---------------------------------------------------------------- elementwise, unary


class Neg(Op):
    """y = −a;  dy/da = −1."""

    def forward(self, a):
        return -a

    def backward(self, grad_output):
        return (-grad_output,)


class Pow(Op):
    """y = aᵖ for a number p;  dy/da = p·aᵖ⁻¹."""

    def forward(self, a, exponent: float):
        self.a, self.exponent = a, exponent
        return a**exponent

    def backward(self, grad_output):
        if self.exponent == 0:  # a⁰ = 1 is constant, even at a = 0 (where 0·0⁻¹ would give NaN)
            return (np.zeros_like(grad_output),)
        return (grad_output * (self.exponent * self.a ** (self.exponent - 1)),)


class Exp(Op):
    """y = eᵃ;  dy/da = eᵃ = y."""

    def forward(self, a):
        self.out = np.exp(a)
        return self.out

    def backward(self, grad_output):
        return (grad_output * self.out,)


class Log(Op):
    """y = ln a;  dy/da = 1/a."""

    def forward(self, a):
        self.a = a
        return np.log(a)

    def backward(self, grad_output):
        return (grad_output / self.a,)


class ReLU(Op):
    """y = max(a, 0);  dy/da = 1 where a > 0, else 0 (0 at the kink, as PyTorch)."""

    def forward(self, a):
        self.positive = a > 0
        return np.where(self.positive, a, 0).astype(a.dtype, copy=False)

    def backward(self, grad_output):
        return (np.where(self.positive, grad_output, 0).astype(grad_output.dtype, copy=False),)


class Tanh(Op):
    """y = tanh a;  dy/da = 1 − y²."""

    def forward(self, a):
        self.out = np.tanh(a)
        return self.out

    def backward(self, grad_output):
        return (grad_output * (1 - self.out * self.out),)


class Sigmoid(Op):
    """y = 1 / (1 + e⁻ᵃ);  dy/da = y·(1 − y)."""

    def forward(self, a):
        with np.errstate(over="ignore"):  # e⁻ᵃ = inf for very negative a gives y = 0, as it should
            self.out = 1 / (1 + np.exp(-a))
        return self.out

    def backward(self, grad_output):
        return (grad_output * self.out * (1 - self.out),)


# ---------------------------------------------------------------- reductions


def normalize_axes(axis: int | tuple[int, ...] | None, ndim: int) -> tuple[int, ...]:
    """axis as a sorted tuple of non-negative axes (None → all), with a clear error when out of range."""
    axes = range(ndim) if axis is None else (axis,) if isinstance(axis, (int, np.integer)) else axis
    normalized = []
    for ax in axes:
        if isinstance(ax, bool) or not isinstance(ax, (int, np.integer)) or not -ndim <= ax < ndim:
            raise ValueError(f"axis {axis!r} is out of range for a tensor with {ndim} dimensions")
        normalized.append(int(ax) % ndim)
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"axis {axis!r} repeats an axis")
    return tuple(sorted(normalized))


def _expand_to(grad_output: np.ndarray, shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool):
    """Undo a reduction's shape change: put back the reduced axes (size 1), then broadcast."""
    if not keepdims:
        grad_output = np.expand_dims(grad_output, axes)
    return np.broadcast_to(grad_output, shape)


class Sum(Op):
    """y = Σ over axes of a;  dy/da = 1 for every summed element: the gradient is copied back."""

    def forward(self, a, axis=None, keepdims=False):
        self.shape, self.axes, self.keepdims = a.shape, normalize_axes(axis, a.ndim), keepdims
        return a.sum(axis=self.axes, keepdims=keepdims)

    def backward(self, grad_output):
        return (_expand_to(grad_output, self.shape, self.axes, self.keepdims),)


class Mean(Op):
    """y = (1/n) Σ over axes of a;  dy/da = 1/n."""

    def forward(self, a, axis=None, keepdims=False):
        self.shape, self.axes, self.keepdims = a.shape, normalize_axes(axis, a.ndim), keepdims
        self.count = int(np.prod([a.shape[ax] for ax in self.axes]))
        return a.mean(axis=self.axes, keepdims=keepdims)

    def backward(self, grad_output):
        return (_expand_to(grad_output / self.count, self.shape, self.axes, self.keepdims),)


class Max(Op):
    """y = max over axes of a;  dy/da = 1 at the first maximum (C order), 0 elsewhere, as PyTorch's max(dim).

    Ties — common after ReLU and in max-pooling windows over a blank background — send the whole
    gradient to one element, not to every tied element.
    """

    def forward(self, a, axis=None, keepdims=False):
        self.axes = normalize_axes(axis, a.ndim)
        if a.size == 0:
            raise ValueError(f"max of an empty tensor of shape {a.shape}")
        # Move the reduced axes last and flatten them, so one argmax finds each window's first maximum.
        self.last = tuple(range(a.ndim - len(self.axes), a.ndim))
        moved = np.moveaxis(a, self.axes, self.last)
        self.moved_shape = moved.shape
        flat = moved.reshape(*moved.shape[: a.ndim - len(self.axes)], -1)
        self.argmax = flat.argmax(axis=-1)[..., None]
        out = np.take_along_axis(flat, self.argmax, axis=-1)[..., 0]
        return np.expand_dims(out, self.axes) if keepdims else out

    def backward(self, grad_output):
        flat = np.zeros((*self.argmax.shape[:-1], int(np.prod(self.moved_shape[len(self.argmax.shape) - 1 :]))),
                        grad_output.dtype)
        np.put_along_axis(flat, self.argmax, grad_output.reshape(self.argmax.shape), axis=-1)
        return (np.moveaxis(flat.reshape(self.moved_shape), self.last, self.axes),)


# ---------------------------------------------------------------- movement (their backward moves the gradient back)


class Reshape(Op):
    """y = a viewed with a new shape;  the gradient is reshaped back."""

    def forward(self, a, shape):
        self.shape = a.shape
        return a.reshape(shape)

    def backward(self, grad_output):
        return (grad_output.reshape(self.shape),)


class Permute(Op):
    """y = a with its axes reordered;  the gradient gets the inverse order."""

    def forward(self, a, axes):
        self.axes = axes
        return a.transpose(axes)

    def backward(self, grad_output):
        return (grad_output.transpose(np.argsort(self.axes)),)


class Pad(Op):
    """y = a surrounded by `value`, pad_width = ((before, after), ...) per axis;  the gradient is cropped."""

    def forward(self, a, pad_width, value=0.0):
        self.inside = tuple(slice(before, before + n) for (before, _), n in zip(pad_width, a.shape))
        out = np.full([n + before + after for n, (before, after) in zip(a.shape, pad_width)], value, a.dtype)
        out[self.inside] = a
        return out

    def backward(self, grad_output):
        return (grad_output[self.inside],)


class Index(Op):
    """y = a[index] (slices, ints, integer or boolean arrays);  the gradient is added back where it was read.

    Basic slicing reads each element at most once, so assignment suffices; advanced indexing may read an
    element twice (a[[0, 0]]), so it accumulates with np.add.at, which — unlike `g[index] += v` — keeps repeats.
    """

    def forward(self, a, index):
        self.shape, self.index = a.shape, index
        parts = index if isinstance(index, tuple) else (index,)
        self.basic = all(p is None or p is Ellipsis or isinstance(p, (slice, int, np.integer)) for p in parts)
        return a[index]

    def backward(self, grad_output):
        grad = np.zeros(self.shape, grad_output.dtype)
        if self.basic:
            grad[self.index] = grad_output
        else:
            np.add.at(grad, self.index, grad_output)
        return (grad,)


class Unfold(Op):
    """im2col: every kernel window of x, as columns.  x (N, C, H, W) → cols (C, KH, KW, N, Ho, Wo) with

        cols[c, i, j, n, y, x'] = x[n, c, y·sh + i·dh, x'·sw + j·dw]

    Channel-major, so `cols.reshape(C·KH·KW, N·Ho·Wo)` is one GEMM operand with no copy. The forward is KH·KW
    strided slice copies. The backward is col2im: each kernel offset (i, j) adds its slice of the gradient back
    onto the pixels it read. Within one offset no pixel is read twice, so a strided `+=` is exact (a fancy-index
    `+=` would drop repeats; np.add.at is correct but slow). Summed over offsets this is the full convolution of
    the gradient with the flipped kernel — the input gradient of a convolution, derived.
    """

    def forward(self, x, kernel_size, stride, dilation):
        (kh, kw), (sh, sw), (dh, dw) = kernel_size, stride, dilation
        n, c, h, w = x.shape
        self.input_shape, self.dtype = x.shape, x.dtype
        ho, wo = (h - dh * (kh - 1) - 1) // sh + 1, (w - dw * (kw - 1) - 1) // sw + 1
        self.windows = [
            (i, j, slice(i * dh, i * dh + sh * (ho - 1) + 1, sh), slice(j * dw, j * dw + sw * (wo - 1) + 1, sw))
            for i in range(kh)
            for j in range(kw)
        ]
        cols = np.empty((c, kh, kw, n, ho, wo), x.dtype)
        x_cnhw = x.transpose(1, 0, 2, 3)
        for i, j, rows, columns in self.windows:
            cols[:, i, j] = x_cnhw[:, :, rows, columns]
        return cols

    def backward(self, grad_output):  # col2im
        n, c, h, w = self.input_shape
        grad = np.zeros((c, n, h, w), grad_output.dtype)
        for i, j, rows, columns in self.windows:
            grad[:, :, rows, columns] += grad_output[:, i, j]
        return (grad.transpose(1, 0, 2, 3),)
