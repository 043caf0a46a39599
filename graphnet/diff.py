"""What changed between two graphs: ``gn.diff(a, b)``.

Nodes and synapses have names, so the comparison is exact: a node is the
same node when it has the same name, a synapse when it joins the same two
names. The report lists

- nodes and synapses **added** (in ``b`` only), **removed** (in ``a`` only)
  and **changed**: any setting of ``to_dict()`` that differs (kind, size,
  activation, loss, loss weight, dropout, frozen, ...), and for synapses
  their weight's shape (and initializer, when the weights are not compared:
  once drawn, the weights themselves say what changed);
- for every parameter in both graphs, the norm of ``a``'s value, the norm
  of the change ``|b − a|`` and the relative change ``|b − a| / |a|``
  (Frobenius norms, in float64), or that it was reshaped.

Its diagram (:mod:`graphnet.render_diff`) is the union of both graphs:
what was added is green, what was removed red, what changed amber, each
also said in words, and the relative change of each weight is on its synapse.
"""

from __future__ import annotations

import logging
import math
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import graphviz
import numpy as np

from . import _measures, render_diff
from ._files import refuse_bad_name
from .errors import GraphError
from .nodes import DenseNode, Output
from ._validation import check_bool, check_int
from .render import svg_or_none
from .render_diff import percent, shown
from .saving import load
from ._text import columns, cut
from .summary import describe_activation

if TYPE_CHECKING:
    from .graph import Graph

__all__ = ["ParameterChange", "GraphDiff", "diff", "MIN_WIDTH"]

logger = logging.getLogger(__name__)

_MARKS = {"added": "+", "removed": "-", "changed": "~"}
#: The narrowest text: the parameter table's four columns and a key column of 8.
MIN_WIDTH = 50


@dataclass(frozen=True)
class ParameterChange:
    """One parameter present in both graphs (norms are Frobenius norms, float64).

    ``norm`` is ``|a|``, ``new_norm`` is ``|b|``, ``change`` is ``|b − a|``
    (``None`` when the shapes differ).
    """

    key: str
    shape: tuple[int, ...]
    new_shape: tuple[int, ...]
    norm: float
    new_norm: float
    change: float | None

    @property
    def reshaped(self) -> bool:
        return self.shape != self.new_shape

    @property
    def relative(self) -> float | None:
        """``|b − a| / |a|``: 0 when nothing changed, ``inf`` when ``a`` was zero; ``None`` when reshaped."""
        if self.change is None:
            return None
        if self.change == 0:
            return 0.0
        return self.change / self.norm if self.norm > 0 else math.inf

    @property
    def changed(self) -> bool:
        return self.reshaped or bool(self.change)


class GraphDiff:
    """What :func:`diff` returns: the comparison is made when it is built.

    Parameters
    ----------
    a, b : Graph
        The graphs compared, kept as :attr:`a` and :attr:`b` (``to_dot`` draws
        them as they are when it runs).
    label_a, label_b : str
        How the report names them (the graph's name, or the file's path), kept
        as the attributes of those names.
    weights : bool, default True
        Compare the parameters too; False leaves :attr:`parameters` None.

    Attributes
    ----------
    graph_changes : dict field -> (old, new)
        Graph-wide settings that differ (``dtype``, ``sequential``).
    nodes_added, nodes_removed : list of str
        In ``b``'s (``a``'s) topological order.
    nodes_changed : dict name -> dict field -> (old, new)
        ``frozen`` stands for ``not trainable``; activations as the summary
        writes them.
    synapses_added, synapses_removed : list of (src, dst)
    synapses_changed : dict (src, dst) -> dict field -> (old, new)
    parameters : dict key -> ParameterChange, or None
        Every parameter in both graphs, in ``a``'s order; ``None`` when
        weights were not compared.
    """

    def __init__(self, a: Graph, b: Graph, label_a: str, label_b: str, weights: bool = True):
        self.a, self.b, self.label_a, self.label_b = a, b, label_a, label_b
        spec_a, spec_b = a.to_dict(), b.to_dict()
        self.graph_changes = {
            field: (spec_a.get(field), spec_b.get(field))
            for field in ("dtype", "sequential") if spec_a.get(field) != spec_b.get(field)
        }
        nodes_a, nodes_b = _node_fields(a, spec_a), _node_fields(b, spec_b)
        self.nodes_added = [n for n in b.topological_order if n not in nodes_a]
        self.nodes_removed = [n for n in a.topological_order if n not in nodes_b]
        self.nodes_changed = _changes(nodes_a, nodes_b)
        synapses_a, synapses_b = _synapse_fields(a, spec_a, weights), _synapse_fields(b, spec_b, weights)
        self.synapses_added = [s for s in synapses_b if s not in synapses_a]
        self.synapses_removed = [s for s in synapses_a if s not in synapses_b]
        self.synapses_changed = _changes(synapses_a, synapses_b)
        self.parameters = _parameters(a, b) if weights else None

    # ------------------------------------------------------------- summary
    @property
    def changed_parameters(self) -> list[ParameterChange]:
        return [p for p in (self.parameters or {}).values() if p.changed]

    @property
    def identical(self) -> bool:
        """No structural change, no setting changed, and (when compared) every parameter equal."""
        return not (self.graph_changes or self.nodes_added or self.nodes_removed or self.nodes_changed
                    or self.synapses_added or self.synapses_removed or self.synapses_changed
                    or self.changed_parameters)

    def counts(self) -> str:
        """One line: how many nodes, synapses and parameters changed."""
        if self.identical:
            return "no difference" + ("" if self.parameters is not None else " (weights not compared)")
        parts = [
            _count("node", self.nodes_added, self.nodes_removed, self.nodes_changed),
            _count("synapse", self.synapses_added, self.synapses_removed, self.synapses_changed),
        ]
        if self.parameters is None:
            parts.append("weights not compared")
        else:
            changed = self.changed_parameters
            text = f"{len(changed)} of {len(self.parameters)} parameters in both changed"
            finite = [p for p in changed if p.relative is not None]
            if finite:
                top = max(finite, key=lambda p: p.relative)
                text += f", the most {top.key} ({percent(top.relative)})"
            parts.append(text)
        return "; ".join(p for p in parts if p)

    def __repr__(self) -> str:
        return f"<GraphDiff {self.label_a} -> {self.label_b}: {self.counts()}>"

    # ------------------------------------------------------------- text
    def text(self, width: int = 80) -> str:
        """The report as text of at most ``width`` columns.

        Parameters
        ----------
        width : int, default 80
            The columns the lines fit in, at least 50.

        Raises
        ------
        GraphError
            For a ``width`` that is not an integer of at least 50
            (``graphnet.diff.MIN_WIDTH``, the columns of the parameter table).
        """
        width = check_int(width, "GraphDiff.text: width", MIN_WIDTH)
        lines = _wrap(f"a: {self.label_a} ({_size(self.a)})", width, "   ")
        lines += _wrap(f"b: {self.label_b} ({_size(self.b)})", width, "   ")
        lines += _wrap(self.counts(), width, "  ")
        for field, (old, new) in self.graph_changes.items():
            lines += _wrap(f"{field}: {old} → {new}", width, "  ")
        entries = [(_MARKS["added"], n, _about(self.b.nodes[n])) for n in self.nodes_added]
        entries += [(_MARKS["removed"], n, _about(self.a.nodes[n])) for n in self.nodes_removed]
        entries += [(_MARKS["changed"], n, _fields(f)) for n, f in self.nodes_changed.items()]
        lines += _section("Nodes", entries, width)
        entries = [(_MARKS["added"], _pair(s), _shape(self.b, s)) for s in self.synapses_added]
        entries += [(_MARKS["removed"], _pair(s), _shape(self.a, s)) for s in self.synapses_removed]
        entries += [(_MARKS["changed"], _pair(s), _fields(f)) for s, f in self.synapses_changed.items()]
        lines += _section("Synapses", entries, width)
        if self.parameters:
            lines += self._parameter_lines(width)
        return "\n".join(lines)

    __str__ = text

    def _parameter_lines(self, width: int) -> list[str]:
        changed = self.changed_parameters
        lines = ["", "Parameters in both (|a|: norm in a; |b − a|: norm of the change)"[:width]]
        if changed:
            key_width = min(max(9, *(columns(p.key) for p in changed)), width - 42)
            lines.append(f"  {'Parameter':<{key_width}}  {'|a|':>10}  {'|b − a|':>10}  {'|b − a|/|a|':>12}")
        for p in changed:
            numbers = (f"{_number(p.norm):>10}  reshaped {p.shape} → {p.new_shape}" if p.reshaped
                       else f"{_number(p.norm):>10}  {_number(p.change):>10}  {percent(p.relative):>12}")
            key = p.key
            if columns(key) > key_width:  # a long key on a line of its own
                lines += _wrap(key, width, "    ", first="  ")
                key = ""
            key += " " * (key_width - columns(key))
            row = f"  {key}  {numbers}"
            if columns(row) <= width:
                lines.append(row)
            else:  # a reshape whose shapes do not fit beside it: they go beneath
                lines.append(f"  {key}  {_number(p.norm):>10}  reshaped")
                lines += _wrap(f"{p.shape} → {p.new_shape}", width, "      ", first="      ")
        same = [p.key for p in self.parameters.values() if not p.changed]
        if same:
            listed = ", ".join(same[:8]) + (f", ... {len(same) - 8} more" if len(same) > 8 else "")
            lines += _wrap(f"unchanged ({len(same)}, bit for bit): {listed}", width, "    ", first="  ")
        return lines

    # ------------------------------------------------------------- diagram
    def to_dot(self, rankdir: str = "LR", dpi: int | None = None) -> graphviz.Digraph:
        """The union of both graphs as a ``graphviz.Digraph``, parts told apart by
        colour and words, with a legend; see :func:`graphnet.render_diff.to_dot`.

        Parameters
        ----------
        rankdir : {"LR", "TB", "RL", "BT"}, default "LR"
            Direction of the data flow: left to right by default.
        dpi : int, optional
            Resolution of raster output (PNG); Graphviz's default is 96.
        """
        return render_diff.to_dot(self, rankdir=rankdir, dpi=dpi)

    def render(self, path, rankdir: str = "LR", dpi: int | None = None) -> Path:
        """Write the diagram to a file; see :func:`graphnet.render_diff.render`.

        Parameters
        ----------
        path : str or os.PathLike
            The file to write; its suffix picks the format: ``.svg``, ``.png``,
            ``.pdf`` (these need Graphviz's ``dot``), ``.dot`` or ``.gv``.
        rankdir : {"LR", "TB", "RL", "BT"}, default "LR"
            Direction of the data flow: left to right by default.
        dpi : int, optional
            Resolution of raster output; a PNG gets 192 by default.

        Returns
        -------
        pathlib.Path
            The file written.
        """
        return render_diff.render(self, path, rankdir=rankdir, dpi=dpi)

    def _repr_svg_(self):
        return svg_or_none(self.to_dot(), "the diff")


# ---------------------------------------------------------------- comparing
def diff(a, b, weights: bool = True, labels: tuple[str, str] | None = None) -> GraphDiff:
    """Compare two graphs: one before and after surgery or training, or two model files.

    Parameters
    ----------
    a, b : Graph, or str or PathLike of a model file (read with :func:`graphnet.load`)
    weights : bool
        Compare the parameters too (``False`` for graphs built from specs,
        whose weights were only drawn).
    labels : (str, str), optional
        What the report calls ``a`` and ``b`` (by default the graphs' names or the files' paths).

    Returns
    -------
    GraphDiff
        ``print(report)`` shows it in 80 columns; ``report.render(path)`` draws it.

    Raises
    ------
    GraphError
        When ``a`` or ``b`` is neither a graph nor a path.
    ModelFileError
        For a file that cannot be read.

    Examples
    --------
    >>> import copy, graphnet as gn
    >>> g = gn.Sequential([gn.Input(4), gn.Dense(8), gn.Dense(1)], seed=0)
    >>> h = copy.deepcopy(g)
    >>> _ = h.widen("dense", 12)
    >>> report = gn.diff(g, h)
    >>> report.nodes_changed["dense"]["size"]
    (8, 12)
    """
    graph_a, label_a = _graph(a, "a")
    graph_b, label_b = _graph(b, "b")
    weights = check_bool(weights, "diff: weights")
    if labels is not None:
        if not (isinstance(labels, (tuple, list)) and len(labels) == 2 and all(isinstance(x, str) for x in labels)):
            raise GraphError(f"diff: labels must be two strings, got {labels!r:.80}")
        label_a, label_b = labels
    report = GraphDiff(graph_a, graph_b, label_a, label_b, weights=weights)
    logger.debug("diff %s -> %s: %s", label_a, label_b, report.counts())
    return report


def _graph(value, which: str) -> tuple[Graph, str]:
    if isinstance(value, (str, os.PathLike)):
        refuse_bad_name(os.fsdecode(value), f"diff: {which}")
        return load(value), str(os.fspath(value))
    if hasattr(value, "to_dict") and hasattr(value, "get_weights") and hasattr(value, "topological_order"):
        return value, f"graph {value.name!r}"
    raise GraphError(f"diff: {which} must be a Graph or the path of a model file, got {type(value).__name__}")


def _node_fields(graph: Graph, spec: dict) -> dict[str, dict]:
    fields = {}
    for entry in spec["nodes"]:
        entry = dict(entry)
        name = entry.pop("name")
        if "trainable" in entry:
            entry["frozen"] = not entry.pop("trainable")
        if "activation" in entry:
            entry["activation"] = describe_activation(graph.nodes[name].activation)
        fields[name] = entry
    return fields


def _synapse_fields(graph: Graph, spec: dict, weights: bool) -> dict[tuple[str, str], dict]:
    fields = {}
    for entry in spec["synapses"]:
        entry = dict(entry)
        pair = (entry.pop("src"), entry.pop("dst"))
        if weights:  # how a weight was first drawn says nothing once the weights are compared
            entry.pop("init", None)
        if "trainable" in entry:
            entry["frozen"] = not entry.pop("trainable")
        entry["shape"] = "{}×{}".format(*graph.synapse(*pair).shape)
        fields[pair] = entry
    return fields


def _changes(before: dict, after: dict) -> dict:
    changes = {}
    for key, old in before.items():
        new = after.get(key)
        if new is None:
            continue
        fields = {f: (old.get(f), new.get(f)) for f in {**old, **new} if old.get(f) != new.get(f)}
        if fields:
            changes[key] = fields
    return changes


def _parameters(a: Graph, b: Graph) -> dict[str, ParameterChange]:
    before, after = a.get_weights(), b.get_weights()
    out = {}
    for key, old in before.items():
        new = after.get(key)
        if new is None:
            continue
        old64, new64 = np.asarray(old, np.float64), np.asarray(new, np.float64)
        change = None if old.shape != new.shape else _measures.norm(new64 - old64)
        out[key] = ParameterChange(key, tuple(old.shape), tuple(new.shape), _measures.norm(old64),
                                   _measures.norm(new64), change)
    return out


# ---------------------------------------------------------------- wording
def _count(what: str, added, removed, changed) -> str:
    parts = [f"{len(x)} {word}" for x, word in ((added, "added"), (removed, "removed"), (changed, "changed")) if x]
    return f"{what}s: " + ", ".join(parts) if parts else ""


def _size(graph: Graph) -> str:
    return f"{len(graph.nodes)} nodes, {len(graph.synapses)} synapses, {graph.num_params:,} parameters"


def _about(node) -> str:
    text = f"{node.kind}, {node.size} {'features' if node.kind == 'input' else 'units'}"
    if isinstance(node, DenseNode):
        text += f", {describe_activation(node.activation)}"
    if isinstance(node, Output):
        text += f", loss {node.loss.name}"
    return text


def _shape(graph: Graph, pair) -> str:
    return "{}×{}".format(*graph.synapse(*pair).shape)


def _pair(pair) -> str:
    return f"{pair[0]} -> {pair[1]}"


def _fields(fields: dict) -> str:
    return "; ".join(f"{field} {shown(old)} → {shown(new)}" for field, (old, new) in fields.items())


def _section(title: str, entries: list[tuple[str, str, str]], width: int) -> list[str]:
    if not entries:
        return []
    lines = ["", title]
    name_width = min(max(columns(n) for _, n, _ in entries), max(12, width // 3))
    for mark, name, about in entries:
        if columns(name) <= name_width:
            lead = f"  {mark} {name}{' ' * (name_width - columns(name))}  "
            lines += _wrap(about, width, " " * columns(lead), first=lead)
        else:
            lines += _wrap(name, width, "      ", first=f"  {mark} ")
            lines += _wrap(about, width, " " * (name_width + 6), first=" " * (name_width + 6))
    return lines


def _wrap(text: str, width: int, indent: str, first: str = "") -> list[str]:
    """``text`` in lines of at most ``width`` columns (wide characters take
    two), the first after ``first``, the others after ``indent``; a word
    longer than a line is cut."""
    fitted = []
    for line in textwrap.wrap(text, width, initial_indent=first, subsequent_indent=indent,
                              break_long_words=False, break_on_hyphens=False) or [first.rstrip()]:
        while columns(line) > width:  # a word longer than a line, or wide characters: cut between characters
            head, rest = cut(line, width)
            fitted.append(head)
            line = indent + rest.lstrip() if rest.strip() else ""
        fitted += [line] if line else []
    return fitted


def _number(value: float) -> str:
    if value == 0:
        return "0"
    if 1e-3 <= abs(value) < 1e5:
        return f"{value:.4g}"
    return f"{value:.2e}"
