"""The callback protocol as Keras users write against it: which batch hook
``fit`` calls, ``stop_training`` set in a batch hook, names a callback adds
to the logs, Keras's argument names, and a generator that runs out."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from conftest import build_regression, regression_data

import graphnet as gn
from graphnet import GraphError


@pytest.fixture
def data(rng):
    return regression_data(rng)


class Events(gn.Callback):
    """Records epoch and batch hooks."""

    def __init__(self):
        super().__init__()
        self.events = []

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(("begin", epoch))

    def on_train_batch_end(self, batch, logs=None):
        self.events.append(("batch", batch))

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(("end", epoch))


def test_fit_calls_the_keras_batch_hooks_which_call_the_older_names(data):
    x, y = data
    calls = []

    class Both(gn.Callback):  # Keras calls on_train_batch_end alone for such a class
        def on_batch_end(self, batch, logs=None):
            calls.append("on_batch_end")

        def on_train_batch_end(self, batch, logs=None):
            calls.append("on_train_batch_end")

    class Older(gn.Callback):  # the older name alone: reached through the base class
        def on_batch_begin(self, batch, logs=None):
            calls.append("on_batch_begin")

        def on_batch_end(self, batch, logs=None):
            calls.append(("on_batch_end", sorted(logs)))

    build_regression().fit(x, y, epochs=1, batch_size=len(x), callbacks=[Both(), Older()], verbose=0)
    assert calls == ["on_batch_begin", "on_train_batch_end", ("on_batch_end", ["loss"])]


@pytest.mark.parametrize("hook", ["on_train_batch_end", "on_batch_end", "on_train_batch_begin"])
def test_stop_training_in_a_batch_hook_ends_the_epoch_after_that_batch(data, hook):
    x, y = data
    events = Events()

    class Stop(gn.Callback):
        pass

    setattr(Stop, hook, lambda self, batch, logs=None: setattr(self.graph, "stop_training", batch == 1))
    history = build_regression().fit(x, y, epochs=3, batch_size=10, validation_data=(x, y), verbose=0,
                                     callbacks=[Stop(), events])
    assert history.epoch == [0]
    assert events.events == [("begin", 0), ("batch", 0), ("batch", 1), ("end", 0)]
    assert set(history.history) == {"loss", "val_loss"}  # the epoch is logged and validated, as in Keras


def test_the_epoch_logs_cover_the_batches_it_ran(data):
    x, y = data
    batches = []

    class Stop(gn.Callback):
        def on_train_batch_end(self, batch, logs=None):
            batches.append(logs["loss"])
            self.graph.stop_training = batch == 1

    g = build_regression()
    g.optimizer = gn.optimizers.SGD(lr=0.0)  # nothing moves: each batch's loss is the one the epoch averages
    history = g.fit(x, y, epochs=2, batch_size=10, shuffle=False, callbacks=[Stop()], verbose=0)
    assert history.history["loss"][0] == pytest.approx(np.mean(batches), rel=1e-6)


class Score(gn.Callback):
    """Keras's idiom: a score computed in on_epoch_end, for the callbacks after it."""

    def on_epoch_end(self, epoch, logs=None):
        logs["val_score"] = -logs["val_loss"]


def test_a_name_a_callback_adds_can_be_monitored_by_the_callbacks_after_it(data, tmp_path):
    x, y = data
    stop = gn.EarlyStopping(monitor="val_score", mode="max", patience=5)
    keep = gn.ModelCheckpoint(tmp_path / "best-{val_score:.3f}.gnet", monitor="val_score", mode="max")
    history = build_regression().fit(x, y, epochs=2, validation_data=(x, y), verbose=0,
                                     callbacks=[Score(), stop, keep])
    assert history.history["val_score"] == [-v for v in history.history["val_loss"]]
    assert stop.best == max(history.history["val_score"]) and len(keep.saved) >= 1


def test_a_name_no_callback_adds_is_refused_before_or_when_the_epoch_ends(data):
    x, y = data
    g = build_regression()
    before = g.get_weights()
    with pytest.raises(GraphError, match=r"EarlyStopping: monitor 'val_score' is not among the logged values "
                                         r"\['loss', 'val_loss'\]; a name a callback of yours adds"):
        g.fit(x, y, epochs=2, validation_data=(x, y), verbose=0, callbacks=[gn.EarlyStopping(monitor="val_score")])
    assert all(np.array_equal(before[k], g.get_weights()[k]) for k in before), "refused before training"
    # After the callback that adds it, a name is found; before it, it is looked for in vain when the epoch ends.
    with pytest.raises(GraphError, match=r"EarlyStopping: monitor 'val_score' is not among the logged values "
                                         r"\['loss', 'val_loss'\]"):
        g.fit(x, y, epochs=2, validation_data=(x, y), verbose=0,
              callbacks=[gn.EarlyStopping(monitor="val_score"), Score()])
    # No validation at all: the hint says so.
    with pytest.raises(GraphError, match="pass validation_data or validation_split to fit"):
        g.fit(x, y, epochs=1, verbose=0, callbacks=[gn.EarlyStopping()])


def test_keras_argument_names_of_the_callbacks(data, tmp_path, capsys):
    x, y = data
    keep = gn.ModelCheckpoint(filepath=tmp_path / "m.gnet", monitor="loss", initial_value_threshold=-1.0)
    build_regression().fit(x, y, epochs=2, verbose=0, callbacks=[keep])
    assert keep.saved == []  # no epoch beat the threshold
    keep = gn.ModelCheckpoint(filepath=tmp_path / "m.gnet", monitor="loss", initial_value_threshold=1e9)
    build_regression().fit(x, y, epochs=1, verbose=0, callbacks=[keep])
    assert keep.saved == [str(tmp_path / "m.gnet")]
    with pytest.raises(GraphError, match="ModelCheckpoint: give the file to write as path or as filepath"):
        gn.ModelCheckpoint(tmp_path / "a.gnet", filepath=tmp_path / "b.gnet")
    with pytest.raises(GraphError, match="ModelCheckpoint: path must be a str or os.PathLike"):
        gn.ModelCheckpoint()
    with pytest.raises(GraphError, match="initial_value_threshold"):
        gn.ModelCheckpoint("a.gnet", initial_value_threshold="low")
    schedule = gn.callbacks.LearningRateScheduler(lambda epoch: 0.5 ** epoch, verbose=1)
    build_regression().fit(x, y, epochs=2, verbose=0, callbacks=[schedule])
    assert capsys.readouterr().out.splitlines() == [
        "Epoch 1: LearningRateScheduler setting learning rate to 1.0.",
        "Epoch 2: LearningRateScheduler setting learning rate to 0.5.",
    ]


def test_terminate_on_nan_may_raise_as_keras_can(data):
    x, y = data
    g = build_regression()
    g.optimizer = gn.optimizers.SGD(lr=1e30)
    ended = []
    end = gn.callbacks.LambdaCallback(on_train_end=lambda logs: ended.append(True))
    with pytest.raises(gn.TrainingError) as caught:
        g.fit(x, y, epochs=3, verbose=0, callbacks=[gn.callbacks.TerminateOnNaN(raise_error=True), end])
    assert isinstance(caught.value, RuntimeError) and ended == []
    assert all(np.isfinite(w).all() for w in g.get_weights().values())
    with pytest.raises(GraphError, match="TerminateOnNaN: raise_error must be"):
        gn.callbacks.TerminateOnNaN(raise_error="yes")


def test_fit_takes_kerass_validation_arguments(data):
    x, y = data
    g, h = build_regression(), build_regression()
    small = g.fit(x, y, epochs=2, validation_data=(x, y), validation_batch_size=7, validation_freq=1, verbose=0)
    whole = h.fit(x, y, epochs=2, validation_data=(x, y), verbose=0)
    np.testing.assert_allclose(small.history["val_loss"], whole.history["val_loss"], rtol=1e-5)
    with pytest.raises(GraphError, match="fit: validation_freq must be 1, got 2: graphnet validates after every"):
        g.fit(x, y, validation_data=(x, y), validation_freq=2, verbose=0)
    with pytest.raises(GraphError, match="fit: validation_batch_size must be"):
        g.fit(x, y, validation_data=(x, y), validation_batch_size=0, verbose=0)


def _batches(x, y, count, size=10):
    for i in range(count):
        yield x[i * size:(i + 1) * size], y[i * size:(i + 1) * size]


def test_a_generator_that_runs_out_within_an_epoch_ends_training_after_it(data, caplog):
    x, y = data
    events = Events()
    rates = gn.callbacks.LearningRateScheduler(lambda epoch: 0.1 / 10 ** epoch)
    g = build_regression()
    with caplog.at_level(logging.WARNING, logger="graphnet"):
        history = g.fit(_batches(x, y, 5), epochs=5, steps_per_epoch=2, verbose=0, callbacks=[events, rates])
    assert history.epoch == [0, 1, 2]
    assert [e for e in events.events if e[0] != "batch"] == [("begin", 0), ("end", 0), ("begin", 1), ("end", 1),
                                                             ("begin", 2), ("end", 2)]
    assert g.optimizer.lr == pytest.approx(0.001)  # no rate was set for an epoch that never began
    assert [r.getMessage() for r in caplog.records] == [
        "reg: fit ran out of data after 1 of 2 batches in epoch 3; training stops"]


def test_a_generator_that_runs_out_as_an_epoch_ends_stops_before_the_next(data, caplog):
    x, y = data
    events = Events()
    with caplog.at_level(logging.WARNING, logger="graphnet"):
        history = build_regression().fit(_batches(x, y, 4), epochs=5, steps_per_epoch=2, verbose=0,
                                         callbacks=[events])
    assert history.epoch == [0, 1]
    assert events.events[-2:] == [("batch", 1), ("end", 1)]
    assert [r.getMessage() for r in caplog.records] == [
        "reg: fit ran out of data before epoch 3; training stops"]


def test_a_generator_trained_on_one_batch_ahead_gives_the_same_weights(data):
    x, y = data
    g, h = build_regression(), build_regression()
    g.fit(_batches(x, y, 6), epochs=3, steps_per_epoch=2, shuffle=False, verbose=0)
    h.fit([(x[i * 10:(i + 1) * 10], y[i * 10:(i + 1) * 10]) for i in range(6)], epochs=1, shuffle=False, verbose=0)
    for key, value in g.get_weights().items():
        np.testing.assert_array_equal(value, h.get_weights()[key])


def test_data_that_yields_no_batch_is_refused(data):
    x, y = data
    g = build_regression()
    used = _batches(x, y, 2)
    g.fit(used, epochs=1, verbose=0)
    before = g.get_weights()
    events = Events()
    with pytest.raises(GraphError, match=r"fit: the data yielded no batches \(a generator that was already used up"):
        g.fit(used, epochs=1, verbose=0, callbacks=[events])
    assert events.events == []  # no epoch began
    assert all(np.array_equal(before[k], g.get_weights()[k]) for k in before)

    class Empty:
        def __len__(self):
            return 0

        def __getitem__(self, i):
            raise IndexError(i)

    with pytest.raises(GraphError, match="fit: the data yielded no batches"):
        g.fit(Empty(), epochs=2, verbose=0)

    class Again:  # iterable afresh each epoch, but empty
        def __iter__(self):
            return iter(())

    with pytest.raises(GraphError, match=r"fit: the data yielded no batches \(.*\), so there is nothing to train on"):
        g.fit(Again(), epochs=2, verbose=0)


def test_a_refused_fit_leaves_no_backup_and_no_optimizer(data, tmp_path):
    g = build_regression()
    optimizer = g.optimizer
    backup = gn.callbacks.BackupAndRestore(tmp_path / "bk")
    with pytest.raises(GraphError, match="fit: the data yielded no batches"):
        g.fit(iter([]), epochs=1, verbose=0, callbacks=[backup])
    assert not (tmp_path / "bk").exists() and g.optimizer is optimizer


def test_a_batch_taken_ahead_waits_for_the_next_fit_on_the_same_generator(data, tmp_path):
    x, y = data

    def batches():
        for i in range(10**6):
            j = (10 * i) % 80
            yield x[j:j + 10], y[j:j + 10]

    class Interrupt(gn.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    shared = batches()
    with pytest.raises(KeyboardInterrupt):
        build_regression().fit(shared, epochs=4, steps_per_epoch=2, verbose=0,
                               callbacks=[gn.callbacks.BackupAndRestore(tmp_path / "bk"), Interrupt()])
    resumed = build_regression()
    resumed.fit(shared, epochs=4, steps_per_epoch=2, verbose=0,
                callbacks=[gn.callbacks.BackupAndRestore(tmp_path / "bk")])
    straight = build_regression()
    straight.fit(batches(), epochs=4, steps_per_epoch=2, verbose=0)
    for key, value in straight.get_weights().items():
        np.testing.assert_array_equal(value, resumed.get_weights()[key])


def test_an_iterable_that_gives_nothing_in_a_later_epoch_ends_training_before_it(data, caplog):
    x, y = data
    source = iter([(x[:40], y[:40]), (x[40:], y[40:])])

    class Draining:  # iterable afresh each epoch, but over one stream
        def __iter__(self):
            return (batch for batch in source)

    events = Events()
    rates = gn.callbacks.LearningRateScheduler(lambda epoch: 0.01 * (epoch + 1))
    g = build_regression()
    with caplog.at_level(logging.WARNING, logger="graphnet"):
        history = g.fit(Draining(), epochs=3, verbose=0, callbacks=[events, rates])
    assert history.epoch == [0] and [e for e in events.events if e[0] != "batch"] == [("begin", 0), ("end", 0)]
    assert g.optimizer.lr == pytest.approx(0.01)
    assert [r.getMessage() for r in caplog.records] == ["reg: fit ran out of data before epoch 2; training stops"]


def test_validation_data_with_no_batch_is_refused_before_training(data):
    x, y = data
    g = build_regression()
    before = g.get_weights()
    with pytest.raises(GraphError, match=r"validation_data: the data yielded no batches .* nothing to validate"):
        g.fit(x, y, epochs=1, verbose=0, validation_data=iter([]))
    assert all(np.array_equal(before[k], g.get_weights()[k]) for k in before)


def test_a_validation_figure_without_validation_is_refused_before_training_whatever_the_callbacks(data):
    x, y = data

    class Printer(gn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            pass

    g = build_regression()
    before = g.get_weights()
    with pytest.raises(GraphError, match="monitor 'val_loss' is not among the logged values .*pass validation_data"):
        g.fit(x, y, epochs=2, verbose=0, callbacks=[Printer(), gn.EarlyStopping()])
    assert all(np.array_equal(before[k], g.get_weights()[k]) for k in before)
    # A LambdaCallback's on_epoch_end may add a name too.
    score = gn.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: logs.update(score=-logs["loss"]))
    stop = gn.EarlyStopping(monitor="score", patience=1)
    history = g.fit(x, y, epochs=2, verbose=0, callbacks=[score, stop])
    assert history.history["score"] == [-v for v in history.history["loss"]]


def test_reduce_lr_on_plateau_refuses_a_schedule_given_mid_fit(data):
    x, y = data
    g = build_regression()
    g.optimizer = gn.optimizers.SGD(lr=0.1)

    def swap(epoch, logs):
        if epoch == 0:
            g.optimizer = gn.optimizers.SGD(lr=gn.schedules.ExponentialDecay(0.1, 10, 0.5))

    with pytest.raises(GraphError, match="ReduceLROnPlateau: the optimizer's learning rate is a schedule"):
        g.fit(x, y, epochs=3, verbose=0, callbacks=[gn.callbacks.LambdaCallback(on_epoch_end=swap),
                                                    gn.callbacks.ReduceLROnPlateau(monitor="loss", patience=0,
                                                                                   min_delta=1e9)])


def test_tensorboard_refuses_added_names_that_share_a_tag(data, tmp_path):
    pytest.importorskip("tensorboardX")
    x, y = data
    both = gn.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: logs.update({"a b": 1.0, "a,b": 2.0}))
    with pytest.raises(GraphError, match=r"TensorBoard: 'a b' and 'a,b' would both be written as the tag 'epoch_a_b'"):
        build_regression().fit(x, y, epochs=1, verbose=0,
                               callbacks=[both, gn.callbacks.TensorBoard(tmp_path / "logs")])


def test_a_fit_that_runs_no_epoch_takes_nothing_from_a_used_up_generator(data, tmp_path):
    x, y = data
    g = build_regression()
    used = _batches(x, y, 1)
    g.fit(used, epochs=1, verbose=0)
    assert g.fit(used, epochs=3, initial_epoch=3, verbose=0).epoch == []  # nothing to run: no refusal

    def counted(log):
        for i in range(4):
            log.append(i)
            yield x[10 * i:10 * (i + 1)], y[10 * i:10 * (i + 1)]

    backup = gn.callbacks.BackupAndRestore(tmp_path / "bk", delete_checkpoint=False)
    build_regression().fit(counted([]), epochs=2, steps_per_epoch=2, verbose=0, callbacks=[backup])
    log = []
    again = counted(log)
    assert build_regression().fit(again, epochs=2, steps_per_epoch=2, verbose=0, callbacks=[backup]).epoch == []
    events = Events()  # the batch taken ahead comes first: four batches, none lost
    history = build_regression().fit(again, epochs=1, steps_per_epoch=4, verbose=0, callbacks=[events])
    assert history.epoch == [0] and log == [0, 1, 2, 3]
    assert [e for e in events.events if e[0] == "batch"] == [("batch", 0), ("batch", 1), ("batch", 2), ("batch", 3)]
