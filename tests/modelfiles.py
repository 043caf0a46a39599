"""Shared helpers for the model-file tests: reading and writing zip members
as a hostile writer would."""

from __future__ import annotations

import io
import json
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
