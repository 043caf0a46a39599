"""The project's main job, ``graphnet demo``: a two-input, two-output graph on digits.

scikit-learn's 8×8 digit images are cut in two: the top four pixel rows are
one input, the bottom four the other. Each half gets its own hidden node;
a shared node joins them and feeds two outputs, the digit (softmax over 10)
and whether it is even (sigmoid). The held-out quarter of the images is
never seen in training; the accuracy printed at the end is measured on it.

Needs the ``demo`` extra (scikit-learn for the data, matplotlib for the
training curves) and Graphviz's ``dot`` for the diagrams.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._files import atomic_write
from ._text import reason
from .errors import GraphError, RenderError
from .graph import Graph
from .plots import plot_history

__all__ = ["build_model", "load_data", "run", "DemoResult"]

logger = logging.getLogger(__name__)

#: Where ``graphnet demo`` writes when no ``--out`` is given.
DEFAULT_OUT = "demo-output"
DEFAULT_EPOCHS = 40
BATCH_SIZE = 32
#: The width of the demo's lines: the summary table's.
WIDTH = 80


def build_model(seed: int = 0) -> Graph:
    """The demo's graph: ``top``/``bottom`` (32 pixels each) -> features -> ``shared``
    -> ``digit`` (10-way softmax) and ``even`` (sigmoid)."""
    g = Graph(name="digits", seed=seed)
    g.add_input("top", 32)
    g.add_input("bottom", 32)
    g.add_hidden("top_features", 64, activation="relu")
    g.add_hidden("bottom_features", 64, activation="relu")
    g.add_hidden("shared", 64, activation="relu", dropout=0.1)
    g.add_output("digit", 10, activation="softmax", loss="categorical_crossentropy")
    g.add_output("even", 1, activation="sigmoid", loss="binary_crossentropy", loss_weight=0.5)
    g.connect("top", "top_features")
    g.connect("bottom", "bottom_features")
    g.connect(["top_features", "bottom_features"], "shared")
    g.connect("shared", "digit")
    g.connect("shared", "even")
    return g


def load_data(seed: int = 0):
    """``(x_train, y_train), (x_test, y_test)`` as dicts keyed by node name.

    Pixels are scaled to [0, 1]; a stratified quarter of the 1,797 images is
    held out.

    Raises
    ------
    ImportError
        When scikit-learn is not installed.
    """
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise ImportError(
            "the demo needs scikit-learn for its data: pip install 'graphnet[demo]'"
        ) from None
    pixels, labels = load_digits(return_X_y=True)
    pixels = pixels / 16.0
    train_x, test_x, train_y, test_y = train_test_split(
        pixels, labels, test_size=0.25, stratify=labels, random_state=seed
    )

    def split(x, y):
        inputs = {"top": x[:, :32], "bottom": x[:, 32:]}
        targets = {"digit": y, "even": (y % 2 == 0).astype(np.float64).reshape(-1, 1)}
        return inputs, targets

    return split(train_x, train_y), split(test_x, test_y)


@dataclass
class DemoResult:
    """What a demo run produced."""

    graph: Graph
    accuracy: dict[str, float]
    written: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def run(
    out: str | os.PathLike = DEFAULT_OUT,
    epochs: int = DEFAULT_EPOCHS,
    seed: int = 0,
    verbose: int = 1,
    say: Callable[[str], object] = print,
) -> DemoResult:
    """Build, summarise, train and evaluate the demo graph; write its files to ``out``.

    Writes ``summary.txt``, ``model.json`` (the architecture), ``history.png``,
    ``model.svg`` and ``model.png``. Without Graphviz's ``dot`` the diagrams
    are written as ``model.gv`` instead and the reason is in
    :attr:`DemoResult.problems`; everything else is still written.

    Raises
    ------
    ImportError
        When scikit-learn or matplotlib is missing.
    GraphError
        When ``out`` cannot be created or ``epochs`` is not a positive integer.
    """
    missing = []
    for name, module in (("scikit-learn", "sklearn"), ("matplotlib", "matplotlib")):
        try:  # imported, not only found: one that is installed but broken fails here too
            importlib.import_module(module)
        except ImportError:
            missing.append(name)
    if missing:  # before anything is made or trained
        raise ImportError(f"the demo needs {' and '.join(missing)}: pip install 'graphnet[demo]'")
    out = Path(os.fspath(out))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GraphError(f"demo: cannot create the output folder {str(out)!r}: {reason(exc)}") from None
    (train_x, train_y), (test_x, test_y) = load_data(seed)
    rows, held = len(train_y["digit"]), len(test_y["digit"])
    graph = build_model(seed)
    say(textwrap.fill(
        "graphnet demo: scikit-learn's 8x8 digits, the top and bottom halves of each image as "
        "two inputs; two outputs: the digit, and whether it is even.", WIDTH
    ))
    say(f"{rows:,} training images (10% of them for validation), {held:,} held out.\n")
    text = graph.summary(print_fn=None)
    say(text + "\n")
    result = DemoResult(graph=graph, accuracy={})

    def wrote(path: Path) -> None:
        result.written.append(path)

    for name, content in (("summary.txt", text), ("model.json", json.dumps(graph.to_dict(), indent=2))):
        data = (content + "\n").encode("utf-8")
        wrote(atomic_write(out / name, lambda handle, data=data: handle.write(data)))

    say(f"Training for {epochs} epochs (batch size {BATCH_SIZE}, adam):")
    history = graph.fit(
        train_x,
        train_y,
        epochs=epochs,
        batch_size=BATCH_SIZE,
        optimizer="adam",
        metrics=["accuracy"],
        validation_split=0.1,
        verbose=verbose,
    )
    scores = graph.evaluate(test_x, test_y, metrics=["accuracy"])
    result.accuracy = {name: scores[f"{name}_accuracy"] for name in graph.outputs}
    say(f"\nHeld-out accuracy ({held} images the graph never saw):")
    for name, value in result.accuracy.items():
        say(f"  {name:<6} {value:.4f}")

    plot_history(history, out / "history.png", title="digits: training curves")
    wrote(out / "history.png")
    for suffix in ("svg", "png"):
        try:
            wrote(graph.render(out / f"model.{suffix}"))
        except RenderError as exc:
            result.problems.append(str(exc))
            wrote(graph.render(out / "model.gv"))
            break
    return result
