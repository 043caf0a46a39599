"""Weight initialisers (graphnet.initializers): their scales and the registry."""

from __future__ import annotations

import numpy as np
import pytest

import graphnet as gn
from graphnet import GraphError, initializers


def test_default_init_follows_the_destination_activation(rng):
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 400)
    g.add_hidden("r", 300, activation="relu")
    g.add_hidden("t", 300, activation="tanh")
    assert g.connect("x", "r").init == "he_normal"
    assert g.connect("x", "t").init == "glorot_uniform"
    assert g.synapse("x", "r").weight.std() == pytest.approx(np.sqrt(2 / 400), rel=0.02)
    limit = np.sqrt(6 / 700)
    w = g.synapse("x", "t").weight
    assert w.max() <= limit and w.min() >= -limit and w.std() == pytest.approx(limit / np.sqrt(3), rel=0.02)
    assert np.all(g["r"].bias == 0)


@pytest.mark.parametrize(
    "name, std",
    [
        ("he_normal", np.sqrt(2 / 500)),
        ("he_uniform", np.sqrt(6 / 500) / np.sqrt(3)),
        ("glorot_normal", np.sqrt(2 / 800)),
        ("glorot_uniform", np.sqrt(6 / 800) / np.sqrt(3)),
        ("zeros", 0.0),
    ],
)
def test_each_initializer_has_its_scale(name, std):
    w = initializers.get(name)((500, 300), np.random.default_rng(0), np.float64)
    assert w.shape == (500, 300) and w.dtype == np.float64
    assert w.std() == pytest.approx(std, rel=0.02, abs=1e-12)
    assert abs(w.mean()) < 0.05 * std + 1e-12


def test_registry():
    assert set(initializers.INITIALIZERS) == {"he_normal", "he_uniform", "glorot_normal", "glorot_uniform", "zeros"}
    with pytest.raises(GraphError, match=r"unknown initializer 'lecun'; known: \['glorot_normal'"):
        initializers.get("lecun")
    assert initializers.default_for(gn.activations.get("relu")) == "he_normal"
    assert initializers.default_for(gn.activations.get("sigmoid")) == "glorot_uniform"
