"""How an optimizer's flat state follows the layout of the trainable parameters.

When the graph is edited, :meth:`graphnet._optimizer_state.Optimizer.bind`
moves the state to the new layout:

* **Kept** (:func:`kept_keys`): a parameter in both layouts, the same key,
  size and parameter token, keeps its state where it now lies.
* **Held** (:class:`HeldState`): a parameter that leaves the layout but not
  the graph (it was frozen) leaves its state, and its own step count, with
  the optimizer, by parameter token, until it joins the layout again
  (unfrozen): then it trains on from that state, as PyTorch keeps the state
  of a parameter whose gradient is None and Keras that of a variable made
  non-trainable. A held parameter that leaves the graph, or changes its key
  or size, has its held state dropped.
* Anything else starts from zero state, with a step count of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from ._parameters import Layout

__all__ = ["Held", "HeldState", "kept_keys", "offsets", "writable"]


def offsets(layout: Layout) -> dict[str, tuple[int, int]]:
    """``key: (start, size)`` of each entry of ``layout`` in the flat buffer."""
    found, start = {}, 0
    for key, n in layout:
        found[key] = (start, n)
        start += n
    return found


def kept_keys(old: Layout | None, old_tokens, new: Layout, new_tokens) -> set[str]:
    """The keys of ``new`` whose state the ``old`` layout holds: the same key
    and size and, when both give tokens, the same parameter (an old token of
    None is a parameter gone)."""
    if old is None:
        return set()
    where = offsets(old)
    before = dict(zip((key for key, _ in old), old_tokens)) if old_tokens is not None else None
    now = dict(zip((key for key, _ in new), new_tokens)) if new_tokens is not None else None
    kept = set()
    for key, n in new:
        if key not in where or where[key][1] != n:
            continue
        if before is not None and (before[key] is None or (now is not None and before[key] != now[key])):
            continue
        kept.add(key)
    return kept


class Held(NamedTuple):
    """The state of one frozen parameter: its key and size, the updates its
    state had seen when it left the layout, and its slots (host arrays)."""

    key: str
    size: int
    steps: int
    slots: dict[str, np.ndarray]


def writable(array):
    """``array`` itself, or a copy where it is a read-only numpy array (one
    unpickled from joblib's memory maps or pickle's out-of-band buffers)."""
    return array.copy() if isinstance(array, np.ndarray) and not array.flags.writeable else array


class HeldState:
    """The state of the frozen parameters, by ``parameter_token``."""

    def __init__(self, entries: Mapping[int, Held] | None = None):
        self.entries: dict[int, Held] = dict(entries or {})

    def make_writable(self) -> None:
        """Copy the slots that are read-only (see :func:`writable`)."""
        self.entries = {token: Held(held.key, held.size, held.steps, {k: writable(v) for k, v in held.slots.items()})
                        for token, held in self.entries.items()}

    def hold(self, layout: Layout, tokens, slots: Mapping[str, Any], steps: Callable[[str], int],
             leaving: set[str], frozen: Mapping[int, tuple[str, int]], host_copy) -> None:
        """Keep the state of the entries of ``layout`` (with ``tokens``) whose
        keys are ``leaving`` and whose parameters are ``frozen`` (``token:
        (key, size)`` of the graph's parameters outside the new layout), and
        forget held state whose parameter is no longer frozen (call
        :meth:`give` first for the parameters that join the layout).

        ``steps(key)`` is how many updates a parameter's state has seen;
        ``host_copy`` copies a slice of a slot to the host.
        """
        if tokens is not None and leaving:
            for (key, n), token, (start, _) in zip(layout, tokens, offsets(layout).values()):
                if key in leaving and token is not None and frozen.get(token) == (key, n):
                    part = {name: host_copy(value[start : start + n]) for name, value in slots.items()}
                    self.entries[token] = Held(key, n, steps(key), part)
        self.entries = {t: h for t, h in self.entries.items() if frozen.get(t) == (h.key, h.size)}

    def give(self, layout: Layout, tokens, joining: set[str]) -> dict[str, Held]:
        """The held state of the entries of ``layout`` whose keys are
        ``joining``, for the parameters it was held for, taken out of the store."""
        if tokens is None or not self.entries:
            return {}
        given = {}
        for (key, n), token in zip(layout, tokens):
            held = self.entries.get(token)
            if key in joining and held is not None and (held.key, held.size) == (key, n):
                given[key] = self.entries.pop(token)
        return given

    def of(self, parameters: Mapping[str, tuple[int, int]], by_token: bool) -> list[Held]:
        """The held state of ``parameters`` (``key: (token, size)``, a graph's
        :meth:`~graphnet.structure.Structure.parameter_tokens`): by token, or,
        for state held for another graph, by key and size."""
        found = []
        for token, held in self.entries.items():
            now, size = parameters.get(held.key, (None, None))
            if size == held.size and (now == token or not by_token):
                found.append(held)
        return found

    def retoken(self, parameters: Mapping[str, tuple[int, int]]) -> None:
        """State held for another graph's parameters goes to those of
        ``parameters`` (``key: (token, size)``) with the same key and size."""
        self.entries = {parameters[h.key][0]: h for h in self.of(parameters, by_token=False)}

    def get_state(self) -> list[dict[str, Any]]:
        return [{"token": t, "key": h.key, "size": h.size, "steps": h.steps,
                 "slots": {name: value.copy() for name, value in h.slots.items()}}
                for t, h in self.entries.items()]

    @classmethod
    def from_state(cls, state) -> HeldState:
        return cls({int(item["token"]): Held(str(item["key"]), int(item["size"]), int(item["steps"]),
                                             {name: np.array(value) for name, value in item["slots"].items()})
                    for item in state or ()})
