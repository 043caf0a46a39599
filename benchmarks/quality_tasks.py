"""The quality panel's tasks: small problems on data shipped with scikit-learn or generated.

Every library gets exactly the same arrays: the split is fixed (``random_state=0``,
or chronological for the forecaster), features are standardised with the
training rows' mean and standard deviation, regression targets likewise
(R² does not change under that affine map), and everything is float32. The
seeds of the panel vary only the libraries' own initialisation and shuffling.

The architecture, the epochs and the hidden activation of each task were fixed
before any library was run on it; batch 32 and Adam with learning rate 1e-3
are the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Task", "TASKS", "TASK_NAMES", "get", "make_data", "score", "sine_series"]


@dataclass(frozen=True)
class Task:
    """One problem of the panel.

    ``sizes`` are the layer widths, input first; hidden layers use
    ``hidden``; the output is ``linear`` (mse), ``sigmoid`` (binary
    cross-entropy) or ``softmax`` (categorical cross-entropy).
    """

    name: str
    title: str
    sizes: tuple[int, ...]
    hidden: str
    output: str
    metric: str  # "r2" (higher is better), "accuracy" (higher), "mse" (lower)
    epochs: int
    quick_epochs: int

    @property
    def higher_is_better(self) -> bool:
        return self.metric != "mse"

    @property
    def architecture(self) -> str:
        return "-".join(map(str, self.sizes)) + f" {self.hidden}, {self.output} out"


TASKS = (
    Task("diabetes", "diabetes (sklearn)", (10, 16, 1), "relu", "linear", "r2", 200, 10),
    Task("friedman1", "friedman1 (1000 rows, noise 1)", (10, 32, 32, 1), "relu", "linear", "r2", 100, 5),
    Task("regression3", "make_regression, 3 targets", (20, 32, 3), "relu", "linear", "r2", 100, 5),
    Task("sine", "noisy-sine forecaster (window 16, 5 steps ahead)", (16, 32, 1), "tanh", "linear", "mse", 100, 5),
    Task("wine", "wine (sklearn)", (13, 16, 3), "relu", "softmax", "accuracy", 100, 5),
    Task("breast_cancer", "breast cancer (sklearn)", (30, 16, 1), "relu", "sigmoid", "accuracy", 50, 3),
    Task("digits", "digits 8x8 (sklearn)", (64, 32, 10), "relu", "softmax", "accuracy", 30, 2),
    Task("classification", "make_classification, 4 classes", (20, 32, 32, 4), "tanh", "softmax", "accuracy", 50, 3),
)

TASK_NAMES = tuple(t.name for t in TASKS)


def get(name: str) -> Task:
    for task in TASKS:
        if task.name == name:
            return task
    raise KeyError(f"unknown task {name!r}; known: {list(TASK_NAMES)}")


def sine_series(n_windows: int = 1000, window: int = 16, horizon: int = 5, dt: float = 0.1,
                noise: float = 0.1, seed: int = 0):
    """Windows of a noisy sine and the clean value ``horizon`` steps after each window."""
    t = np.arange(n_windows + window + horizon) * dt
    noisy = np.sin(t) + noise * np.random.default_rng(seed).standard_normal(t.shape)
    x = np.lib.stride_tricks.sliding_window_view(noisy, window)[:n_windows]
    y = np.sin(t[window - 1 + horizon : window - 1 + horizon + n_windows])[:, None]
    return np.ascontiguousarray(x), y


def _raw(name: str):
    """``(x, y)`` of task ``name`` before splitting (y: (n, k) floats or (n,) labels)."""
    from sklearn import datasets

    if name == "diabetes":
        x, y = datasets.load_diabetes(return_X_y=True)
        return x, y[:, None]
    if name == "friedman1":
        x, y = datasets.make_friedman1(n_samples=1000, n_features=10, noise=1.0, random_state=0)
        return x, y[:, None]
    if name == "regression3":
        return datasets.make_regression(n_samples=1000, n_features=20, n_informative=10, n_targets=3,
                                        noise=10.0, random_state=0)
    if name == "sine":
        return sine_series()
    if name == "wine":
        return datasets.load_wine(return_X_y=True)
    if name == "breast_cancer":
        return datasets.load_breast_cancer(return_X_y=True)
    if name == "digits":
        return datasets.load_digits(return_X_y=True)
    if name == "classification":
        return datasets.make_classification(n_samples=1500, n_features=20, n_informative=10, n_redundant=4,
                                            n_classes=4, n_clusters_per_class=2, random_state=0)
    raise KeyError(name)


def make_data(task: Task) -> dict[str, np.ndarray]:
    """``x_train, y_train, x_test, y_test`` (float32; labels int64), standardised on the training rows."""
    from sklearn.model_selection import train_test_split

    x, y = _raw(task.name)
    if task.name == "sine":  # a forecaster is tested on the future: a chronological split
        cut = int(0.75 * len(x))
        x_train, x_test, y_train, y_test = x[:cut], x[cut:], y[:cut], y[cut:]
    else:
        stratify = y if task.metric == "accuracy" else None
        x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0,
                                                            stratify=stratify)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std[std == 0] = 1.0  # digits has constant pixels
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    if task.metric == "r2":
        y_mean, y_std = y_train.mean(axis=0), y_train.std(axis=0)
        y_train, y_test = (y_train - y_mean) / y_std, (y_test - y_mean) / y_std
    labels = task.metric == "accuracy"
    cast = (lambda a: a.astype(np.int64)) if labels else (lambda a: a.astype(np.float32))
    return {
        "x_train": x_train.astype(np.float32), "y_train": cast(y_train),
        "x_test": x_test.astype(np.float32), "y_test": cast(y_test),
    }


def score(task: Task, y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """The task's test metric. ``y_pred``: (n, k) values for regression, labels for classification.

    R² is averaged uniformly over targets (scikit-learn's ``r2_score`` default).
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if task.metric == "accuracy":
        return float(np.mean(y_true.ravel() == y_pred.ravel()))
    y_true = y_true.reshape(len(y_true), -1)
    y_pred = y_pred.reshape(len(y_pred), -1)
    if task.metric == "mse":
        return float(np.mean((y_true - y_pred) ** 2))
    residual = ((y_true - y_pred) ** 2).sum(axis=0)
    total = ((y_true - y_true.mean(axis=0)) ** 2).sum(axis=0)
    return float(np.mean(1.0 - residual / total))
