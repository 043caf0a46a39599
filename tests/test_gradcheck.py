"""``gn.check_gradients``: passes for every registered activation and loss,
flags a wrong derivative, and never touches the user's graph."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import build_dag, dag_data

import graphnet as gn
from graphnet import activations, losses


class BrokenTanh(activations.Tanh):
    """tanh with the derivative a user might get wrong: 1 - a instead of 1 - a²."""

    name = "broken_tanh"

    def backward(self, a, grad, z=None):
        return grad * (1 - a)


class SlightlyOffMSE(losses.MeanSquaredError):
    """mse whose gradient forgets the factor 2."""

    name = "off_mse"

    def gradient(self, y, a, r=None):
        return (a - y) / a.size


def small(activation, dtype="float32", loss="mse"):
    g = gn.Graph(name="small", seed=1, dtype=dtype)
    g.add_input("x", 4)
    g.add_hidden("h", 5, activation=activation)
    g.add_output("y", 3, loss=loss)
    g.connect("x", "h")
    g.connect("h", "y")
    return g


@pytest.mark.parametrize("activation", sorted(activations.ACTIVATIONS))
def test_every_registered_activation_passes_at_the_defaults(rng, activation):
    report = gn.check_gradients(small(activation), rng.normal(size=(6, 4)), rng.normal(size=(6, 3)))
    assert report.ok, report.text()
    assert set(report.errors) == {"x->h.weight", "h.bias", "h->y.weight", "y.bias"}
    assert report.checks["x->h.weight"].entries == 20


def test_a_wrong_activation_derivative_is_flagged_where_it_acts(rng):
    report = gn.check_gradients(small(BrokenTanh()), rng.normal(size=(6, 4)), rng.normal(size=(6, 3)))
    assert not report.ok
    assert report.failed == ["x->h.weight", "h.bias"]  # the output's own parameters are right
    assert report.errors["h->y.weight"] < 1e-6 and report.worst.error > 1e-2
    text = report.text()
    assert "FAILED: 2 of 4 parameters disagree" in text
    assert [line.split()[-1] for line in text.splitlines() if line.startswith(" x->h")] == ["FAIL"]
    assert "FAILED" in repr(report)


def test_a_wrong_loss_gradient_is_flagged_everywhere(rng):
    report = gn.check_gradients(small("tanh", loss=SlightlyOffMSE()), rng.normal(size=(6, 4)), rng.normal(size=(6, 3)))
    assert set(report.failed) == set(report.errors)
    np.testing.assert_allclose(report.analytic["y.bias"] * 2, report.numeric["y.bias"], rtol=1e-6)


def test_a_dag_with_dropout_and_fused_losses_passes(rng):
    g = build_dag(dtype="float32")
    g["h1"].dropout = 0.4  # both sides run without dropout, so they measure one function
    assert gn.check_gradients(g, *dag_data(rng)).ok


def test_the_users_graph_is_left_as_it_was(rng):
    g = build_dag(dtype="float32")
    x, y = dag_data(rng, 12)
    g.fit(x, y, epochs=1, verbose=0)
    weights, state, version = g.get_weights(), g.optimizer.get_state(), g.version
    streams = (g.rng.bit_generator.state, g.init_rng.bit_generator.state)
    report = gn.check_gradients(g, x, y)
    assert report.ok
    assert g.dtype == np.float32 and g.version == version
    assert all(np.array_equal(weights[k], v) and v.dtype == np.float32 for k, v in g.get_weights().items())
    assert (g.rng.bit_generator.state, g.init_rng.bit_generator.state) == streams
    assert g.optimizer.get_state()["iterations"] == state["iterations"]
    assert all(np.array_equal(g.optimizer.get_state()["slots"][k], v) for k, v in state["slots"].items())


def test_samples_checks_a_few_entries_per_parameter(rng):
    g = small("relu")
    report = gn.check_gradients(g, rng.normal(size=(6, 4)), rng.normal(size=(6, 3)), samples=3)
    assert [c.entries for c in report.checks.values()] == [3, 3, 3, 3]
    assert np.count_nonzero(~np.isnan(report.numeric["x->h.weight"])) == 3
    assert report.ok


def test_the_report_fits_80_columns_even_with_long_names(rng):
    g = gn.Graph(name="long", seed=0)
    g.add_input("an_input_with_a_very_long_descriptive_name", 2)
    g.add_output("an_output_with_an_even_longer_descriptive_name_too", 1)
    g.connect("an_input_with_a_very_long_descriptive_name", "an_output_with_an_even_longer_descriptive_name_too")
    text = gn.check_gradients(g, rng.normal(size=(3, 2)), rng.normal(size=(3, 1))).text()
    assert max(len(line) for line in text.splitlines()) <= 80, text
    assert "OK: every gradient agrees" in text


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"eps": 0}, "eps must be a number in"),
        ({"eps": "small"}, "eps must be a number in"),
        ({"tolerance": -1}, "tolerance must be a positive number"),
        ({"samples": 0}, "samples must be None or a positive integer"),
        ({"seed": -2}, "seed must be an integer >= 0"),
    ],
)
def test_bad_arguments_are_graph_errors(rng, kwargs, match):
    with pytest.raises(gn.GraphError, match=match):
        gn.check_gradients(small("tanh"), rng.normal(size=(6, 4)), rng.normal(size=(6, 3)), **kwargs)


def test_bad_data_is_a_shape_error(rng):
    with pytest.raises(gn.ShapeError, match=r"expected shape \(n, 4\)"):
        gn.check_gradients(small("tanh"), rng.normal(size=(6, 3)), rng.normal(size=(6, 3)))
    with pytest.raises(gn.ShapeError, match="no rows"):
        gn.check_gradients(small("tanh"), np.zeros((0, 4)), np.zeros((0, 3)))


def test_regularizers_are_part_of_the_checked_loss(rng):
    g = gn.Graph(seed=2)
    g.add_input("x", 4)
    g.add_hidden("h", 5, activation="tanh", bias_regularizer=gn.regularizers.L2(0.3))
    g.add_output("y", 2)
    g.connect("x", "h", regularizer=gn.regularizers.L1L2(l1=0.2, l2=0.1))
    g.connect("h", "y")
    x, y = rng.normal(size=(6, 4)), rng.normal(size=(6, 2))
    report = gn.check_gradients(g, x, y)
    assert report.ok, report.text()
    loss, grads = g.gradients(x, y)
    assert report.loss == pytest.approx(loss, rel=1e-6)
    np.testing.assert_allclose(report.analytic["x->h.weight"], grads["x->h.weight"], rtol=1e-5, atol=1e-7)
