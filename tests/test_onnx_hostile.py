"""gn.from_onnx against hostile and invalid files (tests/hostile_onnx.py): each
is refused with a clean graphnet error, or imported and predicting as
onnxruntime does, within its time and memory budget."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the interop extra (onnx) is not installed")
ort = pytest.importorskip("onnxruntime", reason="the interop extra (onnxruntime) is not installed")

import hostile_onnx
from hostile_onnx import CASES, limits

import graphnet as gn


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_onnx(case, tmp_path):
    try:
        path = case.make(tmp_path)
    except NotImplementedError as exc:
        pytest.skip(str(exc))
    if path == "/dev/zero" and not os.path.exists(path):
        pytest.skip("no /dev/zero here")
    outcome = None
    with limits(case.seconds, case.megabytes) as spent:
        try:
            graph = gn.from_onnx(path, **case.kwargs)
        except gn.GraphError as exc:
            outcome = exc
    assert spent["peak"] <= case.megabytes * 2**20, (
        f"{case.name}: peak {spent['peak'] / 2**20:.1f} MB over its {case.megabytes} MB ({outcome})")
    if case.error is not None:
        assert isinstance(outcome, case.error), f"{case.name}: expected {case.error.__name__}, got {outcome!r}"
        assert re.search(case.match, str(outcome)), f"{case.name}: {outcome}"
        return
    assert outcome is None, f"{case.name}: {outcome}"
    rng = np.random.default_rng(0)
    # Quarter steps: the chains' sums and doublings are exact in float32 either way.
    feeds = {name: (rng.integers(-8, 8, size=(4, n)) / 4).astype("float32") for name, n in case.inputs.items()}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    found = graph.predict(feeds if len(feeds) > 1 else next(iter(feeds.values())))
    found = found if isinstance(found, dict) else {graph.outputs[0]: found}
    assert list(found) == list(expected)
    for name, values in expected.items():
        np.testing.assert_allclose(found[name], values, rtol=1e-5, atol=1e-5, err_msg=name)


def test_the_corpus_writes_its_files(tmp_path):
    """The generator, run as a script, writes one file per case it can."""
    written = hostile_onnx.write_all(tmp_path)
    assert len(written) >= len(CASES) - 6 and all(p.exists() for p in written)
