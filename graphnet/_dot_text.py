"""Text in Graphviz's DOT language, escaped so that every name shows exactly.

Three kinds of text, each with its own rules in Graphviz:

ids (:func:`dot_id`)
    Always quoted, so DOT keywords (``node``, ``graph``), names that look
    like HTML (``<x>``), numbers and names with ``:`` (a port separator
    when unquoted in an edge) are taken literally. Inside DOT quotes only
    ``\\"`` is an escape; a backslash is doubled so that a name ending in
    one cannot swallow the closing quote.
free text (:func:`dot_text`)
    Attributes such as ``tooltip`` are "escString"s: Graphviz replaces
    ``\\N``, ``\\G``, ``\\E``, ``\\L`` (the node's name, the graph's, ...)
    and reads entities such as ``&amp;``, so a backslash is written four
    times and ``&`` as ``&amp;``.
HTML-like labels (:func:`label_text`)
    The same replacements run on them after their entities are read: a
    backslash is written twice, after HTML's own escapes.
a cluster's label (:func:`cluster_label`)
    Entities are read and a doubled backslash is one, but nothing is
    replaced: the HTML-like label's text, quoted.
"""

from __future__ import annotations

import html

__all__ = ["dot_id", "dot_text", "label_text", "cluster_label"]


def dot_id(name: str) -> str:
    """``name`` as a quoted DOT id."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dot_text(text: str) -> str:
    """``text`` as a quoted DOT attribute that Graphviz shows as it is (a tooltip)."""
    return '"' + text.replace("&", "&amp;").replace("\\", "\\\\\\\\").replace('"', '\\"') + '"'


def label_text(text: str) -> str:
    """``text`` inside an HTML-like label, shown as it is."""
    return html.escape(text).replace("\\", "\\\\")


def cluster_label(text: str) -> str:
    """``text`` as a quoted cluster ``label`` that Graphviz shows as it is."""
    return '"' + label_text(text) + '"'
