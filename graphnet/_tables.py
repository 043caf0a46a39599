"""Predictions as a table: the CSV file ``graphnet predict --out PRED.csv`` writes.

One column per output unit, named after the output (``OUTPUT`` for a
one-unit output, ``OUTPUT_0``, ``OUTPUT_1``, ... otherwise), a header row,
one row per input row, commas between. Numbers keep every digit their dtype
holds (9 significant digits for float32, 17 for float64), so reading the
file back gives the same values. The write is atomic (:mod:`graphnet._files`).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from ._files import atomic_write
from .errors import GraphError

__all__ = ["csv_columns", "write_csv"]


def csv_columns(arrays: dict[str, np.ndarray]) -> list[str]:
    """The header: ``NAME`` for an ``(n, 1)`` array, ``NAME_k`` per column otherwise.

    Raises
    ------
    GraphError
        When two columns would have the same name (an output ``y_0`` beside
        a two-unit output ``y``).
    """
    names = [name if array.shape[1] == 1 else f"{name}_{k}"
             for name, array in arrays.items() for k in range(array.shape[1])]
    if len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise GraphError(f"the CSV columns {repeated} would repeat (the outputs' names clash); write .npz instead")
    return names


def write_csv(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` (name -> array of shape (n, k), the same ``n``) as one CSV table.

    Raises
    ------
    GraphError
        For clashing column names (see :func:`csv_columns`).
    OSError
        Naming ``path``, when it cannot be written.
    """
    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow(csv_columns(arrays))  # quotes names with commas
    table = np.hstack([np.asarray(a) for a in arrays.values()])
    digits = 9 if table.dtype == np.float32 else 17

    def write(handle) -> None:
        handle.write(header.getvalue().encode("utf-8"))
        np.savetxt(handle, table, fmt=f"%.{digits}g", delimiter=",")

    return atomic_write(path, write)
