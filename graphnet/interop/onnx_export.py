"""ONNX export: ``Graph.to_onnx``.

One ONNX graph input per Input node and one output per Output node, named as
the nodes are, each of shape ``(batch, size)`` with a symbolic batch
dimension. A dense node becomes ``Gemm`` (one source) or ``MatMul``s summed
with ``Add`` (several sources), then its activation. Weights are stored as
initializers named like ``Graph.get_weights()`` keys; every tensor a node
computes is named after the node. Activations without an ONNX operator at the
chosen opset (GELU before 20, Mish before 18, SiLU always) are written out as
arithmetic (:data:`EXPANSIONS`, which the importer recognises too).
"""

from __future__ import annotations

import logging
import math
import os
from typing import TYPE_CHECKING

import numpy as np

from .._version import __version__
from ..checks import is_int
from ..errors import GraphError
from ..files import atomic_write
from ..nodes import Input
from ._builder import require

if TYPE_CHECKING:
    from ..graph import Graph

__all__ = ["to_onnx", "MIN_OPSET", "EXPANSIONS", "is_step"]

logger = logging.getLogger(__name__)

#: Softmax over the last axis has its current meaning from opset 13.
MIN_OPSET = 13
_SQRT2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)

#: Activations written as arithmetic where ONNX has no operator for them (or
#: not at the opset asked for): ``(activation config, steps)``, each step an
#: ``(op, inputs)`` pair where "z" is the pre-activation, an int the output of
#: an earlier step and a float a constant.
EXPANSIONS = (
    ({"name": "gelu", "approximate": False},
     (("Div", ("z", _SQRT2)), ("Erf", (0,)), ("Add", (1, 1.0)), ("Mul", ("z", 2)), ("Mul", (3, 0.5)))),
    ({"name": "gelu", "approximate": True},
     (("Mul", ("z", "z")), ("Mul", (0, "z")), ("Mul", (1, 0.044715)), ("Add", ("z", 2)),
      ("Mul", (3, _SQRT_2_OVER_PI)), ("Tanh", (4,)), ("Add", (5, 1.0)), ("Mul", ("z", 6)),
      ("Mul", (7, 0.5)))),
    ({"name": "silu"}, (("Sigmoid", ("z",)), ("Mul", ("z", 0)))),
    ({"name": "mish"}, (("Softplus", ("z",)), ("Tanh", (0,)), ("Mul", ("z", 1)))),
)
#: The opset from which an expanded activation has an operator of its own.
_NATIVE_FROM = {"gelu": 20, "mish": 18}


def to_onnx(graph: Graph, path: str | os.PathLike, opset: int = 17):
    """Write ``graph`` as an ONNX model checked by ``onnx.checker``.

    Parameters
    ----------
    graph : Graph
    path : str or PathLike
    opset : int
        ONNX operator set, from 13 to the newest the installed ``onnx`` knows.

    Returns
    -------
    onnx.ModelProto
        The model written.

    Raises
    ------
    GraphError
        For an opset out of range, or a graph that cannot run.
    ModelImportError
        When the ``onnx`` package is missing.
    """
    onnx = require("onnx", "to_onnx")
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    newest = onnx.defs.onnx_opset_version()
    if not is_int(opset, MIN_OPSET, newest + 1):
        raise GraphError(f"to_onnx: opset must be an integer from {MIN_OPSET} to {newest}, got {opset!r}")
    graph.validate()
    elem = onnx.TensorProto.FLOAT if graph.dtype == np.float32 else onnx.TensorProto.DOUBLE
    writer = _Writer(set(graph.nodes), graph.dtype, helper, numpy_helper)

    for name in graph.topological_order:
        node = graph.nodes[name]
        if isinstance(node, Input):
            continue
        incoming = graph.incoming(name)
        activation = node.activation
        linear = activation.name == "linear"
        z = name if linear else writer.fresh(f"{name}/z")
        bias = writer.constant(f"{name}.bias", node.bias)
        if len(incoming) == 1:
            s = incoming[0]
            writer.op("Gemm", [s.src, writer.constant(s.key, s.weight), bias], z)
        else:
            total = None
            for s in incoming:
                product = writer.op("MatMul", [s.src, writer.constant(s.key, s.weight)],
                                    writer.fresh(f"{s.key}/matmul"))
                total = product if total is None else writer.op("Add", [total, product],
                                                                 writer.fresh(f"{name}/sum"))
            writer.op("Add", [total, bias], z)
        if not linear:
            _write_activation(writer, activation, z, name, opset)

    def info(name: str):
        return helper.make_tensor_value_info(name, elem, ["batch", graph.nodes[name].size])

    proto = helper.make_graph(
        writer.nodes, graph.name, [info(n) for n in graph.inputs], [info(n) for n in graph.outputs],
        initializer=writer.initializers,
    )
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(proto, opset_imports=opsets, producer_name="graphnet",
                              producer_version=__version__)
    model.ir_version = helper.find_min_ir_version_for(opsets)  # readable by older runtimes
    onnx.checker.check_model(model, full_check=True)
    data = model.SerializeToString()
    atomic_write(path, lambda handle: handle.write(data))
    logger.info("%s: exported to ONNX (opset %d) at %s", graph.name, opset, os.fspath(path))
    return model


class _Writer:
    """Collects ONNX nodes and initializers with unique tensor names."""

    def __init__(self, reserved: set[str], dtype, helper, numpy_helper):
        self.used = set(reserved)
        self.dtype = dtype
        self.helper = helper
        self.numpy_helper = numpy_helper
        self.nodes: list = []
        self.initializers: list = []

    def fresh(self, base: str) -> str:
        name, i = base, 1
        while name in self.used:
            name, i = f"{base}_{i}", i + 1
        self.used.add(name)
        return name

    def constant(self, base: str, value) -> str:
        name = self.fresh(base)
        array = np.ascontiguousarray(np.asarray(value, dtype=self.dtype))
        self.initializers.append(self.numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str, **attributes) -> str:
        self.nodes.append(self.helper.make_node(op_type, inputs, [output], name=f"{output}/{op_type}",
                                                **attributes))
        return output


def _write_activation(writer: _Writer, activation, z: str, out: str, opset: int) -> None:
    name, config = activation.name, activation.get_config()
    native = name in _ONNX_OPS and opset >= _NATIVE_FROM.get(name, 0)
    steps = next((steps for known, steps in EXPANSIONS if known == config), None)
    if steps is not None and not native:
        produced: list[str] = []
        for i, (op_type, args) in enumerate(steps):
            inputs = []
            for arg in args:
                if arg == "z":
                    inputs.append(z)
                elif is_step(arg):
                    inputs.append(produced[arg])
                else:
                    inputs.append(writer.constant(f"{out}/c", np.asarray(arg)))
            target = out if i == len(steps) - 1 else writer.fresh(f"{out}/{name}")
            produced.append(writer.op(op_type, inputs, target))
        return
    attributes = {
        "leaky_relu": lambda a: {"alpha": a.negative_slope},
        "elu": lambda a: {"alpha": a.alpha},
        "softmax": lambda a: {"axis": -1},
        "gelu": lambda a: {"approximate": "tanh" if a.approximate else "none"},
        "selu": lambda a: {"alpha": a.ALPHA, "gamma": a.SCALE},
        "hard_sigmoid": lambda a: {"alpha": a.alpha, "beta": a.beta},
    }.get(name, lambda a: {})(activation)
    writer.op(_ONNX_OPS[name], [z], out, **attributes)


#: graphnet activation names -> ONNX operators.
_ONNX_OPS = {
    "relu": "Relu",
    "leaky_relu": "LeakyRelu",
    "elu": "Elu",
    "sigmoid": "Sigmoid",
    "tanh": "Tanh",
    "softplus": "Softplus",
    "softmax": "Softmax",
    "gelu": "Gelu",
    "selu": "Selu",
    "hard_sigmoid": "HardSigmoid",
    "softsign": "Softsign",
    "mish": "Mish",
}


def is_step(arg) -> bool:
    """A reference to an earlier step (an int; the constants are floats)."""
    return isinstance(arg, int) and not isinstance(arg, bool)
