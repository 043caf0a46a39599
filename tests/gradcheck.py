"""Central finite differences in float64: the independent truth for gradients."""

from __future__ import annotations

import numpy as np

import graphnet as gn


def numeric_gradients(graph: gn.Graph, x, y, eps: float = 1e-5) -> dict[str, np.ndarray]:
    """``dL/dw`` for every weight by central differences of ``evaluate``'s loss."""
    weights = graph.get_weights()
    numeric = {}
    for key, value in weights.items():
        grad = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            original = value[index]
            value[index] = original + eps
            graph.set_weights({key: value})
            plus = graph.evaluate(x, y)["loss"]
            value[index] = original - eps
            graph.set_weights({key: value})
            minus = graph.evaluate(x, y)["loss"]
            value[index] = original
            graph.set_weights({key: value})
            grad[index] = (plus - minus) / (2 * eps)
        numeric[key] = grad
    return numeric


#: Below this magnitude a gradient is judged by its absolute error: central
#: differences with ``eps=1e-5`` of a loss of order 1 resolve derivatives to
#: about ``1e-16 / 1e-5 = 1e-11`` (float64 rounding of the two losses), so an
#: entry of ``1e-6`` cannot be checked to a relative ``1e-6``.
RESOLUTION = 1e-5


def max_relative_error(analytic: dict, numeric: dict) -> tuple[float, str]:
    """The worst ``|a - n| / max(|a| + |n|, RESOLUTION)`` over every weight, and its key."""
    worst, where = 0.0, ""
    for key in numeric:
        a, n = analytic[key], numeric[key]
        scale = np.maximum(np.abs(a) + np.abs(n), RESOLUTION)
        err = float(np.max(np.abs(a - n) / scale))
        if err > worst:
            worst, where = err, key
    return worst, where
