"""What a distributed fit moved and how long its parts took (:class:`Traffic`),
and the cost model those measurements predict other cluster sizes with.

Measured on the run: each step's compute on a rank (forward and backward on
its share, local SGD's own updates included), the update every rank applies,
the all-reduce, the client's own work per step, and, once at the start of a
fit on two or more workers, the latency of one message and the bandwidth of
distributed's comms between the workers (runs of all-reduces of one element
and of the parameters; the median run).

The model, for ``N`` ranks that each keep the share of a batch they had in
the run (weak scaling) and ``sync_every=k``::

    t_allreduce(N) = hops(N) * alpha + f(N) * S * (1/B_comms + 1/B_network)
    t_batch(N, k)  = max(t_work + t_allreduce(N) / k, (t_client + S/B_network) / k)
    efficiency     = t_work / t_batch(N, k)

with ``S`` the parameters' bytes, ``hops`` and ``f`` those of the all-reduce
(:mod:`graphnet._collective`: ``2 log2 N`` messages carrying ``2 (N-1)/N`` of
``S`` for a power of two), ``t_work`` the compute and update of one batch on
one rank, and ``t_client`` the client's work per step (the second term is the
client falling behind). The comms' own time per byte and the wire's are
added, not overlapped: the model errs on the slow side.
"""

from __future__ import annotations

import statistics

from ._collective import hops, sent_fraction
from .errors import GraphError

__all__ = ["TEN_GBE", "Traffic"]

#: 10 Gb Ethernet, in bytes per second.
TEN_GBE = 10e9 / 8


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


class Traffic:
    """Bytes and seconds of one :func:`graphnet.distributed.fit`, in
    ``history.params["traffic"]``.

    Bytes count the arrays that travel (row indices, gradients, weights, the
    graph and optimizer a callback changed), not the few numbers each step's
    bookkeeping carries: ``sent`` from the client to the ranks, ``received``
    back (the sum, from one rank in turn, each step or round), ``exchanged`` among the ranks
    (the all-reduces, every rank's messages added up), and of these
    ``parameter_bytes``, the parameter-sized part. ``steps`` counts global
    batches; validation is counted apart (``validation``), and what is sent
    once (the data, the ranks' first graph and optimizer) is not counted.

    Seconds (medians over the fit's steps): ``compute_s``, one rank's
    forward and backward (and local SGD's own updates) per step; ``update_s``,
    its update from the sum; ``reduce_s``, the all-reduce; ``client_s``, the
    client's work on a step's result; ``step_s``, the wall time from one step
    to the next. ``latency_s`` and ``bandwidth`` (bytes/s) are the comms'
    between the workers, measured at the start (None on one worker).
    """

    def __init__(self):
        self.steps = 0
        self.sent = 0
        self.received = 0
        self.exchanged = 0
        self.parameter_bytes = 0
        self.validation = 0
        self.workers = 0
        self.sync_every = 1
        self.parameter_size = 0
        self.latency_s: float | None = None
        self.bandwidth: float | None = None
        self.samples: dict[str, list[float]] = {k: [] for k in ("compute", "update", "reduce", "client", "step")}

    @property
    def bytes_per_step(self) -> float:
        return (self.sent + self.received + self.exchanged) / self.steps if self.steps else 0.0

    @property
    def parameter_bytes_per_step(self) -> float:
        return self.parameter_bytes / self.steps if self.steps else 0.0

    @property
    def compute_s(self) -> float | None:
        return _median(self.samples["compute"])

    @property
    def update_s(self) -> float | None:
        return _median(self.samples["update"])

    @property
    def reduce_s(self) -> float | None:
        return _median(self.samples["reduce"])

    @property
    def client_s(self) -> float | None:
        return _median(self.samples["client"])

    @property
    def step_s(self) -> float | None:
        return _median(self.samples["step"])

    def predict(self, workers: int, sync_every: int | None = None, bandwidth: float = TEN_GBE,
                work_s: float | None = None) -> dict:
        """The model's seconds per batch and weak-scaling efficiency on
        ``workers`` ranks (see the module docs).

        Parameters
        ----------
        workers : int
            The ranks ``N`` of the cluster predicted.
        sync_every : int, optional
            The steps between all-reduces ``k``; the run's by default.
        bandwidth : float, default TEN_GBE
            The network's bytes per second (10 Gb Ethernet by default).
        work_s : float, optional
            Seconds of compute and update per batch on one rank, in place of
            the run's (one measured elsewhere: on a quieter machine, a bigger share).

        Returns
        -------
        dict
            ``workers``, ``sync_every``, ``work_s``, ``allreduce_s``,
            ``batch_s`` and ``efficiency``.

        Raises
        ------
        GraphError
            When the run had one worker (no latency or bandwidth was measured)
            or no steps.
        """
        if self.latency_s is None or self.bandwidth is None or self.compute_s is None:
            raise GraphError("Traffic.predict: this fit measured no latency and bandwidth between workers "
                             "(it ran on one worker, or took no step); measure with two or more")
        k = self.sync_every if sync_every is None else sync_every
        work = (self.compute_s + self.update_s) / self.sync_every if work_s is None else work_s
        allreduce = (hops(workers) * self.latency_s
                     + sent_fraction(workers) * self.parameter_size * (1 / self.bandwidth + 1 / bandwidth))
        client = (self.client_s + self.parameter_size / bandwidth) / k
        batch = max(work + allreduce / k, client)
        return {"workers": workers, "sync_every": k, "work_s": work, "allreduce_s": allreduce,
                "batch_s": batch, "efficiency": work / batch}

    def table(self, workers=(8, 64), sync_every=(1, 2, 4, 8), bandwidth: float = TEN_GBE,
              work_s: float | None = None) -> list[dict]:
        """:meth:`predict` for each number of workers and each ``sync_every``.

        Parameters
        ----------
        workers : sequence of int, default (8, 64)
            The cluster sizes predicted.
        sync_every : sequence of int, default (1, 2, 4, 8)
            The steps between all-reduces predicted, for each cluster size.
        bandwidth : float, default TEN_GBE
            The network's bytes per second, as for :meth:`predict`.
        work_s : float, optional
            As for :meth:`predict`.

        Returns
        -------
        list of dict
            One :meth:`predict` answer per pair, workers first.
        """
        return [self.predict(n, k, bandwidth, work_s) for n in workers for k in sync_every]

    def __repr__(self) -> str:
        return (f"Traffic(steps={self.steps}, workers={self.workers}, sent={self.sent}, received={self.received}, "
                f"exchanged={self.exchanged}, bytes_per_step={self.bytes_per_step:.0f})")
