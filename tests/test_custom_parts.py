"""Custom activations and losses: the short protocol, gn.register, custom_objects,
and clear errors for what the engine cannot use (graphnet._protocols, graphnet._registry).

Their gradients are checked against float64 central differences
(``gn.check_gradients``); sample weights against the same rows repeated.
"""

from __future__ import annotations

import doctest
import json
import warnings

import numpy as np
import pytest

import graphnet as gn
from graphnet import activations, losses


@pytest.fixture(autouse=True)
def registries():
    """Every test here registers what it likes; the registries are put back after."""
    saved = dict(activations.ACTIVATIONS), dict(losses.LOSSES)
    yield
    for registry, before in zip((activations.ACTIVATIONS, losses.LOSSES), saved):
        registry.clear()
        registry.update(before)


class Cube(gn.activations.Activation):
    """``z³``: its derivative needs z."""

    name = "cube"

    def forward(self, z):
        return z**3

    def backward(self, a, grad, z):
        return grad * 3 * z**2


class Ratio(gn.activations.Activation):
    """``z / (1 + |z|)`` with a parameter-free derivative from a, taking xp."""

    name = "ratio"
    seen_xp = None

    def forward(self, z, xp=np):
        Ratio.seen_xp = xp
        return z / (1 + xp.abs(z))

    def backward(self, a, grad):
        return grad * (1 - np.abs(a)) ** 2


class LogCosh(gn.losses.Loss):
    name = "log_cosh"

    def value(self, y, a):
        return np.log(np.cosh(a - y)).mean(axis=1)

    def gradient(self, y, a):
        return np.tanh(a - y) / a.shape[1]


def _graph(activation, loss="mse", dtype="float64", seed=0):
    g = gn.Graph(seed=seed, dtype=dtype)
    g.add_input("x", 3)
    g.add_hidden("h", 4, activation=activation)
    g.add_output("y", 2, loss=loss)
    g.connect("x", "h")
    g.connect(["h", "x"], "y")
    return g


# ------------------------------------------------------------ gradients
@pytest.mark.parametrize("activation", [Cube(), Ratio()], ids=["needs z", "from a"])
def test_a_custom_activation_trains_with_the_right_gradients(activation, rng):
    g = _graph(activation)
    assert type(activation).needs_input is isinstance(activation, Cube)
    report = gn.check_gradients(g, rng.normal(size=(6, 3)), rng.normal(size=(6, 2)))
    assert report.ok, report.text()
    out = gn.Graph(seed=1, dtype="float64")  # as an output's activation too
    out.add_input("x", 3)
    out.add_output("y", 2, activation=activation)
    out.connect("x", "y")
    assert gn.check_gradients(out, rng.normal(size=(5, 3)), rng.normal(size=(5, 2))).ok


def test_a_custom_activation_is_given_the_array_module_when_it_asks():
    Ratio.seen_xp = None
    _graph(Ratio()).predict(np.ones((2, 3)))
    assert Ratio.seen_xp is np


def test_a_custom_loss_trains_with_the_right_gradients(rng):
    g = _graph("tanh", loss=LogCosh())
    report = gn.check_gradients(g, rng.normal(size=(7, 3)), rng.normal(size=(7, 2)))
    assert report.ok, report.text()
    value = g.evaluate(x := rng.normal(size=(5, 3)), y := rng.normal(size=(5, 2)))["loss"]
    assert value == pytest.approx(np.mean(np.log(np.cosh(g.predict(x) - y))), rel=1e-12)


def test_the_engine_weights_a_custom_loss_as_the_rows_repeated(rng):
    x, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    counts = np.array([1, 3, 1, 2, 1, 4])
    weighted, repeated = (_graph(Cube(), LogCosh()) for _ in range(2))
    loss_w = weighted.evaluate(x, y, sample_weight=counts)["loss"]
    loss_r = repeated.evaluate(np.repeat(x, counts, 0), np.repeat(y, counts, 0))["loss"]
    assert loss_w == pytest.approx(loss_r, rel=1e-12)
    weighted.train_step(x, y, optimizer=gn.optimizers.SGD(lr=0.1), sample_weight=counts)
    repeated.train_step(np.repeat(x, counts, 0), np.repeat(y, counts, 0), optimizer=gn.optimizers.SGD(lr=0.1))
    for key, value in repeated.get_weights().items():
        np.testing.assert_allclose(weighted.get_weights()[key], value, rtol=1e-12, atol=1e-15, err_msg=key)


def test_the_issue_loss_with_an_optional_z_now_works(rng):
    """value(self, y, a, z=None) failed with 'takes from 3 to 4 positional arguments but 5 were given'."""

    class Squared(gn.losses.Loss):
        name = "squared"

        def value(self, y, a, z=None):
            return ((a - y) ** 2).sum(axis=1)

        def gradient(self, y, a):
            return 2 * (a - y)

    g = _graph("relu", loss=Squared())
    assert gn.check_gradients(g, rng.normal(size=(4, 3)), rng.normal(size=(4, 2))).ok
    g.fit(rng.normal(size=(8, 3)), rng.normal(size=(8, 2)), epochs=1, verbose=0)


def test_a_float32_graph_runs_a_loss_that_returns_float64(rng):
    g = _graph(Cube(), LogCosh(), dtype="float32")
    loss = g.train_step(rng.normal(size=(4, 3)), rng.normal(size=(4, 2)))
    assert np.isfinite(loss)
    assert all(w.dtype == np.float32 for w in g.get_weights().values())


# ---------------------------------------------------------------- errors
def test_a_loss_that_returns_the_mean_is_told_to_return_one_loss_per_row(rng):
    class Mean(gn.losses.Loss):
        name = "mean_loss"

        def value(self, y, a):
            return ((a - y) ** 2).mean()

        def gradient(self, y, a):
            return 2 * (a - y) / a.shape[1]

    g = _graph("relu", loss=Mean())
    with pytest.raises(gn.GraphError, match=r"custom loss 'mean_loss' \(Mean\): value must return the loss "
                                            r"of each row, shape \(4,\), got shape \(\)"):
        g.evaluate(rng.normal(size=(4, 3)), rng.normal(size=(4, 2)))


def test_wrong_shapes_at_first_use_say_what_the_protocol_wants(rng):
    class Flat(gn.activations.Activation):
        name = "flat"

        def forward(self, z):
            return z.sum(axis=1)

        def backward(self, a, grad):
            return grad

    class Short(gn.losses.Loss):
        name = "short"

        def value(self, y, a):
            return ((a - y) ** 2).mean(axis=1)

        def gradient(self, y, a):
            return (a - y)[:, :1]

    x, y = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    with pytest.raises(gn.GraphError, match=r"activation 'flat' \(Flat\): forward must return an array of "
                                            r"z's shape, shape \(4, 4\), got shape \(4,\). The protocol"):
        _graph(Flat()).predict(x)
    with pytest.raises(gn.GraphError, match=r"loss 'short' \(Short\): gradient must return .* shape \(4, 2\), "
                                            r"got shape \(4, 1\)"):
        _graph("relu", loss=Short()).gradients(x, y)


def test_missing_methods_signatures_and_names_are_refused_where_the_part_is_used():
    class NoBackward(gn.activations.Activation):
        name = "no_backward"

        def forward(self, z):
            return z

    class Extra(gn.activations.Activation):
        name = "extra"

        def forward(self, z, k):
            return z * k

        def backward(self, a, grad):
            return grad

    class Nameless(gn.losses.Loss):
        def value(self, y, a):
            return a.sum(axis=1)

        def gradient(self, y, a):
            return np.ones_like(a)

    cases = [
        (NoBackward, r"custom activation NoBackward: missing backward\. The protocol: a custom Activation"),
        (Extra, r"custom activation Extra: forward\(self, z, k\): the engine never passes 'k'"),
        (Nameless, r"custom loss Nameless: name must be a non-empty string, got ''.* The protocol: a custom Loss"),
    ]
    for cls, match in cases:
        with pytest.raises(gn.GraphError, match=match):
            gn.register(cls)
        g = gn.Graph()
        with pytest.raises(gn.GraphError, match=match):
            if issubclass(cls, gn.activations.Activation):
                g.add_hidden("h", 2, activation=cls())
            else:
                g.add_output("y", 2, loss=cls())
        assert not g.nodes  # refused before anything changed
    assert "no_backward" not in activations.ACTIVATIONS and "extra" not in activations.ACTIVATIONS


# -------------------------------------------------------------- register
def test_register_files_a_class_by_its_name_in_its_family():
    assert gn.register(Cube) is Cube and gn.register(LogCosh) is LogCosh
    g = gn.Graph()
    assert isinstance(g.add_hidden("h", 2, activation="cube").activation, Cube)
    assert isinstance(g.add_output("y", 2, loss="log_cosh").loss, LogCosh)
    assert "log_cosh" not in activations.ACTIVATIONS and "cube" not in losses.LOSSES

    class Cube2(Cube):  # a notebook cell run again: the name now means the new class
        name = "cube"

    gn.register(Cube2)
    assert isinstance(activations.get("cube"), Cube2)


@pytest.mark.parametrize("what, match", [
    (Cube(), r"register: give the class \(Cube\), not an instance"),
    (int, r"register: expected a subclass of gn.activations.Activation or gn.losses.Loss or gn.metrics.Metric "
          r"or gn.schedules.LearningRateSchedule, got <class 'int'>"),
    ("cube", r"register: expected a subclass"),
])
def test_register_refuses_what_is_not_a_custom_part_class(what, match):
    with pytest.raises(gn.GraphError, match=match):
        gn.register(what)


def test_register_refuses_graphnet_s_own_names():
    class MyRelu(gn.activations.Activation):
        name = "relu"

        def forward(self, z):
            return z

        def backward(self, a, grad):
            return grad

    with pytest.raises(gn.GraphError, match=r"activation name 'relu' is graphnet's own \(ReLU\); give MyRelu"):
        gn.register(MyRelu)
    assert activations.ACTIVATIONS["relu"] is activations.ReLU


# ---------------------------------------------------------- files, specs
def test_a_file_naming_an_unregistered_part_says_how_to_load_it(tmp_path, rng):
    g = _graph(Cube(), LogCosh())
    x = rng.normal(size=(5, 3))
    path = g.save(tmp_path / "cube.gnet")
    with pytest.raises(gn.ModelFileError, match=r"cube.gnet: .*unknown activation 'cube'.* register its class with "
                                                r"gn.register\(cls\), or pass custom_objects=\{'cube': cls\}"):
        gn.load(path)
    loaded = gn.load(path, custom_objects={"cube": Cube, "log_cosh": LogCosh})
    np.testing.assert_array_equal(loaded.predict(x), g.predict(x))
    assert isinstance(loaded["y"].loss, LogCosh)
    with pytest.raises(gn.GraphError, match="unknown activation 'cube'"):  # not registered by the load
        gn.Graph().add_hidden("h", 2, activation="cube")
    gn.register(Cube)
    gn.register(LogCosh)
    np.testing.assert_array_equal(gn.load(path).predict(x), g.predict(x))


def test_an_unknown_part_named_in_code_is_told_custom_objects_is_for_loading():
    """add_hidden reads no file: custom_objects is offered for loading one."""
    g = gn.Graph()
    g.add_input("x", 3)
    with pytest.raises(gn.GraphError, match=r"unknown activation 'nope'.* register its class with gn.register\(cls\), "
                                            r"or pass custom_objects=\{'nope': cls\} when loading a file or spec"):
        g.add_hidden("k", 2, activation="nope")


def test_from_dict_and_from_spec_take_custom_objects(tmp_path):
    data = _graph(Cube(), LogCosh()).to_dict()
    objects = {"cube": Cube, "log_cosh": LogCosh}
    assert isinstance(gn.Graph.from_dict(data, custom_objects=objects)["h"].activation, Cube)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(data))
    assert isinstance(gn.Graph.from_spec(spec, custom_objects=objects)["y"].loss, LogCosh)
    with pytest.raises(gn.ModelFileError, match=r"spec.json: spec.nodes\[1\]: unknown activation 'cube'"):
        gn.Graph.from_spec(spec)


@pytest.mark.parametrize("objects, match", [
    ({"cube": Cube()}, r"custom_objects\['cube'\]: give the class \(Cube\), not an instance"),
    ({"cube": dict}, r"custom_objects\['cube'\]: expected a subclass of gn.activations.Activation"),
    ([Cube], r"custom_objects must be a dict name -> class"),
    ({3: Cube}, r"custom_objects\[3\]: keys must be the names files use"),
])
def test_bad_custom_objects_are_the_caller_s_error_not_the_file_s(tmp_path, objects, match):
    path = _graph(Cube()).save(tmp_path / "m.gnet")
    with pytest.raises(gn.GraphError, match=match) as caught:
        gn.load(path, custom_objects=objects)
    assert not isinstance(caught.value, gn.ModelFileError)


# --------------------------------------------------------------- configs
class Scaled(gn.activations.Activation):
    """``alpha tanh(z)``, with a Keras-style get_config: its arguments alone."""

    name = "scaled"

    def __init__(self, alpha=1.0):
        self.alpha = alpha

    def forward(self, z):
        return self.alpha * np.tanh(z)

    def backward(self, a, grad):
        return grad * (self.alpha - a * a / self.alpha)

    def get_config(self):
        return {"alpha": self.alpha}


class Clipped(gn.losses.Loss):
    """Squared error clipped at ``delta``, with a Keras-style get_config."""

    name = "clipped"

    def __init__(self, delta=1.0):
        self.delta = delta

    def value(self, y, a):
        return np.minimum((a - y) ** 2, self.delta).mean(axis=1)

    def gradient(self, y, a):
        return np.where((a - y) ** 2 < self.delta, 2 * (a - y), 0.0) / a.shape[1]

    def get_config(self):
        return {"delta": self.delta}


def test_a_config_without_its_name_gets_the_part_s_name_and_round_trips(tmp_path, rng):
    g = gn.Graph(seed=0)
    g.add_input("x", 3)
    g.add_output("y", 1, activation=Scaled(2.0), loss=Clipped(0.5))
    g.connect("x", "y")
    x = rng.normal(size=(6, 3))
    assert Scaled(2.0).get_config() == {"name": "scaled", "alpha": 2.0}
    data = g.to_dict()
    assert data["nodes"][1]["activation"] == {"name": "scaled", "alpha": 2.0}
    assert data["nodes"][1]["loss"] == {"name": "clipped", "delta": 0.5}
    assert "scaled(2)" in g.summary(print_fn=None)
    path = g.save(tmp_path / "scaled.gnet")
    back = gn.load(path, custom_objects={"scaled": Scaled, "clipped": Clipped})
    assert (back["y"].activation.alpha, back["y"].loss.delta) == (2.0, 0.5)
    np.testing.assert_array_equal(back.predict(x), g.predict(x))
    gn.register(Scaled)
    gn.register(Clipped)
    assert gn.load(path).to_dict() == data
    model = gn.Sequential([gn.Input(3), gn.Dense(1, activation=Scaled(3.0))], loss=Clipped(0.25))
    assert model.to_dict()["loss"] == {"name": "clipped", "delta": 0.25}


def test_configs_without_names_still_tell_two_classes_apart():
    class Shifted(Scaled):
        name = "shifted"

    assert Scaled(2.0) != Shifted(2.0) and Scaled(2.0) == Scaled(2.0)


@pytest.mark.parametrize("config, match", [
    ([2.0], r"get_config\(\) must return a dict, got list: \[2.0\]"),
    ({3: 2.0}, r"get_config\(\) keys must be argument names \(str\), got 3"),
    ({"alpha": np.float32(2.0)}, r"get_config\(\)\['alpha'\] is np.float32\(2.0\), which a model file cannot hold; "
                                 r"return plain Python values"),
    ({"alpha": {1: "k"}}, r"get_config\(\)\['alpha'\] is \{1: 'k'\}, which a model file cannot hold"),
    ({"alpha": np.arange(2)}, r"get_config\(\)\['alpha'\] is array\(\[0, 1\]\), which a model file cannot hold"),
    ({"alpha": float("nan")}, r"get_config\(\)\['alpha'\] is nan, which a model file cannot hold"),
    ({"name": "other", "alpha": 2.0}, r"get_config\(\) gives name 'other', but the part is named 'odd', the name "
                                      r"files find its class by; leave 'name' out and graphnet adds it"),
], ids=["not a dict", "a key not a string", "a numpy scalar", "a dict keyed by a number", "an array", "nan",
        "another name"])
def test_a_config_no_file_could_hold_is_refused_when_the_part_is_added(config, match):
    class Odd(Scaled):
        name = "odd"

        def get_config(self):
            return config

    class OddLoss(Clipped):
        name = "odd"

        def get_config(self):
            return config

    g = gn.Graph()
    g.add_input("x", 3)
    for add in (lambda: g.add_hidden("h", 2, activation=Odd()), lambda: g.add_output("y", 1, loss=OddLoss())):
        with pytest.raises(gn.GraphError, match=r"custom (activation|loss) 'odd' \(Odd(Loss)?\): " + match
                                                + r".* The protocol: get_config\(\) returns the arguments"):
            add()
    assert list(g.nodes) == ["x"]  # refused before anything changed


def test_a_numpy_scalar_in_a_config_is_shown_as_one_under_numpy_1(monkeypatch):
    """numpy 1 (which graphnet allows) writes np.float32(2.0) as 2.0: the
    message said a plain 2.0 was something a file cannot hold."""
    from graphnet import _text

    monkeypatch.setattr(_text, "_NUMPY_1", True)

    class Odd(Scaled):
        name = "odd"

        def get_config(self):
            return {"alpha": np.float32(2.0), "flags": [np.True_, np.int64(3)]}

    with pytest.raises(gn.GraphError, match=r"get_config\(\)\['alpha'\] is np.float32\(2.0\), which a model"):
        gn.Graph().add_hidden("h", 2, activation=Odd())
    assert _text.shown([np.True_, np.int64(3), 1.5]) == "[np.True_, np.int64(3), 1.5]"


def test_a_get_config_that_raises_is_a_graph_error_naming_the_part():
    class Broken(Scaled):
        name = "broken"

        def get_config(self):
            return {"alpha": self.beta}

    with pytest.raises(gn.GraphError, match=r"custom activation 'broken' \(Broken\): get_config\(\) raised "
                                            r"AttributeError: .*beta") as caught:
        gn.Graph().add_hidden("h", 2, activation=Broken())
    assert isinstance(caught.value.__cause__, AttributeError)


def test_a_warning_made_an_error_in_get_config_escapes_as_itself():
    class Deprecated(Scaled):
        name = "deprecated"

        def get_config(self):
            warnings.warn("alpha is deprecated", DeprecationWarning, stacklevel=2)
            return super().get_config()

    g = gn.Graph()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DeprecationWarning, match="alpha is deprecated"):
            g.add_hidden("h", 2, activation=Deprecated(2.0))
    assert "h" not in g.nodes


def test_a_config_spoiled_after_adding_is_refused_naming_the_node_and_nothing_is_written(tmp_path):
    scaled, clipped = Scaled(2.0), Clipped(0.5)
    g = gn.Graph(seed=0)
    g.add_input("x", 3)
    g.add_output("y", 1, activation=scaled, loss=clipped)
    g.connect("x", "y")
    scaled.alpha = np.float32(3.0)
    clipped.delta = np.arange(2)
    path = tmp_path / "spoiled.gnet"
    for call in (g.to_dict, lambda: g.save(path)):
        with pytest.raises(gn.GraphError, match=r"node 'y': custom activation 'scaled' \(Scaled\): "
                                                r"get_config\(\)\['alpha'\] is np.float32\(3.0\)"):
            call()
    assert not path.exists()
    scaled.alpha = 3.0
    with pytest.raises(gn.GraphError, match=r"node 'y': custom loss 'clipped' \(Clipped\): "
                                            r"get_config\(\)\['delta'\] is array\(\[0, 1\]\)"):
        g.save(path)
    assert not path.exists()
    assert "scaled(3)" in g.summary(print_fn=None)  # the table needs no file


# ------------------------------------------------------------------ ONNX
def test_to_onnx_names_the_node_whose_custom_activation_it_cannot_export(tmp_path):
    pytest.importorskip("onnx")
    path = tmp_path / "m.onnx"
    with pytest.raises(gn.GraphError, match=r"to_onnx: node 'h' has the custom activation 'cube' \(Cube\), "
                                            r"which cannot be exported to ONNX"):
        _graph(Cube()).to_onnx(path)
    assert not path.exists()
    _graph("tanh", loss=LogCosh()).to_onnx(path)  # a custom loss is not part of the model
    assert path.exists()


# ------------------------------------------------------------------ docs
@pytest.mark.parametrize("module", [activations, losses, gn.register])
def test_the_documented_examples_run(module):
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = finder.find(module, module.__name__, globs={}) if not callable(module) else finder.find(module)
    tests = [t for t in tests if t.examples]
    assert tests
    for test in tests:
        runner.run(test)
    assert runner.failures == 0


def test_a_custom_metric_is_found_by_name_after_register(rng):
    class MeanBias(gn.metrics.Metric):
        name = "mean_bias_for_register"

        def __init__(self, name=None):
            super().__init__(name)
            self.add_state("total", 0.0)
            self.add_state("count", 0.0)

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.total += float(np.sum(y_pred - y_true.reshape(y_pred.shape)))
            self.count += y_pred.size

        def result(self):
            return self.total / self.count if self.count else 0.0

    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 3)
    g.add_output("y", 1)
    g.connect("x", "y")
    x, y = rng.normal(size=(50, 3)), rng.normal(size=(50, 1))
    with pytest.raises(gn.GraphError, match="mean_bias_for_register"):
        g.evaluate(x, y, metrics=["mean_bias_for_register"])
    gn.register(MeanBias)
    logs = g.evaluate(x, y, metrics=["mean_bias_for_register"], batch_size=7)
    assert logs["mean_bias_for_register"] == pytest.approx(float(np.mean(g.predict(x) - y)), rel=1e-12)


def test_every_parameter_a_config_may_hold_loads_back(tmp_path, rng):
    # What the config check lets through is what a model file's reader takes.
    class Modal(gn.activations.Activation):
        name = "modal_tanh"

        def __init__(self, mode=None, scales=(1.0,), strict=False, extra=None):
            self.mode, self.scales, self.strict, self.extra = mode, list(scales), strict, extra

        def forward(self, z):
            return np.tanh(z) * self.scales[0]

        def backward(self, a, grad):
            return grad * (self.scales[0] - a * a / self.scales[0])

        def get_config(self):
            return {"mode": self.mode, "scales": self.scales, "strict": self.strict, "extra": self.extra}

    for part in (Modal(), Modal("fast", [2.0, 3.0], True, {"a": [1, 2, {"b": None}], "big": 10**30})):
        g = gn.Graph(seed=0)
        g.add_input("x", 3)
        g.add_output("y", 2, activation=part)
        g.connect("x", "y")
        back = gn.load(g.save(tmp_path / "modal.gnet"), custom_objects={"modal_tanh": Modal})
        assert back["y"].activation.get_config() == part.get_config()
        x = rng.normal(size=(4, 3))
        np.testing.assert_array_equal(back.predict(x), g.predict(x))
        assert gn.Graph.from_dict(g.to_dict(), custom_objects={"modal_tanh": Modal}).to_dict() == g.to_dict()


def test_numpy_1_scalars_are_shown_with_numpy_2_s_digits(monkeypatch):
    """str gives numpy's shortest digits; a format went through a Python float
    (np.float32(0.10000000149011612))."""
    from graphnet import _text

    values = [np.float32(0.1), np.float16(0.1), np.float32(1e20), np.complex128(1 + 2j), np.int8(-3), np.False_,
              np.clongdouble(1 + 2j)]
    native = [repr(v) for v in values]
    monkeypatch.setattr(_text, "_NUMPY_1", True)
    assert [_text.shown(v) for v in values] == (native if np.lib.NumpyVersion(np.__version__) >= "2.0.0" else
                                                ["np.float32(0.1)", "np.float16(0.1)", "np.float32(1e+20)",
                                                 "np.complex128(1+2j)", "np.int8(-3)", "np.False_",
                                                 "np.clongdouble('1+2j')"])
    assert _text.shown(np.timedelta64(3, "s")) == repr(np.timedelta64(3, "s"))
