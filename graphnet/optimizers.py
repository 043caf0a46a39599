"""Optimizers, sorted in order of increasing complexity: SGD -> Momentum -> RMSprop
-> Adam -> AdamW.

They work on *flat* vectors: the execution plan keeps every trainable weight
and bias as a view into one parameter buffer and writes every gradient into
one gradient buffer, so an update is a handful of whole-buffer numpy passes
instead of a Python loop over parameters.

An update happens in two parts. :meth:`Optimizer.propose` computes the amount
``u`` to subtract from the parameters and the state that would follow, into
buffers of its own, and touches neither the parameters nor the current
state. :meth:`Optimizer.commit` then makes the proposed state current (a swap
of buffers, not a copy) and counts the iteration. The trainer checks ``u``
(and, when gradients were huge, the proposed state) before it commits, so a
refused step leaves the weights, the moments and the iteration count exactly
as they were, at no cost to a step that goes through. :meth:`Optimizer.step`
is both parts at once, for code that drives an optimizer by hand.

State (moments, velocities) is flat as well and follows the parameter layout:
when the graph is edited, :meth:`Optimizer.bind` carries the state of every
parameter that still exists over to the new layout. Any ``lr`` may be a
:mod:`graphnet.schedules` schedule of the iteration count, and
``learning_rate=`` (Keras's name) is accepted wherever ``lr=`` is.
"""

from __future__ import annotations

import logging
import math
import weakref
from typing import Any, ClassVar

import numpy as np

from . import schedules
from ._registry import lookup
from .backend import CPU
from ._validation import check_number
from .errors import GraphError
from ._parameters import Layout

__all__ = ["Optimizer", "SGD", "Momentum", "RMSprop", "Adam", "AdamW", "OPTIMIZERS", "get"]

logger = logging.getLogger(__name__)

# Moments of dead units decay geometrically into float32 subnormals, which make
# every later pass over them many times slower (numpy cannot flush to zero).
_FLUSH_EVERY = 64
_FLUSH_BELOW = 1e-30


#: From this many parameters on, Adam's checked step makes the new moments at
#: commit (two compiled passes) instead of into a second copy: the memory of
#: the copy matters there, and the second kernel call (a few microseconds)
#: does not.
IN_PLACE_FROM = 1 << 16

class Optimizer:
    """Base class. Subclasses list their state in :attr:`slot_names` and
    implement :meth:`_update`, which reads :attr:`slots` and writes the
    proposed state into ``proposed`` (buffers of the same shapes)."""

    name: ClassVar[str] = ""
    slot_names: ClassVar[tuple[str, ...]] = ()
    #: Slots that are never negative (running means of squared gradients).
    nonnegative_slots: ClassVar[tuple[str, ...]] = ()
    #: Whether :meth:`_update` asks for the proposal buffers itself (only when
    #: it cannot make the new state at commit instead).
    _lazy_proposal: ClassVar[bool] = False

    def __init__(self, lr=None, clipnorm: float | None = None, learning_rate=None, *, default: float):
        self.lr = _learning_rate(self, lr, learning_rate, default)
        self.clipnorm = None if clipnorm is None else _positive("clipnorm", clipnorm, self)
        self.iterations = 0
        self.slots: dict[str, np.ndarray] = {}
        self._proposed: dict[str, np.ndarray] = {}
        self._layout: Layout | None = None
        self._scratch: np.ndarray | None = None
        self._owner: weakref.ref | None = None
        self._backend = CPU  # where the state lives (bind() follows the plan's)
        #: The iteration count at which a parameter's state started, for the
        #: ones that joined after the first update (a graph edited mid-training).
        self._born: dict[str, int] = {}
        self._runs: tuple[tuple[int, int, int], ...] | None = None
        #: The gradient of a proposal whose new state is not stored but made
        #: at commit (Adam on the CPU); None for a stored proposal.
        self._in_place: np.ndarray | None = None
        self._finite_grads = False

    @property
    def learning_rate(self):
        """Keras's name for :attr:`lr` (a float or a schedule)."""
        return self.lr

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        self.lr = _learning_rate(self, value, None, None)

    def current_lr(self) -> float:
        """The rate the next update uses (a schedule's value at :attr:`iterations`)."""
        lr = self.lr
        return lr if isinstance(lr, float) else float(lr(self.iterations))

    # -- state follows the parameter layout ---------------------------------
    def bind(self, layout: Layout, dtype: np.dtype, backend=CPU) -> None:
        """Prepare state for a flat parameter vector with this ``layout``, on
        ``backend`` (:mod:`graphnet.backend`; the state moves there if it was
        elsewhere).

        State of parameters present in both the old and the new layout is
        kept; new parameters start from zero state.
        """
        dtype = np.dtype(dtype)
        if backend is not self._backend:
            self.to(backend)
        if layout == self._layout and self._scratch is not None and self._scratch.dtype == dtype:
            return
        xp = backend.xp
        size = sum(n for _, n in layout)
        old_offsets = _offsets(self._layout) if self._layout is not None else {}
        kept = {key for key, n in layout if key in old_offsets and old_offsets[key][1] == n}
        # A parameter that joins now starts its own count (as PyTorch's per-parameter step).
        self._born = {key: self._born.get(key, 0) if key in kept else self.iterations
                      for key, _ in layout}
        self._born = {key: born for key, born in self._born.items() if born}
        new_slots = {}
        for slot in self.slot_names:
            new = xp.zeros(size, dtype=dtype)
            old = self.slots.get(slot)
            if old is not None:
                for key, (start, n) in _offsets(layout).items():
                    if key in kept:
                        o = old_offsets[key][0]
                        new[start : start + n] = old[o : o + n]
            new_slots[slot] = new
        if self._layout is not None:
            logger.debug("%s: state carried over to a new layout of %d parameters", self.name, size)
        self._install(layout, new_slots, dtype)

    def _install(self, layout: Layout, slots: dict[str, np.ndarray], dtype: np.dtype) -> None:
        xp = self._backend.xp
        size = sum(n for _, n in layout)
        self.slots = slots
        self._proposed = {}  # made by _proposal() when first needed
        self._layout = layout
        self._scratch = xp.empty(size, dtype=dtype)
        self._runs = None
        if self._born:  # contiguous runs of parameters born at the same iteration
            runs: list[list[int]] = []
            for key, (start, n) in _offsets(layout).items():
                born = self._born.get(key, 0)
                if runs and runs[-1][2] == born and runs[-1][1] == start:
                    runs[-1][1] = start + n
                else:
                    runs.append([start, start + n, born])
            self._runs = tuple(tuple(r) for r in runs)

    def steps(self, key: str) -> int:
        """How many updates the state of parameter ``key`` has seen."""
        return self.iterations - self._born.get(key, 0)

    def to(self, backend) -> None:
        """Move the state (moments, ...) to ``backend``'s device; the
        iteration count and layout stay."""
        old = self._backend
        if backend is old:
            return
        self._backend = backend
        if self._scratch is None:
            return
        slots = {name: backend.to_device(old.to_host(value)) for name, value in self.slots.items()}
        self._install(self._layout, slots, self._scratch.dtype)

    # -- one update ----------------------------------------------------------
    def propose(self, params: np.ndarray, grads: np.ndarray, sq_norm: float | None = None) -> np.ndarray:
        """The update ``u`` (new parameters are ``params - u``) and the state
        that follows it, without changing the current state.

        ``grads`` may be scaled in place (``clipnorm``); ``sq_norm`` is its
        squared norm when the caller knows it (``inf`` when it overflowed; on
        a device a 0-d array, which clipping then uses without reading it).
        The returned array belongs to the optimizer and is valid until the
        next call.
        """
        if self._scratch is None or self._scratch.shape != params.shape:
            raise GraphError(
                f"{self.name}: bind() the optimizer to a layout of {params.size} parameters first"
            )
        if self.clipnorm is not None:
            if self._backend.deferred:
                if sq_norm is None:
                    sq_norm = self._backend.xp.dot(grads, grads)
                self._backend.scale_to_norm(grads, sq_norm, self.clipnorm)
            else:
                norm = _norm(grads, sq_norm)
                if norm > self.clipnorm:
                    grads *= self.clipnorm / norm
        # A finite sum of squares proves every gradient finite (see Trainer.update).
        self._finite_grads = isinstance(sq_norm, float) and math.isfinite(sq_norm)
        self._in_place = None
        proposed = self._proposed if self._lazy_proposal else self._proposal()
        return self._update(params, grads, self._scratch, proposed, self.current_lr())

    def _proposal(self) -> dict[str, np.ndarray]:
        """The buffers a stored proposal writes its new state into (made once;
        an optimizer whose proposals are all made at commit never needs them)."""
        if self.slot_names and not self._proposed:
            xp, size, dtype = self._backend.xp, self._scratch.size, self._scratch.dtype
            self._proposed = {name: xp.empty(size, dtype=dtype) for name in self.slot_names}
        return self._proposed

    def proposed_state_finite(self) -> bool:
        """Whether the state :meth:`propose` computed is free of NaN and inf
        (one made at commit is exactly when the step is, which is checked first)."""
        if self._in_place is not None:
            return True
        return all(bool(np.isfinite(v).all()) for v in self._proposed.values())

    def commit(self) -> None:
        """Make the proposed state current and count the iteration."""
        if self._in_place is not None:
            self._commit_in_place(self._in_place)
            self._in_place = None
        elif self.slot_names:
            self.slots, self._proposed = self._proposed, self.slots
        self.iterations += 1
        if (self.iterations % _FLUSH_EVERY == 0 and self._backend.flush_subnormals
                and self._scratch is not None and self._scratch.dtype == np.float32):
            for slot in self.slots.values():
                slot[np.abs(slot) < _FLUSH_BELOW] = 0

    def step(self, params: np.ndarray, grads: np.ndarray) -> np.ndarray:
        """:meth:`propose` then :meth:`commit`: advance the state and return the update."""
        update = self.propose(params, grads)
        self.commit()
        return update

    def _update(self, params, grads, out, proposed, lr: float) -> np.ndarray:
        raise NotImplementedError

    def _commit_in_place(self, grads: np.ndarray) -> None:
        raise NotImplementedError  # only optimizers that set _in_place

    # -- configuration and state ---------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Name and hyperparameters; ``get(config)`` rebuilds the optimizer."""
        lr = self.lr if isinstance(self.lr, float) else self.lr.get_config()
        return {"name": self.name, "lr": lr, "clipnorm": self.clipnorm}

    def get_state(self) -> dict[str, Any]:
        """Iteration count, layout and flat slot arrays (numpy, for saving)."""
        copy = self._backend.host_copy
        return {
            "iterations": self.iterations,
            "layout": [list(item) for item in (self._layout or ())],
            "slots": {k: copy(v) for k, v in self.slots.items()},
            "born": dict(self._born),
        }

    def restore_pairs(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(current, previous)`` state after :meth:`commit`: what a refused
        update on a device puts back (see :meth:`graphnet.backend.DeviceBackend.apply`)."""
        return [(self.slots[name], self._proposed[name]) for name in self.slot_names]

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
        keys = {key for key, _ in layout}
        self._born = {str(k): int(v) for k, v in state.get("born", {}).items() if k in keys and int(v)}
        to_device = self._backend.to_device
        self._install(layout, {k: to_device(np.array(v, dtype=dtype)) for k, v in slots.items()}, np.dtype(dtype))

    # -- ownership: one optimizer trains one graph ---------------------------
    def claim(self, graph) -> None:
        """Become ``graph``'s optimizer; refused while another live graph has it."""
        owner = None if self._owner is None else self._owner()
        if owner is not None and owner is not graph:
            raise GraphError(
                f"{self.name}: this optimizer already trains graph {owner.name!r}; one optimizer "
                f"keeps one set of moments, so give graph {graph.name!r} its own "
                f"(gn.optimizers.get({self.get_config()!r}), or copy.deepcopy(optimizer) to "
                "start from the same state)"
            )
        self._owner = weakref.ref(graph)

    def release(self) -> None:
        self._owner = None

    def __getstate__(self) -> dict[str, Any]:
        """A copy (``copy.deepcopy``, pickling) belongs to no graph until one takes it."""
        state = self.__dict__.copy()
        state["_owner"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("_backend", CPU)  # pickled before devices existed
        self.__dict__.update(state)

    def __repr__(self) -> str:
        params = {k: v for k, v in self.get_config().items() if k != "name" and v is not None}
        if not isinstance(self.lr, float):
            params["lr"] = self.lr
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in params.items())})"


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum.

    With momentum ``mu``: ``v <- mu v + lr g`` and ``p <- p - v``; Nesterov
    uses ``p <- p - (mu v + lr g)`` (the Keras/Sutskever form).
    """

    name = "sgd"

    def __init__(
        self,
        lr: float | None = None,
        momentum: float = 0.0,
        nesterov: bool = False,
        clipnorm: float | None = None,
        *,
        learning_rate=None,
    ):
        super().__init__(lr, clipnorm, learning_rate, default=0.01)
        momentum = _fraction("momentum", momentum, self)
        if not isinstance(nesterov, bool):
            raise GraphError(f"{self.name}: nesterov must be True or False, got {nesterov!r}")
        if nesterov and momentum == 0.0:
            raise GraphError(f"{self.name}: nesterov=True needs a momentum > 0")
        self.momentum = momentum
        self.nesterov = nesterov
        self.slot_names = ("velocity",) if momentum else ()

    def _update(self, params, grads, out, proposed, lr):
        xp = self._backend.xp
        if not self.momentum:
            return xp.multiply(grads, lr, out=out)
        velocity = xp.multiply(self.slots["velocity"], self.momentum, out=proposed["velocity"])
        xp.multiply(grads, lr, out=out)
        velocity += out
        if self.nesterov:
            out += velocity * self.momentum
            return out
        return velocity  # the update is the new velocity itself

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
        lr: float | None = None,
        momentum: float = 0.9,
        nesterov: bool = False,
        clipnorm: float | None = None,
        *,
        learning_rate=None,
    ):
        super().__init__(lr, momentum, nesterov, clipnorm, learning_rate=learning_rate)


class RMSprop(Optimizer):
    """``v <- rho v + (1 - rho) g²``, ``p <- p - lr g / (sqrt(v) + eps)`` (Keras's defaults)."""

    name = "rmsprop"
    slot_names = ("mean_square",)
    nonnegative_slots = ("mean_square",)

    def __init__(
        self,
        lr: float | None = None,
        rho: float = 0.9,
        eps: float = 1e-7,
        clipnorm: float | None = None,
        *,
        learning_rate=None,
    ):
        super().__init__(lr, clipnorm, learning_rate, default=1e-3)
        self.rho = _fraction("rho", rho, self)
        self.eps = _positive("eps", eps, self)

    def _update(self, params, grads, out, proposed, lr):
        xp = self._backend.xp
        mean_square = xp.multiply(self.slots["mean_square"], self.rho, out=proposed["mean_square"])
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


class Adam(Optimizer):
    """Adam with bias correction: ``p <- p - lr m̂ / (sqrt(v̂) + eps)``.

    The correction is folded into the step size and ``eps``, which is exactly
    the same update with two fewer passes over memory. On the CPU with the
    compiled kernels, a checked step keeps no second copy of the moments: the
    first pass writes only the step (and proves the new moments finite), the
    second, at :meth:`commit`, the moments in place, so a refused step leaves
    the state untouched at the memory cost of the moments alone (W3 of the
    benchmarks: 55 MiB at its peak, not 69).
    """

    name = "adam"
    slot_names = ("m", "v")
    nonnegative_slots = ("v",)
    _lazy_proposal = True

    def __init__(
        self,
        lr: float | None = None,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        clipnorm: float | None = None,
        *,
        learning_rate=None,
    ):
        super().__init__(lr, clipnorm, learning_rate, default=1e-3)
        self.beta1 = _fraction("beta1", beta1, self)
        self.beta2 = _fraction("beta2", beta2, self)
        self.eps = _positive("eps", eps, self)

    def bind(self, layout: Layout, dtype: np.dtype, backend=CPU) -> None:
        super().bind(layout, dtype, backend)
        # Compiled here, before the first step, where Ctrl-C cannot tear it (see graphnet._kernels).
        backend.prepare_adam(dtype)

    def _update(self, params, grads, out, proposed, lr):
        m, v = self.slots["m"], self.slots["v"]
        if self._finite_grads and grads.shape[0] >= IN_PLACE_FROM and self._step_only(grads, m, v, out, lr):
            self._in_place = grads  # the moments are made at commit: no second copy of them
            return out
        proposed = self._proposal()
        m_next, v_next = proposed["m"], proposed["v"]
        if self._runs is None:
            self._adam(grads, m, v, m_next, v_next, out, lr, self.iterations + 1)
            return out
        # Parameters that joined later have their own step count: their bias
        # correction starts over, so their first steps are not ~3x lr.
        for start, stop, born in self._runs:
            part = slice(start, stop)
            self._adam(grads[part], m[part], v[part], m_next[part], v_next[part], out[part], lr,
                       self.iterations + 1 - born)
        return out

    def _step_only(self, grads, m, v, out, lr: float) -> bool:
        """The step into ``out`` by the backend's first pass, the moments left
        as they are (a non-finite new moment makes the step non-finite, which
        the trainer refuses); False without that kernel."""
        runs = self._runs or ((0, grads.shape[0], 0),)
        for start, stop, born in runs:
            part = slice(start, stop)
            step_size, eps = self._scalars(lr, self.iterations + 1 - born)
            if not self._backend.adam_step(grads[part], m[part], v[part], out[part], self.beta1, self.beta2,
                                           step_size, eps):
                return False  # only the first run can fail: nothing written yet
        return True

    def _commit_in_place(self, grads) -> None:
        self._backend.adam_moments(grads, self.slots["m"], self.slots["v"], self.beta1, self.beta2)

    def _scalars(self, lr: float, t: int) -> tuple[float, float]:
        """The bias-corrected step size and eps of step ``t``."""
        correction2 = math.sqrt(1.0 - self.beta2**t)
        return lr * correction2 / (1.0 - self.beta1**t), self.eps * correction2

    def _adam(self, grads, m, v, m_next, v_next, out, lr: float, t: int) -> None:
        step_size, eps = self._scalars(lr, t)
        # One compiled pass when numba is installed; the same arithmetic, bit
        # for bit, as the passes below.
        if self._backend.adam(grads, m, v, m_next, v_next, out, self.beta1, self.beta2, step_size, eps):
            return
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
        lr: float | None = None,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        clipnorm: float | None = None,
        *,
        learning_rate=None,
    ):
        super().__init__(lr, beta1, beta2, eps, clipnorm, learning_rate=learning_rate)
        self.weight_decay = check_number(weight_decay, f"{self.name}: weight_decay", 0.0,
                                         expected="a finite number >= 0")

    def _update(self, params, grads, out, proposed, lr):
        out = super()._update(params, grads, out, proposed, lr)
        if self.weight_decay:
            out += params * (lr * self.weight_decay)
        return out

    def get_config(self):
        return {**super().get_config(), "weight_decay": self.weight_decay}


def _learning_rate(opt: Optimizer, lr, learning_rate, default):
    """``lr`` or its Keras name ``learning_rate`` (not both): a positive
    number, or a schedule (an instance or its config dict)."""
    if lr is not None and learning_rate is not None:
        raise GraphError(f"{opt.name}: pass lr or learning_rate (the same thing), not both")
    value = learning_rate if lr is None else lr
    if value is None:
        if default is None:
            raise GraphError(f"{opt.name}: lr must be a positive finite number or a schedule, got None")
        value = default
    if isinstance(value, (schedules.LearningRateSchedule, dict)):
        return schedules.get(value)
    return _positive("lr", value, opt)


def _positive(what: str, value: float, opt: Optimizer) -> float:
    if isinstance(value, str) or isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise GraphError(f"{opt.name}: {what} must be a number, got {value!r}")
    return check_number(value, f"{opt.name}: {what}", 0.0, low_open=True,
                        expected="a positive finite number")


def _fraction(what: str, value: float, opt: Optimizer) -> float:
    return check_number(value, f"{opt.name}: {what}", 0.0, 1.0, high_open=True,
                        expected="in [0, 1)")


def _norm(grads: np.ndarray, sq_norm: float | None) -> float:
    """The Euclidean norm, also when the sum of squares overflows."""
    if sq_norm is None:
        sq_norm = float(np.dot(grads, grads))
    if math.isfinite(sq_norm):
        return math.sqrt(sq_norm)
    scale = float(np.max(np.abs(grads)))
    scaled = grads / scale
    return scale * math.sqrt(float(np.dot(scaled, scaled)))


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
    return lookup(identifier, OPTIMIZERS, "optimizer", Optimizer, "an Optimizer")
