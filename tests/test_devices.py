"""The same graph on every device present: the CPU, the stand-in (the device
code path on numpy, tests/standin.py) and CUDA where CuPy sees a GPU.

The stand-in runs the device path's very arithmetic on numpy, so it must
give the CPU's numbers bit for bit; CUDA within float32 tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import build_dag, dag_data

import graphnet as gn
from graphnet import backend


def _close(device):
    """Exact on the stand-in, float32 rounding of GPU GEMMs on CUDA."""
    if device == "cuda":
        return lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    return lambda a, b: np.testing.assert_array_equal(a, b)


def _mlp(device, seed=0, dtype="float32", **dense):
    return gn.Sequential(
        [gn.Input(6), gn.Dense(16, activation="relu", **dense), gn.Dense(8, activation="tanh"),
         gn.Dense(3, activation="softmax")],
        seed=seed, dtype=dtype, device=device,
    )


def _data(rng, rows=96):
    x = rng.normal(size=(rows, 6)).astype(np.float32)
    y = rng.integers(0, 3, rows)
    return x, y


def test_device_is_reported_and_weights_come_back_as_numpy(device):
    g = _mlp(device)
    assert g.device == device
    for value in g.get_weights().values():
        assert type(value) is np.ndarray
    assert all(type(v) is np.ndarray for v in g.gradients(np.zeros((2, 6)), np.array([0, 1]))[1].values())


def test_every_device_starts_from_the_cpus_weights(device):
    """Initialisation is drawn on the host from the seed: the same weights everywhere."""
    cpu, other = _mlp("cpu", seed=3).get_weights(), _mlp(device, seed=3).get_weights()
    for key in cpu:
        assert np.array_equal(cpu[key], other[key]), key


def test_forward_matches_the_cpu(device, rng):
    x, _ = _data(rng)
    close = _close(device)
    close(_mlp(device).predict(x, batch_size=40), _mlp("cpu").predict(x, batch_size=40))


def test_predict_returns_numpy_unless_asked(device, rng):
    g = _mlp(device)
    x, _ = _data(rng, 10)
    assert type(g.predict(x)) is np.ndarray
    on_device = g.predict(x, as_device=True)
    assert backend.get(device).is_array(on_device)
    np.testing.assert_array_equal(backend.get(device).to_host(on_device), g.predict(x))
    # device arrays are accepted as inputs (they come back to the host to be checked)
    assert np.array_equal(g.predict(backend.get(device).to_device(x)), g.predict(x))
    with pytest.raises(gn.GraphError, match="as_device must be True or False"):
        g.predict(x, as_device="yes")


def test_gradients_match_the_cpu(device, rng):
    x, y = dag_data(rng, 9)
    loss_cpu, grads_cpu = build_dag("float32").gradients(x, y)
    g = build_dag("float32")
    g.to(device)
    loss, grads = g.gradients(x, y)
    assert isinstance(loss, float)
    np.testing.assert_allclose(loss, loss_cpu, rtol=1e-5)
    close = _close(device)
    for key in grads_cpu:
        close(grads[key], grads_cpu[key])


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd", "momentum", "rmsprop",
                                       gn.optimizers.Adam(clipnorm=0.5)])
def test_a_short_fit_matches_the_cpu(device, rng, optimizer):
    x, y = _data(rng)

    def fit(on):
        g = _mlp(on)
        opt = gn.optimizers.get(optimizer.get_config()) if isinstance(optimizer, gn.optimizers.Optimizer) else optimizer
        history = g.fit(x, y, epochs=3, batch_size=16, optimizer=opt, metrics=["accuracy"], verbose=0,
                        validation_split=0.25)
        return g, history.history

    g, history = fit(device)
    g_cpu, history_cpu = fit("cpu")
    close = _close(device)
    weights, weights_cpu = g.get_weights(), g_cpu.get_weights()
    for key in weights_cpu:
        close(weights[key], weights_cpu[key])
    assert history.keys() == history_cpu.keys()
    for key in history_cpu:
        np.testing.assert_allclose(history[key], history_cpu[key], rtol=1e-4, err_msg=key)
    assert g.optimizer.iterations == g_cpu.optimizer.iterations == 3 * 5


def test_a_dag_with_two_outputs_weights_and_regularizers_matches_the_cpu(device, rng):
    x, y = dag_data(rng, 40)
    weights = rng.random(40)

    def fit(on):
        g = build_dag("float32")
        g.synapse("a", "h1").regularizer = gn.regularizers.L1L2(1e-3, 1e-3)
        g["h2"].bias_regularizer = "l2"
        g.to(on)
        history = g.fit(x, y, epochs=2, batch_size=8, verbose=0, sample_weight=weights,
                        class_weight={"aux": {0: 2.0, 2: 0.5}}, metrics=["accuracy", "mae"])
        return g, history.history, g.evaluate(x, y, metrics=["mse"], sample_weight=weights)

    g, history, scores = fit(device)
    g_cpu, history_cpu, scores_cpu = fit("cpu")
    close = _close(device)
    for key, value in g_cpu.get_weights().items():
        close(g.get_weights()[key], value)
    for key in history_cpu:
        np.testing.assert_allclose(history[key], history_cpu[key], rtol=1e-4, err_msg=key)
    assert scores.keys() == scores_cpu.keys()
    for key in scores_cpu:
        np.testing.assert_allclose(scores[key], scores_cpu[key], rtol=1e-4, err_msg=key)


def test_every_activation_and_loss_runs_on_the_device(device, rng):
    x = rng.normal(size=(20, 4)).astype(np.float32)
    for name in sorted(gn.activations.ACTIVATIONS):
        for loss in ("mse", "mae", "huber"):
            g = gn.Graph(seed=0, device=device)
            g.add_input("x", 4)
            g.add_hidden("h", 5, activation=name, dropout=0.0)
            g.add_output("y", 2, loss=loss)
            g.connect("x", "h")
            g.connect("h", "y")
            cpu = gn.Graph(seed=0)
            cpu.add_input("x", 4)
            cpu.add_hidden("h", 5, activation=name)
            cpu.add_output("y", 2, loss=loss)
            cpu.connect("x", "h")
            cpu.connect("h", "y")
            target = rng.normal(size=(20, 2))
            loss_value, grads = g.gradients(x, target)
            loss_cpu, grads_cpu = cpu.gradients(x, target)
            np.testing.assert_allclose(loss_value, loss_cpu, rtol=1e-5, err_msg=f"{name}/{loss}")
            for key in grads_cpu:
                np.testing.assert_allclose(grads[key], grads_cpu[key], rtol=2e-4, atol=1e-6,
                                           err_msg=f"{name}/{loss}/{key}")


def test_dropout_trains_on_the_device(device, rng):
    x, y = _data(rng)
    g = gn.Sequential([gn.Input(6), gn.Dense(32, activation="relu", dropout=0.5),
                       gn.Dense(3, activation="softmax")], seed=0, device=device)
    before = g.get_weights()
    g.fit(x, y, epochs=2, batch_size=16, verbose=0)
    after = g.get_weights()
    assert all(np.isfinite(v).all() for v in after.values())
    assert any(not np.array_equal(before[k], after[k]) for k in before)
    # predict runs without dropout: two calls agree
    np.testing.assert_array_equal(g.predict(x), g.predict(x))


def test_moving_carries_weights_and_optimizer_state(device, rng):
    """One epoch on the CPU, one on the device, one back: the same as three on the CPU."""
    x, y = _data(rng)
    g = _mlp("cpu")
    g.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert g.to(device) is g and g.device == device
    g.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert g.to("cpu") is g and g.device == "cpu"
    g.fit(x, y, epochs=1, batch_size=16, verbose=0)
    reference = _mlp("cpu")
    for _ in range(3):
        reference.fit(x, y, epochs=1, batch_size=16, verbose=0)
    close = _close(device)
    for key, value in reference.get_weights().items():
        close(g.get_weights()[key], value)
    assert g.optimizer.iterations == reference.optimizer.iterations
    state, state_ref = g.optimizer.get_state(), reference.optimizer.get_state()
    for slot in state_ref["slots"]:
        close(state["slots"][slot], state_ref["slots"][slot])


def test_a_file_saved_on_one_device_loads_on_the_cpu_and_moves_back(device, rng, tmp_path):
    x, y = _data(rng)
    g = _mlp(device)
    g.fit(x, y, epochs=1, batch_size=16, verbose=0)
    path = g.save(tmp_path / "model.gnet")
    loaded = gn.load(path)
    assert loaded.device == "cpu"
    np.testing.assert_array_equal(loaded.predict(x), gn.load(path).predict(x))
    _close(device)(loaded.predict(x), g.predict(x))
    # training on goes on from the same optimizer state on either device
    loaded.to(device)
    loaded.fit(x, y, epochs=1, batch_size=16, verbose=0)
    g.fit(x, y, epochs=1, batch_size=16, verbose=0)
    for key, value in g.get_weights().items():
        _close(device)(loaded.get_weights()[key], value)


def test_weights_set_on_a_device_graph_land_there(device, rng):
    g = _mlp(device)
    key = "input->dense.weight"
    value = rng.normal(size=(6, 16))
    g.set_weights({key: value})
    np.testing.assert_allclose(g.get_weights()[key], value.astype(np.float32))
    synapse = g.synapse("input", "dense")
    synapse.weight = value * 2
    np.testing.assert_allclose(g.get_weights()[key], (value * 2).astype(np.float32))
    assert backend.get(device).is_array(synapse.weight)
    g["dense"].bias = np.ones(16)
    np.testing.assert_array_equal(g.get_weights()["dense.bias"], np.ones(16, np.float32))


def test_a_device_graph_pickles_and_copies(device, rng):
    import copy
    import pickle

    x, y = _data(rng)
    g = _mlp(device)
    g.fit(x, y, epochs=1, batch_size=16, verbose=0)
    for twin in (copy.deepcopy(g), pickle.loads(pickle.dumps(g))):
        assert twin.device == device
        np.testing.assert_array_equal(twin.predict(x), g.predict(x))


def test_inputs_already_on_the_device_stay_there(device, rng):
    made = backend.get(device)
    x, y = _data(rng, 64)
    g, cpu = _mlp(device), _mlp("cpu")
    g.fit(made.to_device(x), y, epochs=2, batch_size=16, verbose=0, validation_split=0.25)
    cpu.fit(x, y, epochs=2, batch_size=16, verbose=0, validation_split=0.25)
    for key, value in cpu.get_weights().items():
        _close(device)(g.get_weights()[key], value)
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(gn.ShapeError, match="input 'input' contains 1 NaN or inf"):
        g.fit(made.to_device(bad), y, verbose=0)
    with pytest.raises(gn.ShapeError, match=r"expected shape \(n, 6\)"):
        g.fit(made.to_device(x[:, :5]), y, verbose=0)


# ---------------------------------------------------------------- the rest of the API
def test_surgery_on_a_device_graph_matches_the_cpu(device, rng):
    """Freeze, insert, widen and bridge a trained device graph, then train on:
    the surgeries keep their promises there and the weights follow the CPU's."""
    close = _close(device)
    x, y = rng.normal(size=(32, 6)), rng.integers(0, 3, size=32)
    graphs = {}
    for where in ("cpu", device):
        g = _mlp(where)
        g.fit(x, y, epochs=2, batch_size=8, verbose=0)
        before = g.predict(x)
        g.freeze("dense_1")
        g.insert("dense", "dense_1", "bridge", activation="relu")
        g.widen("dense", 24, seed=1)
        # both function-preserving (to float32 rounding: widening splits sums)
        np.testing.assert_allclose(g.predict(x), before, rtol=1e-5, atol=1e-6)
        g.fit(x, y, epochs=2, batch_size=8, verbose=0)
        g.remove("bridge", bridge=True)
        assert isinstance(g.predict(x), np.ndarray)
        graphs[where] = g
    for key, value in graphs["cpu"].get_weights().items():
        close(graphs[device].get_weights()[key], value)


def test_statistics_and_the_gradient_check_run_on_a_device_graph(device, rng):
    close = _close(device)
    x, y = rng.normal(size=(16, 6)), rng.integers(0, 3, size=16)
    cpu, there = _mlp("cpu", dtype="float64"), _mlp(device, dtype="float64")
    a, b = cpu.statistics(x, y), there.statistics(x, y)
    for name in ("dense_1", "dense_2"):
        close(np.array([a[name].dead, a[name].mean]), np.array([b[name].dead, b[name].mean]))
    report = gn.check_gradients(there, x, y)
    assert report.ok, report


def test_predict_outputs_and_custom_parts_run_on_the_device(device, rng):
    """A hidden node's activations, a custom activation and a custom loss (written
    with ``xp=``, the array module) give the CPU's numbers on every device."""

    class Cube(gn.activations.Activation):
        name = "cube"

        def forward(self, z, xp=np):
            return z * z * z

        def backward(self, a, grad, z, xp=np):
            return grad * 3 * z * z

    class LogCosh(gn.losses.Loss):
        name = "log_cosh"

        def value(self, y, a, xp=np):
            return xp.log(xp.cosh(a - y)).mean(axis=1)

        def gradient(self, y, a, xp=np):
            return xp.tanh(a - y) / a.shape[1]

    def build(where):
        g = gn.Graph(seed=0, device=where)
        g.add_input("x", 4)
        g.add_hidden("h", 5, activation=Cube())
        g.add_output("y", 2, loss=LogCosh())
        g.connect("x", "h")
        g.connect("h", "y")
        return g

    close = _close(device)
    x, target = rng.normal(size=(20, 4)).astype(np.float32), rng.normal(size=(20, 2))
    g, cpu = build(device), build("cpu")
    got, expected = g.predict(x, outputs=["h", "x"], batch_size=7), cpu.predict(x, outputs=["h", "x"], batch_size=7)
    assert all(type(v) is np.ndarray for v in got.values())
    for name in expected:
        close(got[name], expected[name])
    (loss, grads), (loss_cpu, grads_cpu) = g.gradients(x, target), cpu.gradients(x, target)
    np.testing.assert_allclose(loss, loss_cpu, rtol=1e-5)
    for key in grads_cpu:
        np.testing.assert_allclose(grads[key], grads_cpu[key], rtol=2e-4, atol=1e-6, err_msg=key)


def test_batches_of_weights_far_apart_give_the_cpu_s_losses(device, rng):
    """Each batch's row factors come from its weights scaled by a power of
    two, on a device as on the CPU: a batch of subnormal weights beside
    ordinary ones divided by a subnormal sum (inf)."""
    x, y = dag_data(rng, 32)
    weights = np.r_[np.ones(16), np.full(16, 1e-310)]

    def fit(on):
        g = build_dag("float64")
        g.to(on)
        return g.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0, sample_weight=weights).history

    history, history_cpu = fit(device), fit("cpu")
    assert np.isfinite(history_cpu["loss"]).all()
    for key in history_cpu:
        np.testing.assert_allclose(history[key], history_cpu[key], rtol=1e-9, err_msg=key)
