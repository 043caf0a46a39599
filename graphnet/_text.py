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
           "reason", "columns", "cut", "graphemes", "head", "pad", "pieces", "tail", "wrap"]

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

    def repr_str(self, x, level):
        """reprlib's long string, its middle left out between characters as
        a reader sees them (never inside a flag or an accented letter)."""
        if len(x) <= self.maxstring:
            return super().repr_str(x, level)
        keep = max(0, (self.maxstring - 3) // 2)
        start, end = head(x, keep), tail(x, keep)
        for mark in _MARKS:  # one the string does not hold, nor the text of its escape
            escaped = repr(mark)[1:-1]
            if mark not in start + end and escaped not in start + end:
                # One repr of head, mark and tail (so one choice of quotes), the mark's escape then replaced.
                return repr(start + mark + end).replace(escaped, self.fillvalue, 1)
        return super().repr_str(x, level)


#: Where repr_str's middle goes (noncharacters: repr writes them as escapes).
_MARKS = ("\U0010fffe", "\U0010ffff", "\U000ffffe", "\U000fffff")
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
    if len(text) <= limit:
        return text
    return head(text, limit - 3) + "..."  # cut between characters as a reader sees them


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
    composed = unicodedata.normalize("NFC", name)
    same = next((k for k in candidates if unicodedata.normalize("NFC", k) == composed), None)
    if same is not None:  # the two look alike: say how they differ
        return (f"; did you mean {shown(same)}? It differs only in Unicode normalisation (composed or "
                f"decomposed accents): {clip(ascii(name), 80)} against {clip(ascii(same), 80)}")
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.8)
    return f"; did you mean {shown(close[0])}?" if close else ""


def clip(text: str, limit: int = 300) -> str:
    """Message text (another library's, say) on one line and at most ``limit``
    code points: its start and its end (where lists of known names go), the
    middle left out between characters as a reader sees them."""
    if len(text) > 8 * limit:
        text = text[: 4 * limit] + " " + text[-4 * limit :]
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    end = limit // 3  # cut between characters as a reader sees them
    return head(text, limit - end - 5) + " ... " + tail(text, end)


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
        text = head(text, limit * 2 // 3) + " ... " + tail(text, limit // 3)
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def reason(exc: OSError) -> str:
    """Why an operating-system call failed, in a few words: the system's
    reason (``strerror``, without the file name it repeats), else the
    error's text, clipped.

    >>> reason(FileNotFoundError(2, "No such file or directory", "a.gnet"))
    'No such file or directory'
    """
    return exc.strerror or clip(str(exc))


_ZWJ = "\u200d"


def _regional(ch: str) -> bool:
    return "\U0001f1e6" <= ch <= "\U0001f1ff"


def _hangul(ch: str) -> bool:
    return "\u1100" <= ch <= "\u11ff" or "\ua960" <= ch <= "\ua97f" or "\uac00" <= ch <= "\ud7ff"


def _pictograph(ch: str) -> bool:
    """An emoji's code point, in outline (Unicode's Extended_Pictographic)."""
    return ch >= "\U0001f000" or "\u2190" <= ch <= "\u2bff" or ch in "\u00a9\u00ae\u203c\u2049\u2122"


def _joins(cluster: str, ch: str) -> bool:
    """Whether ``ch`` belongs to the character ``cluster`` ends."""
    if unicodedata.category(ch) in ("Mn", "Mc", "Me") or ch == _ZWJ or "\ufe00" <= ch <= "\ufe0f":
        return True  # a mark, a joiner, a variation selector
    last = cluster[-1]
    if (last == _ZWJ and _pictograph(ch)) or "\U0001f3fb" <= ch <= "\U0001f3ff":
        return True  # the emoji a joiner joins; a skin tone
    if unicodedata.combining(last) == 9 and unicodedata.category(ch) == "Lo":
        return True  # a virama joins the consonants of a conjunct (Devanagari's क्ष)
    if _regional(ch) and _regional(last):
        return sum(map(_regional, cluster)) % 2 == 1  # the second letter of a flag
    # A decomposed Hangul syllable: its vowel and final consonant join the syllable before them.
    return ("\u1160" <= ch <= "\u11ff" or "\ud7b0" <= ch <= "\ud7ff") and _hangul(last)


def graphemes(text: str) -> list[str]:
    """``text`` as a reader sees its characters (Unicode's grapheme clusters,
    in outline): a letter with its marks, a decomposed Hangul syllable, emoji
    joined by a zero-width joiner, a flag's two letters.

    >>> [len(c) for c in graphemes("e\u0301x")], len(graphemes("\U0001f1ef\U0001f1f5\U0001f1eb\U0001f1f7"))
    ([2, 1], 2)
    """
    return list(_clusters(text))


def _clusters(text: str, start: int = 0):
    """The characters of ``text`` from ``start`` on, one at a time (as :func:`graphemes`)."""
    cluster = ""
    for ch in itertools.islice(text, start, None):
        if cluster and _joins(cluster, ch):
            cluster += ch
        else:
            if cluster:
                yield cluster
            cluster = ch
    if cluster:
        yield cluster


def _boundary(text: str, at: int) -> int:
    """The start of the character ``text[at]`` belongs to (a flag's first
    letter, a letter before its marks): where reading may begin."""
    while 0 < at < len(text) and _joins(text[at - 1], text[at]):
        at -= 1
    if at and _regional(text[at]):  # in a run of flag letters, pairs count from the run's start
        first = at
        while first and _regional(text[first - 1]):
            first -= 1
        at -= (at - first) % 2
    return at


def head(text: str, count: int) -> str:
    """The start of ``text``: whole characters, at most ``count`` code points
    (the first character cut if it alone is longer)."""
    used = 0
    for cluster in _clusters(text):
        if used + len(cluster) > count:
            return text[:used] if used else text[:count]
        used += len(cluster)
    return text


def tail(text: str, count: int) -> str:
    """The end of ``text``: whole characters, at most ``count`` code points."""
    if count <= 0:
        return ""
    at = _boundary(text, max(len(text) - count, 0))
    while at < len(text) - count:  # moved back into a character: on to the next one
        at += len(next(_clusters(text, at)))
    return text[at:]


def _width(cluster: str) -> int:
    if "\ufe0f" in cluster or _regional(cluster[0]) or (_ZWJ in cluster and sum(map(_pictograph, cluster)) > 1):
        return 2  # drawn as one emoji: a flag, a joined sequence, an emoji variation
    return sum(2 if unicodedata.east_asian_width(ch) in "WF"
               else 0 if unicodedata.category(ch) in ("Mn", "Me", "Cf") or "\u1160" <= ch <= "\u11ff"
               or "\ud7b0" <= ch <= "\ud7ff" else 1  # marks; a decomposed syllable's vowel and final
               for ch in cluster)


def columns(text: str) -> int:
    """How many terminal columns ``text`` takes, character by character as
    :func:`graphemes` reads it: two for a wide (East Asian) one or an emoji
    sequence, none for a lone mark or a zero-width one, one otherwise.

    >>> columns("名前"), columns("e\u0301"), columns("ab"), columns("\u1100\u1161")
    (4, 1, 2, 2)
    """
    if text.isascii():
        return len(text)
    return sum(map(_width, _clusters(text)))


def pad(text: str, width: int) -> str:
    """``text`` followed by spaces to fill ``width`` terminal columns."""
    return text + " " * max(width - columns(text), 0)


def pieces(text: str, width: int) -> list[str]:
    """``text`` cut into pieces of at most ``width`` columns, never inside a
    character (a character wider than that alone on its piece)."""
    out, piece, used = [], "", 0
    for cluster in _clusters(text):
        w = _width(cluster)
        if piece and used + w > width:
            out.append(piece)
            piece, used = "", 0
        piece += cluster
        used += w
    return [*out, piece] if piece else out


def wrap(text: str, width: int, indent: str = "") -> list[str]:
    """``text`` in lines of at most ``width`` terminal columns, broken between
    words (a word longer than a line cut between characters), the lines after
    the first after ``indent``.

    >>> wrap("a bb ccc", 5, "  "), wrap("a 名名", 4, "  ")
    (['a bb', '  ccc'], ['a', '  名', '  名'])
    """
    lines, line, used = [], "", 0
    for word in text.split():
        size = columns(word)
        if line and used + 1 + size <= width:
            line, used = f"{line} {word}", used + 1 + size
            continue
        if line:
            lines.append(line)
        start = indent if lines or line else ""
        parts = [word] if len(start) + size <= width else pieces(word, width - len(indent))
        lines += [start + parts[0]] + [indent + part for part in parts[1:-1]] if len(parts) > 1 else []
        line = (indent if len(parts) > 1 else start) + parts[-1]
        used = columns(line)
    return [*lines, line] if line else lines


def cut(text: str, width: int) -> tuple[str, str]:
    """``text`` split where its start fills at most ``width`` columns, never
    inside a character (at least one, so a line always moves on)."""
    used, at = 0, 0
    for i, cluster in enumerate(_clusters(text)):
        used += _width(cluster)
        if used > width and i > 0:
            return text[:at], text[at:]
        at += len(cluster)
    return text, ""
