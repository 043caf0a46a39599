"""gn.distributed.fit (graphnet.distributed, _cluster, _steps, _rank, _shards) on
a LocalCluster of two worker processes on loopback, started and stopped by this
module.

Every comparison is against the in-process ``fit`` on the same graph, seed
and data: same batches (each epoch's permutation comes from the graph's
random stream in both), no dropout, float64, so the weights agree to
rounding (the gradient of a batch is summed over two shares instead of one).
"""

from __future__ import annotations

import logging
import os
import signal
import threading

import numpy as np
import pytest
from conftest import build_chain, build_dag, dag_data

import graphnet as gn

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")

# dashboard_address=None still serves the scheduler's HTTP routes, on 8787 when
# it is free: a second cluster (another test run) warns and takes another port.
pytestmark = pytest.mark.filterwarnings("ignore:Port 8787 is already in use:UserWarning")

#: Generous: turns a hang into a failure, never a timing assertion.
TIMEOUT = 60.0
#: How long a nanny may take to bring a killed worker back (a new process
#: importing numpy and dask, slow on a loaded machine).
RESTART = 240.0


def _lazy(arrays: dict, rows: int) -> dict:
    return {k: da.from_array(v, chunks=(rows, *v.shape[1:])) for k, v in arrays.items()}


def _assert_same_weights(a: gn.Graph, b: gn.Graph, rtol=1e-10):
    wa, wb = a.get_weights(), b.get_weights()
    assert wa.keys() == wb.keys()
    for key in wa:
        np.testing.assert_allclose(wb[key], wa[key], rtol=rtol, atol=1e-12, err_msg=key)


def _regression(rng, rows=256):
    x = rng.normal(size=(rows, 4))
    y = np.tanh(x @ np.array([[0.5], [-1.0], [0.25], [0.75]]))
    return x, y


def _regressor(seed=0) -> gn.Sequential:
    return gn.Sequential([gn.Input(4), gn.Dense(16, activation="tanh"), gn.Dense(1)],
                         loss="mse", seed=seed, dtype="float64")


class Recorder(gn.Callback):
    """Every hook call, in order, with the logs' keys."""

    def __init__(self):
        super().__init__()
        self.events = []

    def on_train_begin(self, logs=None):
        self.events.append(("train_begin", sorted(self.params)))

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(("epoch_begin", epoch))

    def on_batch_end(self, batch, logs=None):
        self.events.append(("batch_end", batch, sorted(logs)))

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(("epoch_end", epoch, sorted(logs)))

    def on_train_end(self, logs=None):
        self.events.append(("train_end",))


# ------------------------------------------------------------------ equality
@pytest.mark.parametrize("optimizer", ["adam", {"name": "sgd", "lr": 0.1, "momentum": 0.9}])
def test_synchronous_fit_equals_single_process_fit(dask_cluster, rng, optimizer):
    _, client = dask_cluster
    x, y = dag_data(rng, 200)
    here, there = build_dag(), build_dag()
    args = dict(epochs=3, batch_size=32, metrics=["accuracy"], validation_split=0.2, verbose=0)
    expected = here.fit(x, y, optimizer=optimizer, **args)
    # four partitions of 50 rows: two per worker, split unevenly by the hold-out
    history = gn.distributed.fit(there, _lazy(x, 50), _lazy(y, 50), client, optimizer=optimizer,
                                 timeout=TIMEOUT, **args)
    _assert_same_weights(here, there)
    assert list(history.history) == list(expected.history)
    for key, values in expected.history.items():
        assert history.history[key] == pytest.approx(values, rel=1e-10), key
    assert there.optimizer.iterations == here.optimizer.iterations == 3 * 5
    assert there.rng.random() == here.rng.random()  # the same draws from the training stream


class Submitted(distributed.diagnostics.plugin.SchedulerPlugin):
    """Counts the tasks the scheduler is given (releases come later, on their own time)."""

    name = "graphnet-test-submitted"

    def __init__(self):
        self.count = 0

    def transition(self, key, start, finish, *args, **kwargs):
        self.count += (start, finish) == ("released", "waiting")


def test_steps_go_from_rank_to_rank_not_through_the_scheduler(dask_cluster, rng):
    """The ranks keep their data, graph and plan: the scheduler sees the
    tasks that load the data and open the ranks, and nothing per step; a
    step moves the sum to the client and the all-reduce among the ranks."""
    cluster, client = dask_cluster
    x, y = dag_data(rng, 160)
    counted = {}
    submitted = Submitted()
    cluster.scheduler.add_plugin(submitted)
    for epochs in (1, 5):
        g = build_dag()
        before = submitted.count
        history = gn.distributed.fit(g, _lazy(x, 40), _lazy(y, 40), client, epochs=epochs, batch_size=16,
                                     validation_split=0.25, verbose=0, timeout=TIMEOUT)
        counted[epochs] = submitted.count - before
        traffic = history.params["traffic"]
        size = g.plan.store.trainable_values.nbytes
        assert traffic.steps == epochs * 8 and traffic.workers == 2
        assert traffic.received == traffic.steps * size  # the sum, from one rank a step
        assert traffic.exchanged == traffic.steps * 2 * size  # each rank sends half, then half back
        assert traffic.sent == epochs * 120 * 4  # and the row indices (int32), nothing else
    cluster.scheduler.remove_plugin(Submitted.name)
    assert counted[5] == counted[1] > 0


def test_regularizers_count_once_per_step_and_in_the_logs(dask_cluster, rng):
    """Each share's gradient holds the penalty's; weighted by rows they add up to it once."""
    _, client = dask_cluster
    x, y = dag_data(rng, 120)

    def regularized():
        g = build_dag()
        g.synapse("a", "h1").regularizer = gn.regularizers.L2(0.05)
        g.synapse("h3", "main").regularizer = gn.regularizers.L1(0.01)
        return g

    here, there = regularized(), regularized()
    args = dict(epochs=2, batch_size=16, validation_split=0.25, verbose=0)
    expected = here.fit(x, y, **args)
    history = gn.distributed.fit(there, _lazy(x, 40), _lazy(y, 40), client, timeout=TIMEOUT, **args)
    _assert_same_weights(here, there)
    for key, values in expected.history.items():
        assert history.history[key] == pytest.approx(values, rel=1e-10), key


def test_row_weights_are_refused_for_now(rng):
    x, y = dag_data(rng, 8)
    with pytest.raises(gn.GraphError, match="sample_weight is not supported yet"):
        gn.distributed.fit(build_dag(), x, y, None, sample_weight=np.ones(8))
    with pytest.raises(gn.GraphError, match="class_weight is not supported yet"):
        gn.distributed.fit(build_dag(), x, y, None, class_weight={"aux": {0: 2.0}})


def test_validation_data_and_unshuffled_numpy_data(dask_cluster, rng):
    _, client = dask_cluster
    x, y = dag_data(rng, 90)
    xv, yv = dag_data(rng, 31)
    here, there = build_dag(), build_dag()
    args = dict(epochs=2, batch_size=16, shuffle=False, validation_data=(xv, yv), verbose=0)
    expected = here.fit(x, y, **args)
    history = gn.distributed.fit(there, x, y, client, timeout=TIMEOUT,
                                 **{**args, "validation_data": (_lazy(xv, 8), yv)})
    _assert_same_weights(here, there)
    for key, values in expected.history.items():
        assert history.history[key] == pytest.approx(values, rel=1e-10), key
    assert history.params["workers"] == 2 and history.params["rows"] == 90


def test_each_callback_is_asked_once_and_trains_with_the_clusters_params(dask_cluster, rng):
    """set_params is called once, before anything changes; the steps, rows
    and workers join the same params once the cluster holds the data."""

    class Asked(gn.Callback):
        def __init__(self):
            super().__init__()
            self.asked, self.at_begin = 0, None

        def set_params(self, params):
            super().set_params(params)
            self.asked += 1

        def on_train_begin(self, logs=None):
            self.at_begin = dict(self.params)

    _, client = dask_cluster
    x, y = dag_data(rng, 90)
    asked = Asked()
    history = gn.distributed.fit(build_dag(), x, y, client, timeout=TIMEOUT, epochs=1, batch_size=16,
                                 validation_split=0.2, callbacks=[asked], verbose=0)
    assert asked.asked == 1
    assert {k: asked.at_begin[k] for k in ("epochs", "steps", "rows", "workers")} == {
        "epochs": 1, "steps": 5, "rows": 72, "workers": 2}
    assert asked.at_begin == {k: v for k, v in history.params.items()}


def test_the_clusters_training_metrics_are_counted_on_the_predictions(dask_cluster, rng):
    """A worker counted its metrics on the activations after backward had
    written deltas over them (sigmoid under mse); with lr=0 the epoch's
    metrics are evaluate's."""
    _, client = dask_cluster
    x = rng.normal(size=(40, 3))
    y = rng.normal(size=(40, 2))
    g = gn.Graph(seed=0)
    g.add_input("x", 3)
    g.add_output("y", 2, activation="sigmoid", loss="mse")
    g.connect("x", "y")
    expected = g.evaluate(x, y, metrics=["mse", "mae"])
    history = gn.distributed.fit(g, x, y, client, timeout=TIMEOUT, epochs=1, batch_size=40,
                                 optimizer=gn.optimizers.SGD(lr=0.0), metrics=["mse", "mae"], verbose=0)
    for key in ("loss", "mse", "mae"):
        assert history.history[key][0] == pytest.approx(expected[key], rel=1e-6), key


def test_soft_targets_under_a_metric_that_reads_labels_are_refused_before_any_work(dask_cluster, rng):
    """As Graph.fit: a sigmoid output's targets that are not 0 or 1, under
    accuracy (training or validation arrays), are refused before training
    (the cluster trained an epoch, then failed on its workers)."""
    _, client = dask_cluster
    x = rng.normal(size=(8, 3))
    y = np.array([0, 1, 0, 1, 0, 1, 1, 0.0])
    g = gn.Graph(seed=0)
    g.add_input("x", 3)
    g.add_output("y", 1, activation="sigmoid", loss="binary_crossentropy")
    g.connect("x", "y")
    before = g.get_weights()
    for targets, validation, where in ((y * 0.9, None, "distributed.fit"),
                                       (y, (x, y * 0.9), "distributed.fit: validation_data")):
        with pytest.raises(gn.ShapeError, match=rf"^{where}: output 'y': metric 'accuracy': reads the targets "
                                                r".* row 1 is 0\.9; "):
            gn.distributed.fit(g, x, targets, client, timeout=TIMEOUT, epochs=1, metrics=["accuracy"],
                               validation_data=validation, verbose=0)
    assert g.optimizer is None and all(np.array_equal(v, g.get_weights()[k]) for k, v in before.items())

def test_a_refused_distributed_fit_closes_its_callbacks_once(dask_cluster, rng):
    class Holder(gn.Callback):
        closed = 0

        def close(self):
            self.closed += 1

    _, client = dask_cluster
    x, y = dag_data(rng, 40)
    holder = Holder()
    with pytest.raises(gn.GraphError, match="val_nope"):
        gn.distributed.fit(build_dag(), x, y, client, timeout=TIMEOUT, epochs=1, verbose=0,
                           callbacks=[holder, gn.callbacks.EarlyStopping(monitor="val_nope")])
    assert holder.closed == 1
    with pytest.raises(gn.ShapeError):  # refused while the cluster loads the data
        gn.distributed.fit(build_dag(), x, {k: v[:-1] for k, v in y.items()}, client, timeout=TIMEOUT, epochs=1,
                           verbose=0, callbacks=[holder])
    assert holder.closed == 2


class FailsOnSentinel(gn.losses.Loss):
    """mse, whose gradient raises on a batch holding the target 999: on the
    one rank whose share holds that row."""

    name = "fails_on_sentinel"

    def value(self, y, a):
        return ((a - y) ** 2).mean(axis=1)

    def gradient(self, y, a):
        if (y == 999).any():
            raise RuntimeError("the user's loss failed")
        return 2 * (a - y) / a.shape[1]


def test_a_users_error_on_one_rank_ends_the_fit_at_once_naming_it(dask_cluster, rng):
    """One rank raising in user code (a custom loss) while its peer waits on
    the gradient exchange: the client answers with that error at once. It
    waited on the peer until the timeout, and said only 'no answer'."""
    _, client = dask_cluster
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 3)
    g.add_output("y", 1, loss=FailsOnSentinel())
    g.connect("x", "y")
    x = rng.normal(size=(32, 3))
    y = x[:, :1].copy()
    y[-1] = 999.0  # in the last partition: one rank's share
    with pytest.raises(gn.TrainingError, match=r"rank \d .* failed: RuntimeError: the user's loss failed"):
        gn.distributed.fit(g, x, y, client, timeout=TIMEOUT, epochs=1, batch_size=32, shuffle=False, verbose=0)
    assert np.isfinite(g.predict(x)).all()
    g.fit(x[:-1], y[:-1], epochs=1, verbose=0)  # the graph trains on


def test_a_frame_is_bound_by_column_names_as_in_fit(dask_cluster, rng):
    """A frame whose columns come in another order, with an extra column:
    fit binds them by name and ignores the extra, and so does distributed.fit
    (it read the frame by position)."""
    pd = pytest.importorskip("pandas")
    _, client = dask_cluster
    frame = pd.DataFrame({"b": rng.normal(size=40), "extra": rng.normal(size=40), "a": 3 + rng.normal(size=40)})
    y = pd.DataFrame({"y": frame["a"] - frame["b"]})

    def build():
        g = gn.Graph(seed=0, dtype="float64")
        g.add_input("x", columns=["a", "b"])
        g.add_output("y", 1)
        g.connect("x", "y")
        return g

    here, there = build(), build()
    here.fit(frame, y, epochs=2, batch_size=8, verbose=0)
    gn.distributed.fit(there, frame, y, client, epochs=2, batch_size=8, verbose=0, timeout=TIMEOUT)
    _assert_same_weights(here, there)


def test_inputs_that_transform_their_data_are_refused_by_name(rng):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"city": ["a", "b", "c", "a"] * 5, "age": rng.normal(size=20)})
    g = gn.Graph(seed=0)
    g.add_input("city", categories="adapt")
    g.add_input("age", normalize=True)
    g.add_output("y", 1)
    g.connect(["city", "age"], "y")
    with pytest.raises(gn.GraphError, match=r"distributed\.fit: inputs \['city', 'age'\] transform their data .* "
                                            r"train this graph with its own fit"):
        gn.distributed.fit(g, frame, np.zeros(20), None, verbose=0)
    assert not g.nodes["city"].adapted and g.optimizer is None


def test_dropout_runs_are_reproducible(dask_cluster, rng):
    _, client = dask_cluster
    x, y = _regression(rng, 128)

    def model():
        return gn.Sequential([gn.Input(4), gn.Dense(16, activation="relu", dropout=0.3), gn.Dense(1)],
                             loss="mse", seed=3, dtype="float64")

    a, b = model(), model()
    for g in (a, b):
        gn.distributed.fit(g, _lazy({"x": x}, 32)["x"], y, client, epochs=2, batch_size=32, verbose=0,
                           timeout=TIMEOUT)
    for key, value in a.get_weights().items():
        np.testing.assert_array_equal(b.get_weights()[key], value)


# ---------------------------------------------------------- loop and callbacks
def test_callbacks_history_progress_and_checkpoints_behave_as_in_fit(dask_cluster, rng, tmp_path, capsys):
    _, client = dask_cluster
    x, y = dag_data(rng, 96)
    here, there = build_dag(), build_dag()
    runs = {}
    for name, g, train in (("here", here, None), ("there", there, gn.distributed.fit)):
        recorder = Recorder()
        checkpoint = gn.ModelCheckpoint(tmp_path / f"{name}-{{epoch}}.gnet", monitor="loss",
                                        save_best_only=False)
        stopper = gn.EarlyStopping(monitor="loss", patience=0, min_delta=10.0, restore_best_weights=False)
        callbacks = [recorder, checkpoint, stopper]
        if train is None:
            history = g.fit(x, y, epochs=5, batch_size=24, callbacks=callbacks, verbose=2)
        else:
            history = train(g, x, y, client, epochs=5, batch_size=24, callbacks=callbacks, verbose=2,
                            timeout=TIMEOUT)
        runs[name] = (recorder.events, checkpoint.saved, history, capsys.readouterr().out)
    (events, saved, history, out), (d_events, d_saved, d_history, d_out) = runs["here"], runs["there"]
    assert history.epoch == d_history.epoch == [0, 1]  # EarlyStopping stopped both after epoch 2
    ignore = {"traffic", "sync_every", "workers"}
    assert [e if e[0] != "train_begin" else ("train_begin", [k for k in e[1] if k not in ignore])
            for e in d_events] == events
    assert len(d_saved) == len(saved) == 2
    _assert_same_weights(gn.load(saved[-1]), gn.load(d_saved[-1]))  # weights and optimizer state
    assert gn.load(d_saved[-1]).optimizer.iterations == 2 * 4
    assert d_out.count("Epoch ") == out.count("Epoch ") == 2


def test_an_edit_from_a_callback_takes_effect_on_the_workers(dask_cluster, rng):
    _, client = dask_cluster
    x, y = dag_data(rng, 64)

    class Freeze(gn.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                self.graph.synapse("a", "h1").trainable = False
                self.graph["h3"].dropout = 0.0  # an edit that changes nothing but the version

    here, there = build_dag(), build_dag()
    here.fit(x, y, epochs=3, batch_size=16, callbacks=[Freeze()], verbose=0)
    gn.distributed.fit(there, x, y, client, epochs=3, batch_size=16, callbacks=[Freeze()], verbose=0,
                       timeout=TIMEOUT)
    _assert_same_weights(here, there)


def test_callbacks_between_batches_reach_the_ranks_before_the_next_step(dask_cluster, rng):
    """A learning rate set after batch 2 and weights scaled before batch 4:
    each step waits for the client, which sends what changed."""
    _, client = dask_cluster
    x, y = dag_data(rng, 96)

    class Meddle(gn.Callback):
        def on_batch_end(self, batch, logs=None):
            if batch == 1:
                self.graph.optimizer.learning_rate = 0.003

        def on_batch_begin(self, batch, logs=None):
            if batch == 3:
                self.graph.set_weights({k: 0.5 * v for k, v in self.graph.get_weights().items()})

    here, there = build_dag(), build_dag()
    args = dict(epochs=2, batch_size=16, verbose=0, validation_split=0.25)
    expected = here.fit(x, y, callbacks=[Meddle()], **args)
    history = gn.distributed.fit(there, x, y, client, callbacks=[Meddle()], timeout=TIMEOUT, **args)
    _assert_same_weights(here, there)
    for key, values in expected.history.items():
        assert history.history[key] == pytest.approx(values, rel=1e-10), key
    free = build_dag()
    gn.distributed.fit(free, x, y, client, timeout=TIMEOUT, **args)
    assert not np.allclose(free.get_weights()["h1.bias"], there.get_weights()["h1.bias"])  # the callback mattered


def test_ranks_whose_weights_drift_from_the_clients_get_the_clients_state(dask_cluster, rng, monkeypatch,
                                                                         caplog):
    """Each epoch's last step compares a digest of a rank's weights with the
    client's; a mismatch (a BLAS that rounds a dot product differently, for
    clipnorm) sends the client's weights and optimizer before the next epoch."""
    import graphnet._rank as rank_module

    _, client = dask_cluster
    x, y = dag_data(rng, 96)
    real, calls = rank_module.digest, []

    def drifting(values):
        calls.append(1)
        return "not the ranks' digest" if len(calls) == 1 else real(values)

    monkeypatch.setattr(rank_module, "digest", drifting)  # in this process only: the client's side
    here, there = build_dag(), build_dag()
    here.fit(x, y, epochs=3, batch_size=32, verbose=0)
    with caplog.at_level(logging.INFO, logger="graphnet"):
        history = gn.distributed.fit(there, x, y, client, epochs=3, batch_size=32, verbose=0, timeout=TIMEOUT)
    assert "the ranks' weights differ from the client's after epoch 1/3, batch 3/3" in caplog.text
    assert len(calls) == 3
    size = there.plan.store.trainable_values.nbytes
    sent = history.params["traffic"].sent
    assert sent == 3 * 96 * 4 + 2 * 3 * size  # the indices, and weights and Adam's two moments to both ranks
    _assert_same_weights(here, there)


def test_an_epoch_level_learning_rate_schedule_reaches_the_ranks(dask_cluster, rng):
    _, client = dask_cluster
    x, y = dag_data(rng, 96)

    def schedule():
        return gn.callbacks.LearningRateScheduler(lambda epoch: 0.01 / (1 + epoch))

    here, there = build_dag(), build_dag()
    here.fit(x, y, epochs=3, batch_size=32, verbose=0, callbacks=[schedule()])
    gn.distributed.fit(there, x, y, client, epochs=3, batch_size=32, verbose=0, callbacks=[schedule()],
                       timeout=TIMEOUT)
    _assert_same_weights(here, there)


def test_surgery_from_a_callback_reaches_the_workers(dask_cluster, rng):
    """A node widened and another inserted between epochs: the workers train
    the new structure from the next batch, as fit does."""
    _, client = dask_cluster
    x, y = rng.normal(size=(64, 3)), rng.normal(size=(64, 1))

    def grow(epoch, logs, g):
        if epoch == 1:
            g.widen("h", 8, split="random")
            g.insert("h", "y", "deeper", activation="relu")

    here, there = build_chain(), build_chain()
    here.fit(x, y, epochs=4, batch_size=16, verbose=0,
             callbacks=[gn.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: grow(e, logs, here))])
    gn.distributed.fit(there, x, y, client, epochs=4, batch_size=16, verbose=0, timeout=TIMEOUT,
                       callbacks=[gn.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: grow(e, logs, there))])
    assert there["h"].size == 8 and "deeper" in there
    _assert_same_weights(here, there)


# ----------------------------------------------------------------- local SGD
def test_local_sgd_cuts_traffic_k_fold_and_still_learns(dask_cluster, rng):
    _, client = dask_cluster
    x, y = _regression(rng, 512)
    start = _regressor().evaluate(x, y)["loss"]
    runs = {}
    for k in (1, 4):
        g = _regressor()
        history = gn.distributed.fit(g, x, y, client, epochs=4, batch_size=64, sync_every=k,
                                     optimizer={"name": "adam", "lr": 0.01}, verbose=0, timeout=TIMEOUT)
        runs[k] = (g, history, history.params["traffic"])
    (g1, _, t1), (g4, h4, t4) = runs[1], runs[4]
    assert t1.steps == t4.steps == 4 * 8
    assert t1.parameter_bytes_per_step == 4 * t4.parameter_bytes_per_step  # exactly k-fold
    indices = 64 * 4  # the rows of a batch, as int32, whichever the mode
    assert t1.bytes_per_step - t1.parameter_bytes_per_step == indices
    assert t4.bytes_per_step - t4.parameter_bytes_per_step == indices
    assert h4.params["steps"] == 2 and len(h4.history["loss"]) == 4
    assert g4.evaluate(x, y)["loss"] < 0.1 * start  # learns as the synchronous run does
    assert g4.evaluate(x, y)["loss"] < 1.5 * g1.evaluate(x, y)["loss"]
    assert g4.optimizer.iterations == 0  # the graph's own optimizer state is left as it was


# ---------------------------------------------------------------- cost model
def test_the_cost_model_is_measured_on_the_run(dask_cluster, rng):
    _, client = dask_cluster
    x, y = _regression(rng, 256)
    history = gn.distributed.fit(_regressor(), x, y, client, epochs=2, batch_size=64, verbose=0,
                                 timeout=TIMEOUT)
    t = history.params["traffic"]
    assert t.latency_s > 0 and t.bandwidth > 0 and t.parameter_size == 8 * 97
    assert t.compute_s > 0 and t.update_s > 0 and t.reduce_s > 0 and t.step_s > 0
    row = t.predict(8, sync_every=4, bandwidth=1e9)
    work = t.compute_s + t.update_s
    allreduce = 6 * t.latency_s + 1.75 * 8 * 97 * (1 / t.bandwidth + 1 / 1e9)  # 2 log2 8 hops, 2 (8-1)/8 of S
    assert row["allreduce_s"] == pytest.approx(allreduce)
    assert row["efficiency"] == pytest.approx(work / max(work + allreduce / 4, (t.client_s + 776 / 1e9) / 4))
    quiet = t.predict(8, sync_every=4, bandwidth=1e9, work_s=0.01)  # a compute time measured elsewhere
    assert quiet["efficiency"] == pytest.approx(0.01 / max(0.01 + allreduce / 4, (t.client_s + 776 / 1e9) / 4))
    assert [(r["workers"], r["sync_every"]) for r in t.table()] == [
        (n, k) for n in (8, 64) for k in (1, 2, 4, 8)]
    one = gn.distributed.fit(_regressor(), x, y, client, batch_size=64, verbose=0, timeout=TIMEOUT,
                             validation_data=(_lazy({"x": x}, 256)["x"], y))
    assert one.params["workers"] == 2  # numpy data: a partition per worker
    single = gn.distributed.fit(_regressor(), _lazy({"x": x}, 256)["x"], y, client, batch_size=64,
                                verbose=0, timeout=TIMEOUT)
    assert single.params["workers"] == 1
    with pytest.raises(gn.GraphError, match="measured no latency and bandwidth between workers"):
        single.params["traffic"].predict(8)


# ------------------------------------------------------------- the graph once
def _count_unpickled_graphs():
    import graphnet.graph as module

    if not hasattr(module.Graph, "_unpickled"):
        original = module.Graph.__setstate__

        def counted(self, state):
            type(self)._unpickled += 1
            original(self, state)

        module.Graph.__setstate__ = counted
    module.Graph._unpickled = 0


def _unpickled_graphs() -> int:
    import graphnet.graph as module

    return module.Graph._unpickled


def test_each_worker_unpickles_the_graph_once(dask_cluster, rng):
    _, client = dask_cluster
    x, y = dag_data(rng, 240)
    g = build_dag()
    client.run(_count_unpickled_graphs)
    gn.distributed.fit(g, _lazy(x, 30), _lazy(y, 30), client, epochs=4, batch_size=16, verbose=0,
                       timeout=TIMEOUT)  # 60 steps over eight partitions
    counts = client.run(_unpickled_graphs)
    assert sorted(counts.values()) == [1, 1]
    client.run(_count_unpickled_graphs)
    out = g.predict(_lazy(x, 30))  # eight chunks
    computed = client.compute(out["main"]).result(timeout=TIMEOUT)
    np.testing.assert_allclose(computed, g.predict(x)["main"], rtol=1e-12)
    counts = client.run(_unpickled_graphs)
    assert all(n <= 1 for n in counts.values()) and sum(counts.values()) >= 1


# -------------------------------------------------------------------- faults
def test_a_worker_killed_mid_fit_is_survived_with_the_undisturbed_weights(dask_cluster, rng, caplog):
    _, client = dask_cluster
    x, y = dag_data(rng, 300)
    pids = client.run(os.getpid)
    victim = sorted(pids.values())[0]

    class Kill(gn.Callback):
        """Kills one worker process a moment after batch 3 of epoch 1, so
        that it dies during (or just before) the next step."""

        done = False

        def on_batch_end(self, batch, logs=None):
            if batch == 2 and not self.done:
                self.done = True
                threading.Timer(0.005, os.kill, (victim, signal.SIGKILL)).start()

    here, there = build_dag(), build_dag()
    here.fit(x, y, epochs=2, batch_size=30, verbose=0)
    with caplog.at_level(logging.WARNING, logger="graphnet"):
        gn.distributed.fit(there, _lazy(x, 25), _lazy(y, 25), client, epochs=2, batch_size=30,
                           callbacks=[Kill()], verbose=0, timeout=TIMEOUT)
    with pytest.raises(ProcessLookupError):
        os.kill(victim, 0)  # it really died
    assert "trying again" in caplog.text  # during the fit
    _assert_same_weights(here, there)
    client.wait_for_workers(2, timeout=RESTART)  # the nanny restarted it, for the tests after this one
    assert victim not in client.run(os.getpid).values()


@pytest.mark.slow
def test_ranks_running_ahead_survive_a_worker_killed_mid_epoch(dask_cluster, rng, caplog):
    """No callback acts between batches, so the ranks run steps ahead of the
    client; a worker killed then is survived from the client's state."""
    _, client = dask_cluster
    client.wait_for_workers(2, timeout=RESTART)
    x, y = dag_data(rng, 400)
    victim = sorted(client.run(os.getpid).values())[0]

    class Kill(gn.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                threading.Timer(0.01, os.kill, (victim, signal.SIGKILL)).start()

    here, there = build_dag(), build_dag()
    here.fit(x, y, epochs=4, batch_size=10, verbose=0)
    with caplog.at_level(logging.WARNING, logger="graphnet"):
        gn.distributed.fit(there, _lazy(x, 50), _lazy(y, 50), client, epochs=4, batch_size=10,
                           callbacks=[Kill()], verbose=0, timeout=TIMEOUT)
    assert "trying again" in caplog.text
    _assert_same_weights(here, there)
    client.wait_for_workers(2, timeout=RESTART)


def test_local_sgd_survives_a_lost_worker_or_stops_naming_the_checkpoint(dask_cluster, rng, tmp_path):
    """A group's optimizer state lives on its worker: when the worker dies
    with it, the fit cannot go on as if nothing happened and says so; when
    only data or tasks were lost, the weights are the undisturbed run's."""
    _, client = dask_cluster
    client.wait_for_workers(2, timeout=RESTART)
    x, y = dag_data(rng, 240)
    victim = sorted(client.run(os.getpid).values())[-1]

    class Kill(gn.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_batch_end(self, batch, logs=None):
            if self.epoch == 1 and batch == 0:
                threading.Timer(0.005, os.kill, (victim, signal.SIGKILL)).start()

    args = dict(epochs=2, batch_size=20, sync_every=3, verbose=0, timeout=TIMEOUT)
    undisturbed = build_dag()
    gn.distributed.fit(undisturbed, _lazy(x, 30), _lazy(y, 30), client, **args)
    g = build_dag()
    checkpoint = gn.ModelCheckpoint(tmp_path / "ckpt-{epoch}.gnet", monitor="loss", save_best_only=False)
    try:
        gn.distributed.fit(g, _lazy(x, 30), _lazy(y, 30), client, callbacks=[checkpoint, Kill()], **args)
    except gn.TrainingError as error:
        assert str(error).startswith("epoch 2/2, round ")
        assert f"the last checkpoint is {str(tmp_path / 'ckpt-1.gnet')!r}" in str(error)
    else:
        _assert_same_weights(undisturbed, g, rtol=1e-12)
    client.wait_for_workers(2, timeout=RESTART)


def test_a_lost_cluster_stops_the_fit_with_the_last_checkpoint_named(rng, tmp_path):
    x, y = dag_data(rng, 80)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp",
                                  host="127.0.0.1", dashboard_address=None,
                                  silence_logs=logging.CRITICAL) as cluster, \
            distributed.Client(cluster, set_as_default=False) as client:

        class Shutdown(gn.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch == 0:
                    cluster.scale(0)
                    client.sync(cluster._correct_state)
                    deadline = threading.Event()
                    for _ in range(600):
                        if not client.nthreads():
                            break
                        deadline.wait(0.05)

        checkpoint = gn.ModelCheckpoint(tmp_path / "ckpt-{epoch}.gnet", monitor="loss", save_best_only=False)
        g = build_dag()
        with pytest.raises(gn.TrainingError) as info:
            gn.distributed.fit(g, x, y, client, epochs=3, batch_size=20, verbose=0, timeout=2.0,
                               callbacks=[checkpoint, Shutdown()])
    path = str(tmp_path / "ckpt-1.gnet")
    message = str(info.value)
    assert message.startswith("epoch 2/3, batch 1/4: the cluster failed")
    assert "the weights are as they were before this step" in message
    assert f"the last checkpoint is {path!r}" in message
    assert info.value.checkpoint == path and info.value.epoch == 1 and info.value.batch == 0
    _assert_same_weights(gn.load(path), g, rtol=0)  # nothing landed after the checkpoint


def test_a_non_finite_loss_stops_as_in_fit(dask_cluster, rng):
    _, client = dask_cluster
    x = rng.normal(size=(64, 4)) * 1e30
    y = rng.normal(size=(64, 1))
    g = gn.Sequential([gn.Input(4), gn.Dense(3), gn.Dense(1)], loss="mse", seed=0)  # float32
    before = g.get_weights()
    with pytest.raises(gn.TrainingError,
                       match=r"^epoch 1/1, batch 1/2: the loss of output '.*' is (inf|nan); "
                             "the weights are as they were") as info:
        gn.distributed.fit(g, x, y, client, batch_size=32, verbose=0, timeout=TIMEOUT)
    assert info.value.epoch == 0 and info.value.batch == 0
    for key, value in before.items():
        np.testing.assert_array_equal(g.get_weights()[key], value)


# ---------------------------------------------------------------- arguments
def test_no_client_is_a_graph_error_saying_how_to_make_one(rng):
    x, y = dag_data(rng, 8)
    with pytest.raises(gn.GraphError, match=r"no dask.distributed Client is running; connect one first"):
        gn.distributed.fit(build_dag(), x, y)
    with pytest.raises(gn.GraphError, match="client must be a dask.distributed Client, got str"):
        gn.distributed.fit(build_dag(), x, y, "tcp://127.0.0.1:8786")


@pytest.mark.parametrize("bad, message", [
    ({"sync_every": 0}, "sync_every must be a positive integer, got 0"),
    ({"timeout": -1}, "timeout must be a positive number of seconds, got -1"),
    ({"timeout": float("inf")}, "timeout must be a positive number of seconds, got inf"),
    ({"retries": -1}, "retries must be an integer >= 0, got -1"),
    ({"epochs": 1.5}, "epochs must be a positive integer, got 1.5"),
    ({"verbose": 3}, "verbose must be 0, 1 or 2, got 3"),
    ({"shuffle": "yes"}, "shuffle must be True or False, got 'yes'"),
    ({"callbacks": [print]}, "callbacks must be Callback instances"),
    ({"validation_data": (1, 2, 3)}, r"validation_data must be a tuple \(x_val, y_val\)"),
])
def test_bad_arguments_are_graph_errors(rng, bad, message):
    x, y = dag_data(rng, 8)
    with pytest.raises(gn.GraphError, match=message):
        gn.distributed.fit(build_dag(), x, y, None, **bad)


def test_a_graph_is_asked_for_by_name(rng):
    x, y = dag_data(rng, 8)
    with pytest.raises(gn.GraphError, match=r"distributed.fit: graph must be a graphnet Graph, got str"):
        gn.distributed.fit("not a graph", x, y, None)


def test_data_that_does_not_fit_is_refused_before_training(dask_cluster, rng):
    _, client = dask_cluster
    x, y = dag_data(rng, 40)
    g = build_dag()
    before = g.get_weights()
    with pytest.raises(gn.ShapeError, match=r"input 'a': expected shape \(n, 5\), got \(40, 2\)"):
        gn.distributed.fit(g, {**x, "a": x["a"][:, :2]}, y, client, verbose=0, timeout=TIMEOUT)
    bad = x["b"].copy()
    bad[33, 1] = np.inf
    with pytest.raises(gn.ShapeError, match="input 'b' contains 1 NaN or inf"):
        gn.distributed.fit(g, _lazy({**x, "b": bad}, 10), y, client, verbose=0, timeout=TIMEOUT)
    with pytest.raises(gn.ShapeError, match=r"rows disagree: input 'a' has 40 rows but .* has 36"):
        gn.distributed.fit(g, x, {k: v[:36] for k, v in y.items()}, client, verbose=0, timeout=TIMEOUT)
    with pytest.raises(gn.ShapeError, match="has no rows"):
        gn.distributed.fit(g, {k: v[:0] for k, v in x.items()}, {k: v[:0] for k, v in y.items()},
                           client, verbose=0, timeout=TIMEOUT)
    for key, value in before.items():
        np.testing.assert_array_equal(g.get_weights()[key], value)


def test_fit_arguments_are_fits_own_and_unknown_ones_are_refused_by_name():
    """distributed.fit takes fit's keywords through **fit_args (one signature,
    training.fit's): a misspelt one is named, not a TypeError."""
    g = build_dag()
    with pytest.raises(gn.GraphError, match=r"distributed.fit: unknown arguments \['epoch'\]; fit takes"):
        gn.distributed.fit(g, {}, {}, epoch=3)
    with pytest.raises(gn.GraphError, match="distributed.fit: initial_epoch is not supported yet"):
        gn.distributed.fit(g, {}, {}, initial_epoch=2)


@pytest.mark.parametrize("changes", [False, True], ids=["plain", "a-callback-changes-the-optimizer"])
def test_fit_on_an_in_process_cluster_equals_single_process_fit(rng, changes):
    # LocalCluster(processes=False) without a protocol: dask's in-process
    # transport, which hands objects over as they are, unserialized and uncopied.
    x, y = _regression(rng, 96)
    here, there = _regressor(), _regressor()
    def halve():
        return [gn.callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5)] if changes else []

    args = {"epochs": 2, "batch_size": 16, "validation_split": 0.25, "verbose": 0}
    expected = here.fit(x, y, callbacks=halve(), **args)
    local = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
    with local as cluster, distributed.Client(cluster, set_as_default=False) as client:
        assert cluster.scheduler_address.startswith("inproc://")
        history = gn.distributed.fit(there, da.from_array(x, chunks=(24, 4)), da.from_array(y, chunks=(24, 1)), client,
                                     timeout=TIMEOUT, retries=0, callbacks=halve(), **args)
    _assert_same_weights(here, there)
    for key, values in expected.history.items():
        assert history.history[key] == pytest.approx(values, rel=1e-10), key
