"""Categorical inputs in ONNX (SPEC section 15): whatever the categories, a
missing value fed by ``onnx_feed`` (or by hand, as the model's
``metadata_props`` says) gets code 0 in onnxruntime, as in ``predict``."""

from __future__ import annotations

import numpy as np
import pytest

import graphnet as gn
from graphnet.interop import onnx_feed
from graphnet.interop._onnx_tabular import MISSING_KEY, missing_value

pd = pytest.importorskip("pandas")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

LOW, HIGH = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)


def category_graph(categories):
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("c", categories=categories)
    g.add_output("y", 3)
    g.connect("c", "y")
    return g


def session(g, path):
    model = g.to_onnx(path)
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]), model


# categories, a column with categories, missing and unknown rows, and which rows are missing
CASES = {
    "empty string a category": (["", "a", "b"], np.array(["", None, "a", "zz", np.nan, "b"], dtype=object),
                                [1, 4]),
    "the fallback string a category too": (["", "<missing>", "a"],
                                           np.array(["<missing>", None, "", "q"], dtype=object), [1]),
    "-1 a category, NaN in floats": ([-1, 0, 1], np.array([-1.0, np.nan, 0.0, 5.0, 1.0, np.nan]), [1, 5]),
    "-1 a category, None in objects": ([-1, 0, 1], np.array([None, -1, 1, 42], dtype=object), [0]),
    "-1 and int64's ends categories": ([LOW, -1, 3, HIGH], np.array([LOW, None, HIGH, -1, 3, 7], dtype=object),
                                       [1]),
    "pandas' NA in a string column": (["", "a"], pd.array(["a", pd.NA, "", "q"], dtype="string"), [1]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_missing_rows_predict_alike_in_onnxruntime_whatever_the_categories(tmp_path, case):
    categories, column, missing = CASES[case]
    g = category_graph(categories)
    frame = pd.DataFrame({"c": column})
    expected = g.predict(frame)
    unknown = g.predict(pd.DataFrame({"c": [None]}))[0]
    assert np.allclose(expected[missing], unknown)  # missing rows take code 0 in graphnet...
    first = next(i for i in range(len(column)) if i not in missing)
    assert not np.allclose(expected[first], unknown)  # ...which a category's row does not

    run, _ = session(g, tmp_path / "c.onnx")
    got = run.run(None, onnx_feed(g, frame))[0]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("case", list(CASES))
def test_the_model_names_the_missing_value_for_feeding_by_hand(tmp_path, case):
    categories, column, missing = CASES[case]
    g = category_graph(categories)
    run, model = session(g, tmp_path / "c.onnx")
    text = {p.key: p.value for p in model.metadata_props}[MISSING_KEY + "c"]
    assert run.get_modelmeta().custom_metadata_map[MISSING_KEY + "c"] == text
    feed = onnx_feed(g, pd.DataFrame({"c": column}))["c"].ravel()
    assert [str(feed[i]) for i in missing] == [text] * len(missing)

    by_hand = np.array([text, categories[0], categories[-1]], dtype=object)
    if not isinstance(categories[0], str):
        by_hand = by_hand.astype(np.int64)
    got = run.run(None, {"c": by_hand.reshape(-1, 1)})[0]
    expected = g.predict(pd.DataFrame({"c": np.array([None, categories[0], categories[-1]], dtype=object)}))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_a_fraction_is_unknown_in_onnxruntime_as_in_predict(tmp_path):
    g = category_graph([0, 1, 2])
    frame = pd.DataFrame({"c": [0.5, 1.0, 2.9, np.nan]})  # 0.5 and 2.9 are no category (not 0 and 2)
    run, _ = session(g, tmp_path / "c.onnx")
    np.testing.assert_allclose(run.run(None, onnx_feed(g, frame))[0], g.predict(frame), rtol=0, atol=1e-5)


@pytest.mark.parametrize("categories, expected", [
    (["a", "b"], ""),
    (["", "a"], "<missing>"),
    (["<missing>", "", "<missing 2>"], "<missing 3>"),
    ([0, 5], -1),
    ([-1, 0, 1], -2),
    ([LOW, -1], 0),
    ([LOW, -1, 0, HIGH], LOW + 1),
    ([LOW, LOW + 1, -1, HIGH], LOW + 2),
    ([LOW, -1, HIGH - 1, HIGH], LOW + 1),
])
def test_the_missing_value_is_never_a_category(categories, expected):
    g = category_graph(categories)
    value = missing_value(g.nodes["c"])
    assert value == expected and value not in categories


def test_an_input_never_adapted_is_refused_as_by_predict():
    g = category_graph("adapt")
    with pytest.raises(gn.GraphError, match="adapt"):
        onnx_feed(g, pd.DataFrame({"c": ["a"]}))


def mixed_graph():
    g = gn.Graph(seed=0)
    g.add_input("x", 3)
    g.add_input("c", categories=["Lyon", "Oslo"])
    g.add_input("n", columns=["age", "income"], missing="mean")
    g.add_output("y", 1)
    g.connect(["x", "c", "n"], "y")
    g.adapt({"x": np.zeros((2, 3)), "c": np.array(["Lyon", "Oslo"]), "n": np.array([[1.0, 2.0], [3.0, 5.0]])})
    return g


BAD_FEEDS = {
    "a wrong feature count": ({"x": np.zeros((2, 5))}, gn.ShapeError),
    "None for an input": ({"x": None}, gn.ShapeError),
    "text in a plain input": ({"x": np.array([["a", "b", "c"]] * 2)}, gn.ShapeError),
    "text in a numeric column": ({"n": np.array([["1", "x"]] * 2, dtype=object)}, gn.ShapeError),
    "NaN in a plain input": ({"x": np.full((2, 3), np.nan)}, gn.ShapeError),
}


@pytest.mark.parametrize("case", list(BAD_FEEDS))
def test_the_data_is_checked_as_predict_checks_it(case):
    g = mixed_graph()
    good = {"x": np.zeros((2, 3)), "c": np.array(["Lyon", None], dtype=object),
            "n": np.array([[1.0, np.nan], [3.0, 4.0]])}
    change, error = BAD_FEEDS[case]
    data = {**good, **change}
    with pytest.raises(error) as predicted:
        g.predict(data)
    with pytest.raises(error) as fed:
        onnx_feed(g, data)
    assert str(fed.value) == str(predicted.value)


def test_a_graph_that_is_not_one_is_named():
    with pytest.raises(gn.GraphError, match="onnx_feed: graph must be a graphnet Graph, got NoneType"):
        onnx_feed(None, np.zeros((2, 3)))


def test_what_it_feeds_predicts_as_predict_an_empty_frame_too(tmp_path):
    g = mixed_graph()
    run, _ = session(g, tmp_path / "m.onnx")
    data = {"x": np.ones((3, 3)), "c": np.array([None, "Oslo", "Rome"], dtype=object),
            "n": np.array([[1.0, np.nan], [3.0, 4.0], [np.nan, 0.0]])}
    np.testing.assert_allclose(run.run(None, onnx_feed(g, data))[0], g.predict(data), rtol=1e-5)
    empty = {"x": np.zeros((0, 3)), "c": np.array([], dtype=object), "n": np.zeros((0, 2))}
    shapes = {name: array.shape for name, array in onnx_feed(g, empty).items()}
    assert shapes == {"x": (0, 3), "c": (0, 1), "n": (0, 2)} and g.predict(empty).shape == (0, 1)


@pytest.mark.parametrize("missing", ["error", "mean", "indicator"])
@pytest.mark.parametrize("centre, spread", [(1.7e9, 86400.0), (1e8, 10.0)])
def test_a_float32_graph_normalises_large_columns_in_double_in_onnxruntime_as_predict_does(
        tmp_path, missing, centre, spread):
    """Unix seconds in float32 lose their fraction: the model takes such
    columns as double, normalises them in double and then casts, as predict."""
    rng = np.random.default_rng(0)
    t = centre + rng.uniform(0, spread, 200)
    t[::17] = np.nan if missing != "error" else t[::17]
    frame = pd.DataFrame({"t": t, "u": rng.normal(size=200)})
    g = gn.Graph(seed=0)
    g.add_input("t", normalize=True, missing=missing)
    g.add_input("u", 1)
    g.add_output("y", 2)
    g.connect("t", "y")
    g.connect("u", "y")
    g.adapt(frame)
    path = str(tmp_path / "t.onnx")
    g.to_onnx(path)
    onnx.checker.check_model(onnx.load(path))
    feed = onnx_feed(g, frame)
    assert feed["t"].dtype == np.float64 and feed["u"].dtype == np.float32
    (out,) = ort.InferenceSession(path).run(None, feed)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, g.predict(frame), rtol=0, atol=1e-5)


@pytest.mark.parametrize("order", [("t", "p"), ("p", "t")])
def test_the_export_of_a_float32_graph_with_a_double_input_imports_as_float64(tmp_path, order):
    """A model with a double input imports as float64 whatever the order of
    its inputs (the last input's type won: float32 folded the normalisation
    of values near 1.7e9 into its weights and drifted by 1e-2)."""
    rng = np.random.default_rng(0)
    data = {"t": 1.7e9 + rng.normal(size=(20, 2)) * 1e3, "p": rng.normal(size=(20, 1))}
    g = gn.Graph(seed=0)
    for name in order:
        g.add_input(name, 2 if name == "t" else 1, normalize=name == "t")
    g.add_output("y", 1)
    g.connect(["t", "p"], "y")
    g.adapt(data)
    path = str(tmp_path / "o.onnx")
    g.to_onnx(path)
    again = gn.from_onnx(path)
    (out,) = ort.InferenceSession(path).run(None, onnx_feed(g, data))
    assert again.dtype == np.float64
    np.testing.assert_allclose(again.predict(data), out, rtol=0, atol=1e-5)
    np.testing.assert_allclose(again.predict(data), g.predict(data), rtol=0, atol=1e-5)
