"""Many models at once: :func:`search` trains one graph per trial of an
Optuna study across a dask cluster, one trial per worker thread at a time.

The study stays on the client and is driven through Optuna's ask-and-tell
interface: ``build(trial)`` runs there (so ``trial.suggest_*`` works as in
any Optuna objective), the graph it returns is trained by ``Graph.fit`` on a
worker, and the objective's value is told back. The data go to each worker
once (published, fetched and kept by name, as :mod:`graphnet._rank` keeps
partitions). A trial that raises, anywhere, is told as failed with its error
and never stops the others.

Same seeds, same results: trial ``i`` is asked only once every trial up to
and including ``i - window`` has been told, and trials are told in the order they were
asked, so the sampler sees the same history at every ask whichever worker
finishes first (``window`` is twice the worker threads, so none waits for work).
With a seeded sampler and graphs built with seeds, a search repeats exactly
on the same number of workers.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping

from ._cluster import client_or_default
from ._text import shown
from ._validation import check_int, check_number
from .callbacks._base import larger_is_better
from .errors import GraphError
from .graph import Graph

__all__ = ["FIT_ARGUMENTS", "SearchResult", "TrialResult", "search"]

logger = logging.getLogger(__name__)

#: What ``search`` passes on to each trial's ``Graph.fit``.
FIT_ARGUMENTS = ("epochs", "batch_size", "optimizer", "metrics", "validation_data", "validation_split",
                 "shuffle", "callbacks", "sample_weight", "class_weight")

#: This worker's search data by name, newest last.
_DATA: OrderedDict = OrderedDict()
_KEEP = 2


class TrialResult:
    """One trial of :func:`search`; each parameter is kept as the attribute of its name.

    Parameters
    ----------
    number : int
        The trial's number, Optuna's.
    params : dict
        What the trial suggested, by name.
    state : {"complete", "failed"}
        How the trial ended.
    value : float, optional
        The objective; None when the trial failed.
    error : str, optional
        ``"Type: message"`` when the trial failed, else None.
    history : dict, optional
        The fit's ``History.history`` (empty by default).
    seconds : float, default 0.0
        The time training took, on the worker.
    worker : str, optional
        The address of the worker that ran the trial.
    """

    def __init__(self, number: int, params: dict, state: str, value: float | None = None,
                 error: str | None = None, history: dict | None = None, seconds: float = 0.0,
                 worker: str | None = None):
        self.number, self.params, self.state, self.value = number, params, state, value
        self.error, self.history, self.seconds, self.worker = error, history or {}, seconds, worker

    def __repr__(self) -> str:
        outcome = f"value={self.value:.6g}" if self.state == "complete" else f"error={self.error!r}"
        return f"TrialResult(number={self.number}, {outcome}, params={self.params})"


class SearchResult:
    """What :func:`search` returns; ``best_value`` and ``best_params`` are
    the best trial's, ``failed`` the trials that failed.

    Parameters
    ----------
    study : optuna.Study
        Optuna's study, with every trial told; kept as :attr:`study`.
    trials : list of TrialResult
        Every trial, in the order they were asked; kept as :attr:`trials`.
    best : TrialResult or None
        The best complete trial, kept as :attr:`best_trial`; None when every trial failed.
    best_graph : Graph or None
        That trial's trained graph, kept as :attr:`best_graph`; None when every trial failed.
    """

    def __init__(self, study, trials: list[TrialResult], best: TrialResult | None, best_graph: Graph | None):
        self.study, self.trials, self.best_trial, self.best_graph = study, trials, best, best_graph

    @property
    def best_value(self) -> float | None:
        return None if self.best_trial is None else self.best_trial.value

    @property
    def best_params(self) -> dict | None:
        return None if self.best_trial is None else self.best_trial.params

    @property
    def failed(self) -> list[TrialResult]:
        return [t for t in self.trials if t.state == "failed"]

    def __repr__(self) -> str:
        return (f"SearchResult(trials={len(self.trials)}, failed={len(self.failed)}, "
                f"best_value={self.best_value}, best_params={self.best_params})")


def _optuna():
    try:
        import optuna
    except ImportError:
        raise GraphError("gn.distributed.search needs Optuna: pip install 'graphnet[search]'") from None
    return optuna


def _fit_arguments(args: Mapping, where: str) -> dict:
    unknown = sorted(set(args) - set(FIT_ARGUMENTS))
    if unknown:
        raise GraphError(f"{where}: unknown fit arguments {unknown}; a trial's fit takes {list(FIT_ARGUMENTS)} "
                         "(it trains silently: no verbose)")
    return dict(args)


def _direction(study, direction, objective) -> str:
    if study is not None:
        if len(study.directions) != 1:
            raise GraphError(f"gn.distributed.search: the study has {len(study.directions)} objectives; "
                             "search optimizes one")
        found = study.direction.name.lower()
        if direction is not None and direction != found:
            raise GraphError(f"gn.distributed.search: direction={direction!r} but the study's is {found!r}")
        return found
    if direction is None:
        return "maximize" if isinstance(objective, str) and larger_is_better(objective) else "minimize"
    if direction not in ("minimize", "maximize"):
        raise GraphError(f"gn.distributed.search: direction must be 'minimize' or 'maximize', got {direction!r}")
    return direction


def search(build: Callable, x, y, *, objective: str | Callable | None = None, study=None, n_trials: int = 16,
           direction: str | None = None, seed: int | None = 0, client=None, timeout: float | None = None,
           **fit_args) -> SearchResult:
    """Train a graph per trial of an Optuna study across the cluster; returns
    the results and the best trained graph.

    Parameters
    ----------
    build : callable
        ``build(trial)`` with an ``optuna.Trial``, run on the client: returns a
        :class:`Graph`, a spec (a dict as ``Graph.from_dict`` takes), or a pair
        ``(graph or spec, dict)`` whose dict holds this trial's fit arguments
        (``batch_size``, ``optimizer``, ...; they override ``fit_args``).
    x, y : ndarray or dict name -> ndarray
        The training data, as for ``fit``; sent to each worker once.
    objective : str or callable, optional
        A key of the fit's logs whose last epoch's value is the trial's
        (``"val_loss"``, ``"val_accuracy"``, ``"loss"``, ...), or
        ``objective(graph, history) -> float``, run on the worker after
        training. Default: ``"val_loss"`` with validation data, else ``"loss"``.
    study : optuna.Study, optional
        Trials are asked from it and told to it. None: a new in-memory study
        with ``TPESampler(seed=seed)``.
    n_trials : int
    direction : {"minimize", "maximize"}, optional
        For a new study; by default ``"maximize"`` for an objective whose
        larger values are better (a name ending with an accuracy, ``auc``,
        ``precision``, ``recall``, ``f1``, ``r2`` or ``score``: the
        callbacks' ``mode="auto"`` rule),
        else ``"minimize"``. A given study's own direction is used.
    seed : int or None
        The new study's sampler seed (None: a random one).
    client : distributed.Client, optional
        None: the default client.
    timeout : float, optional
        Seconds to wait for a trial's answer once it is the next to be told
        before counting it as failed (None: no limit). Its worker thread is
        not interrupted: the trial's result is dropped when it comes.
    **fit_args
        ``Graph.fit`` arguments for every trial (``epochs``, ``batch_size``,
        ``validation_split``, ``callbacks``, ...); trials train silently.

    Returns
    -------
    SearchResult

    Raises
    ------
    GraphError
        For a bad argument, no client, or no Optuna. A trial's own errors
        (in ``build``, in ``fit``, a lost worker) are recorded, not raised.

    Examples
    --------
    >>> def build(trial):  # doctest: +SKIP
    ...     width = trial.suggest_int("width", 8, 64, log=True)
    ...     lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    ...     g = gn.Sequential([gn.Input(4), gn.Dense(width, activation="relu"), gn.Dense(1)], seed=0)
    ...     return g, {"optimizer": {"name": "adam", "lr": lr}}
    >>> result = gn.distributed.search(build, x, y, n_trials=16, epochs=20,  # doctest: +SKIP
    ...                                validation_split=0.2, client=client)
    >>> result.best_params, result.best_graph.predict(x_new)  # doctest: +SKIP
    """
    optuna = _optuna()
    if not callable(build) or isinstance(build, Graph):  # a Graph is callable: it predicts
        raise GraphError(f"gn.distributed.search: build must be a function of the trial, got {type(build).__name__}")
    if study is not None and not isinstance(study, optuna.Study):
        raise GraphError(f"gn.distributed.search: study must be an optuna.Study (or None: a new one), "
                         f"got {type(study).__name__} {shown(study)}")
    n_trials = check_int(n_trials, "gn.distributed.search: n_trials")
    seed = None if seed is None else check_int(seed, "gn.distributed.search: seed", low=0)
    if timeout is not None:
        timeout = check_number(timeout, "gn.distributed.search: timeout", 0.0, math.inf, low_open=True,
                               high_open=True, expected="a positive number of seconds (or None)")
    fit_args = _fit_arguments(fit_args, "gn.distributed.search")
    validated = fit_args.get("validation_split") or fit_args.get("validation_data") is not None
    if objective is None:
        objective = "val_loss" if validated else "loss"
    if not (isinstance(objective, str) or callable(objective)):
        raise GraphError(f"gn.distributed.search: objective must be a log name or a function, got {objective!r}")
    if isinstance(objective, str) and objective.startswith("val_") and not validated:
        raise GraphError(f"gn.distributed.search: objective {objective!r} needs validation_split or validation_data")
    for name, value in (("x", x), ("y", y)):
        values = value.values() if isinstance(value, Mapping) else [value]
        if any(type(v).__module__.startswith("dask") for v in values):
            raise GraphError(f"gn.distributed.search: {name} is a dask collection; each trial trains in one "
                             "worker's memory: pass numpy arrays (x.compute())")
    direction = _direction(study, direction, objective)
    client = client_or_default(client, "gn.distributed.search")
    if study is None:
        study = optuna.create_study(direction=direction, sampler=optuna.samplers.TPESampler(seed=seed))
    window = 2 * max(1, sum(client.nthreads().values()))
    name = f"graphnet-search-{uuid.uuid4().hex}"
    validation = fit_args.pop("validation_data", None)
    [data] = client.scatter([(x, y, validation)], hash=False)
    client.publish_dataset(data, name=name)
    try:
        return _Search(client, study, build, (name, timeout), fit_args, objective, direction, window,
                       timeout).run(n_trials)
    finally:
        try:
            client.unpublish_dataset(name)
            data.release()
            client.run(_forget, name, wait=False)
        except Exception as exc:  # noqa: BLE001 - cleanup only; the search's outcome stands
            logger.debug("search %s: could not clean up: %s: %s", name, type(exc).__name__, exc)


class _Search:
    """One search's bookkeeping on the client: trials asked (each with its
    future, or its result when ``build`` already failed), results told in
    order, and the best trained graph so far (the only one kept)."""

    def __init__(self, client, study, build, ref, fit_args, objective, direction, window, timeout):
        self.client, self.study, self.build, self.ref = client, study, build, ref
        self.fit_args, self.objective, self.window, self.timeout = fit_args, objective, window, timeout
        self.sign = 1.0 if direction == "minimize" else -1.0
        self.asked: list = []
        self.results: list[TrialResult] = []
        self.best: TrialResult | None = None
        self.best_graph: Graph | None = None
        self.stopped = False  # the sampler has nothing left to try

    def run(self, n_trials: int) -> SearchResult:
        try:
            while len(self.results) < (len(self.asked) if self.stopped else n_trials):
                while (not self.stopped and len(self.asked) < n_trials
                       and len(self.asked) - len(self.results) < self.window):
                    self._ask()
                self._tell(*self.asked[len(self.results)])
        finally:
            for _, pending in self.asked[len(self.results):]:
                if not isinstance(pending, TrialResult):
                    pending.cancel()
        return SearchResult(self.study, self.results, self.best, self.best_graph)

    def _ask(self) -> None:
        trial = self.study.ask()
        try:
            graph, args = _built(self.build(trial), self.fit_args)
        except Exception as exc:  # noqa: BLE001 - the user's build: recorded, the others go on
            self.asked.append((trial, TrialResult(trial.number, dict(trial.params), "failed",
                                                  error=f"{type(exc).__name__}: {exc}")))
            return
        future = self.client.submit(_train, graph, self.ref, args, self.objective, pure=False,
                                    key=f"graphnet-trial-{trial.number}-{uuid.uuid4().hex[:8]}")
        self.asked.append((trial, future))

    def _tell(self, trial, pending) -> None:
        optuna = _optuna()
        if isinstance(pending, TrialResult):
            result, graph = pending, None
        else:
            result, graph = _collect(trial, pending, self.timeout)
        if result.state == "complete":
            trial.set_user_attr("seconds", result.seconds)
            if self.best is None or self.sign * result.value < self.sign * self.best.value:
                self.best, self.best_graph = result, graph
        else:
            trial.set_user_attr("error", result.error)
            logger.warning("search: trial %d failed: %s", trial.number, result.error)
        self.results.append(result)
        try:
            if result.state == "complete":
                self.study.tell(trial, result.value)
            else:
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        except RuntimeError as exc:
            # A sampler that has run out (GridSampler) stops the study, which
            # Optuna allows only inside study.optimize; the trial is told all the same.
            if "Study.stop" not in str(exc):
                raise
            self.stopped = True


def _built(built, fit_args: dict) -> tuple[Graph, dict]:
    args = {}
    if isinstance(built, tuple):
        if len(built) != 2 or not isinstance(built[1], Mapping):
            raise GraphError("build(trial) must return a Graph, a spec, or (graph or spec, dict of fit arguments)")
        built, args = built
    if isinstance(built, Mapping):
        built = Graph.from_dict(built)
    if not isinstance(built, Graph):
        raise GraphError(f"build(trial) must return a Graph or a spec, got {type(built).__name__}")
    return built, {**fit_args, **_fit_arguments(args, "build(trial)")}


def _collect(trial, future, timeout) -> tuple[TrialResult, Graph | None]:
    """The trial's result from its future; a lost worker or a timeout is a failure."""
    params = dict(trial.params)
    try:
        answer = future.result(timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - KilledWorker, CancelledError, TimeoutError: the trial failed
        future.cancel()
        what = "no answer within the timeout" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
        return TrialResult(trial.number, params, "failed", error=what), None
    finally:
        future.release()
    graph = answer.pop("graph", None)
    return TrialResult(trial.number, params, **answer), graph


def _train(graph: Graph, ref, fit_args: dict, objective) -> dict:
    """On a worker: train ``graph`` and score it; every error is the trial's."""
    from distributed import get_worker

    start = time.perf_counter()
    worker = get_worker().address
    try:
        x, y, validation = _data(ref)
        if validation is not None and "validation_data" not in fit_args:
            fit_args = {**fit_args, "validation_data": validation}
        history = graph.fit(x, y, verbose=0, **fit_args)
        if callable(objective):
            value = float(objective(graph, history))
        elif objective in history.history:
            value = float(history.history[objective][-1])
        else:
            raise GraphError(f"objective {objective!r} is not in the fit's logs {sorted(history.history)}")
        if not math.isfinite(value):
            raise GraphError(f"the objective is {value}")
    except Exception as exc:  # noqa: BLE001 - recorded as the trial's failure; the search goes on
        return {"state": "failed", "error": f"{type(exc).__name__}: {exc}", "seconds": time.perf_counter() - start,
                "worker": worker}
    return {"state": "complete", "value": value, "history": history.history, "graph": graph,
            "seconds": time.perf_counter() - start, "worker": worker}


def _data(ref):
    """The search's data, fetched once per worker and kept by name."""
    name, timeout = ref
    found = _DATA.get(name)
    if found is None:
        from distributed import get_client

        found = _DATA[name] = get_client().get_dataset(name).result(timeout=timeout)
        while len(_DATA) > _KEEP:
            _DATA.popitem(last=False)
    return found


async def _forget(name: str) -> None:
    _DATA.pop(name, None)
