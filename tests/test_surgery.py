"""Surgery: freeze, insert, widen, bridge, transfer weights.

Each preserving edit is checked on predictions before and after (float64:
exact or within 1e-12; float32: within rounding); each refusal leaves
``to_dict()``, the weights, the optimizer state and the random streams exactly
as they were.
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
from conftest import build_chain, build_dag, dag_data

import graphnet as gn

# ------------------------------------------------------------------ helpers


def trained_dag(rng, dtype="float64", optimizer="adam"):
    """The conftest DAG after a few Adam steps, so the optimizer has state."""
    g = build_dag(dtype=dtype)
    x, y = dag_data(rng, 16)
    g.fit(x, y, epochs=2, batch_size=8, optimizer=optimizer, verbose=0)
    return g, x


def snapshot(g):
    return {
        "spec": g.to_dict(),
        "weights": g.get_weights(),
        "optimizer": None if g.optimizer is None else g.optimizer.get_state(),
        "rng": g.rng.bit_generator.state,
        "init_rng": g.init_rng.bit_generator.state,
        "version": g.version,
    }


def assert_unchanged(g, before):
    after = snapshot(g)
    assert after["spec"] == before["spec"]
    assert after["weights"].keys() == before["weights"].keys()
    for key, value in before["weights"].items():
        assert np.array_equal(after["weights"][key], value), key
    assert after["rng"] == before["rng"] and after["init_rng"] == before["init_rng"]
    assert after["version"] == before["version"]
    if before["optimizer"] is not None:
        a, b = before["optimizer"], after["optimizer"]
        assert a["iterations"] == b["iterations"] and a["layout"] == b["layout"]
        for slot, value in a["slots"].items():
            assert np.array_equal(b["slots"][slot], value), slot


def state_by_key(optimizer) -> dict[str, dict[str, np.ndarray]]:
    """The optimizer's flat state split per parameter key."""
    state, start, found = optimizer.get_state(), 0, {}
    for key, n in state["layout"]:
        found[key] = {slot: value[start : start + n].copy() for slot, value in state["slots"].items()}
        start += n
    return found


def assert_state_kept(g, before: dict, keys):
    """After an edit, binding to the new layout keeps the state of ``keys``."""
    g.optimizer.bind(g.plan.store.layout, g.dtype)
    after = state_by_key(g.optimizer)
    for key in keys:
        for slot, value in before[key].items():
            assert np.array_equal(after[key][slot], value), (key, slot)
    return after


def predict_all(g, x):
    out = g.predict(x)
    return out if isinstance(out, dict) else {"out": out}


def assert_same_predictions(before, after, exact=False, rtol=1e-12, atol=1e-12):
    for name in before:
        if exact:
            assert np.array_equal(before[name], after[name]), name
        else:
            np.testing.assert_allclose(after[name], before[name], rtol=rtol, atol=atol, err_msg=name)


def refuses(g, match, call):
    before = snapshot(g)
    with pytest.raises(gn.GraphError, match=match):
        call()
    assert_unchanged(g, before)


# ------------------------------------------------------------------ freezing
def encoder_graph(seed=0):
    g = gn.Graph(seed=seed, dtype="float64")
    g.add_input("x", 4)
    g.add_hidden("enc_1", 6, activation="tanh")
    g.add_hidden("enc_2", 5, activation="tanh")
    g.add_hidden("dec", 4, activation="relu")
    g.add_output("y", 2)
    g.connect("x", "enc_1")
    g.connect("enc_1", "enc_2")
    g.connect(["enc_2", "x"], "dec")
    g.connect("dec", "y")
    return g


def test_freeze_by_glob_stops_training_the_bias_and_incoming_synapses(rng):
    g = encoder_graph()
    keys = g.freeze("enc_*")
    assert keys == ["x->enc_1.weight", "enc_1.bias", "enc_1->enc_2.weight", "enc_2.bias"]
    assert not g["enc_1"].trainable and not g.synapse("enc_1", "enc_2").trainable
    assert g.synapse("x", "dec").trainable and g["dec"].trainable
    before = g.get_weights()
    g.fit(rng.normal(size=(32, 4)), rng.normal(size=(32, 2)), epochs=2, optimizer="adamw", verbose=0)
    after = g.get_weights()
    for key in before:
        assert np.array_equal(before[key], after[key]) == (key in keys), key


def test_a_frozen_weight_escapes_weight_decay_too(rng):
    g = encoder_graph()
    g.freeze("dec")
    before = g.get_weights()
    g.fit(rng.normal(size=(16, 4)), rng.normal(size=(16, 2)), epochs=3,
          optimizer=gn.optimizers.AdamW(lr=0.01, weight_decay=0.5), verbose=0)
    for key in ("enc_2->dec.weight", "x->dec.weight", "dec.bias"):
        assert np.array_equal(before[key], g.get_weights()[key])


def test_freeze_synapses_by_a_pair_of_patterns_leaves_biases_alone():
    g = encoder_graph()
    assert g.freeze(("x", "*")) == ["x->enc_1.weight", "x->dec.weight"]
    assert g["enc_1"].trainable and g["dec"].trainable
    assert not g.synapse("x", "dec").trainable and g.synapse("enc_2", "dec").trainable


def test_freeze_takes_nodes_and_synapses_and_unfreeze_undoes_it():
    g = encoder_graph()
    g.freeze(g["dec"], g.synapse("enc_1", "enc_2"))
    assert not g["dec"].trainable and not g.synapse("enc_1", "enc_2").trainable
    assert g["enc_2"].trainable
    assert g.unfreeze("*") == [r.key for r in g.parameters()]
    assert all(r.trainable for r in g.parameters())
    assert g.num_trainable_params == g.num_params


def test_graph_trainable_is_keras_model_trainable(rng):
    """``g.trainable = False``, Keras's transfer-learning step, freezes every
    parameter (a fit leaves them all as they were); ``True`` trains them
    again; a wrong value is refused."""
    g = encoder_graph()
    assert g.trainable is True
    g.trainable = False
    assert g.trainable is False and g.num_trainable_params == 0
    before = g.get_weights()
    x = rng.normal(size=(16, 4))
    g.fit(x, x[:, :2], epochs=1, verbose=0)
    after = g.get_weights()
    assert all(np.array_equal(before[key], after[key]) for key in before)
    g.trainable = True
    assert g.trainable is True and g.num_trainable_params == g.num_params
    g["enc_1"].trainable = False
    assert g.trainable is True  # some parameters still train
    with pytest.raises(gn.GraphError, match="trainable must be True or False, got 'no'"):
        g.trainable = "no"
    assert g["enc_1"].trainable is False and g["enc_2"].trainable is True


def test_graph_trainable_true_gives_back_the_flags_false_took():
    """An importer freezes a layer's missing bias at zero and the identity
    synapses of a residual sum: ``trainable = False`` then ``True`` (Keras's
    freeze and fine-tune) gives every flag back as it was, through copies
    and repeated assignments, instead of training those constants; with
    nothing frozen that way, True unfreezes everything."""
    g = encoder_graph()
    g["enc_1"].trainable = False  # bias and x -> enc_1 frozen
    g.synapse("enc_1", "enc_2").trainable = False
    g.unfreeze(("x", "enc_1"))  # the weight trains, the bias does not (a layer without one)
    flags = [(r.key, r.trainable) for r in g.parameters()]
    g.trainable = False
    g.trainable = False
    twin = copy.deepcopy(g)
    for graph in (g, twin):
        graph.trainable = True
        assert [(r.key, r.trainable) for r in graph.parameters()] == flags
    g.freeze("*")
    g.trainable = True
    assert all(r.trainable for r in g.parameters())


def test_freeze_keeps_the_optimizer_state_of_the_rest(rng):
    g, _ = trained_dag(rng)
    before = state_by_key(g.optimizer)
    frozen = g.freeze("h2")
    assert_state_kept(g, before, [k for k in before if k not in frozen])


def _line(optimizer=None) -> gn.Graph:
    """x -> h -> y, one unit each, linear, with set weights: steps computed by hand."""
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 1)
    g.add_hidden("h", 1, activation="linear")
    g.add_output("y", 1)
    g.connect("x", "h")
    g.connect("h", "y")
    g.set_weights({"x->h.weight": np.array([[1.0]]), "h.bias": np.array([0.0]),
                   "h->y.weight": np.array([[0.0]]), "y.bias": np.array([0.0])})
    if optimizer is not None:
        g.compile(optimizer=optimizer)
    return g


def test_a_frozen_parameter_keeps_its_optimizer_state_until_it_is_unfrozen(device):
    """Steps taken while ``y`` is frozen leave its momentum and its step count
    as they were (PyTorch's and Keras's behaviour), so unfreezing trains on
    from them: y.bias = 0.2 + 0.1 * (0.9 * 2 + 1.1808), by hand."""
    g = _line(gn.optimizers.SGD(lr=0.1, momentum=0.9)).to(device)
    x, t = np.ones((1, 1)), np.ones((1, 1))
    g.train_step(x, t)
    g.freeze("y")
    g.train_step(x, t)
    assert g.optimizer.steps("h.bias") == 2
    g.unfreeze("y")
    g.train_step(x, t)
    assert g.get_weights()["y.bias"][0] == pytest.approx(0.49808, abs=1e-12)
    assert g.optimizer.steps("y.bias") == 2 and g.optimizer.steps("h.bias") == 3


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("way", ["save", "save_weights", "pickle"])
def test_the_state_held_for_a_frozen_parameter_survives_files_and_copies(tmp_path, way, optimizer):
    import pickle

    x, t = np.array([[1.0], [0.5]]), np.array([[1.0], [-1.0]])
    make = {"adam": lambda: gn.optimizers.Adam(lr=0.05), "sgd": lambda: gn.optimizers.SGD(lr=0.05, momentum=0.9)}
    g = _line(make[optimizer]())
    for _ in range(3):
        g.train_step(x, t)
    g.freeze("y")
    g.train_step(x, t)
    if way == "save":
        other = gn.load(g.save(tmp_path / "m.gnet"))
    elif way == "save_weights":
        other = _line()
        other.freeze("y")
        other.load_weights(g.save_weights(tmp_path / "w.weights.gnet"))
    else:
        other = pickle.loads(pickle.dumps(g))
    for graph in (g, other):
        graph.unfreeze("y")
        for _ in range(3):
            graph.train_step(x, t)
        assert graph.optimizer.steps("y.bias") == 6 and graph.optimizer.steps("h.bias") == 7
    for key, value in g.get_weights().items():
        assert other.get_weights()[key].tobytes() == value.tobytes(), key


@pytest.mark.parametrize(
    "args, match",
    [
        (("nothing_*",), r"no node matches 'nothing_\*'; nodes: \['a', 'b', 'h1'"),
        (("h1", "zz"), "no node matches 'zz'"),
        (("a",), "matches only inputs"),
        ((("a", "nowhere"),), "no synapse matches 'a' -> 'nowhere'"),
        ((3,), "expected node names or glob patterns"),
        ((), "name at least one node"),
    ],
)
def test_freeze_refuses_what_matches_nothing_and_changes_nothing(rng, args, match):
    g, _ = trained_dag(rng)
    refuses(g, match, lambda: g.freeze(*args))
    refuses(g, match, lambda: g.unfreeze(*args))


def test_freeze_refuses_a_stranger_node():
    g, other = encoder_graph(), encoder_graph()
    refuses(g, "not a node of graph", lambda: g.freeze(other["dec"]))
    refuses(g, "not a synapse of graph", lambda: g.freeze(other.synapse("dec", "y")))


# ------------------------------------------------------------------ inserting
def test_a_linear_insert_is_exact_bit_for_bit(rng):
    for dtype in ("float64", "float32"):
        g, x = trained_dag(rng, dtype)
        before_predictions, before_weights = predict_all(g, x), g.get_weights()
        before_state = state_by_key(g.optimizer)
        node = g.insert("h1", "h2", "bridge")
        assert isinstance(node, gn.Hidden) and node.size == 6 and node.activation.name == "linear"
        assert g.topological_order.index("h1") < g.topological_order.index("bridge") < g.topological_order.index("h2")
        assert ("h1", "h2") not in {(s.src, s.dst) for s in g.synapses}
        assert np.array_equal(g.synapse("bridge", "h2").weight, before_weights["h1->h2.weight"])
        assert_same_predictions(before_predictions, predict_all(g, x), exact=True)
        after = g.get_weights()
        untouched = [k for k in before_weights if k != "h1->h2.weight"]
        assert all(np.array_equal(after[k], before_weights[k]) for k in untouched)
        assert_state_kept(g, before_state, untouched)


def test_a_wider_linear_insert_is_exact_within_rounding(rng):
    g, x = trained_dag(rng)
    before = predict_all(g, x)
    state = g.init_rng.bit_generator.state
    g.insert("a", "h1", "wide", size=9)
    assert g["wide"].size == 9 and g.init_rng.bit_generator.state != state
    w_in, w_out = g.synapse("a", "wide").weight, g.synapse("wide", "h1").weight
    assert np.array_equal(w_in[:, :5], np.eye(5)) and np.any(w_in[:, 5:] != 0)
    assert np.all(w_out[5:] == 0)
    assert_same_predictions(before, predict_all(g, x))


@pytest.mark.parametrize("source", ["relu", "sigmoid", "softplus", "hard_sigmoid", {"name": "leaky_relu", "negative_slope": 0.0}])
@pytest.mark.parametrize("inserted", ["relu", "leaky_relu", "elu"])
def test_a_relu_family_insert_after_a_non_negative_source_is_exact(rng, source, inserted):
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 3)
    g.add_hidden("h", 5, activation=source)
    g.add_output("y", 2)
    g.connect("x", "h")
    g.connect("h", "y")
    x = rng.normal(size=(20, 3)) * 3
    before = predict_all(g, x)
    g.insert("h", "y", "deeper", activation=inserted)
    assert_same_predictions(before, predict_all(g, x), exact=True)


def test_a_softmax_output_feeding_a_relu_insert_is_exact(rng):
    g = build_dag()
    x, _ = dag_data(rng)
    before = predict_all(g, x)
    g.insert("aux", "h3", "after_aux", activation="relu")
    assert_same_predictions(before, predict_all(g, x), exact=True)


def test_an_insert_into_a_sequential_keeps_it_a_chain_that_saves_as_one(rng, tmp_path):
    model = gn.Sequential([gn.Input(4), gn.Dense(6, activation="relu"), gn.Dense(1)], seed=0, dtype="float64")
    x = rng.normal(size=(10, 4))
    before = model.predict(x)
    model.insert("dense", "dense_1", "deeper", activation="relu", size=8)
    assert model.topological_order == ["input", "dense", "deeper", "dense_1"]
    assert model.is_chain and model.to_dict()["sequential"]
    loaded = gn.load(model.save(tmp_path / "m.gnet"))
    assert isinstance(loaded, gn.Sequential)
    np.testing.assert_allclose(loaded.predict(x), before, rtol=1e-12, atol=1e-12)


def test_an_insert_without_preserve_before_a_linear_output_draws_its_default():
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 6)
    g.add_hidden("h", 5, activation="relu")
    g.add_output("y", 2)  # linear: its default is small_uniform
    g.connect("x", "h")
    g.connect("h", "y")
    g.insert("h", "y", "fresh", size=9, activation="tanh", preserve=False)
    assert g.synapse("h", "fresh").init == "normalized_uniform"  # a tanh node's default, bias drawn too
    bound = np.sqrt(6 / (5 + 9))
    assert 0 < np.abs(g["fresh"].bias).max() <= bound and np.abs(g.synapse("h", "fresh").weight).max() <= bound
    assert g.synapse("fresh", "y").init == "small_uniform"
    assert 0 < np.abs(g.synapse("fresh", "y").weight).max() <= 0.1 / np.sqrt(9)


def test_an_insert_without_preserve_draws_fresh_weights(rng):
    g, x = trained_dag(rng)
    before = predict_all(g, x)
    g.insert("h2", "h3", "fresh", size=7, activation="relu", preserve=False)
    assert g.synapse("h2", "fresh").init == g.synapse("fresh", "h3").init == "fan_in_uniform"  # the default
    bound = 1 / np.sqrt(g["h2"].size)  # as a new Linear(h2.size, 7): weights and bias drawn
    assert 0 < np.abs(g["fresh"].bias).max() <= bound and np.abs(g.synapse("h2", "fresh").weight).max() <= bound
    assert not np.allclose(predict_all(g, x)["main"], before["main"])
    g.fit(*dag_data(rng, 16), epochs=1, verbose=0)  # it trains


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (("a", "h1", "r"), {"activation": "relu"}, "'a' is an input, whose data may be negative"),
        (("h1", "h2", "r"), {"activation": "relu"}, "'h1' has activation 'tanh', whose outputs can be negative"),
        (("h1", "h2", "t"), {"activation": "tanh"}, "a 'tanh' node is not the identity on any range"),
        (("h1", "h2", "small"), {"size": 3}, "needs at least 6; give size >= 6"),
        (("h1", "h2", "h3"), {}, "already has a node named 'h3'"),
        (("h1", "h3", "n"), {}, "no synapse 'h1' -> 'h3'"),
        (("h1", "nowhere", "n"), {}, "has no node 'nowhere'"),
        (("h1", "h2", "bad->name"), {}, "must not contain '->'"),
        (("h1", "h2", "n"), {"size": 0}, "size must be a positive integer"),
        (("h1", "h2", "n"), {"activation": "prelu"}, "unknown activation 'prelu'"),
        (("h1", "h2", "n"), {"preserve": "yes"}, "preserve must be True or False"),
    ],
)
def test_insert_refuses_with_a_reason_and_changes_nothing(rng, args, kwargs, match):
    g, _ = trained_dag(rng)
    refuses(g, match, lambda: g.insert(*args, **kwargs))


# -------------------------------------------------------------------- widening
def test_widen_keeps_every_prediction_of_a_node_with_several_consumers(rng):
    """h1 feeds h2, aux and main (an output feeding a node downstream, too)."""
    for dtype, tolerance in (("float64", 1e-12), ("float32", 2e-6)):
        g, x = trained_dag(rng, dtype)
        before, weights = predict_all(g, x), g.get_weights()
        state = state_by_key(g.optimizer)
        node = g.widen("h1", 11, seed=3)
        assert node is g["h1"] and node.size == 11
        assert g.synapse("a", "h1").shape == (5, 11) and g.synapse("h1", "main").shape == (11, 2)
        assert_same_predictions(before, predict_all(g, x), rtol=tolerance, atol=tolerance)
        reshaped = {"a->h1.weight", "h1.bias", "h1->h2.weight", "h1->aux.weight", "h1->main.weight"}
        untouched = [k for k in weights if k not in reshaped]
        after = g.get_weights()
        assert all(np.array_equal(after[k], weights[k]) for k in untouched)
        assert_state_kept(g, state, untouched)


@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu", "sigmoid", "elu", "mish"])
def test_widen_is_exact_for_elementwise_activations(rng, activation):
    g = gn.Graph(seed=1, dtype="float64")
    g.add_input("x", 3)
    g.add_hidden("h", 4, activation=activation, dropout=0.2)
    g.add_output("y", 2)
    g.connect("x", "h")
    g.connect("h", "y")
    x = rng.normal(size=(12, 3))
    before = predict_all(g, x)
    g.widen("h", 10, seed=0)
    assert g["h"].dropout == 0.2 and g["h"].activation.name == activation
    assert_same_predictions(before, predict_all(g, x))


def test_widen_copies_units_and_divides_their_outgoing_weights(rng):
    g, _ = trained_dag(rng)
    w_in, bias, w_out = g.synapse("h2", "h3").weight.copy(), g["h2"].bias.copy(), g.synapse("h2", "aux").weight.copy()
    g.widen("h2", 9, seed=5)
    new_in, new_bias, new_out = g.synapse("h1", "h2").weight, g["h2"].bias, g.synapse("h2", "aux").weight
    assert np.array_equal(new_bias[:4], bias)
    # Each new unit k >= 4 copies an old unit j: same bias, same incoming column.
    for k in range(4, 9):
        j = int(np.flatnonzero(bias == new_bias[k])[0])
        assert np.array_equal(new_in[:, k], new_in[:, j])
    counts = {j: 1 + sum(bool(new_bias[k] == bias[j]) for k in range(4, 9)) for j in range(4)}
    for j in range(4):
        if counts[j] == 1:
            assert np.array_equal(new_out[j], w_out[j])  # not copied: bit for bit
        else:
            np.testing.assert_array_equal(new_out[j], w_out[j] * (1.0 / counts[j]))  # as widen computes it
    w_h3 = g.synapse("h2", "h3").weight
    assert np.allclose(sum(w_h3[k] for k in range(9) if new_bias[k] == bias[0]), w_in[0])


def test_random_split_is_exact_and_the_copies_learn_apart(rng):
    for split, apart in (("equal", False), ("random", True)):
        g = gn.Graph(seed=0, dtype="float64")
        g.add_input("x", 3)
        g.add_hidden("h", 2, activation="tanh")
        g.add_output("y", 1)
        g.connect("x", "h")
        g.connect("h", "y")
        x, y = rng.normal(size=(16, 3)), rng.normal(size=(16, 1))
        before = predict_all(g, x)
        g.widen("h", 4, seed=1, split=split)
        assert_same_predictions(before, predict_all(g, x))
        w = g.synapse("x", "h").weight
        pairs = [(j, k) for k in range(2, 4) for j in range(2) if np.array_equal(w[:, k], w[:, j])]
        assert len(pairs) == 2
        g.fit(x, y, epochs=3, batch_size=16, optimizer="sgd", verbose=0)
        w = g.synapse("x", "h").weight
        differ = [not np.array_equal(w[:, j], w[:, k]) for j, k in pairs]
        assert all(differ) if apart else not any(differ), split


def test_widen_draws_from_the_seed_or_the_graph_stream(rng):
    a, b = encoder_graph(seed=4), encoder_graph(seed=4)
    a.widen("dec", 9)
    b.widen("dec", 9)
    assert np.array_equal(a.synapse("enc_2", "dec").weight, b.synapse("enc_2", "dec").weight)
    c, d = encoder_graph(), encoder_graph()
    state = c.init_rng.bit_generator.state
    c.widen("dec", 9, seed=7)
    d.widen("dec", 9, seed=7)
    assert c.init_rng.bit_generator.state == state
    assert np.array_equal(c["dec"].bias, d["dec"].bias)


def test_widen_to_the_same_size_changes_nothing(rng):
    g, _ = trained_dag(rng)
    before = snapshot(g)
    assert g.widen("h2", 4) is g["h2"]
    assert_unchanged(g, before)


def test_a_widened_graph_trains_and_saves(rng, tmp_path):
    g, x = trained_dag(rng, "float32")
    g.widen("h3", 12, split="random")
    g.fit(*dag_data(rng, 16), epochs=1, verbose=0)
    loaded = gn.load(g.save(tmp_path / "w.gnet"))
    assert_same_predictions(predict_all(g, x), predict_all(loaded, x), exact=True)


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (("main", 5), {}, "'main' is an output node and an output's size is the width of its targets"),
        (("a", 7), {}, "'a' is an input node and inputs take data of a fixed width"),
        (("h2", 3), {}, "'h2' has 4 units and widen only adds units"),
        (("h2", 4.5), {}, "size must be a positive integer"),
        (("h2", 8), {"seed": -1}, "seed must be None or an integer >= 0"),
        (("h2", 8), {"split": "half"}, "split must be 'equal' or 'random'"),
        (("nowhere", 8), {}, "has no node 'nowhere'"),
    ],
)
def test_widen_refuses_with_a_reason_and_changes_nothing(rng, args, kwargs, match):
    g, _ = trained_dag(rng)
    refuses(g, match, lambda: g.widen(*args, **kwargs))


def test_widen_refuses_a_softmax_node():
    g = gn.Graph(seed=0)
    g.add_input("x", 3)
    g.add_hidden("attention", 4, activation="softmax")
    g.add_output("y", 1)
    g.connect("x", "attention")
    g.connect("attention", "y")
    refuses(g, "softmax activation, which normalises over all its units", lambda: g.widen("attention", 6))


# -------------------------------------------------------------------- bridging
def linear_middle(dtype="float64"):
    """x -> lin -> y and x -> other -> y, plus the skip x -> y that the bridge adds to."""
    g = gn.Graph(seed=2, dtype=dtype)
    g.add_input("x", 4)
    g.add_hidden("lin", 6, activation="linear")
    g.add_hidden("other", 3, activation="tanh")
    g.add_output("y", 2)
    g.add_output("z", 3)
    g.connect("x", "lin")
    g.connect("x", "other")
    g.connect(["lin", "other", "x"], "y")
    g.connect("lin", "z")
    g["lin"].bias = np.linspace(-1, 1, 6)
    g["y"].bias = [0.5, -0.5]
    return g


def test_bridging_a_linear_node_composes_the_weights_exactly(rng):
    for dtype, tolerance in (("float64", 1e-12), ("float32", 2e-6)):
        g = linear_middle(dtype)
        x = rng.normal(size=(9, 4))
        before, weights = predict_all(g, x), g.get_weights()
        skip = g.synapse("x", "y")
        g.remove("lin", bridge=True)
        assert "lin" not in g and g.synapse("x", "y") is skip  # added to, same object
        assert g.synapse("x", "z").init == "array"
        w_in, v_y = weights["x->lin.weight"].astype(float), weights["lin->y.weight"].astype(float)
        np.testing.assert_allclose(skip.weight, weights["x->y.weight"] + w_in @ v_y, rtol=tolerance)
        np.testing.assert_allclose(g["y"].bias, weights["y.bias"] + weights["lin.bias"] @ v_y, rtol=tolerance)
        assert_same_predictions(before, predict_all(g, x), rtol=tolerance, atol=tolerance)
        untouched = ["x->other.weight", "other.bias", "other->y.weight"]
        assert all(np.array_equal(g.get_weights()[k], weights[k]) for k in untouched)


def test_bridging_keeps_the_optimizer_state_of_untouched_parameters(rng):
    g = linear_middle()
    x, y = rng.normal(size=(8, 4)), {"y": rng.normal(size=(8, 2)), "z": rng.normal(size=(8, 3))}
    g.fit(x, y, epochs=2, verbose=0)
    before = state_by_key(g.optimizer)
    g.remove("lin", bridge=True)
    # x->y keeps its key and shape: its state carries on with its new value.
    assert_state_kept(g, before, ["x->other.weight", "other.bias", "other->y.weight", "x->y.weight", "y.bias"])


def test_bridging_a_sequential_layer_keeps_the_chain(rng):
    model = gn.Sequential([gn.Input(3), gn.Dense(5, activation="relu"), gn.Dense(4), gn.Dense(2)],
                          seed=0, dtype="float64")
    x = rng.normal(size=(7, 3))
    before = model.predict(x)
    model.remove("dense_1", bridge=True)
    assert model.topological_order == ["input", "dense", "dense_2"] and model.to_dict()["sequential"]
    np.testing.assert_allclose(model.predict(x), before, rtol=1e-12, atol=1e-12)


def test_bridging_a_non_linear_node_warns_that_predictions_change(rng, caplog):
    g = build_dag()
    with caplog.at_level(logging.WARNING, logger="graphnet"):
        g.remove("h2", bridge=True)
    assert "'h2', whose activation 'elu' is not linear" in caplog.text
    assert {("h1", "aux"), ("b", "aux"), ("h1", "h3"), ("b", "h3")} <= {(s.src, s.dst) for s in g.synapses}
    g.validate()


@pytest.mark.parametrize(
    "name, bridge, match",
    [
        ("main", True, "'main' is an output node; remove it with bridge=False"),
        ("a", True, "'a' is an input node"),
        ("h1", "yes", "bridge must be True or False"),
        ("nowhere", True, "has no node 'nowhere'"),
    ],
)
def test_bridging_refuses_inputs_and_outputs_and_changes_nothing(rng, name, bridge, match):
    g, _ = trained_dag(rng)
    refuses(g, match, lambda: g.remove(name, bridge=bridge))


@pytest.mark.parametrize("dtype, big", [("float64", 1e200), ("float32", 1e30)])
def test_bridging_refuses_an_overflowing_composition(dtype, big):
    """float32: the product is finite in float64 but not once stored."""
    g = linear_middle(dtype)
    g.set_weights({"x->lin.weight": np.full((4, 6), big), "lin->y.weight": np.full((6, 2), big)})
    refuses(g, "would give the synapse 'x' -> 'y' non-finite values", lambda: g.remove("lin", bridge=True))


# --------------------------------------------------------------- transferring
def test_transfer_by_name_copies_what_matches_and_reports_the_rest(rng):
    source, _ = trained_dag(rng)
    target = build_dag(seed=9)
    target.add_hidden("extra", 3)
    target.connect("h1", "extra")
    target.connect("extra", "main")
    report = target.transfer_weights(source)
    assert set(report.copied) == set(source.get_weights())
    assert report.skipped == ["extra->main.weight", "h1->extra.weight", "extra.bias"]  # parameters() order
    assert report.mismatched == {} and report.unused == []
    assert report["copied"] is report.copied and list(report.keys())[:3] == ["copied", "skipped", "mismatched"]
    for key, value in source.get_weights().items():
        assert np.array_equal(target.get_weights()[key], value)
    assert "3 skipped" in repr(report) and "extra.bias" in repr(report)
    # A mapping of its four parts: in, iteration and dict() agree, and an
    # unknown part is a NotFoundError (a KeyError), as errors.md says.
    assert "copied" in report and 0 not in report and list(report) == list(report.keys())
    assert dict(report)["skipped"] == report.skipped
    with pytest.raises(KeyError, match="not 'zz'"):
        report["zz"]


def test_strict_transfer_refuses_a_mismatch_and_copies_nothing(rng):
    source, _ = trained_dag(rng)
    source.widen("h3", 8)
    target, _ = trained_dag(np.random.default_rng(7))
    refuses(target, r"4 parameters differ in shape, so nothing was copied: aux->h3.weight: \(3, 5\) here, "
                    r"\(3, 8\) there; h2->h3.weight", lambda: target.transfer_weights(source))


def test_loose_transfer_copies_the_rest(rng):
    source, _ = trained_dag(rng)
    source.widen("h3", 8)
    target = build_dag(seed=5)
    report = target.transfer_weights(source, strict=False)
    assert set(report.mismatched) == {"aux->h3.weight", "h2->h3.weight", "h3.bias", "h3->main.weight"}
    assert report.mismatched["h3.bias"] == ((5,), (8,))
    assert np.array_equal(target.synapse("a", "h1").weight, source.synapse("a", "h1").weight)
    assert not np.array_equal(target.synapse("h3", "main").weight[:5], source.synapse("h3", "main").weight[:5])
    assert "mismatched: h2->h3.weight: shape (4, 5) here, (4, 8) there" in repr(report)


def test_transfer_by_shape_pairs_parameters_by_order(rng):
    a = gn.Sequential([gn.Input(3), gn.Dense(4, activation="relu"), gn.Dense(2)], seed=1, name="a")
    b = gn.Sequential([gn.Input(3, name="pixels"), gn.Dense(4, activation="relu", name="hidden"),
                       gn.Dense(2, name="logits"), ], seed=2, name="b")
    report = b.transfer_weights(a, match="shape")
    assert report.copied == {"pixels->hidden.weight": "input->dense.weight", "hidden.bias": "dense.bias",
                             "hidden->logits.weight": "dense->dense_1.weight", "logits.bias": "dense_1.bias"}
    x = np.random.default_rng(0).normal(size=(5, 3))
    np.testing.assert_array_equal(a.predict(x), b.predict(x))


def test_transfer_from_a_dict_of_weights(rng):
    source, x = trained_dag(rng)
    target = build_dag(seed=3)
    report = target.transfer_weights(source.get_weights())
    assert not report.skipped
    assert_same_predictions(predict_all(source, x), predict_all(target, x), exact=True)


@pytest.mark.parametrize(
    "other, kwargs, match",
    [
        ("model.gnet", {}, "other must be a Graph or a dict of arrays"),
        ({}, {"match": "order"}, "match must be 'name' or 'shape'"),
        ({}, {"strict": 1}, "strict must be True or False"),
        ({"h1.bias": np.full(6, np.nan)}, {}, r"'h1.bias' contains 6 NaN or inf value\(s\)"),
        ({"h1.bias": ["a"] * 6}, {}, "expected numbers"),
    ],
)
def test_transfer_refuses_bad_arguments_and_changes_nothing(rng, other, kwargs, match):
    g, _ = trained_dag(rng)
    refuses(g, match, lambda: g.transfer_weights(other, **kwargs))


def test_reshaped_parameters_keep_their_regularizers(rng):
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 3)
    g.add_hidden("h", 4, bias_regularizer=gn.regularizers.L2(0.1))
    g.add_output("y", 2)
    g.connect("x", "h", regularizer=gn.regularizers.L1(0.01))
    g.connect("h", "y", regularizer=gn.regularizers.L2(0.02))
    g.widen("h", 6)
    assert g["h"].bias_regularizer == gn.regularizers.L2(0.1)
    assert g.synapse("x", "h").regularizer == gn.regularizers.L1(0.01)
    g.insert("h", "y", "deeper")
    assert g.synapse("deeper", "y").regularizer == gn.regularizers.L2(0.02)
    assert g.synapse("h", "deeper").regularizer is None
    # (A relu insert would put pre-activations exactly on relu's kink at 0,
    # where central differences and the backward pass differ by definition.)
    assert gn.check_gradients(g, rng.normal(size=(5, 3)), rng.normal(size=(5, 2))).ok


def test_surgery_from_a_callback_takes_effect_from_the_next_batch(rng):
    x, y = rng.normal(size=(64, 3)), rng.normal(size=(64, 1))
    g = build_chain()
    seen = {}

    def grow(epoch, logs):
        if epoch == 1:
            before = g.predict(x)
            g.widen("h", 8, split="random")
            g.insert("h", "y", "deeper", activation="relu")
            seen["same"] = np.allclose(g.predict(x), before, rtol=1e-12, atol=1e-12)
            seen["identity"] = g.synapse("h", "deeper").weight.copy()

    history = g.fit(x, y, epochs=4, batch_size=16, verbose=0,
                    callbacks=[gn.callbacks.LambdaCallback(on_epoch_end=grow)])
    assert seen["same"] and g["h"].size == 8
    assert not np.array_equal(g.synapse("h", "deeper").weight, seen["identity"])  # it trained
    assert all(np.isfinite(history.history["loss"]))


@pytest.mark.parametrize("edit", [
    lambda g: g.insert("h", "y", "n", size=6, activation="relu"),
    lambda g: g.insert("h", "y", "n", activation="relu", preserve=False),
    lambda g: g.widen("h", 7),
], ids=["insert-wider", "insert-fresh", "widen"])
def test_an_edit_that_fails_after_it_drew_puts_the_stream_back(monkeypatch, edit):
    """An edit interrupted after drawing its new weights (no memory, Ctrl-C)
    leaves the initialisation stream as it was: retried, it draws what an
    edit that never failed draws. It used to draw again from further on."""

    def build():
        g = build_chain(outputs=2, dtype="float32", name="s")  # h is relu
        g.materialize()
        return g

    clean, g = build(), build()
    edit(clean)

    def out_of_memory(*args, **kwargs):
        raise MemoryError

    with monkeypatch.context() as patch:
        patch.setattr(gn.Graph, "rebuild", out_of_memory)
        with pytest.raises(MemoryError):
            edit(g)
    assert g.to_dict() == build().to_dict()
    edit(g)
    assert g.get_weights().keys() == clean.get_weights().keys()
    for key, value in clean.get_weights().items():
        np.testing.assert_array_equal(g.get_weights()[key], value, err_msg=key)


def test_transfer_weights_binds_an_embedding_tables_rows_by_category_not_position():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"city": rng.choice(["Lima", "Lyon", "Oslo", "Pune"], 60)})
    y = (frame["city"] == "Oslo").astype(float)

    def build(categories):
        g = gn.Graph(seed=0, dtype="float64")
        g.add_input("city", categories=categories)
        g.add_output("y", 1, activation="sigmoid", loss="binary_crossentropy")
        g.connect("city", "y")
        return g

    trained = build("adapt")
    trained.fit(frame, y, epochs=20, verbose=0)
    reordered = build(["Pune", "Oslo", "Lyon", "Lima"])
    report = reordered.transfer_weights(trained)
    assert "city->y.weight" in report.copied
    probe = pd.DataFrame({"city": ["Lima", "Lyon", "Oslo", "Pune", "Rome"]})
    np.testing.assert_allclose(reordered.predict(probe), trained.predict(probe), rtol=0, atol=1e-12)
    other = build(["Oslo", "Kyiv", "Lima", "Pune"])  # Kyiv unknown to trained: its row stays
    kept = other.get_weights()["city->y.weight"].copy()
    other.transfer_weights(trained)
    row = other.get_weights()["city->y.weight"]
    offset = row.shape[0] - 4
    np.testing.assert_array_equal(row[offset + 1], kept[offset + 1])
    np.testing.assert_allclose(other.predict(probe.iloc[[0, 2, 3]]), trained.predict(probe.iloc[[0, 2, 3]]),
                               rtol=0, atol=1e-12)
