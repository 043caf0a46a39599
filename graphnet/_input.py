"""The Input node: where data enters (:mod:`graphnet.nodes`)."""

from __future__ import annotations

from operator import attrgetter
from typing import Any

import numpy as np

from . import _tabular
from ._node import Node
from ._validation import check_int

__all__ = ["Input"]


def _setting(name: str, doc: str) -> property:
    return property(attrgetter(f"_settings.{name}"), doc=doc)


class Input(Node):
    """Where data enters: no bias, no activation. ``Input(30)`` also starts a
    :class:`~graphnet.Sequential` model.

    The keywords say how a table's columns become its features (see
    :meth:`Graph.add_input <graphnet.Graph.add_input>`); what
    ``adapt`` learns (``mean``, ``std``, ``categories``) is kept here and
    saved with the graph. ``size`` is a numeric input's number of data
    columns (its size doubles with ``missing="indicator"``), or a
    categorical input's ``len(categories) + 1``.

    Parameters
    ----------
    size : int, optional
        Its number of data columns; by default the number of ``columns`` (one
        without them). Not given for a categorical input.
    name : str, optional
        As :class:`Node`'s; a frame's column of that name feeds it by default.
    columns : list of str, optional
        The frame's columns it reads.
    categories : list or "adapt", optional
        Values (strings or integers) of the one column it reads, or
        ``"adapt"`` to learn them; code 0 stands for unknown and missing.
    normalize : bool, default False
        ``(x - mean) / std`` per column, the statistics learnt by ``adapt``
        (or given as ``mean`` and ``std``).
    missing : {"error", "mean", "indicator"}, default "error"
        What a NaN becomes: a ShapeError naming the column, the adapted mean,
        or the mean plus one 0/1 column per column (the size doubles).
    mean, std : array-like, optional
        Statistics already known (``width`` finite values each, ``std`` > 0),
        as a saved graph holds them; ``adapt`` learns them otherwise.
    """

    kind = "input"

    _settings: _tabular.InputSettings

    def __init__(self, size: int | None = None, name: str | None = None, *, columns=None, categories=None,
                 normalize: bool = False, missing: str = "error", mean=None, std=None):
        where = f"input {name!r}" if name else "Input"
        self._settings = _tabular.InputSettings(size, where, columns, categories, normalize, missing, mean, std)
        if self._settings.categories is None:
            check_int(self._settings.width, f"{where}: size")
        super().__init__(self._settings.size(), name)

    columns = _setting("columns", "The frame columns it reads (None: the column named like the input).")
    categories = _setting("categories", "The vocabulary (code ``i + 1`` is ``categories[i]``, 0 unknown or "
                                        "missing), ``'adapt'`` until adapted, or None for numbers.")
    normalize = _setting("normalize", "Whether columns become ``(x - mean) / std``.")
    missing = _setting("missing", "What a NaN becomes: 'error', 'mean' or 'indicator'.")
    width = _setting("width", "The number of data columns it reads (1 for a categorical input).")
    transforms = _setting("transforms", "Whether data is transformed where it enters.")
    needs_statistics = _setting("needs_statistics", "Whether it needs an adapted mean and std.")
    adapted = _setting("adapted", "Whether everything it needs to run (statistics, vocabulary) is known.")

    @property
    def categorical(self) -> bool:
        return self._settings.categories is not None

    @property
    def column_names(self) -> tuple[str, ...] | None:
        """What its data's columns are called in messages: the columns it
        reads, or its own name when it has one column (with
        ``missing="indicator"``, each column's indicator after them); None
        otherwise."""
        if self.missing == "indicator":
            names = self.data_columns
            return None if names is None else names + tuple(f"{c} (missing)" for c in names)
        return self.columns or ((self.name,) if self.size == 1 else None)

    @property
    def data_columns(self) -> tuple[str, ...] | None:
        """What the columns of its data as given are called in messages: the
        columns it reads, or its own name (the frame column it is bound to)
        when it reads one; None otherwise."""
        return self.columns or ((self.name,) if self.width == 1 else None)

    @property
    def mean(self) -> np.ndarray | None:
        """Adapted per-column means (float64), or None."""
        return None if self._settings.mean is None else self._settings.mean.copy()

    @property
    def std(self) -> np.ndarray | None:
        """Adapted per-column population standard deviations (float64, > 0), or None."""
        return None if self._settings.std is None else self._settings.std.copy()

    def set_statistics(self, mean, std) -> None:
        """Hold adapted statistics.

        Parameters
        ----------
        mean, std : array-like
            ``width`` finite values each, ``std`` > 0.
        """
        with self._editing():
            self._settings.set_statistics(mean, std, f"input {self.name!r}")

    def set_categories(self, categories) -> None:
        """Hold a learnt vocabulary, the size becoming ``len(categories) + 1``;
        for the graph's ``adapt``, which reshapes the synapses with it.

        Parameters
        ----------
        categories : list
            Distinct strings or integers; code ``i + 1`` stands for ``categories[i]``.
        """
        self._settings.categories = _tabular.check_categories(categories, f"input {self.name!r}")
        self._size = self._settings.size()

    def vocabulary(self) -> _tabular.Vocabulary:
        """The lookup of :attr:`categories` (made once per vocabulary)."""
        return self._settings.vocabulary()

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), **self._settings.config()}
