"""Tables: frames bound by name, adapt, normalisation, imputation, categories
and class labels (SPEC section 15), checked against scikit-learn's
StandardScaler, SimpleImputer and OneHotEncoder on the same data."""

from __future__ import annotations

import numpy as np
import pytest

import graphnet as gn

pd = pytest.importorskip("pandas")


def table(rng, n=60):
    """Numbers with missing values, a text column with missing values, labels."""
    age = rng.normal(40, 10, n)
    age[rng.random(n) < 0.15] = np.nan
    income = rng.normal(5, 2, n)
    income[:3] = np.nan
    city = rng.choice(np.array(["paris", "lyon", "nice", None], dtype=object), n)
    label = rng.choice(["bad", "good", "ok"], n)
    return pd.DataFrame({"age": age, "income": income, "city": city, "label": label,
                         "unused": rng.normal(size=n)})


def tabular_graph(dtype="float64", missing="mean", normalize=True):
    g = gn.Graph(name="tab", seed=0, dtype=dtype)
    g.add_input("city", categories="adapt")
    g.add_input("numbers", columns=["age", "income"], normalize=normalize, missing=missing)
    g.add_hidden("h", 6, activation="tanh")
    g.add_output("label", 3, activation="softmax", loss="categorical_crossentropy", classes="adapt")
    g.connect(["city", "numbers"], "h")
    g.connect("h", "label")
    return g


# ------------------------------------------------------------------ frames
def test_reordered_columns_never_change_a_prediction(rng):
    df = table(rng)
    g = tabular_graph().adapt(df)
    shuffled = df[list(rng.permutation(df.columns))]
    np.testing.assert_array_equal(g.predict(df), g.predict(shuffled))


def test_a_frame_binds_plain_inputs_by_name_and_ignores_extra_columns(rng):
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("a", 1)
    g.add_input("b", columns=["b1", "b2"])
    g.add_output("y", 1)
    g.connect(["a", "b"], "y")
    df = pd.DataFrame({"b2": rng.normal(size=5), "zzz": np.arange(5), "a": rng.normal(size=5),
                       "b1": rng.normal(size=5)})
    expected = g.predict({"a": df[["a"]].to_numpy(), "b": df[["b1", "b2"]].to_numpy()})
    np.testing.assert_array_equal(g.predict(df), expected)


def test_missing_columns_are_named(rng):
    df = table(rng).drop(columns=["income", "city"])
    g = tabular_graph().adapt(table(rng))
    with pytest.raises(gn.ShapeError, match=r"'income'.*numbers.*'city'|'city'.*'income'"):
        g.predict(df)


def test_a_series_is_a_one_column_input(rng):
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", normalize=True)
    g.add_output("y", 1)
    g.connect("x", "y")
    s = pd.Series(rng.normal(size=8), name="x")
    g.adapt(s)
    np.testing.assert_array_equal(g.predict(s), g.predict(s.to_numpy().reshape(-1, 1)))


def test_a_series_given_to_several_inputs_is_named_as_a_series():
    """One row of a frame (df.iloc[0]) given to a graph of several inputs:
    the message named an ndarray, which the user never gave."""
    g = gn.Graph(seed=0)
    g.add_input("age", 1)
    g.add_input("chol", 1)
    g.add_output("y", 1)
    g.connect(["age", "chol"], "y")
    frame = pd.DataFrame({"age": [60.0], "chol": [233.0]})
    with pytest.raises(gn.ShapeError, match=r"2 inputs \['age', 'chol'\]: pass a frame or a dict keyed by input "
                                            r"name, not a Series \(one row of a frame stays a frame as df.iloc\[\[0\]\]\)"):
        g.predict(frame.iloc[0])
    assert g.predict(frame.iloc[[0]]).shape == (1, 1)


def test_plain_arrays_still_work_unchanged(rng):
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 3)
    g.add_output("y", 1)
    g.connect("x", "y")
    x = rng.normal(size=(4, 3))
    w = g.get_weights()
    np.testing.assert_allclose(g.predict(x), x @ w["x->y.weight"] + w["y.bias"])


# ------------------------------------------------------------------ statistics and transforms
def test_adapt_matches_scikit_learn_imputer_and_scaler(rng):
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    df = table(rng)
    g = tabular_graph().adapt(df)
    x = df[["age", "income"]].to_numpy()
    scaler = StandardScaler().fit(x)
    np.testing.assert_allclose(g.nodes["numbers"].mean, scaler.mean_, rtol=1e-12)
    np.testing.assert_allclose(g.nodes["numbers"].std, scaler.scale_, rtol=1e-12)
    # statistics over the present rows (as StandardScaler ignores NaN), then the mean (0) filled in
    expected = make_pipeline(StandardScaler(), SimpleImputer(strategy="mean")).fit(x).transform(x)
    from graphnet._data import as_inputs

    np.testing.assert_allclose(as_inputs(g, df)["numbers"], expected, rtol=1e-12, atol=1e-12)


def test_missing_indicator_matches_scikit_learn(rng):
    from sklearn.impute import SimpleImputer

    from graphnet._data import as_inputs

    df = table(rng)
    g = tabular_graph(missing="indicator", normalize=False).adapt(df)
    assert g.nodes["numbers"].size == 4
    x = df[["age", "income"]].to_numpy()
    expected = SimpleImputer(strategy="mean", add_indicator=True).fit_transform(x)
    np.testing.assert_allclose(as_inputs(g, df)["numbers"], expected, rtol=1e-12)


def test_a_constant_column_divides_by_one():
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 2, normalize=True)
    g.add_output("y", 1)
    g.connect("x", "y")
    g.adapt(np.array([[3.0, 1.0], [3.0, 2.0]]))
    np.testing.assert_array_equal(g.nodes["x"].std, [1.0, 0.5])


def test_category_codes_match_one_hot_encoder(rng):
    from sklearn.preprocessing import OneHotEncoder

    from graphnet._data import as_inputs

    df = table(rng)
    g = tabular_graph().adapt(df)
    known = df["city"].dropna().to_numpy().reshape(-1, 1)
    encoder = OneHotEncoder(handle_unknown="ignore").fit(known)
    assert list(g.nodes["city"].categories) == list(encoder.categories_[0])
    test = pd.DataFrame({**{c: df[c][:6] for c in df}, "city": ["nice", "rome", None, "lyon", "paris", "nice"]})
    codes = as_inputs(g, test)["city"]
    one_hot = np.eye(len(encoder.categories_[0]) + 1)[codes][:, 1:]
    expected = encoder.transform(test[["city"]].fillna("missing").to_numpy()).toarray()
    np.testing.assert_array_equal(one_hot, expected)
    assert codes[1] == 0 and codes[2] == 0  # unknown and missing


def test_integer_categories_and_fit_from_codes(rng):
    g = gn.Graph(seed=0)
    g.add_input("zone", categories=[10, 20, 30])
    g.add_output("y", 1)
    g.connect("zone", "y")
    assert g.nodes["zone"].size == 4
    x = np.array([10, 30, 30, 99, 20])
    w = g.get_weights()["zone->y.weight"]
    np.testing.assert_allclose(g.predict(x)[:, 0], w[[1, 3, 3, 0, 2], 0] + g.nodes["y"].bias[0], rtol=1e-6)


# ------------------------------------------------------------------ fit adapts
def test_fit_adapts_from_its_training_rows_only(rng):
    import copy

    from graphnet._data import holdout_split

    df = table(rng, 80)
    g = tabular_graph()
    train_rows, val_rows = holdout_split(copy.deepcopy(g.rng), len(df), 0.25)
    history = g.fit(df, df, epochs=1, validation_split=0.25, verbose=0)
    held = df.iloc[val_rows]  # the rows fit held out are these: its val_loss is theirs
    assert history.history["val_loss"][0] == pytest.approx(g.evaluate(held, held)["loss"], rel=1e-12)
    expected = df[["age", "income"]].iloc[train_rows].mean().to_numpy()
    np.testing.assert_allclose(g.nodes["numbers"].mean, expected, rtol=1e-12)
    assert g.nodes["numbers"].mean[0] != pytest.approx(df["age"].mean(), rel=1e-9)


def test_a_later_fit_does_not_adapt_again(rng):
    df = table(rng)
    g = tabular_graph()
    g.fit(df, df, epochs=1, verbose=0)
    mean = g.nodes["numbers"].mean
    shifted = df.assign(age=df["age"] + 100)
    g.fit(shifted, shifted, epochs=1, verbose=0)
    np.testing.assert_array_equal(g.nodes["numbers"].mean, mean)


def test_classes_and_predict_labels(rng):
    df = table(rng)
    g = tabular_graph()
    g.fit(df, df, epochs=2, verbose=0)
    assert g.nodes["label"].classes == ("bad", "good", "ok")
    labels = g.predict_labels(df)
    p = g.predict(df)
    np.testing.assert_array_equal(labels, np.array(["bad", "good", "ok"])[p.argmax(axis=1)])


def test_two_classes_on_a_sigmoid_unit(rng):
    g = gn.Graph(seed=0)
    g.add_input("x", 2)
    g.add_output("y", 1, activation="sigmoid", loss="binary_crossentropy", classes=["no", "yes"])
    g.connect("x", "y")
    x = rng.normal(size=(10, 2))
    y = np.where(x[:, 0] > 0, "yes", "no")
    g.fit(x, y, epochs=2, verbose=0)
    np.testing.assert_array_equal(g.predict_labels(x), np.where(g.predict(x)[:, 0] > 0.5, "yes", "no"))


# ------------------------------------------------------------------ refused calls
def test_an_unknown_target_label_is_named_and_fit_changes_nothing(rng):
    df = table(rng)
    g = tabular_graph()
    g.add_output("other", 2, activation="softmax", loss="categorical_crossentropy", classes=["a", "b"])
    g.connect("h", "other")
    y = {"label": df["label"], "other": np.array(["a", "b"] * 30)}
    y_bad = {"label": df["label"], "other": np.array(["a", "c"] * 30)}
    with pytest.raises(gn.ShapeError, match=r"output 'other'.*'c'"):
        g.fit(df, y_bad, epochs=1, verbose=0)
    assert g.nodes["numbers"].mean is None and g.nodes["city"].categories == "adapt"
    assert g.nodes["label"].classes == "adapt"
    g.fit(df, y, epochs=1, verbose=0)
    assert g.nodes["label"].classes == ("bad", "good", "ok")
    with pytest.raises(gn.GraphError, match=r"3 classes expected.*got 4"):  # four labels, three units
        tabular_graph().fit(df, df.assign(label=df["label"].where(df.index != 4, "awful")), verbose=0)


def test_an_unknown_label_after_adapt_is_a_shape_error(rng):
    df = table(rng)
    g = tabular_graph().adapt(df)
    before = g.get_weights()
    with pytest.raises(gn.ShapeError, match=r"'awful'"):
        g.fit(df, df.assign(label=["awful"] * len(df)), epochs=1, verbose=0)
    for key, value in g.get_weights().items():
        np.testing.assert_array_equal(value, before[key])


def test_text_in_a_numeric_column_names_it(rng):
    df = table(rng)
    g = tabular_graph().adapt(df)
    bad = df.astype({"income": object})
    bad.loc[5, "income"] = "n/a"
    with pytest.raises(gn.ShapeError, match=r"column 'income'.*'n/a'.*row 5"):
        g.predict(bad)
    with pytest.raises(gn.ShapeError, match=r"column 'income'"):
        tabular_graph().adapt(bad)


def test_text_for_an_input_bound_to_its_own_column_names_that_column():
    g = gn.Graph(seed=0)
    g.add_input("a", normalize=True)
    g.add_output("y", 1)
    g.connect("a", "y")
    message = r"input 'a': column 'a' is numeric but holds '1' \(row 0\)"
    with pytest.raises(gn.ShapeError, match=message):
        g.adapt(pd.DataFrame({"a": ["1", "x"]}))
    g.adapt(pd.DataFrame({"a": [1.0, 2.0]}))
    for data in (pd.DataFrame({"a": ["1", "x"]}), {"a": np.array(["1", "x"])}):
        with pytest.raises(gn.ShapeError, match=message):
            g.predict(data)
        with pytest.raises(gn.ShapeError, match=message):
            gn.interop.onnx_feed(g, data)


def test_nan_with_missing_error_names_the_column_and_rows(rng):
    df = table(rng)
    g = tabular_graph(missing="error", normalize=True)
    with pytest.raises(gn.ShapeError, match=r"'age' \(\d+ rows\), 'income' \(3 rows\).*missing='mean'"):
        g.fit(df, df, epochs=1, verbose=0)


def test_nan_in_a_plain_input_names_its_columns_and_rows():
    g = gn.Graph(seed=0)
    g.add_input("x", columns=["alpha", "beta"])
    g.add_output("y", 1)
    g.connect("x", "y")
    for rows in (3, 30):  # the one-call path and the chunked one
        df = pd.DataFrame({"alpha": [1.0, np.nan, np.nan] * (rows // 3), "beta": [1.0, 2.0, np.inf] * (rows // 3)})
        n = 2 * rows // 3
        expected = (rf"input 'x' contains {n + rows // 3} NaN or inf value\(s\), in columns "
                    rf"'alpha' \({n} rows\), 'beta' \({rows // 3} rows?\).*missing='mean'")
        with pytest.raises(gn.ShapeError, match=expected):
            g.predict(df)
    with pytest.raises(gn.ShapeError, match=r"in column 'beta' \(1 row\)"):  # an array in the input's columns
        g.fit(np.array([[1.0, np.nan]]), np.ones((1, 1)), verbose=0)
    plain = gn.Graph()
    plain.add_input("x", 2)
    plain.add_output("y", 1)
    plain.connect("x", "y")
    with pytest.raises(gn.ShapeError, match=r"in column 1 \(1 row\)"):  # no names: the column's index
        plain.fit(np.array([[1.0, np.nan]]), np.ones((1, 1)), verbose=0)


def test_pandas_na_is_missing_like_none(rng):
    g = gn.Graph(seed=0)
    g.add_input("c", categories=["a", "b"])
    g.add_input("x", missing="mean")
    g.add_output("y", 2, activation="softmax", loss="categorical_crossentropy", classes=["p", "q"])
    g.connect(["c", "x"], "y")
    with_none = pd.DataFrame({"c": ["a", None, "b"], "x": [1.0, np.nan, 3.0]})
    g.adapt(with_none)
    expected = g.predict(with_none)
    for c in (pd.array(["a", pd.NA, "b"], dtype="string"), pd.Series(["a", pd.NA, "b"], dtype=object)):
        for x in (pd.Series([1.0, pd.NA, 3.0], dtype=object), pd.array([1.0, None, 3.0], dtype="Float64")):
            np.testing.assert_array_equal(g.predict(pd.DataFrame({"c": c, "x": x})), expected)
    learnt = gn.Graph()
    learnt.add_input("c", categories="adapt")
    learnt.add_output("y", 1)
    learnt.connect("c", "y")
    learnt.adapt(pd.DataFrame({"c": pd.array(["b", pd.NA, "a"], dtype="string")}))
    assert learnt.nodes["c"].categories == ("a", "b")
    targets = pd.DataFrame({"y": pd.array(["p", pd.NA, "q"], dtype="string")})
    with pytest.raises(gn.ShapeError, match=r"not among its classes.*<NA>"):
        g.train_step(with_none, targets)


def test_an_all_nan_column_against_string_categories_is_all_unknown():
    # read_csv gives an empty text column as float NaN: every row has code 0, as for None
    g = gn.Graph(seed=0)
    g.add_input("city", categories=["Lyon", "Oslo"])
    g.add_output("y", 1)
    g.connect("city", "y")
    expected = g.predict(pd.DataFrame({"city": [None, None]}))
    nan = pd.DataFrame({"city": [np.nan, np.nan]})
    np.testing.assert_array_equal(g.predict(nan), expected)
    np.testing.assert_array_equal(g.predict({"city": np.array([np.nan, np.nan])}), expected)
    assert np.isfinite(g.evaluate(nan, np.zeros((2, 1)))["loss"])
    g.statistics(nan)
    batches = iter([(nan, np.zeros((2, 1)))] * 2)
    g.fit(batches, epochs=1, steps_per_epoch=2, verbose=0)
    labelled = gn.Graph(seed=0)
    labelled.add_input("x", 1)
    labelled.add_output("y", 2, activation="softmax", loss="categorical_crossentropy", classes=["p", "q"])
    labelled.connect("x", "y")
    with pytest.raises(gn.ShapeError, match="not among its classes"):  # a missing target is refused, by name
        labelled.evaluate(np.zeros((2, 1)), {"y": np.array([np.nan, np.nan])})


def test_labels_of_the_wrong_kind_are_named_as_classes_and_shown_as_written():
    g = gn.Graph(seed=0)
    g.add_input("x", 1)
    g.add_output("y", 3, activation="softmax", loss="sparse_categorical_crossentropy", classes=["a", "b", "c"])
    g.connect("x", "y")
    with pytest.raises(gn.ShapeError, match=r"^targets of output 'y': the classes are strings but the labels are int "
                                            r"values such as 0; give it as text, or classes of that type$"):
        g.evaluate(np.zeros((4, 1)), np.array([0, 1, 2, 1]))
    with pytest.raises(gn.ShapeError, match=r"^targets of output 'y': 1 label\(s\) not among its classes "
                                            r"\['a', 'b', 'c'\]: 'd'$"):
        g.evaluate(np.zeros((4, 1)), np.array(["a", "b", "d", "a"]))


def test_a_column_name_twice_is_a_shape_error_naming_it():
    g = gn.Graph()
    g.add_input("a")
    g.add_output("y", 1)
    g.connect("a", "y")
    with pytest.raises(gn.ShapeError, match=r"2 columns named 'a' \(for input 'a'\)"):
        g.predict(pd.DataFrame([[1.0, 2.0]], columns=["a", "a"]))
    twice_unused = pd.DataFrame([[1.0, 2.0, 3.0]], columns=["a", "b", "b"])
    np.testing.assert_array_equal(g.predict(twice_unused), g.predict(pd.DataFrame({"a": [1.0]})))


def test_predicting_before_adapt_says_to_adapt(rng):
    g = tabular_graph()
    with pytest.raises(gn.GraphError, match=r"adapt"):
        g.predict(table(rng))
    with pytest.raises(gn.GraphError, match=r"adapt"):
        g.predict_labels(table(rng))


@pytest.mark.parametrize("read", ["get_weights", "save", "load", "bias", "weight", "deepcopy", "pickle"])
def test_weights_fed_by_a_vocabulary_are_provisional_until_adapt(rng, tmp_path, read):
    # Reading (or saving) the weights before adapt used to draw one-row tables
    # that no later fit could resize: the graph could never be trained.
    import copy
    import pickle

    df = table(rng)
    untouched = tabular_graph()
    untouched.fit(df, df, epochs=1, verbose=0)
    g = tabular_graph()
    shown = {
        "get_weights": lambda: g.get_weights()["city->h.weight"],
        "save": lambda: gn.load(g.save(tmp_path / "early.gnet")).get_weights()["city->h.weight"],
        "bias": lambda: g["h"].bias,
        "weight": lambda: g.synapse("city", "h").weight,
    }
    if read in shown:  # provisional values: the "unknown" row alone, not to be changed in place
        seen = shown[read]()
        assert seen.shape == ((1, 6) if read != "bias" else (6,)) and np.isfinite(seen).all()
        if read in ("bias", "weight"):
            assert not seen.flags.writeable
        np.testing.assert_array_equal(shown[read](), seen)  # the same values on every read
    elif read == "load":
        g = gn.load(g.save(tmp_path / "early.gnet"))
    else:  # a copy keeps them waiting
        g = copy.deepcopy(g) if read == "deepcopy" else pickle.loads(pickle.dumps(g))
    g.fit(df, df, epochs=1, verbose=0)
    trained, expected = g.get_weights(), untouched.get_weights()
    assert trained.keys() == expected.keys() and trained["city->h.weight"].shape == (4, 6)
    for key, value in expected.items():
        np.testing.assert_array_equal(trained[key], value, err_msg=key)


def test_a_file_s_waiting_weights_are_checked(rng, tmp_path):
    import json
    import zipfile

    path = tabular_graph().save(tmp_path / "early.gnet")
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    training = json.loads(members["training.json"])
    assert set(training["waiting"]) == {"city->h.weight", "numbers->h.weight", "h.bias"}
    assert training["waiting"]["h.bias"] is None
    for bad in ({"h->label.weight": "1"}, {"city->h.weight": "2" * 40}, {"city->h.weight": "-1"},
                {"city->h.weight": None}, {"h.bias": "3"}, ["city->h.weight"]):
        with zipfile.ZipFile(tmp_path / "bad.gnet", "w") as archive:
            for name, data in members.items():
                archive.writestr(name, json.dumps({**training, "waiting": bad}) if name == "training.json" else data)
        with pytest.raises(gn.ModelFileError, match=r"training.json: waiting"):
            gn.load(tmp_path / "bad.gnet")


def test_weights_given_back_before_adapt_go_on_waiting_and_a_table_is_not_set(rng):
    df = table(rng)
    untouched = tabular_graph()
    untouched.fit(df, df, epochs=1, verbose=0)
    g = tabular_graph()
    g.set_weights(g.get_weights())  # the round trip changes nothing
    before = g.to_dict()
    with pytest.raises(gn.GraphError, match=r"weight 'city->h.weight': the table of input 'city' waits for its "
                                            r"vocabulary .* not its provisional draw: adapt this graph"):
        g.set_weights({"city->h.weight": np.ones((1, 6)), "h.bias": np.ones(6)})
    assert g.to_dict() == before and not np.array_equal(g["h"].bias, np.ones(6))
    g.fit(df, df, epochs=1, verbose=0)
    for key, value in untouched.get_weights().items():
        np.testing.assert_array_equal(g.get_weights()[key], value, err_msg=key)
    numbers = tabular_graph()  # a weight whose shape is known may be set: it is kept
    numbers.set_weights({"numbers->h.weight": np.full((2, 6), 0.5)})
    numbers.fit(df, df, epochs=1, verbose=0, optimizer=gn.optimizers.SGD(lr=0.0))
    np.testing.assert_array_equal(numbers.synapse("numbers", "h").weight, np.full((2, 6), 0.5))
    assert numbers.synapse("city", "h").weight.shape == (4, 6)


@pytest.mark.parametrize("surgery", ["widen", "insert", "bridge"])
def test_surgery_on_weights_waiting_for_a_vocabulary_is_refused_first(rng, surgery):
    g = tabular_graph()
    g.add_hidden("k", 3, activation="linear")
    g.disconnect("h", "label")
    g.connect("h", "k")
    g.connect("k", "label")
    before = g.to_dict()
    with pytest.raises(gn.GraphError, match=r"the weights into \['h'\] wait for the vocabulary of input\(s\) "
                                            r"\['city'\].*adapt"):
        {"widen": lambda: g.widen("h", 8), "insert": lambda: g.insert("city", "h", "mid"),
         "bridge": lambda: g.remove("h", bridge=True)}[surgery]()
    assert g.to_dict() == before
    g.widen("k", 5)  # surgery away from the vocabulary goes ahead
    df = table(rng)
    g.fit(df, df, epochs=1, verbose=0)
    assert g.synapse("city", "h").weight.shape == (4, 6)


def test_an_input_without_a_vocabulary_still_draws_the_rest(rng):
    g = tabular_graph()
    g.add_input("side", 2)
    g.add_output("other", 1)
    g.connect("side", "other")
    weight = g.synapse("side", "other").weight  # not fed by the vocabulary: drawn
    g.astype(np.float32)  # moves what is drawn; the waiting tables are drawn in float32 later
    df = table(rng).assign(side=0.0, other=0.0)
    g.adapt(df)
    assert g.get_weights()["city->h.weight"].dtype == np.float32
    np.testing.assert_array_equal(g.synapse("side", "other").weight, weight.astype(np.float32))


def test_a_refused_adapt_changes_nothing(rng):
    df = table(rng)
    g = tabular_graph().adapt(df)
    mean = g.nodes["numbers"].mean
    with pytest.raises(gn.GraphError):
        g.adapt(df.assign(age=np.nan))  # no values in a column
    np.testing.assert_array_equal(g.nodes["numbers"].mean, mean)


def test_settings_are_checked():
    g = gn.Graph()
    with pytest.raises(gn.GraphError, match="missing must be one of"):
        g.add_input("x", missing="drop")
    with pytest.raises(gn.GraphError, match="all strings or all integers"):
        g.add_input("c", categories=["a", 1])
    with pytest.raises(gn.GraphError, match="categorical input takes no normalize"):
        g.add_input("c", categories=["a"], normalize=True)
    with pytest.raises(gn.GraphError, match="3 classes expected"):
        g.add_output("y", 3, activation="softmax", loss="categorical_crossentropy", classes=["a", "b"])
    assert list(g.nodes) == []


# ------------------------------------------------------------------ saved with the graph
def test_saved_loaded_and_specs_keep_everything(tmp_path, rng):
    df = table(rng)
    g = tabular_graph(dtype="float32")
    g.fit(df, df, epochs=1, verbose=0)
    loaded = gn.load(g.save(tmp_path / "tab.gnet"))
    np.testing.assert_array_equal(loaded.predict(df), g.predict(df))
    np.testing.assert_array_equal(loaded.predict_labels(df), g.predict_labels(df))
    import copy
    import pickle

    for clone in (pickle.loads(pickle.dumps(g)), copy.deepcopy(g)):
        np.testing.assert_array_equal(clone.predict(df), g.predict(df))
    twin = gn.Graph.from_dict(g.to_dict())
    assert twin.nodes["city"].categories == g.nodes["city"].categories
    np.testing.assert_array_equal(twin.nodes["numbers"].std, g.nodes["numbers"].std)
    assert twin.nodes["label"].classes == ("bad", "good", "ok")


def test_a_spec_with_adapt_loads_unadapted():
    spec = {"nodes": [{"kind": "input", "name": "c", "size": 1, "categories": "adapt"},
                      {"kind": "input", "name": "x", "size": 2, "missing": "indicator"},
                      {"kind": "output", "name": "y", "size": 1}],
            "synapses": [["c", "y"], ["x", "y"]]}
    g = gn.Graph.from_dict(spec)
    assert g.nodes["x"].size == 4 and not g.nodes["c"].adapted
    g.adapt({"c": np.array(["u", "v"]), "x": np.array([[1.0, np.nan], [2.0, 3.0]])})
    assert g.synapse("c", "y").shape == (3, 1) and g.predict({"c": ["v"], "x": [[np.nan, 1.0]]}).shape == (1, 1)


def test_polars_frames_bind_like_pandas(rng):
    pl = pytest.importorskip("polars")
    df = table(rng)
    g = tabular_graph().adapt(df)
    frame = pl.DataFrame({c: [v if isinstance(v, str) else None for v in df[c]] if df[c].dtype.kind == "O"
                          else df[c].tolist() for c in df})  # NaN stays NaN, None is polars' null
    frame = frame.with_columns(pl.col("income").fill_nan(None))  # and polars' own missing value
    np.testing.assert_allclose(g.predict(frame), g.predict(df), rtol=1e-12)


# ------------------------------------------------------------------ seen
def test_summary_and_diagram_show_categories_and_statistics(rng):
    df = table(rng)
    g = tabular_graph().adapt(df)
    text = g.summary(print_fn=None)
    assert "3 categories" in text and "normalize, missing:" in text
    assert "categories ['lyon', 'nice', 'paris']" in text
    assert f"mean [{g.nodes['numbers'].mean[0]:.4g}" in text and "label: classes ['bad', 'good', 'ok']" in text
    assert max(len(line) for line in text.splitlines()[-5:]) <= 80
    assert "not adapted" in tabular_graph().summary(print_fn=None)
    source = g.to_dot().source
    assert "3 categories" in source and "normalize, missing: mean" in source


# ------------------------------------------------------------------ exported
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("missing", ["mean", "indicator"])
def test_onnx_export_predicts_alike_in_onnxruntime(tmp_path, rng, dtype, missing):
    ort = pytest.importorskip("onnxruntime")
    from graphnet.interop import onnx_feed

    df = table(rng)
    g = tabular_graph(dtype=dtype, missing=missing)
    g.add_input("zone", categories=[3, 7, 11])
    g.connect("zone", "h")
    df["zone"] = rng.choice([3, 7, 11, 99], len(df))
    g.fit(df, df, epochs=2, verbose=0)
    test = df.copy()
    test.loc[:5, "city"] = ["rome", None, "nice", "", "lyon", "paris"]  # unknown and missing
    g.to_onnx(tmp_path / "tab.onnx")
    session = ort.InferenceSession(str(tmp_path / "tab.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, onnx_feed(g, test))[0]
    np.testing.assert_allclose(got, g.predict(test), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ scikit-learn estimators
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_estimators_take_frames_with_categorical_columns(rng):
    from graphnet.sklearn import GraphNetClassifier, GraphNetRegressor

    df = table(rng, 80)
    df["city"] = df["city"].astype("category")
    X = df.drop(columns=["label"])
    clf = GraphNetClassifier((8,), max_iter=3, random_state=0).fit(X, df["label"])
    assert set(clf.predict(X)) <= {"bad", "good", "ok"}
    np.testing.assert_array_equal(clf.predict(X[X.columns[::-1]]), clf.predict(X))  # by name
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba, clf.graph_.predict(X), rtol=1e-12)
    assert clf.graph_.nodes["city"].categories == ("lyon", "nice", "paris")
    assert list(clf.feature_names_in_) == list(X.columns)  # X's order
    with pytest.raises(ValueError, match=r"lacks the columns \['income'\]"):
        clf.predict(X.drop(columns=["income"]))
    reg = GraphNetRegressor((4,), max_iter=2, random_state=0).fit(X, df["age"].fillna(0))
    assert reg.predict(X).shape == (80,)


def test_graphnet_imports_and_runs_tables_without_pandas():
    import subprocess
    import sys

    code = ("import sys; sys.modules['pandas'] = None; sys.modules['polars'] = None\n"
            "import numpy as np, graphnet as gn\n"
            "g = gn.Graph(seed=0); g.add_input('c', categories='adapt'); g.add_input('x', 2, normalize=True)\n"
            "g.add_output('y', 1); g.connect(['c', 'x'], 'y')\n"
            "g.fit({'c': np.array(['a', 'b', None]), 'x': np.ones((3, 2))}, np.zeros(3), verbose=0)\n"
            "print(g.nodes['c'].categories, 'pandas' in sys.modules and sys.modules['pandas'] is not None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "('a', 'b') False"


def test_labels_for_an_output_without_classes_say_how(rng):
    df = table(rng)
    g = gn.Graph(seed=0)
    g.add_input("numbers", columns=["income"], missing="mean")
    g.add_output("label", 3, activation="softmax", loss="categorical_crossentropy")
    g.connect("numbers", "label")
    with pytest.raises(gn.ShapeError, match=r"output 'label'.*classes='adapt'"):
        g.fit(df, df["label"].astype("category"), verbose=0)
    assert g.nodes["numbers"].mean is None  # the refused fit forgot what it adapted


def test_a_fit_refused_by_its_callbacks_forgets_what_it_adapted(rng):
    g = gn.Graph(seed=0)
    g.add_input("x", 2, normalize=True)
    g.add_output("y", 1)
    g.connect("x", "y")
    x, y = rng.normal(size=(16, 2)), rng.normal(size=(16, 1))
    with pytest.raises(gn.GraphError, match="monitor .val_loss. is not among the logged values"):
        g.fit(x, y, verbose=0, callbacks=[gn.callbacks.EarlyStopping()])
    assert g.nodes["x"].mean is None and g.optimizer is None

    class Refuses(gn.callbacks.Callback):  # a user's callback may refuse with any exception
        def check_optimizer(self, optimizer):
            raise ValueError("not this optimizer")

    with pytest.raises(ValueError, match="not this optimizer"):
        g.fit(x, y, verbose=0, callbacks=[Refuses()])
    assert g.nodes["x"].mean is None and g.optimizer is None


def test_text_for_a_plain_input_says_to_give_categories(rng):
    g = gn.Graph(seed=0)
    g.add_input("city", 1)
    g.add_output("y", 1)
    g.connect("city", "y")
    with pytest.raises(gn.ShapeError, match=r"input 'city': column 'city' is numeric but holds .* \(row 0\).*"
                                            r"categorical input \(categories="):
        g.predict(table(rng))


def test_class_weight_by_label_on_an_output_with_classes(rng):
    # As scikit-learn's class_weight: the labels themselves are the keys.
    df = table(rng)
    weights = {"bad": 1.0, "good": 3.0, "ok": 0.5}
    by_label, by_row = tabular_graph(), tabular_graph()
    by_label.fit(df, df, epochs=2, batch_size=16, verbose=0, class_weight={"label": weights})
    rows = df["label"].map(weights).to_numpy()
    by_row.fit(df, df, epochs=2, batch_size=16, verbose=0, sample_weight={"label": rows})
    for key, value in by_row.get_weights().items():
        np.testing.assert_array_equal(by_label.get_weights()[key], value, err_msg=key)
    before = by_label.get_weights()
    with pytest.raises(gn.GraphError, match=r"class_weight for output 'label': 'fine' is not one of its classes"):
        by_label.fit(df, df, epochs=1, verbose=0, class_weight={"label": {"fine": 2.0}})
    with pytest.raises(gn.GraphError, match=r"3 is not one of its classes \['bad', 'good', 'ok'\] nor a code 0 to 2"):
        by_label.fit(df, df, epochs=1, verbose=0, class_weight={"label": {3: 2.0}})
    with pytest.raises(gn.GraphError, match=r"class_weight for output 'label': 'good' and 1 both name class 1 "
                                            r"\('good'\); give each class one weight"):
        by_label.fit(df, df, epochs=1, verbose=0, class_weight={"label": {"good": 3.0, 1: 2.0}})
    for key, value in before.items():
        np.testing.assert_array_equal(by_label.get_weights()[key], value, err_msg=key)
    alone = tabular_graph()  # one output: its labels may be the keys themselves
    alone.fit(df, df, epochs=2, batch_size=16, verbose=0, class_weight=weights)
    for key, value in by_row.get_weights().items():
        np.testing.assert_array_equal(alone.get_weights()[key], value, err_msg=key)
    by_code = tabular_graph()  # codes still work beside text labels
    by_code.fit(df, df, epochs=2, batch_size=16, verbose=0, class_weight={"label": {0: 1.0, 1: 3.0, 2: 0.5}})
    for key, value in by_row.get_weights().items():
        np.testing.assert_array_equal(by_code.get_weights()[key], value, err_msg=key)



def test_statistics_of_a_categorical_input_are_of_its_one_hot_rows():
    """A categorical input's activations are one-hot rows, never built: the
    statistics reported the mean and std of the integer codes, which depend on
    the order of the vocabulary."""
    import pandas as pd

    frame = pd.DataFrame({"city": ["Lima", "Oslo", "Pune", "Pune", None, "Oslo"], "y": [0.0, 1, 1, 0, 1, 0]})
    one_hot = np.eye(4)[[1, 2, 3, 3, 0, 2]]
    for categories in (["Lima", "Oslo", "Pune"], ["Pune", "Oslo", "Lima"]):
        g = gn.Graph(seed=0, dtype="float64")
        g.add_input("city", categories=categories)
        g.add_output("y", 1)
        g.connect("city", "y")
        for stats in (g.statistics(frame), g.statistics(frame, frame["y"])):
            assert stats["city"].mean == pytest.approx(one_hot.mean())
            assert stats["city"].std == pytest.approx(one_hot.std())


def test_a_weights_file_saved_before_adapt_loads_into_a_twin_of_another_seed(tmp_path):
    """The file keeps the waiting weights' seeds: a twin built with another
    seed takes them, and after adapt predicts as the saved graph would. An
    adapted twin is told to load before adapting (it was told to adapt, and
    then that the shapes differ)."""
    import pandas as pd

    frame = pd.DataFrame({"city": ["Lima", "Oslo", "Pune"], "y": [0.0, 1, 1]})

    def build(seed):
        g = gn.Graph(seed=seed, dtype="float64")
        g.add_input("city", categories="adapt")
        g.add_output("y", 1)
        g.connect("city", "y")
        return g

    path = build(0).save_weights(tmp_path / "waiting.weights.gnet")
    twin = build(1)
    twin.load_weights(path)
    np.testing.assert_array_equal(twin.adapt(frame).predict(frame), build(0).adapt(frame).predict(frame))
    adapted = build(1).adapt(frame)
    before = adapted.get_weights()
    with pytest.raises(gn.ModelFileError, match=r"saved before adapt.*they do not wait: its input has its vocabulary"):
        adapted.load_weights(path)
    for key, value in adapted.get_weights().items():
        np.testing.assert_array_equal(value, before[key])


def test_a_relu_inserted_after_a_categorical_input_is_the_identity():
    import pandas as pd

    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("city", categories=["Lima", "Oslo", "Pune"])
    g.add_hidden("h", 3, activation="relu")
    g.add_output("y", 1)
    g.connect("city", "h")
    g.connect("h", "y")
    frame = pd.DataFrame({"city": ["Lima", "Oslo", "Pune", None, "elsewhere"]})
    before = g.predict(frame)
    g.insert("city", "h", "r", activation="relu")
    np.testing.assert_allclose(g.predict(frame), before, rtol=1e-12, atol=1e-12)


def test_attributions_name_an_input_s_columns_and_indicators_in_the_report():
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"age": rng.normal(40, 10, 50), "income": rng.normal(5, 1, 50)})
    frame.loc[::7, "income"] = np.nan
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("n", columns=["age", "income"], normalize=True, missing="indicator")
    g.add_output("y", 1)
    g.connect("n", "y")
    report = g.adapt(frame).attributions(frame)
    assert report.columns == {"n": ("age", "income", "age (missing)", "income (missing)")}
    text = report.text(width=200)
    assert "income (" in text and "age (" in text and "income (missing) (" in text


def test_the_attributions_diagram_names_columns_as_the_report_does():
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"age": rng.normal(40, 10, 30), "income<&>": rng.normal(5, 1, 30)})
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("num", columns=["age", "income<&>"], normalize=True)
    g.add_output("y", 1)
    g.connect("num", "y")
    report = g.adapt(frame).attributions(frame)
    label = [part for line in g.to_dot(attributions=report).source.splitlines()
             for part in line.split("<br/>") if "top columns" in part]
    assert label and "income&lt;&amp;&gt; (" in label[0] and "age (" in label[0]


def _categorical_graph(seed=0):
    g = gn.Graph(seed=seed)
    g.add_input("c", categories="adapt")
    g.add_output("y", 3, activation="softmax", loss="categorical_crossentropy", classes="adapt")
    g.connect("c", "y")
    return g


def test_adapt_reads_a_one_column_2d_categorical_input():
    g = _categorical_graph()
    x = np.array([["a"], ["b"], ["a"], ["c"]], dtype=object)
    y = np.array([["u"], ["v"], ["w"], ["u"]], dtype=object)
    g.adapt({"c": x}, {"y": y})
    assert g.nodes["c"].categories == ("a", "b", "c")
    assert g.nodes["y"].classes == ("u", "v", "w")


def test_a_refused_fit_gives_back_the_synapse_shape_of_an_unadapted_input():
    g = _categorical_graph()
    before = [s.shape for s in g.synapses]
    with pytest.raises(gn.ShapeError, match="rows disagree"):
        g.fit({"c": np.array(["a", "b", "a", "c"], dtype=object)},
              {"y": np.array(["u", "v", "w", "u", "v"], dtype=object)}, epochs=1, verbose=0)
    assert g.nodes["c"].categories == "adapt"
    assert [s.shape for s in g.synapses] == before == [(1, 3)]


def test_fit_learns_classes_from_the_training_rows_only():
    X = np.arange(20.0).reshape(10, 2)
    refused = 0
    for k in range(10):
        y = np.array(["u", "v"] * 5, dtype=object)
        y[k] = "z"
        g = gn.Graph(seed=0)
        g.add_input("x", 2)
        g.add_output("y", 3, activation="softmax", loss="categorical_crossentropy", classes="adapt")
        g.connect("x", "y")
        try:
            g.fit({"x": X}, {"y": y}, epochs=1, verbose=0, validation_split=0.3)
            assert g.nodes["y"].classes == ("u", "v", "z")
        except gn.GraphError as exc:
            assert "3 classes expected" in str(exc)
            refused += 1
    assert refused == 3  # validation_split=0.3 of 10 rows holds 3 rows out


def test_a_constant_zero_column_gets_std_one():
    g = gn.Graph(seed=0)
    g.add_input("x", 2, normalize=True)
    g.add_output("y", 1)
    g.connect("x", "y")
    x = np.array([[0.0, 1.0], [0.0, 2.0], [0.0, 4.0]])
    g.adapt({"x": x})
    np.testing.assert_allclose(g.nodes["x"].mean, x.mean(axis=0), rtol=1e-15)
    np.testing.assert_allclose(g.nodes["x"].std, [1.0, x[:, 1].std()], rtol=1e-15)


def test_adapt_of_outputs_alone_takes_no_x():
    g = gn.Graph(seed=0)
    g.add_input("x", 2)
    g.add_output("y", 2, activation="softmax", loss="categorical_crossentropy", classes="adapt")
    g.connect("x", "y")
    g.adapt(None, {"y": np.array(["b", "a", "b"], dtype=object)})
    assert g.nodes["y"].classes == ("a", "b")


def test_a_column_whose_spread_overflows_is_refused():
    g = gn.Graph(seed=0)
    g.add_input("x", 2, normalize=True)
    g.add_output("y", 1)
    g.connect("x", "y")
    with pytest.raises(gn.ShapeError, match=r"^input 'x': column 1 spreads beyond float64's range"):
        g.adapt({"x": np.array([[1.0, 1.7e308], [2.0, 1.7e308], [3.0, -1.7e308]])})
    assert g.nodes["x"].mean is None


def test_set_statistics_needs_both_mean_and_std():
    g = gn.Graph(seed=0)
    g.add_input("x", 2, normalize=True)
    g.add_output("y", 1)
    g.connect("x", "y")
    with pytest.raises(gn.GraphError, match="input 'x': give both mean and std, or neither"):
        g.nodes["x"].set_statistics([0.0, 0.0], None)
    with pytest.raises(gn.GraphError, match="input 'x': give both mean and std, or neither"):
        g.nodes["x"].set_statistics(None, [1.0, 1.0])
    assert g.nodes["x"].mean is None and g.nodes["x"].std is None


def test_predict_refuses_an_input_never_adapted():
    g = gn.Graph(seed=0)
    g.add_input("x", 2, normalize=True)
    g.add_output("y", 1)
    g.connect("x", "y")
    with pytest.raises(gn.GraphError, match=r"inputs \['x'\] never adapted: call g.adapt\(data\) first"):
        g.predict(np.zeros((3, 2)))
