"""Reading what ``gn.from_keras`` is given: a ``.keras`` file, a legacy ``.h5``
file, a Keras model object or a ``to_json()`` string.

Files are read with h5py and ``zipfile`` only: Keras is not imported, nothing
named in a file is imported or run, and every read is bounded by the bytes
present. A file must be a regular file (not a pipe or a device); a ``.keras``
archive is opened through :mod:`graphnet._archive`, as ``gn.load`` opens a
model file (its directory checked against the file, each member's inflated
size bounded by its compressed bytes); every JSON text goes through
:func:`graphnet.specfile.parse_json` (strict, nesting bounded). Inside HDF5,
only hard links are followed, and only arrays whose bytes lie in the file
itself are read: external storage, virtual datasets, external and soft links
would read other files (or silently give zeros), and Keras writes none.

``.keras`` (Keras 3)
    A zip of ``config.json``, ``metadata.json`` (``keras_version``) and
    ``model.weights.h5``, whose ``layers/<group>/vars/0, 1, ...`` hold each
    layer's arrays (the group named after the layer's class, with the layer's
    name recorded as the ``vars`` group's ``name`` attribute).
``.h5`` (Keras 2, and Keras 3's legacy writer)
    The root's attributes hold ``keras_version``, ``backend`` and
    ``model_config`` (the model's JSON). ``model_weights`` has the attribute
    ``layer_names`` and one group per layer whose ``weight_names`` attribute
    lists its arrays in order (``dense/kernel:0`` in Keras 2,
    ``dense/kernel`` in Keras 3), each stored at that path inside the layer's
    group. A long attribute may be split into ``layer_names0``,
    ``layer_names1``, ... (HDF5's header limit).
"""

from __future__ import annotations

import io
import os
import re
import struct
import sys
import warnings
import zipfile
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from .._text import clip, shown
from .._archive import ARCHIVE_SLACK, check_members, open_zip, read_member
from ..errors import ModelFileError, ModelImportError
from .._files import open_regular
from ..specfile import MAX_JSON_BYTES, parse_json
from ._guards import out_of_memory, require

__all__ = ["Source", "layer_name", "read"]

_MAX_WEIGHTS_BYTES = 4 << 30
_MAX_FILE_BYTES = _MAX_WEIGHTS_BYTES + 2 * MAX_JSON_BYTES + ARCHIVE_SLACK
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_CONFIG, _METADATA, _WEIGHTS = "config.json", "metadata.json", "model.weights.h5"
_WHAT = "a Keras model file (.keras or .h5)"
# HDF5's H5D_layout_t: the layouts whose bytes lie in the file, in one piece.
_COMPACT, _CONTIGUOUS, _VIRTUAL = 0, 1, 3

#: (model config, layer name -> arrays or None, description, Keras major version)
Source = tuple[Any, "dict[str, list[np.ndarray]] | None", str, int]


def read(obj) -> Source:
    """What ``obj`` holds; see the module notes.

    Raises
    ------
    ModelImportError
        For an object that is no Keras model, or bad JSON.
    ModelFileError
        For a file that cannot be read.
    """
    if isinstance(obj, str) and obj.lstrip().startswith("{"):
        config = _json(obj, "keras JSON", ModelImportError)
        version = config.get("keras_version") if isinstance(config, Mapping) else None
        return config, None, "keras JSON", _major(version)
    if isinstance(obj, (str, os.PathLike)):
        return _read_file(obj)
    if hasattr(obj, "to_json") and hasattr(obj, "layers"):
        label = f"keras model {shown(getattr(obj, 'name', '?'), 60)}"
        with out_of_memory(label):
            try:
                text = obj.to_json()
            except MemoryError:
                raise
            except Exception as exc:  # subclassed models raise NotImplementedError, and others
                raise ModelImportError(
                    f"{label} has no readable config ({type(exc).__name__}: {clip(str(exc))}); subclassed "
                    f"models cannot be imported: rebuild it as a Sequential or Functional model"
                ) from None
            config = _json(text, label, ModelImportError)
            with warnings.catch_warnings():  # Keras's torch backend converts its variables the way numpy 2 deprecates
                warnings.filterwarnings("ignore", "__array__ implementation doesn't accept a copy keyword",
                                        DeprecationWarning)
                weights = {layer.name: [np.asarray(w) for w in layer.get_weights()] for layer in obj.layers}
        library = sys.modules.get(type(obj).__module__.split(".")[0])
        return config, weights, label, _major(getattr(library, "__version__", None))
    raise ModelImportError(
        f"from_keras expects a .keras or .h5 file, a Keras model or a to_json() string, "
        f"got {type(obj).__name__}"
    )


def _json(text, where: str, error: type[Exception]) -> Any:
    """``text`` (str or bytes) parsed by graphnet's one bounded JSON reader."""
    try:
        raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        return parse_json(raw)
    except ValueError as exc:  # UnicodeError and JSONDecodeError too
        raise error(f"{where}: not valid JSON ({clip(str(exc))})") from None


def _major(version) -> int:
    """Keras's major version from ``"2.15.0"``; 3 when unknown."""
    match = re.match(r"\s*(\d+)\.", version) if isinstance(version, str) else None
    return int(match.group(1)) if match else 3


def _read_file(obj) -> Source:
    try:
        path = os.fsdecode(obj)
    except (TypeError, ValueError):  # a PathLike whose __fspath__ returns neither str nor bytes
        raise ModelImportError(f"from_keras: obj is a {type(obj).__name__} that names no path") from None
    h5py = require("h5py", "reading a Keras file")
    with open_regular(path, _MAX_FILE_BYTES, _WHAT, "from_keras: obj") as handle:
        try:
            magic = handle.read(len(_HDF5_MAGIC))
            handle.seek(0)
            if magic == _HDF5_MAGIC:
                return _read_h5(h5py, handle, path)
            return _read_keras(h5py, handle, path)
        except (ModelFileError, ModelImportError):
            raise
        except MemoryError as exc:  # sizes are bounded by the file's bytes: the machine ran out, not the file
            raise ModelFileError(f"{path}: ran out of memory while reading it") from exc
        except (OSError, zipfile.BadZipFile, zlib.error, EOFError, struct.error, ValueError, KeyError,
                TypeError, AttributeError, IndexError, RuntimeError, OverflowError, RecursionError) as exc:
            raise ModelFileError(
                f"{path}: not a readable .keras or .h5 model file ({type(exc).__name__}: {clip(str(exc))})"
            ) from None


# ------------------------------------------------------------------ .keras
def _read_keras(h5py, handle, path: str) -> Source:
    members = (_CONFIG, _METADATA, _WEIGHTS)
    with open_zip(handle, path, _WHAT, len(members)) as archive:
        # Every member is checked against its compressed bytes (a zip bomb is
        # refused before inflating); the weights' own bound is checked below.
        infos = check_members(archive, path, members, (), sys.maxsize, MAX_JSON_BYTES, "a .keras file")
        missing = [name for name in (_CONFIG, _WEIGHTS) if name not in infos]
        if missing:
            raise ModelFileError(f"{path}: a .keras file holds {_CONFIG} and {_WEIGHTS}; "
                                 f"{' and '.join(missing)} missing")
        if infos[_WEIGHTS].file_size > _MAX_WEIGHTS_BYTES:
            raise ModelFileError(f"{path}: {_WEIGHTS} is {infos[_WEIGHTS].file_size:,} bytes, more than "
                                 f"the limit of {_MAX_WEIGHTS_BYTES:,}")
        config = _json(read_member(archive, infos[_CONFIG], f"{path}: {_CONFIG}"), f"{path}: {_CONFIG}",
                       ModelFileError)
        metadata = {}
        if _METADATA in infos:
            where = f"{path}: {_METADATA}"
            metadata = _json(read_member(archive, infos[_METADATA], where), where, ModelFileError)
        weights_raw = read_member(archive, infos[_WEIGHTS], f"{path}: {_WEIGHTS}")
    with h5py.File(io.BytesIO(weights_raw), "r") as h5:
        stored = _h5_layers(h5py, h5, f"{path}: {_WEIGHTS}")
    version = metadata.get("keras_version") if isinstance(metadata, Mapping) else None
    return config, _match_weights(config, stored), path, _major(version)


def _h5_layers(h5py, h5, where: str) -> dict[str, tuple[str | None, list[np.ndarray]]]:
    """Group path -> (layer name recorded in the file, arrays ``vars/0``, ``vars/1``, ...)."""
    found = {}
    layers = _child(h5py, h5, "layers", h5py.Group, where)
    if layers is None:
        return found
    for group_name in layers:  # names only: nothing is opened through a link
        group = _child(h5py, layers, group_name, h5py.Group, where)
        variables = _child(h5py, group, "vars", h5py.Group, where)
        if variables is None:
            continue
        recorded = _text(variables.attrs.get("name"))
        keys = sorted((k for k in variables if k.isdigit()), key=int)
        found[group_name] = (recorded, [_dataset(_child(h5py, variables, k, h5py.Dataset, where), where)
                                        for k in keys])
    return found


def _match_weights(config, stored) -> dict[str, list[np.ndarray]]:
    """Layer name -> arrays. Keras 3 names the groups after each layer's class
    (``dense``, ``dense_1``, ... in layer order) and records the layer name as
    an attribute; use the attribute and fall back to the class-name scheme."""
    inner = config.get("config") if isinstance(config, Mapping) else None
    layers = inner.get("layers") if isinstance(inner, Mapping) else None
    if not isinstance(layers, list):
        return {}
    by_name = {recorded: arrays for recorded, arrays in stored.values() if recorded}
    sequential = config.get("class_name") == "Sequential"
    used: dict[str, int] = {}
    result = {}
    for layer in layers:
        if not isinstance(layer, Mapping):
            continue
        cls, name = layer.get("class_name"), layer_name(layer)
        if sequential and cls == "InputLayer":
            continue
        group = _snake(str(cls))
        if group in used:
            used[group] += 1
            group = f"{group}_{used[group]}"
        else:
            used[group] = 0
        if name in by_name:
            result[name] = by_name[name]
        elif group in stored:
            result[name] = stored[group][1]
    return result


def _snake(name: str) -> str:
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


# --------------------------------------------------------------------- .h5
def _read_h5(h5py, handle, path: str) -> Source:
    with h5py.File(handle, "r") as h5:
        raw = h5.attrs.get("model_config")
        if raw is None:
            what = "weights only (save_weights)" if "layer_names" in h5.attrs else "no model_config"
            raise ModelFileError(
                f"{path}: this HDF5 file holds {what}, not a whole model; save the model "
                f"with model.save(...) to import it"
            )
        config_text = _text(raw)
        if config_text is None or len(config_text) > MAX_JSON_BYTES:
            raise ModelFileError(f"{path}: model_config is not a JSON text of at most {MAX_JSON_BYTES:,} bytes")
        config = _json(config_text, f"{path}: model_config", ModelFileError)
        version = _text(h5.attrs.get("keras_version"))
        group = _child(h5py, h5, "model_weights", h5py.Group, path)
        if group is None:
            raise ModelFileError(
                f"{path}: has a model_config but no model_weights group, so no weights; save the "
                f"model with model.save(...), or import its architecture alone with model.to_json()"
            )
        weights = _h5_weights(h5py, group, path)
    return config, weights, path, _major(version)


def _h5_weights(h5py, group, where: str) -> dict[str, list[np.ndarray]]:
    """Layer name -> arrays in ``weight_names`` order (Keras's legacy layout).
    A layer listed without a group is left out: the converters refuse a layer
    that needs weights and has none."""
    result = {}
    for layer in _attribute_list(group, "layer_names"):
        layer_group = _child(h5py, group, layer, h5py.Group, where)
        if layer_group is None:
            continue
        names = _attribute_list(layer_group, "weight_names")
        arrays = []
        for name in names:
            dataset = _child(h5py, layer_group, name, h5py.Dataset, where)
            if dataset is None:
                raise ModelFileError(f"{where}: {layer_group.name}: weight {shown(name)} is listed but not stored")
            arrays.append(_dataset(dataset, where))
        result[layer] = arrays
    return result


def _attribute_list(group, name: str) -> list[str]:
    if name in group.attrs:
        values = list(group.attrs[name])
    else:
        values, chunk = [], 0
        while f"{name}{chunk}" in group.attrs:
            values.extend(group.attrs[f"{name}{chunk}"])
            chunk += 1
    texts = [_text(v) for v in values]
    if any(t is None for t in texts):
        raise ModelFileError(f"attribute {name!r} of {group.name!r} is not a list of names")
    return texts


def _text(value) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.bytes_):
        return bytes(value).decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def _child(h5py, group, path: str, kind: type, where: str):
    """``group[path]`` (``path`` may have several parts, ``a/b``) when every
    step is a hard link, or None when a step is missing. A soft link, an
    external link or a user-defined one is refused: Keras writes none, and
    an external link would open another file."""
    node = group
    for part in path.split("/"):
        if not part or not isinstance(node, h5py.Group):
            raise ModelFileError(f"{where}: {shown(path)} in {group.name} is not a path to a group member")
        link = node.get(part, getlink=True)
        if link is None:
            return None
        if not isinstance(link, h5py.HardLink):
            if isinstance(link, h5py.ExternalLink):
                target = f"an external link to {clip(link.filename, 120)}:{clip(link.path, 120)}"
            elif isinstance(link, h5py.SoftLink):
                target = f"a soft link to {clip(link.path, 120)}"
            else:
                target = f"a link of type {type(link).__name__}"
            raise ModelFileError(
                f"{where}: {clip(node.name.rstrip('/') + '/' + part, 120)} is {target}; a Keras file keeps "
                f"its weights in itself, so graphnet follows no links"
            )
        node = node[part]
    if not isinstance(node, kind):
        raise ModelFileError(f"{where}: {clip(node.name, 120)} is a {type(node).__name__}, expected a "
                             f"{kind.__name__}")
    return node


def _dataset(dataset, where: str) -> np.ndarray:
    """A stored array, refused unless it is a plain float array (no object
    or compound types: nothing to unpickle or interpret) whose bytes all lie
    in the file itself, no more than the file holds: not in external files,
    not a virtual dataset's view of other files, not chunked (Keras writes
    neither, and filters could load plugins), and actually written (an
    unwritten array would read as its fill value, zeros)."""
    name = clip(dataset.name, 120)
    # floats; an integer only as a scalar (a Normalization's count), never as weights
    if dataset.dtype.kind != "f" and not (dataset.dtype.kind in "iu" and dataset.shape == ()):
        raise ModelFileError(f"{where}: {name}: expected a float array, found {dataset.dtype}")
    plist = dataset.id.get_create_plist()
    if plist.get_external_count():
        raise ModelFileError(
            f"{where}: {name} keeps its bytes in external file {clip(os.fsdecode(plist.get_external(0)[0]), 120)}; "
            f"graphnet reads only arrays stored in the model file itself"
        )
    layout = plist.get_layout()
    if layout == _VIRTUAL:
        raise ModelFileError(f"{where}: {name} is a virtual dataset (a view of other files); graphnet reads "
                             f"only arrays stored in the model file itself")
    if layout not in (_COMPACT, _CONTIGUOUS):
        raise ModelFileError(f"{where}: {name} is stored in chunks (HDF5 layout {layout}); Keras stores its "
                             f"weights contiguously, and graphnet reads only such arrays")
    available = dataset.file.id.get_filesize()
    claimed = int(np.prod(dataset.shape, dtype=object)) * dataset.dtype.itemsize
    if claimed > available:
        raise ModelFileError(f"{where}: {name}: claims {claimed:,} bytes in a file of {available:,}")
    stored = dataset.id.get_storage_size()
    if stored < claimed:
        raise ModelFileError(f"{where}: {name}: {stored:,} of its {claimed:,} bytes are written; the rest "
                             f"would read as zeros")
    return np.asarray(dataset[()])


def layer_name(layer: Mapping) -> str:
    """A layer config's name (Keras 3 puts it beside ``config``, Keras 2 inside too)."""
    name = layer.get("name")
    if not isinstance(name, str):
        config = layer.get("config")
        name = config.get("name") if isinstance(config, Mapping) else None
    if not isinstance(name, str) or not name:
        raise ModelImportError(f"keras layer without a name: {str(layer)[:80]}")
    return name
