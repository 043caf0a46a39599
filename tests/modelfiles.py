"""Shared helpers for the model-file tests: reading and writing zip members
as a hostile writer would."""

from __future__ import annotations

import io
import json
import struct
import time
import tracemalloc
import zipfile

import numpy as np


def same(a, b) -> bool:
    """Bit-for-bit equality of two predictions (arrays or dicts of arrays)."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    return np.array_equal(a, b)


def read_members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def zip_bytes(members, methods=None) -> bytes:
    """A zip archive of ``members`` (name -> bytes), as a hostile writer would make it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            method = (methods or {}).get(name, zipfile.ZIP_STORED)
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return buffer.getvalue()


def npz_bytes(arrays, allow_pickle=False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for key, value in arrays.items():
            with archive.open(f"{key}.npy", "w") as member:
                np.lib.format.write_array(member, np.asarray(value), allow_pickle=allow_pickle)
    return buffer.getvalue()


def rewrite(path, out, **changes):
    """A copy of a model file with members replaced (None removes one)."""
    members = read_members(path)
    for name, data in changes.items():
        name = name.replace("__", ".")
        if data is None:
            members.pop(name)
        else:
            members[name] = data
    out.write_bytes(zip_bytes(members))
    return out


def spec_of(path) -> dict:
    return json.loads(read_members(path)["graph.json"])


# ----------------------------------------------- editing the zip structure itself
# Offsets of the fields the hostile tests edit (APPNOTE.TXT 4.3.7, 4.3.12, 4.3.16).
END_ENTRIES_HERE, END_ENTRIES, END_DIRECTORY_SIZE, END_DIRECTORY_OFFSET, END_COMMENT = 8, 10, 12, 16, 20
ENTRY_COMPRESSED, ENTRY_SIZE, ENTRY_NAME_LENGTH, ENTRY_EXTRA_LENGTH, ENTRY_COMMENT_LENGTH = 20, 24, 28, 30, 32
ENTRY_HEADER_OFFSET = 42
LOCAL_COMPRESSED, LOCAL_SIZE = 18, 22


def end_record(data: bytes) -> int:
    """Where the end-of-central-directory record starts."""
    return data.rindex(b"PK\x05\x06")


def directory_entries(data: bytes) -> list[int]:
    """Where each central-directory entry starts, in order."""
    end = end_record(data)
    at = struct.unpack_from("<L", data, end + END_DIRECTORY_OFFSET)[0]
    entries = []
    while at < end:
        entries.append(at)
        name, extra, comment = struct.unpack_from("<3H", data, at + ENTRY_NAME_LENGTH)
        at += 46 + name + extra + comment
    return entries


def entry_named(data: bytes, name: str) -> int:
    for at in directory_entries(data):
        length = struct.unpack_from("<H", data, at + ENTRY_NAME_LENGTH)[0]
        if data[at + 46 : at + 46 + length] == name.encode():
            return at
    raise KeyError(name)


def patch(data: bytes, at: int, fmt: str, *values) -> bytes:
    """``data`` with the struct ``fmt`` written at ``at``."""
    raw = bytearray(data)
    struct.pack_into(fmt, raw, at, *values)
    return bytes(raw)


def npy_claiming(shape, dtype="<f8", body: bytes = b"\0" * 16) -> bytes:
    """An .npy file whose header claims ``shape`` but holds only ``body``."""
    buffer = io.BytesIO()
    header = {"descr": dtype, "fortran_order": False, "shape": tuple(shape)}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + body


def bounded(call):
    """Run ``call()``; returns (its result or the exception it raised, seconds,
    peak bytes allocated while it ran, as tracemalloc counts them)."""
    started_here = not tracemalloc.is_tracing()
    if started_here:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    start = time.perf_counter()
    try:
        outcome = call()
    except Exception as exc:  # the caller checks which kind
        outcome = exc
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] - base
    if started_here:
        tracemalloc.stop()
    return outcome, seconds, peak
