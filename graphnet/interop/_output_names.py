"""Outputs keep the names the model gives them (a dict's keys, Keras layer
names, ONNX output names): :func:`rename_outputs`, which every importer
calls once each output has its own node."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ModelImportError

if TYPE_CHECKING:
    from ._builder import Builder

__all__ = ["rename_outputs"]


def rename_outputs(builder: Builder, outputs: dict[str, str], named_by: str,
                   labels: dict[str, str] | None = None) -> None:
    """Rename each output node ``node -> name`` of ``outputs``, all in one pass.

    A hidden node that has one of the names takes a fresh one (``name_1``),
    as a layer named like an input does. An input keeps its name, so an
    output named like an input is refused, naming both, and so are two
    outputs given one name. ``named_by`` says what names the outputs
    (``"dict key"``), ``labels`` what the model calls an output whose node
    name differs (ONNX ``'a->b'``, node ``'a_b'``), for those messages.
    """
    labels = labels or {}

    def shown(node: str) -> str:
        name, label = outputs[node], labels.get(node, outputs[node])
        return f"the output {label!r}" + (f" (node {name!r})" if label != name else "")

    given: dict[str, str] = {}  # name -> the output node given it
    for node, name in outputs.items():
        if name in given:
            raise ModelImportError(f"{builder.source}: {shown(given[name])} and {shown(node)} would have "
                                   f"the same name; rename one of them in the model")
        given[name] = node
    taken = (set(builder.nodes) - set(outputs)) | set(given)
    moves: dict[str, str] = {}
    for name, node in given.items():
        holder = builder.nodes.get(name)
        if holder is None or name in outputs:  # free, or an output's node that is renamed too
            continue
        if holder.kind == "input":
            raise ModelImportError(
                f"{builder.source}: {shown(node)}, named by its {named_by}, has the name of "
                f"{holder.origin or f'input {name!r}'}, and an input keeps its name: rename the "
                f"{named_by} or the input")
        i = 1
        while f"{name}_{i}" in taken:
            i += 1
        moves[name] = f"{name}_{i}"
        taken.add(moves[name])
    builder.rename({**moves, **outputs})
