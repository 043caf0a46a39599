"""Architecture specs: ``to_dict`` / ``from_dict`` (the structure of graph.json and spec files)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import graphnet as gn
from conftest import build_dag


def test_round_trip_is_json_safe_and_stable():
    g = build_dag()
    data = g.to_dict()
    assert json.loads(json.dumps(data)) == data
    rebuilt = gn.Graph.from_dict(data)
    assert rebuilt.to_dict() == data
    assert rebuilt.topological_order == g.topological_order
    assert [s.key for s in rebuilt.synapses] == [s.key for s in g.synapses]


def test_array_init_is_kept_as_the_weights_origin():
    g = gn.Graph(seed=0)
    g.add_input("x", 2)
    g.add_output("y", 2)
    g.connect("x", "y", init=np.eye(2))
    rebuilt = gn.Graph.from_dict(g.to_dict())
    assert rebuilt.synapse("x", "y").init == "array"
    assert np.array_equal(rebuilt.synapse("x", "y").weight, np.zeros((2, 2)))  # values live in weight files
    assert rebuilt.to_dict() == g.to_dict()


def test_sequential_keeps_weights_and_bias_frozen_separately():
    model = gn.Sequential([gn.Input(3), gn.Dense(4, activation="relu"), gn.Dense(1)], seed=0)
    data = model.to_dict()
    data["nodes"][1]["trainable"] = False  # a frozen bias ...
    data["synapses"][0]["trainable"] = True  # ... under trainable weights
    rebuilt = gn.Graph.from_dict(data)
    assert isinstance(rebuilt, gn.Sequential)
    assert rebuilt.nodes["dense"].trainable is False
    assert rebuilt.synapse("input", "dense").trainable is True
    assert rebuilt.to_dict() == data


def test_sequential_model_loss_and_node_loss():
    model = gn.Sequential([gn.Input(3), gn.Dense(2)], loss="huber", seed=0)
    data = model.to_dict()
    assert data["loss"] == "huber"
    assert gn.Graph.from_dict(data).loss == "huber"
    data["loss"] = "mae"
    with pytest.raises(gn.GraphError, match=r"spec.loss 'mae' disagrees with the loss .*huber.* of the output 'dense'"):
        gn.Graph.from_dict(data)


def test_top_level_loss_needs_a_sequential_spec():
    data = build_dag().to_dict()
    data["loss"] = "mse"
    with pytest.raises(gn.GraphError, match="spec.loss: expected no top-level loss unless sequential is true"):
        gn.Graph.from_dict(data)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"activation": {"name": "elu", "alpha": float("inf")}}, r"spec\.nodes\[2\]\.activation\.alpha: expected a finite number"),
        ({"activation": {"alpha": 1.0}}, r"spec\.nodes\[2\]\.activation\.name: expected a name"),
        ({"kind": ["hidden"]}, r"spec\.nodes\[2\]\.kind: unknown kind \['hidden'\]"),
        ({"size": True}, r"spec\.nodes\[2\]\.size: expected a positive integer"),
        ({"colour": "red"}, r"spec\.nodes\[2\]: unknown fields \['colour'\]"),
    ],
)
def test_bad_node_fields_are_named(change, message):
    data = build_dag().to_dict()
    data["nodes"][2].update(change)
    with pytest.raises(gn.GraphError, match=message):
        gn.Graph.from_dict(data)


def test_short_forms_and_defaults():
    g = gn.Graph.from_dict({
        "nodes": [{"kind": "input", "name": "x", "size": 2}, {"kind": "output", "name": "y", "size": 1}],
        "synapses": [["x", "y"]],
    })
    assert g.name == "graph" and g.dtype == np.float32
    assert g["y"].activation.name == "linear" and g["y"].loss.name == "mse"
