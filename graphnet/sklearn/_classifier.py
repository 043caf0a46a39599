"""GraphNetClassifier: a graphnet network as a scikit-learn classifier."""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.metrics import accuracy_score
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d

from ..graph import Graph
from ._base import GraphNetEstimator

__all__ = ["GraphNetClassifier"]


class GraphNetClassifier(ClassifierMixin, GraphNetEstimator):
    """A graphnet network as a scikit-learn classifier (binary, multiclass, multilabel).

    Parameters follow :class:`sklearn.neural_network.MLPClassifier` where the
    concept is the same; training follows it too (mini-batches of
    ``min(200, n_samples)`` by default, Adam, an L2 penalty on weights,
    stopping when the loss stops improving).

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Units of each hidden layer of the default network (ignored with ``graph``).
    activation : str, default="relu"
        Of the hidden layers (ignored with ``graph``): any graphnet activation
        (``relu``, ``tanh``, ``sigmoid``, ``gelu``, ...) or MLPClassifier's
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
        starts as MLPClassifier's does: weights and biases uniform on
        ``±sqrt(6 / (fan_in + fan_out))`` (``±sqrt(2 / ...)`` for ``logistic``),
        the same numbers for the same ``random_state``. The network computes in
        float32 when X is float32, else in float64 (as MLPClassifier), unless
        ``graph`` fixes its own dtype.
    tol : float, default=1e-4
        Improvement below which an epoch counts as no improvement.
    verbose : bool, default=False
        Print a line per epoch (loss, and validation accuracy with early stopping).
    warm_start : bool, default=False
        ``fit`` continues from the current weights (with a fresh optimizer).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data (stratified), stop when its
        accuracy has not improved by ``tol`` for ``n_iter_no_change`` epochs,
        and end with the best epoch's weights. A diverging fit (predictions
        that overflow, or a step refused as non-finite) scores NaN, ends there
        with the best epoch's weights and a ``ConvergenceWarning``.
    validation_fraction : float, default=0.1
        The share of the data held out with ``early_stopping``.
    n_iter_no_change : int, default=10
        Epochs without improvement that end training (after one more, as in MLPClassifier).
    optimizer : str, dict or graphnet Optimizer, default="adam"
        ``sgd``, ``momentum``, ``rmsprop``, ``adam``, ``adamw``, a config dict
        such as ``{"name": "sgd", "momentum": 0.9}``, or an instance (copied;
        its own ``lr`` wins over ``learning_rate_init``).
    graph : callable, dict, Graph or None, default=None
        Replaces the default network: ``graph(n_features, n_outputs) -> Graph``,
        a spec dict for :meth:`graphnet.Graph.from_dict`, or a Graph (copied).
        Its one output must be ``softmax`` + ``categorical_crossentropy`` with a
        unit per class (binary problems may use 2 units), or ``sigmoid`` +
        ``binary_crossentropy`` with 1 unit (binary) or one per label
        (multilabel). ``n_outputs`` is 1 for binary targets, else the number of
        classes or labels. Inputs take the columns of X in insertion order. A
        spec without ``seed`` or ``dtype`` gets them as the default network
        does; a callable or a Graph keeps its own.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The labels (``arange(n_labels)`` for multilabel targets).
    graph_ : graphnet.Graph
        The trained network; every Graph method works on it (``predict`` with
        named inputs, ``get_weights``, ``to_dict``, ...).
    n_features_in_ : int
    feature_names_in_ : ndarray of shape ``(n_features_in_,)``
        Only when X had string column names.
    n_outputs_ : int
        Output units (1 for a binary problem on a sigmoid output).
    loss_ : float
        Mean training loss of the last epoch, L2 penalty included.
    loss_curve_ : list of float
        ``loss_`` of every epoch.
    best_loss_ : float or None
        Lowest ``loss_`` (``None`` with early stopping).
    validation_scores_ : list of float or None
        Validation accuracy per epoch with early stopping.
    best_validation_score_ : float or None
    n_iter_ : int
        Epochs run by the last ``fit`` (``partial_fit`` adds one per call).
    t_ : int
        Training samples seen, in all.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from graphnet.sklearn import GraphNetClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = GraphNetClassifier((16,), max_iter=300, tol=1e-3, learning_rate_init=0.01,
    ...                          random_state=0).fit(X, y)
    >>> clf.score(X, y) > 0.9
    True
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over ``(X, y)``, continuing from the current weights and optimizer state.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
        classes : array-like of shape (n_classes,), optional
            Every label of the whole problem; required on the first call
            (not for multilabel targets), as ``y`` may not show them all.
        sample_weight : array-like of shape (n_samples,), optional
            Each sample's weight in the loss (as in :meth:`fit`).

        Returns
        -------
        self

        Raises
        ------
        ValueError
            When ``classes`` is missing on the first call, when ``y`` has labels
            outside ``classes_``, or as for :meth:`fit`.
        """
        if classes is not None and hasattr(self, "classes_"):
            given = np.unique(np.asarray(classes))
            if not np.array_equal(given, self.classes_):
                raise ValueError(
                    f"classes={given.tolist()} differs from classes_ "
                    f"{self.classes_.tolist()} of the earlier fit; pass the same classes "
                    "(or none) to later calls of partial_fit"
                )
        return self._fit(X, y, incremental=True, classes=classes, sample_weight=sample_weight)

    def _checked_y(self, y):
        """Checked labels: a column vector made 1-D, as scikit-learn does (with its warning)."""
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        return y

    def _describe_target(self, y, incremental: bool, classes) -> dict:
        """``classes_`` and the kind of target, as attributes to set once the graph is built."""
        target = type_of_target(y)
        if target == "multiclass-multioutput":
            raise ValueError(
                "GraphNetClassifier does not support multiclass-multioutput targets "
                "(several columns of non-binary labels), as MLPClassifier does not; "
                "use a multilabel indicator matrix or one classifier per column"
            )
        if target == "multilabel-indicator":
            return {"classes_": np.arange(y.shape[1]), "_multilabel": True, "_label_dtype": y.dtype}
        if incremental and classes is None:
            raise ValueError(
                "classes must be passed on the first call to partial_fit "
                "(every label of the problem, e.g. np.unique(y_all))"
            )
        labels = np.unique(y if classes is None else np.asarray(classes))
        if len(labels) < 2:
            raise ValueError(
                f"GraphNetClassifier needs at least two classes, but got only one class: "
                f"{labels.tolist()}"
            )
        described = {"classes_": labels, "_multilabel": False, "_label_dtype": labels.dtype}
        self._unknown_labels(y, labels)
        return described

    @staticmethod
    def _unknown_labels(y, labels) -> None:
        unknown = np.setdiff1d(np.unique(y), labels)
        if len(unknown):
            raise ValueError(
                f"y has classes {unknown.tolist()} that are not in classes "
                f"{labels.tolist()}"
            )

    def _check_target(self, y, incremental: bool) -> None:
        """``y`` for a fitted classifier (``partial_fit``, or ``fit`` with ``warm_start``)."""
        multilabel = type_of_target(y) == "multilabel-indicator"
        if multilabel != self._multilabel:
            was = "multilabel" if self._multilabel else "single-label"
            raise ValueError(
                f"y is {type_of_target(y)} but the classifier was fitted on {was} targets; "
                "fit it again with warm_start=False to change the kind of target"
            )
        if multilabel:
            if y.shape[1] != len(self.classes_):
                raise ValueError(
                    f"y has {y.shape[1]} labels, but the classifier was fitted on "
                    f"{len(self.classes_)}"
                )
            return
        if not incremental and set(np.unique(y)) != set(self.classes_):
            raise ValueError(
                "warm_start needs y to have the same classes as the previous fit: "
                f"had {self.classes_.tolist()}, y has {np.unique(y).tolist()}"
            )
        self._unknown_labels(y, self.classes_)

    def _n_outputs(self, target: dict) -> int:
        n_classes = len(target["classes_"])
        return 1 if n_classes == 2 and not target["_multilabel"] else n_classes

    def _output(self):
        return self.graph_.nodes[self.graph_.outputs[0]]

    def _targets_for_graph(self, y):
        if self._multilabel:
            return np.asarray(y, dtype=self.graph_.dtype)
        index = np.searchsorted(self.classes_, y)
        if self._output().loss.name == "categorical_crossentropy":
            return index  # integer labels, which the loss takes as they are
        return index.astype(self.graph_.dtype).reshape(-1, 1)

    def _default_output(self, target: dict, n_outputs: int):
        if target["_multilabel"]:
            # binary_crossentropy averages over labels, MLPClassifier's log loss
            # sums them: a loss weight of n_outputs gives the same loss and gradient.
            return "sigmoid", "binary_crossentropy", float(n_outputs)
        if n_outputs == 1:
            return "sigmoid", "binary_crossentropy", 1.0
        return "softmax", "categorical_crossentropy", 1.0

    def _check_outputs(self, graph: Graph, target: dict, n_outputs: int) -> None:
        outputs = graph.outputs
        if len(outputs) != 1:
            raise ValueError(
                f"graph {graph.name!r}: a classifier needs exactly one output, "
                f"got {len(outputs)}: {outputs}"
            )
        node = graph.nodes[outputs[0]]
        n_classes = len(target["classes_"])
        if target["_multilabel"]:
            ok = node.loss.name == "binary_crossentropy" and node.size == n_classes
            wanted = f"a sigmoid output of {n_classes} units with binary_crossentropy"
        elif n_classes == 2:
            ok = (node.loss.name == "binary_crossentropy" and node.size == 1) or (
                node.loss.name == "categorical_crossentropy" and node.size == 2
            )
            wanted = (
                "a sigmoid output of 1 unit with binary_crossentropy, or a softmax "
                "output of 2 units with categorical_crossentropy"
            )
        else:
            ok = node.loss.name == "categorical_crossentropy" and node.size == n_classes
            wanted = f"a softmax output of {n_classes} units with categorical_crossentropy"
        if not ok:
            kind = "multilabel" if target["_multilabel"] else f"{n_classes}-class"
            raise ValueError(
                f"graph {graph.name!r}: output {node.name!r} ({node.activation.name}, "
                f"{node.size} units, loss {node.loss.name}) does not fit a {kind} "
                f"target; it needs {wanted}"
            )

    def _stratify_split(self) -> bool:
        # As MLPClassifier: it stratifies when its binarized targets have one
        # column (two classes), not for several classes or labels.
        return not self._multilabel and len(self.classes_) == 2

    def _score_validated(self, X, y, sample_weight=None) -> float:
        proba = self._proba_validated(X)
        if not np.isfinite(proba).all():  # diverged: argmax over NaN is no prediction
            return float("nan")
        return float(accuracy_score(y, self._labels(proba), sample_weight=sample_weight))

    def _proba_validated(self, X) -> np.ndarray:
        a = self._raw_outputs(X)
        if a.shape[1] == 1 and not self._multilabel:
            return np.hstack([1 - a, a])
        return a

    def _predict_validated(self, X):
        return self._labels(self._proba_validated(X))

    def _labels(self, proba: np.ndarray) -> np.ndarray:
        if self._multilabel:
            return (proba > 0.5).astype(self._label_dtype)
        return self.classes_[np.argmax(proba, axis=1)]

    def predict(self, X):
        """Class labels (a 0/1 indicator matrix for multilabel problems).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_labels)

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before ``fit``.
        ValueError
            When X has another number of features than at ``fit``, or NaN/inf.
        """
        check_is_fitted(self)
        return self._predict_validated(self._validate_X(X))

    def predict_proba(self, X):
        """Probabilities in the order of ``classes_`` (each label's own for multilabel).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Rows sum to 1, except for multilabel problems.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before ``fit``.
        ValueError
            As for :meth:`predict`.
        """
        check_is_fitted(self)
        return self._proba_validated(self._validate_X(X))

    def predict_log_proba(self, X):
        """``log(predict_proba(X))``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            ``-inf`` where a probability is 0.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before ``fit``.
        ValueError
            As for :meth:`predict`.
        """
        proba = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(proba, out=proba)
