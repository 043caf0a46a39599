"""Every example runs on its own and reports success."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(name: str) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_xor():
    assert run("xor.py").strip().endswith("solved")


@pytest.mark.slow
def test_breast_cancer():
    pytest.importorskip("sklearn")
    out = run("breast_cancer.py")
    mean = float(out.strip().rsplit(" ", 1)[-1])
    assert mean >= 0.955


@pytest.mark.slow
def test_multi_io_digits():
    pytest.importorskip("sklearn")
    out = run("multi_io_digits.py")
    last = out.strip().splitlines()[-1]
    digit = float(last.split("digit ")[1].split(",")[0])
    assert digit >= 0.96, last


def test_surgery():
    """Widening and deepening a trained model leaves its loss where it was, and
    the grown model trains on to a lower loss than the small one."""
    out = run("surgery.py").strip().splitlines()
    change = float(out[1].split("changed by ")[1].split(" ")[0])
    assert change <= 1e-5  # float32: the same loss within rounding
    ratio = float(out[2].split(", ")[1].split("x")[0])
    assert ratio < 1.25 and out[2].endswith("(no jump)")  # with the old Adam state: about 50x
    after, plain = (float(v.split()[-1].rstrip(",")) for v in out[3].split(": ")[1].split(", "))
    assert after < 0.75 * plain, out[3]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program is not installed")
def test_what_changed(tmp_path):
    pytest.importorskip("sklearn")
    result = subprocess.run([sys.executable, str(EXAMPLES / "what_changed.py"), str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "+ refine" in result.stdout and "~ shared        size 24 → 32" in result.stdout
    noise = float(result.stdout.split("the noise input has ")[1].split("%")[0])
    assert noise < 5  # pure noise barely moves the prediction
    assert {p.name for p in tmp_path.iterdir()} == {"diff.png", "attributions.png", "model.html"}


def test_wide_and_deep():
    pytest.importorskip("vega_datasets")
    pytest.importorskip("pandas")
    out = run("wide_and_deep.py").strip().splitlines()
    rmse, baseline = (float(v) for v in out[-1].replace(")", "").split()[2::5][:2])
    assert rmse < 0.45 * baseline, out[-1]  # about 3.2 mpg against 8.5 for the mean
