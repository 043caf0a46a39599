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
    assert repr(h) == "Hidden('h', size=4, activation='leaky_relu')"
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
    with pytest.raises(GraphError, match=r"node: size must be a positive integer, got True"):
        gn.Hidden(True)


def test_changing_a_setting_bumps_the_graph_version():
    g = build_dag()
    version = g.version
    g["h1"].dropout = 0.1
    g["main"].loss_weight = 3
    g["h2"].trainable = False
    assert g.version == version + 3
