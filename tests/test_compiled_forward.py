"""predict's one-call forward for calls of a few rows (graphnet._compiled_forward):
the numbers of predict's numpy path, the weights of the moment, and predict's
own path for whatever the kernel does not compute."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import kernel_dag, kernel_dag_data

import graphnet as gn
from graphnet import _compiled_forward, _kernels
from graphnet._compiled_forward import SMALL_ROWS


@pytest.fixture
def calls(monkeypatch):
    """How many times the one-call kernel ran."""
    ran = []
    kernel = _kernels.dag_forward

    def counted(*args):
        result = kernel(*args)
        if result is not None:  # None: numba is off, nothing ran
            ran.append(args[0][0].shape[0])
        return result

    monkeypatch.setattr(_kernels, "dag_forward", counted)
    return ran


def _numpy_path(monkeypatch, function):
    """``function()`` with the kernels switched off: predict's numpy path."""
    with monkeypatch.context() as m:
        m.setattr(_kernels, "ENABLED", False)
        return function()


def _close(dtype):
    return {"rtol": 1e-12, "atol": 1e-14} if dtype == "float64" else {"rtol": 2e-6, "atol": 1e-6}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_small_call_is_one_compiled_call_with_the_numbers_of_the_numpy_path(rng, calls, monkeypatch, dtype):
    g = kernel_dag(dtype)
    for rows in range(1, SMALL_ROWS):
        x = kernel_dag_data(rng, rows)
        got = g.predict(x)
        assert calls[-1] == rows
        expected = _numpy_path(monkeypatch, lambda x=x: g.predict(x))
        assert list(got) == ["y", "z"] and got["y"].dtype == np.dtype(dtype)
        for name in expected:
            np.testing.assert_allclose(got[name], expected[name], **_close(dtype))
    assert len(calls) == SMALL_ROWS - 1
    g.predict(kernel_dag_data(rng, SMALL_ROWS))  # from here on BLAS's matrix products are faster
    assert len(calls) == SMALL_ROWS - 1


def test_a_rows_outputs_do_not_depend_on_the_rows_beside_it(rng, calls):
    g = kernel_dag("float32")
    x = kernel_dag_data(rng, SMALL_ROWS - 1)
    every = g.predict(x)
    for i in range(SMALL_ROWS - 1):
        one = g.predict({name: array[i : i + 1] for name, array in x.items()})
        for name in every:
            np.testing.assert_array_equal(one[name], every[name][i : i + 1])
    assert len(calls) == SMALL_ROWS


def test_nodes_asked_by_name_are_the_numbers_predict_gives(rng, calls, monkeypatch):
    g = kernel_dag()
    x = kernel_dag_data(rng, 3)
    got = g.predict(x, outputs=["h", "y", "a"])
    assert list(got) == ["h", "y", "a"] and len(calls) == 1
    np.testing.assert_array_equal(got["y"], g.predict(x)["y"])  # the same path, the same bits
    np.testing.assert_array_equal(got["a"], x["a"])
    assert not np.shares_memory(got["a"], x["a"])
    expected = _numpy_path(monkeypatch, lambda: g.predict(x, outputs=["h"]))
    np.testing.assert_allclose(got["h"], expected["h"], rtol=1e-12, atol=1e-14)
    only_inputs = g.predict(x, outputs=["b"])  # nothing to compute: predict's path copies it
    np.testing.assert_array_equal(only_inputs["b"], x["b"])


def test_the_programs_kept_for_sets_of_nodes_are_bounded(rng, calls):
    g = gn.Graph(seed=0)
    g.add_input("x", 3)
    chain = [f"h{i}" for i in range(12)]
    for src, name in zip(["x", *chain], chain):
        g.add_hidden(name, 4)
        g.connect(src, name)
    g.add_output("y", 1)
    g.connect(chain[-1], "y")
    x = rng.normal(size=(1, 3))
    pairs = [(a, b) for a in chain for b in chain if a != b]  # 132 sets of nodes, each asked for once
    expected = g.predict(x, outputs=chain)
    plan = g.plan
    for pair in pairs:
        got = g.predict(x, outputs=list(pair))
        np.testing.assert_array_equal(got[pair[1]], expected[pair[1]])
        assert 0 < len(plan.programs) <= _compiled_forward.KEPT_PROGRAMS
    asked = 1 + len(pairs)  # the whole chain, then each pair
    assert len(calls) == asked
    assert len(plan.programs) == asked % _compiled_forward.KEPT_PROGRAMS


def test_frozen_parameters_move_in_the_store_and_the_program_follows(rng, calls, monkeypatch):
    """The store puts trainable parameters first; the program reads each
    weight where the store put it."""
    g = kernel_dag()
    g.nodes["h"].trainable = False
    store = g.plan.store
    assert store.offsets_as_given != sorted(store.offsets_as_given)  # the order really moved
    x = kernel_dag_data(rng, 2)
    got = g.predict(x)
    assert len(calls) == 1
    expected = _numpy_path(monkeypatch, lambda: g.predict(x))
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-12, atol=1e-14)


def test_training_reaches_it_at_once(rng, calls, monkeypatch):
    g = gn.Sequential([gn.Input(4), gn.Dense(8, activation="relu"), gn.Dense(2, activation="softmax")], seed=0)
    x = rng.normal(size=(1, 4)).astype(np.float32)
    before = g.predict(x)
    g.train_step(rng.normal(size=(16, 4)), rng.integers(0, 2, 16), optimizer=gn.optimizers.SGD(lr=1.0))
    after = g.predict(x)
    assert len(calls) == 2
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, _numpy_path(monkeypatch, lambda: g.predict(x)), rtol=2e-6, atol=1e-7)


class _Cube(gn.activations.Activation):
    name = "cube_for_the_compiled_forward"

    def forward(self, z):
        return z**3

    def backward(self, a, grad, z):
        return grad * 3 * z**2


@pytest.mark.parametrize("case", ["custom activation", "elu", "normalized input", "categorical input"])
def test_what_the_kernel_does_not_compute_runs_predicts_path(rng, calls, case):
    g = gn.Graph(seed=0)
    x = rng.normal(size=(2, 3))
    if case == "normalized input":
        g.add_input("x", 3, normalize=True)
        g.adapt(rng.normal(size=(10, 3)))
    elif case == "categorical input":
        g.add_input("x", categories=["p", "q"])
        x = np.array(["p", "q"], dtype=object)
    else:
        g.add_input("x", 3)
    g.add_hidden("h", 4, activation={"custom activation": _Cube(), "elu": "elu"}.get(case, "tanh"))
    g.add_output("y", 2)
    g.connect("x", "h")
    g.connect("h", "y")
    out = g.predict(x)
    assert out.shape == (2, 2) and np.isfinite(out).all()
    assert calls == []
    assert _compiled_forward.program(g.plan, g.plan.output_names) is None


def _wide(inputs: int, outputs: int) -> gn.Graph:
    g = gn.Graph(seed=0)
    for i in range(inputs):
        g.add_input(f"x{i}", 1)
    for j in range(outputs):
        g.add_output(f"y{j}", 1)
        g.connect([f"x{i}" for i in range(inputs)], f"y{j}")
    return g


@pytest.mark.parametrize("inputs, outputs", [(1, _compiled_forward.MOST_ARRAYS + 1),
                                             (_compiled_forward.MOST_ARRAYS + 1, 1)])
def test_more_inputs_or_outputs_than_the_kernel_compiles_quickly_run_predicts_path(rng, calls, inputs, outputs):
    """The kernel's compile grows with its numbers of inputs and outputs
    (46 s for 800 outputs): past MOST_ARRAYS, a row runs the matrix products."""
    most = _compiled_forward.MOST_ARRAYS
    g = _wide(inputs, outputs)
    x = {f"x{i}": rng.normal(size=(1, 1)) for i in range(inputs)}
    got = g.predict(x, outputs=g.outputs)
    assert calls == [] and _compiled_forward.program(g.plan, g.plan.output_names) is None
    rows = g.predict({name: np.repeat(a, SMALL_ROWS, axis=0) for name, a in x.items()}, outputs=g.outputs)
    for name in g.outputs:
        np.testing.assert_allclose(got[name][0], rows[name][0], rtol=1e-12)
    within = _wide(min(inputs, most), min(outputs, most))
    assert _compiled_forward.program(within.plan, within.plan.output_names) is not None
    fewer = tuple(g.outputs[:most])  # asking for fewer nodes is enough where the inputs are few
    assert (_compiled_forward.program(g.plan, fewer) is None) == (inputs > most)


def test_nan_is_refused_naming_the_input(rng, calls):
    g = kernel_dag()
    x = kernel_dag_data(rng, 2)
    x["b"][1, 0] = np.inf
    with pytest.raises(gn.ShapeError, match=r"input 'b' contains 1 NaN or inf"):
        g.predict(x)
    assert len(calls) == 1


def test_read_only_inputs_beside_writeable_ones(rng, calls, monkeypatch):
    g = kernel_dag()
    x = kernel_dag_data(rng, 3)
    x["a"].setflags(write=False)
    got = g.predict(x)
    assert len(calls) == 1
    expected = _numpy_path(monkeypatch, lambda: g.predict(x))
    np.testing.assert_allclose(got["y"], expected["y"], rtol=1e-12, atol=1e-14)
