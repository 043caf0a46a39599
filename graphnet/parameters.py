"""One flat buffer for every weight and bias, and one for their gradients.

Each synapse's ``weight`` and each dense node's ``bias`` becomes a view into
:attr:`ParameterStore.values`; the backward pass writes straight into views of
:attr:`ParameterStore.grads`. The optimizer then updates all parameters with a
few whole-buffer passes. Trainable parameters come first, so the optimizer
sees one contiguous slice.

The store is rebuilt whenever the graph's structure changes: current values
are copied over, so weights of untouched synapses survive every edit.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .optimizers import Layout

__all__ = ["Parameter", "ParameterStore"]


@dataclass(frozen=True, slots=True)
class Parameter:
    """Where one weight or bias lives in the flat buffers."""

    key: str
    owner: object  # a Synapse (attribute ``_weight``) or a dense node (``_bias``)
    attr: str
    trainable: bool
    offset: int
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return math.prod(self.shape)


class ParameterStore:
    """Flat value and gradient buffers with every parameter bound as a view.

    Parameters
    ----------
    entries : iterable of (key, owner, attr, trainable)
        In the order the forward pass meets them; trainable ones are moved
        to the front (stably).
    dtype : numpy dtype
    """

    def __init__(self, entries: Iterable[tuple[str, object, str, bool]], dtype: np.dtype):
        # This runs once per parameter, and graphs of 10,000 nodes have 30,000:
        # one bulk copy, no per-parameter records (``params`` builds them when
        # asked), math not numpy for sizes (np.prod on a tuple costs microseconds).
        entries = sorted(entries, key=lambda e: not e[3])  # trainable first, order kept
        arrays = [getattr(owner, attr) for _, owner, attr, _ in entries]
        sizes = [a.size for a in arrays]
        offsets = list(itertools.accumulate(sizes, initial=0))
        total = offsets.pop()
        self._entries, self._offsets = entries, offsets
        self.values = np.empty(total, dtype=dtype)
        self.grads = np.zeros(total, dtype=dtype)
        if arrays:
            np.concatenate([a.ravel() for a in arrays], out=self.values)
        self.num_trainable = sum(n for e, n in zip(entries, sizes) if e[3])
        self.layout: Layout = tuple((e[0], n) for e, n in zip(entries, sizes) if e[3])
        self._grad_views: dict[str, np.ndarray] = {}
        values, grads = self.values, self.grads
        for (key, owner, attr, _), array, start, n in zip(entries, arrays, offsets, sizes):
            # The owner now reads and writes the buffer.
            setattr(owner, attr, values[start : start + n].reshape(array.shape))
            self._grad_views[key] = grads[start : start + n].reshape(array.shape)

    @functools.cached_property
    def params(self) -> tuple[Parameter, ...]:
        """Where each parameter lives, in buffer order."""
        return tuple(
            Parameter(key, owner, attr, trainable, start, getattr(owner, attr).shape)
            for (key, owner, attr, trainable), start in zip(self._entries, self._offsets)
        )

    @property
    def trainable_values(self) -> np.ndarray:
        return self.values[: self.num_trainable]

    @property
    def trainable_grads(self) -> np.ndarray:
        return self.grads[: self.num_trainable]

    def grad(self, key: str) -> np.ndarray:
        """The gradient view of parameter ``key``."""
        return self._grad_views[key]

    def grad_dict(self) -> dict[str, np.ndarray]:
        """Copies of every gradient, keyed like ``Graph.get_weights()``."""
        return {key: view.copy() for key, view in self._grad_views.items()}

    def locate(self, flat_index: int) -> str:
        """The key of the parameter holding element ``flat_index`` of the buffer."""
        if not 0 <= flat_index < self.values.size:
            raise IndexError(flat_index)
        return self._entries[bisect.bisect_right(self._offsets, flat_index) - 1][0]
