"""Zip archives and ``.npz`` members: written deterministically, read as hostile.

A model file is a zip archive whose weights are ``.npz`` archives (zips of
``.npy`` arrays) stored inside it, and the command line's data files are
``.npz`` archives too. This module is the only code that touches those
containers. Writing fixes every timestamp, so the same arrays give the same
bytes.

Reading treats every byte as a possible lie, and bounds every allocation by
the bytes actually present in the file, never by what a header claims:

* the end-of-archive record (and its zip64 twin) is parsed here, and the
  central directory's size, offset and entry count are checked against the
  file before :mod:`zipfile` builds an object per entry; the members
  ``zipfile`` then finds must be exactly the members the record declares;
* every member's compressed bytes must lie inside the file, and its inflated
  size may exceed them only by a fixed ratio, enforced again while inflating
  (in chunks, stopping at the bound);
* every ``.npy`` header is checked against the shape and dtype expected (or,
  for data files, against the bytes the member holds) before any memory is
  given to its data. Nothing is ever unpickled.
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

from ._text import clip, preview, shown
from .errors import ModelFileError

__all__ = [
    "zip_info",
    "npz_bytes",
    "open_zip",
    "check_members",
    "check_member",
    "read_member",
    "read_npz",
    "parse_npz",
    "parse_npy",
    "read_arrays",
    "describe",
    "MAX_RATIO",
    "ARCHIVE_SLACK",
    "ARRAY_SLACK",
]

#: A member may inflate to at most this many times its compressed size (plus
#: :data:`RATIO_SLACK`). graphnet stores its arrays uncompressed (1:1) and its
#: JSON deflates about 5:1; a member inflating 100 times is not one of ours, and
#: a 1 MB file must not unpack to gigabytes.
MAX_RATIO = 100
#: Room for the fixed part of a small member (a tiny deflated header compresses well).
RATIO_SLACK = 4096
#: Room for an .npy header (numpy caps it at 10,000 bytes) and the zip records around one array.
ARRAY_SLACK = 16_384
#: Room for the zip records of a whole archive.
ARCHIVE_SLACK = 1 << 17
# No deflate stream inflates more than about 1032:1: a larger claim is a lie.
_DEFLATE_MAX_RATIO = 1100
_COMPRESSIONS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: same arrays, same bytes
_CHUNK = 1 << 20  # inflate this much at a time

# The zip records this module parses itself (APPNOTE.TXT 4.3.12-4.3.16).
_END = struct.Struct("<4s4H2LH")  # end of central directory: 22 bytes
_END_SIGNATURE = b"PK\x05\x06"
_LOCATOR = struct.Struct("<4sLQL")  # zip64 end of central directory locator: 20 bytes
_LOCATOR_SIGNATURE = b"PK\x06\x07"
_END64 = struct.Struct("<4sQ2H2L4Q")  # zip64 end of central directory: 56 bytes
_END64_SIGNATURE = b"PK\x06\x06"
_ENTRY = struct.Struct("<4s6H3L5H2L")  # central directory entry, before its name: 46 bytes
_ENTRY_SIGNATURE = b"PK\x01\x02"
_LOCAL_HEADER = 30  # a member's local header, before its name and extra field
_MAX_COMMENT = 0xFFFF
# Members allowed beyond a caller's maximum, so that a few unexpected ones are
# named by the caller's own check instead of only counted.
_ROOM = 16


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


# ------------------------------------------------------------ the zip directory
def describe(head: bytes) -> str:
    """What a file that is not a zip archive looks like, from its first bytes,
    for messages ("a text file", "a single .npy array (numpy.save)")."""
    if not head:
        return "an empty file"
    if head.startswith(b"\x93NUMPY"):
        return "a single .npy array, as numpy.save writes"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(ch.isprintable() or ch in "\t\r\n" for ch in text):
        return f"a text file starting {shown(text.strip()[:40], 48)}"
    return f"binary data starting {shown(head[:8])}"


def _end_record(handle: BinaryIO, size: int) -> tuple[int, tuple, bool] | None:
    """Where the end-of-archive record is, its fields, and whether a zip64 record
    replaced them: found exactly as ``zipfile`` finds it (the last 22 bytes when
    the archive has no comment, else the last signature in the final 64 KiB),
    so the checks below apply to the directory ``zipfile`` will read."""
    if size < _END.size:
        return None
    handle.seek(size - _END.size)
    tail = handle.read(_END.size)
    if tail[:4] == _END_SIGNATURE and tail[-2:] == b"\0\0":
        at, fields = size - _END.size, _END.unpack(tail)
    else:
        start = max(size - _MAX_COMMENT - _END.size, 0)
        handle.seek(start)
        tail = handle.read()
        found = tail.rfind(_END_SIGNATURE)
        if found < 0 or found + _END.size > len(tail):
            return None
        at, fields = start + found, _END.unpack(tail[found : found + _END.size])
    # (signature, disk, directory's disk, entries here, entries, size, offset, comment length)
    fields = list(fields)
    if at >= _LOCATOR.size + _END64.size:
        handle.seek(at - _LOCATOR.size)
        locator = _LOCATOR.unpack(handle.read(_LOCATOR.size))
        if locator[0] == _LOCATOR_SIGNATURE:
            if locator[1] != 0 or locator[3] > 1:
                fields[1] = max(fields[1], 1)  # spans disks: refused by the caller
                return at, tuple(fields), False
            handle.seek(at - _LOCATOR.size - _END64.size)
            record = _END64.unpack(handle.read(_END64.size))
            if record[0] == _END64_SIGNATURE:
                # zipfile takes disk numbers, counts, size and offset from it.
                fields[1:7] = record[4:10]
                return at, tuple(fields), True
    return at, tuple(fields), False


def open_zip(handle: BinaryIO, label: str, what: str, max_members: int) -> zipfile.ZipFile:
    """A ``zipfile.ZipFile`` over ``handle``, opened only once its directory is
    known to be small, inside the file, and exactly what it declares.

    Parameters
    ----------
    handle : binary file object
        Seekable.
    label : str
        The file, for messages.
    what : str
        The kind of file, for messages ("a graphnet model file").
    max_members : int
        How many members such a file holds; a few more are let through for
        the caller to name, many more are refused here.

    Raises
    ------
    ModelFileError
        For anything but a plain, single-disk zip archive whose end record,
        central directory and members' data agree with each other and with
        the file's size.
    """
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    found = _end_record(handle, size)
    if found is None:
        handle.seek(0)
        raise ModelFileError(f"{label}: not {what} (not a zip archive: {describe(handle.read(64))})")
    at, fields, zip64 = found
    _, disk, directory_disk, entries_here, entries, directory_size, offset, _ = fields
    if disk != 0 or directory_disk != 0 or entries_here != entries:
        raise ModelFileError(f"{label}: a zip archive split over several disks; {what} is one file")
    if entries > max_members + _ROOM:
        raise ModelFileError(f"{label}: lists {entries:,} members; {what} has at most {max_members}")
    start = at - directory_size - (_LOCATOR.size + _END64.size if zip64 else 0)
    if start < 0 or start != offset:
        raise ModelFileError(
            f"{label}: damaged zip archive (its directory of {directory_size:,} bytes at offset "
            f"{offset:,} does not end where the end record is, at {at:,})"
        )
    listed = _count_entries(handle, start, directory_size, entries, label)
    if listed != entries:
        raise ModelFileError(
            f"{label}: damaged zip archive (declares {entries} members but its directory "
            f"lists {listed})"
        )
    handle.seek(0)
    archive = zipfile.ZipFile(handle)
    try:
        infos = archive.infolist()
        if len(infos) != entries or archive.start_dir != start:
            raise ModelFileError(
                f"{label}: damaged zip archive (declares {entries} members, zipfile found {len(infos)})"
            )
        _check_data_inside(infos, start, label)
    except BaseException:
        archive.close()
        raise
    return archive


def _count_entries(handle: BinaryIO, start: int, size: int, declared: int, label: str) -> int:
    """The entries in the central directory, walked as ``zipfile`` walks it
    (each entry's declared name, extra and comment lengths), stopping as soon
    as there are more than ``declared``: bounded work whatever the directory says."""
    total, count = 0, 0
    while total < size:
        if count == declared:
            return count + 1  # more than declared: the caller says so
        if total + _ENTRY.size > size:
            raise ModelFileError(f"{label}: damaged zip archive (truncated central directory)")
        handle.seek(start + total)
        head = handle.read(_ENTRY.size)
        if len(head) != _ENTRY.size or head[:4] != _ENTRY_SIGNATURE:
            raise ModelFileError(f"{label}: damaged zip archive (bad central directory entry {count})")
        name, extra, comment = struct.unpack_from("<3H", head, 28)
        total += _ENTRY.size + name + extra + comment
        count += 1
    return count


def _check_data_inside(infos: list[zipfile.ZipInfo], end: int, label: str) -> None:
    """Every member's compressed bytes lie before the directory, and together
    they are no more than the file holds (members may not share their bytes)."""
    used = 0
    for info in infos:
        if info.header_offset < 0 or info.header_offset + _LOCAL_HEADER + info.compress_size > end:
            raise ModelFileError(
                f"{label}: member {shown(info.filename)} claims {info.compress_size:,} bytes at offset "
                f"{info.header_offset:,}, but the members' data ends at byte {end:,} (truncated or damaged)"
            )
        used += _LOCAL_HEADER + info.compress_size
    if used > end:
        raise ModelFileError(
            f"{label}: its members claim {used:,} bytes of data but the file holds {end:,} "
            f"(members overlap: refused as a possible zip bomb)"
        )


# --------------------------------------------------------------------- members
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
    within :data:`MAX_RATIO` times their compressed bytes, ``max_bytes``
    together, and ``max_json_bytes`` for ``.json`` members."""
    infos: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in archive.infolist():
        name = info.filename
        if name not in allowed:
            raise ModelFileError(
                f"{label}: unexpected member {shown(name)}; {what} holds {', '.join(allowed)}"
            )
        if name in infos:
            raise ModelFileError(f"{label}: member {name!r} appears twice")
        check_member(info, f"{label}: {name}")
        if name.endswith(".json") and info.file_size > max_json_bytes:
            raise ModelFileError(
                f"{label}: {name} is {info.file_size:,} bytes, more than the limit of {max_json_bytes:,}"
            )
        if info.file_size > MAX_RATIO * info.compress_size + RATIO_SLACK:
            raise ModelFileError(
                f"{label}: {name} would inflate {info.compress_size:,} bytes to {info.file_size:,}, "
                f"more than {MAX_RATIO} times; graphnet never writes that (refused as a possible zip bomb)"
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
        raise ModelFileError(f"{where} is encrypted; graphnet never reads encrypted members")
    if info.compress_type not in _COMPRESSIONS:
        raise ModelFileError(
            f"{where} uses zip compression method {info.compress_type}; expected stored or deflated"
        )
    if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
        raise ModelFileError(
            f"{where} is stored uncompressed but lists {info.compress_size:,} stored bytes "
            f"for {info.file_size:,}"
        )
    if info.file_size > _DEFLATE_MAX_RATIO * info.compress_size + 1024:
        raise ModelFileError(
            f"{where} claims {info.file_size:,} bytes from {info.compress_size:,} compressed bytes"
        )


def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> bytes:
    """Exactly ``info.file_size`` bytes, inflated a chunk at a time and never
    more than that (``zipfile`` checks the CRC at the end); a short read means
    the file is truncated. Callers bound ``file_size`` by the bytes present
    (:func:`check_members`) before calling."""
    chunks, got = [], 0
    with archive.open(info) as member:
        while got <= info.file_size:
            chunk = member.read(min(_CHUNK, info.file_size + 1 - got))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    if got != info.file_size:
        raise ModelFileError(f"{where}: expected {info.file_size:,} bytes, found {got:,} (truncated?)")
    return b"".join(chunks)


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
                problems.append(f"unexpected {preview(unknown, 5)}")
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
    except (ValueError, TypeError, SyntaxError, OverflowError, MemoryError, RecursionError) as exc:
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
        Naming the file (and the array): not a zip archive (saying what it
        looks like), a damaged archive, a member that is not a ``.npy`` array,
        a repeated name, a pickled or non-numeric array, or sizes its bytes
        cannot hold.
    OSError
        When the file cannot be opened.
    """
    label = os.fspath(path)
    what = "a .npz archive"
    with open(label, "rb") as handle:
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
            arrays = {}
            for name, info in members.items():
                if wanted is None or name in wanted:
                    try:
                        arrays[name] = _read_data_array(archive, info, f"{label}: array {shown(name)}")
                    except (zipfile.BadZipFile, EOFError, OSError) as exc:
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
            chunk = member.read(min(_CHUNK, need - filled))
            if not chunk:
                raise ModelFileError(f"{what}: expected {need:,} bytes of data, found {filled:,} (truncated?)")
            view[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
    return array
