"""Synapse: the dense weight matrix from one node to another."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import regularizers
from .errors import GraphError
from .nodes import _editing, _placed, _values
from .parameters import weight_key

__all__ = ["Synapse"]


class Synapse:
    """The edge ``src -> dst`` with a weight of shape ``(src.size, dst.size)``.

    Parameters
    ----------
    src, dst : str
        Node names.
    weight : ndarray of shape (src.size, dst.size), or None
        Initial values; ``None`` while the graph has not drawn them yet (it
        draws a named initialiser once the destination's fan-in is known: see
        :meth:`Graph.connect <graphnet.graph.Graph.connect>`). Reading
        :attr:`weight` draws them.
    init : str
        The initialiser's name, or ``"array"`` for user-given values; kept so
        that specs and summaries can say how the weight started.
    trainable : bool
        When false, the optimizer leaves the weight alone (its gradient is
        still computed and still flows through it).
    regularizer : str, dict or Regularizer, optional
        A penalty on the weight, added to the loss (``graphnet.regularizers``).
    shape : tuple (src.size, dst.size), optional
        Needed when ``weight`` is None.
    """

    def __init__(self, src: str, dst: str, weight: np.ndarray | None, init: str, trainable: bool = True,
                 regularizer=None, shape: tuple[int, int] | None = None):
        self.src = src
        self.dst = dst
        self._weight = weight
        self._shape = tuple(weight.shape) if weight is not None else tuple(shape)
        #: ``(seed, initialiser name)`` of the draw still to come; None once the weight exists.
        self._pending: tuple[int, str] | None = None
        #: Whether ``init`` was the destination's default (it follows the node, while pending).
        self._by_default = False
        self.init = init
        self._trainable = bool(trainable)
        self._regularizer = regularizers.get(regularizer)
        self._graph = None  # set by the graph that holds this synapse

    @property
    def regularizer(self):
        """The penalty on this weight (a :mod:`graphnet.regularizers` instance) or None."""
        return self._regularizer

    @regularizer.setter
    def regularizer(self, value) -> None:
        value = regularizers.get(value)
        with self._editing():
            self._regularizer = value
            if self._graph is not None:
                self._graph._changed()

    @property
    def trainable(self) -> bool:
        """Whether the optimizer updates this weight; changing it recompiles the graph."""
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        if not isinstance(value, (bool, np.bool_)):
            raise GraphError(f"synapse {self.src!r} -> {self.dst!r}: trainable must be True or False, "
                             f"got {value!r}")
        with self._editing():
            self._trainable = bool(value)
            if self._graph is not None:
                self._graph._changed()

    def _editing(self):
        return _editing(self._graph)

    @property
    def key(self) -> str:
        """The key of this weight in ``get_weights()``: ``"SRC->DST.weight"``."""
        return weight_key(self.src, self.dst)

    @property
    def shape(self) -> tuple[int, int]:
        return self._shape

    @property
    def num_params(self) -> int:
        return math.prod(self._shape)

    @property
    def weight(self) -> np.ndarray:
        """Shape ``(src.size, dst.size)``. Assigning copies the values in (shape checked).

        The first read of a weight the graph has not drawn yet draws it (and
        its destination's other waiting weights) with the destination's fan-in
        at that moment; from then on it only changes when assigned or trained.
        """
        if self._weight is None:
            self._graph._draw(self.dst)
        return self._weight

    @weight.setter
    def weight(self, value) -> None:
        what = f"synapse {self.src!r} -> {self.dst!r}: weight"
        with self._editing():
            if self._weight is None:  # never drawn: the given values are its first, nothing is drawn
                template = np.broadcast_to(np.zeros((), self._graph.dtype), self._shape)
                self._graph._assign_undrawn(self, _placed(self._graph, _values(value, template, what)))
                return
            self._weight[...] = _placed(self._graph, _values(value, self._weight, what))

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "_shape" not in state:  # pickled before a weight could wait for its fan-in
            state["_shape"], state["_pending"] = tuple(state["_weight"].shape), None
        state.setdefault("_by_default", False)
        self.__dict__.update(state)

    def get_config(self) -> dict[str, Any]:
        """JSON-safe description (no weights)."""
        config = {"src": self.src, "dst": self.dst, "init": self.init, "trainable": self.trainable}
        if self._regularizer is not None:
            config["regularizer"] = self._regularizer.get_config()
        return config

    def __repr__(self) -> str:
        frozen = "" if self.trainable else ", trainable=False"
        return f"Synapse({self.src!r} -> {self.dst!r}, shape={self.shape}{frozen})"
