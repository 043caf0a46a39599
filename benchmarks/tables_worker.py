"""One library on the tables of the tabular benchmark, in a process of its own.

``python -m benchmarks.tables_worker LIBRARY [--seeds 0,1,2,3,4] [--quick]``
prints one JSON line per table: the test metric and the training time per
seed. ``LIBRARY`` ``embedding`` times graphnet's embedding path against the
same net fed a dense one-hot matrix instead.

The same net everywhere: each categorical column and the numbers into a
relu layer of 32 (a categorical column's weights are an embedding table:
graphnet's categorical input, ``nn.Embedding``, Keras's ``Embedding``, or
scikit-learn's one-hot columns into the first layer, which is the same
function), a relu layer of 16, the output; 100 epochs, batch 32, Adam with
learning rate 1e-3, no weight penalty, each library's own initialisation.
Preprocessing: graphnet takes the DataFrame itself (inputs with
``categories="adapt"``, ``normalize=True``, ``missing="mean"``);
scikit-learn a ``Pipeline`` of a ``ColumnTransformer`` (``SimpleImputer``,
``StandardScaler``, ``OneHotEncoder``) and its MLP; Keras normalises with its
``Normalization`` layer and embeds category codes (its ``StringLookup``
needs TensorFlow, which this benchmark does not install, and it has no
imputation layer: codes and the mean fill are made outside the model, and
not timed); PyTorch gets standardised numbers and codes made outside (not
timed). The time is the training call or loop only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from .tables_data import TABLES, encode, load

LIBRARIES = ("graphnet", "torch", "keras", "sklearn")
H1, H2, EPOCHS, BATCH, LR = 32, 16, 100, 32, 1e-3


def _score(table, predicted, truth, scale) -> float:
    if table.metric == "accuracy":
        return float(np.mean(np.asarray(predicted) == np.asarray(truth)))
    predicted = np.asarray(predicted, np.float64).reshape(-1) * scale[1] + scale[0]
    return float(np.sqrt(np.mean((predicted - np.asarray(truth, np.float64)) ** 2)))


def graphnet(table, train, test, seed, epochs):
    import graphnet as gn

    (_, y), _, _, scale = encode(table, train, test)
    g = gn.Graph(name=table.name, seed=seed)
    for column in table.categorical:
        g.add_input(column, categories="adapt")
    g.add_input("numbers", columns=list(table.numeric), normalize=True, missing="mean")
    g.add_hidden("h1", H1)
    g.add_hidden("h2", H2)
    g.connect([*table.categorical, "numbers"], "h1")
    g.connect("h1", "h2")
    if table.metric == "accuracy":
        k = train[table.target].nunique()
        g.add_output(table.target, k, activation="softmax", loss="categorical_crossentropy", classes="adapt")
        target = train[table.target]
    else:
        g.add_output(table.target, 1)
        target = y
    g.connect("h2", table.target)
    start = time.perf_counter()
    g.fit(train, target, epochs=epochs, batch_size=BATCH, optimizer=gn.optimizers.Adam(lr=LR), verbose=0)
    seconds = time.perf_counter() - start
    predicted = g.predict_labels(test) if table.metric == "accuracy" else g.predict(test)
    return _score(table, predicted, test[table.target], scale), seconds


def torch_(table, train, test, seed, epochs):
    import torch
    from torch import nn

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    (xtr, ytr), (xte, _), sizes, scale = encode(table, train, test)
    k = train[table.target].nunique() if table.metric == "accuracy" else 1

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.tables = nn.ModuleDict({c: nn.Embedding(sizes[c], H1) for c in table.categorical})
            self.numbers = nn.Linear(len(table.numeric), H1)
            self.h2, self.out = nn.Linear(H1, H2), nn.Linear(H2, k)

        def forward(self, x):
            z = self.numbers(x["numbers"]) + sum(self.tables[c](x[c]) for c in table.categorical)
            return self.out(torch.relu(self.h2(torch.relu(z))))

    net = net_ = Net()
    optimizer = torch.optim.Adam(net.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss() if table.metric == "accuracy" else nn.MSELoss()
    tensors = {c: torch.from_numpy(v) for c, v in xtr.items() if c != "filled"}
    target = torch.from_numpy(ytr.copy())
    target = target if table.metric == "accuracy" else target.reshape(-1, 1)
    rows = len(ytr)
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(rows, generator=generator)
        for lo in range(0, rows, BATCH):
            index = order[lo:lo + BATCH]
            optimizer.zero_grad()
            loss = loss_fn(net({c: v[index] for c, v in tensors.items()}), target[index])
            loss.backward()
            optimizer.step()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        out = net_({c: torch.from_numpy(v) for c, v in xte.items() if c != "filled"}).numpy()
    if table.metric == "accuracy":
        classes = np.array(sorted(train[table.target].unique()))
        return _score(table, classes[out.argmax(axis=1)], test[table.target], scale), seconds
    return _score(table, out, test[table.target], scale), seconds


def keras_(table, train, test, seed, epochs):
    import keras

    keras.utils.set_random_seed(seed)
    (xtr, ytr), (xte, _), sizes, scale = encode(table, train, test)
    layers = keras.layers
    numbers = keras.Input((len(table.numeric),), name="numbers")
    norm = layers.Normalization()
    norm.adapt(xtr["filled"])
    parts = [layers.Dense(H1)(norm(numbers))]
    inputs = [numbers]
    for c in table.categorical:
        codes = keras.Input((1,), dtype="int32", name=c)
        inputs.append(codes)
        parts.append(layers.Flatten()(layers.Embedding(sizes[c], H1)(codes)))
    h = layers.Dense(H2, activation="relu")(layers.Activation("relu")(layers.Add()(parts)))
    if table.metric == "accuracy":
        k = train[table.target].nunique()
        out, loss = layers.Dense(k, activation="softmax")(h), "sparse_categorical_crossentropy"
    else:
        out, loss = layers.Dense(1)(h), "mse"
    model = keras.Model(inputs, out)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=LR), loss=loss)
    feed = {"numbers": xtr["filled"], **{c: xtr[c].reshape(-1, 1) for c in table.categorical}}
    start = time.perf_counter()
    model.fit(feed, ytr, epochs=epochs, batch_size=BATCH, shuffle=True, verbose=0)
    seconds = time.perf_counter() - start
    out = model.predict({"numbers": xte["filled"], **{c: xte[c].reshape(-1, 1) for c in table.categorical}},
                        verbose=0)
    if table.metric == "accuracy":
        classes = np.array(sorted(train[table.target].unique()))
        return _score(table, classes[out.argmax(axis=1)], test[table.target], scale), seconds
    return _score(table, out, test[table.target], scale), seconds


def sklearn_(table, train, test, seed, epochs):
    import warnings

    from sklearn.compose import ColumnTransformer
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.impute import SimpleImputer
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    (_, ytr), _, _, scale = encode(table, train, test)
    columns = ColumnTransformer([
        ("numbers", make_pipeline(SimpleImputer(strategy="mean"), StandardScaler()), list(table.numeric)),
        ("categories", make_pipeline(SimpleImputer(strategy="constant", fill_value="missing"),
                                     OneHotEncoder(handle_unknown="ignore")), list(table.categorical)),
    ])
    mlp = (MLPClassifier if table.metric == "accuracy" else MLPRegressor)(
        hidden_layer_sizes=(H1, H2), batch_size=BATCH, max_iter=epochs, learning_rate_init=LR, alpha=0.0,
        tol=0.0, n_iter_no_change=epochs + 1, random_state=seed)
    model = make_pipeline(columns, mlp)

    def frame(f):
        return f.astype({c: object for c in table.categorical})

    y = train[table.target].to_numpy() if table.metric == "accuracy" else ytr
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(frame(train), y)
    seconds = time.perf_counter() - start
    return _score(table, model.predict(frame(test)), test[table.target], scale), seconds


TRAIN = {"graphnet": graphnet, "torch": torch_, "keras": keras_, "sklearn": sklearn_}


def embedding_timing(quick: bool) -> dict:
    """Seconds per epoch of graphnet's embedding path and of the same net fed
    one-hot rows, at 50 and 10,000 categories (4,096 rows, batch 128, a relu
    layer of 32, one output), three alternating repetitions each."""
    import graphnet as gn

    rng = np.random.default_rng(0)
    rows, epochs = (1024, 1) if quick else (4096, 3)
    results = {}
    for k in (50, 10_000):
        codes = rng.integers(0, k, rows)
        y = rng.normal(size=(rows, 1)).astype(np.float32)
        one_hot = np.zeros((rows, k + 1), np.float32)
        one_hot[np.arange(rows), codes + 1] = 1.0

        def net(categorical: bool, k=k):
            g = gn.Graph(seed=0)
            g.add_input("x", categories=list(range(k))) if categorical else g.add_input("x", k + 1)
            g.add_hidden("h", 32)
            g.add_output("y", 1)
            g.connect("x", "h")
            g.connect("h", "y")
            return g

        times = {"embedding": [], "one_hot": []}
        for _ in range(3):
            for kind, data in (("embedding", codes), ("one_hot", one_hot)):
                g = net(kind == "embedding")
                start = time.perf_counter()
                g.fit(data, y, epochs=epochs, batch_size=128, verbose=0)
                times[kind].append((time.perf_counter() - start) / epochs)
        results[str(k)] = {kind: float(np.median(t)) for kind, t in times.items()}
        results[str(k)]["ratio"] = results[str(k)]["embedding"] / results[str(k)]["one_hot"]
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tables_worker")
    parser.add_argument("library", choices=(*LIBRARIES, "embedding"))
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.library == "embedding":
        print(json.dumps({"embedding": embedding_timing(args.quick)}), flush=True)
        return 0
    seeds = [int(s) for s in args.seeds.split(",")]
    epochs = 3 if args.quick else EPOCHS
    module = {"torch": "torch", "keras": "keras", "sklearn": "sklearn", "graphnet": "graphnet"}[args.library]
    version = __import__(module).__version__
    TRAIN[args.library](*load("penguins"), seeds[0], 1)  # compiled kernels, first-call costs: not timed
    for name in TABLES:
        table, train, test = load(name)
        scores, seconds = [], []
        for seed in seeds:
            score, took = TRAIN[args.library](table, train, test, seed, epochs)
            scores.append(score)
            seconds.append(took)
        print(json.dumps({"table": name, "library": f"{module} {version}", "scores": scores,
                          "seconds": seconds, "epochs": epochs}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
