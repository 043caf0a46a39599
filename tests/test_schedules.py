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
