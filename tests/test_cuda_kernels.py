"""The fused CUDA kernels (graphnet._cuda) against the generic device code
they replace (graphnet.backend.DeviceBackend, the optimizers' xp passes).

Needs CuPy and a GPU: skipped everywhere else (CI has none); run by
benchmarks/gpu_check.sh on a GPU machine.
"""

from __future__ import annotations

import numpy as np
import pytest

import graphnet as gn
from graphnet import backend

try:
    CUDA = backend.get("cuda")
except Exception as exc:  # GraphError: no CuPy or no GPU
    pytest.skip(f"needs CuPy and a GPU ({exc})", allow_module_level=True)

cupy = CUDA.xp
GENERIC = backend.DeviceBackend(cupy, CUDA.special)


def _random(rng, n, dtype, scale=1.0):
    return cupy.asarray((rng.standard_normal(n) * scale).astype(dtype))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_adam_kernel_is_the_optimizers_passes(rng, dtype):
    n = 100_003
    g, m = _random(rng, n, dtype), _random(rng, n, dtype, 0.1)
    v = cupy.abs(_random(rng, n, dtype, 0.01))
    args = (0.9, 0.999, 1e-3 * 0.7, 1e-8)
    fused = [cupy.full(n, np.nan, dtype) for _ in range(3)]
    assert CUDA.adam(g, m, v, *fused, *args)
    # the plain passes, as Adam.update writes them
    m_next = (m - g) * np.dtype(dtype).type(args[0]) + g
    g2 = g * g
    v_next = (v - g2) * np.dtype(dtype).type(args[1]) + g2
    out = m_next / (cupy.sqrt(v_next) + np.dtype(dtype).type(args[3])) * np.dtype(dtype).type(args[2])
    tolerance = {"float32": 1e-6, "float64": 1e-14}[dtype]
    for got, want in zip(fused, (m_next, v_next, out)):
        np.testing.assert_allclose(cupy.asnumpy(got), cupy.asnumpy(want), rtol=tolerance, atol=0)


@pytest.mark.parametrize("values", [(1.0, 2.0, 3.0), (np.inf, 2.0, 3.0), (1.0, np.nan, 3.0),
                                    (1.0, 2.0, np.inf), (np.nan, np.inf, np.nan)])
def test_the_guard_kernel_is_the_generic_guard(values):
    seen = []
    for made in (CUDA, GENERIC):
        status, oks = made.new_status(), []
        for step, triple in enumerate([(0.5, 1.0, 1.0), values, (0.5, 1.0, 1.0)]):
            loss, grad_sq, update_sq = (cupy.asarray(np.float32(v)) for v in triple)
            oks.append(bool(made.guard(status, loss, grad_sq, update_sq, step)[0]))
        seen.append((oks, cupy.asnumpy(status).tolist()))
    assert seen[0] == seen[1]
    finite = all(np.isfinite(values))
    assert seen[0][0] == ([True, True, True] if finite else [True, False, False])


@pytest.mark.parametrize("ok", [True, False])
def test_apply_and_restore_are_the_generic_ones(rng, ok):
    n = 10_007
    flag = cupy.asarray(np.array([ok]))
    results = []
    for made in (CUDA, GENERIC):
        params, update = _random(rng, n, "float32"), _random(rng, n, "float32")
        update[5] = np.nan if not ok else update[5]
        current, previous = _random(rng, n, "float32"), _random(rng, n, "float32")
        before = params.copy()
        made.apply(params, update, flag, [(current, previous)])
        results.append((before, params, update, current, previous))
    for before, params, update, current, previous in results:
        if ok:
            np.testing.assert_array_equal(cupy.asnumpy(params), cupy.asnumpy(before - update))
        else:
            np.testing.assert_array_equal(cupy.asnumpy(params), cupy.asnumpy(before))
            np.testing.assert_array_equal(cupy.asnumpy(current), cupy.asnumpy(previous))


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh"])
def test_the_fused_backward_is_the_activations_own(rng, name):
    activation = gn.activations.get(name)
    z = _random(rng, 3000, "float32").reshape(100, 30)
    a = activation.forward(z, xp=cupy)
    grad = _random(rng, 3000, "float32").reshape(100, 30)
    grad[0, 0] = np.nan  # a NaN gradient stays NaN, also where the derivative is 0
    want = activation.backward(a.copy(), grad.copy(), xp=cupy)
    got = CUDA.fused_backward(activation)(a.copy(), grad.copy())
    np.testing.assert_array_equal(cupy.asnumpy(got), cupy.asnumpy(want))


def test_the_fused_deltas_are_the_losses_own(rng):
    a = cupy.asarray(rng.random((64, 5)).astype(np.float32))
    labels = cupy.asarray(rng.integers(0, 5, 64))
    loss = gn.losses.get("categorical_crossentropy")
    np.testing.assert_array_equal(cupy.asnumpy(CUDA.fused_delta(loss)(labels, a)),
                                  cupy.asnumpy(loss.delta(labels, a, xp=cupy)))
    targets = cupy.asarray(rng.integers(0, 2, (64, 5)).astype(np.float32))
    loss = gn.losses.get("binary_crossentropy")
    np.testing.assert_array_equal(cupy.asnumpy(CUDA.fused_delta(loss)(targets, a)),
                                  cupy.asnumpy(loss.delta(targets, a, xp=cupy)))
    assert CUDA.fused_delta(gn.losses.get("mse")) is None
