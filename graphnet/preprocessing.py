"""Preprocessing inside the graph: ``adapt`` and ``predict_labels``.

``Graph.adapt`` is :func:`adapt` and ``Graph.predict_labels`` is
:func:`predict_labels`. What an input does with its data (category codes,
imputation, normalisation, indicators) is in :mod:`graphnet._transforms`;
here the statistics and vocabularies it needs are learnt, in one pass over
the data, and checked before anything changes: a refused ``adapt`` leaves
the graph as it was.

* A numeric input with ``normalize=True`` or ``missing`` other than
  ``"error"`` learns each column's mean and population standard deviation
  over its non-missing rows (scikit-learn's ``StandardScaler`` and
  ``SimpleImputer(strategy="mean")``); a constant column has ``std`` 1.
* A categorical input with ``categories="adapt"`` learns the sorted distinct
  values of its column (missing values left out): code ``i + 1`` for the
  ``i``-th, 0 for anything else. Its size becomes ``len(categories) + 1``,
  so a vocabulary is learnt once, before its weights are drawn.
* An output with ``classes="adapt"`` learns the sorted distinct labels of
  its targets; they must be as many as the output's classes.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from . import _frames, _tabular, _transforms
from ._array_likes import readable
from ._data import by_name, holdout_split, named
from ._text import preview
from .errors import GraphError, ShapeError
from .inference import predict

if TYPE_CHECKING:
    from .graph import Graph

__all__ = ["adapt", "adapt_for_fit", "predict_labels", "pending"]

logger = logging.getLogger("graphnet.graph")


def pending(graph: Graph) -> tuple[list[str], list[str]]:
    """``(inputs, outputs)`` that still wait for ``adapt``."""
    inputs = [n for n in graph.inputs if not graph.nodes[n].adapted]
    outputs = [n for n in graph.outputs if graph.nodes[n].classes == _tabular.ADAPT]
    return inputs, outputs


def adapt(graph: Graph, x, y=None) -> Graph:
    """Learn every statistic and vocabulary the inputs (and the outputs with
    ``classes="adapt"``) need, in one pass over ``x`` (and ``y``); returns the graph.

    Statistics (for ``normalize`` and ``missing``) are learnt again by every
    call, as Keras's ``adapt`` does; a vocabulary or a set of classes once
    only (the sizes of the weights depend on it). ``fit`` calls this by
    itself, on its training rows only, for whatever was never adapted.

    Parameters
    ----------
    x : DataFrame, dict input name -> array, or array
        The inputs' data (a frame's columns are bound by name).
    y : DataFrame, Series, dict output name -> labels, or array, optional
        Targets for outputs with ``classes="adapt"``; by default, when ``x``
        is a frame, its columns named like those outputs.

    Returns
    -------
    Graph

    Raises
    ------
    ShapeError
        For missing columns, text in a numeric column, or inf.
    GraphError
        For a column with no values, a vocabulary whose weights were already
        drawn, or labels that do not fit their output. The graph is left
        exactly as it was.

    Examples
    --------
    >>> import numpy as np
    >>> import graphnet as gn
    >>> g = gn.Graph(seed=0)
    >>> _ = g.add_input("x", 2, normalize=True)
    >>> _ = g.add_output("y", 1)
    >>> _ = g.connect("x", "y")
    >>> g.adapt({"x": np.array([[1.0, 5.0], [3.0, 5.0]])}).nodes["x"].mean
    array([2., 5.])
    """
    inputs = [n for n in graph.inputs if graph.nodes[n].needs_statistics
              or graph.nodes[n].categories == _tabular.ADAPT]
    outputs = [n for n in graph.outputs if graph.nodes[n].classes == _tabular.ADAPT]
    if x is None and (inputs or not outputs):  # outputs alone learn from y
        raise GraphError("adapt: x is None; pass the inputs' data (a frame, a dict input name -> array, or an array)")
    if not inputs and not outputs:  # nothing to learn, but what is no data is refused as it would be
        data = _transforms.source(graph, x, "input")
        if isinstance(data, Mapping):  # a dict may hold some inputs only, as adapt's data may
            given = [name for name in graph.inputs if name in data]
            by_name({name: data[name] for name in given}, given, "input")
        else:
            by_name(data, graph.inputs, "input")
        return graph
    with graph.lock.writing():
        _apply(graph, *_learn(graph, x, y, inputs, outputs, None))
    return graph


def adapt_for_fit(graph: Graph, x, y, validation_split: float):
    """``fit``'s adapt: what was never adapted, learnt from the training rows
    only (the rows ``validation_split`` leaves to training: the split is
    drawn from a copy of the graph's stream, the same one ``fit`` draws next).

    Returns a function that forgets what was learnt, for a ``fit`` refused
    after this (its data did not fit), so that it changes nothing.
    """
    inputs, outputs = pending(graph)
    if not inputs and not outputs:
        return lambda: None
    rows = None
    if validation_split:
        count = _transforms.raw_rows(_transforms.source(graph, x, "input"))
        if count:
            rows = holdout_split(copy.deepcopy(graph.rng), count, validation_split)[0]
    with graph.lock.writing():
        learnt = _learn(graph, x, y, inputs, outputs, rows)
        _apply(graph, *learnt)

    def forget() -> None:
        with graph.lock.writing():
            for name in learnt[0]:
                graph.nodes[name].set_statistics(None, None)
            for name in learnt[1]:
                graph.nodes[name].set_categories(_tabular.ADAPT)
                for synapse in graph.synapses:
                    if synapse.src == name and synapse.parameter_array is None:
                        synapse.resize_source(1)
            for name in learnt[2]:
                graph.nodes[name].set_classes(_tabular.ADAPT)
            graph.changed()

    return forget


def _learn(graph: Graph, x, y, inputs: list[str], outputs: list[str], rows):
    """What ``adapt`` will set, computed and checked; nothing changed yet."""
    statistics, vocabularies, classes = {}, {}, {}
    if inputs:
        for name, raw in _data_for(graph, x, inputs, "input").items():
            node = graph.nodes[name]
            raw = _frames.values(raw, node.categorical) if _frames.is_series(raw) else np.asarray(raw)
            if rows is not None:
                raw = raw[rows]
            where = f"input {name!r}"
            if node.categorical:
                if node.categories == _tabular.ADAPT:
                    column = raw[:, 0] if raw.ndim == 2 and raw.shape[1] == 1 else raw
                    where = f"{where} (column {(node.columns or (name,))[0]!r})"
                    vocabulary = vocabularies[name] = _tabular.learn(column, where)
                    _check_resizable(graph, name, len(vocabulary) + 1)
                continue
            statistics[name] = _statistics(_tabular.as_float_columns(raw, node.width, where, node.data_columns),
                                           node, where)
    if outputs:
        if y is None and _frames.is_frame(x):
            y = x
        if y is None:
            raise GraphError(f"adapt: outputs {preview(outputs)} have classes='adapt': pass their targets as y")
        for name, raw in _data_for(graph, y, outputs, "output").items():
            raw = _frames.values(raw, exact=True) if _frames.is_series(raw) else np.asarray(raw)
            if rows is not None:
                raw = raw[rows]
            column = raw[:, 0] if raw.ndim == 2 and raw.shape[1] == 1 else raw
            learnt = _tabular.learn(column, f"targets of output {name!r}")
            graph.nodes[name].check_classes(learnt)
            classes[name] = learnt
    return statistics, vocabularies, classes


def _data_for(graph: Graph, data, names: list[str], role: str) -> dict:
    """``name -> raw values`` of the nodes ``names`` (others may be absent)."""
    if _frames.is_frame(data):
        exact = _transforms.labelled(graph, role)
        if role == "input":
            return _frames.bind(data, {n: graph.nodes[n].columns or (n,) for n in names}, role, exact)
        return _frames.bind(data, {n: (n,) for n in names}, role, exact)
    data = _transforms.source(graph, data, role)
    every = graph.inputs if role == "input" else graph.outputs
    if isinstance(data, Mapping):
        missing = [n for n in names if n not in data]
        if missing:
            raise ShapeError(f"adapt: no data for {role}s {preview(missing)}; give a dict keyed by {role} name "
                             "(or a frame) holding them")
        return {n: readable(data[n], role, n) for n in names}
    return {n: v for n, v in named(data, every, role).items() if n in names}


def _statistics(x: np.ndarray, node, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and population std over the non-missing rows (std 1 where it is 0)."""
    if np.isinf(x).any():
        j = int(np.flatnonzero(np.isinf(x).any(axis=0))[0])
        raise ShapeError(f"{where}: column {_transforms.column_label(node, j)} holds inf; adapt learns from finite "
                         "values and NaN")
    present = ~np.isnan(x)
    counts = present.sum(axis=0)
    if not counts.all():
        j = int(np.flatnonzero(counts == 0)[0])
        raise GraphError(f"{where}: column {_transforms.column_label(node, j)} has no values to adapt from (every "
                         "row is missing)")
    # Sums of values scaled by a power of two per column (exact): values near
    # float64's limits neither overflow nor lose digits, and others give the
    # same bits as unscaled sums.
    filled = np.where(present, x, 0.0)
    shift = _exponent(np.abs(filled).max(axis=0))
    mean = np.ldexp(np.ldexp(filled, -shift).sum(axis=0) / counts, shift)
    with np.errstate(over="ignore", invalid="ignore"):  # a difference beyond float64: inf, found below
        centred = np.where(present, x - mean, 0.0)
        shift = _exponent(np.abs(centred).max(axis=0))
        centred = np.ldexp(centred, -shift)
        variance = (centred * centred).sum(axis=0) / counts  # scaled by 2**(-2 shift)
        std = np.ldexp(np.sqrt(variance), shift)
    if not (np.isfinite(mean).all() and np.isfinite(std).all()):
        j = int(np.flatnonzero(~(np.isfinite(mean) & np.isfinite(std)))[0])
        raise ShapeError(f"{where}: {_tabular.column_named(node.data_columns, j)} spreads beyond float64's range "
                         "(its mean or standard deviation overflows); scale it first")
    # A column constant up to rounding divides by 1, as StandardScaler's: its
    # variance within the error bound of the two-pass algorithm (Chan, Golub
    # and LeVeque), here in the scaled units both sides share.
    eps = np.finfo(np.float64).eps
    with np.errstate(over="ignore"):  # a huge mean against a tiny spread: constant, rightly
        bound = counts * eps * variance + (counts * np.ldexp(mean, -shift) * eps) ** 2
    std[variance <= bound] = 1.0
    return mean, std


def _exponent(peak: np.ndarray) -> np.ndarray:
    """Per column, the power of two that brings ``peak`` (> 0) into [0.5, 1)
    (0 for 0, or for inf, which then shows in the result)."""
    return np.frexp(np.where((peak > 0) & np.isfinite(peak), peak, 1.0))[1]


def _check_resizable(graph: Graph, name: str, rows: int) -> None:
    drawn = [f"{s.src}->{s.dst}" for s in graph.synapses
             if s.src == name and s.parameter_array is not None and s.shape[0] != rows]
    if drawn:
        raise GraphError(
            f"adapt: input {name!r} learnt {rows - 1} categories, but the weights of {preview(drawn)} were "
            f"already set for {graph.nodes[name].size - 1} categories ({graph.nodes[name].size}-row tables); adapt "
            "before setting weights, or give categories=[...] when adding the input")


def _apply(graph: Graph, statistics: dict, vocabularies: dict, classes: dict) -> None:
    """Set what :func:`_learn` computed (it cannot fail now)."""
    for name, (mean, std) in statistics.items():
        graph.nodes[name].set_statistics(mean, std)
    for name, values in vocabularies.items():
        graph.nodes[name].set_categories(values)
        for synapse in graph.synapses:
            if synapse.src == name and synapse.parameter_array is None:
                synapse.resize_source(len(values) + 1)
    for name, labels in classes.items():
        graph.nodes[name].set_classes(labels)
    if statistics or vocabularies or classes:
        graph.changed()
        logger.info("%s: adapted %s", graph.name, ", ".join(
            [f"{n} (mean/std)" for n in statistics] + [f"{n} ({len(v)} categories)" for n, v in vocabularies.items()]
            + [f"{n} ({len(c)} classes)" for n, c in classes.items()]))


def predict_labels(graph: Graph, x, batch_size: int | None = None):
    """The predicted label of every row, for the outputs that have ``classes``.

    A softmax output's label is the class of its largest probability; a
    one-unit sigmoid output's is ``classes[1]`` where the probability is
    above 0.5, else ``classes[0]``.

    Parameters
    ----------
    x : DataFrame, dict input name -> array, or array
    batch_size : int, optional

    Returns
    -------
    ndarray of shape (n,) of labels for one such output, else a dict name -> ndarray.
        For a dask array ``x`` they are lazy dask arrays, as ``predict``'s
        are: nothing is computed until asked.

    Raises
    ------
    GraphError
        When no output has classes, or they were never adapted.

    Examples
    --------
    >>> import numpy as np
    >>> import graphnet as gn
    >>> g = gn.Graph(seed=0)
    >>> _ = g.add_input("x", 1)
    >>> _ = g.add_output("y", 1, activation="sigmoid", loss="binary_crossentropy", classes=["no", "yes"])
    >>> _ = g.connect("x", "y", init=np.array([[50.0]]))
    >>> g.predict_labels(np.array([-1.0, 1.0])).tolist()
    ['no', 'yes']
    """
    named_outputs = [n for n in graph.outputs if graph.nodes[n].classes is not None]
    if not named_outputs:
        raise GraphError(f"predict_labels: graph {graph.name!r} has no output with classes; give "
                         "add_output(..., classes=[...] or 'adapt')")
    waiting = [n for n in named_outputs if graph.nodes[n].classes == _tabular.ADAPT]
    if waiting:
        raise GraphError(f"predict_labels: the classes of outputs {waiting} were never adapted: call "
                         "g.adapt(x, y) or fit first")
    predictions = predict(graph, x, batch_size=batch_size)
    if not isinstance(predictions, dict):
        predictions = {graph.outputs[0]: predictions}
    labels = {}
    for name in named_outputs:
        node, p = graph.nodes[name], predictions[name]
        codes = (p[:, 0] > 0.5).astype(np.intp) if node.activation.name == "sigmoid" else p.argmax(axis=1)
        table = np.asarray(node.classes)
        lazy = not isinstance(codes, np.ndarray) and hasattr(codes, "map_blocks")  # a dask array: stays lazy
        labels[name] = codes.map_blocks(_label_block, table, dtype=table.dtype) if lazy else table[codes]
    return labels[named_outputs[0]] if len(named_outputs) == 1 else labels


def _label_block(codes: np.ndarray, table: np.ndarray) -> np.ndarray:
    """One block of class codes as their labels (dask's ``map_blocks``)."""
    return table[codes]
