"""What a graph does inside, on one batch: ``Graph.statistics(x, y=None)``.

One forward pass (and, with targets, one backward pass) in inference mode,
on buffers of its own, gives per node the mean and standard deviation of its
activations, the share of *dead* units (relu family) and of *saturated*
units (sigmoid-like), and per synapse the norm of its weight and, with
targets, of its gradient. It changes nothing: not the weights, not the
optimizer, not the random streams (no dropout is drawn), and the plan's
gradient buffer is restored after the backward pass.

Definitions
    A unit is **dead** on a batch when it is a relu-family unit (relu,
    leaky_relu, elu, gelu, silu, mish) whose activation is never positive on
    any row: for relu, zero for every row, so no gradient reaches its
    incoming weights. (The relatives keep a small gradient there, but the
    unit never leaves its negative tail.)

    An activation of a sigmoid-like unit (sigmoid, tanh, hard_sigmoid,
    softsign) is **saturated** where its derivative is below
    :data:`SATURATION` (5%) of its peak: ``4a(1 - a) < 0.05`` for sigmoid
    (``a`` outside [0.0128, 0.9872]), ``1 - a² < 0.05`` for tanh
    (``|a| > 0.9747``), the flat parts of hard_sigmoid, ``(1 - |a|)² < 0.05``
    for softsign. The node's ``saturated`` share is over all its activations
    (rows × units), the measure of Glorot and Bengio (2010): a unit saturated
    on 95% of the rows is nearly stuck, and a per-unit "every row" count
    would not show it. ``saturated_units`` lists the units saturated on
    every row. An output whose loss is fused with its activation (sigmoid
    with binary_crossentropy, softmax with categorical_crossentropy) has no
    saturated share: its gradient ``p - y`` does not pass through the
    activation's derivative, so a confident prediction is no stuck unit.

Norms are Frobenius norms (the square root of the sum of squares).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from . import _measures
from .activations import HardSigmoid, Sigmoid, Softsign, Tanh
from ._data import as_inputs, as_targets, common_rows
from .errors import NotFoundError, ShapeError
from .inference import read_scalars
from .nodes import DenseNode, Input, Output
from ._parameters import bias_key
from ._text import columns, pad, preview, shown, suggestion
from .plan import compile_plan

if TYPE_CHECKING:
    from .graph import Graph
    from .plan import Plan, Workspace

__all__ = [
    "SATURATION",
    "NodeStats",
    "SynapseStats",
    "Statistics",
    "statistics",
    "probe_workspace",
]

logger = logging.getLogger(__name__)

#: A sigmoid-like unit is saturated where its derivative is below this share of its peak.
SATURATION = 0.05


def _relative_derivative(activation, a: np.ndarray) -> np.ndarray | None:
    """``f'(z) / max f'`` from the output ``a``, for the sigmoid-like activations."""
    if isinstance(activation, Sigmoid):
        return 4.0 * a * (1.0 - a)
    if isinstance(activation, Tanh):
        return 1.0 - a * a
    if isinstance(activation, HardSigmoid):
        return ((a > 0) & (a < 1)).astype(np.float64)
    if isinstance(activation, Softsign):
        return (1.0 - np.abs(a)) ** 2
    return None


@dataclass(frozen=True)
class NodeStats:
    """One node on one batch.

    ``dead`` is the share of units that are dead, ``saturated`` the share of
    activations (rows × units) that are saturated, both in [0, 1] and
    ``None`` where the activation has no such notion (see the module docs);
    ``dead_units`` and ``saturated_units`` list the units dead, or saturated
    on every row. ``bias_grad_norm`` is set with targets, for dense nodes.
    """

    name: str
    kind: str
    size: int
    activation: str | None
    mean: float
    std: float
    dead: float | None
    saturated: float | None
    dead_units: tuple[int, ...] = ()
    saturated_units: tuple[int, ...] = ()
    bias_grad_norm: float | None = None

    @property
    def stuck(self) -> float | None:
        """The larger of :attr:`dead` and :attr:`saturated`: the share of the
        node's activations (rows × units) that are stuck (what the diagram shades)."""
        shares = [s for s in (self.dead, self.saturated) if s is not None]
        return max(shares) if shares else None


@dataclass(frozen=True)
class SynapseStats:
    """One synapse: its weight norm and, with targets, its gradient norm."""

    src: str
    dst: str
    weight_norm: float
    grad_norm: float | None = None


class Statistics:
    """What :func:`statistics` returns; each parameter is kept as the attribute of its name.

    Parameters
    ----------
    graph : str
        The graph's name.
    version : int
        The graph's version when measured (any edit changes it).
    rows : int
        The rows of the batch.
    loss : float or None
        The total loss on the batch (with targets), without dropout; the
        regularizers' penalty included, as in ``evaluate``.
    nodes : dict name -> NodeStats
        In topological order.
    synapses : dict (src, dst) -> SynapseStats
        In the graph's order of synapses.
    """

    def __init__(self, graph: str, version: int, rows: int, loss: float | None,
                 nodes: dict[str, NodeStats], synapses: dict[tuple[str, str], SynapseStats]):
        self.graph, self.version, self.rows, self.loss = graph, version, rows, loss
        self.nodes, self.synapses = nodes, synapses

    @property
    def has_gradients(self) -> bool:
        return self.loss is not None

    def __getitem__(self, name):
        """``stats["h1"]`` is a node's stats, ``stats["h1", "y"]`` a synapse's.

        Raises
        ------
        NotFoundError
            For a node or synapse the report does not hold (also a
            ``KeyError``), listing the ones it holds.
        """
        table = self.synapses if isinstance(name, tuple) else self.nodes
        try:
            return table[name]
        except (KeyError, TypeError):  # TypeError: an unhashable key
            pass
        what = "synapse" if isinstance(name, tuple) else "node"
        raise NotFoundError(f"statistics of {self.graph!r}: no {what} {shown(name)}; known: {preview(table)}"
                            f"{suggestion(name, table)}")

    def __contains__(self, name) -> bool:
        """A node's name, or a synapse's ``(src, dst)``."""
        try:
            return name in (self.synapses if isinstance(name, tuple) else self.nodes)
        except TypeError:  # an unhashable key
            return False

    def __iter__(self):
        """The node names, in topological order."""
        return iter(self.nodes)

    def text(self) -> str:
        """A table: one line per node, then one per synapse."""
        lines = [f"Statistics of {self.graph!r} on {self.rows} rows"
                 + (f", loss {self.loss:.6g}" if self.loss is not None else "")]
        width = max([4, *(columns(n) for n in self.nodes)])
        lines.append(f" {'Node':<{width}}  {'Mean':>9}  {'Std':>9}  {'Dead':>6}  {'Saturated':>9}")
        for s in self.nodes.values():
            lines.append(
                f" {pad(s.name, width)}  {s.mean:>9.3g}  {s.std:>9.3g}  {_share(s.dead):>6}  {_share(s.saturated):>9}"
            )
        names = [f"{a} -> {b}" for a, b in self.synapses]
        width = max([7, *(columns(n) for n in names)])
        lines.append(f" {'Synapse':<{width}}  {'|W|':>9}" + (f"  {'|dL/dW|':>9}" if self.has_gradients else ""))
        for name, s in zip(names, self.synapses.values()):
            grad = f"  {s.grad_norm:>9.3g}" if s.grad_norm is not None else ""
            lines.append(f" {pad(name, width)}  {s.weight_norm:>9.3g}{grad}")
        return "\n".join(lines)

    __str__ = text

    def __repr__(self) -> str:
        dead = [n for n, s in self.nodes.items() if s.dead]
        return (f"<Statistics of {self.graph!r} on {self.rows} rows: {len(self.nodes)} nodes, "
                f"{len(self.synapses)} synapses" + (f", loss {self.loss:.4g}" if self.loss is not None else "")
                + (f", dead units in {dead}" if dead else "") + ">")


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def probe_workspace(plan: Plan, rows: int, backward: bool) -> Workspace:
    """Fresh buffers for one deterministic pass: dropout masks keep every unit,
    so a backward pass after ``plan.forward(ws, inputs)`` (no ``rng``) is the
    gradient of the inference-mode loss."""
    ws = plan.workspace(rows, "train" if backward else "evaluate")
    for keep in ws.keep:
        if keep is not None:
            keep.fill(1)
    return ws


def statistics(graph: Graph, x, y=None) -> Statistics:
    """Statistics of every node and synapse on one batch (see the module
    docs), in inference mode; changes nothing. It holds the graph's read
    lock, or with targets its write lock: the gradients pass through the
    plan's one gradient buffer, which a training step and another thread's
    statistics use too.

    Parameters
    ----------
    graph : Graph
    x : ndarray of shape (n, size), or dict input name -> ndarray
    y : ndarray or dict output name -> ndarray, optional
        Targets; with them the loss and every gradient norm are measured too.

    Returns
    -------
    Statistics

    Raises
    ------
    ShapeError
        For data that does not fit the graph, or no rows.
    """
    with graph.lock.reading() if y is None else graph.lock.writing():
        return _statistics(graph, x, y)


def _statistics(graph: Graph, x, y) -> Statistics:
    plan = compile_plan(graph)
    inputs = as_inputs(graph, x)
    targets = None if y is None else as_targets(graph, y)
    rows = common_rows(inputs, targets)
    if rows == 0:
        raise ShapeError("statistics: the data has no rows")
    backend = plan.backend  # on a device: the batch goes there, each activation comes back once
    inputs = {k: backend.to_device(v) for k, v in inputs.items()}
    if targets is not None:
        targets = {k: backend.to_device(v) for k, v in targets.items()}
    ws = probe_workspace(plan, rows, backward=targets is not None)
    nodes = {}

    def read_activations(*_) -> None:
        # Before backward, which writes deltas over ``a`` (the buffer-reuse rule).
        for name in plan.order:
            slot, node = plan.slots[name], graph.nodes[name]
            if isinstance(node, Input) and node.categorical:
                nodes[name] = _one_hot_stats(node)
                continue
            values = ws.x[slot] if isinstance(node, Input) else ws.a[slot]
            nodes[name] = _node_stats(node, backend.to_host(values))

    loss = grads = None
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        if targets is None:
            plan.forward(ws, inputs)
            read_activations()
        else:
            saved = plan.store.grads.copy()  # a training step between two batches may need it
            try:
                total, _, _ = plan.loss_and_gradients(ws, inputs, targets, before_backward=read_activations)
                loss = read_scalars(backend, {"loss": total})["loss"]
                grads = plan.store.grad_dict()
            finally:
                plan.store.grads[...] = saved
    if grads is not None:
        nodes = {n: _with_bias_grad(s, grads) for n, s in nodes.items()}
    synapses = {
        (s.src, s.dst): SynapseStats(
            s.src, s.dst, _measures.norm(backend.to_host(s.weight)),
            None if grads is None else _measures.norm(grads[s.key])
        )
        for s in graph.synapses
    }
    logger.debug("%s: statistics on %d rows", graph.name, rows)
    return Statistics(graph.name, graph.version, rows, loss, nodes, synapses)


def _node_stats(node, a: np.ndarray) -> NodeStats:
    a64 = a.astype(np.float64, copy=False)
    activation = node.activation if isinstance(node, DenseNode) else None
    dead = saturated = None
    dead_units = saturated_units = ()
    if activation is not None and activation.relu_family:
        dead_units = tuple(int(i) for i in np.flatnonzero(np.all(a64 <= 0, axis=0)))
        dead = len(dead_units) / node.size
    fused = isinstance(node, Output) and node.loss.fused
    if activation is not None and not fused:
        derivative = _relative_derivative(activation, a64)
        if derivative is not None:
            flat = derivative < SATURATION
            saturated_units = tuple(int(i) for i in np.flatnonzero(np.all(flat, axis=0)))
            saturated = float(flat.mean())
    return NodeStats(
        name=node.name,
        kind=node.kind,
        size=node.size,
        activation=None if activation is None else activation.name,
        mean=float(a64.mean()),
        std=_measures.std(a64),
        dead=dead,
        saturated=saturated,
        dead_units=dead_units,
        saturated_units=saturated_units,
    )


def _one_hot_stats(node) -> NodeStats:
    """A categorical input's activations are one-hot rows (code 0 for
    unknown and missing values too), never built: one 1 among ``size``
    entries in every row, whatever the data, so the mean is ``1/size`` and
    the population std ``sqrt(p (1 - p))``."""
    p = 1.0 / node.size
    return NodeStats(name=node.name, kind=node.kind, size=node.size, activation=None, mean=p,
                     std=math.sqrt(p * (1.0 - p)), dead=None, saturated=None, dead_units=(), saturated_units=())


def _with_bias_grad(stats: NodeStats, grads: dict[str, np.ndarray]) -> NodeStats:
    key = bias_key(stats.name)
    if key not in grads:
        return stats
    return dataclasses.replace(stats, bias_grad_norm=_measures.norm(grads[key]))
