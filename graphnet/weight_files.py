"""Weights files: ``save_weights`` and ``load_weights`` (Keras's names).

A weights file holds what a model file (:mod:`graphnet.saving`) holds but
the architecture: ``weights.json`` (format name and version, the graph's
name and dtype), ``weights.npz``, and the training state
(``training.json``: random streams, optimizer settings and iteration count;
``optimizer.npz``: its state vectors), as Keras 3's ``.weights.h5`` keeps
the optimizer's variables. ``.weights.gnet`` is the suggested extension.

``load_weights`` reads one into a graph of the same architecture, and also
reads a whole model file (``Graph.save``) or a plain ``.npz`` of arrays
keyed like ``Graph.get_weights()`` (``ModelCheckpoint("w.npz")``). Files
are read as hostile, as model files are: nothing is unpickled, sizes are
checked against the graph before anything is inflated, and a refused file
changes nothing.
"""

from __future__ import annotations

import io
import json
import logging
import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ._archive import check_members, open_zip, read_member, write_zip
from ._files import open_regular
from ._npz import parse_npz
from ._text import clip, named, preview, reason, shown
from ._validation import check_int, check_path
from ._version import __version__
from .errors import GraphError, ModelFileError
from ._training_file import OPTIMIZER_MEMBER, TRAINING_MEMBER, read_json, read_waits, restore_training
from .saving import (DEFAULT_MAX_BYTES, GRAPH_MEMBER, WEIGHTS_MANIFEST, WEIGHTS_MEMBER, refuse_newer,
                     state_members)
from .spec import FORMAT_VERSION as MODEL_FORMAT_VERSION
from .specfile import MAX_JSON_BYTES, parse_json

if TYPE_CHECKING:
    from .graph import Graph

__all__ = ["save_weights", "load_weights", "WEIGHTS_FORMAT"]

logger = logging.getLogger(__name__)

WEIGHTS_FORMAT = "graphnet-weights"
FORMAT_VERSION = 1
MANIFEST = WEIGHTS_MANIFEST
_MEMBERS = (MANIFEST, WEIGHTS_MEMBER, TRAINING_MEMBER, OPTIMIZER_MEMBER)
_MODEL_MEMBERS = (GRAPH_MEMBER, WEIGHTS_MEMBER, TRAINING_MEMBER, OPTIMIZER_MEMBER)


def save_weights(graph: Graph, path: str | os.PathLike) -> Path:
    """Write the graph's weights, optimizer state and random streams (not
    its architecture) to ``path``, atomically.

    Parameters
    ----------
    path : str or PathLike
        ``.weights.gnet`` is the suggested extension.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    GraphError
        For a path that is not a str or os.PathLike, or a weight holding
        NaN or inf (which :func:`load_weights` refuses): nothing is written then.
    OSError
        When the folder cannot be written; a file already at ``path`` is
        then left as it was.
    """
    path = check_path(path, "save_weights: path", "the weights file to write")
    manifest = {"format": WEIGHTS_FORMAT, "format_version": FORMAT_VERSION, "graphnet_version": __version__,
                "graph": graph.name, "dtype": graph.dtype.name}
    with graph.lock.reading():  # the weights and optimizer of one moment, between two steps
        members = [(MANIFEST, json.dumps(manifest, indent=1).encode(), zipfile.ZIP_DEFLATED),
                   *state_members(graph, "save_weights")]
    written = write_zip(path, members)
    logger.info("%s: weights saved to %s", graph.name, written)
    return written


def load_weights(graph: Graph, path: str | os.PathLike, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
    """Set the graph's weights from a file of the same architecture: a
    weights file (:func:`save_weights`), a model file (``Graph.save``), or an
    ``.npz`` of arrays keyed like ``get_weights()``. The optimizer state and
    random streams are restored too when the file holds them, so ``fit``
    continues where the saved graph stopped.

    A weights file holds no vocabulary and no statistics: its tables' rows
    are bound by position, so a graph whose inputs were adapted to other
    categories (or the same in another order) gets rows of other
    categories. Vocabularies and statistics live in ``save`` files.

    Parameters
    ----------
    path : str or PathLike
    max_bytes : int
        Refuse files whose members add up to more than this once inflated.

    Raises
    ------
    ModelFileError
        For a missing, unreadable or hostile file, or weights that do not
        fit the graph (names, shapes or dtype; the message says which); the
        graph is then left as it was.
    """
    check_path(path, "load_weights: path", "the weights file to read")
    max_bytes = check_int(max_bytes, "load_weights: max_bytes")
    label = named(os.fspath(path))
    try:
        with open_regular(os.fspath(path), None, "a weights file") as handle:
            _load(graph, handle, label, max_bytes)
    except ModelFileError:
        raise
    except GraphError as exc:
        raise ModelFileError(f"{label}: {exc}") from exc.__cause__  # what the refusal came from, if anything
    except FileNotFoundError:
        raise ModelFileError(f"{label}: no such file") from None
    except OSError as exc:
        raise ModelFileError(f"{label}: cannot be read ({reason(exc)})") from exc
    except MemoryError as exc:  # the file's sizes are bounded by its bytes: the machine ran out, not the file
        raise ModelFileError(f"{label}: ran out of memory while loading it") from exc
    except (zipfile.BadZipFile, zlib.error, EOFError, struct.error, ValueError, KeyError, TypeError,
            IndexError, NotImplementedError, RuntimeError, OverflowError, RecursionError) as exc:
        raise ModelFileError(f"{label}: not a readable weights file ({type(exc).__name__}: "
                             f"{clip(str(exc))})") from None
    logger.info("%s: weights loaded from %s", graph.name, label)


def _load(graph: Graph, handle: BinaryIO, label: str, max_bytes: int) -> None:
    shapes = {record.key: record.shape for record in graph.parameters()}
    with open_zip(handle, label, "a graphnet weights file", len(_MODEL_MEMBERS) + len(shapes)) as archive:
        names = {info.filename for info in archive.infolist()}
        if WEIGHTS_MEMBER not in names and MANIFEST not in names and GRAPH_MEMBER not in names:
            handle.seek(0, io.SEEK_END)
            if handle.tell() > max_bytes:
                raise ModelFileError(f"{label}: {handle.tell():,} bytes, more than max_bytes={max_bytes:,}")
            handle.seek(0)
            arrays = parse_npz(handle.read(), shapes, graph.dtype, label, f"graph {graph.name!r}")
            graph.set_weights(arrays)
            return
        allowed = _MODEL_MEMBERS if GRAPH_MEMBER in names else _MEMBERS
        infos = check_members(archive, label, allowed, (WEIGHTS_MEMBER,), max_bytes, MAX_JSON_BYTES,
                              "a graphnet weights file")
        describing = GRAPH_MEMBER if GRAPH_MEMBER in infos else MANIFEST
        if describing in infos:
            _check_header(graph, archive, infos[describing], label)
        if OPTIMIZER_MEMBER in infos and TRAINING_MEMBER not in infos:
            raise ModelFileError(f"{label}: has {OPTIMIZER_MEMBER} but no {TRAINING_MEMBER} to describe it")
        state = read_json(archive, infos[TRAINING_MEMBER], label) if TRAINING_MEMBER in infos else None
        waits = _waits(graph, state, label)
        where = f"{label}: {WEIGHTS_MEMBER}"
        arrays = parse_npz(read_member(archive, infos[WEIGHTS_MEMBER], where), shapes, graph.dtype, where,
                           f"graph {graph.name!r}")
        with graph.lock.writing():  # weights and training state land together, between two steps
            before, seeds = graph.get_weights(), graph.lazy_init.vocabulary_waits(graph)
            graph.set_weights({k: v for k, v in arrays.items() if k not in waits})  # checks every value first
            try:
                if state is not None:
                    restore_training(graph, archive, infos, label, state)  # checks everything before any change
                graph.lazy_init.resume(graph, waits)  # the file's draws, once adapt sets the tables' rows
            except BaseException:  # a refusal, no memory, Ctrl-C: the weights go back too
                graph.set_weights(before)
                graph.lazy_init.resume(graph, seeds)
                raise


def _waits(graph: Graph, state, label: str) -> dict[str, str | None]:
    """The weights the file keeps waiting for a vocabulary (saved before
    ``adapt``), with their seeds: they wait in the graph too, where they go on
    waiting with the file's seeds.

    Raises
    ------
    ModelFileError
        When the graph no longer waits for them (it was adapted), or the
        entry is malformed.
    """
    saved = state.get("waiting") if isinstance(state, dict) else None
    if saved and isinstance(saved, dict):
        gone = sorted(set(saved) - set(graph.lazy_init.vocabulary_waits(graph)))
        if gone:
            raise ModelFileError(
                f"{label}: its weights {preview(gone)} were saved before adapt and still wait for a vocabulary "
                f"(an input with categories='adapt'), but in graph {graph.name!r} they do not wait: its input "
                "has its vocabulary already (adapted, or given as a list); load the file into a graph whose "
                "input still waits to be adapted, or save the weights after adapt")
    return read_waits(graph, state, label)


def _check_header(graph: Graph, archive, info, label: str) -> None:
    """The file's format version must be one this graphnet reads, and its dtype
    the graph's: weights are read as they are."""
    where = f"{label}: {info.filename}"
    try:
        data = parse_json(read_member(archive, info, where))
    except ValueError as exc:
        raise ModelFileError(f"{where} is not valid JSON ({clip(str(exc))})") from None
    if not isinstance(data, dict):
        raise ModelFileError(f"{where}: expected a JSON object, found {type(data).__name__}")
    if info.filename == MANIFEST and data.get("format") != WEIGHTS_FORMAT:
        raise ModelFileError(f"{where}: format {shown(data.get('format'))}, expected {WEIGHTS_FORMAT!r}")
    refuse_newer(data, label, FORMAT_VERSION if info.filename == MANIFEST else MODEL_FORMAT_VERSION)
    dtype = data.get("dtype", "float32")
    if dtype != graph.dtype.name:
        raise ModelFileError(f"{label}: its weights are {shown(dtype)} but graph {graph.name!r} is "
                             f"{graph.dtype.name}; convert the graph (or the file's graph) first")
