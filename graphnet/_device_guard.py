"""Checked updates on a device, read once per logging interval.

On the CPU, :meth:`graphnet.trainer.Trainer.update` reads two sums of
squares per step and decides on the host. On a GPU each such read waits for
the device to finish everything queued so far: a synchronisation per batch,
which leaves the GPU idle while Python queues the next step. So on a device
(:attr:`graphnet.backend.Backend.deferred`) a step goes like this:

1. the loss, the gradient's sum of squares and the update's sum of squares
   stay on the device (0-d arrays);
2. :meth:`~graphnet.backend.DeviceBackend.guard` turns them into a device
   flag ``ok``: all three finite, and no earlier step of the interval failed
   (the first failure is recorded in a small status array, with its step and
   what was not finite);
3. the optimizer commits as usual (its buffers swap on the host), and
   :meth:`~graphnet.backend.DeviceBackend.apply` subtracts the update where
   ``ok`` and puts the previous optimizer state back where not.

So once a step fails, it and every later step of the interval change
nothing: the weights and the optimizer's state stay those from before the
failing step. :meth:`DeviceGuard.settle`, at the end of each logging
interval, reads the status together with the running loss (one transfer),
and on a failure rewinds the iteration count to the failing step and raises
:class:`~graphnet.TrainingError` naming its epoch and batch.

What the device cannot tell without a host round trip per step, and the CPU
can: which parameter was not finite (the message names the failing step and
whether the loss, the gradient or the update went wrong), and whether a
gradient whose sum of squares overflows (values beyond ~1e19 in float32)
could still have been applied (the CPU's exact path applies it when every
value and the new state are finite; the device refuses the step).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .backend import DeviceBackend
    from .optimizers import Optimizer

__all__ = ["DeviceGuard", "Failure"]

#: What ``why`` in the status says was not finite.
_WHAT = ((1, "the loss"), (2, "the gradient"), (4, "the update"))


class Failure:
    """The first refused step of an interval: where it was and what went wrong."""

    def __init__(self, where, why: int):
        self.where = where
        self.why = why

    def describe(self, optimizer_name: str) -> str:
        """Which of the loss, the gradient and the update were not finite
        (the status's bits tell each), and the sums of squares that may
        have overflowed instead, in one parenthesis."""
        parts = [what for bit, what in _WHAT if self.why & bit]
        what = (", ".join(parts[:-1]) + " and " + parts[-1]) if len(parts) > 1 else (parts or ["the step"])[0]
        sums = {"the gradient": "the gradient's", "the update": f"{optimizer_name}'s update's"}
        overflowed = [sums[p] for p in parts if p in sums]
        note = f" (or {' or '.join(overflowed)} sum of squares overflowed)" if overflowed else ""
        return f"{what} {'was' if len(parts) < 2 else 'were'} not finite{note}"


class DeviceGuard:
    """The device status of the current logging interval (see the module docs)."""

    def __init__(self, backend: DeviceBackend):
        self.backend = backend
        self._status = None
        self._wheres: list = []
        self._iterations = 0

    @property
    def pending(self) -> int:
        """Steps guarded since the last :meth:`settle`."""
        return len(self._wheres)

    def guard(self, optimizer: Optimizer, loss, grad_sq, update_sq, where):
        """The device flag for the next step's update (see
        :meth:`~graphnet.backend.DeviceBackend.guard`); ``where`` names the
        step in messages."""
        if self._status is None:
            self._status = self.backend.new_status()
            self._iterations = optimizer.iterations
        ok = self.backend.guard(self._status, loss, grad_sq, update_sq, len(self._wheres))
        self._wheres.append(where)
        return ok

    def settle(self, optimizer: Optimizer, *values) -> tuple[Failure | None, list[float]]:
        """Read the interval's status and ``values`` (0-d device arrays or
        floats) in one transfer; start a new interval.

        Returns the interval's first failure (None when every step landed),
        with the optimizer's iteration count rewound to before it, and the
        values as floats.
        """
        xp = self.backend.xp
        status = self._status
        if status is None:
            status = xp.zeros(3, dtype=np.float64)
        parts = [status.astype(np.float64)]
        parts += [xp.asarray(v, dtype=np.float64).reshape(1) for v in values]
        read = self.backend.to_host(xp.concatenate(parts)).tolist()
        failed, first, why = int(read[0]), int(read[1]), int(read[2])
        wheres, start = self._wheres, self._iterations
        self._status, self._wheres = None, []
        if not failed:
            return None, read[3:]
        optimizer.iterations = start + first  # the failing step and every later one never landed
        return Failure(wheres[first], why), read[3:]
