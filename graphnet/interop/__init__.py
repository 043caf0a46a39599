"""Importing models from Keras, PyTorch, ONNX and scikit-learn, and exporting to ONNX.

Each converter lives in its own module and imports its library only when
called, so ``import graphnet`` never pulls in torch, keras, h5py, onnx or
scikit-learn. These modules are the only place where weights are transposed (PyTorch and ONNX
``Gemm`` keep them ``(out, in)``; graphnet keeps ``(in, out)``). The
libraries come with the ``interop`` extra: ``pip install 'graphnet[interop]'``.
"""

from __future__ import annotations

from ._onnx_tabular import onnx_feed
from .keras_import import from_keras
from .onnx_export import to_onnx
from .onnx_import import from_onnx
from .sklearn_import import from_sklearn
from .torch_import import from_torch

__all__ = ["from_keras", "from_onnx", "from_sklearn", "from_torch", "to_onnx", "onnx_feed"]
