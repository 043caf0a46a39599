"""The importers' own arguments (``name``, ``input_name``, ``dtype``, ``seed``,
``loss``, flags and limits), checked before any model is read: a wrong one is
a ModelImportError naming the function and the argument, what it must be and
what it is, rather than a message about the graph the import would build."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from .. import losses
from .._text import shown
from .._validation import check_bool, check_text, is_dtype, is_int
from ..errors import GraphError, ModelImportError
from ..nodes import check_name

__all__ = ["check_arguments"]


def check_arguments(function: str, **arguments) -> None:
    """Check each of ``arguments`` (keyword: value) by its name.

    Raises
    ------
    ModelImportError
        ``"from_torch: input_name must be None or a non-empty string, got 3"``:
        the first argument that is wrong.
    """
    for argument, value in arguments.items():
        _CHECKS[argument](value, f"{function}: {argument}")


def _name(value, what: str) -> None:
    """A graph's name: what ``gn.Graph(name=...)`` takes."""
    _text(value, what, check_text, "must have no control characters and encode as UTF-8")


def _node_name(value, what: str) -> None:
    """A node's name: what ``add_input`` takes."""
    _text(value, what, check_name, "must have no '->', no control characters and encode as UTF-8")


def _text(value, what: str, check: Callable, rule: str) -> None:
    if value is None:
        return
    if not (isinstance(value, str) and value.strip()):
        raise ModelImportError(f"{what} must be None or a non-empty string, got {shown(value)}")
    try:
        check(value, "name")
    except GraphError:
        raise ModelImportError(f"{what} {rule}, got {shown(value)}") from None


def _dtype(value, what: str) -> None:
    """None, or what Graph takes: a name or numpy dtype of float32 or float64."""
    if not (value is None or (is_dtype(value) and np.dtype(value).name in ("float32", "float64"))):
        raise ModelImportError(f"{what} must be None, 'float32' or 'float64', got {shown(value)}")


def _count(value, what: str) -> None:
    if not (value is None or is_int(value, 0)):
        raise ModelImportError(f"{what} must be None or an integer >= 0, got {shown(value)}")


def _flag(value, what: str) -> None:
    check_bool(value, what, ModelImportError)


def _loss(value, what: str) -> None:
    """None, one loss (a name, a config dict, a Loss) for every output, or a
    dict output name -> loss; whether the names are outputs is known later."""
    if value is None:
        return
    named = isinstance(value, Mapping) and "name" not in value
    for key, loss in (value.items() if named else [(None, value)]):
        if key is not None and not (isinstance(key, str) and key):
            raise ModelImportError(f"{what} must name outputs by their names, got the key {shown(key)}")
        if loss is None:
            continue
        try:
            losses.get(loss)
        except GraphError as exc:
            raise ModelImportError(f"{what}{'' if key is None else f' for output {key!r}'}: {exc}") from None


_CHECKS: dict[str, Callable[[object, str], None]] = {
    "name": _name,
    "input_name": _node_name,
    "dtype": _dtype,
    "seed": _count,
    "max_params": _count,
    "check": _flag,
    "external_data": _flag,
    "loss": _loss,
}
