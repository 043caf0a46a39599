"""Bad sizes, types and numbers are refused with a GraphError before anything
is allocated or changed (issue 29, items 16 to 18)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import build_chain

import graphnet as gn
from graphnet.render_html import render_html
from graphnet.sklearn import GraphNetRegressor


def test_widen_to_an_impossible_size_is_refused_before_any_allocation():
    g = build_chain()
    before = g.get_weights()
    with pytest.raises(gn.GraphError, match=r"widen: 'h' with 1,099,511,627,776 units needs .* bytes"):
        g.widen("h", 2**40)
    assert all(np.array_equal(before[k], v) for k, v in g.get_weights().items())


def test_insert_refuses_a_name_that_is_not_a_string():
    g = build_chain()
    with pytest.raises(gn.GraphError, match="insert: the new node name must be a non-empty string, got None"):
        g.insert("h", "y", None)
    assert g.topological_order == ["x", "h", "y"]


@pytest.mark.parametrize("values", [
    np.zeros((3, 4), "datetime64[s]"),
    np.zeros((3, 4), "timedelta64[s]"),
    np.zeros((3, 4), complex),
    np.full((3, 4), "1"),
    np.full((3, 4), b"1"),
    np.full((3, 4), None, dtype=object),
])
def test_set_and_transfer_weights_take_real_numbers_only(values):
    g = build_chain()
    before = g.get_weights()
    with pytest.raises(gn.GraphError, match=r"weight 'x->h.weight': expected numbers, got ndarray of dtype .* \(only real numbers"):
        g.set_weights({"x->h.weight": values})
    with pytest.raises(gn.GraphError, match=r"only real numbers"):
        g.transfer_weights({"x->h.weight": values}, strict=False)
    assert all(np.array_equal(before[k], v) for k, v in g.get_weights().items())


def test_row_weights_that_sum_to_zero_are_refused_as_numpy_average_refuses_them(rng):
    g = build_chain()
    x, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 1))
    with pytest.raises(ZeroDivisionError):
        np.average(y[:, 0], weights=np.zeros(8))
    for call in (lambda: g.fit(x, y, sample_weight=np.zeros(8), verbose=0),
                 lambda: g.evaluate(x, y, sample_weight=np.zeros(8))):
        with pytest.raises(gn.GraphError, match="row weights of output 'y' .* sum to 0"):
            call()
    assert g.optimizer is None or g.optimizer.iterations == 0


def test_a_class_weight_for_a_class_the_output_cannot_predict_is_refused(rng):
    g = gn.Graph(seed=0)
    g.add_input("x", 3)
    g.add_output("y", 3, activation="softmax", loss="categorical_crossentropy")
    g.connect("x", "y")
    x, y = rng.normal(size=(8, 3)), rng.integers(0, 3, 8)
    with pytest.raises(gn.GraphError, match=r"predicts classes 0 to 2, but class_weight names \[3\]"):
        g.fit(x, y, class_weight={0: 1.0, 3: 2.0}, verbose=0)
    binary = gn.Graph(seed=0)
    binary.add_input("x", 3)
    binary.add_output("y", 1, activation="sigmoid", loss="binary_crossentropy")
    binary.connect("x", "y")
    with pytest.raises(gn.GraphError, match=r"predicts classes 0 to 1, but class_weight names \[2\]"):
        binary.fit(x, (y > 0).astype(float), class_weight={2: 5.0}, verbose=0)
    binary.fit(x, (y > 0).astype(float), class_weight={0: 1.0, 1: 5.0}, verbose=0)  # its two classes are fine


@pytest.mark.parametrize("bad", [None, 3, ["m.gnet"], b"m.gnet", "", "m\0.gnet"])
def test_every_writer_refuses_a_path_that_is_not_a_file_name(tmp_path, monkeypatch, bad):
    monkeypatch.chdir(tmp_path)
    g = build_chain()
    stats = g.statistics(np.ones((4, 3)))
    writers = [
        ("save", lambda: g.save(bad)),
        ("save_weights", lambda: g.save_weights(bad)),
        ("load_weights", lambda: g.load_weights(bad)),
        ("to_onnx", lambda: g.to_onnx(bad)),
        ("render", lambda: g.render(bad)),
        ("render", lambda: g.render(bad, stats=stats)),
        ("render_html", lambda: render_html(g, bad)),
        ("render", lambda: gn.diff(g, g).render(bad)),
        *([] if bad is None else  # plot_history(history, path=None) only draws the figure
          [("plot_history", lambda: gn.plot_history({"loss": [1.0, 0.5]}, path=bad))]),
        ("ModelCheckpoint", lambda: gn.callbacks.ModelCheckpoint(bad)),
        ("CSVLogger", lambda: gn.callbacks.CSVLogger(bad)),
        ("BackupAndRestore", lambda: gn.callbacks.BackupAndRestore(bad)),
    ]
    found = (r": 'm\\x00\.gnet' contains a NUL character \('\\x00'\), which no file's name can hold$" if bad == "m\0.gnet"
             else r" is empty; give the file's path$" if bad == ""
             else rf" must be a str or os.PathLike naming .*, got {type(bad).__name__} ")
    for where, write in writers:
        with pytest.raises(gn.GraphError, match=rf"^{where}: \w+{found}"):
            write()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flag", ["no", "", 1, None])
def test_boolean_flags_take_true_or_false_only(tmp_path, flag):
    g = build_chain()
    calls = {
        "to_dot: show_shapes": lambda value: g.to_dot(show_shapes=value),
        "to_dot: show_activations": lambda value: g.to_dot(show_activations=value),
        "to_dot: collapse": lambda value: g.render(tmp_path / "g.dot", collapse=value),
        "render_html: collapse": lambda value: render_html(g, tmp_path / "g.html", collapse=value),
        "EarlyStopping: restore_best_weights": lambda value: gn.callbacks.EarlyStopping(restore_best_weights=value),
        "Output: check_pairing": lambda value: gn.Output(2, check_pairing=value),
        "from_torch: check": lambda value: gn.from_torch(None, check=value),
        "shuffle": lambda value: GraphNetRegressor(shuffle=value).fit(np.ones((4, 3)), np.ones(4)),
        "warm_start": lambda value: GraphNetRegressor(warm_start=value).fit(np.ones((4, 3)), np.ones(4)),
        "early_stopping": lambda value: GraphNetRegressor(early_stopping=value).fit(np.ones((4, 3)), np.ones(4)),
    }
    for what, call in calls.items():
        with pytest.raises(gn.GraphError, match=rf"^{what} must be True or False, got {flag!r}"):
            call(flag)
    assert list(tmp_path.iterdir()) == []


def test_numpy_booleans_are_flags(tmp_path):
    g = build_chain()
    assert "3×4" not in g.to_dot(show_shapes=np.False_).source
    assert gn.callbacks.EarlyStopping(restore_best_weights=np.False_).restore_best_weights is False
    assert gn.callbacks.ModelCheckpoint(tmp_path / "m.gnet", save_best_only=np.True_).save_best_only is True
    assert gn.callbacks.CSVLogger(tmp_path / "log.csv", append=np.True_).append is True
    sgd = gn.optimizers.SGD(momentum=0.9, nesterov=np.True_)
    assert sgd.get_config()["nesterov"] is True  # a plain bool, as JSON needs
    g.connect("x", "y", trainable=np.False_)
    assert g.synapse("x", "y").trainable is False
    assert gn.Hidden(2, trainable=np.False_).trainable is False
    g.remove("h", bridge=np.False_)
    assert "h" not in g
