"""One library on one task of the quality panel, in a process of its own.

``python -m benchmarks.quality_worker LIBRARY TASK[,TASK...] [--seeds 0,1,2,3,4]
[--quick] [--graphnet-init NAME | hidden=NAME,output=NAME]`` trains one model
per task and seed and prints one JSON line per task: the test metric and the
training time (the ``fit`` call or loop only) per seed.

Each library runs with its own defaults for everything the panel does not
fix: graphnet's initialisers, PyTorch's ``nn.Linear`` (weights and biases
``U(±1/sqrt(fan_in))``), Keras 3's ``Dense`` (Glorot-uniform weights, zero
biases) on the torch backend, scikit-learn's ``MLPRegressor``/``MLPClassifier``
(Glorot-style uniform weights and biases). What the panel fixes is the same
for all: the data, the architecture, the epochs, batch 32, Adam with
learning rate 1e-3 (each library's other Adam defaults), no weight penalty
(scikit-learn's ``alpha=0``), a reshuffle every epoch, no early stopping.

numpy and PyTorch slow each other down in one process (ENGINE-NOTES), and
Keras imports torch: every library gets a process of its own (one for all
the tasks: importing Keras takes longer than training a task).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np

from .quality_tasks import Task, get, make_data, score

LIBRARIES = ("graphnet", "torch", "keras", "sklearn")
BATCH = 32
LR = 1e-3


def _labels(task: Task, out: np.ndarray) -> np.ndarray:
    """Class labels from an output of probabilities (or logits)."""
    if task.output == "sigmoid":
        return (out[:, 0] > 0.5).astype(np.int64) if out.ndim == 2 else (out > 0.5).astype(np.int64)
    return out.argmax(axis=1)


def layer_inits(init: str | None) -> tuple[str | None, str | None]:
    """``(hidden, output)`` initialiser names from ``--graphnet-init``: ``NAME``
    for every layer, or ``hidden=NAME`` and/or ``output=NAME`` (comma-separated);
    None keeps graphnet's default there."""
    if not init:
        return None, None
    if "=" not in init:
        return init, init
    given = dict(part.split("=", 1) for part in init.split(","))
    unknown = set(given) - {"hidden", "output"}
    if unknown:
        raise ValueError(f"--graphnet-init: unknown layer kind(s) {sorted(unknown)}; use hidden= and output=")
    return given.get("hidden"), given.get("output")


def train_graphnet(task: Task, data, seed: int, epochs: int, init: str | None = None):
    """``(test score, fit seconds)`` with graphnet's defaults, or the initialisers
    ``init`` names (see :func:`layer_inits`; a study, not the panel)."""
    import graphnet as gn

    hidden_init, output_init = layer_inits(init)
    loss = {"linear": "mse", "sigmoid": "binary_crossentropy", "softmax": "categorical_crossentropy"}[task.output]
    layers = [gn.Input(task.sizes[0])]
    layers += [gn.Dense(n, activation=task.hidden, init=hidden_init) for n in task.sizes[1:-1]]
    layers.append(gn.Dense(task.sizes[-1], activation=task.output, init=output_init))
    model = gn.Sequential(layers, loss=loss, seed=seed, name=task.name)
    y = data["y_train"]
    if task.output == "sigmoid":
        y = y.astype(np.float32)[:, None]
    start = time.perf_counter()
    model.fit(data["x_train"], y, epochs=epochs, batch_size=BATCH, optimizer=gn.optimizers.Adam(lr=LR), verbose=0)
    seconds = time.perf_counter() - start
    out = model.predict(data["x_test"])
    pred = out if task.metric != "accuracy" else _labels(task, out)
    return score(task, data["y_test"], pred), seconds


def train_torch(task: Task, data, seed: int, epochs: int):
    """``(test score, loop seconds)``: ``nn.Linear`` layers, the usual tight loop, fused losses on logits."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    act = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}[task.hidden]
    layers = []
    for i, (a, b) in enumerate(zip(task.sizes, task.sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(task.sizes) - 2:
            layers.append(act())
    net = torch.nn.Sequential(*layers)
    x = torch.from_numpy(data["x_train"])
    y = torch.from_numpy(data["y_train"])
    if task.output == "sigmoid":
        y = y.float()[:, None]
    loss_fn = {"linear": F.mse_loss, "sigmoid": F.binary_cross_entropy_with_logits,
               "softmax": F.cross_entropy}[task.output]
    optimizer = torch.optim.Adam(net.parameters(), lr=LR)
    rows = x.shape[0]
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(rows)
        for lo in range(0, rows, BATCH):
            index = order[lo : lo + BATCH]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net(x.index_select(0, index)), y.index_select(0, index))
            loss.backward()
            optimizer.step()
    seconds = time.perf_counter() - start
    with torch.inference_mode():
        out = net(torch.from_numpy(data["x_test"]))
        if task.output == "sigmoid":
            out = torch.sigmoid(out)
    out = out.numpy()
    pred = out if task.metric != "accuracy" else _labels(task, out)
    return score(task, data["y_test"], pred), seconds


def train_keras(task: Task, data, seed: int, epochs: int):
    """``(test score, fit seconds)``: ``keras.Sequential`` of ``Dense`` layers, ``fit``'s defaults."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((task.sizes[0],))]
        + [keras.layers.Dense(n, activation=task.hidden) for n in task.sizes[1:-1]]
        + [keras.layers.Dense(task.sizes[-1], activation=task.output)]
    )
    loss = {"linear": "mse", "sigmoid": "binary_crossentropy", "softmax": "sparse_categorical_crossentropy"}
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=LR), loss=loss[task.output])
    y = data["y_train"]
    if task.output == "sigmoid":
        y = y.astype(np.float32)[:, None]
    start = time.perf_counter()
    model.fit(data["x_train"], y, batch_size=BATCH, epochs=epochs, shuffle=True, verbose=0)
    seconds = time.perf_counter() - start
    out = np.asarray(model.predict(data["x_test"], batch_size=1024, verbose=0))
    pred = out if task.metric != "accuracy" else _labels(task, out)
    return score(task, data["y_test"], pred), seconds


def train_sklearn(task: Task, data, seed: int, epochs: int):
    """``(test score, fit seconds)``: ``MLPRegressor``/``MLPClassifier`` with solver adam, every epoch run."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    # tol=0 and n_iter_no_change=epochs: no stop on a plateau, exactly `epochs` epochs.
    options = dict(hidden_layer_sizes=task.sizes[1:-1], activation=task.hidden, solver="adam", alpha=0.0,
                   batch_size=BATCH, learning_rate_init=LR, max_iter=epochs, shuffle=True, random_state=seed,
                   tol=0.0, n_iter_no_change=epochs, early_stopping=False)
    model = (MLPRegressor if task.output == "linear" else MLPClassifier)(**options)
    y = data["y_train"]
    if task.output == "linear" and y.shape[1] == 1:
        y = y[:, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # it is told to stop after `epochs`
        start = time.perf_counter()
        model.fit(data["x_train"], y)
        seconds = time.perf_counter() - start
    if model.n_iter_ != epochs:
        raise RuntimeError(f"scikit-learn ran {model.n_iter_} epochs, not {epochs}")
    pred = model.predict(data["x_test"])
    return score(task, data["y_test"], pred), seconds


TRAINERS = {"graphnet": train_graphnet, "torch": train_torch, "keras": train_keras, "sklearn": train_sklearn}


def version(library: str) -> str:
    if library == "graphnet":
        import graphnet

        return f"graphnet {graphnet.__version__}"
    if library == "torch":
        import torch

        return f"torch {torch.__version__}"
    if library == "keras":
        import keras

        return f"keras {keras.__version__} ({keras.backend.backend()} backend)"
    import sklearn

    return f"scikit-learn {sklearn.__version__}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality_worker")
    parser.add_argument("library", choices=LIBRARIES)
    parser.add_argument("tasks", help="comma-separated task names")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--graphnet-init", default=None,
                        help="NAME for every graphnet layer, or hidden=NAME,output=NAME (default: its defaults)")
    args = parser.parse_args(argv)
    if args.library == "keras":
        os.environ.setdefault("KERAS_BACKEND", "torch")
    tasks = [get(name) for name in args.tasks.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.library in ("torch", "keras"):
        import torch

        torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    train = TRAINERS[args.library]
    extra = {"init": args.graphnet_init} if args.library == "graphnet" and args.graphnet_init else {}
    name = version(args.library)
    for i, task in enumerate(tasks):
        epochs = task.quick_epochs if args.quick else task.epochs
        data = make_data(task)
        if i == 0:  # warm-up on a throwaway model: code paths, compilers, caches
            train(task, data, 1000, 1, **extra)
        scores, seconds = [], []
        for seed in seeds:
            s, t = train(task, data, seed, epochs, **extra)
            scores.append(s)
            seconds.append(t)
        print(json.dumps({"library": name, "task": task.name, "epochs": epochs, "seeds": seeds, "scores": scores,
                          "seconds": seconds, **({"init": args.graphnet_init} if extra else {})}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
