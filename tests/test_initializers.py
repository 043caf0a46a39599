"""Weight initialisers (graphnet.initializers): their scales and the registry."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import build_chain

import graphnet as gn
from graphnet import GraphError, initializers


def test_the_default_is_pytorchs_linear_for_every_activation_but_tanh():
    # Chosen from the quality panel (benchmarks/quality.py): weights and bias
    # uniform on ±1/sqrt(fan_in), as nn.Linear (tanh nodes and linear outputs
    # are the exceptions: see the tests below).
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 400)
    g.add_hidden("r", 300, activation="relu")
    g.add_hidden("s", 300, activation="sigmoid")
    for name in ("r", "s"):
        assert g.connect("x", name).init == "fan_in_uniform"
    limit = 1 / np.sqrt(400)
    for name in ("r", "s"):
        w, b = g.synapse("x", name).weight, g[name].bias
        assert np.abs(w).max() <= limit and w.std() == pytest.approx(limit / np.sqrt(3), rel=0.02)
        assert np.abs(b).max() <= limit and b.std() == pytest.approx(limit / np.sqrt(3), rel=0.2)
        assert len(np.unique(b)) == b.size  # drawn, not zero
    for activation in gn.activations.ACTIVATIONS:
        hidden = "normalized_uniform" if activation == "tanh" else "fan_in_uniform"
        assert initializers.default_for(gn.activations.get(activation)) == hidden
        output = "small_uniform" if activation == "linear" else hidden
        assert initializers.default_for(gn.activations.get(activation), output=True) == output


def test_a_tanh_node_starts_as_scikit_learns_mlp():
    # Glorot and Bengio's normalized initialisation, bias drawn on the same
    # bound: sklearn's MLP, init_bound = sqrt(6 / (fan_in + fan_out)) for both.
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 400)
    g.add_hidden("t", 200, activation="tanh")
    assert g.connect("x", "t").init == "normalized_uniform"
    bound = np.sqrt(6 / (400 + 200))
    w, b = g.synapse("x", "t").weight, g["t"].bias
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.999 * bound
    assert np.abs(b).max() <= bound and np.abs(b).max() > 0.9 * bound
    assert b.std() == pytest.approx(bound / np.sqrt(3), rel=0.2)


def test_a_linear_output_starts_small_with_a_zero_bias():
    # A regression head starts near zero (the mean of standardised targets):
    # a tenth of fan_in_uniform's bound, drawn on the whole fan-in, no bias.
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("a", 300)
    g.add_input("b", 100)
    g.add_output("y", 200)  # linear
    g.add_output("p", 200, activation="sigmoid", loss="binary_crossentropy")
    assert g.connect(["a", "b"], "y")[0].init == "small_uniform"
    assert g.connect("a", "p").init == "fan_in_uniform"
    w = np.vstack([g.synapse("a", "y").weight, g.synapse("b", "y").weight])
    limit = 0.1 / np.sqrt(400)
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.99 * limit
    assert w.std() == pytest.approx(limit / np.sqrt(3), rel=0.02)
    np.testing.assert_array_equal(g["y"].bias, 0.0)
    assert len(np.unique(g["p"].bias)) == 200  # a sigmoid output keeps its drawn bias
    assert g.synapse("a", "p").weight.std() == pytest.approx(1 / np.sqrt(300) / np.sqrt(3), rel=0.02)


def test_small_uniform_is_a_tenth_of_fan_in_uniform_from_the_same_stream():
    small = initializers.small_uniform((40, 30), np.random.default_rng(3), np.float64)
    full = initializers.fan_in_uniform((40, 30), np.random.default_rng(3), np.float64)
    np.testing.assert_allclose(small, full / 10, rtol=1e-12)


def test_sequential_layers_take_the_default_of_what_they_become():
    # The last Dense is the Output until the next add() demotes it: the
    # default follows the node, as long as its weights wait for their draw.
    m = gn.Sequential([gn.Input(4)], loss="mse", seed=0)
    m.add(gn.Dense(8))
    assert [s.init for s in m.synapses] == ["small_uniform"]
    m.add(gn.Dense(8, activation="relu"))
    m.add(gn.Dense(1))
    assert [s.init for s in m.synapses] == ["fan_in_uniform", "fan_in_uniform", "small_uniform"]
    assert len(np.unique(m["dense"].bias)) == 8  # drawn as a hidden layer's
    np.testing.assert_array_equal(m["dense_2"].bias, 0.0)
    same = gn.Sequential([gn.Input(4), gn.Dense(8), gn.Dense(8, activation="relu"), gn.Dense(1)], loss="mse", seed=0)
    for key, value in same.get_weights().items():
        np.testing.assert_array_equal(m.get_weights()[key], value)


def test_a_given_initializer_does_not_follow_the_node():
    m = gn.Sequential([gn.Input(4), gn.Dense(8, init="small_uniform")], loss="mse", seed=0)
    m.add(gn.Dense(1, init="glorot_uniform"))
    assert [s.init for s in m.synapses] == ["small_uniform", "glorot_uniform"]
    np.testing.assert_array_equal(m["dense"].bias, 0.0)


def test_a_drawn_weight_stays_when_its_node_is_demoted():
    m = gn.Sequential([gn.Input(4), gn.Dense(8)], loss="mse", seed=0)
    before = m.synapses[0].weight.copy()  # drawn now, as the output's
    m.add(gn.Dense(1))
    assert m.synapses[0].init == "small_uniform"  # says how it started
    np.testing.assert_array_equal(m.synapses[0].weight, before)


@pytest.mark.parametrize("name", ["he_normal", "glorot_uniform", "lecun_uniform", "small_uniform", "zeros"])
def test_other_initializers_leave_the_bias_at_zero(name):
    g = gn.Graph(seed=0)
    g.add_input("x", 5)
    g.add_output("y", 3)
    g.connect("x", "y", init=name)
    np.testing.assert_array_equal(g["y"].bias, 0.0)
    assert name not in initializers.BIASES


def test_a_node_fed_only_by_arrays_keeps_a_zero_bias():
    g = gn.Graph(seed=0)
    g.add_input("x", 2)
    g.add_output("y", 1)
    g.connect("x", "y", init=np.ones((2, 1)))
    np.testing.assert_array_equal(g.predict(np.array([[1.0, 2.0]])), [[3.0]])


@pytest.mark.parametrize(
    "name, std",
    [
        ("he_normal", np.sqrt(2 / 500)),
        ("he_uniform", np.sqrt(6 / 500) / np.sqrt(3)),
        ("lecun_normal", np.sqrt(1 / 500)),
        ("lecun_uniform", np.sqrt(3 / 500) / np.sqrt(3)),
        ("fan_in_uniform", 1 / np.sqrt(500) / np.sqrt(3)),
        ("small_uniform", 0.1 / np.sqrt(500) / np.sqrt(3)),
        ("normalized_uniform", np.sqrt(6 / 800) / np.sqrt(3)),
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


@pytest.mark.parametrize("name", ["he_normal", "lecun_uniform", "fan_in_uniform", "glorot_normal"])
def test_initializers_draw_in_float64_whatever_the_dtype(name):
    wide = initializers.get(name)((40, 30), np.random.default_rng(7), np.float64)
    narrow = initializers.get(name)((40, 30), np.random.default_rng(7), np.float32)
    assert narrow.dtype == np.float32
    np.testing.assert_array_equal(narrow, wide.astype(np.float32))


def test_registry():
    assert set(initializers.INITIALIZERS) == {
        "he_normal", "he_uniform", "lecun_normal", "lecun_uniform", "fan_in_uniform", "small_uniform",
        "normalized_uniform", "glorot_normal", "glorot_uniform", "zeros",
    }
    with pytest.raises(GraphError, match=r"unknown initializer 'lecun'; known: \['fan_in_uniform', 'glorot_normal'"):
        initializers.get("lecun")
    assert initializers.default_for(gn.activations.get("relu")) == "fan_in_uniform"
    assert set(initializers.BIASES) == {"fan_in_uniform", "normalized_uniform"}


# ------------------------------------------------------------------ by formula
UNIFORM_LIMITS = {  # name -> the bound of U(-limit, limit) for a (fan_in, fan_out) weight
    "he_uniform": lambda fan_in, fan_out: np.sqrt(6 / fan_in),
    "lecun_uniform": lambda fan_in, fan_out: np.sqrt(3 / fan_in),
    "fan_in_uniform": lambda fan_in, fan_out: 1 / np.sqrt(fan_in),
    "small_uniform": lambda fan_in, fan_out: 0.1 / np.sqrt(fan_in),
    "normalized_uniform": lambda fan_in, fan_out: np.sqrt(6 / (fan_in + fan_out)),
    "glorot_uniform": lambda fan_in, fan_out: np.sqrt(6 / (fan_in + fan_out)),
}
NORMAL_STDS = {
    "he_normal": lambda fan_in, fan_out: np.sqrt(2 / fan_in),
    "lecun_normal": lambda fan_in, fan_out: np.sqrt(1 / fan_in),
    "glorot_normal": lambda fan_in, fan_out: np.sqrt(2 / (fan_in + fan_out)),
}


@pytest.mark.parametrize("name", sorted(UNIFORM_LIMITS))
def test_uniform_initializers_fill_their_bounds(name):
    limit = UNIFORM_LIMITS[name](600, 200)
    w = initializers.get(name)((600, 200), np.random.default_rng(0), np.float64)
    assert np.abs(w).max() <= limit
    assert np.abs(w).max() > 0.999 * limit  # the whole interval, not a narrower one
    assert w.var() == pytest.approx(limit**2 / 3, rel=0.02)


@pytest.mark.parametrize("name", sorted(NORMAL_STDS))
def test_normal_initializers_have_their_variance(name):
    w = initializers.get(name)((600, 200), np.random.default_rng(0), np.float64)
    assert w.var() == pytest.approx(NORMAL_STDS[name](600, 200) ** 2, rel=0.02)
    assert np.abs(w).max() > 3 * NORMAL_STDS[name](600, 200)  # not truncated


def test_fan_in_uniform_is_pytorchs_linear_default():
    # nn.Linear: kaiming_uniform_(a=sqrt(5)) gives the bound gain * sqrt(3 / fan_in)
    # with gain = sqrt(2 / (1 + a^2)) = sqrt(1/3), i.e. 1 / sqrt(fan_in).
    a = np.sqrt(5)
    gain = np.sqrt(2 / (1 + a**2))
    assert UNIFORM_LIMITS["fan_in_uniform"](30, 1) == pytest.approx(gain * np.sqrt(3 / 30))


# ------------------------------------------------------- fan-in over synapses
def _fed_by_two(init=None, dtype="float64", seed=0, together=False):
    """h (200 units) fed by a (300) and b (100): fan-in 400."""
    g = gn.Graph(seed=seed, dtype=dtype)
    g.add_input("a", 300)
    g.add_input("b", 100)
    g.add_hidden("h", 200, activation="tanh")
    g.add_output("y", 1)
    if together:
        g.connect(["a", "b"], "h", init=init)
    else:
        g.connect("a", "h", init=init)
        g.connect("b", "h", init=init)
    g.connect("h", "y", init=init)
    return g


@pytest.mark.parametrize("name", sorted(UNIFORM_LIMITS))
def test_fan_in_is_the_sum_of_the_sources_sizes(name):
    g = _fed_by_two(name)
    limit = UNIFORM_LIMITS[name](400, 200)  # not 300 for a nor 100 for b
    for src, size in (("a", 300), ("b", 100)):
        w = g.synapse(src, "h").weight
        assert w.shape == (size, 200)
        assert np.abs(w).max() <= limit
        assert w.var() == pytest.approx(limit**2 / 3, rel=0.05)
    # The node's pre-activation variance is what one Linear over the 400 inputs gives.
    x = np.random.default_rng(1).standard_normal((2000, 400))
    weights = g.get_weights()
    z = x[:, :300] @ weights["a->h.weight"] + x[:, 300:] @ weights["b->h.weight"]
    assert z.var() == pytest.approx(400 * limit**2 / 3, rel=0.05)


def test_the_default_initializer_uses_the_whole_fan_in_too():
    g = _fed_by_two(None)
    name = g.synapse("a", "h").init
    assert name == initializers.default_for(g["h"].activation)
    expected = initializers.get(name)((400, 200), np.random.default_rng(0), np.float64).var()
    both = np.concatenate([g.synapse("a", "h").weight, g.synapse("b", "h").weight])
    assert both.var() == pytest.approx(expected, rel=0.05)


def test_one_connect_per_synapse_draws_what_a_list_draws():
    one_by_one = _fed_by_two("lecun_uniform").get_weights()
    together = _fed_by_two("lecun_uniform", together=True).get_weights()
    assert one_by_one.keys() == together.keys()
    for key in one_by_one:
        np.testing.assert_array_equal(one_by_one[key], together[key])


def test_same_seed_same_weights_other_seed_other_weights():
    first, again, other = (_fed_by_two(seed=s).get_weights() for s in (3, 3, 4))
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["a->h.weight"], other["a->h.weight"])


def test_a_float32_graph_starts_from_its_float64_twins_weights_rounded():
    wide = _fed_by_two(dtype="float64").get_weights()
    narrow = _fed_by_two(dtype="float32").get_weights()
    for key in wide:
        assert narrow[key].dtype == np.float32
        np.testing.assert_array_equal(narrow[key], wide[key].astype(np.float32))


def test_weights_once_seen_never_change_and_a_later_synapse_gets_the_new_fan_in():
    g = gn.Graph(seed=0, dtype="float64")
    for name, size in (("a", 300), ("b", 100), ("c", 200)):
        g.add_input(name, size)
    g.add_hidden("h", 100, activation="relu")
    g.add_output("y", 1)
    g.connect("a", "h", init="fan_in_uniform")
    g.connect("h", "y")
    seen = g.get_weights()["a->h.weight"]  # drawn now, on fan-in 300
    assert np.abs(seen).max() > 0.99 / np.sqrt(400)  # 1/sqrt(300) is the bound
    g.connect("b", "h", init="fan_in_uniform")
    g.connect("c", "h", init="fan_in_uniform")  # b and c: fan-in 600 now
    np.testing.assert_array_equal(g.synapse("a", "h").weight, seen)
    later = np.concatenate([g.synapse("b", "h").weight, g.synapse("c", "h").weight])
    assert np.abs(later).max() <= 1 / np.sqrt(600)
    x = {"a": np.ones((2, 300)), "b": np.ones((2, 100)), "c": np.ones((2, 200))}
    weights = g.get_weights()
    z = sum(x[s] @ weights[f"{s}->h.weight"] for s in "abc") + weights["h.bias"]
    np.testing.assert_allclose(g.predict(x), np.maximum(z, 0) @ weights["h->y.weight"] + weights["y.bias"],
                               rtol=1e-12)


def test_what_get_weights_shows_is_what_runs():
    g = _fed_by_two(None)
    weights = g.get_weights()
    x = {"a": np.random.default_rng(0).standard_normal((5, 300)),
         "b": np.random.default_rng(1).standard_normal((5, 100))}
    by_hand = np.tanh(x["a"] @ weights["a->h.weight"] + x["b"] @ weights["b->h.weight"] + weights["h.bias"])
    by_hand = by_hand @ weights["h->y.weight"] + weights["y.bias"]
    np.testing.assert_allclose(g.predict(x), by_hand, rtol=1e-12)


def test_weights_the_user_sets_are_kept_and_the_rest_still_see_the_whole_fan_in():
    g = _fed_by_two("fan_in_uniform")
    mine = np.full((300, 200), 0.25)
    g.synapse("a", "h").weight = mine  # before anything was drawn
    np.testing.assert_array_equal(g.get_weights()["a->h.weight"], mine)
    assert np.abs(g.synapse("b", "h").weight).max() <= 1 / np.sqrt(400)
    h = _fed_by_two("fan_in_uniform")
    h.set_weights({"b->h.weight": np.zeros((100, 200))})
    np.testing.assert_array_equal(h.get_weights()["b->h.weight"], 0.0)
    assert np.abs(h.synapse("a", "h").weight).max() <= 1 / np.sqrt(400)


def test_an_init_array_is_used_as_given_and_counts_in_the_fan_in():
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("a", 300)
    g.add_input("b", 100)
    g.add_output("y", 50)
    given = np.random.default_rng(5).standard_normal((100, 50))
    g.connect("b", "y", init=given)
    g.connect("a", "y", init="fan_in_uniform")
    np.testing.assert_array_equal(g.synapse("b", "y").weight, given)
    w = g.synapse("a", "y").weight
    assert np.abs(w).max() <= 1 / np.sqrt(400) and np.abs(w).max() > 0.99 / np.sqrt(400)


def test_saved_and_loaded_weights_are_never_redrawn(tmp_path):
    g = _fed_by_two(None)
    g.set_weights({k: np.full(v.shape, 0.5) for k, v in g.get_weights().items()})
    g.save(tmp_path / "m.gnet")
    loaded = gn.load(tmp_path / "m.gnet")
    for key, value in loaded.get_weights().items():
        np.testing.assert_array_equal(value, 0.5)
    assert loaded.synapse("a", "h").init == g.synapse("a", "h").init  # informational


def test_a_disconnected_synapse_keeps_a_weight_and_the_rest_are_unaffected():
    g = _fed_by_two("fan_in_uniform")
    reference = _fed_by_two("fan_in_uniform")
    reference.disconnect("b", "h")
    s = g.synapse("b", "h")
    g.disconnect("b", "h")
    assert s.weight.shape == (100, 200) and np.abs(s.weight).max() <= 1 / np.sqrt(100)
    # Left with one source, a draws on fan-in 300, as if b had never been there.
    assert np.abs(g.synapse("a", "h").weight).max() > 1 / np.sqrt(400)
    for key, value in g.get_weights().items():
        np.testing.assert_array_equal(value, reference.get_weights()[key])


def test_a_copy_draws_what_the_original_draws():
    import copy
    import pickle

    g = _fed_by_two(None)
    twin, thawed = copy.deepcopy(g), pickle.loads(pickle.dumps(g))
    # A copy is drawn: none of its synapses waits (a dask worker may send the
    # graph it runs to another while drawing; the copy must be whole).
    for copied in (twin, thawed):
        assert all(s.pending is None and s.parameter_array is not None for s in copied.synapses)
    for key, value in g.get_weights().items():
        np.testing.assert_array_equal(twin.get_weights()[key], value)
        np.testing.assert_array_equal(thawed.get_weights()[key], value)


def test_refused_connects_change_nothing_not_even_later_draws():
    def build(with_refusals):
        g = gn.Graph(seed=0, dtype="float64")
        g.add_input("x", 4)
        g.add_hidden("h", 3)
        g.add_output("y", 2)
        if with_refusals:
            for bad in ("lecun", np.zeros((3, 3)), np.full((4, 3), np.inf)):
                with pytest.raises(GraphError):
                    g.connect("x", "h", init=bad)
        g.connect("x", "h")
        g.connect("h", "y")
        return g.get_weights()

    clean, refused = build(False), build(True)
    for key in clean:
        np.testing.assert_array_equal(clean[key], refused[key])


# ---------------------------------------------------------------- the biases
def test_the_default_bias_is_drawn_on_the_whole_fan_in():
    g = _fed_by_two(None)  # h: fan-in 300 + 100
    b = g["h"].bias  # tanh: normalized_uniform, bound sqrt(6 / (fan_in + size))
    bound = np.sqrt(6 / (400 + 200))
    assert np.abs(b).max() <= bound and np.abs(b).max() > 0.9 * bound
    np.testing.assert_array_equal(g["y"].bias, 0.0)  # a linear output: small_uniform, no bias


def test_a_bias_set_before_the_draw_is_kept():
    g = _fed_by_two(None)
    g["h"].bias = np.full(200, 0.5)
    np.testing.assert_array_equal(g.get_weights()["h.bias"], 0.5)
    assert np.abs(g.synapse("a", "h").weight).max() <= np.sqrt(6 / 600)  # the weights were still drawn
    h = _fed_by_two(None)
    h.set_weights({"y.bias": [2.0]})
    np.testing.assert_array_equal(h.get_weights()["y.bias"], 2.0)
    out = h.predict({"a": np.zeros((1, 300)), "b": np.zeros((1, 100))})[0, 0]
    assert out == pytest.approx(2.0 + np.tanh(h["h"].bias) @ h.synapse("h", "y").weight[:, 0], rel=1e-12)


def test_a_bias_seen_before_its_node_is_fed_stays_as_seen():
    g = gn.Graph(seed=0)
    g.add_input("x", 3)
    out = g.add_output("y", 2)
    np.testing.assert_array_equal(out.bias, 0.0)  # nothing to draw it on yet: it stays zero
    g.connect("x", "y")
    np.testing.assert_array_equal(g.get_weights()["y.bias"], 0.0)
    assert np.abs(g.synapse("x", "y").weight).max() > 0


def test_a_sequential_draws_every_layer_as_a_graph_does():
    model = gn.Sequential([gn.Input(8), gn.Dense(6, activation="relu"), gn.Dense(4, activation="relu"),
                           gn.Dense(1, activation="sigmoid")], seed=3, dtype="float64")
    g = gn.Graph(name=model.name, seed=3, dtype="float64")
    g.add_input("input", 8)
    g.add_hidden("dense", 6, activation="relu")
    g.add_hidden("dense_1", 4, activation="relu")
    g.add_output("dense_2", 1, activation="sigmoid", loss="binary_crossentropy")
    g.connect("input", "dense")
    g.connect("dense", "dense_1")
    g.connect("dense_1", "dense_2")
    weights = model.get_weights()
    assert weights.keys() == g.get_weights().keys()
    for key, value in g.get_weights().items():
        np.testing.assert_array_equal(weights[key], value)
        assert np.all(value != 0), key


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, MemoryError])
@pytest.mark.parametrize("first_use", ["predict", "get_weights", "fit"])
def test_a_draw_that_fails_leaves_the_weights_waiting(monkeypatch, interrupt, first_use):
    """A first use interrupted while it draws (Ctrl-C, no memory) leaves the
    weights still to draw: the next call draws them as if nothing had failed.
    The interrupted draw used to forget them, and every later call raised
    AttributeError."""

    def build():
        return build_chain(dtype="float32", name="t")

    x = np.random.default_rng(0).normal(size=(8, 3))
    calls = {
        "predict": lambda g: g.predict(x),
        "get_weights": lambda g: g.get_weights(),
        "fit": lambda g: g.fit(x, x[:, :1], epochs=1, verbose=0),
    }
    drawn = initializers.INITIALIZERS["small_uniform"]

    def fails(*args, **kwargs):  # h draws (fan_in_uniform), then the output's draw fails
        raise interrupt

    g = build()
    monkeypatch.setitem(initializers.INITIALIZERS, "small_uniform", fails)
    with pytest.raises(interrupt):
        calls[first_use](g)
    monkeypatch.setitem(initializers.INITIALIZERS, "small_uniform", drawn)
    clean = build()
    assert calls[first_use](g) is not None and calls[first_use](clean) is not None
    for key, value in clean.get_weights().items():
        np.testing.assert_array_equal(g.get_weights()[key], value, err_msg=key)
    np.testing.assert_array_equal(g.predict(x), clean.predict(x))
