"""Metrics reported by ``fit`` and ``evaluate``, computed on all the rows.

A metric keeps a streaming state (counts, sums, per-class tallies): each
batch updates it and the epoch's value is read once, so it equals the value
on the whole epoch's rows (scikit-learn's, on the same predictions),
whatever the batch size. States merge, so dask chunks and cluster workers
add theirs up.

By name (``metrics=["accuracy", "auc"]``): ``accuracy``,
``binary_accuracy``, ``categorical_accuracy``, ``top_k_accuracy``,
``precision``, ``recall``, ``f1``, ``auc``, ``log_loss`` (sigmoid and
softmax outputs) and ``mae``, ``mse``, ``rmse``, ``r2`` (every output). An
instance sets parameters (``gn.metrics.AUC(num_thresholds=200)``,
``gn.metrics.Precision(average="micro")``); a function ``f(y_true,
y_pred) -> float`` is a metric too, called once on all the rows.

A metric of your own subclasses :class:`Metric`: declare the state with
``add_state`` (merged by summing), count a batch in ``update_state`` and
read the value in ``result``:

>>> import numpy as np
>>> import graphnet as gn
>>> class MeanBias(gn.metrics.Metric):
...     name = "mean_bias"
...     def __init__(self, name=None):
...         super().__init__(name)
...         self.add_state("total", 0.0)
...         self.add_state("count", 0.0)
...     def update_state(self, y_true, y_pred, sample_weight=None):
...         self.total += float(np.sum(y_pred - y_true.reshape(y_pred.shape)))
...         self.count += y_pred.size
...     def result(self):
...         return self.total / self.count if self.count else 0.0
>>> bias = MeanBias()
>>> bias.update_state(np.array([[1.0], [2.0]]), np.array([[1.5], [2.5]]))
>>> bias.result()
0.5

Pass an instance (``metrics=[MeanBias()]``), or register the class to use
its name (``gn.register(MeanBias)``: an entry in :data:`METRICS`, checked
by :func:`check_class`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from .. import backend as backend_module
from .._registry import add_family, lookup
from .._text import shown
from .._validation import check_outputs
from ..errors import GraphError, ShapeError
from ._classification import (
    Accuracy,
    BinaryAccuracy,
    CategoricalAccuracy,
    F1Score,
    LogLoss,
    Precision,
    Recall,
    TopKAccuracy,
)
from ._metric import FunctionMetric, Metric, not_zero_one, result_of  # noqa: F401 (result_of: for the engine)
from ._ranking import AUC
from ._regression import MeanAbsoluteError, MeanSquaredError, R2Score, RootMeanSquaredError

if TYPE_CHECKING:
    from ..graph import Graph

__all__ = [
    "Metric", "FunctionMetric", "Accuracy", "BinaryAccuracy", "CategoricalAccuracy", "TopKAccuracy",
    "Precision", "Recall", "F1Score", "AUC", "LogLoss", "MeanAbsoluteError", "MeanSquaredError",
    "RootMeanSquaredError", "R2Score", "METRICS", "get", "check_class", "resolve", "key", "log_keys",
    "check_log_keys", "check_targets",
]

#: Every metric by the name users pass in ``metrics=`` (Keras's long names too).
METRICS: dict[str, type[Metric]] = {
    cls.name: cls
    for cls in (Accuracy, BinaryAccuracy, CategoricalAccuracy, TopKAccuracy, Precision, Recall, F1Score, AUC,
                LogLoss, MeanAbsoluteError, MeanSquaredError, RootMeanSquaredError, R2Score)
}
#: Keras's long names: a metric asked for by one is logged under it, as in Keras.
_KERAS_NAMES: dict[str, type[Metric]] = {
    "mean_absolute_error": MeanAbsoluteError,
    "mean_squared_error": MeanSquaredError,
    "root_mean_squared_error": RootMeanSquaredError,
    "top_k_categorical_accuracy": TopKAccuracy,
}
METRICS.update(_KERAS_NAMES)


def get(identifier) -> Metric:
    """A metric from a name, a config dict, an instance, a Metric subclass or
    a function ``f(y_true, y_pred) -> float``.

    Parameters
    ----------
    identifier : str, dict, Metric, type or callable
        A name (``"accuracy"``), a config dict ``{"name": ..., **parameters}``,
        an instance (returned as is), a Metric subclass (made with no
        arguments), or a function, wrapped as a metric named after it.

    Raises
    ------
    GraphError
        For an unknown name (listing the known ones), bad parameters, or
        anything else.
    """
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        _refuse_unwritten(identifier)
        try:
            return identifier()
        except TypeError as exc:
            raise GraphError(f"metric class {identifier.__name__} cannot be made without arguments "
                             f"({exc}); pass an instance") from None
    if isinstance(identifier, (str, Mapping, Metric)):
        metric = lookup(identifier, METRICS, "metric", Metric, "a Metric")
        _refuse_unwritten(type(metric))
        if not (isinstance(metric.name, str) and metric.name.isidentifier()):  # one set after it was made
            raise GraphError(f"{type(metric).__name__}: name must be an identifier, got {shown(metric.name)}")
        given = identifier if isinstance(identifier, str) else None
        if isinstance(identifier, Mapping) and isinstance(identifier.get("name"), str):
            given = identifier["name"]
        if given in _KERAS_NAMES and not isinstance(identifier, Metric):
            metric.name = given  # logged under the name asked for, as Keras logs it
        return metric
    if callable(identifier):
        return FunctionMetric(identifier)
    raise GraphError(f"metric must be a name, a Metric or a function f(y_true, y_pred), "
                     f"got {type(identifier).__name__}: {shown(identifier)}")


def check_class(cls) -> None:
    """Refuse a class the engine cannot use as a metric (what registering
    one checks): not a :class:`Metric` subclass, no ``name`` identifier,
    ``update_state`` or ``result`` not written, or no way to make it
    without arguments.

    Raises
    ------
    GraphError
        Saying what the protocol wants.
    """
    if not (isinstance(cls, type) and issubclass(cls, Metric)):
        raise GraphError(f"a metric class must subclass gn.metrics.Metric, got {shown(cls)}")
    where = f"metric {cls.__name__}"
    if not isinstance(cls.name, str) or not cls.name.isidentifier():
        raise GraphError(f"{where}: set a class attribute name = '...' (an identifier), the key in the logs")
    get(cls)  # written, and made without arguments, as a name makes it


def _refuse_unwritten(cls: type[Metric]) -> None:
    """Refuse a metric class whose ``update_state`` or ``result`` is the
    base class's (which only raises NotImplementedError): ``Metric`` itself,
    or a subclass left half-written."""
    missing = [m for m in ("update_state", "result") if getattr(cls, m) is getattr(Metric, m)]
    if missing:
        raise GraphError(f"metric {cls.__name__}: write {' and '.join(missing)} (update_state(y_true, y_pred, "
                         "sample_weight=None) counts a batch, result() reads the value); gn.metrics.Metric "
                         "is the base class of a metric of your own, not a metric")


def resolve(graph: Graph, metrics, where: str = "fit") -> dict[str, list[Metric]]:
    """Output name -> metrics, from a list (every output where defined) or a dict.

    Parameters
    ----------
    graph : Graph
        The graph whose outputs the metrics are for.
    metrics : str, Metric, callable, list of them, or dict output name -> list, optional
        Metric names, :class:`Metric` instances or functions ``f(y_true, y_pred)
        -> float``: a list goes to every output each is defined for, a dict
        names the outputs; None for none.
    where : str, default "fit"
        The call the messages name (``"evaluate"``).

    Returns
    -------
    dict output name -> list of Metric
        In the graph's order of outputs.

    Raises
    ------
    NotFoundError
        For unknown output names.
    GraphError
        For unknown metric names, a metric that fits no output, one asked of
        an output it is not defined for, or one asked twice.
    """
    outputs = {name: graph.nodes[name] for name in graph.outputs}
    if metrics is None:
        metrics = []
    if isinstance(metrics, (str, Metric)) or (callable(metrics) and not isinstance(metrics, Mapping)):
        metrics = [metrics]
    if not isinstance(metrics, (list, tuple, Mapping)):
        raise GraphError(
            f"metrics must be a list of names (e.g. ['accuracy']) or a dict output name -> list, "
            f"got {type(metrics).__name__}: {shown(metrics)}"
        )
    if isinstance(metrics, Mapping):
        check_outputs(metrics, list(outputs), f"{where}: metrics")
        chosen = {}
        for name, wanted in metrics.items():
            if isinstance(wanted, (str, Metric)) or (callable(wanted) and not isinstance(wanted, type)):
                wanted = [wanted]
            if not isinstance(wanted, (list, tuple)):
                raise GraphError(f"metrics[{name!r}] must be a metric name, a Metric, a function or a list of them, got {shown(wanted)}")
            chosen[name] = [get(m) for m in wanted]
            for metric in chosen[name]:
                if not metric.applies_to(outputs[name]):
                    raise GraphError(
                        f"metric {metric.name!r} is not defined for output {name!r} "
                        f"(activation {outputs[name].activation.name!r}); it needs "
                        f"{' or '.join(metric.activations)}"
                    )
        _refuse_twice(chosen)
        return {name: chosen[name] for name in outputs if name in chosen}  # the logs follow the outputs' order
    wanted = [get(m) for m in metrics]
    chosen = {name: [] for name in outputs}
    for metric in wanted:
        fits = [n for n, node in outputs.items() if metric.applies_to(node)]
        if not fits:
            raise GraphError(
                f"metric {metric.name!r} fits none of the outputs "
                + ", ".join(f"{n!r} ({node.activation.name})" for n, node in outputs.items())
                + f"; it needs {' or '.join(metric.activations)}"
            )
        for name in fits:
            chosen[name].append(metric)
    _refuse_twice(chosen)
    return chosen


def _refuse_twice(chosen: dict[str, list[Metric]]) -> None:
    for output, metrics in chosen.items():
        names = [m.name for m in metrics]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise GraphError(f"metric {twice[0]!r} is asked twice for output {output!r}; give one of them "
                             "another name (e.g. gn.metrics.AUC(name='auc_hist', num_thresholds=200))")


def key(several: bool, output: str, name: str) -> str:
    """``name`` for a one-output graph, ``OUTPUT_name`` for a graph of
    ``several`` outputs (as Keras does).

    Parameters
    ----------
    several : bool
        Whether the graph has several outputs.
    output : str
        The output's name.
    name : str
        The metric's (or ``"loss"``).
    """
    return f"{output}_{name}" if several else name


def log_keys(graph: Graph, chosen: dict[str, list[Metric]]) -> list[str]:
    """The names an epoch's logs will hold for these metrics (what ``Tally`` fills).

    Parameters
    ----------
    graph : Graph
        The graph trained.
    chosen : dict output name -> list of Metric
        What :func:`resolve` returned.

    Returns
    -------
    list of str
        ``loss``, each output's loss where there are several, then the metrics.
    """
    keys = ["loss"]
    outputs = graph.outputs
    several = len(outputs) > 1
    if several:
        keys += [f"{name}_loss" for name in outputs]
    keys += [key(several, name, metric.name) for name, metrics in chosen.items() for metric in metrics]
    return keys


def check_log_keys(graph: Graph, chosen: dict[str, list[Metric]], where: str) -> None:
    """Refuse training logs whose names clash (``fit``'s check): a name that
    starts with ``val_``, which reads as a validation value (an output named
    ``val`` logs ``val_loss``; ``val_x`` beside ``x``, ``val_x_loss``), or a
    name two values would share.

    Parameters
    ----------
    graph : Graph
        The graph trained.
    chosen : dict output name -> list of Metric
        What :func:`resolve` returned.
    where : str
        The call the messages name (``"fit"``).

    Raises
    ------
    GraphError
        Naming the output or metric and suggesting a rename.
    """
    several = len(graph.outputs) > 1
    output = "give output {!r} a name that is not 'val' and does not start with 'val_'".format
    metric_rename = "give the metric another name (its name= argument)"
    logged = [("loss", "the total loss", "", "")]
    if several:
        logged += [(f"{name}_loss", f"the loss of output {name!r}", output(name), output(name))
                   for name in graph.outputs]
    logged += [(key(several, name, metric.name), f"metric {metric.name!r} of output {name!r}",
                output(name) if several else metric_rename, metric_rename)
               for name, metrics in chosen.items() for metric in metrics]
    seen: dict[str, str] = {}
    for logged_key, what, unprefix, rename in logged:  # how to end each clash
        if logged_key.startswith("val_"):
            raise GraphError(f"{where}: {what} would be logged as {logged_key!r}, the name of a validation value "
                             f"(validation values are logged as 'val_' + name); {unprefix}")
        if logged_key in seen:
            raise GraphError(f"{where}: {what} and {seen[logged_key]} would both be logged as {logged_key!r}; "
                             f"{rename}")
        seen[logged_key] = what


def check_targets(graph: Graph, chosen: dict[str, list[Metric]], targets, where: str) -> None:
    """Refuse, before any work, a sigmoid output's targets that a chosen
    metric reads as labels (accuracy, precision, recall, F1, AUC) when they
    are not all 0 or 1, as scikit-learn refuses continuous targets.

    Parameters
    ----------
    graph : Graph
        The graph whose outputs the targets are for.
    chosen : dict output name -> list of Metric
        What :func:`resolve` returned.
    targets : dict output name -> array
        The checked targets (numpy's or a device's arrays).
    where : str
        The call the messages name (``"fit"``).

    Raises
    ------
    ShapeError
        Naming the call, the output, the metric, and the first value that is
        not 0 or 1 with its row.
    """
    for name, metrics in chosen.items():
        picky = [metric for metric in metrics if metric.zero_one_targets]
        if not picky or name not in targets or graph.nodes[name].activation.name != "sigmoid":
            continue
        y = backend_module.host(targets[name])
        if not (y == (y > 0.5)).all():
            raise ShapeError(f"{where}: output {name!r}: metric {picky[0].name!r}: "
                             f"{not_zero_one(y)}")


add_family(Metric, METRICS, "metric", check_class)
