"""When a graph draws its initial weights: once a node's fan-in is known.

``connect`` sees one synapse at a time, but an initialiser is drawn on the
destination's whole fan-in (the sum of its sources' sizes, as a ``Linear``
over the concatenated sources sees it). So ``connect`` only takes a 128-bit
seed from the graph's stream and queues the synapse; the node's weights are
drawn together, as one ``(fan_in, size)`` matrix whose rows the synapses
take, when a weight is first needed (``get_weights()``, ``synapse.weight``,
``node.bias``, the plan, a copy). The draw depends on the seed and the calls
made, never on when it happens, nor on the dtype (float64, then cast), nor
on the device (drawn on the host, then placed).

:class:`WeightDrawing` holds the graph's side of it; ``Graph`` inherits it.
It uses the graph's ``_undrawn`` queue, ``_biases_fixed`` flag and
``_draw_lock``, which ``Graph.__init__`` makes.
"""

from __future__ import annotations

import logging

import numpy as np

from . import initializers
from .nodes import DenseNode
from .synapse import Synapse

__all__ = ["WeightDrawing"]

logger = logging.getLogger("graphnet.graph")  # the graph's records, under its name


class WeightDrawing:
    """The graph's queue of synapses waiting for their draw; see the module docs."""

    def _draw(self, only: str | None = None) -> None:
        """Draw what is still waiting, for node ``only`` or for all; from then on
        those weights and biases are fixed (a node with nothing to draw keeps
        the bias it has)."""
        if only is None and not self._undrawn and self._biases_fixed:
            return
        with self._draw_lock:
            rng = None
            for dst in [only] if only is not None else list(self._undrawn):
                waiting = self._undrawn.pop(dst, None)
                if waiting:
                    rng = rng or np.random.Generator(np.random.PCG64(0))  # put in each draw's state
                    self._draw_node(dst, waiting, rng)
            if only is not None:
                node = self._nodes.get(only)
                if isinstance(node, DenseNode):
                    node._bias_fixed = True
            elif not self._biases_fixed:
                for node in self._nodes.values():
                    if isinstance(node, DenseNode):
                        node._bias_fixed = True
                self._biases_fixed = True

    def _draw_node(self, dst: str, waiting: list[Synapse], rng: np.random.Generator) -> None:
        """One ``(fan_in, size)`` matrix per initialiser among ``waiting``, ``fan_in``
        being the sum of every source's size; each synapse takes its own rows."""
        nodes = self._nodes
        offsets, fan_in = {}, 0
        for src in self._structure.pred[dst]:  # in the order they were connected
            offsets[src] = fan_in
            fan_in += nodes[src]._size
        node = nodes[dst]
        shape = (fan_in, node._size)
        groups: dict[str, list[Synapse]] = {}
        for synapse in waiting:
            groups.setdefault(synapse._pending[1], []).append(synapse)
        place = self._backend.to_device  # drawn on the host: the same on every device
        for init_name, group in groups.items():
            _restart(rng, group[0]._pending[0])
            full = place(initializers.get(init_name)(shape, rng, self.dtype))  # drawn in float64, then cast
            for synapse in group:
                start = offsets[synapse.src]
                # Rows of a C-ordered matrix: a contiguous view, no copy.
                synapse._weight = full[start : start + synapse._shape[0]]
                synapse._pending = None
            # As PyTorch's Linear, the default draws the bias after the weights, from the same stream.
            if not node._bias_fixed and init_name in initializers.BIASES:
                node._bias[...] = place(initializers.BIASES[init_name](fan_in, node.size, rng, self.dtype))
                node._bias_fixed = True
            logger.debug("%s: drew %s for %d synapse(s) into %r on fan-in %d", self.name, init_name,
                         len(group), dst, fan_in)
        node._bias_fixed = True

    def _assign_undrawn(self, synapse: Synapse, values: np.ndarray) -> None:
        """Give a never-drawn synapse its first values (checked, in the graph's dtype)."""
        with self._draw_lock:
            self._unqueue(synapse)
            synapse._weight, synapse._pending = values, None

    def _unqueue(self, synapse: Synapse) -> bool:
        """Take ``synapse`` off its destination's queue (the draw lock held);
        whether it was waiting."""
        waiting = self._undrawn.get(synapse.dst, [])
        if synapse not in waiting:
            return False
        waiting.remove(synapse)
        if not waiting:
            del self._undrawn[synapse.dst]
        return True

    def _detach(self, synapse: Synapse) -> None:
        """A synapse leaves the graph: one still undrawn is drawn on its own fan-in
        (its source's size), so that it keeps a weight; nothing else changes."""
        with self._draw_lock:
            if self._unqueue(synapse):
                state, init_name = synapse._pending
                rng = _restart(np.random.Generator(np.random.PCG64(0)), state)
                synapse._weight = self._backend.to_device(initializers.get(init_name)(synapse.shape, rng, self.dtype))
                synapse._pending = None
        synapse._graph = None

def _restart(rng: np.random.Generator, state: int) -> np.random.Generator:
    """``rng`` put in the 128-bit ``state`` that ``connect`` drew for a synapse:
    a few microseconds, where seeding a new generator takes tens (ten thousand
    nodes may be drawn at once)."""
    rng.bit_generator.state = {"bit_generator": "PCG64", "state": {"state": state, "inc": _STREAM_INC},
                               "has_uint32": 0, "uinteger": 0}
    return rng


#: The PCG64 increment of every initialisation draw (any odd number): each
#: draw starts at its own random 128-bit state of that one stream.
_STREAM_INC = 0xDA3E39CB94B95BDB
