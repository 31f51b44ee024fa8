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

import math

import numpy as np

from tinygrad_conv.conv_args import is_int


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
        grad_a = _times_transposed(grad, b) if need_a else None
        grad_b = np.swapaxes(a, -1, -2) @ grad if need_b else None
        if need_a and self.a.ndim == 1:
            grad_a = grad_a[..., 0, :]
        if need_b and self.b.ndim == 1:
            grad_b = grad_b[..., 0]
        return grad_a, grad_b


def _times_transposed(grad: np.ndarray, b: np.ndarray) -> np.ndarray:
    """grad · bᵀ for grad (…, m, q) and b (…, p, q) → (…, m, p), a sum over the long axis q when it is conv's weight
    gradient (m = Cout, p = Cin·KH·KW, q = N·Ho·Wo). When p > m it is computed as (b · gradᵀ)ᵀ: the same sums, but
    OpenBLAS writes the taller (p, m) product 1.4–2× faster on its AVX-512 kernels (0.5–0.7 of the time at the
    benchmark's conv shapes; 0.9–1.3 on its Haswell kernels).
    """
    if b.shape[-2] > grad.shape[-2]:
        return np.swapaxes(b @ np.swapaxes(grad, -1, -2), -1, -2)
    return grad @ np.swapaxes(b, -1, -2)


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

    # maximum and a multiply by the boolean mask, not np.where: np.where on a random mask ran 10-20x slower
    # (measured 230 vs 20 µs forward, 230 vs 14 µs backward at (64, 16, 8, 8) float32).
    def forward(self, a):
        self.out = np.maximum(a, 0)
        return self.out

    def backward(self, grad_output):
        return (grad_output * (self.out > 0),)


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
        if not is_int(ax) or not -ndim <= ax < ndim:
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
        self.count = math.prod(a.shape[ax] for ax in self.axes)
        return a.mean(axis=self.axes, keepdims=keepdims)

    def backward(self, grad_output):
        return (_expand_to(grad_output / self.count, self.shape, self.axes, self.keepdims),)


class Max(Op):
    """y = max over axes of a;  dy/da = 1 at the maxima, 0 elsewhere — how ties share it is `ties`:

    ties="first": the first maximum (C order) gets the whole gradient, as PyTorch's max(dim) and max-pooling.
        Ties — common after ReLU and in max-pooling windows over a blank background — thus send it to one
        element, not to every tied element.
    ties="split": each of the k tied maxima gets 1/k of it, as PyTorch's max() without dim and amax().
    A window holding NaN has max NaN and its NaNs count as the maxima (the first one, or all of them evenly).
    """

    def forward(self, a, axis=None, keepdims=False, ties="first"):
        if ties not in ("first", "split"):
            raise ValueError(f"ties must be 'first' or 'split', got {ties!r}")
        self.axes, self.ties = normalize_axes(axis, a.ndim), ties
        if a.size == 0:
            raise ValueError(f"max of an empty tensor of shape {a.shape}")
        self.a, self.out = a, a.max(axis=self.axes, keepdims=True)
        return self.out if keepdims else self.out.squeeze(self.axes)

    def backward(self, grad_output):
        a, grad_output = self.a, grad_output.reshape(self.out.shape)
        maxima = a == self.out
        if np.isnan(self.out).any():  # a window holding NaN has max NaN: its NaNs are the maxima
            maxima |= np.isnan(a)
        if self.ties == "split":
            count = maxima.sum(axis=self.axes, keepdims=True, dtype=grad_output.dtype)
            return (maxima * (grad_output / count),)
        # The first maximum without argmax: rank each window's elements K, K−1, ..., 1 in C order; among the
        # maxima the first has the highest rank. Whole-array compares and a max, no per-window loop: max-pool
        # forward+backward went from 420 to 40 µs at (16, 4, 64, 4, 4) (argmax + take/put_along_axis before).
        window = [a.shape[ax] if ax in self.axes else 1 for ax in range(a.ndim)]
        size = math.prod(window)
        rank = np.arange(size, 0, -1, dtype=np.min_scalar_type(size)).reshape(window)
        score = maxima * rank  # 0 off the maxima
        first = score == score.max(axis=self.axes, keepdims=True)
        return (first * grad_output,)


# ---------------------------------------------------------------- movement (their backward moves the gradient back)


class Reshape(Op):
    """y = a viewed with a new shape;  the gradient is reshaped back. (A reshape of an array that is not in C order
    copies it: `c_order` makes that copy.)"""

    def forward(self, a, shape):
        self.shape = a.shape
        return c_order(a).reshape(shape)

    def backward(self, grad_output):
        return (c_order(grad_output).reshape(self.shape),)


class Permute(Op):
    """y = a with its axes reordered;  the gradient gets the inverse order."""

    def forward(self, a, axes):
        self.axes, self.inverse = axes, tuple(sorted(range(len(axes)), key=axes.__getitem__))  # inverse[axes[k]] = k
        return a.transpose(axes)

    def backward(self, grad_output):
        return (grad_output.transpose(self.inverse),)


class Pad(Op):
    """y = a surrounded by `value`, pad_width = ((before, after), ...) per axis;  the gradient is cropped."""

    def forward(self, a, pad_width, value=0.0):
        self.inside = tuple(slice(before, before + n) for (before, _), n in zip(pad_width, a.shape))
        shape = [n + before + after for n, (before, after) in zip(a.shape, pad_width)]
        # Images (N, C, H, W) come out batch-last in memory, the layout Unfold reads without a copy. For an input in
        # (N, C, H, W) order, that makes padding and Unfold's transpose one strided copy instead of two passes:
        # (64, 16, 14, 14) padded by 1 then transposed, 150 → 69 µs; (64, 1, 28, 28) by 2, 42 → 14 µs.
        if a.ndim == 4:
            out = np.full((*shape[1:], shape[0]), value, a.dtype).transpose(3, 0, 1, 2)
        else:
            out = np.full_like(a, value, shape=shape)
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
    """im2col: every kernel window of x, as columns.  x (N, C, H, W) → cols (C, KH, KW, Ho, Wo, N) with

        cols[c, i, j, y, x', n] = x[n, c, y·sh + i·dh, x'·sw + j·dw]

    so `cols.reshape(C·KH·KW, Ho·Wo·N)` is one GEMM operand with no copy. The forward is one strided slice copy per
    kernel offset (i, j). The backward is col2im: each offset adds its slice of the gradient back onto the pixels
    it read. Within one offset no pixel is read twice, so a strided `+=` is exact (a fancy-index `+=` would drop
    repeats; np.add.at is correct but slow). Summed over offsets this is the full convolution of the gradient with
    the flipped kernel — the input gradient of a convolution, derived.

    Layout: the batch is the last, contiguous axis, so a window's row is Wo·N numbers in a row of memory rather
    than Wo (numpy pays ~3–8 ns per row of a strided copy, and these images are 8 to 32 pixels wide). conv2d's
    output is then a (N, C, H, W) view of (C, H, W, N) memory, and so is everything computed from it, so the
    next Unfold reads it without a copy; an input laid out (N, C, H, W) is transposed once (by Pad when the conv
    pads, else by `c_order`).
    Measured against (C, KH, KW, N, Ho, Wo) columns, in turns: a demo training step 2.9 vs 4.0 ms, conv2d fwd+bwd
    at (64, 16, 14, 14) → 32 3.4 vs 3.8 ms, and 0.9–1.07× the time at the other benchmark shapes.

    col2im with row stride 1 adds in two steps: kernel column j's KH row shifts into a strip as wide as the output,
    then the strip across onto the input. In that layout a row shift of a whole slice is one contiguous block per
    channel, which numpy adds ~3× faster than the same numbers as rows of Wo·N (a strided add pays ~0.1 µs per
    row). Measured against adding each offset's slice directly: 0.6–0.8 of the time alone, 0.6–0.9 inside a conv
    step at the benchmark's shapes. With row stride 2 (pooling) the rows are strided either way and the strip is
    only an extra copy (1.3–1.6× the time), so those add directly.
    """

    def forward(self, x, kernel_size, stride, dilation):
        (kh, kw), (sh, sw), (dh, dw) = kernel_size, stride, dilation
        n, c, h, w = x.shape
        ho, wo = (h - dh * (kh - 1) - 1) // sh + 1, (w - dw * (kw - 1) - 1) // sw + 1
        self.input_shape = x.shape
        self.rows = [slice(i * dh, i * dh + sh * (ho - 1) + 1, sh) for i in range(kh)]  # the rows kernel row i reads
        self.columns = [slice(j * dw, j * dw + sw * (wo - 1) + 1, sw) for j in range(kw)]
        # Where windows cannot overlap along an axis (stride ≥ window extent, as in 2×2 max-pooling), col2im writes
        # each pixel at most once along it and can assign instead of add: 2× faster (48 vs 97 µs, the demo's pooling).
        self.rows_overlap, self.columns_overlap = sh < dh * (kh - 1) + 1, sw < dw * (kw - 1) + 1
        self.row_stride = sh
        x_chwn = c_order(x.transpose(1, 2, 3, 0))  # a view when x is batch-last in memory already
        cols = np.empty((c, kh, kw, ho, wo, n), x.dtype)
        for i, rows in enumerate(self.rows):
            for j, columns in enumerate(self.columns):
                cols[:, i, j] = x_chwn[:, rows, columns]
        return cols

    def backward(self, grad_output):  # col2im: the forward's copies reversed, adding where windows overlap
        n, c, h, w = self.input_shape
        grad = np.zeros((c, h, w, n), grad_output.dtype)
        overlapping = self.rows_overlap or self.columns_overlap
        for j, columns in enumerate(self.columns):
            if self.row_stride == 1:  # kernel column j's row shifts into a strip first (see the docstring)
                strip = np.zeros((c, h, grad_output.shape[4], n), grad_output.dtype)
                for i, rows in enumerate(self.rows):
                    _put(strip[:, rows], grad_output[:, i, j], self.rows_overlap and i > 0)
                _put(grad[:, :, columns], strip, self.columns_overlap and j > 0)
            else:
                for i, rows in enumerate(self.rows):
                    _put(grad[:, rows, columns], grad_output[:, i, j], overlapping and (i, j) != (0, 0))
        return (grad.transpose(3, 0, 1, 2),)


def c_order(a: np.ndarray) -> np.ndarray:
    """a in C order: itself if it is, else a copy. When a's first axis is innermost in memory (batch-last memory seen
    as (N, C, H, W), possibly cropped) or its last axis outermost (the reverse), the copy is a 2-D transpose in
    disguise, made by `_transpose`; numpy's own copy of such an array runs up to 5x slower (see there).
    """
    if a.flags.c_contiguous:
        return a
    if a.ndim >= 2 and a.strides[0] == a.itemsize and a.shape[0] * a.itemsize >= 64:  # memory (..., N): (rest, N)
        source = np.ascontiguousarray(a.transpose(*range(1, a.ndim), 0)).reshape(-1, a.shape[0])
    elif a.ndim >= 2 and (last_first := a.transpose(a.ndim - 1, *range(a.ndim - 1))).flags.c_contiguous:  # (last, ...)
        source = last_first.reshape(a.shape[-1], -1)
    else:
        return np.ascontiguousarray(a)
    out = np.empty(a.shape, a.dtype)
    _transpose(source, out.reshape(source.shape[::-1]))
    return out


def _transpose(source: np.ndarray, target: np.ndarray) -> None:
    """target[...] = source.T for C-order 2-D arrays, in an order that keeps the reads in cache.

    numpy copies in the target's order, so it reads the source down its columns:
    - a tall source (rows of 64 B to 4 KiB, e.g. (C·H·W, N)) is read whole once per target row, from L2 or L3 when it
      is bigger than L1. Copied in blocks of source rows that fit in 32 KiB: (6272, 64) float32 0.32 → 0.17 ms,
      (3136, 64) 0.11 → 0.06 ms.
    - a wide source (e.g. (N, C·H·W)) has up to N rows read in turn; when they lie a multiple of 1 KiB apart they map
      to the same few cache sets and evict each other, so more than 8 such rows are first staged in rows 64 bytes
      longer: (64, 16·16·16) 0.35 → 0.08 ms, (64, 16·32·32) 1.43 → 0.30 ms (the staging costs 10–25% otherwise).
    """
    rows, columns = source.shape
    row_bytes = columns * source.itemsize
    block = 32768 // row_bytes
    if 64 <= row_bytes <= 4096 and rows > block:
        for start in range(0, rows, block):
            target[:, start:start + block] = source[start:start + block].T
    elif rows <= 8 or row_bytes % 1024:
        target[...] = source.T
    else:
        staged = np.empty((rows, columns + 64 // source.itemsize), source.dtype)
        staged[:, :columns] = source
        target[...] = staged[:, :columns].T


def _put(target: np.ndarray, values: np.ndarray, accumulate: bool) -> None:
    """target += values, or target[...] = values where nothing was written to target before."""
    if accumulate:
        target += values
    else:
        target[...] = values
