"""The checks of an optimizer's hyper-parameters: its learning rate (a
number or a schedule), and the numbers each update rule takes. A message
names the optimizer and the hyper-parameter."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import schedules
from ._validation import check_number
from .errors import GraphError

if TYPE_CHECKING:
    from ._optimizer_state import Optimizer

__all__ = ["resolve_lr", "positive", "fraction"]


def resolve_lr(opt: Optimizer, lr, learning_rate, default):
    """``lr`` or its Keras name ``learning_rate`` (not both): a finite number
    >= 0 (0 trains nothing, as in Keras and PyTorch: a fit that only
    measures), or a schedule (an instance or its config dict)."""
    if lr is not None and learning_rate is not None:
        raise GraphError(f"{opt.name}: pass lr or learning_rate (the same thing), not both")
    value = learning_rate if lr is None else lr
    if value is None:
        if default is None:
            raise GraphError(f"{opt.name}: lr must be a finite number >= 0 or a schedule, got None")
        value = default
    if isinstance(value, (schedules.LearningRateSchedule, dict)):
        return schedules.get(value)
    return positive("lr", value, opt, zero=True)


def positive(what: str, value: float, opt: Optimizer, zero: bool = False) -> float:
    """``value`` as a positive finite float (or 0, with ``zero``), or a
    GraphError naming the optimizer and ``what``."""
    if isinstance(value, str) or isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise GraphError(f"{opt.name}: {what} must be a number, got {value!r}")
    return check_number(value, f"{opt.name}: {what}", 0.0, low_open=not zero,
                        expected="a finite number >= 0" if zero else "a positive finite number")


def fraction(what: str, value: float, opt: Optimizer) -> float:
    """``value`` as a float in [0, 1), or a GraphError naming the optimizer and ``what``."""
    return check_number(value, f"{opt.name}: {what}", 0.0, 1.0, high_open=True,
                        expected="in [0, 1)")
