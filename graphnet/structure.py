"""Structure: named nodes joined by synapses, in an order; no weights.

The lower of the two classes a graph is made of (:class:`Network`, the
structure with its weights on a device, stands on it). A
``networkx.DiGraph`` of node names is the single source of truth for the
structure. Every edit bumps :attr:`Structure.version`; the topological order
is cached against it, and so is whatever the modules above derive from the
structure (the compiled plan), so there is no "compile" or "sort" step for
users to forget.

Here are what every graph can be asked about its shape (its nodes, synapses,
inputs, outputs, order, whether it can run) and the low-level edits that
keep the DiGraph, the nodes and the synapses in step; the edits users make
(``add_node``, ``connect``, ``remove``, ...) are :class:`Network`'s, which
checks them and places the weights.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
import types
import weakref
from collections.abc import Iterator, Mapping

import networkx as nx

from ._locks import ReadWriteLock
from ._text import preview, shown, suggestion
from ._topology import structure_problems, topological_sort
from .errors import GraphError, NotFoundError
from .nodes import DenseNode, Input, Node, Output
from .synapse import Synapse

__all__ = ["Structure", "NodeRef"]

NodeRef = str | Node

#: How many fits train each graph now, by the thread that runs them (:meth:`Structure.fitting`).
_FITTING: weakref.WeakKeyDictionary[Structure, collections.Counter] = weakref.WeakKeyDictionary()


def _forget_fits_of_other_threads() -> None:
    """In a forked child only the forking thread is left: the fits the
    other threads were running will never return there."""
    me = threading.get_ident()
    for fits in list(_FITTING.values()):
        mine = fits[me]
        fits.clear()
        if mine:
            fits[me] = mine


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_fits_of_other_threads)


class Structure:
    """Named nodes joined by synapses, in insertion order (see the module docs)."""

    name: str
    #: Bumped by every edit; what is derived from the structure is cached against it.
    version: int
    #: Predictions read, training steps and edits write (see :mod:`graphnet._locks`).
    lock: ReadWriteLock
    _structure: nx.DiGraph  # node names; each node's sources and consumers in the order connected
    _nodes: dict[str, Node]
    _synapses: dict[tuple[str, str], Synapse]
    _insertion: dict[str, int]  # name -> rank in insertion order
    _inserted: int
    _order: tuple[str, ...] | None
    _order_version: int
    _acyclic_promised: bool
    #: Whether a member may hold this graph strongly (see :meth:`let_members_go`).
    _members_held: bool = False

    def __init__(self, name: str):
        self.name = name
        self.version = 0
        self.lock = ReadWriteLock()
        self._structure = nx.DiGraph()
        self._nodes = {}
        self._synapses = {}
        self._insertion = {}
        self._inserted = 0
        self._order = None
        self._order_version = -1
        self._acyclic_promised = False

    def _adopt(self, member) -> None:
        """Make ``member`` a part of this graph; it holds the graph until
        :meth:`let_members_go`."""
        member.attach(self)
        self._members_held = True

    def let_members_go(self, when: bool = True) -> None:
        """``when`` nothing of this graph waits for a draw any more: its
        members hold it weakly from now on, so it goes with the user's last
        reference (see :attr:`graphnet._member.Member._graph`).

        Parameters
        ----------
        when : bool, default True
            The caller's finding that nothing waits; False changes nothing.
        """
        if when and self._members_held:
            for member in (*self._nodes.values(), *self._synapses.values()):
                member.hold_weakly()
            self._members_held = False

    # ---------------------------------------------------- low-level edits
    @contextlib.contextmanager
    def fitting(self):
        """While ``fit`` trains the graph (callbacks may edit it between
        batches), the edits it could not follow are refused: those that
        change its inputs, its outputs or its dtype."""
        fits, me = _FITTING.setdefault(self, collections.Counter()), threading.get_ident()
        fits[me] += 1
        try:
            yield
        finally:
            fits[me] -= 1
            if not fits[me]:
                del fits[me]

    def _refuse_while_fitting(self, edit: str) -> None:
        """Raise GraphError, naming ``edit``, while a fit trains the graph."""
        if _FITTING.get(self):  # a thread's count leaves when it reaches 0
            raise GraphError(f"graph {self.name!r} is training: {edit} is refused until fit returns (the running "
                             "fit could not follow it: its data would no longer fit); make it between fit calls")

    def _io(self, nodes) -> list[tuple[str, str, int]]:
        """``(name, kind, size)`` of the inputs and outputs among ``nodes``."""
        return [(n.name, n.kind, n.size) for n in nodes if isinstance(n, (Input, Output))]

    def _add(self, node: Node) -> None:
        """Take ``node`` in, last in insertion order (checked by the caller)."""
        if isinstance(node, (Input, Output)):
            self._refuse_while_fitting(f"adding the {node.kind} {node.name!r}")
        self._adopt(node)
        self._nodes[node.name] = node
        self._insertion[node.name] = self._inserted
        self._inserted += 1
        self._structure.add_node(node.name)

    def _link(self, synapse: Synapse) -> None:
        """Take ``synapse`` in (checked by the caller)."""
        self._adopt(synapse)
        self._synapses[(synapse.src, synapse.dst)] = synapse
        self._structure.add_edge(synapse.src, synapse.dst)

    def _unlink(self, key: tuple[str, str]) -> Synapse:
        """Drop the synapse ``key`` and return it (still attached)."""
        self._structure.remove_edge(*key)
        return self._synapses.pop(key)

    def _drop(self, name: str) -> Node:
        """Drop node ``name``, which no synapse touches any more, and return it."""
        self._structure.remove_node(name)
        del self._insertion[name]
        node = self._nodes.pop(name)
        node.detach()
        return node

    def _touching(self, name: str) -> list[tuple[str, str]]:
        """The keys of every synapse into or out of ``name``."""
        return [(s, name) for s in self._structure.pred[name]] + [(name, d) for d in self._structure.succ[name]]

    def _cycle_through(self, src: str, dst: str) -> list[str] | None:
        """The cycle a new synapse ``src -> dst`` would close, or ``None``.

        A cycle needs a path ``dst -> ... -> src``. When nothing feeds ``src``
        or ``dst`` feeds nothing there is none, which settles the usual ways of
        building (edges into new nodes, or from nodes not yet fed) in O(1);
        otherwise one search from ``dst``.
        """
        structure = self._structure
        if self._acyclic_promised or not structure.in_degree(src) or not structure.out_degree(dst):
            return None
        if not nx.has_path(structure, dst, src):
            return None
        return [src, *nx.shortest_path(structure, dst, src)]

    @contextlib.contextmanager
    def acyclic_promised(self):
        """Skip the per-synapse cycle search, for builders (specs, model files)
        that checked their whole set of synapses for cycles at once."""
        self._acyclic_promised = True
        try:
            yield self
        finally:
            self._acyclic_promised = False

    def _swap(self, nodes: list[Node], synapses: list[Synapse]) -> None:
        """Make ``nodes`` and ``synapses``, in these orders, the contents:
        what leaves is detached, what comes is attached (the caller has
        checked them and placed their weights)."""
        if self._io(self._nodes.values()) != self._io(nodes):
            self._refuse_while_fitting("an edit of its inputs or outputs")
        kept_nodes, kept_synapses = {id(n) for n in nodes}, {id(s) for s in synapses}
        names, edges = {n.name for n in nodes}, {(s.src, s.dst) for s in synapses}
        for node in self._nodes.values():
            if id(node) not in kept_nodes:
                node.detach(replaced=node.name in names)
        for key, synapse in self._synapses.items():
            if id(synapse) not in kept_synapses:
                synapse.detach(replaced=key in edges)
        for item in [*nodes, *synapses]:
            self._adopt(item)
        edges = [(s.src, s.dst) for s in synapses]
        structure = nx.DiGraph()  # made afresh, so each node's sources are in the synapses' order
        structure.add_nodes_from(n.name for n in nodes)
        structure.add_edges_from(edges)
        self._structure = structure
        self._nodes = {n.name: n for n in nodes}
        self._insertion = {n.name: i for i, n in enumerate(nodes)}
        self._inserted = len(nodes)
        self._synapses = dict(zip(edges, synapses))

    # ------------------------------------------------------------- read access
    def synapse(self, src: NodeRef, dst: NodeRef) -> Synapse:
        """The synapse ``src -> dst``: its ``weight``, ``trainable``,
        ``regularizer`` and ``init``.

        Parameters
        ----------
        src, dst : str or Node

        Raises
        ------
        NotFoundError
            For an unknown node, or no synapse between them.
        """
        key = (self.resolve(src), self.resolve(dst))
        try:
            return self._synapses[key]
        except KeyError:
            raise NotFoundError(f"graph {self.name!r} has no synapse {key[0]!r} -> {key[1]!r}") from None

    def synapse_or_none(self, src: str, dst: str) -> Synapse | None:
        """The synapse ``src -> dst`` (names), or None when there is none."""
        return self._synapses.get((src, dst))

    def incoming(self, name: NodeRef) -> list[Synapse]:
        """Synapses ending in ``name``, in the order they were connected.

        Parameters
        ----------
        name : str or Node

        Raises
        ------
        NotFoundError
            For an unknown node.
        """
        name = self.resolve(name)
        synapses = self._synapses
        return [synapses[(src, name)] for src in self._structure.pred[name]]

    def sources(self, name: NodeRef) -> list[str]:
        """The names of the nodes feeding ``name``, in the order they were connected.

        Parameters
        ----------
        name : str or Node

        Raises
        ------
        NotFoundError
            For an unknown node.
        """
        return list(self._structure.pred[self.resolve(name)])

    def consumers(self, name: NodeRef) -> list[str]:
        """The names of the nodes ``name`` feeds.

        Parameters
        ----------
        name : str or Node

        Raises
        ------
        NotFoundError
            For an unknown node.
        """
        return list(self._structure.succ[self.resolve(name)])

    @property
    def nodes(self) -> Mapping[str, Node]:
        """Name -> node, in insertion order (read-only)."""
        return types.MappingProxyType(self._nodes)

    @property
    def synapses(self) -> list[Synapse]:
        """Every synapse, in the order they were connected."""
        return list(self._synapses.values())

    @property
    def inputs(self) -> list[str]:
        """Names of the Input nodes, in insertion order."""
        return [n for n, node in self._nodes.items() if isinstance(node, Input)]

    @property
    def outputs(self) -> list[str]:
        """Names of the Output nodes, in insertion order."""
        return [n for n, node in self._nodes.items() if isinstance(node, Output)]

    @property
    def structure(self) -> nx.DiGraph:
        """A copy of the underlying ``networkx.DiGraph`` (node names only)."""
        return self._structure.copy()

    @property
    def topological_order(self) -> list[str]:
        """Node names, sources before their destinations; ties by insertion order."""
        if self._order_version != self.version:
            self._order = topological_sort(self._structure, self._insertion)
            self._order_version = self.version
        return list(self._order)

    @property
    def num_params(self) -> int:
        """Every weight and bias (trainable or not)."""
        return sum(n.num_params for n in self._nodes.values()) + sum(s.num_params for s in self._synapses.values())

    def count_params(self) -> int:
        """Keras's name for :attr:`num_params`: every weight and bias."""
        return self.num_params

    def parameter_holders(self) -> list:
        """Every synapse, then every dense node: what holds a weight or a bias."""
        return [*self._synapses.values(), *(n for n in self._nodes.values() if isinstance(n, DenseNode))]

    def parameter_tokens(self) -> dict[str, tuple[int, int]]:
        """``key: (parameter_token, size)`` of every weight and bias, drawn or
        not: which parameter each key names now (:mod:`graphnet._parameters`)."""
        return {owner.parameter_key: (owner.parameter_token, owner.num_params) for owner in self.parameter_holders()}

    @property
    def num_trainable_params(self) -> int:
        """The weights and biases the optimizer updates."""
        nodes = sum(n.num_params for n in self._nodes.values() if getattr(n, "trainable", False))
        return nodes + sum(s.num_params for s in self._synapses.values() if s.trainable)

    def __getitem__(self, name: str) -> Node:
        return self._nodes[self.resolve(name)]

    def __contains__(self, node: object) -> bool:
        """A node's name, or the node itself."""
        if isinstance(node, Node):
            return node.name is not None and self._nodes.get(node.name) is node
        return isinstance(node, str) and node in self._nodes

    def __iter__(self) -> Iterator[str]:
        """The node names, in the order they were added (as a dict's keys)."""
        return iter(list(self._nodes))

    def __len__(self) -> int:
        return len(self._nodes)

    # --------------------------------------------------------------- checking
    def validate(self) -> None:
        """Check the graph can run.

        Raises
        ------
        GraphError
            When there is no Input or no Output, a Hidden/Output node has no
            incoming synapse, or a node lies on no path from an Input to an
            Output. The message names every offending node.
        """
        kinds = {name: node.kind for name, node in self._nodes.items()}
        ends, wiring = structure_problems(self._structure, kinds)
        problems = ends + self.pairing_problems() + wiring
        if problems:
            raise GraphError(f"graph {self.name!r} cannot run: " + "; ".join(problems))

    def pairing_problems(self) -> list[str]:
        """Outputs whose loss does not fit their activation (a Sequential
        leaves this check for compile() and the first run)."""
        problems = []
        for node in self._nodes.values():
            if isinstance(node, Output):
                try:
                    node.check_pairing(node.activation, node.loss)
                except GraphError as exc:
                    problems.append(str(exc))
        return problems

    # ----------------------------------------------------------------- helpers
    def resolve(self, ref: NodeRef) -> str:
        """The name of a node given by name or object; refuses strangers.

        Raises
        ------
        NotFoundError
            For an unknown name (listing the known ones) or another graph's node.
        """
        if isinstance(ref, Node):
            if ref.name is not None and self._nodes.get(ref.name) is ref:
                return ref.name
            raise NotFoundError(f"{ref!r} is not a node of graph {self.name!r}")
        if isinstance(ref, str) and ref in self._nodes:
            return ref
        raise NotFoundError(f"graph {self.name!r} has no node {shown(ref)}; known: {preview(self._nodes)}"
                            f"{suggestion(ref, self._nodes)}")

    def changed(self) -> None:
        """Count an edit: what was compiled from the structure is stale."""
        self.version += 1
