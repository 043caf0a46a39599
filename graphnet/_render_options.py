"""The checks of a diagram's options, shared by every writer of one
(:func:`graphnet.render.to_dot`, :func:`graphnet.render.render`,
:func:`graphnet.render_html.render_html`): each refuses a bad option with the
same :class:`~graphnet.errors.RenderError` before anything is drawn or written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _overlays as overlays
from ._validation import check_bool, is_int
from .errors import RenderError
from .statistics import Statistics

if TYPE_CHECKING:
    from .attributions import Attributions

__all__ = ["RANKDIRS", "check_layout", "checked_options"]

RANKDIRS = ("LR", "TB", "RL", "BT")


def check_layout(rankdir: object, dpi: object, what: str) -> None:
    """Refuse a ``rankdir`` not in :data:`RANKDIRS` or a ``dpi`` that is not
    a positive integer (None is Graphviz's default); ``what`` begins the message."""
    if rankdir not in RANKDIRS:
        raise RenderError(f"{what}: rankdir must be one of {list(RANKDIRS)}, got {rankdir!r}")
    if dpi is not None and not is_int(dpi, 1):
        raise RenderError(f"{what}: dpi must be a positive integer, got {dpi!r}")


def checked_options(graph, what: str, *, rankdir, show_shapes, show_activations, dpi, stats, collapse,
                    attributions) -> tuple[Statistics | None, Attributions | None]:
    """``(stats, attributions)`` once every option of a diagram of ``graph``
    is checked; ``what`` (``"to_dot"``, ``"render_html"``) begins the messages.

    Raises
    ------
    RenderError
        For a bad ``rankdir`` or ``dpi``, a flag that is not True or False,
        or ``stats`` or ``attributions`` that do not describe this graph.
    """
    check_layout(rankdir, dpi, what)
    for flag, value in (("show_shapes", show_shapes), ("show_activations", show_activations), ("collapse", collapse)):
        check_bool(value, f"{what}: {flag}", RenderError)
    return _checked_stats(graph, stats, what), overlays.checked_attributions(graph, attributions, what)


def _checked_stats(graph, stats, what: str) -> Statistics | None:
    if stats is None:
        return None
    if not isinstance(stats, Statistics):
        raise RenderError(
            f"{what}: stats must be what graph.statistics(x, y) returns, got {type(stats).__name__}"
        )
    if not any(name in graph.nodes for name in stats.nodes):
        raise RenderError(
            f"{what}: these statistics describe graph {stats.graph!r}, whose nodes "
            f"{list(stats.nodes)[:5]} are not nodes of graph {graph.name!r}"
        )
    return stats
