"""Keras import, checked against Keras 3 itself (on its torch backend)."""

from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "torch"  # before keras is imported; the interop extra has no other

import numpy as np
import pytest

keras = pytest.importorskip("keras", reason="the interop extra (keras) is not installed")
pytest.importorskip("h5py", reason="the interop extra (h5py) is not installed")

import graphnet as gn
from graphnet.interop.keras import ACTIVATIONS

layers = keras.layers
TOL = 1e-5
# Keras's own numpy-2 deprecation noise, not ours.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _randomise(model, seed=0):
    """Non-zero biases too, so a dropped bias would show."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in model.get_weights()])
    return model


def _keras_predict(model, x):
    out = model(x, training=False)
    if isinstance(out, (list, tuple)):
        return [keras.ops.convert_to_numpy(o) for o in out]
    return keras.ops.convert_to_numpy(out)


@pytest.fixture(scope="module")
def sequential():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((6,), name="features"),
            layers.Dense(8, activation="relu"),
            layers.Dropout(0.3),
            layers.Dense(7, activation="gelu"),
            layers.Dense(5, activation="leaky_relu", use_bias=False),
            layers.Dense(3),
            layers.Activation("softmax", name="probs"),
        ],
        name="mlp",
    )
    return _randomise(model)


@pytest.fixture(scope="module")
def functional():
    keras.utils.set_random_seed(1)
    a = keras.Input((4,), name="a")
    b = keras.Input((3,), name="b")
    h = layers.Dense(6, activation="tanh", name="h")(a)
    dropped = layers.Dropout(0.2, name="drop")(h)  # h also feeds z: dropout gets its own node
    joined = layers.Concatenate(name="cat")([dropped, b])
    o1 = layers.Dense(2, activation="sigmoid", name="o1")(joined)
    z = layers.Dense(5, use_bias=False, name="z")(h)
    act = layers.Activation("relu", name="act")(z)
    act2 = layers.Activation("tanh", name="act2")(act)  # an activation after an activation
    o2 = layers.Dense(1, name="o2")(act2)
    return _randomise(keras.Model([a, b], [o1, o2], name="two_heads"), seed=1)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    return {
        "x": rng.normal(size=(32, 6)).astype("float32"),
        "a": rng.normal(size=(32, 4)).astype("float32"),
        "b": rng.normal(size=(32, 3)).astype("float32"),
    }


def test_sequential_object(sequential, data):
    g = gn.from_keras(sequential)
    assert isinstance(g, gn.Sequential)
    assert g.name == "mlp" and g.inputs == ["features"] and g.outputs == ["probs"]
    assert g.nodes["dense"].dropout == pytest.approx(0.3)
    assert g.nodes["dense_2"].activation.negative_slope == 0.2  # Keras's "leaky_relu" slope
    assert g.nodes["dense_1"].activation.approximate is False  # Keras's "gelu" is exact
    assert not g.nodes["dense_2"].trainable and np.all(g.nodes["dense_2"].bias == 0)  # no bias
    assert g.nodes["probs"].loss.name == "categorical_crossentropy"
    np.testing.assert_allclose(g.predict(data["x"]), _keras_predict(sequential, data["x"]), atol=TOL)


def test_sequential_keras_file(sequential, data, tmp_path):
    path = tmp_path / "mlp.keras"
    sequential.save(path)
    g = gn.from_keras(path)
    np.testing.assert_allclose(g.predict(data["x"]), _keras_predict(sequential, data["x"]), atol=TOL)
    assert g.to_dict() == gn.from_keras(sequential).to_dict()


def test_json_is_architecture_only(sequential):
    from_json = gn.from_keras(sequential.to_json(), seed=0)
    from_object = gn.from_keras(sequential)
    assert from_json.to_dict()["nodes"] == from_object.to_dict()["nodes"]
    assert [s.init for s in from_json.synapses] == ["glorot_uniform"] * 4  # Keras's initialiser
    assert not np.array_equal(from_json.synapses[0].weight, from_object.synapses[0].weight)


def test_functional_two_inputs_two_outputs(functional, data, tmp_path):
    g = gn.from_keras(functional)
    assert type(g) is gn.Graph
    assert g.inputs == ["a", "b"] and g.outputs == ["o1", "o2"]
    # The concatenation feeding o1 became one synapse per part, the kernel split by rows.
    assert g.synapse("drop", "o1").shape == (6, 2) and g.synapse("b", "o1").shape == (3, 2)
    kernel = functional.get_layer("o1").get_weights()[0]
    np.testing.assert_array_equal(g.synapse("b", "o1").weight, kernel[6:])
    assert g.nodes["drop"].dropout == pytest.approx(0.2)
    assert g.nodes["z"].activation.name == "relu"  # 'act' folded into z
    assert g.nodes["act2"].activation.name == "tanh"  # a frozen identity node carries the second
    assert not g.synapse("z", "act2").trainable
    expected = _keras_predict(functional, {"a": data["a"], "b": data["b"]})
    got = g.predict({"a": data["a"], "b": data["b"]})
    np.testing.assert_allclose(got["o1"], expected[0], atol=TOL)
    np.testing.assert_allclose(got["o2"], expected[1], atol=TOL)

    functional.save(tmp_path / "heads.keras")
    from_file = gn.from_keras(tmp_path / "heads.keras").predict({"a": data["a"], "b": data["b"]})
    np.testing.assert_allclose(from_file["o1"], expected[0], atol=TOL)


def test_imported_model_trains_further(functional, data):
    g = gn.from_keras(functional, seed=0)
    assert g.nodes["o1"].loss.name == "binary_crossentropy" and g.nodes["o2"].loss.name == "mse"
    rng = np.random.default_rng(0)
    x = {"a": data["a"], "b": data["b"]}
    y = {"o1": rng.integers(0, 2, size=(32, 2)).astype("float32"), "o2": rng.normal(size=(32, 1))}
    identity = g.synapse("z", "act2").weight.copy()
    history = g.fit(x, y, epochs=40, batch_size=8, optimizer={"name": "adam", "lr": 0.01}, verbose=0)
    assert history.history["loss"][-1] < 0.8 * history.history["loss"][0]
    assert np.array_equal(g.synapse("z", "act2").weight, identity)  # frozen
    assert np.all(g.nodes["z"].bias == 0)  # no bias in Keras: stays zero


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_every_activation(name, data):
    model = _randomise(keras.Sequential([keras.Input((6,)), layers.Dense(4, activation=name)]), seed=2)
    g = gn.from_keras(model)
    np.testing.assert_allclose(g.predict(data["x"]), _keras_predict(model, data["x"]), atol=TOL)


@pytest.mark.parametrize(
    "layer",
    [layers.ReLU(), layers.ReLU(negative_slope=0.1), layers.LeakyReLU(), layers.ELU(alpha=0.5),
     layers.Softmax(), layers.Flatten(), layers.Identity()],
    ids=lambda layer: type(layer).__name__,
)
def test_activation_layers(layer, data):
    model = _randomise(keras.Sequential([keras.Input((6,)), layers.Dense(4), layer]), seed=3)
    np.testing.assert_allclose(gn.from_keras(model).predict(data["x"]), _keras_predict(model, data["x"]), atol=TOL)


def test_loss_can_be_chosen(functional):
    g = gn.from_keras(functional, loss={"o2": "mae"})
    assert g.nodes["o2"].loss.name == "mae" and g.nodes["o1"].loss.name == "binary_crossentropy"
    with pytest.raises(gn.ModelImportError, match=r"loss names unknown outputs \['o3'\]"):
        gn.from_keras(functional, loss={"o3": "mae"})


def test_unsupported_layers_are_named():
    model = keras.Sequential([keras.Input((4,)), layers.Dense(3), layers.BatchNormalization(name="bn")])
    with pytest.raises(gn.ModelImportError, match="layer 'bn' of type 'BatchNormalization' cannot be imported"):
        gn.from_keras(model)
    model = keras.Sequential([keras.Input((4,)), layers.Dense(3, activation="selu", name="d")])
    with pytest.raises(gn.ModelImportError, match=r"layer 'd' \(Dense\) uses activation 'selu'"):
        gn.from_keras(model)
    model = keras.Sequential([keras.Input((4, 2)), layers.Dense(3)])
    with pytest.raises(gn.ModelImportError, match=r"input shape \[None, 4, 2\] is not \(batch, features\)"):
        gn.from_keras(model)


def test_shared_layers_and_output_dropout_are_refused():
    x = keras.Input((3,), name="x")
    shared = layers.Dense(3, name="shared")
    model = keras.Model(x, shared(shared(x)))
    with pytest.raises(gn.ModelImportError, match="layer 'shared' .* is called 2 times"):
        gn.from_keras(model)
    model = keras.Sequential([keras.Input((3,)), layers.Dense(2), layers.Dropout(0.5)])
    with pytest.raises(gn.ModelImportError, match="dropout applies to the model output"):
        gn.from_keras(model)


def test_bad_inputs():
    with pytest.raises(gn.ModelImportError, match="expects a .keras file, a Keras model or a to_json"):
        gn.from_keras(42)
    with pytest.raises(gn.ModelFileError, match="no such file"):
        gn.from_keras("missing.keras")


def test_malformed_configs_raise_import_errors(functional):
    """Junk anywhere in a config gives ModelImportError (or a valid graph), never a stray error."""
    import json

    junk = [None, True, -1, 0, 3, "", "relu", "Dense", [], [1, 2], {}, {"name": 1}, ["a", 0, 0]]
    original = json.loads(functional.to_json())
    rng = np.random.default_rng(0)
    refused = 0
    for _ in range(400):
        config = json.loads(json.dumps(original))
        target, key, node = None, None, config
        for _ in range(int(rng.integers(1, 9))):
            if isinstance(node, dict) and node:
                key = list(node)[int(rng.integers(len(node)))]
            elif isinstance(node, list) and node:
                key = int(rng.integers(len(node)))
            else:
                break
            target, node = node, node[key]
        if target is None:
            continue
        target[key] = junk[int(rng.integers(len(junk)))]
        try:
            gn.from_keras(json.dumps(config))
        except gn.ModelImportError:
            refused += 1
    assert refused > 50


def test_keras_file_without_recorded_layer_names(functional, data, tmp_path):
    """Older files name weight groups only by class (dense, dense_1, ...): fall back to that."""
    import io
    import zipfile

    import h5py

    functional.save(tmp_path / "heads.keras")
    with zipfile.ZipFile(tmp_path / "heads.keras") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    buffer = io.BytesIO(members["model.weights.h5"])
    with h5py.File(buffer, "r+") as h5:
        for group in h5["layers"].values():
            group["vars"].attrs.pop("name", None)
    members["model.weights.h5"] = buffer.getvalue()
    with zipfile.ZipFile(tmp_path / "old.keras", "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    g = gn.from_keras(tmp_path / "old.keras")
    expected = _keras_predict(functional, {"a": data["a"], "b": data["b"]})
    np.testing.assert_allclose(g.predict({"a": data["a"], "b": data["b"]})["o2"], expected[1], atol=TOL)
