"""Network: the structure of a graph with its weights, on a device.

:class:`Network` stands on :class:`~graphnet.structure.Structure` (named
nodes joined by synapses, in an order) and adds what makes the structure a
network: the weights and biases (drawn lazily from the graph's seed, see
:mod:`graphnet._lazy_init`), their dtype and device, the random streams,
the optimizer that trains them, and the edits users make, each checked
before anything changes: a refused ``connect`` leaves the network (and its
random streams) exactly as it was.

This is the floor of the house: it knows nodes, synapses, their weights and
the device they live on, and nothing that runs, trains, saves or draws a
graph. :class:`graphnet.Graph`, on the top floor, adds those verbs by
handing the work to the modules between the two. The modules in between
change a network only through the public methods here and on
:class:`~graphnet.structure.Structure` (``connect``, ``remove``,
``replace``, ``rebuild``, ...), never through its fields.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Self, TypeVar

import numpy as np

from . import backend as backend_module
from . import _tabular, initializers, regularizers
from . import optimizers as optimizers_module
from ._graph_settings import GraphSettings, checked_dtype, checked_seed, with_settings_held
from ._lazy_init import LazyInit
from ._locks import ReadWriteLock, renew_in_forked_child, edit as _edit
from ._parameters import new_token
from ._settings import naming_the_class
from ._state_layout import writable
from ._text import format_cycle, shown
from ._validation import check_allocation
from .errors import CycleError, GraphError
from .nodes import DenseNode, Input, Node, Output
from .structure import NodeRef, Structure
from .synapse import Synapse, init_values

__all__ = ["Network", "NodeRef", "model_class"]

logger = logging.getLogger("graphnet.graph")  # the records users know, under the public class's name

T = TypeVar("T")

#: The classes that builders (specs, model files, importers) make, by kind:
#: ``"graph"`` and ``"sequential"``; a subclass registers itself with
#: ``class Graph(Network, kind="graph")``.
_MODEL_CLASSES: dict[str, type] = {}


def model_class(kind: str, given: type | None = None) -> type:
    """The class a builder makes for ``kind`` (``"graph"`` or ``"sequential"``):
    ``given`` when it is one (the class a user called ``from_dict`` on), else
    the registered one."""
    if given is not None and given.kind == kind:
        return given
    return _MODEL_CLASSES[kind]


class Network(GraphSettings, Structure):
    """A structure of nodes and synapses with its weights, on a device.

    Use :class:`graphnet.Graph`, which adds running, training, files and
    pictures; the parameters are described there.
    """

    #: What builders make of this class (see :func:`model_class`).
    kind: ClassVar[str] = ""

    #: The training stream: shuffling, validation splits, dropout.
    rng: np.random.Generator
    #: The initialisation stream: each synapse's draw takes its seed from it.
    init_rng: np.random.Generator
    #: Set by a callback to end ``fit`` after the current epoch.
    stop_training: bool
    #: The metrics ``fit`` and ``evaluate`` use when given none (set by ``compile``).
    default_metrics: Any
    #: A device's own dropout stream, made by the device backend on first use.
    device_rng: Any
    _backend: backend_module.Backend
    _entropy: Any  # the seed's entropy, for the device stream
    #: The weights still waiting for their draw (:mod:`graphnet._lazy_init`).
    lazy_init: LazyInit
    _optimizer: Any
    _compiled: dict[Callable, Any]  # factory -> (version, product)
    _compile_lock: threading.Lock

    def __init_subclass__(cls, kind: str | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if kind is not None:
            cls.kind = kind
            _MODEL_CLASSES[kind] = cls

    @naming_the_class  # Graph(nme=...) names Graph, and the keyword it is closest to
    def __init__(self, name: str = "graph", seed: int | None = None, dtype="float32", device="cpu"):
        super().__init__(name)  # checks the name (GraphSettings) first
        self._seed, self._dtype = checked_seed(seed, name), checked_dtype(dtype, name)
        self._backend = backend_module.get(device)
        seeds = np.random.SeedSequence(seed)
        self._entropy = seeds.entropy
        init_seed, train_seed = seeds.spawn(2)
        # Separate streams: running or training never changes how later
        # synapses are initialised, and vice versa.
        self.init_rng = np.random.default_rng(init_seed)
        self.rng = np.random.default_rng(train_seed)
        self.device_rng = None
        self.lazy_init = LazyInit()
        self._optimizer = None
        self.lineage = new_token()  #: its own number, kept by copies: whose parameters optimizer state names
        self._compiled = {}
        self._compile_lock = threading.Lock()
        renew_in_forked_child(self, "_compile_lock")
        self.default_metrics = None
        self.stop_training = False

    # ------------------------------------------------------------------ nodes
    @_edit
    def add_node(self, node: Node) -> Node:
        """Add a node object built elsewhere (it must have a name)."""
        if not isinstance(node, Node):
            raise GraphError(f"graph {self.name!r}: expected a Node, got {type(node).__name__}")
        if node.name is None:
            raise GraphError(f"graph {self.name!r}: {node!r} needs a name before it is added")
        if (twin := self._nodes.get(node.name)) is not None:
            raise GraphError(f"graph {self.name!r} already has a node named {node.name!r} ({twin.kind}); node names "
                             "must be unique")
        if (holder := node.graph) is not None:
            raise GraphError(f"graph {self.name!r}: {node!r} already belongs to graph {holder.name!r}; make a new node")
        if isinstance(node, DenseNode):
            self._adopt_bias(node, node.parameter_array)
        self._add(node)
        self.changed()
        return node

    def _adopt_bias(self, node: DenseNode, values) -> None:
        """``node`` holds ``values`` as its bias, in this network's dtype and on its device."""
        node.bind_parameter(self._backend.to_device(np.array(backend_module.host(values), dtype=self.dtype)))
        self.lazy_init.node_added(node)

    @_edit
    def remove(self, name: NodeRef) -> None:
        """Remove a node and every synapse touching it; other weights are kept.

        Raises
        ------
        GraphError
            For an unknown name.
        """
        name = self.resolve(name)
        if self._io([self._nodes[name]]):
            self._refuse_while_fitting(f"removing the {self._nodes[name].kind} {name!r}")
        for key in self._touching(name):
            self._detach(self._unlink(key))
        self._drop(name)
        self.changed()

    @_edit
    def replace(self, name: str, node: Node) -> None:
        """Swap the node object called ``name`` for ``node`` (same name and size),
        keeping its place in the insertion order, its synapses and its bias
        values; weights still waiting for the old node's default draw take
        the new node's default. (``Sequential.add`` turns the old output into
        a Hidden node this way.)"""
        old = self._nodes[self.resolve(name)]
        if node.name != name or node.size != old.size:
            raise GraphError(f"replace: {node!r} cannot stand in for {old!r}")
        if old.kind != node.kind:
            self._refuse_while_fitting(f"turning the {old.kind} {name!r} into a {node.kind} node")
        if node.graph is not None:
            raise GraphError(f"replace: {node!r} already belongs to a graph")
        if isinstance(node, DenseNode):
            # The raw values: reading old.bias would draw what the node still waits for.
            dense = isinstance(old, DenseNode)
            if not dense or old.bias_fixed:
                node.fix_bias()
            self._adopt_bias(node, old.parameter_array if dense else node.parameter_array)
            if dense:  # the same bias: the same parameter, with its optimizer state
                node.parameter_token = old.parameter_token
            self.lazy_init.retarget(name, initializers.default_for(node.activation, output=isinstance(node, Output)))
        old.detach(replaced=True)
        self._adopt(node)
        self._nodes[name] = node
        self.changed()

    # -------------------------------------------------------------- synapses
    @_edit
    def connect(self, src: NodeRef | Iterable[NodeRef], dst: NodeRef, init: str | np.ndarray | None = None,
                trainable: bool | None = None, regularizer=None) -> Synapse | list[Synapse]:
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
            initialiser leaves the bias at zero.
        trainable : bool, optional
            Whether the optimizer updates the new weights; by default as
            ``dst.trainable`` (a frozen node's new synapses are frozen too).
        regularizer : str, dict or Regularizer, optional
            A penalty on each new weight (``graphnet.regularizers``: ``"l1"``,
            ``"l2"``, ``L2(1e-4)``, ...), added to the training loss.

        Returns
        -------
        Synapse, or a list of Synapses when ``src`` is a list.

        Notes
        -----
        A named initialiser is drawn on the destination's whole fan-in, as a
        ``Linear`` over the concatenated sources would be: one ``(Σ src.size,
        dst.size)`` matrix (sources in the order they were connected) whose
        rows the synapses take, the default's bias after it. The draw waits
        until a weight is first needed (``get_weights()``, ``synapse.weight``,
        ``node.bias``, the first run, a copy, ``to(device)``); it depends on
        the seed and the calls made, not on when it happens nor on the dtype.
        Weights drawn, seen, set or loaded never change by themselves (those fed
        by a categorical input still to adapt are provisional until ``adapt``).

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
        if trainable is not None and not isinstance(trainable, (bool, np.bool_)):
            raise GraphError(f"connect: trainable must be True, False or None, got {trainable!r}")
        regularizers.get(regularizer)  # refuse a bad one before anything changes
        if isinstance(dst, (list, tuple, set)):
            raise GraphError(f"connect: dst must be one node, got {type(dst).__name__} {shown(dst)}; connect takes "
                             f"a list of sources, not of destinations: call connect once per destination")
        sources = [self.resolve(s) for s in (src if many else [src])]
        dst_name = self.resolve(dst)
        if many and not sources:
            raise GraphError(f"connect: no sources given for {dst_name!r}")
        target = self._nodes[dst_name]
        if isinstance(target, Input):
            raise GraphError(f"cannot connect into input {dst_name!r}: inputs take data, not synapses")
        trainable = target.trainable if trainable is None else trainable
        seen = set()
        for name in sources:
            if name == dst_name:
                raise CycleError(f"a synapse from {name!r} to itself would make the cycle {name} -> {name}")
            if (name, dst_name) in self._synapses or name in seen:
                raise GraphError(f"synapse {name!r} -> {dst_name!r} already exists")
            seen.add(name)
            cycle = self._cycle_through(name, dst_name)
            if cycle:
                raise CycleError(f"connecting {name!r} -> {dst_name!r} would create the cycle {format_cycle(cycle)}")
        shapes = [(self._nodes[s].size, target.size) for s in sources]
        if many and init is not None and not isinstance(init, str):
            raise GraphError("connect: an init array needs a single source, not a list")
        values = init_values(init, shapes[0], self.dtype, f"synapse {sources[0]!r} -> {dst_name!r}")
        init_name = ("array" if values is not None else init if init is not None
                     else initializers.default_for(target.activation, output=isinstance(target, Output)))
        for name, shape in zip(sources, shapes):
            check_allocation(shape[0] * shape[1], self.dtype.itemsize, f"synapse {name!r} -> {dst_name!r}")
        created = []
        for name, shape in zip(sources, shapes):
            if values is not None:
                synapse = Synapse(name, dst_name, self._backend.to_device(values.copy()), init_name,
                                  trainable, regularizer)
            else:
                # Drawn later, on the destination's whole fan-in (see Notes); the
                # seed is taken now, so the draw depends on the calls, not on when.
                synapse = Synapse(name, dst_name, None, init_name, trainable, regularizer, shape=shape)
                self.lazy_init.queue(synapse, self.init_rng, init_name, by_default=init is None)
            logger.debug("%s: init %s -> %s %s with %s", self.name, name, dst_name, shape, init_name)
            self._link(synapse)
            created.append(synapse)
        self.changed()
        return created if many else created[0]

    @_edit
    def disconnect(self, src: NodeRef, dst: NodeRef) -> None:
        """Remove the synapse ``src -> dst``; other weights are kept.

        Parameters
        ----------
        src, dst : str or Node

        Raises
        ------
        NotFoundError
            For an unknown node, or no synapse between them.
        """
        synapse = self.synapse(src, dst)  # refuses an unknown node or synapse
        self._detach(self._unlink((synapse.src, synapse.dst)))
        self.changed()

    def _detach(self, synapse: Synapse) -> None:
        self.lazy_init.detach(synapse, self)
        synapse.detach()

    @_edit
    def rebuild(self, nodes: list[Node], synapses: list[Synapse]) -> None:
        """Make ``nodes`` and ``synapses``, in these orders, the network's contents.

        Surgery's one write, after everything was checked and computed: it
        cannot fail halfway, and it is one edit (one version bump). Objects
        that leave are detached; new nodes get the network's dtype and keep
        the bias they came with (never drawn over); new nodes and synapses
        are placed on the network's device.
        """
        for node in nodes:
            if node.graph is not self and isinstance(node, DenseNode):
                node.bind_parameter(self._backend.to_device(np.array(node.parameter_array, dtype=self.dtype)))
                node.fix_bias()
        for synapse in synapses:
            if synapse.graph is not self:
                synapse.bind_parameter(self._backend.to_device(synapse.parameter_array))
        self._swap(nodes, synapses)
        self.changed()

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.name!r}: {len(self.inputs)} inputs, {len(self.outputs)} outputs, "
                f"{len(self._nodes)} nodes, {len(self._synapses)} synapses, {self.num_params:,} params, {self.dtype}>")

    # ---------------------------------------------------------------- weights
    def materialize(self, only: str | None = None, partial: bool = False) -> dict[str, np.ndarray]:
        """Draw the weights still waiting for their fan-in, of node ``only`` or of
        all; ``partial``: see :meth:`graphnet._lazy_init.LazyInit.draw` (its result)."""
        return self.lazy_init.draw(self, only, partial)

    def assign_first_values(self, synapse: Synapse, values) -> None:
        """Give a synapse whose draw is still pending its first values instead."""
        self.lazy_init.assign(synapse, values)

    def keep_compiled_loss(self, loss) -> None:
        """What a subclass keeps of ``compile(loss=...)`` (a Sequential: the
        loss its later layers get); nothing here."""

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
            new.claim(self)
        if self._optimizer is not None:
            self._optimizer.release()
        self._optimizer = new

    # ---------------------------------------------------------------- devices
    @property
    def device(self) -> str:
        """Where the graph's weights live and it runs: ``"cpu"`` or ``"cuda"``."""
        return self._backend.name

    @property
    def backend(self) -> backend_module.Backend:
        """The array backend of :attr:`device` (:mod:`graphnet.backend`)."""
        return self._backend

    @_edit
    def to(self, device) -> Self:
        """Move the graph to ``device`` in place: every weight and bias, and
        the optimizer's state.

        Results on the new device equal the old one's within float32
        rounding; nothing else changes (weights bit for bit, the iteration
        count, the random streams).

        Parameters
        ----------
        device : {"cpu", "cuda"}

        Returns
        -------
        Graph
            The graph itself.

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
        self.materialize(partial=True)  # drawn on the host, as always (what waits for a vocabulary: later)
        for owner in self.parameter_holders():
            if owner.parameter_array is not None:  # one waiting for a vocabulary has none yet
                owner.bind_parameter(new.to_device(old.host_copy(owner.parameter_array)))
        if self._optimizer is not None:
            self._optimizer.to(new)
        self._backend = new
        self.device_rng = None
        self.changed()
        logger.info("%s: moved from %s to %s", self.name, old.name, new.name)
        return self

    def astype(self, dtype) -> None:
        """Hold every weight and bias in ``dtype`` from now on (in place; the
        gradient check's float64 copy); ``g.dtype = dtype`` does the same.

        Raises
        ------
        GraphError
            For a dtype but float32 or float64 (nothing changes), or while
            the graph is training.
        """
        dtype = checked_dtype(dtype, self.name)
        self._refuse_while_fitting(f"astype({dtype.name!r})")
        self.materialize(partial=True)  # what waits for a vocabulary is drawn in the new dtype later
        self._dtype = dtype
        for owner in self.parameter_holders():
            if owner.parameter_array is not None:
                owner.bind_parameter(owner.parameter_array.astype(self.dtype))
        self.changed()

    def device_seed(self) -> int:
        """A seed for a device's own dropout stream, from the graph's seed (a
        third child of its SeedSequence: the init and training streams are
        the first two, so this one changes neither)."""
        sequence = np.random.SeedSequence(self._entropy, spawn_key=(2,))
        return int(sequence.generate_state(1, np.uint32)[0])

    # ------------------------------------------------- derived from the structure
    def compiled(self, factory: Callable[[Network], T]) -> T:
        """``factory(self)`` for the current version, made once per version
        (thread-safe) and dropped by copies: how the plan is cached."""
        entry = self._compiled.get(factory)
        if entry is not None and entry[0] == self.version:
            return entry[1]
        # The read lock: no edit lands while the structure is read (a fit started
        # while another thread edits compiles the graph of one moment).
        with self.lock.reading(), self._compile_lock:
            entry = self._compiled.get(factory)
            if entry is None or entry[0] != self.version:
                _tabular.refuse_unadapted(self.name, [n for n in self.inputs if not self._nodes[n].adapted])
                self.materialize()  # the product may bind every weight: the fan-ins are final for now
                entry = self._compiled[factory] = (self.version, factory(self))
            return entry[1]

    # --------------------------------------------------------------- pickling
    def __getstate__(self) -> dict[str, Any]:
        """Everything but what is compiled from the structure and the locks,
        which are rebuilt on demand. Pickling exists for ``copy.deepcopy`` and
        for scikit-learn users who ``joblib.dump`` a fitted estimator (graphnet's
        own model files never unpickle): an unpickled graph predicts identically
        and trains on from where it was. What waits for its fan-in is drawn
        first, under the draw lock (a copy taken while another thread draws
        would hold synapses neither drawn nor waiting); what waits for a
        vocabulary goes on waiting in the copy."""
        self.materialize(partial=True)
        with self.lazy_init.lock:
            state = self.__dict__.copy()
        state["_compiled"] = {}
        state["device_rng"] = None  # a device's random state cannot be saved
        del state["_compile_lock"], state["lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(with_settings_held(state))
        self._compile_lock = threading.Lock()
        renew_in_forked_child(self, "_compile_lock")
        self.lock = ReadWriteLock()
        for owner in (*self._nodes.values(), *self._synapses.values()):  # read-only after joblib's memory maps
            array = getattr(owner, "parameter_array", None)
            if (copy := writable(array)) is not array:
                owner.bind_parameter(copy)
        if self._optimizer is not None:  # the copy's optimizer (a copy too) trains the copy
            self._optimizer.claim(self)
        self._members_held = True  # the members were made holding the copy
        self.let_members_go(when=self.lazy_init.idle)
