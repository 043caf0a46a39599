"""Surveying an ONNX graph before reading it: which outputs an import keeps
(the float tensors; a classifier's label branch is dropped), which nodes
they need, who reads each tensor's values (looking through no-op aliases),
and whether the inputs share one batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import ModelImportError

__all__ = ["ALIASES", "aliases", "check_batches", "count_readers", "kept_outputs", "needed"]

#: Operators whose output is their first input's values (in graphnet's terms).
ALIASES = ("Identity", "Dropout", "Cast", "Flatten", "Reshape", "Squeeze", "Unsqueeze")
_LABEL_BRANCH = ("ArgMax", "ZipMap", "ArrayFeatureExtractor", "Reshape", "Cast", "Binarizer", "Identity",
                 "LabelEncoder", "Constant", "Squeeze", "Unsqueeze")


def kept_outputs(graph, onnx, source: str) -> tuple[list[tuple[str, str]], list[str]]:
    """``(output name, tensor computing it)`` for the float outputs, and the
    names of the others (a classifier's labels, checked in :func:`needed`)."""
    producers = {o: n for n in graph.node for o in n.output}
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE)
    kept, dropped = [], []
    for value in graph.output:
        producer = producers.get(value.name)
        if value.type.HasField("tensor_type") and value.type.tensor_type.elem_type in floats:
            kept.append((value.name, value.name))
        elif producer is not None and producer.op_type == "ZipMap":
            kept.append((value.name, producer.input[0]))  # the probabilities, without the dicts
        else:
            dropped.append(value.name)
    if not kept:
        raise ModelImportError(f"{source}: no output is a float tensor ({[o.name for o in graph.output]})")
    return kept, dropped


def needed(graph, outputs, dropped: list[str], source: str) -> tuple[list[tuple[int, Any]], list[str]]:
    """``(index, node)`` of the nodes the kept outputs depend on, in file
    order, and the operators of the dropped outputs' branch, which must be
    nothing but label operators."""
    producers = {o: (i, n) for i, n in enumerate(graph.node) for o in n.output}

    def closure(tensors) -> set[int]:
        seen, stack = set(), list(tensors)
        while stack:
            found = producers.get(stack.pop())
            if found is not None and found[0] not in seen:
                seen.add(found[0])
                stack.extend(t for t in found[1].input if t)
        return seen

    kept = closure(t for _, t in outputs)
    branch = closure(dropped) - kept
    operators = sorted({graph.node[i].op_type for i in branch})
    foreign = sorted(set(operators) - set(_LABEL_BRANCH))
    if foreign:
        raise ModelImportError(
            f"{source}: outputs {dropped} are not float tensors and are computed by {foreign}, not a "
            f"classifier's label branch; graphnet outputs float arrays only"
        )
    return [(i, graph.node[i]) for i in sorted(kept)], operators


def aliases(nodes) -> dict[str, str]:
    """Tensor -> the tensor it is a no-op of (Identity, float Cast, Reshape ...)."""
    return {node.output[0]: node.input[0] for _, node in nodes
            if node.op_type in ALIASES and node.input and node.output}


def count_readers(nodes, canonical: Callable[[str], str]) -> dict[str, list[int]]:
    """Tensor (through ``canonical``) -> the indices of the nodes reading its
    *values*: an alias's own input and ``Shape`` do not count."""
    readers: dict[str, list[int]] = {}
    for index, node in nodes:
        if node.op_type == "Shape":
            continue
        for position, tensor in enumerate(node.input):
            if not tensor or (node.op_type in ALIASES and position == 0):
                continue
            readers.setdefault(canonical(tensor), []).append(index)
    return readers


def check_batches(batches: dict[str, int | None], source: str) -> None:
    """Refuse inputs that declare different batch sizes (None: any number of rows).

    ONNX broadcasts an input of one row over the others' rows; a graphnet
    graph reads the same rows from every input, so it would be another model.
    """
    if len(set(batches.values())) <= 1:
        return
    shown = ", ".join(f"{k!r} ({'any number of rows' if v is None else f'{v} row' + 's' * (v > 1)})"
                      for k, v in batches.items())
    raise ModelImportError(
        f"{source}: the inputs declare different batch sizes: {shown}. ONNX broadcasts an input of one "
        f"row over the others' rows (and runs others only where they agree), while a graphnet graph reads "
        f"the same rows from every input, so it would compute a different model; export the model with "
        f"one batch dimension for all inputs (in torch.onnx.export, dynamic_axes={{name: {{0: 'batch'}}}} "
        f"for every input)"
    )
