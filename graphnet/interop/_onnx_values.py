"""What an ONNX tensor can hold while :mod:`graphnet.interop.onnx_import` reads
a model, besides constants (numpy arrays), node names, concatenations
(:class:`~graphnet.interop._builder.Concat`) and expressions
(:mod:`graphnet.interop._expressions`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Affine", "Shape", "Unsqueezed", "eye"]


@dataclass
class Affine:
    """``bias + Σ src @ W`` not yet given a node: what MatMul/Gemm and the
    arithmetic on them build up. ``terms``: ``(src, W, trainable)``.
    ``owned``: every ``W`` is a float64 copy that nothing else refers to, so
    that a scaling may change it in place (a chain of n scalings then makes
    one copy of the weights, not n)."""

    terms: list[tuple[str, np.ndarray, bool]]
    bias: np.ndarray | None
    size: int
    bias_trainable: bool = True
    owned: bool = False


@dataclass(frozen=True)
class Shape:
    """A tensor's shape as data: entries are ``"batch"`` or ints."""

    entries: tuple
    scalar: bool = False


@dataclass(frozen=True)
class Unsqueezed:
    """A (batch, features) value with unit axes inserted, awaiting its Squeeze."""

    value: Any
    axes: tuple[int, ...]


def eye(n: int, size: int, offset: int, dtype: str) -> np.ndarray:
    """``(n, size)`` zeros with ones down the diagonal from ``(0, offset)``:
    a part of a concatenation (or the whole, at offset 0) passed through."""
    block = np.zeros((n, size), dtype=dtype)
    block[np.arange(n), offset + np.arange(n)] = 1.0
    return block
