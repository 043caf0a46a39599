"""Arrays in model and data files: ``.npz`` members read as hostile.

A model file's weights and optimizer state are ``.npz`` archives (zips of
``.npy`` arrays) stored in it; a data file for the command line is one. The
zip container itself is checked by :mod:`graphnet._archive`; here every
``.npy`` header is checked against the shape and dtype expected (or, for data
files, against the bytes the member holds) before any memory is given to its
data, and nothing is ever unpickled.
"""

from __future__ import annotations

import io
import math
import os
import struct
import tokenize
import zipfile
import zlib
from collections.abc import Mapping
from typing import BinaryIO

import numpy as np

from ._files import open_regular
from ._text import clip, preview, shown
from ._archive import (
    ARCHIVE_SLACK,
    ARRAY_SLACK,
    CHUNK,
    check_member,
    open_zip,
    read_member,
)
from .errors import ModelFileError

__all__ = ["read_npz", "parse_npz", "parse_npy", "read_arrays"]


# ------------------------------------------------------------ weights (.npz)
def read_npz(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    shapes: Mapping[str, tuple[int, ...]],
    dtype: np.dtype,
    label: str,
    described_in: str,
) -> dict[str, np.ndarray]:
    """The arrays of an .npz member; names, shapes and dtype must be exactly
    ``shapes`` (which the member ``described_in`` of the same file declared).
    Its claimed size is checked against ``shapes`` before it is inflated."""
    where = f"{label}: {info.filename}"
    _check_npz_size(info.file_size, shapes, dtype, where)
    return parse_npz(read_member(archive, info, where), shapes, dtype, where, described_in)


def _check_npz_size(size: int, shapes: Mapping[str, tuple[int, ...]], dtype: np.dtype, where: str) -> None:
    expected = sum(math.prod(shape) * dtype.itemsize for shape in shapes.values())
    limit = expected + ARCHIVE_SLACK + sum(ARRAY_SLACK + 2 * len(key.encode()) for key in shapes)
    if size > limit:
        raise ModelFileError(
            f"{where} is {size:,} bytes, but the architecture's {len(shapes)} arrays "
            f"need about {expected:,}"
        )


def parse_npz(
    raw: bytes,
    shapes: Mapping[str, tuple[int, ...]],
    dtype: np.dtype,
    where: str,
    described_in: str,
) -> dict[str, np.ndarray]:
    """The arrays of an .npz archive already in memory (``raw``, from
    :func:`read_member`); names, shapes and dtype must be exactly ``shapes``."""
    _check_npz_size(len(raw), shapes, dtype, where)
    inner = open_zip(io.BytesIO(raw), where, "an .npz archive", len(shapes))
    with inner:
        entries = inner.infolist()
        wanted = {f"{key}.npy": key for key in shapes}
        names = [e.filename for e in entries]
        present = set(names)
        unknown = [n for n in names if n not in wanted]
        missing = [k for n, k in wanted.items() if n not in present]
        if unknown or missing or len(names) != len(present):
            problems = []
            if missing:
                problems.append(f"missing {preview(missing, 5)}")
            if unknown:
                problems.append(f"unexpected {preview([n.removesuffix('.npy') for n in unknown], 5)}")
            if len(names) != len(present):
                problems.append("repeated names")
            raise ModelFileError(
                f"{where} does not match the architecture in {described_in}: " + "; ".join(problems)
            )
        arrays = {}
        for entry in entries:
            key = wanted[entry.filename]
            shape = shapes[key]
            what = f"{where}: array {key!r}"
            check_member(entry, what)
            if entry.file_size > math.prod(shape) * dtype.itemsize + ARRAY_SLACK:
                raise ModelFileError(f"{what} is {entry.file_size:,} bytes, too many for shape {shape}")
            arrays[key] = parse_npy(read_member(inner, entry, what), shape, dtype, what)
    return arrays


def _npy_header(handle: BinaryIO, what: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """An .npy header's shape, order and dtype, read with numpy's own (literal,
    size-capped) parser; object dtypes and negative sizes refused."""
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    try:
        version = np.lib.format.read_magic(handle)
        reader = readers.get(version)
        header = reader(handle) if reader else None
    except (ValueError, TypeError, SyntaxError, tokenize.TokenError, OverflowError, MemoryError,
            RecursionError) as exc:  # TokenError: numpy's fallback for a header that is no Python literal
        raise ModelFileError(f"{what} is not a readable .npy array ({clip(str(exc), 200)})") from None
    if header is None:
        raise ModelFileError(f"{what}: .npy format version {version} is not one graphnet reads")
    shape, fortran, found = header
    if found.hasobject:
        raise ModelFileError(f"{what} holds Python objects (pickled data); refused")
    if any(n < 0 for n in shape):
        raise ModelFileError(f"{what}: impossible shape {shown(tuple(shape))}")
    return tuple(shape), fortran, found


def parse_npy(raw: bytes, shape: tuple[int, ...], dtype: np.dtype, what: str) -> np.ndarray:
    """An .npy array, refused from its header unless it is exactly ``shape`` of
    float ``dtype``. Never unpickles: like ``np.load(..., allow_pickle=False)``,
    but the header is checked before any memory is given to the data."""
    handle = io.BytesIO(raw)
    found_shape, fortran, found = _npy_header(handle, what)
    if found.kind != "f" or found.itemsize != dtype.itemsize:
        raise ModelFileError(f"{what}: expected dtype {dtype}, found {found}")
    if found_shape != tuple(shape):
        raise ModelFileError(f"{what}: expected shape {tuple(shape)}, found {shown(found_shape)}")
    body = memoryview(raw)[handle.tell():]
    need = math.prod(shape) * dtype.itemsize
    if len(body) != need:
        raise ModelFileError(f"{what}: expected {need:,} bytes of data, found {len(body):,}")
    array = np.frombuffer(body, dtype=found).reshape(shape, order="F" if fortran else "C")
    return array.astype(dtype)  # a writable copy in native byte order


# --------------------------------------------------------- data files (.npz)
#: The numpy kinds a data array may have: booleans, integers and floats.
_DATA_KINDS = "biuf"


def read_arrays(
    path: str | os.PathLike,
    wanted: set[str] | None = None,
    max_members: int = 10_000,
) -> tuple[list[str], dict[str, np.ndarray]]:
    """The arrays of a data file written by ``numpy.savez`` or ``savez_compressed``.

    Like ``np.load(path, allow_pickle=False)``, but each array's header is
    checked against the bytes its member holds before anything is allocated,
    so a header claiming 10**12 elements is refused, not attempted.

    Parameters
    ----------
    path : str or PathLike
    wanted : set of str, optional
        The array names to read (default: all); the others are only listed.
    max_members : int
        Refuse archives listing more arrays than this.

    Returns
    -------
    names : list of str
        Every array's name, in the archive's order.
    arrays : dict
        ``name -> ndarray`` for the names in ``wanted`` that are present.

    Raises
    ------
    ModelFileError
        Naming the file (and the array): missing, unreadable or not a regular
        file, not a zip archive (saying what it looks like), a damaged
        archive, a member that is not a ``.npy`` array, a repeated name, a
        pickled or non-numeric array, or sizes its bytes cannot hold.
    """
    label = os.fspath(path)
    what = "a .npz archive"
    with open_regular(label, None, what) as handle:
        try:
            archive = open_zip(handle, label, what, max_members)
        except (zipfile.BadZipFile, struct.error, EOFError) as exc:
            raise ModelFileError(f"{label}: damaged zip archive ({clip(str(exc))})") from None
        with archive:
            members: dict[str, zipfile.ZipInfo] = {}
            for info in archive.infolist():
                name = info.filename
                if not name.endswith(".npy") or name[:-4] in members:
                    problem = "is not a .npy array" if not name.endswith(".npy") else "appears twice"
                    raise ModelFileError(f"{label}: member {shown(name)} {problem}; expected {what}")
                members[name[:-4]] = info
            if len(members) > max_members:
                raise ModelFileError(f"{label}: holds {len(members):,} arrays; {what} has at most {max_members:,}")
            arrays = {}
            for name, info in members.items():
                if wanted is None or name in wanted:
                    try:
                        arrays[name] = _read_data_array(archive, info, f"{label}: array {shown(name)}")
                    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError,
                            RuntimeError) as exc:
                        raise ModelFileError(f"{label}: array {shown(name)}: damaged ({clip(str(exc))})") from None
    return list(members), arrays


def _read_data_array(archive: zipfile.ZipFile, info: zipfile.ZipInfo, what: str) -> np.ndarray:
    """One data array, its header checked against the member's size (itself
    bounded by its compressed bytes), then filled a chunk at a time."""
    check_member(info, what)
    with archive.open(info) as member:
        shape, fortran, dtype = _npy_header(member, what)
        if dtype.kind not in _DATA_KINDS or dtype.fields is not None or dtype.subdtype is not None:
            raise ModelFileError(f"{what}: expected numbers (bool, int or float), found dtype {dtype}")
        need = math.prod(shape) * dtype.itemsize
        left = info.file_size - member.tell()
        if need != left:
            raise ModelFileError(
                f"{what}: its header claims shape {shown(shape)} of {dtype} ({need:,} bytes), "
                f"but the member holds {left:,} bytes of data"
            )
        array = np.empty(shape, dtype=dtype, order="F" if fortran else "C")
        view = memoryview(array.reshape(-1, order="A").view(np.uint8)) if need else memoryview(b"")
        filled = 0
        while filled < need:
            chunk = member.read(min(CHUNK, need - filled))
            if not chunk:
                raise ModelFileError(f"{what}: expected {need:,} bytes of data, found {filled:,} (truncated?)")
            view[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
    return array
