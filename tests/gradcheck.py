"""The suite's gradient check: a thin use of the public ``gn.check_gradients``
(central differences in float64, per parameter)."""

from __future__ import annotations

import numpy as np

import graphnet as gn

TOLERANCE = 1e-6


def assert_gradients_match(graph: gn.Graph, x, y, tolerance: float = TOLERANCE) -> gn.GradientReport:
    """Fail with the report's table unless every parameter's backward agrees
    with central differences; also check that ``graph.gradients`` (the
    public, training-mode call) gives the same gradients as the report's
    backward pass, so both paths are covered."""
    report = gn.check_gradients(graph, x, y, eps=1e-5, tolerance=tolerance)
    assert report.ok, "\n" + report.text()
    _, grads = graph.gradients(x, y)
    assert set(grads) == set(report.analytic) == set(graph.get_weights())
    for key, value in grads.items():
        np.testing.assert_allclose(value, report.analytic[key], rtol=1e-10, atol=1e-12, err_msg=key)
    return report
