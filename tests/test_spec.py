"""Architecture specs: ``to_dict`` / ``from_dict`` (the structure of graph.json and spec files)."""

from __future__ import annotations

import json
import os
import re
import sys
import time
import tracemalloc

import numpy as np
import pytest
from conftest import build_dag
from modelfiles import bounded

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
        ({"activation": {"name": "elu", "alpha": float("inf")}}, r"spec\.nodes\[2\]\.activation\.alpha: expected finite numbers"),
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


@pytest.mark.parametrize("field, message", [
    ("categories", r"spec\.nodes\[0\]: categories must be a list of values or 'adapt', got 5"),
    ("columns", r"spec\.nodes\[0\]: columns must be a non-empty list of column names, got 5"),
])
def test_a_bad_categories_or_columns_is_named_not_the_size_it_gives(field, message):
    with pytest.raises(gn.GraphError, match=message):
        gn.Graph.from_dict({"nodes": [{"kind": "input", "name": "x", field: 5}]})


def test_numpy_scalars_and_flags_are_taken_as_plain_values():
    g = gn.Graph.from_dict({
        "nodes": [{"kind": "input", "name": "x", "size": np.int64(2)},
                  {"kind": "hidden", "name": "h", "size": 3, "dropout": np.float32(0.25), "trainable": np.False_},
                  {"kind": "output", "name": "y", "size": 1, "loss_weight": np.float32(0.5), "trainable": np.True_}],
        "synapses": [["x", "h"], {"src": "h", "dst": "y", "trainable": np.False_}],
        "sequential": np.False_,
    })
    assert g["y"].loss_weight == 0.5 and g["h"].dropout == 0.25 and not g["h"].trainable and g["y"].trainable
    assert not g.synapse("h", "y").trainable
    json.dumps(g.to_dict())  # plain Python values throughout
    with pytest.raises(gn.GraphError, match=r"spec\.nodes\[1\]\.trainable: expected true or false, found 'yes'"):
        gn.Graph.from_dict({"nodes": [{"kind": "input", "name": "x", "size": 1}, {"kind": "output", "name": "y",
                                       "size": 1, "trainable": "yes"}], "synapses": [["x", "y"]]})


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


# ------------------------------------------------------------- hostile specs
_LAUGHS = "".join(
    f"{name}: &{name} [{', '.join(['*' + prev] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
    for prev, name in zip(["", "a", "b", "c", "d", "e", "f", "g"], "abcdefgh")
) + "nodes: *h\n"


def test_yaml_aliases_are_refused_with_their_line(tmp_path):
    # 430 bytes that expand to 9**8 strings: on the old reader, the repr of the
    # bad value in the error message took 33 s and 640 MB.
    path = tmp_path / "laughs.yaml"
    path.write_text(_LAUGHS)
    assert len(_LAUGHS) < 500
    outcome, seconds, peak = bounded(lambda path=path: gn.Graph.from_spec(path))
    assert isinstance(outcome, gn.ModelFileError)
    assert str(outcome) == (
        f"{path}: line 1: YAML anchors and aliases (&a) are not allowed in a spec; write the value out"
    )
    assert seconds < 2 and peak < 8 << 20
    alias_only = tmp_path / "alias.yaml"
    alias_only.write_text("nodes:\n  - {kind: input, name: x, size: 2}\nsynapses: [*x]\n")
    with pytest.raises(gn.ModelFileError, match=r"alias\.yaml: line 3: YAML anchors and aliases \(\*x\)"):
        gn.Graph.from_spec(alias_only)


@pytest.mark.parametrize(
    "text, message",
    [
        (("nodes:\n  - {kind: input, name: x, size: 2}\n  - kind: output\n    name: y\n    size: 2\n"
          "    size: 3000\nsynapses: [[x, y]]\n"), r"line 6: key 'size' appears twice in one mapping"),
        ("nodes: []\nnodes: []\n", r"line 2: key 'nodes' appears twice"),
        ("nodes:\n  - {<<: {kind: input}, name: x, size: 2}\n", r"line 2: YAML merge keys \(<<\) are not allowed"),
        ("nodes:\n  - {[1, 2]: 3}\n", r"line 2: a mapping key must be a plain value, found a list"),
    ],
)
def test_yaml_repeated_and_merge_keys_are_refused(tmp_path, text, message):
    path = tmp_path / "keys.yaml"
    path.write_text(text)
    with pytest.raises(gn.ModelFileError, match=r"keys\.yaml: " + message):
        gn.Graph.from_spec(path)


def test_messages_show_a_bounded_part_of_a_value():
    shared = ["lol"] * 9
    for _ in range(12):  # 9**13 strings if walked in full
        shared = [shared] * 9
    outcome, seconds, _ = bounded(lambda: gn.Graph.from_dict({"nodes": shared}))
    assert isinstance(outcome, gn.GraphError) and len(str(outcome)) < 200
    assert seconds < 1
    with pytest.raises(gn.GraphError) as info:
        gn.Graph.from_dict({"nodes": [{"kind": "x" * 10**6, "name": "a", "size": 1}]})
    assert len(str(info.value)) < 300


def test_repeated_node_names_are_found_in_linear_time():
    # 40,000 nodes, two of them named alike: the old check took 198 s.
    nodes = [{"kind": "input", "name": f"n{i}", "size": 1} for i in range(40_000)]
    nodes.append({"kind": "input", "name": "n7", "size": 1})
    start = time.perf_counter()
    with pytest.raises(gn.GraphError) as info:
        gn.Graph.from_dict({"nodes": nodes})
    assert time.perf_counter() - start < 5
    assert str(info.value) == "spec.nodes: names must be unique, repeated: ['n7']"


def test_from_dict_has_the_files_parameter_limit():
    huge = {"nodes": [{"kind": "input", "name": "x", "size": 1_000_000},
                      {"kind": "output", "name": "y", "size": 1_000_000}], "synapses": [["x", "y"]]}
    with pytest.raises(gn.GraphError, match=r"1,000,001,000,000 parameters, more than the limit of "
                                            r"100,000,000; pass max_params=None"):
        gn.Graph.from_dict(huge)
    with pytest.raises(gn.GraphError, match="more than the limit of 10$"):
        gn.Graph.from_dict(build_dag().to_dict(), max_params=10)
    assert gn.Graph.from_dict(build_dag().to_dict(), max_params=None).to_dict() == build_dag().to_dict()
    with pytest.raises(gn.GraphError, match=r"spec\.nodes\[0\]\.size: expected a positive integer \(at most 2\*\*40\)"):
        gn.Graph.from_dict({"nodes": [{"kind": "input", "name": "x", "size": 10**13}]}, max_params=None)
    with pytest.raises(gn.GraphError, match="max_params must be None or an integer >= 0"):
        gn.Graph.from_dict(build_dag().to_dict(), max_params="many")


# ----------------------------------------------------------------- fuzzing
_YAML_JUNK = ["&a x", "*a", "&a [1, *a]", "<<: {size: 3}", "!!python/object/apply:os.system [ls]", "!!binary aGVsbG8=",
              "!!set {a, b}", "1e999", ".nan", "-.inf", "9" * 5000, "0x7fffffffffffffffffff", "~", "[[[[[[", "{a: 1, a: 2}",
              "'" + "x" * 5000 + "'", "2001-12-14", "yes", "? [1, 2]\n  : 3", "- - - - -", "\t", "\x00", "%YAML 1.1"]


def _spec_variants(yaml_text: str, json_text: str, rng, count):
    """Byte flips, truncation, anchors and aliases, repeated keys, junk values
    and structure in YAML; flips, truncation, repeated keys and junk in JSON."""
    for i in range(count):
        kind, text = i % 8, (yaml_text if i % 16 < 8 else json_text)
        suffix = ".yaml" if i % 16 < 8 else ".json"
        lines = text.splitlines(keepends=True)
        if kind == 0:  # flip bytes
            raw = bytearray(text.encode())
            for at in rng.integers(0, len(raw), size=int(rng.integers(1, 6))):
                raw[at] ^= int(rng.integers(1, 256))
            yield suffix, bytes(raw)
        elif kind == 1:  # truncate
            yield suffix, text.encode()[: int(rng.integers(0, len(text)))]
        elif kind == 2:  # repeat a line (a repeated key, or a repeated item)
            at = int(rng.integers(len(lines)))
            yield suffix, "".join(lines[: at + 1] + [lines[at]] + lines[at + 1 :]).encode()
        elif kind in (3, 4):  # junk after a colon or a comma: a value replaced
            at = int(rng.integers(len(lines)))
            line = lines[at]
            cut = max(line.rfind(":"), line.rfind(","))
            junk = _YAML_JUNK[int(rng.integers(len(_YAML_JUNK)))]
            if suffix == ".json":
                junk = ['NaN', '1e999', '9' * 5000, '"x"', '[', '{"a": 1, "a": 2}', 'null', '-1', '[[[[[['][int(rng.integers(9))]
            lines[at] = (line[: cut + 1] + " " + junk + "\n") if cut >= 0 else junk + "\n"
            yield suffix, "".join(lines).encode()
        elif kind == 5:  # an anchor on one line and aliases to it on others
            if suffix == ".json":
                yield suffix, ("[" * 100_000 + "]" * 100_000).encode()
                continue
            at, to = sorted(int(v) for v in rng.integers(0, len(lines), size=2))
            lines[at] = lines[at].replace(": ", ": &x ", 1)
            lines[to] = lines[to].rstrip("\n").rsplit(" ", 1)[0] + " *x\n"
            yield suffix, "".join(lines).encode()
        elif kind == 6:  # a size far beyond any machine
            yield suffix, re.sub(r"size: \d+|\"size\": \d+", lambda m: m.group(0).split()[0] + " 10000000000000",
                                 text, count=int(rng.integers(1, 3))).encode()
        else:  # billions of laughs
            yield suffix, ("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
                           + "".join(f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefg", "bcdefgh"))
                           + "nodes: *h\n").encode() if suffix == ".yaml" else json_text.replace("{", "{\"k\": 1, \"k\": 2, ", 1).encode()


def test_fuzzed_specs_in_bounded_time_and_memory(tmp_path):
    """Every variant builds a graph or raises GraphError (ModelFileError,
    naming the file), each in at most about a second and 100 MB."""
    yaml = pytest.importorskip("yaml")
    data = build_dag().to_dict()
    yaml_text = yaml.safe_dump(data, sort_keys=False)
    json_text = json.dumps(data, indent=1)
    rng = np.random.default_rng(5)
    worst_seconds = worst_peak = 0.0
    outcomes = {"refused": 0, "built": 0}
    tracemalloc.start()
    try:
        for i, (suffix, raw) in enumerate(_spec_variants(yaml_text, json_text, rng, 800)):
            path = tmp_path / f"v{i % 4}{suffix}"
            path.write_bytes(raw)
            outcome, seconds, peak = bounded(lambda path=path: gn.Graph.from_spec(path))
            worst_seconds, worst_peak = max(worst_seconds, seconds), max(worst_peak, peak)
            if isinstance(outcome, Exception):
                assert isinstance(outcome, gn.ModelFileError), repr(outcome)
                assert str(outcome).startswith(str(path)) and len(str(outcome)) < 1000, str(outcome)[:2000]
                outcomes["refused"] += 1
            else:
                outcomes["built"] += 1
    finally:
        tracemalloc.stop()
    print(f"800 spec variants: {outcomes}; worst {worst_seconds:.3f} s, {worst_peak / (1 << 20):.1f} MB")
    assert outcomes["refused"] > 400 and outcomes["built"] > 0
    assert worst_peak < 100 << 20 and worst_seconds < 1.0, (worst_seconds, worst_peak)


@pytest.mark.parametrize("bad", [float("nan"), "10", -1, True, 2.5])
def test_from_spec_s_max_params_is_the_argument_s_error_not_the_file_s(tmp_path, bad):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(build_dag().to_dict()), encoding="utf-8")
    with pytest.raises(gn.GraphError, match=r"^from_spec: max_params must be None or an integer >= 0") as info:
        gn.Graph.from_spec(path, max_params=bad)
    assert not isinstance(info.value, gn.ModelFileError)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_non_finite_number_in_a_json_spec_is_named_with_its_line(tmp_path, constant):
    path = tmp_path / "spec.json"
    path.write_text('{"nodes": [{"kind": "input", "name": "NaN here", "size": 2},\n'
                    f' {{"kind": "output", "name": "y", "size": 1, "loss_weight": {constant}}}],\n'
                    ' "synapses": [["NaN here", "y"]]}')
    with pytest.raises(gn.ModelFileError, match=rf"line 2: {constant} is not a number JSON allows"):
        gn.Graph.from_spec(path)
