"""A dense node's work in a :class:`~graphnet.plan.Plan`: the :class:`Step`
record, and the functions of its activation and loss bound into it.

A plan makes one Step per dense node, column by column
(:data:`make_step`), and the hot loops read the same functions from plain
tuples. Functions are bound to the plan's array module once, at compile
time (:func:`bound`), so a CPU call pays no keyword.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from .activations import Activation, is_builtin
from .losses import Loss

__all__ = ["Step", "make_step", "activation_functions", "bound"]


class Step(NamedTuple):
    """A dense node's work in forward and backward. ``forward``/``backward``
    are the activation's, and ``value``/``gradient``/``delta`` the loss's,
    bound to the plan's array module (see :func:`bound`). A named tuple:
    a graph of 10,000 nodes has 10,000 of them, made in one pass."""

    slot: int
    name: str
    size: int
    activation: Activation
    forward: object
    backward: object
    value: object
    gradient: object
    delta: object
    edges: tuple[tuple, ...]  # (src, weight, weight_grad, from_input, writes_first, gather), see graphnet.plan
    bias: np.ndarray
    bias_grad: np.ndarray
    dropout: float
    loss: Loss | None  # set for Output nodes
    loss_weight: float
    feeds_others: bool  # ``upstream`` (dL/da) arrives from consumers
    gathers: bool = False  # an edge gathers rows: graphnet._gather runs the edges


#: A Step made from a row of columns in C (``Step._make`` is a Python call per row).
make_step = functools.partial(tuple.__new__, Step)


def activation_functions(activations, backend, dtype, xp) -> tuple[list, list, list]:
    """Per activation: its ``forward``, its derivative (the backend's one-pass
    kernel, or the activation's own ``backward``) and the backend's fused
    bias-and-activation pass or None, bound to ``xp`` (see :func:`bound`).

    One of graphnet's own activations that holds no parameters computes the
    same function whichever instance is asked, so such activations share
    one set per type (a graph of 10,000 tanh nodes makes one, not 30,000
    bound methods and backend queries); any other is asked on its own.
    """
    made: dict = {}
    forward, derivative, fused = [], [], []
    for activation in activations:
        key = type(activation) if is_builtin(activation) and not vars(activation) else id(activation)
        functions = made.get(key)
        if functions is None:
            functions = made[key] = (
                bound(activation.forward, xp),
                backend.fused_backward(activation, dtype) or bound(activation.backward, xp),
                backend.fused_bias_activation(activation, dtype),
            )
        forward.append(functions[0])
        derivative.append(functions[1])
        fused.append(functions[2])
    return forward, derivative, fused


def bound(method, xp):
    """``method`` with ``xp=xp`` bound, except for numpy, whose calls need no
    keyword (one fewer layer of Python on every CPU call)."""
    return method if xp is np else functools.partial(method, xp=xp)
