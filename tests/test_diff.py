"""gn.diff: surgery and training on a copy, compared with what was done."""

from __future__ import annotations

import copy
import math
import re
import shutil
import warnings

import numpy as np
import pytest
from conftest import build_dag, dag_data

import graphnet as gn
from graphnet.diff import MIN_WIDTH, ParameterChange
from graphnet.render_diff import ADDED, REMOVED

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program is not installed")


def edited(edit):
    g = build_dag()
    h = copy.deepcopy(g)
    edit(h)
    return g, h, gn.diff(g, h)


def test_a_copy_is_no_difference():
    g = build_dag()
    report = gn.diff(g, copy.deepcopy(g))
    assert report.identical
    assert all(p.change == 0 and p.relative == 0 for p in report.parameters.values())
    assert len(report.parameters) == len(g.get_weights())
    assert "no difference" in report.text()


def test_insert_adds_a_node_and_two_synapses_and_removes_one_keeping_every_weight():
    g, h, report = edited(lambda h: h.insert("h1", "h2", "h1b"))
    assert report.nodes_added == ["h1b"] and not report.nodes_removed and not report.nodes_changed
    assert report.synapses_added == [("h1", "h1b"), ("h1b", "h2")]
    assert report.synapses_removed == [("h1", "h2")] and not report.synapses_changed
    assert not report.changed_parameters  # insert keeps every other weight bit for bit
    assert set(report.parameters) == set(g.get_weights()) - {"h1->h2.weight"}


def test_widen_changes_a_size_and_reshapes_exactly_the_parameters_that_touch_it():
    g, h, report = edited(lambda h: h.widen("h3", 9))
    assert report.nodes_changed == {"h3": {"size": (5, 9)}}
    assert report.synapses_changed == {
        ("aux", "h3"): {"shape": ("3×5", "3×9")},
        ("h2", "h3"): {"shape": ("4×5", "4×9")},
        ("h3", "main"): {"shape": ("5×2", "9×2")},
    }
    reshaped = {p.key for p in report.changed_parameters}
    assert reshaped == {"aux->h3.weight", "h2->h3.weight", "h3.bias", "h3->main.weight"}
    assert all(p.reshaped and p.change is None and p.relative is None for p in report.changed_parameters)
    assert report.parameters["h3.bias"].new_shape == (9,)


def test_insert_then_a_bridged_remove_is_no_difference():
    g = build_dag()
    h = copy.deepcopy(g)
    h.insert("h1", "h2", "h1b")
    h.remove("h1b", bridge=True)
    assert gn.diff(g, h).identical


def test_remove_and_freeze_are_reported():
    def edit(h):
        h.remove("h3")
        h.connect("aux", "main")
        h.freeze("h2")

    g, h, report = edited(edit)
    assert report.nodes_removed == ["h3"]
    assert report.synapses_removed == [("aux", "h3"), ("h2", "h3"), ("h3", "main")]
    assert report.synapses_added == [("aux", "main")]
    assert report.nodes_changed == {"h2": {"frozen": (False, True)}}
    assert report.synapses_changed == {("h1", "h2"): {"frozen": (False, True)},
                                       ("b", "h2"): {"frozen": (False, True)}}


def test_settings_that_differ_are_each_named():
    a, b = build_dag(), build_dag()
    b.compile(loss={"main": "mse"})
    b.nodes["main"].loss_weight = 0.5
    b.nodes["h1"].dropout = 0.25
    b.nodes["h2"].activation = "relu"
    report = gn.diff(a, b)
    assert report.nodes_changed["main"] == {"loss": ("binary_crossentropy", "mse"), "loss_weight": (1.0, 0.5)}
    assert report.nodes_changed["h1"] == {"dropout": (0.0, 0.25)}
    assert report.nodes_changed["h2"] == {"activation": ("elu", "relu")}
    text = report.text()
    assert "~ main  loss binary_crossentropy → mse; loss_weight 1 → 0.5" in text
    assert "dropout 0 → 0.25" in text and "activation elu → relu" in text


def test_training_changes_are_the_norms_of_the_differences(rng):
    g = build_dag()
    h = copy.deepcopy(g)
    h.freeze("h1")
    x, y = dag_data(rng, 32)
    h.fit(x, y, epochs=2, batch_size=8, verbose=0)
    report = gn.diff(g, h)
    before, after = g.get_weights(), h.get_weights()
    assert report.nodes_changed == {"h1": {"frozen": (False, True)}}
    for key, p in report.parameters.items():
        delta = np.linalg.norm(after[key] - before[key])
        assert p.change == pytest.approx(delta, rel=1e-12, abs=0)
        assert p.norm == pytest.approx(np.linalg.norm(before[key]), rel=1e-12)
        assert p.relative == pytest.approx(delta / np.linalg.norm(before[key]), rel=1e-12)
    frozen = {"a->h1.weight", "h1.bias"}
    assert {p.key for p in report.changed_parameters} == set(before) - frozen
    text = report.text()
    assert "unchanged (2, bit for bit): a->h1.weight, h1.bias" in text
    assert "13 of 15 parameters in both changed" in text


def test_model_files_compare_as_the_graphs_they_hold(tmp_path, rng):
    g = build_dag()
    h = copy.deepcopy(g)
    h.widen("h1", 8)
    x, y = dag_data(rng, 16)
    h.fit(x, y, epochs=1, verbose=0)
    from_files = gn.diff(g.save(tmp_path / "a.gnet"), str(h.save(tmp_path / "b.gnet")))
    from_graphs = gn.diff(g, h)
    assert from_files.nodes_changed == from_graphs.nodes_changed
    assert from_files.parameters == from_graphs.parameters
    assert from_files.label_a.endswith("a.gnet") and "a.gnet" in from_files.text()


def test_text_fits_80_columns_with_long_names():
    long = "a_hidden_node_with_a_name_much_longer_than_any_column_would_ever_hold_comfortably"
    g, h, report = edited(lambda h: (h.insert("h1", "h2", long), h.widen("h3", 7)))
    text = report.text()
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert text.count("+ ") >= 3 and "~ h3" in text and long[:40] in text
    assert all(len(line) <= 60 for line in report.text(width=60).splitlines())


def test_text_width_is_an_integer_of_at_least_the_table_s_columns():
    long = "a_hidden_node_with_a_name_much_longer_than_any_column_would_ever_hold_comfortably"
    g, h, report = edited(lambda h: (h.insert("h1", "h2", long), h.widen("h3", 7)))
    assert all(len(line) <= MIN_WIDTH for line in report.text(MIN_WIDTH).splitlines())
    for width in (10, -1, 49, "80", 80.0, True, None):
        with pytest.raises(gn.GraphError, match=r"GraphDiff.text: width must be an integer >= 50, got"):
            report.text(width)


def test_text_fits_80_columns_with_wide_reshapes():
    # "reshaped (300, 1000) → (300, 1234)" is wider than the number columns:
    # beside a key of 32 characters, or under a key too long for its column,
    # the line would pass 80 columns, so the shapes go beneath.
    def net(hidden, wide):
        g = gn.Graph(seed=0)
        g.add_input("x", 300)
        g.add_hidden(hidden, wide, activation="relu")
        g.add_output("y", 1)
        g.connect("x", hidden)
        g.connect(hidden, "y")
        return g

    for hidden in ("encoder_hidden_layer_1", "an_encoder_layer_whose_name_is_longer_than_the_key_column"):
        g = net(hidden, 1000)
        h = copy.deepcopy(g)
        h.widen(hidden, 1234)
        text = gn.diff(g, h).text()
        assert all(len(line) <= 80 for line in text.splitlines()), text
        assert "(300, 1000) → (300, 1234)" in text and "(1000,) → (1234,)" in text


def test_weights_false_compares_structure_and_initializers_only():
    g, h, _ = edited(lambda h: h.widen("h1", 8))
    h.synapse("h1", "h2").init = "zeros"
    report = gn.diff(g, h, weights=False)
    assert report.parameters is None and "weights not compared" in report.text()
    assert report.synapses_changed[("h1", "h2")]["init"] == ("fan_in_uniform", "zeros")
    assert "init" not in gn.diff(g, h).synapses_changed[("h1", "h2")]


@needs_dot
def test_the_diagram_draws_the_union_with_colours_words_and_a_legend(tmp_path):
    def edit(h):
        h.insert("h1", "h2", "h1b")
        h.remove("h3")
        h.connect("aux", "main")
        h.freeze("aux")
        h.set_weights({"main.bias": h.get_weights()["main.bias"] + 0.5})

    g, h, report = edited(edit)
    source = report.to_dot().source
    assert source.count(">added<") >= 3  # h1b and its two synapses
    for name in ("h1b", "h3", "aux", "main", "h1", "h2"):
        assert f'"{name}" [' in source  # the union: h3 was removed, h1b added
    assert f'"h1b" [color="{ADDED}"' in source
    assert f'"h3" [color="{REMOVED}"' in source
    assert "frozen: no → yes" in source and "bias Δ" in source and "a: graph" in source
    png = report.render(tmp_path / "diff.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert report.render(tmp_path / "diff.gv").read_text() == source.replace(' dpi="192"', "")


def test_bad_arguments(tmp_path):
    g = build_dag()
    with pytest.raises(gn.GraphError, match="diff: a must be a Graph or the path of a model file, got int"):
        gn.diff(1, g)
    with pytest.raises(gn.ModelFileError, match="missing.gnet: no such file"):
        gn.diff(g, tmp_path / "missing.gnet")
    with pytest.raises(gn.GraphError, match="weights must be True or False"):
        gn.diff(g, g, weights="yes")
    with pytest.raises(gn.GraphError, match="labels must be two strings"):
        gn.diff(g, g, labels=("before",))
    assert gn.diff(g, g, labels=("before", "after")).text().startswith("a: before (7 nodes")
    report = gn.diff(g, g)
    with pytest.raises(gn.RenderError, match=r"cannot tell the format of .*diff.txt"):
        report.render(tmp_path / "diff.txt")
    with pytest.raises(gn.RenderError, match="rankdir must be one of"):
        report.to_dot(rankdir="up")


def test_a_parameter_that_was_zero_has_an_infinite_relative_change():
    p = ParameterChange("k", (2,), (2,), 0.0, 1.0, 1.0)
    assert math.isinf(p.relative) and p.changed


def test_norms_of_parameters_beyond_1e154_are_finite():
    """Their squares overflow: sqrt(dot(x, x)) gave inf with numpy's warning."""
    def graph(scale):
        g = gn.Graph(seed=0, dtype="float64")
        g.add_input("x", 2)
        g.add_output("y", 1, loss="mae")
        g.connect("x", "y")
        g.set_weights({"x->y.weight": np.ones((2, 1)) * scale, "y.bias": np.zeros(1)})
        return g

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        change = gn.diff(graph(1e200), graph(2e200)).parameters["x->y.weight"]
    assert (change.norm, change.new_norm, change.change) == pytest.approx((2**0.5 * 1e200, 2**0.5 * 2e200,
                                                                         2**0.5 * 1e200), rel=1e-15)


def test_the_widest_synapse_is_the_largest_weight_change_and_the_words_are_readable():
    from graphnet import render_diff
    from graphnet._overlays import contrast

    a = gn.Graph(name="g", seed=0)
    a.add_input("x", 2)
    a.add_output("y", 1)
    a.connect("x", "y")
    b = copy.deepcopy(a)
    weights = b.get_weights()
    b.set_weights({"x->y.weight": weights["x->y.weight"] * 1.1, "y.bias": np.ones(1)})  # weight +10%, bias far more
    source = gn.diff(a, b).to_dot().source
    assert "the widest: 10%" in source
    assert re.search(r'"x" -> "y" \[penwidth="4.00"', source)
    fills = render_diff._FILLS
    for color, fill in [(render_diff.ADDED, fills[render_diff.ADDED]), (render_diff.REMOVED, fills[render_diff.REMOVED]),
                        (render_diff.CHANGED, "#f2f2f2"), (render_diff.CHANGED, "#fbe3c8")]:
        assert contrast(color, fill) >= 4.5, (color, fill)


def test_the_legend_says_so_when_no_synapse_weight_changed():
    a = gn.Graph(name="g", seed=0)
    a.add_input("x", 2)
    a.add_output("y", 1)
    a.connect("x", "y")
    b = copy.deepcopy(a)
    b.set_weights({"y.bias": np.ones(1)})  # a bias only
    source = gn.diff(a, b).to_dot().source
    assert "no synapse's weight changed" in source and "the widest" not in source
