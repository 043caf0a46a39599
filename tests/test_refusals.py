"""Bad sizes, types and numbers are refused with a GraphError before anything
is allocated or changed (issue 29, items 16 to 18)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import build_chain

import graphnet as gn


def test_widen_to_an_impossible_size_is_refused_before_any_allocation():
    g = build_chain()
    before = g.get_weights()
    with pytest.raises(gn.GraphError, match=r"widen: 'h' with 1,099,511,627,776 units needs .* bytes"):
        g.widen("h", 2**40)
    assert all(np.array_equal(before[k], v) for k, v in g.get_weights().items())


def test_insert_refuses_a_name_that_is_not_a_string():
    g = build_chain()
    with pytest.raises(gn.GraphError, match="insert: the new node name must be a non-empty string, got None"):
        g.insert("h", "y", None)
    assert g.topological_order == ["x", "h", "y"]


@pytest.mark.parametrize("values", [
    np.zeros((3, 4), "datetime64[s]"),
    np.zeros((3, 4), "timedelta64[s]"),
    np.zeros((3, 4), complex),
    np.full((3, 4), "1"),
    np.full((3, 4), b"1"),
    np.full((3, 4), None, dtype=object),
])
def test_set_and_transfer_weights_take_real_numbers_only(values):
    g = build_chain()
    before = g.get_weights()
    with pytest.raises(gn.GraphError, match=r"weight 'x->h.weight': expected numbers, got ndarray of dtype .* \(only real numbers"):
        g.set_weights({"x->h.weight": values})
    with pytest.raises(gn.GraphError, match=r"only real numbers"):
        g.transfer_weights({"x->h.weight": values}, strict=False)
    assert all(np.array_equal(before[k], v) for k, v in g.get_weights().items())


def test_row_weights_that_sum_to_zero_are_refused_as_numpy_average_refuses_them(rng):
    g = build_chain()
    x, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 1))
    with pytest.raises(ZeroDivisionError):
        np.average(y[:, 0], weights=np.zeros(8))
    for call in (lambda: g.fit(x, y, sample_weight=np.zeros(8), verbose=0),
                 lambda: g.evaluate(x, y, sample_weight=np.zeros(8))):
        with pytest.raises(gn.GraphError, match="row weights of output 'y' .* sum to 0"):
            call()
    assert g.optimizer is None or g.optimizer.iterations == 0


def test_a_class_weight_for_a_class_the_output_cannot_predict_is_refused(rng):
    g = gn.Graph(seed=0)
    g.add_input("x", 3)
    g.add_output("y", 3, activation="softmax", loss="categorical_crossentropy")
    g.connect("x", "y")
    x, y = rng.normal(size=(8, 3)), rng.integers(0, 3, 8)
    with pytest.raises(gn.GraphError, match=r"predicts classes 0 to 2, but class_weight names \[3\]"):
        g.fit(x, y, class_weight={0: 1.0, 3: 2.0}, verbose=0)
    binary = gn.Graph(seed=0)
    binary.add_input("x", 3)
    binary.add_output("y", 1, activation="sigmoid", loss="binary_crossentropy")
    binary.connect("x", "y")
    with pytest.raises(gn.GraphError, match=r"predicts classes 0 to 1, but class_weight names \[2\]"):
        binary.fit(x, (y > 0).astype(float), class_weight={2: 5.0}, verbose=0)
    binary.fit(x, (y > 0).astype(float), class_weight={0: 1.0, 1: 5.0}, verbose=0)  # its two classes are fine
