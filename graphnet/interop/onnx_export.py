"""ONNX export: ``Graph.to_onnx``.

One ONNX graph input per Input node and one output per Output node, named as
the nodes are, each of shape ``(batch, size)`` with a symbolic batch
dimension; an input that transforms its data takes it raw, ``(batch,
width)``, and the transform is written in ONNX (see
:mod:`graphnet.interop._onnx_tabular`: category strings through
``ai.onnx.ml`` LabelEncoder, embeddings as ``Gather``; the value that
stands for a missing category is in ``metadata_props``). A dense node
becomes ``Gemm`` (one source) or ``MatMul``s summed with ``Add`` (several
sources), then its activation. Weights are stored as
initializers named like ``Graph.get_weights()`` keys; every tensor a node
computes is named after the node.

Every graphnet activation is exported, as its ONNX operator where one exists
(``Selu``, ``HardSigmoid``, ``Softsign``, ``Mish`` from opset 18, ``Gelu``
from opset 20) and otherwise as exact arithmetic that the importer
recognises (SiLU as ``z * Sigmoid(z)``, GELU's ``Erf``/``Tanh`` forms, Mish
before opset 18). Float64 graphs are written so that onnxruntime's CPU
build runs them: it lacks double kernels for ``Elu``, ``LeakyRelu``,
``Selu``, ``Softplus``, ``HardSigmoid``, ``Softsign``, ``Mish``, ``Gelu``
and ``Erf``, so those activations become exact float64 arithmetic
(:data:`graphnet.interop._expressions.FORMULAS`), SiLU becomes
``z / (1 + Exp(-z))`` (onnxruntime before 1.31 fuses ``z * Sigmoid(z)`` into
an operator without a double kernel), and exact GELU takes erf in float32
(a ``Cast`` either side; within 1e-7 of graphnet's).
"""

from __future__ import annotations

import copy
import logging
import math
import os
from typing import TYPE_CHECKING

import numpy as np

from .. import activations
from .._files import atomic_write
from .._locks import read
from .._validation import check_path, is_int
from .._version import __version__
from ..errors import GraphError
from ..nodes import Input
from ..weights import refuse_non_finite
from . import _onnx_tabular
from ._guards import require
from ._expressions import DOUBLE_FORMULAS, FORMULAS

if TYPE_CHECKING:
    from ..graph import Graph

__all__ = ["MIN_OPSET", "to_onnx"]

logger = logging.getLogger(__name__)

#: Softmax over the last axis has its current meaning from opset 13.
MIN_OPSET = 13
_GELU_OPSET = 20
_MISH_OPSET = 18
_SQRT2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)

@read
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
        For a path that is not a str or os.PathLike, an opset out of range,
        a graph that cannot run, or weights holding NaN or inf.
    ModelImportError
        When the ``onnx`` package is missing.
    """
    path = check_path(path, "to_onnx: path", "the .onnx file to write")
    if graph.device != "cpu":  # the exporter reads weights as numpy arrays: a GPU graph exports a CPU copy
        graph = copy.deepcopy(graph).to("cpu")
    onnx = require("onnx", "to_onnx")
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    newest = onnx.defs.onnx_opset_version()
    if not is_int(opset, MIN_OPSET, newest + 1):
        raise GraphError(f"to_onnx: opset must be an integer from {MIN_OPSET} to {newest}, got {opset!r}")
    graph.validate()
    refuse_non_finite(graph.get_weights(), "to_onnx")  # from_onnx, like load, refuses them
    _refuse_custom(graph)
    elem = onnx.TensorProto.FLOAT if graph.dtype == np.float32 else onnx.TensorProto.DOUBLE
    writer = _Writer(set(graph.nodes), graph.dtype, helper, numpy_helper)
    # what each input's consumers read: its data, or what its transform makes of it
    tensors = {name: _onnx_tabular.write_input(writer, graph.nodes[name]) for name in graph.inputs}

    for name in graph.topological_order:
        node = graph.nodes[name]
        if isinstance(node, Input):
            continue
        incoming = graph.incoming(name)
        activation = node.activation
        linear = activation.name == "linear"
        z = name if linear else writer.fresh(f"{name}/z")
        bias = writer.constant(f"{name}.bias", node.bias)
        gathers = any(graph.nodes[s.src].categorical for s in incoming if s.src in tensors)
        if len(incoming) == 1 and not gathers:
            s = incoming[0]
            writer.op("Gemm", [tensors.get(s.src, s.src), writer.constant(s.key, s.weight), bias], z)
        else:
            total = None
            for s in incoming:
                source = tensors.get(s.src, s.src)
                if s.src in tensors and graph.nodes[s.src].categorical:  # an embedding table: rows by code
                    product = writer.op("Gather", [writer.constant(s.key, s.weight), source],
                                        writer.fresh(f"{s.key}/gather"), axis=0)
                else:
                    product = writer.op("MatMul", [source, writer.constant(s.key, s.weight)],
                                        writer.fresh(f"{s.key}/matmul"))
                total = product if total is None else writer.op("Add", [total, product],
                                                                 writer.fresh(f"{name}/sum"))
            writer.op("Add", [total, bias], z)
        if not linear:
            _write_activation(writer, activation, z, name, opset)

    def info(name: str):
        node = graph.nodes[name]
        if isinstance(node, Input) and node.transforms:
            kind = _onnx_tabular.input_type(node, elem, onnx.TensorProto)
            return helper.make_tensor_value_info(name, kind, ["batch", node.width])
        return helper.make_tensor_value_info(name, elem, ["batch", node.size])

    proto = helper.make_graph(
        writer.nodes, graph.name, [info(n) for n in graph.inputs], [info(n) for n in graph.outputs],
        initializer=writer.initializers,
    )
    opsets = [helper.make_opsetid("", opset)]
    if any(graph.nodes[n].categorical for n in graph.inputs):
        opsets.append(helper.make_opsetid("ai.onnx.ml", _onnx_tabular.ML_OPSET))
    model = helper.make_model(proto, opset_imports=opsets, producer_name="graphnet",
                              producer_version=__version__)
    model.ir_version = helper.find_min_ir_version_for(opsets)  # readable by older runtimes
    helper.set_model_props(model, _onnx_tabular.missing_metadata(graph))
    onnx.checker.check_model(model, full_check=True)
    data = model.SerializeToString()
    atomic_write(path, lambda handle: handle.write(data))
    logger.info("%s: exported to ONNX (opset %d) at %s", graph.name, opset, os.fspath(path))
    return model


def _refuse_custom(graph: Graph) -> None:
    """A custom activation has no ONNX form graphnet could know: say which node has one."""
    for name, node in graph.nodes.items():
        if not isinstance(node, Input) and not activations.is_builtin(node.activation):
            activation = node.activation
            raise GraphError(
                f"to_onnx: node {name!r} has the custom activation {activation.name!r} "
                f"({type(activation).__qualname__}), which cannot be exported to ONNX: the exporter "
                f"writes graphnet's own activations only ({', '.join(sorted(_EXPORTED))})"
            )


class _Writer:
    """Collects ONNX nodes and initializers with unique tensor names."""

    def __init__(self, reserved: set[str], dtype, helper, numpy_helper):
        self.used = set(reserved)
        self._next: dict[str, int] = {}  # base -> the suffix to try next (0: none)
        self.dtype = dtype
        self.helper = helper
        self.numpy_helper = numpy_helper
        self.nodes: list = []
        self.initializers: list = []

    def fresh(self, base: str) -> str:
        """``base``, or the first of ``base_1``, ``base_2``, ... not yet used.
        Names are only ever added, so the search for a base resumes where its
        last one ended (thousands of inputs share bases such as ``mean``)."""
        i = self._next.get(base, 0)
        name = base if i == 0 else f"{base}_{i}"
        while name in self.used:
            i += 1
            name = f"{base}_{i}"
        self._next[base] = i + 1
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
    name = activation.name
    double = writer.dtype == np.float64
    if name == "gelu":
        _write_gelu(writer, activation.approximate, z, out, opset)
    elif name == "silu" or (double and name in FORMULAS):
        # onnxruntime's CPU build has no double kernel for these operators.
        formula = DOUBLE_FORMULAS.get(name) if double else None
        _write_formula(writer, formula or FORMULAS[name], activation.get_config(), z, out)
    elif name == "mish" and opset < _MISH_OPSET:
        softplus = writer.op("Softplus", [z], writer.fresh(f"{out}/softplus"))
        writer.op("Mul", [z, writer.op("Tanh", [softplus], writer.fresh(f"{out}/tanh"))], out)
    else:
        attributes = _ATTRIBUTES.get(name, lambda a: {})(activation)
        writer.op(_ONNX_OPS[name], [z], out, **attributes)


def _write_formula(writer: _Writer, formula, config: dict, z: str, out: str, root: bool = True) -> str:
    """Write a formula of :data:`graphnet.interop._expressions.FORMULAS`."""
    if formula == "z":
        return z
    if isinstance(formula, str):
        return writer.constant(f"{out}/c", np.asarray(config[formula.lower()]))
    if isinstance(formula, float):
        return writer.constant(f"{out}/c", np.asarray(formula))
    op, *args = formula
    if not root and op in _NEUTRAL and len(args) == 2:
        # A parameter at its neutral value (an ELU's alpha = 1) writes no operator,
        # as the importer expects: a Mul by 1 would leave the input read twice.
        for parameter, other in (args, args[::-1]):
            if isinstance(parameter, str) and parameter != "z" and config[parameter.lower()] == _NEUTRAL[op]:
                return _write_formula(writer, other, config, z, out, root=False)
    inputs = [_write_formula(writer, a, config, z, out, root=False) for a in args]
    return writer.op(op, inputs, out if root else writer.fresh(f"{out}/{op.lower()}"))


def _write_gelu(writer: _Writer, approximate: bool, z: str, out: str, opset: int) -> None:
    """The Gelu operator (float32, opset 20 up) or its expansion. onnxruntime's
    CPU build has no double Erf or Gelu kernel, so a float64 graph's exact GELU
    takes erf in float32 (a Cast either side): within 1e-7 of graphnet's."""
    double = writer.dtype == np.float64
    if opset >= _GELU_OPSET and not double:
        writer.op("Gelu", [z], out, approximate="tanh" if approximate else "none")
        return

    def const(value: float) -> str:
        return writer.constant(f"{out}/c", np.asarray(value))

    def step(op_type: str, inputs: list[str], target: str | None = None, **attributes) -> str:
        return writer.op(op_type, inputs, target or writer.fresh(f"{out}/gelu"), **attributes)

    if approximate:  # 0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3)))
        cube = step("Mul", [step("Mul", [z, z]), z])
        inner = step("Add", [z, step("Mul", [cube, const(0.044715)])])
        gate = step("Tanh", [step("Mul", [inner, const(_SQRT_2_OVER_PI)])])
    else:  # 0.5 z (1 + erf(z / sqrt 2))
        scaled = step("Div", [z, const(_SQRT2)])
        if double:
            scaled = step("Cast", [scaled], to=1)  # onnx.TensorProto.FLOAT
        gate = step("Erf", [scaled])
        if double:
            gate = step("Cast", [gate], to=11)  # onnx.TensorProto.DOUBLE
    half = step("Mul", [z, step("Add", [gate, const(1.0)])])
    step("Mul", [half, const(0.5)], out)


#: The parameter values that leave an operator of a formula out.
_NEUTRAL = {"Mul": 1.0, "Add": 0.0}

#: ONNX attributes of the native activation operators.
_ATTRIBUTES = {
    "leaky_relu": lambda a: {"alpha": a.negative_slope},
    "elu": lambda a: {"alpha": a.alpha},
    "selu": lambda a: {"alpha": a.ALPHA, "gamma": a.SCALE},
    "hard_sigmoid": lambda a: {"alpha": a.alpha, "beta": a.beta},
    "softmax": lambda a: {"axis": -1},
}

#: graphnet activation names -> ONNX operators (gelu, silu and mish before
#: opset 18 are written as arithmetic).
_ONNX_OPS = {
    "relu": "Relu",
    "leaky_relu": "LeakyRelu",
    "elu": "Elu",
    "sigmoid": "Sigmoid",
    "tanh": "Tanh",
    "softplus": "Softplus",
    "softmax": "Softmax",
    "selu": "Selu",
    "hard_sigmoid": "HardSigmoid",
    "softsign": "Softsign",
    "mish": "Mish",
}
_EXPORTED = {*_ONNX_OPS, "linear", "gelu", "silu"}
