"""Callbacks that write files: BackupAndRestore (killed with SIGKILL and
restarted, bit for bit), ModelCheckpoint's weights-only files and
``load_weights``, TensorBoard's event files read back with TensorBoard's reader."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import build_regression, regression_data

import graphnet as gn
from graphnet import GraphError, ModelFileError

HERE = Path(__file__).resolve().parent


@pytest.fixture
def data(rng):
    return regression_data(rng)


def _run_backup_fit(backup, out, epochs):
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    return subprocess.Popen([sys.executable, str(HERE / "backup_fit.py"), str(backup), str(out), str(epochs)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


@pytest.mark.slow
def test_a_fit_killed_at_random_moments_resumes_to_the_uninterrupted_weights(tmp_path):
    epochs = 60
    whole = _run_backup_fit("-", tmp_path / "whole.npz", epochs)
    assert whole.stdout.readline() == b"ready\n"
    started = time.perf_counter()
    assert whole.wait(timeout=120) == 0, whole.stderr.read().decode()
    duration = time.perf_counter() - started  # of the fit itself, on this machine as loaded now
    moments = np.random.default_rng(7)
    backup, out = tmp_path / "backup", tmp_path / "resumed.npz"
    kills, resumed_from = 0, []
    while True:
        resumed_from.append(len(list(backup.glob("epoch-*.weights.gnet"))) if backup.exists() else 0)
        run = _run_backup_fit(backup, out, epochs)
        assert run.stdout.readline() == b"ready\n"
        if kills < 6:
            try:
                run.wait(timeout=moments.uniform(0.1, 0.8) * duration)
            except subprocess.TimeoutExpired:
                run.send_signal(signal.SIGKILL)
                run.wait()
                kills += 1
                continue
        assert run.wait(timeout=120) == 0, run.stderr.read().decode()
        break
    assert kills >= 3 and any(resumed_from), (kills, resumed_from)  # some restarts did resume
    a, b = np.load(tmp_path / "whole.npz"), np.load(out)
    assert sorted(a.files) == sorted(b.files)
    for key in a.files:
        assert a[key].tobytes() == b[key].tobytes(), key
    assert not list(backup.glob("epoch-*")), "the backup is removed when training ends"


def test_backup_resumes_after_the_last_finished_epoch(tmp_path, data):
    x, y = data
    whole = build_regression(dtype="float64")
    whole.fit(x, y, epochs=5, batch_size=16, verbose=0)
    g = build_regression(dtype="float64")
    stop = gn.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: epoch == 3 and (_ for _ in ()).throw(
        KeyboardInterrupt))
    backup = gn.callbacks.BackupAndRestore(tmp_path / "b")
    with pytest.raises(KeyboardInterrupt):
        g.fit(x, y, epochs=5, batch_size=16, verbose=0, callbacks=[backup, stop])
    assert [p.name for p in backup.backups()[-1:] for p in [p[1]]] == ["epoch-000003.weights.gnet"]
    fresh = build_regression(dtype="float64")  # a new process would build the graph again
    history = fresh.fit(x, y, epochs=5, batch_size=16, verbose=0, callbacks=[backup])
    assert history.epoch == [3, 4]
    for key, value in whole.get_weights().items():
        np.testing.assert_array_equal(fresh.get_weights()[key], value)
    assert backup.backups() == []



@pytest.mark.parametrize("backup_first", [True, False])
def test_the_backup_holds_what_every_callback_did_at_the_epoch_end(tmp_path, data, backup_first):
    """A rate cut by a callback listed after BackupAndRestore is in that
    epoch's backup, and a fit killed before every on_epoch_end ran resumes
    at that epoch: bit for bit either way."""
    x, y = data
    halve = gn.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: setattr(
        halve.graph.optimizer, "lr", halve.graph.optimizer.lr / 2))

    def fit(g, *more, backup=None):
        cbs = [halve, *more] if backup is None else ([backup, halve, *more] if backup_first
                                                     else [halve, *more, backup])
        return g.fit(x, y, epochs=4, batch_size=16, verbose=0, optimizer=gn.optimizers.SGD(lr=0.1), callbacks=cbs)

    whole = build_regression(dtype="float64")
    fit(whole)
    for kill, resumed_at in [("on_epoch_begin", 2), ("on_epoch_end", 1)]:
        cut = gn.callbacks.LambdaCallback(**{kill: lambda epoch, logs: epoch == resumed_at and (
            _ for _ in ()).throw(KeyboardInterrupt)})
        backup = gn.callbacks.BackupAndRestore(tmp_path / kill)
        with pytest.raises(KeyboardInterrupt):
            fit(build_regression(dtype="float64"), cut, backup=backup)
        fresh = build_regression(dtype="float64")
        assert fit(fresh, backup=backup).epoch == list(range(resumed_at, 4))
        assert fresh.optimizer.lr == whole.optimizer.lr == 0.1 / 16
        for key, value in whole.get_weights().items():
            np.testing.assert_array_equal(fresh.get_weights()[key], value)


class KillInEpoch(gn.callbacks.Callback):
    """Stands for the process dying after the second batch of epoch ``epoch``."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch, self.now = epoch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.now = epoch

    def on_batch_end(self, batch, logs=None):
        if self.now == self.epoch and batch == 1:
            raise KeyboardInterrupt


@pytest.mark.parametrize("trained_before", [False, True])
def test_a_fit_killed_in_its_first_epoch_restarts_on_the_same_graph_bit_for_bit(tmp_path, data, trained_before):
    """No epoch has finished, so the backup is the starting state (the
    optimizer's state from an earlier fit included): a restart on the same,
    half-trained graph object starts over from it."""
    x, y = data

    def build():
        g = build_regression(dtype="float64")
        if trained_before:
            g.fit(x, y, epochs=1, batch_size=16, verbose=0)
        return g

    whole = build()
    whole.fit(x, y, epochs=3, batch_size=16, verbose=0)
    g = build()
    backup = gn.callbacks.BackupAndRestore(tmp_path / "b")
    with pytest.raises(KeyboardInterrupt):
        g.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[backup, KillInEpoch(0)])
    assert [path.name for _, path in backup.backups()] == ["epoch-000000.weights.gnet"]
    history = g.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[backup])
    assert history.epoch == [0, 1, 2]
    for key, value in whole.get_weights().items():
        assert g.get_weights()[key].tobytes() == value.tobytes(), key
    assert g.optimizer.iterations == whole.optimizer.iterations
    assert backup.backups() == []  # a fit that ends normally removes its backup
    kept = gn.callbacks.BackupAndRestore(tmp_path / "k", delete_checkpoint=False)
    build().fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[kept])
    assert [path.name for _, path in kept.backups()] == ["epoch-000002.weights.gnet"]
    build().fit(x, y, epochs=2, initial_epoch=2, verbose=0,
                callbacks=[gn.callbacks.BackupAndRestore(tmp_path / "z", False)])
    assert list((tmp_path / "z").iterdir()) == []  # no epoch ran: no starting state left behind


def test_save_weights_only_checkpoints_load_into_the_same_architecture(tmp_path, data):
    x, y = data
    g = build_regression(dtype="float64")
    checkpoint = gn.callbacks.ModelCheckpoint(tmp_path / "w-{epoch}.weights.gnet", monitor="loss",
                                              save_best_only=False, save_weights_only=True, verbose=1)
    g.fit(x, y, epochs=2, callbacks=[checkpoint], verbose=0)
    assert checkpoint.saved == [str(tmp_path / "w-1.weights.gnet"), str(tmp_path / "w-2.weights.gnet")]
    with pytest.raises(ModelFileError, match="a graphnet weights file .*holds no architecture.*load_weights"):
        gn.load(tmp_path / "w-2.weights.gnet")  # no architecture in it
    other = build_regression(seed=5, dtype="float64")
    other.load_weights(tmp_path / "w-2.weights.gnet")
    np.testing.assert_array_equal(other.predict(x), g.predict(x))
    assert other.optimizer.iterations == g.optimizer.iterations  # the optimizer state came along
    # a model file and a plain .npz load the same way
    g.save(tmp_path / "m.gnet")
    np.savez(tmp_path / "w.npz", **g.get_weights())
    for name in ("m.gnet", "w.npz"):
        again = build_regression(seed=9, dtype="float64")
        again.load_weights(tmp_path / name)
        np.testing.assert_array_equal(again.predict(x), g.predict(x))


def test_load_weights_refuses_what_does_not_fit_and_changes_nothing(tmp_path, data):
    x, y = data
    g = build_regression(dtype="float64")
    g.fit(x, y, epochs=1, verbose=0)
    g.save_weights(tmp_path / "w.weights.gnet")
    wider = gn.Graph(seed=0, dtype="float64")
    wider.add_input("x", 3)
    wider.add_hidden("h", 17, activation="tanh")
    wider.add_output("y", 1)
    wider.connect("x", "h")
    wider.connect("h", "y")
    before = wider.get_weights()
    with pytest.raises(ModelFileError, match="w.weights.gnet"):
        wider.load_weights(tmp_path / "w.weights.gnet")
    for key, value in before.items():
        np.testing.assert_array_equal(wider.get_weights()[key], value)
    single = build_regression()  # float32
    with pytest.raises(ModelFileError, match=r"its weights are 'float64' but graph 'reg' is float32"):
        single.load_weights(tmp_path / "w.weights.gnet")
    (tmp_path / "junk.weights.gnet").write_bytes(b"PK\x03\x04 not a zip at all")
    with pytest.raises(ModelFileError, match="junk"):
        g.load_weights(tmp_path / "junk.weights.gnet")
    with pytest.raises(ModelFileError, match="no such file"):
        g.load_weights(tmp_path / "missing.weights.gnet")


def test_tensorboard_writes_scalars_tensorboard_reads_per_output(tmp_path, rng):
    pytest.importorskip("tensorboardX")
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    g = gn.Graph(seed=0)
    g.add_input("x", 4)
    g.add_hidden("h", 8)
    g.add_output("a", 1, activation="sigmoid", loss="binary_crossentropy")
    g.add_output("b", 2)
    for src, dst in (("x", "h"), ("h", "a"), ("h", "b")):
        g.connect(src, dst)
    x = rng.normal(size=(64, 4))
    y = {"a": (x[:, 0] > 0).astype(float), "b": x[:, :2]}
    board = gn.callbacks.TensorBoard(tmp_path / "logs", update_freq=2)
    history = g.fit(x, y, epochs=3, batch_size=16, metrics={"a": ["accuracy", "auc"], "b": ["r2"]},
                    validation_split=0.25, callbacks=[board], verbose=0)
    runs = {}
    for run in ("train", "validation"):
        reader = event_accumulator.EventAccumulator(str(tmp_path / "logs" / run))
        reader.Reload()
        runs[run] = {tag: [(e.step, e.value) for e in reader.Scalars(tag)] for tag in reader.Tags()["scalars"]}
    for key, values in history.history.items():
        run, tag = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
        steps, read = zip(*runs[run][f"epoch_{tag}"])
        assert steps == (0, 1, 2)
        np.testing.assert_allclose(read, values, rtol=1e-6)  # float32 in the event file
    assert {"epoch_a_loss", "epoch_b_loss", "epoch_a_auc", "epoch_b_r2", "epoch_learning_rate",
            "batch_loss"} <= set(runs["train"])
    assert [step for step, _ in runs["train"]["batch_loss"]] == [2, 4, 6, 8]  # 3 batches of 16 a epoch


def test_tensorboard_writes_one_learning_rate_per_epoch_the_one_logged(tmp_path, rng):
    """With a callback that logs the rate (ReduceLROnPlateau), TensorBoard
    writes it once per epoch: the rate the epoch trained with. It wrote the
    optimizer's rate too, after the reduction, under the same tag."""
    from tensorboard.backend.event_processing import event_accumulator

    g = build_regression()
    x, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    reduce = gn.callbacks.ReduceLROnPlateau(monitor="loss", patience=0, factor=0.5, min_delta=1e9)
    history = g.fit(x, y, epochs=3, optimizer=gn.optimizers.SGD(lr=0.1), verbose=0,
                    callbacks=[reduce, gn.callbacks.TensorBoard(tmp_path / "logs")])
    reader = event_accumulator.EventAccumulator(str(tmp_path / "logs" / "train"))
    reader.Reload()
    written = [(e.step, e.value) for e in reader.Scalars("epoch_learning_rate")]
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.05])
    assert [step for step, _ in written] == [0, 1, 2]
    np.testing.assert_allclose([value for _, value in written], history.history["learning_rate"], rtol=1e-6)


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, RuntimeError])
def test_a_fit_that_fails_closes_tensorboards_files(tmp_path, rng, interrupt):
    """A fit ended by an exception calls each callback's close (on_train_end
    is not called, as in Keras): TensorBoard's finished epochs reach the disk
    and its writer threads end. They stayed queued in a writer never closed."""
    import threading

    from tensorboard.backend.event_processing import event_accumulator

    class Stop(gn.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise interrupt("stop")

    def writers() -> int:
        return len(threading.enumerate())

    g = build_regression()
    x, y = rng.normal(size=(32, 3)), rng.normal(size=32)
    threads = writers()
    with pytest.raises(interrupt):
        g.fit(x, y, epochs=5, verbose=0, callbacks=[gn.callbacks.TensorBoard(tmp_path / "logs"), Stop()])
    assert writers() == threads
    reader = event_accumulator.EventAccumulator(str(tmp_path / "logs" / "train"))
    reader.Reload()
    assert [e.step for e in reader.Scalars("epoch_loss")] == [0, 1]


def test_tensorboard_keeps_nothing_after_its_fits(tmp_path, rng):
    """Each fit's writers were held for the life of the process (an atexit
    hook per writer in tensorboardX's SummaryWriter), with a thread and a
    queue each: about 2 KB and 40 objects left behind by every fit."""
    import atexit
    import threading
    import weakref

    g = build_regression()
    x, y = rng.normal(size=(16, 3)), rng.normal(size=16)
    board = gn.callbacks.TensorBoard(tmp_path / "logs", update_freq=1)
    g.fit(x, y, epochs=1, validation_split=0.25, verbose=0, callbacks=[board])
    hooks, threads = atexit._ncallbacks(), len(threading.enumerate())
    for _ in range(5):
        g.fit(x, y, epochs=1, validation_split=0.25, verbose=0, callbacks=[board])
    assert atexit._ncallbacks() == hooks and len(threading.enumerate()) == threads
    assert len(list((tmp_path / "logs" / "train").iterdir())) == 6
    gone = weakref.ref(board)
    del board
    gc.collect()
    assert gone() is None


def test_two_fits_within_a_second_keep_both_event_files(tmp_path, rng):
    """Each writer names its file after the second it starts and the host:
    a second fit (resumed, or in a loop) within that second wrote over the
    first fit's file. Each writer now has a name of its own."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    g = build_regression()
    x, y = rng.normal(size=(16, 3)), rng.normal(size=16)
    for epochs, initial in ((2, 0), (4, 2)):
        g.fit(x, y, epochs=epochs, initial_epoch=initial, verbose=0,
              callbacks=[gn.callbacks.TensorBoard(tmp_path / "logs")])
    files = sorted((tmp_path / "logs" / "train").iterdir())
    steps = sorted(e.step for f in files for e in EventFileLoader(str(f)).Load()
                   for v in e.summary.value if v.tag == "epoch_loss")
    assert len(files) == 2 and steps == [0, 1, 2, 3]


def test_fits_resumed_into_one_log_dir_are_read_back_in_order(tmp_path, rng):
    """TensorBoard reads a run's files in the order of their names: files
    made within one second were named at random, so a fit resumed epoch by
    epoch came back with its steps shuffled ([2, 1, 3, 0])."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    g = build_regression()
    x, y = rng.normal(size=(16, 3)), rng.normal(size=16)
    for epoch in range(6):
        g.fit(x, y, epochs=epoch + 1, initial_epoch=epoch, verbose=0,
              callbacks=[gn.callbacks.TensorBoard(tmp_path / "logs")])
    reader = EventAccumulator(str(tmp_path / "logs" / "train"))
    reader.Reload()
    assert [e.step for e in reader.Scalars("epoch_loss")] == list(range(6))


def test_callback_arguments_are_checked(tmp_path):
    with pytest.raises(GraphError, match="update_freq must be 'epoch' or a positive integer"):
        gn.callbacks.TensorBoard(tmp_path, update_freq=0)
    (tmp_path / "file").write_text("x")
    with pytest.raises(GraphError, match="is a file, not a folder"):
        gn.callbacks.BackupAndRestore(tmp_path / "file")
    with pytest.raises(GraphError, match="save_weights_only must be True or False"):
        gn.callbacks.ModelCheckpoint(tmp_path / "m.gnet", save_weights_only="yes")
    with pytest.raises(GraphError, match="verbose must be 0 or 1"):
        gn.callbacks.EarlyStopping(verbose=2)


def test_a_damaged_weights_file_is_refused_whole(tmp_path, data):
    x, y = data
    g = build_regression(dtype="float64")
    g.fit(x, y, epochs=1, verbose=0)
    raw = g.save_weights(tmp_path / "w.weights.gnet").read_bytes()
    target = build_regression(seed=4, dtype="float64")
    before, optimizer = target.get_weights(), target.optimizer
    cuts = np.random.default_rng(0).integers(1, len(raw), 25)
    for i, cut in enumerate([*cuts, len(raw) - 1]):
        path = tmp_path / f"cut{i}.weights.gnet"
        damaged = bytearray(raw[:cut]) if i % 2 else bytearray(raw)
        if not i % 2:
            damaged[cut] ^= 0xFF  # one flipped byte
        path.write_bytes(bytes(damaged))
        try:
            target.load_weights(path)
        except ModelFileError as exc:
            assert str(path) in str(exc)
            for key, value in before.items():
                np.testing.assert_array_equal(target.get_weights()[key], value)
            assert target.optimizer is optimizer
        else:  # a flipped byte in stored data can still be a valid file; then it loaded whole
            before, optimizer = target.get_weights(), target.optimizer


def test_non_finite_weights_in_a_file_change_nothing(tmp_path, data):
    x, y = data
    g = build_regression(dtype="float64")
    g.fit(x, y, epochs=1, verbose=0)
    weights = g.get_weights()
    weights["h.bias"][0] = np.nan
    np.savez(tmp_path / "nan.npz", **weights)
    target = build_regression(seed=4, dtype="float64")
    before = target.get_weights()
    with pytest.raises(ModelFileError, match="nan.npz"):
        target.load_weights(tmp_path / "nan.npz")
    for key, value in before.items():
        np.testing.assert_array_equal(target.get_weights()[key], value)


def test_a_fit_from_a_later_initial_epoch_killed_at_once_resumes_at_that_epoch(tmp_path, data):
    """The starting state's backup is named epoch 0 whatever the first epoch
    is: restored, it leaves the start to initial_epoch, so the restart runs
    epochs 2 and 3 as the uninterrupted fit does, not 0 to 3."""
    x, y = data
    whole = build_regression(dtype="float64")
    whole.fit(x, y, epochs=4, initial_epoch=2, batch_size=16, verbose=0)
    g = build_regression(dtype="float64")
    backup = gn.callbacks.BackupAndRestore(tmp_path / "b")
    with pytest.raises(KeyboardInterrupt):
        g.fit(x, y, epochs=4, initial_epoch=2, batch_size=16, verbose=0, callbacks=[backup, KillInEpoch(2)])
    history = g.fit(x, y, epochs=4, initial_epoch=2, batch_size=16, verbose=0, callbacks=[backup])
    assert history.epoch == [2, 3]
    for key, value in whole.get_weights().items():
        assert g.get_weights()[key].tobytes() == value.tobytes(), key


def test_a_backup_the_graph_cannot_take_is_refused_before_fit_changes_anything(tmp_path, data):
    """A restart on a graph edited since the kill: the backup's shapes differ.
    The refusal comes before the optimizer is installed or an input adapted."""
    x, y = data
    backup = gn.callbacks.BackupAndRestore(tmp_path / "b")
    with pytest.raises(KeyboardInterrupt):
        build_regression(dtype="float64").fit(x, y, epochs=3, batch_size=16, verbose=0,
                                              callbacks=[backup, KillInEpoch(1)])
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 3, normalize=True)
    g.add_hidden("h", 7, activation="tanh")
    g.add_output("y", 1)
    g.connect("x", "h")
    g.connect("h", "y")
    before = g.get_weights()
    with pytest.raises(gn.ModelFileError, match="expected shape"):
        g.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[gn.callbacks.BackupAndRestore(tmp_path / "b")])
    assert g.optimizer is None and g.nodes["x"].mean is None
    assert all(np.array_equal(before[k], v) for k, v in g.get_weights().items())


def test_csv_append_refuses_a_file_that_is_not_text_and_ends_the_last_row_it_keeps(tmp_path, data):
    x, y = data
    log = tmp_path / "log.csv"
    log.write_bytes(b"\xff\xfe not a log\n")
    g = build_regression()
    before = g.get_weights()
    with pytest.raises(GraphError, match=r"CSVLogger: .*log.csv' is not UTF-8 text \(byte 0"):
        g.fit(x, y, epochs=1, verbose=0, callbacks=[gn.callbacks.CSVLogger(log, append=True)])
    assert log.read_bytes() == b"\xff\xfe not a log\n"  # refused before training: nothing changed
    assert all((before[k] == v).all() for k, v in g.get_weights().items())
    log.write_text("epoch,loss\n0,1.5")  # a last row without its newline
    g.fit(x, y, epochs=1, verbose=0, callbacks=[gn.callbacks.CSVLogger(log, append=True)])
    rows = log.read_text().splitlines()
    assert rows[:2] == ["epoch,loss", "0,1.5"] and len(rows) == 3 and rows[2].count(",") == 1
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.csv")
        with pytest.raises(ModelFileError, match="is a pipe, not a regular file"):  # not a wait for a writer
            g.fit(x, y, epochs=1, verbose=0, callbacks=[gn.callbacks.CSVLogger(tmp_path / "pipe.csv", append=True)])


_TENSORBOARD_ON_A_FULL_DISK = """
import os, resource, signal, sys
import numpy as np
import graphnet as gn
os.chdir(sys.argv[1])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
g = gn.Sequential([gn.Input(4), gn.Dense(1)], seed=0)
x, y = np.random.default_rng(0).normal(size=(16, 4)), np.zeros((16, 1))
resource.setrlimit(resource.RLIMIT_FSIZE, (200, resource.RLIM_INFINITY))
try:
    g.fit(x, y, epochs=3, verbose=0, callbacks=[gn.callbacks.TensorBoard("logs")])
except gn.GraphError as exc:
    print(exc)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file size limits")
def test_tensorboard_on_a_full_disk_says_which_folder_it_could_not_write(tmp_path):
    pytest.importorskip("tensorboardX")
    done = subprocess.run([sys.executable, "-c", _TENSORBOARD_ON_A_FULL_DISK, str(tmp_path)], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(HERE.parent)}, timeout=120)
    assert done.stdout.startswith("TensorBoard: cannot write the events in 'logs/train': File too large"), done
    assert "Traceback" not in done.stderr, done.stderr  # closing the broken files adds no second failure


class _MoveAfterFirstEpoch(gn.callbacks.Callback):
    def __init__(self, folder):
        super().__init__()
        self.folder = folder

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            os.chdir(self.folder)


def test_one_fit_writes_all_its_files_where_it_began(tmp_path, data, monkeypatch):
    pytest.importorskip("tensorboardX")
    x, y = data
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    callbacks = [gn.callbacks.BackupAndRestore("backup"), _MoveAfterFirstEpoch(tmp_path / "b"),
                 gn.callbacks.ModelCheckpoint("c-{epoch}.gnet", monitor="loss", save_best_only=False),
                 gn.callbacks.CSVLogger("log.csv"), gn.callbacks.TensorBoard("logs")]
    build_regression().fit(x, y, epochs=3, verbose=0, callbacks=callbacks)
    assert list((tmp_path / "b").iterdir()) == []
    written = {p.relative_to(tmp_path / "a").as_posix() for p in (tmp_path / "a").rglob("*") if p.is_file()}
    assert {"c-1.gnet", "c-2.gnet", "c-3.gnet", "log.csv"} <= written
    assert not any(name.startswith("backup/") for name in written)  # removed as the fit ended normally
    assert len((tmp_path / "a" / "log.csv").read_text().splitlines()) == 4
    assert callbacks[2].saved == [str(tmp_path / "a" / f"c-{i}.gnet") for i in (1, 2, 3)]  # usable from b too


def test_callbacks_with_absolute_paths_need_no_working_folder(tmp_path, data, monkeypatch):
    x, y = data
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()  # the folder the process was started in was removed
    callbacks = [gn.callbacks.CSVLogger(tmp_path / "log.csv"), gn.callbacks.BackupAndRestore(tmp_path / "backup"),
                 gn.callbacks.ModelCheckpoint(tmp_path / "best.gnet", monitor="loss")]
    build_regression().fit(x, y, epochs=2, verbose=0, callbacks=callbacks)
    assert (tmp_path / "log.csv").is_file() and (tmp_path / "best.gnet").is_file()
    with pytest.raises(GraphError, match="CSVLogger: 'log.csv' is relative to the working folder, which no longer"):
        build_regression().fit(x, y, epochs=1, verbose=0, callbacks=[gn.callbacks.CSVLogger("log.csv")])


@pytest.mark.parametrize(("there", "message"), [
    (b"epoch;loss\n0;1.5\n", r"does not begin with a header of 'epoch' .* separated by ','"),
    (b"loss\n1.5\n", r"its first line is 'loss'"),
    (b"epoch," + b"x" * 200_000 + b"\n", r"cannot be read as CSV \(field larger than field limit"),
], ids=["separator", "not ours", "huge field"])
def test_csv_append_refuses_a_file_it_would_misread_before_training(tmp_path, data, there, message):
    x, y = data
    (tmp_path / "log.csv").write_bytes(there)
    with pytest.raises(GraphError, match=message):  # it wrote the epochs alone, dropping every value
        build_regression().fit(x, y, epochs=1, verbose=0,
                               callbacks=[gn.callbacks.CSVLogger(tmp_path / "log.csv", append=True)])
    assert (tmp_path / "log.csv").read_bytes() == there


@pytest.mark.parametrize("there", [b"epoch,loss\r\n0,1.5\r\n", b"\xef\xbb\xbfepoch,loss\n0,1.5\n", b"\n"],
                         ids=["crlf", "bom", "blank"])
def test_csv_append_keeps_what_excel_and_windows_write_in_one_form(tmp_path, data, there):
    x, y = data
    (tmp_path / "log.csv").write_bytes(there)
    build_regression().fit(x, y, epochs=2, verbose=0,
                           callbacks=[gn.callbacks.CSVLogger(tmp_path / "log.csv", append=True)])
    text = (tmp_path / "log.csv").read_bytes().decode()
    assert "\r" not in text and not text.startswith("\ufeff")
    rows = text.splitlines()
    assert rows[0] == "epoch,loss" and all(row.count(",") == 1 and row.split(",")[1] for row in rows[1:])
    assert len(rows) == (3 if there == b"\n" else 4)


def test_csv_columns_are_the_headers_and_a_name_left_out_is_said(tmp_path, data, caplog):
    x, y = data
    log = tmp_path / "log.csv"
    build_regression().fit(x, y, epochs=1, verbose=0, callbacks=[gn.callbacks.CSVLogger(log)])
    with caplog.at_level("WARNING", logger="graphnet.callbacks"):
        build_regression().fit(x, y, epochs=2, verbose=0, validation_split=0.25,
                               callbacks=[gn.callbacks.CSVLogger(log, append=True)])
    said = [r.getMessage() for r in caplog.records if "no column for" in r.getMessage()]
    assert len(said) == 1 and "'val_loss'" in said[0] and "log.csv" in said[0]  # once, not every epoch
    assert log.read_text().splitlines()[0] == "epoch,loss"
    for separator in ("\n", "\r", '"'):  # the file could not be read back as rows
        with pytest.raises(GraphError, match="separator must be one character other than a line end or a quote"):
            gn.callbacks.CSVLogger(log, separator=separator)
