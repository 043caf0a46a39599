"""Regression metrics: mean absolute and squared error, their root, R².

Each is scikit-learn's with ``multioutput="uniform_average"``: computed per
unit, then averaged over units (for mae and mse the same as the mean over
every element). On a softmax output, integer labels count as one-hot rows.
"""

from __future__ import annotations

import numpy as np

from .. import backend as backend_module
from ..errors import GraphError
from ._metric import Metric, as_rows, ratio, row_weights

__all__ = ["MeanAbsoluteError", "MeanSquaredError", "RootMeanSquaredError", "R2Score"]


def _xp(array):
    return backend_module.get_for(array).xp


def _dense(y, a, xp):
    """Integer labels as one-hot rows, so errors work on softmax outputs too."""
    if y.ndim == 1 and a.shape[1] > 1:
        onehot = xp.zeros_like(a)
        onehot[xp.arange(len(y)), y] = 1
        return onehot
    return as_rows(y)


def _wide(a):
    """Predictions in float64, as scikit-learn computes errors: a float32
    graph's squared errors (or their sums) overflow where the mean does not."""
    return a.astype("float64", copy=False)


class _ElementMean(Metric):
    """The weighted mean of an error over every element."""

    reads_labels = True

    device_arrays = True

    def __init__(self, name: str | None = None):
        super().__init__(name)
        self.add_state("total", 0.0)
        self.add_state("weight", 0.0)

    def error(self, diff):
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = _wide(as_rows(y_pred))
        xp = _xp(y_pred)
        errors = self.error(y_pred - _dense(y_true, y_pred, xp))
        weights = row_weights(sample_weight, len(y_pred), xp)
        if weights is None:
            self.accumulate("total", errors.sum())
            self.accumulate("weight", errors.size)
        else:
            self.accumulate("total", (errors.sum(axis=1) * weights).sum())
            self.accumulate("weight", weights.sum() * errors.shape[1])

    def result(self):
        return ratio(self.total, self.weight)


class MeanAbsoluteError(_ElementMean):
    """``mean |y_pred - y_true|`` (scikit-learn's ``mean_absolute_error``).

    Parameters
    ----------
    name : str, optional
        The key in the logs (``"mae"`` by default).
    """

    name = "mae"

    def error(self, diff):
        return abs(diff)


class MeanSquaredError(_ElementMean):
    """``mean (y_pred - y_true)²`` (scikit-learn's ``mean_squared_error``).

    Parameters
    ----------
    name : str, optional
        The key in the logs (``"mse"`` by default).
    """

    name = "mse"

    def error(self, diff):
        return diff * diff


class RootMeanSquaredError(Metric):
    """The root of each unit's mean squared error, averaged over units
    (scikit-learn's ``root_mean_squared_error``).

    Parameters
    ----------
    name : str, optional
        The key in the logs (``"rmse"`` by default).
    """

    reads_labels = True

    name = "rmse"
    device_arrays = True

    def __init__(self, name: str | None = None):
        super().__init__(name)
        self.add_state("squares", 0.0)  # per unit
        self.add_state("weight", 0.0)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = _wide(as_rows(y_pred))
        xp = _xp(y_pred)
        diff = y_pred - _dense(y_true, y_pred, xp)
        weights = row_weights(sample_weight, len(y_pred), xp)
        if weights is None:
            self.accumulate("squares", (diff * diff).sum(axis=0))
            self.accumulate("weight", len(diff))
        else:
            self.accumulate("squares", (diff * diff * weights[:, None]).sum(axis=0))
            self.accumulate("weight", weights.sum())

    def result(self):
        if isinstance(self.squares, float) or (isinstance(self.weight, (int, float)) and not self.weight):
            return 0.0
        return _xp(self.squares).sqrt(self.squares / self.weight).mean()


class R2Score(Metric):
    """The coefficient of determination ``1 - SS_res / SS_tot`` per unit,
    averaged over units (scikit-learn's ``r2_score``: 1 for a perfect fit of
    a constant target, 0 for an imperfect one).

    The spread of the targets is kept as Chan's parallel update of count,
    mean and sum of squared deviations, so merging chunks loses no precision
    to targets far from zero. A unit whose squared deviations exceed
    float64's range scores NaN, as in scikit-learn.

    Parameters
    ----------
    name : str, optional
        The key in the logs (``"r2"`` by default).
    """

    reads_labels = True

    name = "r2"

    def __init__(self, name: str | None = None):
        super().__init__(name)
        self.add_state("weight", 0.0)
        self.add_state("mean", 0.0)  # per unit
        self.add_state("spread", 0.0)  # Σ w (y - mean)², per unit
        self.add_state("residual", 0.0)  # Σ w (y - ŷ)², per unit

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = np.asarray(as_rows(y_pred), dtype=np.float64)
        y = _dense(np.asarray(y_true), y_pred, np).astype(np.float64)
        weights = row_weights(sample_weight, len(y_pred))
        weights = np.ones(len(y_pred)) if weights is None else weights
        total = weights.sum()
        if total <= 0:
            return
        with np.errstate(over="ignore"):  # squares beyond float64 are inf, and R² NaN (see result)
            mean = weights @ y / total
            spread = weights @ ((y - mean) ** 2)
            residual = weights @ ((y - y_pred) ** 2)
        self._combine(total, mean, spread, residual)

    def _combine(self, weight, mean, spread, residual) -> None:
        with np.errstate(over="ignore"):  # sums of squares beyond float64 are inf, and R² NaN (see result)
            together = self.weight + weight
            if not self.weight:  # the first part: nothing to move (a mean beyond 1e154 would square to inf, × 0)
                self.spread, self.mean = self.spread + spread, mean
            else:
                delta = mean - self.mean
                self.spread = self.spread + spread + delta * delta * (self.weight * weight / together)
                self.mean = self.mean + delta * (weight / together)
            self.weight = together
            self.residual = self.residual + residual

    def merge_state(self, others):
        others = [others] if isinstance(others, Metric) else list(others)
        for other in others:
            if not isinstance(other, R2Score):
                raise GraphError(f"R2Score.merge_state: cannot merge a {type(other).__name__}")
            if other.weight > 0:
                self._combine(other.weight, other.mean, other.spread, other.residual)

    def result(self):
        if not self.weight:
            return 0.0
        spread, residual = np.atleast_1d(self.spread), np.atleast_1d(self.residual)
        with np.errstate(invalid="ignore"):  # squares beyond float64: inf / inf, NaN as scikit-learn's
            scores = np.where(spread > 0, 1 - residual / np.where(spread > 0, spread, 1),
                              np.where(residual > 0, 0.0, 1.0))
        return float(scores.mean())
