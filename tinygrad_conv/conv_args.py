"""The one home of argument checks (plain Python, no numpy): sizes, pairs, padding, groups, probabilities — shared
by the engine's conv2d/pooling, the nn modules and closed_form, so every caller gives the same message.

Shapes follow PyTorch: input (N, C, H, W), weight (Cout, Cin/groups, KH, KW).
Output size along one axis:  out = (size + pad_before + pad_after - dilation·(k − 1) − 1) // stride + 1.
Padding is always resolved to explicit per-side pairs ((top, bottom), (left, right)).
"""

from __future__ import annotations

import numbers

Pair = tuple[int, int]
Padding = tuple[Pair, Pair]


def is_int(value: object) -> bool:
    """An int or numpy integer, and not a bool (True is an int to Python, never a size or an axis here)."""
    return type(value) is int or (isinstance(value, numbers.Integral) and not isinstance(value, bool))


def pair(value: object, name: str, minimum: int = 1) -> Pair:
    """An int or a pair of ints, each ≥ minimum, as a pair (rows, columns)."""
    if type(value) is int and value >= minimum:  # the common cases, without the checks below (a step makes ~20 calls)
        return value, value
    if type(value) is tuple and len(value) == 2 and type(value[0]) is type(value[1]) is int and min(value) >= minimum:
        return value
    values = (value, value) if isinstance(value, numbers.Integral) else value
    if not isinstance(values, (tuple, list)) or len(values) != 2:
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    for v in values:
        if not is_int(v):
            raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
        if v < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(values[0]), int(values[1])


def resolve_padding(padding: object, kernel_size: Pair, stride: Pair, dilation: Pair) -> Padding:
    """padding as int, (ph, pw), ((top, bottom), (left, right)), 'valid' or 'same' → per-side pairs.

    'same' (stride 1 only) pads dilation·(k − 1) in total; the odd extra goes bottom/right, as in PyTorch.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding != "same":
            raise ValueError(f"padding must be an int, a pair, per-side pairs, 'valid' or 'same', got {padding!r}")
        if stride != (1, 1):
            raise ValueError(f"padding='same' needs stride 1, got stride={stride}")
        totals = [d * (k - 1) for k, d in zip(kernel_size, dilation)]
        (top, bottom), (left, right) = [(t // 2, t - t // 2) for t in totals]
        return (top, bottom), (left, right)
    if isinstance(padding, (tuple, list)) and len(padding) == 2 and all(isinstance(p, (tuple, list)) for p in padding):
        rows, cols = (pair(p, "padding", minimum=0) for p in padding)
        return rows, cols
    ph, pw = pair(padding, "padding", minimum=0)
    return (ph, ph), (pw, pw)


def output_size(size: int, pad: Pair, kernel: int, stride: int, dilation: int, what: str = "input") -> int:
    """Number of window positions along one axis; a clear error when the window does not fit."""
    padded = size + pad[0] + pad[1]
    span = dilation * (kernel - 1) + 1
    if span > padded:
        raise ValueError(
            f"kernel size {kernel} (dilated span {span}) is larger than the padded {what} size {padded} "
            f"(size {size} + padding {pad[0]} + {pad[1]})"
        )
    return (padded - span) // stride + 1


def positive_int(value: object, name: str) -> int:
    """value as an int ≥ 1, or a clear error naming `name`."""
    if not is_int(value):
        raise TypeError(f"{name} must be a positive int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def check_bool(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def check_groups_divide(groups: int, in_channels: int, out_channels: int) -> None:
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"groups={groups} must divide both input channels ({in_channels}) and output channels "
                         f"({out_channels})")


def pool_padding(padding: object, kernel_size: Pair) -> Pair:
    """Pooling padding as a pair, each at most half the kernel (as PyTorch: a window must see one real pixel)."""
    ph, pw = pair(padding, "padding", minimum=0)
    if 2 * ph > kernel_size[0] or 2 * pw > kernel_size[1]:
        raise ValueError(f"padding {(ph, pw)} must be at most half the kernel size {kernel_size}")
    return ph, pw


def dropout_probability(p: object) -> float:
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"dropout probability p must be a number in [0, 1), got {p!r}")
    if not 0 <= p < 1:
        raise ValueError(f"dropout probability p must be in [0, 1), got {p!r}")
    return float(p)


def check_groups(groups: object) -> int:
    """groups as an int ≥ 1, or a clear error."""
    return positive_int(groups, "groups")


def check_conv_shapes(input_shape: tuple, weight_shape: tuple, groups: object) -> int:
    """Validate conv2d shapes (N, Cin, H, W) and (Cout, Cin/groups, KH, KW); return groups as an int."""
    if len(input_shape) != 4:
        raise ValueError(
            f"conv2d expects a 4-D input (N, C, H, W), got shape {tuple(input_shape)}; "
            "add a batch dimension with x.reshape(1, *x.shape)"
        )
    if len(weight_shape) != 4:
        raise ValueError(f"conv2d expects a 4-D weight (Cout, Cin/groups, KH, KW), got shape {tuple(weight_shape)}")
    if 0 in tuple(weight_shape):
        raise ValueError(f"conv2d weight (Cout, Cin/groups, KH, KW) must have every dimension >= 1, got shape "
                         f"{tuple(weight_shape)}")
    groups = check_groups(groups)
    n, c_in, _, _ = input_shape
    c_out, c_per_group, _, _ = weight_shape
    if n == 0:
        raise ValueError(f"conv2d got an empty batch: input shape {tuple(input_shape)}")
    check_groups_divide(groups, c_in, c_out)
    if c_per_group * groups != c_in:
        raise ValueError(
            f"channel mismatch: input has {c_in} channels, weight {tuple(weight_shape)} expects "
            f"{c_per_group}·groups = {c_per_group * groups}"
        )
    return groups
