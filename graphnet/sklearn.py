"""scikit-learn estimators: :class:`GraphNetClassifier` and :class:`GraphNetRegressor`.

They let a graphnet network sit in a ``Pipeline``, a ``GridSearchCV`` or a
``cross_val_score`` on scikit-learn's terms: parameters named as in
``MLPClassifier``/``MLPRegressor`` where the concept is the same, validation
through ``sklearn.utils.validation``, and every check of
``sklearn.utils.estimator_checks`` passing.

By default the network is the multilayer perceptron ``hidden_layer_sizes``
describes, trained the way ``MLPClassifier`` trains it (same batches, same
loss scale, same L2 penalty, same stopping rule). The ``graph`` parameter puts
any graphnet DAG in its place:

* a callable ``graph(n_features, n_outputs) -> Graph``, called at each
  (non-incremental) ``fit``;
* a spec dict as :meth:`graphnet.Graph.from_dict` reads it;
* a :class:`~graphnet.Graph`, used as the starting point.

The estimator trains a private copy (``graph_``); what was passed is never
changed. scikit-learn hands an estimator one 2-D ``X``, so a graph with
several inputs receives the columns of ``X`` split in the inputs' insertion
order (the first input takes the first ``size`` columns, and so on);
likewise the regressor splits the columns of ``y`` over several outputs.

L2 regularisation (``alpha``) is added to the gradient of every trainable
synapse weight (not biases) by :class:`_L2Penalty`, a thin wrapper around the
graph's optimizer, so the engine needs no regulariser of its own.
"""

from __future__ import annotations

import copy
import logging
import numbers
import warnings
from collections.abc import Mapping

import numpy as np

try:
    import scipy.sparse as sp
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets, type_of_target
    from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "graphnet.sklearn needs scikit-learn >= 1.6; install it with "
        "pip install 'graphnet[sklearn]'"
    ) from exc

from . import activations
from . import optimizers as optimizers_module
from .graph import Graph
from .nodes import Input
from .progress import Progress
from .sequential import Dense, Sequential

__all__ = ["GraphNetClassifier", "GraphNetRegressor"]

logger = logging.getLogger(__name__)

#: MLPClassifier's activation names, mapped to graphnet's.
_ACTIVATION_ALIASES = {"identity": "linear", "logistic": "sigmoid"}

#: Rows densified at a time when X is sparse (the engine runs on dense arrays).
_SPARSE_CHUNK = 1024


class _L2Penalty(optimizers_module.Optimizer):
    """The graph's optimizer with MLPClassifier's L2 penalty folded into each step.

    For a batch of ``rows`` rows the penalty is ``alpha / 2 * ||W||² / rows``
    over every trainable synapse weight ``W`` (biases are not penalised), so
    ``alpha * W / rows`` is added to the weight gradients before the wrapped
    optimizer runs. The engine hands an optimizer the flat trainable parameter
    and gradient vectors together with their layout, which names every
    parameter; synapse weights are the keys containing ``->`` (node names never
    do). Only the wrapped optimizer holds state, so the wrapper can be put on
    the graph for one training call and taken off afterwards.

    Parameters
    ----------
    inner : Optimizer
        Does the actual update and keeps the moments.
    alpha : float
        ``>= 0``; 0 turns the penalty off.
    """

    def __init__(self, inner: optimizers_module.Optimizer, alpha: float):
        super().__init__(inner.lr, inner.clipnorm)
        self.name = inner.name  # error messages name the real optimizer
        self.inner = inner
        self.alpha = float(alpha)
        #: Rows of the batch about to be stepped on; set before each step.
        self.rows = 1
        #: The penalty at the weights of the last step (before its update).
        self.value = 0.0
        self._weights: tuple[slice, ...] = ()
        self._bound_layout = None

    def bind(self, layout, dtype) -> None:
        self.inner.bind(layout, dtype)
        if layout == self._bound_layout:
            return
        spans: list[list[int]] = []
        start = 0
        for key, size in layout:
            if "->" in key:
                if spans and spans[-1][1] == start:
                    spans[-1][1] = start + size  # merge neighbouring weights
                else:
                    spans.append([start, start + size])
            start += size
        self._weights = tuple(slice(a, b) for a, b in spans)
        self._bound_layout = layout

    def step(self, params: np.ndarray, grads: np.ndarray) -> np.ndarray:
        self.value = 0.0
        if self.alpha:
            scale = self.alpha / self.rows
            squares = 0.0
            for span in self._weights:
                weights = params[span]
                squares += float(np.dot(weights, weights))
                grads[span] += scale * weights
            self.value = 0.5 * scale * squares
        return self.inner.step(params, grads)

    def get_config(self):
        return {**self.inner.get_config(), "l2": self.alpha}


class _GraphNetEstimator(BaseEstimator):
    """What the classifier and the regressor share: parameters, building the
    graph, the training loop and the stopping rule. Subclasses say how targets
    are encoded and which outputs fit them."""

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        alpha=1e-4,
        batch_size="auto",
        learning_rate_init=1e-3,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        optimizer="adam",
        graph=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.optimizer = optimizer
        self.graph = graph

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # densified a batch at a time
        return tags

    # ------------------------------------------------------------ parameters
    def _check_params(self) -> None:
        """Refuse bad hyperparameters at ``fit`` (scikit-learn's rule: never in
        ``__init__`` or ``set_params``), naming the parameter and the value."""
        _check_number("alpha", self.alpha, low=0.0)
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            _check_int("batch_size", self.batch_size, "'auto' or a positive integer")
        _check_number("learning_rate_init", self.learning_rate_init, low=0.0, strict=True)
        _check_int("max_iter", self.max_iter)
        _check_number("tol", self.tol, low=0.0)
        _check_number("validation_fraction", self.validation_fraction, low=0.0, strict=True)
        if self.validation_fraction >= 1:
            raise ValueError(
                f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}"
            )
        _check_int("n_iter_no_change", self.n_iter_no_change)
        if self.graph is None:
            self._hidden_sizes()
            self._hidden_activation()
        elif not (callable(self.graph) or isinstance(self.graph, (Mapping, Graph))):
            raise ValueError(
                "graph must be None (a perceptron from hidden_layer_sizes), a callable "
                "(n_features, n_outputs) -> Graph, a spec dict or a Graph; got "
                f"{type(self.graph).__name__}: {self.graph!r}"
            )
        self._new_optimizer()  # refuses unknown names and bad settings early

    def _hidden_sizes(self) -> tuple[int, ...]:
        sizes = self.hidden_layer_sizes
        sizes = (sizes,) if isinstance(sizes, numbers.Integral) else sizes
        try:
            sizes = tuple(sizes)
        except TypeError:
            sizes = None
        if sizes is None or not all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in sizes
        ):
            raise ValueError(
                "hidden_layer_sizes must be a positive integer or a sequence of them, "
                f"got {self.hidden_layer_sizes!r}"
            )
        return tuple(int(s) for s in sizes)

    def _hidden_activation(self):
        name = self.activation
        if isinstance(name, str):
            name = _ACTIVATION_ALIASES.get(name, name)
        try:
            return activations.get(name)
        except ValueError as exc:
            raise ValueError(
                f"activation: {exc} (MLPClassifier's 'identity' and 'logistic' also work)"
            ) from None

    def _new_optimizer(self) -> optimizers_module.Optimizer:
        """A fresh optimizer from the ``optimizer`` parameter (which is never
        itself trained with, so the parameter stays as the user set it).

        A name or a dict without ``lr`` gets ``learning_rate_init``; an
        Optimizer instance or a dict with ``lr`` keeps its own rate.
        """
        spec = self.optimizer
        if isinstance(spec, optimizers_module.Optimizer):
            config = {k: v for k, v in spec.get_config().items() if k != "name"}
            return type(spec)(**config)
        if isinstance(spec, str):
            return optimizers_module.get({"name": spec, "lr": self.learning_rate_init})
        if isinstance(spec, Mapping):
            return optimizers_module.get({"lr": self.learning_rate_init, **spec})
        raise ValueError(
            "optimizer must be a name (e.g. 'adam'), a config dict or a "
            f"graphnet.optimizers.Optimizer; got {type(spec).__name__}: {spec!r}"
        )

    # ------------------------------------------------------------ the graph
    def _build_graph(self, n_features: int, target: dict, dtype, seed: int) -> Graph:
        """A new graph for ``n_features`` columns of X and the ``target`` that
        :meth:`_describe_target` found."""
        spec = self.graph
        n_outputs = self._n_outputs(target)
        if spec is None:
            activation, loss, loss_weight = self._default_output(target, n_outputs)
            hidden = self._hidden_activation()
            layers = [Input(n_features)]
            layers += [Dense(size, activation=hidden) for size in self._hidden_sizes()]
            layers.append(Dense(n_outputs, activation=activation))
            return Sequential(
                layers,
                loss=loss,
                loss_weight=loss_weight,
                seed=seed,
                dtype=dtype,
                name=type(self).__name__,
            )
        if isinstance(spec, Graph):  # before the callable test: a Graph is callable too
            graph = copy.deepcopy(spec)
        elif isinstance(spec, Mapping):
            spec = dict(spec)
            # What the spec leaves open is decided as for the default network:
            # the seed by random_state, the dtype by X.
            if spec.get("seed") is None:
                spec["seed"] = seed
            spec.setdefault("dtype", np.dtype(dtype).name)
            graph = Graph.from_dict(spec)
        else:
            graph = spec(n_features, n_outputs)
            if not isinstance(graph, Graph):
                raise ValueError(
                    f"graph: the callable must return a graphnet Graph, "
                    f"got {type(graph).__name__}: {graph!r}"
                )
            graph = copy.deepcopy(graph)  # the callable may hand out a shared graph
        graph.validate()
        self._check_inputs(graph, n_features)
        self._check_outputs(graph, target, n_outputs)
        return graph

    def _check_inputs(self, graph: Graph, n_features: int) -> None:
        sizes = {name: graph.nodes[name].size for name in graph.inputs}
        if sum(sizes.values()) != n_features:
            shown = ", ".join(f"{n!r} ({s})" for n, s in sizes.items())
            raise ValueError(
                f"graph {graph.name!r}: its inputs {shown} take {sum(sizes.values())} "
                f"columns in all, but X has {n_features} features. The columns of X are "
                "split over the inputs in insertion order, so their sizes must add up "
                "to the number of features"
            )

    def _input_slices(self) -> list[tuple[str, slice]]:
        graph, start, slices = self.graph_, 0, []
        for name in graph.inputs:
            size = graph.nodes[name].size
            slices.append((name, slice(start, start + size)))
            start += size
        return slices

    def _graph_inputs(self, block: np.ndarray):
        """A dense block of X as the graph's inputs (a plain array for one input)."""
        slices = self._input_slices()
        if len(slices) == 1:
            return block
        return {name: block[:, part] for name, part in slices}

    def _raw_outputs(self, X) -> np.ndarray:
        """The graph's outputs for validated X, side by side in insertion order."""
        graph = self.graph_
        if sp.issparse(X):
            parts = [
                self._raw_outputs(X[start : start + _SPARSE_CHUNK].toarray())
                for start in range(0, X.shape[0], _SPARSE_CHUNK)
            ]
            if parts:
                return np.vstack(parts)
            return np.empty((0, self.n_outputs_), dtype=graph.dtype)
        out = graph.predict(self._graph_inputs(X))
        if isinstance(out, dict):
            return np.hstack([out[name] for name in graph.outputs])
        return out

    def _validate_X(self, X):
        return validate_data(
            self, X, reset=False, accept_sparse="csr", dtype=(np.float64, np.float32)
        )

    # ------------------------------------------------------------- training
    def fit(self, X, y):
        """Train from scratch (or on from the last fit with ``warm_start=True``)
        for up to ``max_iter`` epochs.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels (a label indicator matrix for multilabel) or targets.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            For bad parameters, data that does not fit (including a ``graph``
            whose input or output sizes disagree with the data), or a training
            step that went non-finite (:class:`graphnet.TrainingError`).
        """
        return self._fit(X, y, incremental=False)

    def _fit(self, X, y, incremental: bool, classes=None):
        self._check_params()
        if incremental and self.early_stopping:
            raise ValueError(
                "partial_fit does not support early_stopping=True (there is no fixed "
                "data to hold a validation set out of); set early_stopping=False"
            )
        fresh = not hasattr(self, "graph_") or not (incremental or self.warm_start)
        X, y = self._validate_Xy(X, y, reset=fresh)
        if fresh:
            # Everything is worked out before anything is set, so a graph that
            # does not fit the data leaves a fitted estimator as it was.
            target = self._describe_target(y, incremental, classes)
            random_state = check_random_state(self.random_state)
            seed = int(random_state.randint(np.iinfo(np.int32).max))
            graph = self._build_graph(X.shape[1], target, X.dtype, seed)
            graph.optimizer = self._new_optimizer()
            for name, value in target.items():
                setattr(self, name, value)
            self._random_state = random_state
            self.graph_ = graph
            self.n_outputs_ = sum(graph.nodes[name].size for name in graph.outputs)
            self.n_iter_ = 0
            self.t_ = 0
            self.loss_curve_ = []
        else:
            self._check_target(y, incremental)
            if not incremental:
                # warm start: keep the weights, start a new optimizer (as MLPClassifier does)
                self.graph_.optimizer = self._new_optimizer()
                self.n_iter_ = 0
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
            if not incremental or getattr(self, "best_loss_", None) is None:
                self.best_loss_ = np.inf
        epochs = 1 if incremental else self.max_iter
        self._train(X, self._targets_for_graph(y), y, epochs, incremental)
        return self

    def _train(self, X, targets, y, epochs: int, incremental: bool) -> None:
        """The epoch loop: MLPClassifier's batches, stopping rule and early stopping."""
        graph = self.graph_
        rng = self._random_state
        X_val = y_val = None
        if self.early_stopping:
            stratify = y if self._stratify_split() else None
            X, X_val, targets, _, y, y_val = train_test_split(
                X, targets, y,
                test_size=self.validation_fraction,
                random_state=rng,
                stratify=stratify,
            )
            if X_val.shape[0] < 2:
                raise ValueError(
                    f"early_stopping: validation_fraction={self.validation_fraction} of "
                    f"{X.shape[0] + X_val.shape[0]} samples leaves fewer than 2 for "
                    "validation; increase validation_fraction or use more data"
                )
        if not sp.issparse(X) and X.dtype != graph.dtype:
            X = X.astype(graph.dtype)  # once, rather than for every batch
        rows = X.shape[0]
        batch_size = self._batch_rows(rows)
        inner = graph.optimizer
        penalty = _L2Penalty(inner, self.alpha)
        graph.optimizer = penalty
        progress = Progress(2 if self.verbose else 0, self.n_iter_ + epochs, -(-rows // batch_size))
        best_weights, no_improvement = None, 0
        try:
            for _ in range(epochs):
                progress.epoch_begin(self.n_iter_)
                order = rng.permutation(rows) if self.shuffle else np.arange(rows)
                total = 0.0
                for start in range(0, rows, batch_size):
                    index = order[start : start + batch_size]
                    block = X[index]
                    if sp.issparse(block):
                        block = block.toarray()
                    penalty.rows = len(index)
                    loss = graph.train_step(self._graph_inputs(block), self._batch_targets(targets, index))
                    total += (loss + penalty.value) * len(index)
                self.n_iter_ += 1
                self.t_ += rows
                self.loss_ = total / rows
                self.loss_curve_.append(self.loss_)
                logs = {"loss": self.loss_}
                if X_val is not None:
                    score = self._score_validated(X_val, y_val)
                    self.validation_scores_.append(score)
                    logs["val_score"] = score
                    improved = score >= self.best_validation_score_ + self.tol
                    if score > self.best_validation_score_:
                        self.best_validation_score_ = score
                        best_weights = graph.get_weights()
                else:
                    improved = self.loss_ <= self.best_loss_ - self.tol
                    self.best_loss_ = min(self.best_loss_, self.loss_)
                no_improvement = 0 if improved else no_improvement + 1
                progress.epoch_end(self.n_iter_ - 1, logs)
                logger.info("%s: epoch %d - loss %.6g", type(self).__name__, self.n_iter_, self.loss_)
                if no_improvement > self.n_iter_no_change and not incremental:
                    what = "Validation score" if X_val is not None else "Training loss"
                    logger.info(
                        "%s: %s did not improve more than tol=%g for %d consecutive epochs; stopping",
                        type(self).__name__, what, self.tol, self.n_iter_no_change,
                    )
                    break
            else:
                if not incremental:
                    warnings.warn(
                        f"{type(self).__name__}: max_iter={self.max_iter} epochs reached "
                        "and the optimization hasn't converged yet; increase max_iter "
                        "or tol",
                        ConvergenceWarning,
                        stacklevel=4,
                    )
        finally:
            progress.close()
            graph.optimizer = inner
        if best_weights is not None:
            graph.set_weights(best_weights)

    def _batch_rows(self, rows: int) -> int:
        if isinstance(self.batch_size, str):
            return min(200, rows)
        if self.batch_size > rows:
            warnings.warn(
                f"batch_size={self.batch_size} is larger than the {rows} training "
                "samples; clipping it to the sample count",
                UserWarning,
                stacklevel=5,
            )
        return int(min(self.batch_size, rows))

    def _batch_targets(self, targets, index):
        """One batch of encoded targets in the form the graph takes."""
        part = targets[index]
        outputs = self.graph_.outputs
        if len(outputs) == 1:
            return part
        batch, start = {}, 0
        for name in outputs:
            size = self.graph_.nodes[name].size
            batch[name] = part[:, start : start + size]
            start += size
        return batch


class GraphNetClassifier(ClassifierMixin, _GraphNetEstimator):
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
        seed), shuffling and the early-stopping split. The network computes in
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
        and end with the best epoch's weights.
    validation_fraction : float, default=0.1
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
    feature_names_in_ : ndarray of shape (n_features_in_,)
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
    >>> clf = GraphNetClassifier((16,), max_iter=300, learning_rate_init=0.01,
    ...                          random_state=0).fit(X, y)
    >>> clf.score(X, y) > 0.9
    True
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def partial_fit(self, X, y, classes=None):
        """One epoch over ``(X, y)``, continuing from the current weights and optimizer state.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
        classes : array-like of shape (n_classes,), optional
            Every label of the whole problem; required on the first call
            (not for multilabel targets), as ``y`` may not show them all.

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
        return self._fit(X, y, incremental=True, classes=classes)

    def _validate_Xy(self, X, y, reset: bool):
        X, y = validate_data(
            self, X, y,
            reset=reset,
            accept_sparse="csr",
            dtype=(np.float64, np.float32),
            multi_output=True,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        return X, y

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
        return not self._multilabel  # MLPClassifier does not stratify multilabel targets

    def _score_validated(self, X, y) -> float:
        return float(accuracy_score(y, self._predict_validated(X)))

    def _proba_validated(self, X) -> np.ndarray:
        a = self._raw_outputs(X)
        if a.shape[1] == 1 and not self._multilabel:
            return np.hstack([1 - a, a])
        return a

    def _predict_validated(self, X):
        proba = self._proba_validated(X)
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
        """``log(predict_proba(X))``."""
        proba = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(proba, out=proba)


class GraphNetRegressor(RegressorMixin, _GraphNetEstimator):
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

    def partial_fit(self, X, y):
        """One epoch over ``(X, y)``, continuing from the current weights and optimizer state.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)

        Returns
        -------
        self

        Raises
        ------
        ValueError
            When ``y`` has another number of targets than before, or as for :meth:`fit`.
        """
        return self._fit(X, y, incremental=True)

    def _validate_Xy(self, X, y, reset: bool):
        return validate_data(
            self, X, y,
            reset=reset,
            accept_sparse="csr",
            dtype=(np.float64, np.float32),
            multi_output=True,
            y_numeric=True,
        )

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

    def _score_validated(self, X, y) -> float:
        return float(r2_score(y, self._predict_validated(X)))

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


# ----------------------------------------------------------------- checking
def _check_number(name: str, value, low: float, strict: bool = False) -> None:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
    ok = ok and (value > low if strict else value >= low)
    if not ok:
        bound = f"> {low}" if strict else f">= {low}"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")


def _check_int(name: str, value, expected: str = "a positive integer") -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be {expected}, got {value!r}")
