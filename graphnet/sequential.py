"""Sequential: a Keras-style list of layers, built as a Graph (not a second engine).

``Sequential([Input(30), Dense(128, activation="relu"), Dense(1, activation="sigmoid")])``
is the chain ``input -> dense -> dense_1``: every Dense but the last is a
Hidden node, the last one is the Output. Every Graph method works on it, and
plain arrays go in and come out.
"""

from __future__ import annotations

from .errors import GraphError
from .graph import Graph
from .nodes import Hidden, Input, Node, Output

__all__ = ["Dense", "Sequential", "default_loss"]


class Dense:
    """A fully connected layer of ``units``: its own node, fed by the layer before.

    Parameters
    ----------
    units : int
    activation : str, dict or Activation
        ``"linear"`` by default, as in Keras.
    dropout : float
        Inverted dropout on this layer's output while training. Applies while
        the layer is hidden; the last layer of a model never drops.
    name : str, optional
        Defaults to ``dense``, ``dense_1``, ... in the order layers are added.
    init : str, optional
        Initialiser of the weight from the previous layer.
    trainable : bool
    """

    def __init__(
        self,
        units: int,
        activation="linear",
        dropout: float = 0.0,
        name: str | None = None,
        init: str | None = None,
        trainable: bool = True,
    ):
        # A Hidden node checks units, activation and dropout with the usual messages.
        checked = Hidden(units, activation=activation, dropout=dropout, name=name, trainable=trainable)
        self.units = checked.size
        self.activation = checked.activation
        self.dropout = checked.dropout
        self.name = checked.name
        self.init = init
        self.trainable = bool(trainable)

    def __repr__(self) -> str:
        extra = f", dropout={self.dropout}" if self.dropout else ""
        label = f", name={self.name!r}" if self.name else ""
        return f"Dense({self.units}, activation={self.activation.name!r}{extra}{label})"


def default_loss(activation_name: str) -> str:
    """The loss a model gets when none is named: the one its last activation implies."""
    return {"softmax": "categorical_crossentropy", "sigmoid": "binary_crossentropy"}.get(
        activation_name, "mse"
    )


class Sequential(Graph):
    """A chain of layers: ``Input`` first, then ``Dense`` layers; the last is the output.

    Parameters
    ----------
    layers : list
        ``[gn.Input(n), gn.Dense(...), ...]``.
    loss : str, dict or Loss, optional
        The output's loss. By default ``categorical_crossentropy`` after a
        softmax, ``binary_crossentropy`` after a sigmoid, ``mse`` otherwise.
    seed, dtype, name
        As for :class:`~graphnet.Graph`.

    Examples
    --------
    >>> import graphnet as gn
    >>> model = gn.Sequential([gn.Input(4), gn.Dense(8, activation="relu"),
    ...                        gn.Dense(1, activation="sigmoid")], seed=0)
    >>> model.topological_order
    ['input', 'dense', 'dense_1']
    """

    def __init__(
        self,
        layers=(),
        loss=None,
        seed: int | None = None,
        dtype="float32",
        name: str = "sequential",
        loss_weight: float = 1.0,
    ):
        super().__init__(name=name, seed=seed, dtype=dtype)
        self.loss = loss
        self.loss_weight = loss_weight
        self._layers: list[Dense | Input] = []
        self._dense_count = 0
        self._tail: str | None = None  # the node the next Dense connects from
        layers = list(layers)
        for layer in layers[:-1]:
            self._append(layer, last=False)
        if layers:
            self._append(layers[-1], last=True)

    @property
    def layers(self) -> list[Node]:
        """The nodes in chain order: the Input, then one per Dense."""
        return [self.nodes[name] for name in self.topological_order]

    @property
    def input(self) -> str:
        return self.inputs[0]

    @property
    def output(self) -> str:
        return self.outputs[0]

    def add(self, layer: Dense | Input) -> Node:
        """Append a layer. The previous last Dense turns from Output into Hidden,
        keeping its weights and bias."""
        return self._append(layer, last=True)

    def _append(self, layer, last: bool) -> Node:
        if isinstance(layer, Input):
            if self._layers:
                raise GraphError(f"{self.name}: Input must be the first layer, got it after {self._layers[-1]!r}")
            # A fresh node: the user's Input may start several models.
            node = self.add_node(Input(layer.size, name=layer.name or self._unique("input")))
            self._layers.append(layer)
            self._tail = node.name
            return node
        if not isinstance(layer, Dense):
            raise GraphError(
                f"{self.name}: layers must be gn.Input(size) then gn.Dense(units, ...), "
                f"got {type(layer).__name__}: {layer!r}"
            )
        if not self._layers:
            raise GraphError(f"{self.name}: start the model with gn.Input(size) before {layer!r}")
        previous = self._tail
        if self.outputs:
            self._demote(self.outputs[0])
        name = layer.name or self._next_dense_name()
        if last:
            loss = self.loss if self.loss is not None else default_loss(layer.activation.name)
            node = Output(
                layer.units,
                activation=layer.activation,
                loss=loss,
                loss_weight=self.loss_weight,
                name=name,
                trainable=layer.trainable,
            )
        else:
            node = Hidden(
                layer.units,
                activation=layer.activation,
                dropout=layer.dropout,
                name=name,
                trainable=layer.trainable,
            )
        self.add_node(node)
        self.connect(previous, name, init=layer.init, trainable=layer.trainable)
        self._layers.append(layer)
        self._tail = name
        return node

    def _demote(self, name: str) -> None:
        """The output ``name`` becomes a Hidden node with its layer's dropout."""
        layer = self._layers[-1]
        old = self.nodes[name]
        self._replace_node(
            name,
            Hidden(old.size, activation=old.activation, dropout=getattr(layer, "dropout", 0.0),
                   name=name, trainable=old.trainable),
        )

    def _next_dense_name(self) -> str:
        while True:
            name = "dense" if self._dense_count == 0 else f"dense_{self._dense_count}"
            self._dense_count += 1
            if name not in self:
                return name

    def _unique(self, base: str) -> str:
        if base not in self:
            return base
        i = 1
        while f"{base}_{i}" in self:
            i += 1
        return f"{base}_{i}"

