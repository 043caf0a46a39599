"""The one lookup every registry shares: a name, a config dict or an instance.

Activations, losses, optimizers, regularizers and schedules each keep a dict
by name and a ``get()`` that calls :func:`lookup`, so they refuse the same
things with the same words.
"""

from __future__ import annotations

from collections.abc import Mapping

from ._text import shown
from .errors import GraphError

__all__ = ["lookup"]


def lookup(identifier, registry: Mapping[str, type], family: str, base: type, instance: str):
    """``identifier`` as a ``base`` instance.

    Parameters
    ----------
    identifier : str, dict or ``base``
        A name (default parameters), a config dict ``{"name": ..., **params}``
        or an instance (returned as it is).
    registry : dict name -> class
    family : str
        For messages: ``"activation"``, ``"loss"``, ...
    base : type
    instance : str
        How messages name an instance: ``"an Activation"``.

    Raises
    ------
    GraphError
        For another type, an unknown name (listing the known ones) or bad parameters.
    """
    if isinstance(identifier, base):
        return identifier
    if isinstance(identifier, str):
        name, params = identifier, {}
    elif isinstance(identifier, Mapping):
        params = dict(identifier)
        name = params.pop("name", None)
    else:
        raise GraphError(
            f"{family} must be a name, a config dict or {instance}, "
            f"got {type(identifier).__name__}: {shown(identifier)}"
        )
    cls = registry.get(name) if isinstance(name, str) else None
    if cls is None:
        raise GraphError(f"unknown {family} {shown(name)}; known: {sorted(registry)}")
    try:
        return cls(**params)
    except TypeError as exc:
        raise GraphError(f"{family} {name!r}: bad parameters {shown(params)} ({exc})") from None
