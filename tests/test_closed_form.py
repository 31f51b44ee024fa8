"""closed_form: the hand-derived conv2d backward pass, checked against PyTorch in float64 and by adjoint identities.

The grid covers batch 1–3, channels 1–6, kernels 1×1 to 5×5 (even and non-square), stride 1–3 (including sizes
where the last rows get no window), int / pair / per-side / 'same' / 'valid' padding, dilation 1–2 and
groups 1, 2 and depthwise. Per-side padding, which torch's functions do not take, is applied with F.pad first.
"""

import ast
import importlib.util
import re
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tinygrad_conv import closed_form, functional, ops
from tinygrad_conv.closed_form import col2im, conv2d, conv2d_input_grad, conv2d_weight_grad, im2col
from tinygrad_conv.conv_args import pair, resolve_padding
from tinygrad_conv.tensor import Tensor

TOL = {"atol": 1e-10, "rtol": 1e-10}


# ---------------------------------------------------------------- the grid


def _case(n: int, c_in: int, c_out: int, hw: tuple[int, int], kernel: tuple[int, int], stride=1, padding=0,
          dilation=1, groups: int = 1) -> dict:
    return {"n": n, "c_in": c_in, "c_out": c_out, "hw": hw, "kernel": kernel, "stride": stride,
            "padding": padding, "dilation": dilation, "groups": groups}


def conv_grid() -> Iterator[dict]:
    """~100 deterministic conv2d configurations; batch and channel counts rotate so every value appears."""
    kernels = [(1, 1), (2, 2), (3, 3), (5, 5), (2, 3), (4, 1), (3, 2)]
    index = 0

    def batch() -> int:
        return index % 3 + 1

    for kernel in kernels:  # every kernel at every stride, on a size no stride divides evenly
        for stride in (1, 2, 3):
            yield _case(batch(), index % 6 + 1, (index + 2) % 6 + 1, (8, 7), kernel, stride)
            index += 1
    paddings = [1, 2, (1, 0), (0, 2), ((1, 0), (0, 2)), ((0, 2), (3, 1)), ((2, 1), (1, 1)), "valid", "same"]
    for padding in paddings:
        for kernel in ((3, 3), (2, 3)):
            for stride in (1, 2):
                if padding == "same" and stride != 1:
                    continue
                yield _case(batch(), 2, 3, (6, 9), kernel, stride, padding)
                index += 1
    for kernel in ((2, 2), (4, 4), (3, 3), (2, 3), (1, 4)):  # 'same': even kernels pad one more bottom/right
        for dilation in (1, 2, (2, 1)):
            yield _case(batch(), 3, 2, (7, 8), kernel, 1, "same", dilation)
            index += 1
    for dilation in ((2, 2), (1, 2), (2, 1)):
        for kernel in ((3, 3), (2, 3)):
            for stride in (1, 2):
                yield _case(batch(), 2, 2, (9, 8), kernel, stride, 1, dilation)
                index += 1
    for c_in, c_out, groups in ((4, 6, 2), (2, 2, 2), (6, 4, 2), (3, 6, 3), (1, 2, 1), (4, 8, 4)):
        # groups 2 and depthwise (groups = Cin, Cout = 2·Cin)
        for kernel, stride, padding, dilation in (((3, 3), 1, 1, 1), ((2, 3), 2, ((1, 0), (0, 2)), 1),
                                                  ((3, 2), 3, 0, 2)):
            yield _case(batch(), c_in, c_out, (8, 8), kernel, stride, padding, dilation, groups)
            index += 1
    # The last rows/columns get no window: H=8, k=3, s=3; and padding after that the remainder only partly eats.
    yield _case(2, 2, 3, (8, 8), (3, 3), 3)
    yield _case(1, 1, 2, (5, 7), (1, 2), 2, ((0, 1), (0, 3)))
    yield _case(3, 2, 2, (7, 7), (2, 2), 3, ((1, 2), (2, 0)))
    yield _case(1, 3, 1, (4, 4), (3, 3), (3, 2), ((0, 0), (1, 1)), (1, 2))


GRID = list(conv_grid())
GRID_IDS = [
    f"n{c['n']}-c{c['c_in']}to{c['c_out']}-hw{c['hw'][0]}x{c['hw'][1]}-k{c['kernel'][0]}x{c['kernel'][1]}"
    f"-s{c['stride']}-p{c['padding']}-d{c['dilation']}-g{c['groups']}".replace(" ", "")
    for c in GRID
]
grid = pytest.mark.parametrize("case", GRID, ids=GRID_IDS)


def _arrays(case: dict, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """x, weight, bias and the conv keyword arguments of one case (seeded, float64)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((case["n"], case["c_in"], *case["hw"]))
    weight = rng.standard_normal((case["c_out"], case["c_in"] // case["groups"], *case["kernel"]))
    bias = rng.standard_normal(case["c_out"])
    conv_args = {k: case[k] for k in ("stride", "padding", "dilation", "groups")}
    return x, weight, bias, conv_args


def _per_side(case_or_args: dict) -> tuple[tuple[int, int], tuple[int, int]]:
    kernel = pair(case_or_args["kernel"], "kernel_size")
    return resolve_padding(case_or_args["padding"], kernel, pair(case_or_args["stride"], "stride"),
                           pair(case_or_args["dilation"], "dilation"))


def _torch_padding(torch, x_t, case: dict):
    """(input, padding) in a form torch takes: symmetric padding as a pair, anything else pre-applied by F.pad."""
    (top, bottom), (left, right) = _per_side(case)
    if top == bottom and left == right:
        return x_t, (top, left)
    return torch.nn.functional.pad(x_t, (left, right, top, bottom)), 0


def _crop(array: np.ndarray, case: dict) -> np.ndarray:
    (top, _), (left, _) = _per_side(case)
    h, w = case["hw"]
    return array[..., top: top + h, left: left + w]


# ---------------------------------------------------------------- against PyTorch, over the grid


@grid
def test_im2col_matches_torch_unfold(torch, case):
    x, *_ = _arrays(case, seed=1)
    x_t, padding = _torch_padding(torch, torch.tensor(x), case)
    expected = torch.nn.functional.unfold(x_t, case["kernel"], dilation=case["dilation"], padding=padding,
                                          stride=case["stride"])
    cols = im2col(x, kernel_size=case["kernel"], stride=case["stride"], padding=case["padding"],
                  dilation=case["dilation"])
    assert cols.shape == tuple(expected.shape)
    np.testing.assert_allclose(cols, expected.numpy(), **TOL)


@grid
def test_col2im_matches_torch_fold(torch, case):
    x, *_ = _arrays(case, seed=2)
    kh, kw = case["kernel"]
    n_windows = im2col(x, kernel_size=case["kernel"], stride=case["stride"], padding=case["padding"],
                       dilation=case["dilation"]).shape[2]
    cols = np.random.default_rng(3).standard_normal((case["n"], case["c_in"] * kh * kw, n_windows))
    (top, bottom), (left, right) = _per_side(case)
    h, w = case["hw"]
    # fold into the padded size with no padding, then crop: the same as fold's own padding, but per side.
    folded = torch.nn.functional.fold(torch.tensor(cols), (h + top + bottom, w + left + right), case["kernel"],
                                      dilation=case["dilation"], padding=0, stride=case["stride"])
    result = col2im(cols, case["hw"], kernel_size=case["kernel"], stride=case["stride"], padding=case["padding"],
                    dilation=case["dilation"])
    assert result.shape == x.shape
    np.testing.assert_allclose(result, _crop(folded.numpy(), case), **TOL)


@grid
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths:UserWarning")
def test_conv2d_matches_torch(torch, case):
    x, weight, bias, conv_args = _arrays(case, seed=4)
    if isinstance(case["padding"], str):  # torch resolves 'same'/'valid' itself: checks our convention
        x_t, padding = torch.tensor(x), case["padding"]
    else:
        x_t, padding = _torch_padding(torch, torch.tensor(x), case)
    expected = torch.nn.functional.conv2d(x_t, torch.tensor(weight), torch.tensor(bias), stride=case["stride"],
                                          padding=padding, dilation=case["dilation"], groups=case["groups"])
    y = conv2d(x, weight, bias, **conv_args)
    assert y.shape == tuple(expected.shape)
    np.testing.assert_allclose(y, expected.numpy(), **TOL)


def _torch_grads(torch, case: dict, x: np.ndarray, weight: np.ndarray, grad_output: np.ndarray):
    """(dL/dX, dL/dW) from torch: torch.nn.grad for symmetric padding, else autograd through F.pad + F.conv2d."""
    (top, bottom), (left, right) = _per_side(case)
    x_t, w_t, dy_t = torch.tensor(x), torch.tensor(weight), torch.tensor(grad_output)
    args = {"stride": case["stride"], "dilation": case["dilation"], "groups": case["groups"]}
    if top == bottom and left == right:
        padding = (top, left)
        grad_x = torch.nn.grad.conv2d_input(x_t.shape, w_t, dy_t, padding=padding, **args)
        grad_w = torch.nn.grad.conv2d_weight(x_t, w_t.shape, dy_t, padding=padding, **args)
        return grad_x.numpy(), grad_w.numpy()
    x_t.requires_grad_(True)
    w_t.requires_grad_(True)
    if case["padding"] == "same":
        y = torch.nn.functional.conv2d(x_t, w_t, padding="same", **args)
    else:
        y = torch.nn.functional.conv2d(torch.nn.functional.pad(x_t, (left, right, top, bottom)), w_t, **args)
    y.backward(dy_t)
    return x_t.grad.numpy(), w_t.grad.numpy()


def _grad_output(case: dict, x: np.ndarray, weight: np.ndarray, conv_args: dict, seed: int) -> np.ndarray:
    shape = conv2d(x, weight, **conv_args).shape
    return np.random.default_rng(seed).standard_normal(shape)


@grid
def test_weight_grad_matches_torch(torch, case):
    x, weight, _, conv_args = _arrays(case, seed=5)
    grad_output = _grad_output(case, x, weight, conv_args, seed=6)
    _, expected = _torch_grads(torch, case, x, weight, grad_output)
    grad_w = conv2d_weight_grad(x, weight.shape, grad_output, **conv_args)
    assert grad_w.shape == weight.shape
    np.testing.assert_allclose(grad_w, expected, **TOL)


@grid
def test_input_grad_matches_torch(torch, case):
    x, weight, _, conv_args = _arrays(case, seed=7)
    grad_output = _grad_output(case, x, weight, conv_args, seed=8)
    expected, _ = _torch_grads(torch, case, x, weight, grad_output)
    grad_x = conv2d_input_grad(x.shape, weight, grad_output, **conv_args)
    assert grad_x.shape == x.shape
    np.testing.assert_allclose(grad_x, expected, **TOL)


def test_grid_covers_the_promised_configurations():
    assert 60 <= len(GRID) <= 120
    assert {c["n"] for c in GRID} == {1, 2, 3}
    assert {c["c_in"] for c in GRID} | {c["c_out"] for c in GRID} >= set(range(1, 7))
    assert {(1, 1), (5, 5), (2, 3), (4, 1)} <= {c["kernel"] for c in GRID}
    assert {1, 2, 3} <= {c["stride"] for c in GRID}
    assert {0, 1, (1, 0), ((1, 0), (0, 2)), "same", "valid"} <= {c["padding"] for c in GRID}
    assert any(c["padding"] == "same" and c["kernel"] == (2, 2) and c["dilation"] == 2 for c in GRID)
    assert any(c["groups"] == c["c_in"] > 1 and c["c_out"] == 2 * c["c_in"] for c in GRID)  # depthwise


# ---------------------------------------------------------------- a property test against PyTorch


@st.composite
def conv_configs(draw) -> dict:
    """A random valid conv2d: sizes bounded, windows fitting the padded input."""
    groups = draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    side = st.integers(0, 3)
    padding = ((draw(side), draw(side)), (draw(side), draw(side)))
    hw = (draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    for size, (before, after), k, d in zip(hw, padding, kernel, dilation):
        assume(size + before + after >= d * (k - 1) + 1)
    return _case(draw(st.integers(1, 2)), groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2)), hw,
                 kernel, stride, padding, dilation, groups)


@given(case=conv_configs(), seed=st.integers(0, 2**32 - 1))
def test_gradients_match_torch_for_random_valid_configurations(torch, case, seed):
    x, weight, _, conv_args = _arrays(case, seed)
    grad_output = _grad_output(case, x, weight, conv_args, seed + 1)
    expected_x, expected_w = _torch_grads(torch, case, x, weight, grad_output)
    np.testing.assert_allclose(conv2d_input_grad(x.shape, weight, grad_output, **conv_args), expected_x, **TOL)
    np.testing.assert_allclose(conv2d_weight_grad(x, weight.shape, grad_output, **conv_args), expected_w, **TOL)


# ---------------------------------------------------------------- the pitfalls, one test each


def test_input_grad_is_full_conv_with_flipped_kernel():
    # A 3×3 image, kernel [[1, 2], [3, 4]], dL/dY all ones: dL/dX is the full convolution of the ones with the
    # kernel, i.e. every pixel sums the kernel entries whose window covers it.
    weight = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    grad_x = conv2d_input_grad((1, 1, 3, 3), weight, np.ones((1, 1, 2, 2)))
    np.testing.assert_array_equal(grad_x[0, 0], [[1, 3, 2], [4, 10, 6], [3, 7, 4]])
    # One nonzero dL/dY entry scatters the kernel unflipped onto its window; full correlation with the flipped
    # kernel is what reads it back that way.
    grad_output = np.zeros((1, 1, 2, 2))
    grad_output[0, 0, 1, 0] = 1.0
    grad_x = conv2d_input_grad((1, 1, 3, 3), weight, grad_output)
    np.testing.assert_array_equal(grad_x[0, 0], [[0, 0, 0], [1, 2, 0], [3, 4, 0]])


def _forbidden(name: str):
    def call(*args, **kwargs):
        raise AssertionError(f"conv2d_input_grad called {name}")
    return call


def test_input_grad_never_calls_col2im(monkeypatch):
    """conv2d_input_grad is a convolution of its own (the full conv with the flipped kernel): not closed_form's
    col2im, not the engine's col2im (Unfold's backward), not any Tensor op."""
    rng = np.random.default_rng(4)
    input_shape = (2, 4, 9, 8)
    weight = rng.standard_normal((6, 2, 3, 2))  # groups 2: Cin 4 → Cout 6
    args = {"stride": 2, "padding": ((1, 0), (2, 1)), "dilation": (2, 1), "groups": 2}
    grad_output = rng.standard_normal(conv2d(np.zeros(input_shape), weight, **args).shape)
    expected = conv2d_input_grad(input_shape, weight, grad_output, **args)

    patched = []
    for module in (closed_form, functional, ops):  # every col2im-like helper, found by name
        for name, value in list(vars(module).items()):
            if not re.search("col2im|fold", name, re.IGNORECASE):
                continue
            if isinstance(value, type):
                monkeypatch.setattr(value, "backward", _forbidden(f"{module.__name__}.{name}.backward"))
                patched.append(f"{module.__name__}.{name}.backward")
            elif isinstance(value, types.FunctionType):
                monkeypatch.setattr(module, name, _forbidden(f"{module.__name__}.{name}"))
                patched.append(f"{module.__name__}.{name}")
    assert {"tinygrad_conv.closed_form.col2im", "tinygrad_conv.ops.Unfold.backward"} <= set(patched), patched
    monkeypatch.setattr(Tensor, "_apply", classmethod(_forbidden("a Tensor op")))
    monkeypatch.setattr(Tensor, "backward", _forbidden("Tensor.backward"))
    with pytest.raises(AssertionError, match=r"called tinygrad_conv\.closed_form\.col2im"):  # the patches bite
        closed_form.col2im(np.zeros((1, 4, 4)), 3, 2)

    np.testing.assert_array_equal(conv2d_input_grad(input_shape, weight, grad_output, **args), expected)


ENGINE_MODULES = {"tinygrad_conv", "tinygrad_conv.tensor", "tinygrad_conv.ops", "tinygrad_conv.functional",
                  "tinygrad_conv.nn"}


def _package_imports(module_name: str) -> set[str]:
    """The tinygrad_conv modules named by any import statement in a module's source (function-local ones too)."""
    source = Path(importlib.util.find_spec(module_name).origin).read_text(encoding="utf-8")
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{module_name} has a relative import"  # the package imports absolutely
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from pkg import ops` is a module
    return {name for name in names if name.split(".")[0] == "tinygrad_conv" and _is_module(name)}


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a name inside a module, such as tinygrad_conv.conv_args.pair
        return False


def test_closed_form_imports_nothing_of_the_engine():
    """closed_form and the package modules it imports (conv_args) never name Tensor, ops or functional: the
    reference cannot lean on what it checks. (Importing any submodule still runs the package's __init__.)"""
    seen, todo = set(), ["tinygrad_conv.closed_form"]
    while todo:
        name = todo.pop()
        seen.add(name)
        todo += [m for m in _package_imports(name) if m not in seen | ENGINE_MODULES]
    imported = set().union(*(_package_imports(name) for name in seen))
    assert "tinygrad_conv.conv_args" in seen
    assert not imported & ENGINE_MODULES, sorted(imported & ENGINE_MODULES)
    for name, value in vars(closed_form).items():
        origin = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
        assert origin not in ENGINE_MODULES, f"closed_form.{name} comes from {origin}"
    assert "Tensor" not in vars(closed_form)


def test_input_grad_swaps_in_and_out_channels_within_each_group():
    # groups=2, Cin=4, Cout=2: output channel g reads only input channels 2g, 2g+1 with weight[g, c].
    weight = np.arange(1.0, 5.0).reshape(2, 2, 1, 1)
    grad_output = np.array([10.0, 100.0]).reshape(1, 2, 1, 1)
    grad_x = conv2d_input_grad((1, 4, 1, 1), weight, grad_output, groups=2)
    np.testing.assert_array_equal(grad_x.ravel(), [10 * 1, 10 * 2, 100 * 3, 100 * 4])


def test_unreached_rows_and_columns_get_exactly_zero_gradient():
    # H=8, k=3, s=3: windows start at rows 0 and 3 and cover rows 0–5; rows 6, 7 are never read. Same for columns.
    rng = np.random.default_rng(9)
    weight = rng.standard_normal((2, 3, 3, 3))
    grad_output = rng.standard_normal((2, 2, 2, 2))
    grad_x = conv2d_input_grad((2, 3, 8, 8), weight, grad_output, stride=3)
    assert grad_x.shape == (2, 3, 8, 8)
    assert np.all(grad_x[:, :, 6:, :] == 0.0) and np.all(grad_x[:, :, :, 6:] == 0.0)
    assert np.all(grad_x[:, :, :6, :6] != 0.0)
    grad_w = conv2d_weight_grad(np.ones((2, 3, 8, 8)), weight.shape, grad_output, stride=3)
    x_reached_only = np.zeros((2, 3, 8, 8))
    x_reached_only[:, :, :6, :6] = 1.0
    np.testing.assert_array_equal(grad_w, conv2d_weight_grad(x_reached_only, weight.shape, grad_output, stride=3))


def test_padding_after_absorbs_the_stride_remainder_before_rows_of_x_go_unreached(torch):
    # H=5, k=1, s=2, padding after 1: the padded length 6 leaves one position unread, and it is the padding row,
    # so row 4 of X IS reached (by the third window). The textbook padding d(k−1) − p_after = −1 would crop it.
    x = np.arange(1.0, 6.0).reshape(1, 1, 5, 1)
    weight = np.array([[[[2.0]]]])
    grad_output = np.array([1.0, 10.0, 100.0]).reshape(1, 1, 3, 1)
    grad_x = conv2d_input_grad(x.shape, weight, grad_output, stride=2, padding=((0, 1), (0, 0)))
    np.testing.assert_array_equal(grad_x.ravel(), [2, 0, 20, 0, 200])
    x_t = torch.tensor(x, requires_grad=True)
    y = torch.nn.functional.conv2d(torch.nn.functional.pad(x_t, (0, 0, 0, 1)), torch.tensor(weight), stride=2)
    y.backward(torch.tensor(grad_output))
    np.testing.assert_array_equal(grad_x, x_t.grad.numpy())


def test_input_grad_is_zero_when_every_window_lies_in_the_padding(torch):
    # H=1 with 3 rows of padding before, k=1, s=5: the single window reads padding row 0 only.
    weight = np.ones((1, 1, 1, 1))
    grad_output = np.ones((1, 1, 1, 1))
    grad_x = conv2d_input_grad((1, 1, 1, 1), weight, grad_output, stride=5, padding=((3, 0), (0, 0)))
    np.testing.assert_array_equal(grad_x, np.zeros((1, 1, 1, 1)))
    x_t = torch.zeros((1, 1, 1, 1), requires_grad=True)
    y = torch.nn.functional.conv2d(torch.nn.functional.pad(x_t, (0, 0, 3, 0)), torch.tensor(weight), stride=5)
    y.backward(torch.tensor(grad_output))
    np.testing.assert_array_equal(grad_x, x_t.grad.numpy())


def test_same_padding_with_even_kernel_puts_the_extra_row_and_column_bottom_right():
    rng = np.random.default_rng(10)
    x, weight = rng.standard_normal((1, 2, 5, 6)), rng.standard_normal((3, 2, 2, 4))
    # dilation 2: total padding 2·(2−1) = 2 rows (1, 1) and 2·(4−1) = 6 columns (3, 3); dilation 1: (0, 1), (1, 2).
    np.testing.assert_array_equal(conv2d(x, weight, padding="same"), conv2d(x, weight, padding=((0, 1), (1, 2))))
    np.testing.assert_array_equal(conv2d(x, weight, padding="same", dilation=2),
                                  conv2d(x, weight, padding=((1, 1), (3, 3)), dilation=2))
    assert conv2d(x, weight, padding="same").shape == (1, 3, 5, 6)


def test_col2im_adds_overlapping_windows_and_is_the_adjoint_of_im2col():
    rng = np.random.default_rng(11)
    args = {"kernel_size": (3, 2), "stride": (1, 2), "padding": ((2, 0), (1, 3)), "dilation": (2, 1)}
    x = rng.standard_normal((2, 3, 6, 5))
    cols = rng.standard_normal(im2col(x, **args).shape)
    # ⟨im2col(x), cols⟩ = ⟨x, col2im(cols)⟩
    np.testing.assert_allclose(np.vdot(im2col(x, **args), cols), np.vdot(x, col2im(cols, (6, 5), **args)), **TOL)
    # stride 1, 3×3 windows over 3×3 with padding 1: the centre pixel is read by all 9 windows.
    counts = col2im(np.ones((1, 9, 9)), (3, 3), kernel_size=3, padding=1)
    np.testing.assert_array_equal(counts[0, 0], [[4, 6, 4], [6, 9, 6], [4, 6, 4]])


def test_gradients_are_the_adjoints_of_conv2d():
    # conv2d is linear in x and in w: ⟨conv2d(x, w), dY⟩ = ⟨x, dX⟩ = ⟨w, dW⟩. No oracle needed.
    rng = np.random.default_rng(12)
    args = {"stride": (2, 3), "padding": ((1, 2), (0, 1)), "dilation": (1, 2), "groups": 2}
    x, weight = rng.standard_normal((2, 4, 9, 10)), rng.standard_normal((6, 2, 3, 2))
    y = conv2d(x, weight, **args)
    grad_output = rng.standard_normal(y.shape)
    inner = np.vdot(y, grad_output)
    np.testing.assert_allclose(np.vdot(x, conv2d_input_grad(x.shape, weight, grad_output, **args)), inner, **TOL)
    np.testing.assert_allclose(np.vdot(weight, conv2d_weight_grad(x, weight.shape, grad_output, **args)), inner,
                               **TOL)


def test_float32_in_gives_float32_out():
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 2, 6, 6)).astype(np.float32)
    weight = rng.standard_normal((4, 1, 3, 3)).astype(np.float32)
    bias = np.zeros(4, dtype=np.float32)
    args = {"stride": 2, "padding": ((1, 0), (0, 2)), "groups": 2}
    y = conv2d(x, weight, bias, **args)
    grad_output = np.ones_like(y)
    cols = im2col(x, kernel_size=3, stride=2, padding=1)
    results = [y, cols, col2im(cols, (6, 6), kernel_size=3, stride=2, padding=1),
               conv2d_weight_grad(x, weight.shape, grad_output, **args),
               conv2d_input_grad(x.shape, weight, grad_output, **args)]
    assert [r.dtype for r in results] == [np.float32] * 5
    assert conv2d(x.astype(np.float64), weight, groups=2).dtype == np.float64  # mixed precision promotes, as numpy does


# ---------------------------------------------------------------- clear errors at the boundary

X = np.zeros((1, 4, 5, 5))
W = np.zeros((2, 4, 3, 3))
DY = np.zeros((1, 2, 3, 3))


def _all_conv_routes(x, weight, grad_output=None, **args):
    """Call conv2d, conv2d_weight_grad and conv2d_input_grad with the same (bad) arguments."""
    grad_output = DY if grad_output is None else grad_output
    return [lambda: conv2d(x, weight, **args),
            lambda: conv2d_weight_grad(x, weight.shape, grad_output, **args),
            lambda: conv2d_input_grad(x.shape, weight, grad_output, **args)]


BAD_CONV_CALLS = [
    ("channel mismatch", ValueError, "channel mismatch", (X, np.zeros((2, 3, 3, 3))), {}),
    ("groups not dividing", ValueError, "groups=3 must divide", (X, np.zeros((2, 1, 3, 3))), {"groups": 3}),
    ("3-D input", ValueError, "4-D input", (np.zeros((4, 5, 5)), W), {}),
    ("kernel too large", ValueError, "larger than the padded input", (X, np.zeros((2, 4, 6, 3))), {"padding": 0}),
    ("stride 0", ValueError, "stride must be >= 1", (X, W), {"stride": 0}),
    ("float stride", TypeError, "stride must be an int or a pair", (X, W), {"stride": 1.5}),
    ("negative padding", ValueError, "padding must be >= 0", (X, W), {"padding": (1, -1)}),
    ("same with stride 2", ValueError, "padding='same' needs stride 1", (X, W), {"padding": "same", "stride": 2}),
    ("unknown padding", ValueError, "padding must be an int, a pair", (X, W), {"padding": "full"}),
]


@pytest.mark.parametrize("route", range(3), ids=["conv2d", "weight_grad", "input_grad"])
@pytest.mark.parametrize(("error", "message", "arrays", "args"), [c[1:] for c in BAD_CONV_CALLS],
                         ids=[c[0] for c in BAD_CONV_CALLS])
def test_bad_conv_arguments_raise_a_clear_error(route, error, message, arrays, args):
    with pytest.raises(error, match=re.escape(message)):
        _all_conv_routes(*arrays, **args)[route]()


@pytest.mark.parametrize("route", [1, 2], ids=["weight_grad", "input_grad"])
def test_grad_output_of_the_wrong_shape_names_both_shapes(route):
    wrong = np.zeros((1, 2, 4, 3))
    message = f"grad_output has shape {wrong.shape}, but this convolution's output has shape {DY.shape}"
    with pytest.raises(ValueError, match=re.escape(message)):
        _all_conv_routes(X, W, wrong)[route]()


def test_bias_of_the_wrong_shape_is_rejected():
    with pytest.raises(ValueError, match=re.escape("bias must have shape (2,)")):
        conv2d(X, W, np.zeros(3))


def test_integer_arrays_are_rejected_with_a_type_error():
    with pytest.raises(TypeError, match="x must be a floating-point array, got dtype int"):
        conv2d(X.astype(int), W)
    with pytest.raises(TypeError, match="grad_output must be a floating-point array"):
        conv2d_input_grad(X.shape, W, DY.astype(int))


def test_im2col_and_col2im_reject_bad_shapes():
    with pytest.raises(ValueError, match=re.escape("im2col expects a 4-D input (N, C, H, W), got shape (5, 5)")):
        im2col(np.zeros((5, 5)), kernel_size=3)
    with pytest.raises(ValueError, match="col2im expects 3-D cols"):
        col2im(np.zeros((9, 9)), (3, 3), kernel_size=3)
    with pytest.raises(ValueError, match="not a multiple of kernel_size 3×3"):
        col2im(np.zeros((1, 10, 1)), (3, 3), kernel_size=3)
    with pytest.raises(ValueError, match=re.escape("gives 3×3 = 9 windows")):
        col2im(np.zeros((1, 9, 8)), (3, 3), kernel_size=3, padding=1)
