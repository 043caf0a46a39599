"""Validators for user-given arguments (numbers, flags, names, paths), shared
by every public entry point.

Each one either returns the value in a plain Python type or raises an error
naming the argument, what was expected and what was found. Booleans are not
integers here (``True`` as a size is a mistake, not a 1).
"""

from __future__ import annotations

import inspect
import math
import numbers
import os
import unicodedata

import numpy as np

from ._files import names_folder, refuse_bad_name
from ._text import preview, shown, span, suggestion
from .errors import GraphError, NotFoundError, ShapeError

__all__ = ["is_int", "check_int", "is_number", "check_number", "check_bool", "check_allocation", "check_text",
           "check_path", "unbindable", "is_dtype", "as_dtype", "check_finite", "non_finite_error",
           "whole_non_finite_error", "has_control", "read_only_view", "check_outputs", "check_dropout",
           "check_labels"]


def is_int(value: object, low: int | None = None, high: int | None = None) -> bool:
    """An integer (Python or numpy, not bool) in ``[low, high)``; either bound may be open."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return False
    return (low is None or value >= low) and (high is None or value < high)


def check_int(
    value: object,
    what: str,
    low: int = 1,
    expected: str | None = None,
    error: type[Exception] = GraphError,
) -> int:
    """``value`` as an ``int`` when it is an integer ``>= low``.

    Raises
    ------
    GraphError (or ``error``)
        ``"{what} must be {expected}, got {value!r}"``; ``expected`` defaults to
        "a positive integer" (``low=1``) or "an integer >= {low}".
    """
    if not is_int(value, low):
        if expected is None:
            expected = "a positive integer" if low == 1 else f"an integer >= {low}"
        raise error(f"{what} must be {expected}, got {value!r}")
    return int(value)


def is_number(value: object) -> bool:
    """A finite real number (Python or numpy, not bool, not a string of digits)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    return math.isfinite(float(value))


def check_number(
    value: object,
    what: str,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    expected: str | None = None,
    error: type[Exception] = GraphError,
) -> float:
    """``value`` as a ``float`` when it is a finite number within the bounds
    (``low <= value <= high``; ``low_open``/``high_open`` make them strict).

    Raises
    ------
    GraphError (or ``error``)
        ``"{what} must be {expected}, got {value!r}"``: a string, a bool, NaN
        or inf is never a number here.
    """
    ok = is_number(value)
    if ok:
        number = float(value)
        if low is not None:
            ok = number > low if low_open else number >= low
        if ok and high is not None:
            ok = number < high if high_open else number <= high
    if not ok:
        if expected is None:
            expected = "a finite number" + _range(low, high, low_open, high_open)
        raise error(f"{what} must be {expected}, got {value!r}")
    return float(value)


def check_bool(value: object, what: str, error: type[Exception] = GraphError) -> bool:
    """``value`` as a ``bool`` when it is one (Python's or numpy's).

    Raises
    ------
    GraphError (or ``error``)
        ``"{what} must be True or False, got {value!r}"``: a string such as
        ``"no"``, a number or None is never a flag here.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise error(f"{what} must be True or False, got {shown(value)}")
    return bool(value)


def _range(low, high, low_open, high_open) -> str:
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f" {'<' if high_open else '<='} {high:g}"
    return ""


def _memory_bytes() -> int | None:
    """Physical memory, where the platform says (Linux, macOS); else None."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_allocation(elements: int, itemsize: int, what: str) -> None:
    """Refuse, before allocating, an array larger than this machine's memory.

    Raises
    ------
    GraphError
        ``"{what} needs 40,000,000,000,000 bytes; this machine has ..."``.
    """
    need = int(elements) * int(itemsize)
    have = _memory_bytes()
    if have is not None and need > have:
        raise GraphError(f"{what} needs {need:,} bytes; this machine has {have:,} bytes of memory")


#: Unicode's control characters and the line and paragraph separators.
_CONTROLS = frozenset({"Cc", "Zl", "Zp"})
#: The bidirectional embeddings, overrides and isolates (a name that reads otherwise than it is).
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def read_only_view(array):
    """A view of a numpy ``array`` that cannot be written through (what the
    user's code is given to read: targets, activations, provisional weights
    whose changes the graph would never see); a device's array as it is."""
    if not isinstance(array, np.ndarray):
        return array
    view = array.view()
    view.flags.writeable = False
    return view


def has_control(text: str) -> bool:
    """Whether ``text`` holds a character :func:`check_text` refuses."""
    return any(unicodedata.category(ch) in _CONTROLS or ch in _BIDI for ch in text)


def check_dropout(value: object, what: str) -> float:
    """A dropout rate in [0, 1), ``what`` naming it in the message
    (``"Dense: dropout"``).

    Raises
    ------
    GraphError
        For anything else.
    """
    return check_number(value, what, 0.0, 1.0, high_open=True, expected="in [0, 1)")


def check_labels(y: np.ndarray, classes: int, where: str, fractional: str, of: str = "") -> np.ndarray:
    """``y``, a 1-D array of integers or floats, when it holds whole class
    labels in ``[0, classes)``: checked before any cast to an integer type,
    which would wrap ``2**64 - 1`` to -1 and make 1e300 -9.2e18.

    ``where`` starts each message (``"output 'y'"``), ``fractional`` says
    what values that are not whole break, and ``of`` follows the range.

    Raises
    ------
    ShapeError
        For NaN, inf or fractions, or a label out of the range, naming the
        smallest and largest found.
    """
    if y.dtype.kind == "f" and not (np.isfinite(y).all() and np.array_equal(y, np.round(y))):
        raise ShapeError(f"{where}: {fractional}, got non-integer values")
    if y.size and (y.min() < 0 or y.max() >= classes):
        raise ShapeError(f"{where}: class labels must lie in [0, {classes}){of}, "
                         f"found {span(y.min(), y.max(), 'label')}")
    return y


def check_text(value: object, what: str) -> str:
    """A non-empty name that files can hold and screens show as it is: a
    string that encodes as UTF-8 (no lone surrogates such as '\\udc80'),
    without control characters (ESC, DEL, ..., the line and paragraph
    separators, the bidirectional overrides), which would reach a terminal
    raw from ``summary`` or break a diagram.

    Raises
    ------
    GraphError
        Naming ``what`` and the value.
    """
    if isinstance(value, str) and value and not value.strip():
        raise GraphError(f"{what} must not be blank (only white space), got {shown(value)}")
    ok = isinstance(value, str) and bool(value)
    if ok:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            ok = False
    if not ok or has_control(value):
        raise GraphError(
            f"{what} must be a non-empty string without control characters that encodes "
            f"as UTF-8, got {value!r}"
        )
    return value


def check_path(value: object, what: str, expected: str = "a file", error: type[Exception] = GraphError,
               file: bool = False) -> str:
    """A path argument (a str or os.PathLike) as text, checked before any work.

    ``file``: the path of a file to write, so a path that can only name a
    folder (ending with ``/``, ``/.`` or ``/..``) is refused too, before a
    ``pathlib.Path`` drops its ending and makes it a file's name.

    Raises
    ------
    GraphError (or ``error``)
        ``"{what} must be a str or os.PathLike naming {expected}, got ..."``
        for None, a number, bytes or a list; for an empty name or one
        holding a NUL character (see :func:`graphnet._files.refuse_bad_name`);
        for a folder's name when ``file``.
    """
    try:
        text = os.fsdecode(value) if isinstance(value, (str, os.PathLike)) else None
    except (TypeError, ValueError):  # a PathLike whose __fspath__ returns neither str nor bytes
        text = None
    if text is not None:
        refuse_bad_name(text, what, error)  # an empty one too
    else:
        raise error(f"{what} must be a str or os.PathLike naming {expected}, got {type(value).__name__} "
                    f"{shown(value, 60)}")
    ending = names_folder(text) if file else ""
    if ending:
        raise error(f"{what} {shown(text, 60)} ends with {ending!r}, so it names a folder; give {expected}")
    return text


def unbindable(function, *arguments) -> str | None:
    """How ``function`` is written (``"f takes (a, b, c)"``, for a message)
    when it cannot be called with ``arguments`` (positional), else None;
    None too when its signature cannot be read (some builtins): it is then
    taken as it is."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return None
    try:
        signature.bind(*arguments)
    except TypeError:
        return f"{getattr(function, '__qualname__', type(function).__name__)} takes {signature}"
    return None


def is_dtype(value: object) -> bool:
    """Whether numpy reads ``value`` as a dtype (``np.dtype(None)`` is float64,
    so None and unknown names must not get that far)."""
    if value is None:
        return False
    try:
        np.dtype(value)
    except (TypeError, ValueError):
        return False
    return True


#: Up to this many elements, ``check_finite`` checks each one (a one-row
#: ``predict`` of 784 features: 1 us, the detector's three calls 3 us).
_SMALL = 4096


def as_dtype(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``array`` as a C-contiguous array of ``dtype`` (the graph's). A value
    too large for a narrower float dtype becomes inf there without numpy's
    overflow warning: the finiteness check that follows refuses it, and
    given the data as it came (``given=``) says it is too large."""
    if array.dtype.kind == "f" and array.dtype.itemsize > dtype.itemsize:
        with np.errstate(over="ignore"):
            return np.ascontiguousarray(array, dtype=dtype)
    return np.ascontiguousarray(array, dtype=dtype)


def check_finite(array: np.ndarray, role: str, name: str, columns: tuple[str, ...] | None = None,
                 given: np.ndarray | None = None) -> None:
    """Refuse NaN and inf: a cheap detector first, the exact check only when it fires.

    For a float matrix the detector is its product with a vector of ones: one
    BLAS pass (3x faster than a float64 sum, which ``predict`` paid per
    chunk), and any NaN or inf reaches the row sums. A false alarm (sums that
    overflow) only costs the exact element check. ``columns`` names the
    array's columns in the error (their indices otherwise); ``given`` is the
    data before its cast to ``array``'s dtype (see :func:`non_finite_error`).
    """
    if not array.size:
        return
    if array.size <= _SMALL:
        suspect = not np.isfinite(array).all()  # a small array: the exact check is the cheapest
    elif array.ndim == 2 and array.dtype.kind == "f":
        with np.errstate(over="ignore", invalid="ignore"):  # overflowing sums: a false alarm
            row_sums = array @ np.ones(array.shape[1], array.dtype)
            suspect = not math.isfinite(float(np.add.reduce(row_sums)))
    else:
        suspect = not np.isfinite(array.sum(dtype=np.float64))
    if suspect and not np.isfinite(array).all():
        raise non_finite_error(array, role, name, columns, given)


def non_finite_error(array, role: str, name: str, columns: tuple[str, ...] | None = None,
                     given: np.ndarray | None = None) -> ShapeError:
    """The error for NaN or inf in numpy ``array``: how many values, and the
    columns holding them with their rows (five named at most), then how many
    are NaN and how many inf: an input may fill NaN (``missing='mean'``),
    never inf.

    ``given`` is the data before its cast to ``array``'s dtype: NaN and inf
    that were there are reported as such; when every one was a finite number
    there, the values are too large for the dtype, and the message says so.
    """
    return _non_finite_error(role, name, columns, array.dtype, *_tally(array, given))


def whole_non_finite_error(given: np.ndarray, dtype: np.dtype, role: str, name: str,
                           columns: tuple[str, ...] | None, rows: int) -> ShapeError:
    """:func:`non_finite_error` of all of ``given`` cast to ``dtype``, counted
    ``rows`` rows at a time (``predict`` checks its data a chunk at a time,
    and a message counts them all)."""
    totals = [0, 0, 0]
    for start in range(0, len(given), rows):
        part = given[start : start + rows]
        totals = [total + counted for total, counted in zip(totals, _tally(as_dtype(part, dtype), part))]
    return _non_finite_error(role, name, columns, np.dtype(dtype), *totals)


def _tally(array: np.ndarray, given: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Per column, how many values of ``array`` are NaN or inf, and how many
    of those were NaN or inf in ``given`` already; and how many were NaN."""
    bad = ~np.isfinite(array)
    own, values = bad, array
    if given is not None and given.dtype != array.dtype and given.shape == array.shape:
        own, values = bad & ~np.isfinite(given), given
    return _per_column(bad), _per_column(own), int(np.isnan(values[own]).sum())


def _per_column(bad: np.ndarray) -> np.ndarray:
    return bad.reshape(len(bad), -1).sum(axis=0) if bad.ndim else bad.reshape(1).astype(np.intp)


def _non_finite_error(role: str, name: str, columns, dtype: np.dtype, cast: np.ndarray, own: np.ndarray,
                      nans: int) -> ShapeError:
    if not own.any():  # finite as given: too large for the dtype
        count, where = _held(cast.tolist(), columns)
        return ShapeError(
            f"{role} {name!r} holds {count} value(s) too large for the graph's {dtype} (largest "
            f"{np.finfo(dtype).max:.4g}), in {where}; scale the data, or build the graph with "
            "dtype='float64'")
    count, where = _held(own.tolist(), columns)
    hints = []
    if nans and role == "input":
        hints.append("an input that reads a table may fill NaN (add_input(..., missing='mean'))")
    if nans < count:
        hints.append("inf is never a missing value: fix or drop those rows")
    kinds = f"all {'NaN' if nans else 'inf'}" if nans in (0, count) else f"{nans} NaN and {count - nans} inf"
    return ShapeError(f"{role} {name!r} contains {count} NaN or inf value(s), in {where}: {kinds}"
                      + "".join(f"; {hint}" for hint in hints))


def _held(per_column: list[int], columns: tuple[str, ...] | None) -> tuple[int, str]:
    """How many values are counted in ``per_column``, and the columns holding them with their rows."""
    held = [(j, n) for j, n in enumerate(per_column) if n]
    named = [f"{columns[j]!r}" if columns and len(columns) == len(per_column) else f"{j}" for j, _ in held]
    where = ", ".join(f"{c} ({n} row{'s' if n != 1 else ''})" for c, (_, n) in zip(named[:5], held))
    more = f" and {len(held) - 5} more" if len(held) > 5 else ""
    return sum(per_column), f"column{'s' if len(held) != 1 else ''} {where}{more}"


def check_outputs(given, outputs: list[str], where: str, error: type[Exception] = NotFoundError) -> None:
    """Refuse the keys of ``given`` (an argument keyed by output name) that
    name no output.

    Raises
    ------
    NotFoundError (or ``error``)
        ``"fit: metrics names unknown outputs ['q']; outputs: ['y']"``,
        ``where`` naming the call and the argument, with a close output name
        suggested.
    """
    known = set(outputs)
    unknown = [k for k in given if k not in known]
    if unknown:
        raise error(f"{where} names unknown outputs {preview(unknown)}; outputs: {preview(outputs)}"
                    f"{suggestion(unknown, outputs)}")
