"""Reshaping a graph in place: freeze, insert, widen, bridge (and, in
:mod:`graphnet.weights`, transfer weights).

Every operation here follows three rules:

* **Check everything, then change.** Arguments are validated and every new
  array is computed (and any random draw made) before the graph changes, so
  a refused edit leaves the graph, its weights, its optimizer state and its
  random streams exactly as they were.
* **Keep everything else.** Weights that an edit does not reshape stay the
  same arrays, bit for bit; parameters whose key and shape are unchanged
  keep their optimizer state (``Optimizer.bind`` carries it over). A
  reshaped parameter starts with fresh optimizer state.
* **Keep the order.** Nodes and synapses keep their places in the graph's
  insertion order, and new ones take the place of what they replace, so
  ``to_dict()``, ``summary()`` and the diagram change only where the edit
  did (and a ``Sequential`` stays a chain that saves as one).

The function-preserving edits are those of Net2Net (Chen, Goodfellow and
Shlens, 2016): :func:`insert` starts a new node as an identity
(Net2DeeperNet) and :func:`widen` replicates units and divides their
outgoing weights (Net2WiderNet).
"""

from __future__ import annotations

import fnmatch
import functools
import logging
from typing import TYPE_CHECKING

import numpy as np

from . import initializers
from ._text import preview, shown, suggestion
from .activations import (
    ELU,
    Activation,
    HardSigmoid,
    LeakyReLU,
    Linear,
    ReLU,
    Sigmoid,
    Softmax,
    Softplus,
)
from ._locks import edit
from ._validation import check_allocation, check_bool, is_int
from .errors import GraphError, NotFoundError
from .nodes import DenseNode, Hidden, Input, Node, Output, check_name
from .synapse import Synapse

if TYPE_CHECKING:
    from .graph import Graph

__all__ = ["freeze", "unfreeze", "insert", "widen", "remove_bridged"]

logger = logging.getLogger(__name__)

#: Activations with ``f(z) = z`` for every ``z >= 0``: a new node with one of
#: them is an identity when what it receives is never negative.
_IDENTITY_ON_NON_NEGATIVE = (ReLU, LeakyReLU, ELU)
#: Activations whose outputs are never negative (LeakyReLU only with slope 0).
_NON_NEGATIVE = (ReLU, Sigmoid, Softplus, Softmax, HardSigmoid)


# ------------------------------------------------------------------ freezing
def _keeps_init_stream(edit_function):
    """An edit that draws from the graph's initialisation stream puts the
    stream back when it fails (no memory, Ctrl-C, a refusal after the draw):
    the same edit retried draws what it would have drawn."""

    @functools.wraps(edit_function)
    def kept(graph, *args, **kwargs):
        state = graph.init_rng.bit_generator.state
        try:
            return edit_function(graph, *args, **kwargs)
        except BaseException:
            graph.init_rng.bit_generator.state = state
            raise

    return kept


@edit
def freeze(graph: Graph, *names) -> list[str]:
    """Stop training the parameters of the named nodes: each one's bias and
        its incoming synapses (``g[name].trainable = False`` does the same for
        one node). Gradients still flow through them.

        Parameters
        ----------
        *names : str, Node, Synapse or (str, str)
            Node names or glob patterns (``"enc_*"``, matched with
            :func:`fnmatch.fnmatchcase`; a node's own name selects it, ``"a[0]"``
            too), nodes, synapses, or ``(src, dst)`` pairs of patterns that
            select synapses only.

        Returns
        -------
        list of str
            The keys of the parameters selected, in ``parameters()`` order.

        Raises
        ------
        GraphError
            When a pattern matches nothing (the message lists the names) or only
            inputs; nothing changes then.
        """
    return _set_trainable(graph, names, False, "freeze")


@edit
def unfreeze(graph: Graph, *names) -> list[str]:
    """Train the named nodes' parameters again; the arguments are :meth:`freeze`'s."""
    return _set_trainable(graph, names, True, "unfreeze")


def _set_trainable(graph: Graph, selectors: tuple, value: bool, verb: str) -> list[str]:
    if not selectors:
        raise GraphError(
            f"{verb}: name at least one node (a glob pattern such as 'enc_*' works) "
            f"or a synapse as a (src, dst) pair; nodes: {preview(graph.nodes)}"
        )
    nodes: dict[str, DenseNode] = {}
    synapses: dict[tuple[str, str], Synapse] = {}
    for selector in selectors:
        found_nodes, found_synapses = _select(graph, selector, verb)
        nodes.update(found_nodes)
        synapses.update(found_synapses)
    for node in nodes.values():
        for synapse in graph.incoming(node.name):
            synapses[(synapse.src, synapse.dst)] = synapse
    # Everything is found and checked: now change the flags.
    for node in nodes.values():
        if node.trainable != value:
            node.trainable = value
    for synapse in synapses.values():
        if synapse.trainable != value:
            synapse.trainable = value
    chosen_nodes, chosen_synapses = set(nodes), set(synapses)
    keys = [
        r.key for r in graph.parameters()
        if (r.synapse in chosen_synapses if r.synapse else r.node in chosen_nodes)
    ]
    logger.info("%s: %s %d parameters", graph.name, "froze" if not value else "unfroze", len(keys))
    return keys


def _select(graph: Graph, selector, verb: str) -> tuple[dict[str, DenseNode], dict[tuple[str, str], Synapse]]:
    """The dense nodes and the synapses one selector names."""
    if isinstance(selector, Synapse):
        key = (selector.src, selector.dst)
        if graph.synapse_or_none(*key) is not selector:
            raise GraphError(f"{verb}: {selector!r} is not a synapse of graph {graph.name!r}")
        return {}, {key: selector}
    if isinstance(selector, Node):
        selector = graph.resolve(selector)
    if isinstance(selector, tuple) and len(selector) == 2 and all(isinstance(p, str) for p in selector):
        src_pattern, dst_pattern = selector
        found = {
            (s.src, s.dst): s for s in graph.synapses
            if fnmatch.fnmatchcase(s.src, src_pattern) and fnmatch.fnmatchcase(s.dst, dst_pattern)
        }
        if not found:
            pairs = preview(f"{s.src} -> {s.dst}" for s in graph.synapses)
            raise GraphError(f"{verb}: no synapse matches {shown(src_pattern)} -> {shown(dst_pattern)}; "
                             f"synapses: {pairs}")
        return {}, found
    if not isinstance(selector, str):
        raise GraphError(
            f"{verb}: expected node names or glob patterns (str), nodes, synapses or "
            f"(src, dst) pairs of patterns, got {type(selector).__name__}: {shown(selector)}"
        )
    matched = [selector] if selector in graph.nodes else [n for n in graph.nodes if fnmatch.fnmatchcase(n, selector)]
    if not matched:
        named = f"{verb}: no node matches {shown(selector)}; nodes: {preview(graph.nodes)}"
        raise NotFoundError(named + suggestion(selector, graph.nodes))
    dense = {n: graph.nodes[n] for n in matched if isinstance(graph.nodes[n], DenseNode)}
    if not dense:
        raise GraphError(
            f"{verb}: {selector!r} matches only inputs ({preview(matched)}), which own no "
            f"parameters (a node owns its bias and its incoming synapses); to {verb} what an "
            f"input feeds, pass its synapses as a pair, e.g. ({matched[0]!r}, '*')"
        )
    return dense, {}


# ------------------------------------------------------------------ inserting
@edit
@_keeps_init_stream
def insert(graph: Graph, src, dst, name: str, size: int | None = None,
           activation: str | dict | Activation = "linear", preserve: bool = True) -> Hidden:
    """Replace the synapse ``src -> dst`` by ``src -> name -> dst`` (Net2DeeperNet).

        Parameters
        ----------
        src, dst : str or Node
            The ends of an existing synapse.
        name : str
            The new hidden node.
        size : int, optional
            Its units; ``src``'s size by default.
        activation : str, dict or Activation
        preserve : bool
            Start the new node as an identity (weights ``[I 0]`` in, the old
            weight with zero rows below it out), so every prediction is
            unchanged: exactly for ``linear``, and for ``relu``,
            ``leaky_relu`` and ``elu`` when ``src``'s outputs are never negative
            (its activation is relu, sigmoid, softplus, softmax or
            hard_sigmoid). Units beyond ``src``'s size start random with zero
            outgoing weights. ``False`` draws both synapses afresh.

        Returns
        -------
        Hidden
            The new node.

        Raises
        ------
        GraphError
            For an unknown node or synapse, a name in use, a bad size or
            activation, or a ``preserve=True`` insert that cannot be an
            identity (the message says why). The graph is left as it was.
        """
    src, dst = graph.resolve(src), graph.resolve(dst)
    old = graph.synapse(src, dst)
    source, target = graph.nodes[src], graph.nodes[dst]
    graph.materialize(dst)  # weights waiting for a vocabulary: refused before anything changes
    if size is None:
        size = source.size
    node = Hidden(size, activation=activation, name=check_name(name, "insert: the new node"))  # and size, activation
    if name in graph:
        raise GraphError(f"insert: graph {graph.name!r} already has a node named {name!r}")
    preserve = check_bool(preserve, "insert: preserve")
    if preserve:
        _check_identity(source, node)

    dtype, rng, n = graph.dtype, graph.init_rng, source.size
    if preserve:
        if node.size > n:
            # The units beyond the identity start random, with zero weights out:
            # they change nothing now and learn from the first step.
            w_in = initializers.get(initializers.default_for(node.activation))((n, node.size), rng, dtype)
        else:
            w_in = np.zeros((n, node.size), dtype)
        w_in[:, :n] = np.eye(n, dtype=dtype)
        w_out = np.zeros((node.size, target.size), dtype)
        w_out[:n] = graph.backend.to_host(old.weight)
        inits = ("array", "array")
    else:
        inits = (initializers.default_for(node.activation),
                 initializers.default_for(target.activation, output=isinstance(target, Output)))
        w_in = initializers.get(inits[0])((n, node.size), rng, dtype)
        if inits[0] in initializers.BIASES:  # the default draws the new node's bias too, as connect does
            node.bind_parameter(initializers.BIASES[inits[0]](n, node.size, rng, dtype))
        w_out = initializers.get(inits[1])((node.size, target.size), rng, dtype)
    into = Synapse(src, name, w_in, inits[0], trainable=True)
    # The old weight moves to the new synapse, and its penalty with it.
    out = Synapse(name, dst, w_out, inits[1], trainable=old.trainable, regularizer=old.regularizer)

    nodes = []
    for existing in graph.nodes.values():
        nodes.append(existing)
        if existing.name == src:
            nodes.append(node)
    synapses = []
    for synapse in graph.synapses:
        synapses.extend([into, out] if synapse is old else [synapse])
    graph.rebuild(nodes, synapses)
    logger.info("%s: inserted %r (%d, %s) into %s -> %s%s", graph.name, name, node.size,
                node.activation.name, src, dst, " as an identity" if preserve else "")
    return node


def _check_identity(source: Node, node: Hidden) -> None:
    """Refuse, saying why, a ``preserve=True`` insert that cannot start as an identity."""
    name, act = node.name, node.activation
    hint = "or pass preserve=False to start it from random weights"
    if node.size < source.size:
        raise GraphError(
            f"insert: {name!r} has {node.size} units, but passing on the {source.size} values of "
            f"{source.name!r} unchanged needs at least {source.size}; give size >= {source.size}, {hint}"
        )
    if type(act) is Linear:
        return
    if not isinstance(act, _IDENTITY_ON_NON_NEGATIVE):
        raise GraphError(
            f"insert: a {act.name!r} node is not the identity on any range of inputs, so "
            f"{name!r} would change the predictions; use activation='linear' (exact), 'relu' "
            f"after a source whose outputs are never negative, {hint}"
        )
    if isinstance(source, Input) and source.categorical:
        return  # its rows are one-hot: 0 or 1
    if isinstance(source, Input):
        why = f"{source.name!r} is an input, whose data may be negative"
    elif not _never_negative(source.activation):
        why = f"{source.name!r} has activation {source.activation.name!r}, whose outputs can be negative"
    else:
        return
    raise GraphError(
        f"insert: a {act.name!r} node is the identity only on inputs >= 0, and {why}; "
        f"use activation='linear' (exact), {hint}"
    )


def _never_negative(activation) -> bool:
    if isinstance(activation, LeakyReLU):
        return activation.negative_slope == 0.0
    return isinstance(activation, _NON_NEGATIVE)


# -------------------------------------------------------------------- widening
@edit
@_keeps_init_stream
def widen(graph: Graph, name, size: int, seed: int | None = None, split: str = "equal") -> Hidden:
    """Grow a hidden node to ``size`` units without changing a prediction (Net2WiderNet).

        Each new unit copies a randomly chosen old unit (its incoming weights
        and bias); the outgoing weights of a unit copied ``c`` times are
        divided among its copies, so every consumer receives the same sum.

        Parameters
        ----------
        name : str or Node
            A hidden node with an elementwise activation (not softmax).
        size : int
            The new number of units (at least the current one).
        seed : int, optional
            For the choice of units to copy; by default the graph's
            initialisation stream.
        split : {"equal", "random"}
            ``"equal"`` divides a copied unit's outgoing weights by its number
            of copies (Net2Net's rule); the copies then receive equal
            gradients and stay twins unless dropout separates them.
            ``"random"`` divides them in random shares that sum to one: just as
            exact, and the copies learn apart. (Regularizers stay with their
            parameters; a penalty on divided weights is smaller, so the
            training loss may drop a little though no prediction changes.)

        Returns
        -------
        Hidden
            The new node object that replaces the old one.

        Raises
        ------
        GraphError
            For an input, an output, a softmax node, a smaller size, or a bad
            ``seed``/``split``; the graph is left as it was.
        """
    name = graph.resolve(name)
    node = graph.nodes[name]
    if not isinstance(node, Hidden):
        why = ("inputs take data of a fixed width" if isinstance(node, Input)
               else "an output's size is the width of its targets")
        raise GraphError(f"widen: {name!r} is {'an' if node.kind[0] in 'aeiou' else 'a'} "
                         f"{node.kind} node and {why}; only hidden nodes can be widened")
    if not is_int(size, 1):
        raise GraphError(f"widen: size must be a positive integer, got {size!r}")
    if size < node.size:
        raise GraphError(
            f"widen: {name!r} has {node.size} units and widen only adds units, got size={size}"
        )
    for touched in (name, *graph.consumers(name)):  # weights waiting for a vocabulary: refused first
        graph.materialize(touched)
    if isinstance(node.activation, Softmax):
        raise GraphError(
            f"widen: {name!r} has a softmax activation, which normalises over all its units, so "
            "a copied unit would change every other unit's value; widen an elementwise node"
        )
    if seed is not None and not is_int(seed, 0):
        raise GraphError(f"widen: seed must be None or an integer >= 0, got {seed!r}")
    if split not in ("equal", "random"):
        raise GraphError(f"widen: split must be 'equal' or 'random', got {split!r}")
    if size == node.size:
        return node
    fans = sum(s.shape[0] for s in graph.incoming(name)) + sum(graph.nodes[c].size for c in graph.consumers(name))
    check_allocation(size * (fans + 3), 8, f"widen: {name!r} with {size:,} units")  # before a draw or an index

    rng = graph.init_rng if seed is None else np.random.default_rng(seed)
    old_size = node.size
    # origin[k]: the old unit that new unit k copies (the old units copy themselves).
    origin = np.concatenate([np.arange(old_size), rng.integers(0, old_size, size - old_size)])
    copies = np.bincount(origin, minlength=old_size)
    if split == "equal":
        share = 1.0 / copies[origin]
    else:
        # Unequal shares that still sum to one per old unit: the replicas then
        # get different gradients and drift apart instead of staying twins.
        draw = rng.uniform(0.5, 1.5, size)
        share = draw / np.bincount(origin, weights=draw)[origin]
        share[copies[origin] == 1] = 1.0

    dtype, host = graph.dtype, graph.backend.to_host  # computed on the host, placed by rebuild
    wider = Hidden(size, activation=node.activation, dropout=node.dropout, name=name,
                   trainable=node.trainable, bias_regularizer=node.bias_regularizer)
    wider.bind_parameter(host(node.bias)[origin].astype(dtype))
    synapses = []
    for synapse in graph.synapses:
        src, dst = synapse.src, synapse.dst
        if dst == name:
            weight = host(synapse.weight)[:, origin]
        elif src == name:
            # A unit copied c times sends 1/c of its old weight through each copy
            # (an uncopied unit's row is multiplied by exactly 1.0: unchanged).
            weight = host(synapse.weight)[origin] * share[:, None]
        else:
            synapses.append(synapse)
            continue
        synapses.append(Synapse(src, dst, np.ascontiguousarray(weight, dtype=dtype),
                                synapse.init, synapse.trainable, synapse.regularizer))
    nodes = [wider if n == name else graph.nodes[n] for n in graph.nodes]
    graph.rebuild(nodes, synapses)
    logger.info("%s: widened %r from %d to %d units", graph.name, name, old_size, size)
    return wider


# -------------------------------------------------------------------- bridging
@edit
def remove_bridged(graph: Graph, name) -> None:
    """Remove the hidden node ``name``, joining its sources to its consumers
    (``Graph.remove(name, bridge=True)``): each source ``s`` gets the synapse
    ``s -> c`` with weight ``W_s @ V_c`` (added to one that already exists),
    and each consumer's bias gains ``bias @ V_c``. Exact for a ``linear``
    node; for any other activation the composition drops it (logged as a
    warning).

    Raises
    ------
    GraphError
        For an unknown name, an input or an output, or joined weights that
        would not be finite; the graph is then left as it was.
    """
    name = graph.resolve(name)
    node = graph.nodes[name]
    if not isinstance(node, Hidden):
        raise GraphError(
            f"remove: bridge=True joins a hidden node's sources to its consumers, but {name!r} "
            f"is {'an' if node.kind[0] in 'aeiou' else 'a'} {node.kind} node; "
            "remove it with bridge=False"
        )
    for touched in (name, *graph.consumers(name)):  # weights waiting for a vocabulary: refused first
        graph.materialize(touched)
    into = [s for s in graph.synapses if s.dst == name]
    out = [s for s in graph.synapses if s.src == name]
    # z_c = ... + (Σ_s x_s W_s + b) V_c  =  ... + Σ_s x_s (W_s V_c) + b V_c:
    # exact when the node is linear (and dropout, off at inference, is ignored).
    joined: dict[tuple[str, str], np.ndarray] = {}
    biases: dict[str, np.ndarray] = {}
    host = graph.backend.to_host  # computed on the host; the setters and rebuild place them
    with np.errstate(over="ignore", invalid="ignore"):  # checked just below
        for v in out:
            v_weight = host(v.weight).astype(np.float64)
            for w in into:
                key = (w.src, v.dst)
                product = host(w.weight).astype(np.float64) @ v_weight
                existing = graph.synapse_or_none(*key)
                joined[key] = product if existing is None else host(existing.weight) + product
            biases[v.dst] = host(graph.nodes[v.dst].bias) + host(node.bias).astype(np.float64) @ v_weight
    for key, value in [*joined.items(), *biases.items()]:
        with np.errstate(over="ignore"):
            stored = value.astype(graph.dtype)  # what the graph would hold
        if not np.isfinite(stored).all():
            what = f"the synapse {key[0]!r} -> {key[1]!r}" if isinstance(key, tuple) else f"the bias of {key!r}"
            raise GraphError(f"remove: bridging {name!r} would give {what} non-finite values")
    if not isinstance(node.activation, Linear):
        logger.warning(
            "%s: bridged %r, whose activation %r is not linear: the joined weights compose "
            "the node's weights without it, so predictions change", graph.name, name,
            node.activation.name,
        )

    dtype = graph.dtype
    fresh = {}
    for v in out:
        for w in into:
            key = (w.src, v.dst)
            if graph.synapse_or_none(*key) is None:
                fresh[key] = Synapse(*key, np.ascontiguousarray(joined[key], dtype=dtype), "array",
                                     w.trainable and v.trainable)
    # Checked and computed: now change. Existing synapses and consumer biases
    # take their new values in place (same objects, same optimizer state).
    for key, value in joined.items():
        if key not in fresh:
            graph.synapse(*key).weight = value
    for consumer, value in biases.items():
        graph.nodes[consumer].bias = value
    synapses = []
    for synapse in graph.synapses:
        src, dst = synapse.src, synapse.dst
        if dst == name:
            continue
        if src == name:
            # The joined synapses into a consumer take the place of the one they replace.
            synapses.extend(fresh[(w.src, dst)] for w in into if (w.src, dst) in fresh)
            continue
        synapses.append(synapse)
    graph.rebuild([n for k, n in graph.nodes.items() if k != name], synapses)
    logger.info("%s: removed %r, joining %d sources to %d consumers", graph.name, name, len(into), len(out))
