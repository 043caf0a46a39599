"""Turning user data into the arrays a plan runs on, with errors that say why not.

Data for a graph is a dict keyed by node name, matched by name only (never by
position); a graph with exactly one input (or output) also takes a plain
array. Every problem raises :class:`~graphnet.ShapeError` naming the node, the
expected shape and the shape found.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from . import _frames, _tabular, _transforms
from . import backend as backend_module
from ._array_likes import is_keyed, readable
from ._text import preview, shown, suggestion
from ._validation import as_dtype, check_finite, non_finite_error
from .errors import GraphError, ShapeError

if TYPE_CHECKING:
    from .graph import Graph

__all__ = [
    "by_name",
    "named",
    "features",
    "plain_features",
    "as_inputs",
    "entering",
    "Deferred",
    "as_targets",
    "common_rows",
    "holdout",
    "holdout_rows",
    "holdout_split",
    "Batches",
]


def by_name(data, names: list[str], role: str) -> dict[str, np.ndarray]:
    """``data`` as a dict ``name -> ndarray`` over exactly ``names``.

    ``role`` is ``"input"`` or ``"output"`` and only shapes the messages.
    """
    return {n: _array(value, role, n) for n, value in named(data, names, role).items()}


def named(data, names: list[str], role: str) -> dict:
    """``data`` as a dict ``name -> value`` over exactly ``names``, the values
    not read (the dask path checks them without computing them): each as
    given, or a torch tensor that requires grad detached.

    Raises
    ------
    ShapeError
        For missing or unknown names, a plain array where several are
        needed, or a value numpy would misread
        (:func:`graphnet._array_likes.readable`).
    """
    if is_keyed(data):
        given = list(data)
        unknown = [k for k in given if k not in names]
        missing = [n for n in names if n not in data]
        if unknown or missing:
            owner = "output" if role == "output" else "input"  # a baseline is keyed by input names
            parts = []
            if missing:
                parts.append(f"missing {owner}s {preview(missing)}")
            if unknown:
                parts.append(f"unknown names {preview(unknown)}")
            close = next((hint.replace("did you", f"for {shown(key)}, did you", 1) for key in unknown
                          if (hint := suggestion(key, missing))), "")  # a typo, or a twin in NFC or NFD
            raise ShapeError(
                f"{role} data must be keyed by the graph's {owner} names {preview(names)}: "
                + " and ".join(parts) + close
            )
        return {n: readable(data[n], role, n) for n in names}
    if len(names) == 1:
        return {names[0]: readable(data, role, names[0])}
    raise ShapeError(
        f"this graph has {len(names)} {role}s {preview(names)}: pass a dict keyed by {role} name, "
        f"not a {type(data).__name__} (data is matched by name, never by position)"
    )


def _array(value, role: str, name: str, text_hint: str = "", node=None) -> np.ndarray:
    """``value`` as a numpy array of real numbers; ``text_hint`` ends the
    message for one of text or objects (what a column of labels gives).
    ``node``: a plain input, whose array of objects is read as the numbers
    it holds (:func:`_object_numbers`)."""
    if value is None:
        raise ShapeError(f"{role} {name!r}: got None instead of an array")
    try:
        array = np.asarray(backend_module.host(value))  # a GPU's arrays come back to be checked
    except (TypeError, ValueError, RuntimeError) as exc:  # RuntimeError: torch's refusals
        raise ShapeError(f"{role} {name!r}: could not make an array ({exc})") from None
    if node is not None and array.dtype.kind == "O":
        numbers = _object_numbers(node, array)
        array = array if numbers is None else numbers
    try:
        return real_numbers(array, role, name)
    except ShapeError as exc:
        if text_hint and (array.dtype.kind in "SU" or (array.dtype.kind == "O" and _holds_text(array))):
            raise ShapeError(f"{exc}{text_hint}") from None
        raise


def _holds_text(array: np.ndarray) -> bool:
    return any(isinstance(value, (str, bytes)) for value in array.flat)


def real_numbers(array, role: str, name: str):
    """``array`` (numpy, or a device's) unless its dtype is not bool, integer or float."""
    if array.dtype.kind not in "biuf":  # not complex (the imaginary part would be lost), times, text
        raise ShapeError(
            f"{role} {name!r}: expected numbers, got an array of dtype {array.dtype} "
            "(only real numbers: bool, integer or float)"
        )
    return array


def features(array: np.ndarray, size: int, name: str) -> np.ndarray:
    """``array`` as ``(n, size)``: a 1-D array is accepted where ``size`` is 1."""
    if array.ndim == 1 and size == 1:
        return array.reshape(-1, 1)
    if array.ndim != 2 or array.shape[1] != size:
        hint = ""
        if array.ndim == 1 and array.shape[0] == size:
            hint = "; for a single sample use x.reshape(1, -1)"
        raise ShapeError(f"input {name!r}: expected shape (n, {size}), got {array.shape}{hint}")
    return array


def plain_features(array: np.ndarray, size: int, name: str) -> np.ndarray:
    """A numpy array for plain input ``name``, checked as :func:`entering` checks it."""
    return features(array if array.dtype.kind in "biuf" else real_numbers(array, "input", name), size, name)


def as_inputs(graph: Graph, x, defer_after: int | None = None) -> dict[str, np.ndarray]:
    """Validated, contiguous input arrays of the graph's dtype. On a device,
    inputs already there (CuPy arrays) stay there and are checked there.
    ``defer_after``: see :func:`entering` (a :class:`Deferred` is checked as
    it is sliced)."""
    backend = graph.backend
    if backend.deferred and _device_data(backend, x):
        return _device_inputs(graph, x)
    out = entering(graph, x, defer_after)
    for name, given in out.items():
        if not isinstance(given, Deferred):
            out[name] = _checked(graph.nodes[name], given, graph.dtype)
    return out


def _checked(node, given: np.ndarray, dtype) -> np.ndarray:
    """An input's array as it enters the plan (:func:`entering`), cast to
    ``dtype`` and checked for NaN and inf; a categorical input's codes as they are."""
    if node.categorical and given.dtype == np.intp:
        return given
    array = as_dtype(given, dtype)
    check_finite(array, "input", node.name, node.column_names, given=given)
    return array


def entering(graph: Graph, x, defer_after: int | None = None) -> dict[str, np.ndarray]:
    """Each input's array as it enters the plan, not yet cast or checked for
    NaN: a frame's columns bound by name, then each transforming input's
    transform (category codes stay integers); plain inputs ``(n, size)``.
    A transforming input of more than ``defer_after`` rows is a
    :class:`Deferred`, transformed a chunk at a time.

    Raises
    ------
    ShapeError
        For data that does not fit (see :func:`named`, :func:`features`).
    GraphError
        For an input that was never adapted.
    """
    out = {}
    for name, value in named(_transforms.source(graph, x, "input"), graph.inputs, "input").items():
        node = graph.nodes[name]
        shape = getattr(value, "shape", ())
        if node.transforms and defer_after is not None and len(shape) and shape[0] > defer_after:
            out[name] = Deferred(node, value, graph.dtype)
        elif node.transforms:
            out[name] = _transforms.transform_input(node, value, graph.dtype)
        else:
            array = _array(value, "input", name, "; for a column of categories, give add_input(..., "
                           "categories='adapt' or a list)", node)
            out[name] = features(array, node.size, name)
    return out


def _object_numbers(node, raw: np.ndarray) -> np.ndarray | None:
    """A plain input's array of objects (a frame's column of them) as the
    float64 numbers it holds, missing values NaN (as scikit-learn reads it,
    and as an input that preprocesses does); None when it is of the wrong
    shape and holds more than numbers.

    Raises
    ------
    ShapeError
        For text in it, naming its column, row and value.
    """
    if (raw.ndim == 1 and node.size == 1) or (raw.ndim == 2 and raw.shape[1] == node.size):
        return _tabular.as_float_columns(raw, node.size, f"input {node.name!r}", node.data_columns)
    try:  # the wrong shape: numbers, so that the shape is what is refused
        return raw.astype(np.float64)
    except (TypeError, ValueError, OverflowError):
        return None


class Deferred:
    """A transforming input's data (normalised, imputed or looked up), made
    a chunk at a time as it is sliced, cast and checked as :func:`as_inputs`
    checks it: preprocessing many rows in ``predict`` or ``evaluate`` then
    needs memory for one chunk, not for every row. A chunk that is refused
    is refused again on every row, so the message counts them all."""

    def __init__(self, node, raw, dtype):
        self.node, self.dtype = node, np.dtype(dtype)
        self.raw = _frames.values(raw, node.categorical) if _frames.is_series(raw) else np.asarray(raw)
        self.shape = (len(self.raw),) if node.categorical else (len(self.raw), node.size)
        try:  # adapted, and the right columns: said before any chunk runs, of every row
            self._checked(self.raw[:0])
        except ShapeError:
            self._checked(self.raw)
            raise

    def __getitem__(self, rows: slice) -> np.ndarray:
        try:
            return self._checked(self.raw[rows])
        except ShapeError:
            self._checked(self.raw)
            raise

    def _checked(self, raw) -> np.ndarray:
        return _checked(self.node, _transforms.transform_input(self.node, raw, self.dtype), self.dtype)


def _device_data(backend, x) -> bool:
    values = x.values() if isinstance(x, Mapping) else [x]
    return any(backend.is_array(v) for v in values)


def _device_inputs(graph: Graph, x) -> dict:
    """:func:`as_inputs` for arrays on the graph's device: the same checks,
    NaN and inf counted there and read once per input."""
    backend = graph.backend
    xp = backend.xp
    out = {}
    for name, array in named(x, graph.inputs, "input").items():  # the names checked, no value read
        node = graph.nodes[name]
        if node.transforms:  # categories, imputation, normalisation: on the host, then sent
            raw = backend.to_host(array) if backend.is_array(array) else array
            out[name] = backend.to_device(_transforms.transform_input(node, raw, graph.dtype))
            continue
        if not backend.is_array(array):
            array = backend.to_device(_array(array, "input", name))
        given = features(real_numbers(array, "input", name), graph.nodes[name].size, name)
        array = xp.ascontiguousarray(given, dtype=graph.dtype)
        bad = int(backend.to_host((~xp.isfinite(array)).sum().reshape(1))[0])
        if bad:
            raise non_finite_error(backend.to_host(array), "input", name, node.column_names, backend.to_host(given))
        out[name] = array
    return out


def as_targets(graph: Graph, y) -> dict[str, np.ndarray]:
    """Validated target arrays; each output's loss decides what it accepts."""
    out = {}
    for name, value in named(_transforms.source(graph, y, "output"), graph.outputs, "output").items():
        node = graph.nodes[name]
        if node.classes is not None:
            value = _transforms.encode_labels(node, value)
        array = _array(value, "output", name, "; for labels, give add_output(..., classes='adapt' or a list)")
        out[name] = node.loss.prepare_target(array, node.size, name, graph.dtype)
    return out


def common_rows(
    inputs: Mapping[str, np.ndarray], targets: Mapping[str, np.ndarray] | None = None
) -> int:
    """The number of rows every input and target array shares.

    Raises
    ------
    ShapeError
        Naming two arrays whose row counts differ.
    """
    arrays = [(f"input {n!r}", a) for n, a in inputs.items()]
    arrays += [(f"targets of output {n!r}", a) for n, a in (targets or {}).items()]
    if not arrays:
        return 0
    first_label, first = arrays[0][0], arrays[0][1].shape[0]
    for label, array in arrays[1:]:
        if array.shape[0] != first:
            raise ShapeError(
                f"rows disagree: {first_label} has {first} rows but {label} has {array.shape[0]}"
            )
    return first


def holdout(rng: np.random.Generator, inputs, targets, rows: int, fraction: float, weights=None):
    """``(training, validation)`` pairs of ``(inputs, targets)``: a random
    ``fraction`` of the rows held out, drawn from ``rng``.

    A seeded random split, not Keras's "last rows": sorted data would give a
    validation set unlike the training set.
    """
    train_rows, val_rows = holdout_split(rng, rows, fraction)

    def take(arrays, index):
        if arrays is None:
            return None
        return {k: np.ascontiguousarray(v[index]) if isinstance(v, np.ndarray)
                else v[backend_module.get_for(v).to_device(index)]  # inputs left on a device
                for k, v in arrays.items()}

    return (take(inputs, train_rows), take(targets, train_rows), take(weights, train_rows)), (
        take(inputs, val_rows),
        take(targets, val_rows),
        take(weights, val_rows),
    )


def holdout_rows(rows: int, fraction: float) -> int:
    """How many of ``rows`` a validation ``fraction`` holds out; refused
    unless both parts keep at least one row."""
    if not 0.0 <= fraction < 1.0:
        raise GraphError(f"fit: validation_split must be in [0, 1), got {fraction!r}")
    held = int(rows * fraction)
    if held == 0 or held == rows:
        raise GraphError(
            f"fit: validation_split={fraction} of {rows} rows leaves "
            f"{held} validation and {rows - held} training rows; both need at least one"
        )
    return held


def holdout_split(rng: np.random.Generator, rows: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """``(training rows, validation rows)``, each sorted: the split :func:`holdout`
    makes (``graphnet.distributed`` makes the same on data it never gathers)."""
    held = holdout_rows(rows, fraction)
    order = rng.permutation(rows)
    return np.sort(order[held:]), np.sort(order[:held])


class Batches:
    """The mini-batches of one pass over checked arrays, in a given row order.

    Shuffled batches are gathered into buffers made once
    (``np.take(..., out=)``); in the stored order they are plain slices. Each
    batch is ``(inputs, targets, rows)``, or ``(inputs, targets, rows,
    weights)`` when row weights were given, valid until the next one is drawn.

    On a device (``backend`` not the CPU) the arrays move there once, when
    they fit (:meth:`~graphnet.backend.Backend.fits`), and batches are sliced
    and gathered there, the row order sent once per epoch; when they do not
    fit, each batch is gathered on the host and sent on its own.
    """

    def __init__(self, inputs: dict[str, np.ndarray], targets: dict[str, np.ndarray], batch_size: int,
                 weights: dict[str, np.ndarray] | None = None, backend=backend_module.CPU):
        self.rows = common_rows(inputs, targets)
        self.size = min(batch_size, self.rows)
        self.count = math.ceil(self.rows / self.size) if self.rows else 0
        self.backend, self._send = backend, None
        if backend.deferred:
            arrays = [*inputs.values(), *targets.values(), *(weights or {}).values()]
            if backend.fits(sum(a.nbytes for a in arrays)):
                move = backend.to_device
                inputs = {k: move(v) for k, v in inputs.items()}
                targets = {k: move(v) for k, v in targets.items()}
                weights = None if weights is None else {k: move(v) for k, v in weights.items()}
            else:
                self._send = backend.to_device
        self._on_device = backend.deferred and self._send is None
        self._inputs, self._targets, self._weights = inputs, targets, weights
        self._buffers = None

    def __len__(self) -> int:
        return self.count

    def epoch(self, order: np.ndarray | None = None):
        """Iterate over the batches of rows ``order`` (all rows in order when None)."""
        weights, send = self._weights, self._send
        if order is not None and self._on_device:
            order = self.backend.to_device(order)
        for lo in range(0, self.rows, self.size):
            hi = min(self.rows, lo + self.size)
            if order is None:
                batch = (
                    {k: v[lo:hi] for k, v in self._inputs.items()},
                    {k: v[lo:hi] for k, v in self._targets.items()},
                    hi - lo,
                )
                index = slice(lo, hi)
            else:
                index = order[lo:hi]
                batch = (*self._gather(index), hi - lo)
            if weights is not None:
                batch = (*batch, {k: w[index] for k, w in weights.items()})
            if send is not None:  # gathered on the host: one transfer per array
                batch = tuple({k: send(v) for k, v in part.items()} if isinstance(part, dict) else part
                              for part in batch)
            yield batch

    def _gather(self, index: np.ndarray):
        if self._buffers is None:
            xp = self.backend.xp if self._on_device else np
            self._buffers = tuple(
                {k: (v, xp.empty((self.size, *v.shape[1:]), v.dtype)) for k, v in arrays.items()}
                for arrays in (self._inputs, self._targets)
            )
        n = len(index)
        take = self.backend.take if self._on_device else backend_module.CPU.take
        return tuple(
            {k: take(v, index, buf[:n]) for k, (v, buf) in arrays.items()}
            for arrays in self._buffers
        )

