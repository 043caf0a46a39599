"""The estimators on DataFrames with categorical columns, without a ColumnTransformer.

A frame (pandas or polars) with a categorical column is a *table*: a column
of dtype object, string or category (polars: String, Categorical, Enum or
Object) is categorical, one of numbers or booleans numeric, and any other
(dates, durations, ...) is refused. The estimator's network reads a table's
numeric columns through one input that normalises them and puts the mean in
place of missing values (as ``SimpleImputer`` then ``StandardScaler`` would,
with the statistics taken over the present values), and each categorical
column through a categorical input of its own (its vocabulary learnt from the
rows given to ``fit``; unknown and missing values share code 0), every input
feeding the first hidden layer. What ``fit`` learnt is saved in the graph
(``graph_``); ``feature_names_in_`` are the table's columns in its order.

As in scikit-learn, ``predict`` needs the columns ``fit`` saw (by name, in
any order).
"""

from __future__ import annotations

import collections
import functools
import re
from dataclasses import dataclass

import numpy as np

from .. import _frames, _tabular
from .._text import preview
from ..errors import GraphError
from ..graph import Graph
from ..nodes import check_name

__all__ = ["Layout", "check_columns", "is_table"]

_NUMERIC_KINDS = frozenset("biuf")  # numpy's kinds; pandas' nullable and Arrow dtypes have them too
_CATEGORICAL_KINDS = frozenset("OSU")
_POLARS_CATEGORICAL = ("string", "utf8", "categorical", "enum", "object")
_NETWORK_NODE = re.compile(r"dense(_[0-9]+)?|output")  # the names :meth:`Layout.network` gives its nodes
_ACCEPTED = ("numbers (int, float or bool dtype) and categories (object, string or category "
            "dtype)")


def _kind(dtype) -> str | None:
    """``"numeric"``, ``"categorical"``, or None for a dtype the estimators do not take
    (dates, durations, complex numbers, nested polars types)."""
    kind = getattr(dtype, "kind", None)
    if isinstance(kind, str):  # numpy and pandas dtypes
        if kind in _NUMERIC_KINDS:
            return "numeric"
        if kind == "O" and str(dtype).startswith(("period", "interval")):  # pandas' objects of their own
            return None
        return "categorical" if kind in _CATEGORICAL_KINDS else None
    name = str(dtype).lower()  # polars dtypes, named without importing polars
    if name.startswith(_POLARS_CATEGORICAL):
        return "categorical"
    is_numeric = getattr(dtype, "is_numeric", None)
    return "numeric" if name == "boolean" or (callable(is_numeric) and is_numeric()) else None


def check_columns(X, columns=None) -> None:
    """Refuse a frame's column (of ``columns``, by default all) whose dtype the
    estimators do not take.

    Raises
    ------
    ValueError
        Naming the column, its dtype and what is accepted.
    """
    if not _frames.is_frame(X):
        return
    wanted = None if columns is None else set(columns)
    for column, dtype in zip(X.columns, list(X.dtypes)):
        if (wanted is None or str(column) in wanted) and _kind(dtype) is None:
            raise ValueError(f"X's column {str(column)!r} has dtype {dtype}, which the estimator "
                             f"cannot read: it takes {_ACCEPTED}; convert the column (a date, for "
                             "example, to a number of days or to its year, month and day)")


def _check_names(X, columns=None) -> None:
    """Refuse a table whose columns (of ``columns``, by default all) cannot
    each be told apart by name.

    Raises
    ------
    ValueError
        Naming a column that is named twice (as ``str`` gives it), or one named ``''``.
    """
    counts = collections.Counter(_frames.column_names(X))
    twice = [c for c, n in counts.items() if n > 1 and (columns is None or c in columns)]
    if twice:
        raise ValueError(f"X has {counts[twice[0]]} columns named {twice[0]!r}; the estimator reads a table's "
                         "columns by name: give each column its own name")
    if "" in counts and columns is None:
        raise ValueError("X has a column named '' (the empty string); the estimator reads a table's "
                         "columns by name: give it a name")


def _node_name(column: str) -> bool:
    """Whether a column's name can name a node (blank ones, and ones with
    ``->`` or control characters, cannot)."""
    try:
        check_name(column)
    except GraphError:
        return False
    return True


def is_table(X) -> bool:
    """Whether ``X`` is a frame with at least one categorical column."""
    return _frames.is_frame(X) and any(_kind(dtype) == "categorical" for dtype in list(X.dtypes))


@dataclass(frozen=True)
class Layout:
    """A table's columns in its order, and which of them are categories."""

    columns: tuple[str, ...]
    categorical: tuple[str, ...]

    @classmethod
    def of(cls, X) -> Layout:
        """The layout of a table (see :func:`is_table`).

        Raises
        ------
        ValueError
            For a column of a dtype the estimators do not take (:func:`check_columns`).
        """
        check_columns(X)
        _check_names(X)
        columns = [(str(c), _kind(dtype) == "categorical") for c, dtype in zip(X.columns, list(X.dtypes))]
        return cls(tuple(c for c, _ in columns), tuple(c for c, cat in columns if cat))

    @functools.cached_property
    def numeric(self) -> tuple[str, ...]:
        categorical = set(self.categorical)
        return tuple(c for c in self.columns if c not in categorical)

    def block(self, X) -> np.ndarray:
        """The table's columns (numeric, then categorical) as one object array.

        Raises
        ------
        ValueError
            Naming the columns of ``fit`` that ``X`` lacks, or one of a dtype the
            estimators do not take.
        """
        if not _frames.is_frame(X):
            raise ValueError(f"this estimator was fitted on a DataFrame with categorical columns; pass a "
                             f"DataFrame with the columns {list(self.columns)}, got {type(X).__name__}")
        have = {str(c): c for c in X.columns}  # names as fit saw them, labels as the frame has them
        missing = [c for c in self.columns if c not in have]
        if missing:
            raise ValueError(f"X lacks the columns {preview(missing)} that fit saw (feature names are matched by name)")
        check_columns(X, self.columns)
        _check_names(X, self.columns)
        numeric = len(self.numeric)
        order = self.numeric + self.categorical
        block = np.empty((_frames.rows(X), len(order)), dtype=object)
        for j, column in enumerate(order):
            block[:, j] = _frames.values(X[have[column]], exact=j >= numeric)
        return block

    def inputs(self, block: np.ndarray) -> dict[str, np.ndarray]:
        """A block's columns as the inputs of :meth:`graph`."""
        p = len(self.numeric)
        numbers, categorical = self._names()
        data = {name: block[:, p + j] for j, name in enumerate(categorical)}
        if p:
            try:
                data[numbers] = block[:, :p].astype(np.float64)
            except (TypeError, ValueError):  # text in a numeric column: say which, where
                data[numbers] = _tabular.as_float_columns(block[:, :p], p, "X", self.numeric)
        return data

    def _names(self) -> tuple[str, list[str]]:
        """The node names of the numeric input and of each categorical column's
        input: the column's own name (``column_i`` for the i-th when its name
        cannot name a node), unless the network's other nodes (``numbers``,
        ``dense``, ``dense_1``, ..., ``output``) have it, then with ``_`` added."""
        taken = set(self.categorical)  # a column keeps its name when it can
        numbers = "numbers"
        while numbers in taken:
            numbers += "_"
        taken.add(numbers)
        names = []
        for i, column in enumerate(self.categorical):
            name = column if _node_name(column) else f"column_{i}"
            while name == numbers or _NETWORK_NODE.fullmatch(name) or (name != column and name in taken):
                name += "_"
            taken.add(name)
            names.append(name)
        return numbers, names

    def network(self, given, hidden: tuple[int, ...], activation, output: tuple, n_outputs: int, seed: int,
                name: str) -> Graph:
        """An estimator's network over this table (see the module docs): ``hidden``
        layer sizes and ``activation``, ``output`` = (activation, loss, loss weight).

        Raises
        ------
        ValueError
            When the estimator was ``given`` a graph of its own.
        """
        if given is not None:
            raise ValueError("graph: a DataFrame with categorical columns gets the default network; for "
                             "a graph of your own, bind its inputs to the columns and call graph.fit")
        out_activation, loss, loss_weight = output
        graph = Graph(name=name, seed=seed, dtype="float64")
        numbers, categorical = self._names()
        sources = []
        if self.numeric:
            sources.append(graph.add_input(numbers, columns=list(self.numeric), normalize=True,
                                           missing="mean").name)
        for column, name in zip(self.categorical, categorical):
            sources.append(graph.add_input(name, columns=None if name == column else [column],
                                           categories="adapt").name)
        previous = sources
        for i, size in enumerate(hidden):
            node = graph.add_hidden(f"dense_{i}" if i else "dense", size, activation=activation).name
            graph.connect(previous, node)
            previous = [node]
        graph.add_output("output", n_outputs, activation=out_activation, loss=loss, loss_weight=loss_weight)
        graph.connect(previous, "output")
        return graph
