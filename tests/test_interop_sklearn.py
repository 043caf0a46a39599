"""gn.from_sklearn, checked against scikit-learn's own predictions."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="scikit-learn is not installed")

from interop import trains_saves_exports
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor

import graphnet as gn

pytestmark = pytest.mark.filterwarnings("ignore", category=ConvergenceWarning)
ACTIVATIONS = ["identity", "logistic", "tanh", "relu"]


def _data(dtype, rng):
    x = rng.normal(size=(50, 4)).astype(dtype)
    return x, {
        "binary": rng.integers(0, 2, 50),
        "multiclass": rng.integers(0, 4, 50),
        "multilabel": rng.integers(0, 2, (50, 3)),
        "regressor": x @ rng.normal(size=4),
        "multioutput": x @ rng.normal(size=(4, 2)),
    }


def _fit(kind, activation, x, targets):
    if kind in ("regressor", "multioutput"):
        estimator = MLPRegressor(hidden_layer_sizes=(6, 5), activation=activation, max_iter=60, random_state=0)
    else:
        estimator = MLPClassifier(hidden_layer_sizes=(6,), activation=activation, max_iter=60, random_state=0)
    return estimator.fit(x, targets[kind])


def _expected(estimator, x):
    if isinstance(estimator, MLPClassifier):
        return estimator.predict_proba(x)
    return estimator.predict(x).reshape(len(x), -1)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel", "regressor", "multioutput"])
def test_predictions_equal_sklearn(kind, activation):
    rng = np.random.default_rng(0)
    for dtype, tolerance in (("float64", 1e-12), ("float32", 1e-5)):
        x, targets = _data(dtype, rng)
        estimator = _fit(kind, activation, x, targets)
        g = gn.from_sklearn(estimator)
        assert isinstance(g, gn.Sequential) and g.dtype == np.dtype(dtype)
        np.testing.assert_allclose(g.predict(x), _expected(estimator, x), rtol=tolerance, atol=tolerance)
    output = g.nodes[g.outputs[0]]
    expected = {"binary": ("softmax", 2), "multiclass": ("softmax", 4), "multilabel": ("sigmoid", 3),
                "regressor": ("linear", 1), "multioutput": ("linear", 2)}[kind]
    assert (output.activation.name, output.size) == expected
    assert all(n.activation.name == {"identity": "linear", "logistic": "sigmoid"}.get(activation, activation)
               for n in g.layers[1:-1])


def test_trains_saves_and_exports(tmp_path):
    rng = np.random.default_rng(1)
    x, targets = _data("float32", rng)
    g = gn.from_sklearn(_fit("multiclass", "relu", x, targets), name="digits")
    assert g.name == "digits" and g.outputs[0] == "dense_1"
    assert g.nodes["dense_1"].loss.name == "categorical_crossentropy"
    trains_saves_exports(g, x, tmp_path)


def test_what_cannot_be_imported_is_refused():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(20, 3))
    with pytest.raises(gn.ModelImportError, match="MLPClassifier is not fitted; call fit"):
        gn.from_sklearn(MLPClassifier())
    poisson = MLPRegressor(hidden_layer_sizes=(3,), loss="poisson", max_iter=5).fit(x, np.abs(x[:, 0]))
    with pytest.raises(gn.ModelImportError, match=r"out_activation_='exp' has no graphnet equivalent"):
        gn.from_sklearn(poisson)
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(gn.ModelImportError, match=r"expects a fitted sklearn.neural_network.MLPClassifier or "
                                                  r"MLPRegressor, got sklearn.linear_model.*LogisticRegression"):
        gn.from_sklearn(LogisticRegression())


@pytest.mark.parametrize("kwargs, message", [
    ({"name": 3}, "name must be None or a non-empty string, got 3"),
    ({"name": ""}, "name must be None or a non-empty string, got ''"),
    ({"seed": "a"}, "seed must be None or an integer >= 0, got 'a'"),
    ({"loss": "nope"}, "loss: unknown loss 'nope'"),
])
def test_from_sklearn_checks_its_arguments(kwargs, message):
    """A wrong argument is named, not the spec the import would build."""
    rng = np.random.default_rng(3)
    estimator = MLPClassifier(hidden_layer_sizes=(3,), max_iter=5).fit(rng.normal(size=(20, 3)), np.arange(20) % 3)
    with pytest.raises(gn.ModelImportError, match=f"^from_sklearn: {message}"):
        gn.from_sklearn(estimator, **kwargs)


def test_import_graphnet_loads_no_optional_library():
    code = ("import sys, graphnet; print(sorted(m for m in ('torch', 'keras', 'onnx', 'onnxruntime', 'sklearn', "
            "'h5py', 'skl2onnx') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("importer", ["sklearn", "torch", "keras", "onnx"])
def test_an_import_that_runs_out_of_memory_says_so_with_its_cause(importer, tmp_path, monkeypatch):
    """Sizes are checked before allocating, so a MemoryError is the machine's:
    each importer says "ran out of memory" with the MemoryError as the cause
    (from_torch and from_sklearn let it escape raw; from_onnx called the
    model too large, from_keras dropped the cause)."""
    rng = np.random.default_rng(0)
    if importer == "sklearn":
        with pytest.warns(ConvergenceWarning):
            model = MLPRegressor(hidden_layer_sizes=(3,), max_iter=2).fit(rng.normal(size=(20, 2)), rng.normal(size=20))
        load = gn.from_sklearn
    elif importer == "torch":
        torch = pytest.importorskip("torch")
        model, load = torch.nn.Sequential(torch.nn.Linear(2, 3)), gn.from_torch
    elif importer == "keras":
        keras = pytest.importorskip("keras")
        model, load = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)]), gn.from_keras
    else:
        pytest.importorskip("onnx")
        g = gn.Graph(seed=0)
        g.add_input("x", 2)
        g.add_output("y", 3)
        g.connect("x", "y")
        g.to_onnx(tmp_path / "m.onnx")
        model, load = tmp_path / "m.onnx", gn.from_onnx

    def out_of_memory(*args, **kwargs):
        raise MemoryError("no memory")

    monkeypatch.setattr(gn.Graph, "set_weights", out_of_memory)
    with pytest.raises(gn.ModelImportError, match="ran out of memory while importing it") as caught:
        load(model)
    assert isinstance(caught.value.__cause__, MemoryError)


@pytest.mark.parametrize("where", ["torch trace", "keras weights", "keras file", "onnx file", "sklearn arrays"])
def test_running_out_of_memory_before_the_graph_is_built_says_so_too(where, tmp_path, monkeypatch):
    """The reads before a graph is built: tracing a module, copying a Keras
    model's weights, parsing a .keras or .onnx file, reading coefs_. They
    said "cannot trace", "not a readable file", or let MemoryError escape."""

    def out_of_memory(*args, **kwargs):
        raise MemoryError("no memory")

    if where == "torch trace":
        torch = pytest.importorskip("torch")
        monkeypatch.setattr(torch.fx, "symbolic_trace", out_of_memory)
        call, error = (lambda: gn.from_torch(torch.nn.Sequential(torch.nn.Linear(2, 3)))), gn.ModelImportError
    elif where.startswith("keras"):
        keras = pytest.importorskip("keras")
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
        if where == "keras weights":
            monkeypatch.setattr(type(model.layers[0]), "get_weights", out_of_memory)
            call, error = (lambda: gn.from_keras(model)), gn.ModelImportError
        else:
            model.save(tmp_path / "m.keras")
            import h5py

            monkeypatch.setattr(h5py, "File", out_of_memory)
            call, error = (lambda: gn.from_keras(tmp_path / "m.keras")), gn.ModelFileError
    elif where == "onnx file":
        onnx = pytest.importorskip("onnx")
        gn.Sequential([gn.Input(2), gn.Dense(3)], seed=0).to_onnx(tmp_path / "m.onnx")
        monkeypatch.setattr(onnx, "load_model_from_string", out_of_memory)
        call, error = (lambda: gn.from_onnx(tmp_path / "m.onnx")), gn.ModelFileError
    else:
        with pytest.warns(ConvergenceWarning):
            model = MLPRegressor(hidden_layer_sizes=(3,), max_iter=2).fit(np.ones((20, 2)), np.ones(20))
        monkeypatch.setattr(np, "asarray", out_of_memory)
        call, error = (lambda: gn.from_sklearn(model)), gn.ModelImportError
    with pytest.raises(error, match="ran out of memory while") as caught:
        call()
    assert isinstance(caught.value.__cause__, MemoryError)
