"""Synapse: the dense weight matrix from one node to another."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from . import _protocols, initializers, regularizers
from .errors import GraphError
from ._member import Member, checked_values
from ._parameters import WEIGHT, ParameterRecord, new_token, weight_key
from ._validation import check_bool, read_only_view

__all__ = ["Synapse", "init_values"]


class Synapse(Member):
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

    src: str
    dst: str
    #: The initialiser's name, or ``"array"`` (see Parameters).
    init: str
    _key: str
    _weight: np.ndarray | None
    _shape: tuple[int, int]
    #: ``(seed, initialiser name)`` of the draw still to come; None once the weight exists.
    _pending: tuple[int, str] | None
    #: Whether ``init`` was the destination's default (it follows the node, while pending).
    _by_default: bool
    _trainable: bool
    _regularizer: Any
    #: Which parameter the weight is (:mod:`graphnet._parameters`): a new
    #: synapse is a new parameter, whatever its key.
    parameter_token: int

    def __init__(self, src: str, dst: str, weight: np.ndarray | None, init: str, trainable: bool = True,
                 regularizer=None, shape: tuple[int, int] | None = None):
        self.src = src
        self.dst = dst
        self._key = weight_key(src, dst)  # src and dst never change
        self._weight = weight
        self._shape = tuple(weight.shape) if weight is not None else tuple(shape)
        self._pending = None
        self._by_default = False
        self.init = init
        self._trainable = bool(trainable)
        self._regularizer = regularizers.get(regularizer)
        self.parameter_token = new_token()
        self._graph = None


    @property
    def regularizer(self):
        """The penalty on this weight (a :mod:`graphnet.regularizers` instance) or None."""
        return self._regularizer

    @regularizer.setter
    def regularizer(self, value) -> None:
        value = regularizers.get(value)
        with self._editing():
            self._regularizer = value
            self._changed()

    @property
    def trainable(self) -> bool:
        """Whether the optimizer updates this weight; changing it recompiles the graph."""
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        value = check_bool(value, f"synapse {self.src!r} -> {self.dst!r}: trainable")
        with self._editing():
            self._trainable = bool(value)
            self._changed()

    @property
    def key(self) -> str:
        """The key of this weight in ``get_weights()``: ``"SRC->DST.weight"``."""
        return self._key

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
        Into a node fed by a categorical input still to adapt, a read shows
        provisional values (read-only) until ``adapt`` draws them for good.

        Once the graph has run, the array is a live view of its parameter
        buffer until the graph's next edit or setting change, which moves
        the weights into a new buffer: read it again after one (the old
        array keeps its values, and writes to it no longer reach the graph).
        Assigning always reaches the graph.
        """
        if self._weight is None:
            graph = self._graph
            if graph is None:
                raise GraphError(f"synapse {self.src!r} -> {self.dst!r}: its graph is gone, and its weight was never "
                                 "drawn (a graph draws its weights when they are first read, or when it first runs)")
            provisional = graph.materialize(self.dst, partial=True)
            if self._weight is None:
                return read_only_view(provisional[self._key])
        return self._weight

    @weight.setter
    def weight(self, value) -> None:
        what = f"synapse {self.src!r} -> {self.dst!r}: weight"
        with self._editing():
            graph = self._graph
            if self._weight is None and graph is not None:  # never drawn: the given values are its first
                template = np.broadcast_to(np.zeros((), graph.dtype), self._shape)
                graph.assign_first_values(self, self._placed(checked_values(value, template, what)))
                return
            if self._weight is None:
                raise GraphError(f"{what}: its graph is gone, and its weight was never drawn")
            self._weight[...] = self._placed(checked_values(value, self._weight, what))

    # -- the engine's access to the weight (graphnet.network, _lazy_init, _parameters)
    @property
    def parameter_array(self) -> np.ndarray | None:
        """The weight array as stored: None while its draw is pending (reading
        :attr:`weight` would draw it)."""
        return self._weight

    def bind_parameter(self, array: np.ndarray) -> None:
        """Hold ``array`` as the weight from now on; a pending draw is then settled.

        Parameters
        ----------
        array : ndarray of shape (src.size, dst.size)
            The weight's first values, a view of the plan's flat buffer, or a
            copy in another dtype or on another device.
        """
        self._weight = array
        self._pending = None

    @property
    def parameter_key(self) -> str:
        """The weight's key in ``get_weights()`` (:attr:`key`)."""
        return self._key

    def parameter_record(self) -> ParameterRecord:
        """What the weight is, for ``Graph.parameters()`` and the plan's buffer."""
        return ParameterRecord(self._key, WEIGHT, self.dst, (self.src, self.dst), self._shape, self._trainable)

    @property
    def pending(self) -> tuple[int, str] | None:
        """``(seed, initialiser name)`` of the draw still to come, or None."""
        return self._pending

    @property
    def follows_default(self) -> bool:
        """Whether a pending draw uses its destination's default initialiser
        (and so follows the node when it changes kind)."""
        return self._pending is not None and self._by_default

    def defer(self, seed: int, init: str, by_default: bool) -> None:
        """Wait for the draw of ``init`` from ``seed`` (see :mod:`graphnet._lazy_init`).

        Parameters
        ----------
        seed : int
            The 128-bit seed the destination's draw is made from.
        init : str
            The initialiser's name.
        by_default : bool
            Whether ``init`` is the destination's default initialiser (the
            draw then follows the node when it changes kind: :meth:`retarget`).
        """
        self.init, self._pending, self._by_default = init, (seed, init), by_default

    def resize_source(self, rows: int) -> None:
        """The source grew (a categorical input learning its vocabulary); only
        while the draw is pending, since drawn rows belong to the old values.

        Parameters
        ----------
        rows : int
            The source's new size: the shape becomes ``(rows, dst.size)``.

        Raises
        ------
        GraphError
            When the weight is already drawn or given.
        """
        if self._weight is not None:
            raise GraphError(f"synapse {self.src!r} -> {self.dst!r} already holds weights for "
                             f"{self._shape[0]} source rows")
        self._shape = (int(rows), self._shape[1])

    def retarget(self, init: str) -> None:
        """A pending default draw takes the destination's new default initialiser.

        Parameters
        ----------
        init : str
            That initialiser's name; ignored unless the draw is pending and
            follows the default (:attr:`follows_default`).
        """
        if self.follows_default:
            self.init, self._pending = init, (self._pending[0], init)

    def get_config(self) -> dict[str, Any]:
        """JSON-safe description (no weights)."""
        config = {"src": self.src, "dst": self.dst, "init": self.init, "trainable": self.trainable}
        if self._regularizer is not None:
            config["regularizer"] = _protocols.config(self._regularizer, "regularizer",
                                                      f"synapse {self.src!r} -> {self.dst!r}: ")
        return config

    def _what(self) -> str:
        return f"synapse {self.src!r} -> {self.dst!r}"

    def _successor(self) -> str:
        return f"g.synapse({self.src!r}, {self.dst!r})"

    def __repr__(self) -> str:
        frozen = "" if self.trainable else ", trainable=False"
        return f"Synapse({self.src!r} -> {self.dst!r}, shape={self.shape}{frozen})"


def init_values(init, shape: tuple[int, int], dtype: np.dtype, what: str) -> np.ndarray | None:
    """``connect``'s ``init`` checked: None for an initialiser's name (unknown
    names refused before anything is drawn), else the values in ``dtype``.

    Raises
    ------
    GraphError
        Naming ``what`` (the synapse), for an unknown name, a wrong shape, or
        values that are not real numbers finite in ``dtype``.
    """
    if init is None:
        return None
    if isinstance(init, str):
        initializers.get(init, f"{what}: init")
        return None
    if isinstance(init, Mapping) or callable(init):
        known = sorted(initializers.INITIALIZERS)
        raise GraphError(f"{what}: init must be an initializer's name (a str, one of {known}) or an array of shape "
                         f"{shape}, got {type(init).__name__}")
    given = np.asarray(init)
    if given.shape != shape:
        raise GraphError(f"{what}: init array must have shape {shape}, got {given.shape}")
    numeric = given.dtype.kind in "biuf"
    with np.errstate(over="ignore"):
        # finite in the graph's dtype: 1e39 is inf in a float32 graph
        finite = numeric and np.isfinite(given.astype(dtype)).all()
    if not finite:
        raise GraphError(f"{what}: init array must be finite numbers (real, and finite in the graph's {dtype})")
    return np.array(init, dtype=dtype)
