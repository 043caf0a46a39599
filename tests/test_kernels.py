"""The optional numba kernels (graphnet.kernels): bit for bit the numpy passes."""

from __future__ import annotations

import numpy as np
import pytest

import graphnet as gn
from graphnet import kernels


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_fused_adam_gives_the_numpy_passes_weights_bit_for_bit(monkeypatch, dtype, optimizer):
    pytest.importorskip("numba", reason="the fused kernel needs numba (graphnet[fast])")
    def fit(enabled):
        monkeypatch.setattr(kernels, "ENABLED", enabled)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(120, 10)).astype(dtype)
        y = rng.integers(0, 4, 120)
        model = gn.Sequential(
            [gn.Input(10), gn.Dense(16, activation="relu"), gn.Dense(4, activation="softmax")],
            seed=1, dtype=dtype,
        )
        model.fit(x, y, epochs=3, batch_size=16, verbose=0, optimizer=optimizer)
        return model.get_weights()

    fused, passes = fit(True), fit(False)
    for key in fused:
        assert np.array_equal(fused[key], passes[key]), key
