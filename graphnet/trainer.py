"""The trainer: one checked update (:meth:`Trainer.step`), one pass over the
batches (:meth:`Trainer.run_epoch`), and the epoch loop (:meth:`Trainer.run`)
that ``fit`` (:mod:`graphnet.training`), ``distributed.fit`` and the
scikit-learn estimators share.

Every update is checked before it lands: a non-finite loss stops before
backward, a non-finite gradient before the optimizer runs, a non-finite
update before it is applied. So when :class:`~graphnet.TrainingError` is
raised the weights are exactly those from before the failing step.

On a device (``device="cuda"``) the same checks run on the device and are
read once per logging interval (:mod:`graphnet._device_guard`): the error then
comes at the end of the interval, naming the failing step, and the weights
and optimizer state are still those from before it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

import networkx as nx
import numpy as np

from . import optimizers as optimizers_module
from ._row_weights import row_factors
from ._device_guard import DeviceGuard
from ._parameters import ParameterStore
from ._progress import Progress, format_logs
from .callbacks import Callback, History, release, wants
from .errors import GraphError, TrainingError
from .inference import Tally
from .plan import compile_plan

if TYPE_CHECKING:
    from .graph import Graph

__all__ = ["Trainer", "Penalty", "Batch", "LOG_EVERY", "quiet_overflow", "choose_optimizer",
           "release"]

logger = logging.getLogger("graphnet.training")  # the epoch records, under the name fit's users know

#: One batch: inputs and targets keyed by node name, and its row count.
Batch = tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]

#: On a device, with a live progress bar: batches between two reads of the
#: running loss (each read waits for the device). Without one, once per epoch.
LOG_EVERY = 32


class Penalty(Protocol):
    """A term added to the training loss that depends on the parameters only.

    Called after backward with the plan's parameter store and the batch's
    total row weight (its row count when unweighted), it adds its gradient
    into ``store.grads`` and returns its value, which is added to the
    reported loss.
    """

    def __call__(self, store: ParameterStore, rows: int) -> float: ...


class Trainer:
    """Applies checked updates to one graph with its optimizer.

    Parameters
    ----------
    graph : Graph
    optimizer : str, dict, Optimizer or None
        As for ``fit`` (see :func:`choose_optimizer`); kept on the graph.
    penalty : Penalty, optional
        An extra loss term on the parameters (the scikit-learn estimators'
        L2 penalty is one).
    """

    def __init__(self, graph: Graph, optimizer=None, penalty: Penalty | None = None):
        self.graph = graph
        self.plan = compile_plan(graph)
        self.optimizer = _install(graph, choose_optimizer(graph, optimizer))
        self.penalty = penalty
        self.backend = graph.backend
        store = self.plan.store
        self.optimizer.bind(store.layout, self.plan.dtype, self.backend, store.tokens, store.frozen)
        self._params = store.trainable_values
        self._grads = store.trainable_grads
        #: The device's deferred checks; None on the CPU, which checks every step at once.
        self.checks = DeviceGuard(self.backend) if self.backend.deferred else None

    def step(self, inputs, targets, rows: int, where=None, tally: Tally | None = None,
             weights: dict[str, np.ndarray] | None = None) -> float:
        """Forward, backward and one update on a batch; returns its loss
        (the penalty included).

        The whole step holds the graph's write lock: a ``predict`` running in
        another thread sees the weights from before the step or after it,
        never a mix. ``where`` is ``(epoch, epochs, batch, batches)``, counted
        from 0, for error messages (``None`` outside ``fit``); ``weights`` maps
        outputs to the batch's row weights.

        On a device the loss is a 0-d device array and the checks are
        deferred: call :meth:`settle` to learn whether the steps landed.
        """
        with self.graph.lock.writing():
            self.catch_up()
            total, losses, _, penalty, sums = self.gradient(inputs, targets, rows, where, weights, tally)
            if tally is not None:
                tally.add(rows, losses, penalty=penalty, weight_sums=sums)  # its metrics counted in gradient
            if self.checks is None:
                self.update(where)
            else:
                self._guarded_update(where, total)
        return total

    def _guarded_update(self, where, total) -> None:
        """The device's update: checked and applied on the device (see
        :mod:`graphnet._device_guard`), nothing read on the host."""
        xp = self.backend.xp
        grads, params = self._grads, self._params
        grad_sq = xp.dot(grads, grads)
        update = self.optimizer.propose(params, grads, grad_sq)
        ok = self.checks.guard(self.optimizer, total, grad_sq, xp.dot(update, update), where)
        self.optimizer.commit()
        self.backend.apply(params, update, ok, self.optimizer.restore_pairs())

    def settle(self, *values) -> list[float]:
        """On a device: read the deferred checks and ``values`` (device
        scalars) in one transfer; raise the interval's first failure.

        Raises
        ------
        TrainingError
            For the first step since the last settle whose loss, gradient or
            update was not finite; it and every later step changed nothing.
        """
        if self.checks is None:
            return [float(v) for v in values]
        failure, read = self.checks.settle(self.optimizer, *values)
        if failure is not None:
            raise self._error(failure.where, failure.describe(self.optimizer.name) + " (seen on the "
                              f"{self.backend.name} device at the end of the logging interval)")
        return read

    def catch_up(self) -> None:
        """Follow what a callback changed since the last step: an edit (the
        recompiled plan), another optimizer (``compile(optimizer=...)``,
        ``g.optimizer = ...``)."""
        if self.plan.version != self.graph.version:
            self._follow()
        if self.graph.optimizer is not self.optimizer and self.graph.optimizer is not None:
            self.adopt_optimizer()

    def adopt_optimizer(self) -> None:
        """Train with the graph's optimizer when it was replaced (a backup
        restored with its state): bound to the plan's parameters."""
        if self.graph.optimizer is not self.optimizer:
            self.optimizer = self.graph.optimizer
            store = self.plan.store
            self.optimizer.bind(store.layout, self.plan.dtype, self.backend, store.tokens, store.frozen)

    def _follow(self) -> None:
        """The graph was edited (a callback set ``dropout``, ``trainable``, ...):
        train the recompiled plan's parameters from the next batch on, the
        optimizer's state carried over by parameter."""
        old, plan = self.plan, compile_plan(self.graph)
        if [(n, old.sizes[s]) for n, s in old.inputs + old.outputs] != [
            (n, plan.sizes[s]) for n, s in plan.inputs + plan.outputs
        ]:
            raise GraphError(
                f"graph {self.graph.name!r}: its inputs or outputs changed while it was training "
                "(the data no longer fits); edit them between fit calls"
            )
        if plan.backend is not self.backend:
            raise GraphError(
                f"graph {self.graph.name!r}: it moved from {self.backend.name} to {plan.backend.name} "
                "while it was training; move it (g.to(...)) between fit calls"
            )
        self.plan = plan
        self.optimizer.bind(plan.store.layout, plan.dtype, self.backend, plan.store.tokens, plan.store.frozen)
        self._params = plan.store.trainable_values
        self._grads = plan.store.trainable_grads
        logger.debug("%s: training goes on with the plan of version %d", self.graph.name, plan.version)

    def gradient(self, inputs, targets, rows: int, where=None, weights=None, tally: Tally | None = None):
        """Forward, loss check, backward and penalties (the regularizers and
        this trainer's own): the gradient of the batch in the store, the
        weights unchanged. Returns ``(total, losses, workspace, penalty,
        weight_sums)``: the total includes the penalty, and ``weight_sums`` is
        each output's sum of row weights (None unweighted). With ``tally``,
        the batch's predictions go into its metrics before backward writes
        over them (the losses are the caller's to add)."""
        plan = self.plan
        factors, sums = row_factors(weights, plan.dtype, plan.xp)
        ws = plan.train_workspace(rows)

        def refuse_non_finite(total, losses) -> None:
            if self.checks is None and not math.isfinite(total):  # a device checks it in the guard
                bad = {n: v for n, v in losses.items() if not math.isfinite(v)}
                raise self._error(where, f"the loss of output {_names(bad)} is {_values(bad)}",
                                  output=next(iter(bad), None))
            if tally is not None:  # backward writes deltas over the activations (the buffer-reuse rule)
                tally.add_predictions({name: ws.a[slot] for name, slot in plan.outputs}, targets)

        # The user's code it calls (a metric, a loss) may not run gradients() over it: this
        # thread is marked (another waits for the lock; in a child forked meanwhile it is gone).
        plan.stepping = threading.current_thread()
        try:
            total, losses, penalty = plan.loss_and_gradients(ws, inputs, targets,
                                                             self.backend.dropout_rng(self.graph), factors,
                                                             refuse_non_finite)
        finally:
            plan.stepping = None
        if self.penalty is not None:
            extra = self.penalty(plan.store, rows if sums is None else next(iter(sums.values())))
            total, penalty = total + extra, penalty + extra
        return total, losses, ws, penalty, sums

    def update(self, where=None) -> None:
        """One checked optimizer update from the gradient in the store.

        The common case costs one BLAS pass per check: a finite sum of squares
        (``np.dot(v, v)``, one SIMD read, 2.6x faster than ``np.add.reduce``)
        proves every element finite and small enough that nothing downstream
        overflows. Only when a sum overflows (values beyond ~1e19 in float32)
        are the exact, slower checks made: of the optimizer's proposed state
        (squares of huge gradients overflow Adam's and RMSprop's moments) and
        of the new weights. Nothing is committed until every check passed.
        """
        grads, params = self._grads, self._params
        sq = float(np.dot(grads, grads))
        huge = not math.isfinite(sq)
        if huge and not np.isfinite(grads).all():
            record = self.plan.store.locate(int(np.flatnonzero(~np.isfinite(grads))[0]))
            raise self._error(where, f"the gradient of {record.key!r} is not finite", record=record)
        update = self.optimizer.propose(params, grads, sq)
        name = self.optimizer.name
        if not math.isfinite(float(np.dot(update, update))):
            if not np.isfinite(update).all():
                record = self.plan.store.locate(int(np.flatnonzero(~np.isfinite(update))[0]))
                raise self._error(where, f"the {name} update of {record.key!r} is not finite", record=record)
            huge = True
        if huge:
            if not self.optimizer.proposed_state_finite():
                raise self._error(where, f"the gradients are too large for {name}'s state (their "
                                         f"squares overflow {self.plan.dtype})")
            with np.errstate(over="ignore", invalid="ignore"):
                new = params - update
            if not np.isfinite(new).all():
                record = self.plan.store.locate(int(np.flatnonzero(~np.isfinite(new))[0]))
                raise self._error(where, f"the {name} update would make {record.key!r} overflow",
                                  record=record)
            params[...] = new
        else:
            params -= update
        self.optimizer.commit()

    def run_epoch(
        self,
        batches: Iterable[Batch],
        tally: Tally,
        where: tuple[int, int, int],
        on_batch_end: Callable[[int, dict[str, float]], None] | None = None,
        on_batch_begin: Callable[[int], None] | None = None,
        every: int | None = None,
        figures: bool = False,
    ) -> None:
        """One pass over ``batches``, each counted into ``tally``.

        ``where`` is ``(epoch, epochs, batches)`` for error messages;
        ``on_batch_begin(batch)`` is called before each update and
        ``on_batch_end(batch, logs)`` after it, with the batch's ``loss``.
        The epoch ends early when a hook sets ``graph.stop_training``.

        On a device the steps are settled (:meth:`settle`) every ``every``
        batches (once per epoch by default) and after the last: each logging
        interval ends in one call ``on_batch_end(batch, logs)`` for its last
        batch, ``logs`` holding that batch's ``loss``, the epoch's
        ``running`` figures (the loss; with ``figures``, all that
        :meth:`Tally.running` gives, read in the same transfer) and the
        interval's length as ``batches``.
        """
        epoch, epochs, count = where
        deferred = self.checks is not None
        every, settled = every or count or LOG_EVERY, 0
        for batch, (inputs, targets, rows, *weights) in enumerate(batches):
            if on_batch_begin is not None:
                on_batch_begin(batch)
            loss = self.step(inputs, targets, rows, (epoch, epochs, batch, count), tally,
                             weights[0] if weights else None)
            if not deferred:
                if on_batch_end is not None:
                    on_batch_end(batch, {"loss": loss})
            elif (batch + 1) % every == 0 or batch + 1 == count:
                self._settle_interval(loss, tally, figures, on_batch_end, batch, batch + 1 - settled)
                settled = batch + 1
            if self.graph.stop_training:  # a batch hook ended training: the epoch ends here, as in Keras
                break
        if deferred and self.checks.pending:  # an interval cut short: fewer batches than announced, or unknown
            self._settle_interval(loss, tally, figures, on_batch_end, batch, batch + 1 - settled)

    def _settle_interval(self, loss, tally: Tally, figures: bool, on_batch_end, batch: int, length: int) -> None:
        """A device's logging interval ends: its checks and figures read at once."""
        running = tally.running() if figures else {"loss": tally.loss()}
        loss, *values = self.settle(loss, *running.values())
        if on_batch_end is not None:
            on_batch_end(batch, {"loss": loss, "running": dict(zip(running, values)), "batches": length})

    def run(
        self,
        epochs: int,
        epoch_batches: Callable[[int], Iterable[Batch]],
        batches: int,
        *,
        metrics: dict[str, list] | None = None,
        validate: Callable[[], dict[str, float]] | None = None,
        callbacks: Iterable[Callback] = (),
        progress: Progress | None = None,
        initial_epoch: int = 0,
        params: dict | None = None,
        more: Callable[[int, bool], bool] | None = None,
    ) -> History:
        """The epoch loop: callbacks, progress, one :meth:`run_epoch` per epoch,
        validation, logging; stops early when a callback sets
        ``graph.stop_training``.

        Parameters
        ----------
        epochs : int
            The epoch to end before (counted from 0, like ``initial_epoch``).
        epoch_batches : callable
            ``epoch -> iterable of (inputs, targets, rows)``.
        batches : int or None
            Batches per epoch (for progress and messages), None when unknown
            (a generator's).
        metrics : dict output name -> list of Metric, optional
        validate : callable, optional
            ``() -> logs`` to add to each epoch's logs (``val_loss``, ...).
        callbacks : iterable of Callback
            Each met with the graph and ``params`` already (:func:`ask_callbacks`).
        progress : Progress, optional
            Silent by default.
        initial_epoch : int
            The first epoch's number.
        params : dict, optional
            The ``params`` the callbacks were given by :func:`ask_callbacks`,
            which has met them with the graph (each callback is asked once
            per fit): the History gets the same. Without it, ``epochs`` and
            ``steps``.
        more : callable, optional
            ``(epoch, first) -> bool``, asked before each epoch begins: whether
            its data has a batch (a generator's may have run out: training
            then stops). ``first`` says it is the fit's first epoch.
        """
        graph = self.graph
        chosen = metrics or {}
        progress = progress or Progress(0, epochs, batches)
        history = History()
        callbacks = [*callbacks, history]  # last, as in Keras: it records what the others add to the logs
        history.set_graph(graph)
        history.set_params(params if params is not None else {"epochs": epochs, "steps": batches})

        deferred = self.checks is not None
        ends = [cb for cb in callbacks if wants(cb, "on_batch_end")]
        # A device reads the loss once per logging interval; a callback that
        # wants every batch's loss makes every batch an interval.
        every = None
        if deferred:
            every = 1 if ends else (LOG_EVERY if progress.live else batches)

        def on_batch_end(batch: int, logs: dict[str, float]) -> None:
            if deferred:
                progress.batch_end(logs.pop("running"), logs.pop("batches"))
            else:  # the running figures cost a few passes: only when the bar shows them
                progress.batch_end(tally.running() if progress.loss_due() else None)
            for cb in callbacks:
                cb.on_train_batch_end(batch, logs)

        begins = [cb for cb in callbacks if wants(cb, "on_batch_begin")]

        def on_batch_begin(batch: int) -> None:
            for cb in begins:
                cb.on_train_batch_begin(batch, {})

        with graph.fitting():  # edits a fit cannot follow are refused, from on_train_begin to on_train_end
            ended = 0  # callbacks whose on_train_end ran
            try:
                graph.stop_training = False
                for cb in callbacks:
                    cb.on_train_begin({})
                self.adopt_optimizer()  # a callback may have restored one (BackupAndRestore)
                resumed = [epoch for cb in callbacks if (epoch := cb.resume_epoch()) is not None]
                rate_logged = any(cb.logs_learning_rate for cb in callbacks)
                start = max(resumed, default=initial_epoch)
                logged: dict[str, float] = {}  # the last epoch's, for on_train_end
                with quiet_overflow(), contextlib.closing(progress):
                    for epoch in range(start, epochs):
                        if more is not None and not more(epoch, epoch == start):
                            break
                        for cb in callbacks:
                            cb.on_epoch_begin(epoch, {})
                        progress.epoch_begin(epoch)
                        tally = Tally(graph, chosen)
                        try:
                            self.run_epoch(epoch_batches(epoch), tally, (epoch, epochs, batches), on_batch_end,
                                           on_batch_begin if begins else None, every, progress.live)
                        except TrainingError as error:
                            if not any([cb.on_non_finite(error) for cb in callbacks]):
                                raise
                            graph.stop_training = True  # quietly (TerminateOnNaN): the step was not applied
                            logs = {**tally.logs(), "loss": math.nan}
                        else:
                            if not tally.rows:  # an iterable that gave no batch this time
                                if epoch == start:
                                    raise GraphError("fit: the data yielded no batches, so there is nothing to "
                                                     "train on")
                                break
                            logs = tally.logs()
                        if validate is not None:
                            logs.update(validate())
                        logged = dict(logs)  # as Keras: on_train_end sees the epoch's values, not what callbacks add
                        if rate_logged:  # the rate this epoch trained with, before a callback changes it (a
                            logs["learning_rate"] = self.optimizer.current_lr()  # schedule: its value now, as Keras's)
                        for cb in sorted(callbacks, key=lambda cb: getattr(cb, "ends_epoch_last", False)):
                            cb.on_epoch_end(epoch, logs)
                        # After the callbacks, as Keras's progress bar: the line shows what they added.
                        progress.epoch_end(epoch, logs)
                        logger.info("%s: epoch %d/%d - %s", graph.name, epoch + 1, epochs, format_logs(logs))
                        if graph.stop_training:
                            break
                for cb in callbacks:
                    cb.on_train_end(logged)
                    ended += 1
            except BaseException:  # an error, a refusal, Ctrl-C: on_train_end is not called (as in Keras)
                release(callbacks[ended:])  # close() instead of on_train_end: not for those it reached
                raise
        return history

    def _error(self, where, what: str, output: str | None = None, record=None):
        if where is None:
            place = "train_step"
        else:
            epoch, epochs, batch, batches = where
            place = f"epoch {epoch + 1}/{epochs}, batch {batch + 1}" + (f"/{batches}" if batches else "")
        if output is None and record is not None:
            reached = nx.descendants(self.graph.structure, record.node) | {record.node}
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


def quiet_overflow():
    """Training checks every loss, gradient and update itself and raises
    TrainingError, so numpy's overflow warnings would only repeat it."""
    return np.errstate(over="ignore", invalid="ignore")


def _names(items: dict) -> str:
    return ", ".join(repr(n) for n in items)


def _values(items: dict) -> str:
    return ", ".join(str(v) for v in items.values())


def choose_optimizer(graph: Graph, optimizer):
    """The optimizer a fit with ``optimizer`` trains ``graph`` with, the
    graph left as it is (callbacks check it before anything changes): the
    graph's own for None or its name (a graph with none: a fresh ``adam``),
    else the one asked for.

    Raises
    ------
    GraphError
        For an unknown optimizer or bad parameters.
    """
    current = graph.optimizer
    if optimizer is None:
        return current if current is not None else optimizers_module.get("adam")
    if isinstance(optimizer, str) and current is not None and current.name == optimizer:
        return current  # same name: keep the state (fit after fit continues)
    return optimizers_module.get(optimizer)


def _install(graph: Graph, optimizer):
    """``optimizer`` (from :func:`choose_optimizer`) made the graph's."""
    if optimizer is not graph.optimizer:
        graph.optimizer = optimizer
        logger.info("%s: training with %r", graph.name, optimizer)
    return optimizer
