"""Weight penalties: L1, L2 and both (Keras's names and formulas).

``connect(..., regularizer=L2(1e-4))`` penalises a synapse's weight and
``add_hidden/add_output(..., bias_regularizer=...)`` a node's bias. Each
penalty is added to the training loss (and to ``evaluate``'s ``loss``, as
Keras reports it), so ``fit`` minimises it and the numbers show it:

* ``L1(l1)``: ``l1 * Σ|w|``, gradient ``l1 * sign(w)``;
* ``L2(l2)``: ``l2 * Σ w²``, gradient ``2 * l2 * w``;
* ``L1L2(l1, l2)``: the sum of both.

Like activations, each family member is one small class holding its value
and its gradient side by side, looked up by name in :data:`REGULARIZERS`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from . import _protocols
from ._registry import lookup
from ._settings import Checked
from ._validation import check_number
from .errors import GraphError

__all__ = ["Regularizer", "L1", "L2", "L1L2", "REGULARIZERS", "get"]


class Regularizer(Checked):
    """Base class: ``penalty(w)`` is the value, ``add_gradient(w, grad)`` adds
    its gradient into ``grad`` (in place)."""

    name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__module__ != __name__:  # a user's get_config may leave out the name (graphnet._protocols)
            _protocols.adapt_config(cls)

    def penalty(self, w: np.ndarray, xp=np) -> float:
        """The value: a float, or on a device a 0-d array.

        Parameters
        ----------
        w : array
            The weights.
        xp : module, default numpy
            ``w``'s array module (numpy, or cupy on a GPU).
        """
        raise NotImplementedError

    def add_gradient(self, w: np.ndarray, grad: np.ndarray, xp=np) -> None:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """JSON-safe description; ``get(config)`` rebuilds an equal regularizer."""
        return {"name": self.name}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Regularizer) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash(self.name)  # equal parts have equal configs, names included; a config may hold lists

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({params})"


class L1(Regularizer):
    """``l1 * Σ|w|``.

    Parameters
    ----------
    l1 : float, default 0.01
        The strength, a finite number >= 0.
    """

    name = "l1"

    def __init__(self, l1: float = 0.01):
        self.l1 = _coefficient("l1", l1)

    def penalty(self, w, xp=np):
        return self.l1 * _scalar(xp, xp.abs(w).sum())

    def add_gradient(self, w, grad, xp=np):
        grad += xp.sign(w) * w.dtype.type(self.l1)

    def get_config(self):
        return {"name": self.name, "l1": self.l1}


class L2(Regularizer):
    """``l2 * Σ w²`` (no one-half, as in Keras).

    Parameters
    ----------
    l2 : float, default 0.01
        The strength, a finite number >= 0.
    """

    name = "l2"

    def __init__(self, l2: float = 0.01):
        self.l2 = _coefficient("l2", l2)

    def penalty(self, w, xp=np):
        flat = w.ravel()
        return self.l2 * _scalar(xp, xp.dot(flat, flat))

    def add_gradient(self, w, grad, xp=np):
        grad += w * w.dtype.type(2.0 * self.l2)

    def get_config(self):
        return {"name": self.name, "l2": self.l2}


class L1L2(Regularizer):
    """``l1 * Σ|w| + l2 * Σ w²``.

    Parameters
    ----------
    l1 : float, default 0.0
        The strength of the L1 term, a finite number >= 0.
    l2 : float, default 0.0
        The strength of the L2 term, a finite number >= 0.
    """

    name = "l1_l2"

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        self._l1, self._l2 = L1(l1), L2(l2)
        self.l1, self.l2 = self._l1.l1, self._l2.l2

    def penalty(self, w, xp=np):
        return self._l1.penalty(w, xp) + self._l2.penalty(w, xp)

    def add_gradient(self, w, grad, xp=np):
        self._l1.add_gradient(w, grad, xp)
        self._l2.add_gradient(w, grad, xp)

    def get_config(self):
        return {"name": self.name, "l1": self.l1, "l2": self.l2}


def _scalar(xp, value):
    """A float on the host; on a device the 0-d array (in float64, as the host's)."""
    return float(value) if xp is np else value.astype(np.float64)


def _coefficient(what: str, value) -> float:
    return check_number(value, f"regularizer: {what}", 0.0, expected="a finite number >= 0")


#: Every regularizer by the name users and spec files give.
REGULARIZERS: dict[str, type[Regularizer]] = {cls.name: cls for cls in (L1, L2, L1L2)}


def get(identifier) -> Regularizer | None:
    """A regularizer from ``None``, a name (default strength), a config dict or an instance.

    Parameters
    ----------
    identifier : str, dict, Regularizer or None
        ``"l1"``, ``"l2"`` or ``"l1_l2"``, a config dict (``{"name": "l2", "l2": 1e-4}``), an
        instance (returned as is), or None (no penalty).

    Raises
    ------
    GraphError
        For an unknown name (the message lists the known ones), bad
        parameters, or a subclass whose ``get_config()`` no file could hold.
    """
    if identifier is None:
        return None
    regularizer = lookup(identifier, REGULARIZERS, "regularizer", Regularizer, "a Regularizer (or None)")
    if type(regularizer) not in _BUILTIN:
        missing = [m for m in ("penalty", "add_gradient") if getattr(type(regularizer), m) is getattr(Regularizer, m)]
        if missing:
            raise GraphError(f"custom regularizer {type(regularizer).__name__}: it must define {missing} "
                             "(penalty(w) -> float, add_gradient(w, grad) adding its gradient into grad)")
        _protocols.config(regularizer, "regularizer")
    return regularizer


_BUILTIN = frozenset(REGULARIZERS.values())
