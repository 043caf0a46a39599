"""PyTorch's activations and functions as graphnet activation configs, and
parameters as numpy arrays: what :mod:`graphnet.interop.torch_import` and its
tracer (:mod:`graphnet.interop._torch_graph`) both read. torch itself is
passed in; this module does not import it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ModelImportError

__all__ = ["ACTIVATIONS", "functions", "array"]


def _leaky_relu(negative_slope=0.01) -> Any:
    return {"name": "leaky_relu", "negative_slope": float(negative_slope)}


def _elu(alpha=1.0) -> Any:
    return {"name": "elu", "alpha": float(alpha)}


def _gelu(approximate="none") -> Any:
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate={approximate!r}")
    return {"name": "gelu", "approximate": approximate == "tanh"}


def _softplus(beta=1.0, threshold=20.0) -> Any:
    # Above ``threshold`` torch returns z itself; exact softplus differs from z
    # by log1p(exp(-z)) < 2.1e-9 there, far below float32's resolution.
    if float(beta) != 1.0:
        raise ValueError(f"beta={beta}; graphnet's softplus has beta 1")
    if float(threshold) < 15.0:
        raise ValueError(f"threshold={threshold}; below 15 torch's softplus is not softplus")
    return "softplus"


def _softmax(dim=None) -> Any:
    if dim not in (None, 1, -1):
        raise ValueError(f"dim={dim}; graphnet's softmax is over the features (dim 1)")
    return "softmax"


#: torch.nn activation class names -> functions of the module's parameters
#: giving graphnet activation configs (a ValueError says why they cannot be
#: represented).
ACTIVATIONS = {
    "ReLU": lambda m: "relu",
    "LeakyReLU": lambda m: _leaky_relu(m.negative_slope),
    "ELU": lambda m: _elu(m.alpha),
    "GELU": lambda m: _gelu(m.approximate),
    "Sigmoid": lambda m: "sigmoid",
    "Tanh": lambda m: "tanh",
    "Softplus": lambda m: _softplus(m.beta, m.threshold),
    "Softmax": lambda m: _softmax(m.dim),
    "SiLU": lambda m: "silu",
    "SELU": lambda m: "selu",
    "Mish": lambda m: "mish",
    "Hardsigmoid": lambda m: {"name": "hard_sigmoid", "alpha": 1.0 / 6.0, "beta": 0.5},
    "Softsign": lambda m: "softsign",
}


def functions(torch) -> dict:
    """Activation functions and tensor methods -> (config from the call's
    extra arguments, their names in order).

    Each config function takes exactly those names as its parameters, with
    torch's defaults; any other argument of the call must be left at torch's
    default (see ``Converter``), or the call is refused.
    """
    F = torch.nn.functional
    fixed = {"relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh", "silu": "silu", "selu": "selu",
             "mish": "mish", "softsign": "softsign"}
    table: dict[Any, tuple] = {}
    for name, config in fixed.items():
        entry = (lambda config=config: config, ())
        for owner in (F, torch):
            if hasattr(owner, name):
                table[getattr(owner, name)] = entry
        table[name] = entry  # the tensor method x.relu()
    table[F.hardsigmoid] = (lambda: {"name": "hard_sigmoid", "alpha": 1.0 / 6.0, "beta": 0.5}, ())
    table[F.leaky_relu] = (_leaky_relu, ("negative_slope",))
    table[F.elu] = (_elu, ("alpha",))
    table[F.gelu] = (_gelu, ("approximate",))
    table[F.softplus] = (_softplus, ("beta", "threshold"))
    for softmax in (F.softmax, torch.softmax, "softmax"):
        table[softmax] = (_softmax, ("dim",))
    return table


def array(parameter) -> np.ndarray:
    """A parameter or buffer as a float numpy array (half precision widened exactly)."""
    value = parameter.detach().cpu()
    if not value.is_floating_point():
        raise ModelImportError(f"parameter of dtype {value.dtype} is not floating point")
    if value.dtype not in (value.new_empty(0).float().dtype, value.new_empty(0).double().dtype):
        value = value.float()
    return value.numpy().copy()

