"""ONNX operators -> what :mod:`graphnet.interop.onnx_import`'s reader makes of them.

Each handler reads its node's inputs from the reader and sets what its
output holds: a constant (numpy array), a node name, an
:class:`~graphnet.interop._onnx_values.Affine` (a weighted sum not yet a
node), a :class:`~graphnet.interop._builder.Concat`, an expression tree
(elementwise arithmetic, :mod:`graphnet.interop._expressions`), or a
:class:`~graphnet.interop._onnx_values.Shape` (shape arithmetic).
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from . import _expressions as ex
from ._builder import Concat
from ._onnx_values import Affine, Shape, Unsqueezed


def attributes(reader, node) -> dict[str, Any]:
    values = {a.name: reader.onnx.helper.get_attribute_value(a) for a in node.attribute}
    out = {}
    for k, v in values.items():
        if isinstance(v, float):
            v = ex.snap(v)  # ONNX floats are float32: read 0.01f back as 0.01
        elif isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        elif isinstance(v, list):
            v = tuple(v)
        out[k] = v
    return out


def _const(reader, node, index: int, what: str) -> np.ndarray:
    value = reader.input(node, index)
    if not isinstance(value, np.ndarray):
        raise reader.fail(node, f"{what} must be a constant (an initializer)")
    if not np.issubdtype(value.dtype, np.floating):
        raise reader.fail(node, f"{what} has dtype {value.dtype}, expected floats")
    return reader.float64(value)


def _ints(reader, node, index: int, what: str) -> list[int]:
    value = reader.input(node, index)
    if isinstance(value, Shape):
        return list(value.entries)
    if not (isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.integer)):
        raise reader.fail(node, f"{what} must be constant integers")
    return [int(v) for v in value.reshape(-1)]


# ------------------------------------------------------------------- layers
def _dense(reader, node, source, weight: np.ndarray, bias) -> None:
    size = reader.builder.size_of(source)
    if weight.ndim != 2 or weight.shape[0] != size:
        raise reader.fail(node, f"weight of shape {weight.shape} does not take {size} features")
    terms, offset = [], 0
    for part in reader.builder.parts(source):  # a concatenation: the weight split by rows
        n = reader.builder.nodes[part].size
        terms.append((part, weight[offset : offset + n], True))
        offset += n
    reader.set(node, Affine(terms, bias, weight.shape[1]))


def _matmul(reader, node) -> None:
    source = reader.layer(node, 0)
    _dense(reader, node, source, _const(reader, node, 1, "the weight (input B)"), None)


def _gemm(reader, node) -> None:
    attrs = attributes(reader, node)
    if attrs.get("transA", 0):
        raise reader.fail(node, "transA=1 is not supported")
    source = reader.layer(node, 0)
    weight = _const(reader, node, 1, "the weight (input B)")
    if weight.ndim != 2:
        raise reader.fail(node, f"weight has shape {weight.shape}, expected a matrix")
    if attrs.get("transB", 0):
        weight = weight.T  # (out, in) as PyTorch exports it -> graphnet's (in, out)
    alpha = float(attrs.get("alpha", 1.0))
    if alpha != 1.0:
        reader.allocate(weight.size, f"tensor {node.output[0]!r}")
        weight = weight * alpha
    bias = None
    if len(node.input) > 2 and node.input[2]:
        value = _const(reader, node, 2, "the bias (input C)") * float(attrs.get("beta", 1.0))
        if value.size == 1:
            value = np.full(weight.shape[1], float(value.reshape(-1)[0]))
        if value.shape not in ((weight.shape[1],), (1, weight.shape[1])):
            raise reader.fail(node, f"bias of shape {value.shape} does not fit {weight.shape[1]} features")
        bias = value.reshape(-1)
    _dense(reader, node, source, weight, bias)


def _single_use(reader):
    def single(tensor) -> bool:
        if tensor is None:
            return False
        canonical = reader.canonical(tensor)
        return canonical not in reader.outputs and len(reader.readers.get(canonical, [])) == 1

    return single


def _elementwise(reader, node) -> None:
    args = [reader.term(node, i) for i in range(len(node.input)) if node.input[i]]
    try:
        value = ex.build(node.op_type, args, attributes(reader, node), node.output[0], reader.index,
                         _single_use(reader))
    except ValueError as exc:  # constants that do not broadcast, or would grow by broadcasting
        raise reader.fail(node, f"computing {node.output[0]!r}: {exc}") from None
    reader.set(node, value.value if isinstance(value, ex.Const) else value)


def _batch_normalization(reader, node) -> None:
    attrs = attributes(reader, node)
    if attrs.get("training_mode", 0) or (len(node.output) > 1 and any(node.output[1:])):
        raise reader.fail(node, "runs in training mode; only inference batch normalisation is supported")
    x = reader.term(node, 0)
    gamma, beta, mean, variance = (_const(reader, node, i, name) for i, name in
                                   enumerate(("scale", "B", "mean", "var"), start=1))
    shapes = {v.shape for v in (gamma, beta, mean, variance)}
    if len(shapes) != 1 or gamma.ndim != 1:
        raise reader.fail(node, f"scale, B, mean and var have shapes {sorted(shapes)}; ONNX asks for one "
                                f"vector of channels for all four")
    scale = gamma / np.sqrt(variance + float(attrs.get("epsilon", 1e-5)))
    inner = ex.Op("Mul", tuple(sorted([x, ex.Const(scale)], key=ex.key)), (), None, ex.Sources([reader.index]))
    reader.set(node, ex.build("Add", [inner, ex.Const(beta - mean * scale)], {}, node.output[0],
                              reader.index, _single_use(reader)))


def _concat(reader, node) -> None:
    attrs = attributes(reader, node)
    values = [reader.input(node, i) for i in range(len(node.input))]
    if all(isinstance(v, (np.ndarray, Shape)) for v in values):  # shape arithmetic
        entries: list = []
        for v in values:
            entries.extend(v.entries if isinstance(v, Shape) else [int(x) for x in v.reshape(-1)])
        reader.set(node, Shape(tuple(entries)) if any(isinstance(v, Shape) for v in values)
                   else np.concatenate([v.reshape(-1) for v in values]))
        return
    if attrs.get("axis") not in (1, -1):
        raise reader.fail(node, f"joins along axis {attrs.get('axis')}; only the feature axis (1) is supported")
    if len(values) == 2 and _binary_probabilities(reader, node):
        return
    parts: list[str] = []
    for i in range(len(node.input)):
        parts.extend(reader.builder.parts(reader.layer(node, i)))
    reader.set(node, Concat(tuple(parts)))


def _binary_probabilities(reader, node) -> bool:
    """skl2onnx's ``[1 - sigmoid(z), sigmoid(z)]``: a two-unit softmax over
    ``[0, z]``, which is exactly that."""
    first, second = reader.term(node, 0), reader.term(node, 1)
    if not (isinstance(second, ex.Op) and second.op == "Sigmoid"):
        return False
    complement = ex.build("Sub", [ex.Const(np.asarray(1.0)), second], {}, None, None, lambda t: False)
    if not isinstance(first, ex.Op) or ex.key(first) != ex.key(complement):
        return False
    z = second.args[0]
    instance = set(first.nodes) | set(second.nodes) | {reader.index}
    tensors = [first.tensor, second.tensor, z.tensor if isinstance(z, (ex.Var, ex.Op)) else None]
    if not all(reader.exclusive(t, instance) for t in tensors) or reader.size(z) != 1:
        return False
    affine = reader.affine_of(z, instance)
    terms = [(src, np.hstack([np.zeros_like(w), w]), learn) for src, w, learn in affine.terms]
    bias = np.array([0.0, 0.0 if affine.bias is None else float(affine.bias[0])])
    out = node.output[0]
    holder = reader.node_of(Affine(terms, bias, 2), out)
    reader.set(node, reader.builder.activate(holder, "softmax", True, out, f"{node.op_type} at {out!r}"))
    return True


# ------------------------------------------------------- no-ops and shapes
def _identity(reader, node) -> None:
    reader.set(node, reader.input(node, 0))


def _dropout(reader, node) -> None:
    if len(node.input) > 2 and node.input[2]:
        training = reader.input(node, 2)
        if not (isinstance(training, np.ndarray) and not bool(training.reshape(-1)[0])):
            raise reader.fail(node, "may run in training mode; only inference dropout (a no-op) is supported")
    if len(node.output) > 1 and node.output[1] and reader.readers.get(node.output[1]):
        raise reader.fail(node, "its mask is read; only inference dropout (a no-op) is supported")
    reader.set(node, reader.input(node, 0))


def _cast(reader, node) -> None:
    """A constant is cast as ONNX casts it; a layer's output passes through a
    cast to float32 or float64, and a cast to a narrower float is refused.

    graphnet computes in the graph's dtype throughout, so a cast to the same or
    a wider float loses nothing. A float64 graph's cast to float32 rounds
    within float32's precision, the tolerance imports keep to (graphnet's own
    float64 export takes erf in float32). float16, bfloat16 and the float8,
    float6 and float4 types keep fewer digits: dropping such a cast would
    predict differently. The target is told by its ONNX name: an onnx
    without ml_dtypes gives bfloat16 and the float8 types numpy's float32.
    """
    to = attributes(reader, node).get("to")
    value = reader.input(node, 0)
    target = np.dtype(reader.onnx.helper.tensor_dtype_to_np_dtype(to))
    kind = reader.onnx.TensorProto.DataType.Name(to)
    narrow = kind not in ("FLOAT", "DOUBLE") and ("FLOAT" in kind)  # FLOAT16, BFLOAT16, FLOAT8..., FLOAT4...
    # ml_dtypes gives the exact types; an older onnx reads them as numpy's float32 (or an integer type).
    misread = narrow and kind != "FLOAT16" and (target.kind in "iu" or target in (np.float32, np.float64))
    named = re.sub(r"^float(\d)(e\d)", r"float\1_\2", kind.lower()) if misread else target.name  # float8_e4m3fn
    if isinstance(value, np.ndarray):
        if named != target.name:
            raise reader.fail(node, f"casts a constant to {named}, for which onnx {reader.onnx.__version__} has no "
                                    f"numpy type (it reads {named} as {target}); upgrade onnx "
                                    f"(pip install -U onnx) to import it")
        reader.set(node, value.astype(target))
    elif isinstance(value, Shape):
        if not np.issubdtype(target, np.integer):
            raise reader.fail(node, f"casts a layer's output to {named}; graphnet computes in floats")
        reader.set(node, value)
    elif kind in ("FLOAT", "DOUBLE"):
        reader.set(node, value)
    elif narrow:
        raise reader.fail(node, f"rounds a layer's output to {named}, which keeps fewer digits than the "
                                f"{reader.dtype} graphnet computes in, so the import would predict "
                                f"differently; export the model in float32 or float64 throughout (without "
                                f".half(), autocast or a float16 conversion) to import it")
    else:
        raise reader.fail(node, f"casts a layer's output to {target}; graphnet computes in floats")


def _flatten(reader, node) -> None:
    axis = attributes(reader, node).get("axis", 1)
    value = reader.input(node, 0)
    if isinstance(value, np.ndarray):
        reader.set(node, value.reshape(int(np.prod(value.shape[:axis])), -1))
    elif isinstance(value, Unsqueezed) and axis == 1:
        reader.set(node, value.value)
    elif axis in (1, -1) and not isinstance(value, (Shape, Unsqueezed)):
        reader.set(node, value)
    else:
        raise reader.fail(node, f"Flatten(axis={axis}) does not keep (batch, features)")


def _reshape(reader, node) -> None:
    value = reader.input(node, 0)
    target = _ints(reader, node, 1, "the shape")
    if isinstance(value, np.ndarray):
        reader.set(node, value.reshape([d if d != 0 else value.shape[i] for i, d in enumerate(target)]))
        return
    if isinstance(value, (Shape, Unsqueezed)):
        raise reader.fail(node, "reshapes a shape or a 3-D tensor")
    size = reader.size(value)
    allowzero = attributes(reader, node).get("allowzero", 0)
    first_ok = target[:1] in (["batch"], [-1]) or (target[:1] == [0] and not allowzero)
    keeps = len(target) == 2 and first_ok and (target[1] == size or (target[1] == -1 and target[0] != -1))
    if not keeps:
        raise reader.fail(node, f"reshapes (batch, {size}) to {target}, which does not keep (batch, features)")
    reader.set(node, value)


def _axes(reader, node) -> tuple[int, ...]:
    if len(node.input) > 1 and node.input[1]:
        return tuple(_ints(reader, node, 1, "the axes"))
    return tuple(attributes(reader, node).get("axes", ()))


def _unsqueeze(reader, node) -> None:
    value, axes = reader.input(node, 0), _axes(reader, node)
    if isinstance(value, np.ndarray):
        reader.set(node, np.expand_dims(value, axes))
    elif isinstance(value, Shape) and value.scalar and axes in ((0,), (-1,)):
        reader.set(node, Shape(value.entries))
    elif not isinstance(value, (Shape, Unsqueezed)) and axes and all(a in (1, 2, -1) for a in axes):
        reader.set(node, Unsqueezed(value, tuple(sorted(a % 3 for a in axes))))
    else:
        raise reader.fail(node, f"inserts axes {axes}; only an Unsqueeze undone by a Squeeze is supported")


def _squeeze(reader, node) -> None:
    value, axes = reader.input(node, 0), _axes(reader, node)
    if isinstance(value, np.ndarray):
        reader.set(node, np.squeeze(value, axes) if axes else np.squeeze(value))
    elif isinstance(value, Unsqueezed) and tuple(sorted(a % 3 for a in axes)) == value.axes:
        reader.set(node, value.value)
    else:
        raise reader.fail(node, f"squeezes axes {axes or 'of size 1'} of a (batch, features) tensor, "
                                f"which does not keep (batch, features)")


def _shape(reader, node) -> None:
    attrs = attributes(reader, node)
    value = reader.input(node, 0)
    if isinstance(value, (np.ndarray, Shape, Unsqueezed)):
        raise reader.fail(node, "takes the shape of something other than a (batch, features) tensor")
    entries = ("batch", reader.size(value))
    start, end = attrs.get("start", 0), attrs.get("end", None)
    reader.set(node, Shape(entries[start:end]))


def _gather(reader, node) -> None:
    data = reader.input(node, 0)
    indices = reader.input(node, 1)
    axis = attributes(reader, node).get("axis", 0)
    if not (isinstance(indices, np.ndarray) and np.issubdtype(indices.dtype, np.integer)) or axis != 0:
        raise reader.fail(node, "gathers anything but constant indices of a shape or a constant")
    if isinstance(data, np.ndarray):
        count = indices.size * (math.prod(data.shape[1:]) if data.ndim else 1)
        if count > data.size + indices.size:
            raise reader.fail(node, f"gathers {count:,} values from {data.size:,}; graphnet refuses constants "
                                    f"larger than the data they are made of")
        reader.set(node, np.take(data, indices, axis=0))
    elif isinstance(data, Shape):
        picked = tuple(data.entries[int(i)] for i in indices.reshape(-1))
        reader.set(node, Shape(picked, scalar=indices.ndim == 0))
    else:
        raise reader.fail(node, "gathers from a layer's output; only shape arithmetic is supported")


def _constant(reader, node) -> None:
    attrs = {a.name: a for a in node.attribute}
    helper = reader.onnx.helper
    if "value" in attrs:
        reader.set(node, reader.onnx.numpy_helper.to_array(attrs["value"].t))
    elif "value_float" in attrs or "value_floats" in attrs:
        reader.set(node, np.asarray(helper.get_attribute_value(attrs.get("value_float") or attrs["value_floats"]),
                                    dtype=np.float32))
    elif "value_int" in attrs or "value_ints" in attrs:
        reader.set(node, np.asarray(helper.get_attribute_value(attrs.get("value_int") or attrs["value_ints"]),
                                    dtype=np.int64))
    else:
        raise reader.fail(node, "only Constant with a tensor, float(s) or int(s) value is supported")


OPS = {
    "MatMul": _matmul,
    "Gemm": _gemm,
    "Concat": _concat,
    "BatchNormalization": _batch_normalization,
    "Identity": _identity,
    "Dropout": _dropout,
    "Cast": _cast,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Shape": _shape,
    "Gather": _gather,
    "Constant": _constant,
    **{op: _elementwise for op in ex.ELEMENTWISE},
}
