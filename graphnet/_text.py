"""Small helpers that shape error messages: bounded lists, cycles and values.

Every message that shows user data goes through these, so a message stays
short however large the graph, spec or value behind it.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["preview", "format_cycle", "shown"]


def preview(names: Iterable[str], limit: int = 20) -> str:
    """Up to ``limit`` names for an error message, then how many were left out."""
    names = list(names)
    listed = ", ".join(repr(n) for n in names[:limit])
    return f"[{listed}, ... {len(names) - limit} more]" if len(names) > limit else f"[{listed}]"


def format_cycle(path: list[str], limit: int = 12) -> str:
    """``a -> b -> c -> a``; a long cycle keeps its ends and says how much is left out."""
    if len(path) <= limit:
        return " -> ".join(path)
    head, tail = path[: limit // 2], path[-(limit // 2) :]
    return " -> ".join([*head, f"... ({len(path) - limit} more)", *tail])


def shown(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
