"""The inputs and computations of an imported model whose values reach no
output: a graph holds only nodes on a path from an input to an output, so an
import refuses them (in torch, an in-place call whose result is dropped is
one) rather than build a graph that cannot run."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import networkx as nx

from .._text import clip
from .._topology import reachable
from ..errors import ModelImportError

__all__ = ["check_used"]


def check_used(nodes: Mapping[str, Any], links: Iterable[tuple[str, str]], outputs: list[str], source: str) -> None:
    """Refuse the nodes from which no output can be reached.

    Parameters
    ----------
    nodes : mapping of str to node
        Each node by name, with its ``kind`` (``"input"`` or ``"dense"``) and
        ``origin`` (the foreign layer, for the message).
    links : iterable of (str, str)
        ``(source, destination)`` of every synapse.
    outputs : list of str
    source : str
        The model, for the message (``"torch module 'M'"``).

    Raises
    ------
    ModelImportError
        Naming the computations whose results are unused (or, when there are
        none, the unused inputs) and the layers they come from.
    """
    structure = nx.DiGraph(list(links))
    structure.add_nodes_from(nodes)
    used = reachable(structure, outputs, forward=False)
    unused = [node for name, node in nodes.items() if name not in used]
    named = [node for node in unused if node.kind != "input"] or unused
    if not named:
        return
    if named[0].kind == "input":
        what = "an input it does not use, and every input of a graph feeds an output; remove that input"
    else:
        what = ("a computation whose result is unused, and every node of a graph feeds an output; remove that "
                "computation, or return its result as an output")
    shown = ", ".join(f"node {n.name!r}" + (f" (from {n.origin})" if n.origin else "") for n in named)
    verb = "reaches" if len(named) == 1 else "reach"
    raise ModelImportError(f"{source}: {clip(shown, 400)} {verb} no output: the model has {what}")
