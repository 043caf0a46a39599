"""In-place calls in a torch.fx trace, which :class:`graphnet.interop._torch_graph.Converter`
imports only where the trace says what torch computes.

The trace records ``y = F.relu(h, inplace=True)`` as a new value ``y`` read
from ``h``, but in torch ``h`` itself holds the result afterwards. The import
follows the trace, so it is exact only when every later read of ``h`` goes
through ``y``: a call whose result is unused (its change reaches nothing in
the trace) and a later read of ``h``, or of a view of it, are refused.
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Callable, Collection, Mapping

from ..errors import ModelImportError

__all__ = ["changed_tensor_is_read", "in_place", "signature", "unused_result"]


def signature(function) -> inspect.Signature | None:
    """A Python function's signature; None for builtins and method names."""
    if function is None or isinstance(function, str):
        return None
    try:
        return inspect.signature(function)
    except (TypeError, ValueError):
        return None


def in_place(node, module=None) -> bool:
    """Whether the call ``node`` (of ``module`` for a ``call_module``) changes
    its first argument in place: ``inplace=True`` (an argument, or the module's
    attribute), or a name with a trailing underscore (``relu_``, ``torch.relu_``,
    ``add_``)."""
    if not node.args or not hasattr(node.args[0], "users"):  # the first argument is no fx node
        return False
    if node.op == "call_module":
        return getattr(module, "inplace", False) is True
    if node.op not in ("call_function", "call_method"):
        return False
    name = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "")
    if node.target is operator.iadd or name == "__iadd__" or (name.endswith("_") and not name.endswith("__")):
        return True
    found = signature(node.target)
    try:
        bound = found.bind(*node.args, **node.kwargs).arguments if found is not None else dict(node.kwargs)
    except TypeError:
        return False
    return bound.get("inplace") is True


def _call(node, describe: Callable) -> str:
    return describe(node) + ("" if node.op == "call_module" else f" (node {node.name!r})")


def unused_result(node, source: str, describe: Callable) -> ModelImportError:
    """The refusal of an in-place call whose result nothing reads, saying how
    to write it instead; ``describe`` names a call (``function torch.relu_``)."""
    more = "..." if len(node.args) > 1 or node.kwargs else ""
    if node.op == "call_module":
        todo = f"use the module's output: h = self.{node.target}(h)"
    elif node.op == "call_method":
        plain = node.target.rstrip("_")
        todo = f"call {plain} instead and use its result: h = h.{plain}({more})"
    else:
        function = describe(node).removeprefix("function ")
        if function.endswith("_"):
            todo = f"call {function[:-1]} instead and use its result: h = {function[:-1]}(h{more and ', ...'})"
        else:
            todo = f"use its result, preferably with inplace=False: h = {function}(h, ...)"
    return ModelImportError(
        f"{source}: {_call(node, describe)} changes {node.args[0].name!r} in place and its result is unused: "
        f"torch.fx traces data flow, in which the change reaches nothing, so the import would leave it out; "
        f"{todo}"
    )


def changed_tensor_is_read(node, changing: Collection, kinds: Mapping, order: Mapping, source: str,
                           describe: Callable) -> None:
    """Refuse the in-place call ``node`` if its tensor, or a view of it, is
    read after it other than through its result: torch reads the changed
    values there, the trace the old ones.

    ``changing``: every in-place call; ``kinds``: each fx node's kind (a
    ``"same"`` no-op or an eval-mode ``"dropout"`` returns its input itself);
    ``order``: each fx node's position in the trace.
    """
    def aliases(n) -> bool:
        return n in changing or kinds.get(n, (None,))[0] in ("same", "dropout")

    def views(start) -> set:
        found, stack = set(), [start]
        while stack:
            current = stack.pop()
            if current not in found:
                found.add(current)
                stack.extend(u for u in current.users if aliases(u))
        return found

    root = node.args[0]
    while aliases(root) and root.args and hasattr(root.args[0], "users"):
        root = root.args[0]
    shared, changed = views(root), views(node)
    if node.op == "call_module":
        todo = f"construct module {node.target!r} with inplace=False"
    elif node.kwargs.get("inplace") is True or not describe(node).endswith("_"):
        todo = "pass inplace=False"
    else:
        todo = "call it without the trailing underscore"
    for held in sorted(shared - changed, key=order.get):
        for reader in held.users:
            if reader not in shared and order[reader] > order[node]:
                what = "the output" if reader.op == "output" else _call(reader, describe)
                view = "" if held is node.args[0] else " (a view of it)"
                raise ModelImportError(
                    f"{source}: {_call(node, describe)} changes {node.args[0].name!r} in place, and {what} reads "
                    f"{held.name!r}{view} afterwards: torch gives it the changed values, the traced graph the "
                    f"old ones, so the import would predict differently; {todo} and use its result"
                )
