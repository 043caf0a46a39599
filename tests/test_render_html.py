"""Graph.render("model.html"): one self-contained page, opened in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

import graphnet as gn
from graphnet import render_html

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program is not installed")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def deep(name: str = "deep", chain: int = 5) -> gn.Graph:
    """Two inputs, a chain of like relu nodes (a group to collapse), a skip to the output."""
    g = gn.Graph(name=name, seed=0, dtype="float64")
    g.add_input("x", 6)
    g.add_input("side", 3)
    previous = "x"
    for i in range(chain):
        g.add_hidden(f"h{i}", 8, activation="relu")
        g.connect(previous, f"h{i}")
        previous = f"h{i}"
    g.add_hidden("mix", 4, activation="tanh")
    g.connect([previous, "side"], "mix")
    g.add_output("y", 3, activation="softmax", loss="categorical_crossentropy")
    g.connect(["mix", "x"], "y")
    return g


def data(rows: int = 32):
    rng = np.random.default_rng(0)
    return {"x": rng.normal(size=(rows, 6)), "side": rng.normal(size=(rows, 3))}, rng.integers(0, 3, rows)


def page_data(text: str) -> dict:
    blob = re.search(r'<script type="application/json" id="graphnet-data">(.*?)</script>', text, re.S).group(1)
    return json.loads(blob)


def fetches(text: str) -> list[str]:
    """Everything in the page that a browser would fetch from elsewhere."""
    patterns = [r"""\b(?:src|href|xlink:href|action|poster|data)\s*=\s*["']?\s*(?:https?:)?//""",
                r"url\(\s*['\"]?\s*(?:https?:)?//", r"@import", r"<link\b", r"<iframe\b", r"<!DOCTYPE svg",
                r"\bfetch\(", r"XMLHttpRequest", r"\bimport\("]
    return [m.group(0) for p in patterns for m in re.finditer(p, text, re.I)]


@needs_dot
def test_the_page_holds_both_layouts_the_script_and_every_detail(tmp_path):
    g = deep()
    x, y = data()
    stats, report = g.statistics(x, y), g.attributions(x)
    path = g.render(tmp_path / "model.html", stats=stats, attributions=report)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and text.count("<svg") == 2
    assert 'data-layout="0"' in text and 'data-layout="1"' in text
    assert f"svg-pan-zoom {render_html.PAN_ZOOM_VERSION}" in text and "svgPanZoom" in text
    assert not fetches(text), fetches(text)
    content = page_data(text)
    assert content["names"] == ["collapsed", "expanded"] and content["start"] == 1  # collapse=False
    items = {(item["type"], item["name"]): dict((k, v) for k, v in item["rows"] if k) for item in content["items"]}
    h2 = items[("node", "h2")]
    assert h2["size"] == "8 units" and h2["activation"] == "relu" and h2["frozen"] == "no"
    assert h2["parameters"].startswith("72 (bias 8") and h2["from"].startswith("h1  8×8, |W| ")
    assert h2["statistics"] == "on 32 rows" and h2["dead"].startswith(f"{len(stats['h2'].dead_units)} of 8")
    assert items[("node", "y")]["loss"] == "categorical_crossentropy"
    assert items[("node", "x")]["attribution"] == f"{100 * report.shares['x']:.1f}% of the mean |attribution|"
    assert items[("group", "h0")]["group"] == "5 hidden nodes, each feeding only the next"
    assert items[("synapse", "x->h0.weight")]["shape"] == "6×8 (48 weights)"
    assert items[("synapse", "x->h0.weight")]["|dL/dW|"] == render_html._num(stats["x", "h0"].grad_norm)
    # Every drawn node, group frame and edge leads to its entry.
    assert {"x->h0", "h0->mix", "x->y"} <= set(content["edges"][0])  # the group drawn as h0 and "h0->h1" in content["edges"][1]
    ids = set(re.findall(r'id="(L\d+_i\d+)"', text))
    assert len(ids) == len(g) + 2 * 1 + (len(g) - 5)  # expanded nodes, the group twice, collapsed nodes
    assert len(re.findall(r'\bid="([^"]+)"', text)) == len(set(re.findall(r'\bid="([^"]+)"', text)))


@needs_dot
def test_a_graph_without_chains_has_one_layout_and_a_big_one_keeps_only_the_collapsed(tmp_path, monkeypatch):
    flat = deep(chain=1)
    content = page_data(flat.render(tmp_path / "flat.html").read_text(encoding="utf-8"))
    assert content["names"] == ["expanded"] and not content["tooBig"]
    monkeypatch.setattr(render_html, "EXPAND_LIMIT", 5)
    content = page_data(deep().render(tmp_path / "big.html").read_text(encoding="utf-8"))
    assert content["names"] == ["collapsed"] and content["tooBig"]


@needs_dot
def test_node_names_cannot_inject_markup(tmp_path):
    name = '</script><img src=x onerror="alert(1)">&amp;'
    g = gn.Graph(name=name, seed=0)
    g.add_input(name, 2)
    g.add_output("y", 1)
    g.connect(name, "y")
    text = g.render(tmp_path / "odd.html").read_text(encoding="utf-8")
    assert "<img" not in text and "</script><" not in text.replace("</script>\n<", "")
    assert page_data(text)["items"][0]["name"] == name and page_data(text)["title"] == name


@needs_dot
def test_the_command_line_writes_a_page(tmp_path):
    from graphnet import cli

    spec = tmp_path / "deep.json"
    spec.write_text(json.dumps(deep().to_dict()), encoding="utf-8")
    assert cli.main(["render", str(spec), "-o", str(tmp_path / "deep.html"), "--collapse"]) == 0
    assert page_data((tmp_path / "deep.html").read_text(encoding="utf-8"))["start"] == 0


def test_bad_paths_are_render_errors(tmp_path):
    g = deep()
    with pytest.raises(gn.RenderError, match=r"must end in \.html"):
        render_html.render_html(g, tmp_path / "x.htm")
    with pytest.raises(gn.RenderError, match="does not exist; create it first"):
        g.render(tmp_path / "nowhere" / "x.html")


BAD_OPTIONS = {
    "stats": ("x", "stats must be what graph.statistics"),
    "attributions": (5, "attributions must be what graph.attributions"),
    "dpi": (-1, "dpi must be a positive integer"),
    "collapse": ("x", "collapse must be True or False"),
    "show_shapes": (5, "show_shapes must be True or False"),
    "rankdir": ("up", "rankdir must be one of"),
}


@pytest.mark.parametrize("option", list(BAD_OPTIONS))
def test_bad_options_are_refused_as_by_to_dot_before_any_work(tmp_path, option):
    g = deep()
    value, words = BAD_OPTIONS[option]
    with pytest.raises(gn.RenderError, match=f"to_dot: {words}"):
        gn.render.to_dot(g, **{option: value})
    with pytest.raises(gn.RenderError, match=f"render_html: {words}"):
        g.render(tmp_path / "m.html", **{option: value})
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------- in a browser
#: Clicks what a user clicks, then writes what the page showed into <body>.
CLICKS = """<script>
(function () {
  function click(element) { element.dispatchEvent(new MouseEvent("click", {bubbles: true})); }
  function shown() { return document.querySelector(".gn-view:not([hidden])").dataset.layout; }
  function title() { return document.querySelector("#gn-details h2").textContent; }
  var out = {start: shown(), hashTitle: title()};
  click(document.querySelector('.gn-view:not([hidden]) .cluster'));        // a group's frame: collapse
  out.afterFrame = shown(); out.frameTitle = title();
  click(document.querySelector('.gn-view:not([hidden]) .node[id$="_i%(group)d"]'));  // its box: expand
  out.afterBox = shown();
  click(document.querySelector('.gn-view:not([hidden]) .edge'));
  out.edgeTitle = title();
  out.selected = document.querySelectorAll(".gn-selected").length;
  document.getElementById("gn-toggle").click();
  out.afterToggle = shown();
  document.body.setAttribute("data-result", JSON.stringify(out));
})();
</script></body>"""


def chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--enable-logging=stderr", "--v=0", "--window-size=1280,720", *args],
        capture_output=True, text=True, timeout=120,
    )


def console(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if "CONSOLE" in line]


@needs_dot
@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")
def test_chromium_opens_the_page_without_errors_and_the_clicks_work(tmp_path):
    g = deep()
    x, y = data()
    path = g.render(tmp_path / "model.html", stats=g.statistics(x, y), attributions=g.attributions(x))
    shot = tmp_path / "model.png"
    result = chromium(f"--screenshot={shot}", path.as_uri() + "#node=h2")
    assert not console(result), console(result)
    assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 20_000

    text = path.read_text(encoding="utf-8")
    group = next(i for i, item in enumerate(page_data(text)["items"]) if item["type"] == "group")
    clicked = tmp_path / "clicked.html"
    clicked.write_text(text.replace("</body>", CLICKS % {"group": group}), encoding="utf-8")
    result = chromium("--dump-dom", clicked.as_uri() + "#node=h2")
    assert not console(result), console(result)
    assert 'data-ready="yes"' in result.stdout
    found = json.loads(re.search(r"data-result=\"(.*?)\"", result.stdout).group(1).replace("&quot;", '"'))
    assert found["start"] == "1" and found["hashTitle"] == "h2"  # expanded, h2's details
    assert found["afterFrame"] == "0" and found["frameTitle"] == "h0 … h4 ×5"  # collapsed, the group's
    assert found["afterBox"] == "1"  # expanded again
    assert "→" in found["edgeTitle"] and found["selected"] == 1
    assert found["afterToggle"] == "0"


#: What a keyboard user does, then what the page showed, into <body>.
KEYS = """<script>
(function () {
  function press(element, key) { element.dispatchEvent(new KeyboardEvent("keydown", {key: key, bubbles: true})); }
  var view = document.querySelector(".gn-view:not([hidden])");
  var nodes = view.querySelectorAll('.node[tabindex="0"][role="button"]');
  var out = {focusable: nodes.length, all: view.querySelectorAll(".node").length,
             label: view.querySelector("svg").getAttribute("aria-label")};
  var node = view.querySelector('.node[id$="_i%(item)d"]');
  node.focus();
  out.focused = document.activeElement === node;
  press(node, "Enter");
  out.title = document.querySelector("#gn-details h2").textContent;
  out.named = node.getAttribute("aria-label");
  press(document.body, "Escape");
  out.closed = document.getElementById("gn-details").hidden;
  document.body.setAttribute("data-result", JSON.stringify(out));
})();
</script></body>"""


@needs_dot
@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")
def test_a_keyboard_reaches_every_node_and_opens_its_details(tmp_path):
    g = deep(chain=1)  # no group: one layout
    path = g.render(tmp_path / "model.html")
    text = path.read_text(encoding="utf-8")
    assert "<noscript>" in text and 'aria-live="polite"' in text
    item = next(i for i, entry in enumerate(page_data(text)["items"]) if entry.get("name") == "mix")
    keyed = tmp_path / "keyed.html"
    keyed.write_text(text.replace("</body>", KEYS % {"item": item}), encoding="utf-8")
    result = chromium("--dump-dom", keyed.as_uri())
    assert not console(result), console(result)
    found = json.loads(re.search(r"data-result=\"(.*?)\"", result.stdout).group(1).replace("&quot;", '"'))
    assert found["focusable"] == found["all"] == 5 and found["label"] == "diagram of deep"
    assert found["focused"] and found["title"] == "mix" and found["named"] == "mix: details"
    assert found["closed"]
