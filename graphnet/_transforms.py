"""Where tabular data enters a graph: frames bound by name, each input's
transform (category codes, imputation, normalisation, indicators), and
labels turned into class codes.

Called by :mod:`graphnet._data` before the checks every array gets, so a
plain input fed a plain array pays nothing here but one attribute read.
The statistics and vocabularies come from the nodes
(:class:`~graphnet.Input`, :class:`~graphnet.Output`); ``adapt``
(:mod:`graphnet.preprocessing`) learns them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from . import _frames, _tabular
from ._array_likes import readable
from ._text import preview, shown
from ._validation import as_dtype, check_allocation, non_finite_error
from .errors import GraphError, ShapeError
from .nodes import Input, Output

if TYPE_CHECKING:
    from .network import Network

__all__ = ["source", "labelled", "input_columns", "transform_input", "encode_labels", "not_adapted", "raw_rows",
           "one_hot", "column_label"]


def input_columns(graph: Network) -> dict[str, tuple[str, ...]]:
    """Each input's frame columns: its ``columns=``, else the column named like it."""
    return {name: graph.nodes[name].columns or (name,) for name in graph.inputs}


def labelled(graph: Network, role: str) -> set[str]:
    """The inputs that read categories, or the outputs with classes (``role``):
    their columns hold values to look up, never numbers to compute with."""
    if role == "input":
        return {name for name in graph.inputs if graph.nodes[name].categorical}
    return {name for name in graph.outputs if graph.nodes[name].classes is not None}


def source(graph: Network, data, role: str):
    """``data`` with a frame (or Series) made a dict ``name -> column values``
    (inputs bound by their columns, outputs by their names); a torch tensor
    that requires grad detached; anything else as given.

    Raises
    ------
    GraphError
        As ``graph.validate()`` does, for a graph without an input or an
        output of the ``role`` the data is for: no data can fit it.
    ShapeError
        For a polars LazyFrame, and for data numpy would misread
        (:func:`graphnet._array_likes.readable`).
    """
    names = graph.inputs if role == "input" else graph.outputs
    if not names:
        graph.validate()
    data = readable(data, role, names[0]) if len(names) == 1 else readable(data, role + " data")
    if isinstance(data, (np.ndarray, Mapping)) or data is None:
        return data
    if _frames.is_lazy(data):
        raise ShapeError(f"{role} data is a polars LazyFrame, a query rather than data: "
                         "pass frame.collect()")
    if _frames.is_frame(data):
        if role == "input":
            for name in graph.inputs:
                node = graph.nodes[name]
                if node.columns is None and not node.categorical and node.width > 1:
                    raise ShapeError(f"input {name!r} has {node.width} features but a frame gives it the one "
                                     f"column named {name!r}: bind it with add_input(..., columns=[...])")
            return _frames.bind(data, input_columns(graph), "input", labelled(graph, role))
        return _frames.bind(data, {name: (name,) for name in graph.outputs}, "output", labelled(graph, role))
    if _frames.is_series(data):
        if len(names) > 1:  # one column, or one row of a frame (df.iloc[0]): matched by name, never by position
            raise ShapeError(f"this graph has {len(names)} {role}s {preview(names)}: pass a frame or a dict keyed by "
                             f"{role} name, not a Series (one row of a frame stays a frame as df.iloc[[0]])")
        return _frames.values(data, bool(labelled(graph, role)))
    return data


def raw_rows(data) -> int | None:
    """The row count of raw data (a frame, a dict of columns, an array), or None."""
    if _frames.is_frame(data):
        return _frames.rows(data)
    values = data.values() if isinstance(data, Mapping) else [data]
    for value in values:
        shape = getattr(value, "shape", None)
        if shape:
            return int(shape[0])
        if hasattr(value, "__len__"):
            return len(value)
    return None


def not_adapted(graph: Network, names) -> GraphError:
    return GraphError(
        f"graph {graph.name!r}: {'input' if len(names) == 1 else 'inputs'} {preview(names)} "
        "never adapted (their statistics or categories are unknown): call g.adapt(data) with "
        "training data first (fit adapts from its training rows by itself, unless they come from a generator)")


def transform_input(node: Input, raw, dtype: np.dtype) -> np.ndarray:
    """What a transforming input gives the plan: category codes ``(n,)``
    (intp) or the numeric features ``(n, size)`` in ``dtype``.

    Raises
    ------
    GraphError
        When the input was never adapted.
    ShapeError
        For text in a numeric column, NaN with ``missing="error"``, inf, or
        the wrong number of columns; each names the column.
    """
    if not node.adapted:
        raise not_adapted(node.graph, [node.name]) if node.graph is not None else GraphError(
            f"input {node.name!r} was never adapted")
    if _frames.is_series(raw):
        raw = _frames.values(raw, node.categorical)
    where = f"input {node.name!r}"
    if node.categorical:
        return _codes(node, raw, where)
    x = _numeric(node, raw, where, apart=False)
    cast = as_dtype(x, np.dtype(dtype))
    if not np.isfinite(cast).all():  # finite data (checked), too large for the graph's dtype
        finite = np.isfinite(x)
        if node.normalize and not finite.all():  # or x - mean overflowed: those values alone computed apart
            x = np.where(finite, x, _numeric(node, raw, where, apart=True))
            cast = as_dtype(x, np.dtype(dtype))
            if np.isfinite(cast).all():
                return cast
            if not np.isfinite(x).all():
                raise _beyond_float64(node, x, where)
        raise non_finite_error(cast, "input", node.name, node.column_names, given=x)
    return cast


def _numeric(node: Input, raw, where: str, apart: bool) -> np.ndarray:
    """The numeric features of ``raw`` in float64: checked, NaN filled,
    normalised as ``(x - mean) / std`` (or, ``apart``, as ``x / std - mean / std``,
    which is finite where ``x - mean`` overflows and the result does not), and
    the missing-value flags beside them."""
    x = _tabular.as_float_columns(raw, node.width, where, node.data_columns)
    nan = np.isnan(x)
    found = nan.any()
    if found or not np.isfinite(x).all():
        _check_values(node, x, nan, where)
    if found and node.missing != "error":
        np.copyto(x, np.broadcast_to(node.mean, x.shape), where=nan)
    if node.normalize:
        with np.errstate(over="ignore"):  # told apart by the caller
            if apart:
                x = x / node.std - node.mean / node.std
            else:
                x -= node.mean
                x /= node.std
    if node.missing == "indicator":
        x = np.hstack([x, nan])
    return x


def _beyond_float64(node: Input, x: np.ndarray, where: str) -> ShapeError:
    """The error for finite data whose normalised values exceed float64's range."""
    bad = ~np.isfinite(x[:, : node.width])
    j = int(np.nonzero(bad.any(axis=0))[0][0])
    return ShapeError(
        f"{where}: normalising gives {int(bad.sum())} value(s) beyond float64's range ((value - mean) / std), "
        f"the first in column {column_label(node, j)}; the mean "
        f"{float(np.ravel(node.mean)[j]):g} and std {float(np.ravel(node.std)[j]):g} that adapt learned do not fit "
        "this data: adapt on data like it"
    )


def _codes(node: Input, raw, where: str) -> np.ndarray:
    array = np.asarray(raw)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ShapeError(f"{where} reads one column of category values, got shape {array.shape}")
    column = f"{where} (column {(node.columns or (node.name,))[0]!r})"
    codes, _ = node.vocabulary().codes(array, column)
    return codes


def column_label(node: Input, j: int) -> str:
    """How messages call column ``j`` of ``node``'s data, as ``check_finite``
    does: by the name it has (a column it reads, or the input's own name
    when it reads one), else by its index."""
    names = node.data_columns
    return repr(names[j]) if names else str(j)


def _check_values(node: Input, x: np.ndarray, nan: np.ndarray, where: str) -> None:
    column = functools.partial(column_label, node)
    inf = np.isinf(x)
    if inf.any():
        j = int(np.flatnonzero(inf.any(axis=0))[0])
        raise ShapeError(f"{where}: column {column(j)} holds {int(inf[:, j].sum())} infinite value(s); "
                         "inf is never a missing value: fix or drop those rows")
    if node.missing == "error" and nan.any():
        counts = nan.sum(axis=0)
        listed = ", ".join(f"{column(j)} ({int(counts[j])} rows)" for j in np.flatnonzero(counts)[:10])
        raise ShapeError(f"{where}: missing values (NaN) in column {listed}; pass missing='mean' or "
                         "missing='indicator' to add_input, or fill them before")


def encode_labels(node: Output, y) -> np.ndarray:
    """Targets of an output with ``classes``: labels become class codes
    (``(n,)`` integers for softmax, ``(n, 1)`` 0/1 for a sigmoid unit);
    one-hot rows or probabilities already of the output's shape pass through.

    Raises
    ------
    GraphError
        When the classes were never adapted.
    ShapeError
        Naming labels that are not among the classes (or missing ones).
    """
    classes = node.classes
    if classes == _tabular.ADAPT:
        raise GraphError(f"output {node.name!r}: its classes were never adapted: call g.adapt(x, y) "
                         "first (fit adapts from its training rows by itself, unless they come from a generator)")
    if _frames.is_series(y):
        y = _frames.values(y, exact=True)
    array = np.asarray(y)
    if array.ndim == 2 and array.dtype.kind in "biuf" and array.shape[1] == node.size and node.size > 1:
        return array  # already one-hot (or probabilities)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ShapeError(f"output {node.name!r}: expected one label per row, got shape {array.shape}")
    where = f"targets of output {node.name!r}"
    codes, known = _tabular.Vocabulary(classes, 0).codes(array, where)
    if not known.all():
        bad = array[~known]
        shown_bad = list(dict.fromkeys(shown(v, 30) for v in bad[:1000].tolist()))  # as written: 'd', not np.str_
        raise ShapeError(f"{where}: {len(bad)} label(s) not among its classes {preview(classes, 10)}: "
                         f"{', '.join(shown_bad[:10])}")
    if node.activation.name == "sigmoid":
        return codes.astype(np.float64).reshape(-1, 1)
    return codes


def one_hot(codes, size: int, dtype, xp=np, what: str = "a one-hot table"):
    """A categorical input's codes as its one-hot rows of ``size`` columns
    (column 0: unknown or missing), in ``dtype``.

    Raises
    ------
    GraphError
        Naming ``what``, when they would not fit in memory.
    """
    check_allocation(codes.shape[0] * size, np.dtype(dtype).itemsize, what)
    rows = xp.zeros((codes.shape[0], size), dtype=dtype)
    rows[xp.arange(codes.shape[0]), codes] = 1
    return rows
