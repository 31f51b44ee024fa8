"""Where max sends its gradient, element for element as PyTorch 2.13 (float64): max-pooling with padding over
windows of −inf, windows holding NaN, ties; and max over an axis (torch.max(dim)), whose NaN rule differs."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_conv import Tensor, gradcheck, gradgradcheck, kernels
from tinygrad_conv import functional as F


def assert_same(ours: np.ndarray, theirs) -> None:
    """Equal element for element, NaN where PyTorch has NaN."""
    np.testing.assert_array_equal(ours, theirs.detach().numpy())


def pool_both(torch, values, kernel, stride, padding):
    x = Tensor(values, requires_grad=True)
    x_t = torch.tensor(values, requires_grad=True)
    out = F.max_pool2d(x, kernel, stride, padding)
    out_t = torch.nn.functional.max_pool2d(x_t, kernel, stride, padding)
    assert_same(out.data, out_t)
    v = np.arange(1.0, out.size + 1).reshape(out.shape)  # a different weight per window: shows which window sent it
    (out * v).sum().backward()
    (out_t * torch.tensor(v)).sum().backward()
    assert_same(x.grad, x_t.grad)
    assert x.grad.sum() == v.sum()  # every window's gradient reached a pixel: none was lost in the padding
    return x.grad


def test_a_padded_window_of_minus_inf_sends_its_gradient_to_its_first_real_element(torch):
    grad = pool_both(torch, np.full((1, 1, 3, 3), -np.inf), 2, 2, 1)
    assert grad.sum() == 1 + 2 + 3 + 4  # every window's gradient arrived: none went into the padding
    np.testing.assert_array_equal(grad[0, 0], [[1, 2, 0], [3, 4, 0], [0, 0, 0]])


def test_a_window_holding_nan_sends_its_gradient_to_its_last_nan(torch):
    nan = np.nan
    grad = pool_both(torch, np.array([[[[nan, 1.0, nan, 2.0], [nan, 0.0, 3.0, nan]]]]), 2, 2, 0)
    np.testing.assert_array_equal(grad[0, 0], [[0, 0, 0, 0], [1, 0, 0, 2]])
    pool_both(torch, np.array([[[[nan, 1.0, nan], [2.0, nan, 0.0], [nan, 5.0, 1.0]]]]), 3, 1, 1)


@pytest.mark.parametrize("kernel", [2, (2, 3), (4, 1), (8, 6)])
def test_windows_that_tile_the_image_route_the_gradient_as_torch(kernel, torch):
    """Stride = kernel, no padding, sizes divisible (as in LeNet and the demo): every pixel in exactly one window."""
    choices, odds = [-np.inf, np.nan, 0.0, 1.0, 2.0], [0.2, 0.1, 0.2, 0.25, 0.25]
    for seed in range(5):
        values = np.random.default_rng(seed).choice(choices, size=(2, 3, 8, 6), p=odds)
        pool_both(torch, values, kernel, kernel, 0)


@given(shape=st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 5), st.integers(1, 5)),
       kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)), stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       padding=st.tuples(st.integers(0, 1), st.integers(0, 1)), seed=st.integers(0, 2**16))
def test_max_pooling_over_minus_inf_nan_and_ties_routes_the_gradient_as_torch(shape, kernel, stride, padding, seed,
                                                                              torch):
    padding = tuple(min(p, k // 2) for p, k in zip(padding, kernel))  # PyTorch's limit: at most half the kernel
    if any(n + 2 * p < k for n, p, k in zip(shape[2:], padding, kernel)):
        return
    choices, odds = [-np.inf, np.nan, 0.0, 1.0, 2.0], [0.4, 0.15, 0.15, 0.15, 0.15]
    values = np.random.default_rng(seed).choice(choices, size=shape, p=odds)
    pool_both(torch, values, kernel, stride, padding)


@given(seed=st.integers(0, 2**16), axis=st.sampled_from([0, 1, -1]))
def test_max_over_an_axis_keeps_torch_max_dims_first_nan_and_first_maximum(seed, axis, torch):
    values = np.random.default_rng(seed).choice([-np.inf, np.nan, 0.0, 1.0], size=(3, 4, 2), p=[.3, .2, .25, .25])
    x = Tensor(values, requires_grad=True)
    x_t = torch.tensor(values, requires_grad=True)
    out = x.max(dim=axis)
    out_t = x_t.max(dim=axis).values
    assert_same(out.data, out_t)
    v = np.arange(1.0, out.size + 1).reshape(out.shape)
    (out * v).sum().backward()
    (out_t * torch.tensor(v)).sum().backward()
    assert_same(x.grad, x_t.grad)


def test_max_over_an_axis_sends_the_gradient_to_the_first_nan_where_pooling_takes_the_last(torch):
    values = np.array([[1.0, np.nan, 3.0, np.nan]])
    x = Tensor(values, requires_grad=True)
    x.max(axis=1).sum().backward()
    x_t = torch.tensor(values, requires_grad=True)
    x_t.max(dim=1).values.sum().backward()
    assert_same(x.grad, x_t.grad)
    np.testing.assert_array_equal(x.grad, [[0, 1, 0, 0]])
    pooled = Tensor(values.reshape(1, 1, 1, 4), requires_grad=True)
    F.max_pool2d(pooled, (1, 4)).sum().backward()
    np.testing.assert_array_equal(pooled.grad.reshape(1, 4), [[0, 0, 0, 1]])


def test_padded_max_pooling_stays_twice_differentiable():
    x = Tensor(np.random.default_rng(1).permutation(2 * 2 * 5 * 5).reshape(2, 2, 5, 5) * 0.25, requires_grad=True)
    assert gradcheck(lambda t: F.max_pool2d(t, 3, 2, 1) ** 2, [x])
    assert gradgradcheck(lambda t: F.max_pool2d(t, 3, 2, 1) ** 2, [x])


@pytest.mark.parametrize("axes", [(1,), (0, 2), (0, 1, 2)])
@pytest.mark.parametrize("last", [False, True])
def test_first_and_last_maxima_equal_argmax_with_ties(axes, last):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 3, (4, 5, 3)).astype(float)
    maxima = a == a.max(axis=axes, keepdims=True)
    np.testing.assert_array_equal(kernels.first_maxima(a, maxima, axes, last=last),
                                  kernels.first_maxima_reference(a, maxima, axes, last=last))
