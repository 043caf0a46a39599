"""Running a graph without training it: ``predict`` and ``evaluate``.

Both work through the data in chunks with a workspace of their own, made per
call: memory grows with the chunk, not with the number of rows, and several
threads may predict with one graph at once. Dask arrays (or dicts holding
one) go to :mod:`graphnet._dask`, imported only then: ``import graphnet``
never imports dask.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from . import metrics as metrics_module
from .checks import check_int
from .data import as_inputs, as_targets, by_name, check_finite, common_rows, features
from .errors import ShapeError

if TYPE_CHECKING:
    from .graph import Graph

__all__ = ["predict", "evaluate", "evaluate_arrays", "tally_arrays", "Tally", "DEFAULT_CHUNK"]

#: Rows per chunk when ``batch_size`` is not given.
DEFAULT_CHUNK = 4096


def _is_lazy(data) -> bool:
    """Whether ``data`` is a dask collection, or a dict holding one (told by the
    type's module, so dask is imported only when it is already in use)."""
    values = data.values() if isinstance(data, Mapping) else (data,)
    return any(type(v).__module__.startswith("dask") for v in values)


def _chunk_size(batch_size: int | None, rows: int) -> int:
    if batch_size is None:
        return max(1, min(DEFAULT_CHUNK, rows))
    return min(check_int(batch_size, "batch_size"), max(rows, 1))


def predict(graph: Graph, x, batch_size: int | None = None):
    """See :meth:`graphnet.Graph.predict`. Holds the graph's read lock: no
    training step or edit lands while it runs, so every row sees the same weights."""
    if _is_lazy(x):
        from . import _dask

        return _dask.predict(graph, x, batch_size)
    with graph._lock.reading():
        return _predict(graph, x, batch_size)


def _predict(graph: Graph, x, batch_size: int | None):
    plan = graph.plan
    arrays = {
        name: features(array, graph.nodes[name].size, name)
        for name, array in by_name(x, graph.inputs, "input").items()
    }
    rows = common_rows(arrays)
    chunk = _chunk_size(batch_size, rows)
    results = {
        name: np.empty((rows, graph.nodes[name].size), dtype=plan.dtype) for name in graph.outputs
    }
    if rows:
        full = plan.workspace(chunk, "predict")
        for start in range(0, rows, chunk):
            stop = min(start + chunk, rows)
            ws = full if stop - start == chunk else full.head(stop - start)
            inputs = {}
            for name, array in arrays.items():
                part = np.ascontiguousarray(array[start:stop], dtype=plan.dtype)
                check_finite(part, "input", name)
                inputs[name] = part
            for name, slot in plan.outputs:
                ws.bind_output(slot, results[name][start:stop])
            plan.forward(ws, inputs)
    if len(results) == 1:
        return next(iter(results.values()))
    return results


class Tally:
    """Row-weighted running means of per-output losses and metrics.

    Every loss and metric is a mean over rows, so weighting batch values by
    their row counts gives exactly the value over all the data.
    """

    def __init__(self, graph: Graph, metrics_by_output: dict[str, list]):
        self.graph = graph
        self.plan = graph.plan
        self.outputs = {name: graph.nodes[name] for name in graph.outputs}
        self.metrics = metrics_by_output
        self.rows = 0
        self.sums: dict[str, float] = {}

    def add(self, rows: int, losses: dict[str, float], predictions=None, targets=None,
            total: float | None = None) -> float:
        """Count one batch; returns its total loss (``total`` when given, e.g.
        with a training penalty in it, else the weighted sum of ``losses``)."""
        if total is None:
            total = self.plan.total_loss(losses)
        self.rows += rows
        self._add("loss", total * rows)
        if len(self.outputs) > 1:
            for name, value in losses.items():
                self._add(f"{name}_loss", value * rows)
        for name, chosen in self.metrics.items():
            for metric in chosen:
                value = metric(targets[name], predictions[name], self.outputs[name])
                self._add(metrics_module.key(self.graph, name, metric.name), value * rows)
        return total

    def merge(self, rows: int, sums: dict[str, float]) -> None:
        """Count rows whose row-weighted sums were added up elsewhere (another
        Tally's ``rows`` and ``sums``: a chunk of a dask array, a worker's shard)."""
        self.rows += rows
        for key, value in sums.items():
            self._add(key, value)

    def _add(self, key: str, value: float) -> None:
        self.sums[key] = self.sums.get(key, 0.0) + value

    def logs(self) -> dict[str, float]:
        return {k: v / self.rows for k, v in self.sums.items()} if self.rows else {}


def evaluate(graph: Graph, x, y, batch_size: int | None = None, metrics=()) -> dict[str, float]:
    """See :meth:`graphnet.Graph.evaluate` (which, like ``predict``, holds the read lock)."""
    if _is_lazy(x) or _is_lazy(y):
        from . import _dask

        return _dask.evaluate(graph, x, y, batch_size, metrics)
    with graph._lock.reading():
        return _evaluate(graph, x, y, batch_size, metrics)


def _evaluate(graph: Graph, x, y, batch_size: int | None, metrics) -> dict[str, float]:
    chosen = metrics_module.resolve(graph, metrics)
    inputs, targets = as_inputs(graph, x), as_targets(graph, y)
    rows = common_rows(inputs, targets)
    if rows == 0:
        raise ShapeError("evaluate: the data has no rows")
    return evaluate_arrays(graph, inputs, targets, chosen, _chunk_size(batch_size, rows))


def evaluate_arrays(graph: Graph, inputs, targets, chosen, chunk: int) -> dict[str, float]:
    """:func:`evaluate` on arrays already checked by :mod:`graphnet.data`."""
    return tally_arrays(graph, inputs, targets, chosen, chunk).logs()


def tally_arrays(graph: Graph, inputs, targets, chosen, chunk: int) -> Tally:
    """The :class:`Tally` of checked arrays, ``chunk`` rows at a time (none for no rows)."""
    plan = graph.plan
    rows = common_rows(inputs, targets)
    tally = Tally(graph, chosen)
    if rows == 0:
        return tally
    chunk = min(chunk, rows)
    full = plan.workspace(chunk, "evaluate")
    for start in range(0, rows, chunk):
        stop = min(start + chunk, rows)
        ws = full if stop - start == chunk else full.head(stop - start)
        part_targets = {k: v[start:stop] for k, v in targets.items()}
        plan.forward(ws, {k: v[start:stop] for k, v in inputs.items()})
        losses = plan.loss_values(ws, part_targets)
        predictions = {name: ws.a[slot] for name, slot in plan.outputs}
        tally.add(stop - start, losses, predictions, part_targets)
    return tally
