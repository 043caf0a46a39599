"""Model files and spec files: ``save``, ``load`` and ``from_spec``.

A model file (suggested extension ``.gnet``) is a zip archive of:

``graph.json``
    The architecture, exactly :func:`graphnet.spec.to_dict`'s structure
    (format name and version, graphnet version, graph name, dtype, seed,
    whether it is a ``Sequential``, nodes in insertion order, synapses in
    connection order).
``weights.npz``
    Every weight and bias as an ``.npy`` array keyed like
    ``Graph.get_weights()`` (``"h1.bias"``, ``"x->h1.weight"``), in the
    graph's dtype. ``np.load`` reads it.
``training.json``
    The state that makes ``fit`` continue where it stopped: the graph's random
    streams (shuffling, dropout, initialisation of later synapses) and, when
    the graph has an optimizer, its name, hyperparameters, iteration count and
    the layout (parameter key and size) of its state vectors.
``optimizer.npz``
    The optimizer's state vectors (Adam's ``m`` and ``v``, ...), present when
    the optimizer has any.

Files are written atomically (a temporary file beside the target, flushed,
synced, then ``os.replace``) and deterministically: the same graph gives the
same bytes.

Loading treats the file as hostile until proven otherwise. Nothing is
unpickled and nothing named in the file is imported or called: activations,
losses, kinds, initialisers and optimizers are looked up in graphnet's own
registries. Before anything is inflated, the member names, counts, sizes and
compression ratios are checked against fixed bounds; the architecture's
parameter count is bounded by the size of ``weights.npz``, so a small file
cannot make graphnet allocate gigabytes; every array's name, shape and dtype
must match the architecture and is checked from its header before its data
is read. Every failure is a :class:`~graphnet.ModelFileError` naming the file
and what is wrong.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import struct
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from . import optimizers as optimizers_module
from .errors import GraphError, ModelFileError
from .files import atomic_write
from .nodes import DenseNode
from .spec import FORMAT, FORMAT_VERSION, from_dict, to_dict

__all__ = [
    "save",
    "load",
    "from_spec",
    "read_spec",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_SPEC_PARAMS",
]

logger = logging.getLogger(__name__)

GRAPH_MEMBER = "graph.json"
WEIGHTS_MEMBER = "weights.npz"
TRAINING_MEMBER = "training.json"
OPTIMIZER_MEMBER = "optimizer.npz"
_MEMBERS = (GRAPH_MEMBER, WEIGHTS_MEMBER, TRAINING_MEMBER, OPTIMIZER_MEMBER)
_REQUIRED = (GRAPH_MEMBER, WEIGHTS_MEMBER)

#: Default bound on the total (inflated) size of a model file's members.
DEFAULT_MAX_BYTES = 4 << 30
#: Default bound on the parameters a spec file may describe (``from_spec``).
DEFAULT_MAX_SPEC_PARAMS = 100_000_000
#: A JSON member or spec file larger than this is refused.
MAX_JSON_BYTES = 32 << 20
# graphnet stores its .npz members uncompressed; a stored member inflating more
# than this is not one of ours (and a 1 MB file must not unpack to gigabytes).
_MAX_NPZ_RATIO = 100
# Room for an .npy header (numpy caps it at 10,000 bytes) and the zip records
# around one array.
_ARRAY_SLACK = 16_384
_ARCHIVE_SLACK = 1 << 17
_COMPRESSIONS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: same graph, same bytes
_UINT128 = 1 << 128


# ---------------------------------------------------------------------- saving
def save(graph, path: str | os.PathLike) -> Path:
    """Write ``graph`` (architecture, weights, optimizer and random state) to ``path``.

    Parameters
    ----------
    graph : Graph
    path : str or PathLike
        ``.gnet`` is the suggested extension; any name works.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    OSError
        When the folder cannot be written; an existing file at ``path`` is
        then left exactly as it was.
    """
    members = [(GRAPH_MEMBER, _json_bytes(to_dict(graph)), zipfile.ZIP_DEFLATED)]
    members.append((WEIGHTS_MEMBER, _npz_bytes(graph.get_weights()), zipfile.ZIP_STORED))
    training, slots = _training_state(graph)
    members.append((TRAINING_MEMBER, _json_bytes(training), zipfile.ZIP_DEFLATED))
    if slots is not None:
        members.append((OPTIMIZER_MEMBER, _npz_bytes(slots), zipfile.ZIP_STORED))

    def write(handle: BinaryIO) -> None:
        with zipfile.ZipFile(handle, "w") as archive:
            for name, data, method in members:
                archive.writestr(_zip_info(name, method), data)

    written = atomic_write(path, write)
    logger.info("%s: saved to %s", graph.name, written)
    return written


def _zip_info(name: str, method: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_EPOCH)
    info.compress_type = method
    info.external_attr = 0o644 << 16
    return info


def _json_bytes(data: Any) -> bytes:
    return json.dumps(data, indent=1, allow_nan=False).encode("utf-8")


def _npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """An ``.npz`` archive (what ``np.savez`` writes) with fixed timestamps."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for key, array in arrays.items():
            array = np.ascontiguousarray(array)
            with archive.open(_zip_info(f"{key}.npy", zipfile.ZIP_STORED), "w",
                              force_zip64=array.nbytes > (1 << 30)) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)
    return buffer.getvalue()


def _training_state(graph) -> tuple[dict[str, Any], dict[str, np.ndarray] | None]:
    """``training.json``'s content and the optimizer's state vectors (or None)."""
    state: dict[str, Any] = {
        "rng": {
            "train": graph.rng.bit_generator.state,
            # The stream that initialises synapses connected later.
            "init": graph._init_rng.bit_generator.state,
        },
        "optimizer": None,
    }
    optimizer = graph.optimizer
    if optimizer is None:
        return state, None
    saved = optimizer.get_state()
    sizes = _parameter_sizes(graph)
    # Keep the state of parameters the graph still has (it may have been edited
    # since the last step); the rest would be dropped by the next bind() anyway.
    layout, slots, start = [], {name: [] for name in optimizer.slot_names}, 0
    for key, n in saved["layout"]:
        if sizes.get(key) == n:
            layout.append([key, n])
            for name in optimizer.slot_names:
                slots[name].append(saved["slots"][name][start : start + n])
        start += n
    state["optimizer"] = {
        "config": optimizer.get_config(),
        "iterations": int(saved["iterations"]),
        "layout": layout,
        "slots": sorted(optimizer.slot_names),
    }
    if not slots:  # plain SGD keeps no state
        return state, None
    return state, {
        name: (np.concatenate(parts) if parts else np.zeros(0)).astype(graph.dtype)
        for name, parts in sorted(slots.items())
    }


def _parameter_sizes(graph) -> dict[str, int]:
    return {key: math.prod(shape) for key, shape in _parameter_shapes(graph).items()}


def _parameter_shapes(graph) -> dict[str, tuple[int, ...]]:
    """Every parameter's key and shape, without copying any weight."""
    shapes: dict[str, tuple[int, ...]] = {s.key: tuple(s.shape) for s in graph.synapses}
    for name, node in graph.nodes.items():
        if isinstance(node, DenseNode):
            shapes[f"{name}.bias"] = (node.size,)
    return shapes


# --------------------------------------------------------------------- loading
def load(path: str | os.PathLike | BinaryIO, *, max_bytes: int = DEFAULT_MAX_BYTES):
    """Read a model file written by :func:`save`.

    Parameters
    ----------
    path : str, PathLike or binary file object
    max_bytes : int
        Refuse files whose members add up to more than this once inflated
        (4 GiB by default).

    Returns
    -------
    Graph or Sequential
        Predicting bit for bit as the saved graph did; ``fit`` continues with
        the saved optimizer state and random streams.

    Raises
    ------
    ModelFileError
        For a missing, unreadable, truncated, oversized, malformed or hostile
        file: the message names the file and what is wrong.
    """
    label = _label(path)
    try:
        if isinstance(path, (str, os.PathLike)):
            with open(path, "rb") as handle:
                return _load(handle, label, max_bytes)
        if not hasattr(path, "read"):
            raise ModelFileError(
                f"load expects a path or a binary file object, got {type(path).__name__}"
            )
        return _load(path, label, max_bytes)
    except ModelFileError:
        raise
    except GraphError as exc:
        raise ModelFileError(f"{label}: {exc}") from None
    except FileNotFoundError:
        raise ModelFileError(f"{label}: no such file") from None
    except OSError as exc:
        raise ModelFileError(f"{label}: cannot be read ({exc})") from exc
    except (zipfile.BadZipFile, zlib.error, EOFError, struct.error) as exc:
        raise ModelFileError(f"{label}: damaged zip archive ({exc})") from None
    except (ValueError, KeyError, TypeError, IndexError, NotImplementedError, RuntimeError,
            OverflowError, RecursionError, MemoryError) as exc:
        raise ModelFileError(
            f"{label}: not a readable graphnet model file ({type(exc).__name__}: {exc})"
        ) from None


def _label(path) -> str:
    if isinstance(path, (str, os.PathLike)):
        return str(os.fspath(path))
    return str(getattr(path, "name", "<model file>"))


def _load(handle: BinaryIO, label: str, max_bytes: int):
    _check_entry_count(handle, label)
    with zipfile.ZipFile(handle) as archive:
        infos = _check_members(archive, label, max_bytes)
        data = _read_json(archive, infos[GRAPH_MEMBER], label)
        _check_format(data, label)
        weights_info = infos[WEIGHTS_MEMBER]
        itemsize = 8 if isinstance(data, Mapping) and data.get("dtype") == "float64" else 4
        try:
            graph = from_dict(data, max_params=weights_info.file_size // itemsize)
        except GraphError as exc:
            raise ModelFileError(f"{label}: {GRAPH_MEMBER}: {exc}") from None
        shapes = _parameter_shapes(graph)
        arrays = _read_npz(archive, weights_info, shapes, graph.dtype, label)
        graph.set_weights(arrays)
        if TRAINING_MEMBER in infos:
            _restore_training(graph, archive, infos, label)
        elif OPTIMIZER_MEMBER in infos:
            raise ModelFileError(f"{label}: has {OPTIMIZER_MEMBER} but no {TRAINING_MEMBER} to describe it")
    logger.debug("%s: loaded %r", label, graph)
    return graph


def _check_entry_count(handle: BinaryIO, label: str) -> None:
    """Read the entry count from the end-of-archive record before ``zipfile``
    builds an object per entry (a hostile archive may list millions)."""
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    tail_size = min(size, 22 + 0xFFFF)
    handle.seek(size - tail_size)
    tail = handle.read(tail_size)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 22 > len(tail):
        raise ModelFileError(f"{label}: not a graphnet model file (not a zip archive)")
    entries = struct.unpack("<H", tail[at + 10 : at + 12])[0]
    if entries > 4 * len(_MEMBERS):
        raise ModelFileError(
            f"{label}: lists {entries} members; a graphnet model file has at most {len(_MEMBERS)}"
        )
    handle.seek(0)


def _check_members(archive: zipfile.ZipFile, label: str, max_bytes: int) -> dict[str, zipfile.ZipInfo]:
    infos: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in archive.infolist():
        name = info.filename
        if name not in _MEMBERS:
            raise ModelFileError(
                f"{label}: unexpected member {name[:80]!r}; a graphnet model file holds "
                f"{', '.join(_MEMBERS)}"
            )
        if name in infos:
            raise ModelFileError(f"{label}: member {name!r} appears twice")
        _check_member(info, f"{label}: {name}")
        if name.endswith(".json") and info.file_size > MAX_JSON_BYTES:
            raise ModelFileError(
                f"{label}: {name} is {info.file_size:,} bytes, more than the limit of {MAX_JSON_BYTES:,}"
            )
        if name.endswith(".npz") and info.file_size > _MAX_NPZ_RATIO * info.compress_size + _ARCHIVE_SLACK:
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
    missing = [m for m in _REQUIRED if m not in infos]
    if missing:
        raise ModelFileError(
            f"{label}: missing {' and '.join(missing)}; is it a graphnet model file "
            f"(written by Graph.save)?"
        )
    return infos


def _check_member(info: zipfile.ZipInfo, where: str) -> None:
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


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> bytes:
    """Exactly ``info.file_size`` bytes (``zipfile`` stops inflating there and
    checks the CRC); a short read means the file is truncated."""
    with archive.open(info) as member:
        data = member.read(info.file_size + 1)
    if len(data) != info.file_size:
        raise ModelFileError(f"{where}: expected {info.file_size:,} bytes, found {len(data):,} (truncated?)")
    return data


def _read_json(archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str) -> Any:
    where = f"{label}: {info.filename}"
    raw = _read_member(archive, info, where)
    try:
        return _parse_json(raw)
    except ValueError as exc:
        raise ModelFileError(f"{where} is not valid JSON ({exc})") from None


def _parse_json(raw: bytes) -> Any:
    """Strict JSON: UTF-8, no NaN/Infinity, no repeated keys.

    Raises
    ------
    ValueError
        Saying what is wrong and where.
    """
    text = raw.decode("utf-8-sig")
    return json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_unique_keys)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"key {key!r} appears twice in one object")
        result[key] = value
    return result


def _check_format(data: Any, label: str) -> None:
    """A clearer message than the spec's for files that are not ours or too new."""
    if not isinstance(data, Mapping):
        raise ModelFileError(f"{label}: {GRAPH_MEMBER} must hold a JSON object, found {type(data).__name__}")
    if data.get("format") != FORMAT:
        raise ModelFileError(
            f"{label}: {GRAPH_MEMBER} has format {data.get('format')!r}, expected {FORMAT!r}"
        )
    version = data.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        from . import __version__

        writer = data.get("graphnet_version")
        writer = f"graphnet {writer}" if isinstance(writer, str) else "a newer graphnet"
        raise ModelFileError(
            f"{label}: written by {writer[:40]} in format version {version}; this graphnet "
            f"({__version__}) reads format version {FORMAT_VERSION} and older. Upgrade graphnet "
            f"to load it"
        )


def _read_npz(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    shapes: Mapping[str, tuple[int, ...]],
    dtype: np.dtype,
    label: str,
) -> dict[str, np.ndarray]:
    """The arrays of an .npz member; names, shapes and dtype must be exactly ``shapes``."""
    where = f"{label}: {info.filename}"
    expected_bytes = sum(math.prod(shape) * dtype.itemsize for shape in shapes.values())
    limit = expected_bytes + _ARCHIVE_SLACK + sum(
        _ARRAY_SLACK + 2 * len(key.encode()) for key in shapes
    )
    if info.file_size > limit:
        raise ModelFileError(
            f"{where} is {info.file_size:,} bytes, but the architecture's {len(shapes)} arrays "
            f"need about {expected_bytes:,}"
        )
    raw = _read_member(archive, info, where)
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
            from .graph import preview

            problems = []
            if missing:
                problems.append(f"missing {preview(missing, 5)}")
            if unknown:
                problems.append(f"unexpected {preview(unknown, 5)}")
            if len(names) != len(set(names)):
                problems.append("repeated names")
            raise ModelFileError(
                f"{where} does not match the architecture in {GRAPH_MEMBER}: " + "; ".join(problems)
            )
        arrays = {}
        for entry in entries:
            key = wanted[entry.filename]
            shape = shapes[key]
            what = f"{where}: array {key!r}"
            _check_member(entry, what)
            if entry.file_size > math.prod(shape) * dtype.itemsize + _ARRAY_SLACK:
                raise ModelFileError(f"{what} is {entry.file_size:,} bytes, too many for shape {shape}")
            arrays[key] = _parse_npy(_read_member(inner, entry, what), shape, dtype, what)
    return arrays


def _parse_npy(raw: bytes, shape: tuple[int, ...], dtype: np.dtype, what: str) -> np.ndarray:
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


# ------------------------------------------------------------- training state
_TRAINING_FIELDS = {"rng", "optimizer"}
_OPTIMIZER_FIELDS = {"config", "iterations", "layout", "slots"}


def _restore_training(graph, archive: zipfile.ZipFile, infos, label: str) -> None:
    where = f"{label}: {TRAINING_MEMBER}"
    state = _read_json(archive, infos[TRAINING_MEMBER], label)
    _require(isinstance(state, Mapping), where, "a JSON object", state)
    _require(set(state) <= _TRAINING_FIELDS, where, f"only the fields {sorted(_TRAINING_FIELDS)}",
             sorted(state))
    streams = {}
    if state.get("rng") is not None:
        rng = state["rng"]
        _require(isinstance(rng, Mapping) and set(rng) <= {"train", "init"}, f"{where}: rng",
                 "an object with 'train' and 'init'", rng)
        streams = {name: _generator(value, f"{where}: rng.{name}") for name, value in rng.items()}

    optimizer, slot_arrays = None, None
    config = state.get("optimizer")
    if config is not None:
        optimizer, slot_arrays = _optimizer(graph, archive, infos, config, label)
    elif OPTIMIZER_MEMBER in infos:
        raise ModelFileError(f"{label}: has {OPTIMIZER_MEMBER} but {TRAINING_MEMBER} names no optimizer")

    # Everything checked: now change the graph.
    if "train" in streams:
        graph.rng = streams["train"]
    if "init" in streams:
        graph._init_rng = streams["init"]
    if optimizer is not None:
        optimizer.set_state(slot_arrays, graph.dtype)
        graph.optimizer = optimizer


def _generator(state: Any, where: str) -> np.random.Generator:
    """A PCG64 generator in exactly the saved state (the only bit generator graphnet uses)."""
    ok = (
        isinstance(state, Mapping)
        and set(state) == {"bit_generator", "state", "has_uint32", "uinteger"}
        and state["bit_generator"] == "PCG64"
        and isinstance(state["state"], Mapping)
        and set(state["state"]) == {"state", "inc"}
        and all(_is_int(v, 0, _UINT128) for v in state["state"].values())
        and _is_int(state["has_uint32"], 0, 2)
        and _is_int(state["uinteger"], 0, 1 << 32)
    )
    _require(ok, where, "a PCG64 state", state)
    bit_generator = np.random.PCG64()
    bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": state["state"]["state"], "inc": state["state"]["inc"]},
        "has_uint32": state["has_uint32"],
        "uinteger": state["uinteger"],
    }
    return np.random.Generator(bit_generator)


def _optimizer(graph, archive, infos, config: Any, label: str):
    where = f"{label}: {TRAINING_MEMBER}: optimizer"
    _require(isinstance(config, Mapping) and set(config) == _OPTIMIZER_FIELDS, where,
             f"an object with the fields {sorted(_OPTIMIZER_FIELDS)}", config)
    settings = config["config"]
    _require(isinstance(settings, Mapping) and isinstance(settings.get("name"), str),
             f"{where}.config", "an object with a 'name'", settings)
    for key, value in settings.items():
        plain = value is None or isinstance(value, (bool, str)) or (
            isinstance(value, (int, float)) and math.isfinite(value)
        )
        _require(plain and (key == "name" or not isinstance(value, str)), f"{where}.config.{key}",
                 "a number, true/false or null", value)
    try:
        optimizer = optimizers_module.get(dict(settings))  # looked up in the registry
    except GraphError as exc:
        raise ModelFileError(f"{where}.config: {exc}") from None
    iterations = config["iterations"]
    _require(_is_int(iterations, 0, 1 << 62), f"{where}.iterations", "an integer >= 0", iterations)
    sizes = _parameter_sizes(graph)
    layout = config["layout"]
    _require(isinstance(layout, list) and len(layout) <= len(sizes), f"{where}.layout",
             f"a list of at most {len(sizes)} [key, size] pairs", layout)
    seen = set()
    for i, item in enumerate(layout):
        ok = (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
              and _is_int(item[1], 1, 1 << 62))
        _require(ok, f"{where}.layout[{i}]", "a [key, size] pair", item)
        key, n = item
        _require(sizes.get(key) == n and key not in seen, f"{where}.layout[{i}]",
                 "a parameter of the graph with its size, listed once", item)
        seen.add(key)
    names = config["slots"]
    _require(names == sorted(optimizer.slot_names), f"{where}.slots",
             f"{sorted(optimizer.slot_names)} for {optimizer.name!r}", names)
    total = sum(n for _, n in layout)
    slots: dict[str, np.ndarray] = {}
    if names:
        if OPTIMIZER_MEMBER not in infos:
            raise ModelFileError(f"{label}: {TRAINING_MEMBER} lists optimizer state {names} "
                                 f"but {OPTIMIZER_MEMBER} is missing")
        slots = _read_npz(archive, infos[OPTIMIZER_MEMBER], {n: (total,) for n in names},
                          graph.dtype, label)
        for name, value in slots.items():
            if not np.isfinite(value).all():
                raise ModelFileError(f"{label}: {OPTIMIZER_MEMBER}: state {name!r} holds NaN or inf")
    elif OPTIMIZER_MEMBER in infos:
        raise ModelFileError(f"{label}: {OPTIMIZER_MEMBER} is present but {optimizer.name!r} keeps no state")
    return optimizer, {"iterations": iterations, "layout": layout, "slots": slots}


def _is_int(value: Any, low: int, high: int) -> bool:
    """An integer in ``[low, high)`` (booleans are not integers here)."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value < high


def _require(ok: bool, where: str, expected: str, found: Any) -> None:
    if not ok:
        shown = repr(found)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        raise ModelFileError(f"{where}: expected {expected}, found {shown}")


# ----------------------------------------------------------------------- specs
def read_spec(path: str | os.PathLike) -> Any:
    """The data of a ``.json``, ``.yaml`` or ``.yml`` spec file, parsed safely
    (strict JSON; YAML through PyYAML's ``safe_load``, which builds only plain
    data). Validation is :func:`from_spec`'s job.

    Raises
    ------
    ModelFileError
        Naming the file: missing, too large, wrong extension, not UTF-8, not
        parseable, or PyYAML not installed for a YAML file.
    """
    label = os.fspath(path)
    suffix = Path(label).suffix.lower()
    if suffix not in (".json", ".yaml", ".yml"):
        raise ModelFileError(
            f"{label}: a spec file must end in .json, .yaml or .yml, not {suffix or 'nothing'!r}"
        )
    try:
        with open(label, "rb") as handle:
            raw = handle.read(MAX_JSON_BYTES + 1)
    except FileNotFoundError:
        raise ModelFileError(f"{label}: no such file") from None
    except OSError as exc:
        raise ModelFileError(f"{label}: cannot be read ({exc})") from exc
    if len(raw) > MAX_JSON_BYTES:
        raise ModelFileError(f"{label}: larger than the limit of {MAX_JSON_BYTES:,} bytes for a spec")
    try:
        if suffix == ".json":
            return _parse_json(raw)
        return _parse_yaml(raw, label)
    except ModelFileError:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ModelFileError(f"{label}: not valid {suffix[1:].upper()} ({exc})") from None


def _parse_yaml(raw: bytes, label: str) -> Any:
    try:
        import yaml
    except ImportError:
        raise ModelFileError(
            f"{label}: reading YAML needs PyYAML: pip install 'graphnet[yaml]' "
            f"(or write the spec as .json)"
        ) from None
    try:
        return yaml.safe_load(raw.decode("utf-8-sig"))
    except yaml.YAMLError as exc:
        raise ModelFileError(f"{label}: not valid YAML ({exc})") from None


def from_spec(path: str | os.PathLike, max_params: int | None = DEFAULT_MAX_SPEC_PARAMS):
    """A new Graph (or Sequential) from a spec file: :func:`graphnet.spec.to_dict`'s
    structure written as JSON or YAML. Weights start from their initialisers.

    Parameters
    ----------
    path : str or PathLike
        ``.json``, ``.yaml`` or ``.yml``.
    max_params : int or None
        Refuse specs describing more parameters than this (100 million by
        default) before anything is allocated; ``None`` for no limit.

    Raises
    ------
    ModelFileError
        Naming the file and the offending field (``spec.nodes[2].size``).
    """
    data = read_spec(path)
    try:
        return from_dict(data, max_params=max_params)
    except GraphError as exc:
        hint = ""
        if "more than the limit" in str(exc):
            hint = "; pass max_params=None to from_spec if you trust it"
        raise ModelFileError(f"{os.fspath(path)}: {exc}{hint}") from None
