"""Metrics reported by ``fit`` and ``evaluate``: accuracy, mae, mse.

Each is a mean over rows, so averaging batch values weighted by their row
counts gives exactly the value over the whole data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from .errors import GraphError
from .nodes import Output

if TYPE_CHECKING:
    from .graph import Graph

__all__ = [
    "Metric", "Accuracy", "MeanAbsoluteError", "MeanSquaredError", "METRICS", "get", "resolve", "key",
    "log_keys",
]


class Metric:
    """Base class: ``metric(y, a, output)`` is a float for targets ``y`` and
    predictions ``a`` of the Output node ``output``."""

    name: ClassVar[str] = ""

    def applies_to(self, output: Output) -> bool:
        return True

    def __call__(self, y: np.ndarray, a: np.ndarray, output: Output, xp=np) -> float:
        """The metric; ``xp`` is the arrays' module (on a device the value stays
        there, a 0-d array, as for :meth:`graphnet.losses.Loss.value`)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Accuracy(Metric):
    """Categorical (argmax) on softmax outputs, binary (threshold 0.5, per element)
    on sigmoid outputs; undefined elsewhere."""

    name = "accuracy"

    def applies_to(self, output):
        return output.activation.name in ("softmax", "sigmoid")

    def __call__(self, y, a, output, xp=np):
        if output.activation.name == "softmax":
            labels = y if y.ndim == 1 else y.argmax(axis=1)
            return _scalar(xp, xp.mean(a.argmax(axis=1) == labels))
        return _scalar(xp, xp.mean((a > 0.5) == (y > 0.5)))


class MeanAbsoluteError(Metric):
    name = "mae"

    def __call__(self, y, a, output, xp=np):
        return _scalar(xp, xp.mean(xp.abs(a - _dense(y, a, xp))))


class MeanSquaredError(Metric):
    name = "mse"

    def __call__(self, y, a, output, xp=np):
        diff = a - _dense(y, a, xp)
        return _scalar(xp, xp.mean(diff * diff))


def _dense(y: np.ndarray, a: np.ndarray, xp=np) -> np.ndarray:
    """Integer labels as one-hot rows, so mae/mse work on softmax outputs too."""
    if y.ndim == 1 and a.shape[1] > 1:
        onehot = xp.zeros_like(a)
        onehot[xp.arange(len(y)), y] = 1
        return onehot
    return y


def _scalar(xp, value):
    """A float on the host; on a device the 0-d array itself (no synchronisation)."""
    return float(value) if xp is np else value


#: Every metric by the name users pass in ``metrics=``.
METRICS: dict[str, type[Metric]] = {
    cls.name: cls for cls in (Accuracy, MeanAbsoluteError, MeanSquaredError)
}


def get(identifier: str | Metric) -> Metric:
    """A metric from a name or an instance."""
    if isinstance(identifier, Metric):
        return identifier
    cls = METRICS.get(identifier) if isinstance(identifier, str) else None
    if cls is None:
        raise GraphError(f"unknown metric {identifier!r}; known: {sorted(METRICS)}")
    return cls()


def resolve(graph: Graph, metrics) -> dict[str, list[Metric]]:
    """Output name -> metrics, from a list (every output where defined) or a dict.

    Raises
    ------
    GraphError
        For unknown metric or output names, a metric that fits no output, or
        one asked of an output it is not defined for.
    """
    outputs = {name: graph.nodes[name] for name in graph.outputs}
    if metrics is None:
        metrics = []
    if isinstance(metrics, (str, Metric)):
        metrics = [metrics]
    if not isinstance(metrics, (list, tuple, dict)):
        raise GraphError(
            f"metrics must be a list of names (e.g. ['accuracy']) or a dict output name -> list, "
            f"got {type(metrics).__name__}: {metrics!r}"
        )
    if isinstance(metrics, dict):
        unknown = [n for n in metrics if n not in outputs]
        if unknown:
            raise GraphError(f"metrics for unknown outputs {unknown}; outputs: {list(outputs)}")
        chosen = {}
        for name, wanted in metrics.items():
            if not isinstance(wanted, (str, Metric, list, tuple)):
                raise GraphError(f"metrics[{name!r}] must be a metric name or a list of them, got {wanted!r}")
            wanted = [wanted] if isinstance(wanted, (str, Metric)) else list(wanted)
            chosen[name] = [get(m) for m in wanted]
            for metric in chosen[name]:
                if not metric.applies_to(outputs[name]):
                    raise GraphError(
                        f"metric {metric.name!r} is not defined for output {name!r} "
                        f"(activation {outputs[name].activation.name!r})"
                    )
        return chosen
    wanted = [get(m) for m in metrics]
    chosen = {name: [] for name in outputs}
    for metric in wanted:
        fits = [n for n, node in outputs.items() if metric.applies_to(node)]
        if not fits:
            raise GraphError(
                f"metric {metric.name!r} fits none of the outputs "
                + ", ".join(f"{n!r} ({node.activation.name})" for n, node in outputs.items())
            )
        for name in fits:
            chosen[name].append(metric)
    return chosen


def key(graph: Graph, output: str, name: str) -> str:
    """``name`` for a one-output graph, ``OUTPUT_name`` otherwise (as Keras does)."""
    return name if len(graph.outputs) == 1 else f"{output}_{name}"


def log_keys(graph: Graph, chosen: dict[str, list[Metric]]) -> list[str]:
    """The names an epoch's logs will hold for these metrics (what ``Tally`` fills)."""
    keys = ["loss"]
    if len(graph.outputs) > 1:
        keys += [f"{name}_loss" for name in graph.outputs]
    keys += [key(graph, name, metric.name) for name, metrics in chosen.items() for metric in metrics]
    return keys

