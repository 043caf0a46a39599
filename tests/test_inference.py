"""predict and evaluate (graphnet.inference): buffers of their own, safe from
several threads, chunking that changes nothing."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import build_dag, dag_data

import graphnet as gn


def _trained_mlp(rows=64):
    rng = np.random.default_rng(7)
    model = gn.Sequential(
        [gn.Input(6), gn.Dense(16, activation="relu"), gn.Dense(3, activation="softmax")], seed=1
    )
    x = rng.normal(size=(rows, 6)).astype(np.float32)
    y = rng.integers(0, 3, size=rows)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    return model, x, y


def test_predict_shares_no_buffer_with_training():
    model, x, y = _trained_mlp()
    first = model.predict(x[:16])
    kept = first.copy()
    model.train_step(x[:16], y[:16])  # same row count as predict's chunk
    assert np.array_equal(first, kept), "training wrote into an array predict returned"
    second = model.predict(x[:16])
    assert not np.shares_memory(first, second)
    assert not np.array_equal(first, second), "the weights changed, so must the predictions"


def test_predict_is_safe_from_several_threads():
    model, x, _ = _trained_mlp(rows=512)
    expected = model.predict(x, batch_size=32)
    results, errors = [None] * 6, []

    def work(i):
        try:
            for _ in range(10):
                out = model.predict(x, batch_size=32)
                if not np.array_equal(out, expected):
                    raise AssertionError(f"thread {i} got different predictions")
            results[i] = out
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert all(np.array_equal(r, expected) for r in results)


def test_predict_equals_the_forward_of_evaluate_and_chunking_does_not_matter():
    model, x, _ = _trained_mlp(rows=100)
    whole = model.predict(x)
    chunked = model.predict(x, batch_size=7)
    np.testing.assert_allclose(whole, chunked, rtol=1e-6, atol=1e-7)


def test_predict_from_eight_threads_equals_serial_predict(rng):
    g = build_dag(dtype="float32")
    batches = [dag_data(rng, rows=int(n))[0] for n in rng.integers(1, 300, size=32)]
    g.fit(*dag_data(rng, rows=64), epochs=1, verbose=0)  # training buffers exist too
    serial = [g.predict(x, batch_size=50) for x in batches]
    fresh = build_dag(dtype="float32")
    fresh.set_weights(g.get_weights())  # an uncompiled graph: threads race to compile it
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(lambda x: fresh.predict(x, batch_size=50), batches * 4))
    for i, result in enumerate(parallel):
        expected = serial[i % len(batches)]
        for name in expected:
            np.testing.assert_array_equal(result[name], expected[name])


def test_evaluate_in_chunks_equals_evaluate_at_once(rng):
    g = build_dag()
    x, y = dag_data(rng, rows=50)
    whole = g.evaluate(x, y, metrics=["accuracy"])
    chunked = g.evaluate(x, y, batch_size=7, metrics=["accuracy"])
    assert whole.keys() == chunked.keys()
    for k in whole:
        assert chunked[k] == pytest.approx(whole[k], rel=1e-12)
