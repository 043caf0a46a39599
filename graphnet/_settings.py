"""The settings of graphnet's own parts, checked when they are set.

An activation, a loss, a regularizer, an optimizer, a schedule, a metric or
an initializer checks its settings when it is made (``LeakyReLU(3.0)`` is a
GraphError). A part is also an object the user keeps: ``act.negative_slope
= 3.0`` after it was given to a node, or ``g.optimizer.lr = -1.0``, would
otherwise change a running graph to something ``save`` writes and ``load``
refuses, or that cannot run at all. So a setting of one of graphnet's own
parts (a parameter of its ``__init__``) set after it is made is checked the
same way: the part is made again with the new value, which raises the same
GraphError ``__init__`` raises, and the part takes the checked value (and
what its ``__init__`` derives from it). Parts written by users are theirs
to check.
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

    #: The settings checked when set: the ``__init__`` parameters of graphnet's
    #: own classes (those a part holds under their own names).
    settings: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        own = cls.__module__.startswith("graphnet.")
        init = cls.__dict__.get("__init__")
        if own and init is not None:
            cls.__init__ = _counted(init)
        if not own:
            cls.settings = frozenset()
            return
        parameters = inspect.signature(cls.__init__).parameters.values()
        cls.settings = frozenset(
            p.name for p in parameters
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            and not isinstance(getattr(cls, p.name, None), property)  # a property checks itself
        )

    def __setattr__(self, key: str, value) -> None:
        held = self.__dict__
        if key in type(self).settings and key in held and held.get(_BUILDING) == 0:
            current = {name: held[name] for name in type(self).settings if name in held}
            remade = type(self)(**{**current, key: value})  # __init__'s own checks and messages
            self.adopt_setting(key, remade)
            return
        object.__setattr__(self, key, value)

    def adopt_setting(self, key: str, remade) -> None:
        """Take the setting ``key`` from ``remade``, the part made again with
        it: here, everything ``__init__`` made (a part with state of its own
        takes less)."""
        self.__dict__.update(remade.__dict__)


def _counted(init):
    """``init`` counting itself under way in the instance, so that settings
    are checked only once the outermost ``__init__`` has returned."""

    @functools.wraps(init)
    def counted(self, *args, **kwargs):
        depth = self.__dict__.get(_BUILDING, 0)
        self.__dict__[_BUILDING] = depth + 1
        try:
            init(self, *args, **kwargs)
        finally:
            self.__dict__[_BUILDING] = depth

    return counted
