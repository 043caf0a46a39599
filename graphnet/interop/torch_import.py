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
An in-place call (``F.relu(h, inplace=True)``, ``nn.ReLU(inplace=True)``)
imports when its result is what later calls read; one whose result is unused,
or whose tensor is read again after it, changes values the trace does not
show, and is refused (:mod:`graphnet.interop._torch_in_place`).

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

import numpy as np

from ..errors import ModelImportError
from ._arguments import check_arguments
from ._builder import Builder
from ._guards import out_of_memory, require
from ._torch_graph import Converter
from ._torch_layers import ACTIVATIONS, functions

__all__ = ["ACTIVATIONS", "from_torch"]

logger = logging.getLogger(__name__)


def from_torch(module, *, loss=None, dtype: str | None = None, name: str | None = None,
               input_name: str | None = None, seed: int | None = None, check: bool = True):
    """A Graph (a :class:`~graphnet.Sequential` for an ``nn.Sequential``) equal to a module.

    Parameters
    ----------
    module : torch.nn.Module
        An ``nn.Sequential``, or any module whose ``forward`` torch.fx traces
        into the calls listed in :mod:`graphnet.interop.torch_import`; its inputs
        are ``(batch, features)`` tensors.
    loss : str, dict, Loss, or dict output name -> loss, optional
        The outputs' losses; by default the one each activation implies
        (softmax: ``categorical_crossentropy``, sigmoid: ``binary_crossentropy``,
        otherwise ``mse``).
    dtype : {"float32", "float64"} or numpy dtype, optional
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
        Naming the module or call and its type when it cannot be represented;
        naming the argument, before the module is traced, for a wrong
        ``loss``, ``dtype``, ``name``, ``input_name``, ``seed`` or ``check``.
    """
    check_arguments("from_torch", loss=loss, dtype=dtype, name=name, input_name=input_name, seed=seed,
                    check=check)
    dtype = None if dtype is None else np.dtype(dtype).name  # np.float64 as "float64"
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
    with out_of_memory(source):
        try:
            traced = torch.fx.symbolic_trace(module)
        except MemoryError:
            raise
        except Exception as exc:  # TraceError, and whatever forward raises on proxies
            raise ModelImportError(
                f"{source}: torch.fx cannot trace forward ({type(exc).__name__}: {str(exc)[:200]}); only a "
                f"forward made of Linear, activations, dropout, BatchNorm1d, torch.cat and + can be imported"
            ) from None
        converter = Converter(torch, traced, Builder(source), functions(torch), sequential, input_name)
        outputs = converter.run()
        linears = [m for m in converter.linears.values()]
        if dtype is None:
            dtype = "float64" if linears and all(m.weight.dtype == torch.float64 for m in linears) else "float32"
        graph = converter.builder.build(outputs, loss=loss, dtype=dtype, name=name, sequential=sequential, seed=seed)
        if check:
            converter.check(module, graph)
    return graph
