"""Reading an ONNX file, the external data files beside it, and checking that
what was read is valid ONNX before anything is made of it.

The file itself is opened once and checked before a byte is read: a regular
file (not a folder, device or pipe: ``/dev/zero`` would never end) no larger
than protobuf's own limit of 2 GiB (:data:`MAX_MODEL_BYTES`).

torch's dynamo exporter (``torch.onnx.export(..., dynamo=True)``, the
default) keeps large weights in a separate file named in each initializer's
``external_data`` (``location``, ``offset``, ``length``). graphnet reads such
files only when asked (``external_data=True``), and then only regular files
inside the model's own folder: a location that is absolute, climbs out with
``..``, or resolves (through a symlink) outside the folder is refused, and so
is one claiming more bytes than the file holds, or tensors claiming more
bytes together than their files hold (one region read for a thousand
tensors would multiply memory a thousandfold). onnx's own loader is not used
for this: it would follow any path written in the model.

Every tensor (initializers and ``Constant`` values) must hold exactly the
elements its dimensions promise, with no negative dimension, so that making
an array of it allocates no more than the bytes present. The graph must be
what ``onnx.checker`` asks for: each tensor written once, nodes in an order
that computes every tensor before it is read, so no cycle.
"""

from __future__ import annotations

import math
import os
from typing import Any

import networkx as nx

from .._files import read_regular, refuse_bad_name
from ..errors import ModelFileError

__all__ = ["MAX_MODEL_BYTES", "check_graph", "check_path", "load"]

#: protobuf reads no message larger than 2 GiB; ONNX keeps larger models'
#: weights in external data files.
MAX_MODEL_BYTES = 2 << 30

# Bytes per element of the ONNX tensor types graphnet reads (TensorProto.DataType).
_ITEMSIZE = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2}


def check_path(path: Any) -> str:
    """``path`` as a string naming a file, or a ModelFileError naming the argument.

    Raises
    ------
    ModelFileError
        For anything but a str or os.PathLike (``None``, a number), and for a
        path with a NUL character in it.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ModelFileError(f"from_onnx: path must be a str or os.PathLike naming an .onnx file, got "
                             f"{type(path).__name__} {path!r:.80}")
    try:
        label = os.fsdecode(os.fspath(path))
    except (TypeError, ValueError, UnicodeError) as exc:
        raise ModelFileError(f"from_onnx: path {path!r:.80} is not a usable file name ({exc})") from None
    refuse_bad_name(label, "from_onnx: path")
    if not label:
        raise ModelFileError("from_onnx: path is empty; give the .onnx file to read")
    return label


def load(onnx, path: str, external_data: bool):
    """The ModelProto at ``path``, external data filled in when allowed, every
    tensor checked against its dimensions.

    Raises
    ------
    ModelFileError
        For a missing, unreadable, non-regular, oversized or malformed file,
        for external data that is not allowed or not safely inside the
        model's folder, and for a tensor whose data does not match its
        dimensions.
    """
    raw = _read(path)
    fmt = onnx.serialization.registry.get_format_from_file_extension(os.path.splitext(path)[1]) or "protobuf"
    try:
        model = onnx.load_model_from_string(raw, format=fmt)
    except MemoryError as exc:  # the file's bytes are bounded: the machine ran out, not the file
        raise ModelFileError(f"{path}: ran out of memory while reading it") from exc
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ModelFileError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    del raw
    if not model.HasField("graph"):
        raise ModelFileError(f"{path}: not an ONNX model (it has no graph)")
    if len(model.graph.sparse_initializer):
        raise ModelFileError(f"{path}: sparse initializers are not supported "
                             f"({model.graph.sparse_initializer[0].values.name!r})")
    folder = os.path.dirname(os.path.abspath(path))
    tensors = _tensors(model)
    budget: dict[str, int] = {}  # external file -> bytes left to read from it
    for tensor, where in tensors:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        if not external_data:
            raise ModelFileError(
                f"{path}: {where} lives in an external file ({location!r}); pass "
                f"external_data=True to read it: graphnet then reads only files inside the model's "
                f"own folder ({folder})"
            )
        tensor.raw_data = _read_external(f"{path}: {where}", folder, tensor, info, budget)
        tensor.data_location = onnx.TensorProto.DEFAULT
        del tensor.external_data[:]
    for tensor, where in tensors:
        _check_tensor(onnx, tensor, f"{path}: {where}")
    return model


def _read(path: str) -> bytes:
    """The file's bytes, once the open file is known to be a regular file
    within :data:`MAX_MODEL_BYTES` (see :func:`graphnet._files.read_regular`)."""
    return read_regular(path, MAX_MODEL_BYTES, "an ONNX model",
                        too_big="protobuf reads at most that; a larger ONNX model keeps its weights in external "
                                "data files")


def _tensors(model) -> list[tuple[Any, str]]:
    """Every tensor whose data the model holds or points to, with its name for
    messages: initializers and the values of ``Constant`` nodes."""
    found = [(t, f"initializer {t.name!r}") for t in model.graph.initializer]
    for node in model.graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                where = f"node {node.name or '(unnamed)'!r} ({node.op_type}) attribute {attribute.name!r}"
                found.append((attribute.t, where))
    return found


def _read_external(where: str, folder: str, tensor, info: dict, budget: dict[str, int]) -> bytes:
    location = info.get("location", "")
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
    left = budget.setdefault(target, size)
    if expected > left:
        raise ModelFileError(
            f"{where}: the tensors stored in {location!r} claim more bytes together than its {size:,}; "
            f"tensors sharing bytes are refused"
        )
    budget[target] = left - expected
    with open(target, "rb") as handle:
        handle.seek(offset)
        data = handle.read(expected)
    if len(data) != expected:
        raise ModelFileError(f"{where}: {location!r} ended after {len(data):,} of {expected:,} bytes")
    return data


def _check_tensor(onnx, tensor, where: str) -> None:
    """Refuse a tensor of a type graphnet does not read, with a negative
    dimension, or whose data holds a different number of elements than its
    dimensions promise (numpy would reshape some such data silently)."""
    names = {v: k for k, v in onnx.TensorProto.DataType.items()}
    kind = names.get(tensor.data_type, str(tensor.data_type))
    if tensor.data_type not in _ITEMSIZE and tensor.data_type != onnx.TensorProto.STRING:
        raise ModelFileError(f"{where}: tensors of ONNX type {kind} are not supported")
    dims = list(tensor.dims)
    if any(d < 0 for d in dims):
        raise ModelFileError(f"{where}: negative dimension in its shape {dims}; ONNX dimensions are >= 0")
    expected = math.prod(dims)
    if tensor.HasField("raw_data") and tensor.data_type != onnx.TensorProto.STRING:
        found, unit = len(tensor.raw_data), _ITEMSIZE[tensor.data_type]
        if found != expected * unit:
            raise ModelFileError(f"{where}: shape {dims} needs {expected * unit:,} bytes of {kind}, and "
                                 f"its data holds {found:,}")
        return
    found = len(getattr(tensor, onnx.helper.tensor_dtype_to_field(tensor.data_type)))
    if found != expected:
        raise ModelFileError(f"{where}: shape {dims} needs {expected:,} values of {kind}, and its data "
                             f"holds {found:,}")


def check_graph(graph, source: str) -> None:
    """The graph as ``onnx.checker`` wants it: names unique (initializers,
    inputs, node outputs), every node reading only tensors computed before it.

    Raises
    ------
    ModelFileError
        Naming the tensor written twice, or the tensors of a cycle, or the
        node reading a tensor before (or without) anything computing it.
    """
    written: dict[str, str] = {}  # tensor -> what defines it
    for tensor in graph.initializer:
        _define(written, tensor.name, f"initializer {tensor.name!r}", source)
    for value in graph.input:
        if value.name in written and written[value.name].startswith("initializer"):
            continue  # an initializer listed as an input too (IR version 3 and before)
        _define(written, value.name, f"input {value.name!r}", source)
    producers = {}
    for node in graph.node:
        for tensor in node.output:
            if tensor:
                producers.setdefault(tensor, node)
    for node in graph.node:
        what = f"node {node.name or '(unnamed)'!r} ({node.op_type})"
        if not any(node.output):
            raise ModelFileError(f"{source}: {what} has no output")
        for tensor in node.input:
            if tensor and tensor not in written:
                raise ModelFileError(f"{source}: {what} reads {tensor!r}{_unavailable(graph, tensor, producers)}")
        for tensor in node.output:
            if tensor:
                _define(written, tensor, what, source)


def _define(written: dict[str, str], tensor: str, what: str, source: str) -> None:
    if tensor in written:
        raise ModelFileError(f"{source}: tensor {tensor!r} is written by {written[tensor]} and again by {what}; "
                             f"an ONNX tensor has one producer (static single assignment)")
    written[tensor] = what


def _unavailable(graph, tensor: str, producers: dict) -> str:
    """Why a tensor is not there when read: nothing computes it, a cycle, or
    a node later in the file."""
    if tensor not in producers:
        return ", which no input, initializer or node computes"
    flow = nx.DiGraph()
    for node in graph.node:
        flow.add_edges_from((i, o) for i in node.input if i for o in node.output if o)
    try:
        cycle = nx.find_cycle(flow, source=tensor)
    except nx.NetworkXNoCycle:
        later = producers[tensor]
        return (f" before node {later.name or '(unnamed)'!r} ({later.op_type}) computes it; ONNX nodes "
                f"must be listed in an order that computes each tensor before it is read")
    path = " -> ".join(repr(edge[0]) for edge in cycle) + f" -> {cycle[0][0]!r}"
    ops = sorted({producers[edge[1]].op_type for edge in cycle})
    return f" in a cycle of tensors {path} (computed by {', '.join(ops)}); an ONNX graph has no cycle"
