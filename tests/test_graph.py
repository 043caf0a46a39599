"""Building and editing graphs: structure, refusals, validation, weights."""

from __future__ import annotations

import numpy as np
import pytest

import graphnet as gn
from graphnet import CycleError, GraphError, NotFoundError


def chain(seed=0) -> gn.Graph:
    g = gn.Graph(name="chain", seed=seed)
    g.add_input("x", 3)
    g.add_hidden("h1", 4)
    g.add_hidden("h2", 4)
    g.add_hidden("h3", 4)
    g.add_output("y", 2)
    g.connect("x", "h1")
    g.connect("h1", "h2")
    g.connect("h2", "h3")
    g.connect("h3", "y")
    return g


def snapshot(g: gn.Graph):
    return (
        g.topological_order,
        [repr(s) for s in g.synapses],
        {k: v.copy() for k, v in g.get_weights().items()},
        g.version,
    )


def assert_unchanged(g, before):
    order, synapses, weights, version = before
    assert g.topological_order == order
    assert [repr(s) for s in g.synapses] == synapses
    after = g.get_weights()
    assert after.keys() == weights.keys()
    assert all(np.array_equal(after[k], weights[k]) for k in weights)
    assert g.version == version


def test_read_access():
    g = chain()
    assert g.inputs == ["x"] and g.outputs == ["y"]
    assert list(g.nodes) == ["x", "h1", "h2", "h3", "y"]
    assert g["h1"].size == 4 and g["h1"].kind == "hidden"
    assert g.synapse("h1", "h2").weight.shape == (4, 4)
    assert g.synapse(g["h1"], g["h2"]) is g.synapses[1]
    assert g.num_params == 3 * 4 + 4 + 2 * (16 + 4) + 4 * 2 + 2
    assert "h1" in g and "nope" not in g and len(g) == 5
    assert repr(g) == "<Graph 'chain': 1 inputs, 1 outputs, 5 nodes, 4 synapses, 66 params, float32>"


def test_node_objects_and_lists_of_sources():
    g = gn.Graph()
    a, b = g.add_input("a", 2), g.add_input("b", 3)
    out = g.add_output("o", 1)
    made = g.connect([a, b], out)
    assert [s.shape for s in made] == [(2, 1), (3, 1)]
    single = gn.Graph().add_input("a", 2)
    with pytest.raises(NotFoundError, match="is not a node of graph"):
        g.connect(single, "o")


def test_topological_order_breaks_ties_by_insertion():
    g = gn.Graph()
    for name in ("b_in", "a_in"):
        g.add_input(name, 1)
    g.add_hidden("z", 1)
    g.add_hidden("m", 1)
    g.add_output("out", 1)
    g.connect("b_in", "m")
    g.connect("a_in", "z")
    g.connect(["z", "m"], "out")
    assert g.topological_order == ["b_in", "a_in", "z", "m", "out"]


@pytest.mark.parametrize(
    "src, dst, error, message",
    [
        ("h3", "h1", CycleError, r"connecting 'h3' -> 'h1' would create the cycle h3 -> h1 -> h2 -> h3"),
        ("h2", "h2", CycleError, r"from 'h2' to itself would make the cycle h2 -> h2"),
        ("h1", "h2", GraphError, r"synapse 'h1' -> 'h2' already exists"),
        ("h1", "x", GraphError, r"cannot connect into input 'x'"),
        ("h1", "nope", NotFoundError, r"has no node 'nope'; known: \['x', 'h1'"),
        ("nope", "h1", NotFoundError, r"has no node 'nope'"),
        (["h1", "h1"], "y", GraphError, r"synapse 'h1' -> 'y' already exists"),
        (["h1", "h3"], "h1", CycleError, r"to itself"),
        ("h1", ["h2", "y"], GraphError, r"connect: dst must be one node, got list \['h2', 'y'\]; connect takes a "
                                        r"list of sources, not of destinations: call connect once per destination"),
    ],
)
def test_refused_connect_leaves_the_graph_exactly_as_it_was(src, dst, error, message):
    g = chain()
    before = snapshot(g)
    with pytest.raises(error, match=message):
        g.connect(src, dst)
    assert_unchanged(g, before)
    # The random stream is untouched too: the next synapse gets the same
    # weights as in a graph that never saw the refused call.
    twin = chain()
    g.add_hidden("extra", 5)
    twin.add_hidden("extra", 5)
    np.testing.assert_array_equal(
        g.connect("h1", "extra").weight, twin.connect("h1", "extra").weight
    )


def test_bad_init_is_refused_before_anything_changes():
    g = chain()
    g.add_hidden("new", 2)
    before = snapshot(g)
    with pytest.raises(GraphError, match="unknown initializer 'lecun'"):
        g.connect("h1", "new", init="lecun")
    with pytest.raises(GraphError, match=r"init array must have shape \(4, 2\), got \(2, 4\)"):
        g.connect("h1", "new", init=np.zeros((2, 4)))
    with pytest.raises(GraphError, match="finite"):
        g.connect("h1", "new", init=np.full((4, 2), np.nan))
    assert_unchanged(g, before)
    w = np.arange(8.0).reshape(4, 2)
    np.testing.assert_array_equal(g.connect("h1", "new", init=w).weight, w)


def test_disconnect_and_remove_keep_other_weights():
    g = chain()
    g.connect("h1", "h3")
    g.predict(np.zeros((2, 3)))  # compile: weights now live in the flat buffer
    kept = {k: v for k, v in g.get_weights().items() if "h2" not in k}
    g.remove("h2")
    assert "h2" not in g and g.topological_order == ["x", "h1", "h3", "y"]
    after = g.get_weights()
    assert set(after) == set(kept)
    assert all(np.array_equal(after[k], kept[k]) for k in kept)
    g.predict(np.zeros((2, 3)))
    g.disconnect("h1", "h3")
    with pytest.raises(NotFoundError, match="has no synapse 'h1' -> 'h3'"):
        g.synapse("h1", "h3")
    with pytest.raises(NotFoundError, match="has no synapse"):
        g.disconnect("h1", "h3")


def test_edits_after_running_recompile_and_keep_weights():
    g = chain()
    x = np.ones((2, 3))
    before = g.predict(x)
    plan = g.plan
    assert g.plan is plan  # compiled once, reused
    g.add_hidden("side", 3)
    g.connect("x", "side")
    g.connect("side", "y", init="zeros")
    assert g.plan is not plan
    np.testing.assert_allclose(g.predict(x), before, rtol=1e-6)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda g: g.add_input("x", 2), r"no Output node"),
        (lambda g: g.add_output("y", 2), r"no Input node"),
        (
            lambda g: (g.add_input("x", 2), g.add_hidden("h", 2), g.add_output("y", 1), g.connect("x", "y")),
            r"no incoming synapse: 'h' \(hidden\)",
        ),
        (
            lambda g: (g.add_input("x", 2), g.add_input("unused", 2), g.add_output("y", 1), g.connect("x", "y")),
            r"'unused' \(it reaches no Output\)",
        ),
        (
            lambda g: (
                g.add_input("x", 2), g.add_hidden("dead", 2), g.add_output("y", 1),
                g.connect("x", "y"), g.connect("x", "dead"),
            ),
            r"'dead' \(it reaches no Output\)",
        ),
        (
            lambda g: (
                g.add_input("x", 2), g.add_hidden("h", 2), g.add_hidden("k", 2), g.add_output("y", 1),
                g.connect("x", "y"), g.connect("h", "k"), g.connect("k", "y"),
            ),
            r"no incoming synapse: 'h' \(hidden\).*'k' \(no Input reaches it\)",
        ),
    ],
)
def test_validation_names_the_offending_nodes(build, message):
    g = gn.Graph(name="bad")
    build(g)
    with pytest.raises(GraphError, match=rf"graph 'bad' cannot run: .*{message}"):
        g.validate()
    with pytest.raises(GraphError, match=message):
        g.predict({n: np.zeros((1, g[n].size)) for n in g.inputs} if g.inputs else np.zeros((1, 2)))


def test_get_and_set_weights():
    g = chain()
    weights = g.get_weights()
    assert list(weights)[:3] == ["x->h1.weight", "h1.bias", "h1->h2.weight"]
    start = weights["h1.bias"].copy()
    weights["h1.bias"] += 1  # a copy: the graph is unchanged
    np.testing.assert_array_equal(g["h1"].bias, start)
    g.set_weights({"h1.bias": np.full(4, 2.0)})
    np.testing.assert_array_equal(g["h1"].bias, 2.0)
    assert g["h1"].bias.dtype == np.float32


@pytest.mark.parametrize(
    "bad, error, message",
    [
        ({"h1.bias": np.zeros(4), "h9.bias": np.zeros(4)}, NotFoundError, r"unknown weight keys \['h9.bias'\]"),
        ({"h1.bias": np.ones(4), "x->h1.weight": np.zeros((4, 3))}, GraphError, r"'x->h1.weight': expected shape \(3, 4\), got \(4, 3\)"),
        ({"h1.bias": np.ones(4), "h2.bias": [1, 2, np.inf, 4]}, GraphError, r"'h2.bias' contains 1 NaN or inf value\(s\)$"),
    ],
)
def test_set_weights_changes_nothing_when_anything_is_wrong(bad, error, message):
    g = chain()
    before = g.get_weights()
    with pytest.raises(error, match=message):
        g.set_weights(bad)
    after = g.get_weights()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_unknown_names_are_key_errors_too():
    g = chain()
    with pytest.raises(KeyError):
        g["missing"]
    with pytest.raises(NotFoundError, match=r"has no node 'missing'; known: \['x', 'h1', 'h2', 'h3', 'y'\]"):
        g["missing"]


def test_frozen_parameters_are_counted_and_kept():
    g = gn.Graph(seed=0)
    g.add_input("x", 3)
    g.add_hidden("h", 4, trainable=False)
    g.add_output("y", 1)
    g.connect("x", "h", trainable=False)
    g.connect("h", "y")
    assert g.num_params == 12 + 4 + 4 + 1
    assert g.num_trainable_params == 5
    frozen = g.synapse("x", "h").weight.copy()
    biases = {name: g[name].bias.copy() for name in ("h", "y")}
    rng = np.random.default_rng(0)
    g.fit(rng.normal(size=(32, 3)), rng.normal(size=32), epochs=3, verbose=0)
    np.testing.assert_array_equal(g.synapse("x", "h").weight, frozen)
    np.testing.assert_array_equal(g["h"].bias, biases["h"])
    assert not np.any(g["y"].bias == biases["y"])


def test_graph_names_are_checked():
    for bad in ("", "  ", "two\nlines", 3):
        with pytest.raises(GraphError, match="graph name must (be a non-empty string|not be blank)"):
            gn.Graph(name=bad)


def test_specs_with_cycles_are_refused_in_one_pass():
    spec = chain().to_dict()
    spec["synapses"].append({"src": "h3", "dst": "h1"})
    with pytest.raises(CycleError, match=r"spec.synapses: the synapses make the cycle h1 -> h2 -> h3 -> h1"):
        gn.Graph.from_dict(spec)


def test_building_a_long_chain_in_any_synapse_order_stays_linear():
    # Reverse order is the worst case for a per-synapse search; a spec is checked once.
    n = 3000
    nodes = [{"kind": "input", "name": "n0", "size": 1}]
    nodes += [{"kind": "hidden", "name": f"n{i}", "size": 1, "activation": "linear"} for i in range(1, n - 1)]
    nodes += [{"kind": "output", "name": f"n{n - 1}", "size": 1}]
    synapses = [[f"n{i}", f"n{i + 1}"] for i in reversed(range(n - 1))]
    g = gn.Graph.from_dict({"nodes": nodes, "synapses": synapses})
    assert g.topological_order[:3] == ["n0", "n1", "n2"] and len(g.synapses) == n - 1
    # By hand, the same order is settled by the O(1) shortcut (nothing feeds the source yet).
    h = gn.Graph()
    for node in nodes:
        h.add_node(gn.nodes.KINDS[node["kind"]](**{k: v for k, v in node.items() if k != "kind"}))
    for src, dst in synapses:
        h.connect(src, dst)
    assert h.topological_order == g.topological_order


@pytest.mark.parametrize("seed", range(5))
def test_connect_refuses_exactly_the_cycles(seed):
    """connect() skips its path search where it can prove no cycle is possible;
    random edits (against insertion order, removals, disconnections) must still
    accept exactly the synapses that keep the graph acyclic."""
    import networkx as nx

    rng = np.random.default_rng(seed)
    g = gn.Graph(seed=seed)
    names = [f"n{i}" for i in range(12)]
    for name in names:
        g.add_hidden(name, 2)
    shadow = nx.DiGraph()
    shadow.add_nodes_from(names)
    for _ in range(150):
        action = rng.random()
        src, dst = (str(n) for n in rng.choice(names, size=2, replace=False))
        if action < 0.8 and not shadow.has_edge(src, dst):
            makes_cycle = nx.has_path(shadow, dst, src)
            if makes_cycle:
                with pytest.raises(gn.CycleError, match=f"{src} -> {dst}"):
                    g.connect(src, dst)
            else:
                g.connect(src, dst)
                shadow.add_edge(src, dst)
        elif action < 0.95 and shadow.has_edge(src, dst):
            g.disconnect(src, dst)
            shadow.remove_edge(src, dst)
        elif action >= 0.95:
            victim = str(rng.choice(names))
            g.remove(victim)
            shadow.remove_node(victim)
            g.add_hidden(victim, 2)
            shadow.add_node(victim)
    assert set(g.structure.edges) == set(shadow.edges)
    order = g.topological_order
    position = {n: i for i, n in enumerate(order)}
    assert all(position[s] < position[d] for s, d in shadow.edges)


def test_a_graph_iterates_its_node_names_and_holds_its_nodes():
    """Iterating a graph gives its node names, as a dict's keys (it fell back
    to g[0] and raised NotFoundError), and a node of the graph is in it."""
    g = gn.Graph(seed=0)
    g.add_input("x", 2)
    g.add_hidden("h", 3)
    g.add_output("y", 1)
    g.connect("x", "h")
    g.connect("h", "y")
    assert list(g) == ["x", "h", "y"] == list(g.nodes) and len(g) == 3
    assert "h" in g and g["h"] in g and 0 not in g and "z" not in g
    other = gn.Graph()
    other.add_input("x", 2)
    assert other["x"] not in g
    for name in g:  # iterating while editing: the names of one moment
        if name == "h":
            g.remove("h")
    assert list(g) == ["x", "y"]


def test_copy_copy_of_a_trained_graph_is_a_graph_of_its_own():
    """copy.copy gives what deepcopy gives: it raised (an optimizer trains
    one graph) for a trained graph, and shared the nodes of an untrained one."""
    import copy

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 2)), rng.normal(size=(16, 1))
    for trained in (False, True):
        g = gn.Sequential([gn.Input(2), gn.Dense(3), gn.Dense(1)], loss="mse", seed=0)
        if trained:
            g.fit(x, y, epochs=1, verbose=0)
        c = copy.copy(g)
        assert np.array_equal(c.predict(x), g.predict(x)) and c["dense"] is not g["dense"]
        before = g.predict(x)
        c.fit(x, y, epochs=2, verbose=0)
        c.add_hidden("extra", 2)
        assert np.array_equal(g.predict(x), before) and "extra" not in g


def test_every_method_of_the_api_reference_documents_its_parameters():
    """The API reference (docs/api/graph.rst) shows each public method's
    numpydoc Parameters: each of its arguments is there."""
    import ast
    import inspect
    import pathlib

    def documented(function) -> set[str]:
        """The names numpydoc's Parameters section lists: its unindented lines."""
        lines = inspect.cleandoc(function.__doc__ or "").splitlines()
        if "Parameters" not in lines:
            return set()
        names, start = set(), lines.index("Parameters") + 2
        for i, line in enumerate(lines[start:], start):
            if i + 1 < len(lines) and set(lines[i + 1]) == {"-"}:  # the next section's heading
                break
            if line and not line[0].isspace():
                names.update(n.strip().lstrip("*") for n in line.split(" : ")[0].split(","))
        return names

    # The members the reference leaves out, as the docs' extension lists them
    # (read from its source: the extension imports Sphinx, a docs-only dependency).
    source = (pathlib.Path(__file__).parent.parent / "docs" / "_ext" / "graphnet_docs.py").read_text()
    listed = next(node.value for node in ast.parse(source).body
                  if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "GRAPH_PLUMBING")
    excluded = set(ast.literal_eval(listed))
    undocumented = {}
    for name in dir(gn.Graph):
        method = getattr(gn.Graph, name)
        if name.startswith("_") or name in excluded or not inspect.isfunction(method):
            continue
        parameters = [p.name for p in list(inspect.signature(method).parameters.values())[1:]
                      if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        missing = [p for p in parameters if p not in documented(method)]
        if missing:
            undocumented[name] = missing
    assert undocumented == {}


def test_sources_and_consumers_name_an_unknown_node_and_take_nodes():
    g = gn.Graph()
    g.add_input("x", 2)
    g.add_output("y", 1)
    g.connect("x", "y")
    assert g.sources(g["y"]) == ["x"] and g.consumers("x") == ["y"]
    for ask in (g.sources, g.consumers, g.incoming):
        with pytest.raises(NotFoundError, match=r"graph 'graph' has no node 'nope'; known: \['x', 'y'\]"):
            ask("nope")
