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
