"""Small helpers that shape error messages and reports: bounded lists,
cycles and values, and text measured in terminal columns.

Every message that shows user data goes through these, so a message stays
short however large the graph, spec or value behind it.
"""

from __future__ import annotations

import difflib
import itertools
import reprlib
import unicodedata
from collections.abc import Iterable

import numpy as np

__all__ = ["preview", "joined", "format_cycle", "shown", "span", "described", "suggestion", "clip", "named",
           "reason", "columns", "cut"]

# A repr that looks at a bounded part of a value: a few levels, a few items per
# container, the ends of long strings. ``repr`` itself would walk all of it, and
# a YAML alias or a nested list can make "all" exponentially large.
class _Repr(reprlib.Repr):
    """reprlib's, with numpy's scalars written as numpy 2 writes them
    (``np.float32(2.0)``, ``np.True_``) under numpy 1 too, which writes them
    as plain Python values (``2.0``): a message about a numpy scalar where a
    plain value is wanted must show which it was."""

    def repr1(self, x, level):
        if _NUMPY_1 and isinstance(x, (np.number, np.bool_)) and not isinstance(x, np.timedelta64):
            if isinstance(x, np.bool_):
                return "np.True_" if x else "np.False_"
            text = str(x)  # numpy's shortest digits (a format would go through a Python float)
            if isinstance(x, np.complexfloating):
                text = text.removeprefix("(").removesuffix(")")
            if isinstance(x, (np.longdouble, np.clongdouble)):
                text = repr(text)
            return f"np.{type(x).__name__}({text})"
        return super().repr1(x, level)


_NUMPY_1 = np.lib.NumpyVersion(np.__version__) < "2.0.0"
_REPR = _Repr()
_REPR.maxlevel = 3
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxfrozenset = _REPR.maxdeque = 6
_REPR.maxdict = 6
_REPR.maxstring = _REPR.maxother = 160  # then cut to the caller's limit
_REPR.maxlong = 40


def preview(names: Iterable[object], limit: int = 20) -> str:
    """Up to ``limit`` names for an error message, then how many were left out."""
    names = list(names)
    return f"[{joined([shown(n) for n in names[:limit]], len(names))}]"


def joined(texts: list[str], total: int | None = None) -> str:
    """``texts`` joined by commas, then how many of ``total`` were left out
    (``"'a' (hidden), 'b' (hidden), ... 4998 more"``): a list of things an
    error message names, cut before it is given here."""
    left = 0 if total is None else total - len(texts)
    return ", ".join(texts) + (f", ... {left} more" if left > 0 else "")


def format_cycle(path: list[str], limit: int = 12) -> str:
    """``a -> b -> c -> a``; a long cycle keeps its ends and says how much is left out."""
    if len(path) <= limit:
        return " -> ".join(path)
    head, tail = path[: limit // 2], path[-(limit // 2) :]
    return " -> ".join([*head, f"... ({len(path) - limit} more)", *tail])


def shown(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, computed in bounded time
    and memory however large or deeply shared ``value`` is."""
    try:
        text = _REPR.repr(value)
    except Exception:  # a repr that fails (an int past Python's digit limit, a broken __repr__)
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def span(low: object, high: object, noun: str) -> str:
    """The range of values a message found: ``"label 3"`` when ``low`` is
    ``high``, else ``"labels from 0 to 3"`` (``[0, 3]`` would read as an
    interval beside the ``[0, 3)`` a message asks for)."""
    low, high = (v.item() if isinstance(v, np.generic) else v for v in (low, high))
    if low == high:
        return f"{noun} {_number(low)}"
    return f"{noun}s from {_number(low)} to {_number(high)}"


def _number(value) -> str:
    """An integer to the last digit (a whole float too, below 1e15), else ``:g``."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return str(value) if isinstance(value, int) else f"{value:g}"


def described(value: object) -> str:
    """What an argument was, for a message: ``"a tuple of 4"`` for a tuple
    or list, else its type and value (``"str 'val'"``)."""
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return f"{type(value).__name__} {shown(value, 60)}"


def suggestion(name: object, known: Iterable[object], limit: int = 10_000) -> str:
    """``"; did you mean 'val_loss'?"`` when ``name``, a string (or a list of
    one), is close to one of the ``known`` names (difflib's closest of the
    first ``limit``, at a similarity of 0.8: a typo, ``'val_los'``, not
    another name, ``'val_score'``), else ``""``: the end of a message that
    refuses an unknown name."""
    if isinstance(name, list) and len(name) == 1:
        name = name[0]
    if not isinstance(name, str):
        return ""
    candidates = [k for k in itertools.islice(known, limit) if isinstance(k, str) and k != name]
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.8)
    return f"; did you mean {shown(close[0])}?" if close else ""


def clip(text: str, limit: int = 300) -> str:
    """Message text (another library's, say) on one line and at most ``limit``
    characters: its start and its end (where lists of known names go), the
    middle left out."""
    if len(text) > 8 * limit:
        text = text[: 4 * limit] + " " + text[-4 * limit :]
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    tail = limit // 3
    return text[: limit - tail - 5] + " ... " + text[-tail:]


def named(path: object, limit: int = 200) -> str:
    r"""A file name for the start of a message: as the user gave it, on one
    line (control characters as Python writes them) and at most about
    ``limit`` characters (its start and its end, where the file's own name is).

    >>> print(named("models/a\nb.gnet"))
    models/a\nb.gnet
    >>> len(named("x" * 10_000 + ".gnet")) <= 205
    True
    """
    text = str(path)
    if len(text) > limit:
        text = text[: limit * 2 // 3] + " ... " + text[-(limit // 3):]
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def reason(exc: OSError) -> str:
    """Why an operating-system call failed, in a few words: the system's
    reason (``strerror``, without the file name it repeats), else the
    error's text, clipped.

    >>> reason(FileNotFoundError(2, "No such file or directory", "a.gnet"))
    'No such file or directory'
    """
    return exc.strerror or clip(str(exc))


def columns(text: str) -> int:
    """How many terminal columns ``text`` takes: two for a wide (East Asian)
    character, none for a combining mark or a zero-width one, one otherwise.

    >>> columns("名前"), columns("e\u0301"), columns("ab")
    (4, 1, 2)
    """
    return sum(2 if unicodedata.east_asian_width(ch) in "WF"
               else 0 if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf") else 1
               for ch in text)


def cut(text: str, width: int) -> tuple[str, str]:
    """``text`` split where its start fills at most ``width`` columns (at
    least one character, so a line always moves on)."""
    used = 0
    for i, ch in enumerate(text):
        used += columns(ch)
        if used > width and i > 0:
            return text[:i], text[i:]
    return text, ""
