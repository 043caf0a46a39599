"""Metrics (graphnet.metrics): values against hand computations, names, choices."""

from __future__ import annotations

import numpy as np
import pytest

import graphnet as gn
from graphnet import GraphError, metrics


def test_metric_arguments_are_checked():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4))
    y = (x[:, 0] + x[:, 1] > 0).astype(float)
    g = gn.Graph(seed=0)
    g.add_input("x", 4)
    g.add_hidden("h", 8)
    g.add_output("y", 1, activation="sigmoid", loss="binary_crossentropy")
    g.connect("x", "h")
    g.connect("h", "y")
    with pytest.raises(GraphError, match=r"unknown metric 'f1'"):
        g.fit(x, y, metrics=["f1"], verbose=0)
    with pytest.raises(GraphError, match=r"metrics for unknown outputs \['z'\]"):
        g.evaluate(x, y, metrics={"z": ["mae"]})
    r = gn.Graph()
    r.add_input("x", 4)
    r.add_output("y", 1)
    r.connect("x", "y")
    with pytest.raises(GraphError, match=r"metric 'accuracy' fits none of the outputs 'y' \(linear\)"):
        r.evaluate(x, y, metrics=["accuracy"])


def _output(activation, size, loss):
    g = gn.Graph()
    return g.add_output("o", size, activation=activation, loss=loss)


def test_accuracy_mae_and_mse_by_hand():
    softmax = _output("softmax", 3, "categorical_crossentropy")
    a = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.4, 0.1], [0.2, 0.5, 0.3]])
    labels = np.array([0, 2, 1, 1])
    assert metrics.get("accuracy")(labels, a, softmax) == 0.75
    assert metrics.get("accuracy")(np.eye(3)[labels], a, softmax) == 0.75
    sigmoid = _output("sigmoid", 2, "binary_crossentropy")
    p, y = np.array([[0.9, 0.4], [0.2, 0.6]]), np.array([[1.0, 1.0], [0.0, 1.0]])
    assert metrics.get("accuracy")(y, p, sigmoid) == 0.75  # per element
    linear = _output("linear", 2, "mse")
    pred, target = np.array([[1.0, -2.0], [0.5, 3.0]]), np.array([[0.0, 0.0], [0.5, 1.0]])
    assert metrics.get("mae")(target, pred, linear) == pytest.approx((1 + 2 + 0 + 2) / 4)
    assert metrics.get("mse")(target, pred, linear) == pytest.approx((1 + 4 + 0 + 4) / 4)
    # integer labels count as one-hot rows for mae/mse on a softmax output
    assert metrics.get("mse")(labels, a, softmax) == pytest.approx(np.mean((a - np.eye(3)[labels]) ** 2))


def test_keys_follow_keras_and_resolve_names_each_output():
    g = gn.Graph()
    g.add_input("x", 2)
    g.add_output("p", 1, activation="sigmoid", loss="binary_crossentropy")
    g.add_output("r", 1)
    g.connect("x", "p")
    g.connect("x", "r")
    chosen = metrics.resolve(g, ["accuracy", "mae"])
    assert [m.name for m in chosen["p"]] == ["accuracy", "mae"] and [m.name for m in chosen["r"]] == ["mae"]
    assert metrics.key(g, "p", "accuracy") == "p_accuracy"
    with pytest.raises(GraphError, match="metric 'accuracy' is not defined for output 'r'"):
        metrics.resolve(g, {"r": "accuracy"})
    with pytest.raises(GraphError, match=r"unknown metric 'auc'; known: \['accuracy', 'mae', 'mse'\]"):
        metrics.get("auc")
