"""Input, Hidden and Output (graphnet.nodes): checked settings, configs, ownership."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import build_dag

import graphnet as gn
from graphnet import GraphError
from graphnet.nodes import KINDS, check_name


def test_node_arguments_are_checked():
    g = gn.Graph()
    g.add_input("x", 2)
    with pytest.raises(GraphError, match="already has a node named 'x'"):
        g.add_hidden("x", 3)
    with pytest.raises(GraphError, match="size must be a positive integer, got 0"):
        g.add_hidden("h", 0)
    with pytest.raises(GraphError, match="name must be a non-empty string"):
        g.add_hidden("", 2)
    with pytest.raises(GraphError, match="must not contain '->'"):
        g.add_hidden("a->b", 2)
    with pytest.raises(GraphError, match=r"dropout must be in \[0, 1\), got 1.0"):
        g.add_hidden("h", 2, dropout=1.0)
    with pytest.raises(GraphError, match="loss_weight must be a finite number >= 0"):
        g.add_output("o", 2, loss_weight=-1)
    with pytest.raises(GraphError, match="dtype must be 'float32' or 'float64'"):
        gn.Graph(dtype="int8")
    assert list(g.nodes) == ["x"]


def test_setters_check_their_values():
    g = build_dag()
    with pytest.raises(gn.GraphError, match="output 'main': loss 'binary_crossentropy' needs activation 'sigmoid', got 'tanh'"):
        g["main"].activation = "tanh"
    g["aux"].loss = "mse"  # softmax with mse is allowed
    g["aux"].activation = "relu"
    with pytest.raises(gn.GraphError, match="output 'aux': loss 'categorical_crossentropy' needs activation 'softmax', got 'relu'"):
        g["aux"].loss = "categorical_crossentropy"
    assert g["aux"].loss.name == "mse"
    with pytest.raises(gn.GraphError, match=r"node 'h1': dropout must be in \[0, 1\)"):
        g["h1"].dropout = 2
    with pytest.raises(AttributeError):
        g["h1"].size = 3
    assert g["main"].activation.name == "sigmoid"


def test_a_node_belongs_to_one_graph():
    g = build_dag()
    other = gn.Graph(name="other")
    with pytest.raises(gn.GraphError, match="already belongs to graph 'dag'"):
        other.add_node(g["h1"])


def test_settings_config_and_repr():
    h = gn.Hidden(4, activation={"name": "leaky_relu", "negative_slope": 0.2}, dropout=0.25, name="h")
    assert h.get_config() == {
        "kind": "hidden", "name": "h", "size": 4, "dropout": 0.25, "trainable": True,
        "activation": {"name": "leaky_relu", "negative_slope": 0.2},
    }
    assert repr(h) == "Hidden(size=4, activation='leaky_relu', name='h')"
    for node in (h, gn.Input(3), gn.Input(2, name="x"), gn.Output(2, "softmax", "categorical_crossentropy", name="o")):
        again = eval(repr(node), vars(gn))  # a call that makes the node again
        assert type(again) is type(node) and repr(again) == repr(node)
    out = gn.Output(3, activation="softmax", loss="categorical_crossentropy", loss_weight=2, name="o")
    assert out.loss_weight == 2.0 and out.num_params == 3 and gn.Input(5, name="x").num_params == 0
    assert np.array_equal(out.bias, np.zeros(3)) and set(KINDS) == {"input", "hidden", "output"}


def test_names_and_pairings_are_checked():
    assert check_name("ok") == "ok"
    for bad in ("", "  ", "a->b", "tab\there", 5):
        with pytest.raises(GraphError, match="name"):
            check_name(bad)
    with pytest.raises(GraphError, match="softmax over 1 unit is always 1.0"):
        gn.Output(1, activation="softmax", name="o")
    with pytest.raises(GraphError, match="loss 'binary_crossentropy' needs activation 'sigmoid', got 'linear'"):
        gn.Output(2, loss="binary_crossentropy", name="o")
    with pytest.raises(GraphError, match=r"^Hidden: size must be a positive integer, got True"):
        gn.Hidden(True)
    with pytest.raises(GraphError, match=r"^Input: size must be a positive integer, got '3'"):
        gn.Input("3")
    with pytest.raises(GraphError, match=r"^input 'x': size must be a positive integer, got 0"):
        gn.Graph().add_input("x", 0)
    with pytest.raises(GraphError, match=r"^Hidden: trainable must be True or False, got 'no'"):
        gn.Hidden(2, trainable="no")
    with pytest.raises(GraphError, match=r"^Hidden: dropout must be in \[0, 1\)"):
        gn.Hidden(2, dropout=1.0)


def test_changing_a_setting_bumps_the_graph_version():
    g = build_dag()
    version = g.version
    g["h1"].dropout = 0.1
    g["main"].loss_weight = 3
    assert g.version == version + 2
    g["h2"].trainable = False  # the bias and two synapses: at least one bump
    assert g.version > version + 2


# ------------------------------------------------------- node.trainable
def _frozen_flags(g: gn.Graph) -> dict[str, bool]:
    return {r.key: r.trainable for r in g.parameters()}


def test_node_trainable_freezes_the_bias_and_incoming_synapses_as_freeze_does(rng):
    by_flag, by_freeze = build_dag(), build_dag()
    by_flag["h2"].trainable = False
    by_freeze.freeze("h2")
    flags = _frozen_flags(by_flag)
    assert flags == _frozen_flags(by_freeze)
    assert not flags["h2.bias"] and not flags["h1->h2.weight"] and not flags["b->h2.weight"]
    assert by_flag.num_trainable_params == by_freeze.num_trainable_params
    assert by_flag.num_trainable_params == by_flag.num_params - (4 + 6 * 4 + 3 * 4)
    x, y = {"a": rng.normal(size=(16, 5)), "b": rng.normal(size=(16, 3))}, \
        {"aux": rng.integers(0, 3, 16), "main": rng.integers(0, 2, (16, 2)).astype(float)}
    before = by_flag.get_weights()
    by_flag.fit(x, y, epochs=2, batch_size=8, verbose=0)
    after = by_flag.get_weights()
    for key in ("h2.bias", "h1->h2.weight", "b->h2.weight"):
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)
    assert not np.array_equal(after["a->h1.weight"], before["a->h1.weight"])


def test_node_trainable_true_unfreezes_them_and_a_synapse_still_works_alone():
    g = build_dag()
    g.freeze("h2")
    g["h2"].trainable = True
    assert all(_frozen_flags(g).values())
    g["h2"].trainable = False
    g.synapse("b", "h2").trainable = True  # one synapse on its own
    flags = _frozen_flags(g)
    assert flags["b->h2.weight"] and not flags["h1->h2.weight"] and not flags["h2.bias"]
    assert g["h2"].trainable is False


def test_synapses_connected_into_a_frozen_node_follow_it_unless_told(tmp_path):
    g = gn.Graph(seed=0)
    g.add_input("x", 2)
    g.add_input("w", 2)
    g.add_hidden("h", 3, trainable=False)
    g.add_output("y", 1)
    assert not g.connect("x", "h").trainable
    assert g.connect("w", "h", trainable=True).trainable
    g.connect("h", "y")
    loaded = gn.load(g.save(tmp_path / "m.gnet"))
    assert _frozen_flags(loaded) == _frozen_flags(g)
    spec = g.to_dict()
    for s in spec["synapses"]:
        if s["src"] == "x":
            del s["trainable"]  # a hand-written spec: the synapse follows its node
    assert _frozen_flags(gn.Graph.from_dict(spec)) == _frozen_flags(g)


def test_an_unnamed_output_is_called_output_in_messages():
    with pytest.raises(gn.GraphError, match=r"^Output: loss_weight must be a finite number >= 0, got -1$"):
        gn.Output(1, loss_weight=-1)
    with pytest.raises(gn.GraphError, match=r"^output 'y': classes need a softmax output"):
        gn.Output(3, activation="sigmoid", classes=["a", "b"], name="y")
