"""One concept, one form: what one call takes, the others that take the same
concept take too, with the same help when it is wrong."""

import os
import unicodedata

import numpy as np
import pytest

import graphnet as gn

sklearn = pytest.importorskip("sklearn")
from graphnet.sklearn import GraphNetRegressor  # noqa: E402


@pytest.fixture
def xy():
    x = np.random.default_rng(0).normal(size=(16, 3))
    return x, x[:, :1]


def _chain():
    g = gn.Graph(seed=0)
    g.add_input("x", 3)
    g.add_hidden("hidden", 4)
    g.add_output("output", 1)
    g.connect("x", "hidden")
    g.connect("hidden", "output")
    return g


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_an_estimators_optimizer_dict_may_name_its_rate_as_keras_does(xy):
    x, y = xy
    model = GraphNetRegressor(hidden_layer_sizes=(2,), max_iter=1, optimizer={"name": "sgd", "learning_rate": 0.05})
    assert model.fit(x, y[:, 0]).graph_.optimizer.lr == 0.05
    default = GraphNetRegressor(hidden_layer_sizes=(2,), max_iter=1, learning_rate_init=0.2, optimizer={"name": "sgd"})
    assert default.fit(x, y[:, 0]).graph_.optimizer.lr == 0.2


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_an_estimators_verbose_may_be_a_numpy_bool(xy):
    x, y = xy
    GraphNetRegressor(hidden_layer_sizes=(2,), max_iter=1, verbose=np.False_).fit(x, y[:, 0])


@pytest.mark.parametrize("verbose", ["yes", -1, 1.5, None])
def test_an_estimators_verbose_is_checked_as_scikit_learns_is(xy, verbose):
    x, y = xy
    with pytest.raises(ValueError, match=r"verbose must be a bool or an integer >= 0, got"):
        GraphNetRegressor(hidden_layer_sizes=(2,), max_iter=1, verbose=verbose).fit(x, y[:, 0])


@pytest.mark.parametrize("state", [-1, 2**32, "3", 1.0])
def test_an_estimators_random_state_is_named_when_refused(xy, state):
    x, y = xy
    with pytest.raises(ValueError, match=r"^random_state must be None, an integer in \[0, 2\*\*32 - 1\]"):
        GraphNetRegressor(hidden_layer_sizes=(2,), max_iter=1, random_state=state).fit(x, y[:, 0])


@pytest.mark.parametrize("init", [{"name": "he_normal"}, gn.initializers.get("he_normal")])
def test_init_that_is_neither_a_name_nor_an_array_says_so(init):
    g = gn.Graph(seed=0)
    g.add_input("x", 3)
    g.add_output("y", 1)
    with pytest.raises(gn.GraphError, match=r"init must be an initializer's name \(a str, one of .*\) or an array "
                                            r"of shape \(3, 1\), got"):
        g.connect("x", "y", init=init)
    assert not g.synapses


def test_a_misspelt_node_gets_a_suggestion_in_every_call_that_names_nodes(xy):
    x, _ = xy
    g = _chain()
    for call in (lambda: g.freeze("hiden"), lambda: g.unfreeze("hiden"), lambda: g.statistics(x)["hiden"],
                 lambda: g.attributions(x, output="outptu")):
        with pytest.raises(gn.NotFoundError, match="did you mean"):
            call()


def test_a_data_key_that_differs_only_in_normalisation_is_told_apart(xy):
    x, _ = xy
    nfc, nfd = (unicodedata.normalize(form, "café") for form in ("NFC", "NFD"))
    g = gn.Graph(seed=0)
    g.add_input(nfc, 3)
    g.add_output("o", 1)
    g.connect(nfc, "o")
    with pytest.raises(gn.ShapeError, match="It differs only in Unicode normalisation"):
        g.predict({nfd: x})
    g = gn.Graph(seed=0)
    g.add_input("pixels", 3)
    g.add_output("o", 1)
    g.connect("pixels", "o")
    with pytest.raises(gn.ShapeError, match=r"for 'pixles', did you mean 'pixels'\?"):
        g.predict({"other": x, "pixles": x})


@pytest.mark.parametrize("call", ["load", "diff", "from_spec", "from_onnx", "load_weights", "save", "save_weights"])
def test_an_empty_path_is_named_as_empty(call):
    g = gn.Sequential([gn.Input(3), gn.Dense(1)], seed=0)
    calls = {"load": lambda: gn.load(""), "diff": lambda: gn.diff("", g), "from_spec": lambda: gn.Graph.from_spec(""),
             "from_onnx": lambda: gn.from_onnx(""), "load_weights": lambda: g.load_weights(""),
             "save": lambda: g.save(""), "save_weights": lambda: g.save_weights("")}
    with pytest.raises(gn.GraphError, match=r"^\w+: (path|a) is empty; give the file's path$"):
        calls[call]()


@pytest.mark.parametrize("make", [lambda: gn.callbacks.TensorBoard("~/tb"),
                                  lambda: gn.callbacks.BackupAndRestore("~/backup")])
def test_a_folder_starting_with_a_tilde_is_refused_not_made_here(xy, tmp_path, monkeypatch, make):
    x, y = xy
    monkeypatch.chdir(tmp_path)
    g = gn.Sequential([gn.Input(3), gn.Dense(1)], seed=0)
    before = g.get_weights()
    with pytest.raises(gn.GraphError, match=r"starts with '~', which graphnet does not expand .* "
                                            r"pass os.path.expanduser"):
        g.fit(x, y, verbose=0, callbacks=[make()])
    assert os.listdir(tmp_path) == []
    assert all(np.array_equal(before[k], v) for k, v in g.get_weights().items())


def test_a_folder_whose_name_only_starts_with_a_tilde_is_made_as_written(xy, tmp_path, monkeypatch):
    x, y = xy
    monkeypatch.chdir(tmp_path)
    g = gn.Sequential([gn.Input(3), gn.Dense(1)], seed=0)
    g.fit(x, y, verbose=0, callbacks=[gn.callbacks.TensorBoard("~draft"), gn.callbacks.TensorBoard("./~notes/tb")])
    assert sorted(os.listdir(tmp_path)) == ["~draft", "~notes"]


def test_fit_takes_batch_size_none_as_keras_does(xy):
    x, y = xy
    a, b = gn.Sequential([gn.Input(3), gn.Dense(1)], seed=0), gn.Sequential([gn.Input(3), gn.Dense(1)], seed=0)
    assert a.fit(x, y, batch_size=None, verbose=0).history == b.fit(x, y, batch_size=32, verbose=0).history


def test_a_config_dict_without_a_name_says_it_needs_one(xy):
    x, y = xy
    g = gn.Sequential([gn.Input(3), gn.Dense(1)], seed=0)
    with pytest.raises(gn.GraphError, match=r"optimizer config dict: give the optimizer's name under \"name\""):
        g.fit(x, y, verbose=0, optimizer={"lr": 0.1})
    with pytest.raises(gn.GraphError, match=r"read by gn.from_keras"):
        g.fit(x, y, verbose=0, optimizer={"class_name": "SGD", "config": {}})
    with pytest.raises(gn.GraphError, match=r"give the activation's name under \"name\", .*; 'name' is None$"):
        gn.activations.get({"name": None})


def test_a_node_larger_than_a_model_file_holds_is_refused_when_made():
    g = gn.Graph()
    with pytest.raises(gn.GraphError, match=r"node 'x': size must be at most 2\*\*40 \(what a model file holds\)"):
        g.add_input("x", 2**40 + 1)
    with pytest.raises(gn.GraphError, match=r"size must be at most 2\*\*40"):
        gn.Hidden(2**50, name="h")
    assert not g.nodes
