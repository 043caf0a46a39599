"""The layers of the house, drawn from the code: ``python docs/scripts/house.py [OUT.svg]``.

Prints a Markdown table of the floors (from ``tests/test_layout.py``, which
checks them) with each module's first docstring line, and, given a path,
writes the import graph between modules, one cluster per floor, as SVG.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import graphviz  # noqa: E402
import test_layout  # noqa: E402


def first_line(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    return doc.strip().split("\n\n")[0].replace("\n", " ")


def modules_by_floor() -> list[tuple[str, list[tuple[str, Path]]]]:
    modules = test_layout._modules()
    floors = []
    for name, members in test_layout.FLOORS:
        found = sorted((m, p) for m, p in modules.items()
                       if m.split(".")[0] in members and not (m.startswith("interop.") and m != "interop.__init__"))
        floors.append((name, found))
    return floors


def table() -> str:
    lines = ["| floor | module | what it holds |", "|---|---|---|"]
    for name, found in reversed(modules_by_floor()):
        for i, (module, path) in enumerate(found):
            label = module.removesuffix(".__init__")
            if label == "__init__":
                label = "graphnet"
            lines.append(f"| {name if i == 0 else ''} | `{label}` | {first_line(path)} |")
    return "\n".join(lines)


def diagram() -> graphviz.Digraph:
    """The floors stacked, faces on top: one row per floor. Every import
    points down this picture (``tests/test_layout.py`` checks it), so the
    arrows are left out."""
    rows = []
    for name, found in reversed(modules_by_floor()):
        tops = []
        for module, _ in found:
            top = "graphnet" if module == "__init__" else module.split(".")[0]
            if top not in tops:
                tops.append(top)
        public = " ".join(f'<font color="#1d3f72">{t}</font>' for t in tops if not t.startswith("_"))
        internal = " ".join(f'<font color="#7d8896">{t}</font>' for t in tops if t.startswith("_"))
        shade = "#dfe9f7" if name == "the public Graph" else "#f4f7fb"
        rows.append(f'<tr><td align="left" bgcolor="{shade}"><b>{name}</b></td>'
                    f'<td align="left" bgcolor="{shade}">{public} {internal}</td></tr>')
    label = ('<<table border="0" cellborder="1" cellspacing="0" cellpadding="6" color="#c8d0db">'
             + "".join(rows) + "</table>>")
    dot = graphviz.Digraph("house", graph_attr={"fontname": "Helvetica"},
                           node_attr={"shape": "plain", "fontname": "Helvetica", "fontsize": "11"})
    dot.node("house", label)
    return dot


if __name__ == "__main__":
    print(table())
    if len(sys.argv) > 1:
        out = Path(sys.argv[1])
        out.write_bytes(diagram().pipe(format=out.suffix.lstrip(".")))
