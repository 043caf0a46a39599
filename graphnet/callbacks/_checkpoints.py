"""Callbacks that write the graph to files: ModelCheckpoint and BackupAndRestore."""

from __future__ import annotations

import copy
import math
import os
import re
import string
from pathlib import Path
from typing import Any

import numpy as np

from .._files import atomic_write
from .._validation import check_bool, check_number, check_path
from ..weights import refuse_non_finite
from ..errors import GraphError
from ._base import Callback, Monitor, anchored, check_folder, check_logged, check_verbose, check_writable, say

__all__ = ["ModelCheckpoint", "BackupAndRestore"]


class ModelCheckpoint(Monitor):
    """Save the graph at the end of an epoch (only when ``monitor`` improves,
    with ``save_best_only``, the default: Keras's default is False).

    Parameters
    ----------
    path : str or PathLike
        The file to write. May contain ``{epoch}`` and logged names, e.g.
        ``"ckpt-{epoch:02d}-{val_loss:.3f}.gnet"``.
    monitor : str, default "val_loss"
        The logged value that decides which epoch is best.
    save_best_only : bool, default True
        Save only an epoch whose ``monitor`` beats the best so far; False
        saves every epoch.
    mode : {"auto", "min", "max"}, default "auto"
        Whether smaller or larger ``monitor`` is better; ``"auto"``: larger
        for accuracies, AUC, precision, recall, F1 and R², smaller otherwise.
    save_weights_only : bool, default False
        False: the whole model (``Graph.save``: architecture, weights,
        optimizer state, random streams; ``gn.load`` reads it). True: a
        weights file (``Graph.save_weights``: all but the architecture;
        ``g.load_weights`` reads it). A ``.npz`` path always saves the
        weights only, as a plain ``.npz`` keyed like ``get_weights()``
        (``np.load`` or ``g.load_weights`` read it).
    verbose : {0, 1}, default 0
        1 prints a line for each file saved.
    filepath : str or PathLike, optional
        Keras's name for ``path``: give one or the other, not both.
    initial_value_threshold : float, optional
        With ``save_best_only``, the value an epoch must beat to be saved
        first (Keras's option; by default the first epoch is saved).

    Notes
    -----
    Every write is atomic: a checkpoint is whole or absent. A relative
    path is taken from the working folder as ``fit`` begins; ``saved`` lists
    the files written, where they were written (absolute for a relative path).
    """

    def __init__(self, path: str | os.PathLike | None = None, monitor: str = "val_loss",
                 save_best_only: bool = True, mode: str = "auto", save_weights_only: bool = False, verbose: int = 0,
                 *, filepath: str | os.PathLike | None = None, initial_value_threshold: float | None = None):
        super().__init__(monitor, mode)
        where = "path"
        if filepath is not None:
            if path is not None:
                raise GraphError("ModelCheckpoint: give the file to write as path or as filepath (Keras's name), "
                                 f"not both; got path={path!r}, filepath={filepath!r}")
            where, path = "filepath", filepath
        self.path = check_path(path, f"ModelCheckpoint: {where}", "a file, e.g. 'best.gnet'", file=True)
        self.initial_value_threshold = (None if initial_value_threshold is None else
                                        check_number(initial_value_threshold,
                                                     "ModelCheckpoint: initial_value_threshold"))
        self.fields = _template_fields(self.path)
        self.save_best_only = check_bool(save_best_only, "ModelCheckpoint: save_best_only")
        save_weights_only = check_bool(save_weights_only, "ModelCheckpoint: save_weights_only")
        self.plain_npz = Path(self.path).suffix == ".npz"
        self.weights_only = save_weights_only or self.plain_npz
        self.verbose = check_verbose(verbose, "ModelCheckpoint")
        self.saved: list[str] = []
        self._folder = Path()

    def set_params(self, params: dict[str, Any]) -> None:
        Callback.set_params(self, params)
        if self.save_best_only:
            check_logged(self, "monitor", [self.monitor], params)
        check_logged(self, "field", [f for f in self.fields if f != "epoch"], params, also=("epoch",),
                     subject=lambda name: f"the field {{{name}}} of the path {self.path!r} is not 'epoch' and")
        _check_formats(self.path, logged=True)
        given = Path(self.path)  # a template: it is filled, then joined to the working folder of now
        self._folder = Path() if given.is_absolute() else anchored(self, given).parents[len(given.parts) - 1]
        if not set("{}") & set(str(Path(self.path).parent)):  # a folder the fields name is known only later
            check_writable(self, self.path)

    def check_optimizer(self, optimizer):
        if not self.plain_npz:  # a .gnet file stores the optimizer's config
            _check_savable(self, optimizer)

    def on_train_begin(self, logs=None):
        self.best = math.inf if self.mode == "min" else -math.inf
        if self.initial_value_threshold is not None:
            self.best = self.initial_value_threshold

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        before = self.best
        if self.save_best_only:
            value = self.current(logs)
            if not self.improves(value):
                return
            self.best = value
        try:
            target = self.path.format(epoch=epoch + 1, **logs)
        except (KeyError, ValueError, IndexError) as exc:  # names or formats only known now
            raise GraphError(f"ModelCheckpoint: cannot fill the path {self.path!r} from the logged "
                             f"values {sorted(logs)} ({type(exc).__name__}: {exc})") from None
        where = str(self._folder / target)
        self._write(where)
        self.saved.append(where)
        why = f"{self.monitor} improved from {before:.5g} to {self.best:.5g}, " if self.save_best_only else ""
        say(self, f"Epoch {epoch + 1}: {why}saving {'weights' if self.weights_only else 'model'} to {target}")

    def _write(self, target: str) -> None:
        if self.plain_npz:
            weights = self.graph.get_weights()
            refuse_non_finite(weights, "ModelCheckpoint")
            atomic_write(target, lambda handle: np.savez(handle, **weights))
        elif self.weights_only:
            self.graph.save_weights(target)
        else:
            self.graph.save(target)


class BackupAndRestore(Callback):
    """Back the training up at the end of every epoch, so that a fit that was
    killed, started again with the same arguments, resumes after the last
    finished epoch and ends with the weights an uninterrupted fit would have,
    bit for bit.

    Each backup is a weights file (``Graph.save_weights``: weights, optimizer
    state and iteration count, the random streams that shuffle and drop
    out) named after the epochs it has finished, ``epoch-000003.weights.gnet``,
    written atomically after every other callback's ``on_epoch_end`` of
    that epoch, whatever the order of the list, so that it holds what they
    changed (a rate ReduceLROnPlateau cut); a fit killed before they all
    ran resumes at that epoch. The older backup is removed after it. At
    the start of ``fit`` the newest backup, if any, is loaded and training
    resumes from its epoch; with none, the starting state is backed up as
    ``epoch-000000.weights.gnet``, so a fit killed in its first epoch and
    started again on the same graph starts over from it (at its
    ``initial_epoch``), not from the half-trained weights. The state of
    other callbacks (EarlyStopping's patience, ReduceLROnPlateau's counters)
    is not backed up, as in Keras; the ``History`` returned holds the epochs
    run after the restart.

    Parameters
    ----------
    backup_dir : str or PathLike
        A folder for this fit's backups alone (made when needed); a relative
        one is taken from the working folder as ``fit`` begins.
    delete_checkpoint : bool
        Remove the backup when training ends normally (Keras's default).
    """

    #: ``fit`` calls its ``on_epoch_end`` after every other callback's.
    ends_epoch_last = True
    _NAME = re.compile(r"epoch-(\d{6,})\.weights\.gnet")

    def __init__(self, backup_dir: str | os.PathLike, delete_checkpoint: bool = True):
        super().__init__()
        check_path(backup_dir, "BackupAndRestore: backup_dir", "a folder")
        delete_checkpoint = check_bool(delete_checkpoint, "BackupAndRestore: delete_checkpoint")
        self.backup_dir = Path(backup_dir)
        if self.backup_dir.exists() and not self.backup_dir.is_dir():
            raise GraphError(f"BackupAndRestore: {str(self.backup_dir)!r} is a file, not a folder")
        self.delete_checkpoint = delete_checkpoint
        self._resume: int | None = None
        self._folder = self.backup_dir

    def backups(self) -> list[tuple[int, Path]]:
        """``(epochs finished, path)`` of the backups in the folder (the one
        the last ``fit`` began with), oldest first."""
        if not self._folder.is_dir():
            return []
        found = [(int(m.group(1)), self._folder / name) for name in os.listdir(self._folder)
                 if (m := self._NAME.fullmatch(name))]
        return sorted(found)

    def set_params(self, params: dict[str, Any]) -> None:
        super().set_params(params)
        self._folder = anchored(self, self.backup_dir)
        check_folder(self, self.backup_dir)  # before fit changes anything, not at the first backup
        found = self.backups()
        if found and self.graph is not None:  # a backup the graph cannot take is refused before fit changes it
            copy.deepcopy(self.graph).load_weights(found[-1][1])

    def check_optimizer(self, optimizer):
        _check_savable(self, optimizer)

    def on_train_begin(self, logs=None):
        self._resume = None
        found = self.backups()
        if found:
            epochs, path = found[-1]
            self.graph.load_weights(path)
            if epochs:
                self._resume = epochs
                say(self, f"resuming after epoch {epochs} from the backup {path}")
            else:  # the starting state: the fit starts over from it, at its initial_epoch
                say(self, f"starting over from the backup of the starting state {path}")
        else:  # the starting state: a fit killed in its first epoch restarts from it, not from half an epoch
            self._write(0)

    def _write(self, epochs: int) -> None:
        """Back up the training after ``epochs`` epochs (0: as it starts) and
        remove the older backups."""
        self._folder.mkdir(parents=True, exist_ok=True)
        self.graph.save_weights(self._folder / f"epoch-{epochs:06d}.weights.gnet")
        for done, path in self.backups():
            if done < epochs:
                path.unlink(missing_ok=True)

    def resume_epoch(self):
        return self._resume

    def on_epoch_end(self, epoch, logs=None):
        self._write(epoch + 1)

    def on_train_end(self, logs=None):
        for done, path in self.backups():
            if self.delete_checkpoint or not done:  # a starting state left by a fit that ran no epoch
                path.unlink(missing_ok=True)


def _check_savable(callback: Callback, optimizer) -> None:
    """Refuse before training an optimizer whose files could not be written
    (a custom learning-rate schedule without ``get_config``)."""
    try:
        optimizer.get_config()
    except GraphError as exc:
        raise GraphError(f"{type(callback).__name__}: {exc}") from None


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
    _check_formats(path, logged=False)
    return [name for name, _ in fields]


def _check_formats(path: str, logged: bool) -> None:
    """Refuse a format that does not fit its field's values: ``{epoch}``'s
    (a number of epochs) when the path is given, a logged value's (a float)
    once the logged names are known, so that a misspelt ``{epoc:02d}`` is
    named as a name first."""
    for _, name, spec, _ in string.Formatter().parse(path):
        if name is None or (name != "epoch") != logged:
            continue
        try:
            format(0.5 if logged else 1, spec)
        except ValueError as exc:
            raise GraphError(f"ModelCheckpoint: path {path!r}: the format of {{{name}}} "
                             f"does not fit a {'float' if logged else 'number of epochs'} ({exc})") from None
