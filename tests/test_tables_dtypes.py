"""The column types a pandas or polars user actually has (SPEC 15): integer IDs
beyond float64's 2**53, bools, values no category can be, a LazyFrame, and the
estimators' tables with awkward column names; checked against scikit-learn's
encoders where a truth exists."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest
from sklearn.preprocessing import OrdinalEncoder

import graphnet as gn
from graphnet.sklearn import GraphNetClassifier, GraphNetRegressor

IDS = [1500000000000000001, 1500000000000000002, 1500000000000000003]


def categorical(categories="adapt"):
    g = gn.Graph(seed=0)
    g.add_input("v", categories=categories)
    g.add_output("y", 1)
    g.connect("v", "y")
    return g


def codes(g, frame):
    """Each row's code: the column of its one-hot row (what predict shows of a categorical input)."""
    rows = g.predict(frame, outputs=["v"])["v"]
    assert ((rows == 0) | (rows == 1)).all() and (rows.sum(axis=1) == 1).all()
    return rows.argmax(axis=1).tolist()


@pytest.mark.parametrize("frame", [
    pd.DataFrame({"v": pd.array(IDS + [None], dtype="Int64")}),
    pl.DataFrame({"v": IDS + [None]}),
], ids=["pandas Int64", "polars Int64"])
def test_integer_ids_with_a_missing_value_keep_every_digit(frame):
    g = categorical().adapt(frame)
    assert g.nodes["v"].categories == tuple(IDS)
    expected = OrdinalEncoder().fit(np.array(IDS, dtype=object).reshape(-1, 1)).transform(
        np.array(IDS, dtype=object).reshape(-1, 1)).ravel() + 1
    assert codes(g, frame) == [*expected.astype(int).tolist(), 0]
    assert codes(categorical(IDS), frame) == [1, 2, 3, 0]


def test_integer_ids_as_a_numeric_input_are_read_as_numbers():
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("v", 1, missing="mean")
    g.add_output("y", 1)
    g.connect("v", "y")
    frame = pd.DataFrame({"v": pd.array(IDS + [None], dtype="Int64")})
    g.adapt(frame)
    assert np.isclose(g.nodes["v"].mean[0], np.mean(np.array(IDS, dtype=np.float64)))
    assert np.isfinite(g.predict(frame)).all()


@pytest.mark.parametrize("column", [
    pd.array([2**63 + 5, 1, None], dtype="UInt64"),
    np.array([2**63 + 5, 1], dtype=np.uint64),
    pd.Series([2**70, 1, 2], dtype=object),
], ids=["UInt64 with NA", "numpy uint64", "python int"])
def test_integers_beyond_int64_are_refused_by_adapt_naming_the_column(column):
    g = categorical()
    with pytest.raises(gn.GraphError, match=r"input 'v' \(column 'v'\).*integers beyond int64"):
        g.adapt(pd.DataFrame({"v": column}))
    assert g.nodes["v"].categories == "adapt"


def test_integers_beyond_int64_at_predict_time_are_unknown():
    g = categorical([1, 2])
    frame = pd.DataFrame({"v": np.array([2**63 + 1, 1, 2, 2**64 - 1], dtype=np.uint64)})
    assert codes(g, frame) == [0, 1, 2, 0]
    assert codes(g, pd.DataFrame({"v": pd.Series([2**70, 2], dtype=object)})) == [0, 2]
    assert codes(g, pd.DataFrame({"v": [1.0, 2.5, 2.0**63, -2.0**64]})) == [1, 0, 0, 0]


def test_the_extremes_of_int64_stay_apart():
    frame = pd.DataFrame({"v": pd.array([2**63 - 1, -2**63, 0, None], dtype="Int64")})
    g = categorical().adapt(frame)
    assert g.nodes["v"].categories == (-2**63, 0, 2**63 - 1)
    assert codes(g, frame) == [3, 1, 2, 0]


def test_explicit_categories_beyond_int64_or_ending_with_nul_are_refused():
    with pytest.raises(gn.GraphError, match="within int64.*got 18446744073709551616"):
        categorical([1, 2**64])
    with pytest.raises(gn.GraphError, match="must not end with the NUL character"):
        categorical(["a", "a\x00"])


def test_strings_ending_with_nul_never_merge_with_others():
    with pytest.raises(gn.GraphError, match=r"strings ending with the NUL character such as 'a\\x00'"):
        categorical().adapt(pd.DataFrame({"v": ["a", "a\x00", "b"]}))
    g = categorical(["a", "b"])
    assert codes(g, pd.DataFrame({"v": ["a", "a\x00", "b", "\x00"]})) == [1, 0, 2, 0]


@pytest.mark.parametrize("frame", [
    pd.DataFrame({"v": pd.array([True, False, None], dtype="boolean")}),
    pd.DataFrame({"v": pd.Categorical([True, False, None])}),
    pl.DataFrame({"v": [True, False, None]}),
    pl.DataFrame({"v": [True, False, True]}),
], ids=["pandas boolean", "pandas category of bools", "polars Boolean with null", "polars Boolean"])
def test_boolean_columns_are_categories_0_and_1_whatever_the_library(frame):
    g = categorical().adapt(frame)
    assert g.nodes["v"].categories == (0, 1)
    assert codes(g, frame)[:2] == [2, 1]


def test_a_column_of_dates_is_refused_by_adapt_saying_what_categories_are():
    g = categorical()
    with pytest.raises(gn.ShapeError, match=r"categories must be strings or integers, but the column holds "
                                            r"Timestamp values"):
        g.adapt(pd.DataFrame({"v": pd.date_range("2020", periods=3)}))
    with pytest.raises(gn.ShapeError, match="all strings or all integers.*strings and int values such as 1"):
        g.adapt(pd.DataFrame({"v": pd.Series(["a", 1], dtype=object)}))


@pytest.mark.parametrize("call", ["adapt", "predict", "fit", "evaluate"])
def test_a_lazy_frame_is_refused_saying_to_collect(call):
    plain = gn.Graph(seed=0)
    plain.add_input("v", 1)
    plain.add_output("y", 1)
    plain.connect("v", "y")
    lazy = pl.DataFrame({"v": [1.0, 2.0], "y": [0.0, 1.0]}).lazy()
    graphs = (plain, categorical(["a", "b"])) if call != "adapt" else (categorical(),)  # adapt reads what adapts
    for g in graphs:
        args = (lazy,) if call in ("adapt", "predict") else (lazy, {"y": np.zeros(2)})
        with pytest.raises(gn.ShapeError, match=r"polars LazyFrame.*frame\.collect\(\)"):
            getattr(g, call)(*args)


@pytest.mark.parametrize("name", ["output", "dense", "dense_1", "numbers", "output_"])
@pytest.mark.parametrize("Estimator", [GraphNetRegressor, GraphNetClassifier])
def test_estimators_take_a_categorical_column_named_like_their_network_s_nodes(name, Estimator, rng):
    X = pd.DataFrame({name: rng.choice(["a", "b"], 30), "output": rng.choice(["c", "d"], 30),
                      "z": rng.normal(size=30)})
    y = X["z"].to_numpy() > 0 if Estimator is GraphNetClassifier else X["z"].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Estimator(max_iter=2, hidden_layer_sizes=(3, 3), random_state=0).fit(X, y)
    shuffled = X[X.columns[::-1]]
    np.testing.assert_array_equal(model.predict(shuffled), model.predict(X))
    # the fitted graph reads the same table by itself, each column bound by its name
    column = X[[name]].assign(**{name: X[name].where(X[name] == "a", "unseen")})
    assert model.graph_.predict(X.assign(**{name: column[name]})).shape[0] == 30


@pytest.mark.parametrize("Estimator", [GraphNetRegressor, GraphNetClassifier])
def test_estimators_refuse_a_table_with_a_column_named_twice_or_unnamed(Estimator):
    X = pd.DataFrame({"a": np.arange(10.0), "c": list("xyxyxyxyxy")})
    y = np.arange(10) % 2
    with pytest.raises(ValueError, match="X has 2 columns named 'a'"):
        Estimator(max_iter=1).fit(pd.concat([X, X[["a"]]], axis=1), y)
    with pytest.raises(ValueError, match="named '' "):
        Estimator(max_iter=1).fit(X.rename(columns={"c": ""}), y)


def test_estimators_name_the_column_holding_text_where_numbers_were_fitted():
    X = pd.DataFrame({"a": np.arange(10.0), "c": list("xyxyxyxyxy")})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GraphNetRegressor(max_iter=1).fit(X, np.arange(10.0))
    with pytest.raises(gn.ShapeError, match=r"column 'a' is numeric but holds 'abc' \(row 0\)"):
        model.predict(X.assign(a="abc"))


@pytest.mark.parametrize("column", [pd.period_range("2020", periods=6, freq="D"),
                                    pd.interval_range(0, 6)], ids=["period", "interval"])
def test_estimators_refuse_periods_and_intervals_naming_the_column(column):
    X = pd.DataFrame({"x": np.arange(6.0), "p": column, "c": list("ababab")})
    with pytest.raises(ValueError, match="X's column 'p' has dtype .*cannot read"):
        GraphNetRegressor(max_iter=1).fit(X, np.arange(6.0))


@pytest.mark.parametrize("frame", [
    pd.DataFrame({"x": pd.array([2**60, 2**60 + 2, None], dtype="Int64")}),
    pl.DataFrame({"x": [2**60, 2**60 + 2, None]}),
], ids=["pandas Int64", "polars Int64"])
def test_large_integers_with_a_missing_value_are_still_numbers_to_a_numeric_input(frame):
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x")
    g.add_output("y", 1)
    g.connect("x", "y")
    with pytest.raises(gn.ShapeError, match=r"input 'x' contains 1 NaN .*column 'x' \(1 row\)"):
        g.predict(frame)
    with pytest.raises(gn.ShapeError, match="output 'y': targets contain NaN"):
        g.evaluate({"x": np.ones(3)}, frame["x"])
    imputing = gn.Graph(seed=0, dtype="float64")
    imputing.add_input("x", missing="mean", normalize=True)
    imputing.add_output("y", 1)
    imputing.connect("x", "y")
    imputing.adapt(frame)
    assert imputing.nodes["x"].mean[0] == pytest.approx(2.0**60 + 1)


@pytest.mark.parametrize("name", [" ", "x->y", "a\nb", "\t"])
def test_estimators_take_a_categorical_column_whose_name_cannot_name_a_node(name, rng):
    X = pd.DataFrame({name: rng.choice(["a", "b"], 30), "k": rng.normal(size=30)})
    y = X["k"].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GraphNetRegressor(max_iter=2, random_state=0).fit(X, y)
    assert list(model.feature_names_in_) == [name, "k"]
    np.testing.assert_array_equal(model.predict(X[["k", name]]), model.predict(X))
    np.testing.assert_array_equal(model.graph_.predict(X).ravel(), model.predict(X))


def test_estimators_ignore_extra_columns_named_twice_or_unnamed_at_predict(rng):
    X = pd.DataFrame({"c": rng.choice(["a", "b"], 30), "k": rng.normal(size=30)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GraphNetRegressor(max_iter=2, random_state=0).fit(X, X["k"].to_numpy())
    expected = model.predict(X)
    twice = pd.concat([X, pd.DataFrame({"note": ["x"] * 30}), pd.DataFrame({"note": ["y"] * 30})], axis=1)
    np.testing.assert_array_equal(model.predict(twice), expected)
    np.testing.assert_array_equal(model.predict(X.assign(**{"": 1.0})), expected)
    with pytest.raises(ValueError, match="X has 2 columns named 'c'"):
        model.predict(pd.concat([X, X[["c"]]], axis=1))


@pytest.mark.parametrize("settings", [{"normalize": True}, {"normalize": True, "missing": "indicator"},
                                      {"categories": ["a", "b"]}], ids=["normalize", "indicator", "categories"])
def test_predict_and_evaluate_preprocess_a_chunk_at_a_time(settings, rng):
    """Memory grows with the chunk, not with the rows (predict's docstring):
    inputs that preprocess were transformed whole, in float64, first (3.5 to
    7 times the data at 400,000 rows)."""
    import tracemalloc

    g = gn.Graph(seed=0)
    g.add_input("x", None if "categories" in settings else 4, **settings)
    g.add_output("y", 1)
    g.connect("x", "y")
    make = (lambda n: rng.choice(np.array(["a", "b", "c"], dtype=object), n)) if "categories" in settings \
        else (lambda n: rng.normal(size=(n, 4)).astype(np.float32))
    if "categories" not in settings:
        g.adapt({"x": make(1000)})
    peaks = []
    for n in (50_000, 200_000):
        x, y = make(n), rng.normal(size=n).astype(np.float32)
        tracemalloc.start()
        predicted = g.predict(x, batch_size=1024)
        g.evaluate(x, y, batch_size=1024)
        peaks.append(tracemalloc.get_traced_memory()[1] - predicted.nbytes)
        tracemalloc.stop()
        np.testing.assert_array_equal(predicted, g.predict(x, batch_size=n))  # the same numbers, whole
    assert peaks[1] < peaks[0] * 1.5 + 1e6, peaks  # 4 times the rows, not 4 times the memory


def test_a_chunk_refused_is_refused_as_every_row_would_be(rng):
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 2, normalize=True)
    g.add_output("y", 1)
    g.connect("x", "y")
    x = rng.normal(size=(20_000, 2))
    g.adapt({"x": x})
    x[[5, 9000, 15000], 0] = np.nan
    messages = set()
    for batch_size in (None, 1000, 20_000):
        for call in (lambda: g.predict(x, batch_size=batch_size),
                     lambda: g.evaluate(x, np.zeros(20_000), batch_size=batch_size)):
            with pytest.raises(gn.ShapeError, match=r"column 0 \(3 rows\)") as caught:
                call()
            messages.add(str(caught.value))
    assert len(messages) == 1


def test_a_chunked_call_names_the_shape_of_every_row():
    g = gn.Graph(seed=0)
    g.add_input("a", 2, normalize=True)
    g.add_output("y", 1)
    g.connect("a", "y")
    g.adapt({"a": np.random.default_rng(0).normal(size=(20, 2))})
    for batch_size in (None, 5):
        with pytest.raises(gn.ShapeError, match=r"expected shape \(n, 2\), got \(20, 3\)"):
            g.predict({"a": np.zeros((20, 3))}, batch_size=batch_size)
        with pytest.raises(gn.ShapeError, match=r"expected shape \(n, 2\), got \(20, 3\)"):
            g.evaluate({"a": np.zeros((20, 3))}, np.zeros(20), batch_size=batch_size)


def test_text_against_integer_categories_is_a_shape_error_naming_the_column():
    g = categorical().adapt(pd.DataFrame({"v": [3, 5, 7]}))
    for frame in (pd.DataFrame({"v": ["a", "b"]}), pl.DataFrame({"v": ["a", "b"]}),
                  pd.DataFrame({"v": pd.Series(["a", 3], dtype=object)}),
                  pd.DataFrame({"v": pd.Series([0.5, "a"], dtype=object)})):  # the text is named, not the fraction
        with pytest.raises(gn.ShapeError, match=r"input 'v' \(column 'v'\): the categories are integers but the column holds .*'a'"):
            g.predict(frame)
    with pytest.raises(gn.ShapeError, match="column 'v'"):
        gn.interop.onnx_feed(g, pd.DataFrame({"v": ["a", "b"]}))


def test_a_fraction_is_unknown_whatever_the_column_s_dtype():
    g = categorical([1, 2])
    for column in ([0.5, 1.0, 2.0, float("inf")], pd.Series([0.5, 1, 2.0, float("inf")], dtype=object)):
        assert codes(g, pd.DataFrame({"v": column})) == [0, 1, 2, 0]


def test_text_in_a_plain_input_s_column_is_named_with_its_row_and_value():
    g = gn.Graph(seed=0)
    g.add_input("n", columns=["alpha", "beta"])
    g.add_output("y", 1)
    g.connect("n", "y")
    frame = pd.DataFrame({"alpha": [1.0, 2.0, 3.0], "beta": pd.Series([1.0, "oops", 3.0], dtype=object)})
    with pytest.raises(gn.ShapeError, match=r"input 'n': column 'beta' is numeric but holds 'oops' \(row 1\)"):
        g.predict(frame)
