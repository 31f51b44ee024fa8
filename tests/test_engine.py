"""The engine itself: Tensor, backward, accumulation, no_grad, dtypes, the array protocol and memory.

The first two tests are micrograd's own (karpathy/micrograd test/test_engine.py), replayed on 0-d Tensors
with PyTorch as the oracle.
"""

import gc
import inspect
import operator as operator_module
import tracemalloc
import weakref

import numpy as np
import pytest

from tinygrad_conv import Tensor, functional, is_grad_enabled, no_grad

# ---------------------------------------------------------------- micrograd's own tests


def micrograd_sanity_expression(x):
    """micrograd's test_sanity_check expression; the same code runs on our Tensor and on torch's."""
    z = 2 * x + 2 + x
    q = z.relu() + z * x
    h = (z * z).relu()
    return h + q + q * x


def test_micrograd_sanity_check_matches_torch(torch):
    xmg, xpt = Tensor(-4.0, requires_grad=True), torch.tensor(-4.0, requires_grad=True)
    ymg, ypt = micrograd_sanity_expression(xmg), micrograd_sanity_expression(xpt)
    ymg.backward()
    ypt.backward()

    assert ymg.shape == () and xmg.grad.shape == ()
    assert ymg.item() == ypt.item()  # integers all the way: exact
    assert xmg.grad.item() == xpt.grad.item()


def test_micrograd_more_ops_match_torch(torch):
    def expression(a, b):
        c = a + b
        d = a * b + b**3
        c += c + 1
        c += 1 + c + (-a)
        d += d * 2 + (b + a).relu()
        d += 3 * d + (b - a).relu()
        e = c - d
        f = e**2
        g = f / 2.0
        g += 10.0 / f
        return g

    a, b = Tensor(-4.0, requires_grad=True), Tensor(2.0, requires_grad=True)
    g = expression(a, b)
    g.backward()
    a_pt, b_pt = torch.tensor(-4.0, requires_grad=True), torch.tensor(2.0, requires_grad=True)
    g_pt = expression(a_pt, b_pt)
    g_pt.backward()

    for ours, theirs in [(g.item(), g_pt.item()), (a.grad.item(), a_pt.grad.item()), (b.grad.item(), b_pt.grad.item())]:
        assert abs(ours - theirs) < 1e-6  # micrograd's tolerance
        assert ours == pytest.approx(theirs, rel=1e-10, abs=1e-10)


# ---------------------------------------------------------------- operators: numbers on either side

T0 = 1.5
OPERATOR_CASES = {
    # name: (expression, value at T0, derivative at T0)
    "t + 2": (lambda t: t + 2, T0 + 2, 1.0),
    "2 + t": (lambda t: 2 + t, 2 + T0, 1.0),
    "t - 2": (lambda t: t - 2, T0 - 2, 1.0),
    "2 - t": (lambda t: 2 - t, 2 - T0, -1.0),
    "t * 3": (lambda t: t * 3, T0 * 3, 3.0),
    "3 * t": (lambda t: 3 * t, 3 * T0, 3.0),
    "t / 2": (lambda t: t / 2, T0 / 2, 0.5),
    "10.0 / t": (lambda t: 10.0 / t, 10.0 / T0, -10.0 / T0**2),
    "t ** 3": (lambda t: t**3, T0**3, 3 * T0**2),
    "t ** -0.5": (lambda t: t**-0.5, T0**-0.5, -0.5 * T0**-1.5),
    "-t": (lambda t: -t, -T0, -1.0),
    "t + np.float64(2)": (lambda t: t + np.float64(2), T0 + 2, 1.0),
    "np.int64(3) * t": (lambda t: np.int64(3) * t, 3 * T0, 3.0),
}


@pytest.mark.parametrize("name", OPERATOR_CASES)
def test_numbers_work_on_either_side_of_every_operator(name):
    expression, value, derivative = OPERATOR_CASES[name]
    t = Tensor(T0, requires_grad=True)
    out = expression(t)
    assert isinstance(out, Tensor)
    out.backward()
    assert out.item() == pytest.approx(value, rel=1e-14)
    assert t.grad.item() == pytest.approx(derivative, rel=1e-14)


@pytest.mark.parametrize(
    "name, expression",
    [
        ("ndarray + t", lambda a, t: a + t),
        ("ndarray - t", lambda a, t: a - t),
        ("ndarray * t", lambda a, t: a * t),
        ("ndarray / t", lambda a, t: a / t),
        ("ndarray @ t", lambda a, t: a @ t),
    ],
)
def test_ndarray_on_the_left_gives_a_tensor_that_carries_the_gradient(name, expression):
    array = np.array([[1.0, 2.0], [3.0, 4.0]])
    t = Tensor([[0.5, -1.0], [2.0, 0.25]], requires_grad=True)
    out = expression(array, t)
    assert isinstance(out, Tensor), name
    np.testing.assert_array_equal(out.data, expression(array, t.data))
    out.sum().backward()
    assert t.grad is not None and t.grad.shape == t.shape


def test_ndarray_on_the_left_gradient_is_the_reflected_rule():
    t = Tensor([2.0, 4.0], requires_grad=True)
    (np.array([1.0, 8.0]) / t).sum().backward()  # d(a/t)/dt = -a/t²
    np.testing.assert_array_equal(t.grad, [-1.0 / 4, -8.0 / 16])


@pytest.mark.parametrize("other", ["a", None, True, object()])
def test_combining_a_tensor_with_a_non_number_raises_type_error(other):
    with pytest.raises(TypeError, match="cannot combine a Tensor"):
        Tensor(1.0) + other


def test_exponent_must_be_a_number():
    t = Tensor(2.0)
    with pytest.raises(TypeError, match="exponent must be a number"):
        t**t


# ---------------------------------------------------------------- reuse accumulates


def test_x_times_x_gradient_is_two_x():
    x = Tensor(3.0, requires_grad=True)
    (x * x).backward()
    assert x.grad == 6.0


def test_a_plus_a_gradient_is_two():
    a = Tensor([1.0, -2.0], requires_grad=True)
    b = a + a
    b.sum().backward()
    np.testing.assert_array_equal(a.grad, [2.0, 2.0])


def test_a_used_in_two_branches_sums_both_branch_gradients():
    a = Tensor(0.5, requires_grad=True)
    left = a * 3.0  # d/da = 3
    right = a.exp()  # d/da = e^a
    (left * right).backward()  # d/da (3a · e^a) = 3e^a + 3a·e^a
    assert a.grad.item() == pytest.approx(3 * np.exp(0.5) * (1 + 0.5), rel=1e-14)


def test_intermediate_used_twice_accumulates_before_propagating():
    x = Tensor(2.0, requires_grad=True)
    h = x * x  # used twice below: dL/dh = 2h, dL/dx = 2h · 2x = 4x³
    (h * h).backward()
    assert h.grad.item() == 8.0
    assert x.grad.item() == 32.0


def test_a_100000_op_chain_backprops_without_recursion_error():
    x = Tensor(1.0, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y + 1.0
    y.backward()
    assert y.item() == 100_001.0
    assert x.grad.item() == 1.0
    del y  # freeing the chain must not overflow the C stack either


def test_a_1000_wide_fan_in_backprops():
    xs = [Tensor(float(i), requires_grad=True) for i in range(1000)]
    ws = [Tensor(float(i % 7) - 3.0) for i in range(1000)]
    total = xs[0] * ws[0]
    for x, w in zip(xs[1:], ws[1:]):
        total = total + x * w
    total.backward()
    assert total.item() == sum(float(i) * (float(i % 7) - 3.0) for i in range(1000))
    assert [x.grad.item() for x in xs] == [w.item() for w in ws]


# ---------------------------------------------------------------- backward's contract


def test_non_scalar_backward_without_grad_raises_value_error_naming_the_shape():
    y = Tensor(np.ones((2, 3)), requires_grad=True) * 2
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        y.backward()


def test_one_element_non_0d_output_backward_without_grad_seeds_one():
    x = Tensor([[2.0]], requires_grad=True)
    (x * 3).backward()
    np.testing.assert_array_equal(x.grad, [[3.0]])


@pytest.mark.parametrize("bad_shape", [(3, 2), (2,), (1, 2, 3), ()])
def test_backward_with_a_wrong_shaped_grad_raises_value_error(bad_shape):
    y = Tensor(np.ones((2, 3)), requires_grad=True) * 2
    with pytest.raises(ValueError, match=r"grad has shape .* expected the output's \(2, 3\)"):
        y.backward(np.ones(bad_shape))


def test_backward_with_grad_seeds_the_chain_rule():
    x = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    grad_output = np.array([[1.0, -2.0, 3.0], [0.5, 0.0, -1.0]])
    (x * 3).backward(grad_output)
    np.testing.assert_array_equal(x.grad, 3 * grad_output)
    x.grad = None
    (x * 3).backward(Tensor(grad_output))  # a Tensor grad works too
    np.testing.assert_array_equal(x.grad, 3 * grad_output)


def test_backward_on_a_tensor_that_does_not_require_grad_raises():
    with pytest.raises(ValueError, match="does not require grad"):
        (Tensor(1.0) * 2).backward()


def test_only_tensors_that_require_grad_get_a_grad():
    x, c = Tensor(2.0, requires_grad=True), Tensor(5.0)
    (x * c).backward()
    assert x.grad.item() == 5.0 and c.grad is None


def test_parents_are_stored_in_argument_order_with_repeats():
    x, y = Tensor(2.0, requires_grad=True), Tensor(3.0, requires_grad=True)
    assert (x * x)._ctx.parents == (x, x)
    assert (x - y)._ctx.parents == (x, y)
    assert (y - x)._ctx.parents == (y, x)
    reflected = 2 - x
    assert reflected._ctx.parents[1] is x and reflected._ctx.parents[0].data == 2.0


# ---------------------------------------------------------------- no_grad and detach


def test_no_grad_context_records_nothing_and_restores_recording():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with no_grad():
        assert not is_grad_enabled()
        y = (x * 2).exp().sum()
    assert is_grad_enabled()
    assert not y.requires_grad and y._ctx is None
    assert (x * 2).requires_grad


def test_no_grad_decorator_records_nothing():
    @no_grad()
    def double(t):
        assert not is_grad_enabled()
        return t * 2

    x = Tensor(1.0, requires_grad=True)
    y = double(x)
    assert not y.requires_grad and y._ctx is None
    assert is_grad_enabled()
    assert double.__name__ == "double"


def test_no_grad_works_as_a_bare_decorator_like_torch():
    # PyTorch accepts both @torch.no_grad() and @torch.no_grad.
    @no_grad
    def double(t):
        return t * 2

    y = double(Tensor(1.0, requires_grad=True))
    assert not y.requires_grad


def test_no_grad_restores_recording_after_an_exception():
    with pytest.raises(RuntimeError):
        with no_grad():
            raise RuntimeError("boom")
    assert is_grad_enabled()

    @no_grad()
    def fails():
        raise KeyError("boom")

    with pytest.raises(KeyError):
        fails()
    assert is_grad_enabled()


def test_nested_no_grad_restores_the_outer_state():
    with no_grad():
        with no_grad():
            pass
        assert not is_grad_enabled()
    assert is_grad_enabled()


def test_detach_shares_data_and_cuts_the_graph():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    d = y.detach()
    assert not d.requires_grad and d._ctx is None and d.grad is None
    assert np.shares_memory(d.data, y.data)
    (x * d).sum().backward()  # d is a constant: dL/dx = d
    np.testing.assert_array_equal(x.grad, [3.0, 6.0])


# ---------------------------------------------------------------- accumulation across backward calls


def test_second_backward_through_the_same_graph_doubles_every_grad():
    # Documented behaviour (tensor.py): gradients accumulate, on leaves and intermediates alike, and the
    # graph is kept, so a second backward adds the same gradients again (PyTorch with retain_graph=True).
    x = Tensor([1.0, -2.0], requires_grad=True)
    h = x * x
    loss = (h * 3).sum()
    loss.backward()
    first_x, first_h = x.grad.copy(), h.grad.copy()
    loss.backward()
    np.testing.assert_array_equal(x.grad, 2 * first_x)
    np.testing.assert_array_equal(h.grad, 2 * first_h)
    x.zero_grad()
    loss.backward()
    np.testing.assert_array_equal(x.grad, first_x)


def test_leaf_grad_is_not_aliased_to_the_seed_array():
    x = Tensor([1.0, 2.0], requires_grad=True)
    seed = np.array([1.0, 1.0])
    x.backward(seed)  # backward on a leaf: its grad is the seed, copied
    seed[0] = 100.0
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])


# ---------------------------------------------------------------- dtypes


@pytest.mark.parametrize(
    "data", [1, 2.5, True, [1, 2], [[1.0, 2.0]], np.array([1, 2], np.int32), np.array([1], np.uint8),
             np.array([True, False]), [1, 2.5]],
    ids=["int", "float", "bool", "int-list", "float-list", "int32-array", "uint8-array", "bool-array", "mixed-list"],
)
def test_data_is_typed_as_pytorch_types_it_with_float64_for_floats(data, torch):
    expected = torch.tensor(data).dtype
    if expected.is_floating_point:
        assert Tensor(data).dtype == np.float64  # numpy's default float, where PyTorch's is float32
    else:
        assert str(Tensor(data).dtype) == str(expected).removeprefix("torch.")


def test_integer_tensors_hold_labels_and_indices_but_never_require_grad():
    labels = Tensor(np.array([2, 0]))
    assert labels.dtype == np.int64
    logits = Tensor(np.zeros((2, 3)), requires_grad=True)
    from tinygrad_conv import functional

    functional.cross_entropy(logits, labels).backward()
    assert logits.grad.shape == (2, 3)
    assert (labels * 2.5).dtype == np.float64 and (labels * 2).dtype == np.int64
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients"):
        Tensor([1, 2], requires_grad=True)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_floating_arrays_keep_their_dtype(dtype):
    assert Tensor(np.ones(3, dtype)).dtype == dtype


@pytest.mark.parametrize(
    "data", [1 + 2j, np.array([1j]), [object()], "abc", np.array(["a", "b"]), None],
    ids=["complex", "complex-array", "object", "string", "string-array", "None"],
)
def test_complex_object_and_string_data_raise_type_error(data):
    with pytest.raises(TypeError, match="Tensor data must be"):
        Tensor(data)


def test_non_numeric_dtype_argument_raises_type_error():
    assert Tensor([1.7, 2], dtype=np.int64).dtype == np.int64
    with pytest.raises(TypeError, match="dtype must be a real numeric dtype"):
        Tensor([1, 2], dtype=np.complex128)


def test_requires_grad_must_be_a_bool():
    with pytest.raises(TypeError, match="requires_grad must be a bool"):
        Tensor(1.0, requires_grad=1)


def test_tensor_copies_its_data():
    array = np.array([1.0, 2.0])
    t = Tensor(array)
    array[0] = 100.0
    assert t.data[0] == 1.0


FLOAT32_OPS = {
    "t * 3": lambda t: t * 3,
    "3 * t": lambda t: 3 * t,
    "t / 2": lambda t: t / 2,
    "10.0 / t": lambda t: 10.0 / t,
    "2 - t": lambda t: 2 - t,
    "t + 0.5": lambda t: t + 0.5,
    "t + np.float64(0.5)": lambda t: t + np.float64(0.5),
    "t ** 2": lambda t: t**2,
    "-t": lambda t: -t,
    "t @ t.T": lambda t: t @ t.T,
    "mean": lambda t: t.mean(),
    "mean(axis)": lambda t: t.mean(axis=1),
    "sum": lambda t: t.sum(axis=0),
    "max": lambda t: t.max(axis=1),
    "exp": lambda t: t.exp(),
    "log": lambda t: t.log(),
    "relu": lambda t: t.relu(),
    "tanh": lambda t: t.tanh(),
    "sigmoid": lambda t: t.sigmoid(),
    "reshape": lambda t: t.reshape(-1),
    "T": lambda t: t.T,
    "pad": lambda t: t.pad(((1, 0), (0, 2)), value=1.0),
    "index": lambda t: t[[0, 0], 1:],
    "log_softmax": lambda t: functional.log_softmax(t, axis=1),
    "cross_entropy": lambda t: functional.cross_entropy(t, np.array([0, 2])),
    "linear": lambda t: functional.linear(t, Tensor(np.ones((4, 3), np.float32))),
}


@pytest.mark.parametrize("name", FLOAT32_OPS)
def test_float32_stays_float32_through_every_op_and_its_gradient(name):
    t = Tensor(np.array([[0.5, 1.0, 2.0], [1.5, 0.25, 3.0]], np.float32), requires_grad=True)
    out = FLOAT32_OPS[name](t)
    assert out.dtype == np.float32
    out.sum().backward()
    assert t.grad.dtype == np.float32


def test_float32_stays_float32_through_conv2d_forward_and_backward():
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((2, 2, 6, 5)).astype(np.float32), requires_grad=True)
    w = Tensor(rng.standard_normal((4, 1, 3, 2)).astype(np.float32), requires_grad=True)
    b = Tensor(np.zeros(4, np.float32), requires_grad=True)
    y = functional.conv2d(x, w, b, stride=(2, 1), padding=((1, 0), (0, 1)), dilation=1, groups=2)
    assert y.dtype == np.float32
    pooled = functional.max_pool2d(y, 2, padding=1) + functional.avg_pool2d(y, 2, padding=1)
    assert pooled.dtype == np.float32
    pooled.sum().backward()
    assert (x.grad.dtype, w.grad.dtype, b.grad.dtype) == (np.float32,) * 3


@pytest.mark.parametrize("other", [[1.0, 2.0], (1.0, 2.0), [1, 2], [[0.5], [0.25]]], ids=str)
@pytest.mark.parametrize("operator", ["+", "-", "*", "/"])
def test_lists_and_tuples_of_numbers_take_the_tensors_dtype_like_numbers(other, operator):
    t = Tensor(np.array([1.5, 3.0], np.float32), requires_grad=True)
    apply = {"+": operator_module.add, "-": operator_module.sub, "*": operator_module.mul,
             "/": operator_module.truediv}[operator]
    for out in (apply(t, other), apply(other, t)):
        assert out.dtype == np.float32
        out.sum().backward()
        assert t.grad.dtype == np.float32


def test_floating_numpy_arrays_beside_a_tensor_keep_their_dtype():
    t = Tensor(np.array([1.5, 3.0], np.float32))
    assert (t + np.array([1.0, 2.0])).dtype == np.float64  # float64 array: promotes, as numpy does
    assert (t + np.array([1.0, 2.0], np.float16)).dtype == np.float32
    assert (Tensor([1.0, 2.0]) + [1.0, 2.0]).dtype == np.float64


# ---------------------------------------------------------------- array protocol and repr


def test_repr_shows_values_name_dtype_and_grad_state():
    assert repr(Tensor([1.0, 2.0])) == "Tensor([1., 2.])"
    assert repr(Tensor(np.ones(2, np.float32))) == "Tensor([1., 1.], dtype=float32)"
    w = Tensor([0.5, -1.25], requires_grad=True, name="w")
    assert repr(w) == "Tensor([ 0.5 , -1.25], name='w', requires_grad=True)"
    (w * 2).sum().backward()
    assert repr(w).endswith("requires_grad=True, grad=[2., 2.])")


def test_repr_of_a_large_tensor_is_summarised():
    text = repr(Tensor(np.arange(1000.0)))
    assert "..." in text and len(text) < 200


def test_item_returns_a_python_float():
    value = Tensor([[2.5]]).item()
    assert type(value) is float and value == 2.5
    assert float(Tensor(3.0)) == 3.0
    with pytest.raises(ValueError, match=r"one-element tensor, got shape \(2,\)"):
        Tensor([1.0, 2.0]).item()


def test_numpy_and_asarray_give_the_data():
    t = Tensor([[1.0, 2.0]])
    assert isinstance(t.numpy(), np.ndarray)
    np.testing.assert_array_equal(t.numpy(), [[1.0, 2.0]])
    np.testing.assert_array_equal(np.asarray(t), [[1.0, 2.0]])
    assert np.asarray(t, dtype=np.float32).dtype == np.float32
    assert len(t) == 1 and t.ndim == 2 and t.size == 2 and t.shape == (1, 2)


def test_np_array_of_a_tensor_is_a_copy():
    # np.array(x) copies by default (copy=True), for every array-like.
    t = Tensor([1.0, 2.0])
    copied = np.array(t)
    copied[0] = 100.0
    assert t.data[0] == 1.0


@pytest.mark.parametrize("data, expected", [(0.0, False), (2.5, True), ([-1.0], True), ([[0.0]], False)])
def test_bool_of_a_one_element_tensor_is_the_truth_of_its_value(data, expected, torch):
    assert bool(Tensor(data)) is expected
    assert bool(torch.tensor(data)) is expected


@pytest.mark.parametrize("shape", [(2,), (2, 3), (0,)])
def test_bool_of_a_tensor_of_any_other_size_is_ambiguous(shape):
    size = int(np.prod(shape))
    with pytest.raises(ValueError, match=f"the truth value of a tensor with {size} elements is ambiguous"):
        bool(Tensor(np.ones(shape)))


def test_iterating_a_0d_tensor_raises_type_error_like_torch(torch):
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        iter(Tensor(1.0))
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        iter(torch.tensor(1.0))


def test_iterating_a_tensor_yields_its_rows_which_carry_the_gradient():
    x = Tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], requires_grad=True)
    rows = list(x)
    assert len(rows) == 3 and all(isinstance(row, Tensor) for row in rows)
    np.testing.assert_array_equal(rows[1].data, [3.0, 4.0])
    (rows[0] * 2 + rows[2]).sum().backward()
    np.testing.assert_array_equal(x.grad, [[2.0, 2.0], [0.0, 0.0], [1.0, 1.0]])


# ---------------------------------------------------------------- indexing with a Tensor

X34 = np.arange(12.0).reshape(3, 4)


def tensor_holding(array: np.ndarray) -> Tensor:
    """A Tensor whose data is `array` as it is (the constructor would make integers and booleans floats)."""
    t = Tensor(0.0)
    t.data = array
    return t


@pytest.mark.parametrize(
    "index",
    [lambda: Tensor([0.0, 1.0]), lambda: Tensor(np.array([0.0, 2.0], np.float32)), lambda: Tensor(1.0),
     lambda: (0, Tensor(np.array([0.0, 1.0], np.float32))), lambda: (slice(None), Tensor([0.5]))],
    ids=["float64", "float32", "0-d", "tuple-float32", "tuple-fraction"],
)
def test_a_float_tensor_index_raises_type_error_naming_the_dtype_instead_of_truncating(index):
    index = index()
    dtype = (index[-1] if isinstance(index, tuple) else index).dtype
    with pytest.raises(TypeError, match=f"tensors used as indices must be integer or boolean, got {dtype}"):
        Tensor(X34)[index]


def test_a_tensor_built_from_a_boolean_mask_stays_a_mask_not_row_numbers_0_and_1():
    mask = np.array([True, False, True])
    x = Tensor(X34)
    np.testing.assert_array_equal(x[Tensor(mask)].data, X34[mask])  # rows 0 and 2, as PyTorch
    np.testing.assert_array_equal(x[mask].data, X34[mask])
    with pytest.raises(TypeError, match="got float64"):  # a float tensor is refused, never truncated
        x[Tensor(mask.astype(float))]


@pytest.mark.parametrize(
    "index",
    [np.array([[True, False, True, True]] * 3), np.array([True, False, True]), np.array([2, 0, 2]),
     np.array([-1, 1], np.int32), np.array([[0, 1], [1, 0]], np.uint8)],
    ids=["mask", "row-mask", "int64", "int32", "uint8-2d"],
)
def test_integer_and_boolean_tensor_indices_index_as_numpy_and_a_mask_stays_a_mask(index):
    x = Tensor(X34, requires_grad=True)
    out = x[tensor_holding(index)]
    np.testing.assert_array_equal(out.data, X34[index])
    out.sum().backward()
    expected = np.zeros_like(X34)
    np.add.at(expected, index, 1.0)
    np.testing.assert_array_equal(x.grad, expected)
    x.grad = None
    column = x[1:, tensor_holding(np.array([3, 3]))]  # in a tuple too
    np.testing.assert_array_equal(column.data, X34[1:, [3, 3]])


# ---------------------------------------------------------------- max: how tied maxima share the gradient

MAX_TIES = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 3.0, 0.0, 2.0], [-1.0, 3.0, 3.0, 0.5]])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "data", [MAX_TIES, np.zeros((2, 3)), np.array([7.0]), np.array([[1.0, np.nan, 3.0], [np.nan, 0.0, 3.0]])],
    ids=["five-ties", "all-tied", "one-element", "nan"],
)
def test_max_over_all_axes_splits_the_gradient_evenly_among_ties_like_torch_max(data, dtype, torch):
    x = Tensor(data.astype(dtype), requires_grad=True)
    out = x.max()
    (out * 3.0).backward()
    x_t = torch.tensor(data.astype(dtype), requires_grad=True)
    out_t = x_t.max()
    (out_t * 3.0).backward()
    np.testing.assert_array_equal(out.data, out_t.detach().numpy())
    assert x.grad.dtype == dtype
    np.testing.assert_allclose(x.grad, x_t.grad.numpy(), rtol=1e-7 if dtype == np.float32 else 1e-15)
    assert x.grad.sum() == pytest.approx(3.0)


# ---------------------------------------------------------------- documentation


def test_every_public_tensor_method_and_property_has_a_docstring():
    public = {name: member for name, member in vars(Tensor).items() if not name.startswith("_")
              and (inspect.isfunction(member) or isinstance(member, (property, classmethod, staticmethod)))}
    assert {"sum", "mean", "max", "reshape", "permute", "shape"} <= public.keys()
    missing = [name for name, member in public.items() if not inspect.getdoc(member)]
    assert missing == []


# ---------------------------------------------------------------- memory


def test_graph_is_freed_when_the_loss_is_dropped():
    x = Tensor(np.ones((3, 3)), requires_grad=True)
    hidden = (x * 2).exp()
    loss = (hidden * hidden).sum()
    intermediate = weakref.ref(hidden)
    del hidden
    loss.backward()
    assert intermediate() is not None  # the graph still holds it
    gc.disable()  # prove it is freed by reference counting: the graph has no cycles
    try:
        del loss
        assert intermediate() is None
    finally:
        gc.enable()
    assert x.grad is not None


def test_50_conv_training_steps_do_not_grow_memory():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 16, 16))
    w = Tensor(rng.standard_normal((4, 3, 3, 3)) * 0.1, requires_grad=True)
    b = Tensor(np.zeros(4), requires_grad=True)
    cols_bytes = 3 * 3 * 3 * x.shape[0] * 16 * 16 * x.itemsize  # one step's im2col buffer, part of its graph

    def step():
        w.zero_grad()
        b.zero_grad()
        y = functional.conv2d(Tensor(x), w, b, padding=1)
        loss = functional.max_pool2d(y.relu(), 2).mean()
        loss.backward()
        w.data -= 0.01 * w.grad
        b.data -= 0.01 * b.grad

    for _ in range(5):  # warm up numpy's caches
        step()
    tracemalloc.start()
    try:
        step()
        baseline = tracemalloc.get_traced_memory()[0]
        for _ in range(50):
            step()
        growth = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    # Keeping the graph of even 2 of the 50 steps alive would exceed this. What does grow (~100 KB) is
    # CPython's free lists of small objects filling up under tracing, which saturates; it is not a leak.
    assert growth < 2 * cols_bytes, f"memory grew by {growth} bytes over 50 steps (one im2col is {cols_bytes})"
