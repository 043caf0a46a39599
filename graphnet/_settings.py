"""The settings of graphnet's own parts, checked when they are set.

An activation, a loss, a regularizer, an optimizer, a schedule or a metric
checks its settings when it is made (``LeakyReLU(3.0)`` is a GraphError).
A part is also an object the user keeps: ``act.negative_slope = 3.0`` after
it was given to a node, or ``g.optimizer.lr = -1.0``, would otherwise change
a running graph to something ``save`` writes and ``load`` refuses, or that
cannot run at all. So a setting of one of graphnet's own parts (a parameter
of its ``__init__``) set after it is made is checked the same way: the part
is made again with the new value, which raises the GraphError ``__init__``
raises, and the part takes the checked value (and what its ``__init__``
derives from it). That holds for a part unpickled or copied too (a dask
worker's, ``joblib.load``'s), whatever version pickled it. A setting cannot
be deleted: the part could not be saved or made again without it. Parts
written by users are theirs to check.

Reading a setting costs nothing: each is a descriptor with a ``__set__`` and
no ``__get__``, so a read finds the part's own value as any attribute's (the
engine reads ``lr`` and ``beta1`` every step), and only a write runs Python.
A parameter a class defines otherwise (a ``name`` class attribute, a
property such as ``learning_rate``) gets no descriptor.
"""

from __future__ import annotations

import functools
import inspect
from typing import ClassVar

from ._text import suggestion
from .errors import GraphError

__all__ = ["Checked", "naming_the_class", "refused"]

#: The instance entry that counts the ``__init__`` calls under way (0, or absent, once made).
_BUILDING = "_building"


class Checked:
    """A part whose settings are checked when set after it is made (see the module docs)."""

    #: The ``__init__`` parameters of one of graphnet's own classes, but for
    #: the keyword-only ones (empty for a user's class): the settings checked
    #: when set.
    settings: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.__module__.startswith("graphnet."):
            cls.settings = frozenset()
            return
        if "__init__" in cls.__dict__:  # setattr: a type checker would take the wrapper for every subclass's __init__
            setattr(cls, "__init__", _counted(cls.__dict__["__init__"]))  # noqa: B010
        parameters = inspect.signature(cls.__init__).parameters.values()
        # Keyword-only parameters are other names of settings (Keras's ``learning_rate``).
        cls.settings = frozenset(p.name for p in parameters
                                 if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.POSITIONAL_ONLY))
        for name in cls.settings:
            defined = next((vars(c)[name] for c in cls.__mro__ if name in vars(c)), None)
            # A method of that name (Loss.delta) is shadowed by the part's own value either way.
            if defined is None or inspect.isfunction(defined):
                setattr(cls, name, _Setting(name))

    def __delattr__(self, name: str) -> None:
        # Without its value the part could not be saved or made again, and a
        # read would find the setting's descriptor or the class's default.
        if name in type(self).settings and self.__dict__.get(_BUILDING, 0) == 0:
            raise AttributeError(f"{type(self).__name__}'s setting {name!r} cannot be deleted: set another value")
        super().__delattr__(name)

    def check_setting(self, key: str, value) -> None:
        """Refuse ``value`` for the setting ``key`` where making the part
        again with it would not (an optimizer's ``lr=None`` is its default
        when made, no rate when set)."""

    def adopt_setting(self, key: str, remade) -> None:
        """Take the setting ``key`` from ``remade``, the part made again with
        it: here, everything ``__init__`` made (a part with state of its own
        takes less)."""
        self.__dict__.update(remade.__dict__)


class _Setting:
    """A setting of one of graphnet's own parts, checked when set (see the
    module docs); read as the part's own attribute."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __set__(self, part, value) -> None:
        held, name = part.__dict__, self.name
        if held.get(_BUILDING, 0) == 0 and name in held and name in type(part).settings:
            part.check_setting(name, value)
            current = {n: held[n] for n in type(part).settings if n in held}
            part.adopt_setting(name, type(part)(**{**current, name: value}))  # __init__'s checks and messages
        else:
            held[name] = value

    def __delete__(self, part) -> None:
        try:
            del part.__dict__[self.name]
        except KeyError:
            raise AttributeError(self.name) from None


def _unbound(signature: inspect.Signature, kwargs: dict, wrong: TypeError) -> str:
    """Why a call does not fit ``signature``, and what it takes: an unknown
    keyword first (with the known one it is closest to), as Python names
    it, rather than the required argument it then leaves out."""
    params = list(signature.parameters.values())[1:]
    taken = ", ".join(str(p.replace(annotation=p.empty)) for p in params)
    keywords = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = [] if any(p.kind is p.VAR_KEYWORD for p in params) else [k for k in kwargs if k not in keywords]
    if unknown:
        hint = suggestion(unknown[0], keywords)
        return f"got an unexpected keyword argument {unknown[0]!r}; it takes ({taken}){hint}"
    return f"{wrong}; it takes ({taken})"


def refused(init, self, args: tuple, kwargs: dict, error: type[Exception] = GraphError) -> Exception | None:
    """Why the call ``init(self, *args, **kwargs)`` does not fit ``init``'s
    signature, as ``error`` naming the class called (``Graph``), not the one
    that defines ``__init__`` (``Network``); None when it fits (the
    ``TypeError`` came from inside)."""
    signature = inspect.signature(init)
    try:
        signature.bind(self, *args, **kwargs)
    except TypeError as wrong:
        return error(f"{type(self).__name__}: {_unbound(signature, kwargs, wrong)}")
    return None


def naming_the_class(init, error: type[Exception] = GraphError):
    """``init`` as the ``__init__`` of a class that others inherit unchanged:
    a call that does not fit it is refused as :func:`refused` says. From a
    user's subclass with an ``__init__`` of its own (through ``super()``),
    the call is the user's code: Python's ``TypeError`` stands."""

    @functools.wraps(init)
    def checked(self, *args, **kwargs):
        try:
            init(self, *args, **kwargs)
        except TypeError as exc:
            problem = refused(init, self, args, kwargs, error) if type(self).__init__ is checked else None
            if problem is None:
                raise
            raise problem from exc

    return checked


def _counted(init):
    """``init`` counting itself under way in the instance, so that settings
    are checked only once the outermost ``__init__`` has returned. When
    ``init`` is what the class the user called runs as its ``__init__``,
    arguments it does not take are refused naming that class
    (``Precision``), not the one that defines ``__init__`` (``_Confusion``).
    Called through ``super()`` from a user's subclass with an ``__init__`` of
    its own, the call is the user's code: Python's ``TypeError`` stands."""

    @functools.wraps(init)
    def counted(self, *args, **kwargs):
        held = self.__dict__
        depth = held.get(_BUILDING, 0)
        held[_BUILDING] = depth + 1
        try:
            init(self, *args, **kwargs)
        except TypeError as exc:
            problem = refused(init, self, args, kwargs) if type(self).__init__ is counted else None
            if problem is None:
                raise
            raise problem from exc
        finally:
            held[_BUILDING] = depth

    return counted
