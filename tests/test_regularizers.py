"""Regularizers (graphnet.regularizers): values and gradients by hand, the
reported loss, float64 gradient checks, and files."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import assert_gradients_match

import graphnet as gn
from graphnet import GraphError, regularizers


def test_values_and_gradients_by_hand():
    w = np.array([[1.0, -2.0], [0.5, 0.0]])
    cases = [
        (regularizers.L1(0.1), 0.1 * 3.5, 0.1 * np.sign(w)),
        (regularizers.L2(0.1), 0.1 * 5.25, 0.2 * w),
        (regularizers.L1L2(0.1, 0.3), 0.1 * 3.5 + 0.3 * 5.25, 0.1 * np.sign(w) + 0.6 * w),
    ]
    for regularizer, value, gradient in cases:
        assert regularizer.penalty(w) == pytest.approx(value)
        grad = np.zeros_like(w)
        regularizer.add_gradient(w, grad)
        np.testing.assert_allclose(grad, gradient)
        assert regularizers.get(regularizer.get_config()) == regularizer
    assert regularizers.get("l2") == regularizers.L2(0.01)  # Keras's default strength


def _graph():
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 3)
    g.add_hidden("h", 4, activation="tanh", bias_regularizer=regularizers.L1(0.05))
    g.add_output("y", 2, bias_regularizer="l2")
    g.connect("x", "h", regularizer=regularizers.L1L2(0.01, 0.02))
    g.connect("h", "y", regularizer={"name": "l2", "l2": 0.1})
    g.set_weights({"h.bias": np.array([0.3, -0.2, 0.1, 0.4]), "y.bias": np.array([0.5, -0.5])})
    return g


def test_the_penalty_is_in_the_reported_loss():
    g = _graph()
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    w = g.get_weights()
    penalty = (0.01 * np.abs(w["x->h.weight"]).sum() + 0.02 * (w["x->h.weight"] ** 2).sum()
               + 0.1 * (w["h->y.weight"] ** 2).sum() + 0.05 * np.abs(w["h.bias"]).sum()
               + 0.01 * (w["y.bias"] ** 2).sum())
    data_loss = np.mean((g.predict(x) - y) ** 2)
    assert g.evaluate(x, y)["loss"] == pytest.approx(data_loss + penalty, rel=1e-12)
    loss, _ = g.gradients(x, y)
    assert loss == pytest.approx(data_loss + penalty, rel=1e-12)
    history = g.fit(x, y, epochs=1, batch_size=6, optimizer="sgd", verbose=0)
    assert history.history["loss"][0] == pytest.approx(data_loss + penalty, rel=1e-12)


def test_gradients_include_the_penalty_and_match_central_differences():
    g = _graph()
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    _, analytic = g.gradients(x, y)
    assert_gradients_match(g, x, y)  # central differences of the loss, penalty included
    plain = _graph()
    for s in plain.synapses:
        s.regularizer = None
    for name in ("h", "y"):
        plain[name].bias_regularizer = None
    _, without = plain.gradients(x, y)
    w = g.get_weights()
    np.testing.assert_allclose(analytic["h->y.weight"] - without["h->y.weight"], 0.2 * w["h->y.weight"], atol=1e-12)


def test_regularizers_are_saved_and_specs_may_name_them(tmp_path):
    g = _graph()
    back = gn.load(g.save(tmp_path / "r.gnet"))
    assert back.synapse("x", "h").regularizer == regularizers.L1L2(0.01, 0.02)
    assert back["h"].bias_regularizer == regularizers.L1(0.05)
    assert back.to_dict() == g.to_dict()
    with pytest.raises(GraphError, match="unknown regularizer 'l3'"):
        gn.Graph.from_dict({"nodes": [{"kind": "input", "name": "x", "size": 2},
                                      {"kind": "output", "name": "y", "size": 1}],
                            "synapses": [{"src": "x", "dst": "y", "regularizer": "l3"}]})


class Cubic(regularizers.Regularizer):
    """``c Σ|w|³``, with a Keras-style get_config (its arguments alone)."""

    name = "cubic"

    def __init__(self, c=0.1):
        self.c = c

    def penalty(self, w, xp=np):
        return self.c * float((np.abs(w) ** 3).sum())

    def add_gradient(self, w, grad, xp=np):
        grad += 3 * self.c * w * np.abs(w)

    def get_config(self):
        return {"c": self.c}


def test_a_custom_regularizer_s_config_gets_its_name_and_a_file_says_it_is_unknown(tmp_path):
    class Plain(Cubic):  # the base class's get_config: the name alone
        name = "plain"
        get_config = regularizers.Regularizer.get_config

    g = gn.Graph(seed=0)
    g.add_input("x", 2)
    g.add_output("y", 1, bias_regularizer=Plain())
    g.connect("x", "y", regularizer=Cubic(0.5))
    assert g.to_dict()["synapses"][0]["regularizer"] == {"name": "cubic", "c": 0.5}
    assert g.to_dict()["nodes"][1]["bias_regularizer"] == {"name": "plain"}
    assert repr(g["y"].bias_regularizer) == "Plain()"
    path = g.save(tmp_path / "cubic.gnet")
    with pytest.raises(gn.ModelFileError, match=r"unknown regularizer 'plain'"):
        gn.load(path)


def test_a_custom_regularizer_s_config_no_file_could_hold_is_refused(tmp_path):
    g = gn.Graph(seed=0)
    g.add_input("x", 2)
    g.add_output("y", 1)
    with pytest.raises(GraphError, match=r"custom regularizer 'cubic' \(Cubic\): get_config\(\)\['c'\] is "
                                         r"np.float32\(0.5\), which a model file cannot hold"):
        g.connect("x", "y", regularizer=Cubic(np.float32(0.5)))
    assert not g.synapses
    cubic = Cubic(0.5)
    g.connect("x", "y", regularizer=cubic)
    cubic.c = np.float32(0.5)
    with pytest.raises(GraphError, match=r"synapse 'x' -> 'y': custom regularizer 'cubic' \(Cubic\)"):
        g.save(tmp_path / "cubic.gnet")
    assert not (tmp_path / "cubic.gnet").exists()


def test_a_sequential_takes_keras_names_and_regularizing_shrinks_weights():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(64, 5))
    y = x @ rng.normal(size=(5, 1))
    norms = []
    for strength in (0.0, 1.0):
        model = gn.Sequential([gn.Input(5), gn.Dense(1, kernel_regularizer=regularizers.L2(strength))], seed=0)
        model.fit(x, y, epochs=30, optimizer={"name": "adam", "lr": 0.05}, verbose=0)
        norms.append(np.linalg.norm(model.get_weights()["input->dense.weight"]))
    assert norms[1] < 0.75 * norms[0]  # ridge with lambda=1 on unit-variance data: ~0.6


def test_bad_regularizers_change_nothing():
    g = _graph()
    before = g.to_dict()
    for bad, message in [("l3", "unknown regularizer"), ({"name": "l2", "l2": -1}, "l2 must be a finite number >= 0"),
                         ({"name": "l1", "l1": "x"}, "l1 must be a finite number >= 0"), (5, "must be a name, a config dict or a Regularizer")]:
        with pytest.raises(GraphError, match=message):
            g.connect("x", "y", regularizer=bad)
        with pytest.raises(GraphError, match=message):
            g["h"].bias_regularizer = bad
    assert g.to_dict() == before


def test_a_custom_regularizer_without_its_methods_is_refused_by_name():
    class Half(regularizers.Regularizer):
        name = "half"

        def penalty(self, w, xp=np):
            return 0.0

    g = gn.Graph()
    g.add_input("x", 2)
    g.add_output("y", 1)
    with pytest.raises(GraphError, match=r"custom regularizer Half: it must define \['add_gradient'\]"):
        g.connect("x", "y", regularizer=Half())
    assert not g.synapses


def test_regularizers_with_different_factors_are_not_equal():
    a = gn.regularizers.get({"name": "l2", "l2": 0.1})
    b = gn.regularizers.get({"name": "l2", "l2": 0.2})
    assert a != b
    assert a == gn.regularizers.get({"name": "l2", "l2": 0.1})


def test_l1_l2_defaults_to_zero_and_its_penalty_matches_the_formula():
    w = np.array([[1.0, -2.0], [0.5, 3.0]])
    r = gn.regularizers.get({"name": "l1_l2", "l2": 0.1})
    assert r.l1 == 0.0 and r.l2 == 0.1
    assert float(r.penalty(w)) == pytest.approx(0.1 * float((w ** 2).sum()), rel=1e-12)
    assert gn.regularizers.get("l1_l2").get_config()["l1"] == 0.0
