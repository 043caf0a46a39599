"""The data of :mod:`graphnet.distributed` on the workers: partitions made
and checked there, and what a rank does with the rows of one step.

A partition is computed on its worker from the user's row blocks (a dask
task whose lineage holds only :func:`schema`, small and free of weights, so a
lost partition is recomputed whatever became of the graph) and kept there as
checked ``(inputs, targets)`` arrays; a rank (:mod:`graphnet._rank`) holds
its group's partitions from its first step to its last.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ._data import common_rows, features
from ._validation import as_dtype, check_finite
from .inference import Tally, tally_arrays

if TYPE_CHECKING:
    from .graph import Graph
    from .trainer import Trainer


def schema(graph: Graph) -> tuple:
    """What checking a partition needs, small and free of weights:
    ``(dtype, [(input, size)], [(output, size, loss)])``."""
    return (
        graph.dtype,
        [(n, graph.nodes[n].size) for n in graph.inputs],
        [(n, graph.nodes[n].size, graph.nodes[n].loss) for n in graph.outputs],
    )


def partition(schema, *blocks):
    """One row block as checked ``(inputs, targets)`` arrays (what
    :func:`graphnet.data.as_inputs` and ``as_targets`` make of it)."""
    dtype, input_specs, output_specs = schema
    inputs = {}
    for (name, size), block in zip(input_specs, blocks):
        given = features(np.asarray(block), size, name)
        array = as_dtype(given, dtype)
        check_finite(array, "input", name, given=given)
        inputs[name] = array
    targets = {
        name: loss.prepare_target(np.asarray(block), size, name, dtype)
        for (name, size, loss), block in zip(output_specs, blocks[len(input_specs):])
    }
    common_rows(inputs, targets)
    return inputs, targets


def rows(part) -> int:
    return next(iter(part[0].values())).shape[0]


def gather(parts, indices) -> tuple[dict, dict, int]:
    """The rows ``indices[i]`` of ``parts[i]`` as one batch (partition order,
    then batch order): ``(inputs, targets, rows)``. Partitions with no rows in
    the batch are skipped."""
    used = [(p, i) for p, i in zip(parts, indices) if len(i)]
    if not used:
        return {}, {}, 0

    def take(side: int) -> dict:
        keys = used[0][0][side].keys()
        return {k: np.concatenate([p[side][k][i] for p, i in used]) for k in keys}

    return take(0), take(1), int(sum(len(i) for _, i in used))


class Gatherer:
    """:func:`gather` for a rank's training steps, into buffers made once
    (``take(..., out=)``, as ``fit``'s batches): two sets used in turn, so
    the next step's rows can be gathered while the buffers of this one are
    still read."""

    def __init__(self, parts):
        self.parts = parts
        self._sets: list = [None, None]
        self._turn = 0

    def __call__(self, indices) -> tuple[dict, dict, int]:
        used = [(p, i) for p, i in zip(self.parts, indices) if len(i)]
        count = int(sum(len(i) for _, i in used))
        if not count:
            return {}, {}, 0
        self._turn ^= 1
        kept = self._sets[self._turn]
        if kept is None or kept[0] != count:
            first = used[0][0]
            kept = self._sets[self._turn] = (count, tuple(
                {k: np.empty((count, *a.shape[1:]), dtype=a.dtype) for k, a in first[side].items()}
                for side in (0, 1)))
        buffers = kept[1]
        for side in (0, 1):
            for key, out in buffers[side].items():
                lo = 0
                for part, rows_of in used:
                    # mode="clip" lets numpy write straight into ``out`` (the rows are valid)
                    part[side][key].take(rows_of, axis=0, out=out[lo : lo + len(rows_of)], mode="clip")
                    lo += len(rows_of)
        return buffers[0], buffers[1], count


def train_on(trainer: Trainer, batch, where, seed, tally: Tally) -> int:
    """Forward and backward on one share, counted into ``tally``; the
    gradient of its mean is left in the store. Dropout masks come from
    ``seed``, a function of the step, so a step sent again draws the same."""
    inputs, targets, count = batch
    graph = trainer.graph
    graph.rng = np.random.default_rng(seed)
    _, losses, _, penalty, sums = trainer.gradient(inputs, targets, count, where, tally=tally)
    tally.add(count, losses, penalty=penalty, weight_sums=sums)  # its metrics counted in gradient
    return count


def tally_state(graph: Graph, parts, indices, chosen, chunk: int):
    """The :meth:`Tally.state` of ``parts`` (their rows ``indices``, per
    partition, or every row) with the graph's current weights (no dropout,
    no penalty), one partition at a time; None without rows."""
    total = None
    for i, part in enumerate(parts):
        inputs, targets = part
        if indices is not None:
            if not len(indices[i]):
                continue
            inputs, targets, _ = gather([part], [indices[i]])
        elif not rows(part):
            continue
        state = tally_arrays(graph, inputs, targets, chosen, chunk).state()
        if total is None:
            total = Tally(graph, chosen)
        total.merge(state)
    return None if total is None else total.state()
