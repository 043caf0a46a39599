"""Optimizers, sorted in order of increasing complexity: SGD -> Momentum -> RMSprop
-> Adam -> AdamW.

They work on *flat* vectors: the execution plan keeps every trainable weight
and bias as a view into one parameter buffer and writes every gradient into
one gradient buffer, so an update is a handful of whole-buffer numpy passes
instead of a Python loop over parameters.

``step(params, grads)`` does not touch ``params``: it returns the amount to
subtract. The trainer checks that amount for NaN/inf before applying it, which
is how a failing step leaves the weights exactly as they were.

State (moments, velocities) is flat as well and follows the parameter layout:
when the graph is edited, :meth:`Optimizer.bind` carries the state of every
parameter that still exists over to the new layout.
"""

from __future__ import annotations

import logging
import math
from typing import Any, ClassVar

import numpy as np

from . import kernels
from .errors import GraphError
from .parameters import Layout

__all__ = ["Optimizer", "SGD", "Momentum", "RMSprop", "Adam", "AdamW", "OPTIMIZERS", "get"]

logger = logging.getLogger(__name__)

# Moments of dead units decay geometrically into float32 subnormals, which make
# every later pass over them many times slower (numpy cannot flush to zero).
_FLUSH_EVERY = 64
_FLUSH_BELOW = 1e-30


class Optimizer:
    """Base class. Subclasses list their state in :attr:`slot_names` and
    implement :meth:`_update`."""

    name: ClassVar[str] = ""
    slot_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, lr: float, clipnorm: float | None = None):
        self.lr = _positive("lr", lr, self)
        self.clipnorm = None if clipnorm is None else _positive("clipnorm", clipnorm, self)
        self.iterations = 0
        self.slots: dict[str, np.ndarray] = {}
        self._layout: Layout | None = None
        self._scratch: np.ndarray | None = None

    # -- state follows the parameter layout ---------------------------------
    def bind(self, layout: Layout, dtype: np.dtype) -> None:
        """Prepare state for a flat parameter vector with this ``layout``.

        State of parameters present in both the old and the new layout is
        kept; new parameters start from zero state.
        """
        dtype = np.dtype(dtype)
        if layout == self._layout and self._scratch is not None and self._scratch.dtype == dtype:
            return
        size = sum(n for _, n in layout)
        old_offsets = _offsets(self._layout) if self._layout is not None else {}
        new_slots = {}
        for slot in self.slot_names:
            new = np.zeros(size, dtype=dtype)
            old = self.slots.get(slot)
            if old is not None:
                for key, (start, n) in _offsets(layout).items():
                    if key in old_offsets and old_offsets[key][1] == n:
                        o = old_offsets[key][0]
                        new[start : start + n] = old[o : o + n]
            new_slots[slot] = new
        if self._layout is not None:
            logger.debug("%s: state carried over to a new layout of %d parameters", self.name, size)
        self.slots = new_slots
        self._layout = layout
        self._scratch = np.empty(size, dtype=dtype)

    # -- one update ----------------------------------------------------------
    def step(self, params: np.ndarray, grads: np.ndarray) -> np.ndarray:
        """Advance the state and return the update ``u`` such that the new
        parameters are ``params - u``.

        ``grads`` may be scaled in place (``clipnorm``). The returned array is
        scratch owned by the optimizer, valid until the next call.
        """
        if self._scratch is None or self._scratch.shape != params.shape:
            raise GraphError(
                f"{self.name}: bind() the optimizer to a layout of {params.size} parameters first"
            )
        self.iterations += 1
        if self.clipnorm is not None:
            norm = math.sqrt(float(np.dot(grads, grads)))
            if norm > self.clipnorm:
                grads *= self.clipnorm / norm
        update = self._update(params, grads, self._scratch)
        if self.iterations % _FLUSH_EVERY == 0 and params.dtype == np.float32:
            for slot in self.slots.values():
                slot[np.abs(slot) < _FLUSH_BELOW] = 0
        return update

    def _update(self, params: np.ndarray, grads: np.ndarray, out: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # -- configuration and state ---------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Name and hyperparameters; ``get(config)`` rebuilds the optimizer."""
        return {"name": self.name, "lr": self.lr, "clipnorm": self.clipnorm}

    def get_state(self) -> dict[str, Any]:
        """Iteration count, layout and flat slot arrays (for saving)."""
        return {
            "iterations": self.iterations,
            "layout": [list(item) for item in (self._layout or ())],
            "slots": {k: v.copy() for k, v in self.slots.items()},
        }

    def set_state(self, state: dict[str, Any], dtype: np.dtype) -> None:
        """Restore what :meth:`get_state` returned.

        Raises
        ------
        GraphError
            When the slots do not match the layout or this optimizer's slot names.
        """
        layout: Layout = tuple((str(k), int(n)) for k, n in state["layout"])
        size = sum(n for _, n in layout)
        slots = state["slots"]
        if set(slots) != set(self.slot_names):
            raise GraphError(
                f"{self.name}: expected state slots {sorted(self.slot_names)}, got {sorted(slots)}"
            )
        for slot, value in slots.items():
            if np.shape(value) != (size,):
                raise GraphError(
                    f"{self.name}: state slot {slot!r} should have shape ({size},), "
                    f"got {np.shape(value)}"
                )
        self.iterations = int(state["iterations"])
        self.slots = {k: np.array(v, dtype=dtype) for k, v in slots.items()}
        self._layout = layout
        self._scratch = np.empty(size, dtype=dtype)

    def __repr__(self) -> str:
        params = {k: v for k, v in self.get_config().items() if k != "name" and v is not None}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in params.items())})"


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum.

    With momentum ``mu``: ``v <- mu v + lr g`` and ``p <- p - v``; Nesterov
    uses ``p <- p - (mu v + lr g)`` (the Keras/Sutskever form).
    """

    name = "sgd"

    def __init__(
        self,
        lr: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        clipnorm: float | None = None,
    ):
        super().__init__(lr, clipnorm)
        momentum = float(momentum)
        if not 0.0 <= momentum < 1.0:
            raise GraphError(f"{self.name}: momentum must be in [0, 1), got {momentum!r}")
        if nesterov and momentum == 0.0:
            raise GraphError(f"{self.name}: nesterov=True needs a momentum > 0")
        self.momentum = momentum
        self.nesterov = bool(nesterov)
        self.slot_names = ("velocity",) if momentum else ()

    def _update(self, params, grads, out):
        if not self.momentum:
            return np.multiply(grads, self.lr, out=out)
        velocity = self.slots["velocity"]
        velocity *= self.momentum
        np.multiply(grads, self.lr, out=out)
        velocity += out
        if self.nesterov:
            out += velocity * self.momentum
            return out
        out[...] = velocity
        return out

    def get_config(self):
        return {
            **super().get_config(),
            "momentum": self.momentum,
            "nesterov": self.nesterov,
        }


class Momentum(SGD):
    """SGD with momentum 0.9 by default (the registry's ``"momentum"``)."""

    name = "momentum"

    def __init__(
        self,
        lr: float = 0.01,
        momentum: float = 0.9,
        nesterov: bool = False,
        clipnorm: float | None = None,
    ):
        super().__init__(lr, momentum, nesterov, clipnorm)


class RMSprop(Optimizer):
    """``v <- rho v + (1 - rho) g²``, ``p <- p - lr g / (sqrt(v) + eps)`` (Keras's defaults)."""

    name = "rmsprop"
    slot_names = ("mean_square",)

    def __init__(
        self,
        lr: float = 1e-3,
        rho: float = 0.9,
        eps: float = 1e-7,
        clipnorm: float | None = None,
    ):
        super().__init__(lr, clipnorm)
        self.rho = _fraction("rho", rho, self)
        self.eps = _positive("eps", eps, self)

    def _update(self, params, grads, out):
        mean_square = self.slots["mean_square"]
        np.multiply(grads, grads, out=out)
        out *= 1.0 - self.rho
        mean_square *= self.rho
        mean_square += out
        np.sqrt(mean_square, out=out)
        out += self.eps
        np.divide(grads, out, out=out)
        out *= self.lr
        return out

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "eps": self.eps}


class Adam(Optimizer):
    """Adam with bias correction: ``p <- p - lr m̂ / (sqrt(v̂) + eps)``.

    The correction is folded into the step size and ``eps``, which is exactly
    the same update with two fewer passes over memory.
    """

    name = "adam"
    slot_names = ("m", "v")

    def __init__(
        self,
        lr: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        clipnorm: float | None = None,
    ):
        super().__init__(lr, clipnorm)
        self.beta1 = _fraction("beta1", beta1, self)
        self.beta2 = _fraction("beta2", beta2, self)
        self.eps = _positive("eps", eps, self)

    def _update(self, params, grads, out):
        m, v = self.slots["m"], self.slots["v"]
        t = self.iterations
        correction2 = math.sqrt(1.0 - self.beta2**t)
        step_size = self.lr * correction2 / (1.0 - self.beta1**t)
        eps = self.eps * correction2
        # One compiled pass when numba is installed (graphnet[fast]); the same
        # arithmetic, bit for bit, as the passes below.
        if kernels.adam(grads, m, v, out, self.beta1, self.beta2, step_size, eps):
            return out
        # m <- b1 m + (1 - b1) g, written as b1 (m - g) + g to need no scratch.
        m -= grads
        m *= self.beta1
        m += grads
        np.multiply(grads, grads, out=out)
        v -= out
        v *= self.beta2
        v += out
        np.sqrt(v, out=out)
        out += eps
        np.divide(m, out, out=out)
        out *= step_size
        return out

    def get_config(self):
        return {
            **super().get_config(),
            "beta1": self.beta1,
            "beta2": self.beta2,
            "eps": self.eps,
        }


class AdamW(Adam):
    """Adam with decoupled weight decay: ``p <- p - lr (wd p + adam_step / lr)``
    (PyTorch's ``AdamW``; the decay applies to every trainable parameter)."""

    name = "adamw"

    def __init__(
        self,
        lr: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        clipnorm: float | None = None,
    ):
        super().__init__(lr, beta1, beta2, eps, clipnorm)
        weight_decay = float(weight_decay)
        if not weight_decay >= 0:
            raise GraphError(f"{self.name}: weight_decay must be >= 0, got {weight_decay!r}")
        self.weight_decay = weight_decay

    def _update(self, params, grads, out):
        out = super()._update(params, grads, out)
        if self.weight_decay:
            out += params * (self.lr * self.weight_decay)
        return out

    def get_config(self):
        return {**super().get_config(), "weight_decay": self.weight_decay}


def _positive(what: str, value: float, opt: Optimizer) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise GraphError(f"{opt.name}: {what} must be a number, got {value!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise GraphError(f"{opt.name}: {what} must be a positive finite number, got {value!r}")
    return value


def _fraction(what: str, value: float, opt: Optimizer) -> float:
    value = float(value)
    if not 0.0 <= value < 1.0:
        raise GraphError(f"{opt.name}: {what} must be in [0, 1), got {value!r}")
    return value


def _offsets(layout: Layout) -> dict[str, tuple[int, int]]:
    offsets, start = {}, 0
    for key, n in layout:
        offsets[key] = (start, n)
        start += n
    return offsets


#: Every optimizer by the name users pass as ``optimizer=``.
OPTIMIZERS: dict[str, type[Optimizer]] = {
    cls.name: cls for cls in (SGD, Momentum, RMSprop, Adam, AdamW)
}


def get(identifier: str | dict | Optimizer) -> Optimizer:
    """An optimizer from a name (default hyperparameters), a config dict or an instance.

    Raises
    ------
    GraphError
        For an unknown name (the message lists the known ones) or bad parameters.
    """
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        name, params = identifier, {}
    elif isinstance(identifier, dict):
        params = dict(identifier)
        name = params.pop("name", None)
    else:
        raise GraphError(
            f"optimizer must be a name, a config dict or an Optimizer, "
            f"got {type(identifier).__name__}: {identifier!r}"
        )
    cls = OPTIMIZERS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise GraphError(f"unknown optimizer {name!r}; known: {sorted(OPTIMIZERS)}")
    try:
        return cls(**params)
    except TypeError as exc:
        raise GraphError(f"optimizer {name!r}: bad parameters {params!r} ({exc})") from None
