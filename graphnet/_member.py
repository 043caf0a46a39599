"""What a node or a synapse knows of the graph that holds it.

A :class:`Member` is attached to at most one graph (the graph calls
:meth:`Member.attach` and :meth:`Member.detach`). A setting changed on a
member tells its graph (``graph.changed()``, so the compiled plan is made
again) and is made under the graph's write lock, so no prediction or
training step sees half an edit; new values go to the graph's device.

A member an edit replaced (``widen``, ``replace``, ``Sequential.add``, the
surgery that makes new nodes and synapses under the old names) refuses
setting changes: the graph holds its successor, and the change would
reach nothing. A member removed without a successor may be changed and
added again.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import Any

import numpy as np

from . import backend
from .errors import GraphError

__all__ = ["Member", "checked_values"]


class Member:
    """A part of at most one graph: a node or a synapse."""

    #: A weak reference to the Network holding this member, or None.
    _graph_ref: weakref.ref | None = None
    #: The Network itself, while something of it may still be drawn (see :attr:`_graph`).
    _graph_held: Any = None
    #: The name of the graph that put a successor in this member's place, or None.
    _replaced_in: str | None = None

    @property
    def _graph(self) -> Any:
        """The Network holding this member, or None.

        Held weakly once the graph has drawn every weight and bias: the graph
        holds its members, so a strong reference back would make every graph
        a cycle, freed (with its weights, optimizer state and buffers) only
        when the cyclic garbage collector next runs, not when the user lets
        go of it. Until then it is held strongly, so that a member read
        after the user let go of a graph never run (``make().nodes["h"].bias``)
        still draws from it. Read it once into a local: another thread may
        let go of the graph between two reads.
        """
        ref = self._graph_ref
        return None if ref is None else ref()

    @_graph.setter
    def _graph(self, graph) -> None:
        self._graph_ref = None if graph is None else weakref.ref(graph)
        self._graph_held = graph

    def hold_weakly(self) -> None:
        """Called by the graph once nothing of it waits for a draw."""
        self._graph_held = None

    @property
    def graph(self):
        """The graph holding this member, or None."""
        return self._graph

    def attach(self, graph) -> None:
        """Become a part of ``graph`` (called by the graph that takes it in)."""
        self._graph = graph
        self._replaced_in = None

    def detach(self, replaced: bool = False) -> None:
        """Leave the graph (called by the graph that drops it); ``replaced``:
        the graph now holds a successor under this member's name."""
        graph = self._graph
        self._replaced_in = graph.name if replaced and graph is not None else None
        self._graph = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_replaced_in", None)  # a copy took nobody's place
        state["_graph"] = self._graph  # a weak reference is not pickled; the graph is (once, with its members)
        state.pop("_graph_ref", None)
        state.pop("_graph_held", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        graph = state.pop("_graph", None)
        self.__dict__.update(state)
        self._graph = graph

    def _what(self) -> str:
        """How a message names this member (``node 'h'``; a synapse says otherwise)."""
        return f"node {self.name!r}"

    def _successor(self) -> str:
        """How to reach the graph's member in this one's place (``g['h']``)."""
        return f"g[{self.name!r}]"

    def _changed(self) -> None:
        """A setting changed: the holding graph's compiled plan is stale."""
        graph = self._graph
        if graph is not None:
            graph.changed()

    def _editing(self):
        """The holding graph's write lock (edits wait for running predictions
        and training steps), or nothing for a member of no graph.

        Raises
        ------
        GraphError
            For a member an edit replaced (see the module docs).
        """
        graph = self._graph
        if graph is not None:
            return graph.lock.writing()
        if self._replaced_in is not None:
            raise GraphError(
                f"{self._what()} is no longer in graph {self._replaced_in!r}: an edit (widen, replace, "
                f"Sequential.add, ...) put a new one in its place, so this change would reach nothing; "
                f"change {self._successor()} instead"
            )
        return contextlib.nullcontext()

    def _placed(self, value: np.ndarray):
        """``value`` on the device of the holding graph (unchanged for no graph or the CPU)."""
        graph = self._graph
        return value if graph is None else graph.backend.to_device(value)


def checked_values(value, current: np.ndarray, what: str) -> np.ndarray:
    """``value`` as an array of ``current``'s shape and dtype, refused unless
    every element is a real number finite in that dtype (what ``save`` can
    write and ``load`` read back).

    Raises
    ------
    GraphError
        Naming ``what``, for a wrong shape, values that are not real numbers,
        or values not finite in ``current``'s dtype.
    """
    array = np.asarray(backend.host(value))
    if array.shape != current.shape:
        raise GraphError(f"{what} must have shape {current.shape}, got {array.shape}")
    if array.dtype.kind not in "biuf":
        raise GraphError(f"{what} must be real numbers, got an array of dtype {array.dtype}")
    with np.errstate(over="ignore"):
        array = array.astype(current.dtype)
    if not np.isfinite(array).all():
        raise GraphError(f"{what} must be finite in {current.dtype}, found NaN or inf")
    return array
