"""Pickling a Graph (for ``copy.deepcopy`` and scikit-learn's ``joblib.dump``):
the compiled plan and its lock are dropped and rebuilt; weights, optimizer
state and random streams survive."""

from __future__ import annotations

import copy
import pickle
import threading

import numpy as np
from conftest import build_dag, dag_data


def test_unpickled_graph_predicts_identically_and_trains_on_identically(rng):
    graph = build_dag()
    x, y = dag_data(rng, rows=16)
    graph.fit(x, y, epochs=2, batch_size=4, verbose=0)  # a plan, workspaces, Adam moments
    again = pickle.loads(pickle.dumps(graph))
    assert again._compiled == {}  # the plan is compiled again, not unpickled
    assert isinstance(again._compile_lock, type(threading.Lock()))
    for name, value in graph.predict(x).items():
        np.testing.assert_array_equal(again.predict(x)[name], value)
    assert again.optimizer.iterations == graph.optimizer.iterations
    # the same next steps: optimizer moments and the dropout/shuffle stream came along
    graph.fit(x, y, epochs=2, batch_size=4, verbose=0)
    again.fit(x, y, epochs=2, batch_size=4, verbose=0)
    for key, value in graph.get_weights().items():
        np.testing.assert_array_equal(again.get_weights()[key], value)


def test_deepcopy_is_independent(rng):
    graph = build_dag()
    x, y = dag_data(rng)
    graph.train_step(x, y)
    clone = copy.deepcopy(graph)
    before = graph.get_weights()
    clone.train_step(x, y)
    for key, value in graph.get_weights().items():
        np.testing.assert_array_equal(value, before[key])
    assert any(
        not np.array_equal(clone.get_weights()[k], v) for k, v in before.items()
    )
    assert clone.topological_order == graph.topological_order
