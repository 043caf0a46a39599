"""A graph's parameters as arrays by key: ``parameters``, ``get_weights``,
``set_weights``.

Keys come from :mod:`graphnet._parameters` (``"SRC->DST.weight"``,
``"NODE.bias"``); the arrays live on the synapses and dense nodes (views
into the plan's flat buffer once it is compiled). A weight still waiting
for its draw (:mod:`graphnet._lazy_init`) is given its values without being
drawn first. ``Graph`` has each function as a method of the same name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from . import backend as backend_module
from ._locks import edit, read
from ._parameters import BIAS, WEIGHT, ParameterRecord, bias_key
from ._text import preview
from .errors import GraphError, NotFoundError
from .nodes import DenseNode

if TYPE_CHECKING:
    from .network import Network

__all__ = ["parameters", "parameter_owners", "parameter_arrays", "get_weights", "set_weights"]


def parameters(graph: Network) -> list[ParameterRecord]:
    """Every weight and bias as a :class:`~graphnet._parameters.ParameterRecord`
    (key, kind, node, synapse, shape, trainable): for each dense node in
    insertion order, its incoming weights then its bias."""
    return [record for record, _ in parameter_owners(graph)]


def parameter_owners(graph: Network, order: Iterable[str] | None = None) -> list[tuple[ParameterRecord, object]]:
    """``(record, owner)`` per parameter, the owner being the Synapse or
    node holding the array; dense nodes in ``order`` (insertion order by
    default). The plan passes the topological order, so its flat buffer
    follows the forward pass."""
    entries = []
    nodes = graph.nodes
    incoming: dict[str, list] = {}
    for synapse in graph.synapses:  # one sweep: graph.incoming(name) per node would be quadratic
        incoming.setdefault(synapse.dst, []).append(synapse)
    for name in nodes if order is None else order:
        node = nodes[name]
        if isinstance(node, DenseNode):
            for s in incoming.get(name, ()):
                entries.append((ParameterRecord(s.key, WEIGHT, name, (s.src, name), s.shape, s.trainable), s))
            entries.append((ParameterRecord(bias_key(name), BIAS, name, None, (node.size,), node.trainable), node))
    return entries


def parameter_arrays(graph: Network) -> dict[str, np.ndarray]:
    """Every parameter's live array (no copies), by key; draws what is waiting."""
    graph.materialize()
    return {record.key: owner.parameter_array for record, owner in parameter_owners(graph)}


@read
def get_weights(graph: Network) -> dict[str, np.ndarray]:
    """Copies of every parameter as numpy arrays (on every device):
    ``"NODE.bias"`` and ``"SRC->DST.weight"`` (all from one moment, even
    while another thread trains)."""
    copy = graph.backend.host_copy
    return {key: copy(array) for key, array in parameter_arrays(graph).items()}


@edit
def set_weights(graph: Network, weights: Mapping[str, Any]) -> None:
    """Assign parameters by key (any subset of ``get_weights()``'s keys).

    Every key, shape and value is checked first; if anything is wrong,
    nothing changes.

    Raises
    ------
    GraphError
        Naming the unknown keys, or the key with its expected and given shape.
    """
    if not isinstance(weights, Mapping):
        raise GraphError(f"set_weights expects a dict keyed like get_weights(), got {type(weights).__name__}")
    # Shapes from the records: a weight not drawn yet is given its values
    # without being drawn first (a loaded file's weights are never drawn).
    owners = {record.key: (record, owner) for record, owner in parameter_owners(graph)}
    unknown = [k for k in weights if k not in owners]
    if unknown:
        raise NotFoundError(f"graph {graph.name!r}: unknown weight keys {preview(unknown)}; known: {preview(owners)}")
    staged = {}
    for key, value in weights.items():
        expected = owners[key][0].shape
        try:
            value = np.asarray(backend_module.host(value), dtype=graph.dtype)
        except (TypeError, ValueError):
            raise GraphError(f"weight {key!r}: expected numbers, got {value!r}") from None
        if value.shape != expected:
            raise GraphError(f"weight {key!r}: expected shape {expected}, got {value.shape}")
        if not np.isfinite(value).all():
            raise GraphError(f"weight {key!r} contains NaN or inf")
        staged[key] = value
    to_device = graph.backend.to_device
    for key, value in staged.items():
        record, owner = owners[key]
        if record.kind == BIAS:
            owner.parameter_array[...] = to_device(value)  # not .bias: that would draw it first
            owner.fix_bias()
        elif owner.parameter_array is None:
            graph.assign_first_values(owner, to_device(value.copy()))
        else:
            owner.parameter_array[...] = to_device(value)
