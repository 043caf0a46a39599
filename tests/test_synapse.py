"""Synapse (graphnet.synapse): the weight between two nodes, its key and settings."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import build_dag

from graphnet import GraphError


def test_weight_and_bias_setters_check_shapes():
    g = build_dag()
    with pytest.raises(GraphError, match=r"synapse 'a' -> 'h1': weight must have shape \(5, 6\)"):
        g.synapse("a", "h1").weight = np.zeros((6, 5))
    with pytest.raises(GraphError, match=r"node 'h1': bias must have shape \(6,\)"):
        g["h1"].bias = np.zeros(3)
    g.synapse("a", "h1").weight = np.ones((5, 6))
    assert np.all(g.get_weights()["a->h1.weight"] == 1)


def test_key_shape_config_and_repr():
    g = build_dag()
    s = g.synapse("h1", "main")
    assert s.key == "h1->main.weight" and s.shape == (6, 2) and s.num_params == 12
    assert s.get_config() == {"src": "h1", "dst": "main", "init": "fan_in_uniform", "trainable": True}
    s.trainable = False
    assert repr(s) == "Synapse('h1' -> 'main', shape=(6, 2), trainable=False)"
    assert g.num_trainable_params == g.num_params - 12
