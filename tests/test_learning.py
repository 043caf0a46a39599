"""Learning on real data, against accuracies measured with other tools on the same split."""

from __future__ import annotations

import numpy as np
import pytest

import graphnet as gn

datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn provides the data sets")
model_selection = pytest.importorskip("sklearn.model_selection")


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
    digits = datasets.load_digits()
    x, y = digits.data / 16.0, digits.target
    x_train, x_test, y_train, y_test = model_selection.train_test_split(
        x, y, test_size=0.25, random_state=0, stratify=y
    )
    g = gn.Graph(name="digits", seed=0)
    g.add_input("top", 32)  # the upper four pixel rows
    g.add_input("bottom", 32)  # the lower four
    g.add_hidden("top_h", 64, activation="relu")
    g.add_hidden("bottom_h", 64, activation="relu")
    g.add_hidden("joint", 64, activation="relu", dropout=0.1)
    g.add_output("digit", 10, activation="softmax", loss="categorical_crossentropy")
    g.add_output("even", 1, activation="sigmoid", loss="binary_crossentropy", loss_weight=0.5)
    g.connect("top", "top_h")
    g.connect("bottom", "bottom_h")
    g.connect(["top_h", "bottom_h"], "joint")
    g.connect("joint", "digit")
    g.connect(["joint", "digit"], "even")  # an output feeding another

    def split(rows):
        return {"top": rows[:, :32], "bottom": rows[:, 32:]}

    g.fit(split(x_train), {"digit": y_train, "even": y_train % 2 == 0}, epochs=40, batch_size=32, verbose=0)
    logs = g.evaluate(split(x_test), {"digit": y_test, "even": y_test % 2 == 0}, metrics=["accuracy"])
    assert logs["digit_accuracy"] >= 0.96, logs
    assert logs["even_accuracy"] >= 0.95, logs
