"""Legal but extreme values (SPEC 3, 9, 10, 15, 16): weights near float64's
limits, targets beyond float32's squares, names that compress a thousand
times, growing schedules, columns constant up to rounding; each checked
against numpy's, scikit-learn's or Keras's own arithmetic."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import mean_absolute_error, mean_squared_error
from sklearn.preprocessing import StandardScaler

import graphnet as gn


def softmax_graph():
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 2)
    g.add_output("y", 2, activation="softmax", loss="categorical_crossentropy")
    g.connect("x", "y")
    return g


@pytest.mark.parametrize("scale", [1e308, 1e-310, 2.0**-1074], ids=["1e308", "1e-310", "smallest subnormal"])
def test_weights_near_float64_s_limits_give_numpy_average_s_loss(scale):
    g = softmax_graph()
    x = np.random.default_rng(0).normal(size=(8, 2))
    y = np.array([0, 1] * 4)
    relative = np.array([1, 1, 0, 0, 0, 0, 0, 0.0])
    rows = -np.log(g.predict(x)[np.arange(8), y])
    expected = np.average(rows, weights=relative)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow on the way
        assert g.evaluate(x, y, sample_weight=relative * scale)["loss"] == pytest.approx(expected, rel=1e-12)
        twin = softmax_graph()
        loss = g.train_step(x, y, sample_weight=relative * scale, optimizer=gn.optimizers.SGD(lr=0.1))
        assert loss == pytest.approx(expected, rel=1e-12)
        assert twin.train_step(x, y, sample_weight=relative, optimizer=gn.optimizers.SGD(lr=0.1)) == loss
        for key, value in twin.get_weights().items():
            np.testing.assert_allclose(g.get_weights()[key], value, rtol=1e-12)
        history = softmax_graph().fit(x, y, sample_weight=relative * scale, epochs=2, batch_size=4, verbose=0)
        plain = softmax_graph().fit(x, y, sample_weight=relative, epochs=2, batch_size=4, verbose=0)
    np.testing.assert_allclose(history.history["loss"], plain.history["loss"], rtol=1e-12)


def test_class_weights_near_float64_s_limits_train_as_their_ratio():
    x = np.random.default_rng(0).normal(size=(8, 2))
    y = np.array([0, 1] * 4)
    small = softmax_graph().fit(x, y, class_weight={0: 1e-320, 1: 3e-320}, epochs=2, batch_size=4, verbose=0)
    plain = softmax_graph().fit(x, y, class_weight={0: 1.0, 1: 3.0}, epochs=2, batch_size=4, verbose=0)
    for key, values in plain.history.items():
        np.testing.assert_allclose(small.history[key], values, rtol=1e-9)


@pytest.mark.parametrize("scale", [1e-200, 1e-300, 1e200, 1e300])
def test_sample_weights_times_class_weights_of_extreme_size_train_as_their_ratios(scale):
    """Each factor is a normal float64; their product under- or overflowed (refused
    as weights summing to 0, or with numpy's overflow warning), from arrays and
    from a generator's batches alike."""
    x = np.random.default_rng(0).normal(size=(8, 2))
    y = np.array([0, 1] * 4)
    w = np.linspace(1, 2, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        extreme = softmax_graph().fit(x, y, sample_weight=w * scale, class_weight={0: scale, 1: 3 * scale},
                                      epochs=2, batch_size=4, shuffle=False, verbose=0)
        batches = [(x[i:i + 4], y[i:i + 4], w[i:i + 4] * scale) for i in (0, 4)]
        generated = softmax_graph().fit(batches, class_weight={0: scale, 1: 3 * scale}, epochs=2, verbose=0)
    plain = softmax_graph().fit(x, y, sample_weight=w, class_weight={0: 1.0, 1: 3.0}, epochs=2, batch_size=4,
                                shuffle=False, verbose=0)
    for key, values in plain.history.items():
        np.testing.assert_allclose(extreme.history[key], values, rtol=1e-12)
        np.testing.assert_allclose(generated.history[key], values, rtol=1e-12)


def test_a_batch_whose_weight_products_underflow_is_refused_as_such():
    """Batches are weighed by their sums, so one is not scaled on its own: sample
    weights of 1e-30 times a class weight 1e-300 of the largest are below float64."""
    x = np.random.default_rng(0).normal(size=(4, 2))
    with pytest.raises(gn.GraphError, match=r"row weights of output 'y' in one batch \(sample_weight times "
                                            r"class_weight\) underflow to 0: each product is below float64's"):
        softmax_graph().fit([(x, np.ones(4, int), np.full(4, 1e-30))], class_weight={0: 1.0, 1: 1e-300},
                            epochs=1, verbose=0)


def test_class_weights_far_apart_or_of_an_absent_class_multiply_sample_weights_exactly():
    """Products of 1 from factors 1e200 and 1e-200; a weight of 1e250 for a class no row holds."""
    x = np.random.default_rng(0).normal(size=(8, 2))
    y = np.array([0, 1] * 4)
    plain = softmax_graph().fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0).history["loss"]
    opposite = softmax_graph().fit(x, y, sample_weight=np.where(y == 0, 1e200, 1e-200),
                                   class_weight={0: 1e-200, 1: 1e200}, epochs=2, batch_size=4, shuffle=False,
                                   verbose=0).history["loss"]
    np.testing.assert_allclose(opposite, plain, rtol=1e-12)
    zeros = np.zeros(8, int)
    absent = softmax_graph().fit(x, zeros, sample_weight=np.full(8, 1e-100), class_weight={1: 1e250}, epochs=2,
                                 batch_size=4, shuffle=False, verbose=0).history["loss"]
    unweighted = softmax_graph().fit(x, zeros, epochs=2, batch_size=4, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(absent, unweighted, rtol=1e-12)


def test_a_batch_of_a_generator_whose_weights_overflow_is_refused_naming_the_output():
    g = softmax_graph()
    x = np.random.default_rng(0).normal(size=(4, 2))
    batches = [(x, np.array([0, 1, 0, 1]), np.full(4, 1e308))]
    with pytest.raises(gn.GraphError, match=r"row weights of output 'y' in one batch sum beyond float64's range"):
        g.fit(batches, epochs=1, verbose=0)


def regression():
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 3)
    g.add_output("y", 1)
    g.connect("x", "y")
    return g


@pytest.mark.parametrize("weight", [1e-280, 1e300, 1e-310])
def test_generator_batches_and_dask_chunks_of_uniform_extreme_weights_train_as_unweighted(weight):
    dask_array = pytest.importorskip("dask.array")
    x = np.random.default_rng(1).normal(size=(64, 3))
    y = x[:, :1] * 2
    plain = regression().fit(x, y, batch_size=32, shuffle=False, epochs=2, verbose=0).history["loss"]
    batches = [(x[i:i + 32], y[i:i + 32], np.full(32, weight)) for i in (0, 32)]
    weighted = regression().fit(batches, epochs=2, verbose=0).history["loss"]
    np.testing.assert_allclose(weighted, plain, rtol=1e-12)
    g = regression()
    evaluated = g.evaluate(dask_array.from_array(x, chunks=32), dask_array.from_array(y, chunks=32),
                           sample_weight=dask_array.from_array(np.full(64, weight), chunks=32))
    assert evaluated["loss"] == pytest.approx(g.evaluate(x, y)["loss"], rel=1e-12)


@pytest.mark.parametrize("small", [1e-10, 1e-310])
def test_batches_of_weights_far_apart_give_numpy_average_s_loss(small):
    x = np.random.default_rng(1).normal(size=(64, 3))
    y = x[:, :1] * 2
    w = np.r_[np.full(32, 1e300 if small == 1e-10 else 1.0), np.full(32, small)]
    g = regression()
    rows = ((g.predict(x) - y) ** 2).ravel()
    expected = np.average(rows, weights=w / w.max())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert g.evaluate(x, y, sample_weight=w, batch_size=32)["loss"] == pytest.approx(expected, rel=1e-9)
        history = regression().fit(x, y, sample_weight=w, batch_size=32, shuffle=False, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    from graphnet.sklearn import GraphNetRegressor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not converged
        model = GraphNetRegressor(batch_size=32, shuffle=False, alpha=0.0, max_iter=2, random_state=0)
        model.fit(x, y.ravel(), sample_weight=w)
    assert np.isfinite(model.loss_curve_).all()


def test_regression_metrics_of_a_float32_graph_follow_scikit_learn_beyond_float32_s_squares():
    g = gn.Graph(seed=0)
    g.add_input("x", 2)
    g.add_output("y", 1)
    g.connect("x", "y")
    x = np.array([[1.0, 0], [0.5, 1.0]])
    p = g.predict(x)
    y = np.array([[1e20], [-1e20]])
    figures = g.evaluate(x, y, metrics=["mse", "rmse"])
    assert figures["mse"] == pytest.approx(mean_squared_error(y, p), rel=1e-6)  # targets held in float32
    assert figures["rmse"] == pytest.approx(math.sqrt(mean_squared_error(y, p)), rel=1e-6)
    y = np.array([[3e38], [-3e38]])
    assert g.evaluate(x, y, metrics=["mae"])["mae"] == pytest.approx(mean_absolute_error(y, p), rel=1e-6)


def test_a_graph_whose_names_compress_a_thousand_times_loads_back(tmp_path):
    name = "a" * 10_000
    g = gn.Graph(seed=0)
    g.add_input(name, 2)
    g.add_output(name + "o", 1)
    g.connect(name, name + "o")
    x = np.ones((3, 2))
    loaded = gn.load(g.save(tmp_path / "long.gnet"))
    np.testing.assert_array_equal(loaded.predict(x), g.predict(x))
    g.load_weights(g.save_weights(tmp_path / "long.weights.gnet"))


@pytest.mark.parametrize("bins", [10_000_001, 2**40, 2**63])
def test_auc_refuses_a_histogram_it_could_not_hold_before_allocating(bins):
    with pytest.raises(gn.GraphError, match=r"AUC: num_thresholds must be at most 10,000,000"):
        gn.metrics.AUC(num_thresholds=bins)


def test_a_growing_exponential_decay_reaches_inf_as_keras_s_and_fit_says_the_step_is_not_finite():
    schedule = gn.schedules.ExponentialDecay(0.01, decay_steps=1000, decay_rate=2.0)
    assert schedule(1_100_000) == math.inf
    assert schedule(10**400) == math.inf
    assert gn.schedules.ExponentialDecay(0.01, 1, 0.5, staircase=True)(10**400) == 0.0
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 2)
    g.add_output("y", 1)
    g.connect("x", "y")
    before = g.get_weights()
    opt = gn.optimizers.SGD(lr=gn.schedules.ExponentialDecay(1e-300, decay_steps=1, decay_rate=1e300))
    with pytest.raises(gn.TrainingError, match="is not finite"):
        g.fit(np.ones((8, 2)), np.ones(8), batch_size=1, verbose=0, optimizer=opt)
    assert all(np.isfinite(v).all() for v in g.get_weights().values())
    assert g.get_weights().keys() == before.keys()


def normalizing():
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("a", normalize=True)
    g.add_output("y", 1)
    g.connect("a", "y")
    return g


@pytest.mark.parametrize("column", [
    [0.3, 0.1 + 0.2, 0.3, 0.3],
    [1e6, 1e6 + 1e-9, 1e6, 1e6],
    [1e300, -1e300, 1e300, -1e300],
    [1.7e308, -1.7e308, 1.7e308, -1.7e308],
    [1.0, 2.0, 4.0, 8.0],
], ids=["0.3 rounded", "1e6 rounded", "1e300", "near float64 max", "plain"])
def test_normalising_statistics_equal_standard_scaler_s(column):
    column = np.array(column)
    g = normalizing()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g.adapt(pd.DataFrame({"a": column}))
    if np.abs(column).max() < 1e150:
        scaler = StandardScaler().fit(column[:, None])
        mean, std = scaler.mean_, scaler.scale_
    else:  # StandardScaler's squares overflow there: the exact values, worked in float64 halves
        mean, std = np.zeros(1), np.sqrt(np.mean((column / 2.0**600) ** 2, keepdims=True)) * 2.0**600
    np.testing.assert_allclose(g["a"].mean, mean, rtol=1e-15)
    np.testing.assert_allclose(g["a"].std, std, rtol=1e-15)


def test_a_column_whose_mean_overflows_is_refused_naming_it():
    with pytest.raises(gn.ShapeError, match=r"column 'a' spreads beyond float64's range"):
        normalizing().adapt(pd.DataFrame({"a": [1.7e308, 1.7e308, -1.7e308, 1.7e308]}) * 1.05)


def test_gradients_say_inf_without_numpy_s_overflow_warning():
    g = gn.Graph(seed=0)
    g.add_input("x", 2)
    g.add_output("y", 1)
    g.connect("x", "y")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, _ = g.gradients(np.array([[1.0, 0], [0.5, 1.0]]), np.array([[1e20], [-1e20]]))
    assert loss == math.inf


@pytest.mark.parametrize("columns", [["a1", "a2"], None])
def test_a_value_too_large_for_float32_is_named_by_its_column_beside_missing_indicators(columns):
    g = gn.Graph(seed=0)
    g.add_input("a", columns=columns, missing="indicator")
    g.add_output("y", 1)
    g.connect("a", "y")
    width = len(columns) if columns else 1
    g.adapt({"a": np.random.default_rng(0).normal(size=(5, width))})
    row = np.zeros((1, width))
    row[0, -1] = 1e308
    with pytest.raises(gn.ShapeError, match=rf"in column '{columns[-1] if columns else 'a'}' \(1 row\)"):
        g.predict({"a": row})


def test_softmax_and_selu_of_finite_values_near_the_float32_limit_warn_nothing():
    """z - max(z) below -3.4e38 is -inf (whose exp is the right 0), and SELU's
    unused branch scaled z < -3.2e38 to -inf: each with numpy's overflow warning."""
    for activation, row, expected in (("softmax", [3e38, -3e38, 0.0], [1.0, 0.0, 0.0]),
                                      ("selu", [-3.4e38, 0.0, 1.0], [-1.7580993, 0.0, 1.050701])):
        g = gn.Graph(seed=0, dtype="float32")
        g.add_input("x", 3)
        g.add_output("y", 3, activation=activation)
        g.connect("x", "y")
        g.set_weights({"x->y.weight": np.eye(3), "y.bias": np.zeros(3)})
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = g.predict(np.array([row] * 8))  # 8 rows: numpy's path, not the one-row kernel
        np.testing.assert_allclose(got, [expected] * 8, rtol=1e-6)


def test_statistics_of_activations_beyond_1e154_are_finite():
    """Their squares overflow: std and the gradient norm were inf."""
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 2)
    g.add_hidden("h", 2, activation="linear")
    g.add_output("y", 1, loss="mae")
    g.connect("x", "h")
    g.connect("h", "y")
    g.set_weights({"x->h.weight": np.eye(2), "h.bias": np.zeros(2), "h->y.weight": np.ones((2, 1)),
                   "y.bias": np.zeros(1)})
    x = np.array([[1, -1], [-1, 1], [1, 1], [-1, -1]]) * 1e200
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the forward pass's own sums of 1e200 squared are not the point
        stats = g.statistics(x, np.zeros((4, 1)))
    assert stats.nodes["h"].std == pytest.approx(1e200, rel=1e-12)
    grad = g.gradients(x, np.zeros((4, 1)))[1]["x->h.weight"]
    assert stats.synapses[("x", "h")].grad_norm == pytest.approx(_hypot(grad), rel=1e-12)


def _hypot(array) -> float:
    return float(np.sqrt(np.sum((np.asarray(array) / 1e200) ** 2)) * 1e200)
