"""fit on batches from an iterable or a generator (graphnet._generators):
the same weights as arrays given the same batches, Keras's epoch rules for
re-iterables and one-shot generators, errors that name the batch; and
initial_epoch."""

from __future__ import annotations

import numpy as np
import pytest

import graphnet as gn
from graphnet import GraphError, ShapeError
from graphnet.training import fit_arguments


def _graph(seed=0):
    g = gn.Graph(seed=seed, dtype="float64")
    g.add_input("x", 3)
    g.add_hidden("h", 8, activation="tanh", dropout=0.1)
    g.add_output("y", 1, activation="sigmoid", loss="binary_crossentropy")
    g.connect("x", "h")
    g.connect("h", "y")
    return g


@pytest.fixture
def data(rng):
    x = rng.normal(size=(80, 3))
    return x, (x[:, 0] - x[:, 1] > 0).astype(float), rng.random(80)


def _batches(x, y, w=None, size=16):
    return [(x[i:i + size], y[i:i + size]) + (() if w is None else (w[i:i + size],))
            for i in range(0, len(x), size)]


def _same(a, b):
    for key, value in a.get_weights().items():
        np.testing.assert_array_equal(b.get_weights()[key], value, err_msg=key)


class Sequence:
    """Keras's Sequence shape: __len__ and __getitem__ only."""

    def __init__(self, batches):
        self.batches = batches

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, index):
        return self.batches[index]


def test_batches_train_as_the_same_arrays_do(data):
    x, y, w = data
    arrays = _graph()
    expected = arrays.fit(x, y, epochs=3, batch_size=16, shuffle=False, sample_weight=w, verbose=0,
                          metrics=["auc"], validation_data=(x[:30], y[:30]))
    batches = _batches(x, y, w)

    def forever():
        while True:
            yield from batches

    for source, steps in ((batches, None), (Sequence(batches), None), (forever(), 5)):
        g = _graph()
        history = g.fit(source, epochs=3, steps_per_epoch=steps, verbose=0, metrics=["auc"],
                        validation_data=_batches(x[:30], y[:30], size=7))
        _same(arrays, g)
        assert history.history.keys() == expected.history.keys()
        for key, values in expected.history.items():
            np.testing.assert_allclose(history.history[key], values, rtol=1e-12, err_msg=key)
        assert history.params["steps"] == 5 and history.params["rows"] is None


def test_a_one_shot_generator_is_consumed_across_epochs(data, caplog):
    x, y, _ = data
    batches = _batches(x, y)
    with pytest.raises(GraphError, match=r"a generator \(a one-shot iterator\) is consumed across epochs, "
                                         r"so 2 epochs need steps_per_epoch"):
        _graph().fit(iter(batches), epochs=2, verbose=0)
    history = _graph().fit(iter(batches), epochs=1, verbose=0)  # one epoch: until it runs out
    assert history.epoch == [0]
    g = _graph()
    history = g.fit(iter(batches), epochs=4, steps_per_epoch=2, verbose=0)  # 5 batches: 2 + 2 + 1
    assert history.epoch == [0, 1, 2] and g.optimizer.iterations == 5
    assert "fit ran out of data after 1 of 2 batches in epoch 3; training stops" in caplog.text


def test_each_batch_is_checked_and_named(data):
    x, y, _ = data
    batches = _batches(x, y)
    batches[2] = (x[32:48, :2], y[32:48])
    with pytest.raises(ShapeError, match=r"fit: epoch 1, batch 3: input 'x': expected shape \(n, 3\), "
                                         r"got \(16, 2\)"):
        _graph().fit(batches, verbose=0)
    batches[2] = [x[32:48]]
    with pytest.raises(GraphError, match=r"fit: epoch 1, batch 3: expected a tuple \(x, y\) or \(x, y, "
                                         r"sample_weight\), got list"):
        _graph().fit(batches, verbose=0)
    batches[2] = (x[32:48], y[32:40])
    with pytest.raises(ShapeError, match="fit: epoch 1, batch 3: rows disagree"):
        _graph().fit(batches, verbose=0)
    with pytest.raises(GraphError, match=r"validation_data: epoch 1, batch 1: .*no rows"):
        _graph().fit(_batches(x, y), validation_data=[(x[:0], y[:0])], verbose=0)


def test_arguments_that_do_not_fit_batches_are_refused(data):
    x, y, w = data
    batches = _batches(x, y)
    with pytest.raises(GraphError, match=r"x yields batches, so y must be left out"):
        _graph().fit(batches, y, verbose=0)
    with pytest.raises(GraphError, match=r"x yields batches, so sample_weight must be left out"):
        _graph().fit(batches, sample_weight=w, verbose=0)
    with pytest.raises(GraphError, match=r"x yields batches, so validation_split must be left out"):
        _graph().fit(batches, validation_split=0.2, verbose=0)
    with pytest.raises(GraphError, match=r"steps_per_epoch is for x that yields batches"):
        _graph().fit(x, y, steps_per_epoch=3, verbose=0)
    with pytest.raises(GraphError, match=r"y \(the targets\) is missing"):
        _graph().fit(x, verbose=0)
    with pytest.raises(GraphError, match=r"validation_steps is for validation_data that yields batches"):
        _graph().fit(x, y, validation_data=(x, y), validation_steps=2, verbose=0)
    with pytest.raises(GraphError, match=r"steps_per_epoch must be a positive integer"):
        _graph().fit(batches, steps_per_epoch=0, verbose=0)
    with pytest.raises(GraphError, match=r"initial_epoch must be an integer >= 0"):
        _graph().fit(x, y, initial_epoch=-1, verbose=0)


def test_initial_epoch_counts_on_from_an_earlier_fit(data):
    x, y, _ = data
    whole = _graph()
    whole.fit(x, y, epochs=5, batch_size=16, verbose=0)
    g = _graph()
    g.fit(x, y, epochs=2, batch_size=16, verbose=0)
    history = g.fit(x, y, epochs=5, initial_epoch=2, batch_size=16, verbose=0)
    assert history.epoch == [2, 3, 4]
    _same(whole, g)
    assert _graph().fit(x, y, epochs=2, initial_epoch=2, verbose=0).epoch == []


def test_fit_arguments_know_the_new_keywords():
    arguments = fit_arguments("search", {"steps_per_epoch": 3})
    assert arguments["steps_per_epoch"] == 3 and arguments["initial_epoch"] == 0
    assert arguments["validation_steps"] is None


def test_batches_on_a_device_train_as_on_the_cpu(device, data):
    x, y, w = data

    def forever():
        while True:
            yield from _batches(x, y, w)

    g = _graph()
    g.to(device)
    history = g.fit(forever(), epochs=2, steps_per_epoch=5, verbose=0, metrics=["accuracy"])
    cpu = _graph()
    expected = cpu.fit(x, y, epochs=2, batch_size=16, shuffle=False, sample_weight=w, verbose=0,
                       metrics=["accuracy"])
    for key, value in cpu.get_weights().items():
        np.testing.assert_allclose(g.get_weights()[key], value, rtol=1e-10)
    np.testing.assert_allclose(history.history["loss"], expected.history["loss"], rtol=1e-10)
