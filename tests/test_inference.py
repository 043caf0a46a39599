"""predict and evaluate (graphnet.inference): buffers of their own, safe from
several threads, chunking that changes nothing."""

from __future__ import annotations

import re
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import build_dag, dag_data

import graphnet as gn


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


@pytest.mark.parametrize("rows", [1, 7, 8, 100])
@pytest.mark.parametrize("batch_size", [0, -1, "2", [2], True, 2.0, None])
def test_predict_checks_batch_size_however_few_the_rows(rng, rows, batch_size):
    model, _, _ = _trained_mlp(rows=8)
    dag = build_dag(dtype="float32")
    x, _ = dag_data(rng, rows)
    calls = [lambda: model.predict(np.ones((rows, 6)), batch_size=batch_size),
             lambda: model.predict(np.ones((rows, 6)), batch_size=batch_size, outputs=["dense"]),
             lambda: dag.predict(x, batch_size=batch_size)]
    for call in calls:
        if batch_size is None:
            call()
            continue
        with pytest.raises(gn.GraphError, match=rf"^predict: batch_size must be a positive integer, got "
                                                rf"{re.escape(repr(batch_size))}$"):
            call()


def test_predict_from_eight_threads_equals_serial_predict(rng):
    g = build_dag(dtype="float32")
    batches = [dag_data(rng, rows=int(n))[0] for n in rng.integers(1, 300, size=32)]
    g.fit(*dag_data(rng, rows=64), epochs=1, verbose=0)  # training buffers exist too
    serial = [g.predict(x, batch_size=50) for x in batches]
    fresh = build_dag(dtype="float32")
    fresh.set_weights(g.get_weights())  # an uncompiled graph: threads race to compile it
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(lambda x: fresh.predict(x, batch_size=50), batches * 4))
    for i, result in enumerate(parallel):
        expected = serial[i % len(batches)]
        for name in expected:
            np.testing.assert_array_equal(result[name], expected[name])


def test_evaluate_in_chunks_equals_evaluate_at_once(rng):
    g = build_dag()
    x, y = dag_data(rng, rows=50)
    whole = g.evaluate(x, y, metrics=["accuracy"])
    chunked = g.evaluate(x, y, batch_size=7, metrics=["accuracy"])
    assert whole.keys() == chunked.keys()
    for k in whole:
        assert chunked[k] == pytest.approx(whole[k], rel=1e-12)


# ------------------------------------------------------- predict(outputs=...)
def _manual_forward(g: gn.Graph, x: dict) -> dict:
    """Every node's activation in float64 numpy, from get_weights() alone."""
    from scipy.special import erf, expit

    functions = {
        "tanh": np.tanh,
        "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))),
        "gelu": lambda z: 0.5 * z * (1 + erf(z / np.sqrt(2))),
        "sigmoid": expit,
        "relu": lambda z: np.maximum(z, 0),
        "linear": lambda z: z,
        "softmax": lambda z: np.exp(z - z.max(1, keepdims=True)) / np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True),
    }
    weights = {k: np.asarray(v, dtype=np.float64) for k, v in g.get_weights().items()}
    values = {name: np.asarray(x[name], dtype=np.float64) for name in g.inputs}
    for name in g.topological_order:
        if name in values:
            continue
        z = weights[f"{name}.bias"].copy()
        for s in g.incoming(name):
            z = z + values[s.src] @ weights[f"{s.src}->{name}.weight"]
        values[name] = functions[g[name].activation.name](z)
    return values


@pytest.mark.parametrize("batch_size", [None, 3])
def test_predict_outputs_gives_any_node_as_a_manual_forward_does(rng, batch_size):
    g = build_dag()
    x, _ = dag_data(rng, rows=10)
    expected = _manual_forward(g, x)
    names = ["h2", "a", "main", "h3", "aux"]
    got = g.predict(x, outputs=names, batch_size=batch_size)
    assert list(got) == names
    for name in names:
        assert got[name].shape == (10, g[name].size)
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-12, atol=1e-14, err_msg=name)
    plain = g.predict(x, batch_size=batch_size)
    for name in g.outputs:  # the same forward pass as predict's, bit for bit
        np.testing.assert_array_equal(got[name], plain[name])


def test_predict_outputs_is_a_dict_even_for_one_node_and_takes_nodes():
    model, x, _ = _trained_mlp(rows=20)
    hidden = model.nodes["dense"]
    got = model.predict(x, outputs=[hidden, "dense", "input"])
    assert list(got) == ["dense", "input"]  # each node once, in the order first given
    np.testing.assert_array_equal(got["input"], x)
    assert (got["dense"] >= 0).all() and got["dense"].shape == (20, 16)
    last = model.predict(x, outputs="dense_1")
    assert isinstance(last, dict) and list(last) == ["dense_1"]
    np.testing.assert_array_equal(last["dense_1"], model.predict(x))


def test_predict_outputs_runs_in_inference_mode():
    g = gn.Sequential([gn.Input(4), gn.Dense(32, activation="relu", dropout=0.5, name="h"), gn.Dense(1)],
                      seed=0, dtype="float64")
    x = np.random.default_rng(0).normal(size=(8, 4))
    first = g.predict(x, outputs=["h"])["h"]
    np.testing.assert_array_equal(first, g.predict(x, outputs=["h"])["h"])
    np.testing.assert_allclose(first, _manual_forward(g, {"input": x})["h"], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("outputs, match", [
    (["nope"], r"has no node 'nope'; known: \['a', 'b', 'h1'"),
    ([], "non-empty list of node names"),
    (3, "non-empty list of node names, got 3"),
    ({"h1"}, "non-empty list of node names"),
])
def test_predict_outputs_refuses_what_names_no_node(rng, outputs, match):
    g = build_dag()
    x, _ = dag_data(rng)
    with pytest.raises(gn.GraphError, match=match):
        g.predict(x, outputs=outputs)


def test_predict_outputs_from_several_threads_equals_serial(rng):
    g = build_dag(dtype="float32")
    batches = [dag_data(rng, rows=int(n))[0] for n in rng.integers(1, 200, size=12)]
    serial = [g.predict(x, batch_size=16, outputs=["h1", "h3"]) for x in batches]
    with ThreadPoolExecutor(max_workers=6) as pool:
        parallel = list(pool.map(lambda x: g.predict(x, batch_size=16, outputs=["h1", "h3"]), batches * 3))
    for i, result in enumerate(parallel):
        for name, array in serial[i % len(batches)].items():
            np.testing.assert_array_equal(result[name], array)


def test_predict_outputs_on_dask_arrays_equals_numpy(rng):
    da = pytest.importorskip("dask.array")
    g = build_dag()
    x, _ = dag_data(rng, rows=30)
    lazy = {k: da.from_array(v, chunks=7) for k, v in x.items()}
    got = g.predict(lazy, outputs=["h2", "main"])
    assert list(got) == ["h2", "main"]
    expected = g.predict(x, outputs=["h2", "main"])
    for name in expected:
        np.testing.assert_allclose(got[name].compute(), expected[name], rtol=1e-12)


def test_a_result_stays_the_callers_when_the_next_call_reuses_the_buffers(rng):
    """predict keeps a small workspace per thread for the next call: the
    arrays it returned are the caller's and never written again."""
    g = gn.Sequential([gn.Input(3), gn.Dense(4, activation="relu", name="h"), gn.Dense(2)], seed=0)
    x1, x2 = rng.normal(size=(1, 3)), rng.normal(size=(1, 3))
    hidden = g.predict(x1, outputs=["h"])["h"]
    first = g.predict(x1)
    kept_hidden, kept_first = hidden.copy(), first.copy()
    g.predict(x2)
    g.predict(x2, outputs=["h", "dense"])
    assert np.array_equal(hidden, kept_hidden) and np.array_equal(first, kept_first)
    assert not np.array_equal(g.predict(x2), first)


def test_data_too_large_for_the_graphs_dtype_is_named_so_without_numpy_warnings():
    g = gn.Graph(seed=0)  # float32
    g.add_input("x", 3)
    g.add_output("y", 1)
    g.connect("x", "y")
    serve = g.compile_predict()
    x = np.zeros((40, 3))
    x[5, 1] = 1e39  # finite in float64, inf in float32
    too_large = (r"^input 'x' holds 1 value\(s\) too large for the graph's float32 \(largest 3\.403e\+38\), "
                 r"in column 1 \(1 row\)")
    calls = [lambda rows: g.predict(x[:rows]), lambda rows: serve(x[:rows]),
             lambda rows: g.predict({"x": x[:rows]}, outputs=["y", "x"]),
             lambda rows: g.predict(x[:rows], batch_size=3),
             lambda rows: g.evaluate(x[:rows], np.zeros((rows, 1))),
             lambda rows: g.fit(x[:rows], np.zeros((rows, 1)), verbose=0)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for rows in (6, 40):
            for call in calls:
                with pytest.raises(gn.ShapeError, match=too_large):
                    call(rows)
        x[2, 0] = np.nan  # the data's own NaN and inf are named as such first
        with pytest.raises(gn.ShapeError, match=r"^input 'x' contains 1 NaN or inf value\(s\), in column 0 \(1 row\)"):
            g.predict(x)
        with pytest.raises(gn.ShapeError, match=r"^output 'y': targets hold values too large for the graph's float32"):
            g.evaluate(np.zeros((4, 3)), np.full((4, 1), 1e39))
        huge = g.evaluate(np.full((4, 3), 1e30), np.zeros((4, 1)), metrics=["mae", "mse"])  # finite data, inf results
    # the float32 loss overflows; the metrics work in float64, as scikit-learn's
    assert huge["loss"] == np.inf and np.isfinite(huge["mse"]) and np.isfinite(huge["mae"])
