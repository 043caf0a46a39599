"""The API's edges (SPEC section 9): every bad argument is a GraphError naming it,
raised before anything changes; anything that cannot be saved or run is refused
when it is set, so what ``save`` writes ``load`` reads back."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import build_chain

import graphnet as gn
from graphnet import GraphError, ShapeError


def _small(dtype="float32"):
    return build_chain(outputs=2, dtype=dtype, name="small")


def _same(a, b) -> bool:
    wa, wb = a.get_weights(), b.get_weights()
    return a.to_dict() == b.to_dict() and wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)


def test_the_hierarchy():
    for error in (gn.CycleError, gn.ShapeError, gn.TrainingError, gn.ModelFileError, gn.RenderError,
                  gn.ModelImportError, gn.NotFoundError):
        assert issubclass(error, GraphError) and issubclass(error, ValueError)


@pytest.mark.parametrize("src", [None, 5, 2.5, {"x"}])
def test_connect_refuses_what_is_not_a_node(src):
    g = _small()
    g.add_hidden("k", 2)
    with pytest.raises(GraphError, match="connect: src must be a node name, a Node or a list of them"):
        g.connect(src, "k")


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: gn.losses.get({"name": "huber", "delta": "x"}), r"huber: delta must be > 0 and finite, got 'x'"),
        (lambda: gn.losses.get({"name": "huber", "delta": float("inf")}), "huber: delta must be > 0 and finite"),
        (lambda: gn.activations.get({"name": "leaky_relu", "negative_slope": "0.2"}), r"negative_slope must be in \[0, 1\), got '0.2'"),
        (lambda: gn.activations.get({"name": "elu", "alpha": "x"}), "elu: alpha must be > 0 and finite"),
        (lambda: gn.activations.get({"name": "elu", "alpha": float("inf")}), "elu: alpha must be > 0 and finite, got inf"),
        (lambda: gn.optimizers.get({"name": "adam", "beta1": "x"}), r"adam: beta1 must be in \[0, 1\), got 'x'"),
        (lambda: gn.optimizers.get({"name": "adam", "lr": "0.1"}), "adam: lr must be a number, got '0.1'"),
        (lambda: gn.optimizers.SGD(momentum=True), r"sgd: momentum must be in \[0, 1\)"),
        (lambda: gn.optimizers.Adam(lr=0.1, learning_rate=0.1), "pass lr or learning_rate"),
    ],
)
def test_hyper_parameters_must_be_numbers(call, message):
    with pytest.raises(GraphError, match=message):
        call()


@pytest.mark.parametrize("seed", [-1, "abc", True, 2.5])
def test_seeds(seed):
    with pytest.raises(GraphError, match="seed must be None or an integer >= 0"):
        gn.Graph(seed=seed)
    assert gn.Graph(seed=np.int64(3)).seed == 3


@pytest.mark.parametrize("dtype", ["nope", None, "int32", "float16"])
def test_dtypes(dtype):
    with pytest.raises(GraphError, match="dtype must be 'float32' or 'float64'"):
        gn.Graph(dtype=dtype)


@pytest.mark.parametrize(
    "setting, value, message",
    [
        ("dtype", "int32", "dtype must be 'float32' or 'float64', got 'int32'"),
        ("dtype", "banana", "dtype must be 'float32' or 'float64', got 'banana'"),
        ("seed", -3, "seed must be None or an integer >= 0, got -3"),
        ("seed", "abc", "seed must be None or an integer >= 0, got 'abc'"),
        ("name", "", "graph name must be a non-empty string"),
        ("name", "a\nb", "graph name must be a non-empty string without control characters"),
    ],
)
def test_settings_set_later_get_the_constructors_check(setting, value, message, tmp_path):
    """``g.dtype = ``, ``astype``, ``g.seed = `` and ``g.name = `` refuse what
    ``Graph(...)`` refuses, before anything changes: what ``save`` writes
    ``load`` reads back."""
    with pytest.raises(GraphError, match=message):
        gn.Graph(**{setting: value})
    g = _small()
    before = g.to_dict()
    with pytest.raises(GraphError, match=message):
        setattr(g, setting, value)
    if setting == "dtype":
        with pytest.raises(GraphError, match=message):
            g.astype(value)
    assert g.to_dict() == before
    g.save(tmp_path / "m.gnet")
    assert gn.load(tmp_path / "m.gnet").to_dict() == before


def test_setting_the_dtype_is_astype():
    g = _small()
    g.dtype = "float64"
    assert g.dtype == np.float64 and all(w.dtype == np.float64 for w in g.get_weights().values())


def test_impossible_sizes_are_refused_before_allocating():
    g = _small()
    with pytest.raises(GraphError, match="node 'h2': bias of size 1,000,000,000,000 needs 8,000,000,000,000 bytes"):
        g.add_hidden("h2", 10**12)
    with pytest.raises(GraphError, match=r"node 'h2': size must be at most 2\*\*40"):
        g.add_hidden("h2", 10**13)
    g.add_input("wide", 10**6)
    g.add_hidden("big", 10**6)
    with pytest.raises(GraphError, match=r"synapse 'wide' -> 'big' needs 4,000,000,000,000 bytes"):
        g.connect("wide", "big")
    assert "big" in g and not g.incoming("big")


def test_values_that_cannot_be_saved_are_refused_when_set():
    g = _small()
    before = g.get_weights()
    with pytest.raises(GraphError, match=r"init array must be finite numbers \(real, and finite in the graph's float32\)"):
        g.connect("x", "y", init=np.full((3, 2), 1e39))
    with pytest.raises(GraphError, match="weight must be finite in float32, found NaN or inf"):
        g.synapse("x", "h").weight = np.full((3, 4), np.nan)
    with pytest.raises(GraphError, match="bias must be finite in float32"):
        g["h"].bias = np.full(4, 1e39)
    with pytest.raises(GraphError, match="bias must be real numbers"):
        g["h"].bias = np.full(4, 1 + 1j)
    assert all(np.array_equal(before[k], g.get_weights()[k]) for k in before)
    with pytest.raises(GraphError, match="must be a non-empty string without control characters that encodes as UTF-8"):
        g.add_hidden("\udc80", 2)
    with pytest.raises(GraphError, match="graph name must be a non-empty string without control characters"):
        gn.Graph(name="\udc80")
    with pytest.raises(GraphError, match="trainable must be True or False"):
        g["h"].trainable = "no"


@pytest.mark.parametrize("data", [np.ones((4, 3)) * (1 + 2j), np.ones((4, 3)).astype("m8[s]"), np.full((4, 3), "1")])
def test_complex_times_and_text_are_not_data(data):
    g = _small()
    with pytest.raises(ShapeError, match=r"input 'x': expected numbers, got an array of dtype .* \(only real numbers"):
        g.predict(data)
    with pytest.raises(ShapeError, match="expected numbers"):
        g.fit(np.ones((4, 3)), np.ones((4, 2)) * (1 + 1j), verbose=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"validation_split": "0.2"}, r"validation_split must be in \[0, 1\), got '0.2'"),
        ({"metrics": 5}, "metrics must be a list of names"),
        ({"metrics": {"y": 5}}, r"metrics\['y'\] must be a metric name"),
        ({"callbacks": gn.EarlyStopping()}, r"callbacks must be a list of Callback instances, got one EarlyStopping, "
                                             r"not a list: pass \[EarlyStopping\(...\)\]"),
        ({"callbacks": "cb"}, "callbacks must be a list of Callback instances, got str 'cb'"),
        ({"validation_data": "val"}, r"validation_data must be a tuple .*; got str 'val'$"),
        ({"validation_data": (1, 2, 3, 4)}, r"validation_data must be a tuple .*; got a tuple of 4$"),
        ({"sample_weight": -np.ones(4)}, r"^sample_weight for output 'y': weights must be finite and >= 0, but 4 of 4 "
                                         r"are not \(the first in row 0: -1\)$"),
        ({"sample_weight": np.array([1, 1, np.nan, 1])}, r"but 1 of 4 are not \(the first in row 2: nan\)$"),
        ({"callbacks": [print]}, "callbacks must be Callback instances"),
        ({"shuffle": "yes"}, "shuffle must be True or False"),
        ({"epochs": 2.0}, "epochs must be a positive integer"),
        ({"verbose": 1.5}, "verbose must be 0, 1 or 2"),
    ],
)
def test_fit_arguments(kwargs, message):
    g = _small()
    before = _small()
    with pytest.raises(GraphError, match=message):
        g.fit(np.ones((4, 3)), np.ones((4, 2)), **kwargs)
    assert _same(g, before) and g.optimizer is None


def test_none_means_none_for_metrics_and_callbacks():
    g = _small()
    history = g.fit(np.ones((4, 3)), np.ones((4, 2)), metrics=None, callbacks=None, verbose=0)
    assert list(history.history) == ["loss"]


def test_a_batch_larger_than_the_data_is_the_data():
    g = _small()
    history = g.fit(np.ones((10, 3)), np.ones((10, 2)), batch_size=10**12, verbose=0)
    assert history.params["steps"] == 1


def test_saved_graphs_with_checked_values_load_back(tmp_path):
    g = _small()
    g.fit(np.ones((10, 3)), np.ones((10, 2)), verbose=0)
    back = gn.load(g.save(tmp_path / "m.gnet"))
    assert _same(back, g)


def test_an_argument_keyed_by_unknown_outputs_is_a_not_found_error_naming_the_call():
    x, y = np.ones((4, 3)), np.ones((4, 2))
    calls = {
        "compile: loss": lambda g: g.compile(loss={"yy": "mse"}),
        "compile: loss_weights": lambda g: g.compile(loss_weights={"yy": 1.0}),
        "fit: metrics": lambda g: g.fit(x, y, metrics={"yy": ["mae"]}, verbose=0),
        "evaluate: metrics": lambda g: g.evaluate(x, y, metrics={"yy": ["mae"]}),
        "fit: sample_weight": lambda g: g.fit(x, y, sample_weight={"yy": np.ones(4)}, verbose=0),
        "evaluate: sample_weight": lambda g: g.evaluate(x, y, sample_weight={"yy": np.ones(4)}),
        "train_step: sample_weight": lambda g: g.train_step(x, y, sample_weight={"yy": np.ones(4)}),
        "fit: validation_data: sample_weight": lambda g: g.fit(x, y, validation_data=(x, y, {"yy": np.ones(4)}),
                                                                verbose=0),
    }
    for where, call in calls.items():
        with pytest.raises(gn.NotFoundError, match=rf"^{where} names unknown outputs \['yy'\]; outputs: \['y'\]$"):
            call(_small())


def test_a_generators_batch_keyed_by_an_unknown_output_is_named_once_by_its_role():
    x, y = np.ones((4, 3)), np.ones((4, 2))

    def batches():
        while True:
            yield x, y, {"yy": np.ones(4)}

    with pytest.raises(gn.NotFoundError, match=r"^fit: epoch 1, batch 1: sample_weight names unknown outputs"):
        _small().fit(batches(), steps_per_epoch=1, verbose=0)
    with pytest.raises(gn.NotFoundError, match=r"^validation_data: epoch 1, batch 1: sample_weight names unknown"):
        _small().fit(x, y, validation_data=batches(), validation_steps=1, verbose=0)


def test_evaluate_names_itself_for_a_bad_batch_size():
    with pytest.raises(GraphError, match=r"^evaluate: batch_size must be a positive integer, got -1"):
        _small().evaluate(np.ones((4, 3)), np.ones((4, 2)), batch_size=-1)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda g: g.add_hidden("q", 3, activation="relux"), r"unknown activation 'relux'; known: .*; did you mean 'relu'\?$"),
        (lambda g: g.add_hidden("hidden", 2) and g["hiden"], r"has no node 'hiden'; known: .*; did you mean 'hidden'\?$"),
        (lambda g: g.set_weights({"h.bais": np.zeros(4)}), r"unknown weight keys \['h.bais'\]; .*did you mean 'h.bias'\?$"),
        (lambda g: g.connect("x", "y", init="glorot_uniformm"),
         r"^synapse 'x' -> 'y': init: unknown initializer 'glorot_uniformm'; .*did you mean 'glorot_uniform'\?$"),
        (lambda g: gn.callbacks.LambdaCallback(on_epoc_end=print), r"unknown hooks .*; did you mean 'on_epoch_end'\?$"),
        (lambda g: g.fit(np.ones((4, 3)), np.ones((4, 2)), metrics=["accurcy"], verbose=0), r"did you mean 'accuracy'\?$"),
    ],
)
def test_a_misspelt_name_gets_the_known_name_it_is_closest_to(call, message):
    with pytest.raises(GraphError, match=message):
        call(_small())


def test_a_name_not_close_to_any_gets_no_suggestion():
    with pytest.raises(GraphError) as info:
        _small().add_hidden("q", 3, activation="banana")
    assert "did you mean" not in str(info.value)


@pytest.mark.parametrize("name", [" ", "   ", "\u3000"])
def test_a_blank_name_is_called_blank(name):
    with pytest.raises(GraphError, match=r"^node name must not be blank \(only white space\), got "):
        _small().add_input(name, 3)
    with pytest.raises(GraphError, match=r"^graph name must not be blank"):
        gn.Graph(name=name)


def test_weights_refused_say_how_many_and_whether_too_large_or_not_finite():
    g = _small()
    with pytest.raises(GraphError, match=r"^weight 'h.bias' holds 4 value\(s\) too large for the graph's float32 "
                                         r"\(largest 3.403e\+38\); build the graph with dtype='float64'$"):
        g.set_weights({"h.bias": np.full(4, 1e39)})
    with pytest.raises(GraphError, match=r"^weight 'h.bias' contains 2 NaN or inf value\(s\)$"):
        g.set_weights({"h.bias": [1.0, np.nan, np.inf, 2.0]})
    _small("float64").set_weights({"h.bias": np.full(4, 1e39)})
