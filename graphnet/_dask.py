"""``predict`` and ``evaluate`` on dask arrays: lazy, chunk by chunk, the graph sent once.

:func:`graphnet.inference.predict` and ``evaluate`` come here when the data
holds a dask array: this module registers itself with
:func:`graphnet._lazy.register_lazy` when it is imported (``import
graphnet`` does that). Everything that can be checked without computing (names,
feature counts, dtypes, row counts) is checked at the call; values (NaN,
labels out of range) are checked chunk by chunk when the chunks are computed.

The graph goes into the task graph once, as one ``dask.delayed`` snapshot
that every chunk's task depends on: a distributed scheduler ships it to each
worker once (one unpickling per worker, not per chunk), and the lazy result
keeps the weights of the moment it was made, whatever the graph does later.
dask is imported inside the functions, so this module imports without it.
"""

from __future__ import annotations

import copy
import string
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from . import metrics as metrics_module
from ._validation import check_int, check_outputs
from ._array_likes import readable
from ._data import as_inputs, as_targets, common_rows, features, named
from ._row_weights import as_weights
from . import _transforms
from ._transforms import source
from .errors import GraphError, ShapeError
from ._lazy import LazyHandler, register_lazy
from .inference import DEFAULT_CHUNK, Tally, merge_states, predict as predict_arrays
from .inference import tally_arrays
from .plan import compile_plan

if TYPE_CHECKING:
    from .graph import Graph

__all__ = ["predict", "evaluate", "require", "snapshot", "aligned", "is_dask_array", "tree_reduce"]


def require():
    """``(dask, dask.array)``, or a GraphError saying how to install them."""
    try:
        import dask
        import dask.array as da
    except ImportError as exc:  # pragma: no cover - the test environment has dask
        raise GraphError(
            f"dask arrays need dask: pip install 'graphnet[dask]' ({exc})"
        ) from None
    return dask, da


def is_dask_array(value) -> bool:
    return type(value).__module__.startswith("dask") and hasattr(value, "chunks")


def snapshot(graph: Graph) -> Graph:
    """A copy of ``graph`` with its current weights and no optimizer (workers
    only run it), taken under the read lock so no step lands halfway. It is
    on the CPU: the workers run it there, whatever device the graph is on."""
    with graph.lock.reading():
        copied = copy.deepcopy(graph)
    copied.optimizer = None
    copied.to("cpu")
    return copied


def delayed_graph(graph: Graph):
    """The snapshot as one named ``dask.delayed`` value (naming it spares dask
    from hashing the whole graph to make a key)."""
    dask, _ = require()
    return dask.delayed(snapshot(graph), name=f"graphnet-{graph.name}-{uuid.uuid4().hex}", pure=False)


def _lazy(value, what: str, labels: bool = False):
    """``value`` as a dask array of numbers, checked without computing it;
    ``what`` names it in messages (``"input 'x'"``). With ``labels`` (the
    targets of an output with classes) text and objects pass too: each
    block's labels are encoded where it is tallied, as numpy targets are."""
    _, da = require()
    if value is None:
        raise ShapeError(f"{what}: got None instead of an array")
    value = readable(value, what)
    if not is_dask_array(value):
        if type(value).__module__.startswith("dask"):
            raise ShapeError(
                f"{what}: expected a dask array, got a {type(value).__name__} "
                "(a dask DataFrame: pass df.to_dask_array(lengths=True))"
            )
        try:
            value = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise ShapeError(f"{what}: could not make an array ({exc})") from None
    dtype = np.dtype(value.dtype)
    if dtype.kind not in ("biufUSO" if labels else "biuf"):  # not complex (its imaginary part lost), times, text
        raise ShapeError(f"{what}: expected numbers, got an array of dtype {dtype}")
    return value if is_dask_array(value) else da.from_array(value, chunks=value.shape or ())


def lazy_inputs(graph: Graph, x) -> dict:
    """Input dask arrays of shape ``(n, size)`` (1-D accepted for size 1)."""
    transforming = [n for n in graph.inputs if graph.nodes[n].transforms]
    if transforming:
        raise GraphError(f"graph {graph.name!r}: inputs {transforming} transform their data (categories, "
                         "normalize, missing), which dask arrays do not go through yet: compute the data, "
                         "or predict chunk by chunk")
    arrays = {}
    for name, value in named(source(graph, x, "input"), graph.inputs, "input").items():  # a frame by column names
        array = _lazy(value, f"input {name!r}")
        size = graph.nodes[name].size
        if array.ndim == 1 and size == 1:
            array = array[:, None]
        arrays[name] = features(array, size, name)
    return arrays


def lazy_targets(graph: Graph, y) -> dict:
    """Target dask arrays whose shape each output's loss accepts (checked on
    an empty probe; the values are checked chunk by chunk)."""
    arrays = {}
    for name, value in named(source(graph, y, "output"), graph.outputs, "output").items():
        node = graph.nodes[name]
        array = _lazy(value, f"output {name!r}", labels=node.classes is not None)
        probe = np.zeros((0, *array.shape[1:]), dtype=array.dtype)
        try:
            if node.classes is not None:  # labels: the codes' shape is what the loss sees
                probe = _transforms.encode_labels(node, probe)
            node.loss.prepare_target(probe, node.size, name, graph.dtype)
        except ShapeError as exc:
            raise ShapeError(f"{exc} (the dask array's shape is {array.shape})") from None
        arrays[name] = array
    return arrays


def aligned(arrays: dict) -> tuple[dict, tuple]:
    """The arrays with the row chunks of the first one and a single column chunk.

    Raises
    ------
    ShapeError
        When row counts differ, or are unknown and the block counts differ.
    """
    labels = list(arrays)
    first = arrays[labels[0]]
    if any(np.isnan(a.shape[0]) for a in arrays.values()):
        # Unknown lengths (a DataFrame's blocks): match block for block; each
        # block's rows are compared when it is computed.
        blocks = {label: a.numblocks[0] for label, a in arrays.items()}
        if len(set(blocks.values())) > 1:
            raise ShapeError(
                f"rows of unknown length cannot be matched up: blocks per array {blocks}; "
                "call x.compute_chunk_sizes() (or to_dask_array(lengths=True)) first"
            )
    else:
        for label in labels[1:]:
            if arrays[label].shape[0] != first.shape[0]:
                raise ShapeError(
                    f"rows disagree: {labels[0]} has {first.shape[0]} rows but {label} "
                    f"has {arrays[label].shape[0]}"
                )
    unknown = any(np.isnan(a.shape[0]) for a in arrays.values())
    rows = first.chunks[0]
    out = {}
    for label, array in arrays.items():
        wanted = {} if unknown else {0: rows}  # unknown lengths: every array keeps its own blocks
        if array.ndim == 2:
            wanted[1] = -1
        out[label] = array.rechunk(wanted)
    return out, rows


def _labelled(inputs: dict, targets: dict | None = None) -> dict:
    arrays = {f"input {n!r}": a for n, a in inputs.items()}
    arrays.update({f"targets of output {n!r}": a for n, a in (targets or {}).items()})
    return arrays


# ------------------------------------------------------------------ predict
def predict(graph: Graph, x, batch_size: int | None = None, outputs: list[str] | None = None):
    """A lazy dask array (a dict of them for several outputs): the graph's
    dtype, the inputs' row chunks, one column chunk per output. With
    ``outputs`` (checked node names, see :func:`graphnet.inference.predict`),
    always a dict of those nodes' activations.

    Raises
    ------
    ShapeError
        At the call, for names, shapes or row counts that do not fit.
    """
    _, da = require()
    if batch_size is not None:
        batch_size = check_int(batch_size, "batch_size")
    inputs = lazy_inputs(graph, x)
    labelled, rows = aligned(_labelled(inputs))
    arrays = [labelled[f"input {n!r}"] for n in inputs]
    unknown = any(np.isnan(size) for size in rows) or any(np.isnan(a.shape[0]) for a in arrays)
    names = list(graph.outputs if outputs is None else outputs)
    sizes = [graph.nodes[n].size for n in names]
    dtype = np.dtype(graph.dtype)
    letters = [c for c in string.ascii_letters if c not in "ij"]
    if len(arrays) > len(letters):
        letters += [chr(0x100 + k) for k in range(len(arrays))]
    pairs = [item for array, letter in zip(arrays, letters) for item in (array, "i" + letter)]
    result = da.blockwise(
        _predict_block, "ij",
        delayed_graph(graph), None, list(inputs), None, batch_size, None, outputs, None, *pairs,
        new_axes={"j": sum(sizes)}, dtype=dtype, concatenate=True,
        meta=np.empty((0, sum(sizes)), dtype=dtype),
        # Rows of unknown length are matched block for block (their counts are
        # compared when each block is computed); dask cannot unify them.
        align_arrays=not unknown,
    )
    if len(sizes) == 1 and outputs is None:
        return result
    bounds = np.cumsum([0, *sizes])
    return {name: result[:, lo:hi] for name, lo, hi in zip(names, bounds[:-1], bounds[1:])}


def _predict_block(graph: Graph, names: list[str], batch_size, outputs, *blocks) -> np.ndarray:
    """One row block's outputs (or the nodes ``outputs`` names) side by side (run on a worker)."""
    out = predict_arrays(graph, dict(zip(names, blocks)), batch_size, outputs=outputs)
    if isinstance(out, dict):
        return np.concatenate([out[n] for n in (graph.outputs if outputs is None else outputs)], axis=1)
    return out


# ----------------------------------------------------------------- evaluate
def evaluate(graph: Graph, x, y, batch_size: int | None = None, metrics=None,
             sample_weight=None) -> dict[str, float]:
    """What :func:`graphnet.inference.evaluate` returns, computed block by block:
    each block's :class:`~graphnet.inference.Tally` (a few sums) is added up
    in a tree, so only a few floats per block travel.

    Raises
    ------
    ShapeError
        For data that does not fit the graph, or that has no rows.
    """
    dask, _ = require()
    chosen = metrics_module.resolve(graph, graph.default_metrics if metrics is None else metrics, "evaluate")
    chunk = DEFAULT_CHUNK if batch_size is None else check_int(batch_size, "batch_size")
    inputs, targets = lazy_inputs(graph, x), lazy_targets(graph, y)
    arrays = _labelled(inputs, targets)
    # sample_weight: None, one array for every output, or a dict output -> array
    weighted = None
    if sample_weight is not None:
        if isinstance(sample_weight, Mapping):  # refused at the call, not in a block
            check_outputs(sample_weight, graph.outputs, "evaluate: sample_weight")
        weighted = list(sample_weight) if isinstance(sample_weight, Mapping) else ""
        given = sample_weight if isinstance(sample_weight, Mapping) else {"": sample_weight}
        for name, value in given.items():
            arrays[f"sample_weight {name!r}"] = _lazy(
                value, f"evaluate: sample_weight for output {name!r}" if name else "evaluate: sample_weight")
    labelled, _ = aligned(arrays)
    blocks = [array.to_delayed().reshape(array.numblocks[0], -1)[:, 0] for array in labelled.values()]
    model = delayed_graph(graph)
    rows = list(zip(*blocks))
    parts = [
        dask.delayed(_tally_block, pure=True)(model, chosen, list(inputs), list(targets), weighted, chunk,
                                              f"block {i + 1} of {len(rows)}", *row)
        for i, row in enumerate(rows)
    ]
    state = dask.compute(tree_reduce(parts, dask.delayed(merge_states, pure=True)))[0]
    if state[0] == 0:
        raise ShapeError("evaluate: the data has no rows")
    tally = Tally(graph, chosen)
    tally.merge(state)
    logs = tally.logs()
    plan = compile_plan(graph)
    if plan.penalties:
        logs["loss"] += plan.regularization()
    return logs


def _tally_block(graph: Graph, chosen, input_names, output_names, weighted, chunk, block: str, *blocks):
    """The :meth:`Tally.state` of one row block (run on a worker); data
    that does not fit is refused naming the ``block`` (its rows counted
    from its first)."""
    k, m = len(input_names), len(input_names) + len(output_names)
    with graph.lock.reading():
        try:
            inputs = as_inputs(graph, dict(zip(input_names, blocks[:k])))
            targets = as_targets(graph, dict(zip(output_names, blocks[k:m])))
            rows = common_rows(inputs, targets)
            sample_weight = None if weighted is None else (
                blocks[m] if weighted == "" else dict(zip(weighted, blocks[m:])))
            weights = as_weights(graph, sample_weight, None, targets, rows, whole=False, where=None)
        except GraphError as exc:
            raise type(exc)(f"evaluate: {block} of the dask arrays (rows counted from its first): {exc}") from None
        return tally_arrays(graph, inputs, targets, chosen, chunk, weights).state()


def tree_reduce(items: list, combine):
    """``combine`` applied pairwise, level by level: a tree of depth
    ``ceil(log2 n)``, the same tree (so the same float sums) for the same ``n``."""
    if not items:
        raise ShapeError("the data has no blocks")
    while len(items) > 1:
        paired = [combine(a, b) for a, b in zip(items[::2], items[1::2])]
        items = paired + ([items[-1]] if len(items) % 2 else [])
    return items[0]


def _is_dask(value) -> bool:
    """Any dask collection, told by its type's module (no import of dask)."""
    return type(value).__module__.startswith("dask")


register_lazy(LazyHandler(_is_dask, predict, evaluate))
