"""Threads around a graph: readers see one moment, writers wait (SPEC 3, issue 29).

``save``, ``save_weights``, ``summary``, ``to_dot``, ``to_dict`` and ``predict`` take the read
lock (a short ``predict`` reads without it and runs again under it when a
write lands in the middle); training steps and edits take the write lock;
``fit`` compiles the graph of one moment even while another thread edits it.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import graphnet as gn
from graphnet import _kernels
from graphnet.inference import SHORT_CALL_ROWS


def _constant_gradient_net():
    """A linear model whose mae gradient is the same at every step (the
    targets stay far above the predictions), trained by SGD with momentum:
    after ``k`` steps the weight and the velocity are functions of ``k`` alone."""
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 300)
    g.add_output("y", 300, loss="mae")  # 90,000 weights: a save takes a while to write
    g.connect("x", "y", init=np.zeros((300, 300)))
    g.nodes["y"].bias = np.zeros(300)
    x = np.ones((64, 300))
    y = np.full((64, 300), 1e9)
    return g, x, y


def _expected(k: int, lr: float, mu: float) -> tuple[float, float]:
    """Weight and velocity after ``k`` steps of gradient -1/300 (mae, below its
    target, averaged over 300 output units)."""
    w, v = 0.0, 0.0
    for _ in range(k):
        v = mu * v + lr * (-1.0 / 300)
        w = w - v
    return w, v


def _load_model(path):
    return gn.load(path)


def _load_weights(path):
    g, _, _ = _constant_gradient_net()
    g.load_weights(path)
    return g


@pytest.mark.parametrize(("save", "load"), [("save", _load_model), ("save_weights", _load_weights)])
def test_save_during_fit_writes_the_weights_and_the_optimizer_of_one_step(tmp_path, save, load):
    g, x, y = _constant_gradient_net()
    lr, mu = 1e-3, 0.9
    g.fit(x, y, epochs=1, batch_size=64, verbose=0, shuffle=False, optimizer=gn.optimizers.SGD(lr=lr, momentum=mu))
    stop, saved = threading.Event(), []

    def save_in_a_loop():
        i = 0
        while not stop.is_set():
            path = getattr(g, save)(tmp_path / f"m{i}.gnet")
            if len(saved) < 400:
                saved.append(path)
            else:
                path.unlink()
            i += 1

    thread = threading.Thread(target=save_in_a_loop)
    thread.start()
    try:
        g.fit(x, y, epochs=150, batch_size=8, verbose=0, shuffle=False)
    finally:
        stop.set()
        thread.join()
    assert len(saved) > 20
    torn = []
    for path in saved:
        loaded = load(path)
        k = loaded.optimizer.iterations
        w, v = _expected(k, lr, mu)
        weight = loaded.get_weights()["x->y.weight"]
        velocity = loaded.optimizer.get_state()["slots"]["velocity"][: weight.size]
        if not (np.allclose(weight, w, rtol=1e-9, atol=0) and np.allclose(velocity, v, rtol=1e-9, atol=0)):
            torn.append((path.name, k, weight[0, 0], w))
    assert not torn, f"files holding the weights of one step and the optimizer of another: {torn[:3]}"


def test_readers_during_surgery_see_one_graph():
    """summary, to_dot and to_dict while another thread inserts and removes a
    node: each sees the graph before or after an edit, never half of one."""
    g = gn.Graph(seed=0)
    g.add_input("x", 3)
    g.add_hidden("h", 4)
    g.add_output("y", 2)
    g.connect("x", "h")
    g.connect("h", "y")
    stop, errors, seen = threading.Event(), [], set()

    def edit_in_a_loop():
        while not stop.is_set():
            g.insert("h", "y", "t", activation="linear")
            g.remove("t", bridge=True)

    thread = threading.Thread(target=edit_in_a_loop)
    thread.start()
    try:
        for _ in range(300):
            try:
                text = g.summary(print_fn=None)
                nodes = [n["name"] for n in g.to_dict()["nodes"]]
                g.to_dot()
            except Exception as exc:  # the failure this test is about: any exception
                errors.append(repr(exc))
                continue
            seen.add(tuple(nodes))
            assert ("t (Hidden)" in text) == (" t " in text.replace("(", " ")), text
    finally:
        stop.set()
        thread.join()
    assert not errors, errors[:3]
    assert seen <= {("x", "h", "y"), ("x", "h", "t", "y")}


def test_fit_started_while_another_thread_edits_trains_the_graph_of_one_moment():
    g = gn.Graph(seed=0)
    g.add_input("x", 3)
    g.add_hidden("h", 4)
    g.add_hidden("side", 2)
    g.add_output("y", 1)
    g.connect("x", "h")
    g.connect("h", "y")
    g.connect("x", "side")
    g.connect("side", "y")
    x, y = np.random.default_rng(0).normal(size=(32, 3)), np.zeros((32, 1))
    stop, errors = threading.Event(), []

    def edit_in_a_loop():
        while not stop.is_set():
            g.disconnect("side", "y")
            g.connect("side", "y")

    thread = threading.Thread(target=edit_in_a_loop)
    thread.start()
    try:
        for _ in range(40):
            try:
                g.fit(x, y, epochs=1, batch_size=32, verbose=0)
            except gn.GraphError as exc:  # a clean refusal (the graph changed its outputs) is allowed
                assert "changed" in str(exc) or "cannot run" in str(exc), exc
            except Exception as exc:  # a KeyError from a plan compiled mid-edit is not
                errors.append(repr(exc))
    finally:
        stop.set()
        thread.join()
    assert not errors, errors[:3]


class _WriteInTheMiddle(gn.activations.Activation):
    """tanh, which once armed runs ``write`` in another thread and waits for
    it (up to ``patience`` seconds) while the forward pass is half done."""

    name = "tanh_with_a_write_in_the_middle"

    def __init__(self):
        self.write, self.patience, self.writer = None, 5.0, None

    def forward(self, z):
        if self.write is not None:
            self.writer = threading.Thread(target=self.write)
            self.write = None
            self.writer.start()
            self.writer.join(self.patience)
        return np.tanh(z)

    def backward(self, a, grad):
        return grad * (1 - a * a)


def _two_layers():
    """x -> h (the hook) -> y: a write between h and y tears a call that does not see it."""
    hook = _WriteInTheMiddle()
    g = gn.Sequential([gn.Input(4), gn.Dense(8, activation=hook, name="h"), gn.Dense(3, name="y")],
                      seed=0, dtype="float64")
    before = g.get_weights()
    after = {key: 2 * value + 0.5 for key, value in before.items()}
    return g, hook, before, after


@pytest.mark.parametrize("rows", [1, SHORT_CALL_ROWS])
def test_a_short_predict_with_a_write_in_its_middle_runs_again_and_sees_the_write(rows):
    g, hook, before, after = _two_layers()
    x = np.random.default_rng(0).normal(size=(rows, 4))
    g.set_weights(after)
    expected = g.predict(x)
    g.set_weights(before)
    old = g.predict(x)
    hook.write = lambda: g.set_weights(after)
    got = g.predict(x)
    assert not hook.writer.is_alive()  # the write did not wait for the call
    np.testing.assert_array_equal(got, expected)  # every layer's weights after the write, none before
    assert not np.allclose(got, old)


def test_a_long_predict_holds_the_read_lock_and_a_write_waits_for_it():
    g, hook, before, _ = _two_layers()
    x = np.random.default_rng(0).normal(size=(SHORT_CALL_ROWS + 1, 4))
    expected = g.predict(x)
    zeros = {key: np.zeros_like(value) for key, value in before.items()}
    hook.write, hook.patience = (lambda: g.set_weights(zeros)), 0.2
    got = g.predict(x)
    hook.writer.join(5)
    np.testing.assert_array_equal(got, expected)  # the write landed after the call
    assert not np.any(g.predict(x))


@pytest.mark.parametrize("path", ["one call", "numpy"])
def test_one_row_predictions_while_another_thread_writes_are_each_of_one_moment(path, monkeypatch):
    """Weights switched between two sets in a loop: every one-row prediction is
    one set's, never a mix (the optimistic read checked under contention), on
    predict's one-call path and on its numpy path."""
    if path == "numpy":
        monkeypatch.setattr(_kernels, "ENABLED", False)
    rng = np.random.default_rng(1)
    g = gn.Sequential([gn.Input(32), *[gn.Dense(256, activation="tanh") for _ in range(4)], gn.Dense(2)],
                      seed=0, dtype="float64")
    a = g.get_weights()
    b = {key: -value for key, value in a.items()}
    x = rng.normal(size=(1, 32))
    g.set_weights(b)
    want_b = g.predict(x)
    g.set_weights(a)
    want_a = g.predict(x)
    stop, torn, seen = threading.Event(), [], set()

    def switch():
        while not stop.is_set():
            for weights in (b, a):
                g.set_weights(weights)
                time.sleep(0)  # the reader's turn: a call starts with the lock free, and a write lands in it

    writer = threading.Thread(target=switch)
    writer.start()
    try:
        for i in range(30_000):
            if i >= 3000 and len(seen) == 2:
                break
            got = g.predict(x)
            if np.array_equal(got, want_a):
                seen.add("a")
            elif np.array_equal(got, want_b):
                seen.add("b")
            else:
                torn.append(got)
    finally:
        stop.set()
        writer.join()
    assert not torn, f"{len(torn)} predictions mixed two sets of weights"
    assert seen == {"a", "b"}
    assert _kernels.available() == (path == "one call")


def test_statistics_with_targets_in_two_threads_take_turns(monkeypatch):
    """statistics(x, y) fills the plan's gradient buffer: a second thread's
    call waits until the first has read its gradients (both held only the
    read lock, and the second could overwrite the first's gradients, giving
    wrong norms without a word)."""
    from graphnet.plan import Plan

    g = gn.Graph(seed=0)
    g.add_input("x", 8)
    g.add_hidden("h", 16, activation="tanh")
    g.add_output("y", 1)
    g.connect("x", "h")
    g.connect("h", "y")
    x = np.random.default_rng(0).normal(size=(16, 8))
    y_first, y_second = x.sum(1, keepdims=True), -3 * x.sum(1, keepdims=True)
    expected = {k: s.grad_norm for k, s in g.statistics(x, y_first).synapses.items()}
    other = {k: s.grad_norm for k, s in g.statistics(x, y_second).synapses.items()}
    assert expected != other

    inside, go = threading.Event(), threading.Event()
    first = threading.get_ident()
    unpatched = Plan.loss_and_gradients

    def pausing(self, *args, **kwargs):
        result = unpatched(self, *args, **kwargs)
        if threading.get_ident() == first:  # the first call stops with its gradients in the buffer
            inside.set()
            go.wait(10)
        return result

    monkeypatch.setattr(Plan, "loss_and_gradients", pausing)
    results = {}
    second = threading.Thread(target=lambda: results.update(second=g.statistics(x, y_second)))

    def release():
        inside.wait(10)
        second.start()
        time.sleep(0.3)
        results["second_waited"] = second.is_alive()
        go.set()

    releaser = threading.Thread(target=release)
    releaser.start()
    got = g.statistics(x, y_first)
    releaser.join(10)
    second.join(10)
    assert results["second_waited"]
    assert {k: s.grad_norm for k, s in got.synapses.items()} == expected
    assert {k: s.grad_norm for k, s in results["second"].synapses.items()} == other
