"""Parameters (graphnet._parameters): keys, records, and the flat buffers."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import build_dag

from graphnet._parameters import BIAS, WEIGHT, ParameterRecord, bias_key, weight_key


def test_weights_are_views_into_one_flat_buffer():
    g = build_dag()
    store = g.plan.store
    for synapse in g.synapses:
        assert np.shares_memory(synapse.weight, store.values)
    assert store.values.size == g.num_params


def test_keys_and_records():
    assert weight_key("a", "h1") == "a->h1.weight" and bias_key("h1") == "h1.bias"
    g = build_dag()
    records = g.parameters()
    assert [r.key for r in records] == list(g.get_weights())
    first = records[0]
    assert first == ParameterRecord("a->h1.weight", WEIGHT, "h1", ("a", "h1"), (5, 6), True)
    assert first.size == 30
    bias = next(r for r in records if r.key == "main.bias")
    assert bias.kind == BIAS and bias.node == "main" and bias.synapse is None and bias.shape == (2,)


def test_trainable_parameters_come_first_and_locate_finds_each_one():
    g = build_dag()
    g.synapse("h1", "main").trainable = False
    g["aux"].trainable = False
    store = g.plan.store
    kinds = [r.trainable for r in store.records]
    assert kinds == sorted(kinds, reverse=True)
    assert store.num_trainable == g.num_trainable_params
    assert [k for k, _ in store.layout] == [r.key for r in store.records if r.trainable]
    start = 0
    for record in store.records:
        assert store.locate(start) is record and store.locate(start + record.size - 1) is record
        start += record.size
    with pytest.raises(IndexError):
        store.locate(start)


def test_spans_cover_exactly_the_trainable_weights():
    g = build_dag()
    g.synapse("a", "h1").trainable = False
    store = g.plan.store
    covered = np.zeros(store.values.size, bool)
    for span in store.spans(WEIGHT):
        covered[span] = True
    expected = np.zeros(store.values.size, bool)
    start = 0
    for record in store.records:
        expected[start : start + record.size] = record.kind == WEIGHT and record.trainable
        start += record.size
    assert np.array_equal(covered, expected)
    assert len(store.spans(WEIGHT)) < sum(r.kind == WEIGHT for r in store.records)  # neighbours merged


def _wide_dag(hidden: int = 12):
    """Many parameters of one shape (a window each for weights and biases)
    beside a few of their own shapes."""
    import graphnet as gn

    g = gn.Graph(name="wide", seed=3)
    g.add_input("x", 4)
    for i in range(hidden):
        g.add_hidden(f"h{i}", 4, activation="tanh")
        g.connect("x" if i == 0 else f"h{i - 1}", f"h{i}")
    g.add_hidden("odd", 3)
    g.connect("h0", "odd")
    g.add_output("y", 2)
    g.connect([f"h{hidden - 1}", "odd", "x"], "y")
    return g


@pytest.mark.parametrize("frozen", [False, True])
def test_every_view_is_its_slice_of_the_buffers(frozen):
    g = _wide_dag()
    if frozen:  # non-trainable parameters move behind the trainable ones
        g.synapse("h3", "h4").trainable = False
        g["h7"].trainable = False
    expected = {r.key: w for r, w in zip(g.parameters(), g.get_weights().values())}
    store = g.plan.store
    arrays = {record.key: owner.parameter_array for record, owner in zip(store.records, store.owners)}
    start = 0
    for record in store.records:
        stop = start + record.size
        value, grad = arrays[record.key], store.grad(record.key)
        for view, buffer in ((value, store.values), (grad, store.grads)):
            assert view.shape == record.shape and view.flags.c_contiguous and view.flags.writeable
            assert view.__array_interface__["data"][0] == buffer[start:stop].__array_interface__["data"][0]
        np.testing.assert_array_equal(value, expected[record.key])  # the values were copied in, in place
        start = stop
    assert start == store.values.size
    # Writes go both ways: the buffer sees the owner's array and the reverse.
    at = store._offsets[[r.key for r in store.records].index("h5.bias")]
    g["h5"].bias[...] = 7.0
    np.testing.assert_array_equal(store.values[at : at + 4], 7.0)
    store.values[at] = -1.0
    assert g["h5"].bias[0] == -1.0
    store.grads[:] = np.arange(store.grads.size)
    np.testing.assert_array_equal(store.grad("h5.bias"), np.arange(at, at + 4))


def test_the_plan_takes_each_gradient_of_its_own_parameter():
    g = _wide_dag()
    g.synapse("x", "y").trainable = False  # reorders the buffer: the plan must still pair each view rightly
    g["h2"].trainable = False
    plan = g.plan
    for step in plan.steps:
        assert step.bias_grad is plan.store.grad(f"{step.name}.bias")
        for slot, weight, weight_grad, _, _, _ in step.edges:
            src = plan.order[slot]
            assert weight is g.synapse(src, step.name).parameter_array
            assert weight_grad is plan.store.grad(f"{src}->{step.name}.weight")
