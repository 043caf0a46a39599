"""Callbacks: hooks into ``fit`` — History, EarlyStopping, ModelCheckpoint,
ReduceLROnPlateau, CSVLogger, LearningRateScheduler, LambdaCallback, StatsRecorder.

A callback sees the graph as :attr:`Callback.graph`, ``fit``'s settings as
:attr:`Callback.params` (``epochs``, ``steps``, ``batch_size``, ``rows`` and
``metrics``, the names each epoch's logs will hold), and the epoch's logs
(``loss``, ``val_loss``, ``accuracy``, ...). Callbacks that name a logged
value check it against ``params["metrics"]`` when training begins, so a typo
fails before the first epoch trains, not after it. Epochs are counted from 0
here, as in Keras; messages and progress bars count from 1.
"""

from __future__ import annotations

import csv
import inspect
import io
import logging
import math
import os
import string
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._validation import check_int, check_number
from .errors import GraphError
from ._files import atomic_write

if TYPE_CHECKING:
    from .graph import Graph

__all__ = [
    "Callback",
    "History",
    "EarlyStopping",
    "ModelCheckpoint",
    "ReduceLROnPlateau",
    "CSVLogger",
    "LearningRateScheduler",
    "LambdaCallback",
    "StatsRecorder",
]

logger = logging.getLogger(__name__)


class Callback:
    """Base class; override the hooks you need."""

    def __init__(self):
        self.graph = None
        self.params: dict[str, Any] = {}

    def set_graph(self, graph: Graph) -> None:
        self.graph = graph

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs: dict | None = None) -> None:
        pass

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        pass

    def on_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        pass

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """After each update; ``logs`` holds the batch's ``loss``."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        pass

    def on_train_end(self, logs: dict | None = None) -> None:
        pass


class History(Callback):
    """What ``fit`` returns: ``history.history`` maps each logged name to a
    list with one value per epoch; ``history.epoch`` lists the epochs run."""

    def __init__(self):
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


class _Monitor(Callback):
    """Shared by EarlyStopping and ModelCheckpoint: which logged value, and
    whether smaller or larger is better."""

    def __init__(self, monitor: str, mode: str, min_delta: float = 0.0):
        super().__init__()
        what = type(self).__name__
        if not isinstance(monitor, str) or not monitor:
            raise GraphError(f"{what}: monitor must be the name of a logged value, e.g. 'val_loss', got {monitor!r}")
        if mode not in ("auto", "min", "max"):
            raise GraphError(f"{what}: mode must be 'auto', 'min' or 'max', got {mode!r}")
        if mode == "auto":
            mode = "max" if "acc" in monitor or monitor.endswith("score") else "min"
        self.monitor = monitor
        self.mode = mode
        self.min_delta = abs(check_number(min_delta, f"{what}: min_delta"))
        self.best = math.inf if mode == "min" else -math.inf

    def set_params(self, params: dict[str, Any]) -> None:
        super().set_params(params)
        _check_logged(self, "monitor", [self.monitor], params)

    def _current(self, logs: dict | None) -> float:
        logs = logs or {}
        if self.monitor not in logs:
            hint = ""
            if self.monitor.startswith("val_"):
                hint = "; pass validation_data or validation_split to fit, or monitor 'loss'"
            raise GraphError(
                f"{type(self).__name__}: monitor {self.monitor!r} is not among the logged "
                f"values {sorted(logs)}{hint}"
            )
        return float(logs[self.monitor])

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved for ``patience`` epochs.

    With ``restore_best_weights`` (the default) the graph ends training with
    the weights of its best epoch, whether or not it stopped early (Keras
    restores only when it stops early; keeping the best seen is what users
    expect from the name).
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        min_delta: float = 0.0,
        restore_best_weights: bool = True,
        mode: str = "auto",
    ):
        super().__init__(monitor, mode, min_delta)
        self.patience = check_int(patience, "EarlyStopping: patience", low=0)
        self.restore_best_weights = bool(restore_best_weights)

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch: int | None = None
        self.best_weights: dict[str, np.ndarray] | None = None
        self.stopped_epoch: int | None = None
        self._last_epoch: int | None = None

    def on_epoch_end(self, epoch, logs=None):
        value = self._current(logs)
        self._last_epoch = epoch
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.graph.get_weights()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.graph.stop_training = True
            logger.info(
                "%s: early stop at epoch %d: %s has not improved on %.6g (epoch %d) for %d epochs",
                self.graph.name, epoch + 1, self.monitor, self.best, (self.best_epoch or 0) + 1, self.wait,
            )

    def on_train_end(self, logs=None):
        if self.best_weights is not None and self.best_epoch != self._last_epoch:
            self.graph.set_weights(self.best_weights)
            logger.info(
                "%s: restored the weights of epoch %d (%s = %.6g)",
                self.graph.name, self.best_epoch + 1, self.monitor, self.best,
            )


class ModelCheckpoint(_Monitor):
    """Save the graph at the end of an epoch (only when ``monitor`` improves,
    with ``save_best_only``).

    ``path`` may contain ``{epoch}`` and logged names, e.g.
    ``"ckpt-{epoch:02d}-{val_loss:.3f}.gnet"``. A ``.npz`` path saves the
    weights only (``np.load`` then ``Graph.set_weights``); any other path
    (``.gnet`` is the suggested extension) saves the whole model with
    ``Graph.save``, optimizer state included, so ``gn.load`` resumes from it.
    Every write is atomic.
    """

    def __init__(
        self,
        path: str | Path,
        monitor: str = "val_loss",
        save_best_only: bool = True,
        mode: str = "auto",
    ):
        super().__init__(monitor, mode)
        if not isinstance(path, (str, os.PathLike)) or not str(path):
            raise GraphError(f"ModelCheckpoint: path must be a file name, e.g. 'best.gnet', got {path!r}")
        self.path = str(path)
        self.fields = _template_fields(self.path)
        self.weights_only = Path(self.path).suffix == ".npz"
        if not isinstance(save_best_only, bool):
            raise GraphError(f"ModelCheckpoint: save_best_only must be True or False, got {save_best_only!r}")
        self.save_best_only = save_best_only
        self.saved: list[str] = []

    def set_params(self, params: dict[str, Any]) -> None:
        Callback.set_params(self, params)
        if self.save_best_only:
            _check_logged(self, "monitor", [self.monitor], params)
        _check_logged(self, f"the path {self.path!r} names", [f for f in self.fields if f != "epoch"], params)

    def on_train_begin(self, logs=None):
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            value = self._current(logs)
            if not self._improved(value):
                return
            self.best = value
        try:
            target = self.path.format(epoch=epoch + 1, **logs)
        except (KeyError, ValueError, IndexError) as exc:  # names or formats only known now
            raise GraphError(f"ModelCheckpoint: cannot fill the path {self.path!r} from the logged "
                             f"values {sorted(logs)} ({type(exc).__name__}: {exc})") from None
        self._write(target)
        self.saved.append(target)
        logger.info("%s: epoch %d saved to %s", self.graph.name, epoch + 1, target)

    def _write(self, target: str) -> None:
        if not self.weights_only:
            self.graph.save(target)
            return
        weights = self.graph.get_weights()
        atomic_write(target, lambda handle: np.savez(handle, **weights))


class ReduceLROnPlateau(_Monitor):
    """Multiply the optimizer's learning rate by ``factor`` when ``monitor``
    has not improved by ``min_delta`` for ``patience`` epochs, then wait
    ``cooldown`` epochs before counting again; never below ``min_lr``
    (Keras's callback, with its defaults)."""

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0, mode: str = "auto"):
        super().__init__(monitor, mode, min_delta)
        self.factor = check_number(factor, "ReduceLROnPlateau: factor", 0.0, 1.0, low_open=True,
                                   high_open=True, expected="in (0, 1)")
        self.patience = check_int(patience, "ReduceLROnPlateau: patience", low=0)
        self.cooldown = check_int(cooldown, "ReduceLROnPlateau: cooldown", low=0)
        self.min_lr = check_number(min_lr, "ReduceLROnPlateau: min_lr", 0.0)

    def on_train_begin(self, logs=None):
        if not isinstance(_optimizer(self).lr, float):
            raise GraphError("ReduceLROnPlateau: the optimizer's learning rate is a schedule; "
                             "use one or the other")
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = self.cooldown_left = 0

    def on_epoch_end(self, epoch, logs=None):
        value = self._current(logs)
        if self.cooldown_left:
            self.cooldown_left -= 1
            self.wait = 0
        if self._improved(value):
            self.best, self.wait = value, 0
            return
        if self.cooldown_left:
            return
        self.wait += 1
        if self.wait >= self.patience:
            optimizer = _optimizer(self)
            old = optimizer.lr
            new = max(old * self.factor, self.min_lr)
            if new < old:
                optimizer.learning_rate = new
                logger.info("%s: epoch %d: learning rate reduced from %.3g to %.3g",
                            self.graph.name, epoch + 1, old, new)
                self.cooldown_left, self.wait = self.cooldown, 0


class CSVLogger(Callback):
    """Write each epoch's logs as a row of a CSV file (``epoch`` first, then
    the logged names in order). The file is rewritten atomically after every
    epoch, so it is always whole; ``append=True`` keeps the rows already there."""

    def __init__(self, filename: str | os.PathLike, separator: str = ",", append: bool = False):
        super().__init__()
        if not isinstance(filename, (str, os.PathLike)) or not str(filename):
            raise GraphError(f"CSVLogger: filename must be a path, got {filename!r}")
        if not isinstance(separator, str) or len(separator) != 1:
            raise GraphError(f"CSVLogger: separator must be one character, got {separator!r}")
        if not isinstance(append, bool):
            raise GraphError(f"CSVLogger: append must be True or False, got {append!r}")
        self.filename, self.separator, self.append = Path(filename), separator, append

    def on_train_begin(self, logs=None):
        self._kept, self._rows, self._keys = "", [], None
        if self.append and self.filename.exists():
            self._kept = self.filename.read_text()
            if self._kept:
                self._keys = next(csv.reader(io.StringIO(self._kept), delimiter=self.separator))[1:]

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._keys is None:
            self._keys = list(logs)
        self._rows.append([epoch, *(logs.get(k, "") for k in self._keys)])
        out = io.StringIO()
        writer = csv.writer(out, delimiter=self.separator, lineterminator="\n")
        if not self._kept:
            writer.writerow(["epoch", *self._keys])
        writer.writerows(self._rows)
        text = (self._kept + out.getvalue()).encode()
        atomic_write(self.filename, lambda handle: handle.write(text))


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch to ``schedule(epoch, lr)``
    (or ``schedule(epoch)``), as Keras does."""

    def __init__(self, schedule):
        super().__init__()
        if not callable(schedule):
            raise GraphError(f"LearningRateScheduler: schedule must be callable, got {schedule!r}")
        self.schedule = schedule
        try:
            arity = len(inspect.signature(schedule).parameters)
        except (TypeError, ValueError):
            arity = 2
        self._with_lr = arity >= 2

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = _optimizer(self)
        if not isinstance(optimizer.lr, float):
            raise GraphError("LearningRateScheduler: the optimizer's learning rate is a schedule already")
        lr = self.schedule(epoch, optimizer.lr) if self._with_lr else self.schedule(epoch)
        try:
            optimizer.learning_rate = lr
        except GraphError as exc:
            raise GraphError(f"LearningRateScheduler: epoch {epoch}: {exc}") from None


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch_end=lambda
    epoch, logs: ...)``; each hook takes the arguments of the method it names."""

    _HOOKS = ("on_train_begin", "on_epoch_begin", "on_batch_begin", "on_batch_end",
              "on_epoch_end", "on_train_end")

    def __init__(self, **hooks):
        super().__init__()
        unknown = sorted(set(hooks) - set(self._HOOKS))
        if unknown:
            raise GraphError(f"LambdaCallback: unknown hooks {unknown}; known: {list(self._HOOKS)}")
        for name, function in hooks.items():
            if function is not None and not callable(function):
                raise GraphError(f"LambdaCallback: {name} must be callable, got {function!r}")
            if function is not None:
                setattr(self, name, function)


def _optimizer(callback: Callback):
    optimizer = callback.graph.optimizer if callback.graph is not None else None
    if optimizer is None:
        raise GraphError(f"{type(callback).__name__}: the graph has no optimizer yet")
    return optimizer


def _template_fields(path: str) -> list[str]:
    """The names in a ``str.format`` template, refused unless each is a plain
    name (``{epoch:02d}``, ``{val_loss:.3f}``) and the template parses."""
    try:
        fields = [(name, spec) for _, name, spec, _ in string.Formatter().parse(path) if name is not None]
    except ValueError as exc:
        raise GraphError(f"ModelCheckpoint: path {path!r} is not a valid template ({exc})") from None
    bad = [name for name, _ in fields if not name.isidentifier()]
    if bad:
        raise GraphError(
            f"ModelCheckpoint: path {path!r} may name only 'epoch' and logged values (e.g. "
            f"'{{epoch:02d}}', '{{val_loss:.3f}}'), not {bad}"
        )
    for name, spec in fields:
        try:
            format(1 if name == "epoch" else 0.5, spec)
        except ValueError as exc:
            raise GraphError(f"ModelCheckpoint: path {path!r}: the format of {{{name}}} "
                             f"does not fit a {'number of epochs' if name == 'epoch' else 'float'} "
                             f"({exc})") from None
    return [name for name, _ in fields]


def _check_logged(callback: Callback, what: str, names: list[str], params: dict[str, Any]) -> None:
    """Refuse names the logs will not hold, before the first epoch trains."""
    known = params.get("metrics")
    if known is None:
        return
    missing = [n for n in names if n not in known]
    if missing:
        hint = ""
        if any(n.startswith("val_") for n in missing):
            hint = "; pass validation_data or validation_split to fit, or monitor 'loss'"
        raise GraphError(
            f"{type(callback).__name__}: {what} {missing[0]!r} is not among the logged values "
            f"{sorted(known)}{hint}"
        )


class StatsRecorder(Callback):
    """Record ``graph.statistics(x, y)`` on a probe batch every ``every`` epochs.

    Each record costs one forward and one backward pass on the probe batch,
    in inference mode; it changes no weight, no optimizer state and no random
    stream, so training goes exactly as it would without the recorder.

    Parameters
    ----------
    x, y
        The probe batch, as for ``fit`` (``y=None`` records no loss and no
        gradient norms). Keep it small: a few hundred rows say as much.
    every : int
        Record after epochs ``every - 1``, ``2 * every - 1``, ... (counted from 0).

    Attributes
    ----------
    epochs : list of int
        The epochs recorded.
    records : list of Statistics
        One per recorded epoch.

    Examples
    --------
    >>> import numpy as np, graphnet as gn
    >>> g = gn.Sequential([gn.Input(4), gn.Dense(8, activation="relu", name="h1"), gn.Dense(1)], seed=0)
    >>> recorder = StatsRecorder(np.ones((8, 4)), np.zeros(8), every=2)
    >>> _ = g.fit(np.ones((32, 4)), np.zeros(32), epochs=6, callbacks=[recorder], verbose=0)
    """

    def __init__(self, x, y=None, every: int = 1):
        super().__init__()
        self.x, self.y = x, y
        self.every = check_int(every, "StatsRecorder: every")
        self.epochs: list[int] = []
        self.records: list = []

    def on_train_begin(self, logs=None):
        # Bad probe data fails here, before the first epoch, not after it.
        self.graph.statistics(self.x, self.y)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        self.epochs.append(epoch)
        self.records.append(self.graph.statistics(self.x, self.y))

    def series(self, name, field: str) -> list:
        """One statistic over the recorded epochs: ``series("h1", "dead")`` for a
        node, ``series(("h1", "y"), "grad_norm")`` for a synapse.

        Raises
        ------
        GraphError
            For a name not in the records or an unknown field.
        """
        values = []
        for record in self.records:
            try:
                item = record[name]
            except KeyError:
                raise GraphError(
                    f"StatsRecorder: no node or synapse {name!r} in the records; "
                    "nodes are names, synapses (src, dst) pairs"
                ) from None
            if not hasattr(item, field) or field.startswith("_"):
                fields = [f for f in vars(item) if not f.startswith("_")]
                raise GraphError(f"StatsRecorder: {name!r} has no statistic {field!r}; it has {fields}")
            values.append(getattr(item, field))
        return values

    def __repr__(self) -> str:
        return f"StatsRecorder(every={self.every}, {len(self.records)} records)"
