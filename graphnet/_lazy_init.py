"""Initial weights drawn once a node's fan-in is known.

``connect`` sees one synapse at a time, but an initialiser is drawn on the
destination's whole fan-in (the sum of its sources' sizes, as a ``Linear``
over the concatenated sources sees it). So ``connect`` only takes a 128-bit
seed from the graph's initialisation stream and queues the synapse here;
the node's weights are drawn together, as one ``(fan_in, size)`` matrix
whose rows the synapses take, when a weight is first needed
(``get_weights()``, ``synapse.weight``, ``node.bias``, the plan, a copy).
The draw depends on the seed and the calls made, never on when it happens,
nor on the dtype (float64, then cast), nor on the device (drawn on the
host, then placed).

A :class:`LazyInit` belongs to one :class:`~graphnet.network.Network` and
reads it through its public structure: ``nodes``, ``inputs``,
``sources(name)``, ``consumers(name)``, ``dtype`` and ``backend``.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import numpy as np

from . import _tabular, initializers
from ._locks import renew_in_forked_child
from ._text import preview
from .errors import GraphError
from .nodes import DenseNode
from .synapse import Synapse

if TYPE_CHECKING:
    from .network import Network

__all__ = ["LazyInit"]

logger = logging.getLogger("graphnet.graph")  # the graph's records, under its name

#: The PCG64 increment of every initialisation draw (any odd number): each
#: draw starts at its own random 128-bit state of that one stream.
_STREAM_INC = 0xDA3E39CB94B95BDB


class LazyInit:
    """The synapses of one network that wait for their draw, by destination."""

    #: Destination name -> its waiting synapses, in the order they were connected.
    waiting: dict[str, list[Synapse]]
    #: False while some node's bias may still be drawn.
    biases_fixed: bool
    #: Held while drawing, queueing or unqueueing (copies take it too).
    lock: threading.Lock

    def __init__(self):
        self.waiting = {}
        self.biases_fixed = True
        self.lock = threading.Lock()
        renew_in_forked_child(self, "lock")

    def __getstate__(self) -> dict:
        return {"waiting": self.waiting, "biases_fixed": self.biases_fixed}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.lock = threading.Lock()
        renew_in_forked_child(self, "lock")

    @property
    def idle(self) -> bool:
        """Whether nothing waits: no weight, no bias."""
        return not self.waiting and self.biases_fixed

    def queue(self, synapse: Synapse, rng: np.random.Generator, init: str, by_default: bool) -> None:
        """Take the seed of ``synapse``'s draw from ``rng`` now, and draw later."""
        high, low = rng.bit_generator.random_raw(2)
        synapse.defer((int(high) << 64) | int(low), init, by_default)
        self.waiting.setdefault(synapse.dst, []).append(synapse)

    def node_added(self, node: DenseNode) -> None:
        """A dense node joined: its bias may wait for a draw."""
        self.biases_fixed = self.biases_fixed and node.bias_fixed

    def retarget(self, dst: str, init: str) -> None:
        """Weights into ``dst`` still waiting for its default take ``init``."""
        with self.lock:
            for synapse in self.waiting.get(dst, []):
                synapse.retarget(init)

    def draw(self, network: Network, only: str | None = None, partial: bool = False) -> dict[str, np.ndarray]:
        """Draw what waits, for node ``only`` or for all; from then on those
        weights and biases are fixed (a node with nothing to draw keeps the
        bias it has). Once nothing waits, the network's members hold it
        weakly (:meth:`graphnet.structure.Structure.let_members_go`).

        A node fed by a categorical input whose vocabulary ``adapt`` has yet
        to learn cannot be drawn: its table's rows are unknown. With
        ``partial`` such nodes and their biases go on waiting (a read, a copy,
        a move), and their :meth:`provisional` values come back by key;
        otherwise (what would change them in place) the call is refused
        before anything is drawn.

        Raises
        ------
        GraphError
            Naming the inputs to adapt, unless ``partial``.
        """
        if only is None and self.idle:
            network.let_members_go()  # after an edit that made members, once all is drawn
            return {}
        with self.lock:
            skip = self._waiting_for_vocabulary(network, only)
            if skip and not partial:
                raise GraphError(
                    f"graph {network.name!r}: the weights into {preview(sorted(skip))} wait for the vocabulary "
                    f"of input(s) {sorted(set(skip.values()))} (categories='adapt'), which sets their tables' "
                    "rows: call g.adapt(data) (or fit) first")
            rng = None
            for dst in [only] if only is not None else list(self.waiting):
                if dst in skip:
                    continue
                waiting = self.waiting.get(dst)
                if waiting:
                    rng = rng or np.random.Generator(np.random.PCG64(0))  # put in each draw's state
                    _draw_node(network, dst, waiting, rng)  # draws every array before it binds one
                self.waiting.pop(dst, None)  # after: a draw that fails (memory, Ctrl-C) still waits
            nodes = network.nodes
            if only is not None:
                if isinstance(nodes.get(only), DenseNode) and only not in skip:
                    nodes[only].fix_bias()
            elif not self.biases_fixed:
                for node in nodes.values():
                    if isinstance(node, DenseNode) and node.name not in skip:
                        node.fix_bias()
                self.biases_fixed = not skip
            network.let_members_go(when=self.idle)
            return self._provisional(network, skip)

    def _waiting_for_vocabulary(self, network: Network, only: str | None) -> dict[str, str]:
        """The waiting nodes (``only``, or all) fed by a categorical input
        still to adapt, and that input."""
        nodes = network.nodes

        def unlearnt(name: str) -> bool:
            return getattr(nodes[name], "categories", None) == _tabular.ADAPT

        if only is not None:
            fed_by = [src for src in network.sources(only) if unlearnt(src)] if only in self.waiting else []
            return {only: fed_by[0]} if fed_by else {}
        return {dst: src for src in filter(unlearnt, network.inputs) for dst in network.consumers(src)
                if dst in self.waiting}

    def provisional(self, network: Network, only: str | None = None) -> dict[str, np.ndarray]:
        """What waits for a vocabulary (into node ``only``, or all), drawn for
        the vocabulary learnt so far, by key, without binding or fixing it:
        what a read shows until ``adapt`` sets the tables' rows (then the draw
        happens for good, from the same seeds)."""
        with self.lock:
            return self._provisional(network, self._waiting_for_vocabulary(network, only))

    def _provisional(self, network: Network, nodes) -> dict[str, np.ndarray]:
        """:meth:`provisional` of ``nodes`` (the caller holds the lock)."""
        drawn = {}
        for dst in nodes:
            rng = np.random.Generator(np.random.PCG64(0))
            drawn.update(_draw_node(network, dst, self.waiting[dst], rng, bind=False))
        return {owner.parameter_key: array for owner, array in drawn.items()}

    def vocabulary_waits(self, network: Network) -> dict[str, str | None]:
        """What waits for a vocabulary, as a model file keeps it: each waiting
        weight's key with its draw's seed (as text), and each bias still to
        be drawn with None (see :meth:`resume`)."""
        with self.lock:
            waits: dict[str, str | None] = {}
            for dst in self._waiting_for_vocabulary(network, None):
                waits.update((s.parameter_key, str(s.pending[0])) for s in self.waiting[dst])
                if not network.nodes[dst].bias_fixed:
                    waits[network.nodes[dst].parameter_key] = None
            return waits

    def resume(self, network: Network, waits: dict[str, str | None]) -> None:
        """Give the weights that wait for a vocabulary in a graph just built
        from a file the seeds :meth:`vocabulary_waits` kept: their draw, after
        ``adapt``, is then the saved graph's. ``waits`` was checked by the
        reader (keys of waiting weights, seeds of at most 128 bits)."""
        with self.lock:
            synapses = {s.parameter_key: s for dst in self._waiting_for_vocabulary(network, None)
                        for s in self.waiting[dst]}
            for key, seed in waits.items():
                if seed is not None:
                    synapse = synapses[key]
                    synapse.defer(int(seed), synapse.pending[1], synapse.follows_default)

    def assign(self, synapse: Synapse, values: np.ndarray) -> None:
        """Give a never-drawn synapse its first values (checked, in the graph's dtype)."""
        with self.lock:
            self._unqueue(synapse)
            synapse.bind_parameter(values)

    def detach(self, synapse: Synapse, network: Network) -> None:
        """``synapse`` leaves the network: one still waiting is drawn on its own
        fan-in (its source's size), so that it keeps a weight."""
        with self.lock:
            if self._unqueue(synapse):
                state, init_name = synapse.pending
                rng = _restart(np.random.Generator(np.random.PCG64(0)), state)
                values = initializers.get(init_name)(synapse.shape, rng, network.dtype)
                synapse.bind_parameter(network.backend.to_device(values))

    def _unqueue(self, synapse: Synapse) -> bool:
        """Take ``synapse`` off its destination's queue; whether it was waiting."""
        waiting = self.waiting.get(synapse.dst, [])
        if synapse not in waiting:
            return False
        waiting.remove(synapse)
        if not waiting:
            del self.waiting[synapse.dst]
        return True


def _draw_node(network: Network, dst: str, waiting: list[Synapse], rng: np.random.Generator,
               bind: bool = True) -> dict:
    """One ``(fan_in, size)`` matrix per initialiser among ``waiting``, ``fan_in``
    being the sum of every source's size; each synapse takes its own rows.
    Without ``bind`` nothing is bound or fixed: the drawn arrays come back by
    owner (the node among them for its bias, when it would be drawn)."""
    nodes = network.nodes
    offsets, rows, fan_in = {}, 0, 0
    for src in network.sources(dst):  # in the order they were connected
        offsets[src] = rows
        rows += nodes[src].size
        # One row of a categorical input's table reaches each sample (a one-hot
        # input): it counts once in the fan-in, or a 10,000-category input would
        # shrink every other weight into the node a hundredfold.
        fan_in += 1 if getattr(nodes[src], "categorical", False) else nodes[src].size
    node = nodes[dst]
    shape = (rows, node.size)
    scaled = {} if fan_in == rows else {"fan_in": fan_in}  # custom initialisers take (shape, rng, dtype)
    groups: dict[str, list[Synapse]] = {}
    for synapse in waiting:
        groups.setdefault(synapse.pending[1], []).append(synapse)
    place, dtype = network.backend.to_device, network.dtype  # drawn on the host: the same on every device
    drawn, bias_drawn = {}, node.bias_fixed
    for init_name, group in groups.items():
        _restart(rng, group[0].pending[0])
        full = place(initializers.get(init_name)(shape, rng, dtype, **scaled))  # drawn in float64, then cast
        for synapse in group:
            start = offsets[synapse.src]
            # Rows of a C-ordered matrix: a contiguous view, no copy.
            drawn[synapse] = full[start : start + synapse.shape[0]]
        # As PyTorch's Linear, the default draws the bias after the weights, from the same stream.
        if not bias_drawn and init_name in initializers.BIASES:
            drawn[node] = place(initializers.BIASES[init_name](fan_in, node.size, rng, dtype))
            bias_drawn = True
        logger.debug("%s: drew %s for %d synapse(s) into %r on fan-in %d", network.name, init_name,
                     len(group), dst, fan_in)
    if bind:
        for synapse in waiting:
            synapse.bind_parameter(drawn.pop(synapse))
        if drawn:
            node.parameter_array[...] = drawn.pop(node)
        node.fix_bias()
    return drawn


def _restart(rng: np.random.Generator, state: int) -> np.random.Generator:
    """``rng`` put in the 128-bit ``state`` that ``connect`` drew for a synapse:
    a few microseconds, where seeding a new generator takes tens (ten thousand
    nodes may be drawn at once)."""
    rng.bit_generator.state = {"bit_generator": "PCG64", "state": {"state": state, "inc": _STREAM_INC},
                               "has_uint32": 0, "uinteger": 0}
    return rng
