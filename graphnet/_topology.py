"""Algorithms on a graph's structure alone (names, kinds and edges, no weights).

A :class:`~graphnet.network.Network` keeps its structure in a
``networkx.DiGraph``; these are the few sweeps it needs in its own form, each
linear in nodes + edges: the order, reachability, what keeps a structure
from running, the one "is this a chain" test that Sequential models, specs
and importers share, and a cycle shown for a whole set of edges.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence

import networkx as nx

from ._text import format_cycle, joined, preview
from .errors import CycleError

__all__ = ["topological_sort", "reachable", "is_chain", "refuse_cycles", "structure_problems"]


def topological_sort(structure: nx.DiGraph, insertion: dict[str, int]) -> tuple[str, ...]:
    """Kahn's algorithm, always taking the earliest-inserted node that is ready.

    The same order as ``nx.lexicographical_topological_sort(structure,
    key=insertion.__getitem__)``, several times faster: the heap holds plain
    insertion numbers rather than ``(key, id, node)`` tuples.
    """
    name_of = {i: name for name, i in insertion.items()}
    waiting = dict(structure.in_degree())
    ready = [insertion[name] for name, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        name = name_of[heapq.heappop(ready)]
        order.append(name)
        for nxt in structure.successors(name):
            waiting[nxt] -= 1
            if waiting[nxt] == 0:
                heapq.heappush(ready, insertion[nxt])
    if len(order) != len(waiting):  # connect() refuses cycles, so this is a bug
        done = set(order)
        raise CycleError(f"graph has a cycle among {preview(n for n in waiting if n not in done)}")
    return tuple(order)


def reachable(structure: nx.DiGraph, starts: Iterable[str], forward: bool) -> set[str]:
    """Nodes reachable from ``starts`` (themselves included), one linear sweep."""
    neighbours = structure.successors if forward else structure.predecessors
    seen = set(starts)
    stack = list(seen)
    while stack:
        for nxt in neighbours(stack.pop()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def is_chain(names: Sequence[str], kinds: Sequence[str], links: Sequence[tuple[str, str]]) -> bool:
    """Whether ``names`` (with their ``kinds``) joined by ``links`` is exactly
    ``input -> hidden ... -> output``, the links listed in chain order: the
    shape a :class:`~graphnet.Sequential` model has."""
    return (
        len(names) >= 2
        and kinds[0] == "input"
        and kinds[-1] == "output"
        and all(kind == "hidden" for kind in kinds[1:-1])
        and list(links) == list(zip(names, names[1:]))
    )


def refuse_cycles(links: Sequence[tuple[str, str]], where: str) -> None:
    """Refuse a set of edges that contains a cycle, showing one; linear in
    nodes + edges (``nx.find_cycle`` over a whole graph is not).

    Raises
    ------
    CycleError
        ``"{where}: the synapses make the cycle a -> b -> a"``.
    """
    structure = nx.DiGraph(links)
    if nx.is_directed_acyclic_graph(structure):
        return
    loops = list(nx.selfloop_edges(structure))
    if loops:
        node = loops[0][0]
        raise CycleError(f"{where}: the synapse {node!r} -> {node!r} makes the cycle {node} -> {node}")
    component = next(c for c in nx.strongly_connected_components(structure) if len(c) > 1)
    first_seen: dict[str, int] = {}
    for src, _ in links:
        first_seen.setdefault(src, len(first_seen))
    start = min(component, key=lambda n: first_seen.get(n, len(first_seen)))
    cycle = nx.find_cycle(structure.subgraph(component), source=start)
    path = format_cycle([edge[0] for edge in cycle] + [cycle[0][0]])
    raise CycleError(f"{where}: the synapses make the cycle {path}")


#: The nodes a message about the wiring names (then how many more).
_NAMED = 20


def structure_problems(structure: nx.DiGraph, kinds: dict[str, str]) -> tuple[list[str], list[str]]:
    """What keeps a structure from running, as sentences naming the nodes:
    ``(ends, wiring)``, the missing inputs or outputs, and the nodes with no
    incoming synapse or on no path from an input to an output.

    ``kinds`` maps every node, in insertion order, to ``"input"``,
    ``"hidden"`` or ``"output"``.
    """
    inputs = [n for n, kind in kinds.items() if kind == "input"]
    outputs = [n for n, kind in kinds.items() if kind == "output"]
    ends, wiring = [], []
    if not inputs:
        ends.append("it has no Input node (add one with add_input(name, size))")
    if not outputs:
        ends.append("it has no Output node (add one with add_output(name, size, ...))")
    in_degree = dict(structure.in_degree())  # one sweep, not a view per node
    no_source = [n for n, kind in kinds.items() if kind != "input" and in_degree[n] == 0]
    if no_source:
        wiring.append(
            "these nodes have no incoming synapse: "
            + joined([f"{n!r} ({kinds[n]})" for n in no_source[:_NAMED]], len(no_source))
            + "; connect a source to each"
        )
    # In a DAG every node is reached from a node with no source and reaches
    # one with no consumer: when those are all inputs and outputs, every node
    # is on a path, with no search.
    out_degree = dict(structure.out_degree())
    no_consumer = any(kind != "output" and out_degree[n] == 0 for n, kind in kinds.items())
    if inputs and outputs and (no_source or no_consumer):
        fed = reachable(structure, inputs, forward=True)
        feeding = reachable(structure, outputs, forward=False)
        skipped = set(no_source)
        stray = [n for n in kinds if n not in skipped and not (n in fed and n in feeding)]
        if stray:
            details = []
            for n in stray[:_NAMED]:
                why = []
                if n not in fed:
                    why.append("no Input reaches it")
                if n not in feeding:
                    why.append("it reaches no Output")
                details.append(f"{n!r} ({' and '.join(why)})")
            wiring.append(
                "these nodes are on no path from an Input to an Output: "
                + joined(details, len(stray))
                + "; connect them or remove them"
            )
    return ends, wiring
