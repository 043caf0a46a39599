"""fit / evaluate / train_step behaviour, reproducibility and TrainingError."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from conftest import build_dag, dag_data

import graphnet as gn
from graphnet import GraphError, TrainingError


def small_net(seed=0, dtype="float32", dropout=0.0):
    g = gn.Graph(name="small", seed=seed, dtype=dtype)
    g.add_input("x", 4)
    g.add_hidden("h", 8, activation="relu", dropout=dropout)
    g.add_output("y", 1, activation="sigmoid", loss="binary_crossentropy")
    g.connect("x", "h")
    g.connect("h", "y")
    return g


@pytest.fixture
def xy(rng):
    x = rng.normal(size=(64, 4))
    return x, (x[:, 0] + x[:, 1] > 0).astype(float)


def test_fit_returns_history_and_learns(xy):
    x, y = xy
    g = small_net()
    before = g.evaluate(x, y)["loss"]
    history = g.fit(x, y, epochs=15, batch_size=8, metrics=["accuracy"], validation_split=0.25, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert history.epoch == list(range(15)) and len(history.history["loss"]) == 15
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert g.evaluate(x, y)["loss"] < before
    assert history.params["steps"] == 6  # 48 training rows in batches of 8


def test_multi_output_history_keys(rng):
    g = build_dag(dtype="float32")
    x, y = dag_data(rng, rows=20)
    history = g.fit(x, y, epochs=2, metrics=["accuracy"], validation_data=(x, y), verbose=0)
    assert set(history.history) == {
        "loss", "aux_loss", "main_loss", "aux_accuracy", "main_accuracy",
        "val_loss", "val_aux_loss", "val_main_loss", "val_aux_accuracy", "val_main_accuracy",
    }
    logs = g.evaluate(x, y, metrics={"main": ["accuracy", "mae"]})
    assert set(logs) == {"loss", "aux_loss", "main_loss", "main_accuracy", "main_mae"}
    assert logs["loss"] == pytest.approx(0.7 * logs["aux_loss"] + logs["main_loss"], rel=1e-6)


def test_fit_arguments_are_checked(xy):
    x, y = xy
    g = small_net()
    for kwargs, message in [
        ({"epochs": 0}, "epochs must be a positive integer, got 0"),
        ({"batch_size": 2.5}, "batch_size must be a positive integer"),
        ({"validation_split": 1.0}, r"validation_split must be in \[0, 1\)"),
        ({"validation_split": 0.001}, "leaves 0 validation and 64 training rows"),
        ({"validation_split": 0.2, "validation_data": (x, y)}, "not both"),
        ({"validation_data": x}, r"validation_data must be a tuple \(x_val, y_val\)"),
        ({"callbacks": [print]}, "callbacks must be Callback instances"),
        ({"optimizer": "adagrad"}, "unknown optimizer 'adagrad'"),
    ]:
        with pytest.raises(GraphError, match=message):
            g.fit(x, y, verbose=0, **kwargs)
    with pytest.raises(GraphError, match="verbose must be 0, 1 or 2"):
        g.fit(x, y, verbose=3)


def test_seeded_fits_are_bit_for_bit_reproducible(xy):
    x, y = xy

    def train(seed):
        g = small_net(seed=seed, dropout=0.3)
        g.fit(x, y, epochs=3, batch_size=10, validation_split=0.2, verbose=0)
        return g.get_weights()

    a, b, c = train(7), train(7), train(8)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)


def test_optimizer_lives_on_the_graph_and_keeps_its_state(xy):
    x, y = xy
    once, twice = small_net(), small_net()
    once.fit(x, y, epochs=4, batch_size=16, verbose=0)
    twice.fit(x, y, epochs=2, batch_size=16, verbose=0)
    optimizer = twice.optimizer
    twice.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert twice.optimizer is optimizer and optimizer.iterations == 16
    a, b = once.get_weights(), twice.get_weights()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    sgd = gn.optimizers.SGD(lr=0.1)
    twice.fit(x, y, optimizer=sgd, verbose=0)
    assert twice.optimizer is sgd
    twice.fit(x, y, optimizer="adam", verbose=0)
    assert isinstance(twice.optimizer, gn.optimizers.Adam) and twice.optimizer is not optimizer


def test_train_step_updates_and_gradients_do_not(xy):
    x, y = xy
    g = small_net()
    w0 = g.get_weights()
    loss, grads = g.gradients(x, y)
    assert all(np.array_equal(w0[k], v) for k, v in g.get_weights().items())
    assert all(grads[k].dtype == np.float32 for k in grads)
    step_loss = g.train_step(x, y, optimizer=gn.optimizers.SGD(lr=0.5))
    assert step_loss == pytest.approx(loss, rel=1e-6)
    w1 = g.get_weights()
    for k in w0:  # plain SGD: w1 = w0 - lr * grad
        np.testing.assert_allclose(w1[k], w0[k] - 0.5 * grads[k], rtol=1e-5, atol=1e-7)


def test_dropout_only_while_training(xy):
    x, y = xy
    g = small_net(dropout=0.5)
    np.testing.assert_array_equal(g.predict(x), g.predict(x))
    first, _ = g.gradients(x, y)
    second, _ = g.gradients(x, y)
    assert first != second  # a new mask each time
    plain = small_net(dropout=0.0)
    np.testing.assert_array_equal(g.predict(x), plain.predict(x))  # same seed, same weights


def test_inverted_dropout_keeps_the_expected_activation(rng):
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 1)
    g.add_hidden("h", 2000, activation="linear", dropout=0.25)
    g.add_output("y", 1)
    g.connect("x", "h", init=np.ones((1, 2000)))
    g.connect("h", "y", init=np.full((2000, 1), 1 / 2000))
    ws = g.plan.train_workspace(1)
    g.plan.forward(ws, {"x": np.ones((1, 1))}, g.rng)
    dropped = ws.x[g.plan.slots["h"]]
    assert np.mean(dropped == 0) == pytest.approx(0.25, abs=0.04)
    np.testing.assert_allclose(np.unique(dropped), [0.0, 1 / 0.75])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_is_kept_everywhere(dtype, rng):
    g = build_dag(dtype=dtype)
    x, y = dag_data(rng, rows=9)
    g.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert all(v.dtype == dtype for v in g.get_weights().values())
    assert all(v.dtype == dtype for v in g.predict(x).values())
    assert all(v.dtype == dtype for v in g.gradients(x, y)[1].values())
    ws = g.plan.train_workspace(4)
    buffers = [b for group in (ws.a, ws.z, ws.upstream) for b in group if b is not None]
    assert buffers and all(b.dtype == dtype for b in buffers)
    assert g.plan.store.values.dtype == dtype and g.optimizer.slots["m"].dtype == dtype


def test_non_finite_loss_stops_with_weights_from_before_the_step(xy):
    x, y = xy
    g = gn.Graph(name="blowup", seed=0)
    g.add_input("x", 4)
    g.add_output("y", 1, loss="mse")
    g.connect("x", "y")
    g.fit(x, y, epochs=1, batch_size=16, verbose=0)
    g.set_weights({"x->y.weight": np.full((4, 1), 1e30)})
    before = g.get_weights()
    with pytest.raises(TrainingError, match=r"epoch 1/2, batch 1/4: the loss of output 'y' is (inf|nan); the weights are as they were") as info:
        g.fit(x * 1e10, y, epochs=2, batch_size=16, verbose=0)
    assert info.value.epoch == 0 and info.value.batch == 0 and info.value.output == "y"
    after = g.get_weights()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_non_finite_gradient_stops_before_the_optimizer(rng):
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 1)
    g.add_output("y", 1, loss="mse")
    g.connect("x", "y", init=np.array([[1e-150]]))
    before = g.get_weights()
    # loss (1e100)^2 = 1e200 is finite; dL/dw = x * 2e100 overflows.
    with pytest.raises(TrainingError, match=r"train_step: the gradient of 'x->y.weight' is not finite \(it feeds output 'y'\)") as info:
        g.train_step(np.array([[1e250]]), np.array([[0.0]]), optimizer="sgd")
    assert info.value.output == "y"
    assert g.optimizer.iterations == 0  # the optimizer never ran
    after = g.get_weights()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_non_finite_update_is_never_applied(rng):
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 2)
    g.add_output("y", 1, loss="mse")
    g.connect("x", "y")
    before = g.get_weights()
    with pytest.raises(TrainingError, match=r"the sgd update of '.*' is not finite") as info:
        g.train_step(rng.normal(size=(4, 2)) * 1e5, rng.normal(size=4), optimizer=gn.optimizers.SGD(lr=1e300))
    assert info.value.epoch is None and info.value.key in g.get_weights()
    after = g.get_weights()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_verbose_levels(xy, capsys):
    x, y = xy
    g = small_net()
    g.fit(x, y, epochs=2, verbose=0)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    g.fit(x, y, epochs=2, verbose=2)
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("Epoch 2/2 - ") and "loss: " in lines[1]
    g.fit(x, y, epochs=1, batch_size=8, verbose=1)  # stderr is not a terminal here: a line per epoch
    err = capsys.readouterr().err
    assert err.startswith("Epoch 1/1 - ") and err.count("\n") == 1 and "loss: " in err


def test_logging(xy, caplog):
    x, y = xy
    with caplog.at_level(logging.DEBUG, logger="graphnet"):
        g = small_net()
        g.fit(x, y, epochs=2, verbose=0)
    messages = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert any(n == "graphnet.graph" and lvl == logging.DEBUG and "init x -> h" in m for n, lvl, m in messages)
    assert any(n == "graphnet.plan" and lvl == logging.DEBUG and "compiled plan" in m for n, lvl, m in messages)
    epochs = [m for n, lvl, m in messages if n == "graphnet.training" and lvl == logging.INFO and "epoch" in m]
    assert len(epochs) == 2 and epochs[0].startswith("small: epoch 1/2 - loss: ")


def _fit_once(dtype):
    rng = np.random.default_rng(11)
    g = build_dag(dtype=dtype, seed=4)
    x, y = dag_data(rng, rows=50)
    g.fit(x, y, epochs=3, batch_size=16, verbose=0)
    return g.get_weights()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_same_seed_same_weights_bit_for_bit(dtype):
    first, second = _fit_once(dtype), _fit_once(dtype)
    assert first.keys() == second.keys()
    for key in first:
        assert np.array_equal(first[key], second[key]), key


def test_dropout_training_is_reproducible():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 5)).astype(np.float32)
    y = rng.integers(0, 2, size=40).astype(np.float32)
    weights = []
    for _ in range(2):
        model = gn.Sequential(
            [gn.Input(5), gn.Dense(12, activation="relu", dropout=0.3), gn.Dense(1, activation="sigmoid")],
            seed=9,
        )
        model.fit(x, y, epochs=3, batch_size=8, verbose=0)
        weights.append(model.get_weights())
    for key in weights[0]:
        assert np.array_equal(weights[0][key], weights[1][key]), key
