"""The workloads W1-W8: their shapes, their synthetic data, and their FLOP counts.

Every workload exists in a ``full`` size (the one the targets are about) and a
``quick`` size (seconds, for smoke tests). Data comes from a fixed seed and is
made before any timing starts. Labels come from a random linear "teacher" plus
noise: the nets have something to learn, and losses fall without reaching zero
(a separable task would drive gradients into float32 subnormals, timing the
hardware's slow path rather than the engine).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

__all__ = ["MLP", "Predict", "DAG", "Scaling", "Latency", "WORKLOADS", "get", "make_data", "dag_spec", "scaling_spec"]

SEED = 20260917


@dataclass(frozen=True)
class MLP:
    """A chain ``sizes[0] -> ... -> sizes[-1]`` trained with Adam.

    ``output`` is ``softmax`` (categorical cross-entropy on integer labels),
    ``sigmoid`` (binary cross-entropy) or ``linear`` (mean squared error);
    every hidden layer is relu. One repetition is ``epochs_per_rep`` epochs.
    """

    name: str
    title: str
    sizes: tuple[int, ...]
    output: str
    rows: int
    batch: int
    epochs_per_rep: int
    reps: int
    unit: str = "epoch"
    per_epoch: bool = False  # report every repetition (W1: epoch 1 ... epoch 5)
    kind: str = "mlp"

    def train_flops(self) -> float:
        """Multiply-adds x 2 of one repetition: forward, weight gradients, and the
        input gradients of every layer but the first."""
        per_row = 0
        for i, (a, b) in enumerate(zip(self.sizes, self.sizes[1:])):
            per_row += 2 * a * b * (2 if i == 0 else 3)
        return float(per_row) * self.rows * self.epochs_per_rep


@dataclass(frozen=True)
class Predict:
    """``predict`` of an already-built :class:`MLP`'s net on ``rows`` rows."""

    name: str
    title: str
    sizes: tuple[int, ...]
    output: str
    rows: int
    chunk: int
    reps: int
    small_rows: int  # a second, smaller run: predict's memory must not grow with rows
    unit: str = "call"
    kind: str = "predict"

    def flops(self) -> float:
        return float(sum(2 * a * b for a, b in zip(self.sizes, self.sizes[1:]))) * self.rows


@dataclass(frozen=True)
class DAG:
    """A DAG of ``hidden`` relu nodes with skip connections (see :func:`dag_spec`)."""

    name: str
    title: str
    input_sizes: tuple[int, ...]
    hidden: int
    width: int
    fan_in: int
    classes: int
    rows: int
    batch: int
    reps: int
    unit: str = "epoch"
    kind: str = "dag"

    def train_flops(self) -> float:
        spec = dag_spec(self)
        sizes = spec["sizes"]
        per_row = 0
        for src, dst in spec["edges"]:
            per_row += 2 * sizes[src] * sizes[dst] * (2 if src in spec["inputs"] else 3)
        return float(per_row) * self.rows


@dataclass(frozen=True)
class Scaling:
    """Random DAGs of ``sizes`` nodes (width ``width``, about two edges per node)."""

    name: str
    title: str
    sizes: tuple[int, ...]
    width: int
    batch: int
    reps: int
    unit: str = "graph"
    kind: str = "scaling"


@dataclass(frozen=True)
class Latency:
    """The time of one ``predict`` call of an :class:`MLP`'s net on ``batches`` rows,
    one thread: the fixed cost a model being served pays on every request.
    One repetition is ``calls`` calls at each batch size."""

    name: str
    title: str
    sizes: tuple[int, ...]
    output: str
    batches: tuple[int, ...]
    calls: int
    reps: int
    unit: str = "call"
    kind: str = "latency"


FULL = {
    "W1": MLP("W1", "MNIST-size MLP", (784, 256, 128, 10), "softmax", 60_000, 128, 1, 5, per_epoch=True),
    "W2": MLP("W2", "small net", (30, 128, 64, 32, 1), "sigmoid", 469, 32, 100, 5, unit="100 epochs"),
    "W3": MLP("W3", "wide", (784, 1024, 1024, 10), "softmax", 16_384, 1024, 1, 5),
    "W4": Predict("W4", "inference", (784, 256, 128, 10), "softmax", 1_000_000, 4096, 3, 100_000),
    "W5": MLP("W5", "deep and narrow", (64, *[32] * 50, 1), "linear", 8_192, 64, 1, 5),
    "W6": DAG("W6", "a real DAG", (32, 32, 32), 40, 64, 3, 10, 16_384, 128, 5),
    "W7": Scaling("W7", "scaling", (10, 100, 1_000, 10_000), 16, 32, 3),
    "W8": Latency("W8", "serving latency", (784, 256, 128, 10), "softmax", (1, 8, 64), 2_000, 5),
}

QUICK = {
    "W1": replace(FULL["W1"], rows=2_048, reps=2),
    "W2": replace(FULL["W2"], epochs_per_rep=5, reps=2, unit="5 epochs"),
    "W3": replace(FULL["W3"], sizes=(784, 256, 256, 10), rows=2_048, batch=256, reps=2),
    "W4": replace(FULL["W4"], rows=20_000, chunk=4096, reps=2, small_rows=5_000),
    "W5": replace(FULL["W5"], sizes=(64, *[32] * 10, 1), rows=1_024, reps=2),
    "W6": replace(FULL["W6"], hidden=8, rows=1_024, reps=2),
    "W7": replace(FULL["W7"], sizes=(10, 100, 300), reps=1),
    "W8": replace(FULL["W8"], calls=100, reps=2),
}

WORKLOADS = {"full": FULL, "quick": QUICK}


def get(name: str, quick: bool = False):
    """The workload called ``name`` (``W1`` ... ``W8``) in the chosen size."""
    table = QUICK if quick else FULL
    try:
        return table[name]
    except KeyError:
        raise ValueError(f"unknown workload {name!r}; known: {sorted(table)}") from None


def make_data(workload, seed: int = SEED) -> dict[str, np.ndarray]:
    """Synthetic float32 inputs and targets for ``workload``, from a fixed seed.

    Returns a dict with ``x`` (rows, sizes[0]) and ``y``: integer labels (rows,)
    for softmax, 0/1 floats (rows, 1) for sigmoid, floats (rows, 1) for linear.
    For a :class:`DAG`, ``x`` and ``y`` are dicts keyed by node name.
    """
    rng = np.random.default_rng(seed)
    if isinstance(workload, DAG):
        x = {f"in{i}": rng.standard_normal((workload.rows, n), dtype=np.float32)
             for i, n in enumerate(workload.input_sizes)}
        joined = np.concatenate(list(x.values()), axis=1)
        teacher = rng.standard_normal((joined.shape[1], workload.classes + 1), dtype=np.float32)
        scores = joined @ teacher
        scores += rng.standard_normal(scores.shape, dtype=np.float32) * scores.std(axis=0)
        y = {"cls": np.argmax(scores[:, :-1], axis=1), "flag": (scores[:, -1:] > 0).astype(np.float32)}
        return {"x": x, "y": y}
    sizes, rows = workload.sizes, workload.rows
    x = rng.standard_normal((rows, sizes[0]), dtype=np.float32)
    if isinstance(workload, Predict):
        return {"x": x}
    teacher = rng.standard_normal((sizes[0], sizes[-1]), dtype=np.float32)
    scores = x @ teacher
    scores += rng.standard_normal(scores.shape, dtype=np.float32) * scores.std(axis=0)
    if workload.output == "softmax":
        y = np.argmax(scores, axis=1)
    elif workload.output == "sigmoid":
        y = (scores > 0).astype(np.float32)
    else:
        y = (scores / np.sqrt(sizes[0])).astype(np.float32)
    return {"x": x, "y": y}


def dag_spec(workload: DAG, seed: int = SEED) -> dict:
    """The W6 graph as plain data, so graphnet and PyTorch build the same DAG.

    Hidden node ``h{i}`` reads the node made just before it (a chain keeps every
    node on a path to an output) plus ``fan_in - 1`` earlier nodes, chosen among
    those with the fewest consumers so far (ties at random): long skip
    connections, and fan-out spread evenly. Two outputs: ``cls`` (softmax over
    ``classes``) and ``flag`` (sigmoid), each reading ``fan_in`` nodes.

    Returns
    -------
    dict with ``inputs`` (names), ``hidden`` (names, in order), ``outputs``,
    ``sizes`` (name -> size) and ``edges`` (``(src, dst)`` pairs, grouped by
    destination in a valid order).
    """
    rng = np.random.default_rng(seed + 6)
    inputs = [f"in{i}" for i in range(len(workload.input_sizes))]
    sizes = dict(zip(inputs, workload.input_sizes))
    consumers = {name: 0 for name in inputs}
    made = list(inputs)
    edges = []

    def pick(dst: str, first: list[str]) -> None:
        chosen = list(first)
        while len(chosen) < workload.fan_in and len(chosen) < len(made):
            pool = [n for n in made if n not in chosen]
            fewest = min(consumers[n] for n in pool)
            ties = [n for n in pool if consumers[n] == fewest]
            chosen.append(ties[int(rng.integers(len(ties)))])
        for src in chosen:
            consumers[src] += 1
            edges.append((src, dst))

    hidden = []
    for i in range(workload.hidden):
        name = f"h{i}"
        pick(name, [made[-1]] if i else [])
        sizes[name] = workload.width
        consumers[name] = 0
        made.append(name)
        hidden.append(name)
    outputs = ["cls", "flag"]
    sizes.update(cls=workload.classes, flag=1)
    for name in outputs:
        pick(name, [made[-1]])
    return {"inputs": inputs, "hidden": hidden, "outputs": outputs, "sizes": sizes, "edges": edges}


def scaling_spec(nodes: int, seed: int = SEED) -> list[tuple[int, int]]:
    """Edges of a random DAG of ``nodes`` nodes numbered in a valid order.

    Node 0 is the input, node ``nodes - 1`` the output. Every other node reads
    the node before it (so every node lies on an input-output path) and one
    earlier node drawn uniformly: about two edges per node.
    """
    rng = np.random.default_rng(seed + nodes)
    edges = []
    for i in range(1, nodes):
        edges.append((i - 1, i))
        if i >= 2:
            j = int(rng.integers(0, i - 1))
            edges.append((j, i))
    return edges
