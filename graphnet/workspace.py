"""Workspaces: the buffers one way of running a plan needs, per batch size.

A :class:`Workspace` holds, per node slot of a :class:`~graphnet.plan.Plan`,
the buffers the maths names (``z``, ``a``, ``x``, ``upstream``, the dropout
mask), made for a number of rows and one mode: ``predict`` and ``evaluate``
keep only what forward needs, ``train`` what backward needs too. See
:mod:`graphnet.plan` for what each buffer holds and the buffer-reuse rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .plan import Plan

__all__ = ["Workspace"]


class Workspace:
    """Per-batch-size buffers for one mode of running a plan: lists by node
    slot ``z``, ``a``, ``x``, ``upstream`` (see the module docs), ``keep``
    (the dropout mask, already scaled by ``1/(1-rate)``) with ``dropped``
    (the storage behind ``x`` under dropout), and ``scratch[size]``, a
    temporary for fan-in and fan-out sums.
    """

    def __init__(self, plan: Plan, rows: int, mode: str):
        if mode not in ("predict", "evaluate", "train"):
            raise ValueError(f"unknown workspace mode {mode!r}")
        self.rows, self.mode = rows, mode
        self.xp = xp = plan.xp
        self.backend = plan.backend
        n, dtype, train = len(plan.order), plan.dtype, mode == "train"
        self.x: list[np.ndarray | None] = [None] * n
        self.a: list[np.ndarray | None] = [None] * n
        self.z: list[np.ndarray | None] = [None] * n
        self.upstream: list[np.ndarray | None] = [None] * n
        self.keep: list[np.ndarray | None] = [None] * n
        self.dropped: list[np.ndarray | None] = [None] * n
        self.scratch: dict[int, np.ndarray] = {}

        def buffer(size: int) -> np.ndarray:
            return xp.empty((rows, size), dtype)

        for step in plan.steps:
            slot = step.slot
            self.a[slot] = buffer(step.size)
            keep_z = (train and step.activation.needs_input) or (
                mode != "predict" and step.loss is not None and step.loss.fused
            )
            self.z[slot] = buffer(step.size) if keep_z else self.a[slot]
            if len(step.edges) > 1:
                self.scratch.setdefault(step.size, buffer(step.size))
            if not train:
                continue
            if step.feeds_others:
                self.upstream[slot] = buffer(step.size)
            if step.dropout:
                self.keep[slot] = buffer(step.size)
                self.dropped[slot] = buffer(step.size)
            for src, _, _, from_input, writes_first, _ in step.edges:
                if not from_input and not writes_first:
                    size = plan.sizes[src]
                    self.scratch.setdefault(size, buffer(size))
        self.ones = xp.ones(rows, dtype) if train else None
        self._own = (tuple(self.a), tuple(self.z))
        self.nbytes = sum(b.nbytes for b in {id(b): b for b in [*self.a, *self.z, *self.upstream, *self.keep,
                                                                *self.dropped, *self.scratch.values()]
                                              if b is not None}.values())

    def head(self, rows: int) -> Workspace:
        """A workspace over the first ``rows`` rows of this one's buffers."""
        view = object.__new__(Workspace)
        view.rows, view.mode = rows, self.mode
        view.xp, view.backend = self.xp, self.backend

        def take(buf):
            return None if buf is None else buf[:rows]

        view.x = list(self.x)
        view.a = [take(b) for b in self.a]
        view.z = [a if z is b else take(z) for z, b, a in zip(self.z, self.a, view.a)]
        view.upstream = [take(b) for b in self.upstream]
        view.keep = [take(b) for b in self.keep]
        view.dropped = [take(b) for b in self.dropped]
        view.scratch = {size: buf[:rows] for size, buf in self.scratch.items()}
        view.ones = take(self.ones)
        view._own, view.nbytes = (tuple(view.a), tuple(view.z)), 0
        return view

    def restore(self) -> None:
        """Undo every :meth:`bind_output`: each node writes into this workspace's own buffers again."""
        self.a[:], self.z[:] = self._own

    def bind_output(self, slot: int, array: np.ndarray) -> None:
        """Write the activation of ``slot`` straight into ``array`` (``predict``)."""
        if self.z[slot] is self.a[slot]:
            self.z[slot] = array
        self.a[slot] = array

    def drop(self, slot: int, a: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
        """Inverted dropout: zero a ``rate`` of ``a``, scale the rest by ``1/(1-rate)``."""
        keep = self.keep[slot]
        kept = 1.0 - rate
        self.backend.uniform(rng, keep)
        self.xp.less(keep, kept, out=keep)
        keep *= 1.0 / kept
        return self.xp.multiply(a, keep, out=self.dropped[slot])
