"""The callback base class, History, and what callbacks that watch a logged value share."""

from __future__ import annotations

import contextvars
import logging
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .._files import check_output, probe_folder
from .._progress import show_line
from .._text import preview, reason, suggestion
from .._validation import check_number, unbindable
from ..errors import GraphError, TrainingError

if TYPE_CHECKING:
    from ..graph import Graph

__all__ = ["Callback", "History", "Monitor", "HOOKS", "ALIASES", "ADDERS", "adds_to_logs", "wants", "check_hook",
           "check_hooks", "check_logged",
           "optimizer_of", "say", "check_verbose", "check_writable", "check_folder", "anchored"]

logger = logging.getLogger("graphnet.callbacks")

#: Each hook and the arguments ``fit`` passes it, by position (Keras's signatures).
HOOKS = {
    "on_train_begin": ("logs",),
    "on_epoch_begin": ("epoch", "logs"),
    "on_batch_begin": ("batch", "logs"),
    "on_batch_end": ("batch", "logs"),
    "on_epoch_end": ("epoch", "logs"),
    "on_train_end": ("logs",),
}

#: Keras's names for the batch hooks (what ``fit`` calls; by default they call the older
#: names): a Callback may override either.
ALIASES = {"on_train_batch_begin": "on_batch_begin", "on_train_batch_end": "on_batch_end"}

#: The callbacks before the one being asked (:func:`check_logged`) that may add
#: names of their own to an epoch's logs (set by ``fit`` while it asks each).
ADDERS: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("graphnet_log_adders", default=())

#: Logged names whose larger values are better (``mode="auto"``).
_LARGER_IS_BETTER = ("accuracy", "acc", "auc", "precision", "recall", "f1", "r2", "score")


def larger_is_better(name: str) -> bool:
    """Whether a logged value named ``name`` improves as it grows (its name
    ends with an accuracy, ``auc``, ``precision``, ``recall``, ``f1``, ``r2``
    or ``score``): the rule of ``mode="auto"`` and of a search's direction."""
    return name.endswith(_LARGER_IS_BETTER)


class Callback:
    """Base class; override the hooks you need.

    ``fit`` calls each hook with Keras's arguments, by position:
    ``on_train_begin(logs)``, ``on_epoch_begin(epoch, logs)``,
    ``on_train_batch_begin(batch, logs)``, ``on_train_batch_end(batch, logs)``
    (the batch's ``loss``; by default these call Keras's older names,
    ``on_batch_begin`` and ``on_batch_end``), ``on_epoch_end(epoch, logs)`` (the epoch's logged
    values; what a callback adds to them reaches the History, which is
    called last) and ``on_train_end(logs)`` (the last epoch's logged
    values, without what callbacks added, as in Keras).
    """

    #: Whether ``fit`` logs each epoch's learning rate as ``learning_rate``
    #: (the rate it trained with) for this callback: one that sets the rate,
    #: as Keras's do.
    logs_learning_rate: ClassVar[bool] = False

    def __init__(self):
        self.graph = None
        self.params: dict[str, Any] = {}

    def set_graph(self, graph: Graph) -> None:
        """Called once per fit, first, with the graph being trained; a
        subclass written for Keras may override ``set_model`` instead.

        Parameters
        ----------
        graph : Graph
            The graph ``fit`` trains; kept as :attr:`graph`.
        """
        self.graph = graph
        if type(self).set_model is not Callback.set_model:
            self.set_model(graph)

    def set_model(self, model: Graph) -> None:
        """Keras's name for :meth:`set_graph`.

        Parameters
        ----------
        model : Graph
            The graph ``fit`` trains; kept as :attr:`graph`.
        """
        self.graph = model

    @property
    def model(self) -> Graph | None:
        """Keras's name for :attr:`graph`, the graph being trained
        (``self.model.stop_training = True`` works as in Keras)."""
        return self.graph

    @model.setter
    def model(self, graph: Graph | None) -> None:
        self.graph = graph

    def set_params(self, params: dict[str, Any]) -> None:
        """Called once per fit, before it changes anything: raise GraphError
        for a fit this callback cannot serve.

        Parameters
        ----------
        params : dict
            The fit's settings: ``epochs``, ``steps``, ``batch_size``, ``rows``
            and ``metrics`` (the names the logs will hold); kept as :attr:`params`.
        """
        self.params = params

    def check_optimizer(self, optimizer) -> None:
        """Asked before ``fit`` changes anything (after :meth:`set_params`):
        raise GraphError for an optimizer this callback cannot work with.

        Parameters
        ----------
        optimizer : Optimizer
            The optimizer ``fit`` will train with.
        """

    def on_train_begin(self, logs: dict | None = None) -> None:
        """Before the first epoch.

        Parameters
        ----------
        logs : dict, optional
            Empty.
        """

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        """Before each epoch.

        Parameters
        ----------
        epoch : int
            The epoch's index, counted from 0 (the first one run is ``initial_epoch``, or a restored one).
        logs : dict, optional
            Empty.
        """

    def on_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        """Before each update (what :meth:`on_train_batch_begin` calls, as in Keras).

        Parameters
        ----------
        batch : int
            The batch's index in its epoch, counted from 0.
        logs : dict, optional
            Empty.
        """

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """After each update (what :meth:`on_train_batch_end` calls, as in Keras).

        Parameters
        ----------
        batch : int
            The batch's index in its epoch, counted from 0.
        logs : dict, optional
            The batch's ``loss``.
        """

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        """Before each update: the hook ``fit`` calls. By default it calls
        :meth:`on_batch_begin`, Keras's older name, so a subclass overrides
        either (one that overrides both gets this one called, as in Keras).

        Parameters
        ----------
        batch : int
            The batch's index in its epoch, counted from 0.
        logs : dict, optional
            Empty.
        """
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """After each update: the hook ``fit`` calls. By default it calls
        :meth:`on_batch_end`, as in Keras.

        Parameters
        ----------
        batch : int
            The batch's index in its epoch, counted from 0.
        logs : dict, optional
            The batch's ``loss``.
        """
        self.on_batch_end(batch, logs)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """After each epoch (and its validation, if any).

        Parameters
        ----------
        epoch : int
            The epoch just run, counted from 0.
        logs : dict, optional
            The epoch's logged values (``loss``, the metrics, ``val_`` ones);
            what a callback adds to it reaches the callbacks after it and the History.
        """

    def on_train_end(self, logs: dict | None = None) -> None:
        """After the last epoch.

        Parameters
        ----------
        logs : dict, optional
            The last epoch's logged values, without what callbacks added, as in
            Keras (empty when no epoch ran).
        """

    def close(self) -> None:
        """Called when ``fit`` ends by an exception (an error, a refusal,
        Ctrl-C), where ``on_train_end`` is not called, as in Keras: release
        what the callback holds (open files, writer threads)."""

    def on_non_finite(self, error: TrainingError) -> bool:
        """A step's loss, gradient or update was not finite; the step was not
        applied. Return True to end training quietly (:class:`TerminateOnNaN`)
        instead of raising ``error``.

        Parameters
        ----------
        error : TrainingError
            What was not finite, and where: what ``fit`` raises unless a callback returns True.
        """
        return False

    def resume_epoch(self) -> int | None:
        """Asked after ``on_train_begin``: the epoch training should start
        from (:class:`BackupAndRestore`'s restored one), or None."""
        return None


class History(Callback):
    """What ``fit`` returns: ``history.history`` maps each logged name to a
    list with one value per epoch; ``history.epoch`` lists the epochs run.

    ``fit`` calls it after the other callbacks, as Keras does, so values
    they add to an epoch's logs are recorded too."""

    def __init__(self):
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={preview(self.history)})"


class Monitor(Callback):
    """Shared by the callbacks that watch a logged value: which one, and
    whether smaller or larger is better (``mode="auto"``: larger for
    accuracies, AUC, precision, recall, F1 and R², smaller otherwise)."""

    def __init__(self, monitor: str, mode: str, min_delta: float = 0.0):
        super().__init__()
        what = type(self).__name__
        if not isinstance(monitor, str) or not monitor:
            raise GraphError(f"{what}: monitor must be the name of a logged value, e.g. 'val_loss', got {monitor!r}")
        if mode not in ("auto", "min", "max"):
            raise GraphError(f"{what}: mode must be 'auto', 'min' or 'max', got {mode!r}")
        if mode == "auto":
            mode = "max" if larger_is_better(monitor) else "min"
        self.monitor = monitor
        self.mode = mode
        self.min_delta = abs(check_number(min_delta, f"{what}: min_delta"))
        self.best = math.inf if mode == "min" else -math.inf

    def set_params(self, params: dict[str, Any]) -> None:
        super().set_params(params)
        check_logged(self, "monitor", [self.monitor], params)

    def current(self, logs: dict | None) -> float:
        """The monitored value in ``logs``.

        Raises
        ------
        GraphError
            When the logs do not hold it.
        """
        logs = logs or {}
        if self.monitor not in logs:
            raise GraphError(
                f"{type(self).__name__}: monitor {self.monitor!r} is not among the logged "
                f"values {sorted(logs)}{_hint(self.monitor, logs)}"
            )
        return float(logs[self.monitor])

    def improves(self, value: float, reference: float | None = None) -> bool:
        """Whether ``value`` beats ``reference`` (the best so far) by more than ``min_delta``."""
        reference = self.best if reference is None else reference
        if self.mode == "min":
            return value < reference - self.min_delta
        return value > reference + self.min_delta


def check_hook(owner: str, hook: str, function) -> None:
    """Refuse a hook ``fit`` could not call with Keras's arguments (``HOOKS``).

    A function whose signature cannot be read (some builtins) is taken as
    it is.

    Raises
    ------
    GraphError
        Naming the hook, the arguments it is called with and the
        function's own.
    """
    arguments = HOOKS[ALIASES.get(hook, hook)]
    written = unbindable(function, *arguments)
    if written is not None:
        called = ", ".join(arguments)
        raise GraphError(
            f"{owner}: {hook} is called as {hook}({called}), as in Keras, but {written}; "
            f"write e.g. lambda {called}: ... (or def {hook}(self, {called.replace('logs', 'logs=None')}) "
            "in a Callback subclass)"
        )


def check_hooks(callback: Callback) -> None:
    """Refuse a callback with a hook ``fit`` could not call (see :func:`check_hook`).

    Raises
    ------
    GraphError
        For the first such hook.
    """
    for hook in (*HOOKS, *ALIASES):
        if overrides(callback, hook):
            check_hook(type(callback).__name__, hook, getattr(callback, hook))


def overrides(callback: Callback, hook: str) -> bool:
    """Whether ``callback`` has its own ``hook`` (set on it, or in its class)."""
    return hook in vars(callback) or getattr(type(callback), hook) is not getattr(Callback, hook)


def adds_to_logs(callback: Callback) -> bool:
    """Whether ``callback`` may add names to an epoch's logs: one with an
    ``on_epoch_end`` of the user's (in a class of theirs, or given to a
    ``LambdaCallback``)."""
    if "on_epoch_end" in vars(callback):
        return True
    return overrides(callback, "on_epoch_end") and not type(callback).__module__.startswith("graphnet.")


def wants(callback: Callback, hook: str) -> bool:
    """Whether ``fit`` must call ``hook`` of ``callback``: it overrides the
    hook or Keras's other name for it."""
    return overrides(callback, hook) or any(overrides(callback, alias) for alias, h in ALIASES.items() if h == hook)


def optimizer_of(callback: Callback):
    optimizer = callback.graph.optimizer if callback.graph is not None else None
    if optimizer is None:
        raise GraphError(f"{type(callback).__name__}: the graph has no optimizer yet")
    return optimizer


def check_logged(callback: Callback, what: str, names: list[str], params: dict[str, Any],
                 subject=None, also: tuple[str, ...] = ()) -> None:
    """Refuse names the logs will not hold, before the first epoch trains.

    A name none of ``fit``'s own will hold may still be added to the logs
    by a callback of the user's that comes earlier in the list (Keras's
    idiom: one computes a score in ``on_epoch_end``, the next monitors it):
    it is then looked for when the epoch ends, except a validation figure
    (``val_loss``) in a fit without validation. The message calls a missing
    name ``what`` and the name (``monitor 'val_los'``), or
    ``subject(name)`` when given; a name close to a logged one, or to one
    of ``also`` (the names a template takes besides them), is suggested."""
    known = params.get("metrics")
    if known is None:
        return
    missing = [n for n in names if n not in known]
    if ADDERS.get():  # only a validation figure without validation is settled now
        missing = [n for n in missing if n.startswith("val_") and n[4:] in known
                   and not any(k.startswith("val_") for k in known)]
    if missing:
        named = f"{what} {missing[0]!r}" if subject is None else subject(missing[0])
        raise GraphError(
            f"{type(callback).__name__}: {named} is not among the logged values {sorted(known)}"
            f"{_hint(missing[0], known, also, watched=subject is None)}"
        )


def _hint(name: str, known, also: tuple[str, ...] = (), watched: bool = True) -> str:
    """What to do about ``name``, which the logs (``known``) do not hold: a
    validation figure without validation (or, ``watched``, another figure
    to watch), a logged name (or one of ``also``) it is a typo of, or a
    name a callback adds."""
    if name.startswith("val_") and not any(k.startswith("val_") for k in known):
        return "; pass validation_data or validation_split to fit" + (", or monitor 'loss'" if watched else "")
    return suggestion(name, [*known, *also]) or (
        "; a name a callback of yours adds in on_epoch_end can be watched by a callback after it in the list")


def anchored(callback: Callback, path) -> Path:
    """``path`` against the working folder of now (an absolute ``path`` as
    it is): a callback anchors its files when ``fit`` begins, so that one
    fit writes them all in one place even if the working folder changes
    while it runs.

    Raises
    ------
    GraphError
        For a relative ``path`` when the working folder no longer exists.
    """
    path = Path(path)
    if path.is_absolute():
        return path
    try:
        return Path(os.getcwd(), path)
    except FileNotFoundError:
        raise GraphError(f"{type(callback).__name__}: {str(path)!r} is relative to the working folder, which no "
                         f"longer exists; give an absolute path") from None


def check_writable(callback: Callback, path) -> None:
    """Refuse, before the first epoch trains, a file ``path`` the callback
    could not write: its folder missing or a file, ``path`` a folder, or no
    permission to write there.

    Raises
    ------
    GraphError
        Naming the callback, the path and what is wrong.
    """
    try:
        check_output(path, probe=True)
    except OSError as exc:
        raise GraphError(f"{type(callback).__name__}: cannot write {str(path)!r}: {reason(exc)}") from None


def check_folder(callback: Callback, folder) -> None:
    """Refuse, before the first epoch trains, a ``folder`` the callback could
    not make or write in (a file, under a file, not writable, or where
    ``probe_folder`` fails), or that starts with a ``~`` naming a home folder
    and no folder here (graphnet expands no path: it would make a ``~`` here).

    Raises
    ------
    GraphError
        Naming the callback, the folder and what is wrong.
    """
    path = Path(folder)
    first = os.fspath(folder).split(os.sep)[0]  # as written: './~x' is a folder named '~x', and says so
    if first != os.path.expanduser(first) and not Path(first).exists():
        raise GraphError(f"{type(callback).__name__}: the folder {os.fspath(folder)!r} starts with {first!r}, which "
                         f"graphnet does not expand (it would make a folder of that name here): pass "
                         f"os.path.expanduser({os.fspath(folder)!r})")
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is None:
        return
    problem = ("is a file, not a folder" if existing == path else f"is under {str(existing)!r}, a file"
               ) if not existing.is_dir() else None
    if problem is None and not os.access(existing, os.W_OK | os.X_OK):
        problem = f"cannot be written in ({str(existing)!r} is not writable)"
    if problem is None:
        try:
            probe_folder(path)
        except OSError as exc:
            problem = f"cannot be made or written in: {reason(exc)}"
    if problem:
        raise GraphError(f"{type(callback).__name__}: the folder {str(path)!r} {problem}")



def check_verbose(verbose, what: str) -> int:
    if verbose not in (0, 1) or isinstance(verbose, float):
        raise GraphError(f"{what}: verbose must be 0 or 1, got {verbose!r}")
    return int(verbose)


def say(callback: Callback, message: str) -> None:
    """A callback's own line: printed on stdout with ``verbose=1`` (as Keras
    prints it; on a terminal on lines of its own, after the epoch's bar and
    figures, wrapped at the width: :func:`show_line`), logged at INFO either way."""
    logger.info("%s: %s", callback.graph.name if callback.graph is not None else "graph", message)
    if getattr(callback, "verbose", 0):
        show_line(message, sys.stdout)
