"""Import PyTorch models: ``gn.from_torch(module)``.

The module is traced with ``torch.fx`` (nothing else is run but one check,
below), so a ``torch.nn.Sequential`` and any ``nn.Module`` whose ``forward``
is made of the following import alike:

* ``Linear`` (weights ``(out, in)`` in PyTorch, ``(in, out)`` in graphnet:
  transposed here);
* the activation modules ``ReLU``, ``LeakyReLU``, ``ELU``, ``GELU``,
  ``Sigmoid``, ``Tanh``, ``Softplus`` (beta 1), ``Softmax`` (over the
  features), ``SiLU``, ``SELU``, ``Mish``, ``Hardsigmoid``, ``Softsign``, and
  the same as functions (``F.relu``, ``torch.relu``, ``x.relu()``, ...), whose
  other arguments (``dtype``, ...) are accepted at torch's defaults;
* ``Dropout`` (and ``F.dropout``), ``Identity``, ``Flatten``/``torch.flatten``
  from dim 1 (no-ops on ``(batch, features)`` data);
* ``BatchNorm1d`` directly after a ``Linear``, folded into its weights and
  bias with the running statistics (what the module computes in eval mode);
* ``torch.cat`` along the features, and ``+`` (``torch.add``) of two tensors.

Every call is expanded in the order ``forward`` makes it, so a module used
twice is applied twice: an activation or dropout simply is. A ``Linear``
called twice shares its weights between the two uses (tied weights), which
graphnet cannot express (each synapse has its own weight): it is refused.

Outputs keep ``forward``'s order: a dict's keys name them, a tuple's entries
take the names of the nodes computing them. After building, the import is
checked: the module (put in eval mode for the call, then restored) and the
graph predict a few random rows, and a difference refuses the import. The
module runs that check with its parameters cast to the graph's dtype, so a
float16 or bfloat16 module (imported as float32, its weights widened
exactly) is compared with float32 arithmetic at float32's tolerance.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..errors import ModelImportError
from ._builder import Builder, require

__all__ = ["ACTIVATIONS", "from_torch"]

logger = logging.getLogger(__name__)


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


def _functions(torch) -> dict:
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


def from_torch(module, *, loss=None, dtype: str | None = None, name: str | None = None,
               input_name: str | None = None, seed: int | None = None, check: bool = True):
    """A Graph (a :class:`~graphnet.Sequential` for an ``nn.Sequential``) equal to a module.

    Parameters
    ----------
    module : torch.nn.Module
        An ``nn.Sequential``, or any module whose ``forward`` torch.fx traces
        into the calls listed in :mod:`graphnet.interop.torch`; its inputs
        are ``(batch, features)`` tensors.
    loss : str or dict, optional
        The outputs' losses; by default the one each activation implies
        (softmax: ``categorical_crossentropy``, sigmoid: ``binary_crossentropy``,
        otherwise ``mse``).
    dtype : {"float32", "float64"}, optional
        By default float64 when the Linear weights are, else float32 (also for
        float16 and bfloat16 weights, which float32 holds exactly).
    name : str, optional
        Of the graph; ``"sequential"`` for an ``nn.Sequential``, else the
        module's class name.
    input_name : str, optional
        Of the input node when there is one input; by default ``"input"`` for an
        ``nn.Sequential``, else ``forward``'s argument name. ``Linear`` layers keep
        their attribute paths unless those end in positions (``"0"``, ``"2"``),
        which become ``dense``, ``dense_1``, ... as in ``gn.Sequential``.
    seed : int, optional
    check : bool
        Compare the graph's predictions with the module's on a few random rows,
        the module running with its parameters and buffers cast to ``dtype``
        (a float16 module is checked against its float32 arithmetic), within
        1e-4 (float32) or 1e-9 (float64) times the outputs' magnitude above 1.

    Raises
    ------
    ModelImportError
        Naming the module or call and its type when it cannot be represented.
    """
    torch = require("torch", "from_torch")
    nn = torch.nn
    if not isinstance(module, nn.Module):
        raise ModelImportError(f"from_torch expects a torch.nn.Module, got {type(module).__module__}."
                               f"{type(module).__qualname__}")
    if type(module).__module__.startswith("torch.nn.") and not isinstance(module, nn.Sequential):
        module = nn.Sequential(module)  # a single built-in layer: fx does not trace into those
    sequential = isinstance(module, nn.Sequential)
    name = name or ("sequential" if sequential else type(module).__name__)
    source = f"torch {'Sequential' if sequential else 'module'} {name!r}"
    try:
        traced = torch.fx.symbolic_trace(module)
    except Exception as exc:  # TraceError, and whatever forward raises on proxies
        raise ModelImportError(
            f"{source}: torch.fx cannot trace forward ({type(exc).__name__}: {str(exc)[:200]}); only a "
            f"forward made of Linear, activations, dropout, BatchNorm1d, torch.cat and + can be imported"
        ) from None
    from ._torch_graph import Converter

    converter = Converter(torch, traced, Builder(source), _functions(torch), sequential, input_name)
    outputs = converter.run()
    linears = [m for m in converter.linears.values()]
    if dtype is None:
        dtype = "float64" if linears and all(m.weight.dtype == torch.float64 for m in linears) else "float32"
    graph = converter.builder.build(outputs, loss=loss, dtype=dtype, name=name, sequential=sequential, seed=seed)
    if check:
        converter.check(module, graph)
    return graph


def array(parameter) -> np.ndarray:
    """A parameter or buffer as a float numpy array (half precision widened exactly)."""
    value = parameter.detach().cpu()
    if not value.is_floating_point():
        raise ModelImportError(f"parameter of dtype {value.dtype} is not floating point")
    if value.dtype not in (value.new_empty(0).float().dtype, value.new_empty(0).double().dtype):
        value = value.float()
    return value.numpy().copy()

