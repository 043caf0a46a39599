"""ONNX import: ``gn.from_onnx``.

Reads what torch.onnx (both exporters), skl2onnx and Keras's ONNX export
write for dense models: ``MatMul``, ``Gemm`` (``transB=1`` is PyTorch's
layout, transposed here), ``Add``/``Sub``/``Mul``/``Div`` with constants
(biases and per-feature scalings, as in a folded batch norm),
``BatchNormalization`` (inference), ``Concat`` along the features, float to
float ``Cast``, ``Identity``, ``Dropout`` (inference), ``Flatten``,
``Reshape``/``Squeeze``/``Unsqueeze`` that keep ``(batch, features)`` (with
the ``Shape``/``Gather`` arithmetic torch writes for ``x.view(x.size(0),
-1)``), ``Constant``, and the activations: one operator each (``Relu``,
``LeakyRelu``, ``Elu``, ``Selu``, ``Gelu``, ``Sigmoid``, ``Tanh``,
``Softplus``, ``Softmax``, ``HardSigmoid``, ``Softsign``, ``Mish``) or their
usual expansions, recognised by data flow (:mod:`graphnet.interop._expressions`).

A sum of layer outputs is one node (as in :mod:`graphnet.interop._builder`);
a constant scaling of a node's output is a frozen synapse. A classifier's
label branch (outputs that are labels, ``ArgMax``, ``ZipMap``,
``ArrayFeatureExtractor``, ...) is dropped with a logged note; a ``ZipMap``
output keeps its probabilities under its name. skl2onnx's binary
probabilities ``[1 - p, p]`` become a two-unit softmax (``softmax([0, z])``
is exactly that). Outputs keep the model's order and names.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelFileError, ModelImportError
from . import _expressions as ex
from ._builder import Builder, Concat, require, unexpected_as
from ._onnx_files import load

__all__ = ["from_onnx"]

logger = logging.getLogger(__name__)

_ALIASES = ("Identity", "Dropout", "Cast", "Flatten", "Reshape", "Squeeze", "Unsqueeze")
_LABEL_BRANCH = ("ArgMax", "ZipMap", "ArrayFeatureExtractor", "Reshape", "Cast", "Binarizer", "Identity",
                 "LabelEncoder", "Constant", "Squeeze", "Unsqueeze")


@dataclass
class Affine:
    """``bias + Σ src @ W`` not yet given a node: what MatMul/Gemm and the
    arithmetic on them build up. ``terms``: ``(src, W, trainable)``."""

    terms: list[tuple[str, np.ndarray, bool]]
    bias: np.ndarray | None
    size: int
    bias_trainable: bool = True


@dataclass(frozen=True)
class Shape:
    """A tensor's shape as data: entries are ``"batch"`` or ints."""

    entries: tuple
    scalar: bool = False


@dataclass(frozen=True)
class Unsqueezed:
    """A (batch, features) value with unit axes inserted, awaiting its Squeeze."""

    value: Any
    axes: tuple[int, ...]


def from_onnx(path: str | os.PathLike, *, loss=None, name: str | None = None, seed: int | None = None,
              external_data: bool = False):
    """A Graph read from an ONNX file of dense layers.

    Parameters
    ----------
    path : str or PathLike
    loss : str, dict, or dict output name -> loss, optional
        By default each output gets the loss its activation implies.
    name : str, optional
        Of the graph; by default the ONNX graph's name.
    seed : int, optional
    external_data : bool
        Read weights kept in external files (what torch's dynamo exporter
        writes for large models), only from the model's own folder.

    Raises
    ------
    ModelFileError
        When the file cannot be read, or uses external data not allowed.
    ModelImportError
        Naming the ONNX node and operator that graphnet cannot represent.
    """
    onnx = require("onnx", "from_onnx")
    label = os.fspath(path)
    model = load(onnx, label, external_data)
    with unexpected_as(ModelFileError, label):
        return _Reader(model, onnx, label).run(loss=loss, name=name, seed=seed)


class _Reader:
    def __init__(self, model, onnx, label: str):
        self.onnx = onnx
        self.graph = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        self.builder = Builder(f"ONNX model {label!r}")
        self.values: dict[str, Any] = {}  # tensor -> ndarray, node name, Affine, Concat, Shape, expression
        self.resolved: dict[str, Any] = {}  # expression tensor -> the value it resolved to
        self.dtype = "float32"

    def fail(self, node, message: str) -> ModelImportError:
        return ModelImportError(
            f"{self.builder.source}: node {node.name or '(unnamed)'!r} ({node.op_type}): {message}"
        )

    # -------------------------------------------------------------- driving
    def run(self, loss, name, seed):
        numpy_helper = self.onnx.numpy_helper
        for tensor in self.graph.initializer:
            self.values[tensor.name] = numpy_helper.to_array(tensor)
        self._inputs()
        outputs = self._kept_outputs()
        nodes = self._needed(outputs)
        self._count_readers(nodes, outputs)
        from ._onnx_ops import OPS

        for index, node in nodes:
            if node.domain not in ("", "ai.onnx"):
                raise self.fail(node, f"operator domain {node.domain!r} is not supported")
            handler = OPS.get(node.op_type)
            if handler is None:
                raise self.fail(node, f"operator {node.op_type!r} cannot be imported; supported: "
                                      f"{', '.join(sorted(OPS))}")
            self.index = index
            handler(self, node)
        names = []
        for out_name, tensor in outputs:
            if tensor not in self.values:
                raise ModelImportError(f"{self.builder.source}: output {out_name!r} is never computed")
            target = _node_name(out_name)
            node = self.node_of(self.values[tensor], tensor, target)
            if self.builder.nodes[node].kind == "input":
                raise ModelImportError(f"{self.builder.source}: output {out_name!r} is an input passed through")
            if node in names:
                raise ModelImportError(f"{self.builder.source}: output {out_name!r} repeats another output")
            self.builder.rename(node, target)
            self._renamed(node, target)
            names.append(target)
        return self.builder.build(names, loss=loss, dtype=self.dtype,
                                  name=name or self.graph.name or "onnx", seed=seed)

    def _inputs(self) -> None:
        elems = {self.onnx.TensorProto.FLOAT: "float32", self.onnx.TensorProto.DOUBLE: "float64"}
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

    def _kept_outputs(self) -> list[tuple[str, str]]:
        """``(output name, tensor computing it)`` for the float outputs; a
        classifier's label outputs are dropped (checked in :meth:`_needed`)."""
        producers = {o: n for n in self.graph.node for o in n.output}
        floats = (self.onnx.TensorProto.FLOAT, self.onnx.TensorProto.DOUBLE)
        kept, self.dropped = [], []
        for value in self.graph.output:
            producer = producers.get(value.name)
            if value.type.HasField("tensor_type") and value.type.tensor_type.elem_type in floats:
                kept.append((value.name, value.name))
            elif producer is not None and producer.op_type == "ZipMap":
                kept.append((value.name, producer.input[0]))  # the probabilities, without the dicts
            else:
                self.dropped.append(value.name)
        if not kept:
            raise ModelImportError(f"{self.builder.source}: no output is a float tensor "
                                   f"({[o.name for o in self.graph.output]})")
        return kept

    def _needed(self, outputs) -> list[tuple[int, Any]]:
        """The nodes the kept outputs depend on, in file order; the label branch
        must be nothing but label operators."""
        producers = {o: (i, n) for i, n in enumerate(self.graph.node) for o in n.output}

        def closure(tensors) -> set[int]:
            seen, stack = set(), list(tensors)
            while stack:
                found = producers.get(stack.pop())
                if found is not None and found[0] not in seen:
                    seen.add(found[0])
                    stack.extend(t for t in found[1].input if t)
            return seen

        needed = closure(t for _, t in outputs)
        branch = closure(self.dropped) - needed
        if self.dropped:
            foreign = sorted({self.graph.node[i].op_type for i in branch} - set(_LABEL_BRANCH))
            if foreign:
                raise ModelImportError(
                    f"{self.builder.source}: outputs {self.dropped} are not float tensors and are computed "
                    f"by {foreign}, not a classifier's label branch; graphnet outputs float arrays only"
                )
            logger.info("%s: dropped the label branch (outputs %s, operators %s); kept %s",
                        self.builder.source, self.dropped,
                        sorted({self.graph.node[i].op_type for i in branch}), [n for n, _ in outputs])
        return [(i, self.graph.node[i]) for i in sorted(needed)]

    def _count_readers(self, nodes, outputs) -> None:
        """Who reads each tensor's *values*, looking through no-op aliases
        (Identity, float Cast, Reshape ...) and not counting ``Shape``."""
        self.alias: dict[str, str] = {}
        for _, node in nodes:
            if node.op_type in _ALIASES and node.input and node.output:
                self.alias[node.output[0]] = node.input[0]
        self.readers: dict[str, list[int]] = {}
        for index, node in nodes:
            if node.op_type == "Shape":
                continue
            for position, tensor in enumerate(node.input):
                if not tensor or (node.op_type in _ALIASES and position == 0):
                    continue
                self.readers.setdefault(self.canonical(tensor), []).append(index)
        self.outputs = {self.canonical(t) for _, t in outputs}

    def canonical(self, tensor: str) -> str:
        while tensor in self.alias:
            tensor = self.alias[tensor]
        return tensor

    def exclusive(self, tensor: str | None, instance: set[int]) -> bool:
        """Nothing outside ``instance`` (ONNX node indices) reads ``tensor``."""
        if tensor is None:
            return False
        tensor = self.canonical(tensor)
        return tensor not in self.outputs and all(r in instance for r in self.readers.get(tensor, []))

    def _renamed(self, old: str, new: str) -> None:
        for table in (self.values, self.resolved):
            for key, value in table.items():
                if isinstance(value, str) and value == old:
                    table[key] = new

    # ------------------------------------------------------------- values
    def input(self, node, index: int):
        if index >= len(node.input) or not node.input[index]:
            return None
        name = node.input[index]
        if name not in self.values:
            raise self.fail(node, f"reads {name!r}, which nothing computes before it")
        return self.values[name]

    def set(self, node, value) -> None:
        self.values[node.output[0]] = value

    def term(self, node, index: int):
        """Input ``index`` as an expression leaf (a constant, a Var, or a tree)."""
        value = self.input(node, index)
        if isinstance(value, np.ndarray):
            return ex.Const(value.astype(np.float64))
        if isinstance(value, (str, Affine, Concat)):
            return ex.Var(self.canonical(node.input[index]))
        if isinstance(value, (ex.Var, ex.Const, ex.Op)):
            return value
        raise self.fail(node, f"input {node.input[index]!r} is a shape or a 3-D tensor, not (batch, features)")

    def layer(self, node, index: int):
        """Input ``index`` as a node or a concatenation of nodes (what a MatMul reads)."""
        value = self.input(node, index)
        tensor = node.input[index]
        if isinstance(value, np.ndarray):
            raise self.fail(node, f"input {tensor!r} is a constant where a layer's output was expected")
        if isinstance(value, (ex.Var, ex.Op)):
            value = self.resolve(value)
        if isinstance(value, Concat):
            return value
        if isinstance(value, (str, Affine)):
            return self.node_of(value, tensor)
        raise self.fail(node, f"input {tensor!r} is a shape or a 3-D tensor, not (batch, features)")

    def size(self, value) -> int:
        if isinstance(value, Affine):
            return value.size
        if isinstance(value, (str, Concat)):
            return self.builder.size_of(value)
        if isinstance(value, ex.Var):
            return self.size(self.values[value.tensor])
        if isinstance(value, ex.Op):
            return max(self.size(a) for a in value.args if not isinstance(a, ex.Const))
        raise ModelImportError(f"{self.builder.source}: {value!r} has no feature size")

    def node_of(self, value, tensor: str, name: str | None = None) -> str:
        """The node holding ``value``, made once per tensor and named after it
        (or ``name``); an expression is resolved first."""
        if isinstance(value, (ex.Var, ex.Op)):
            value = self.resolve(value)
        if isinstance(value, str):
            return value
        if isinstance(value, Concat):
            node = self.builder.identity(list(value.parts), _node_name(name or tensor), f"tensor {tensor!r}")
        elif isinstance(value, Affine):
            if not value.terms:
                raise ModelImportError(f"{self.builder.source}: {tensor!r} is a constant, not a layer")
            node = self.builder.unique(_node_name(name or tensor))
            bias = value.bias if value.bias is not None else np.zeros(value.size)
            self.builder.add_dense(node, value.terms, value.size, bias, trainable=value.bias_trainable
                                   and value.bias is not None, origin=f"tensor {tensor!r}")
        else:
            raise ModelImportError(f"{self.builder.source}: {tensor!r} is a constant or a shape, not a layer")
        canonical = self.canonical(tensor)
        if canonical in self.values and not isinstance(self.values[canonical], (ex.Var, ex.Op)):
            self.values[canonical] = node
        else:
            self.resolved[canonical] = node
        return node

    # --------------------------------------------------------- expressions
    def resolve(self, e):
        """What an expression tree computes, as a node, an Affine or a Concat."""
        if isinstance(e, ex.Var):
            return self.values[e.tensor]
        if isinstance(e, ex.Const):
            raise ModelImportError(f"{self.builder.source}: a constant is used where a layer's output was expected")
        if e.tensor is not None and self.canonical(e.tensor) in self.resolved:
            return self.resolved[self.canonical(e.tensor)]
        try:
            found = ex.match(e, self.opset)
        except ValueError as exc:
            raise ModelImportError(f"{self.builder.source}: {e.op} at {e.tensor!r}: {exc}") from None
        if found is not None:
            result = self._activate(e, *found)
        elif e.op == "Add":
            result = self._sum(e)
        elif e.op == "Mul" and sum(not isinstance(a, ex.Const) for a in e.args) == 1:
            result = self._scale(e)
        else:
            ops = sorted(_ops_in(e))
            raise ModelImportError(
                f"{self.builder.source}: the operators {ops} computing {e.tensor!r} do not form an "
                f"activation or affine map graphnet has (supported activations: "
                f"{', '.join(sorted(ex.NATIVE))} and the usual GELU, SiLU, Mish, Softsign, Softplus expansions)"
            )
        if e.tensor is not None:
            self.resolved[self.canonical(e.tensor)] = result
        return result

    def _activate(self, e, config, inner) -> str:
        instance, intermediates = ex.instance_nodes(e, inner)
        inner_tensor = inner.tensor if isinstance(inner, (ex.Var, ex.Op)) else None
        exclusive = self.exclusive(inner_tensor, instance) and all(
            self.exclusive(t, instance) for t in intermediates)
        out = e.tensor or "activation"
        holder = self.node_of(self.resolve(inner), inner_tensor or out, name=out if exclusive else None)
        return self.builder.activate(holder, config, exclusive, _node_name(out), f"{e.op} at {out!r}")

    def _affine_of(self, e, instance: set[int]) -> Affine:
        """A sub-expression as an Affine over nodes; its own terms when nothing
        else reads it, else a frozen identity from its (shared) node."""
        value = self.resolve(e)
        tensor = e.tensor if isinstance(e, (ex.Var, ex.Op)) else None
        # A part made by rewriting (tensor None) belongs to the node around it.
        own = tensor is None or self.exclusive(tensor, instance)
        if isinstance(value, Affine) and own:
            return value
        if isinstance(value, Concat):
            size, terms, offset = self.builder.size_of(value), [], 0
            for part in value.parts:
                n = self.builder.nodes[part].size
                block = np.zeros((n, size))
                block[:, offset : offset + n] = np.eye(n)
                terms.append((part, block, False))
                offset += n
            return Affine(terms, None, size, False)
        node = self.node_of(value, tensor or "affine")
        size = self.builder.nodes[node].size
        return Affine([(node, np.eye(size), False)], None, size, False)

    def _sum(self, e) -> Affine:
        total: Affine | None = None
        bias = None
        for arg in e.args:
            if isinstance(arg, ex.Const):
                bias = arg.value if bias is None else bias + arg.value
                continue
            part = self._affine_of(arg, set(e.nodes))
            total = part if total is None else _merge(total, part, self.builder.source, e.tensor)
        if bias is not None:
            bias = _broadcast(bias, total.size, self.builder.source, e.tensor)
            total = Affine(total.terms, bias if total.bias is None else total.bias + bias, total.size, True)
        return total

    def _scale(self, e) -> Affine:
        (factor,) = [a.value for a in e.args if isinstance(a, ex.Const)]
        (arg,) = [a for a in e.args if not isinstance(a, ex.Const)]
        part = self._affine_of(arg, set(e.nodes))
        factor = _broadcast(factor, part.size, self.builder.source, e.tensor)
        terms = [(src, w * factor, learn) for src, w, learn in part.terms]
        bias = None if part.bias is None else part.bias * factor
        return Affine(terms, bias, part.size, part.bias_trainable)


def _merge(a: Affine, b: Affine, source: str, tensor) -> Affine:
    if a.size != b.size:
        raise ModelImportError(f"{source}: {tensor!r} adds {a.size} features to {b.size}")
    terms: dict[str, list] = {}
    for src, w, learn in a.terms + b.terms:
        if src in terms:
            terms[src] = [terms[src][0] + w, terms[src][1] or learn]
        else:
            terms[src] = [w, learn]
    biases = [x for x in (a.bias, b.bias) if x is not None]
    return Affine([(s, w, t) for s, (w, t) in terms.items()], sum(biases) if biases else None, a.size,
                  any(x.bias is not None and x.bias_trainable for x in (a, b)))


def _broadcast(value: np.ndarray, size: int, source: str, tensor) -> np.ndarray:
    if value.size == 1:
        return np.full(size, float(value.reshape(-1)[0]))
    if value.shape not in ((size,), (1, size)):
        raise ModelImportError(f"{source}: {tensor!r} combines {size} features with a constant of shape "
                               f"{value.shape}; only scalars and per-feature vectors are supported")
    return value.reshape(size).astype(np.float64)


def _ops_in(e) -> set[str]:
    if not isinstance(e, ex.Op):
        return set()
    return {e.op}.union(*(_ops_in(a) for a in e.args))


def _node_name(tensor: str) -> str:
    """A usable node name from a tensor name (``->`` separates weight keys)."""
    name = "".join(ch for ch in tensor.replace("->", "_") if ch.isprintable()).strip()
    return name or "node"
