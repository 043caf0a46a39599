"""Learning on real data, against accuracies measured with other tools on the same split."""

from __future__ import annotations

import numpy as np
import pytest

import graphnet as gn

datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn provides the data sets")


def test_breast_cancer_mlp_matches_other_tools():
    # First 100 rows held out, standardised with the training rows' statistics.
    # On this split a hand-written numpy trainer, PyTorch and scikit-learn's MLP
    # each average 0.963 over seeds; a numpy tutorial reported 0.94-0.97.
    x, y = datasets.load_breast_cancer(return_X_y=True)
    x_train, y_train, x_test, y_test = x[100:], y[100:], x[:100], y[:100]
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    accuracies = []
    for seed in range(3):
        model = gn.Sequential(
            [
                gn.Input(30),
                gn.Dense(128, activation="relu"),
                gn.Dense(64, activation="relu"),
                gn.Dense(32, activation="relu"),
                gn.Dense(1, activation="sigmoid"),
            ],
            loss="binary_crossentropy",
            seed=seed,
        )
        assert model.num_params == 14_337
        model.fit(x_train, y_train, epochs=50, batch_size=32, optimizer="adam", verbose=0)
        accuracies.append(model.evaluate(x_test, y_test, metrics=["accuracy"])["accuracy"])
    assert np.mean(accuracies) >= 0.955, accuracies


def test_two_input_two_output_digits():
    # The demo's graph: the top and bottom halves of each image as two inputs;
    # outputs: the digit (softmax) and whether it is even (sigmoid).
    from graphnet.demo import build_model, load_data

    (x_train, y_train), (x_test, y_test) = load_data(seed=0)
    g = build_model(seed=0)
    assert g.inputs == ["top", "bottom"] and g.outputs == ["digit", "even"]
    g.fit(x_train, y_train, epochs=40, batch_size=32, verbose=0)
    logs = g.evaluate(x_test, y_test, metrics=["accuracy"])
    assert logs["digit_accuracy"] >= 0.96, logs
    assert logs["even_accuracy"] >= 0.95, logs
