"""compile_predict: the inference forward compiled for small calls, checked
against predict (the same numbers), and refusing what it cannot compute."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import kernel_dag, kernel_dag_data

import graphnet as gn
from graphnet import _kernels, serving


@pytest.fixture(params=["numba", "numpy"])
def kernels(request, monkeypatch):
    """The compiled forward with numba, and its numpy version (numba missing)."""
    if request.param == "numpy":
        monkeypatch.setattr(_kernels, "ENABLED", False)
    return request.param


def test_it_gives_predicts_numbers_on_a_dag_with_every_activation(rng, kernels):
    g = kernel_dag()
    serve = g.compile_predict()
    assert serve.compiled == (kernels == "numba")
    for rows in (1, 5, serving.SMALL_ROWS + 1):  # the compiled forward, then predict's path on the snapshot
        x = kernel_dag_data(rng, rows)
        got, expected = serve(x), g.predict(x)
        assert list(got) == ["y", "z"]
        for name in expected:
            np.testing.assert_allclose(got[name], expected[name], rtol=1e-12, atol=1e-14)


def test_a_one_input_float32_net_in_chunks(rng, kernels):
    g = gn.Sequential([gn.Input(20), gn.Dense(16, activation="relu"), gn.Dense(8, activation="tanh"),
                       gn.Dense(4, activation="softmax")], seed=1)
    whole, chunked = g.compile_predict(), g.compile_predict(batch_size=3)
    for rows in (5, 10):
        x = rng.normal(size=(rows, 20)).astype(np.float32)
        for serve in (whole, chunked):
            got = serve(x)
            assert got.dtype == np.float32 and got.shape == (rows, 4)
            np.testing.assert_allclose(got, g.predict(x), rtol=1e-5, atol=1e-6)
    assert whole(x[:0]).shape == (0, 4)
    np.testing.assert_allclose(whole(x.astype(np.float64)[:1]), g.predict(x[:1]), rtol=1e-5, atol=1e-6)


def test_it_is_a_snapshot_that_training_does_not_reach(rng):
    g = kernel_dag()
    x = kernel_dag_data(rng)
    before, serve = g.predict(x), g.compile_predict()
    y = {"y": rng.integers(0, 3, 5), "z": rng.normal(size=(5, 1))}
    g.fit(x, y, epochs=3, verbose=0)
    assert not np.allclose(g.predict(x)["z"], before["z"])
    np.testing.assert_allclose(serve(x)["z"], before["z"], rtol=1e-12)
    np.testing.assert_allclose(g.compile_predict()(x)["z"], g.predict(x)["z"], rtol=1e-12, atol=1e-14)


def test_frames_are_bound_by_column_name(rng):
    pd = pytest.importorskip("pandas")
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("a", columns=["p", "q", "s"])
    g.add_input("b", columns=["b0", "b1"])
    g.add_hidden("h", 4, activation="relu")
    g.add_output("y", 2, activation="softmax", loss="categorical_crossentropy")
    g.connect(["a", "b"], "h")
    g.connect("h", "y")
    frame = pd.DataFrame(rng.normal(size=(5, 5)), columns=["s", "b0", "q", "b1", "p"])
    serve = g.compile_predict()
    np.testing.assert_allclose(serve(frame), g.predict(frame), rtol=1e-12)
    np.testing.assert_allclose(serve(frame[["p", "b1", "q", "s", "b0"]]), serve(frame), rtol=0)


def test_threads_share_one_compiled_forward(rng):
    g = gn.Sequential([gn.Input(30), gn.Dense(64, activation="relu"), gn.Dense(3, activation="softmax")], seed=0)
    serve = g.compile_predict()
    batches = [rng.normal(size=(int(n), 30)).astype(np.float32) for n in rng.integers(1, 40, 40)]
    expected = [serve(x) for x in batches]
    results, errors = {}, []

    def work(k):
        try:
            for _ in range(20):
                for i, x in enumerate(batches):
                    if not np.array_equal(serve(x), expected[i]):
                        results.setdefault(k, i)
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and not results


def test_bad_data_is_refused_as_predict_refuses_it(rng, kernels):
    g = kernel_dag()
    serve = g.compile_predict()
    x = kernel_dag_data(rng)
    x["b"][2, 1] = np.nan
    with pytest.raises(gn.ShapeError, match=r"input 'b' contains 1 NaN or inf value"):
        serve(x)
    with pytest.raises(gn.ShapeError, match=r"missing.*'b'"):
        serve({"a": x["a"]})
    with pytest.raises(gn.ShapeError, match=r"input 'a': expected shape \(n, 3\), got \(9, 4\)"):
        serve({"a": np.ones((9, 4)), "b": x["b"]})
    with pytest.raises(gn.ShapeError, match="rows disagree"):
        serve({"a": np.ones((9, 3)), "b": np.ones((8, 2))})
    one = gn.Sequential([gn.Input(2), gn.Dense(1)], seed=0).compile_predict()
    with pytest.raises(gn.ShapeError, match=r"expected numbers, got an array of dtype <U1"):
        one(np.array([["a", "b"]]))
    with pytest.raises(gn.ShapeError, match=r"input 'input': contains 1 NaN|input 'input' contains 1 NaN"):
        one(np.array([[1.0, np.inf]]))


def test_what_it_cannot_compute_is_refused_by_name():
    g = gn.Graph(seed=0)
    g.add_input("x", 2)
    g.add_hidden("h", 3, activation="elu")
    g.add_output("y", 1)
    g.connect("x", "h")
    g.connect("h", "y")
    with pytest.raises(gn.GraphError, match=r"node 'h' has the activation 'elu'; the compiled forward computes "
                                            r"linear, relu, sigmoid, tanh, softmax"):
        g.compile_predict()
    t = gn.Graph(seed=0)
    t.add_input("zone", categories=["n", "s"])
    t.add_output("y", 1)
    t.connect("zone", "y")
    with pytest.raises(gn.GraphError, match=r"input 'zone' transforms its data"):
        t.compile_predict()
    with pytest.raises(gn.GraphError, match="batch_size"):
        gn.Sequential([gn.Input(2), gn.Dense(1)]).compile_predict(batch_size=0)
    broken = gn.Graph()
    broken.add_input("x", 2)
    broken.add_output("y", 1)
    with pytest.raises(gn.GraphError, match="y"):
        broken.compile_predict()


def test_on_a_device_it_says_to_use_predict(standin):
    g = gn.Sequential([gn.Input(2), gn.Dense(1)], seed=0, device="standin")
    with pytest.raises(gn.GraphError, match=r"is on 'standin'; the compiled forward runs on the CPU"):
        g.compile_predict()
