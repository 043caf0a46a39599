"""Names in the world's scripts in graphnet's text: measured in terminal
columns and cut between characters as a reader sees them (a flag's two
letters, an accent, a decomposed Hangul syllable, emoji joined by ZWJ stay
whole), and names that differ only in Unicode normalisation told apart."""

from __future__ import annotations

import unicodedata

import numpy as np
import pytest

import graphnet as gn
from graphnet._progress import wrap_logs, wrap_text
from graphnet._text import clip, columns, cut, graphemes

FLAGS = "\U0001f1ef\U0001f1f5\U0001f1eb\U0001f1f7\U0001f1e9\U0001f1ea\U0001f1fa\U0001f1f8"  # JP FR DE US
FAMILY = "\U0001f469\u200d\U0001f469\u200d\U0001f467"
HANGUL_NFD = unicodedata.normalize("NFD", "한국어입력")


@pytest.mark.parametrize(("text", "clusters", "width"), [
    (FLAGS, 4, 8), (FAMILY + "x", 2, 3), (HANGUL_NFD, 5, 10), ("e\u0301", 1, 1), ("\u2764\ufe0f", 1, 2), ("名前", 2, 4),
])
def test_characters_as_a_reader_sees_them_and_their_columns(text, clusters, width):
    assert len(graphemes(text)) == clusters and "".join(graphemes(text)) == text
    assert columns(text) == width


@pytest.mark.parametrize("text", [FLAGS * 5, FAMILY * 12, HANGUL_NFD * 6, "\u0915\u094d\u0937\u093f" * 30])
def test_cuts_and_clips_fall_between_characters(text):
    whole = set(graphemes(text))
    for width in range(1, 40):
        head, rest = cut(text, width)
        assert head + rest == text and set(graphemes(head)) <= whole and set(graphemes(rest)) <= whole
    start, end = clip(text * 4, 20).split(" ... ")
    assert set(graphemes(start)) <= whole and set(graphemes(end)) <= whole


def test_the_figures_below_the_bar_and_a_callbacks_line_fit_the_terminal_in_columns():
    logs = {f"{name}_mae": 0.7953 for name in ("価格予測値の出力", "売上高の予測値", "顧客満足度の指標", "在庫数量")}
    lines = wrap_logs({**logs, **{f"val_{k}": v for k, v in logs.items()}}, 79)
    assert all(columns(line) <= 79 for line in lines), [columns(line) for line in lines]
    figures = [f.strip() for line in lines for f in line.split(" - ")]
    assert len(figures) == 8 and all(f.endswith(": 0.7953") for f in figures)  # none cut
    text = wrap_text("Epoch 2: early stopping (val_売上高の予測値の名前_loss has not improved for 3 epochs)", 59)
    assert all(columns(line) <= 59 for line in text.splitlines())
    long = wrap_logs({FLAGS * 12: 0.5}, 40)
    assert all(columns(line) <= 40 and set(graphemes(line.strip())) <= set(graphemes(FLAGS + ": 0.5"))
               for line in long)


def test_summary_and_statistics_line_up_whatever_the_script():
    names = ("漢字漢字", HANGUL_NFD, "abcd")
    g = gn.Graph(name="s", seed=0)
    g.add_input("x", 2)
    for name in names:
        g.add_hidden(name, 2, activation="tanh")
        g.connect("x", name)
    g.add_output("o", 1)
    g.connect(list(names), "o")
    rows = [line for line in g.summary(print_fn=None).splitlines() if line.lstrip().startswith(names)]
    assert len(rows) == 3 and len({columns(row) for row in rows}) == 1, [columns(r) for r in rows]
    table = g.statistics(np.random.default_rng(0).normal(size=(20, 2))).text().splitlines()
    means = [line for line in table if line.lstrip().startswith(names) and "->" not in line]
    assert len(means) == 3 and len({columns(line) for line in means}) == 1, means  # right-aligned numbers: one end


def test_a_long_unknown_name_is_bounded_and_a_normalisation_twin_is_told_apart():
    g = gn.Graph(name="e")
    g.add_input("café", 1)
    g.add_output("o", 1)
    g.connect("café", "o")
    for verb in (g.freeze, g.unfreeze):
        with pytest.raises(gn.GraphError, match="no node matches") as caught:
            verb("x" * 5000)
        assert len(str(caught.value)) < 300
    with pytest.raises(gn.GraphError, match=r"differs only in Unicode normalisation .*: 'cafe\\u0301' against "
                                            r"'caf\\xe9'$"):
        g["cafe\u0301"]


@pytest.mark.parametrize("unit", [FLAGS, FAMILY, HANGUL_NFD, "\u0915\u094d\u0937\u093f"])
def test_a_diffs_long_names_wrap_between_characters(unit):
    import copy

    a = gn.Graph(name="d", seed=0)
    a.add_input("x", 2)
    a.add_hidden(unit * 20, 3)
    a.add_output("o", 1)
    a.connect("x", unit * 20)
    a.connect(unit * 20, "o")
    b = copy.deepcopy(a)
    b.widen(unit * 20, 4)
    whole = set(graphemes(unit))
    for line in gn.diff(a, b).text().splitlines():
        assert columns(line) <= 80
        assert all(c in whole or c.isascii() or c in "→−·×" for c in graphemes(line)), line


def test_wrapping_a_word_wider_than_a_narrow_line_ends():
    import subprocess
    import sys

    script = "from graphnet._progress import wrap_text; print([wrap_text('a 名名', w) for w in (1, 2, 3, 4, 5)])"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and "名" in done.stdout, done.stderr  # it looped for ever at widths 1 to 3


def test_a_shortened_repr_keeps_its_quotes_and_escapes_whole():
    from graphnet._text import shown

    for text in ['"' * 100 + "'" * 100, '"' + "a" * 200 + "\n" * 77 + "'", "x" * 200 + "\u200b" * 100 + "\U0010fffe"]:
        left, right = shown(text, 2000).split("...")
        quote = left[0]
        start, end = eval(left + quote), eval(quote + right)  # noqa: S307 - the repr graphnet wrote
        assert text.startswith(start) and text.endswith(end) and len(start) > 50 and len(end) > 50


def test_one_huge_character_is_bounded_and_a_joiner_alone_takes_no_column():
    from graphnet._text import named, pad

    assert len(named("e" + "\u0301" * 10_000 + ".gnet")) < 260
    assert columns("\u200d") == 0 and columns("a\u200d") == 1 and columns(pad("a\u200d", 5)) == 5
    assert columns(FAMILY) == 2


def test_the_command_line_leaves_the_callers_streams_as_they_were(monkeypatch):
    import io
    import sys

    from graphnet import cli

    out = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    monkeypatch.setattr(sys, "stdout", out)
    assert cli.main(["summary", "no-such-model.gnet"]) == 1  # a refusal, written to stderr
    assert out.errors == "strict"


def test_the_attributions_table_cuts_a_word_longer_than_its_line():
    g = gn.Graph(seed=0)
    g.add_input("x", 2)
    g.add_hidden("h", 2)
    g.add_output("名" * 60, 1)
    g.connect("x", "h")
    g.connect("h", "名" * 60)
    text = g.attributions(np.ones((3, 2)), steps=4).text(80)
    assert max(columns(line) for line in text.splitlines()) <= 80, text
