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

A model's arithmetic is a DAG, not a tree: ``t2 = t1 + t1`` reads one tree
twice, so 24 such lines spell a tree of 2^24 leaves. Everything here visits
each distinct subexpression once: an expression's :func:`key` is computed
once and stays short (a long one is replaced by its digest), walks keep a
set of what they have seen, and a merged sum links the node sets it merges
(:class:`Sources`) instead of copying them.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["DOUBLE_FORMULAS", "ELEMENTWISE", "FORMULAS", "NATIVE", "Const", "Op", "Sources", "Var", "build",
           "instance_nodes", "match", "snap", "walk"]

#: A key longer than this is replaced by its digest, so that a parent's key,
#: made of its arguments' keys, stays short however deep the expression.
_KEY_LIMIT = 200
#: A sum or product with more arguments than this is not merged into its
#: reader: a chain of n merges would copy n²/2 arguments, and no activation
#: has such a sum in it.
_MAX_ARGS = 64


class Sources:
    """The ONNX node indices an expression stands for: its own, and those of
    the expressions merged into it, linked rather than copied (a chain of n
    merged sums would otherwise hold n²/2 indices). Iterating yields each
    index once."""

    __slots__ = ("linked", "own")

    def __init__(self, own=(), linked=()):
        self.own = frozenset(own)
        self.linked = tuple(linked)

    def __iter__(self) -> Iterator[int]:
        seen_sets, seen, stack = set(), set(), [self]
        while stack:
            item = stack.pop()
            if id(item) in seen_sets:
                continue
            seen_sets.add(id(item))
            for index in item.own:
                if index not in seen:
                    seen.add(index)
                    yield index
            stack.extend(item.linked)

    def __repr__(self) -> str:
        return f"Sources({sorted(self)})"


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
    nodes: Sources = field(default_factory=Sources)  # ONNX node indices it stands for
    depth: int = field(init=False, compare=False, default=1)

    def __post_init__(self):
        if not isinstance(self.nodes, Sources):
            object.__setattr__(self, "nodes", Sources(self.nodes))
        object.__setattr__(self, "depth", 1 + max((getattr(a, "depth", 0) for a in self.args), default=0))

    def attr(self, name: str, default=None):
        return dict(self.attrs).get(name, default)


#: Elementwise operators kept as trees (the activations and their arithmetic).
ELEMENTWISE = {
    "Add", "Sub", "Mul", "Div", "Neg", "Pow", "Reciprocal", "Erf", "Exp", "Log", "Abs", "Max", "Min",
    "Where", "Greater",
    "Less", "Relu", "LeakyRelu", "Elu", "Selu", "Sigmoid", "Tanh", "Softplus", "Softmax", "Gelu",
    "HardSigmoid", "Softsign", "Mish",
}


def key(e) -> str:
    """A structural identity: equal keys, equal arithmetic. Computed once per
    expression, from its arguments' keys, and at most a digest's length more
    than :data:`_KEY_LIMIT` characters."""
    found = e.__dict__.get("_key")
    if found is not None:
        return found
    if isinstance(e, Var):
        text = f"v:{e.tensor}"
    elif isinstance(e, Const) and e.value.size > 16:
        digest = hashlib.blake2b(np.ascontiguousarray(e.value, dtype=np.float64).tobytes(), digest_size=20)
        text = f"c:{e.value.shape}:#{digest.hexdigest()}"
    elif isinstance(e, Const):
        text = f"c:{e.value.shape}:{e.value.ravel().tolist()}"
    else:
        text = f"{e.op}{e.attrs}({','.join(key(a) for a in e.args)})"
    if len(text) > _KEY_LIMIT:
        text = f"#{hashlib.blake2b(text.encode('utf-8', 'surrogatepass'), digest_size=20).hexdigest()}"
    object.__setattr__(e, "_key", text)
    return text


def walk(e) -> Iterator[Any]:
    """Each distinct subexpression of ``e`` once (``e`` first), without recursion."""
    seen, stack = set(), [e]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        if isinstance(item, Op):
            stack.extend(reversed(item.args))


def build(op: str, args: list, attrs: dict, tensor: str | None, index: int | None,
          single_use: Callable[[str | None], bool]) -> Any:
    """The canonical tree for ``op`` applied to ``args``, or a Const when every
    argument is one. ``single_use(tensor)``: nothing but this node reads it."""
    nodes = Sources() if index is None else Sources([index])
    if all(isinstance(a, Const) for a in args) and op in _FOLD:
        return Const(_fold(_FOLD[op], [a.value for a in args]))
    # Parts made by rewriting keep the node they come from, for messages.
    if op == "Sub":
        return build("Add", [args[0], _scaled(args[1], -1.0, single_use, None, nodes)], attrs, tensor, index,
                     single_use)
    if op == "Neg":
        return _scaled(args[0], -1.0, single_use, tensor, nodes)
    if op == "Div":
        if isinstance(args[1], Const):
            return build("Mul", [args[0], Const(1.0 / args[1].value)], attrs, tensor, index, single_use)
        return build("Mul", [args[0], Op("Reciprocal", (args[1],), (), None, nodes)], attrs, tensor, index,
                     single_use)
    if op == "Pow" and isinstance(args[1], Const) and args[1].value.size == 1 and float(args[1].value) in (2.0, 3.0):
        return build("Mul", [args[0]] * int(float(args[1].value)), attrs, tensor, index, single_use)
    if op == "Less":
        return Op("Greater", (args[1], args[0]), (), tensor, nodes)
    if op == "Reciprocal" and isinstance(args[0], Const):
        return Const(1.0 / args[0].value)
    if op in ("Add", "Mul"):
        return _associative(op, args, tensor, nodes, single_use)
    return Op(op, tuple(args), tuple(sorted(attrs.items())), tensor, nodes)


def _fold(function, values: list[np.ndarray]) -> np.ndarray:
    """``function`` of constants, as float64. A ValueError when they do not
    broadcast, or would broadcast to more values than they hold together
    (2n numbers in a file must not become n²)."""
    shape = np.broadcast_shapes(*(v.shape for v in values))
    if math.prod(shape) > sum(v.size for v in values):
        raise ValueError(f"constants of shapes {[v.shape for v in values]} broadcast to {shape}, more values "
                         f"than they hold; graphnet's constants are scalars and per-feature vectors")
    with np.errstate(all="ignore"):  # an overflow is caught where the weights are set (not finite)
        return np.asarray(function(*values), dtype=np.float64)


def _scaled(e, factor: float, single_use, tensor=None, nodes=None):
    if isinstance(e, Const):
        return Const(e.value * factor)
    return _associative("Mul", [Const(np.asarray(factor)), e], tensor, nodes or Sources(), single_use)


def _associative(op: str, args: list, tensor, nodes: Sources, single_use):
    flat, constants, linked = [], [], []
    room = _MAX_ARGS - len(args)
    for arg in args:
        if isinstance(arg, Op) and arg.op == op and (arg.tensor is None or single_use(arg.tensor)) \
                and len(arg.args) <= room:
            room -= len(arg.args)
            linked.append(arg.nodes)
            inner = arg.args
        else:
            inner = (arg,)
        for item in inner:
            (constants if isinstance(item, Const) else flat).append(item)
    if constants:
        folded = constants[0].value
        for c in constants[1:]:
            folded = _fold(np.add if op == "Add" else np.multiply, [folded, c.value])
        neutral = 0.0 if op == "Add" else 1.0
        if not (folded.size == 1 and float(folded.ravel()[0]) == neutral):
            flat.append(Const(np.asarray(folded, dtype=np.float64)))
    if not flat:
        return Const(np.asarray(0.0 if op == "Add" else 1.0))
    if linked:
        nodes = Sources(nodes.own, (*nodes.linked, *linked))
    if len(flat) == 1:  # adds 0 or multiplies by 1: its argument itself
        return _passed_through(flat[0], tensor, nodes, single_use)
    return Op(op, tuple(sorted(flat, key=key)), (), tensor, nodes)


def _passed_through(arg, tensor, nodes: Sources, single_use):
    """``arg`` as the result of a node that adds 0 to it or multiplies it by 1
    (an ELU's ``alpha = 1`` written out). Read by nothing else, it becomes that
    node's tensor and takes in the node, as a merged sum does: the node stays
    part of the activation around it. Read elsewhere too, it stays as it is."""
    if not isinstance(arg, Op) or tensor is None or not (arg.tensor is None or single_use(arg.tensor)):
        return arg
    return Op(arg.op, arg.args, arg.attrs, tensor, Sources(nodes.own, (*nodes.linked, arg.nodes)))


_FOLD = {
    "Max": np.maximum, "Min": np.minimum, "Log": np.log,
    "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Neg": np.negative,
    "Pow": np.power, "Reciprocal": np.reciprocal, "Exp": np.exp, "Abs": np.abs,
}

# ------------------------------------------------------------------ matching
_SQRT2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_SELU = (1.6732632423543772848170429916717, 1.0507009873554804934193349852946)

# Activations as arithmetic, in ONNX operators: ``"z"`` is the input, a
# string in capitals a parameter (a scalar constant), a float a constant.
# The exporter writes these forms (``FORMULAS``) where onnxruntime lacks a
# kernel, and the importer recognises them and the exporters' forms below.
_SOFTPLUS = ("Add", ("Relu", "z"), ("Log", ("Add", ("Exp", ("Neg", ("Abs", "z"))), 1.0)))
_NEGATIVE = ("Sub", ("Exp", ("Min", "z", 0.0)), 1.0)  # e^z - 1 for z <= 0, without overflow
FORMULAS: dict[str, tuple] = {
    "leaky_relu": ("Max", "z", ("Mul", "z", "NEGATIVE_SLOPE")),
    "elu": ("Where", ("Greater", "z", 0.0), "z", ("Mul", _NEGATIVE, "ALPHA")),
    "selu": ("Where", ("Greater", "z", 0.0), ("Mul", "z", _SELU[1]), ("Mul", _NEGATIVE, _SELU[0] * _SELU[1])),
    "softplus": _SOFTPLUS,
    "mish": ("Mul", "z", ("Tanh", _SOFTPLUS)),
    "hard_sigmoid": ("Max", ("Min", ("Add", ("Mul", "z", "ALPHA"), "BETA"), 1.0), 0.0),
    "softsign": ("Div", "z", ("Add", ("Abs", "z"), 1.0)),
    "silu": ("Mul", "z", ("Sigmoid", "z")),
}
#: The forms written instead in float64: onnxruntime before 1.31 fuses ``z * Sigmoid(z)``
#: into its QuickGelu, which has no double kernel, and then refuses to load the model.
DOUBLE_FORMULAS: dict[str, tuple] = {"silu": ("Div", "z", ("Add", ("Exp", ("Neg", "z")), 1.0))}
_GELU = ("Mul", ("Mul", "z", ("Add", ("Erf", ("Div", "z", _SQRT2)), 1.0)), 0.5)
_GELU_TANH = ("Mul", ("Mul", "z", ("Add", ("Tanh", ("Mul", ("Add", "z", ("Mul", ("Mul", ("Mul", "z", "z"), "z"), 0.044715)),
                                                        _SQRT_2_OVER_PI)), 1.0)), 0.5)
_RECOGNISED: list[tuple[tuple, Any]] = [
    (_GELU, {"name": "gelu", "approximate": False}),
    (_GELU_TANH, {"name": "gelu", "approximate": True}),
    (("Mul", "z", ("Tanh", ("Softplus", "z"))), "mish"),
    (("Div", "z", ("Add", ("Abs", "z"), 1.0)), "softsign"),
    # torch's dynamo Softplus: z itself above a threshold t, where softplus(z) - z
    # = log1p(exp(-z)) < exp(-t) (2e-9 at t = 20): the same function in float32.
    (("Where", ("Greater", "z", "THRESHOLD"), "z", ("Softplus", "z")), "softplus"),
    *((formula, name) for name, formula in FORMULAS.items()),
    *((formula, name) for name, formula in DOUBLE_FORMULAS.items()),
]
_CHECKS = {"THRESHOLD": lambda v: v >= 15.0}
_COMMUTATIVE = ("Add", "Mul", "Max", "Min")
_MARK = "\0"  # tensor names of a template's variables


def _template(formula) -> Any:
    """A formula as a canonical tree: the input and parameters become marked Vars."""
    if isinstance(formula, str):
        return Var(f"{_MARK}{formula}")
    if isinstance(formula, float):
        return Const(np.asarray(formula))
    op, *args = formula
    return build(op, [_template(a) for a in args], {}, None, None, lambda t: True)


def _config(name_or_config, binding: dict) -> Any:
    """The activation config, parameters filled in from the matched constants."""
    if isinstance(name_or_config, dict) or not binding.keys() - {"z", "THRESHOLD"}:
        return name_or_config
    params = {k.lower(): snap(v) if float(np.float32(v)) == v else v
              for k, v in binding.items() if k not in ("z", "THRESHOLD")}
    return {"name": name_or_config, **params}


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
    for template, config in _TEMPLATES:
        for binding in _unify(template, e, {}):
            return _config(config, binding), binding["z"]
    return None


def _unify(t, e, binding: dict) -> Iterator[dict]:
    if isinstance(t, Var):
        name = t.tensor[len(_MARK):]
        if name == "z":
            if isinstance(e, Const):
                return
            if "z" in binding:
                if key(binding["z"]) == key(e):
                    yield binding
                return
            yield {**binding, "z": e}
        elif isinstance(e, Const) and e.value.size == 1:  # a parameter
            value = float(e.value.ravel()[0])
            if name in binding and not math.isclose(binding[name], value, rel_tol=1e-6):
                return
            if _CHECKS.get(name, lambda v: True)(value):
                yield {**binding, name: value}
        return
    if isinstance(t, Const):
        if isinstance(e, Const) and e.value.size == 1 and t.value.size == 1:
            want, value = float(t.value.ravel()[0]), float(e.value.ravel()[0])
            if math.isclose(value, want, rel_tol=1e-6, abs_tol=0.0):
                yield binding
        return
    if t.op in ("Add", "Mul") and len(t.args) == 2:
        # A parameter at its neutral value (alpha = 1, beta = 0) leaves no operator behind.
        params = [a for a in t.args if isinstance(a, Var) and a.tensor != f"{_MARK}z"]
        if len(params) == 1 and not (isinstance(e, Op) and e.op == t.op):
            (other,) = [a for a in t.args if a is not params[0]]
            neutral = {params[0].tensor[len(_MARK):]: 0.0 if t.op == "Add" else 1.0}
            if all(binding.get(k, v) == v for k, v in neutral.items()):
                yield from _unify(other, e, {**binding, **neutral})
            return
    if not isinstance(e, Op) or e.op != t.op or len(e.args) != len(t.args) or e.attrs != t.attrs:
        return
    orders = itertools.permutations(e.args) if t.op in _COMMUTATIVE else [e.args]
    for order in orders:
        yield from _unify_all(t.args, order, binding)


def _unify_all(templates, exprs, binding) -> Iterator[dict]:
    if not templates:
        yield binding
        return
    for found in _unify(templates[0], exprs[0], binding):
        yield from _unify_all(templates[1:], exprs[1:], found)


_TEMPLATES = [(_template(formula), config) for formula, config in _RECOGNISED]


def instance_nodes(e, inner) -> tuple[set[int], list[str]]:
    """ONNX nodes and intermediate tensors of ``e`` outside the subtree ``inner``
    (the matched activation's own operators)."""
    stop = key(inner)
    nodes: set[int] = set()
    tensors: list[str] = []
    seen, stack = set(), [e]
    while stack:
        x = stack.pop()
        if not isinstance(x, Op) or id(x) in seen or key(x) == stop:
            continue
        seen.add(id(x))
        nodes.update(x.nodes)
        if x is not e and x.tensor is not None:
            tensors.append(x.tensor)
        stack.extend(x.args)
    return nodes, tensors
