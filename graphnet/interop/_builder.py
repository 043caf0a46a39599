"""What every importer shares: collect nodes and synapses from a foreign model,
fold activations and dropout into the nodes they follow, then build the graph.

Converters read their library's model layer by layer and describe it here in
graphnet's terms. The graph itself is built once, at the end, through
:func:`graphnet.spec.from_dict` (so an imported model passes the same checks as
a spec file) followed by ``set_weights``.

Folding rules, which keep every import exact:

* An activation folds into the dense node it follows when that node is still
  linear, has no dropout, and nothing else reads its pre-activation value.
* A dropout folds into the node it follows when nothing else reads that node
  (two dropouts in a row combine: keep rates multiply).
* Otherwise (an activation after an activation, an activation or dropout on an
  input or on a concatenation, a concatenation as a model output) the
  importer adds an *identity node*: a Hidden node fed by frozen identity
  weights with a frozen zero bias. ``x @ I`` is exactly ``x``, so predictions
  are unchanged, and gradients flow through it unchanged while training.
* A layer without bias becomes a node whose bias is zero and frozen
  (``trainable=False`` on the node); its weights still train.
* A sum (Keras ``Add``, torch ``+``, ONNX ``Add``) is one node with a synapse
  per summand: a summand that is a linear dense node read by nothing else is
  *absorbed* (its synapses and bias move into the sum node), any other
  summand joins through a frozen identity synapse. Two paths from the same
  node become one synapse whose weight is their sum (exact; it trains as the
  sum of the two would).
* A batch normalisation directly after a linear dense node folds into it:
  each column of its weights is scaled by ``gamma / sqrt(var + eps)`` and its
  bias becomes ``(bias - mean) * scale + beta``. Inference-exact; the node
  then trains as the plain dense layer it is.
* Outputs are listed in the model's declared order (a graph's outputs come in
  node insertion order, so :meth:`Builder.build` places them that way).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import activations, losses
from .._validation import check_allocation, check_int, check_outputs, has_control
from ..errors import GraphError, ModelImportError
from .._parameters import bias_key, weight_key
from ..layers import default_loss
from ..spec import FORMAT, FORMAT_VERSION, from_dict
from .._topology import is_chain
from ._output_names import rename_outputs
from ._unused import check_used

logger = logging.getLogger(__name__)

__all__ = ["Builder", "Concat", "printable_name"]


@dataclass(frozen=True)
class Concat:
    """Node outputs side by side, not (yet) a node: what a concatenation
    along the features computes. A dense layer reading it gets one synapse
    per part, its weight split by rows."""

    parts: tuple[str, ...]


@dataclass
class _Node:
    name: str
    size: int
    kind: str  # "input" or "dense"
    activation: Any = "linear"
    dropout: float = 0.0
    trainable: bool = True  # the bias
    bias: np.ndarray | None = None  # None: start at zero (architecture-only import)
    identity: bool = False
    origin: str = ""  # the foreign layer, for messages
    bias_regularizer: Any = None  # a graphnet.regularizers config, or None
    settings: dict | None = None  # an input's table settings (categories, normalize, mean, std)


@dataclass
class _Synapse:
    src: str
    dst: str
    weight: np.ndarray | None  # (src.size, dst.size); None: drawn by ``init``
    trainable: bool = True
    init: str | None = None
    regularizer: Any = None  # a graphnet.regularizers config, or None


@dataclass
class Builder:
    """Nodes and synapses of an import, in creation order; at most ``max_params``
    weights and biases (None: no limit), :meth:`identity`'s in ``block_dtype``."""

    source: str  # "keras model 'mlp'", for messages
    nodes: dict[str, _Node] = field(default_factory=dict)
    synapses: list[_Synapse] = field(default_factory=list)
    max_params: int | None = None
    block_dtype: str = "float64"
    params: int = 0  # weights and biases of the nodes so far
    _suffixes: dict[str, int] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------- editing
    def unique(self, base: str) -> str:
        """``base``, or ``base_1``, ``base_2``, ... whichever is free first."""
        if base not in self.nodes:
            return base
        i = self._suffixes.get(base, 1)  # below it all taken (forgotten when a name is freed)
        while f"{base}_{i}" in self.nodes:
            i += 1
        self._suffixes[base] = i
        return f"{base}_{i}"

    def reserve(self, count: int, what: str) -> None:
        """Refuse (ModelImportError) ``count`` more parameters than ``max_params`` and memory allow."""
        total = self.params + int(count)
        if self.max_params is not None and total > self.max_params:
            raise ModelImportError(f"{self.source}: {what} brings the model to {total:,} parameters, more than "
                                   f"max_params={self.max_params:,}; pass a larger max_params (or None) to "
                                   f"import it if you trust the model")
        try:
            check_allocation(count, 8, f"{self.source}: {what}")
        except GraphError as exc:
            raise ModelImportError(str(exc)) from None

    def add_input(self, name: str, size: int, origin: str = "") -> str:
        self._check_new(name, origin)
        self.nodes[name] = _Node(name, _positive(size, origin or name), "input", origin=origin)
        return name

    def add_dense(
        self,
        name: str,
        sources: list[tuple],
        size: int,
        bias: np.ndarray | None,
        use_bias: bool = True,
        activation: Any = "linear",
        trainable: bool = True,
        init: str | None = None,
        origin: str = "",
        regularizer: Any = None,
        bias_regularizer: Any = None,
    ) -> str:
        """A dense node fed by ``sources``: ``(node name, weight (src.size, size) or None)``,
        or ``(node name, weight, trainable)`` to set that synapse's own flag.
        ``regularizer`` (each synapse's) and ``bias_regularizer`` are
        :mod:`graphnet.regularizers` configs: a kernel's penalty split by rows
        over several synapses sums to the kernel's. A layer's name no node
        may carry (``->``, control characters) becomes its printable part."""
        if "->" in name or has_control(name):
            name = self.unique(printable_name(name, "dense"))
        self._check_new(name, origin)
        size = _positive(size, origin or name)
        seen = set()
        for src, weight, *_ in sources:
            if src not in self.nodes:
                raise ModelImportError(f"{self.source}: {origin or name} reads unknown input {src!r}")
            if src in seen:
                raise ModelImportError(
                    f"{self.source}: {origin or name} reads {src!r} twice (e.g. a concatenation "
                    f"of a tensor with itself); graphnet joins two nodes by one synapse"
                )
            seen.add(src)
            expected = (self.nodes[src].size, size)
            if weight is not None and tuple(weight.shape) != expected:
                raise ModelImportError(
                    f"{self.source}: {origin or name}: weight from {src!r} has shape "
                    f"{tuple(weight.shape)}, expected {expected}"
                )
        if bias is not None and tuple(bias.shape) != (size,):
            raise ModelImportError(
                f"{self.source}: {origin or name}: bias has shape {tuple(bias.shape)}, expected ({size},)"
            )
        count = size + sum(self.nodes[src].size * size for src, *_ in sources)
        self.reserve(count, origin or name)
        if not use_bias:
            bias = np.zeros(size)
        self.params += count
        self.nodes[name] = _Node(
            name, size, "dense", activation=_activation(activation, self.source, origin or name),
            trainable=trainable and use_bias, bias=bias, origin=origin,
            bias_regularizer=bias_regularizer if use_bias else None,
        )
        for src, weight, *flag in sources:
            learn = flag[0] if flag else trainable
            self.synapses.append(_Synapse(src, name, weight, learn, None if weight is not None else init,
                                          regularizer))
        return name

    def parts(self, value) -> list[str]:
        """The nodes a value is made of: a node itself, or a concatenation's parts."""
        return list(value.parts) if isinstance(value, Concat) else [value]

    def size_of(self, value) -> int:
        return sum(self.nodes[p].size for p in self.parts(value))

    def materialise(self, value, name: str, origin: str = "") -> str:
        """A node holding ``value`` (a concatenation gets an identity node)."""
        if isinstance(value, Concat):
            return self.identity(list(value.parts), name, origin)
        return value

    def dense_from(self, name: str, value, kernel: np.ndarray | None, size: int, bias, **kwargs) -> str:
        """A dense node reading ``value`` (a node or a concatenation, whose
        parts each get their slice of ``kernel``'s rows)."""
        sources, offset = [], 0
        for part in self.parts(value):
            n = self.nodes[part].size
            sources.append((part, None if kernel is None else kernel[offset : offset + n]))
            offset += n
        return self.add_dense(name, sources, size, bias, **kwargs)

    def absorbable(self, node: str) -> bool:
        """A linear dense node without dropout or penalties: a sum or a batch norm
        may take it over (a merged weight could not carry its own penalty)."""
        target = self.nodes[node]
        return (target.kind == "dense" and target.dropout == 0.0
                and activations.get(target.activation).name == "linear"
                and target.bias_regularizer is None
                and not any(s.regularizer is not None for s in self.synapses if s.dst == node))

    def add_sum(self, name: str, summands: list[tuple], origin: str = "") -> str:
        """A node computing the sum of ``summands``: ``(value, exclusive)`` pairs,
        or ``(value, exclusive, c)`` for ``c * value`` (a difference, a mean).

        An exclusive linear dense summand is absorbed (see the module notes);
        anything else joins through frozen synapses ``c * I``.
        """
        sizes = {self.size_of(value) for value, *_ in summands}
        if len(sizes) != 1:
            raise ModelImportError(
                f"{self.source}: {origin or name} adds tensors of {sorted(sizes)} features; "
                f"graphnet adds equal sizes only (no broadcasting)"
            )
        size = sizes.pop()
        self.reserve(sum(self.size_of(value) for value, *_ in summands) * size, origin or name)
        terms: dict[str, list] = {}  # src -> [weight or None, trainable, init]
        bias, bias_trainable, absorbed = np.zeros(size), False, []
        for value, exclusive, *scale in summands:
            c = float(scale[0]) if scale else 1.0
            if isinstance(value, str) and exclusive and value not in absorbed and self.absorbable(value):
                node = self.nodes[value]
                for s in [s for s in self.synapses if s.dst == value]:
                    self._merge_term(terms, s.src, None if s.weight is None else c * s.weight, s.trainable, s.init)
                bias = None if bias is None or node.bias is None else bias + c * node.bias
                bias_trainable = bias_trainable or node.trainable
                absorbed.append(value)
                continue
            offset = 0
            for part in self.parts(value):
                n = self.nodes[part].size
                block = np.zeros((n, size))
                block[:, offset : offset + n] = c * np.eye(n)
                self._merge_term(terms, part, block, False, None)
                offset += n
        for node in absorbed:
            self.remove(node)
        name = self.unique(name)
        sources = [(src, w, learn) for src, (w, learn, _) in terms.items()]
        name = self.add_dense(name, sources, size, bias, trainable=bias_trainable, origin=origin)
        for s in self.synapses:
            if s.dst == name and s.weight is None:
                s.init = terms[s.src][2]
        return name

    @staticmethod
    def _merge_term(terms: dict, src: str, weight, trainable: bool, init) -> None:
        if src not in terms:
            terms[src] = [weight, trainable, init]
            return
        old = terms[src]
        both = old[0] is not None and weight is not None
        terms[src] = [old[0] + weight if both else None, old[1] or trainable, old[2] or init]

    def fold_scale(self, node: str, scale: np.ndarray, shift: np.ndarray, trainable: bool) -> None:
        """``node``'s pre-activation becomes ``z * scale + shift`` (a folded batch norm).

        Weights and bias of an architecture-only import (None) stay as they are.
        """
        target = self.nodes[node]
        if target.bias_regularizer is not None or any(s.regularizer is not None for s in self.synapses
                                                      if s.dst == node):
            logger.warning("%s: %s: its weight penalty now applies to the weights with the batch "
                           "norm folded in, not to the layer's own kernel", self.source, target.origin or node)
        for s in self.synapses:
            if s.dst == node and s.weight is not None:
                s.weight = s.weight * scale
        if target.bias is not None:
            target.bias = target.bias * scale + shift
        target.trainable = target.trainable or trainable

    def remove(self, node: str) -> None:
        """Drop ``node`` and every synapse into or out of it."""
        gone = self.nodes.pop(node)
        cut = [s for s in self.synapses if node in (s.src, s.dst)]
        self.params -= (gone.size if gone.kind == "dense" else 0) + sum(
            self.nodes.get(s.src, gone).size * self.nodes.get(s.dst, gone).size for s in cut)
        self.synapses = [s for s in self.synapses if node not in (s.src, s.dst)]
        self._suffixes.clear()

    def identity(self, sources: list[str], name: str, origin: str = "") -> str:
        """A frozen linear node equal to its sources side by side (one source: a copy)."""
        size = sum(self.nodes[s].size for s in sources)
        self.reserve((size + 1) * size, origin or name)
        weights, offset = [], 0
        for src in sources:
            n = self.nodes[src].size
            block = np.zeros((n, size), dtype=self.block_dtype)
            block[np.arange(n), offset + np.arange(n)] = 1.0
            weights.append((src, block))
            offset += n
        name = self.add_dense(self.unique(name), weights, size, None, use_bias=False,
                              trainable=False, origin=origin)
        self.nodes[name].identity = True
        return name

    def activate(self, node: str, activation: Any, exclusive: bool, name: str, origin: str = "") -> str:
        """Apply ``activation`` to ``node``'s output; returns the node holding the result.

        ``exclusive``: nothing but this layer reads ``node``'s current output.
        """
        act = _activation(activation, self.source, origin or name)
        if act.name == "linear":
            return node
        target = self.nodes[node]
        foldable = (
            exclusive and target.kind == "dense" and target.dropout == 0.0
            and activations.get(target.activation).name == "linear"
        )
        if not foldable:
            node = self.identity([node], name, origin)
            target = self.nodes[node]
        target.activation = act
        return node

    def drop(self, node: str, rate: float, exclusive: bool, name: str, origin: str = "") -> str:
        """Apply dropout at ``rate`` to ``node``'s output; returns the node holding the result."""
        try:
            rate = float(rate)
        except (TypeError, ValueError):
            rate = float("nan")
        if not 0.0 <= rate < 1.0:
            raise ModelImportError(f"{self.source}: {origin or name}: dropout rate must be in [0, 1), got {rate!r}")
        if rate == 0.0:
            return node
        target = self.nodes[node]
        if not (exclusive and target.kind == "dense"):
            node = self.identity([node], name, origin)
            target = self.nodes[node]
        # Two inverted dropouts in a row keep a unit with probability (1-p)(1-q).
        target.dropout = rate if not target.dropout else 1.0 - (1.0 - target.dropout) * (1.0 - rate)
        return node

    def rename(self, old: str | dict[str, str], new: str | None = None) -> None:
        """Rename node ``old`` to ``new``, or each ``old -> new`` of a dict, all in one pass."""
        names = {k: v for k, v in (old.items() if isinstance(old, dict) else [(old, new)]) if k != v}
        holders = {k: k for k in set(self.nodes) - set(names)}  # name -> the node that will carry it
        for node, name in names.items():
            if name in holders:
                raise ModelImportError(f"{self.source}: nodes {holders[name]!r} and {node!r} would both be "
                                       f"called {name!r}; rename one of them in the model")
            holders[name] = node
        self._suffixes.clear()
        self.nodes = {names.get(k, k): v for k, v in self.nodes.items()}
        for s in self.synapses:
            s.src, s.dst = names.get(s.src, s.src), names.get(s.dst, s.dst)
        for name in names.values():
            self.nodes[name].name = name

    def name_outputs(self, outputs: list[tuple[Any, str]], named_by: str = "output") -> list[str]:
        """Outputs ``(value, name)`` renamed ``name`` once each has its own node (a concatenation
        an identity node reading its parts by their old names; a tensor returned twice a copy)."""
        nodes: dict[str, str] = {}  # node -> output name
        for value, name in outputs:
            node = self.materialise(value, name, f"output {name!r}")
            nodes[self.identity([node], name, f"output {name!r}") if node in nodes else node] = name
        rename_outputs(self, nodes, named_by)
        return [name for _, name in outputs]

    # ------------------------------------------------------------- building
    def build(
        self,
        outputs: list[str],
        loss=None,
        dtype: str = "float32",
        name: str = "imported",
        sequential: bool = False,
        seed: int | None = None,
    ):
        """The Graph (or Sequential, when ``sequential`` and the nodes form a chain).

        ``outputs`` are node names (already renamed as the model names its
        outputs). ``loss``: None for the natural loss of each output's
        activation, one loss for every output, or a dict output name -> loss.
        """
        if len(set(outputs)) != len(outputs):
            raise ModelImportError(f"{self.source}: the same tensor is returned twice as an output")
        for out in outputs:
            node = self.nodes[out]
            if node.kind != "dense":
                raise ModelImportError(f"{self.source}: output {out!r} must be computed by a layer")
            if node.dropout:
                raise ModelImportError(
                    f"{self.source}: dropout applies to the model output {out!r} ({node.origin}); "
                    f"graphnet outputs have no dropout: remove that Dropout layer"
                )
        check_used(self.nodes, [(s.src, s.dst) for s in self.synapses], outputs, self.source)
        chosen = self._losses(outputs, loss)
        # A graph lists its outputs in node insertion order: put the output
        # nodes, in the model's declared order, where output nodes stand.
        declared = iter(outputs)
        ordered = [self.nodes[next(declared)] if n.name in chosen else n for n in self.nodes.values()]
        nodes = []
        for node in ordered:
            config: dict[str, Any] = {"kind": "input", "name": node.name, "size": node.size, **(node.settings or {})}
            if node.kind == "dense":
                config["activation"] = node.activation.get_config()
                config["trainable"] = node.trainable
                if node.bias_regularizer is not None:
                    config["bias_regularizer"] = node.bias_regularizer
                if node.name in chosen:
                    config["kind"] = "output"  # its loss, the caller's object, is set once built
                    config["loss"] = default_loss(node.activation.name)
                else:
                    config["kind"] = "hidden"
                    config["dropout"] = node.dropout
            nodes.append(config)
        synapses = [
            {"src": s.src, "dst": s.dst, "init": "array" if s.weight is not None else s.init,
             "trainable": s.trainable, **({"regularizer": s.regularizer} if s.regularizer is not None else {})}
            for s in self.synapses
        ]
        spec = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "name": name, "dtype": dtype,
            "seed": seed, "sequential": sequential and self._is_chain(nodes), "nodes": nodes,
            "synapses": synapses,
        }
        try:
            graph = from_dict(None, spec, max_params=self.max_params)  # reserve() checked it before allocating
            weights = {weight_key(s.src, s.dst): s.weight for s in self.synapses if s.weight is not None}
            weights.update({bias_key(n.name): n.bias for n in self.nodes.values()
                            if n.kind == "dense" and n.bias is not None})
            graph.set_weights(weights)
            for out, value in chosen.items():
                output = graph.nodes[out]
                output.check_pairing(output.activation, value)
                output.loss = value
            graph.validate()
        except GraphError as exc:
            raise ModelImportError(f"{self.source}: {exc}") from exc.__cause__  # out of memory, say, if anything
        return graph

    def _losses(self, outputs: list[str], loss) -> dict[str, Any]:
        """Each output's Loss: the one given (names and configs made
        objects, a Loss object kept as it is) or its activation's natural one."""
        if isinstance(loss, Mapping) and "name" not in loss:
            check_outputs(loss, outputs, f"{self.source}: loss", ModelImportError)
            given = dict(loss)
        else:
            given = {out: loss for out in outputs} if loss is not None else {}
        chosen = {}
        for out in outputs:
            value = given.get(out)
            if value is None:
                value = default_loss(self.nodes[out].activation.name)
            try:
                chosen[out] = losses.get(value)
            except GraphError as exc:
                raise ModelImportError(f"{self.source}: output {out!r}: {exc}") from None
        return chosen

    def _is_chain(self, nodes: list[dict]) -> bool:
        links = [(s.src, s.dst) for s in self.synapses]
        return is_chain([n["name"] for n in nodes], [n["kind"] for n in nodes], links)

    def _check_new(self, name: str, origin: str) -> None:
        if name in self.nodes:
            raise ModelImportError(f"{self.source}: {origin or name}: a node called {name!r} already exists")


def printable_name(name: str, fallback: str) -> str:
    """A name no node may carry as its printable part, ``->`` (which
    separates weight keys) made ``_``; ``fallback`` when nothing is left."""
    return "".join(ch for ch in name.replace("->", "_") if ch.isprintable()).strip() or fallback


def _positive(size: Any, where: str) -> int:
    return check_int(size, f"{where}: size", error=ModelImportError)


def _activation(activation: Any, source: str, where: str) -> activations.Activation:
    try:
        return activations.get(activation)
    except GraphError as exc:
        raise ModelImportError(f"{source}: {where}: {exc}") from None
