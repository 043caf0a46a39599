"""ONNX for tabular inputs: what an input does with its data, as operators.

* A categorical input takes its column raw, ``(batch, 1)``: strings
  (``tensor(string)``) or integers (``tensor(int64)``). ``ai.onnx.ml``'s
  ``LabelEncoder`` maps each value to its code (0 for anything that is not
  a category), and every synapse from the input is a ``Gather`` of its
  table's rows. A string or int64 tensor has no missing value, so a
  missing one is fed as a value that is not a category: the input's
  :func:`missing_value`, chosen per input so that it never is one, and
  written in the model's ``metadata_props`` as ``graphnet.missing.<input>``.
* A numeric input that transforms its data (``normalize`` or ``missing``
  other than ``"error"``) takes its columns raw, ``(batch, width)`` as
  ``tensor(double)`` whatever the graph's float type, NaN for missing
  values: ``IsNaN`` and ``Where`` put the adapted mean in their place
  (``missing="mean"``/``"indicator"``), ``Sub`` and ``Div`` normalise, and
  ``Cast(IsNaN)`` columns are concatenated for ``missing="indicator"``, all
  in double as ``predict`` does, then one ``Cast`` gives the graph's float
  type (a float32 column of unix seconds would lose its fraction before
  normalising). With ``missing="error"`` a NaN simply flows into the
  prediction (ONNX has no way to refuse it). A plain input takes the
  graph's float type.

:func:`onnx_feed` turns a frame (or a dict of columns) into the arrays
onnxruntime takes for these inputs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .. import _frames
from .._data import as_inputs, named
from .._tabular import as_float_columns
from .._transforms import source
from ..errors import GraphError
from ..network import Network
from ..nodes import Input

if TYPE_CHECKING:
    from ..graph import Graph

__all__ = ["ML_OPSET", "MISSING_KEY", "write_input", "input_type", "missing_value", "missing_metadata",
           "onnx_feed"]

#: ``LabelEncoder`` with ``default_int64`` and ``keys_strings``/``keys_int64s``.
ML_OPSET = 2
#: The ``metadata_props`` key, before the input's name, of a categorical input's missing value.
MISSING_KEY = "graphnet.missing."
_INT64 = np.iinfo(np.int64)


def input_type(node: Input, elem: int, tensor_proto) -> int:
    """The ONNX element type of a transforming input's raw data."""
    if not node.categorical:
        return tensor_proto.DOUBLE  # transformed in double, as predict does, then cast
    return tensor_proto.STRING if isinstance(node.categories[0], str) else tensor_proto.INT64


def missing_value(node: Input) -> str | int:
    """What stands for a missing value in the ONNX feed of categorical input
    ``node``: a value that is not one of its categories, so that the model
    gives it code 0 as graphnet does.

    For string categories it is ``""``, or when ``""`` is a category the
    first of ``"<missing>"``, ``"<missing 2>"``, ... that is not one. For
    integer categories it is -1, or when -1 is a category one below the
    smallest category (one above the largest where the smallest is int64's
    minimum; the first gap between them where both ends of int64 are taken).
    It depends on the categories only, so :func:`onnx_feed` and the model's
    ``metadata_props`` always agree.
    """
    categories = node.categories
    if isinstance(categories[0], str):
        taken = set(categories)
        if "" not in taken:
            return ""
        return next(value for value in ("<missing>", *(f"<missing {i}>" for i in range(2, len(taken) + 2)))
                    if value not in taken)
    if -1 not in categories:
        return -1
    keys = np.unique(np.array(categories, np.int64))
    if keys[0] > _INT64.min:
        return int(keys[0]) - 1
    if keys[-1] < _INT64.max:
        return int(keys[-1]) + 1
    gap = int(np.flatnonzero(keys[1:] != keys[:-1] + 1)[0])  # fewer than 2**64 keys leave one
    return int(keys[gap]) + 1


def missing_metadata(graph: Graph) -> dict[str, str]:
    """The model's ``metadata_props`` naming each categorical input's missing
    value (:func:`missing_value`, as text), keyed ``graphnet.missing.<input>``."""
    return {MISSING_KEY + name: str(missing_value(graph.nodes[name]))
            for name in graph.inputs if graph.nodes[name].categorical}


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
    mean = _double(writer, f"{name}.mean", node.mean)
    if node.missing != "error":
        nan = writer.op("IsNaN", [name], writer.fresh(f"{name}/isnan"))
        x = writer.op("Where", [nan, mean, name], writer.fresh(f"{name}/filled"))
    if node.normalize:
        centred = writer.op("Sub", [x, mean], writer.fresh(f"{name}/centred"))
        x = writer.op("Div", [centred, _double(writer, f"{name}.std", node.std)], writer.fresh(f"{name}/normalized"))
    if node.missing == "indicator":
        flags = writer.op("Cast", [nan], writer.fresh(f"{name}/indicator"), to=11)  # onnx.TensorProto.DOUBLE
        x = writer.op("Concat", [x, flags], writer.fresh(f"{name}/features"), axis=1)
    if writer.dtype != np.float64:
        x = writer.op("Cast", [x], writer.fresh(f"{name}/cast"), to=1)  # onnx.TensorProto.FLOAT
    return x


def _double(writer, base: str, value) -> str:
    """A float64 constant ``(1, width)`` of an input's statistics."""
    name = writer.fresh(base)
    array = np.ascontiguousarray(np.asarray(value, dtype=np.float64).reshape(1, -1))
    writer.initializers.append(writer.numpy_helper.from_array(array, name))
    return name


def onnx_feed(graph: Graph, data) -> dict[str, np.ndarray]:
    """The arrays onnxruntime takes for :func:`~graphnet.interop.onnx_export.to_onnx`'s
    model of ``graph``, from the data ``graph.predict`` takes (a frame, a
    dict of columns, an array), so that the model's outputs are
    ``graph.predict``'s.

    A numeric input that normalises or fills missing values gets its columns
    as float64 (the model transforms them in double, as ``predict`` does),
    NaN for missing values; a plain input gets the graph's dtype. A
    categorical input gets one column ``(n, 1)`` of strings (object) or int64: each value that ``graph.predict`` finds among the
    categories as that category, and every other one (missing or unknown)
    as the input's :func:`missing_value`, which is never a category and so
    has code 0 in the model, as in graphnet. Feeding onnxruntime by hand,
    give a missing value as the model's ``metadata_props`` entry
    ``graphnet.missing.<input>`` says (its text, as an integer for integer
    categories): ``""`` or -1 unless that is a category.

    Raises
    ------
    GraphError
        For a ``graph`` that is not a Graph, or an input never adapted (as
        ``predict``).
    ShapeError
        For data that does not fit the graph, with ``predict``'s message
        (its checks: shapes, text in a numeric column, NaN where the input
        does not fill it).

    Examples
    --------
    >>> import pandas as pd
    >>> import graphnet as gn
    >>> g = gn.Graph(seed=0)
    >>> _ = g.add_input("c", categories=["", "a"])
    >>> _ = g.add_output("y", 2)
    >>> _ = g.connect("c", "y")
    >>> gn.interop.onnx_feed(g, pd.DataFrame({"c": ["", None, "a", "b"]}))["c"].ravel().tolist()
    ['', '<missing>', 'a', '<missing>']
    """
    if not isinstance(graph, Network):
        raise GraphError(f"onnx_feed: graph must be a graphnet Graph, got {type(graph).__name__}")
    raw = named(source(graph, data, "input"), graph.inputs, "input")
    checked = as_inputs(graph, raw)  # predict's checks: shapes, text, NaN, inputs never adapted
    feed = {}
    for name, value in checked.items():
        node = graph.nodes[name]
        if node.categorical:
            feed[name] = _category_column(node, graph.backend.to_host(value))
        elif node.transforms:  # the raw columns: the model imputes and normalises them itself
            value = raw[name]
            value = _frames.values(value) if _frames.is_series(value) else value
            columns = as_float_columns(value, node.width, f"input {name!r}", node.data_columns)
            feed[name] = np.ascontiguousarray(columns, dtype=np.float64)  # the model transforms in double
        else:
            feed[name] = np.asarray(graph.backend.to_host(value))
    return feed


def _category_column(node: Input, codes: np.ndarray) -> np.ndarray:
    """A categorical input's feed ``(n, 1)`` from its codes: the category
    graphnet finds for each row, :func:`missing_value` where it finds none."""
    text = isinstance(node.categories[0], str)
    table = np.array([missing_value(node), *node.categories], dtype=object if text else np.int64)
    return table[codes].reshape(-1, 1)
