"""Diagrams: the DOT source (pure) and real renders through Graphviz's ``dot``."""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import graphviz
import numpy as np
import pytest
from conftest import build_dag

import graphnet as gn
from graphnet.render import NODE_STYLES, dot_id

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program is not installed")

SVG = "{http://www.w3.org/2000/svg}"


def node_attributes(source: str) -> dict[str, str]:
    """Node id -> its attribute text, from ``to_dot().source``."""
    found = {}
    for line in source.splitlines():
        match = re.match(r'\t"((?:[^"\\]|\\.)*)" \[(.*)\]$', line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def attribute(text: str, key: str) -> str | None:
    match = re.search(rf'(?:^| ){key}="((?:[^"\\]|\\.)*)"', text)
    return match.group(1) if match else None


def svg_titles(svg: bytes | str) -> list[str]:
    root = ET.fromstring(svg)
    return [t.text for t in root.iter(f"{SVG}title")]


def wide_graph(sources: int = 20) -> gn.Graph:
    g = gn.Graph(name="wide")
    names = [g.add_input(f"x{i}", 3).name for i in range(sources)]
    g.add_hidden("merge", 8)
    g.add_output("y", 1)
    g.connect(names, "merge")
    g.connect("merge", "y")
    return g


def big_graph(n: int = 500, seed: int = 0) -> gn.Graph:
    """``n`` nodes: 5 inputs, hidden nodes each fed by two recent nodes, 5 outputs."""
    rng = np.random.default_rng(seed)
    g = gn.Graph(name="big", seed=seed)
    names = [g.add_input(f"in{i}", 4).name for i in range(5)]
    for i in range(n - 10):
        name = g.add_hidden(f"h{i}", 4).name
        g.connect(list(rng.choice(names[-30:], size=2, replace=False)), name)
        names.append(name)
    for i in range(5):
        g.add_output(f"out{i}", 1)
        g.connect(names[-1 - i], f"out{i}")
    return g


# ------------------------------------------------------------------- DOT source
def test_to_dot_has_every_node_and_every_synapse_with_its_shape():
    g = build_dag()
    dot = g.to_dot()
    assert isinstance(dot, graphviz.Digraph)
    nodes = node_attributes(dot.source)
    assert list(nodes) == g.topological_order
    for s in g.synapses:
        rows, cols = s.shape
        assert f'\t"{s.src}" -> "{s.dst}" [label="{rows}×{cols}"' in dot.source
    edges = [line for line in dot.source.splitlines() if re.match(r'\t"[^"]*" -> "[^"]*" \[', line)]
    assert len(edges) == len(g.synapses)


def test_each_kind_has_its_own_shape_and_colour():
    g = build_dag()
    nodes = node_attributes(g.to_dot().source)
    looks = {}
    for name, text in nodes.items():
        look = tuple(attribute(text, k) for k in ("shape", "style", "fillcolor", "color", "peripheries"))
        looks.setdefault(g[name].kind, set()).add(look)
    assert all(len(v) == 1 for v in looks.values())  # one look per kind
    assert len({next(iter(v)) for v in looks.values()}) == 3  # and three different looks
    assert {k: next(iter(v))[2] for k, v in looks.items()} == {
        kind: style.fillcolor for kind, style in NODE_STYLES.items()
    }


def test_labels_carry_name_size_activation_dropout_and_loss():
    g = gn.Graph()
    g.add_input("pixels", 64)
    g.add_hidden("h", 32, activation="relu", dropout=0.25)
    g.add_output("even", 1, activation="sigmoid", loss="binary_crossentropy", loss_weight=0.5)
    g.connect("pixels", "h")
    g.connect("h", "even")
    nodes = node_attributes(g.to_dot().source)
    assert "<b>pixels</b>" in nodes["pixels"] and "64 features" in nodes["pixels"]
    assert "32 units · relu · dropout 0.25" in nodes["h"]
    assert "1 unit · sigmoid" in nodes["even"] and "loss: 0.5 × binary_crossentropy" in nodes["even"]
    bare = node_attributes(g.to_dot(show_shapes=False, show_activations=False).source)
    assert "units" not in bare["h"] and "relu" not in bare["h"]
    assert "×" not in g.to_dot(show_shapes=False).source.split("\t\"pixels\" ->")[1]


def test_inputs_are_on_the_first_rank_and_terminal_outputs_on_the_last():
    source = build_dag().to_dot().source
    assert '{rank=source; "a"; "b"}' in source
    # ``aux`` feeds h3, so forcing it onto the last rank would draw h3 backwards.
    assert '{rank=sink; "main"}' in source


def test_frozen_nodes_and_synapses_are_dashed():
    g = gn.Graph()
    g.add_input("x", 2)
    g.add_output("y", 1, trainable=False)
    g.connect("x", "y", trainable=False)
    source = g.to_dot().source
    assert "dashed" in attribute(node_attributes(source)["y"], "style")
    assert re.search(r'"x" -> "y" \[.*style="dashed"', source)


def test_a_node_with_many_sources_is_stretched_along_the_side_they_arrive_on():
    g = wide_graph()
    assert float(attribute(node_attributes(g.to_dot().source)["merge"], "height")) > 5
    assert float(attribute(node_attributes(g.to_dot(rankdir="TB").source)["merge"], "width")) > 5


def test_the_source_is_the_same_every_time():
    assert build_dag().to_dot().source == build_dag().to_dot().source


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"rankdir": "up"}, "rankdir must be one of"), ({"dpi": 0}, "dpi must be a positive integer")],
)
def test_bad_options_are_refused(kwargs, match):
    with pytest.raises(gn.RenderError, match=match):
        build_dag().to_dot(**kwargs)


ODD_NAMES = ["a b", "node", "x:y", "<tag>", 'q"uote', "back\\slash\\", "&amp", "αβ", "-1"]


def odd_graph() -> gn.Graph:
    g = gn.Graph(name='odd "graph" } digraph x { injected\\')  # a name that tries to break out
    g.add_input(ODD_NAMES[0], 2)
    for name in ODD_NAMES[1:-1]:
        g.add_hidden(name, 2)
    g.add_output(ODD_NAMES[-1], 1)
    for src, dst in zip(ODD_NAMES, ODD_NAMES[1:]):
        g.connect(src, dst)
    return g


def test_odd_names_are_quoted_so_ids_stay_distinct():
    source = odd_graph().to_dot().source
    for name in ODD_NAMES:
        assert f"\t{dot_id(name)} [" in source
    assert '\t"x:y" -> "<tag>"' in source  # a colon is not read as a port
    assert "&lt;tag&gt;" in source  # labels are escaped HTML


@needs_dot
def test_odd_names_survive_a_real_render():
    plain = subprocess.run(
        ["dot", "-Tplain"], input=odd_graph().to_dot().source.encode(), capture_output=True, check=True
    )
    lines = plain.stdout.decode().splitlines()
    assert sum(line.startswith("node ") for line in lines) == len(ODD_NAMES)
    assert sum(line.startswith("edge ") for line in lines) == len(ODD_NAMES) - 1


# ------------------------------------------------------------------ writing files
@pytest.mark.parametrize("suffix", [".dot", ".gv"])
def test_dot_and_gv_need_no_graphviz(tmp_path, monkeypatch, suffix):
    monkeypatch.setenv("PATH", "")
    path = build_dag().render(tmp_path / f"dag{suffix}")
    assert path.read_text(encoding="utf-8") == build_dag().to_dot().source


@needs_dot
def test_svg_is_real_xml_with_every_node(tmp_path):
    g = build_dag()
    path = g.render(tmp_path / "dag.svg")
    titles = svg_titles(path.read_bytes())
    for name in g.topological_order:
        assert name in titles
    for s in g.synapses:
        assert f"{s.src}->{s.dst}" in titles


@needs_dot
def test_png_and_pdf_have_their_magic_bytes(tmp_path):
    g = build_dag()
    assert g.render(tmp_path / "dag.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert g.render(tmp_path / "dag.PDF").read_bytes()[:5] == b"%PDF-"


def test_without_dot_render_explains_how_to_install_graphviz(tmp_path, monkeypatch):
    target = tmp_path / "dag.svg"
    target.write_text("the old diagram")
    monkeypatch.setenv("PATH", "")
    with pytest.raises(gn.RenderError, match=r"'dot' program was not found.*apt-get install graphviz"):
        build_dag().render(target)
    assert target.read_text() == "the old diagram"  # nothing the user had is lost
    assert [p.name for p in tmp_path.iterdir()] == ["dag.svg"]


def test_an_unknown_suffix_or_a_missing_folder_is_refused(tmp_path):
    with pytest.raises(gn.RenderError, match=r"use one of \['.svg', '.png', '.pdf', '.dot', '.gv'\]"):
        build_dag().render(tmp_path / "dag.jpeg")
    with pytest.raises(gn.RenderError, match="does not exist"):
        build_dag().render(tmp_path / "missing" / "dag.dot")


# ---------------------------------------------------------------------- notebooks
@needs_dot
def test_notebooks_get_an_svg():
    g = build_dag()
    bundle = g._repr_mimebundle_()
    assert bundle["text/plain"] == repr(g)
    assert "main" in svg_titles(bundle["image/svg+xml"])
    assert svg_titles(g._repr_svg_()) == svg_titles(bundle["image/svg+xml"])
    assert "image/svg+xml" not in g._repr_mimebundle_(exclude=["image/svg+xml"])


def test_notebooks_fall_back_to_text_without_dot(monkeypatch):
    monkeypatch.setenv("PATH", "")
    g = build_dag()
    assert g._repr_mimebundle_() == {"text/plain": repr(g)}
    assert g._repr_svg_() is None


# ----------------------------------------------------------------------- big ones
@needs_dot
def test_a_wide_and_a_sequential_graph_render(tmp_path):
    titles = svg_titles(wide_graph().render(tmp_path / "wide.svg").read_bytes())
    assert {f"x{i}" for i in range(20)} <= set(titles)
    model = gn.Sequential([gn.Input(4), gn.Dense(3, activation="relu"), gn.Dense(1)])
    assert "dense_1" in svg_titles(model.render(tmp_path / "seq.svg").read_bytes())


@needs_dot
@pytest.mark.slow
def test_a_500_node_graph_still_renders(tmp_path):
    g = big_graph(500)
    assert len(g) == 500
    titles = svg_titles(g.render(tmp_path / "big.svg").read_bytes())
    assert set(g.topological_order) <= set(titles)
    assert g.render(tmp_path / "big.png").read_bytes()[:4] == b"\x89PNG"
