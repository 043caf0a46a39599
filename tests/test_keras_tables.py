"""Keras's preprocessing layers imported into graphnet's tabular inputs:
Normalization and Embedding checked against Keras 3 (torch backend);
StringLookup and IntegerLookup, which need TensorFlow to run, against the
same Keras model fed the codes Keras's lookup documents (vocabulary[i] ->
i + 1, anything else -> 0), from a model file whose config has the lookup."""

from __future__ import annotations

import json
import os
import zipfile

os.environ["KERAS_BACKEND"] = "torch"  # before keras is imported

import numpy as np
import pytest

keras = pytest.importorskip("keras", reason="the interop extra (keras) is not installed")
pytest.importorskip("h5py", reason="the interop extra (h5py) is not installed")

import graphnet as gn

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
layers = keras.layers


def _model(rng, rows=4):
    """num (3 columns) -> Normalization; code (int) -> Embedding(rows, 2) -> Flatten; both -> Dense."""
    keras.utils.set_random_seed(0)
    num = keras.Input((3,), name="num")
    norm = layers.Normalization(name="norm")
    data = rng.normal(5, 2, (50, 3))
    data[:, 2] = 7.0  # a constant column: Keras divides by max(sqrt(0), 1e-7)
    norm.adapt(data)
    code = keras.Input((1,), dtype="int32", name="code")
    table = layers.Embedding(rows, 2, name="emb")(code)
    h = layers.Concatenate()([norm(num), layers.Flatten()(table)])
    out = layers.Dense(2, activation="softmax", name="out")(layers.Dense(5, activation="relu", name="h")(h))
    model = keras.Model([num, code], out)
    model.set_weights([w if w.ndim == 0 or i < 3 else rng.normal(size=w.shape).astype("float32")
                       for i, w in enumerate(model.get_weights())])
    return model


def _predict(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


def test_normalization_and_embedding_predict_as_keras(tmp_path, rng):
    model = _model(rng)
    model.save(tmp_path / "m.keras")
    g = gn.from_keras(tmp_path / "m.keras")
    num = rng.normal(5, 2, (6, 3))
    num[:, 2] = 7.0 + rng.normal(scale=1e-3, size=6)
    code = np.array([[0], [3], [1], [1], [2], [0]])
    expected = _predict(model, {"num": num, "code": code})
    got = g.predict({"num": num, "code": code})
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert g.nodes["code"].categorical and g.nodes["num"].normalize
    assert g.nodes["num"].std[2] == pytest.approx(1e-7)  # Keras's rule kept, not adapt's
    assert g.synapse("code", "emb").shape == (5, 2)
    g.fit({"num": num, "code": code}, np.eye(2)[[0, 1, 0, 1, 0, 1]], epochs=1, verbose=0)  # it trains


def _with_lookup(path, out, cls, vocabulary, dtype):
    """``path``'s model with a lookup between the input ``code`` and the Embedding."""
    with zipfile.ZipFile(path) as zin:
        members = {n: zin.read(n) for n in zin.namelist()}
    config = json.loads(members["config.json"])
    layers_ = config["config"]["layers"]
    for layer in layers_:
        if layer["class_name"] == "InputLayer" and layer["name"] == "code":
            layer["config"]["dtype"] = dtype
        if layer["class_name"] == "Embedding":
            layer["inbound_nodes"][0]["args"][0]["config"]["keras_history"] = ["look", 0, 0]
    lookup = {"module": "keras.layers", "class_name": cls, "name": "look", "registered_name": None,
              "config": {"name": "look", "trainable": True, "vocabulary": vocabulary, "num_oov_indices": 1,
                         "mask_token": None, "oov_token": "[UNK]" if cls == "StringLookup" else -1,
                         "output_mode": "int", "invert": False, "sparse": False},
              "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__", "config": {
                  "shape": [None, 1], "dtype": dtype, "keras_history": ["code", 0, 0]}}], "kwargs": {}}]}
    layers_.insert(1, lookup)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(out, "w") as zout:
        for name, data in members.items():
            zout.writestr(name, data)
    return out


@pytest.mark.parametrize("cls, vocabulary, values, dtype", [
    ("StringLookup", ["paris", "lyon", "nice"], ["nice", "rome", "paris", "lyon", "", "nice"], "string"),
    ("IntegerLookup", [30, 10, 20], [20, 99, 30, 10, -5, 20], "int64"),
])
def test_lookups_predict_as_keras_on_their_codes(tmp_path, rng, cls, vocabulary, values, dtype):
    model = _model(rng)
    model.save(tmp_path / "m.keras")
    path = _with_lookup(tmp_path / "m.keras", tmp_path / "lookup.keras", cls, vocabulary, dtype)
    g = gn.from_keras(path)
    assert g.nodes["code"].categories == tuple(vocabulary)
    codes = np.array([[vocabulary.index(v) + 1 if v in vocabulary else 0] for v in values])  # Keras's rule
    num = rng.normal(5, 2, (6, 3))
    expected = _predict(model, {"num": num, "code": codes})
    np.testing.assert_allclose(g.predict({"num": num, "code": np.array(values)}), expected, rtol=1e-5, atol=1e-5)


def test_unsupported_preprocessing_is_refused_naming_the_layer(tmp_path, rng):
    model = _model(rng)
    model.save(tmp_path / "m.keras")
    path = _with_lookup(tmp_path / "m.keras", tmp_path / "bad.keras", "StringLookup", ["a"], "string")
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    config = json.loads(members["config.json"])
    config["config"]["layers"][1]["config"]["num_oov_indices"] = 2
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(tmp_path / "bad2.keras", "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    with pytest.raises(gn.ModelImportError, match=r"layer 'look' \(StringLookup\).*2 OOV indices"):
        gn.from_keras(tmp_path / "bad2.keras")
