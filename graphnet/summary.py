"""The summary table: ``Graph.summary()``.

One row per node in topological order (what feeds a node is always listed
above it): name and kind, size, activation, the nodes it is connected from,
and the parameters it owns. A node owns its bias and the weights of the
synapses that end in it, so the rows add up to ``Graph.num_params``.

The table fits ``line_length`` columns (80, a terminal's width): when the
cells are wider, "Connected to" narrows first (its list wraps after commas),
then the activation, then the node's name (which wraps after ``_``, ``.``,
``-`` or before its kind, never inside a word while it can), so a node fed
by twenty sources takes a few lines, not a 400-character row.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._locks import read
from ._text import columns, cut
from ._validation import check_int
from .errors import GraphError
from .nodes import DenseNode, Hidden, Input, Output

if TYPE_CHECKING:
    from .graph import Graph

__all__ = ["summary", "summary_rows", "NodeRow", "describe_activation"]

_HEADERS = ("Node (kind)", "Size", "Activation", "Connected to", "Params")
_RIGHT = (False, True, False, False, True)
# The columns that may narrow, in the order they give up width.
_NARROWING = (3, 2, 0)
_GAP = "   "
#: Where a long word (a node's name) may break: after these characters.
_BREAKS = re.compile(r"(?<=[_./-])")


@dataclass(frozen=True)
class NodeRow:
    """What the table says about one node."""

    name: str
    kind: str
    size: int
    activation: str
    sources: tuple[str, ...]
    params: int
    trainable_params: int


def summary_rows(graph: Graph) -> list[NodeRow]:
    """One :class:`NodeRow` per node, in topological order."""
    rows = []
    for name in graph.topological_order:
        node = graph.nodes[name]
        incoming = graph.incoming(name)
        params = node.num_params + sum(s.num_params for s in incoming)
        trainable = (node.num_params if getattr(node, "trainable", False) else 0) + sum(
            s.num_params for s in incoming if s.trainable
        )
        rows.append(
            NodeRow(
                name=name,
                kind=type(node).__name__,
                size=node.size,
                activation=_activation(node),
                sources=tuple(s.src for s in incoming),
                params=params,
                trainable_params=trainable,
            )
        )
    return rows


@read
def summary(graph: Graph, print_fn: Callable[[str], object] | None = print, line_length: int = 80) -> str | None:
    """Print (or return) the summary table of ``graph``.

    Parameters
    ----------
    graph : Graph
    print_fn : callable or None
        Called once with the whole table (no trailing newline); ``None``
        returns the text instead.
    line_length : int
        The widest a line may be (Keras's name); long cells wrap inside
        their column. At least 60 (the headers alone take 56).

    Returns
    -------
    str or None
        The text when ``print_fn`` is ``None``.

    Raises
    ------
    GraphError
        When ``print_fn`` is neither callable nor ``None``, or for a
        ``line_length`` under 60.
    """
    if print_fn is not None and not callable(print_fn):
        raise GraphError(
            f"summary: print_fn must be a callable such as print, or None to get the text; "
            f"got {print_fn!r}"
        )
    line_length = check_int(line_length, "summary: line_length", 60)
    text = _table(graph, summary_rows(graph), line_length)
    if print_fn is None:
        return text
    print_fn(text)
    return None


def describe_activation(activation) -> str:
    """The activation's name, with the parameters that differ from its defaults:
    ``relu``, ``leaky_relu(0.2)``, ``gelu(approximate=True)``."""
    config = activation.get_config()
    try:
        defaults = type(activation)().get_config()
    except TypeError:  # no defaults to compare with: show everything
        defaults = {}
    changed = {k: v for k, v in config.items() if k != "name" and defaults.get(k, object()) != v}
    if not changed:
        return config["name"]
    if len(changed) == 1:
        (key, value), = changed.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return f"{config['name']}({value:g})"
    return f"{config['name']}(" + ", ".join(f"{k}={v!r}" for k, v in changed.items()) + ")"


def describe_input(node: Input) -> str:
    """What an input does with its data, in a few words: ``3 categories``,
    ``normalize, missing: mean``; empty for a plain input."""
    if not isinstance(node, Input) or not node.transforms:
        return ""
    if node.categorical:
        if node.categories == "adapt":
            return "categories: adapt"
        return f"{len(node.categories):,} categories"
    words = ["normalize"] if node.normalize else []
    if node.missing != "error":
        words.append(f"missing: {node.missing}")
    if not node.adapted:
        words.append("not adapted")
    return ", ".join(words)


def shape_label(graph: Graph, synapse) -> str:
    """A synapse's weight shape, ``src×dst``; ``38×32 table`` for an embedding
    (from a categorical input: rows gathered by category)."""
    table = " table" if getattr(graph.nodes[synapse.src], "categorical", False) else ""
    return "{}×{}".format(*synapse.shape) + table


def _shown_values(values, limit: int = 6) -> str:
    values = list(values)
    text = ", ".join(repr(v) if isinstance(v, str) else f"{v:.4g}" if isinstance(v, float) else str(v)
                     for v in values[:limit])
    return f"[{text}{', ...' if len(values) > limit else ''}]"


def _table_lines(graph: Graph) -> list[str]:
    """One line per input that reads a table or transforms its data, one per
    output with classes: columns, vocabularies, adapted statistics."""
    lines = []
    for name in graph.inputs:
        node = graph.nodes[name]
        if not node.transforms and node.columns is None:
            continue
        parts = [f"{name}: " + ("columns " + _shown_values(node.columns) if node.columns else f"column {name!r}")]
        if node.categorical:
            parts.append("categories " + (_shown_values(node.categories) + " (0: unknown or missing)"
                                          if node.categories != "adapt" else "not adapted"))
        elif node.needs_statistics:
            if node.mean is None:
                parts.append("not adapted")
            else:
                parts.append(f"mean {_shown_values(node.mean.tolist())}")
                if node.normalize:
                    parts.append(f"std {_shown_values(node.std.tolist())}")
        lines.append(", ".join(parts))
    for name in graph.outputs:
        classes = getattr(graph.nodes[name], "classes", None)
        if classes is not None:
            lines.append(f"{name}: classes " + (_shown_values(classes) if classes != "adapt" else "not adapted"))
    return lines


def _activation(node) -> str:
    if isinstance(node, Input):
        return describe_input(node) or "-"
    if not isinstance(node, DenseNode):
        return "-"
    text = describe_activation(node.activation)
    if isinstance(node, Hidden) and node.dropout:
        text += f", dropout {node.dropout:g}"
    return text


def _table(graph: Graph, rows: list[NodeRow], line_length: int) -> str:
    cells = [
        (
            f"{r.name} ({r.kind})",
            str(r.size),
            r.activation,
            ", ".join(r.sources) if r.sources else "-",
            f"{r.params:,}",
        )
        for r in rows
    ]
    widths = _widths(cells, line_length)

    def line(values: tuple[list[str], ...]) -> list[str]:
        out = []
        for k in range(max(len(v) for v in values)):
            parts = []
            for i, column in enumerate(values):
                text = column[k] if k < len(column) else ""
                pad = " " * (widths[i] - columns(text))  # wide characters take two columns
                parts.append(pad + text if _RIGHT[i] else text + pad)
            out.append((" " + _GAP.join(parts)).rstrip())
        return out

    total_width = 1 + sum(widths) + len(_GAP) * (len(widths) - 1)
    title = (f'{type(graph).__name__}: "{graph.name}"  ({_count(len(graph.inputs), "input")}, '
             f'{_count(len(graph.outputs), "output")}, {graph.dtype})')
    lines = _fitted(textwrap.wrap(title, line_length, subsequent_indent="  "), line_length) + ["_" * total_width]
    lines += line(tuple([h] for h in _HEADERS))
    lines.append("=" * total_width)
    for row in cells:
        lines += line(tuple(_wrap(text, widths[i]) for i, text in enumerate(row)))
    if not cells:
        lines.append(" (no nodes yet)")
    lines.append("=" * total_width)
    total = sum(r.params for r in rows)
    trainable = sum(r.trainable_params for r in rows)
    lines += [
        f"Total params: {total:,}",
        f"Trainable params: {trainable:,}",
        f"Non-trainable params: {total - trainable:,}",
    ]
    loss = _loss_line(graph)
    if loss:
        lines += _fitted(textwrap.wrap(loss, line_length, subsequent_indent="      ", break_long_words=False),
                         line_length)
    tables = _table_lines(graph)
    if tables:
        lines.append("Data:")
        for line in tables:
            lines += _fitted(textwrap.wrap(line, line_length, initial_indent="  ", subsequent_indent="      ",
                                           break_long_words=False), line_length)
    return "\n".join(lines)


def _fitted(lines: list[str], width: int) -> list[str]:
    """``lines`` (wrapped by characters) with any wider than ``width``
    columns broken again (wide characters take two)."""
    return [part for line in lines for part in ([line] if columns(line) <= width else _break_word(line, width))]


def _widths(cells: list[tuple[str, ...]], line_length: int) -> list[int]:
    """Each column's width: its widest cell, narrowed (see the module docs)
    until a row fits ``line_length``."""
    widths = [max([len(_HEADERS[i])] + [columns(c[i]) for c in cells]) for i in range(len(_HEADERS))]
    excess = 1 + sum(widths) + len(_GAP) * (len(widths) - 1) - line_length
    # Sources and the activation first, down to their longest word (a whole source name)...
    for i in _NARROWING[:2]:
        floor = max([len(_HEADERS[i])] + [columns(word) for c in cells for word in c[i].split()])
        cut = max(0, min(widths[i] - floor, excess))
        widths[i] -= cut
        excess -= cut
    # ... then the names and the sources together, then every wrapping column, widest first.
    for narrowing in ((0, 3), _NARROWING):
        while excess > 0 and any(widths[i] > len(_HEADERS[i]) for i in narrowing):
            widest = max((i for i in narrowing if widths[i] > len(_HEADERS[i])), key=widths.__getitem__)
            widths[widest] -= 1
            excess -= 1
    return widths


def _wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width``: broken at spaces (after the
    commas of a list, before a node's kind), and a word still too long
    after ``_ . - /``, or inside it only when nothing else fits."""
    if columns(text) <= width:
        return [text]
    lines = []
    for line in textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False) or [""]:
        lines += [line] if columns(line) <= width else _break_word(line, width)
    return lines


def _break_word(word: str, width: int) -> list[str]:
    lines, current = [], ""
    for piece in _BREAKS.split(word):
        if current and columns(current + piece) > width:
            lines.append(current)
            current = ""
        while columns(piece) > width:
            head, piece = cut(piece, width)
            lines.append(head)
        current += piece
    return lines + ([current] if current else [])


def _loss_line(graph: Graph) -> str:
    """The total loss as a formula: ``Loss: cce(digit) + 0.5 * bce(even)``."""
    terms = []
    for name in graph.outputs:
        node: Output = graph.nodes[name]
        weight = "" if node.loss_weight == 1.0 else f"{node.loss_weight:g} * "
        terms.append(f"{weight}{node.loss.name}({name})")
    return "Loss: " + " + ".join(terms) if terms else ""


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
