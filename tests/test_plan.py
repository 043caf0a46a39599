"""The compiled plan: one visit per node, compiled once, rebuilt after edits."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import build_dag, dag_data

import graphnet as gn
from graphnet import activations


class CountingTanh(activations.Tanh):
    def __init__(self):
        self.forwards = 0
        self.backwards = 0

    def forward(self, z, out=None):
        self.forwards += 1
        return super().forward(z, out)

    def backward(self, a, grad, z=None):
        self.backwards += 1
        return super().backward(a, grad, z)


def test_forward_and_backward_visit_each_node_once(rng):
    g = gn.Graph(seed=0, dtype="float64")
    counters = {}
    g.add_input("x", 3)
    for name in ("a", "b", "c"):
        counters[name] = CountingTanh()
        g.add_hidden(name, 4, activation=counters[name])
    counters["out"] = CountingTanh()
    g.add_output("out", 2, activation=counters["out"])
    g.connect("x", ["a"][0])
    g.connect(["x", "a"], "b")
    g.connect(["a", "b", "x"], "c")  # a fans out to b, c and out
    g.connect(["a", "b", "c"], "out")
    g.gradients(rng.normal(size=(5, 3)), rng.normal(size=(5, 2)))
    assert {n: (c.forwards, c.backwards) for n, c in counters.items()} == {
        n: (1, 1) for n in counters
    }
    g.predict(rng.normal(size=(5, 3)))
    assert all(c.forwards == 2 and c.backwards == 1 for c in counters.values())


@pytest.mark.parametrize(
    "edit, runs",
    [
        (lambda g: g.add_hidden("new", 2), False),  # 'new' has no synapse yet
        (lambda g: g.disconnect("h1", "main"), True),
        (lambda g: g.connect("b", "h3"), True),
        (lambda g: (g.remove("h3"), g.connect("aux", "main")), True),
    ],
)
def test_every_structural_edit_invalidates_the_plan(edit, runs):
    g = build_dag()
    plan = g.plan
    assert g.plan is plan  # compiled once, reused
    edit(g)
    assert plan.version != g.version  # stale
    if runs:
        assert g.plan is not plan and g.plan.version == g.version
    else:
        with pytest.raises(gn.GraphError, match="'new'"):
            g.plan


def test_backward_accumulates_fan_out_in_any_consumer_order(rng):
    """The same DAG with synapses connected in a different order gives the same gradients."""
    first = build_dag()
    x, y = dag_data(rng)
    loss_a, grads_a = first.gradients(x, y)
    second = gn.Graph(seed=0, dtype="float64")
    for node in first.nodes.values():
        second.add_node(type(node)(**{k: v for k, v in node.get_config().items() if k != "kind"}))
    for synapse in reversed(first.synapses):
        second.connect(synapse.src, synapse.dst, init=synapse.weight)
    for name, node in first.nodes.items():
        if hasattr(node, "bias"):
            second[name].bias = node.bias
    loss_b, grads_b = second.gradients(x, y)
    assert loss_a == pytest.approx(loss_b, rel=1e-12)
    for key in grads_a:
        np.testing.assert_allclose(grads_b[key], grads_a[key], rtol=1e-10, atol=1e-14)


def test_predict_leaves_no_state_on_the_graph(rng):
    g = build_dag()
    g.plan  # compiled
    before = dict(vars(g))
    g.predict(dag_data(rng)[0])
    assert vars(g) == before
    assert g.plan._train_workspaces == {}


def test_changing_a_node_setting_recompiles(rng):
    g = build_dag()
    x, y = dag_data(rng)
    before = g.predict(x)["main"]
    plan = g.plan
    g["h1"].activation = "relu"
    assert g.plan is not plan
    assert not np.allclose(g.predict(x)["main"], before)
    plan = g.plan
    g["main"].loss_weight = 2.0
    assert g.plan is not plan and g.plan.steps[-1].loss_weight == 2.0
    g["h2"].dropout = 0.5
    assert any(step.dropout == 0.5 for step in g.plan.steps)
    g.synapse("a", "h1").trainable = False
    assert "a->h1.weight" not in dict(g.plan.store.layout)


def test_activations_with_parameters_keep_their_own_on_each_node(rng):
    """Parameter-free activations of graphnet's own share their functions per
    type in the plan; two leaky_relu nodes with different slopes must not."""
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 3)
    g.add_hidden("gentle", 4, activation=activations.LeakyReLU(0.05))
    g.add_hidden("steep", 4, activation=activations.LeakyReLU(0.5))
    g.add_hidden("t1", 4, activation="tanh")
    g.add_hidden("t2", 4, activation="tanh")
    g.add_output("out", 2, activation="linear", loss="mse")
    g.connect("x", "gentle")
    g.connect("x", "steep")
    g.connect("gentle", "t1")
    g.connect("steep", "t2")
    g.connect(["t1", "t2"], "out")
    x = rng.normal(size=(6, 3))
    w = g.get_weights()

    def leaky(z, slope):
        return np.where(z > 0, z, slope * z)

    gentle = leaky(x @ w["x->gentle.weight"] + w["gentle.bias"], 0.05)
    steep = leaky(x @ w["x->steep.weight"] + w["steep.bias"], 0.5)
    t1 = np.tanh(gentle @ w["gentle->t1.weight"] + w["t1.bias"])
    t2 = np.tanh(steep @ w["steep->t2.weight"] + w["t2.bias"])
    expected = t1 @ w["t1->out.weight"] + t2 @ w["t2->out.weight"] + w["out.bias"]
    np.testing.assert_allclose(g.predict(x), expected, rtol=1e-12, atol=1e-12)
    report = gn.check_gradients(g, x, rng.normal(size=(6, 2)))
    assert report.ok, report
    steps = {step.name: step for step in g.plan.steps}
    assert steps["t1"].forward is steps["t2"].forward  # one bound function for both tanh nodes
    assert steps["gentle"].forward.__self__.negative_slope == 0.05
    assert steps["steep"].forward.__self__.negative_slope == 0.5
