"""The optional numba kernels (graphnet._kernels): bit for bit the numpy passes."""

from __future__ import annotations

import numpy as np
import pytest

import graphnet as gn
from graphnet import _kernels as kernels


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


def _trained(dtype="float32", optimizer="adam", **fit):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 10)).astype(dtype)
    y = rng.integers(0, 4, 120)
    model = gn.Sequential([gn.Input(10), gn.Dense(16, activation="relu"), gn.Dense(4, activation="softmax")],
                          seed=1, dtype=dtype)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, optimizer=optimizer, **fit)
    return model, x, y


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_two_pass_adam_keeps_one_copy_of_the_moments_and_the_passes_numbers(monkeypatch, dtype):
    """fit's checked steps take the step-then-moments kernels: the optimizer
    never makes its second copy of m and v, and weights and moments are the
    plain numpy passes' bit for bit, as the one-pass kernel's (train_step)."""
    pytest.importorskip("numba", reason="the kernels need numba")
    monkeypatch.setattr(gn.optimizers, "IN_PLACE_FROM", 0)  # this small net too
    two_pass, _, _ = _trained(dtype)
    assert two_pass.optimizer._proposed == {}  # never needed
    monkeypatch.setattr(kernels, "ENABLED", False)
    passes, _, _ = _trained(dtype)
    assert set(passes.optimizer._proposed) == {"m", "v"}
    for key, value in passes.get_weights().items():
        assert np.array_equal(two_pass.get_weights()[key], value), key
    for slot in ("m", "v"):
        assert np.array_equal(two_pass.optimizer.slots[slot], passes.optimizer.slots[slot]), slot
    assert two_pass.optimizer.iterations == passes.optimizer.iterations == 16


def test_a_refused_two_pass_step_leaves_the_moments_as_they_were(monkeypatch):
    pytest.importorskip("numba", reason="the kernels need numba")
    monkeypatch.setattr(gn.optimizers, "IN_PLACE_FROM", 0)
    model, x, y = _trained()
    optimizer = model.optimizer
    before = {k: v.copy() for k, v in optimizer.slots.items()}
    weights, iterations = model.get_weights(), optimizer.iterations
    optimizer.lr = 1e39  # a finite float64, inf as float32: the step overflows
    with pytest.raises(gn.TrainingError, match="update of .* is not finite"):
        model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert optimizer.iterations == iterations and optimizer._proposed == {}
    for slot, value in before.items():
        assert np.array_equal(optimizer.slots[slot], value), slot
    for key, value in weights.items():
        assert np.array_equal(model.get_weights()[key], value), key


def test_a_small_net_keeps_the_one_pass_kernel():
    pytest.importorskip("numba", reason="the kernels need numba")
    model, _, _ = _trained()
    assert model.num_params < gn.optimizers.IN_PLACE_FROM and set(model.optimizer._proposed) == {"m", "v"}
