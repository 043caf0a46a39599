"""ONNX for tabular inputs: what an input does with its data, as operators.

* A categorical input takes its column raw, ``(batch, 1)``: strings
  (``tensor(string)``) or integers (``tensor(int64)``). ``ai.onnx.ml``'s
  ``LabelEncoder`` maps each value to its code (0 for anything unknown),
  and every synapse from the input is a ``Gather`` of its table's rows.
* A numeric input takes its columns raw, ``(batch, width)`` in the graph's
  float type, NaN for missing values: ``IsNaN`` and ``Where`` put the
  adapted mean in their place (``missing="mean"``/``"indicator"``), ``Sub``
  and ``Div`` normalise, and ``Cast(IsNaN)`` columns are concatenated for
  ``missing="indicator"``. With ``missing="error"`` a NaN simply flows into
  the prediction (ONNX has no way to refuse it).

:func:`onnx_feed` turns a frame (or a dict of columns) into the arrays
onnxruntime takes for these inputs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .. import _frames
from .._data import named
from .._tabular import missing_mask
from .._transforms import source
from ..errors import GraphError
from ..nodes import Input

if TYPE_CHECKING:
    from ..graph import Graph

__all__ = ["ML_OPSET", "write_input", "input_type", "onnx_feed"]

#: ``LabelEncoder`` with ``default_int64`` and ``keys_strings``/``keys_int64s``.
ML_OPSET = 2


def input_type(node: Input, elem: int, tensor_proto) -> int:
    """The ONNX element type of a transforming input's raw data."""
    if not node.categorical:
        return elem
    return tensor_proto.STRING if isinstance(node.categories[0], str) else tensor_proto.INT64


def write_input(writer, node: Input) -> str:
    """Write the transform of ``node`` (nothing for a plain input); returns
    the tensor its synapses read: the data, the features, or the codes
    ``(batch,)`` (int64)."""
    name = node.name
    if not node.transforms:
        return name
    if not node.adapted:
        raise GraphError(f"to_onnx: input {name!r} was never adapted: call g.adapt(data) first")
    if node.categorical:
        keys = list(node.categories)
        codes = list(range(1, len(keys) + 1))
        attributes = {"keys_strings": keys} if isinstance(keys[0], str) else {"keys_int64s": keys}
        mapped = writer.op("LabelEncoder", [name], writer.fresh(f"{name}/codes"), domain="ai.onnx.ml",
                           values_int64s=codes, default_int64=0, **attributes)
        flat = writer.fresh(f"{name}/flat")
        writer.initializers.append(writer.numpy_helper.from_array(np.array([-1], np.int64), flat))
        return writer.op("Reshape", [mapped, flat], writer.fresh(f"{name}/code"))
    x, nan = name, None
    if node.missing != "error":
        nan = writer.op("IsNaN", [name], writer.fresh(f"{name}/isnan"))
        x = writer.op("Where", [nan, writer.constant(f"{name}.mean", node.mean.reshape(1, -1)), name],
                      writer.fresh(f"{name}/filled"))
    if node.normalize:
        centred = writer.op("Sub", [x, writer.constant(f"{name}.mean", node.mean.reshape(1, -1))],
                            writer.fresh(f"{name}/centred"))
        x = writer.op("Div", [centred, writer.constant(f"{name}.std", node.std.reshape(1, -1))],
                      writer.fresh(f"{name}/normalized"))
    if node.missing == "indicator":
        to = 1 if writer.dtype == np.float32 else 11  # onnx.TensorProto.FLOAT / DOUBLE
        flags = writer.op("Cast", [nan], writer.fresh(f"{name}/indicator"), to=to)
        x = writer.op("Concat", [x, flags], writer.fresh(f"{name}/features"), axis=1)
    return x


def onnx_feed(graph: Graph, data) -> dict[str, np.ndarray]:
    """The arrays onnxruntime takes for :func:`~graphnet.interop.onnx_export.to_onnx`'s
    model of ``graph``, from the data ``graph.predict`` takes (a frame, a
    dict of columns, an array): numbers in the graph's dtype with NaN for
    missing values, category strings with ``""`` for missing ones, integer
    categories as int64 with -1 for missing ones (unknown, code 0, unless -1
    is a category).

    Raises
    ------
    ShapeError
        For data that does not fit the graph (as ``predict``).
    """
    feed = {}
    for name, value in named(source(graph, data, "input"), graph.inputs, "input").items():
        node = graph.nodes[name]
        value = _frames.values(value) if _frames.is_series(value) else np.asarray(value)
        if node.categorical:
            column = value.reshape(-1)
            missing = missing_mask(column)
            if isinstance(node.categories[0], str):
                column = np.where(missing, "", column).astype(str).astype(object)
            else:
                column = np.where(missing, -1, column).astype(np.int64)
            feed[name] = column.reshape(-1, 1)
        else:
            feed[name] = np.asarray(value, dtype=graph.dtype).reshape(len(value), -1)
    return feed
