"""fit / evaluate / train_step behaviour, reproducibility and TrainingError."""

from __future__ import annotations

import logging
import re

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


def _outputs(*names: str) -> gn.Graph:
    g = gn.Graph(seed=0)
    g.add_input("x", 3)
    for name in names:
        g.add_output(name, 1)
        g.connect("x", name)
    return g


def test_logged_names_that_read_as_validation_values_are_refused(rng):
    """An output named ``val`` logs ``val_loss``, ``val_x`` beside ``x`` logs
    ``val_x_loss``: fit refuses them before anything changes, naming the
    output; a one-output graph logs no output names, so ``val`` is fine there."""
    x = rng.normal(size=(16, 3))
    for names, output, logged in ((("val", "other"), "val", "val_loss"),
                                  (("x_", "val_x_"), "val_x_", "val_x__loss")):
        g = _outputs(*names)
        y = {name: x[:, :1] for name in names}
        before = g.get_weights()
        for more in ({}, {"validation_data": (x, y)}, {"callbacks": [gn.callbacks.EarlyStopping()]}):
            with pytest.raises(GraphError, match=rf"fit: the loss of output '{output}' would be logged as "
                                                 rf"'{logged}', the name of a validation value .*give output "
                                                 rf"'{output}' a name"):
                g.fit(x, y, epochs=2, verbose=0, **more)
        assert g.optimizer is None and all(np.array_equal(v, before[k]) for k, v in g.get_weights().items())
        assert set(g.evaluate(x, y)) == {"loss", *(f"{n}_loss" for n in names)}  # evaluate is unaffected
    g, y = _outputs("a", "b"), {"a": x[:, :1], "b": x[:, :1]}
    with pytest.raises(GraphError, match=r"metric 'loss' of output 'a' and the loss of output 'a' would both be "
                                         r"logged as 'a_loss'; give the metric another name"):
        g.fit(x, y, verbose=0, metrics={"a": [gn.metrics.MeanAbsoluteError(name="loss")]})
    one = _outputs("val")
    history = one.fit(x, x[:, :1], epochs=2, verbose=0, metrics=["mae"], validation_split=0.25)
    assert set(history.history) == {"loss", "mae", "val_loss", "val_mae"}
    with pytest.raises(GraphError, match=r"metric 'val_mae' of output 'val' would be logged as 'val_mae', .*"
                                         r"give the metric another name"):
        one.fit(x, x[:, :1], verbose=0, metrics=[gn.metrics.MeanAbsoluteError(name="val_mae")])


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


# ------------------------------------------------------ nothing silent in fit
def _net(seed=0, dtype="float32", dropout=0.0):
    g = gn.Graph(name="net", seed=seed, dtype=dtype)
    g.add_input("x", 4)
    g.add_hidden("h", 8, activation="tanh", dropout=dropout)
    g.add_output("y", 1, activation="linear", loss="mse")
    g.connect("x", "h")
    g.connect("h", "y")
    return g


def _xy(rows=40, seed=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4))
    return x, x @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1


@pytest.mark.parametrize(
    "edit",
    [
        lambda g: setattr(g.synapse("x", "h"), "trainable", False),
        lambda g: setattr(g["h"], "dropout", 0.2),
        lambda g: setattr(g["y"], "loss_weight", 2.0),
    ],
    ids=["trainable", "dropout", "loss_weight"],
)
def test_an_edit_from_a_callback_takes_effect_and_training_goes_on(edit):
    """Each edit recompiles the plan; training must go on updating the weights
    the graph uses (it used to update an orphaned buffer, silently)."""
    x, y = _xy()
    g = _net()
    seen = []

    def on_epoch_end(epoch, logs):
        seen.append(g.get_weights())
        if epoch == 0:
            edit(g)

    g.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[gn.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)])
    after_edit, final = seen[1], g.get_weights()
    assert not np.array_equal(after_edit["h->y.weight"], final["h->y.weight"]), "the graph's weights stopped changing"
    assert not np.array_equal(seen[0]["h->y.weight"], after_edit["h->y.weight"])
    if not g.synapse("x", "h").trainable:  # a frozen weight really stays frozen
        assert np.array_equal(after_edit["x->h.weight"], final["x->h.weight"])
    assert g.plan.version == g.version


def test_the_same_fit_with_the_edit_made_before_agrees():
    """A trainable=False edit after epoch 1 gives what two fits give: epoch 1,
    edit, epochs 2-3 (the optimizer state carried over by key)."""
    x, y = _xy()
    a = _net()
    freeze = gn.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: setattr(a.synapse("x", "h"), "trainable", False) if epoch == 0 else None)
    a.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0, callbacks=[freeze])
    b = _net()
    b.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    b.synapse("x", "h").trainable = False
    b.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    wa, wb = a.get_weights(), b.get_weights()
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)


def test_fit_keeps_the_graphs_optimizer_and_its_state():
    x, y = _xy()
    g = _net()
    sgd = gn.optimizers.SGD(lr=0.05, momentum=0.5)
    g.optimizer = sgd
    g.fit(x, y, epochs=1, verbose=0)
    assert g.optimizer is sgd and sgd.iterations == 2
    g.fit(x, y, epochs=1, verbose=0)
    assert g.optimizer is sgd and sgd.iterations == 4
    fresh = _net()
    fresh.fit(x, y, epochs=1, verbose=0)
    assert isinstance(fresh.optimizer, gn.optimizers.Adam)


def test_one_optimizer_trains_one_graph():
    import copy

    x, y = _xy()
    a, b = _net(), _net(seed=1)
    shared = gn.optimizers.Adam()
    a.fit(x, y, epochs=1, optimizer=shared, verbose=0)
    before = b.get_weights()
    with pytest.raises(GraphError, match="already trains graph 'net'; one optimizer keeps one set of moments"):
        b.fit(x, y, epochs=1, optimizer=shared, verbose=0)
    assert all(np.array_equal(before[k], b.get_weights()[k]) for k in before) and b.optimizer is None
    b.fit(x, y, epochs=1, optimizer=copy.deepcopy(shared), verbose=0)  # a copy is free
    clone = copy.deepcopy(a)
    clone.fit(x, y, epochs=1, verbose=0)  # a copied graph trains its own copy
    assert clone.optimizer is not a.optimizer and a.optimizer.iterations == 2
    a.optimizer = None  # released: another graph may take it now
    b.optimizer = shared


def _optimizer_state(g):
    state = g.optimizer.get_state()
    return state["iterations"], {k: v.copy() for k, v in state["slots"].items()}


def _near_the_float32_limit(optimizer):
    """One weight of 3e38 fitting a target of 3.3e38 with mae: a finite loss
    whose updates push the weight towards inf."""
    g = gn.Graph(seed=0)
    g.add_input("x", 1)
    g.add_output("y", 1, loss="mae")
    g.connect("x", "y", init=np.array([[3.0e38]]))
    g.optimizer = optimizer
    return g, np.ones((1, 1)), np.full((1, 1), 3.3e38)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("name", sorted(gn.optimizers.OPTIMIZERS))
def test_a_failed_step_rolls_back_the_optimizer_state_too(name):
    lr = 1e-3 if name == "adamw" else 1e30  # adamw's decay is lr * 0.01 * 3e38
    g, x, y = _near_the_float32_limit(gn.optimizers.get({"name": name, "lr": lr}))
    for _ in range(3):
        g.train_step(x, y)  # the state is not zero any more
    iterations, slots = _optimizer_state(g)
    weights = g.get_weights()
    g.optimizer.learning_rate = 1e38
    with pytest.raises(TrainingError, match="the weights are as they were"):
        g.train_step(x, y)
    after_iterations, after_slots = _optimizer_state(g)
    assert after_iterations == iterations == 3
    assert all(np.array_equal(slots[k], after_slots[k]) for k in slots)
    assert all(np.array_equal(weights[k], g.get_weights()[k]) for k in weights)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("name", ["adam", "rmsprop"])
def test_gradients_too_large_for_the_optimizer_state_are_refused(name):
    """Squares of gradients beyond 1.8e19 overflow float32 moments while the
    update stays finite (m / sqrt(inf) = 0): that used to pass silently and
    freeze those weights forever."""
    g = gn.Graph(seed=0)
    g.add_input("x", 3)
    g.add_hidden("h", 4, activation="linear")
    g.add_output("y", 1, loss="mse")
    g.connect("x", "h")
    g.connect("h", "y")
    g.optimizer = name
    x, y = np.full((8, 3), 1e18), np.zeros(8)
    # RMSprop: g² overflows the state while the update is 0; Adam: the update too (inf - inf)
    with pytest.raises(TrainingError, match="(the gradients are too large for rmsprop.s state|the adam update of .* is not finite)"):
        g.train_step(x, y)
    assert g.optimizer.iterations == 0
    assert all(np.isfinite(v).all() for v in g.optimizer.slots.values())


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_no_step_leaves_a_non_finite_weight():
    """A finite update can overflow the weight it is subtracted from."""
    g, x, y = _near_the_float32_limit(gn.optimizers.SGD(lr=1e38))
    before = g.get_weights()
    with pytest.raises(TrainingError, match="would make 'x->y.weight' overflow"):
        g.train_step(x, y)
    assert all(np.array_equal(before[k], g.get_weights()[k]) for k in before)
    assert g.optimizer.iterations == 0
    history = gn.Graph(seed=0)
    history.add_input("x", 1)
    history.add_output("y", 1, loss="mae")
    history.connect("x", "y", init=np.array([[3.0e38]]))
    with pytest.raises(TrainingError):
        history.fit(x, y, epochs=3, optimizer=gn.optimizers.SGD(lr=1e38), verbose=0)
    assert np.isfinite(history.get_weights()["x->y.weight"]).all()


def test_initial_weights_depend_on_seed_and_shape_only():
    w32, w64 = _net(dtype="float32").get_weights(), _net(dtype="float64").get_weights()
    assert all(np.array_equal(w32[k], w64[k].astype(np.float32)) for k in w32)


def test_predict_during_fit_sees_the_weights_of_one_step():
    """Every row of one predict call comes from the same weights (a linear
    model on identical rows gives identical outputs only then). One row per
    chunk: a BLAS may round identical rows of one matrix product differently
    (OpenBLAS 0.3.31's sgemm does on AMD EPYC), but not the same one-row product."""
    import threading

    g = gn.Graph(seed=0)
    g.add_input("x", 64)
    g.add_output("y", 64)
    g.connect("x", "y")
    x = np.ones((4096, 64), np.float32)
    y = np.random.default_rng(0).normal(size=(4096, 64)).astype(np.float32)
    stop, mixed = threading.Event(), []

    def predict_in_a_loop():
        while not stop.is_set():
            out = g.predict(x, batch_size=1)
            if not (out == out[0]).all():
                mixed.append(out)

    g.fit(x[:64], y[:64], epochs=1, verbose=0)
    thread = threading.Thread(target=predict_in_a_loop)
    thread.start()
    try:
        g.fit(x, y, epochs=2, batch_size=16, optimizer=gn.optimizers.SGD(lr=0.1), verbose=0)
    finally:
        stop.set()
        thread.join()
    assert not mixed, f"{len(mixed)} predictions mixed weights from several steps"


def test_structural_edits_wait_for_running_predictions():
    """An edit from another thread waits until the predict that is running ends
    (it used to change the graph's dicts under it: 'dictionary changed size')."""
    import threading

    g = build_dag()
    done = threading.Event()
    editor = threading.Thread(target=lambda: (g.add_hidden("extra", 2), done.set()))
    with g.lock.reading():  # what predict holds while it runs
        editor.start()
        assert not done.wait(0.3), "the edit did not wait for the running prediction"
        assert "extra" not in g
    editor.join(5)
    assert done.is_set() and "extra" in g


def test_on_batch_end_gets_the_batch_loss():
    x, y = _xy(rows=24)
    g = _net()
    seen = []
    g.fit(x, y, epochs=1, batch_size=8, verbose=0,
          callbacks=[gn.callbacks.LambdaCallback(on_batch_end=lambda batch, logs: seen.append((batch, logs)))])
    assert [b for b, _ in seen] == [0, 1, 2]
    assert all(set(logs) == {"loss"} and np.isfinite(logs["loss"]) for _, logs in seen)


# ------------------------------------------------------- training that users expect
def test_class_weight_is_sample_weight_by_class():
    rng = np.random.default_rng(0)
    x, labels = rng.normal(size=(30, 4)), rng.integers(0, 3, 30)
    table = {0: 1.0, 1: 3.0, 2: 0.5}

    def trained(**weights):
        g = gn.Graph(seed=0, dtype="float64")
        g.add_input("x", 4)
        g.add_output("y", 3, activation="softmax", loss="categorical_crossentropy")
        g.connect("x", "y")
        g.fit(x, labels, epochs=2, batch_size=7, verbose=0, **weights)
        return g.get_weights()["x->y.weight"]

    by_class = trained(class_weight=table)
    by_row = trained(sample_weight=np.array([table[c] for c in labels]))
    np.testing.assert_array_equal(by_class, by_row)
    assert not np.array_equal(by_class, trained())
    both = trained(class_weight=table, sample_weight=np.full(30, 2.0))
    np.testing.assert_allclose(both, by_class, rtol=1e-12)  # a constant factor cancels in Σw·l/Σw
    # Keys as np.unique gives them for float targets, as scikit-learn takes them.
    floats = dict(zip(np.unique(labels.astype(float)), table.values()))
    np.testing.assert_array_equal(trained(class_weight=floats), by_class)
    with pytest.raises(gn.GraphError, match=r"predicts classes 0 to 2, but class_weight names \[1e\+300\]; "):
        trained(class_weight={1e300: 2.0})  # as written, not its 301 digits
    for key in (1.5, -1.0, np.True_, "1"):
        with pytest.raises(gn.GraphError, match=rf"class_weight for output 'y': classes must be integers >= 0, "
                                                rf"got {re.escape(repr(key))}$"):
            trained(class_weight={key: 2.0})


def test_weighted_validation_data_and_split():
    x, y = _xy(rows=40)
    w = np.linspace(0, 2, 40)
    g = _net(dtype="float64")
    history = g.fit(x, y, epochs=1, verbose=0, validation_data=(x, y, w))
    assert history.history["val_loss"][0] == pytest.approx(g.evaluate(x, y, sample_weight=w)["loss"], rel=1e-12)
    g.fit(x, y, epochs=1, verbose=0, sample_weight=w, validation_split=0.25)


def test_learning_rate_is_lr_and_compile_sets_losses_optimizer_and_metrics():
    assert gn.optimizers.Adam(learning_rate=3e-4).lr == 3e-4 == gn.optimizers.get({"name": "adam", "learning_rate": 3e-4}).lr
    g = gn.Graph(seed=0)
    g.add_input("x", 4)
    g.add_output("p", 1, activation="sigmoid", loss="binary_crossentropy")
    g.add_output("r", 2)
    g.connect("x", "p")
    g.connect("x", "r")
    g.compile(loss={"r": "huber"}, optimizer=gn.optimizers.SGD(learning_rate=0.1), metrics={"p": ["accuracy"]})
    assert g["r"].loss.name == "huber" and g["p"].loss.name == "binary_crossentropy"
    x = np.random.default_rng(0).normal(size=(16, 4))
    history = g.fit(x, {"p": (x[:, 0] > 0).astype(float), "r": x[:, :2]}, epochs=1, verbose=0)
    assert "p_accuracy" in history.history and isinstance(g.optimizer, gn.optimizers.SGD)
    before = g.to_dict()
    with pytest.raises(GraphError, match="compile: output 'p': loss 'categorical_crossentropy' needs activation 'softmax'"):
        g.compile(loss="categorical_crossentropy")
    with pytest.raises(GraphError, match=r"^compile: loss names unknown outputs \['q'\]"):
        g.compile(loss={"q": "mse"})
    assert g.to_dict() == before


def _classifier(outputs=("y",), classes=None):
    g = gn.Graph(seed=0)
    g.add_input("x", 2)
    for name in outputs:
        g.add_output(name, 2, activation="softmax", loss="categorical_crossentropy", classes=classes)
        g.connect("x", name)
    return g


def test_class_weight_keyed_by_text_labels():
    X = np.arange(8.0).reshape(4, 2)
    y = np.array(["u", "v", "v", "v"], dtype=object)
    w = np.array([3.0, 1.0, 1.0, 1.0])
    expected = _classifier(classes=["u", "v"]).evaluate(X, y, sample_weight=w)["loss"]
    g = _classifier(classes=["u", "v"])
    history = g.fit(X, y, class_weight={"u": 3.0, "v": 1.0}, epochs=1, verbose=0, batch_size=4)
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-6)


def test_one_class_weight_dict_for_two_outputs_is_refused():
    g = _classifier(outputs=("y", "z"))
    X = np.arange(8.0).reshape(4, 2)
    y = np.array([0, 1, 1, 1])
    with pytest.raises(gn.GraphError, match="this graph has 2 outputs .* give class_weight per output"):
        g.fit(X, {"y": y, "z": y}, class_weight={0: 3.0, 1: 1.0}, epochs=1, verbose=0)


@pytest.mark.parametrize("call", ["fit", "evaluate"])
def test_unknown_output_in_sample_weight_names_the_call(call):
    g = gn.Graph(seed=0)
    g.add_input("x", 2)
    g.add_output("y", 1)
    g.connect("x", "y")
    kwargs = {"epochs": 1, "verbose": 0} if call == "fit" else {}
    with pytest.raises(gn.NotFoundError, match=rf"^{call}: sample_weight names unknown outputs \['nope'\]"):
        getattr(g, call)(np.zeros((4, 2)), np.zeros((4, 1)), sample_weight={"nope": np.ones(4)}, **kwargs)


def test_all_zero_sample_weights_are_reported_as_summing_to_zero():
    g = _classifier()
    X = np.arange(8.0).reshape(4, 2)
    with pytest.raises(gn.GraphError, match="sum to 0, so no row would count"):
        g.fit(X, np.array([0, 1, 1, 1]), sample_weight=np.zeros(4), class_weight={0: 1.0, 1: 1.0},
              epochs=1, verbose=0, batch_size=2)


def test_a_column_of_sample_weights_reads_as_one_weight_per_row():
    g = gn.Graph(seed=0)
    g.add_input("x", 2)
    g.add_output("y", 1)
    g.connect("x", "y")
    X = np.arange(8.0).reshape(4, 2)
    y = np.arange(4.0).reshape(4, 1)
    w = np.array([1.0, 2.0, 0.5, 3.0])
    p = np.asarray(g.predict(X), dtype=np.float64)
    expected = np.average(((p - y) ** 2).ravel(), weights=w)
    assert g.evaluate(X, y, sample_weight=w.reshape(-1, 1))["loss"] == pytest.approx(expected, rel=1e-6)


def test_class_weight_naming_a_class_one_past_the_last_is_refused():
    g = _classifier()
    with pytest.raises(gn.GraphError, match=r"predicts classes 0 to 1, but class_weight names \[2\]"):
        g.fit(np.zeros((4, 2)), np.array([0, 1, 1, 0]), class_weight={0: 1.0, 1: 1.0, 2: 1.0}, epochs=1, verbose=0)
