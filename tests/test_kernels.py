"""The optional numba kernels (graphnet._kernels): bit for bit the numpy passes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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


def test_ctrl_c_during_the_compile_arrives_when_it_is_done(monkeypatch):
    """prepare() holds SIGINT back while numba works and delivers it afterwards,
    to the handler that was there."""
    pytest.importorskip("numba", reason="the kernels need numba")
    kernels.prepare("float64")  # numba imported
    steps = []

    def compile_with_ctrl_c(dtype):
        steps.append("started")
        signal.raise_signal(signal.SIGINT)  # Ctrl-C in the middle of numba's work
        steps.append(sum(range(1000)))  # bytecodes run: Python's handler would have raised by now
        steps.append("done")

    monkeypatch.setattr(kernels, "_compile", compile_with_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        kernels.prepare("float16")  # a dtype not compiled yet
    assert steps == ["started", 499500, "done"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_kernel_that_fails_to_compile_leaves_the_numpy_passes(monkeypatch, caplog):
    pytest.importorskip("numba", reason="the kernels need numba")
    kernels.prepare("float64")

    def broken(*args):
        raise RuntimeError("LLVM is unhappy")

    monkeypatch.setattr(kernels, "_adam_kernel", broken)
    monkeypatch.setattr(kernels, "_adam_step_kernel", None)
    monkeypatch.setattr(kernels, "_adam_moments_kernel", None)
    monkeypatch.setattr(kernels, "_bias_relu_kernel", kernels._bias_relu_kernel)  # restored after the test
    monkeypatch.setattr(kernels, "_relu_backward_kernel", kernels._relu_backward_kernel)
    monkeypatch.setattr(kernels, "_compiled", set())
    with caplog.at_level("WARNING", logger="graphnet._kernels"):
        assert kernels.prepare("float32") is False
    assert "could not compile graphnet's Adam kernels for float32 (RuntimeError: LLVM is unhappy)" in caplog.text
    assert not kernels.available()
    model, _, _ = _trained("float32")  # trains on the numpy passes
    monkeypatch.setattr(kernels, "ENABLED", False)
    reference, _, _ = _trained("float32")
    for key, value in reference.get_weights().items():
        assert np.array_equal(model.get_weights()[key], value), key

# A first fit in a fresh process (numba imported and the kernels compiled on
# the way), interrupted by the test at some moment; then, whatever happened,
# the same model trains on, and a fresh one trains in the same process.
_FIRST_FIT = """
import signal
import numpy as np
import graphnet as gn
from graphnet import _kernels as kernels

rng = np.random.default_rng(0)
x, y = rng.normal(size=(2000, 20)), rng.integers(0, 3, 2000)
model = lambda: gn.Sequential([gn.Input(20), gn.Dense(64, activation="relu"), gn.Dense(3, activation="softmax")],
                              seed=0)
first = model()
print("ready", flush=True)
try:
    first.fit(x, y, epochs=30, batch_size=32, optimizer="adam", verbose=0)
    outcome = "finished"
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a late Ctrl-C must not reach the second fit
except KeyboardInterrupt:
    outcome = "interrupted"
signal.signal(signal.SIGINT, signal.SIG_IGN)
again = first.fit(x[:400], y[:400], epochs=1, batch_size=32, verbose=0)  # the interrupted model trains on
assert np.isfinite(again.history["loss"]).all()
second = model().fit(x[:400], y[:400], epochs=1, batch_size=32, optimizer="adam", verbose=0)
print(outcome, kernels.available(), repr(second.history["loss"][-1]), flush=True)
"""


@pytest.mark.slow
def test_ctrl_c_during_a_first_fit_never_leaves_numba_half_loaded(tmp_path):
    """Ctrl-C at random moments of a process's first fit, with an empty numba
    cache (so numba imports and compiles inside that fit): each process either
    finishes the fit or gets a KeyboardInterrupt from it; then the interrupted
    model trains on, and a second model trains with the compiled kernels to
    the loss this process gets."""
    pytest.importorskip("numba", reason="the kernels need numba")
    rng = np.random.default_rng(8)
    data = np.random.default_rng(0)
    x, y = data.normal(size=(2000, 20))[:400], data.integers(0, 3, 2000)[:400]  # as the process draws them
    expected = gn.Sequential([gn.Input(20), gn.Dense(64, activation="relu"), gn.Dense(3, activation="softmax")],
                             seed=0).fit(x, y, epochs=1, batch_size=32, optimizer="adam", verbose=0)
    assert kernels.available()
    root = str(Path(gn.__file__).resolve().parents[1])
    outcomes = []
    for trial in range(12):
        env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / f"numba{trial}"), "PYTHONPATH": root}
        process = subprocess.Popen([sys.executable, "-c", _FIRST_FIT], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env=env)
        try:
            assert process.stdout.readline().strip() == "ready", process.stderr.read()
            # The first fit: ~0.5-1.5 s of numba's import and compile, then ~0.3 s of training.
            delay = float(rng.uniform(0.0, 2.0))
            time.sleep(delay)
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=60)
        finally:
            process.kill()
        assert process.returncode == 0, f"Ctrl-C after {delay:.3f} s: exit {process.returncode}\n{err[-3000:]}"
        outcome, available, loss = out.split()
        assert available == "True", f"Ctrl-C after {delay:.3f} s left the kernels off\n{err[-3000:]}"
        assert float(loss) == expected.history["loss"][-1]
        outcomes.append(outcome)
    assert "interrupted" in outcomes


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_relu_kernels_give_the_numpy_passes_bits(dtype, rng):
    """A relu node's bias-and-activation pass and its backward pass: the same
    bits as numpy's add, maximum, greater and multiply, for the awkward
    values too (NaN, infinities, -0.0)."""
    pytest.importorskip("numba", reason="the kernels need numba")
    bias_relu, relu_backward = kernels.relu_kernels(dtype)
    special = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-45, -1e-45], dtype=dtype)
    z = rng.normal(size=(9, 7)).astype(dtype)
    z[0, :] = special
    b = rng.normal(size=7).astype(dtype)
    b[1] = -0.0
    expected = z.copy()
    expected += b
    np.maximum(expected, 0, out=expected)
    fused = z.copy()
    bias_relu(fused, b)
    assert fused.tobytes() == expected.tobytes()
    grad = rng.normal(size=(9, 7)).astype(dtype)
    grad[1, :] = special
    grad[0, :] = special
    a = fused
    mask = np.greater(a, 0).astype(dtype)
    with np.errstate(invalid="ignore"):  # inf times a 0 of the mask: NaN, as intended
        expected_grad = np.multiply(grad, mask)
    got = grad.copy()
    relu_backward(a, got)
    assert got.tobytes() == expected_grad.tobytes()


def test_where_numba_cannot_cache_the_kernels_are_compiled_per_process(monkeypatch, tmp_path):
    # A read-only install run by a user without a home: numba refuses cache=True
    # when the decorator is applied (RuntimeError "no locator available").
    pytest.importorskip("numba", reason="the kernels need numba")
    script = """
import logging, sys
import numba.core.dispatcher
import numpy as np
def refuse(self):
    raise RuntimeError(f"cannot cache function {self.py_func.__qualname__!r}: no locator available for file 'x'")
numba.core.dispatcher.Dispatcher.enable_caching = refuse
logging.basicConfig(level=logging.INFO, format="%(message)s")
import graphnet as gn
from graphnet import _kernels
g = gn.Sequential([gn.Input(3), gn.Dense(4, activation="relu"), gn.Dense(1)], seed=0)
first = g.predict(np.ones((2, 3)))
rng = np.random.default_rng(0)
g.fit(rng.normal(size=(32, 3)), rng.normal(size=(32, 1)), epochs=2, batch_size=8, optimizer="adam", verbose=0)
assert _kernels._adam_kernel is not None and _kernels._dag_forward_kernel is not None
np.save(sys.argv[1], np.concatenate([first.ravel(), *(w.ravel() for w in g.get_weights().values())]))
"""
    out = tmp_path / "weights.npy"
    done = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "numba cannot cache graphnet's kernels here" in done.stderr
    monkeypatch.setattr(kernels, "ENABLED", False)  # the numpy passes: the same weights, bit for bit
    g = gn.Sequential([gn.Input(3), gn.Dense(4, activation="relu"), gn.Dense(1)], seed=0)
    first = g.predict(np.ones((2, 3)))
    rng = np.random.default_rng(0)
    g.fit(rng.normal(size=(32, 3)), rng.normal(size=(32, 1)), epochs=2, batch_size=8, optimizer="adam", verbose=0)
    expected = np.concatenate([first.ravel(), *(w.ravel() for w in g.get_weights().values())])
    np.testing.assert_array_equal(np.load(out), expected)
