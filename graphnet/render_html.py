"""The diagram as a page to explore: ``Graph.render("model.html")``.

One self-contained HTML file, which needs no network when opened: the
diagram as Graphviz draws it (:func:`graphnet.render.to_dot`, as SVG, inline),
`svg-pan-zoom <https://github.com/bumbu/svg-pan-zoom>`_ (vendored in
``graphnet/vendor``, BSD-2-Clause, inline) for panning and zooming, and a
short script of our own (``graphnet/assets/explore.js``, with
``explore.css``) for the rest:

- **details on click**: a node's kind, size, activation, loss, whether it
  is frozen, its parameters, what feeds it and what it feeds (with each
  weight's shape and norm), and its statistics and attributions when they
  were given; a synapse's too;
- **collapsible groups**: each chain of like hidden nodes (see
  ``to_dot(collapse=True)``) is one box in the collapsed layout and a framed
  group in the expanded one; clicking a box expands it, clicking a group's
  frame collapses it. Both layouts are Graphviz's own (drawn here, not in
  the browser), so the page shows one layout at a time and each switch
  keeps the group clicked in view. Past :data:`EXPAND_LIMIT` nodes only
  the collapsed layout is kept;
- ``#node=NAME`` at the end of the file's address opens on that node's details.

Node names reach the page only as SVG text (escaped by Graphviz) and JSON
read with ``textContent``, so no name can inject markup or script.
"""

from __future__ import annotations

import html
import json
import logging
import math
import re
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from . import _overlays as overlays
from .errors import RenderError
from ._files import atomic_write
from ._text import reason
from ._render_options import checked_options
from ._validation import check_path
from .nodes import DenseNode, Hidden, Output
from ._dot_text import cluster_label, dot_id, dot_text
from .render import PAGES, pipe, to_dot
from .summary import describe_activation

if TYPE_CHECKING:
    from .attributions import Attributions
    from .graph import Graph
    from .statistics import Statistics

__all__ = ["render_html", "page", "EXPAND_LIMIT", "PAN_ZOOM_VERSION"]

logger = logging.getLogger(__name__)

#: Graphs of more nodes keep only their collapsed layout (an expanded one would take minutes).
EXPAND_LIMIT = 1000
#: The vendored svg-pan-zoom (``graphnet/vendor/svg-pan-zoom.min.js``).
PAN_ZOOM_VERSION = "3.6.2"
_TOP_COLUMNS = 10


def render_html(graph: Graph, path, *, rankdir: str = "LR", show_shapes: bool = True,
                show_activations: bool = True, dpi: int | None = None, stats: Statistics | None = None,
                collapse: bool = False, attributions: Attributions | None = None) -> Path:
    """Write the page (see the module docs) to ``path``, atomically.

    Parameters
    ----------
    graph : Graph
    path : str or PathLike
        Ends in ``.html``.
    rankdir, show_shapes, show_activations, stats, attributions
        As for :func:`graphnet.render.to_dot`; statistics and attributions
        are in the diagram and in the details.
    dpi : int, optional
        Checked as by :func:`~graphnet.render.to_dot`, then ignored: the
        page is vector graphics.
    collapse : bool
        Open on the collapsed layout (when the graph has chains to collapse).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    RenderError
        For a bad option or path, a missing folder, or a missing or failing ``dot``.
    """
    path = Path(check_path(path, "render_html: path", "the .html file to write", RenderError, file=True))
    stats, attributions = checked_options(graph, "render_html", rankdir=rankdir, show_shapes=show_shapes,
                                          show_activations=show_activations, dpi=dpi, stats=stats,
                                          collapse=collapse, attributions=attributions)
    collapse = bool(collapse)
    if path.suffix.lower() != ".html":
        raise RenderError(f"render_html: {str(path)!r} must end in .html")
    if not path.parent.is_dir():
        raise RenderError(f"render: folder {str(path.parent)!r} does not exist; create it first")
    options = {"rankdir": rankdir, "show_shapes": show_shapes, "show_activations": show_activations,
               "stats": stats, "attributions": attributions}
    chains = overlays.chains(graph)
    items, index = _items(graph, chains, stats, attributions)
    layouts = []
    expandable = bool(chains) and len(graph) <= EXPAND_LIMIT
    for collapsed in ((True, False) if expandable else (bool(chains),)):
        dot = to_dot(graph, collapse=collapsed, **options)
        dot.body.extend(_ids(graph, chains, index, collapsed))
        svg = pipe(dot, "svg", what=str(path)).decode("utf-8")
        name = "collapsed" if collapsed else "expanded"
        label = f"diagram of {graph.name}" + (f" ({name})" if expandable else "")
        layouts.append({"name": name,
                        "svg": _inline(svg, len(layouts), label),
                        "edges": _edge_titles(graph, chains, collapsed, index)})
    start = 0 if (collapse or len(layouts) == 1) else 1
    text = page(graph.name, layouts, items, start, too_big=bool(chains) and not expandable)
    try:
        atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))
    except OSError as exc:
        raise RenderError(f"render: cannot write {str(path)!r}: {reason(exc)}") from None
    logger.debug("%s: wrote %s (%d bytes)", graph.name, path, len(text))
    return path


# ---------------------------------------------------------------- the diagram
def _ids(graph: Graph, chains: dict[str, list[str]], index: dict, collapsed: bool) -> list[str]:
    """DOT statements giving every drawn node (and, expanded, every group
    frame) an ``id`` that names its details entry."""
    lines = []
    members = {m for ms in chains.values() for m in ms}
    for name in graph.topological_order:
        if collapsed and name in members:
            if name in chains:
                lines.append(f"\t{dot_id(name)} [id=\"i{index[('group', name)]}\"]\n")
            continue
        lines.append(f"\t{dot_id(name)} [id=\"i{index[('node', name)]}\"]\n")
    if not collapsed:
        for first, group in chains.items():
            frame = {"id": f"i{index[('group', first)]}", "label": f"{first} … {group[-1]} ×{len(group)}",
                     "style": "rounded,dashed", "color": "#8c8c8c", "fontcolor": "#555555",
                     "fontsize": "10", "tooltip": "click the frame to collapse the group"}
            written = {"label": cluster_label, "tooltip": dot_text}
            body = "; ".join(f"{key}={written.get(key, dot_id)(value)}" for key, value in frame.items())
            lines.append(f"\tsubgraph {dot_id('cluster_' + first)} {{{body}; "
                         + "; ".join(dot_id(m) for m in group) + "}\n")
    return lines


def _edge_titles(graph: Graph, chains, collapsed: bool, index: dict) -> dict[str, int]:
    """Graphviz's title of each drawn edge (``src->dst`` of the drawn ends) -> details entry."""
    drawn_as = {m: first for first, ms in chains.items() for m in ms} if collapsed else {}
    titles = {}
    for s in graph.synapses:
        src, dst = drawn_as.get(s.src, s.src), drawn_as.get(s.dst, s.dst)
        if src != dst:
            titles[f"{src}->{dst}"] = index[("synapse", (s.src, s.dst))]
    return titles


def _inline(svg: str, layout: int, label: str) -> str:
    """Graphviz's SVG made fit to sit in a page: no prolog, doctype or comments,
    ids unique across layouts, sized by its container, named ``label`` for
    screen readers."""
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.S)
    svg = re.sub(r'\bid="', f'id="L{layout}_', svg)
    named = f'<svg width="100%" height="100%" role="group" aria-label="{html.escape(label, quote=True)}"'
    return re.sub(r'<svg width="[^"]*" height="[^"]*"', lambda _: named, svg, count=1)


# ---------------------------------------------------------------- the details
def _items(graph: Graph, chains, stats, attributions) -> tuple[list[dict], dict]:
    """One details entry per node, group and synapse, and where each one is."""
    weights = graph.get_weights()
    feeds: dict[str, list[str]] = {}  # each node's consumers, in the synapses' order
    for s in graph.synapses:
        feeds.setdefault(s.src, []).append(s.dst)
    items, index = [], {}
    for name in graph.topological_order:
        index[("node", name)] = len(items)
        items.append(_node_item(graph, name, weights, stats, attributions, feeds.get(name, [])))
    for first, members in chains.items():
        index[("group", first)] = len(items)
        items.append(_group_item(graph, members, weights, stats))
    for s in graph.synapses:
        index[("synapse", (s.src, s.dst))] = len(items)
        items.append(_synapse_item(s, weights, stats))
    return items, index


def _node_item(graph: Graph, name: str, weights, stats, attributions, consumers: list[str]) -> dict:
    node = graph.nodes[name]
    rows = [["kind", node.kind], ["size", f"{node.size} {'features' if node.kind == 'input' else 'units'}"]]
    if isinstance(node, DenseNode):
        rows.append(["activation", describe_activation(node.activation)])
        if isinstance(node, Hidden) and node.dropout:
            rows.append(["dropout", f"{node.dropout:g}"])
        if isinstance(node, Output):
            rows.append(["loss", node.loss.name + ("" if node.loss_weight == 1.0 else f" × {node.loss_weight:g}")])
        rows.append(["frozen", "yes" if not node.trainable else "no"])
        incoming = graph.incoming(name)
        params = node.num_params + sum(s.num_params for s in incoming)
        rows.append(["parameters", f"{params:,} (bias {node.num_params:,}, |b| {_num(_norm(weights[f'{name}.bias']))})"])
        rows += [["from", f"{s.src}  {s.shape[0]}×{s.shape[1]}, |W| {_num(_norm(weights[s.key]))}"]
                 for s in incoming]
    rows += [["to", dst] for dst in consumers]
    known = None if stats is None else stats.nodes.get(name)
    if known is not None:
        rows += _stats_rows(known, stats.rows)
    if attributions is not None and name in attributions.values:
        rows += _attribution_rows(attributions, name)
    elif attributions is not None and name == attributions.output:
        rows.append(["attributions", "explained here: " + attributions.describe()])
    return {"type": "node", "name": name, "title": name, "rows": rows}


def _group_item(graph: Graph, members: list[str], weights, stats) -> dict:
    first = graph.nodes[members[0]]
    params = sum(graph.nodes[m].num_params + sum(s.num_params for s in graph.incoming(m)) for m in members)
    rows = [["group", f"{len(members)} hidden nodes, each feeding only the next"],
            ["each", f"{first.size} units, {describe_activation(first.activation)}"
             + (f", dropout {first.dropout:g}" if first.dropout else "")
             + (", frozen" if not first.trainable else "")],
            ["parameters", f"{params:,}"]]
    if stats is not None:
        rows += [["", _strip(line)] for line in overlays.chain_lines(members, stats)]
    rows += [["member", m] for m in members[:50]]
    if len(members) > 50:
        rows.append(["", f"... {len(members) - 50} more"])
    return {"type": "group", "name": members[0], "title": f"{members[0]} … {members[-1]} ×{len(members)}",
            "rows": rows}


def _synapse_item(synapse, weights, stats) -> dict:
    rows = [["shape", f"{synapse.shape[0]}×{synapse.shape[1]} ({synapse.num_params:,} weights)"],
            ["|W|", _num(_norm(weights[synapse.key]))], ["frozen", "yes" if not synapse.trainable else "no"]]
    known = None if stats is None else stats.synapses.get((synapse.src, synapse.dst))
    if known is not None and known.grad_norm is not None:
        rows.append(["|dL/dW|", _num(known.grad_norm)])
    return {"type": "synapse", "name": synapse.key, "title": f"{synapse.src} → {synapse.dst}", "rows": rows}


def _stats_rows(known, rows: int) -> list[list[str]]:
    out = [["statistics", f"on {rows} rows"], ["mean, std", f"{_num(known.mean)}, {_num(known.std)}"]]
    if known.dead is not None:
        out.append(["dead", f"{len(known.dead_units)} of {known.size}"
                    + (f": units {_list(known.dead_units)}" if known.dead_units else "")])
    if known.saturated is not None:
        out.append(["saturated", f"{100 * known.saturated:.1f}% of activations"
                    + (f"; always: units {_list(known.saturated_units)}" if known.saturated_units else "")])
    if known.bias_grad_norm is not None:
        out.append(["|dL/db|", _num(known.bias_grad_norm)])
    return out


def _attribution_rows(report: Attributions, name: str) -> list[list[str]]:
    mean_abs, mean = report.mean_abs[name], report.mean[name]
    out = [["attribution", f"{100 * report.shares[name]:.1f}% of the mean |attribution|"],
           ["mean", f"{_num(float(report.per_node[name].mean()))} (summed over columns, averaged over rows)"]]
    best = sorted(range(len(mean_abs)), key=lambda i: -mean_abs[i])[:_TOP_COLUMNS]
    out += [[f"column {i}", f"mean {_num(float(mean[i]))}, mean |.| {_num(float(mean_abs[i]))}"] for i in best]
    return out


def _norm(array) -> float:
    return math.sqrt(float((array.astype("float64") ** 2).sum()))


def _num(value: float) -> str:
    return "0" if value == 0 else (f"{value:.4g}" if 1e-3 <= abs(value) < 1e5 else f"{value:.3e}")


def _list(units, limit: int = 12) -> str:
    return ", ".join(map(str, units[:limit])) + (f", ... {len(units) - limit} more" if len(units) > limit else "")


def _strip(label: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", label))


# ---------------------------------------------------------------- the page
def page(title: str, layouts: list[dict], items: list[dict], start: int, too_big: bool = False) -> str:
    """The HTML text: ``layouts`` (each ``{"name", "svg", "edges"}``) with the
    ``items`` shown on click, opening on layout ``start``."""
    data = {"title": title, "start": start, "items": items, "tooBig": too_big,
            "edges": [layout["edges"] for layout in layouts], "names": [layout["name"] for layout in layouts]}
    # Inside <script>, "</" would end the element: JSON's \u escapes keep it data.
    blob = json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    views = "".join(
        f'<div class="gn-view" data-layout="{i}"{"" if i == start else " hidden"}>{layout["svg"]}</div>'
        for i, layout in enumerate(layouts)
    )
    package = resources.files("graphnet")
    vendored = package.joinpath("vendor/svg-pan-zoom.min.js").read_text("utf-8")
    return _PAGE.format(title=html.escape(title), views=views, data=blob,
                        pan_zoom=vendored.replace("</script", "<\\/script"), version=PAN_ZOOM_VERSION,
                        script=package.joinpath("assets/explore.js").read_text("utf-8"),
                        style=package.joinpath("assets/explore.css").read_text("utf-8"))




_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="graphnet">
<title>{title}</title>
<style>{style}</style>
<noscript><style>#gn-fit, .hint {{ display: none; }}</style></noscript>
</head>
<body>
<header>
  <h1>{title}</h1>
  <button id="gn-fit" type="button">Fit</button>
  <span id="gn-toggle-place"></span>
  <span class="hint">drag to pan · scroll to zoom · click a node or synapse for its details
    (keys: Tab, Enter, + − 0, Esc)</span>
  <noscript><span class="hint">JavaScript is off: the diagram alone, without panning, zooming or details</span></noscript>
</header>
<main>
  <div id="gn-views">{views}</div>
  <aside id="gn-details" hidden aria-live="polite" aria-label="details">
    <button class="close" type="button" title="Close (Esc)" aria-label="Close the details">×</button>
    <h2></h2><div class="kind"></div>
    <table><tbody></tbody></table>
  </aside>
</main>
<script type="application/json" id="graphnet-data">{data}</script>
<script>/* svg-pan-zoom {version}, BSD-2-Clause (graphnet/vendor/svg-pan-zoom.LICENSE) */
{pan_zoom}</script>
<script>{script}</script>
</body>
</html>
"""


PAGES["html"] = render_html
