"""Shared checks for the import tests: an imported graph must work like any
other graph (train, save, load, export to ONNX again)."""

from __future__ import annotations

import importlib.util

import numpy as np

import graphnet as gn


def targets(g: gn.Graph, rows: int, rng: np.random.Generator) -> dict:
    """Plausible targets for every output, by its loss."""
    y = {}
    for name in g.outputs:
        node = g.nodes[name]
        if node.loss.name == "categorical_crossentropy":
            y[name] = rng.integers(0, node.size, size=rows)
        elif node.loss.name == "binary_crossentropy":
            y[name] = rng.integers(0, 2, size=(rows, node.size)).astype(float)
        else:
            y[name] = rng.normal(size=(rows, node.size))
    return y


def _predictions(g: gn.Graph, x) -> dict:
    out = g.predict(x)
    return out if isinstance(out, dict) else {g.outputs[0]: out}


def trains_saves_exports(g: gn.Graph, x, tmp_path, opset: int = 17) -> gn.Graph:
    """Fit a few steps, save and load (same predictions), export to ONNX and
    check it with onnxruntime where installed; returns the loaded graph."""
    rng = np.random.default_rng(0)
    x = x if isinstance(x, dict) else {g.inputs[0]: x}
    rows = len(next(iter(x.values())))
    y = targets(g, rows, rng)
    before = g.get_weights()
    history = g.fit(x, y, epochs=2, batch_size=max(2, rows // 2), optimizer={"name": "adam", "lr": 0.01}, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    after = g.get_weights()
    assert any(not np.array_equal(before[k], after[k]) for k in before)  # it trained
    path = g.save(tmp_path / f"{g.name}.gnet")
    loaded = gn.load(path)
    expected = _predictions(g, x)
    got = _predictions(loaded, x)
    assert expected.keys() == got.keys() and all(np.array_equal(expected[k], got[k]) for k in expected)
    assert loaded.inputs == g.inputs and loaded.outputs == g.outputs
    loaded.to_onnx(tmp_path / f"{g.name}.onnx", opset=opset)
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime as ort

        session = ort.InferenceSession(str(tmp_path / f"{g.name}.onnx"), providers=["CPUExecutionProvider"])
        assert [o.name for o in session.get_outputs()] == g.outputs
        feeds = {k: np.asarray(v, dtype=g.dtype) for k, v in x.items()}
        for name, value in zip(g.outputs, session.run(None, feeds)):
            np.testing.assert_allclose(value, expected[name], atol=1e-5, rtol=1e-5)
    return loaded
