"""The registries: one lookup every family shares, and custom parts.

Activations, losses, optimizers, regularizers and schedules each keep a dict
by name and a ``get()`` that calls :func:`lookup`, so they refuse the same
things with the same words.

Families that users extend with classes of their own (activations, losses;
metrics next) join with :func:`add_family`: then :func:`register`
(``gn.register(cls)``) files a custom class under its ``name`` in that
family's registry, found by its base class, and :func:`custom_objects`
makes classes known for one load (``gn.load(path, custom_objects=...)``)
without registering them anywhere: a context variable, so another thread
loading at the same time never sees them.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ._text import preview, shown, suggestion
from ._validation import check_text
from .errors import GraphError

__all__ = ["lookup", "Family", "add_family", "register", "custom_objects"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Family:
    """A registry users extend: custom classes subclass ``base``."""

    base: type
    #: name -> class, the dict its ``get()`` looks names up in.
    registry: dict
    #: For messages: ``"activation"``, ``"loss"``, ``"metric"``.
    name: str
    #: ``check(cls)`` raises a GraphError for a class the engine cannot use.
    check: Callable[[type], None]
    #: graphnet's own names, which no custom class may take.
    builtins: frozenset


_FAMILIES: list[Family] = []
#: The classes ``custom_objects`` makes known in this context: name -> class.
_SCOPE: contextvars.ContextVar[Mapping[str, type]] = contextvars.ContextVar("graphnet_custom_objects",
                                                                              default={})


def add_family(base: type, registry: dict, name: str, check: Callable[[type], None]) -> None:
    """Let users extend ``registry`` with subclasses of ``base`` (the extension
    point of :func:`register`): :mod:`graphnet.activations` and
    :mod:`graphnet.losses` call it once their own entries are in, and a
    ``graphnet.metrics.Metric`` family joins the same way. The names in
    ``registry`` now are graphnet's own."""
    if not any(f.base is base for f in _FAMILIES):
        _FAMILIES.append(Family(base, registry, name, check, frozenset(registry)))


def _family_of(cls: object, where: str) -> Family:
    for family in _FAMILIES:
        if isinstance(cls, type) and issubclass(cls, family.base):
            return family
    bases = " or ".join(sorted(f"gn.{_public(f.base.__module__)}.{f.base.__name__}" for f in _FAMILIES))
    if any(isinstance(cls, f.base) for f in _FAMILIES):
        raise GraphError(f"{where}: give the class ({type(cls).__name__}), not an instance of it")
    raise GraphError(f"{where}: expected a subclass of {bases}, got {shown(cls)}")


def _public(module: str) -> str:
    """Where users find a class: its module up to the first internal part
    (``graphnet.metrics._metric`` -> ``metrics``)."""
    parts = module.removeprefix("graphnet.").split(".")
    return ".".join(part for i, part in enumerate(parts) if not any(p.startswith("_") for p in parts[: i + 1]))


def register(cls: type) -> type:
    """Make a custom activation, loss, metric or learning-rate schedule known by its ``name`` (``gn.register``).

    Then ``activation="cube"``, specs and model files naming it find the
    class, as they find graphnet's own. Registering a class again (or a new
    class under a custom name already taken, as re-running a notebook cell
    does) replaces the entry. Usable as a class decorator.

    Parameters
    ----------
    cls : type
        A subclass of :class:`graphnet.activations.Activation`,
        :class:`graphnet.losses.Loss`, :class:`graphnet.metrics.Metric` or
        :class:`graphnet.schedules.LearningRateSchedule` (see their modules
        for the protocol).

    Returns
    -------
    type
        ``cls`` itself.

    Raises
    ------
    GraphError
        For an instance or another type, a class that breaks its family's
        protocol (a missing method, a signature the engine cannot call, no
        ``name``), or a name graphnet's own parts use.

    Examples
    --------
    >>> import graphnet as gn
    >>> class Cube(gn.activations.Activation):
    ...     name = "cube"
    ...     def forward(self, z):
    ...         return z ** 3
    ...     def backward(self, a, grad, z):
    ...         return grad * 3 * z ** 2
    >>> gn.register(Cube) is Cube
    True
    >>> gn.Graph().add_hidden("h", 4, activation="cube").activation
    Cube()
    """
    family = _family_of(cls, "register")
    family.check(cls)
    name = check_text(cls.name, f"{cls.__name__}.name")
    taken = family.registry.get(name)
    if name in family.builtins:
        raise GraphError(
            f"register: {family.name} name {name!r} is graphnet's own ({taken.__name__}); give "
            f"{cls.__name__} another name"
        )
    if taken is not None and taken is not cls:
        logger.info("register: %s %r is now %s (was %s)", family.name, name, cls.__qualname__, taken.__qualname__)
    family.registry[name] = cls
    return cls


@contextlib.contextmanager
def custom_objects(objects: Mapping[str, type] | None):
    """Within the block, names in ``objects`` find their classes (before the
    registries), for this thread or task only: what ``load``, ``from_dict``
    and ``from_spec`` do with their ``custom_objects=``.

    Raises
    ------
    GraphError
        For a mapping that is not names to custom classes, or a class that
        breaks its family's protocol.
    """
    if objects is None:
        yield
        return
    if not isinstance(objects, Mapping):
        raise GraphError(f"custom_objects must be a dict name -> class, got {shown(objects)}")
    for name, cls in objects.items():
        where = f"custom_objects[{shown(name)}]"
        if not isinstance(name, str):
            raise GraphError(f"{where}: keys must be the names files use (str)")
        _family_of(cls, where).check(cls)
    token = _SCOPE.set({**_SCOPE.get(), **objects})
    try:
        yield
    finally:
        _SCOPE.reset(token)


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
        if name is None:
            keras = " (Keras's {'class_name': ..., 'config': {...}} is read by gn.from_keras)" if (
                "class_name" in params) else ""
            found = "'name' is None" if "name" in identifier else f"got the keys {preview(list(params))}"
            raise GraphError(f"{family} config dict: give the {family}'s name under \"name\", as "
                             f"{{'name': {sorted(registry)[0]!r}, ...}}; {found}{keras}")
    else:
        hint = ""
        if isinstance(identifier, type) and issubclass(identifier, base):
            hint = f"; pass an instance, {identifier.__name__}(...)"
        elif callable(identifier) and not isinstance(identifier, type):
            hint = (f"; a custom {family} is a subclass of gn.{_public(base.__module__)}.{base.__name__} that "
                    "brings its maths and its derivative (graphnet has no automatic differentiation): see the "
                    "guide's Custom parts")
        raise GraphError(
            f"{family} must be a name, a config dict or {instance}, "
            f"got {type(identifier).__name__}: {shown(identifier)}{hint}"
        )
    cls = _SCOPE.get().get(name) if isinstance(name, str) else None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        cls = registry.get(name) if isinstance(name, str) else None
    if cls is None:
        hint = ""
        if any(f.base is base for f in _FAMILIES):
            hint = (f"; if {shown(name)} is a custom {family}, register its class with gn.register(cls), "
                    f"or pass custom_objects={{{shown(name)}: cls}} when loading a file or spec (gn.load, "
                    "from_dict, from_spec)")
        raise GraphError(f"unknown {family} {shown(name)}; known: {sorted(registry)}{hint}"
                         f"{suggestion(name, registry)}")
    try:
        return cls(**params)
    except (TypeError, GraphError) as exc:
        if isinstance(exc, GraphError) and not isinstance(exc.__cause__, TypeError):
            raise  # a parameter's own check, named already
        raise GraphError(f"{family} {name!r}: bad parameters {shown(params)} ({exc})") from None
