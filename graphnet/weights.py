"""A graph's parameters as arrays by key: ``parameters``, ``get_weights``,
``set_weights`` and ``transfer_weights``.

Keys come from :mod:`graphnet._parameters` (``"SRC->DST.weight"``,
``"NODE.bias"``); the arrays live on the synapses and dense nodes (views
into the plan's flat buffer once it is compiled). A weight still waiting
for its draw (:mod:`graphnet._lazy_init`) is given its values without being
drawn first. ``Graph`` has each function as a method of the same name.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _tabular
from . import backend as backend_module
from ._locks import edit, read
from ._parameters import BIAS, ParameterRecord
from ._text import preview, suggestion
from ._validation import check_bool
from .errors import GraphError, NotFoundError
from .network import Network
from .nodes import DenseNode

if TYPE_CHECKING:
    from .graph import Graph

__all__ = ["parameters", "parameter_owners", "parameter_arrays", "get_weights", "refuse_non_finite", "set_weights",
           "transfer_weights", "TransferReport"]

logger = logging.getLogger(__name__)


def parameters(graph: Network) -> list[ParameterRecord]:
    """Every weight and bias as a :class:`~graphnet._parameters.ParameterRecord`
    (key, kind, node, synapse, shape, trainable): for each dense node in
    insertion order, its incoming weights then its bias."""
    return [record for record, _ in parameter_owners(graph)]


def parameter_owners(graph: Network) -> list[tuple[ParameterRecord, object]]:
    """``(record, owner)`` per parameter, the owner being the Synapse or
    node holding the array: for each dense node in insertion order, its
    incoming weights then its bias."""
    entries = []
    for name, node in graph.nodes.items():
        if isinstance(node, DenseNode):
            for s in graph.incoming(name):
                entries.append((s.parameter_record(), s))
            entries.append((node.parameter_record(), node))
    return entries


def parameter_arrays(graph: Network) -> dict[str, np.ndarray]:
    """Every parameter's live array (no copies), by key; draws what is waiting
    (what waits for a vocabulary: its provisional values, see
    :meth:`graphnet._lazy_init.LazyInit.provisional`)."""
    provisional = graph.materialize(partial=True)
    return {record.key: provisional.get(record.key, owner.parameter_array)
            for record, owner in parameter_owners(graph)}


@read
def get_weights(graph: Network) -> dict[str, np.ndarray]:
    """Copies of every parameter as numpy arrays (on every device):
    ``"NODE.bias"`` and ``"SRC->DST.weight"`` (all from one moment, even
    while another thread trains)."""
    copy = graph.backend.host_copy
    return {key: copy(array) for key, array in parameter_arrays(graph).items()}


def refuse_non_finite(arrays: Mapping[str, np.ndarray], where: str, what: str = "weight",
                      fix: str = "set finite values first (set_weights)") -> None:
    """Refuse, before anything is written, NaN or inf in ``arrays``: what
    ``set_weights`` (and so every loader) refuses, no writer writes. One
    ``isfinite`` pass per array; the values are counted only when one fails.

    Raises
    ------
    GraphError
        ``"{where}: weight 'dense.bias' (1 of 2 values) holds NaN or inf, ..."``,
        naming up to five arrays that hold them.
    """
    bad = [key for key, array in arrays.items() if not np.isfinite(array).all()]
    if bad:
        counts = [(key, int(np.count_nonzero(~np.isfinite(arrays[key]))), arrays[key].size) for key in bad]
        listed = ", ".join(f"{key!r} ({n:,} of {size:,} values)" for key, n, size in counts[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        one = len(bad) == 1
        raise GraphError(f"{where}: {what}{'' if one else 's'} {listed}{more} hold{'s' if one else ''} NaN or inf, "
                         f"which loading refuses, so nothing was written; {fix}")


@edit
def set_weights(graph: Network, weights: Mapping[str, Any]) -> None:
    """Assign parameters by key (any subset of ``get_weights()``'s keys).

    Every key, shape and value is checked first; if anything is wrong,
    nothing changes.

    Weights that wait for a vocabulary (fed by a categorical input still to
    adapt) are provisional: given their provisional values back
    (``g.set_weights(g.get_weights())``) they go on waiting, and a table of
    such an input cannot be set before ``adapt`` sets its rows.

    Parameters
    ----------
    weights : dict key -> array
        Keys as ``get_weights()`` gives them (``"h.bias"``, ``"x->h.weight"``).

    Raises
    ------
    GraphError
        Naming the unknown keys, or the key with its expected and given shape,
        or a table set before its input's vocabulary is adapted.
    """
    if not isinstance(weights, Mapping):
        raise GraphError(f"set_weights expects a dict keyed like get_weights(), got {type(weights).__name__}")
    # Shapes from the records: a weight not drawn yet is given its values
    # without being drawn first (a loaded file's weights are never drawn).
    owners = {record.key: (record, owner) for record, owner in parameter_owners(graph)}
    unknown = [k for k in weights if k not in owners]
    if unknown:
        raise NotFoundError(f"graph {graph.name!r}: unknown weight keys {preview(unknown)}; known: {preview(owners)}"
                            f"{suggestion(unknown, owners)}")
    staged = {}
    for key, value in weights.items():
        expected = owners[key][0].shape
        try:
            given = np.asarray(backend_module.host(value))
        except (TypeError, ValueError):
            given = np.asarray(None)
        if given.dtype.kind not in "biuf":  # not text, bytes, dates, complex numbers, objects
            raise GraphError(f"weight {key!r}: expected numbers, got {type(value).__name__} of dtype {given.dtype} "
                             "(only real numbers: no text, dates or complex values)")
        if given.shape != expected:
            raise GraphError(f"weight {key!r}: expected shape {expected}, got {given.shape}")
        with np.errstate(over="ignore"):
            value = given.astype(graph.dtype, copy=False)
        bad = ~np.isfinite(value)
        if bad.any():
            given_bad = int((~np.isfinite(given)).sum()) if given.dtype.kind == "f" else 0
            if not given_bad:  # finite as given: too large for the graph's dtype
                raise GraphError(f"weight {key!r} holds {int(bad.sum())} value(s) too large for the graph's "
                                 f"{graph.dtype} (largest {np.finfo(graph.dtype).max:.4g}); build the graph with "
                                 "dtype='float64'")
            raise GraphError(f"weight {key!r} contains {given_bad} NaN or inf value(s)")
        staged[key] = value
    staged = _unless_provisional(graph, staged, owners)
    to_device = graph.backend.to_device
    for key, value in staged.items():
        record, owner = owners[key]
        if record.kind == BIAS:
            owner.parameter_array[...] = to_device(value)  # not .bias: that would draw it first
            owner.fix_bias()
        elif owner.parameter_array is None:
            graph.assign_first_values(owner, to_device(value.copy()))
        else:
            owner.parameter_array[...] = to_device(value)


# --------------------------------------------------------------- transferring
@dataclass(frozen=True)
class TransferReport:
    """What :func:`transfer_weights` did, parameter by parameter; each
    parameter (empty by default) is kept as the attribute of its name.

    Parameters
    ----------
    copied : dict
        This graph's key -> the other's key whose values it took.
    skipped : list of str
        This graph's parameters nothing matched (left as they were).
    mismatched : dict
        This graph's key -> ``(its shape, the other's shape)`` for pairs
        whose shapes differ (left as they were).
    unused : list of str
        The other's parameters that went nowhere.
    """

    copied: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    mismatched: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)
    unused: list[str] = field(default_factory=list)

    def __getitem__(self, item: str):
        if item not in self:
            raise NotFoundError(f"TransferReport has 'copied', 'skipped', 'mismatched' and 'unused', not {item!r}")
        return getattr(self, item)

    def __contains__(self, item) -> bool:
        return isinstance(item, str) and item in self.keys()

    def __iter__(self):
        return iter(self.keys())

    def keys(self):
        return ("copied", "skipped", "mismatched", "unused")

    def __repr__(self) -> str:
        lines = [
            f"TransferReport: {len(self.copied)} copied, {len(self.skipped)} skipped, "
            f"{len(self.mismatched)} mismatched, {len(self.unused)} unused"
        ]
        if self.copied:
            pairs = [k if k == v else f"{k} <- {v}" for k, v in self.copied.items()]
            lines.append(f"  copied:     {preview(pairs, 8)}")
        if self.skipped:
            lines.append(f"  skipped:    {preview(self.skipped, 8)} (no counterpart)")
        for key, (here, there) in list(self.mismatched.items())[:8]:
            lines.append(f"  mismatched: {key}: shape {here} here, {there} there")
        if len(self.mismatched) > 8:
            lines.append(f"  ... {len(self.mismatched) - 8} more mismatched")
        if self.unused:
            lines.append(f"  unused:     {preview(self.unused, 8)}")
        return "\n".join(lines)


def _unless_provisional(graph: Network, staged: dict, owners: dict) -> dict:
    """``staged`` without the values that wait for a vocabulary and are given
    back unchanged; a different value for such an input's table is refused."""
    provisional = graph.lazy_init.provisional(graph)
    if not provisional:
        return staged
    kept = {}
    for key, value in staged.items():
        if key in provisional:
            if np.array_equal(backend_module.host(provisional[key]), value):
                continue  # given back as read: it goes on waiting
            record, owner = owners[key]
            source = None if record.kind == BIAS else graph.nodes[owner.src]
            if getattr(source, "categories", None) == _tabular.ADAPT:
                raise GraphError(f"weight {key!r}: the table of input {source.name!r} waits for its vocabulary "
                                 "(categories='adapt'), which sets its rows, and the value given is not its "
                                 "provisional draw: adapt this graph (and any graph the weights come from) "
                                 "first, or save_weights a graph before adapt and load_weights the file, "
                                 "which keeps the draw's seed")
        kept[key] = value
    return kept


def _rows_by_category(mine, theirs, table: np.ndarray, value) -> np.ndarray:
    """``value``, the other graph's table of a synapse from the categorical
    input ``theirs``, its rows put where this graph's input ``mine`` has the
    same categories (``table``: this graph's own values, which the rows of
    categories the other graph does not know keep)."""
    own_categories, their_categories = list(mine.categories), list(theirs.categories)
    if own_categories == their_categories:
        return value
    offset = table.shape[0] - len(own_categories)  # rows before the categories' (unknown values)
    result = np.array(table, copy=True)
    value = np.asarray(value)
    result[:offset] = value[:offset]
    where = {category: i for i, category in enumerate(their_categories)}
    for i, category in enumerate(own_categories):
        if category in where:
            result[offset + i] = value[offset + where[category]]
    return result


@edit
def transfer_weights(graph: Graph, other, match: str = "name", strict: bool = True) -> TransferReport:
    """Copy parameters from ``other`` (a Graph, or a dict like ``get_weights()``).

        Parameters
        ----------
        other : Graph or dict key -> ndarray
        match : {"name", "shape"}
            Pair parameters by key, or by position in ``parameters()`` order
            (for graphs built alike under other names).
        strict : bool, default True
            Refuse, copying nothing, when any pair differs in shape; False
            copies the rest and reports the pairs in ``mismatched``.

        Notes
        -----
        From a Graph, a table of a synapse from a categorical input is copied
        by category when the two inputs' categories differ (another order, or
        other categories of the same count): each row goes to the row of the
        same category here, and rows of categories ``other`` does not know
        keep their values. A dict of arrays has no categories: its rows are
        taken by position.

        Returns
        -------
        TransferReport
            ``copied``, ``skipped``, ``mismatched`` and ``unused`` parameters.

        Raises
        ------
        GraphError
            For a mismatch under ``strict``, or a value that is not finite.
        """
    sources = {}  # the other graph's synapse keys -> their source nodes' names
    if isinstance(other, Network):
        theirs = parameter_arrays(other)
        sources = {r.key: r.synapse[0] for r in other.parameters() if r.synapse is not None}
    elif isinstance(other, Mapping):
        theirs = dict(other)
    else:
        raise GraphError(
            "transfer_weights: other must be a Graph or a dict of arrays keyed like "
            f"get_weights(), got {type(other).__name__}"
        )
    if match not in ("name", "shape"):
        raise GraphError(f"transfer_weights: match must be 'name' or 'shape', got {match!r}")
    strict = check_bool(strict, "transfer_weights: strict")
    own = graph.parameters()
    report = TransferReport()
    if match == "name":
        pairs = [(r, r.key if r.key in theirs else None) for r in own]
        keys = {r.key for r in own}
        report.unused.extend(k for k in theirs if k not in keys)
    else:
        their_keys = list(theirs)
        pairs = [(r, their_keys[i] if i < len(their_keys) else None) for i, r in enumerate(own)]
        report.unused.extend(their_keys[len(own):])
    values = {}
    for record, key in pairs:
        if key is None:
            report.skipped.append(record.key)
            continue
        shape = tuple(np.shape(theirs[key]))
        if shape != record.shape:
            report.mismatched[record.key] = (record.shape, shape)
            continue
        report.copied[record.key] = key
        values[record.key] = theirs[key]
        source = graph.nodes[record.synapse[0]] if record.synapse is not None else None
        their_source = other.nodes[sources[key]] if key in sources else None
        if getattr(source, "categorical", False) and getattr(their_source, "categorical", False):
            own = graph.backend.host_copy(parameter_arrays(graph)[record.key])
            values[record.key] = _rows_by_category(source, their_source, own, theirs[key])
    if strict and report.mismatched:
        detail = "; ".join(f"{k}: {a} here, {b} there" for k, (a, b) in list(report.mismatched.items())[:5])
        more = f" (and {len(report.mismatched) - 5} more)" if len(report.mismatched) > 5 else ""
        raise GraphError(
            f"transfer_weights: {len(report.mismatched)} parameters differ in shape, so nothing "
            f"was copied: {detail}{more}; pass strict=False to copy the rest"
        )
    set_weights(graph, values)  # checks every value first; copies nothing if one is bad
    logger.info("%s: transferred %d parameters (%d skipped, %d mismatched)", graph.name,
                len(report.copied), len(report.skipped), len(report.mismatched))
    return report
