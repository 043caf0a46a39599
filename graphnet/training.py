"""Training a graph: ``compile``, ``fit``, ``train_step`` and ``gradients``.

``Graph`` has each of these functions as its method of the same name, so
their signatures and docstrings here are the ones users read. The epoch
loop, the checked update and the device's deferred checks are the
:class:`~graphnet.trainer.Trainer`'s (:mod:`graphnet.trainer`).
"""

from __future__ import annotations

import inspect
import math
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from . import metrics as metrics_module
from ._data import Batches, as_inputs, as_targets, common_rows, holdout, holdout_rows
from ._row_weights import as_weights
from ._generators import BatchSource, is_batch_source
from ._locks import edit
from ._progress import Progress
from ._text import described, preview, shown, suggestion
from ._validation import check_bool, check_int, check_number
from .callbacks import Callback, History, ask_callbacks, check_hooks, release
from .errors import GraphError, ShapeError
from .inference import DEFAULT_CHUNK, Tally, evaluate_arrays, read_scalars, tally_arrays
from .plan import compile_plan
from .preprocessing import adapt_for_fit
from .trainer import Trainer, choose_optimizer, quiet_overflow

if TYPE_CHECKING:
    from .graph import Graph

__all__ = ["fit", "train_step", "gradients", "check_fit_arguments", "fit_arguments"]


def _batch_data(graph: Graph, x, y):
    inputs, targets = as_inputs(graph, x), as_targets(graph, y)
    rows = common_rows(inputs, targets)
    return inputs, targets, rows


@edit
def gradients(graph: Graph, x, y) -> tuple[float, dict[str, np.ndarray]]:
    """``(loss, grads)`` on one batch, ``grads`` keyed like ``get_weights()``.

    Runs in training mode: dropout on, its masks drawn from the graph's
    training stream as a step's are (as PyTorch's and Keras's do), so with
    dropout the training that follows differs from one without the call. It
    changes no weights; it holds the write lock, since it fills the plan's
    gradient buffer that training steps use.

    Parameters
    ----------
    x : ndarray of shape (n, size), or dict input name -> ndarray
    y : ndarray or dict output name -> ndarray

    Returns
    -------
    (float, dict key -> ndarray)
        The loss (the regularizers' penalty included) and every parameter's gradient.

    Raises
    ------
    ShapeError
        For data that does not fit the graph, or no rows.
    GraphError
        When called during a training step of the graph (by a metric or a
        loss), whose gradient it would overwrite.
    """
    plan = compile_plan(graph)
    if getattr(plan, "stepping", None) is threading.current_thread():  # not an id: a child's threads reuse them
        raise GraphError("gradients: called during a training step of this graph (by a metric or a loss?), whose "
                         "gradient it would overwrite; call it between steps, from a callback")
    inputs, targets, rows = _batch_data(graph, x, y)
    if rows == 0:
        raise ShapeError("gradients: the data has no rows")
    inputs, targets = _sent(graph, inputs), _sent(graph, targets)
    ws = plan.train_workspace(rows)
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow shows as inf in what is returned
        total, _, _ = plan.loss_and_gradients(ws, inputs, targets, graph.backend.dropout_rng(graph))
    return read_scalars(graph.backend, {"loss": total})["loss"], plan.store.grad_dict()


def _sent(graph: Graph, arrays: dict | None) -> dict | None:
    """Checked host arrays on the graph's device (themselves on the CPU)."""
    if arrays is None or not graph.backend.deferred:
        return arrays
    send = graph.backend.to_device
    return {k: send(v) for k, v in arrays.items()}


def train_step(graph: Graph, x, y, optimizer=None, sample_weight=None) -> float:
    """One update on one batch; returns the loss before the update.

    Parameters
    ----------
    x, y : ndarray or dict name -> ndarray
        One batch of inputs and targets.
    optimizer : str, dict, Optimizer or None
        As for :func:`fit`: ``None`` keeps the graph's optimizer.
    sample_weight : ndarray of shape (n,), or dict output name -> array, optional

    Raises
    ------
    ShapeError
        For data that does not fit the graph, or no rows.
    TrainingError
        For a non-finite loss, gradient or update; the weights are those
        from before the step.
    """
    inputs, targets, rows = _batch_data(graph, x, y)
    if rows == 0:
        raise ShapeError("train_step: the data has no rows")
    weights = as_weights(graph, sample_weight, None, targets, rows, where="train_step")
    trainer = Trainer(graph, optimizer)
    inputs, targets, weights = _sent(graph, inputs), _sent(graph, targets), _sent(graph, weights)
    with quiet_overflow():
        loss = trainer.step(inputs, targets, rows, weights=weights)
        return loss if trainer.checks is None else trainer.settle(loss)[0]


def check_fit_arguments(where: str, epochs, batch_size, verbose, shuffle, validation_split,
                        validation_data, callbacks) -> tuple[int, int, float, list]:
    """The checks every fit makes before it touches anything (``where`` names
    it in messages: ``"fit"``, ``"distributed.fit"``); returns ``(epochs,
    batch_size, validation_split, callbacks)`` as numbers and a list."""
    epochs = check_int(epochs, f"{where}: epochs")
    batch_size = 32 if batch_size is None else check_int(batch_size, f"{where}: batch_size")  # None: Keras's 32
    if verbose not in (0, 1, 2) or isinstance(verbose, float):
        raise GraphError(f"{where}: verbose must be 0, 1 or 2, got {verbose!r}")
    check_bool(shuffle, f"{where}: shuffle")
    validation_split = check_number(validation_split, f"{where}: validation_split", 0.0, 1.0,
                                    high_open=True, expected="in [0, 1)")
    if validation_data is not None and validation_split:
        raise GraphError(f"{where}: pass validation_data or validation_split, not both")
    if callbacks is None:
        callbacks = ()
    if isinstance(callbacks, Callback) or not isinstance(callbacks, (list, tuple)):
        found = (f"one {type(callbacks).__name__}, not a list: pass [{type(callbacks).__name__}(...)]"
                 if isinstance(callbacks, Callback) else described(callbacks))
        raise GraphError(f"{where}: callbacks must be a list of Callback instances, got {found}")
    callbacks = list(callbacks)
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise GraphError(f"{where}: callbacks must be Callback instances, got {cb!r}")
        check_hooks(cb)  # a hook fit cannot call fails now, not after an epoch has trained
    return epochs, batch_size, validation_split, callbacks


def fit(
    graph,
    x,
    y=None,
    *,
    epochs: int = 1,
    batch_size: int | None = 32,
    optimizer=None,
    metrics=None,
    validation_data=None,
    validation_split: float = 0.0,
    shuffle: bool = True,
    callbacks=(),
    verbose: int = 1,
    sample_weight=None,
    class_weight=None,
    steps_per_epoch: int | None = None,
    validation_steps: int | None = None,
    initial_epoch: int = 0,
    validation_batch_size: int | None = None,
    validation_freq: int = 1,
) -> History:
    """Train ``graph`` with mini-batches.

    Parameters
    ----------
    x, y : ndarray or dict name -> ndarray
        Inputs of shape ``(n, size)`` and targets, keyed by node name. Or,
        for data that does not fit in memory, ``x`` yields batches ``(x,
        y)`` or ``(x, y, sample_weight)`` and ``y`` is None: an iterable
        that can be iterated again (a list, a Sequence with ``__len__`` and
        ``__getitem__``) is iterated afresh every epoch; a one-shot
        generator is consumed across epochs, ``steps_per_epoch`` batches
        each. Each batch is checked as arrays are; ``batch_size``,
        ``shuffle``, ``sample_weight`` and ``validation_split`` are then the
        batches' own business.
    epochs : int
        The epoch to stop before, counted from 0 like ``initial_epoch``
        (Keras's meaning).
    batch_size : int or None
        Rows per batch; None for 32, as in Keras.
    optimizer : str, dict, Optimizer or None
        ``None`` (the default) keeps the graph's optimizer and its state (a
        graph with none gets a fresh ``adam``); anything else is kept on the
        graph as ``graph.optimizer``. Asking again for the same name keeps the
        state, so ``fit`` after ``fit`` continues.
    metrics : list, or dict output name -> list, optional
        Names (``accuracy``, ``precision``, ``recall``, ``f1``, ``auc``,
        ``log_loss``, ... on sigmoid and softmax outputs; ``mae``, ``mse``,
        ``rmse``, ``r2`` on every output: see :mod:`graphnet.metrics`),
        :class:`~graphnet.metrics.Metric` instances or functions ``f(y_true,
        y_pred) -> float``; each is computed on the epoch's rows, not
        averaged over batches. By default those given to ``compile`` (none
        if it was not called).
    validation_data : tuple (x_val, y_val) or (x_val, y_val, sample_weight_val), optional
        Or batches, as ``x`` may be (``validation_steps`` of them per epoch).
    validation_split : float
        A fraction of the rows held out for validation, drawn at random from
        the graph's seed (Keras takes the *last* rows instead).
    shuffle : bool
        Reshuffle the training rows every epoch.
    callbacks : list of Callback
    verbose : {0, 1, 2}
        Silent, a progress bar per epoch, or one line per epoch.
    sample_weight : ndarray of shape (n,), or dict output name -> array, optional
        Each output's loss becomes the weighted mean ``Σ w·l / Σ w`` (a weight
        of 0 drops a row, 2 counts it twice); metrics stay unweighted.
    class_weight : dict class -> weight, or dict output name -> such a dict, optional
        Multiplies ``sample_weight`` by the weight of each row's class
        (softmax outputs, or sigmoid outputs of one unit); missing classes weigh 1.
        Classes are codes, or the labels of an output with ``classes``.
    steps_per_epoch : int, optional
        Batches per epoch from a generator ``x`` (needed by a one-shot
        generator for more than one epoch); by default all it yields.
    validation_steps : int, optional
        Batches of ``validation_data`` per validation, when it is a generator.
    initial_epoch : int
        The epoch to start from (to resume a fit): epochs ``initial_epoch``
        to ``epochs - 1`` run.
    validation_batch_size : int, optional
        Rows per pass when validating arrays: it bounds the memory, not the
        results. By default ``batch_size``, or more (4,096) where it is small.
    validation_freq : int
        Keras's option: graphnet validates after every epoch, so only 1 is
        taken; another value is refused.

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
    epochs, batch_size, validation_split, callbacks = check_fit_arguments(
        "fit", epochs, batch_size, verbose, shuffle, validation_split, validation_data, callbacks)
    initial_epoch = check_int(initial_epoch, "fit: initial_epoch", low=0)
    chunk = max(DEFAULT_CHUNK, batch_size) if validation_batch_size is None else check_int(
        validation_batch_size, "fit: validation_batch_size")
    if validation_freq != 1 or isinstance(validation_freq, bool):
        raise GraphError(f"fit: validation_freq must be 1, got {shown(validation_freq)}: graphnet validates after "
                         "every epoch (validate less often with a callback that calls evaluate)")
    steps_per_epoch, validation_steps = (None if value is None else check_int(value, f"fit: {name}")
                                         for name, value in (("steps_per_epoch", steps_per_epoch),
                                                             ("validation_steps", validation_steps)))
    runs = max(epochs - initial_epoch, 0)
    chosen = metrics_module.resolve(graph, graph.default_metrics if metrics is None else metrics, "fit")
    metrics_module.check_log_keys(graph, chosen, "fit")
    source, forget = None, lambda: None
    if is_batch_source(x):
        for name, value, why in (("y", y, "the batches carry the targets"),
                                 ("sample_weight", sample_weight, "the batches carry their weights"),
                                 ("validation_split", validation_split or None, "pass validation_data")):
            if value is not None:
                raise GraphError(f"fit: x yields batches, so {name} must be left out ({why}); got "
                                 f"{type(value).__name__}")
        source = BatchSource(graph, x, "fit", steps_per_epoch, class_weight, runs)
        rows = weights = None
    else:
        if y is None:
            raise GraphError("fit: y (the targets) is missing; pass y, or make x yield (x, y) batches")
        if steps_per_epoch is not None:
            raise GraphError("fit: steps_per_epoch is for x that yields batches; arrays are split into "
                             "batches of batch_size")
        forget = adapt_for_fit(graph, x, y, validation_split)  # what was never adapted: training rows only
    taken = [source] if source is not None else []  # batch sources, which may take a batch ahead
    try:  # a refusal from here on forgets that adapt too: a refused fit changes nothing
        if source is None:
            inputs, targets, rows = _batch_data(graph, x, y)
            if rows == 0:
                raise ShapeError("fit: the data has no rows")
            metrics_module.check_targets(graph, chosen, targets, "fit")
            weights = as_weights(graph, sample_weight, class_weight, targets, rows)
        elif runs:
            source.more(initial_epoch, first=True)  # data with no batch is refused before anything changes
        validation = _validation_data(graph, validation_data, validation_steps, runs)
        if isinstance(validation, tuple):
            metrics_module.check_targets(graph, chosen, validation[1], "fit: validation_data")
        taken += [validation] if isinstance(validation, BatchSource) else []
        held = holdout_rows(rows, validation_split) if validation_split else 0
        keys = metrics_module.log_keys(graph, chosen)
        if validation_split or validation is not None:
            keys += [f"val_{k}" for k in keys]
        # Settled before the callbacks see them: each is asked once, with what the epochs will be.
        if source is None:
            count = math.ceil((rows - held) / min(batch_size, rows - held))  # as Batches splits the training rows
        else:
            count = source.count
        params = {"epochs": epochs, "steps": count, "batch_size": batch_size,
                  "rows": None if rows is None else rows - held, "metrics": keys}
        optimizer = choose_optimizer(graph, optimizer)
        ask_callbacks(graph, callbacks, params, optimizer)
        trainer = Trainer(graph, optimizer)
    except BaseException:  # a refusal (a user's callback may raise anything), or an interrupt
        forget()
        release(callbacks)
        for batches in taken:
            batches.give_back()
        raise
    current = [initial_epoch]
    if source is None:
        if validation_split:
            (inputs, targets, weights), validation = holdout(graph.rng, inputs, targets, rows,
                                                             validation_split, weights)
            rows -= held
        batches = Batches(inputs, targets, batch_size, weights, graph.backend)

        def epoch_batches(epoch: int):
            current[0] = epoch
            return batches.epoch(graph.rng.permutation(rows) if shuffle else None)
    else:

        def epoch_batches(epoch: int):
            current[0] = epoch
            return source.epoch(epoch)

    if isinstance(validation, tuple) and graph.backend.deferred:  # once, not every epoch
        arrays = [a for part in validation if part is not None for a in part.values()]
        if graph.backend.fits(sum(a.nbytes for a in arrays)):
            validation = tuple(_sent(graph, part) for part in validation)

    def validate() -> dict[str, float]:
        if isinstance(validation, tuple):
            logs = evaluate_arrays(graph, *validation[:2], chosen, chunk, validation[2])
        else:
            logs = _evaluate_batches(graph, validation, current[0], chosen, chunk)
        return {f"val_{k}": v for k, v in logs.items()}

    try:
        return trainer.run(
            epochs,
            epoch_batches,
            count,
            metrics=chosen,
            validate=validate if validation is not None else None,
            callbacks=callbacks,
            progress=Progress(verbose, epochs, count),
            initial_epoch=initial_epoch,
            params=params,
            more=None if source is None else source.more,
        )
    finally:  # a batch taken ahead and not trained on (a fit that ended first) waits for the next fit
        for batches in taken:
            batches.give_back()


def _validation_data(graph: Graph, data, steps: int | None, runs: int):
    """``validation_data`` checked: ``(inputs, targets, weights)`` arrays, a
    :class:`BatchSource`, or None."""
    if data is None:
        if steps is not None:
            raise GraphError("fit: validation_steps needs validation_data that yields batches")
        return None
    # A tuple of two or three is (x, y[, sample_weight]) whatever it holds, as Keras reads it.
    if is_batch_source(data) and not (isinstance(data, tuple) and len(data) in (2, 3)):
        source = BatchSource(graph, data, "validation_data", steps, None, runs)
        source.more(0, first=True)  # no batch at all: refused before an epoch trains
        return source
    if steps is not None:
        raise GraphError("fit: validation_steps is for validation_data that yields batches; arrays are "
                         "evaluated whole")
    if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
        raise GraphError("fit: validation_data must be a tuple (x_val, y_val) or (x_val, y_val, "
                         f"sample_weight_val), or an iterable of such batches; got {described(data)}")
    try:
        inputs, targets, rows = _batch_data(graph, *data[:2])
    except ShapeError as exc:
        if isinstance(data, tuple) and is_batch_source(data):  # batches in a tuple: read as (x, y), as Keras does
            weights = ", sample_weight_val" * (len(data) == 3)
            raise ShapeError(f"{exc}; validation_data: a tuple of {len(data)} is (x_val, y_val{weights}): to give "
                             "batches, pass them in a list") from None
        raise
    if rows == 0:
        raise ShapeError("fit: validation_data has no rows")
    return inputs, targets, as_weights(graph, data[2] if len(data) == 3 else None, None, targets, rows,
                                       where="fit: validation_data")


def _evaluate_batches(graph: Graph, source: BatchSource, epoch: int, chosen, chunk: int) -> dict[str, float]:
    """``evaluate``'s logs over one epoch's validation batches."""
    tally = Tally(graph, chosen)
    for inputs, targets, _, weights in source.epoch(epoch):
        tally_arrays(graph, inputs, targets, chosen, chunk, weights, into=tally)
    if not tally.rows:
        raise GraphError(f"fit: validation_data yielded no batches for epoch {epoch + 1}; a generator is "
                         "consumed: pass validation_steps, or an iterable that can be iterated again")
    logs = tally.logs()
    plan = compile_plan(graph)
    if plan.penalties:
        logs["loss"] += read_scalars(plan.backend, {"penalty": plan.regularization()})["penalty"]
    return logs


def fit_arguments(where: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """``arguments`` completed with :func:`fit`'s defaults, for a caller that
    passes ``fit``'s keywords on (``distributed.fit(g, x, y, **fit_args)``):
    its signature is the one place they are written.

    Raises
    ------
    GraphError
        For a name ``fit`` does not take.
    """
    keywords = {name: p.default for name, p in inspect.signature(fit).parameters.items()
                if p.kind is inspect.Parameter.KEYWORD_ONLY}
    unknown = [name for name in arguments if name not in keywords]
    if unknown:
        raise GraphError(f"{where}: unknown arguments {preview(unknown)}; fit takes {sorted(keywords)}"
                         f"{suggestion(unknown, keywords)}")
    return {**keywords, **arguments}
