"""A distributed fit's steps on the client: planned an epoch at a time, asked
for, and mirrored into the client's graph.

Each epoch's batches are ``fit``'s (the permutation comes from the graph's
random stream, as there); each becomes a step (``sync_every=1``), or ``k`` of
them a round of local SGD. Every rank gets its share of each step's rows as
indices into its own partitions when the epoch begins, so it gathers the
next step's rows while the current step's buffers travel.

For each step the client asks every rank for its result. One rank's (in
turn, step by step) carries the all-reduced sum (gradients times rows, or
weights times rows), from which the client's graph makes the update every
rank made: the same arithmetic on the same numbers, so the same weights,
which each epoch's last step checks (a digest of that rank's weights
against the client's; a mismatch, from a BLAS
that rounds differently, sends the client's state to the ranks). Without
callbacks that act between batches the ranks run up to :data:`AHEAD` steps
before the client asks; with them each step waits for the client, which
first sends what the callbacks changed.
"""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING

import numpy as np

from . import _rank
from ._cluster import Lost
from .errors import TrainingError
from .inference import Tally, merge_states

if TYPE_CHECKING:
    from ._cluster import Cluster
    from .trainer import Trainer

logger = logging.getLogger(__name__)

#: Steps a rank may run before the client has asked for the first of them.
AHEAD = 4


class Step:
    """One step on the client: its number in the fit, the global batches it
    covers, its rows, and each rank's :class:`graphnet._rank.Spec`."""

    def __init__(self, number: int, batches: int, rows: int, specs: list):
        self.number, self.batches, self.rows, self.specs = number, batches, rows, specs


class Steps:
    """Plans, runs and mirrors the steps of one fit on ``cluster``."""

    def __init__(self, cluster: Cluster, sync_every: int, lockstep: bool, seed: np.random.SeedSequence):
        self.cluster, self.sync_every, self.lockstep = cluster, sync_every, lockstep
        # Dropout seeds from a child of the graph's training stream: the stream
        # itself (the epochs' permutations) stays as ``fit`` uses it.
        self._entropy, self._spawn_key = seed.entropy, tuple(seed.spawn_key)
        self._next = 0
        self._last: float | None = None

    def _seed(self, epoch: int, batch: int, rank: int) -> np.random.SeedSequence:
        return np.random.SeedSequence(self._entropy, spawn_key=(*self._spawn_key, epoch, batch, rank))

    def plan(self, epoch: int, epochs: int, batches: list[np.ndarray]) -> list[Step]:
        """The epoch's steps from its batches (arrays of row ids)."""
        cluster, k = self.cluster, self.sync_every
        shares = [cluster.train.split(ids) for ids in batches]
        count, ranks = len(batches), len(cluster.train.groups)
        rounds = math.ceil(count / k)
        steps = []
        for r, lo in enumerate(range(0, count, k)):
            members = range(lo, min(lo + k, count))
            where = (epoch, epochs, lo, count) if k == 1 else (epoch, epochs, r, rounds, "round")
            rows = sum(len(batches[b]) for b in members)
            specs = [_rank.Spec(self._next, where, rows,
                                tuple(_rank.Sub(shares[b][i], self._seed(epoch, b, i), (epoch, epochs, b, count))
                                      for b in members),
                                check=r == rounds - 1)
                     for i in range(ranks)]
            steps.append(Step(self._next, len(members), rows, specs))
            self._next += 1
        cluster.epoch_steps, cluster.planned = steps, False
        self._last = None
        return steps

    # ------------------------------------------------------------------ steps
    def run(self, trainer: Trainer, step: Step, where, tally: Tally) -> float:
        """Step ``step`` on the ranks and on the client's graph; returns its loss."""
        cluster = self.cluster
        place = where if self.sync_every == 1 else (*where, "round")
        first = step is cluster.epoch_steps[0]
        if first or self.lockstep:
            cluster.reliably(place, cluster.sync)
        if first:
            cluster.resume_from = step.number
            cluster.reliably(place, lambda: cluster.send_plan(cluster.epoch_steps))
            cluster.planned = True
        last = cluster.epoch_steps[-1].number
        allow = step.number if self.lockstep else min(step.number + AHEAD, last)
        answers = cluster.reliably(place, lambda: self._results(step, allow))
        began = time.perf_counter()
        _raise_failure(answers, place)
        rows = sum(a["rows"] for a in answers)
        sender = answers[step.number % len(answers)]  # the ranks take turns to send the sum
        total = sender["vector"]
        store = trainer.plan.store
        _check(place, rows, step.rows, total, store.trainable_values.size)
        if self.sync_every == 1:
            np.divide(total, rows, out=store.trainable_grads)
            trainer.update(where)
        else:
            with np.errstate(over="ignore", invalid="ignore"):
                new = total / rows
            if not np.isfinite(new).all():  # the ranks refuse it first; a guard for the client's graph
                raise _error(place, f"{_rank.place(place)}: the averaged weights are not finite; the "
                                    "weights are as they were before this round", None, None)
            store.trainable_values[...] = new
        cluster.applied()
        cluster.resume_from = step.number + 1
        if "digest" in sender and sender["digest"] != _rank.digest(store.trainable_values):
            logger.info("%s: the ranks' weights differ from the client's after %s; the client's are sent",
                        trainer.graph.name, _rank.place(place))
            cluster.diverged = True
        states = [_merged([a["tallies"][i] for a in answers]) for i in range(len(step.specs[0].subs))]
        for state in states:
            tally.merge(state)
        self._count(step, answers, total, began)
        tally_loss = Tally(trainer.graph, cluster.chosen)
        for state in states:
            tally_loss.merge(state)
        return tally_loss.loss()

    def _results(self, step: Step, allow: int) -> list[dict]:
        """Every rank's result of ``step``: asked of the ranks that have not
        already sent it (each answers with all the steps it has done)."""
        cache = self.cluster.results
        missing = {i: {"step": step.number, "allow": allow} for i, done in enumerate(cache) if step.number not in done}
        if missing:
            for i, answer in zip(missing, self.cluster.call("graphnet_result", missing)):
                for offset, result in enumerate(answer["results"]):
                    cache[i][step.number + offset] = result
        answers = [done.pop(step.number) for done in cache]
        if not any(a["failure"] for a in answers) and not all(a["ok"] for a in answers):
            raise Lost(f"step {step.number}: a rank's all-reduce did not finish")
        return answers

    def _count(self, step: Step, answers: list[dict], total: np.ndarray, began: float) -> None:
        traffic, now = self.cluster.traffic, time.perf_counter()
        traffic.steps += step.batches
        exchanged = self.cluster.exchanged()
        traffic.received += total.nbytes
        traffic.exchanged += exchanged
        traffic.parameter_bytes += total.nbytes + exchanged
        samples = traffic.samples
        for name in ("compute", "update", "reduce"):
            samples[name].append(sum(a[f"{name}_s"] for a in answers) / len(answers))
        samples["client"].append(now - began)
        if self._last is not None:
            samples["step"].append(now - self._last)
        self._last = now

    # ------------------------------------------------------------- validation
    def evaluate(self, trainer: Trainer, which: str, ids: np.ndarray | None, chunk: int) -> dict[str, float]:
        """``evaluate``'s logs on the training rows ``ids`` (``which="train"``)
        or on the validation data, each rank tallying its own partitions."""
        cluster = self.cluster
        data = cluster.train if which == "train" else cluster.validation

        def attempt():
            from distributed.protocol import to_serialize

            cluster.sync()  # a callback after the last batch may have changed the weights
            shares = None if ids is None else data.split(ids)
            if shares is not None:
                cluster.traffic.validation += sum(i.nbytes for share in shares for i in share)
            return cluster.call("graphnet_evaluate", [
                {"which": which, "indices": None if shares is None else to_serialize(shares[i]), "chunk": chunk}
                for i in range(len(cluster.addresses))])

        answers = cluster.reliably("validation", attempt)
        tally = Tally(trainer.graph, cluster.chosen)
        for answer in answers:
            if answer["state"] is not None:
                tally.merge(answer["state"])
        logs = tally.logs()
        if trainer.plan.penalties:  # as evaluate reports it
            logs["loss"] += trainer.plan.regularization()
        return logs


def _merged(states: list) -> tuple:
    total = states[0]
    for state in states[1:]:
        total = merge_states(total, state)
    return total


def _error(where, message: str, output, key) -> TrainingError:
    error = TrainingError(message)
    error.epoch, error.batch, error.output, error.key = where[0], where[2], output, key
    return error


def _raise_failure(answers: list[dict], where) -> None:
    """A share's TrainingError (a non-finite loss, or an update the ranks refused), first rank first."""
    for answer in answers:
        if answer["failure"] is not None:
            raise _error(where, *answer["failure"])


def _check(where, rows: int, expected: int, result, size: int) -> None:
    """Refuse an answer that misses rows or parameters."""
    if rows != expected or result is None or result.shape != (size,):
        shape = None if result is None else result.shape
        raise _error(where, f"{_rank.place(where)}: the workers answered for {rows} of the step's {expected} "
                            f"rows with a result of shape {shape} for {size} parameters; the step was not "
                            "applied", None, None)
