"""Reading what ``gn.from_keras`` is given: a ``.keras`` file, a legacy ``.h5``
file, a Keras model object or a ``to_json()`` string.

Files are read with h5py and ``zipfile`` only: Keras is not imported, nothing
named in a file is imported or run, and every read is bounded by the bytes
present.

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
import json
import os
import re
import sys
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import ModelFileError, ModelImportError
from ._builder import require

__all__ = ["Source", "read"]

_MAX_CONFIG_BYTES = 32 << 20
_MAX_WEIGHTS_BYTES = 4 << 30
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

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
        try:
            config = json.loads(obj)
        except ValueError as exc:
            raise ModelImportError(f"keras JSON: not valid JSON ({exc})") from None
        version = config.get("keras_version") if isinstance(config, Mapping) else None
        return config, None, "keras JSON", _major(version)
    if isinstance(obj, (str, os.PathLike)):
        return _read_file(os.fspath(obj))
    if hasattr(obj, "to_json") and hasattr(obj, "layers"):
        label = f"keras model {getattr(obj, 'name', '?')!r}"
        try:
            config = json.loads(obj.to_json())
        except Exception as exc:  # subclassed models raise NotImplementedError, and others
            raise ModelImportError(
                f"{label} has no readable config ({type(exc).__name__}: {exc}); subclassed "
                f"models cannot be imported: rebuild it as a Sequential or Functional model"
            ) from None
        weights = {layer.name: [np.asarray(w) for w in layer.get_weights()] for layer in obj.layers}
        library = sys.modules.get(type(obj).__module__.split(".")[0])
        return config, weights, label, _major(getattr(library, "__version__", None))
    raise ModelImportError(
        f"from_keras expects a .keras or .h5 file, a Keras model or a to_json() string, "
        f"got {type(obj).__name__}"
    )


def _major(version) -> int:
    """Keras's major version from ``"2.15.0"``; 3 when unknown."""
    match = re.match(r"\s*(\d+)\.", version) if isinstance(version, str) else None
    return int(match.group(1)) if match else 3


def _read_file(path: str) -> Source:
    h5py = require("h5py", "reading a Keras file")
    try:
        with open(path, "rb") as handle:
            magic = handle.read(len(_HDF5_MAGIC))
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot be read ({exc})") from None
    try:
        if magic == _HDF5_MAGIC:
            return _read_h5(h5py, path)
        return _read_keras(h5py, path)
    except (ModelFileError, ModelImportError):
        raise
    except (OSError, zipfile.BadZipFile, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelFileError(
            f"{path}: not a readable .keras or .h5 model file ({type(exc).__name__}: {exc})"
        ) from None


# ------------------------------------------------------------------ .keras
def _read_keras(h5py, path: str) -> Source:
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        if "config.json" not in names or "model.weights.h5" not in names:
            raise ModelFileError(
                f"{path}: a .keras file holds config.json and model.weights.h5; found "
                f"{sorted(names)[:10]}"
            )
        config_raw = _member(archive, "config.json", _MAX_CONFIG_BYTES, path)
        weights_raw = _member(archive, "model.weights.h5", _MAX_WEIGHTS_BYTES, path)
        metadata = {}
        if "metadata.json" in names:
            metadata = json.loads(_member(archive, "metadata.json", _MAX_CONFIG_BYTES, path).decode("utf-8"))
    config = json.loads(config_raw.decode("utf-8"))
    with h5py.File(io.BytesIO(weights_raw), "r") as h5:
        stored = _h5_layers(h5)
    version = metadata.get("keras_version") if isinstance(metadata, Mapping) else None
    return config, _match_weights(config, stored), path, _major(version)


def _member(archive: zipfile.ZipFile, name: str, limit: int, path: str) -> bytes:
    info = archive.getinfo(name)
    if info.file_size > limit:
        raise ModelFileError(f"{path}: {name} is {info.file_size:,} bytes, more than {limit:,}")
    with archive.open(info) as handle:
        return handle.read(limit + 1)


def _h5_layers(h5) -> dict[str, tuple[str | None, list[np.ndarray]]]:
    """Group path -> (layer name recorded in the file, arrays ``vars/0``, ``vars/1``, ...)."""
    found = {}
    layers = h5.get("layers")
    if layers is None:
        return found
    for group_name, group in layers.items():
        variables = group.get("vars")
        if variables is None:
            continue
        recorded = _text(variables.attrs.get("name"))
        keys = sorted((k for k in variables if k.isdigit()), key=int)
        found[group_name] = (recorded, [_dataset(variables[k]) for k in keys])
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
def _read_h5(h5py, path: str) -> Source:
    with h5py.File(path, "r") as h5:
        raw = h5.attrs.get("model_config")
        if raw is None:
            what = "weights only (save_weights)" if "layer_names" in h5.attrs else "no model_config"
            raise ModelFileError(
                f"{path}: this HDF5 file holds {what}, not a whole model; save the model "
                f"with model.save(...) to import it"
            )
        config_text = _text(raw)
        if config_text is None or len(config_text) > _MAX_CONFIG_BYTES:
            raise ModelFileError(f"{path}: model_config is not a JSON text of at most {_MAX_CONFIG_BYTES:,} bytes")
        config = json.loads(config_text)
        version = _text(h5.attrs.get("keras_version"))
        group = h5.get("model_weights")
        weights = {} if group is None else _h5_weights(group)
    return config, weights, path, _major(version)


def _h5_weights(group) -> dict[str, list[np.ndarray]]:
    """Layer name -> arrays in ``weight_names`` order (Keras's legacy layout)."""
    result = {}
    for layer in _attribute_list(group, "layer_names"):
        layer_group = group.get(layer)
        if layer_group is None:
            continue
        names = _attribute_list(layer_group, "weight_names")
        result[layer] = [_dataset(layer_group[name]) for name in names]
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


def _dataset(dataset) -> np.ndarray:
    """A stored array, refused unless it is a plain float array (no object
    or compound types: nothing to unpickle or interpret) no larger than the
    file holding it: Keras stores weights uncompressed, and a header claiming
    more than the file's bytes would otherwise be filled in memory."""
    if not hasattr(dataset, "dtype") or dataset.dtype.kind != "f":
        raise ModelFileError(f"{getattr(dataset, 'name', '?')}: expected a float array, found "
                             f"{getattr(dataset, 'dtype', type(dataset).__name__)}")
    available = dataset.file.id.get_filesize()
    claimed = int(np.prod(dataset.shape, dtype=object)) * dataset.dtype.itemsize
    if claimed > available:
        raise ModelFileError(f"{dataset.name}: claims {claimed:,} bytes in a file of {available:,}")
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
