"""What changed and what matters, on scikit-learn's digits.

A graph reads the top and bottom halves of each image (and four columns of
pure noise) and learns the digit. A copy is then grown (a wider shared
layer, one more relu layer), its top branch frozen, and trained on. The
script prints what changed (``gn.diff``) and which input mattered
(``g.attributions``), and writes into OUT (default: what-changed-output/)

- ``diff.png``: the two graphs' union, what was added, removed and changed in colour;
- ``attributions.png``: the diagram with each input's share of the attributions;
- ``model.html``: the grown graph as a page to explore, with its statistics.

Run: ``python examples/what_changed.py [OUT]``.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

import graphnet as gn


def build() -> gn.Graph:
    g = gn.Graph(name="digits", seed=0)
    g.add_input("top", 32)
    g.add_input("bottom", 32)
    g.add_input("noise", 4)
    g.add_hidden("top_features", 16, activation="relu")
    g.add_hidden("bottom_features", 16, activation="relu")
    g.add_hidden("shared", 24, activation="relu")
    g.add_output("digit", 10, activation="softmax", loss="categorical_crossentropy")
    g.connect("top", "top_features")
    g.connect("bottom", "bottom_features")
    g.connect(["top_features", "bottom_features", "noise"], "shared")
    g.connect("shared", "digit")
    return g


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    images, labels = load_digits(return_X_y=True)
    images = images / 16.0
    rng = np.random.default_rng(0)
    x = {"top": images[:, :32], "bottom": images[:, 32:], "noise": rng.normal(size=(len(images), 4))}

    before = build()
    before.fit(x, labels, epochs=10, verbose=0)
    after = copy.deepcopy(before)
    after.widen("shared", 32)
    after.insert("shared", "digit", "refine", activation="relu")  # an identity after a relu: exact
    after.freeze("top_features")
    after.fit(x, labels, epochs=5, verbose=0)

    report = gn.diff(before, after, labels=("trained", "grown, top branch frozen, trained on"))
    print(report)
    report.render(out / "diff.png", dpi=96)

    rows = {name: array[:300] for name, array in x.items()}
    attributions = after.attributions(rows)
    print()
    print(attributions)
    after.render(out / "attributions.png", attributions=attributions, dpi=96)
    after.render(out / "model.html", stats=after.statistics(rows, labels[:300]), attributions=attributions)
    noise = attributions.shares["noise"]
    print(f"\nthe noise input has {100 * noise:.1f}% of the attributions; wrote diff.png, "
          f"attributions.png and model.html into {out}/")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "what-changed-output"))
