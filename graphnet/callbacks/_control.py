"""Callbacks that steer training: EarlyStopping, ReduceLROnPlateau,
TerminateOnNaN, LearningRateScheduler, LambdaCallback."""

from __future__ import annotations

import logging
import math
from typing import ClassVar

import numpy as np

from .._text import suggestion
from .._validation import check_bool, check_int, check_number, unbindable
from ..errors import GraphError
from ._base import ALIASES, HOOKS, Callback, Monitor, check_hook, check_verbose, optimizer_of, say

__all__ = ["EarlyStopping", "ReduceLROnPlateau", "TerminateOnNaN", "LearningRateScheduler", "LambdaCallback"]

logger = logging.getLogger("graphnet.callbacks")


class EarlyStopping(Monitor):
    """Stop when ``monitor`` has not improved for ``patience`` epochs.

    Parameters
    ----------
    monitor : str
        A logged name (``"val_loss"``, ``"loss"``, ``"val_accuracy"``, ...).
    patience : int
        Epochs without improvement before stopping (Keras's default is 0).
    min_delta : float
        The least change that counts as an improvement.
    restore_best_weights : bool
        End training with the weights of the best epoch, whether or not it
        stopped early, as Keras does (whose default is False).
    mode : {"auto", "min", "max"}
    baseline : float, optional
        Keras's rule: ``patience`` counts the epochs since the value last
        beat both the best so far and the baseline, and an epoch that beats
        the best so far never stops training, baseline or not.
    start_from_epoch : int
        Epochs to wait before watching (warm-up), counted from 0.
    verbose : {0, 1}
        1 prints a line when it stops training and when it restores weights.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 restore_best_weights: bool = True, mode: str = "auto", baseline: float | None = None,
                 start_from_epoch: int = 0, verbose: int = 0):
        super().__init__(monitor, mode, min_delta)
        self.patience = check_int(patience, "EarlyStopping: patience", low=0)
        self.restore_best_weights = check_bool(restore_best_weights, "EarlyStopping: restore_best_weights")
        self.baseline = None if baseline is None else check_number(baseline, "EarlyStopping: baseline")
        self.start_from_epoch = check_int(start_from_epoch, "EarlyStopping: start_from_epoch", low=0)
        self.verbose = check_verbose(verbose, "EarlyStopping")

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch: int | None = None
        self.best_weights: dict[str, np.ndarray] | None = None
        self.stopped_epoch: int | None = None
        self._last_epoch: int | None = None

    def on_epoch_end(self, epoch, logs=None):
        value = self.current(logs)
        if epoch < self.start_from_epoch:
            return
        self._last_epoch = epoch
        self.wait += 1
        if self.improves(value):
            self.best, self.best_epoch = value, epoch
            if self.restore_best_weights:
                self.best_weights = self.graph.get_weights()
            if self.baseline is None or self.improves(value, self.baseline):
                self.wait = 0
            return  # an improving epoch never stops training (Keras's rule)
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.graph.stop_training = True
            beaten = self.baseline is None or (self.best_epoch is not None and self.improves(self.best, self.baseline))
            say(self, f"Epoch {epoch + 1}: early stopping ({self.monitor} has not improved on "
                      f"{self.best:.6g} for {self.wait} epochs)" if beaten else
                f"Epoch {epoch + 1}: early stopping ({self.monitor} has not beaten the baseline "
                f"{self.baseline:.6g} for {self.wait} epochs)")

    def on_train_end(self, logs=None):
        if self.best_weights is not None and self.best_epoch != self._last_epoch:
            self.graph.set_weights(self.best_weights)
            say(self, f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1} "
                      f"({self.monitor} = {self.best:.6g}).")


class ReduceLROnPlateau(Monitor):
    """Multiply the optimizer's learning rate by ``factor`` when ``monitor``
    has not improved by ``min_delta`` for ``patience`` epochs, then wait
    ``cooldown`` epochs before counting again; never below ``min_lr``
    (Keras's callback, with its defaults). Each epoch's rate is logged as
    ``learning_rate``; ``verbose=1`` prints a line each time it reduces the rate.

    Parameters
    ----------
    monitor : str, default "val_loss"
        The logged value to watch.
    factor : float, default 0.1
        What the rate is multiplied by, in (0, 1).
    patience : int, default 10
        Epochs without improvement before the rate is reduced, >= 0.
    min_delta : float, default 1e-4
        How much ``monitor`` must improve by to count (its absolute value is used).
    cooldown : int, default 0
        Epochs to wait after a reduction before counting again, >= 0.
    min_lr : float, default 0.0
        The rate is never reduced below this, a number >= 0.
    mode : {"auto", "min", "max"}, default "auto"
        Whether smaller or larger ``monitor`` is better; ``"auto"``: larger
        for accuracies, AUC, precision, recall, F1 and R², smaller otherwise.
    verbose : {0, 1}, default 0
        1 prints a line each time the rate is reduced.

    Notes
    -----
    An optimizer whose rate is a :mod:`graphnet.schedules` schedule is
    refused: this callback sets the rate itself.
    """

    logs_learning_rate = True

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0, mode: str = "auto",
                 verbose: int = 0):
        super().__init__(monitor, mode, min_delta)
        self.factor = check_number(factor, "ReduceLROnPlateau: factor", 0.0, 1.0, low_open=True,
                                   high_open=True, expected="in (0, 1)")
        self.patience = check_int(patience, "ReduceLROnPlateau: patience", low=0)
        self.cooldown = check_int(cooldown, "ReduceLROnPlateau: cooldown", low=0)
        self.min_lr = check_number(min_lr, "ReduceLROnPlateau: min_lr", 0.0)
        self.verbose = check_verbose(verbose, "ReduceLROnPlateau")

    def check_optimizer(self, optimizer):
        _refuse_schedule(self, optimizer)

    def on_train_begin(self, logs=None):
        _refuse_schedule(self, optimizer_of(self))  # one restored since (BackupAndRestore) too
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = self.cooldown_left = 0

    def on_epoch_end(self, epoch, logs=None):
        value = self.current(logs)
        if self.cooldown_left:
            self.cooldown_left -= 1
            self.wait = 0
        if self.improves(value):
            self.best, self.wait = value, 0
            return
        if self.cooldown_left:
            return
        self.wait += 1
        if self.wait >= self.patience:
            optimizer = optimizer_of(self)
            _refuse_schedule(self, optimizer)  # one given since (a callback's compile(optimizer=...))
            old = optimizer.lr
            new = max(old * self.factor, self.min_lr)
            if new < old:
                optimizer.learning_rate = new
                say(self, f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate from {old:.4g} "
                          f"to {new:.4g}.")
                self.cooldown_left, self.wait = self.cooldown, 0


class TerminateOnNaN(Callback):
    """End training at the first step whose loss, gradient or update is not
    finite, instead of raising :class:`~graphnet.TrainingError`.

    The bad step is not applied: the weights and optimizer state are those
    from before it. The epoch it came in is still logged (its validation
    too), with ``loss`` NaN, so the history says where training ended;
    :attr:`error` keeps the TrainingError (epoch, batch, output), and a
    warning is logged.

    Parameters
    ----------
    raise_error : bool
        Keras's option: raise the :class:`~graphnet.TrainingError` (a
        ``RuntimeError``) instead, so ``fit`` ends by it and no
        ``on_train_end`` runs (the weights are still those from before the
        bad step).

    Attributes
    ----------
    stopped_epoch, stopped_batch : int or None
        Where it ended training (counted from 0), None when it did not.
    error : TrainingError or None
    """

    def __init__(self, raise_error: bool = False):
        super().__init__()
        self.raise_error = check_bool(raise_error, "TerminateOnNaN: raise_error")

    def on_train_begin(self, logs=None):
        self.stopped_epoch = self.stopped_batch = self.error = None

    def on_non_finite(self, error):
        self.error, self.stopped_epoch, self.stopped_batch = error, error.epoch, error.batch
        if self.raise_error:
            return False
        logger.warning("%s: terminating training: %s", self.graph.name, error)
        return True


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch to ``schedule(epoch, lr)``
    (or ``schedule(epoch)``), as Keras does, and log it as ``learning_rate``;
    ``verbose=1`` prints Keras's line for each epoch's rate.

    Parameters
    ----------
    schedule : callable
        ``schedule(epoch, lr) -> new rate`` (``epoch`` counted from 0, ``lr``
        the current rate), or ``schedule(epoch) -> new rate``.
    verbose : {0, 1}, default 0
        1 prints a line with each epoch's rate.

    Raises
    ------
    GraphError
        For a ``schedule`` that is not callable or can be called neither as
        ``schedule(epoch, lr)`` nor as ``schedule(epoch)``, when it is made.
    """

    logs_learning_rate = True

    def __init__(self, schedule, verbose: int = 0):
        super().__init__()
        if not callable(schedule):
            raise GraphError(f"LearningRateScheduler: schedule must be callable, got {schedule!r}")
        self.schedule = schedule
        self._with_lr = _takes_lr(schedule)
        self.verbose = check_verbose(verbose, "LearningRateScheduler")

    def check_optimizer(self, optimizer):
        _refuse_schedule(self, optimizer)

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = optimizer_of(self)
        _refuse_schedule(self, optimizer)
        lr = self.schedule(epoch, optimizer.lr) if self._with_lr else self.schedule(epoch)
        try:
            optimizer.learning_rate = lr
        except GraphError as exc:
            raise GraphError(f"LearningRateScheduler: epoch {epoch}: {exc}") from None
        say(self, f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {optimizer.lr}.")


def _takes_lr(schedule) -> bool:
    """Whether ``schedule`` is called as ``schedule(epoch, lr)`` (when it can
    be, or when its signature cannot be read) or as ``schedule(epoch)``.

    Raises
    ------
    GraphError
        When it can be called neither way.
    """
    written = unbindable(schedule, "epoch", "lr")
    if written is None:
        return True
    if unbindable(schedule, "epoch") is None:
        return False
    raise GraphError(
        f"LearningRateScheduler: schedule is called as schedule(epoch, lr) or schedule(epoch), but {written}; "
        "write e.g. lambda epoch, lr: lr * 0.9"
    )


def _refuse_schedule(callback: Callback, optimizer) -> None:
    """Refuse an optimizer whose learning rate is a schedule to a callback that sets the rate."""
    if not isinstance(optimizer.lr, float):
        raise GraphError(f"{type(callback).__name__}: the optimizer's learning rate is a schedule "
                         f"({optimizer.lr!r}) and this callback sets the rate itself; use one or the other")


class LambdaCallback(Callback):
    """A callback from plain functions, each taking the arguments of the hook it names.

    The hooks and their arguments are Keras's: ``on_train_begin(logs)``,
    ``on_epoch_begin(epoch, logs)``, ``on_batch_begin(batch, logs)``,
    ``on_batch_end(batch, logs)``, ``on_epoch_end(epoch, logs)``,
    ``on_train_end(logs)``; Keras's ``on_train_batch_begin`` and
    ``on_train_batch_end`` name the batch hooks too.

    Parameters
    ----------
    **hooks : callable
        Each keyword a hook's name, its value the function called for it
        (None leaves the hook out).

    Raises
    ------
    GraphError
        For an unknown hook, or a function that cannot take the hook's
        arguments (``on_train_end=lambda: ...``), when it is made.

    Examples
    --------
    >>> import graphnet as gn
    >>> ends = []
    >>> cb = gn.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: print(epoch, sorted(logs)),
    ...                                  on_train_end=lambda logs: ends.append(logs))
    """

    _HOOKS = tuple(HOOKS)
    #: Keras's LambdaCallback names for the batch hooks.
    _ALIASES: ClassVar[dict[str, str]] = ALIASES

    def __init__(self, **hooks):
        super().__init__()
        unknown = sorted(set(hooks) - set(self._HOOKS) - set(self._ALIASES))
        if unknown:
            known = list(self._HOOKS) + list(self._ALIASES)
            raise GraphError(f"LambdaCallback: unknown hooks {unknown}; known: {known}"
                             f"{suggestion(unknown, known)}")
        for alias, hook in self._ALIASES.items():
            if hooks.get(alias) is not None and hooks.get(hook) is not None:
                raise GraphError(f"LambdaCallback: {alias} is Keras's name for {hook}; give one of them")
        for name, function in hooks.items():
            if function is None:
                continue
            hook = self._ALIASES.get(name, name)
            if not callable(function):
                raise GraphError(f"LambdaCallback: {name} must be callable, got {function!r}")
            check_hook("LambdaCallback", name, function)  # named as given (Keras's name, or graphnet's)
            setattr(self, hook, function)
