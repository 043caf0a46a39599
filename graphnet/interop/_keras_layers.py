"""Keras layers -> graphnet nodes: one converter per layer class (:data:`LAYERS`)
and Keras's activation names (:data:`ACTIVATIONS`), for :mod:`graphnet.interop.keras_import`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelImportError
from ._builder import Builder, Concat
from ._keras_files import layer_name
from ._keras_tables import TABLE_LAYERS, Codes

__all__ = ["ACTIVATIONS", "LAYERS", "Call", "Model", "apply", "input_layer"]

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


@dataclass
class Model:
    builder: Builder
    weights: dict[str, list[np.ndarray]]
    major: int  # Keras's major version: what its activation names mean
    architecture_only: bool
    origin: str = ""  # the file or object the weights come from, for messages

    @property
    def source(self) -> str:
        return self.builder.source


@dataclass
class Call:
    """One layer applied to its inputs."""

    model: Model
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


def input_size(shape, where: str) -> int:
    if isinstance(shape, Mapping) and shape.get("class_name") == "TensorShape":
        shape = shape.get("items")  # Keras 2 metadata spells shapes this way
    if isinstance(shape, list) and len(shape) == 1:
        return 1  # one value per sample: (batch,) is read as (batch, 1)
    if not isinstance(shape, list) or len(shape) != 2 or not isinstance(shape[-1], int):
        raise ModelImportError(
            f"{where}: input shape {shape} is not (batch, features); graphnet nodes take "
            f"flat feature vectors"
        )
    return shape[-1]


# ------------------------------------------------------------------ layers
def apply(model: Model, layer: Mapping, inputs: list, exclusive: list[bool]):
    """Add one layer; returns the value it computes (a node name or a Concat)."""
    cls = layer.get("class_name")
    name = layer_name(layer)
    handler = LAYERS.get(cls) if isinstance(cls, str) else None
    if handler is None:
        raise ModelImportError(
            f"{model.source}: layer {name!r} of type {cls!r} cannot be imported; supported: {sorted(LAYERS)}"
        )
    config = layer.get("config") if isinstance(layer.get("config"), Mapping) else {}
    call = Call(model, name, cls, config, inputs, exclusive, model.weights.get(name))
    if cls not in _MANY_INPUTS and cls != "InputLayer" and len(inputs) != 1:
        raise call.fail(f"takes {len(inputs)} inputs, expected 1")
    if cls != "Embedding" and any(isinstance(v, Codes) for v in inputs):
        raise call.fail("reads a lookup's integer codes as numbers; graphnet takes them into an Embedding "
                        "(or give the lookup output_mode='one_hot')")
    if cls in _WEIGHTED and call.arrays is None and not model.architecture_only:
        raise call.fail(
            f"has no weights in {model.origin or 'the model'}: the file lists the layer but stores no "
            f"arrays for it, and starting it from random weights would be a different model; re-save "
            f"the model with model.save(...), or import the architecture alone with model.to_json()"
        )
    return handler(call)


def input_layer(call: Call):
    config = call.config
    shape = config.get("batch_shape", config.get("batch_input_shape"))
    if config.get("sparse") or config.get("ragged"):
        raise call.fail("is sparse or ragged")
    return call.builder.add_input(call.name, input_size(shape, f"{call.model.source}: {call.where}"), call.where)


def _dense(call: Call):
    config, builder = call.config, call.builder
    units = config.get("units")
    use_bias = config.get("use_bias", True)
    for key in ("lora_rank", "quantization_config"):
        if config.get(key):
            raise call.fail(f"uses {key}, which graphnet cannot represent")
    penalties = {k: _regularizer(config.get(k), k, call) for k in ("kernel_regularizer", "bias_regularizer")}
    ignored = [k for k in ("activity_regularizer", "kernel_constraint", "bias_constraint") if config.get(k)]
    if ignored:
        logger.warning("%s: %s: %s ignored (graphnet has none; predictions are unaffected)",
                       call.model.source, call.where, ", ".join(ignored))
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
        regularizer=penalties["kernel_regularizer"], bias_regularizer=penalties["bias_regularizer"],
    )


#: Keras's weight penalties by class name, as graphnet.regularizers configs
#: (the same sums: ``l1 Σ|w|``, ``l2 Σw²``, no one-half).
_REGULARIZERS = {"L1": ("l1", ("l1",)), "L2": ("l2", ("l2",)), "L1L2": ("l1_l2", ("l1", "l2"))}


def _regularizer(value, key: str, call: Call) -> dict | None:
    """A Keras layer's ``kernel_regularizer``/``bias_regularizer`` (a serialised
    ``{"class_name": "L2", "config": {"l2": 0.01}}``) as a graphnet config;
    None, with a warning, for one graphnet lacks (training then differs,
    predictions do not)."""
    if not value:
        return None
    cls = value.get("class_name") if isinstance(value, Mapping) else None
    config = value.get("config") if isinstance(value, Mapping) else None
    known = _REGULARIZERS.get(cls)
    if known is not None and isinstance(config, Mapping):
        name, fields = known
        try:
            return {"name": name, **{f: float(config.get(f, 0.0)) for f in fields}}
        except (TypeError, ValueError):
            pass
    logger.warning("%s: %s: %s %r ignored (graphnet has L1, L2 and L1L2; predictions are unaffected)",
                   call.model.source, call.where, key, cls if cls else value)
    return None


def _activate(call: Call, activation):
    value, exclusive = call.inputs[0], call.exclusive[0]
    if isinstance(value, Concat):
        value, exclusive = call.builder.identity(list(value.parts), call.name, call.where), True
    return call.builder.activate(value, activation, exclusive, call.name, call.where)


def _activation_layer(call: Call):
    return _activate(call, _keras_activation(call.config.get("activation"), call))


def _relu_layer(call: Call):
    config = call.config
    if config.get("max_value") is not None or config.get("threshold", 0.0):
        raise call.fail("with max_value or threshold has no graphnet equivalent")
    slope = config.get("negative_slope", 0.0)
    return _activate(call, {"name": "leaky_relu", "negative_slope": slope} if slope else "relu")


def _leaky_relu_layer(call: Call):
    slope = call.config.get("negative_slope", call.config.get("alpha", 0.3))
    return _activate(call, {"name": "leaky_relu", "negative_slope": slope})


def _elu_layer(call: Call):
    return _activate(call, {"name": "elu", "alpha": call.config.get("alpha", 1.0)})


def _softmax_layer(call: Call):
    if call.config.get("axis", -1) not in (-1, 1, [-1], [1]):
        raise call.fail(f"takes softmax over axis {call.config.get('axis')}; graphnet's softmax is "
                        f"over the features (axis -1)")
    return _activate(call, "softmax")


def _dropout(call: Call):
    if call.config.get("noise_shape") is not None:
        raise call.fail("has a noise_shape; not supported")
    value, exclusive = call.inputs[0], call.exclusive[0]
    if isinstance(value, Concat):
        value, exclusive = call.builder.identity(list(value.parts), call.name, call.where), True
    return call.builder.drop(value, call.config.get("rate", 0.0), exclusive, call.name, call.where)


def _concatenate(call: Call):
    if call.config.get("axis", -1) not in (-1, 1):
        raise call.fail(f"joins along axis {call.config.get('axis')}; only the feature axis (-1) is supported")
    if len(call.inputs) < 2:
        raise call.fail(f"needs at least 2 inputs, got {len(call.inputs)}")
    parts: list[str] = []
    for value in call.inputs:
        parts.extend(call.builder.parts(value))
    return Concat(tuple(parts))


def _add(call: Call):
    if len(call.inputs) < 2:
        raise call.fail(f"needs at least 2 inputs, got {len(call.inputs)}")
    return call.builder.add_sum(call.name, list(zip(call.inputs, call.exclusive)), call.where)


def _subtract(call: Call):
    """``a - b``: a sum with ``-1`` on the second term."""
    if len(call.inputs) != 2:
        raise call.fail(f"takes exactly 2 inputs, got {len(call.inputs)}")
    (a, b), (ea, eb) = call.inputs, call.exclusive
    return call.builder.add_sum(call.name, [(a, ea, 1.0), (b, eb, -1.0)], call.where)


def _average(call: Call):
    """The mean of its inputs: a sum with ``1/k`` on each term."""
    if len(call.inputs) < 2:
        raise call.fail(f"needs at least 2 inputs, got {len(call.inputs)}")
    share = 1.0 / len(call.inputs)
    return call.builder.add_sum(call.name, [(v, e, share) for v, e in zip(call.inputs, call.exclusive)],
                                call.where)


def _batch_normalization(call: Call):
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


def _passthrough(call: Call):
    return call.inputs[0]  # Flatten and Identity change nothing on (batch, features) data


def _training_noise(call: Call):
    logger.info("%s: %s does nothing at inference and is dropped (graphnet has no such training noise)",
                call.model.source, call.where)
    return call.inputs[0]


#: Keras layer class names -> converters.
LAYERS = {
    "InputLayer": input_layer,
    "Dense": _dense,
    "Activation": _activation_layer,
    "Dropout": _dropout,
    "Concatenate": _concatenate,
    "Add": _add,
    "Subtract": _subtract,
    "Average": _average,
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
LAYERS.update(TABLE_LAYERS)
_MANY_INPUTS = ("Concatenate", "Add", "Subtract", "Average")
#: Layers that cannot be imported from a file without their arrays.
_WEIGHTED = ("Dense", "BatchNormalization", "Embedding")


def _keras_activation(value, call: Call):
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
