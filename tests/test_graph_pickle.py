"""Pickling a Graph (for ``copy.deepcopy`` and scikit-learn's ``joblib.dump``):
the compiled plan and its lock are dropped and rebuilt; weights, optimizer
state and random streams survive."""

from __future__ import annotations

import copy
import gc
import os
import pickle
import signal
import sys
import threading
import weakref

import numpy as np
import pytest
from conftest import build_dag, dag_data

import graphnet as gn


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


def test_a_graph_pickled_with_its_name_seed_and_dtype_as_plain_attributes_unpickles(rng, monkeypatch):
    """Pickles (a joblib-dumped estimator) made before the graph's name, seed
    and dtype were checked settings still load, predict and save."""
    g = build_dag(dtype="float64")
    x, _ = dag_data(rng, rows=5)
    state = g.__getstate__

    def plain(self):
        held = state.__get__(self)()
        return {(key[1:] if key in ("_name", "_seed", "_dtype") else key): value for key, value in held.items()}

    with monkeypatch.context() as m:
        m.setattr(type(g), "__getstate__", plain)
        old = pickle.dumps(g)
    assert b"_dtype" not in old
    back = pickle.loads(old)
    assert (back.name, back.seed, back.dtype) == (g.name, g.seed, np.dtype("float64"))
    for name, value in g.predict(x).items():
        np.testing.assert_array_equal(back.predict(x)[name], value)
    back.name = "renamed"
    assert back.name == "renamed" and "name" not in vars(back)


def test_a_graph_let_go_of_is_freed_at_once_not_by_the_cyclic_collector(rng):
    """Nodes and synapses hold their graph weakly: a graph is no cycle, so
    its weights, optimizer state and buffers go when the last reference does."""
    x, y = dag_data(rng, 32)
    gc.disable()
    try:
        g = build_dag()
        g.fit(x, y, epochs=1, verbose=0)
        g.predict({k: v[:1] for k, v in x.items()})
        nodes, synapse = list(g.nodes.values()), g.synapses[0]
        alive = weakref.ref(g)
        del g
        assert alive() is None
        assert all(node.graph is None for node in nodes) and synapse.graph is None
        copied = pickle.loads(pickle.dumps(build_dag()))
        assert all(node.graph is copied for node in copied.nodes.values())
        assert all(s.graph is copied for s in copied.synapses)
        alive = weakref.ref(copied)
        del copied
        assert alive() is None
    finally:
        gc.enable()


def test_a_member_of_a_graph_never_run_still_draws_from_it_when_the_user_let_go_of_it():
    """Until a graph has drawn everything, its members hold it: what they
    show is what the graph would have drawn."""
    def make():
        return gn.Sequential([gn.Input(3), gn.Dense(4), gn.Dense(1)], seed=0)

    kept = make()
    expected_bias, expected_weight = kept.layers[1].bias.copy(), kept.synapses[0].weight.copy()
    np.testing.assert_array_equal(make().layers[1].bias, expected_bias)
    np.testing.assert_array_equal(make().synapses[0].weight, expected_weight)
    synapse = make().synapses[0]
    synapse.weight = np.ones((3, 4))
    np.testing.assert_array_equal(synapse.weight, np.ones((3, 4)))


def test_an_edit_racing_the_last_reference_to_its_graph_reaches_it_or_finds_none(rng):
    failures = []
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(200):
            g = build_dag()
            g.get_weights()  # drawn: the members hold the graph weakly
            node = g["h1"]

            def edit(node=node):
                try:
                    for k in range(100):
                        node.activation = "tanh" if k % 2 else "relu"
                        node.trainable = bool(k % 2)
                except Exception as exc:  # noqa: BLE001 - the test is that none comes
                    failures.append(exc)

            worker = threading.Thread(target=edit)
            worker.start()
            del g
            worker.join()
    finally:
        sys.setswitchinterval(switch)
    assert failures == []


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


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "momentum", "rmsprop", "adamw"])
def test_a_graph_unpickled_with_read_only_arrays_trains_on_identically(rng, optimizer):
    """joblib's processes memory-map large arrays read-only, and pickle's
    out-of-band buffers (as dask and Ray ship arrays) may be read-only too: the
    optimizer's update raised numba's or numpy's raw error on them."""
    graph = build_dag(dtype="float64")
    x, y = dag_data(rng, rows=16)
    graph.fit(x, y, epochs=1, batch_size=4, verbose=0, optimizer=optimizer)
    graph.freeze("h1")
    graph.fit(x, y, epochs=1, batch_size=4, verbose=0)  # h1's state is held aside while it is frozen
    buffers = []
    data = pickle.dumps(graph, protocol=5, buffer_callback=buffers.append)
    again = pickle.loads(data, buffers=[bytes(b.raw()) for b in buffers])  # bytes: read-only
    assert buffers  # the arrays travelled out of band
    for g in (graph, again):
        g.fit(x, y, epochs=1, batch_size=4, verbose=0)
        g.unfreeze("h1")
        g.fit(x, y, epochs=1, batch_size=4, verbose=0)
    for key, value in graph.get_weights().items():
        np.testing.assert_array_equal(again.get_weights()[key], value)


def test_a_child_forked_while_other_threads_use_the_graph_can_use_it(rng):
    """A process forked while another thread trained (or predicted) copied
    the graph's lock as that thread held it, and the child waited forever
    for a thread it does not have."""
    if not hasattr(os, "fork"):
        pytest.skip("no os.fork here")
    graph = build_dag(dtype="float64")
    x, y = dag_data(rng, rows=64)
    graph.fit(x, y, epochs=1, verbose=0)
    other = copy.deepcopy(graph)
    held, release = threading.Barrier(3), threading.Event()

    def hold(lock):  # another thread in the middle of a step, or of a prediction
        with lock:
            held.wait(10)
            release.wait(10)

    threads = [threading.Thread(target=hold, args=(graph.lock.writing(),)),
               threading.Thread(target=hold, args=(other.lock.reading(),))]
    for thread in threads:
        thread.start()
    held.wait(10)
    with other.lock.reading():  # what the forking thread itself holds, the child keeps
        pid = os.fork()
        if pid == 0:  # the child: it ends by itself, whatever happens
            code = 1
            try:
                signal.alarm(20)
                graph.fit(x, y, epochs=1, verbose=0)
                other.predict(x)
                other.lock.release_read()  # the read lock this thread took before the fork
                other.fit(x, y, epochs=1, verbose=0)  # no reader is left behind
                code = 0 if not graph.lock.busy and not other.lock.busy else 2
            finally:
                os._exit(code)
    release.set()
    for thread in threads:
        thread.join()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    assert not graph.lock.busy and not other.lock.busy


def _in_forked_child(check) -> int:
    """Fork; run ``check()`` in the child (ended by an alarm if it hangs) and
    give its exit status: 0 when it returned."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.alarm(20)
            check()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1


def test_a_child_forked_in_the_middle_of_another_threads_step_is_not_training(rng):
    """A fit, or a step, under way in another thread never ends in the child:
    there the graph's inputs can change and gradients() runs."""
    if not hasattr(os, "fork"):
        pytest.skip("no os.fork here")
    graph = build_dag(dtype="float64")
    x, y = dag_data(rng, rows=16)
    stepping, release = threading.Event(), threading.Event()

    def wait_inside_the_step(y_true, y_pred):  # a metric: called within the training step
        stepping.set()
        release.wait(10)
        return float(np.mean(y_pred))

    fit = threading.Thread(target=graph.fit, args=(x, y), kwargs={
        "epochs": 1, "batch_size": 16, "verbose": 0, "metrics": {"main": [wait_inside_the_step]}})
    fit.start()
    assert stepping.wait(10)
    with pytest.raises(gn.GraphError, match="is training"):
        graph.add_input("c", 2)  # while the fit runs, here

    def in_the_child():
        graph.gradients(x, y)
        answers = []  # a new thread there may get the stepping thread's id: glibc reuses them
        worker = threading.Thread(target=lambda: answers.append(graph.gradients(x, y)[0]))
        worker.start()
        worker.join(10)
        assert len(answers) == 1
        graph.add_input("c", 2)
        assert "c" in graph.inputs

    status = _in_forked_child(in_the_child)
    release.set()
    fit.join(10)
    assert status == 0
    assert "c" not in graph.inputs


def test_a_child_forked_while_another_thread_compiles_can_compile():
    """numba compiles under one lock: a fork waits for a compile under way,
    rather than leave the child a lock held by a thread it does not have."""
    numba = pytest.importorskip("numba")
    if not hasattr(os, "fork"):
        pytest.skip("no os.fork here")
    from numba.core.compiler_lock import global_compiler_lock

    from graphnet import _kernels

    if not _kernels.prepare(np.float64):
        pytest.skip("graphnet's kernels are off here")
    held, compiled = threading.Event(), threading.Event()

    def compile_for_a_moment():
        with global_compiler_lock:  # as a first predict's compile holds it
            held.set()
            compiled.wait(0.5)

    thread = threading.Thread(target=compile_for_a_moment)
    thread.start()
    assert held.wait(10)
    status = _in_forked_child(lambda: numba.njit(lambda v: v + 1)(1))
    thread.join(10)
    assert status == 0
