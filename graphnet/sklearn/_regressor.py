"""GraphNetRegressor: a graphnet network as a scikit-learn regressor."""

from __future__ import annotations

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils.validation import check_is_fitted

from ..graph import Graph
from ._base import GraphNetEstimator

__all__ = ["GraphNetRegressor"]


class GraphNetRegressor(RegressorMixin, GraphNetEstimator):
    """A graphnet network as a scikit-learn regressor (one or several targets).

    Parameters follow :class:`sklearn.neural_network.MLPRegressor` where the
    concept is the same, and are those of :class:`GraphNetClassifier`; with
    ``early_stopping`` the validation score is R². The default network ends
    in a linear output trained on half the squared error summed over targets
    (averaged over samples), whose gradient is MLPRegressor's.

    ``graph``: ``n_outputs`` is the number of target columns. A graph may have
    several outputs; the columns of ``y`` are split over them in insertion
    order and the predictions put back side by side. Any activation and loss
    may be used.

    Unlike MLPRegressor, a column-vector ``y`` of shape (n_samples, 1) is
    taken as one target of a multi-output problem: no warning, and
    predictions keep that shape (the convention of LinearRegression).

    With several targets, ``loss_`` is the objective actually minimised (half
    the squared error summed over targets), which is ``n_targets`` times the
    data term MLPRegressor reports: it reports the mean over targets while
    following the gradient of the sum. Weights and predictions are the same.

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Units of each hidden layer of the default network (ignored with ``graph``).
    activation : str, default="relu"
        Of the hidden layers (ignored with ``graph``): any graphnet activation
        (``relu``, ``tanh``, ``sigmoid``, ``gelu``, ...) or MLPRegressor's
        ``identity``/``logistic``.
    alpha : float, default=1e-4
        L2 penalty: ``alpha / 2 * ||W||² / batch_rows`` over every trainable
        synapse weight (not biases) is added to each batch's loss.
    batch_size : int or "auto", default="auto"
        ``"auto"`` is ``min(200, n_samples)``; larger values are clipped (with a warning).
    learning_rate_init : float, default=1e-3
        The optimizer's ``lr`` when ``optimizer`` is a name or a dict without ``lr``.
    max_iter : int, default=200
        Epochs (passes over the data) of ``fit``; ``partial_fit`` runs one.
    shuffle : bool, default=True
        Reshuffle the samples every epoch.
    random_state : int, RandomState instance or None, default=None
        Drives weight initialisation (the default network, or a spec without a
        seed), shuffling and the early-stopping split. The default network
        starts as MLPRegressor's does (the same numbers for the same
        ``random_state``), and computes in float32 when X is float32, else in
        float64, unless ``graph`` fixes its own dtype.
    tol : float, default=1e-4
        Improvement below which an epoch counts as no improvement.
    verbose : bool, default=False
        Print a line per epoch (loss, and validation R² with early stopping).
    warm_start : bool, default=False
        ``fit`` continues from the current weights (with a fresh optimizer).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data, stop when its R² has not
        improved by ``tol`` for ``n_iter_no_change`` epochs, and end with the
        best epoch's weights (a diverging fit ends as :class:`GraphNetClassifier` says).
    validation_fraction : float, default=0.1
        The share of the data held out with ``early_stopping``.
    n_iter_no_change : int, default=10
        Epochs without improvement that end training (after one more, as in MLPRegressor).
    optimizer : str, dict or graphnet Optimizer, default="adam"
        As for :class:`GraphNetClassifier`.
    graph : callable, dict, Graph or None, default=None
        Replaces the default network: ``graph(n_features, n_outputs) -> Graph``,
        a spec dict for :meth:`graphnet.Graph.from_dict`, or a Graph (copied);
        see above for its outputs.

    Attributes
    ----------
    graph_, n_features_in_, feature_names_in_, n_outputs_, loss_, loss_curve_,
    best_loss_, validation_scores_, best_validation_score_, n_iter_, t_
        As for :class:`GraphNetClassifier`.

    Examples
    --------
    >>> import numpy as np
    >>> from graphnet.sklearn import GraphNetRegressor
    >>> X = np.linspace(-1, 1, 200).reshape(-1, 1)
    >>> reg = GraphNetRegressor((32,), max_iter=500, learning_rate_init=0.01,
    ...                         random_state=0).fit(X, X.ravel() ** 2)
    >>> reg.score(X, X.ravel() ** 2) > 0.9
    True
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over ``(X, y)``, continuing from the current weights and optimizer state.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,), optional
            Each sample's weight in the loss (as in :meth:`fit`).

        Returns
        -------
        self

        Raises
        ------
        ValueError
            When ``y`` has another number of targets than before, or as for :meth:`fit`.
        """
        return self._fit(X, y, incremental=True, sample_weight=sample_weight)

    _y_numeric = True

    def _checked_y(self, y):
        return y

    def _describe_target(self, y, incremental: bool, classes) -> dict:
        return {"_y_1d": y.ndim == 1, "_n_targets": 1 if y.ndim == 1 else y.shape[1]}

    def _n_outputs(self, target: dict) -> int:
        return target["_n_targets"]

    def _check_target(self, y, incremental: bool) -> None:
        columns = 1 if y.ndim == 1 else y.shape[1]
        if columns != self._n_targets:
            raise ValueError(
                f"y has {columns} target column(s), but the regressor was fitted on "
                f"{self._n_targets}"
            )

    def _targets_for_graph(self, y):
        return np.asarray(y, dtype=self.graph_.dtype).reshape(len(y), -1)

    def _default_output(self, target: dict, n_outputs: int):
        # mse averages over all elements; MLPRegressor's gradient is that of half
        # the squared error summed over targets: a loss weight of n_outputs / 2.
        return "linear", "mse", n_outputs / 2

    def _check_outputs(self, graph: Graph, target: dict, n_outputs: int) -> None:
        sizes = {name: graph.nodes[name].size for name in graph.outputs}
        if sum(sizes.values()) != n_outputs:
            shown = ", ".join(f"{n!r} ({s})" for n, s in sizes.items())
            raise ValueError(
                f"graph {graph.name!r}: its outputs {shown} have {sum(sizes.values())} "
                f"units in all, but y has {n_outputs} target column(s). The columns of y "
                "are split over the outputs in insertion order"
            )

    def _stratify_split(self) -> bool:
        return False

    def _score_validated(self, X, y, sample_weight=None) -> float:
        predicted = self._predict_validated(X)
        if not np.isfinite(predicted).all():  # diverged: NaN, as MLPRegressor scores it
            return float("nan")
        return float(r2_score(y, predicted, sample_weight=sample_weight))

    def _predict_validated(self, X):
        out = self._raw_outputs(X)
        return out[:, 0] if self._y_1d else out

    def predict(self, X):
        """Predicted targets.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,), or (n_samples, n_targets) when ``y`` was 2-D

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before ``fit``.
        ValueError
            When X has another number of features than at ``fit``, or NaN/inf.
        """
        check_is_fitted(self)
        return self._predict_validated(self._validate_X(X))
