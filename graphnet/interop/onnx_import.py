"""ONNX import: ``gn.from_onnx``.

Reads what torch.onnx (both exporters), skl2onnx and Keras's ONNX export
write for dense models: ``MatMul``, ``Gemm`` (``transB=1`` is PyTorch's
layout, transposed here), ``Add``/``Sub``/``Mul``/``Div`` with constants
(biases and per-feature scalings, as in a folded batch norm),
``BatchNormalization`` (inference), ``Concat`` along the features, ``Cast``
to float32 or float64 (a narrower float, float16 or bfloat16, is refused),
``Identity``, ``Dropout`` (inference), ``Flatten``,
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

A hostile file is refused in time and memory bounded by its size: the file
and the graph are checked as ONNX first (:mod:`graphnet.interop._onnx_files`),
expressions are DAGs visited once per tensor, and every array the import
makes up (identity weights, broadcast biases) is counted against
``max_params`` before it is allocated.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from ..errors import GraphError, ModelFileError, ModelImportError
from ..nodes import check_name
from ..spec import DEFAULT_MAX_SPEC_PARAMS
from . import _expressions as ex
from ._builder import Builder, Concat, printable_name
from ._guards import require, unexpected_as
from ._arguments import check_arguments
from ._onnx_files import check_graph, check_path, load
from ._onnx_ops import OPS
from ._onnx_survey import aliases, check_batches, count_readers, kept_outputs, needed
from ._onnx_values import Affine, eye
from ._output_names import rename_outputs

__all__ = ["from_onnx"]

logger = logging.getLogger(__name__)

#: Expression trees stay this shallow (recursion depth): a deeper tensor
#: read by several nodes (the input of an activation's expansion, a shared
#: value) is resolved into a node as it is written; any tree twice as deep,
#: where it is read. The margin keeps an expansion whole: its own operators
#: read their inputs once, so the first rule never cuts through one.
_MAX_DEPTH = 48


def from_onnx(path: str | os.PathLike, *, loss=None, name: str | None = None, seed: int | None = None,
              external_data: bool = False, max_params: int | None = DEFAULT_MAX_SPEC_PARAMS):
    """A Graph read from an ONNX file of dense layers.

    Parameters
    ----------
    path : str or PathLike
        A regular file of at most 2 GiB (protobuf's limit).
    loss : str, dict, Loss, or dict output name -> loss, optional
        By default each output gets the loss its activation implies.
    name : str, optional
        Of the graph; by default the ONNX graph's name.
    seed : int, optional
    external_data : bool
        Read weights kept in external files (what torch's dynamo exporter
        writes for large models), only from the model's own folder.
    max_params : int or None
        Refuse models whose graph would have more weights and biases than
        this (100 million by default, as :func:`graphnet.Graph.from_spec`),
        before allocating them; ``None`` for no limit but memory.

    Raises
    ------
    ModelFileError
        When ``path`` is not a str or PathLike, names no regular file, or the
        file is not valid ONNX (truncated, a tensor whose data does not match
        its dimensions, a tensor written twice, a cycle), or uses external
        data not allowed.
    ModelImportError
        Naming the ONNX node, operator and tensor that graphnet cannot
        represent, or the limit a model exceeds; naming the argument, before
        the file is read, for a wrong ``name``, ``seed``, ``loss``,
        ``external_data`` or ``max_params``.

    Examples
    --------
    >>> import os, tempfile
    >>> import graphnet as gn
    >>> path = os.path.join(tempfile.mkdtemp(), "mlp.onnx")
    >>> g = gn.Sequential([gn.Input(3), gn.Dense(2, activation="tanh")], seed=0)
    >>> _ = g.to_onnx(path)
    >>> back = gn.from_onnx(path)
    >>> back.inputs == g.inputs and back.outputs == g.outputs
    True
    >>> gn.from_onnx(path, max_params=4)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    graphnet.errors.ModelImportError: ONNX model '.../mlp.onnx': ... more than max_params=4; ...
    """
    label = check_path(path)
    check_arguments("from_onnx", name=name, seed=seed, external_data=external_data, max_params=max_params,
                    loss=loss)
    onnx = require("onnx", "from_onnx")
    model = load(onnx, label, external_data)
    try:
        with unexpected_as(ModelFileError, label):
            return _Reader(model, onnx, label, max_params).run(loss=loss, name=name, seed=seed)
    except OverflowError as exc:  # a last guard: sizes are checked before allocating
        raise ModelImportError(f"ONNX model {label!r}: too large to import ({type(exc).__name__}: {exc})") from None


class _Reader:
    def __init__(self, model, onnx, label: str, max_params: int | None):
        self.onnx = onnx
        self.graph = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        self.builder = Builder(f"ONNX model {label!r}", max_params=max_params)
        self.max_params = max_params
        self.values: dict[str, Any] = {}  # tensor -> ndarray, node name, Affine, Concat, Shape, expression
        self.resolved: dict[str, Any] = {}  # expression tensor -> the value it resolved to
        self.sizes: dict[int, tuple[Any, int]] = {}  # id(expression) -> (expression, its features)
        self.converted: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # id(constant) -> (it, as float64)
        self.made = 0  # values of the arrays the import has made up so far (see allocate)
        self.dtype = "float32"

    def fail(self, node, message: str) -> ModelImportError:
        return ModelImportError(
            f"{self.builder.source}: node {node.name or '(unnamed)'!r} ({node.op_type}): {message}"
        )

    # -------------------------------------------------------------- driving
    def run(self, loss, name, seed):
        check_graph(self.graph, self.builder.source)
        numpy_helper = self.onnx.numpy_helper
        for tensor in self.graph.initializer:
            self.values[tensor.name] = numpy_helper.to_array(tensor)  # load() checked it against its dims
        self._inputs()
        outputs, dropped = kept_outputs(self.graph, self.onnx, self.builder.source)
        nodes, branch = needed(self.graph, outputs, dropped, self.builder.source)
        if dropped:
            logger.info("%s: dropped the label branch (outputs %s, operators %s); kept %s", self.builder.source,
                        dropped, branch, [n for n, _ in outputs])
        self.alias = aliases(nodes)
        self.readers = count_readers(nodes, self.canonical)
        self.outputs = {self.canonical(t) for _, t in outputs}
        for index, node in nodes:
            if node.domain not in ("", "ai.onnx"):
                raise self.fail(node, f"operator domain {node.domain!r} is not supported")
            handler = OPS.get(node.op_type)
            if handler is None:
                raise self.fail(node, f"operator {node.op_type!r} cannot be imported; supported: "
                                      f"{', '.join(sorted(OPS))}")
            self.index = index
            handler(self, node)
        made: dict[str, str] = {}  # node -> output name: every output's node first, then all renames at once
        labels: dict[str, str] = {}  # node -> the ONNX output's own name
        for out_name, tensor in outputs:
            if tensor not in self.values:
                raise ModelImportError(f"{self.builder.source}: output {out_name!r} is never computed")
            node = self.node_of(self.values[tensor], tensor, _node_name(out_name, f"{self.builder.source}: the output"))
            if self.builder.nodes[node].kind == "input":
                raise ModelImportError(f"{self.builder.source}: output {out_name!r} is an input passed through")
            if node in made:
                raise ModelImportError(f"{self.builder.source}: output {out_name!r} repeats another output")
            made[node], labels[node] = out_name, out_name
        rename_outputs(self.builder, made, "ONNX name", labels)
        names = list(made.values())
        return self.builder.build(names, loss=loss, dtype=self.dtype,
                                  name=name or self.graph.name or "onnx", seed=seed)

    def _inputs(self) -> None:
        elems = {self.onnx.TensorProto.FLOAT: "float32", self.onnx.TensorProto.DOUBLE: "float64"}
        batches = {}  # input -> its declared batch: a number of rows, or None (any)
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
            batch, size = dims[0].dim_value if dims[0].HasField("dim_value") else None, dims[1].dim_value
            if size < 1 or (batch is not None and batch < 1):
                raise ModelFileError(f"{self.builder.source}: input {value.name!r} declares the shape "
                                     f"({'?' if batch is None else batch}, {size}); dimensions must be positive")
            if self.max_params is not None and size > self.max_params:
                raise ModelImportError(
                    f"{self.builder.source}: input {value.name!r} has {size:,} features, so a layer reading it "
                    f"has more parameters than max_params={self.max_params:,}; pass a larger max_params (or "
                    f"None) to import it if you trust the model"
                )
            batches[value.name] = batch
            self.dtype = "float64" if elems[tensor.elem_type] == "float64" else self.dtype  # any double input
            self.values[value.name] = self.builder.add_input(
                _node_name(value.name, f"{self.builder.source}: the input"), int(size), f"input {value.name!r}"
            )
        self.builder.block_dtype = self.dtype
        check_batches(batches, self.builder.source)

    def canonical(self, tensor: str) -> str:
        """The tensor ``tensor`` is an alias of; check_graph refused alias cycles."""
        root = tensor
        while root in self.alias:
            root = self.alias[root]
        while tensor in self.alias and self.alias[tensor] != root:  # shortcut the chain for next time
            self.alias[tensor], tensor = root, self.alias[tensor]
        return root

    def exclusive(self, tensor: str | None, instance: set[int]) -> bool:
        """Nothing outside ``instance`` (ONNX node indices) reads ``tensor``."""
        if tensor is None:
            return False
        tensor = self.canonical(tensor)
        return tensor not in self.outputs and all(r in instance for r in self.readers.get(tensor, []))

    # ------------------------------------------------------------- values
    def input(self, node, index: int):
        if index >= len(node.input) or not node.input[index]:
            return None
        name = node.input[index]
        if name not in self.values:
            raise self.fail(node, f"reads {name!r}, which nothing computes before it")
        return self.values[name]

    def set(self, node, value) -> None:
        tensor = node.output[0]
        self.values[tensor] = value
        if isinstance(value, ex.Op) and value.depth > _MAX_DEPTH and not self._read_once(tensor):
            self.values[tensor] = self.node_of(value, tensor)

    def term(self, node, index: int):
        """Input ``index`` as an expression leaf (a constant, a Var, or a tree).
        A tree deeper than twice :data:`_MAX_DEPTH` is resolved into a node
        first (activations in a long row would otherwise make a tree as deep as the model)."""
        value = self.input(node, index)
        if isinstance(value, np.ndarray):
            if not np.issubdtype(value.dtype, np.number):
                raise self.fail(node, f"input {node.input[index]!r} holds {value.dtype} values, not numbers")
            return ex.Const(value.astype(np.float64))
        if isinstance(value, (str, Affine, Concat)):
            return ex.Var(self.canonical(node.input[index]))
        if isinstance(value, ex.Op) and value.depth > 2 * _MAX_DEPTH and value.tensor is not None:
            tensor = self.canonical(node.input[index])
            self.values[tensor] = self.node_of(value, tensor)
            return ex.Var(tensor)
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
        if isinstance(value, ex.Op):  # its first layer input's (elementwise: they agree, or resolve refuses)
            if id(value) not in self.sizes:
                first = next((a for a in value.args if not isinstance(a, ex.Const)), None)
                self.sizes[id(value)] = (value, 1 if first is None else self.size(first))
            return self.sizes[id(value)][1]
        raise ModelImportError(f"{self.builder.source}: {value!r} has no feature size")

    def allocate(self, count: int, what: str) -> None:
        """Before making up an array of ``count`` values (identity blocks, scaled
        or summed weights, broadcast biases): those made so far stay within
        ``max_params``, as the graph must, and this one within memory. Working
        copies are thus bounded by the limit, not by what the file's nodes ask for."""
        self.made += count
        if self.max_params is not None and self.made > self.max_params:
            raise ModelImportError(
                f"{self.builder.source}: {what}: the import has made up {self.made:,} weights and biases "
                f"(identity blocks, scaled and summed weights), more than max_params={self.max_params:,}; "
                f"pass a larger max_params (or None) to import it if you trust the model")
        self.builder.reserve(count, what)

    def float64(self, value: np.ndarray) -> np.ndarray:
        """A constant as float64, converted once per array: a weight read by a
        thousand nodes stays one array (nothing changes these arrays in place)."""
        found = self.converted.get(id(value))
        if found is None or found[0] is not value:
            found = self.converted[id(value)] = (value, value.astype(np.float64))
        return found[1]

    def vector(self, size: int, fill: float, what: str) -> np.ndarray:
        """``size`` copies of ``fill``, checked by :meth:`allocate` first."""
        self.allocate(size, what)
        return np.full(size, fill, dtype=np.float64)

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
            value.owned = False  # the node keeps these weights
            if not value.terms:
                raise ModelImportError(f"{self.builder.source}: {tensor!r} is a constant, not a layer")
            node = self.builder.unique(_node_name(name or tensor))
            bias = value.bias if value.bias is not None else self.vector(value.size, 0.0, f"tensor {tensor!r}")
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
            raise ModelImportError(f"{self._where(e)}: {exc}") from None
        if found is not None:
            result = self._activate(e, *found)
        elif e.op == "Add":
            result = self._sum(e)
        elif e.op == "Mul" and sum(not isinstance(a, ex.Const) for a in e.args) == 1:
            result = self._scale(e)
        elif e.op == "Reciprocal":
            divisor = e.args[0]
            raise ModelImportError(
                f"{self._where(e)}: divides by {getattr(divisor, 'tensor', None) or 'an expression'!r}, which is "
                f"computed from the model's inputs; graphnet divides by constants only"
            )
        else:
            ops = sorted({self.graph.node[i].op_type for x in ex.walk(e) if isinstance(x, ex.Op) for i in x.nodes})
            raise ModelImportError(
                f"{self._where(e)}: the operators {ops} do not form an activation or affine map graphnet has "
                f"(supported activations: {', '.join(sorted(ex.NATIVE))} and the usual GELU, SiLU, Mish, "
                f"Softsign, Softplus expansions)"
            )
        # An affine map read once is consumed by its reader: keeping it would keep
        # one copy of the weights per tensor of a long chain of scalings.
        if e.tensor is not None and not (isinstance(result, Affine) and self._read_once(e.tensor)):
            if isinstance(result, Affine):
                result.owned = False  # shared from now on: read again, it must not change
            self.resolved[self.canonical(e.tensor)] = result
        return result

    def _read_once(self, tensor: str) -> bool:
        canonical = self.canonical(tensor)
        return canonical not in self.outputs and len(self.readers.get(canonical, [])) <= 1

    def _where(self, e) -> str:
        """The ONNX nodes an expression stands for, and the tensor it computes, for messages."""
        indices = sorted(e.nodes)
        nodes = [self.graph.node[i] for i in indices[:3]]
        named = ", ".join(f"{n.name or '(unnamed)'!r} ({n.op_type})" for n in nodes) + (
            f" and {len(indices) - 3} more" if len(indices) > 3 else "")
        tensor = e.tensor or (nodes[-1].output[0] if nodes else None)
        return f"{self.builder.source}: node {named or '(none)'} computing {tensor!r}"

    def _activate(self, e, config, inner) -> str:
        instance, intermediates = ex.instance_nodes(e, inner)
        inner_tensor = inner.tensor if isinstance(inner, (ex.Var, ex.Op)) else None
        exclusive = self.exclusive(inner_tensor, instance) and all(
            self.exclusive(t, instance) for t in intermediates)
        out = e.tensor or "activation"
        holder = self.node_of(self.resolve(inner), inner_tensor or out, name=out if exclusive else None)
        return self.builder.activate(holder, config, exclusive, _node_name(out), f"{e.op} at {out!r}")

    def affine_of(self, e, instance: set[int]) -> Affine:
        """A sub-expression as an Affine over nodes; its own terms when nothing
        else reads it, else a frozen identity from its (shared) node."""
        value = self.resolve(e)
        tensor = e.tensor if isinstance(e, (ex.Var, ex.Op)) else None
        # A part made by rewriting (tensor None) belongs to the node around it.
        own = tensor is None or self.exclusive(tensor, instance)
        if isinstance(value, Affine) and own:
            return value
        if isinstance(value, Concat):
            parts = [(part, self.builder.nodes[part].size) for part in value.parts]
            size, terms, offset = sum(n for _, n in parts), [], 0
            self.allocate(size * size, f"tensor {tensor!r}")
            for part, n in parts:
                terms.append((part, eye(n, size, offset, self.dtype), False))
                offset += n
            return Affine(terms, None, size, False)  # float32 blocks are not ``owned``: not scaled in place
        node = self.node_of(value, tensor or "affine")
        size = self.builder.nodes[node].size
        self.allocate(size * size, f"tensor {tensor!r}")
        return Affine([(node, eye(size, size, 0, self.dtype), False)], None, size, False)

    def _sum(self, e) -> Affine:
        """The sum's terms merged in one pass: a sum of n parts costs n, not n² copies."""
        instance = set(e.nodes)
        parts = [self.affine_of(arg, instance) for arg in e.args if not isinstance(arg, ex.Const)]
        sizes = {part.size for part in parts}
        if len(sizes) != 1:
            raise ModelImportError(f"{self._where(e)}: adds tensors of {sorted(sizes)} features; graphnet "
                                   f"adds equal sizes only (ONNX would broadcast them)")
        size = sizes.pop()
        terms: dict[str, list] = {}  # src -> [weight, trainable, whether the weight is our own copy]
        for part in parts:
            for src, w, learn in part.terms:
                if src not in terms:
                    terms[src] = [w, learn, part.owned]
                    continue
                old = terms[src]
                if old[2] and old[0] is not w and old[0].dtype == np.float64:
                    old[0] += w
                else:  # a new array: the parts' weights may be shared with other tensors
                    self.allocate(w.size, f"tensor {e.tensor!r}")
                    old[0], old[2] = np.add(old[0], w, dtype=np.float64), True
                old[1] = old[1] or learn
        biases = [part.bias for part in parts if part.bias is not None]
        constant = [arg.value for arg in e.args if isinstance(arg, ex.Const)]
        if constant:
            biases.append(self._broadcast(sum(constant[1:], constant[0]), size, e))
        bias = sum(biases[1:], biases[0]) if biases else None
        trainable = bool(constant) or any(p.bias is not None and p.bias_trainable for p in parts)
        owned = all(mine and w.dtype == np.float64 for w, _, mine in terms.values())
        return Affine([(s, w, learn) for s, (w, learn, _) in terms.items()], bias, size, trainable, owned)

    def _scale(self, e) -> Affine:
        (factor,) = [a.value for a in e.args if isinstance(a, ex.Const)]
        (arg,) = [a for a in e.args if not isinstance(a, ex.Const)]
        part = self.affine_of(arg, set(e.nodes))
        factor = self._broadcast(factor, part.size, e)
        if part.owned:
            for _, w, _ in part.terms:
                w *= factor
            terms = part.terms
        else:
            self.allocate(sum(w.size for _, w, _ in part.terms), f"tensor {e.tensor!r}")
            terms = [(src, np.multiply(w, factor, dtype=np.float64), learn) for src, w, learn in part.terms]
        bias = None if part.bias is None else part.bias * factor
        return Affine(terms, bias, part.size, part.bias_trainable, owned=True)

    def _broadcast(self, value: np.ndarray, size: int, e) -> np.ndarray:
        """A scalar or per-feature constant as a vector over ``size`` features."""
        if value.size == 1:
            return self.vector(size, float(value.reshape(-1)[0]), f"tensor {e.tensor!r}")
        if value.shape not in ((size,), (1, size)):
            raise ModelImportError(f"{self._where(e)}: combines {size} features with a constant of shape "
                                   f"{value.shape}; only scalars and per-feature vectors are supported")
        return value.reshape(size).astype(np.float64)




def _node_name(tensor: str, io: str | None = None) -> str:
    """The node name for a tensor: its own name when a node may carry it;
    else a ModelImportError for an input or an output (``io``: what the
    message calls it), which keeps its name (SPEC 7), and for another
    tensor its printable characters with ``->`` (which separates weight
    keys) made ``_``."""
    try:
        return check_name(tensor)
    except GraphError as exc:
        if io is not None:
            raise ModelImportError(f"{io} {tensor!r} cannot keep its name: {exc}; rename it in the model") from None
        return printable_name(tensor, "node")
