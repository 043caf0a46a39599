"""A stand-in for CuPy, for the test suite only: numpy behind a wall.

CI has no GPU, yet the device code path (deferred checks, masked updates,
transfers, batches sliced on the device) must run there. This module plays
CuPy's part: :class:`DeviceArray` wraps a numpy array and lets it be used
only the way CuPy arrays can be used without a synchronisation:

* arithmetic, slicing, in-place operators, methods (``sum``, ``astype``,
  ...) and the functions of the module object :data:`xp` give device arrays
  again (reductions give 0-d arrays, as CuPy's do);
* mixing one with a numpy array raises ``TypeError`` (CuPy refuses it too),
  and numpy's own functions refuse it (``__array_ufunc__ = None``);
* every *implicit* conversion to the host (``float(x)``, ``int(x)``,
  ``bool(x)``, ``x.item()``, ``x.tolist()``, ``np.asarray(x)``, iterating)
  raises :class:`ImplicitTransfer`: on a GPU each would be a hidden
  synchronisation;
* the explicit transfers, ``xp.asnumpy`` (device to host) and ``xp.asarray``
  of a numpy array (host to device), are counted in :data:`COUNTS`;
* keyword arguments CuPy lacks (``where=`` in ufuncs, ``mode=`` in ``take``)
  are refused, so code that passes here also runs on CuPy.

:func:`backend` makes a :class:`graphnet.backend.DeviceBackend` on it, which
the tests register as a device of their own (``graphnet.backend.register``);
nothing in the library knows of it.
"""

from __future__ import annotations

import collections
import types

import numpy as np
from scipy import special as scipy_special

from graphnet.backend import DeviceBackend

__all__ = ["DeviceArray", "ImplicitTransfer", "COUNTS", "xp", "backend", "StandinBackend"]

#: Explicit transfers so far: ``"to_host"`` and ``"to_device"`` (and, when
#: not :data:`STRICT`, the implicit ones as ``"implicit"``).
COUNTS: collections.Counter = collections.Counter()
#: Refuse implicit host reads (the default); False counts them instead, for
#: code that is allowed to synchronise (the benchmark's naive CuPy trainer).
STRICT = True


class ImplicitTransfer(AssertionError):
    """A device array was read on the host without an explicit transfer."""


def _refuse(what: str, convert=None):
    def method(self, *args, **kwargs):
        if not STRICT and convert is not None:
            COUNTS["implicit"] += 1
            return convert(self._a, *args, **kwargs)
        raise ImplicitTransfer(f"implicit device-to-host conversion: {what} of a device array "
                               f"of shape {self._a.shape}")

    return method


def _unwrap(value):
    if isinstance(value, DeviceArray):
        return value._a
    if isinstance(value, np.ndarray):
        raise TypeError(f"a numpy array of shape {value.shape} mixed with device arrays "
                        "(CuPy refuses this too: send it with xp.asarray first)")
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v) for v in value)
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    return value


def _wrap(value):
    if isinstance(value, np.ndarray):
        return DeviceArray(value)
    if isinstance(value, np.generic):  # CuPy's reductions give 0-d arrays, not scalars
        return DeviceArray(np.asarray(value))
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def _binary(name: str):
    def method(self, other):
        return _wrap(getattr(self._a, name)(_unwrap(other)))

    return method


def _inplace(name: str):
    def method(self, other):
        getattr(self._a, name)(_unwrap(other))
        return self

    return method


class DeviceArray:
    """A numpy array that pretends to live on a GPU (see the module docs)."""

    __slots__ = ("_a",)
    __array_ufunc__ = None  # numpy's functions refuse it, as they cannot read a GPU's memory
    __hash__ = None

    def __init__(self, array: np.ndarray):
        self._a = array

    # metadata, free on a GPU too
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    T = property(lambda self: DeviceArray(self._a.T))

    def __len__(self) -> int:
        return len(self._a)

    # the hidden synchronisations
    __float__ = _refuse("float()", float)
    __int__ = _refuse("int()", int)
    __index__ = _refuse("an index")
    __bool__ = _refuse("bool()", bool)
    __complex__ = _refuse("complex()")
    __iter__ = _refuse("iterating")
    __array__ = _refuse("np.asarray()")
    item = _refuse(".item()")
    tolist = _refuse(".tolist()")
    __format__ = _refuse("formatting")

    def __array_function__(self, func, types, args, kwargs):
        raise ImplicitTransfer(f"numpy.{func.__name__} called on a device array (use xp)")

    def __repr__(self) -> str:
        return f"DeviceArray({self._a!r})"

    def __reduce__(self):
        return (DeviceArray, (self._a.copy(),))

    def __getitem__(self, key):
        return _wrap(self._a[_unwrap(key)])

    def __setitem__(self, key, value):
        self._a[_unwrap(key)] = _unwrap(value)

    def __getattr__(self, name):
        if name.startswith("__"):  # __array_interface__, the buffer protocol, ...: no way around the wall
            raise AttributeError(name)
        attribute = getattr(self._a, name)
        if not callable(attribute):
            return _wrap(attribute)

        def method(*args, **kwargs):
            return _wrap(attribute(*_unwrap(args), **_unwrap(kwargs)))

        return method

    def __neg__(self):
        return DeviceArray(-self._a)

    def __pos__(self):
        return DeviceArray(+self._a)

    def __abs__(self):
        return DeviceArray(abs(self._a))

    def __invert__(self):
        return DeviceArray(~self._a)


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor"):
    setattr(DeviceArray, f"__{_name}__", _binary(f"__{_name}__"))
    setattr(DeviceArray, f"__r{_name}__", _binary(f"__r{_name}__"))
    setattr(DeviceArray, f"__i{_name}__", _inplace(f"__i{_name}__"))
for _name in ("lt", "le", "gt", "ge", "eq", "ne"):
    setattr(DeviceArray, f"__{_name}__", _binary(f"__{_name}__"))


def _function(name: str, func):
    is_ufunc = isinstance(func, np.ufunc)

    def call(*args, **kwargs):
        if is_ufunc and "where" in kwargs:
            raise TypeError(f"xp.{name}: CuPy's ufuncs take no where=")
        if name == "take" and "mode" in kwargs:
            raise TypeError("xp.take: CuPy's take has no mode=")
        return _wrap(func(*_unwrap(args), **_unwrap(kwargs)))

    call.__name__ = name
    if is_ufunc:  # CuPy's ufuncs have .at too (the row scatter of an embedding's gradient)
        call.at = lambda a, index, b: func.at(*_unwrap((a, index, b)))
    return call


class _Module(types.ModuleType):
    """The stand-in's ``xp``: numpy's functions on device arrays."""

    ndarray = DeviceArray

    def __getattr__(self, name):
        func = getattr(np, name)
        if not callable(func) or isinstance(func, type):
            return func  # dtypes and constants
        wrapped = _function(name, func)
        setattr(self, name, wrapped)
        return wrapped

    @staticmethod
    def asarray(value, dtype=None):
        if isinstance(value, DeviceArray):
            return value if dtype is None else DeviceArray(value._a.astype(dtype, copy=False))
        if isinstance(value, np.ndarray):
            COUNTS["to_device"] += 1
            return DeviceArray(np.array(value, dtype=dtype))
        return DeviceArray(np.asarray(value, dtype=dtype))  # a Python scalar or list

    @staticmethod
    def asnumpy(value) -> np.ndarray:
        COUNTS["to_host"] += 1
        return np.array(value._a)


#: The stand-in's array module (what ``cupy`` is on a GPU).
xp = _Module("standin_xp")

#: Its special functions (``cupyx.scipy.special`` on a GPU).
special = types.SimpleNamespace(
    expit=_function("expit", scipy_special.expit), erf=_function("erf", scipy_special.erf)
)


class StandinBackend(DeviceBackend):
    """The device code path on the stand-in module; dropout masks are drawn
    on the graph's own (host) generator, as if by a device generator."""

    name = "standin"

    def __init__(self, fits: bool = True):
        super().__init__(xp, special)
        self.data_fits = fits

    def fits(self, nbytes: int) -> bool:
        return self.data_fits

    def uniform(self, rng, out) -> None:
        rng.random(out=out._a, dtype=out.dtype)


def backend(fits: bool = True) -> StandinBackend:
    return StandinBackend(fits)
