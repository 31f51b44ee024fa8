"""Every primitive op (ops.py) and every layer composed from them (functional.py), two ways:

1. gradcheck: backward() against central differences, in float64, with inputs kept away from kinks
   (ReLU inputs have |x| > 0.1; Max inputs have no ties);
2. PyTorch as an oracle: the forward and the gradient of Σ v ⊙ f(inputs), for a random v, to 1e-10.

One table of cases drives both. Then the behaviours a table cannot show: Max's first-maximum rule on
ties, max-pooling over tied zeros, logits of ±1e4, and gradcheck catching a deliberately wrong op.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

from tinygrad_conv import Tensor, functional, kernels, ops
from tinygrad_conv.gradcheck import GradcheckError, gradcheck

TOL = dict(rtol=1e-10, atol=1e-10)

# ---------------------------------------------------------------- input makers (float64, away from kinks)


def normal(*shape):
    return lambda rng: rng.standard_normal(shape)


def positive(*shape):
    return lambda rng: rng.uniform(0.5, 2.0, shape)


def away_from_zero(*shape):
    """|x| in [0.5, 2]: safe as a denominator, and far from ReLU's kink."""
    return lambda rng: rng.choice([-1.0, 1.0], shape) * rng.uniform(0.5, 2.0, shape)


def distinct(*shape):
    """No two elements within 0.25 of each other: Max has no ties, not even under a finite-difference step."""
    size = int(np.prod(shape))
    return lambda rng: (rng.permutation(size).reshape(shape) - size / 2) * 0.25 + rng.uniform(0, 0.01, shape)


def torch_dims(axis, ndim):
    return tuple(range(ndim)) if axis is None else axis


@dataclass(frozen=True)
class Case:
    id: str
    ours: Callable  # (*Tensor) -> Tensor
    theirs: Callable  # (torch, *torch.Tensor) -> torch.Tensor
    inputs: tuple  # makers: rng -> ndarray


CASES: list[Case] = []


def case(id, ours, theirs, *inputs):
    CASES.append(Case(id, ours, theirs, inputs))


# ---------------------------------------------------------------- binary elementwise, with broadcasting

SHAPE_PAIRS = [((2, 3), (2, 3)), ((3, 1, 4), (5, 4)), ((1,), (2, 3)), ((), (2, 2)), ((2, 2), ()), ((4, 1), (1, 3))]
for a_shape, b_shape in SHAPE_PAIRS:
    pair_id = f"{a_shape}&{b_shape}".replace(" ", "")
    case(f"add-{pair_id}", lambda a, b: a + b, lambda t, a, b: a + b, normal(*a_shape), normal(*b_shape))
    case(f"sub-{pair_id}", lambda a, b: a - b, lambda t, a, b: a - b, normal(*a_shape), normal(*b_shape))
    case(f"mul-{pair_id}", lambda a, b: a * b, lambda t, a, b: a * b, normal(*a_shape), normal(*b_shape))
    case(f"div-{pair_id}", lambda a, b: a / b, lambda t, a, b: a / b, normal(*a_shape), away_from_zero(*b_shape))

# ---------------------------------------------------------------- unary elementwise

case("neg", lambda a: -a, lambda t, a: -a, normal(2, 3))
case("exp", lambda a: a.exp(), lambda t, a: a.exp(), normal(2, 3))
case("log", lambda a: a.log(), lambda t, a: a.log(), positive(2, 3))
case("relu", lambda a: a.relu(), lambda t, a: a.relu(), away_from_zero(3, 4))
case("tanh", lambda a: a.tanh(), lambda t, a: a.tanh(), normal(2, 3))
case("sigmoid", lambda a: a.sigmoid(), lambda t, a: a.sigmoid(), normal(2, 3))
case("sigmoid-saturated", lambda a: a.sigmoid(), lambda t, a: a.sigmoid(), lambda rng: np.array([-800.0, -40.0, 40.0]))
for p in [2, 3, 0.5, -1.5, 1, 0]:
    base = positive(2, 3) if p != int(p) else away_from_zero(2, 3)  # a fractional power needs a positive base
    case(f"pow-{p}", lambda a, p=p: a**p, lambda t, a, p=p: a**p, base)

# ---------------------------------------------------------------- matmul: batched, broadcasting, 1-D either side

MATMUL_SHAPES = [  # dL/dA = G·Bᵀ is computed as (B·Gᵀ)ᵀ when A has fewer rows than columns: both ways are here
    ((2, 3), (3, 4)),
    ((4, 3), (3, 2)),
    ((2, 5, 3), (1, 3, 2)),
    ((5, 2, 3), (3, 4)),
    ((2, 3), (5, 3, 4)),
    ((2, 1, 2, 3), (3, 3, 4)),
    ((3,), (3, 4)),
    ((3,), (2, 3, 4)),
    ((2, 3), (3,)),
    ((2, 4, 3), (3,)),
    ((3,), (3,)),
]
for a_shape, b_shape in MATMUL_SHAPES:
    case(f"matmul-{a_shape}@{b_shape}".replace(" ", ""), lambda a, b: a @ b, lambda t, a, b: a @ b,
         normal(*a_shape), normal(*b_shape))

# ---------------------------------------------------------------- reductions

AXES = [None, 0, -1, 1, (0, 2), (-1, 0), ()]
for axis in AXES:
    for keepdims in (False, True):
        suffix = f"axis={axis}-keepdims={keepdims}".replace(" ", "")
        if axis == ():  # numpy's meaning, which the engine follows: reduce nothing (torch's dim=() reduces all)
            case(f"sum-{suffix}", lambda a, k=keepdims: a.sum(axis=(), keepdims=k), lambda t, a: a * 1, normal(2, 3))
            case(f"mean-{suffix}", lambda a, k=keepdims: a.mean(axis=(), keepdims=k), lambda t, a: a * 1, normal(2, 3))
            continue
        case(f"sum-{suffix}", lambda a, ax=axis, k=keepdims: a.sum(axis=ax, keepdims=k),
             lambda t, a, ax=axis, k=keepdims: a.sum(dim=torch_dims(ax, a.ndim), keepdim=k), normal(2, 3, 4))
        case(f"mean-{suffix}", lambda a, ax=axis, k=keepdims: a.mean(axis=ax, keepdims=k),
             lambda t, a, ax=axis, k=keepdims: a.mean(dim=torch_dims(ax, a.ndim), keepdim=k), normal(2, 3, 4))
        if isinstance(axis, int):
            theirs = lambda t, a, ax=axis, k=keepdims: t.max(a, dim=ax, keepdim=k).values  # noqa: E731
        else:
            theirs = lambda t, a, ax=axis, k=keepdims: t.amax(a, dim=torch_dims(ax, a.ndim), keepdim=k)  # noqa: E731
        case(f"max-{suffix}", lambda a, ax=axis, k=keepdims: a.max(axis=ax, keepdims=k), theirs, distinct(2, 3, 4))
case("max-0d", lambda a: a.max(), lambda t, a: a.amax(), normal())

# ---------------------------------------------------------------- movement

for shape in [(6, 4), (-1,), (4, -1, 2), (24,), (2, 3, 4, 1)]:
    case(f"reshape-{shape}".replace(" ", ""), lambda a, s=shape: a.reshape(s), lambda t, a, s=shape: a.reshape(s),
         normal(2, 3, 4))
case("reshape-varargs", lambda a: a.reshape(3, -1), lambda t, a: a.reshape(3, -1), normal(2, 3, 4))
case("reshape-to-0d", lambda a: a.reshape(()), lambda t, a: a.reshape(()), normal(1, 1))
case("permute-(2,0,1)", lambda a: a.permute(2, 0, 1), lambda t, a: a.permute(2, 0, 1), normal(2, 3, 4))
case("permute-negative", lambda a: a.permute((-1, 0, 1)), lambda t, a: a.permute(2, 0, 1), normal(2, 3, 4))
case("transpose-(0,2)", lambda a: a.transpose(0, 2), lambda t, a: a.transpose(0, 2), normal(2, 3, 4))
case("transpose-default", lambda a: a.transpose(), lambda t, a: a.transpose(-2, -1), normal(2, 3, 4))
case(".T", lambda a: a.T, lambda t, a: a.permute(2, 1, 0), normal(2, 3, 4))
for shape, pad_width, value in [
    ((2, 3, 4), ((1, 0), (0, 2), (2, 1)), 0.0),
    ((2, 3, 4), ((0, 0), (3, 3), (0, 1)), 1.5),
    ((5,), ((2, 2),), -1.0),
]:
    flat = tuple(n for before_after in reversed(pad_width) for n in before_after)
    case(f"pad-{pad_width}-value={value}".replace(" ", ""), lambda a, pw=pad_width, v=value: a.pad(pw, value=v),
         lambda t, a, f=flat, v=value: t.nn.functional.pad(a, f, value=v), normal(*shape))

# ---------------------------------------------------------------- indexing: basic, integer arrays (with repeats), masks

MASK = np.array([[True, False, True, False], [False, False, True, True], [True, True, True, False]])
INDICES = [
    ("[1]", 1, lambda t: 1),
    ("[:,1:3]", (slice(None), slice(1, 3)), lambda t: (slice(None), slice(1, 3))),
    ("[...,::2]", (Ellipsis, slice(None, None, 2)), lambda t: (Ellipsis, slice(None, None, 2))),
    ("[0,-1]", (0, -1), lambda t: (0, -1)),
    ("[None,1]", (None, 1), lambda t: (None, 1)),
    ("[[0,0,2]]", [0, 0, 2], lambda t: t.tensor([0, 0, 2])),
    ("[:,[1,1,3,1]]", (slice(None), [1, 1, 3, 1]), lambda t: (slice(None), t.tensor([1, 1, 3, 1]))),
    ("[rows,cols]", ([0, 2, 0], [1, 3, 1]), lambda t: (t.tensor([0, 2, 0]), t.tensor([1, 3, 1]))),
    ("[int2d]", np.array([[0, 1], [1, 0]]), lambda t: t.tensor([[0, 1], [1, 0]])),
    ("[mask]", MASK, lambda t: t.tensor(MASK)),
    ("[row-mask]", np.array([True, False, True]), lambda t: t.tensor([True, False, True])),
]
for index_id, index, torch_index in INDICES:
    case(f"index-{index_id}", lambda a, i=index: a[i], lambda t, a, i=torch_index: a[i(t)], normal(3, 4))
case("index-[::-1]", lambda a: a[::-1], lambda t, a: a.flip(0), normal(3, 4))

# ---------------------------------------------------------------- unfold (im2col)


def torch_im2col(t, x, kernel_size, stride, dilation):
    """F.unfold's (N, C·KH·KW, L) rearranged to Tensor.im2col's (C, KH, KW, Ho, Wo, N)."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (dh, dw) = kernel_size, stride, dilation
    ho, wo = (h - dh * (kh - 1) - 1) // sh + 1, (w - dw * (kw - 1) - 1) // sw + 1
    cols = t.nn.functional.unfold(x, kernel_size, dilation=dilation, stride=stride)
    return cols.reshape(n, c, kh, kw, ho, wo).permute(1, 2, 3, 4, 5, 0)


for kernel_size, stride, dilation, shape in [
    ((2, 2), (1, 1), (1, 1), (2, 2, 4, 5)),
    ((3, 2), (2, 1), (1, 1), (1, 3, 7, 5)),
    ((2, 3), (3, 2), (2, 1), (2, 1, 8, 7)),
    ((1, 1), (2, 2), (1, 1), (1, 2, 5, 5)),
]:
    im2col_id = f"im2col-k{kernel_size}-s{stride}-d{dilation}".replace(" ", "")
    case(im2col_id, lambda a, k=kernel_size, s=stride, d=dilation: a.im2col(k, s, d),
         lambda t, a, k=kernel_size, s=stride, d=dilation: torch_im2col(t, a, k, s, d), normal(*shape))
for kernel_size, dilation, padding, stride in [(3, 1, 1, 1), ((2, 3), (1, 2), (1, 0), (2, 1)), (2, 1, 0, 3)]:
    case(f"functional.unfold-k{kernel_size}-d{dilation}-p{padding}-s{stride}".replace(" ", ""),
         lambda a, k=kernel_size, d=dilation, p=padding, s=stride: functional.unfold(a, k, d, p, s),
         lambda t, a, k=kernel_size, d=dilation, p=padding, s=stride: t.nn.functional.unfold(a, k, d, p, s),
         normal(2, 2, 5, 6))

# ---------------------------------------------------------------- layers composed from the ops

for kernel_size, stride, padding in [(2, None, 0), (3, 1, 1), (3, 2, 1), ((2, 3), (1, 2), (1, 1)), (2, 1, 0)]:
    pool_id = f"k{kernel_size}-s{stride}-p{padding}".replace(" ", "")
    case(f"max_pool2d-{pool_id}", lambda a, k=kernel_size, s=stride, p=padding: functional.max_pool2d(a, k, s, p),
         lambda t, a, k=kernel_size, s=stride, p=padding: t.nn.functional.max_pool2d(a, k, s, p),
         distinct(2, 2, 5, 6))
    case(f"avg_pool2d-{pool_id}", lambda a, k=kernel_size, s=stride, p=padding: functional.avg_pool2d(a, k, s, p),
         lambda t, a, k=kernel_size, s=stride, p=padding: t.nn.functional.avg_pool2d(a, k, s, p),
         normal(2, 2, 5, 6))
case("linear", functional.linear, lambda t, x, w, b: t.nn.functional.linear(x, w, b), normal(4, 3), normal(5, 3),
     normal(5))
case("linear-batched-no-bias", functional.linear, lambda t, x, w: t.nn.functional.linear(x, w), normal(2, 4, 3),
     normal(5, 3))
for axis in [0, 1, -1]:
    case(f"log_softmax-axis={axis}", lambda a, ax=axis: functional.log_softmax(a, axis=ax),
         lambda t, a, ax=axis: t.nn.functional.log_softmax(a, dim=ax), normal(3, 4, 5))
TARGET = np.array([2, 0, 4, 2])
case("cross_entropy", lambda a: functional.cross_entropy(a, TARGET),
     lambda t, a: t.nn.functional.cross_entropy(a, t.tensor(TARGET)), normal(4, 5))
case("functional.relu", functional.relu, lambda t, a: t.nn.functional.relu(a), away_from_zero(3, 4))

CASE_IDS = [c.id for c in CASES]
assert len(set(CASE_IDS)) == len(CASE_IDS), "case ids must be unique"


def make_inputs(c: Case, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.asarray(make(rng), dtype=np.float64) for make in c.inputs]


@pytest.mark.parametrize("c", CASES, ids=CASE_IDS)
def test_op_gradient_passes_gradcheck(c):
    inputs = [Tensor(a, requires_grad=True) for a in make_inputs(c)]
    assert gradcheck(c.ours, inputs)


@pytest.mark.parametrize("c", CASES, ids=CASE_IDS)
def test_op_forward_and_gradient_match_torch(c, torch):
    arrays = make_inputs(c)
    ours = [Tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, out_t = c.ours(*ours), c.theirs(torch, *theirs)
    assert out.shape == tuple(out_t.shape)
    np.testing.assert_allclose(out.data, out_t.detach().numpy(), **TOL)

    v = np.random.default_rng(1).standard_normal(out.shape)
    (out * v).sum().backward()
    (out_t * torch.tensor(v)).sum().backward()
    for k, (x, x_t) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(x.grad, x_t.grad.numpy(), **TOL, err_msg=f"gradient of input {k}")


# ---------------------------------------------------------------- Pow at zero


def test_pow_with_exponent_zero_has_zero_gradient_even_at_zero(torch):
    x = Tensor([0.0, 2.0], requires_grad=True)
    (x**0).sum().backward()
    x_t = torch.tensor([0.0, 2.0], requires_grad=True)
    (x_t**0).sum().backward()
    np.testing.assert_array_equal(x.grad, x_t.grad.numpy())  # d/dx x⁰ = d/dx 1 = 0, everywhere


def test_relu_gradient_is_zero_at_the_kink_and_passes_at_nan_as_torch(torch):
    values = [-1.0, -0.0, 0.0, 1.0, np.nan, -np.inf, np.inf]
    x = Tensor(values, requires_grad=True)
    x.relu().sum().backward()
    x_t = torch.tensor(values, requires_grad=True)
    x_t.relu().sum().backward()
    np.testing.assert_array_equal(x.grad, x_t.grad.numpy())
    assert x.grad[4] == 1.0  # NaN ≤ 0 is false: the gradient passes, as PyTorch's threshold_backward


# ---------------------------------------------------------------- Max: ties go to the first maximum

TIES = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 0.0, 2.0], [5.0, 5.0, 5.0, 5.0]])


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("keepdims", [False, True])
def test_max_routes_the_gradient_to_the_first_maximum_on_ties_like_torch_max_dim(axis, keepdims, torch):
    x = Tensor(TIES, requires_grad=True)
    out = x.max(axis=axis, keepdims=keepdims)
    v = np.arange(1.0, out.size + 1).reshape(out.shape)
    (out * v).sum().backward()
    x_t = torch.tensor(TIES, requires_grad=True)
    out_t = torch.max(x_t, dim=axis, keepdim=keepdims).values
    (out_t * torch.tensor(v)).sum().backward()
    np.testing.assert_array_equal(out.data, out_t.detach().numpy())
    np.testing.assert_array_equal(x.grad, x_t.grad.numpy())
    assert np.count_nonzero(x.grad) == out.size  # one element per window, even where several tie


def test_max_over_axes_routes_the_gradient_to_the_first_maximum_in_c_order_and_over_all_splits_it():
    x = Tensor(np.array([[[0.0, 7.0], [7.0, 1.0]], [[7.0, 7.0], [2.0, 3.0]]]), requires_grad=True)
    x.max().backward()  # no axis: split among the four 7s, as torch's x.max() (test_engine.py checks against torch)
    expected = np.zeros((2, 2, 2))
    expected[0, 0, 1] = expected[0, 1, 0] = expected[1, 0, 0] = expected[1, 0, 1] = 0.25
    np.testing.assert_array_equal(x.grad, expected)

    x.grad = None
    x.max(axis=(0, 2)).sum().backward()  # for each middle index j: the first maximum of x[:, j, :]
    expected = np.zeros((2, 2, 2))
    expected[0, 0, 1] = 1.0  # j = 0: 7 at (0, 0, 1) before (1, 0, 0) and (1, 0, 1)
    expected[0, 1, 0] = 1.0  # j = 1: 7 at (0, 1, 0)
    np.testing.assert_array_equal(x.grad, expected)


@pytest.mark.parametrize(
    "kernel_size, stride, padding",
    [(2, None, 0), (2, 1, 0), (3, 1, 1), (3, 2, 1), ((2, 3), (1, 2), (1, 1)), (4, 2, 2)],
)
def test_max_pool2d_over_many_tied_zeros_matches_torch_gradient_exactly(kernel_size, stride, padding, torch):
    rng = np.random.default_rng(3)
    data = np.maximum(rng.standard_normal((2, 3, 8, 9)) - 1.0, 0.0)  # ReLU-like: ~84% zeros, many all-zero windows
    data[:, :, :4, :4] = 0.0
    x = Tensor(data, requires_grad=True)
    out = functional.max_pool2d(x, kernel_size, stride, padding)
    v = rng.integers(1, 5, out.shape).astype(np.float64)
    (out * v).sum().backward()
    x_t = torch.tensor(data, requires_grad=True)
    out_t = torch.nn.functional.max_pool2d(x_t, kernel_size, stride, padding)
    (out_t * torch.tensor(v)).sum().backward()
    np.testing.assert_array_equal(out.data, out_t.detach().numpy())
    np.testing.assert_array_equal(x.grad, x_t.grad.numpy())


# ---------------------------------------------------------------- cross-entropy stays finite


@pytest.mark.parametrize(
    ("logits", "target"),
    [
        ([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [-1e4, -1e4, -1e4], [0.0, 1e4, -1e4]], [1, 2, 0, 0]),
        ([[1.0, -np.inf, 0.5], [-np.inf, 2.0, -1.0]], [0, 1]),  # a class ruled out: no 0·(−inf) = NaN
    ],
    ids=["logits of ±1e4", "a logit of -inf"],
)
def test_cross_entropy_with_extreme_logits_is_finite_and_matches_torch(logits, target, torch):
    logits, target = np.array(logits), np.array(target)
    x = Tensor(logits, requires_grad=True)
    loss = functional.cross_entropy(x, target)
    loss.backward()
    x_t = torch.tensor(logits, requires_grad=True)
    loss_t = torch.nn.functional.cross_entropy(x_t, torch.tensor(target))
    loss_t.backward()
    assert np.isfinite(loss.item()) and np.all(np.isfinite(x.grad))
    assert loss.item() == pytest.approx(loss_t.item(), rel=1e-12)
    np.testing.assert_allclose(x.grad, x_t.grad.numpy(), **TOL)


# ---------------------------------------------------------------- hypothesis: broadcasting and short op chains

BINARY = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b, "div": lambda a, b: a / b}


@given(
    shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=3),
    op=st.sampled_from(sorted(BINARY)),
    seed=st.integers(0, 2**16),
)
def test_broadcasting_binary_ops_pass_gradcheck(shapes, op, seed):
    a_shape, b_shape = shapes.input_shapes
    rng = np.random.default_rng(seed)
    a = Tensor(rng.standard_normal(a_shape), requires_grad=True)
    b = Tensor(away_from_zero(*b_shape)(rng), requires_grad=True)
    out = BINARY[op](a, b)
    assert out.shape == shapes.result_shape
    assert gradcheck(BINARY[op], [a, b])
    assert a.grad.shape == a_shape and b.grad.shape == b_shape


# Each step maps |x| <= 2 into |x| <= 2 (pad's 0.5 included), so after any chain the values stay small and
# central differences stay well conditioned (x³ composed four times would reach 1e19 and drown them).
CHAIN_STEPS = {
    "tanh": lambda x: x.tanh(),
    "sigmoid": lambda x: x.sigmoid(),
    "square": lambda x: x * x * 0.5,
    "cube": lambda x: x**3 * 0.25,
    "affine": lambda x: 0.75 * x - 0.25,
    "exp(tanh)": lambda x: x.tanh().exp() - 1.0,
    "log(sigmoid)": lambda x: 0.5 * x.sigmoid().log() + 0.5,
    "divide": lambda x: x / (x * x + 1.0),
    "T": lambda x: x.T,
    "pad": lambda x: x.pad(((1, 0),) * x.ndim, value=0.5),
    "flip": lambda x: x[::-1],
    "repeat-rows": lambda x: x[[0, 0, -1]] if x.ndim else x,
    "flatten": lambda x: x.reshape(-1),
    "center": lambda x: 0.5 * (x - x.mean(axis=0, keepdims=True)) if x.ndim else x,
    "row-means": lambda x: 0.5 * (x + x.mean(axis=-1, keepdims=True)) if x.ndim else x,
}


@given(steps=st.lists(st.sampled_from(sorted(CHAIN_STEPS)), min_size=1, max_size=4), seed=st.integers(0, 2**16))
def test_random_short_op_chains_pass_gradcheck(steps, seed):
    def chain(x):
        for step in steps:
            x = CHAIN_STEPS[step](x)
        return x

    x = Tensor(np.random.default_rng(seed).uniform(-2.0, 2.0, (2, 3)), requires_grad=True)
    assert gradcheck(chain, [x])


# ---------------------------------------------------------------- gradcheck itself


class DoublingMul(ops.Mul):
    """A wrong Mul: its backward doubles both gradients."""

    def backward(self, grad_output, out, a, b):
        return tuple(2 * g for g in super().backward(grad_output, out, a, b))


class OneWrongElementMul(ops.Mul):
    """A wrong Mul: dL/da is off by exactly 1 at a[1, 2] and right everywhere else."""

    def backward(self, grad_output, out, a, b):
        grad_a, grad_b = super().backward(grad_output, out, a, b)
        grad_a = grad_a.copy()
        grad_a[1, 2] += 1.0
        return grad_a, grad_b


class WrongSecondInputMul(ops.Mul):
    def backward(self, grad_output, out, a, b):
        grad_a, grad_b = super().backward(grad_output, out, a, b)
        return grad_a, None if grad_b is None else -grad_b


def two_inputs(names=(None, None)):
    rng = np.random.default_rng(5)
    return [Tensor(rng.standard_normal((2, 3)), requires_grad=True, name=name) for name in names]


def test_gradcheck_returns_true_on_a_correct_function():
    assert gradcheck(lambda a, b: (a * b + a.exp()).tanh() / (b * b + 1.0), two_inputs()) is True


def test_gradcheck_raises_on_a_mul_whose_backward_doubles():
    with pytest.raises(GradcheckError, match=r"gradcheck failed for input 0 .* at index \(\d, \d\): analytic"):
        gradcheck(lambda a, b: Tensor._apply(DoublingMul, a, b), two_inputs())


def test_gradcheck_error_names_the_input_the_index_and_both_values():
    a, b = two_inputs(names=("a", "b"))
    with pytest.raises(GradcheckError) as error:
        gradcheck(lambda a, b: Tensor._apply(OneWrongElementMul, a, b), [a, b])
    message = str(error.value)
    assert "input 0 ('a') of shape (2, 3) at index (1, 2)" in message
    analytic, numeric = (float(s) for s in re.search(r"analytic (\S+), numeric (\S+) ", message).groups())
    v = np.random.default_rng(0).standard_normal((2, 3))  # gradcheck's fixed random weighting (seed 0)
    assert numeric == pytest.approx(v[1, 2] * b.data[1, 2], rel=1e-6)
    assert analytic == pytest.approx(numeric + 1.0, rel=1e-6)


def test_gradcheck_names_the_second_input_when_only_its_gradient_is_wrong():
    with pytest.raises(GradcheckError, match=r"input 1 \('b'\)"):
        gradcheck(lambda a, b: Tensor._apply(WrongSecondInputMul, a, b), two_inputs(names=("a", "b")))


def test_gradcheck_error_is_an_assertion_error():
    assert issubclass(GradcheckError, AssertionError)


def test_gradcheck_leaves_the_inputs_unchanged():
    inputs = two_inputs()
    before = [x.data.copy() for x in inputs]
    gradcheck(lambda a, b: a * b, inputs)
    for x, original in zip(inputs, before):
        np.testing.assert_array_equal(x.data, original)


def test_gradcheck_skips_inputs_that_do_not_require_grad():
    a, b = two_inputs()
    b.requires_grad = False
    assert gradcheck(lambda a, b: Tensor._apply(WrongSecondInputMul, a, b), [a, b])


def test_gradcheck_perturbs_inputs_whose_data_is_not_c_contiguous():
    x = Tensor(np.arange(1.0, 13.0).reshape(3, 4).T, requires_grad=True)  # numpy keeps the transposed layout
    assert gradcheck(lambda x: x * x, [x])


def test_gradcheck_rejects_float32_inputs_and_non_tensors_and_no_grad_inputs():
    with pytest.raises(TypeError, match="float64"):
        gradcheck(lambda x: x * x, [Tensor(np.ones(2, np.float32), requires_grad=True)])
    with pytest.raises(TypeError, match="must be Tensors"):
        gradcheck(lambda x: x * x, [np.ones(2)])
    with pytest.raises(ValueError, match="no input has requires_grad"):
        gradcheck(lambda x: x * x, [Tensor(np.ones(2))])


@pytest.mark.parametrize(
    "returned, name",
    [(lambda x: x.data * 2, "ndarray"), (lambda x: 3.0, "float"), (lambda x: (x, x), "tuple"),
     (lambda x: None, "NoneType")],
    ids=["ndarray", "float", "tuple", "None"],
)
def test_gradcheck_raises_type_error_naming_what_fn_returned_when_it_is_not_a_tensor(returned, name):
    with pytest.raises(TypeError, match=rf"^gradcheck: fn must return a Tensor, got {name}$"):
        gradcheck(returned, [Tensor(np.ones(2), requires_grad=True)])


BAD_GRADCHECK_ARGUMENTS = {
    "fn not callable": (dict(fn=3), TypeError, "fn must be callable, got int"),
    "inputs None": (dict(inputs=None), TypeError, "inputs must be a Tensor or a list/tuple of Tensors, got NoneType"),
    "inputs dict": (dict(inputs={"x": Tensor(np.ones(2), requires_grad=True)}), TypeError, "got dict"),
    "inputs str": (dict(inputs="x"), TypeError, "got str"),
    "float16 input": (dict(inputs=[Tensor(np.ones(2), dtype=np.float16, requires_grad=True)]), TypeError,
                      "must be float64 .* input 0 is float16"),
    "array in list": (dict(inputs=[Tensor(np.ones(2), requires_grad=True), np.ones(2)]), TypeError,
                      "input 1 is ndarray"),
    "empty inputs": (dict(inputs=[]), ValueError, "no input has requires_grad"),
    "eps 0": (dict(eps=0), ValueError, "eps must be finite and > 0, got 0"),
    "eps negative": (dict(eps=-1e-6), ValueError, "eps must be finite and > 0"),
    "eps nan": (dict(eps=float("nan")), ValueError, "eps must be finite and > 0, got nan"),
    "eps str": (dict(eps="1e-6"), TypeError, "eps must be a real number, got str"),
    "atol negative": (dict(atol=-1.0), ValueError, "atol must be finite and >= 0"),
    "rtol nan": (dict(rtol=float("nan")), ValueError, "rtol must be finite and >= 0, got nan"),
    "rtol inf": (dict(rtol=float("inf")), ValueError, "rtol must be finite"),
    "seed float": (dict(seed=1.5), TypeError, "seed must be an int, got float"),
    "seed negative": (dict(seed=-1), ValueError, "seed must be >= 0, got -1"),
}


@pytest.mark.parametrize("problem", BAD_GRADCHECK_ARGUMENTS)
def test_bad_gradcheck_arguments_raise_type_or_value_error_naming_the_argument(problem):
    """Never an AttributeError/IndexError from inside, and never a silent pass (a NaN eps or rtol used to pass)."""
    changes, error, message = BAD_GRADCHECK_ARGUMENTS[problem]
    arguments = dict(fn=lambda x, *rest: x * x * x, inputs=[Tensor(np.ones(2), requires_grad=True)]) | changes
    with pytest.raises(error, match=f"^gradcheck: .*{message}"):
        gradcheck(**arguments)


def test_gradcheck_takes_a_single_tensor_as_inputs_as_pytorch_does():
    x = Tensor(np.array([[0.5, -1.0], [2.0, 1.5]]), requires_grad=True)
    assert gradcheck(lambda x: x * x, x)
    with pytest.raises(GradcheckError, match=r"input 0 of shape \(2, 2\)"):  # the whole tensor, not its rows
        gradcheck(lambda x: Tensor._apply(DoublingMul, x, x), x)


def test_gradcheck_fails_when_fn_cuts_the_graph_and_says_so():
    x = Tensor(np.array([0.5, -1.0]), requires_grad=True)
    with pytest.raises(GradcheckError, match=r"analytic 0, numeric .* does not require grad.*no_grad\(\)"):
        gradcheck(lambda x: Tensor(x.data * 2), [x])
    assert gradcheck(lambda x: Tensor(np.ones(3)), [x])  # a constant's gradient is zero, as PyTorch's gradcheck says


# ---------------------------------------------------------------- bad arguments to the ops

BAD_OP_CALLS = {
    "broadcast mismatch": (lambda t: t + Tensor(np.ones(4)), r"Add of tensors with shapes \(2, 3\) and \(4,\)"),
    "axis out of range": (lambda t: t.max(axis=2), "axis 2 is out of range for a tensor with 2 dimensions"),
    "repeated axis": (lambda t: t.sum(axis=(0, -2)), "repeats an axis"),
    "reshape size": (lambda t: t.reshape(4, -1), r"cannot reshape a tensor of shape \(2, 3\) \(6 elements\)"),
    "two -1 in reshape": (lambda t: t.reshape(-1, -1), "at most one -1"),
    "permute not a reordering": (lambda t: t.permute(0, 0), "reordering of all 2 axes"),
    "pad pairs": (lambda t: t.pad(((1, 0),)), "pad_width must be 2 pairs"),
    "negative pad": (lambda t: t.pad(((1, 0), (0, -1))), "pad_width must be 2 pairs .* >= 0"),
    "matmul 0-d": (lambda t: t @ Tensor(2.0), "at least 1 dimension"),
    "im2col of 2-D": (lambda t: t.im2col((1, 1)), r"4-D input \(N, C, H, W\)"),
    "max of empty": (lambda t: Tensor(np.zeros((0, 3))).max(), "max of an empty tensor"),
}


@pytest.mark.parametrize("problem", BAD_OP_CALLS)
def test_bad_op_arguments_raise_value_error_naming_the_problem(problem):
    call, message = BAD_OP_CALLS[problem]
    with pytest.raises(ValueError, match=message):
        call(Tensor(np.ones((2, 3))))


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: functional.max_pool2d(Tensor(np.ones((1, 1, 4, 4))), 2, padding=2), ValueError, "at most half"),
        (lambda: functional.avg_pool2d(Tensor(np.ones((4, 4))), 2), ValueError, "4-D input"),
        (lambda: functional.cross_entropy(Tensor(np.ones((2, 3))), [0, 3]), ValueError, r"class indices in \[0, 3\)"),
        (lambda: functional.cross_entropy(Tensor(np.ones((2, 3))), np.array([0.0, 1.0])), TypeError, "integer"),
        (lambda: functional.cross_entropy(Tensor(np.ones((2, 3))), [0]), ValueError, r"target must have shape \(2,\)"),
        (lambda: functional.linear(Tensor(np.ones((2, 3))), Tensor(np.ones((4, 2)))), ValueError, "in_features=2"),
    ],
    ids=["pool padding", "pool 2-D", "target range", "float target", "target shape", "linear features"],
)
def test_bad_layer_arguments_raise_an_error_naming_the_problem(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_conv_outputs_stay_batch_last_in_memory_through_bias_relu_and_pad():
    # Unfold's columns are (C, KH, KW, Ho, Wo, N); conv2d's output is a (N, C, H, W) view of (C, H, W, N) memory, and
    # bias, ReLU and Pad keep that order, so the next layer's im2col reads its input without a transposing copy.
    x = Tensor(np.ones((4, 2, 5, 5), np.float32))
    weight, bias = Tensor(np.ones((3, 2, 3, 3), np.float32)), Tensor(np.ones(3, np.float32))
    y = functional.conv2d(x, weight, bias, padding=1).relu()
    padded = y.pad(((0, 0), (0, 0), (1, 1), (1, 1)))
    for t in (y, padded):
        assert t.data.transpose(1, 2, 3, 0).flags.c_contiguous
    assert np.shares_memory(kernels.c_order(padded.data.transpose(1, 2, 3, 0)), padded.data)  # a view, not a copy


def test_a_leaf_gets_its_own_c_order_grad_even_from_batch_last_memory():
    x = Tensor(np.ones((4, 2, 5, 5)), requires_grad=True)
    weight = Tensor(np.ones((3, 2, 3, 3)), requires_grad=True)
    y = functional.conv2d(x, weight, padding=1)
    grad_output = np.ones(y.shape)
    y.backward(grad_output)
    assert x.grad.flags.c_contiguous and weight.grad.flags.c_contiguous
    assert not np.shares_memory(weight.grad, grad_output)
