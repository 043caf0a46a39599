"""What GraphNetClassifier and GraphNetRegressor share: building the graph,
and training on the engine's epoch loop with MLPClassifier's initial weights,
L2 penalty and stopping rule (:mod:`._mlp`). Their parameters: :mod:`._params`."""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Mapping

import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.validation import _check_sample_weight, check_X_y, validate_data

from .._data import Batches, as_inputs, as_targets
from .._progress import Progress
from ..errors import TrainingError
from ..graph import Graph
from ..layers import Dense
from ..nodes import Input
from ..sequential import Sequential
from ..trainer import Trainer
from ._mlp import MLPPenalty, MLPStopping, WeightedMLPStopping, chain_weights, initial_weights
from ._params import Parameters
from ._tables import Layout, check_columns, is_table

__all__ = ["GraphNetEstimator"]

#: Rows densified at a time when X is sparse (the engine runs on dense arrays).
_SPARSE_CHUNK = 1024


class GraphNetEstimator(Parameters):
    """What the classifier and the regressor share: building the graph, the
    training loop and the stopping rule (their parameters: ``Parameters``).
    Subclasses say how targets are checked and encoded and which outputs fit them."""

    #: Whether y must be numbers (scikit-learn's ``y_numeric``).
    _y_numeric = False

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # densified a batch at a time
        return tags

    # ------------------------------------------------------------ the graph
    def _build_graph(self, n_features: int, target: dict, dtype, seed: int) -> Graph:
        """A new graph for ``n_features`` columns of X and the ``target`` that
        :meth:`_describe_target` found."""
        spec = self.graph
        n_outputs = self._n_outputs(target)
        if self.table_layout_ is not None:
            return self.table_layout_.network(spec, self._hidden_sizes(), self._hidden_activation(),
                                              self._default_output(target, n_outputs), n_outputs, seed, type(self).__name__)
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
        if getattr(self, "table_layout_", None) is not None:
            return self.table_layout_.inputs(block)
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

    def _validate_Xy(self, X, y, reset: bool, table: bool = False):
        """X and y as scikit-learn checks them (``reset`` sets ``n_features_in_`` and
        ``feature_names_in_``, else they are checked); a ``table``'s block, read by
        its layout, is left as it is and only y is checked."""
        checks = {"multi_output": True, "y_numeric": self._y_numeric}
        if table:  # check_X_y beside a stand-in X: the estimator's attributes are left alone
            y = check_X_y(np.zeros((len(X), 1)), y, estimator=self, **checks)[1]
        else:
            X, y = validate_data(self, X, y, reset=reset, accept_sparse="csr",
                                 dtype=(np.float64, np.float32), **checks)
        return X, self._checked_y(y)

    def _validate_X(self, X):
        if getattr(self, "table_layout_", None) is not None:
            return self.table_layout_.block(X)
        check_columns(X)
        return validate_data(
            self, X, reset=False, accept_sparse="csr", dtype=(np.float64, np.float32)
        )

    # ------------------------------------------------------------- training
    def fit(self, X, y, sample_weight=None):
        """Train from scratch (or on from the last fit with ``warm_start=True``)
        for up to ``max_iter`` epochs.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels (a label indicator matrix for multilabel) or targets.
        sample_weight : array-like of shape (n_samples,), optional
            Each batch's loss becomes the weighted mean ``Σ w·l / Σ w`` and the
            L2 penalty is divided by ``Σ w`` (MLPClassifier's convention).

        Returns
        -------
        self

        Raises
        ------
        ValueError
            For bad parameters, data that does not fit (including a ``graph``
            whose input or output sizes disagree with the data), or a training
            step that went non-finite (:class:`graphnet.TrainingError`), unless
            ``early_stopping`` has an epoch to return to (then a
            ``ConvergenceWarning`` says so). The estimator is left as it was:
            unfitted, or with the model of its last fit. Only training that
            continues (``warm_start``, ``partial_fit``) and fails after its first
            step keeps the steps it took.
        """
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    def _fit(self, X, y, incremental: bool, classes=None, sample_weight=None):
        """Train, or raise with the estimator as it was before the call (see
        :meth:`fit`): a new graph is dropped; a fitted one has its optimizer and
        random state put back unless a step may have changed its weights."""
        fresh = not hasattr(self, "graph_") or not (incremental or self.warm_start)
        before = dict(vars(self))
        if not fresh:  # what preparing changes in place in a fitted estimator
            optimizer, rng_state = self.graph_.optimizer, self._random_state.get_state()
        steps = []  # [True] once the first step may have changed the weights
        try:
            X, targets, y, sample_weight = self._prepare(X, y, incremental, fresh, classes, sample_weight)
            epochs = 1 if incremental else self.max_iter
            self._train(X, targets, y, epochs, incremental, lambda: steps.append(True), sample_weight)
        except Exception:
            if fresh or not steps:
                vars(self).clear()
                vars(self).update(before)
                if not fresh:
                    self.graph_.optimizer = optimizer
                    self._random_state.set_state(rng_state)
            raise
        return self

    def _prepare(self, X, y, incremental: bool, fresh: bool, classes, sample_weight) -> tuple:
        """Check the data, build the graph (``fresh``) and set what training starts
        from; returns the checked X, the encoded targets, y and the sample weights."""
        self._check_params()
        if incremental and self.early_stopping:
            raise ValueError(
                "partial_fit does not support early_stopping=True (there is no fixed "
                "data to hold a validation set out of); set early_stopping=False"
            )
        layout = (Layout.of(X) if is_table(X) else None) if fresh else getattr(self, "table_layout_", None)
        if layout is None:
            check_columns(X)  # a frame of numbers with dates in it
            X, y = self._validate_Xy(X, y, reset=fresh)
        else:  # categorical columns: the graph reads them (see graphnet.sklearn._tables)
            X = layout.block(X)
            y = self._validate_Xy(X, y, reset=fresh, table=True)[1]
            if fresh:
                self.n_features_in_, self.feature_names_in_ = len(layout.columns), np.array(layout.columns, object)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
        if fresh:
            target = self._describe_target(y, incremental, classes)
            random_state = check_random_state(self.random_state)
            start = None
            self.table_layout_ = layout
            if self.graph is None and layout is None:  # drawn first, as MLP* draws its weights first
                factor = 2.0 if self._hidden_activation().name == "sigmoid" else 6.0
                sizes = [X.shape[1], *self._hidden_sizes(), self._n_outputs(target)]
                start = initial_weights(sizes, factor, random_state)
            # The graph's seed read from a copy: the stream goes on as MLP*'s,
            # to the same early-stopping split and the same shuffles.
            seed = int(copy.deepcopy(random_state).randint(np.iinfo(np.int32).max))
            graph = self._build_graph(X.shape[1], target, X.dtype, seed)
            if layout is not None:
                graph.adapt(layout.inputs(X))
            if start is not None:
                graph.set_weights(chain_weights(graph, start))
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
            self._random_state = check_random_state(self.random_state)  # as MLP*: each call starts its stream again
            if not incremental:
                # warm start: keep the weights, start a new optimizer (as MLPClassifier does)
                self.graph_.optimizer = self._new_optimizer()
                self.n_iter_ = 0
        if fresh or self.early_stopping != (getattr(self, "validation_scores_", None) is not None):
            # As MLP*: the stopping state is set by the first fit (or when early_stopping
            # changed); warm-started fits and partial fits carry it on.
            self._no_improvement_count, self._best_weights = 0, None
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.validation_scores_ = None
                self.best_validation_score_ = None
                self.best_loss_ = np.inf
        return X, self._targets_for_graph(y), y, sample_weight

    def _train(self, X, targets, y, epochs: int, incremental: bool, begin, sample_weight=None) -> None:
        """MLPClassifier's batches, stopping rule and early stopping, run by the
        engine's epoch loop (:meth:`graphnet.trainer.Trainer.run`); ``begin()``
        is called once the data are checked, before the first step."""
        graph = self.graph_
        rng = self._random_state
        X_val = y_val = w_val = None
        if self.early_stopping:
            stratify = y if self._stratify_split() else None
            split = train_test_split(
                X, targets, y, *([] if sample_weight is None else [sample_weight]),
                test_size=self.validation_fraction,
                random_state=rng,
                stratify=stratify,
            )
            X, X_val, targets, _, y, y_val = split[:6]
            if sample_weight is not None:
                sample_weight, w_val = split[6:]
            if X_val.shape[0] < 2:
                raise ValueError(
                    f"early_stopping: validation_fraction={self.validation_fraction} of "
                    f"{X.shape[0] + X_val.shape[0]} samples leaves fewer than 2 for "
                    "validation; increase validation_fraction or use more data"
                )
        rows = X.shape[0]
        batch_size = self._batch_rows(rows)
        count = -(-rows // batch_size)
        epoch_of = self._batches(X, targets, batch_size, sample_weight)
        trainer = Trainer(graph, penalty=MLPPenalty(self.alpha) if self.alpha else None)
        if sample_weight is None:
            stopping = MLPStopping(self, rows, incremental)
        else:
            stopping = WeightedMLPStopping(self, rows, incremental, batch_size)
        params = {"epochs": self.n_iter_ + epochs, "steps": count}
        stopping.set_graph(graph)
        stopping.set_params(params)

        order = np.arange(rows)

        def epoch_batches(epoch: int):
            nonlocal order
            if not self.shuffle:
                return epoch_of(None)
            order = order[rng.permutation(rows)]  # as MLP* shuffles: the last epoch's order, shuffled again
            return epoch_of(order)

        def validate() -> dict[str, float]:
            return {"val_score": self._score_validated(X_val, y_val, w_val)}

        end = self.n_iter_ + epochs
        begin()
        try:
            trainer.run(
                end,
                epoch_batches,
                count,
                validate=validate if X_val is not None else None,
                callbacks=[stopping],
                progress=Progress(2 if self.verbose else 0, end, count),
                initial_epoch=self.n_iter_,
                params=params,
            )
        except TrainingError as exc:
            if stopping.best_weights is None:  # no early stopping, or no epoch worth keeping
                raise
            # The epoch whose step was refused is recorded as MLP* records one
            # whose weights overflowed: its loss and validation score are NaN.
            stopping.on_epoch_end(self.n_iter_, {"loss": math.nan, "val_score": math.nan})
            stopping.diverged = f"a step was refused: {exc}"
            stopping.on_train_end()
        if stopping.diverged is not None:
            self._end_diverged(stopping)
        elif not stopping.stopped and not incremental:
            warnings.warn(
                f"{type(self).__name__}: max_iter={self.max_iter} epochs reached "
                "and the optimization hasn't converged yet; increase max_iter "
                "or tol",
                ConvergenceWarning,
                stacklevel=4,
            )

    def _end_diverged(self, stopping: MLPStopping) -> None:
        """Early stopping met a diverging fit: training has ended on the best
        validation epoch's weights (a warning says so), or, when no epoch
        scored, fails with TrainingError."""
        if stopping.best_weights is None:
            raise TrainingError(
                f"{type(self).__name__}: training diverged before any epoch scored "
                f"({stopping.diverged}), so early stopping has no weights to keep; "
                f"lower learning_rate_init (now {self.learning_rate_init}) or add "
                "clipnorm to the optimizer"
            )
        best = int(np.nanargmax(self.validation_scores_)) + 1
        warnings.warn(
            f"{type(self).__name__}: training diverged ({stopping.diverged}); it stops "
            f"with the weights of epoch {best}, the best validation score "
            f"({self.best_validation_score_:.6g}). Lower learning_rate_init (now "
            f"{self.learning_rate_init}) or add clipnorm to the optimizer",
            ConvergenceWarning,
            stacklevel=5,
        )

    def _batches(self, X, targets, batch_size: int, sample_weight=None):
        """``order -> batches`` over validated X and encoded targets: dense X is
        checked once and gathered per batch; sparse X is densified a batch at a time."""
        graph = self.graph_
        targets = as_targets(graph, self._split_outputs(targets))
        weights = None if sample_weight is None else {name: sample_weight for name in graph.outputs}
        if not sp.issparse(X):
            return Batches(as_inputs(graph, self._graph_inputs(X)), targets, batch_size, weights).epoch
        rows = X.shape[0]

        def sparse_epoch(order):
            order = np.arange(rows) if order is None else order
            for start in range(0, rows, batch_size):
                index = order[start : start + batch_size]
                inputs = as_inputs(graph, self._graph_inputs(X[index].toarray()))
                batch = inputs, {k: v[index] for k, v in targets.items()}, len(index)
                yield batch if weights is None else (*batch, {k: w[index] for k, w in weights.items()})

        return sparse_epoch

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

    def _split_outputs(self, targets):
        """Encoded targets in the form the graph takes: the columns split over
        several outputs in insertion order (a plain array for one output)."""
        outputs = self.graph_.outputs
        if len(outputs) == 1:
            return targets
        split, start = {}, 0
        for name in outputs:
            size = self.graph_.nodes[name].size
            split[name] = targets[:, start : start + size]
            start += size
        return split
