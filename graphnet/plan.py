"""The compiled execution plan: forward and backward, one visit per node.

Compiling a graph fixes, for the graph's current version:

* the topological order, with every node given an integer *slot*;
* per dense node, its incoming synapses as *edges*, plain tuples
  ``(src, weight, weight_grad, from_input, writes_first, gather)``: the
  source's slot, views of the weight and of its gradient, whether the
  source is an input (which needs no upstream gradient), whether this is the
  first consumer in backward to write the source's ``upstream``, and whether
  the source is categorical (:mod:`graphnet._gather`). No dict lookups in
  the hot loop, and plain tuples because CPython unpacks those on its fast
  path;
* for backward, which consumer of a node writes that node's upstream gradient
  first and which ones add to it (fan-out), decided once from the order;
* the :class:`~graphnet._parameters.ParameterStore`: every weight, bias and
  gradient as views into two flat buffers.

Running needs buffers, which live in a :class:`Workspace` per batch size. Per
node slot, with the names the maths uses:

``z``
    the pre-activation ``bias + Σ x_src @ W_src``;
``a``
    the activation ``f(z)`` (the same buffer as ``z`` unless ``z`` is needed
    later: by a loss computed from logits, or a derivative that needs ``z``);
``x``
    what the node passes to its consumers: ``a`` after dropout (the data
    itself for an Input);
``upstream``
    ``dL/da`` summed over the node's consumers (only for nodes that feed others);
``delta``
    ``dL/dz``, computed in backward and written over ``upstream`` or ``a``.

**The buffer-reuse rule.** Backward visits nodes in reverse order, so when it
reaches a node every consumer has already taken its weight gradient from
that node's ``x``. From then on the node's ``a`` and ``upstream`` are needed
only to compute its own ``delta``, and the activation's ``backward`` may
overwrite them (it returns ``delta`` in one of them). That is why a node
costs two or three buffers, not five.

The plan itself is never written to while running: ``predict`` makes its own
workspace per call and is therefore safe from several threads; training keeps
its workspaces in a cache that ``predict`` never touches.

**One gradient contract.** Training, ``Graph.gradients``, the statistics and
the gradient check all differentiate the same thing the same way:
:meth:`Plan.loss_and_gradients` runs forward, the losses, backward and the
regularizers' penalty, and leaves every parameter's gradient in the store.

:func:`compile_plan` gives a network's plan for its current version, made
once per version (``Graph.plan``).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import operator
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from . import _gather
from ._dense_step import Step, activation_functions, bound, make_step
from ._parameters import ParameterStore
from .nodes import Output
from .workspace import Workspace

if TYPE_CHECKING:
    from .network import Network

__all__ = ["Step", "Plan", "Workspace", "compile_plan"]

logger = logging.getLogger(__name__)

#: Workspaces cached for training (a full batch, the last shorter one, gradients()).
_TRAIN_CACHE = 4
#: A thread keeps its predict workspace up to this size (a one-row call of
#: W1's net needs 1.6 KB; a 4096-row chunk 6 MB, made per call).
_KEPT_PREDICT_BYTES = 1 << 20


_SRC, _DST, _SIZE = operator.attrgetter("src"), operator.attrgetter("dst"), operator.attrgetter("size")
_ACTIVATION = operator.attrgetter("activation")
_NEEDS_INPUT, _REGULARIZER = operator.attrgetter("needs_input"), operator.attrgetter("regularizer")


@contextlib.contextmanager
def _collector_paused():
    """Compiling makes several objects per node and keeps them all; on large
    graphs the cyclic garbage collector would rescan them again and again
    (a third of the compile time of a 10,000-node graph). Nothing made here
    is cyclic garbage, so it can wait until the plan is built."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def compile_plan(graph: Network) -> Plan:
    """The plan of ``graph``'s current version, compiled once per version."""
    return graph.compiled(Plan)


class Plan:
    """Forward and backward for one version of a graph (see the module docs)."""

    def __init__(self, graph: Network):
        with _collector_paused():
            self._compile(graph)

    def _compile(self, graph: Network) -> None:
        started = time.perf_counter()
        graph.validate()
        self.version = graph.version
        self.graph_name = graph.name
        self.dtype = graph.dtype
        #: Where the arrays live (:mod:`graphnet.backend`) and their module.
        self.backend = backend = graph.backend
        self.xp = xp = backend.xp
        nodes = graph.nodes
        self.order: tuple[str, ...] = tuple(graph.topological_order)
        slots = dict(zip(self.order, range(len(self.order))))
        self.slots: dict[str, int] = slots
        self.sizes: tuple[int, ...] = tuple(map(_SIZE, map(nodes.__getitem__, self.order)))
        self.inputs = tuple((n, self.slots[n]) for n in graph.inputs)
        self.outputs = tuple((n, self.slots[n]) for n in graph.outputs)
        self.output_names: tuple[str, ...] = tuple(n for n, _ in self.outputs)
        #: Each input's column names, for the messages about its data.
        self.input_columns: dict[str, tuple[str, ...] | None] = {n: nodes[n].column_names for n, _ in self.inputs}
        #: Whether every input takes plain arrays (no transforms, categories
        #: included), and ``(name, size)`` of the one input when it is the only
        #: one and does: predict's short path.
        self.plain_inputs = not any(nodes[name].transforms for name in graph.inputs)
        only = self.inputs[0][0] if len(self.inputs) == 1 and self.plain_inputs else None
        self.plain_input = None if only is None else (only, nodes[only].size)
        #: The programs of the one-call forward by the nodes they compute
        #: (:mod:`graphnet._compiled_forward`), made when first asked.
        self.programs: dict = {}

        # The synapses as columns of slots, sorted by destination (stably, so
        # each node's incoming synapses stay in the order connected): the order
        # the forward pass meets them. Dense node k's incoming synapses are then
        # rows starts[k]:stops[k]. The plan is made column by column, each
        # column one pass in C, rather than node by node: a graph of 10,000
        # nodes has 30,000 parameters, and a Python loop over them with a dozen
        # lookups each would be most of the compile.
        synapses = graph.synapses
        n, m = len(self.order), len(synapses)
        src = np.fromiter(map(slots.__getitem__, map(_SRC, synapses)), np.intp, m)
        dst = np.fromiter(map(slots.__getitem__, map(_DST, synapses)), np.intp, m)
        by_dst = np.argsort(dst, kind="stable")
        src, dst = src[by_dst], dst[by_dst]
        dense = np.ones(n, bool)
        dense[[slot for _, slot in self.inputs]] = False
        categorical = np.zeros(n, bool)
        categorical[[slot for name, slot in self.inputs if nodes[name].categorical]] = True
        dense_slots = np.flatnonzero(dense)
        starts, stops = np.searchsorted(dst, dense_slots, "left"), np.searchsorted(dst, dense_slots, "right")
        # Backward runs in reverse order: a source's latest consumer writes its
        # upstream gradient first, and the others add to it.
        last_consumer = np.full(n, -1, np.intp)
        np.maximum.at(last_consumer, src, dst)

        # The parameters in the order the forward pass meets them: each dense
        # node's incoming weights, then its bias.
        dense_names = [self.order[slot] for slot in dense_slots.tolist()]
        d = len(dense_names)
        dense_nodes = list(map(nodes.__getitem__, dense_names))
        weight_at = np.arange(m) + (np.cumsum(dense) - 1)[dst]  # rank of the destination among dense nodes
        bias_at = stops + np.arange(d)
        owners = np.empty(m + d, object)
        owners[weight_at] = np.fromiter(synapses, object, m)[by_dst]
        owners[bias_at] = np.fromiter(dense_nodes, object, d)
        self.store = store = ParameterStore(owners.tolist(), self.dtype, backend)
        values = np.fromiter(store.values_as_given, object, m + d)
        grads = np.fromiter(store.grads_as_given, object, m + d)
        weights, weight_grads = values[weight_at].tolist(), grads[weight_at].tolist()
        biases, bias_grads = values[bias_at].tolist(), grads[bias_at].tolist()

        # The edges (see the module docs), and each dense node's.
        from_input, writes_first = (~dense[src]).tolist(), (last_consumer[src] == dst).tolist()
        rows = list(zip(src.tolist(), weights, weight_grads, from_input, writes_first, categorical[src].tolist()))
        edges = [tuple(rows[a:b]) for a, b in zip(starts.tolist(), stops.tolist())]
        first_src = src[starts].tolist()
        first_weight = [weights[a] for a in starts.tolist()]
        rest = [e[1:] for e in edges]

        # Per dense node: what its activation, its loss and the backend give.
        activations = list(map(_ACTIVATION, dense_nodes))
        activate, derivative, fused = activation_functions(activations, backend, self.dtype, xp)
        needs_z = list(map(_NEEDS_INPUT, activations))
        dropout = [getattr(node, "dropout", 0.0) for node in dense_nodes]
        feeds_others = (last_consumer[dense_slots] >= 0).tolist()
        gathers = (np.logical_or.reduceat(categorical[src], starts) if categorical.any()
                   else np.zeros(d, bool)).tolist()
        value, gradient, delta, loss, loss_weight = [None] * d, [None] * d, [None] * d, [None] * d, [0.0] * d
        for k, node in enumerate(dense_nodes):
            if not isinstance(node, Output):
                continue
            loss[k], loss_weight[k] = node.loss, node.loss_weight
            value[k] = bound(node.loss.value, xp)
            if node.loss.fused:
                delta[k] = backend.fused_delta(node.loss) or bound(node.loss.delta, xp)
            else:
                gradient[k] = bound(node.loss.gradient, xp)
            fused[k] = None  # an output keeps z for its loss
        dense_slots = dense_slots.tolist()
        sizes = [self.sizes[slot] for slot in dense_slots]
        steps = list(map(make_step, zip(
            dense_slots, dense_names, sizes, activations, activate, derivative, value, gradient, delta, edges,
            biases, bias_grads, dropout, loss, loss_weight, feeds_others, gathers,
        )))
        self.steps: tuple[Step, ...] = tuple(steps)
        #: Each output's step (what the losses read).
        self._losses = tuple(step for step in steps if step.loss is not None)
        # The hot loops' view of the steps: plain tuples, unpacked once per node
        # per pass (a deep, narrow net spends its time in these loops). A hidden
        # node whose z is not kept (its activation's derivative is taken from a)
        # adds its bias and activates in one compiled pass where the backend has one.
        fused = [None if keep else f for f, keep in zip(fused, needs_z)]
        self._forward = tuple(zip(
            dense_slots, sizes, first_src, first_weight, rest, biases, activate, dropout, gathers, fused, steps,
        ))
        is_output = [output_loss is not None for output_loss in loss]
        self._backward = tuple(zip(
            dense_slots, needs_z, is_output, dropout, derivative, bias_grads, edges, gathers, steps,
        ))[::-1]
        # Regularized parameters as (penalty, add_gradient, value view, gradient
        # view): the synapses' in the order connected, then the biases'.
        regularized = [i for i, r in enumerate(map(_REGULARIZER, synapses)) if r is not None]
        penalties = []
        if regularized:
            sorted_at = np.empty(m, np.intp)
            sorted_at[by_dst] = np.arange(m)
            penalties = [(synapses[i].regularizer, weights[j], weight_grads[j])
                         for i, j in zip(regularized, sorted_at[regularized].tolist())]
        penalties += [(node.bias_regularizer, biases[k], bias_grads[k])
                      for k, node in enumerate(dense_nodes) if node.bias_regularizer is not None]
        self.penalties = tuple(
            (bound(r.penalty, xp), bound(r.add_gradient, xp), value, grad) for r, value, grad in penalties
        )
        self._train_workspaces: dict[int, Workspace] = {}
        self._local = threading.local()  # each thread's predict workspace
        logger.debug(
            "%s: compiled plan v%d: %d nodes, %d synapses, %d params in %.1f ms",
            self.graph_name,
            self.version,
            len(self.order),
            len(graph.synapses),
            self.store.values.size,
            1e3 * (time.perf_counter() - started),
        )

    # ---------------------------------------------------------------- buffers
    def workspace(self, rows: int, mode: str) -> Workspace:
        """Fresh buffers for ``rows`` rows; ``mode`` is ``predict``, ``evaluate`` or ``train``."""
        return Workspace(self, rows, mode)

    def predict_workspace(self, rows: int) -> Workspace:
        """Buffers for ``predict`` on chunks of ``rows``: one kept per thread
        (so threads never share one) when it is small, for a one-row call
        costs microseconds; a large one is made per call, so memory held
        between calls stays bounded."""
        kept = getattr(self._local, "predict", None)
        if kept is not None and kept.rows == rows:
            return kept
        ws = Workspace(self, rows, "predict")
        if ws.nbytes <= _KEPT_PREDICT_BYTES:
            self._local.predict = ws
        return ws

    def train_workspace(self, rows: int) -> Workspace:
        """Training buffers, kept between steps (never shared with ``predict``)."""
        ws = self._train_workspaces.get(rows)
        if ws is None:
            larger = [w for r, w in self._train_workspaces.items() if r > rows]
            # A shorter last batch reuses the leading rows of the full batch's buffers.
            ws = larger[0].head(rows) if larger else Workspace(self, rows, "train")
            if len(self._train_workspaces) >= _TRAIN_CACHE:
                self._train_workspaces.pop(next(iter(self._train_workspaces)))
            self._train_workspaces[rows] = ws
        return ws

    # ---------------------------------------------------------------- forward
    def forward(self, ws: Workspace, inputs: dict[str, np.ndarray], rng=None) -> None:
        """Fill ``ws`` with every node's ``z``, ``a`` and ``x``. ``rng`` turns dropout on."""
        x, dot = ws.x, self.xp.dot
        for name, slot in self.inputs:
            x[slot] = inputs[name]
        z_bufs, a_bufs, scratch = ws.z, ws.a, ws.scratch
        for slot, size, src, weight, rest, bias, forward, dropout, gathers, fused, step in self._forward:
            z = z_bufs[slot]
            if gathers:
                _gather.forward(step, x, z, scratch, dot, self.backend.take)
            else:
                dot(x[src], weight, out=z)
                for src, weight, _, _, _, _ in rest:
                    tmp = scratch[size]
                    dot(x[src], weight, out=tmp)
                    z += tmp
            if fused is not None:  # z is a's buffer here: activation(z + bias) over it
                fused(z, bias)
                a = z
            else:
                z += bias
                a = forward(z, out=a_bufs[slot])
            if dropout and rng is not None:
                a = ws.drop(slot, a, dropout, rng)
            x[slot] = a

    def loss_values(self, ws: Workspace, targets: dict[str, np.ndarray], rows=None) -> dict[str, float]:
        """Each output's mean loss after :meth:`forward` (not yet times its
        ``loss_weight``); ``rows``, when given, maps outputs to ``(n, 1)`` row
        factors that make the means weighted (see ``Loss.value``)."""
        values = {}
        for step in self._losses:
            values[step.name] = step.value(
                targets[step.name], ws.a[step.slot], ws.z[step.slot], None if rows is None else rows.get(step.name),
            )
        return values

    def regularization(self, add_gradients: bool = False) -> float:
        """The regularizers' penalty at the current weights; with
        ``add_gradients``, their gradients are added to the store's (after
        :meth:`backward`, which overwrites it). A float, or on a device a 0-d
        array (see :meth:`graphnet.losses.Loss.value`)."""
        total = 0.0
        for penalty, add_gradient, value, grad in self.penalties:
            total += penalty(value)
            if add_gradients:
                add_gradient(value, grad)
        return total

    def total_loss(self, losses: dict[str, float]) -> float:
        """``Σ_outputs loss_weight × loss`` of :meth:`loss_values`' result."""
        return sum(step.loss_weight * losses[step.name] for step in self._losses)

    def training_loss(self, ws: Workspace, targets: dict[str, np.ndarray]) -> float:
        """After :meth:`forward`: ``Σ loss_weight × loss`` plus the regularizers'
        penalty, the value :meth:`loss_and_gradients` differentiates."""
        return self.total_loss(self.loss_values(ws, targets)) + self.regularization()

    def loss_and_gradients(
        self,
        ws: Workspace,
        inputs: dict[str, np.ndarray],
        targets: dict[str, np.ndarray],
        rng=None,
        rows=None,
        before_backward: Callable[[float, dict[str, float]], None] | None = None,
    ) -> tuple[float, dict[str, float], float]:
        """The training loss of one batch and, in the store's gradient buffer,
        every parameter's gradient of it: forward, the losses, backward and
        the regularizers' penalty.

        Parameters
        ----------
        ws : Workspace
            A ``"train"`` workspace of the batch's rows.
        inputs, targets : dict name -> array
            Checked, on the plan's device.
        rng : Generator, optional
            Turns dropout on (see :meth:`forward`).
        rows : dict output name -> array of shape (n, 1), optional
            Row factors for weighted means (see :meth:`loss_values`).
        before_backward : callable, optional
            ``before_backward(total, losses)`` after the losses, before
            backward writes deltas over the activations: the trainer's
            finiteness check, the statistics' reading of activations.

        Returns
        -------
        (loss, losses, penalty)
            ``Σ loss_weight × loss`` plus the penalty, each output's mean
            loss, and the penalty (floats, or a device's 0-d arrays).
        """
        self.forward(ws, inputs, rng)
        losses = self.loss_values(ws, targets, rows)
        total = self.total_loss(losses)
        if before_backward is not None:
            before_backward(total, losses)
        self.backward(ws, targets, rows)
        penalty = self.regularization(add_gradients=True) if self.penalties else 0.0
        return total + penalty, losses, penalty

    # --------------------------------------------------------------- backward
    def backward(self, ws: Workspace, targets: dict[str, np.ndarray], rows=None) -> None:
        """Write every parameter's gradient into the store's gradient buffer.

        Must follow :meth:`forward` on the same workspace; overwrites its
        ``a`` and ``upstream`` buffers with deltas (the buffer-reuse rule).
        ``rows`` is as for :meth:`loss_values`.
        """
        x, upstream, scratch, ones, keep = ws.x, ws.upstream, ws.scratch, ws.ones, ws.keep
        a_bufs, z_bufs, sizes = ws.a, ws.z, self.sizes
        dot = self.xp.dot
        for slot, needs_z, is_output, dropout, backward, bias_grad, edges, gathers, step in self._backward:
            a = a_bufs[slot]
            z = z_bufs[slot] if needs_z else None
            if is_output:
                r = None if rows is None else rows.get(step.name)
                delta = self._output_delta(step, targets[step.name], a, z, upstream[slot], r)
            else:
                grad = upstream[slot]
                if dropout:
                    grad *= keep[slot]
                delta = backward(a, grad, z)
            dot(ones, delta, out=bias_grad)
            if gathers:
                _gather.backward(step, x, delta, upstream, scratch, sizes, dot, self.backend.scatter_rows)
                continue
            for src, weight, weight_grad, from_input, writes_first, _ in edges:
                dot(x[src].T, delta, out=weight_grad)
                if from_input:
                    continue
                if writes_first:
                    dot(delta, weight.T, out=upstream[src])
                else:
                    tmp = scratch[sizes[src]]
                    dot(delta, weight.T, out=tmp)
                    upstream[src] += tmp

    # ------------------------------------------------ gradients of one node
    def input_gradients(self, ws: Workspace, node: str, seed) -> dict[str, np.ndarray]:
        """``d(Σ seed ⊙ a_node) / dx`` for every input, after :meth:`forward` without ``rng``.

        The gradient of one node's activation with respect to the data (for
        attributions), apart from :meth:`backward`: no loss, no parameter
        gradient, and only the nodes between the inputs and ``node`` are
        visited. ``ws`` must be a ``"train"`` workspace (it keeps ``z`` where a
        derivative needs it); its ``a`` buffers are overwritten (the
        buffer-reuse rule), so each forward pass serves one call.

        Parameters
        ----------
        ws : Workspace
        node : str
            A hidden or output node.
        seed : array of shape (rows, node.size)
            ``dL/da`` of ``node``: a one-hot row picks one unit. It is
            overwritten.

        Returns
        -------
        dict input name -> array of shape (rows, input size)
            Zeros for an input that does not reach ``node``.
        """
        dot, xp = self.xp.dot, self.xp
        upstream = {self.slots[node]: seed}  # dL/da by slot, made as the gradient reaches a node
        for step in reversed(self.steps):
            grad = upstream.pop(step.slot, None)
            if grad is None:
                continue  # not an ancestor of ``node``
            z = ws.z[step.slot] if step.activation.needs_input else None
            delta = step.backward(ws.a[step.slot], grad, z)
            for src, weight, _, _, _, _ in step.edges:
                back = dot(delta, weight.T)
                if src in upstream:
                    upstream[src] += back
                else:
                    upstream[src] = back
        return {
            name: upstream[slot] if slot in upstream else xp.zeros((ws.rows, self.sizes[slot]), self.dtype)
            for name, slot in self.inputs
        }

    @staticmethod
    def _output_delta(step: Step, y, a, z, upstream, r) -> np.ndarray:
        """``dL/dz`` of an output: its own loss, plus what flows back from consumers."""
        weight = step.loss_weight
        if step.delta is not None:  # a fused loss
            delta = step.delta(y, a, r)
            if weight != 1.0:
                delta *= weight
            if step.feeds_others:  # a is no longer needed once delta is taken
                delta += step.backward(a, upstream, z)
            return delta
        grad = step.gradient(y, a, r)
        if weight != 1.0:
            grad *= weight
        if step.feeds_others:
            grad += upstream
        return step.backward(a, grad, z)
