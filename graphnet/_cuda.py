"""``device="cuda"``: the backend on CuPy, with fused CUDA kernels.

Imported only when a graph asks for CUDA. The plan, losses and optimizers
run on CuPy through the same ``xp`` calls as on numpy (CuPy mirrors its
API, ``out=`` included); what numpy cannot express in one pass is written
here as ``cupy.ElementwiseKernel``s, each the same arithmetic as the
generic ``xp`` version it replaces (:class:`graphnet.backend.DeviceBackend`,
:meth:`graphnet.optimizers.Adam.update`), in the same order and without
fused multiply-adds (``--fmad=false``), so that CPU and GPU agree within
float32 rounding of the matrix products:

* ``adam``: Adam's moments and step in one pass (ten numpy passes);
* ``guard``: the step's three finiteness tests and the interval's status in
  one one-thread launch (eight small ones otherwise);
* ``apply`` / ``restore``: the update applied, or the state put back, under
  the device flag, reading the flag once per element instead of materialising
  a masked copy;
* relu, sigmoid and tanh backward (two or three launches each otherwise), and
  the fused output deltas of softmax + categorical cross-entropy on labels
  (a copy, an index scatter and a scale otherwise) and of sigmoid + binary
  cross-entropy.

Every kernel is compiled by CuPy on first use (cached on disk afterwards).
``benchmarks/gpu_check.py`` compares each with the generic version on a GPU.
"""

from __future__ import annotations

import functools
import logging

import numpy as np

from .backend import ACTIVATIONS_MODULE, LOSSES_MODULE, DeviceBackend, register
from .errors import GraphError

__all__ = ["CudaBackend"]

logger = logging.getLogger(__name__)

_INSTALL = "pip install 'graphnet[cuda]'"
_OPTIONS = ("--fmad=false",)

_ADAM = (
    "T g, T m, T v, T beta1, T beta2, T step_size, T eps",
    "T m_next, T v_next, T out",
    # As Adam.update's passes: m' = b1 (m - g) + g, v' = b2 (v - g²) + g².
    """
    T g2 = g * g;
    T m_i = beta1 * (m - g) + g;
    T v_i = beta2 * (v - g2) + g2;
    m_next = m_i;
    v_next = v_i;
    out = (m_i / (sqrt(v_i) + eps)) * step_size;
    """,
)

_GUARD = (
    "T loss, T grad_sq, T update_sq, int32 step",
    "raw int32 status, bool ok",
    """
    bool bad_loss = !isfinite(loss);
    bool bad_grad = !isfinite(grad_sq);
    bool bad_update = !isfinite(update_sq);
    bool bad = bad_loss || bad_grad || bad_update;
    bool failed = status[0] != 0;
    ok = !(failed || bad);
    if (bad && !failed) {
        status[0] = 1;
        status[1] = step;
        status[2] = (bad_loss ? 1 : 0) | (bad_grad ? 2 : 0) | (bad_update ? 4 : 0);
    }
    """,
)

_APPLY = ("T u, raw bool ok", "T p", "if (ok[0]) p = p - u;")

# Activation backward, dL/dz written over dL/da, the CPU's operations in its
# order (a multiply by the 0/1 mask, not a select: a NaN gradient stays NaN).
_BACKWARD = {
    "relu": ("T a", "T grad", "grad = grad * (a > (T)0 ? (T)1 : (T)0);"),
    "sigmoid": ("T a", "T grad", "grad = (grad * a) * ((T)1 - a);"),
    "tanh": ("T a", "T grad", "grad = grad * ((T)1 - a * a);"),
}
# The fused output deltas (losses.py), unweighted: (p - y) / count.
_SOFTMAX_LABELS = ("raw T a, raw I y, int32 k, T scale", "T d",
                   "d = (a[i] - (T)((long long)(i % k) == (long long)y[i / k] ? 1 : 0)) * scale;")
_SIGMOID_DELTA = ("T a, T y, T scale", "T d", "d = (a - y) * scale;")
_RESTORE = ("raw T previous, raw bool ok", "T current", "if (!ok[0]) current = previous[i];")


class CudaBackend(DeviceBackend):
    """CuPy on the current CUDA device."""

    name = "cuda"

    def __init__(self, cupy, special_functions):
        super().__init__(cupy, special_functions)
        self._adam = _kernel(cupy, _ADAM, "graphnet_adam")
        self._guard = _kernel(cupy, _GUARD, "graphnet_guard")
        self._apply = _kernel(cupy, _APPLY, "graphnet_apply")
        self._restore = _kernel(cupy, _RESTORE, "graphnet_restore")
        self._backward = {name: _kernel(cupy, source, f"graphnet_{name}_backward")
                          for name, source in _BACKWARD.items()}
        self._softmax_labels = _kernel(cupy, _SOFTMAX_LABELS, "graphnet_softmax_labels_delta")
        self._sigmoid_delta = _kernel(cupy, _SIGMOID_DELTA, "graphnet_sigmoid_delta")

    @classmethod
    def make(cls) -> CudaBackend:
        """The backend, or a GraphError saying what is missing."""
        try:
            import cupy
            import cupyx.scipy.special as cupy_special
        except ImportError as exc:
            raise GraphError(
                f"device='cuda' needs CuPy, which is not installed ({exc}); install it with "
                f"{_INSTALL} (CuPy for CUDA 12; see https://docs.cupy.dev for other CUDA versions)"
            ) from None
        except Exception as exc:  # a CuPy that finds no CUDA libraries fails here
            raise GraphError(f"device='cuda': CuPy failed to import ({type(exc).__name__}: {exc})") from None
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:
            raise GraphError(
                f"device='cuda': CuPy is installed but no GPU is visible ({type(exc).__name__}: {exc}); "
                "check the NVIDIA driver and CUDA_VISIBLE_DEVICES, or use device='cpu'"
            ) from None
        if count < 1:
            raise GraphError("device='cuda': CuPy is installed but no GPU is visible; use device='cpu'")
        backend = cls(cupy, cupy_special)
        logger.info("cuda: %s (CuPy %s)", backend.describe(), cupy.__version__)
        return backend

    def describe(self) -> str:
        runtime = self.xp.cuda.runtime
        props = runtime.getDeviceProperties(self.xp.cuda.Device().id)
        name = props["name"]
        return name.decode() if isinstance(name, bytes) else str(name)

    # -- arrays --------------------------------------------------------------
    def fits(self, nbytes: int) -> bool:
        free, _ = self.xp.cuda.runtime.memGetInfo()
        # Leave room for the plan's buffers, the optimizer and the memory pool.
        return nbytes <= free // 2

    def take(self, array, index, out):
        return self.xp.take(array, index, axis=0, out=out)

    def scatter_rows(self, out, index, values) -> None:
        import cupyx  # with cupy, which make() imported: atomic adds, repeated rows summed

        out.fill(0)
        cupyx.scatter_add(out, index, values)

    # -- randomness ----------------------------------------------------------
    def dropout_rng(self, graph):
        """A device stream per graph, seeded from the graph's seed (not from
        its shuffling stream, so it changes no permutation); CuPy's states
        cannot be saved, so a loaded or unpickled graph starts it afresh."""
        if graph.device_rng is None:
            graph.device_rng = self.xp.random.RandomState(graph.device_seed())
        return graph.device_rng

    def uniform(self, rng, out) -> None:
        out[...] = rng.random_sample(out.shape, dtype=out.dtype)

    # -- kernels -------------------------------------------------------------
    def adam(self, grads, m, v, m_next, v_next, out, beta1, beta2, step_size, eps) -> bool:
        cast = grads.dtype.type
        self._adam(grads, m, v, cast(beta1), cast(beta2), cast(step_size), cast(eps), m_next, v_next, out)
        return True

    def fused_backward(self, activation, dtype=None):
        # Exact type: a subclass may change the maths.
        kernel = self._backward.get(activation.name) if type(activation).__module__ == ACTIVATIONS_MODULE else None
        if kernel is None:
            return None

        def backward(a, grad, z=None):
            return kernel(a, grad)

        return backward

    def fused_delta(self, loss):
        if type(loss).__module__ != LOSSES_MODULE:
            return None
        generic = functools.partial(loss.delta, xp=self.xp)
        if loss.name in ("categorical_crossentropy", "sparse_categorical_crossentropy"):
            def delta(y, a, r=None):
                if y.ndim != 1 or r is not None:  # one-hot or weighted rows: the xp passes
                    return generic(y, a, r)
                n, k = a.shape
                return self._softmax_labels(a, y, np.int32(k), a.dtype.type(1.0 / n), self.xp.empty_like(a))

            return delta
        if loss.name == "binary_crossentropy":
            def delta(y, a, r=None):
                if r is not None:
                    return generic(y, a, r)
                return self._sigmoid_delta(a, y, a.dtype.type(1.0 / a.size))

            return delta
        return None

    def guard(self, status, loss, grad_sq, update_sq, step: int):
        ok = self.xp.empty(1, dtype=np.bool_)
        dtype = np.result_type(loss.dtype, grad_sq.dtype, update_sq.dtype)
        self._guard(loss.astype(dtype, copy=False), grad_sq.astype(dtype, copy=False),
                    update_sq.astype(dtype, copy=False), np.int32(step), status, ok)
        return ok

    def apply(self, params, update, ok, restore=()) -> None:
        self._apply(update, ok, params)
        for current, previous in restore:
            self._restore(previous, ok, current)


def _kernel(cupy, source: tuple[str, str, str], name: str):
    """An ElementwiseKernel compiled without fused multiply-adds (CuPy
    versions without ``options=`` compile it with their defaults)."""
    try:
        return cupy.ElementwiseKernel(*source, name=name, options=_OPTIONS)
    except TypeError:
        logger.warning("cuda: this CuPy takes no kernel options; %s may use fused multiply-adds", name)
        return cupy.ElementwiseKernel(*source, name=name)


register("cuda", CudaBackend.make)
