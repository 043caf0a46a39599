"""ONNX export checked with onnxruntime, and ONNX import."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the interop extra (onnx) is not installed")
ort = pytest.importorskip("onnxruntime", reason="the interop extra (onnxruntime) is not installed")

from onnx import TensorProto, helper, numpy_helper

import graphnet as gn
from graphnet.activations import ACTIVATIONS

TOL = 1e-5
NEWEST = min(onnx.defs.onnx_opset_version(), 21)


def _every_activation_graph(dtype="float32") -> gn.Graph:
    """Each activation (and parameter variant) on its own hidden node; nodes
    with one source (Gemm) and several (MatMul + Add); an output feeding another."""
    g = gn.Graph(name="zoo", seed=0, dtype=dtype)
    g.add_input("x", 5)
    g.add_input("m", 2)
    variants = [name for name in ACTIVATIONS if name != "softmax"] + [
        {"name": "gelu", "approximate": True},
        {"name": "leaky_relu", "negative_slope": 0.1},
        {"name": "elu", "alpha": 0.7},
    ]
    hidden = []
    for i, activation in enumerate(variants):
        name = f"h{i}"
        g.add_hidden(name, 3, activation=activation)
        g.connect("x", name)
        hidden.append(name)
    g.add_output("prob", 3, activation="softmax", loss="categorical_crossentropy")
    g.connect(["h0", "m"], "prob")
    g.add_output("mix", 4)
    g.connect([*hidden, "m", "prob"], "mix")
    rng = np.random.default_rng(0)
    g.set_weights({k: rng.normal(scale=0.7, size=v.shape) for k, v in g.get_weights().items()})
    return g


@pytest.fixture
def data():
    rng = np.random.default_rng(1)
    return {"x": rng.normal(size=(9, 5)).astype("float32"), "m": rng.normal(size=(9, 2)).astype("float32")}


def _run(path, feeds):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds)))


@pytest.mark.parametrize("opset", sorted({13, 17, 20, NEWEST}))
def test_onnxruntime_matches_predict(tmp_path, data, opset):
    g = _every_activation_graph()
    model = g.to_onnx(tmp_path / "zoo.onnx", opset=opset)
    assert [i.name for i in model.graph.input] == ["x", "m"]
    assert [o.name for o in model.graph.output] == ["prob", "mix"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert any(n.op_type == "Gelu" for n in model.graph.node) == (opset >= 20)
    expected = g.predict(data)
    for rows in (1, 9):  # the batch size is dynamic
        feeds = {k: v[:rows] for k, v in data.items()}
        got = _run(tmp_path / "zoo.onnx", feeds)
        for name in g.outputs:
            np.testing.assert_allclose(got[name], expected[name][:rows], atol=TOL)


@pytest.mark.parametrize("opset", [17, 20])
def test_round_trip_through_onnx(tmp_path, data, opset):
    g = _every_activation_graph()
    g.to_onnx(tmp_path / "zoo.onnx", opset=opset)
    back = gn.from_onnx(tmp_path / "zoo.onnx")
    assert back.inputs == g.inputs and sorted(back.outputs) == sorted(g.outputs)
    assert sorted(back.nodes) == sorted(g.nodes)
    for name, node in g.nodes.items():
        assert back.nodes[name].kind == node.kind
        if node.kind != "input":
            assert back.nodes[name].activation == node.activation
    expected, got = g.predict(data), back.predict(data)
    for name in g.outputs:
        np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=1e-6)
    assert back.nodes["prob"].loss.name == "categorical_crossentropy"


def test_float64_export(tmp_path):
    g = gn.Sequential([gn.Input(4), gn.Dense(5, activation="tanh"), gn.Dense(3, activation="softmax")],
                      seed=0, dtype="float64")
    g.to_onnx(tmp_path / "f64.onnx")
    x = np.random.default_rng(2).normal(size=(6, 4))
    got = _run(tmp_path / "f64.onnx", {"input": x})
    np.testing.assert_allclose(got["dense_1"], g.predict(x), atol=1e-12)
    assert gn.from_onnx(tmp_path / "f64.onnx").dtype == np.float64


def test_to_onnx_checks_its_arguments(tmp_path):
    g = _every_activation_graph()
    with pytest.raises(gn.GraphError, match="opset must be an integer from 13"):
        g.to_onnx(tmp_path / "x.onnx", opset=9)
    g.add_hidden("stray", 2)
    with pytest.raises(gn.GraphError, match="'stray'"):
        g.to_onnx(tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def _model(nodes, initializers, inputs, outputs, opset=17):
    graph = helper.make_graph(nodes, "hand", inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _info(name, size):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n", size])


def test_import_of_foreign_patterns(tmp_path):
    """Gemm with transB (PyTorch's layout), alpha and beta, a Constant bias,
    MatMul + Add, Identity, Dropout and Flatten, a default LeakyRelu."""
    rng = np.random.default_rng(3)
    w1 = rng.normal(size=(4, 3)).astype("float32")  # (out, in)
    b1 = rng.normal(size=(4,)).astype("float32")
    w2 = rng.normal(size=(4, 2)).astype("float32")  # (in, out)
    b2 = rng.normal(size=(1, 2)).astype("float32")
    nodes = [
        helper.make_node("Flatten", ["x"], ["flat"], axis=1),
        helper.make_node("Constant", [], ["b1"], value=numpy_helper.from_array(b1, "b1v")),
        helper.make_node("Gemm", ["flat", "w1", "b1"], ["z1"], transB=1, alpha=2.0, beta=0.5, name="fc1"),
        helper.make_node("LeakyRelu", ["z1"], ["a1"]),
        helper.make_node("Dropout", ["a1"], ["d1"]),
        helper.make_node("Identity", ["d1"], ["i1"]),
        helper.make_node("MatMul", ["i1", "w2"], ["p2"]),
        helper.make_node("Add", ["b2", "p2"], ["y"]),
    ]
    inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"), numpy_helper.from_array(b2, "b2")]
    onnx.save(_model(nodes, inits, [_info("x", 3)], [_info("y", 2)]), tmp_path / "hand.onnx")
    g = gn.from_onnx(tmp_path / "hand.onnx", loss="huber")
    assert g.inputs == ["x"] and g.outputs == ["y"] and g.nodes["y"].loss.name == "huber"
    assert g.nodes["a1"].activation.negative_slope == 0.01  # ONNX's default alpha
    x = rng.normal(size=(5, 3)).astype("float32")
    np.testing.assert_allclose(g.predict(x), _run(tmp_path / "hand.onnx", {"x": x})["y"], atol=TOL)
    history = g.fit(x, rng.normal(size=(5, 2)), epochs=30, optimizer={"name": "adam", "lr": 0.01}, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]  # and it trains


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_import_of_a_pytorch_export(tmp_path):
    torch = pytest.importorskip("torch", reason="the interop extra (torch) is not installed")
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2), torch.nn.Sigmoid())
    torch.onnx.export(module, (torch.zeros(1, 5),), str(tmp_path / "t.onnx"), dynamo=False,
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "batch"}})
    g = gn.from_onnx(tmp_path / "t.onnx")
    x = np.random.default_rng(4).normal(size=(7, 5)).astype("float32")
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(g.predict(x), expected, atol=TOL)
    assert g.nodes["y"].loss.name == "binary_crossentropy"


def test_unsupported_and_unreadable_models(tmp_path):
    w = numpy_helper.from_array(np.ones((1, 1, 1), dtype="float32"), "w")
    conv = helper.make_node("Conv", ["x", "w"], ["y"], name="conv")
    model = _model([conv], [w], [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, 3])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 1, 3])])
    onnx.save(model, tmp_path / "conv.onnx")
    with pytest.raises(gn.ModelImportError, match=r"input 'x' must be a float tensor of shape \(batch, features\)"):
        gn.from_onnx(tmp_path / "conv.onnx")
    w2 = numpy_helper.from_array(np.ones((3, 3), dtype="float32"), "w")
    model = _model([helper.make_node("Sin", ["x"], ["s"], name="sine"), helper.make_node("MatMul", ["s", "w"], ["y"])],
                   [w2], [_info("x", 3)], [_info("y", 3)])
    onnx.save(model, tmp_path / "sin.onnx")
    with pytest.raises(gn.ModelImportError, match=r"node 'sine' \(Sin\): operator 'Sin' cannot be imported"):
        gn.from_onnx(tmp_path / "sin.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07junk that is not protobuf" * 10)
    with pytest.raises(gn.ModelFileError, match="junk.onnx: not a readable ONNX model"):
        gn.from_onnx(tmp_path / "junk.onnx")
    with pytest.raises(gn.ModelFileError, match="no such file"):
        gn.from_onnx(tmp_path / "missing.onnx")


def test_external_data_is_refused(tmp_path):
    g = gn.Sequential([gn.Input(64), gn.Dense(64)], seed=0)
    model = g.to_onnx(tmp_path / "big.onnx")
    onnx.save_model(model, tmp_path / "ext.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    with pytest.raises(gn.ModelFileError, match="lives in an external file"):
        gn.from_onnx(tmp_path / "ext.onnx")
