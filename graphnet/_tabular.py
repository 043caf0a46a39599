"""Columns, vocabularies and statistics: the checked settings of tabular
inputs and outputs, and the numpy that maps values to codes.

An :class:`~graphnet.Input` may read named columns of a table, look category
values up in a vocabulary, normalise and impute; an
:class:`~graphnet.Output` may carry class labels. This module checks those
settings (each check names the node and the argument) and holds the few
numeric pieces every user of them shares: a :class:`Vocabulary` (values to
codes, index 0 for anything unknown or missing), what counts as missing, and
a column's values as float64 with a clear error for text.

Nothing here imports pandas: frames are turned into arrays by
:mod:`graphnet._frames` before they get here.
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Sequence

import numpy as np

from ._text import preview, shown
from ._validation import check_bool, is_int
from .errors import GraphError, ShapeError

__all__ = [
    "MISSING",
    "ADAPT",
    "check_columns",
    "check_categories",
    "check_missing",
    "check_statistics",
    "Vocabulary",
    "is_missing",
    "missing_mask",
    "as_float_columns",
    "column_named",
    "plain",
    "learn",
    "InputSettings",
    "refuse_unadapted",
]

#: What a NaN in a numeric input becomes.
MISSING = ("error", "mean", "indicator")
#: The value of ``categories=``/``classes=`` that asks ``adapt`` for the vocabulary.
ADAPT = "adapt"


def check_columns(columns, where: str) -> tuple[str, ...] | None:
    """``columns=`` as a tuple of unique non-empty strings (a single string is one column)."""
    if columns is None:
        return None
    if isinstance(columns, str):
        columns = [columns]
    if not isinstance(columns, (list, tuple)) or not columns:
        raise GraphError(f"{where}: columns must be a non-empty list of column names, got {shown(columns)}")
    for column in columns:
        if not isinstance(column, str) or not column:
            raise GraphError(f"{where}: column names must be non-empty strings, got {shown(column)}")
    if len(set(columns)) != len(columns):
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        raise GraphError(f"{where}: columns are repeated: {preview(repeated)}")
    return tuple(columns)


def plain(value):
    """A category or class value as the plain Python str or int it stands for
    (numpy's scalars included), or None when it is neither."""
    if isinstance(value, (str, np.str_)):
        return str(value)
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    return None


def check_categories(values, where: str, what: str = "categories") -> tuple | str | None:
    """``categories=`` (or ``classes=``): None, ``"adapt"``, or a tuple of unique
    values, all strings or all integers (integral floats count as integers).

    Raises
    ------
    GraphError
        Naming ``where`` and the first bad value.
    """
    if values is None or (isinstance(values, str) and values == ADAPT):
        return values
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
        raise GraphError(f"{where}: {what} must be a list of values or 'adapt', got {shown(values)}")
    out = []
    for value in values:
        converted = plain(value)
        if converted is None:
            raise GraphError(f"{where}: {what} must be strings or integers, got {shown(value)}")
        if isinstance(converted, int) and not _INT64.min <= converted <= _INT64.max:
            raise GraphError(f"{where}: integer {what} must lie within int64 (-2**63 to 2**63 - 1), "
                             f"got {converted}")
        if isinstance(converted, str) and converted.endswith("\x00"):
            raise GraphError(f"{where}: {what} must not end with the NUL character, got {shown(converted)}")
        out.append(converted)
    if not out:
        raise GraphError(f"{where}: {what} must not be empty")
    kinds = {type(v) for v in out}
    if len(kinds) > 1:
        raise GraphError(f"{where}: {what} must be all strings or all integers, got both "
                         f"(e.g. {shown(next(v for v in out if isinstance(v, str)))} and "
                         f"{next(v for v in out if isinstance(v, int))})")
    if len(set(out)) != len(out):
        seen, repeated = set(), []
        for v in out:
            if v in seen:
                repeated.append(v)
            seen.add(v)
        raise GraphError(f"{where}: {what} are repeated: {preview(repeated)}")
    return tuple(out)


def check_missing(missing, where: str) -> str:
    if not isinstance(missing, str) or missing not in MISSING:
        raise GraphError(f"{where}: missing must be one of {list(MISSING)}, got {shown(missing)}")
    return missing


def check_statistics(values, width: int, where: str, what: str, positive: bool = False) -> np.ndarray | None:
    """Adapted statistics (``mean``/``std``): None, or ``width`` finite float64s."""
    if values is None:
        return None
    try:
        array = np.array(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise GraphError(f"{where}: {what} must be {width} finite numbers, got {shown(values)}") from None
    if array.shape != (width,) or not np.isfinite(array).all() or (positive and (array <= 0).any()):
        sign = " > 0" if positive else ""
        raise GraphError(f"{where}: {what} must be {width} finite numbers{sign}, got {shown(values)}")
    return array


def is_missing(value) -> bool:
    """Whether one value is missing: None, NaN, NaT or pandas' NA (whose
    comparisons give NA, not a bool, so it is asked for by identity)."""
    if value is None:
        return True
    if isinstance(value, str):
        return False
    pandas = sys.modules.get("pandas")  # only a frame or a pandas array can hold its NA
    if pandas is not None and value is pandas.NA:
        return True
    unequal = value != value
    return isinstance(unequal, (bool, np.bool_)) and bool(unequal)


def missing_mask(values: np.ndarray) -> np.ndarray:
    """Where a 1-D array of category values is missing (see :func:`is_missing`)."""
    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype.kind in "mM":
        return np.isnat(values)
    if values.dtype.kind != "O":
        return np.zeros(values.shape, bool)
    return np.fromiter(map(is_missing, values), bool, count=len(values))


class Vocabulary:
    """Values to codes: ``values[i]`` has code ``i + offset``; anything else
    (unknown or missing) has code 0 when ``offset`` is 1 (an input's
    categories), or is refused when ``offset`` is 0 (an output's classes).

    The lookup is a sorted search, so a column of ``n`` values over ``k``
    categories costs ``O(n log k)`` in numpy, without pandas.
    """

    def __init__(self, values: tuple, offset: int):
        self.values = values
        self.offset = offset
        self.text = isinstance(values[0], str)
        keys = np.array(values, dtype=str if self.text else np.int64)
        self._order = np.argsort(keys, kind="stable")
        self._sorted = keys[self._order]

    def codes(self, column: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
        """``(codes, known)``: each value's code (intp; 0 where unknown or
        missing) and whether it was found.

        Raises
        ------
        ShapeError
            When the column holds text and the vocabulary numbers, or the
            other way round (naming ``where``).
        """
        column = np.asarray(column).reshape(-1)
        missing = missing_mask(column)
        present = ~missing
        keys, odd = _keys(column[present] if missing.any() else column, self.text, where,
                          kind="categories" if self.offset else "classes")
        codes = np.zeros(len(column), np.intp)
        known = np.zeros(len(column), bool)
        if len(keys):
            pos = np.searchsorted(self._sorted, keys)
            pos[pos == len(self._sorted)] = 0
            hit = self._sorted[pos] == keys
            if odd is not None:
                hit &= ~odd
            found = np.where(hit, self._order[pos] + self.offset, 0)
            codes[present] = found
            known[present] = hit
        return codes, known


_INT64 = np.iinfo(np.int64)
#: What holds the values a vocabulary reads, by what the vocabulary holds.
_HELD = {"categories": "the column holds", "classes": "the labels are"}


def _keys(values: np.ndarray, text: bool, where: str, learning: bool = False,
          kind: str = "categories") -> tuple[np.ndarray, np.ndarray | None]:
    """Present (non-missing) values as the vocabulary's key type (none for
    an all-missing column, whatever its dtype: every row has code 0), and
    where a value can be no category at all (None: nowhere): a fraction, an
    integer beyond int64, a string ending with NUL (which numpy's strings
    drop). Such a value's key is a placeholder.

    Raises
    ------
    ShapeError
        For values of the other kind (text for integer categories, or the
        other way round), or neither; ``learning`` words it for ``adapt``.
    """
    if text:
        if not len(values):
            return np.zeros(0, str), None
        if values.dtype.kind == "U":
            return values, None
        if values.dtype.kind == "O" and all(isinstance(v, str) for v in values):
            strings = values.tolist()
            odd = np.fromiter((v.endswith("\x00") for v in strings), bool, len(strings)) \
                if "\x00" in "".join(strings) else None
            return values.astype(str), odd
        bad = next((v for v in values if not isinstance(v, str)), None) if values.dtype.kind == "O" else \
            values[0].item()  # as written: 0, not np.int64(0)
        if learning:
            raise ShapeError(f"{where}: categories must be all strings or all integers, but the column holds "
                             f"strings and {type(bad).__name__} values such as {shown(bad)}")
        raise ShapeError(f"{where}: the {kind} are strings but {_HELD[kind]} {type(bad).__name__} values "
                         f"such as {shown(bad)}; give it as text, or {kind} of that type")
    if values.dtype.kind in "b":
        return values.astype(np.int64), None
    if values.dtype.kind in "iu":
        if values.dtype.kind == "u" and values.dtype.itemsize == 8 and len(values):
            odd = values > _INT64.max
            return np.where(odd, 0, values).astype(np.int64), odd if odd.any() else None
        return values.astype(np.int64), None
    if values.dtype.kind == "f":
        odd = ~((np.floor(values) == values) & (values >= _INT64.min) & (values < 2.0**63))
        return np.where(odd, 0, values).astype(np.int64), odd if odd.any() else None
    if values.dtype.kind == "O":
        integers = [_integer(v) for v in values]  # None: a fraction (no category) or no number at all
        bad = next((v for v, i in zip(values, integers) if i is None and not _fraction(v)), None)
        if bad is None:
            odd = np.fromiter((i is None or not _INT64.min <= i <= _INT64.max for i in integers), bool, len(integers))
            keys = np.array([0 if o else i for i, o in zip(integers, odd)], np.int64)
            return keys, odd if odd.any() else None
    else:
        bad = values[0].item() if len(values) else None
    found = f"{type(bad).__name__} values such as {shown(bad)}" if len(values) else f"values of dtype {values.dtype}"
    if learning:
        raise ShapeError(f"{where}: categories must be strings or integers, but the column holds {found}")
    raise ShapeError(f"{where}: the {kind} are integers but {_HELD[kind]} {found}; "
                     f"give it as integer codes, or string {kind}")


def _integer(value) -> int | None:
    """An integer category value (a bool as 0 or 1), or None (text too)."""
    if isinstance(value, (str, np.str_)):
        return None
    return int(value) if isinstance(value, (bool, np.bool_)) else plain(value)


def _fraction(value) -> bool:
    """Whether ``value`` is a number no integer category can be (1.5, inf)."""
    return isinstance(value, (float, np.floating)) and not isinstance(value, bool)


def learn(column: np.ndarray, where: str) -> tuple:
    """The sorted distinct non-missing values of a column, as plain strs or ints.

    Raises
    ------
    GraphError
        For a column with no values, or values that are neither text nor
        integers (fractions, integers beyond int64, strings ending with NUL).
    """
    column = np.asarray(column).reshape(-1)
    present = column[~missing_mask(column)]
    if not len(present):
        raise GraphError(f"{where} has no values to learn categories from (every row is missing)")
    text = present.dtype.kind in "OUS" and isinstance(present[0], (str, np.str_))
    keys, odd = _keys(present, text, where, learning=True)
    if odd is not None:
        bad = present[np.flatnonzero(odd)[0]]
        if text:
            reason = "strings ending with the NUL character"
        elif isinstance(bad, (float, np.floating)) and not float(bad).is_integer():
            reason = "fractions"
        else:
            reason = "integers beyond int64"
        raise GraphError(f"{where}: categories must be strings or integers, but the column holds {reason} "
                         f"such as {shown(plain(bad) if not text and plain(bad) is not None else bad)}")
    return tuple(plain(v) for v in np.unique(keys))


def as_float_columns(raw, width: int, where: str, columns: tuple[str, ...] | None) -> np.ndarray:
    """A numeric input's data as a float64 ``(n, width)`` array (NaN kept).

    Raises
    ------
    ShapeError
        For text in a numeric column (naming the column and a value), or the
        wrong number of columns.
    """
    array = np.asarray(raw)
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2 or array.shape[1] != width:
        raise ShapeError(f"{where}: expected shape (n, {width}), got {array.shape}")
    if array.dtype.kind in "biuf":
        return array.astype(np.float64)
    if array.dtype.kind == "O":
        out = np.empty(array.shape, np.float64)
        for j in range(width):
            for i, value in enumerate(array[:, j]):
                if is_missing(value):
                    out[i, j] = np.nan
                elif isinstance(value, (numbers.Real, np.bool_)) and not isinstance(value, str):
                    try:
                        out[i, j] = float(value)
                    except OverflowError:
                        raise ShapeError(f"{where}: {column_named(columns, j)} holds {shown(value)} (row {i}), beyond "
                                         "float64's range") from None
                else:
                    raise _text_error(where, columns, j, value, i)
        return out
    bad = array.reshape(-1)[0].item() if array.size else None  # a plain str in the message
    column = columns[0] if columns else None
    raise _text_error(where, columns, 0, bad, 0) if array.dtype.kind in "US" else ShapeError(
        f"{where}: expected numbers, got an array of dtype {array.dtype}"
        + (f" (column {column!r})" if column else ""))


def column_named(columns, j: int) -> str:
    """How a message names data column ``j``: by its name where it has one."""
    return f"column {columns[j]!r}" if columns else f"column {j}"


def _text_error(where: str, columns, j: int, value, row: int) -> ShapeError:
    return ShapeError(f"{where}: {column_named(columns, j)} is numeric but holds {shown(value)} (row {row}); "
                      "give it numbers, or read it as a categorical input (categories=...)")


class InputSettings:
    """How a table's columns become an input's features: what an
    :class:`~graphnet.Input` holds besides its name and size (checked here,
    so that a spec or model file gets the same checks as a user's call).

    ``width`` is the number of data columns read (1 for a categorical
    input); the input's size is ``len(categories) + 1`` for a categorical
    input, else ``width``, doubled with ``missing="indicator"``.
    """

    __slots__ = ("columns", "categories", "normalize", "missing", "mean", "std", "width", "_vocabulary")

    def __init__(self, size, where: str, columns=None, categories=None, normalize=False, missing="error",
                 mean=None, std=None):
        size = int(size) if is_int(size) else size  # a numpy integer is stored (and saved) as Python's
        self.columns = check_columns(columns, where)
        self.categories = check_categories(categories, where)
        self.normalize = check_bool(normalize, f"{where}: normalize")
        self.missing = check_missing(missing, where)
        if self.categories is not None:
            if self.normalize or self.missing != "error" or mean is not None or std is not None:
                raise GraphError(f"{where}: a categorical input takes no normalize, missing, mean or std: "
                                 "unknown and missing values have code 0")
            if self.columns is not None and len(self.columns) != 1:
                raise GraphError(f"{where}: a categorical input reads one column, got {len(self.columns)}")
            expected = 1 if self.categories == ADAPT else len(self.categories) + 1
            if size is not None and size != expected:
                raise GraphError(f"{where}: size must be len(categories) + 1 = {expected}, got {shown(size)} "
                                 "(code 0 stands for unknown and missing values)")
            self.width = 1
        else:
            width = len(self.columns) if self.columns is not None else 1 if size is None else size
            if size is not None and self.columns is not None and size != width:
                raise GraphError(f"{where}: size {shown(size)} disagrees with its {width} columns")
            self.width = width
        self.mean = self.std = self._vocabulary = None
        if isinstance(self.width, int) and self.width > 0:
            self.set_statistics(mean, std, where)

    def vocabulary(self) -> Vocabulary:
        """The lookup of :attr:`categories` (made once per vocabulary)."""
        if self._vocabulary is None or self._vocabulary.values is not self.categories:
            self._vocabulary = Vocabulary(self.categories, 1)
        return self._vocabulary

    def size(self) -> int:
        """The input's size (what its synapses see)."""
        if self.categories is not None:
            return 1 if self.categories == ADAPT else len(self.categories) + 1
        return self.width * (2 if self.missing == "indicator" else 1)

    @property
    def transforms(self) -> bool:
        return self.categories is not None or self.normalize or self.missing != "error"

    @property
    def needs_statistics(self) -> bool:
        return self.normalize or self.missing != "error"

    @property
    def adapted(self) -> bool:
        if self.categories == ADAPT:
            return False
        return not self.needs_statistics or self.mean is not None

    def set_statistics(self, mean, std, where: str) -> None:
        mean = check_statistics(mean, self.width, where, "mean")
        std = check_statistics(std, self.width, where, "std", positive=True)
        if (mean is None) != (std is None):
            raise GraphError(f"{where}: give both mean and std, or neither")
        self.mean, self.std = mean, std

    def config(self) -> dict:
        """The fields a spec writes (defaults left out); ``size`` is the
        constructor's: a numeric input's data columns."""
        config = {}
        if self.columns is not None:
            config["columns"] = list(self.columns)
        if self.categories is not None:
            config["categories"] = self.categories if isinstance(self.categories, str) else list(self.categories)
            return config
        config["size"] = self.width
        if self.normalize:
            config["normalize"] = True
        if self.missing != "error":
            config["missing"] = self.missing
        if self.mean is not None:
            config["mean"], config["std"] = self.mean.tolist(), self.std.tolist()
        return config


def refuse_unadapted(graph: str, names: list[str]) -> None:
    """Refuse to run a graph whose inputs ``names`` were never adapted (before
    any weight is drawn: a vocabulary still to learn sets its input's size).

    Raises
    ------
    GraphError
        Naming them and saying to call ``adapt``.
    """
    if names:
        raise GraphError(f"graph {graph!r}: inputs {preview(names)} never adapted: call g.adapt(data) first (fit "
                         "adapts from its training rows by itself, unless they come from a generator)")
