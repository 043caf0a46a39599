"""The package's layout: imports point only downward, and every module imports alone.

Layers, lowest first: helpers and registries <- nodes/synapse <- graph <-
(sequential, surgery) <- plan <- training <- the dask layer, with views,
files, statistics and the gradient check, then interop above, and the faces (the
scikit-learn estimators, the command line, the demo) on top. A module may
import from its own layer or any lower one at import time. The few imports
made inside functions (the Graph's delegating methods, the optional
libraries of the importers, the command line's lazy start-up) are not
import-time edges, so they cannot close a circle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "graphnet"

LAYERS = [
    {"_version", "_text", "_locks", "_registry", "errors", "checks", "files", "kernels", "backend", "_cuda",
     "_tabular", "_frames", "_gather"},
    {"activations", "losses", "initializers", "parameters", "schedules", "optimizers", "regularizers"},
    {"nodes", "synapse", "metrics", "layers"},
    {"structure", "_drawing", "_weights", "_delegating", "graph"},
    {"sequential", "surgery"},
    {"plan", "data", "inference", "_transforms", "preprocessing"},
    {"callbacks", "progress", "deferred", "training"},
    {"_dask", "_shards", "_cluster", "distributed"},
    {"summary", "render", "plots", "archive", "npz", "spec", "specfile", "saving", "statistics",
     "gradcheck", "overlays", "attributions", "render_html", "render_diff", "diff"},
    {"interop"},
    {"sklearn", "cli", "demo", "__init__"},
]


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts)


def _layer(module: str) -> int:
    top = module.split(".")[0]
    for i, layer in enumerate(LAYERS):
        if top in layer or module in layer:
            return i
    raise AssertionError(f"graphnet.{module} is in no layer of tests/test_layout.py; add it")


def _import_time_edges() -> list[tuple[str, str]]:
    """``(importer, imported)`` for every graphnet import run at import time
    (module level, ``try`` blocks included, ``if TYPE_CHECKING`` excluded)."""
    edges = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module(path)
        package = module.rsplit(".", 1)[0] if "." in module or path.name == "__init__.py" else ""
        if path.name == "__init__.py":
            package = module.removesuffix(".__init__").removesuffix("__init__")
        tree = ast.parse(path.read_text())
        stack = list(tree.body)
        while stack:
            node = stack.pop()
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, (ast.Try, ast.If)):
                stack.extend(node.body + node.orelse + getattr(node, "finalbody", []))
                for handler in getattr(node, "handlers", []):
                    stack.extend(handler.body)
            elif isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join([*base, *([node.module] if node.module else [])])
                names = [target] if node.module else [".".join([*base, a.name]) for a in node.names]
                edges.extend((module, name.strip(".")) for name in names if name.strip("."))
    return edges


def test_imports_point_only_downward():
    upward = [
        (a, b) for a, b in _import_time_edges()
        if _layer(b) > _layer(a) and not (a.endswith("__init__") and b.startswith(a.split(".")[0]))
    ]
    assert not upward, f"imports into a higher layer: {upward}"


def test_the_import_graph_has_no_circle():
    graph = nx.DiGraph()
    for a, b in _import_time_edges():
        a = a.removesuffix(".__init__")
        if a != b:
            graph.add_edge(a, b)
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, f"import circles: {cycles}"


@pytest.mark.slow
def test_every_module_imports_alone_in_a_fresh_interpreter():
    """Each module imports first in a process of its own (about 0.5 s each,
    since every one also imports the package: run side by side)."""
    modules = sorted(
        ("graphnet." + _module(p).removesuffix("__init__")).rstrip(".") for p in PACKAGE.rglob("*.py")
    )
    running = {
        m: subprocess.Popen([sys.executable, "-c", f"import {m}"], cwd=PACKAGE.parent,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for m in modules
    }
    failed = {m: p.communicate()[1].decode()[-300:] for m, p in running.items()}
    failed = {m: err for m, err in failed.items() if running[m].returncode}
    assert not failed, f"these modules fail to import on their own: {failed}"
