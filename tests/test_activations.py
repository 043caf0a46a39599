"""Activation values against plain float64 formulas, dtype, stability, registry."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import graphnet as gn
from graphnet import GraphError, activations

Z = np.array([[-30.0, -2.0, -0.5, 0.0], [0.3, 1.0, 4.0, 30.0]])


def _erf(v):
    return np.vectorize(math.erf)(v)


REFERENCE = {
    "linear": lambda z: z,
    "relu": lambda z: np.maximum(z, 0),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    "elu": lambda z: np.where(z > 0, z, np.exp(z) - 1),
    "gelu": lambda z: 0.5 * z * (1 + _erf(z / np.sqrt(2))),
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "tanh": np.tanh,
    "softplus": lambda z: np.log1p(np.exp(-np.abs(z))) + np.maximum(z, 0),
    "softmax": lambda z: np.exp(z - z.max(1, keepdims=True))
    / np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True),
    "selu": lambda z: 1.0507009873554805 * np.where(z > 0, z, 1.6732632423543772 * (np.exp(z) - 1)),
    "silu": lambda z: z / (1 + np.exp(-z)),
    "swish": lambda z: z / (1 + np.exp(-z)),
    "mish": lambda z: z * np.tanh(np.log1p(np.exp(-np.abs(z))) + np.maximum(z, 0)),
    "hard_sigmoid": lambda z: np.clip(z / 6 + 0.5, 0, 1),
    "softsign": lambda z: z / (1 + np.abs(z)),
}


def test_every_registered_activation_has_a_reference():
    assert set(REFERENCE) == set(activations.ACTIVATIONS)


@pytest.mark.parametrize("name", sorted(activations.ACTIVATIONS))
def test_forward_matches_the_formula(name):
    a = activations.get(name).forward(Z.copy())
    np.testing.assert_allclose(a, REFERENCE[name](Z), rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("name", sorted(activations.ACTIVATIONS))
def test_float32_stays_float32_and_finite_at_extremes(name):
    z = np.array([[-1e4, -100.0, 0.0, 100.0, 1e4]], dtype=np.float32)
    act = activations.get(name)
    a = act.forward(z.copy())
    assert a.dtype == np.float32
    assert np.isfinite(a).all()
    grad = act.backward(a.copy(), np.ones_like(a), z.copy())
    assert grad.dtype == np.float32
    assert np.isfinite(grad).all()


@pytest.mark.parametrize("name", sorted(activations.ACTIVATIONS))
def test_forward_in_place_equals_out_of_place(name):
    act = activations.get(name)
    z = Z.copy()
    expected = act.forward(Z.copy())
    result = act.forward(z, out=z)
    np.testing.assert_array_equal(result, expected)
    assert result is z


def test_sigmoid_keeps_relative_precision_for_very_negative_inputs():
    a = activations.get("sigmoid").forward(np.array([[-30.0]]))
    assert a[0, 0] == pytest.approx(math.exp(-30) / (1 + math.exp(-30)), rel=1e-12)


def test_gelu_approximate_is_close_to_exact():
    z = np.linspace(-5, 5, 101).reshape(1, -1)
    exact = activations.GELU().forward(z.copy())
    approx = activations.GELU(approximate=True).forward(z.copy())
    assert np.max(np.abs(exact - approx)) < 1e-3
    assert not np.array_equal(exact, approx)


def test_parameters_round_trip_through_config():
    for act in (activations.LeakyReLU(0.2), activations.ELU(0.5), activations.GELU(approximate=True)):
        rebuilt = activations.get(act.get_config())
        assert rebuilt == act and rebuilt is not act


def test_get_accepts_none_names_and_instances():
    assert activations.get(None).name == "linear"
    relu = activations.ReLU()
    assert activations.get(relu) is relu
    assert isinstance(activations.get("tanh"), activations.Tanh)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(GraphError, match=r"unknown activation 'prelu'.*'gelu'.*'relu'"):
        activations.get("prelu")


def test_bad_parameters_are_refused():
    with pytest.raises(GraphError, match="negative_slope must be in"):
        activations.LeakyReLU(-0.1)
    with pytest.raises(GraphError, match="alpha must be > 0"):
        activations.ELU(0)
    with pytest.raises(GraphError, match=r"bad parameters \{'beta': 2\}"):
        activations.get({"name": "elu", "beta": 2})
    with pytest.raises(GraphError, match="must be a name"):
        activations.get(42)


def test_swish_is_keras_name_for_silu_and_hard_sigmoid_takes_keras_2_slope():
    assert activations.get("swish") == activations.get("silu")
    assert activations.get("swish").get_config() == {"name": "silu"}
    keras2 = activations.get({"name": "hard_sigmoid", "alpha": 0.2})
    z = np.array([[-3.0, -1.0, 0.0, 1.0, 3.0]])
    np.testing.assert_allclose(keras2.forward(z.copy()), np.clip(0.2 * z + 0.5, 0, 1))
    with pytest.raises(GraphError, match="hard_sigmoid: alpha must be a positive finite number"):
        activations.get({"name": "hard_sigmoid", "alpha": float("inf")})



@pytest.mark.parametrize("approximate", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_of_finite_values_far_out_is_its_limit_without_warnings(approximate, dtype):
    """z**3 (tanh form) and z**2 (the pdf) overflowed beyond 7e12 in float32:
    numpy's warning, and the tanh form's derivative inf * 0 = NaN where it is 0 or 1."""
    act = activations.GELU(approximate=approximate)
    z = np.array([[-1e30, -1e20, -1e13, 1e13, 1e20, 1e30]], dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = act.forward(z.copy())
        derivative = act.backward(value.copy(), np.ones_like(z), z=z.copy())
    np.testing.assert_array_equal(value, np.where(z > 0, z, 0))
    np.testing.assert_array_equal(derivative, (z > 0).astype(dtype))


def test_leaky_relu_slope_zero_backward_matches_torch():
    """With slope 0 a negative z gives -0.0, which must not pass the gradient."""
    torch = pytest.importorskip("torch")
    act = gn.activations.get({"name": "leaky_relu", "negative_slope": 0.0})
    z = np.array([[-2.0, -0.5, 0.0, 0.5, 2.0]])
    a = act.forward(z.copy())
    grad = act.backward(a.copy(), np.ones_like(z), z.copy())
    t = torch.tensor(z, requires_grad=True)
    torch.nn.functional.leaky_relu(t, 0.0).sum().backward()
    np.testing.assert_array_equal(grad, t.grad.numpy())


def test_leaky_relu_backward_matches_torch_for_a_slope():
    torch = pytest.importorskip("torch")
    act = gn.activations.get({"name": "leaky_relu", "negative_slope": 0.3})
    z = np.array([[-2.0, -0.5, 0.5, 2.0]])
    g_in = np.array([[1.0, 2.0, 3.0, 4.0]])
    grad = act.backward(act.forward(z.copy()), g_in.copy(), z.copy())
    t = torch.tensor(z, requires_grad=True)
    (torch.nn.functional.leaky_relu(t, 0.3) * torch.tensor(g_in)).sum().backward()
    np.testing.assert_allclose(grad, t.grad.numpy(), rtol=1e-15)


def test_hard_sigmoid_refuses_alpha_zero():
    with pytest.raises(gn.GraphError, match="hard_sigmoid: alpha must be a positive finite number, got 0.0"):
        gn.activations.get({"name": "hard_sigmoid", "alpha": 0.0})
