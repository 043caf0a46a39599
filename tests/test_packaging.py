"""What ``pyproject.toml`` promises a user who installs graphnet: the extras,
the numba marker, the licence shipped with the package."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
#: Extras that are not features: the test, docs and benchmark tools, and cuda (a GPU's toolkit to match).
NOT_FEATURES = {"test", "dev", "docs", "bench", "cuda", "all"}


def test_all_holds_every_feature_extra_but_cuda():
    extras = PROJECT["optional-dependencies"]
    (everything,) = extras["all"]
    named = set(everything.removeprefix("graphnet[").removesuffix("]").split(","))
    assert named == set(extras) - NOT_FEATURES


@pytest.mark.parametrize(("machine", "wheels"), [
    ("x86_64", True), ("AMD64", True), ("aarch64", True), ("arm64", True),
    ("x86", False), ("arm", False), ("i686", False), ("ppc64le", False),
])
def test_numba_is_asked_for_on_the_machines_it_has_wheels_for(machine, wheels):
    markers = pytest.importorskip("packaging.requirements")
    (numba,) = [markers.Requirement(d) for d in PROJECT["dependencies"] if d.startswith("numba")]
    assert numba.marker.evaluate({"platform_machine": machine, "python_version": "3.12"}) is wheels
    assert numba.marker.evaluate({"platform_machine": machine, "python_version": "3.14"}) is False


def test_the_licence_text_is_shipped():
    assert PROJECT["license"] == "MIT"
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c)" in text
    shipped = [path for pattern in PROJECT["license-files"] for path in ROOT.glob(pattern)]
    assert {p.name for p in shipped} == {"LICENSE", "svg-pan-zoom.LICENSE"}
