"""Array-likes of the wider stack: read for what they hold, or refused by name.

A torch tensor that requires grad is read through ``detach()``; a scipy.sparse
matrix, a masked array with masked values and an iterator are refused naming
the input, what it got and what to pass; lists of rows are rows wherever
arrays are taken.
"""

import numpy as np
import pytest
import scipy.sparse as sp

import graphnet as gn


def _net(**input_options):
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 3, **input_options)
    g.add_output("y", 1)
    g.connect("x", "y")
    return g


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(12, 3)), rng.normal(size=(12, 1))


def test_a_torch_tensor_that_requires_grad_is_read_and_left_as_it_was(data):
    torch = pytest.importorskip("torch")
    x, y = data
    tensor = torch.tensor(x, requires_grad=True)
    weights = torch.ones(12, requires_grad=True)
    g, h = _net(), _net()
    np.testing.assert_array_equal(g.predict(tensor), g.predict(x))
    np.testing.assert_array_equal(g.predict({"x": tensor}), g.predict(x))
    g.fit(tensor, torch.tensor(y, requires_grad=True), sample_weight=weights, epochs=2, verbose=0)
    h.fit(x, y, sample_weight=np.ones(12), epochs=2, verbose=0)
    for key, value in h.get_weights().items():
        np.testing.assert_array_equal(g.get_weights()[key], value)
    assert g.evaluate(tensor, y) == g.evaluate(x, y)
    assert tensor.requires_grad and tensor.grad is None and weights.requires_grad
    np.testing.assert_array_equal(tensor.detach().numpy(), x)


@pytest.mark.parametrize("kind", ["csr_matrix", "csc_array", "coo_matrix", "dok_array", "dok_matrix", "lil_array"])
def test_scipy_sparse_data_is_refused_naming_the_input_and_toarray(data, kind):
    x, y = data
    sparse = getattr(sp, kind)(x)
    g = _net()
    before = g.get_weights()
    for call in (lambda: g.predict(sparse), lambda: g.predict({"x": sparse}), lambda: g.evaluate(sparse, y),
                 lambda: g.fit(sparse, y, verbose=0)):
        with pytest.raises(gn.ShapeError, match=rf"input 'x': got a scipy.sparse {kind} of shape \(12, 3\).*"
                                                r"pass \.toarray\(\)"):
            call()
    with pytest.raises(gn.ShapeError, match=rf"output 'y': got a scipy.sparse {kind}"):
        g.fit(x, getattr(sp, kind)(y), verbose=0)
    with pytest.raises(gn.ShapeError, match=rf"sample_weight for output 'y': got a scipy.sparse {kind}"):
        g.fit(x, y, sample_weight=getattr(sp, kind)(np.ones((12, 1))), verbose=0)
    assert all(np.array_equal(before[k], v) for k, v in g.get_weights().items())


def test_a_masked_array_with_masked_values_is_refused_and_one_without_is_its_data(data):
    x, y = data
    masked = np.ma.masked_array(x, mask=np.abs(x) > 1)
    count = int(masked.mask.sum())
    g = _net()
    with pytest.raises(gn.ShapeError, match=rf"input 'x': got a masked array with {count} masked values of 36; "
                                            "graphnet reads no masks"):
        g.predict(masked)
    with pytest.raises(gn.ShapeError, match="output 'y': got a masked array with 1 masked value of 12"):
        g.fit(x, np.ma.masked_array(y, mask=np.arange(12)[:, None] == 3), verbose=0)
    np.testing.assert_array_equal(g.predict(np.ma.masked_array(x)), g.predict(x))
    assert masked.mask.sum() == count  # the mask is the user's, untouched


def test_an_iterator_where_an_array_is_expected_is_refused_unread(data):
    x, _ = data
    rows = (row for row in x)
    g = _net()
    with pytest.raises(gn.ShapeError, match="input 'x': got a generator, an iterator, where an array is expected; "
                                            "nothing was read"):
        g.predict(rows)
    assert len(list(rows)) == 12
    with pytest.raises(gn.ShapeError, match="got a map, an iterator"):
        g.predict({"x": map(list, x)})


def test_the_hint_about_categories_comes_only_with_text(data):
    x, _ = data
    g = _net()
    with pytest.raises(gn.ShapeError, match="for a column of categories"):
        g.predict({"x": x.astype(str)})
    with pytest.raises(gn.ShapeError) as refused:
        g.predict({"x": x.astype(complex)})
    assert "complex" in str(refused.value) and "categories" not in str(refused.value)


def test_a_dask_array_of_complex_numbers_is_refused_at_the_call():
    da = pytest.importorskip("dask.array")
    with pytest.raises(gn.ShapeError, match="input 'x': expected numbers, got an array of dtype complex128"):
        _net().predict(da.from_array(np.ones((12, 3), complex), chunks=(5, 3)))


def test_lists_of_rows_are_rows_in_fit_and_in_validation_data(data):
    x, y = data
    g, h = _net(), _net()
    history = g.fit(x.tolist(), y.tolist(), epochs=2, verbose=0,
                    validation_data=(x[:5].tolist(), y[:5].tolist()))
    expected = h.fit(x, y, epochs=2, verbose=0, validation_data=(x[:5], y[:5]))
    assert history.history == expected.history
    with pytest.raises(gn.GraphError, match="y .the targets. is missing"):
        _net().fit(x.tolist(), epochs=1, verbose=0)


def test_a_list_of_batches_is_still_batches(data):
    x, y = data
    batches = [(x[:6], y[:6]), (x[6:], y[6:])]
    history = _net().fit(batches, epochs=1, verbose=0, validation_data=[(x[:5], y[:5])])
    assert len(history.history["val_loss"]) == 1


def test_adapt_with_nothing_to_adapt_still_refuses_what_is_no_data(data):
    x, _ = data
    pl = pytest.importorskip("polars")
    g = _net()
    assert g.adapt(x) is g
    with pytest.raises(gn.GraphError, match="adapt: x is None"):
        g.adapt(None)
    with pytest.raises(gn.ShapeError, match="input 'x': expected numbers"):
        g.adapt("not data")
    with pytest.raises(gn.ShapeError, match="LazyFrame"):
        g.adapt(pl.DataFrame({"x": [1.0]}).lazy())
    with pytest.raises(gn.ShapeError, match="scipy.sparse"):
        g.adapt(sp.csr_array(x))
    with pytest.raises(gn.GraphError, match="adapt: x is None"):
        _net(normalize=True).adapt(None)


def test_adapt_learns_an_outputs_classes_from_y_alone():
    g = gn.Graph(seed=0)
    g.add_input("x", 3)
    g.add_output("y", 3, activation="softmax", loss="sparse_categorical_crossentropy", classes="adapt")
    g.connect("x", "y")
    g.adapt(None, ["a", "b", "c"] * 4)
    assert g.nodes["y"].classes == ("a", "b", "c")


def test_adapt_and_fit_gate_the_values_of_a_dict(data):
    torch = pytest.importorskip("torch")
    x, y = data
    masked = np.ma.masked_array(x, mask=np.arange(36).reshape(12, 3) == 1)
    g = _net(normalize=True)
    for value, refused in ((masked, "got a masked array with 1 masked value"),
                           (sp.csr_matrix(x), "got a scipy.sparse csr_matrix"),
                           (iter(x), "got a .*iterator")):
        with pytest.raises(gn.ShapeError, match=f"input 'x': {refused}"):
            g.adapt({"x": value})
        with pytest.raises(gn.ShapeError, match=f"input 'x': {refused}"):
            g.fit({"x": value}, y, verbose=0)
        assert not g.nodes["x"].adapted
    tensor = torch.tensor(x, requires_grad=True)
    h = _net(normalize=True)
    g.fit({"x": tensor}, y, epochs=1, verbose=0)
    h.fit({"x": x}, y, epochs=1, verbose=0)
    np.testing.assert_array_equal(g.nodes["x"].mean, h.nodes["x"].mean)
    np.testing.assert_array_equal(g.predict(x), h.predict(x))


def test_adapt_with_nothing_to_adapt_gates_a_dicts_values(data):
    x, _ = data
    g = _net()
    assert g.adapt({"x": x, "other": "ignored as adapt ignores it"}) is g
    with pytest.raises(gn.ShapeError, match="input 'x': got a scipy.sparse"):
        g.adapt({"x": sp.csr_matrix(x)})
    with pytest.raises(gn.ShapeError, match="input 'x': expected numbers"):
        g.adapt({"x": "text"})


def test_dask_sample_weights_are_gated_and_named(data):
    torch = pytest.importorskip("torch")
    da = pytest.importorskip("dask.array")
    x, y = data
    g = _net()
    lazy = da.from_array(x, chunks=(6, 3))
    with pytest.raises(gn.ShapeError, match="^evaluate: sample_weight: got a masked array with 1 masked value of 12"):
        g.evaluate(lazy, y, sample_weight=np.ma.masked_array(np.ones(12), mask=np.arange(12) == 0))
    with pytest.raises(gn.ShapeError, match="^evaluate: sample_weight for output 'y': got a scipy.sparse"):
        g.evaluate(lazy, y, sample_weight={"y": sp.csr_array(np.ones((12, 1)))})
    weights = np.linspace(0.5, 2.0, 12)
    expected = g.evaluate(x, y, sample_weight=weights)
    got = g.evaluate(lazy, y, sample_weight=torch.tensor(weights, requires_grad=True))
    assert got == pytest.approx(expected, rel=1e-12)


def test_only_an_inputs_masked_values_are_pointed_to_imputation(data):
    x, y = data
    g = _net()
    with pytest.raises(gn.ShapeError) as target:
        g.fit(x, np.ma.masked_array(y, mask=y > 0), verbose=0)
    with pytest.raises(gn.ShapeError) as weight:
        g.fit(x, y, sample_weight=np.ma.masked_array(np.ones(12), mask=np.arange(12) == 0), verbose=0)
    with pytest.raises(gn.ShapeError) as given:
        g.fit(np.ma.masked_array(x, mask=x > 0), y, verbose=0)
    assert "missing=" not in str(target.value) and "missing=" not in str(weight.value)
    assert "missing='mean'" in str(given.value)


def test_rows_whose_first_value_is_na_or_a_0d_array_are_rows(data):
    pd = pytest.importorskip("pandas")
    x, y = data
    rows = x.tolist()
    rows[0][0] = pd.NA
    g, h = _net(missing="mean"), _net(missing="mean")
    g.fit(rows, y, epochs=1, verbose=0)
    rows[0][0] = None
    h.fit(rows, y, epochs=1, verbose=0)
    np.testing.assert_array_equal(g.predict(x), h.predict(x))
    zero_d = [[np.array(v) for v in row] for row in x]
    assert _net().fit(zero_d, y, epochs=1, verbose=0).history == _net().fit(x, y, epochs=1, verbose=0).history


def test_an_object_column_without_text_gets_no_hint_about_categories():
    g = _net()
    with pytest.raises(gn.ShapeError) as refused:
        g.predict({"x": [[1.0, None, 2.0]]})
    assert "contains 1 NaN" in str(refused.value) and "categories" not in str(refused.value)
    with pytest.raises(gn.ShapeError, match=r"input 'x': column 1 is numeric but holds \[2.0\] \(row 0\)"):
        g.predict({"x": np.array([[1.0, [2.0], 3.0]], dtype=object)})


def test_batches_in_a_validation_tuple_are_told_to_come_in_a_list(data):
    x, y = data
    g = _net()
    with pytest.raises(gn.ShapeError, match=r"a tuple of 2 is \(x_val, y_val\): to give batches, pass them in a list"):
        g.fit(x, y, epochs=1, verbose=0, validation_data=((x[:3], y[:3]), (x[3:6], y[3:6])))
    history = g.fit(x, y, epochs=1, verbose=0, validation_data=[(x[:3], y[:3]), (x[3:6], y[3:6])])
    assert len(history.history["val_loss"]) == 1


def test_an_object_array_of_numbers_is_read_as_its_numbers_on_every_path(data):
    x, y = data
    g = _net()
    serve = g.compile_predict()
    objects = x.astype(object)
    for call in (g.predict, serve, lambda v: g.predict({"x": v}), lambda v: g.predict(v, outputs=["y"])["y"]):
        np.testing.assert_array_equal(call(objects), g.predict(x))
        np.testing.assert_array_equal(call(objects[:1]), g.predict(x[:1]))
    assert _net().fit(objects, y, epochs=2, verbose=0).history == _net().fit(x, y, epochs=2, verbose=0).history
    text = objects.copy()
    text[4, 2] = "oops"
    missing = objects[:1].copy()
    missing[0, 1] = None
    for call in (g.predict, serve, lambda v: g.predict({"x": v})):
        with pytest.raises(gn.ShapeError, match=r"input 'x': column 2 is numeric but holds 'oops' \(row 4\)"):
            call(text)
        with pytest.raises(gn.ShapeError, match=r"input 'x' contains 1 NaN or inf value\(s\), in column 1"):
            call(missing)


def test_objects_beyond_float64_or_of_the_wrong_shape_are_refused_for_what_they_are():
    g = _net()
    with pytest.raises(gn.ShapeError, match=r"input 'x': column 0 holds .* \(row 0\), beyond float64's range"):
        g.predict([[10**400, 1.0, 2.0]])
    with pytest.raises(gn.ShapeError, match=r"input 'x': expected shape \(n, 3\), got \(2, 4\)"):
        g.predict(np.zeros((2, 4), dtype=object))
