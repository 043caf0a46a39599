"""Graph: named Input, Hidden and Output nodes joined by synapses.

A ``networkx.DiGraph`` is the single source of truth for structure. Every
edit bumps :attr:`Graph.version`; the topological order and the compiled
execution plan are cached against that version, so there is no "compile" or
"sort" step for users to forget. Edits are validated *before* anything
changes: a refused ``connect`` leaves the graph (and its random stream)
exactly as it was.

Running, training, files and pictures live in the modules above this one
(:mod:`graphnet.plan`, :mod:`graphnet.training`, :mod:`graphnet.saving`,
:mod:`graphnet.render`, ...). The methods that reach them (``fit``,
``save``, ``render``, ``compile``, ...) are kept for users in
:class:`graphnet._delegating.DelegatingMethods`, which ``Graph`` inherits:
this module is the structure, that one the way up. The weight draw
(:mod:`graphnet._drawing`) and the parameters by key
(:mod:`graphnet._weights`) are inherited the same way.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import types
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np

from . import backend as backend_module
from . import initializers, regularizers
from . import optimizers as optimizers_module
from ._delegating import DelegatingMethods
from ._drawing import WeightDrawing
from ._locks import ReadWriteLock
from ._locks import edit as _edit
from ._text import format_cycle, preview
from ._weights import ParameterAccess
from .checks import check_allocation, check_text, is_int
from .errors import CycleError, GraphError, NotFoundError
from .nodes import DenseNode, Hidden, Input, Node, Output
from .structure import reachable, topological_sort
from .synapse import Synapse

if TYPE_CHECKING:
    from .plan import Plan

__all__ = ["Graph"]

logger = logging.getLogger(__name__)

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

NodeRef = str | Node


class Graph(WeightDrawing, ParameterAccess, DelegatingMethods):
    """A neural network whose shape is a directed acyclic graph.

    Parameters
    ----------
    name : str
        Used in messages, summaries and diagrams.
    seed : int or None
        Drives weight initialisation, shuffling, validation splits and
        dropout through ``numpy.random.Generator``; same seed, same data,
        same calls give bit-for-bit the same weights.
    dtype : {"float32", "float64"}
        Of every weight, activation and gradient.
    device : {"cpu", "cuda"}
        Where the weights live and the graph runs: ``"cuda"`` is an NVIDIA
        GPU through CuPy (``pip install 'graphnet[cuda]'``). Weights are drawn
        on the host from ``seed`` either way, so both start from the same
        values. See :meth:`to`.

    Raises
    ------
    GraphError
        For a bad name, seed or dtype, an unknown device, or ``"cuda"``
        without CuPy or without a visible GPU.

    Examples
    --------
    >>> g = Graph(name="tiny", seed=0)
    >>> _ = g.add_input("x", 2)
    >>> _ = g.add_output("y", 1, activation="sigmoid", loss="binary_crossentropy")
    >>> _ = g.connect("x", "y")
    >>> g.predict(np.zeros((3, 2))).shape
    (3, 1)
    """

    def __init__(self, name: str = "graph", seed: int | None = None, dtype="float32", device="cpu"):
        check_text(name, "graph name")
        if seed is not None and not is_int(seed, 0):
            raise GraphError(f"graph {name!r}: seed must be None or an integer >= 0, got {seed!r}")
        if not _known(dtype) or np.dtype(dtype) not in _DTYPES:
            raise GraphError(f"graph {name!r}: dtype must be 'float32' or 'float64', got {dtype!r}")
        self._backend = backend_module.get(device)
        self.name = name
        self.seed = None if seed is None else int(seed)
        self.dtype = np.dtype(dtype)
        seeds = np.random.SeedSequence(seed)
        self._entropy = seeds.entropy  # for the device's dropout stream (_device_seed)
        init_seed, train_seed = seeds.spawn(2)
        # Separate streams: running or training never changes how later
        # synapses are initialised, and vice versa.
        self._init_rng = np.random.default_rng(init_seed)
        self.rng = np.random.default_rng(train_seed)
        self._structure = nx.DiGraph()
        self._nodes: dict[str, Node] = {}
        self._synapses: dict[tuple[str, str], Synapse] = {}
        # Synapses whose named initialiser has not been drawn yet, by destination:
        # drawn together once the destination's fan-in is needed (see connect).
        self._undrawn: dict[str, list[Synapse]] = {}
        self._biases_fixed = True  # False while a node's bias may still be drawn
        self._draw_lock = threading.Lock()
        self._insertion: dict[str, int] = {}
        self._inserted = 0
        self.version = 0
        self._order: tuple[str, ...] | None = None
        self._order_version = -1
        self._plan: Plan | None = None
        self._plan_lock = threading.Lock()
        self._lock = ReadWriteLock()
        self._optimizer: optimizers_module.Optimizer | None = None
        self._acyclic_promised = False
        self._metrics = None  # compile()'s metrics: fit's and evaluate's default
        #: Set by a callback to end ``fit`` after the current epoch.
        self.stop_training = False

    # ------------------------------------------------------------------ nodes
    def add_input(self, name: str, size: int) -> Input:
        """Add an Input node of ``size`` features."""
        return self.add_node(Input(size, name=name))

    def add_hidden(
        self,
        name: str,
        size: int,
        activation="relu",
        dropout: float = 0.0,
        trainable: bool = True,
        bias_regularizer=None,
    ) -> Hidden:
        """Add a Hidden node; ``dropout`` is applied (inverted) while training
        only; ``bias_regularizer`` penalises its bias (``graphnet.regularizers``)."""
        return self.add_node(
            Hidden(size, activation=activation, dropout=dropout, name=name, trainable=trainable,
                   bias_regularizer=bias_regularizer)
        )

    def add_output(
        self,
        name: str,
        size: int,
        activation="linear",
        loss="mse",
        loss_weight: float = 1.0,
        trainable: bool = True,
        bias_regularizer=None,
    ) -> Output:
        """Add an Output node with its loss.

        Raises
        ------
        GraphError
            For a cross-entropy loss without its activation (``binary_crossentropy``
            needs ``sigmoid``, ``categorical_crossentropy`` needs ``softmax``).
        """
        return self.add_node(
            Output(
                size,
                activation=activation,
                loss=loss,
                loss_weight=loss_weight,
                name=name,
                trainable=trainable,
                bias_regularizer=bias_regularizer,
            )
        )

    @_edit
    def add_node(self, node: Node) -> Node:
        """Add a node object built elsewhere (it must have a name)."""
        if not isinstance(node, Node):
            raise GraphError(f"graph {self.name!r}: expected a Node, got {type(node).__name__}")
        if node.name is None:
            raise GraphError(f"graph {self.name!r}: {node!r} needs a name before it is added")
        if node.name in self._nodes:
            raise GraphError(
                f"graph {self.name!r} already has a node named {node.name!r} "
                f"({self._nodes[node.name].kind}); node names must be unique"
            )
        if node._graph is not None:
            raise GraphError(
                f"graph {self.name!r}: {node!r} already belongs to graph {node._graph.name!r}; "
                "make a new node"
            )
        if isinstance(node, DenseNode):
            node._bias = self._backend.to_device(backend_module.host(node._bias).astype(self.dtype))
            self._biases_fixed = self._biases_fixed and node._bias_fixed
        node._graph = self
        self._nodes[node.name] = node
        self._insertion[node.name] = self._inserted
        self._inserted += 1
        self._structure.add_node(node.name)
        self._changed()
        return node

    @_edit
    def remove(self, name: NodeRef, bridge: bool = False) -> None:
        """Remove a node and every synapse touching it; other weights are kept.

        Parameters
        ----------
        name : str or Node
        bridge : bool
            Join the hidden node's sources to its consumers instead of leaving
            them cut off: each source ``s`` gets the synapse ``s -> c`` with
            weight ``W_s @ V_c`` (added to one that already exists), and each
            consumer's bias gains ``bias @ V_c``. Exact for a ``linear`` node;
            for any other activation the composition drops it (logged as a
            warning). See :func:`graphnet.surgery.remove_bridged`.

        Raises
        ------
        GraphError
            For an unknown name, or ``bridge=True`` on an input or output.
        """
        if not isinstance(bridge, bool):
            raise GraphError(f"remove: bridge must be True or False, got {bridge!r}")
        if bridge:
            from .surgery import remove_bridged

            return remove_bridged(self, name)
        name = self._resolve(name)
        for key in [k for k in self._synapses if name in k]:
            self._detach(self._synapses.pop(key))
        self._structure.remove_node(name)
        self._nodes.pop(name)._graph = None
        del self._insertion[name]
        self._changed()

    @_edit
    def _replace_node(self, name: str, node: Node) -> None:
        """Swap the node object called ``name`` for ``node`` (same name and size),
        keeping its place in the insertion order, its synapses and its bias
        values. Used by ``Sequential.add`` to turn the old output into a Hidden;
        weights still waiting for their default draw take the new node's default."""
        old = self._nodes[self._resolve(name)]
        if node.name != name or node.size != old.size:
            raise GraphError(f"_replace_node: {node!r} cannot stand in for {old!r}")
        if node._graph is not None:
            raise GraphError(f"_replace_node: {node!r} already belongs to a graph")
        if isinstance(node, DenseNode):
            # The raw values: reading old.bias would draw what the node still waits for.
            values = old._bias if isinstance(old, DenseNode) else node._bias
            node._bias = self._backend.to_device(np.array(backend_module.host(values), dtype=self.dtype))
            node._bias_fixed = getattr(old, "_bias_fixed", True)
            self._biases_fixed = self._biases_fixed and node._bias_fixed
        old._graph, node._graph = None, self
        self._nodes[name] = node
        if isinstance(node, DenseNode):  # what waits for a default draw gets the new node's default
            default = initializers.default_for(node.activation, output=isinstance(node, Output))
            with self._draw_lock:
                for synapse in self._undrawn.get(name, []):
                    if synapse._by_default:
                        synapse.init, synapse._pending = default, (synapse._pending[0], default)
        self._changed()

    # -------------------------------------------------------------- synapses
    @_edit
    def connect(
        self,
        src: NodeRef | Iterable[NodeRef],
        dst: NodeRef,
        init: str | np.ndarray | None = None,
        trainable: bool = True,
        regularizer=None,
    ) -> Synapse | list[Synapse]:
        """Join ``src`` (one node or a list of nodes) to ``dst`` with new synapses.

        Parameters
        ----------
        src : str, Node, or list of them
        dst : str or Node
        init : str or ndarray of shape (src.size, dst.size), optional
            An initialiser name, or the values. By default ``"fan_in_uniform"``
            (:func:`graphnet.initializers.default_for`): PyTorch's
            ``nn.Linear``, weights uniform on ``±1/sqrt(fan_in)`` and the
            destination's bias drawn the same way (unless it was set first);
            into a tanh node, ``"normalized_uniform"`` (Glorot's bound, bias
            drawn too); into a linear ``Output``, ``"small_uniform"``: a
            tenth of fan_in_uniform's weights and a zero bias. Every other
            initialiser leaves the bias at zero. (Until the quality panel,
            the default was He-normal or Glorot-uniform with zero biases;
            see the README.)
        trainable : bool
        regularizer : str, dict or Regularizer, optional
            A penalty on each new weight (``graphnet.regularizers``: ``"l1"``,
            ``"l2"``, ``L2(1e-4)``, ...), added to the training loss.

        Returns
        -------
        Synapse, or a list of Synapses when ``src`` is a list.

        Notes
        -----
        A named initialiser is drawn on the destination's whole fan-in, the
        sum of its sources' sizes, as a ``Linear`` over the concatenated
        sources would be: the node's incoming weights are drawn as one
        ``(Σ src.size, dst.size)`` matrix (sources in the order they were
        connected), and each synapse gets its own rows; the default draws the
        bias after them, on the same fan-in. Since ``connect`` sees one synapse
        at a time, the draw waits until a weight is first needed:
        ``get_weights()``, reading ``synapse.weight`` or ``node.bias``, the
        first run or ``fit``, a copy or pickle, or ``to(device)``. A synapse connected into that node later is drawn
        on the fan-in it then has; weights and biases already drawn, seen, set
        or loaded never change by themselves. The draw depends on the seed and
        the calls made, not on when it happens nor on the dtype (it is made in
        float64).

        Raises
        ------
        CycleError
            When a synapse would close a cycle (the message shows it) or is a self-loop.
        GraphError
            For a duplicate synapse, a synapse into an Input, an unknown name, or a bad
            ``init``. In every case the graph is left exactly as it was.
        """
        many = not isinstance(src, (str, Node))
        if many and not isinstance(src, (list, tuple)):
            raise GraphError(
                f"connect: src must be a node name, a Node or a list of them, got "
                f"{type(src).__name__}: {src!r}"
            )
        if not isinstance(trainable, bool):
            raise GraphError(f"connect: trainable must be True or False, got {trainable!r}")
        regularizers.get(regularizer)  # refuse a bad one before anything changes
        sources = [self._resolve(s) for s in (src if many else [src])]
        dst_name = self._resolve(dst)
        if many and not sources:
            raise GraphError(f"connect: no sources given for {dst_name!r}")
        target = self._nodes[dst_name]
        if isinstance(target, Input):
            raise GraphError(
                f"cannot connect into input {dst_name!r}: inputs take data, not synapses"
            )
        seen = set()
        for name in sources:
            if name == dst_name:
                raise CycleError(
                    f"a synapse from {name!r} to itself would make the cycle {name} -> {name}"
                )
            if (name, dst_name) in self._synapses or name in seen:
                raise GraphError(f"synapse {name!r} -> {dst_name!r} already exists")
            seen.add(name)
            cycle = self._cycle_through(name, dst_name)
            if cycle:
                raise CycleError(
                    f"connecting {name!r} -> {dst_name!r} would create the cycle {format_cycle(cycle)}"
                )
        shapes = [(self._nodes[s].size, target.size) for s in sources]
        if init is None:
            init_name = initializers.default_for(target.activation, output=isinstance(target, Output))
        elif isinstance(init, str):
            initializers.get(init)  # refuse unknown names before drawing anything
            init_name = init
        else:
            init_name = "array"
            given = np.asarray(init)
            if many:
                raise GraphError("connect: an init array needs a single source, not a list")
            if given.shape != shapes[0]:
                raise GraphError(
                    f"synapse {sources[0]!r} -> {dst_name!r}: init array must have shape "
                    f"{shapes[0]}, got {given.shape}"
                )
            numeric = given.dtype.kind in "biuf"
            with np.errstate(over="ignore"):
                # finite in the graph's dtype: 1e39 is inf in a float32 graph
                finite = numeric and np.isfinite(given.astype(self.dtype)).all()
            if not finite:
                raise GraphError(
                    f"synapse {sources[0]!r} -> {dst_name!r}: init array must be finite numbers "
                    f"(real, and finite in the graph's {self.dtype})"
                )
        for name, shape in zip(sources, shapes):
            check_allocation(shape[0] * shape[1], self.dtype.itemsize, f"synapse {name!r} -> {dst_name!r}")
        created = []
        for name, shape in zip(sources, shapes):
            if init_name == "array":
                synapse = Synapse(name, dst_name, self._backend.to_device(np.array(init, dtype=self.dtype)),
                                  init_name, trainable, regularizer)
            else:
                # Drawn later, on the destination's whole fan-in (see Notes); the
                # seed is taken now, so the draw depends on the calls, not on when.
                synapse = Synapse(name, dst_name, None, init_name, trainable, regularizer, shape=shape)
                high, low = self._init_rng.bit_generator.random_raw(2)
                synapse._pending = ((int(high) << 64) | int(low), init_name)
                synapse._by_default = init is None
                self._undrawn.setdefault(dst_name, []).append(synapse)
            logger.debug("%s: init %s -> %s %s with %s", self.name, name, dst_name, shape, init_name)
            synapse._graph = self
            self._synapses[(name, dst_name)] = synapse
            self._structure.add_edge(name, dst_name)
            created.append(synapse)
        self._changed()
        return created if many else created[0]

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
    def _promise_acyclic(self):
        """Skip the per-synapse cycle search, for builders (specs, model files)
        that checked their whole set of synapses for cycles at once."""
        self._acyclic_promised = True
        try:
            yield self
        finally:
            self._acyclic_promised = False

    @_edit
    def disconnect(self, src: NodeRef, dst: NodeRef) -> None:
        """Remove the synapse ``src -> dst``; other weights are kept."""
        key = (self._resolve(src), self._resolve(dst))
        if key not in self._synapses:
            raise NotFoundError(f"graph {self.name!r} has no synapse {key[0]!r} -> {key[1]!r}")
        self._detach(self._synapses.pop(key))
        self._structure.remove_edge(*key)
        self._changed()

    def synapse(self, src: NodeRef, dst: NodeRef) -> Synapse:
        """The synapse ``src -> dst``."""
        key = (self._resolve(src), self._resolve(dst))
        try:
            return self._synapses[key]
        except KeyError:
            raise NotFoundError(
                f"graph {self.name!r} has no synapse {key[0]!r} -> {key[1]!r}"
            ) from None

    def incoming(self, name: NodeRef) -> list[Synapse]:
        """Synapses ending in ``name``, in the order they were connected."""
        name = self._resolve(name)
        return [s for (_, dst), s in self._synapses.items() if dst == name]

    # ------------------------------------------------------------- read access
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
        return sum(n.num_params for n in self._nodes.values()) + sum(
            s.num_params for s in self._synapses.values()
        )

    @property
    def num_trainable_params(self) -> int:
        nodes = sum(n.num_params for n in self._nodes.values() if getattr(n, "trainable", False))
        return nodes + sum(s.num_params for s in self._synapses.values() if s.trainable)

    def __getitem__(self, name: str) -> Node:
        return self._nodes[self._resolve(name)]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name!r}: {len(self.inputs)} inputs, "
            f"{len(self.outputs)} outputs, {len(self._nodes)} nodes, "
            f"{len(self._synapses)} synapses, {self.num_params:,} params, {self.dtype}>"
        )

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
        inputs, outputs = self.inputs, self.outputs
        problems = []
        if not inputs:
            problems.append("it has no Input node (add one with add_input(name, size))")
        if not outputs:
            problems.append("it has no Output node (add one with add_output(name, size, ...))")
        problems += self._pairing_problems()
        in_degree = dict(self._structure.in_degree())  # one sweep, not a view per node
        no_source = [
            n for n, node in self._nodes.items() if isinstance(node, DenseNode) and in_degree[n] == 0
        ]
        if no_source:
            problems.append(
                "these nodes have no incoming synapse: "
                + ", ".join(f"{n!r} ({self._nodes[n].kind})" for n in no_source)
                + "; connect a source to each"
            )
        if inputs and outputs:
            fed = reachable(self._structure, inputs, forward=True)
            feeding = reachable(self._structure, outputs, forward=False)
            stray = [n for n in self._nodes if n not in no_source and not (n in fed and n in feeding)]
            if stray:
                details = []
                for n in stray:
                    why = []
                    if n not in fed:
                        why.append("no Input reaches it")
                    if n not in feeding:
                        why.append("it reaches no Output")
                    details.append(f"{n!r} ({' and '.join(why)})")
                problems.append(
                    "these nodes are on no path from an Input to an Output: "
                    + ", ".join(details)
                    + "; connect them or remove them"
                )
        if problems:
            raise GraphError(f"graph {self.name!r} cannot run: " + "; ".join(problems))

    def _pairing_problems(self) -> list[str]:
        """Outputs whose loss does not fit their activation (a Sequential
        leaves this check for compile() and the first run)."""
        problems = []
        for node in self._nodes.values():
            if isinstance(node, Output):
                try:
                    node._check_pairing(node.activation, node.loss)
                except GraphError as exc:
                    problems.append(str(exc))
        return problems

    # ------------------------------------------------------------- optimizer
    @property
    def optimizer(self) -> optimizers_module.Optimizer | None:
        """The optimizer ``fit``/``train_step`` use; it keeps its state across calls."""
        return self._optimizer

    @optimizer.setter
    def optimizer(self, value) -> None:
        """Setting an instance that another graph trains is refused: one
        optimizer keeps the moments of one graph."""
        new = None if value is None else optimizers_module.get(value)
        if new is self._optimizer:
            return
        if new is not None:
            new._claim(self)
        if self._optimizer is not None:
            self._optimizer._release()
        self._optimizer = new

    # ---------------------------------------------------------------- devices
    @property
    def device(self) -> str:
        """Where the graph's weights live and it runs: ``"cpu"`` or ``"cuda"``."""
        return self._backend.name

    @_edit
    def to(self, device) -> Graph:
        """Move the graph to ``device`` (``"cpu"`` or ``"cuda"``) in place:
        every weight and bias, and the optimizer's state. Returns the graph.

        Results on the new device equal the old one's within float32
        rounding; nothing else changes (weights bit for bit, the iteration
        count, the random streams).

        Raises
        ------
        GraphError
            For an unknown device, or ``"cuda"`` without CuPy or a GPU; the
            graph then stays where it was.
        """
        new = backend_module.get(device)
        old = self._backend
        if new is old:
            return self
        self._draw()  # what still waits for its fan-in is drawn where it has always been: the host
        for owner in [*self._synapses.values(), *(n for n in self._nodes.values() if isinstance(n, DenseNode))]:
            attribute = "_weight" if isinstance(owner, Synapse) else "_bias"
            setattr(owner, attribute, new.to_device(old.host_copy(getattr(owner, attribute))))
        if self._optimizer is not None:
            self._optimizer.to(new)
        self._backend = new
        self.__dict__.pop("_device_rng", None)
        self._plan = None
        self._changed()
        logger.info("%s: moved from %s to %s", self.name, old.name, new.name)
        return self

    def _device_seed(self) -> int:
        """A seed for a device's own dropout stream, from the graph's seed (a
        third child of its SeedSequence: the init and training streams are
        the first two, so this one changes neither)."""
        entropy = getattr(self, "_entropy", None)
        sequence = np.random.SeedSequence(entropy, spawn_key=(2,))
        return int(sequence.generate_state(1, np.uint32)[0])

    # --------------------------------------------------------------- pickling
    def __getstate__(self) -> dict[str, Any]:
        """Everything but the compiled plan and its lock, which are rebuilt on demand.

        Pickling exists for ``copy.deepcopy`` and for scikit-learn users who
        ``joblib.dump`` a fitted estimator; graphnet's own model files never
        unpickle. Weights, optimizer state and the random streams are kept, so
        an unpickled graph predicts identically and trains on from where it was.

        What still waits for its fan-in is drawn first (the same values as a
        later draw), and under the draw lock: a copy taken while another
        thread draws (a dask worker sending the graph it runs) would hold
        synapses that are neither drawn nor waiting.
        """
        self._draw()
        with self._draw_lock:
            state = self.__dict__.copy()
        state["_plan"] = None
        state.pop("_device_rng", None)  # a device's random state cannot be saved
        del state["_plan_lock"], state["_lock"], state["_draw_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("_metrics", None)  # graphs pickled before compile() existed
        state.setdefault("_undrawn", {})  # ... or before weights waited for their fan-in
        state.setdefault("_biases_fixed", True)
        state.setdefault("_backend", backend_module.CPU)  # ... or before devices
        self.__dict__.update(state)
        self._plan_lock = threading.Lock()
        self._draw_lock = threading.Lock()
        self._lock = ReadWriteLock()
        if self._optimizer is not None:  # the copy's optimizer (a copy too) trains the copy
            self._optimizer._claim(self)

    # ----------------------------------------------------------------- helpers
    def _resolve(self, ref: NodeRef) -> str:
        """The name of a node given by name or object; refuses strangers."""
        if isinstance(ref, Node):
            if ref.name is not None and self._nodes.get(ref.name) is ref:
                return ref.name
            raise NotFoundError(f"{ref!r} is not a node of graph {self.name!r}")
        if isinstance(ref, str) and ref in self._nodes:
            return ref
        raise NotFoundError(
            f"graph {self.name!r} has no node {ref!r}; known: {preview(self._nodes)}"
        )

    def _changed(self) -> None:
        self.version += 1


def _known(dtype) -> bool:
    """Whether numpy reads ``dtype`` as a dtype (``np.dtype(None)`` is float64,
    so None and unknown names must not get that far)."""
    if dtype is None:
        return False
    try:
        np.dtype(dtype)
    except (TypeError, ValueError):
        return False
    return True

