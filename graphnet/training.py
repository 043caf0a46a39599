"""Training: one checked update (:class:`Trainer`), and the ``fit`` loop around it.

Every update is checked before it lands: a non-finite loss stops before
backward, a non-finite gradient before the optimizer runs, a non-finite
update before it is applied. So when :class:`~graphnet.TrainingError` is
raised the weights are exactly those from before the failing step.
"""

from __future__ import annotations

import contextlib
import logging
import math

import networkx as nx
import numpy as np

from . import metrics as metrics_module
from .callbacks import Callback, History
from .data import as_inputs, as_targets, common_rows
from .errors import GraphError, ShapeError, TrainingError
from .inference import DEFAULT_CHUNK, Tally, evaluate_arrays
from .progress import Progress, format_logs

__all__ = ["Trainer", "fit", "train_step", "gradients"]

logger = logging.getLogger(__name__)


def _all_finite(values: np.ndarray) -> bool:
    """One BLAS pass; the exact element check only when it is suspect.

    Any NaN or inf makes the sum of squares NaN or inf. ``np.dot(v, v)`` reads
    the vector once with SIMD, 2.6x faster than ``np.add.reduce`` (twice per
    step over every parameter: 5% of W1's epoch). A false alarm (squares that
    overflow, |v| > ~1e19) only costs the exact check.
    """
    return math.isfinite(float(np.dot(values, values))) or bool(np.isfinite(values).all())


class Trainer:
    """Applies checked updates to one graph with its optimizer."""

    def __init__(self, graph, optimizer=None):
        self.graph = graph
        self.plan = graph.plan
        self.optimizer = _resolve_optimizer(graph, optimizer)
        store = self.plan.store
        self.optimizer.bind(store.layout, self.plan.dtype)
        self._params = store.trainable_values
        self._grads = store.trainable_grads

    def step(self, inputs, targets, rows: int, where=None, tally: Tally | None = None) -> float:
        """Forward, backward and one update on a batch; returns its loss.

        ``where`` is ``(epoch, epochs, batch, batches)``, counted from 0, for
        error messages (``None`` outside ``fit``).
        """
        plan = self.plan
        ws = plan.train_workspace(rows)
        plan.forward(ws, inputs, self.graph.rng)
        losses = plan.loss_values(ws, targets)
        if tally is not None:
            predictions = {name: ws.out[slot] for name, slot in plan.outputs}
            total = tally.add(rows, losses, predictions, targets)
        else:
            total = plan.total_loss(losses)
        if not math.isfinite(total):
            bad = {n: v for n, v in losses.items() if not math.isfinite(v)}
            raise self._error(
                where,
                f"the loss of output {_names(bad)} is {_values(bad)}",
                output=next(iter(bad), None),
            )
        plan.backward(ws, targets)
        if not _all_finite(self._grads):
            record = plan.store.locate(int(np.flatnonzero(~np.isfinite(self._grads))[0]))
            raise self._error(where, f"the gradient of {record.key!r} is not finite", record=record)
        update = self.optimizer.step(self._params, self._grads)
        if not _all_finite(update):
            record = plan.store.locate(int(np.flatnonzero(~np.isfinite(update))[0]))
            what = f"the {self.optimizer.name} update of {record.key!r} is not finite"
            raise self._error(where, what, record=record)
        self._params -= update
        return total

    def _error(self, where, what: str, output: str | None = None, record=None):
        if where is None:
            place = "train_step"
        else:
            epoch, epochs, batch, batches = where
            place = f"epoch {epoch + 1}/{epochs}, batch {batch + 1}/{batches}"
        if output is None and record is not None:
            reached = nx.descendants(self.graph._structure, record.node) | {record.node}
            outputs = [o for o in self.graph.outputs if o in reached]
            output = outputs[0] if outputs else None
            what += f" (it feeds output {_names(dict.fromkeys(outputs))})"
        error = TrainingError(
            f"{place}: {what}; the weights are as they were before this step. "
            "Try a lower learning rate, clipnorm=..., or check the data for extreme values"
        )
        error.epoch = None if where is None else where[0]
        error.batch = None if where is None else where[2]
        error.output, error.key = output, None if record is None else record.key
        return error


def _quiet_overflow():
    """Training checks every loss, gradient and update itself and raises
    TrainingError, so numpy's overflow warnings would only repeat it."""
    return np.errstate(over="ignore", invalid="ignore")


def _names(items: dict) -> str:
    return ", ".join(repr(n) for n in items)


def _values(items: dict) -> str:
    return ", ".join(str(v) for v in items.values())


def _resolve_optimizer(graph, optimizer):
    """The graph's optimizer, replaced only when a different one is asked for."""
    current = graph.optimizer
    if optimizer is None:
        if current is None:
            graph.optimizer = "adam"
        return graph.optimizer
    if isinstance(optimizer, str) and current is not None and current.name == optimizer:
        return current  # same name: keep the state (fit after fit continues)
    if optimizer is not current:
        graph.optimizer = optimizer
        logger.info("%s: training with %r", graph.name, graph.optimizer)
    return graph.optimizer


def _batch_data(graph, x, y):
    inputs, targets = as_inputs(graph, x), as_targets(graph, y)
    rows = common_rows(inputs, targets)
    return inputs, targets, rows


def gradients(graph, x, y) -> tuple[float, dict[str, np.ndarray]]:
    """See :meth:`graphnet.Graph.gradients`."""
    plan = graph.plan
    inputs, targets, rows = _batch_data(graph, x, y)
    if rows == 0:
        raise ShapeError("gradients: the data has no rows")
    ws = plan.train_workspace(rows)
    plan.forward(ws, inputs, graph.rng)
    losses = plan.loss_values(ws, targets)
    total = plan.total_loss(losses)
    plan.backward(ws, targets)
    return total, plan.store.grad_dict()


def train_step(graph, x, y, optimizer=None) -> float:
    """See :meth:`graphnet.Graph.train_step`."""
    inputs, targets, rows = _batch_data(graph, x, y)
    if rows == 0:
        raise ShapeError("train_step: the data has no rows")
    trainer = Trainer(graph, optimizer)
    with _quiet_overflow():
        return trainer.step(inputs, targets, rows)


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise GraphError(f"fit: {name} must be a positive integer, got {value!r}")
    return int(value)


def _split(graph, inputs, targets, rows: int, fraction: float):
    """A seeded random split (not Keras's "last rows": sorted data would give a
    validation set unlike the training set)."""
    if not 0.0 <= fraction < 1.0:
        raise GraphError(f"fit: validation_split must be in [0, 1), got {fraction!r}")
    held = int(rows * fraction)
    if held == 0 or held == rows:
        raise GraphError(
            f"fit: validation_split={fraction} of {rows} rows leaves "
            f"{held} validation and {rows - held} training rows; both need at least one"
        )
    order = graph.rng.permutation(rows)
    val_rows, train_rows = np.sort(order[:held]), np.sort(order[held:])

    def take(arrays, index):
        return {k: np.ascontiguousarray(v[index]) for k, v in arrays.items()}

    return (take(inputs, train_rows), take(targets, train_rows)), (
        take(inputs, val_rows),
        take(targets, val_rows),
    )


def fit(
    graph,
    x,
    y,
    *,
    epochs: int = 1,
    batch_size: int = 32,
    optimizer="adam",
    metrics=(),
    validation_data=None,
    validation_split: float = 0.0,
    shuffle: bool = True,
    callbacks=(),
    verbose: int = 1,
) -> History:
    """Train ``graph`` with mini-batches.

    Parameters
    ----------
    x, y : ndarray or dict name -> ndarray
        Inputs of shape ``(n, size)`` and targets, keyed by node name.
    epochs, batch_size : int
    optimizer : str, dict or Optimizer
        Kept on the graph as ``graph.optimizer``; asking again for the same
        name keeps its state, so ``fit`` after ``fit`` continues.
    metrics : list of names, or dict output name -> list
        ``accuracy`` (sigmoid and softmax outputs), ``mae``, ``mse``.
    validation_data : tuple (x_val, y_val), optional
    validation_split : float
        A fraction of the rows held out for validation, drawn at random from
        the graph's seed (Keras takes the *last* rows instead).
    shuffle : bool
        Reshuffle the training rows every epoch.
    callbacks : list of Callback
    verbose : {0, 1, 2}
        Silent, a progress bar per epoch, or one line per epoch.

    Returns
    -------
    History

    Raises
    ------
    ShapeError
        For data that does not fit the graph.
    TrainingError
        When a step produces a non-finite loss, gradient or update; the
        weights are those from before that step.
    """
    epochs = _positive_int("epochs", epochs)
    batch_size = _positive_int("batch_size", batch_size)
    if verbose not in (0, 1, 2):
        raise GraphError(f"fit: verbose must be 0, 1 or 2, got {verbose!r}")
    if validation_data is not None and validation_split:
        raise GraphError("fit: pass validation_data or validation_split, not both")
    callbacks = list(callbacks)
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise GraphError(f"fit: callbacks must be Callback instances, got {cb!r}")
    chosen = metrics_module.resolve(graph, metrics)
    inputs, targets, rows = _batch_data(graph, x, y)
    if rows == 0:
        raise ShapeError("fit: the data has no rows")
    validation = None
    if validation_split:
        (inputs, targets), validation = _split(graph, inputs, targets, rows, validation_split)
        rows = common_rows(inputs, targets)
    elif validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise GraphError("fit: validation_data must be a tuple (x_val, y_val)")
        validation = _batch_data(graph, *validation_data)[:2]
        if common_rows(*validation) == 0:
            raise ShapeError("fit: validation_data has no rows")

    trainer = Trainer(graph, optimizer)
    batches = math.ceil(rows / batch_size)
    history = History()
    callbacks = [history, *callbacks]
    params = {"epochs": epochs, "batch_size": batch_size, "steps": batches, "rows": rows}
    for cb in callbacks:
        cb.set_graph(graph)
        cb.set_params(params)
    gather = _Gather(inputs, targets, batch_size) if shuffle else None
    progress = Progress(verbose, epochs, batches)
    graph.stop_training = False
    for cb in callbacks:
        cb.on_train_begin()
    with _quiet_overflow(), contextlib.closing(progress):
        for epoch in range(epochs):
            for cb in callbacks:
                cb.on_epoch_begin(epoch)
            progress.epoch_begin(epoch)
            order = graph.rng.permutation(rows) if shuffle else None
            tally = Tally(graph, chosen)
            for batch in range(batches):
                lo, hi = batch * batch_size, min(rows, (batch + 1) * batch_size)
                if order is None:
                    batch_inputs = {k: v[lo:hi] for k, v in inputs.items()}
                    batch_targets = {k: v[lo:hi] for k, v in targets.items()}
                else:
                    batch_inputs, batch_targets = gather(order[lo:hi])
                where = (epoch, epochs, batch, batches)
                trainer.step(batch_inputs, batch_targets, hi - lo, where, tally)
                progress.batch_end(tally.sums["loss"] / tally.rows)
                for cb in callbacks:
                    cb.on_batch_end(batch)
            logs = tally.logs()
            if validation is not None:
                val_logs = evaluate_arrays(graph, *validation, chosen, max(DEFAULT_CHUNK, batch_size))
                logs.update({f"val_{k}": v for k, v in val_logs.items()})
            progress.epoch_end(epoch, logs)
            logger.info("%s: epoch %d/%d - %s", graph.name, epoch + 1, epochs, format_logs(logs))
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
            if graph.stop_training:
                break
    for cb in callbacks:
        cb.on_train_end()
    return history


class _Gather:
    """Shuffled batches gathered into preallocated buffers (``np.take(..., out=)``)."""

    def __init__(self, inputs, targets, batch_size: int):
        self.inputs = {k: (v, np.empty((batch_size, *v.shape[1:]), v.dtype)) for k, v in inputs.items()}
        self.targets = {k: (v, np.empty((batch_size, *v.shape[1:]), v.dtype)) for k, v in targets.items()}

    def __call__(self, index: np.ndarray):
        n = len(index)

        def take(arrays):
            # mode="clip" lets numpy write straight into ``out`` (the index is valid).
            return {k: np.take(v, index, axis=0, out=buf[:n], mode="clip") for k, (v, buf) in arrays.items()}

        return take(self.inputs), take(self.targets)
