"""Sequential: a Keras-style list of layers, built as a Graph (not a second engine).

``Sequential([Input(30), Dense(128, activation="relu"), Dense(1, activation="sigmoid")])``
is the chain ``input -> dense -> dense_1``: every Dense but the last is a
Hidden node, the last one is the Output. Every Graph method works on it, and
plain arrays go in and come out.
"""

from __future__ import annotations

from ._topology import is_chain
from .errors import GraphError
from .graph import Graph
from .layers import Dense, default_loss
from .nodes import Hidden, Input, Node, Output

__all__ = ["Sequential"]


class Sequential(Graph, kind="sequential"):
    """A chain of layers: ``Input`` first, then ``Dense`` layers; the last is the output.

    Parameters
    ----------
    layers : list
        ``[gn.Input(n), gn.Dense(...), ...]``.
    loss : str, dict or Loss, optional
        The output's loss. By default ``categorical_crossentropy`` after a
        softmax, ``binary_crossentropy`` after a sigmoid, ``mse`` otherwise.
    seed, dtype, name, device
        As for :class:`~graphnet.Graph` (``device="cuda"``: an NVIDIA GPU).
    loss_weight : float
        The output's loss weight (it matters only once the model is edited
        into a graph with several outputs).

    Raises
    ------
    GraphError
        For layers that are not ``Input`` then ``Dense``, or repeated names. A
        ``loss`` that does not fit the last activation is refused when the
        model is compiled or first runs.

    Examples
    --------
    >>> import graphnet as gn
    >>> model = gn.Sequential([gn.Input(4), gn.Dense(8, activation="relu"),
    ...                        gn.Dense(1, activation="sigmoid")], seed=0)
    >>> model.topological_order
    ['input', 'dense', 'dense_1']
    """

    #: The loss later ``add`` calls give a new output (None: from its activation).
    loss: object
    #: The loss weight of the output (see Parameters).
    loss_weight: float
    _dense_count: int  # how many default names (dense, dense_1, ...) were handed out
    _dropout: dict[str, float]  # the dropout each Dense asked for: it applies once the layer is hidden
    _end: tuple[str, int] | None  # the chain's end and the version the last append left

    def __init__(
        self,
        layers=(),
        loss=None,
        seed: int | None = None,
        dtype="float32",
        name: str = "sequential",
        loss_weight: float = 1.0,
        device="cpu",
    ):
        super().__init__(name=name, seed=seed, dtype=dtype, device=device)
        self.loss = loss
        self.loss_weight = loss_weight
        self._dense_count = 0
        self._dropout = {}
        self._end = None
        if isinstance(layers, (Dense, Input)):
            layers = [layers]
        try:
            layers = list(layers)
        except TypeError:
            raise GraphError(
                f"{name}: layers must be a list like [gn.Input(n), gn.Dense(units), ...], "
                f"got {type(layers).__name__}"
            ) from None
        # Every layer but the last is hidden from the start: the model's loss
        # only has to fit the last activation.
        for i, layer in enumerate(layers):
            self._append(layer, last=i == len(layers) - 1)

    def keep_compiled_loss(self, loss) -> None:
        """``compile(loss=...)`` with one loss for the model: later ``add``
        calls give the new output this loss too.

        Parameters
        ----------
        loss : str, dict, Loss or None
            What ``compile`` was given: kept unless it is None or a dict output
            name -> loss (a config dict, with a ``"name"``, is kept).
        """
        if loss is not None and not (isinstance(loss, dict) and "name" not in loss):
            self.loss = loss  # later add() calls give the new output this loss

    @property
    def layers(self) -> list[Node]:
        """The nodes in chain order: the Input, then one per Dense."""
        return [self.nodes[name] for name in self.topological_order]

    @property
    def is_chain(self) -> bool:
        """Whether the model is still one chain ``input -> ... -> output`` (the
        Graph methods can branch it; a branched model saves as a plain graph)."""
        order = self.topological_order
        kinds = [self.nodes[name].kind for name in order]
        return is_chain(order, kinds, [(s.src, s.dst) for s in self.synapses])

    def validate(self) -> None:
        """As :meth:`Graph.validate`, a model without an Input or a Dense
        layer told how to add one to a Sequential."""
        _ = self.input, self.output
        super().validate()

    @property
    def input(self) -> str:
        """The name of the input node."""
        if not self.inputs:
            raise GraphError(f"{self.name}: no Input yet; start with model.add(gn.Input(size))")
        return self.inputs[0]

    @property
    def output(self) -> str:
        """The name of the output node (the last Dense)."""
        if not self.outputs:
            raise GraphError(f"{self.name}: no Dense layer yet; add one with model.add(gn.Dense(units))")
        return self.outputs[0]

    def add(self, layer: Dense | Input) -> Node:
        """Append a layer and return its node.

        The previous last Dense turns from Output into Hidden, keeping its
        weights and bias (and gaining the dropout its ``Dense`` asked for).

        Parameters
        ----------
        layer : Input or Dense
            ``gn.Input(n)`` first, then ``gn.Dense(...)`` layers.

        Returns
        -------
        Node
            The new node: an Input, or the Output the Dense became.

        Raises
        ------
        GraphError
            For anything but ``Input`` (first) or ``Dense`` (after it), a name
            already in the model, or a model whose chain was edited into
            several ends; the model is left exactly as it was. (Whether the
            loss fits the new last activation is checked when the model is
            compiled or first runs: a Keras user names the loss first.)
        """
        return self._append(layer, last=True)

    def _append(self, layer, last: bool) -> Node:
        if isinstance(layer, Input):
            if len(self):
                raise GraphError(
                    f"{self.name}: Input must be the first layer, but the model already has "
                    f"{self.topological_order}"
                )
            # A fresh node: the user's Input may start several models.
            settings = {k: v for k, v in layer.get_config().items() if k not in ("kind", "name")}
            node = self.add_node(Input(name=layer.name or "input", **settings))
            self._end = (node.name, self.version)
            return node
        if not isinstance(layer, Dense):
            raise GraphError(
                f"{self.name}: layers must be gn.Input(size) then gn.Dense(units, ...), "
                f"got {type(layer).__name__}: {layer!r}"
            )
        if self._known_end() is None and not self.inputs:
            raise GraphError(f"{self.name}: start the model with gn.Input(size) before {layer!r}")
        previous = self._tail()
        name, count = (layer.name, self._dense_count) if layer.name else self._next_dense_name()
        if name in self:
            raise GraphError(
                f"{self.name} already has a layer named {name!r}; layer names must be unique"
            )
        # Build everything that can fail before the model changes.
        if last:
            loss = self.loss if self.loss is not None else default_loss(layer.activation.name)
            try:
                # The loss/activation pairing waits for compile() or the first
                # run: a Keras user names the loss before the last layer exists.
                node = Output(
                    layer.units,
                    activation=layer.activation,
                    loss=loss,
                    loss_weight=self.loss_weight,
                    name=name,
                    trainable=layer.trainable,
                    bias_regularizer=layer.bias_regularizer,
                    check_pairing=False,
                )
            except GraphError as exc:
                raise GraphError(
                    f"{self.name}: cannot add {layer!r} as the last layer: {exc}"
                ) from None
        else:
            node = Hidden(layer.units, activation=layer.activation, dropout=layer.dropout,
                          name=name, trainable=layer.trainable, bias_regularizer=layer.bias_regularizer)
        if self._known_end() is not None:  # only appends since: the end is the one output, if any
            demoted = previous if isinstance(self.nodes[previous], Output) else None
        else:
            demoted = self.outputs[0] if self.outputs else None
        output = self.nodes[demoted] if demoted else None
        try:
            if demoted:
                self._demote(demoted)
            self.add_node(node)
            self.connect(previous, name, init=layer.init, trainable=layer.trainable,
                         regularizer=layer.kernel_regularizer)
        except GraphError:
            # e.g. a bad init array: undo, so the model is exactly as it was.
            if self.nodes.get(name) is node:
                self.remove(name)
            if demoted and self.nodes[demoted] is not output:
                self.replace(demoted, output)
            raise
        self._dropout[name] = layer.dropout
        self._dense_count = count
        self._end = (name, self.version)
        return node

    def _known_end(self) -> str | None:
        """The chain's end as the last append left it, if nothing changed since
        (then appending costs O(1), not a topological sort: a model of ``n``
        layers builds in O(n))."""
        end = self._end
        return end[0] if end is not None and end[1] == self.version else None

    def _tail(self) -> str:
        """The node the next Dense connects from: the one end of the chain."""
        known = self._known_end()
        if known is not None:
            return known
        order = self.topological_order
        ends = [n for n in order if not self.consumers(n)]
        if len(ends) != 1:
            raise GraphError(
                f"{self.name}: add() appends to a chain, but this model now ends in {ends}; "
                "use connect() to extend a branched graph"
            )
        return ends[0]

    def _demote(self, name: str) -> None:
        """The output ``name`` becomes a Hidden node with its layer's dropout."""
        old = self.nodes[name]
        self.replace(
            name,
            Hidden(old.size, activation=old.activation, dropout=self._dropout.get(name, 0.0),
                   name=name, trainable=old.trainable, bias_regularizer=old.bias_regularizer),
        )

    def _next_dense_name(self) -> tuple[str, int]:
        """Keras-style ``dense``, ``dense_1``, ...: the next free name and the
        counter to keep once the layer is in (a refused layer uses up no name)."""
        count = self._dense_count
        while True:
            name = "dense" if count == 0 else f"dense_{count}"
            count += 1
            if name not in self:
                return name, count
