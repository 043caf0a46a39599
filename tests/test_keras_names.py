"""Keras's names where graphnet's differ: compile(loss_weights=), the losses
mean_squared_error, mean_absolute_error and sparse_categorical_crossentropy,
and count_params()."""

from __future__ import annotations

import numpy as np
import pytest

import graphnet as gn
from graphnet import GraphError, ShapeError, losses


@pytest.mark.parametrize("keras_name, ours", [("mean_squared_error", "mse"), ("mean_absolute_error", "mae")])
def test_keras_loss_names_are_graphnet_s_losses(rng, keras_name, ours):
    y, a = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    assert losses.get(keras_name).value(y, a) == losses.get(ours).value(y, a)
    g = gn.Graph()
    g.add_input("x", 3)
    g.add_output("y", 3, loss=keras_name)
    g.connect("x", "y")
    assert g.to_dict()["nodes"][1]["loss"] == ours  # files keep one name per loss


def _classifier(loss="sparse_categorical_crossentropy", activation="softmax"):
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 4)
    g.add_hidden("h", 5, activation="tanh")
    g.add_output("y", 3, activation=activation, loss=loss)
    g.connect("x", "h")
    g.connect("h", "y")
    return g


def test_sparse_categorical_crossentropy_takes_integer_labels(rng):
    g = _classifier()
    x, labels = rng.normal(size=(8, 4)), rng.integers(0, 3, size=8)
    p = g.predict(x)
    expected = -np.mean(np.log(p[np.arange(8), labels]))
    assert g.evaluate(x, labels)["loss"] == pytest.approx(expected, rel=1e-12)
    assert g.evaluate(x, labels[:, None])["loss"] == pytest.approx(expected, rel=1e-12)  # (n, 1), as Keras
    assert gn.check_gradients(g, x, labels).ok
    g.fit(x, labels, epochs=1, verbose=0, class_weight={0: 2.0})


def test_sparse_categorical_crossentropy_refuses_one_hot_rows_and_says_what_takes_them(rng):
    g = _classifier()
    with pytest.raises(ShapeError, match=r"output 'y': sparse_categorical_crossentropy takes integer class labels "
                                         r"of shape \(n,\), got targets of shape \(8, 3\); for one-hot rows use "
                                         r"loss='categorical_crossentropy'"):
        g.evaluate(rng.normal(size=(8, 4)), np.eye(3)[rng.integers(0, 3, size=8)])


def test_a_wrong_pairing_says_integer_labels_work_with_categorical_crossentropy():
    with pytest.raises(GraphError, match=r"loss 'sparse_categorical_crossentropy' needs activation 'softmax', "
                                         r"got 'linear' \(.*from_logits=True.*integer labels already work with "
                                         r"categorical_crossentropy\)"):
        _classifier(activation="linear")


def _two_outputs():
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 3)
    g.add_output("a", 2)
    g.add_output("b", 1, activation="sigmoid", loss="binary_crossentropy")
    g.connect("x", "a")
    g.connect("x", "b")
    return g


@pytest.mark.parametrize("weights", [[0.25, 3.0], {"a": 0.25, "b": 3.0}, (0.25, 3.0)])
def test_compile_loss_weights_in_output_order_or_by_name(rng, weights):
    g = _two_outputs()
    x = rng.normal(size=(6, 3))
    y = {"a": rng.normal(size=(6, 2)), "b": rng.integers(0, 2, size=6).astype(float)}
    assert g.compile(loss_weights=weights) is g
    assert (g["a"].loss_weight, g["b"].loss_weight) == (0.25, 3.0)
    logs = g.evaluate(x, y)
    assert logs["loss"] == pytest.approx(0.25 * logs["a_loss"] + 3.0 * logs["b_loss"], rel=1e-12)


def test_compile_loss_weights_by_name_leave_the_others():
    g = _two_outputs()
    g.compile(loss_weights={"b": 0.5})
    assert (g["a"].loss_weight, g["b"].loss_weight) == (1.0, 0.5)


@pytest.mark.parametrize("weights, match", [
    ([1.0], r"compile: loss_weights has 1 entries for 2 outputs \['a', 'b'\]; give one per output"),
    ({"c": 1.0}, r"compile: loss_weights names unknown outputs \['c'\]; outputs: \['a', 'b'\]"),
    ([1.0, -2.0], r"compile: loss_weights\['b'\]"),
    ([1.0, float("nan")], r"compile: loss_weights\['b'\]"),
    (2.0, r"compile: loss_weights must be a list \(in output order\) or a dict"),
])
def test_bad_loss_weights_change_nothing(weights, match):
    g = _two_outputs()
    before = g.to_dict()
    with pytest.raises(GraphError, match=match):
        g.compile(loss="mse", loss_weights=weights, optimizer="sgd")
    assert g.to_dict() == before and g.optimizer is None


def test_count_params_is_num_params():
    model = gn.Sequential([gn.Input(4), gn.Dense(8, activation="relu"), gn.Dense(3)])
    assert model.count_params() == model.num_params == 4 * 8 + 8 + 8 * 3 + 3
    model["dense"].trainable = False
    assert model.count_params() == 4 * 8 + 8 + 8 * 3 + 3  # frozen parameters count too, as in Keras
