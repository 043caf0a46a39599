"""Validators for user-given numbers, shared by every public entry point.

Each one either returns the value in a plain Python type or raises an error
naming the argument, what was expected and what was found. Booleans are not
integers here (``True`` as a size is a mistake, not a 1).
"""

from __future__ import annotations

import numbers

from .errors import GraphError

__all__ = ["is_int", "check_int"]


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
