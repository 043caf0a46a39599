"""What the user keeps after handing it over: a part's settings checked when
set, ``compile``'s metrics held apart from the caller's list, and the node
or synapse objects an edit replaced."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import build_chain, regression_data

import graphnet as gn
from graphnet import GraphError


def small(**parts):
    """conftest's chain, in the default dtype, with these parts (activation, loss)."""
    return build_chain(dtype="float32", **parts)


@pytest.mark.parametrize("make, setting, bad, message", [
    (lambda: gn.activations.LeakyReLU(0.2), "negative_slope", 3.0, r"leaky_relu: negative_slope must be in \[0, 1\)"),
    (lambda: gn.activations.LeakyReLU(0.2), "negative_slope", math.nan, "leaky_relu: negative_slope"),
    (lambda: gn.activations.ELU(1.0), "alpha", -1.0, "elu: alpha must be > 0"),
    (lambda: gn.losses.Huber(1.0), "delta", -1.0, "huber: delta must be > 0 and finite"),
    (lambda: gn.regularizers.L2(0.01), "l2", math.inf, "l2"),
    (lambda: gn.optimizers.Adam(lr=0.01), "lr", -1.0, r"adam: lr must be a finite number >= 0, got -1.0"),
    (lambda: gn.optimizers.Adam(lr=0.01), "lr", "0.1", "adam: lr must be a number, got '0.1'"),
    (lambda: gn.optimizers.SGD(lr=0.01), "momentum", 1.5, r"sgd: momentum must be in \[0, 1\)"),
    (lambda: gn.schedules.ExponentialDecay(0.1, 10, 0.5), "decay_steps", 0, "decay_steps"),
    (lambda: gn.metrics.AUC(), "num_thresholds", 1, "AUC: num_thresholds"),
])
def test_a_setting_set_after_the_part_is_made_is_checked_as_when_made(make, setting, bad, message):
    part = make()
    before = dict(vars(part))
    with pytest.raises(GraphError, match=message):
        setattr(part, setting, bad)
    assert vars(part).keys() == before.keys()
    assert all(vars(part)[k] is before[k] or vars(part)[k] == before[k] for k in before), "the part was changed"


def test_a_good_setting_takes_effect_and_what_derives_from_it_follows(rng):
    act = gn.activations.LeakyReLU(0.2)
    g = small(activation=act)
    x = rng.normal(size=(5, 3))
    g.predict(x)
    act.negative_slope = 0.5
    assert act.negative_slope == 0.5 and g["h"].activation.get_config()["negative_slope"] == 0.5
    twin = small(activation=gn.activations.LeakyReLU(0.5))
    twin.set_weights(g.get_weights())
    np.testing.assert_array_equal(g.predict(x), twin.predict(x))
    sgd = gn.optimizers.SGD(lr=0.1)
    sgd.momentum = 0.9  # the velocity it now keeps comes with it
    assert sgd.slot_names == ("velocity",)
    auc = gn.metrics.AUC()
    auc.num_thresholds = 200
    assert auc.live


def test_a_part_changed_after_it_was_handed_over_saves_what_load_reads(tmp_path):
    act, huber = gn.activations.LeakyReLU(0.2), gn.losses.Huber(1.0)
    g = small(activation=act, loss=huber)
    act.negative_slope = 0.3
    huber.delta = 2.0
    g.save(tmp_path / "m.gnet")
    back = gn.load(tmp_path / "m.gnet")
    assert back["h"].activation.negative_slope == 0.3 and back["y"].loss.delta == 2.0


def test_the_optimizers_learning_rate_is_checked_and_its_state_kept(rng):
    x, y = regression_data(rng)
    g = small()
    g.fit(x, y, epochs=1, verbose=0, optimizer=gn.optimizers.Adam(lr=0.01))
    state = {k: v.copy() for k, v in g.optimizer.slots.items()}
    for bad in (-1.0, math.nan, "0.1"):
        with pytest.raises(GraphError, match="adam: lr must be"):
            g.optimizer.lr = bad
    g.optimizer.lr = 0.5
    assert g.optimizer.lr == 0.5 and g.optimizer.iterations > 0
    assert all(np.array_equal(state[k], g.optimizer.slots[k]) for k in state)
    sgd = gn.optimizers.SGD(lr=0.1)
    g.fit(x, y, epochs=1, verbose=0, optimizer=sgd)
    with pytest.raises(GraphError, match=r"sgd: setting momentum to 0.9 would change the state it keeps \(\[\] "
                                         r"to \['velocity'\]\) after it has trained"):
        sgd.momentum = 0.9
    assert sgd.momentum == 0.0
    g.fit(x, y, epochs=1, verbose=0)  # still trains


def test_a_custom_part_is_its_own_business():
    class Scaled(gn.activations.Activation):
        name = "scaled_for_settings"

        def __init__(self, k=2.0):
            self.k = k

        def forward(self, z):
            return self.k * z

        def backward(self, a, grad):
            return self.k * grad

        def get_config(self):
            return {"k": self.k}

    part = Scaled()
    part.k = -5.0  # nothing graphnet knows to check
    assert part.k == -5.0 and type(part).settings == frozenset()


def test_a_setting_cannot_be_deleted_but_a_custom_parts_attribute_can():
    act, opt = gn.activations.LeakyReLU(0.1), gn.optimizers.Adam(0.01)
    for part, name, value in ((act, "negative_slope", 0.1), (opt, "lr", 0.01)):
        with pytest.raises(AttributeError, match=f"setting '{name}' cannot be deleted"):
            delattr(part, name)
        assert getattr(part, name) == value  # still the value, not the descriptor
    gn.Graph.from_dict(build_chain(activation=act).to_dict())  # still saveable

    class Mine(gn.activations.LeakyReLU):
        pass

    mine = Mine(0.2)
    del mine.negative_slope  # a user's class: its attributes are its own
    assert "negative_slope" not in vars(mine)
    metric = gn.metrics.Accuracy(name="acc2")  # a setting the class also defines (its default)
    with pytest.raises(AttributeError, match="setting 'name' cannot be deleted"):
        del metric.name
    assert metric.name == "acc2"


def test_save_names_where_a_custom_config_holds_nan(tmp_path, rng):
    class Halving(gn.schedules.LearningRateSchedule):
        name = "halving_for_settings"

        def __init__(self, rate=0.1):
            self.rate = rate

        def __call__(self, step):
            return self.rate / 2 ** step

        def get_config(self):
            return {"rate": self.rate}

    x, y = regression_data(rng)
    schedule = Halving()
    g = small()
    g.fit(x, y, epochs=1, verbose=0, optimizer=gn.optimizers.SGD(lr=schedule))
    schedule.rate = math.nan  # a custom part is the user's to check: save says where the NaN is
    with pytest.raises(GraphError, match=r"save: optimizer.config.lr.rate is nan; a model file holds finite "
                                         r"numbers only"):
        g.save(tmp_path / "m.gnet")
    assert not (tmp_path / "m.gnet").exists()


def test_compile_keeps_its_own_list_of_metrics(rng):
    x, y = regression_data(rng)
    g = small()
    metrics = ["mae"]
    g.compile(metrics=metrics)
    metrics.append("bogus")
    metrics[0] = "mse"
    assert set(g.evaluate(x, y)) == {"loss", "mae"}
    by_output = {"y": ["mae"]}
    g.compile(metrics=by_output)
    by_output["y"].append("r2")
    assert set(g.evaluate(x, y)) == {"loss", "mae"}


def test_objects_an_edit_replaced_refuse_changes_that_would_reach_nothing():
    g = gn.Graph(seed=0)
    g.add_input("x", 3)
    g.add_hidden("a", 4)
    g.add_hidden("b", 4)
    g.add_output("y", 1)
    g.connect("x", "a")
    g.connect("a", "b")
    g.connect("b", "y")
    synapse, node = g.synapse("a", "b"), g["b"]
    g.widen("b", 6)
    with pytest.raises(GraphError, match=r"synapse 'a' -> 'b' is no longer in graph 'graph': an edit .* put a new "
                                         r"one in its place, so this change would reach nothing; change "
                                         r"g.synapse\('a', 'b'\) instead"):
        synapse.trainable = False
    with pytest.raises(GraphError, match=r"node 'b' is no longer in graph 'graph'.* change g\['b'\] instead"):
        node.dropout = 0.5
    assert g["b"].dropout == 0.0 and g.synapse("a", "b").trainable
    model = gn.Sequential([gn.Input(3), gn.Dense(4), gn.Dense(1)], seed=0)
    old_output = model["dense_1"]
    model.add(gn.Dense(2))
    with pytest.raises(GraphError, match="node 'dense_1' is no longer in graph 'sequential'"):
        old_output.trainable = False
    # A node removed without a successor may still be changed (and added again).
    lone = gn.Graph(seed=0)
    lone.add_input("x", 3)
    hidden = lone.add_hidden("h", 2)
    lone.remove("h")
    hidden.dropout = 0.25
    assert hidden.dropout == 0.25


def test_settings_are_checked_on_parts_unpickled_anywhere():
    import pickle
    import subprocess
    import sys

    huber = pickle.loads(pickle.dumps(gn.losses.Huber(1.0)))
    huber.__dict__.pop("_building", None)  # as an older version pickled it
    with pytest.raises(GraphError, match="huber: delta must be > 0"):
        huber.delta = -1.0
    g = small(activation=gn.activations.LeakyReLU(0.1))
    code = ("import pickle, sys, graphnet as gn\n"
            "g = pickle.loads(sys.stdin.buffer.read())\n"
            "try:\n    g['h'].activation.negative_slope = float('nan')\n"
            "except gn.GraphError as e:\n    print('refused:', e)\n")
    done = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(g), capture_output=True, check=True)
    assert done.stdout.decode().startswith("refused: leaky_relu: negative_slope")


def test_kerass_names_of_adams_settings_are_its_settings():
    adam = gn.optimizers.Adam(beta_1=0.5)
    adam.beta_1, adam.epsilon = 0.7, 1e-6
    assert (adam.beta1, adam.eps, adam.beta_2) == (0.7, 1e-6, adam.beta2)
    assert adam.get_config()["beta1"] == 0.7
    with pytest.raises(GraphError, match="adam: eps must be a positive finite number"):
        adam.epsilon = -1.0
    with pytest.raises(GraphError, match="adam: lr must be a finite number >= 0 or a schedule, got None"):
        adam.lr = None
    adam.clipnorm = 1.0
    assert adam.clipnorm == 1.0


def test_a_metrics_name_set_later_is_checked_when_it_is_used(rng):
    x, y = regression_data(rng)
    metric = gn.metrics.MeanAbsoluteError()
    metric.name = "my mae"
    with pytest.raises(GraphError, match="MeanAbsoluteError: name must be an identifier, got 'my mae'"):
        small().evaluate(x, y, metrics=[metric])


def test_a_copy_of_a_replaced_node_took_nobodys_place():
    import copy

    g = small()
    old = g["h"]
    g.widen("h", 6)
    spare = copy.deepcopy(old)
    spare.dropout = 0.2
    assert spare.dropout == 0.2
    with pytest.raises(GraphError, match="no longer in graph"):
        old.dropout = 0.2


def test_predict_refuses_one_hot_rows_larger_than_memory():
    g = gn.Graph(seed=0)
    g.add_input("c", categories=list(range(2_000_000)))
    g.add_output("y", 1)
    g.connect("c", "y")
    x = {"c": np.arange(50_000) % 1000}
    assert g.predict(x).shape == (50_000, 1)
    with pytest.raises(GraphError, match=r"predict: input 'c' as one-hot rows needs [\d,]+ bytes"):
        g.predict(x, outputs=["c"])


def test_keras_hidden_layers_named_with_control_characters_keep_their_printable_part():
    keras = pytest.importorskip("keras")
    inputs = keras.Input((3,), name="x")
    hidden = keras.layers.Dense(4, activation="relu", name="dense\x1b")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, name="y")(hidden))
    g = gn.from_keras(model)
    assert "dense" in g.nodes and g.outputs == ["y"]
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    np.testing.assert_allclose(g.predict(x), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_a_misspelt_keyword_of_a_graph_or_an_estimator_names_its_class_and_the_closest_name():
    with pytest.raises(gn.GraphError, match=r"^Graph: got an unexpected keyword argument 'nme'; it takes \(name="
                                            r".*did you mean 'name'\?$"):
        gn.Graph(nme="a")
    sklearn = pytest.importorskip("graphnet.sklearn")
    with pytest.raises(TypeError, match=r"^GraphNetRegressor: got an unexpected keyword argument 'hiden_layer_sizes'"
                                        r".*did you mean 'hidden_layer_sizes'\?$"):
        sklearn.GraphNetRegressor(hiden_layer_sizes=(3,))
    assert sklearn.GraphNetRegressor(hidden_layer_sizes=(3,)).get_params()["hidden_layer_sizes"] == (3,)

    class Mine(gn.Graph):  # a user's __init__ calling Graph's: the call is the user's code
        def __init__(self):
            super().__init__(nme="a")

    with pytest.raises(TypeError, match="unexpected keyword argument 'nme'"):
        Mine()
