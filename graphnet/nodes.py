"""The three kinds of node: Input, Hidden and Output.

An :class:`Input` passes its data through. :class:`Hidden` and :class:`Output`
are *dense nodes*: ``z = bias + Σ_{synapse s -> node} x_src @ W_s`` then
``a = activation(z)``. A node owns its bias; the weights belong to the
synapses that end in it.

Nodes are plain descriptions. The graph they are added to keeps the structure
(:class:`graphnet.network.Network`), and once a graph runs, ``bias`` is a view
into the graph's parameter buffer. A node in a graph tells it when a setting
changes (:meth:`Network.changed <graphnet.network.Network.changed>`) and edits
under its write lock; that is all a node knows of its graph.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _protocols, _tabular, activations, losses, regularizers
from ._input import Input
from ._member import checked_values
from ._node import Node, check_name, where
from ._parameters import BIAS, ParameterRecord, bias_key, new_token
from ._validation import check_allocation, check_bool, check_dropout, check_number, read_only_view
from .errors import GraphError

__all__ = ["Node", "Input", "DenseNode", "Hidden", "Output", "KINDS", "check_name"]


class DenseNode(Node):
    """A node that computes ``activation(bias + Σ x_src @ W)``: Hidden and Output.

    The bias starts at zero. In a graph, a node whose weights are drawn by an
    initialiser that draws biases too (the defaults ``fan_in_uniform`` and,
    for tanh, ``normalized_uniform`` do; a linear output's, ``small_uniform``,
    does not) gets its bias drawn with them, unless its bias was set first;
    see :meth:`Graph.connect <graphnet.graph.Graph.connect>`.
    """

    _bias: np.ndarray
    #: Whether the bias has its first values (set, loaded, drawn, or read),
    #: after which the graph never draws it.
    _bias_fixed: bool
    #: Which parameter the bias is (:mod:`graphnet._parameters`): a new node's
    #: bias is a new parameter, whatever its key.
    parameter_token: int

    def __init__(
        self,
        size: int,
        activation: str | dict | activations.Activation | None = "linear",
        name: str | None = None,
        trainable: bool = True,
        bias_regularizer=None,
    ):
        super().__init__(size, name)
        self._bias_regularizer = regularizers.get(bias_regularizer)
        self._activation = activations.get(activation)
        self._trainable = check_bool(trainable, f"{where(type(self), name)}: trainable")
        check_allocation(self.size, 8, f"{where(type(self), name)}: bias of size {self.size:,}")
        self._bias = np.zeros(self.size, dtype=np.float32)
        self._bias_fixed = False
        self.parameter_token = new_token()

    @property
    def activation(self) -> activations.Activation:
        return self._activation

    @activation.setter
    def activation(self, value) -> None:
        activation = activations.get(value)
        self.check_pairing(activation, getattr(self, "_loss", None))
        with self._editing():
            self._activation = activation
            self._changed()

    @property
    def trainable(self) -> bool:
        """Whether the optimizer updates this node's parameters.

        Setting it sets the node's bias **and** every synapse into the node
        (Keras's meaning for a layer; the same as ``g.freeze(name)`` and
        ``g.unfreeze(name)``), and synapses connected later follow it. A
        synapse's own ``trainable`` changes that synapse alone; reading this
        flag says whether the bias trains. Gradients still flow through a
        frozen node.
        """
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        value = check_bool(value, f"{where(type(self), self.name)}: trainable")
        with self._editing():
            self._trainable = value
            graph = self._graph
            for synapse in graph.incoming(self.name) if graph is not None else ():
                synapse.trainable = value
            self._changed()

    def check_pairing(self, activation, loss) -> None:
        """Outputs refuse a cross-entropy loss without its activation."""

    @property
    def bias_regularizer(self):
        """The penalty on this node's bias (``graphnet.regularizers``) or None."""
        return self._bias_regularizer

    @bias_regularizer.setter
    def bias_regularizer(self, value) -> None:
        value = regularizers.get(value)
        with self._editing():
            self._bias_regularizer = value
            self._changed()

    @property
    def bias(self) -> np.ndarray:
        """Shape ``(size,)``. Assigning copies the values in (shape checked).

        Reading it in a graph first draws what the node still waits for (its
        weights and, with the default initialiser, this bias); what it shows
        is what the node then runs with. Fed by a categorical input still to
        adapt, it shows provisional values (read-only) until ``adapt``.

        Once the graph has run, the array is a live view of its parameter
        buffer until the graph's next edit or setting change: read it again
        after one (writes to the old array no longer reach the graph).
        """
        if not self._bias_fixed:
            graph = self._graph
            if graph is None:
                self._bias_fixed = True  # seen (and perhaps changed in place) by the user
            else:
                provisional = graph.materialize(self.name, partial=True)
                if self.parameter_key in provisional:
                    return read_only_view(provisional[self.parameter_key])
        return self._bias

    @bias.setter
    def bias(self, value) -> None:
        value = checked_values(value, self._bias, f"node {self.name!r}: bias")
        with self._editing():
            self._bias[...] = self._placed(value)
            self._bias_fixed = True

    @property
    def num_params(self) -> int:
        return self.size

    # -- the engine's access to the bias (graphnet.network, _lazy_init, _parameters)
    @property
    def parameter_array(self) -> np.ndarray:
        """The bias array as stored: what :attr:`bias` returns, without drawing."""
        return self._bias

    def bind_parameter(self, array: np.ndarray) -> None:
        """Hold ``array`` as the bias from now on (a view of the plan's flat
        buffer, or a copy in another dtype or on another device)."""
        self._bias = array

    @property
    def parameter_key(self) -> str:
        """The bias's key in ``get_weights()``: ``"NODE.bias"``."""
        return bias_key(self.name)

    def parameter_record(self) -> ParameterRecord:
        """What the bias is, for ``Graph.parameters()`` and the plan's buffer."""
        return ParameterRecord(bias_key(self.name), BIAS, self.name, None, (self.size,), self._trainable)

    @property
    def bias_fixed(self) -> bool:
        """Whether the bias has its first values; a graph never draws it after that."""
        return self._bias_fixed

    def fix_bias(self) -> None:
        """Mark the bias as having its first values (set, loaded, drawn or placed)."""
        self._bias_fixed = True

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        where = f"node {self.name!r}: "
        config["activation"] = _protocols.config(self.activation, "activation", where)
        config["trainable"] = self.trainable
        if self._bias_regularizer is not None:
            config["bias_regularizer"] = _protocols.config(self._bias_regularizer, "regularizer", where)
        return config

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, activation={self.activation.name!r}{self._named})"


class Hidden(DenseNode):
    """An inner node; ``dropout`` is the inverted-dropout rate used while training.

    Parameters
    ----------
    size : int
        Its units.
    activation : str, dict or Activation, default "relu"
        A name (``"tanh"``), a config dict, or an Activation; None is ``"linear"``.
    dropout : float, default 0.0
        The fraction of units dropped (inverted dropout) while training only, in [0, 1).
    name : str, optional
        As :class:`Node`'s.
    trainable : bool, default True
        False freezes its bias and every synapse into it.
    bias_regularizer : str, dict or Regularizer, optional
        A penalty on its bias (:mod:`graphnet.regularizers`).
    """

    kind = "hidden"

    def __init__(
        self,
        size: int,
        activation: str | dict | activations.Activation | None = "relu",
        dropout: float = 0.0,
        name: str | None = None,
        trainable: bool = True,
        bias_regularizer=None,
    ):
        super().__init__(size, activation, name, trainable, bias_regularizer)
        self._dropout = self._checked_dropout(dropout)

    @property
    def dropout(self) -> float:
        return self._dropout

    @dropout.setter
    def dropout(self, value: float) -> None:
        rate = self._checked_dropout(value)
        with self._editing():
            self._dropout = rate
            self._changed()

    def _checked_dropout(self, value) -> float:
        return check_dropout(value, f"{where(type(self), self.name)}: dropout")

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "dropout": self.dropout}


class Output(DenseNode):
    """A node whose activation is a prediction with a loss. It may also feed
    other nodes; its gradient then adds what flows back from them.
    ``check_pairing=False`` leaves the check that the loss fits the
    activation to the graph's first run (``Sequential`` does), and
    ``classes`` are the labels of its classes (``predict_labels``).

    Parameters
    ----------
    size : int
        Its units.
    activation : str, dict or Activation, default "linear"
        As :class:`Hidden`'s.
    loss : str, dict or Loss, default "mse"
        Checked against the activation (unless ``check_pairing`` is False).
    loss_weight : float, default 1.0
        Its share of the total loss, ``Σ loss_weight × loss``, a finite number >= 0.
    name : str, optional
        As :class:`Node`'s.
    trainable : bool, default True
        False freezes its bias and every synapse into it.
    bias_regularizer : str, dict or Regularizer, optional
        A penalty on its bias (:mod:`graphnet.regularizers`).
    check_pairing : bool, default True
        Whether the loss is checked against the activation now.
    classes : list or "adapt", optional
        The labels of a softmax (one per unit) or one-unit sigmoid (two)
        output, or ``"adapt"``: targets may then be labels.
    """

    kind = "output"

    def __init__(
        self,
        size: int,
        activation: str | dict | activations.Activation | None = "linear",
        loss: str | dict | losses.Loss = "mse",
        loss_weight: float = 1.0,
        name: str | None = None,
        trainable: bool = True,
        bias_regularizer=None,
        *,
        check_pairing: bool = True,
        classes=None,
    ):
        super().__init__(size, activation, name, trainable, bias_regularizer)
        self._loss = losses.get(loss)
        # a Sequential defers the pairing check to compile() and the first run
        if check_bool(check_pairing, f"{where(type(self), name)}: check_pairing"):
            self.check_pairing(self.activation, self._loss)
        self._loss_weight = self._checked_weight(loss_weight)
        self._classes = _tabular.check_categories(classes, self._called, "classes")
        self.check_classes(self._classes)

    @property
    def _called(self) -> str:  # how messages name it
        return "Output" if self.name is None else f"output {self.name!r}"

    @property
    def classes(self) -> tuple | str | None:
        """The labels of a softmax (or one-unit sigmoid) output, ``'adapt'``
        until adapted, or None."""
        return self._classes

    def check_classes(self, classes) -> None:
        """Refuse labels that do not fit the output: a softmax output has one
        per unit, a one-unit sigmoid output two.

        Parameters
        ----------
        classes : tuple, "adapt" or None
            The labels, or ``"adapt"`` (which needs such an output too); None fits any output.
        """
        if classes is None:
            return
        act = self.activation.name
        if not (act == "softmax" or act == "sigmoid" and self.size == 1):
            raise GraphError(f"{self._called}: classes need a softmax output or a one-unit sigmoid "
                             f"output, not {act!r} over {self.size} units")
        count = 2 if act == "sigmoid" else self.size
        if classes != _tabular.ADAPT and len(classes) != count:
            raise GraphError(f"{self._called}: {count} classes expected for its {self.size} {act} "
                             f"unit(s), got {len(classes)}: {classes!r}"[:300])

    def set_classes(self, classes) -> None:
        """Hold learnt labels (checked against the output's units).

        Parameters
        ----------
        classes : list
            One label per unit of a softmax output, two for a one-unit sigmoid output.
        """
        classes = _tabular.check_categories(classes, self._called, "classes")
        self.check_classes(classes)
        with self._editing():
            self._classes = classes

    @property
    def loss(self) -> losses.Loss:
        return self._loss

    @loss.setter
    def loss(self, value) -> None:
        loss = losses.get(value)
        self.check_pairing(self.activation, loss)
        with self._editing():
            self._loss = loss
            self._changed()

    @property
    def loss_weight(self) -> float:
        return self._loss_weight

    @loss_weight.setter
    def loss_weight(self, value: float) -> None:
        weight = self._checked_weight(value)
        with self._editing():
            self._loss_weight = weight
            self._changed()

    def check_pairing(self, activation, loss) -> None:
        """Refuse a loss that does not fit ``activation`` (a cross-entropy
        without its activation, a softmax over one unit).

        Parameters
        ----------
        activation : Activation
        loss : Loss

        Raises
        ------
        GraphError
            Naming the output, the loss and the activation.
        """
        if loss is None:
            return
        required = loss.requires_activation
        if required is not None and activation.name != required:
            raise GraphError(
                f"{self._called}: loss {loss.name!r} needs activation {required!r}, "
                f"got {activation.name!r}{loss.pairing_note}"
            )
        if activation.name == "softmax" and self.size == 1:
            raise GraphError(
                f"{self._called}: softmax over 1 unit is always 1.0; use "
                f"activation='sigmoid' with loss='binary_crossentropy' for two classes"
            )

    def _checked_weight(self, value) -> float:
        return check_number(value, f"{self._called}: loss_weight", 0.0,
                            expected="a finite number >= 0")

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "loss": _protocols.config(self.loss, "loss", f"node {self.name!r}: "),
            "loss_weight": self.loss_weight,
            **({} if self._classes is None else {"classes": self._classes if isinstance(self._classes, str)
                                                 else list(self._classes)}),
        }

    def __repr__(self) -> str:
        return f"Output(size={self.size}, activation={self.activation.name!r}, loss={self.loss.name!r}{self._named})"


#: Node classes by the ``kind`` written in specs and model files.
KINDS: dict[str, type[Node]] = {cls.kind: cls for cls in (Input, Hidden, Output)}
