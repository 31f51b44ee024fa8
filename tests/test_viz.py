"""The graph renderer: structure asserted on the DOT source (no Graphviz needed), images with `dot`."""

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from tinygrad_conv import viz
from tinygrad_conv.tensor import Tensor

# ---------------------------------------------------------------- reading the DOT source back


def _attrs(text: str) -> dict:
    """`key=value ...` of one DOT attribute list; values bare, "quoted" or <HTML>."""
    attrs, k = {}, 0
    while k < len(text):
        match = re.compile(r"\s*(\w+)=").match(text, k)
        if not match:
            break
        key, k = match.group(1), match.end()
        if text[k] == '"':
            end = k + 1
            while text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            value, k = text[k + 1 : end], end + 1
        elif text[k] == "<":
            depth, end = 0, k
            while True:
                depth += {"<": 1, ">": -1}.get(text[end], 0)
                end += 1
                if depth == 0:
                    break
            value, k = text[k:end], end
        else:
            end = k
            while end < len(text) and not text[end].isspace():
                end += 1
            value, k = text[k:end], end
        attrs[key] = value
    return attrs


class Dot:
    """Nodes, edges (in order) and clusters of a graph's DOT source."""

    def __init__(self, graph):
        self.source = graph.source
        self.nodes: dict[str, dict] = {}
        self.edges: list[tuple[str, str, dict]] = []
        self.clusters: dict[str, dict] = {}  # name -> {"label": ..., "nodes": [...]}
        cluster = None
        for line in self.source.splitlines():
            line = line.strip()
            if match := re.match(r"subgraph (\w+) \{$", line):
                cluster = match.group(1) if match.group(1).startswith("cluster_") else None
                if cluster:
                    self.clusters[cluster] = {"nodes": []}
            elif line == "}":
                cluster = None
            elif match := re.match(r"(\w+) -> (\w+)(?: \[(.*)\])?$", line):
                attrs = _attrs(match.group(3) or "")
                if attrs.get("style") != "invis":
                    self.edges.append((match.group(1), match.group(2), attrs))
            elif match := re.match(r"(\w+) \[(.*)\]$", line):
                name, attrs = match.group(1), _attrs(match.group(2))
                if name in ("graph", "node", "edge"):
                    continue
                self.nodes[name] = attrs
                if cluster:
                    self.clusters[cluster]["nodes"].append(name)
            elif cluster and "label" in (attrs := _attrs(line)):
                self.clusters[cluster]["label"] = attrs["label"]

    def text(self, node: str) -> str:
        """A node's label as plain text, HTML tags removed."""
        label = self.nodes[node]["label"]
        label = label[1:-1] if label.startswith("<") else label
        return " ".join(re.sub(r"<[^>]*>", " ", label).split())

    def named(self, name: str) -> str:
        """The tensor node whose label starts with `name`."""
        found = [n for n in self.nodes if n.startswith("t") and self.text(n).split(" ")[0] == name]
        assert len(found) == 1, f"{len(found)} nodes named {name!r}"
        return found[0]

    def ops(self, label: str) -> list[str]:
        return [n for n, a in self.nodes.items() if n.startswith("op") and a["label"].strip('"') == label]

    def parents(self, node: str) -> list[str]:
        """Tails of the edges into `node`, by argument position."""
        into = [(e[2].get("headlabel", "0"), e[0]) for e in self.edges if e[1] == node]
        return [tail for _, tail in sorted(into, key=lambda p: int(p[0]))]

    def children(self, node: str) -> list[str]:
        return [e[1] for e in self.edges if e[0] == node]

    def red(self, node: str) -> bool:
        return viz.HIGHLIGHT in self.nodes[node].get("label", "") or self.nodes[node].get("color") == viz.HIGHLIGHT

    def fill(self, node: str) -> str:
        return re.search(r'BGCOLOR="([^"]+)"', self.nodes[node]["label"]).group(1)


def _scalar(value, name=None, requires_grad=True):
    return Tensor(float(value), requires_grad=requires_grad, name=name)


# ---------------------------------------------------------------- the general renderer


def test_x_times_x_draws_two_edges_into_one_op():
    x = _scalar(3, "x")
    y = x * x
    y.backward()
    dot = Dot(viz.draw_graph(y))
    assert len(dot.nodes) == 3 and len(dot.edges) == 3
    (op,) = dot.ops("*")
    x_node = dot.named("x")
    assert dot.parents(op) == [x_node, x_node]
    assert not any("headlabel" in e[2] for e in dot.edges if e[1] == op)  # x·y = y·x: no order to number
    difference = Dot(viz.draw_graph(x - x))
    (op,) = difference.ops("-")
    assert sorted(e[2]["headlabel"] for e in difference.edges if e[1] == op) == ["0", "1"]
    assert viz.graph_counts(viz.draw_graph(y)) == (3, 3)


def test_small_expression_has_a_node_per_tensor_and_op():
    a, b, c = _scalar(2, "a"), _scalar(-3, "b"), _scalar(10, "c")
    e = a * b
    d = e + c
    loss = d * 2.0  # 2.0 becomes a constant leaf
    loss.backward()
    dot = Dot(viz.draw_graph(loss))
    # tensors a, b, c, e, d, 2.0, loss; ops *, +, *
    assert len(dot.nodes) == 7 + 3
    assert len(dot.edges) == 3 * (2 + 1)
    assert len(dot.ops("*")) == 2 and len(dot.ops("+")) == 1


def test_labels_show_name_shape_values_and_grads():
    x = _scalar(3, "x")
    w = Tensor(np.arange(1.0, 5.0), requires_grad=True, name="w")
    big = Tensor(np.ones((2, 3), np.float32), requires_grad=True, name="big")
    loss = (x * w).sum() + big.sum()
    loss.backward()
    dot = Dot(viz.draw_graph(loss))
    assert dot.text(dot.named("x")) == "x data 3 grad 10"
    assert dot.text(dot.named("w")) == "w (4,) data [1, 2, 3, 4] grad [3, 3, 3, 3]"
    assert dot.text(dot.named("big")) == "big (2,3) float32"  # more than 4 numbers: no values
    no_grad = Dot(viz.draw_graph(loss, show_grad=False, show_data=False))
    assert no_grad.text(no_grad.named("x")) == "x"


def test_values_have_four_significant_digits_and_matrices_a_row_per_line():
    x = Tensor([[1 / 3, 2.0], [123456.0, -0.5]], requires_grad=True, name="m")
    dot = Dot(viz.draw_graph(x * 1.0))
    assert dot.text(dot.named("m")) == "m (2,2) data 0.3333 2 1.235e+05 -0.5 grad —"
    assert dot.nodes[dot.named("m")]["label"].count("<TR>") >= 3  # the data grid: a header row and two rows


def test_parents_are_drawn_in_argument_order():
    a, b = _scalar(5, "a"), _scalar(2, "b")
    for op_label, out in (("-", a - b), ("/", a / b), ("-", b - a)):
        dot = Dot(viz.draw_graph(out))
        (op,) = dot.ops(op_label)
        first, second = out._ctx.parents
        assert [dot.text(p).split()[0] for p in dot.parents(op)] == [first.name, second.name]


def test_parameters_constants_and_results_have_distinct_fills():
    w = _scalar(2, "w")  # a parameter: a leaf that requires grad
    k = _scalar(4, "k", requires_grad=False)  # a constant
    hidden = w * k
    loss = hidden + 1.0
    dot = Dot(viz.draw_graph(loss))
    hidden_node = [n for n in dot.nodes if n.startswith("t") and "data 8" in dot.text(n)][0]
    fills = {dot.fill(dot.named("w")), dot.fill(dot.named("k")), dot.fill(hidden_node)}
    assert fills == {viz.FILL["parameter"], viz.FILL["constant"], viz.FILL["result"]}
    assert "grad" not in dot.text(dot.named("k"))  # constants never get a gradient


def test_root_is_highlighted():
    a = _scalar(2, "a")
    loss = a * a
    loss.name = "loss"
    dot = Dot(viz.draw_graph(loss))
    root = dot.named("loss")
    assert dot.fill(root) == viz.FILL["root"] and 'BORDER="2"' in dot.nodes[root]["label"]
    assert "Bold" in dot.nodes[root]["fontname"]
    assert 'BORDER="0"' in dot.nodes[dot.named("a")]["label"]


def test_highlight_marks_the_nodes_and_the_edges_between_them():
    a, b, c = _scalar(2, "a"), _scalar(3, "b"), _scalar(4, "c")
    ab = a * b
    loss = ab + c
    dot = Dot(viz.draw_graph(loss, highlight=[a, ab]))
    (mul,) = dot.ops("*")
    (add,) = dot.ops("+")
    assert dot.red(dot.named("a")) and dot.red(mul) and not dot.red(dot.named("b")) and not dot.red(add)
    red_edges = {(t, h) for t, h, attrs in dot.edges if attrs.get("color") == viz.HIGHLIGHT}
    ab_node = dot.children(mul)[0]
    assert red_edges == {(dot.named("a"), mul), (mul, ab_node)}
    with pytest.raises(TypeError, match="highlight"):
        viz.draw_graph(loss, highlight=["a"])


def test_too_many_nodes_is_an_error_naming_the_count():
    x = _scalar(1, "x")
    y = x
    for _ in range(150):
        y = y + x
    with pytest.raises(ValueError, match=r"has 301 nodes .* max_nodes=300: pass a larger max_nodes, or draw a smaller"):
        viz.draw_graph(y, max_nodes=300)
    assert viz.graph_counts(viz.draw_graph(y)) == (301, 450)


def test_a_deep_graph_is_walked_without_recursion():
    x = _scalar(1, "x")
    y = x
    for _ in range(3000):
        y = y * 1.0
    nodes, edges = viz.graph_counts(viz.draw_graph(y, max_nodes=10_000, show_data=False))
    assert nodes == 1 + 3 * 3000 and edges == 3 * 3000


def test_node_ids_are_deterministic():
    def build():
        x = _scalar(3, "x")
        return viz.draw_graph(x * x + x).source

    assert build() == build()
    assert re.search(r"\bid\(|0x[0-9a-f]{6}", build()) is None


def test_the_engine_imports_without_graphviz():
    code = "import sys; sys.modules['graphviz'] = None; import tinygrad_conv.viz, tinygrad_conv.functional; print('ok')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.stdout.strip() == "ok", result.stderr


# ---------------------------------------------------------------- the derivation from scalars


def test_scalar_conv_example_matches_conv2d_and_the_flipped_kernel():
    from tinygrad_conv import functional as F

    example = viz.scalar_conv_example()
    pixels, kernel, outputs, loss = example
    assert [[x.name for x in row] for row in pixels] == [["x00", "x01", "x02"], ["x10", "x11", "x12"],
                                                         ["x20", "x21", "x22"]]
    assert [[w.name for w in row] for row in kernel] == [["a", "b"], ["c", "d"]]
    loss.backward()
    x = Tensor(np.arange(1.0, 10.0).reshape(1, 1, 3, 3), requires_grad=True)
    y = F.conv2d(x, Tensor([[[[1.0, 2.0], [3.0, 4.0]]]]), padding=((1, 0), (1, 0)))
    y.sum().backward()
    np.testing.assert_array_equal([[float(t.data) for t in row] for row in outputs], y.data[0, 0])
    np.testing.assert_array_equal([[float(t.grad) for t in row] for row in pixels], x.grad[0, 0])
    assert float(pixels[0][0].grad) == 1 + 2 + 3 + 4


def test_scalar_conv_example_takes_a_4x4_image_and_rejects_other_shapes():
    pixels, _, outputs, loss = viz.scalar_conv_example(size=4)
    assert len(pixels) == 4 and outputs[3][3].name == "y33"
    with pytest.raises(ValueError, match="image"):
        viz.scalar_conv_example(image=np.ones((5, 5)))
    with pytest.raises(ValueError, match="kernel"):
        viz.scalar_conv_example(kernel=np.ones((3, 3)))


def test_derivation_graph_has_a_node_per_multiply_and_add():
    dot = Dot(viz.derivation_graph())
    # 2×2 output, top/left padding: rows and columns see 1, 2 taps, so (1 + 2)² = 9 products;
    # each y adds its taps (9 − 4 additions) and L adds the 4 outputs (3 additions).
    assert len(dot.ops("*")) == 9
    assert len(dot.ops("+")) == 5 + 3
    assert len(dot.nodes) == 8 + 2 * (9 + 8) and len(dot.edges) == 3 * (9 + 8)
    big = Dot(viz.derivation_graph(size=3))  # 3×3: (1 + 2 + 2)² = 25 products, 16 + 8 additions
    assert len(big.ops("*")) == 25 and len(big.ops("+")) == 16 + 8


def _column(dot: Dot, first: str) -> list[str]:
    """The nodes chained by invisible edges (a same-rank column fixed top to bottom), starting at `first`."""
    chain = dict(re.findall(r"(\w+) -> (\w+) \[style=invis\]", dot.source))
    column = [first]
    while column[-1] in chain:
        column.append(chain[column[-1]])
    return column


def test_derivation_layout_flips_the_kernel_around_x00_and_groups_products_by_output():
    dot = Dot(viz.derivation_graph())
    leaves = [dot.text(n).split()[0] for n in _column(dot, dot.named("d"))]
    assert leaves == ["d", "c", "x00", "b", "a", "x01", "x10", "x11"]
    first_product = next(op for op in dot.ops("*") if dot.named("x00") in dot.parents(op)
                         and dot.named("d") in dot.parents(op))
    products = [dot.text(dot.children(op)[0]).split()[0] for op in _column(dot, first_product)]
    # y00 = x00·d (the product is y00 itself); y01 = x00·c + x01·d; y10 = x00·b + x10·d;
    # y11 = x00·a + x01·b + x10·c + x11·d
    assert products == ["y00", "x00·c", "x01·d", "x00·b", "x10·d", "x00·a", "x01·b", "x10·c", "x11·d"]
    outputs = [dot.text(n).split()[0] for n in _column(dot, dot.named("y00"))]
    assert outputs == ["y00", "y01", "y10", "y11"]


def test_derivation_red_paths_from_x00_carry_the_flipped_kernel():
    dot = Dot(viz.derivation_graph())
    x00 = dot.named("x00")
    reached = {}
    for mul in dot.children(x00):
        assert dot.red(mul)
        pixel, weight = dot.parents(mul)
        assert pixel == x00
        node = mul  # follow the red path to the output it feeds
        while not re.fullmatch(r"y\d\d", dot.text(node).split()[0]):  # y11′ is a partial sum inside y11
            (node,) = [child for child in dot.children(node) if dot.red(child)]
        reached[dot.text(weight).split()[0]] = dot.text(node).split()[0]
    assert reached == {"a": "y11", "b": "y10", "c": "y01", "d": "y00"}
    red_ops = [n for n in dot.nodes if n.startswith("op") and dot.red(n)]
    assert len([n for n in red_ops if dot.nodes[n]["label"] == "*"]) == 4


def test_derivation_x00_gradient_is_the_kernel_sum():
    graph = viz.derivation_graph()
    dot = Dot(graph)
    assert dot.text(dot.named("x00")) == "x00 data 1 grad 10"  # a + b + c + d = 1 + 2 + 3 + 4
    assert "dL/dx = dL/dy ⊛ w^flip" in dot.source
    assert "grad" not in Dot(viz.derivation_graph(show_grad=False)).text(dot.named("x00"))


# ---------------------------------------------------------------- conv2d and the demo CNN


def test_conv_graph_shows_conv2d_as_its_primitives():
    dot = Dot(viz.conv_graph())
    node, sequence = dot.named("x"), []
    while dot.children(node):
        (op,) = dot.children(node)
        sequence.append(dot.nodes[op]["label"].strip('"'))
        (node,) = dot.children(op)
    assert sequence == ["pad", "unfold (im2col)", "reshape", "matmul", "reshape", "permute 3,0,1,2", "+", "Σ"]
    assert dot.text(dot.named("x")).endswith("grad 10 10 6 10 10 6 7 7 4")
    assert dot.text(dot.named("weight")).startswith("weight (1,1,2,2) data 1 2 3 4 grad")
    assert dot.text(dot.named("bias")) == "bias (1,) data 1 grad 9"


def test_conv_graph_shows_the_padded_input_and_the_im2col_matrix_with_values_and_grads():
    dot = Dot(viz.conv_graph())
    # the padded x: a zero row and column on top/left; its grad is the fold of the columns' grad, which the crop
    # turns into x.grad (the last three rows and columns)
    padded = dot.text(dot.named("padded"))
    assert padded == "padded (1,1,4,4) data 0 0 0 0 0 1 2 3 0 4 5 6 0 7 8 9 grad 1 3 3 2 4 10 10 6 4 10 10 6 3 7 7 4"
    # im2col: one row per kernel tap (a, b, c, d), one column per window; each row's grad is that kernel entry
    cols = dot.text(dot.named("cols"))
    assert cols == ("cols (1,2,2,3,3,1) data as 4×9 0 0 0 0 1 2 0 4 5 0 0 0 1 2 3 4 5 6 0 1 2 0 4 5 0 7 8 "
                    "1 2 3 4 5 6 7 8 9 grad as 4×9 " + " ".join(str(k) for k in (1, 2, 3, 4) for _ in range(9)))
    assert "crop(fold(cols.grad))" in dot.source
    assert "grad" not in Dot(viz.conv_graph(show_grad=False)).text(dot.named("cols"))


def test_model_graph_clusters_ops_by_module_and_names_parameters():
    dot = Dot(viz.model_graph(depth=1))
    labels = {name: cluster["label"] for name, cluster in dot.clusters.items()}
    assert labels == {"cluster_0": "0: Conv2d", "cluster_1": "1: ReLU", "cluster_2": "2: Conv2d",
                      "cluster_3": "3: ReLU", "cluster_4": "4: MaxPool2d", "cluster_5": "5: Flatten",
                      "cluster_6": "6: Dropout", "cluster_7": "7: Linear"}
    for module in ("0", "2", "7"):
        for param in ("weight", "bias"):
            node = dot.named(f"{module}.{param}")
            assert node in dot.clusters[f"cluster_{module}"]["nodes"]
            assert dot.fill(node) == viz.FILL["parameter"]
    assert dot.fill(dot.named("images")) == viz.FILL["input"]
    conv0_ops = [dot.nodes[n]["label"].strip('"') for n in dot.clusters["cluster_0"]["nodes"] if n.startswith("op")]
    data_path = [op for op in conv0_ops if op in ("pad", "unfold (im2col)", "matmul")]
    assert data_path == ["pad", "unfold (im2col)", "matmul"]  # the weight's reshape may be recorded first
    assert [dot.nodes[n]["label"] for n in dot.clusters["cluster_1"]["nodes"] if n.startswith("op")] == ["relu"]
    loss = dot.named("loss")
    assert not any(loss in c["nodes"] for c in dot.clusters.values())  # the loss runs outside the model


# ---------------------------------------------------------------- files and the CLI


def test_render_dot_writes_the_source(tmp_path):
    graph = viz.draw_graph(_scalar(2, "x") * 3.0)
    path, rendered = viz.render(graph, str(tmp_path / "g.dot"))
    assert (path, rendered) == (str(tmp_path / "g.dot"), False)
    assert (tmp_path / "g.dot").read_text() == graph.source
    with pytest.raises(ValueError, match="format must be one of svg, png, pdf, dot, got 'jpeg'"):
        viz.render(graph, str(tmp_path / "g.svg"), fmt="jpeg")


@pytest.mark.parametrize("out, fmt, message", [
    ("c.jpg", None, r"cannot write a graph as \.jpg \(c\.jpg\): use \.svg, \.png, \.pdf or \.gv"),
    ("x.svg", "png", r"--format png does not match the file name x\.svg"),
    ("x.pdf", "svg", r"--format svg does not match the file name x\.pdf"),
])
def test_the_extension_decides_the_format_and_a_mismatch_is_an_error(out, fmt, message, tmp_path, capsys):
    assert viz.graph_command("conv", fmt, str(tmp_path / out), show_grad=True) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / out).exists()


def test_graph_files_go_into_new_folders_in_the_format_their_name_says(tmp_path, dot):
    out = tmp_path / "new" / "dir" / "conv.png"
    assert viz.graph_command("conv", None, str(out), show_grad=True) == 0
    assert out.read_bytes().startswith(b"\x89PNG")
    pdf = tmp_path / "conv"
    assert viz.graph_command("conv", "pdf", str(pdf), show_grad=True) == 0  # no extension: --format decides
    assert pdf.read_bytes().startswith(b"%PDF")


def test_the_model_at_depth_0_is_one_box_per_layer_with_shapes_and_parameter_counts():
    dot = Dot(viz.model_graph(show_grad=True))
    layers = [n for n in dot.nodes if n.startswith("layer")]
    assert len(layers) == 8 and not dot.clusters
    first = dot.text("layer0")
    assert "0: Conv2d(1, 24" in first and "(2,1,8,8) → (2,24,8,8)" in first and "240 params" in first
    assert "‖grad‖" in first
    assert "10,416 params" in dot.text("layer2") and "params" not in dot.text("layer1")
    assert dot.parents("layer1") == ["layer0"] and dot.children("layer7") == ["loss"]


@pytest.mark.parametrize(("name", "fmt"), [("nonsense", None), ("conv", "jpeg")])
def test_graph_command_rejects_unknown_names_and_formats(name, fmt, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert viz.graph_command(name, fmt, None, show_grad=True) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1 and "error" in captured.err
    assert list(tmp_path.iterdir()) == []


def _without_dot(monkeypatch):
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda cmd, *a, **k: None if cmd == "dot" else real_which(cmd, *a, **k))


def test_missing_dot_writes_the_dot_source_and_one_install_line(tmp_path, monkeypatch, capsys):
    _without_dot(monkeypatch)
    monkeypatch.chdir(tmp_path)
    assert viz.graph_command("derivation", None, None, show_grad=True) == 0  # svg was only the default
    captured = capsys.readouterr()
    assert (tmp_path / "derivation.gv").read_text().startswith("digraph")
    assert "derivation.gv" in captured.out and "42 nodes, 51 edges" in captured.out
    hint = captured.err.strip().splitlines()
    assert len(hint) == 1 and "apt install graphviz" in hint[0] and "brew install graphviz" in hint[0]


def test_missing_dot_fails_only_when_an_image_format_was_asked_for(tmp_path, monkeypatch, capsys):
    _without_dot(monkeypatch)
    assert viz.graph_command("conv", "png", str(tmp_path / "c.png"), show_grad=True) == 1
    assert (tmp_path / "c.gv").exists() and not (tmp_path / "c.png").exists()
    assert viz.graph_command("conv", "dot", str(tmp_path / "c.dot"), show_grad=False) == 0
    assert viz.graph_command("conv", None, str(tmp_path / "d.pdf"), show_grad=False) == 0
    assert (tmp_path / "d.gv").exists()
    assert capsys.readouterr().err.count("apt install graphviz") == 2  # png and the defaulted pdf; not for dot


def test_dot_failing_to_run_also_falls_back(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda cmd, *a, **k: "/nonexistent/dot")  # looks present, is not
    monkeypatch.setenv("PATH", str(tmp_path))
    path, rendered = viz.render(viz.draw_graph(_scalar(2, "x") * 3.0), str(tmp_path / "g.svg"))
    assert (path, rendered) == (str(tmp_path / "g.gv"), False)


# ---------------------------------------------------------------- images (Graphviz's dot)


@pytest.mark.parametrize("name", ["derivation", "conv"])
def test_svg_is_valid_xml_with_a_node_per_dot_node(name, dot, tmp_path):
    graph = {"derivation": viz.derivation_graph, "conv": viz.conv_graph}[name]()
    path, rendered = viz.render(graph, str(tmp_path / f"{name}.svg"))
    assert rendered and path.endswith(".svg")
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    svg_nodes = [g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "node"]
    assert len(svg_nodes) == viz.graph_counts(graph)[0]


def test_png_renders(dot, tmp_path):
    path, rendered = viz.render(viz.conv_graph(), str(tmp_path / "conv.png"))
    assert rendered
    with open(path, "rb") as image:
        assert image.read(8) == b"\x89PNG\r\n\x1a\n"


def test_graph_command_writes_the_default_file_and_reports_counts(dot, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert viz.graph_command("conv", None, None, show_grad=True) == 0
    assert (tmp_path / "conv.svg").read_text().lstrip().startswith("<?xml")
    out = capsys.readouterr().out
    assert out.strip() == "wrote conv.svg (conv graph: 23 nodes, 22 edges)"


def test_the_cli_draws_the_model(dot, tmp_path, capsys):
    from tinygrad_conv.cli import main

    out = tmp_path / "model.pdf"
    assert main(["graph", "model", "--out", str(out), "--no-grad"]) == 0
    assert out.read_bytes().startswith(b"%PDF")
    assert "model graph:" in capsys.readouterr().out


# ---------------------------------------------------------------- the backward pass, drawn


def test_backward_graph_shows_dw_as_a_matmul_with_cols_and_dx_as_matmul_fold_crop():
    dot = Dot(viz.backward_graph())
    grad_x, grad_w = dot.named("dL/dX"), dot.named("dL/dW")
    label = lambda node: dot.nodes[node]["label"].strip('"')  # noqa: E731
    chain, node = [], grad_x
    while dot.parents(node):  # dL/dX back to the first matmul: crop ← fold ← reshape ← matmul
        (op,) = dot.parents(node)
        chain.append(label(op))
        if label(op) == "matmul":
            break
        (node,) = dot.parents(op)
    assert chain == ["crop", "fold (col2im)", "reshape", "matmul"]
    matmul_inputs = [dot.text(n).split(" ")[0] for n in dot.parents(op)]
    assert matmul_inputs == ["Wᵀ", "dL/dY"]
    (reshape,) = dot.parents(grad_w)
    (product,) = dot.parents(reshape)
    (matmul,) = dot.parents(product)
    assert label(matmul) == "matmul"
    assert [dot.text(n).split(" ")[0] for n in dot.parents(matmul)][0] == "dL/dY"
    assert dot.text(grad_x) == "dL/dX (1,1,3,3) data 23 33 24 53 63 42 52 59 36"


def test_draw_graph_takes_several_roots_and_marks_each():
    x = Tensor([1.0, 2.0], requires_grad=True, name="x")
    a, b = x * 2, x.exp()
    a.name, b.name = "a", "b"
    drawn = Dot(viz.draw_graph([a, b]))
    assert viz.FILL["root"] in drawn.nodes[drawn.named("a")]["label"]
    assert viz.FILL["root"] in drawn.nodes[drawn.named("b")]["label"]
    assert drawn.source.count(viz.FILL["parameter"]) == 1  # x once, shared by both


def test_graph_command_draws_the_backward_pass(tmp_path, dot, capsys):
    out = tmp_path / "backward.svg"
    assert viz.graph_command("backward", "svg", str(out), show_grad=True) == 0
    assert out.read_text().lstrip().startswith(("<?xml", "<svg")) and "fold (col2im)" in out.read_text()
    assert "backward graph" in capsys.readouterr().out


@pytest.mark.parametrize("script, message", [
    ("echo 'Error: syntax error in line 1' >&2; exit 3", r"Graphviz's dot failed \(exit 3\): Error: syntax error"),
    ("sleep 30", r"Graphviz's dot did not finish within 1 s"),
])
def test_a_dot_that_fails_or_hangs_is_one_line_not_a_traceback(script, message, tmp_path, monkeypatch, capsys):
    fake = tmp_path / "bin" / "dot"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\n{script}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    monkeypatch.setattr(viz, "DOT_TIMEOUT", 1)
    assert viz.graph_command("conv", "svg", str(tmp_path / "c.svg"), show_grad=True) == 1
    err = capsys.readouterr().err
    assert re.search(message, err) and err.count("\n") == 1
