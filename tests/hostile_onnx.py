"""A corpus of hostile and invalid ONNX files, built with ``onnx.helper`` at test time.

Each :class:`Case` writes its file (or names a path) in a folder and says
what ``gn.from_onnx`` must do with it: raise a graphnet error of a given
class whose message matches, or import a model that predicts as
onnxruntime does. :func:`limits` bounds the time and memory an import may
take. ``tests/test_onnx_hostile.py`` runs every case; run this file to
write the corpus into a folder::

    python tests/hostile_onnx.py OUT
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import graphnet as gn


@dataclass
class Case:
    """``make(folder)`` returns the path to import (and writes what it names);
    ``error`` and ``match`` say how the import must fail, or ``error`` None:
    it must import and predict as onnxruntime on ``inputs`` (name -> columns)."""

    name: str
    make: Callable[[Path], str | Path | object]
    error: type[Exception] | None
    match: str = ""
    kwargs: dict = field(default_factory=dict)
    inputs: dict[str, int] = field(default_factory=dict)
    seconds: float = 3.0
    megabytes: float = 16.0


class Exceeded(BaseException):
    """The import ran past its time budget (a BaseException, so that no
    ``except Exception`` in the code under test can swallow it)."""


@contextlib.contextmanager
def limits(seconds: float, megabytes: float):
    """Run the body within ``seconds`` (SIGALRM, where there is one) and under
    an address-space limit well above ``megabytes`` (so that a runaway read or
    allocation fails fast instead of exhausting the machine); yields a dict
    that receives ``peak``, the most bytes tracemalloc saw allocated at once."""
    found: dict[str, float] = {}
    alarm = hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()
    if alarm:
        def expire(signum, frame):
            raise Exceeded(f"took more than {seconds} s")
        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    limit = _address_limit(megabytes)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        yield found
    finally:
        found["seconds"] = time.perf_counter() - started
        found["peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        if limit is not None:
            limit()
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def _address_limit(megabytes: float):
    """Lower RLIMIT_AS to the current address space plus a margin; returns
    the function that restores it (None where the platform has no such limit)."""
    try:
        import resource

        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[0])
    except (ImportError, OSError, ValueError):
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = pages * os.sysconf("SC_PAGE_SIZE") + int(max(8 * megabytes, 512) * 2**20)
    if hard != resource.RLIM_INFINITY and cap > hard:
        return None
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# ------------------------------------------------------------------ helpers
def _model(nodes, inputs, outputs, initializers=(), opset=17, extra_opsets=()):
    graph = helper.make_graph(nodes, "hostile", inputs, outputs, initializer=list(initializers))
    opsets = [helper.make_opsetid("", opset), *(helper.make_opsetid(d, v) for d, v in extra_opsets)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return model


def _info(name, features, batch="n"):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [batch, features])


def _weight(name, shape, seed=0):
    return numpy_helper.from_array(np.random.default_rng(seed).normal(size=shape).astype("float32"), name)


def _save(model, folder: Path, name: str) -> Path:
    path = folder / f"{name}.onnx"
    onnx.save(model, path)
    return path


def _writer(name: str, build: Callable[[], onnx.ModelProto]) -> Callable[[Path], Path]:
    return lambda folder: _save(build(), folder, name)


# -------------------------------------------------------------------- cases
def _identity_loop():
    return _model([helper.make_node("Identity", ["y"], ["y"], name="loop")], [_info("x", 2)], [_info("y", 2)])


def _identity_pair():
    nodes = [helper.make_node("Identity", ["b"], ["a"], name="first"),
             helper.make_node("Identity", ["a"], ["b"], name="second"),
             helper.make_node("Relu", ["a"], ["y"], name="relu")]
    return _model(nodes, [_info("x", 2)], [_info("y", 2)])


def _doubling(count: int):
    nodes = [helper.make_node("Add", [f"t{i}", f"t{i}"], [f"t{i + 1}"]) for i in range(count)]
    return lambda: _model(nodes, [_info("t0", 2)], [_info(f"t{count}", 2)])


def _skip_chain(count: int, silu: bool):
    """``t' = t * sigmoid(t)`` (SiLU) or ``t' = sigmoid(t) + t``: each tensor read
    twice, a tree of 2^count leaves read as a tree."""
    nodes = [helper.make_node("MatMul", ["x", "w"], ["t0"])]
    for i in range(count):
        nodes.append(helper.make_node("Sigmoid", [f"t{i}"], [f"s{i}"]))
        nodes.append(helper.make_node("Mul" if silu else "Add", [f"t{i}", f"s{i}"], [f"t{i + 1}"]))
    return lambda: _model(nodes, [_info("x", 2)], [_info(f"t{count}", 2)], [_weight("w", (2, 2))])


def _many_outputs(count: int):
    """``y_i = Identity(Relu(x))``: each output's node renamed from its tensor's name."""
    nodes, outputs = [], []
    for i in range(count):
        nodes += [helper.make_node("Relu", ["x"], [f"h{i}"]), helper.make_node("Identity", [f"h{i}"], [f"y{i}"])]
        outputs.append(_info(f"y{i}", 1))
    return lambda: _model(nodes, [_info("x", 1)], outputs)


def _bias_chain(count: int):
    b = numpy_helper.from_array(np.full(2, 0.5, dtype="float32"), "b")
    nodes = [helper.make_node("Add", [f"t{i}", "b"], [f"t{i + 1}"]) for i in range(count)]
    return lambda: _model(nodes, [_info("t0", 2)], [_info(f"t{count}", 2)], [b])


def _relu(features: int):
    return lambda: _model([helper.make_node("Relu", ["x"], ["y"])], [_info("x", features)], [_info("y", features)])


def _negative_initializer_dims():
    w = helper.make_tensor("w", TensorProto.FLOAT, [3, 2], np.arange(6, dtype="float32").tolist())
    w.dims[1] = -2  # numpy_helper reads the six values as (3, 2) all the same
    return _model([helper.make_node("MatMul", ["x", "w"], ["y"])], [_info("x", 3)], [_info("y", 2)], [w])


def _negative_input_dims():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])
    x.type.tensor_type.shape.dim[1].dim_value = -3
    return _model([helper.make_node("Relu", ["x"], ["y"])], [x], [_info("y", 3)])


def _two_writers():
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="matmul"),
             helper.make_node("Relu", ["x"], ["y"], name="relu")]
    return _model(nodes, [_info("x", 2)], [_info("y", 2)], [_weight("w", (2, 2))])


def _writes_an_input():
    return _model([helper.make_node("Relu", ["x"], ["x"], name="relu")], [_info("x", 2)], [_info("x", 2)])


def _out_of_order():
    nodes = [helper.make_node("Relu", ["h"], ["y"], name="relu"), helper.make_node("MatMul", ["x", "w"], ["h"])]
    return _model(nodes, [_info("x", 2)], [_info("y", 2)], [_weight("w", (2, 2))])


def _undefined():
    return _model([helper.make_node("Add", ["x", "ghost"], ["y"], name="add")], [_info("x", 2)], [_info("y", 2)])


def _batch_sizes(first, second):
    def build():
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [first, 3])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [second, 3])
        return _model([helper.make_node("Add", ["x", "y"], ["z"], name="add")], [x, y],
                      [helper.make_tensor_value_info("z", TensorProto.FLOAT, [first, 3])])
    return build


def _divide_by_input():
    c = numpy_helper.from_array(np.full((1, 3), 2.0, dtype="float32"), "c")
    return _model([helper.make_node("Div", ["c", "x"], ["y"], name="div")], [_info("x", 3)], [_info("y", 3)], [c])


def _truncated(folder: Path) -> Path:
    model = _model([helper.make_node("MatMul", ["x", "w"], ["y"])], [_info("x", 64)], [_info("y", 64)],
                   [_weight("w", (64, 64))])
    raw = model.SerializeToString()
    path = folder / "truncated.onnx"
    path.write_bytes(raw[: len(raw) // 2])
    return path


def _tensor(name, dims, raw=b""):
    """A float tensor with these dims and data, unchecked (make_tensor would refuse them)."""
    tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=dims)
    if raw:
        tensor.raw_data = raw
    return tensor


def _huge_initializer():
    w = _tensor("w", [10**6, 10**6])
    return _model([helper.make_node("MatMul", ["x", "w"], ["y"])], [_info("x", 10**6)], [_info("y", 10**6)], [w])


def _short_raw_data():
    w = _tensor("w", [3, 2], b"\0" * 20)
    return _model([helper.make_node("MatMul", ["x", "w"], ["y"])], [_info("x", 3)], [_info("y", 2)], [w])


def _external(location: str, count: int = 1, mkdir: bool = True):
    """Initializers ``w0 .. w{count-1}`` all read from ``location``, offset 0."""
    def make(folder: Path) -> Path:
        inner = folder / "model"
        inner.mkdir()
        (folder / "secret.bin").write_bytes(np.ones(4, dtype="float32").tobytes())
        (inner / "weights.bin").write_bytes(np.ones(4, dtype="float32").tobytes())
        weights = []
        for i in range(count):
            w = helper.make_tensor(f"w{i}", TensorProto.FLOAT, [2, 2], [0.0] * 4)
            w.ClearField("float_data")
            w.data_location = TensorProto.EXTERNAL
            for k, v in (("location", location), ("offset", "0"), ("length", "16")):
                entry = w.external_data.add()
                entry.key, entry.value = k, v
            weights.append(w)
        nodes = [helper.make_node("MatMul", ["x", "w0"], ["h0"])]
        nodes += [helper.make_node("MatMul", [f"h{i - 1}", f"w{i}"], [f"h{i}"]) for i in range(1, count)]
        model = _model(nodes, [_info("x", 2)], [_info(f"h{count - 1}", 2)], weights)
        return _save(model, inner, "external")
    return make


def _foreign_domain():
    node = helper.make_node("Relu", ["x"], ["y"], name="evil", domain="com.example.evil")
    return _model([node], [_info("x", 2)], [_info("y", 2)], extra_opsets=[("com.example.evil", 1)])


def _gather_blowup():
    data = numpy_helper.from_array(np.ones((1, 20000), dtype="float32"), "data")
    indices = numpy_helper.from_array(np.zeros(20000, dtype="int64"), "indices")
    nodes = [helper.make_node("Gather", ["data", "indices"], ["w"], name="gather"),
             helper.make_node("MatMul", ["x", "w"], ["y"])]
    return _model(nodes, [_info("x", 20000)], [_info("y", 20000)], [data, indices])


def _broadcast_blowup():
    a = numpy_helper.from_array(np.ones((3000, 1), dtype="float32"), "a")
    b = numpy_helper.from_array(np.ones((1, 3000), dtype="float32"), "b")
    nodes = [helper.make_node("Add", ["a", "b"], ["w"], name="outer"), helper.make_node("MatMul", ["x", "w"], ["y"])]
    return _model(nodes, [_info("x", 3000)], [_info("y", 3000)], [a, b])


def _batchnorm_chain(count: int):
    rng = np.random.default_rng(5)
    inits = [_weight("w", (3, 3))]
    for name in ("scale", "bias", "mean"):
        inits.append(numpy_helper.from_array((rng.normal(size=3) * 0.1 + (name == "scale")).astype("float32"), name))
    inits.append(numpy_helper.from_array(np.ones(3, dtype="float32"), "var"))
    nodes = [helper.make_node("MatMul", ["x", "w"], ["t0"])]
    nodes += [helper.make_node("BatchNormalization", [f"t{i}", "scale", "bias", "mean", "var"], [f"t{i + 1}"])
              for i in range(count)]
    return lambda: _model(nodes, [_info("x", 3)], [_info(f"t{count}", 3)], inits)


def _identity_chain(count: int):
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h0"])]
    nodes += [helper.make_node("Identity", [f"h{i}"], [f"h{i + 1}"]) for i in range(count)]
    nodes.append(helper.make_node("Tanh", [f"h{count}"], ["y"]))
    return lambda: _model(nodes, [_info("x", 2)], [_info("y", 2)], [_weight("w", (2, 2))])


def _string_constant():
    c = helper.make_tensor("c", TensorProto.STRING, [2], [b"a", b"b"])
    return _model([helper.make_node("Add", ["x", "c"], ["y"], name="add")], [_info("x", 2)], [_info("y", 2)], [c])


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    def varint(value: int) -> bytes:
        out = bytearray()
        while True:
            out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
            value >>= 7
            if not value:
                return bytes(out)
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def _nested_subgraphs(depth: int):
    """A model whose graph gets (by protobuf's merging of a repeated field)
    an If node nested ``depth`` deep in then-branches, written byte by byte:
    onnx.helper cannot build what protobuf cannot read back."""
    def make(folder: Path) -> Path:
        graph = b""
        for _ in range(depth):  # GraphProto.node (1) -> NodeProto.attribute (5) -> AttributeProto.g (6)
            attribute = _field(1, b"then_branch") + b"\xa0\x01\x05" + _field(6, graph)  # type (20) = GRAPH
            graph = _field(1, _field(4, b"If") + _field(5, attribute))
        model = _model([helper.make_node("Relu", ["x"], ["y"])], [_info("x", 2)], [_info("y", 2)])
        path = folder / "nested.onnx"
        path.write_bytes(model.SerializeToString() + _field(7, graph))
        return path
    return make


def _fifo(folder: Path) -> Path:
    if not hasattr(os, "mkfifo"):
        raise NotImplementedError("no named pipes here")
    path = folder / "pipe.onnx"
    os.mkfifo(path)
    return path


def _sparse_giant(folder: Path) -> Path:
    if os.name != "posix":  # elsewhere the file may not be sparse: 3 GiB written to disk
        raise NotImplementedError("sparse files are POSIX-only here")
    path = folder / "giant.onnx"
    with open(path, "wb") as handle:
        handle.truncate(3 << 30)  # a sparse file: no disk used, 3 GiB of zeros to read
    return path


MFE, MIE = gn.ModelFileError, gn.ModelImportError
CASES = [
    # Graph structure (onnx.checker refuses all of these).
    Case("identity self-loop", _writer("loop", _identity_loop), MFE,
         r"node 'loop' \(Identity\) reads 'y' in a cycle of tensors 'y' -> 'y'"),
    Case("identity two-node loop", _writer("pair", _identity_pair), MFE,
         r"node 'first' \(Identity\) reads 'b' in a cycle of tensors 'b' -> 'a' -> 'b'"),
    Case("two nodes write one tensor", _writer("writers", _two_writers), MFE,
         r"tensor 'y' is written by node 'matmul' \(MatMul\) and again by node 'relu' \(Relu\)"),
    Case("a node writes an input", _writer("writes_input", _writes_an_input), MFE,
         r"tensor 'x' is written by input 'x' and again by node 'relu'"),
    Case("nodes out of order", _writer("order", _out_of_order), MFE,
         r"node 'relu' \(Relu\) reads 'h' before node '\(unnamed\)' \(MatMul\) computes it"),
    Case("reads a tensor nothing computes", _writer("ghost", _undefined), MFE,
         r"node 'add' \(Add\) reads 'ghost', which no input, initializer or node computes"),
    # Tensors whose data do not match their dimensions.
    Case("negative initializer dimension", _writer("negative", _negative_initializer_dims), MFE,
         r"initializer 'w': negative dimension in its shape \[3, -2\]"),
    Case("negative input dimension", _writer("negative_input", _negative_input_dims), MFE,
         r"input 'x' declares the shape \(\?, -3\); dimensions must be positive"),
    Case("huge declared initializer", _writer("huge", _huge_initializer), MFE,
         r"initializer 'w': shape \[1000000, 1000000\] needs 1,000,000,000,000 values of FLOAT, and its data holds 0"),
    Case("raw data shorter than its shape", _writer("short", _short_raw_data), MFE,
         r"initializer 'w': shape \[3, 2\] needs 24 bytes of FLOAT, and its data holds 20"),
    Case("truncated protobuf", _truncated, MFE, r"truncated.onnx: not a readable ONNX model"),
    # protobuf 4 and later refuse the depth; protobuf 3.20 reads it, and the reader refuses the If.
    Case("subgraphs nested 120 deep", _nested_subgraphs(120), MFE,
         r"not a readable ONNX model|node '\(unnamed\)' \(If\) has no output"),
    # What is passed as the path.
    Case("path None", lambda folder: None, MFE, r"from_onnx: path must be a str or os.PathLike .* got NoneType"),
    Case("path 5", lambda folder: 5, MFE, r"from_onnx: path must be a str or os.PathLike .* got int 5"),
    Case("path bytes", lambda folder: b"model.onnx", MFE, r"path must be a str or os.PathLike .* got bytes"),
    Case("path with NUL", lambda folder: str(folder / "m\0x.onnx"), MFE, r"contains a NUL character"),
    Case("path is a folder", lambda folder: folder, MFE, r"is a folder, not a regular file"),
    Case("path is a named pipe", _fifo, MFE, r"pipe.onnx: is a pipe, not a regular file"),
    Case("path is /dev/zero", lambda folder: "/dev/zero", MFE, r"/dev/zero: is a character device, not a regular file"),
    Case("a 3 GiB file", _sparse_giant, MFE, r"3,221,225,472 bytes, more than the limit of 2,147,483,648 bytes for an ONNX model; protobuf"),
    # External data.
    Case("external data outside the folder", _external("../secret.bin"), MFE,
         r"external data location '../secret.bin' is not a file inside the model's folder",
         kwargs={"external_data": True}),
    Case("external data read a thousand times", _external("weights.bin", count=1000), MFE,
         r"initializer 'w1': the tensors stored in 'weights.bin' claim more bytes together than its 16",
         kwargs={"external_data": True}),
    # What graphnet cannot represent, or must not allocate.
    Case("unknown operator domain", _writer("domain", _foreign_domain), MIE,
         r"node 'evil' \(Relu\): operator domain 'com.example.evil' is not supported"),
    Case("inputs with batches 2 and 1", _writer("batches", _batch_sizes(2, 1)), MIE,
         r"the inputs declare different batch sizes: 'x' \(2 rows\), 'y' \(1 row\)"),
    Case("inputs with batches n and 1", _writer("batches_n", _batch_sizes("n", 1)), MIE,
         r"'x' \(any number of rows\), 'y' \(1 row\)"),
    Case("division by an input", _writer("div", _divide_by_input), MIE,
         r"node 'div' \(Div\) computing 'y': divides by 'x', which is computed from the model's inputs"),
    Case("a string constant added", _writer("string", _string_constant), MIE,
         r"node 'add' \(Add\): input 'c' holds object values, not numbers"),
    Case("gather of 400 million values", _writer("gather", _gather_blowup), MIE,
         r"node 'gather' \(Gather\): gathers 400,000,000 values from 20,000"),
    Case("constants broadcast to 9 million", _writer("outer", _broadcast_blowup), MIE,
         r"node 'outer' \(Add\): computing 'w': constants of shapes \[\(3000, 1\), \(1, 3000\)\] broadcast"),
    Case("relu on 10^9 features", _writer("wide", _relu(10**9)), MIE,
         r"input 'x' has 1,000,000,000 features, so a layer reading it has more parameters than "
         r"max_params=100,000,000"),
    Case("relu on 10^9 features, no max_params", _writer("wide", _relu(10**9)), MIE,
         r"Relu at 'y' needs [\d,]+ bytes; this machine has", kwargs={"max_params": None}),
    Case("relu on 20,000 features", _writer("wide20k", _relu(20000)), MIE,
         r"Relu at 'y' brings the model to 400,020,000 parameters, more than max_params=100,000,000"),
    # Valid files that must import, quickly and in little memory, and predict as onnxruntime.
    Case("26 doubling Adds", _writer("doubling", _doubling(26)), None, inputs={"t0": 2}),
    Case("200 SiLUs in a row", _writer("silus", _skip_chain(200, silu=True)), None, inputs={"x": 2}),
    Case("200 sigmoid skips in a row", _writer("skips", _skip_chain(200, silu=False)), None, inputs={"x": 2}),
    Case("2,000 outputs", _writer("outputs", _many_outputs(2000)), None, inputs={"x": 1}, seconds=5,
         megabytes=64),
    Case("3,000 bias Adds", _writer("biases", _bias_chain(3000)), None, inputs={"t0": 2}, megabytes=24),
    Case("relu on 2,000 features", _writer("relu2000", _relu(2000)), None, inputs={"x": 2000}, megabytes=40),
    Case("1,000 batch norms in a row", _writer("norms", _batchnorm_chain(1000)), None, inputs={"x": 3}),
    Case("10,000 identities in a row", _writer("identities", _identity_chain(10000)), None, inputs={"x": 2},
         megabytes=48),
]


def write_all(folder: Path) -> list[Path]:
    """Write every case's file into ``folder`` (one subfolder per case)."""
    written = []
    for i, case in enumerate(CASES):
        sub = folder / f"{i:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        try:
            made = case.make(sub)
        except NotImplementedError:
            continue
        if isinstance(made, Path):
            written.append(made)
    return written


if __name__ == "__main__":
    for path in write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "hostile_onnx")):
        print(path)
