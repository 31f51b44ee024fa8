"""Reliability (issue 6): the mistakes learners make, extreme numbers, big graphs, non-finite losses in training.

What the other files already prove, and is not repeated here:
  - bad conv2d arguments (wrong ndim, channel mismatch, kernel larger than the padded input, stride/dilation <= 0,
    negative padding, groups not dividing, 'same' with stride > 1, empty batch), matmul mismatch:
    test_conv_exact.py::test_bad_conv_input_raises_an_error_naming_the_problem and ::test_matmul_shape_mismatch_…
  - reshape size, repeated axis, permute(0, 0), pad pairs, max(axis=2) out of range, pooling padding, float / out-of-
    range / wrong-length targets, linear in_features: test_ops.py::test_bad_op_arguments_… and ::test_bad_layer_…
  - complex, object and string data given to Tensor: test_engine.py::test_complex_object_and_string_data_raise_…
  - nn constructor arguments (Conv2d groups not dividing in_channels …), a layer given a wrong input shape:
    test_nn.py::test_constructor_arguments_are_checked_by_name, ::test_a_layer_given_a_wrong_input_shape_…
  - load_state_dict reporting every missing/unexpected key and shape at once: test_nn.py
  - optimizer hyperparameters (lr <= 0 or nan, betas outside [0, 1)) and params (empty, ndarray, no grad, not a
    leaf, repeated): test_optim.py::test_hyperparameters_are_checked_by_name, ::test_params_are_checked
  - atomic save, pickled/object/truncated/corrupt/foreign checkpoints refused: test_serialization.py
  - a 100,000-op chain, a 1,000-term fan-in chain, the graph freed when the loss is dropped, 50 functional conv
    steps without memory growth: test_engine.py
  - cross_entropy of logits ±1e4 and −inf against torch: test_ops.py::test_cross_entropy_with_extreme_logits_…
  - hypothesis: broadcasting pairs for add/sub/mul/div and short elementwise chains with gradcheck (test_ops.py);
    conv2d configurations against closed_form exactly and with gradcheck (test_conv_exact.py), against torch
    (test_closed_form.py).
"""

import re
import tracemalloc
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_conv import Tensor, data, nn, optim, serialization
from tinygrad_conv import functional as F
from tinygrad_conv import train as train_module
from tinygrad_conv.gradcheck import gradcheck
from tinygrad_conv.train import NonFiniteLossError, TrainConfig, train


def ones(*shape, dtype=np.float64):
    return Tensor(np.ones(shape, dtype))


def esc(text):
    return re.escape(text)


# ---------------------------------------------------------------- bad input: argument, expected and given

BAD_INPUTS = {  # problem: (call, error type, regex the message must match)
    # Tensor ops
    "mul of shapes that do not broadcast": (
        lambda: ones(2, 3) * np.ones((3, 2)),
        ValueError, esc("Mul of tensors with shapes (2, 3) and (3, 2): the shapes do not broadcast (aligned from "
                        "the right, each dimension must be equal or 1)")),
    "sub with a complex array": (
        lambda: ones(3) - np.ones(3, complex),
        TypeError, "Tensor data must be real numbers, got dtype complex128"),
    "add with an object array": (
        lambda: ones(3) + np.array([None, 1, 2], object),
        TypeError, "Tensor data must be real numbers, got dtype object"),
    "permute axis out of range": (
        lambda: ones(2, 3).permute(0, 5),
        ValueError, esc("permute needs a reordering of all 2 axes (each in [-2, 2), once), got (0, 5)")),
    "permute negative axis out of range": (
        lambda: ones(2, 3).permute(-3, 0),
        ValueError, esc("all 2 axes (each in [-2, 2), once), got (-3, 0)")),
    "permute float axis": (
        lambda: ones(2, 3).permute(1.0, 0),
        TypeError, esc("permute needs int axes, got (1.0, 0)")),
    "permute of a 0-d tensor": (
        lambda: Tensor(1.0).permute(0),
        ValueError, esc("all 0 axes (each in [0, 0), once), got (0,)")),
    "transpose axis out of range": (
        lambda: ones(2, 3).transpose(0, 5),
        ValueError, esc("transpose(dim0=0, dim1=5): both must be axes of a tensor with 2 dimensions, "
                        "i.e. ints in [-2, 2)")),
    "transpose of a 1-D tensor": (
        lambda: ones(3).transpose(),
        ValueError, esc("transpose(dim0=-2, dim1=-1): both must be axes of a tensor with 1 dimensions")),
    "sum over an out-of-range axis": (
        lambda: ones(2, 3).sum(axis=-3),
        ValueError, esc("Sum of tensors with shapes (2, 3): axis -3 is out of range for a tensor with 2 dimensions")),
    "mean over an out-of-range axis": (
        lambda: ones(2, 3).mean(axis=(0, 5)),
        ValueError, esc("axis (0, 5) is out of range for a tensor with 2 dimensions")),
    "sum over a float axis": (
        lambda: ones(2, 3).sum(axis=1.5),
        TypeError, esc("sum(axis=...): axis must be None, an int or a sequence of ints, got 1.5")),
    "pad with a number": (
        lambda: ones(2, 3).pad(5),
        ValueError, esc("pad_width must be 2 pairs (before, after) of ints >= 0, got 5")),
    "pad with half pairs": (
        lambda: ones(2, 3).pad(((1,), (1,))),
        ValueError, esc("pad_width must be 2 pairs (before, after) of ints >= 0, got ((1,), (1,))")),
    "pad with a string value": (
        lambda: ones(2, 3).pad(((1, 1), (0, 0)), value="x"),
        TypeError, "pad value must be a real number, got 'x'"),
    "im2col kernel larger than the input": (
        lambda: ones(1, 1, 3, 3).im2col((5, 5)),
        ValueError, esc("kernel size 5 (dilated span 5) is larger than the padded input height size 3")),
    "im2col kernel 0": (
        lambda: ones(1, 1, 3, 3).im2col((0, 0)),
        ValueError, esc("kernel_size must be >= 1, got (0, 0)")),
    "backward with a string grad": (
        lambda: (Tensor([1.0], requires_grad=True) * 2).backward("a"),
        TypeError, esc("backward(grad): grad must be an array of numbers shaped like the output (1,), got str 'a'")),
    # functional: conv2d (everything else about conv2d is in test_conv_exact.py)
    "conv2d weight with a zero-size kernel": (
        lambda: F.conv2d(ones(1, 1, 5, 5), ones(1, 1, 0, 3)),
        ValueError, esc("conv2d weight (Cout, Cin/groups, KH, KW) must have every dimension >= 1, "
                        "got shape (1, 1, 0, 3)")),
    "conv2d weight with no output channels": (
        lambda: F.conv2d(ones(1, 1, 5, 5), ones(0, 1, 3, 3)),
        ValueError, esc("must have every dimension >= 1, got shape (0, 1, 3, 3)")),
    "conv2d with no input channels": (
        lambda: F.conv2d(ones(1, 0, 5, 5), ones(1, 0, 3, 3)),
        ValueError, esc("must have every dimension >= 1, got shape (1, 0, 3, 3)")),
    # functional: pooling
    "max_pool2d kernel 0": (
        lambda: F.max_pool2d(ones(1, 1, 4, 4), 0),
        ValueError, "kernel_size must be >= 1, got 0"),
    "max_pool2d kernel a string": (
        lambda: F.max_pool2d(ones(1, 1, 4, 4), "2"),
        TypeError, "kernel_size must be an int or a pair of ints, got '2'"),
    "max_pool2d kernel larger than the input": (
        lambda: F.max_pool2d(ones(1, 1, 4, 4), 5),
        ValueError, esc("kernel size 5 (dilated span 5) is larger than the padded input height size 4 "
                        "(size 4 + padding 0 + 0)")),
    "max_pool2d stride 0": (
        lambda: F.max_pool2d(ones(1, 1, 4, 4), 2, 0),
        ValueError, "stride must be >= 1, got 0"),
    "avg_pool2d negative stride": (
        lambda: F.avg_pool2d(ones(1, 1, 4, 4), 2, (1, -1)),
        ValueError, esc("stride must be >= 1, got (1, -1)")),
    "avg_pool2d padding over half the kernel": (
        lambda: F.avg_pool2d(ones(1, 1, 6, 6), 3, padding=(1, 2)),
        ValueError, esc("padding (1, 2) must be at most half the kernel size (3, 3)")),
    "max_pool2d negative padding": (
        lambda: F.max_pool2d(ones(1, 1, 4, 4), 2, padding=-1),
        ValueError, "padding must be >= 0, got -1"),
    "max_pool2d of a 3-D input": (
        lambda: F.max_pool2d(ones(1, 4, 4), 2),
        ValueError, esc("max-pooling expects a 4-D input (N, C, H, W), got shape (1, 4, 4)")),
    "max_pool2d of an empty batch": (
        lambda: F.max_pool2d(ones(0, 1, 4, 4), 2),
        ValueError, esc("max-pooling got an empty input of shape (0, 1, 4, 4)")),
    # functional: linear, log_softmax, cross_entropy, dropout, flatten
    "linear bias of the wrong shape": (
        lambda: F.linear(ones(2, 3), ones(4, 3), ones(3)),
        ValueError, esc("bias must have shape (4,) (one per output), got (3,)")),
    "linear 1-D weight": (
        lambda: F.linear(ones(2, 3), ones(3)),
        ValueError, esc("linear expects a 2-D weight (out_features, in_features), got shape (3,)")),
    "log_softmax axis out of range": (
        lambda: F.log_softmax(ones(2, 3), axis=2),
        ValueError, esc("log_softmax: axis must be in [-2, 2) for input of shape (2, 3), got 2")),
    "log_softmax axis a float": (
        lambda: F.log_softmax(ones(2, 3), axis=1.0),
        TypeError, "log_softmax: axis must be an int, got 1.0"),
    "conv2d groups a float": (
        lambda: F.conv2d(ones(1, 2, 4, 4), ones(2, 1, 3, 3), groups=2.0),
        TypeError, "groups must be a positive int, got 2.0"),
    "reshape to a float size": (
        lambda: ones(2, 3).reshape(2.5, -1),
        TypeError, esc("reshape needs ints >= 0 and at most one -1, got (2.5, -1)")),
    "cross_entropy negative target": (
        lambda: F.cross_entropy(ones(2, 3), [-1, 0]),
        ValueError, esc("target values must be class indices in [0, 3), got min -1 and max 0")),
    "cross_entropy 2-D target": (
        lambda: F.cross_entropy(ones(2, 3), [[0], [1]]),
        ValueError, esc("target must have shape (2,) (one class index per row of input), got (2, 1)")),
    "cross_entropy one-hot target": (
        lambda: F.cross_entropy(ones(2, 3), np.eye(3)[[0, 1]]),
        ValueError, esc("target must have shape (2,) (one class index per row of input), got (2, 3)")),
    "cross_entropy ragged target": (
        lambda: F.cross_entropy(ones(2, 3), [[0], [1, 2]]),
        ValueError, "target must be 2 class indices, one per row of input, got a ragged list"),
    "cross_entropy bool target": (
        lambda: F.cross_entropy(ones(2, 3), np.array([True, False])),
        TypeError, "target must hold integer class indices, got dtype bool"),
    "cross_entropy float Tensor target": (
        lambda: F.cross_entropy(ones(2, 3), Tensor([0.0, 1.0])),
        TypeError, "target must hold integer class indices, got dtype float64"),
    "cross_entropy empty batch": (
        lambda: F.cross_entropy(ones(0, 3), np.zeros(0, int)),
        ValueError, esc("cross_entropy got an empty batch (N = 0): input shape (0, 3)")),
    "cross_entropy no classes": (
        lambda: F.cross_entropy(ones(2, 0), [0, 0]),
        ValueError, esc("cross_entropy expects logits of shape (N, C) with C >= 1 classes, got shape (2, 0)")),
    "cross_entropy 1-D logits": (
        lambda: F.cross_entropy(ones(3), [0]),
        ValueError, esc("cross_entropy expects logits of shape (N, C) with C >= 1 classes, got shape (3,)")),
    "dropout p a string": (
        lambda: F.dropout(ones(2), "a"),
        TypeError, esc("dropout probability p must be a number in [0, 1), got 'a'")),
    "linear bias of another dtype": (
        lambda: F.linear(ones(2, 3), ones(4, 3), ones(4, dtype=np.float32)),
        TypeError, "bias must have the input's dtype float64, got float32"),
    "flatten start_dim out of range": (
        lambda: F.flatten(ones(2, 3, 4, 5), 5),
        ValueError, esc("flatten: start_dim must be in [-4, 4) for input of shape (2, 3, 4, 5), got 5")),
    "flatten end_dim before start_dim": (
        lambda: F.flatten(ones(2, 3, 4, 5), 2, 1),
        ValueError, "flatten: start_dim 2 comes after end_dim 1 for input of shape"),
    "flatten end_dim a float": (
        lambda: F.flatten(ones(2, 3), 0, 1.0),
        TypeError, "flatten: end_dim must be an int, got 1.0"),
    # nn layers, when called
    "Conv2d given the wrong number of channels": (
        lambda: nn.Conv2d(3, 4, 3, rng=0)(ones(1, 2, 5, 5, dtype=np.float32)),
        ValueError, esc("channel mismatch: input has 2 channels, weight (4, 3, 3, 3) expects 3·groups = 3")),
    "Conv2d given float64 input": (
        lambda: nn.Conv2d(1, 4, 3, rng=0)(ones(1, 1, 5, 5)),
        TypeError, "input and weight must have the same dtype, got float64 and float32"),
    "Linear given float64 input": (
        lambda: nn.Linear(2, 2, rng=0)(ones(3, 2)),
        TypeError, "input and weight must have the same dtype, got float64 and float32"),
    "Linear given a list": (
        lambda: nn.Linear(2, 2, rng=0)([1.0, 2.0]),
        TypeError, "input must be a Tensor or a numpy array, got list"),
    "Flatten start_dim beyond the input": (
        lambda: nn.Flatten(5)(ones(2, 3)),
        ValueError, esc("start_dim must be in [-2, 2) for input of shape (2, 3), got 5")),
    "Flatten end_dim a string": (
        lambda: nn.Flatten(1, "-1"),
        TypeError, "end_dim must be an int, got '-1'"),
    # optimizers
    "optimizer given a model": (
        lambda: optim.SGD(nn.Linear(2, 2, rng=0), lr=0.1),
        TypeError, esc("params must be an iterable of Parameters, got Linear (pass model.parameters())")),
    "optimizer given a model without parameters": (
        lambda: optim.Adam(nn.ReLU().parameters()),
        ValueError, "the optimizer got an empty parameter list"),
    "optimizer given None": (
        lambda: optim.SGD(None, lr=0.1),
        TypeError, "params must be an iterable of Parameters, got NoneType"),
    "optimizer given torch-style param groups": (
        lambda: optim.SGD([{"params": [nn.Parameter([1.0])]}], lr=0.1),
        TypeError, esc("params[0] must be a Parameter, got dict")),
    "Adam given three betas": (
        lambda: optim.Adam([nn.Parameter([1.0])], betas=(0.9, 0.9, 0.9)),
        TypeError, esc("betas must be a pair (beta1, beta2), got (0.9, 0.9, 0.9)")),
    "Adam beta nan": (
        lambda: optim.Adam([nn.Parameter([1.0])], betas=(float("nan"), 0.9)),
        ValueError, esc("betas[0] must be a finite number >= 0, got nan")),
    # save/load
    "save to path None": (
        lambda: serialization.save({"a": np.zeros(1)}, None),
        TypeError, "path must be a str or os.PathLike, got NoneType"),
    "load from path 3": (
        lambda: serialization.load(3),
        TypeError, "path must be a str or os.PathLike, got int: 3"),
}


@pytest.mark.parametrize("problem", BAD_INPUTS)
def test_bad_input_raises_value_or_type_error_naming_argument_expected_and_given(problem):
    call, error, message = BAD_INPUTS[problem]
    with pytest.raises(error, match=message) as info:
        call()
    assert type(info.value) is error  # not numpy's AxisError (an IndexError too) or another subclass


def test_save_into_a_missing_directory_names_the_path_not_a_temporary_file(tmp_path):
    path = tmp_path / "no" / "such" / "model.npz"
    with pytest.raises(FileNotFoundError, match=esc(f"cannot save checkpoint {str(path)!r}: directory "
                                                    f"{str(path.parent)!r} does not exist")):
        serialization.save({"a": np.zeros(1)}, path)


# ---------------------------------------------------------------- numerics at extremes


def test_exp_and_log_at_extremes_give_numpys_inf_and_nan_and_backward_does_not_raise():
    x_values = np.array([1000.0, 0.0, -1000.0])
    z_values = np.array([0.0, 1.0, -1.0])
    with np.errstate(all="ignore"):
        expected_exp, expected_log = np.exp(x_values), np.log(z_values)  # numpy's own answers
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x = Tensor(x_values, requires_grad=True)
        y = x.exp()
        y.sum().backward()
        z = Tensor(z_values, requires_grad=True)
        log_z = z.log()
        log_z.sum().backward()

    np.testing.assert_array_equal(y.data, expected_exp)  # [inf, 1, 0]
    np.testing.assert_array_equal(x.grad, expected_exp)  # d/dx eˣ = eˣ: inf at 1000
    np.testing.assert_array_equal(log_z.data, expected_log)  # [-inf, 0, nan]
    np.testing.assert_array_equal(z.grad, [np.inf, 1.0, -1.0])  # d/dz ln z = 1/z, inf at 0
    assert y.data[0] == np.inf and log_z.data[0] == -np.inf
    assert caught and all(issubclass(w.category, RuntimeWarning) for w in caught)
    messages = " ".join(str(w.message) for w in caught)
    assert "overflow encountered in exp" in messages and "divide by zero encountered in log" in messages


def test_backward_through_inf_gives_nan_like_the_chain_rule_in_numpy():
    x = Tensor([1000.0, 1.0], requires_grad=True)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        out = x.exp().log()  # log(eˣ) = x, but eˣ overflowed: log(inf) = inf
        out.sum().backward()
        expected_grad = (1 / np.exp([1000.0, 1.0])) * np.exp([1000.0, 1.0])  # (1/y)·eˣ = 0·inf = nan at 1000
    np.testing.assert_array_equal(out.data, [np.inf, 1.0])
    np.testing.assert_array_equal(x.grad, expected_grad)
    assert np.isnan(x.grad[0]) and x.grad[1] == pytest.approx(1.0)


EXTREME_LOGITS = np.array([[1e4, -1e4, 0.0, 1e4], [-1e4, -1e4, -1e4, -1e4], [0.0, 1e4, -1e4, 5.0]])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_log_softmax_of_logits_plus_minus_1e4_is_finite_and_matches_torch(axis, torch):
    x = Tensor(EXTREME_LOGITS, requires_grad=True)
    out = F.log_softmax(x, axis=axis)
    v = np.random.default_rng(0).standard_normal(out.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow or invalid value anywhere on the way
        (out * v).sum().backward()
    x_t = torch.tensor(EXTREME_LOGITS, requires_grad=True)
    out_t = torch.nn.functional.log_softmax(x_t, dim=axis)
    (out_t * torch.tensor(v)).sum().backward()
    assert np.all(np.isfinite(out.data)) and np.all(np.isfinite(x.grad))
    np.testing.assert_allclose(out.data, out_t.detach().numpy(), rtol=1e-12, atol=0)
    np.testing.assert_allclose(x.grad, x_t.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("start_dim", "end_dim"), [(0, -1), (1, -1), (1, 2), (0, 0), (-3, -2), (2, 3), (3, 3)])
def test_flatten_start_dim_to_end_dim_matches_torch_flatten_forward_and_backward(start_dim, end_dim, torch):
    x_data = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    x, x_t = Tensor(x_data, requires_grad=True), torch.tensor(x_data, requires_grad=True)
    y, y_t = F.flatten(x, start_dim, end_dim), torch.flatten(x_t, start_dim, end_dim)
    assert y.shape == tuple(y_t.shape)
    np.testing.assert_array_equal(y.data, y_t.detach().numpy())
    weights = np.arange(y.data.size, dtype=np.float64).reshape(y.shape)
    (y * weights).sum().backward()
    (y_t * torch.from_numpy(weights)).sum().backward()
    np.testing.assert_array_equal(x.grad, x_t.grad.numpy())
    assert nn.Flatten(start_dim, end_dim)(Tensor(x_data)).shape == y.shape


def test_float32_log_softmax_and_cross_entropy_stay_finite_and_float32_at_1e4():
    x = Tensor(EXTREME_LOGITS.astype(np.float32), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = F.cross_entropy(x, np.array([1, 2, 3]))
        loss.backward()
        log_probabilities = F.log_softmax(x, axis=1)
    assert loss.dtype == np.float32 and x.grad.dtype == np.float32
    assert np.isfinite(loss.item()) and np.all(np.isfinite(x.grad)) and np.all(np.isfinite(log_probabilities.data))
    # Row 0: target 2e4 below two tied maxima, loss 2e4 + log 2; row 1 uniform, log 4; row 2: 1e4 − 5.
    assert loss.item() == pytest.approx((2e4 + np.log(2) + np.log(4) + (1e4 - 5.0)) / 3, rel=1e-6)


# ---------------------------------------------------------------- empty reduction axes: PyTorch's dim, numpy's axis

TIED = np.array([[1.0, 3.0, 3.0], [0.5, -1.0, 2.0]])  # max 3 twice: shows how a gradient is shared


@pytest.mark.parametrize("reduction", ["sum", "mean", "max"])
def test_an_empty_dim_reduces_every_axis_as_pytorch_in_value_and_gradient(reduction, torch):
    x, x_t = Tensor(TIED, requires_grad=True), torch.tensor(TIED, requires_grad=True)
    out = getattr(x, reduction)(dim=())
    out_t = getattr(x_t, "amax" if reduction == "max" else reduction)(dim=())  # torch's max takes no dim=()
    assert out.shape == () and out.item() == out_t.item()
    (out * 3.0).backward()
    (out_t * 3.0).backward()
    np.testing.assert_array_equal(x.grad, x_t.grad.numpy())  # max: the tied 3s share it, as amax's


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("reduction", ["sum", "mean", "max"])
def test_an_empty_axis_reduces_nothing_as_numpy_and_passes_the_gradient_through(reduction, keepdims):
    x = Tensor(TIED, requires_grad=True)
    out = getattr(x, reduction)(axis=(), keepdims=keepdims)
    np.testing.assert_array_equal(out.data, getattr(np, reduction)(TIED, axis=(), keepdims=keepdims))
    (out * TIED).sum().backward()
    np.testing.assert_array_equal(x.grad, TIED)


@pytest.mark.parametrize("reduction", ["sum", "max"])
def test_an_empty_dim_list_reduces_every_axis_as_pytorch(reduction, torch):
    out_t = getattr(torch.tensor(TIED), "amax" if reduction == "max" else reduction)(dim=[])
    assert getattr(Tensor(TIED), reduction)(dim=[]).data.tolist() == out_t.tolist()


# ---------------------------------------------------------------- big graphs


def test_one_tensor_used_by_1000_products_summed_as_a_balanced_tree_gets_every_contribution():
    x = Tensor(2.0, requires_grad=True)
    ws = [Tensor(float(i % 11) - 5.0, requires_grad=True) for i in range(1000)]
    level = [x * w for w in ws]  # 1000 uses of x: its gradient accumulates 1000 terms
    while len(level) > 1:  # a graph 1000 wide and 10 deep (the other fan-in test is 1000 deep)
        level = [level[i] + level[i + 1] if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
    total = level[0]
    total.backward()
    assert total.item() == 2.0 * sum(float(i % 11) - 5.0 for i in range(1000))
    assert x.grad.item() == sum(w.item() for w in ws)
    assert all(w.grad.item() == 2.0 for w in ws)


def test_30_training_steps_of_a_conv_model_with_sgd_do_not_grow_memory():
    """nn.Conv2d → ReLU → Flatten → Linear → cross_entropy → SGD with momentum; tracemalloc after step 5 and 30.

    Measured here: one step allocates ~190 KB at its peak (its graph and gradients); keeping every step's loss alive
    grows memory by ~180 KB a step (~4.5 MB over these 25 steps); without a leak it grows ~50 KB in a fresh process —
    CPython's free lists of small objects filling up under tracing, which saturates — and less inside pytest.
    """
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, rng=0), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 8 * 8, 10, rng=1))
    optimizer = optim.SGD(list(model.parameters()), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    images = rng.standard_normal((16, 1, 8, 8)).astype(np.float32)
    labels = rng.integers(0, 10, 16)

    def step():
        optimizer.zero_grad()
        loss = F.cross_entropy(model(Tensor(images)), labels)
        loss.backward()
        optimizer.step()

    tracemalloc.start()
    try:
        for _ in range(5):
            step()
        after_5 = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        step()
        one_step = tracemalloc.get_traced_memory()[1] - after_5  # the most a step holds at once
        for _ in range(24):
            step()
        after_30 = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert one_step > 100_000, f"a step should allocate its graph, measured only {one_step} bytes"
    growth = after_30 - after_5
    assert growth < one_step, f"memory grew by {growth} bytes over 25 steps (one step peaks at {one_step} bytes)"


# ---------------------------------------------------------------- NaN/inf losses in train()


@pytest.fixture(scope="module")
def tiny_split():
    x_train, y_train, x_test, y_test = data.load_split()
    return x_train[:64].copy(), y_train[:64].copy(), x_test[:16].copy(), y_test[:16].copy()


def spy_on_batches(monkeypatch, poison=frozenset()):
    """Wrap the minibatches train() draws: put a NaN pixel into each (epoch, batch) in `poison` (both counted from
    1), and return a list that fills with the (epoch, batch) of every batch drawn that holds a NaN."""
    real_batches, epochs, nan_batches = data.batches, [], []

    def batches(*args, **kwargs):
        epochs.append(None)
        for number, (images, labels) in enumerate(real_batches(*args, **kwargs), start=1):
            if (len(epochs), number) in poison:
                images = images.copy()
                images[0, 0, 4, 4] = np.nan
            if np.isnan(images).any():
                nan_batches.append((len(epochs), number))
            yield images, labels

    monkeypatch.setattr(train_module.data, "batches", batches)
    return nan_batches


def test_a_nan_loss_stops_training_naming_the_epoch_and_the_batch(tiny_split, monkeypatch):
    nan_batches = spy_on_batches(monkeypatch, poison={(1, 3)})
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at epoch 1, batch 3\b"):
        train(TrainConfig(epochs=2, batch_size=16, on_nonfinite="stop"), progress=False, log=lambda line: None,
              split=tiny_split)
    assert nan_batches == [(1, 3)]


def test_a_diverging_learning_rate_stops_training_at_the_first_non_finite_loss(tiny_split):
    # Batch 1's loss comes from the initial weights, so it is finite; one step of lr 1e20 overflows float32.
    with np.errstate(over="ignore", invalid="ignore"):
        with pytest.raises(NonFiniteLossError, match=r"loss is (nan|inf) at epoch 1, batch 2\b"):
            train(TrainConfig(epochs=1, batch_size=16, lr=1e20, optimizer="sgd"), progress=False,
                  log=lambda line: None, split=tiny_split)


def test_skip_logs_each_nan_batch_finishes_the_run_and_counts_them(tiny_split, monkeypatch):
    x_train, y_train, x_test, y_test = tiny_split
    x_train = x_train.copy()
    x_train[37, 0, 3, 3] = np.nan  # one bad image in the data: one bad batch in every epoch
    nan_batches = spy_on_batches(monkeypatch)
    lines = []
    result = train(TrainConfig(epochs=2, batch_size=16, on_nonfinite="skip"), progress=False, log=lines.append,
                   split=(x_train, y_train, x_test, y_test))

    assert [epoch for epoch, _ in nan_batches] == [1, 2]
    warnings_logged = [line for line in lines if line.startswith("warning")]
    assert warnings_logged == [f"warning: loss is nan at epoch {e}, batch {b}; batch skipped" for e, b in nan_batches]
    assert result.metrics["skipped_batches"] == 2
    assert [h["epoch"] for h in result.metrics["history"]] == [1, 2]
    assert all(np.isfinite(h["train_loss"]) and h["train_loss"] > 0 for h in result.metrics["history"])
    assert all(np.all(np.isfinite(p.data)) for p in result.model.parameters())  # the NaN never reached the weights


# ---------------------------------------------------------------- hypothesis: pooling, and op chains that move axes


@st.composite
def pool_cases(draw):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))  # torch's limit
    h = draw(st.integers(max(1, kernel[0] - 2 * padding[0]), 6))
    w = draw(st.integers(max(1, kernel[1] - 2 * padding[1]), 6))
    return (draw(st.integers(1, 2)), draw(st.integers(1, 2)), h, w), kernel, stride, padding


@given(case=pool_cases(), kind=st.sampled_from(["max", "avg"]), seed=st.integers(0, 2**16))
def test_random_pooling_matches_torch_and_passes_gradcheck(case, kind, seed, torch):
    shape, kernel, stride, padding = case
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    # Distinct values, at least 0.25 apart: no ties for max-pooling, even under a finite-difference step.
    values = (rng.permutation(size).reshape(shape) - size / 2) * 0.25 + rng.uniform(0, 0.01, shape)
    ours = {"max": F.max_pool2d, "avg": F.avg_pool2d}[kind]
    theirs = {"max": torch.nn.functional.max_pool2d, "avg": torch.nn.functional.avg_pool2d}[kind]

    x = Tensor(values, requires_grad=True)
    out = ours(x, kernel, stride, padding)
    x_t = torch.tensor(values, requires_grad=True)
    out_t = theirs(x_t, kernel, stride, padding)
    np.testing.assert_allclose(out.data, out_t.detach().numpy(), rtol=1e-12, atol=1e-12)
    v = rng.standard_normal(out.shape)
    (out * v).sum().backward()
    (out_t * torch.tensor(v)).sum().backward()
    np.testing.assert_allclose(x.grad, x_t.grad.numpy(), rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda a: ours(a, kernel, stride, padding), [Tensor(values, requires_grad=True)])


@st.composite
def axis_moving_chains(draw):
    """Up to 5 steps on a (2, 3, 4) tensor, each drawn for the shape it will meet: permute, sum over an axis,
    reshape, a broadcast product, or a squashing unary op (so values stay small and differences well conditioned)."""
    shape, steps = (2, 3, 4), []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["permute", "sum", "reshape", "broadcast-mul", "tanh", "sigmoid", "exp(tanh)"]))
        if kind == "permute":
            axes = tuple(draw(st.permutations(range(len(shape)))))
            shape = tuple(shape[a] for a in axes)
            steps.append((kind, axes))
        elif kind == "sum" and len(shape) > 1:
            axis, keepdims = draw(st.integers(-len(shape), len(shape) - 1)), draw(st.booleans())
            shape = np.empty(shape).sum(axis=axis, keepdims=keepdims).shape
            steps.append((kind, (axis, keepdims)))
        elif kind == "reshape":
            size = int(np.prod(shape))
            rows = draw(st.sampled_from([d for d in range(1, size + 1) if size % d == 0]))
            shape = (rows, -1) if draw(st.booleans()) else (rows, size // rows)
            steps.append((kind, shape))
            shape = (rows, size // rows)
        elif kind == "broadcast-mul":
            steps.append((kind, tuple(draw(st.sampled_from([1, n])) for n in shape[-2:])))  # trailing axes or 1
        elif kind in ("tanh", "sigmoid", "exp(tanh)"):
            steps.append((kind, None))
    return steps


def apply_chain(x, steps, factors):
    for (kind, arg), factor in zip(steps, factors):
        if kind == "permute":
            x = x.permute(*arg)
        elif kind == "sum":
            x = x.sum(axis=arg[0], keepdims=arg[1])
        elif kind == "reshape":
            x = x.reshape(arg)
        elif kind == "broadcast-mul":
            x = x * factor
        elif kind == "tanh":
            x = x.tanh()
        elif kind == "sigmoid":
            x = x.sigmoid()
        else:
            x = x.tanh().exp()
    return x


@given(steps=axis_moving_chains(), seed=st.integers(0, 2**16))
def test_random_chains_of_permute_sum_reshape_and_broadcasting_pass_gradcheck(steps, seed):
    rng = np.random.default_rng(seed)
    x = Tensor(rng.uniform(-2.0, 2.0, (2, 3, 4)), requires_grad=True)
    factors = [Tensor(rng.uniform(0.5, 1.5, arg), requires_grad=True) if kind == "broadcast-mul" else None
               for kind, arg in steps]
    inputs = [x] + [f for f in factors if f is not None]

    def chain(x, *used_factors):
        given_factors = iter(used_factors)
        return apply_chain(x, steps, [next(given_factors) if f is not None else None for f in factors])

    assert gradcheck(chain, inputs)


# ---------------------------------------------------------------- process-wide settings


def test_importing_training_or_computing_gradients_never_changes_mallocs_settings():
    import subprocess
    import sys

    # In a fresh interpreter with a fake libc: no part of the library calls mallopt (the engine reuses its large
    # temporaries itself: kernels.empty).
    probe = ("import ctypes, ctypes.util\n"
             "calls = []\n"
             "class Libc:\n"
             "    def __init__(self, *args, **kwargs):\n"
             "        self.mallopt = lambda *args: calls.append(args) or 1\n"
             "ctypes.CDLL = Libc\n"
             "import tinygrad_conv\n"
             "from tinygrad_conv import nn, optim\n"
             "model = nn.Linear(2, 2, rng=0)\n"
             "assert calls == [], calls\n"
             "optim.SGD(model.parameters(), lr=0.1)\n"
             "import numpy as np\n"
             "from tinygrad_conv.train import TrainConfig, train\n"
             "rng = np.random.default_rng(0)\n"
             "images, labels = rng.random((40, 1, 8, 8), np.float32), np.arange(40) % 10\n"
             "train(TrainConfig(epochs=1, batch_size=20), progress=False, log=lambda line: None,\n"
             "      split=(images, labels, images, labels))\n"
             "print(len(calls))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"
