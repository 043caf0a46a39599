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
