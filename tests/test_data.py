"""Bad data raises ShapeError (a ValueError) naming the node and both shapes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import build_dag, dag_data

import graphnet as gn
from graphnet import GraphError, ShapeError


@pytest.fixture
def data(rng):
    return dag_data(rng, rows=6)


def test_shape_error_is_a_value_error():
    assert issubclass(ShapeError, ValueError)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda x: x.pop("b"), r"missing inputs \['b'\]"),
        (lambda x: x.update(c=np.zeros((6, 2))), r"unknown names \['c'\]"),
        (lambda x: x.update(a=np.zeros((6, 4))), r"input 'a': expected shape \(n, 5\), got \(6, 4\)"),
        (lambda x: x.update(a=np.zeros(5)), r"input 'a': expected shape \(n, 5\), got \(5,\); for a single sample use x.reshape\(1, -1\)"),
        (lambda x: x.update(b=np.zeros((5, 3))), r"rows disagree: input 'a' has 6 rows but input 'b' has 5"),
        (lambda x: x["a"].__setitem__((2, 3), np.nan), r"input 'a' contains 1 NaN or inf"),
        (lambda x: x["b"].__setitem__((0, 0), np.inf), r"input 'b' contains 1 NaN or inf"),
        (lambda x: x.update(a=np.array([["x"] * 5] * 6)), r"input 'a': expected numbers, got an array of dtype <U1"),
    ],
)
@pytest.mark.parametrize("call", ["predict", "evaluate", "fit", "gradients"])
def test_bad_inputs(data, change, message, call):
    x, y = data
    change(x)
    g = build_dag()
    before = g.get_weights()
    with pytest.raises(ShapeError, match=message):
        if call == "predict":
            g.predict(x)
        elif call == "fit":
            g.fit(x, y, verbose=0)
        else:
            getattr(g, call)(x, y)
    assert all(np.array_equal(before[k], v) for k, v in g.get_weights().items())


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda y: y.pop("main"), r"missing outputs \['main'\]"),
        (lambda y: y.update(main=np.zeros((6, 3))), r"output 'main': expected targets of shape \(n, 2\), got \(6, 3\)"),
        (lambda y: y.update(main=np.zeros((4, 2))), r"rows disagree: input 'a' has 6 rows but targets of output 'main' has 4"),
        (lambda y: y.update(aux=np.array([0, 1, 2, 3, 0, 1])), r"output 'aux': class labels must lie in \[0, 3\)"),
        (lambda y: y["main"].__setitem__((1, 1), np.nan),
         r"output 'main': targets contain NaN or inf: 1 value\(s\) in 1 row\(s\), the first row 1 \(1 NaN, 0 inf\)"),
    ],
)
def test_bad_targets(data, change, message):
    x, y = data
    change(y)
    with pytest.raises(ShapeError, match=message):
        build_dag().fit(x, y, verbose=0)


def test_multi_input_data_must_be_keyed_by_name(data):
    x, _ = data
    with pytest.raises(ShapeError, match=r"this graph has 2 inputs \['a', 'b'\]: pass a dict keyed by input name, not a list"):
        build_dag().predict([x["a"], x["b"]])


def test_single_input_and_output_take_plain_arrays_and_1d_columns(rng):
    g = gn.Graph(seed=0)
    g.add_input("x", 1)
    g.add_output("y", 1)
    g.connect("x", "y")
    x = rng.normal(size=10)
    pred = g.predict(x)
    assert pred.shape == (10, 1)
    np.testing.assert_array_equal(pred, g.predict({"x": x.reshape(-1, 1)}))
    g.fit(x, 2 * x, epochs=2, verbose=0)
    g.fit(x.tolist(), (2 * x).tolist(), epochs=1, verbose=0)  # lists work too


def test_data_is_matched_by_name_not_position(data):
    x, _ = data
    g = build_dag()
    reordered = {"b": x["b"], "a": x["a"]}
    first, second = g.predict(x), g.predict(reordered)
    assert all(np.array_equal(first[k], second[k]) for k in first)


def test_empty_data(data):
    x, y = data
    g = build_dag()
    empty = {k: v[:0] for k, v in x.items()}
    assert g.predict(empty)["main"].shape == (0, 2)
    with pytest.raises(ShapeError, match="no rows"):
        g.fit(empty, {k: v[:0] for k, v in y.items()}, verbose=0)


def test_data_for_a_graph_without_outputs_gets_validates_message():
    g = gn.Graph(name="half")
    g.add_input("x", 3)
    x = np.zeros((4, 3))
    for call in (lambda: g.fit(x, x[:, :1], verbose=0), lambda: g.evaluate(x, x[:, :1]),
                 lambda: g.gradients(x, x[:, :1])):
        with pytest.raises(gn.GraphError, match=r"^graph 'half' cannot run: it has no Output node") as info:
            call()
        assert "pass a dict" not in str(info.value)


def test_the_missing_hint_is_for_nan_and_inf_is_never_missing():
    x, _ = dag_data(np.random.default_rng(0), rows=6)
    g = build_dag()
    x["a"][0, 1] = np.inf
    with pytest.raises(ShapeError) as info:
        g.predict(x)
    assert "all inf; inf is never a missing value" in str(info.value) and "missing='mean'" not in str(info.value)
    x["a"][2, 1] = x["a"][3, 1] = np.nan
    with pytest.raises(ShapeError, match=r"in column 1 \(3 rows\): 2 NaN and 1 inf; .*missing='mean'.*; inf is never"):
        g.predict(x)
    x["a"][0, 1] = 0.0
    with pytest.raises(ShapeError, match=r"all NaN; an input that reads a table may fill NaN") as info:
        g.predict(x)
    assert "inf is never" not in str(info.value)


def test_an_input_that_fills_nan_names_a_column_of_inf_by_its_index():
    g = gn.Graph(seed=0)
    g.add_input("x", 3, missing="mean")
    g.add_output("y", 1)
    g.connect("x", "y")
    x = np.random.default_rng(0).normal(size=(8, 3))
    g.adapt({"x": x})
    x[0, 2] = np.inf
    with pytest.raises(ShapeError, match=r"^input 'x': column 2 holds 1 infinite value\(s\); inf is never a missing"):
        g.predict(x)


def test_every_message_about_an_inputs_column_calls_it_alike():
    """A one-column input's column is called by the input's name (the frame
    column it is bound to), a wider unnamed one's by its index: by predict,
    by an input that fills NaN, and by adapt."""
    for missing in ("error", "mean"):
        g = gn.Graph(seed=0)
        g.add_input("a", 1, missing=missing)
        g.add_output("y", 1)
        g.connect("a", "y")
        if missing == "mean":
            g.adapt(np.zeros((6, 1)))
        x = np.zeros((6, 1))
        x[1, 0] = np.inf
        with pytest.raises(ShapeError, match=r"column 'a' (\(1 row\)|holds)"):
            g.predict(x)
    g = gn.Graph(seed=0)
    g.add_input("a", 2, missing="mean")
    g.add_output("y", 1)
    g.connect("a", "y")
    x = np.zeros((6, 2))
    x[1, 1] = np.inf
    with pytest.raises(ShapeError, match=r"^input 'a': column 1 holds inf"):
        g.adapt(x)
    x[:, 1] = np.nan
    with pytest.raises(GraphError, match=r"^input 'a': column 1 has no values to adapt from"):
        g.adapt(x)


@pytest.mark.parametrize("data", ["array", "frame", "too large"])
def test_predict_counts_every_row_holding_nan_not_the_first_chunks(data):
    """predict checks its data a chunk at a time; its message counts every
    row, as evaluate's does (it said 4096 of 10,000)."""
    g = gn.Graph(seed=0)
    g.add_input("x", 3, columns=["p", "q", "r"] if data == "frame" else None)
    g.add_output("y", 1)
    g.connect("x", "y")
    x = np.ones((10_000, 3))
    x[:, 1] = 1e300 if data == "too large" else np.nan
    x[9_999, 2] = 1e300 if data == "too large" else np.inf
    if data == "frame":
        x = pytest.importorskip("pandas").DataFrame(x, columns=["p", "q", "r"])
    where = "columns 'q' (10000 rows), 'r' (1 row)" if data == "frame" else "columns 1 (10000 rows), 2 (1 row)"
    counted = "holds 10001 value(s) too large" if data == "too large" else "contains 10001 NaN or inf value(s)"
    for call in (lambda: g.predict(x, batch_size=1000), lambda: g.predict(x),
                 lambda: g.evaluate(x, np.ones((10_000, 1)))):
        with pytest.raises(ShapeError) as info:
            call()
        assert counted in str(info.value) and where in str(info.value)
    if data != "too large":
        assert "10000 NaN and 1 inf" in str(info.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_predict_and_fit_still_refuse_non_finite_inputs(bad):
    rng = np.random.default_rng(7)
    model = gn.Sequential([gn.Input(6), gn.Dense(3, activation="softmax")], seed=1)
    x, y = rng.normal(size=(64, 6)).astype(np.float32), rng.integers(0, 3, size=64)
    x[37, 4] = bad
    with pytest.raises(gn.ShapeError, match="1 NaN or inf"):
        model.predict(x, batch_size=16)  # in the third chunk
    with pytest.raises(gn.ShapeError, match="NaN or inf"):
        model.fit(x, y, epochs=1, verbose=0)


def test_huge_but_finite_inputs_are_not_refused(recwarn):
    """Row sums that overflow only trigger the exact check, which passes quietly."""
    from graphnet._validation import check_finite

    check_finite(np.full((5, 4), 3e38, np.float32), "input", "x")
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
    with pytest.raises(gn.ShapeError, match="input 'x' contains 1 NaN"):
        check_finite(np.array([[3e38, 3e38], [np.nan, 0]], np.float32), "input", "x")


def test_a_finite_value_whose_normalised_value_is_finite_is_taken_where_x_minus_mean_overflows():
    """(-1.5e308 - 3.3e307) overflows, its quotient by the std (-1.94) does not:
    it was refused as data holding inf, with numpy's overflow warning."""
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 1, normalize=True)
    g.add_output("y", 1)
    g.connect("x", "y")
    g.adapt(np.array([[1e308], [1e308], [-1e308]]))
    mean, std = g.nodes["x"].mean, g.nodes["x"].std
    x = np.array([[-1.5e308], [3.0], [1.7e308]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = g.predict(x, outputs=["x"])["x"]
    np.testing.assert_allclose(got, x / std - mean / std, rtol=1e-15)
    others = np.random.default_rng(0).uniform(-1, 1, size=(50, 1)) * 8e307
    alone = g.predict(others, outputs=["x"])["x"]
    np.testing.assert_array_equal(g.predict(np.vstack([others, x]), outputs=["x"])["x"][:50], alone)  # bit for bit
    g.adapt(np.array([[0.0], [1.0]]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(gn.ShapeError, match=r"input 'x': normalising gives 1 value\(s\) beyond float64's range "
                                                r"\(\(value - mean\) / std\), the first in column 'x'; the mean 0.5 "
                                                r"and std 0.5 that adapt learned do not fit this data"):
            g.predict(np.array([[1.0], [1.7e308]]))
