"""What every importer wraps a foreign library in: the import of an optional
library (:func:`require`), and the foreign exceptions of a malformed model
turned into graphnet's (:func:`unexpected_as`)."""

from __future__ import annotations

import contextlib
import importlib

from ..errors import GraphError, ModelImportError

__all__ = ["require", "unexpected_as"]


@contextlib.contextmanager
def unexpected_as(error: type[GraphError], label: str):
    """Turn a stray ``KeyError``/``TypeError``/... from reading a malformed
    foreign model into ``error`` naming ``label``; graphnet's own errors pass."""
    try:
        yield
    except GraphError:
        raise
    except (KeyError, TypeError, AttributeError, IndexError, ValueError, RecursionError) as exc:
        raise error(f"{label}: malformed model ({type(exc).__name__}: {exc})") from exc


def require(module: str, what: str):
    """Import an optional library, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ModelImportError(f"{what} needs {module}: pip install 'graphnet[interop]' ({exc})") from None
