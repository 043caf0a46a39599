"""Reading an ONNX file, and the external data files beside it.

torch's dynamo exporter (``torch.onnx.export(..., dynamo=True)``, the
default) keeps large weights in a separate file named in each initializer's
``external_data`` (``location``, ``offset``, ``length``). graphnet reads such
files only when asked (``external_data=True``), and then only regular files
inside the model's own folder: a location that is absolute, climbs out with
``..``, or resolves (through a symlink) outside the folder is refused, and so
is one claiming more bytes than the file holds. onnx's own loader is not used
for this: it would follow any path written in the model.
"""

from __future__ import annotations

import math
import os
from typing import Any

from ..errors import ModelFileError

__all__ = ["load"]

_ITEMSIZE = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2}


def load(onnx, path: str, external_data: bool):
    """The ModelProto at ``path``, external data filled in when allowed.

    Raises
    ------
    ModelFileError
        For an unreadable file, and for external data that is not allowed or
        not safely inside the model's folder.
    """
    try:
        model = onnx.load(path, load_external_data=False)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file") from None
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ModelFileError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    folder = os.path.dirname(os.path.abspath(path))
    for tensor in _tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        if not external_data:
            raise ModelFileError(
                f"{path}: initializer {tensor.name!r} lives in an external file ({location!r}); pass "
                f"external_data=True to read it: graphnet then reads only files inside the model's "
                f"own folder ({folder})"
            )
        tensor.raw_data = _read_external(path, folder, tensor, info)
        tensor.data_location = onnx.TensorProto.DEFAULT
        del tensor.external_data[:]
    return model


def _tensors(model) -> list[Any]:
    """Every tensor whose data may live outside: initializers and Constant values."""
    found = list(model.graph.initializer)
    for node in model.graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                found.append(attribute.t)
    return found


def _read_external(path: str, folder: str, tensor, info: dict) -> bytes:
    location = info.get("location", "")
    where = f"{path}: initializer {tensor.name!r}"
    parts = location.replace("\\", "/").split("/")
    if not location or "\x00" in location or os.path.isabs(location) or location.startswith(("/", "\\")) \
            or (len(location) > 1 and location[1] == ":") or ".." in parts:
        raise ModelFileError(f"{where}: external data location {location!r} is not a file inside the "
                             f"model's folder; refused")
    root = os.path.realpath(folder)
    target = os.path.realpath(os.path.join(root, *parts))
    if os.path.commonpath([root, target]) != root:
        raise ModelFileError(f"{where}: external data {location!r} resolves to {target}, outside the "
                             f"model's folder {root}; refused")
    if not os.path.isfile(target):
        raise ModelFileError(f"{where}: external data file {location!r} is missing or not a regular file")
    itemsize = _ITEMSIZE.get(tensor.data_type)
    if itemsize is None:
        raise ModelFileError(f"{where}: external data of ONNX type {tensor.data_type} is not supported")
    if any(d < 0 for d in tensor.dims):
        raise ModelFileError(f"{where}: negative dimension in {list(tensor.dims)}")
    expected = math.prod(tensor.dims) * itemsize
    try:
        offset = int(info.get("offset", 0))
        length = int(info["length"]) if "length" in info else expected
    except ValueError:
        raise ModelFileError(f"{where}: external data offset/length are not integers") from None
    size = os.path.getsize(target)
    if length != expected or offset < 0 or offset + expected > size:
        raise ModelFileError(
            f"{where}: external data claims {length:,} bytes at offset {offset:,} for a tensor of "
            f"{expected:,} bytes, and {location!r} holds {size:,}"
        )
    with open(target, "rb") as handle:
        handle.seek(offset)
        data = handle.read(expected)
    if len(data) != expected:
        raise ModelFileError(f"{where}: {location!r} ended after {len(data):,} of {expected:,} bytes")
    return data
