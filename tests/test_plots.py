"""Training curves."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from conftest import build_dag, dag_data

import graphnet as gn
from graphnet.plots import panels

matplotlib = pytest.importorskip("matplotlib", reason="plot_history needs matplotlib (the plot extra)")


@pytest.fixture
def multi_history(rng):
    g = build_dag()
    x, y = dag_data(rng, rows=40)
    return g.fit(x, y, epochs=3, batch_size=8, metrics=["accuracy"], validation_split=0.25, verbose=0)


def visible_titles(figure) -> list[str]:
    return [ax.get_title() for ax in figure.axes if ax.get_visible()]


def test_one_panel_per_quantity_with_validation_beside_training(multi_history):
    groups = panels(multi_history)
    assert list(groups) == ["loss", "aux_loss", "main_loss", "aux_accuracy", "main_accuracy"]
    assert set(groups["aux_loss"]) == {"aux_loss", "val_aux_loss"}
    assert all(len(v) == 3 for series in groups.values() for v in series.values())


def test_writes_a_png_without_a_display(multi_history, tmp_path):
    path = tmp_path / "history.png"
    figure = gn.plot_history(multi_history, path, title="dag")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert visible_titles(figure) == ["total loss", "aux loss", "main loss", "aux accuracy", "main accuracy"]
    solid, dashed = figure.axes[0].get_lines()
    assert solid.get_linestyle() == "-" and dashed.get_linestyle() == "--"
    np.testing.assert_allclose(solid.get_ydata(), multi_history.history["loss"])


def test_a_plain_dict_and_an_svg_file(tmp_path):
    path = tmp_path / "curves.svg"
    figure = gn.plot_history({"loss": [1.0, 0.5, 0.25], "accuracy": [0.5, 0.7, 0.9]}, path)
    assert b"<svg" in path.read_bytes()[:500]
    assert visible_titles(figure) == ["loss", "accuracy"]


def test_without_a_path_the_figure_comes_from_pyplot(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    from matplotlib import pyplot

    figure = gn.plot_history({"loss": [1.0, 0.5]})
    try:
        assert pyplot.fignum_exists(figure.number)
    finally:
        pyplot.close(figure)


@pytest.mark.parametrize(
    ("history", "match"),
    [
        ({}, "no epochs to plot"),
        ({"loss": []}, "no epochs to plot"),
        ([1.0, 2.0], "expects the History that fit"),
        ({"loss": "0.5"}, "must be a list of numbers"),
        ({"loss": [1.0, "x"]}, "must hold numbers"),
    ],
)
def test_bad_histories_are_refused(history, match):
    with pytest.raises(gn.GraphError, match=match):
        gn.plot_history(history)


def test_a_missing_folder_or_an_unknown_suffix_is_refused(tmp_path):
    with pytest.raises(gn.GraphError, match="does not exist"):
        gn.plot_history({"loss": [1.0]}, tmp_path / "nowhere" / "h.png")
    with pytest.raises(gn.GraphError, match=r"cannot tell the format .* use one of \[.*'.png'"):
        gn.plot_history({"loss": [1.0]}, tmp_path / "h.docx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("dpi", [0, -5, "x", 96.0, True, None])
def test_a_bad_dpi_is_refused_before_any_work(tmp_path, dpi):
    with pytest.raises(gn.GraphError, match=r"plot_history: dpi must be a positive integer, got"):
        gn.plot_history({"loss": [1.0]}, tmp_path / "h.png", dpi=dpi)
    assert list(tmp_path.iterdir()) == []


def test_without_matplotlib_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes ``import matplotlib`` fail
    with pytest.raises(ImportError, match=r"pip install 'graphnet\[plot\]'"):
        gn.plot_history({"loss": [1.0]})


def test_a_figure_is_written_atomically_and_a_folder_is_refused(multi_history, tmp_path, monkeypatch):
    target = tmp_path / "curves.png"
    target.write_bytes(b"OLD")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)  # the data reached the temporary file, not the disk
    with pytest.raises(gn.GraphError, match="plot_history: cannot write .*curves.png.*No space left on device"):
        gn.plot_history(multi_history, target)
    monkeypatch.undo()
    assert target.read_bytes() == b"OLD" and [p.name for p in tmp_path.iterdir()] == ["curves.png"]
    gn.plot_history(multi_history, target)
    assert target.read_bytes().startswith(b"\x89PNG")
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(gn.GraphError, match="plot_history: cannot write .*folder.png.*is a folder"):
        gn.plot_history(multi_history, tmp_path / "folder.png")


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_a_figure_file_is_what_matplotlib_writes_to_that_name(multi_history, tmp_path, monkeypatch, suffix):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")  # no dates in the files
    monkeypatch.setitem(matplotlib.rcParams, "svg.hashsalt", "fixed")
    figure = gn.plot_history(multi_history, tmp_path / f"curves{suffix}", dpi=50)
    (tmp_path / "m").mkdir()
    figure.savefig(tmp_path / "m" / f"curves{suffix}", dpi=50)
    ours = (tmp_path / f"curves{suffix}").read_bytes()
    assert ours == (tmp_path / "m" / f"curves{suffix}").read_bytes()


def test_a_format_matplotlib_cannot_draw_here_is_a_graph_error(multi_history, tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    def needs_latex(self, *args, **kwargs):
        raise RuntimeError("'xelatex' not found")

    monkeypatch.setattr(Figure, "savefig", needs_latex)
    with pytest.raises(gn.GraphError, match=r"plot_history: matplotlib could not draw .*curves\.pgf.*xelatex"):
        gn.plot_history(multi_history, tmp_path / "curves.pgf")
    assert list(tmp_path.iterdir()) == []


def test_a_figure_is_drawn_without_the_systems_temporary_folder(multi_history, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))  # a full or read-only /tmp
    gn.plot_history(multi_history, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes().startswith(b"\x89PNG")


def test_a_value_with_no_finite_neighbour_is_drawn_and_the_curves_differ_by_marker():
    pytest.importorskip("matplotlib")
    figure = gn.plot_history({"loss": [0.5, 0.4, 0.3], "val_loss": [np.nan, 0.6, np.nan]}, None)
    try:
        training, validation = figure.axes[0].get_lines()
        assert list(training.get_markevery()) == [] and list(validation.get_markevery()) == [1]  # 0.6 alone
        assert {training.get_marker(), validation.get_marker()} == {"o", "s"}
    finally:
        import matplotlib.pyplot as plt

        plt.close(figure)
    figure = gn.plot_history({"loss": [0.5], "val_loss": [0.7]}, None)
    try:
        assert [list(line.get_markevery()) for line in figure.axes[0].get_lines()] == [[0], [0]]
    finally:
        plt.close(figure)
