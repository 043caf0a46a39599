"""Array-likes that ``numpy.asarray`` would misread, met before it reads them.

Data reaches a graph as whatever the user's other libraries made. Most of it
becomes an array as it is (lists, frames' columns, torch tensors, memmaps),
but a few kinds would become the wrong one, or none, without a word:

* a torch tensor that requires grad refuses ``numpy()``; its values are read
  through ``detach()``, which leaves the user's tensor as it was;
* a scipy.sparse matrix or array becomes a 0-d array of objects (and a DOK
  one is a ``dict``, which would be read as data keyed by name);
* a masked array drops its mask, so the values under the mask would be used
  as data;
* an iterator (a generator, ``map``) becomes a 0-d array of objects, and
  reading it would consume it.

:func:`readable` turns the first into its values and refuses the others,
naming what was given and what to pass instead. Neither torch nor scipy is
imported here: each is recognised only when its module is already loaded.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping

import numpy as np

from .errors import ShapeError

__all__ = ["is_keyed", "is_sparse", "readable"]


def is_sparse(value) -> bool:
    """Whether ``value`` is a scipy.sparse matrix or array (a DOK one is also a ``dict``)."""
    sparse = sys.modules.get("scipy.sparse")
    return sparse is not None and sparse.issparse(value)


def is_keyed(value) -> bool:
    """Whether ``value`` is data keyed by name: a mapping, but not a DOK
    matrix, which is a ``dict`` of its entries."""
    return isinstance(value, Mapping) and not is_sparse(value)


#: What is read as it is without a look: the common kinds, in a call timed in microseconds.
_PLAIN = (np.ndarray, dict, list, tuple)


def readable(value, role: str, name: str | None = None):
    """``value``, or its values when it is a torch tensor that requires grad.

    Parameters
    ----------
    value : object
        One argument's data, as the user gave it.
    role : str
        What the data is for, as the messages name it (``"input"``, or the
        whole ``"sample_weight for output 'y'"``).
    name : str, optional
        The node it is for, named after ``role`` (``"input 'x'"``); the
        message is made only when one is raised.

    Raises
    ------
    ShapeError
        For a scipy.sparse matrix or array, a masked array with masked
        values, or an iterator.

    Examples
    --------
    >>> readable(np.ma.masked_array([1.0, 2.0], mask=[False, True]), "input", "x")
    Traceback (most recent call last):
    ...
    graphnet.errors.ShapeError: input 'x': got a masked array with 1 masked value of 2; graphnet reads no masks: ...
    """
    if type(value) in _PLAIN:
        return value
    what = role if name is None else f"{role} {name!r}"
    if isinstance(value, np.ndarray):
        if isinstance(value, np.ma.MaskedArray) and np.ma.is_masked(value):
            masked = int(np.ma.count_masked(value))
            imputed = (" (an input with missing='mean' or another strategy imputes the NaN of .filled(np.nan))"
                       if role.startswith("input") else "")
            raise ShapeError(
                f"{what}: got a masked array with {masked:,} masked value{'s' * (masked != 1)} of {value.size:,}; "
                f"graphnet reads no masks: pass .data to use the values under the mask, or leave the masked rows "
                f"out{imputed}"
            )
        return value
    if is_sparse(value):
        raise ShapeError(
            f"{what}: got a scipy.sparse {type(value).__name__} of shape {value.shape}; a graph reads dense "
            "arrays: pass .toarray() of it"
        )
    if isinstance(value, Iterator):
        raise ShapeError(
            f"{what}: got a {type(value).__name__}, an iterator, where an array is expected; nothing was read "
            "from it: pass an array (np.asarray(list(...)))"
        )
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor) and value.requires_grad:
        return value.detach()
    return value
