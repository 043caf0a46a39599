"""Loss values against plain formulas, fused pairs, and target checks."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import graphnet as gn
from graphnet import GraphError, ShapeError, losses


def test_mse_mae_huber_values(rng):
    y, a = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    r = a - y
    assert losses.get("mse").value(y, a) == pytest.approx(np.mean(r**2))
    assert losses.get("mae").value(y, a) == pytest.approx(np.mean(np.abs(r)))
    huber = np.where(np.abs(r) <= 1, 0.5 * r**2, np.abs(r) - 0.5)
    assert losses.get("huber").value(y, a) == pytest.approx(np.mean(huber))


def test_binary_crossentropy_from_logits_matches_the_formula(rng):
    z = rng.normal(size=(6, 2))
    p = 1 / (1 + np.exp(-z))
    y = rng.integers(0, 2, size=(6, 2)).astype(float)
    expected = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    loss = losses.get("binary_crossentropy")
    assert loss.value(y, p, z) == pytest.approx(expected, rel=1e-12)
    assert loss.value(y, p) == pytest.approx(expected, rel=1e-9)  # from probabilities


def test_categorical_crossentropy_matches_the_formula(rng):
    z = rng.normal(size=(6, 4))
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    labels = rng.integers(0, 4, size=6)
    expected = -np.mean(np.log(p[np.arange(6), labels]))
    loss = losses.get("categorical_crossentropy")
    assert loss.value(labels, p, z) == pytest.approx(expected, rel=1e-12)
    assert loss.value(np.eye(4)[labels], p, z) == pytest.approx(expected, rel=1e-12)


def test_saturated_logits_give_finite_losses():
    z = np.array([[1000.0, -1000.0]], dtype=np.float32)
    p = gn.activations.Softmax().forward(z.copy())
    cce = losses.get("categorical_crossentropy").value(np.array([1]), p, z)
    assert np.isfinite(cce) and cce == pytest.approx(2000.0)
    s = gn.activations.Sigmoid().forward(z.copy())
    bce = losses.get("binary_crossentropy").value(np.array([[0.0, 1.0]]), s, z)
    assert np.isfinite(bce) and bce == pytest.approx(1000.0)


def test_fused_delta_is_p_minus_y_over_count(rng):
    p = np.full((4, 2), 0.25)
    y = np.zeros((4, 2))
    np.testing.assert_allclose(losses.get("binary_crossentropy").delta(y, p), p / 8)
    labels = np.array([0, 1, 1, 0])
    d = losses.get("categorical_crossentropy").delta(labels, np.full((4, 2), 0.5))
    np.testing.assert_allclose(d, (np.full((4, 2), 0.5) - np.eye(2)[labels]) / 4)


@pytest.mark.parametrize(
    "activation, loss",
    [("relu", "binary_crossentropy"), ("softmax", "binary_crossentropy"), ("sigmoid", "categorical_crossentropy")],
)
def test_cross_entropy_needs_its_activation(activation, loss):
    g = gn.Graph()
    with pytest.raises(GraphError, match=rf"output 'y': loss '{loss}' needs activation"):
        g.add_output("y", 3, activation=activation, loss=loss)
    assert "y" not in g


def test_softmax_over_one_unit_is_refused():
    with pytest.raises(GraphError, match="softmax over 1 unit"):
        gn.Graph().add_output("y", 1, activation="softmax", loss="categorical_crossentropy")


def test_targets_are_checked():
    bce, cce = losses.get("binary_crossentropy"), losses.get("categorical_crossentropy")
    f32 = np.dtype(np.float32)
    with pytest.raises(ShapeError, match=r"output 'o': binary_crossentropy targets must lie in \[0, 1\], found value 2$"):
        bce.prepare_target(np.array([[2.0]]), 1, "o", f32)
    with pytest.raises(ShapeError, match=r"class labels must lie in \[0, 3\), found labels from 0 to 3$"):
        cce.prepare_target(np.array([0, 3]), 3, "o", f32)
    with pytest.raises(ShapeError, match=r"class labels must lie in \[0, 3\), found label 3$"):
        cce.prepare_target(np.array([3, 3]), 3, "o", f32)
    with pytest.raises(ShapeError, match="non-integer"):
        cce.prepare_target(np.array([0.5, 1.0]), 3, "o", f32)
    with pytest.raises(ShapeError, match="row 1 sums to 2"):
        cce.prepare_target(np.array([[1.0, 0, 0], [1, 1, 0]]), 3, "o", f32)
    with pytest.raises(ShapeError, match=r"output 'o': expected targets of shape \(n, 2\), got \(4, 3\)"):
        losses.get("mse").prepare_target(np.zeros((4, 3)), 2, "o", f32)
    with pytest.raises(ShapeError, match="NaN or inf"):
        losses.get("mse").prepare_target(np.array([np.nan]), 1, "o", f32)
    labels = cce.prepare_target(np.array([2.0, 0.0]), 3, "o", f32)
    assert labels.dtype == np.intp and list(labels) == [2, 0]
    column = losses.get("mse").prepare_target(np.array([1, 2]), 1, "o", f32)
    assert column.shape == (2, 1) and column.dtype == np.float32


def test_unknown_loss_lists_the_known_ones():
    with pytest.raises(GraphError, match=r"unknown loss 'hinge'; known: \['binary_crossentropy'"):
        losses.get("hinge")


# ------------------------------------------------------------- sample weights
def _weighted_case(loss, rng):
    if loss == "binary_crossentropy":
        return "sigmoid", rng.integers(0, 2, size=(6, 3)).astype(float)
    if loss in ("categorical_crossentropy", "sparse_categorical_crossentropy"):
        return "softmax", rng.integers(0, 3, size=6)
    return "linear", rng.normal(size=(6, 3))


@pytest.mark.parametrize("loss", sorted(losses.LOSSES))
def test_weighted_losses_are_sum_w_l_over_sum_w(loss, rng):
    """A weight of 0 drops a row and 2 counts it twice (numpy.average's convention)."""
    activation, y = _weighted_case(loss, rng)
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 4)
    g.add_output("o", 3, activation=activation, loss=loss)
    g.connect("x", "o")
    x = rng.normal(size=(6, 4))
    w = np.array([1.0, 0.0, 2.0, 1.0, 0.5, 3.0])
    per_row = [g.evaluate(x[i:i + 1], y[i:i + 1])["loss"] for i in range(6)]
    assert g.evaluate(x, y, sample_weight=w)["loss"] == pytest.approx(np.average(per_row, weights=w), rel=1e-12)
    integer_w = np.array([1.0, 0.0, 2.0, 1.0, 0.0, 3.0])
    repeated = np.repeat(np.arange(6), integer_w.astype(int))
    duplicated = g.evaluate(x[repeated], y[repeated])["loss"]
    assert g.evaluate(x, y, sample_weight=integer_w)["loss"] == pytest.approx(duplicated, rel=1e-12)
    # ... and the same holds for the gradient: one SGD step on each agrees
    g2 = gn.Graph(seed=0, dtype="float64")
    g2.add_input("x", 4)
    g2.add_output("o", 3, activation=activation, loss=loss)
    g2.connect("x", "o")
    g2.train_step(x, y, optimizer="sgd", sample_weight=integer_w)
    g.train_step(x[repeated], y[repeated], optimizer="sgd")
    np.testing.assert_allclose(g2.get_weights()["x->o.weight"], g.get_weights()["x->o.weight"], rtol=1e-12)


def test_sample_weight_errors():
    g = gn.Graph()
    g.add_input("x", 2)
    g.add_output("o", 1)
    g.connect("x", "o")
    x, y = np.ones((3, 2)), np.ones(3)
    for bad, error, message in [
        (np.ones(2), ShapeError, r"expected shape \(3,\), one weight per row, got \(2,\)"),
        (np.array([1.0, -1.0, 1.0]), GraphError, "weights must be finite and >= 0"),
        (np.array([1.0, np.nan, 1.0]), GraphError, "weights must be finite and >= 0"),
        ({"nope": np.ones(3)}, GraphError, r"sample_weight names unknown outputs \['nope'\]"),
        ("abc", GraphError, "expected numbers"),
    ]:
        with pytest.raises(error, match=message):
            g.fit(x, y, sample_weight=bad, verbose=0)
    with pytest.raises(GraphError, match="class weights need a loss whose targets are class labels"):
        g.fit(x, y, class_weight={0: 1.0}, verbose=0)


def test_class_weight_refused_for_its_loss_says_which_losses_take_it():
    class SquaredLabels(gn.losses.Loss):
        name = "squared_labels"

        def value(self, y, a):
            return ((a - y) ** 2).sum(axis=1)

        def gradient(self, y, a):
            return 2 * (a - y)

    g = gn.Graph(seed=0)
    g.add_input("x", 2)
    g.add_output("o", 1, activation="sigmoid", loss=SquaredLabels())  # the right output, not the right loss
    g.connect("x", "o")
    x, y = np.ones((4, 2)), np.array([0.0, 1.0, 1.0, 0.0])
    before = g.get_weights()
    with pytest.raises(GraphError) as caught:
        g.fit(x, y, class_weight={0: 1.0, 1: 3.0}, verbose=0)
    message = str(caught.value)
    assert message == (
        "class_weight for output 'o': class weights need a loss whose targets are class labels "
        "(categorical_crossentropy or sparse_categorical_crossentropy on a softmax output, binary_crossentropy "
        "on 1 sigmoid unit); output 'o' has loss 'squared_labels' on 1 sigmoid unit(s): use sample_weight"
    )
    assert all(np.array_equal(before[k], v) for k, v in g.get_weights().items())


@pytest.mark.parametrize("labels, found", [
    (np.array([0, 2**64 - 1], dtype=np.uint64), "labels from 0 to 18446744073709551615"),
    (np.array([0.0, 1e300]), "labels from 0 to 1e+300"),
    (np.array([0, 2**62]), "labels from 0 to 4611686018427387904"),
    (np.array([-1, 0]), "labels from -1 to 0"),
    (np.array([0.0, 1000001.0]), "labels from 0 to 1000001"),
])
def test_a_label_out_of_range_is_named_as_given(labels, found):
    """It was cast to intp first: 2**64 - 1 read as -1, 1e300 as -9.2e18 (with
    numpy's cast warning), and integers beyond 1e6 were shown as 1e+06."""
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 3)
    g.add_output("y", 3, activation="softmax", loss="categorical_crossentropy")
    g.connect("x", "y")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        expected = rf"output 'y': class labels must lie in \[0, 3\), found {re.escape(found)}$"
        with pytest.raises(gn.ShapeError, match=expected):
            g.evaluate(np.eye(3)[:2], labels)


def test_a_negative_soft_target_is_named_in_its_row():
    """The row whose sum was furthest from 1 was named, though every row summed to 1."""
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 3)
    g.add_output("y", 3, activation="softmax", loss="categorical_crossentropy")
    g.connect("x", "y")
    with pytest.raises(gn.ShapeError, match=r"rows of values >= 0 summing to 1 .*; row 1 holds -1$"):
        g.evaluate(np.eye(3)[:2], np.array([[1.0, 0, 0], [-1.0, 2.0, 0]]))


def test_nan_and_inf_targets_are_counted_separately():
    y = np.array([[np.nan, np.inf], [1.0, -np.inf], [np.nan, 0.0]])
    with pytest.raises(ShapeError, match=re.escape("4 value(s) in 3 row(s), the first row 0 (2 NaN, 2 inf)")):
        losses.get("mse").prepare_target(y, 2, "o", np.dtype(np.float64))


def _softmax_graph():
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 4)
    g.add_output("o", 3, activation="softmax", loss="categorical_crossentropy")
    g.connect("x", "o")
    return g


@pytest.mark.parametrize("soft", [False, True])
def test_weighted_categorical_crossentropy_of_probability_rows(soft):
    rng = np.random.default_rng(3)
    g = _softmax_graph()
    x = rng.normal(size=(6, 4))
    if soft:
        y = rng.random(size=(6, 3))
        y /= y.sum(axis=1, keepdims=True)
    else:
        y = np.eye(3)[rng.integers(0, 3, size=6)]
    w = np.array([1.0, 0.0, 2.0, 1.0, 0.5, 3.0])
    p = np.asarray(g.predict(x), dtype=np.float64)
    per_row = -(y * np.log(p)).sum(axis=1)  # float64 truth from the predicted probabilities
    got = g.evaluate(x, y, sample_weight=w)["loss"]
    assert got == pytest.approx(np.average(per_row, weights=w), rel=1e-10)
    assert g.evaluate(x, y)["loss"] == pytest.approx(per_row.mean(), rel=1e-10)


def test_loss_repr_names_its_parameters():
    assert repr(losses.get("huber")) == "Huber(delta=1.0)"
    assert repr(losses.get("mse")) == "MeanSquaredError()"


def test_two_columns_of_targets_for_one_unit_are_refused():
    with pytest.raises(ShapeError, match=re.escape("output 'o': expected targets of shape (n, 1), got (4, 2)")):
        losses.get("mse").prepare_target(np.zeros((4, 2)), 1, "o", np.dtype(np.float64))


def test_a_custom_loss_without_gradient_is_refused_by_name():

    class NoGrad(gn.losses.Loss):
        name = "nograd_loss_mut"

        def value(self, y, a):
            return ((a - y) ** 2).mean(axis=1)

    with pytest.raises(gn.GraphError, match="custom loss NoGrad: missing gradient"):
        gn.losses.get(NoGrad())


def test_huber_refuses_delta_zero():
    with pytest.raises(gn.GraphError, match="huber: delta must be > 0 and finite, got 0.0"):
        losses.get({"name": "huber", "delta": 0.0})
