"""gn.distributed.search (graphnet._search): trials of an Optuna study trained
across a LocalCluster of two in-process workers on loopback, started and
stopped by this module. Each trial's value and graph are checked against the
same build trained here with ``Graph.fit``."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import graphnet as gn

distributed = pytest.importorskip("distributed")
optuna = pytest.importorskip("optuna")
da = pytest.importorskip("dask.array")

pytestmark = pytest.mark.filterwarnings("ignore:Port 8787 is already in use:UserWarning")

FIT = dict(epochs=3, batch_size=32, validation_split=0.25)


@pytest.fixture(scope="module")
def client():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp",
                                  host="127.0.0.1", dashboard_address=None,
                                  silence_logs=logging.ERROR) as cluster, \
            distributed.Client(cluster, set_as_default=False) as client:
        yield client


@pytest.fixture
def data(rng):
    x = rng.normal(size=(160, 4))
    y = np.tanh(x @ np.array([[0.5], [-1.0], [0.25], [0.75]]))
    return x, y


def build(trial):
    width = trial.suggest_int("width", 2, 12)
    lr = trial.suggest_float("lr", 1e-3, 1e-1, log=True)
    g = gn.Sequential([gn.Input(4), gn.Dense(width, activation="tanh"), gn.Dense(1)], loss="mse", seed=0,
                      dtype="float64")
    return g, {"optimizer": {"name": "adam", "lr": lr}}


def _fit_here(params, x, y):
    """The trial's graph built and trained in this process, for comparison."""
    g, args = build(optuna.trial.FixedTrial(params))
    history = g.fit(x, y, verbose=0, **FIT, **args)
    return g, history


def test_a_failing_trial_is_recorded_and_the_others_finish(client, data):
    x, y = data

    def shaky(trial):
        g, args = build(trial)
        if trial.number == 1:
            raise ValueError("no graph for trial 1")
        if trial.number == 3:  # five inputs for data with four: fails on its worker
            g = gn.Sequential([gn.Input(5), gn.Dense(2), gn.Dense(1)], loss="mse", seed=0)
        return g, args

    result = gn.distributed.search(shaky, x, y, n_trials=6, client=client, **FIT)
    assert [t.state for t in result.trials] == ["complete", "failed", "complete", "failed", "complete", "complete"]
    assert result.trials[1].error == "ValueError: no graph for trial 1"
    assert result.trials[3].error.startswith("ShapeError: input") and result.trials[3].worker is not None
    assert [t.state.name for t in result.study.trials] == ["COMPLETE", "FAIL", "COMPLETE", "FAIL", "COMPLETE",
                                                           "COMPLETE"]
    assert result.study.trials[1].user_attrs["error"] == "ValueError: no graph for trial 1"
    assert len(result.failed) == 2
    complete = [t for t in result.trials if t.state == "complete"]
    best = min(complete, key=lambda t: t.value)
    assert result.best_trial is best and result.best_value == best.value == result.study.best_value
    for trial in complete[:2]:  # each value is the last epoch's val_loss of that build trained here
        _, history = _fit_here(trial.params, x, y)
        assert trial.value == pytest.approx(history.history["val_loss"][-1], rel=1e-12)
        assert trial.history["loss"] == pytest.approx(history.history["loss"], rel=1e-12)
    here, _ = _fit_here(best.params, x, y)
    for key, value in here.get_weights().items():
        np.testing.assert_allclose(result.best_graph.get_weights()[key], value, rtol=1e-12, err_msg=key)


def test_the_same_seed_gives_the_same_search(client, data):
    """Trials of different lengths finish in any order; the sampler (TPE past
    its first two random trials) still sees the same history at each ask."""
    x, y = data

    def study(seed):
        return optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=2))

    runs = [gn.distributed.search(build, x, y, study=study(seed), n_trials=8, client=client, **FIT)
            for seed in (7, 7, 8)]
    (a, b, c) = ([(t.params, t.value) for t in r.trials] for r in runs)
    assert a == b
    assert [p for p, _ in a] != [p for p, _ in c]
    default = [gn.distributed.search(build, x, y, n_trials=3, seed=1, client=client, **FIT) for _ in range(2)]
    assert [t.params for t in default[0].trials] == [t.params for t in default[1].trials]


def test_a_given_study_a_spec_and_an_objective_function(client, data):
    x, y = data
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))

    def from_spec(trial):
        g, args = build(trial)
        return g.to_dict(), args  # a spec: built on the client with Graph.from_dict

    def score(graph, history):
        return -float(np.mean((graph.predict(x) - y) ** 2))

    result = gn.distributed.search(from_spec, x, y, study=study, objective=score, n_trials=4, client=client,
                                   epochs=2, batch_size=32)
    assert result.study is study and len(study.trials) == 4
    assert result.best_value == max(t.value for t in result.trials) == study.best_value
    assert result.best_value == pytest.approx(-np.mean((result.best_graph.predict(x) - y) ** 2))


def test_bad_arguments_are_graph_errors(client, data):
    x, y = data
    with pytest.raises(gn.GraphError, match=r"unknown fit arguments \['verbose'\]"):
        gn.distributed.search(build, x, y, client=client, verbose=1)
    with pytest.raises(gn.GraphError, match="objective 'val_loss' needs validation_split or validation_data"):
        gn.distributed.search(build, x, y, objective="val_loss", client=client)
    with pytest.raises(gn.GraphError, match="x is a dask collection"):
        gn.distributed.search(build, da.from_array(x), y, client=client)
    with pytest.raises(gn.GraphError, match="build must be a function of the trial, got Sequential"):
        gn.distributed.search(build(optuna.trial.FixedTrial({"width": 2, "lr": 0.01}))[0], x, y, client=client)
    two = optuna.create_study(directions=["minimize", "maximize"])
    with pytest.raises(gn.GraphError, match="the study has 2 objectives"):
        gn.distributed.search(build, x, y, study=two, client=client)
    with pytest.raises(gn.GraphError, match="client must be a dask.distributed Client, got str"):
        gn.distributed.search(build, x, y, client="tcp://127.0.0.1:8786")
    with pytest.raises(gn.GraphError, match=r"search: seed must be an integer >= 0, got 'x'"):
        gn.distributed.search(build, x, y, client=client, seed="x")
    for timeout in (-1, "x", float("nan")):
        with pytest.raises(gn.GraphError, match=r"search: timeout must be a positive number of seconds"):
            gn.distributed.search(build, x, y, client=client, timeout=timeout)


@pytest.mark.parametrize("study", [5, "my-study", optuna.trial.FixedTrial({})])
def test_a_study_that_is_not_one_is_refused_before_any_work(data, study):
    x, y = data
    with pytest.raises(gn.GraphError, match=r"search: study must be an optuna.Study \(or None: a new one\), got"):
        gn.distributed.search(build, x, y, study=study, client="never asked for")


def test_a_grid_sampler_that_runs_out_ends_the_search(client, data):
    """GridSampler stops its study when the grid is done (Optuna allows that
    only inside study.optimize): the search ends there, every point tried."""
    x, y = data
    grid = {"width": [2, 4], "lr": [0.01, 0.03]}
    study = optuna.create_study(sampler=optuna.samplers.GridSampler(grid, seed=0))

    def on_grid(trial):
        width = trial.suggest_categorical("width", grid["width"])
        lr = trial.suggest_categorical("lr", grid["lr"])
        return build(optuna.trial.FixedTrial({"width": width, "lr": lr}))

    result = gn.distributed.search(on_grid, x, y, study=study, n_trials=12, client=client, epochs=1)
    assert 4 <= len(result.trials) < 12 and not result.failed
    assert {(t.params["width"], t.params["lr"]) for t in result.trials} == {(2, 0.01), (2, 0.03), (4, 0.01),
                                                                           (4, 0.03)}


@pytest.mark.parametrize("objective", ["val_auc", "val_f1", "val_r2", "val_precision", "val_accuracy"])
def test_an_objective_larger_when_better_is_maximized_by_default(client, rng, objective):
    """The default direction follows the callbacks' mode="auto": larger is
    better for an AUC, F1, R², precision or accuracy, and the best trial is
    the one with the largest value."""
    x = rng.normal(size=(64, 4))
    y = (x[:, :1] + 0.5 * x[:, 1:2] > 0).astype(float)
    metric = objective.removeprefix("val_")

    def classifier(trial):
        width = trial.suggest_int("width", 2, 6)
        return gn.Sequential([gn.Input(4), gn.Dense(width, activation="tanh"), gn.Dense(1, activation="sigmoid")],
                             loss="binary_crossentropy", seed=0, dtype="float64")

    result = gn.distributed.search(classifier, x, y, n_trials=3, client=client, epochs=1, metrics=[metric],
                                   objective=objective, validation_split=0.25)
    assert result.study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert result.best_value == max(t.value for t in result.trials)
    assert gn.callbacks.EarlyStopping(monitor=objective).mode == "max"
