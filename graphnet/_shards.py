"""The workers' side of :mod:`graphnet.distributed`: tasks that dask runs.

Each takes a reference to the graph, the weights of the step and the data
partitions the worker holds, and returns plain numbers and arrays; none
changes anything a retry of it would see (a worker's graph copy is
overwritten with the step's weights first, and dropout masks are drawn from
a seed that is a function of the step), so dask may run any of them again,
anywhere, with the same result.

The graph is passed by reference (the name of a dataset the client
published), not as a dependency: a dependency would be fetched again whenever dask's active
memory manager drops a worker's extra replica between steps (it does, every
few seconds), and each fetch means unpickling the graph and compiling its
plan anew. Instead each worker fetches the scattered graph once, the first
time a task needs it, and keeps it by name (:func:`_graph`).
"""

from __future__ import annotations

import copy
import pickle
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING

import numpy as np

from ._data import check_finite, common_rows, features
from .errors import TrainingError
from .inference import Tally, merge_states, tally_arrays
from .trainer import Trainer
from .plan import compile_plan

if TYPE_CHECKING:
    from .graph import Graph

#: Each worker's graph copy -> the Trainer that computes its gradients.
_TRAINERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

#: This worker's graphs by token, newest last (a few fits' worth).
_GRAPHS: OrderedDict = OrderedDict()
_KEEP = 4


class GraphUnavailable(RuntimeError):
    """The scattered graph could not be fetched (its worker died): the client
    sends it again and retries the step."""


def _graph(ref) -> Graph:
    """The graph ``ref = (name, timeout)`` names (a dataset the client
    published: the pickled graph, so that the worker holding it does not
    unpickle it twice), fetched and unpickled once per worker."""
    name, timeout = ref
    graph = _GRAPHS.get(name)
    if graph is None:
        from distributed import get_client

        try:
            blob = get_client().get_dataset(name).result(timeout=timeout)
        except Exception as exc:  # lost with its worker, or no answer: the client retries
            raise GraphUnavailable(f"graph {name!r} could not be fetched ({type(exc).__name__}: {exc})") from None
        graph = _GRAPHS[name] = pickle.loads(blob)
        while len(_GRAPHS) > _KEEP:
            _GRAPHS.popitem(last=False)
    return graph


async def _forget(name: str) -> None:
    """Drop a finished fit's graph (run on every worker at the end of a fit;
    a coroutine, so the client need not wait for workers that are gone)."""
    _GRAPHS.pop(name, None)


def schema(graph: Graph) -> tuple:
    """What checking a partition needs, small and free of weights:
    ``(dtype, [(input, size)], [(output, size, loss)])``. Partitions carry
    it in their lineage instead of the graph, so a lost one is recomputed
    whatever became of the graph's copies."""
    return (
        graph.dtype,
        [(n, graph.nodes[n].size) for n in graph.inputs],
        [(n, graph.nodes[n].size, graph.nodes[n].loss) for n in graph.outputs],
    )


def _partition(schema, *blocks):
    """One row block as checked ``(inputs, targets)`` arrays (what
    :func:`graphnet._data.as_inputs` and ``as_targets`` make of it)."""
    dtype, input_specs, output_specs = schema
    inputs = {}
    for (name, size), block in zip(input_specs, blocks):
        array = np.ascontiguousarray(features(np.asarray(block), size, name), dtype=dtype)
        check_finite(array, "input", name)
        inputs[name] = array
    targets = {
        name: loss.prepare_target(np.asarray(block), size, name, dtype)
        for (name, size, loss), block in zip(output_specs, blocks[len(input_specs):])
    }
    common_rows(inputs, targets)
    return inputs, targets


def _rows(part) -> int:
    return next(iter(part[0].values())).shape[0]


def _gather(parts, indices):
    """The rows ``indices[i]`` of ``parts[i]``, one batch (partition order, then batch order)."""
    def take(arrays_list):
        keys = arrays_list[0].keys()
        return {k: np.concatenate([a[k][idx] for a, idx in zip(arrays_list, indices)]) for k in keys}

    inputs, targets = take([p[0] for p in parts]), take([p[1] for p in parts])
    return inputs, targets, int(sum(len(i) for i in indices))


def _failure(exc: TrainingError):
    return (str(exc), exc.output, exc.key)


def _train_on(trainer: Trainer, parts, indices, where, seed, tally: Tally) -> int:
    """Forward and backward on one share, counted into ``tally``; the
    gradient of its mean is left in the store."""
    graph = trainer.graph
    inputs, targets, rows = _gather(parts, indices)
    graph.rng = np.random.default_rng(seed)  # dropout masks: a function of the step, not of history
    _, losses, ws, penalty, sums = trainer.gradient(inputs, targets, rows, where)
    predictions = {name: ws.a[slot] for name, slot in trainer.plan.outputs}
    tally.add(rows, losses, predictions, targets, penalty, sums)
    return rows


def _share_gradient(ref, weights, parts, indices, where, seed, chosen):
    """``(gradient x rows, rows, tally state, failure)`` of one group's share."""
    graph = _graph(ref)
    with graph.lock.writing():
        trainer = _TRAINERS.get(graph)
        if trainer is None:
            trainer = _TRAINERS[graph] = Trainer(graph, "sgd")  # only its gradient is used
        store = trainer.plan.store
        store.trainable_values[...] = weights
        tally = Tally(graph, chosen)
        try:
            rows = _train_on(trainer, parts, indices, where, seed, tally)
        except TrainingError as exc:
            return None, 0, None, _failure(exc)
        return store.trainable_grads * rows, rows, tally.state(), None


def _local_round(ref, weights, optimizer, parts, steps, chosen):
    """``k`` local steps of one group from ``weights`` with (a copy of) its own
    optimizer: ``((weights x rows, rows, [tally state] per step, failure), optimizer)``."""
    graph = _graph(ref)
    optimizer = copy.deepcopy(optimizer)
    with graph.lock.writing():
        trainer = Trainer(graph, optimizer)
        store = trainer.plan.store
        store.trainable_values[...] = weights
        done, per_step = 0, []
        for indices, where, seed in steps:
            tally = Tally(graph, chosen)
            if sum(len(i) for i in indices):
                try:
                    done += _train_on(trainer, parts, indices, where, seed, tally)
                    trainer.update(where)
                except TrainingError as exc:
                    return (None, 0, [], _failure(exc)), optimizer
            per_step.append(tally.state())
        return (store.trainable_values * done, done, per_step, None), optimizer


def _share_tally(ref, weights, parts, indices, chosen, chunk):
    """The :meth:`Tally.state` of a validation share with ``weights`` (no
    dropout, no penalty), one partition at a time: ``indices`` (per
    partition) or every row."""
    graph = _graph(ref)
    total = Tally(graph, chosen)
    with graph.lock.writing():
        compile_plan(graph).store.trainable_values[...] = weights
        for i, (inputs, targets) in enumerate(parts):
            if indices is not None:
                inputs, targets, _ = _gather([(inputs, targets)], [indices[i]])
            total.merge(tally_arrays(graph, inputs, targets, chosen, chunk).state())
    return total.state()


def _add(a, b):
    """Two results of :func:`_share_gradient` added up; the first failure in tree order wins."""
    if a[3] is not None or b[3] is not None:
        return a if a[3] is not None else b
    return a[0] + b[0], a[1] + b[1], merge_states(a[2], b[2]), None


def _add_rounds(a, b):
    """Two groups' rounds (:func:`_local_round`'s first result) added up."""
    if a[3] is not None or b[3] is not None:
        return a if a[3] is not None else b
    return a[0] + b[0], a[1] + b[1], [merge_states(x, y) for x, y in zip(a[2], b[2])], None
