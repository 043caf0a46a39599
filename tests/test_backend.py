"""The backend seam (graphnet.backend): device names, what a missing GPU says,
and the stand-in that lets CI run the device code path."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

import graphnet as gn
from graphnet import GraphError, backend


def _fresh_cuda(monkeypatch):
    """Forget a CUDA backend made earlier, so the next get("cuda") tries again."""
    monkeypatch.delitem(backend._MADE, "cuda", raising=False)


def test_the_cpu_is_the_default_and_numpy_its_module():
    g = gn.Graph()
    assert g.device == "cpu"
    assert backend.get("cpu") is backend.CPU and backend.CPU.xp is np


@pytest.mark.parametrize("device", ["gpu", "CUDA", None, 0, "cuda:0"])
def test_an_unknown_device_is_refused_naming_the_argument(device):
    with pytest.raises(GraphError, match=r"device must be one of \['cpu', 'cuda'\], got"):
        gn.Graph(device=device)


def test_cuda_without_cupy_says_what_to_install(monkeypatch):
    _fresh_cuda(monkeypatch)
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy raises ImportError
    with pytest.raises(GraphError, match=r"needs CuPy, which is not installed.*pip install 'graphnet\[cuda\]'"):
        gn.Graph(device="cuda")
    with pytest.raises(GraphError, match="pip install 'graphnet\\[cuda\\]'"):
        gn.Sequential([gn.Input(2), gn.Dense(1)], device="cuda")


def test_cuda_without_a_gpu_says_none_is_visible(monkeypatch):
    _fresh_cuda(monkeypatch)

    def no_device():
        raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")

    cupy = types.ModuleType("cupy")
    cupy.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=no_device))
    cupyx = types.ModuleType("cupyx")
    cupyx.scipy = types.ModuleType("cupyx.scipy")
    cupyx.scipy.special = types.ModuleType("cupyx.scipy.special")
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setitem(sys.modules, "cupyx", cupyx)
    monkeypatch.setitem(sys.modules, "cupyx.scipy", cupyx.scipy)
    monkeypatch.setitem(sys.modules, "cupyx.scipy.special", cupyx.scipy.special)
    with pytest.raises(GraphError, match="CuPy is installed but no GPU is visible"):
        gn.Graph(device="cuda")


def test_a_refused_move_leaves_the_graph_where_it_was(monkeypatch):
    _fresh_cuda(monkeypatch)
    monkeypatch.setitem(sys.modules, "cupy", None)
    g = gn.Sequential([gn.Input(3), gn.Dense(2)], seed=0)
    before = g.get_weights()
    with pytest.raises(GraphError, match="CuPy"):
        g.to("cuda")
    assert g.device == "cpu"
    for key, value in g.get_weights().items():
        assert np.array_equal(value, before[key])


def test_the_standin_is_no_user_facing_device():
    """Only the test suite registers it; the library never does."""
    with pytest.raises(GraphError, match="device must be one of"):
        gn.Graph(device="standin")


def test_the_standin_refuses_every_hidden_host_read(standin):
    a = standin.xp.asarray(np.arange(3.0))
    for read in (float, int, bool, list, np.asarray, lambda v: v.item(), lambda v: f"{v}",
                 lambda v: v.sum().tolist()):
        with pytest.raises(standin.ImplicitTransfer):
            read(a.sum() if read in (float, int, bool) else a)
    with pytest.raises(TypeError, match="mixed with device arrays"):
        a + np.ones(3)
    with pytest.raises(TypeError):
        np.add(a, 1.0)
    with pytest.raises(TypeError, match="no where="):
        standin.xp.add(a, 1.0, out=a, where=a > 0)
    assert standin.COUNTS == {"to_device": 1}
    assert standin.xp.asnumpy(a * 2).tolist() == [0.0, 2.0, 4.0]
    assert standin.COUNTS["to_host"] == 1


def test_the_standin_reductions_stay_on_the_device(standin):
    a = standin.xp.asarray(np.arange(4.0))
    assert isinstance(a.sum(), standin.DeviceArray) and a.sum().shape == ()
    assert isinstance(standin.xp.dot(a, a), standin.DeviceArray)


def test_host_brings_device_arrays_back_and_leaves_the_rest(standin):
    made = backend.get("standin")
    a = made.to_device(np.arange(3.0))
    assert isinstance(backend.host(a), np.ndarray)
    plain = np.ones(2)
    assert backend.host(plain) is plain


@pytest.fixture
def fake_cuda(standin, monkeypatch):
    """``device="cuda"`` made of graphnet's own CudaBackend on a fake CuPy
    (tests/fake_cupy.py): its kernels restated in numpy, its arrays the stand-in's."""
    import fake_cupy

    from graphnet._cuda import CudaBackend

    fake_cupy.LAUNCHES.clear()
    undo = backend.register("cuda", lambda: CudaBackend(fake_cupy.module(), standin.special))
    yield fake_cupy
    undo()


def _chain(device, output="softmax"):
    return gn.Sequential(
        [gn.Input(5), gn.Dense(12, activation="relu"), gn.Dense(8, activation="tanh"),
         gn.Dense(6, activation="sigmoid"), gn.Dense(3 if output == "softmax" else 2, activation=output)],
        seed=4, device=device,
    )


@pytest.mark.parametrize("output", ["softmax", "sigmoid"])
def test_the_cuda_backend_trains_as_the_cpu_on_a_fake_cupy(fake_cuda, rng, output):
    """The CUDA backend's own code (which kernel, which arguments, which
    dtypes) end to end: the CPU's weights bit for bit."""
    x = rng.normal(size=(50, 5)).astype(np.float32)
    y = rng.integers(0, 3, 50) if output == "softmax" else rng.integers(0, 2, (50, 2)).astype(np.float32)
    models = {}
    for device in ("cpu", "cuda"):
        g = _chain(device, output)
        g.fit(x, y, epochs=2, batch_size=16, verbose=0, metrics=["accuracy"])
        models[device] = g
    assert models["cuda"].device == "cuda"
    for key, value in models["cpu"].get_weights().items():
        np.testing.assert_array_equal(models["cuda"].get_weights()[key], value, err_msg=key)
    delta = "graphnet_softmax_labels_delta" if output == "softmax" else "graphnet_sigmoid_delta"
    for kernel in ("graphnet_adam", "graphnet_guard", "graphnet_apply", "graphnet_restore",
                   "graphnet_relu_backward", "graphnet_tanh_backward", "graphnet_sigmoid_backward", delta):
        assert fake_cuda.LAUNCHES.get(kernel, 0) >= 8, kernel


def test_the_cuda_backend_refuses_a_failing_step_as_the_cpu(fake_cuda, rng):
    x = rng.normal(size=(48, 5)).astype(np.float32)
    x[20] = 3e37  # finite data whose squared error overflows float32
    y = x[:, :2].copy()
    models = {}
    for device in ("cpu", "cuda"):
        g = gn.Sequential([gn.Input(5), gn.Dense(12, activation="relu"), gn.Dense(2)], seed=4, device=device)
        with pytest.raises(gn.TrainingError, match="epoch 1/1, batch 3/6"):
            g.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
        models[device] = g
    for key, value in models["cpu"].get_weights().items():
        np.testing.assert_array_equal(models["cuda"].get_weights()[key], value)
    assert models["cuda"].optimizer.iterations == 2


def test_the_cuda_backend_draws_dropout_on_the_device(fake_cuda, rng):
    g = gn.Sequential([gn.Input(5), gn.Dense(16, activation="relu", dropout=0.5), gn.Dense(1)],
                      seed=0, device="cuda")
    x = rng.normal(size=(32, 5)).astype(np.float32)
    g.fit(x, x[:, :1], epochs=1, batch_size=8, verbose=0)
    assert g.device_rng is not None
    assert all(np.isfinite(v).all() for v in g.get_weights().values())


def test_the_relu_kernels_follow_the_package_not_its_name():
    # benchmarks.ab imports a second checkout as graphnet_other: its own ReLU
    # must find its kernels there too, or that side runs slower for no reason.
    assert backend.ACTIVATIONS_MODULE == gn.activations.__name__
    assert backend.CPU.fused_backward(gn.activations.get("relu"), np.float32) is not None

    class Shifted(gn.activations.ReLU):  # a subclass may change the maths: no kernel
        pass

    assert backend.CPU.fused_backward(Shifted(), np.float32) is None
