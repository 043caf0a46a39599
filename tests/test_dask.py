"""predict and evaluate on dask arrays (graphnet._dask), on dask's local schedulers.

What needs a cluster (the graph unpickled once per worker, fit on workers)
is in test_distributed.py.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import build_dag, dag_data

import graphnet as gn

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")


def _lazy(arrays: dict, rows) -> dict:
    return {k: da.from_array(v, chunks=(rows, *v.shape[1:])) for k, v in arrays.items()}


def test_predict_is_lazy_with_the_graphs_dtype_row_chunks_and_one_column_chunk(rng):
    g = build_dag(dtype="float32")
    x, _ = dag_data(rng, 50)
    lazy = {"a": da.from_array(x["a"], chunks=(7, 2)), "b": da.from_array(x["b"], chunks=(13, 3))}
    out = g.predict(lazy)
    expected = g.predict(x)
    assert set(out) == {"aux", "main"}
    for name, size in (("aux", 3), ("main", 2)):
        assert isinstance(out[name], da.Array)
        assert out[name].dtype == np.float32
        assert out[name].chunks == ((7,) * 7 + (1,), (size,))  # the first input's row chunks
        np.testing.assert_allclose(out[name].compute(), expected[name], rtol=1e-6, atol=1e-7)
    one = gn.Sequential([gn.Input(3), gn.Dense(4, activation="relu"), gn.Dense(1)], seed=0)
    single = one.predict(da.ones((10, 3), chunks=4))
    assert isinstance(single, da.Array) and single.chunks == ((4, 4, 2), (1,))


def test_predict_computes_nothing_until_asked(rng):
    g = build_dag()
    x, _ = dag_data(rng, 30)
    calls = []

    def counted(block):
        calls.append(len(block))
        return block

    def broken(block):
        raise RuntimeError("this chunk must not be computed yet")

    # meta= spares dask from calling the functions to learn what they return
    lazy = {"a": da.from_array(x["a"], chunks=(10, 5)).map_blocks(counted, meta=np.empty((0, 5))),
            "b": da.from_array(x["b"], chunks=(10, 3)).map_blocks(broken, meta=np.empty((0, 3)))}
    with dask.config.set(scheduler="synchronous"):
        out = g.predict(lazy)
        assert calls == []
        with pytest.raises(RuntimeError, match="must not be computed yet"):
            out["main"].compute()
        calls.clear()
        fine = g.predict({"a": lazy["a"], "b": x["b"]})
        assert calls == []
        np.testing.assert_allclose(fine["aux"].compute(), g.predict(x)["aux"], rtol=1e-12)
        assert calls == [10, 10, 10]


def test_predict_handles_empty_partitions(rng):
    g = build_dag()
    x, _ = dag_data(rng, 9)
    lazy = {"a": da.from_array(x["a"], chunks=((0, 4, 0, 5, 0), (5,))),
            "b": da.from_array(x["b"], chunks=((0, 4, 0, 5, 0), (3,)))}
    out = g.predict(lazy)
    assert out["aux"].chunks[0] == (0, 4, 0, 5, 0)
    expected = g.predict(x)
    for name in expected:
        np.testing.assert_allclose(out[name].compute(), expected[name], rtol=1e-12)


def test_predict_refuses_data_that_cannot_fit_at_the_call(rng):
    g = build_dag()
    x, _ = dag_data(rng, 10)
    lazy = _lazy(x, 4)
    with pytest.raises(gn.ShapeError, match=r"input 'a': expected shape \(n, 5\), got \(10, 4\)"):
        g.predict({**lazy, "a": lazy["a"][:, :4]})
    with pytest.raises(gn.ShapeError, match=r"missing inputs \['b'\]"):
        g.predict({"a": lazy["a"]})
    with pytest.raises(gn.ShapeError, match="rows disagree: input 'a' has 10 rows but input 'b' has 9"):
        g.predict({**lazy, "b": lazy["b"][:9]})
    with pytest.raises(gn.ShapeError, match="expected numbers, got an array of dtype <U1"):
        g.predict({**lazy, "b": da.from_array(np.full((10, 3), "x"))})
    with pytest.raises(gn.GraphError, match="batch_size must be a positive integer, got 0"):
        g.predict(lazy, batch_size=0)
    unknown = lazy["a"][lazy["a"][:, 0] > -np.inf]  # rows of unknown length, 3 blocks
    with pytest.raises(gn.ShapeError, match=r"unknown length .*compute_chunk_sizes"):
        g.predict({"a": unknown, "b": lazy["b"].rechunk((5, 3))})


def test_rows_of_unknown_length_are_matched_block_for_block(rng):
    g = build_dag()
    x, _ = dag_data(rng, 12)
    lazy = _lazy(x, 5)
    keep = lazy["a"][:, 0] > -np.inf  # every row, lengths unknown until computed
    out = g.predict({"a": lazy["a"][keep], "b": lazy["b"][keep]})
    np.testing.assert_allclose(out["main"].compute(), g.predict(x)["main"], rtol=1e-12)


def test_predict_keeps_the_weights_of_the_moment_it_was_called(rng):
    g = build_dag()
    x, y = dag_data(rng, 20)
    before = g.predict(x)["main"]
    lazy = g.predict(_lazy(x, 8))["main"]
    g.fit(x, y, epochs=2, batch_size=5, verbose=0)
    assert not np.allclose(g.predict(x)["main"], before)
    np.testing.assert_allclose(lazy.compute(), before, rtol=1e-12)


def test_the_graph_is_one_value_of_the_task_graph_that_every_chunk_reads(rng):
    g = build_dag()
    x, _ = dag_data(rng, 40)
    out = g.predict(_lazy(x, 5))["main"]
    tasks = dict(out.__dask_graph__())

    def holds_graph(value) -> bool:
        return isinstance(value, gn.Graph) or isinstance(getattr(value, "value", None), gn.Graph)

    holders = [key for key, value in tasks.items() if holds_graph(value)]
    assert len(holders) == 1
    blocks = [v for k, v in tasks.items() if isinstance(k, tuple) and "predict_block" in k[0]]
    assert len(blocks) == 8
    assert all(holders[0] in _dependencies(v) for v in blocks)


def _dependencies(task) -> set:
    """The keys a task reads: a Task's own (dask 2024.12 and later), or, in an
    older dask's task tuple, every key-like part (a key is a str or a tuple)."""
    if hasattr(task, "dependencies"):
        return set(task.dependencies)
    found = set()
    if isinstance(task, (tuple, list)):
        for part in task:
            if isinstance(part, str) or (isinstance(part, tuple) and all(isinstance(p, (str, int)) for p in part)):
                found.add(part)
            found |= _dependencies(part)
    return found


def test_evaluate_on_dask_arrays_equals_evaluate_on_numpy(rng):
    g = build_dag()
    x, y = dag_data(rng, 61)
    g.fit(x, y, epochs=2, batch_size=8, verbose=0)
    expected = g.evaluate(x, y, metrics=["accuracy", "mae"])
    chunks = (0, 7, 20, 0, 34)
    lazy_x = {k: da.from_array(v, chunks=(chunks, v.shape[1])) for k, v in x.items()}
    lazy_y = {"aux": da.from_array(y["aux"], chunks=(11,)), "main": da.from_array(y["main"], chunks=(30, 1))}
    for data in ((lazy_x, lazy_y), (lazy_x, y), (x, lazy_y)):
        got = g.evaluate(*data, metrics=["accuracy", "mae"], batch_size=6)
        assert list(got) == list(expected)
        assert all(isinstance(v, float) for v in got.values())
        for key in expected:
            assert got[key] == pytest.approx(expected[key], rel=1e-12)


def test_evaluate_on_dask_arrays_takes_sample_weights_and_regularizers(rng):
    g = build_dag()
    g.synapse("a", "h1").regularizer = gn.regularizers.L2(0.1)
    x, y = dag_data(rng, 40)
    w = rng.random(40)
    per_output = {"aux": w, "main": 1.0 + w}
    for weights, lazy in ((w, da.from_array(w, chunks=7)),
                          (per_output, {"aux": da.from_array(w, chunks=9), "main": 1.0 + w})):
        expected = g.evaluate(x, y, sample_weight=weights)
        got = g.evaluate(_lazy(x, 11), _lazy(y, 11), sample_weight=lazy)
        assert list(got) == list(expected)
        for key in expected:
            assert got[key] == pytest.approx(expected[key], rel=1e-12)
    with pytest.raises(gn.GraphError, match="weights must be finite and >= 0"):
        g.evaluate(_lazy(x, 11), y, sample_weight=da.from_array(-w, chunks=7))


def test_evaluate_checks_every_chunk(rng):
    g = build_dag()
    x, y = dag_data(rng, 20)
    lazy_x = _lazy(x, 6)
    bad = y["aux"].copy()
    bad[17] = 7  # a label out of range in the last chunk
    with pytest.raises(gn.ShapeError, match="aux"):
        g.evaluate(lazy_x, {"aux": da.from_array(bad, chunks=6), "main": y["main"]})
    with_nan = x["a"].copy()
    with_nan[13, 2] = np.nan
    with pytest.raises(gn.ShapeError, match="input 'a' contains 1 NaN"):
        g.evaluate({**lazy_x, "a": da.from_array(with_nan, chunks=(6, 5))}, y)
    with pytest.raises(gn.ShapeError, match=r"output 'main': expected targets of shape \(n, 2\)"):
        g.evaluate(lazy_x, {"aux": y["aux"], "main": da.from_array(y["main"][:, :1])})
    with pytest.raises(gn.ShapeError, match="the data has no rows"):
        g.evaluate(_lazy({k: v[:0] for k, v in x.items()}, 1), {k: v[:0] for k, v in y.items()})


def test_import_graphnet_imports_no_dask():
    code = ("import sys, graphnet; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_device_graph_predicts_on_dask_from_a_cpu_snapshot(rng, standin):
    """The workers run a CPU copy of a device graph: the same predictions,
    and the graph itself stays on its device."""
    g = build_dag(dtype="float32").to("standin")
    x, y = dag_data(rng, 30)
    out = g.predict(_lazy(x, 8))
    expected = g.predict(x)
    for name in ("aux", "main"):
        np.testing.assert_allclose(out[name].compute(scheduler="sync"), expected[name], rtol=1e-6, atol=1e-7)
    assert g.device == "standin"
    logs = g.evaluate(_lazy(x, 8), _lazy({k: np.asarray(v) for k, v in y.items()}, 8))
    assert logs["loss"] == pytest.approx(g.evaluate(x, y)["loss"], rel=1e-6)


def test_distributed_fit_refuses_a_device_graph_by_name(standin):
    g = build_dag(dtype="float32").to("standin")
    with pytest.raises(gn.GraphError, match=r"graph 'dag' is on device 'standin'.*to\('cpu'\)"):
        gn.distributed.fit(g, np.zeros((4, 5)), np.zeros((4, 2)), client=None)


def test_unknown_row_lengths_beside_known_ones_are_matched_block_for_block():
    """A filtered dask array (row lengths unknown) beside a plain one: the
    blocks are matched by position (issue 29, item 19: dask's bare ValueError)."""
    g = gn.Graph(seed=0)
    g.add_input("a", 2)
    g.add_input("b", 2)
    g.add_output("y", 1)
    g.connect(["a", "b"], "y")
    a = da.from_array(np.arange(20.0).reshape(10, 2), chunks=5)
    b = da.from_array(np.ones((10, 2)), chunks=5)
    b = b[b[:, 0] > 0]  # unknown lengths: (nan, nan)
    lazy = g.predict({"a": a, "b": b})
    # float32 rows in blocks of 5 against one block of 10: BLAS may round them one ulp apart.
    np.testing.assert_allclose(lazy.compute(), g.predict({"a": a.compute(), "b": b.compute()}), rtol=1e-6, atol=1e-7)
    other = da.from_array(np.ones((10, 2)), chunks=3)
    other = other[other[:, 0] > 0]  # four blocks against two
    with pytest.raises(gn.ShapeError, match="rows of unknown length cannot be matched up"):
        g.predict({"a": a, "b": other})


def test_evaluate_names_the_block_whose_targets_it_refuses_and_unknown_outputs_at_the_call():
    """A block's message counts that block's rows (from its first); it says
    which block, so its numbers are not read as the whole array's."""
    g = gn.Graph(name="g", seed=0)
    g.add_input("x", 2)
    g.add_output("y", 1)
    g.connect("x", "y")
    y = np.zeros((8, 1))
    y[6:] = np.nan
    with dask.config.set(scheduler="synchronous"), pytest.raises(
        gn.ShapeError, match=r"^evaluate: block 2 of 2 of the dask arrays \(rows counted from its first\): output "
                             r"'y': targets contain NaN or inf: 2 value\(s\) in 2 row\(s\), the first row 2"):
        g.evaluate(da.from_array(np.zeros((8, 2)), chunks=(4, 2)), da.from_array(y, chunks=(4, 1)))
    with pytest.raises(gn.NotFoundError, match=r"^evaluate: sample_weight names unknown outputs \['z'\]"):
        g.evaluate(da.from_array(np.zeros((8, 2)), chunks=(4, 2)), da.from_array(np.zeros((8, 1)), chunks=(4, 1)),
                   sample_weight={"z": da.ones(8, chunks=4)})  # at the call, before any block is computed


@pytest.mark.parametrize("dtype", [str, object])
def test_evaluate_on_dask_takes_text_labels_as_numpy_does_and_refuses_unknown_ones_naming_the_output(dtype):
    """Targets of an output with classes may be its labels (text or objects):
    each block's labels become codes, as numpy targets do."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    labels = np.where(x[:, 0] > 0, "pos", "neg").astype(dtype)
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 3)
    g.add_output("y", 2, activation="softmax", loss="categorical_crossentropy", classes=["neg", "pos"])
    g.connect("x", "y")
    with dask.config.set(scheduler="synchronous"):
        got = g.evaluate(da.from_array(x, chunks=10), da.from_array(labels, chunks=10), metrics=["accuracy"])
        assert got == pytest.approx(g.evaluate(x, labels, metrics=["accuracy"]))
        labels[35] = "maybe"
        with pytest.raises(gn.ShapeError, match=r"block 4 of 4 .*targets of output 'y': 1 label\(s\) not among"):
            g.evaluate(da.from_array(x, chunks=10), da.from_array(labels, chunks=10))
    ints = gn.Graph(seed=0)
    ints.add_input("x", 3)
    ints.add_output("y", 2, activation="softmax", loss="categorical_crossentropy", classes=[10, 20])
    ints.connect("x", "y")
    text = np.where(x[:, 0] > 0, "20", "10").astype(dtype)  # integer classes given as text: said as such
    with pytest.raises(gn.ShapeError, match=r"targets of output 'y': the classes are integers but the labels are "
                                            r"(values of dtype <U2|str values such as '[12]0'); give it as integer"):
        ints.evaluate(da.from_array(x, chunks=10), da.from_array(text, chunks=10))


def test_predict_labels_on_dask_is_lazy_and_equals_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 3)
    g.add_output("y", 2, activation="softmax", loss="categorical_crossentropy", classes=["neg", "pos"])
    g.add_output("z", 1, activation="sigmoid", loss="binary_crossentropy", classes=[10, 20])
    g.connect("x", "y")
    g.connect("x", "z")
    got = g.predict_labels(da.from_array(x, chunks=10))
    assert all(isinstance(v, da.Array) for v in got.values())
    with dask.config.set(scheduler="synchronous"):
        computed = dask.compute(got)[0]
    for name, expected in g.predict_labels(x).items():
        np.testing.assert_array_equal(computed[name], expected)
        assert computed[name].dtype == expected.dtype
