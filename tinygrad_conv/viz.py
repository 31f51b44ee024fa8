"""Drawing the computation graph: see backprop, one op at a time.

As micrograd's `draw_dot`, left to right: one record node per tensor — name, shape, and `data | grad` when the
tensor holds at most `max_values` numbers — and one small node per op, with an edge from every input in argument
order (`x * x` draws TWO edges from x into one `*` node; an op whose inputs' order matters — −, /, matmul —
labels them 0 and 1 at the op's end).

Fill colours tell the tensors apart:
    white   an op's result                     blue   a parameter (a leaf with requires_grad=True)
    grey    a constant (a leaf without grad)   green  an input that needs a gradient but is not a model parameter
                                                      (only when `model=` is given)
    yellow  the root (also drawn bold)         red    what `highlight=` names, with the edges between them

The pictures the project is about:
    derivation_graph()  the seed example from scalars: a 2×2 image x, a 2×2 kernel w = [[a, b], [c, d]], the output
                        padded top/left to keep the input's size, y[i][j] = Σ_{u,v} w[u][v]·x[i+u−1][j+v−1] and
                        L = Σ y. Pixel x00 reaches y00 via x00·d, y01 via x00·c, y10 via x00·b and y11 via x00·a —
                        the flipped kernel: dL/dx = dL/dy ⊛ w^flip (a full convolution). Those paths are red.
    conv_graph()        the same kernel and padding on a 3×3 image, done by functional.conv2d on arrays:
                        pad → im2col → reshape → @ (with the reshaped weight) → reshape → permute → + bias, the
                        padded image and the im2col matrix drawn with their values and gradients.
    model_graph()       the demo CNN and its cross-entropy loss on two digits, an op cluster per module.

`render()` writes SVG/PNG/PDF with Graphviz's `dot`, or the DOT source (`.gv`) when `dot` is missing;
`graph_command()` is `tinygrad-conv graph {derivation,conv,model}`. Graphviz is imported only when drawing, so
the engine works without it.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinygrad_conv.conv_args import is_int
from tinygrad_conv.ops import normalize_axes
from tinygrad_conv.tensor import Tensor

#: Short labels of the op nodes, by op class name (ops.py); an unknown op shows its class name in lower case.
OP_LABELS = {
    "Add": "+", "Sub": "-", "Mul": "*", "Div": "/", "MatMul": "matmul", "Neg": "neg", "Pow": "**",
    "Exp": "exp", "Log": "log", "ReLU": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid",
    "Sum": "Σ", "Mean": "mean", "Max": "max",
    "Reshape": "reshape", "Permute": "permute", "Pad": "pad", "Index": "[ ]", "Unfold": "unfold (im2col)",
    "Fold": "fold (col2im)", "Crop": "crop", "Expand": "expand", "SumTo": "sum_to", "Scatter": "scatter",
    "Clamp": "clamp",
}  # fmt: skip

COMMUTATIVE = ("Add", "Mul")  # ops whose input order carries nothing: their edges are not numbered
FILL = {"result": "white", "parameter": "#cfe2ff", "input": "#d4f0d4", "constant": "#e6e6e6", "root": "#fff2a8"}
HIGHLIGHT = "#d62728"
GRAPH_NAMES = ("derivation", "conv", "backward", "model")
FORMATS = ("svg", "png", "pdf", "dot")
INSTALL_HINT = ("Graphviz's `dot` was not found, so only the DOT source was written; to render images install "
                "Graphviz: apt install graphviz / brew install graphviz / conda install graphviz")


# ---------------------------------------------------------------- the general renderer


def draw_graph(root: Tensor | Sequence[Tensor], *, show_data: bool = True, show_grad: bool = True, rankdir: str = "LR",
               max_nodes: int = 400, highlight: Collection[Tensor] = (), model: Any = None,
               scopes: Mapping[int, Any] | None = None, max_values: int = 4):
    """The graph that made `root` (a Tensor, or several drawn together: the gradients `grad` returns), as a
    graphviz.Digraph: a record node per tensor, a small node per op.

    show_data / show_grad: print values and gradients of tensors with at most `max_values` elements
    (4 significant digits; a matrix one row per line). highlight: tensors whose nodes — and, for op results,
    whose op nodes — are drawn red, with the edges between highlighted nodes. model: an nn.Module whose
    parameters are then labelled by their dotted names ("0.weight") and whose modules group the ops run
    inside them into clusters ("0: Conv2d") when `scopes` — from `module_scopes(model)` around the forward pass —
    says where each op ran. Raises ValueError when the graph has more than `max_nodes`
    nodes (tensors + ops). Node ids ("t0", "op0", ...) count in topological order, inputs first, so the same
    graph always gives the same DOT source.
    """
    return _draw(root, show_data=show_data, show_grad=show_grad, rankdir=rankdir, max_nodes=max_nodes,
                 highlight=highlight, model=model, scopes=scopes, max_values=max_values)[0]


def _walk(root: Tensor | Sequence[Tensor], stop: Collection[int] = ()) -> list[Tensor]:
    """Every tensor the root(s) depend on, each after its inputs (iterative depth-first: no recursion limit), not
    going past the tensors whose ids are in `stop`."""
    order: list[Tensor] = []
    seen: set[int] = set(stop)
    roots = [root] if isinstance(root, Tensor) else list(root)
    stack: list[tuple[Tensor, bool]] = [(r, False) for r in reversed(roots)]
    while stack:
        tensor, inputs_done = stack.pop()
        if inputs_done:
            order.append(tensor)
            continue
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        stack.append((tensor, True))
        # reversed, so the first argument is visited (and numbered) first
        stack.extend((p, False) for p in reversed(tensor.parents) if id(p) not in seen)
    return order


def _draw(root: Tensor | Sequence[Tensor], *, show_data: bool, show_grad: bool, rankdir: str, max_nodes: int,
          highlight: Collection[Tensor], model: Any, max_values: int, scopes: Mapping[int, Any] | None = None):
    """draw_graph, also returning the node id of every tensor (by id(tensor)) for callers that add layout."""
    import graphviz

    roots = [root] if isinstance(root, Tensor) else list(root) if isinstance(root, (list, tuple)) else [root]
    if not roots or not all(isinstance(r, Tensor) for r in roots):
        raise TypeError(f"draw_graph needs a Tensor (or a list of Tensors) as root, got {type(root).__name__}")
    root_ids = {id(r) for r in roots}
    if rankdir not in ("LR", "RL", "TB", "BT"):
        raise ValueError(f"rankdir must be 'LR', 'RL', 'TB' or 'BT', got {rankdir!r}")
    highlighted = set()
    for tensor in highlight:
        if not isinstance(tensor, Tensor):
            raise TypeError(f"highlight must hold Tensors, got {type(tensor).__name__}")
        highlighted.add(id(tensor))

    tensors = _walk(roots)
    ops = [t for t in tensors if t.op is not None]
    count = len(tensors) + len(ops)
    if count > max_nodes:
        raise ValueError(f"the graph has {count} nodes ({len(tensors)} tensors + {len(ops)} ops), more than "
                         f"max_nodes={max_nodes}: pass a larger max_nodes, or draw a smaller input")

    param_names, module_names = _model_names(model)
    ids = {id(t): f"t{k}" for k, t in enumerate(tensors)}
    op_ids = {id(t): f"op{k}" for k, t in enumerate(ops)}

    graph = graphviz.Digraph("computation_graph")
    graph.attr(rankdir=rankdir, nodesep="0.15", ranksep="0.3")
    graph.attr("node", fontname="Helvetica", fontsize="11")
    graph.attr("edge", arrowsize="0.6", color="#555555")

    # Node statements first, each in its module's cluster, then every edge at the top level.
    clusters: dict[str, tuple[str, list[tuple[str, dict]]]] = {}  # cluster name -> (label, [(node id, attrs)])
    unnamed: dict[int, tuple[str, str]] = {}
    top: list[tuple[str, dict]] = []
    for tensor in tensors:
        kind = _kind(tensor, param_names, model)
        red = id(tensor) in highlighted
        cells = _cells(tensor, param_names.get(id(tensor)), kind, show_data, show_grad, max_values)
        is_root = id(tensor) in root_ids
        fill = FILL["root"] if is_root else FILL[kind]
        border = 2 if is_root or red else 0
        attrs = {"label": _table(cells, fill, border, HIGHLIGHT if red else "black"), "shape": "plain"}
        if is_root:
            attrs["fontname"] = "Helvetica-Bold"
        if red:
            attrs["fontcolor"] = HIGHLIGHT
        scope = _scope_of(tensor, param_names, model, scopes or {})
        nodes = [(ids[id(tensor)], attrs)]
        if tensor.op is not None:
            op_attrs = {"label": _op_label(tensor), "shape": "ellipse", "fontsize": "10", "height": "0.3",
                        "width": "0.3", "margin": "0.04,0.02"}
            if id(tensor) in highlighted:
                op_attrs.update(color=HIGHLIGHT, fontcolor=HIGHLIGHT, penwidth="2")
            nodes.insert(0, (op_ids[id(tensor)], op_attrs))
        if scope is None:
            top.extend(nodes)
        else:
            cluster, cluster_label = _cluster_name(scope, module_names, unnamed)
            clusters.setdefault(cluster, (cluster_label, []))[1].extend(nodes)

    for name, attrs in top:
        graph.node(name, **attrs)
    for cluster, (cluster_label, nodes) in clusters.items():
        with graph.subgraph(name=cluster) as sub:
            sub.attr(label=cluster_label, style="rounded,filled", fillcolor="#f6f6f6", color="#b0b0b0",
                     labeljust="l", fontname="Helvetica", fontsize="11")
            for name, attrs in nodes:
                sub.node(name, **attrs)

    for tensor in ops:
        out_red = id(tensor) in highlighted
        for position, parent in enumerate(tensor.parents):
            attrs = {}
            if len(tensor.parents) >= 2 and tensor.op.name not in COMMUTATIVE:  # a + b = b + a: no order to show
                attrs.update(headlabel=str(position), labelfontsize="8", labelfontcolor="#777777")
            if out_red and id(parent) in highlighted:
                attrs.update(color=HIGHLIGHT, penwidth="2")
            graph.edge(ids[id(parent)], op_ids[id(tensor)], **attrs)
        graph.edge(op_ids[id(tensor)], ids[id(tensor)], **({"color": HIGHLIGHT, "penwidth": "2"} if out_red else {}))
    return graph, ids


def _model_names(model: Any) -> tuple[dict[int, str], dict[int, str]]:
    """id(parameter) -> dotted name and id(module) -> dotted name, from model (empty without one)."""
    if model is None:
        return {}, {}
    params: dict[int, str] = {}
    for name, param in model.named_parameters():
        params.setdefault(id(param), name)
    modules: dict[int, str] = {}
    for name, module in model.named_modules():
        modules.setdefault(id(module), name)
    return params, modules


def _kind(tensor: Tensor, param_names: dict[int, str], model: Any) -> str:
    if tensor.op is not None:
        return "result"
    if not tensor.requires_grad:
        return "constant"
    if model is not None and id(tensor) not in param_names:
        return "input"
    return "parameter"


def _scope_of(tensor: Tensor, param_names: dict[int, str], model: Any, scopes: Mapping[int, Any]) -> Any:
    """The module a node is drawn inside: the innermost module its op ran in; a parameter's owner."""
    if tensor.op is not None:
        return scopes.get(id(tensor))
    name = param_names.get(id(tensor))
    if name is None or "." not in name:
        return None
    owner = model
    for part in name.split(".")[:-1]:
        owner = getattr(owner, part, None)
        if owner is None:
            return None
    return owner


def _cluster_name(module: Any, module_names: dict[int, str], unnamed: dict[int, tuple[str, str]]) -> tuple[str, str]:
    """("cluster_<dotted name>", "<dotted name>: <ClassName>"); modules unknown to the model are numbered in the
    order they are met ("cluster_m0", label "<ClassName>")."""
    class_name = type(module).__name__
    name = module_names.get(id(module))
    if name:
        return f"cluster_{name}", f"{name}: {class_name}"
    if name == "":  # the model itself
        return "cluster_model", f"model: {class_name}"
    if id(module) not in unnamed:
        unnamed[id(module)] = (f"cluster_m{len(unnamed)}", class_name)
    return unnamed[id(module)]


def _cells(tensor: Tensor, dotted: str | None, kind: str, show_data: bool, show_grad: bool,
           max_values: int) -> list[str]:
    """The node's cells, as micrograd's record: name (shape dtype) | data … | grad … — each only when it says
    something: a 0-d float64 tensor has no shape line, a constant no grad, a big tensor no values."""
    title = [_html(name)] if (name := dotted or tensor.name) else []
    shape = "" if tensor.ndim == 0 else str(tuple(tensor.shape)).replace(" ", "")
    dtype = "" if tensor.dtype == np.float64 else str(tensor.dtype)
    if shape or dtype:
        title.append(f'<FONT POINT-SIZE="9">{" ".join(s for s in (shape, dtype) if s)}</FONT>')
    cells = ["<BR/>".join(title)] if title else []
    if tensor.size <= max_values:
        if show_data:
            cells.append(_values("data", tensor.data))
        if show_grad and kind != "constant":
            cells.append("grad —" if tensor.grad is None else _values("grad", tensor.grad))
    return cells or ["scalar"]


def _values(what: str, array: np.ndarray) -> str:
    """`data 3`, `data [1, 2]`, or a right-aligned grid under the word for a matrix; 4 significant digits.

    Size-1 axes are dropped first; an array of 3 or more axes left is shown as the matrix (first half of its axes,
    the rest), with the grid's shape under the word: unfold's (C, KH, KW, Ho, Wo) is the im2col matrix, one row per
    kernel tap and one column per window."""
    array = np.asarray(array)
    squeezed = array.squeeze()
    if squeezed.ndim == 0:
        return f"{what} {_number(squeezed.item())}"
    if squeezed.ndim == 1:
        return f"{what} [" + ", ".join(_number(v) for v in squeezed) + "]"
    if squeezed.ndim > 2:
        half = squeezed.ndim // 2
        matrix = squeezed.reshape(math.prod(squeezed.shape[:half]), -1)
        what = f'{what} <FONT POINT-SIZE="9">as {matrix.shape[0]}×{matrix.shape[1]}</FONT>'
    else:
        matrix = squeezed
    rows = "".join("<TR>" + "".join(f'<TD ALIGN="RIGHT">{_number(v)}</TD>' for v in row) + "</TR>" for row in matrix)
    return (f'<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="2">'
            f'<TR><TD COLSPAN="{matrix.shape[1]}" ALIGN="LEFT">{what}</TD></TR>{rows}</TABLE>')


def _table(cells: list[str], fill: str, border: int, color: str) -> str:
    """An HTML-like label drawn as a record: one row of boxed cells (records cannot take dot's flat edges)."""
    row = "".join(f"<TD>{cell}</TD>" for cell in cells)
    return (f'<<TABLE BORDER="{border}" CELLBORDER="1" CELLSPACING="0" CELLPADDING="4" BGCOLOR="{fill}" '
            f'COLOR="{color}"><TR>{row}</TR></TABLE>>')


def _number(value: float) -> str:
    text = f"{value:.4g}"
    return "0" if text == "-0" else text


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _op_label(tensor: Tensor) -> str:
    op = tensor.op
    label = OP_LABELS.get(op.name, op.name.lower())
    if op.name == "Pow":
        return f"**{op.arguments['exponent']:g}"
    if op.name == "Permute":
        return f"permute {','.join(str(a) for a in op.arguments['axes'])}"
    if op.name in ("Sum", "Mean", "Max"):
        ndim = tensor.parents[0].ndim
        axes = normalize_axes(op.arguments.get("axis"), ndim)
        if axes != tuple(range(ndim)):
            return f"{label} axis {','.join(str(a) for a in axes)}"
    return label


@contextmanager
def module_scopes(model: Any) -> Iterator[dict[int, Any]]:
    """Within the block, record the innermost module of `model` each op ran in: {id(result): module}, filled when
    the block ends. Forward hooks see every module call's inputs and output; the tensors a call made are those
    its output reaches without passing its inputs, and calls finish inner first, so the innermost module claims
    each tensor."""
    calls: list[tuple[Any, tuple, Any]] = []
    handles = [module.register_forward_hook(lambda m, inputs, out: calls.append((m, inputs, out)))
               for _, module in model.named_modules()]
    scopes: dict[int, Any] = {}
    try:
        yield scopes
    finally:
        for handle in handles:
            handle.remove()
        for module, inputs, output in calls:
            if isinstance(output, Tensor):
                for tensor in _walk(output, stop={id(x) for x in inputs if isinstance(x, Tensor)}):
                    if tensor.op is not None:
                        scopes.setdefault(id(tensor), module)


def _between(source: Tensor, target: Tensor) -> list[Tensor]:
    """The tensors on some path from source to target, both included (empty when target does not use source)."""
    reaches: set[int] = set()
    path = []
    for tensor in _walk(target):
        if tensor is source or any(id(p) in reaches for p in tensor.parents):
            reaches.add(id(tensor))
            path.append(tensor)
    return path


def graph_counts(graph) -> tuple[int, int]:
    """(nodes, edges) of a graph drawn here, counted in its DOT source."""
    nodes, edges = set(), 0
    for line in graph.source.splitlines():
        line = line.strip()
        if "->" in line:
            edges += "style=invis" not in line  # layout-only edges are not part of the graph
            continue
        match = re.match(r'^"?([\w.]+)"?\s*\[', line)
        if match and match.group(1) not in ("graph", "node", "edge"):
            nodes.add(match.group(1))
    return len(nodes), edges


# ---------------------------------------------------------------- the derivation, from scalars


@dataclass
class ScalarConv:
    """The seed example as 0-d Tensors; unpacks as (pixels, kernel, outputs, loss).

    pixels[i][j] is x_ij ("x00"...), kernel[u][v] is w_uv = [[a, b], [c, d]], outputs[i][j] is y_ij ("y00"...),
    loss is L = Σ y. products[(i, j, u, v)] is the tap w_uv·x[i+u−1][j+v−1] of y_ij, built as x·w (pixel first).
    """

    pixels: list[list[Tensor]]
    kernel: list[list[Tensor]]
    outputs: list[list[Tensor]]
    loss: Tensor
    products: dict[tuple[int, int, int, int], Tensor] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.pixels, self.kernel, self.outputs, self.loss))


KERNEL_NAMES = (("a", "b"), ("c", "d"))


def scalar_conv_example(image: Any = None, kernel: Any = None, size: int = 3) -> ScalarConv:
    """A convolution built from scalars, every multiply and add a node — the derivation's picture.

    image: size×size numbers (default 1, 2, …, size²), size 2 to 4 (`size` is used only when image is None);
    kernel: 2×2 numbers [[a, b], [c, d]] (default [[1, 2], [3, 4]]). The output keeps the input's size by padding
    the top and left with zeros — padding=((1, 0), (1, 0)) in conv2d's terms — and the taps that fall on the
    padding are simply left out, so no zero nodes are drawn:

        y[i][j] = Σ_{u,v ∈ {0,1}} w[u][v]·x[i+u−1][j+v−1],      L = Σ_ij y[i][j]   (so every dL/dy = 1)

    Each y and L are sums taken pairwise (a tree, not a chain), to keep the drawing shallow.
    Call `loss.backward()` to fill every pixel's and weight's grad: dL/dx00 = d + c + b + a.
    """
    if image is None:
        if isinstance(size, bool) or size not in (2, 3, 4):
            raise ValueError(f"size must be 2, 3 or 4, got {size!r}")
        image = np.arange(1, size * size + 1, dtype=np.float64).reshape(size, size)
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2 or image.shape[0] != image.shape[1] or not 2 <= image.shape[0] <= 4:
        raise ValueError(f"image must be a square 2-D array of size 2×2 to 4×4, got shape {image.shape}")
    kernel = np.array([[1.0, 2.0], [3.0, 4.0]]) if kernel is None else np.asarray(kernel, dtype=np.float64)
    if kernel.shape != (2, 2):
        raise ValueError(f"kernel must be 2×2 ([[a, b], [c, d]]), got shape {kernel.shape}")
    size = image.shape[0]
    pixels = [[Tensor(image[i, j], requires_grad=True, name=f"x{i}{j}") for j in range(size)] for i in range(size)]
    weights = [[Tensor(kernel[u, v], requires_grad=True, name=KERNEL_NAMES[u][v]) for v in range(2)] for u in range(2)]
    products: dict[tuple[int, int, int, int], Tensor] = {}
    outputs = []
    for i in range(size):
        row = []
        for j in range(size):
            taps = []
            for u in range(2):
                for v in range(2):
                    r, c = i + u - 1, j + v - 1
                    if r >= 0 and c >= 0:  # r, c ≤ i, j < size: only the top/left padding is ever read
                        product = pixels[r][c] * weights[u][v]
                        product.name = f"x{r}{c}·{KERNEL_NAMES[u][v]}"
                        products[(i, j, u, v)] = product
                        taps.append(product)
            y = _tree_sum(taps, f"y{i}{j}")
            row.append(y)
        outputs.append(row)
    loss = _tree_sum([y for row in outputs for y in row], "L")
    return ScalarConv(pixels, weights, outputs, loss, products)


def _tree_sum(terms: list[Tensor], name: str) -> Tensor:
    """t0 + t1 + … as a balanced tree of additions (depth ⌈log2 n⌉), named `name`; the partial sums inside it are
    named after it with a prime (y00′), so no box is anonymous."""
    while len(terms) > 1:
        terms = [terms[k] + terms[k + 1] if k + 1 < len(terms) else terms[k] for k in range(0, len(terms), 2)]
        for term in terms:
            if term.name is None:
                term.name = f"{name}′"
    terms[0].name = name
    return terms[0]


def derivation_graph(size: int = 2, show_grad: bool = True):
    """The scalar convolution (scalar_conv_example) after L.backward(), the flipped kernel drawn in red.

    Pixel x00 reaches four outputs — y00 via x00·d, y01 via x00·c, y10 via x00·b, y11 via x00·a — so its gradient
    is dL/dy00·d + dL/dy01·c + dL/dy10·b + dL/dy11·a: the output gradient convolved with the flipped kernel.
    Those four products, the sums they flow through, the outputs they reach and the edges between are red.

    Laid out so the paths read without crossing: the leaves in one column, the kernel turned 180° around x00
    (d, c, x00, b, a, then the other pixels), the products in one column grouped by the output they feed (in
    reading order, x00's first in each), and the outputs in reading order. The default 2×2 image is the smallest
    in which x00 reaches all four outputs; a 3×3 image (size=3) is drawn the same way but its 25 products fan out
    from 13 leaves, which no order untangles.
    """
    example = scalar_conv_example(size=size)
    example.loss.backward()
    (a, b), (c, d) = example.kernel
    x00 = example.pixels[0][0]
    highlight: list[Tensor] = [x00, a, b, c, d]
    for i, j in ((1, 1), (1, 0), (0, 1), (0, 0)):  # x00 is tap (u, v) = (1 − i, 1 − j) of y_ij: a, b, c, d
        highlight += _between(example.products[(i, j, 1 - i, 1 - j)], example.outputs[i][j])
    graph, ids = _draw(example.loss, show_data=True, show_grad=show_grad, rankdir="LR", max_nodes=400,
                       highlight=highlight, model=None, max_values=4)
    # Three columns, top to bottom (invisible edges inside a same-rank group fix the order): the leaves, the kernel
    # flipped around x00 so its four red edges fan out from the middle; the product ops, grouped by output (the
    # products dict is in that order, x00's tap first); every y in reading order, so the sums never cross.
    leaves = [d, c, x00, b, a] + [x for row in example.pixels for x in row][1:]
    op_ids = {id(t): f"op{k}" for k, t in enumerate(t for t in _walk(example.loss) if t.op is not None)}
    columns = (("leaves", [ids[id(t)] for t in leaves]),
               ("products", [op_ids[id(t)] for t in example.products.values()]),
               ("outputs", [ids[id(y)] for row in example.outputs for y in row]))
    for name, column in columns:
        with graph.subgraph(name=name) as group:
            group.attr(rank="same")
            for upper, lower in zip(column, column[1:]):
                group.edge(upper, lower, style="invis")
    k = {name: _number(float(t.data)) for name, t in zip("abcd", (a, b, c, d))}
    lines = [
        "dL/dx = dL/dy ⊛ w^flip: the input's gradient is the output's gradient convolved with the kernel turned 180°",
        f"{size}×{size} image x, 2×2 kernel w = [[a, b], [c, d]] = [[{k['a']}, {k['b']}], [{k['c']}, {k['d']}]], "
        "padded top/left:  y[i][j] = Σ_(u,v) w[u][v]·x[i+u−1][j+v−1],  L = Σ y  (so every dL/dy = 1)",
        "red: x00 reaches y00 via x00·d, y01 via x00·c, y10 via x00·b, y11 via x00·a, so dL/dx00 = d + c + b + a"
        + (f" = {k['d']} + {k['c']} + {k['b']} + {k['a']} = {_number(float(x00.grad))}" if show_grad else ""),
    ]
    graph.attr(ranksep="0.45")  # room for the fan of edges from the pixels and weights into the products
    graph.attr(label="\\l".join(lines) + "\\l", labelloc="t", labeljust="l", fontname="Helvetica", fontsize="14")
    return graph


# ---------------------------------------------------------------- conv2d from primitives, and the demo CNN


def conv_graph(show_grad: bool = True):
    """One functional.conv2d — the derivation's kernel and padding on a 3×3 image, on arrays — after backward of
    L = y.sum().

    x (1, 1, 3, 3) = 1…9, weight (1, 1, 2, 2) = [[1, 2], [3, 4]], bias (1,) = 1, padding=((1, 0), (1, 0)):
    pad → im2col → reshape → @ (with the reshaped weight) → reshape → permute → + (reshaped bias) → Σ.
    Every array shows its values (up to 36 numbers: the padded x is 4×4, the im2col matrix 4×9, one row per kernel
    tap, one column per window), data and grad, so the input gradient can be followed back: the columns' grad
    (Wᵀ · dL/dY, each row a kernel entry) is folded (col2im) into the padded grid, each window's numbers added
    where they were read, and cropped to x.grad (x00's is 10 = a + b + c + d, as in derivation_graph).
    """
    from tinygrad_conv import functional as F

    x = Tensor(np.arange(1.0, 10.0).reshape(1, 1, 3, 3), requires_grad=True, name="x")
    weight = Tensor([[[[1.0, 2.0], [3.0, 4.0]]]], requires_grad=True, name="weight")
    bias = Tensor([1.0], requires_grad=True, name="bias")
    y = F.conv2d(x, weight, bias, padding=((1, 0), (1, 0)))
    y.name = "y"
    loss = y.sum()
    loss.name = "L"
    loss.backward()
    for tensor in _walk(loss):
        if tensor.op is not None and tensor.op.name in ("Pad", "Unfold"):
            tensor.name = {"Pad": "padded", "Unfold": "cols"}[tensor.op.name]
    graph = draw_graph(loss, show_grad=show_grad, max_values=36, rankdir="TB")
    lines = ["conv2d(x, weight, bias, padding=((1, 0), (1, 0))) composed from primitives, L = Σ y"]
    if show_grad:
        lines.append("x.grad = crop(fold(cols.grad)): col2im adds each window's gradient back where the window was "
                     "read, then the padding is cropped")
    graph.attr(label="\\l".join(lines) + "\\l", labelloc="t", labeljust="l", fontname="Helvetica", fontsize="14")
    return graph


def backward_graph(show_grad: bool = True):
    """The backward pass of conv_graph's convolution as a graph of its own, built by grad(..., create_graph=True).

    dL/dW = dL/dY · colsᵀ is a matmul with the forward's im2col columns; dL/dX = crop(fold(Wᵀ · dL/dY)) is
    matmul → fold (col2im) → crop. dL/dY is a given 3×3 gradient (1…9), so every array's values are shown.
    `show_grad` is accepted for the command line's --no-grad; gradients of gradients are not drawn.
    """
    from tinygrad_conv import functional as F
    from tinygrad_conv.tensor import grad

    x = Tensor(np.arange(1.0, 10.0).reshape(1, 1, 3, 3), requires_grad=True, name="x")
    weight = Tensor([[[[1.0, 2.0], [3.0, 4.0]]]], requires_grad=True, name="weight")
    y = F.conv2d(x, weight, padding=((1, 0), (1, 0)))
    grad_y = Tensor(np.arange(1.0, 10.0).reshape(y.shape), name="dL/dY")
    grad_x, grad_w = grad(y, [x, weight], grad_y, create_graph=True)
    grad_x.name, grad_w.name = "dL/dX", "dL/dW"
    for tensor in _walk([grad_x, grad_w]):  # name what the two matmuls multiply
        if tensor.op is None and not tensor.requires_grad:
            tensor.name = "dL/dY"  # laid out (groups, Cout, Ho·Wo·N), a constant: it needs no gradient here
        elif tensor.op is not None and tensor.op.name == "Permute" and tensor.parents[0].parents[0] is weight:
            tensor.name = "Wᵀ"
        elif tensor.op is not None and tensor.op.name == "Reshape" and tensor.parents[0].op is not None \
                and tensor.parents[0].op.name == "Unfold":
            tensor.name = "cols"
    graph = draw_graph([grad_x, grad_w], show_grad=False, max_values=9, rankdir="TB")
    graph.attr(label="the backward pass of conv2d(x, weight, padding=((1, 0), (1, 0))) as a graph: "
               "dL/dW = dL/dY · colsᵀ,  dL/dX = crop(fold(Wᵀ · dL/dY))",
               labelloc="t", labeljust="l", fontname="Helvetica", fontsize="14")
    return graph


def model_graph(show_grad: bool = False, depth: int = 0):
    """The demo CNN (train.build_model(seed=0)) and its cross-entropy loss on the first two training digits.

    depth 0 (torchview's idea): one box per layer with its input → output shape and parameter count (and, with
    show_grad, the size ‖grad‖ of its parameters' gradient after loss.backward()), top to bottom.
    depth 1: every op, clustered by the module it ran in, parameters with their dotted names ("0.weight"); the
    images are given requires_grad=True so the first convolution's pad and im2col are part of the graph.
    """
    from tinygrad_conv import data, train
    from tinygrad_conv import functional as F

    if not is_int(depth) or depth < 0:
        raise ValueError(f"depth must be an int >= 0, got {depth!r}")
    model = train.build_model(seed=0)
    x_train, y_train, _, _ = data.load_split()
    images = Tensor(data.standardize(x_train[:2]), requires_grad=depth > 0, name="images")
    labels = np.asarray(y_train[:2])
    calls: list[tuple[Any, tuple, Any]] = []
    handles = [layer.register_forward_hook(lambda m, inputs, out: calls.append((m, inputs, out)))
               for _, layer in model.named_children()]
    try:
        with module_scopes(model) as scopes:
            logits = model(images)
    finally:
        for handle in handles:
            handle.remove()
    logits.name = "logits"
    loss = F.cross_entropy(logits, labels)
    loss.name = "loss"
    if show_grad:
        loss.backward()
    title = (f"the demo CNN on two digits (labels {', '.join(str(int(v)) for v in labels)}) and its cross-entropy "
             "loss")
    if depth == 0:
        graph = _layer_graph(model, calls, images, loss, show_grad)
    else:
        graph = draw_graph(loss, show_grad=show_grad, model=model, scopes=scopes, max_nodes=400, rankdir="TB")
    graph.attr(label=title, labelloc="t", labeljust="l", fontname="Helvetica", fontsize="14")
    return graph


def _layer_graph(model: Any, calls: list[tuple[Any, tuple, Any]], images: Tensor, loss: Tensor, show_grad: bool):
    """One box per layer call: "name: Layer(args)", input → output shape, parameter count, ‖grad‖; an edge where a
    layer's input is an earlier call's output (or the images), top to bottom."""
    import graphviz

    names = {id(module): name for name, module in model.named_children()}
    graph = graphviz.Digraph("layers")
    graph.attr(rankdir="TB", nodesep="0.2", ranksep="0.25")
    graph.attr("node", fontname="Helvetica", fontsize="11", shape="plain")
    graph.attr("edge", arrowsize="0.6", color="#555555")
    producer = {id(images): "images"}
    graph.node("images", _table([f"images<BR/><FONT POINT-SIZE=\"9\">{_shape(images)}</FONT>"], FILL["input"], 0,
                                "black"))
    for k, (module, inputs, output) in enumerate(calls):
        params = list(module.parameters())
        count = sum(p.size for p in params)
        text = repr(module).splitlines()[0].rstrip("(")
        cells = [f"<B>{_html(names.get(id(module), '?'))}: {_html(text)}</B><BR/>"
                 f"<FONT POINT-SIZE=\"9\">{' , '.join(_shape(x) for x in inputs if isinstance(x, Tensor))} → "
                 f"{_shape(output)}</FONT>"]
        if count:
            norm = math.sqrt(sum(float(np.sum(np.square(p.grad))) for p in params if p.grad is not None))
            grad_text = f"<BR/>‖grad‖ {_number(norm)}" if show_grad and any(p.grad is not None for p in params) else ""
            cells.append(f"{count:,} params{grad_text}")
        node = f"layer{k}"
        graph.node(node, _table(cells, FILL["parameter"] if count else FILL["result"], 0, "black"))
        for x in inputs:
            if isinstance(x, Tensor) and id(x) in producer:
                graph.edge(producer[id(x)], node)
        producer[id(output)] = node
    graph.node("loss", _table([f"loss {_number(loss.item())}"], FILL["root"], 2, "black"))
    last = producer.get(id(calls[-1][2])) if calls else "images"
    graph.edge(last, "loss", label=" cross_entropy", fontsize="9")
    return graph


def _shape(tensor: Tensor) -> str:
    return str(tuple(tensor.shape)).replace(" ", "")


# ---------------------------------------------------------------- writing files, and the CLI


def _resolve_format(path: Path, fmt: str | None) -> str:
    """The format to write: out's extension decides (.svg, .png, .pdf, .dot or .gv) unless `fmt` is given; a
    `fmt` that contradicts the extension, or an extension no format has, is an error (never a PNG named .svg)."""
    suffix = path.suffix.lower().lstrip(".")
    from_suffix = "dot" if suffix == "gv" else suffix
    if fmt is not None:
        fmt = "dot" if fmt.lower() == "gv" else fmt.lower()
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        if suffix and from_suffix != fmt:
            raise ValueError(f"--format {fmt} does not match the file name {path.name}: name it .{fmt} or drop "
                             "--format to let the extension decide")
        return fmt
    if not suffix:
        return "svg"
    if from_suffix not in FORMATS:
        raise ValueError(f"cannot write a graph as .{suffix} ({path.name}): use .svg, .png, .pdf or .gv, "
                         "or pass --format")
    return from_suffix


DOT_TIMEOUT = 60  # seconds: the pictures here take well under one


def _run_dot(dot: str, source: str, fmt: str) -> bytes | None:
    """Graphviz's `dot` run on source: the image, None when dot cannot be started, an OSError with one line when
    it fails or hangs."""
    try:
        done = subprocess.run([dot, f"-T{fmt}"], input=source.encode("utf-8"), capture_output=True,
                              timeout=DOT_TIMEOUT)
    except (FileNotFoundError, PermissionError):
        return None
    except subprocess.TimeoutExpired:
        raise OSError(f"Graphviz's dot did not finish within {DOT_TIMEOUT} s") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise OSError(f"Graphviz's dot failed (exit {done.returncode}): {message[-1] if message else 'no message'}")
    return done.stdout


def render(graph, out: str, fmt: str | None = None) -> tuple[str, bool]:
    """Write graph to `out` as svg, png, pdf or dot (fmt; by default out's suffix, else svg).

    Returns (path written, rendered_image). "dot" writes the DOT source to `out`. When Graphviz's `dot` is
    missing, an image format falls back to the DOT source in a `.gv` file beside `out`, and rendered_image
    is False; when `dot` fails or runs past DOT_TIMEOUT seconds, OSError with one line.
    """
    path = Path(out)
    fmt = _resolve_format(path, fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt != "dot":
        dot = shutil.which("dot")
        image = None if dot is None else _run_dot(dot, graph.source, fmt)
        if image is not None:
            path.write_bytes(image)
            return str(path), True
        path = path.with_suffix(".gv")
    path.write_text(graph.source, encoding="utf-8")
    return str(path), False


def graph_command(name: str, fmt: str | None, out: str | None, show_grad: bool, depth: int = 0) -> int:
    """`tinygrad-conv graph NAME [--format F] [--out FILE] [--no-grad] [--depth D]`: draw, write, print the path
    and counts. --out's extension decides the format unless --format is given; its folders are created.

    Exit code 2 for an unknown graph or format, or a format that contradicts the file name; without Graphviz's
    `dot` the DOT source is written (.gv) with a one-line install hint, and the code is 1 only when an image format
    was asked for with --format.
    """
    if name not in GRAPH_NAMES:
        print(f"tinygrad-conv: error: unknown graph {name!r}: choose derivation, conv, backward or model",
              file=sys.stderr)
        return 2
    if fmt is not None and fmt.lower() not in FORMATS:
        print(f"tinygrad-conv: error: unknown format {fmt!r}: choose svg, png, pdf or dot", file=sys.stderr)
        return 2
    fmt = None if fmt is None else fmt.lower()
    out = out or f"{name}.{fmt or 'svg'}"
    try:
        _resolve_format(Path(out), fmt)
    except ValueError as error:
        print(f"tinygrad-conv: error: {error}", file=sys.stderr)
        return 2
    if name == "model":
        graph = model_graph(show_grad=show_grad, depth=depth)
    else:
        build = {"derivation": derivation_graph, "conv": conv_graph, "backward": backward_graph}[name]
        graph = build(show_grad=show_grad)
    try:
        path, rendered = render(graph, out, fmt)
    except OSError as error:
        print(f"tinygrad-conv: error: {out}: {error.strerror or error}", file=sys.stderr)
        return 1
    nodes, edges = graph_counts(graph)
    print(f"wrote {path} ({name} graph: {nodes} nodes, {edges} edges)")
    if not rendered and _resolve_format(Path(out), fmt) != "dot":  # an image was wanted, but `dot` is missing
        print(INSTALL_HINT, file=sys.stderr)
        return 1 if fmt is not None else 0
    return 0
