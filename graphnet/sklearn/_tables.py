"""The estimators on DataFrames with categorical columns, without a ColumnTransformer.

A frame (pandas or polars) with a column of dtype object, string or category
is a *table*: the estimator's network reads its numeric columns through one
input that normalises them and puts the mean in place of missing values (as
``SimpleImputer`` then ``StandardScaler`` would, with the statistics taken
over the present values), and each categorical column through a categorical
input of its own (its vocabulary learnt from the rows given to ``fit``;
unknown and missing values share code 0), every input feeding the first
hidden layer. What ``fit`` learnt is saved in the graph (``graph_``).

As in scikit-learn, ``predict`` needs the columns ``fit`` saw (by name, in
any order).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _frames
from ..graph import Graph

__all__ = ["is_table", "Layout"]

_CATEGORICAL_KINDS = ("object", "string", "str", "category", "categorical", "utf8", "enum")


def _categorical(dtype) -> bool:
    name = str(dtype).lower()
    return any(name.startswith(kind) for kind in _CATEGORICAL_KINDS) or getattr(dtype, "kind", "") in "OSU"


def is_table(X) -> bool:
    """Whether ``X`` is a frame with at least one categorical column."""
    return _frames.is_frame(X) and any(_categorical(dtype) for dtype in list(X.dtypes))


@dataclass(frozen=True)
class Layout:
    """Which of a table's columns are numbers and which are categories."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]

    @classmethod
    def of(cls, X) -> Layout:
        columns = [(str(c), _categorical(dtype)) for c, dtype in zip(X.columns, list(X.dtypes))]
        return cls(tuple(c for c, cat in columns if not cat), tuple(c for c, cat in columns if cat))

    @property
    def columns(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    def block(self, X) -> np.ndarray:
        """The table's columns (numeric, then categorical) as one object array.

        Raises
        ------
        ValueError
            Naming the columns of ``fit`` that ``X`` lacks.
        """
        if not _frames.is_frame(X):
            raise ValueError(f"this estimator was fitted on a DataFrame with categorical columns; pass a "
                             f"DataFrame with the columns {list(self.columns)}, got {type(X).__name__}")
        have = {str(c): c for c in X.columns}  # names as fit saw them, labels as the frame has them
        missing = [c for c in self.columns if c not in have]
        if missing:
            raise ValueError(f"X lacks the columns {missing} that fit saw (feature names are matched by name)")
        block = np.empty((_frames.rows(X), len(self.columns)), dtype=object)
        for j, column in enumerate(self.columns):
            block[:, j] = _frames.values(X[have[column]])
        return block

    def inputs(self, block: np.ndarray) -> dict[str, np.ndarray]:
        """A block's columns as the inputs of :meth:`graph`."""
        p = len(self.numeric)
        data = {name: block[:, p + j] for j, name in enumerate(self._names()[1])}
        if p:
            data[self._names()[0]] = block[:, :p].astype(np.float64)
        return data

    def _names(self) -> tuple[str, list[str]]:
        numbers = "numbers"
        while numbers in self.categorical:
            numbers += "_"
        return numbers, list(self.categorical)

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
        for column in categorical:
            sources.append(graph.add_input(column, categories="adapt").name)
        previous = sources
        for i, size in enumerate(hidden):
            node = graph.add_hidden(f"dense_{i}" if i else "dense", size, activation=activation).name
            graph.connect(previous, node)
            previous = [node]
        graph.add_output("output", n_outputs, activation=out_activation, loss=loss, loss_weight=loss_weight)
        graph.connect(previous, "output")
        return graph
