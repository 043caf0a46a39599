"""Model files: ``save`` and ``load``.

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
    the layout (parameter key and size) of its state vectors
    (:mod:`graphnet._training_file` writes and reads it).
``optimizer.npz``
    The optimizer's state vectors (Adam's ``m`` and ``v``, ...), present when
    the optimizer has any.

Files are written atomically (a temporary file beside the target, flushed,
synced, then ``os.replace``) and deterministically: the same graph gives the
same bytes.

Loading treats the file as hostile until proven otherwise. Nothing is
unpickled and nothing named in the file is imported or called: activations,
losses, kinds, initialisers and optimizers are looked up in graphnet's own
registries. Before anything is inflated, the zip's own records, the member
names, counts, sizes and compression ratios are checked against the file and
fixed bounds (:mod:`graphnet._archive`); ``weights.npz`` is inflated before the
architecture is built, and the architecture may describe no more parameters
than its real bytes hold, so a small file cannot make graphnet allocate
gigabytes; every array's name, shape and dtype must match the architecture
and is checked from its header before its data is read. Every failure is a
:class:`~graphnet.ModelFileError` naming the file and what is wrong.
"""

from __future__ import annotations

import json
import logging
import math
import os
import struct
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ._archive import check_members, npz_bytes, open_zip, read_member, write_zip
from ._files import open_regular
from ._npz import parse_npz
from ._registry import custom_objects as custom_scope
from ._text import clip, named, reason
from ._training_file import (OPTIMIZER_MEMBER, TRAINING_MEMBER, read_json, read_waits, restore_training,
                             training_state)
from ._validation import check_int, check_path, is_int
from ._version import __version__
from .errors import GraphError, ModelFileError
from .spec import FORMAT, FORMAT_VERSION, from_dict, to_dict
from .specfile import MAX_JSON_BYTES
from .weights import refuse_non_finite

if TYPE_CHECKING:
    from .graph import Graph

__all__ = ["save", "load", "state_members", "training_state", "restore_training", "DEFAULT_MAX_BYTES",
           "WEIGHTS_MEMBER", "TRAINING_MEMBER", "OPTIMIZER_MEMBER", "GRAPH_MEMBER", "WEIGHTS_MANIFEST",
           "refuse_newer"]

logger = logging.getLogger(__name__)

GRAPH_MEMBER = "graph.json"
WEIGHTS_MEMBER = "weights.npz"
#: What marks a weights file (``save_weights``): its manifest, in place of graph.json.
WEIGHTS_MANIFEST = "weights.json"
_MEMBERS = (GRAPH_MEMBER, WEIGHTS_MEMBER, TRAINING_MEMBER, OPTIMIZER_MEMBER)
_REQUIRED = (GRAPH_MEMBER, WEIGHTS_MEMBER)
_WHAT = "a graphnet model file"

#: Default bound on the total (inflated) size of a model file's members.
DEFAULT_MAX_BYTES = 4 << 30


# ---------------------------------------------------------------------- saving
def save(graph: Graph, path: str | os.PathLike) -> Path:
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
    GraphError
        For a path that is not a str or os.PathLike, or a weight holding
        NaN or inf (which :func:`load` refuses): nothing is written then.
    OSError
        When the folder cannot be written; an existing file at ``path`` is
        then left exactly as it was.
    """
    path = check_path(path, "save: path", "the model file to write")
    with graph.lock.reading():  # the architecture, weights and optimizer of one moment, between two steps
        members = [(GRAPH_MEMBER, _json_bytes(to_dict(graph)), zipfile.ZIP_DEFLATED), *state_members(graph, "save")]

    written = write_zip(path, members)
    logger.info("%s: saved to %s", graph.name, written)
    return written


def _json_bytes(data: Any) -> bytes:
    """``data`` as the JSON a model file holds.

    Raises
    ------
    GraphError
        Naming where ``data`` holds NaN or inf, which JSON cannot (a custom
        part's config may).
    """
    try:
        return json.dumps(data, indent=1, allow_nan=False).encode("utf-8")
    except ValueError:
        where, value = _non_finite(data, "")
        raise GraphError(f"save: {where.lstrip('.')} is {value}; a model file holds finite numbers only") from None


def _non_finite(data: Any, where: str) -> tuple[str, float] | tuple[None, None]:
    """Where in ``data`` (a path like ``nodes[1].activation.alpha``) the first NaN or inf is, and it."""
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, (list, tuple)) else ()
    for key, value in items:
        at = f"{where}.{key}" if isinstance(key, str) else f"{where}[{key}]"
        if isinstance(value, float) and not math.isfinite(value):
            return at, value
        found = _non_finite(value, at)
        if found[0] is not None:
            return found
    return None, None


def state_members(graph: Graph, where: str) -> list[tuple[str, bytes, int]]:
    """The members that hold the graph's state (weights, random streams,
    optimizer), as ``(name, bytes, compression)``; the caller holds the
    graph's read lock, so they are of one moment. NaN or inf, which loading
    refuses, is a GraphError naming ``where`` (the writer) and the arrays."""
    training, slots = training_state(graph)
    weights = graph.get_weights()
    refuse_non_finite(weights, where)
    if slots is not None:
        refuse_non_finite(slots, where, "optimizer state", "give the graph a fresh optimizer (compile) first")
    members = [
        (WEIGHTS_MEMBER, npz_bytes(weights), zipfile.ZIP_STORED),
        (TRAINING_MEMBER, _json_bytes(training), zipfile.ZIP_DEFLATED),
    ]
    if slots is not None:
        members.append((OPTIMIZER_MEMBER, npz_bytes(slots), zipfile.ZIP_STORED))
    return members


def _parameter_shapes(graph: Graph) -> dict[str, tuple[int, ...]]:
    """Every parameter's key and shape, without copying any weight."""
    return {record.key: record.shape for record in graph.parameters()}



# --------------------------------------------------------------------- loading
def load(path: str | os.PathLike | BinaryIO, *, max_bytes: int = DEFAULT_MAX_BYTES, custom_objects=None) -> Graph:
    """Read a model file written by :func:`save`.

    Parameters
    ----------
    path : str, PathLike or binary file object
    max_bytes : int
        Refuse files whose members add up to more than this once inflated
        (4 GiB by default).
    custom_objects : dict name -> class, optional
        The custom activations and losses the file names (``{"cube":
        Cube}``), found by these names for this load only; ``gn.register``
        makes them known everywhere instead. Nothing named in the file is
        ever imported: only these classes and the registered ones are used.

    Returns
    -------
    Graph or Sequential
        Predicting bit for bit as the saved graph did; ``fit`` continues with
        the saved optimizer state and random streams.

    Raises
    ------
    ModelFileError
        For a missing, unreadable, truncated, oversized, malformed or hostile
        file: the message names the file and what is wrong. A file naming a
        custom part that is neither registered nor in ``custom_objects``
        says so.
    GraphError
        For ``custom_objects`` that is not a dict of names to custom classes,
        or ``max_bytes`` that is not a positive integer.
    """
    max_bytes = check_int(max_bytes, "load: max_bytes")
    label = _label(path)
    with custom_scope(custom_objects):  # a bad mapping is the caller's error, not the file's
        return _read(path, label, max_bytes)


def _read(path, label: str, max_bytes: int):
    """:func:`load`'s work, every failure a ModelFileError naming the file."""
    try:
        if isinstance(path, (str, os.PathLike)):
            with open_regular(os.fspath(path), None, "a graphnet model file", "load: path") as handle:
                return _load(handle, label, max_bytes)
        if not hasattr(path, "read"):
            raise ModelFileError(
                f"load expects a path or a binary file object, got {type(path).__name__}"
            )
        return _load(path, label, max_bytes)
    except ModelFileError:
        raise
    except GraphError as exc:
        raise ModelFileError(f"{label}: {exc}") from exc.__cause__  # what the refusal came from, if anything
    except FileNotFoundError:
        raise ModelFileError(f"{label}: no such file") from None
    except OSError as exc:
        raise ModelFileError(f"{label}: cannot be read ({reason(exc)})") from exc
    except (zipfile.BadZipFile, zlib.error, EOFError, struct.error) as exc:
        raise ModelFileError(f"{label}: damaged zip archive ({clip(str(exc) or type(exc).__name__)})") from None
    except MemoryError as exc:  # the file's sizes are bounded by its bytes: the machine ran out, not the file
        raise ModelFileError(f"{label}: ran out of memory while loading it") from exc
    except (ValueError, KeyError, TypeError, IndexError, NotImplementedError, RuntimeError,
            OverflowError, RecursionError) as exc:
        raise ModelFileError(
            f"{label}: not a readable graphnet model file ({type(exc).__name__}: {clip(str(exc))})"
        ) from None


def _label(path) -> str:
    if isinstance(path, (str, os.PathLike)):
        return named(os.fspath(path))
    return named(getattr(path, "name", "<model file>"))


def _load(handle: BinaryIO, label: str, max_bytes: int):
    with open_zip(handle, label, _WHAT, len(_MEMBERS)) as archive:
        names = {info.filename for info in archive.infolist()}
        if WEIGHTS_MANIFEST in names and GRAPH_MEMBER not in names:
            raise ModelFileError(f"{label}: a graphnet weights file (written by save_weights), which holds no "
                                 "architecture: build the graph, then call g.load_weights(path)")
        infos = check_members(archive, label, _MEMBERS, _REQUIRED, max_bytes, MAX_JSON_BYTES, _WHAT)
        data = read_json(archive, infos[GRAPH_MEMBER], label)
        _check_format(data, label)
        # Inflate the weights first: the architecture may then describe at most
        # as many parameters as their real bytes hold, whatever the headers claim.
        weights_info = infos[WEIGHTS_MEMBER]
        weights_where = f"{label}: {WEIGHTS_MEMBER}"
        raw_weights = read_member(archive, weights_info, weights_where)
        itemsize = 8 if isinstance(data, Mapping) and data.get("dtype") == "float64" else 4
        try:
            graph = from_dict(None, data, max_params=len(raw_weights) // itemsize)
        except GraphError as exc:
            raise ModelFileError(f"{label}: {GRAPH_MEMBER}: {exc}") from exc.__cause__
        shapes = _parameter_shapes(graph)
        arrays = parse_npz(raw_weights, shapes, graph.dtype, weights_where, GRAPH_MEMBER)
        del raw_weights
        training = read_json(archive, infos[TRAINING_MEMBER], label) if TRAINING_MEMBER in infos else None
        waits = read_waits(graph, training, label)
        graph.set_weights({key: array for key, array in arrays.items() if key not in waits})
        graph.lazy_init.resume(graph, waits)
        if training is not None:
            restore_training(graph, archive, infos, label, training)
        elif OPTIMIZER_MEMBER in infos:
            raise ModelFileError(f"{label}: has {OPTIMIZER_MEMBER} but no {TRAINING_MEMBER} to describe it")
    logger.debug("%s: loaded %r", label, graph)
    return graph


def _check_format(data: Any, label: str) -> None:
    """A clearer message than the spec's for files that are not ours or too new."""
    if not isinstance(data, Mapping):
        raise ModelFileError(f"{label}: {GRAPH_MEMBER} must hold a JSON object, found {type(data).__name__}")
    if data.get("format") != FORMAT:
        raise ModelFileError(
            f"{label}: {GRAPH_MEMBER} has format {data.get('format')!r}, expected {FORMAT!r}"
        )
    refuse_newer(data, label)


def refuse_newer(data: Mapping, label: str, newest: int = FORMAT_VERSION) -> None:
    """Refuse a file whose ``format_version`` is later than ``newest`` (what
    this graphnet writes), saying which graphnet wrote it; a version that is
    no positive integer is refused too (an absent one is the first).

    Raises
    ------
    ModelFileError
        Naming the file (``label``) and both versions.
    """
    version = data.get("format_version", 1)
    if not is_int(version, 1):
        raise ModelFileError(f"{label}: format_version must be a positive integer, found {clip(repr(version))}")
    if version > newest:
        writer = data.get("graphnet_version")
        writer = f"graphnet {writer}" if isinstance(writer, str) else "a newer graphnet"
        raise ModelFileError(
            f"{label}: written by {writer[:40]} in format version {version}; this graphnet "
            f"({__version__}) reads format version {newest} and older. Upgrade graphnet "
            f"to load it"
        )
