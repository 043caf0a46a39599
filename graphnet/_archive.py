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
import os
import struct
import zipfile
import zlib
from collections.abc import Mapping
from typing import BinaryIO

import numpy as np

from ._files import atomic_write
from ._text import shown
from .errors import ModelFileError

__all__ = [
    "zip_info",
    "write_zip",
    "npz_bytes",
    "open_zip",
    "check_members",
    "check_member",
    "read_member",
    "describe",
    "MAX_RATIO",
    "CHUNK",
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
#: Inflate (and fill arrays) this much at a time.
CHUNK = 1 << 20

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


def write_zip(path, members: list[tuple[str, bytes, int]]):
    """Write ``(name, data, method)`` members to a zip at ``path``, atomically
    (:func:`graphnet._files.atomic_write`): deterministic bytes, and a crash
    never leaves half a file where a good one was. Returns the path written."""

    def write(handle: BinaryIO) -> None:
        with zipfile.ZipFile(handle, "w") as archive:
            for name, data, method in members:
                if (method == zipfile.ZIP_DEFLATED and len(data) > RATIO_SLACK  # the reader's slack covers less
                        and len(data) > MAX_RATIO // 2 * len(zlib.compress(data)) + 1024):
                    method = zipfile.ZIP_STORED  # deflated, it would look like a zip bomb to the reader
                archive.writestr(zip_info(name, method), data)

    return atomic_write(path, write)


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
        head = handle.read(64)
        if head.startswith(b"PK\x03\x04"):
            raise ModelFileError(f"{label}: not {what} (a zip archive without its end record: truncated or damaged)")
        raise ModelFileError(f"{label}: not {what} (not a zip archive: {describe(head)})")
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
    try:
        archive = zipfile.ZipFile(handle)
    except NotImplementedError as exc:  # a zip feature zipfile does not read (a newer version, ...)
        raise ModelFileError(f"{label}: a zip archive graphnet cannot read ({exc})") from None
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
                f"more than {MAX_RATIO} times, which {what} never does (refused as a possible zip bomb)"
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
    try:
        with archive.open(info) as member:
            while got <= info.file_size:
                chunk = member.read(min(CHUNK, info.file_size + 1 - got))
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
    except (NotImplementedError, RuntimeError) as exc:  # zipfile's words for features it does not read
        raise ModelFileError(f"{where} cannot be read ({exc})") from None
    if got != info.file_size:
        raise ModelFileError(f"{where}: expected {info.file_size:,} bytes, found {got:,} (truncated?)")
    return b"".join(chunks)
