"""The package's layout: the floors of the house, read from the code itself.

Floors, lowest first: helpers; the backend; the maths (activations, losses,
initializers, optimizers, ...); the parts (nodes, synapses, layers); the
structure and the network; running; training and seeing inside; specs,
files and pictures; interop; the public ``Graph``; ``Sequential``; the
faces (the scikit-learn estimators, the command line, the demo). Every
import points to its own floor or a lower one, imports inside functions
included (only optional third-party packages may be imported there), the
import graph has no circle, no module reads another module's private
names, and no module is over 500 lines.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "graphnet"

#: The floors of the house, lowest first: (what they hold, their modules).
FLOORS = [
    ("helpers", {"_version", "errors", "_text", "_locks", "_files", "_kernels", "_progress", "_device_guard",
                 "_measures"}),
    ("validation and files", {"_array_likes", "_registry", "_protocols", "_settings", "_validation", "_archive",
                              "_npz", "_topology", "_tables", "_tabular", "_frames"}),
    ("arrays", {"backend", "_cuda", "_parameters"}),
    ("the maths", {"activations", "losses", "initializers", "regularizers", "schedules", "_state_layout",
                   "_hyperparameters", "_optimizer_state", "optimizers"}),
    ("parts", {"_member", "_node", "_input", "nodes", "synapse", "layers", "metrics"}),
    ("structure and network", {"_graph_settings", "structure", "_lazy_init", "network", "weights"}),
    ("running", {"workspace", "_gather", "_dense_step", "plan", "_compiled_forward", "_transforms", "_data",
                 "_row_weights", "_lazy", "_generators", "inference", "preprocessing", "_dask", "callbacks", "serving"}),
    ("training and seeing inside", {"trainer", "training", "_compile", "statistics", "gradient_check", "attributions",
                                    "surgery", "_collective", "_costs", "_shards", "_rank", "_handlers",
                                    "_cluster", "_steps"}),
    ("specs, files and pictures", {"spec", "specfile", "_training_file", "saving", "weight_files", "summary",
                                   "_overlays", "_dot_text", "_render_options", "render", "render_html",
                                   "render_diff", "diff", "plots"}),
    ("interop", {"interop"}),
    ("the public Graph", {"graph"}),
    ("Sequential", {"sequential"}),
    ("faces", {"sklearn", "_cli_args", "cli", "__main__", "demo", "_search", "distributed", "__init__"}),
]

#: The only packages a function may import (optional extras, imported when used).
OPTIONAL = {"torch", "keras", "onnx", "onnxruntime", "onnxscript", "h5py", "dask", "distributed", "cupy",
            "cupyx", "matplotlib", "yaml", "pandas", "polars", "numba", "sklearn", "skl2onnx", "tensorboardX",
            "tensorboard", "optuna"}

LIMIT = 500


def _modules() -> dict[str, Path]:
    return {".".join(p.relative_to(PACKAGE).with_suffix("").parts): p for p in sorted(PACKAGE.rglob("*.py"))}


def _floor(module: str) -> int:
    top = module.split(".")[0]
    for i, (_, floor) in enumerate(FLOORS):
        if top in floor or module in floor:
            return i
    raise AssertionError(f"graphnet.{module} is on no floor of tests/test_layout.py; add it")


def _type_checking(tree: ast.AST) -> set[int]:
    """The ids of every node under an ``if TYPE_CHECKING:`` block."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for child in ast.walk(node))
    return skipped


def _imports(module: str, path: Path) -> list[tuple[str, bool]]:
    """``(imported graphnet module, inside a function)`` for every graphnet
    import that runs (``if TYPE_CHECKING`` excluded)."""
    package = module.removesuffix(".__init__") if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    skipped, found = _type_checking(tree), []
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))]
    inside = {id(child) for f in functions for child in ast.walk(f) if child is not f}
    for node in ast.walk(tree):
        if id(node) in skipped or not isinstance(node, ast.ImportFrom) or not node.level:
            continue
        base = package.split(".") if package and package != "__init__" else []
        base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
        target = ".".join([*base, *([node.module] if node.module else [])])
        names = [target] if node.module else [".".join([*base, a.name]) for a in node.names]
        found += [(name.strip("."), id(node) in inside) for name in names if name.strip(".")]
    return found


def _edges() -> list[tuple[str, str]]:
    return [(module, target) for module, path in _modules().items() for target, _ in _imports(module, path)]


def test_every_import_points_to_its_floor_or_below():
    upward = [(a, b) for a, b in _edges() if _floor(b) > _floor(a)]
    assert not upward, f"imports into a higher floor: {upward}"


def test_the_import_graph_has_no_circle():
    graph = nx.DiGraph()
    for a, b in _edges():
        a, b = a.removesuffix(".__init__"), b.removesuffix(".__init__")
        if a != b and not a.startswith(b + "."):  # a package's modules may use its __init__'s names
            graph.add_edge(a, b)
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, f"import circles: {cycles}"


def test_functions_import_only_optional_packages():
    """An import inside a function is still an arrow between modules: only the
    optional third-party packages, imported when a feature is used, may be."""
    found = []
    for module, path in _modules().items():
        tree = ast.parse(path.read_text())
        skipped = _type_checking(tree)
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if id(node) in skipped:
                    continue
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = ["." * node.level + (node.module or "")]
                else:
                    continue
                found += [f"{module}.{function.name}: {n}" for n in names if n.split(".")[0] not in OPTIONAL]
    assert not found, f"imports inside functions: {sorted(set(found))}"


def _own_names(tree: ast.AST) -> set[str]:
    """The private names a module defines: functions, classes, class fields,
    attributes it assigns (``self._x = ...``, ``obj._x = ...``) and module globals."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def test_no_module_reads_another_modules_private_names():
    """``obj._x`` is read only where ``_x`` is defined (or on ``self``/``cls``,
    a class's own fields and those it inherits): the modules between the
    graph and its verbs go through public methods."""
    found = []
    for module, path in _modules().items():
        tree = ast.parse(path.read_text())
        own = _own_names(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute) or not node.attr.startswith("_") or node.attr.startswith("__"):
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls", "super"):
                continue
            if isinstance(node.value, ast.Call) and ast.unparse(node.value.func) == "super":
                continue
            if node.attr in own:
                continue
            found.append(f"{module}:{node.lineno}: {ast.unparse(node)}")
        for node in ast.walk(tree):  # from .nodes import _helper: a private name of another module
            if isinstance(node, ast.ImportFrom) and node.level and node.module:
                folder = path.parent if node.level == 1 else path.parents[node.level - 1]
                for alias in node.names:
                    is_module = (folder / node.module.replace(".", "/") / f"{alias.name}.py").exists()
                    if alias.name.startswith("_") and not alias.name.startswith("__") and not is_module:
                        found.append(f"{module}:{node.lineno}: from {node.module} import {alias.name}")
    assert not found, "private names read from other modules:\n" + "\n".join(found)


def test_no_module_is_over_500_lines():
    long = {m: n for m, p in _modules().items() if (n := len(p.read_text().splitlines())) > LIMIT}
    assert not long, f"modules over {LIMIT} lines: {long}"


def _top_level_names(tree: ast.Module) -> set[str]:
    """What a module's top level defines, assigns or imports (inside ``if`` and ``try`` too)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def test_every_name_in_every_all_is_there():
    """``from graphnet.X import *`` raises AttributeError for a name in
    ``__all__`` that the module does not have."""
    missing = {}
    for module, path in _modules().items():
        tree = ast.parse(path.read_text())
        listed = [
            elt.value for node in tree.body if isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
            for elt in node.value.elts
        ]
        absent = set(listed) - _top_level_names(tree)
        if module.endswith("__init__"):  # a package also has its submodules
            absent -= {p.stem for p in path.parent.iterdir()} | {p.name for p in path.parent.iterdir() if p.is_dir()}
        if absent:
            missing[module] = sorted(absent)
    assert not missing, f"named in __all__ but not in the module: {missing}"


@pytest.mark.slow
def test_every_module_imports_alone_in_a_fresh_interpreter():
    """Each module imports first in a process of its own (about 0.5 s each,
    since every one also imports the package: run side by side)."""
    modules = sorted(("graphnet." + m.removesuffix("__init__")).rstrip(".") for m in _modules())
    running = {
        m: subprocess.Popen([sys.executable, "-c", f"import {m}"], cwd=PACKAGE.parent,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for m in modules
    }
    failed = {m: p.communicate()[1].decode()[-300:] for m, p in running.items()}
    failed = {m: err for m, err in failed.items() if running[m].returncode}
    assert not failed, f"these modules fail to import on their own: {failed}"
