"""Data-parallel training on a dask.distributed cluster (:func:`fit`), and
many models trained at once (:func:`search`).

:func:`fit` opens one *rank* per group of the data's partitions, each on a
worker, that keeps its partitions, its copy of the graph and its compiled
plan from the first step to the last (:mod:`graphnet._rank`). The client and
the ranks talk through distributed's comms, not through the scheduler; a
step moves only flat buffers:

- synchronous (``sync_every=1``, the default): each rank computes the
  gradient of its share of the global batch; the ranks all-reduce the
  gradients times their rows among themselves (recursive halving and
  doubling, :mod:`graphnet._collective`); each divides by the batch's rows
  and applies the same checked update with its copy of the optimizer; one
  rank (each step the next) sends the sum to the client, whose graph makes the same update with the
  graph's optimizer. The weights equal single-process ``fit``'s within float
  tolerance: the batches are ``fit``'s (each epoch's permutation comes from
  the graph's random stream, as there) and only the order of the sum differs.
- local SGD (``sync_every=k``): each rank takes ``k`` steps on its shares of
  ``k`` global batches with an optimizer of its own (a copy of the graph's at
  the start, kept from round to round), then the ranks all-reduce their
  weights times the rows each trained on and divide. A round moves the bytes
  of one synchronous step. The graph's own optimizer state is left as it was.

The epoch loop is :meth:`Trainer.run`, so callbacks, History, the progress
bar and checkpoints behave as in ``fit``. Each epoch's row indices go to the
ranks when it begins; without callbacks that act between batches the ranks
run a few steps ahead of the client (:mod:`graphnet._steps`).

Faults: a worker lost in a synchronous fit is survived (:mod:`graphnet._cluster`);
past ``retries``, after ``timeout`` seconds without an answer, or when local
SGD loses a rank's own optimizer state, :class:`~graphnet.TrainingError`
names the last checkpoint. dask is imported when :func:`fit` runs;
``import graphnet`` never imports it.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import numpy as np

from . import metrics as metrics_module
from ._cluster import Cluster, client_or_default
from ._costs import TEN_GBE, Traffic
from ._dask import is_dask_array
from ._data import as_targets, holdout_split
from ._progress import Progress
from ._text import described, shown
from ._search import SearchResult, TrialResult, search
from ._steps import Steps
from ._validation import check_int, check_number
from .callbacks import History, ask_callbacks, release, wants
from .errors import GraphError
from .inference import DEFAULT_CHUNK, Tally
from .network import Network
from .trainer import Trainer, choose_optimizer
from .training import check_fit_arguments, fit_arguments

if TYPE_CHECKING:
    from .graph import Graph

__all__ = ["TEN_GBE", "SearchResult", "Traffic", "TrialResult", "fit", "search"]

logger = logging.getLogger(__name__)


def fit(graph: Graph, x, y, client=None, *, sync_every: int = 1, timeout: float = 300.0, retries: int = 2,
        **fit_args) -> History:
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
    sync_every : int
        ``1``: synchronous SGD (the weights equal single-process ``fit``'s
        within float tolerance). ``k > 1``: local SGD, weights averaged every
        ``k`` batches; a progress step (and ``on_batch_end``) is then a round
        of ``k`` batches.
    timeout : float
        Seconds to wait for one step's answer before giving up.
    retries : int
        How many times a step that lost a worker is sent again.
    **fit_args
        :func:`graphnet.training.fit`'s keywords, with its defaults (its
        signature is the one place they are written): ``epochs``,
        ``batch_size`` (the global batch, split over the workers),
        ``optimizer``, ``metrics``, ``validation_data``,
        ``validation_split``, ``shuffle``, ``callbacks``, ``verbose``.
        ``sample_weight``, ``class_weight``, batches from a generator,
        ``steps_per_epoch``, ``validation_steps``, ``validation_batch_size``,
        ``initial_epoch`` other than 0 and ``validation_freq`` other than 1 are
        not supported yet: they are refused by name.

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
    if not isinstance(graph, Network):
        raise GraphError(f"distributed.fit: graph must be a graphnet Graph, got {type(graph).__name__}")
    if getattr(graph, "device", "cpu") != "cpu":
        raise GraphError(f"distributed.fit: graph {graph.name!r} is on device {graph.device!r}; the workers "
                         "train on their CPUs: move it with graph.to('cpu') first")
    args = fit_arguments("distributed.fit", fit_args)
    given = [name for name in ("sample_weight", "class_weight", "steps_per_epoch", "validation_steps",
                               "validation_batch_size") if args[name] is not None] + (
        ["initial_epoch"] if args["initial_epoch"] != 0 else []) + (
        ["validation_freq"] if args["validation_freq"] != 1 else [])
    if given:
        raise GraphError(f"distributed.fit: {given[0]} is not supported yet (got {shown(args[given[0]])}); "
                         f"train with graph.fit, or without {given[0]}")
    optimizer, metrics, validation_data, shuffle, verbose = (
        args["optimizer"], args["metrics"], args["validation_data"], args["shuffle"], args["verbose"])
    epochs, batch_size, validation_split, callbacks = check_fit_arguments(
        "distributed.fit", args["epochs"], args["batch_size"], verbose, shuffle, args["validation_split"],
        validation_data, args["callbacks"])
    sync_every = check_int(sync_every, "distributed.fit: sync_every")
    retries = check_int(retries, "distributed.fit: retries", low=0)
    timeout = check_number(timeout, "distributed.fit: timeout", 0.0, math.inf, low_open=True, high_open=True,
                           expected="a positive number of seconds")
    if validation_data is not None and (
        not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2
    ):
        raise GraphError("distributed.fit: validation_data must be a tuple (x_val, y_val) "
                         f"(validation sample weights are not supported yet); got {described(validation_data)}")
    transforming = [n for n in graph.inputs if graph.nodes[n].transforms]
    if transforming:
        raise GraphError(f"distributed.fit: inputs {transforming} transform their data (categories, normalize, "
                         "missing), which distributed.fit does not do yet: train this graph with its own fit, "
                         "or give it plain numeric inputs")
    client = client_or_default(client)
    chosen = metrics_module.resolve(graph, graph.default_metrics if metrics is None else metrics, "distributed.fit")
    metrics_module.check_log_keys(graph, chosen, "distributed.fit")
    targets = [(y, "distributed.fit"), (validation_data and validation_data[1], "distributed.fit: validation_data")]
    for data, where in targets if chosen else ():  # numpy targets: checked here, before any work
        if data is not None and not any(map(is_dask_array, data.values() if isinstance(data, dict) else [data])):
            metrics_module.check_targets(graph, chosen, as_targets(graph, data), where)
    keys = metrics_module.log_keys(graph, chosen)
    if validation_split or validation_data is not None:
        keys += [f"val_{k}" for k in keys]
    traffic = Traffic()
    traffic.sync_every = sync_every
    # The steps, rows and workers are known once the cluster holds the data:
    # the callbacks' params get them then, before training (each callback is asked once).
    params = {"epochs": epochs, "steps": None, "batch_size": batch_size, "metrics": keys, "sync_every": sync_every,
              "rows": None, "workers": None, "traffic": traffic}
    try:
        optimizer = choose_optimizer(graph, optimizer)
        ask_callbacks(graph, callbacks, params, optimizer)
        trainer = _ClusterTrainer(graph, optimizer)
        cluster = Cluster(client, graph, chosen, float(timeout), retries, callbacks, traffic,
                          "sum" if sync_every == 1 else "average")
    except BaseException:  # a refusal, no workers, Ctrl-C: the callbacks let go of what they hold
        release(callbacks)
        raise
    steps = trainer.steps = Steps(cluster, sync_every, _between_batches(callbacks),
                                  graph.rng.bit_generator.seed_seq.spawn(1)[0])
    running = False  # once training runs, Trainer.run releases the callbacks itself
    try:
        train = cluster.load(x, y)
        ids = np.arange(train.rows)
        held = None
        if validation_split:
            ids, held = holdout_split(graph.rng, train.rows, validation_split)
        validation = None
        if validation_data is not None:
            validation = cluster.load(*validation_data, "validation_data", ranks=len(train.groups))
        cluster.open(trainer, train, validation)
        n = len(ids)
        size = min(batch_size, n)
        count = math.ceil(n / size)

        def epoch_batches(epoch: int):
            order = ids[graph.rng.permutation(n)] if shuffle else ids
            planned = steps.plan(epoch, epochs, [order[lo : lo + size] for lo in range(0, n, size)])
            return ((step, None, step.rows) for step in planned)

        def validate() -> dict[str, float]:
            which = "train" if validation is None else "validation"
            logs = steps.evaluate(trainer, which, held, max(DEFAULT_CHUNK, batch_size))
            return {f"val_{k}": v for k, v in logs.items()}

        rounds = math.ceil(count / sync_every)
        params.update(steps=rounds, rows=n, workers=len(cluster.addresses))
        running = True
        return trainer.run(
            epochs,
            epoch_batches,
            rounds,
            metrics=chosen,
            validate=validate if validation_split or validation is not None else None,
            callbacks=callbacks,
            progress=Progress(verbose, epochs, rounds),
            params=params,
        )
    except BaseException:
        if not running:
            release(callbacks)
        raise
    finally:
        cluster.close()


def _between_batches(callbacks) -> bool:
    """Whether a callback acts between batches (then each step waits for it)."""
    return any(wants(cb, hook) for cb in callbacks for hook in ("on_batch_begin", "on_batch_end"))


class _ClusterTrainer(Trainer):
    """A :class:`Trainer` whose step is run by the ranks and mirrored here
    (:mod:`graphnet._steps`). ``Trainer.run`` drives it with
    :class:`graphnet._steps.Step` items in place of arrays."""

    steps: Steps

    def step(self, inputs, targets, rows: int, where=None, tally: Tally | None = None,
             weights=None) -> float:
        with self.graph.lock.writing():
            self.catch_up()  # an edit, another optimizer: the ranks hear of it before the step (Steps.run)
            return self.steps.run(self, inputs, where, tally)


