"""``compile``, Keras's idiom: the outputs' losses and their weights, the
optimizer, and the metrics ``fit`` and ``evaluate`` log by default, all
checked before any is set."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, TypeVar

from . import losses as losses_module
from . import metrics as metrics_module
from . import optimizers as optimizers_module
from ._text import preview
from ._validation import check_number, check_outputs
from .errors import GraphError

if TYPE_CHECKING:
    from .graph import Graph

G = TypeVar("G", bound="Graph")

__all__ = ["compile"]


def compile(graph: G, loss=None, optimizer=None, metrics=None,  # noqa: A001 (Keras's name)
            loss_weights=None) -> G:
    """Keras's idiom: set the outputs' losses, the optimizer and the
    default metrics of ``fit``/``evaluate``, and check that every loss
    fits its output's activation. Returns the graph.

    Parameters
    ----------
    loss : str, dict, Loss, list of them (in output order), or dict output name -> loss, optional
        One loss for every output, or one per output (with a dict, others keep theirs).
    optimizer : str, dict or Optimizer, optional
        Becomes ``graph.optimizer`` (kept with its state by ``fit``).
    metrics : list, or dict output name -> list, optional
        Used by ``fit`` and ``evaluate`` when they are given no ``metrics``;
        kept by copies, not by ``save`` or ``to_dict``.
    loss_weights : list of float (in output order), or dict output name -> float, optional
        Each output's ``loss_weight`` (others keep theirs): the total loss
        is ``Σ loss_weight × loss``.

    Raises
    ------
    GraphError
        For unknown outputs, losses, optimizers or metrics, a loss that does
        not fit its activation, or loss weights that are not one finite
        number >= 0 per output; the graph is then left as it was.
    """
    outputs = graph.outputs
    weights = _loss_weights(outputs, loss_weights)
    if isinstance(loss, (list, tuple)) and len(loss) == 1 and len(outputs) <= 1:
        loss = loss[0]  # the one loss (a Sequential may be given it before its last layer exists)
    if isinstance(loss, Mapping) and "name" not in loss:
        check_outputs(loss, outputs, "compile: loss")
        chosen = {name: losses_module.get(value) for name, value in loss.items()}
    elif isinstance(loss, (list, tuple)):  # Keras's form: one per output, in output order
        if len(loss) != len(outputs):
            raise GraphError(f"compile: loss has {len(loss)} entries for {len(outputs)} outputs {preview(outputs)}; "
                             "give one per output, in this order, or a dict output name -> loss")
        chosen = {name: losses_module.get(value) for name, value in zip(outputs, loss)}
    else:
        chosen = {} if loss is None else {name: losses_module.get(loss) for name in outputs}
    new_optimizer = None if optimizer is None else optimizers_module.get(optimizer)
    if metrics is not None:
        metrics_module.resolve(graph, metrics, "compile")
    problems = []
    for name in outputs:
        node = graph.nodes[name]
        try:
            node.check_pairing(node.activation, chosen.get(name, node.loss))
        except GraphError as exc:
            problems.append(str(exc))
    if problems:
        raise GraphError(f"compile: {'; '.join(problems)}")
    with graph.lock.writing():
        if new_optimizer is not None:
            graph.optimizer = new_optimizer
        for name, value in chosen.items():
            graph.nodes[name].loss = value
        for name, value in weights.items():
            graph.nodes[name].loss_weight = value
        if metrics is not None:
            graph.default_metrics = _held(metrics)
        graph.keep_compiled_loss(loss)
    return graph


def _held(metrics):
    """``metrics`` as ``compile`` keeps them: its own lists and dict, so the
    caller's containers, changed later, change nothing (the metric objects
    themselves are the caller's, as Keras keeps them)."""
    if isinstance(metrics, Mapping):
        return {name: _held(value) for name, value in metrics.items()}
    return list(metrics) if isinstance(metrics, (list, tuple)) else metrics


def _loss_weights(outputs: list[str], loss_weights) -> dict[str, float]:
    """``compile``'s ``loss_weights`` as output name -> checked weight."""
    if loss_weights is None:
        return {}
    if isinstance(loss_weights, Mapping):
        check_outputs(loss_weights, outputs, "compile: loss_weights")
        given = dict(loss_weights)
    elif isinstance(loss_weights, (list, tuple)):
        if len(loss_weights) != len(outputs):
            raise GraphError(
                f"compile: loss_weights has {len(loss_weights)} entries for {len(outputs)} outputs "
                f"{preview(outputs)}; give one per output, in this order, or a dict output name -> weight"
            )
        given = dict(zip(outputs, loss_weights))
    else:
        raise GraphError(
            f"compile: loss_weights must be a list (in output order) or a dict output name -> "
            f"weight, got {type(loss_weights).__name__}: {loss_weights!r}"
        )
    return {name: check_number(value, f"compile: loss_weights[{name!r}]", 0.0, expected="a finite number >= 0")
            for name, value in given.items()}
