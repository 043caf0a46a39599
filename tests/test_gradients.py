"""Gradients against central finite differences in float64.

Parametrised over the registries, so a new activation or loss is checked
automatically.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import build_dag, dag_data
from gradcheck import assert_gradients_match

import graphnet as gn
from graphnet import activations, losses
from graphnet.activations import ACTIVATIONS

ACTIVATION_VARIANTS = [cls() for cls in activations.ACTIVATIONS.values()] + [
    activations.LeakyReLU(0.2),
    activations.ELU(0.5),
    activations.GELU(approximate=True),
    activations.HardSigmoid(alpha=0.2),
]


def _check(graph, x, y):
    return assert_gradients_match(graph, x, y).loss


@pytest.mark.parametrize("activation", ACTIVATION_VARIANTS, ids=repr)
def test_every_activation_in_a_hidden_node(activation, rng):
    g = gn.Graph(seed=1, dtype="float64")
    g.add_input("x", 4)
    g.add_hidden("h", 5, activation=activation)
    g.add_output("y", 3, activation="linear", loss="mse")
    g.connect("x", "h")
    g.connect("h", "y")
    # Away from relu's kink at 0, where the derivative is undefined.
    x = rng.normal(size=(6, 4))
    _check(g, x, rng.normal(size=(6, 3)))


@pytest.mark.parametrize("activation", ACTIVATION_VARIANTS, ids=repr)
def test_every_activation_as_an_output_with_mse(activation, rng):
    g = gn.Graph(seed=2, dtype="float64")
    g.add_input("x", 3)
    g.add_output("y", 4, activation=activation, loss="mse")
    g.connect("x", "y")
    _check(g, rng.normal(size=(5, 3)), rng.normal(size=(5, 4)))


def _loss_case(name: str, rng):
    """(activation, targets) that make sense for each loss."""
    if name == "binary_crossentropy":
        return "sigmoid", rng.integers(0, 2, size=(6, 3)).astype(float)
    if name == "categorical_crossentropy":
        return "softmax", np.eye(3)[rng.integers(0, 3, size=6)]
    if name == "sparse_categorical_crossentropy":
        return "softmax", rng.integers(0, 3, size=6)
    return "tanh", rng.normal(size=(6, 3))


@pytest.mark.parametrize("loss", sorted(losses.LOSSES))
def test_every_loss(loss, rng):
    activation, y = _loss_case(loss, rng)
    g = gn.Graph(seed=3, dtype="float64")
    g.add_input("x", 4)
    g.add_hidden("h", 5, activation="tanh")
    g.add_output("y", 3, activation=activation, loss=loss, loss_weight=1.5)
    g.connect("x", "h")
    g.connect("h", "y")
    _check(g, rng.normal(size=(6, 4)), y)


def test_huber_in_both_regions(rng):
    g = gn.Graph(seed=4, dtype="float64")
    g.add_input("x", 3)
    g.add_output("y", 2, loss=gn.losses.Huber(delta=0.5))
    g.connect("x", "y")
    x = rng.normal(size=(8, 3))
    # Residuals beyond delta in one column, within it in the other, on the batch checked.
    residual = np.column_stack([rng.uniform(1.0, 3.0, 8) * rng.choice([-1, 1], 8), rng.uniform(-0.4, 0.4, 8)])
    y = g.predict(x) + residual
    assert 0 < np.mean(np.abs(g.predict(x) - y) > 0.5) < 1
    _check(g, x, y)


def test_categorical_crossentropy_with_integer_labels(rng):
    g = gn.Graph(seed=5, dtype="float64")
    g.add_input("x", 4)
    g.add_output("y", 3, activation="softmax", loss="categorical_crossentropy")
    g.connect("x", "y")
    x, labels = rng.normal(size=(6, 4)), rng.integers(0, 3, size=6)
    loss_labels = _check(g, x, labels)
    loss_onehot, _ = g.gradients(x, np.eye(3)[labels])
    assert loss_labels == pytest.approx(loss_onehot, rel=1e-12)


def test_dag_with_fan_in_fan_out_skip_and_output_feeding_a_node(rng):
    g = build_dag()
    x, y = dag_data(rng)
    _check(g, x, y)


def test_frozen_synapse_still_passes_gradient_back(rng):
    g = gn.Graph(seed=6, dtype="float64")
    g.add_input("x", 3)
    g.add_hidden("h", 4, activation="sigmoid")
    g.add_output("y", 2)
    g.connect("x", "h")
    g.connect("h", "y", trainable=False)
    _check(g, rng.normal(size=(5, 3)), rng.normal(size=(5, 2)))


def test_gradients_change_no_weights(rng):
    g = build_dag()
    before = g.get_weights()
    g.gradients(*dag_data(rng))
    after = g.get_weights()
    assert all(np.array_equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_activation_in_a_fan_in_node(rng, activation):
    g = gn.Graph(seed=3, dtype="float64")
    g.add_input("a", 4)
    g.add_input("b", 3)
    g.add_hidden("h", 5, activation=activation)
    g.add_hidden("k", 3, activation=activation)
    g.add_output("out", 2, activation="linear", loss="mse")
    g.connect(["a", "b"], "h")
    g.connect(["h", "a"], "k")
    g.connect(["k", "h"], "out")
    x = {"a": rng.normal(size=(6, 4)), "b": rng.normal(size=(6, 3))}
    _check(g, x, rng.normal(size=(6, 2)))


def test_gradients_of_a_one_wide_output_and_a_chain(rng):
    model = gn.Sequential(
        [gn.Input(5), gn.Dense(8, activation="relu"), gn.Dense(4, activation="relu"),
         gn.Dense(1, activation="sigmoid")],
        seed=2, dtype="float64",
    )
    x = rng.normal(size=(9, 5))
    _check(model, x, rng.integers(0, 2, size=9).astype(float))


def test_gradients_match_with_a_shorter_batch_after_a_full_one(rng):
    """The last, shorter batch runs on the leading rows of the full batch's buffers."""
    graph = build_dag()
    x, y = dag_data(rng, rows=7)
    graph.gradients(x, y)  # makes the 7-row workspace first
    short_x = {k: v[:3] for k, v in x.items()}
    short_y = {k: v[:3] for k, v in y.items()}
    _check(graph, short_x, short_y)


@pytest.mark.parametrize(
    "activation, loss, target",
    [
        ("linear", "mse", "real"),
        ("tanh", "mae", "real"),
        ("linear", "huber", "real"),
        ("sigmoid", "binary_crossentropy", "binary"),
        ("softmax", "categorical_crossentropy", "labels"),
        ("softmax", "categorical_crossentropy", "onehot"),
        ("softmax", "mse", "real"),
    ],
)
def test_every_loss_with_a_skip_from_the_input(rng, activation, loss, target):
    g = gn.Graph(seed=5, dtype="float64")
    g.add_input("x", 4)
    g.add_hidden("h", 6, activation="tanh")
    g.add_output("out", 3, activation=activation, loss=loss, loss_weight=0.6)
    g.connect("x", "h")
    g.connect(["h", "x"], "out")
    x = rng.normal(size=(7, 4))
    y = {
        "real": rng.normal(size=(7, 3)),
        "binary": rng.integers(0, 2, size=(7, 3)).astype(float),
        "labels": rng.integers(0, 3, size=7),
        "onehot": np.eye(3)[rng.integers(0, 3, size=7)],
    }[target]
    _check(g, x, y)
