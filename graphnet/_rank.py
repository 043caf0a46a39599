"""The workers' side of :func:`graphnet.distributed.fit`: ranks that keep
their data, their copy of the graph and its compiled plan from the first
step to the last.

A rank is opened by a dask task on its worker
(:func:`graphnet._handlers.open_rank`): its partitions are that task's
arguments, so dask moves them there, or recomputes them from their lineage,
as for any task. The task also adds graphnet's handlers to the worker (as
distributed's own P2P shuffle adds its own, :mod:`graphnet._handlers`), and
from then on the rank is reached through distributed's comms directly,
never through the scheduler:

- from the client: ``graphnet_update`` (the peers' addresses, and what a
  callback changed: the graph, the optimizer, the weights), ``graphnet_plan``
  (the coming steps' row indices, an epoch ahead), ``graphnet_result`` (leave
  to run up to a step, and the result of one), ``graphnet_evaluate``,
  ``graphnet_probe`` and ``graphnet_close``;
- from the other ranks: ``graphnet_stream``, one connection from each rank
  to each partner, opened at its first message and kept for the fit, that
  carries the pieces of the all-reduces (:mod:`graphnet._collective`) with
  no reply and no handler lookup per message.

A step moves flat buffers only: each rank computes its share's gradient (for
local SGD, takes its ``k`` local steps), the ranks all-reduce the gradients
times their rows (the weights times their rows), and each applies the same
checked update with its copy of the optimizer (divides by the rows). One
rank, each step the next (so no rank does more than the others), sends the
sum to the client, whose graph makes the same update. While the
buffers travel, the rank's thread gathers the next step's rows.

Compute runs in one thread per rank, so the worker's event loop stays free to
pass messages; the graph copy is the rank's own and takes no lock.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import pickle
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import NamedTuple

import numpy as np

from . import _shards
from ._collective import allreduce, schedule
from .errors import TrainingError
from .inference import Tally
from .trainer import Trainer

logger = logging.getLogger(__name__)

#: This process's ranks by ``(fit key, rank)``.
RANKS: dict[tuple[str, int], Rank] = {}



class Sub(NamedTuple):
    """One batch's share in a step: row indices per partition of the rank's
    group, the dropout seed, and the batch's place ``(epoch, epochs, batch, batches)``."""

    indices: list
    seed: object
    where: tuple


class Spec(NamedTuple):
    """One step of one rank: its number, its place (for messages), the rows of
    the whole step (what the sum is divided by), its batches' shares (one
    for a synchronous step, ``k`` for a round of local SGD), and whether the
    rank whose turn it is to send the sum also returns a digest of its
    weights after it (the client compares its own)."""

    step: int
    where: tuple
    rows: int
    subs: tuple
    check: bool = False


class PeerLost(Exception):
    """A message to another rank could not be delivered (its worker is gone)."""


def place(where) -> str:
    """``where`` is a phrase (``"validation"``), ``(epoch, epochs, batch,
    batches)``, or the same with ``"round"`` appended (local SGD's steps)."""
    if isinstance(where, str):
        return where
    epoch, epochs, step, steps, *unit = where
    return f"epoch {epoch + 1}/{epochs}, {unit[0] if unit else 'batch'} {step + 1}/{steps}"


def digest(values: np.ndarray) -> str:
    """A fingerprint of a weight vector: the client's and the ranks' must match."""
    return hashlib.blake2b(np.ascontiguousarray(values).data, digest_size=16).hexdigest()


class Rank:
    """One rank: see the module docs. ``mode`` is ``"sum"`` (gradients
    all-reduced every step, ``sync_every=1``) or ``"average"`` (weights
    all-reduced after ``k`` local steps)."""

    def __init__(self, key, index, size, worker, graph, optimizer, mode, chosen, train, validation):
        self.key, self.index, self.size, self.worker = key, index, size, worker
        self.mode, self.chosen = mode, chosen
        self.train, self.validation = list(train), list(validation)
        self.gatherer = _shards.Gatherer(self.train)
        self.trainer = Trainer(graph, optimizer)
        self.pool = ThreadPoolExecutor(1, thread_name_prefix=f"graphnet-rank-{index}")
        self.peers: list[str] = []
        self.specs: dict[int, Spec] = {}
        self.allowed = -1
        self.next: int | None = None
        self.done: dict[int, dict] = {}
        self.waiting: dict[int, asyncio.Future] = {}
        self.inbox: dict[str, asyncio.Future] = {}
        self.prefetched: dict[int, Future] = {}
        self.stopped: dict | None = None
        self.broken: PeerLost | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._runner: asyncio.Task | None = None
        self._links: dict[int, asyncio.Queue] = {}
        self._writers: set[asyncio.Task] = set()

    # ------------------------------------------------------------ the loop
    def start(self) -> None:
        """Called on the worker's event loop by every handler: the first call
        starts the runner there."""
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
            self._wake = asyncio.Event()
            self._runner = self.loop.create_task(self._run())

    def add(self, specs: list[Spec]) -> None:
        for spec in specs:
            self.specs[spec.step] = spec
        if self.next is None and specs:
            self.next = min(s.step for s in specs)
        self._wake.set()

    def permit(self, step: int) -> None:
        if step > self.allowed:
            self.allowed = step
            self._wake.set()

    def _ready(self, step: int) -> bool:
        return step in self.specs and step <= self.allowed

    async def _run(self) -> None:
        """Steps in order, as they are planned and allowed. One job of the
        rank's thread applies a step's sum and goes straight on to the next
        step's share when it may, so the thread and the loop hand over once a
        step; the loop all-reduces while the thread gathers the rows after."""
        loop = self.loop
        worked = None  # (spec, what _work returned) of a step whose share is done
        try:
            while True:
                if worked is None:
                    while self.next is None or not self._ready(self.next):
                        self._wake.clear()
                        await self._wake.wait()
                    spec = self.specs.pop(self.next)
                    worked = spec, await loop.run_in_executor(self.pool, self._work, spec)
                spec, (vector, rows, tallies, failure, compute) = worked
                self._prefetch(spec.step + 1)
                began = time.perf_counter()
                try:
                    ok = await allreduce(vector, schedule(self.index, self.size, vector.size),
                                         self._sender(spec.step), self._receiver(spec.step), failure is None)
                except PeerLost as exc:
                    self._deliver(spec.step, {"lost": str(exc)})
                    self._stop({"stopped": f"rank {self.index} lost a peer at step {spec.step}"})
                    return
                reduced = {"rows": rows, "tallies": tallies, "failure": failure, "ok": ok, "vector": None,
                           "compute_s": compute, "reduce_s": time.perf_counter() - began, "update_s": 0.0}
                after = self._take(spec.step + 1) if ok else None
                spec, result, worked = await loop.run_in_executor(self.pool, self._finish, spec, vector, reduced,
                                                                  after)
                if result["failure"] is not None or not result["ok"]:
                    self._stop({"stopped": f"rank {self.index} stopped at step {spec.step}"})
                    return
                self.next = spec.step + 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # reported to the client, which raises TrainingError
            logger.exception("graphnet rank %d of %s failed", self.index, self.key)
            self._stop({"error": f"{type(exc).__name__}: {exc}"})

    def _take(self, step: int) -> Spec | None:
        """The spec of ``step`` when it is planned and allowed (from either thread)."""
        return self.specs.pop(step) if self._ready(step) else None

    def _finish(self, spec: Spec, total: np.ndarray, result: dict, after: Spec | None):
        """In the rank's thread: apply the sum, hand the result to the loop,
        then (when ``after`` is given) compute the next step's share. A lone
        rank has nothing to all-reduce, so it goes on from step to step here
        while they are allowed, without handing over to the loop at all.
        Returns ``(last spec applied, its result, (next spec, its share) or None)``."""
        while True:
            if result["ok"]:
                result["failure"], result["update_s"] = self._apply(spec, total)
                if self.index == spec.step % self.size and result["failure"] is None:
                    result["vector"] = total
                    if spec.check:
                        result["digest"] = digest(self.trainer.plan.store.trainable_values)
            self.loop.call_soon_threadsafe(self._deliver, spec.step, result)
            if after is None or result["failure"] is not None:
                return spec, result, None
            worked = self._work(after)
            if self.size > 1:
                return spec, result, (after, worked)
            spec, (total, rows, tallies, failure, compute) = after, worked
            result = {"rows": rows, "tallies": tallies, "failure": failure, "ok": failure is None, "vector": None,
                      "compute_s": compute, "reduce_s": 0.0, "update_s": 0.0}
            after = self._take(spec.step + 1) if failure is None else None

    def _deliver(self, step: int, result: dict) -> None:
        waiter = self.waiting.pop(step, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(result)
        else:
            self.done[step] = result

    def _stop(self, reason: dict) -> None:
        self.stopped = reason
        for waiter in self.waiting.values():
            if not waiter.done():
                waiter.set_result(reason)
        self.waiting.clear()

    async def result(self, step: int) -> list[dict]:
        """The results of ``step`` and of the steps after it that are done,
        once ``step`` is (or why it never will be, alone)."""
        if step in self.done:
            first = self.done.pop(step)
        elif self.stopped is not None:
            return [self.stopped]
        else:
            waiter = self.waiting.get(step)
            if waiter is None:
                waiter = self.waiting[step] = self.loop.create_future()
            first = await waiter
        out = [first]
        while step + len(out) in self.done:
            out.append(self.done.pop(step + len(out)))
        return out

    # ------------------------------------------------------------- one step
    def _prefetch(self, step: int) -> None:
        spec = self.specs.get(step)
        if spec is not None and step not in self.prefetched:
            self.prefetched[step] = self.pool.submit(self._gather, spec.subs[0])

    def _gather(self, sub: Sub):
        return self.gatherer(sub.indices)

    def _batch(self, spec: Spec, i: int):
        # A prefetch went into this thread's queue before this step did: done.
        ahead = self.prefetched.pop(spec.step, None) if i == 0 else None
        return ahead.result() if ahead is not None else self._gather(spec.subs[i])

    def _work(self, spec: Spec):
        """In the rank's thread: the share's gradient (sum) or ``k`` local steps
        (average); returns ``(vector x rows, rows, tally states, failure, seconds)``."""
        start = time.perf_counter()
        trainer = self.trainer
        tallies, count, failure = [], 0, None
        for i, sub in enumerate(spec.subs):
            tally = Tally(trainer.graph, self.chosen)
            batch = self._batch(spec, i)
            if batch[2]:
                try:
                    count += _shards.train_on(trainer, batch, sub.where, sub.seed, tally)
                    if self.mode == "average":
                        trainer.update(sub.where)
                except TrainingError as exc:
                    failure = (str(exc), exc.output, exc.key)
                    break
            tallies.append(tally.state())
        store = trainer.plan.store
        source = store.trainable_grads if self.mode == "sum" else store.trainable_values
        vector = source * count if count and failure is None else np.zeros_like(source)
        return vector, count, tallies, failure, time.perf_counter() - start

    def _apply(self, spec: Spec, total: np.ndarray):
        """In the rank's thread: the update every rank makes from the same sum;
        returns ``(failure, seconds)``."""
        start = time.perf_counter()
        store = self.trainer.plan.store
        if self.mode == "sum":
            np.divide(total, spec.rows, out=store.trainable_grads)
            try:
                self.trainer.update(spec.where)
            except TrainingError as exc:
                return (str(exc), exc.output, exc.key), time.perf_counter() - start
            return None, time.perf_counter() - start
        with np.errstate(over="ignore", invalid="ignore"):
            new = total / spec.rows
        bad = np.flatnonzero(~np.isfinite(new))
        if len(bad):
            key = store.locate(int(bad[0])).key
            message = (f"{place(spec.where)}: the averaged weights of {key!r} are not finite; the weights "
                       "are as they were before this round")
            return (message, None, key), time.perf_counter() - start
        store.trainable_values[...] = new
        return None, time.perf_counter() - start

    # ------------------------------------------------------------ transport
    def _sender(self, step):
        def send(partner: int, tag: str, array: np.ndarray, ok: bool) -> None:
            self._send(partner, f"{step}:{tag}", np.array(array), ok)  # a copy: the buffer changes
        return send

    def _receiver(self, step):
        return lambda tag: self._receive(f"{step}:{tag}")

    def _send(self, partner: int, tag: str, data: np.ndarray, ok: bool) -> None:
        local = RANKS.get((self.key, partner))
        if local is not None and local.loop is not None:
            local.deliver(tag, data, ok)
            return
        link = self._links.get(partner)
        if link is None:
            link = self._links[partner] = asyncio.Queue()
            task = asyncio.ensure_future(self._write(partner, link))
            self._writers.add(task)
            task.add_done_callback(self._writers.discard)
        link.put_nowait((tag, data, ok))

    async def _write(self, partner: int, queue: asyncio.Queue) -> None:
        """One connection to a peer for the whole fit: its messages in order,
        each written as it comes (no reply, no handler lookup per message)."""
        from distributed.comm import connect
        from distributed.protocol import to_serialize

        address, comm = self.peers[partner], None
        try:
            comm = await connect(address, **self.worker.connection_args)
            await comm.write({"op": "graphnet_stream", "key": self.key, "rank": partner, "reply": False})
            while True:
                tag, data, ok = await queue.get()
                await comm.write({"tag": tag, "data": to_serialize(data), "ok": ok})
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a peer that cannot be reached stops the step
            self._break(PeerLost(f"rank {partner} at {address} could not be reached ({type(exc).__name__}: {exc})"))
        finally:
            if comm is not None:
                comm.abort()  # the partner's reading end stops too

    def _break(self, exc: PeerLost) -> None:
        self.broken = exc
        for waiter in self.inbox.values():
            if not waiter.done():
                waiter.set_exception(exc)

    def deliver(self, tag: str, data: np.ndarray, ok: bool) -> None:
        """A message from another rank (any thread)."""
        self.loop.call_soon_threadsafe(self._put, tag, (data, ok))

    def _put(self, tag: str, value) -> None:
        waiter = self.inbox.get(tag)
        if waiter is None:
            waiter = self.inbox[tag] = self.loop.create_future()
        if not waiter.done():
            waiter.set_result(value)

    async def _receive(self, tag: str):
        if self.broken is not None:
            raise self.broken
        waiter = self.inbox.get(tag)
        if waiter is None:
            waiter = self.inbox[tag] = self.loop.create_future()
        try:
            return await waiter
        finally:
            self.inbox.pop(tag, None)

    # ----------------------------------------------------- between the steps
    def change(self, graph_blob, optimizer_blob, weights) -> None:
        """In the rank's thread: what a callback changed on the client (the
        graph and the optimizer pickled). In ``"average"`` mode a new optimizer
        brings its hyperparameters only: the rank keeps its own state."""
        trainer = self.trainer
        optimizer = None if optimizer_blob is None else pickle.loads(optimizer_blob)
        current, graph = trainer.optimizer, trainer.graph
        if optimizer is not None and self.mode == "average" and type(optimizer) is type(current):
            optimizer.set_state(current.get_state(), trainer.plan.dtype)
        optimizer = optimizer if optimizer is not None else current
        if graph_blob is not None or optimizer is not current:
            graph.optimizer = None  # releases it for the graph that takes it
            if graph_blob is not None:
                graph = pickle.loads(graph_blob)
            self.trainer = Trainer(graph, optimizer)
        if weights is not None:
            self.trainer.plan.store.trainable_values[...] = weights

    def tally(self, which: str, indices, chunk: int):
        parts = self.train if which == "train" else self.validation
        return _shards.tally_state(self.trainer.graph, parts, indices, self.chosen, chunk)

    async def probe(self, sizes: list[int], reps: int, rounds: int) -> list[list[float]]:
        """Seconds per all-reduce of each size (elements), all ranks at once:
        one to start together, then ``rounds`` runs of ``reps`` in a row, each
        run's mean (the ranks keep in step within a run, so each one's wait
        for the others averages out)."""
        out = []
        for size in sizes:
            buffer = np.zeros(size, dtype=self.trainer.plan.dtype)
            means = []
            for run in range(rounds + 1):
                start = time.perf_counter()
                for rep in range(reps if run else 1):
                    tag = f"probe{size}.{run}.{rep}"
                    await allreduce(buffer, schedule(self.index, self.size, size), self._sender(tag),
                                    self._receiver(tag))
                if run:
                    means.append((time.perf_counter() - start) / reps)
            out.append(means)
        return out

    def close(self) -> None:
        """Stop, forget the data and the graph (from any thread)."""
        RANKS.pop((self.key, self.index), None)
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._close_on_loop)
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.train, self.validation = [], []

    def _close_on_loop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
        for task in list(self._writers):
            task.cancel()
        self._stop({"stopped": "closed"})
        self._break(PeerLost("the rank was closed"))
