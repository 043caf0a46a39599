"""Losses, each a mean over the batch, and the fused output deltas.

A loss either supplies ``gradient`` (``dL/da``, which the plan then pushes
through the output's activation) or, for the two classic pairings, is *fused*
with its activation and supplies ``delta`` (``dL/dz``) directly:

* ``sigmoid`` + ``binary_crossentropy`` and ``softmax`` + ``categorical_crossentropy``
  give ``dL/dz = (p - y) / count``. That identity holds only for these pairs, so
  any other pairing of these two losses is refused when the output is added.

Fused losses compute their value from the pre-activation ``z`` (log-sum-exp and
``log1p(exp(-|z|))``), so a saturated probability never produces ``log(0)``.

Custom losses
-------------
Subclass :class:`Loss`, set ``name``, and write ``value(y, a)``, the loss of
each row (shape ``(n,)``), and ``gradient(y, a)``, each row's derivative
``d value_i / d a_i`` (shape ``(n, k)``). The engine takes the mean over
the rows, applies sample weights itself (``Σ w_i l_i / Σ w``) and scales the
gradient to match, so a custom loss never sees them; both may take ``xp=``
to run on a GPU. Targets reach it as floats of the output's shape
(override :meth:`Loss.prepare_target` for other targets). Parameters go in
``__init__`` and ``get_config()``, which returns them as a dict of JSON-safe
values (``{"delta": self.delta}``; graphnet adds the ``name``). Register it
with ``gn.register(cls)`` (or pass ``custom_objects=`` to ``gn.load``) and
check its gradient with :func:`graphnet.check_gradients`.

>>> import numpy as np, graphnet as gn
>>> class LogCosh(gn.losses.Loss):
...     name = "log_cosh"
...     def value(self, y, a):
...         return np.log(np.cosh(a - y)).mean(axis=1)
...     def gradient(self, y, a):
...         return np.tanh(a - y) / a.shape[1]
>>> _ = gn.register(LogCosh)
>>> g = gn.Sequential([gn.Input(2), gn.Dense(3, activation="tanh"), gn.Dense(2)],
...                   loss="log_cosh", seed=0, dtype="float64")
>>> gn.check_gradients(g, np.ones((4, 2)), np.zeros((4, 2))).ok
True

graphnet's own losses are written in the engine's form: ``value(y, a, z,
r, xp)`` returns the (weighted) mean and ``gradient(y, a, r, xp)`` its
gradient, with ``r`` the rows' weight factors; a custom loss that takes
``r`` is called that way too.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from . import _protocols
from ._registry import add_family, lookup
from ._settings import Checked
from ._text import span
from ._validation import as_dtype, check_labels, check_number
from .errors import ShapeError

__all__ = [
    "Loss",
    "MeanSquaredError",
    "MeanAbsoluteError",
    "Huber",
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy",
    "LOSSES",
    "get",
]

#: True while this module defines graphnet's own classes (see ``__init_subclass__``).
_LOADING = True


class Loss(Checked):
    """Base class: ``value`` and either ``gradient`` or (when fused) ``delta``
    (a custom one may write them shorter: see the module docs)."""

    name: ClassVar[str] = ""
    #: The only activation this loss accepts; set for the fused losses.
    requires_activation: ClassVar[str | None] = None
    #: What the error for another activation adds (a Keras user's way out).
    pairing_note: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not _LOADING:  # graphnet's own, made while this module loads, are in the engine's form
            _protocols.adapt(cls, "loss")

    @property
    def fused(self) -> bool:
        return self.requires_activation is not None

    def value(self, y: np.ndarray, a: np.ndarray, z: np.ndarray | None = None, r=None, xp=np) -> float:
        """Mean loss of predictions ``a`` (pre-activation ``z``) against targets ``y``.

        With ``r`` the mean becomes the weighted mean ``Σ w_i l_i / Σ w``. With
        numpy the value is a float; on a device it stays there, a 0-d array
        (reading it would wait for the device).

        Parameters
        ----------
        y : ndarray of shape (n, units)
            The targets, as :meth:`prepare_target` returned them.
        a : ndarray of shape (n, units)
            The output's activations.
        z : ndarray of shape (n, units), optional
            The output's pre-activations (what the fused losses compute from).
        r : ndarray of shape (n, 1), optional
            Row factors with mean 1 (``n w_i / Σ w``) for sample weights; None
            for unweighted rows.
        xp : module, default numpy
            The arrays' module (``cupy`` on a GPU).
        """
        raise NotImplementedError

    def gradient(self, y: np.ndarray, a: np.ndarray, r=None, xp=np) -> np.ndarray:
        """``dL/da`` of :meth:`value` (non-fused losses), shape ``(n, units)``.

        Parameters
        ----------
        y : ndarray of shape (n, units)
            The targets, as :meth:`prepare_target` returned them.
        a : ndarray of shape (n, units)
            The output's activations.
        r : ndarray of shape (n, 1), optional
            Row factors with mean 1 (``n w_i / Σ w``) for sample weights; None
            for unweighted rows.
        xp : module, default numpy
            The arrays' module (``cupy`` on a GPU).
        """
        raise NotImplementedError

    def delta(self, y: np.ndarray, a: np.ndarray, r=None, xp=np) -> np.ndarray:
        """``dL/dz`` through the required activation (fused losses), shape ``(n, units)``.

        Parameters
        ----------
        y : ndarray of shape (n, units)
            The targets, as :meth:`prepare_target` returned them.
        a : ndarray of shape (n, units)
            The output's activations.
        r : ndarray of shape (n, 1), optional
            Row factors with mean 1 (``n w_i / Σ w``) for sample weights; None
            for unweighted rows.
        xp : module, default numpy
            The arrays' module (``cupy`` on a GPU).
        """
        raise NotImplementedError

    def prepare_target(self, y: np.ndarray, size: int, node: str, dtype: np.dtype) -> np.ndarray:
        """Check and convert targets of one output.

        Parameters
        ----------
        y : ndarray
            The output's targets, already an array.
        size : int
            The output's units.
        node : str
            The output's name, for messages.
        dtype : numpy.dtype
            The graph's dtype, which the targets are cast to.

        Returns
        -------
        ndarray of shape (n, size)

        Raises
        ------
        ShapeError
            When the shape or the values cannot be targets of this loss.
        """
        if y.ndim == 1 and size == 1:
            y = y.reshape(-1, 1)
        if y.ndim != 2 or y.shape[1] != size:
            raise ShapeError(
                f"output {node!r}: expected targets of shape (n, {size}), got {y.shape}"
            )
        return _as_float(y, node, dtype)

    def get_config(self) -> dict[str, Any]:
        """JSON-safe description; ``get(config)`` rebuilds an equal loss."""
        return {"name": self.name}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Loss) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash(self.name)  # equal parts have equal configs, names included; a config may hold lists

    def __repr__(self) -> str:
        params = {k: v for k, v in self.get_config().items() if k != "name"}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in params.items())})"

    def __str__(self) -> str:
        return self.name


def _as_float(y: np.ndarray, node: str, dtype: np.dtype) -> np.ndarray:
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        raise ShapeError(f"output {node!r}: targets must be numeric, got dtype {y.dtype}")
    cast = as_dtype(y, dtype)
    if not np.isfinite(cast).all():
        if np.isfinite(y).all():
            raise ShapeError(f"output {node!r}: targets hold values too large for the graph's {cast.dtype} (largest "
                             f"{np.finfo(cast.dtype).max:.4g}); scale them, or build the graph with dtype='float64'")
        bad = ~np.isfinite(y)
        rows = np.flatnonzero(bad.reshape(len(bad), -1).any(axis=1)) if y.ndim else np.zeros(1, np.intp)
        count, nans = int(bad.sum()), int(np.isnan(y).sum())
        raise ShapeError(f"output {node!r}: targets contain NaN or inf: {count} value(s) in {len(rows)} row(s), "
                         f"the first row {rows[0]} ({nans} NaN, {count - nans} inf)")
    return cast


class MeanSquaredError(Loss):
    """Mean of ``(a - y)²`` over all elements."""

    name = "mse"

    def value(self, y, a, z=None, r=None, xp=np):
        diff = a - y
        return _mean(xp, diff * diff, r)

    def gradient(self, y, a, r=None, xp=np):
        return _rows((a - y) * (2.0 / a.size), r)


class MeanAbsoluteError(Loss):
    """Mean of ``|a - y|`` over all elements (gradient ``sign(a - y)``)."""

    name = "mae"

    def value(self, y, a, z=None, r=None, xp=np):
        return _mean(xp, xp.abs(a - y), r)

    def gradient(self, y, a, r=None, xp=np):
        return _rows(xp.sign(a - y) * (1.0 / a.size), r)


class Huber(Loss):
    """Quadratic for ``|a - y| <= delta``, linear beyond; mean over all elements.

    Parameters
    ----------
    delta : float, default 1.0
        Where the loss turns from quadratic to linear, a positive finite number.
    """

    name = "huber"

    def __init__(self, delta: float = 1.0):
        self.delta = check_number(delta, "huber: delta", 0.0, low_open=True, expected="> 0 and finite")

    def value(self, y, a, z=None, r=None, xp=np):
        residual = xp.abs(a - y)
        quadratic = xp.minimum(residual, self.delta)
        return _mean(xp, 0.5 * quadratic * quadratic + self.delta * (residual - quadratic), r)

    def gradient(self, y, a, r=None, xp=np):
        return _rows(xp.clip(a - y, -self.delta, self.delta) * (1.0 / a.size), r)

    def get_config(self):
        return {"name": self.name, "delta": self.delta}


class BinaryCrossentropy(Loss):
    """Mean over all elements of ``-[y log p + (1-y) log(1-p)]``, ``p = sigmoid(z)``."""

    name = "binary_crossentropy"
    requires_activation = "sigmoid"

    def value(self, y, a, z=None, r=None, xp=np):
        if z is None:  # only probabilities at hand: clip away log(0)
            eps = np.finfo(a.dtype).eps
            p = xp.clip(a, eps, 1 - eps)
            return -_mean(xp, y * xp.log(p) + (1 - y) * xp.log1p(-p), r)
        # log(1 + e^z) - y z, rewritten so that no exp overflows.
        return _mean(xp, xp.maximum(z, 0) - z * y + xp.log1p(xp.exp(-xp.abs(z))), r)

    def delta(self, y, a, r=None, xp=np):
        return _rows((a - y) * (1.0 / a.size), r)

    def prepare_target(self, y, size, node, dtype):
        y = super().prepare_target(y, size, node, dtype)
        if y.size and (y.min() < 0 or y.max() > 1):
            raise ShapeError(
                f"output {node!r}: binary_crossentropy targets must lie in [0, 1], "
                f"found {span(y.min(), y.max(), 'value')}"
            )
        return y


class CategoricalCrossentropy(Loss):
    """Batch mean of ``-Σ_k y_k log p_k`` with ``p = softmax(z)``.

    Targets are one-hot (or probability) rows of shape ``(n, k)`` or integer
    labels of shape ``(n,)``.
    """

    name = "categorical_crossentropy"
    requires_activation = "softmax"

    def value(self, y, a, z=None, r=None, xp=np):
        n = a.shape[0]
        if z is None:
            log_p = xp.log(xp.clip(a, np.finfo(a.dtype).tiny, 1))
        else:
            shifted = z - z.max(axis=1, keepdims=True)
            log_p = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        if y.ndim == 1:
            picked = log_p[xp.arange(n), y]
            return _scalar(xp, -(picked.mean() if r is None else (picked * r[:, 0]).mean()))
        if r is None:
            return _scalar(xp, -(y * log_p).sum() / n)
        return _scalar(xp, -(y * log_p * r).sum() / n)

    def delta(self, y, a, r=None, xp=np):
        n = a.shape[0]
        if y.ndim == 1:
            d = a.copy()
            d[xp.arange(n), y] -= 1
        else:
            d = a - y
        d *= 1.0 / n
        return d if r is None else _rows(d, r)

    def prepare_target(self, y, size, node, dtype):
        if y.ndim == 1 and size > 1:
            return _labels(y, size, node)
        y = super().prepare_target(y, size, node, dtype)
        if y.size:
            sums = y.sum(axis=1)
            if y.min() < 0 or not np.allclose(sums, 1, atol=1e-3):
                negative = y.min(axis=1) < 0
                worst = int(np.argmax(negative)) if negative.any() else int(np.argmax(np.abs(sums - 1)))
                found = (f"row {worst} holds {y[worst].min():g}" if negative.any()
                         else f"row {worst} sums to {sums[worst]:g}")
                raise ShapeError(
                    f"output {node!r}: categorical_crossentropy targets must be one-hot "
                    f"(or probability) rows of values >= 0 summing to 1 or integer labels of shape (n,); {found}"
                )
        return y


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """Keras's name for categorical crossentropy on integer class labels:
    targets of shape ``(n,)`` or ``(n, 1)``, with a softmax output (whose
    logits the loss reads, so there is no ``from_logits``). One-hot rows are
    refused; ``categorical_crossentropy`` takes both."""

    name = "sparse_categorical_crossentropy"
    pairing_note = (
        " (the loss reads the softmax output's logits itself, as Keras's from_logits=True does; "
        "integer labels already work with categorical_crossentropy)"
    )

    def prepare_target(self, y, size, node, dtype):
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise ShapeError(
                f"output {node!r}: sparse_categorical_crossentropy takes integer class labels of "
                f"shape (n,), got targets of shape {y.shape}; for one-hot rows use "
                f"loss='categorical_crossentropy' (it takes integer labels too)"
            )
        return _labels(y, size, node)


def _mean(xp, elements: np.ndarray, r) -> float:
    """The mean over all elements, each row counted ``r`` times (``r`` None: once).

    ``sum / size`` is ``np.mean``'s own arithmetic (the same pairwise sum, the
    same rounding) without its Python layers: a few microseconds a step."""
    values = elements if r is None else elements * r
    return _scalar(xp, values.sum() / values.size)


def _scalar(xp, value):
    """A float on the host; on a device the 0-d array itself (no synchronisation)."""
    return float(value) if xp is np else value


def _rows(gradient: np.ndarray, r) -> np.ndarray:
    """A mean's gradient with each row scaled by its factor ``r`` (in place)."""
    if r is not None:
        gradient *= r
    return gradient


def _labels(y: np.ndarray, size: int, node: str) -> np.ndarray:
    """Integer class labels in ``[0, size)`` as an ``intp`` array."""
    if not (np.issubdtype(y.dtype, np.floating) or np.issubdtype(y.dtype, np.integer)):
        raise ShapeError(f"output {node!r}: class labels must be integers, got dtype {y.dtype}")
    check_labels(y, size, f"output {node!r}", f"1-D targets must be integer class labels in [0, {size})")
    return np.ascontiguousarray(y.astype(np.intp))


#: Every loss by the name users pass as ``loss=``.
LOSSES: dict[str, type[Loss]] = {
    cls.name: cls
    for cls in (
        MeanSquaredError,
        MeanAbsoluteError,
        Huber,
        BinaryCrossentropy,
        CategoricalCrossentropy,
        SparseCategoricalCrossentropy,
    )
}
#: Keras's names (a model saved with one of them writes graphnet's).
LOSSES["mean_squared_error"] = MeanSquaredError
LOSSES["mean_absolute_error"] = MeanAbsoluteError


def get(identifier: str | dict | Loss) -> Loss:
    """A loss from a name, a config dict or an instance.

    Parameters
    ----------
    identifier : str, dict or Loss
        A name (``"mse"``, or one registered with :func:`graphnet.register`), a
        config dict ``{"name": ..., **parameters}``, or an instance (returned as is).

    Raises
    ------
    GraphError
        For an unknown name (the message lists the known ones), bad
        parameters, or a custom loss that breaks the protocol (its
        ``get_config()`` included).
    """
    loss = lookup(identifier, LOSSES, "loss", Loss, "a Loss")
    if type(loss) not in _BUILTIN:
        _check(type(loss))
        _protocols.config(loss, "loss")
    return loss


def _check(cls: type) -> None:
    _protocols.check(cls, Loss, "loss")


_BUILTIN = frozenset(LOSSES.values())
_LOADING = False
add_family(Loss, LOSSES, "loss", _check)
