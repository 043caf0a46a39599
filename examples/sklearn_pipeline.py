"""graphnet inside scikit-learn: a Pipeline, cross_val_score, GridSearchCV over
DAG architectures, and joblib.dump -- on the digits data set.

Run: python examples/sklearn_pipeline.py   (needs the sklearn extra)
"""

from __future__ import annotations

import io
import time
import warnings

import joblib
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score, train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from graphnet.sklearn import GraphNetClassifier


def skip_spec(n_features: int, hidden: int, n_classes: int) -> dict:
    """A DAG that is not a stack: the pixels also reach the output directly."""
    return {
        "name": f"skip{hidden}",
        "nodes": [
            {"kind": "input", "name": "pixels", "size": n_features},
            {"kind": "hidden", "name": "h", "size": hidden, "activation": "relu"},
            {"kind": "output", "name": "digit", "size": n_classes, "activation": "softmax",
             "loss": "categorical_crossentropy"},
        ],
        "synapses": [["pixels", "h"], ["h", "digit"], ["pixels", "digit"]],
    }


def main() -> None:
    warnings.simplefilter("ignore", ConvergenceWarning)
    X, y = load_digits(return_X_y=True)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)

    print("5-fold cross-validation on digits, StandardScaler + a (100,) network:")
    for name, model in [
        ("MLPClassifier", MLPClassifier(hidden_layer_sizes=(100,), random_state=0)),
        ("GraphNetClassifier", GraphNetClassifier(hidden_layer_sizes=(100,), random_state=0)),
    ]:
        started = time.perf_counter()
        scores = cross_val_score(make_pipeline(StandardScaler(), model), X, y, cv=folds)
        print(f"  {name:<19} accuracy {scores.mean():.4f} ± {scores.std():.4f}  "
              f"({time.perf_counter() - started:.1f} s)")

    X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)
    pipe = make_pipeline(StandardScaler(), GraphNetClassifier(max_iter=100, random_state=0))
    grid = {
        "graphnetclassifier__graph": [None, skip_spec(64, 32, 10), skip_spec(64, 128, 10)],
        "graphnetclassifier__alpha": [1e-4, 1e-2],
    }
    started = time.perf_counter()
    search = GridSearchCV(pipe, grid, cv=3, n_jobs=2).fit(X_train, y_train)
    best = search.best_params_
    graph = best["graphnetclassifier__graph"]
    print(f"\nGridSearchCV (n_jobs=2) over 3 architectures x 2 alphas in "
          f"{time.perf_counter() - started:.1f} s:")
    print(f"  best: graph={'the default (100,) stack' if graph is None else graph['name']}, "
          f"alpha={best['graphnetclassifier__alpha']}, cv accuracy {search.best_score_:.4f}")
    print(f"  held-out accuracy of the refitted best pipeline: {search.score(X_test, y_test):.4f}")

    buffer = io.BytesIO()
    joblib.dump(search.best_estimator_, buffer)
    size = buffer.tell()
    buffer.seek(0)
    restored = joblib.load(buffer)
    same = np.array_equal(restored.predict_proba(X_test), search.best_estimator_.predict_proba(X_test))
    print(f"\njoblib.dump of the best pipeline: {size / 1024:.0f} KiB; "
          f"reloaded predictions identical: {same}")
    network = restored[-1].graph_
    print(f"  its graph: {network!r}")


if __name__ == "__main__":
    main()
