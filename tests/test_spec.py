"""Architecture specs: ``to_dict`` / ``from_dict`` (the structure of graph.json and spec files)."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
from conftest import build_dag

import graphnet as gn


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


# ------------------------------------------------------------------- specs
_YAML = """\
name: tiny
seed: 0
nodes:
  - {kind: input, name: x, size: 3}
  - {kind: hidden, name: h, size: 4, activation: {name: leaky_relu, negative_slope: 0.2}}
  - {kind: output, name: y, size: 2, activation: softmax, loss: categorical_crossentropy}
synapses:
  - [x, h]
  - {src: h, dst: y, init: glorot_normal}
"""


def test_from_spec_json_and_yaml_agree(tmp_path):
    (tmp_path / "tiny.yaml").write_text(_YAML)
    from_yaml = gn.Graph.from_spec(tmp_path / "tiny.yaml")
    (tmp_path / "tiny.json").write_text(json.dumps(from_yaml.to_dict()))
    from_json = gn.Graph.from_spec(tmp_path / "tiny.json")
    assert from_json.to_dict() == from_yaml.to_dict()
    assert from_yaml["h"].activation.negative_slope == 0.2
    assert from_yaml.synapse("h", "y").init == "glorot_normal"
    # Same seed, same spec: the same initial weights.
    assert all(np.array_equal(v, from_json.get_weights()[k]) for k, v in from_yaml.get_weights().items())


def test_example_spec_files_build(tmp_path):
    examples = os.path.join(os.path.dirname(__file__), "..", "examples")
    yaml_model = gn.Graph.from_spec(os.path.join(examples, "digits_spec.yaml"))
    json_model = gn.Graph.from_spec(os.path.join(examples, "digits_spec.json"))
    assert yaml_model.to_dict() == json_model.to_dict()
    assert yaml_model.inputs == ["pixels", "meta"] and yaml_model.outputs == ["digit", "big"]
    yaml_model.validate()


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("spec.txt", "{}", "must end in .json, .yaml or .yml"),
        ("bad.json", "{nodes: 1}", r"bad\.json: not valid JSON"),
        ("nan.json", '{"nodes": [{"kind": "input", "name": "x", "size": NaN}]}', "NaN is not a number"),
        ("bad.yaml", "nodes: [a, b\n", r"bad\.yaml: not valid YAML"),
        ("field.yaml", "nodes:\n  - {kind: input, name: x, size: -3}\n", r"field\.yaml: spec\.nodes\[0\]\.size: expected a positive integer"),
        ("typo.yaml", "nodez: []\n", r"unknown fields \['nodez'\]"),
        ("python.yaml", "nodes: !!python/object/apply:os.system ['ls']\n", "not valid YAML"),
    ],
)
def test_from_spec_errors_name_the_file(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(gn.ModelFileError, match=message):
        gn.Graph.from_spec(tmp_path / name)


def test_from_spec_bounds_parameters(tmp_path):
    spec = {"nodes": [{"kind": "input", "name": "x", "size": 100_000},
                      {"kind": "output", "name": "y", "size": 100_000}], "synapses": [["x", "y"]]}
    (tmp_path / "big.json").write_text(json.dumps(spec))
    with pytest.raises(gn.ModelFileError, match="10,000,100,000 parameters.*pass max_params=None"):
        gn.Graph.from_spec(tmp_path / "big.json")


def test_from_spec_without_pyyaml_says_how_to_install(tmp_path, monkeypatch):
    (tmp_path / "s.yaml").write_text(_YAML)
    monkeypatch.setitem(sys.modules, "yaml", None)
    with pytest.raises(gn.ModelFileError, match=r"pip install 'graphnet\[yaml\]'"):
        gn.Graph.from_spec(tmp_path / "s.yaml")
    with pytest.raises(gn.ModelFileError, match="no such file"):
        gn.Graph.from_spec(tmp_path / "missing.json")
