"""The client's side of :func:`graphnet.distributed.fit`: the data on the
cluster, the ranks that train on it, and what happens when a worker is lost.

A :class:`Cluster` lives for one fit. It loads the data as partition futures
(their lineage kept, so a lost partition is recomputed), opens one rank per
group of partitions (:mod:`graphnet._rank`), talks to the ranks through
distributed's comms (never through the scheduler), and keeps the client's
graph in step with them (:mod:`graphnet._steps` makes and reads the steps).

Faults: the client's graph and optimizer are always those of the last step
the client applied, and every step is a function of them and of the data.
When a worker is lost in a synchronous fit, the ranks are opened again from
the client's state on the workers that are left (dask recomputes the lost
partitions from their lineage) and the step is sent again: the weights are
those of an undisturbed run. Past ``retries``, after ``timeout`` seconds
without an answer, or when local SGD loses a rank's own optimizer state, a
:class:`~graphnet.TrainingError` names the last checkpoint.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import statistics
import time
import uuid
from concurrent.futures import CancelledError
from typing import TYPE_CHECKING

import numpy as np

from . import _handlers, _rank, _shards
from ._collective import hops, schedule, sent_fraction
from ._costs import Traffic
from ._dask import aligned, is_dask_array, lazy_inputs, lazy_targets, require, snapshot
from .callbacks import ModelCheckpoint
from .errors import GraphError, ShapeError, TrainingError
from .optimizers import get as get_optimizer

if TYPE_CHECKING:
    from .graph import Graph
    from .trainer import Trainer

logger = logging.getLogger(__name__)

#: Seconds between checks, while waiting for the ranks, that their workers are still there.
POLL = 0.5


class Shards:
    """Data on the cluster: one future per partition, its rows, and the
    groups: contiguous runs of partitions, one per rank."""

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


def client_or_default(client, where: str = "gn.distributed.fit"):
    """``client``, or the default one; a GraphError saying how to make one."""
    try:
        from distributed import Client, default_client
    except ImportError:  # pragma: no cover - the test environment has it
        raise GraphError(f"{where} needs dask.distributed: pip install 'graphnet[dask]'") from None
    if client is None:
        try:
            return default_client()
        except ValueError:
            raise GraphError(
                f"{where}: no dask.distributed Client is running; connect one first, "
                "e.g. `from dask.distributed import Client; client = Client('tcp://SCHEDULER:8786')` "
                "(or Client() for a cluster on this machine), then pass client=client"
            ) from None
    if not isinstance(client, Client):
        raise GraphError(f"{where}: client must be a dask.distributed Client, got {type(client).__name__}")
    return client


def failures() -> tuple[type[BaseException], ...]:
    """What a lost worker or connection raises on the client (TimeoutError,
    an OSError too, is told apart first)."""
    from distributed import KilledWorker

    return (CancelledError, KilledWorker, OSError, Lost)


class Lost(Exception):
    """A rank's worker is gone or cannot be reached: the step may be sent again."""


class RankFailed(Exception):
    """A rank raised something other than a TrainingError: sending the step again would not help."""


def _values(data) -> list:
    return list(data.values()) if isinstance(data, dict) else [data]


class Cluster:
    """One fit's cluster: see the module docs."""

    def __init__(self, client, graph: Graph, chosen, timeout: float, retries: int, callbacks,
                 traffic: Traffic, mode: str):
        self.client, self.graph, self.chosen, self.mode = client, graph, chosen, mode
        self.timeout, self.retries, self.callbacks, self.traffic = timeout, retries, callbacks, traffic
        try:
            client.wait_for_workers(1, timeout=timeout)
        except TimeoutError:
            raise GraphError(
                f"gn.distributed.fit: the cluster has no workers (waited {timeout:g} s); start some "
                "(dask worker tcp://SCHEDULER:8786) or use a LocalCluster"
            ) from None
        self.workers = list(client.nthreads())
        self.name = f"graphnet-{graph.name}-{uuid.uuid4().hex}"
        self.generation = 0
        self.key: str | None = None
        self.addresses: list[str] = []
        self.trainer: Trainer | None = None
        self.train: Shards | None = None
        self.validation: Shards | None = None
        self._parts: list = []
        self._exchanged = 0
        # What the ranks hold, to tell what a callback changed.
        self._sent_version = self._sent_optimizer = self._sent_config = self._known = None
        self.diverged = False
        #: Set by the step driver: the epoch's steps, and where the ranks must resume after a fault.
        self.epoch_steps: list = []
        self.resume_from = 0
        self.planned = False
        #: Per rank, step -> result: the ranks answer with every step they have done.
        self.results: list[dict] = []

    # ------------------------------------------------------------------ data
    def load(self, x, y, label: str = "the data", ranks: int | None = None) -> Shards:
        """``x, y`` as partitions on the workers, checked there; ``ranks``
        groups them for that many ranks (default: one per worker, at most one
        per partition).

        Raises
        ------
        ShapeError
            For data that does not fit the graph, found at the call or on a worker.
        TrainingError
            When the cluster fails to load it (after the retries, or the timeout).
        """
        return self.reliably(f"loading {label}", lambda: self._load(x, y, label, ranks))

    def _load(self, x, y, label: str, ranks: int | None) -> Shards:
        dask, _ = require()
        graph = self.graph
        inputs, targets = lazy_inputs(graph, x), lazy_targets(graph, y)
        arrays = {f"input {n!r}": a for n, a in inputs.items()}
        arrays.update({f"targets of output {n!r}": a for n, a in targets.items()})
        if not any(is_dask_array(v) for v in _values(x) + _values(y)):  # numpy: a partition per worker
            aligned(arrays)  # rows that disagree: the ShapeError fit gives, before they are split
            rows = next(iter(arrays.values())).shape[0]
            pieces = max(1, min(len(self.workers), rows))
            chunks = tuple(len(c) for c in np.array_split(np.arange(rows), pieces))
            arrays = {k: a.rechunk({0: chunks}) for k, a in arrays.items()}
        labelled, _ = aligned(arrays)
        blocks = [a.to_delayed().reshape(a.numblocks[0], -1)[:, 0] for a in labelled.values()]
        count = len(blocks[0])
        # Groups of contiguous partitions, decided by the counts alone: the same
        # data on as many workers gives the same sums and seeds wherever dask
        # happens to run things.
        n = ranks if ranks is not None else min(count, len(self.workers))
        groups = [list(range(g * count // n, (g + 1) * count // n)) for g in range(n)]
        workers = sorted(self.workers)
        addresses = [workers[g % len(workers)] for g in range(n)]  # where the ranks will be opened
        layout = _shards.schema(graph)
        parts = [None] * count
        for group, address in zip(groups, addresses):
            for i in group:  # computed on its rank's worker
                task = dask.delayed(_shards.partition, pure=False)(layout, *[b[i] for b in blocks])
                parts[i] = self.client.compute(task, workers=[address], allow_other_workers=True)
        self._parts += parts
        counts = [self.client.submit(_shards.rows, p, pure=False) for p in parts]
        deadline = time.monotonic() + self.timeout
        # A partition's ShapeError is raised here, as is TimeoutError.
        rows = [f.result(timeout=max(0.0, deadline - time.monotonic())) for f in counts]
        if sum(rows) == 0:
            raise ShapeError(f"gn.distributed.fit: {label} has no rows")
        logger.info("%s: %s in %d partitions, %d groups (%s rows)", graph.name, label, count,
                    len(groups), sum(rows))
        return Shards(parts, rows, groups, addresses)

    # ----------------------------------------------------------------- ranks
    def open(self, trainer: Trainer, train: Shards, validation: Shards | None) -> None:
        """Open a rank per group of ``train`` and measure the comms between them."""
        self.trainer, self.train, self.validation = trainer, train, validation
        self.reliably("opening the ranks", self._open)
        if len(self.addresses) > 1:
            self.reliably("measuring the comms", self._probe)

    def _open(self) -> None:
        trainer = self.trainer
        self.generation += 1
        self.key = f"{self.name}/{self.generation}"
        size = len(self.train.groups)
        blob = pickle.dumps((snapshot(self.graph), trainer.optimizer), protocol=pickle.HIGHEST_PROTOCOL)
        [shared] = self.client.scatter([blob], hash=False, timeout=self.timeout)
        workers = sorted(self.workers)
        opened = []
        for i, group in enumerate(self.train.groups):
            held = [] if self.validation is None else [self.validation.parts[p] for p in self.validation.groups[i]]
            opened.append(self.client.submit(
                _handlers.open_rank, self.key, i, size, shared, self.mode, self.chosen,
                [self.train.parts[p] for p in group], held,
                workers=[workers[i % len(workers)]], allow_other_workers=True, pure=False))
        deadline = time.monotonic() + self.timeout
        self.addresses = [f.result(timeout=max(0.0, deadline - time.monotonic())) for f in opened]
        self.results = [{} for _ in self.addresses]
        for future in [*opened, shared]:
            future.release()
        self.call("graphnet_update", [{"peers": self.addresses}] * size)
        self.remember()
        values = trainer.plan.store.trainable_values
        sends = sum(e.send.stop - e.send.start for r in range(size)
                    for e in schedule(r, size, values.size) if e.send is not None)
        self._exchanged = sends * values.itemsize
        self.traffic.workers = size
        self.traffic.parameter_size = values.nbytes
        logger.info("%s: %d ranks on %s", self.graph.name, size, sorted(set(self.addresses)))

    def _probe(self) -> None:
        """Latency and bandwidth of the comms: all-reduces of 1 element and of
        the parameters, five runs of five in a row; the median run (the
        slowest rank's), so a burst of other work on the machine counts once."""
        values = self.trainer.plan.store.trainable_values
        size = len(self.addresses)
        answers = self.call("graphnet_probe", [{"sizes": [1, values.size], "reps": 5, "rounds": 5}] * size)
        tiny, full = (statistics.median(max(runs) for runs in zip(*(a["times"][i] for a in answers)))
                      for i in (0, 1))
        self.traffic.latency_s = tiny / hops(size)
        self.traffic.bandwidth = sent_fraction(size) * values.nbytes / max(full - tiny, 1e-9)

    def remember(self) -> None:
        """The ranks now hold the client's graph, optimizer and weights."""
        trainer = self.trainer
        self._sent_version = trainer.plan.version
        self._sent_optimizer, self._sent_config = trainer.optimizer, trainer.optimizer.get_config()
        self._known = trainer.plan.store.trainable_values.copy()
        self.diverged = False

    def applied(self) -> None:
        """The client applied a step: its weights are what the ranks hold."""
        np.copyto(self._known, self.trainer.plan.store.trainable_values)

    def sync(self) -> None:
        """Send the ranks what changed on the client since they last heard
        (callbacks: an edit, another optimizer or learning rate, new weights)."""
        trainer = self.trainer
        optimizer, values = trainer.optimizer, trainer.plan.store.trainable_values
        blob = sent_optimizer = weights = None
        edited = trainer.plan.version != self._sent_version
        if edited:
            blob = pickle.dumps(snapshot(self.graph), protocol=pickle.HIGHEST_PROTOCOL)
        if (optimizer is not self._sent_optimizer or optimizer.get_config() != self._sent_config
                or (self.mode == "sum" and (edited or self.diverged))):
            # Local SGD's ranks keep their own state and take only the hyperparameters.
            sent_optimizer = optimizer if self.mode == "sum" else get_optimizer(optimizer.get_config())
        if not edited and (self.diverged or not np.array_equal(values, self._known)):
            weights = values.copy()
        if blob is None and sent_optimizer is None and weights is None:
            return
        from distributed.protocol import to_serialize

        # The optimizer as bytes: each rank makes its own (over the in-process
        # transport, objects reach the ranks uncopied, and an optimizer trains one graph).
        optimizer_blob = None if sent_optimizer is None else pickle.dumps(sent_optimizer, pickle.HIGHEST_PROTOCOL)
        state = to_serialize((blob, optimizer_blob, weights))
        self.call("graphnet_update", [{"state": state}] * len(self.addresses))
        sizes = [0 if weights is None else weights.nbytes,
                 sum(s.nbytes for s in getattr(sent_optimizer, "slots", {}).values())]
        self.traffic.sent += len(self.addresses) * (sum(sizes) + (len(blob) if blob else 0))
        self.traffic.parameter_bytes += len(self.addresses) * sum(sizes)
        logger.debug("%s: sent the ranks %s", self.graph.name,
                     [n for n, v in zip(("graph", "optimizer", "weights"), (blob, sent_optimizer, weights))
                      if v is not None])
        self.remember()

    def send_plan(self, steps: list) -> None:
        """Each rank's share of ``steps`` (row indices, seeds), ahead of time."""
        from distributed.protocol import to_serialize

        size = len(self.addresses)
        self.call("graphnet_plan", [{"specs": to_serialize([s.specs[i] for s in steps])} for i in range(size)])
        self.traffic.sent += sum(i.nbytes for s in steps for spec in s.specs for sub in spec.subs
                                 for i in sub.indices)

    def exchanged(self) -> int:
        """Bytes the ranks send one another in one all-reduce."""
        return self._exchanged

    # ----------------------------------------------------------------- comms
    def call(self, method: str, arguments: list[dict] | dict[int, dict]) -> list:
        """``method`` on ranks at once: every rank (``arguments[i]`` for rank
        ``i``), or those a dict names (``{rank: arguments}``); the answers in
        rank order.

        Raises
        ------
        Lost
            When a rank's worker left the cluster or could not be reached, or
            a rank stopped (a peer was lost mid-step).
        RankFailed
            When a rank raised.
        TimeoutError
            After ``timeout`` seconds without every answer.
        """
        asked = arguments if isinstance(arguments, dict) else dict(enumerate(arguments))
        answers = self.client.sync(self._call, method, asked)
        for i, answer in zip(asked, answers):
            if isinstance(answer, dict) and "error" in answer:
                raise RankFailed(f"rank {i} at {self.addresses[i]} failed: {answer['error']}")
        for i, answer in zip(asked, answers):
            if isinstance(answer, dict) and ("lost" in answer or "stopped" in answer):
                raise Lost(f"rank {i} at {self.addresses[i]}: {answer.get('lost') or answer.get('stopped')}")
        return answers

    async def _call(self, method: str, asked: dict[int, dict]) -> list:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        tasks = [asyncio.ensure_future(getattr(self.client.rpc(self.addresses[i]), method)(key=self.key, rank=i,
                                                                                             **kwargs))
                 for i, kwargs in asked.items()]
        ranks = dict(zip(tasks, asked))
        try:
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    raise TimeoutError
                done, pending = await asyncio.wait(tasks, timeout=min(POLL, left),
                                                   return_when=asyncio.FIRST_EXCEPTION)
                for task in done:
                    if task.exception() is not None:
                        exc = task.exception()
                        raise Lost(f"{type(exc).__name__}: {exc}") from None
                    answer, i = _unwrapped(task.result()), ranks[task]
                    if isinstance(answer, dict) and "error" in answer:  # at once: its peers may wait on it
                        raise RankFailed(f"rank {i} at {self.addresses[i]} failed: {answer['error']}")
                if not pending:
                    return [_unwrapped(task.result()) for task in tasks]
                alive = await self.client.scheduler.ncores()
                gone = sorted(set(self.addresses) - set(alive))
                if gone:
                    raise Lost(f"worker(s) {gone} left the cluster")
        finally:
            for task in tasks:
                if not task.done():
                    task.cancel()

    def close_ranks(self) -> None:
        """Ask every rank of this generation to stop and forget (best effort)."""
        if not self.addresses:
            return

        async def close(addresses):
            calls = [self.client.rpc(a).graphnet_close(key=self.key) for a in addresses]
            await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), timeout=min(5.0, self.timeout))

        try:
            self.client.sync(close, sorted(set(self.addresses)))
        except Exception as exc:  # noqa: BLE001 - cleanup only: a rank that is gone has stopped
            logger.debug("%s: closing the ranks: %s: %s", self.graph.name, type(exc).__name__, exc)
        self.addresses = []

    # ----------------------------------------------------------------- faults
    def reliably(self, where, attempt):
        """``attempt()``; after a lost worker the ranks are opened again from
        the client's state and it is tried again. Never waits past the timeout."""
        lost = failures()
        for n in range(self.retries + 1):
            try:
                return attempt()
            except TimeoutError:
                raise self.lost(where, f"no answer from the cluster within {self.timeout:g} s", n + 1) from None
            except RankFailed as exc:
                raise self.lost(where, str(exc), n + 1) from None
            except lost as exc:
                what = str(exc) if isinstance(exc, Lost) else f"{type(exc).__name__}: {exc}"
                if self.mode == "average" and self.addresses:
                    raise self.lost(where, f"{what}; the ranks' own optimizer states (local SGD) "
                                           "went with it", n + 1) from None
                if n == self.retries:
                    raise self.lost(where, what, n + 1) from exc
                logger.warning("%s: %s: %s; trying again (attempt %d of %d)", self.graph.name,
                               _rank.place(where), what, n + 2, self.retries + 1)
                try:
                    self.reopen()
                except (TimeoutError, RankFailed, *lost) as again:
                    raise self.lost(where, f"{what}, then {type(again).__name__}: {again}", n + 1) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def reopen(self) -> None:
        """Ranks anew on the workers that are left, from the client's state,
        resuming at the first step the client has not applied."""
        self.close_ranks()
        self.client.wait_for_workers(1, timeout=self.timeout)
        self.workers = list(self.client.nthreads())
        if self.trainer is None:  # still loading the data
            return
        self._open()
        remaining = [s for s in self.epoch_steps if s.number >= self.resume_from]
        if self.planned and remaining:
            self.send_plan(remaining)

    def last_checkpoint(self) -> tuple[str, bool] | None:
        """``(path, weights_only)`` of the newest file a ModelCheckpoint wrote."""
        found = [(cb.saved[-1], cb.weights_only) for cb in self.callbacks
                 if isinstance(cb, ModelCheckpoint) and cb.saved]
        return found[-1] if found else None

    def lost(self, where, what: str, attempts: int) -> TrainingError:
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
            f"{_rank.place(where)}: the cluster failed ({what}) after {attempts} attempt(s); "
            f"the weights are as they were before this step; {resume}"
        )
        error.epoch = None if isinstance(where, str) else where[0]
        error.batch = None if isinstance(where, str) else where[2]
        error.output, error.key = None, None
        error.checkpoint = None if checkpoint is None else checkpoint[0]
        return error

    def close(self) -> None:
        """Let the cluster forget this fit's ranks and data (best effort: a
        cluster that is gone has forgotten them, and an error here must not
        hide the one that ended the fit)."""
        self.close_ranks()
        try:
            for future in self._parts:
                future.release()
        except Exception as exc:  # noqa: BLE001 - cleanup only; the fit's own outcome stands
            logger.debug("%s: could not clean up on the cluster: %s: %s", self.graph.name,
                         type(exc).__name__, exc)
        self._parts = []


def _unwrapped(answer):
    """A rank's answer as its handler made it. Over distributed's in-process
    transport (``LocalCluster(processes=False)`` without a protocol) nothing
    is serialized, and an answer the handler wrapped with ``to_serialize``
    arrives still wrapped."""
    from distributed.protocol.serialize import Serialize

    return answer.data if isinstance(answer, Serialize) else answer
