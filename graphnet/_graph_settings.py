"""The settings of a whole graph that a user may set: its name, seed and dtype.

Each has one check, run by the constructor and by every later assignment
(``g.name = ...``, ``g.seed = ...``, ``g.dtype = ...`` and ``astype``)
before anything changes, so that a graph holds only what ``save`` can
write and ``load`` reads back.
"""

from __future__ import annotations

import numpy as np

from ._text import shown
from ._validation import check_text, is_dtype, is_int
from .errors import GraphError

__all__ = ["DTYPES", "GraphSettings", "checked_dtype", "checked_seed", "with_settings_held"]

#: The dtypes a graph can hold its weights in (and a model file records).
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def checked_seed(seed: object, graph: str) -> int | None:
    """``seed`` as None or an int, for graph ``graph``.

    Raises
    ------
    GraphError
        For anything but None or an integer >= 0.
    """
    if seed is not None and not is_int(seed, 0):
        raise GraphError(f"graph {graph!r}: seed must be None or an integer >= 0, got {shown(seed)}")
    return None if seed is None else int(seed)


def checked_dtype(dtype: object, graph: str) -> np.dtype:
    """``dtype`` as a numpy dtype, for graph ``graph``.

    Raises
    ------
    GraphError
        For anything numpy does not read as float32 or float64.
    """
    if not is_dtype(dtype) or np.dtype(dtype) not in DTYPES:
        raise GraphError(f"graph {graph!r}: dtype must be 'float32' or 'float64', got {shown(dtype)}")
    return np.dtype(dtype)


def with_settings_held(state: dict) -> dict:
    """A graph's pickled ``state`` with its name, seed and dtype where
    :class:`GraphSettings` holds them (a pickle made before they were
    checked settings holds them as plain attributes)."""
    return {(f"_{key}" if key in ("name", "seed", "dtype") else key): value for key, value in state.items()}


class GraphSettings:
    """The ``name``, ``seed`` and ``dtype`` of a graph, checked when set.

    A class using it defines ``astype(dtype)``, which setting ``dtype`` runs.
    """

    _name: str
    _seed: int | None
    _dtype: np.dtype

    @property
    def name(self) -> str:
        """The graph's name: a non-empty string without control characters."""
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._name = check_text(value, "graph name")

    @property
    def seed(self) -> int | None:
        """The seed the graph was built with (None: fresh entropy), as
        ``save`` records it; setting another records that one and leaves
        the random streams as they are."""
        return self._seed

    @seed.setter
    def seed(self, value: int | None) -> None:
        self._seed = checked_seed(value, self._name)

    @property
    def dtype(self) -> np.dtype:
        """The dtype of every weight and bias; setting it runs ``astype``."""
        return self._dtype

    @dtype.setter
    def dtype(self, value) -> None:
        self.astype(value)
