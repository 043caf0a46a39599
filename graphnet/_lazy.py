"""Handlers of lazy collections: who runs ``predict`` and ``evaluate`` on them.

Lazy collections (dask arrays, or dicts holding one) are handed to the
handler registered for them (:func:`register_lazy`): :mod:`graphnet._dask`
registers itself, and imports dask only when it is given dask data, so
``import graphnet`` never imports dask.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple

__all__ = ["LazyHandler", "register_lazy", "lazy_handler"]


class LazyHandler(NamedTuple):
    """How ``predict`` and ``evaluate`` run on a family of lazy collections."""

    #: Whether a value (an input, a target, a sample weight) is one of them.
    claims: Callable[[object], bool]
    #: ``predict(graph, x, batch_size, outputs=None)`` (``outputs``: checked node names).
    predict: Callable
    #: ``evaluate(graph, x, y, batch_size, metrics, sample_weight)``.
    evaluate: Callable


_LAZY: list[LazyHandler] = []


def register_lazy(handler: LazyHandler) -> None:
    """Hand every call whose data the handler claims to it (dask arrays:
    :mod:`graphnet._dask`)."""
    if handler not in _LAZY:
        _LAZY.append(handler)


def lazy_handler(*data) -> LazyHandler | None:
    """The handler of the first lazy collection among ``data`` (or in a dict of it)."""
    if not _LAZY:
        return None
    for item in data:
        for value in item.values() if isinstance(item, Mapping) else (item,):
            for handler in _LAZY:
                if handler.claims(value):
                    return handler
    return None
