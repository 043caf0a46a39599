"""Training on a device reads the host only once per logging interval
(graphnet._device_guard), and a failing step still changes nothing.

Run on the stand-in device (tests/standin.py), which refuses every implicit
host read and counts the explicit transfers, so these tests fail if a
synchronisation per batch creeps into the training loop.
"""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest

import graphnet as gn
from graphnet import TrainingError
from graphnet._device_guard import Failure
from graphnet.trainer import LOG_EVERY


def _model(device, seed=0):
    return gn.Sequential([gn.Input(4), gn.Dense(8, activation="relu"), gn.Dense(1)], seed=seed,
                         device=device)


def _data(rows, rng):
    x = rng.normal(size=(rows, 4)).astype(np.float32)
    return x, x.sum(axis=1, keepdims=True)


def _transfers_per_epoch(standin, rng, batches, **fit):
    x, y = _data(8 * batches, rng)
    g = _model("standin")
    g.fit(x, y, epochs=1, batch_size=8, verbose=0)  # builds what a first fit builds
    standin.COUNTS.clear()
    g.fit(x, y, epochs=3, batch_size=8, **{"verbose": 0, **fit})
    return standin.COUNTS["to_host"] / 3, standin.COUNTS["to_device"] / 3


def test_device_to_host_reads_per_epoch_do_not_grow_with_the_batches(standin, rng):
    few = _transfers_per_epoch(standin, rng, 5)
    many = _transfers_per_epoch(standin, rng, 60)
    assert few == many
    to_host, to_device = many
    # one read of the interval's status with the running loss, one of the epoch's logs
    assert to_host == 2
    # the data once per fit (inputs and targets: 2 over 3 epochs), then per
    # epoch the row order and the interval's fresh status
    assert to_device == 2 / 3 + 2


def test_validation_adds_one_read_per_epoch(standin, rng):
    x, y = _data(200, rng)
    few = _transfers_per_epoch(standin, rng, 10, validation_data=(x, y))
    many = _transfers_per_epoch(standin, rng, 40, validation_data=(x, y))
    assert few == many and many[0] == 3


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_progress_bar_reads_the_loss_once_per_interval(standin, rng, monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    to_host, _ = _transfers_per_epoch(standin, rng, 4 * LOG_EVERY, verbose=1)
    assert to_host == 4 + 1  # four intervals, then the epoch's logs
    assert f"{4 * LOG_EVERY}/{4 * LOG_EVERY}" in terminal.getvalue()


def test_off_a_terminal_verbose_1_reads_once_per_epoch(standin, rng, capsys):
    to_host, _ = _transfers_per_epoch(standin, rng, 4 * LOG_EVERY, verbose=1)
    assert to_host == 2
    assert "Epoch 3/3" in capsys.readouterr().err


class _KerasNamed(gn.Callback):
    """A batch hook under Keras's name."""

    def __init__(self, losses):
        super().__init__()
        self.losses = losses

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(logs["loss"])


@pytest.mark.parametrize("make", [
    lambda losses: gn.callbacks.LambdaCallback(on_batch_end=lambda batch, logs: losses.append(logs["loss"])),
    _KerasNamed,
], ids=["lambda", "keras-name"])
def test_a_callback_that_wants_every_batch_gets_every_batch(standin, rng, make):
    """Asking for each batch's loss costs one read per batch, and says so by working."""
    losses = []
    callback = make(losses)
    to_host, _ = _transfers_per_epoch(standin, rng, 12, callbacks=[callback])
    assert to_host == 12 + 1
    assert len(losses) == 3 * 12 and all(isinstance(v, float) for v in losses)


def test_data_that_does_not_fit_goes_batch_by_batch(standin, rng, monkeypatch):
    from graphnet import backend

    x, y = _data(80, rng)
    g = _model("standin")
    g.get_weights()  # drawn (the draws are sent once): only the data's transfers are counted
    monkeypatch.setattr(backend.get("standin"), "data_fits", False)
    standin.COUNTS.clear()
    g.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert standin.COUNTS["to_host"] == 2
    assert standin.COUNTS["to_device"] == 2 * 10 + 1  # inputs and targets of each batch, the status
    reference = _model("cpu")
    reference.fit(x, y, epochs=1, batch_size=8, verbose=0)
    for key, value in reference.get_weights().items():
        np.testing.assert_array_equal(g.get_weights()[key], value)


def _poisoned(rng, rows=64, bad_row=35):
    """Data whose row ``bad_row`` makes the loss overflow float32 (finite data, inf loss)."""
    x, y = _data(rows, rng)
    x[bad_row] = 3e37
    return x, y


@pytest.mark.parametrize("optimizer", ["adam", "momentum", "sgd"])
def test_a_failing_step_is_refused_on_the_device_as_on_the_cpu(standin, rng, optimizer):
    """The error comes at the end of the interval but names the failing batch,
    and the weights, optimizer state and iteration count are those from
    before it, exactly as the CPU leaves them."""
    x, y = _poisoned(rng)
    results = {}
    for device in ("cpu", "standin"):
        g = _model(device)
        with pytest.raises(TrainingError, match=r"epoch 1/2, batch 5/8") as caught:
            g.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0, optimizer=optimizer)
        results[device] = g, str(caught.value)
    (cpu, _), (dev, message) = results["cpu"], results["standin"]
    assert "the loss" in message and "end of the logging interval" in message
    assert "weights are as they were before this step" in message
    for key, value in cpu.get_weights().items():
        np.testing.assert_array_equal(dev.get_weights()[key], value)
    assert dev.optimizer.iterations == cpu.optimizer.iterations == 4
    state, state_cpu = dev.optimizer.get_state(), cpu.optimizer.get_state()
    for slot in state_cpu["slots"]:
        np.testing.assert_array_equal(state["slots"][slot], state_cpu["slots"][slot])


def test_after_a_refused_step_training_goes_on_from_where_it_was(standin, rng):
    x, y = _poisoned(rng)
    g, cpu = _model("standin"), _model("cpu")
    for model in (g, cpu):
        with pytest.raises(TrainingError):
            model.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
        model.fit(x[:32], y[:32], epochs=2, batch_size=8, verbose=0)
    for key, value in cpu.get_weights().items():
        np.testing.assert_array_equal(g.get_weights()[key], value)


def test_a_non_finite_gradient_names_the_gradient(standin, rng):
    x, y = _data(16, rng)
    g = _model("standin")
    g.set_weights({"dense.bias": np.full(8, 3e38)})  # finite weights whose products overflow
    with pytest.raises(TrainingError, match="epoch 1/1, batch 1/2: the (loss|gradient)") as caught:
        g.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    assert caught.value.batch == 0 and caught.value.epoch == 0


def test_train_step_settles_at_once(standin, rng):
    x, y = _poisoned(rng, rows=8, bad_row=0)
    g = _model("standin")
    loss = g.train_step(x[1:], y[1:])
    assert isinstance(loss, float) and np.isfinite(loss)
    before = g.get_weights()
    with pytest.raises(TrainingError, match="train_step: the loss"):
        g.train_step(x, y)
    for key, value in before.items():
        np.testing.assert_array_equal(g.get_weights()[key], value)
    assert g.optimizer.iterations == 1


def test_early_stopping_and_checkpoints_read_the_epochs_logs(standin, rng, tmp_path):
    x, y = _data(64, rng)
    g = _model("standin")
    stop = gn.callbacks.EarlyStopping(monitor="loss", patience=1, min_delta=10.0)
    checkpoint = gn.callbacks.ModelCheckpoint(tmp_path / "best.gnet", monitor="loss")
    history = g.fit(x, y, epochs=10, batch_size=8, verbose=0, callbacks=[stop, checkpoint])
    assert len(history.history["loss"]) < 10
    assert gn.load(tmp_path / "best.gnet").device == "cpu"


def test_moving_during_fit_is_refused(standin, rng):
    x, y = _data(32, rng)
    g = _model("standin")
    mover = gn.callbacks.LambdaCallback(on_batch_begin=lambda batch, logs=None: batch == 2 and g.to("cpu"))
    with pytest.raises(gn.GraphError, match="moved from standin to cpu while it was training"):
        g.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[mover])


@pytest.mark.parametrize("why, said", [
    (1, "the loss was not finite"),
    (4, "the update was not finite (or adam's update's sum of squares overflowed)"),
    (3, "the loss and the gradient were not finite (or the gradient's sum of squares overflowed)"),
    (7, "the loss, the gradient and the update were not finite (or the gradient's or adam's update's sum of "
        "squares overflowed)"),
])
def test_a_refused_device_step_says_which_values_were_not_finite_in_one_parenthesis(why, said):
    assert Failure(None, why).describe("adam") == said
