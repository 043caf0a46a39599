"""Row weights: ``sample_weight`` and ``class_weight`` made into each
output's weights, and a batch's row factors.

A loss is the weighted mean ``Σ w·l / Σ w`` (PyTorch's and
``numpy.average``'s convention): only the weights' ratios matter, so weights
of every magnitude give the same result as their ratios do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from . import _tabular
from . import backend as backend_module
from ._array_likes import is_keyed, readable
from ._text import preview
from ._validation import check_number, check_outputs
from .errors import GraphError, ShapeError

if TYPE_CHECKING:
    from .graph import Graph

__all__ = ["as_weights", "row_factors"]


def as_weights(graph: Graph, sample_weight, class_weight, targets: dict[str, np.ndarray], rows: int,
               whole: bool = True, where: str | None = "fit"):
    """Each output's row weights from ``sample_weight`` and ``class_weight``
    (their product), or None when neither is given.

    ``sample_weight`` is an ``(n,)`` array for every output or a dict output
    name -> array; ``class_weight`` a dict class -> weight (a one-output graph)
    or a dict output name -> such a dict. A class missing from the dict
    weighs 1, as in Keras. For ``whole`` data (every row the call weighs)
    each output's weights are scaled by the power of two that brings the
    largest into [0.5, 1): weighted means are unchanged to the last bit,
    and no sum overflows. One batch of a generator or one chunk of a dask
    array is not scaled (the batches' sums weigh them against each other):
    there a sum beyond float64's range is refused. ``where`` names the call
    (``"evaluate"``) in messages; None, for a caller that names it itself.

    Raises
    ------
    GraphError
        Naming the argument, the output, and what was expected and found.
    """
    if sample_weight is None and class_weight is None:
        return None
    outputs = list(targets)
    factors: dict[str, list[np.ndarray]] = {name: [] for name in outputs}
    said = "" if where is None else f"{where}: "
    for name, given in _per_output(sample_weight, outputs, f"{said}sample_weight", np.ndarray).items():
        factors[name].append(_sample_weights(given, rows, name))
    tables = {}
    for name, classes in _per_output(class_weight, outputs, f"{said}class_weight", dict).items():
        rows_weights, tables[name] = _class_weights(graph, name, classes, targets[name])
        factors[name].append(rows_weights)
    weights = {}
    for name, parts in factors.items():
        if name in tables and len(parts) == 2 and not (whole and rows):
            # One batch of many: the class weights scaled by one power of two, the same in every batch
            # (from the largest of the table), so that an extreme class weight does not by itself
            # over- or underflow the product.
            parts[1] = np.ldexp(parts[1], -np.frexp(tables[name].max())[1])
        weights[name] = w = _product(parts, rows, scaled=bool(whole and rows))
        total = w.sum()
        if rows and not total > 0 and len(parts) == 2 and ((parts[0] > 0) & (parts[1] > 0)).any():
            raise GraphError(
                f"the row weights of output {name!r} in one batch (sample_weight times class_weight) underflow "
                "to 0: each product is below float64's smallest number; scale every batch's sample weights up "
                "by one factor (the weighted means do not change)"
            )
        if rows and not total > 0:
            raise GraphError(
                f"the row weights of output {name!r} (sample_weight times class_weight) sum to 0, so no row "
                "would count and the weighted mean is undefined (numpy.average refuses it too); give some "
                "row a weight > 0"
            )
        if not np.isfinite(total):
            raise GraphError(
                f"the row weights of output {name!r} in one batch sum beyond float64's range; scale every "
                "batch's weights down by one factor (the weighted means do not change)"
            )
    return weights


def _per_output(value, outputs: list[str], what: str, single: type) -> dict:
    if value is None:
        return {}
    is_dict = is_keyed(value)
    keyed = is_dict and value and all(isinstance(k, str) for k in value)
    if keyed and single is dict and not any(isinstance(v, Mapping) for v in value.values()):
        keyed = False  # {label: weight} with text labels: one output's class weights
    if keyed:
        check_outputs(value, outputs, what)
        return dict(value)
    if single is dict and not is_dict:
        raise GraphError(f"fit: class_weight must be a dict class -> weight (or output name -> such a dict), "
                         f"got {type(value).__name__}")
    if len(outputs) > 1 and single is dict:
        raise GraphError(f"fit: this graph has {len(outputs)} outputs {preview(outputs)}: give class_weight "
                         "per output, as a dict output name -> {class: weight}")
    return {name: value for name in outputs}


def _sample_weights(value, rows: int, output: str) -> np.ndarray:
    where = f"sample_weight for output {output!r}"
    value = readable(value, where)
    try:
        array = np.asarray(backend_module.host(value))
    except (TypeError, ValueError):
        array = np.asarray(None)
    if array.dtype.kind not in "biuf":
        raise GraphError(f"{where}: expected numbers, got {type(value).__name__} of dtype {array.dtype}")
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.shape != (rows,):
        raise ShapeError(f"{where}: expected shape ({rows},), one weight per row, got {array.shape}")
    array = array.astype(np.float64)
    bad = ~np.isfinite(array) | (array < 0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise GraphError(f"{where}: weights must be finite and >= 0, but {int(bad.sum())} of {rows} are not "
                         f"(the first in row {first}: {array[first]:g})")
    return array


def _whole(key) -> bool:
    """Whether a class_weight key is a class code: a whole number >= 0."""
    return isinstance(key, (int, np.integer)) and key >= 0 or \
        isinstance(key, (float, np.floating)) and key >= 0 and float(key).is_integer()


def _class_weights(graph: Graph, output: str, classes, y: np.ndarray) -> np.ndarray:
    where = f"class_weight for output {output!r}"
    if not isinstance(classes, Mapping):
        raise GraphError(f"{where}: expected a dict class -> weight, got {type(classes).__name__}")
    node = graph.nodes[output]
    # An output with labels takes them as keys (as scikit-learn's class_weight); codes otherwise.
    named = node.classes if isinstance(node.classes, tuple) else ()
    table, given = {}, {}
    for key, weight in classes.items():
        value = _tabular.plain(key)
        if named and value in named:
            code = named.index(value)
        elif named and not (isinstance(named[0], str) and isinstance(value, int) and 0 <= value < len(named)):
            raise GraphError(f"{where}: {key!r} is not one of its classes {preview(named)}"
                             + (f" nor a code 0 to {len(named) - 1}" if isinstance(named[0], str) else ""))
        elif named:
            code = value  # a code beside text labels: no label it could be
        elif isinstance(key, (bool, np.bool_)) or not _whole(key):
            raise GraphError(f"{where}: classes must be integers >= 0, got {key!r}")
        else:
            code = int(key)  # 1.0 too: np.unique of float targets gives such keys, as scikit-learn takes them
        if code in given:
            label = f" ({named[code]!r})" if named else ""
            raise GraphError(f"{where}: {given[code]!r} and {key!r} both name class {code}{label}; give each "
                             "class one weight")
        given[code] = key
        table[code] = check_number(weight, f"{where}: the weight of class {key!r}", 0.0,
                                   expected="a finite number >= 0")
    if node.loss.requires_activation == "softmax":  # categorical crossentropy, sparse or not
        labels = y if y.ndim == 1 else y.argmax(axis=1)
    elif node.loss.name == "binary_crossentropy" and node.size == 1:
        labels = (y[:, 0] > 0.5).astype(np.intp)
    else:
        raise GraphError(
            f"{where}: class weights need a loss whose targets are class labels (categorical_crossentropy or "
            f"sparse_categorical_crossentropy on a softmax output, binary_crossentropy on 1 sigmoid unit); output "
            f"{output!r} has loss {node.loss.name!r} on {node.size} {node.activation.name} unit(s): use sample_weight"
        )
    classes_count = node.size if node.size > 1 else 2
    impossible = sorted(k for k in table if k >= classes_count)
    if impossible:
        raise GraphError(
            f"{where}: output {output!r} predicts classes 0 to {classes_count - 1}, but class_weight names "
            f"{[given[k] for k in impossible[:5]]}{' ...' if len(impossible) > 5 else ''}; give weights of its "
            "classes only"
        )
    lookup = np.ones(classes_count)
    for key, weight in table.items():
        lookup[key] = weight
    return lookup[labels], lookup


def _product(parts: list[np.ndarray], rows: int, scaled: bool) -> np.ndarray:
    """The row weights: the product of the factors given (sample and class
    weights), ``scaled`` as :func:`_unit_scaled` scales. Scaled, the product
    is exact where a plain one would overflow or underflow (``1e-200 *
    1e-200``): mantissas multiply and exponents add. Unscaled (one batch of
    many), a product beyond float64 is inf or 0, which the caller refuses."""
    if not parts:
        return np.ones(rows)
    if len(parts) == 1:
        return _unit_scaled(parts[0]) if scaled else parts[0]
    if not scaled:
        with np.errstate(over="ignore", under="ignore"):
            return parts[0] * parts[1]
    (m1, e1), (m2, e2) = np.frexp(parts[0]), np.frexp(parts[1])
    mantissas, exponents = m1 * m2, e1 + e2
    counted = mantissas > 0
    top = exponents[counted].max() if counted.any() else 0
    return _unit_scaled(np.ldexp(mantissas, exponents - top))


def _unit_scaled(w, xp=np):
    """``w`` (non-empty, >= 0) scaled by the power of two that brings its
    largest value into [0.5, 1): exact, so a weighted mean of the result is
    the weighted mean of ``w`` to the last bit, with no sum overflowing or
    lost to subnormal numbers (all zeros stay as they are: ``frexp(0)`` is 0)."""
    return xp.ldexp(w, -xp.frexp(w.max())[1])


def row_factors(weights: dict[str, np.ndarray] | None, dtype, xp=np) -> tuple[dict | None, dict | None]:
    """For one batch: each output's ``(n, 1)`` factors ``n w_i / Σ w`` (mean 1,
    all zero when ``Σ w`` is 0) and its ``Σ w``; ``(None, None)`` unweighted.
    With a device's ``xp`` (the weights on the device) the sums stay there."""
    if weights is None:
        return None, None
    factors, sums = {}, {}
    if xp is not np:
        for name, w in weights.items():
            sums[name] = w.sum()
            w = _unit_scaled(w, xp)
            total = w.sum()
            # 0 when Σ w is 0: n / (Σ w + [Σ w = 0]) times weights that are all 0.
            scale = len(w) / (total + (total == 0))
            factors[name] = (w * scale).astype(dtype).reshape(-1, 1)
        return factors, sums
    for name, w in weights.items():
        sums[name] = float(w.sum())
        w = _unit_scaled(w) if len(w) else w  # a batch of tiny weights divides by no subnormal sum
        total = float(w.sum())
        scale = len(w) / total if total > 0 else 0.0
        factors[name] = (w * scale).astype(dtype).reshape(-1, 1)
    return factors, sums
