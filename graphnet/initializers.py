"""Weight initialisers: functions of ``(shape, rng, dtype)``, looked up by name.

A synapse's weight has shape ``(src.size, dst.size)``, but an initialiser is
drawn on the destination's whole fan-in: the graph draws one
``(fan_in, dst.size)`` matrix per node, ``fan_in`` being the sum of its
sources' sizes, and gives each synapse its rows (see ``Graph.connect``).

The default (:func:`default_for`) is :func:`fan_in_uniform`: PyTorch's
``nn.Linear`` initialisation, weights and bias uniform on ``±1/sqrt(fan_in)``.
A tanh node gets :func:`normalized_uniform` (Glorot and Bengio's, bias drawn
too, as scikit-learn's MLP), and a linear output (a regression head)
:func:`small_uniform`, a tenth of fan_in_uniform's weights and a zero bias,
so that its first predictions sit near zero, the mean of standardised
targets, instead of adding noise to them. All three were chosen with the
quality panel (``python -m benchmarks.quality``; see the README's
Performance section): with each library's defaults on eight small problems,
He-normal's variance ``2/fan_in`` (six times PyTorch's ``1/(3 fan_in)``)
learnt measurably worse than the best of PyTorch, Keras and scikit-learn on
six of them; the small head lowered the forecaster's test error by 13% on 20
seeds. Initialisers that draw a bias too are listed in :data:`BIASES`; every
other one leaves biases at zero, as Keras does. Normals are plain (not truncated), as in PyTorch's
``kaiming_normal_``/``xavier_normal_``.

Every draw is made in float64 and then cast, so the initial weights depend on
the seed and the shapes only: a float32 graph starts from its float64 twin's
weights, rounded.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._text import shown, suggestion
from .activations import Activation
from .errors import GraphError

__all__ = [
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "lecun_uniform",
    "fan_in_uniform",
    "small_uniform",
    "normalized_uniform",
    "glorot_normal",
    "glorot_uniform",
    "zeros",
    "INITIALIZERS",
    "get",
    "default_for",
]

Initializer = Callable[[tuple[int, int], np.random.Generator, np.dtype], np.ndarray]


def _fan(shape, fan_in) -> int:
    """The fan-in a draw is scaled by: ``shape[0]`` unless given. A node fed
    by a categorical input gets one row of that input's table per sample,
    so the graph counts such an input once (see ``graphnet._lazy_init``)."""
    return shape[0] if fan_in is None else fan_in


def _uniform(shape, rng, dtype, limit: float) -> np.ndarray:
    w = rng.random(shape)  # drawn in float64 whatever the dtype (see the module docs)
    w *= 2 * limit
    w -= limit
    return w.astype(dtype, copy=False)


def _normal(shape, rng, dtype, std: float) -> np.ndarray:
    w = rng.standard_normal(shape)
    w *= std
    return w.astype(dtype, copy=False)


#: What every initialiser takes: the Parameters section :func:`_draws` gives each one's docstring.
_DRAW_PARAMETERS = """
    Parameters
    ----------
    shape : tuple of int
        ``(rows, units)``: the rows of every synapse into the node together, and its units.
    rng : numpy.random.Generator
        The generator the weights are drawn from.
    dtype : numpy.dtype
        The dtype of the weights (the draw is made in float64 and cast).
    fan_in : int, optional
        The fan-in the draw is scaled by, where it is not ``shape[0]`` (a
        categorical input's table counts once); None (the default) for ``shape[0]``.
"""


def _draws(initializer):
    """``initializer`` with :data:`_DRAW_PARAMETERS` after its own docstring
    (none under ``python -OO``, which drops docstrings)."""
    if initializer.__doc__ is not None:
        initializer.__doc__ = initializer.__doc__.rstrip() + "\n" + _DRAW_PARAMETERS
    return initializer


@_draws
def he_normal(shape, rng, dtype, fan_in=None):
    """Normal with std ``sqrt(2 / fan_in)``: keeps relu activations' variance."""
    return _normal(shape, rng, dtype, np.sqrt(2.0 / _fan(shape, fan_in)))


@_draws
def he_uniform(shape, rng, dtype, fan_in=None):
    """Uniform on ``±sqrt(6 / fan_in)``."""
    return _uniform(shape, rng, dtype, np.sqrt(6.0 / _fan(shape, fan_in)))


@_draws
def lecun_normal(shape, rng, dtype, fan_in=None):
    """Normal with std ``sqrt(1 / fan_in)`` (LeCun et al., 1998, "Efficient BackProp")."""
    return _normal(shape, rng, dtype, np.sqrt(1.0 / _fan(shape, fan_in)))


@_draws
def lecun_uniform(shape, rng, dtype, fan_in=None):
    """Uniform on ``±sqrt(3 / fan_in)``: variance ``1 / fan_in``, as :func:`lecun_normal`."""
    return _uniform(shape, rng, dtype, np.sqrt(3.0 / _fan(shape, fan_in)))


@_draws
def fan_in_uniform(shape, rng, dtype, fan_in=None):
    """Uniform on ``±1 / sqrt(fan_in)``: variance ``1 / (3 fan_in)``.

    The "standard" initialisation of Glorot and Bengio (2010, eq. 1), and the
    default of PyTorch's ``nn.Linear`` (``kaiming_uniform_`` with ``a=sqrt(5)``),
    Equinox's and MLX's ``Linear``.
    """
    return _uniform(shape, rng, dtype, 1.0 / np.sqrt(_fan(shape, fan_in)))


def fan_in_uniform_bias(fan_in, size, rng, dtype):
    """The bias :func:`fan_in_uniform` draws with its weights: uniform on ``±1 / sqrt(fan_in)``."""
    return _uniform((size,), rng, dtype, 1.0 / np.sqrt(fan_in))


@_draws
def small_uniform(shape, rng, dtype, fan_in=None):
    """Uniform on ``±0.1 / sqrt(fan_in)`` (a tenth of :func:`fan_in_uniform`), bias left at zero.

    The default of a linear output: a regression head that starts near zero
    predicts about the mean of standardised targets from the first step (the
    idea of a zero-initialised head), while its weights stay distinct, so the
    layers below get a gradient from the first step. On softmax and
    sigmoid outputs the panel measured no such gain (breast cancer lost 0.5
    points), so they keep :func:`fan_in_uniform`.
    """
    return _uniform(shape, rng, dtype, 0.1 / np.sqrt(_fan(shape, fan_in)))


@_draws
def glorot_normal(shape, rng, dtype, fan_in=None):
    """Normal with std ``sqrt(2 / (fan_in + fan_out))``."""
    return _normal(shape, rng, dtype, np.sqrt(2.0 / (_fan(shape, fan_in) + shape[1])))


@_draws
def glorot_uniform(shape, rng, dtype, fan_in=None):
    """Uniform on ``±sqrt(6 / (fan_in + fan_out))``: Keras's default."""
    return _uniform(shape, rng, dtype, np.sqrt(6.0 / (_fan(shape, fan_in) + shape[1])))


@_draws
def normalized_uniform(shape, rng, dtype, fan_in=None):
    """Glorot and Bengio's "normalized initialization" (2010, eq. 16), derived for
    tanh: the weights of :func:`glorot_uniform`, and the bias drawn on the same
    bound (:func:`normalized_uniform_bias`), as scikit-learn's MLP does.

    The default of tanh nodes: on the panel's two tanh nets it beat
    :func:`fan_in_uniform` on two separate sets of 20 seeds (four-class
    accuracy +0.008, the forecaster's MSE -3%).
    """
    return glorot_uniform(shape, rng, dtype, fan_in)


def normalized_uniform_bias(fan_in, size, rng, dtype):
    """The bias :func:`normalized_uniform` draws with its weights: uniform on ``±sqrt(6 / (fan_in + size))``."""
    return _uniform((size,), rng, dtype, np.sqrt(6.0 / (fan_in + size)))


def zeros(shape, rng, dtype, fan_in=None):
    """All zeros (draws nothing from ``rng``).

    Parameters
    ----------
    shape : tuple of int
        ``(rows, units)``: the rows of every synapse into the node together, and its units.
    rng : numpy.random.Generator
        Unused: zeros draw nothing.
    dtype : numpy.dtype
        The dtype of the weights (the draw is made in float64 and cast).
    fan_in : int, optional
        Unused.
    """
    return np.zeros(shape, dtype=dtype)


#: Every initialiser by the name users pass as ``init=``.
INITIALIZERS: dict[str, Initializer] = {
    f.__name__: f
    for f in (he_normal, he_uniform, lecun_normal, lecun_uniform, fan_in_uniform, small_uniform, normalized_uniform,
              glorot_normal, glorot_uniform, zeros)
}


#: Initialisers that draw the bias of the node their weights feed too, by name:
#: ``f(fan_in, size, rng, dtype)``. Every other initialiser leaves biases at zero.
BIASES: dict[str, Callable] = {"fan_in_uniform": fan_in_uniform_bias, "normalized_uniform": normalized_uniform_bias}


def get(name: str, where: str = "") -> Initializer:
    """The initialiser called ``name``.

    Parameters
    ----------
    name : str
        A key of :data:`INITIALIZERS` (``"he_uniform"``, ...).
    where : str, default ""
        What messages name as the argument that gave it (``"Dense 'd': init"``).

    Raises
    ------
    GraphError
        For an unknown name; the message lists the known ones.
    """
    init = INITIALIZERS.get(name) if isinstance(name, str) else None
    if init is None:
        raise GraphError(f"{where}{': ' if where else ''}unknown initializer {shown(name)}; known: "
                         f"{sorted(INITIALIZERS)}{suggestion(name, INITIALIZERS)}")
    return init


def default_for(activation: Activation, output: bool = False) -> str:
    """The initialiser a synapse into a node with ``activation`` gets by default:
    :func:`small_uniform` into a linear ``Output`` (``output=True``),
    :func:`normalized_uniform` into a tanh node, :func:`fan_in_uniform`
    everywhere else.

    Chosen from the quality panel: fan_in_uniform learnt best of the
    candidates for relu layers (He-normal, He-uniform, Glorot-uniform,
    LeCun-uniform, each with zero or drawn biases), Glorot and Bengio's
    normalized initialisation with drawn biases did better for tanh, and a
    small regression head did better or as well on every regression task
    (diabetes, friedman1, three targets, the forecaster).

    Parameters
    ----------
    activation : Activation
        The activation of the node the synapse feeds.
    output : bool, default False
        Whether that node is an ``Output``.

    Returns
    -------
    str
        The initialiser's name, a key of :data:`INITIALIZERS`.
    """
    if output and activation.name == "linear":
        return "small_uniform"
    if activation.name == "tanh":
        return "normalized_uniform"
    return "fan_in_uniform"
