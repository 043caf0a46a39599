"""The client's side of :func:`graphnet.distributed.fit`: the data on the
cluster, one step sent out and added up, retries, timeouts and traffic.

A :class:`_Cluster` lives for one fit. It scatters the graph once (each
worker fetches it the first time it needs it, see :mod:`graphnet._shards`),
loads the data as partition futures (their lineage kept, so a lost
partition is recomputed), and for each step scatters the weights, submits
one task per worker group (:mod:`graphnet._shards`) and adds the answers up
in a tree whose shape depends only on the number of groups, so the sums, and
the weights, do not depend on where the tasks ran.
"""

from __future__ import annotations

import copy
from concurrent.futures import CancelledError
import logging
import operator
import pickle
import time
import uuid
from typing import TYPE_CHECKING

import numpy as np

from . import _shards
from ._dask import aligned, is_dask_array, lazy_inputs, lazy_targets, require, snapshot, tree_reduce
from .callbacks import ModelCheckpoint
from .errors import GraphError, ShapeError, TrainingError
from .inference import Tally, merge_states
from .plan import compile_plan

if TYPE_CHECKING:
    from .graph import Graph
    from .trainer import Trainer

logger = logging.getLogger(__name__)


class Traffic:
    """Bytes a distributed fit handed to dask and got back, in ``history.params["traffic"]``.

    ``sent``: the weights times the workers they went to, plus each share's
    row indices; ``received``: each group's parameter-sized result (a
    gradient, or weights for local SGD) that the reduction adds up, an upper
    bound on what crosses the network (two results on one worker add up in
    place). ``parameter_bytes`` is the parameter-sized part of both;
    ``steps`` counts global batches. Validation is counted apart
    (``validation``); what is sent once (the graph, the data, local SGD's
    optimizer copies) is not counted.
    """

    def __init__(self):
        self.sent = 0
        self.received = 0
        self.parameter_bytes = 0
        self.steps = 0
        self.validation = 0

    @property
    def bytes_per_step(self) -> float:
        return (self.sent + self.received) / self.steps if self.steps else 0.0

    @property
    def parameter_bytes_per_step(self) -> float:
        return self.parameter_bytes / self.steps if self.steps else 0.0

    def __repr__(self) -> str:
        return (f"Traffic(steps={self.steps}, sent={self.sent}, received={self.received}, "
                f"bytes_per_step={self.bytes_per_step:.0f})")


class _Batch:
    """One global batch: its rows (indices into ``data``) and its place."""

    def __init__(self, data: _Shards, epoch: int, batch: int, batches: int, ids: np.ndarray):
        self.data, self.epoch, self.batch, self.batches, self.ids = data, epoch, batch, batches, ids


class _Round:
    """``sync_every`` global batches trained locally, then averaged."""

    def __init__(self, batches: list[_Batch]):
        self.batches = batches
        self.rows = sum(len(b.ids) for b in batches)


class _Shards:
    """Data on the cluster: one future per partition, its rows, and the
    groups: contiguous runs of partitions, each placed on one worker."""

    def __init__(self, parts: list, rows: list[int], groups: list[list[int]], addresses: list[str]):
        self.parts = parts
        self.offsets = np.cumsum([0, *rows])
        self.rows = int(self.offsets[-1])
        self.groups, self.addresses = groups, addresses
        # Local row numbers travel with every step: half the bytes when they fit.
        self.index_dtype = np.int32 if max(rows, default=0) < 2**31 else np.int64

    def split(self, ids: np.ndarray) -> list[list[np.ndarray]]:
        """Per group, per partition of the group: the local rows of ``ids``
        (in batch order within a partition)."""
        part = np.searchsorted(self.offsets, ids, side="right") - 1
        order = np.argsort(part, kind="stable")
        local = (ids - self.offsets[part])[order].astype(self.index_dtype)
        bounds = np.searchsorted(part[order], np.arange(len(self.parts) + 1))
        per_part = [local[bounds[p] : bounds[p + 1]] for p in range(len(self.parts))]
        return [[per_part[p] for p in group] for group in self.groups]


def client_or_default(client):
    """``client``, or the default one; a GraphError saying how to make one."""
    try:
        from distributed import Client, default_client
    except ImportError:  # pragma: no cover - the test environment has it
        raise GraphError("gn.distributed.fit needs dask.distributed: pip install 'graphnet[dask]'") from None
    if client is None:
        try:
            return default_client()
        except ValueError:
            raise GraphError(
                "gn.distributed.fit: no dask.distributed Client is running; connect one first, "
                "e.g. `from dask.distributed import Client; client = Client('tcp://SCHEDULER:8786')` "
                "(or Client() for a cluster on this machine), then pass client=client"
            ) from None
    if not isinstance(client, Client):
        raise GraphError(
            f"gn.distributed.fit: client must be a dask.distributed Client, got {type(client).__name__}"
        )
    return client


def _failures() -> tuple[type[BaseException], ...]:
    """What a lost worker or connection raises on the client (TimeoutError,
    an OSError too, is told apart first)."""
    from distributed import KilledWorker

    return (CancelledError, KilledWorker, OSError, _shards.GraphUnavailable)


def _place(where) -> str:
    """``where`` is a phrase (``"validation"``, ``"loading the data"``),
    ``(epoch, epochs, batch, batches)``, or the same with ``"round"``
    appended (local SGD's steps are rounds)."""
    if isinstance(where, str):
        return where
    epoch, epochs, step, steps, *unit = where
    return f"epoch {epoch + 1}/{epochs}, {unit[0] if unit else 'batch'} {step + 1}/{steps}"


def _values(data) -> list:
    return list(data.values()) if isinstance(data, dict) else [data]


class _Cluster:
    """One fit's cluster: see the module docs."""

    def __init__(self, client, graph: Graph, chosen, timeout: float, retries: int, callbacks, traffic: Traffic):
        self.client, self.graph, self.chosen = client, graph, chosen
        self.timeout, self.retries, self.callbacks, self.traffic = timeout, retries, callbacks, traffic
        try:
            client.wait_for_workers(1, timeout=timeout)
        except TimeoutError:
            raise GraphError(
                f"gn.distributed.fit: the cluster has no workers (waited {timeout:g} s); start some "
                "(dask worker tcp://SCHEDULER:8786) or use a LocalCluster"
            ) from None
        self.workers = list(client.nthreads())
        # Dropout seeds from a child of the graph's training stream: the
        # stream itself (the epochs' permutations) stays as ``fit`` uses it.
        child = graph.rng.bit_generator.seed_seq.spawn(1)[0]
        self._entropy, self._spawn_key = child.entropy, tuple(child.spawn_key)
        self._parts: list = []
        self.optimizers: list | None = None
        self.graph_ref = None
        self._names: list[str] = []
        self._reliably("sending the graph", self.send_graph)

    # --------------------------------------------------------------- sending
    def _scatter(self, value, **where):
        # Never broadcast=True: replicating to a worker that just died retries
        # for ever, whatever the timeout (the tasks fetch from peers instead).
        return self.client.scatter([value], hash=False, timeout=self.timeout, **where)[0]

    def send_graph(self) -> None:
        """The graph's current state (again after an edit or a fault), published
        under a name of its own for the workers to fetch once each."""
        name = f"graphnet-{self.graph.name}-{uuid.uuid4().hex}"
        future = self._scatter(pickle.dumps(snapshot(self.graph), protocol=pickle.HIGHEST_PROTOCOL))
        self.client.publish_dataset(future, name=name)
        self._unpublish()
        self._names.append(name)
        self.graph_ref = (name, self.timeout)

    def resend_graph(self, where) -> None:
        """After an edit: the workers train the new structure from this step on."""
        self._reliably(where, self.send_graph)

    def _unpublish(self) -> None:
        for name in self._names:
            self.client.unpublish_dataset(name)
            self.client.run(_shards._forget, name, wait=False)
        self._names = []

    def _send_weights(self, store, validation: bool = False):
        weights = store.trainable_values.copy()
        future = self._scatter(weights)
        sent = weights.nbytes * len(self.workers)
        if validation:
            self.traffic.validation += sent
        else:
            self.traffic.sent += sent
            self.traffic.parameter_bytes += sent
        return future

    def _received(self, results: int, store) -> None:
        size = results * store.trainable_values.nbytes
        self.traffic.received += size
        self.traffic.parameter_bytes += size

    def _seed(self, epoch: int, batch: int, group: int) -> np.random.SeedSequence:
        return np.random.SeedSequence(self._entropy, spawn_key=(*self._spawn_key, epoch, batch, group))

    def _submit(self, func, *args, address: str | None = None):
        where = {} if address is None else {"workers": [address], "allow_other_workers": True}
        return self.client.submit(func, *args, pure=False, **where)

    def _sum(self, futures: list, combine):
        return tree_reduce(futures, lambda a, b: self._submit(combine, a, b)).result(timeout=self.timeout)

    # ------------------------------------------------------------------ data
    def load(self, x, y, label: str = "the data") -> _Shards:
        """``x, y`` as partitions on the workers, checked there.

        Raises
        ------
        ShapeError
            For data that does not fit the graph, found at the call or on a worker.
        TrainingError
            When the cluster fails to load it (after the retries, or the timeout).
        """
        return self._reliably(f"loading {label}", lambda: self._load(x, y, label))

    def _load(self, x, y, label: str) -> _Shards:
        dask, _ = require()
        graph = self.graph
        inputs, targets = lazy_inputs(graph, x), lazy_targets(graph, y)
        arrays = {f"input {n!r}": a for n, a in inputs.items()}
        arrays.update({f"targets of output {n!r}": a for n, a in targets.items()})
        if not any(is_dask_array(v) for v in _values(x) + _values(y)):  # numpy: a partition per worker
            rows = next(iter(arrays.values())).shape[0]
            pieces = max(1, min(len(self.workers), rows))
            chunks = tuple(len(c) for c in np.array_split(np.arange(rows), pieces))
            arrays = {k: a.rechunk({0: chunks}) for k, a in arrays.items()}
        labelled, _ = aligned(arrays)
        blocks = [a.to_delayed().reshape(a.numblocks[0], -1)[:, 0] for a in labelled.values()]
        count = len(blocks[0])
        # Groups of contiguous partitions, one per worker, decided by the counts
        # alone: the same data on as many workers gives the same sums and seeds
        # wherever dask happens to run things.
        n = min(count, len(self.workers))
        groups = [list(range(g * count // n, (g + 1) * count // n)) for g in range(n)]
        addresses = sorted(self.workers)[: len(groups)]
        layout = _shards.schema(graph)
        parts = [None] * count
        for group, address in zip(groups, addresses):
            for i in group:  # computed on its group's worker (moved there once if it was elsewhere)
                task = dask.delayed(_shards._partition, pure=False)(layout, *[b[i] for b in blocks])
                parts[i] = self.client.compute(task, workers=[address], allow_other_workers=True)
        self._parts += parts
        counts = [self._submit(_shards._rows, p) for p in parts]
        deadline = time.monotonic() + self.timeout
        # A partition's ShapeError is raised here, as is TimeoutError.
        rows = [f.result(timeout=max(0.0, deadline - time.monotonic())) for f in counts]
        if sum(rows) == 0:
            raise ShapeError(f"gn.distributed.fit: {label} has no rows")
        logger.info("%s: %s in %d partitions, %d groups (%s rows)", graph.name, label, count,
                    len(groups), sum(rows))
        return _Shards(parts, rows, groups, addresses)

    # ------------------------------------------------------------------ steps
    def synchronous_step(self, trainer: Trainer, batch: _Batch, where, tally: Tally) -> float:
        """The batch's gradient from the groups, then one update on the client."""
        store, data = trainer.plan.store, batch.data

        def attempt():
            weights = self._send_weights(store)
            futures = []
            for g, indices in enumerate(data.split(batch.ids)):
                used = [i for i, idx in enumerate(indices) if len(idx)]
                if not used:
                    continue
                idx = [indices[i] for i in used]
                self.traffic.sent += sum(i.nbytes for i in idx)
                parts = [data.parts[data.groups[g][i]] for i in used]
                futures.append(self._submit(
                    _shards._share_gradient, self.graph_ref, weights, parts, idx, where,
                    self._seed(batch.epoch, batch.batch, g), self.chosen, address=data.addresses[g],
                ))
            result = self._sum(futures, _shards._add)
            self._received(len(futures), store)
            return result

        grad, rows, state, failure = self._reliably(where, attempt)
        self._check(where, failure, rows, len(batch.ids), grad, store.trainable_values.size)
        np.divide(grad, rows, out=store.trainable_grads)
        trainer.update(where)
        tally.merge(state)
        self.traffic.steps += 1
        return self._loss([state])

    def start_local_sgd(self, data: _Shards) -> None:
        """Each group's own optimizer: a copy of the graph's, kept on its worker."""
        optimizer = self.graph.optimizer

        def attempt():
            return [self._scatter(copy.deepcopy(optimizer), workers=[a]) for a in data.addresses]

        self.optimizers = self._reliably("sending the optimizers", attempt)

    def local_round(self, trainer: Trainer, work: _Round, where, tally: Tally) -> float:
        """``k`` local steps per group, then the weights averaged by rows."""
        store, data = trainer.plan.store, work.batches[0].data

        def attempt():
            lost = [g for g, f in enumerate(self.optimizers) if f.status in ("lost", "error", "cancelled")]
            if lost:
                raise _StateLost(lost)
            weights = self._send_weights(store)
            splits = [data.split(b.ids) for b in work.batches]
            summaries, states = [], {}
            for g, address in enumerate(data.addresses):
                steps = [(shares[g], (where[0], where[1], b.batch, b.batches), self._seed(b.epoch, b.batch, g))
                         for b, shares in zip(work.batches, splits)]
                if not any(len(i) for indices, _, _ in steps for i in indices):
                    continue
                self.traffic.sent += sum(i.nbytes for indices, _, _ in steps for i in indices)
                parts = [data.parts[p] for p in data.groups[g]]
                task = self._submit(_shards._local_round, self.graph_ref, weights, self.optimizers[g],
                                    parts, steps, self.chosen, address=address)
                summaries.append(self._submit(operator.getitem, task, 0))
                states[g] = self._submit(operator.getitem, task, 1)
            result = self._sum(summaries, _shards._add_rounds)
            self._received(len(summaries), store)
            return result, states

        place = (*where, "round")
        (total, rows, per_step, failure), states = self._reliably(place, attempt)
        self._check(place, failure, rows, work.rows, total, store.trainable_values.size)
        with np.errstate(over="ignore", invalid="ignore"):
            new = total / rows
        if not np.isfinite(new).all():
            record = store.locate(int(np.flatnonzero(~np.isfinite(new))[0]))
            error = TrainingError(f"{_place(place)}: the averaged weights of {record.key!r} are not "
                                  "finite; the weights are as they were before this round")
            error.epoch, error.batch, error.output, error.key = where[0], where[2], None, record.key
            raise error
        store.trainable_values[...] = new
        for g, state in states.items():
            self.optimizers[g] = state
        for state in per_step:
            tally.merge(state)
        self.traffic.steps += len(work.batches)
        return self._loss(per_step)

    def evaluate(self, data: _Shards, ids: np.ndarray | None, chunk: int) -> dict[str, float]:
        """``evaluate``'s logs on ``data`` (its rows ``ids`` only, when given)."""
        store = compile_plan(self.graph).store

        def attempt():
            weights = self._send_weights(store, validation=True)
            shares = None if ids is None else data.split(ids)
            futures = []
            for g, group in enumerate(data.groups):
                used = range(len(group)) if shares is None else [i for i, s in enumerate(shares[g]) if len(s)]
                if not used:
                    continue
                idx = None if shares is None else [shares[g][i] for i in used]
                parts = [data.parts[group[i]] for i in used]
                futures.append(self._submit(_shards._share_tally, self.graph_ref, weights, parts, idx,
                                            self.chosen, chunk, address=data.addresses[g]))
            return self._sum(futures, merge_states)

        tally = Tally(self.graph, self.chosen)
        tally.merge(self._reliably("validation", attempt))
        logs = tally.logs()
        if compile_plan(self.graph).penalties:  # as evaluate reports it
            logs["loss"] += compile_plan(self.graph).regularization()
        return logs

    def _loss(self, states: list) -> float:
        """The loss of a batch (or a round) from its shares' tally states."""
        tally = Tally(self.graph, self.chosen)
        for state in states:
            tally.merge(state)
        return tally.loss()

    # ----------------------------------------------------------------- faults
    def _reliably(self, where, attempt):
        """``attempt()``, sent again after a lost worker; never waits past the timeout."""
        failures = _failures()
        for n in range(self.retries + 1):
            try:
                return attempt()
            except _StateLost as exc:
                raise self._lost(where, f"the local optimizer state of worker group(s) {exc.groups} "
                                        "was lost with its worker", n + 1) from None
            except TimeoutError:
                raise self._lost(where, f"no answer from the cluster within {self.timeout:g} s", n + 1) from None
            except failures as exc:
                what = f"{type(exc).__name__}: {exc}"
                if n == self.retries:
                    raise self._lost(where, what, n + 1) from exc
                logger.warning("%s: %s: %s; sending the step again (attempt %d of %d)",
                               self.graph.name, _place(where), what, n + 2, self.retries + 1)
                try:
                    self.workers = list(self.client.nthreads())
                    self.send_graph()  # its copies may have gone with the worker
                except (TimeoutError, *failures) as again:
                    raise self._lost(where, f"{what}, then {type(again).__name__}: {again}", n + 1) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _check(self, where, failure, rows: int, expected: int, result, size: int) -> None:
        """Refuse a failed step, or an answer that misses rows or parameters."""
        if failure is not None:
            message, output, key = failure
            error = TrainingError(message)
            error.epoch, error.batch = where[0], where[2]
            error.output, error.key = output, key
            raise error
        if rows != expected or result is None or result.shape != (size,):
            shape = None if result is None else result.shape
            error = TrainingError(
                f"{_place(where)}: the workers answered for {rows} of the batch's {expected} rows "
                f"with a result of shape {shape} for {size} parameters; the step was not applied"
            )
            error.epoch, error.batch, error.output, error.key = where[0], where[2], None, None
            raise error

    def last_checkpoint(self) -> tuple[str, bool] | None:
        """``(path, weights_only)`` of the newest file a ModelCheckpoint wrote."""
        found = [(cb.saved[-1], cb.weights_only) for cb in self.callbacks
                 if isinstance(cb, ModelCheckpoint) and cb.saved]
        return found[-1] if found else None

    def _lost(self, where, what: str, attempts: int) -> TrainingError:
        checkpoint = self.last_checkpoint()
        if checkpoint is None:
            resume = ("no checkpoint was saved (pass gn.ModelCheckpoint('ckpt.gnet', "
                      "save_best_only=False) to have one to resume from)")
        elif checkpoint[1]:
            resume = (f"the last checkpoint is {checkpoint[0]!r} (weights: g.load_weights(path), "
                      "then fit on)")
        else:
            resume = (f"the last checkpoint is {checkpoint[0]!r} (gn.load it: weights and "
                      "optimizer state; then fit on)")
        error = TrainingError(
            f"{_place(where)}: the cluster failed ({what}) after {attempts} attempt(s); "
            f"the weights are as they were before this step; {resume}"
        )
        error.epoch = None if isinstance(where, str) else where[0]
        error.batch = None if isinstance(where, str) else where[2]
        error.output, error.key = None, None
        error.checkpoint = None if checkpoint is None else checkpoint[0]
        return error

    def close(self) -> None:
        """Let the cluster forget this fit's graph, data and states (best
        effort: a cluster that is gone has forgotten them, and an error here
        must not hide the one that ended the fit)."""
        try:
            for future in [*self._parts, *(self.optimizers or [])]:
                future.release()
            self._unpublish()
        except Exception as exc:  # noqa: BLE001 - cleanup only; the fit's own outcome stands
            logger.debug("%s: could not clean up on the cluster: %s: %s", self.graph.name,
                         type(exc).__name__, exc)
        self._parts, self.optimizers, self._names = [], None, []


class _StateLost(Exception):
    def __init__(self, groups: list[int]):
        super().__init__(groups)
        self.groups = groups
