"""The guarded zip/npz reader (graphnet.archive), through ``gn.load``: hostile,
truncated and fuzzed model files are refused with ModelFileError."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from conftest import build_dag, dag_data
from modelfiles import npz_bytes, read_members, rewrite, spec_of, zip_bytes

import graphnet as gn
from graphnet import archive, saving


# ------------------------------------------------------------- hostile files
def test_missing_file_and_nonzip_bytes(tmp_path):
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
    weights = dict(np.load(io.BytesIO(read_members(saved)["weights.npz"])))
    weights["h1.bias"] = np.array([{"__reduce__": "os.system"}] * 6, dtype=object)
    bad = rewrite(saved, tmp_path / "pickle.gnet", weights__npz=npz_bytes(weights, allow_pickle=True))
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
    spec = spec_of(saved)
    node = next(n for n in spec["nodes"] if n["kind"] == "output")
    node[field] = value
    bad = rewrite(saved, tmp_path / "code.gnet", graph__json=json.dumps(spec).encode())
    with pytest.raises(gn.ModelFileError, match=message):
        gn.load(bad)


def test_unknown_optimizer_name_is_refused(tmp_path, saved):
    training = json.loads(read_members(saved)["training.json"])
    training["optimizer"]["config"]["name"] = "subprocess.Popen"
    bad = rewrite(saved, tmp_path / "opt.gnet", training__json=json.dumps(training).encode())
    with pytest.raises(gn.ModelFileError, match=r"training\.json: optimizer\.config: unknown optimizer"):
        gn.load(bad)


def test_cycle_is_refused(tmp_path, saved):
    spec = spec_of(saved)
    spec["synapses"].append({"src": "main", "dst": "h1", "init": "zeros", "trainable": True})
    bad = rewrite(saved, tmp_path / "cycle.gnet", graph__json=json.dumps(spec).encode())
    with pytest.raises(gn.ModelFileError, match="cycle"):
        gn.load(bad)


def test_wrong_shape_dtype_and_values_are_refused(tmp_path, saved):
    weights = dict(np.load(io.BytesIO(read_members(saved)["weights.npz"])))
    cases = {
        "expected shape \\(6,\\), found \\(7,\\)": {"h1.bias": np.zeros(7, np.float32)},
        "expected dtype float32, found float64": {"h1.bias": np.zeros(6, np.float64)},
        "expected dtype float32, found int32": {"h1.bias": np.zeros(6, np.int32)},
        "NaN or inf": {"h1.bias": np.full(6, np.nan, np.float32)},
    }
    for message, change in cases.items():
        bad = rewrite(saved, tmp_path / "w.gnet", weights__npz=npz_bytes({**weights, **change}))
        with pytest.raises(gn.ModelFileError, match=message):
            gn.load(bad)
    missing = {k: v for k, v in weights.items() if k != "h1.bias"}
    bad = rewrite(saved, tmp_path / "w.gnet", weights__npz=npz_bytes(missing))
    with pytest.raises(gn.ModelFileError, match="does not match the architecture.*missing \\['h1.bias'\\]"):
        gn.load(bad)
    extra = {**weights, "evil": np.zeros(1, np.float32)}
    bad = rewrite(saved, tmp_path / "w.gnet", weights__npz=npz_bytes(extra))
    with pytest.raises(gn.ModelFileError, match="unexpected \\['evil.npy'\\]"):
        gn.load(bad)


def test_members_are_checked(tmp_path, saved):
    with pytest.raises(gn.ModelFileError, match="unexpected member 'run_me.py'"):
        gn.load(rewrite(saved, tmp_path / "x.gnet", run_me__py=b"import os"))
    with pytest.raises(gn.ModelFileError, match="missing weights.npz"):
        gn.load(rewrite(saved, tmp_path / "x.gnet", weights__npz=None))
    with pytest.raises(gn.ModelFileError, match="has optimizer.npz but no training.json"):
        gn.load(rewrite(saved, tmp_path / "x.gnet", training__json=None))
    with pytest.raises(gn.ModelFileError, match="graph.json is not valid JSON"):
        gn.load(rewrite(saved, tmp_path / "x.gnet", graph__json=b"{'nodes': []"))
    duplicated = spec_of(saved)
    text = json.dumps(duplicated).replace('"name": "dag"', '"name": "dag", "name": "again"')
    with pytest.raises(gn.ModelFileError, match="key 'name' appears twice"):
        gn.load(rewrite(saved, tmp_path / "x.gnet", graph__json=text.encode()))


def test_zip_bomb_is_refused_before_inflating(tmp_path, saved, monkeypatch):
    members = read_members(saved)
    members["weights.npz"] = bytes(20_000_000)  # inflates 1000:1
    bomb = tmp_path / "bomb.gnet"
    bomb.write_bytes(zip_bytes(members, {"weights.npz": zipfile.ZIP_DEFLATED}))
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
    spec = spec_of(saved)
    spec["nodes"][2]["size"] = 10_000_000  # h1: 50 million weights from 'a' alone
    bad = rewrite(saved, tmp_path / "huge.gnet", graph__json=json.dumps(spec).encode())
    with pytest.raises(gn.ModelFileError, match=r"graph\.json: spec describes .* more than the limit"):
        gn.load(bad)


def test_many_members_are_refused_before_listing(tmp_path):
    many = tmp_path / "many.gnet"
    many.write_bytes(zip_bytes({f"m{i}": b"" for i in range(200)}))
    with pytest.raises(gn.ModelFileError, match="lists 200 members; a graphnet model file has at most 4"):
        gn.load(many)


def test_newer_format_version_is_refused_clearly(tmp_path, saved):
    spec = spec_of(saved)
    spec["format_version"] = 2
    spec["graphnet_version"] = "9.0.0"
    bad = rewrite(saved, tmp_path / "new.gnet", graph__json=json.dumps(spec).encode())
    with pytest.raises(gn.ModelFileError, match="written by graphnet 9.0.0 in format version 2.*Upgrade graphnet"):
        gn.load(bad)


def test_not_a_graphnet_file(tmp_path, saved):
    spec = spec_of(saved)
    spec["format"] = "keras"
    bad = rewrite(saved, tmp_path / "k.gnet", graph__json=json.dumps(spec).encode())
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
    training = json.loads(read_members(saved)["training.json"])
    target = training
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    bad = rewrite(saved, tmp_path / "t.gnet", training__json=json.dumps(training).encode())
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
    members = read_members(path)
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
            yield zip_bytes({**members, name: bytes(raw)})
        elif kind == 3:  # swap two members' contents
            a, b = rng.choice(len(names), size=2, replace=False)
            yield zip_bytes({**members, names[a]: members[names[b]], names[b]: members[names[a]]})
        elif kind == 4:  # drop one member or truncate it
            name = names[int(rng.integers(len(names)))]
            changed = dict(members)
            if rng.random() < 0.5:
                del changed[name]
            else:
                changed[name] = members[name][: int(rng.integers(0, len(members[name])))]
            yield zip_bytes(changed)
        else:  # junk inside graph.json or training.json
            name = ["graph.json", "training.json"][int(rng.integers(2))]
            doc = _mutate_json(json.loads(members[name]), rng)
            yield zip_bytes({**members, name: json.dumps(doc).encode()})


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
