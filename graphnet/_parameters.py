"""Parameters: their keys, their records, and the flat buffers that hold them.

Keys
    ``"SRC->DST.weight"`` for the weight of a synapse and ``"NODE.bias"`` for
    a dense node's bias (what ``Graph.get_weights()`` uses). This module is
    the only place that writes the format; nothing parses it back: code that
    needs to know what a key is asks for its :class:`ParameterRecord`.

Buffers
    Each synapse's ``weight`` and each dense node's ``bias`` becomes a view
    into :attr:`ParameterStore.values`; the backward pass writes straight
    into views of :attr:`ParameterStore.grads`. An optimizer then updates all
    parameters with a few whole-buffer passes. Trainable parameters come
    first, so the optimizer sees one contiguous slice. The store is rebuilt
    whenever the graph's structure changes; current values are copied over,
    so weights of untouched synapses survive every edit.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

from .backend import CPU

__all__ = ["WEIGHT", "BIAS", "Layout", "weight_key", "bias_key", "ParameterRecord", "ParameterStore"]

WEIGHT = "weight"
BIAS = "bias"

#: Layout of a flat parameter vector: ``(key, size)`` in buffer order.
Layout = tuple[tuple[str, int], ...]


def weight_key(src: str, dst: str) -> str:
    """The key of the synapse ``src -> dst``'s weight."""
    return f"{src}->{dst}.{WEIGHT}"


def bias_key(node: str) -> str:
    """The key of ``node``'s bias."""
    return f"{node}.{BIAS}"


class ParameterRecord(NamedTuple):
    """What one parameter is: ``Graph.parameters()`` lists these.

    ``node`` is the dense node the parameter feeds (a weight's destination);
    ``synapse`` is ``(src, dst)`` for a weight and ``None`` for a bias. A
    named tuple: a graph of 10,000 nodes makes 30,000 of them per compile.
    """

    key: str
    kind: str  # WEIGHT or BIAS
    node: str
    synapse: tuple[str, str] | None
    shape: tuple[int, ...]
    trainable: bool

    @property
    def size(self) -> int:
        return math.prod(self.shape)


class ParameterStore:
    """Flat value and gradient buffers with every parameter bound as a view.

    Parameters
    ----------
    entries : iterable of (ParameterRecord, owner)
        In the order the forward pass meets them; ``owner`` is the Synapse
        or node holding the array (its ``parameter_array``, rebound with
        ``bind_parameter``). Trainable parameters are moved to the front
        (stably).
    dtype : numpy dtype
    backend : Backend, optional
        Where the buffers live (:mod:`graphnet.backend`); the CPU by default.
        The owners' arrays must already be this backend's.
    """

    def __init__(self, entries: Iterable[tuple[ParameterRecord, object]], dtype: np.dtype, backend=CPU):
        # This runs once per parameter, and graphs of 10,000 nodes have 30,000:
        # one bulk copy, math not numpy for sizes (np.prod on a tuple costs microseconds).
        entries = sorted(entries, key=lambda e: not e[0].trainable)  # trainable first, order kept
        records = tuple(record for record, _ in entries)
        arrays = [owner.parameter_array for _, owner in entries]
        sizes = [a.size for a in arrays]
        offsets = list(itertools.accumulate(sizes, initial=0))
        total = offsets.pop()
        self.records, self._offsets = records, offsets
        self.backend = backend
        xp = backend.xp
        self.values = xp.empty(total, dtype=dtype)
        self.grads = xp.zeros(total, dtype=dtype)
        if arrays:
            xp.concatenate([a.ravel() for a in arrays], out=self.values)
        self.num_trainable = sum(n for r, n in zip(records, sizes) if r.trainable)
        self.layout: Layout = tuple((r.key, n) for r, n in zip(records, sizes) if r.trainable)
        values, grads = self.values, self.grads
        views = {}
        for (record, owner), array, start, n in zip(entries, arrays, offsets, sizes):
            stop, shape = start + n, array.shape
            owner.bind_parameter(values[start:stop].reshape(shape))  # the owner now reads and writes the buffer
            views[record.key] = grads[start:stop].reshape(shape)
        #: Every gradient view by key (what :meth:`grad` looks up).
        self.grad_views: dict[str, np.ndarray] = views

    @property
    def trainable_values(self) -> np.ndarray:
        return self.values[: self.num_trainable]

    @property
    def trainable_grads(self) -> np.ndarray:
        return self.grads[: self.num_trainable]

    def grad(self, key: str) -> np.ndarray:
        """The gradient view of parameter ``key``."""
        return self.grad_views[key]

    def grad_dict(self) -> dict[str, np.ndarray]:
        """Copies of every gradient (numpy arrays), keyed like ``Graph.get_weights()``."""
        copy = self.backend.host_copy
        return {key: copy(view) for key, view in self.grad_views.items()}

    def spans(self, kind: str, trainable_only: bool = True) -> list[slice]:
        """Slices of the value (and gradient) buffer holding every parameter of
        ``kind``, neighbours merged: a few whole-slice passes reach them all."""
        merged: list[list[int]] = []
        for record, start in zip(self.records, self._offsets):
            if record.kind != kind or (trainable_only and not record.trainable):
                continue
            stop = start + record.size
            if merged and merged[-1][1] == start:
                merged[-1][1] = stop
            else:
                merged.append([start, stop])
        return [slice(a, b) for a, b in merged]

    def locate(self, flat_index: int) -> ParameterRecord:
        """The parameter holding element ``flat_index`` of the buffers."""
        if not 0 <= flat_index < self.values.size:
            raise IndexError(flat_index)
        return self.records[bisect.bisect_right(self._offsets, flat_index) - 1]
