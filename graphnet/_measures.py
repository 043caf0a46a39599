"""Measures that scale with an array (its Frobenius norm, its standard
deviation), finite wherever the measure is: an array whose largest value is
beyond 1e150, whose squares would overflow float64, is measured scaled into
[0.5, 1) by a power of two, and the measure scaled back. Below that the
measure is numpy's, to the last bit.

>>> import numpy as np
>>> norm(np.array([3.0, 4.0]) * 2.0**700) / 2.0**700
5.0
>>> std(np.array([1e200, -1e200]))
1e+200
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

__all__ = ["norm", "std"]


def norm(array: np.ndarray) -> float:
    """The Frobenius norm of ``array`` in float64."""
    flat = np.asarray(array).astype(np.float64, copy=False).ravel()
    return _scaled(lambda x: math.sqrt(float(np.dot(x, x))), flat)


def std(array: np.ndarray) -> float:
    """The standard deviation of all of ``array``'s values (float64)."""
    return _scaled(np.std, np.asarray(array).astype(np.float64, copy=False))


def _scaled(measure: Callable[[np.ndarray], float], x: np.ndarray) -> float:
    peak = float(np.abs(x).max()) if x.size else 0.0
    if not 1e150 < peak < math.inf:
        return float(measure(x))
    exponent = math.frexp(peak)[1]
    return math.ldexp(float(measure(np.ldexp(x, -exponent))), exponent)
