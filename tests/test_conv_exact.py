"""conv2d's gradients, derived by the engine, against the closed forms written by hand — exactly.

functional.conv2d is composed of pad → im2col → matmul → reshape, so its backward is whatever the chain rule
makes of those ops. closed_form.py writes dL/dX (the full correlation of the zero-inserted dL/dY with the
180°-flipped kernel) and dL/dW (the correlation of X with dL/dY) directly. With small integer data every
product and sum is an exactly representable integer in float64, so the two must agree bit for bit, not
to a tolerance: `np.array_equal`.

Then: the seed's worked example (one pixel reaches four outputs, so dL/dx = dL/dy ⊛ w-flipped), PyTorch
as an oracle over the same grid, a hypothesis search over random configurations, and bad inputs.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_conv import Tensor, closed_form, functional, grad, kernels
from tinygrad_conv.conv_args import pair, resolve_padding
from tinygrad_conv.gradcheck import gradcheck

# ---------------------------------------------------------------- the grid


@dataclass(frozen=True)
class ConvCase:
    n: int
    c_in: int
    c_out: int
    groups: int
    h: int
    w: int
    kernel: tuple[int, int]
    stride: int | tuple[int, int]
    padding: object
    dilation: int | tuple[int, int]

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.c_out, self.c_in // self.groups, *self.kernel)

    @property
    def conv_args(self) -> dict:
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)

    @property
    def per_side_padding(self) -> tuple[tuple[int, int], tuple[int, int]]:
        as_pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
        return resolve_padding(self.padding, self.kernel, as_pair(self.stride), as_pair(self.dilation))

    @property
    def id(self) -> str:
        fmt = lambda v: f"{v}" if isinstance(v, int) else f"{v[0]}x{v[1]}"  # noqa: E731
        if isinstance(self.padding, str) or isinstance(self.padding, int):
            padding = str(self.padding)
        elif isinstance(self.padding[0], int):
            padding = fmt(self.padding)
        else:
            (top, bottom), (left, right) = self.padding
            padding = f"t{top}b{bottom}l{left}r{right}"
        groups = "depthwise" if self.groups == self.c_in > 1 else f"g{self.groups}"
        return (f"n{self.n}-c{self.c_in}to{self.c_out}-{groups}-x{self.h}x{self.w}-k{fmt(self.kernel)}"
                f"-s{fmt(self.stride)}-p{padding}-d{fmt(self.dilation)}")


KERNELS = [(1, 1), (2, 2), (3, 3), (5, 5), (2, 3), (3, 1), (1, 4), (4, 2)]
CONFIGS = [  # (stride, padding, dilation)
    (1, 0, 1),
    (1, 1, 1),
    (2, 0, 1),
    (3, 0, 1),
    (2, 1, 2),
    ((2, 1), (1, 2), 1),
    ((1, 3), ((1, 0), (0, 2)), 1),
    (1, ((0, 2), (1, 1)), (2, 1)),
    (1, "same", 1),
    (1, "same", 2),
    (2, "valid", 1),
    (3, (2, 0), (1, 2)),
]
GROUPINGS = [  # (c_in, c_out, groups): plain, grouped, depthwise, depthwise with multiplier 2
    (1, 1, 1),
    (3, 2, 1),
    (4, 6, 2),
    (3, 3, 3),
    (2, 4, 2),
    (6, 3, 3),
    (6, 5, 1),
]


def span(kernel: int, dilation: int) -> int:
    return dilation * (kernel - 1) + 1


def conv_grid() -> Iterator[ConvCase]:
    """Every kernel under every (stride, padding, dilation), groupings and batch sizes cycling; then every
    grouping under every configuration with a non-square kernel; then the pitfalls, spelled out."""
    as_pair = lambda v: (v, v) if isinstance(v, int) else v  # noqa: E731
    for ki, kernel in enumerate(KERNELS):
        for ci, (stride, padding, dilation) in enumerate(CONFIGS):
            c_in, c_out, groups = GROUPINGS[(ki + ci) % len(GROUPINGS)]
            dh, dw = as_pair(dilation)
            # span + 4 rows and span + 3 columns: with stride 2 or 3 the last row or column gets no window.
            yield ConvCase(1 + (ki * ci) % 3, c_in, c_out, groups, span(kernel[0], dh) + 4, span(kernel[1], dw) + 3,
                           kernel, stride, padding, dilation)
    for gi, (c_in, c_out, groups) in enumerate(GROUPINGS):
        for ci, (stride, padding, dilation) in enumerate(CONFIGS[gi % 2 :: 2]):
            dh, dw = as_pair(dilation)
            yield ConvCase(1 + (gi + ci) % 3, c_in, c_out, groups, span(3, dh) + 2 + ci % 3, span(2, dw) + 5,
                           (3, 2), stride, padding, dilation)
    yield ConvCase(1, 1, 1, 1, 7, 7, (2, 2), 3, 0, 1)  # rows/columns 6 read by no window
    yield ConvCase(2, 2, 3, 1, 8, 6, (1, 1), 3, 0, 1)  # a 1×1 kernel with stride 3: most pixels unread
    yield ConvCase(1, 2, 2, 1, 5, 4, (5, 4), 1, 0, 1)  # kernel as large as the input: one output
    yield ConvCase(1, 1, 2, 1, 3, 3, (5, 5), 2, 1, 1)  # kernel as large as the padded input
    yield ConvCase(2, 2, 2, 1, 6, 7, (4, 2), 1, "same", 2)  # 'same', even kernel, dilation 2 (d·(k−1) even: symmetric)
    yield ConvCase(1, 3, 3, 1, 5, 6, (2, 4), 1, "same", 1)  # 'same', even kernel: extra row/column bottom/right
    yield ConvCase(3, 6, 6, 6, 9, 8, (3, 3), 2, ((2, 0), (0, 1)), 1)  # depthwise, per-side padding, stride 2
    yield ConvCase(3, 6, 6, 3, 11, 10, (5, 5), 2, 2, 1)  # batch 3, 6 channels, 5×5, stride 2
    yield ConvCase(2, 4, 4, 2, 9, 9, (3, 3), (3, 2), ((0, 3), (3, 0)), 2)  # padding reaching beyond the windows


GRID = list(conv_grid())
GRID_IDS = [c.id for c in GRID]
assert len(set(GRID_IDS)) == len(GRID_IDS), "grid ids must be unique"


def test_the_grid_covers_every_pitfall():
    as_pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731

    def padding_kind(p):
        if isinstance(p, str):
            return p
        if isinstance(p, int):
            return "zero" if p == 0 else "int"
        return "pair" if isinstance(p[0], int) else "per-side"

    def unread_rows_or_columns(c):
        (top, bottom), (left, right) = c.per_side_padding
        rows_left = (c.h + top + bottom - span(c.kernel[0], as_pair(c.dilation)[0])) % as_pair(c.stride)[0]
        cols_left = (c.w + left + right - span(c.kernel[1], as_pair(c.dilation)[1])) % as_pair(c.stride)[1]
        return rows_left > bottom or cols_left > right  # real input pixels that no window reaches

    assert 100 <= len(GRID) <= 200
    assert {c.n for c in GRID} == {1, 2, 3}
    assert {c.c_in for c in GRID} == {1, 2, 3, 4, 6} and max(c.c_out for c in GRID) == 6
    assert {(1, 1), (5, 5)} <= {c.kernel for c in GRID}
    assert any(c.kernel[0] % 2 == 0 for c in GRID) and any(c.kernel[0] != c.kernel[1] for c in GRID)
    assert {1, 2, 3} <= {s for c in GRID for s in as_pair(c.stride)}
    assert {"zero", "int", "pair", "per-side", "same", "valid"} == {padding_kind(c.padding) for c in GRID}
    assert any(c.padding == "same" and c.kernel[0] % 2 == 0 for c in GRID)
    assert any(c.padding == "same" and as_pair(c.dilation) == (2, 2) for c in GRID)
    assert {1, 2} == {d for c in GRID for d in as_pair(c.dilation)}
    assert {1, 2} <= {c.groups for c in GRID}
    assert any(c.groups == c.c_in == c.c_out for c in GRID)  # depthwise
    assert any(c.groups == c.c_in and c.c_out == 2 * c.c_in for c in GRID)  # depthwise, multiplier 2
    assert sum(unread_rows_or_columns(c) for c in GRID) >= 20


def integer_data(c: ConvCase, seed: int = 0):
    """x, weight, bias and a grad_output of small integers, in float64 — every sum is exact."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, (c.n, c.c_in, c.h, c.w)).astype(np.float64)
    weight = rng.integers(-3, 4, c.weight_shape).astype(np.float64)
    bias = rng.integers(-3, 4, c.c_out).astype(np.float64)
    out_shape = functional.conv2d(Tensor(x), Tensor(weight), **c.conv_args).shape
    grad_output = rng.integers(-3, 4, out_shape).astype(np.float64)
    return x, weight, bias, grad_output


def engine_conv(x, weight, bias, grad_output, **conv_args):
    """The engine's forward and its derived dL/dX, dL/dW, dL/db for the given dL/dY."""
    xt, wt = Tensor(x, requires_grad=True), Tensor(weight, requires_grad=True)
    bt = None if bias is None else Tensor(bias, requires_grad=True)
    y = functional.conv2d(xt, wt, bt, **conv_args)
    y.backward(grad_output)
    return y.data, xt.grad, wt.grad, None if bt is None else bt.grad


# ---------------------------------------------------------------- (1) exactness against the closed forms


def assert_engine_equals_closed_form(c: ConvCase, seed: int = 0) -> None:
    """The engine's forward and gradients on integer data equal the closed forms bit for bit, shapes included."""
    x, weight, bias, grad_output = integer_data(c, seed)
    y, grad_x, grad_w, grad_b = engine_conv(x, weight, bias, grad_output, **c.conv_args)

    expected_y = np.asarray(closed_form.conv2d(x, weight, **c.conv_args)) + bias[None, :, None, None]
    expected_grad_x = np.asarray(closed_form.conv2d_input_grad(x.shape, weight, grad_output, **c.conv_args))
    expected_grad_w = np.asarray(closed_form.conv2d_weight_grad(x, weight.shape, grad_output, **c.conv_args))
    assert y.shape == expected_y.shape and np.array_equal(y, expected_y)
    assert grad_x.shape == x.shape and np.array_equal(grad_x, expected_grad_x)
    assert grad_w.shape == weight.shape and np.array_equal(grad_w, expected_grad_w)
    assert np.array_equal(grad_b, grad_output.sum(axis=(0, 2, 3)))  # dL/db = dL/dY summed over N, H, W


@pytest.mark.parametrize("c", GRID, ids=GRID_IDS)
def test_engine_conv_forward_and_gradients_equal_closed_form_exactly(c):
    assert_engine_equals_closed_form(c)


def test_lenet_first_conv_whose_weight_gradient_runs_row_by_row_equals_closed_form_exactly(monkeypatch):
    """6 output channels and 28×28 images: dL/dW = dL/dY · colsᵀ has 6 rows and a large transposed right operand,
    the product kernels.matmul computes one row at a time; the same numbers as the closed form, bit for bit."""
    calls = []
    by_rows = kernels.matmul_by_rows
    monkeypatch.setattr(kernels, "matmul_by_rows", lambda a, b: calls.append(a.shape) or by_rows(a, b))
    assert_engine_equals_closed_form(ConvCase(8, 1, 6, 1, 28, 28, (5, 5), 1, 2, 1))
    assert calls  # the row-by-row product ran


@pytest.mark.parametrize("c", GRID, ids=GRID_IDS)
def test_input_grad_three_ways_graph_conv_transpose_and_closed_form_are_equal(c):
    """dL/dX from the engine's graph, from conv_transpose2d(dL/dY, W) (matmul → fold → crop), and from the closed
    form (the full convolution with the flipped kernel): the same numbers, bit for bit."""
    x, weight, _, grad_output = integer_data(c)
    _, graph_grad_x, _, _ = engine_conv(x, weight, None, grad_output, **c.conv_args)
    (top, bottom), (left, right) = c.per_side_padding
    stride, dilation = (pair(c.stride, "stride"), pair(c.dilation, "dilation"))
    reached = [(size - 1) * s + d * (k - 1) + 1 for size, s, d, k in zip(grad_output.shape[2:], stride, dilation,
                                                                          c.kernel)]
    unread = (c.h + top + bottom - reached[0], c.w + left + right - reached[1])  # rows/columns no window reads
    transposed = functional.conv_transpose2d(Tensor(grad_output), Tensor(weight), stride=c.stride,
                                             padding=((top, bottom), (left, right)), output_padding=unread,
                                             groups=c.groups, dilation=c.dilation).data
    closed = np.asarray(closed_form.conv2d_input_grad(x.shape, weight, grad_output, **c.conv_args))
    assert np.array_equal(graph_grad_x, transposed) and np.array_equal(transposed, closed)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
@pytest.mark.parametrize("c", GRID[::3], ids=GRID_IDS[::3])
def test_conv_second_derivatives_match_torch(c, torch):
    """Every mixed second derivative of conv2d (a bilinear map: d²/dx dw ≠ 0, d²/dx² = d²/dw² = 0) through a
    tanh, by grad(create_graph=True) against torch.autograd.grad, every third case of the grid."""
    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal((c.n, c.c_in, c.h, c.w)), rng.standard_normal(c.weight_shape),
              rng.standard_normal(c.c_out)]
    xs = [Tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    y = functional.conv2d(*xs, **c.conv_args).tanh()
    y_t = torch_conv(torch, *ts, c).tanh()
    v = rng.standard_normal(y.shape)
    ws = [rng.standard_normal(a.shape) for a in arrays]
    firsts = grad(y, xs, Tensor(v), create_graph=True)
    seconds = grad(sum(((g * w).sum() for g, w in zip(firsts, ws)), Tensor(0.0)), xs)
    firsts_t = torch.autograd.grad(y_t, ts, torch.tensor(v), create_graph=True)
    seconds_t = torch.autograd.grad(sum((g * torch.tensor(w)).sum() for g, w in zip(firsts_t, ws)), ts)
    for mine, reference in zip([*firsts, *seconds], [*firsts_t, *seconds_t]):
        np.testing.assert_allclose(mine.data, reference.detach().numpy(), rtol=1e-10, atol=1e-10)


def test_pixels_no_window_reaches_get_zero_gradient_and_dx_keeps_x_shape():
    x = np.arange(49.0).reshape(1, 1, 7, 7)
    weight = np.ones((1, 1, 2, 2))
    _, grad_x, _, _ = engine_conv(x, weight, None, np.ones((1, 1, 2, 2)), stride=3)  # windows at rows 0-1, 3-4
    assert grad_x.shape == x.shape
    read = np.zeros((7, 7))
    read[np.ix_([0, 1, 3, 4], [0, 1, 3, 4])] = 1.0
    assert np.array_equal(grad_x[0, 0], read)


def test_same_padding_with_an_even_kernel_puts_the_extra_row_and_column_bottom_right():
    rng = np.random.default_rng(0)
    x, weight = rng.integers(-3, 4, (1, 1, 5, 6)).astype(float), rng.integers(-3, 4, (1, 1, 2, 4)).astype(float)
    same = functional.conv2d(Tensor(x), Tensor(weight), padding="same")
    explicit = functional.conv2d(Tensor(x), Tensor(weight), padding=((0, 1), (1, 2)))
    assert same.shape == (1, 1, 5, 6) and np.array_equal(same.data, explicit.data)


# ---------------------------------------------------------------- (2) the seed's own example

A, B, C, D = 2.0, 3.0, 5.0, 7.0  # w = [[a, b], [c, d]], distinct primes
SEED_WEIGHT = np.array([[A, B], [C, D]])
SEED_PADDING = ((1, 0), (1, 0))  # pad top and left by one: a 2×2 kernel keeps the 4×4 size


def seed_conv(x: np.ndarray, requires_grad: bool = False) -> tuple[Tensor, Tensor]:
    xt = Tensor(x.reshape(1, 1, 4, 4), requires_grad=requires_grad)
    return xt, functional.conv2d(xt, Tensor(SEED_WEIGHT.reshape(1, 1, 2, 2)), padding=SEED_PADDING)


def test_seed_example_top_left_pixel_reaches_exactly_four_outputs():
    # y[i, j] = a·x[i-1, j-1] + b·x[i-1, j] + c·x[i, j-1] + d·x[i, j], so p = x[0, 0] appears in
    # y[0, 0] (as d·p), y[0, 1] (as c·p), y[1, 0] (as b·p) and y[1, 1] (as a·p), and nowhere else.
    reach = np.zeros((4, 4))
    reach[:2, :2] = [[D, C], [B, A]]

    x = np.arange(1.0, 17.0).reshape(4, 4)
    nudged = x.copy()
    nudged[0, 0] += 1.0
    _, y = seed_conv(x)
    _, y_nudged = seed_conv(nudged)
    assert y.shape == (1, 1, 4, 4)
    assert np.array_equal(y_nudged.data[0, 0] - y.data[0, 0], reach)

    for i in range(4):
        for j in range(4):  # dL/dp for L = y[i, j]: a one-hot grad_output
            xt, y = seed_conv(x, requires_grad=True)
            one_hot = np.zeros((1, 1, 4, 4))
            one_hot[0, 0, i, j] = 1.0
            y.backward(one_hot)
            assert xt.grad[0, 0, 0, 0] == reach[i, j], (i, j)


def test_seed_example_input_grad_is_grad_output_correlated_with_the_flipped_kernel():
    x = np.arange(1.0, 17.0).reshape(4, 4)
    grad_y = np.array([[1.0, -2.0, 0.0, 3.0], [2.0, 1.0, -1.0, 0.0], [0.0, 4.0, 1.0, -3.0], [-1.0, 0.0, 2.0, 1.0]])
    xt, y = seed_conv(x, requires_grad=True)
    y.backward(grad_y.reshape(1, 1, 4, 4))

    flipped = SEED_WEIGHT[::-1, ::-1]  # rotated 180°
    assert np.array_equal(flipped, [[D, C], [B, A]])
    padded = np.pad(grad_y, ((0, 1), (0, 1)))  # the forward padded top/left, so the backward pads bottom/right
    expected = np.zeros((4, 4))
    for r in range(4):
        for s in range(4):
            for u in range(2):
                for v in range(2):
                    expected[r, s] += padded[r + u, s + v] * flipped[u, v]
    assert np.array_equal(xt.grad[0, 0], expected)


def test_vector_example_gradient_of_x_times_w_with_respect_to_w_is_x_transposed():
    x = Tensor(np.array([[2.0, 3.0, 5.0, 7.0]]), requires_grad=True)  # a row vector (1, n)
    w = Tensor(np.array([[1.0], [-1.0], [4.0], [0.5]]), requires_grad=True)  # a column (n, 1)
    y = x @ w  # (1, 1)
    y.backward()
    assert y.shape == (1, 1)
    assert np.array_equal(w.grad, x.data.T)  # dy/dw = xᵀ
    assert np.array_equal(x.grad, w.data.T)  # dy/dx = wᵀ


# ---------------------------------------------------------------- (3) PyTorch as an oracle, same grid


def torch_conv(torch, x, weight, bias, c: ConvCase):
    """F.conv2d, with per-side padding applied by F.pad first (F.conv2d only pads symmetrically)."""
    F = torch.nn.functional
    padding = c.padding
    if not isinstance(padding, (str, int)) and not isinstance(padding[0], int):
        (top, bottom), (left, right) = padding
        x, padding = F.pad(x, (left, right, top, bottom)), 0
    return F.conv2d(x, weight, bias, stride=c.stride, padding=padding, dilation=c.dilation, groups=c.groups)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
@pytest.mark.parametrize("c", GRID, ids=GRID_IDS)
def test_engine_conv_forward_and_all_three_gradients_match_torch(c, torch):
    rng = np.random.default_rng(1)
    x, weight = rng.standard_normal((c.n, c.c_in, c.h, c.w)), rng.standard_normal(c.weight_shape)
    bias = rng.standard_normal(c.c_out)
    x_t, w_t, b_t = (torch.tensor(a, requires_grad=True) for a in (x, weight, bias))
    y_t = torch_conv(torch, x_t, w_t, b_t, c)
    grad_output = rng.standard_normal(tuple(y_t.shape))
    y_t.backward(torch.tensor(grad_output))

    y, grad_x, grad_w, grad_b = engine_conv(x, weight, bias, grad_output, **c.conv_args)
    tol = dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(y, y_t.detach().numpy(), **tol)
    np.testing.assert_allclose(grad_x, x_t.grad.numpy(), **tol)
    np.testing.assert_allclose(grad_w, w_t.grad.numpy(), **tol)
    np.testing.assert_allclose(grad_b, b_t.grad.numpy(), **tol)


# ---------------------------------------------------------------- (4) hypothesis: random configurations


@st.composite
def conv_cases(draw, max_side: int = 9) -> ConvCase:
    groups = draw(st.integers(1, 3))
    c_in, c_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    kind = draw(st.sampled_from(["int", "pair", "per-side", "same", "valid"]))
    stride = (1, 1) if kind == "same" else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = {
        "int": draw(st.integers(0, 2)),
        "pair": (draw(st.integers(0, 2)), draw(st.integers(0, 2))),
        "per-side": tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(2)),
        "same": "same",
        "valid": "valid",
    }[kind]
    case = ConvCase(draw(st.integers(1, 2)), c_in, c_out, groups, 0, 0, kernel, stride, padding, dilation)
    (top, bottom), (left, right) = case.per_side_padding
    smallest_h = max(1, span(kernel[0], dilation[0]) - top - bottom)  # the dilated kernel must fit
    smallest_w = max(1, span(kernel[1], dilation[1]) - left - right)
    h = draw(st.integers(smallest_h, max(smallest_h, max_side)))
    w = draw(st.integers(smallest_w, max(smallest_w, max_side)))
    return ConvCase(case.n, c_in, c_out, groups, h, w, kernel, stride, padding, dilation)


@given(c=conv_cases(), seed=st.integers(0, 2**16))
def test_random_conv_configurations_equal_closed_form_exactly(c, seed):
    assert_engine_equals_closed_form(c, seed)


@settings(max_examples=15)
@given(c=conv_cases(max_side=5), seed=st.integers(0, 2**16))
def test_random_small_conv_configurations_pass_gradcheck(c, seed):
    rng = np.random.default_rng(seed)
    x = Tensor(rng.standard_normal((c.n, c.c_in, c.h, c.w)), requires_grad=True)
    weight = Tensor(rng.standard_normal(c.weight_shape), requires_grad=True)
    bias = Tensor(rng.standard_normal(c.c_out), requires_grad=True)
    assert gradcheck(lambda x, w, b: functional.conv2d(x, w, b, **c.conv_args), [x, weight, bias])


# ---------------------------------------------------------------- (5) bad input: errors that name the problem


def ones(*shape, dtype=np.float64):
    return Tensor(np.ones(shape, dtype))


BAD_CONV_CALLS = {
    "channel mismatch": (lambda: functional.conv2d(ones(1, 3, 5, 5), ones(2, 2, 3, 3)),
                         ValueError, r"channel mismatch: input has 3 channels"),
    "groups not dividing input channels": (lambda: functional.conv2d(ones(1, 4, 5, 5), ones(3, 1, 3, 3), groups=3),
                                           ValueError, r"groups=3 must divide both input channels \(4\)"),
    "groups not dividing output channels": (lambda: functional.conv2d(ones(1, 4, 5, 5), ones(3, 2, 3, 3), groups=2),
                                            ValueError, r"groups=2 must divide .* output channels \(3\)"),
    "groups zero": (lambda: functional.conv2d(ones(1, 2, 5, 5), ones(2, 2, 3, 3), groups=0),
                    ValueError, "groups must be a positive int"),
    "3-D input": (lambda: functional.conv2d(ones(3, 5, 5), ones(2, 3, 3, 3)),
                  ValueError, r"4-D input \(N, C, H, W\), got shape \(3, 5, 5\)"),
    "3-D weight": (lambda: functional.conv2d(ones(1, 3, 5, 5), ones(3, 3, 3)), ValueError, "4-D weight"),
    "kernel larger than padded input": (lambda: functional.conv2d(ones(1, 1, 3, 4), ones(1, 1, 5, 2), padding=(0, 1)),
                                        ValueError, r"kernel size 5 .* larger than the padded input height size 3"),
    "dilated kernel larger than input": (lambda: functional.conv2d(ones(1, 1, 6, 6), ones(1, 1, 2, 3), dilation=3),
                                         ValueError, r"dilated span 7\) is larger than the padded input width"),
    "stride 0": (lambda: functional.conv2d(ones(1, 1, 5, 5), ones(1, 1, 3, 3), stride=0),
                 ValueError, "stride must be >= 1, got 0"),
    "stride float": (lambda: functional.conv2d(ones(1, 1, 5, 5), ones(1, 1, 3, 3), stride=1.5),
                     TypeError, "stride must be an int or a pair of ints"),
    "dilation 0": (lambda: functional.conv2d(ones(1, 1, 5, 5), ones(1, 1, 3, 3), dilation=(1, 0)),
                   ValueError, "dilation must be >= 1"),
    "negative padding": (lambda: functional.conv2d(ones(1, 1, 5, 5), ones(1, 1, 3, 3), padding=-1),
                         ValueError, "padding must be >= 0, got -1"),
    "negative per-side padding": (lambda: functional.conv2d(ones(1, 1, 5, 5), ones(1, 1, 3, 3),
                                                            padding=((0, 0), (-1, 1))),
                                  ValueError, "padding must be >= 0"),
    "same with stride 2": (lambda: functional.conv2d(ones(1, 1, 5, 5), ones(1, 1, 3, 3), stride=2, padding="same"),
                           ValueError, r"padding='same' needs stride 1, got stride=\(2, 2\)"),
    "unknown padding string": (lambda: functional.conv2d(ones(1, 1, 5, 5), ones(1, 1, 3, 3), padding="full"),
                               ValueError, "padding must be an int, a pair, per-side pairs, 'valid' or 'same'"),
    "input/weight dtype mismatch": (lambda: functional.conv2d(ones(1, 1, 5, 5, dtype=np.float32), ones(1, 1, 3, 3)),
                                    TypeError, "same dtype, got float32 and float64"),
    "bias of wrong shape": (lambda: functional.conv2d(ones(1, 1, 5, 5), ones(2, 1, 3, 3), ones(3)),
                            ValueError, r"bias must have shape \(2,\) .*got \(3,\)"),
    "input a list": (lambda: functional.conv2d([[1.0]], ones(1, 1, 1, 1)),
                     TypeError, "input must be a Tensor or a numpy array, got list"),
    "empty batch": (lambda: functional.conv2d(ones(0, 1, 5, 5), ones(1, 1, 3, 3)), ValueError, "empty batch"),
}


@pytest.mark.parametrize("problem", BAD_CONV_CALLS)
def test_bad_conv_input_raises_an_error_naming_the_problem(problem):
    call, error, message = BAD_CONV_CALLS[problem]
    with pytest.raises(error, match=message):
        call()


def test_matmul_shape_mismatch_raises_value_error_naming_both_shapes():
    with pytest.raises(ValueError, match=r"matmul shape mismatch: \(2, 3\) @ \(4, 5\) \(inner sizes 3 != 4\)"):
        ones(2, 3) @ ones(4, 5)
    with pytest.raises(ValueError, match="batch shapes do not broadcast"):
        ones(2, 2, 3) @ ones(3, 3, 4)


def test_non_scalar_conv_output_backward_without_grad_raises_value_error():
    y = functional.conv2d(Tensor(np.ones((1, 1, 4, 4)), requires_grad=True), ones(2, 1, 2, 2))
    with pytest.raises(ValueError, match=r"one-element output, got shape \(1, 2, 3, 3\)"):
        y.backward()
