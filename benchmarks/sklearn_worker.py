"""scikit-learn's MLPClassifier / MLPRegressor on one workload, in a process of its own.

Run as ``python -m benchmarks.sklearn_worker W1 [--quick]``; prints one JSON
line. Settings match the others: relu, Adam (lr 1e-3), no L2 penalty
(``alpha=0``), the same batch size, float32 data (scikit-learn keeps float32),
and one ``partial_fit`` per epoch so that epochs can be timed one by one.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
import warnings

from .workloads import MLP, Predict, get, make_data


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("workload")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        import numpy as np
        import sklearn
        from sklearn.neural_network import MLPClassifier, MLPRegressor
    except ImportError as exc:
        print(json.dumps({"skipped": f"scikit-learn is not installed ({exc})"}))
        return
    workload = get(args.workload, args.quick)
    if not isinstance(workload, (MLP, Predict)):
        print(json.dumps({"skipped": "no scikit-learn counterpart"}))
        return
    reps = args.reps or workload.reps
    data = make_data(workload)
    hidden = workload.sizes[1:-1]
    warnings.filterwarnings("ignore")  # ConvergenceWarning after a fixed epoch count
    if isinstance(workload, Predict):
        model = MLPClassifier(hidden_layer_sizes=hidden, max_iter=1, alpha=0.0)
        x = data["x"]
        model.partial_fit(x[:256], np.arange(256) % workload.sizes[-1], classes=np.arange(workload.sizes[-1]))
        model.predict_proba(x[: workload.chunk])  # warm-up
        timing = _time(lambda: model.predict_proba(x), reps)
    else:
        x, y = data["x"], data["y"]
        if workload.output == "linear":
            model = MLPRegressor(hidden_layer_sizes=hidden, solver="adam", batch_size=workload.batch,
                                 alpha=0.0, learning_rate_init=1e-3, shuffle=True, random_state=0)
            y = y[:, 0]
            fit = model.partial_fit
        else:
            model = MLPClassifier(hidden_layer_sizes=hidden, solver="adam", batch_size=workload.batch,
                                  alpha=0.0, learning_rate_init=1e-3, shuffle=True, random_state=0)
            if workload.output == "sigmoid":
                y = y[:, 0].astype(np.int64)
            classes = np.unique(y)

            def fit(xs, ys):
                return model.partial_fit(xs, ys, classes=classes)

        fit(x[: 8 * workload.batch], y[: 8 * workload.batch])  # warm-up (also builds the layers)

        def rep():
            for _ in range(workload.epochs_per_rep):
                fit(x, y)

        timing = _time(rep, reps)
        timing["dtype"] = str(model.coefs_[0].dtype)
    print(json.dumps({"library": f"scikit-learn {sklearn.__version__}", "variants": {"sklearn": timing}}))


def _time(fn, reps: int) -> dict:
    times = []
    for _ in range(reps):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"times": times, "median": statistics.median(times)}


if __name__ == "__main__":
    sys.exit(main())
