"""ONNX import: ``gn.from_onnx``.

Reads dense graphs: ``MatMul``, ``Gemm``, ``Add``, ``Identity``, ``Dropout``
and ``Flatten`` (no-ops at inference), ``Constant``, and the activations
``Relu``, ``LeakyRelu``, ``Elu``, ``Gelu``, ``Sigmoid``, ``Tanh``,
``Softplus``, ``Softmax`` (plus the two GELU expansions the exporter writes).
ONNX weights of ``MatMul`` are ``(in, out)`` like graphnet's; ``Gemm`` with
``transB=1`` (what PyTorch exports) is transposed here. Models whose weights
live in external files are refused: loading never reads other files.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ModelFileError, ModelImportError
from ._builder import Builder, require, unexpected_as
from .onnx_export import EXPANSIONS, is_step

__all__ = ["from_onnx"]

logger = logging.getLogger(__name__)


@dataclass
class _Affine:
    """``bias + Σ src @ W`` not yet given a node: what MatMul/Gemm/Add build up."""

    terms: list[tuple[str, np.ndarray]] = field(default_factory=list)
    bias: np.ndarray | None = None

    @property
    def size(self) -> int:
        return (self.terms[0][1].shape[1] if self.terms else self.bias.shape[0])


def from_onnx(path: str | os.PathLike, *, loss=None, name: str | None = None, seed: int | None = None):
    """A Graph read from an ONNX file of dense layers.

    Parameters
    ----------
    path : str or PathLike
    loss : str, dict, or dict output name -> loss, optional
        By default each output gets the loss its activation implies.
    name : str, optional
        Of the graph; by default the ONNX graph's name.
    seed : int, optional

    Raises
    ------
    ModelFileError
        When the file cannot be read or uses external data.
    ModelImportError
        Naming the ONNX node and operator that graphnet cannot represent.
    """
    onnx = require("onnx", "from_onnx")
    label = os.fspath(path)
    try:
        model = onnx.load(label, load_external_data=False)
    except FileNotFoundError:
        raise ModelFileError(f"{label}: no such file") from None
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ModelFileError(f"{label}: not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    with unexpected_as(ModelFileError, label):
        return _Reader(model, onnx, label).run(loss=loss, name=name, seed=seed)


class _Reader:
    def __init__(self, model, onnx, label: str):
        self.onnx = onnx
        self.label = label
        self.graph = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        self.builder = Builder(f"ONNX model {label!r}")
        self.values: dict[str, Any] = {}  # tensor name -> node name, _Affine or ndarray
        self.dtype = "float32"
        # How often each tensor is read (outputs count): decides whether an
        # activation may fold into the node that produced its input.
        self.uses = Counter(i for n in self.graph.node for i in n.input if i)
        self.uses.update(o.name for o in self.graph.output)

    def fail(self, node, message: str):
        return ModelImportError(
            f"{self.builder.source}: node {node.name or '(unnamed)'!r} ({node.op_type}): {message}"
        )

    # -------------------------------------------------------------- driving
    def run(self, loss, name, seed):
        onnx = self.onnx
        numpy_helper = onnx.numpy_helper
        for tensor in self.graph.initializer:
            if tensor.data_location == onnx.TensorProto.EXTERNAL:
                raise ModelFileError(f"{self.label}: initializer {tensor.name!r} lives in an external "
                                     f"file; graphnet only reads self-contained models")
            self.values[tensor.name] = numpy_helper.to_array(tensor)
        elems = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.DOUBLE: "float64"}
        for value in self.graph.input:
            if value.name in self.values:
                continue  # an initializer listed as an input (older exporters)
            tensor = value.type.tensor_type
            dims = tensor.shape.dim
            if tensor.elem_type not in elems or len(dims) != 2 or not dims[1].HasField("dim_value"):
                raise ModelImportError(
                    f"{self.builder.source}: input {value.name!r} must be a float tensor of shape "
                    f"(batch, features)"
                )
            self.dtype = elems[tensor.elem_type]
            self.values[value.name] = self.builder.add_input(
                _node_name(value.name), int(dims[1].dim_value), f"input {value.name!r}"
            )
        nodes = list(self.graph.node)
        i = 0
        while i < len(nodes):
            node = nodes[i]
            if node.domain not in ("", "ai.onnx"):
                raise self.fail(node, f"operator domain {node.domain!r} is not supported")
            matched = self._match_expansion(nodes, i)
            if matched:
                i += matched
                continue
            handler = _OPS.get(node.op_type)
            if handler is None:
                raise self.fail(node, f"operator {node.op_type!r} cannot be imported; supported: "
                                      f"{', '.join(sorted(_OPS))}")
            handler(self, node)
            i += 1
        outputs = []
        for value in self.graph.output:
            if value.name not in self.values:
                raise ModelImportError(f"{self.builder.source}: output {value.name!r} is never computed")
            node = self._node(self.values[value.name], value.name)
            if self.builder.nodes[node].kind == "input":
                raise ModelImportError(f"{self.builder.source}: output {value.name!r} is an input passed through")
            if node in outputs:
                raise ModelImportError(f"{self.builder.source}: output {value.name!r} repeats another output")
            target = _node_name(value.name)
            self.builder.rename(node, target)
            self._renamed(node, target)
            outputs.append(target)
        return self.builder.build(outputs, loss=loss, dtype=self.dtype,
                                  name=name or self.graph.name or "onnx", seed=seed)

    def _renamed(self, old: str, new: str) -> None:
        for key, value in self.values.items():
            if isinstance(value, str) and value == old:
                self.values[key] = new

    # ------------------------------------------------------------- values
    def _input(self, node, index: int):
        if index >= len(node.input) or not node.input[index]:
            return None
        name = node.input[index]
        if name not in self.values:
            raise self.fail(node, f"reads {name!r}, which nothing computes before it")
        return self.values[name]

    def _const(self, node, index: int, what: str) -> np.ndarray:
        value = self._input(node, index)
        if not isinstance(value, np.ndarray):
            raise self.fail(node, f"{what} must be a constant (an initializer)")
        if not np.issubdtype(value.dtype, np.floating):
            raise self.fail(node, f"{what} has dtype {value.dtype}, expected floats")
        return value.astype(np.float64)

    def _node(self, value, tensor: str, name: str | None = None) -> str:
        """The node holding ``value``: an affine value becomes a linear node
        (called ``name``, by default after ``tensor``), made once and reused by
        every reader of ``tensor``."""
        if isinstance(value, str):
            return value
        if isinstance(value, _Affine):
            node = self.builder.unique(_node_name(name or tensor))
            terms = value.terms
            if not terms:
                raise ModelImportError(f"{self.builder.source}: {tensor!r} is a constant, not a layer")
            bias = value.bias if value.bias is not None else np.zeros(value.size)
            self.builder.add_dense(node, terms, value.size, bias, origin=f"tensor {tensor!r}")
            self.values[tensor] = node
            return node
        raise ModelImportError(f"{self.builder.source}: {tensor!r} is a constant, not a layer")

    def _activate(self, tensor: str, reads: int, config, out: str, origin: str) -> str:
        """Apply an activation to ``tensor`` (read ``reads`` times by this
        activation); it folds into the producing node when nothing else reads
        ``tensor``. A fresh node is named after the activation's output."""
        value = self.values[tensor]
        exclusive = self.uses[tensor] == reads
        holder = self._node(value, tensor, name=out if exclusive else None)
        return self.builder.activate(holder, config, exclusive, _node_name(out), origin)

    def _affine(self, node, value, tensor: str) -> _Affine:
        """``value`` as an affine expression (a node's output x is ``x @ I``)."""
        if isinstance(value, _Affine):
            return value
        if isinstance(value, str):
            size = self.builder.nodes[value].size
            return _Affine([(value, np.eye(size))], None)
        raise self.fail(node, f"{tensor!r} is a constant where a layer's output was expected")

    def _source(self, node, index: int) -> str:
        value = self._input(node, index)
        return self._node(value, node.input[index])

    def _set(self, node, value) -> None:
        self.values[node.output[0]] = value

    # ------------------------------------------------------- expansions
    def _match_expansion(self, nodes, start: int) -> int:
        """Nodes consumed when ``nodes[start:]`` is one of the exporter's
        activation expansions applied to a pre-activation; 0 when it is not."""
        for config, steps in EXPANSIONS:
            if start + len(steps) > len(nodes) or nodes[start].op_type != steps[0][0]:
                continue
            z = nodes[start].input[0] if nodes[start].input else None
            if z not in self.values or isinstance(self.values[z], np.ndarray):
                continue
            produced: list[str] = []
            for j, (op_type, args) in enumerate(steps):
                node = nodes[start + j]
                if node.op_type != op_type or len(node.input) != len(args) or len(node.output) != 1:
                    break
                if not all(self._matches(node.input[k], arg, z, produced) for k, arg in enumerate(args)):
                    break
                reads = sum(1 for later in steps[j + 1:] for a in later[1] if is_step(a) and a == j)
                if j < len(steps) - 1 and self.uses[node.output[0]] != reads:
                    break  # an intermediate value read elsewhere: not a pure activation
                produced.append(node.output[0])
            else:
                out = produced[-1]
                reads = sum(1 for _, args in steps for a in args if a == "z")
                self.values[out] = self._activate(z, reads, dict(config), out,
                                                  f"{config['name']} at {out!r}")
                return len(steps)
        return 0

    def _matches(self, tensor: str, arg, z: str, produced: list[str]) -> bool:
        if arg == "z":
            return tensor == z
        if is_step(arg):
            return arg < len(produced) and tensor == produced[arg]
        value = self.values.get(tensor)
        return isinstance(value, np.ndarray) and value.size == 1 and bool(
            np.isclose(float(value.reshape(())), arg, rtol=1e-6, atol=0.0)
        )


# ------------------------------------------------------------------ operators
def _matmul(reader: _Reader, node) -> None:
    source = reader._source(node, 0)
    weight = reader._const(node, 1, "the weight (input B)")
    size = reader.builder.nodes[source].size
    if weight.ndim != 2 or weight.shape[0] != size:
        raise reader.fail(node, f"weight of shape {weight.shape} does not take {size} features")
    reader._set(node, _Affine([(source, weight)], None))


def _gemm(reader: _Reader, node) -> None:
    attrs = _attributes(reader, node)
    if attrs.get("transA", 0):
        raise reader.fail(node, "transA=1 is not supported")
    source = reader._source(node, 0)
    weight = reader._const(node, 1, "the weight (input B)")
    if weight.ndim != 2:
        raise reader.fail(node, f"weight has shape {weight.shape}, expected a matrix")
    if attrs.get("transB", 0):
        weight = weight.T  # (out, in) as PyTorch exports it -> graphnet's (in, out)
    size = reader.builder.nodes[source].size
    if weight.shape[0] != size:
        raise reader.fail(node, f"weight of shape {weight.shape} does not take {size} features")
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    if alpha != 1.0:
        weight = weight * alpha
    bias = None
    if len(node.input) > 2 and node.input[2]:
        bias = _bias(reader, node, reader._const(node, 2, "the bias (input C)"), weight.shape[1]) * beta
    reader._set(node, _Affine([(source, weight)], bias))


def _bias(reader: _Reader, node, value: np.ndarray, size: int) -> np.ndarray:
    if value.size == 1:
        return np.full(size, float(value.reshape(-1)[0]))
    if value.shape not in ((size,), (1, size)):
        raise reader.fail(node, f"bias of shape {value.shape} does not fit {size} features")
    return value.reshape(size)


def _add(reader: _Reader, node) -> None:
    a, b = reader._input(node, 0), reader._input(node, 1)
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        reader._set(node, a + b)
        return
    if isinstance(a, np.ndarray):
        a, b = b, a
    left = reader._affine(node, a, node.input[0])
    if isinstance(b, np.ndarray):
        bias = _bias(reader, node, b.astype(np.float64), left.size)
        total = bias if left.bias is None else left.bias + bias
        reader._set(node, _Affine(list(left.terms), total))
        return
    right = reader._affine(node, b, node.input[1])
    if left.size != right.size:
        raise reader.fail(node, f"adds {left.size} features to {right.size}")
    terms = dict(left.terms)
    for src, weight in right.terms:
        if src in terms:
            raise reader.fail(node, f"adds two products of {src!r}; graphnet joins two nodes by one synapse")
        terms[src] = weight
    biases = [x for x in (left.bias, right.bias) if x is not None]
    reader._set(node, _Affine(list(terms.items()), sum(biases) if biases else None))


def _passthrough(reader: _Reader, node) -> None:
    if node.op_type == "Flatten" and _attributes(reader, node).get("axis", 1) != 1:
        raise reader.fail(node, "only Flatten(axis=1), a no-op on (batch, features) data, is supported")
    reader.values[node.output[0]] = reader._input(node, 0)


def _constant(reader: _Reader, node) -> None:
    attrs = {a.name: a for a in node.attribute}
    if "value" not in attrs:
        raise reader.fail(node, "only Constant with a tensor 'value' is supported")
    reader._set(node, reader.onnx.numpy_helper.to_array(attrs["value"].t))


def _activation(config_for):
    def handle(reader: _Reader, node) -> None:
        attrs = _attributes(reader, node)
        try:
            config = config_for(attrs, reader.opset)
        except ValueError as exc:
            raise reader.fail(node, str(exc)) from None
        if isinstance(reader._input(node, 0), np.ndarray):
            raise reader.fail(node, "is applied to a constant")
        reads = sum(1 for name in node.input if name == node.input[0])
        reader._set(node, reader._activate(node.input[0], reads, config, node.output[0],
                                           f"node {node.name!r} ({node.op_type})"))

    return handle


def _softmax(attrs, opset):
    axis = attrs.get("axis", -1 if opset >= 13 else 1)
    if axis not in (-1, 1):
        raise ValueError(f"softmax over axis {axis}; graphnet's is over the features")
    return "softmax"


def _selu(attrs, opset):
    from ..activations import SELU

    alpha, gamma = attrs.get("alpha", 1.67326319217681884765625), attrs.get("gamma", 1.05070102214813232421875)
    if not (np.isclose(alpha, SELU.ALPHA, rtol=1e-6) and np.isclose(gamma, SELU.SCALE, rtol=1e-6)):
        raise ValueError(f"Selu with alpha={alpha}, gamma={gamma}; graphnet's selu has the standard "
                         f"constants ({SELU.ALPHA:.6f}, {SELU.SCALE:.6f})")
    return "selu"


def _hard_sigmoid(attrs, opset):
    alpha = attrs.get("alpha", 0.2)
    # ONNX attributes are float32: 1/6 (PyTorch's and Keras 3's slope) arrives as 0.16666667.
    if np.float32(alpha) == np.float32(1.0 / 6.0):
        alpha = 1.0 / 6.0
    return {"name": "hard_sigmoid", "alpha": alpha, "beta": attrs.get("beta", 0.5)}


def _gelu(attrs, opset):
    approximate = attrs.get("approximate", "none")
    approximate = approximate.decode() if isinstance(approximate, bytes) else approximate
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate={approximate!r}")
    return {"name": "gelu", "approximate": approximate == "tanh"}


_OPS = {
    "MatMul": _matmul,
    "Gemm": _gemm,
    "Add": _add,
    "Identity": _passthrough,
    "Dropout": _passthrough,
    "Flatten": _passthrough,
    "Constant": _constant,
    "Relu": _activation(lambda a, o: "relu"),
    "LeakyRelu": _activation(lambda a, o: {"name": "leaky_relu", "negative_slope": a.get("alpha", 0.01)}),
    "Elu": _activation(lambda a, o: {"name": "elu", "alpha": a.get("alpha", 1.0)}),
    "Sigmoid": _activation(lambda a, o: "sigmoid"),
    "Tanh": _activation(lambda a, o: "tanh"),
    "Softplus": _activation(lambda a, o: "softplus"),
    "Softmax": _activation(_softmax),
    "Gelu": _activation(_gelu),
    "Selu": _activation(_selu),
    "HardSigmoid": _activation(_hard_sigmoid),
    "Softsign": _activation(lambda a, o: "softsign"),
    "Mish": _activation(lambda a, o: "mish"),
}


def _attributes(reader: _Reader, node) -> dict[str, Any]:
    values = {a.name: reader.onnx.helper.get_attribute_value(a) for a in node.attribute}
    # ONNX float attributes are float32: read 0.01f back as 0.01, not 0.009999999776.
    return {k: float(str(np.float32(v))) if isinstance(v, float) else v for k, v in values.items()}


def _node_name(tensor: str) -> str:
    """A usable node name from a tensor name (``->`` separates weight keys)."""
    name = "".join(ch for ch in tensor.replace("->", "_") if ch.isprintable()).strip()
    return name or "node"
