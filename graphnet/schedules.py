"""Learning-rate schedules: any optimizer's ``lr`` may be one.

A schedule maps the optimizer's step count (the number of updates applied
before this one, so the first update sees 0) to a learning rate. The
formulas and argument names are Keras's (``keras.optimizers.schedules``), so
a Keras user's schedule gives the same rates here; the tests compare them
value by value.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from . import _protocols
from ._registry import add_family, lookup
from ._settings import Checked
from ._validation import check_bool, check_int, check_number
from .errors import GraphError

__all__ = [
    "LearningRateSchedule",
    "ExponentialDecay",
    "CosineDecay",
    "PiecewiseConstantDecay",
    "SCHEDULES",
    "get",
    "check_class",
]


class LearningRateSchedule(Checked):
    """Base class: ``schedule(step) -> learning rate``; ``get_config()`` is
    what model files store and :func:`get` rebuilds from. graphnet's
    schedules refuse a ``step`` that is not an integer >= 0 (a GraphError)."""

    name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__module__ != __name__:  # a user's get_config may leave out the name (graphnet._protocols)
            _protocols.adapt_config(cls)

    def __call__(self, step: int) -> float:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """``{"name": ..., **parameters}``: write it in a subclass for its
        schedule to be saved (a model file, a checkpoint) and shown.

        Raises
        ------
        GraphError
            In this base class: a subclass without it cannot be saved.
        """
        raise GraphError(f"learning-rate schedule {type(self).__name__} has no get_config(): write one returning "
                         "{'name': ..., **parameters} for it to be saved (and register the class, or pass it in "
                         "custom_objects, to load it)")

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        try:
            return isinstance(other, LearningRateSchedule) and self.get_config() == other.get_config()
        except GraphError:  # one without a config equals itself only
            return False

    def __repr__(self) -> str:
        try:
            config = self.get_config()
        except GraphError:
            config = {}
        params = ", ".join(f"{k}={v!r}" for k, v in config.items() if k != "name")
        return f"{type(self).__name__}({params})"


class ExponentialDecay(LearningRateSchedule):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)``; with
    ``staircase`` the exponent is floored, so the rate falls in steps.

    Parameters
    ----------
    initial_learning_rate : float
        The rate at step 0, a positive finite number.
    decay_steps : int
        The steps over which the rate is multiplied by ``decay_rate`` once, >= 1.
    decay_rate : float
        The factor per ``decay_steps``, > 0 (above 1 the rate grows).
    staircase : bool, default False
        Floor ``step / decay_steps``, so the rate changes every ``decay_steps`` steps.
    """

    name = "exponential_decay"

    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float,
                 staircase: bool = False):
        self.initial_learning_rate = _rate("initial_learning_rate", initial_learning_rate, self)
        self.decay_steps = check_int(decay_steps, f"{self.name}: decay_steps")
        self.decay_rate = check_number(decay_rate, f"{self.name}: decay_rate", 0.0, low_open=True)
        self.staircase = _flag("staircase", staircase, self)

    def __call__(self, step: int) -> float:
        try:
            exponent = _step(step, self) / self.decay_steps
        except OverflowError:  # a step beyond float64's range
            exponent = math.inf
        if self.staircase and math.isfinite(exponent):
            exponent = math.floor(exponent)
        try:
            return self.initial_learning_rate * self.decay_rate**exponent
        except OverflowError:  # a growing rate past float64's range: inf, as Keras gives
            return math.inf

    def get_config(self):
        return {"name": self.name, "initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase}


class CosineDecay(LearningRateSchedule):
    """Cosine decay from ``initial_learning_rate`` to ``alpha`` times it over
    ``decay_steps``, optionally after a linear warm-up of ``warmup_steps`` to
    ``warmup_target`` (the decay then starts from ``warmup_target``), as in
    Keras 3.

    Parameters
    ----------
    initial_learning_rate : float
        The rate at step 0, a finite number >= 0 (> 0 without a warm-up).
    decay_steps : int
        The steps the cosine decay takes, >= 1 (after the warm-up, if any).
    alpha : float, default 0.0
        The final rate as a fraction of the peak, in [0, 1].
    warmup_target : float, optional
        The rate the warm-up climbs to, a positive finite number; None (the
        default) for no warm-up.
    warmup_steps : int, default 0
        The steps of the linear warm-up, >= 0; more than 0 needs a ``warmup_target``.
    """

    name = "cosine_decay"

    def __init__(self, initial_learning_rate: float, decay_steps: int, alpha: float = 0.0,
                 warmup_target: float | None = None, warmup_steps: int = 0):
        self.initial_learning_rate = check_number(
            initial_learning_rate, f"{self.name}: initial_learning_rate", 0.0)
        self.decay_steps = check_int(decay_steps, f"{self.name}: decay_steps")
        self.alpha = check_number(alpha, f"{self.name}: alpha", 0.0, 1.0)
        self.warmup_target = None if warmup_target is None else _rate("warmup_target", warmup_target, self)
        self.warmup_steps = check_int(warmup_steps, f"{self.name}: warmup_steps", low=0)
        if self.warmup_steps and self.warmup_target is None:
            raise GraphError(f"{self.name}: warmup_steps={self.warmup_steps} needs a warmup_target")
        if self.warmup_target is None and self.initial_learning_rate == 0:
            raise GraphError(f"{self.name}: initial_learning_rate must be > 0 without a warm-up")

    def __call__(self, step: int) -> float:
        step = _step(step, self)
        if self.warmup_target is None:
            peak = self.initial_learning_rate
        else:
            if step < self.warmup_steps:
                done = step / self.warmup_steps
                return self.initial_learning_rate + done * (self.warmup_target - self.initial_learning_rate)
            peak = self.warmup_target
            step -= self.warmup_steps
        done = min(step, self.decay_steps) / self.decay_steps
        cosine = 0.5 * (1.0 + math.cos(math.pi * done))
        return peak * ((1.0 - self.alpha) * cosine + self.alpha)

    def get_config(self):
        return {"name": self.name, "initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha,
                "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while ``step <= boundaries[0]``, ``values[1]`` while
    ``step <= boundaries[1]``, ..., ``values[-1]`` after the last boundary.

    Parameters
    ----------
    boundaries : sequence of int
        The steps at which the rate changes, increasing, each >= 0 (a list, a
        tuple or a 1-D numpy array).
    values : sequence of float
        The rates, positive finite numbers: one more than ``boundaries``.
    """

    name = "piecewise_constant_decay"

    def __init__(self, boundaries, values):
        boundaries, values = _sequence("boundaries", boundaries, self), _sequence("values", values, self)
        if len(values) != len(boundaries) + 1:
            raise GraphError(f"{self.name}: needs one more value than boundaries, got "
                             f"{len(boundaries)} boundaries and {len(values)} values")
        self.boundaries = [check_int(b, f"{self.name}: boundaries[{i}]", low=0) for i, b in enumerate(boundaries)]
        if self.boundaries != sorted(set(self.boundaries)):
            raise GraphError(f"{self.name}: boundaries must increase, got {self.boundaries}")
        self.values = [_rate(f"values[{i}]", v, self) for i, v in enumerate(values)]

    def __call__(self, step: int) -> float:
        step = _step(step, self)
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return value
        return self.values[-1]

    def get_config(self):
        return {"name": self.name, "boundaries": list(self.boundaries), "values": list(self.values)}


def _rate(what: str, value, schedule: LearningRateSchedule) -> float:
    return check_number(value, f"{schedule.name}: {what}", 0.0, low_open=True,
                        expected="a positive finite number")


def _flag(what: str, value, schedule: LearningRateSchedule) -> bool:
    return check_bool(value, f"{schedule.name}: {what}")


def _step(step, schedule: LearningRateSchedule) -> int:
    return check_int(step, f"{schedule.name}: step", low=0)


def _sequence(what: str, value, schedule: LearningRateSchedule) -> list:
    """A list, a tuple or a 1-D numpy array, as a list of its items."""
    if isinstance(value, np.ndarray) and value.ndim == 1:
        return list(value)
    if not isinstance(value, (list, tuple)):
        raise GraphError(f"{schedule.name}: {what} must be a list, a tuple or a 1-D array, got "
                         f"{type(value).__name__}" + (f" of shape {value.shape}" if isinstance(value, np.ndarray) else ""))
    return list(value)


#: Every schedule by its config name.
SCHEDULES: dict[str, type[LearningRateSchedule]] = {
    cls.name: cls for cls in (ExponentialDecay, CosineDecay, PiecewiseConstantDecay)
}


def get(identifier) -> LearningRateSchedule:
    """A schedule from an instance or a config dict (``{"name": ..., ...}``).

    Parameters
    ----------
    identifier : dict or LearningRateSchedule
        A config dict (``{"name": "exponential_decay", "initial_learning_rate": 0.1,
        ...}``) or an instance (returned as is); a bare name is refused, as a
        schedule has no default parameters.

    Raises
    ------
    GraphError
        For an unknown name (the message lists the known ones) or bad
        parameters, or a custom schedule whose ``get_config`` gives what no
        model file could hold (checked when it is given, not when it is saved).
    """
    if isinstance(identifier, str):
        raise GraphError(f"a learning-rate schedule needs its parameters: give a config dict, "
                         f"not the bare name {identifier!r}")
    if isinstance(identifier, LearningRateSchedule) and type(identifier).get_config is not \
            LearningRateSchedule.get_config:  # one without get_config trains, and cannot be saved (said then)
        _protocols.config(identifier, "learning-rate schedule")
    return lookup(identifier, SCHEDULES, "learning-rate schedule", LearningRateSchedule,
                  "a LearningRateSchedule")


def check_class(cls) -> None:
    """Refuse a class that cannot be a saved schedule (what registering one
    checks): not a :class:`LearningRateSchedule` subclass, no ``name``
    identifier, or ``__call__`` or ``get_config`` not written.

    Raises
    ------
    GraphError
        Saying what is missing.
    """
    if not (isinstance(cls, type) and issubclass(cls, LearningRateSchedule)):
        raise GraphError(f"a learning-rate schedule class must subclass gn.schedules.LearningRateSchedule, "
                         f"got {cls!r}")
    where = f"learning-rate schedule {cls.__name__}"
    if not isinstance(cls.name, str) or not cls.name.isidentifier():
        raise GraphError(f"{where}: set a class attribute name = '...' (an identifier), its name in model files")
    missing = [m for m in ("__call__", "get_config") if getattr(cls, m) is getattr(LearningRateSchedule, m)]
    if missing:
        raise GraphError(f"{where}: write {' and '.join(missing)} (get_config returns {{'name': ..., **parameters}})")


add_family(LearningRateSchedule, SCHEDULES, "learning-rate schedule", check_class)
