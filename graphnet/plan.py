"""The compiled execution plan: forward and backward, one visit per node.

Compiling a graph fixes, for the graph's current version:

* the topological order, with every node given an integer *slot*;
* per dense node, its incoming synapses as :class:`Edge` records holding views
  of their weight and weight gradient (no dict lookups in the hot loop);
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
import functools
import gc
import logging
import threading
import time
from dataclasses import dataclass
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from . import _gather
from ._parameters import ParameterStore, bias_key
from .activations import Activation
from .losses import Loss
from .nodes import Input, Output
from .workspace import Workspace

if TYPE_CHECKING:
    from .network import Network

__all__ = ["Edge", "Step", "Plan", "Workspace", "compile_plan"]

logger = logging.getLogger(__name__)

#: Workspaces cached for training (a full batch, the last shorter one, gradients()).
_TRAIN_CACHE = 4
#: A thread keeps its predict workspace up to this size (a one-row call of
#: W1's net needs 1.6 KB; a 4096-row chunk 6 MB, made per call).
_KEPT_PREDICT_BYTES = 1 << 20


class Edge(NamedTuple):
    """One incoming synapse of a dense node, as the hot loop needs it."""

    src: int  # slot of the source node
    weight: np.ndarray  # (src.size, dst.size), a view into the parameter buffer
    weight_grad: np.ndarray  # same shape, a view into the gradient buffer
    from_input: bool  # inputs need no upstream gradient
    writes_first: bool  # first consumer (in backward) to write ``upstream`` of ``src``
    gather: bool = False  # from a categorical input: rows of ``weight`` by code (graphnet._gather)


@dataclass(slots=True)
class Step:
    """A dense node's work in forward and backward. ``forward``/``backward``
    are the activation's, and ``value``/``gradient``/``delta`` the loss's,
    bound to the plan's array module (see :func:`_bound`)."""

    slot: int
    name: str
    size: int
    activation: Activation
    forward: object
    backward: object
    value: object
    gradient: object
    delta: object
    edges: tuple[Edge, ...]
    bias: np.ndarray
    bias_grad: np.ndarray
    dropout: float
    loss: Loss | None  # set for Output nodes
    loss_weight: float
    feeds_others: bool  # ``upstream`` (dL/da) arrives from consumers
    gathers: bool = False  # an edge gathers rows: graphnet._gather runs the edges


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
        self.order: tuple[str, ...] = tuple(graph.topological_order)
        self.slots: dict[str, int] = {name: i for i, name in enumerate(self.order)}
        self.sizes: tuple[int, ...] = tuple(graph.nodes[n].size for n in self.order)
        nodes = graph.nodes
        self.inputs = tuple((n, self.slots[n]) for n in graph.inputs)
        self.outputs = tuple((n, self.slots[n]) for n in graph.outputs)
        self.output_names: list[str] = [n for n, _ in self.outputs]
        #: ``(name, size)`` of the one input when it takes plain arrays (no
        #: transforms, no categories): predict's short path.
        only = nodes[self.inputs[0][0]] if len(self.inputs) == 1 else None
        self.plain_input = (only.name, only.size) if only is not None and not only.transforms else None

        # One sweep over the synapses: each node's incoming ones (in the order
        # they were connected), and each source's latest consumer, the first to
        # write its upstream gradient in backward (which runs in reverse order).
        slots = self.slots
        incoming: dict[str, list] = {}
        last_consumer: dict[str, int] = {}
        for synapse in graph.synapses:
            src, dst = synapse.src, synapse.dst
            incoming.setdefault(dst, []).append(synapse)
            if last_consumer.get(src, -1) < slots[dst]:
                last_consumer[src] = slots[dst]

        inputs = {name for name, _ in self.inputs}
        # The parameters in the order the forward pass meets them: each dense
        # node's incoming weights (in the order connected), then its bias.
        owners = []
        for name in self.order:
            if name not in inputs:
                owners += incoming[name]
                owners.append(nodes[name])
        self.store = store = ParameterStore(owners, self.dtype, backend)
        grads = iter(store.grads_as_given)
        categorical = {name for name in inputs if nodes[name].categorical}
        fused_backward, fused_delta = backend.fused_backward, backend.fused_delta

        numpy, dtype = xp is np, self.dtype
        fuse = backend.fused_bias_activation
        steps, forward, backward = [], [], []
        for name in self.order:
            if name in inputs:
                continue
            node, slot = nodes[name], slots[name]
            # Positional arguments: 20,000 of these are made for a graph of 10,000 nodes.
            edges = tuple([
                Edge(slots[s.src], s.parameter_array, next(grads), s.src in inputs, last_consumer[s.src] == slot,
                     s.src in categorical)
                for s in incoming[name]
            ])
            activation = node.activation
            loss = node.loss if isinstance(node, Output) else None
            fused = loss is not None and loss.fused
            activate = activation.forward if numpy else _bound(activation.forward, xp)
            derivative = fused_backward(activation, dtype) or (
                activation.backward if numpy else _bound(activation.backward, xp))
            gathers = bool(categorical) and any(e.gather for e in edges)
            dropout = getattr(node, "dropout", 0.0)
            step = Step(
                slot, name, node.size, activation, activate, derivative,
                None if loss is None else _bound(loss.value, xp),
                None if loss is None or fused else _bound(loss.gradient, xp),
                (fused_delta(loss) or _bound(loss.delta, xp)) if fused else None,
                edges, node.parameter_array, next(grads), dropout, loss,
                node.loss_weight if loss is not None else 0.0, name in last_consumer, gathers,
            )
            steps.append(step)
            # The hot loops' view of the step: plain tuples, unpacked once per
            # node per pass (a deep, narrow net spends its time in these loops).
            # A hidden node whose z is not kept (its activation's derivative is
            # taken from a) may add its bias and activate in one compiled pass.
            first = edges[0]
            needs_z = activation.needs_input
            forward.append((
                slot, step.size, first.src, first.weight, tuple([(e.src, e.weight) for e in edges[1:]]), step.bias,
                activate, dropout, gathers, None if loss is not None or needs_z else fuse(activation, dtype), step,
            ))
            # Edges as plain tuples (slicing makes them): CPython unpacks a
            # tuple subclass such as Edge on its slow path.
            backward.append((slot, needs_z, loss is not None, dropout, derivative, step.bias_grad,
                             tuple([e[:5] for e in edges]), gathers, step))
        self.steps: tuple[Step, ...] = tuple(steps)
        self._forward = tuple(forward)
        self._backward = tuple(reversed(backward))
        # Regularized parameters as (penalty, add_gradient, value view, gradient view).
        penalties = [(s.regularizer, s.weight, store.grad(s.key)) for s in graph.synapses if s.regularizer]
        penalties += [
            (nodes[name].bias_regularizer, nodes[name].bias, store.grad(bias_key(name)))
            for name in self.order
            if not isinstance(nodes[name], Input) and nodes[name].bias_regularizer is not None
        ]
        self.penalties = tuple(
            (_bound(r.penalty, xp), _bound(r.add_gradient, xp), value, grad) for r, value, grad in penalties
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
                for src, weight in rest:
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
        for step in self.steps:
            if step.loss is not None:
                values[step.name] = step.value(
                    targets[step.name], ws.a[step.slot], ws.z[step.slot],
                    None if rows is None else rows.get(step.name),
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
        return sum(step.loss_weight * losses[step.name] for step in self.steps if step.loss is not None)

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
            for src, weight, weight_grad, from_input, writes_first in edges:
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
            for edge in step.edges:
                back = dot(delta, edge.weight.T)
                if edge.src in upstream:
                    upstream[edge.src] += back
                else:
                    upstream[edge.src] = back
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


def _bound(method, xp):
    """``method`` with ``xp=xp`` bound, except for numpy, whose calls need no
    keyword (one fewer layer of Python on every CPU call)."""
    return method if xp is np else functools.partial(method, xp=xp)
