"""A 30-128-64-32-1 network on scikit-learn's breast-cancer data (the first 100
rows held out), averaged over three seeds. Needs scikit-learn."""

import numpy as np
from sklearn.datasets import load_breast_cancer

import graphnet as gn

x, y = load_breast_cancer(return_X_y=True)
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
    model.fit(x_train, y_train, epochs=50, batch_size=32, verbose=0)
    accuracy = model.evaluate(x_test, y_test, metrics=["accuracy"])["accuracy"]
    accuracies.append(accuracy)
    print(f"seed {seed}: held-out accuracy {accuracy:.3f}")
print(f"{model.num_params:,} parameters; mean held-out accuracy {np.mean(accuracies):.3f}")
