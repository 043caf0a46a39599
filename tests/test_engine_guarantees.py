"""What the execution plan must keep while it is made faster.

Every speed change to ``plan.py``, ``optimizers.py``, ``training.py`` or
``inference.py`` has to leave these true: exact gradients (float64 central
differences over every activation, loss and graph shape the plan treats
specially), predictions that share no buffer with training and are safe from
several threads, bit-for-bit seeded reproducibility, and the TrainingError
promise that the weights are those from before the failing step.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import build_dag, dag_data
from gradcheck import max_relative_error, numeric_gradients

import graphnet as gn
from graphnet.activations import ACTIVATIONS


def _check(graph, x, y, tolerance=1e-5):
    _, analytic = graph.gradients(x, y)
    numeric = numeric_gradients(graph, x, y)
    error, where = max_relative_error(analytic, numeric)
    assert error < tolerance, f"{where}: relative error {error:.2e}"


def test_dag_gradients_match_finite_differences(rng):
    """Fan-in, fan-out, skips from an input, and an output feeding another node."""
    graph = build_dag()
    x, y = dag_data(rng)
    _check(graph, x, y)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_activation_in_a_fan_in_node(rng, activation):
    g = gn.Graph(seed=3, dtype="float64")
    g.add_input("a", 4)
    g.add_input("b", 3)
    g.add_hidden("h", 5, activation=activation)
    g.add_hidden("k", 3, activation=activation)
    g.add_output("out", 2, activation="linear", loss="mse")
    g.connect(["a", "b"], "h")
    g.connect(["h", "a"], "k")
    g.connect(["k", "h"], "out")
    x = {"a": rng.normal(size=(6, 4)), "b": rng.normal(size=(6, 3))}
    _check(g, x, rng.normal(size=(6, 2)))


@pytest.mark.parametrize(
    "activation, loss, target",
    [
        ("linear", "mse", "real"),
        ("tanh", "mae", "real"),
        ("linear", "huber", "real"),
        ("sigmoid", "binary_crossentropy", "binary"),
        ("softmax", "categorical_crossentropy", "labels"),
        ("softmax", "categorical_crossentropy", "onehot"),
        ("softmax", "mse", "real"),
    ],
)
def test_every_loss(rng, activation, loss, target):
    g = gn.Graph(seed=5, dtype="float64")
    g.add_input("x", 4)
    g.add_hidden("h", 6, activation="tanh")
    g.add_output("out", 3, activation=activation, loss=loss, loss_weight=0.6)
    g.connect("x", "h")
    g.connect(["h", "x"], "out")
    x = rng.normal(size=(7, 4))
    y = {
        "real": rng.normal(size=(7, 3)),
        "binary": rng.integers(0, 2, size=(7, 3)).astype(float),
        "labels": rng.integers(0, 3, size=7),
        "onehot": np.eye(3)[rng.integers(0, 3, size=7)],
    }[target]
    _check(g, x, y)


def test_gradients_of_a_one_wide_output_and_a_chain(rng):
    model = gn.Sequential(
        [gn.Input(5), gn.Dense(8, activation="relu"), gn.Dense(4, activation="relu"),
         gn.Dense(1, activation="sigmoid")],
        seed=2, dtype="float64",
    )
    x = rng.normal(size=(9, 5))
    _check(model, x, rng.integers(0, 2, size=9).astype(float))


def test_gradients_match_with_a_shorter_batch_after_a_full_one(rng):
    """The last, shorter batch runs on the leading rows of the full batch's buffers."""
    graph = build_dag()
    x, y = dag_data(rng, rows=7)
    graph.gradients(x, y)  # makes the 7-row workspace first
    short_x = {k: v[:3] for k, v in x.items()}
    short_y = {k: v[:3] for k, v in y.items()}
    _check(graph, short_x, short_y)


def test_gradients_change_no_weight(rng):
    graph = build_dag()
    x, y = dag_data(rng)
    before = graph.get_weights()
    graph.gradients(x, y)
    after = graph.get_weights()
    assert all(np.array_equal(before[k], after[k]) for k in before)


# ------------------------------------------------------------------- predict
def _trained_mlp(rows=64):
    rng = np.random.default_rng(7)
    model = gn.Sequential(
        [gn.Input(6), gn.Dense(16, activation="relu"), gn.Dense(3, activation="softmax")], seed=1
    )
    x = rng.normal(size=(rows, 6)).astype(np.float32)
    y = rng.integers(0, 3, size=rows)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    return model, x, y


def test_predict_shares_no_buffer_with_training():
    model, x, y = _trained_mlp()
    first = model.predict(x[:16])
    kept = first.copy()
    model.train_step(x[:16], y[:16])  # same row count as predict's chunk
    assert np.array_equal(first, kept), "training wrote into an array predict returned"
    second = model.predict(x[:16])
    assert not np.shares_memory(first, second)
    assert not np.array_equal(first, second), "the weights changed, so must the predictions"


def test_predict_is_safe_from_several_threads():
    model, x, _ = _trained_mlp(rows=512)
    expected = model.predict(x, batch_size=32)
    results, errors = [None] * 6, []

    def work(i):
        try:
            for _ in range(10):
                out = model.predict(x, batch_size=32)
                if not np.array_equal(out, expected):
                    raise AssertionError(f"thread {i} got different predictions")
            results[i] = out
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert all(np.array_equal(r, expected) for r in results)


def test_predict_equals_the_forward_of_evaluate_and_chunking_does_not_matter():
    model, x, _ = _trained_mlp(rows=100)
    whole = model.predict(x)
    chunked = model.predict(x, batch_size=7)
    np.testing.assert_allclose(whole, chunked, rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------ reproducibility
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


# ------------------------------------------------------------- TrainingError
def _tiny():
    g = gn.Graph(seed=0)
    g.add_input("x", 3)
    g.add_hidden("h", 4, activation="relu")
    g.add_output("y", 1, activation="linear", loss="mse")
    g.connect("x", "h")
    g.connect("h", "y")
    return g


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow is the point
def test_non_finite_loss_leaves_the_weights_as_before():
    g = _tiny()
    x = np.ones((4, 3), np.float32)
    g.set_weights({"x->h.weight": np.full((3, 4), 1e30)})
    before = g.get_weights()
    with pytest.raises(gn.TrainingError, match="loss of output 'y'"):
        g.fit(x, np.zeros(4), epochs=1, batch_size=4, verbose=0)
    after = g.get_weights()
    assert all(np.array_equal(before[k], after[k]) for k in before)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow is the point
def test_non_finite_update_leaves_the_weights_as_before():
    g = _tiny()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 3)).astype(np.float32)
    y = np.full(8, 100.0, np.float32)
    g.train_step(x, y, optimizer="adam")  # optimizer state exists
    before = g.get_weights()
    with pytest.raises(gn.TrainingError, match="sgd update of") as info:
        g.train_step(x, y, optimizer=gn.optimizers.SGD(lr=1e38))
    assert info.value.epoch is None and info.value.key is not None
    after = g.get_weights()
    assert all(np.array_equal(before[k], after[k]) for k in before)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow is the point
def test_non_finite_gradient_leaves_the_weights_as_before():
    g = gn.Graph(seed=0)
    g.add_input("x", 2)
    g.add_output("y", 1, activation="linear", loss="mse")
    g.connect("x", "y")
    x = np.array([[3e38, 0.0], [1.0, 1.0]], np.float32)
    g.set_weights({"x->y.weight": np.array([[1e-30], [1.0]])})
    before = g.get_weights()
    with pytest.raises(gn.TrainingError, match="gradient of 'x->y.weight'"):
        g.train_step(x, np.zeros(2, np.float32))
    after = g.get_weights()
    assert all(np.array_equal(before[k], after[k]) for k in before)


# ------------------------------------------------------------ fused kernels
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_fused_adam_gives_the_numpy_passes_weights_bit_for_bit(monkeypatch, dtype, optimizer):
    pytest.importorskip("numba", reason="the fused kernel needs numba (graphnet[fast])")
    from graphnet import kernels

    def fit(enabled):
        monkeypatch.setattr(kernels, "ENABLED", enabled)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(120, 10)).astype(dtype)
        y = rng.integers(0, 4, 120)
        model = gn.Sequential(
            [gn.Input(10), gn.Dense(16, activation="relu"), gn.Dense(4, activation="softmax")],
            seed=1, dtype=dtype,
        )
        model.fit(x, y, epochs=3, batch_size=16, verbose=0, optimizer=optimizer)
        return model.get_weights()

    fused, passes = fit(True), fit(False)
    for key in fused:
        assert np.array_equal(fused[key], passes[key]), key


# ------------------------------------------------------------ bad inputs
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_predict_and_fit_still_refuse_non_finite_inputs(bad):
    model, x, y = _trained_mlp()
    x = x.copy()
    x[37, 4] = bad
    with pytest.raises(gn.ShapeError, match="1 NaN or inf"):
        model.predict(x, batch_size=16)  # in the third chunk
    with pytest.raises(gn.ShapeError, match="NaN or inf"):
        model.fit(x, y, epochs=1, verbose=0)


def test_huge_but_finite_inputs_are_not_refused(recwarn):
    """Row sums that overflow only trigger the exact check, which passes quietly."""
    from graphnet.data import check_finite

    check_finite(np.full((5, 4), 3e38, np.float32), "input", "x")
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
    with pytest.raises(gn.ShapeError, match="input 'x' contains 1 NaN"):
        check_finite(np.array([[3e38, 3e38], [np.nan, 0]], np.float32), "input", "x")


# ------------------------------------------------------- editing at scale
@pytest.mark.parametrize("seed", range(5))
def test_connect_refuses_exactly_the_cycles(seed):
    """connect() skips its path search where it can prove no cycle is possible;
    random edits (against insertion order, removals, disconnections) must still
    accept exactly the synapses that keep the graph acyclic."""
    import networkx as nx

    rng = np.random.default_rng(seed)
    g = gn.Graph(seed=seed)
    names = [f"n{i}" for i in range(12)]
    for name in names:
        g.add_hidden(name, 2)
    shadow = nx.DiGraph()
    shadow.add_nodes_from(names)
    for _ in range(150):
        action = rng.random()
        src, dst = (str(n) for n in rng.choice(names, size=2, replace=False))
        if action < 0.8 and not shadow.has_edge(src, dst):
            makes_cycle = nx.has_path(shadow, dst, src)
            if makes_cycle:
                with pytest.raises(gn.CycleError, match=f"{src} -> {dst}"):
                    g.connect(src, dst)
            else:
                g.connect(src, dst)
                shadow.add_edge(src, dst)
        elif action < 0.95 and shadow.has_edge(src, dst):
            g.disconnect(src, dst)
            shadow.remove_edge(src, dst)
        elif action >= 0.95:
            victim = str(rng.choice(names))
            g.remove(victim)
            shadow.remove_node(victim)
            g.add_hidden(victim, 2)
            shadow.add_node(victim)
    assert set(g.structure.edges) == set(shadow.edges)
    order = g.topological_order
    position = {n: i for i, n in enumerate(order)}
    assert all(position[s] < position[d] for s, d in shadow.edges)
