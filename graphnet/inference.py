"""Running a graph without training it: ``predict`` and ``evaluate``.

Both work through the data in chunks with a workspace of their own, made per
call: memory grows with the chunk, not with the number of rows, and several
threads may predict with one graph at once.

Lazy collections (dask arrays, or dicts holding one) are handed to the
handler registered for them (:mod:`graphnet._lazy`).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import numpy as np

from . import _compiled_forward
from . import metrics as metrics_module
from ._compiled_forward import SMALL_ROWS
from ._lazy import lazy_handler
from ._locks import read_optimistically
from ._validation import as_dtype, check_bool, check_finite, check_int, read_only_view, whole_non_finite_error
from ._data import as_inputs, as_targets, common_rows, entering, plain_features
from ._row_weights import as_weights, row_factors
from ._text import preview, shown
from ._transforms import one_hot
from .errors import GraphError, ShapeError
from .nodes import Node
from .plan import compile_plan

if TYPE_CHECKING:
    from .graph import Graph

__all__ = ["predict", "evaluate", "evaluate_arrays", "tally_arrays", "Tally", "merge_states", "DEFAULT_CHUNK",
           "SHORT_CALL_ROWS"]

#: Rows per chunk when ``batch_size`` is not given.
DEFAULT_CHUNK = 4096
#: A ``predict`` of arrays of at most this many rows runs without taking the
#: read lock, and again under it if a write landed in the middle
#: (:func:`~graphnet._locks.read_optimistically`): the lock is a tenth of a
#: one-row call, and a call this short is cheap to run twice.
SHORT_CALL_ROWS = 64


def _chunk_size(batch_size: int | None, rows: int) -> int:
    if batch_size is None:
        return max(1, min(DEFAULT_CHUNK, rows))
    return min(check_int(batch_size, "batch_size"), max(rows, 1))


def predict(graph: Graph, x, batch_size: int | None = None, as_device: bool = False, outputs=None):
    """Outputs for ``x`` in inference mode (no dropout); safe from several threads.

    Every row sees the weights of one moment: no training step or edit lands
    in the middle of a call. A call holds the graph's read lock, except a
    short one (arrays of up to 64 rows), which runs without it when no
    write is under way and runs again under it if a write came in the
    middle. A call of fewer than 8 rows runs as one compiled call where the
    graph allows it (numba installed; plain inputs; dense nodes with
    ``linear``, ``relu``, ``sigmoid``, ``tanh`` or ``softmax``). ``graph(x)``
    is the same call.

    Parameters
    ----------
    x : ndarray of shape (n, size), or dict input name -> ndarray
        A dask array (or a dict holding one) gives a lazy dask result.
    batch_size : int, optional
        Rows per chunk; memory use grows with the chunk, not with ``n``.
    as_device : bool
        On a GPU, return the device's arrays (CuPy) instead of copying
        them to numpy; on the CPU, numpy arrays either way.
    outputs : list of str or Node, optional
        The nodes to read instead of the graph's outputs: any node, hidden
        ones and inputs too (an input gives the data as the graph sees it).
        The result is then always a dict name -> array, in this order: a
        feature extractor without surgery.

    Returns
    -------
    ndarray of shape (n, size) for a one-output graph, else a dict name -> ndarray.
    With ``outputs``, a dict name -> ndarray of shape (n, node.size).

    Raises
    ------
    ShapeError
        For data that does not fit the graph (missing or unknown inputs,
        wrong feature counts, rows that disagree, NaN or inf).
    GraphError
        For ``outputs`` that is not a node name (or node) or a non-empty list of them
        (:class:`~graphnet.NotFoundError`, listing the known names, for an
        unknown one).

    Examples
    --------
    >>> import numpy as np, graphnet as gn
    >>> g = gn.Sequential([gn.Input(3), gn.Dense(4, activation="relu", name="h"), gn.Dense(1)], seed=0)
    >>> features = g.predict(np.ones((2, 3)), outputs=["h"])
    >>> features["h"].shape
    (2, 4)
    """
    if as_device is not False:
        as_device = check_bool(as_device, "predict: as_device")
    if batch_size is not None:  # checked on every path: a call of a few rows may never chunk
        batch_size = check_int(batch_size, "predict: batch_size")
    names = None if outputs is None else _read_names(graph, outputs)
    handler = None if type(x) is np.ndarray else lazy_handler(x)
    if handler is not None:
        if names is None:
            return handler.predict(graph, x, batch_size)
        return handler.predict(graph, x, batch_size, names)
    if _short(x):
        results = read_optimistically(graph.lock, _activations, graph, x, batch_size, names)
    else:
        with graph.lock.reading():
            results = _activations(graph, x, batch_size, names)
    backend = graph.backend
    if names is not None:  # a categorical input's activations are its one-hot rows
        results = {name: one_hot(array, graph.nodes[name].size, graph.dtype, backend.xp,
                                 f"predict: input {name!r} as one-hot rows") if array.ndim == 1
                   else array for name, array in results.items()}
    if not as_device and backend.deferred:  # one transfer per output, at the end
        results = {name: backend.to_host(array) for name, array in results.items()}
    if len(results) == 1 and names is None:
        return next(iter(results.values()))
    return results


def _short(x) -> bool:
    """Whether ``x`` is an array, or a dict of arrays, of at most :data:`SHORT_CALL_ROWS` rows."""
    if type(x) is np.ndarray:
        return 0 < x.ndim and x.shape[0] <= SHORT_CALL_ROWS
    return type(x) is dict and all(
        type(v) is np.ndarray and 0 < v.ndim and v.shape[0] <= SHORT_CALL_ROWS for v in x.values()
    )


def _read_names(graph: Graph, outputs) -> list[str]:
    """``predict``'s ``outputs``: node names (or nodes), each once, in the order given."""
    if isinstance(outputs, (str, Node)):
        outputs = [outputs]
    if not isinstance(outputs, (list, tuple)) or not outputs:
        raise GraphError(
            f"predict: outputs must be a non-empty list of node names, got {shown(outputs)}; "
            f"nodes: {preview(graph.nodes)}"
        )
    return list(dict.fromkeys(graph.resolve(name) for name in outputs))


def _activations(graph: Graph, x, batch_size: int | None, names: list[str] | None) -> dict:
    """Every named node's activation (an input's data) for ``x``. In a
    ``predict`` workspace each dense node has buffers of its own, which
    forward writes and nothing overwrites (only backward reuses buffers),
    so a node's rows are written straight into the result. ``names`` None:
    the graph's outputs."""
    plan = compile_plan(graph)
    if names is None:
        if plan.plain_input is not None and type(x) is np.ndarray and batch_size is None and x.dtype.kind in "biuf":
            return _outputs_of_one_array(plan, x)
        names = plan.output_names
    if plan.plain_input is not None and type(x) is np.ndarray and x.dtype.kind in "biuf":  # the common call
        name, size = plan.plain_input
        arrays, codes = {name: plain_features(x, size, name)}, ()
    else:
        arrays = entering(graph, x, defer_after=batch_size or DEFAULT_CHUNK)  # preprocessed a chunk at a time
        codes = {name for name in arrays if graph.nodes[name].categorical}  # a categorical input's: its codes
    rows = common_rows(arrays)
    made = _compiled_forward.program(plan, tuple(names)) if 0 < rows < SMALL_ROWS else None
    if made is not None:  # one compiled call, where the plan allows it
        checked = {name: as_dtype(array, plan.dtype) for name, array in arrays.items()}
        try:
            results = _compiled_forward.forward(made, plan.store.values, checked)
        except ShapeError:  # NaN or inf, said of the data as given: finite there is too large for the dtype
            for name, array in checked.items():
                check_finite(array, "input", name, plan.input_columns[name], given=arrays[name])
            raise
        if results is not None:
            return results
    return _activations_in_chunks(plan, arrays, codes, rows, _chunk_size(batch_size, rows), names)


def _activations_in_chunks(plan, arrays: dict, codes, rows: int, chunk: int, names: list[str]) -> dict:
    """The named nodes' activations for checked ``arrays``, ``chunk`` rows at a time."""
    send, sizes, slots = plan.backend.to_device, plan.sizes, plan.slots
    results = {name: plan.xp.empty(rows, dtype=np.intp) if name in codes
               else plan.xp.empty((rows, sizes[slots[name]]), dtype=plan.dtype) for name in names}
    dense = [(name, slots[name]) for name in names if name not in arrays]
    if not rows:
        return results
    full = plan.predict_workspace(chunk)
    try:
        for start in range(0, rows, chunk):
            stop = min(start + chunk, rows)
            ws = full if stop - start == chunk else full.head(stop - start)
            inputs = {}
            for name, array in arrays.items():
                if name in codes:
                    inputs[name] = send(array[start:stop])
                    continue
                given = array[start:stop]
                part = as_dtype(given, plan.dtype)
                try:
                    check_finite(part, "input", name, plan.input_columns[name], given=given)
                except ShapeError:  # said of all the rows, not of this chunk's
                    if rows <= chunk or not isinstance(array, np.ndarray):
                        raise
                    raise whole_non_finite_error(array, plan.dtype, "input", name, plan.input_columns[name],
                                                 chunk) from None
                inputs[name] = send(part)
            for name, slot in dense:
                ws.bind_output(slot, results[name][start:stop])
            plan.forward(ws, inputs)
            for name in names:
                if name in inputs:
                    results[name][start:stop] = inputs[name]
    finally:
        full.restore()  # the results are the caller's: a workspace kept for the next call lets them go
    return results


def _outputs_of_one_array(plan, x: np.ndarray) -> dict:
    """The outputs for a plain array given to a graph of one plain input, in
    one chunk up to :data:`DEFAULT_CHUNK` rows: the same checks as the
    general path in fewer steps (a one-row call is timed in microseconds)."""
    name, size = plan.plain_input
    array = plain_features(x, size, name)
    rows = array.shape[0]
    if not 0 < rows <= DEFAULT_CHUNK:
        return _activations_in_chunks(plan, {name: array}, (), rows, max(1, min(DEFAULT_CHUNK, rows)),
                                      plan.output_names)
    part = as_dtype(array, plan.dtype)
    made = _compiled_forward.program(plan, plan.output_names) if rows < SMALL_ROWS else None
    try:
        outs = None if made is None else _compiled_forward.run(made, plan.store.values, (part,))
    except ShapeError:  # NaN or inf, said of the data as given: finite there is too large for the dtype
        check_finite(part, "input", name, plan.input_columns[name], given=array)
        raise
    if outs is not None:  # one compiled call, where the plan allows it
        return dict(zip(plan.output_names, outs))
    check_finite(part, "input", name, plan.input_columns[name], given=array)
    ws, xp, sizes = plan.predict_workspace(rows), plan.xp, plan.sizes
    results = {}
    for output, slot in plan.outputs:
        results[output] = result = xp.empty((rows, sizes[slot]), dtype=plan.dtype)
        ws.bind_output(slot, result)
    try:
        plan.forward(ws, {name: plan.backend.to_device(part)})
    finally:
        ws.restore()
    return results


class Tally:
    """Running per-output losses and metrics over batches.

    A loss is a mean over a batch's rows (weighted by sample weights when
    there are some), so weighting batch values by their row counts (or their
    sums of weights) gives exactly the value over all the data. Each metric
    keeps a streaming state (:class:`graphnet.metrics.Metric`), so its value
    is the one on all the rows, never a mean of batch values; metrics stay
    unweighted, as Keras's ``metrics`` do. A training penalty (regularizers)
    is averaged over the batches by rows and added to ``loss``.
    """

    def __init__(self, graph: Graph, metrics_by_output: dict[str, list]):
        self.graph = graph
        self.backend = graph.backend
        self.outputs = {name: graph.nodes[name] for name in graph.outputs}
        several = len(self.outputs) > 1
        # One fresh copy of each metric per tally, bound to its output.
        self.metrics = {
            name: [(metrics_module.key(several, name, metric.name), metric.bind(self.outputs[name]))
                   for metric in chosen]
            for name, chosen in metrics_by_output.items() if chosen
        }
        self.rows = 0
        self.sums: dict[str, float] = {}  # the penalty, times rows
        # per output: Σ w·L, Σ w, and Σ w·loss_weight·L with each batch's own loss_weight
        self._loss = {name: [0.0, 0.0, 0.0] for name in self.outputs}

    def add(self, rows: int, losses: dict[str, float], predictions=None, targets=None,
            penalty: float = 0.0, weight_sums: dict[str, float] | None = None) -> None:
        """Count one batch: its per-output mean ``losses``, ``penalty``, the
        sum of its row weights per output (its row count when unweighted),
        and its predictions and targets into each metric (when given: see
        :meth:`add_predictions`)."""
        self.rows += rows
        for name, value in losses.items():
            weight = rows if weight_sums is None else weight_sums[name]
            total = self._loss[name]
            total[0] += value * weight
            total[1] += weight
            total[2] += value * weight * self.outputs[name].loss_weight  # as it was for this batch
        if not isinstance(penalty, (int, float)) or penalty:  # (a device's penalty is never read)
            self._add("penalty", penalty * rows)
        if predictions is not None:
            self.add_predictions(predictions, targets)

    def add_predictions(self, predictions, targets) -> None:
        """One batch's predictions and targets (dicts by output) into each
        metric: a training step gives them before backward writes over
        its activations."""
        deferred = self.backend.deferred
        for name, bound in self.metrics.items():
            y, a, host = targets[name], predictions[name], None
            y, a = read_only_view(y), read_only_view(a)  # a metric observes: the engine's buffer, the caller's targets
            for _, metric in bound:
                if deferred and not metric.device_arrays:  # host copies, made once per batch
                    host = host or (self.backend.to_host(y), self.backend.to_host(a))
                    metric.update_unchecked(*host)
                else:
                    metric.update_unchecked(y, a)

    def state(self) -> tuple:
        """``(rows, {output: (Σ w·L, Σ w, Σ w·loss_weight·L)}, sums, {key: Metric})``: what
        :meth:`merge` adds into another Tally, and :func:`merge_states` to
        another state (a dask chunk's, a worker's share of a batch)."""
        metrics = {k: copy.deepcopy(m) for bound in self.metrics.values() for k, m in bound}
        return self.rows, {name: tuple(total) for name, total in self._loss.items()}, dict(self.sums), metrics

    def merge(self, state: tuple) -> None:
        """Count what another Tally counted (its :meth:`state`), in place."""
        rows, losses, sums, metrics = state
        self.rows += rows
        for name, totals in losses.items():
            for i, value in enumerate(totals):
                self._loss[name][i] += value
        for key, value in sums.items():
            self._add(key, value)
        for bound in self.metrics.values():
            for key, metric in bound:
                metric.merge_state(metrics[key])

    def _add(self, key: str, value: float) -> None:
        self.sums[key] = self.sums.get(key, 0.0) + value

    def output_losses(self, weighted: bool = False) -> dict[str, float]:
        """Each output's mean loss so far (``weighted``: times the loss weight
        each batch trained with)."""
        i = 2 if weighted else 0
        if self.backend.deferred:  # no test of den on the host; 0 / (0 + 1) when it is 0
            return {name: total[i] / (total[1] + (total[1] == 0)) for name, total in self._loss.items()}
        return {name: (total[i] / total[1] if total[1] else 0.0) for name, total in self._loss.items()}

    def loss(self) -> float:
        """The running ``loss``: ``Σ loss_weight × output loss`` plus the
        penalty, each batch counted with the loss weights it trained with (a
        callback may change them between batches)."""
        if not self.rows:
            return 0.0
        return sum(self.output_losses(weighted=True).values()) + self.sums.get("penalty", 0.0) / self.rows

    def running(self) -> dict:
        """The figures a live progress bar shows: the loss, each output's loss
        (several outputs), and the metrics whose running value is cheap (a
        device's values unread)."""
        figures = {"loss": self.loss()}
        if len(self.outputs) > 1 and self.rows:
            figures.update({f"{name}_loss": value for name, value in self.output_losses().items()})
        if self.rows:
            figures.update({k: metrics_module.result_of(metric) for bound in self.metrics.values()
                            for k, metric in bound if metric.live})
        return figures

    def metric_logs(self) -> dict:
        """Each metric's value over the rows so far (a device's values unread)."""
        return {k: metrics_module.result_of(metric) for bound in self.metrics.values() for k, metric in bound}

    def logs(self) -> dict[str, float]:
        """Every running value as a float (on a device: one transfer for all)."""
        if not self.rows:
            return {}
        logs = {"loss": self.loss()}
        if len(self.outputs) > 1:
            logs.update({f"{name}_loss": value for name, value in self.output_losses().items()})
        logs.update(self.metric_logs())
        return read_scalars(self.backend, logs)


def merge_states(a: tuple, b: tuple) -> tuple:
    """Two :meth:`Tally.state` results added up (keys in first-seen order, as
    a Tally keeps them); neither is changed."""
    losses = {name: tuple(x + y for x, y in zip(totals, b[1][name])) for name, totals in a[1].items()}
    sums = dict(a[2])
    for key, value in b[2].items():
        sums[key] = sums.get(key, 0.0) + value
    metrics = {}
    for key, metric in a[3].items():
        merged = copy.deepcopy(metric)
        merged.merge_state(b[3][key])
        metrics[key] = merged
    return a[0] + b[0], losses, sums, metrics


def evaluate(graph: Graph, x, y, batch_size: int | None = None, metrics=None,
             sample_weight=None) -> dict[str, float]:
    """Loss (total and per output) and ``metrics`` on ``(x, y)``, without dropout.

    Like :func:`predict`, the call holds the graph's read lock.

    Parameters
    ----------
    x : ndarray or dict input name -> ndarray (dask arrays too)
    y : ndarray or dict output name -> ndarray
    batch_size : int, optional
        Rows per chunk.
    metrics : list, or dict output name -> list, optional
        As for ``fit`` (names, :class:`~graphnet.metrics.Metric` instances,
        functions), each computed on all the rows; by default those given
        to ``compile`` (none if it was not called).
    sample_weight : ndarray of shape (n,), or dict output name -> array, optional
        The losses become weighted means ``Σ w·l / Σ w``; metrics stay
        unweighted (Keras's ``metrics``).

    Returns
    -------
    dict
        ``loss`` (with the regularizers' penalty), per-output ``NAME_loss``
        for several outputs, and every metric.

    Raises
    ------
    ShapeError
        For data that does not fit the graph, or no rows.
    """
    if batch_size is not None:  # checked on every path, as predict's
        batch_size = check_int(batch_size, "evaluate: batch_size")
    handler = lazy_handler(x, y, sample_weight)
    if handler is not None:
        return handler.evaluate(graph, x, y, batch_size, metrics, sample_weight)
    with graph.lock.reading():
        return _evaluate(graph, x, y, batch_size, metrics, sample_weight)


def _evaluate(graph: Graph, x, y, batch_size: int | None, metrics, sample_weight) -> dict[str, float]:
    chosen = metrics_module.resolve(graph, graph.default_metrics if metrics is None else metrics, "evaluate")
    inputs, targets = as_inputs(graph, x, defer_after=batch_size or DEFAULT_CHUNK), as_targets(graph, y)
    rows = common_rows(inputs, targets)
    if rows == 0:
        raise ShapeError("evaluate: the data has no rows")
    metrics_module.check_targets(graph, chosen, targets, "evaluate")
    weights = as_weights(graph, sample_weight, None, targets, rows, where="evaluate")
    return evaluate_arrays(graph, inputs, targets, chosen, _chunk_size(batch_size, rows), weights)


def evaluate_arrays(graph: Graph, inputs, targets, chosen, chunk: int, weights=None) -> dict[str, float]:
    """:func:`evaluate` on arrays already checked by :mod:`graphnet._data`;
    ``loss`` includes the regularizers' penalty, as Keras reports it."""
    with np.errstate(over="ignore", invalid="ignore"):  # finite data may still overflow: inf, without warnings
        logs = tally_arrays(graph, inputs, targets, chosen, chunk, weights).logs()
    plan = compile_plan(graph)
    if plan.penalties and logs:
        logs["loss"] += read_scalars(plan.backend, {"penalty": plan.regularization()})["penalty"]
    return logs


def tally_arrays(graph: Graph, inputs, targets, chosen, chunk: int, weights=None, into: Tally | None = None) -> Tally:
    """The :class:`Tally` of checked arrays, ``chunk`` rows at a time (an
    empty one for no rows), without the regularizers' penalty; counted
    ``into`` a Tally already there when given. Data too large for the
    graph's numbers gives inf or NaN losses and metrics, without numpy's warnings."""
    plan = compile_plan(graph)
    xp, send = plan.xp, plan.backend.to_device
    rows = common_rows(inputs, targets)
    tally = Tally(graph, chosen) if into is None else into
    if rows == 0:
        return tally
    chunk = min(chunk, rows)
    full = plan.workspace(chunk, "evaluate")
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, rows, chunk):
            stop = min(start + chunk, rows)
            ws = full if stop - start == chunk else full.head(stop - start)
            part_targets = {k: v[start:stop] for k, v in targets.items()}
            factors, sums = row_factors(
                None if weights is None else {k: send(w[start:stop]) for k, w in weights.items()}, plan.dtype, xp)
            part_targets = {k: send(v) for k, v in part_targets.items()}
            plan.forward(ws, {k: send(v[start:stop]) for k, v in inputs.items()})
            losses = plan.loss_values(ws, part_targets, factors)
            predictions = {name: ws.a[slot] for name, slot in plan.outputs}
            tally.add(stop - start, losses, predictions, part_targets, weight_sums=sums)
    return tally


def read_scalars(backend, values: dict) -> dict[str, float]:
    """``values`` (floats, or a device's 0-d arrays) as floats, the device's
    read in one transfer: one synchronisation however many there are."""
    keys = [k for k, v in values.items() if not isinstance(v, (int, float, np.generic, np.ndarray))]
    if not keys:
        return {k: float(v) for k, v in values.items()}
    xp = backend.xp
    packed = backend.to_host(xp.stack([xp.asarray(values[k], dtype=np.float64).reshape(()) for k in keys]))
    read = dict(zip(keys, packed.tolist()))
    return {k: read[k] if k in read else float(v) for k, v in values.items()}
