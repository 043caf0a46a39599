"""Graph: the public class, on the top floor of the house.

A :class:`Graph` is a :class:`~graphnet.network.Network` (named nodes joined
by synapses, their weights and device) with every verb a user reaches for.
Each verb is a function of the module that does the work, taken here as a
method: ``Graph.fit`` *is* :func:`graphnet.training.fit`, so its signature
and docstring are written once, and this class reads as a map of the house:

========================  ============================================
running                   :mod:`graphnet.inference`, :mod:`graphnet.plan`
preprocessing             :mod:`graphnet.preprocessing` (adapt, predict_labels)
training                  :mod:`graphnet.training`
weights                   :mod:`graphnet.weights`
surgery                   :mod:`graphnet.surgery`
seeing inside             :mod:`graphnet.statistics`, :mod:`graphnet.attributions`
specs and files           :mod:`graphnet.spec`, :mod:`graphnet.specfile`, :mod:`graphnet.saving`
pictures                  :mod:`graphnet.summary`, :mod:`graphnet.render`, :mod:`graphnet.render_html`
export                    :mod:`graphnet.interop.onnx_export`
========================  ============================================
"""

from __future__ import annotations

import copy

from . import attributions as attributions_module
from . import inference, preprocessing, render_html, saving, serving, spec, specfile, surgery, training, weight_files, weights  # noqa: F401 (render_html: .html pages)
from . import _compile
from . import render as render_module
from . import statistics as statistics_module
from . import summary as summary_module
from ._validation import check_bool
from .activations import Activation
from .interop import onnx_export
from .losses import Loss
from .network import Network, NodeRef
from .nodes import Hidden, Input, Output
from .plan import compile_plan

__all__ = ["Graph"]


class Graph(Network, kind="graph"):
    """A neural network whose shape is a directed acyclic graph.

    Parameters
    ----------
    name : str
        Used in messages, summaries and diagrams.
    seed : int or None
        Drives weight initialisation, shuffling, validation splits and
        dropout through ``numpy.random.Generator``; same seed, same data,
        same calls give bit-for-bit the same weights.
    dtype : {"float32", "float64"}
        Of every weight, activation and gradient.
    device : {"cpu", "cuda"}
        Where the weights live and the graph runs: ``"cuda"`` is an NVIDIA
        GPU through CuPy (``pip install 'graphnet[cuda]'``). Weights are drawn
        on the host from ``seed`` either way, so both start from the same
        values. See :meth:`to`.

    Raises
    ------
    GraphError
        For a bad name, seed or dtype, an unknown device, or ``"cuda"``
        without CuPy or without a visible GPU.

    Examples
    --------
    >>> import numpy as np
    >>> g = Graph(name="tiny", seed=0)
    >>> _ = g.add_input("x", 2)
    >>> _ = g.add_output("y", 1, activation="sigmoid", loss="binary_crossentropy")
    >>> _ = g.connect("x", "y")
    >>> g.predict(np.zeros((3, 2))).shape
    (3, 1)
    """

    # ---------------------------------------------------------- building
    def add_input(self, name: str, size: int | None = None, *, columns=None, categories=None,
                  normalize: bool = False, missing: str = "error") -> Input:
        """Add an Input: where data enters, as numbers or from a table's columns.

        Parameters
        ----------
        name : str
            Unique in the graph; a frame's column of that name feeds it by default.
        size : int, optional
            Its number of data columns; by default the number of ``columns``
            (one without them). A categorical input's size is
            ``len(categories) + 1``.
        columns : list of str, optional
            The frame's columns it reads.
        categories : list or "adapt", optional
            Values (strings or integers) of the one column it reads, or
            ``"adapt"`` to learn them; code 0 stands for unknown and missing.
        normalize : bool
            ``(x - mean) / std`` per column, the statistics learnt by ``adapt``.
        missing : {"error", "mean", "indicator"}
            What a NaN becomes: a ShapeError naming the column, the adapted
            mean, or the mean plus one 0/1 column per column (the size doubles).

        Returns
        -------
        Input

        Raises
        ------
        GraphError
            For a name in use, a bad size or a setting that does not fit the others.
        """
        return self.add_node(Input(size, name=name, columns=columns, categories=categories, normalize=normalize,
                                   missing=missing))

    def add_hidden(self, name: str, size: int, activation: str | dict | Activation = "relu", dropout: float = 0.0,
                   trainable: bool = True, bias_regularizer=None) -> Hidden:
        """Add a Hidden node: ``activation(bias + Σ x_src @ W_src)`` over its sources.

        Parameters
        ----------
        name : str
        size : int
            Its units.
        activation : str, dict or Activation
        dropout : float
            The fraction of units dropped (inverted dropout) while training only.
        trainable : bool
            False freezes its bias and every synapse into it.
        bias_regularizer : str, dict or Regularizer, optional
            A penalty on its bias (:mod:`graphnet.regularizers`).

        Returns
        -------
        Hidden

        Raises
        ------
        GraphError
            For a name in use, or a bad size, activation, dropout or regularizer.
        """
        return self.add_node(Hidden(size, activation=activation, dropout=dropout, name=name,
                                    trainable=trainable, bias_regularizer=bias_regularizer))

    def add_output(self, name: str, size: int, activation: str | dict | Activation = "linear",
                   loss: str | dict | Loss = "mse", loss_weight: float = 1.0,
                   trainable: bool = True, bias_regularizer=None, *, classes=None) -> Output:
        """Add an Output node: a Hidden node with a loss, whose values ``predict`` returns.

        Parameters
        ----------
        name : str
        size : int
            Its units.
        activation : str, dict or Activation
        loss : str, dict or Loss
            Checked against the activation.
        loss_weight : float
            Its share of the total loss, ``Σ loss_weight × loss``.
        trainable : bool
            False freezes its bias and every synapse into it.
        bias_regularizer : str, dict or Regularizer, optional
        classes : list or "adapt", optional
            The labels of a softmax (one per unit) or one-unit sigmoid (two)
            output, or ``"adapt"``: targets may then be labels, and
            ``predict_labels`` returns them.

        Returns
        -------
        Output

        Raises
        ------
        GraphError
            For a name in use, a bad setting, or a cross-entropy loss without
            its activation (``binary_crossentropy`` needs ``sigmoid``,
            ``categorical_crossentropy`` needs ``softmax``).
        """
        return self.add_node(Output(size, activation=activation, loss=loss, loss_weight=loss_weight, name=name,
                                    trainable=trainable, bias_regularizer=bias_regularizer, classes=classes))

    # ----------------------------------------------------------- running
    #: The compiled execution plan, rebuilt after any structural edit.
    plan = property(compile_plan)
    predict = inference.predict
    __call__ = inference.predict
    evaluate = inference.evaluate
    predict_labels = preprocessing.predict_labels
    compile_predict = serving.compile_predict

    # ------------------------------------------------------ preprocessing
    adapt = preprocessing.adapt

    # ---------------------------------------------------------- training
    compile = _compile.compile
    fit = training.fit
    train_step = training.train_step
    gradients = training.gradients

    # ----------------------------------------------------------- weights
    parameters = weights.parameters
    get_weights = weights.get_weights
    set_weights = weights.set_weights

    # ----------------------------------------------------------- surgery
    freeze = surgery.freeze
    unfreeze = surgery.unfreeze
    insert = surgery.insert
    widen = surgery.widen
    transfer_weights = weights.transfer_weights

    @property
    def trainable(self) -> bool:
        """Keras's ``model.trainable``: ``False`` freezes every parameter
        (``freeze("*")``); ``True`` then gives each node and synapse back the
        flag it had (a bias an importer froze at zero, a frozen identity
        synapse stay frozen), or, with nothing frozen that way, unfreezes
        them all. It reads ``False`` when every weight and bias is frozen.

        Examples
        --------
        >>> g = Graph(seed=0)
        >>> _ = g.add_input("x", 2)
        >>> _ = g.add_output("y", 1)
        >>> _ = g.connect("x", "y")
        >>> g.trainable = False
        >>> g.trainable, g.num_trainable_params
        (False, 0)
        """
        holders = self.parameter_holders()
        return not holders or any(holder.trainable for holder in holders)

    @trainable.setter
    def trainable(self, value: bool) -> None:
        value = check_bool(value, "trainable")
        nodes = {name: n for name, n in self._nodes.items() if not isinstance(n, Input)}
        if not nodes:
            return
        before = self.__dict__.pop("_flags_before_freezing", None)
        if not value:  # the flags as they were before the first of several trainable = False
            self._flags_before_freezing = before or (
                {name: n.trainable for name, n in nodes.items()},
                {(s.src, s.dst): s.trainable for s in self.synapses})
            surgery.freeze(self, "*")
        elif before is None:
            surgery.unfreeze(self, "*")
        else:
            with self.lock.writing():
                for name, flag in before[0].items():  # a node's flag sets its incoming synapses' too: first
                    if name in nodes:
                        nodes[name].trainable = flag
                for (src, dst), flag in before[1].items():
                    if (synapse := self.synapse_or_none(src, dst)) is not None:
                        synapse.trainable = flag
                for synapse in self.synapses:  # one made while frozen trains as its node does
                    if (synapse.src, synapse.dst) not in before[1]:
                        synapse.trainable = nodes[synapse.dst].trainable

    def remove(self, name: NodeRef, bridge: bool = False) -> None:
        """Remove a node and every synapse touching it; other weights are kept.

        Parameters
        ----------
        name : str or Node
        bridge : bool
            Join the hidden node's sources to its consumers instead of leaving
            them cut off: each source ``s`` gets the synapse ``s -> c`` with
            weight ``W_s @ V_c`` (added to one that already exists), and each
            consumer's bias gains ``bias @ V_c``. Exact for a ``linear`` node;
            for any other activation the composition drops it (logged as a
            warning). See :func:`graphnet.surgery.remove_bridged`.

        Raises
        ------
        GraphError
            For an unknown name, or ``bridge=True`` on an input or output.
        """
        if check_bool(bridge, "remove: bridge"):
            return surgery.remove_bridged(self, name)
        return Network.remove(self, name)

    def __copy__(self):
        """``copy.copy`` gives what ``copy.deepcopy`` gives: a graph with its
        own nodes, weights and optimizer state (a shallow copy would share
        the nodes, and an optimizer trains one graph)."""
        return copy.deepcopy(self)

    # ----------------------------------------------------- seeing inside
    statistics = statistics_module.statistics
    attributions = attributions_module.attributions

    # --------------------------------------------------- specs and files
    to_dict = spec.to_dict
    from_dict = classmethod(spec.from_dict)
    from_spec = classmethod(specfile.from_spec)
    save = saving.save
    save_weights = weight_files.save_weights
    load_weights = weight_files.load_weights
    to_onnx = onnx_export.to_onnx

    # ---------------------------------------------------------- pictures
    summary = summary_module.summary
    to_dot = render_module.to_dot
    render = render_module.render
    _repr_mimebundle_ = render_module.repr_mimebundle
    _repr_svg_ = render_module.repr_svg
