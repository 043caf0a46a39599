"""A graph's parameters as arrays by key: ``get_weights``, ``set_weights``
and the records behind them.

Keys come from :mod:`graphnet.parameters` (``"SRC->DST.weight"``,
``"NODE.bias"``); the arrays live on the synapses and dense nodes (views
into the plan's flat buffer once it is compiled). :class:`ParameterAccess`
is inherited by ``Graph``; it reads the graph's ``_nodes``, ``_synapses``,
``_lock`` and ``_backend``, and a weight still waiting for its draw (see
:mod:`graphnet._drawing`) is given its values without being drawn first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from . import backend as backend_module
from ._locks import edit as _edit
from ._text import preview
from .errors import GraphError, NotFoundError
from .nodes import DenseNode
from .parameters import BIAS, WEIGHT, ParameterRecord, bias_key
from .synapse import Synapse

__all__ = ["ParameterAccess"]


class ParameterAccess:
    """See the module docs."""

    def parameters(self) -> list[ParameterRecord]:
        """Every weight and bias as a :class:`~graphnet.parameters.ParameterRecord`
        (key, kind, node, synapse, shape, trainable): for each dense node in
        insertion order, its incoming weights then its bias."""
        return [record for record, _ in self._parameters()]

    def _parameters(self, order: Iterable[str] | None = None) -> list[tuple[ParameterRecord, object]]:
        """``(record, owner)`` per parameter, the owner being the Synapse or
        node holding the array; dense nodes in ``order`` (insertion order by
        default). The plan passes the topological order, so its flat buffer
        follows the forward pass."""
        entries = []
        incoming: dict[str, list[Synapse]] = {}
        for synapse in self._synapses.values():
            incoming.setdefault(synapse.dst, []).append(synapse)
        for name in self._nodes if order is None else order:
            node = self._nodes[name]
            if isinstance(node, DenseNode):
                for s in incoming.get(name, ()):
                    record = ParameterRecord(s.key, WEIGHT, name, (s.src, name), s.shape, s.trainable)
                    entries.append((record, s))
                record = ParameterRecord(bias_key(name), BIAS, name, None, (node.size,), node.trainable)
                entries.append((record, node))
        return entries

    def _arrays(self) -> dict[str, np.ndarray]:
        """Every parameter's live array (no copies), by key; draws what is waiting."""
        self._draw()
        return {
            record.key: owner.weight if record.kind == WEIGHT else owner.bias
            for record, owner in self._parameters()
        }

    def get_weights(self) -> dict[str, np.ndarray]:
        """Copies of every parameter as numpy arrays (on every device):
        ``"NODE.bias"`` and ``"SRC->DST.weight"`` (all from one moment, even
        while another thread trains)."""
        copy = self._backend.host_copy
        with self._lock.reading():
            return {key: copy(array) for key, array in self._arrays().items()}

    @_edit
    def set_weights(self, weights: Mapping[str, Any]) -> None:
        """Assign parameters by key (any subset of ``get_weights()``'s keys).

        Every key, shape and value is checked first; if anything is wrong,
        nothing changes.

        Raises
        ------
        GraphError
            Naming the unknown keys, or the key with its expected and given shape.
        """
        if not isinstance(weights, Mapping):
            raise GraphError(
                f"set_weights expects a dict keyed like get_weights(), got {type(weights).__name__}"
            )
        # Shapes from the records: a weight not drawn yet is given its values
        # without being drawn first (a loaded file's weights are never drawn).
        owners = {record.key: (record, owner) for record, owner in self._parameters()}
        unknown = [k for k in weights if k not in owners]
        if unknown:
            raise NotFoundError(
                f"graph {self.name!r}: unknown weight keys {preview(unknown)}; "
                f"known: {preview(owners)}"
            )
        staged = {}
        for key, value in weights.items():
            expected = owners[key][0].shape
            try:
                value = np.asarray(backend_module.host(value), dtype=self.dtype)
            except (TypeError, ValueError):
                raise GraphError(f"weight {key!r}: expected numbers, got {value!r}") from None
            if value.shape != expected:
                raise GraphError(
                    f"weight {key!r}: expected shape {expected}, got {value.shape}"
                )
            if not np.isfinite(value).all():
                raise GraphError(f"weight {key!r} contains NaN or inf")
            staged[key] = value
        to_device = self._backend.to_device
        for key, value in staged.items():
            record, owner = owners[key]
            if record.kind == BIAS:
                owner._bias[...] = to_device(value)  # not .bias: that would draw it first
                owner._bias_fixed = True
            elif owner._weight is None:
                self._assign_undrawn(owner, to_device(value.copy()))
            else:
                owner._weight[...] = to_device(value)
