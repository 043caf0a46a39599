"""Learning-rate schedules (graphnet.schedules) against Keras's own, value by value."""

from __future__ import annotations

import os

import numpy as np
import pytest

import graphnet as gn
from graphnet import GraphError, schedules

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

STEPS = [0, 1, 2, 5, 9, 10, 11, 37, 99, 100, 101, 250]


def _keras_values(schedule):
    return [float(schedule(step)) for step in STEPS]


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (schedules.ExponentialDecay(0.1, 10, 0.5),
         lambda: keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)),
        (schedules.ExponentialDecay(0.1, 10, 0.5, staircase=True),
         lambda: keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5, staircase=True)),
        (schedules.CosineDecay(0.1, 100),
         lambda: keras.optimizers.schedules.CosineDecay(0.1, 100)),
        (schedules.CosineDecay(0.1, 100, alpha=0.2),
         lambda: keras.optimizers.schedules.CosineDecay(0.1, 100, alpha=0.2)),
        (schedules.CosineDecay(0.0, 100, warmup_target=0.2, warmup_steps=10),
         lambda: keras.optimizers.schedules.CosineDecay(0.0, 100, warmup_target=0.2, warmup_steps=10)),
        (schedules.PiecewiseConstantDecay([10, 100], [0.1, 0.01, 0.001]),
         lambda: keras.optimizers.schedules.PiecewiseConstantDecay([10, 100], [0.1, 0.01, 0.001])),
    ],
    ids=["exponential", "staircase", "cosine", "cosine_alpha", "cosine_warmup", "piecewise"],
)
def test_same_rates_as_keras(ours, theirs):
    # Keras computes in float32: near the end of a cosine, 1 + cos(pi t) loses
    # digits there (an absolute error of a float32 epsilon times the rate).
    np.testing.assert_allclose([ours(s) for s in STEPS], _keras_values(theirs()), rtol=1e-6, atol=3e-8)
    assert schedules.get(ours.get_config()) == ours


def test_an_optimizer_follows_its_schedule_by_iteration():
    schedule = schedules.PiecewiseConstantDecay([1], [1.0, 0.5])
    opt = gn.optimizers.SGD(learning_rate=schedule)
    opt.bind((("w", 1),), np.float64)
    steps = [float(opt.step(np.zeros(1), np.ones(1))[0]) for _ in range(4)]
    assert steps == [1.0, 1.0, 0.5, 0.5]  # iterations 0 and 1 are <= the boundary
    assert gn.optimizers.get(opt.get_config()).lr == schedule


def test_bad_schedules():
    with pytest.raises(GraphError, match="decay_steps must be a positive integer"):
        schedules.ExponentialDecay(0.1, 0, 0.5)
    with pytest.raises(GraphError, match="needs one more value than boundaries"):
        schedules.PiecewiseConstantDecay([1, 2], [0.1])
    with pytest.raises(GraphError, match="boundaries must increase"):
        schedules.PiecewiseConstantDecay([5, 2], [0.1, 0.2, 0.3])
    with pytest.raises(GraphError, match="unknown learning-rate schedule 'linear'"):
        schedules.get({"name": "linear"})
    with pytest.raises(GraphError, match="warmup_steps=5 needs a warmup_target"):
        schedules.CosineDecay(0.1, 10, warmup_steps=5)


@pytest.mark.parametrize("schedule", [schedules.ExponentialDecay(0.1, 10, 0.5), schedules.CosineDecay(0.1, 100),
                                      schedules.PiecewiseConstantDecay([10], [0.1, 0.01])],
                         ids=["exponential", "cosine", "piecewise"])
def test_a_step_that_is_not_an_integer_is_refused(schedule):
    for step in ("x", -1, 1.5, None, True):
        with pytest.raises(GraphError, match=rf"{schedule.name}: step must be an integer >= 0, got"):
            schedule(step)
    assert schedule(np.int64(3)) == schedule(3)


def test_piecewise_takes_tuples_and_1d_arrays():
    expected = schedules.PiecewiseConstantDecay([10, 100], [0.1, 0.01, 0.001])
    for boundaries, values in (((10, 100), (0.1, 0.01, 0.001)),
                               (np.array([10, 100]), np.array([0.1, 0.01, 0.001]))):
        schedule = schedules.PiecewiseConstantDecay(boundaries, values)
        assert schedule == expected and schedule.get_config() == expected.get_config()
        assert all(type(b) is int for b in schedule.boundaries) and all(type(v) is float for v in schedule.values)
    with pytest.raises(GraphError, match=r"boundaries must be a list, a tuple or a 1-D array, got ndarray of shape"):
        schedules.PiecewiseConstantDecay(np.zeros((1, 2), int), [0.1, 0.2, 0.3])


def test_a_custom_schedule_without_get_config_trains_and_says_why_it_cannot_be_saved(tmp_path):
    """It trains (as in Keras); repr shows it, and save, or a checkpoint before
    training starts, says what to write. repr raised NotImplementedError, and
    so did save and a ModelCheckpoint after the first epoch."""

    class Constant(gn.schedules.LearningRateSchedule):
        def __call__(self, step):
            return 0.01

    g = gn.Sequential([gn.Input(2), gn.Dense(1)], loss="mse", seed=0)
    x, y = np.ones((8, 2)), np.ones((8, 1))
    g.fit(x, y, epochs=1, verbose=0, optimizer=gn.optimizers.Adam(lr=Constant()))
    assert repr(Constant()) == "Constant()" and "Constant()" in repr(g.optimizer)
    assert g.optimizer.lr == g.optimizer.lr and Constant() != Constant()
    with pytest.raises(GraphError, match=r"schedule Constant has no get_config\(\): write one"):
        g.save(tmp_path / "g.gnet")
    assert not (tmp_path / "g.gnet").exists()
    weights = g.get_weights()
    for callback in (gn.callbacks.ModelCheckpoint(tmp_path / "c.gnet", monitor="loss"),
                     gn.callbacks.BackupAndRestore(tmp_path / "backup")):
        with pytest.raises(GraphError, match=rf"{type(callback).__name__}: learning-rate schedule Constant"):
            g.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    assert all(np.array_equal(v, weights[k]) for k, v in g.get_weights().items())
    g.fit(x, y, epochs=1, verbose=0, callbacks=[gn.callbacks.ModelCheckpoint(tmp_path / "c.npz", monitor="loss")])
    assert (tmp_path / "c.npz").exists()


def test_a_custom_schedule_with_get_config_saves_and_loads_registered_or_passed(tmp_path, monkeypatch):
    class Constant(gn.schedules.LearningRateSchedule):
        name = "constant_rate"

        def __init__(self, rate=0.01):
            self.rate = rate

        def __call__(self, step):
            return self.rate

        def get_config(self):
            return {"name": self.name, "rate": self.rate}

    g = gn.Sequential([gn.Input(2), gn.Dense(1)], loss="mse", seed=0)
    x, y = np.ones((8, 2)), np.ones((8, 1))
    g.fit(x, y, epochs=1, verbose=0, optimizer=gn.optimizers.Adam(lr=Constant(0.02)))
    path = g.save(tmp_path / "g.gnet")
    with pytest.raises(gn.ModelFileError, match="unknown learning-rate schedule 'constant_rate'"):
        gn.load(path)
    passed = gn.load(path, custom_objects={"constant_rate": Constant})
    assert isinstance(passed.optimizer.lr, Constant) and passed.optimizer.lr.rate == 0.02
    monkeypatch.setitem(schedules.SCHEDULES, "constant_rate", None)  # gn.register's entry is taken out after
    gn.register(Constant)
    assert gn.load(path).optimizer.get_config() == g.optimizer.get_config()


def test_register_checks_a_schedule_class(monkeypatch):
    class NoConfig(gn.schedules.LearningRateSchedule):
        name = "no_config"

        def __call__(self, step):
            return 0.1

    with pytest.raises(GraphError, match="learning-rate schedule NoConfig: write get_config"):
        gn.register(NoConfig)
    assert "no_config" not in schedules.SCHEDULES

    class Fine(NoConfig):
        name = "fine_rate"

        def get_config(self):
            return {"name": self.name}

    monkeypatch.setitem(schedules.SCHEDULES, "fine_rate", None)  # gn.register's entry is taken out after
    assert gn.register(Fine) is Fine and schedules.SCHEDULES["fine_rate"] is Fine


def test_a_custom_schedule_s_config_without_its_name_is_saved_with_it_and_loads(tmp_path):
    """custom.md: get_config returns the constructor's arguments, graphnet adds
    the name. A schedule's config was saved without it, and never loaded."""

    class Half(gn.schedules.LearningRateSchedule):
        name = "half_without_name"

        def __init__(self, lr=0.01):
            self.lr = lr

        def __call__(self, step):
            return self.lr / (1 + step)

        def get_config(self):
            return {"lr": self.lr}

    g = gn.Graph(seed=0)
    g.add_input("x", 3)
    g.add_output("y", 1)
    g.connect("x", "y")
    g.fit(np.zeros((8, 3)), np.zeros((8, 1)), epochs=1, verbose=0, optimizer=gn.optimizers.Adam(lr=Half(0.02)))
    loaded = gn.load(g.save(tmp_path / "half.gnet"), custom_objects={"half_without_name": Half})
    assert loaded.optimizer.lr == Half(0.02) and loaded.optimizer.lr(3) == pytest.approx(0.005)


def test_a_custom_schedule_whose_config_no_file_could_hold_is_refused_when_given():
    class NumpyRate(gn.schedules.LearningRateSchedule):
        name = "numpy_rate"

        def __init__(self, lr=0.01):
            self.lr = lr

        def __call__(self, step):
            return self.lr

        def get_config(self):
            return {"lr": np.float32(self.lr)}

    with pytest.raises(gn.GraphError, match=r"custom learning-rate schedule 'numpy_rate'.*get_config\(\)\['lr'\]"):
        gn.optimizers.Adam(lr=NumpyRate(0.02))
    opt = gn.optimizers.SGD(lr=0.1)
    with pytest.raises(gn.GraphError, match="numpy_rate"):
        opt.learning_rate = NumpyRate(0.02)
    assert opt.lr == 0.1
