"""Elementwise ONNX arithmetic as expression trees, and the activations they spell.

Exporters write some activations as one operator (``Relu``, ``Gelu``) and
others as arithmetic: torch's GELU before opset 20 is ``Div, Erf, Add, Mul,
Mul`` (in an order that differs between its two exporters), SiLU is
``Mul(z, Sigmoid(z))``, its dynamo exporter's Softplus is
``Where(z > 20, z, Softplus(z))``. :mod:`graphnet.interop.onnx_import` keeps
elementwise operators as trees over the tensors they read (:class:`Var`
leaves, :class:`Const` scalars and vectors, :class:`Op` nodes) until
something non-elementwise reads them; :func:`match` then recognises an
activation by the tree's *shape* — the data flow — whatever order or names
the nodes had.

Trees are canonical so that equal arithmetic compares equal: ``a - b`` is
``a + (-1)·b``, ``a / b`` is ``a · Recip(b)`` (constants divided out),
``Pow(a, 2)`` is ``a · a``, constants of a sum or product are folded into
one, ``Less(a, b)`` is ``Greater(b, a)``, and the arguments of ``Add`` and
``Mul`` are sorted. A product or sum read by nothing but an enclosing product
(sum) is merged into it, so ``(z · A) · 0.5`` and ``0.5 · (A · z)`` agree; a
tensor read twice (the ``z`` of an expansion) is never merged away.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Var", "Const", "Op", "build", "match", "instance_nodes", "NATIVE", "ELEMENTWISE", "snap"]


@dataclass(frozen=True, eq=False)
class Var:
    """A tensor that is a layer's output (a node, an affine value or a concatenation)."""

    tensor: str


@dataclass(frozen=True, eq=False)
class Const:
    value: np.ndarray  # float64, a scalar or a vector over the features


@dataclass(frozen=True, eq=False)
class Op:
    op: str
    args: tuple
    attrs: tuple = ()  # sorted (name, value) pairs
    tensor: str | None = None  # the ONNX tensor it computes; None for parts made by rewriting
    nodes: frozenset = field(default_factory=frozenset)  # ONNX node indices it stands for

    def attr(self, name: str, default=None):
        return dict(self.attrs).get(name, default)


#: Elementwise operators kept as trees (the activations and their arithmetic).
ELEMENTWISE = {
    "Add", "Sub", "Mul", "Div", "Neg", "Pow", "Reciprocal", "Erf", "Exp", "Abs", "Where", "Greater",
    "Less", "Relu", "LeakyRelu", "Elu", "Selu", "Sigmoid", "Tanh", "Softplus", "Softmax", "Gelu",
    "HardSigmoid", "Softsign", "Mish",
}


def key(e) -> str:
    """A structural identity: equal keys, equal arithmetic."""
    if isinstance(e, Var):
        return f"v:{e.tensor}"
    if isinstance(e, Const):
        return f"c:{e.value.shape}:{e.value.ravel().tolist()}"
    return f"{e.op}{e.attrs}({','.join(key(a) for a in e.args)})"


def build(op: str, args: list, attrs: dict, tensor: str | None, index: int | None,
          single_use: Callable[[str | None], bool]) -> Any:
    """The canonical tree for ``op`` applied to ``args``, or a Const when every
    argument is one. ``single_use(tensor)``: nothing but this node reads it."""
    nodes = frozenset() if index is None else frozenset([index])
    if all(isinstance(a, Const) for a in args) and op in _FOLD:
        return Const(np.asarray(_FOLD[op](*[a.value for a in args]), dtype=np.float64))
    if op == "Sub":
        return build("Add", [args[0], _scaled(args[1], -1.0, single_use)], attrs, tensor, index, single_use)
    if op == "Neg":
        return _scaled(args[0], -1.0, single_use, tensor, nodes)
    if op == "Div":
        if isinstance(args[1], Const):
            return build("Mul", [args[0], Const(1.0 / args[1].value)], attrs, tensor, index, single_use)
        return build("Mul", [args[0], Op("Reciprocal", (args[1],))], attrs, tensor, index, single_use)
    if op == "Pow" and isinstance(args[1], Const) and args[1].value.size == 1 and float(args[1].value) in (2.0, 3.0):
        return build("Mul", [args[0]] * int(float(args[1].value)), attrs, tensor, index, single_use)
    if op == "Less":
        return Op("Greater", (args[1], args[0]), (), tensor, nodes)
    if op == "Reciprocal" and isinstance(args[0], Const):
        return Const(1.0 / args[0].value)
    if op in ("Add", "Mul"):
        return _associative(op, args, tensor, nodes, single_use)
    return Op(op, tuple(args), tuple(sorted(attrs.items())), tensor, nodes)


def _scaled(e, factor: float, single_use, tensor=None, nodes=frozenset()):
    if isinstance(e, Const):
        return Const(e.value * factor)
    return _associative("Mul", [Const(np.asarray(factor)), e], tensor, nodes, single_use)


def _associative(op: str, args: list, tensor, nodes, single_use):
    flat, constants = [], []
    for arg in args:
        if isinstance(arg, Op) and arg.op == op and (arg.tensor is None or single_use(arg.tensor)):
            nodes = nodes | arg.nodes
            inner = arg.args
        else:
            inner = (arg,)
        for item in inner:
            (constants if isinstance(item, Const) else flat).append(item)
    if constants:
        folded = constants[0].value
        for c in constants[1:]:
            folded = folded + c.value if op == "Add" else folded * c.value
        neutral = 0.0 if op == "Add" else 1.0
        if not (folded.size == 1 and float(folded.ravel()[0]) == neutral):
            flat.append(Const(np.asarray(folded, dtype=np.float64)))
    if not flat:
        return Const(np.asarray(0.0 if op == "Add" else 1.0))
    if len(flat) == 1:  # adds 0 or multiplies by 1: its argument itself
        return flat[0]
    return Op(op, tuple(sorted(flat, key=key)), (), tensor, nodes)


_FOLD = {
    "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Neg": np.negative,
    "Pow": np.power, "Reciprocal": np.reciprocal, "Exp": np.exp, "Abs": np.abs,
}

# ------------------------------------------------------------------ matching
_Z = object()  # the template's variable: the activation's input


@dataclass(frozen=True)
class _AtLeast:
    bound: float


def _t(op: str, *args, **attrs) -> tuple:
    return (op, args, attrs)


_SQRT_HALF = 1.0 / math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)

#: Expansions of activations, canonical, with the configs they stand for.
EXPANSIONS: list[tuple[tuple, Any]] = [
    (_t("Mul", 0.5, _Z, _t("Add", 1.0, _t("Erf", _t("Mul", _Z, _SQRT_HALF)))),
     {"name": "gelu", "approximate": False}),
    (_t("Mul", 0.5, _Z, _t("Add", 1.0, _t("Tanh", _t("Mul", _SQRT_2_OVER_PI,
                                                     _t("Add", _Z, _t("Mul", 0.044715, _Z, _Z, _Z)))))),
     {"name": "gelu", "approximate": True}),
    (_t("Mul", _Z, _t("Sigmoid", _Z)), "silu"),
    (_t("Mul", _Z, _t("Tanh", _t("Softplus", _Z))), "mish"),
    (_t("Mul", _Z, _t("Reciprocal", _t("Add", 1.0, _t("Abs", _Z)))), "softsign"),
    # torch's dynamo Softplus: z itself above a threshold t, where softplus(z) - z
    # = log1p(exp(-z)) < exp(-t) (2e-9 at t = 20): the same function in float32.
    (_t("Where", _t("Greater", _Z, _AtLeast(15.0)), _Z, _t("Softplus", _Z)), "softplus"),
]

_SELU = (1.6732632423543772848170429916717, 1.0507009873554804934193349852946)


def _native_selu(a):
    alpha, gamma = a.get("alpha", _SELU[0]), a.get("gamma", _SELU[1])
    if not (math.isclose(alpha, _SELU[0], rel_tol=1e-6) and math.isclose(gamma, _SELU[1], rel_tol=1e-6)):
        raise ValueError(f"alpha={alpha}, gamma={gamma}; graphnet's selu has the standard constants")
    return "selu"


def _native_softmax(a, opset):
    axis = a.get("axis", -1 if opset >= 13 else 1)
    if axis not in (-1, 1):
        raise ValueError(f"softmax over axis {axis}; graphnet's is over the features")
    return "softmax"


def _native_gelu(a):
    approximate = a.get("approximate", "none")
    approximate = approximate.decode() if isinstance(approximate, bytes) else approximate
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate={approximate!r}")
    return {"name": "gelu", "approximate": approximate == "tanh"}


#: One-operator activations: ONNX operator -> config from (attributes, opset);
#: a ValueError says why the attributes cannot be represented.
NATIVE: dict[str, Callable[[dict, int], Any]] = {
    "Relu": lambda a, o: "relu",
    "LeakyRelu": lambda a, o: {"name": "leaky_relu", "negative_slope": a.get("alpha", 0.01)},
    "Elu": lambda a, o: {"name": "elu", "alpha": a.get("alpha", 1.0)},
    "Selu": lambda a, o: _native_selu(a),
    "Sigmoid": lambda a, o: "sigmoid",
    "Tanh": lambda a, o: "tanh",
    "Softplus": lambda a, o: "softplus",
    "Softmax": _native_softmax,
    "Gelu": lambda a, o: _native_gelu(a),
    "HardSigmoid": lambda a, o: {"name": "hard_sigmoid", "alpha": snap(a.get("alpha", 0.2)),
                                 "beta": snap(a.get("beta", 0.5))},
    "Softsign": lambda a, o: "softsign",
    "Mish": lambda a, o: "mish",
}


def snap(value: float) -> float:
    """An ONNX float attribute (float32) read back as the number meant: 0.01,
    not 0.009999999776; 1/6, not 0.1666666716."""
    for exact in (1.0 / 6.0, 1.0 / 3.0):
        if np.float32(value) == np.float32(exact):
            return exact
    return float(str(np.float32(value)))


def match(e, opset: int) -> tuple[Any, Any] | None:
    """``(activation config, its input)`` when ``e`` is an activation applied to
    a subtree, else None. A ValueError says why a native one cannot be represented."""
    if not isinstance(e, Op):
        return None
    if e.op in NATIVE:
        return NATIVE[e.op](dict(e.attrs), opset), e.args[0]
    for template, config in EXPANSIONS:
        for binding in _unify(template, e, {}):
            return config, binding[_Z]
    return None


def _unify(t, e, binding: dict) -> Iterator[dict]:
    if t is _Z:
        if isinstance(e, Const):
            return
        if _Z in binding:
            if key(binding[_Z]) == key(e):
                yield binding
            return
        yield {**binding, _Z: e}
        return
    if isinstance(t, (float, int, _AtLeast)):
        if isinstance(e, Const) and e.value.size == 1:
            value = float(e.value.ravel()[0])
            if (value >= t.bound) if isinstance(t, _AtLeast) else math.isclose(value, t, rel_tol=1e-6):
                yield binding
        return
    op, args, attrs = t
    if not isinstance(e, Op) or e.op != op or len(e.args) != len(args):
        return
    if any(e.attr(k) != v for k, v in attrs.items()):
        return
    orders = itertools.permutations(e.args) if op in ("Add", "Mul") else [e.args]
    for order in orders:
        yield from _unify_all(args, order, binding)


def _unify_all(templates, exprs, binding) -> Iterator[dict]:
    if not templates:
        yield binding
        return
    for found in _unify(templates[0], exprs[0], binding):
        yield from _unify_all(templates[1:], exprs[1:], found)


def instance_nodes(e, inner) -> tuple[set[int], list[str]]:
    """ONNX nodes and intermediate tensors of ``e`` outside the subtree ``inner``
    (the matched activation's own operators)."""
    stop = key(inner)
    nodes: set[int] = set()
    tensors: list[str] = []

    def walk(x, root):
        if not isinstance(x, Op) or key(x) == stop:
            return
        nodes.update(x.nodes)
        if not root and x.tensor is not None:
            tensors.append(x.tensor)
        for a in x.args:
            walk(a, False)

    walk(e, True)
    return nodes, tensors
