"""What every importer wraps a foreign library in: the import of an optional
library (:func:`require`), the foreign exceptions of a malformed model
turned into graphnet's (:func:`unexpected_as`), and running out of memory
said as such (:func:`out_of_memory`)."""

from __future__ import annotations

import contextlib
import importlib

from ..errors import GraphError, ModelImportError

__all__ = ["require", "unexpected_as", "out_of_memory"]


@contextlib.contextmanager
def unexpected_as(error: type[GraphError], label: str):
    """Turn a stray ``KeyError``/``TypeError``/... from reading a malformed
    foreign model into ``error`` naming ``label``; graphnet's own errors pass."""
    try:
        with out_of_memory(label):
            yield
    except GraphError:
        raise
    except (KeyError, TypeError, AttributeError, IndexError, ValueError, RecursionError) as exc:
        raise error(f"{label}: malformed model ({type(exc).__name__}: {exc})") from exc


@contextlib.contextmanager
def out_of_memory(label: str):
    """A ``MemoryError`` while importing ``label`` as a ModelImportError that
    says so, the MemoryError as its cause (sizes are checked before
    allocating: the machine ran out, not the model)."""
    try:
        yield
    except MemoryError as exc:
        raise ModelImportError(f"{label}: ran out of memory while importing it") from exc


def require(module: str, what: str):
    """Import an optional library, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ModelImportError(f"{what} needs {module}: pip install 'graphnet[interop]' ({exc})") from None
