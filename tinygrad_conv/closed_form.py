"""The backward pass of a 2-D convolution, derived by hand, in plain numpy: the reference the engine must match.

Shapes follow PyTorch: X (N, Cin, H, W), W (Cout, Cin/G, KH, KW) with G groups, Y (N, Cout, Ho, Wo).
Along one axis, with padding (p_before, p_after), stride s, dilation d and kernel size k:
    span = d·(k − 1) + 1,   Hp = H + p_before + p_after,   Ho = (Hp − span) // s + 1.

Forward.  im2col lays every window of the padded input out as a column, rows ordered (c, i, j):
    cols = im2col(X)                     (N, Cin·KH·KW, Ho·Wo)
    Y    = W · cols (+ b)                per group g:  (Cout/G, Cin/G·KH·KW) · (Cin/G·KH·KW, Ho·Wo)

Weight gradient.  Y is linear in W with cols as the right factor, so (matmul's rule, summed over the batch)
    dL/dW = dL/dY · im2col(X)ᵀ           per group: (Cout/G, Ho·Wo) · (Ho·Wo, Cin/G·KH·KW) → (Cout, Cin/G, KH, KW)

Input gradient, along one axis (the other is identical; channels come last).  With Xp the padded input,
    Y[o] = Σ_i W[i] · Xp[o·s + i·d],  so  dL/dXp[q] = Σ_{o, i : o·s + i·d = q} dL/dY[o] · W[i].
Zero-insert dL/dY by the stride, Z[o·s] = dL/dY[o] (s − 1 zeros between neighbours, length (Ho − 1)·s + 1):
    dL/dXp[q] = Σ_i Z[q − i·d] · W[i] = Σ_i' Z[q − d(k−1) + i'·d] · W[k−1−i']        (i' = k − 1 − i)
which is a correlation, with dilation d kept, of Z padded by d(k − 1) on the left with the flipped kernel:
a full convolution.  In 2-D the kernel flips by 180°, and because dL/dX[c] = Σ_o W[o, c] ★ dL/dY[o] the roles
of in and out channels swap (within each group: group g of dL/dX only reads group g of dL/dY).
We only want q in [p_before, p_before + H): dropping the first p_before outputs pads Z by d(k−1) − p_before
before (a crop of Z where negative: those entries of Z only reach padding).

The bottom/right: windows reach padded rows q < (Ho − 1)·s + span = Hp − r, with r = (Hp − span) mod s; the
last r padded rows are read by no window.  They eat into p_after first: the padding actually read at the
end is p_after' = max(0, p_after − r), and the last max(0, r − p_after) rows of X are unreached, with zero
gradient.  So the reached rows of X number H' = H − max(0, r − p_after), Z is padded by d(k−1) − p_after'
after (cropped where negative), the correlation yields exactly H' rows, and dL/dX is those rows followed by
zeros, in X's shape.  (The textbook d(k−1) − p_after is right only when r = 0.)
"""

from __future__ import annotations

import numpy as np

from tinygrad_conv.conv_args import Padding, Pair, check_conv_shapes, output_size, pair, resolve_padding

__all__ = ["im2col", "col2im", "conv2d", "conv2d_weight_grad", "conv2d_input_grad"]


# ---------------------------------------------------------------- argument handling


def _float_dtype(*arrays: np.ndarray) -> np.dtype:
    """The common dtype of floating arrays: float32 stays float32, float32 with float64 gives float64."""
    return np.result_type(*arrays)


def _as_array(value: object, name: str) -> np.ndarray:
    """np.asarray, but a clear TypeError for a dtype that is not floating."""
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"{name} must be a floating-point array, got dtype {array.dtype}")
    return array


def _geometry(input_hw: tuple[int, int], kernel_size: object, stride: object, padding: object,
              dilation: object) -> tuple[Pair, Pair, Padding, Pair, Pair]:
    """Parse (kernel_size, stride, padding, dilation) → (kernel, stride, per-side padding, dilation, (Ho, Wo))."""
    kernel = pair(kernel_size, "kernel_size")
    stride = pair(stride, "stride")
    dilation = pair(dilation, "dilation")
    pads = resolve_padding(padding, kernel, stride, dilation)
    out_hw = tuple(output_size(n, p, k, s, d) for n, p, k, s, d in zip(input_hw, pads, kernel, stride, dilation))
    return kernel, stride, pads, dilation, out_hw


def _conv_geometry(input_shape: tuple, weight_shape: tuple, stride: object, padding: object, dilation: object,
                   groups: object) -> tuple[int, Pair, Padding, Pair, tuple[int, int, int, int]]:
    """Validate conv2d shapes → (groups, stride, per-side padding, dilation, output shape (N, Cout, Ho, Wo))."""
    groups = check_conv_shapes(tuple(input_shape), tuple(weight_shape), groups)
    _, stride, pads, dilation, (ho, wo) = _geometry(tuple(input_shape[2:]), tuple(weight_shape[2:]), stride,
                                                    padding, dilation)
    return groups, stride, pads, dilation, (int(input_shape[0]), int(weight_shape[0]), ho, wo)


def _check_grad_output(grad_output: np.ndarray, expected: tuple[int, ...]) -> None:
    if grad_output.shape != expected:
        raise ValueError(
            f"grad_output has shape {grad_output.shape}, but this convolution's output has shape {expected}"
        )


def _pad_or_crop(array: np.ndarray, rows: Pair, cols: Pair) -> np.ndarray:
    """Pad the last two axes with zeros by (before, after) amounts; a negative amount crops that many instead."""
    h, w = array.shape[-2:]
    (top, bottom), (left, right) = rows, cols
    cropped = array[..., max(0, -top): h - max(0, -bottom), max(0, -left): w - max(0, -right)]
    widths = [(0, 0)] * (array.ndim - 2) + [(max(0, top), max(0, bottom)), (max(0, left), max(0, right))]
    return np.pad(cropped, widths)


# ---------------------------------------------------------------- im2col / col2im


def im2col(x: np.ndarray, kernel_size: object, stride: object = 1, padding: object = 0,
           dilation: object = 1) -> np.ndarray:
    """Every window of the padded input as a column: (N, C, H, W) → (N, C·KH·KW, Ho·Wo), as F.unfold.

    Row index c·KH·KW + i·KW + j holds Xp[n, c, ho·sh + i·dh, wo·sw + j·dw] at column ho·Wo + wo.
    """
    x = _as_array(x, "x")
    if x.ndim != 4:
        raise ValueError(f"im2col expects a 4-D input (N, C, H, W), got shape {x.shape}")
    (kh, kw), (sh, sw), pads, (dh, dw), (ho, wo) = _geometry(x.shape[2:], kernel_size, stride, padding, dilation)
    n, c = x.shape[:2]
    padded = np.pad(x, ((0, 0), (0, 0), *pads))
    span = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    # windows[n, c, a, b, u, v] = padded[n, c, a + u, b + v]: every dilated span, at every position.
    windows = np.lib.stride_tricks.sliding_window_view(padded, span, axis=(2, 3))
    # Every stride-th position and every dilation-th element of the span: (N, C, Ho, Wo, KH, KW).
    windows = windows[:, :, ::sh, ::sw, ::dh, ::dw]
    assert windows.shape[2:] == (ho, wo, kh, kw)
    return windows.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, ho * wo)


def col2im(cols: np.ndarray, input_size: object, kernel_size: object, stride: object = 1, padding: object = 0,
           dilation: object = 1) -> np.ndarray:
    """im2col's adjoint: add every column back where its window read from, (N, C·KH·KW, L) → (N, C, H, W).

    As F.fold with output_size=input_size: overlapping windows add, padding is cropped off.
    """
    cols = _as_array(cols, "cols")
    if cols.ndim != 3:
        raise ValueError(f"col2im expects 3-D cols (N, C·KH·KW, L), got shape {cols.shape}")
    height, width = pair(input_size, "input_size")
    (kh, kw), (sh, sw), pads, (dh, dw), (ho, wo) = _geometry((height, width), kernel_size, stride, padding, dilation)
    n, rows, length = cols.shape
    if rows % (kh * kw):
        raise ValueError(f"cols has {rows} rows, not a multiple of kernel_size {kh}×{kw} = {kh * kw}")
    if length != ho * wo:
        raise ValueError(
            f"cols has {length} columns, but input_size {(height, width)} gives {ho}×{wo} = {ho * wo} windows"
        )
    c = rows // (kh * kw)
    cols = cols.reshape(n, c, kh, kw, ho, wo)
    (top, bottom), (left, right) = pads
    padded = np.zeros((n, c, height + top + bottom, width + left + right), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            # Kernel offset (i, j) of window (ho, wo) read padded[ho·sh + i·dh, wo·sw + j·dw]: one strided
            # slice, no repeated index within it, so += is exact.
            padded[:, :, i * dh: i * dh + sh * (ho - 1) + 1: sh, j * dw: j * dw + sw * (wo - 1) + 1: sw] += cols[
                :, :, i, j]
    return padded[:, :, top: top + height, left: left + width]


# ---------------------------------------------------------------- conv2d and its gradients


def conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, stride: object = 1,
           padding: object = 0, dilation: object = 1, groups: int = 1) -> np.ndarray:
    """Y = W · im2col(X) (+ b) per group: (N, Cin, H, W), (Cout, Cin/G, KH, KW) → (N, Cout, Ho, Wo)."""
    x, weight = _as_array(x, "x"), _as_array(weight, "weight")
    arrays = (x, weight) if bias is None else (x, weight, _as_array(bias, "bias"))
    dtype = _float_dtype(*arrays)
    groups, stride, pads, dilation, out_shape = _conv_geometry(x.shape, weight.shape, stride, padding, dilation,
                                                               groups)
    n, c_out, ho, wo = out_shape
    cols = im2col(x.astype(dtype, copy=False), weight.shape[2:], stride, pads, dilation)
    cols = cols.reshape(n, groups, -1, ho * wo)  # (N, G, Cin/G·KH·KW, L): rows are (c, i, j), c-major
    w = weight.astype(dtype, copy=False).reshape(groups, c_out // groups, -1)  # (G, Cout/G, Cin/G·KH·KW)
    y = np.matmul(w, cols).reshape(n, c_out, ho, wo)  # (N, G, Cout/G, L)
    if bias is not None:
        bias = np.asarray(bias, dtype=dtype)
        if bias.shape != (c_out,):
            raise ValueError(f"bias must have shape ({c_out},) (one per output channel), got {bias.shape}")
        y = y + bias.reshape(1, c_out, 1, 1)
    return y


def conv2d_weight_grad(input: np.ndarray, weight_shape: tuple, grad_output: np.ndarray, stride: object = 1,
                       padding: object = 0, dilation: object = 1, groups: int = 1) -> np.ndarray:
    """dL/dW = Σ_n dL/dY · im2col(X)ᵀ per group → (Cout, Cin/G, KH, KW), as torch.nn.grad.conv2d_weight."""
    x, grad_output = _as_array(input, "input"), _as_array(grad_output, "grad_output")
    dtype = _float_dtype(x, grad_output)
    weight_shape = tuple(int(s) for s in weight_shape)
    groups, stride, pads, dilation, out_shape = _conv_geometry(x.shape, weight_shape, stride, padding, dilation,
                                                               groups)
    _check_grad_output(grad_output, out_shape)
    n, c_out, ho, wo = out_shape
    cols = im2col(x.astype(dtype, copy=False), weight_shape[2:], stride, pads, dilation)
    # Fold the batch into the sum over window positions: (G, K, N·L) and (G, Cout/G, N·L), K = Cin/G·KH·KW.
    cols = cols.reshape(n, groups, -1, ho * wo).transpose(1, 2, 0, 3).reshape(groups, -1, n * ho * wo)
    dy = grad_output.astype(dtype, copy=False).reshape(n, groups, c_out // groups, ho * wo)
    dy = dy.transpose(1, 2, 0, 3).reshape(groups, c_out // groups, n * ho * wo)
    return np.matmul(dy, cols.transpose(0, 2, 1)).reshape(weight_shape)  # (G, Cout/G, K)


def conv2d_input_grad(input_shape: tuple, weight: np.ndarray, grad_output: np.ndarray, stride: object = 1,
                      padding: object = 0, dilation: object = 1, groups: int = 1) -> np.ndarray:
    """dL/dX = full conv of zero-inserted dL/dY with the flipped, channel-swapped kernel → input_shape.

    As torch.nn.grad.conv2d_input. Deliberately not col2im: the input gradient is itself a convolution.
    """
    weight, grad_output = _as_array(weight, "weight"), _as_array(grad_output, "grad_output")
    dtype = _float_dtype(weight, grad_output)
    input_shape = tuple(int(s) for s in input_shape)
    groups, (sh, sw), pads, (dh, dw), out_shape = _conv_geometry(input_shape, weight.shape, stride, padding,
                                                                 dilation, groups)
    _check_grad_output(grad_output, out_shape)
    n, c_in, height, width = input_shape
    c_out, c_per_group, kh, kw = weight.shape
    ho, wo = out_shape[2:]
    grad_input = np.zeros(input_shape, dtype=dtype)

    # Per axis: rows of X some window reaches, and the padding after them that windows actually read.
    reached, pads_for_z = [], []
    for size, (before, after), k, s, d in zip((height, width), pads, (kh, kw), (sh, sw), (dh, dw)):
        span = d * (k - 1) + 1
        unread = (size + before + after - span) % s  # trailing padded rows no window reads
        reached.append(size - max(0, unread - after))
        read_after = max(0, after - unread)
        pads_for_z.append((d * (k - 1) - before, d * (k - 1) - read_after))
    if min(reached) <= 0:  # every window lies in the padding: X gets no gradient at all
        return grad_input

    # Z: dL/dY with s − 1 zeros inserted between neighbours, (N, Cout, (Ho − 1)·sh + 1, (Wo − 1)·sw + 1).
    z = np.zeros((n, c_out, (ho - 1) * sh + 1, (wo - 1) * sw + 1), dtype=dtype)
    z[:, :, ::sh, ::sw] = grad_output
    z = _pad_or_crop(z, *pads_for_z)

    # The kernel of the input gradient: (Cout, Cin/G, KH, KW) → (G, Cout/G, Cin/G, KH, KW), swap in/out within
    # each group → (Cin, Cout/G, KH, KW), and flip 180° in space.
    flipped = weight.astype(dtype, copy=False).reshape(groups, c_out // groups, c_per_group, kh, kw)
    flipped = flipped.transpose(0, 2, 1, 3, 4).reshape(c_in, c_out // groups, kh, kw)[:, :, ::-1, ::-1]

    reached_grad = conv2d(z, flipped, stride=1, padding=0, dilation=(dh, dw), groups=groups)
    assert reached_grad.shape == (n, c_in, *reached), (reached_grad.shape, reached)
    grad_input[:, :, : reached[0], : reached[1]] = reached_grad
    return grad_input
