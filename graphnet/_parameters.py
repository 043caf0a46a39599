"""Parameters: their keys, their records, and the flat buffers that hold them.

Keys
    ``"SRC->DST.weight"`` for the weight of a synapse and ``"NODE.bias"`` for
    a dense node's bias (what ``Graph.get_weights()`` uses). This module is
    the only place that writes the format; nothing parses it back: code that
    needs to know what a key is asks for its :class:`ParameterRecord`.

Tokens
    Each parameter owner (a synapse, a dense node) holds a
    ``parameter_token`` from :func:`new_token`: which parameter it is.
    Copies and pickles keep it, and so does ``Graph.replace`` (the new node
    takes over the old one's bias); a synapse or node removed and made
    again under the same key is a new parameter with a new token, so the
    optimizer's state, which follows the tokens, starts afresh for it.

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
import collections
import functools
import itertools
import math
import operator
import os
import secrets
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from .backend import CPU

__all__ = ["WEIGHT", "BIAS", "Layout", "weight_key", "bias_key", "new_token", "ParameterRecord", "ParameterStore"]

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


def _counter() -> itertools.count:
    # A random start: tokens made in different processes (a graph unpickled
    # where new synapses are then made) do not meet.
    return itertools.count(secrets.randbits(64) << 32)


_tokens = _counter()


def _restart_tokens() -> None:
    """A forked child must not repeat its parent's next tokens."""
    global _tokens
    _tokens = _counter()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_restart_tokens)


def new_token() -> int:
    """A number no other parameter (or graph) has: what a new parameter owner
    holds as its ``parameter_token`` and a new graph as its lineage."""
    return next(_tokens)


class ParameterRecord(NamedTuple):
    """What one parameter is: ``Graph.parameters()`` lists these.

    ``node`` is the dense node the parameter feeds (a weight's destination);
    ``synapse`` is ``(src, dst)`` for a weight and ``None`` for a bias. A
    named tuple: a graph of 10,000 nodes has 30,000 of them. The owner of
    the parameter makes it (``parameter_record()``).
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
    owners : sequence of parameter owners
        The Synapses and dense nodes holding the arrays, in the order the
        forward pass meets them. An owner has ``parameter_array``,
        ``bind_parameter``, ``parameter_key``, ``parameter_token``,
        ``parameter_record()`` and ``trainable``. Trainable parameters are
        moved to the front (stably).
    dtype : numpy dtype
    backend : Backend, optional
        Where the buffers live (:mod:`graphnet.backend`); the CPU by default.
        The owners' arrays must already be this backend's.

    Notes
    -----
    Every compile makes a store, and a graph of 10,000 nodes has 30,000
    parameters: the values are copied in one pass, the views are cut from
    a window per shape (:func:`_views`), and the records and the gradient
    views by key are made only when asked for (an error report, the
    statistics, ``Graph.gradients``).
    """

    def __init__(self, owners: Sequence, dtype: np.dtype, backend=CPU):
        flags = list(map(_TRAINABLE, owners))
        given = owners
        if not all(flags):  # trainable first, order kept
            owners = [o for o, t in zip(owners, flags) if t] + [o for o, t in zip(owners, flags) if not t]
        self.owners: tuple = tuple(owners)
        self.num_trainable_params = sum(flags)
        arrays = list(map(_ARRAY, owners))
        shapes = list(map(_SHAPE, arrays))
        sizes = list(map(_SIZE, arrays))
        offsets = list(itertools.accumulate(sizes, initial=0))
        total = offsets.pop()
        self._offsets = offsets
        self.num_trainable = sum(sizes[: self.num_trainable_params])
        self.backend = backend
        xp = backend.xp
        self.values = xp.empty(total, dtype=dtype)
        self.grads = xp.zeros(total, dtype=dtype)
        if arrays and xp is np:
            np.concatenate(arrays, axis=None, out=self.values)  # each flattened: one pass, no list of ravels
        elif arrays:
            xp.concatenate([a.ravel() for a in arrays], out=self.values)
        counts = collections.Counter(shapes)
        views = _views(self.values, shapes, offsets, counts, xp)
        for owner, view in zip(owners, views):
            owner.bind_parameter(view)  # the owner now reads and writes the buffer
        self._grads = _views(self.grads, shapes, offsets, counts, xp)
        k = self.num_trainable_params
        #: ``(key, size)`` of every trainable parameter, in buffer order (what the optimizer's state follows).
        self.layout: Layout = tuple(zip(map(_KEY, owners[:k]), sizes[:k]))
        #: The value and gradient views in the order the owners were given (what
        #: the plan walks), and where each starts in the buffers.
        self.values_as_given: list = views
        self.grads_as_given: list = self._grads
        self.offsets_as_given: list[int] = offsets
        if given is not owners:
            at = {id(owner): i for i, owner in enumerate(owners)}
            order = [at[id(owner)] for owner in given]
            self.values_as_given = [views[i] for i in order]
            self.grads_as_given = [self._grads[i] for i in order]
            self.offsets_as_given = [offsets[i] for i in order]

    @functools.cached_property
    def tokens(self) -> tuple[int, ...]:
        """The ``parameter_token`` of each entry of :attr:`layout`: which
        parameter it is (made when training first asks, not by every plan)."""
        return tuple(map(_TOKEN, self.owners[: self.num_trainable_params]))

    @functools.cached_property
    def frozen(self) -> dict[int, tuple[str, int]]:
        """``parameter_token: (key, size)`` of every parameter outside
        :attr:`layout` (the frozen ones): whose optimizer state is held until
        they train again."""
        owners = self.owners[self.num_trainable_params :]
        return {owner.parameter_token: (owner.parameter_key, owner.parameter_array.size) for owner in owners}

    @functools.cached_property
    def records(self) -> tuple[ParameterRecord, ...]:
        """Every parameter's record, in buffer order."""
        return tuple(owner.parameter_record() for owner in self.owners)

    @functools.cached_property
    def grad_views(self) -> dict[str, np.ndarray]:
        """Every gradient view by key (what :meth:`grad` looks up)."""
        return dict(zip([owner.parameter_key for owner in self.owners], self._grads))

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


_TRAINABLE = operator.attrgetter("trainable")
_ARRAY = operator.attrgetter("parameter_array")
_KEY = operator.attrgetter("parameter_key")
_TOKEN = operator.attrgetter("parameter_token")
_SHAPE = operator.attrgetter("shape")
_SIZE = operator.attrgetter("size")

#: A shape met this often gets a window (see :func:`_views`); rarer ones are cut one by one.
_WINDOW_AT = 8


def _views(buffer, shapes: list[tuple[int, ...]], offsets: list[int], counts: collections.Counter, xp) -> list:
    """The view of ``buffer[start:start + size]`` in ``shape``, per parameter
    (``counts``: how many parameters have each shape).

    A shape that many parameters share is cut from one window over the whole
    buffer: ``window[start]`` is the same view ``buffer[start:stop].reshape(shape)``
    gives, made as one array object instead of two (on a graph of 10,000
    nodes this halves the time to make its 60,000 views). Only numpy
    buffers have windows.
    """
    windows = {}
    step = buffer.itemsize
    for shape, n in counts.items():
        size = math.prod(shape)
        if xp is np and n >= _WINDOW_AT and 0 < size <= buffer.size:
            strides = tuple(step * math.prod(shape[i + 1 :]) for i in range(len(shape)))
            windows[shape] = np.lib.stride_tricks.as_strided(buffer, (buffer.size - size + 1, *shape), (step, *strides))
    if windows and len(windows) == len(counts):
        return [windows[shape][start] for shape, start in zip(shapes, offsets)]
    return [
        windows[shape][start] if shape in windows else buffer[start : start + math.prod(shape)].reshape(shape)
        for shape, start in zip(shapes, offsets)
    ]
