"""Activations: each one a small class holding both directions.

Keeping ``forward`` and ``backward`` side by side means nothing can be registered
without its derivative, and the gradient check in ``tests/test_gradients.py``
runs over every entry of :data:`ACTIVATIONS` automatically.

Derivatives are taken from the activation's *output* ``a`` wherever the maths
allows it (relu: ``a > 0``; sigmoid: ``a(1 - a)``; tanh: ``1 - a²``), so the
execution plan need not keep the pre-activation ``z``. GELU, SiLU (Swish) and
Mish are the exceptions (:attr:`Activation.needs_input`): their derivatives need ``z``.

Contract of ``backward(a, grad, z=None)``: return ``dL/dz`` given ``dL/da``. It
may overwrite ``a`` and ``grad`` (the plan no longer needs them), which saves a
buffer per node and a pass over memory.

Both directions take the array module as ``xp`` (numpy by default; the plan
passes CuPy on a GPU, see :mod:`graphnet.backend`) and call only functions
numpy and CuPy share; ``expit`` and ``erf`` come from :func:`~graphnet.backend.special`.

Custom activations
------------------
Subclass :class:`Activation`, set ``name``, and write ``forward(z)`` (``a``,
of ``z``'s shape) and ``backward(a, grad)`` (``dL/dz`` from ``a = f(z)`` and
``grad = dL/da``); ``backward`` may also take ``z``, the pre-activation
(the engine then keeps it), and both may take ``xp=`` to run on a GPU. The
engine adapts these short forms once, when the class is made
(:mod:`graphnet._protocols`), and checks the shape of what they return.
``gn.register(Cube)`` makes ``activation="cube"`` (and files naming it)
find the class; ``gn.load(path, custom_objects={"cube": Cube})`` does it for
one load only. Parameters go in ``__init__`` and ``get_config()``, which
returns them as a dict of JSON-safe values (``{"alpha": self.alpha}``;
graphnet adds the ``name``), as :class:`LeakyReLU` shows. Check the
derivative with :func:`graphnet.check_gradients`. ONNX export knows
graphnet's own activations only, and says so for a custom one.

>>> import numpy as np, graphnet as gn
>>> class Cube(gn.activations.Activation):
...     name = "cube"
...     def forward(self, z):
...         return z ** 3
...     def backward(self, a, grad, z):
...         return grad * 3 * z ** 2
>>> _ = gn.register(Cube)
>>> g = gn.Sequential([gn.Input(2), gn.Dense(3, activation="cube"), gn.Dense(1)], seed=0, dtype="float64")
>>> gn.check_gradients(g, np.ones((4, 2)), np.zeros(4)).ok
True
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from . import _protocols
from ._registry import add_family, lookup
from ._settings import Checked
from .backend import special
from ._validation import check_bool, check_number
from .errors import GraphError

__all__ = [
    "Activation",
    "Linear",
    "ReLU",
    "LeakyReLU",
    "ELU",
    "GELU",
    "Sigmoid",
    "Tanh",
    "Softplus",
    "Softmax",
    "SELU",
    "SiLU",
    "Mish",
    "HardSigmoid",
    "Softsign",
    "ACTIVATIONS",
    "get",
    "is_builtin",
]

#: True while this module defines graphnet's own classes (see ``__init_subclass__``).
_LOADING = True


class Activation(Checked):
    """Base class. Subclasses set :attr:`name` and implement both directions
    (a custom one may write them shorter: see the module docs)."""

    name: ClassVar[str] = ""
    #: ``backward`` needs the pre-activation ``z`` (not only the output ``a``);
    #: set by itself for a custom ``backward`` that requires ``z``.
    needs_input: ClassVar[bool] = False
    #: The relu family: a unit can be dead (0 on a whole batch), which
    #: :mod:`graphnet.statistics` counts.
    relu_family: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not _LOADING:  # graphnet's own, made while this module loads, are in the engine's form
            _protocols.adapt(cls, "activation")

    def forward(self, z: np.ndarray, out: np.ndarray | None = None, xp=np) -> np.ndarray:
        """``a = f(z)`` for a batch ``z`` of shape ``(batch, size)``; ``out`` may be ``z``;
        ``xp`` is the array module of ``z`` (numpy, or CuPy on a GPU)."""
        raise NotImplementedError

    def backward(
        self, a: np.ndarray, grad: np.ndarray, z: np.ndarray | None = None, xp=np
    ) -> np.ndarray:
        """``dL/dz`` from ``a = f(z)`` and ``grad = dL/da``; may overwrite ``a`` and ``grad``."""
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """JSON-safe description; ``get(config)`` rebuilds an equal activation."""
        return {"name": self.name}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Activation) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash(self.name)  # equal parts have equal configs, names included; a config may hold lists

    def __repr__(self) -> str:
        params = {k: v for k, v in self.get_config().items() if k != "name"}
        args = ", ".join(f"{k}={v!r}" for k, v in params.items())
        return f"{type(self).__name__}({args})"

    def __str__(self) -> str:
        return self.name


def _write(out: np.ndarray | None, value: np.ndarray) -> np.ndarray:
    if out is None:
        return value
    out[...] = value
    return out


class Linear(Activation):
    """The identity: ``a = z``."""

    name = "linear"

    def forward(self, z, out=None, xp=np):
        return z if out is None or out is z else _write(out, z)

    def backward(self, a, grad, z=None, xp=np):
        return grad


class ReLU(Activation):
    """``max(z, 0)``."""

    name = "relu"
    relu_family = True

    def forward(self, z, out=None, xp=np):
        return xp.maximum(z, 0, out=out)

    def backward(self, a, grad, z=None, xp=np):
        # The 0/1 derivative (a > 0), written over a as floats. np.greater is one
        # vectorised pass; np.sign, which gives the same numbers, takes a slow
        # path on zeros (half of a relu's outputs): 5-30x slower here.
        xp.greater(a, 0, out=a, casting="unsafe")
        return xp.multiply(grad, a, out=grad)


class LeakyReLU(Activation):
    """``z`` for ``z > 0``, else ``negative_slope * z`` (PyTorch's default slope).

    Parameters
    ----------
    negative_slope : float, default 0.01
        The slope for ``z <= 0``, in [0, 1).
    """

    name = "leaky_relu"
    relu_family = True

    def __init__(self, negative_slope: float = 0.01):
        self.negative_slope = check_number(negative_slope, "leaky_relu: negative_slope", 0.0, 1.0,
                                           high_open=True, expected="in [0, 1)")

    def forward(self, z, out=None, xp=np):
        return xp.maximum(z, z * self.negative_slope, out=out)

    def backward(self, a, grad, z=None, xp=np):
        # With a slope in [0, 1), a > 0 exactly where z > 0.
        one, slope = a.dtype.type(1), a.dtype.type(self.negative_slope)
        return xp.multiply(grad, xp.where(a > 0, one, slope), out=grad)

    def get_config(self):
        return {"name": self.name, "negative_slope": self.negative_slope}


class ELU(Activation):
    """``z`` for ``z > 0``, else ``alpha * (exp(z) - 1)``.

    Parameters
    ----------
    alpha : float, default 1.0
        The value ``-alpha`` that very negative ``z`` tend to, a positive finite number.
    """

    name = "elu"
    relu_family = True

    def __init__(self, alpha: float = 1.0):
        self.alpha = check_number(alpha, "elu: alpha", 0.0, low_open=True, expected="> 0 and finite")

    def forward(self, z, out=None, xp=np):
        # expm1 of min(z, 0) so that large positive z never overflows.
        negative = xp.expm1(xp.minimum(z, 0)) * self.alpha
        return _write(out, xp.where(z > 0, z, negative))

    def backward(self, a, grad, z=None, xp=np):
        # For z <= 0, a = alpha(e^z - 1) so f'(z) = alpha e^z = a + alpha.
        derivative = xp.where(a > 0, a.dtype.type(1), a + self.alpha)
        return xp.multiply(grad, derivative, out=grad)

    def get_config(self):
        return {"name": self.name, "alpha": self.alpha}


class GELU(Activation):
    """``z * Φ(z)`` with the exact normal CDF (Keras's and PyTorch's default),
    or the tanh approximation when ``approximate=True``.

    Parameters
    ----------
    approximate : bool, default False
        Use the tanh approximation instead of the exact normal CDF.
    """

    name = "gelu"
    needs_input = True
    relu_family = True
    _SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
    _INV_SQRT_2 = 1.0 / math.sqrt(2.0)
    _INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
    _C = 0.044715

    def __init__(self, approximate: bool = False):
        self.approximate = check_bool(approximate, "gelu: approximate")

    #: Beyond it the tanh has saturated and the pdf is 0: z is clipped there in
    #: the terms whose powers of z would overflow (to inf, and inf * 0 to NaN).
    _SATURATED = 1e4

    def _clipped(self, z, xp=np):
        return xp.clip(z, -self._SATURATED, self._SATURATED)

    def _tanh_inner(self, clipped, xp=np):
        """The tanh approximation's tanh, of ``z`` clipped (:meth:`_clipped`)."""
        return xp.tanh(self._SQRT_2_OVER_PI * (clipped + self._C * clipped * clipped * clipped))

    def forward(self, z, out=None, xp=np):
        if self.approximate:
            value = 0.5 * z * (1 + self._tanh_inner(self._clipped(z, xp), xp))
        else:
            value = 0.5 * z * (1 + special(xp).erf(z * self._INV_SQRT_2))
        return _write(out, value)

    def backward(self, a, grad, z=None, xp=np):
        if z is None:
            raise GraphError("gelu: backward needs the pre-activation z")
        clipped = self._clipped(z, xp)
        if self.approximate:
            t = self._tanh_inner(clipped, xp)
            inner_grad = self._SQRT_2_OVER_PI * (1 + 3 * self._C * clipped * clipped)
            derivative = 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * inner_grad
        else:
            cdf = 0.5 * (1 + special(xp).erf(z * self._INV_SQRT_2))
            pdf = xp.exp(-0.5 * clipped * clipped) * self._INV_SQRT_2PI
            derivative = cdf + z * pdf
        return xp.multiply(grad, derivative, out=grad)

    def get_config(self):
        return {"name": self.name, "approximate": self.approximate}


class Sigmoid(Activation):
    """``1 / (1 + exp(-z))``, computed without overflow (``scipy.special.expit``)."""

    name = "sigmoid"

    def forward(self, z, out=None, xp=np):
        return special(xp).expit(z, out=out)

    def backward(self, a, grad, z=None, xp=np):
        xp.multiply(grad, a, out=grad)  # g·a
        xp.subtract(1, a, out=a)  # 1 - a
        return xp.multiply(grad, a, out=grad)  # g·a(1 - a)


class Tanh(Activation):
    """The hyperbolic tangent."""

    name = "tanh"

    def forward(self, z, out=None, xp=np):
        return xp.tanh(z, out=out)

    def backward(self, a, grad, z=None, xp=np):
        xp.multiply(a, a, out=a)
        xp.subtract(1, a, out=a)  # 1 - a²
        return xp.multiply(grad, a, out=grad)


class Softplus(Activation):
    """``log(1 + exp(z))``, stable for large ``|z|``."""

    name = "softplus"

    def forward(self, z, out=None, xp=np):
        return xp.logaddexp(0, z, out=out)

    def backward(self, a, grad, z=None, xp=np):
        # f'(z) = sigmoid(z) = 1 - exp(-a); expm1 keeps precision when a is tiny.
        xp.negative(a, out=a)
        xp.expm1(a, out=a)
        xp.negative(a, out=a)
        return xp.multiply(grad, a, out=grad)


class Softmax(Activation):
    """Softmax over the features of each row (the max is subtracted first)."""

    name = "softmax"

    def forward(self, z, out=None, xp=np):
        with np.errstate(over="ignore"):  # z - max below the dtype's range: -inf, whose exp is the 0 it should be
            out = xp.subtract(z, z.max(axis=1, keepdims=True), out=out)
        xp.exp(out, out=out)
        out /= out.sum(axis=1, keepdims=True)
        return out

    def backward(self, a, grad, z=None, xp=np):
        # dL/dz = a ⊙ (g - Σ_k g_k a_k), row by row.
        xp.multiply(grad, a, out=grad)
        a *= grad.sum(axis=1, keepdims=True)
        return xp.subtract(grad, a, out=grad)


class SELU(Activation):
    """``scale * z`` for ``z > 0``, else ``scale * alpha * (exp(z) - 1)``, with the
    self-normalising constants of Klambauer et al. (2017), as Keras and PyTorch."""

    name = "selu"
    ALPHA = 1.6732632423543772848170429916717
    SCALE = 1.0507009873554804934193349852946

    def forward(self, z, out=None, xp=np):
        negative = xp.expm1(xp.minimum(z, 0)) * (self.ALPHA * self.SCALE)
        return _write(out, xp.where(z > 0, xp.maximum(z, 0) * self.SCALE, negative))  # no -inf from z < -3e38

    def backward(self, a, grad, z=None, xp=np):
        # For z <= 0, a = s·alpha(e^z - 1), so f'(z) = s·alpha·e^z = a + s·alpha.
        derivative = xp.where(a > 0, a.dtype.type(self.SCALE), a + self.ALPHA * self.SCALE)
        return xp.multiply(grad, derivative, out=grad)


class SiLU(Activation):
    """``z * sigmoid(z)`` (also called swish)."""

    name = "silu"
    needs_input = True
    relu_family = True

    def forward(self, z, out=None, xp=np):
        return _write(out, z * special(xp).expit(z))

    def backward(self, a, grad, z=None, xp=np):
        if z is None:
            raise GraphError("silu: backward needs the pre-activation z")
        s = special(xp).expit(z)
        # d/dz z·s = s + z·s(1 - s) = s(1 + z(1 - s))
        derivative = s * (1 + z * (1 - s))
        return xp.multiply(grad, derivative, out=grad)


class Mish(Activation):
    """``z * tanh(softplus(z))`` (Misra, 2019)."""

    name = "mish"
    needs_input = True
    relu_family = True

    def forward(self, z, out=None, xp=np):
        return _write(out, z * xp.tanh(xp.logaddexp(0, z)))

    def backward(self, a, grad, z=None, xp=np):
        if z is None:
            raise GraphError("mish: backward needs the pre-activation z")
        t = xp.tanh(xp.logaddexp(0, z))
        # d/dz z·tanh(sp(z)) = t + z·(1 - t²)·sigmoid(z)
        derivative = t + z * (1 - t * t) * special(xp).expit(z)
        return xp.multiply(grad, derivative, out=grad)


class HardSigmoid(Activation):
    """``clip(alpha * z + beta, 0, 1)``. The defaults (1/6, 1/2) are Keras 3's
    and PyTorch's; Keras 2 and ONNX's operator default used ``alpha=0.2``.

    Parameters
    ----------
    alpha : float, default 1/6
        The slope, a positive finite number.
    beta : float, default 0.5
        The offset, a finite number.
    """

    name = "hard_sigmoid"

    def __init__(self, alpha: float = 1.0 / 6.0, beta: float = 0.5):
        self.alpha = check_number(alpha, "hard_sigmoid: alpha", 0.0, low_open=True,
                                  expected="a positive finite number")
        self.beta = check_number(beta, "hard_sigmoid: beta")

    def forward(self, z, out=None, xp=np):
        value = z * self.alpha
        value += self.beta
        return xp.clip(value, 0, 1, out=out if out is not None else value)

    def backward(self, a, grad, z=None, xp=np):
        inside = (a > 0) & (a < 1)
        return xp.multiply(grad, xp.where(inside, a.dtype.type(self.alpha), a.dtype.type(0)), out=grad)

    def get_config(self):
        return {"name": self.name, "alpha": self.alpha, "beta": self.beta}


class Softsign(Activation):
    """``z / (1 + |z|)``."""

    name = "softsign"

    def forward(self, z, out=None, xp=np):
        return _write(out, z / (1 + xp.abs(z)))

    def backward(self, a, grad, z=None, xp=np):
        # f'(z) = 1 / (1 + |z|)² = (1 - |a|)², since |a| = |z| / (1 + |z|).
        xp.abs(a, out=a)
        xp.subtract(1, a, out=a)
        xp.multiply(a, a, out=a)
        return xp.multiply(grad, a, out=grad)


#: Every activation by the name users pass as ``activation=``.
ACTIVATIONS: dict[str, type[Activation]] = {
    cls.name: cls
    for cls in (
        Linear, ReLU, LeakyReLU, ELU, GELU, Sigmoid, Tanh, Softplus, Softmax,
        SELU, SiLU, Mish, HardSigmoid, Softsign,
    )
}
#: Keras's name for silu.
ACTIVATIONS["swish"] = SiLU


def get(identifier: str | dict | Activation | None) -> Activation:
    """An activation from a name, a config dict, an instance, or ``None`` (linear).

    Parameters
    ----------
    identifier : str, dict, Activation or None
        A name (``"relu"``, or a registered one), a config dict, an instance (returned as is), or None.

    Raises
    ------
    GraphError
        For an unknown name (the message lists the known ones), bad
        parameters, or a custom activation that breaks the protocol (its
        ``get_config()`` included).
    """
    if identifier is None:
        return Linear()
    activation = lookup(identifier, ACTIVATIONS, "activation", Activation, "an Activation")
    if not is_builtin(activation):
        _check(type(activation))
        _protocols.config(activation, "activation")
    return activation


def is_builtin(activation: Activation) -> bool:
    """Whether ``activation`` is one of graphnet's own (exactly: a subclass
    may change the maths), which ONNX export and the GPU kernels know."""
    return type(activation) in _BUILTIN


def _check(cls: type) -> None:
    _protocols.check(cls, Activation, "activation")


_BUILTIN = frozenset(ACTIVATIONS.values())
_LOADING = False
add_family(Activation, ACTIVATIONS, "activation", _check)
