"""The gradient check: backward against central differences, in float64.

For users who write their own :class:`~graphnet.activations.Activation` or
:class:`~graphnet.losses.Loss`: ``gn.check_gradients(g, x, y)`` compares
every parameter's gradient from the backward pass with

    (L(w + eps) - L(w - eps)) / (2 eps)

entry by entry, and reports the largest relative error per parameter.

The loss is the training loss: every output's, times its ``loss_weight``,
plus the regularizers' penalty. It works on a float64 copy of the graph (a float32 graph is copied and
widened to float64), so the user's graph, its optimizer and its random
streams are never touched. Both sides run in inference mode (no dropout), so
they measure the same function.

The relative error of one entry is ``|a - n| / max(|a| + |n|, floor)``. The
floor is the smallest gradient the difference quotient can resolve at this
tolerance: ``noise / tolerance`` (at least 1e-8), where ``noise = 16 ·
2^-52 · (|L+| + |L-|) / (2 eps)`` bounds the quotient's rounding error (16
ulps of each loss, for the forward pass's own rounding). So a gradient of
1e-12 that comes out as 3e-12 is no failure, while a wrong derivative on an
ordinary entry is. Away from kinks (relu at 0) a correct backward gives
errors around 1e-7 or below; a wrong one, usually above 1e-2.
"""

from __future__ import annotations

import copy
import logging
import math
import numbers
import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ._validation import is_int
from ._data import as_inputs, as_targets, common_rows
from .errors import GraphError, ShapeError
from .network import Network
from .plan import compile_plan
from .statistics import probe_workspace
from .weights import parameter_arrays

if TYPE_CHECKING:
    from .graph import Graph

__all__ = ["ParameterCheck", "GradientReport", "check_gradients"]

logger = logging.getLogger(__name__)

_TINY = 1e-8
#: The rounding error of one loss value, in units of the loss: 16 ulps, for the
#: forward pass's own accumulated rounding.
_ROUNDING = 16 * 2.0**-52


@dataclass(frozen=True)
class ParameterCheck:
    """One parameter: its largest relative error, where, and the two values there."""

    key: str
    error: float
    index: tuple[int, ...]
    analytic: float
    numeric: float
    entries: int


class GradientReport:
    """What :func:`check_gradients` found; each parameter is kept as the attribute of its name.

    Parameters
    ----------
    graph : str
        The graph's name.
    checks : dict key -> ParameterCheck
        In ``parameters()`` order.
    analytic, numeric : dict key -> ndarray
        The backward pass's gradients and the central differences (NaN where
        an entry was not sampled).
    loss : float
        The training loss at the weights checked.
    rows : int
        The rows of the batch.
    eps : float
        The step of the central differences.
    tolerance : float
        The largest relative error that passes.

    Attributes
    ----------
    errors : dict key -> float
        The largest relative error of each parameter.
    ok : bool
        Every error is at most ``tolerance``.
    """

    def __init__(self, graph: str, checks: dict[str, ParameterCheck], analytic, numeric,
                 loss: float, rows: int, eps: float, tolerance: float):
        self.graph, self.checks, self.analytic, self.numeric = graph, checks, analytic, numeric
        self.loss, self.rows, self.eps, self.tolerance = loss, rows, eps, tolerance

    @property
    def errors(self) -> dict[str, float]:
        return {key: c.error for key, c in self.checks.items()}

    @property
    def ok(self) -> bool:
        return all(c.error <= self.tolerance for c in self.checks.values())

    @property
    def worst(self) -> ParameterCheck | None:
        """The parameter with the largest error (``None`` for a graph without parameters)."""
        return max(self.checks.values(), key=lambda c: c.error, default=None)

    @property
    def failed(self) -> list[str]:
        return [key for key, c in self.checks.items() if c.error > self.tolerance]

    def text(self, width: int = 80) -> str:
        """A table that fits ``width`` columns: one row per parameter, then a verdict.

        Parameters
        ----------
        width : int, default 80
            The columns the table fits (parameter keys wrap to fit).
        """
        entries = sum(c.entries for c in self.checks.values())
        head = [
            f"Gradient check of {self.graph!r}: backward against central differences in float64",
            f"(eps={self.eps:g}) on {self.rows} rows, {len(self.checks)} parameters, "
            f"{entries:,} entries; tolerance {self.tolerance:g}",
        ]
        numbers = f"{'Entries':>8} {'Max error':>10} {'Backward':>11} {'Numeric':>11}  {'':4}"
        key_width = max(12, width - len(numbers) - 2)
        lines = [*(textwrap.fill(h, width) for h in head), "",
                 f" {'Parameter':<{key_width}}{numbers}".rstrip(), " " + "-" * (width - 2)]
        for c in self.checks.values():
            verdict = "ok" if c.error <= self.tolerance else "FAIL"
            row = (f"{c.entries:>8,} {c.error:>10.2e} {c.analytic:>11.3e} {c.numeric:>11.3e}  {verdict:4}")
            wrapped = _wrap_key(c.key, key_width - 1)
            for part in wrapped[:-1]:
                lines.append(f" {part}")
            lines.append(f" {wrapped[-1]:<{key_width}}{row}".rstrip())
        worst = self.worst
        lines.append("")
        if worst is None:
            lines.append("Nothing to check: the graph has no parameters.")
        elif self.ok:
            lines.append(textwrap.fill(
                f"OK: every gradient agrees (largest error {worst.error:.2e}, {worst.key}).", width))
        else:
            lines.append(textwrap.fill(
                f"FAILED: {len(self.failed)} of {len(self.checks)} parameters disagree; the worst is "
                f"{worst.key} at {list(worst.index)}: backward {worst.analytic:.6g}, numeric "
                f"{worst.numeric:.6g} (relative error {worst.error:.2e}). Check the backward of "
                "the activation or loss that parameter feeds.", width))
        return "\n".join(lines)

    __str__ = text

    def __repr__(self) -> str:
        worst = self.worst
        where = "" if worst is None else f", worst {worst.error:.2e} at {worst.key}"
        return f"<GradientReport of {self.graph!r}: {'ok' if self.ok else 'FAILED'}, {len(self.checks)} parameters{where}>"


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _wrap_key(key: str, width: int) -> list[str]:
    """A parameter key in lines of at most ``width``, broken after ``->`` where it can be."""
    parts = key.split("->")
    pieces = [part + "->" for part in parts[:-1]] + [parts[-1]]
    lines = [""]
    for piece in pieces:
        while len(piece) > width:  # a name longer than the column: cut it
            if lines[-1]:
                lines.append("")
            lines[-1], piece = piece[:width], piece[width:]
            lines.append("")
        if len(lines[-1]) + len(piece) > width:
            lines.append("")
        lines[-1] += piece
    return [line for line in lines if line] or [""]


def float64_copy(graph: Graph) -> Graph:
    """A deep copy of ``graph`` on the CPU with every weight and bias in
    float64 (no optimizer: the copy is for measuring, not training). A device
    graph is checked there too: the check is of the maths, and two forward
    passes per entry would be two synchronisations each on a device."""
    twin = copy.deepcopy(graph, memo={id(graph.optimizer): None})
    twin.to("cpu")
    twin.astype(np.float64)  # what the graph would draw is drawn first: the pending seeds came with the copy
    return twin


def check_gradients(graph: Graph, x, y, eps: float = 1e-6, tolerance: float = 1e-6,
                    samples: int | None = None, seed: int = 0) -> GradientReport:
    """Compare the backward pass with central differences, per parameter.

    Parameters
    ----------
    graph : Graph
        Left unchanged (the check runs on a float64 copy).
    x : ndarray of shape (n, size), or dict input name -> ndarray
    y : ndarray or dict output name -> ndarray
    eps : float
        The step of the central differences.
    tolerance : float
        The largest relative error that passes (:attr:`GradientReport.ok`).
        It also sets the floor of each relative error (see the module
        docs), so the errors reported depend on it.
    samples : int, optional
        Check at most this many entries per parameter, chosen at random with
        ``seed`` (each costs two forward passes); all of them by default.
    seed : int

    Returns
    -------
    GradientReport

    Raises
    ------
    GraphError
        For a bad ``eps``, ``tolerance`` or ``samples``.
    ShapeError
        For data that does not fit the graph.
    """
    if not isinstance(graph, Network):
        raise GraphError(f"check_gradients: expected a Graph, got {type(graph).__name__}")
    if not (_is_real(eps) and 0 < eps < 1):
        raise GraphError(f"check_gradients: eps must be a number in (0, 1), got {eps!r}")
    if not (_is_real(tolerance) and tolerance > 0):
        raise GraphError(f"check_gradients: tolerance must be a positive number, got {tolerance!r}")
    if samples is not None and not is_int(samples, 1):
        raise GraphError(f"check_gradients: samples must be None or a positive integer, got {samples!r}")
    if not is_int(seed, 0):
        raise GraphError(f"check_gradients: seed must be an integer >= 0, got {seed!r}")
    with graph.lock.reading():  # the weights of one moment
        twin = float64_copy(graph)
    plan = compile_plan(twin)
    inputs, targets = as_inputs(twin, x), as_targets(twin, y)
    rows = common_rows(inputs, targets)
    if rows == 0:
        raise ShapeError("check_gradients: the data has no rows")

    ws = probe_workspace(plan, rows, backward=True)
    loss = float(plan.loss_and_gradients(ws, inputs, targets)[0])
    analytic = plan.store.grad_dict()
    evaluate = plan.workspace(rows, "evaluate")

    def loss_now() -> float:
        plan.forward(evaluate, inputs)
        return plan.training_loss(evaluate, targets)

    picker = np.random.default_rng(seed)
    arrays = parameter_arrays(twin)  # live views into the plan's parameter buffer
    checks, numeric = {}, {}
    for record in twin.parameters():
        array, grad = arrays[record.key], analytic[record.key]
        estimate = np.full(array.shape, np.nan)
        indices = list(np.ndindex(array.shape))
        if samples is not None and samples < len(indices):
            indices = [indices[i] for i in np.sort(picker.choice(len(indices), samples, replace=False))]
        worst, worst_error = (indices[0] if indices else ()), -1.0
        for index in indices:
            original = array[index]
            array[index] = original + eps
            plus = loss_now()
            array[index] = original - eps
            minus = loss_now()
            array[index] = original
            estimate[index] = (plus - minus) / (2 * eps)
            # Entries smaller than the quotient can resolve at this tolerance
            # are compared on that scale (see the module docs).
            floor = max(_TINY, _ROUNDING * (abs(plus) + abs(minus)) / (2 * eps) / tolerance)
            a, n = grad[index], estimate[index]
            error = abs(a - n) / max(abs(a) + abs(n), floor)
            if error > worst_error or not np.isfinite(error):
                worst, worst_error = index, error
                if not np.isfinite(error):
                    worst_error = np.inf
        checks[record.key] = ParameterCheck(
            key=record.key,
            error=max(float(worst_error), 0.0),
            index=tuple(int(i) for i in worst),
            analytic=float(grad[worst]) if indices else 0.0,
            numeric=float(estimate[worst]) if indices else 0.0,
            entries=len(indices),
        )
        numeric[record.key] = estimate
    report = GradientReport(graph.name, checks, analytic, numeric, loss, rows, float(eps), float(tolerance))
    logger.info("%s: gradient check %s", graph.name, "ok" if report.ok else f"FAILED at {report.failed}")
    return report
