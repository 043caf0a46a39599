"""Shared fixtures: an explicit random generator (no global seeds) and small graphs."""

from __future__ import annotations

import numpy as np
import pytest

import graphnet as gn


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def build_dag(dtype: str = "float64", seed: int = 0) -> gn.Graph:
    """Two inputs, two outputs, fan-in, fan-out, a skip connection, and an
    output (``aux``) that also feeds another node."""
    g = gn.Graph(name="dag", seed=seed, dtype=dtype)
    g.add_input("a", 5)
    g.add_input("b", 3)
    g.add_hidden("h1", 6, activation="tanh")
    g.add_hidden("h2", 4, activation="elu")
    g.add_output("aux", 3, activation="softmax", loss="categorical_crossentropy", loss_weight=0.7)
    g.add_hidden("h3", 5, activation="gelu")
    g.add_output("main", 2, activation="sigmoid", loss="binary_crossentropy")
    g.connect("a", "h1")
    g.connect(["h1", "b"], "h2")          # fan-in
    g.connect(["h1", "h2"], "aux")        # h1 fans out to h2, aux and main
    g.connect(["aux", "h2"], "h3")        # an output feeding another node
    g.connect(["h3", "h1", "a"], "main")  # skip connections from h1 and the input a
    return g


def build_chain(outputs: int = 1, dtype: str = "float64", name: str = "graph", activation="relu",
                loss="mse") -> gn.Graph:
    """The smallest graph with a hidden node: x (3) -> h (4, relu by default) -> y (linear, mse by default)."""
    g = gn.Graph(name=name, seed=0, dtype=dtype)
    g.add_input("x", 3)
    g.add_hidden("h", 4, activation=activation)
    g.add_output("y", outputs, loss=loss)
    g.connect("x", "h")
    g.connect("h", "y")
    return g


def build_regression(seed: int = 0, dtype: str = "float32") -> gn.Graph:
    """x (3) -> h (16, tanh) -> y (linear): the callbacks' tests' regression net."""
    g = gn.Graph(name="reg", seed=seed, dtype=dtype)
    g.add_input("x", 3)
    g.add_hidden("h", 16, activation="tanh")
    g.add_output("y", 1)
    g.connect("x", "h")
    g.connect("h", "y")
    return g


def regression_data(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """80 rows for :func:`build_regression`: a linear target with a little noise."""
    x = rng.normal(size=(80, 3))
    return x, x @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=80)


@pytest.fixture
def dag() -> gn.Graph:
    return build_dag()


def dag_data(rng: np.random.Generator, rows: int = 7):
    x = {"a": rng.normal(size=(rows, 5)), "b": rng.normal(size=(rows, 3))}
    y = {"aux": rng.integers(0, 3, size=rows), "main": rng.integers(0, 2, size=(rows, 2)).astype(float)}
    return x, y


def kernel_dag(dtype: str = "float64") -> gn.Graph:
    """Two inputs, two outputs, a skip from an input to an output, fan-in,
    and each activation the one-call forward computes (graphnet._kernels)."""
    g = gn.Graph(seed=0, dtype=dtype)
    g.add_input("a", 3)
    g.add_input("b", 2)
    g.add_hidden("h", 5, activation="tanh")
    g.add_hidden("k", 4, activation="sigmoid")
    g.add_hidden("r", 6, activation="relu")
    g.add_output("y", 3, activation="softmax", loss="categorical_crossentropy")
    g.add_output("z", 1)
    g.connect(["a", "b"], "h")
    g.connect("b", "k")
    g.connect("h", "r")
    g.connect(["r", "k", "a"], "y")
    g.connect("h", "z")
    return g


def kernel_dag_data(rng: np.random.Generator, rows: int = 5) -> dict[str, np.ndarray]:
    """Inputs for :func:`kernel_dag`, wide enough to reach both sides of the sigmoid."""
    return {"a": rng.normal(size=(rows, 3)) * 4, "b": rng.normal(size=(rows, 2)) * 4}


@pytest.fixture
def trained(rng):
    """A small DAG after two epochs, with its data."""
    g = build_dag(dtype="float32")
    x, y = dag_data(rng, 24)
    g.fit(x, y, epochs=2, batch_size=8, verbose=0)
    return g, x, y


@pytest.fixture
def saved(tmp_path, trained):
    """``trained``'s graph saved to a model file."""
    g = trained[0]
    return g.save(tmp_path / "model.gnet")


# ------------------------------------------------------------------ devices
def _cuda_present() -> bool:
    """Whether CuPy imports and sees a GPU (then the parity tests run on CUDA too)."""
    try:
        import graphnet.backend as backend

        backend.get("cuda")
    except Exception:
        return False
    return True


#: The devices the parity tests run on: the CPU, the stand-in (the device code
#: path on numpy, see tests/standin.py), and CUDA where a GPU is present.
DEVICES = ["cpu", "standin"] + (["cuda"] if _cuda_present() else [])


@pytest.fixture
def standin():
    """Register the stand-in device as ``"standin"`` for one test; yields its
    module (``standin.COUNTS`` counts the explicit transfers)."""
    from graphnet import backend

    import standin as module

    undo = backend.register("standin", module.backend)
    module.COUNTS.clear()
    try:
        yield module
    finally:
        undo()


@pytest.fixture(params=DEVICES)
def device(request):
    """Each device present, by name (the stand-in registered for the test)."""
    if request.param == "standin":
        request.getfixturevalue("standin")
    return request.param


@pytest.fixture(scope="module")
def dask_cluster():
    """A LocalCluster of two single-threaded worker processes on loopback and
    a client that is not the default one: ``(cluster, client)``. The workers
    import the graphnet this test run imports, and the test modules (for
    functions they run by reference): PYTHONPATH points at both."""
    distributed = pytest.importorskip("distributed")
    import logging
    import os
    from pathlib import Path

    tests = Path(__file__).resolve().parent
    path = os.pathsep.join(p for p in (str(tests.parent), str(tests), os.environ.get("PYTHONPATH")) if p)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, env={"PYTHONPATH": path}, silence_logs=logging.ERROR,
    ) as cluster, distributed.Client(cluster, set_as_default=False) as client:
        yield cluster, client
