"""Diagrams: :func:`to_dot` builds a ``graphviz.Digraph``; :func:`render` writes it.

``to_dot`` is pure: it reads the graph and returns DOT source, the same
source for the same graph every time (DOT ids are node names, never object
ids). ``render`` is the only part that runs Graphviz's ``dot`` program, and
only for image formats; ``.dot``/``.gv`` files are the source itself.

Layout choices, made for diagrams that go into papers:

- Inputs share the first rank and outputs the last one, so data flows in
  one direction across the page. An output that also feeds other nodes is
  left where its synapses put it (forcing it onto the last rank would draw
  its outgoing synapses backwards).
- Each kind has its own shape, fill and border (:data:`NODE_STYLES`):
  inputs are rounded boxes, hidden nodes square boxes, outputs rounded boxes
  with a double border. The palette stays distinguishable in greyscale.
- Labels carry the name (bold), the size, the activation (with dropout),
  and for outputs the loss; synapses carry their weight shape ``src×dst``.
- Frozen (``trainable=False``) nodes and synapses are dashed.
- With ``stats=`` the picture carries what the graph does on a batch, and
  ``collapse=True`` draws chains of like hidden nodes as one box (both in
  :mod:`graphnet._overlays`).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import graphviz

from . import _overlays as overlays
from ._dot_text import dot_id, dot_text, label_text
from ._files import atomic_write
from ._locks import read
from ._render_options import RANKDIRS, checked_options
from ._text import reason
from ._validation import check_path
from .errors import RenderError
from .nodes import DenseNode, Hidden, Output
from .statistics import Statistics
from .summary import describe_activation, describe_input, shape_label

if TYPE_CHECKING:
    from .attributions import Attributions
    from .graph import Graph

__all__ = [
    "NodeStyle",
    "NODE_STYLES",
    "FORMATS",
    "RANKDIRS",
    "INSTALL_HINT",
    "to_dot",
    "render",
    "dot_id",
    "attribute_list",
    "node_label",
    "write",
    "FONT",
    "repr_svg",
    "repr_mimebundle",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeStyle:
    """How one kind of node is drawn (Graphviz node attributes)."""

    shape: str
    style: str
    fillcolor: str
    color: str
    peripheries: int = 1

    def attributes(self) -> dict[str, str]:
        return {
            "shape": self.shape,
            "style": self.style,
            "fillcolor": self.fillcolor,
            "color": self.color,
            "peripheries": str(self.peripheries),
        }


#: Node styles by ``node.kind``: blue inputs, grey hidden nodes, orange outputs.
NODE_STYLES: dict[str, NodeStyle] = {
    "input": NodeStyle("box", "rounded,filled", "#dbe8f5", "#3a6ea5"),
    "hidden": NodeStyle("box", "filled", "#f2f2f2", "#5f5f5f"),
    "output": NodeStyle("box", "rounded,filled", "#fbe3c8", "#b8610d", peripheries=2),
}

#: Output formats by file suffix; the value says whether ``dot`` must run.
FORMATS: dict[str, bool] = {"svg": True, "png": True, "pdf": True, "dot": False, "gv": False}

#: Writers of pages that hold a diagram, by suffix, with :func:`render`'s
#: signature: ``"html"``, registered by :mod:`graphnet.render_html`.
PAGES: dict[str, Callable] = {}

INSTALL_HINT = (
    "install Graphviz, which provides it: 'sudo apt-get install graphviz' (Debian/Ubuntu), "
    "'sudo dnf install graphviz' (Fedora), 'brew install graphviz' (macOS), "
    "'conda install -c conda-forge graphviz', or https://graphviz.org/download/; "
    "writing a .dot or .gv file needs no Graphviz"
)

FONT = "Helvetica,Arial,sans-serif"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # graph names may hold them; DOT ids should not
_EDGE_COLOR = "#4d4d4d"
_LABEL_COLOR = "#333333"
# Past this many nodes, cap dot's crossing-minimisation and network-simplex
# iterations: the layout is a little less tidy but a 500-node graph renders
# in seconds instead of minutes.
_BIG_GRAPH = 150
# Past this many, bound dot's x-coordinate pass to about _NS_ITERATIONS
# iterations in all: a 5,000-node graph then lays out in about 30 s rather
# than minutes (measured: nslimit=2 took 123 s, 0.05 took 29 s).
_HUGE_GRAPH = 1000
_NS_ITERATIONS = 250
# A node fed by more than _FAN_IN synapses is stretched by _FAN_IN_SPREAD
# inches per synapse.
_FAN_IN = 4
_FAN_IN_SPREAD = 0.45


#: Attributes Graphviz reads as free text (escStrings): written with :func:`dot_text`.
_FREE_TEXT = frozenset({"label", "tooltip", "xlabel", "headlabel", "taillabel"})


def attribute_list(attributes: dict[str, str]) -> str:
    """A DOT attribute list; values that start with ``<`` are HTML labels."""
    parts = []
    for key, value in attributes.items():
        if key == "label" and value.startswith("<"):
            parts.append(f"label={value}")
        else:
            parts.append(f"{key}={dot_text(value) if key in _FREE_TEXT else dot_id(value)}")
    return "[" + " ".join(parts) + "]"


def node_label(node, show_shapes: bool, show_activations: bool, extra: list[str] = ()) -> str:
    """An HTML-like label: the bold name, then size and activation, then the loss
    (and ``extra`` lines: the statistics)."""
    lines = [f"<b>{label_text(node.name)}</b>"]
    details = _details(node, show_shapes, show_activations)
    if details:
        lines.append(f'<font point-size="10" color="{_LABEL_COLOR}">{" · ".join(details)}</font>')
    if isinstance(node, Output):
        weight = "" if node.loss_weight == 1.0 else f"{node.loss_weight:g} × "
        lines.append(
            f'<font point-size="9" color="{_LABEL_COLOR}"><i>loss: {weight}'
            f"{label_text(node.loss.name)}</i></font>"
        )
    lines.extend(extra)
    return "<" + "<br/>".join(lines) + ">"


def _details(node, show_shapes: bool, show_activations: bool) -> list[str]:
    details = []
    if show_shapes:
        details.append(f"{node.size} feature{'s' if node.size != 1 else ''}"
                       if node.kind == "input" else f"{node.size} unit{'s' if node.size != 1 else ''}")
    details += [label_text(describe_input(node))] if show_activations and describe_input(node) else []
    if show_activations and isinstance(node, DenseNode):
        details.append(label_text(describe_activation(node.activation)))
        if isinstance(node, Hidden) and node.dropout:
            details.append(f"dropout {node.dropout:g}")
    return details


def _chain_label(graph, members: list[str], show_shapes: bool, show_activations: bool,
                 stats: Statistics | None) -> str:
    """A collapsed chain: first and last names, ``×k``, what every member shares."""
    first, last = (label_text(members[0]), label_text(members[-1]))
    lines = [f'<b>{first} … {last}</b>  <font point-size="14"><b>×{len(members)}</b></font>']
    details = _details(graph.nodes[members[0]], show_shapes, show_activations)
    if details:
        lines.append(f'<font point-size="10" color="{_LABEL_COLOR}">{" · ".join(details)} each</font>')
    lines.extend(overlays.chain_lines(members, stats))
    return "<" + "<br/>".join(lines) + ">"


@read
def to_dot(
    graph,
    rankdir: str = "LR",
    show_shapes: bool = True,
    show_activations: bool = True,
    dpi: int | None = None,
    stats: Statistics | None = None,
    collapse: bool = False,
    attributions: Attributions | None = None,
) -> graphviz.Digraph:
    """The diagram of ``graph`` as a ``graphviz.Digraph`` (nothing is run or written).

    Parameters
    ----------
    graph : Graph
    rankdir : {"LR", "TB", "RL", "BT"}
        Direction of the data flow: left to right by default.
    show_shapes : bool
        Node sizes in the labels and weight shapes ``src×dst`` on the synapses.
    show_activations : bool
        Activations (and dropout) in the labels of Hidden and Output nodes.
    dpi : int, optional
        Resolution of raster output (PNG); Graphviz's default is 96.
    stats : Statistics, optional
        What ``graph.statistics(x, y)`` returned: nodes are shaded by their
        share of dead or saturated units, edges drawn as wide as their
        gradient norm (log scale), the numbers put in the labels, and a
        legend added (see :mod:`graphnet._overlays`). Nodes the statistics
        do not know (added since) are drawn plain.
    collapse : bool
        Draw each chain of hidden nodes with the same size, activation,
        dropout and trainable flag, each feeding only the next, as one box
        labelled ``×k`` (its DOT id is the first node's name).
    attributions : Attributions, optional
        What ``graph.attributions(x)`` returned: each input's fill is
        deepened by its share of the mean absolute attribution, its label
        gives the share, the mean and the top columns, the explained node
        says which unit, and a legend says how they were computed.

    Returns
    -------
    graphviz.Digraph
        Its ``.source`` is the DOT text; node ids are the node names.

    Raises
    ------
    RenderError
        For a bad ``rankdir``, flag (not True or False) or ``dpi``, or
        ``stats`` or ``attributions`` that do not describe this graph.
    """
    stats, attributions = checked_options(graph, "to_dot", rankdir=rankdir, show_shapes=show_shapes,
                                          show_activations=show_activations, dpi=dpi, stats=stats,
                                          collapse=collapse, attributions=attributions)
    order = graph.topological_order
    chains = overlays.chains(graph) if collapse else {}
    drawn_as = {member: first for first, members in chains.items() for member in members}
    drawn = len(order) - sum(len(m) - 1 for m in chains.values())
    graph_attr = {
        "rankdir": rankdir,
        "nodesep": "0.3",
        "ranksep": "0.55",
        "fontname": FONT,
        "bgcolor": "white",
        "pad": "0.2",
    }
    if dpi is not None:
        graph_attr["dpi"] = str(dpi)
    if drawn > _BIG_GRAPH:
        graph_attr.update(mclimit="0.3", nslimit="2", nslimit1="2", searchsize="10")
    if drawn > _HUGE_GRAPH:
        # dot's x-coordinate pass takes nslimit × nodes iterations, each one
        # slower as the graph grows: bound the total instead (see _HUGE_GRAPH).
        graph_attr["nslimit"] = f"{max(0.02, _NS_ITERATIONS / drawn):.3g}"
    dot = graphviz.Digraph(
        name=graphviz.nohtml(_CONTROL.sub(" ", graph.name).replace("\\", "\\\\")),
        graph_attr=graph_attr,
        node_attr={"fontname": FONT, "fontsize": "12", "penwidth": "1.2", "margin": "0.15,0.06"},
        edge_attr={
            "fontname": FONT,
            "fontsize": "9",
            "fontcolor": _LABEL_COLOR,
            "color": _EDGE_COLOR,
            "arrowsize": "0.7",
            "penwidth": "1.0",
        },
    )
    synapses = graph.synapses
    fan_in: Counter[str] = Counter()
    for s in synapses:
        src, dst = drawn_as.get(s.src, s.src), drawn_as.get(s.dst, s.dst)
        if src != dst:
            fan_in[dst] += 1
    feeds = {s.src for s in synapses}
    # (The graph's name may hold anything, even a newline: it stays out of comments.)
    dot.body.append(f"// graphnet {type(graph).__name__}: {len(order)} nodes, {len(synapses)} synapses\n")
    for name in order:
        node = graph.nodes[name]
        first = drawn_as.get(name)
        if first is not None and first != name:
            continue  # drawn inside its chain's box
        known = None if stats is None else stats.nodes.get(name)
        if first is not None:
            members = chains[name]
            attributes = {"label": _chain_label(graph, members, show_shapes, show_activations, stats)}
            shares = [stats.nodes[m].stuck for m in members if stats and m in stats.nodes]
            share = max((s for s in shares if s is not None), default=None)
            tooltip = overlays.chain_title(members)
        else:
            extra = overlays.node_lines(known) if known is not None else []
            explained = attributions is not None and name in attributions.values
            if explained:
                extra = extra + overlays.attribution_lines(attributions, name)
            elif attributions is not None and name == attributions.output:
                extra = extra + [overlays.explained_line(attributions)]
            attributes = {"label": node_label(node, show_shapes, show_activations, extra)}
            share = None if known is None else known.stuck
            tooltip = f"{name} ({node.kind}, {node.size})"
        attributes.update(NODE_STYLES[node.kind].attributes())
        if share:
            attributes["fillcolor"] = overlays.shade(attributes["fillcolor"], share)
        if first is None and attributions is not None and name in attributions.values:
            attributes["fillcolor"] = overlays.attribution_fill(attributes["fillcolor"],
                                                                attributions.shares[name])
        overlays.legible(attributes)  # on a deeply shaded fill, light text
        if isinstance(node, DenseNode) and not node.trainable:
            attributes["style"] += ",dashed"
        if fan_in[name] > _FAN_IN:
            # Stretch the side the synapses arrive on, so their arrowheads
            # spread along it instead of piling up on one point.
            side = "height" if rankdir in ("LR", "RL") else "width"
            attributes[side] = f"{_FAN_IN_SPREAD * fan_in[name]:g}"
        attributes["tooltip"] = tooltip
        dot.body.append(f"\t{dot_id(name)} {attribute_list(attributes)}\n")
    scale = None if stats is None else overlays.EdgeScale(stats)
    for synapse in synapses:
        src, dst = drawn_as.get(synapse.src, synapse.src), drawn_as.get(synapse.dst, synapse.dst)
        if src == dst:
            continue  # a link inside a collapsed chain
        known = None if stats is None else stats.synapses.get((synapse.src, synapse.dst))
        attributes = {}
        shape = shape_label(graph, synapse) if show_shapes else None
        if known is not None:
            attributes["label"] = scale.label(shape, known)
            attributes.update(scale.attributes(known))
        elif shape is not None:
            attributes["label"] = shape
        if not synapse.trainable:
            attributes["style"] = "dashed"
        attributes["tooltip"] = f"{synapse.src} -> {synapse.dst}"
        dot.body.append(f"\t{dot_id(src)} -> {dot_id(dst)} {attribute_list(attributes)}\n")
    first = graph.inputs
    last = [n for n in graph.outputs if n not in feeds]
    for rank, names in (("source", first), ("sink", last)):
        if names:
            members = "; ".join(dot_id(n) for n in names)
            dot.body.append(f"\t{{rank={rank}; {members}}}\n")
    legends = [] if stats is None else [overlays.legend(stats, scale, (NODE_STYLES["hidden"].fillcolor,))]
    if attributions is not None:
        legends.append(overlays.attribution_legend(attributions))
    if legends:
        # The legend is the graph's own label: it takes no rank, so it cannot
        # widen a column of the layout.
        legend = {"label": overlays.stacked(*legends), "labelloc": "b", "labeljust": "l", "fontsize": "10"}
        dot.body.append(f"\tgraph {attribute_list(legend)}\n")
    return dot


def render(graph: Graph, path, *, rankdir: str = "LR", show_shapes: bool = True,
           show_activations: bool = True, dpi: int | None = None,
           stats: Statistics | None = None, collapse: bool = False,
           attributions: Attributions | None = None) -> Path:
    """Write the diagram of ``graph`` to ``path``; the suffix picks the format.

    Parameters
    ----------
    graph : Graph
    path : str or PathLike
        ``.svg``, ``.png`` or ``.pdf`` (drawn by Graphviz's ``dot`` program),
        ``.dot``/``.gv`` (the DOT source; no Graphviz needed), or ``.html``
        (a page to explore the diagram: :func:`graphnet.render_html.render_html`).
    rankdir, show_shapes, show_activations, dpi, stats, collapse, attributions
        As for :func:`to_dot`. PNGs default to 192 dpi (sharp on paper and
        on high-density screens), 96 for graphs of more than 150 nodes.

    Returns
    -------
    pathlib.Path
        The file written. The write is atomic: a failed render leaves any
        existing file untouched.

    Raises
    ------
    RenderError
        For a bad path or suffix, a missing ``dot`` program (the message
        says how to install Graphviz), or a failing ``dot`` run.
    """
    path = Path(check_path(path, "render: path", "the file to write", RenderError, file=True))
    fmt = path.suffix.lower().lstrip(".")
    if fmt in PAGES:
        return PAGES[fmt](graph, path, rankdir=rankdir, show_shapes=show_shapes, show_activations=show_activations,
                          dpi=dpi, stats=stats, collapse=collapse, attributions=attributions)
    if fmt not in FORMATS:
        raise RenderError(
            f"render: cannot tell the format of {str(path)!r} from its suffix; "
            f"use one of {['.' + f for f in [*FORMATS, *PAGES]]}"
        )
    if fmt == "png" and len(graph) > _HUGE_GRAPH and not collapse:
        logger.warning(
            "%s: a PNG of %d nodes may pass Graphviz's 32,767-pixel limit, and dot then "
            "shrinks it until the labels are unreadable; write .svg instead, or pass collapse=True",
            graph.name, len(graph),
        )
    if fmt == "png" and dpi is None:
        # Sharp on paper and high-density screens; big graphs are huge already.
        dpi = 192 if len(graph) <= _BIG_GRAPH else 96
    dot = to_dot(graph, rankdir=rankdir, show_shapes=show_shapes,
                 show_activations=show_activations, dpi=dpi, stats=stats, collapse=collapse,
                 attributions=attributions)
    return write(dot, path, graph.name)


def write(dot: graphviz.Digraph, path: Path, what: str) -> Path:
    """Write ``dot`` to ``path`` as its suffix says (a :data:`FORMATS` key),
    atomically; ``what`` names the diagram in the log.

    Raises
    ------
    RenderError
        For a missing folder, a missing or failing ``dot``, or a failed write.
    """
    fmt = path.suffix.lower().lstrip(".")
    if not path.parent.is_dir():
        raise RenderError(f"render: folder {str(path.parent)!r} does not exist; create it first")
    data = dot.source.encode("utf-8") if not FORMATS[fmt] else pipe(dot, fmt, what=str(path))
    try:
        atomic_write(path, lambda handle: handle.write(data))
    except OSError as exc:
        raise RenderError(f"render: cannot write {str(path)!r}: {exc.strerror or exc}") from None
    logger.debug("%s: wrote %s (%d bytes)", what, path, len(data))
    return path


def pipe(dot: graphviz.Digraph, fmt: str, what: str = "the diagram") -> bytes:
    """Run ``dot`` on the source and return the rendered bytes.

    Raises
    ------
    RenderError
        When ``dot`` is missing or fails.
    """
    try:
        return dot.pipe(format=fmt, quiet=True)
    except graphviz.ExecutableNotFound:
        raise RenderError(
            f"cannot draw {what}: Graphviz's 'dot' program was not found on PATH; {INSTALL_HINT}"
        ) from None
    except OSError as exc:  # a 'dot' on PATH that cannot be run (not executable, not a program)
        raise RenderError(f"cannot draw {what}: Graphviz's 'dot' on PATH cannot be run ({reason(exc)}); "
                          f"{INSTALL_HINT}") from None
    except graphviz.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        raise RenderError(
            f"cannot draw {what}: 'dot' failed (exit {exc.returncode})"
            + (f": {detail[-1]}" if detail else "")
        ) from None


#: The last reason a notebook got no diagram (see :func:`svg_or_none`).
_last_reason: list[str] = [""]


def svg_or_none(dot: graphviz.Digraph, what: str) -> str | None:
    """``dot`` drawn as SVG text for a notebook, or ``None`` (no image: the
    notebook shows the text) when it cannot be drawn. The reason is logged,
    though not again straight after itself: IPython asks
    ``_repr_mimebundle_`` and then ``_repr_svg_`` for one display, and a
    notebook without ``dot`` would get the install hint twice each time."""
    try:
        svg = pipe(dot, "svg", what=what).decode("utf-8")
    except RenderError as exc:
        reason = str(exc)  # "cannot draw ...: ...", with the install hint
        if reason != _last_reason[0]:
            _last_reason[0] = reason
            logger.warning("%s", reason)
        return None
    _last_reason[0] = ""
    return svg


def repr_svg(graph: Graph) -> str | None:
    """The diagram as SVG text for notebooks; ``None`` (no image) when it cannot be drawn."""
    return svg_or_none(to_dot(graph), repr(graph.name))


def repr_mimebundle(graph: Graph, include=None, exclude=None) -> dict[str, str]:
    """IPython's rich display: the SVG diagram when ``dot`` can draw it, and
    always the one-line ``repr`` as text."""
    bundle = {"text/plain": repr(graph)}
    wanted = "image/svg+xml"
    if (include is None or wanted in include) and not (exclude and wanted in exclude):
        svg = repr_svg(graph)
        if svg is not None:
            bundle[wanted] = svg
    return bundle
