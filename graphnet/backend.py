"""The array-module seam: where a graph's arrays live and what runs on them.

A :class:`Backend` names everything the engine needs from an array library:

``xp``
    the array module (``numpy``, or ``cupy`` for ``device="cuda"``); the
    plan, activations, losses, optimizers and the parameter store take it
    from the graph instead of importing numpy at their call sites;
``special``
    the special functions the activations use (``expit``, ``erf``):
    ``scipy.special`` or ``cupyx.scipy.special`` (see :func:`special`);
``to_device`` / ``to_host``
    the explicit transfers (identities on the CPU);
fused kernels
    :meth:`Backend.adam` (numba on the CPU, when installed, see
    :mod:`graphnet._kernels`; a CuPy ``ElementwiseKernel`` on CUDA) and, for
    devices, the guarded update of :class:`DeviceBackend`.

**Host and device.** On the CPU a scalar is read for free, so training
checks every step at once and exactly (:mod:`graphnet.training`). On a
device every read of a number on the host (``float(x)``, ``bool(x)``, ...)
waits for the device to finish: a synchronisation. A backend with
:attr:`Backend.deferred` set therefore keeps the checks on the device: each
update is applied through a device-side flag (:meth:`DeviceBackend.guard`,
:meth:`DeviceBackend.apply`) that also refuses every later update of the
logging interval once one failed, and the trainer reads that flag, with
the running loss, once per interval (:mod:`graphnet._device_guard`).

Backends are made by name through :func:`get`, from a registry of
factories: ``"cpu"`` is here, ``"cuda"`` registers itself from
:mod:`graphnet._cuda` (which ``import graphnet`` imports; it imports CuPy
only when a CUDA backend is made). :func:`register` adds a name; the test
suite uses it to run the device code path on numpy (a stand-in that counts
host conversions).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from scipy import special as scipy_special

from . import _kernels
from .errors import GraphError

__all__ = ["Backend", "CPUBackend", "DeviceBackend", "CPU", "devices", "get", "get_for", "register", "special",
           "host", "ACTIVATIONS_MODULE", "LOSSES_MODULE"]

logger = logging.getLogger(__name__)


class Backend:
    """Base class: an array module and what the engine does with it."""

    #: The device name users pass (``Graph(device=...)``).
    name: str = ""
    #: Host reads are synchronisations: keep checks on the device (see the module docs).
    deferred: bool = False
    #: Zero optimizer moments below ~1e-30 now and then (a CPU trap: numpy
    #: cannot flush float32 subnormals, which then slow every pass over them).
    flush_subnormals: bool = False

    def __init__(self, xp, special_functions):
        self.xp = xp
        self.special = special_functions
        _SPECIAL[xp] = special_functions

    # -- arrays --------------------------------------------------------------
    def is_array(self, value) -> bool:
        """Whether ``value`` is an array of this backend's module."""
        return isinstance(value, self.xp.ndarray)

    def to_device(self, array):
        """``array`` (numpy, or already this backend's) as this backend's array."""
        raise NotImplementedError

    def to_host(self, array) -> np.ndarray:
        """``array`` as a numpy array: an explicit transfer from the device."""
        raise NotImplementedError

    def host_copy(self, array) -> np.ndarray:
        """A numpy array of ``array``'s values that shares nothing with it."""
        raise NotImplementedError

    def fits(self, nbytes: int) -> bool:
        """Whether ``nbytes`` of training data can be moved to the device at once."""
        return True

    def take(self, array, index, out):
        """Rows ``index`` of ``array`` written into ``out`` (a batch gather)."""
        return self.xp.take(array, index, axis=0, out=out)

    def scatter_rows(self, out, index, values) -> None:
        """``out`` set to zero, then ``values[i]`` added into row ``index[i]``
        for every ``i`` (repeated rows add up): the gradient of a row gather,
        an embedding table's."""
        out.fill(0)
        self.xp.add.at(out, index, values)

    # -- randomness (dropout masks) ------------------------------------------
    def dropout_rng(self, graph):
        """The generator dropout masks are drawn from."""
        return graph.rng

    def uniform(self, rng, out) -> None:
        """Fill ``out`` with uniform draws in [0, 1) from ``rng``."""
        rng.random(out=out, dtype=out.dtype)

    # -- kernels -------------------------------------------------------------
    def prepare_adam(self, dtype) -> None:
        """Make the fused Adam passes for ``dtype`` ready before training
        starts (see :func:`graphnet._kernels.prepare`); nothing where there are none."""

    def adam(self, grads, m, v, m_next, v_next, out, beta1, beta2, step_size, eps) -> bool:
        """One fused Adam pass (see :func:`graphnet._kernels.adam`); returns
        whether it ran (else the optimizer makes its plain passes)."""
        return False

    def adam_step(self, grads, m, v, out, beta1, beta2, step_size, eps) -> bool:
        """Adam's step without writing the moments (see
        :func:`graphnet._kernels.adam_step`); False where there is no such kernel."""
        return False

    def adam_moments(self, grads, m, v, beta1, beta2) -> None:
        """The moments in place, after :meth:`adam_step` ran and its step was accepted."""
        raise NotImplementedError

    def fused_backward(self, activation, dtype=None):
        """A one-pass ``backward(a, grad, z=None)`` for ``activation`` (in
        arrays of ``dtype``), or None (the activation's own, in ``xp``). The
        plan asks once per compile."""
        return None

    def fused_bias_activation(self, activation, dtype):
        """A one-pass ``f(z, bias)`` writing ``activation(z + bias)`` over ``z``
        (arrays of ``dtype``), or None: then the plan adds the bias and calls
        the activation. The plan asks once per compile, for a node whose ``z``
        is not kept."""
        return None

    def fused_delta(self, loss):
        """A one-pass ``delta(y, a, r=None)`` for a fused ``loss``, or None."""
        return None

    def __reduce__(self):
        # A graph pickles its backend by name: the unpickled graph asks for the
        # same device again (and gets a clear error where there is none).
        return (get, (self.name,))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


#: Tables x batch rows up to which a row scatter is a product with the one-hot batch.
_SMALL_TABLE = 1 << 15


class CPUBackend(Backend):
    """numpy and scipy; the fused Adam kernel from numba where it is installed."""

    name = "cpu"
    flush_subnormals = True

    def __init__(self):
        super().__init__(np, scipy_special)

    def to_device(self, array):
        return array

    def to_host(self, array) -> np.ndarray:
        return array

    def host_copy(self, array) -> np.ndarray:
        return array.copy()

    def take(self, array, index, out):
        # mode="clip" lets numpy write straight into ``out`` (the index is valid);
        # the method, not np.take, spares a wrapper call per array per batch.
        return array.take(index, axis=0, out=out, mode="clip")

    def scatter_rows(self, out, index, values) -> None:
        if out.shape[0] * len(index) <= _SMALL_TABLE:
            # A small table: the transposed one-hot batch (at most _SMALL_TABLE
            # elements, whatever the batch) times values is one BLAS call,
            # twice as fast as sorting at 50 rows.
            one_hot = np.zeros((out.shape[0], len(index)), out.dtype)
            one_hot[index, np.arange(len(index))] = 1
            np.dot(one_hot, values, out=out)
            return
        # Sorted, the rows of each index are adjacent and add.reduceat sums
        # them in one pass: 4-8x faster than np.add.at's element-wise loop.
        out.fill(0)
        if not len(index):
            return
        order = np.argsort(index, kind="stable")
        ordered = index[order]
        starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
        out[ordered[starts]] = np.add.reduceat(values[order], starts, axis=0)

    def prepare_adam(self, dtype) -> None:
        _kernels.prepare(dtype)

    def fused_backward(self, activation, dtype=None):
        kernels = _relu(activation, dtype)
        if kernels is None:
            return None
        relu_backward = kernels[1]

        def backward(a, grad, z=None):
            relu_backward(a, grad)
            return grad

        return backward

    def fused_bias_activation(self, activation, dtype):
        kernels = _relu(activation, dtype)
        return None if kernels is None else kernels[0]

    def adam(self, grads, m, v, m_next, v_next, out, beta1, beta2, step_size, eps) -> bool:
        return _kernels.adam(grads, m, v, m_next, v_next, out, beta1, beta2, step_size, eps)

    def adam_step(self, grads, m, v, out, beta1, beta2, step_size, eps) -> bool:
        return _kernels.adam_step(grads, m, v, out, beta1, beta2, step_size, eps)

    def adam_moments(self, grads, m, v, beta1, beta2) -> None:
        _kernels.adam_moments(grads, m, v, beta1, beta2)


class DeviceBackend(Backend):
    """A backend whose arrays live on a device: checks stay there (see the
    module docs). Every method here is written with ``xp`` operations only,
    so it runs on any module that mirrors numpy; :mod:`graphnet._cuda`
    replaces the hot ones with fused CUDA _kernels."""

    deferred = True

    def to_device(self, array):
        if self.is_array(array):
            return array
        return self.xp.asarray(array)

    def to_host(self, array) -> np.ndarray:
        if isinstance(array, np.ndarray):
            return array
        return self.xp.asnumpy(array)

    def host_copy(self, array) -> np.ndarray:
        return self.to_host(array) if self.is_array(array) else np.array(array)

    # -- the deferred checks -------------------------------------------------
    def new_status(self):
        """The interval's device status ``[failed, first failing step, why]``
        (``why``: 1 the loss, 2 the gradient, 4 the update was not finite)."""
        return self.xp.asarray(np.array([0, -1, 0], dtype=np.int32))

    def guard(self, status, loss, grad_sq, update_sq, step: int):
        """Whether the update of interval step ``step`` may land, as a device
        flag of shape (1,): its loss and the sums of squares of its gradient
        and update are finite, and no earlier step of the interval failed.
        The first failure is recorded in ``status``."""
        xp = self.xp
        bad_loss = ~xp.isfinite(loss)
        bad_grad = ~xp.isfinite(grad_sq)
        bad_update = ~xp.isfinite(update_sq)
        bad = bad_loss | bad_grad | bad_update
        failed = status[0:1] != 0
        first = bad & ~failed
        why = bad_loss.astype(np.int32) + 2 * bad_grad.astype(np.int32) + 4 * bad_update.astype(np.int32)
        status[1:2] = xp.where(first, np.int32(step), status[1:2])
        status[2:3] = xp.where(first, why, status[2:3])
        status[0:1] = (failed | bad).astype(np.int32)
        return ~(failed | bad)

    def apply(self, params, update, ok, restore=()) -> None:
        """``params -= update`` where ``ok``; where not, each ``(current,
        previous)`` pair of optimizer state gets its previous values back."""
        xp = self.xp
        params -= xp.where(ok, update, update.dtype.type(0))
        for current, previous in restore:
            current[...] = xp.where(ok, current, previous)

    def scale_to_norm(self, grads, grad_sq, clipnorm: float) -> None:
        """``clipnorm``: scale ``grads`` to norm ``clipnorm`` when it is larger
        (a factor of 1 otherwise), from their sum of squares, on the device."""
        # In float64, then rounded once, as the CPU's ``grads *= clipnorm / norm``.
        xp = self.xp
        factor = xp.minimum(1.0, clipnorm / xp.sqrt(grad_sq.astype(np.float64)))
        grads *= factor.astype(grads.dtype)


#: The module's special functions by array module (filled as backends are made).
_SPECIAL: dict = {}


def special(xp):
    """``expit``/``erf`` for array module ``xp`` (scipy's for numpy)."""
    functions = _SPECIAL.get(xp)
    if functions is None:
        functions = _SPECIAL[np] = scipy_special
    return functions


#: The modules of graphnet's own activations and losses, whose exact types
#: the kernels know (by the package's name, so that a second copy imported
#: under another name, as ``benchmarks.ab`` does, has its kernels too).
ACTIVATIONS_MODULE, LOSSES_MODULE = f"{__package__}.activations", f"{__package__}.losses"


def _relu(activation, dtype):
    """The compiled relu kernels for a node with graphnet's own ReLU (exactly:
    a subclass may change the maths), or None."""
    if dtype is None or type(activation).__module__ != ACTIVATIONS_MODULE or activation.name != "relu":
        return None
    return _kernels.relu_kernels(dtype)


#: The one CPU backend every CPU graph shares.
CPU = CPUBackend()


#: Every device by name: a factory that makes (once) its backend or raises GraphError.
_FACTORIES: dict[str, Callable[[], Backend]] = {"cpu": lambda: CPU}
_MADE: dict[str, Backend] = {"cpu": CPU}


def devices() -> list[str]:
    """The device names users may pass (``"cpu"``, ``"cuda"``, ...)."""
    return list(_FACTORIES)


def get(device) -> Backend:
    """The backend for ``device`` (``"cpu"`` or ``"cuda"``), made on first use.

    Raises
    ------
    GraphError
        For an unknown name, or ``"cuda"`` without CuPy (the message says what
        to install) or without a visible GPU.
    """
    if isinstance(device, Backend):
        return device
    if not isinstance(device, str) or device not in _FACTORIES:
        raise GraphError(f"device must be one of {devices()}, got {device!r}")
    made = _MADE.get(device)
    if made is None:
        made = _MADE[device] = _FACTORIES[device]()
        _DEVICE_TYPES[made.xp.ndarray] = made
        logger.debug("device %r: %r", device, made)
    return made


def register(name: str, factory: Callable[[], Backend]) -> Callable[[], None]:
    """Make ``name`` a device whose backend ``factory()`` makes on first use
    (or raises GraphError saying what is missing); returns the undo."""
    before_factory, before_made = _FACTORIES.get(name), _MADE.pop(name, None)
    _FACTORIES[name] = factory

    def undo() -> None:
        made = _MADE.pop(name, None)
        if made is not None:
            _DEVICE_TYPES.pop(made.xp.ndarray, None)
        if before_factory is None:
            _FACTORIES.pop(name, None)
        else:
            _FACTORIES[name] = before_factory
        if before_made is not None:
            _MADE[name] = before_made

    return undo


#: Device array types seen so far, and their backends (for :func:`host`).
_DEVICE_TYPES: dict[type, Backend] = {}


def get_for(array) -> Backend:
    """The backend whose array ``array`` is (the CPU for anything else)."""
    return _DEVICE_TYPES.get(type(array), CPU)


def host(value):
    """``value`` moved to the host when it is an array of a device backend
    in use (a user passing CuPy arrays); anything else unchanged."""
    made = _DEVICE_TYPES.get(type(value))
    return value if made is None else made.to_host(value)
