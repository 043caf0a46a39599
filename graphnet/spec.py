"""The architecture as JSON-safe data: ``Graph.to_dict`` and ``Graph.from_dict``
(spec files that hold it are read by :mod:`graphnet.specfile`).

This is the structure of ``graph.json`` inside a model file and of spec files
(``.json``/``.yaml``). Reading it is strict, because a spec may come from
someone else: every field is type-checked, unknown fields are refused (a typo
must not pass silently), names are looked up in graphnet's own registries,
and nothing named in the data is ever imported or called.

Format (version 1)::

    {"format": "graphnet", "format_version": 1, "graphnet_version": "0.1.0",
     "name": "digits", "dtype": "float32", "seed": 0, "sequential": false,
     "nodes": [{"kind": "input", "name": "pixels", "size": 64},
               {"kind": "hidden", "name": "h1", "size": 32, "activation": "relu",
                "dropout": 0.0, "trainable": true},
               {"kind": "output", "name": "digit", "size": 10, "activation": "softmax",
                "loss": "categorical_crossentropy", "loss_weight": 1.0, "trainable": true}],
     "synapses": [{"src": "pixels", "dst": "h1", "init": "he_normal", "trainable": true}]}

In hand-written specs only ``nodes`` (with ``kind``, ``name``, ``size``) and
``synapses`` are required; a synapse may also be written ``["src", "dst"]``.
A synapse whose weights came from an array has ``"init": "array"``: it starts
at zero (a model file then supplies the values) and keeps that origin. A
``Sequential`` may carry a top-level ``loss``: the loss its later ``add``
calls give a new output (it must agree with the output node's own loss).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np

from . import _protocols, losses
from ._locks import read
from ._node import MAX_SIZE
from ._registry import custom_objects as custom_scope
from ._tabular import check_categories, check_columns
from ._text import clip, preview, shown
from ._topology import is_chain, refuse_cycles
from ._validation import is_int, is_number
from ._version import __version__
from .errors import GraphError
from .layers import Dense
from .network import Network, model_class

N = TypeVar("N", bound=Network)
from .nodes import KINDS

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "to_dict",
    "from_dict",
    "DEFAULT_MAX_SPEC_PARAMS",
]

FORMAT = "graphnet"
FORMAT_VERSION = 1

_TOP_FIELDS = {
    "format", "format_version", "graphnet_version", "name", "dtype", "seed",
    "sequential", "loss", "nodes", "synapses",
}
_NODE_FIELDS = {
    "input": {"kind", "name", "size", "columns", "categories", "normalize", "missing", "mean", "std"},
    "hidden": {"kind", "name", "size", "activation", "dropout", "trainable", "bias_regularizer"},
    "output": {"kind", "name", "size", "activation", "loss", "loss_weight", "trainable", "bias_regularizer",
               "classes"},
}
_SYNAPSE_FIELDS = {"src", "dst", "init", "trainable", "regularizer"}

#: Default bound on the parameters a spec may describe (``from_spec``,
#: ``from_dict``); ``max_params=None`` lifts it.
DEFAULT_MAX_SPEC_PARAMS = 100_000_000


def _short(config: dict[str, Any]) -> str | dict[str, Any]:
    """An activation or loss config as its bare name when it has no parameters."""
    return config["name"] if len(config) == 1 else config


@read
def to_dict(graph: Network) -> dict[str, Any]:
    """The graph's architecture (no weights) as JSON-safe data: the structure
    that :func:`from_dict` reads back (see the module docs for the format)."""
    nodes = []
    for node in graph.nodes.values():
        config = node.get_config()
        if "activation" in config:
            config["activation"] = _short(config["activation"])
        if "loss" in config:
            config["loss"] = _short(config["loss"])
        nodes.append(config)
    data = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "graphnet_version": __version__,
        "name": graph.name,
        "dtype": graph.dtype.name,
        "seed": graph.seed if isinstance(graph.seed, int) else None,
        # A Sequential that was branched (add_output, connect) is a plain graph now.
        "sequential": graph.kind == "sequential" and graph.is_chain,
        "nodes": nodes,
        "synapses": [s.get_config() for s in graph.synapses],
    }
    if graph.kind == "sequential" and graph.loss is not None:
        loss = graph.loss
        data["loss"] = (loss if isinstance(loss, (str, dict))
                        else _short(_protocols.config(loss, "loss", f"graph {graph.name!r}: ")))
    return data


def from_dict(cls: type[N] | None, data: Mapping[str, Any],
              max_params: int | None = DEFAULT_MAX_SPEC_PARAMS, custom_objects=None) -> N:
    """A new Graph (or Sequential) from :func:`to_dict`'s structure
    (``Graph.from_dict(data)``).

    Parameters
    ----------
    cls : type or None
        This function's own (``Graph.from_dict(data)`` passes its class and
        takes no ``cls``): the class to make; a Sequential spec makes the
        Sequential class (``cls`` when it is one). None: the registered
        ``Graph`` and ``Sequential``.
    data : mapping
    max_params : int or None
        Refuse architectures with more parameters than this (100 million by
        default, as for spec files) before any weight is allocated; model
        files pass a bound derived from the bytes of their weights. ``None``
        lifts the limit.
    custom_objects : dict name -> class, optional
        Custom activations and losses the data names, found by these names
        for this call only (``gn.register`` makes them known everywhere).

    Raises
    ------
    GraphError
        Naming the field (``nodes[2].size``), what was expected and what was found;
        for unknown activations, losses, kinds or initialisers (an unknown
        name says to register its class or pass ``custom_objects``); for a newer format
        version; for synapses naming unknown nodes; for a cycle; for more
        parameters than ``max_params`` (or than memory can hold).
    """
    if max_params is not None and not is_int(max_params, 0):
        raise GraphError(f"max_params must be None or an integer >= 0, got {shown(max_params)}")
    _expect(isinstance(data, Mapping), "spec", "a mapping", data)
    _fields(data, _TOP_FIELDS, "spec")
    fmt = data.get("format", FORMAT)
    _expect(fmt == FORMAT, "spec.format", repr(FORMAT), fmt)
    version = data.get("format_version", FORMAT_VERSION)
    _expect(is_int(version, 1),
            "spec.format_version", "a positive integer", version)
    if version > FORMAT_VERSION:
        raise GraphError(
            f"spec.format_version is {version}, but this graphnet ({__version__}) reads "
            f"format version {FORMAT_VERSION} and older; upgrade graphnet to read it"
        )
    name = data.get("name", "graph")
    _expect(isinstance(name, str) and name != "", "spec.name", "a non-empty string", name)
    dtype = data.get("dtype", "float32")
    _expect(dtype in ("float32", "float64"), "spec.dtype", "'float32' or 'float64'", dtype)
    seed = data.get("seed")
    _expect(seed is None or is_int(seed, 0),
            "spec.seed", "null or an integer >= 0", seed)
    sequential = data.get("sequential", False)
    _expect(isinstance(sequential, (bool, np.bool_)), "spec.sequential", "true or false", sequential)
    sequential = bool(sequential)
    if data.get("loss") is not None:
        _expect(sequential, "spec.loss", "no top-level loss unless sequential is true "
                "(give each output node its own loss)", data["loss"])
        _expect(isinstance(data["loss"], (str, Mapping)), "spec.loss", "a name or a mapping", data["loss"])
        if isinstance(data["loss"], Mapping):
            _parameters(data["loss"], "spec.loss")
    nodes = data.get("nodes")
    # An empty list is an empty graph (Graph() saves as one, so it must load).
    _expect(isinstance(nodes, list), "spec.nodes", "a list", nodes)
    synapses = [_synapse(s, i) for i, s in enumerate(_list(data.get("synapses", []), "spec.synapses"))]

    configs = [_node(n, i) for i, n in enumerate(nodes)]
    # a numeric input's size is its data columns: missing="indicator" doubles what its synapses see
    sizes = {c["name"]: c["size"] * (2 if c.get("missing") == "indicator" else 1) for c in configs}
    if len(sizes) != len(configs):
        counts = Counter(c["name"] for c in configs)  # linear: a spec may list 100,000 nodes
        repeated = sorted(n for n, k in counts.items() if k > 1)
        raise GraphError(f"spec.nodes: names must be unique, repeated: {preview(repeated)}")
    for i, s in enumerate(synapses):
        for end in ("src", "dst"):
            if s[end] not in sizes:
                raise GraphError(
                    f"spec.synapses[{i}].{end} names unknown node {shown(s[end])}; "
                    f"nodes: {preview(sizes)}"
                )
    total = sum(c["size"] for c in configs if c["kind"] != "input")
    total += sum(sizes[s["src"]] * sizes[s["dst"]] for s in synapses)
    if max_params is not None and total > max_params:
        hint = "; pass max_params=None to lift it if you trust the spec" if max_params == DEFAULT_MAX_SPEC_PARAMS else ""
        raise GraphError(f"spec describes {total:,} parameters, more than the limit of {max_params:,}{hint}")
    try:
        with custom_scope(custom_objects):
            return _build(cls, data, configs, synapses, name, seed, dtype, sequential)
    except GraphError:
        raise
    except (MemoryError, OverflowError, ValueError) as exc:  # numpy's "array is too big", or no memory left
        raise GraphError(
            f"spec describes {total:,} parameters: building them ran out of memory ({type(exc).__name__})"
        ) from exc


def _build(cls, data, configs, synapses, name, seed, dtype, sequential):
    """The graph itself, from checked node and synapse configs."""
    if sequential:
        return _sequential(model_class("sequential", cls), data, configs, synapses, name, seed, dtype)
    refuse_cycles([(s["src"], s["dst"]) for s in synapses], "spec.synapses")
    graph = model_class("graph", cls)(name=name, seed=seed, dtype=dtype)
    for i, config in enumerate(configs):
        graph.add_node(_build_node(config, f"spec.nodes[{i}]"))
    # One linear check above instead of a search per synapse: a hostile spec
    # with its synapses in an awkward order cannot make loading quadratic.
    with graph.acyclic_promised():
        for i, s in enumerate(synapses):
            try:
                synapse = graph.connect(s["src"], s["dst"], init=_drawable(s["init"]), trainable=s["trainable"],
                                        regularizer=s["regularizer"])
            except GraphError as exc:
                raise type(exc)(f"spec.synapses[{i}]: {clip(str(exc), 500)}") from None
            if s["init"] == "array":
                synapse.init = "array"
    return graph


def _drawable(init: str | None) -> str | None:
    """Weights that came from an array are in the weights file (or lost, for a
    bare spec): start them at zero, but keep ``"array"`` as their recorded origin."""
    return "zeros" if init == "array" else init


def _sequential(cls, data, configs, synapses, name, seed, dtype):
    """A Sequential must be exactly the chain of its nodes, input first."""
    found = [(s["src"], s["dst"]) for s in synapses]
    kinds = [c["kind"] for c in configs]
    if not is_chain([c["name"] for c in configs], kinds, found):
        raise GraphError(
            "spec.sequential is true, so nodes must be an input, hidden nodes, then one output, "
            f"joined in order; got kinds {preview(kinds, 8)} and synapses {preview(found, 8)}"
        )
    last = configs[-1]
    # ``loss`` on top is the Sequential's own (the loss later ``add`` calls give
    # the new output); the output node's loss is what it trains with now.
    model_loss = data.get("loss")
    node_loss = last.get("loss", model_loss)
    if model_loss is not None and node_loss is not None:
        try:
            same = losses.get(model_loss) == losses.get(node_loss)
        except GraphError as exc:
            raise GraphError(f"spec.loss: {clip(str(exc), 500)}") from None
        if not same:
            raise GraphError(
                f"spec.loss {shown(model_loss)} disagrees with the loss {shown(node_loss)} of the output "
                f"{shown(last['name'])}; give one of them, or the same in both"
            )
    layers = [_build_node(configs[0], "spec.nodes[0]")]
    for config, s in zip(configs[1:], synapses):
        layers.append(
            Dense(
                config["size"],
                activation=config.get("activation", "linear"),
                dropout=config.get("dropout", 0.0),
                name=config["name"],
                init=_drawable(s["init"]),
                trainable=config.get("trainable", True),
                kernel_regularizer=s["regularizer"],
                bias_regularizer=config.get("bias_regularizer"),
            )
        )
    try:
        model = cls(layers, loss=node_loss, seed=seed, dtype=dtype, name=name,
                           loss_weight=last.get("loss_weight", 1.0))
    except GraphError as exc:
        raise GraphError(f"spec: {clip(str(exc), 500)}") from None
    model.loss = model_loss  # the pairing of loss and activation waits for compile or a run, as in memory
    # A Dense freezes its weight and bias together; a saved graph may have frozen
    # only one of them (an imported layer without bias keeps a frozen zero bias).
    # Nothing has been compiled yet, so setting the flags here is safe.
    for synapse, s in zip(model.synapses, synapses):
        if s["trainable"] is not None:
            synapse.trainable = s["trainable"]
        if s["init"] == "array":
            synapse.init = "array"
    return model


def _node(config, i: int) -> dict[str, Any]:
    where = f"spec.nodes[{i}]"
    _expect(isinstance(config, Mapping), where, "a mapping", config)
    kind = config.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise GraphError(f"{where}.kind: unknown kind {shown(kind)}; known: {sorted(KINDS)}")
    _fields(config, _NODE_FIELDS[kind], where)
    name = config.get("name")
    _expect(isinstance(name, str) and name != "", f"{where}.name", "a non-empty string", name)
    config = dict(config)
    if kind == "input":  # an input's size follows from these: a bad one is named before a missing size
        check_columns(config.get("columns"), where)
        check_categories(config.get("categories"), where)
    size = config.get("size")
    _expect(is_int(size, 1, MAX_SIZE + 1),
            f"{where}.size", "a positive integer (at most 2**40)", size)
    for flag in ("trainable",):
        if flag in config:
            _expect(isinstance(config[flag], (bool, np.bool_)), f"{where}.{flag}", "true or false", config[flag])
            config[flag] = bool(config[flag])
    for number in ("dropout", "loss_weight"):
        if number in config:
            value = config[number]
            _expect(is_number(value), f"{where}.{number}", "a finite number", value)
            config[number] = value.item() if isinstance(value, np.generic) else value  # numpy's: saved as JSON
    for named in ("activation", "loss", "bias_regularizer"):
        if named in config:
            value = config[named]
            _expect(isinstance(value, (str, Mapping)), f"{where}.{named}", "a name or a mapping", value)
            if isinstance(value, Mapping):
                _parameters(value, f"{where}.{named}")
    return config


def _parameters(config: Mapping, where: str) -> None:
    """An activation or loss given as a mapping: a name and plain parameters
    (:data:`graphnet._protocols.PARAMETERS`). The class itself checks them."""
    _expect(isinstance(config.get("name"), str), f"{where}.name", "a name", config.get("name"))
    for key, value in config.items():
        _expect(isinstance(key, str), where, "string keys", key)
        if key != "name":
            _expect(not key.startswith("__"), f"{where}.{key}", "a parameter name, not a dunder", key)
            _expect(_protocols.is_parameter(value), f"{where}.{key}", _protocols.PARAMETERS, value)


def _build_node(config: dict[str, Any], where: str):
    params = {k: v for k, v in config.items() if k != "kind"}
    try:
        return KINDS[config["kind"]](**params)
    except GraphError as exc:
        raise GraphError(f"{where}: {clip(str(exc), 500)}") from None


def _synapse(entry, i: int) -> dict[str, Any]:
    where = f"spec.synapses[{i}]"
    if isinstance(entry, list):
        _expect(len(entry) == 2, where, "a [src, dst] pair", entry)
        entry = {"src": entry[0], "dst": entry[1]}
    _expect(isinstance(entry, Mapping), where, "a mapping or a [src, dst] pair", entry)
    _fields(entry, _SYNAPSE_FIELDS, where)
    for end in ("src", "dst"):
        _expect(isinstance(entry.get(end), str), f"{where}.{end}", "a node name", entry.get(end))
    init = entry.get("init")
    _expect(init is None or isinstance(init, str), f"{where}.init", "an initializer name", init)
    trainable = entry.get("trainable")  # absent: as its destination node
    _expect(trainable is None or isinstance(trainable, (bool, np.bool_)), f"{where}.trainable", "true or false",
            trainable)
    trainable = None if trainable is None else bool(trainable)
    regularizer = entry.get("regularizer")
    if regularizer is not None:
        _expect(isinstance(regularizer, (str, Mapping)), f"{where}.regularizer", "a name or a mapping", regularizer)
        if isinstance(regularizer, Mapping):
            _parameters(regularizer, f"{where}.regularizer")
    return {"src": entry["src"], "dst": entry["dst"], "init": init, "trainable": trainable,
            "regularizer": regularizer}


def _list(value, where: str) -> list:
    _expect(isinstance(value, list), where, "a list", value)
    return value


def _fields(config: Mapping, allowed: set[str], where: str) -> None:
    unknown = [k for k in config if k not in allowed]
    if unknown:
        raise GraphError(f"{where}: unknown fields {preview(unknown, 5)}; allowed: {sorted(allowed)}")


def _expect(ok: bool, where: str, expected: str, found) -> None:
    if not ok:
        raise GraphError(f"{where}: expected {expected}, found {shown(found)}")
