"""``Graph.statistics`` and ``callbacks.StatsRecorder`` against hand computations."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import build_dag, dag_data
from scipy.special import expit

import graphnet as gn
from graphnet.statistics import SATURATION


def known_graph():
    """x (3, non-negative data) -> relu h (4 units, 0 and 1 dead by construction)
    and sigmoid s (3 units, 0 saturated by construction) -> linear y (2)."""
    g = gn.Graph(name="known", seed=0, dtype="float64")
    g.add_input("x", 3)
    g.add_hidden("h", 4, activation="relu")
    g.add_hidden("s", 3, activation="sigmoid")
    g.add_output("y", 2)
    g.connect("x", "h", init=np.array([[-1.0, -2.0, 1.0, 0.5], [-0.5, -1.0, 2.0, -0.3], [-2.0, -0.1, 0.2, 1.0]]))
    g.connect("x", "s", init=np.array([[40.0, 0.3, -0.2], [40.0, -0.4, 0.1], [40.0, 0.2, 0.3]]))
    g.connect(["h", "s"], "y")
    g["h"].bias = [-0.1, -0.2, 0.1, 0.0]
    g["s"].bias = [10.0, 0.0, 0.0]
    return g


@pytest.fixture
def data(rng):
    x = np.abs(rng.normal(size=(50, 3))) + 0.05
    return x, rng.normal(size=(50, 2))


def test_node_statistics_equal_hand_computations(data):
    g = known_graph()
    x, _ = data
    stats = g.statistics(x)
    w = g.get_weights()
    h = np.maximum(x @ w["x->h.weight"] + w["h.bias"], 0)
    s = expit(x @ w["x->s.weight"] + w["s.bias"])
    y = h @ w["h->y.weight"] + s @ w["s->y.weight"] + w["y.bias"]
    for name, a in (("x", x), ("h", h), ("s", s), ("y", y)):
        assert stats[name].mean == pytest.approx(a.mean(), rel=1e-12)
        assert stats[name].std == pytest.approx(a.std(), rel=1e-12)
    assert stats["h"].dead == 0.5 and stats["h"].dead_units == (0, 1)
    saturated = 4 * s * (1 - s) < SATURATION
    assert stats["s"].saturated == pytest.approx(saturated.mean()) and stats["s"].saturated_units == (0,)
    assert 1 / 3 <= stats["s"].saturated < 1
    assert stats["h"].saturated is None and stats["s"].dead is None and stats["y"].dead is None
    assert stats["x"].activation is None and stats["h"].activation == "relu"
    assert stats.loss is None and not stats.has_gradients and stats.rows == 50


def test_weight_and_gradient_norms_equal_hand_computations(data):
    g = known_graph()
    x, y = data
    stats = g.statistics(x, y)
    w = g.get_weights()
    for s in g.synapses:
        assert stats[s.src, s.dst].weight_norm == pytest.approx(np.linalg.norm(w[s.key]), rel=1e-12)
    # The output's synapse by hand: mse over all elements, dL/dp = 2 (p - y) / (n k).
    h = np.maximum(x @ w["x->h.weight"] + w["h.bias"], 0)
    s = expit(x @ w["x->s.weight"] + w["s.bias"])
    p = h @ w["h->y.weight"] + s @ w["s->y.weight"] + w["y.bias"]
    grad = h.T @ (2 * (p - y) / p.size)
    assert stats["h", "y"].grad_norm == pytest.approx(np.linalg.norm(grad), rel=1e-10)
    assert stats.loss == pytest.approx(np.mean((p - y) ** 2), rel=1e-12)
    # Every norm equals the one of Graph.gradients (no dropout here: the same function).
    _, grads = g.gradients(x, y)
    for syn in g.synapses:
        assert stats[syn.src, syn.dst].grad_norm == pytest.approx(np.linalg.norm(grads[syn.key]), rel=1e-12)
    assert stats["h"].bias_grad_norm == pytest.approx(np.linalg.norm(grads["h.bias"]), rel=1e-12)
    # Dead units pass no gradient to their incoming weights.
    assert np.all(grads["x->h.weight"][:, :2] == 0)


def test_statistics_run_in_inference_mode_and_change_nothing(rng):
    g = build_dag(dtype="float32")
    g["h1"].dropout = 0.5
    x, y = dag_data(rng, 20)
    g.fit(x, y, epochs=2, batch_size=8, verbose=0)
    weights, state = g.get_weights(), g.optimizer.get_state()
    streams = (g.rng.bit_generator.state, g.init_rng.bit_generator.state)
    grads, version = g.plan.store.grads.copy(), g.version
    stats = g.statistics(x, y)
    assert stats["main"].mean == pytest.approx(float(g.predict(x)["main"].mean()), rel=1e-6)
    assert stats.loss == pytest.approx(g.evaluate(x, y)["loss"], rel=1e-6)
    assert all(np.array_equal(weights[k], v) for k, v in g.get_weights().items())
    assert (g.rng.bit_generator.state, g.init_rng.bit_generator.state) == streams
    assert np.array_equal(g.plan.store.grads, grads) and g.version == version
    after = g.optimizer.get_state()
    assert after["iterations"] == state["iterations"]
    assert all(np.array_equal(after["slots"][k], v) for k, v in state["slots"].items())


def test_training_goes_the_same_with_a_stats_recorder(rng):
    x, y = dag_data(rng, 24)
    plain, watched = build_dag(dtype="float32"), build_dag(dtype="float32")
    for g in (plain, watched):
        g["h2"].dropout = 0.3
    recorder = gn.callbacks.StatsRecorder(x, y, every=2)
    h1 = plain.fit(x, y, epochs=5, batch_size=8, verbose=0)
    h2 = watched.fit(x, y, epochs=5, batch_size=8, verbose=0, callbacks=[recorder])
    assert h1.history == h2.history
    assert all(np.array_equal(v, watched.get_weights()[k]) for k, v in plain.get_weights().items())
    assert recorder.epochs == [1, 3] and len(recorder.records) == 2
    losses = recorder.series("h1", "mean")
    assert len(losses) == 2 and losses[0] != losses[1]
    assert all(v is not None for v in recorder.series(("h1", "main"), "grad_norm"))
    assert "2 records" in repr(recorder)


def test_a_recorder_without_targets_has_no_gradient_norms(rng):
    x, y = dag_data(rng, 16)
    g = build_dag()
    recorder = gn.callbacks.StatsRecorder(x)
    g.fit(x, y, epochs=2, verbose=0, callbacks=[recorder])
    assert recorder.series(("a", "h1"), "grad_norm") == [None, None]
    assert recorder.series("h2", "dead") == [recorder.records[0]["h2"].dead, recorder.records[1]["h2"].dead]


def test_a_recorder_with_bad_data_fails_before_the_first_epoch(rng):
    x, y = dag_data(rng, 16)
    g = build_dag()
    before = g.get_weights()
    with pytest.raises(gn.ShapeError, match="'a'"):
        g.fit(x, y, epochs=2, verbose=0, callbacks=[gn.callbacks.StatsRecorder({"a": x["a"][:, :2], "b": x["b"]})])
    assert all(np.array_equal(before[k], v) for k, v in g.get_weights().items())
    assert g.optimizer is None  # refused before fit gave the graph one


def test_recorder_errors_name_what_is_wrong(rng):
    with pytest.raises(gn.GraphError, match="every must be a positive integer, got 0"):
        gn.callbacks.StatsRecorder(np.zeros((2, 5)), every=0)
    x, y = dag_data(rng, 8)
    g = build_dag()
    recorder = gn.callbacks.StatsRecorder(x, y)
    g.fit(x, y, epochs=1, verbose=0, callbacks=[recorder])
    with pytest.raises(gn.GraphError, match="no node or synapse 'nowhere'"):
        recorder.series("nowhere", "mean")
    with pytest.raises(gn.GraphError, match=r"'h1' has no statistic 'median'; it has \['name'"):
        recorder.series("h1", "median")


def test_the_text_and_repr_are_readable(data):
    x, y = data
    stats = known_graph().statistics(x, y)
    text = stats.text()
    assert text.startswith("Statistics of 'known' on 50 rows, loss ")
    assert " h " in text and "50%" in text and "h -> y" in text and "|dL/dW|" in text
    assert "dead units in ['h']" in repr(stats)


def test_an_unknown_name_is_a_not_found_error_listing_the_known_ones(data):
    x, y = data
    stats = known_graph().statistics(x, y)
    assert stats["h"].name == "h" and stats["h", "y"].src == "h"
    cases = [
        ("nosuch", r"statistics of 'known': no node 'nosuch'; known: \['x', 'h', 's', 'y'\]"),
        (("h", "s"), r"statistics of 'known': no synapse \('h', 's'\); known: \[\('x', 'h'\), \('x', 's'\), "
                     r"\('h', 'y'\), \('s', 'y'\)\]"),
        (["h"], r"statistics of 'known': no node \['h'\]; known: "),
    ]
    for key, match in cases:
        with pytest.raises(gn.NotFoundError, match=match) as caught:
            stats[key]
        assert isinstance(caught.value, KeyError) and isinstance(caught.value, gn.GraphError)


def test_bad_data_is_a_shape_error(data):
    g = known_graph()
    with pytest.raises(gn.ShapeError, match="no rows"):
        g.statistics(np.zeros((0, 3)))
    with pytest.raises(gn.ShapeError, match=r"expected shape \(n, 3\)"):
        g.statistics(np.zeros((4, 2)))
    with pytest.raises(gn.ShapeError, match="rows disagree"):
        g.statistics(data[0], data[1][:3])


def test_statistics_hold_their_nodes_and_synapses_as_a_mapping(data):
    """`in` and iteration give node names (they fell back to stats[0] and
    raised NotFoundError)."""
    stats = known_graph().statistics(data[0])
    assert list(stats) == list(stats.nodes) == ["x", "h", "s", "y"]
    assert "h" in stats and ("h", "y") in stats and "z" not in stats and 0 not in stats and ["h"] not in stats


def _text_contrasts(source: str, node: str) -> list[float]:
    from graphnet._overlays import contrast

    line = re.search(rf'^\t"{node}" \[.*$', source, re.M).group(0)
    fill = re.search(r'fillcolor="(#\w+)"', line).group(1)
    name = re.search(r'fontcolor="?(#\w+)', line)
    colors = re.findall(r'(?<![a-z])color="(#\w+)"', line.split("label=", 1)[1].split(" shape=")[0])
    return [contrast(c, fill) for c in [name.group(1) if name else "#000000", *colors]]


def test_text_on_a_deeply_shaded_node_is_readable_and_all_zero_gradients_are_said():
    g = gn.Graph(name="d", seed=0)
    g.add_input("x", 2)
    g.add_hidden("h", 2, activation="relu")
    g.add_output("y", 1)
    g.connect("x", "h")
    g.connect("h", "y")
    x = np.ones((5, 2))
    g.predict(x)
    g.set_weights({"h.bias": np.full(2, -50.0)})  # every unit dead: the deepest red, and no gradient anywhere
    source = g.to_dot(stats=g.statistics(x, np.ones((5, 1)))).source
    assert min(_text_contrasts(source, "h")) >= 4.5  # WCAG AA for normal text
    assert "every one is 0" in source and "(the largest)" not in source
