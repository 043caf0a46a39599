"""Which input mattered: ``Graph.attributions(x, ...)``.

An attribution says how much each input column moved one unit of one node's
activation ``f`` (an output's probability for softmax and sigmoid outputs,
its value otherwise) away from what it is at a *baseline* input.

**Integrated gradients** (Sundararajan, Taly and Yan, 2017) integrate the
gradient along the straight path from the baseline ``b`` to the data ``x``::

    attribution_i = (x_i − b_i) · ∫₀¹ ∂f/∂x_i (b + α (x − b)) dα

and so are *complete*: the attributions of a row sum to ``f(x) − f(b)``,
up to the error of the quadrature. The integral is a weighted sum of
gradients at ``steps`` points, with Captum's rules and names:
``"gausslegendre"`` (Gauss–Legendre nodes on [0, 1], Captum's default:
exact for polynomials of degree ``2·steps − 1``, so the completeness error
falls fast with ``steps``) or ``"riemann_middle"`` (the midpoint rule, error
of order ``1/steps²``). Each point costs one forward and one backward pass
through the nodes between the inputs and ``f``'s node, batched over rows and
points together. ``"gradient_x_input"`` is the cheap method:
``(x − b) · ∂f/∂x (x)``, one pass, complete only where ``f`` is linear.

The report gives the attributions per row and column, per input node (the
sum over its columns), their means over the rows, each input's share of the
mean absolute attribution, and the completeness error of every row.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from .activations import Sigmoid, Softmax
from ._validation import check_int, is_number
from ._data import as_inputs, by_name, common_rows
from ._transforms import transform_input
from .errors import GraphError, NotFoundError, ShapeError
from ._locks import read
from ._text import columns, cut, pad, pieces, preview, shown, span, suggestion, wrap
from .nodes import DenseNode
from .plan import compile_plan

if TYPE_CHECKING:
    from .graph import Graph
    from .plan import Plan

__all__ = ["METHODS", "RULES", "Attributions", "attributions"]

logger = logging.getLogger(__name__)

#: Interpolated rows per forward pass (each data row costs ``steps`` of them).
CHUNK = 4096
#: The most quadrature points: Gauss-Legendre's nodes take a second to find at 2,000.
MAX_STEPS = 1000


def _gauss_legendre(steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes and weights moved from [-1, 1] to [0, 1] (Captum's ``gausslegendre``)."""
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    return 0.5 * (nodes + 1.0), 0.5 * weights


def _midpoint(steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The midpoint rule on [0, 1] (Captum's ``riemann_middle``)."""
    return (np.arange(steps) + 0.5) / steps, np.full(steps, 1.0 / steps)


#: Quadrature rules for integrated gradients: ``rule(steps) -> (alphas, weights)`` on [0, 1].
RULES = {"gausslegendre": _gauss_legendre, "riemann_middle": _midpoint}

#: The methods, with what the report calls them.
METHODS = {"integrated_gradients": "Integrated gradients", "gradient_x_input": "Gradient × input"}


class Attributions:
    """What :func:`attributions` returns; each parameter is kept as the attribute of its name. Arrays are float64.

    Parameters
    ----------
    graph : str
        The graph's name.
    method, rule : str
        The method and, for integrated gradients, the quadrature rule (else None).
    steps : int
        Quadrature points (1 for ``gradient_x_input``).
    output : str
        The node whose activation ``f`` is explained.
    probability : bool
        Whether ``f`` is a probability (a softmax or sigmoid node).
    target : ndarray of shape (rows,)
        The unit of ``output`` explained for each row.
    targets_chosen : str
        How ``target`` was chosen (``"given"``, ``"predicted class"``, ``"the only unit"``).
    values : dict input name -> ndarray of shape (rows, size)
        The attribution of every column of every row.
    f_x, f_baseline : ndarray of shape (rows,)
        ``f`` at the data and at the baseline.
    baseline_zero : bool
        Whether the baseline was zeros everywhere.
    columns : dict input name -> tuple of str, optional
        The names of an input's columns, where it has them (the frame's
        columns it reads, and their missing-value indicators); the report
        shows them in place of positions.
    """

    def __init__(self, *, graph: str, method: str, rule: str | None, steps: int, output: str,
                 probability: bool, target: np.ndarray, targets_chosen: str,
                 values: dict[str, np.ndarray], f_x: np.ndarray, f_baseline: np.ndarray,
                 baseline_zero: bool, columns: dict[str, tuple[str, ...]] | None = None):
        self.graph, self.method, self.rule, self.steps = graph, method, rule, steps
        self.output, self.probability = output, probability
        self.target, self.targets_chosen = target, targets_chosen
        self.values, self.f_x, self.f_baseline = values, f_x, f_baseline
        self.baseline_zero = baseline_zero
        self.columns = dict(columns or {})

    # ------------------------------------------------------------- views
    @property
    def inputs(self) -> list[str]:
        return list(self.values)

    def column(self, name: str, i: int) -> str:
        """Column ``i`` of input ``name`` in words: its name where the input
        reads named columns, else its position.

        Parameters
        ----------
        name : str
            An input's name.
        i : int
            The column's position in that input.
        """
        names = self.columns.get(name)
        return str(names[i]) if names else str(i)

    @property
    def rows(self) -> int:
        return len(self.f_x)

    def __getitem__(self, name: str) -> np.ndarray:
        """``report["pixels"]``: that input's attributions, shape (rows, size)."""
        try:
            return self.values[name]
        except (KeyError, TypeError):  # TypeError: an unhashable key
            raise NotFoundError(f"attributions: no input {shown(name)}; inputs: {preview(self.inputs)}") from None

    def __contains__(self, name) -> bool:
        return isinstance(name, str) and name in self.values

    def __iter__(self):
        """The input names."""
        return iter(self.values)

    @property
    def per_node(self) -> dict[str, np.ndarray]:
        """Each input node's attribution per row (the sum over its columns), shape (rows,)."""
        return {name: v.sum(axis=1) for name, v in self.values.items()}

    @property
    def mean(self) -> dict[str, np.ndarray]:
        """Each column's attribution averaged over the rows (signs may cancel), shape (size,)."""
        return {name: v.mean(axis=0) for name, v in self.values.items()}

    @property
    def mean_abs(self) -> dict[str, np.ndarray]:
        """Each column's mean absolute attribution over the rows, shape (size,)."""
        return {name: np.abs(v).mean(axis=0) for name, v in self.values.items()}

    @property
    def shares(self) -> dict[str, float]:
        """Each input node's share of the mean absolute attribution (they sum to 1; all 0 when nothing moved)."""
        totals = {name: float(m.sum()) for name, m in self.mean_abs.items()}
        grand = sum(totals.values())
        return {name: (t / grand if grand > 0 else 0.0) for name, t in totals.items()}

    @property
    def delta(self) -> np.ndarray:
        """Per row, ``Σ attributions − (f(x) − f(baseline))`` (Captum's convergence delta), shape (rows,)."""
        total = sum(v.sum(axis=1) for v in self.values.values())
        return total - (self.f_x - self.f_baseline)

    @property
    def completeness_error(self) -> float:
        """The largest ``|delta|`` over the rows."""
        return float(np.abs(self.delta).max()) if self.rows else 0.0

    # ------------------------------------------------------------- text
    def describe(self) -> str:
        """One line: the method, what ``f`` is, which unit, how many rows, the baseline."""
        how = METHODS[self.method]
        if self.method == "integrated_gradients":
            rule = "Gauss-Legendre" if self.rule == "gausslegendre" else "midpoint rule"
            how += f" ({rule}, {self.steps} steps)"
        what = "probability" if self.probability else "value"
        base = "zeros" if self.baseline_zero else "given"
        return f"{how} of {self.output}'s {what} at {self.unit_chosen()} on {self.rows} rows; baseline {base}"

    def unit_chosen(self) -> str:
        """Which unit was explained, in words: "the predicted class", "unit 2", ..."""
        units = np.unique(self.target)
        if self.targets_chosen == "predicted class":
            return "the predicted class"
        if len(units) == 1:
            return f"unit {units[0]}"
        return f"the unit given for each row ({len(units)} different)"

    def text(self, width: int = 80, top: int = 3) -> str:
        """A table, one line per input node, at most ``width`` columns.

        Columns: the node's mean attribution per row (the sum over its
        columns, signed), its mean absolute attribution, its share, and its
        ``top`` columns by mean absolute attribution with their signed means.

        Parameters
        ----------
        width : int, default 80
            The columns the lines fit in.
        top : int, default 3
            The columns listed for each input node.
        """
        lines = _wrap(self.describe(), width)
        lines += _wrap("completeness: each row's attributions sum to f(x) − f(baseline) within "
                       f"{self.completeness_error:.2g}", width)
        name_width = min(max([5, *(columns(n) for n in self.values)]), 24)
        head = f" {'Input':<{name_width}}  {'Mean':>9}  {'Mean |.|':>9}  {'Share':>5}  Top columns"
        lines += ["", head[:width], " " + "-" * (min(width, 80) - 2)]
        totals = self.per_node
        shares = self.shares
        for name, values in self.values.items():
            mean_abs, mean = np.abs(values).mean(axis=0), values.mean(axis=0)
            best = np.argsort(-mean_abs, kind="stable")[:top]
            tops = ", ".join(f"{self.column(name, i)} ({mean[i]:+.2g})" for i in best if mean_abs[i] > 0) or "-"
            long = columns(name) > name_width
            if long:  # a long name whole, on lines of its own (inputs may share a prefix)
                lines += [" " + piece for piece in pieces(name, width - 1)]
            row = (f" {pad('' if long else name, name_width)}  {totals[name].mean():>9.3g}  "
                   f"{mean_abs.sum():>9.3g}  {_percent(shares[name]):>5}  ")
            lines.append(row + _fit(tops, max(width - columns(row), 8)))
        return "\n".join(lines)

    __str__ = text

    def __repr__(self) -> str:
        return (f"<Attributions of {self.graph!r}: {self.method} of {self.output!r} on {self.rows} rows, "
                f"inputs {self.inputs}, completeness error {self.completeness_error:.2g}>")


def _percent(share: float) -> str:
    if 0 < share < 0.01:
        return "<1%"
    return f"{100 * share:.0f}%"


def _fit(text: str, width: int) -> str:
    return text if columns(text) <= width else cut(text, width - 1)[0] + "…"


def _wrap(text: str, width: int) -> list[str]:
    return wrap(text, width) or [""]


# ---------------------------------------------------------------- computing
@read
def attributions(graph: Graph, x, method: str = "integrated_gradients", baseline=None, steps: int = 50,
                 output: str | None = None, target=None, rule: str = "gausslegendre",
                 batch_size: int | None = None) -> Attributions:
    """How much each input column moved one unit of ``output``, per row (see the module docs).

    Parameters
    ----------
    graph : Graph
    x : ndarray of shape (rows, size), or dict input name -> ndarray
        The rows to explain, as for ``predict``.
    method : {"integrated_gradients", "gradient_x_input"}
    baseline : None, number, ndarray or dict input name -> number or ndarray
        Where the path starts, in the units of ``x``: zeros by default. A
        number applies to every column; an array has shape (size,) (every
        row) or (rows, size); a dict names every input (a plain value is
        enough for a one-input graph). An input that normalizes its data
        normalizes its baseline alike, so ``f(baseline)`` is ``predict``'s.
    steps : int
        Quadrature points for integrated gradients (at most 1,000).
    output : str, optional
        The node explained: the graph's output when it has one (else name
        one); a hidden node is accepted too.
    target : int or array of ints of shape (rows,), optional
        The unit of ``output`` explained, for every row or per row, as
        Captum's ``target=``. By default: for a softmax node, the class the
        graph predicts for each row (the argmax of ``f(x)``); for a
        one-unit node, unit 0 (for a sigmoid: the probability of class 1).
        Any other node needs it.
    rule : {"gausslegendre", "riemann_middle"}
        The quadrature of integrated gradients (Captum's names).
    batch_size : int, optional
        Interpolated rows per forward pass (4,096 by default); memory grows
        with it.

    Returns
    -------
    Attributions

    Raises
    ------
    GraphError
        For an unknown method, rule, output or target, or a bad ``steps``.
    ShapeError
        For data or a baseline that does not fit the graph, or no rows.

    Examples
    --------
    >>> import numpy as np, graphnet as gn
    >>> g = gn.Graph(seed=0, dtype="float64")
    >>> _ = g.add_input("x", 3); _ = g.add_output("p", 1, activation="sigmoid")
    >>> _ = g.connect("x", "p")
    >>> report = g.attributions(np.ones((4, 3)))
    >>> report["x"].shape, report.completeness_error < 1e-12
    ((4, 3), True)
    """
    method = _choice(method, METHODS, "method")
    rule = _choice(rule, RULES, "rule")
    steps = check_int(steps, "attributions: steps")
    if steps > MAX_STEPS:
        raise GraphError(f"attributions: steps must be at most {MAX_STEPS:,}, got {steps:,}")
    chunk = CHUNK if batch_size is None else check_int(batch_size, "attributions: batch_size")
    node = _explained(graph, output)
    categorical = [n for n in graph.inputs if graph.nodes[n].categorical]
    if categorical:  # a path from a baseline to a category is not a path through its one-hot values
        raise GraphError(f"attributions: inputs {categorical} are categorical; attributions are defined for "
                         "numeric inputs only")
    plan = compile_plan(graph)
    host = plan.backend.to_host
    inputs = {name: np.asarray(host(a)) for name, a in as_inputs(graph, x).items()}
    rows = common_rows(inputs)
    if rows == 0:
        raise ShapeError("attributions: the data has no rows")
    base, zero = _baselines(graph, baseline, rows)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        f_x = _activations(plan, inputs, node.name, chunk)
        chosen, how = _targets(node, target, f_x, rows)
        f_b = _activations(plan, base, node.name, chunk)
        if method == "integrated_gradients":
            alphas, weights = RULES[rule](steps)
        else:
            alphas, weights, steps = np.ones(1), np.ones(1), 1
        grads = _path_gradients(plan, node, inputs, base, chosen, alphas, weights, chunk)
    values = {n: (inputs[n].astype(np.float64) - base[n]) * grads[n] for n in graph.inputs}
    picked = np.arange(rows)
    report = Attributions(
        graph=graph.name, method=method, rule=rule if method == "integrated_gradients" else None,
        steps=steps, output=node.name, probability=isinstance(node.activation, (Softmax, Sigmoid)),
        target=chosen, targets_chosen=how, values=values, f_x=f_x[picked, chosen],
        f_baseline=f_b[picked, chosen], baseline_zero=zero,
        columns={n: names for n in graph.inputs
                 if (names := graph.nodes[n].column_names) is not None and len(names) == values[n].shape[1]},
    )
    logger.debug("%s: %s on %d rows, completeness error %.2g", graph.name, method, rows,
                 report.completeness_error)
    return report


def _choice(value, choices, what: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise GraphError(f"attributions: {what} must be one of {sorted(choices)}, got {value!r}")
    return value


def _explained(graph: Graph, output) -> DenseNode:
    if output is None:
        if len(graph.outputs) != 1:
            raise GraphError(
                f"attributions: graph {graph.name!r} has {len(graph.outputs)} outputs "
                f"{preview(graph.outputs)}: name the one to explain with output="
            )
        output = graph.outputs[0]
    if not isinstance(output, str) or output not in graph.nodes:
        raise NotFoundError(
            f"attributions: output must be the name of an output or hidden node, got {shown(output)}; outputs: "
            f"{preview(graph.outputs)}{suggestion(output, graph.nodes)}"
        )
    node = graph.nodes[output]
    if not isinstance(node, DenseNode):
        raise GraphError(f"attributions: {output!r} is an input; explain an output or hidden node")
    return node


def _targets(node: DenseNode, target, f_x: np.ndarray, rows: int) -> tuple[np.ndarray, str]:
    """The unit explained for each row, and how it was chosen."""
    if target is None:
        if isinstance(node.activation, Softmax):
            return np.argmax(f_x, axis=1), "predicted class"
        if node.size == 1:
            return np.zeros(rows, dtype=np.intp), "the only unit"
        raise GraphError(
            f"attributions: {node.name!r} has {node.size} units: pass target= (a unit in "
            f"[0, {node.size}), or one per row)"
        )
    expected = f"an integer in [0, {node.size}) or an array of {rows} of them (one per row)"
    try:
        chosen = np.asarray(target)
    except (TypeError, ValueError):
        chosen = np.asarray(None)
    if chosen.dtype.kind not in "iu" or chosen.ndim > 1:
        raise GraphError(f"attributions: target for {node.name!r} must be {expected}, got {target!r:.80}")
    chosen = np.broadcast_to(chosen, (rows,)) if chosen.ndim == 0 else chosen
    if chosen.shape != (rows,) or chosen.min() < 0 or chosen.max() >= node.size:
        found = f"shape {chosen.shape}" if chosen.shape != (rows,) else \
            span(chosen.min(), chosen.max(), "target")
        raise GraphError(f"attributions: target for {node.name!r} must be {expected}, got {found}")
    return chosen.astype(np.intp), "given"


def _baselines(graph: Graph, baseline, rows: int) -> tuple[dict[str, np.ndarray], bool]:
    """Each input's baseline as a (rows, size) float64 array as it enters the
    plan, and whether all were zero as given. A baseline is given in the
    units of the data (as ``x`` is): an input that normalizes its data (or
    adds missing-value indicators) transforms its baseline alike."""
    if baseline is None:
        baseline = 0.0
    if is_number(baseline) and not isinstance(baseline, Mapping):
        baseline = dict.fromkeys(graph.inputs, baseline)
    out, zero = {}, True
    for name, value in by_name(baseline, graph.inputs, "baseline").items():
        node = graph.nodes[name]
        size = node.width if node.transforms else node.size  # the data's columns
        value = value.astype(np.float64)
        if value.ndim == 0 or value.shape == (size,):
            value = np.broadcast_to(value, (rows, size))
        elif value.shape != (rows, size):
            raise ShapeError(
                f"baseline {name!r}: expected a number, shape ({size},) or ({rows}, {size}), got {value.shape}"
            )
        if not np.isfinite(value).all():
            raise ShapeError(f"baseline {name!r} contains NaN or inf values")
        zero = zero and not value.any()
        out[name] = transform_input(node, np.array(value), np.float64) if node.transforms else value
    return out, zero


def _activations(plan: Plan, inputs: dict[str, np.ndarray], node: str, chunk: int) -> np.ndarray:
    """``node``'s activation for every row, in inference mode, as float64."""
    rows = len(next(iter(inputs.values())))
    send, host, slot = plan.backend.to_device, plan.backend.to_host, plan.slots[node]
    out = np.empty((rows, plan.sizes[slot]))
    chunk = min(chunk, rows)
    full = plan.workspace(chunk, "evaluate")
    for start in range(0, rows, chunk):
        stop = min(start + chunk, rows)
        ws = full if stop - start == chunk else plan.workspace(stop - start, "evaluate")
        plan.forward(ws, {n: send(np.ascontiguousarray(a[start:stop], plan.dtype)) for n, a in inputs.items()})
        out[start:stop] = host(ws.a[slot])
    return out


def _path_gradients(plan: Plan, node: DenseNode, inputs, base, targets: np.ndarray,
                    alphas: np.ndarray, weights: np.ndarray, chunk: int) -> dict[str, np.ndarray]:
    """``Σ_k weights_k · ∂f/∂x (b + alphas_k (x − b))`` per input, row and column (float64)."""
    rows, points = len(targets), len(alphas)
    xp, send, host = plan.xp, plan.backend.to_device, plan.backend.to_host
    per_pass = max(1, min(rows, chunk // points))  # data rows per forward pass
    full = plan.workspace(per_pass * points, "train")
    out = {name: np.empty(a.shape) for name, a in inputs.items()}
    for start in range(0, rows, per_pass):
        stop = min(start + per_pass, rows)
        r = stop - start
        ws = full if r == per_pass else full.head(r * points)
        batch = {}
        for name, x in inputs.items():
            b = base[name][start:stop]
            path = b[None] + alphas[:, None, None] * (x[start:stop].astype(np.float64) - b)[None]
            batch[name] = send(np.ascontiguousarray(path.reshape(r * points, -1), plan.dtype))
        plan.forward(ws, batch)
        seed = xp.zeros((r * points, node.size), plan.dtype)
        seed[xp.arange(r * points), send(np.tile(targets[start:stop], points))] = 1
        grads = plan.input_gradients(ws, node.name, seed)
        for name, g in grads.items():
            g = np.asarray(host(g), dtype=np.float64).reshape(points, r, -1)
            out[name][start:stop] = np.tensordot(weights, g, axes=1)
    return out
