"""Hostile Keras files and specs (tests/hostile_keras.py): each is refused with a
graphnet error naming what is wrong, in bounded time and memory, reading
nothing outside the file it was given."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

pytest.importorskip("h5py", reason="the interop extra (h5py) is not installed")

from hostile_keras import CASES, forward, good_h5, good_keras
from modelfiles import bounded

import graphnet as gn

SECONDS = 2.0
PEAK_BYTES = 32 << 20
POSIX_ONLY = {"dev_zero", "fifo", "spec_fifo"}


@pytest.mark.parametrize("good", [good_keras, good_h5], ids=["keras", "h5"])
def test_the_untampered_files_import_exactly(good, tmp_path):
    """The corpus's files differ from these only in the hostile part."""
    g = gn.from_keras(good(tmp_path))
    x = np.random.default_rng(0).normal(size=(16, 3))
    np.testing.assert_allclose(g.predict(x), forward(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_input_is_refused_cleanly(name, tmp_path):
    if name in POSIX_ONLY and sys.platform == "win32":
        pytest.skip("no /dev/zero or FIFOs on Windows")
    call, error, pattern = CASES[name](tmp_path)
    outcome, seconds, peak = bounded(call)
    assert isinstance(outcome, error), repr(outcome)
    message = str(outcome)
    assert re.search(pattern, message), message
    assert len(message) < 1000
    assert seconds < SECONDS and peak < PEAK_BYTES, (seconds, peak)
