"""EarlyStopping, ModelCheckpoint and the Callback hooks."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from conftest import build_dag, build_regression, dag_data, regression_data
from modelfiles import same

import graphnet as gn
from graphnet import GraphError


@pytest.fixture
def data(rng):
    return regression_data(rng)


class Recorder(gn.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append("train_begin")

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(f"epoch_begin {epoch}")

    def on_batch_end(self, batch, logs=None):
        self.calls.append(f"batch {batch}")

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(f"epoch_end {epoch} {sorted(logs)}")

    def on_train_end(self, logs=None):
        self.calls.append("train_end")


def test_hooks_are_called_in_order(data):
    x, y = data
    recorder = Recorder()
    g = build_regression()
    g.fit(x, y, epochs=2, batch_size=40, validation_split=0.5, callbacks=[recorder], verbose=0)
    assert recorder.graph is g and recorder.params["epochs"] == 2
    assert recorder.calls == [
        "train_begin",
        "epoch_begin 0", "batch 0", "epoch_end 0 ['loss', 'val_loss']",
        "epoch_begin 1", "batch 0", "epoch_end 1 ['loss', 'val_loss']",
        "train_end",
    ]


class Asked(gn.Callback):
    """Records each set_params call, and the params as training begins."""

    def __init__(self):
        super().__init__()
        self.asked, self.at_begin = [], None

    def set_params(self, params):
        super().set_params(params)
        self.asked.append(dict(params))

    def on_train_begin(self, logs=None):
        self.at_begin = dict(self.params)


@pytest.mark.parametrize("split, batch_size, rows, steps", [(0.0, 32, 80, 3), (0.25, 32, 60, 2), (0.5, 100, 40, 1)])
def test_set_params_is_called_once_with_the_training_rows_and_steps(data, split, batch_size, rows, steps):
    x, y = data
    asked = Asked()
    history = build_regression().fit(x, y, epochs=2, batch_size=batch_size, validation_split=split,
                                     callbacks=[asked], verbose=0)
    metrics = ["loss", "val_loss"] if split else ["loss"]
    expected = {"epochs": 2, "steps": steps, "batch_size": batch_size, "rows": rows, "metrics": metrics}
    assert asked.asked == [expected]  # once, as Keras does, with what the epochs are
    assert asked.at_begin == expected and history.params == expected
    assert len(history.history["loss"]) == 2


def test_set_params_of_a_fit_on_batches_has_the_batches_per_epoch(data):
    x, y = data
    batches = [(x[i : i + 20], y[i : i + 20]) for i in range(0, 80, 20)]
    asked = Asked()
    build_regression().fit(batches, epochs=2, callbacks=[asked], verbose=0)
    assert [(p["steps"], p["rows"]) for p in asked.asked] == [(4, None)]


def test_keras_names_for_the_batch_hooks_are_called_in_a_subclass(data):
    """Keras's on_train_batch_begin/end are the batch hooks' other names: a
    Callback written from Keras's guide that overrides them is called (it was
    silently never called)."""

    class KerasStyle(gn.Callback):
        def __init__(self):
            super().__init__()
            self.calls = []

        def on_train_batch_begin(self, batch, logs=None):
            self.calls.append(("begin", batch))

        def on_train_batch_end(self, batch, logs=None):
            self.calls.append(("end", batch, sorted(logs)))

    x, y = data
    keras_style = KerasStyle()
    build_regression().fit(x, y, epochs=2, batch_size=40, callbacks=[keras_style], verbose=0)
    one_epoch = [("begin", 0), ("end", 0, ["loss"]), ("begin", 1), ("end", 1, ["loss"])]
    assert keras_style.calls == one_epoch * 2


def test_a_keras_named_batch_hook_that_cannot_take_its_arguments_is_refused(data):
    class Short(gn.Callback):
        def on_train_batch_end(self, batch):
            pass

    x, y = data
    g = build_regression()
    with pytest.raises(GraphError, match=r"on_train_batch_end is called as on_train_batch_end\(batch, logs\)"):
        g.fit(x, y, epochs=1, callbacks=[Short()], verbose=0)


class StopAfter(gn.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            self.graph.stop_training = True


def test_a_callback_can_stop_training(data):
    x, y = data
    history = build_regression().fit(x, y, epochs=10, callbacks=[StopAfter(2)], verbose=0)
    assert history.epoch == [0, 1, 2]


class ScriptedLoss(gn.Callback):
    """Overwrites val_loss with a script, so early stopping is tested exactly."""

    def __init__(self, values):
        super().__init__()
        self.values = values

    def on_epoch_end(self, epoch, logs=None):
        logs["val_loss"] = self.values[epoch]


def test_early_stopping_stops_and_restores_the_best_weights(data):
    x, y = data
    g = build_regression()
    snapshots = []

    class Snapshot(gn.Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots.append(self.graph.get_weights())

    stopper = gn.EarlyStopping(patience=2)
    script = ScriptedLoss([5.0, 3.0, 4.0, 3.5, 1.0, 0.5])
    history = g.fit(x, y, epochs=6, validation_data=(x, y), callbacks=[script, stopper, Snapshot()], verbose=0)
    assert history.epoch == [0, 1, 2, 3]  # no improvement on 3.0 for 2 epochs
    assert stopper.stopped_epoch == 3 and stopper.best_epoch == 1 and stopper.best == 3.0
    best = snapshots[1]
    assert all(np.array_equal(best[k], v) for k, v in g.get_weights().items())


def test_early_stopping_keeps_the_last_weights_when_they_are_best(data):
    x, y = data
    g = build_regression()
    stopper = gn.EarlyStopping(monitor="loss", patience=1, restore_best_weights=True)
    g.fit(x, y, epochs=3, callbacks=[ScriptedLoss([3.0, 2.0, 1.0]), stopper], verbose=0)
    assert stopper.stopped_epoch is None and stopper.best_epoch == 2


def test_early_stopping_on_a_missing_value_says_what_is_logged(data):
    x, y = data
    with pytest.raises(GraphError, match=r"monitor 'val_loss' is not among the logged values \['loss'\]; pass validation_data"):
        build_regression().fit(x, y, epochs=2, callbacks=[gn.EarlyStopping()], verbose=0)


def test_early_stopping_mode_follows_the_name():
    assert gn.EarlyStopping(monitor="val_accuracy").mode == "max"
    assert gn.EarlyStopping(monitor="val_loss").mode == "min"
    assert [gn.EarlyStopping(monitor=m).mode for m in ("val_auc", "y_f1", "r2", "val_log_loss", "mae")] == [
        "max", "max", "max", "min", "min"]
    with pytest.raises(GraphError, match="mode must be"):
        gn.EarlyStopping(mode="up")
    with pytest.raises(GraphError, match="patience must be an integer >= 0"):
        gn.EarlyStopping(patience=-1)


def test_model_checkpoint_saves_the_best_weights_atomically(data, tmp_path):
    x, y = data
    g = build_regression()
    path = tmp_path / "best.npz"
    checkpoint = gn.ModelCheckpoint(path)
    g.fit(x, y, epochs=4, validation_data=(x, y), callbacks=[ScriptedLoss([3.0, 1.0, 2.0, 4.0]), checkpoint], verbose=0)
    assert checkpoint.saved == [str(path), str(path)]  # epochs 1 and 2 improved
    saved = np.load(path, allow_pickle=False)
    assert set(saved.files) == set(g.get_weights())
    assert [p.name for p in tmp_path.iterdir()] == ["best.npz"]  # no temporary files left
    g.set_weights(dict(saved))


def test_model_checkpoint_every_epoch_with_a_pattern(data, tmp_path):
    x, y = data
    g = build_regression()
    checkpoint = gn.ModelCheckpoint(tmp_path / "w-{epoch:02d}-{loss:.0f}.npz", save_best_only=False)
    g.fit(x, y, epochs=3, callbacks=[checkpoint], verbose=0)
    assert len(checkpoint.saved) == 3 and os.path.basename(checkpoint.saved[0]).startswith("w-01-")


def test_model_checkpoint_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    g = build_regression()
    path = tmp_path / "w.npz"
    path.write_bytes(b"old contents")
    checkpoint = gn.ModelCheckpoint(path, save_best_only=False)
    checkpoint.set_graph(g)

    def explode(handle, **arrays):
        handle.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", explode)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.on_epoch_end(0, {"loss": 1.0})
    assert path.read_bytes() == b"old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]


# --------------------------------------------------------------- checkpoints
def test_model_checkpoint_writes_full_model_files(tmp_path, rng):
    g = build_dag(dtype="float32")
    x, y = dag_data(rng, 20)
    checkpoint = gn.ModelCheckpoint(tmp_path / "ckpt-{epoch:02d}.gnet", monitor="loss", save_best_only=False)
    g.fit(x, y, epochs=2, batch_size=5, callbacks=[checkpoint], verbose=0)
    assert [os.path.basename(p) for p in checkpoint.saved] == ["ckpt-01.gnet", "ckpt-02.gnet"]
    last = gn.load(tmp_path / "ckpt-02.gnet")
    assert same(last.predict(x), g.predict(x))
    assert last.optimizer.iterations == g.optimizer.iterations
    weights_only = gn.ModelCheckpoint(tmp_path / "w.npz", monitor="loss")
    g.fit(x, y, epochs=1, callbacks=[weights_only], verbose=0)
    assert sorted(np.load(tmp_path / "w.npz").files) == sorted(g.get_weights())


def test_checkpoint_templates_are_checked_before_training(tmp_path, data):
    x, y = data
    with pytest.raises(GraphError, match=r"may name only 'epoch' and logged values .* not \['0'\]"):
        gn.ModelCheckpoint(tmp_path / "{0}.gnet")
    with pytest.raises(GraphError, match=r"the format of \{epoch\} does not fit a number of epochs"):
        gn.ModelCheckpoint(tmp_path / "{epoch:s}.gnet")
    g = build_regression()
    before = g.get_weights()
    bogus = gn.ModelCheckpoint(tmp_path / "{bogus}.gnet", monitor="loss")
    with pytest.raises(GraphError, match=r"ModelCheckpoint: the field \{bogus\} of the path '.*\{bogus\}\.gnet' is "
                                         r"not 'epoch' and is not among the logged values \['loss'\]; a name a callback "
                                         r"of yours adds in on_epoch_end can be watched by a callback after it"):
        g.fit(x, y, epochs=2, callbacks=[bogus], verbose=0)
    assert all(np.array_equal(before[k], g.get_weights()[k]) for k in before), "an epoch trained first"
    for path in ("{epoc:02d}.gnet", "{epoc}.gnet"):  # a misspelt epoch, with or without a format for integers
        typo = gn.ModelCheckpoint(tmp_path / path, monitor="loss")
        with pytest.raises(GraphError, match=r"the field \{epoc\} .* is not 'epoch' and is not among the logged values "
                                             r"\['loss'\]; did you mean 'epoch'\?$"):
            g.fit(x, y, epochs=1, callbacks=[typo], verbose=0)
    val = gn.ModelCheckpoint(tmp_path / "{val_loss}.gnet", monitor="loss")  # watching 'loss' already
    with pytest.raises(GraphError, match=r"the field \{val_loss\} .*; pass validation_data or validation_split to "
                                         r"fit$"):
        g.fit(x, y, epochs=1, callbacks=[val], verbose=0)
    with pytest.raises(GraphError, match=r"the format of \{loss\} does not fit a float"):
        g.fit(x, y, epochs=1, callbacks=[gn.ModelCheckpoint(tmp_path / "{loss:02d}.gnet", monitor="loss")], verbose=0)
    good = gn.ModelCheckpoint(tmp_path / "e{epoch:02d}-{loss:.2f}.gnet", monitor="loss", save_best_only=False)
    g.fit(x, y, epochs=1, callbacks=[good], verbose=0)
    assert os.path.basename(good.saved[0]).startswith("e01-")


def test_files_that_cannot_be_written_are_refused_before_training(tmp_path, data):
    """A checkpoint or CSV log whose folder is missing or a file, or whose
    path is a folder, and a backup or TensorBoard folder that is (or is
    under) a file, are refused by fit before anything changes."""
    x, y = data
    (tmp_path / "file").write_text("")
    g = build_regression()
    before = g.get_weights()
    cases = [(gn.ModelCheckpoint(tmp_path / "missing" / "best.gnet", monitor="loss"),
              r"ModelCheckpoint: cannot write '.*missing/best\.gnet': folder '.*missing' does not exist"),
             (gn.ModelCheckpoint(tmp_path / "file" / "e{epoch}.gnet", save_best_only=False),
              r"ModelCheckpoint: cannot write '.*file/e\{epoch\}\.gnet': '.*file' is a file, not a folder"),
             (gn.callbacks.CSVLogger(tmp_path / "missing" / "log.csv"),
              r"CSVLogger: cannot write '.*missing/log\.csv': folder '.*missing' does not exist"),
             (gn.callbacks.CSVLogger(tmp_path), r"CSVLogger: cannot write '.*': is a folder"),
             (gn.callbacks.BackupAndRestore(tmp_path / "file" / "backups"),
              r"BackupAndRestore: the folder '.*file/backups' is under '.*file', a file"),
             (gn.callbacks.TensorBoard(tmp_path / "file"), r"TensorBoard: the folder '.*file' is a file, not a folder")]
    for callback, message in cases:
        with pytest.raises(GraphError, match=message):
            g.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    assert g.optimizer is None and all(np.array_equal(before[k], g.get_weights()[k]) for k in before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc, which takes no new folder")
def test_a_folder_the_permission_bits_allow_but_that_cannot_be_made_is_refused_before_training(tmp_path, data):
    """/proc looks writable to root's permission bits but takes no folder:
    BackupAndRestore and TensorBoard probe their folder before fit changes
    anything (BackupAndRestore raised a raw FileNotFoundError with the graph
    adapted and its optimizer set; TensorBoard failed after an epoch had
    trained). A folder that can be made is made then, as the fit would
    make it, also when fits beside each other make the same one."""
    pd = pytest.importorskip("pandas")
    x, y = data
    frame = pd.DataFrame({"age": x[:, 0], "city": np.where(x[:, 1] > 0, "a", "b")})
    for callback in (gn.callbacks.BackupAndRestore("/proc/graphnet-backups/run"),
                     gn.callbacks.TensorBoard("/proc/graphnet-logs")):
        g = gn.Graph(seed=0)
        g.add_input("age", normalize=True)
        g.add_input("city", categories="adapt")
        g.add_output("y", 1)
        g.connect(["age", "city"], "y")
        with pytest.raises(GraphError, match=rf"^{type(callback).__name__}: the folder '/proc/graphnet-[a-z/]*' "
                                             r"cannot be made or written in: "):
            g.fit(frame, y, epochs=1, verbose=0, callbacks=[callback])
        assert g.optimizer is None and g["city"].categories == "adapt" and g["age"].mean is None
    made = tmp_path / "new" / "deeper"
    gn.callbacks.TensorBoard(made).set_params({"metrics": []})
    assert made.is_dir() and not any(made.iterdir())
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(GraphError, match=r"the folder '.*dangling' cannot be made or written in: is a link to "
                                         r"'.*nowhere', which does not exist"):
        gn.callbacks.BackupAndRestore(tmp_path / "dangling").set_params({"metrics": []})
    errors = []

    def fit(i):
        folder = tmp_path / "shared" / "a" / "b" / ("logs" if i % 2 else "backups")
        callback = gn.callbacks.TensorBoard(folder) if i % 2 else gn.callbacks.BackupAndRestore(folder)
        try:
            build_regression().fit(x[:8], y[:8], epochs=1, verbose=0, callbacks=[callback])
        except GraphError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=fit, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []

def test_a_misspelt_monitor_fails_before_the_first_epoch(data):
    x, y = data
    g = build_regression()
    before = g.get_weights()
    with pytest.raises(GraphError, match=r"EarlyStopping: monitor 'val_los' is not among the logged values "
                                         r"\['loss', 'val_loss'\]; did you mean 'val_loss'\?$"):
        g.fit(x, y, epochs=2, validation_split=0.25, callbacks=[gn.EarlyStopping(monitor="val_los")], verbose=0)
    assert all(np.array_equal(before[k], g.get_weights()[k]) for k in before)


@pytest.mark.parametrize("callback", [lambda: gn.callbacks.LearningRateScheduler(lambda epoch: 0.1),
                                      lambda: gn.callbacks.ReduceLROnPlateau(monitor="loss")])
def test_a_callback_refusing_the_optimizer_leaves_the_graphs_optimizer(data, callback):
    """A callback that sets the learning rate refuses a scheduled one before
    fit changes anything: the graph keeps its optimizer (and its state), and
    a graph with none is left without one."""
    x, y = data
    schedule = gn.schedules.ExponentialDecay(0.01, decay_steps=10, decay_rate=0.9)
    g = build_regression()
    g.fit(x, y, epochs=1, verbose=0)
    adam, iterations, before = g.optimizer, g.optimizer.iterations, g.get_weights()
    for optimizer in (gn.optimizers.SGD(lr=schedule), {"name": "sgd", "lr": schedule.get_config()}):
        with pytest.raises(GraphError, match=r"the optimizer's learning rate is a schedule .* use one or the other"):
            g.fit(x, y, epochs=2, verbose=0, optimizer=optimizer, callbacks=[callback()])
    assert g.optimizer is adam and adam.iterations == iterations
    assert all(np.array_equal(before[k], g.get_weights()[k]) for k in before)
    fresh = build_regression()
    with pytest.raises(GraphError, match="the optimizer's learning rate is a schedule"):
        fresh.fit(x, y, epochs=2, verbose=0, optimizer=gn.optimizers.Adam(lr=schedule), callbacks=[callback()])
    assert fresh.optimizer is None


class Scripted(gn.callbacks.Callback):
    """Replaces the logged loss by a scripted sequence (runs before the callback under test)."""

    def __init__(self, values):
        super().__init__()
        self.values = list(values)

    def on_epoch_end(self, epoch, logs=None):
        logs["loss"] = self.values[epoch]


def test_reduce_lr_on_plateau_follows_keras_rule(data):
    x, y = data
    g = build_regression()
    g.optimizer = gn.optimizers.SGD(lr=0.01)
    rates = []
    reduce = gn.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2, cooldown=1, min_lr=0.002)
    record = gn.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: rates.append(g.optimizer.lr))
    losses = [5, 4, 4, 4, 4, 4, 4, 4, 3, 3, 3, 3]
    history = g.fit(x, y, epochs=len(losses), callbacks=[Scripted(losses), reduce, record], verbose=0)
    # Keras's rule: improve, improve, wait 1, wait 2 -> halve (cooldown 1); the
    # cooldown epoch counts as wait 1, the next as wait 2 -> halve; ... down to
    # min_lr, where it stays.
    expected = [1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2, 0.2, 0.2, 0.2]
    assert rates == pytest.approx([0.01 * r for r in expected])
    # Logged as Keras logs it: the rate each epoch trained with, before that epoch's reduction.
    assert history.history["learning_rate"] == pytest.approx([0.01] + rates[:-1])


@pytest.mark.parametrize("first", [True, False])
def test_the_logged_learning_rate_is_a_name_checkpoints_and_monitors_take_wherever_the_scheduler_sits(
        tmp_path, data, first):
    """fit logs the rate for the callbacks that set it, before any callback's
    on_epoch_end: a checkpoint's {learning_rate} field, a monitor and a CSV
    column work before or after the scheduler in the list (they were refused
    as never logged)."""
    import csv

    x, y = data
    g = build_regression()
    schedule = gn.callbacks.LearningRateScheduler(lambda epoch: 0.01 / (epoch + 1))
    others = [gn.callbacks.ModelCheckpoint(tmp_path / "m-{epoch}-{learning_rate:.4f}.gnet", save_best_only=False),
              gn.callbacks.EarlyStopping(monitor="learning_rate", mode="max", patience=1),
              gn.callbacks.CSVLogger(tmp_path / "log.csv")]
    history = g.fit(x, y, epochs=4, verbose=0, callbacks=[schedule, *others] if first else [*others, schedule])
    assert history.history["learning_rate"] == pytest.approx([0.01, 0.005])  # stopped: the rate fell once
    assert sorted(p.name for p in tmp_path.glob("m-*")) == ["m-1-0.0100.gnet", "m-2-0.0050.gnet"]
    with open(tmp_path / "log.csv") as handle:
        assert [float(row["learning_rate"]) for row in csv.DictReader(handle)] == pytest.approx([0.01, 0.005])


def test_csv_logger_writes_a_file_that_reads_back(tmp_path, data):
    import csv

    x, y = data
    g = build_regression()
    path = tmp_path / "log.csv"
    history = g.fit(x, y, epochs=3, validation_split=0.25, callbacks=[gn.callbacks.CSVLogger(path)], verbose=0)
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose([float(r[key]) for r in rows], history.history[key], rtol=1e-12)
    g.fit(x, y, epochs=2, callbacks=[gn.callbacks.CSVLogger(path, append=True)], verbose=0)
    with open(path) as handle:
        assert [r[0] for r in csv.reader(handle)] == ["epoch", "0", "1", "2", "0", "1"]
    with pytest.raises(GraphError, match="separator must be one character"):
        gn.callbacks.CSVLogger(path, separator=";;")


def test_learning_rate_scheduler_and_lambda_callback(data):
    x, y = data
    g = build_regression()
    g.optimizer = gn.optimizers.SGD(lr=0.1)
    seen, events = [], []
    history = g.fit(x, y, epochs=3, verbose=0, callbacks=[
        gn.callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5),
        gn.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs=None: seen.append(g.optimizer.lr),
                                    on_train_begin=lambda logs=None: events.append("begin"),
                                    on_batch_begin=lambda b, logs=None: events.append("batch"),
                                    on_train_end=lambda logs=None: events.append("end")),
    ])
    assert seen == [0.05, 0.025, 0.0125]
    assert history.history["learning_rate"] == seen  # logged, as Keras 3 logs it
    assert events[0] == "begin" and events[-1] == "end" and "batch" in events
    g.fit(x, y, epochs=2, verbose=0, callbacks=[gn.callbacks.LearningRateScheduler(lambda epoch: 0.3 - 0.1 * epoch)])
    assert g.optimizer.lr == pytest.approx(0.2)
    with pytest.raises(GraphError, match="LearningRateScheduler: epoch 0: sgd: lr must be a finite number >= 0"):
        g.fit(x, y, epochs=1, verbose=0, callbacks=[gn.callbacks.LearningRateScheduler(lambda epoch: -1.0)])
    with pytest.raises(GraphError, match=r"unknown hooks \['on_epoch_finish'\]"):
        gn.callbacks.LambdaCallback(on_epoch_finish=print)


@pytest.mark.parametrize("schedule", [lambda a, b, c: 0.1, lambda: 0.1, lambda *, epoch: 0.1])
def test_a_schedule_that_cannot_take_the_epoch_is_refused_when_made(schedule):
    with pytest.raises(GraphError, match=r"LearningRateScheduler: schedule is called as schedule\(epoch, lr\) or "
                                         r"schedule\(epoch\), but .*<lambda> takes \("):
        gn.callbacks.LearningRateScheduler(schedule)


def test_a_schedule_is_called_with_the_rate_when_it_can_take_it(data):
    x, y = data
    calls = []
    for schedule in (lambda epoch, lr=None: calls.append(lr) or 0.1, lambda *args: calls.append(args) or 0.1,
                     lambda epoch, *, scale=1.0: calls.append(epoch) or 0.1):
        g = build_regression()
        g.optimizer = gn.optimizers.SGD(lr=0.5)
        g.fit(x, y, epochs=1, verbose=0, callbacks=[gn.callbacks.LearningRateScheduler(schedule)])
    assert calls == [0.5, (0, 0.5), 0]


def test_early_stopping_baseline_warm_up_and_its_lines(data, capsys):
    x, y = data
    g = build_regression()
    # Keras's rule. Epochs 0-1 are warm-up (ignored); 2.5 improves but misses
    # the baseline 2.0, so it counts towards patience 2, and 2.6 does not
    # improve: stop after epoch 3.
    stopper = gn.EarlyStopping(patience=2, baseline=2.0, start_from_epoch=2, verbose=1)
    script = ScriptedLoss([0.1, 0.2, 2.5, 2.6, 1.0, 0.5])
    history = g.fit(x, y, epochs=6, validation_data=(x, y), callbacks=[script, stopper], verbose=0)
    assert history.epoch == [0, 1, 2, 3]
    assert stopper.stopped_epoch == 3 and stopper.best_epoch == 2 and stopper.best == 2.5
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 4: early stopping (val_loss has not beaten the baseline 2 for 2 epochs)"
    # An epoch that improves on the best never stops training, baseline or not,
    # though it does not reset the patience: the first that does not improve stops it.
    stopper = gn.EarlyStopping(patience=2, baseline=2.0)
    history = build_regression().fit(x, y, epochs=6, validation_data=(x, y), verbose=0,
                                     callbacks=[ScriptedLoss([2.5, 2.4, 2.3, 2.2, 3.0, 1.0]), stopper])
    assert history.epoch == [0, 1, 2, 3, 4] and stopper.best_epoch == 3
    # Nor does the first epoch, with patience 0 (Keras's ``epoch > 0``).
    stopper = gn.EarlyStopping(patience=0, baseline=2.0)
    history = build_regression().fit(x, y, epochs=3, validation_data=(x, y), verbose=0,
                                     callbacks=[ScriptedLoss([2.5, 2.6, 1.0]), stopper])
    assert history.epoch == [0, 1] and stopper.stopped_epoch == 1
    capsys.readouterr()
    # beating the baseline resets the wait; the best epoch's weights come back, with a line saying so
    stopper = gn.EarlyStopping(patience=2, baseline=2.0, verbose=1)
    script = ScriptedLoss([2.5, 1.5, 1.6, 1.7, 1.0])
    history = build_regression().fit(x, y, epochs=5, validation_data=(x, y), callbacks=[script, stopper], verbose=0)
    assert history.epoch == [0, 1, 2, 3] and stopper.best_epoch == 1
    assert capsys.readouterr().out.splitlines() == [
        "Epoch 4: early stopping (val_loss has not improved on 1.5 for 2 epochs)",
        "Restoring model weights from the end of the best epoch: 2 (val_loss = 1.5).",
    ]
    with pytest.raises(GraphError, match="start_from_epoch must be an integer >= 0"):
        gn.EarlyStopping(start_from_epoch=-1)
    with pytest.raises(GraphError, match="baseline must be"):
        gn.EarlyStopping(baseline="low")


def test_reduce_lr_on_plateau_says_when_it_acts(data, capsys):
    x, y = data
    g = build_regression()
    g.optimizer = gn.optimizers.SGD(lr=0.01)
    reduce = gn.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, verbose=1)
    g.fit(x, y, epochs=3, callbacks=[Scripted([5, 5, 4]), reduce], verbose=0)
    assert capsys.readouterr().out == "Epoch 2: ReduceLROnPlateau reducing learning rate from 0.01 to 0.005.\n"


def test_terminate_on_nan_ends_training_quietly_before_the_bad_step(data, caplog):
    x, y = data
    y = y.copy()
    y[32:48] = 1e30  # finite, but its squared error overflows float32: batch 3's loss is inf
    with pytest.raises(gn.TrainingError, match=r"epoch 1/3, batch 3/5"):
        build_regression().fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0)
    after_batch_2 = {}
    watch = gn.callbacks.LambdaCallback(
        on_batch_end=lambda batch, logs: batch == 1 and after_batch_2.update(g.get_weights()))
    stop = gn.callbacks.TerminateOnNaN()
    g = build_regression()
    history = g.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0, validation_data=(x[:32], y[:32]),
                    callbacks=[stop, watch])
    assert history.epoch == [0] and np.isnan(history.history["loss"][0])
    assert np.isfinite(history.history["val_loss"][0])
    assert stop.stopped_epoch == 0 and stop.stopped_batch == 2 and isinstance(stop.error, gn.TrainingError)
    for key, value in after_batch_2.items():  # the bad step was not applied
        np.testing.assert_array_equal(g.get_weights()[key], value)
    assert "terminating training: epoch 1/3, batch 3/5" in caplog.text


def keras_style_hooks(calls: list, batch: str = "train_batch") -> dict:
    """Every hook as Keras's LambdaCallback documents it, each recording its
    arguments; ``batch="batch"`` names the batch hooks as Keras's Callback does."""
    return {
        "on_train_begin": lambda logs: calls.append(("train_begin", sorted(logs))),
        "on_epoch_begin": lambda epoch, logs: calls.append(("epoch_begin", epoch, sorted(logs))),
        f"on_{batch}_begin": lambda batch, logs: calls.append(("batch_begin", batch)),
        f"on_{batch}_end": lambda batch, logs: calls.append(("batch_end", batch, sorted(logs))),
        "on_epoch_end": lambda epoch, logs: calls.append(("epoch_end", epoch, sorted(logs))),
        "on_train_end": lambda logs: calls.append(("train_end", sorted(logs))),
    }


class AddsToLogs(gn.Callback):
    """Adds a value of its own to each epoch's logs, as Keras users do."""

    def on_epoch_end(self, epoch, logs=None):
        logs["epoch_squared"] = float(epoch**2)


def test_lambda_callback_hooks_take_keras_arguments(data):
    x, y = data
    calls, ends = [], []
    g = build_regression()
    history = g.fit(x, y, epochs=2, batch_size=40, validation_data=(x, y), verbose=0, callbacks=[
        gn.callbacks.LambdaCallback(**keras_style_hooks(calls, batch="batch")),
        gn.callbacks.LambdaCallback(on_train_end=lambda logs: ends.append(dict(logs)))])
    epoch = [("batch_begin", 0), ("batch_end", 0, ["loss"]), ("batch_begin", 1), ("batch_end", 1, ["loss"])]
    assert calls == [
        ("train_begin", []),
        ("epoch_begin", 0, []), *epoch, ("epoch_end", 0, ["loss", "val_loss"]),
        ("epoch_begin", 1, []), *epoch, ("epoch_end", 1, ["loss", "val_loss"]),
        ("train_end", ["loss", "val_loss"]),
    ]
    assert ends == [{name: values[-1] for name, values in history.history.items()}]  # the last epoch's logs


def test_lambda_callback_takes_keras_names_for_the_batch_hooks(data):
    x, y = data
    ours, keras_named = [], []
    for calls, batch in ((ours, "batch"), (keras_named, "train_batch")):
        build_regression().fit(x, y, epochs=2, batch_size=40, verbose=0,
                         callbacks=[gn.callbacks.LambdaCallback(**keras_style_hooks(calls, batch=batch))])
    assert keras_named == ours and ("batch_end", 1, ["loss"]) in ours


def test_hooks_that_cannot_take_keras_arguments_are_refused_before_training(data):
    x, y = data
    with pytest.raises(GraphError, match=r"LambdaCallback: on_train_end is called as on_train_end\(logs\), "
                                         r"as in Keras, but .*lambda.* takes \(\); write e.g. lambda logs: ..."):
        gn.callbacks.LambdaCallback(on_train_end=lambda: None)
    with pytest.raises(GraphError, match=r"on_epoch_end is called as on_epoch_end\(epoch, logs\).* takes \(epoch\)"):
        gn.callbacks.LambdaCallback(on_epoch_end=lambda epoch: None)
    with pytest.raises(GraphError, match=r"on_train_batch_end is called as on_train_batch_end\(batch, logs\)"):
        gn.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs, extra: None)  # named as given
    with pytest.raises(GraphError, match="on_train_batch_end is Keras's name for on_batch_end; give one"):
        gn.callbacks.LambdaCallback(on_train_batch_end=print, on_batch_end=print)

    class NoLogs(gn.Callback):
        def on_epoch_begin(self, epoch):
            pass

    g = build_regression()
    before = g.get_weights()
    with pytest.raises(GraphError, match=r"NoLogs: on_epoch_begin is called as on_epoch_begin\(epoch, logs\).*"
                                         r"def on_epoch_begin\(self, epoch, logs=None\)"):
        g.fit(x, y, epochs=1, verbose=0, callbacks=[NoLogs()])
    assert g.optimizer is None and same(g.get_weights(), before)  # refused before anything changed


def test_values_callbacks_add_to_the_logs_reach_the_history(data):
    x, y = data
    history = build_regression().fit(x, y, epochs=3, verbose=0, callbacks=[AddsToLogs()])
    assert history.history["epoch_squared"] == [0.0, 1.0, 4.0]
    assert list(history.history) == ["loss", "epoch_squared"]


def test_the_epoch_line_shows_what_callbacks_add(data, capsys):
    """As Keras's progress bar, which runs after the other callbacks: the
    epoch's line shows the values they added, numbers or not."""

    class Notes(gn.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["note"] = f"epoch {epoch} seen"

    x, y = data
    history = build_regression().fit(x, y, epochs=2, verbose=2, callbacks=[AddsToLogs(), Notes()])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert "epoch_squared: 1.0000" in lines[1] and "note: epoch 1 seen" in lines[1]
    assert history.history["note"] == ["epoch 0 seen", "epoch 1 seen"]


@pytest.mark.slow
def test_hooks_and_history_as_keras_calls_and_records_them(data):
    """The same Keras-style callbacks in a Keras fit and a graphnet fit: the
    same calls with the same arguments, and the same names in the History."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    x, y = data

    class KerasAddsToLogs(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["epoch_squared"] = float(epoch**2)

    theirs, ours = [], []
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(16, activation="tanh"), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    keras_history = model.fit(x, y, epochs=2, batch_size=40, validation_data=(x, y), verbose=0, shuffle=False,
                              callbacks=[keras.callbacks.LambdaCallback(**keras_style_hooks(theirs)), KerasAddsToLogs()])
    history = build_regression().fit(x, y, epochs=2, batch_size=40, validation_data=(x, y), verbose=0, shuffle=False,
                               callbacks=[gn.callbacks.LambdaCallback(**keras_style_hooks(ours)), AddsToLogs()])
    assert ours == theirs
    assert sorted(history.history) == sorted(keras_history.history)
    assert history.history["epoch_squared"] == keras_history.history["epoch_squared"]



def test_a_callback_written_for_keras_reaches_the_graph_as_self_model(data):
    """Keras's callbacks say self.model: it is the graph being trained."""

    class StopAtLoss(gn.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.model.stop_training = True
                self.lr = self.model.optimizer.learning_rate

    class KerasSetModel(gn.Callback):
        def set_model(self, model):
            self.given = model

    x, y = data
    g = build_regression()
    stop, keras_style = StopAtLoss(), KerasSetModel()
    history = g.fit(x, y, epochs=5, callbacks=[stop, keras_style], verbose=0)
    assert stop.model is g and len(history.history["loss"]) == 2 and stop.lr == g.optimizer.lr
    assert keras_style.given is g and keras_style.graph is g  # Keras's set_model is called too
    with pytest.raises(GraphError, match=r"LambdaCallback: on_train_batch_end is called as "
                                         r"on_train_batch_end\(batch, logs\)"):
        gn.callbacks.LambdaCallback(on_train_batch_end=lambda: None)


def test_compile_takes_one_loss_per_output_in_a_list_as_keras_does():
    g = gn.Graph()
    g.add_input("x", 2)
    g.add_output("a", 1)
    g.add_output("b", 2, activation="softmax", loss="categorical_crossentropy")
    g.connect("x", "a")
    g.connect("x", "b")
    g.compile(loss=["mae", "categorical_crossentropy"], loss_weights=[1.0, 0.5])
    assert (g["a"].loss.name, g["b"].loss.name) == ("mae", "categorical_crossentropy")
    with pytest.raises(GraphError, match=r"compile: loss has 1 entries for 2 outputs \['a', 'b'\]"):
        g.compile(loss=["mse"])
    with pytest.raises(GraphError, match="compile: .*binary_crossentropy"):
        g.compile(loss=["mse", "binary_crossentropy"])
    assert g["a"].loss.name == "mae"  # refused: nothing changed
    m = gn.Sequential([gn.Input(3)], seed=0)
    m.compile(loss=["mae"])  # one loss, before the last layer exists, as a string is
    m.add(gn.Dense(1))
    assert m.nodes[m.outputs[0]].loss.name == "mae"


def test_a_function_or_class_given_as_a_loss_or_activation_says_what_to_give():
    g = gn.Graph()
    g.add_input("x", 2)
    with pytest.raises(GraphError, match=r"a custom loss is a subclass of gn.losses.Loss that brings its maths and "
                                         r"its derivative"):
        g.add_output("y", 1, loss=lambda y_true, y_pred: 0.0)
    with pytest.raises(GraphError, match=r"got type: .*ReLU'>; pass an instance, ReLU\(...\)"):
        g.add_hidden("h", 2, activation=gn.activations.ReLU)
    assert list(g) == ["x"]


class Holder(gn.Callback):
    """Counts its close() calls; may raise from it."""

    def __init__(self, raises=None):
        super().__init__()
        self.closed, self.raises = 0, raises

    def close(self):
        self.closed += 1
        if self.raises is not None:
            raise self.raises


def test_a_refused_fit_closes_its_callbacks_once(data):
    """A refusal after the callbacks met the fit (a monitor never logged)
    calls close() too (only a failure once training ran did)."""
    x, y = data
    holder = Holder()
    with pytest.raises(GraphError, match="val_nope"):
        build_regression().fit(x, y, verbose=0, callbacks=[holder, gn.callbacks.EarlyStopping(monitor="val_nope")])
    assert holder.closed == 1


def test_a_close_that_raises_does_not_hide_the_fits_error_or_skip_the_others(data):
    class Fails(gn.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise RuntimeError("the user's callback failed")

    class Interrupted(BaseException):  # as KeyboardInterrupt, without stopping the test run if it escaped
        pass

    x, y = data
    first, last = Holder(raises=Interrupted()), Holder()
    with pytest.raises(RuntimeError, match="the user's callback failed"):
        build_regression().fit(x, y, epochs=2, verbose=0, callbacks=[first, Fails(), last])
    assert (first.closed, last.closed) == (1, 1)


def test_a_callback_logging_the_rate_of_a_schedule_logs_its_value(data):
    """A callback of the user's with logs_learning_rate, over an optimizer
    whose rate is a schedule: the schedule's value is logged (a raw
    TypeError came after the epoch had trained)."""

    class Watch(gn.Callback):
        logs_learning_rate = True

    x, y = data
    g = build_regression()
    schedule = gn.schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    history = g.fit(x, y, epochs=2, batch_size=40, verbose=0, optimizer=gn.optimizers.SGD(lr=schedule),
                    callbacks=[Watch()])
    assert history.history["learning_rate"] == pytest.approx([0.1 * 0.5**2, 0.1 * 0.5**4])  # after 2, 4 steps


def test_a_metric_named_like_the_logged_rate_is_refused(data):
    def learning_rate(y_true, y_pred):
        return 123.0

    x, y = data
    g = build_regression()
    weights = g.get_weights()
    with pytest.raises(GraphError, match="a metric is logged as 'learning_rate'.*LearningRateScheduler"):
        g.fit(x, y, verbose=0, metrics=[learning_rate],
              callbacks=[gn.callbacks.LearningRateScheduler(lambda epoch: 0.01)])
    assert all(np.array_equal(v, weights[k]) for k, v in g.get_weights().items())


def test_close_comes_instead_of_on_train_end_never_after_it(data):
    """A later callback's on_train_end failing: the callbacks whose
    on_train_end ran are not closed as well."""

    class Ends(Holder):
        def __init__(self, fails=False):
            super().__init__()
            self.ended, self.fails = 0, fails

        def on_train_end(self, logs=None):
            self.ended += 1
            if self.fails:
                raise RuntimeError("on_train_end failed")

    x, y = data
    first, failing, last = Ends(), Ends(fails=True), Ends()
    with pytest.raises(RuntimeError, match="on_train_end failed"):
        build_regression().fit(x, y, epochs=1, verbose=0, callbacks=[first, failing, last])
    assert [(c.ended, c.closed) for c in (first, failing, last)] == [(1, 0), (1, 1), (0, 1)]


@pytest.mark.parametrize("distributed_tally", [False, True], ids=["tally", "merged states"])
def test_a_loss_weight_changed_mid_epoch_counts_each_batch_as_it_trained(rng, distributed_tally):
    """An edit from a callback takes effect from the next batch (SPEC 10), so
    the epoch's loss is the mean of the losses its batches trained on. It was
    recomputed at the end with the new loss weight for every batch."""
    from graphnet.inference import Tally, merge_states

    x = rng.normal(size=(40, 3))
    y = {"r": rng.normal(size=40), "c": (rng.random(40) > 0.5) * 1.0}
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 3)
    g.add_output("r", 1)
    g.add_output("c", 1, activation="sigmoid", loss="binary_crossentropy", loss_weight=0.5)
    g.connect("x", "r")
    g.connect("x", "c")
    seen = []

    def bump(batch, logs):
        seen.append(logs["loss"])
        if batch == 1:
            g["r"].loss_weight, g["c"].loss_weight = 0.0, 3.0

    history = g.fit(x, y, epochs=1, batch_size=10, shuffle=False, verbose=0, optimizer=gn.optimizers.SGD(lr=0.01),
                    callbacks=[gn.callbacks.LambdaCallback(on_batch_end=bump)])
    assert history.history["loss"][0] == pytest.approx(np.mean(seen), rel=1e-12)
    assert history.history["loss"][0] != pytest.approx(3.0 * history.history["c_loss"][0], rel=1e-3)
    # the same sums travel in a tally's state (a dask chunk's, a rank's)
    first, second = Tally(g, {}), Tally(g, {})
    first.add(2, {"r": 1.0, "c": 2.0})
    g["c"].loss_weight = 1.0
    second.add(2, {"r": 1.0, "c": 2.0})
    if distributed_tally:
        merged = Tally(g, {})
        merged.merge(merge_states(first.state(), second.state()))
    else:
        merged = first
        merged.merge(second.state())
    assert merged.loss() == pytest.approx((0.0 * 1.0 + 3.0 * 2.0 + 0.0 * 1.0 + 1.0 * 2.0) / 2)


def test_learning_rate_scheduler_refuses_a_schedule_that_is_not_callable():
    with pytest.raises(gn.GraphError, match="LearningRateScheduler: schedule must be callable, got 5"):
        gn.callbacks.LearningRateScheduler(5)


def test_lambda_callback_refuses_a_hook_that_is_not_callable():
    with pytest.raises(gn.GraphError, match="LambdaCallback: on_epoch_end must be callable, got 5"):
        gn.callbacks.LambdaCallback(on_epoch_end=5)


def test_backup_and_restore_starts_with_no_graph_and_empty_params(tmp_path):
    cb = gn.callbacks.BackupAndRestore(tmp_path / "backup")
    assert cb.graph is None and cb.params == {}


def test_reduce_lr_on_plateau_refuses_factor_one():
    with pytest.raises(gn.GraphError, match=r"ReduceLROnPlateau: factor must be in \(0, 1\), got 1.0"):
        gn.callbacks.ReduceLROnPlateau(factor=1.0)


def test_reduce_lr_on_plateau_at_min_lr_says_nothing_and_changes_nothing(capsys):
    g = gn.Graph(seed=0)
    g.add_input("x", 2)
    g.add_output("y", 1)
    g.connect("x", "y")
    g.compile(optimizer=gn.optimizers.SGD(lr=0.01))
    cb = gn.callbacks.ReduceLROnPlateau(monitor="loss", min_delta=1e9, patience=1, min_lr=0.01, verbose=1)
    g.fit(np.ones((4, 2)), np.ones((4, 1)), epochs=3, verbose=0, callbacks=[cb])
    assert "reducing learning rate" not in capsys.readouterr().out
    assert cb.wait == 2  # the first epoch improves on inf; the next two wait
