"""Keras import, checked against Keras 3 itself (on its torch backend)."""

from __future__ import annotations

import os
import warnings

os.environ["KERAS_BACKEND"] = "torch"  # before keras is imported; the interop extra has no other

import numpy as np
import pytest

keras = pytest.importorskip("keras", reason="the interop extra (keras) is not installed")
pytest.importorskip("h5py", reason="the interop extra (h5py) is not installed")

from interop import trains_saves_exports

import graphnet as gn
from graphnet.interop.keras_import import ACTIVATIONS

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
    if isinstance(out, dict):
        return {k: keras.ops.convert_to_numpy(v) for k, v in out.items()}
    if isinstance(out, (list, tuple)):
        return [keras.ops.convert_to_numpy(o) for o in out]
    return keras.ops.convert_to_numpy(out)


@pytest.fixture(scope="module")
def sequential():
    keras.backend.clear_session()  # the layers' default names count from zero (other tests made layers too)
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


def test_a_model_object_imports_with_deprecations_made_errors(sequential, data):
    """Keras's torch backend converts its variables the way numpy 2 deprecates;
    that is Keras's own warning, not the user's to meet in from_keras."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        g = gn.from_keras(sequential)
    np.testing.assert_allclose(g.predict(data["x"]), _keras_predict(sequential, data["x"]), atol=TOL)


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


def test_a_numpy_dtype_is_taken_as_graph_takes_it(sequential):
    assert gn.from_keras(sequential, dtype=np.float64).dtype == np.float64
    with pytest.raises(gn.ModelImportError, match="from_keras: dtype must be None, 'float32' or 'float64'"):
        gn.from_keras(sequential, dtype=np.int32)


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
    model = keras.Sequential([keras.Input((4,)), layers.Dense(3), layers.LayerNormalization(name="ln")])
    with pytest.raises(gn.ModelImportError, match="layer 'ln' of type 'LayerNormalization' cannot be imported"):
        gn.from_keras(model)
    model = keras.Sequential([keras.Input((4,)), layers.Dense(3, activation="hard_silu", name="d")])
    with pytest.raises(gn.ModelImportError, match=r"layer 'd' \(Dense\) uses activation 'hard_silu'"):
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


def test_an_unused_input_is_refused():
    """Keras builds it; a graph cannot hold an input that feeds no output."""
    a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    model = keras.Model([a, b], layers.Dense(4, name="y")(a))
    with pytest.raises(gn.ModelImportError, match=r"keras model '.*': node 'b' \(from layer 'b' \(InputLayer\)\) "
                                                  r"reaches no output: the model has an input it does not use"):
        gn.from_keras(model)


def test_bad_inputs():
    with pytest.raises(gn.ModelImportError, match="expects a .keras or .h5 file, a Keras model or a to_json"):
        gn.from_keras(42)
    with pytest.raises(gn.ModelFileError, match="no such file"):
        gn.from_keras("missing.keras")
    with pytest.raises(gn.ModelImportError, match="^from_keras: loss: unknown loss 'nope'"):
        gn.from_keras("missing.keras", loss="nope")  # before the file is looked for


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


# ------------------------------------------------ Add, BatchNormalization, dicts
def _randomise_all(model, seed=0):
    """Every variable random, batch-norm variances positive."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        value = rng.normal(scale=0.5, size=w.shape)
        w.assign((np.abs(value) + 0.5 if "variance" in w.path else value).astype("float32"))
    return model


@pytest.fixture(scope="module")
def residual():
    """Dict inputs and outputs in unsorted key order, Add of linear Denses (absorbed),
    Add of activated tensors and of an input (identity synapses), BatchNormalization
    after a Dense without bias, and outputs declared [o1, concatenation-fed o2, o3]."""
    keras.utils.set_random_seed(2)
    a = keras.Input((4,), name="alpha")
    b = keras.Input((3,), name="zeta")
    pre = layers.Add(name="sum")([layers.Dense(5, name="da")(a), layers.Dense(5, name="db")(b)])
    h = layers.Activation("silu", name="h")(pre)
    bn = layers.BatchNormalization(name="bn")(layers.Dense(4, use_bias=False, name="d")(h))
    act = layers.Activation("selu", name="act")(bn)
    residual = layers.Add(name="res")([layers.Dense(4, activation="tanh", name="t")(act), a])
    o1 = layers.Dense(2, activation="softmax", name="o1")(residual)
    o2 = layers.Dense(1, activation="mish", name="o2")(layers.Concatenate(name="cat")([residual, b]))
    o3 = layers.Dense(3, activation="softsign", name="o3")(act)
    model = keras.Model({"zeta": b, "alpha": a}, {"second": o2, "first": o1, "third": o3}, name="residual")
    return _randomise_all(model, seed=2)


def test_add_batchnorm_and_dicts(residual, data, tmp_path):
    x = {"alpha": data["a"], "zeta": data["b"]}
    expected = _keras_predict(residual, x)
    residual.save(tmp_path / "residual.keras")
    residual.save(tmp_path / "residual.h5")  # Keras 3's legacy HDF5 writer
    for source in (residual, tmp_path / "residual.keras", tmp_path / "residual.h5"):
        g = gn.from_keras(source)
        assert g.inputs == ["alpha", "zeta"]  # dict keys, in keras.tree's (sorted) order
        assert g.outputs == ["first", "second", "third"]
        got = g.predict(x)
        for key in expected:
            np.testing.assert_allclose(got[key], expected[key], atol=TOL, rtol=TOL)
    # The two linear Denses became the sum node's synapses; bn folded into d.
    assert "da" not in g.nodes and "db" not in g.nodes and g.nodes["sum"].activation.name == "silu"
    assert sorted(s.src for s in g.synapses if s.dst == "sum") == ["alpha", "zeta"]
    assert "bn" not in g.nodes and g.nodes["d"].activation.name == "selu" and g.nodes["d"].trainable
    # Add of an activated tensor and an input: frozen identity synapses.
    assert not g.synapse("alpha", "res").trainable and np.array_equal(g.synapse("alpha", "res").weight, np.eye(4))
    trains_saves_exports(g, x, tmp_path)


def test_output_order_is_kept(data):
    x = keras.Input((4,), name="x")
    h = layers.Dense(3, name="h")(x)
    o1 = layers.Dense(2, name="o1")(h)
    o2 = layers.Dense(2, name="o2")(layers.Concatenate()([h, x]))
    o3 = layers.Dense(2, name="o3")(h)
    model = _randomise(keras.Model(x, [o1, o2, o3]))
    g = gn.from_keras(model)
    assert g.outputs == ["o1", "o2", "o3"]
    for got, want in zip([g.predict(data["a"])[n] for n in g.outputs], _keras_predict(model, data["a"])):
        np.testing.assert_allclose(got, want, atol=TOL)


def test_batchnorm_elsewhere_is_refused():
    model = keras.Sequential([keras.Input((4,)), layers.Dense(3, activation="relu", name="d"),
                              layers.BatchNormalization(name="bn")])
    with pytest.raises(gn.ModelImportError, match=r"layer 'bn' \(BatchNormalization\) follows 'd', not the linear "
                                                  r"output of a Dense .* place it directly after a Dense"):
        gn.from_keras(model)
    model = keras.Sequential([keras.Input((4,), name="x"), layers.BatchNormalization(name="bn"), layers.Dense(2)])
    with pytest.raises(gn.ModelImportError, match=r"layer 'bn' \(BatchNormalization\) follows 'x'"):
        gn.from_keras(model)


def test_hard_sigmoid_slope_follows_the_keras_version(data):
    model = _randomise(keras.Sequential([keras.Input((6,)), layers.Dense(4, activation="hard_sigmoid")]), seed=4)
    keras3 = gn.from_keras(model)
    assert keras3.layers[1].activation.alpha == pytest.approx(1 / 6)  # relu6(z + 3) / 6
    np.testing.assert_allclose(keras3.predict(data["x"]), _keras_predict(model, data["x"]), atol=TOL)
    import json

    config = json.loads(model.to_json())
    config["keras_version"] = "2.15.0"  # what Keras 2's to_json() adds
    assert gn.from_keras(json.dumps(config)).layers[1].activation.alpha == 0.2


def _write_keras2_h5(path, config: dict, weights: dict, version: str = "2.15.0"):
    """A model file in Keras 2's HDF5 layout (keras/src/legacy/saving/legacy_h5_format.py,
    save_model_to_hdf5): root attributes keras_version, backend and model_config (the
    model's JSON); group model_weights with attribute layer_names, one group per layer
    whose weight_names attribute lists its arrays in order, each stored at that path
    ("dense/kernel:0") inside the layer's group."""
    import json

    import h5py

    with h5py.File(path, "w") as h5:
        h5.attrs["keras_version"] = version.encode()
        h5.attrs["backend"] = b"tensorflow"
        h5.attrs["model_config"] = json.dumps(config).encode()
        group = h5.create_group("model_weights")
        group.attrs["layer_names"] = [name.encode() for name in weights]
        for layer, arrays in weights.items():
            layer_group = group.create_group(layer)
            layer_group.attrs["weight_names"] = [name.encode() for name in arrays]
            for name, value in arrays.items():
                layer_group.create_dataset(name, data=value)


def _keras2_sequential_config():
    """A tf.keras 2.15 Sequential config, as its model.to_json() writes it."""
    def dense(name, units, activation):
        return {"class_name": "Dense", "config": {
            "name": name, "trainable": True, "dtype": "float32", "units": units, "activation": activation,
            "use_bias": True, "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform",
                                                     "config": {"seed": None}, "registered_name": None},
            "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {},
                                 "registered_name": None},
            "kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
            "kernel_constraint": None, "bias_constraint": None}}

    return {"class_name": "Sequential", "config": {"name": "sequential", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 6], "dtype": "float32",
                                                "sparse": False, "ragged": False, "name": "dense_input"}},
        dense("dense", 5, "hard_sigmoid"), dense("dense_1", 4, "swish"), dense("dense_2", 3, "softmax")]},
        "keras_version": "2.15.0", "backend": "tensorflow"}


def test_keras2_h5_file(data, tmp_path):
    from scipy.special import expit, softmax

    rng = np.random.default_rng(7)
    shapes = {"dense": (6, 5), "dense_1": (5, 4), "dense_2": (4, 3)}
    arrays = {name: (rng.normal(size=shape).astype("float32"), rng.normal(size=shape[1]).astype("float32"))
              for name, shape in shapes.items()}
    weights = {name: {f"{name}/kernel:0": k, f"{name}/bias:0": b} for name, (k, b) in arrays.items()}
    _write_keras2_h5(tmp_path / "old.h5", _keras2_sequential_config(), weights)
    g = gn.from_keras(tmp_path / "old.h5")
    assert isinstance(g, gn.Sequential) and g.inputs == ["dense_input"] and g.outputs == ["dense_2"]
    # Keras 2's definitions: hard_sigmoid = clip(0.2 z + 0.5, 0, 1), swish = z sigmoid(z).
    x = data["x"].astype(np.float64)
    h = np.clip(0.2 * (x @ arrays["dense"][0] + arrays["dense"][1]) + 0.5, 0, 1)
    z = h @ arrays["dense_1"][0] + arrays["dense_1"][1]
    h = z * expit(z)
    expected = softmax(h @ arrays["dense_2"][0] + arrays["dense_2"][1], axis=1)
    np.testing.assert_allclose(g.predict(data["x"]), expected, atol=TOL)
    trains_saves_exports(g, data["x"], tmp_path)


def test_h5_files_are_read_within_their_size(tmp_path):
    import h5py

    config = _keras2_sequential_config()
    weights = {"dense": {"dense/kernel:0": np.zeros((6, 5), "float32"), "dense/bias:0": np.zeros(5, "float32")}}
    _write_keras2_h5(tmp_path / "huge.h5", config, weights)
    with h5py.File(tmp_path / "huge.h5", "r+") as h5:  # a header claiming 40 GB, no data behind it
        del h5["model_weights/dense/dense/kernel:0"]
        h5["model_weights/dense/dense"].create_dataset("kernel:0", shape=(100_000, 100_000), dtype="float32")
    with pytest.raises(gn.ModelFileError, match=r"kernel:0: claims 40,000,000,000 bytes in a file of"):
        gn.from_keras(tmp_path / "huge.h5")
    with h5py.File(tmp_path / "weights.h5", "w") as h5:
        h5.attrs["layer_names"] = [b"dense"]
    with pytest.raises(gn.ModelFileError, match=r"holds weights only \(save_weights\), not a whole model"):
        gn.from_keras(tmp_path / "weights.h5")


@pytest.mark.filterwarnings("ignore:Converting a tensor to a Python")  # torch's tracer, inside Keras
def test_keras_onnx_export_imports(residual, data, tmp_path):
    """Keras's own model.export(format="onnx") (Casts around every operator, the
    batch norm as Sub/Mul/Add constants, outputs named by the exporter)."""
    x = {"alpha": data["a"], "zeta": data["b"]}
    expected = _keras_predict(residual, x)
    residual.export(str(tmp_path / "residual.onnx"), format="onnx", verbose=False)
    g = gn.from_onnx(tmp_path / "residual.onnx")
    import onnx

    names = [o.name for o in onnx.load(tmp_path / "residual.onnx").graph.output]
    assert len(g.outputs) == 3 and g.inputs == ["alpha", "zeta"]
    got = g.predict(x)
    for key, name in zip(sorted(expected), names):  # Keras exports its outputs in keras.tree order
        np.testing.assert_allclose(got[name], expected[key], atol=TOL, rtol=TOL)


def test_weight_penalties_come_across_and_give_keras_loss(data, caplog):
    """kernel_/bias_regularizer become graphnet's L1/L2/L1L2 (one per synapse of a
    split kernel): the imported graph's loss with the penalty is Keras's own
    ``evaluate`` loss; what graphnet lacks is named in a warning."""
    keras.utils.set_random_seed(0)
    a, b = keras.Input((6,), name="a"), keras.Input((4,), name="b")
    joined = layers.Concatenate()([a, b])
    h = layers.Dense(5, activation="tanh", kernel_regularizer=keras.regularizers.L2(0.03),
                     bias_regularizer=keras.regularizers.L1(0.02), name="h")(joined)
    out = layers.Dense(2, kernel_regularizer=keras.regularizers.L1L2(l1=0.01, l2=0.005),
                       activity_regularizer=keras.regularizers.L2(0.1), name="out")(h)
    model = _randomise(keras.Model([a, b], out))
    model.compile(loss="mse")
    rng = np.random.default_rng(1)
    x = {"a": data["x"], "b": rng.normal(size=(len(data["x"]), 4)).astype("float32")}
    y = rng.normal(size=(len(data["x"]), 2)).astype("float32")
    with caplog.at_level("WARNING", logger="graphnet"):
        g = gn.from_keras(model, loss="mse")
    assert "activity_regularizer ignored" in caplog.text and "kernel_regularizer" not in caplog.text
    # Keras keeps the coefficients as float32: graphnet takes those very values.
    def config(regularizer):
        return {k: pytest.approx(v, rel=1e-7) if isinstance(v, float) else v
                for k, v in regularizer.get_config().items()}

    assert g.synapse("a", "h").regularizer == g.synapse("b", "h").regularizer
    assert config(g.synapse("a", "h").regularizer) == {"name": "l2", "l2": 0.03}
    assert config(g["h"].bias_regularizer) == {"name": "l1", "l1": 0.02}
    assert config(g.synapse("h", "out").regularizer) == {"name": "l1_l2", "l1": 0.01, "l2": 0.005}
    # Keras's loss adds every layer's penalties; drop the activity term (graphnet has none).
    model.layers[-1].activity_regularizer = None
    expected = model.evaluate([x["a"], x["b"]], y, verbose=0, batch_size=len(y))
    assert g.evaluate(x, y)["loss"] == pytest.approx(expected, rel=1e-5)
    assert expected > 1.01 * np.mean((g.predict(x) - y) ** 2)  # the penalty is there to match


def test_subtract_and_average_import_exactly(data, tmp_path):
    """Subtract is a sum with -1 on its second term and Average one with 1/k on
    each: linear Denses are absorbed (their weights scaled), anything else
    joins through frozen c*I synapses. Multiply stays refused."""
    keras.utils.set_random_seed(0)
    a, b = keras.Input((6,), name="a"), keras.Input((6,), name="b")
    da, db = layers.Dense(5, name="da")(a), layers.Dense(5, name="db")(b)
    diff = layers.Subtract(name="diff")([da, db])                       # both absorbed
    h = layers.Dense(6, activation="tanh", name="h")(a)
    mean = layers.Average(name="mean")([h, a, b])                       # nothing absorbed
    out1 = layers.Dense(2, activation="sigmoid", name="out1")(layers.Activation("relu")(diff))
    out2 = layers.Dense(1, name="out2")(layers.Subtract(name="back")([mean, h]))  # h read twice
    model = _randomise(keras.Model({"a": a, "b": b}, {"out1": out1, "out2": out2}))
    x = {"a": data["x"], "b": np.random.default_rng(2).normal(size=data["x"].shape).astype("float32")}
    expected = _keras_predict(model, x)
    g = gn.from_keras(model)
    got = g.predict(x)
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], atol=TOL, rtol=TOL)
    assert "da" not in g.nodes and "db" not in g.nodes  # absorbed into diff, db's weights negated
    # mean (linear, read once) is absorbed by back: a/3 + b/3 + h/3 - h.
    assert "mean" not in g.nodes and not g.synapse("a", "back").trainable
    np.testing.assert_allclose(g.synapse("a", "back").weight, np.eye(6) / 3, rtol=1e-7)
    np.testing.assert_allclose(g.synapse("h", "back").weight, np.eye(6) * (1 / 3 - 1), rtol=1e-7)
    trains_saves_exports(g, x, tmp_path)
    product = keras.Model([a, b], layers.Multiply(name="times")([da, db]))
    with pytest.raises(gn.ModelImportError, match="layer 'times' of type 'Multiply' cannot be imported"):
        gn.from_keras(product)


def test_dict_outputs_are_named_once_every_output_has_its_node(data, tmp_path):
    """An output renamed to its dict key must not strand a concatenation output
    still reading it by its old name; either key order, two outputs swapping
    names with layers, and one tensor under two keys (an exact copy) all
    predict as Keras does."""
    a = keras.Input((4,), name="a")
    h = layers.Dense(3, activation="tanh", name="h")(a)
    cat = layers.Concatenate(name="cat")([h, a])
    for i, outputs in enumerate([{"a1": h, "b2": cat}, {"b2": h, "a1": cat}, {"h": cat, "z": h}, {"p": h, "q": h}]):
        model = _randomise(keras.Model(a, outputs), seed=i)
        model.save(tmp_path / f"dicts{i}.keras")
        expected = _keras_predict(model, data["a"])
        for source in (model, tmp_path / f"dicts{i}.keras"):
            g = gn.from_keras(source)
            assert g.outputs == sorted(outputs)
            got = g.predict(data["a"])
            for key in outputs:
                np.testing.assert_allclose(got[key], expected[key], atol=TOL, rtol=TOL)


def test_a_dict_key_named_like_a_hidden_layer_keeps_its_name(data):
    """The output takes its key, the hidden layer of that name a fresh one; a
    key named like an input is refused, naming both."""
    a = keras.Input((4,), name="a")
    h = layers.Dense(3, activation="tanh", name="h")(a)
    out = layers.Dense(2, name="out")(h)
    model = _randomise(keras.Model(a, {"h": out}), seed=7)
    g = gn.from_keras(model)
    assert g.outputs == ["h"] and sorted(g.nodes) == ["a", "h", "h_1"]
    assert g.nodes["h_1"].activation.name == "tanh"
    np.testing.assert_allclose(g.predict(data["a"]), _keras_predict(model, data["a"])["h"], atol=TOL, rtol=TOL)
    with pytest.raises(gn.ModelImportError, match=r"the output 'a', named by its dict key, has the name of "
                                                  r"layer 'a' \(InputLayer\).*rename the dict key or the input"):
        gn.from_keras(keras.Model(a, {"a": out}))


def test_max_params_bounds_every_form(sequential, tmp_path):
    """The same bound as Graph.from_spec's (graphnet's parameters: Keras's, plus
    the frozen zero bias of dense_2, which has none), counted before weights
    are allocated."""
    params = sum(w.size for w in sequential.get_weights()) + 5
    sequential.save(tmp_path / "mlp.keras")
    for source in (sequential, sequential.to_json(), tmp_path / "mlp.keras"):
        assert gn.from_keras(source, max_params=params).num_params == params
        assert gn.from_keras(source, max_params=None).num_params == params
        with pytest.raises(gn.ModelImportError, match=rf"layer 'dense_3' \(Dense\) brings the model to {params} "
                                                      rf"parameters, more than max_params={params - 1}"):
            gn.from_keras(source, max_params=params - 1)
