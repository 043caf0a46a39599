"""Layers: what a :class:`~graphnet.Sequential` model is a list of.

``gn.Input(n)`` (the node class itself, :class:`graphnet.nodes.Input`) starts
a model; each :class:`Dense` becomes one node fed by the layer before. Specs
and importers build Sequential models from these too.
"""

from __future__ import annotations

from . import initializers, regularizers
from ._validation import check_bool, check_dropout, check_int
from .activations import Activation
from .nodes import Hidden

__all__ = ["Dense", "default_loss"]


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
    kernel_regularizer, bias_regularizer : str, dict or Regularizer, optional
        Penalties on the weight from the previous layer and on the bias
        (Keras's names; see :mod:`graphnet.regularizers`).
    """

    def __init__(
        self,
        units: int,
        activation: str | dict | Activation = "linear",
        dropout: float = 0.0,
        name: str | None = None,
        init: str | None = None,
        trainable: bool = True,
        kernel_regularizer=None,
        bias_regularizer=None,
    ):
        where = "Dense" if name is None else f"Dense {name!r}"
        units = check_int(units, f"{where}: units")
        trainable = check_bool(trainable, f"{where}: trainable")
        dropout = check_dropout(dropout, f"{where}: dropout")
        # A Hidden node checks the name and activation with the usual messages.
        checked = Hidden(units, activation=activation, dropout=dropout, name=name, trainable=trainable,
                         bias_regularizer=bias_regularizer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = checked.bias_regularizer
        self.units = checked.size
        self.activation = checked.activation
        self.dropout = checked.dropout
        self.name = checked.name
        if isinstance(init, str):  # an unknown name refused now, not when the layer is added
            initializers.get(init, f"{where}: init")
        self.init = init
        self.trainable = trainable

    def __repr__(self) -> str:
        extra = f", dropout={self.dropout}" if self.dropout else ""
        label = f", name={self.name!r}" if self.name else ""
        return f"Dense({self.units}, activation={self.activation.name!r}{extra}{label})"


def default_loss(activation_name: str) -> str:
    """The loss a model gets when none is named: the one its last activation implies."""
    return {"softmax": "categorical_crossentropy", "sigmoid": "binary_crossentropy"}.get(
        activation_name, "mse"
    )
