"""Work that grows with the graph: what reads one node's synapses reads them
alone, never every synapse of the graph (issue 29, item 15: ``summary()`` and
``freeze("h*")`` of 20,000 nodes took 107 s and 73 s, a scan of every synapse
per node).

Counted, not timed: the graph's synapse table counts how often it is walked
whole, and a call that walks it once per node fails however fast the machine.
"""

from __future__ import annotations

import numpy as np
import pytest

import graphnet as gn


class _CountingTable(dict):
    """A dict that counts the walks over all its entries."""

    walks = 0

    def _walked(self):
        type(self).walks += 1

    def __iter__(self):
        self._walked()
        return super().__iter__()

    def items(self):
        self._walked()
        return super().items()

    def values(self):
        self._walked()
        return super().values()

    def keys(self):
        self._walked()
        return super().keys()


def _chain(n: int) -> gn.Graph:
    g = gn.Graph(seed=0)
    g.add_input("x", 2)
    previous = "x"
    for i in range(n):
        g.add_hidden(f"h{i}", 2)
        g.connect(previous, f"h{i}")
        previous = f"h{i}"
    g.add_output("y", 1)
    g.connect(previous, "y")
    return g


@pytest.mark.parametrize("call", [
    lambda g: g.summary(print_fn=lambda line: None),
    lambda g: g.freeze("h*"),
    lambda g: g.unfreeze("h*"),
    lambda g: [g.incoming(name) for name in g.nodes],
    lambda g: g.to_dot(),
], ids=["summary", "freeze", "unfreeze", "incoming", "to_dot"])
def test_a_call_walks_the_synapses_a_fixed_number_of_times_however_many_nodes(call):
    g = _chain(300)
    g.freeze("h1")  # freeze and unfreeze have something to change either way
    g._synapses = _CountingTable(g._synapses)
    _CountingTable.walks = 0
    call(g)
    assert _CountingTable.walks < 10, f"{_CountingTable.walks} walks over every synapse for 301 nodes"


def test_the_html_page_walks_the_synapses_a_fixed_number_of_times(tmp_path):
    g = _chain(300)
    g._synapses = _CountingTable(g._synapses)
    _CountingTable.walks = 0
    g.render(tmp_path / "chain.html")
    assert _CountingTable.walks < 10, f"{_CountingTable.walks} walks over every synapse for 301 nodes"


class _CountingRecords(list):
    """A list that counts the walks over it."""

    walks = 0

    def __iter__(self):
        type(self).walks += 1
        return super().__iter__()


@pytest.mark.parametrize("other", ["graph", "dict"])
def test_transfer_by_name_walks_the_parameters_a_fixed_number_of_times(monkeypatch, other):
    source, target = _chain(200), _chain(200)
    given = source if other == "graph" else source.get_weights()
    listed = gn.Graph.parameters
    monkeypatch.setattr(gn.Graph, "parameters", lambda self, *a, **k: _CountingRecords(listed(self, *a, **k)))
    _CountingRecords.walks = 0
    report = target.transfer_weights(given)
    assert len(report.copied) == 2 * 201 and not report.unused
    assert _CountingRecords.walks < 10, f"{_CountingRecords.walks} walks over 402 parameters"


def test_metric_names_read_the_outputs_a_fixed_number_of_times(monkeypatch):
    g = gn.Graph(seed=0)
    g.add_input("x", 1)
    for i in range(100):
        g.add_output(f"y{i}", 1)
        g.connect("x", f"y{i}")
    x, y = np.ones((4, 1)), {f"y{i}": np.ones((4, 1)) for i in range(100)}
    listed, reads = gn.Graph.outputs, []
    monkeypatch.setattr(gn.Graph, "outputs", property(lambda self: reads.append(1) or listed.fget(self)))
    logs = g.evaluate(x, y, metrics=["mae"])
    assert "y99_mae" in logs and "y0_loss" in logs
    assert len(reads) < 20, f"Graph.outputs listed {len(reads)} times for 100 outputs"
    reads.clear()
    g.fit(x, y, metrics=["mae"], epochs=1, verbose=0)
    assert len(reads) < 30, f"Graph.outputs listed {len(reads)} times for 100 outputs"


def test_incoming_lists_the_synapses_in_the_order_they_were_connected():
    g = gn.Graph(seed=0)
    for name in ("a", "b", "c"):
        g.add_input(name, 1)
    g.add_output("y", 1)
    for src in ("c", "a", "b"):
        g.connect(src, "y")
    g.disconnect("a", "y")
    g.connect("a", "y")
    assert [s.src for s in g.incoming("y")] == ["c", "b", "a"] == g.sources("y")
    assert [(s.src, s.dst) for s in g.incoming("y")] == [(s.src, s.dst) for s in g.synapses]


def test_after_surgery_incoming_still_follows_the_synapses_order():
    g = gn.Graph(seed=0)
    for name in ("a", "b", "c"):
        g.add_input(name, 1)
    g.add_hidden("h", 2)
    g.add_output("y", 1)
    for src, dst in [("c", "y"), ("a", "y"), ("b", "y"), ("a", "h"), ("h", "y")]:
        g.connect(src, dst)
    g.insert("a", "y", "between", activation="linear")  # surgery rebuilds the whole structure
    for name in g.nodes:
        assert g.incoming(name) == [s for s in g.synapses if s.dst == name]
        assert g.sources(name) == [s.src for s in g.synapses if s.dst == name]


def _message(call) -> str:
    with pytest.raises(gn.GraphError) as caught:
        call()
    return str(caught.value)


def _outputs(n: int) -> gn.Graph:
    g = gn.Graph(seed=0)
    g.add_input("x", 1)
    for i in range(n):
        g.add_output(f"y{i}", 1)
        g.connect("x", f"y{i}")
    return g


@pytest.mark.parametrize("case", ["no source", "on no path", "an array for many inputs", "unknown outputs",
                                  "loss per output", "class weights per output", "attributions output"])
def test_a_message_about_many_nodes_names_a_few_and_counts_the_rest(case):
    """A graph of thousands of nodes gets messages of a few hundred
    characters (114,000 for 5,000 nodes without a source)."""
    many = 2000
    if case in ("no source", "on no path"):
        g = gn.Graph(seed=0)
        g.add_input("x", 2)
        g.add_output("y", 1)
        g.connect("x", "y")
        for i in range(many):
            g.add_hidden(f"h{i}", 2)
            if case == "on no path":
                g.connect("x", f"h{i}")
        text = _message(g.validate)
    elif case == "an array for many inputs":
        g = gn.Graph(seed=0)
        for i in range(many):
            g.add_input(f"x{i}", 1)
        g.add_output("y", 1)
        g.connect([f"x{i}" for i in range(many)], "y")
        text = _message(lambda: g.predict(np.ones((2, many))))
    else:
        g = _outputs(many)
        calls = {
            "unknown outputs": lambda: g.compile(loss={f"z{i}": "mae" for i in range(many)}),
            "loss per output": lambda: g.compile(loss=["mae"] * 3),
            "class weights per output": lambda: g.fit(np.ones((2, 1)), {f"y{i}": np.ones((2, 1)) for i in range(many)},
                                                      class_weight={0: 1.0}, verbose=0),
            "attributions output": lambda: g.attributions(np.ones((2, 1))),
        }
        text = _message(calls[case])
    assert len(text) < 1500, f"{len(text)} characters"
    assert "more" in text


def test_reprs_of_what_fit_and_compile_predict_give_stay_short():
    g = _outputs(300)
    x, y = np.ones((2, 1)), {f"y{i}": np.ones((2, 1)) for i in range(300)}
    history = g.fit(x, y, epochs=1, verbose=0)
    assert len(repr(history)) < 600 and "more" in repr(history)
    serve = g.compile_predict()
    assert len(repr(serve)) < 600 and "more" in repr(serve)
