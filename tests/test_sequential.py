"""Sequential: a Keras-style chain that is a Graph, not a second engine."""

from __future__ import annotations

import numpy as np
import pytest

import graphnet as gn


def seeds_model(**kwargs) -> gn.Sequential:
    """The 30-128-64-32-1 net from the seeds."""
    return gn.Sequential(
        [
            gn.Input(30),
            gn.Dense(128, activation="relu"),
            gn.Dense(64, activation="relu", dropout=0.1),
            gn.Dense(32, activation="relu"),
            gn.Dense(1, activation="sigmoid"),
        ],
        **kwargs,
    )


def hand_built(seed=0, dtype="float32") -> gn.Graph:
    """The same chain, built node by node."""
    g = gn.Graph(name="sequential", seed=seed, dtype=dtype)
    g.add_input("input", 30)
    g.add_hidden("dense", 128, activation="relu")
    g.add_hidden("dense_1", 64, activation="relu", dropout=0.1)
    g.add_hidden("dense_2", 32, activation="relu")
    g.add_output("dense_3", 1, activation="sigmoid", loss="binary_crossentropy")
    for src, dst in [("input", "dense"), ("dense", "dense_1"), ("dense_1", "dense_2"), ("dense_2", "dense_3")]:
        g.connect(src, dst)
    return g


def separable(rng, rows=400):
    x = rng.normal(size=(rows, 30))
    y = (x[:, 0] + 0.5 * x[:, 1] - x[:, 2] > 0).astype(np.float64)
    return x, y


# ------------------------------------------------------------------ structure
def test_is_a_graph_with_keras_names_and_the_last_dense_as_output():
    model = seeds_model(seed=0)
    assert isinstance(model, gn.Graph)
    assert model.topological_order == ["input", "dense", "dense_1", "dense_2", "dense_3"]
    assert model.inputs == ["input"] and model.outputs == ["dense_3"]
    assert model.input == "input" and model.output == "dense_3"
    assert [type(n).__name__ for n in model.layers] == ["Input", "Hidden", "Hidden", "Hidden", "Output"]
    assert model["dense_1"].dropout == 0.1
    assert model.num_params == 14_337
    assert [(s.src, s.dst) for s in model.synapses] == [
        ("input", "dense"), ("dense", "dense_1"), ("dense_1", "dense_2"), ("dense_2", "dense_3")
    ]


def test_explicit_names_are_kept_and_default_names_skip_taken_ones():
    model = gn.Sequential([
        gn.Input(4, name="features"),
        gn.Dense(3, activation="relu", name="dense_1"),
        gn.Dense(3, activation="relu"),
        gn.Dense(2, activation="softmax"),
    ])
    assert model.topological_order == ["features", "dense_1", "dense", "dense_2"]


@pytest.mark.parametrize(
    ("activation", "loss"),
    [("softmax", "categorical_crossentropy"), ("sigmoid", "binary_crossentropy"),
     ("linear", "mse"), ("relu", "mse")],
)
def test_default_loss_follows_the_last_activation(activation, loss):
    units = 3 if activation == "softmax" else 1
    model = gn.Sequential([gn.Input(2), gn.Dense(units, activation=activation)])
    assert model[model.output].loss.name == loss


def test_explicit_loss_and_loss_weight_reach_the_output():
    model = gn.Sequential([gn.Input(2), gn.Dense(1)], loss="huber", loss_weight=2.0)
    assert model["dense"].loss.name == "huber"
    assert model["dense"].loss_weight == 2.0


# ---------------------------------------------------------------- equivalence
def test_same_seed_gives_the_same_weights_as_the_hand_built_graph():
    model, graph = seeds_model(seed=3), hand_built(seed=3)
    a, b = model.get_weights(), graph.get_weights()
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_predicts_and_differentiates_like_the_hand_built_graph_with_the_same_weights(rng):
    model = seeds_model(seed=1, dtype="float64")
    graph = hand_built(seed=99, dtype="float64")
    graph.set_weights(model.get_weights())
    x, y = separable(rng, rows=50)
    np.testing.assert_allclose(model.predict(x), graph.predict(x), rtol=0, atol=1e-12)
    # Dropout draws from the graph's training stream: give both the same one.
    model.rng, graph.rng = np.random.default_rng(5), np.random.default_rng(5)
    loss_a, grads_a = model.gradients(x, y)
    loss_b, grads_b = graph.gradients(x, y)
    assert loss_a == pytest.approx(loss_b, abs=1e-12)
    for key in grads_a:
        np.testing.assert_allclose(grads_a[key], grads_b[key], atol=1e-12, err_msg=key)


# ------------------------------------------------------------------ plain use
def test_the_seeds_usage_just_works(rng):
    x, y = separable(rng)
    model = seeds_model(seed=0)
    history = model.fit(x, y, epochs=15, batch_size=32, verbose=0)
    predictions = model.predict(x)
    assert isinstance(predictions, np.ndarray) and predictions.shape == (400, 1)
    assert history.history["loss"][-1] < history.history["loss"][0]
    accuracy = np.mean((predictions[:, 0] > 0.5) == (y > 0.5))
    assert accuracy > 0.9
    assert model(x).shape == (400, 1)


def test_plain_arrays_and_one_dimensional_targets_everywhere(rng):
    x, y = separable(rng, rows=64)
    model = seeds_model(seed=0)
    assert set(model.evaluate(x, y, metrics=["accuracy"])) == {"loss", "accuracy"}
    loss, grads = model.gradients(x, y)
    assert np.isfinite(loss) and set(grads) == set(model.get_weights())
    assert np.isfinite(model.train_step(x, y))


def test_every_graph_method_works_on_it(rng, tmp_path):
    model = seeds_model(seed=0)
    model.validate()
    assert repr(model).startswith("<Sequential 'sequential': 1 inputs, 1 outputs, 5 nodes")
    assert "\n" not in repr(model)
    assert "Total params: 14,337" in model.summary(print_fn=None)
    assert '"dense_1" -> "dense_2"' in model.to_dot().source
    assert model.render(tmp_path / "model.dot").read_text().startswith("digraph")
    assert model.synapse("dense", "dense_1").weight.shape == (128, 64)
    rebuilt = gn.Graph.from_dict(model.to_dict())
    assert isinstance(rebuilt, gn.Sequential)
    rebuilt.set_weights(model.get_weights())
    x, _ = separable(rng, rows=8)
    np.testing.assert_array_equal(rebuilt.predict(x), model.predict(x))


# ------------------------------------------------------------------------ add
def test_add_demotes_the_old_output_and_keeps_every_weight(rng):
    model = gn.Sequential([gn.Input(4), gn.Dense(3, activation="tanh", dropout=0.2)], seed=0)
    x = rng.normal(size=(20, 4))
    model.fit(x, rng.normal(size=(20, 3)), epochs=2, verbose=0)  # weights now live in the plan's buffer
    before = model.get_weights()
    node = model.add(gn.Dense(2, activation="softmax"))
    assert node is model["dense_1"]
    assert model.outputs == ["dense_1"]
    assert isinstance(model["dense"], gn.Hidden) and not isinstance(model["dense"], gn.Output)
    assert model["dense"].dropout == 0.2  # the Dense's dropout applies once it is hidden
    assert model["dense_1"].loss.name == "categorical_crossentropy"
    after = model.get_weights()
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)
    assert model.predict(x).shape == (20, 2)


def test_a_model_can_be_built_with_add_alone():
    model = gn.Sequential(name="built")
    model.add(gn.Input(5))
    model.add(gn.Dense(4, activation="relu"))
    model.add(gn.Dense(1, activation="sigmoid"))
    assert model.topological_order == ["input", "dense", "dense_1"]
    assert model.predict(np.zeros((2, 5))).shape == (2, 1)


def test_removing_the_last_layer_lets_add_continue_from_the_new_end():
    model = gn.Sequential([gn.Input(3), gn.Dense(4), gn.Dense(2)])
    model.remove("dense_1")
    model.add(gn.Dense(5, activation="sigmoid"))
    assert [(s.src, s.dst) for s in model.synapses] == [("input", "dense"), ("dense", "dense_2")]


def assert_unchanged(model, before):
    assert model.to_dict() == before


@pytest.mark.parametrize(
    ("layer", "match"),
    [
        (gn.Dense(3, name="dense"), "already has a layer named 'dense'"),
        (gn.Input(3), "Input must be the first layer"),
        (gn.Hidden(3, name="h"), "layers must be gn.Input"),
        ("dense", "layers must be gn.Input"),
    ],
)
def test_a_refused_add_leaves_the_model_as_it_was(layer, match):
    model = gn.Sequential([gn.Input(2), gn.Dense(2, activation="sigmoid")], loss="binary_crossentropy")
    before = model.to_dict()
    with pytest.raises(gn.GraphError, match=match):
        model.add(layer)
    assert_unchanged(model, before)
    # ... and used up no default name.
    model.add(gn.Dense(1, activation="sigmoid"))
    assert model.outputs == ["dense_1"]


def test_add_refuses_a_model_whose_chain_was_branched():
    model = gn.Sequential([gn.Input(2), gn.Dense(2), gn.Dense(1)])
    model.add_output("extra", 1)
    model.connect("dense", "extra")
    with pytest.raises(gn.GraphError, match=r"ends in \['dense_1', 'extra'\]"):
        model.add(gn.Dense(1))


def test_dense_before_input_and_bad_layers_are_refused():
    with pytest.raises(gn.GraphError, match=r"start the model with gn.Input\(size\)"):
        gn.Sequential([gn.Dense(3)])
    with pytest.raises(gn.GraphError, match="layers must be a list"):
        gn.Sequential(42)
    with pytest.raises(gn.GraphError, match="no Dense layer yet"):
        gn.Sequential([gn.Input(2)]).output


def test_a_model_without_a_dense_layer_is_told_to_add_one_not_to_pass_a_dict():
    model = gn.Sequential([gn.Input(3)])
    x = np.zeros((4, 3))
    for call in (lambda: model.fit(x, x[:, :1], verbose=0), lambda: model.evaluate(x, x[:, :1]),
                 lambda: model.predict(x), model.validate):
        with pytest.raises(gn.GraphError, match=r"no Dense layer yet; add one with model.add\(gn.Dense\(units\)\)"):
            call()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"units": 0}, "^Dense: units must be a positive integer, got 0"),
        ({"units": "4"}, "^Dense: units must be a positive integer, got '4'"),
        ({"units": True}, "^Dense: units must be a positive integer, got True"),
        ({"units": None}, "^Dense: units must be a positive integer, got None"),
        ({"units": 4.0, "name": "d"}, "^Dense 'd': units must be a positive integer, got 4.0"),
        ({"units": 3, "trainable": "no"}, "^Dense: trainable must be True or False, got 'no'"),
        ({"units": 3, "activation": "prelu"}, "unknown activation 'prelu'"),
        ({"units": 3, "dropout": 1.0}, r"^Dense: dropout must be in \[0, 1\), got 1.0"),
        ({"units": 3, "dropout": 1, "name": "d"}, r"^Dense 'd': dropout must be in \[0, 1\), got 1"),
        ({"units": 3, "init": "nope"}, r"^Dense: init: unknown initializer 'nope'; known: \['fan_in_uniform', "),
        ({"units": 3, "init": "he_uniformm", "name": "d"},
         r"^Dense 'd': init: unknown initializer 'he_uniformm'; .*did you mean 'he_uniform'\?$"),
    ],
)
def test_dense_checks_its_arguments(kwargs, match):
    with pytest.raises(gn.GraphError, match=match):
        gn.Dense(**kwargs)


@pytest.mark.parametrize(
    ("init", "match"),
    [
        (np.zeros((2, 4)), r"init array must have shape \(3, 4\)"),
        (np.full((3, 4), np.nan), "init array must be finite"),
        ("bogus", "unknown initializer 'bogus'"),
    ],
)
def test_a_bad_init_is_refused_and_the_model_is_as_it_was(init, match):
    model = gn.Sequential([gn.Input(2), gn.Dense(3)])
    before, weights = model.to_dict(), model.get_weights()
    with pytest.raises(gn.GraphError, match=match):
        model.add(gn.Dense(4, init=init))
    assert_unchanged(model, before)
    assert isinstance(model["dense"], gn.Output)
    for key, value in model.get_weights().items():
        np.testing.assert_array_equal(value, weights[key])
    model.add(gn.Dense(4, init=np.ones((3, 4))))
    np.testing.assert_array_equal(model.synapse("dense", "dense_1").weight, np.ones((3, 4)))


def test_one_input_object_may_start_several_models():
    start = gn.Input(3)
    a = gn.Sequential([start, gn.Dense(1)])
    b = gn.Sequential([start, gn.Dense(2)])
    assert a["input"] is not b["input"]
    assert a.predict(np.zeros((1, 3))).shape == (1, 1)
    assert b.predict(np.zeros((1, 3))).shape == (1, 2)


def test_a_branched_sequential_saves_as_a_plain_graph():
    model = gn.Sequential([gn.Input(3), gn.Dense(4, activation="relu"), gn.Dense(1)], seed=0)
    assert model.is_chain and model.to_dict()["sequential"] is True
    model.add_output("side", 2)
    model.connect("dense", "side")
    assert not model.is_chain
    spec = model.to_dict()
    assert spec["sequential"] is False
    rebuilt = gn.Graph.from_dict(spec)
    assert type(rebuilt) is gn.Graph and rebuilt.outputs == ["dense_1", "side"]


def test_the_loss_may_come_before_the_last_layer_as_in_keras():
    """The pairing of the loss and the last activation is checked when the
    model is compiled or run, not on every add (SPEC section 10)."""
    model = gn.Sequential([gn.Input(30)], loss="binary_crossentropy", seed=0)
    model.add(gn.Dense(16, activation="relu"))  # for a moment the last layer is relu
    with pytest.raises(gn.GraphError, match="cannot run: output 'dense': loss 'binary_crossentropy' needs activation 'sigmoid', got 'relu'"):
        model.predict(np.zeros((2, 30)))
    with pytest.raises(gn.GraphError, match="compile: output 'dense': loss 'binary_crossentropy' needs"):
        model.compile()
    model.add(gn.Dense(1, activation="sigmoid"))
    model.compile(optimizer=gn.optimizers.Adam(learning_rate=1e-3), metrics=["accuracy"])
    x = np.random.default_rng(0).normal(size=(20, 30))
    history = model.fit(x, (x[:, 0] > 0).astype(float), epochs=2, verbose=0)
    assert set(history.history) == {"loss", "accuracy"}  # compile's metrics are fit's default
    assert model.nodes["dense"].kind == "hidden" and model.output == "dense_1"



def test_a_model_given_its_loss_before_its_last_layer_saves_and_loads(tmp_path):
    """The file of a Sequential still waiting for its last layer reads back
    as that model, its pairing check waiting as it did before the save."""
    model = gn.Sequential([gn.Input(4)], loss="categorical_crossentropy", seed=0)
    model.add(gn.Dense(8, activation="relu"))
    model.save(tmp_path / "partial.gnet")
    for again in (gn.load(tmp_path / "partial.gnet"), gn.Graph.from_dict(model.to_dict())):
        assert type(again) is gn.Sequential and again.loss == "categorical_crossentropy"
        np.testing.assert_array_equal(again.get_weights()["input->dense.weight"],
                                      model.get_weights()["input->dense.weight"])
        with pytest.raises(gn.GraphError, match="cannot run: output 'dense': loss 'categorical_crossentropy' needs"):
            again.predict(np.zeros((1, 4)))
        again.add(gn.Dense(3, activation="softmax"))
        assert again.nodes[again.output].loss.name == "categorical_crossentropy"
        assert again.predict(np.zeros((2, 4))).shape == (2, 3)

def test_appending_sorts_nothing_while_the_model_is_a_chain_it_built(monkeypatch):
    """Each add() finds the end the last one left (O(1)), so n layers build in
    O(n), not O(n^2) (2,000 layers took 2 s, 8,000 would take 30); after an
    edit of its own the model looks again."""
    import graphnet.structure as graph_module

    calls = []
    original = graph_module.topological_sort
    monkeypatch.setattr(graph_module, "topological_sort", lambda *a, **k: calls.append(1) or original(*a, **k))
    model = gn.Sequential([gn.Input(3)] + [gn.Dense(4, activation="relu") for _ in range(50)] + [gn.Dense(1)])
    assert not calls and model.outputs == [model.topological_order[-1]]
    calls.clear()
    model.connect("input", "dense_3")  # an edit: the next add() must look at the graph again
    model.add(gn.Dense(2))
    assert calls
    assert model.outputs == ["dense_51"] and model["dense_50"].kind == "hidden"
    model.add_hidden("side", 2)
    model.connect("dense_2", "side")
    with pytest.raises(gn.GraphError, match="ends in"):
        model.add(gn.Dense(2))
