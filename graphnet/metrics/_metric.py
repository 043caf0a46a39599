"""The metric base class: a streaming state that batches update and workers merge.

A :class:`Metric` holds sufficient statistics (sums, counts, per-class
tallies), declared with :meth:`Metric.add_state`: ``update_state`` adds a
batch to them, ``result`` reads the value over every row seen, and
``merge_state`` adds another metric's statistics (a dask chunk's, a
worker's share of a batch). So a metric over an epoch is its value on the
epoch's rows, whatever the batch size, never a mean of per-batch values.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import numpy as np

from .. import backend as backend_module
from .._settings import Checked
from .._text import clip, shown
from .._validation import check_int, check_labels, unbindable
from ..errors import GraphError, ShapeError

__all__ = ["Metric", "FunctionMetric", "result_of", "as_rows", "row_weights", "class_labels", "ratio"]

_MERGES = ("sum", "concat")


class Metric(Checked):
    """Base class: a value over all the rows seen, from a mergeable state.

    Subclasses declare their state in ``__init__`` with :meth:`add_state`
    and write :meth:`update_state` and :meth:`result`; merging, resetting
    and copying come from here.

    Attributes
    ----------
    name : str
        The key in ``fit``'s and ``evaluate``'s logs (``OUTPUT_name`` when
        the graph has several outputs).
    activations : tuple of str or None
        The output activations the metric is defined for (None: every output).
    activation : str or None
        The activation of the output this metric is bound to (see
        :meth:`bind`); None for a metric used on its own.

    Parameters
    ----------
    name : str, optional
        The key in the logs, an identifier; None (the default) keeps the
        class's ``name``.
    """

    name: ClassVar[str] = ""
    activations: ClassVar[tuple[str, ...] | None] = None
    #: Whether ``update_state`` takes a device's arrays as they are (written
    #: with the arrays' own module); otherwise it is given host copies.
    device_arrays: ClassVar[bool] = False
    #: Whether ``result`` is cheap enough to be read for the live progress
    #: bar every tenth of a second (not when it sorts every row kept).
    live: bool = True
    #: Whether a ``y_true`` of labels (one column, for a categorical ``y_pred``
    #: of several) picks a column of ``y_pred`` each, as graphnet's own metrics
    #: read it: checked as such, and given as integers ``(n,)``, when called on
    #: its own. A subclass of the user's gets ``y_true`` as given.
    reads_labels: ClassVar[bool] = False
    #: Whether a sigmoid output's ``y_true`` must hold labels 0 or 1 (a
    #: metric that thresholds or ranks them; scikit-learn refuses continuous
    #: targets for these too).
    zero_one_targets: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        """A subclass's own ``update_state`` checks its arguments (see
        :func:`_checking`); :meth:`update_unchecked` calls the method as written."""
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("update_state")
        if own is not None and not hasattr(own, "unchecked"):
            cls.update_state = _checking(own)

    def __init__(self, name: str | None = None):
        if name is not None:
            if not isinstance(name, str) or not name.isidentifier():
                raise GraphError(f"{type(self).__name__}: name must be an identifier, got {shown(name)}")
            self.name = name
        self.activation: str | None = None
        self.units: int | None = None
        self._defaults: dict[str, tuple[Any, str]] = {}

    # ------------------------------------------------------------------ state
    def add_state(self, name: str, default, merge: str = "sum") -> None:
        """Declare a state variable ``self.<name>``, set to a copy of ``default``.

        Parameters
        ----------
        name : str
            The attribute that holds it.
        default : number, ndarray or list
            Its value after each :meth:`reset_state` (a deep copy each time).
        merge : {"sum", "concat"}, default "sum"
            How :meth:`merge_state` joins two metrics' values: ``"sum"`` adds
            them (numbers or arrays of one shape), ``"concat"`` joins two lists.
        """
        if merge not in _MERGES:
            raise GraphError(f"{type(self).__name__}.add_state: merge must be one of {_MERGES}, got {merge!r}")
        if "_defaults" not in vars(self):
            raise GraphError(f"{type(self).__name__}: call super().__init__() before add_state")
        self._defaults[name] = (default, merge)
        setattr(self, name, copy.deepcopy(default))

    def reset_state(self) -> None:
        """Forget every row seen."""
        for name, (default, _) in self._defaults.items():
            setattr(self, name, copy.deepcopy(default))

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        """Count a batch.

        Parameters
        ----------
        y_true : ndarray of shape (n, units), or (n,) integer labels for a softmax output
        y_pred : ndarray of shape (n, units)
            The output's activations (probabilities for sigmoid and softmax).
        sample_weight : ndarray of shape (n,), optional
        """
        raise NotImplementedError

    def update_unchecked(self, *args, **kwargs) -> None:
        """:meth:`update_state` as written, without the checks of its
        arguments: for arrays a graph has checked (its targets and
        predictions), batch by batch. The method is looked up at each call,
        so one set on the class later is the one called.

        Parameters
        ----------
        *args, **kwargs
            :meth:`update_state`'s arguments: ``y_true``, ``y_pred`` and ``sample_weight``.
        """
        method = type(self).update_state
        getattr(method, "unchecked", method)(self, *args, **kwargs)

    def result(self) -> float:
        """The value over every row counted since the last reset."""
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """The state variables by name (what :meth:`merge_state` adds)."""
        return {name: getattr(self, name) for name in self._defaults}

    def merge_state(self, others: Metric | Iterable[Metric]) -> None:
        """Add the state of other metrics of the same kind to this one (Keras's
        ``merge_state``): the result is then the value over all their rows.

        Parameters
        ----------
        others : Metric or iterable of Metric
            Metrics of this one's class; they are left unchanged.
        """
        others = [others] if isinstance(others, Metric) else list(others)
        for other in others:
            if type(other) is not type(self):
                raise GraphError(f"{type(self).__name__}.merge_state: cannot merge a {type(other).__name__}")
            for name, (_, merge) in self._defaults.items():
                mine, theirs = getattr(self, name), getattr(other, name)
                setattr(self, name, mine + list(theirs) if merge == "concat" else mine + theirs)

    def accumulate(self, name: str, value) -> None:
        """``self.<name> += value``, where ``value`` may be a device's array
        (the state then moves to the device, once).

        Parameters
        ----------
        name : str
            A state variable declared with :meth:`add_state`.
        value : number or array
            What is added to it.
        """
        current = getattr(self, name)
        if isinstance(current, np.ndarray) and not isinstance(value, (np.ndarray, np.generic, int, float)):
            current = backend_module.get_for(value).to_device(current)
        setattr(self, name, current + value)

    # ---------------------------------------------------------------- outputs
    def applies_to(self, output) -> bool:
        """Whether the metric is defined for the Output node ``output``.

        Parameters
        ----------
        output : Output
            The node; its activation decides.
        """
        return self.activations is None or output.activation.name in self.activations

    def bind(self, output) -> Metric:
        """A fresh copy of this metric for an Output node.

        Parameters
        ----------
        output : Output
            The node; its activation and size decide, e.g., binary or categorical accuracy.
        """
        bound = copy.deepcopy(self)
        bound.activation, bound.units = output.activation.name, output.size
        bound.reset_state()
        return bound

    def kind(self, y_pred) -> str:
        """``"categorical"`` (softmax), ``"binary"`` (sigmoid) or ``"other"``.

        Parameters
        ----------
        y_pred : ndarray
            The predictions: a metric used on its own (not bound to an output)
            reads the kind from them: one column is binary, several are categorical.
        """
        if self.activation is None:
            return "binary" if y_pred.ndim == 1 or y_pred.shape[1] == 1 else "categorical"
        return {"softmax": "categorical", "sigmoid": "binary"}.get(self.activation, "other")

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}

    def __repr__(self) -> str:
        params = {k: v for k, v in self.get_config().items() if k != "name"}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in params.items())})"


def _checking(update: Callable) -> Callable:
    """``update`` (a metric's ``update_state``) checking its arguments first:
    ``y_true`` and ``y_pred`` arrays of numbers (a list is made one), of one
    or two dimensions and as many rows; two-dimensional ones of as many
    columns, unless ``y_true`` has one (labels)."""

    @functools.wraps(update)
    def update_state(self, y_true, y_pred, *args, **kwargs):
        y_true, y_pred = _numbers(self, y_true, "y_true"), _numbers(self, y_pred, "y_pred")
        if y_true.shape[0] != y_pred.shape[0]:
            raise ShapeError(f"metric {self.name!r}: y_true has {y_true.shape[0]} rows but y_pred "
                             f"{y_pred.shape[0]}, shapes {y_true.shape} and {y_pred.shape}")
        if y_true.ndim == y_pred.ndim == 2 and y_true.shape[1] not in (1, y_pred.shape[1]):
            raise ShapeError(f"metric {self.name!r}: y_true has {y_true.shape[1]} columns but y_pred "
                             f"{y_pred.shape[1]} (give y_true as many columns, or one column of labels)")
        if self.activations == ("softmax",) and (y_pred.ndim == 1 or y_pred.shape[1] < 2):
            raise ShapeError(f"metric {self.name!r} reads a softmax output's class probabilities, two columns or "
                             f"more; y_pred has shape {y_pred.shape}")
        if y_pred.ndim == 1 and y_true.ndim == 2 and y_true.shape[1] > 1:
            raise ShapeError(f"metric {self.name!r}: y_true has {y_true.shape[1]} columns but y_pred is one "
                             f"column of shape {y_pred.shape}")
        if self.reads_labels and isinstance(y_true, np.ndarray) and (y_true.ndim == 1 or y_true.shape[1] == 1) \
                and y_pred.ndim == 2 and self.kind(y_pred) == "categorical":
            y_true = _labels(self, y_true.reshape(-1), y_pred.shape[1])
        return update(self, y_true, y_pred, *args, **kwargs)

    update_state.unchecked = update  # what update_unchecked calls
    return update_state


def _numbers(metric: Metric, value, role: str):
    """``value`` (numpy's or a device's array, or what numpy makes one of)
    when it holds real numbers in one or two dimensions."""
    given = value
    if not isinstance(value, np.ndarray) and not hasattr(value, "__cuda_array_interface__"):
        try:  # a list, a pandas or polars Series, a CPU torch tensor: numpy's array of it
            value = np.asarray(value) if value is not None else None
        except (TypeError, ValueError, RuntimeError):
            value = None
    if value is None or value.dtype.kind not in "biuf" or value.ndim not in (1, 2):
        found = (f"an array of dtype {value.dtype} and shape {value.shape}" if value is not None
                 else f"{type(given).__name__} {shown(given, 40)}")
        raise ShapeError(f"metric {metric.name!r}: {role} must be an array of numbers of shape (n,) or "
                         f"(n, units), got {found}")
    return value


def _labels(metric: Metric, y: np.ndarray, units: int) -> np.ndarray:
    """``y`` as class labels (integers) picking one of ``units`` columns each."""
    check_labels(y, units, f"metric {metric.name!r}", "y_true of one column holds class labels, which must be "
                 "whole numbers", of=" (a column of y_pred each)")
    return y if y.dtype.kind in "iu" else y.astype(np.int64)


class FunctionMetric(Metric):
    """A plain function ``f(y_true, y_pred) -> float`` as a metric, computed once
    on all the rows of the epoch (or of the evaluation).

    The rows are kept until :meth:`result`: memory grows with the data,
    ``(units of y_true + units of y_pred) x 8`` bytes a row, up to
    ``max_rows`` rows (a :class:`~graphnet.GraphError` beyond them). A
    one-unit output gives the function 1-D arrays, so scikit-learn's metric
    functions take them as they are. Sample weights are not passed on.

    Parameters
    ----------
    function : callable
        ``function(y_true, y_pred)``, returning a number.
    name : str, optional
        The key in the logs; the function's ``__name__`` by default.
    max_rows : int
        The most rows kept (10 million by default).
    """

    def __init__(self, function: Callable, name: str | None = None, max_rows: int = 10_000_000):
        if not callable(function):
            raise GraphError(f"FunctionMetric: expected a callable f(y_true, y_pred), got {shown(function)}")
        if name is None:
            name = getattr(function, "__name__", "")
            name = name if name.isidentifier() else "metric"
        super().__init__(name)
        _refuse_unbindable(function, self.name)
        self.live = False  # called once, on all the rows
        self.function = function
        self.max_rows = check_int(max_rows, "FunctionMetric: max_rows")
        self.add_state("targets", [], merge="concat")
        self.add_state("predictions", [], merge="concat")
        self.add_state("rows", 0)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = as_rows(y_pred)
        if self.rows + len(y_pred) > self.max_rows:
            raise GraphError(
                f"metric {self.name!r}: a function metric keeps every row to call the function once, "
                f"and {self.rows + len(y_pred)} rows exceed max_rows={self.max_rows}; pass "
                f"gn.metrics.FunctionMetric(f, max_rows=...) or write a streaming gn.metrics.Metric"
            )
        self.targets.append(np.array(y_true))
        self.predictions.append(np.array(y_pred))
        self.rows += len(y_pred)

    def result(self) -> float:
        if not self.predictions:
            return float("nan")
        y_true, y_pred = np.concatenate(self.targets), np.concatenate(self.predictions)
        if y_pred.shape[1] == 1:
            y_pred = y_pred[:, 0]
            y_true = y_true.reshape(len(y_pred), -1)[:, 0] if y_true.ndim == 2 else y_true
        try:
            value = self.function(y_true, y_pred)
        except Warning:  # a warning made an error by the user's filters escapes as itself
            raise
        except Exception as exc:  # a user's function: say which metric failed
            raise GraphError(f"metric {self.name!r}: the function raised {type(exc).__name__}: "
                             f"{clip(str(exc))}") from exc
        number = value.item() if isinstance(value, np.ndarray) and value.size == 1 else value
        if isinstance(number, (int, float, np.integer, np.floating, np.bool_)):
            return float(number)
        raise GraphError(f"metric {self.name!r}: the function must return one number, got {shown(value)}")

    def get_config(self):
        return {"name": self.name, "function": getattr(self.function, "__qualname__", repr(self.function))}


def result_of(metric: Metric):
    """``metric.result()``, checked for a metric written by a user: one
    number (graphnet's own may give a device's 0-d array).

    Raises
    ------
    GraphError
        Naming the metric, for a result that is no number.
    """
    value = metric.result()
    if type(metric).__module__.startswith("graphnet."):
        return value
    number = value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value
    if isinstance(number, (int, float, np.integer, np.floating, np.bool_)):
        return float(number)
    raise GraphError(f"metric {metric.name!r} ({type(metric).__name__}): result() must return one number, got "
                     f"{shown(value)}")


def _refuse_unbindable(function: Callable, name: str) -> None:
    """Refuse a function that cannot be called as ``function(y_true, y_pred)``,
    before any epoch trains (one whose signature cannot be read is taken as it is)."""
    written = unbindable(function, "y_true", "y_pred")
    if written is not None:
        raise GraphError(f"metric {name!r}: a metric function is called as f(y_true, y_pred), but {written}; "
                         "write e.g. def my_metric(y_true, y_pred): ...")


def as_rows(array):
    """``array`` as rows: a 1-D array becomes one column."""
    return array.reshape(-1, 1) if array.ndim == 1 else array


def binary_truth(metric: Metric, y_true, xp=np):
    """A sigmoid output's ``y_true`` as booleans, each value 0 or 1 (checked
    on the host; a device's batch is not read back for it: fit and evaluate
    check whole target arrays before any work, see ``check_targets``)."""
    y = as_rows(y_true)
    truth = y > 0.5
    if xp is np and not (y == truth).all():
        raise ShapeError(f"metric {metric.name!r}: {not_zero_one(backend_module.host(y))}")
    return truth


def not_zero_one(y: np.ndarray) -> str:
    """What to say of targets ``y`` (rows × units) that are not all 0 or 1."""
    y = y.reshape(len(y), -1)
    row, unit = (int(i) for i in np.argwhere(y != (y > 0.5))[0])
    where = f"row {row}" + (f", unit {unit}" if y.shape[1] > 1 else "")
    value = y[row, unit]
    value = str(value) if y.dtype.kind == "f" else repr(value.item())  # str: the shortest of its own dtype
    return (f"reads the targets of a sigmoid output as labels 0 or 1 (scikit-learn's classification metrics "
            f"refuse other values too), but {where} is {value}; leave it out for soft targets (the loss "
            "takes them)")


def row_weights(sample_weight, rows: int, xp=np):
    """``sample_weight`` as an ``(n,)`` float array (None stays None)."""
    if sample_weight is None:
        return None
    weights = sample_weight if not isinstance(sample_weight, (list, tuple)) else np.asarray(sample_weight)
    if weights.ndim == 2 and weights.shape[1] == 1:
        weights = weights[:, 0]
    if weights.shape != (rows,):
        raise ShapeError(f"sample_weight: expected shape ({rows},), one weight per row, got {weights.shape}")
    return weights.astype(np.float64) if xp is np else weights.astype(xp.float64)


def class_labels(y_true, units: int, xp=np):
    """Integer labels from labels or one-hot (or probability) rows."""
    if y_true.ndim == 2 and y_true.shape[1] == units and units > 1:
        return y_true.argmax(axis=1)
    labels = y_true.reshape(-1)
    return labels if labels.dtype.kind in "iu" else labels.astype(xp.int64)


def ratio(numerator, denominator):
    """``numerator / denominator``, 0 for no rows (a device's values are divided
    there, unread)."""
    if isinstance(denominator, (int, float, np.number)) and not denominator:
        return 0.0
    return numerator / denominator
