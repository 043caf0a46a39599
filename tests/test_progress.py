"""What ``fit`` shows (graphnet._progress): figures readable at 80 columns on a
terminal, one line per epoch anywhere else."""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import build_dag, dag_data

from graphnet._progress import Progress, wrap_logs

_LOGS = {
    "loss": 2.5595, "aux_loss": 1.1, "main_loss": 0.7, "digit_accuracy": 0.1234, "even_accuracy": 0.5,
    "val_loss": 2.6, "val_aux_loss": 1.2, "val_main_loss": 0.8, "val_digit_accuracy": 0.25,
    "val_even_accuracy": 0.75,
}


def _rendered(text: str) -> list[str]:
    """What a terminal shows of ``text``, line by line (each carriage return redraws)."""
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)  # cursor movements tqdm may send
    return [part for line in text.replace("\r\n", "\n").split("\n") for part in line.split("\r") if part]


@pytest.mark.parametrize("width", [30, 79, 300])
def test_wrap_logs_keeps_every_figure_whole_within_the_width(width):
    lines = wrap_logs(_LOGS, width)
    assert all(len(line) <= width and line.startswith("  ") for line in lines)
    figures = [f.strip() for line in lines for f in line.split(" - ")]
    assert figures == [f"{k}: {v:.4f}" for k, v in _LOGS.items()]
    for line, following in itertools.pairwise(lines):  # full lines: the next figure did not fit
        assert len(line) + 3 + len(following.split(" - ")[0].strip()) > width
    assert len(lines) == 1 if width == 300 else len(lines) > 1


class _FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_on_an_80_column_terminal_every_figure_is_shown(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    stream = _FakeTerminal()
    progress = Progress(1, epochs=30, batches=100, stream=stream)
    for epoch in (0, 29):
        progress.epoch_begin(epoch)
        for _ in range(100):
            progress.batch_end(2.5595)
        progress.epoch_end(epoch, _LOGS)
    lines = _rendered(stream.getvalue())
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    assert any(line.startswith("Epoch 30/30: 100%") and "[00:00<00:00, loss: 2.5595, aux_loss: 1.1000" in line
               for line in lines)
    text = "\n".join(lines)
    for name, value in _LOGS.items():  # per-output losses too
        assert f"{name}: {value:.4f}" in text


_RUNNING = {"loss": 2.5595, "aux_loss": 1.1, "main_loss": 0.7, "digit_accuracy": 0.1234, "even_accuracy": 0.5}


def _halfway(monkeypatch, width: int, batches: int) -> tuple[Progress, list[str]]:
    """A live bar ``width`` columns wide, 50 batches into epoch 3 of 30, and the lines drawn."""
    monkeypatch.setenv("COLUMNS", str(width))
    stream = _FakeTerminal()
    progress = Progress(1, epochs=30, batches=batches, stream=stream)
    progress.epoch_begin(2)
    for _ in range(50):
        progress.batch_end(_RUNNING)
        progress._shown = 0.0  # every batch due, as a slow batch would be
    progress._bar.refresh()
    return progress, _rendered(stream.getvalue())


@pytest.mark.parametrize("width", [60, 80, 120, 200])
def test_the_live_bar_shows_each_outputs_figures_as_far_as_the_width_allows(monkeypatch, width):
    progress, lines = _halfway(monkeypatch, width, 100)
    assert all(len(line) <= width for line in lines), [line for line in lines if len(line) > width]
    bar = lines[-1]
    assert bar.startswith("Epoch 3/30:  50%")
    assert width == 60 or re.search(r"\|[^|]{6,}\|", bar)  # a bar of 6 or more beside the figures
    shown = re.findall(r"(\w+): (\d+\.\d{4})", bar.split("[", 1)[1])
    assert shown == [(k, f"{v:.4f}") for k, v in list(_RUNNING.items())[:len(shown)]]  # in order, whole
    assert len(shown) >= {60: 1, 80: 2, 120: 3, 200: 5}[width]
    following = list(_RUNNING.items())[len(shown):]
    if following:  # the next figure would not have fitted
        k, v = following[0]
        assert len(bar) + len(f", {k}: {v:.4f}") > width - 1
    progress.close()


@pytest.mark.parametrize("width", [12, 15, 20, 24, 28, 34, 40, 45, 50, 55])
@pytest.mark.parametrize("batches", [3125, None], ids=["known", "generator"])
def test_too_narrow_for_a_bar_beside_the_loss_the_counts_and_the_figures_stay_whole(monkeypatch, width, batches):
    progress, lines = _halfway(monkeypatch, width, batches)
    progress.close()
    bar = lines[-1].rstrip()
    counts = "Epoch 3/30 50/3125" if batches else "Epoch 3/30 50"
    wide = "Epoch 3/30: 50 batches [00:00, loss: 2.5595" if batches is None else "Epoch 3/30:  2%|"
    assert bar.startswith((counts, wide)) or bar == "Epoch 3/30", bar  # never counts cut short ("50/31")
    assert len(bar) <= width, bar
    assert bar in (counts, "Epoch 3/30") or "loss: 2.5595" in bar  # the figures whole, or below: never "loss: 2"
    shown = re.findall(r"(\w+): (\d+\.\d{4})", bar)
    assert shown == [(k, f"{v:.4f}") for k, v in list(_RUNNING.items())[:len(shown)]]


def test_off_a_terminal_each_epoch_is_one_line():
    stream = io.StringIO()  # a pipe or a log file: not a terminal
    progress = Progress(1, epochs=3, batches=100, stream=stream)
    for epoch in range(3):
        progress.epoch_begin(epoch)
        for _ in range(100):
            progress.batch_end(1.0)
        progress.epoch_end(epoch, {"loss": 1.0, "val_loss": 2.0})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and "\r" not in stream.getvalue()
    assert all(re.fullmatch(rf"Epoch {i + 1}/3 - \d+\.\d\ds - loss: 1\.0000 - val_loss: 2\.0000", line)
               for i, line in enumerate(lines))


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_graphnet_train_in_a_real_80_column_terminal(tmp_path, rng):
    """The command as a user sees it: a pseudo-terminal 80 columns wide."""
    import fcntl
    import pty
    import struct
    import termios

    spec = tmp_path / "dag.json"
    spec.write_text(json.dumps(build_dag(dtype="float32").to_dict()))
    x, y = dag_data(rng, 64)
    np.savez(tmp_path / "train.npz", **x, **y)
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {**os.environ, "COLUMNS": "80"}
    command = [sys.executable, "-m", "graphnet.cli", "train", str(spec), "--data", str(tmp_path / "train.npz"),
               "--epochs", "3", "--metrics", "accuracy", "--validation-split", "0.25",
               "--out", str(tmp_path / "m.gnet")]
    process = subprocess.Popen(command, stdin=follower, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the other end closed
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert process.wait(timeout=120) == 0, output
    lines = _rendered(output.decode())
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    assert any(line.startswith("Epoch 3/3: 100%") for line in lines)
    # the bar itself carries the running loss and the first output's loss beside it
    assert any(re.match(r"Epoch 3/3: 100%.*\[.*, loss: \d\.\d{4}, aux_loss: \d\.\d{4}", line) for line in lines)
    text = "\n".join(lines)
    for figure in ("aux_accuracy: 0.", "main_accuracy: 0.", "val_loss: ", "val_aux_accuracy: 0.",
                   "val_main_accuracy: 0."):
        assert text.count(figure) >= 3, figure  # once per epoch, and whole
    assert "Final epoch:" in text and "val_main_loss: " in text


@pytest.mark.parametrize("repeat", [60, 120])
def test_a_figure_wider_than_the_terminal_is_broken_after_its_name(repeat):
    name = f"val_{'o' * repeat}_precision"
    lines = wrap_logs({"loss": 0.5, name: 0.3052, "val_loss": 0.25}, 79)
    assert all(len(line) <= 79 and line.startswith("  ") for line in lines), lines
    assert lines[0] == "  loss: 0.5000" and lines[-1] == "  val_loss: 0.2500"
    assert "".join(line.strip() for line in lines[1:-1]).replace(" ", "") == f"{name}:0.3052"


def test_a_callbacks_line_follows_the_epochs_bar_and_figures_wrapped(monkeypatch, tmp_path, rng):
    """EarlyStopping and ModelCheckpoint speak in on_epoch_end, while the
    epoch's bar is still open: their lines come after its figures, each on
    lines of its own within the width (stdout and stderr on one terminal)."""
    import graphnet as gn

    monkeypatch.setenv("COLUMNS", "80")
    terminal = _FakeTerminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setattr(sys, "stderr", terminal)
    g = gn.Sequential([gn.Input(5), gn.Dense(1)], loss="mse", seed=0)
    x = rng.normal(size=(300, 5))
    folder = tmp_path / ("checkpoints_" + "f" * 70)
    folder.mkdir()
    g.fit(x, x[:, :1], epochs=3, batch_size=16, verbose=1, callbacks=[
        gn.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=10, verbose=1),
        gn.callbacks.ModelCheckpoint(folder / "m-{epoch}.gnet", monitor="loss", save_best_only=False, verbose=1)])
    lines = _rendered(terminal.getvalue())
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    stop = next(i for i, line in enumerate(lines) if line.startswith("Epoch 2: early stopping (loss has"))
    saved = next(i for i, line in enumerate(lines) if line.startswith("Epoch 2: saving model to"))
    assert lines[stop - 2].startswith("Epoch 2/3: 100%") and lines[stop - 1].startswith("  loss: ")
    restoring = next(i for i, line in enumerate(lines) if line.startswith("Restoring model weights"))
    assert saved == stop + 1 and restoring > saved + 1  # the path is wrapped
    assert "".join(lines[saved:restoring]).replace(" ", "") == f"Epoch2:savingmodelto{folder}/m-2.gnet"


def test_each_redraw_of_the_bar_shows_the_figures_of_a_batch_since_the_last_one(monkeypatch):
    # A fast epoch: 1 ms a batch on one clock for graphnet's beat and tqdm's. Each
    # batch's loss is its number, so a redraw tells which batch its figures are from.
    import time

    import tqdm.std

    clock = itertools.count()

    def now():
        return next(clock) * 1e-3

    monkeypatch.setattr(time, "perf_counter", now)
    monkeypatch.setattr(tqdm.std, "time", now)
    monkeypatch.setenv("COLUMNS", "80")
    stream = _FakeTerminal()
    progress = Progress(1, epochs=1, batches=2000, stream=stream)
    progress.epoch_begin(0)
    redraws, drawn = [], 0
    for batch in range(1, 2001):
        progress.batch_end(float(batch) if progress.loss_due() else None)
        if len(stream.getvalue()) > drawn:
            drawn = len(stream.getvalue())
            shown = re.findall(r"loss: (\d+)\.0000", _rendered(stream.getvalue())[-1])
            redraws.append((batch, int(shown[0]) if shown else None))
    progress.close()
    assert len(redraws) > 5
    for (before, _), (batch, shown) in itertools.pairwise(redraws):
        assert shown is not None and before < shown <= batch, redraws


@pytest.mark.parametrize("configured", [False, True], ids=["last-resort", "basicConfig"])
def test_a_log_record_during_an_epoch_goes_above_the_bar_not_into_its_line(monkeypatch, configured):
    import logging

    monkeypatch.setenv("COLUMNS", "80")
    terminal = _FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    root = logging.getLogger()
    handler = logging.StreamHandler(terminal)
    handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
    last_resort = logging.lastResort
    monkeypatch.setattr(root, "handlers", [handler] if configured else [])
    progress = Progress(1, epochs=2, batches=10, stream=None)  # the bar on sys.stderr, as fit's
    progress.epoch_begin(0)
    progress.batch_end(0.5)
    logging.getLogger("graphnet.training").warning("t: fit ran out of data")
    for _ in range(9):
        progress.batch_end(0.5)
    progress.epoch_end(0, {"loss": 0.5})
    assert handler.stream is terminal and logging.lastResort is last_resort  # all as it was
    lines = _rendered(terminal.getvalue())
    record = [line for line in lines if "ran out of data" in line]
    expected = "WARNING:graphnet.training:t: fit ran out of data" if configured else "t: fit ran out of data"
    assert record == [expected], lines  # a line of its own, not after a bar's text
    assert any(line.startswith("Epoch 1/2: 100%") for line in lines)


def test_a_users_own_last_resort_and_a_redirected_stderr_are_honoured_while_a_bar_is_open(monkeypatch):
    import contextlib
    import logging

    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(sys, "stderr", _FakeTerminal())
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    log = logging.getLogger("graphnet.training")
    python = logging.lastResort
    assert python is sys.modules["graphnet._progress"]._PYTHONS_LAST_RESORT
    mine = logging.StreamHandler(io.StringIO())
    monkeypatch.setattr(logging, "lastResort", mine)  # the user's own: left as it is
    progress = Progress(1, epochs=1, batches=2, stream=None)
    progress.epoch_begin(0)
    log.warning("to mine")
    progress.epoch_end(0, {"loss": 0.5})
    assert logging.lastResort is mine and "to mine" in mine.stream.getvalue()

    monkeypatch.setattr(logging, "lastResort", python)
    later = logging.StreamHandler(io.StringIO())
    progress = Progress(1, epochs=1, batches=2, stream=None)
    progress.epoch_begin(0)
    caught = io.StringIO()
    with contextlib.redirect_stderr(caught):  # stderr as it is when the record comes
        log.warning("redirected")
    logging.lastResort = later  # replaced by its owner while the bar is open: kept
    progress.epoch_end(0, {"loss": 0.5})
    assert logging.lastResort is later
    assert "redirected" in caught.getvalue() and "redirected" not in sys.stderr.getvalue()
