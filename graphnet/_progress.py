"""What ``fit`` shows while it runs: a tqdm bar per epoch, a line per epoch, or nothing.

On a terminal (``verbose=1``) each epoch gets a bar sized to the terminal
with the running figures (the loss, each output's loss, the metrics) as
many as fit beside a bar of at least ten characters: a bar line is cut at
the width, so the figures are chosen, never cut. Once the epoch ends, all
its figures (validation too) follow on lines of their own, wrapped at the
terminal's width. Where the bar's stream is not a terminal (a pipe, a log file, CI),
a bar would print a 0% and a 100% line per epoch; one plain line per epoch
is printed instead. A callback's own lines (:func:`show_line`) wait while a
bar is open and follow the epoch's figures; log records written to the
console meanwhile go above the bar (:class:`_AboveTheBars`).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import ClassVar, TextIO

from tqdm import tqdm

from ._text import columns, pieces, wrap

__all__ = ["Progress", "format_logs", "wrap_logs", "wrap_text", "show_line", "is_terminal", "terminal_width"]

# Refreshing the bar's text costs more than a small training step; do it at
# most this often.
_REFRESH_SECONDS = 0.1
_DEFAULT_WIDTH = 80
_INDENT = "  "
#: The narrowest bar the figures leave (tqdm draws ten characters by default).
_MIN_BAR = 6
#: tqdm's bar without the rate (``34.62batch/s``), whose room goes to the figures.
_BAR = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"
#: Batches of an epoch of unknown length (a generator): no bar, and no rate either.
_COUNTING = "{desc}: {n_fmt} batches [{elapsed}{postfix}]"
#: A terminal too narrow for the line and the loss in it: the counts and the figures alone.
_NARROWER = {_BAR: "{desc} {n_fmt}/{total_fmt}{postfix}", _COUNTING: "{desc} {n_fmt}{postfix}"}
#: Narrower still: the epoch alone ("Epoch 3/30"), never a count cut short ("200/2").
_TITLE = "{desc}"


def _value(value) -> str:
    """A number to four decimals (a callback may log anything)."""
    try:
        return f"{value:.4f}"
    except (TypeError, ValueError):
        return f"{value}"


def figure(name: str, value) -> str:
    """``name: value``, a number to four decimals."""
    return f"{name}: {_value(value)}"


def format_logs(logs: dict[str, float]) -> str:
    return " - ".join(figure(k, v) for k, v in logs.items())


def wrap_logs(logs: dict[str, float], width: int) -> list[str]:
    """The figures as indented lines no longer than ``width``; never cut
    inside a figure that fits a line of its own. One that does not is
    broken after its name, its value on the next line (:func:`_long_figure`)."""
    lines: list[str] = []
    line = ""
    for name, value in logs.items():
        item = figure(name, value)
        if line and columns(line) + 3 + columns(item) <= width:  # terminal columns: a wide character takes two
            line += " - " + item
            continue
        if line:
            lines.append(line)
        line = _INDENT + item
        if columns(line) > width:
            lines += _long_figure(name, value, width)
            line = ""
    if line:
        lines.append(line)
    return lines


def _long_figure(name: str, value, width: int) -> list[str]:
    """A figure wider than ``width``: ``name:`` cut into lines of the width,
    the value after it where it fits, else indented on the next lines."""
    head, text = f"{name}:", _value(value)
    lines = [_INDENT + piece for piece in pieces(head, max(width - len(_INDENT), 1))]
    if len(lines) > 1 and columns(lines[-1]) + 1 + columns(text) <= width:
        lines[-1] += " " + text
        return lines
    return lines + [2 * _INDENT + piece for piece in pieces(text, max(width - 2 * len(_INDENT), 1))]


def wrap_text(text: str, width: int) -> str:
    """``text`` in lines no longer than ``width`` terminal columns, broken
    between words (a word longer than that, such as a long path, is cut,
    never inside a character), the lines after the first indented."""
    return "\n".join(wrap(text, max(width, len(_INDENT) + 1), _INDENT))


def is_terminal(stream: TextIO) -> bool:
    """Whether a live bar can redraw itself on ``stream``: a terminal, or a
    Jupyter kernel (whose streams render carriage returns)."""
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False
    return "ipykernel" in sys.modules


def terminal_width(stream: TextIO) -> int:
    """The terminal's width: ``COLUMNS`` when set (as ``shutil`` reads it),
    else the stream's own terminal, else 80."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(stream.fileno()).columns or _DEFAULT_WIDTH
    except (AttributeError, ValueError, OSError):
        return _DEFAULT_WIDTH


def show_line(message: str, stream: TextIO) -> None:
    """Print a callback's line on ``stream``. On a terminal it is wrapped at
    the terminal's width, and while an epoch's bar is open (a callback's
    ``on_epoch_end`` runs before the bar closes) it waits and follows the
    epoch's figures, never written into the bar's line."""
    if not is_terminal(stream):
        print(message, file=stream, flush=True)
        return
    text = wrap_text(message, terminal_width(stream) - 1)
    if Progress.open_bars:
        Progress.open_bars[-1].held.append((text, stream))
    else:
        print(text, file=stream, flush=True)


class _AboveTheBars:
    """A console log handler's stream while a bar is open: each record is
    written with the bars cleared and drawn again below it (tqdm's external
    write mode), never into a bar's line. ``stream`` None: ``sys.stderr`` as
    it is when the record comes, as Python's handler of last resort writes."""

    def __init__(self, stream: TextIO | None):
        self.stream = stream

    def _target(self) -> TextIO:
        return sys.stderr if self.stream is None else self.stream

    def write(self, text: str) -> int:
        target = self._target()
        with tqdm.external_write_mode(file=target):
            return target.write(text)

    def flush(self) -> None:
        self._target().flush()

    def __getattr__(self, name: str):
        return getattr(self._target(), name)


_console_lock = threading.Lock()
#: While any bar is open: each console handler redirected, with the stream it had.
_redirected: list[tuple[logging.StreamHandler, TextIO]] = []
#: Python's handler of last resort: what shows graphnet's warnings when nobody
#: configured logging (a user's own replacement is left as it is).
_PYTHONS_LAST_RESORT = logging.lastResort
#: While any bar is open: the handler put in its place, or None where it was left.
_last_resort: list[logging.Handler | None] = []


def _console_handlers(streams: tuple[TextIO, ...]) -> list[logging.StreamHandler]:
    """The handlers of the root logger and of graphnet's loggers that write to
    one of ``streams`` (files and sockets are left alone)."""
    manager = logging.Logger.manager
    loggers = [logging.getLogger()] + [
        logger for name, logger in list(manager.loggerDict.items())
        if isinstance(logger, logging.Logger) and (name == "graphnet" or name.startswith("graphnet."))
    ]
    return [handler for logger in loggers for handler in list(logger.handlers)
            if isinstance(handler, logging.StreamHandler) and any(handler.stream is s for s in streams)]


def _redirect_console_logs(stream: TextIO) -> None:
    """The first bar opened: console log records go above the bars until the last one closes."""
    streams = (stream, sys.stdout, sys.stderr)
    for handler in _console_handlers(streams):
        _redirected.append((handler, handler.setStream(_AboveTheBars(handler.stream))))
    above = None
    if logging.lastResort is _PYTHONS_LAST_RESORT and _PYTHONS_LAST_RESORT is not None:
        above = logging.StreamHandler(_AboveTheBars(None))
        above.setLevel(_PYTHONS_LAST_RESORT.level)
        logging.lastResort = above
    _last_resort.append(above)


def _restore_console_logs() -> None:
    for handler, stream in _redirected:
        if isinstance(handler.stream, _AboveTheBars):  # as set, not changed since by its owner
            handler.setStream(stream)
    _redirected.clear()
    above = _last_resort.pop() if _last_resort else None
    if above is not None and logging.lastResort is above:  # not replaced meanwhile by its owner
        logging.lastResort = _PYTHONS_LAST_RESORT


class Progress:
    """``verbose=1``: a progress bar per epoch with the running loss on a
    terminal, one line per epoch elsewhere (both on ``stream``, stderr by
    default); ``verbose=2``: one line per epoch on stdout; ``verbose=0``: silent."""

    #: The Progress objects whose bar is open, the latest last: where
    #: :func:`show_line` holds a callback's lines.
    open_bars: ClassVar[list[Progress]] = []

    def __init__(self, verbose: int, epochs: int, batches: int, stream: TextIO | None = None):
        self.verbose, self.epochs, self.batches = verbose, epochs, batches
        self.stream = stream
        self._bar = None
        #: Lines :func:`show_line` holds until the bar closes: (text, stream).
        self.held: list[tuple[str, TextIO]] = []

    @property
    def live(self) -> bool:
        """Whether a bar redraws the running loss during each epoch (``verbose=1``
        on a terminal); training on a device reads the loss for it now and then."""
        return self.verbose == 1 and is_terminal(self._stream())

    def _stream(self) -> TextIO:
        # Looked up when used, so that a redirected sys.stderr is honoured.
        return self.stream if self.stream is not None else sys.stderr

    def epoch_begin(self, epoch: int) -> None:
        self._started = time.perf_counter()
        self._shown = 0.0
        if self.live:
            self._width = terminal_width(self._stream())
            self._shown = time.perf_counter()  # the figures' 0.1 s beat starts with tqdm's
            self._bar = tqdm(
                total=self.batches,
                desc=f"Epoch {epoch + 1}/{self.epochs}",
                bar_format=_BAR if self.batches else _COUNTING,
                unit="batch",
                leave=True,
                ncols=self._width,
                file=self._stream(),
            )
            with _console_lock:
                if not Progress.open_bars:
                    _redirect_console_logs(self._stream())
                Progress.open_bars.append(self)

    def loss_due(self) -> bool:
        """Whether the next :meth:`batch_end` would show the running figures (a
        bar whose refresh is due): only then are they worth computing."""
        return self._bar is not None and time.perf_counter() - self._shown >= _REFRESH_SECONDS

    def batch_end(self, figures: dict[str, float] | float | None, batches: int = 1) -> None:
        """``batches`` more batches done (a device reports several at once);
        ``figures`` the running ``loss``, per-output losses and metrics (a
        float: the loss alone), None when they were not due (see :meth:`loss_due`)."""
        if self._bar is None:
            return
        now = time.perf_counter()
        if figures is not None and now - self._shown >= _REFRESH_SECONDS:
            # Set before the count: tqdm redraws in update(), on a 0.1 s beat
            # that starts with this one, so the line shows this batch's figures,
            # not the ones set a beat before.
            self._bar.set_postfix_str(self._fitting(figures), refresh=False)
            self._shown = now
        self._bar.update(batches)

    def _fitting(self, figures: dict[str, float] | float) -> str:
        """As many figures as fit beside a bar of ``_MIN_BAR`` characters, in
        order; the first (the loss) always."""
        if not isinstance(figures, dict):
            figures = {"loss": figures}
        if self._bar.bar_format == _TITLE:
            return ""
        items = [figure(k, v) for k, v in figures.items()]
        # The line's own text as it stands, with a bar of tqdm's default ten
        # characters ("-" for the figures): the figures may take all the bar but
        # _MIN_BAR, and all of it (but the one character tqdm keeps) for the loss.
        room, spare = self._room()
        if len(items[0]) > room + spare and self._bar.bar_format in _NARROWER:
            # tqdm would cut the line short, the loss's digits first: the counts
            # and the figures alone.
            self._bar.bar_format = _NARROWER[self._bar.bar_format]
            room, spare = self._room()
        if len(items[0]) > room + spare:  # not even that: the figures follow below the line as the epoch ends
            if room < -len(", -") + 1:  # nor the counts whole without them
                self._bar.bar_format = _TITLE
            return ""
        shown: list[str] = []
        for item in items:
            needed = len(item) + (2 if shown else 0)
            if needed > room and shown:  # the loss always
                break
            shown.append(item)
            room -= needed
        return ", ".join(shown)

    def _room(self) -> tuple[int, int]:
        """The columns left for the figures on the line as it is now drawn,
        and how many more the bar would give up for the loss alone."""
        fixed = len(tqdm.format_meter(**{**self._bar.format_dict, "ncols": None, "postfix": "-"}))
        if self._bar.bar_format == _BAR:
            return self._width - fixed + (10 - _MIN_BAR), _MIN_BAR - 2
        return self._width - fixed, 0

    def epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        seconds = time.perf_counter() - self._started
        if self._bar is not None:
            # The bar keeps the training figures that fit; all of them, and
            # the validation's, follow on lines of their own.
            self._bar.set_postfix_str(self._fitting({k: v for k, v in logs.items() if not k.startswith("val_")}),
                                      refresh=False)
            self._bar.close()  # draws the final state once
            self._bar = None
            stream = self._stream()
            for line in wrap_logs(logs, self._width - 1):
                print(line, file=stream)
            stream.flush()
            self._release()
        elif self.verbose in (1, 2):
            line = f"Epoch {epoch + 1}/{self.epochs} - {seconds:.2f}s - {format_logs(logs)}"
            print(line, file=self._stream() if self.verbose == 1 else sys.stdout, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self._release()

    def _release(self) -> None:
        """Print the lines held while the bar was open, and hold no more."""
        with _console_lock:
            if self in Progress.open_bars:
                Progress.open_bars.remove(self)
                if not Progress.open_bars:
                    _restore_console_logs()
        held, self.held = self.held, []
        for text, stream in held:
            print(text, file=stream, flush=True)
