"""A corpus of hostile Keras model files and spec files, built at test time.

Every case writes what it needs under a folder (with h5py, ``zipfile`` and
``json`` only: no committed binaries, no Keras) and returns the call to make,
the graphnet error that call must raise and a pattern its message must
contain. The files differ from :func:`good_keras` / :func:`good_h5`, which
import exactly, only in the hostile part.

Cases that point outside the file point at :func:`secret`, a readable file
holding plausible weights, so that following the pointer would import
without complaint.

Run as a script to list the cases and what graphnet does with each:
``PYTHONPATH=. python tests/hostile_keras.py``.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

import graphnet as gn

#: name -> case(folder) -> (call, error class, message pattern)
CASES: dict[str, Callable[[Path], tuple[Callable[[], object], type, str]]] = {}

#: A Keras 3 Sequential config: x (3) -> d (4, relu) -> y (2).
CONFIG = {"class_name": "Sequential", "config": {"name": "tiny", "layers": [
    {"class_name": "InputLayer", "config": {"batch_shape": [None, 3], "name": "x"}},
    {"class_name": "Dense", "config": {"name": "d", "units": 4, "activation": "relu"}},
    {"class_name": "Dense", "config": {"name": "y", "units": 2, "activation": "linear"}}]}}
#: Layer name -> (Keras 3 weights group, arrays in Keras's order).
WEIGHTS = {
    "d": ("dense", [np.linspace(-1, 1, 12, dtype="<f4").reshape(3, 4), np.full(4, 0.25, "<f4")]),
    "y": ("dense_1", [np.linspace(1, -1, 8, dtype="<f4").reshape(4, 2), np.array([0.5, -0.5], "<f4")]),
}


def case(error: type, pattern: str):
    """Register ``fn(folder) -> call`` as a case refused with ``error`` matching ``pattern``."""
    def register(fn):
        CASES[fn.__name__] = lambda folder: (fn(folder), error, pattern)
        return fn
    return register


def forward(x: np.ndarray) -> np.ndarray:
    """What the model in :data:`CONFIG` with :data:`WEIGHTS` computes, in numpy."""
    (k1, b1), (k2, b2) = WEIGHTS["d"][1], WEIGHTS["y"][1]
    return np.maximum(x @ k1 + b1, 0) @ k2 + b2


def secret(folder: Path) -> tuple[Path, Path]:
    """A raw file of 12 float32s and an HDF5 file with dataset ``k`` and group ``d``
    (Keras 2's layout for layer d), both plausible weights for layer d."""
    raw, h5 = folder / "secret.bin", folder / "secret.h5"
    kernel, bias = WEIGHTS["d"][1]
    raw.write_bytes(kernel.tobytes())
    with h5py.File(h5, "w") as f:
        f["k"] = kernel
        group = f.create_group("d")
        group.attrs["weight_names"] = [b"d/kernel:0", b"d/bias:0"]
        group["d/kernel:0"], group["d/bias:0"] = kernel, bias
    return raw, h5


# ------------------------------------------------------------------ writers
def weights_h5(edit: Callable | None = None, layers: dict | None = None) -> bytes:
    """A Keras 3 ``model.weights.h5``: ``layers/<group>/vars/0, 1`` with the
    layer's name as the ``vars`` group's ``name`` attribute; ``edit(h5)`` tampers."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        for name, (group, arrays) in (WEIGHTS if layers is None else layers).items():
            variables = h5.create_group(f"layers/{group}/vars")
            variables.attrs["name"] = name
            for i, array in enumerate(arrays):
                variables[str(i)] = array
        h5.require_group("layers")
        if edit is not None:
            edit(h5)
    return buffer.getvalue()


def write_keras(path: Path, config=None, weights: bytes | None = None, metadata=None,
                members: dict | None = None) -> Path:
    """A ``.keras`` zip (stored, as Keras writes it); ``members`` adds or replaces raw members."""
    content = {
        "metadata.json": json.dumps(metadata or {"keras_version": "3.8.0"}).encode(),
        "config.json": json.dumps(CONFIG if config is None else config).encode(),
        "model.weights.h5": weights_h5() if weights is None else weights,
    }
    content.update(members or {})
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in content.items():
            archive.writestr(name, data if isinstance(data, bytes) else data.encode())
    return path


def write_h5(path: Path, edit: Callable | None = None, config=None) -> Path:
    """A Keras 2 ``.h5`` (root attribute ``model_config``, group ``model_weights``
    with ``layer_names``, each layer's ``weight_names`` and arrays); ``edit(h5)`` tampers."""
    with h5py.File(path, "w") as h5:
        h5.attrs["keras_version"] = b"2.15.0"
        h5.attrs["backend"] = b"tensorflow"
        h5.attrs["model_config"] = (config if isinstance(config, str) else json.dumps(config or CONFIG)).encode()
        group = h5.create_group("model_weights")
        group.attrs["layer_names"] = [name.encode() for name in WEIGHTS]
        for name, (_, arrays) in WEIGHTS.items():
            layer = group.create_group(name)
            names = [f"{name}/kernel:0", f"{name}/bias:0"]
            layer.attrs["weight_names"] = [n.encode() for n in names]
            for n, array in zip(names, arrays):
                layer[n] = array
        if edit is not None:
            edit(h5)
    return path


def good_keras(folder: Path) -> Path:
    return write_keras(folder / "good.keras")


def good_h5(folder: Path) -> Path:
    return write_h5(folder / "good.h5")


def _import(path) -> Callable[[], object]:
    return lambda: gn.from_keras(path)


def _replace(h5, path: str, **create) -> None:
    """Delete dataset ``path`` and create one of the same name with ``create`` arguments."""
    parent, name = path.rsplit("/", 1)
    del h5[path]
    h5[parent].create_dataset(name, **create)


def _config(**dense) -> dict:
    """:data:`CONFIG` with layer d's config updated."""
    config = json.loads(json.dumps(CONFIG))
    config["config"]["layers"][1]["config"].update(dense)
    return config


# --------------------------------------------------- .h5 reaching outside
@case(gn.ModelFileError, r"kernel:0 keeps its bytes in external file .*secret\.bin")
def h5_external_storage(folder):
    raw, _ = secret(folder)
    return _import(write_h5(folder / "m.h5", lambda h5: _replace(
        h5, "model_weights/d/d/kernel:0", shape=(3, 4), dtype="<f4", external=[(str(raw), 0, 48)])))


@case(gn.ModelFileError, r"/model_weights/d is an external link to .*secret\.h5")
def h5_external_link(folder):
    _, target = secret(folder)

    def link(h5):
        del h5["model_weights/d"]
        h5["model_weights/d"] = h5py.ExternalLink(str(target), "/d")
    return _import(write_h5(folder / "m.h5", link))


@case(gn.ModelFileError, r"/model_weights/d/d/kernel:0 is a soft link to /stash")
def h5_soft_link(folder):
    def link(h5):
        h5["stash"] = WEIGHTS["d"][1][0]
        del h5["model_weights/d/d/kernel:0"]
        h5["model_weights/d/d/kernel:0"] = h5py.SoftLink("/stash")
    return _import(write_h5(folder / "m.h5", link))


def _virtual(target: Path):
    layout = h5py.VirtualLayout(shape=(3, 4), dtype="<f4")
    layout[:] = h5py.VirtualSource(str(target), "k", shape=(3, 4))
    return layout


@case(gn.ModelFileError, r"kernel:0 is a virtual dataset")
def h5_virtual_dataset(folder):
    _, target = secret(folder)

    def virtual(h5):
        del h5["model_weights/d/d/kernel:0"]
        h5["model_weights/d/d"].create_virtual_dataset("kernel:0", _virtual(target))
    return _import(write_h5(folder / "m.h5", virtual))


# ------------------------------------------------ .h5 missing or odd weights
@case(gn.ModelFileError, r"no model_weights group")
def h5_without_model_weights(folder):
    return _import(write_h5(folder / "m.h5", lambda h5: h5.__delitem__("model_weights")))


@case(gn.ModelImportError, r"layer 'y' \(Dense\) has no weights in .*m\.h5")
def h5_missing_layer(folder):
    return _import(write_h5(folder / "m.h5", lambda h5: h5.__delitem__("model_weights/y")))


@case(gn.ModelFileError, r"kernel:0: 0 of its 48 bytes are written")
def h5_unwritten_array(folder):
    return _import(write_h5(folder / "m.h5", lambda h5: _replace(
        h5, "model_weights/d/d/kernel:0", shape=(3, 4), dtype="<f4")))


@case(gn.ModelFileError, r"kernel:0: claims 40,000,000,000 bytes in a file of")
def h5_claims_more_than_the_file(folder):
    return _import(write_h5(folder / "m.h5", lambda h5: _replace(
        h5, "model_weights/d/d/kernel:0", shape=(100_000, 100_000), dtype="<f4")))


@case(gn.ModelFileError, r"kernel:0 is stored in chunks")
def h5_compressed_chunks(folder):
    return _import(write_h5(folder / "m.h5", lambda h5: _replace(
        h5, "model_weights/d/d/kernel:0", data=WEIGHTS["d"][1][0], chunks=(3, 4), compression="gzip")))


@case(gn.ModelFileError, r"kernel:0: expected a float array, found int32")
def h5_integer_weights(folder):
    return _import(write_h5(folder / "m.h5", lambda h5: _replace(
        h5, "model_weights/d/d/kernel:0", data=np.ones((3, 4), "int32"))))


@case(gn.ModelFileError, r"'/etc/passwd' in /model_weights/d is not a path to a group member")
def h5_absolute_weight_name(folder):
    return _import(write_h5(folder / "m.h5", lambda h5: h5["model_weights/d"].attrs.__setitem__(
        "weight_names", [b"/etc/passwd", b"d/bias:0"])))


@case(gn.ModelFileError, r"model_config: not valid JSON \(arrays and objects nest 100,000 deep")
def h5_deep_model_config(folder):
    return _import(write_h5(folder / "m.h5", config="[" * 100_000 + "]" * 100_000))


@case(gn.ModelFileError, r"model_config: not valid JSON \(key 'units' appears twice")
def h5_repeated_key(folder):
    text = json.dumps(CONFIG).replace('"units": 4', '"units": 4, "units": 3000000')
    return _import(write_h5(folder / "m.h5", config=text))


@case(gn.ModelFileError, r"good\.h5: not a readable \.keras or \.h5 model file")
def h5_truncated(folder):
    path = good_h5(folder)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return _import(path)


# ------------------------------------------------------------ .keras files
def _keras_with(folder: Path, edit: Callable) -> Path:
    return write_keras(folder / "m.keras", weights=weights_h5(edit))


@case(gn.ModelFileError, r"model\.weights\.h5: /layers/dense/vars/0 keeps its bytes in external file .*secret")
def keras_external_storage(folder):
    raw, _ = secret(folder)
    return _import(_keras_with(folder, lambda h5: _replace(
        h5, "layers/dense/vars/0", shape=(3, 4), dtype="<f4", external=[(str(raw), 0, 48)])))


@case(gn.ModelFileError, r"/layers/dense/vars/0 is a virtual dataset")
def keras_virtual_dataset(folder):
    _, target = secret(folder)

    def virtual(h5):
        del h5["layers/dense/vars/0"]
        h5["layers/dense/vars"].create_virtual_dataset("0", _virtual(target))
    return _import(_keras_with(folder, virtual))


@case(gn.ModelFileError, r"/layers/dense is an external link")
def keras_external_link(folder):
    _, target = secret(folder)

    def link(h5):
        del h5["layers/dense"]
        h5["layers/dense"] = h5py.ExternalLink(str(target), "/d")
    return _import(_keras_with(folder, link))


@case(gn.ModelImportError, r"layer 'd' \(Dense\) has no weights in .*m\.keras")
def keras_empty_layers_group(folder):
    return _import(write_keras(folder / "m.keras", weights=weights_h5(layers={})))


@case(gn.ModelImportError, r"layer 'y' \(Dense\) has no weights")
def keras_missing_layer(folder):
    return _import(_keras_with(folder, lambda h5: h5.__delitem__("layers/dense_1")))


@case(gn.ModelFileError, r"model\.weights\.h5 would inflate .* \(refused as a possible zip bomb\)")
def keras_zip_bomb(folder):
    """150 MB of zeros deflated to about 146 KB, in place of the weights."""
    path = folder / "bomb.keras"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", json.dumps(CONFIG))
        with archive.open("model.weights.h5", "w") as member:
            zeros = bytes(1 << 20)
            for _ in range(150):
                member.write(zeros)
    return _import(path)


@case(gn.ModelFileError, r"config\.json: not valid JSON \(arrays and objects nest 100,000 deep")
def keras_deep_config(folder):
    return _import(write_keras(folder / "m.keras", members={"config.json": "[" * 100_000 + "]" * 100_000}))


@case(gn.ModelFileError, r"metadata\.json: not valid JSON \(arrays and objects nest 50,001 deep")
def keras_deep_metadata(folder):
    return _import(write_keras(folder / "m.keras", members={"metadata.json": '{"a": ' + "[" * 50_000}))


@case(gn.ModelFileError, r"unexpected member '\.\./\.\./etc/passwd'")
def keras_unexpected_member(folder):
    return _import(write_keras(folder / "m.keras", members={"../../etc/passwd": b"root"}))


@case(gn.ModelFileError, r"lists 20,000 members; a Keras model file \(\.keras or \.h5\) has at most 3")
def keras_many_members(folder):
    path = folder / "m.keras"
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(20_000):
            archive.writestr(f"{i}", b"")
    return _import(path)


@case(gn.ModelFileError, r"not a Keras model file \(\.keras or \.h5\) \(not a zip archive: a text file")
def keras_text_file(folder):
    path = folder / "m.keras"
    path.write_text("not a model at all\n")
    return _import(path)


@case(gn.ModelFileError, r"m\.keras: not a readable \.keras or \.h5 model file")
def keras_weights_not_hdf5(folder):
    return _import(write_keras(folder / "m.keras", weights=b"\0" * 4096))


@case(gn.ModelFileError, r"good\.keras: not a Keras model file .*\(a zip archive without its end record: truncated or damaged\)")
def keras_truncated(folder):
    path = good_keras(folder)
    path.write_bytes(path.read_bytes()[:-200])
    return _import(path)


@case(gn.ModelFileError, r"5,368,709,120 bytes, more than the limit")
def keras_oversized(folder):
    path = folder / "huge.keras"
    with open(path, "wb") as handle:
        handle.truncate(5 << 30)  # sparse: no disk used, nothing to read
    return _import(path)


# ---------------------------------------------------- not files, bad paths
@case(gn.ModelFileError, r"/dev/zero: is a character device, not a regular file")
def dev_zero(folder):
    return _import("/dev/zero")


@case(gn.ModelFileError, r"m\.keras: is a pipe, not a regular file")
def fifo(folder):
    os.mkfifo(folder / "m.keras")
    return _import(folder / "m.keras")


@case(gn.ModelFileError, r"m\.keras: is a folder, not a regular file")
def folder_path(folder):
    (folder / "m.keras").mkdir()
    return _import(folder / "m.keras")


@case(gn.ModelFileError, r"from_keras: obj: 'm\\x00x' contains a NUL character")
def nul_in_path(folder):
    return _import("m\0x")


# ------------------------------------------------------ to_json() strings
def _json(config, **kwargs) -> Callable[[], object]:
    text = config if isinstance(config, str) else json.dumps(config)
    return lambda: gn.from_keras(text, **kwargs)


@case(gn.ModelImportError, r"keras JSON: not valid JSON \(arrays and objects nest 100,001 deep")
def json_deep(folder):
    return _json('{"a": ' + "[" * 100_000)


@case(gn.ModelImportError, r"layer 'd' \(Dense\) brings the model to 100,000,000,000 parameters, more than "
                           r"max_params=100,000,000")
def json_dense_1e10(folder):
    return _json(_config(units=25_000_000_000))


@case(gn.ModelImportError, r"layer 'd' \(Dense\) brings the model to 80,000,000 .* max_params=1,000,000")
def json_dense_2e7_under_a_lower_bound(folder):
    return _json(_config(units=20_000_000), max_params=1_000_000)


@case(gn.ModelImportError, r"layer 'relu' \(Activation\) brings the model to 1,000,001,000,000 parameters")
def json_activation_on_a_wide_input(folder):
    """An activation on an input needs an identity node: (n, n) weights."""
    config = json.loads(json.dumps(CONFIG))
    config["config"]["layers"][0]["config"]["batch_shape"] = [None, 1_000_000]
    config["config"]["layers"].insert(1, {"class_name": "Activation",
                                          "config": {"name": "relu", "activation": "relu"}})
    return _json(config)


def _functional(inbound_a, tensor_config) -> dict:
    """A functional model ``a -> h`` whose fields are as given."""
    tensor = {"class_name": "__keras_tensor__", "config": tensor_config}
    return {"class_name": "Functional", "config": {"name": "f", "layers": [
        {"class_name": "InputLayer", "name": "a", "config": {"batch_shape": [None, 3], "name": "a"},
         "inbound_nodes": inbound_a},
        {"class_name": "Dense", "name": "h", "config": {"name": "h", "units": 2, "activation": "linear"},
         "inbound_nodes": [{"args": [tensor], "kwargs": {}}]}],
        "input_layers": [["a", 0, 0]], "output_layers": [["h", 0, 0]]}}


@case(gn.ModelImportError, r"layer 'a': inbound_nodes must be a list of calls, found int -1$")
def json_inbound_nodes_not_a_list(folder):
    return _json(_functional(-1, {"keras_history": ["a", 0, 0]}))


@case(gn.ModelImportError, r"layer 'h': unreadable input .*'config': True.* \(expected a config whose keras_history "
                           r"is \[layer, 0, 0\]\)$")
def json_tensor_config_not_an_object(folder):
    return _json(_functional([], True))


@case(gn.ModelImportError, r"not valid JSON \(line 1: NaN is not a number JSON allows")
def json_nan(folder):
    return _json(json.dumps(CONFIG).replace('"units": 4', '"units": NaN'))


@case(gn.ModelImportError, r"max_params must be None or an integer >= 0, got 'many'")
def json_max_params_not_a_number(folder):
    return _json(CONFIG, max_params="many")


@case(gn.ModelImportError, r"dtype must be None, 'float32' or 'float64', got 'float16'")
def json_dtype_float16(folder):
    return _json(CONFIG, dtype="float16")


@case(gn.ModelImportError, r"seed must be None or an integer >= 0, got -1")
def json_negative_seed(folder):
    return _json(CONFIG, seed=-1)


# ------------------------------------------------------------------ specs
def _spec(path) -> Callable[[], object]:
    return lambda: gn.Graph.from_spec(path)


@case(gn.ModelFileError, r"path must be a str or os\.PathLike naming a \.json, \.yaml or \.yml spec file, "
                         r"got NoneType None")
def spec_none(folder):
    return _spec(None)


@case(gn.ModelFileError, r"path must be a str or os\.PathLike .* got int 5")
def spec_int(folder):
    return _spec(5)


@case(gn.ModelFileError, r"from_spec: path: 'm\\x00x\.json' contains a NUL character")
def spec_nul_in_path(folder):
    return _spec("m\0x.json")


@case(gn.ModelFileError, r"s\.json: not valid JSON \(arrays and objects nest 100,000 deep")
def spec_deep(folder):
    (folder / "s.json").write_text("[" * 100_000 + "]" * 100_000)
    return _spec(folder / "s.json")


@case(gn.ModelFileError, r"s\.json: is a pipe, not a regular file")
def spec_fifo(folder):
    os.mkfifo(folder / "s.json")
    return _spec(folder / "s.json")


@case(gn.ModelFileError, r"s\.json: is a folder")
def spec_folder(folder):
    (folder / "s.json").mkdir()
    return _spec(folder / "s.json")


@case(gn.ModelFileError, r"s\.json: 40,000,000 bytes, more than the limit of 33,554,432 bytes for a spec")
def spec_oversized(folder):
    with open(folder / "s.json", "wb") as handle:
        handle.truncate(40_000_000)
    return _spec(folder / "s.json")


@case(gn.ModelFileError, r"spec describes 100,000,010,000,000 parameters, more than the limit of 100,000,000")
def spec_huge(folder):
    spec = {"nodes": [{"kind": "input", "name": "x", "size": 10_000_000},
                      {"kind": "output", "name": "y", "size": 10_000_000}], "synapses": [["x", "y"]]}
    (folder / "s.json").write_text(json.dumps(spec))
    return _spec(folder / "s.json")


if __name__ == "__main__":
    import tempfile
    import time
    import tracemalloc

    for name, make in CASES.items():
        with tempfile.TemporaryDirectory() as tmp:
            call, _, _ = make(Path(tmp))
            tracemalloc.start()
            start = time.perf_counter()
            try:
                outcome = f"returned {type(call()).__name__}"
            except Exception as exc:  # noqa: BLE001 (what each case raises is the point of the listing)
                outcome = f"{type(exc).__name__}: {str(exc)[:110]}"
            seconds, peak = time.perf_counter() - start, tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            print(f"{name:38s} {seconds:6.3f} s {peak / (1 << 20):8.1f} MB  {outcome}")
