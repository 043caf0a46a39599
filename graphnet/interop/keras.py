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
(sorted keys, as ``keras.tree`` flattens them).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelImportError
from ._builder import Builder, Concat, unexpected_as
from ._keras_files import layer_name, read

__all__ = ["from_keras", "ACTIVATIONS", "LAYERS"]

logger = logging.getLogger(__name__)

#: Keras 3 activation names -> graphnet activation configs. Keras's string
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
    "selu": "selu",
    "silu": "silu",
    "swish": "silu",
    "mish": "mish",
    "hard_sigmoid": {"name": "hard_sigmoid", "alpha": 1.0 / 6.0, "beta": 0.5},
    "softsign": "softsign",
}
#: Where Keras 2 meant something else by the same name: its hard_sigmoid is
#: ``clip(0.2 z + 0.5, 0, 1)`` (Keras 3's is ``relu6(z + 3) / 6``).
_KERAS2 = {"hard_sigmoid": {"name": "hard_sigmoid", "alpha": 0.2, "beta": 0.5}}

_INITIALIZERS = {
    "GlorotUniform": "glorot_uniform",
    "GlorotNormal": "glorot_normal",
    "HeNormal": "he_normal",
    "HeUniform": "he_uniform",
    "Zeros": "zeros",
}


def from_keras(obj, *, loss=None, dtype: str | None = None, seed: int | None = None):
    """A Graph (or Sequential) equal to a Keras model.

    Parameters
    ----------
    obj : str, PathLike or keras.Model
        A ``.keras`` or ``.h5`` file, a Keras model, or a ``to_json()`` string.
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
        When a file cannot be read.
    """
    config, weights, origin, major = read(obj)
    with unexpected_as(ModelImportError, origin):
        return _convert(config, weights, origin, major, loss, dtype, seed)


def _convert(config, weights, origin: str, major: int, loss, dtype, seed):
    if not isinstance(config, Mapping) or not isinstance(config.get("config"), Mapping):
        raise ModelImportError(f"{origin}: expected a Keras model config with 'class_name' and 'config'")
    kind = config.get("class_name")
    inner = config["config"]
    name = inner.get("name") if isinstance(inner.get("name"), str) else "keras_model"
    model = _Model(Builder(f"keras model {name!r}"), weights or {}, major, weights is None)
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


@dataclass
class _Model:
    builder: Builder
    weights: dict[str, list[np.ndarray]]
    major: int  # Keras's major version: what its activation names mean
    architecture_only: bool

    @property
    def source(self) -> str:
        return self.builder.source


@dataclass
class _Call:
    """One layer applied to its inputs."""

    model: _Model
    name: str
    cls: str
    config: Mapping
    inputs: list  # node names or Concat
    exclusive: list[bool]  # per input: nothing else reads it
    arrays: list[np.ndarray] | None

    @property
    def builder(self) -> Builder:
        return self.model.builder

    @property
    def where(self) -> str:
        return f"layer {self.name!r} ({self.cls})"

    def fail(self, message: str) -> ModelImportError:
        return ModelImportError(f"{self.model.source}: {self.where} {message}")


# ------------------------------------------------------------------ models
def _input_size(shape, where: str) -> int:
    if isinstance(shape, Mapping) and shape.get("class_name") == "TensorShape":
        shape = shape.get("items")  # Keras 2 metadata spells shapes this way
    if not isinstance(shape, list) or len(shape) != 2 or not isinstance(shape[-1], int):
        raise ModelImportError(
            f"{where}: input shape {shape} is not (batch, features); graphnet nodes take "
            f"flat feature vectors"
        )
    return shape[-1]


def _sequential(model: _Model, config: Mapping) -> list[str]:
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
        current = builder.add_input("input", _input_size(shape, model.source), "input")
    for layer in layers:
        if not isinstance(layer, Mapping):
            raise ModelImportError(f"{model.source}: a layer config is not an object: {str(layer)[:80]}")
        inputs = [current] if current is not None else []
        current = _apply(model, layer, inputs, [True] * len(inputs))
    last = layer_name(layers[-1])
    output = _output_node(builder, current, last)
    builder.rename(output, last)  # the output keeps the last layer's name, as in Keras
    return [last]


def _functional(model: _Model, config: Mapping) -> list[str]:
    layers = config.get("layers")
    if not isinstance(layers, list) or not layers:
        raise ModelImportError(f"{model.source}: has no layers")
    inbound = {}
    for layer in layers:
        if not isinstance(layer, Mapping):
            raise ModelImportError(f"{model.source}: a layer config is not an object: {str(layer)[:80]}")
        name = layer_name(layer)
        nodes = layer.get("inbound_nodes") or []
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
        call = _Call(model, key, "InputLayer", _layer_config(by_name[name]), [], [], None)
        values[name] = _input_layer(call)
    for layer in layers:
        name = layer_name(layer)
        if name in values:
            continue
        missing = [src for src in inbound[name] if src not in values]
        if missing:
            raise ModelImportError(f"{model.source}: layer {name!r} reads {missing}, which are not computed before it")
        sources = inbound[name]
        exclusive = [uses[src] == 1 and sources.count(src) == 1 for src in sources]
        values[name] = _apply(model, layer, [values[src] for src in sources], exclusive)
    result = []
    for key, name in outputs:
        if name not in values:
            raise ModelImportError(f"{model.source}: output {name!r} is not a layer of the model")
        node = _output_node(builder, values[name], key)
        builder.rename(node, key)  # outputs keep their Keras names (or dict keys)
        result.append(key)
    return result


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


def _output_node(builder: Builder, value, name: str) -> str:
    """A node holding an output ``value`` (a concatenation gets an identity node)."""
    if not isinstance(value, Concat) and builder.nodes[value].kind == "input":
        raise ModelImportError(f"{builder.source}: output {name!r} is an input passed through unchanged; "
                               f"the model computes nothing graphnet could import")
    return builder.materialise(value, name, f"output {name!r}")


def _layer_config(layer: Mapping) -> Mapping:
    return layer.get("config") if isinstance(layer.get("config"), Mapping) else {}


# ------------------------------------------------------------------ layers
def _apply(model: _Model, layer: Mapping, inputs: list, exclusive: list[bool]):
    """Add one layer; returns the value it computes (a node name or a Concat)."""
    cls = layer.get("class_name")
    name = layer_name(layer)
    handler = LAYERS.get(cls) if isinstance(cls, str) else None
    if handler is None:
        raise ModelImportError(
            f"{model.source}: layer {name!r} of type {cls!r} cannot be imported; supported: {sorted(LAYERS)}"
        )
    call = _Call(model, name, cls, _layer_config(layer), inputs, exclusive, model.weights.get(name))
    if cls not in _MANY_INPUTS and cls != "InputLayer" and len(inputs) != 1:
        raise call.fail(f"takes {len(inputs)} inputs, expected 1")
    return handler(call)


def _input_layer(call: _Call):
    config = call.config
    shape = config.get("batch_shape", config.get("batch_input_shape"))
    if config.get("sparse") or config.get("ragged"):
        raise call.fail("is sparse or ragged")
    return call.builder.add_input(call.name, _input_size(shape, f"{call.model.source}: {call.where}"), call.where)


def _dense(call: _Call):
    config, builder = call.config, call.builder
    units = config.get("units")
    use_bias = config.get("use_bias", True)
    for key in ("lora_rank", "quantization_config"):
        if config.get(key):
            raise call.fail(f"uses {key}, which graphnet cannot represent")
    ignored = [k for k in ("kernel_regularizer", "bias_regularizer", "activity_regularizer",
                           "kernel_constraint", "bias_constraint") if config.get(k)]
    if ignored:
        logger.warning("%s: %s: %s ignored (graphnet has none)", call.model.source, call.where, ", ".join(ignored))
    kernel = bias = None
    if call.arrays is not None:
        expected = 2 if use_bias else 1
        if len(call.arrays) != expected:
            raise call.fail(f"has {len(call.arrays)} weight arrays, expected {expected}")
        kernel = call.arrays[0]
        bias = call.arrays[1] if use_bias else None
        rows = builder.size_of(call.inputs[0])
        if kernel.ndim != 2 or kernel.shape[0] != rows:
            raise call.fail(f"has a kernel of shape {kernel.shape}, which does not take {rows} features")
    return builder.dense_from(
        call.name, call.inputs[0], kernel, units, bias, use_bias=bool(use_bias),
        activation=_keras_activation(config.get("activation"), call),
        trainable=config.get("trainable", True) is not False,
        init=_initializer(config.get("kernel_initializer")), origin=call.where,
    )


def _activate(call: _Call, activation):
    value, exclusive = call.inputs[0], call.exclusive[0]
    if isinstance(value, Concat):
        value, exclusive = call.builder.identity(list(value.parts), call.name, call.where), True
    return call.builder.activate(value, activation, exclusive, call.name, call.where)


def _activation_layer(call: _Call):
    return _activate(call, _keras_activation(call.config.get("activation"), call))


def _relu_layer(call: _Call):
    config = call.config
    if config.get("max_value") is not None or config.get("threshold", 0.0):
        raise call.fail("with max_value or threshold has no graphnet equivalent")
    slope = config.get("negative_slope", 0.0)
    return _activate(call, {"name": "leaky_relu", "negative_slope": slope} if slope else "relu")


def _leaky_relu_layer(call: _Call):
    slope = call.config.get("negative_slope", call.config.get("alpha", 0.3))
    return _activate(call, {"name": "leaky_relu", "negative_slope": slope})


def _elu_layer(call: _Call):
    return _activate(call, {"name": "elu", "alpha": call.config.get("alpha", 1.0)})


def _softmax_layer(call: _Call):
    if call.config.get("axis", -1) not in (-1, 1, [-1], [1]):
        raise call.fail(f"takes softmax over axis {call.config.get('axis')}; graphnet's softmax is "
                        f"over the features (axis -1)")
    return _activate(call, "softmax")


def _dropout(call: _Call):
    if call.config.get("noise_shape") is not None:
        raise call.fail("has a noise_shape; not supported")
    value, exclusive = call.inputs[0], call.exclusive[0]
    if isinstance(value, Concat):
        value, exclusive = call.builder.identity(list(value.parts), call.name, call.where), True
    return call.builder.drop(value, call.config.get("rate", 0.0), exclusive, call.name, call.where)


def _concatenate(call: _Call):
    if call.config.get("axis", -1) not in (-1, 1):
        raise call.fail(f"joins along axis {call.config.get('axis')}; only the feature axis (-1) is supported")
    if len(call.inputs) < 2:
        raise call.fail(f"needs at least 2 inputs, got {len(call.inputs)}")
    parts: list[str] = []
    for value in call.inputs:
        parts.extend(call.builder.parts(value))
    return Concat(tuple(parts))


def _add(call: _Call):
    if len(call.inputs) < 2:
        raise call.fail(f"needs at least 2 inputs, got {len(call.inputs)}")
    return call.builder.add_sum(call.name, list(zip(call.inputs, call.exclusive)), call.where)


def _batch_normalization(call: _Call):
    config, builder, value = call.config, call.builder, call.inputs[0]
    if config.get("axis", -1) not in (-1, 1, [-1], [1]):
        raise call.fail(f"normalises over axis {config.get('axis')}; only the feature axis (-1) folds into a Dense")
    if config.get("renorm"):
        raise call.fail("uses batch renormalisation; not supported")
    after = "a concatenation" if isinstance(value, Concat) else repr(value)
    if not (isinstance(value, str) and builder.nodes[value].kind == "dense" and builder.absorbable(value)
            and call.exclusive[0]):
        raise call.fail(
            f"follows {after}, not the linear output of a Dense read by nothing else, so it cannot be "
            f"folded into one; place it directly after a Dense without activation "
            f"(Dense(n) -> BatchNormalization -> Activation(...))"
        )
    if call.arrays is None:
        logger.info("%s: %s: architecture only, folds into %r as the identity", call.model.source, call.where, value)
        return value
    arrays = list(call.arrays)
    expected = 2 + bool(config.get("scale", True)) + bool(config.get("center", True))
    if len(arrays) != expected:
        raise call.fail(f"has {len(arrays)} weight arrays, expected {expected}")
    size = builder.nodes[value].size
    gamma = arrays.pop(0) if config.get("scale", True) else np.ones(size)
    beta = arrays.pop(0) if config.get("center", True) else np.zeros(size)
    mean, variance = arrays
    if any(a.shape != (size,) for a in (gamma, beta, mean, variance)):
        raise call.fail(f"has arrays of shapes {[a.shape for a in call.arrays]}, expected ({size},) each")
    scale = gamma.astype(np.float64) / np.sqrt(variance.astype(np.float64) + float(config.get("epsilon", 1e-3)))
    trainable = config.get("trainable", True) is not False and bool(config.get("center", True))
    builder.fold_scale(value, scale, beta - mean.astype(np.float64) * scale, trainable)
    return value


def _passthrough(call: _Call):
    return call.inputs[0]  # Flatten and Identity change nothing on (batch, features) data


def _training_noise(call: _Call):
    logger.info("%s: %s does nothing at inference and is dropped (graphnet has no such training noise)",
                call.model.source, call.where)
    return call.inputs[0]


#: Keras layer class names -> converters.
LAYERS = {
    "InputLayer": _input_layer,
    "Dense": _dense,
    "Activation": _activation_layer,
    "Dropout": _dropout,
    "Concatenate": _concatenate,
    "Add": _add,
    "BatchNormalization": _batch_normalization,
    "ReLU": _relu_layer,
    "LeakyReLU": _leaky_relu_layer,
    "ELU": _elu_layer,
    "Softmax": _softmax_layer,
    "Flatten": _passthrough,
    "Identity": _passthrough,
    "GaussianNoise": _training_noise,
    "GaussianDropout": _training_noise,
    "AlphaDropout": _training_noise,
}
_MANY_INPUTS = ("Concatenate", "Add")


def _keras_activation(value, call: _Call):
    if value is None:
        return "linear"
    if isinstance(value, Mapping) and value.get("class_name") == "function":
        value = value.get("config")  # some Keras versions wrap built-in names
    if isinstance(value, str) and value in ACTIVATIONS:
        if call.model.major <= 2 and value in _KERAS2:
            return _KERAS2[value]
        return ACTIVATIONS[value]
    raise call.fail(
        f"uses activation {str(value)[:60]!r}, which graphnet does not have; supported: {sorted(ACTIVATIONS)}"
    )


def _initializer(value) -> str | None:
    if isinstance(value, Mapping):
        value = value.get("class_name")
    return _INITIALIZERS.get(value) if isinstance(value, str) else None
