"""A node of a graph: its name and size, the base of Input, Hidden and Output
(:mod:`graphnet.nodes`)."""

from __future__ import annotations

from typing import Any, ClassVar

from ._member import Member
from ._validation import check_int, check_text, has_control
from .errors import GraphError

__all__ = ["MAX_SIZE", "Node", "check_name", "where"]

#: No node can have more features than this: what a model file holds, and a
#: bound that keeps the parameter count (and the numbers in messages) within
#: reach before anything is allocated.
MAX_SIZE = 1 << 40


def check_name(name: object, what: str = "node") -> str:
    """A node name: a non-empty string without ``->`` (which separates weight keys).

    Raises
    ------
    GraphError
        When the name is not usable.
    """
    if isinstance(name, str) and ("->" in name or has_control(name)):
        raise GraphError(f"{what} name {name!r} must not contain '->' or control characters")
    if not isinstance(name, str) or not name:
        raise GraphError(f"{what} name must be a non-empty string, got {name!r}")
    return check_text(name, f"{what} name")


def where(cls: type, name: str | None) -> str:
    """How a message names a node: ``node 'h'``, or its class (``Hidden``) while it has no name."""
    return f"node {name!r}" if name is not None else cls.__name__


class Node(Member):
    """Base class: a named node of ``size`` features.

    ``name`` and ``size`` are fixed once made. The other settings
    (activation, dropout, loss, ...) may be changed on a node that is in a
    graph: the graph then recompiles before it next runs.

    Parameters
    ----------
    size : int
        Its number of features, a positive integer.
    name : str, optional
        A non-empty string without ``->`` or control characters; a node
        added to a graph needs one (``Sequential`` names its layers).
    """

    kind: ClassVar[str] = ""

    _name: str | None
    _size: int

    def __init__(self, size: int, name: str | None = None):
        self._name = None if name is None else check_name(name)
        self._size = check_int(size, f"{where(type(self), name)}: size")
        if self._size > MAX_SIZE:
            raise GraphError(f"{where(type(self), name)}: size must be at most 2**40 (what a model file holds), "
                             f"got {self._size}")
        self._graph = None

    @property
    def name(self) -> str | None:
        return self._name

    @property
    def size(self) -> int:
        return self._size

    @property
    def num_params(self) -> int:
        """Parameters this node owns (its bias); weights belong to synapses."""
        return 0

    def get_config(self) -> dict[str, Any]:
        """JSON-safe description (no weights)."""
        return {"kind": self.kind, "name": self.name, "size": self.size}

    @property
    def _named(self) -> str:  # for the reprs, calls that make the node again
        return "" if self.name is None else f", name={self.name!r}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}{self._named})"
