"""Import Keras models: ``gn.from_keras(obj)``.

``obj`` is a ``.keras`` file, a legacy Keras 2 ``.h5`` file (both read with
h5py, see :mod:`graphnet.interop._keras_files`: Keras itself is not needed
and nothing in the file runs), a Keras model object, or a
``model.to_json()`` string (architecture only: weights start from their
initialisers).

Supported: ``Sequential`` and ``Functional`` models (inputs and outputs given
as lists or dicts) of ``InputLayer``, ``Dense`` (with or without bias, any
activation graphnet has), ``Activation``, ``Dropout``, ``Concatenate``
(feeding a ``Dense``, it becomes one synapse per concatenated source, the
kernel split by rows), ``Add`` (one node summing its inputs; a ``Dense``
without activation read only by the ``Add`` is absorbed into it),
``BatchNormalization`` directly after a ``Dense``'s linear output (folded
into its kernel and bias), the activation layers ``ReLU``, ``LeakyReLU``,
``ELU``, ``Softmax``, and the inference-time identities ``Flatten``,
``Identity``, ``GaussianNoise``, ``GaussianDropout``, ``AlphaDropout`` (the
latter three do nothing outside training; graphnet has no equivalent to
train with, so they are dropped with a logged note). Keras kernels are
already ``(in, out)``: nothing is transposed. Layer names carry over; inputs
and outputs given as dicts take the dict's keys as names, in Keras's order
(sorted keys, as ``keras.tree`` flattens them); a tensor returned under two
keys becomes an output and an exact copy of it.

Files are read as hostile (see :mod:`graphnet.interop._keras_files`): a
file whose weights live elsewhere, or that lacks a layer's weights, is
refused rather than imported with other numbers; and like ``from_spec``,
``max_params`` bounds the parameters a model may describe before any is
allocated.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from .._text import shown
from ..errors import ModelImportError
from ..spec import DEFAULT_MAX_SPEC_PARAMS
from ._arguments import check_arguments
from ._builder import Builder, Concat
from ._guards import unexpected_as
from ._keras_files import layer_name, read
from ._keras_layers import (
    ACTIVATIONS,
    LAYERS,
    Call,
    Model,
    apply,
    input_layer,
    input_size,
)

__all__ = ["ACTIVATIONS", "LAYERS", "from_keras"]

logger = logging.getLogger(__name__)

def from_keras(obj, *, loss=None, dtype: str | None = None, seed: int | None = None,
               max_params: int | None = DEFAULT_MAX_SPEC_PARAMS):
    """A Graph (or Sequential) equal to a Keras model.

    Parameters
    ----------
    obj : str, PathLike or keras.Model
        A ``.keras`` or ``.h5`` file, a Keras model, or a ``to_json()`` string.
    loss : str, dict, Loss, or dict output name -> loss, optional
        By default each output gets the loss its activation implies
        (softmax: ``categorical_crossentropy``, sigmoid:
        ``binary_crossentropy``, otherwise ``mse``).
    dtype : {"float32", "float64"} or numpy dtype, optional
        By default float64 when every Keras weight is float64, else float32.
    seed : int, optional
        The new graph's seed (weights of a JSON import are drawn from it).
    max_params : int or None
        Refuse models with more parameters than this (100 million by
        default, as ``Graph.from_spec``), counted from the layers' configs
        before any weight is allocated; ``None`` lifts the limit.

    Returns
    -------
    Graph, or Sequential for a Keras ``Sequential`` model.

    Raises
    ------
    ModelImportError
        Naming the layer and its type when something cannot be represented,
        a layer whose weights the file lacks, or more than ``max_params``
        parameters; naming the argument, before anything is read, for a
        wrong ``loss``, ``dtype``, ``seed`` or ``max_params``.
    ModelFileError
        When a file cannot be read, or reaches outside itself (HDF5 links,
        external or virtual datasets).

    Examples
    --------
    >>> import graphnet as gn
    >>> config = ('{"class_name": "Sequential", "config": {"name": "tiny", "layers": ['
    ...           '{"class_name": "InputLayer", "config": {"batch_shape": [null, 3], "name": "x"}},'
    ...           '{"class_name": "Dense", "config": {"name": "y", "units": 2}}]}}')
    >>> gn.from_keras(config, seed=0).outputs
    ['y']
    >>> gn.from_keras(config, max_params=7)
    Traceback (most recent call last):
    ...
    graphnet.errors.ModelImportError: keras model 'tiny': layer 'y' (Dense) brings the model to 8 parameters, more than max_params=7; pass a larger max_params (or None) to import it if you trust the model
    """
    check_arguments("from_keras", max_params=max_params, dtype=dtype, seed=seed, loss=loss)
    dtype = None if dtype is None else np.dtype(dtype).name  # np.float64 as "float64"
    config, weights, origin, major = read(obj)
    with unexpected_as(ModelImportError, origin):
        try:
            return _convert(config, weights, origin, major, loss, dtype, seed, max_params)
        except MemoryError as exc:  # only without max_params: every allocation is counted against it first
            raise ModelImportError(f"{origin}: ran out of memory while importing it; a max_params bound refuses "
                                   "a model too large for this machine before trying") from exc


def _convert(config, weights, origin: str, major: int, loss, dtype, seed, max_params):
    if not isinstance(config, Mapping) or not isinstance(config.get("config"), Mapping):
        raise ModelImportError(f"{origin}: expected a Keras model config with 'class_name' and 'config'")
    kind = config.get("class_name")
    inner = config["config"]
    name = inner.get("name") if isinstance(inner.get("name"), str) else "keras_model"
    model = Model(Builder(f"keras model {name!r}", max_params=max_params), weights or {}, major,
                  weights is None, origin)
    if dtype is None:
        arrays = [a for arrays in model.weights.values() for a in arrays]
        dtype = "float64" if arrays and all(a.dtype == np.float64 for a in arrays) else "float32"
    if kind == "Sequential":
        outputs = _sequential(model, inner)
    elif kind in ("Functional", "Model"):
        outputs = _functional(model, inner)
    else:
        raise ModelImportError(
            f"{model.source}: a {kind!r} model cannot be imported; only Sequential and Functional "
            f"models have a config graphnet can read"
        )
    return model.builder.build(outputs, loss=loss, dtype=dtype, name=name,
                               sequential=kind == "Sequential", seed=seed)


# ------------------------------------------------------------------ models
def _sequential(model: Model, config: Mapping) -> list[str]:
    layers = config.get("layers")
    if not isinstance(layers, list) or not layers:
        raise ModelImportError(f"{model.source}: has no layers")
    builder = model.builder
    current = None
    first = layers[0] if isinstance(layers[0], Mapping) else {}
    if first.get("class_name") != "InputLayer":
        shape = config.get("build_input_shape")
        layer_config = first.get("config") if isinstance(first.get("config"), Mapping) else {}
        shape = shape or layer_config.get("batch_input_shape") or layer_config.get("batch_shape")
        if shape is None:
            raise ModelImportError(f"{model.source}: the model was never built, so its input size is unknown; "
                                   f"call model.build((None, n)) or start it with keras.Input((n,))")
        current = builder.add_input("input", input_size(shape, model.source), "input")
    for layer in layers:
        if not isinstance(layer, Mapping):
            raise ModelImportError(f"{model.source}: a layer config is not an object: {str(layer)[:80]}")
        inputs = [current] if current is not None else []
        current = apply(model, layer, inputs, [True] * len(inputs))
    last = layer_name(layers[-1])
    _check_output(builder, current, last)
    return builder.name_outputs([(current, last)], "layer name")  # the output keeps the last layer's name, as in Keras


def _functional(model: Model, config: Mapping) -> list[str]:
    layers = config.get("layers")
    if not isinstance(layers, list) or not layers:
        raise ModelImportError(f"{model.source}: has no layers")
    inbound = {}
    for layer in layers:
        if not isinstance(layer, Mapping):
            raise ModelImportError(f"{model.source}: a layer config is not an object: {str(layer)[:80]}")
        name = layer_name(layer)
        nodes = layer.get("inbound_nodes") or []
        if not isinstance(nodes, list):
            raise ModelImportError(f"{model.source}: layer {name!r}: inbound_nodes must be a list of calls, "
                                   f"found {type(nodes).__name__} {shown(nodes)}")
        if len(nodes) > 1:
            raise ModelImportError(
                f"{model.source}: layer {name!r} ({layer.get('class_name')}) is called {len(nodes)} times; "
                f"shared layers cannot be imported (graphnet gives every synapse its own weights)"
            )
        inbound[name] = _tensors(nodes[0], name, model.source) if nodes else []
    outputs = _endpoints(config.get("output_layers"), "output_layers", model.source)
    inputs = _endpoints(config.get("input_layers"), "input_layers", model.source)
    uses = Counter(src for sources in inbound.values() for src in sources)
    uses.update(layer for _, layer in outputs)

    builder = model.builder
    values: dict[str, Any] = {}
    by_name = {layer_name(layer): layer for layer in layers}
    for key, name in inputs:  # inputs first, in the model's order
        if by_name.get(name, {}).get("class_name") != "InputLayer":
            raise ModelImportError(f"{model.source}: input {name!r} is not an InputLayer")
        call = Call(model, key, "InputLayer", _layer_config(by_name[name]), [], [], None)
        values[name] = input_layer(call)
    for layer in layers:
        name = layer_name(layer)
        if name in values:
            continue
        missing = [src for src in inbound[name] if src not in values]
        if missing:
            raise ModelImportError(f"{model.source}: layer {name!r} reads {missing}, which are not computed before it")
        sources = inbound[name]
        exclusive = [uses[src] == 1 and sources.count(src) == 1 for src in sources]
        values[name] = apply(model, layer, [values[src] for src in sources], exclusive)
    for key, name in outputs:
        if name not in values:
            raise ModelImportError(f"{model.source}: output {name!r} is not a layer of the model")
        _check_output(builder, values[name], key)
    # Outputs keep their Keras names (or dict keys).
    named_by = "dict key" if isinstance(config.get("output_layers"), Mapping) else "layer name"
    return builder.name_outputs([(values[name], key) for key, name in outputs], named_by)


def _endpoints(value, field: str, source: str) -> list[tuple[str, str]]:
    """``[["a", 0, 0], ...]``, a single ``["a", 0, 0]`` or a dict
    ``{"key": ["a", 0, 0]}`` -> ``(name in graphnet, layer name)`` pairs."""
    if isinstance(value, Mapping):
        keyed = [(key, value[key]) for key in sorted(value)]  # keras.tree's order
    else:
        if isinstance(value, list) and value and isinstance(value[0], str):
            value = [value]
        keyed = [(None, item) for item in value] if isinstance(value, list) else []
    if not keyed:
        raise ModelImportError(f"{source}: config.{field} is missing or empty")
    names = []
    for key, item in keyed:
        if not (isinstance(item, list) and item and isinstance(item[0], str)):
            raise ModelImportError(f"{source}: config.{field} entry {item!r} is not [layer, node, tensor]")
        if any(i != 0 for i in item[1:3]):
            raise ModelImportError(f"{source}: {item[0]!r} has several outputs or calls; not supported")
        if key is not None and not (isinstance(key, str) and key):
            raise ModelImportError(f"{source}: config.{field} key {key!r} is not a name")
        names.append((key or item[0], item[0]))
    return names


def _tensors(node, layer: str, source: str) -> list[str]:
    """Names of the layers whose outputs a call reads, in argument order
    (Keras 3 ``{"args": ..., "kwargs": ...}`` and Keras 2 ``[[name, 0, 0, {}], ...]``)."""
    found: list[str] = []

    def visit(value):
        if isinstance(value, Mapping):
            if value.get("class_name") == "__keras_tensor__":
                config = value.get("config")
                history = config.get("keras_history") if isinstance(config, Mapping) else None
                if not (isinstance(history, list) and len(history) == 3 and isinstance(history[0], str)):
                    raise ModelImportError(f"{source}: layer {layer!r}: unreadable input {str(value)[:80]} (expected "
                                           "a config whose keras_history is [layer, 0, 0])")
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


def _check_output(builder: Builder, value, name: str) -> None:
    """Refuse an output that is a model input itself."""
    if not isinstance(value, Concat) and builder.nodes[value].kind == "input":
        raise ModelImportError(f"{builder.source}: output {name!r} is an input passed through unchanged; "
                               f"the model computes nothing graphnet could import")


def _layer_config(layer: Mapping) -> Mapping:
    return layer.get("config") if isinstance(layer.get("config"), Mapping) else {}


