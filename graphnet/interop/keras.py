"""Import Keras models: ``gn.from_keras(obj)``.

``obj`` is a ``.keras`` file (a zip of ``config.json`` and
``model.weights.h5``, read here with h5py: Keras itself is not needed and no
code in the file is run), a Keras model object, or a ``model.to_json()``
string (architecture only: weights start from their initialisers).

Supported: ``Sequential`` and ``Functional`` models of ``InputLayer``,
``Dense`` (with or without bias, any activation graphnet has), ``Activation``,
``Dropout``, ``Concatenate`` (feeding a ``Dense``, it becomes one synapse per
concatenated source, the kernel split by rows), and the activation layers
``ReLU``, ``LeakyReLU``, ``ELU``, ``Softmax``, plus ``Flatten`` and
``Identity`` (no-ops on ``(batch, features)`` data). Keras kernels are
already ``(in, out)``: nothing is transposed. Layer names carry over: inputs
and outputs keep the names Keras gives them. How activations and dropout
fold into nodes is described in :mod:`graphnet.interop._builder`.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import zipfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelFileError, ModelImportError
from ._builder import Builder, require, unexpected_as

__all__ = ["from_keras", "ACTIVATIONS", "LAYERS"]

logger = logging.getLogger(__name__)

#: Keras activation names -> graphnet activation configs. Keras's string
#: ``"leaky_relu"`` means a slope of 0.2 and ``"gelu"`` the exact form.
ACTIVATIONS: dict[str, Any] = {
    "linear": "linear",
    "relu": "relu",
    "leaky_relu": {"name": "leaky_relu", "negative_slope": 0.2},
    "elu": {"name": "elu", "alpha": 1.0},
    "gelu": {"name": "gelu", "approximate": False},
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "softplus": "softplus",
    "softmax": "softmax",
}

_INITIALIZERS = {
    "GlorotUniform": "glorot_uniform",
    "GlorotNormal": "glorot_normal",
    "HeNormal": "he_normal",
    "HeUniform": "he_uniform",
    "Zeros": "zeros",
}
_MAX_CONFIG_BYTES = 32 << 20
_MAX_WEIGHTS_BYTES = 4 << 30


@dataclass(frozen=True)
class _Concat:
    """A concatenation not (yet) turned into a node: its parts, in order."""

    parts: tuple[str, ...]


def from_keras(obj, *, loss=None, dtype: str | None = None, seed: int | None = None):
    """A Graph (or Sequential) equal to a Keras model.

    Parameters
    ----------
    obj : str, PathLike or keras.Model
        A ``.keras`` file, a Keras model, or a ``to_json()`` string.
    loss : str, dict, or dict output name -> loss, optional
        By default each output gets the loss its activation implies
        (softmax: ``categorical_crossentropy``, sigmoid:
        ``binary_crossentropy``, otherwise ``mse``).
    dtype : {"float32", "float64"}, optional
        By default float64 when every Keras weight is float64, else float32.
    seed : int, optional
        The new graph's seed (weights of a JSON import are drawn from it).

    Returns
    -------
    Graph, or Sequential for a Keras ``Sequential`` model.

    Raises
    ------
    ModelImportError
        Naming the layer and its type when something cannot be represented.
    ModelFileError
        When a ``.keras`` file cannot be read.
    """
    config, weights, origin = _read(obj)
    with unexpected_as(ModelImportError, origin):
        return _convert(config, weights, origin, loss, dtype, seed)


def _convert(config, weights, origin: str, loss, dtype, seed):
    if not isinstance(config, Mapping) or not isinstance(config.get("config"), Mapping):
        raise ModelImportError(f"{origin}: expected a Keras model config with 'class_name' and 'config'")
    kind = config.get("class_name")
    inner = config["config"]
    name = inner.get("name") if isinstance(inner.get("name"), str) else "keras_model"
    source = f"keras model {name!r}"
    if dtype is None:
        arrays = [a for arrays in (weights or {}).values() for a in arrays]
        dtype = "float64" if arrays and all(a.dtype == np.float64 for a in arrays) else "float32"
    if kind == "Sequential":
        builder, outputs = _sequential(inner, weights, source)
    elif kind in ("Functional", "Model"):
        builder, outputs = _functional(inner, weights, source)
    else:
        raise ModelImportError(
            f"{source}: a {kind!r} model cannot be imported; only Sequential and Functional "
            f"models have a config graphnet can read"
        )
    return builder.build(outputs, loss=loss, dtype=dtype, name=name,
                         sequential=kind == "Sequential", seed=seed)


# ----------------------------------------------------------------- reading
def _read(obj) -> tuple[Any, dict[str, list[np.ndarray]] | None, str]:
    """(model config, layer name -> weight arrays or None, description)."""
    if isinstance(obj, str) and obj.lstrip().startswith("{"):
        try:
            return json.loads(obj), None, "keras JSON"
        except ValueError as exc:
            raise ModelImportError(f"keras JSON: not valid JSON ({exc})") from None
    if isinstance(obj, (str, os.PathLike)):
        return _read_file(os.fspath(obj))
    if hasattr(obj, "to_json") and hasattr(obj, "layers"):
        try:
            config = json.loads(obj.to_json())
        except Exception as exc:  # subclassed models raise NotImplementedError, and others
            raise ModelImportError(
                f"keras model {getattr(obj, 'name', '?')!r} has no readable config "
                f"({type(exc).__name__}: {exc}); subclassed models cannot be imported"
            ) from None
        weights = {layer.name: [np.asarray(w) for w in layer.get_weights()] for layer in obj.layers}
        return config, weights, f"keras model {getattr(obj, 'name', '?')!r}"
    raise ModelImportError(
        f"from_keras expects a .keras file, a Keras model or a to_json() string, "
        f"got {type(obj).__name__}"
    )


def _read_file(path: str) -> tuple[Any, dict[str, list[np.ndarray]], str]:
    h5py = require("h5py", "reading a .keras file")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "config.json" not in names or "model.weights.h5" not in names:
                raise ModelFileError(
                    f"{path}: a .keras file holds config.json and model.weights.h5; found "
                    f"{sorted(names)[:10]}"
                )
            config_raw = _member(archive, "config.json", _MAX_CONFIG_BYTES, path)
            weights_raw = _member(archive, "model.weights.h5", _MAX_WEIGHTS_BYTES, path)
        config = json.loads(config_raw.decode("utf-8"))
        with h5py.File(io.BytesIO(weights_raw), "r") as h5:
            stored = _h5_layers(h5)
    except (ModelFileError, ModelImportError):
        raise
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file") from None
    except (OSError, zipfile.BadZipFile, ValueError, KeyError) as exc:
        raise ModelFileError(f"{path}: not a readable .keras file ({type(exc).__name__}: {exc})") from None
    return config, _match_weights(config, stored, path), path


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
        recorded = variables.attrs.get("name")
        if isinstance(recorded, bytes):
            recorded = recorded.decode("utf-8", "replace")
        keys = sorted((k for k in variables.keys() if k.isdigit()), key=int)
        found[group_name] = (recorded if isinstance(recorded, str) else None,
                             [np.asarray(variables[k][()]) for k in keys])
    return found


def _match_weights(config, stored, path: str) -> dict[str, list[np.ndarray]]:
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
        cls, name = layer.get("class_name"), _layer_name(layer)
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


# ------------------------------------------------------------------ models
def _layer_name(layer: Mapping) -> str:
    name = layer.get("name")
    if not isinstance(name, str):
        config = layer.get("config")
        name = config.get("name") if isinstance(config, Mapping) else None
    if not isinstance(name, str) or not name:
        raise ModelImportError(f"keras layer without a name: {str(layer)[:80]}")
    return name


def _input_size(shape, where: str) -> int:
    if not isinstance(shape, list) or len(shape) != 2 or not isinstance(shape[-1], int):
        raise ModelImportError(
            f"{where}: input shape {shape} is not (batch, features); graphnet nodes take "
            f"flat feature vectors"
        )
    return shape[-1]


def _sequential(config: Mapping, weights, source: str):
    layers = config.get("layers")
    if not isinstance(layers, list) or not layers:
        raise ModelImportError(f"{source}: has no layers")
    builder = Builder(source)
    current: str | _Concat | None = None
    first = layers[0] if isinstance(layers[0], Mapping) else {}
    if first.get("class_name") != "InputLayer":
        shape = config.get("build_input_shape")
        layer_config = first.get("config") if isinstance(first.get("config"), Mapping) else {}
        shape = shape or layer_config.get("batch_input_shape") or layer_config.get("batch_shape")
        if shape is None:
            raise ModelImportError(f"{source}: the model was never built, so its input size is unknown; "
                                   f"call model.build((None, n)) or start it with keras.Input((n,))")
        current = builder.add_input("input", _input_size(shape, source), "input")
    for layer in layers:
        if not isinstance(layer, Mapping):
            raise ModelImportError(f"{source}: a layer config is not an object: {str(layer)[:80]}")
        current = _apply(builder, layer, [current] if current is not None else [], weights, True, source)
    last = _layer_name(layers[-1])
    output = _materialise(builder, current, last)
    builder.rename(output, last)  # the output keeps the last layer's name, as in Keras
    return builder, [last]


def _functional(config: Mapping, weights, source: str):
    layers = config.get("layers")
    if not isinstance(layers, list) or not layers:
        raise ModelImportError(f"{source}: has no layers")
    inbound = {}
    for layer in layers:
        if not isinstance(layer, Mapping):
            raise ModelImportError(f"{source}: a layer config is not an object: {str(layer)[:80]}")
        name = _layer_name(layer)
        nodes = layer.get("inbound_nodes") or []
        if len(nodes) > 1:
            raise ModelImportError(
                f"{source}: layer {name!r} ({layer.get('class_name')}) is called {len(nodes)} times; "
                f"shared layers cannot be imported"
            )
        inbound[name] = _tensors(nodes[0], name, source) if nodes else []
    outputs = _endpoints(config.get("output_layers"), "output_layers", source)
    inputs = _endpoints(config.get("input_layers"), "input_layers", source)
    uses = Counter(src for sources in inbound.values() for src in sources)
    uses.update(outputs)

    builder = Builder(source)
    values: dict[str, str | _Concat] = {}
    by_name = {_layer_name(layer): layer for layer in layers}
    for name in inputs:  # inputs first, in the model's order
        if by_name.get(name, {}).get("class_name") != "InputLayer":
            raise ModelImportError(f"{source}: input {name!r} is not an InputLayer")
        values[name] = _apply(builder, by_name[name], [], weights, True, source)
    for layer in layers:
        name = _layer_name(layer)
        if name in values:
            continue
        missing = [src for src in inbound[name] if src not in values]
        if missing:
            raise ModelImportError(f"{source}: layer {name!r} reads {missing}, which are not computed before it")
        exclusive = all(uses[src] == 1 for src in inbound[name])
        values[name] = _apply(builder, layer, [values[src] for src in inbound[name]], weights,
                              exclusive, source)
    result = []
    for name in outputs:
        if name not in values:
            raise ModelImportError(f"{source}: output {name!r} is not a layer of the model")
        node = _materialise(builder, values[name], name)
        builder.rename(node, name)  # outputs keep their Keras names
        result.append(name)
    return builder, result


def _endpoints(value, field: str, source: str) -> list[str]:
    """``[["a", 0, 0], ...]`` or a single ``["a", 0, 0]`` -> layer names."""
    if isinstance(value, list) and value and isinstance(value[0], str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ModelImportError(f"{source}: config.{field} is missing or empty")
    names = []
    for item in value:
        if not (isinstance(item, list) and item and isinstance(item[0], str)):
            raise ModelImportError(f"{source}: config.{field} entry {item!r} is not [layer, node, tensor]")
        if any(i != 0 for i in item[1:3]):
            raise ModelImportError(f"{source}: {item[0]!r} has several outputs or calls; not supported")
        names.append(item[0])
    return names


def _tensors(node, layer: str, source: str) -> list[str]:
    """Names of the layers whose outputs a call reads, in argument order
    (Keras 3 ``{"args": ..., "kwargs": ...}`` and Keras 2 ``[[name, 0, 0, {}], ...]``)."""
    found: list[str] = []

    def visit(value):
        if isinstance(value, Mapping):
            if value.get("class_name") == "__keras_tensor__":
                history = (value.get("config") or {}).get("keras_history")
                if not (isinstance(history, list) and len(history) == 3 and isinstance(history[0], str)):
                    raise ModelImportError(f"{source}: layer {layer!r}: unreadable input {str(value)[:80]}")
                if history[1:] != [0, 0]:
                    raise ModelImportError(f"{source}: layer {layer!r} reads a shared layer's output")
                found.append(history[0])
            else:
                for item in value.values():
                    visit(item)
        elif isinstance(value, list):
            if len(value) >= 3 and isinstance(value[0], str) and all(isinstance(v, int) for v in value[1:3]):
                found.append(value[0])  # Keras 2: [name, node_index, tensor_index, kwargs]
            else:
                for item in value:
                    visit(item)

    if isinstance(node, Mapping):
        visit(node.get("args", []))
        kwargs = node.get("kwargs") or {}
        before = len(found)
        visit(kwargs)
        if len(found) != before:
            raise ModelImportError(f"{source}: layer {layer!r} takes tensors as keyword arguments (e.g. a mask)")
    else:
        visit(node)
    return found


# ------------------------------------------------------------------ layers
def _apply(builder: Builder, layer: Mapping, inputs: list, weights, exclusive: bool, source: str):
    """Add one layer; returns the value it computes (a node name or a _Concat)."""
    cls = layer.get("class_name")
    name = _layer_name(layer)
    config = layer.get("config") if isinstance(layer.get("config"), Mapping) else {}
    handler = LAYERS.get(cls) if isinstance(cls, str) else None
    if handler is None:
        raise ModelImportError(
            f"{source}: layer {name!r} of type {cls!r} cannot be imported; supported: {sorted(LAYERS)}"
        )
    where = f"layer {name!r} ({cls})"
    if cls != "InputLayer" and cls != "Concatenate" and len(inputs) != 1:
        raise ModelImportError(f"{source}: {where} takes {len(inputs)} inputs, expected 1")
    return handler(builder, name, config, inputs, (weights or {}).get(name), exclusive, where)


def _input_layer(builder, name, config, inputs, arrays, exclusive, where):
    shape = config.get("batch_shape", config.get("batch_input_shape"))
    if config.get("sparse") or config.get("ragged"):
        raise ModelImportError(f"{builder.source}: {where} is sparse or ragged")
    return builder.add_input(name, _input_size(shape, f"{builder.source}: {where}"), where)


def _dense(builder, name, config, inputs, arrays, exclusive, where):
    units = config.get("units")
    use_bias = config.get("use_bias", True)
    for key in ("lora_rank", "quantization_config"):
        if config.get(key):
            raise ModelImportError(f"{builder.source}: {where} uses {key}, which graphnet cannot represent")
    ignored = [k for k in ("kernel_regularizer", "bias_regularizer", "activity_regularizer",
                           "kernel_constraint", "bias_constraint") if config.get(k)]
    if ignored:
        logger.warning("%s: %s: %s ignored (graphnet has none)", builder.source, where, ", ".join(ignored))
    parts = list(inputs[0].parts) if isinstance(inputs[0], _Concat) else [inputs[0]]
    kernel = bias = None
    if arrays is not None:
        expected = 2 if use_bias else 1
        if len(arrays) != expected:
            raise ModelImportError(f"{builder.source}: {where} has {len(arrays)} weight arrays, expected {expected}")
        kernel = arrays[0]
        bias = arrays[1] if use_bias else None
        rows = sum(builder.nodes[p].size for p in parts)
        if kernel.ndim != 2 or kernel.shape[0] != rows:
            raise ModelImportError(f"{builder.source}: {where}: kernel shape {kernel.shape} does not "
                                   f"take {rows} features")
    sources, offset = [], 0
    for part in parts:  # a concatenation: one synapse per part, the kernel split by rows
        n = builder.nodes[part].size
        sources.append((part, None if kernel is None else kernel[offset : offset + n]))
        offset += n
    trainable = config.get("trainable", True) is not False
    return builder.add_dense(
        name, sources, units, bias, use_bias=bool(use_bias),
        activation=_keras_activation(config.get("activation"), builder.source, where),
        trainable=trainable, init=_initializer(config.get("kernel_initializer")), origin=where,
    )


def _activation_layer(builder, name, config, inputs, arrays, exclusive, where):
    act = _keras_activation(config.get("activation"), builder.source, where)
    return _activate(builder, inputs[0], act, exclusive, name, where)


def _activate(builder, value, activation, exclusive, name, where):
    if isinstance(value, _Concat):
        value, exclusive = builder.identity(list(value.parts), name, where), True
    return builder.activate(value, activation, exclusive, name, where)


def _relu_layer(builder, name, config, inputs, arrays, exclusive, where):
    if config.get("max_value") is not None or config.get("threshold", 0.0):
        raise ModelImportError(f"{builder.source}: {where} with max_value or threshold has no graphnet equivalent")
    slope = config.get("negative_slope", 0.0)
    act = {"name": "leaky_relu", "negative_slope": slope} if slope else "relu"
    return _activate(builder, inputs[0], act, exclusive, name, where)


def _leaky_relu_layer(builder, name, config, inputs, arrays, exclusive, where):
    slope = config.get("negative_slope", config.get("alpha", 0.3))
    return _activate(builder, inputs[0], {"name": "leaky_relu", "negative_slope": slope}, exclusive, name, where)


def _elu_layer(builder, name, config, inputs, arrays, exclusive, where):
    return _activate(builder, inputs[0], {"name": "elu", "alpha": config.get("alpha", 1.0)}, exclusive, name, where)


def _softmax_layer(builder, name, config, inputs, arrays, exclusive, where):
    if config.get("axis", -1) not in (-1, 1, [-1], [1]):
        raise ModelImportError(f"{builder.source}: {where} takes softmax over axis {config.get('axis')}; "
                               f"graphnet's softmax is over the features (axis -1)")
    return _activate(builder, inputs[0], "softmax", exclusive, name, where)


def _dropout(builder, name, config, inputs, arrays, exclusive, where):
    if config.get("noise_shape") is not None:
        raise ModelImportError(f"{builder.source}: {where} has a noise_shape; not supported")
    value = inputs[0]
    if isinstance(value, _Concat):
        value, exclusive = builder.identity(list(value.parts), name, where), True
    return builder.drop(value, config.get("rate", 0.0), exclusive, name, where)


def _concatenate(builder, name, config, inputs, arrays, exclusive, where):
    if config.get("axis", -1) not in (-1, 1):
        raise ModelImportError(f"{builder.source}: {where} joins along axis {config.get('axis')}; "
                               f"only the feature axis (-1) is supported")
    if len(inputs) < 2:
        raise ModelImportError(f"{builder.source}: {where} needs at least 2 inputs, got {len(inputs)}")
    parts: list[str] = []
    for value in inputs:
        parts.extend(value.parts if isinstance(value, _Concat) else [value])
    return _Concat(tuple(parts))


def _passthrough(builder, name, config, inputs, arrays, exclusive, where):
    return inputs[0]  # Flatten and Identity change nothing on (batch, features) data


#: Keras layer class names -> converters.
LAYERS = {
    "InputLayer": _input_layer,
    "Dense": _dense,
    "Activation": _activation_layer,
    "Dropout": _dropout,
    "Concatenate": _concatenate,
    "ReLU": _relu_layer,
    "LeakyReLU": _leaky_relu_layer,
    "ELU": _elu_layer,
    "Softmax": _softmax_layer,
    "Flatten": _passthrough,
    "Identity": _passthrough,
}


def _materialise(builder: Builder, value, name: str) -> str:
    """A node holding ``value`` (a concatenation gets an identity node)."""
    if isinstance(value, _Concat):
        return builder.identity(list(value.parts), name, f"output {name!r}")
    if builder.nodes[value].kind == "input":
        raise ModelImportError(f"{builder.source}: output {name!r} is an input passed through unchanged; "
                               f"the model computes nothing graphnet could import")
    return value


def _keras_activation(value, source: str, where: str):
    if value is None:
        return "linear"
    if isinstance(value, Mapping) and value.get("class_name") == "function":
        value = value.get("config")  # some Keras versions wrap built-in names
    if isinstance(value, str) and value in ACTIVATIONS:
        return ACTIVATIONS[value]
    raise ModelImportError(
        f"{source}: {where} uses activation {str(value)[:60]!r}, which graphnet does not have; "
        f"supported: {sorted(ACTIVATIONS)}"
    )


def _initializer(value) -> str | None:
    if isinstance(value, Mapping):
        value = value.get("class_name")
    return _INITIALIZERS.get(value) if isinstance(value, str) else None
