"""What MLPClassifier and MLPRegressor do that the estimators copy: their
initial weights, their L2 penalty (an engine penalty) and their stopping rule
and bookkeeping (a callback on the engine's epoch loop)."""

from __future__ import annotations

import logging
import math

import numpy as np

from ..callbacks import Callback
from ..graph import Graph
from .._parameters import WEIGHT, ParameterStore, bias_key, weight_key

__all__ = ["MLPPenalty", "MLPStopping", "WeightedMLPStopping", "chain_weights", "initial_weights"]

logger = logging.getLogger("graphnet.sklearn")


def initial_weights(sizes: list[int], factor: float, random_state) -> list[tuple[np.ndarray, np.ndarray]]:
    """A perceptron's initial ``(weight, bias)`` per layer, drawn as
    MLPClassifier and MLPRegressor draw theirs.

    Weights and biases are uniform on ``±sqrt(factor / (fan_in + fan_out))``,
    weight then bias, layer by layer, from ``random_state``: for the same
    ``random_state`` the same numbers as theirs, so the estimators start where
    the models they are compared with start. (graphnet's own defaults suit
    Adam on a Graph; with plain SGD their small regression head learns more
    slowly than MLPRegressor's start.)

    Parameters
    ----------
    sizes : list of int
        Units per layer, input first: ``[n_features, *hidden, n_outputs]``.
    factor : float
        6, or 2 for a logistic hidden activation (scikit-learn's choice).
    random_state : numpy.random.RandomState

    Returns
    -------
    list of (ndarray of shape (fan_in, fan_out), ndarray of shape (fan_out,))
        In float64, as drawn.
    """
    start = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = np.sqrt(factor / (fan_in + fan_out))
        weight = random_state.uniform(-bound, bound, (fan_in, fan_out))
        start.append((weight, random_state.uniform(-bound, bound, fan_out)))
    return start


class MLPPenalty:
    """MLPClassifier's L2 penalty as an engine :class:`~graphnet.trainer.Penalty`:
    ``alpha / 2 * ||W||² / n`` over every trainable synapse weight (not
    biases), ``n`` the batch's rows (or its sum of sample weights), so
    ``alpha * W / n`` is added to the weight gradients before the optimizer runs."""

    def __init__(self, alpha: float):
        self.alpha = float(alpha)
        self._store: ParameterStore | None = None
        self._spans: list[slice] = []

    def __call__(self, store: ParameterStore, rows: int) -> float:
        if store is not self._store:  # the plan was recompiled
            self._store, self._spans = store, store.spans(WEIGHT)
        scale = self.alpha / rows
        squares = 0.0
        for span in self._spans:
            weights = store.values[span]
            squares += float(np.dot(weights, weights))
            store.grads[span] += scale * weights
        return 0.5 * scale * squares


class MLPStopping(Callback):
    """MLPClassifier's bookkeeping (``n_iter_``, ``loss_curve_``, ...) and its
    stopping rule: stop after more than ``n_iter_no_change`` epochs without an
    improvement of ``tol`` in the training loss (or, with early stopping, the
    validation score), ending with the best validation epoch's weights."""

    def __init__(self, estimator, rows: int, incremental: bool):
        super().__init__()
        self.estimator, self.rows, self.incremental = estimator, rows, incremental
        # Carried on from the estimator's earlier fits, as MLP* carries them (a fresh fit starts them).
        self.best_weights = getattr(estimator, "_best_weights", None)
        self.no_improvement = getattr(estimator, "_no_improvement_count", 0)
        self.stopped = False
        self.diverged: str | None = None  # why training diverged, when it did

    def on_epoch_end(self, epoch, logs=None):
        est = self.estimator
        est.n_iter_ += 1
        est.t_ += self.rows
        est.loss_ = logs["loss"]
        est.loss_curve_.append(est.loss_)
        if "val_score" in logs:
            score = logs["val_score"]
            est.validation_scores_.append(score)
            if math.isnan(score):  # the predictions overflowed: nothing later can score
                self.diverged = f"epoch {est.n_iter_}'s validation score is NaN"
                self.graph.stop_training = True
                return
            improved = score >= est.best_validation_score_ + est.tol
            if score > est.best_validation_score_:
                est.best_validation_score_ = score
                self.best_weights = est._best_weights = self.graph.get_weights()
        else:
            improved = est.loss_ <= est.best_loss_ - est.tol
            est.best_loss_ = min(est.best_loss_, est.loss_)
        self.no_improvement = est._no_improvement_count = 0 if improved else self.no_improvement + 1
        if self.no_improvement > est.n_iter_no_change and not self.incremental:
            what = "Validation score" if "val_score" in logs else "Training loss"
            logger.info(
                "%s: %s did not improve more than tol=%g for %d consecutive epochs; stopping",
                type(est).__name__, what, est.tol, est.n_iter_no_change,
            )
            self.graph.stop_training = True
            self.stopped = True

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.graph.set_weights(self.best_weights)
            # MLP* restores by making its best coefficients the live ones, so a
            # warm-started fit trains them in place: unless it finds a better
            # epoch, it ends on the weights it trained to, and so does this.
            self.estimator._best_weights = None


class WeightedMLPStopping(MLPStopping):
    """:class:`MLPStopping` for a fit with ``sample_weight``: the epoch's loss
    as MLP* reports it, each batch's weighted mean loss weighted by the
    batch's row count (``fit`` weights a batch by its sum of weights)."""

    def __init__(self, estimator, rows: int, incremental: bool, batch_size: int):
        super().__init__(estimator, rows, incremental)
        self.batch_size = batch_size
        self._total = self._seen = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._total = self._seen = 0

    def on_batch_end(self, batch, logs=None):
        count = min(self.batch_size, self.rows - self._seen)
        self._total += logs["loss"] * count
        self._seen += count

    def on_epoch_end(self, epoch, logs=None):
        if not math.isnan(logs["loss"]):  # NaN: an epoch whose step was refused, recorded as such
            logs = {**logs, "loss": self._total / self.rows}
        super().on_epoch_end(epoch, logs)


def chain_weights(graph: Graph, layers: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """``set_weights``'s dict for a chain of nodes (in insertion order) from
    its layers' ``(weight, bias)``."""
    names = list(graph.nodes)
    weights = {}
    for src, dst, (weight, bias) in zip(names[:-1], names[1:], layers):
        weights[weight_key(src, dst)] = weight
        weights[bias_key(dst)] = bias
    return weights
