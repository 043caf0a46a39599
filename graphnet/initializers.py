"""Weight initialisers: functions of ``(shape, rng, dtype)``, looked up by name.

A synapse's weight has shape ``(fan_in, fan_out) = (src.size, dst.size)``.
The default is chosen by the destination's activation (:func:`default_for`):
He-normal for the relu family, Glorot-uniform otherwise. Normals are plain
(not truncated), as in PyTorch's ``kaiming_normal_``/``xavier_normal_``.

Every draw is made in float64 and then cast, so the initial weights depend on
the seed and the shapes only: a float32 graph starts from its float64 twin's
weights, rounded.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .activations import Activation
from .errors import GraphError

__all__ = [
    "he_normal",
    "he_uniform",
    "glorot_normal",
    "glorot_uniform",
    "zeros",
    "INITIALIZERS",
    "get",
    "default_for",
]

Initializer = Callable[[tuple[int, int], np.random.Generator, np.dtype], np.ndarray]


def _uniform(shape, rng, dtype, limit: float) -> np.ndarray:
    w = rng.random(shape)  # drawn in float64 whatever the dtype (see the module docs)
    w *= 2 * limit
    w -= limit
    return w.astype(dtype, copy=False)


def _normal(shape, rng, dtype, std: float) -> np.ndarray:
    w = rng.standard_normal(shape)
    w *= std
    return w.astype(dtype, copy=False)


def he_normal(shape, rng, dtype):
    """Normal with std ``sqrt(2 / fan_in)``: keeps relu activations' variance."""
    return _normal(shape, rng, dtype, np.sqrt(2.0 / shape[0]))


def he_uniform(shape, rng, dtype):
    """Uniform on ``±sqrt(6 / fan_in)``."""
    return _uniform(shape, rng, dtype, np.sqrt(6.0 / shape[0]))


def glorot_normal(shape, rng, dtype):
    """Normal with std ``sqrt(2 / (fan_in + fan_out))``."""
    return _normal(shape, rng, dtype, np.sqrt(2.0 / (shape[0] + shape[1])))


def glorot_uniform(shape, rng, dtype):
    """Uniform on ``±sqrt(6 / (fan_in + fan_out))``: Keras's default."""
    return _uniform(shape, rng, dtype, np.sqrt(6.0 / (shape[0] + shape[1])))


def zeros(shape, rng, dtype):
    """All zeros (draws nothing from ``rng``)."""
    return np.zeros(shape, dtype=dtype)


#: Every initialiser by the name users pass as ``init=``.
INITIALIZERS: dict[str, Initializer] = {
    f.__name__: f for f in (he_normal, he_uniform, glorot_normal, glorot_uniform, zeros)
}


def get(name: str) -> Initializer:
    """The initialiser called ``name``.

    Raises
    ------
    GraphError
        For an unknown name; the message lists the known ones.
    """
    init = INITIALIZERS.get(name) if isinstance(name, str) else None
    if init is None:
        raise GraphError(f"unknown initializer {name!r}; known: {sorted(INITIALIZERS)}")
    return init


def default_for(activation: Activation) -> str:
    """He-normal for the relu family, Glorot-uniform for everything else."""
    return "he_normal" if activation.relu_family else "glorot_uniform"
