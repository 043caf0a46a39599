"""The diagram of a :class:`~graphnet.diff.GraphDiff`: the union of its two graphs.

What was added is green, what was removed red, what changed amber, each
also said in words on the node or synapse, so that the picture reads in
greyscale; the relative change of each weight is on its synapse, which is
drawn wider as it grows, and a changed bias is in its node's label. Nodes
and synapses are drawn as :func:`graphnet.render.to_dot` draws them
(shapes, fills, labels; frozen ones dashed), and a legend says the rest.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import graphviz

from ._dot_text import label_text
from ._parameters import bias_key
from ._render_options import check_layout
from ._validation import check_path
from .errors import RenderError
from .nodes import DenseNode
from .render import (
    FONT,
    FORMATS,
    NODE_STYLES,
    attribute_list,
    dot_id,
    node_label,
    write,
)

if TYPE_CHECKING:
    from .diff import GraphDiff, ParameterChange

__all__ = ["to_dot", "render", "percent", "shown", "ADDED", "REMOVED", "CHANGED"]

#: Border and text colours of what was added, removed and changed.
# Each word readable (4.5:1, WCAG AA) on the fills it is written on; the pale edge 3:1 on white.
ADDED, REMOVED, CHANGED = "#146c2e", "#c62828", "#9a4a00"
_FILLS = {ADDED: "#d8f3dc", REMOVED: "#fde2e1"}
_PALE_EDGE, _EDGE = "#949494", "#4d4d4d"


def to_dot(report: GraphDiff, rankdir: str = "LR", dpi: int | None = None) -> graphviz.Digraph:
    """The union of ``report``'s two graphs as a ``graphviz.Digraph``, parts
    told apart by colour and words, with a legend (see the module docs).

    Raises
    ------
    RenderError
        For an unknown ``rankdir`` or a ``dpi`` that is not a positive integer.
    """
    check_layout(rankdir, dpi, "to_dot")
    a, b = report.a, report.b
    graph_attr = {"rankdir": rankdir, "nodesep": "0.3", "ranksep": "0.55", "fontname": FONT,
                  "bgcolor": "white", "pad": "0.2"}
    if dpi is not None:
        graph_attr["dpi"] = str(dpi)
    dot = graphviz.Digraph(
        name="diff",
        graph_attr=graph_attr,
        node_attr={"fontname": FONT, "fontsize": "12", "penwidth": "1.2", "margin": "0.15,0.06"},
        edge_attr={"fontname": FONT, "fontsize": "9", "fontcolor": "#333333", "color": _EDGE,
                   "arrowsize": "0.7", "penwidth": "1.0"},
    )
    parameters = report.parameters or {}
    # The synapses' weights only: the widest edge is the largest change among them (a bias has no edge).
    weights = [parameters.get(s.key) for s in b.synapses]
    largest = max((p.relative for p in weights if p is not None and p.relative and math.isfinite(p.relative)),
                  default=0.0)
    for name in [*b.topological_order, *report.nodes_removed]:
        dot.body.append(_node_statement(report, name, parameters))
    removed = set(report.synapses_removed)
    for synapse in [*b.synapses, *(a.synapse(*s) for s in report.synapses_removed)]:
        pair = (synapse.src, synapse.dst)
        dot.body.append(_edge_statement(report, synapse, pair in removed, parameters, largest))
    feeds = {s.src for s in b.synapses} | {s.src for s in a.synapses if (s.src, s.dst) in removed}
    first = [*b.inputs, *(n for n in a.inputs if n in report.nodes_removed)]
    last = [n for n in [*b.outputs, *(n for n in a.outputs if n in report.nodes_removed)] if n not in feeds]
    for rank, names in (("source", first), ("sink", last)):
        if names:
            dot.body.append(f"\t{{rank={rank}; {'; '.join(dot_id(n) for n in names)}}}\n")
    dot.body.append(f"\tgraph {attribute_list(_legend(report, largest))}\n")
    return dot


def _node_statement(report: GraphDiff, name: str, parameters: dict[str, ParameterChange]) -> str:
    removed = name in report.nodes_removed
    node = (report.a if removed else report.b).nodes[name]
    attributes = dict(NODE_STYLES[node.kind].attributes())
    extra = []
    if removed or name in report.nodes_added:
        color = REMOVED if removed else ADDED
        extra.append(_small("removed" if removed else "added", color, bold=True))
        attributes.update(color=color, fillcolor=_FILLS[color], penwidth="2.4", fontcolor=color
                          if removed else "black")
    elif name in report.nodes_changed:
        for field, (old, new) in report.nodes_changed[name].items():
            extra.append(_small(label_text(f"{field}: {shown(old)} → {shown(new)}"), CHANGED, bold=True))
        attributes.update(color=CHANGED, penwidth="2.4")
    bias = parameters.get(bias_key(name))
    if bias is not None and bias.changed:
        extra.append(_small(f"bias Δ {percent(bias.relative)}" if not bias.reshaped else "bias reshaped"))
    attributes["label"] = node_label(node, True, True, extra)
    if isinstance(node, DenseNode) and not node.trainable:
        attributes["style"] += ",dashed"
    attributes["tooltip"] = f"{name} ({node.kind}, {node.size})"
    return f"\t{dot_id(name)} {attribute_list(attributes)}\n"


def _edge_statement(report: GraphDiff, synapse, removed: bool, parameters, largest: float) -> str:
    pair = (synapse.src, synapse.dst)
    lines = ["{}×{}".format(*synapse.shape)]
    attributes = {}
    change = parameters.get(synapse.key)
    if removed or pair in report.synapses_added:
        color = REMOVED if removed else ADDED
        lines.append(_small("removed" if removed else "added", color, bold=True))
        attributes.update(color=color, fontcolor=color, penwidth="2.2")
    elif pair in report.synapses_changed:
        lines = [_small(label_text(f"{f}: {shown(o)} → {shown(n)}"), CHANGED, bold=True)
                 for f, (o, n) in report.synapses_changed[pair].items()]
        attributes.update(color=CHANGED, penwidth="2.2")
    if change is not None and not removed and not change.reshaped:
        if change.change:
            lines.append(_small(f"Δ {percent(change.relative)}", size=8))
            if pair not in report.synapses_changed:
                t = 1.0 if not math.isfinite(change.relative) or not largest else change.relative / largest
                attributes.update(penwidth=f"{1.0 + 3.0 * t:.2f}", color=_EDGE)
        elif pair not in report.synapses_changed:
            attributes["color"] = _PALE_EDGE
    attributes["label"] = ('<<table border="0" cellborder="0" cellpadding="1" cellspacing="0" '
                           f'bgcolor="white"><tr><td>{"<br/>".join(lines)}</td></tr></table>>')
    if not synapse.trainable:
        attributes["style"] = "dashed"
    attributes["tooltip"] = f"{synapse.src} -> {synapse.dst}"
    return f"\t{dot_id(synapse.src)} -> {dot_id(synapse.dst)} {attribute_list(attributes)}\n"


def _legend(report: GraphDiff, largest: float) -> dict[str, str]:
    def swatch(text, color, fill):
        return (f'<td bgcolor="{fill}" border="1" color="{color}" width="60">'
                f'<font color="{color}"><b>{text}</b></font></td>')

    cells = (swatch("added", ADDED, _FILLS[ADDED]) + swatch("removed", REMOVED, _FILLS[REMOVED])
             + swatch("changed", CHANGED, "white") + swatch("same", "#767676", "white"))
    title = label_text(f"a: {report.label_a}  →  b: {report.label_b}")
    if report.parameters is None:
        weights = "weights not compared"
    else:
        weights = ("Δ: the relative change |b − a| / |a| of a synapse's weight or a node's bias;"
                   '<br align="left"/>the wider a synapse, the more its weight changed ('
                   + (f'the widest: {percent(largest)}' if largest else "no synapse's weight changed")
                   + '); pale grey: its weight is unchanged')
    rows = [
        f'<tr><td align="left"><b>{title}</b></td></tr>',
        f'<tr><td align="left"><table border="0" cellspacing="3" cellpadding="3"><tr>{cells}</tr>'
        "</table></td></tr>",
        f'<tr><td align="left">{weights}<br align="left"/>dashed: frozen (in b; in a for what '
        'was removed)<br align="left"/></td></tr>',
    ]
    label = '<<table border="0" cellborder="0" cellspacing="2" cellpadding="2">' + "".join(rows) + "</table>>"
    return {"label": label, "labelloc": "b", "labeljust": "l", "fontsize": "10"}


def render(report: GraphDiff, path, rankdir: str = "LR", dpi: int | None = None) -> Path:
    """Write the diagram to ``path``: ``.svg``, ``.png``, ``.pdf`` (needs
    Graphviz's ``dot``) or ``.dot``/``.gv``; PNGs at 192 dpi by default.

    Raises
    ------
    RenderError
        For a path that is not a str or os.PathLike, an unknown suffix, a
        missing folder, or a missing or failing ``dot``.
    """
    path = Path(check_path(path, "render: path", "the file to write", RenderError, file=True))
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise RenderError(
            f"render: cannot tell the format of {str(path)!r} from its suffix; "
            f"use one of {['.' + f for f in FORMATS]}"
        )
    if fmt == "png" and dpi is None:
        dpi = 192
    return write(to_dot(report, rankdir=rankdir, dpi=dpi), path, "diff")


def shown(value) -> str:
    """A setting's value in a report: ``yes``/``no``, ``-`` for none, JSON for configs."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "-"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return f"{value:g}" if isinstance(value, float) else str(value)


def percent(relative: float | None) -> str:
    """A relative change as a percentage (``-`` when reshaped, words when ``a`` was 0)."""
    if relative is None:
        return "-"
    if math.isinf(relative):
        return "new (a was 0)"
    if relative == 0:
        return "0%"
    return f"{100 * relative:.3g}%" if relative >= 1e-4 else f"{100 * relative:.1e}%"


def _small(text: str, color: str = "#444444", size: int = 9, bold: bool = False) -> str:
    body = f"<b>{text}</b>" if bold else text
    return f'<font point-size="{size}" color="{color}">{body}</font>'
