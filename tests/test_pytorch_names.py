"""PyTorch habits that work: dim/keepdim beside axis/keepdims, argmax, view, flatten, softmax, clamp, numel() —
each against PyTorch itself. (`t.size` stays numpy's element count; PyTorch's `size()` is `t.shape` here.)"""

import numpy as np
import pytest

from tinygrad_conv import Tensor, gradcheck, gradgradcheck
from tinygrad_conv import functional as F

X = np.random.default_rng(0).standard_normal((2, 3, 4))


@pytest.mark.parametrize("reduction, torch_name", [("sum", "sum"), ("mean", "mean"), ("max", "amax")])
@pytest.mark.parametrize("dim, keepdim", [(1, False), ((0, 2), True), (-1, True)])
def test_reductions_take_pytorchs_dim_and_keepdim(reduction, torch_name, dim, keepdim, torch):
    ours = getattr(Tensor(X), reduction)(dim=dim, keepdim=keepdim).data
    theirs = getattr(torch.tensor(X), torch_name)(dim=dim, keepdim=keepdim).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    np.testing.assert_array_equal(ours, getattr(Tensor(X), reduction)(dim, keepdim).data)  # numpy's names


def test_both_names_at_once_is_an_error():
    with pytest.raises(TypeError, match="both axis=1 and dim=2"):
        Tensor(X).sum(1, dim=2)
    with pytest.raises(TypeError, match="both keepdims and keepdim"):
        Tensor(X).mean(keepdims=True, keepdim=True)


@pytest.mark.parametrize("dim, keepdim", [(None, False), (0, False), (2, True), (-2, False)])
def test_argmax_matches_torch_and_takes_the_first_maximum(dim, keepdim, torch):
    data = np.array([[[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]], [[5.0, 5.0, 1.0], [0.0, 7.0, 7.0]]])  # ties
    ours = Tensor(data).argmax(dim, keepdim)
    assert ours.dtype == np.int64 and not ours.requires_grad
    np.testing.assert_array_equal(ours.data, torch.tensor(data).argmax(dim=dim, keepdim=keepdim).numpy())


def test_view_flatten_numel_softmax_as_pytorch(torch):
    t, ours = torch.tensor(X), Tensor(X)
    np.testing.assert_array_equal(ours.view(6, 4).data, t.view(6, 4).numpy())
    np.testing.assert_array_equal(ours.flatten(1).data, t.flatten(1).numpy())
    assert ours.shape == tuple(t.size()) and ours.numel() == ours.size == t.numel()
    np.testing.assert_allclose(ours.softmax(dim=1).data, t.softmax(dim=1).numpy(), rtol=1e-12)
    np.testing.assert_allclose(F.softmax(ours, 0).data, torch.nn.functional.softmax(t, 0).numpy(), rtol=1e-12)
    np.testing.assert_allclose(F.log_softmax(ours, dim=2).data, t.log_softmax(dim=2).numpy(), rtol=1e-12)


@pytest.mark.parametrize("low, high", [(-0.5, 0.5), (None, 0.0), (0.0, None), (0.3, 0.3)])
def test_clamp_values_and_gradient_match_torch(low, high, torch):
    data = np.array([-1.0, -0.5, 0.0, 0.3, 0.5, 2.0])  # on and off both bounds
    x, t = Tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
    x.clamp(low, high).backward(np.arange(1.0, 7.0))
    t.clamp(low, high).backward(torch.arange(1.0, 7.0, dtype=torch.float64))
    np.testing.assert_array_equal(x.grad, t.grad.numpy())
    x = Tensor(np.linspace(-1, 1, 7) + 0.01, requires_grad=True)  # away from the kinks
    assert gradcheck(lambda a: a.clamp(-0.5, 0.5) * a, [x]) and gradgradcheck(lambda a: a.clamp(-0.5, 0.5) * a, [x])


def test_clamp_without_bounds_is_an_error():
    with pytest.raises(ValueError, match="clamp needs min, max or both"):
        Tensor(X).clamp()


def test_an_empty_dim_reduces_everything_as_pytorch_and_an_empty_axis_nothing_as_numpy(torch):
    t = torch.tensor(X)
    assert Tensor(X).sum(dim=()).item() == pytest.approx(t.sum(dim=()).item())
    assert Tensor(X).max(dim=()).item() == t.amax(dim=()).item()
    np.testing.assert_array_equal(Tensor(X).sum(axis=()).data, np.sum(X, axis=()))


def test_padding_larger_than_memory_is_refused_before_allocating():
    x = Tensor(np.ones((1, 1, 4, 4)), requires_grad=True)
    with pytest.raises(ValueError, match=r"padding would make an array of shape \(1, 1, 200004, 200004\).*GiB"):
        F.conv2d(x, Tensor(np.ones((1, 1, 3, 3))), padding=100000)
