"""Classification metrics: accuracies, precision, recall, F1 and log loss.

On a softmax output a row's class is its argmax; on a sigmoid output each
unit is a yes/no answer (``p > threshold``), as Keras reads them, and the
targets' positives are those above 0.5. Each metric keeps weighted counts,
so its value over an epoch is the value on all of the epoch's rows.
"""

from __future__ import annotations

import numpy as np

from .. import backend as backend_module
from .._validation import check_int, check_number
from ..errors import GraphError
from ._metric import Metric, as_rows, binary_truth, class_labels, ratio, row_weights

__all__ = [
    "Accuracy", "BinaryAccuracy", "CategoricalAccuracy", "TopKAccuracy", "Precision", "Recall", "F1Score",
    "LogLoss",
]

_AVERAGES = ("binary", "micro", "macro", "weighted")


def _xp(array):
    return backend_module.get_for(array).xp


def _weighted_sum(values, weights, xp):
    """``Σ_i w_i Σ_j values[i, j]`` (``values`` of shape (n,) or (n, m)), and
    the total weight it stands for: ``Σ w`` times the columns."""
    columns = values.shape[1] if values.ndim == 2 else 1
    if weights is None:
        return values.sum(), values.size
    rows = values.reshape(len(values), -1).sum(axis=1) if values.ndim == 2 else values
    return (rows * weights).sum(), weights.sum() * columns


class _HitRate(Metric):
    """The weighted fraction of right answers: subclasses say which answers
    of a batch are right (:meth:`hits`)."""

    reads_labels = True

    device_arrays = True

    def __init__(self, name: str | None = None):
        super().__init__(name)
        self.add_state("correct", 0.0)
        self.add_state("total", 0.0)

    def hits(self, y_true, y_pred, xp):
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = as_rows(y_pred)
        xp = _xp(y_pred)
        weights = row_weights(sample_weight, len(y_pred), xp)
        correct, total = _weighted_sum(self.hits(y_true, y_pred, xp), weights, xp)
        self.accumulate("correct", correct)
        self.accumulate("total", total)

    def result(self):
        return ratio(self.correct, self.total)


class Accuracy(_HitRate):
    """The fraction of right answers: the argmax on a softmax output
    (categorical), each unit ``p > threshold`` on a sigmoid output (binary,
    element by element, as Keras's ``binary_accuracy``: on several units
    this is not scikit-learn's subset accuracy).

    Parameters
    ----------
    threshold : float, default 0.5
        On a sigmoid output, a unit says "positive" when its value is above
        this, in [0, 1].
    name : str, optional
        The key in the logs (``"accuracy"`` by default).
    """

    name = "accuracy"
    activations = ("softmax", "sigmoid")
    zero_one_targets = True

    def __init__(self, threshold: float = 0.5, name: str | None = None):
        super().__init__(name)
        self.threshold = check_number(threshold, f"{type(self).__name__}: threshold", 0.0, 1.0)

    def hits(self, y_true, y_pred, xp):
        if self.kind(y_pred) == "categorical":
            return y_pred.argmax(axis=1) == class_labels(y_true, y_pred.shape[1], xp)
        return (y_pred > self.threshold) == binary_truth(self, y_true, xp)

    def get_config(self):
        return {"name": self.name, "threshold": self.threshold}


class BinaryAccuracy(Accuracy):
    """Each unit of a sigmoid output right or wrong (``p > threshold``).

    Parameters
    ----------
    threshold : float, default 0.5
        On a sigmoid output, a unit says "positive" when its value is above
        this, in [0, 1].
    name : str, optional
        The key in the logs (``"binary_accuracy"`` by default).
    """

    name = "binary_accuracy"
    activations = ("sigmoid",)

    def kind(self, y_pred):
        return "binary"


class CategoricalAccuracy(Accuracy):
    """The argmax of a softmax output against the label.

    Parameters
    ----------
    threshold : float, default 0.5
        Unused on the softmax outputs this metric reads; kept for the same
        arguments as :class:`Accuracy`.
    name : str, optional
        The key in the logs (``"categorical_accuracy"`` by default).
    """

    name = "categorical_accuracy"
    activations = ("softmax",)

    def kind(self, y_pred):
        return "categorical"


class TopKAccuracy(_HitRate):
    """Whether the label is among the ``k`` highest scores of a softmax output
    (Keras's ``top_k_categorical_accuracy``; scikit-learn's ``top_k_accuracy_score``,
    whose rule for ties it follows: of equal scores, the higher class index ranks first).

    Parameters
    ----------
    k : int, default 5
        How many of the highest scores count as right, >= 1.
    name : str, optional
        The key in the logs (``"top_k_accuracy"`` by default).
    """

    name = "top_k_accuracy"
    activations = ("softmax",)

    def __init__(self, k: int = 5, name: str | None = None):
        super().__init__(name)
        self.k = check_int(k, "TopKAccuracy: k")

    def hits(self, y_true, y_pred, xp):
        # The label's rank: the classes scored above it, and those tied with it
        # at a higher index (scikit-learn's stable sort, read from the top).
        labels = class_labels(y_true, y_pred.shape[1], xp)
        truth = y_pred[xp.arange(len(y_pred)), labels][:, None]
        tied_after = (y_pred == truth) & (xp.arange(y_pred.shape[1])[None, :] > labels[:, None])
        return (y_pred > truth).sum(axis=1) + tied_after.sum(axis=1) < self.k

    def get_config(self):
        return {"name": self.name, "k": self.k}


class _Confusion(Metric):
    """Per class (softmax) or per unit (sigmoid): the weighted counts of true
    positives, predicted positives and actual positives, and of the rows.

    One sigmoid unit is binary by default (the positive class's value); given
    ``average="macro"``, ``"micro"`` or ``"weighted"`` it is read as
    scikit-learn reads 0/1 labels: two classes, 0 and 1, whose counts follow
    from the unit's and the rows'."""

    reads_labels = True
    zero_one_targets = True

    activations = ("softmax", "sigmoid")
    device_arrays = True

    def __init__(self, average: str | None = None, threshold: float = 0.5, name: str | None = None):
        super().__init__(name)
        what = type(self).__name__
        if average is not None and average not in _AVERAGES:
            raise GraphError(f"{what}: average must be one of {_AVERAGES} or None (binary for one sigmoid "
                             f"unit, macro otherwise), got {average!r}")
        self.average = average
        self.threshold = check_number(threshold, f"{what}: threshold", 0.0, 1.0)
        self.add_state("true_positives", 0.0)
        self.add_state("predicted", 0.0)
        self.add_state("actual", 0.0)
        self.add_state("rows", 0.0)
        self.add_state("categorical_batches", 0)  # a state, so that a merged metric knows it too

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = as_rows(y_pred)
        xp = _xp(y_pred)
        units = y_pred.shape[1]
        weights = row_weights(sample_weight, len(y_pred), xp)
        if self.kind(y_pred) == "categorical":
            self.accumulate("categorical_batches", 1)
            predicted = y_pred.argmax(axis=1)
            labels = class_labels(y_true, units, xp)
            hit = predicted == labels
            if weights is None:
                counts = (xp.bincount(labels[hit], minlength=units), xp.bincount(predicted, minlength=units),
                          xp.bincount(labels, minlength=units))
            else:
                counts = (xp.bincount(labels, weights=weights * hit, minlength=units),
                          xp.bincount(predicted, weights=weights, minlength=units),
                          xp.bincount(labels, weights=weights, minlength=units))
        else:
            said, true = y_pred > self.threshold, binary_truth(self, y_true, xp)
            w = 1.0 if weights is None else weights[:, None]
            counts = ((said & true) * w).sum(axis=0), (said * w).sum(axis=0), (true * w).sum(axis=0)
        self.accumulate("rows", len(y_pred) if weights is None else weights.sum())
        for name, value in zip(("true_positives", "predicted", "actual"), counts):
            self.accumulate(name, value)

    def _averaged(self, numerator, denominator) -> float:
        """``numerator / denominator`` per class (0 where it is 0/0), averaged."""
        tp, predicted, actual = (np.atleast_1d(backend_module.host(v)).astype(np.float64)
                                 for v in (self.true_positives, self.predicted, self.actual))
        categorical = self.categorical_batches > 0
        average = self.average or ("binary" if len(tp) == 1 and not categorical else "macro")
        if average != "binary" and len(tp) == 1 and not categorical:  # one sigmoid unit: classes 0 and 1
            rows = float(backend_module.host(self.rows))
            tp = np.array([rows - predicted[0] - actual[0] + tp[0], tp[0]])
            predicted, actual = np.array([rows - predicted[0], predicted[0]]), np.array([rows - actual[0], actual[0]])
            categorical = True
        top, bottom = numerator(tp, predicted, actual), denominator(tp, predicted, actual)
        if average == "binary":
            if len(tp) != 1:
                raise GraphError(f"metric {self.name!r}: average='binary' needs one sigmoid unit, found "
                                 f"{len(tp)} classes; use 'macro', 'micro' or 'weighted'")
            return float(top[0] / bottom[0]) if bottom[0] else 0.0
        if average == "micro":
            total = bottom.sum()
            return float(top.sum() / total) if total else 0.0
        per_class = np.divide(top, bottom, out=np.zeros_like(top), where=bottom > 0)
        if average == "weighted":
            return float((per_class * actual).sum() / actual.sum()) if actual.sum() else 0.0
        seen = (actual > 0) | (predicted > 0) if categorical else np.ones(len(tp), bool)
        return float(per_class[seen].mean()) if seen.any() else 0.0

    def get_config(self):
        return {"name": self.name, "average": self.average, "threshold": self.threshold}


class Precision(_Confusion):
    """``tp / (tp + fp)``: binary on one sigmoid unit, else averaged over
    classes (``average``: ``"macro"`` by default, ``"micro"``, ``"weighted"``),
    as scikit-learn's ``precision_score``; 0 where nothing was predicted.
    Given one of those averages, one sigmoid unit is averaged over its two
    classes, 0 and 1, as scikit-learn averages 0/1 labels.

    Parameters
    ----------
    average : {"binary", "micro", "macro", "weighted"}, optional
        How the classes' values are combined; None (the default): ``"binary"``
        on one sigmoid unit, ``"macro"`` otherwise.
    threshold : float, default 0.5
        On a sigmoid output, a unit says "positive" when its value is above
        this, in [0, 1].
    name : str, optional
        The key in the logs (``"precision"`` by default).
    """

    name = "precision"

    def result(self):
        return self._averaged(lambda tp, p, a: tp, lambda tp, p, a: p)


class Recall(_Confusion):
    """``tp / (tp + fn)``, averaged as :class:`Precision` (scikit-learn's ``recall_score``).

    Parameters
    ----------
    average : {"binary", "micro", "macro", "weighted"}, optional
        How the classes' values are combined; None (the default): ``"binary"``
        on one sigmoid unit, ``"macro"`` otherwise.
    threshold : float, default 0.5
        On a sigmoid output, a unit says "positive" when its value is above
        this, in [0, 1].
    name : str, optional
        The key in the logs (``"recall"`` by default).
    """

    name = "recall"

    def result(self):
        return self._averaged(lambda tp, p, a: tp, lambda tp, p, a: a)


class F1Score(_Confusion):
    """``2 tp / (2 tp + fp + fn)``, averaged as :class:`Precision`
    (scikit-learn's ``f1_score``).

    Parameters
    ----------
    average : {"binary", "micro", "macro", "weighted"}, optional
        How the classes' values are combined; None (the default): ``"binary"``
        on one sigmoid unit, ``"macro"`` otherwise.
    threshold : float, default 0.5
        On a sigmoid output, a unit says "positive" when its value is above
        this, in [0, 1].
    name : str, optional
        The key in the logs (``"f1"`` by default).
    """

    name = "f1"

    def result(self):
        return self._averaged(lambda tp, p, a: 2 * tp, lambda tp, p, a: p + a)


class LogLoss(Metric):
    """The mean cross-entropy of the probabilities, clipped to
    ``[eps, 1 - eps]`` of their dtype as scikit-learn's ``log_loss`` does;
    on a sigmoid output of several units, the mean over every unit.

    Parameters
    ----------
    name : str, optional
        The key in the logs (``"log_loss"`` by default).
    """

    reads_labels = True

    name = "log_loss"
    activations = ("softmax", "sigmoid")
    device_arrays = True

    def __init__(self, name: str | None = None):
        super().__init__(name)
        self.add_state("total", 0.0)
        self.add_state("weight", 0.0)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = as_rows(y_pred)
        xp = _xp(y_pred)
        n = len(y_pred)
        weights = row_weights(sample_weight, n, xp)
        eps = float(np.finfo(y_pred.dtype).eps)
        if self.kind(y_pred) == "categorical":
            if y_true.ndim == 1 or y_true.shape[1] != y_pred.shape[1]:
                picked = y_pred[xp.arange(n), class_labels(y_true, y_pred.shape[1], xp)]
                losses = -xp.log(xp.clip(picked, eps, 1 - eps))
            else:
                losses = -(y_true * xp.log(xp.clip(y_pred, eps, 1 - eps))).sum(axis=1)
        else:
            y = as_rows(y_true)
            p, q = xp.clip(y_pred, eps, 1 - eps), xp.clip(1 - y_pred, eps, 1 - eps)
            losses = -(y * xp.log(p) + (1 - y) * xp.log(q))
        total, weight = _weighted_sum(losses, weights, xp)
        self.accumulate("total", total)
        self.accumulate("weight", weight)

    def result(self):
        return ratio(self.total, self.weight)
