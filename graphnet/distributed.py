"""Data-parallel training on a dask.distributed cluster: :func:`fit`.

Synchronous (``sync_every=1``, the default), one global batch at a time: the
client sends the current trainable weights to the workers; each *group* (a
contiguous run of the data's partitions, placed on one worker at the start)
computes the gradient of its share of the batch, a pure function of the weights and the share
(:mod:`graphnet._shards`); the shares' gradients, each times its rows, are
added up in a tree of fixed shape and divided by the batch's rows, which is
the gradient of the batch mean; the client makes one checked update with the
graph's optimizer (:meth:`Trainer.update`). The epoch loop is
:meth:`Trainer.run`, so callbacks, History, the progress bar and checkpoints
behave as in ``fit``, and the batches are those ``fit`` would draw: the
permutation of each epoch comes from the graph's random stream, as there.

Local SGD (``sync_every=k``): each group takes ``k`` steps on its shares of
``k`` global batches with an optimizer of its own (a copy of the graph's at
the start, kept on its worker from round to round), then the weights are
averaged, weighted by the rows each group trained on. A round moves the bytes
of one synchronous step, so traffic per batch falls ``k``-fold. The graph's
own optimizer state is left as it was.

Faults: every step is a pure function of what the client holds, so a step
that lost a worker is sent again (the partitions come back from their
lineage, the graph and weights are sent anew) and gives the weights of an
undisturbed run. Past ``retries`` attempts, after ``timeout`` seconds
without an answer, or when local SGD loses a group's optimizer state,
:class:`~graphnet.TrainingError` names the last checkpoint and the weights
are those from before the step. dask is imported when :func:`fit` runs;
``import graphnet`` never imports it.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import numpy as np

from . import metrics as metrics_module
from ._cluster import Traffic, _Batch, _Cluster, _Round, client_or_default
from .callbacks import History
from ._validation import check_int, check_number
from ._data import holdout_split
from .errors import GraphError
from .inference import DEFAULT_CHUNK, Tally
from ._progress import Progress
from .trainer import Trainer
from .training import check_fit_arguments

if TYPE_CHECKING:
    from .graph import Graph

__all__ = ["fit", "Traffic"]

logger = logging.getLogger(__name__)


def fit(
    graph: Graph,
    x,
    y,
    client=None,
    *,
    epochs: int = 1,
    batch_size: int = 32,
    optimizer=None,
    metrics=None,
    validation_data=None,
    validation_split: float = 0.0,
    shuffle: bool = True,
    callbacks=(),
    verbose: int = 1,
    sample_weight=None,
    class_weight=None,
    sync_every: int = 1,
    timeout: float = 300.0,
    retries: int = 2,
) -> History:
    """Train ``graph`` in place on a dask.distributed cluster; returns its History.

    Parameters
    ----------
    graph : Graph
    x, y : dask array, ndarray, or dict name -> either
        As for ``fit``. The row blocks of dask arrays become the partitions,
        spread once over the workers in contiguous groups (computed there, so
        data read from storage stays where it is read); numpy arrays are
        split into one partition per worker.
    client : distributed.Client, optional
        ``None`` uses the current default client.
    epochs, batch_size, optimizer, metrics, validation_data, validation_split, shuffle, callbacks, verbose
        As for :func:`graphnet.training.fit`; ``batch_size`` is the global
        batch, split over the workers.
    sample_weight, class_weight
        Not supported yet: anything but None is refused.
    sync_every : int
        ``1``: synchronous SGD (the weights equal single-process ``fit``'s
        within float tolerance). ``k > 1``: local SGD, weights averaged every
        ``k`` batches; a progress step (and ``on_batch_end``) is then a round
        of ``k`` batches.
    timeout : float
        Seconds to wait for one step's answer before giving up.
    retries : int
        How many times a step that lost a worker is sent again.

    Returns
    -------
    History
        ``history.params["traffic"]`` is the :class:`Traffic` of the fit.

    Raises
    ------
    GraphError
        For a bad argument, no client, or a cluster without workers.
    ShapeError
        For data that does not fit the graph (checked on the workers before training).
    TrainingError
        For a non-finite loss, gradient or update (as in ``fit``), or a
        cluster that failed; the message names the last checkpoint, and the
        weights are those from before the failing step.
    """
    if getattr(graph, "device", "cpu") != "cpu":
        raise GraphError(f"distributed.fit: graph {graph.name!r} is on device {graph.device!r}; the workers "
                         "train on their CPUs: move it with graph.to('cpu') first")
    epochs, batch_size, validation_split, callbacks = check_fit_arguments(
        "distributed.fit", epochs, batch_size, verbose, shuffle, validation_split, validation_data, callbacks)
    sync_every = check_int(sync_every, "distributed.fit: sync_every")
    retries = check_int(retries, "distributed.fit: retries", low=0)
    timeout = check_number(timeout, "distributed.fit: timeout", 0.0, math.inf, low_open=True, high_open=True,
                           expected="a positive number of seconds")
    if validation_data is not None and (
        not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2
    ):
        raise GraphError("distributed.fit: validation_data must be a tuple (x_val, y_val) "
                         "(validation sample weights are not supported yet)")
    for name, value in (("sample_weight", sample_weight), ("class_weight", class_weight)):
        if value is not None:
            raise GraphError(f"distributed.fit: {name} is not supported yet (got {type(value).__name__}); "
                             "train with graph.fit, or without row weights")
    client = client_or_default(client)
    chosen = metrics_module.resolve(graph, graph.default_metrics if metrics is None else metrics)
    keys = metrics_module.log_keys(graph, chosen)
    if validation_split or validation_data is not None:
        keys += [f"val_{k}" for k in keys]
    params = {"batch_size": batch_size, "metrics": keys, "sync_every": sync_every}
    for cb in callbacks:  # their own checks (monitored names, ...) before anything changes
        cb.set_params({"epochs": epochs, **params})
    trainer = _ClusterTrainer(graph, optimizer)
    traffic = Traffic()
    cluster = trainer.cluster = _Cluster(client, graph, chosen, float(timeout), retries, callbacks, traffic)
    try:
        train = cluster.load(x, y)
        ids = np.arange(train.rows)
        validation = None
        if validation_split:
            ids, held = holdout_split(graph.rng, train.rows, validation_split)
            validation = (train, held)
        elif validation_data is not None:
            validation = (cluster.load(*validation_data, "validation_data"), None)
        n = len(ids)
        size = min(batch_size, n)
        count = math.ceil(n / size)
        steps = count if sync_every == 1 else math.ceil(count / sync_every)
        if sync_every > 1:
            cluster.start_local_sgd(train)

        def epoch_batches(epoch: int):
            order = ids[graph.rng.permutation(n)] if shuffle else ids
            batches = [_Batch(train, epoch, b, count, order[lo : lo + size])
                       for b, lo in enumerate(range(0, n, size))]
            if sync_every == 1:
                return ((batch, None, len(batch.ids)) for batch in batches)
            rounds = (_Round(batches[i : i + sync_every]) for i in range(0, count, sync_every))
            return ((r, None, r.rows) for r in rounds)

        def validate() -> dict[str, float]:
            logs = cluster.evaluate(*validation, max(DEFAULT_CHUNK, batch_size))
            return {f"val_{k}": v for k, v in logs.items()}

        return trainer.run(
            epochs,
            epoch_batches,
            steps,
            metrics=chosen,
            validate=validate if validation is not None else None,
            callbacks=callbacks,
            progress=Progress(verbose, epochs, steps),
            params={**params, "rows": n, "workers": len(cluster.workers), "traffic": traffic},
        )
    finally:
        cluster.close()


class _ClusterTrainer(Trainer):
    """A :class:`Trainer` whose step gets the batch's gradient (or, for local
    SGD, the averaged weights) from the cluster. ``Trainer.run`` drives it
    with :class:`_Batch` or :class:`_Round` items in place of arrays."""

    cluster: _Cluster

    def step(self, inputs, targets, rows: int, where=None, tally: Tally | None = None,
             weights=None) -> float:
        work = inputs
        with self.graph.lock.writing():
            if self.plan.version != self.graph.version:  # a callback edited the graph
                self._follow()
                self.cluster.resend_graph(where)
            if isinstance(work, _Round):
                return self.cluster.local_round(self, work, where, tally)
            return self.cluster.synchronous_step(self, work, where, tally)


