"""The backward pass as a graph: `grad(..., create_graph=True)` gives gradients that are differentiable again.

Every primitive and every composed layer is checked twice: against central differences of its first derivative
(`gradgradcheck`), and against PyTorch's second derivatives (`torch.autograd.grad(create_graph=True)`) in float64
to 1e-10. The second derivative is taken along random directions: with L = Σ v ⊙ f(x) and G = Σ_k Σ w_k ⊙ dL/dx_k,
dG/dx is the Hessian-vector product H·w of every input.
"""

import numpy as np
import pytest

from tinygrad_conv import Tensor, grad, gradgradcheck, ops
from tinygrad_conv import functional as F
from tinygrad_conv.gradcheck import GradcheckError


def tf(torch):
    return torch.nn.functional


# name: (ours, torch's, input shapes, positive inputs only)
PRIMITIVES = {
    "add (broadcast)": (lambda a, b: a + b, lambda t, a, b: a + b, [(2, 1, 3), (4, 1)], False),
    "sub": (lambda a, b: a - b, lambda t, a, b: a - b, [(3, 4), (4,)], False),
    "mul (broadcast)": (lambda a, b: a * b, lambda t, a, b: a * b, [(2, 3, 4), (3, 1)], False),
    "mul x·x": (lambda a: a * a * a, lambda t, a: a * a * a, [(3, 2)], False),
    "div": (lambda a, b: a / b, lambda t, a, b: a / b, [(3, 4), (3, 4)], True),
    "matmul": (lambda a, b: a @ b, lambda t, a, b: a @ b, [(3, 4), (4, 5)], False),
    "matmul batched": (lambda a, b: a @ b, lambda t, a, b: a @ b, [(2, 3, 4), (4, 2)], False),
    "matmul vector·matrix": (lambda a, b: a @ b, lambda t, a, b: a @ b, [(4,), (2, 4, 3)], False),
    "matmul matrix·vector": (lambda a, b: (a @ b).tanh(), lambda t, a, b: (a @ b).tanh(), [(3, 4), (4,)], False),
    "neg": (lambda a: -(a * a), lambda t, a: -(a * a), [(3,)], False),
    "pow 2.5": (lambda a: a**2.5, lambda t, a: a**2.5, [(2, 3)], True),
    "pow -1": (lambda a: a**-1.0, lambda t, a: a**-1.0, [(2, 3)], True),
    "pow 0": (lambda a: a**0 * a, lambda t, a: a**0 * a, [(2, 3)], False),
    "exp": (lambda a: a.exp(), lambda t, a: a.exp(), [(2, 3)], False),
    "log": (lambda a: a.log(), lambda t, a: a.log(), [(2, 3)], True),
    "relu": (lambda a: a.relu() * a, lambda t, a: a.relu() * a, [(3, 4)], False),
    "tanh": (lambda a: a.tanh(), lambda t, a: a.tanh(), [(3, 4)], False),
    "sigmoid": (lambda a: a.sigmoid(), lambda t, a: a.sigmoid(), [(3, 4)], False),
    "sum axis": (lambda a: a.sum(axis=1) ** 2, lambda t, a: a.sum(dim=1) ** 2, [(3, 4, 2)], False),
    "sum keepdims": (lambda a: (a.sum(axis=(0, 2), keepdims=True) * a).exp(),
                     lambda t, a: (a.sum(dim=(0, 2), keepdim=True) * a).exp(), [(2, 3, 2)], False),
    "mean": (lambda a: a.mean(axis=0) ** 3, lambda t, a: a.mean(dim=0) ** 3, [(4, 3)], False),
    "max axis": (lambda a: a.max(axis=1) ** 2, lambda t, a: a.amax(dim=1) ** 2, [(3, 5)], False),
    "max all": (lambda a: a.max() * a, lambda t, a: a.max() * a, [(3, 5)], False),
    "reshape": (lambda a: a.reshape(4, 3).tanh(), lambda t, a: a.reshape(4, 3).tanh(), [(2, 6)], False),
    "permute": (lambda a: a.permute(2, 0, 1) * a.permute(2, 0, 1).sum(),
                lambda t, a: a.permute(2, 0, 1) * a.permute(2, 0, 1).sum(), [(2, 3, 4)], False),
    "pad": (lambda a: a.pad(((1, 2), (0, 1)), value=0.5).tanh(),
            lambda t, a: tf(t).pad(a, (0, 1, 1, 2), value=0.5).tanh(), [(3, 4)], False),
    "index basic": (lambda a: a[1:, ::2].exp(), lambda t, a: a[1:, ::2].exp(), [(3, 5)], False),
    "index repeats": (lambda a: a[[0, 0, 2]] ** 2, lambda t, a: a[[0, 0, 2]] ** 2, [(3, 4)], False),
    "unfold": (lambda x: F.unfold(x, 2, dilation=(1, 2), padding=1, stride=(2, 1)).tanh(),
               lambda t, x: tf(t).unfold(x, 2, dilation=(1, 2), padding=1, stride=(2, 1)).tanh(),
               [(2, 2, 4, 5)], False),
    "fold": (lambda c: F.fold(c, (5, 6), 2, padding=1, stride=2).tanh(),
             lambda t, c: tf(t).fold(c, (5, 6), 2, padding=1, stride=2).tanh(), [(2, 12, 12)], False),
}


def inputs_for(shapes, positive, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.uniform(0.5, 2.0, s) if positive else rng.standard_normal(s) for s in shapes]


def ours_second(fn, arrays, v, ws):
    xs = [Tensor(a, requires_grad=True) for a in arrays]
    firsts = grad(fn(*xs), xs, Tensor(v), create_graph=True, allow_unused=True)
    total = sum(((g * w).sum() for g, w in zip(firsts, ws) if g is not None), Tensor(0.0))
    seconds = grad(total, xs, allow_unused=True) if total.requires_grad else [None] * len(xs)
    return ([np.zeros(a.shape) if g is None else g.data for g, a in zip(firsts, arrays)],
            [np.zeros(a.shape) if g is None else g.data for g, a in zip(seconds, arrays)])


def torch_second(torch, fn, arrays, v, ws):
    xs = [torch.tensor(a, requires_grad=True) for a in arrays]
    firsts = torch.autograd.grad(fn(torch, *xs), xs, torch.tensor(v), create_graph=True, allow_unused=True)
    total = sum(((g * torch.tensor(w)).sum() for g, w in zip(firsts, ws) if g is not None), torch.tensor(0.0))
    seconds = torch.autograd.grad(total, xs, allow_unused=True) if total.requires_grad else [None] * len(xs)
    return ([np.zeros(a.shape) if g is None else g.detach().numpy() for g, a in zip(firsts, arrays)],
            [np.zeros(a.shape) if g is None else g.numpy() for g, a in zip(seconds, arrays)])


def assert_second_derivatives_match_torch(torch, ours, theirs, arrays, seed=1):
    rng = np.random.default_rng(seed)
    out_shape = ours(*[Tensor(a) for a in arrays]).shape
    v, ws = rng.standard_normal(out_shape), [rng.standard_normal(a.shape) for a in arrays]
    first, second = ours_second(ours, arrays, v, ws)
    torch_first, torch_second_ = torch_second(torch, theirs, arrays, v, ws)
    for mine, reference in zip(first + second, torch_first + torch_second_):
        np.testing.assert_allclose(mine, reference, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", PRIMITIVES)
def test_every_primitive_is_twice_differentiable_as_central_differences_say(name):
    ours, _, shapes, positive = PRIMITIVES[name]
    assert gradgradcheck(ours, [Tensor(a, requires_grad=True) for a in inputs_for(shapes, positive)])


@pytest.mark.parametrize("name", PRIMITIVES)
def test_every_primitive_second_derivative_matches_torch(name, torch):
    ours, theirs, shapes, positive = PRIMITIVES[name]
    assert_second_derivatives_match_torch(torch, ours, theirs, inputs_for(shapes, positive))


@pytest.mark.parametrize("op_type, arguments, shape", [
    (ops.Expand, {"shape": (4, 2, 3)}, (2, 1)), (ops.SumTo, {"shape": (2, 1)}, (4, 2, 3)),
    (ops.Crop, {"pad_width": ((1, 0), (2, 1))}, (4, 5)),
    (ops.Scatter, {"index": ([0, 2, 0],), "shape": (4, 3)}, (3, 3)),
    (ops.Fold, {"output_size": (4, 5), "kernel_size": (2, 2), "stride": (1, 2), "dilation": (1, 1)},
     (2, 2, 2, 3, 2, 1)),
])
def test_the_adjoint_ops_are_twice_differentiable(op_type, arguments, shape):
    """The ops that only backward passes use directly, each through its adjoint (a linear op: H = 0, and the
    first derivative of the first derivative must be checked too)."""
    x = Tensor(np.random.default_rng(0).standard_normal(shape), requires_grad=True)
    assert gradgradcheck(lambda t: Tensor._apply(op_type, t, **arguments).tanh(), [x])


COMPOSED = {
    "conv2d": (lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1).tanh(),
               lambda t, x, w, b: tf(t).conv2d(x, w, b, stride=2, padding=1).tanh(),
               [(2, 3, 5, 5), (4, 3, 3, 3), (4,)]),
    "conv_transpose2d": (lambda x, w, b: F.conv_transpose2d(x, w, b, 2, 1, 1, 2, 1).tanh(),
                         lambda t, x, w, b: tf(t).conv_transpose2d(x, w, b, 2, 1, 1, 2, 1).tanh(),
                         [(2, 4, 3, 3), (4, 3, 3, 3), (6,)]),
    "max_pool2d": (lambda x: F.max_pool2d(x, 2, 1, 1) ** 2, lambda t, x: tf(t).max_pool2d(x, 2, 1, 1) ** 2,
                   [(2, 2, 4, 4)]),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 3, 2, 1) ** 2, lambda t, x: tf(t).avg_pool2d(x, 3, 2, 1) ** 2,
                   [(2, 2, 5, 5)]),
    "linear": (lambda x, w, b: F.linear(x, w, b).sigmoid(), lambda t, x, w, b: tf(t).linear(x, w, b).sigmoid(),
               [(3, 4), (2, 4), (2,)]),
    "log_softmax": (lambda x: F.log_softmax(x, axis=1), lambda t, x: tf(t).log_softmax(x, dim=1), [(3, 5)]),
    "cross_entropy": (lambda x: F.cross_entropy(x, np.array([1, 0, 4])),
                      lambda t, x: tf(t).cross_entropy(x, t.tensor([1, 0, 4])), [(3, 5)]),
}


@pytest.mark.parametrize("name", COMPOSED)
def test_composed_layers_second_derivatives_match_torch_and_central_differences(name, torch):
    ours, theirs, shapes = COMPOSED[name]
    arrays = inputs_for(shapes, positive=False, seed=3)
    assert_second_derivatives_match_torch(torch, ours, theirs, arrays)
    assert gradgradcheck(ours, [Tensor(a, requires_grad=True) for a in arrays])


# ---------------------------------------------------------------- grad(), as torch.autograd.grad


def test_grad_returns_gradients_and_leaves_dot_grad_untouched():
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = (x * x).sum()
    (dx,) = grad(y, x)
    np.testing.assert_array_equal(dx.data, [2.0, 4.0, 6.0])
    assert x.grad is None and not dx.requires_grad


def test_hessian_vector_product_of_a_cubic():
    """f = Σ x³: H = diag(6x), so H·w = 6·x·w."""
    x = Tensor([1.0, -2.0, 0.5], requires_grad=True)
    w = np.array([1.0, 2.0, 3.0])
    (dx,) = grad((x**3).sum(), x, create_graph=True)
    assert dx.requires_grad
    (hw,) = grad((dx * w).sum(), x)
    np.testing.assert_allclose(hw.data, 6 * x.data * w)


def test_gradient_penalty_trains_through_the_input_gradient(torch):
    """A WGAN-GP-style penalty: ‖dL/dx‖² differentiated with respect to the weights, against PyTorch."""
    rng = np.random.default_rng(0)
    x_np, w_np = rng.standard_normal((2, 1, 5, 5)), rng.standard_normal((3, 1, 3, 3))
    x, w = Tensor(x_np, requires_grad=True), Tensor(w_np, requires_grad=True)
    (dx,) = grad(F.conv2d(x, w, padding=1).relu().sum(), x, create_graph=True)
    (dw,) = grad((dx * dx).sum(), w)
    tx, tw = torch.tensor(x_np, requires_grad=True), torch.tensor(w_np, requires_grad=True)
    (tdx,) = torch.autograd.grad(tf(torch).conv2d(tx, tw, padding=1).relu().sum(), tx, create_graph=True)
    (tdw,) = torch.autograd.grad((tdx * tdx).sum(), tw)
    np.testing.assert_allclose(dw.data, tdw.numpy(), rtol=1e-10, atol=1e-10)


def test_grad_of_several_outputs_sums_them_with_their_grad_outputs():
    x = Tensor([1.0, 2.0], requires_grad=True)
    (dx,) = grad([x * 3, x * x], [x], grad_outputs=[np.ones(2), np.array([1.0, -1.0])])
    np.testing.assert_array_equal(dx.data, [3 + 2, 3 - 4])


def test_grad_of_an_unused_input_is_an_error_naming_it_unless_allowed():
    x, unused = Tensor(1.0, requires_grad=True), Tensor(2.0, requires_grad=True, name="unused")
    with pytest.raises(ValueError, match=r"input 1 \('unused'.*not used to compute the outputs.*allow_unused"):
        grad(x * 2, [x, unused])
    dx, du = grad(x * 2, [x, unused], allow_unused=True)
    assert dx.item() == 2.0 and du is None


@pytest.mark.parametrize("call, error, message", [
    (lambda x: grad(x * 2, Tensor(1.0)), ValueError, "input 0 .* does not require grad"),
    (lambda x: grad(Tensor(1.0) * 2, x), ValueError, "output 0 .* does not require grad"),
    (lambda x: grad(x * 2, x, grad_outputs=[None, None]), ValueError, "2 grad_outputs for 1 outputs"),
    (lambda x: grad(x * 2, "x"), TypeError, "inputs must be a Tensor"),
    (lambda x: grad(x * np.ones(3), x), ValueError, "one-element output, got shape \\(3,\\)"),
    (lambda x: grad(x * np.ones(3), x, np.ones(2)), ValueError, "grad has shape \\(2,\\), expected the output's"),
])
def test_bad_grad_calls_raise_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call(Tensor(1.0, requires_grad=True))


def test_gradgradcheck_catches_a_wrong_second_derivative():
    """A Tanh whose backward is right on arrays but builds the wrong graph on Tensors: 1 − y instead of 1 − y²
    through its output."""

    class WrongGraphTanh(ops.Tanh):
        def backward(self, g, out, a):
            if isinstance(g, np.ndarray):
                return super().backward(g, out, a)
            return (g * (1 - out * out.detach() * 2 + out * out.detach()),)  # same value, wrong derivative

    x = Tensor(np.linspace(-1, 1, 5), requires_grad=True)
    with pytest.raises(GradcheckError):
        gradgradcheck(lambda t: Tensor._apply(WrongGraphTanh, t), [x])
    assert gradgradcheck(lambda t: t.tanh(), [x])


def test_the_backward_of_a_conv_is_a_graph_of_matmul_fold_and_crop():
    """dL/dX = crop(fold(Wᵀ · dL/dY)) and dL/dW = dL/dY · colsᵀ, as ops one can walk."""
    x = Tensor(np.ones((1, 1, 3, 3)), requires_grad=True)
    w = Tensor(np.ones((1, 1, 2, 2)), requires_grad=True)
    dx, dw = grad(F.conv2d(x, w, padding=1).sum(), [x, w], create_graph=True)
    assert dx.op.name == "Crop" and dx.parents[0].op.name == "Fold"
    below_fold = dx.parents[0].parents[0]
    while below_fold.op.name != "MatMul":
        below_fold = below_fold.parents[0]
    assert below_fold.parents[0].op.name == "Permute"  # Wᵀ
    names = set()
    stack = [dw]
    while stack:
        t = stack.pop()
        if t.op is not None:
            names.add(t.op.name)
            stack.extend(t.parents)
    assert "MatMul" in names and "Unfold" in names  # dL/dY · colsᵀ, cols = im2col(pad(X))


# ---------------------------------------------------------------- backward(inputs=...)


def test_backward_with_inputs_fills_only_theirs_as_pytorch(torch):
    rng = np.random.default_rng(0)
    x_, w_, b_ = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    x, w, b = (Tensor(a, requires_grad=True) for a in (x_, w_, b_))
    hidden = F.conv2d(x, w, b, padding=1)
    loss = (hidden.relu() * hidden).sum()
    loss.backward(inputs=[w, b])
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x_, w_, b_))
    t_hidden = torch.nn.functional.conv2d(tx, tw, tb, padding=1)
    (t_hidden.relu() * t_hidden).sum().backward(inputs=[tw, tb])
    np.testing.assert_allclose(w.grad, tw.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(b.grad, tb.grad.numpy(), rtol=1e-10, atol=1e-10)
    assert x.grad is None and tx.grad is None and hidden.grad is None and loss.grad is None


def test_backward_with_inputs_refuses_what_needs_no_gradient():
    x, c = Tensor([1.0, 2.0], requires_grad=True), Tensor([3.0, 4.0])
    with pytest.raises(ValueError, match=r"backward\(inputs\): input 1 .*does not require grad"):
        (x * c).sum().backward(inputs=[x, c])
    with pytest.raises(TypeError, match=r"backward\(inputs\) must be a Tensor"):
        (x * c).sum().backward(inputs="x")
