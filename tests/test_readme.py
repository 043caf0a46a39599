"""The README's example runs as written, and does what its comments say."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def test_the_readme_stays_a_front_door():
    assert len(README.read_text().splitlines()) <= 200
    assert "make demo" in README.read_text() and "make test" in README.read_text()


@pytest.mark.skipif(shutil.which("dot") is None, reason="the example draws with Graphviz's dot")
def test_the_first_graph_runs(tmp_path, monkeypatch):
    pytest.importorskip("sklearn")
    blocks = BLOCK.findall(README.read_text())
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    history, features, g = namespace["history"], namespace["features"], namespace["g"]
    assert history.history["val_digit_accuracy"][-1] > 0.9
    assert 0.5 < history.history["val_even_auc"][-1] <= 1.0
    assert features.shape == (1797, 64)
    assert (tmp_path / "digits.png").stat().st_size > 0
    loaded = namespace["gn"].load(tmp_path / "digits.gnet")
    x = namespace["x"]
    assert (loaded.predict(x)["digit"] == g.predict(x)["digit"]).all()
