"""The site's pictures from real runs: ``python docs/scripts/pictures.py [NAME ...]``.

Writes PNGs into ``docs/images/`` (each kept under ~150 KB): ``xor-model``
(the getting-started graph), ``collapsed`` (a deep graph drawn with
``collapse=True``, with statistics), ``demo`` (``demo-model`` and
``demo-history``, from ``graphnet demo``) and ``inside-digits`` (the annotated
diagram of the guide's "Seeing the model"). Without names it writes them all.
The other pictures in ``docs/images/`` (the diff, the attributions, the HTML
page) come from ``examples/what_changed.py`` and a browser's screenshot.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import graphnet as gn  # noqa: E402

IMAGES = ROOT / "docs" / "images"


def xor_model() -> None:
    g = gn.Graph(name="xor", seed=0)
    g.add_input("x", 2)
    g.add_hidden("h", 8, activation="tanh")
    g.add_output("y", 1, activation="sigmoid", loss="binary_crossentropy")
    g.connect("x", "h")
    g.connect("h", "y")
    g.render(IMAGES / "xor-model.png", dpi=110)


def collapsed() -> None:
    """A 1,000-node graph: an input, a relu chain of 400, a tanh chain of 400, a
    side chain of 196 and two outputs; collapsed to a handful of boxes."""
    rng = np.random.default_rng(0)
    g = gn.Graph(name="deep", seed=0)
    g.add_input("x", 16)
    previous = "x"
    for i in range(400):
        g.add_hidden(f"r{i}", 16, activation="relu")
        g.connect(previous, f"r{i}")
        previous = f"r{i}"
    for i in range(400):
        g.add_hidden(f"t{i}", 16, activation="tanh")
        g.connect(previous, f"t{i}")
        previous = f"t{i}"
    side = "x"
    for i in range(196):
        g.add_hidden(f"s{i}", 8, activation="elu")
        g.connect(side, f"s{i}")
        side = f"s{i}"
    g.add_output("y", 1)
    g.add_output("aux", 3, activation="softmax", loss="categorical_crossentropy")
    g.connect([previous, side], "y")
    g.connect(["r199", side], "aux")
    x = rng.normal(size=(64, 16))
    y = {"y": rng.normal(size=(64, 1)), "aux": rng.integers(0, 3, 64)}
    g.render(IMAGES / "collapsed.png", collapse=True, stats=g.statistics(x, y), dpi=96)


def demo() -> None:
    from graphnet import demo as demo_module

    with tempfile.TemporaryDirectory() as folder:
        demo_module.run(out=Path(folder), verbose=0, say=lambda text: None)
        for name in ("model", "history"):
            shutil.copy(Path(folder) / f"{name}.png", IMAGES / f"demo-{name}.png")


def inside_digits() -> None:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    g = gn.Graph(name="digits", seed=0)
    g.add_input("pixels", 64)
    g.add_hidden("h1", 32, activation="relu")
    g.add_hidden("h2", 32, activation="relu")
    g.add_hidden("gate", 8, activation="sigmoid")
    g.add_output("digit", 10, activation="softmax", loss="categorical_crossentropy")
    g.connect("pixels", "h1")
    g.connect("h1", "h2")
    g.connect("pixels", "gate")
    g.connect(["h2", "gate"], "digit")
    g.fit(x / 16, y, epochs=10, optimizer=gn.optimizers.Adam(lr=0.1), verbose=0)
    g.render(IMAGES / "inside-digits.png", stats=g.statistics(x[:300] / 16, y[:300]), dpi=110)


PICTURES = {"xor-model": xor_model, "collapsed": collapsed, "demo": demo, "inside-digits": inside_digits}

if __name__ == "__main__":
    for name in sys.argv[1:] or PICTURES:
        PICTURES[name]()
        print("wrote", name)
