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
    with pytest.raises(gn.RenderError, match=r"use one of \['.svg', '.png', '.pdf', '.dot', '.gv', '.html'\]"):
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


# -------------------------------------------------------------- seeing inside
def dead_graph(dtype="float64"):
    """x -> relu h (4 units; 0 and 1 dead on non-negative data) -> y, and x -> tanh t -> y."""
    g = gn.Graph(name="inside", seed=0, dtype=dtype)
    g.add_input("x", 3)
    g.add_hidden("h", 4, activation="relu")
    g.add_hidden("t", 2, activation="tanh")
    g.add_output("y", 1)
    g.connect("x", "h", init=np.array([[-1.0, -2.0, 1.0, 0.5], [-0.5, -1.0, 2.0, 0.3], [-2.0, -0.1, 0.2, 1.0]]))
    g.connect("x", "t", init=np.full((3, 2), 0.1))
    g.connect(["h", "t"], "y")
    return g


def edges(source: str) -> dict[tuple[str, str], str]:
    found = {}
    for line in source.splitlines():
        match = re.match(r'\t"((?:[^"\\]|\\.)*)" -> "((?:[^"\\]|\\.)*)" \[(.*)\]$', line)
        if match:
            found[(match.group(1), match.group(2))] = match.group(3)
    return found


@pytest.fixture
def inside(rng):
    g = dead_graph()
    x = np.abs(rng.normal(size=(40, 3))) + 0.1
    return g, g.statistics(x, rng.normal(size=(40, 1)))


def test_stats_shade_the_dead_node_and_put_the_numbers_in_its_label(inside):
    g, stats = inside
    source = g.to_dot(stats=stats).source
    nodes = node_attributes(source)
    hidden = NODE_STYLES["hidden"].fillcolor
    assert attribute(nodes["h"], "fillcolor") not in (None, hidden)
    assert attribute(nodes["t"], "fillcolor") == hidden  # tanh on small weights: not saturated
    assert "2 of 4 dead (50%)" in nodes["h"] and f"mean {stats['h'].mean:.3g}" in nodes["h"]
    assert "none saturated" in nodes["t"] and "none dead" not in nodes["t"]
    assert "Statistics of inside</b> on 40 rows" in source and "gradient norm |dL/dW|" in source
    assert "(1,000 times less)" in source


def test_edge_width_follows_the_gradient_norm(inside):
    g, stats = inside
    found = edges(g.to_dot(stats=stats).source)
    widths = {key: float(re.search(r'penwidth="([\d.]+)"', text).group(1)) for key, text in found.items()}
    by_norm = sorted(found, key=lambda key: stats[key].grad_norm)
    assert [widths[k] for k in by_norm] == sorted(widths.values())
    # Log scale: 6.0 at the largest norm, 0.5 at a thousandth of it.
    high = stats[by_norm[-1]].grad_norm
    for key, width in widths.items():
        t = min(max(1 + np.log10(stats[key].grad_norm / high) / 3, 0), 1)
        assert width == pytest.approx(0.5 + 5.5 * t, abs=0.006), key
    assert widths[by_norm[-1]] == 6.0
    assert f"grad {stats['h', 'y'].grad_norm:.3g}" in found[("h", "y")] and "4×1" in found[("h", "y")]


def test_stats_without_targets_scale_edges_by_the_weight_norm(rng):
    g = dead_graph()
    stats = g.statistics(np.abs(rng.normal(size=(10, 3))))
    source = g.to_dot(stats=stats).source
    assert "weight norm |W|" in source and "|W| " in edges(source)[("x", "h")]


def test_nodes_added_since_the_statistics_are_drawn_plain(inside):
    g, stats = inside
    g.insert("t", "y", "later")
    nodes = node_attributes(g.to_dot(stats=stats).source)
    assert "mean" in nodes["h"] and "mean" not in nodes["later"]


@needs_dot
def test_shares_under_one_percent_or_over_99_render(inside, tmp_path):
    """"<1%" and ">99%" sit in HTML-like labels: written raw, dot refused the diagram."""
    import dataclasses

    g, stats = inside
    stats.nodes["t"] = dataclasses.replace(stats.nodes["t"], saturated=0.004)
    stats.nodes["h"] = dataclasses.replace(stats.nodes["h"], dead=0.995, dead_units=(0, 1, 2, 3))
    nodes = node_attributes(g.to_dot(stats=stats).source)
    assert "&lt;1% saturated" in nodes["t"] and "(&gt;99%)" in nodes["h"]
    assert g.render(tmp_path / "shares.svg", stats=stats).stat().st_size > 0


def test_stats_of_another_graph_or_of_nothing_are_refused(inside):
    g, stats = inside
    with pytest.raises(gn.RenderError, match=r"describe graph 'inside', whose nodes \[.*\] are not nodes of graph "
                                             r"'dag'$"):
        build_dag().to_dot(stats=stats)
    with pytest.raises(gn.RenderError, match="stats must be what graph.statistics"):
        g.to_dot(stats={"h": 1})
    with pytest.raises(gn.RenderError, match="collapse must be True or False"):
        g.to_dot(collapse="yes")


def deep_chain():
    return gn.Sequential([gn.Input(3)] + [gn.Dense(4, activation="relu") for _ in range(5)]
                         + [gn.Dense(2, activation="tanh"), gn.Dense(1)], seed=0)


def test_collapse_draws_a_chain_of_like_hidden_nodes_as_one_box():
    model = deep_chain()
    source = model.to_dot(collapse=True).source
    nodes = node_attributes(source)
    assert set(nodes) == {"input", "dense", "dense_5", "dense_6"}  # dense_5 (tanh, 2) breaks the chain
    assert "dense … dense_4" in nodes["dense"] and "×5" in nodes["dense"] and "4 units · relu each" in nodes["dense"]
    assert set(edges(source)) == {("input", "dense"), ("dense", "dense_5"), ("dense_5", "dense_6")}
    assert edges(source)[("dense", "dense_5")].startswith('label="4×2"')
    assert len(node_attributes(model.to_dot().source)) == 8


def test_collapse_stops_at_branches_and_changes_of_dropout_or_trainable():
    model = deep_chain()
    model["dense_2"].dropout = 0.1
    model.add_input("side", 2)
    model.connect("side", "dense_4")
    nodes = node_attributes(model.to_dot(collapse=True).source)
    assert {"dense", "dense_2", "dense_3", "dense_4"} <= set(nodes)
    assert "×2" in nodes["dense"] and "dense_1" not in nodes
    assert "×" not in nodes["dense_3"]  # fed twice: its own box


def test_a_collapsed_chain_shows_its_worst_member_and_the_gradient_inside(rng):
    model = deep_chain()
    bias = model["dense_2"].bias.copy()
    bias[:3] = -100.0
    model["dense_2"].bias = bias
    stats = model.statistics(rng.normal(size=(20, 3)), rng.normal(size=(20, 1)))
    label = node_attributes(model.to_dot(collapse=True, stats=stats).source)["dense"]
    assert f"up to {100 * stats['dense_2'].dead:.0f}% dead</b> (dense_2)" in label
    assert stats["dense_2"].dead >= 0.75
    assert "grad inside" in label


@needs_dot
def test_an_annotated_and_a_collapsed_diagram_render(tmp_path, inside):
    g, stats = inside
    titles = svg_titles(g.render(tmp_path / "inside.svg", stats=stats).read_bytes())
    assert {"x", "h", "t", "y"} <= set(titles)
    assert g.render(tmp_path / "inside.png", stats=stats).read_bytes()[:4] == b"\x89PNG"
    titles = svg_titles(deep_chain().render(tmp_path / "deep.svg", collapse=True).read_bytes())
    assert "dense" in titles and "dense_1" not in titles


@needs_dot
def test_a_5000_node_chain_collapses_into_a_few_boxes(tmp_path):
    # Built with connect: Sequential.add looks for the chain's end at every layer.
    tall = gn.Graph(name="tall")
    tall.add_input("input", 4)
    previous = "input"
    for i in range(4998):
        tall.add_hidden(f"h{i}", 4)
        tall.connect(previous, f"h{i}")
        previous = f"h{i}"
    tall.add_output("out", 1)
    tall.connect(previous, "out")
    assert len(tall) == 5000
    titles = svg_titles(tall.render(tmp_path / "tall.svg", collapse=True).read_bytes())
    assert set(titles) >= {"input", "h0", "out"} and len(titles) < 10


@needs_dot
@pytest.mark.slow
def test_a_5000_node_graph_renders(tmp_path):
    """Nothing to collapse here (every node fed by two recent ones): dot lays out
    all 5,000 nodes, its x-coordinate pass bounded (about 30 s)."""
    g = big_graph(5000)
    assert re.search(r'nslimit="?0.05"?', g.to_dot().source)
    titles = svg_titles(g.render(tmp_path / "big.svg").read_bytes())
    assert set(g.topological_order) <= set(titles)


def test_a_notebook_without_dot_is_told_once_per_display_and_a_diff_gets_the_install_hint(monkeypatch, caplog):
    import copy
    import logging

    from graphnet import render

    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(render, "_last_reason", [""])
    g = build_dag()
    with caplog.at_level(logging.WARNING, logger="graphnet"):
        assert g._repr_mimebundle_() == {"text/plain": repr(g)}
        assert g._repr_svg_() is None  # IPython's next question for the same display
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and said[0].startswith("cannot draw 'dag': Graphviz's 'dot'") and "install" in said[0]
    caplog.clear()
    h = copy.deepcopy(g)
    h.name = "other"
    with caplog.at_level(logging.WARNING, logger="graphnet"):
        assert gn.diff(g, h, weights=False)._repr_svg_() is None
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and said[0].startswith("cannot draw the diff: Graphviz's 'dot'")
    assert render.INSTALL_HINT in said[0]


def test_a_dot_on_path_that_cannot_be_run_is_a_render_error(tmp_path, monkeypatch):
    fake = tmp_path / "dot"
    fake.write_text("not a program\n")  # not executable
    monkeypatch.setenv("PATH", str(tmp_path))
    g = build_dag()
    with pytest.raises(gn.RenderError, match=r"^cannot draw .*'dot' on PATH cannot be run \(Permission denied\); "
                                             r"install Graphviz"):
        g.render(tmp_path / "dag.svg")
    assert not (tmp_path / "dag.svg").exists()
    assert g._repr_svg_() is None
