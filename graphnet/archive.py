"""Zip archives and ``.npz`` members: written deterministically, read as hostile.

A model file is a zip archive whose weights are ``.npz`` archives (zips of
``.npy`` arrays) stored inside it. This module is the only code that touches
those containers. Writing fixes every timestamp, so the same arrays give the
same bytes. Reading treats every byte as a possible lie: the entry count,
member names, sizes and compression ratios are checked before anything is
inflated, and every ``.npy`` header is checked against the shape and dtype
the caller expects before any memory is given to its data. Nothing is ever
unpickled.
"""

from __future__ import annotations

import io
import math
import os
import struct
import zipfile
from collections.abc import Mapping
from typing import BinaryIO

import numpy as np

from ._text import preview
from .errors import ModelFileError

__all__ = [
    "zip_info",
    "npz_bytes",
    "check_entry_count",
    "check_members",
    "check_member",
    "read_member",
    "read_npz",
    "parse_npy",
    "ARCHIVE_SLACK",
    "ARRAY_SLACK",
]

# Stored .npz members written by graphnet never inflate; one inflating more
# than this is not one of ours (and a 1 MB file must not unpack to gigabytes).
_MAX_NPZ_RATIO = 100
#: Room for an .npy header (numpy caps it at 10,000 bytes) and the zip records around one array.
ARRAY_SLACK = 16_384
#: Room for the zip records of a whole archive.
ARCHIVE_SLACK = 1 << 17
_COMPRESSIONS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: same arrays, same bytes


# ---------------------------------------------------------------------- writing
def zip_info(name: str, method: int) -> zipfile.ZipInfo:
    """A member header with a fixed timestamp and plain file permissions."""
    info = zipfile.ZipInfo(name, date_time=_EPOCH)
    info.compress_type = method
    info.external_attr = 0o644 << 16
    return info


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """An ``.npz`` archive (what ``np.savez`` writes) with fixed timestamps."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for key, array in arrays.items():
            array = np.ascontiguousarray(array)
            with archive.open(zip_info(f"{key}.npy", zipfile.ZIP_STORED), "w",
                              force_zip64=array.nbytes > (1 << 30)) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)
    return buffer.getvalue()


# ---------------------------------------------------------------------- reading
def check_entry_count(handle: BinaryIO, label: str, members: int, what: str) -> None:
    """Read the entry count from the end-of-archive record before ``zipfile``
    builds an object per entry (a hostile archive may list millions).

    ``members`` is how many the file should hold at most and ``what`` names the
    kind of file in messages ("a graphnet model file").
    """
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    tail_size = min(size, 22 + 0xFFFF)
    handle.seek(size - tail_size)
    tail = handle.read(tail_size)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 22 > len(tail):
        raise ModelFileError(f"{label}: not {what} (not a zip archive)")
    entries = struct.unpack("<H", tail[at + 10 : at + 12])[0]
    if entries > 4 * members:
        raise ModelFileError(f"{label}: lists {entries} members; {what} has at most {members}")
    handle.seek(0)


def check_members(
    archive: zipfile.ZipFile,
    label: str,
    allowed: tuple[str, ...],
    required: tuple[str, ...],
    max_bytes: int,
    max_json_bytes: int,
    what: str,
) -> dict[str, zipfile.ZipInfo]:
    """The archive's members by name, each checked (:func:`check_member`) and
    among ``allowed``; every ``required`` one present; their inflated sizes
    within ``max_bytes`` together (``.json`` members within ``max_json_bytes``)."""
    infos: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in archive.infolist():
        name = info.filename
        if name not in allowed:
            raise ModelFileError(
                f"{label}: unexpected member {name[:80]!r}; {what} holds {', '.join(allowed)}"
            )
        if name in infos:
            raise ModelFileError(f"{label}: member {name!r} appears twice")
        check_member(info, f"{label}: {name}")
        if name.endswith(".json") and info.file_size > max_json_bytes:
            raise ModelFileError(
                f"{label}: {name} is {info.file_size:,} bytes, more than the limit of {max_json_bytes:,}"
            )
        if name.endswith(".npz") and info.file_size > _MAX_NPZ_RATIO * info.compress_size + ARCHIVE_SLACK:
            raise ModelFileError(
                f"{label}: {name} would inflate {info.compress_size:,} bytes to {info.file_size:,}; "
                f"graphnet never writes that (refused as a possible zip bomb)"
            )
        total += info.file_size
        infos[name] = info
    if total > max_bytes:
        raise ModelFileError(
            f"{label}: members add up to {total:,} bytes once inflated, more than max_bytes="
            f"{max_bytes:,}; pass a larger max_bytes to load it if you trust it"
        )
    missing = [m for m in required if m not in infos]
    if missing:
        raise ModelFileError(
            f"{label}: missing {' and '.join(missing)}; is it {what} (written by Graph.save)?"
        )
    return infos


def check_member(info: zipfile.ZipInfo, where: str) -> None:
    """Refuse encryption, unknown compression and sizes no deflate stream gives."""
    if info.flag_bits & 0x1:
        raise ModelFileError(f"{where} is encrypted; graphnet model files never are")
    if info.compress_type not in _COMPRESSIONS:
        raise ModelFileError(
            f"{where} uses zip compression method {info.compress_type}; expected stored or deflated"
        )
    if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
        raise ModelFileError(
            f"{where} is stored uncompressed but lists {info.compress_size:,} stored bytes "
            f"for {info.file_size:,}"
        )
    # No deflate stream inflates more than about 1032:1, so a larger claim is a lie.
    if info.file_size > 1100 * info.compress_size + 1024:
        raise ModelFileError(
            f"{where} claims {info.file_size:,} bytes from {info.compress_size:,} compressed bytes"
        )


def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> bytes:
    """Exactly ``info.file_size`` bytes (``zipfile`` stops inflating there and
    checks the CRC); a short read means the file is truncated."""
    with archive.open(info) as member:
        data = member.read(info.file_size + 1)
    if len(data) != info.file_size:
        raise ModelFileError(f"{where}: expected {info.file_size:,} bytes, found {len(data):,} (truncated?)")
    return data


def read_npz(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    shapes: Mapping[str, tuple[int, ...]],
    dtype: np.dtype,
    label: str,
    described_in: str,
) -> dict[str, np.ndarray]:
    """The arrays of an .npz member; names, shapes and dtype must be exactly
    ``shapes`` (which the member ``described_in`` of the same file declared)."""
    where = f"{label}: {info.filename}"
    expected_bytes = sum(math.prod(shape) * dtype.itemsize for shape in shapes.values())
    limit = expected_bytes + ARCHIVE_SLACK + sum(ARRAY_SLACK + 2 * len(key.encode()) for key in shapes)
    if info.file_size > limit:
        raise ModelFileError(
            f"{where} is {info.file_size:,} bytes, but the architecture's {len(shapes)} arrays "
            f"need about {expected_bytes:,}"
        )
    raw = read_member(archive, info, where)
    try:
        inner = zipfile.ZipFile(io.BytesIO(raw))
    except zipfile.BadZipFile:
        raise ModelFileError(f"{where} is not an .npz archive") from None
    with inner:
        entries = inner.infolist()
        wanted = {f"{key}.npy": key for key in shapes}
        names = [e.filename for e in entries]
        unknown = [n for n in names if n not in wanted]
        missing = [k for n, k in wanted.items() if n not in names]
        if unknown or missing or len(names) != len(set(names)):
            problems = []
            if missing:
                problems.append(f"missing {preview(missing, 5)}")
            if unknown:
                problems.append(f"unexpected {preview(unknown, 5)}")
            if len(names) != len(set(names)):
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


def parse_npy(raw: bytes, shape: tuple[int, ...], dtype: np.dtype, what: str) -> np.ndarray:
    """An .npy array, refused from its header unless it is exactly ``shape`` of
    float ``dtype``. Never unpickles: like ``np.load(..., allow_pickle=False)``,
    but the header is checked before any memory is given to the data."""
    handle = io.BytesIO(raw)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    try:
        version = np.lib.format.read_magic(handle)
        reader = readers.get(version)
        header = reader(handle) if reader else None
    except (ValueError, TypeError, SyntaxError) as exc:
        raise ModelFileError(f"{what} is not a readable .npy array ({exc})") from None
    if header is None:
        raise ModelFileError(f"{what}: .npy format version {version} is not one graphnet writes")
    found_shape, fortran, found = header
    if found.hasobject:
        raise ModelFileError(f"{what} holds Python objects (pickled data); refused")
    if found.kind != "f" or found.itemsize != dtype.itemsize:
        raise ModelFileError(f"{what}: expected dtype {dtype}, found {found}")
    if tuple(found_shape) != tuple(shape):
        raise ModelFileError(f"{what}: expected shape {tuple(shape)}, found {tuple(found_shape)}")
    body = raw[handle.tell():]
    need = math.prod(shape) * dtype.itemsize
    if len(body) != need:
        raise ModelFileError(f"{what}: expected {need:,} bytes of data, found {len(body):,}")
    array = np.frombuffer(body, dtype=found).reshape(shape, order="F" if fortran else "C")
    return array.astype(dtype)  # a writable copy in native byte order
