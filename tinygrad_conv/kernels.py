"""Fast numpy routines behind the primitive ops, each beside a plain reference that says what it computes.

ops.py states every rule as maths and calls these for the arrays; a reader never needs this file to know *what*
a gradient is, only how it is computed quickly. tests/test_kernels.py checks every fast routine against its
reference on random shapes, bit for bit. Why each trick pays, with numbers: benchmarks/README.md.

Layout. The conv path keeps images batch-last in memory: im2col's columns are (C, KH, KW, Ho, Wo, N), so a kernel
window's row is Wo·N numbers in one run of memory, `cols.reshape(C·KH·KW, Ho·Wo·N)` is one GEMM operand without a
copy, and conv2d's output (N, Cout, Ho, Wo) is a view of (Cout, Ho, Wo, N) memory that the next im2col reads
without a copy. `pad` writes a 4-D image batch-last for the same reason.

Memory. The large arrays these routines return (columns, padded images, GEMM results) and the large results of
the elementwise ops (`elementwise_out`: a bias added, a ReLU, their gradients) come from `empty`, which reuses a
buffer of the same size once nothing refers to it any more, instead of asking malloc for fresh pages. A result
keeps the memory layout of its input (`empty_like`), as numpy's own would.
"""

from __future__ import annotations

import functools
import math
import sys
import threading

import numpy as np

# ---------------------------------------------------------------- memory: large temporaries, reused

REUSE_BYTES = 1 << 17  # arrays this large come from the pool; malloc's own free lists serve smaller ones well
POOL_BYTES = 1 << 30  # at most this much memory is kept for reuse while nothing refers to it

_pool: dict[int, list[np.ndarray]] = {}  # nbytes → the uint8 buffers of that size handed out so far
_pool_lock = threading.Lock()


_probe = [np.empty(0)]
_IDLE = sys.getrefcount(_probe[0])  # the count `getrefcount(buffers[k])` gives when only the pool list refers to it
del _probe


def empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialised C-order array (reference: np.empty).

    A large one reuses a buffer of the same byte size that nothing refers to any more: every view of a buffer (a
    reshape, a transpose, a `.grad` handed to the user) holds a reference to it, so its reference count says
    whether it is free. Fresh memory costs a page fault per 4 KiB on first touch, and malloc hands large blocks
    back to the operating system when they are freed, so a training step that allocated its columns anew would
    fault them in again every step. The pool is per process and keeps at most POOL_BYTES of buffers nothing refers
    to; malloc's own behaviour is left alone.
    """
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < REUSE_BYTES:
        return np.empty(shape, dtype)
    with _pool_lock:
        buffers = _pool.get(nbytes)  # the most recently handed out last
        if buffers is None:
            buffers = _pool[nbytes] = []
        for k in range(len(buffers) - 1, -1, -1):  # the most recently used idle one: the likeliest to be in cache
            if sys.getrefcount(buffers[k]) == _IDLE:
                buffer = buffers.pop(k)
                break
        else:
            _make_room(nbytes)
            buffer = np.empty(nbytes, np.uint8)
        buffers.append(buffer)
    return np.ndarray(shape, dtype, buffer)


def empty_like(a: np.ndarray, dtype: np.dtype | None = None) -> np.ndarray:
    """An uninitialised array shaped as a and laid out in memory as a is, axis order and all (reference:
    np.empty_like), from `empty`."""
    dtype = a.dtype if dtype is None else dtype
    if a.flags.c_contiguous:
        return empty(a.shape, dtype)
    order, inverse = memory_order(a.strides)
    return empty(a.transpose(order).shape, dtype).transpose(inverse)


def empty_like_reference(a: np.ndarray, dtype: np.dtype | None = None) -> np.ndarray:
    return np.empty_like(a, dtype)


def elementwise_out(*inputs: np.ndarray, dtype: np.dtype | None = None) -> np.ndarray | None:
    """Where an elementwise op on arrays writes its result (`out=` of a numpy ufunc): a large result goes into
    `empty_like` of the largest input, in numpy's result dtype (or `dtype`: bool for a comparison); None, so numpy
    allocates, for a small result or one that broadcasting makes larger than every input. Activation-sized results
    (a bias added, a ReLU and its gradient) are then reused step after step like the columns are, instead of fresh
    memory from malloc."""
    largest = inputs[0]
    for x in inputs[1:]:  # of equal sizes, not a broadcast view (stride 0): its layout is no one's choice
        if x.size > largest.size or (x.size == largest.size and 0 in largest.strides):
            largest = x
    if largest.nbytes < REUSE_BYTES:
        return None
    shape = largest.shape
    for x in inputs:
        if x.shape != shape and not _broadcasts_to(x.shape, shape):
            return None
    return empty_like(largest, np.result_type(*inputs) if dtype is None else dtype)


def equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The mask a == b (reference: np.equal), into `elementwise_out`."""
    return np.equal(a, b, out=elementwise_out(a, b, dtype=np.dtype(bool)))


def not_at_most_zero(a: np.ndarray) -> np.ndarray:
    """The mask ¬(a ≤ 0): a > 0, or a is NaN (reference: np.logical_not(a <= 0)), into `elementwise_out`."""
    out = elementwise_out(a, dtype=np.dtype(bool))  # None for a small a: numpy allocates (a 0-d a gives a scalar)
    return np.logical_not(np.less_equal(a, 0, out=out), out=out)


ZERO_ROW = 1024  # relu's row of zeros, in elements


def relu(a: np.ndarray) -> np.ndarray:
    """max(a, 0) elementwise (reference: np.maximum(a, 0)), into `elementwise_out`.

    Computed against a row of ZERO_ROW zeros rather than the scalar 0: numpy's maximum with a scalar operand runs a
    loop ~3× slower than with two operands that both step through memory. a is read in memory order, as rows of
    ZERO_ROW elements (the rest against the scalar); the same maxima, bit for bit, NaN and −0.0 included.
    """
    out = elementwise_out(a)
    if out is None:  # small: numpy allocates
        return np.maximum(a, 0)
    order, _ = memory_order(a.strides)
    moved = a.transpose(order)
    if not moved.flags.c_contiguous:  # a strided view: no rows to read it in
        return np.maximum(a, 0, out=out)
    flat, flat_out = moved.reshape(-1), out.transpose(order).reshape(-1)  # out is laid out as a (empty_like)
    whole = flat.size - flat.size % ZERO_ROW
    np.maximum(flat[:whole].reshape(-1, ZERO_ROW), _zeros_row(a.dtype), out=flat_out[:whole].reshape(-1, ZERO_ROW))
    np.maximum(flat[whole:], 0, out=flat_out[whole:])
    return out


def relu_reference(a: np.ndarray) -> np.ndarray:
    return np.maximum(a, 0)


@functools.lru_cache(maxsize=16)
def _zeros_row(dtype: np.dtype) -> np.ndarray:
    row = np.zeros(ZERO_ROW, dtype)
    row.flags.writeable = False
    return row


@functools.lru_cache(maxsize=256)
def _broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """Broadcasting `shape` against `target` gives `target` (reference: `np.broadcast_shapes(shape, target) ==
    target`, which raises where shapes do not broadcast)."""
    if len(shape) > len(target):
        return False
    for n, m in zip(reversed(shape), reversed(target)):
        if n != m and n != 1:
            return False
    return True


def empty_reference(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    return np.empty(shape, dtype)


def zeros(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A C-order array of zeros (reference: np.zeros), from `empty`."""
    out = empty(shape, dtype)
    out.fill(0)
    return out


def zeros_reference(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    return np.zeros(shape, dtype)


def _make_room(nbytes: int) -> None:
    """Drop buffers nothing refers to, largest first, until the pool's idle ones and `nbytes` more fit in
    POOL_BYTES."""
    idle = {size: [k for k in range(len(buffers)) if sys.getrefcount(buffers[k]) == _IDLE]
            for size, buffers in _pool.items()}
    idle_bytes = sum(size * len(positions) for size, positions in idle.items())
    for size in sorted(_pool, reverse=True):
        for k in reversed(idle[size]):
            if idle_bytes + nbytes <= POOL_BYTES:
                return
            del _pool[size][k]
            idle_bytes -= size


# ---------------------------------------------------------------- C order


def c_order(a: np.ndarray) -> np.ndarray:
    """a in C order: itself if it already is, else a copy (reference: np.ascontiguousarray).

    When a's first axis is innermost in memory (batch-last memory seen as (N, C, H, W)) or its last axis outermost,
    the copy is a 2-D transpose in disguise, done by `transpose_2d`, which keeps the reads in cache.
    """
    if a.flags.c_contiguous:
        return a
    if a.ndim >= 2 and a.strides[0] == a.itemsize and a.shape[0] * a.itemsize >= 64:  # memory (..., N): (rest, N)
        source = np.ascontiguousarray(a.transpose(*range(1, a.ndim), 0)).reshape(-1, a.shape[0])
    elif a.ndim >= 2 and (last_first := a.transpose(a.ndim - 1, *range(a.ndim - 1))).flags.c_contiguous:
        source = last_first.reshape(a.shape[-1], -1)
    else:
        return np.ascontiguousarray(a)
    out = empty(a.shape, a.dtype)
    transpose_2d(source, out.reshape(source.shape[::-1]))
    return out


def c_order_reference(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a)


@functools.lru_cache(maxsize=256)
def memory_order(strides: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The axes from outermost to innermost in memory (by decreasing stride), and the permutation that undoes that
    order: an array's axes transposed by `order` are in C order when the array is."""
    order = tuple(sorted(range(len(strides)), key=strides.__getitem__, reverse=True))
    return order, tuple(sorted(range(len(strides)), key=order.__getitem__))


def copy_like(a: np.ndarray, like: np.ndarray) -> np.ndarray:
    """A copy of a laid out in memory as `like` is, axis order and all (reference: np.empty_like(like) filled with a):
    a gradient copied this way is read by the rules the way they read the output it belongs to (a conv's output is
    batch-last in memory), without a second layout copy. The copy goes through `c_order`."""
    order, inverse = memory_order(like.strides)
    moved = a.transpose(order)
    copied = c_order(moved)
    if copied is moved:
        copied = empty(moved.shape, moved.dtype)
        copied[...] = moved
    return copied.transpose(inverse)


def copy_like_reference(a: np.ndarray, like: np.ndarray) -> np.ndarray:
    out = np.empty_like(like)
    out[...] = a
    return out


def reshape(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """a's elements in C order with a new shape (reference: np.reshape), copied through `c_order` when a is not in
    C order."""
    return c_order(a).reshape(shape)


def reshape_reference(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.reshape(a, shape)


def transpose_2d(source: np.ndarray, target: np.ndarray) -> None:
    """target[...] = source.T for C-order 2-D arrays, in an order that keeps the reads in cache.

    numpy copies in the target's order, reading the source down its columns. A tall source (rows of 64 B to 4 KiB)
    is copied in blocks of rows that fit in 32 KiB of L1; a wide one whose rows lie a multiple of 1 KiB apart (they
    would evict each other from the same cache sets) is first staged in rows 64 bytes longer.
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


# ---------------------------------------------------------------- pad


def pad(a: np.ndarray, pad_width: tuple[tuple[int, int], ...], value: float) -> np.ndarray:
    """a surrounded by `value` (reference: np.pad); a 4-D (N, C, H, W) result is laid out batch-last in memory.

    Laying a C-order image batch out batch-last is a transpose. numpy copies it in the target's order, reading N
    numbers one image apart: when images lie a multiple of 2 KiB apart those reads evict each other from the same
    cache sets, so such a batch is first transposed by `c_order`, which keeps its reads in cache, and then copied in.
    """
    inside = tuple([slice(before, before + n) for (before, _), n in zip(pad_width, a.shape)])
    shape = [n + before + after for n, (before, after) in zip(a.shape, pad_width)]
    out = empty((*shape[1:], shape[0]) if a.ndim == 4 else shape, a.dtype)
    if a.ndim == 4:
        out = out.transpose(3, 0, 1, 2)
        if a.flags.c_contiguous and a.shape[0] > 8 and a.strides[0] % 2048 == 0 and a.nbytes >= 1 << 16:
            a = c_order(a.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    if out.nbytes < REUSE_BYTES:
        out.fill(value)
    else:  # only the border, slab by slab: the inside is written next
        for axis, (before, after) in enumerate(pad_width):
            every = (slice(None),) * axis
            if before:
                out[(*every, slice(0, before))] = value
            if after:
                out[(*every, slice(shape[axis] - after, shape[axis]))] = value
    out[inside] = a
    return out


def pad_reference(a: np.ndarray, pad_width: tuple[tuple[int, int], ...], value: float) -> np.ndarray:
    return np.pad(a, pad_width, constant_values=value)


# ---------------------------------------------------------------- im2col and col2im


@functools.lru_cache(maxsize=256)
def window_slices(size: int, kernel: int, stride: int, dilation: int) -> tuple[slice, ...]:
    """Along one axis of length `size`: the positions kernel tap i reads, as a strided slice for each i."""
    count = (size - dilation * (kernel - 1) - 1) // stride + 1
    return tuple(slice(i * dilation, i * dilation + stride * (count - 1) + 1, stride) for i in range(kernel))


def im2col(x: np.ndarray, kernel_size: tuple[int, int], stride: tuple[int, int],
           dilation: tuple[int, int]) -> np.ndarray:
    """cols[c, i, j, y, x', n] = x[n, c, y·sh + i·dh, x'·sw + j·dw]: x (N, C, H, W) → (C, KH, KW, Ho, Wo, N).

    One strided slice copy per kernel offset (i, j), from x read batch-last (a view when it already is).
    """
    n, c, h, w = x.shape
    rows = window_slices(h, kernel_size[0], stride[0], dilation[0])
    columns = window_slices(w, kernel_size[1], stride[1], dilation[1])
    x_chwn = c_order(x.transpose(1, 2, 3, 0))
    ho, wo = len(range(h)[rows[0]]), len(range(w)[columns[0]])
    cols = empty((c, len(rows), len(columns), ho, wo, n), x.dtype)
    for i, row in enumerate(rows):
        for j, column in enumerate(columns):
            cols[:, i, j] = x_chwn[:, row, column]
    return cols


def im2col_reference(x: np.ndarray, kernel_size: tuple[int, int], stride: tuple[int, int],
                     dilation: tuple[int, int]) -> np.ndarray:
    """The definition, one output position at a time."""
    (kh, kw), (sh, sw), (dh, dw) = kernel_size, stride, dilation
    n, c, h, w = x.shape
    ho, wo = (h - dh * (kh - 1) - 1) // sh + 1, (w - dw * (kw - 1) - 1) // sw + 1
    cols = np.empty((c, kh, kw, ho, wo, n), x.dtype)
    for y in range(ho):
        for x_ in range(wo):
            window = x[:, :, y * sh:y * sh + dh * (kh - 1) + 1:dh, x_ * sw:x_ * sw + dw * (kw - 1) + 1:dw]
            cols[:, :, :, y, x_, :] = window.transpose(1, 2, 3, 0)
    return cols


def col2im(cols: np.ndarray, input_size: tuple[int, int], kernel_size: tuple[int, int], stride: tuple[int, int],
           dilation: tuple[int, int]) -> np.ndarray:
    """im2col's adjoint: x[n, c, y·sh + i·dh, x'·sw + j·dw] += cols[c, i, j, y, x', n] → (N, C, H, W).

    Within one kernel offset no pixel is written twice, so a strided `+=` per offset is exact (a fancy-index `+=`
    would drop repeats). The result is a (N, C, H, W) view of batch-last memory. Speed:
    - with row stride 1, kernel column j's KH row shifts are added into a strip as wide as the output first, then
      the strip across once: in batch-last memory a row shift of a whole slice is one contiguous block per channel;
    - where windows cannot overlap along an axis (stride ≥ window extent, as in 2×2 max-pooling), each pixel is
      written at most once along it, so the first write along it assigns instead of adding;
    - with stride 1 the first write of a pass assigns the first Ho rows (Wo columns) whole, so only the rows
      (columns) after them start at zero, and one strip serves every kernel column.
    """
    c, kh, kw, ho, wo, n = cols.shape
    (h, w), (sh, sw), (dh, dw) = input_size, stride, dilation
    rows, columns = window_slices(h, kh, sh, dh), window_slices(w, kw, sw, dw)
    rows_overlap, columns_overlap = sh < dh * (kh - 1) + 1, sw < dw * (kw - 1) + 1
    if sh == sw == 1:
        image = empty((c, h, w, n), cols.dtype)
        image[:, :, wo:] = 0
    else:
        image = zeros((c, h, w, n), cols.dtype)
    strip = empty((c, h, wo, n), cols.dtype) if sh == 1 else None
    for j, column in enumerate(columns):
        if strip is not None:
            strip[:, ho:] = 0
            for i, row in enumerate(rows):
                _put(strip[:, row], cols[:, i, j], rows_overlap and i > 0)
            _put(image[:, :, column], strip, columns_overlap and j > 0)
        else:
            for i, row in enumerate(rows):
                _put(image[:, row, column], cols[:, i, j], (rows_overlap or columns_overlap) and (i, j) != (0, 0))
    return image.transpose(3, 0, 1, 2)


def col2im_reference(cols: np.ndarray, input_size: tuple[int, int], kernel_size: tuple[int, int],
                     stride: tuple[int, int], dilation: tuple[int, int]) -> np.ndarray:
    """The definition, one output position at a time: every window's column added back where it was read."""
    c, kh, kw, ho, wo, n = cols.shape
    (h, w), (sh, sw), (dh, dw) = input_size, stride, dilation
    image = np.zeros((n, c, h, w), cols.dtype)
    for y in range(ho):
        for x_ in range(wo):
            image[:, :, y * sh:y * sh + dh * (kh - 1) + 1:dh, x_ * sw:x_ * sw + dw * (kw - 1) + 1:dw] += \
                cols[:, :, :, y, x_, :].transpose(3, 0, 1, 2)
    return image


def _put(target: np.ndarray, values: np.ndarray, accumulate: bool) -> None:
    """target += values, or target[...] = values where nothing was written to target before."""
    if accumulate:
        target += values
    else:
        target[...] = values


# ---------------------------------------------------------------- matmul


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b (reference: np.matmul). A product whose right operand is a transposed view and whose result is wider
    than tall — conv's weight gradient dL/dY · colsᵀ, (Cout, N·Ho·Wo) · (N·Ho·Wo, Cin·K²) — is computed as
    (bᵀ · aᵀ)ᵀ: the same sums, in the operand order OpenBLAS runs faster. With fewer than 8 rows (Cout = 6, as
    LeNet's first conv) it is one matrix-vector product per row instead (`matmul_by_rows`). A large result goes into
    a reused buffer (`empty`)."""
    if a.ndim < 2 or b.ndim < 2:
        return a @ b
    (*a_batch, rows, _), (*b_batch, inner, columns) = a.shape, b.shape
    # b's last two axes a transposed view of C-order memory (its rows are columns of the memory)
    transposed = inner > 1 and b.strides[-2:] == (b.itemsize, inner * b.itemsize)
    if (transposed and rows < 8 and REUSE_BYTES <= b.nbytes <= BY_ROWS_BYTES
            and a.size == rows * a.shape[-1] and b.size == inner * columns):
        return matmul_by_rows(a, b)
    swap = transposed and columns > rows  # the result wide
    if swap:
        a, b, a_batch, b_batch, rows, columns = b.swapaxes(-1, -2), a.swapaxes(-1, -2), b_batch, a_batch, columns, rows
    if a_batch != b_batch:
        a_batch = list(np.broadcast_shapes(tuple(a_batch), tuple(b_batch)))
    if math.prod(a_batch) * rows * columns * a.itemsize < REUSE_BYTES:
        out = a @ b
    else:
        out = np.matmul(a, b, out=empty((*a_batch, rows, columns), np.result_type(a, b)))
    return out.swapaxes(-1, -2) if swap else out


BY_ROWS_BYTES = 1 << 24  # matmul_by_rows reads b once per row: only while b fits a 16 MiB cache


def matmul_by_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b for a of few rows and b one matrix (no batch of several): row i of the result is the matrix-vector
    product a[i] · b, each entry a dot product over one run of memory when b is a transposed view. OpenBLAS's GEMM
    takes as long for fewer than 8 rows as for 8, or longer (benchmarks/README.md)."""
    *batch, rows, inner = a.shape
    columns = b.shape[-1]
    shape = (*np.broadcast_shapes(tuple(batch), b.shape[:-2]), rows, columns)
    out = empty(shape, np.result_type(a, b))
    a_rows, b_matrix, out_rows = a.reshape(rows, inner), b.reshape(inner, columns), out.reshape(rows, columns)
    for i in range(rows):
        np.matmul(a_rows[i], b_matrix, out=out_rows[i])
    return out


def matmul_reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.matmul(a, b)


# ---------------------------------------------------------------- reductions


def sum_to(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """grad summed back to `shape` over the axes broadcasting added or stretched (reference: sum_to_reference).

    einsum, not ndarray.sum: numpy's sum over several axes runs ~3× slower (a conv bias gradient), with the same
    float32 error against a float64 sum.
    """
    if grad.shape == shape:
        return grad
    return np.asarray(np.einsum(grad, *_kept_axes(grad.shape, shape))).reshape(shape)


@functools.lru_cache(maxsize=256)
def _kept_axes(grad_shape: tuple[int, ...], shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """einsum's subscripts for sum_to: every axis of grad, and those of them `shape` keeps."""
    extra = len(grad_shape) - len(shape)
    kept = tuple(extra + i for i, n in enumerate(shape) if n != 1 or grad_shape[extra + i] == 1)
    return tuple(range(len(grad_shape))), kept


def sum_to_reference(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    extra = grad.ndim - len(shape)
    stretched = tuple(extra + i for i, n in enumerate(shape) if n == 1 and grad.shape[extra + i] != 1)
    return grad.sum(axis=tuple(range(extra)) + stretched).reshape(shape)


def first_maxima(a: np.ndarray, maxima: np.ndarray, axes: tuple[int, ...], last: bool = False) -> np.ndarray:
    """The first True of `maxima` (C order) within each window over `axes` — the last one if `last` — as a boolean
    mask shaped like a.

    Without argmax: rank each window's elements K, K−1, ..., 1 in C order (1, 2, ..., K for `last`); among the maxima
    the wanted one has the highest rank. Whole-array compares and a max, no per-window loop (reference:
    first_maxima_reference).
    """
    window = [a.shape[ax] if ax in axes else 1 for ax in range(a.ndim)]
    size = math.prod(window)
    dtype = np.min_scalar_type(size)
    rank = (np.arange(1, size + 1, dtype=dtype) if last else np.arange(size, 0, -1, dtype=dtype)).reshape(window)
    score = np.multiply(maxima, rank, out=elementwise_out(maxima, rank))  # 0 off the maxima
    return equal(score, score.max(axis=axes, keepdims=True))


def first_maxima_reference(a: np.ndarray, maxima: np.ndarray, axes: tuple[int, ...], last: bool = False) -> np.ndarray:
    """The same mask through argmax over the windows flattened to one axis (reversed for `last`)."""
    others = [ax for ax in range(a.ndim) if ax not in axes]
    moved = np.moveaxis(maxima, axes, range(len(others), a.ndim))
    flat = moved.reshape(*moved.shape[:len(others)], -1)
    first = np.zeros_like(flat)
    index = flat.shape[-1] - 1 - flat[..., ::-1].argmax(axis=-1) if last else flat.argmax(axis=-1)
    np.put_along_axis(first, index[..., None], True, axis=-1)
    return np.moveaxis(first.reshape(moved.shape), range(len(others), a.ndim), axes)
