"""Importing models from Keras, PyTorch, ONNX and scikit-learn, and exporting to ONNX.

Each converter lives in its own module and imports its library only when
called, so ``import graphnet`` never pulls in torch, keras, h5py, onnx or
scikit-learn. These modules are the only place where weights are transposed (PyTorch and ONNX
``Gemm`` keep them ``(out, in)``; graphnet keeps ``(in, out)``). The
libraries come with the ``interop`` extra: ``pip install 'graphnet[interop]'``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..graph import Graph

__all__ = ["from_keras", "from_onnx", "from_sklearn", "from_torch", "to_onnx"]


def from_keras(obj, **kwargs):
    """See :func:`graphnet.interop.keras.from_keras`."""
    from .keras import from_keras

    return from_keras(obj, **kwargs)


def from_torch(module, **kwargs):
    """See :func:`graphnet.interop.torch.from_torch`."""
    from .torch import from_torch

    return from_torch(module, **kwargs)


def from_onnx(path, **kwargs):
    """See :func:`graphnet.interop.onnx_import.from_onnx`."""
    from .onnx_import import from_onnx

    return from_onnx(path, **kwargs)


def from_sklearn(estimator, **kwargs):
    """See :func:`graphnet.interop.sklearn.from_sklearn`."""
    from .sklearn import from_sklearn

    return from_sklearn(estimator, **kwargs)


def to_onnx(graph: Graph, path, opset: int = 17):
    """See :func:`graphnet.interop.onnx_export.to_onnx`."""
    from .onnx_export import to_onnx

    return to_onnx(graph, path, opset=opset)
