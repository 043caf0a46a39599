"""Optimizers, sorted in order of increasing complexity: SGD -> Momentum -> RMSprop
-> Adam -> AdamW.

Each is an update rule on *flat* vectors: the execution plan keeps every
trainable weight and bias as a view into one parameter buffer and writes
every gradient into one gradient buffer, so an update is a handful of
whole-buffer passes instead of a Python loop over parameters. A rule reads
its state (``slots``), writes the state that follows (``new_slots``) and the
update ``u`` (new parameters are ``params - u``); everything else (the
layout the state follows, propose/check/commit, ownership, saving) is the
base class's, :class:`~graphnet._optimizer_state.Optimizer`.

Any ``lr`` may be a :mod:`graphnet.schedules` schedule, ``learning_rate=`` is
accepted wherever ``lr=`` is, and Adam takes Keras's ``beta_1``, ``beta_2``
and ``epsilon`` too.
"""

from __future__ import annotations

import math
from operator import attrgetter

from ._hyperparameters import fraction, positive
from ._optimizer_state import Optimizer
from ._registry import lookup
from ._validation import check_bool, check_number
from .backend import CPU
from .errors import GraphError
from .schedules import LearningRateSchedule

__all__ = ["Optimizer", "SGD", "Momentum", "RMSprop", "Adam", "AdamW", "OPTIMIZERS", "IN_PLACE_FROM", "get"]

#: From this many parameters on, Adam's checked step makes the new moments at
#: commit (two compiled passes) instead of into a second copy: the memory of
#: the copy matters there, and the second kernel call (a few microseconds)
#: does not.
IN_PLACE_FROM = 1 << 16


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum.

    With momentum ``mu``: ``v <- mu v + lr g`` and ``p <- p - v``; Nesterov
    uses ``p <- p - (mu v + lr g)`` (the Keras/Sutskever form). With a
    constant rate this is PyTorch's ``b <- mu b + g``, ``p <- p - lr b``; under
    a schedule the two differ, the velocity here keeping the rates it was
    made with.

    Parameters
    ----------
    lr : float or LearningRateSchedule, optional
        The learning rate, a finite number >= 0 (0 trains nothing), or a
        :mod:`graphnet.schedules` schedule (an instance or its config dict);
        None (the default) for 0.01.
    momentum : float, default 0.0
        The momentum ``mu``, in [0, 1); 0 is plain gradient descent.
    nesterov : bool, default False
        Use Nesterov momentum (needs ``momentum > 0``).
    clipnorm : float, optional
        Scale the whole gradient down to this norm when it is longer, a
        positive number; None (the default) does not clip.
    learning_rate : float or LearningRateSchedule, optional
        Keras's name for ``lr``: give one or the other, not both.
    """

    name = "sgd"

    def __init__(self, lr: float | LearningRateSchedule | None = None, momentum: float = 0.0,
                 nesterov: bool = False, clipnorm: float | None = None, *, learning_rate=None):
        super().__init__(lr, clipnorm, learning_rate, default=0.01)
        momentum = fraction("momentum", momentum, self)
        nesterov = check_bool(nesterov, f"{self.name}: nesterov")
        if nesterov and momentum == 0.0:
            raise GraphError(f"{self.name}: nesterov=True needs a momentum > 0")
        self.momentum = momentum
        self.nesterov = nesterov
        self.slot_names = ("velocity",) if momentum else ()

    def update(self, params, grads, slots, new_slots, out, lr, t):
        xp = self._backend.xp
        if not self.momentum:
            return xp.multiply(grads, lr, out=out)
        velocity = xp.multiply(slots["velocity"], self.momentum, out=new_slots["velocity"])
        xp.multiply(grads, lr, out=out)
        velocity += out
        if self.nesterov:
            out += velocity * self.momentum
            return out
        return velocity  # the update is the new velocity itself

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Momentum(SGD):
    """SGD with momentum 0.9 by default (the registry's ``"momentum"``).

    Parameters
    ----------
    lr : float or LearningRateSchedule, optional
        The learning rate, a finite number >= 0 (0 trains nothing), or a
        :mod:`graphnet.schedules` schedule (an instance or its config dict);
        None (the default) for 0.01.
    momentum : float, default 0.9
        The momentum ``mu``, in [0, 1).
    nesterov : bool, default False
        Use Nesterov momentum.
    clipnorm : float, optional
        Scale the whole gradient down to this norm when it is longer, a
        positive number; None (the default) does not clip.
    learning_rate : float or LearningRateSchedule, optional
        Keras's name for ``lr``: give one or the other, not both.
    """

    name = "momentum"

    def __init__(self, lr: float | LearningRateSchedule | None = None, momentum: float = 0.9,
                 nesterov: bool = False, clipnorm: float | None = None, *, learning_rate=None):
        super().__init__(lr, momentum, nesterov, clipnorm, learning_rate=learning_rate)


class RMSprop(Optimizer):
    """``v <- rho v + (1 - rho) g²``, ``p <- p - lr g / (sqrt(v) + eps)`` (Keras's defaults).

    Parameters
    ----------
    lr : float or LearningRateSchedule, optional
        The learning rate, a finite number >= 0 (0 trains nothing), or a
        :mod:`graphnet.schedules` schedule (an instance or its config dict);
        None (the default) for 0.001.
    rho : float, default 0.9
        The decay of the running mean of squared gradients, in [0, 1).
    eps : float, default 1e-7
        Added to ``sqrt(v)``, a positive number.
    clipnorm : float, optional
        Scale the whole gradient down to this norm when it is longer, a
        positive number; None (the default) does not clip.
    learning_rate : float or LearningRateSchedule, optional
        Keras's name for ``lr``: give one or the other, not both.
    """

    name = "rmsprop"
    slot_names = ("mean_square",)
    nonnegative_slots = ("mean_square",)

    def __init__(self, lr: float | LearningRateSchedule | None = None, rho: float = 0.9, eps: float = 1e-7,
                 clipnorm: float | None = None, *, learning_rate=None):
        super().__init__(lr, clipnorm, learning_rate, default=1e-3)
        self.rho = fraction("rho", rho, self)
        self.eps = positive("eps", eps, self)

    def update(self, params, grads, slots, new_slots, out, lr, t):
        xp = self._backend.xp
        mean_square = xp.multiply(slots["mean_square"], self.rho, out=new_slots["mean_square"])
        xp.multiply(grads, grads, out=out)
        out *= 1.0 - self.rho
        mean_square += out
        xp.sqrt(mean_square, out=out)
        out += self.eps
        xp.divide(grads, out, out=out)
        out *= lr
        return out

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "eps": self.eps}


class _Default(float):
    """A hyperparameter's default value: the number itself, known apart from
    the same number given (so that a graphnet name at its default and its
    Keras name are not taken as both given)."""


_BETA1, _BETA2, _EPS = _Default(0.9), _Default(0.999), _Default(1e-8)


class Adam(Optimizer):
    """Adam with bias correction: ``p <- p - lr m̂ / (sqrt(v̂) + eps)``.

    The correction is folded into the step size and ``eps``, the same update
    with two fewer passes over memory. Each parameter counts its own steps
    ``t`` (one that joins a graph mid-training starts its correction over).
    With the compiled kernels (:mod:`graphnet._kernels`) the step is one
    pass, and from :data:`IN_PLACE_FROM` parameters on a checked step keeps
    no second copy of the moments: the first pass writes only the step, the
    second, at commit, the moments in place. ``beta1`` (0.9 when not
    given), ``beta2`` (0.999) and ``eps`` (1e-8) may be given by Keras's
    names ``beta_1``, ``beta_2`` and ``epsilon``, but not by both names.

    Parameters
    ----------
    lr : float or LearningRateSchedule, optional
        The learning rate, a finite number >= 0 (0 trains nothing), or a
        :mod:`graphnet.schedules` schedule (an instance or its config dict);
        None (the default) for 0.001.
    beta1 : float, default 0.9
        The decay of the first moment (the mean of the gradients), in [0, 1).
    beta2 : float, default 0.999
        The decay of the second moment (the mean of squared gradients), in [0, 1).
    eps : float, default 1e-8
        Added to ``sqrt(v̂)``, a positive number.
    clipnorm : float, optional
        Scale the whole gradient down to this norm when it is longer, a
        positive number; None (the default) does not clip.
    learning_rate : float or LearningRateSchedule, optional
        Keras's name for ``lr``: give one or the other, not both.
    beta_1, beta_2, epsilon : float, optional
        Keras's names for ``beta1``, ``beta2`` and ``eps``: give one name or
        the other, not both.
    """

    name = "adam"
    slot_names = ("m", "v")
    nonnegative_slots = ("v",)
    counts_steps = True

    def __init__(self, lr: float | LearningRateSchedule | None = None, beta1: float = _BETA1,
                 beta2: float = _BETA2, eps: float = _EPS, clipnorm: float | None = None, *, learning_rate=None,
                 beta_1=None, beta_2=None, epsilon=None):
        super().__init__(lr, clipnorm, learning_rate, default=1e-3)
        self.beta1 = fraction("beta1", _either(self, "beta1", beta1, "beta_1", beta_1), self)
        self.beta2 = fraction("beta2", _either(self, "beta2", beta2, "beta_2", beta_2), self)
        self.eps = positive("eps", _either(self, "eps", eps, "epsilon", epsilon), self)

    beta_1 = property(attrgetter("beta1"), lambda self, value: setattr(self, "beta1", value),
                      doc="Keras's name for :attr:`beta1`.")
    beta_2 = property(attrgetter("beta2"), lambda self, value: setattr(self, "beta2", value),
                      doc="Keras's name for :attr:`beta2`.")
    epsilon = property(attrgetter("eps"), lambda self, value: setattr(self, "eps", value),
                       doc="Keras's name for :attr:`eps`.")

    def bind(self, layout, dtype, backend=CPU, tokens=None, frozen=None) -> None:
        super().bind(layout, dtype, backend, tokens, frozen)
        # Compiled here, before the first step, where Ctrl-C cannot tear it (see graphnet._kernels).
        backend.prepare_adam(dtype)

    def _step_size(self, lr: float, t: int) -> tuple[float, float]:
        """The bias-corrected step size and eps of step ``t``."""
        correction2 = math.sqrt(1.0 - self.beta2**t)
        return lr * correction2 / (1.0 - self.beta1**t), self.eps * correction2

    def update(self, params, grads, slots, new_slots, out, lr, t):
        step_size, eps = self._step_size(lr, t)
        m, v, m_next, v_next = slots["m"], slots["v"], new_slots["m"], new_slots["v"]
        if self._backend.adam(grads, m, v, m_next, v_next, out, self.beta1, self.beta2, step_size, eps):
            return out  # one compiled pass: the arithmetic below, bit for bit
        xp = self._backend.xp
        # m' = b1 m + (1 - b1) g, written as b1 (m - g) + g to need no scratch.
        xp.subtract(m, grads, out=m_next)
        m_next *= self.beta1
        m_next += grads
        xp.multiply(grads, grads, out=out)
        xp.subtract(v, out, out=v_next)
        v_next *= self.beta2
        v_next += out
        xp.sqrt(v_next, out=out)
        out += eps
        xp.divide(m_next, out, out=out)
        out *= step_size
        return out

    def in_place_for(self, size: int) -> bool:
        return size >= IN_PLACE_FROM

    def step_in_place(self, params, grads, slots, out, lr, t) -> bool:
        # A non-finite new moment makes the step non-finite, which the trainer refuses.
        step_size, eps = self._step_size(lr, t)
        return self._backend.adam_step(grads, slots["m"], slots["v"], out, self.beta1, self.beta2, step_size, eps)

    def commit_in_place(self, grads, slots) -> None:
        self._backend.adam_moments(grads, slots["m"], slots["v"], self.beta1, self.beta2)

    def get_config(self):
        return {**super().get_config(), "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}


class AdamW(Adam):
    """Adam with decoupled weight decay: ``p <- p - lr (wd p + adam_step / lr)``
    (PyTorch's ``AdamW``; the decay applies to every trainable parameter).

    Parameters
    ----------
    lr : float or LearningRateSchedule, optional
        The learning rate, a finite number >= 0 (0 trains nothing), or a
        :mod:`graphnet.schedules` schedule (an instance or its config dict);
        None (the default) for 0.001.
    beta1 : float, default 0.9
        The decay of the first moment (the mean of the gradients), in [0, 1).
    beta2 : float, default 0.999
        The decay of the second moment (the mean of squared gradients), in [0, 1).
    eps : float, default 1e-8
        Added to ``sqrt(v̂)``, a positive number.
    weight_decay : float, default 0.01
        The decay ``wd``, a finite number >= 0 (0 is Adam).
    clipnorm : float, optional
        Scale the whole gradient down to this norm when it is longer, a
        positive number; None (the default) does not clip.
    learning_rate : float or LearningRateSchedule, optional
        Keras's name for ``lr``: give one or the other, not both.
    beta_1, beta_2, epsilon : float, optional
        Keras's names for ``beta1``, ``beta2`` and ``eps``: give one name or
        the other, not both.
    """

    name = "adamw"

    def __init__(self, lr: float | LearningRateSchedule | None = None, beta1: float = _BETA1,
                 beta2: float = _BETA2, eps: float = _EPS, weight_decay: float = 0.01,
                 clipnorm: float | None = None, *, learning_rate=None, beta_1=None, beta_2=None, epsilon=None):
        super().__init__(lr, beta1, beta2, eps, clipnorm, learning_rate=learning_rate, beta_1=beta_1,
                         beta_2=beta_2, epsilon=epsilon)
        self.weight_decay = check_number(weight_decay, f"{self.name}: weight_decay", 0.0,
                                         expected="a finite number >= 0")

    def update(self, params, grads, slots, new_slots, out, lr, t):
        return self._decay(super().update(params, grads, slots, new_slots, out, lr, t), params, lr)

    def step_in_place(self, params, grads, slots, out, lr, t) -> bool:
        if not super().step_in_place(params, grads, slots, out, lr, t):
            return False
        self._decay(out, params, lr)
        return True

    def _decay(self, out, params, lr):
        if self.weight_decay:
            out += params * (lr * self.weight_decay)
        return out

    def get_config(self):
        return {**super().get_config(), "weight_decay": self.weight_decay}


def _either(opt: Optimizer, name: str, value, keras_name: str, keras_value):
    """A hyperparameter given by graphnet's name or Keras's (not both, whatever
    their values: a default is a :class:`_Default`, told apart from the same
    number given)."""
    if keras_value is None:
        return value
    if not isinstance(value, _Default):
        raise GraphError(f"{opt.name}: pass {name} or {keras_name} (the same thing), not both; got "
                         f"{name}={value!r} and {keras_name}={keras_value!r}")
    return keras_value


#: Every optimizer by the name users pass as ``optimizer=``.
OPTIMIZERS: dict[str, type[Optimizer]] = {cls.name: cls for cls in (SGD, Momentum, RMSprop, Adam, AdamW)}


def get(identifier: str | dict | Optimizer) -> Optimizer:
    """An optimizer from a name (default hyperparameters), a config dict or an instance.

    Parameters
    ----------
    identifier : str, dict or Optimizer
        A name (``"adam"``, a key of :data:`OPTIMIZERS`), a config dict
        ``{"name": ..., **hyperparameters}``, or an instance (returned as is).

    Raises
    ------
    GraphError
        For an unknown name (the message lists the known ones) or bad parameters.
    """
    return lookup(identifier, OPTIMIZERS, "optimizer", Optimizer, "an Optimizer")

