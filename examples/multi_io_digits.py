"""Two inputs, two outputs on scikit-learn's digits: the upper and lower halves
of each 8x8 image come in separately; the graph predicts the digit (softmax)
and whether it is even (sigmoid), the second output also reading the first.
Needs scikit-learn."""

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import graphnet as gn

digits = load_digits()
x_train, x_test, y_train, y_test = train_test_split(
    digits.data / 16.0, digits.target, test_size=0.25, random_state=0, stratify=digits.target
)

g = gn.Graph(name="digits", seed=0)
g.add_input("top", 32)
g.add_input("bottom", 32)
g.add_hidden("top_h", 64, activation="relu")
g.add_hidden("bottom_h", 64, activation="relu")
g.add_hidden("joint", 64, activation="relu", dropout=0.1)
g.add_output("digit", 10, activation="softmax", loss="categorical_crossentropy")
g.add_output("even", 1, activation="sigmoid", loss="binary_crossentropy", loss_weight=0.5)
g.connect("top", "top_h")
g.connect("bottom", "bottom_h")
g.connect(["top_h", "bottom_h"], "joint")
g.connect("joint", "digit")
g.connect(["joint", "digit"], "even")


def split(rows):
    return {"top": rows[:, :32], "bottom": rows[:, 32:]}


g.fit(
    split(x_train),
    {"digit": y_train, "even": y_train % 2 == 0},
    epochs=40,
    batch_size=32,
    metrics=["accuracy"],
    validation_split=0.1,
    verbose=2,
)
logs = g.evaluate(split(x_test), {"digit": y_test, "even": y_test % 2 == 0}, metrics=["accuracy"])
print(g)
print(f"held-out accuracy: digit {logs['digit_accuracy']:.3f}, even {logs['even_accuracy']:.3f}")
