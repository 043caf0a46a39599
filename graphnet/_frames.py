"""DataFrames (pandas, polars) as a graph's data: columns bound by name.

A frame is accepted wherever a dict of arrays is. Each input takes the
columns it is bound to (its ``columns=``, by default the column named like
the input), in its own order, whatever the frame's order; each output takes
the column named like it; extra columns are ignored. A Series is one column.

Neither pandas nor polars is imported here: a frame is recognised by its
type's module, and read through the methods both libraries share
(``columns``, ``frame[name]``, ``to_numpy()``), so ``import graphnet`` never
imports them and plain arrays pay one type check.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping

import numpy as np

from ._text import preview, suggestion
from .errors import ShapeError

__all__ = ["is_frame", "is_lazy", "is_series", "column_names", "values", "bind", "rows"]

_LIBRARIES = ("pandas", "polars")


def _library(value) -> str | None:
    module = type(value).__module__
    top = module.split(".", 1)[0]
    return top if top in _LIBRARIES else None


def is_frame(value) -> bool:
    """Whether ``value`` is a pandas or polars DataFrame."""
    return _library(value) is not None and type(value).__name__ == "DataFrame"


def is_lazy(value) -> bool:
    """Whether ``value`` is a polars LazyFrame (a query, not yet data)."""
    return _library(value) == "polars" and type(value).__name__ == "LazyFrame"


def is_series(value) -> bool:
    """Whether ``value`` is a pandas or polars Series."""
    return _library(value) is not None and type(value).__name__ == "Series"


def column_names(frame) -> list[str]:
    return [str(c) for c in frame.columns]


def rows(frame) -> int:
    return len(frame)


def values(column, exact: bool = False) -> np.ndarray:
    """A Series (or any array-like column) as a 1-D numpy array: numbers as
    float64 with NaN for missing values (pandas' nullable integers and
    booleans too), text and categories as objects (None or NaN for missing),
    everything else as numpy makes it. ``exact``: a column of categories or
    labels, where nullable integers float64 would round (beyond 2**53) come
    as Python integers (None for missing)."""
    library = _library(column)
    if library == "pandas":
        kind = getattr(column.dtype, "kind", "O")
        if str(column.dtype) == "category":
            return column.astype(object).to_numpy()
        if kind in "biu" and not column.hasnans:
            array = column.to_numpy()
            return array if array.dtype.kind in "biu" else column.to_numpy(dtype=np.float64)
        if exact and kind in "iu" and _beyond_float(column.min(), column.max()):
            return column.to_numpy(dtype=object, na_value=None)  # integer IDs that float64 would round
        if kind in "biuf":
            return column.to_numpy(dtype=np.float64, na_value=np.nan)
        return column.to_numpy(dtype=object)
    if library == "polars":
        dtype = column.dtype
        if dtype.is_numeric() or str(dtype) == "Boolean":
            if exact and dtype.is_integer() and column.null_count() and _beyond_float(column.min(), column.max()):
                return np.array(column.to_list(), dtype=object)
            if column.null_count() or dtype.is_float():
                return column.cast(float).fill_null(float("nan")).to_numpy()
            return column.to_numpy()
        return np.array(column.to_list(), dtype=object)
    return np.asarray(column)


def _beyond_float(low, high) -> bool:
    """Whether integers between ``low`` and ``high`` (missing: no values) may be
    more than float64 holds exactly (2**53)."""
    try:
        return int(low) < -2**53 or int(high) > 2**53
    except (TypeError, ValueError):  # no values: None (polars) or NA (pandas)
        return False


def bind(frame, bindings: Mapping[str, tuple[str, ...]], role: str, exact=frozenset()) -> dict[str, np.ndarray]:
    """``{name: array}`` from a frame's columns: for each node, its columns
    (one column: a 1-D array; several: an ``(n, k)`` array, objects when
    any of them is); the nodes named in ``exact`` read categories or labels
    (see :func:`values`).

    Raises
    ------
    ShapeError
        Naming every missing column and the nodes that need them.
    """
    every = column_names(frame)
    have = set(every)
    missing: dict[str, list[str]] = {}
    for name, columns in bindings.items():
        for column in columns:
            if column not in have:
                missing.setdefault(column, []).append(name)
    if missing:
        needs = "; ".join(f"{c!r} (for {role} {', '.join(repr(n) for n in names)})"
                          for c, names in list(missing.items())[:10])
        first = next(iter(missing))
        raise ShapeError(f"the frame has no column {needs}; its columns: {preview(every)}{suggestion(first, every)}")
    if len(have) != len(every):  # pandas allows a name twice: which column is meant is unknowable
        counts = collections.Counter(every)
        twice = {(c, name) for name, columns in bindings.items() for c in columns if counts[c] > 1}
        if twice:
            c, name = min(twice)
            raise ShapeError(f"the frame has {counts[c]} columns named {c!r} (for {role} {name!r}); "
                             "give each column its own name")
    out = {}
    for name, columns in bindings.items():
        parts = [values(frame[c], name in exact) for c in columns]
        if len(parts) == 1:
            out[name] = parts[0]
        else:
            dtype = object if any(p.dtype.kind not in "biuf" for p in parts) else np.float64
            out[name] = np.column_stack([p.astype(dtype, copy=False) for p in parts])
    return out
