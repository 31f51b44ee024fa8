"""kernels.py: every fast routine against its plain reference, bit for bit, on random shapes and layouts."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_conv import kernels

DTYPES = [np.float32, np.float64]


@st.composite
def windows(draw):
    """An image (N, C, H, W) and a kernel geometry whose windows fit in it."""
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    size = [d * (k - 1) + 1 + draw(st.integers(0, 5)) for k, d in zip(kernel, dilation)]
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), *size)
    return shape, kernel, stride, dilation


def layouts(x: np.ndarray):
    """x as C order, as a (N, C, H, W) view of batch-last memory, and as a strided (cropped) view."""
    yield x
    yield np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    padded = np.zeros((x.shape[0], x.shape[1], x.shape[2] + 1, x.shape[3] + 2), x.dtype)
    padded[:, :, 1:, 2:] = x
    yield padded[:, :, 1:, 2:]


@given(windows(), st.sampled_from(DTYPES), st.integers(0, 2**31))
def test_im2col_equals_the_definition(case, dtype, seed):
    shape, kernel, stride, dilation = case
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    expected = kernels.im2col_reference(x, kernel, stride, dilation)
    for view in layouts(x):
        np.testing.assert_array_equal(kernels.im2col(view, kernel, stride, dilation), expected)


@given(windows(), st.sampled_from(DTYPES), st.integers(0, 2**31))
def test_col2im_equals_the_definition_on_integer_data(case, dtype, seed):
    shape, kernel, stride, dilation = case
    cols_shape = kernels.im2col_reference(np.zeros(shape), kernel, stride, dilation).shape
    cols = np.random.default_rng(seed).integers(-9, 10, cols_shape).astype(dtype)  # integer sums are exact
    fast = kernels.col2im(cols, shape[2:], kernel, stride, dilation)
    assert fast.shape == shape
    np.testing.assert_array_equal(fast, kernels.col2im_reference(cols, shape[2:], kernel, stride, dilation))


@pytest.mark.parametrize("kernel, stride, dilation", [((3, 3), (1, 1), (1, 1)), ((3, 2), (1, 1), (2, 1)),
                                                      ((3, 3), (1, 2), (1, 1)), ((2, 3), (2, 1), (1, 2)),
                                                      ((1, 3), (1, 1), (1, 1)), ((3, 1), (1, 1), (1, 3))])
def test_col2im_writes_every_pixel_of_uninitialised_buffers(kernel, stride, dilation, monkeypatch):
    """col2im assigns before it adds and zeroes only what its first writes leave: on buffers full of NaN, no NaN."""
    monkeypatch.setattr(kernels, "empty", lambda shape, dtype: np.full(shape, np.nan, dtype))
    shape = (3, 2, 9, 8)
    cols_shape = kernels.im2col_reference(np.zeros(shape), kernel, stride, dilation).shape
    cols = np.random.default_rng(0).integers(-9, 10, cols_shape).astype(np.float64)
    np.testing.assert_array_equal(kernels.col2im(cols, shape[2:], kernel, stride, dilation),
                                  kernels.col2im_reference(cols, shape[2:], kernel, stride, dilation))


def test_col2im_is_the_adjoint_of_im2col():
    """<im2col(x), c> = <x, col2im(c)> for every x and c: the pair the derivation is about."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 6))
    cols = rng.standard_normal(kernels.im2col(x, (3, 2), (2, 1), (1, 2)).shape)
    left = np.sum(kernels.im2col(x, (3, 2), (2, 1), (1, 2)) * cols)
    right = np.sum(x * kernels.col2im(cols, (7, 6), (3, 2), (2, 1), (1, 2)))
    assert left == pytest.approx(right, rel=1e-12)


@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (64, 1, 16, 16), (16, 8, 8, 64), (1, 2, 3, 1), (3, 7)])
def test_c_order_copies_transposed_arrays_exactly_and_leaves_c_order_ones_alone(shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    n = x.ndim
    for axes in [(*range(1, n), 0), (n - 1, *range(n - 1)), tuple(reversed(range(n)))]:
        for a in (x.transpose(axes), np.ascontiguousarray(x.transpose(axes)).transpose(np.argsort(axes))):
            copied = kernels.c_order(a)
            assert copied.flags.c_contiguous
            assert copied is a if a.flags.c_contiguous else not np.shares_memory(copied, a)
            np.testing.assert_array_equal(copied, kernels.c_order_reference(a))
    assert kernels.c_order(x) is x
    np.testing.assert_array_equal(kernels.c_order(x[..., ::2]), x[..., ::2])
    if n == 4:  # a cropped batch-last array seen as (N, C, H, W), as a padded input's gradient
        cropped = x[:, 1:-1, 1:, :].transpose(3, 0, 1, 2)
        np.testing.assert_array_equal(kernels.c_order(cropped), cropped)
        assert kernels.c_order(cropped).flags.c_contiguous


def _layout(array: np.ndarray) -> list[int]:
    """The strides of the axes longer than 1 (a size-1 axis may have any stride)."""
    return [stride for stride, n in zip(array.strides, array.shape) if n > 1]


@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (64, 1, 16, 16), (2, 3), (5,)])
def test_copy_like_copies_in_the_memory_layout_of_like(shape):
    rng = np.random.default_rng(0)
    a = rng.standard_normal(shape).astype(np.float32)
    for axes in [tuple(range(a.ndim)), tuple(reversed(range(a.ndim))), (*range(1, a.ndim), 0)]:
        like = np.empty(tuple(shape[ax] for ax in axes), np.float32).transpose(np.argsort(axes))
        for source in (a, np.ascontiguousarray(a.transpose(axes)).transpose(np.argsort(axes))):
            copied, expected = kernels.copy_like(source, like), kernels.copy_like_reference(source, like)
            np.testing.assert_array_equal(copied, expected)
            assert _layout(copied) == _layout(expected) == _layout(like)
            assert not np.shares_memory(copied, source)


@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (64, 1, 16, 16), (256, 512), (3,)])
def test_empty_like_has_the_shape_dtype_and_memory_layout_of_numpys(shape):
    a = np.zeros(shape, np.float32)
    for axes in [tuple(range(a.ndim)), tuple(reversed(range(a.ndim))), (*range(1, a.ndim), 0)]:
        like = np.ascontiguousarray(a.transpose(axes)).transpose(np.argsort(axes))
        for dtype in (None, np.float64, bool):
            made, expected = kernels.empty_like(like, dtype), kernels.empty_like_reference(like, dtype)
            assert (made.shape, made.dtype) == (expected.shape, expected.dtype)
            assert _layout(made) == _layout(expected)


@pytest.mark.parametrize("shape", [(3, 4), (64, 48, 8, 8)])  # small (numpy allocates) and large (reused buffers)
def test_the_masks_equal_and_not_at_most_zero_match_numpy(shape):
    a = np.random.default_rng(0).integers(-2, 3, shape).astype(np.float32).transpose(*range(1, len(shape)), 0)
    a[(0,) * a.ndim], a[(1,) * a.ndim] = np.nan, -0.0
    b = np.max(a, axis=0, keepdims=True)
    np.testing.assert_array_equal(kernels.equal(a, b), np.equal(a, b))
    np.testing.assert_array_equal(kernels.not_at_most_zero(a), np.logical_not(a <= 0))
    assert kernels.equal(a, b).dtype == kernels.not_at_most_zero(a).dtype == bool


@pytest.mark.parametrize("shape", [(3, 4), (64, 48, 8, 8), (7, 3001, 5)])  # small; large in rows; rows and a rest
@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_is_numpys_maximum_with_zero_bit_for_bit(shape, dtype):
    a = np.random.default_rng(0).standard_normal(shape).astype(dtype).reshape(-1)
    a[::7], a[::11], a[::13], a[::17] = -0.0, np.nan, -np.inf, np.inf
    a = a.reshape(shape)
    batch_last = np.ascontiguousarray(a.transpose(*range(1, a.ndim), 0)).transpose(a.ndim - 1, *range(a.ndim - 1))
    for view in (a, a.T, batch_last, a[..., ::2]):
        made, expected = kernels.relu(view), kernels.relu_reference(view)
        assert made.shape == expected.shape and made.dtype == expected.dtype
        bits = f"u{made.itemsize}"  # the same numbers, NaN and the sign of zero included
        np.testing.assert_array_equal(np.ascontiguousarray(made).view(bits), np.ascontiguousarray(expected).view(bits))


def test_broadcasts_to_agrees_with_numpy():
    rng = np.random.default_rng(0)
    for _ in range(500):
        target = tuple(rng.integers(1, 4, rng.integers(0, 4)))
        shape = tuple(rng.integers(1, 4, rng.integers(0, 5)))
        try:
            expected = np.broadcast_shapes(shape, target) == target
        except ValueError:
            expected = False
        assert kernels._broadcasts_to(shape, target) == expected, (shape, target)


def test_elementwise_out_is_a_reused_buffer_for_large_results_and_none_otherwise():
    large = np.ones((512, 256), np.float32).T  # 512 KiB, transposed in memory
    out = kernels.elementwise_out(large, np.float32(2) * np.ones((1, 512), np.float32))
    assert out is not None and out.shape == large.shape and out.dtype == np.float32
    assert _layout(out) == _layout(large)
    np.testing.assert_array_equal(np.add(large, 1, out=out), large + 1)
    assert kernels.elementwise_out(large, np.ones((256, 512), np.float64)).dtype == np.float64  # numpy's dtype
    assert kernels.elementwise_out(large > 0, large).dtype == np.float32
    assert kernels.elementwise_out(np.ones((4, 4), np.float32)) is None  # small: numpy allocates
    column, row = np.ones((512, 1), np.float32), np.ones((1, 512), np.float32)
    assert kernels.elementwise_out(column, row) is None  # the result is larger than either input


@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (64, 1, 16, 16), (16, 8, 8, 64)])
def test_reshape_matches_numpy_on_c_order_and_transposed_arrays(shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    for a in (x, x.transpose(1, 2, 3, 0), x.transpose(3, 0, 1, 2), x[:, :, ::2]):
        for target in ((-1,), (a.shape[0], -1), (a.shape[0] * a.shape[1], *a.shape[2:])):
            np.testing.assert_array_equal(kernels.reshape(a, target), kernels.reshape_reference(a, target))




@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 4), (5,), (2, 1, 3), (32, 8, 16, 16), (300, 500)])  # large last
def test_pad_equals_np_pad_and_lays_images_out_batch_last(shape):
    x = np.random.default_rng(2).standard_normal(shape)
    pad_width = tuple((k % 2, (k + 1) % 3) for k in range(len(shape)))
    for value in (0.0, -np.inf, 2.5):
        padded = kernels.pad(x, pad_width, value)
        np.testing.assert_array_equal(padded, kernels.pad_reference(x, pad_width, value))
    if len(shape) == 4:
        assert padded.transpose(1, 2, 3, 0).flags.c_contiguous


@pytest.mark.parametrize("a_shape, b_shape, transposed", [
    ((16, 300), (300, 72), True), ((16, 300), (300, 72), False), ((2, 8, 50), (50, 30), True),
    ((40, 30), (30, 8), True), ((5, 7), (7, 9), False),
    ((6, 4096), (4096, 25), True), ((1, 3, 4096), (4096, 9), True), ((2, 3, 4096), (4096, 9), True)])  # by rows
def test_matmul_equals_np_matmul_in_either_operand_order(a_shape, b_shape, transposed):
    rng = np.random.default_rng(3)
    a = rng.integers(-5, 6, a_shape).astype(np.float64)
    b = rng.integers(-5, 6, b_shape).astype(np.float64)
    if transposed:
        b = np.ascontiguousarray(b.T).T
    np.testing.assert_array_equal(kernels.matmul(a, b), kernels.matmul_reference(a, b))


def test_matmul_by_rows_equals_np_matmul():
    rng = np.random.default_rng(3)
    a, b = rng.integers(-5, 6, (6, 4096)).astype(np.float32), rng.integers(-5, 6, (25, 4096)).astype(np.float32).T
    np.testing.assert_array_equal(kernels.matmul_by_rows(a, b), kernels.matmul_reference(a, b))
    a, b = rng.integers(-5, 6, (1, 7, 300)).astype(np.float64), rng.integers(-5, 6, (1, 300, 9)).astype(np.float64)
    np.testing.assert_array_equal(kernels.matmul_by_rows(a, b), kernels.matmul_reference(a, b))


@pytest.mark.parametrize("grad_shape, shape", [((4, 3, 5), (3, 5)), ((4, 3, 5), (3, 1)), ((4, 3, 5), (1, 1, 1)),
                                               ((2, 3), (2, 3)), ((6, 2, 1, 4), (2, 1, 1)), ((3,), ())])
def test_sum_to_equals_a_plain_sum_over_the_broadcast_axes(grad_shape, shape):
    grad = np.random.default_rng(4).integers(-9, 10, grad_shape).astype(np.float64)
    np.testing.assert_array_equal(kernels.sum_to(grad, shape), kernels.sum_to_reference(grad, shape))


@pytest.mark.parametrize("axes", [(1,), (0, 2), (0, 1, 2), (2,), (1, 2)])
@pytest.mark.parametrize("shape", [(4, 5, 6), (3, 2, 2, 3)])
@pytest.mark.parametrize("last", [False, True])
def test_first_maxima_equals_argmax_with_ties(axes, shape, last):
    a = np.random.default_rng(5).integers(0, 3, shape).astype(np.float64)  # many ties
    maxima = a == a.max(axis=axes, keepdims=True)
    np.testing.assert_array_equal(kernels.first_maxima(a, maxima, axes, last),
                                  kernels.first_maxima_reference(a, maxima, axes, last))


# ---------------------------------------------------------------- memory: large temporaries, reused

LARGE = (kernels.REUSE_BYTES // 4 + 1,)  # float32 elements just above the size the pool serves


@pytest.mark.parametrize("shape", [(3, 5), LARGE, (2, *LARGE)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_and_zeros_are_numpys(shape, dtype):
    dirty = kernels.empty(shape, dtype)
    dirty.fill(7)
    del dirty  # zeros may now get the same buffer back, full of 7s
    for fast, reference in ((kernels.empty, kernels.empty_reference), (kernels.zeros, kernels.zeros_reference)):
        a, b = fast(shape, dtype), reference(shape, dtype)
        assert (a.shape, a.dtype, a.flags.c_contiguous, a.flags.writeable, a.flags.aligned) == \
               (b.shape, b.dtype, True, True, True)
    np.testing.assert_array_equal(kernels.zeros(shape, dtype), kernels.zeros_reference(shape, dtype))


def test_a_buffer_is_reused_only_once_nothing_refers_to_it():
    first = kernels.empty(LARGE, np.float32)
    address = first.ctypes.data
    second = kernels.empty(LARGE, np.float32)
    assert second.ctypes.data != address  # first is still held
    view = first.reshape(1, -1)[:, ::2]
    del first
    third = kernels.empty(LARGE, np.float32)
    assert third.ctypes.data != address  # a view of it is still held
    del view
    reused = kernels.empty(LARGE, np.float32)
    assert reused.ctypes.data == address
    reused[:] = 1
    assert not np.shares_memory(reused, second)


def test_threads_never_share_a_buffer():
    import threading

    failures = []

    def work(value: float) -> None:
        for _ in range(200):
            a = kernels.empty(LARGE, np.float32)
            a.fill(value)
            if not (a == value).all():
                failures.append(value)

    threads = [threading.Thread(target=work, args=(v,)) for v in (1.0, 2.0, 3.0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_the_pool_keeps_at_most_pool_bytes_of_idle_buffers(monkeypatch):
    monkeypatch.setattr(kernels, "_pool", {})
    monkeypatch.setattr(kernels, "POOL_BYTES", 3 * kernels.REUSE_BYTES)
    for k in range(1, 9):  # eight sizes, each freed at once
        kernels.empty((kernels.REUSE_BYTES + 4096 * k,), np.uint8)
    held = sum(size * len(buffers) for size, buffers in kernels._pool.items())
    assert held <= 3 * kernels.REUSE_BYTES
