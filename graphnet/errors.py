"""The exception hierarchy.

Every error graphnet raises on purpose derives from :class:`GraphError`, itself a
``ValueError``, so ``except ValueError`` keeps working for users who do not care
about the details. Messages name the node or file, what was expected, what was
found, and how to fix it when that is known.
"""


class GraphError(ValueError):
    """Base class: a graph, its data or a model file is not what was expected."""


class CycleError(GraphError):
    """A synapse would close a cycle; the message spells out the cycle path."""


class NotFoundError(GraphError, KeyError):
    """No node or synapse of that name; also a ``KeyError`` so ``g[name]`` feels like a dict."""

    __str__ = BaseException.__str__  # KeyError's own __str__ would quote the message


class ShapeError(GraphError):
    """Data does not fit the graph: names, shapes, row counts or non-finite values."""


class TrainingError(GraphError, RuntimeError):
    """Training produced a non-finite loss, gradient or weight; the step was undone."""


class ModelFileError(GraphError):
    """A model or spec file is malformed, truncated, oversized or hostile."""


class RenderError(GraphError, RuntimeError):
    """A diagram could not be written (usually: Graphviz's ``dot`` is missing)."""


class ModelImportError(GraphError):
    """A model from another library uses something graphnet cannot represent."""


__all__ = [
    "GraphError",
    "CycleError",
    "NotFoundError",
    "ShapeError",
    "TrainingError",
    "ModelFileError",
    "RenderError",
    "ModelImportError",
]
