"""The settings of graphnet's own parts, checked when they are set.

An activation, a loss, a regularizer, an optimizer, a schedule or a metric
checks its settings when it is made (``LeakyReLU(3.0)`` is a GraphError).
A part is also an object the user keeps: ``act.negative_slope = 3.0`` after
it was given to a node, or ``g.optimizer.lr = -1.0``, would otherwise change
a running graph to something ``save`` writes and ``load`` refuses, or that
cannot run at all. So a setting of one of graphnet's own parts (a parameter
of its ``__init__`` that the part holds under its own name) set after it is
made is checked the same way: the part is made again with the new value,
which raises the GraphError ``__init__`` raises, and the part takes the
checked value (and what its ``__init__`` derives from it). Parts written by
users are theirs to check.

Reading a setting costs nothing: each is a descriptor with a ``__set__`` and
no ``__get__``, so a read finds the part's own value as any attribute's (the
engine reads ``lr`` and ``beta1`` every step), and only a write runs Python.
The descriptors are put on a class when its first part is made, for the
settings that part holds.
"""

from __future__ import annotations

import functools
import inspect
from typing import ClassVar

__all__ = ["Checked"]

#: The instance entry that counts the ``__init__`` calls under way (0 once made).
_BUILDING = "_building"


class Checked:
    """A part whose settings are checked when set after it is made (see the module docs)."""

    #: The ``__init__`` parameters of one of graphnet's own classes (empty for
    #: a user's class): the settings checked when set.
    settings: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.__module__.startswith("graphnet."):
            cls.settings = frozenset()
            return
        if "__init__" in cls.__dict__:
            cls.__init__ = _counted(cls.__dict__["__init__"])
        parameters = inspect.signature(cls.__init__).parameters.values()
        cls.settings = frozenset(p.name for p in parameters
                                 if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))
        cls._descriptors_for = None  # the class its descriptors were made for (see _made)

    def adopt_setting(self, key: str, remade) -> None:
        """Take the setting ``key`` from ``remade``, the part made again with
        it: here, everything ``__init__`` made (a part with state of its own
        takes less)."""
        self.__dict__.update(remade.__dict__)


class _Setting:
    """The descriptor of one setting: no ``__get__`` (see the module docs)."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __set__(self, part, value) -> None:
        held, name = part.__dict__, self.name
        if held.get(_BUILDING) == 0 and name in held and name in type(part).settings:
            current = {n: held[n] for n in type(part).settings if n in held}
            part.adopt_setting(name, type(part)(**{**current, name: value}))  # __init__'s checks and messages
        else:
            held[name] = value


def _counted(init):
    """``init`` counting itself under way in the instance, so that settings
    are checked only once the outermost ``__init__`` has returned; the first
    part made of a class gives the class its descriptors."""

    @functools.wraps(init)
    def counted(self, *args, **kwargs):
        held = self.__dict__
        depth = held.get(_BUILDING, 0)
        held[_BUILDING] = depth + 1
        try:
            init(self, *args, **kwargs)
        finally:
            held[_BUILDING] = depth
        cls = type(self)
        if depth == 0 and cls._descriptors_for is not cls and cls.settings:
            _made(cls, held)

    return counted


def _made(cls: type, held: dict) -> None:
    """Give ``cls`` a descriptor for each setting its parts hold, but for one
    a class in its line defines as a value (a ``name`` class attribute) or a
    property; a method of that name (``Loss.delta``) is shadowed by the
    part's own value either way."""
    for name in cls.settings & held.keys():
        defined = next((vars(c)[name] for c in cls.__mro__ if name in vars(c)), None)
        if defined is None or isinstance(defined, _Setting) or inspect.isfunction(defined):
            setattr(cls, name, _Setting(name))
    cls._descriptors_for = cls
