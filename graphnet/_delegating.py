"""The methods of :class:`graphnet.Graph` that hand the work to a module above it.

Users write ``g.fit(...)``, ``g.save(...)``, ``g.render(...)``; the work is
done in :mod:`graphnet.training`, :mod:`graphnet.saving`,
:mod:`graphnet.render`, ..., which sit above the graph because they read
graphs. Each method here imports its module when it is called, so nothing
imports upward at import time, and :mod:`graphnet.graph` keeps only the
structure. ``Graph`` inherits this class (as Keras's ``Model`` inherits its
``Trainer``); it has no state of its own.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from . import backend as backend_module
from . import optimizers as optimizers_module
from ._locks import edit as _edit
from .errors import GraphError, NotFoundError

if TYPE_CHECKING:
    from .callbacks import History
    from .graph import Graph, NodeRef
    from .nodes import Hidden
    from .plan import Plan

__all__ = ["DelegatingMethods"]


class DelegatingMethods:
    """``Graph``'s running, training, surgery, statistics, spec, picture and
    file methods; see the module docs."""

    # ------------------------------------------------------------ running
    @property
    def plan(self) -> Plan:
        """The compiled execution plan, rebuilt after any structural edit."""
        plan = self._plan
        if plan is not None and plan.version == self.version:
            return plan
        with self._plan_lock:
            if self._plan is None or self._plan.version != self.version:
                from .plan import Plan

                self._draw()  # the plan binds every weight: the fan-ins are final for now
                self._plan = Plan(self)
            return self._plan

    def predict(self, x, batch_size: int | None = None, as_device: bool = False):
        """Outputs for ``x`` in inference mode (no dropout); safe from several threads.

        Parameters
        ----------
        x : ndarray of shape (n, size), or dict input name -> ndarray
        batch_size : int, optional
            Rows per chunk; memory use grows with the chunk, not with ``n``.
        as_device : bool
            On a GPU, return the device's arrays (CuPy) instead of copying
            them to numpy; on the CPU, numpy arrays either way.

        Returns
        -------
        ndarray of shape (n, size) for a one-output graph, else a dict name -> ndarray.
        """
        from .inference import predict

        return predict(self, x, batch_size, as_device=as_device)

    __call__ = predict

    def evaluate(self, x, y, batch_size: int | None = None, metrics=None, sample_weight=None) -> dict[str, float]:
        """Loss (total and per output) and ``metrics`` on ``(x, y)``, without dropout."""
        from .inference import evaluate

        return evaluate(self, x, y, batch_size=batch_size, metrics=metrics, sample_weight=sample_weight)

    def gradients(self, x, y) -> tuple[float, dict[str, np.ndarray]]:
        """``(loss, grads)`` on one batch, ``grads`` keyed like ``get_weights()``.

        Runs in training mode (dropout on) and changes no weights.
        """
        from .training import gradients

        return gradients(self, x, y)

    def train_step(self, x, y, optimizer=None, sample_weight=None) -> float:
        """One update on one batch; returns the loss before the update."""
        from .training import train_step

        return train_step(self, x, y, optimizer, sample_weight)

    def fit(
        self,
        x,
        y,
        *,
        epochs: int = 1,
        batch_size: int = 32,
        optimizer=None,
        metrics=None,
        validation_data=None,
        validation_split: float = 0.0,
        shuffle: bool = True,
        callbacks=(),
        verbose: int = 1,
        sample_weight=None,
        class_weight=None,
    ) -> History:
        """Train with mini-batches; returns a :class:`~graphnet.training.History`.

        See :func:`graphnet.training.fit` for every argument.
        """
        from .training import fit

        return fit(
            self,
            x,
            y,
            epochs=epochs,
            batch_size=batch_size,
            optimizer=optimizer,
            metrics=metrics,
            validation_data=validation_data,
            validation_split=validation_split,
            shuffle=shuffle,
            callbacks=callbacks,
            verbose=verbose,
            sample_weight=sample_weight,
            class_weight=class_weight,
        )

    # ------------------------------------------------------------ surgery
    # (Each runs under the write lock from its first check to its last change,
    # so no prediction or training step sees half an edit.)
    @_edit
    def freeze(self, *names) -> list[str]:
        """Stop training the parameters of the named nodes: each one's bias and
        its incoming synapses. Gradients still flow through them.

        Parameters
        ----------
        *names : str, Node, Synapse or (str, str)
            Node names or glob patterns (``"enc_*"``, matched with
            :func:`fnmatch.fnmatchcase`), nodes, synapses, or ``(src, dst)``
            pairs of patterns that select synapses only.

        Returns
        -------
        list of str
            The keys of the parameters selected, in ``parameters()`` order.

        Raises
        ------
        GraphError
            When a pattern matches nothing (the message lists the names) or only
            inputs; nothing changes then.
        """
        from .surgery import freeze

        return freeze(self, *names)

    @_edit
    def unfreeze(self, *names) -> list[str]:
        """Train the named nodes' parameters again; the arguments are :meth:`freeze`'s."""
        from .surgery import unfreeze

        return unfreeze(self, *names)

    @_edit
    def insert(self, src: NodeRef, dst: NodeRef, name: str, size: int | None = None,
               activation="linear", preserve: bool = True) -> Hidden:
        """Replace the synapse ``src -> dst`` by ``src -> name -> dst`` (Net2DeeperNet).

        Parameters
        ----------
        src, dst : str or Node
            The ends of an existing synapse.
        name : str
            The new hidden node.
        size : int, optional
            Its units; ``src``'s size by default.
        activation : str, dict or Activation
        preserve : bool
            Start the new node as an identity (weights ``[I 0]`` in, the old
            weight with zero rows below it out), so every prediction is
            unchanged: exactly for ``linear``, and for ``relu``,
            ``leaky_relu`` and ``elu`` when ``src``'s outputs are never negative
            (its activation is relu, sigmoid, softplus, softmax or
            hard_sigmoid). Units beyond ``src``'s size start random with zero
            outgoing weights. ``False`` draws both synapses afresh.

        Returns
        -------
        Hidden
            The new node.

        Raises
        ------
        GraphError
            For an unknown node or synapse, a name in use, a bad size or
            activation, or a ``preserve=True`` insert that cannot be an
            identity (the message says why). The graph is left as it was.
        """
        from .surgery import insert

        return insert(self, src, dst, name, size=size, activation=activation, preserve=preserve)

    @_edit
    def widen(self, name: NodeRef, size: int, seed: int | None = None, split: str = "equal") -> Hidden:
        """Grow a hidden node to ``size`` units without changing a prediction (Net2WiderNet).

        Each new unit copies a randomly chosen old unit (its incoming weights
        and bias); the outgoing weights of a unit copied ``c`` times are
        divided among its copies, so every consumer receives the same sum.

        Parameters
        ----------
        name : str or Node
            A hidden node with an elementwise activation (not softmax).
        size : int
            The new number of units (at least the current one).
        seed : int, optional
            For the choice of units to copy; by default the graph's
            initialisation stream.
        split : {"equal", "random"}
            ``"equal"`` divides a copied unit's outgoing weights by its number
            of copies (Net2Net's rule); the copies then receive equal
            gradients and stay twins unless dropout separates them.
            ``"random"`` divides them in random shares that sum to one: just as
            exact, and the copies learn apart. (Regularizers stay with their
            parameters; a penalty on divided weights is smaller, so the
            training loss may drop a little though no prediction changes.)

        Returns
        -------
        Hidden
            The new node object that replaces the old one.

        Raises
        ------
        GraphError
            For an input, an output, a softmax node, a smaller size, or a bad
            ``seed``/``split``; the graph is left as it was.
        """
        from .surgery import widen

        return widen(self, name, size, seed=seed, split=split)

    @_edit
    def transfer_weights(self, other, match: str = "name", strict: bool = True):
        """Copy parameters from ``other`` (a Graph, or a dict like ``get_weights()``).

        Parameters
        ----------
        other : Graph or dict key -> ndarray
        match : {"name", "shape"}
            Pair parameters by key, or by position in ``parameters()`` order
            (for graphs built alike under other names).
        strict : bool
            Refuse, copying nothing, when any pair differs in shape.

        Returns
        -------
        TransferReport
            ``copied``, ``skipped``, ``mismatched`` and ``unused`` parameters.

        Raises
        ------
        GraphError
            For a mismatch under ``strict``, or a value that is not finite.
        """
        from .surgery import transfer_weights

        return transfer_weights(self, other, match=match, strict=strict)

    def statistics(self, x, y=None):
        """Activation, dead-unit, saturation, weight and gradient statistics on
        one batch, in inference mode; changes nothing. See
        :func:`graphnet.statistics.statistics`."""
        from .statistics import statistics

        with self._lock.reading():  # the weights of one moment, as for predict
            return statistics(self, x, y)

    def attributions(self, x, method: str = "integrated_gradients", baseline=None, steps: int = 50,
                     output: str | None = None, target=None, rule: str = "gausslegendre",
                     batch_size: int | None = None):
        """How much each input column moved one output unit, per row and on
        average (integrated gradients by default); changes nothing. See
        :func:`graphnet.attributions.attributions`."""
        from .attributions import attributions

        with self._lock.reading():
            return attributions(self, x, method=method, baseline=baseline, steps=steps, output=output,
                                target=target, rule=rule, batch_size=batch_size)

    # ------------------------------------------------------------------ specs
    def to_dict(self) -> dict[str, Any]:
        """The architecture (no weights) as JSON-safe data; see :mod:`graphnet.spec`."""
        from .spec import to_dict

        return to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], max_params: int | None = 100_000_000) -> Graph:
        """A new Graph (or Sequential) from :meth:`to_dict`'s structure; more than
        ``max_params`` parameters (``None``: no limit) are refused before any
        allocation. See :func:`graphnet.spec.from_dict`."""
        from .spec import from_dict

        return from_dict(data, max_params=max_params)

    # ------------------------------------------------------------ seeing it
    def summary(self, print_fn=print):
        """Print the table of nodes and parameter counts; ``print_fn=None`` returns
        the text. See :func:`graphnet.summary.summary`."""
        from .summary import summary

        return summary(self, print_fn=print_fn)

    def to_dot(self, rankdir: str = "LR", show_shapes: bool = True, **options):
        """The diagram as a ``graphviz.Digraph``; see :func:`graphnet.render.to_dot`."""
        from .render import to_dot

        return to_dot(self, rankdir=rankdir, show_shapes=show_shapes, **options)

    def render(self, path, **options):
        """Write the diagram to ``path`` (``.svg``, ``.png``, ``.pdf``, ``.dot``, ``.gv``;
        see :func:`graphnet.render.render`), or a page to explore it (``.html``;
        see :func:`graphnet.render_html.render_html`)."""
        if str(os.fspath(path)).lower().endswith(".html"):
            from .render_html import render_html

            return render_html(self, path, **options)
        from .render import render

        return render(self, path, **options)

    def _repr_mimebundle_(self, include=None, exclude=None):
        from .render import repr_mimebundle

        return repr_mimebundle(self, include, exclude)

    def _repr_svg_(self):
        from .render import repr_svg

        return repr_svg(self)

    @classmethod
    def from_spec(cls, path, max_params: int | None = 100_000_000) -> Graph:
        """A new Graph (or Sequential) from a ``.json``/``.yaml`` spec file; see
        :func:`graphnet.specfile.from_spec`."""
        from .specfile import from_spec

        return from_spec(path, max_params=max_params)

    # ------------------------------------------------------------ files
    def save(self, path):
        """Write architecture, weights and optimizer state to one file (atomically);
        ``gn.load(path)`` reads it back. See :mod:`graphnet.saving`."""
        from .saving import save

        return save(self, path)

    def to_onnx(self, path, opset: int = 17):
        """Export to an ONNX file (checked) with this graph's input and output
        names and a dynamic batch size; see :mod:`graphnet.interop.onnx_export`."""
        from .interop.onnx_export import to_onnx

        # The exporter reads weights as numpy arrays: a GPU graph exports a CPU copy.
        source = self if self._backend is backend_module.CPU else copy.deepcopy(self).to("cpu")
        return to_onnx(source, path, opset=opset)

    # ------------------------------------------------------------- compiling
    def compile(self, loss=None, optimizer=None, metrics=None) -> Graph:
        """Keras's idiom: set the outputs' losses, the optimizer and the
        default metrics of ``fit``/``evaluate``, and check that every loss
        fits its output's activation. Returns the graph.

        Parameters
        ----------
        loss : str, dict, Loss, or dict output name -> loss, optional
            One loss for every output, or one per output (others keep theirs).
        optimizer : str, dict or Optimizer, optional
            Becomes ``graph.optimizer`` (kept with its state by ``fit``).
        metrics : list, or dict output name -> list, optional
            Used by ``fit`` and ``evaluate`` when they are given no ``metrics``.

        Raises
        ------
        GraphError
            For unknown outputs, losses, optimizers or metrics, or a loss that
            does not fit its activation; the graph is then left as it was.
        """
        from . import losses as losses_module
        from . import metrics as metrics_module

        outputs = self.outputs
        if isinstance(loss, Mapping) and "name" not in loss:
            unknown = [k for k in loss if k not in outputs]
            if unknown:
                raise NotFoundError(f"compile: loss for unknown outputs {unknown}; outputs: {outputs}")
            chosen = {name: losses_module.get(value) for name, value in loss.items()}
        else:
            chosen = {} if loss is None else {name: losses_module.get(loss) for name in outputs}
        new_optimizer = None if optimizer is None else optimizers_module.get(optimizer)
        if metrics is not None:
            metrics_module.resolve(self, metrics)
        problems = []
        for name in outputs:
            node = self._nodes[name]
            try:
                node._check_pairing(node.activation, chosen.get(name, node.loss))
            except GraphError as exc:
                problems.append(str(exc))
        if problems:
            raise GraphError(f"compile: {'; '.join(problems)}")
        with self._lock.writing():
            if new_optimizer is not None:
                self.optimizer = new_optimizer
            for name, value in chosen.items():
                self._nodes[name].loss = value
            if metrics is not None:
                self._metrics = metrics
            self._compiled(loss)
        return self

    def _compiled(self, loss) -> None:
        """What a subclass keeps of ``compile(loss=...)`` (a Sequential, its loss for later layers)."""
