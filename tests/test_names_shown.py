"""Names as every output shows them: refused where they could not be shown
(control characters), and exact in diagrams (Graphviz's own escapes)."""

from __future__ import annotations

import html
import re
import shutil
import subprocess

import pytest

import graphnet as gn
from graphnet import GraphError

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")


@pytest.mark.parametrize("character", ["\x1b", "\x07", "\x08", "\x7f", "\x85", "\x0b", "\x0c", "\u2028", "\u2029",
                                       "\u202e", "\u2066"])
def test_names_with_control_characters_are_refused(character):
    g = gn.Graph(seed=0)
    name = f"h{character}x"
    with pytest.raises(GraphError, match="must not contain '->' or control characters"):
        g.add_hidden(name, 3)
    with pytest.raises(GraphError, match="must not contain '->' or control characters"):
        g.add_hidden(character, 3)
    with pytest.raises(GraphError, match="graph name must be a non-empty string without control characters"):
        gn.Graph(name=name)
    assert g.nodes == {} or list(g.nodes) == []


def test_a_model_file_with_such_a_name_is_refused_when_loaded(tmp_path):
    g = gn.Graph(seed=0)
    g.add_input("x", 2)
    g.add_output("y", 1)
    g.connect("x", "y")
    spec = g.to_dict()
    spec["nodes"][1]["name"] = spec["synapses"][0]["dst"] = "y\x1b]0;title\x07"
    with pytest.raises(GraphError, match="control characters"):
        gn.Graph.from_dict(spec)


def through(name: str, size: int = 3, graph: str = "GR") -> gn.Graph:
    """``x -> name -> y``: a graph whose one hidden node is called ``name``."""
    g = gn.Graph(name=graph, seed=0)
    g.add_input("x", 2)
    g.add_hidden(name, size)
    g.add_output("y", 1)
    g.connect("x", name)
    g.connect(name, "y")
    return g


def _svg(graph) -> str:
    return subprocess.run(["dot", "-Tsvg"], input=graph.to_dot().source.encode(), capture_output=True,
                          check=True).stdout.decode()


@needs_dot
@pytest.mark.parametrize("name", ["C:\\Users\\Name", "a\\Eb", "a\\\\b", "x\\Gy", "x\\Ly", "x\\Ny", "back\\",
                                  "<b>&amp;", "a&b", 'say "hi"'])
def test_diagrams_show_names_exactly(name):
    svg = _svg(through(name))
    texts = [html.unescape(t) for t in re.findall(r"<text[^>]*>(.*?)</text>", svg)]
    assert name in texts
    tooltips = [html.unescape(t) for t in re.findall(r'xlink:title="([^"]*)"', svg)]
    assert f"{name} (hidden, 3)" in tooltips
    assert f"x -> {name}" in tooltips and f"{name} -> y" in tooltips


@needs_dot
def test_diff_diagrams_show_names_exactly(tmp_path):
    name = "C:\\Users\\Name &amp;"

    report = gn.diff(through(name, 3), through(name, 4))
    svg = subprocess.run(["dot", "-Tsvg"], input=report.to_dot().source.encode(), capture_output=True,
                         check=True).stdout.decode()
    assert name in [html.unescape(t) for t in re.findall(r"<text[^>]*>(.*?)</text>", svg)]


def _onnx_with_input(path, name):
    onnx = pytest.importorskip("onnx")
    np = pytest.importorskip("numpy")
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((2, 1), np.float32), "W")
    bias = numpy_helper.from_array(np.zeros(1, np.float32), "B")
    graph = helper.make_graph([helper.make_node("Gemm", [name, "W", "B"], ["y"])], "g",
                              [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n", 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 1])], [weight, bias])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


@pytest.mark.parametrize("name", ["a->b", "c\u2028d", "e\x1bf", " "])
def test_an_onnx_input_whose_name_no_node_can_keep_is_refused_by_name(tmp_path, name):
    _onnx_with_input(tmp_path / "m.onnx", name)
    with pytest.raises(gn.ModelImportError, match=rf"m.onnx.*: the input {re.escape(repr(name))} cannot keep its "
                                                  r"name: .*; rename it in the model"):
        gn.from_onnx(tmp_path / "m.onnx")


def test_tensorboard_refuses_names_that_would_share_a_tag(tmp_path, rng):
    pytest.importorskip("tensorboardX")
    g = gn.Graph(seed=0)
    g.add_input("x", 2)
    g.add_output("a b", 1)
    g.add_output("a,b", 1)
    g.connect("x", "a b")
    g.connect("x", "a,b")
    x = rng.normal(size=(8, 2))
    y = {"a b": rng.normal(size=(8, 1)), "a,b": rng.normal(size=(8, 1))}
    before = g.get_weights()
    with pytest.raises(GraphError, match=r"TensorBoard: 'a b_loss' and 'a,b_loss' would both be written as the tag "
                                         r"'epoch_a_b_loss' of 'train'"):
        g.fit(x, y, epochs=1, verbose=0, callbacks=[gn.callbacks.TensorBoard(tmp_path / "logs")])
    assert all((before[k] == g.get_weights()[k]).all() for k in before)


def test_freeze_selects_a_node_by_its_own_name_whatever_it_holds():
    g = gn.Graph(seed=0)
    g.add_input("in", 2)
    g.add_hidden("a[0]", 3)
    g.add_hidden("a0", 3)
    g.add_output("out", 1)
    g.connect("in", ["a[0]", "a0"]) if False else (g.connect("in", "a[0]"), g.connect("in", "a0"))
    g.connect(["a[0]", "a0"], "out")
    keys = g.freeze("a[0]")
    assert keys == ["in->a[0].weight", "a[0].bias"]
    assert g["a0"].trainable and not g["a[0]"].trainable
    assert g.freeze("a?") == ["in->a0.weight", "a0.bias"]  # a pattern is still a pattern


def test_a_long_unknown_name_is_shown_bounded():
    g = gn.Graph(seed=0)
    g.add_input("in", 2)
    g.add_output("out", 1)
    g.connect("in", "out")
    with pytest.raises(gn.NotFoundError) as caught:
        g.connect("in", "L" * 10_000)
    assert len(str(caught.value)) < 300
    with pytest.raises(gn.ShapeError) as caught:
        g.predict({"in": [[1.0, 2.0]], "K" * 10_000: [[1.0]]})
    assert len(str(caught.value)) < 300 and "unknown names ['KKK" in str(caught.value)


def test_the_attributions_table_keeps_long_input_names_apart(rng):
    a, b = "customer_account_balance_2023_q1", "customer_account_balance_2023_q2"
    g = gn.Graph(seed=0)
    g.add_input(a, 2)
    g.add_input(b, 2)
    g.add_output("y", 1)
    g.connect([a, b], "y")
    text = g.attributions({a: rng.normal(size=(4, 2)), b: rng.normal(size=(4, 2))}, steps=4).text()
    assert a in text and b in text and max(map(len, text.splitlines())) <= 80


@needs_dot
def test_the_html_pages_group_frames_show_names_exactly(tmp_path):
    g = gn.Graph(seed=0)
    g.add_input("x", 2)
    names = ["&lt;\\N", "mid", "&amp;"]
    previous = "x"
    for name in names:
        g.add_hidden(name, 3)
        g.connect(previous, name)
        previous = name
    g.add_output("y", 1)
    g.connect(previous, "y")
    g.render(tmp_path / "page.html")
    page = (tmp_path / "page.html").read_text()
    assert html.escape("&lt;\\N … &amp; ×3") in page


@pytest.mark.parametrize("name", ["名前" * 30, "データ_" * 12, "🙂" * 45, "e\u0301" * 70])
def test_summary_and_diff_fit_80_terminal_columns_with_wide_names(name):
    from graphnet._text import columns

    text = through(name, 3, graph=name[:40]).summary(print_fn=None)
    assert max(columns(line) for line in text.splitlines()) <= 80
    first = [line for line in text.splitlines() if "(hidden)" in line or name[:4] in line]
    assert first and text.count(name[0]) >= name.count(name[0])  # every character shown, wrapped
    report = gn.diff(through(name, 3), through(name, 4)).text()
    assert max(columns(line) for line in report.splitlines()) <= 80
