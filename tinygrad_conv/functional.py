"""Layers as compositions of primitive ops: nothing here has a backward of its own.

conv2d is pad → im2col (ops.Unfold) → matmul → reshape (+ bias). With X the input, W the weight
reshaped to (Cout, Cin·KH·KW) and cols = im2col(pad(X)) of shape (Cin·KH·KW, Ho·Wo·N):

    Y = W · cols                        forward: every output pixel is one kernel window · weights
    dL/dW = dL/dY · colsᵀ               MatMul's rule for its left operand: the im2col weight gradient
    dL/dcols = Wᵀ · dL/dY               MatMul's rule for its right operand
    dL/dX = crop(col2im(dL/dcols))      Unfold's and Pad's rules: the full convolution of dL/dY with
                                        the 180°-flipped kernel (closed_form.conv2d_input_grad)

With groups, W and cols get a leading group axis and the matmul is batched over it.
Pooling is pad → im2col → max/mean over the window axis; cross_entropy is log_softmax → pick → mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from tinygrad_conv import kernels, ops
from tinygrad_conv.conv_args import (
    check_conv_shapes,
    check_groups,
    dropout_probability,
    is_int,
    output_size,
    pair,
    pool_padding,
    resolve_padding,
)
from tinygrad_conv.conv_args import output_size as output_size_along
from tinygrad_conv.tensor import Tensor


def _tensor(value: Any, name: str) -> Tensor:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, np.ndarray):
        return Tensor(value)
    raise TypeError(f"{name} must be a Tensor or a numpy array, got {type(value).__name__}")


def _same_dtype(x: Tensor, weight: Tensor) -> None:
    """As PyTorch: a float64 input never meets float32 weights by silent promotion."""
    if x.dtype != weight.dtype:
        raise TypeError(f"input and weight must have the same dtype, got {x.dtype} and {weight.dtype}")


def _pad_spatial(x: Tensor, padding: tuple[tuple[int, int], tuple[int, int]], value: float = 0.0) -> Tensor:
    if padding == ((0, 0), (0, 0)):
        return x
    return x.pad(((0, 0), (0, 0), *padding), value=value)


def conv2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple | str = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
) -> Tensor:
    """2-D convolution (cross-correlation, as PyTorch): input (N, Cin, H, W), weight (Cout, Cin/groups, KH, KW),
    bias (Cout,) → (N, Cout, Ho, Wo).

    padding: int, (ph, pw), per side ((top, bottom), (left, right)), 'valid', or 'same' (stride 1; an even
    kernel's extra row/column goes bottom/right, as PyTorch).
    """
    x, weight = _tensor(input, "input"), _tensor(weight, "weight")
    groups = check_conv_shapes(x.shape, weight.shape, groups)
    _same_dtype(x, weight)
    n, c_in, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    stride, dilation = pair(stride, "stride"), pair(dilation, "dilation")
    padding = resolve_padding(padding, (kh, kw), stride, dilation)
    ho = output_size(h, padding[0], kh, stride[0], dilation[0], "input height")
    wo = output_size(w, padding[1], kw, stride[1], dilation[1], "input width")

    cols = _pad_spatial(x, padding).im2col((kh, kw), stride, dilation)  # (Cin, KH, KW, Ho, Wo, N)
    cols = cols.reshape(groups, c_in // groups * kh * kw, ho * wo * n)
    out = weight.reshape(groups, c_out // groups, c_in // groups * kh * kw) @ cols  # (G, Cout/G, Ho·Wo·N)
    out = out.reshape(c_out, ho, wo, n).permute(3, 0, 1, 2)  # (N, Cout, Ho, Wo), batch-last in memory: see kernels.py
    if bias is not None:
        out = out + _bias(bias, c_out, x.dtype).reshape(1, c_out, 1, 1)
    return out


def conv_transpose2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple = 0,
    output_padding: int | tuple[int, int] = 0,
    groups: int = 1,
    dilation: int | tuple[int, int] = 1,
) -> Tensor:
    """The adjoint of conv2d (as torch.nn.functional.conv_transpose2d): input (N, Cin, H, W), weight
    (Cin, Cout/groups, KH, KW), bias (Cout,) → (N, Cout, Ho, Wo), Ho = (H − 1)·sh − top − bottom + dh·(KH − 1)
    + output_padding + 1. Composed as matmul → fold → crop:

        cols = Wᵀ · X          every input pixel spread over a kernel window      (Cout·KH·KW, H·W·N)
        Y = crop(fold(cols))    the windows added where they overlap (col2im), then the padding cut off

    which is conv2d's input gradient: conv_transpose2d(dL/dY, W) = dL/dX. padding: int, (ph, pw) or per side
    ((top, bottom), (left, right)); output_padding (< stride or dilation) adds rows/columns at the bottom/right.
    """
    x, weight = _tensor(input, "input"), _tensor(weight, "weight")
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(f"conv_transpose2d expects a 4-D input (N, Cin, H, W) and a 4-D weight "
                         f"(Cin, Cout/groups, KH, KW), got shapes {x.shape} and {weight.shape}")
    groups = check_groups(groups)
    n, c_in, h, w = x.shape
    if weight.shape[0] != c_in or c_in % groups or 0 in weight.shape or n == 0:
        raise ValueError(f"conv_transpose2d: weight {weight.shape} must be (Cin, Cout/groups, KH, KW) with Cin = "
                         f"{c_in} (the input's channels, divisible by groups={groups}) and no empty dimension; "
                         f"input {x.shape} must hold at least one image")
    _same_dtype(x, weight)
    c_out, (kh, kw) = weight.shape[1] * groups, weight.shape[2:]
    stride, dilation = pair(stride, "stride"), pair(dilation, "dilation")
    if isinstance(padding, str):
        raise ValueError(f"conv_transpose2d: padding must be an int, a pair or per-side pairs, got {padding!r}")
    padding = resolve_padding(padding, (kh, kw), stride, dilation)
    output_padding = pair(output_padding, "output_padding", minimum=0)
    for extra, s, d in zip(output_padding, stride, dilation):
        if extra >= max(s, d):
            raise ValueError(f"output_padding {output_padding} must be smaller than stride {stride} or dilation "
                             f"{dilation} along each axis")
    full = [(size - 1) * s + d * (k - 1) + 1 for size, s, d, k in zip((h, w), stride, dilation, (kh, kw))]
    for axis, (size, extra, (before, after)) in enumerate(zip(full, output_padding, padding)):
        if size + extra - before - after < 1:
            raise ValueError(f"conv_transpose2d: padding {padding[axis]} crops the whole output "
                             f"({size + extra} {'rows' if axis == 0 else 'columns'})")

    x_cols = x.permute(1, 2, 3, 0).reshape(groups, c_in // groups, h * w * n)  # (G, Cin/G, H·W·N)
    weight_t = weight.reshape(groups, c_in // groups, c_out // groups * kh * kw).transpose(1, 2)
    cols = (weight_t @ x_cols).reshape(c_out, kh, kw, h, w, n)  # Wᵀ · X, one column per input pixel
    out = Tensor._apply(ops.Fold, cols, output_size=tuple(full), kernel_size=(kh, kw), stride=stride,
                        dilation=dilation)
    if output_padding != (0, 0):
        out = out.pad(((0, 0), (0, 0), (0, output_padding[0]), (0, output_padding[1])))
    out = _crop_spatial(out, padding)
    if bias is not None:
        out = out + _bias(bias, c_out, x.dtype).reshape(1, c_out, 1, 1)
    return out


def fold(
    input: Tensor,
    output_size: int | tuple[int, int],
    kernel_size: int | tuple[int, int],
    dilation: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    stride: int | tuple[int, int] = 1,
) -> Tensor:
    """col2im, unfold's adjoint, as torch.nn.functional.fold: columns (N, C·KH·KW, L) → (N, C, H, W), each column
    added back onto the window it was read from (overlaps add up), the padding then cut off; L = Ho·Wo windows."""
    cols = _tensor(input, "input")
    kernel_size, stride, dilation = pair(kernel_size, "kernel_size"), pair(stride, "stride"), pair(dilation, "dilation")
    (h, w), (ph, pw) = pair(output_size, "output_size"), pair(padding, "padding", minimum=0)
    ho = output_size_along(h, (ph, ph), kernel_size[0], stride[0], dilation[0], "output height")
    wo = output_size_along(w, (pw, pw), kernel_size[1], stride[1], dilation[1], "output width")
    window = kernel_size[0] * kernel_size[1]
    if cols.ndim != 3 or cols.shape[1] % window or cols.shape[2] != ho * wo:
        raise ValueError(f"fold expects input (N, C·{kernel_size[0]}·{kernel_size[1]}, {ho * wo}) for output_size "
                         f"{(h, w)} (a multiple of {window} rows, one column per window), got shape {cols.shape}")
    n, c = cols.shape[0], cols.shape[1] // window
    cols = cols.reshape(n, c, *kernel_size, ho, wo).permute(1, 2, 3, 4, 5, 0)  # (C, KH, KW, Ho, Wo, N)
    out = Tensor._apply(ops.Fold, cols, output_size=(h + 2 * ph, w + 2 * pw), kernel_size=kernel_size,
                        stride=stride, dilation=dilation)
    return _crop_spatial(out, ((ph, ph), (pw, pw)))


def _crop_spatial(x: Tensor, padding: tuple[tuple[int, int], tuple[int, int]]) -> Tensor:
    if padding == ((0, 0), (0, 0)):
        return x
    return Tensor._apply(ops.Crop, x, pad_width=((0, 0), (0, 0), *padding))


def unfold(
    input: Tensor,
    kernel_size: int | tuple[int, int],
    dilation: int | tuple[int, int] = 1,
    padding: int | tuple | str = 0,
    stride: int | tuple[int, int] = 1,
) -> Tensor:
    """im2col in PyTorch's layout: (N, C, H, W) → (N, C·KH·KW, Ho·Wo), as torch.nn.functional.unfold."""
    x = _tensor(input, "input")
    if x.ndim != 4:
        raise ValueError(f"unfold expects a 4-D input (N, C, H, W), got shape {x.shape}")
    kernel_size, stride, dilation = pair(kernel_size, "kernel_size"), pair(stride, "stride"), pair(dilation, "dilation")
    padding = resolve_padding(padding, kernel_size, stride, dilation)
    n, c, h, w = x.shape
    ho = output_size(h, padding[0], kernel_size[0], stride[0], dilation[0], "input height")
    wo = output_size(w, padding[1], kernel_size[1], stride[1], dilation[1], "input width")
    cols = _pad_spatial(x, padding).im2col(kernel_size, stride, dilation)  # (C, KH, KW, Ho, Wo, N)
    return cols.permute(5, 0, 1, 2, 3, 4).reshape(n, c * kernel_size[0] * kernel_size[1], ho * wo)


def _pool(x: Tensor, kernel_size: Any, stride: Any, padding: Any, pad_value: float, reduce: str) -> Tensor:
    """Windows of (N, C, H, W) reduced by max or mean → (N, C, Ho, Wo); stride defaults to the kernel size."""
    x = _tensor(x, "input")
    if x.ndim != 4:
        raise ValueError(f"{reduce}-pooling expects a 4-D input (N, C, H, W), got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{reduce}-pooling got an empty input of shape {x.shape} (no batch, channels or pixels)")
    kernel_size = pair(kernel_size, "kernel_size")
    stride = kernel_size if stride is None else pair(stride, "stride")
    ph, pw = pool_padding(padding, kernel_size)
    n, c, h, w = x.shape
    ho = output_size(h, (ph, ph), kernel_size[0], stride[0], 1, "input height")
    wo = output_size(w, (pw, pw), kernel_size[1], stride[1], 1, "input width")
    cols = _pad_spatial(x, ((ph, ph), (pw, pw)), pad_value).im2col(kernel_size, stride)
    windows = cols.reshape(c, kernel_size[0] * kernel_size[1], ho, wo, n)
    if reduce == "max":  # PyTorch's routing of the gradient: never to padding, the last NaN of a window (ops.Max)
        real = None if (ph, pw) == (0, 0) else _real_pixels((h, w), kernel_size, stride, (ph, pw))
        pooled = Tensor._apply(ops.Max, windows, axis=1, keepdims=False, ties="pool", where=real)
    else:
        pooled = windows.mean(axis=1)  # (C, Ho, Wo, N)
    return pooled.permute(3, 0, 1, 2)


def _real_pixels(size: tuple[int, int], kernel_size: tuple[int, int], stride: tuple[int, int],
                 padding: tuple[int, int]) -> np.ndarray:
    """Which elements of the pooling windows (1, KH·KW, Ho, Wo, 1) are pixels of the image, not padding: the
    windows of an image of ones padded with zeros, read by the same im2col."""
    (ph, pw), (kh, kw) = padding, kernel_size
    ones = kernels.pad(np.ones((1, 1, *size), np.int8), ((0, 0), (0, 0), (ph, ph), (pw, pw)), 0)
    cols = kernels.im2col(ones, kernel_size, stride, (1, 1))  # (1, KH, KW, Ho, Wo, 1)
    return cols.reshape(1, kh * kw, *cols.shape[3:]) == 1


def max_pool2d(input: Tensor, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None,
               padding: int | tuple[int, int] = 0) -> Tensor:
    """Maximum of each window (padding counts as −inf). The gradient goes where PyTorch sends it: each window's first
    maximum among its real pixels (never the padding, even when every real pixel is −inf), or the last NaN of a
    window holding NaN."""
    return _pool(input, kernel_size, stride, padding, -np.inf, "max")


def avg_pool2d(input: Tensor, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None,
               padding: int | tuple[int, int] = 0) -> Tensor:
    """Mean of each window, zero padding included in the count (PyTorch's count_include_pad=True)."""
    return _pool(input, kernel_size, stride, padding, 0.0, "avg")


def relu(input: Tensor) -> Tensor:
    return _tensor(input, "input").relu()


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x · Wᵀ + b with x (..., in), weight (out, in), bias (out,)."""
    x, weight = _tensor(input, "input"), _tensor(weight, "weight")
    if weight.ndim != 2:
        raise ValueError(f"linear expects a 2-D weight (out_features, in_features), got shape {weight.shape}")
    if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input's last dimension must be in_features={weight.shape[1]}, got shape {x.shape}")
    _same_dtype(x, weight)
    out = x @ weight.T
    if bias is not None:
        out = out + _bias(bias, weight.shape[0], x.dtype)
    return out


def _bias(bias: Any, num_outputs: int, dtype: np.dtype) -> Tensor:
    """bias as a Tensor of shape (num_outputs,) and the input's dtype, or a clear error."""
    bias = _tensor(bias, "bias")
    if bias.shape != (num_outputs,):
        raise ValueError(f"bias must have shape ({num_outputs},) (one per output), got {bias.shape}")
    if bias.dtype != dtype:
        raise TypeError(f"bias must have the input's dtype {dtype}, got {bias.dtype}")
    return bias


def log_softmax(x: Tensor, axis: int = -1, *, dim: int | None = None) -> Tensor:
    """log softmax(x) = x − m − log Σ exp(x − m), m = max(x) along axis (a constant: the result does not depend
    on it, so it carries no gradient). Finite for logits of ±1e4. `dim` is PyTorch's name for axis."""
    x = _tensor(x, "x")
    axis = _axis(axis if dim is None else dim, "log_softmax: axis", x.ndim, x.shape)
    shifted = x - x.data.max(axis=axis, keepdims=True)
    return shifted - shifted.exp().sum(axis=axis, keepdims=True).log()


def softmax(input: Tensor, dim: int = -1) -> Tensor:
    """exp(x) / Σ exp(x) along dim, as exp(log_softmax(x)): finite for logits of ±1e4."""
    return log_softmax(input, dim=dim).exp()


def cross_entropy(input: Tensor, target: Any) -> Tensor:
    """Mean over the batch of −log softmax(input)[n, target[n]]; input (N, C) logits, target (N,) class indices."""
    logits = _tensor(input, "input")
    if logits.ndim != 2 or logits.shape[1] == 0:
        raise ValueError(f"cross_entropy expects logits of shape (N, C) with C >= 1 classes, got shape {logits.shape}")
    n, num_classes = logits.shape
    if n == 0:
        raise ValueError(f"cross_entropy got an empty batch (N = 0): input shape {logits.shape}")
    target = _class_targets(target, n, num_classes)
    # Pick each row's target entry (not a product with a one-hot matrix: 0 · (−inf) would make a logit of −inf NaN).
    return log_softmax(logits, axis=1)[np.arange(n), target].sum() * (-1.0 / n)


def _class_targets(target: Any, n: int, num_classes: int) -> np.ndarray:
    try:
        target = np.asarray(target.data if isinstance(target, Tensor) else target)
    except ValueError:  # a ragged list
        raise ValueError(f"target must be {n} class indices, one per row of input, got a ragged "
                         f"{type(target).__name__}") from None
    if target.shape != (n,):
        raise ValueError(f"target must have shape ({n},) (one class index per row of input), got {target.shape}")
    if target.dtype.kind not in "iu":
        raise TypeError(f"target must hold integer class indices, got dtype {target.dtype}")
    if target.size and (target.min() < 0 or target.max() >= num_classes):
        raise ValueError(f"target values must be class indices in [0, {num_classes}), got min {target.min()} "
                         f"and max {target.max()}")
    return target


def dropout(input: Tensor, p: float = 0.5, training: bool = True, rng: np.random.Generator | None = None) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1 − p) (identity when not training)."""
    x = _tensor(input, "input")
    p = dropout_probability(p)
    if not training or p == 0:
        return x
    keep = (rng or np.random.default_rng()).random(x.shape) >= p
    return x * (keep * x.dtype.type(1 / (1 - p)))  # the mask: 0 or 1/(1 − p), in x's dtype


def flatten(input: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """(d0, …, d_s, …, d_e, …) → (d0, …, d_s·…·d_e, …): axes start_dim..end_dim merged into one, as torch.flatten."""
    x = _tensor(input, "input")
    ndim = max(x.ndim, 1)  # a 0-d tensor flattens to shape (1,), as in PyTorch
    start = _axis(start_dim, "flatten: start_dim", ndim, x.shape)
    end = _axis(end_dim, "flatten: end_dim", ndim, x.shape)
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for input of shape {x.shape}")
    shape = x.shape or (1,)
    return x.reshape(*shape[:start], math.prod(shape[start:end + 1]), *shape[end + 1:])


def _axis(axis: Any, what: str, ndim: int, shape: tuple[int, ...]) -> int:
    """axis as a non-negative axis of a tensor with ndim axes, or an error naming `what` ("flatten: end_dim")."""
    if not is_int(axis):
        raise TypeError(f"{what} must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{what} must be in [{-ndim}, {ndim}) for input of shape {shape}, got {axis}")
    return int(axis) % ndim


__all__: Sequence[str] = ["conv2d", "conv_transpose2d", "fold", "unfold", "max_pool2d", "avg_pool2d", "relu", "linear",
                          "log_softmax", "softmax",
                          "cross_entropy", "dropout", "flatten"]
