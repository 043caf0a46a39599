"""Compiled CPU kernels (numba) for the few steps numpy cannot fuse.

Adam is ten whole-buffer numpy passes; each is memory-bound, so on W1 of the
benchmarks (235,146 parameters) the update costs ~450 µs a step, a third of
it. The same arithmetic as one loop compiled by numba reads and writes each
element once: ~140 µs. numba is a core dependency wherever it has wheels, so
a plain ``pip install graphnet`` uses it (through the CPU backend,
:meth:`graphnet.backend.CPUBackend.adam`); without numba (or with
:data:`ENABLED` set to False) the optimizers keep their plain-numpy passes.
On a GPU the same kernel is a CuPy ``ElementwiseKernel`` (:mod:`graphnet._cuda`).
:func:`dag_forward` runs a whole inference forward in one call, for
``predict``'s calls of a few rows (:mod:`graphnet._compiled_forward`).

numba is imported and the kernels compiled by :func:`prepare`, which Adam
calls when it is bound to a graph's parameters, before the training loop's
first step. Ctrl-C is held back while that runs: a ``KeyboardInterrupt``
raised inside numba's import or compiler leaves it half-initialised for the
rest of the process (a later compile fails with ``duplicate registration``,
or the process crashes), so the interrupt is delivered when the import and
compile are done, and ``fit`` stops there as it would anywhere else. If the
import or the compile fails, a warning says so and the optimizers keep their
plain-numpy passes. A fork waits for a compile under way in another thread
(:func:`_compiles_across_fork`).

The kernel does the numpy path's float operations in the same order and the
same precision (scalars are cast to the parameters' dtype; no fast-math, so
no fused multiply-adds), so both paths give bit-for-bit the same weights.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading

import numpy as np

__all__ = ["ENABLED", "available", "prepare", "adam", "adam_step", "adam_moments", "relu_kernels", "dag_forward",
           "ACTIVATION_CODES"]

logger = logging.getLogger(__name__)

#: Set to False to force the plain-numpy optimizer passes (e.g. to compare).
ENABLED = True

_adam_kernel = None
_adam_step_kernel = None
_adam_moments_kernel = None
_bias_relu_kernel = None
_relu_backward_kernel = None
_dag_forward_kernel = None
_loaded = False
_compiled: set[np.dtype] = set()  # dtypes prepare() has compiled (or tried to)
_forward_signatures: dict[tuple, bool] = {}  # (inputs, outputs, dtype) -> whether dag_forward compiled


@contextlib.contextmanager
def _interrupts_held():
    """Hold SIGINT back for the span of the block; deliver it at the end to
    the handler that was installed (Python's raises KeyboardInterrupt).

    A handler that only records is swapped in, rather than masking the
    signal: a mask on the main thread does not stop another thread from
    receiving the signal and Python from raising in the main thread anyway.
    Handlers run in the main thread only, so another thread needs nothing.
    """
    previous = signal.getsignal(signal.SIGINT)
    if (threading.current_thread() is not threading.main_thread()
            or previous is None or previous is signal.SIG_IGN):  # None: not installed from Python
        yield
        return
    caught = []
    signal.signal(signal.SIGINT, lambda signum, frame: caught.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            if previous is signal.SIG_DFL:
                signal.raise_signal(signal.SIGINT)
            else:
                previous(signal.SIGINT, caught[0])


def prepare(dtype) -> bool:
    """Import numba and compile the kernels for ``dtype`` now (Ctrl-C held
    back meanwhile, see the module notes), so that no training step does.

    Importing numba costs ~0.1-0.3 s, a first compile ~0.4 s (cached on disk
    afterwards); a second call for the same dtype costs nothing.

    Parameters
    ----------
    dtype : numpy dtype
        Of the parameters the kernels will update.

    Returns
    -------
    bool
        Whether the kernels will be used (as :func:`available`).

    Raises
    ------
    KeyboardInterrupt
        When Ctrl-C was pressed meanwhile, once the import and compile are done.
    """
    if not ENABLED:
        return False
    dtype = np.dtype(dtype)
    if _loaded and (dtype in _compiled or _adam_kernel is None):
        return _adam_kernel is not None
    with _interrupts_held():
        if not _loaded:
            _load()
        if _adam_kernel is not None and dtype not in _compiled:
            _compile(dtype)
    return _adam_kernel is not None


def _compile(dtype: np.dtype) -> None:
    """Call each kernel once on one element of ``dtype``: numba compiles (or
    loads from its cache) the version every later call of that dtype uses."""
    global _adam_kernel, _adam_step_kernel, _adam_moments_kernel, _bias_relu_kernel, _relu_backward_kernel
    _compiled.add(dtype)
    if dtype not in (np.float32, np.float64):
        return  # graphnet's parameters are float32 or float64
    a, b, c, d, e, f = (np.zeros(1, dtype=dtype) for _ in range(6))
    beta1, beta2, step, eps = (dtype.type(x) for x in (0.9, 0.999, 1e-3, 1e-8))
    rows = np.zeros((1, 1), dtype=dtype)
    try:
        _adam_kernel(a, b, c, d, e, f, beta1, beta2, step, eps)
        _adam_step_kernel(a, b, c, f, beta1, beta2, step, eps)
        _adam_moments_kernel(a, b, c, beta1, beta2)
        _bias_relu_kernel(rows, a)
        _relu_backward_kernel(rows, rows.copy())
    except Exception as exc:  # a compiler that fails must not stop training
        logger.warning("numba could not compile graphnet's Adam kernels for %s (%s: %s): optimizers "
                       "use numpy passes", dtype, type(exc).__name__, exc)
        _adam_kernel = _adam_step_kernel = _adam_moments_kernel = None
        _bias_relu_kernel = _relu_backward_kernel = None


def _jit(numba):
    """numba's ``njit`` as the kernels take it: cached on disk where numba can
    keep a cache for this module (beside it, or in the user's cache folder),
    compiled afresh in each process where it cannot (a read-only install run
    by a user without a home: numba refuses ``cache=True`` there).

    error_model="numpy": no ZeroDivisionError branch per division, which would
    keep the loop from being vectorised (3x slower).
    """
    options = {"nogil": True, "error_model": "numpy"}

    def probe():  # defined in this file, as the kernels are: the same cache locator
        return 0

    try:
        numba.njit(cache=True, **options)(probe)
    except Exception as exc:  # RuntimeError: "cannot cache function ...: no locator available"
        logger.info("numba cannot cache graphnet's kernels here (%s): each process compiles them", exc)
        return numba.njit(**options)
    return numba.njit(cache=True, **options)


def _load() -> None:
    """Import numba and define the kernels (numba compiles each on its first call)."""
    global _adam_kernel, _adam_step_kernel, _adam_moments_kernel, _bias_relu_kernel, _relu_backward_kernel, _loaded
    global _dag_forward_kernel
    _loaded = True
    try:
        import numba
    except ImportError:
        logger.debug("numba is not installed: optimizers use numpy passes")
        return
    except Exception as exc:  # a broken install must not stop training
        logger.warning("numba failed to import (%s: %s): optimizers use numpy passes", type(exc).__name__, exc)
        return
    _compiles_across_fork()
    jit = _jit(numba)

    @jit
    def adam_kernel(grads, m, v, m_next, v_next, out, beta1, beta2, step_size, eps):
        for i in range(grads.shape[0]):
            g = grads[i]
            m_i = beta1 * (m[i] - g) + g  # b1 m + (1 - b1) g, as the numpy passes write it
            g2 = g * g
            v_i = beta2 * (v[i] - g2) + g2
            m_next[i] = m_i
            v_next[i] = v_i
            out[i] = (m_i / (np.sqrt(v_i) + eps)) * step_size

    # The same step in two passes, for an update that keeps no second copy of
    # the moments: the step, then, once it is accepted, the moments in place,
    # computed with the very same operations. The step is multiplied by
    # 1 + (v' - v'): exactly 1 for a finite v' (the same bits), NaN for an
    # infinite one, so a non-finite new moment shows in the step (m' already
    # does). A reduction instead would keep the loop from vectorising (3.5x).
    @jit
    def adam_step_kernel(grads, m, v, out, beta1, beta2, step_size, eps):
        one = grads.dtype.type(1)
        for i in range(grads.shape[0]):
            g = grads[i]
            m_i = beta1 * (m[i] - g) + g
            g2 = g * g
            v_i = beta2 * (v[i] - g2) + g2
            out[i] = ((m_i / (np.sqrt(v_i) + eps)) * step_size) * (one + (v_i - v_i))

    @jit
    def adam_moments_kernel(grads, m, v, beta1, beta2):
        for i in range(grads.shape[0]):
            g = grads[i]
            m[i] = beta1 * (m[i] - g) + g
            g2 = g * g
            v[i] = beta2 * (v[i] - g2) + g2

    # A relu node's bias and activation in one pass over z, and its backward
    # in one pass over grad: on a narrow layer (64 x 32) numpy's two calls
    # each take ~1 us, a kernel ~0.3 us for both. The numpy passes' numbers
    # exactly: z + b rounded in the dtype, then numpy's maximum (NaN and -0.0
    # kept); grad times the 0/1 mask (NaN where grad is inf and a is not > 0).
    @jit
    def bias_relu_kernel(z, b):
        for i in range(z.shape[0]):
            for j in range(z.shape[1]):
                v = z[i, j] + b[j]
                z[i, j] = v if not v < 0 else 0

    @jit
    def relu_backward_kernel(a, grad):
        for i in range(a.shape[0]):
            for j in range(a.shape[1]):
                grad[i, j] = grad[i, j] * (1 if a[i, j] > 0 else 0)

    # A whole inference forward in one call (see dag_forward). Softmax keeps
    # numpy's order: the row's max subtracted, exp, then division by the sum.
    @jit
    def dag_forward_kernel(inputs, outs, params, program):
        for k in range(len(inputs)):
            a = inputs[k]
            for i in range(a.shape[0]):
                for j in range(a.shape[1]):
                    if not np.isfinite(a[i, j]):
                        return k
        n = inputs[0].shape[0]
        values = numba.typed.List()
        for a in inputs:
            values.append(a)
        p = 1
        for _ in range(program[0]):
            size, act, bias, edges = program[p], program[p + 1], program[p + 2], program[p + 3]
            p += 4
            z = np.empty((n, size), dtype=params.dtype)
            if edges == 0:
                z[:, :] = 0
            for e in range(edges):
                src = values[program[p]]
                start = program[p + 1]
                p += 2
                w = params[start:start + src.shape[1] * size].reshape((src.shape[1], size))
                for i in range(n):  # a row at a time: BLAS's vector-matrix product
                    if e == 0:
                        np.dot(src[i], w, z[i])
                    else:
                        z[i] += np.dot(src[i], w)
            out = program[p]
            p += 1
            for i in range(n):
                for j in range(size):
                    z[i, j] += params[bias + j]
                if act == 1:  # relu
                    for j in range(size):
                        if z[i, j] < 0:
                            z[i, j] = 0
                elif act == 2:  # sigmoid, without overflow either side
                    for j in range(size):
                        v = z[i, j]
                        if v >= 0:
                            z[i, j] = 1 / (1 + np.exp(-v))
                        else:
                            ev = np.exp(v)
                            z[i, j] = ev / (1 + ev)
                elif act == 3:  # tanh
                    for j in range(size):
                        z[i, j] = np.tanh(z[i, j])
                elif act == 4:  # softmax
                    top = z[i, 0]
                    for j in range(1, size):
                        if z[i, j] > top:
                            top = z[i, j]
                    total = z[i, 0] * 0
                    for j in range(size):
                        z[i, j] = np.exp(z[i, j] - top)
                        total += z[i, j]
                    for j in range(size):
                        z[i, j] /= total
            values.append(z)
            if out >= 0:
                outs[out][:, :] = z
        return -1

    _dag_forward_kernel = dag_forward_kernel
    _adam_kernel = adam_kernel
    _adam_step_kernel = adam_step_kernel
    _adam_moments_kernel = adam_moments_kernel
    _bias_relu_kernel = bias_relu_kernel
    _relu_backward_kernel = relu_backward_kernel
    logger.debug("fused Adam kernel ready (numba %s)", numba.__version__)


def _compiles_across_fork() -> None:
    """Make a fork wait for a compile under way in another thread.

    numba compiles under one process-wide lock. A child forked while another
    thread holds it (a first ``predict`` or ``fit``, seconds on a fresh
    machine) would inherit it held by a thread it does not have, and wait
    for ever at its own first compile. So the forking thread takes the lock
    just before the fork, and parent and child each let it go after.
    """
    try:
        from numba.core.compiler_lock import global_compiler_lock
    except ImportError:  # another numba: forks go on as before
        return
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(before=global_compiler_lock.acquire, after_in_parent=global_compiler_lock.release,
                            after_in_child=global_compiler_lock.release)


def available() -> bool:
    """Whether the compiled kernels will be used (numba importable and
    :data:`ENABLED`); they are compiled together, so one test serves all."""
    if not ENABLED:
        return False
    if not _loaded:
        with _interrupts_held():
            _load()
    return _adam_kernel is not None


def adam(grads, m, v, m_next, v_next, out, beta1, beta2, step_size, eps) -> bool:
    """One fused Adam pass if the kernel is available; returns whether it ran.

    The moments that follow ``m`` and ``v`` go into ``m_next`` and ``v_next``
    (the current ones are only read, so a refused step can be dropped), and
    ``out`` receives the step ``step_size * m_next / (sqrt(v_next) + eps)``;
    all six arrays are flat and of one dtype.
    """
    if not available():
        return False
    cast = grads.dtype.type
    _adam_kernel(grads, m, v, m_next, v_next, out, cast(beta1), cast(beta2), cast(step_size), cast(eps))
    return True


def adam_step(grads, m, v, out, beta1, beta2, step_size, eps) -> bool:
    """The first of Adam's two passes: ``out`` receives the step (as
    :func:`adam`'s, and not finite wherever a new moment would not be);
    ``m`` and ``v`` are only read. Returns whether the kernel ran."""
    if not available():
        return False
    cast = grads.dtype.type
    _adam_step_kernel(grads, m, v, out, cast(beta1), cast(beta2), cast(step_size), cast(eps))
    return True


def adam_moments(grads, m, v, beta1, beta2) -> None:
    """The second pass: the new moments, in place, bit for bit those that
    :func:`adam_step` (and :func:`adam`) computed. Call only after
    :func:`adam_step` ran and its step was accepted."""
    cast = grads.dtype.type
    _adam_moments_kernel(grads, m, v, cast(beta1), cast(beta2))


def relu_kernels(dtype):
    """``(bias_relu(z, b), relu_backward(a, grad))`` compiled for ``dtype``,
    or None without numba: ``z`` becomes ``max(z + b, 0)`` in place, ``grad``
    is multiplied by the 0/1 mask ``a > 0`` in place, the numbers exactly
    the numpy passes'. Compiled (or loaded from numba's cache) at once, Ctrl-C
    held back, as :func:`prepare` does."""
    if not prepare(dtype) or _bias_relu_kernel is None:
        return None
    return _bias_relu_kernel, _relu_backward_kernel


#: The activations :func:`dag_forward` computes, by name: its program's codes.
ACTIVATION_CODES = {"linear": 0, "relu": 1, "sigmoid": 2, "tanh": 3, "softmax": 4}


def dag_forward(inputs: tuple, outs: tuple, params, program) -> int | None:
    """A graph's whole inference forward in one compiled call, or None
    without numba (the caller then runs its numpy version).

    Parameters
    ----------
    inputs : tuple of ndarray
        C-contiguous ``(n, size)`` arrays of ``params``' dtype, by input slot.
    outs : tuple of ndarray
        C-contiguous ``(n, size)`` arrays the outputs are copied into.
    params : ndarray
        Every weight and bias, flat.
    program : ndarray of int64
        The number of dense nodes, then for each in order: its size, its
        activation (:data:`ACTIVATION_CODES`), its bias's offset in
        ``params``, its number of incoming synapses, for each the slot of the
        source (inputs first, then the dense nodes in order) and the offset of
        its ``(source size, size)`` weight, and last the index of ``outs`` it
        fills (-1 for none).

    Returns
    -------
    int or None
        -1 when it ran; the index of the first input holding NaN or inf (it
        then computed nothing); None without numba. The first call for a
        number of inputs and outputs and a dtype compiles (Ctrl-C held back,
        as :func:`prepare` does).
    """
    if not available():
        return None
    signature = (len(inputs), len(outs), params.dtype)
    compiled = _forward_signatures.get(signature)
    if compiled is None:
        with _interrupts_held():
            try:
                result = _dag_forward_kernel(inputs, outs, params, program)
            except Exception as exc:  # a compiler that fails must not stop predictions
                logger.warning("numba could not compile the compiled forward for %s (%s: %s): it runs "
                               "numpy passes", signature, type(exc).__name__, exc)
                _forward_signatures[signature] = False
                return None
        _forward_signatures[signature] = True
        return result
    return _dag_forward_kernel(inputs, outs, params, program) if compiled else None
