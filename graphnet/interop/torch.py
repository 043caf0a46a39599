"""Import PyTorch models: ``gn.from_torch(module)``.

A ``torch.nn.Sequential`` (nested ones are flattened) of ``Linear``, ``ReLU``,
``LeakyReLU``, ``ELU``, ``GELU``, ``Sigmoid``, ``Tanh``, ``Softplus``,
``Softmax`` (over the features), ``Identity``, ``Dropout`` and ``Flatten``
(a no-op on ``(batch, features)`` data) becomes a :class:`~graphnet.Sequential`.
``Linear`` weights are ``(out, in)`` in PyTorch and ``(in, out)`` in graphnet:
this module transposes them.

Activation and dropout modules fold into the node of the ``Linear`` before
them. Where they cannot (two activations in a row, as in ``Linear, ReLU,
Sigmoid``, or an activation before the first ``Linear``), an identity node
with frozen weights carries the second one, so the import stays exact and
trainable; see :mod:`graphnet.interop._builder`.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..errors import ModelImportError
from ._builder import Builder, require

__all__ = ["from_torch", "ACTIVATIONS"]

logger = logging.getLogger(__name__)


def _leaky_relu(module) -> Any:
    return {"name": "leaky_relu", "negative_slope": float(module.negative_slope)}


def _elu(module) -> Any:
    return {"name": "elu", "alpha": float(module.alpha)}


def _gelu(module) -> Any:
    if module.approximate not in ("none", "tanh"):
        raise ValueError(f"approximate={module.approximate!r}")
    return {"name": "gelu", "approximate": module.approximate == "tanh"}


def _softplus(module) -> Any:
    # Above ``threshold`` torch returns z itself; exact softplus differs from z
    # by log1p(exp(-z)) < 2.1e-9 there, far below float32's resolution.
    if float(module.beta) != 1.0:
        raise ValueError(f"beta={module.beta}; graphnet's softplus has beta 1")
    return "softplus"


def _softmax(module) -> Any:
    if module.dim not in (None, 1, -1):
        raise ValueError(f"dim={module.dim}; graphnet's softmax is over the features (dim 1)")
    return "softmax"


#: torch.nn activation class names -> functions giving graphnet activation configs
#: (a ValueError says why a module's parameters cannot be represented).
ACTIVATIONS = {
    "ReLU": lambda m: "relu",
    "LeakyReLU": _leaky_relu,
    "ELU": _elu,
    "GELU": _gelu,
    "Sigmoid": lambda m: "sigmoid",
    "Tanh": lambda m: "tanh",
    "Softplus": _softplus,
    "Softmax": _softmax,
}
_NO_OPS = ("Identity",)


def from_torch(module, *, loss=None, dtype: str | None = None, name: str = "sequential",
               input_name: str = "input", seed: int | None = None):
    """A :class:`~graphnet.Sequential` equal to a ``torch.nn.Sequential``.

    Parameters
    ----------
    module : torch.nn.Sequential
    loss : str or dict, optional
        The output's loss; by default the one its activation implies
        (softmax: ``categorical_crossentropy``, sigmoid: ``binary_crossentropy``,
        otherwise ``mse``).
    dtype : {"float32", "float64"}, optional
        By default float64 when the Linear weights are, else float32.
    name, input_name : str
        Of the model and of its input node. ``Linear`` layers keep the names
        they have in the Sequential unless those are positions (``"0"``, ``"2"``),
        which become ``dense``, ``dense_1``, ... as in ``gn.Sequential``.
    seed : int, optional

    Raises
    ------
    ModelImportError
        Naming the module and its type when it cannot be represented.
    """
    torch = require("torch", "from_torch")
    nn = torch.nn
    if not isinstance(module, nn.Sequential):
        raise ModelImportError(
            f"from_torch expects a torch.nn.Sequential, got {type(module).__module__}."
            f"{type(module).__qualname__}; wrap the layers in nn.Sequential"
        )
    source = f"torch Sequential {name!r}"
    layers = list(_flatten(module, nn, ""))
    linears = [m for _, m in layers if type(m) is nn.Linear]
    if not linears:
        raise ModelImportError(f"{source} has no Linear layer, so its input size is unknown")
    if dtype is None:
        dtype = "float64" if all(m.weight.dtype == torch.float64 for m in linears) else "float32"

    builder = Builder(source)
    current = builder.add_input(input_name, linears[0].in_features, "input")
    dense_count = 0
    for path, layer in layers:
        kind = type(layer).__name__
        where = f"module {path!r} ({type(layer).__module__}.{type(layer).__qualname__})"
        if type(layer) is nn.Linear:
            if path.rsplit(".", 1)[-1].isdigit():
                node = "dense" if dense_count == 0 else f"dense_{dense_count}"
                dense_count += 1
            else:
                node = path
            current = _linear(builder, builder.unique(node), current, layer, where)
        elif kind in ACTIVATIONS and type(layer) is getattr(nn, kind):
            try:
                activation = ACTIVATIONS[kind](layer)
            except ValueError as exc:
                raise ModelImportError(f"{source}: {where} cannot be represented: {exc}") from None
            current = builder.activate(current, activation, True, kind.lower(), where)
        elif type(layer) is nn.Dropout:
            current = builder.drop(current, layer.p, True, "dropout", where)
        elif type(layer) is nn.Flatten:
            if layer.start_dim != 1 or layer.end_dim != -1:
                raise ModelImportError(f"{source}: {where} flattens dims {layer.start_dim}..{layer.end_dim}; "
                                       f"only the default Flatten() is a no-op on (batch, features) data")
        elif kind in _NO_OPS and type(layer) is getattr(nn, kind):
            continue
        else:
            raise ModelImportError(
                f"{source}: {where} cannot be imported; supported: Linear, "
                f"{', '.join(sorted(ACTIVATIONS))}, Dropout, Flatten, Identity"
            )
    return builder.build([current], loss=loss, dtype=dtype, name=name, sequential=True, seed=seed)


def _flatten(module, nn, prefix: str):
    """``(path, module)`` for every leaf, nested Sequentials opened in order."""
    for child_name, child in module.named_children():
        path = f"{prefix}{child_name}"
        if isinstance(child, nn.Sequential):
            yield from _flatten(child, nn, f"{path}.")
        else:
            yield path, child


def _linear(builder: Builder, name: str, source: str, layer, where: str) -> str:
    if layer.in_features != builder.nodes[source].size:
        raise ModelImportError(
            f"{builder.source}: {where} takes {layer.in_features} features but receives "
            f"{builder.nodes[source].size}"
        )
    weight = _array(layer.weight).T  # torch keeps (out, in); graphnet (in, out)
    bias = None if layer.bias is None else _array(layer.bias)
    return builder.add_dense(
        name, [(source, weight)], layer.out_features, bias, use_bias=layer.bias is not None,
        trainable=bool(layer.weight.requires_grad), origin=where,
    )


def _array(parameter) -> np.ndarray:
    value = parameter.detach().cpu()
    if not value.is_floating_point():
        raise ModelImportError(f"parameter of dtype {value.dtype} is not floating point")
    if value.dtype not in (value.new_empty(0).float().dtype, value.new_empty(0).double().dtype):
        value = value.float()  # half precision: widened exactly
    return value.numpy().copy()
