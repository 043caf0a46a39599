"""The summary table: rows, parameter counts, totals, wrapping."""

from __future__ import annotations

import re

import pytest
from conftest import build_dag

import graphnet as gn
from graphnet.demo import build_model
from graphnet.summary import summary_rows


def seeds_model() -> gn.Sequential:
    return gn.Sequential([
        gn.Input(30),
        gn.Dense(128, activation="relu"),
        gn.Dense(64, activation="relu", dropout=0.1),
        gn.Dense(32, activation="relu"),
        gn.Dense(1, activation="sigmoid"),
    ], seed=0)


def row_of(text: str, name: str) -> str:
    """The first table line of node ``name``."""
    for line in text.splitlines():
        if line.startswith(" ") and line.split() and line.split()[0] == name:
            return line
    raise AssertionError(f"no row for {name!r} in\n{text}")


def test_totals_for_the_seeds_net_use_thousands_separators():
    text = seeds_model().summary(print_fn=None)
    assert "Total params: 14,337" in text
    assert "Trainable params: 14,337" in text
    assert "Non-trainable params: 0" in text


def test_each_row_has_kind_size_activation_sources_and_params():
    text = seeds_model().summary(print_fn=None)
    assert row_of(text, "input").split() == ["input", "(Input)", "30", "-", "-", "0"]
    assert row_of(text, "dense").split() == ["dense", "(Hidden)", "128", "relu", "input", "3,968"]
    assert row_of(text, "dense_1").split() == [
        "dense_1", "(Hidden)", "64", "relu,", "dropout", "0.1", "dense", "8,256"
    ]
    assert row_of(text, "dense_3").split() == ["dense_3", "(Output)", "1", "sigmoid", "dense_2", "33"]
    assert "Loss: binary_crossentropy(dense_3)" in text


def test_rows_follow_the_topological_order_and_add_up_to_num_params():
    g = build_dag()
    text = g.summary(print_fn=None)
    positions = [text.index(f" {name} (") for name in g.topological_order]
    assert positions == sorted(positions)
    rows = summary_rows(g)
    assert [r.name for r in rows] == g.topological_order
    assert sum(r.params for r in rows) == g.num_params == 183
    assert row_of(text, "main").split()[-4:] == ["h3,", "h1,", "a", "34"]
    assert "Loss: 0.7 * categorical_crossentropy(aux) + binary_crossentropy(main)" in text


def test_print_fn_gets_the_whole_table_once_and_print_is_the_default(capsys):
    g = build_dag()
    calls = []
    assert g.summary(print_fn=calls.append) is None
    assert calls == [g.summary(print_fn=None)]
    assert g.summary() is None
    assert capsys.readouterr().out == calls[0] + "\n"


def test_a_print_fn_that_is_not_callable_is_refused():
    with pytest.raises(gn.GraphError, match="print_fn must be a callable"):
        build_dag().summary(print_fn="stdout")


def test_frozen_weights_and_biases_count_as_non_trainable():
    g = gn.Graph(name="frozen")
    g.add_input("x", 4)
    g.add_hidden("h", 3, trainable=False)          # bias: 3 frozen
    g.add_output("y", 2)
    g.connect("x", "h", trainable=False)           # 12 frozen
    g.connect("h", "y")                            # 6 + 2 trainable
    text = g.summary(print_fn=None)
    assert "Total params: 23" in text
    assert "Trainable params: 8" in text
    assert "Non-trainable params: 15" in text


def test_activation_parameters_that_differ_from_the_defaults_are_shown():
    g = gn.Graph()
    g.add_input("x", 2)
    g.add_hidden("h", 2, activation=gn.activations.LeakyReLU(0.2))
    g.add_hidden("e", 2, activation="elu")
    g.add_output("y", 1)
    g.connect("x", "h")
    g.connect("h", "e")
    g.connect("e", "y")
    text = g.summary(print_fn=None)
    assert "leaky_relu(0.2)" in row_of(text, "h")
    assert row_of(text, "e").split()[3] == "elu"


def test_a_node_with_twenty_sources_wraps_instead_of_widening_the_table():
    g = gn.Graph(name="wide")
    sources = [g.add_input(f"feature_{i:02d}", 3).name for i in range(20)]
    g.add_hidden("merge", 8)
    g.add_output("y", 1)
    g.connect(sources, "merge")
    g.connect("merge", "y")
    text = g.summary(print_fn=None)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 110
    for name in sources:  # every source is listed, none is cut in two
        assert re.search(rf"\b{name}\b", text.split(" merge")[1])
    assert "Total params: 497" in text
    # The continuation lines sit under the "Connected to" column and nothing else.
    start = lines.index(row_of(text, "merge"))
    column = lines[start].index("feature_00")
    assert lines[start + 1][:column].strip() == ""
    assert lines[start + 1][column:].startswith("feature_")


def test_an_empty_graph_still_has_a_summary():
    text = gn.Graph(name="empty").summary(print_fn=None)
    assert "(no nodes yet)" in text and "Total params: 0" in text


def test_repr_is_one_line():
    text = repr(seeds_model())
    assert "\n" not in text and "14,337 params" in text


# --------------------------------------------------------- 80 columns
def _long_names() -> gn.Graph:
    g = gn.Graph(name="long")
    g.add_input("a_rather_long_input_feature_vector_name", 3)
    g.add_input("x", 2)
    g.add_hidden("very_long_feature_extractor_layer_number_three", 4,
                 activation=gn.activations.GELU(approximate=True), dropout=0.25)
    g.add_output("prediction_of_the_thing", 1)
    g.connect(["a_rather_long_input_feature_vector_name", "x"], "very_long_feature_extractor_layer_number_three")
    g.connect("very_long_feature_extractor_layer_number_three", "prediction_of_the_thing")
    return g


def test_the_demo_s_summary_fits_80_columns_and_keeps_its_rows():
    g = build_model()
    text = g.summary(print_fn=None)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert row_of(text, "shared").split() == ["shared", "(Hidden)", "64", "relu,", "dropout", "0.1", "top_features,",
                                              "8,256"]
    wide = g.summary(print_fn=None, line_length=120)  # room enough: nothing wraps
    assert row_of(wide, "shared").split()[-3:] == ["top_features,", "bottom_features", "8,256"]
    assert max(len(line) for line in wide.splitlines()) > 80


def test_long_names_wrap_after_underscores_and_stay_whole_in_the_column():
    g = _long_names()
    text = g.summary(print_fn=None)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    start = lines.index(row_of(text, "very_long_"))
    width = lines[2].index("Size") - 1
    column = [line[1:width].strip() for line in lines[start:start + 5]]
    assert "".join(column) == "very_long_feature_extractor_layer_number_three(Hidden)"
    assert all(part.endswith("_") for part in column[:3])  # broken after underscores, not inside words
    sources = lines[start][lines[2].index("Connected to"):].split()[0]
    assert sources == "a_rather_long_"  # a source list wraps the same way
    assert "Loss: mse(prediction_of_the_thing)" in text


def test_a_line_length_under_60_is_refused():
    with pytest.raises(gn.GraphError, match="summary: line_length must be"):
        build_dag().summary(print_fn=None, line_length=50)
