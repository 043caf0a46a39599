"""Training curves: :func:`plot_history`.

matplotlib is an optional extra (``pip install 'graphnet[plot]'``) and is
imported only when a plot is asked for. When the plot goes to a file, it is
drawn on a bare ``matplotlib.figure.Figure`` with the Agg canvas: no window,
no pyplot state, no display needed (a server or CI machine is fine).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ._files import atomic_write, check_output
from ._text import reason
from ._validation import check_int, check_path
from .errors import GraphError

__all__ = ["plot_history", "panels"]

_TRAIN_COLOR = "#1f5f9e"
_VAL_COLOR = "#d2691e"


def require_matplotlib():
    try:
        import matplotlib
    except ImportError:
        raise ImportError(
            "plot_history needs matplotlib, an optional extra of graphnet: "
            "pip install 'graphnet[plot]' (or pip install matplotlib)"
        ) from None
    return matplotlib


def panels(history) -> dict[str, dict[str, list[float]]]:
    """Group logged values into panels: one per quantity, training and validation together.

    ``{"loss": {"loss": [...], "val_loss": [...]}, "digit_accuracy": {...}}``, in the
    order the quantities were first logged, the total loss first.

    Raises
    ------
    GraphError
        When ``history`` is neither a ``History`` nor a dict of lists of numbers,
        or holds no epochs.
    """
    logs = getattr(history, "history", history)
    if not isinstance(logs, Mapping):
        raise GraphError(
            "plot_history expects the History that fit() returns, or its .history dict; "
            f"got {type(history).__name__}"
        )
    grouped: dict[str, dict[str, list[float]]] = {}
    for key, values in logs.items():
        if not isinstance(key, str):
            raise GraphError(f"plot_history: history keys must be strings, got {key!r}")
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise GraphError(f"plot_history: history[{key!r}] must be a list of numbers, got {values!r}")
        try:
            values = [float(v) for v in values]
        except (TypeError, ValueError):
            raise GraphError(f"plot_history: history[{key!r}] must hold numbers") from None
        quantity = key[4:] if key.startswith("val_") else key
        grouped.setdefault(quantity, {})[key] = values
    if not any(values for series in grouped.values() for values in series.values()):
        raise GraphError("plot_history: the history has no epochs to plot (train with fit() first)")
    if "loss" in grouped:
        grouped = {"loss": grouped.pop("loss"), **grouped}
    return grouped


def plot_history(history, path: str | os.PathLike | None = None, *, title: str | None = None,
                 dpi: int = 150):
    """Loss, validation loss and every metric per epoch, one panel per quantity.

    Multi-output graphs get a panel for each output's loss (``digit_loss``)
    and metric (``digit_accuracy``) beside the total loss. Validation curves
    (``val_...``) are dashed, in the same panel as their training curve.

    Parameters
    ----------
    history : History or dict
        What ``fit`` returned, or its ``.history`` dict (name -> one value per epoch).
    path : str or PathLike, optional
        Write the figure there (the suffix picks the format: ``.png``, ``.svg``,
        ``.pdf``, ...) without opening a window. Without a path the figure is
        made with pyplot, so notebooks and ``plt.show()`` display it (in a
        notebook, a call ending a cell shows it twice, as the cell's value
        and from pyplot: end the line with ``;``).
    title : str, optional
        Above the panels.
    dpi : int
        For raster files: a positive integer.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ImportError
        When matplotlib is not installed (the message says how to install it).
    GraphError
        For a history with nothing to plot, a path that is not a str or
        os.PathLike, a folder that does not exist, a path that is a folder,
        a file suffix matplotlib cannot write (or draw here: PGF without
        LaTeX), a ``dpi`` that is not a
        positive integer, or a write that fails (the disk full): the file
        is written atomically, so one that was there is then left as it was.
    """
    if path is not None:
        path = Path(check_path(path, "plot_history: path", "the figure file to write", file=True))
        try:
            check_output(path)
        except OSError as exc:
            raise GraphError(f"plot_history: cannot write {str(path)!r}: {reason(exc)}") from None
    dpi = check_int(dpi, "plot_history: dpi")
    groups = panels(history)
    require_matplotlib()
    count = len(groups)
    cols = min(count, 3)
    rows = math.ceil(count / cols)
    size = (4.2 * cols, 3.0 * rows + (0.4 if title else 0.0))
    if path is None:
        from matplotlib import pyplot

        figure = pyplot.figure(figsize=size, layout="constrained")
    else:
        from matplotlib.figure import Figure

        figure = Figure(figsize=size, layout="constrained")
        formats = figure.canvas.get_supported_filetypes()
        if path.suffix.lower().lstrip(".") not in formats:
            raise GraphError(
                f"plot_history: cannot tell the format of {str(path)!r} from its suffix; "
                f"use one of {sorted('.' + f for f in formats)}"
            )
    axes = figure.subplots(rows, cols, squeeze=False)
    for ax, (quantity, series) in zip(axes.flat, groups.items()):
        for key, values in series.items():
            validation = key.startswith("val_")
            epochs = range(1, len(values) + 1)
            # A value with no finite neighbour draws no line: a marker shows it
            # (a square for validation, a circle for training, told apart without colour).
            finite = [math.isfinite(v) for v in values]
            alone = [i for i, ok in enumerate(finite)
                     if ok and not (i > 0 and finite[i - 1]) and not (i + 1 < len(values) and finite[i + 1])]
            ax.plot(
                epochs,
                values,
                label="validation" if validation else "training",
                color=_VAL_COLOR if validation else _TRAIN_COLOR,
                linestyle="--" if validation else "-",
                linewidth=1.6,
                marker="s" if validation else "o",
                markevery=alone,
            )
        per_output = count > 1 and any(q.endswith("_loss") for q in groups)
        ax.set_title("total loss" if quantity == "loss" and per_output else quantity.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if len(series) > 1:
            ax.legend(frameon=False)
    for ax in list(axes.flat)[count:]:
        ax.set_visible(False)
    if title:
        figure.suptitle(title)
    if path is not None:
        _write(figure, path, dpi)
    return figure


def _write(figure, path: Path, dpi: int) -> None:
    """``figure`` drawn by matplotlib in memory, then written over ``path``
    atomically (no folder but ``path``'s is written to)."""
    image = io.BytesIO()
    try:
        figure.savefig(image, format=path.suffix.lower().lstrip("."), dpi=dpi)
    except (RuntimeError, ValueError) as exc:  # a format that needs a program (pgf: LaTeX)
        raise GraphError(f"plot_history: matplotlib could not draw {str(path)!r} "
                         f"({type(exc).__name__}: {exc})") from None
    try:
        atomic_write(path, lambda handle: handle.write(image.getbuffer()))
    except OSError as exc:  # the disk full
        raise GraphError(f"plot_history: cannot write {str(path)!r}: {reason(exc)}") from None
