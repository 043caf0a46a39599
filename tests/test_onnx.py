"""ONNX export checked with onnxruntime, and ONNX import."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the interop extra (onnx) is not installed")
ort = pytest.importorskip("onnxruntime", reason="the interop extra (onnxruntime) is not installed")

from interop import trains_saves_exports
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
        {"name": "hard_sigmoid", "alpha": 1.0, "beta": 0.0},
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


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("opset", [13, 17, 20])
def test_round_trip_through_onnx(tmp_path, data, opset, dtype):
    """Every activation, as an operator or (float64) as the arithmetic the
    export writes for it, comes back as the same nodes and weights."""
    g = _every_activation_graph(dtype=dtype)
    g.to_onnx(tmp_path / "zoo.onnx", opset=opset)
    back = gn.from_onnx(tmp_path / "zoo.onnx")
    assert back.inputs == g.inputs and back.outputs == g.outputs
    assert sorted(back.nodes) == sorted(g.nodes)
    for name, node in g.nodes.items():
        assert back.nodes[name].kind == node.kind
        if node.kind != "input":
            assert back.nodes[name].activation == node.activation
    assert back.num_params == g.num_params
    back.set_weights(g.get_weights())
    data = {k: v.astype(dtype) for k, v in data.items()}
    expected, got = g.predict(data), back.predict(data)
    for name in g.outputs:
        np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=1e-6 if dtype == "float32" else 1e-12)
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


def test_an_elu_written_out_with_a_product_by_one_is_one_node(tmp_path):
    """ELU as arithmetic whose alpha = 1 is written as a Mul: the Mul is part of
    the activation, so the layer and its activation are one node, named after
    the output. A Sub read by something else too is refused, as before."""
    rng = np.random.default_rng(6)
    w = numpy_helper.from_array(rng.normal(size=(3, 4)).astype("float32"), "w")
    consts = [numpy_helper.from_array(np.asarray(v, dtype="float32"), n) for n, v in [("zero", 0.0), ("one", 1.0)]]
    elu = [helper.make_node("MatMul", ["x", "w"], ["z"]), helper.make_node("Greater", ["z", "zero"], ["pos"]),
           helper.make_node("Min", ["z", "zero"], ["low"]), helper.make_node("Exp", ["low"], ["e"]),
           helper.make_node("Sub", ["e", "one"], ["em1"]), helper.make_node("Mul", ["em1", "one"], ["neg"]),
           helper.make_node("Where", ["pos", "z", "neg"], ["h"])]
    onnx.save(_model(elu, [w, *consts], [_info("x", 3)], [_info("h", 4)]), tmp_path / "elu.onnx")
    g = gn.from_onnx(tmp_path / "elu.onnx")
    assert sorted(g.nodes) == ["h", "x"] and g.num_params == 3 * 4 + 4
    assert g.nodes["h"].activation.name == "elu" and g.nodes["h"].activation.alpha == 1.0
    x = rng.normal(scale=2.0, size=(6, 3)).astype("float32")
    np.testing.assert_allclose(g.predict(x), _run(tmp_path / "elu.onnx", {"x": x})["h"], atol=TOL)

    shared = [*elu, helper.make_node("Add", ["em1", "z"], ["k"])]
    onnx.save(_model(shared, [w, *consts], [_info("x", 3)], [_info("h", 4), _info("k", 4)]), tmp_path / "k.onnx")
    with pytest.raises(gn.ModelImportError, match="do not form an activation or affine map"):
        gn.from_onnx(tmp_path / "k.onnx")


def test_an_output_named_like_another_node(tmp_path):
    """A node name has no '->': the hidden tensor 'a->b' is node 'a_b', and the
    output 'a_b' keeps its name while the hidden node takes 'a_b_1'. An
    output (or an input) whose own name no node can carry is refused, naming
    it: imported graphs keep the model's input and output names (SPEC 7)."""
    rng = np.random.default_rng(7)
    w1 = numpy_helper.from_array(rng.normal(size=(3, 4)).astype("float32"), "w1")
    w2 = numpy_helper.from_array(rng.normal(size=(4, 2)).astype("float32"), "w2")
    hidden = [helper.make_node("MatMul", ["x", "w1"], ["a->b"]), helper.make_node("Relu", ["a->b"], ["r"]),
              helper.make_node("MatMul", ["a->b", "w2"], ["a_b"]), helper.make_node("MatMul", ["r", "w2"], ["s"])]
    onnx.save(_model(hidden, [w1, w2], [_info("x", 3)], [_info("a_b", 2), _info("s", 2)]), tmp_path / "h.onnx")
    g = gn.from_onnx(tmp_path / "h.onnx")
    assert g.outputs == ["a_b", "s"] and sorted(g.nodes) == ["a_b", "a_b_1", "r", "s", "x"]
    x = rng.normal(size=(5, 3)).astype("float32")
    expected = _run(tmp_path / "h.onnx", {"x": x})
    for name in g.outputs:
        np.testing.assert_allclose(g.predict(x)[name], expected[name], atol=TOL)

    two = [helper.make_node("MatMul", ["x", "w1"], ["a->b"]), helper.make_node("MatMul", ["x", "w1"], ["a_b"])]
    onnx.save(_model(two, [w1], [_info("x", 3)], [_info("a->b", 4), _info("a_b", 4)]), tmp_path / "two.onnx")
    with pytest.raises(gn.ModelImportError, match=r"two.onnx': the output 'a->b' cannot keep its name: node name "
                                                  r"'a->b' must not contain '->' or control characters; rename it "
                                                  r"in the model"):
        gn.from_onnx(tmp_path / "two.onnx")


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




@pytest.mark.parametrize("opset", [13, 17, 18, 21])
def test_float64_export_of_every_activation_runs_in_onnxruntime(tmp_path, data, opset):
    """onnxruntime's CPU build lacks double kernels for most activation operators:
    the export writes them as float64 arithmetic, and exact GELU takes erf in float32."""
    g = _every_activation_graph(dtype="float64")
    g.to_onnx(tmp_path / "zoo64.onnx", opset=opset)
    feeds = {k: v.astype(np.float64) for k, v in data.items()}
    got, expected = _run(tmp_path / "zoo64.onnx", feeds), g.predict(feeds)
    for name in g.outputs:
        assert got[name].dtype == np.float64
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-7, atol=1e-7)
    back = gn.from_onnx(tmp_path / "zoo64.onnx")  # and it reads back exactly
    assert back.dtype == np.float64
    for name in g.outputs:
        np.testing.assert_allclose(back.predict(feeds)[name], expected[name], rtol=1e-12, atol=1e-12)


def test_outputs_keep_the_file_order(tmp_path):
    """Outputs p, q, r whose nodes come in the order q, r, p."""
    rng = np.random.default_rng(5)
    inits = [numpy_helper.from_array(rng.normal(size=(3, 2)).astype("float32"), n) for n in ("wq", "wr", "wp")]
    nodes = [helper.make_node("MatMul", ["x", "wq"], ["q"]), helper.make_node("MatMul", ["x", "wr"], ["r"]),
             helper.make_node("MatMul", ["q", "wp"], ["p0"]), helper.make_node("Sigmoid", ["p0"], ["p"])]
    inits[2] = numpy_helper.from_array(rng.normal(size=(2, 2)).astype("float32"), "wp")
    onnx.save(_model(nodes, inits, [_info("x", 3)], [_info("p", 2), _info("q", 2), _info("r", 2)]),
              tmp_path / "pqr.onnx")
    g = gn.from_onnx(tmp_path / "pqr.onnx")
    assert g.outputs == ["p", "q", "r"]
    x = rng.normal(size=(4, 3)).astype("float32")
    expected = _run(tmp_path / "pqr.onnx", {"x": x})
    for name in g.outputs:
        np.testing.assert_allclose(g.predict(x)[name], expected[name], atol=TOL)


def test_names_with_invisible_characters_come_back_as_they_were(tmp_path):
    """A zero-width space, a zero-width joiner, a right-to-left mark and a BOM
    are characters a node name may hold: the import keeps them, so the data
    keyed by the exported names feeds the imported graph (and 'a\u200bb'
    beside 'ab' stays two inputs)."""
    g = gn.Graph(seed=0)
    names = ["a\u200bb", "ab", "c\u200fd", "\ufeffe"]
    for name in names:
        g.add_input(name, 2)
    g.add_output("out\u200d", 1)
    g.connect(names, "out\u200d")
    g.to_onnx(tmp_path / "names.onnx")
    back = gn.from_onnx(tmp_path / "names.onnx")
    assert back.inputs == names and back.outputs == ["out\u200d"]
    x = {name: np.random.default_rng(i).normal(size=(3, 2)) for i, name in enumerate(names)}
    np.testing.assert_allclose(back.predict(x), g.predict(x), atol=TOL)


def test_shape_operators_that_keep_batch_features(tmp_path):
    """Cast float to float, Identity on a weight, Reshape to (-1, n), Unsqueeze then
    Squeeze; and the ones that do not keep (batch, features) are refused."""
    rng = np.random.default_rng(6)
    w = rng.normal(size=(3, 4)).astype("float32")
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array([-1, 4]), "shape"),
             numpy_helper.from_array(np.array([1]), "axes")]
    nodes = [helper.make_node("Cast", ["x"], ["xc"], to=TensorProto.DOUBLE),
             helper.make_node("Cast", ["xc"], ["xf"], to=TensorProto.FLOAT),
             helper.make_node("Identity", ["w"], ["w2"]),
             helper.make_node("MatMul", ["xf", "w2"], ["z"]),
             helper.make_node("Reshape", ["z", "shape"], ["zr"]),
             helper.make_node("Unsqueeze", ["zr", "axes"], ["zu"]),
             helper.make_node("Squeeze", ["zu", "axes"], ["zs"]),
             helper.make_node("Tanh", ["zs"], ["y"])]
    onnx.save(_model(nodes, inits, [_info("x", 3)], [_info("y", 4)]), tmp_path / "shapes.onnx")
    g = gn.from_onnx(tmp_path / "shapes.onnx")
    x = rng.normal(size=(5, 3)).astype("float32")
    np.testing.assert_allclose(g.predict(x), _run(tmp_path / "shapes.onnx", {"x": x})["y"], atol=TOL)
    assert list(g.nodes) == ["x", "y"]  # all of it one tanh node

    def refused(node, init, out, message):
        model = _model([helper.make_node("MatMul", ["x", "w"], ["z"]), node],
                       [numpy_helper.from_array(w, "w")] + init, [_info("x", 3)], [out])
        onnx.save(model, tmp_path / "bad.onnx")
        with pytest.raises(gn.ModelImportError, match=message):
            gn.from_onnx(tmp_path / "bad.onnx")

    refused(helper.make_node("Reshape", ["z", "s"], ["y"], name="flat"), [numpy_helper.from_array(np.array([-1, 2]), "s")],
            _info("y", 2), r"node 'flat' \(Reshape\): reshapes \(batch, 4\) to \[-1, 2\], which does not keep")
    refused(helper.make_node("Cast", ["z"], ["y"], name="toint", to=TensorProto.INT64), [],
            helper.make_tensor_value_info("y", TensorProto.INT64, ["n", 4]), "no output is a float tensor")


@pytest.mark.parametrize("to, name", [(TensorProto.FLOAT16, "float16"), (TensorProto.BFLOAT16, "bfloat16"),
                                      (TensorProto.FLOAT8E4M3FN, "float8_e4m3fn")],
                         ids=["float16", "bfloat16", "float8_e4m3fn"])
@pytest.mark.parametrize("elem", [TensorProto.FLOAT, TensorProto.DOUBLE], ids=["float32", "float64"])
def test_a_cast_to_a_narrower_float_is_refused(tmp_path, to, name, elem):
    """A round trip through float16 (what .half() or a float16 conversion writes)
    rounds the layer's output: onnxruntime's predictions differ from the
    unrounded ones by far more than TOL, so the Cast cannot be dropped."""
    rng = np.random.default_rng(8)
    dtype = helper.tensor_dtype_to_np_dtype(elem)
    w = rng.normal(scale=10.0, size=(3, 4)).astype(dtype)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["z"]),
             helper.make_node("Cast", ["z"], ["zh"], name="narrow", to=to),
             helper.make_node("Cast", ["zh"], ["y"], to=elem)]
    graph = helper.make_graph(nodes, "hand", [helper.make_tensor_value_info("x", elem, ["n", 3])],
                              [helper.make_tensor_value_info("y", elem, ["n", 4])],
                              initializer=[numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, tmp_path / "narrow.onnx")
    x = rng.normal(size=(20, 3)).astype(dtype)
    assert np.abs(_run(tmp_path / "narrow.onnx", {"x": x})["y"] - x @ w).max() > 100 * TOL
    with pytest.raises(gn.ModelImportError, match=rf"node 'narrow' \(Cast\): rounds a layer's output to {name}, "
                                                  rf"which keeps fewer digits than the {dtype} graphnet computes "
                                                  rf"in, .*export the model in float32 or float64 throughout"):
        gn.from_onnx(tmp_path / "narrow.onnx")


def test_a_float64_graph_casting_to_float32_imports_within_float32s_precision(tmp_path):
    """The cast rounds within float32's precision, which imports keep to (and
    graphnet's own float64 export writes one around erf)."""
    rng = np.random.default_rng(9)
    w = rng.normal(size=(3, 4))
    nodes = [helper.make_node("MatMul", ["x", "w"], ["z"]),
             helper.make_node("Cast", ["z"], ["zf"], to=TensorProto.FLOAT),
             helper.make_node("Cast", ["zf"], ["zd"], to=TensorProto.DOUBLE),
             helper.make_node("Tanh", ["zd"], ["y"])]
    graph = helper.make_graph(nodes, "hand", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["n", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["n", 4])],
                              initializer=[numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "f32.onnx")
    g = gn.from_onnx(tmp_path / "f32.onnx")
    assert g.dtype == np.float64
    x = rng.normal(size=(20, 3))
    np.testing.assert_allclose(g.predict(x), _run(tmp_path / "f32.onnx", {"x": x})["y"], rtol=0, atol=TOL)


def test_an_unused_input_is_refused(tmp_path):
    """A graph cannot hold an input that feeds no output."""
    w = numpy_helper.from_array(np.ones((3, 4), dtype="float32"), "w")
    model = _model([helper.make_node("MatMul", ["x", "w"], ["y"])], [w], [_info("x", 3), _info("u", 2)],
                   [_info("y", 4)])
    onnx.save(model, tmp_path / "unused.onnx")
    with pytest.raises(gn.ModelImportError, match=r"node 'u' \(from input 'u'\) reaches no output: the model has "
                                                  r"an input it does not use, .*; remove that input"):
        gn.from_onnx(tmp_path / "unused.onnx")


def test_label_free_int_outputs_are_refused(tmp_path):
    w = numpy_helper.from_array(np.ones((3, 4), dtype="float32"), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["z"]), helper.make_node("TopK", ["z", "k"], ["v", "i"], name="top")]
    k = numpy_helper.from_array(np.array([2]), "k")
    model = _model(nodes, [w, k], [_info("x", 3)],
                   [_info("z", 4), helper.make_tensor_value_info("i", TensorProto.INT64, ["n", 2])])
    onnx.save(model, tmp_path / "topk.onnx")
    with pytest.raises(gn.ModelImportError, match=r"outputs \['i'\] are not float tensors and are computed by "
                                                  r"\['TopK'\], not a classifier's label branch"):
        gn.from_onnx(tmp_path / "topk.onnx")


# ------------------------------------------------------------ torch exporters
def _torch_zoo(torch):
    nn, F = torch.nn, torch.nn.functional

    class Zoo(nn.Module):
        """What dense torch models contain, through both exporters: every
        activation, a batch norm, +, torch.cat, view/flatten/unsqueeze, two
        inputs and two outputs."""

        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(5, 6), nn.Linear(3, 6)
            self.bn = nn.BatchNorm1d(6)
            self.c = nn.Linear(12, 6)
            self.heads = nn.ModuleList(nn.Linear(6, 3) for _ in range(6))
            self.out = nn.Linear(18, 2)

        def forward(self, x, y):
            h = F.gelu(self.bn(self.a(x))) + F.softplus(self.b(y))
            h = h.view(h.size(0), -1)
            k = F.gelu(self.c(torch.cat([h, torch.flatten(F.silu(self.b(y)), 1)], dim=1)), approximate="tanh")
            k = k.unsqueeze(1).squeeze(1)
            acts = (F.mish, F.softsign, F.selu, F.hardsigmoid, F.elu, F.leaky_relu)
            parts = [act(head(k)) for act, head in zip(acts, self.heads)]
            return torch.softmax(self.out(torch.cat(parts, dim=1)), dim=1), torch.sigmoid(k)

    torch.manual_seed(0)
    module = Zoo()
    with torch.no_grad():
        module.bn.running_mean.normal_()
        module.bn.running_var.uniform_(0.5, 2.0)
        module.bn.weight.normal_()
        module.bn.bias.normal_()
    return module.eval()


@pytest.fixture(scope="module")
def torch_zoo():
    torch = pytest.importorskip("torch", reason="the interop extra (torch) is not installed")
    return torch, _torch_zoo(torch)


def _export(torch, module, path, dynamo: bool, opset: int):
    import warnings

    args = (torch.zeros(2, 5), torch.zeros(2, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            batch = torch.export.Dim("batch")
            torch.onnx.export(module, args, str(path), dynamo=True, opset_version=opset, input_names=["x", "y"],
                              output_names=["p", "s"], dynamic_shapes=({0: batch}, {0: batch}), verbose=False)
        else:
            torch.onnx.export(module, args, str(path), dynamo=False, opset_version=opset, input_names=["x", "y"],
                              output_names=["p", "s"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})


def _check_zoo(torch, module, path, tmp_path, external=False):
    g = gn.from_onnx(path, external_data=external)
    rng = np.random.default_rng(7)
    x = {"x": rng.normal(size=(9, 5)).astype("float32"), "y": rng.normal(size=(9, 3)).astype("float32")}
    with torch.no_grad():
        expected = module(torch.from_numpy(x["x"]), torch.from_numpy(x["y"]))
    assert g.inputs == ["x", "y"] and g.outputs == ["p", "s"]
    got = g.predict(x)
    for name, want in zip(g.outputs, expected):
        np.testing.assert_allclose(got[name], want.numpy(), atol=TOL, rtol=TOL)
    return g, x


@pytest.mark.parametrize("opset", [13, 17, 20, 21])
def test_torch_legacy_exporter(torch_zoo, tmp_path, opset):
    torch, module = torch_zoo
    _export(torch, module, tmp_path / "zoo.onnx", dynamo=False, opset=opset)
    g, x = _check_zoo(torch, module, tmp_path / "zoo.onnx", tmp_path)
    if opset == 17:
        trains_saves_exports(g, x, tmp_path)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
@pytest.mark.parametrize("opset", [18, pytest.param(17, marks=pytest.mark.slow), 20, pytest.param(21, marks=pytest.mark.slow)])
def test_torch_dynamo_exporter(torch_zoo, tmp_path, opset):
    pytest.importorskip("onnxscript", reason="torch's dynamo exporter needs onnxscript")
    torch, module = torch_zoo
    _export(torch, module, tmp_path / "zoo.onnx", dynamo=True, opset=opset)
    if (tmp_path / "zoo.onnx.data").stat().st_size:  # torch's default: weights beside the model
        with pytest.raises(gn.ModelFileError, match="pass external_data=True to read it"):
            gn.from_onnx(tmp_path / "zoo.onnx")
    g, x = _check_zoo(torch, module, tmp_path / "zoo.onnx", tmp_path, external=True)
    if opset == 18:
        trains_saves_exports(g, x, tmp_path)


# -------------------------------------------------------------- external data
@pytest.fixture
def external(tmp_path):
    """A model whose weights live in weights.bin beside it."""
    g = gn.Sequential([gn.Input(8), gn.Dense(6, activation="tanh"), gn.Dense(3)], seed=0)
    rng = np.random.default_rng(8)
    g.set_weights({k: rng.normal(size=v.shape) for k, v in g.get_weights().items()})
    model = g.to_onnx(tmp_path / "inline.onnx")
    folder = tmp_path / "model"
    folder.mkdir()
    onnx.save_model(model, folder / "ext.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    return g, folder


def _relocate(path, location=None, length=None):
    model = onnx.load(path, load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location" and location is not None:
                entry.value = location
            if entry.key == "length" and length is not None:
                entry.value = str(length)
    onnx.save(model, path)


def test_external_data_only_when_asked(external):
    g, folder = external
    with pytest.raises(gn.ModelFileError, match=r"lives in an external file \('weights.bin'\); pass "
                                                r"external_data=True to read it: graphnet then reads only files "
                                                r"inside the model's own folder"):
        gn.from_onnx(folder / "ext.onnx")
    back = gn.from_onnx(folder / "ext.onnx", external_data=True)
    x = np.random.default_rng(9).normal(size=(4, 8)).astype("float32")
    np.testing.assert_allclose(back.predict(x), g.predict(x), atol=TOL)


@pytest.mark.parametrize("location, message", [
    ("../weights.bin", "is not a file inside the model's folder"),
    ("/etc/passwd", "is not a file inside the model's folder"),
    ("sub/../../weights.bin", "is not a file inside the model's folder"),
    ("missing.bin", "is missing or not a regular file"),
])
def test_external_data_stays_in_the_folder(external, location, message):
    _, folder = external
    (folder.parent / "weights.bin").write_bytes((folder / "weights.bin").read_bytes())
    _relocate(folder / "ext.onnx", location=location)
    with pytest.raises(gn.ModelFileError, match=message):
        gn.from_onnx(folder / "ext.onnx", external_data=True)


def test_external_data_symlinks_and_sizes(external):
    import os

    _, folder = external
    outside = folder.parent / "outside.bin"
    outside.write_bytes((folder / "weights.bin").read_bytes())
    os.symlink(outside, folder / "link.bin")
    _relocate(folder / "ext.onnx", location="link.bin")
    with pytest.raises(gn.ModelFileError, match=r"resolves to .*outside.bin, outside the model's folder"):
        gn.from_onnx(folder / "ext.onnx", external_data=True)
    _relocate(folder / "ext.onnx", location="weights.bin", length=10**12)
    with pytest.raises(gn.ModelFileError, match=r"claims 1,000,000,000,000 bytes .* holds"):
        gn.from_onnx(folder / "ext.onnx", external_data=True)
    _relocate(folder / "ext.onnx", length=0)
    (folder / "weights.bin").write_bytes(b"\0" * 10)  # truncated
    with pytest.raises(gn.ModelFileError, match=r"external data claims"):
        gn.from_onnx(folder / "ext.onnx", external_data=True)


# ------------------------------------------------------------------- skl2onnx
@pytest.fixture(scope="module")
def sklearn_models():
    pytest.importorskip("skl2onnx", reason="skl2onnx is not installed")
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    rng = np.random.default_rng(10)
    x = rng.normal(size=(60, 4)).astype("float32")
    models = {
        "binary": MLPClassifier(hidden_layer_sizes=(6, 5), activation="tanh", max_iter=200, random_state=0)
        .fit(x, rng.integers(0, 2, 60)),
        "multiclass": MLPClassifier(hidden_layer_sizes=(6,), max_iter=200, random_state=0).fit(x, rng.integers(0, 3, 60)),
        "multilabel": MLPClassifier(hidden_layer_sizes=(5,), activation="logistic", max_iter=200, random_state=0)
        .fit(x, rng.integers(0, 2, (60, 3))),
        "regressor": MLPRegressor(hidden_layer_sizes=(5,), max_iter=200, random_state=0).fit(x, rng.normal(size=60)),
    }
    return models, x


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("kind, zipmap", [(kind, zipmap) for kind in ("binary", "multiclass", "multilabel")
                                          for zipmap in (True, False)] + [("regressor", None)])
def test_skl2onnx_perceptrons(sklearn_models, kind, zipmap, tmp_path, caplog):
    from skl2onnx import to_onnx as sklearn_to_onnx

    models, x = sklearn_models
    estimator = models[kind]
    options = {id(estimator): {"zipmap": False}} if zipmap is False else None
    path = tmp_path / f"{kind}.onnx"
    path.write_bytes(sklearn_to_onnx(estimator, x[:1], options=options).SerializeToString())
    with caplog.at_level("INFO", logger="graphnet.interop.onnx_import"):
        g = gn.from_onnx(path)
    if kind == "regressor":
        np.testing.assert_allclose(g.predict(x), estimator.predict(x).reshape(-1, 1), atol=TOL)
        return
    assert "dropped the label branch" in caplog.text
    assert ("Binarizer" if kind == "multilabel" else "ArgMax") in caplog.text
    assert g.outputs == ["output_probability" if zipmap else "probabilities"]
    np.testing.assert_allclose(g.predict(x), estimator.predict_proba(x), atol=TOL)
    if kind == "binary":  # [1 - p, p] became softmax([0, z])
        assert g.nodes[g.outputs[0]].activation.name == "softmax" and g.nodes[g.outputs[0]].size == 2
    trains_saves_exports(g, x, tmp_path)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_skl2onnx_multi_output_regressor_is_refused(tmp_path):
    pytest.importorskip("skl2onnx", reason="skl2onnx is not installed")
    from skl2onnx import to_onnx as sklearn_to_onnx
    from sklearn.neural_network import MLPRegressor

    rng = np.random.default_rng(11)
    x = rng.normal(size=(30, 4)).astype("float32")
    estimator = MLPRegressor(hidden_layer_sizes=(3,), max_iter=20).fit(x, rng.normal(size=(30, 2)))
    (tmp_path / "r2.onnx").write_bytes(sklearn_to_onnx(estimator, x[:1]).SerializeToString())
    # skl2onnx reshapes the (n, 2) prediction to (2n, 1): not graphnet's (batch, features).
    with pytest.raises(gn.ModelImportError, match=r"reshapes \(batch, 2\) to \[-1, 1\], which does not keep"):
        gn.from_onnx(tmp_path / "r2.onnx")


def test_a_long_row_of_activations(tmp_path):
    """Two thousand activations in a row: resolved as they come, not as one deep tree."""
    nodes = [helper.make_node("MatMul", ["x", "w"], ["t0"])]
    nodes += [helper.make_node("Tanh" if i % 2 else "Sigmoid", [f"t{i}"], [f"t{i + 1}"]) for i in range(2000)]
    w = numpy_helper.from_array(np.random.default_rng(12).normal(size=(2, 2)).astype("float32"), "w")
    onnx.save(_model(nodes, [w], [_info("x", 2)], [_info("t2000", 2)]), tmp_path / "deep.onnx")
    g = gn.from_onnx(tmp_path / "deep.onnx")
    x = np.random.default_rng(13).normal(size=(3, 2)).astype("float32")
    np.testing.assert_allclose(g.predict(x), _run(tmp_path / "deep.onnx", {"x": x})["t2000"], atol=TOL)


def test_from_onnx_checks_its_arguments(tmp_path):
    """Wrong types are graphnet errors naming the argument, before the file is read."""
    path = tmp_path / "m.onnx"
    gn.Sequential([gn.Input(3), gn.Dense(2)], seed=0).to_onnx(path)
    for kwargs, message in [({"name": 5}, "name must be None or a non-empty string, got 5"),
                            ({"name": ""}, "name must be None or a non-empty string, got ''"),
                            ({"loss": 5}, "loss: loss must be a name, a config dict or a Loss, got int: 5"),
                            ({"seed": -1}, "seed must be None or an integer >= 0, got -1"),
                            ({"external_data": "yes"}, "external_data must be True or False, got 'yes'"),
                            ({"max_params": 1.5}, "max_params must be None or an integer >= 0, got 1.5")]:
        with pytest.raises(gn.ModelImportError, match=f"^from_onnx: {message}"):
            gn.from_onnx(path, **kwargs)


def test_max_params_bounds_an_import(tmp_path):
    """The limit counts the graph's weights and biases; None lifts it."""
    path = tmp_path / "m.onnx"
    g = gn.Sequential([gn.Input(30), gn.Dense(20, activation="relu"), gn.Dense(2)], seed=0)
    g.to_onnx(path)
    assert g.num_params == 30 * 20 + 20 + 20 * 2 + 2
    with pytest.raises(gn.ModelImportError, match=r"brings the model to 662 parameters, more than max_params=661"):
        gn.from_onnx(path, max_params=661)
    for limit in (662, None):
        back = gn.from_onnx(path, max_params=limit)
        x = np.random.default_rng(14).normal(size=(4, 30)).astype("float32")
        np.testing.assert_allclose(back.predict(x), g.predict(x), atol=TOL)


class _CountingNames(set):
    """A set of tensor names that counts the lookups in it."""

    lookups = 0

    def __contains__(self, name):
        type(self).lookups += 1
        return super().__contains__(name)


def test_tensor_names_sharing_a_base_are_found_in_one_pass():
    """The thousandth ``mean`` does not try ``mean``, ``mean_1``, ... again
    (thousands of normalised inputs each have one)."""
    from graphnet.interop.onnx_export import _Writer

    writer = _Writer({"mean_2"}, np.float32, None, None)
    writer.used = _CountingNames(writer.used)
    names = [writer.fresh("mean") for _ in range(500)]
    assert names[:4] == ["mean", "mean_1", "mean_3", "mean_4"] and len(set(names)) == 500
    assert _CountingNames.lookups <= 502, f"{_CountingNames.lookups} lookups for 500 names"


@pytest.mark.parametrize("to, name", [(TensorProto.BFLOAT16, "bfloat16"), (TensorProto.FLOAT8E4M3FN, "float8_e4m3fn")],
                         ids=["bfloat16", "float8_e4m3fn"])
def test_a_narrow_cast_is_told_by_its_onnx_name_where_onnx_reads_it_as_float32(tmp_path, monkeypatch, to, name):
    """An onnx without ml_dtypes (1.16, which graphnet's interop extra allows)
    gives bfloat16 and the float8 types numpy's float32: the cast of a layer's
    output was dropped (predicting unrounded), and a constant's was not rounded."""
    w = np.random.default_rng(8).normal(scale=10.0, size=(3, 4)).astype("float32")
    layer = [helper.make_node("MatMul", ["x", "w"], ["z"]),
             helper.make_node("Cast", ["z"], ["zh"], name="narrow", to=to),
             helper.make_node("Cast", ["zh"], ["y"], to=TensorProto.FLOAT)]
    constant = [helper.make_node("Cast", ["w"], ["wh"], name="narrow", to=to),
                helper.make_node("Cast", ["wh"], ["w32"], to=TensorProto.FLOAT),
                helper.make_node("MatMul", ["x", "w32"], ["y"])]
    mapped = helper.tensor_dtype_to_np_dtype

    def as_old_onnx(t):
        return np.dtype("float32") if t == to else mapped(t)

    for nodes, what in ((layer, f"rounds a layer's output to {name}, which keeps fewer digits"),
                        (constant, f"casts a constant to {name}, for which onnx .* has no numpy type \\(it "
                                   f"reads {name} as float32\\); upgrade onnx")):
        onnx.save(_model(nodes, [numpy_helper.from_array(w, "w")], [_info("x", 3)], [_info("y", 4)]),
                  tmp_path / "narrow.onnx")
        if what.startswith("rounds"):  # onnx's own mapping, for a start
            with pytest.raises(gn.ModelImportError, match=what):
                gn.from_onnx(tmp_path / "narrow.onnx")
        with monkeypatch.context() as patch:
            patch.setattr(helper, "tensor_dtype_to_np_dtype", as_old_onnx)
            with pytest.raises(gn.ModelImportError, match=rf"node 'narrow' \(Cast\): {what}"):
                gn.from_onnx(tmp_path / "narrow.onnx")


def test_a_float64_silu_is_written_without_sigmoid_and_imports_back(tmp_path):
    """onnxruntime 1.18 to 1.30 (which the interop extra allows) fuse z * Sigmoid(z)
    into QuickGelu, which has no double kernel, and refuse to load the model."""
    g = gn.Graph(seed=0, dtype="float64")
    g.add_input("x", 3)
    g.add_hidden("h", 4, activation="silu")
    g.add_output("y", 2)
    g.connect("x", "h")
    g.connect("h", "y")
    g.to_onnx(tmp_path / "silu64.onnx")
    ops = [node.op_type for node in onnx.load(tmp_path / "silu64.onnx").graph.node]
    assert "Sigmoid" not in ops and {"Exp", "Div"} <= set(ops)
    x = np.random.default_rng(3).normal(size=(6, 3)) * 300  # exp(-z) overflows for z < -709: z / inf = -0
    np.testing.assert_allclose(_run(tmp_path / "silu64.onnx", {"x": x})["y"], g.predict(x), rtol=1e-12, atol=1e-9)
    back = gn.from_onnx(tmp_path / "silu64.onnx")
    assert back.nodes["h"].activation.name == "silu"
    np.testing.assert_allclose(back.predict(x), g.predict(x), rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("to", ["FLOAT6E2M3", "FLOAT8E8M0", "FLOAT8E5M2", "BFLOAT16"])
def test_a_constant_cast_to_a_narrow_float_numpy_has_is_rounded(tmp_path, to):
    """onnx's own mapping (ml_dtypes) gives these types: the constant is rounded as ONNX rounds it."""
    to = getattr(TensorProto, to, None)
    if to is None:
        pytest.skip("this onnx has no such type")
    if np.dtype(helper.tensor_dtype_to_np_dtype(to)) == np.float32:
        pytest.skip("this onnx (without ml_dtypes) reads the type as float32: the constant is refused")
    w = np.array([[0.3, 1.3], [1.7, 0.77]], np.float32)
    nodes = [helper.make_node("Cast", ["w"], ["wh"], name="narrow", to=to),
             helper.make_node("Cast", ["wh"], ["w32"], to=TensorProto.FLOAT),
             helper.make_node("MatMul", ["x", "w32"], ["y"])]
    onnx.save(_model(nodes, [numpy_helper.from_array(w, "w")], [_info("x", 2)], [_info("y", 2)]), tmp_path / "c.onnx")
    rounded = w.astype(helper.tensor_dtype_to_np_dtype(to)).astype(np.float32)
    assert not np.array_equal(rounded, w)
    x = np.eye(2, dtype=np.float32)
    np.testing.assert_array_equal(gn.from_onnx(tmp_path / "c.onnx").predict(x), x @ rounded)
