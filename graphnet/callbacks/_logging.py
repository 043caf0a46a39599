"""Callbacks that record training: CSVLogger, TensorBoard, StatsRecorder."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import time
import uuid
from pathlib import Path

from .._files import atomic_write, read_regular
from .._validation import check_bool, check_int, check_path
from .._text import reason, shown
from ..errors import GraphError
from ._base import Callback, anchored, check_folder, check_writable, logger, optimizer_of

__all__ = ["CSVLogger", "TensorBoard", "StatsRecorder"]


class CSVLogger(Callback):
    """Write each epoch's logs as a row of a CSV file (``epoch`` first, then
    the logged names in order). The file is rewritten atomically after every
    epoch, so it is always whole; ``append=True`` keeps the rows already there
    (a file it would misread, not UTF-8 text or not beginning with a header
    it writes, is refused before training). The columns are the header's: a
    logged name it has no column for is not written, with a warning. A
    relative ``filename`` is taken from the working folder as ``fit`` begins.

    Parameters
    ----------
    filename : str or PathLike
        The CSV file to write.
    separator : str, default ","
        The one character between fields (not a line end or a quote).
    append : bool, default False
        Keep the rows already in the file and add to them; False starts the
        file afresh.
    """

    def __init__(self, filename: str | os.PathLike, separator: str = ",", append: bool = False):
        super().__init__()
        check_path(filename, "CSVLogger: filename", "the .csv file to write", file=True)
        if not isinstance(separator, str) or len(separator) != 1 or separator in '\r\n"':
            raise GraphError(f"CSVLogger: separator must be one character other than a line end or a quote, "
                             f"got {separator!r}")
        self.filename, self.separator = Path(filename), separator
        self.append = check_bool(append, "CSVLogger: append")
        self._target, self._held = self.filename, ""

    def set_params(self, params):
        super().set_params(params)
        self._target = anchored(self, self.filename)
        check_writable(self, self.filename)  # before the first epoch trains, not after it
        self._held = self._rows_there() if self.append else ""

    def _rows_there(self) -> str:
        """The rows of the file to append to ("" when there is none), with
        ``\\n`` ending every line, the last too; refused (before training)
        unless it is a CSV log this logger could have written."""
        if not self._target.exists():
            return ""
        raw = read_regular(str(self._target), None, "a CSV log", "CSVLogger: filename")
        problem = None
        try:
            text = raw.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")  # a BOM, universal newlines
            header = next(csv.reader(io.StringIO(text), delimiter=self.separator), None)
        except UnicodeDecodeError as exc:
            problem = f"is not UTF-8 text (byte {exc.start:,} is {raw[exc.start:exc.start + 1]!r})"
        except csv.Error as exc:
            problem = f"cannot be read as CSV ({exc})"
        else:
            if not text.strip():
                return ""  # blank: as if there were no file
            first_line = text.split("\n", 1)[0]
            if not header or header[0] != "epoch":
                problem = (f"does not begin with a header of 'epoch' and the logged names separated by "
                           f"{self.separator!r} (its first line is {shown(first_line, 60)})")
        if problem:
            raise GraphError(f"CSVLogger: {str(self.filename)!r} {problem}; append=True adds rows to a CSV file "
                             f"CSVLogger wrote: give another filename, or append=False to replace it")
        return text if text.endswith("\n") else text + "\n"

    def on_train_begin(self, logs=None):
        self._kept, self._rows, self._keys, self._left_out = self._held, [], None, set()
        if self._kept:
            self._keys = next(csv.reader(io.StringIO(self._kept), delimiter=self.separator))[1:]

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._keys is None:
            self._keys = list(logs)
        left_out = [k for k in logs if k not in self._keys and k not in self._left_out]
        if left_out:  # the columns are those of the header, written once (as Keras's)
            self._left_out.update(left_out)
            logger.warning("CSVLogger: %s has no column for %s, which this fit logs: not written (append=False "
                           "starts a file with every logged name)", self.filename, ", ".join(map(repr, left_out)))
        self._rows.append([epoch, *(logs.get(k, "") for k in self._keys)])
        out = io.StringIO()
        writer = csv.writer(out, delimiter=self.separator, lineterminator="\n")
        if not self._kept:
            writer.writerow(["epoch", *self._keys])
        writer.writerows(self._rows)
        text = (self._kept + out.getvalue()).encode()
        atomic_write(self._target, lambda handle: handle.write(text))


class TensorBoard(Callback):
    """Write the logged values as TensorBoard scalars: each epoch's under
    ``log_dir/train`` (``epoch_loss``, ``epoch_accuracy``, per output
    ``epoch_OUTPUT_loss``, ..., and ``epoch_learning_rate``) and
    ``log_dir/validation`` (the ``val_`` values, under the same tags), as
    Keras's callback lays them out; ``tensorboard --logdir log_dir`` shows
    them. A tag keeps letters, digits and ``- _ . /`` (others become ``_``,
    as in TensorBoard); logged names that would share a tag are refused
    when ``fit`` begins (names a callback adds, when they are written).
    Needs the optional ``tensorboardX`` package (its event records).
    Each fit writes new event files (one per run) and closes them when it
    ends, however it ends; nothing is kept for the life of the process. A
    relative ``log_dir`` is taken from the working folder as ``fit`` begins.

    Parameters
    ----------
    log_dir : str or PathLike
    update_freq : "epoch" or int
        With an integer ``n``, also the training loss every ``n`` batches
        (``batch_loss``, the step counting batches since the callback was
        made). On a device each batch's loss is then read, which waits for
        the device.
    """

    def __init__(self, log_dir: str | os.PathLike = "logs", update_freq: str | int = "epoch"):
        super().__init__()
        try:
            from tensorboardX.event_file_writer import EventsWriter
            from tensorboardX.proto.event_pb2 import Event
            from tensorboardX.summary import scalar
        except ImportError:
            raise GraphError("TensorBoard needs the tensorboardX package to write event files: "
                             "pip install 'graphnet[tensorboard]' (or pip install tensorboardX)") from None
        check_path(log_dir, "TensorBoard: log_dir", "a folder")
        if update_freq != "epoch":
            update_freq = check_int(update_freq, "TensorBoard: update_freq", expected="'epoch' or a positive "
                                    "integer (batches)")
            self.on_batch_end = self._batch_end  # only then is every batch's loss asked for
        self.log_dir, self.update_freq = Path(log_dir), update_freq
        # tensorboardX's synchronous record writer: its SummaryWriter adds a
        # queue, a thread and an atexit hook holding every writer ever made.
        self._records, self._event, self._scalar = EventsWriter, Event, scalar
        self._writers: dict = {}
        self._batches = 0
        self._root, self._broken = self.log_dir, False

    def set_params(self, params):
        super().set_params(params)
        self._root = anchored(self, self.log_dir)
        check_folder(self, self.log_dir)  # before fit changes anything, not at the first write
        _places(params.get("metrics") or ())

    def _write(self, run: str, tag: str, value: float, step: int) -> None:
        """One scalar into ``run``'s event file (made at its first scalar)."""
        with self._failing(run):
            if run not in self._writers:
                # A name of its own, in the order written: the file is named after
                # the second it is made and the host, so two fits within a second
                # (a resumed one, fits in a loop) wrote the same file, and
                # TensorBoard reads a run's files in the order of their names.
                (self._root / run).mkdir(parents=True, exist_ok=True)
                suffix = f".{time.time_ns():020d}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
                self._writers[run] = self._records(str(self._root / run / "events"), suffix)
            event = self._event(wall_time=time.time(), step=int(step), summary=self._scalar(tag, value))
            self._writers[run].write_event(event)

    @contextlib.contextmanager
    def _failing(self, run: str):
        """An OSError while writing ``run``'s events as a GraphError naming its folder."""
        try:
            yield
        except OSError as exc:
            self._broken = True
            raise self._cannot_write(run, exc) from None

    def _cannot_write(self, run: str, exc: OSError) -> GraphError:
        return GraphError(f"TensorBoard: cannot write the events in {str(self.log_dir / run)!r}: {reason(exc)}")

    def _batch_end(self, batch, logs=None):
        self._batches += 1
        if self._batches % self.update_freq == 0 and logs and "loss" in logs:
            self._write("train", "batch_loss", float(logs["loss"]), self._batches)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        for key, (run, tag) in _places(logs).items():  # again: names a callback added are known only now
            self._write(run, tag, float(logs[key]), epoch)
        lr = optimizer_of(self).lr if self.graph.optimizer is not None else None
        if isinstance(lr, float) and "learning_rate" not in (logs or {}):  # one a callback logged is written above
            self._write("train", "epoch_learning_rate", lr, epoch)
        for run, writer in self._writers.items():
            with self._failing(run):
                writer.flush()

    def on_train_end(self, logs=None):
        self.close()

    def close(self):
        """Close the event files (what was written reaches the disk)."""
        writers, self._writers = self._writers, {}
        broken, self._broken = self._broken, False
        failed = None
        for run, writer in writers.items():
            try:
                writer.close()
            except OSError as exc:  # the others are closed all the same
                failed = failed or (run, exc)
        if failed and not broken:  # a write that failed has said so already
            raise self._cannot_write(*failed)


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
    >>> recorder = gn.callbacks.StatsRecorder(np.ones((8, 4)), np.zeros(8), every=2)
    >>> _ = g.fit(np.ones((32, 4)), np.zeros(32), epochs=6, callbacks=[recorder], verbose=0)
    >>> len(recorder.records), len(recorder.series("h1", "dead"))
    (3, 3)
    """

    def __init__(self, x, y=None, every: int = 1):
        super().__init__()
        self.x, self.y = x, y
        self.every = check_int(every, "StatsRecorder: every")
        self.epochs: list[int] = []
        self.records: list = []

    def set_params(self, params):
        super().set_params(params)
        if self.graph is not None:  # bad probe data fails before fit changes anything, not after an epoch
            self.graph.statistics(self.x, self.y)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        self.epochs.append(epoch)
        self.records.append(self.graph.statistics(self.x, self.y))

    def series(self, name, field: str) -> list:
        """One statistic over the recorded epochs: ``series("h1", "dead")`` for a
        node, ``series(("h1", "y"), "grad_norm")`` for a synapse.

        Parameters
        ----------
        name : str or (str, str)
            A node's name, or a synapse's ``(src, dst)`` pair.
        field : str
            A field of its records: one of :class:`graphnet.statistics.NodeStats`'
            (``"mean"``, ``"dead"``, ...) or :class:`graphnet.statistics.SynapseStats`'
            (``"weight_norm"``, ``"grad_norm"``).

        Returns
        -------
        list
            The field's value in each record, in the order of :attr:`epochs`.

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


#: What tensorboardX replaces in a tag (by ``_``), as its ``summary`` does.
_NOT_IN_TAGS = re.compile(r"[^-/\w.]")


def _places(keys) -> dict[str, tuple[str, str]]:
    """Each logged name's run (``train``, ``validation``) and the tag it is written under.

    Raises
    ------
    GraphError
        For two names that would be written as one tag of one run.
    """
    places, taken = {}, {}
    for key in keys:
        run, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
        tag = _NOT_IN_TAGS.sub("_", f"epoch_{name}").lstrip("/")
        places[key] = (run, tag)
        other = taken.setdefault((run, tag), key)
        if other != key:
            raise GraphError(f"TensorBoard: {other!r} and {key!r} would both be written as the tag {tag!r} of "
                             f"{run!r} (a tag keeps letters, digits and - _ . / only); rename an output or a metric")
    return places
