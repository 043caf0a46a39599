"""GraphNetClassifier and GraphNetRegressor: scikit-learn's own estimator checks,
parity with MLPClassifier/MLPRegressor, the ``graph`` parameter, pickling, and
life inside Pipeline, GridSearchCV and cross_val_score."""

from __future__ import annotations

import io
import pickle
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", reason="the sklearn extra is not installed")

import joblib  # noqa: E402  (a dependency of scikit-learn)
import scipy.sparse as sp  # noqa: E402
from sklearn.datasets import (  # noqa: E402
    load_breast_cancer,
    load_digits,
    load_iris,
    make_multilabel_classification,
)
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score  # noqa: E402
from sklearn.neural_network import MLPClassifier, MLPRegressor  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402  (a dependency of scikit-learn)

import graphnet as gn  # noqa: E402
from graphnet.sklearn import GraphNetClassifier, GraphNetRegressor  # noqa: E402

# Small networks and few epochs keep scikit-learn's checks fast; the learning
# rate is raised so that they still reach the accuracy the checks ask for.
SMALL = dict(hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=100, random_state=0)


def skip_dag(n_features: int, n_outputs: int) -> gn.Graph:
    """A regressor body that is not a stack: two hidden nodes and skip connections."""
    g = gn.Graph(name="skip_dag", seed=0, dtype="float64")
    g.add_input("x", n_features)
    g.add_hidden("h1", 16, activation="tanh")
    g.add_hidden("h2", 8, activation="relu")
    g.add_output("y", n_outputs)
    g.connect("x", "h1")
    g.connect("h1", "h2")
    g.connect(["h2", "h1", "x"], "y")
    return g


def two_input_classifier(n_features: int, n_outputs: int) -> gn.Graph:
    """Two inputs (the first 2 columns, then the rest) meeting in a hidden node."""
    g = gn.Graph(name="two_inputs", seed=3, dtype="float64")
    g.add_input("head", 2)
    g.add_input("tail", n_features - 2)
    g.add_hidden("h", 16, activation="relu")
    if n_outputs == 1:
        g.add_output("p", 1, activation="sigmoid", loss="binary_crossentropy")
    else:
        g.add_output("p", n_outputs, activation="softmax", loss="categorical_crossentropy")
    g.connect(["head", "tail"], "h")
    g.connect(["h", "tail"], "p")
    return g


@parametrize_with_checks(
    [
        GraphNetClassifier(**SMALL),
        GraphNetRegressor(**SMALL),
        GraphNetRegressor(graph=skip_dag, learning_rate_init=0.01, max_iter=100, random_state=0),
    ]
)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


# ----------------------------------------------------------------- MLP parity
def _mlp_and_graphnet_from_same_start(mlp_cls, gn_cls, X, y, sample_weight=None, **params):
    """Train MLP* and GraphNet* with plain SGD from the same initial weights."""
    mlp = mlp_cls(solver="sgd", momentum=0.0, warm_start=True, **{**params, "max_iter": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit(X, y)  # only to initialise: the weights are replaced below
    start = [c.copy() for c in mlp.coefs_], [b.copy() for b in mlp.intercepts_]
    mlp.coefs_ = [c.copy() for c in start[0]]
    mlp.intercepts_ = [b.copy() for b in start[1]]
    mlp.loss_curve_ = []

    ours = gn_cls(optimizer="sgd", **{**params, "max_iter": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        graph = ours.fit(X, y).graph_  # the default network, with its output's loss weight
    graph.set_weights(
        {
            "input->dense.weight": start[0][0],
            "dense.bias": start[1][0],
            "dense->dense_1.weight": start[0][1],
            "dense_1.bias": start[1][1],
        }
    )
    ours = gn_cls(optimizer="sgd", graph=graph, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.set_params(max_iter=params["max_iter"]).fit(X, y, sample_weight=sample_weight)
        ours.fit(X, y, sample_weight=sample_weight)
    return mlp, ours


@pytest.mark.parametrize(
    "target",
    ["binary", "multiclass", "multilabel", "regression", "two_targets"],
)
def test_same_weights_and_loss_curve_as_mlp_with_sgd(rng, target):
    """The default network trains exactly as MLP*: same batches (the last one
    shorter), same loss scale, same L2 penalty on weights only."""
    X = rng.normal(size=(50, 4))
    y = {
        "binary": rng.integers(0, 2, 50),
        "multiclass": rng.integers(0, 3, 50),
        "multilabel": rng.integers(0, 2, (50, 3)),
        "regression": rng.normal(size=50),
        "two_targets": rng.normal(size=(50, 2)),
    }[target]
    regression = target in ("regression", "two_targets")
    params = dict(
        hidden_layer_sizes=(5,), activation="tanh", alpha=0.5, batch_size=16,
        learning_rate_init=0.05, shuffle=False, max_iter=7, tol=0.0,
    )
    mlp, ours = _mlp_and_graphnet_from_same_start(
        MLPRegressor if regression else MLPClassifier,
        GraphNetRegressor if regression else GraphNetClassifier,
        X, y, **params,
    )
    weights = ours.graph_.get_weights()
    np.testing.assert_allclose(weights["input->dense.weight"], mlp.coefs_[0], atol=1e-12)
    np.testing.assert_allclose(weights["dense->dense_1.weight"], mlp.coefs_[1], atol=1e-12)
    np.testing.assert_allclose(weights["dense.bias"], mlp.intercepts_[0], atol=1e-12)
    np.testing.assert_allclose(weights["dense_1.bias"], mlp.intercepts_[1], atol=1e-12)
    if target != "two_targets":  # MLPRegressor reports the mean over targets, see the docs
        np.testing.assert_allclose(ours.loss_curve_, mlp.loss_curve_, rtol=1e-12)
    if regression:
        np.testing.assert_allclose(ours.predict(X), mlp.predict(X), atol=1e-12)
    else:
        np.testing.assert_array_equal(ours.predict(X), mlp.predict(X))


def _adam_twins(regression: bool, **params):
    """MLP* and graphnet's estimator with the same parameters, both training
    with Adam, its epsilon made negligible (MLP adds it before the bias
    correction, graphnet after, as torch and Keras do): then they agree to
    rounding."""
    mlp = (MLPRegressor if regression else MLPClassifier)(epsilon=1e-30, **params)
    ours = (GraphNetRegressor if regression else GraphNetClassifier)(optimizer={"name": "adam", "eps": 1e-30},
                                                                     **params)
    return mlp, ours


@pytest.mark.parametrize("early_stopping", [False, True])
def test_shuffled_batches_are_mlps_with_the_same_random_state(early_stopping):
    """Shuffling on (the default), from random_state alone: the same batches
    and early-stopping split as MLPClassifier, so with Adam the loss curves
    agree. The graph's seed was drawn from random_state, so every shuffle
    after it differed from MLP's."""
    X, y = load_digits(return_X_y=True)
    X, y = X[:400] / 16, y[:400]
    mlp, ours = _adam_twins(False, hidden_layer_sizes=(16,), random_state=0, max_iter=3,
                            early_stopping=early_stopping)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit(X, y)
        ours.fit(X, y)
    np.testing.assert_allclose(ours.loss_curve_, mlp.loss_curve_, rtol=1e-10)
    if early_stopping:
        np.testing.assert_allclose(ours.validation_scores_, mlp.validation_scores_, rtol=1e-12)
    np.testing.assert_allclose(ours.graph_.get_weights()["input->dense.weight"], mlp.coefs_[0], atol=1e-10)


@pytest.mark.parametrize("early_stopping", [False, True])
def test_a_warm_started_fit_carries_on_mlps_stopping_state(early_stopping):
    """MLP* sets best_loss_, validation_scores_, best_validation_score_, the
    count of epochs without improvement and the best weights at its first fit
    only: a warm-started fit goes on from them (they were reset, so the fit
    ran longer and ended on other weights)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 4))
    y = X[:, 0] - 0.5 * X[:, 1] + rng.normal(size=90)
    mlp, ours = _adam_twins(True, hidden_layer_sizes=(30,), batch_size=8, max_iter=4, random_state=0,
                            warm_start=True, learning_rate_init=0.05, n_iter_no_change=1, tol=1e-2,
                            early_stopping=early_stopping)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(3):  # the third: after a fit that restored its best weights
            mlp.fit(X, y)
            ours.fit(X, y)
    np.testing.assert_allclose(ours.loss_curve_, mlp.loss_curve_, rtol=1e-10)
    if early_stopping:
        np.testing.assert_allclose(ours.validation_scores_, mlp.validation_scores_, rtol=1e-10)
        assert ours.best_validation_score_ == pytest.approx(mlp.best_validation_score_, rel=1e-10)
    else:
        assert ours.best_loss_ == pytest.approx(mlp.best_loss_, rel=1e-10)
    np.testing.assert_allclose(ours.graph_.get_weights()["input->dense.weight"], mlp.coefs_[0], atol=1e-10)


@pytest.mark.parametrize("regression", [False, True])
def test_the_loss_curve_with_sample_weights_is_mlps(regression):
    """MLP* weights each batch's (weighted mean) loss by its row count in an
    epoch's loss; graphnet's fit weights it by its sum of weights: the model
    was MLP's, its loss_curve_ (which tol reads) was not."""
    X, y = load_iris(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    if regression:
        X, y = X[:, 1:], X[:, 0]
    w = np.random.default_rng(0).uniform(0.2, 3, len(y))
    params = dict(hidden_layer_sizes=(5,), learning_rate_init=0.05, max_iter=3, random_state=0, batch_size=16,
                  alpha=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = (MLPRegressor if regression else MLPClassifier)(solver="sgd", momentum=0.0, **params)
        ours = (GraphNetRegressor if regression else GraphNetClassifier)(optimizer="sgd", **params)
        mlp.fit(X, y, sample_weight=w)
        ours.fit(X, y, sample_weight=w)
    np.testing.assert_allclose(ours.loss_curve_, mlp.loss_curve_, rtol=1e-12)
    assert ours.loss_ == pytest.approx(mlp.loss_, rel=1e-12) and ours.best_loss_ == pytest.approx(mlp.best_loss_)


@pytest.mark.parametrize("how", ["warm_start", "partial_fit"])
@pytest.mark.parametrize("regression", [False, True])
def test_later_calls_shuffle_as_mlp_does(how, regression):
    """MLP* starts its stream from random_state again at every fit and
    partial_fit: so do the estimators (a warm-started or partial fit drew on
    from where the last call stopped, and its batches differed)."""
    X = np.random.default_rng(0).normal(size=(150, 5))
    y = X[:, 0] + X[:, 1] if regression else np.digitize(X[:, 0] + X[:, 1], [-0.7, 0.7])
    params = dict(hidden_layer_sizes=(7,), random_state=0, batch_size=32)
    if how == "warm_start":
        params.update(warm_start=True, max_iter=2)
    mlp, ours = _adam_twins(regression, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(3):
            if how == "warm_start":
                mlp.fit(X, y)
                ours.fit(X, y)
            else:
                extra = {} if regression else {"classes": [0, 1, 2]}
                mlp.partial_fit(X, y, **extra)
                ours.partial_fit(X, y, **extra)
    np.testing.assert_allclose(ours.loss_curve_, mlp.loss_curve_, rtol=1e-10)


@pytest.mark.parametrize("activation", ["relu", "logistic"])
@pytest.mark.parametrize("target", ["multiclass", "regression"])
def test_the_default_network_starts_from_mlps_weights(rng, activation, target):
    """Same random_state, same initial weights as MLP* (their bound is
    sqrt(2 / (fan_in + fan_out)) for logistic, sqrt(6 / ...) otherwise):
    one full-batch SGD epoch later the weights agree."""
    X = rng.normal(size=(40, 5))
    y = rng.integers(0, 3, 40) if target == "multiclass" else rng.normal(size=40)
    params = dict(hidden_layer_sizes=(6, 4), activation=activation, batch_size=40, shuffle=False,
                  learning_rate_init=0.1, max_iter=1, random_state=3)
    mlp_cls, gn_cls = (MLPClassifier, GraphNetClassifier) if target == "multiclass" else (MLPRegressor, GraphNetRegressor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = mlp_cls(solver="sgd", momentum=0.0, **params).fit(X, y)
        ours = gn_cls(optimizer="sgd", **params).fit(X, y)
    weights = ours.graph_.get_weights()
    names = list(ours.graph_.nodes)
    for i, (src, dst) in enumerate(zip(names[:-1], names[1:])):
        np.testing.assert_allclose(weights[f"{src}->{dst}.weight"], mlp.coefs_[i], atol=1e-12)
        np.testing.assert_allclose(weights[f"{dst}.bias"], mlp.intercepts_[i], atol=1e-12)


def test_partial_fit_regression():
    """scikit-learn's test_partial_fit_regression (sklearn/neural_network/tests/
    test_mlp.py), same data and threshold: 100 partial_fit calls give what fit
    gives, and a score above 0.65. MLPRegressor's momentum is Nesterov's;
    both end where MLPRegressor ends."""
    from sklearn.datasets import make_regression
    from sklearn.preprocessing import scale

    X, y = make_regression(n_samples=200, n_features=10, bias=20.0, noise=100.0, random_state=7)
    y = scale(y)
    for momentum in [0, 0.9]:
        optimizer = {"name": "sgd", "momentum": momentum, "nesterov": bool(momentum)}
        params = dict(activation="relu", random_state=1, learning_rate_init=0.01, batch_size=X.shape[0])
        reg = GraphNetRegressor(max_iter=100, optimizer=optimizer, **params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            reg.fit(X, y)
            mlp = MLPRegressor(max_iter=100, solver="sgd", momentum=momentum, **params).fit(X, y)
        pred1 = reg.predict(X)
        reg = GraphNetRegressor(optimizer=optimizer, **params)
        for _ in range(100):
            reg.partial_fit(X, y)
        pred2 = reg.predict(X)
        np.testing.assert_allclose(pred1, pred2)
        assert reg.score(X, y) > 0.65
        np.testing.assert_allclose(pred2, mlp.predict(X), atol=1e-10)


def test_l2_penalty_leaves_biases_alone(rng):
    """One SGD step by hand: weights get alpha * W / rows added to their gradient."""
    X, y = rng.normal(size=(10, 3)), rng.integers(0, 2, 10)
    start = GraphNetClassifier((4,), alpha=0.0, max_iter=1, optimizer="sgd", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        graph = start.fit(X, y).graph_
    before = graph.get_weights()
    loss, grads = graph.gradients(X, y.reshape(-1, 1).astype(float))
    alpha, lr = 3.0, 0.1
    est = GraphNetClassifier(
        graph=graph, alpha=alpha, learning_rate_init=lr, max_iter=1, optimizer="sgd", batch_size=10
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    after = est.graph_.get_weights()
    for key, value in before.items():
        extra = alpha * value / 10 if "->" in key else 0.0
        np.testing.assert_allclose(after[key], value - lr * (grads[key] + extra), atol=1e-6)
    penalty = 0.5 * alpha / 10 * sum(float((v**2).sum()) for k, v in before.items() if "->" in k)
    assert est.loss_ == pytest.approx(loss + penalty, rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("load", [load_digits, load_breast_cancer], ids=["digits", "breast_cancer"])
def test_accuracy_matches_mlpclassifier_on_the_same_folds(load):
    X, y = load(return_X_y=True)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)

    def mean_accuracy(estimator):
        # One BLAS thread: on these small matrices several threads only fight
        # over a busy 2-core machine (4-6 times slower); both sides get the same.
        with warnings.catch_warnings(), threadpool_limits(limits=1):
            warnings.simplefilter("ignore", ConvergenceWarning)
            return cross_val_score(make_pipeline(StandardScaler(), estimator), X, y, cv=folds).mean()

    theirs = mean_accuracy(MLPClassifier(hidden_layer_sizes=(100,), random_state=0))
    ours = mean_accuracy(GraphNetClassifier(hidden_layer_sizes=(100,), random_state=0))
    assert ours >= theirs - 0.01, f"graphnet {ours:.4f} vs MLPClassifier {theirs:.4f}"


# --------------------------------------------------------- scikit-learn tools
def test_pipeline_with_standard_scaler_and_cross_val_score():
    X, y = load_iris(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), GraphNetClassifier(**{**SMALL, "max_iter": 200}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_score(pipe, X, y, cv=3)
        assert pipe.fit(X, y).score(X, y) > 0.95
    assert scores.shape == (3,)
    assert scores.mean() > 0.85


@pytest.mark.slow
def test_grid_search_with_two_jobs_over_sizes_and_graph_specs():
    X, y = load_breast_cancer(return_X_y=True)
    wide = {
        "nodes": [
            {"kind": "input", "name": "x", "size": X.shape[1]},
            {"kind": "hidden", "name": "h", "size": 32, "activation": "tanh"},
            {"kind": "output", "name": "p", "size": 1, "activation": "sigmoid",
             "loss": "binary_crossentropy"},
        ],
        "synapses": [["x", "h"], ["h", "p"], ["x", "p"]],
    }
    pipe = make_pipeline(StandardScaler(), GraphNetClassifier(max_iter=30, random_state=0))
    grid = {
        "graphnetclassifier__hidden_layer_sizes": [(4,), (16,)],
        "graphnetclassifier__graph": [None, wide],
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search = GridSearchCV(pipe, grid, cv=3, n_jobs=2).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_score_ > 0.9
    assert search.score(X, y) > 0.9


# ------------------------------------------------------------------- pickling
@pytest.mark.parametrize("cls", [GraphNetClassifier, GraphNetRegressor])
def test_joblib_round_trip_predicts_the_same_and_trains_on_the_same(rng, cls):
    X = rng.normal(size=(60, 5))
    y = rng.integers(0, 3, 60) if cls is GraphNetClassifier else rng.normal(size=60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = cls(**{**SMALL, "max_iter": 5}).fit(X, y)
    buffer = io.BytesIO()
    joblib.dump(est, buffer)
    buffer.seek(0)
    copy = joblib.load(buffer)
    np.testing.assert_array_equal(copy.predict(X), est.predict(X))
    assert copy.graph_ is not est.graph_
    # both go on with the same shuffles and optimizer state
    est.partial_fit(X, y)
    copy.partial_fit(X, y)
    np.testing.assert_array_equal(copy.predict(X), est.predict(X))
    assert copy.loss_curve_ == est.loss_curve_
    assert copy.graph_.optimizer.iterations == est.graph_.optimizer.iterations


# -------------------------------------------------------------- partial_fit
def test_partial_fit_needs_classes_first_and_then_continues(rng):
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 3, 40)
    clf = GraphNetClassifier(**SMALL)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(X, y)
    clf.partial_fit(X[:10], y[:10] % 2, classes=[0, 1, 2])  # a batch without class 2
    assert clf.classes_.tolist() == [0, 1, 2]
    assert clf.predict_proba(X).shape == (40, 3)
    steps = clf.graph_.optimizer.iterations
    clf.partial_fit(X, y)
    assert clf.n_iter_ == 2 and len(clf.loss_curve_) == 2 and clf.t_ == 50
    assert clf.graph_.optimizer.iterations > steps  # the same optimizer, state kept
    with pytest.raises(ValueError, match=r"classes \[7\] that are not in classes"):
        clf.partial_fit(X[:2], np.array([0, 7]))
    with pytest.raises(ValueError, match=r"classes=\[0, 1\] differs from classes_ \[0, 1, 2\]"):
        clf.partial_fit(X, y, classes=[0, 1])


def test_partial_fit_refuses_early_stopping(rng):
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        GraphNetRegressor(early_stopping=True).partial_fit(rng.normal(size=(9, 2)), rng.normal(size=9))


def test_partial_fit_after_fit_keeps_the_graph(rng):
    X, y = rng.normal(size=(30, 2)), rng.normal(size=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg = GraphNetRegressor(**{**SMALL, "max_iter": 3}).fit(X, y)
    graph = reg.graph_
    reg.partial_fit(X, y)
    assert reg.graph_ is graph and reg.n_iter_ == 4
    with pytest.raises(ValueError, match=r"y has 2 target column\(s\), but the regressor was fitted on 1"):
        reg.partial_fit(X, np.c_[y, y])


# ------------------------------------------------------------ stopping rules
def test_training_loss_plateau_stops_like_mlp(rng):
    X, y = rng.normal(size=(30, 2)), rng.integers(0, 2, 30)
    clf = GraphNetClassifier((4,), tol=100.0, n_iter_no_change=3, random_state=0).fit(X, y)
    # epoch 1 improves on inf, then n_iter_no_change + 1 epochs without improvement
    assert clf.n_iter_ == 5  # MLPClassifier stops after the same number
    assert clf.best_loss_ == min(clf.loss_curve_)


def test_max_iter_reached_warns():
    X, y = load_iris(return_X_y=True)
    with pytest.warns(ConvergenceWarning, match="max_iter=2 epochs reached"):
        GraphNetClassifier((4,), max_iter=2, random_state=0).fit(X, y)


def test_early_stopping_keeps_the_best_epoch():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    clf = GraphNetClassifier(
        (8,), early_stopping=True, validation_fraction=0.2, n_iter_no_change=3,
        learning_rate_init=0.05, max_iter=200, random_state=0,
    ).fit(X, y)
    assert clf.best_loss_ is None
    assert len(clf.validation_scores_) == clf.n_iter_ < 200
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    # the same split again: the restored weights score the best validation accuracy
    X_val, y_val = _mlps_validation_rows(X, y, [(30, 8), (8, 1)], 0.2, stratify=y)
    assert clf.score(X_val, y_val) == pytest.approx(clf.best_validation_score_)


def _mlps_validation_rows(X, y, layers, fraction, stratify):
    """The rows MLP* holds out for early stopping with random_state=0: its
    split drawn after the initial weights of ``layers`` ((fan_in, fan_out)
    pairs, weights then biases, as MLP draws them)."""
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state

    rs = check_random_state(0)
    for fan_in, fan_out in layers:
        rs.uniform(size=(fan_in, fan_out))
        rs.uniform(size=fan_out)
    _, X_val, _, y_val = train_test_split(X, y, test_size=fraction, random_state=rs, stratify=stratify)
    return X_val, y_val


def test_early_stopping_splits_several_classes_as_mlp_does():
    """MLPClassifier stratifies its early-stopping split for two classes
    only: 20 rows of 3 classes with validation_fraction=0.1 fit (stratifying
    refused them: 2 validation rows for 3 classes), on MLP's split."""
    X, y = load_iris(return_X_y=True)
    X, y = X[np.r_[0:7, 50:57, 100:106]], y[np.r_[0:7, 50:57, 100:106]]
    args = dict(hidden_layer_sizes=(4,), max_iter=5, early_stopping=True, random_state=0)
    with pytest.warns(ConvergenceWarning):
        MLPClassifier(**args).fit(X, y)
    with pytest.warns(ConvergenceWarning):
        clf = GraphNetClassifier(**args).fit(X, y)
    X_val, y_val = _mlps_validation_rows(X, y, [(4, 4), (4, 3)], 0.1, stratify=None)
    assert clf.score(X_val, y_val) == pytest.approx(clf.best_validation_score_)


def test_mlp_diverging_loss():
    """scikit-learn's test_mlp_diverging_loss: a diverging fit with early
    stopping does not raise; its last validation score is NaN. graphnet stops
    there (a ConvergenceWarning says so) with the best epoch's weights."""
    X_iris, y_iris = load_iris(return_X_y=True)
    reg = GraphNetRegressor(
        hidden_layer_sizes=100, activation="identity", alpha=0.0001,
        optimizer={"name": "sgd", "momentum": 0.9, "nesterov": True}, learning_rate_init=1,
        shuffle=True, max_iter=20, early_stopping=True, n_iter_no_change=10, random_state=0,
    )
    with pytest.warns(ConvergenceWarning, match=r"training diverged \(epoch \d+'s validation score is NaN\)"):
        reg.fit(X_iris, y_iris)
    assert str(reg.validation_scores_[-1]) == str(np.nan)
    assert isinstance(reg.validation_scores_[-1], float)
    assert len(reg.validation_scores_) == reg.n_iter_ < 20
    assert reg.best_validation_score_ == np.nanmax(reg.validation_scores_)
    assert np.isfinite(reg.predict(X_iris)).all()  # the best epoch's weights


def _diverging(lr: float, early_stopping: bool = True) -> GraphNetRegressor:
    """Steps of 10 rows on iris that overflow within the first epoch (lr=0.1)
    or in the second (lr=0.0086), before that epoch's validation."""
    return GraphNetRegressor(
        hidden_layer_sizes=100, activation="identity", batch_size=10, max_iter=20,
        optimizer={"name": "sgd", "momentum": 0.9, "nesterov": True}, learning_rate_init=lr,
        early_stopping=early_stopping, random_state=0,
    )


def test_a_refused_step_with_early_stopping_ends_on_the_best_epoch():
    X, y = load_iris(return_X_y=True)
    reg = _diverging(0.0086)
    with pytest.warns(ConvergenceWarning, match=r"training diverged \(a step was refused: epoch 2/20.*"
                                                r"weights of epoch 1"):
        reg.fit(X, y)
    assert len(reg.validation_scores_) == reg.n_iter_ == len(reg.loss_curve_) == 2
    assert np.isnan(reg.validation_scores_[-1]) and np.isnan(reg.loss_)
    assert np.isfinite(reg.predict(X)).all()
    with pytest.raises(gn.TrainingError, match=r"epoch \d+/20, batch"):  # without early stopping: nothing to keep
        _diverging(0.0086, early_stopping=False).fit(X, y)
    with pytest.raises(gn.TrainingError, match="epoch 1/20"):  # diverged before any epoch scored
        _diverging(0.1).fit(X, y)


def test_early_stopping_needs_two_validation_samples(rng):
    X, y = rng.normal(size=(8, 2)), rng.normal(size=8)
    with pytest.raises(ValueError, match="fewer than 2 for validation"):
        GraphNetRegressor(early_stopping=True, validation_fraction=0.1).fit(X, y)


# ------------------------------------------------------------- the graph param
def test_callable_graph_with_two_inputs_takes_columns_in_insertion_order(rng):
    X, y = rng.normal(size=(80, 5)), rng.integers(0, 3, 80)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = GraphNetClassifier(graph=two_input_classifier, max_iter=20, random_state=0).fit(X, y)
    expected = clf.graph_.predict({"head": X[:, :2], "tail": X[:, 2:]})
    np.testing.assert_allclose(clf.predict_proba(X), expected)
    assert clf.n_outputs_ == 3
    assert clf.graph_.inputs == ["head", "tail"]


def test_binary_on_a_softmax_of_two_units(rng):
    X = rng.normal(size=(60, 4))
    y = np.where(X[:, 0] > 0, "yes", "no")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = GraphNetClassifier(
            graph=lambda n, k: two_input_classifier(n, 2), max_iter=50,
            learning_rate_init=0.01, random_state=0,
        ).fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.shape == (60, 2) and clf.n_outputs_ == 2
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])
    assert clf.score(X, y) > 0.9


def test_regressor_splits_targets_over_several_outputs(rng):
    def two_heads(n_features, n_outputs):
        g = gn.Graph(name="heads", seed=0, dtype="float64")
        g.add_input("x", n_features)
        g.add_hidden("h", 8, activation="tanh")
        g.add_output("first", 1)
        g.add_output("rest", n_outputs - 1)
        g.connect("x", "h")
        g.connect("h", "first")
        g.connect(["h", "x"], "rest")
        return g

    X = rng.normal(size=(50, 3))
    Y = np.c_[X[:, 0], X[:, 1] - X[:, 2], X[:, 2]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg = GraphNetRegressor(graph=two_heads, max_iter=10, random_state=0).fit(X, Y)
    out = reg.graph_.predict(X)
    np.testing.assert_allclose(reg.predict(X), np.hstack([out["first"], out["rest"]]))


def test_spec_dict_with_wrong_sizes_is_refused_clearly(rng):
    spec = {
        "nodes": [
            {"kind": "input", "name": "x", "size": 3},
            {"kind": "output", "name": "y", "size": 4, "activation": "softmax",
             "loss": "categorical_crossentropy"},
        ],
        "synapses": [["x", "y"]],
    }
    X, y = rng.normal(size=(20, 3)), rng.integers(0, 3, 20)
    with pytest.raises(ValueError, match=r"output 'y' \(softmax, 4 units.*does not fit a 3-class"):
        GraphNetClassifier(graph=spec).fit(X, y)
    with pytest.raises(ValueError, match=r"inputs 'x' \(3\) take 3 columns in all, but X has 2"):
        GraphNetClassifier(graph=spec).fit(X[:, :2], y)
    with pytest.raises(ValueError, match=r"outputs 'y' \(4\) have 4 units in all, but y has 1"):
        GraphNetRegressor(graph=spec).fit(X, y.astype(float))


def test_spec_dict_without_seed_follows_random_state(rng):
    spec = skip_dag(3, 1).to_dict()
    spec["seed"] = None
    X, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    fits = []
    for _ in range(2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fits.append(GraphNetRegressor(graph=spec, max_iter=2, random_state=5).fit(X, y).predict(X))
    np.testing.assert_array_equal(fits[0], fits[1])
    assert spec["seed"] is None  # the parameter itself is never changed


def test_what_the_user_passed_is_never_trained(rng):
    graph = skip_dag(3, 1)
    weights = graph.get_weights()
    optimizer = gn.optimizers.Adam(lr=0.02)
    X, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg = GraphNetRegressor(graph=graph, optimizer=optimizer, max_iter=3).fit(X, y)
    assert reg.graph_ is not graph
    for key, value in graph.get_weights().items():
        np.testing.assert_array_equal(value, weights[key])
    assert optimizer.iterations == 0 and optimizer.slots == {}
    assert reg.graph_.optimizer is not optimizer and reg.graph_.optimizer.lr == 0.02


def test_a_failed_refit_leaves_the_fitted_estimator_as_it_was(rng):
    X, y = rng.normal(size=(20, 3)), rng.integers(0, 2, 20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = GraphNetClassifier((4,), max_iter=2, random_state=0).fit(X, y)
    graph, classes = clf.graph_, clf.classes_
    clf.set_params(graph=lambda n, k: skip_dag(n, k))  # a linear output: no classifier
    with pytest.raises(ValueError, match="does not fit a 2-class target"):
        clf.fit(X, y + 5)
    assert clf.graph_ is graph and clf.classes_.tolist() == classes.tolist()


def test_callable_must_return_a_graph(rng):
    with pytest.raises(ValueError, match="the callable must return a graphnet Graph, got dict"):
        GraphNetRegressor(graph=lambda n, k: {}).fit(rng.normal(size=(5, 2)), rng.normal(size=5))


# ----------------------------------------------------------------- parameters
@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"hidden_layer_sizes": (8, 0)}, r"hidden_layer_sizes must be a positive integer.*\(8, 0\)"),
        ({"hidden_layer_sizes": "wide"}, "hidden_layer_sizes must be"),
        ({"activation": "prelu"}, r"activation: unknown activation 'prelu'"),
        ({"alpha": -1.0}, r"alpha must be a finite number >= 0.0, got -1.0"),
        ({"batch_size": 0}, r"batch_size must be 'auto' or a positive integer, got 0"),
        ({"learning_rate_init": 0}, r"learning_rate_init must be a finite number > 0.0"),
        ({"max_iter": 2.5}, r"max_iter must be a positive integer, got 2.5"),
        ({"validation_fraction": 1.0}, r"validation_fraction must be in \(0, 1\)"),
        ({"n_iter_no_change": 0}, "n_iter_no_change must be a positive integer"),
        ({"optimizer": "adagrad"}, r"unknown optimizer 'adagrad'; known: \["),
        ({"optimizer": 3}, "optimizer must be a name"),
        ({"graph": 3}, "graph must be None"),
    ],
)
def test_bad_parameters_are_refused_at_fit(rng, params, match):
    clf = GraphNetClassifier(**params)  # never in __init__ (scikit-learn's rule)
    with pytest.raises(ValueError, match=match):
        clf.fit(rng.normal(size=(10, 2)), rng.integers(0, 2, 10))


def test_mlp_activation_names_and_optimizer_configs(rng):
    X, y = rng.normal(size=(20, 2)), rng.integers(0, 2, 20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = GraphNetClassifier(
            (3, 2), activation="logistic", optimizer={"name": "sgd", "momentum": 0.9},
            learning_rate_init=0.3, max_iter=2,
        ).fit(X, y)
    assert [clf.graph_.nodes[n].activation.name for n in ("dense", "dense_1")] == ["sigmoid"] * 2
    assert clf.graph_.optimizer.get_config()["momentum"] == 0.9
    assert clf.graph_.optimizer.lr == 0.3
    with pytest.raises(ValueError, match=r"^activation: unknown activation 'relux'; known: \[.*'identity'.*'logistic'"
                                         r".*\] \(a custom activation's class is made known with gn.register\(cls\)\); "
                                         r"did you mean 'relu'\?$") as info:
        GraphNetClassifier(activation="relux", max_iter=2).fit(X, y)
    assert "custom_objects" not in str(info.value) and "gn.load" not in str(info.value)


# --------------------------------------------------------------- data shapes
def test_multilabel_predictions_keep_the_label_dtype():
    X, Y = make_multilabel_classification(n_samples=80, n_classes=4, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = GraphNetClassifier(**SMALL).fit(X, Y)
    assert clf.classes_.tolist() == [0, 1, 2, 3]
    assert clf.predict(X).dtype == Y.dtype and clf.predict(X).shape == (80, 4)
    proba = clf.predict_proba(X)
    np.testing.assert_array_equal(clf.predict(X), (proba > 0.5).astype(Y.dtype))
    assert clf.graph_.nodes[clf.graph_.outputs[0]].loss_weight == 4.0


def test_multiclass_multioutput_is_refused(rng):
    with pytest.raises(ValueError, match="does not support multiclass-multioutput"):
        GraphNetClassifier().fit(rng.normal(size=(10, 2)), rng.integers(0, 3, (10, 2)))


def test_one_class_is_refused(rng):
    with pytest.raises(ValueError, match="needs at least two classes, but got only one class"):
        GraphNetClassifier().fit(rng.normal(size=(10, 2)), np.ones(10))


def test_regressor_keeps_a_column_vector_target(rng):
    X, y = rng.normal(size=(20, 2)), rng.normal(size=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        assert GraphNetRegressor(**SMALL).fit(X, y).predict(X).shape == (20,)
        assert GraphNetRegressor(**SMALL).fit(X, y[:, None]).predict(X).shape == (20, 1)


def test_sparse_input_gives_what_dense_input_gives(rng):
    X = rng.normal(size=(2500, 6)) * (rng.random((2500, 6)) < 0.3)
    y = (X.sum(axis=1) > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        dense = GraphNetClassifier(**{**SMALL, "max_iter": 3}).fit(X, y)
        sparse = GraphNetClassifier(**{**SMALL, "max_iter": 3}).fit(sp.csr_matrix(X), y)
    np.testing.assert_allclose(sparse.predict_proba(X), dense.predict_proba(X), atol=1e-12)
    np.testing.assert_allclose(dense.predict_proba(sp.csc_matrix(X)), dense.predict_proba(X))


def test_float32_data_trains_a_float32_graph(rng):
    X, y = rng.normal(size=(30, 3)).astype(np.float32), rng.integers(0, 3, 30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = GraphNetClassifier(**{**SMALL, "max_iter": 2}).fit(X, y)
    assert clf.graph_.dtype == np.float32
    assert clf.predict_proba(X).dtype == np.float32


def test_predict_before_fit_raises(rng):
    with pytest.raises(NotFittedError):
        GraphNetRegressor().predict(rng.normal(size=(3, 2)))


def test_warm_start_continues_from_the_weights(rng):
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 2, 40)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = GraphNetClassifier(**{**SMALL, "max_iter": 20, "warm_start": True}).fit(X, y)
        graph, last = clf.graph_, clf.loss_curve_[-1]
        clf.fit(X, y)
    assert clf.graph_ is graph and len(clf.loss_curve_) == 40 and clf.n_iter_ == 20
    assert clf.loss_curve_[20] < clf.loss_curve_[0] and clf.loss_curve_[20] < last * 1.5
    with pytest.raises(ValueError, match="warm_start needs y to have the same classes"):
        clf.fit(X, y + 1)


def test_verbose_prints_a_line_per_epoch(rng, capsys):
    X, y = rng.normal(size=(20, 2)), rng.normal(size=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        GraphNetRegressor((3,), max_iter=2, verbose=True).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("Epoch 1/2") and "loss:" in lines[0]


def test_feature_names_are_kept_and_checked(rng):
    pd = pytest.importorskip("pandas", reason="pandas is not installed")
    frame = pd.DataFrame(rng.normal(size=(20, 3)), columns=["a", "b", "c"])
    y = rng.integers(0, 2, 20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = GraphNetClassifier(**{**SMALL, "max_iter": 2}).fit(frame, y)
    assert clf.feature_names_in_.tolist() == ["a", "b", "c"]
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(frame[["c", "b", "a"]])


def test_pickled_estimator_with_a_spec_graph(rng):
    spec = skip_dag(3, 2).to_dict()
    X, Y = rng.normal(size=(20, 3)), rng.normal(size=(20, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg = GraphNetRegressor(graph=spec, max_iter=2, random_state=0).fit(X, Y)
    again = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(again.predict(X), reg.predict(X))
    assert again.get_params()["graph"] == spec


def test_n_iter_no_change_may_be_infinite_as_scikit_learn_documents(rng):
    """np.inf turns the stopping rule off: every one of max_iter epochs runs."""
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 2, 40)
    with pytest.warns(ConvergenceWarning):
        clf = GraphNetClassifier((4,), max_iter=12, tol=10.0, n_iter_no_change=np.inf, random_state=0).fit(X, y)
    assert clf.n_iter_ == 12
    stopped = GraphNetClassifier((4,), max_iter=12, tol=10.0, n_iter_no_change=2, random_state=0).fit(X, y)
    assert stopped.n_iter_ == 4  # one improving epoch, then more than 2 without
    with pytest.raises(ValueError, match="n_iter_no_change must be a positive integer or np.inf, got 2.5"):
        GraphNetClassifier(n_iter_no_change=2.5).fit(X, y)


@pytest.mark.parametrize("target", ["multiclass", "regression"])
def test_sample_weights_train_exactly_as_mlp(rng, target):
    """MLP*'s weighted loss (np.average) and its L2 term divided by the batch's
    sum of weights: the same weights as graphnet's engine to 1e-12."""
    X = rng.normal(size=(50, 4))
    y = rng.integers(0, 3, 50) if target == "multiclass" else rng.normal(size=50)
    w = rng.uniform(0, 3, 50)
    w[:5] = 0.0
    params = dict(hidden_layer_sizes=(5,), activation="tanh", alpha=0.5, batch_size=16,
                  learning_rate_init=0.05, shuffle=False, max_iter=5, tol=0.0)
    regression = target == "regression"
    mlp, ours = _mlp_and_graphnet_from_same_start(
        MLPRegressor if regression else MLPClassifier, GraphNetRegressor if regression else GraphNetClassifier,
        X, y, sample_weight=w, **params,
    )
    weights = ours.graph_.get_weights()
    np.testing.assert_allclose(weights["input->dense.weight"], mlp.coefs_[0], atol=1e-12)
    np.testing.assert_allclose(weights["dense_1.bias"], mlp.intercepts_[1], atol=1e-12)



# ---------------------------------------------- frames with categorical columns
def _table(rng, n: int = 60) -> dict:
    return {"age": rng.uniform(18, 80, n).round(), "income": rng.lognormal(1, 0.4, n),
            "city": rng.choice(["lyon", "oslo", "lima"], n).tolist()}


def _labels(columns: dict) -> np.ndarray:
    return np.where(np.asarray(columns["age"]) < 40, "young", np.where(np.asarray(columns["city"]) == "oslo",
                                                                      "oslo", "other"))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("columns", [["age", "income"], ["city", "age", "income"]])
def test_polars_frames_are_read_as_pandas_frames_are(rng, columns):
    """Numbers are numbers (integral floats too), String, Categorical and Enum
    columns are categories: the same fit and predictions as from pandas."""
    pd = pytest.importorskip("pandas")
    pl = pytest.importorskip("polars")
    data = _table(rng)
    y = _labels(data)
    frame, polars_frame = pd.DataFrame(data)[columns], pl.DataFrame(data).select(columns)
    ours = GraphNetClassifier((8,), max_iter=20, random_state=0).fit(polars_frame, y)
    ref = GraphNetClassifier((8,), max_iter=20, random_state=0).fit(frame, y)
    assert list(ours.feature_names_in_) == columns and ours.n_features_in_ == len(columns)
    assert not any(ours.graph_.nodes[name].categorical for name in ours.graph_.inputs if name != "city")
    np.testing.assert_allclose(ours.predict_proba(polars_frame), ref.predict_proba(frame), atol=1e-12)
    if "city" in columns:
        for dtype in (pl.Categorical, pl.Enum(["lima", "lyon", "oslo"])):
            other = pl.DataFrame(data).with_columns(pl.col("city").cast(dtype))
            again = GraphNetClassifier((8,), max_iter=20, random_state=0).fit(other, y)
            np.testing.assert_allclose(again.predict_proba(other), ref.predict_proba(frame), atol=1e-12)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_feature_names_in_are_x_s_columns_in_x_s_order(rng):
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(_table(rng))[["city", "income", "age"]]
    clf = GraphNetClassifier((8,), max_iter=5, random_state=0).fit(X, _labels(X))
    assert clf.feature_names_in_.tolist() == ["city", "income", "age"] and clf.feature_names_in_.dtype == object
    np.testing.assert_array_equal(clf.predict_proba(X[["age", "city", "income"]]), clf.predict_proba(X))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_warm_start_and_partial_fit_continue_on_a_table(rng):
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(_table(rng))
    y = _labels(X)
    clf = GraphNetClassifier((8,), max_iter=5, warm_start=True, random_state=0).fit(X, y)
    graph = clf.graph_
    clf.fit(X[::-1], y[::-1])
    assert clf.graph_ is graph and len(clf.loss_curve_) == 10 and clf.n_iter_ == 5
    reg = GraphNetRegressor((8,), random_state=0)
    for _ in range(3):
        reg.partial_fit(X, X["income"])
    assert reg.n_iter_ == 3 and reg.feature_names_in_.tolist() == ["age", "income", "city"]
    assert len(reg.loss_curve_) == 3 and reg.loss_curve_[-1] < reg.loss_curve_[0]


def test_a_refused_fit_leaves_the_estimator_as_it_was(rng):
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(_table(rng))
    y = _labels(X)
    for bad in (X.assign(age=np.inf), X[["age", "income"]].assign(age=np.inf)):  # a table, and numbers only
        clf = GraphNetClassifier((8,), max_iter=5, random_state=0)
        with pytest.raises(ValueError, match="inf"):
            clf.fit(bad, y)
        assert vars(clf) == vars(GraphNetClassifier((8,), max_iter=5, random_state=0))
        with pytest.raises(NotFittedError):
            clf.predict(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    before, proba = dict(vars(clf)), clf.predict_proba(X)
    with pytest.raises(ValueError, match="inf"):
        clf.fit(X[["age", "income"]].assign(age=np.inf), y)
    assert vars(clf) == before
    before = dict(vars(clf.set_params(warm_start=True)))
    optimizer, draw = clf.graph_.optimizer, clf._random_state.get_state()[1].copy()
    with pytest.raises(ValueError, match="inf"):
        clf.fit(X.assign(age=np.inf), y)
    assert vars(clf) == before and clf.graph_.optimizer is optimizer
    np.testing.assert_array_equal(clf._random_state.get_state()[1], draw)
    np.testing.assert_array_equal(clf.predict_proba(X), proba)


def test_a_fit_that_fails_while_training_keeps_the_earlier_model():
    X, y = load_iris(return_X_y=True)
    reg = _diverging(0.01, early_stopping=False)
    with pytest.raises(gn.TrainingError):
        reg.fit(X, y)
    with pytest.raises(NotFittedError):
        reg.predict(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.set_params(learning_rate_init=1e-4).fit(X, y)
    predicted = reg.predict(X)
    with pytest.raises(gn.TrainingError):
        reg.set_params(learning_rate_init=0.01).fit(X, y)
    np.testing.assert_array_equal(reg.predict(X), predicted)
    assert reg.n_iter_ == len(reg.loss_curve_) == 20


def test_dates_and_durations_in_a_frame_are_refused_naming_the_column(rng):
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(_table(rng))
    y = _labels(X)
    when = pd.date_range("2020-01-01", periods=len(X))
    for bad in (X.assign(when=when), X[["age"]].assign(when=when), X.assign(when=when - when[0])):
        with pytest.raises(ValueError, match=r"column 'when' has dtype (datetime|timedelta)64.*takes numbers"):
            GraphNetClassifier((8,), max_iter=2).fit(bad, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = GraphNetClassifier((8,), max_iter=2).fit(X, y)
    with pytest.raises(ValueError, match=r"column 'age' has dtype datetime64"):
        clf.predict(X.assign(age=when))
    pl = pytest.importorskip("polars")
    with pytest.raises(ValueError, match=r"column 'when' has dtype Datetime"):
        # Python datetimes: older polars took pandas' Timestamps as objects.
        frame = pl.DataFrame({**X.to_dict("list"), "when": list(when.to_pydatetime())})
        GraphNetClassifier((8,), max_iter=2).fit(frame, y)


class _CountingColumns(tuple):
    """A tuple of column names that counts the lookups in it."""

    lookups = 0

    def __contains__(self, name):
        type(self).lookups += 1
        return super().__contains__(name)


def test_a_table_of_many_categorical_columns_is_split_in_one_pass(rng):
    """Each column asked whether it is categorical once, not once per column
    (predict on 1,600 categorical columns took 17 s)."""
    pd = pytest.importorskip("pandas", reason="pandas is not installed")
    from graphnet.sklearn._tables import Layout

    frame = pd.DataFrame({f"k{i}": rng.choice(["a", "b"], 5) for i in range(300)} | {"n": rng.normal(size=5)})
    layout = Layout.of(frame)
    counted = Layout(layout.columns, _CountingColumns(layout.categorical))
    _CountingColumns.lookups = 0
    block = counted.block(frame)
    assert block.shape == (5, 301) and list(block[:, 0]) == list(frame["n"])
    assert _CountingColumns.lookups <= 301, f"{_CountingColumns.lookups} lookups for 301 columns"
