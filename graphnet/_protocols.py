"""The protocol of custom activations and losses, read once per class.

A subclass of :class:`~graphnet.activations.Activation` or
:class:`~graphnet.losses.Loss` written outside graphnet may write its
methods in a shorter form than the engine calls them:

==============  =====================================  ===========================
method          the short form                         the engine's call
==============  =====================================  ===========================
``forward``     ``forward(z) -> a``                    ``forward(z, out=, xp=)``
``backward``    ``backward(a, grad[, z]) -> dL/dz``    ``backward(a, grad, z, xp=)``
``value``       ``value(y, a) -> (n,)`` row losses     ``value(y, a, z, r, xp=)``
``gradient``    ``gradient(y, a) -> (n, k)`` per row   ``gradient(y, a, r, xp=)``
``get_config``  ``get_config() -> {arguments}``        ``get_config() -> {"name": ..., arguments}``
==============  =====================================  ===========================

When such a class is made (``__init_subclass__``), each method it defines
is read once with :func:`inspect.signature` and wrapped in an adapter with
the engine's signature. The adapter passes the method only the arguments it
names (``z``, ``out``, ``r``, ``xp``, by keyword), turns a short loss's row
losses into their mean (weighted by the sample weights' row factors ``r``)
and its per-row derivatives into the gradient of that mean, and checks the
shape of what comes back, so that a wrong one is a GraphError naming the
part and what the protocol wants rather than a broadcasting error deep in
the engine. Nothing is inspected per batch. graphnet's own classes are
written in the engine's form and are never wrapped.

A method the engine cannot call (an argument it never passes, too few
arguments) or a missing one is reported by :func:`check` when the class is
registered (``gn.register``) or first used in a node.

``get_config`` may return the constructor's arguments alone, as a Keras
layer's does: its adapter adds the part's ``name``, which files use to find
the class again (``gn.register``, ``custom_objects=``). :func:`config` checks
what a file would hold (a dict of JSON-safe values under the part's own
name) when a part is given to a node or a synapse and again when the graph is
written out (``to_dict``, ``save``, naming the node or synapse), so a
config no file could hold or read back is a GraphError naming the part.
Regularizers, which users may subclass but not register, get the same
``get_config`` adapter.
"""

from __future__ import annotations

import inspect
import math
import weakref

import numpy as np

from ._text import clip, shown
from ._validation import read_only_view
from .errors import GraphError

__all__ = ["ACTIVATION", "LOSS", "CONFIG", "PARAMETERS", "adapt", "adapt_config", "check", "config", "is_parameter"]

#: What a custom activation must provide, as messages say it.
ACTIVATION = (
    "a custom Activation sets name = '...' and defines forward(z) -> a (an array of z's shape) "
    "and backward(a, grad) -> dL/dz (of a's shape) given a = forward(z) and grad = dL/da; "
    "backward may also take z (the pre-activation), and both may take xp= (numpy, or CuPy on a GPU)"
)
#: What a custom loss must provide, as messages say it.
LOSS = (
    "a custom Loss sets name = '...' and defines value(y, a) -> the loss of each row, shape (n,), "
    "and gradient(y, a) -> d(row loss)/da row by row, shape (n, k); the engine takes the mean over "
    "rows and applies sample weights itself (both may take xp=)"
)

#: What a part's parameter may be in a model file (a spec keeps the same).
PARAMETERS = "finite numbers, true/false, text, null, and lists or string-keyed dicts of those"

#: What a custom part's ``get_config`` must return, as messages say it.
CONFIG = (
    "get_config() returns the arguments that make the part again, type(part)(**config), as a dict of "
    f"plain values ({PARAMETERS}); graphnet adds the part's name"
)

_MAX_ITEMS, _MAX_DEPTH, _MAX_TEXT = 10_000, 8, 10_000  # a file's parameters stay small


def is_parameter(value, depth: int = 0) -> bool:
    """Whether ``value`` is a part's parameter a model file holds (:data:`PARAMETERS`):
    what ``get_config`` may return and what a spec's reader takes."""
    if isinstance(value, (list, dict)):
        if depth >= _MAX_DEPTH or len(value) > _MAX_ITEMS:
            return False
        if isinstance(value, dict):
            return all(isinstance(k, str) and is_parameter(v, depth + 1) for k, v in value.items())
        return all(is_parameter(v, depth + 1) for v in value)
    if isinstance(value, str):
        return len(value) <= _MAX_TEXT
    if isinstance(value, (bool, int)) or value is None:
        return True
    return isinstance(value, float) and math.isfinite(value)


_PROTOCOLS = {"activation": ACTIVATION, "loss": LOSS}
# The engine's positional arguments and the optional ones passed by keyword, per method.
_METHODS = {
    "activation": {"forward": (("z",), ("out", "xp")), "backward": (("a", "grad"), ("z", "xp"))},
    # value is not offered z: a non-fused loss's workspace keeps only a (z is a's buffer).
    "loss": {"value": (("y", "a"), ("r", "xp")), "gradient": (("y", "a"), ("r", "xp"))},
}
# Per class: its signature problems, found when it was made.
_PROBLEMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_CHECKED: weakref.WeakSet = weakref.WeakSet()


def adapt(cls: type, family: str) -> None:
    """Wrap each engine method ``cls`` defines itself in an adapter (see the
    module docs); called by ``Activation.__init_subclass__`` and
    ``Loss.__init_subclass__`` for classes made outside graphnet."""
    problems = []
    for method, (positional, extras) in _METHODS[family].items():
        function = cls.__dict__.get(method)
        if not inspect.isfunction(function):
            continue
        taken, required, problem = _reading(function, len(positional), extras)
        if problem:
            problems.append(f"{method}{inspect.signature(function)}: {problem}")
            continue
        setattr(cls, method, _ADAPTERS[method](function, taken))
        if method == "backward" and "z" in required and "needs_input" not in cls.__dict__:
            cls.needs_input = True  # the plan keeps z for a backward that asks for it
    adapt_config(cls)
    _PROBLEMS[cls] = problems


def adapt_config(cls: type) -> None:
    """Wrap the ``get_config`` that ``cls`` defines itself (if any) so that
    the config it returns carries the part's ``name`` (see the module docs);
    called by :func:`adapt` and by ``Regularizer.__init_subclass__``."""
    function = cls.__dict__.get("get_config")
    if inspect.isfunction(function):
        cls.get_config = _get_config(function)


def config(part, family: str, where: str = "") -> dict:
    """``part.get_config()``, checked as a file holds it: a dict of JSON-safe
    values whose ``"name"`` is the part's own.

    Parameters
    ----------
    part : Activation, Loss or Regularizer
    family : str
        For messages: ``"activation"``, ``"loss"``, ``"regularizer"``.
    where : str
        What the message starts with: ``"node 'y': "``, or nothing where the
        part is not yet in a node.

    Returns
    -------
    dict

    Raises
    ------
    GraphError
        Naming ``where``, the part and the problem (not a dict, a key that is
        not a string, a ``"name"`` other than the part's, a value JSON cannot
        hold, or ``get_config`` itself raising), and saying what the protocol wants.
    """
    if type(part).__module__.startswith("graphnet."):  # graphnet's own parts write what files hold
        return part.get_config()
    try:
        found = part.get_config()
    except (GraphError, Warning):  # ours, or a warning the user's filters made an error: as they are
        raise
    except Exception as exc:  # a user's method: say which part failed
        problem, cause = f"get_config() raised {type(exc).__name__}: {clip(str(exc))}", exc
    else:
        problem, cause = _config_problem(found, part.name), None
    if problem:
        raise GraphError(f"{where}custom {family} {shown(part.name)} ({type(part).__name__}): {problem}. "
                         f"The protocol: {CONFIG}") from cause
    return found


def _config_problem(found, name) -> str | None:
    """What keeps ``found`` (a ``get_config()`` result) out of a file, or None."""
    if not isinstance(found, dict):
        return f"get_config() must return a dict, got {type(found).__name__}: {shown(found)}"
    for key, value in found.items():
        if not isinstance(key, str):
            return f"get_config() keys must be argument names (str), got {shown(key)}"
        if key != "name" and not is_parameter(value):
            return (f"get_config()[{key!r}] is {shown(value)}, which a model file cannot hold; return plain "
                    f"Python values (float(x), x.tolist() for numpy's): {PARAMETERS}")
    if found.get("name") != name:
        return (f"get_config() gives name {shown(found.get('name'))}, but the part is named {shown(name)}, "
                f"the name files find its class by; leave 'name' out and graphnet adds it")
    return None


def check(cls: type, base: type, family: str) -> None:
    """Refuse a custom class the engine cannot use (once per class).

    Raises
    ------
    GraphError
        Naming the class and the method, and saying what the protocol wants.
    """
    if cls in _CHECKED:
        return
    problems = list(_PROBLEMS.get(cls, ()))
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name.strip():
        problems.insert(0, f"name must be a non-empty string, got {name!r}")
    wanted = ["forward", "backward"] if family == "activation" else ["value"]
    if family == "loss":
        wanted.append("delta" if getattr(cls, "requires_activation", None) else "gradient")
    missing = [m for m in wanted if getattr(cls, m, None) is getattr(base, m, None)]
    if missing:
        problems.append(f"missing {' and '.join(missing)}")
    if problems:
        raise GraphError(f"custom {family} {cls.__name__}: {'; '.join(problems)}. The protocol: {_PROTOCOLS[family]}")
    _CHECKED.add(cls)


def _reading(function, positional: int, extras: tuple[str, ...]) -> tuple[set, set, str | None]:
    """``(extras taken, extras required, problem)`` for a method taking
    ``self``, then ``positional`` arguments, then any of ``extras`` by name."""
    parameters = list(inspect.signature(function).parameters.values())[1:]  # after self
    kinds = inspect.Parameter
    ordered = [p for p in parameters if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)]
    spread = any(p.kind is kinds.VAR_POSITIONAL for p in parameters)
    if len(ordered) < positional and not spread:
        return set(), set(), f"takes {len(ordered)} argument(s) after self, the engine passes {positional}"
    taken, required = set(), set()
    for p in ordered[positional:] + [p for p in parameters if p.kind is kinds.KEYWORD_ONLY]:
        if p.name in extras and p.kind is not kinds.POSITIONAL_ONLY:
            taken.add(p.name)
            if p.default is p.empty:
                required.add(p.name)
        elif p.default is p.empty:
            return set(), set(), (f"the engine never passes {p.name!r} (it passes {positional} "
                                  f"argument(s), then only {', '.join(extras)} by name)")
    if any(p.kind is kinds.VAR_KEYWORD for p in parameters):
        taken.update(extras)
    return taken, required, None


def _result(part, method: str, value, shape: tuple, dtype, expected: str):
    """``value`` as an array of ``shape`` in ``dtype``, or a GraphError saying what was wanted."""
    found, kind = getattr(value, "shape", None), getattr(getattr(value, "dtype", None), "kind", None)
    if found is None or tuple(found) != shape or kind not in ("b", "i", "u", "f"):
        what = type(value).__name__ if found is None else (
            f"shape {tuple(found)}" if tuple(found) != shape else f"an array of dtype {value.dtype}")
        family = "activation" if method in ("forward", "backward") else "loss"
        raise GraphError(
            f"custom {family} {part.name!r} ({type(part).__name__}): {method} must return {expected}, "
            f"shape {shape}, got {what}. The protocol: {_PROTOCOLS[family]}"
        )
    return value if value.dtype == dtype else value.astype(dtype)


def _chosen(taken: set, **offered) -> dict:
    return {k: v for k, v in offered.items() if k in taken}


def _forward(function, taken):
    def forward(self, z, out=None, xp=np):
        a = function(self, z, **_chosen(taken, out=out, xp=xp))
        a = _result(self, "forward", a, z.shape, z.dtype, "an array of z's shape")
        if out is None or a is out:
            return a
        out[...] = a
        return out

    return _named(forward, function)


def _backward(function, taken):
    def backward(self, a, grad, z=None, xp=np):
        delta = function(self, a, grad, **_chosen(taken, z=z, xp=xp))
        return _result(self, "backward", delta, a.shape, a.dtype, "dL/dz, an array of a's shape")

    return _named(backward, function)


def _value(function, taken):
    def value(self, y, a, z=None, r=None, xp=np):
        result = function(self, read_only_view(y), read_only_view(a), **_chosen(taken, r=r, xp=xp))
        if "r" in taken:  # the engine's own form: the (weighted) mean itself
            if not isinstance(result, (int, float)) or isinstance(result, bool):  # an array, or no number at all
                _result(self, "value", result, (), a.dtype, "the mean loss, a scalar, when value takes r")
            return float(result) if xp is np else result
        rows = a.shape[0]
        if getattr(result, "shape", None) == (rows, 1):
            result = result[:, 0]
        result = _result(self, "value", result, (rows,), a.dtype, "the loss of each row")
        total = (result if r is None else result * r[:, 0]).sum() / rows
        return float(total) if xp is np else total

    return _named(value, function)


def _gradient(function, taken):
    def gradient(self, y, a, r=None, xp=np):
        result = function(self, read_only_view(y), read_only_view(a), **_chosen(taken, r=r, xp=xp))
        if "r" in taken:  # the engine's own form: the gradient of the (weighted) mean
            result = _result(self, "gradient", result, a.shape, a.dtype, "dL/da, an array of a's shape")
            return result if getattr(result, "flags", None) is None or result.flags.writeable else result.copy()
        result = _result(self, "gradient", result, a.shape, result.dtype if hasattr(result, "dtype")
                         else a.dtype, "d(row loss)/da row by row, an array of a's shape")
        # A new array: the plan scales it in place, and the method may have returned a or y.
        mean = xp.multiply(result, a.dtype.type(1.0 / a.shape[0]), dtype=a.dtype)
        if r is not None:
            mean *= r
        return mean

    return _named(gradient, function)


def _get_config(function):
    def get_config(self):
        found = function(self)
        if isinstance(found, dict) and "name" not in found:
            return {"name": self.name, **found}
        return found

    return _named(get_config, function)


def _named(adapter, function):
    """The adapter under the user's method's name and docstring (``help`` shows theirs)."""
    adapter.__name__, adapter.__qualname__, adapter.__doc__ = function.__name__, function.__qualname__, function.__doc__
    adapter.__wrapped__ = function
    return adapter


_ADAPTERS = {"forward": _forward, "backward": _backward, "value": _value, "gradient": _gradient}
