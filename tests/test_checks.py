"""Validators and message helpers (graphnet._validation, graphnet._text)."""

from __future__ import annotations

import numpy as np
import pytest

from graphnet import GraphError, ModelImportError
from graphnet._text import clip, format_cycle, preview, shown
from graphnet._validation import check_int, is_int


def test_is_int_and_check_int():
    assert is_int(3) and is_int(np.int64(3)) and not is_int(True) and not is_int(3.0)
    assert is_int(0, 0) and not is_int(0, 1) and not is_int(5, 1, 5)
    assert check_int(np.int32(4), "size") == 4 and type(check_int(np.int32(4), "size")) is int
    with pytest.raises(GraphError, match="size must be a positive integer, got 0"):
        check_int(0, "size")
    with pytest.raises(GraphError, match="patience must be an integer >= 0, got -1"):
        check_int(-1, "patience", low=0)
    with pytest.raises(ModelImportError, match="size must be 'auto' or a positive integer"):
        check_int("x", "size", expected="'auto' or a positive integer", error=ModelImportError)


def test_messages_stay_short():
    assert preview(["a", "b"]) == "['a', 'b']"
    assert preview([str(i) for i in range(30)], limit=3) == "['0', '1', '2', ... 27 more]"
    assert format_cycle(["a", "b", "a"]) == "a -> b -> a"
    assert "more" in format_cycle([f"n{i}" for i in range(40)])
    assert len(shown("x" * 1000)) == 80 and shown(1) == "1"


def test_shown_is_bounded_however_large_or_shared_the_value():
    shared = ["lol"] * 9
    for _ in range(30):  # 9**31 strings, were it walked in full
        shared = [shared] * 9
    assert len(shown(shared)) <= 80 and shown(shared).startswith("[[[[")
    assert shown({"name": "relu", "x": [1, 2]}) == "{'name': 'relu', 'x': [1, 2]}"
    assert len(shown(10**4000)) <= 80  # str() of this int alone is past Python's digit limit
    assert shown(10**5000) == "<int>"


def test_clip_keeps_both_ends_on_one_line():
    text = "unknown activation " + "x" * 5000 + "\n; known: ['elu', 'relu']"
    clipped = clip(text, 120)
    assert len(clipped) <= 120 and "\n" not in clipped
    assert clipped.startswith("unknown activation xxx") and clipped.endswith("known: ['elu', 'relu']")
    assert clip("short  text") == "short text"
