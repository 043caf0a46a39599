"""Callbacks: hooks into ``fit`` (History, EarlyStopping, ModelCheckpoint, StatsRecorder).

A callback sees the graph as :attr:`Callback.graph` and the epoch's logs
(``loss``, ``val_loss``, ``accuracy``, ...). Epochs are counted from 0 here,
as in Keras; messages and progress bars count from 1.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .checks import check_int
from .errors import GraphError
from .files import atomic_write

if TYPE_CHECKING:
    from .graph import Graph

__all__ = ["Callback", "History", "EarlyStopping", "ModelCheckpoint", "StatsRecorder"]

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

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        pass

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
        if mode not in ("auto", "min", "max"):
            raise GraphError(f"{type(self).__name__}: mode must be 'auto', 'min' or 'max', got {mode!r}")
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        self.monitor = monitor
        self.mode = mode
        self.min_delta = abs(float(min_delta))
        self.best = math.inf if mode == "min" else -math.inf

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
        self.path = str(path)
        if not self.path:
            raise GraphError("ModelCheckpoint: path must be a file name, e.g. 'best.gnet'")
        self.weights_only = Path(self.path).suffix == ".npz"
        self.save_best_only = bool(save_best_only)
        self.saved: list[str] = []

    def on_train_begin(self, logs=None):
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            value = self._current(logs)
            if not self._improved(value):
                return
            self.best = value
        target = self.path.format(epoch=epoch + 1, **logs)
        self._write(target)
        self.saved.append(target)
        logger.info("%s: epoch %d saved to %s", self.graph.name, epoch + 1, target)

    def _write(self, target: str) -> None:
        if not self.weights_only:
            self.graph.save(target)
            return
        weights = self.graph.get_weights()
        atomic_write(target, lambda handle: np.savez(handle, **weights))


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
    >>> recorder = StatsRecorder(x[:256], y[:256])            # doctest: +SKIP
    >>> g.fit(x, y, epochs=20, callbacks=[recorder])           # doctest: +SKIP
    >>> recorder.series("h1", "dead")                          # doctest: +SKIP
    >>> g.render("inside.png", stats=recorder.records[-1])     # doctest: +SKIP
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
