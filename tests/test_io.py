"""Model files: round trips, resumed training, the atomic write, hostile files, specs."""

from __future__ import annotations

import io
import json
import os
import sys
import zipfile

import numpy as np
import pytest

import graphnet as gn
from graphnet import archive, saving
from graphnet import optimizers
from conftest import build_dag, dag_data


def _same(a, b) -> bool:
    """Bit-for-bit equality of two predictions (arrays or dicts of arrays)."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    return np.array_equal(a, b)


def _members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _zip(members, methods=None) -> bytes:
    """A zip archive of ``members`` (name -> bytes), as a hostile writer would make it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            method = (methods or {}).get(name, zipfile.ZIP_STORED)
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return buffer.getvalue()


def _npz(arrays, allow_pickle=False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for key, value in arrays.items():
            with archive.open(f"{key}.npy", "w") as member:
                np.lib.format.write_array(member, np.asarray(value), allow_pickle=allow_pickle)
    return buffer.getvalue()


@pytest.fixture
def trained(rng):
    g = build_dag(dtype="float32")
    x, y = dag_data(rng, 24)
    g.fit(x, y, epochs=2, batch_size=8, verbose=0)
    return g, x, y


@pytest.fixture
def saved(tmp_path, trained):
    g = trained[0]
    return g.save(tmp_path / "model.gnet")


# ------------------------------------------------------------------ round trips
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_graph_round_trip_predicts_bit_for_bit(tmp_path, rng, dtype):
    g = build_dag(dtype=dtype)
    x, y = dag_data(rng, 16)
    g.fit(x, y, epochs=1, batch_size=4, verbose=0)
    path = g.save(tmp_path / "dag.gnet")
    loaded = gn.load(path)
    assert type(loaded) is gn.Graph
    assert loaded.to_dict() == g.to_dict()
    assert loaded.dtype == g.dtype
    assert loaded.inputs == g.inputs and loaded.outputs == g.outputs
    assert _same(loaded.predict(x), g.predict(x))
    assert all(w.dtype == g.dtype for w in loaded.get_weights().values())


def test_sequential_round_trip(tmp_path, rng):
    model = gn.Sequential(
        [gn.Input(6), gn.Dense(8, activation="relu", dropout=0.2),
         gn.Dense(5, activation={"name": "leaky_relu", "negative_slope": 0.1}),
         gn.Dense(3, activation="softmax")],
        seed=3,
    )
    x = rng.normal(size=(20, 6))
    model.fit(x, rng.integers(0, 3, 20), epochs=2, verbose=0)
    loaded = gn.load(model.save(tmp_path / "seq.gnet"))
    assert isinstance(loaded, gn.Sequential)
    assert [n.name for n in loaded.layers] == ["input", "dense", "dense_1", "dense_2"]
    assert loaded.nodes["dense"].dropout == 0.2
    assert loaded.loss is None  # later add() calls still choose the loss by activation
    assert _same(loaded.predict(x), model.predict(x))
    loaded.add(gn.Dense(1, activation="sigmoid"))
    assert loaded.nodes[loaded.output].loss.name == "binary_crossentropy"


def test_save_returns_path_and_accepts_file_objects(tmp_path, trained):
    g, x, _ = trained
    path = g.save(str(tmp_path / "m.gnet"))
    assert path == tmp_path / "m.gnet"
    with open(path, "rb") as handle:
        assert _same(gn.load(handle).predict(x), g.predict(x))
    assert _same(gn.load(io.BytesIO(path.read_bytes())).predict(x), g.predict(x))


def test_same_graph_gives_same_bytes(tmp_path, trained):
    g = trained[0]
    assert g.save(tmp_path / "a.gnet").read_bytes() == g.save(tmp_path / "b.gnet").read_bytes()


def test_weights_member_is_a_plain_npz(saved, trained):
    g = trained[0]
    with zipfile.ZipFile(saved) as archive:
        weights = np.load(io.BytesIO(archive.read("weights.npz")), allow_pickle=False)
        assert sorted(weights.files) == sorted(g.get_weights())
        for key, value in g.get_weights().items():
            assert np.array_equal(weights[key], value)
        spec = json.loads(archive.read("graph.json"))
    assert spec["format"] == "graphnet" and spec["format_version"] == 1
    assert spec["sequential"] is False and spec["dtype"] == "float32"


# ------------------------------------------------------------- resumed training
@pytest.mark.parametrize("name", sorted(optimizers.OPTIMIZERS))
def test_training_after_load_equals_training_without_save(tmp_path, rng, name):
    x, y = dag_data(rng, 30)
    g = build_dag(dtype="float32")
    g.nodes["h1"].dropout = 0.25  # dropout and shuffling both draw from the graph's stream
    g.fit(x, y, epochs=2, batch_size=8, optimizer=name, verbose=0)
    loaded = gn.load(g.save(tmp_path / "ckpt.gnet"))
    assert loaded.optimizer.get_config() == g.optimizer.get_config()
    assert loaded.optimizer.iterations == g.optimizer.iterations == 8
    g.fit(x, y, epochs=2, batch_size=8, optimizer=name, verbose=0)
    loaded.fit(x, y, epochs=2, batch_size=8, optimizer=name, verbose=0)
    before, after = g.get_weights(), loaded.get_weights()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_train_step_after_load_equals_train_step_without_save(tmp_path, rng):
    x, y = dag_data(rng, 10)
    g = build_dag(dtype="float64")
    adam = optimizers.Adam(lr=0.01, clipnorm=1.0)
    for _ in range(3):
        g.train_step(x, y, optimizer=adam)
    loaded = gn.load(g.save(tmp_path / "s.gnet"))
    for _ in range(3):
        assert g.train_step(x, y) == loaded.train_step(x, y)
    assert all(np.array_equal(v, loaded.get_weights()[k]) for k, v in g.get_weights().items())


def test_optimizer_state_of_removed_parameters_is_dropped(tmp_path, rng):
    x, y = dag_data(rng, 12)
    g = build_dag(dtype="float32")
    g.fit(x, y, epochs=1, batch_size=4, verbose=0)
    g.disconnect("a", "main")  # the state of a->main.weight no longer has a parameter
    loaded = gn.load(g.save(tmp_path / "edited.gnet"))
    keys = [key for key, _ in loaded.optimizer.get_state()["layout"]]
    assert "a->main.weight" not in keys and "h1->h2.weight" in keys
    loaded.fit(x, y, epochs=1, batch_size=4, verbose=0)  # binds to the new layout


def test_graph_without_optimizer_and_unused_optimizer(tmp_path):
    g = build_dag()
    assert gn.load(g.save(tmp_path / "fresh.gnet")).optimizer is None
    g.optimizer = optimizers.SGD(lr=0.5, momentum=0.5, nesterov=True)
    loaded = gn.load(g.save(tmp_path / "unused.gnet"))
    assert loaded.optimizer.get_config() == g.optimizer.get_config()
    assert loaded.optimizer.iterations == 0


def test_plain_sgd_writes_no_optimizer_state(tmp_path, rng):
    g = build_dag()
    x, y = dag_data(rng, 8)
    g.fit(x, y, epochs=1, optimizer="sgd", verbose=0)
    path = g.save(tmp_path / "sgd.gnet")
    assert "optimizer.npz" not in _members(path)
    assert gn.load(path).optimizer.name == "sgd"


# --------------------------------------------------------------- atomic write
def test_failed_write_leaves_the_old_file_intact(tmp_path, rng, monkeypatch):
    g = build_dag()
    path = g.save(tmp_path / "model.gnet")
    good = path.read_bytes()
    x, y = dag_data(rng, 8)
    g.fit(x, y, epochs=1, verbose=0)  # the next save would differ
    original = zipfile.ZipFile.writestr
    written = []

    def fail_half_way(self, info, data, *args, **kwargs):
        if written:
            raise OSError("disk full")
        written.append(info)
        return original(self, info, data, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", fail_half_way)
    with pytest.raises(OSError, match="disk full"):
        g.save(path)
    monkeypatch.undo()
    assert written  # it did fail half-way, after writing a member
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.gnet"]  # no temporary file left
    gn.load(path)


# ------------------------------------------------------------- hostile files
def _rewrite(path, out, **changes):
    """A copy of a model file with members replaced (None removes one)."""
    members = _members(path)
    for name, data in changes.items():
        name = name.replace("__", ".")
        if data is None:
            members.pop(name)
        else:
            members[name] = data
    out.write_bytes(_zip(members))
    return out


def _spec(path) -> dict:
    return json.loads(_members(path)["graph.json"])


def test_missing_file_and_non_zip(tmp_path):
    with pytest.raises(gn.ModelFileError, match=r"nope\.gnet: no such file"):
        gn.load(tmp_path / "nope.gnet")
    bad = tmp_path / "notes.gnet"
    bad.write_text("hello, I am not a zip file")
    with pytest.raises(gn.ModelFileError, match=r"notes\.gnet: not a graphnet model file \(not a zip"):
        gn.load(bad)
    with pytest.raises(gn.ModelFileError, match="cannot be read"):
        gn.load(tmp_path)  # a folder


@pytest.mark.parametrize("cut", [0.99, 0.7, 0.5, 0.1])
def test_truncated_file(tmp_path, saved, cut):
    data = saved.read_bytes()
    short = tmp_path / "short.gnet"
    short.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(gn.ModelFileError, match="short.gnet"):
        gn.load(short)


def test_pickled_object_array_is_refused(tmp_path, saved):
    weights = dict(np.load(io.BytesIO(_members(saved)["weights.npz"])))
    weights["h1.bias"] = np.array([{"__reduce__": "os.system"}] * 6, dtype=object)
    bad = _rewrite(saved, tmp_path / "pickle.gnet", weights__npz=_npz(weights, allow_pickle=True))
    with pytest.raises(gn.ModelFileError, match=r"pickle\.gnet: weights\.npz: array 'h1\.bias' holds Python objects"):
        gn.load(bad)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("activation", "os.system", "unknown activation 'os.system'"),
        ("activation", {"name": "relu", "__class__": "subprocess.Popen"}, r"activation\.__class__: expected a finite number"),
        ("activation", {"name": "relu", "__init__": 1}, "bad parameters"),
        ("loss", "builtins.eval", "unknown loss"),
        ("kind", "__import__('os').system('ls')", "unknown kind"),
    ],
)
def test_code_like_names_are_refused(tmp_path, saved, field, value, message):
    spec = _spec(saved)
    node = next(n for n in spec["nodes"] if n["kind"] == "output")
    node[field] = value
    bad = _rewrite(saved, tmp_path / "code.gnet", graph__json=json.dumps(spec).encode())
    with pytest.raises(gn.ModelFileError, match=message):
        gn.load(bad)


def test_unknown_optimizer_name_is_refused(tmp_path, saved):
    training = json.loads(_members(saved)["training.json"])
    training["optimizer"]["config"]["name"] = "subprocess.Popen"
    bad = _rewrite(saved, tmp_path / "opt.gnet", training__json=json.dumps(training).encode())
    with pytest.raises(gn.ModelFileError, match=r"training\.json: optimizer\.config: unknown optimizer"):
        gn.load(bad)


def test_cycle_is_refused(tmp_path, saved):
    spec = _spec(saved)
    spec["synapses"].append({"src": "main", "dst": "h1", "init": "zeros", "trainable": True})
    bad = _rewrite(saved, tmp_path / "cycle.gnet", graph__json=json.dumps(spec).encode())
    with pytest.raises(gn.ModelFileError, match="cycle"):
        gn.load(bad)


def test_wrong_shape_dtype_and_values_are_refused(tmp_path, saved):
    weights = dict(np.load(io.BytesIO(_members(saved)["weights.npz"])))
    cases = {
        "expected shape \\(6,\\), found \\(7,\\)": {"h1.bias": np.zeros(7, np.float32)},
        "expected dtype float32, found float64": {"h1.bias": np.zeros(6, np.float64)},
        "expected dtype float32, found int32": {"h1.bias": np.zeros(6, np.int32)},
        "NaN or inf": {"h1.bias": np.full(6, np.nan, np.float32)},
    }
    for message, change in cases.items():
        bad = _rewrite(saved, tmp_path / "w.gnet", weights__npz=_npz({**weights, **change}))
        with pytest.raises(gn.ModelFileError, match=message):
            gn.load(bad)
    missing = {k: v for k, v in weights.items() if k != "h1.bias"}
    bad = _rewrite(saved, tmp_path / "w.gnet", weights__npz=_npz(missing))
    with pytest.raises(gn.ModelFileError, match="does not match the architecture.*missing \\['h1.bias'\\]"):
        gn.load(bad)
    extra = {**weights, "evil": np.zeros(1, np.float32)}
    bad = _rewrite(saved, tmp_path / "w.gnet", weights__npz=_npz(extra))
    with pytest.raises(gn.ModelFileError, match="unexpected \\['evil.npy'\\]"):
        gn.load(bad)


def test_members_are_checked(tmp_path, saved):
    with pytest.raises(gn.ModelFileError, match="unexpected member 'run_me.py'"):
        gn.load(_rewrite(saved, tmp_path / "x.gnet", run_me__py=b"import os"))
    with pytest.raises(gn.ModelFileError, match="missing weights.npz"):
        gn.load(_rewrite(saved, tmp_path / "x.gnet", weights__npz=None))
    with pytest.raises(gn.ModelFileError, match="has optimizer.npz but no training.json"):
        gn.load(_rewrite(saved, tmp_path / "x.gnet", training__json=None))
    with pytest.raises(gn.ModelFileError, match="graph.json is not valid JSON"):
        gn.load(_rewrite(saved, tmp_path / "x.gnet", graph__json=b"{'nodes': []"))
    duplicated = _spec(saved)
    text = json.dumps(duplicated).replace('"name": "dag"', '"name": "dag", "name": "again"')
    with pytest.raises(gn.ModelFileError, match="key 'name' appears twice"):
        gn.load(_rewrite(saved, tmp_path / "x.gnet", graph__json=text.encode()))


def test_zip_bomb_is_refused_before_inflating(tmp_path, saved, monkeypatch):
    members = _members(saved)
    members["weights.npz"] = bytes(20_000_000)  # inflates 1000:1
    bomb = tmp_path / "bomb.gnet"
    bomb.write_bytes(_zip(members, {"weights.npz": zipfile.ZIP_DEFLATED}))
    assert bomb.stat().st_size < 100_000
    inflated = []
    for module in (archive, saving):
        monkeypatch.setattr(module, "read_member", lambda *a: inflated.append(a) or b"")
    with pytest.raises(gn.ModelFileError, match="possible zip bomb"):
        gn.load(bomb)
    assert not inflated


def test_size_limits(tmp_path, saved, monkeypatch):
    with pytest.raises(gn.ModelFileError, match="more than max_bytes=1,000; pass a larger max_bytes"):
        gn.load(saved, max_bytes=1000)
    monkeypatch.setattr(saving, "MAX_JSON_BYTES", 100)
    with pytest.raises(gn.ModelFileError, match="graph.json is .* bytes, more than the limit of 100"):
        gn.load(saved)


def test_architecture_larger_than_its_weights_is_refused(tmp_path, saved):
    spec = _spec(saved)
    spec["nodes"][2]["size"] = 10_000_000  # h1: 50 million weights from 'a' alone
    bad = _rewrite(saved, tmp_path / "huge.gnet", graph__json=json.dumps(spec).encode())
    with pytest.raises(gn.ModelFileError, match=r"graph\.json: spec describes .* more than the limit"):
        gn.load(bad)


def test_many_members_are_refused_before_listing(tmp_path):
    many = tmp_path / "many.gnet"
    many.write_bytes(_zip({f"m{i}": b"" for i in range(200)}))
    with pytest.raises(gn.ModelFileError, match="lists 200 members; a graphnet model file has at most 4"):
        gn.load(many)


def test_newer_format_version_is_refused_clearly(tmp_path, saved):
    spec = _spec(saved)
    spec["format_version"] = 2
    spec["graphnet_version"] = "9.0.0"
    bad = _rewrite(saved, tmp_path / "new.gnet", graph__json=json.dumps(spec).encode())
    with pytest.raises(gn.ModelFileError, match="written by graphnet 9.0.0 in format version 2.*Upgrade graphnet"):
        gn.load(bad)


def test_not_a_graphnet_file(tmp_path, saved):
    spec = _spec(saved)
    spec["format"] = "keras"
    bad = _rewrite(saved, tmp_path / "k.gnet", graph__json=json.dumps(spec).encode())
    with pytest.raises(gn.ModelFileError, match="format 'keras', expected 'graphnet'"):
        gn.load(bad)


@pytest.mark.parametrize(
    "path, value, message",
    [
        (("rng", "train", "bit_generator"), "MT19937", "rng.train: expected a PCG64 state"),
        (("rng", "train", "state", "state"), -1, "rng.train: expected a PCG64 state"),
        (("optimizer", "iterations"), -3, "optimizer.iterations: expected an integer >= 0"),
        (("optimizer", "layout", 0, 0), "nope->x.weight", "optimizer.layout\\[0\\]: expected a parameter"),
        (("optimizer", "slots"), ["m"], "optimizer.slots: expected \\['m', 'v'\\]"),
        (("optimizer", "config", "lr"), "0.1; import os", "optimizer.config.lr: expected a number"),
        (("optimizer", "config", "beta1"), 7.0, "beta1 must be in"),
    ],
)
def test_hostile_training_state(tmp_path, saved, path, value, message):
    training = json.loads(_members(saved)["training.json"])
    target = training
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    bad = _rewrite(saved, tmp_path / "t.gnet", training__json=json.dumps(training).encode())
    with pytest.raises(gn.ModelFileError, match=message):
        gn.load(bad)


# ---------------------------------------------------------------- fuzzing
_JUNK = [None, True, -1, 0, 2**70, 1e308, -0.5, "", "x", "relu", "__import__('os')", [], [1, 2], {}, {"name": 1}]


def _mutate_json(data, rng):
    """Replace one value somewhere in a JSON document with junk."""
    target, key = None, None
    node = data
    for _ in range(int(rng.integers(1, 6))):
        if isinstance(node, dict) and node:
            key = list(node)[int(rng.integers(len(node)))]
        elif isinstance(node, list) and node:
            key = int(rng.integers(len(node)))
        else:
            break
        target, node = node, node[key]
    if target is not None:
        target[key] = _JUNK[int(rng.integers(len(_JUNK)))]
    return data


def _variants(path, rng, count):
    """Byte flips, truncations, content flips with valid CRCs, swapped,
    dropped and duplicated members, and junk values in the JSON members."""
    data = path.read_bytes()
    members = _members(path)
    names = list(members)
    for i in range(count):
        kind = i % 6
        if kind == 0:  # flip bytes anywhere
            raw = bytearray(data)
            for at in rng.integers(0, len(raw), size=int(rng.integers(1, 8))):
                raw[at] ^= int(rng.integers(1, 256))
            yield bytes(raw)
        elif kind == 1:  # truncate
            yield data[: int(rng.integers(0, len(data)))]
        elif kind == 2:  # flip bytes inside one member, then re-zip with good CRCs
            name = names[int(rng.integers(len(names)))]
            raw = bytearray(members[name])
            for at in rng.integers(0, len(raw), size=int(rng.integers(1, 4))):
                raw[at] ^= int(rng.integers(1, 256))
            yield _zip({**members, name: bytes(raw)})
        elif kind == 3:  # swap two members' contents
            a, b = rng.choice(len(names), size=2, replace=False)
            yield _zip({**members, names[a]: members[names[b]], names[b]: members[names[a]]})
        elif kind == 4:  # drop one member or truncate it
            name = names[int(rng.integers(len(names)))]
            changed = dict(members)
            if rng.random() < 0.5:
                del changed[name]
            else:
                changed[name] = members[name][: int(rng.integers(0, len(members[name])))]
            yield _zip(changed)
        else:  # junk inside graph.json or training.json
            name = ["graph.json", "training.json"][int(rng.integers(2))]
            doc = _mutate_json(json.loads(members[name]), rng)
            yield _zip({**members, name: json.dumps(doc).encode()})


def test_fuzzed_files_raise_only_model_file_error(tmp_path):
    g = build_dag(dtype="float32")
    g.optimizer = "adam"
    x, y = dag_data(np.random.default_rng(0), 8)
    g.fit(x, y, epochs=1, verbose=0)
    path = g.save(tmp_path / "fuzz.gnet")
    rng = np.random.default_rng(2024)
    outcomes = {"refused": 0, "loaded": 0}
    for variant in _variants(path, rng, 3000):
        try:
            loaded = gn.load(io.BytesIO(variant))
        except gn.ModelFileError:
            outcomes["refused"] += 1
        else:
            # A flip inside the float data can still be a valid file; it must run.
            loaded.predict(x)
            outcomes["loaded"] += 1
    assert outcomes["refused"] > 2000


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


# --------------------------------------------------------------- checkpoints
def test_model_checkpoint_writes_full_model_files(tmp_path, rng):
    g = build_dag(dtype="float32")
    x, y = dag_data(rng, 20)
    checkpoint = gn.ModelCheckpoint(tmp_path / "ckpt-{epoch:02d}.gnet", monitor="loss", save_best_only=False)
    g.fit(x, y, epochs=2, batch_size=5, callbacks=[checkpoint], verbose=0)
    assert [os.path.basename(p) for p in checkpoint.saved] == ["ckpt-01.gnet", "ckpt-02.gnet"]
    last = gn.load(tmp_path / "ckpt-02.gnet")
    assert _same(last.predict(x), g.predict(x))
    assert last.optimizer.iterations == g.optimizer.iterations
    weights_only = gn.ModelCheckpoint(tmp_path / "w.npz", monitor="loss")
    g.fit(x, y, epochs=1, callbacks=[weights_only], verbose=0)
    assert sorted(np.load(tmp_path / "w.npz").files) == sorted(g.get_weights())
