"""Model files (graphnet.saving): round trips and resumed training."""

from __future__ import annotations

import io
import json
import re
import zipfile

import numpy as np
import pytest
from conftest import build_dag, dag_data
from modelfiles import read_members, same

import graphnet as gn
from graphnet import optimizers


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
    assert same(loaded.predict(x), g.predict(x))
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
    assert same(loaded.predict(x), model.predict(x))
    loaded.add(gn.Dense(1, activation="sigmoid"))
    assert loaded.nodes[loaded.output].loss.name == "binary_crossentropy"


def test_save_returns_path_and_accepts_file_objects(tmp_path, trained):
    g, x, _ = trained
    path = g.save(str(tmp_path / "m.gnet"))
    assert path == tmp_path / "m.gnet"
    with open(path, "rb") as handle:
        assert same(gn.load(handle).predict(x), g.predict(x))
    assert same(gn.load(io.BytesIO(path.read_bytes())).predict(x), g.predict(x))


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


def test_numpy_integer_sizes_are_saved_as_json_numbers(tmp_path):
    g = gn.Graph(seed=0)
    g.add_input("x", np.int64(4))
    g.add_output("y", 1)
    g.connect("x", "y")
    model = gn.Sequential([gn.Input(np.int64(3)), gn.Dense(np.int64(2))], seed=0)
    for graph in (g, model):
        data = graph.to_dict()
        assert json.loads(json.dumps(data)) == data
        assert type(graph.nodes[graph.inputs[0]].size) is int
        loaded = gn.load(graph.save(tmp_path / "m.gnet"))
        assert loaded.to_dict() == data
    # the statistics given beside a numpy size are kept, not dropped
    node = gn.Input(np.int64(2), name="x", normalize=True, mean=[1, 2], std=[3, 4])
    assert node.mean.tolist() == [1, 2] and node.std.tolist() == [3, 4]


def test_save_refuses_weights_that_load_would_refuse_before_writing(tmp_path):
    g = gn.Sequential([gn.Input(3), gn.Dense(2)], seed=0)
    g.fit(np.ones((4, 3)), np.ones((4, 2)), epochs=1, optimizer="adam", verbose=0)
    good = g.save(tmp_path / "m.gnet").read_bytes()
    g.save_weights(tmp_path / "w.gnet")
    g["dense"].bias[0] = np.nan  # a live view: nothing checks the write itself
    g.synapse("input", "dense").weight[1] = np.inf
    match = (r"weights 'input->dense.weight' \(2 of 6 values\), 'dense.bias' \(1 of 2 values\) hold NaN or "
             r"inf, which loading refuses, so nothing was written")
    with pytest.raises(gn.GraphError, match="^save: " + match):
        g.save(tmp_path / "m.gnet")
    with pytest.raises(gn.GraphError, match="^save_weights: " + match):
        g.save_weights(tmp_path / "w2.gnet")
    checkpoint = gn.callbacks.ModelCheckpoint(tmp_path / "c.npz", save_best_only=False)  # a plain .npz
    checkpoint.set_graph(g)
    with pytest.raises(gn.GraphError, match="^ModelCheckpoint: " + match):
        checkpoint.on_epoch_end(0, {"loss": 1.0})
    with pytest.raises(gn.GraphError, match="^to_onnx: " + match):
        g.to_onnx(tmp_path / "m.onnx")
    assert (tmp_path / "m.gnet").read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.gnet", "w.gnet"]
    g["dense"].bias[0] = 0.0
    g.synapse("input", "dense").weight[1] = 0.0
    g.optimizer.slots["v"][0] = np.inf  # the optimizer's state is checked as load checks it
    with pytest.raises(gn.GraphError, match=r"^save: optimizer state 'v' \(1 of 8 values\) holds NaN or inf"):
        g.save(tmp_path / "m.gnet")
    assert (tmp_path / "m.gnet").read_bytes() == good


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
    assert "optimizer.npz" not in read_members(path)
    assert gn.load(path).optimizer.name == "sgd"


# ------------------------------------------------------ optimizer state checked
def _saved_with(tmp_path, rng, optimizer):
    """A DAG trained a few steps with ``optimizer`` and saved; with its
    training.json and optimizer.npz members."""
    x, y = dag_data(rng, 12)
    g = build_dag(dtype="float64")
    g.fit(x, y, epochs=1, batch_size=4, optimizer=optimizer, verbose=0)
    path = g.save(tmp_path / f"{optimizer['name']}.gnet")
    members = read_members(path)
    state = dict(np.load(io.BytesIO(members["optimizer.npz"]))) if "optimizer.npz" in members else {}
    return path, json.loads(members["training.json"]), state, (x, y)


def _layout_spot(training: dict, which: int, element: int) -> tuple[str, int]:
    """The key of the layout's parameter number ``which`` and the flat index of its ``element``."""
    layout = training["optimizer"]["layout"]
    return layout[which][0], sum(n for _, n in layout[:which]) + element


@pytest.mark.parametrize("optimizer, slot, value, message", [
    ({"name": "adam"}, "v", -0.5, "-0.5, but it is never negative"),
    ({"name": "adamw"}, "v", -1e-30, "-1e-30, but it is never negative"),
    ({"name": "rmsprop"}, "mean_square", -2.0, "-2.0, but it is never negative"),
    ({"name": "adam"}, "m", np.nan, "NaN or inf"),
    ({"name": "sgd", "momentum": 0.9}, "velocity", np.inf, "NaN or inf"),
])
def test_optimizer_state_it_could_not_have_written_is_refused(tmp_path, rng, optimizer, slot, value, message):
    path, training, state, _ = _saved_with(tmp_path, rng, optimizer)
    key, index = _layout_spot(training, 2, 1)
    state[slot][index] = value
    members = read_members(path)
    members["optimizer.npz"] = _npz(state)
    bad = tmp_path / "bad.gnet"
    bad.write_bytes(_zip(members))
    expected = rf"bad\.gnet: optimizer\.npz: state '{slot}' of parameter '{re.escape(key)}' \(element 1\) holds {message}"
    with pytest.raises(gn.ModelFileError, match=expected):
        gn.load(bad)


@pytest.mark.parametrize("name, slot", [("adam", "m"), ("momentum", "velocity")])
def test_signed_optimizer_state_loads_and_trains_on(tmp_path, rng, name, slot):
    path, training, state, (x, y) = _saved_with(tmp_path, rng, {"name": name})
    assert (state[slot] < 0).any()  # a first moment or velocity has either sign
    loaded = gn.load(path)
    assert np.isfinite(loaded.fit(x, y, epochs=1, batch_size=4, verbose=0).history["loss"]).all()


@pytest.mark.parametrize("born", [0, 4, -1, True, 1.5], ids=["0", "after the last step", "-1", "true", "1.5"])
def test_born_counts_outside_the_iterations_are_refused(tmp_path, rng, born):
    path, training, _, _ = _saved_with(tmp_path, rng, {"name": "adam"})
    assert training["optimizer"]["iterations"] == 3
    key, _ = _layout_spot(training, 0, 0)
    training["optimizer"]["born"] = {key: born}
    members = read_members(path)
    members["training.json"] = json.dumps(training).encode()
    bad = tmp_path / "bad.gnet"
    bad.write_bytes(_zip(members))
    message = r"training\.json: optimizer\.born: expected parameters of the layout, each with an iteration count in \[1, iterations\]"
    with pytest.raises(gn.ModelFileError, match=message):
        gn.load(bad)
    training["optimizer"]["born"] = {key: 3}  # joined at the last step: valid
    members["training.json"] = json.dumps(training).encode()
    bad.write_bytes(_zip(members))
    assert gn.load(bad).optimizer.steps(key) == 0


def _npz(arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _zip(members) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


# ------------------------------------------------------------------ failing part-way
@pytest.mark.parametrize("interrupt", [MemoryError, KeyboardInterrupt])
def test_a_weights_file_that_fails_to_load_changes_nothing_the_streams_included(tmp_path, trained, monkeypatch,
                                                                                interrupt):
    """The optimizer's state is made before the graph takes anything from the
    file: a failure there (no memory, Ctrl-C) leaves the weights, the random
    streams and the optimizer as they were. The streams used to be replaced
    first, so the next fit differed from an untouched twin's."""
    g, x, y = trained
    other = build_dag(seed=1, dtype="float32")
    other.fit(x, y, epochs=1, batch_size=8, verbose=0)
    path = other.save_weights(tmp_path / "other.weights.gnet")
    weights, optimizer = g.get_weights(), g.optimizer
    streams = (g.rng.bit_generator.state, g.init_rng.bit_generator.state)

    def fails(self, *args, **kwargs):
        raise interrupt

    monkeypatch.setattr(type(optimizer), "set_state", fails)
    with pytest.raises(gn.ModelFileError if interrupt is MemoryError else interrupt) as caught:
        g.load_weights(path)
    if interrupt is MemoryError:
        assert "ran out of memory" in str(caught.value) and isinstance(caught.value.__cause__, MemoryError)
    assert g.optimizer is optimizer
    assert (g.rng.bit_generator.state, g.init_rng.bit_generator.state) == streams
    assert same(g.get_weights(), weights)


def test_running_out_of_memory_while_loading_is_not_called_a_bad_file(saved, tmp_path, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(gn.Graph, "set_weights", out_of_memory)
    for load in (gn.load, build_dag(dtype="float32").load_weights):
        with pytest.raises(gn.ModelFileError, match="ran out of memory while loading it") as caught:
            load(saved)
        assert isinstance(caught.value.__cause__, MemoryError)


def test_running_out_of_memory_while_building_a_spec_keeps_the_cause(tmp_path, monkeypatch):
    from graphnet import spec

    g = build_dag()
    path = tmp_path / "g.json"
    path.write_text(json.dumps(g.to_dict()))

    def out_of_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(spec, "_build", out_of_memory)
    with pytest.raises(gn.GraphError, match="ran out of memory") as caught:
        gn.Graph.from_dict(g.to_dict())
    assert isinstance(caught.value.__cause__, MemoryError)
    with pytest.raises(gn.ModelFileError, match="ran out of memory") as caught:
        gn.Graph.from_spec(path)
    assert isinstance(caught.value.__cause__, MemoryError)
