"""From a ``torch.fx`` graph to graphnet nodes: what :func:`graphnet.interop.torch_import.from_torch`
does once the module is traced.

Each fx node is first classified (``linear``, ``batchnorm``, ``activation``,
``dropout``, ``same`` for no-ops, ``add``, ``cat``), which both passes use:
sizes are inferred from the ``Linear`` layers (an input's size is what the
first ``Linear`` reading it takes), then the nodes are added to the builder
in ``forward``'s order.
"""

from __future__ import annotations

import logging
import operator
import re
from typing import Any

import numpy as np

from ..errors import ModelImportError
from ._builder import Builder, Concat
from ._output_names import rename_outputs
from ._torch_in_place import changed_tensor_is_read, in_place, signature, unused_result
from ._torch_layers import ACTIVATIONS, array

__all__ = ["Converter"]

logger = logging.getLogger(__name__)

_IGNORED_KWARGS = ("inplace", "_stacklevel")


class Converter:
    def __init__(self, torch, traced, builder: Builder, functions: dict, sequential: bool,
                 input_name: str | None):
        self.torch = torch
        self.nn = torch.nn
        self.traced = traced
        self.builder = builder
        self.functions = functions
        self.sequential = sequential
        self.input_name = input_name
        self.nodes = list(traced.graph.nodes)
        self.linears: dict[str, Any] = {}  # target -> the Linear module, in call order
        changing = {node: None for node in self.nodes if in_place(node, self._module(node))}  # in call order
        for node in changing:
            if not node.users:
                raise unused_result(node, builder.source, self._describe)
        self.kinds = {node: self._classify(node) for node in self.nodes}
        order = {node: i for i, node in enumerate(self.nodes)}
        for node in changing:
            changed_tensor_is_read(node, changing, self.kinds, order, builder.source, self._describe)
        self.placeholders = [n for n in self.nodes if n.op == "placeholder"]
        if input_name is not None and len(self.placeholders) != 1:
            raise ModelImportError(f"{builder.source}: input_name names one input, but forward takes "
                                   f"{len(self.placeholders)}")
        self.sizes = self._infer_sizes()

    # ----------------------------------------------------------- classifying
    def fail(self, node, message: str) -> ModelImportError:
        return ModelImportError(f"{self.builder.source}: {self._describe(node)} {message}")

    def _module(self, node):
        return self.traced.get_submodule(node.target) if node.op == "call_module" else None

    def _describe(self, node) -> str:
        if node.op == "call_module":
            module = self.traced.get_submodule(node.target)
            return f"module {node.target!r} ({type(module).__module__}.{type(module).__qualname__})"
        if node.op == "call_function":
            target = node.target
            return f"function {getattr(target, '__module__', None) or 'torch'}.{getattr(target, '__name__', target)}"
        if node.op == "call_method":
            return f"method Tensor.{node.target}"
        return f"{node.op} {node.name!r}"

    def _classify(self, node) -> tuple[str, Any]:
        nn, torch = self.nn, self.torch
        if node.op in ("placeholder", "output"):
            return node.op, None
        if node.op == "call_module":
            module = self.traced.get_submodule(node.target)
            kind = type(module).__name__
            if type(module) is nn.Linear:
                if node.target in self.linears:
                    raise self.fail(node, "is called more than once: its weights are tied between the calls, "
                                          "and graphnet gives every synapse its own weights; use one "
                                          "nn.Linear per call (copy.deepcopy the module to untie them) to import it")
                self.linears[node.target] = module
                return "linear", module
            if kind in ACTIVATIONS and type(module) is getattr(nn, kind):
                try:
                    return "activation", (ACTIVATIONS[kind](module), kind.lower())
                except ValueError as exc:
                    raise self.fail(node, f"cannot be represented: {exc}") from None
            if type(module) is nn.Dropout:
                return "dropout", float(module.p)
            if type(module) is nn.Flatten:
                if module.start_dim != 1 or module.end_dim != -1:
                    raise self.fail(node, f"flattens dims {module.start_dim}..{module.end_dim}; only the "
                                          f"default Flatten() is a no-op on (batch, features) data")
                return "same", None
            if type(module) is nn.Identity:
                return "same", None
            if type(module) is nn.BatchNorm1d:
                return "batchnorm", module
            raise self.fail(node, f"cannot be imported; supported: Linear, {', '.join(sorted(ACTIVATIONS))}, "
                                  f"Dropout, Flatten, Identity, BatchNorm1d")
        if node.op == "get_attr":
            raise self.fail(node, f"reads the tensor {node.target!r} directly; only modules (Linear, ...) "
                                  f"carry weights graphnet can import")
        target = node.target
        if target in self.functions:
            make, names = self.functions[target]
            return "activation", (self._call_config(node, make, names), getattr(target, "__name__", target))
        if target in (operator.add, operator.iadd, torch.add, "add", "add_", "__add__"):
            if len(node.args) != 2 or node.kwargs.get("alpha", 1) != 1:
                raise self.fail(node, "adds with alpha or more arguments; only a + b is supported")
            if not all(self._is_node(a) for a in node.args):
                raise self.fail(node, "adds a constant; only sums of two tensors are supported (put the "
                                      "constant in a Linear's bias)")
            return "add", None
        if target in (torch.cat, getattr(torch, "concat", None), getattr(torch, "concatenate", None)):
            dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", node.kwargs.get("axis", 0))
            if dim not in (1, -1):
                raise self.fail(node, f"joins along dim {dim}; only the feature dim (1 or -1) is supported")
            parts = node.args[0]
            if not (isinstance(parts, (list, tuple)) and parts and all(self._is_node(p) for p in parts)):
                raise self.fail(node, "joins something other than a list of tensors")
            return "cat", list(parts)
        if target is torch.nn.functional.dropout:
            p = node.args[1] if len(node.args) > 1 else node.kwargs.get("p", 0.5)
            training = node.args[2] if len(node.args) > 2 else node.kwargs.get("training", True)
            if not isinstance(training, bool) or self._is_node(p):
                raise self.fail(node, "has a rate or training flag computed at run time")
            return ("dropout", float(p)) if training else ("same", None)
        if target in (torch.flatten, "flatten"):
            start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
            end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
            if start != 1 or end != -1:
                raise self.fail(node, f"flattens dims {start}..{end}; only flatten(x, 1) is a no-op on "
                                      f"(batch, features) data")
            return "same", None
        raise self.fail(node, "cannot be imported; supported calls: Linear, activations (modules, "
                              "torch/F functions and tensor methods), dropout, flatten(x, 1), BatchNorm1d, "
                              "torch.cat(dim=1) and a + b")

    def _call_config(self, node, make, names):
        """The activation config of a function call: the arguments in ``names``
        go to ``make``; any other must be ignorable or at torch's default."""
        extra = {}
        defaults = self._defaults(node.target)
        for key, value in self._arguments(node, names).items():
            if key in _IGNORED_KWARGS:
                continue
            if key in names:
                extra[key] = value
            elif not (key in defaults and self._equal(value, defaults[key])):
                raise self.fail(node, f"has the argument {key}={value!r}, which graphnet cannot represent")
        if any(self._is_node(v) for v in extra.values()):
            raise self.fail(node, "has an argument computed at run time")
        try:
            return make(**extra)
        except ValueError as exc:
            raise self.fail(node, f"cannot be represented: {exc}") from None

    def _arguments(self, node, names) -> dict:
        """The call's arguments after the tensor, by name: bound to the
        function's signature where Python can read it (``F.leaky_relu``), else
        positional ones taken as ``names`` in order (builtins like ``torch.softmax``)."""
        found = signature(node.target)
        if found is None:
            arguments = dict(node.kwargs)
            for i, value in enumerate(node.args[1:]):
                if i >= len(names):
                    raise self.fail(node, f"has an unexpected argument {value!r}")
                arguments[names[i]] = value
            return arguments
        try:
            bound = found.bind(*node.args, **node.kwargs).arguments
        except TypeError as exc:
            raise self.fail(node, f"is called with arguments its signature refuses ({exc})") from None
        return dict(list(bound.items())[1:])

    def _defaults(self, target) -> dict:
        """Default argument values of a function; for a builtin or a tensor
        method, those of ``torch.nn.functional``'s function of the same name."""
        found = signature(target)
        if found is None:
            name = getattr(target, "__name__", target)
            found = signature(getattr(self.torch.nn.functional, name, None)) if isinstance(name, str) else None
        if found is None:
            return {}
        return {k: p.default for k, p in found.parameters.items() if p.default is not p.empty}

    def _equal(self, value, default) -> bool:
        if value is default:
            return True
        return (not self._is_node(value) and type(value) is type(default)
                and isinstance(value, (bool, int, float, str)) and value == default)

    def _is_node(self, value) -> bool:
        return isinstance(value, self.torch.fx.Node)

    def _source(self, node):
        source = node.args[0] if node.args else None
        if not self._is_node(source):
            raise self.fail(node, "reads no tensor")
        return source

    # ----------------------------------------------------------------- sizes
    def _infer_sizes(self) -> dict:
        sizes: dict[Any, int] = {}

        def claim(node, size, by) -> bool:
            if node in sizes:
                if sizes[node] != size:
                    raise self.fail(by, f"takes {size} features but receives {sizes[node]}")
                return False
            sizes[node] = size
            return True

        changed = True
        while changed:
            changed = False
            for node in self.nodes:
                kind, info = self.kinds[node]
                if kind == "linear":
                    changed |= claim(self._source(node), info.in_features, node)
                    changed |= claim(node, info.out_features, node)
                elif kind == "batchnorm":
                    changed |= claim(self._source(node), info.num_features, node)
                    changed |= claim(node, info.num_features, node)
                elif kind in ("activation", "dropout", "same", "add"):
                    group = [node, *(a for a in node.args if self._is_node(a))][: 3 if kind == "add" else 2]
                    known = [sizes[n] for n in group if n in sizes]
                    if known:
                        for member in group:
                            changed |= claim(member, known[0], node)
                elif kind == "cat":
                    unknown = [p for p in info if p not in sizes]
                    if not unknown:
                        changed |= claim(node, sum(sizes[p] for p in info), node)
                    elif len(unknown) == 1 and node in sizes:
                        rest = sizes[node] - sum(sizes[p] for p in info if p in sizes)
                        if rest < 1:
                            raise self.fail(node, f"joins more than its {sizes[node]} features")
                        changed |= claim(unknown[0], rest, node)
        for node in self.placeholders:
            if node not in sizes:
                what = "has no Linear layer" if not self.linears else "never feeds a Linear layer"
                raise ModelImportError(f"{self.builder.source} {what}, so the size of input "
                                       f"{node.target!r} is unknown")
        return sizes

    # ------------------------------------------------------------- building
    def run(self) -> list[str]:
        builder = self.builder
        env: dict[Any, Any] = {}
        dense_count = 0
        for node in self.nodes:
            kind, info = self.kinds[node]
            if kind == "placeholder":
                if self.input_name is not None:
                    name = self.input_name
                else:
                    name = "input" if self.sequential else str(node.target)
                env[node] = builder.add_input(name, self.sizes[node], f"input {node.target!r}")
                continue
            if kind == "output":
                return self._outputs(node, env)
            where = self._describe(node)
            if kind == "cat":
                parts: list[str] = []
                for part in info:
                    parts.extend(builder.parts(env[part]))
                env[node] = Concat(tuple(parts))
            elif kind == "add":
                a, b = node.args
                summands = [(env[a], self._exclusive(a, node)), (env[b], self._exclusive(b, node))]
                env[node] = builder.add_sum("add", summands, where)
            elif kind == "linear":
                name = str(node.target)
                if re.fullmatch(r"\d+", name.rsplit(".", 1)[-1]):
                    name = "dense" if dense_count == 0 else f"dense_{dense_count}"
                    dense_count += 1
                env[node] = self._linear(builder.unique(name), env[self._source(node)], info, where)
            else:
                source = self._source(node)
                value, exclusive = env[source], self._exclusive(source, node)
                if kind == "same":
                    env[node] = value
                    continue
                if isinstance(value, Concat):
                    label = "dropout" if kind == "dropout" else info[1]
                    value, exclusive = builder.identity(list(value.parts), label, where), True
                if kind == "activation":
                    env[node] = builder.activate(value, info[0], exclusive, info[1], where)
                elif kind == "dropout":
                    env[node] = builder.drop(value, info, exclusive, "dropout", where)
                else:
                    env[node] = self._batchnorm(node, value, exclusive, info, where)
        raise ModelImportError(f"{builder.source}: the traced graph has no output")

    def _exclusive(self, source, reader) -> bool:
        flat = [a for a in reader.args if a is source]
        return len(source.users) == 1 and len(flat) == 1

    def _linear(self, name: str, value, layer, where: str) -> str:
        weight = array(layer.weight).T  # torch keeps (out, in); graphnet (in, out)
        bias = None if layer.bias is None else array(layer.bias)
        return self.builder.dense_from(
            name, value, weight, layer.out_features, bias, use_bias=layer.bias is not None,
            trainable=bool(layer.weight.requires_grad), origin=where,
        )

    def _batchnorm(self, node, value, exclusive: bool, module, where: str):
        builder = self.builder
        if not (isinstance(value, str) and builder.absorbable(value) and exclusive):
            after = "a concatenation" if isinstance(value, Concat) else repr(value)
            raise self.fail(node, f"follows {after}, not the output of a Linear read by nothing else (and "
                                  f"without activation), so it cannot be folded into one; place it directly "
                                  f"after a Linear: nn.Linear -> nn.BatchNorm1d -> activation")
        if not module.track_running_stats or module.running_mean is None:
            raise self.fail(node, "keeps no running statistics (track_running_stats=False), so it "
                                  "normalises by each batch's own; graphnet cannot represent that")
        if module.training:
            logger.info("%s: %s is in training mode; imported with its running statistics, as in eval mode",
                        builder.source, where)
        size = module.num_features
        gamma = array(module.weight) if module.affine else np.ones(size)
        beta = array(module.bias) if module.affine else np.zeros(size)
        mean, variance = array(module.running_mean), array(module.running_var)
        scale = gamma.astype(np.float64) / np.sqrt(variance.astype(np.float64) + float(module.eps))
        trainable = bool(module.affine and module.weight.requires_grad)
        builder.fold_scale(value, scale, beta - mean.astype(np.float64) * scale, trainable)
        return value

    def _outputs(self, node, env) -> list[str]:
        result = node.args[0]
        if isinstance(result, dict):
            items = [(str(k), v) for k, v in result.items()]
        elif isinstance(result, (list, tuple)):
            items = [(None, v) for v in result]
        else:
            items = [(None, result)]
        # Every output is materialised before any is renamed: a concatenation
        # held in ``env`` names its parts as they were built.
        names = []
        for key, value in items:
            if not self._is_node(value):
                raise ModelImportError(f"{self.builder.source}: forward returns {type(value).__name__}, "
                                       f"not a tensor")
            held = env[value]
            if not isinstance(held, Concat) and self.builder.nodes[held].kind == "input":
                raise ModelImportError(f"{self.builder.source}: output {key or value.name!r} is an input "
                                       f"passed through unchanged")
            names.append(self.builder.materialise(held, key or "concatenate", f"output {key or value.name!r}"))
        if len(set(names)) != len(names):
            raise ModelImportError(f"{self.builder.source}: the same tensor is returned twice as an output")
        keys = [key for key, _ in items]
        if keys[0] is not None:
            rename_outputs(self.builder, dict(zip(names, keys)), "dict key")
            names = keys
        return names

    # --------------------------------------------------------------- checking
    def check(self, module, graph) -> None:
        """Refuse the import if ``graph`` and ``module`` predict differently on random rows.

        The module runs with its parameters and buffers cast to the graph's
        dtype (``torch.func.functional_call``: the module itself is not
        changed), so that a float16, bfloat16 or float64 module is compared
        in the precision the graph computes in, at that precision's tolerance.
        """
        torch = self.torch
        dtype = torch.float64 if graph.dtype == np.float64 else torch.float32
        state = {name: value.to(dtype) if value.is_floating_point() else value
                 for name, value in [*module.named_parameters(), *module.named_buffers()]}
        rng = np.random.default_rng(0)
        arrays = [rng.normal(size=(4, self.sizes[p])) for p in self.placeholders]
        modes = {m: m.training for m in module.modules()}
        try:
            module.eval()
            with torch.no_grad():
                inputs = tuple(torch.tensor(a, dtype=dtype) for a in arrays)
                result = torch.func.functional_call(module, state, inputs)
        except Exception as exc:  # whatever forward raises on real data
            raise ModelImportError(f"{self.builder.source}: forward fails on random input "
                                   f"({type(exc).__name__}: {exc})") from None
        finally:
            for m, mode in modes.items():
                m.training = mode
        if isinstance(result, dict):
            result = list(result.values())
        elif not isinstance(result, (list, tuple)):
            result = [result]
        expected = [r.detach().double().cpu().numpy() for r in result]
        got = graph.predict(dict(zip(graph.inputs, arrays)))
        got = [got] if len(graph.outputs) == 1 else [got[name] for name in graph.outputs]
        for name, want, have in zip(graph.outputs, expected, got):
            scale = max(1.0, float(np.abs(want).max(initial=0.0)))
            tolerance = (1e-9 if graph.dtype == np.float64 else 1e-4) * scale
            if want.shape != have.shape or not np.all(np.abs(want - have) <= tolerance):
                diff = float(np.abs(want - have).max()) if want.shape == have.shape else "shape"
                raise ModelImportError(
                    f"{self.builder.source}: the import predicts output {name!r} differently from the "
                    f"module (largest difference {diff}); forward does something the trace does not show "
                    f"(e.g. Python-side state), so it is refused"
                )
