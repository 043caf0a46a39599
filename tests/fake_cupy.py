"""Just enough of CuPy's surface to build graphnet's CUDA backend on a CPU.

The stand-in (tests/standin.py) plays CuPy's arrays; this adds what
``graphnet._cuda.CudaBackend`` asks of CuPy beyond them: the runtime queries,
a random state, and ``ElementwiseKernel`` with CuPy's calling convention
(inputs, then outputs; outputs allocated when left out; raw parameters
passed whole; ``T`` one dtype across its parameters). Each kernel is run by
a numpy restatement of its source, looked up by the kernel's name, so the
backend's own code (which kernel it calls with which arguments, in which
order, of which dtypes) runs in CI. Whether CUDA compiles and runs the
sources is for ``tests/test_cuda_kernels.py`` on a GPU.
"""

from __future__ import annotations

import types

import numpy as np
import standin

__all__ = ["module"]


def _params(spec: str):
    out = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        words = part.split()
        raw = words[0] == "raw"
        out.append((words[-1], words[-2], raw))  # (name, type, raw)
    return out


def _adam(p):
    g, m, v = p["g"], p["m"], p["v"]
    g2 = g * g
    m_i = p["beta1"] * (m - g) + g
    v_i = p["beta2"] * (v - g2) + g2
    p["m_next"][...] = m_i
    p["v_next"][...] = v_i
    p["out"][...] = (m_i / (np.sqrt(v_i) + p["eps"])) * p["step_size"]


def _guard(p):
    bad_loss, bad_grad, bad_update = (not np.isfinite(p[k]) for k in ("loss", "grad_sq", "update_sq"))
    bad = bad_loss or bad_grad or bad_update
    status = p["status"]
    failed = status[0] != 0
    p["ok"][...] = not (failed or bad)
    if bad and not failed:
        status[:] = [1, p["step"], bad_loss * 1 | bad_grad * 2 | bad_update * 4]


def _apply(p):
    if p["ok"][0]:
        p["p"][...] = p["p"] - p["u"]


def _restore(p):
    if not p["ok"][0]:
        p["current"][...] = p["previous"].reshape(p["current"].shape)


def _backward(derivative):
    def run(p):
        p["grad"][...] = derivative(p["a"], p["grad"])

    return run


def _softmax_labels(p):
    a, y, k = p["a"], p["y"], int(p["k"])
    n = a.size // k
    hit = (np.arange(k)[None, :] == y.reshape(n, 1)).astype(a.dtype)
    p["d"][...] = (a.reshape(n, k) - hit) * p["scale"]


def _sigmoid_delta(p):
    p["d"][...] = (p["a"] - p["y"]) * p["scale"]


_KERNELS = {
    "graphnet_adam": _adam,
    "graphnet_guard": _guard,
    "graphnet_apply": _apply,
    "graphnet_restore": _restore,
    "graphnet_relu_backward": _backward(lambda a, g: g * (a > 0).astype(a.dtype)),
    "graphnet_sigmoid_backward": _backward(lambda a, g: (g * a) * (a.dtype.type(1) - a)),
    "graphnet_tanh_backward": _backward(lambda a, g: g * (a.dtype.type(1) - a * a)),
    "graphnet_softmax_labels_delta": _softmax_labels,
    "graphnet_sigmoid_delta": _sigmoid_delta,
}

#: Launches so far, by kernel name.
LAUNCHES: dict[str, int] = {}


class ElementwiseKernel:
    def __init__(self, in_params, out_params, operation, name="kernel", options=()):
        assert name in _KERNELS, f"no restatement of kernel {name!r}"
        assert "--fmad=false" in options
        self.inputs, self.outputs, self.name = _params(in_params), _params(out_params), name

    def __call__(self, *args):
        n_in, n_out = len(self.inputs), len(self.outputs)
        assert len(args) in (n_in, n_in + n_out), f"{self.name}: {len(args)} arguments"
        arrays = [a for a in args if isinstance(a, standin.DeviceArray)]
        shape = np.broadcast_shapes(*[a.shape for a, (_, _, raw) in zip(args, self.inputs + self.outputs)
                                      if isinstance(a, standin.DeviceArray) and not raw] or [()])
        typed = {}
        for value, (name, kind, raw) in zip(args, self.inputs + self.outputs):
            if kind == "T":
                dtype = value.dtype if hasattr(value, "dtype") else None
                if dtype is not None:
                    typed.setdefault("T", dtype)
                    assert dtype == typed["T"], f"{self.name}: {name} is {dtype}, T is {typed['T']}"
            elif kind in ("int32", "bool"):
                assert getattr(value, "dtype", np.dtype(kind)) == np.dtype(kind), f"{self.name}: {name}"
        outputs = list(args[n_in:])
        if not outputs:
            dtype = typed.get("T", arrays[0].dtype if arrays else np.float32)
            outputs = [standin.xp.empty(shape, dtype) for _ in self.outputs]
        params = {}
        for value, (name, _, _) in zip([*args[:n_in], *outputs], self.inputs + self.outputs):
            params[name] = value._a if isinstance(value, standin.DeviceArray) else value
        _KERNELS[self.name](params)
        LAUNCHES[self.name] = LAUNCHES.get(self.name, 0) + 1
        return outputs[0] if len(outputs) == 1 else tuple(outputs)


class _RandomState:
    def __init__(self, seed):
        self._rng = np.random.default_rng(seed)

    def random_sample(self, shape, dtype):
        return standin.xp.asarray(self._rng.random(shape, dtype=dtype))


def module():
    """A ``cupy`` for :class:`graphnet._cuda.CudaBackend` (its ``xp`` the stand-in's)."""
    cupy = types.SimpleNamespace()
    for name in ("ndarray", "asarray", "asnumpy"):
        setattr(cupy, name, getattr(standin.xp, name))
    cupy.ElementwiseKernel = ElementwiseKernel
    cupy.random = types.SimpleNamespace(RandomState=_RandomState)
    runtime = types.SimpleNamespace(getDeviceCount=lambda: 1, memGetInfo=lambda: (8 << 30, 16 << 30),
                                    getDeviceProperties=lambda i: {"name": b"Fake GPU"})
    cupy.cuda = types.SimpleNamespace(
        runtime=runtime, Device=lambda: types.SimpleNamespace(id=0, synchronize=lambda: None))
    cupy.__version__ = "fake"

    class Module(types.ModuleType):
        def __getattr__(self, name):
            try:
                return getattr(cupy, name)
            except AttributeError:
                return getattr(standin.xp, name)

    fake = Module("cupy")
    return fake
