"""What :func:`graphnet.render.to_dot` overlays on a diagram for ``stats=`` and ``collapse=True``.

Statistics (:class:`~graphnet.statistics.Statistics`) become

- **node fill**: the kind's usual colour blended towards red by the share of
  dead (relu family) or saturated (sigmoid-like) units, so a dead layer is
  the red box on the page;
- **node labels**: the activations' mean and std, and the dead or saturated
  units as "3 of 8 dead";
- **edge width and darkness**: the gradient norm ``|dL/dW|`` on a log scale
  from the smallest to the largest in the graph (the weight norm when the
  statistics were measured without targets), so a vanishing gradient is a
  thin pale line; the number is in the edge label;
- a **legend** saying all of that, with the batch size and the loss.

Attributions (:class:`~graphnet.attributions.Attributions`) deepen each
input's fill by its share of the mean absolute attribution and put the share,
the mean and the top columns in its label; the explained node says which
unit, and the legend how they were computed.

Collapsing draws a chain of hidden nodes with the same size, activation,
dropout and trainable flag, each feeding only the next, as one box labelled
``×k``: a 5,000-node deep stack reads as the few boxes it is made of.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from typing import TYPE_CHECKING

from ._dot_text import label_text
from ._text import preview
from .attributions import Attributions
from .errors import RenderError
from .nodes import Hidden

if TYPE_CHECKING:
    from .graph import Graph
    from .statistics import NodeStats, Statistics, SynapseStats

__all__ = ["chains", "shade", "contrast", "legible", "node_lines", "chain_lines", "EdgeScale", "legend", "STUCK_COLOR",
           "checked_attributions", "attribution_fill", "attribution_lines", "explained_line", "attribution_legend", "stacked"]

#: Where a fill goes as the share of dead or saturated units reaches 100%.
STUCK_COLOR = "#d7301f"
#: Orders of magnitude between the thickest and the thinnest edge.
DECADES = 3
_THIN, _THICK = 0.5, 6.0
_PALE, _DARK = "#c8c8c8", "#202020"
_ALERT = "#b2182b"
_NOTE = "#444444"


# ------------------------------------------------------------------ chains
def chains(graph: Graph) -> dict[str, list[str]]:
    """Chains of two or more hidden nodes to draw as one box: first node -> members in order."""
    nodes, synapses = graph.nodes, graph.synapses
    fan_out = Counter(s.src for s in synapses)
    fan_in = Counter(s.dst for s in synapses)

    def look(node):
        return (node.size, node.activation, node.dropout, node.trainable)

    following: dict[str, str] = {}
    for synapse in synapses:
        a, b = nodes[synapse.src], nodes[synapse.dst]
        if (isinstance(a, Hidden) and isinstance(b, Hidden) and fan_out[a.name] == 1
                and fan_in[b.name] == 1 and look(a) == look(b)):
            following[a.name] = b.name
    followed = set(following.values())
    found = {}
    for name in graph.topological_order:
        if name in following and name not in followed:
            members = [name]
            while members[-1] in following:
                members.append(following[members[-1]])
            found[name] = members
    return found


# ------------------------------------------------------------------ colours
def _rgb(color: str) -> tuple[int, int, int]:
    color = color.lstrip("#")
    return tuple(int(color[i : i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]


def _luminance(color: str) -> float:
    """WCAG 2's relative luminance of an ``#rrggbb`` colour."""
    linear = [c / 255 / 12.92 if c <= 10 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in _rgb(color)]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    """WCAG 2's contrast ratio of two colours, 1 to 21."""
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


#: The contrast WCAG 2 asks of normal text (AA).
_READABLE = 4.5
_FONT_COLOR = re.compile(r'(?<![a-z])color="(#[0-9a-fA-F]{6})"')


def _readable(color: str, fill: str) -> str:
    """``color`` for text on ``fill``, or black or white, whichever reads
    better, where ``color`` reads under 4.5:1 there."""
    if contrast(color, fill) >= _READABLE:
        return color
    return max(("#000000", "#ffffff"), key=lambda c: contrast(c, fill))


def legible(attributes: dict[str, str]) -> None:
    """Make the text of a node's label readable on its ``fillcolor`` (a node
    shaded deep red by its dead units, or blue by its attribution): each text
    colour through :func:`_readable`, the name's (Graphviz's black) too."""
    fill = attributes["fillcolor"]
    attributes["label"] = _FONT_COLOR.sub(lambda m: f'color="{_readable(m.group(1), fill)}"', attributes["label"])
    name = _readable("#000000", fill)
    if name != "#000000":
        attributes["fontcolor"] = name


def _blend(a: str, b: str, t: float) -> str:
    t = min(max(t, 0.0), 1.0)
    mixed = (round(x + (y - x) * t) for x, y in zip(_rgb(a), _rgb(b)))
    return "#" + "".join(f"{v:02x}" for v in mixed)


def shade(fill: str, share: float | None) -> str:
    """``fill`` moved towards :data:`STUCK_COLOR` by ``share`` (unchanged for ``None`` or 0)."""
    # A floor, so that one dead unit of many is still visible.
    return fill if not share else _blend(fill, STUCK_COLOR, 0.12 + 0.88 * share)


def _number(value: float) -> str:
    if value == 0:
        return "0"
    if 1e-3 <= abs(value) < 1e4:
        return f"{value:.3g}"
    return f"{value:.1e}".replace("e-0", "e-").replace("e+0", "e")


# ------------------------------------------------------------------ labels
def _small(text: str, color: str = _NOTE, size: int = 9) -> str:
    return f'<font point-size="{size}" color="{color}">{text}</font>'


def node_lines(stats: NodeStats) -> list[str]:
    """HTML label lines for one node: mean and std, then dead or saturated units."""
    # Red text reads on a pale fill; on a deeply shaded one, near-black does.
    alert = _ALERT if (stats.stuck or 0) < 0.35 else "#111111"
    note = _NOTE if (stats.stuck or 0) < 0.35 else "#111111"
    lines = [_small(f"mean {_number(stats.mean)} · std {_number(stats.std)}", note)]
    if stats.dead is not None:
        dead = len(stats.dead_units)
        text = f"<b>{dead} of {stats.size} dead ({_percent(stats.dead)})</b>" if dead else "none dead"
        lines.append(_small(text, alert if dead else note))
    if stats.saturated is not None:
        always = len(stats.saturated_units)
        text = f"<b>{_percent(stats.saturated)} saturated</b>" if stats.saturated else "none saturated"
        if always:
            text += f" ({always} of {stats.size} always)"
        lines.append(_small(text, alert if stats.saturated else note))
    return lines


def _percent(share: float) -> str:
    """A share as a percentage that is never rounded to 0% or 100% when it is not
    (escaped for the HTML-like labels it goes into)."""
    if 0 < share < 0.01:
        return "&lt;1%"
    if 0.99 < share < 1:
        return "&gt;99%"
    return f"{100 * share:.0f}%"


def chain_lines(members: list[str], stats: Statistics | None) -> list[str]:
    """HTML label lines for a collapsed chain: the worst member's dead or
    saturated share, and the gradient norms of the first and last links
    inside it (a gradient that vanishes along the chain shows here)."""
    if stats is None:
        return []
    lines = []
    known = [stats.nodes[m] for m in members if m in stats.nodes]
    stuck = [(s.stuck, s) for s in known if s.stuck is not None]
    if stuck:
        share, worst = max(stuck, key=lambda pair: pair[0])
        if share:
            what = "dead" if (worst.dead or 0) >= (worst.saturated or 0) else "saturated"
            color = _ALERT if share < 0.35 else "#111111"
            lines.append(_small(f"<b>up to {_percent(share)} {what}</b> ({label_text(worst.name)})", color))
        else:
            lines.append(_small("no dead or saturated units"))
    links = [stats.synapses.get(pair) for pair in itertools.pairwise(members)]
    norms = [s.grad_norm for s in links if s is not None and s.grad_norm is not None]
    if norms:
        lines.append(_small(f"grad inside {_number(norms[0])} → {_number(norms[-1])}"))
    return lines


def chain_title(members: list[str]) -> str:
    return f"{len(members)} hidden nodes: {preview(members, 12)}"


# ------------------------------------------------------------------ edges
class EdgeScale:
    """Edge width and darkness from the gradient norms (or the weight norms
    without gradients) on a log scale: the largest in the graph is thickest,
    one :data:`DECADES` orders of magnitude below (or zero) thinnest, so a
    factor of 3 barely shows while a vanishing gradient does."""

    def __init__(self, stats: Statistics):
        self.gradients = stats.has_gradients
        values = [self.value(s) for s in stats.synapses.values()]
        largest = max((v for v in values if v is not None and v > 0), default=None)
        #: Whether any norm is above 0 (every gradient 0: nothing to scale by).
        self.any = largest is not None
        self.high = largest if largest is not None else 1.0
        self.low = self.high / 10**DECADES

    @property
    def what(self) -> str:
        return "gradient norm |dL/dW|" if self.gradients else "weight norm |W|"

    def value(self, stats: SynapseStats) -> float | None:
        return stats.grad_norm if self.gradients else stats.weight_norm

    def position(self, stats: SynapseStats) -> float:
        """1 for the largest norm, 0 for one DECADES orders of magnitude below it or less."""
        value = self.value(stats)
        if not value or value <= 0:
            return 0.0
        return min(max(1.0 + math.log10(value / self.high) / DECADES, 0.0), 1.0)

    def attributes(self, stats: SynapseStats) -> dict[str, str]:
        t = self.position(stats)
        return {"penwidth": f"{_THIN + (_THICK - _THIN) * t:.2f}", "color": _blend(_PALE, _DARK, t)}

    def label(self, shape: str | None, stats: SynapseStats) -> str:
        """An HTML-like edge label: the shape, then the norm, on white so that a
        thick edge running under it leaves it legible."""
        value = self.value(stats)
        name = "grad" if self.gradients else "|W|"
        lines = [] if shape is None else [shape]
        if value is not None:
            lines.append(_small(f"{name} {_number(value)}", size=8))
        return ('<<table border="0" cellborder="0" cellpadding="1" cellspacing="0" bgcolor="white">'
                f'<tr><td>{"<br/>".join(lines)}</td></tr></table>>')


# ------------------------------------------------------------------ legend
def legend(stats: Statistics, scale: EdgeScale, fills: tuple[str, ...]) -> str:
    """The legend, an HTML-like label (the graph's own, drawn below the diagram)."""
    loss = f" · loss {_number(stats.loss)}" if stats.loss is not None else ""
    swatches = "".join(
        f'<td bgcolor="{shade(fills[0], share)}" border="1" color="#888888" width="44">'
        f'<font color="{_readable("#000000", shade(fills[0], share))}">{100 * share:.0f}%</font></td>'
        for share in (0.0, 0.25, 0.5, 0.75, 1.0)
    )
    thin, thick = _number(scale.low), _number(scale.high)
    widths = (f'thickest at {thick} (the largest),<br align="left"/>thinnest and palest at {thin} '
              f'({10**DECADES:,} times less) or below' if scale.any else
              'every one is 0, all drawn<br align="left"/>thinnest and palest')
    rows = [
        f'<tr><td colspan="5" align="left"><b>Statistics of {label_text(stats.graph)}</b> on '
        f"{stats.rows} rows{loss}</td></tr>",
        # A table of its own, so the long lines below cannot stretch one swatch.
        f'<tr><td colspan="5" align="left"><table border="0" cellspacing="2" cellpadding="2">'
        f"<tr>{swatches}</tr></table></td></tr>",
        '<tr><td colspan="5" align="left">fill: share of units dead (relu family: never '
        'positive on the batch)<br align="left"/>or of activations saturated (sigmoid, tanh: '
        'derivative under 5% of its peak)<br align="left"/></td></tr>',
        f'<tr><td colspan="5" align="left">edge width: {scale.what}, log scale: {widths}'
        '<br align="left"/></td></tr>',
        '<tr><td colspan="5" align="left">mean, std: of the activations; dashed: frozen</td></tr>',
    ]
    return ('<<table border="0" cellborder="0" cellspacing="3" cellpadding="2">'
            + "".join(rows) + "</table>>")


# ------------------------------------------------------------ attributions
def checked_attributions(graph: Graph, report, what: str = "to_dot") -> Attributions | None:
    """``report`` when it is ``None`` or attributions of ``graph``'s nodes;
    ``what`` begins the messages.

    Raises
    ------
    RenderError
        For anything else.
    """
    if report is None:
        return None
    if not isinstance(report, Attributions):
        raise RenderError(
            f"{what}: attributions must be what graph.attributions(x) returns, got {type(report).__name__}"
        )
    unknown = [n for n in [*report.values, report.output] if n not in graph.nodes]
    if unknown:
        raise RenderError(
            f"{what}: these attributions describe graph {report.graph!r}, whose nodes {preview(unknown)} "
            f"are not in graph {graph.name!r}"
        )
    return report


#: Where an input's fill goes as its share of the attributions reaches 100%.
ATTRIBUTION_COLOR = "#5b8fd0"


def attribution_fill(fill: str, share: float) -> str:
    """An input's ``fill`` deepened by its share of the mean absolute attribution."""
    return _blend(fill, ATTRIBUTION_COLOR, share)


def attribution_lines(report: Attributions, name: str, top: int = 3) -> list[str]:
    """HTML label lines for one input node: its share and mean attribution, then its top columns."""
    mean_abs, mean = report.mean_abs[name], report.mean[name]
    lines = [_small(f"<b>attribution {_percent(report.shares[name])}</b> · mean "
                    f"{_signed(float(report.per_node[name].mean()))}", "#1f3f66")]
    best = [i for i in sorted(range(len(mean_abs)), key=lambda i: -mean_abs[i])[:top] if mean_abs[i] > 0]
    if len(mean_abs) > 1 and best:
        lines.append(_small("top columns: " + ", ".join(
            f"{label_text(report.column(name, i))} ({_signed(float(mean[i]))})" for i in best)))
    return lines


def explained_line(report: Attributions) -> str:
    """The label line of the node whose activation the attributions explain."""
    return _small(f"<b>explained</b>: {label_text(report.unit_chosen())}", "#1f3f66")


def attribution_legend(report: Attributions) -> str:
    """The legend of an attribution overlay, an HTML-like label."""
    rows = [
        f'<tr><td align="left"><b>Attributions</b>: {label_text(report.describe())}</td></tr>',
        '<tr><td align="left">input fill and %: the input\'s share of the mean |attribution| '
        '(darker: mattered more);<br align="left"/>mean: its attribution summed over its columns, '
        f'averaged over the rows; completeness error {_number(report.completeness_error)}'
        '<br align="left"/></td></tr>',
    ]
    return '<<table border="0" cellborder="0" cellspacing="3" cellpadding="2">' + "".join(rows) + "</table>>"


def stacked(*labels: str) -> str:
    """HTML-like labels (``<...>``) one above the other, as one label."""
    cells = "".join(f'<tr><td align="left">{label[1:-1]}</td></tr>' for label in labels)
    return f'<<table border="0" cellborder="0" cellspacing="0" cellpadding="0">{cells}</table>>'


def _signed(value: float) -> str:
    return ("+" if value > 0 else "") + _number(value)
