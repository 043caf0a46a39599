"""The generated parts of graphnet's site, written when Sphinx starts a build.

- ``api/*.rst``: one page per group of public names. Every name in
  ``graphnet.__all__`` must be on one of them (directly, or as a member of a
  documented module's ``__all__``): a name left out stops the build.
- ``_generated/registry-*.md`` and ``callbacks.md``: the names each family
  (activations, losses, metrics, ...) takes and every callback, with their
  arguments and the first sentence of their docstrings, read from the
  registries, so a new entry is listed without editing a page.
- ``_generated/house.md`` and ``house.svg``: the floors of the house, by
  ``docs/scripts/house.py`` from ``tests/test_layout.py``.
- ``_generated/bench-*.md``: the benchmark and quality tables, rendered from
  ``benchmarks/results/*.json`` by the benchmarks' own ``markdown`` functions
  (the same text ``make bench`` writes beside them).

Everything generated is ignored by git; a file is rewritten only when its text
changes, so Sphinx re-reads only what changed.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import sys
from pathlib import Path

from sphinx.errors import ExtensionError

DOCS = Path(__file__).resolve().parents[1]
ROOT = DOCS.parent
GENERATED = DOCS / "_generated"
API = DOCS / "api"

#: The methods Graph inherits that the house's modules use on a graph (its
#: plumbing, documented in the code); left out of the users' reference.
GRAPH_PLUMBING = [
    "acyclic_promised", "assign_first_values", "changed", "compiled", "device_seed", "keep_compiled_loss",
    "materialize", "pairing_problems", "rebuild", "replace", "resolve", "structure", "synapse_or_none",
    "add_node", "astype", "plan", "parameters", "backend", "kind", "rng", "init_rng", "device_rng",
    "default_metrics", "version", "lock",
]

#: scikit-learn's metadata-routing setters, documented by scikit-learn.
SKLEARN_ROUTING = "set_fit_request, set_partial_fit_request, set_predict_request, set_score_request"

#: The API pages: (file, title, intro, entries). An entry is ("class" | "function" |
#: "exception" | "module", dotted path, options).
PAGES = [
    ("graph", "Graph", "The public class: build, run, train, reshape, save and draw a graph. Every verb "
     "is written once, in the module that does the work, and taken by `Graph` as a method; its "
     "parameters below come from that function's docstring.",
     [("class", "graphnet.Graph", {"members": None, "inherited-members": None,
                                   "exclude-members": ", ".join(GRAPH_PLUMBING)})]),
    ("sequential", "Sequential and Dense", "The linear special case: a list of layers.",
     [("class", "graphnet.Sequential", {"members": None}),
      ("class", "graphnet.Dense", {"members": None})]),
    ("nodes", "Nodes and synapses", "What a graph is made of; `g[name]` and `g.synapse(src, dst)` return them.",
     [("class", "graphnet.Node", {"members": None}),
      ("class", "graphnet.Input", {"members": None}),
      ("class", "graphnet.Hidden", {"members": None}),
      ("class", "graphnet.Output", {"members": None}),
      ("class", "graphnet.Synapse", {"members": None})]),
    ("functions", "Functions", "Loading, registering custom parts, comparing graphs, checking gradients, "
     "plotting, and importing models from other libraries.",
     [("function", "graphnet.load", {}),
      ("function", "graphnet.register", {}),
      ("function", "graphnet.diff", {}),
      ("function", "graphnet.check_gradients", {}),
      ("function", "graphnet.plot_history", {}),
      ("function", "graphnet.from_keras", {}),
      ("function", "graphnet.from_torch", {}),
      ("function", "graphnet.from_onnx", {}),
      ("function", "graphnet.from_sklearn", {})]),
    ("reports", "Reports", "What the verbs above return: training histories, statistics, diffs, "
     "attributions, the compiled forward of `compile_predict`, and the reports of the gradient check "
     "and of `transfer_weights`.",
     [("class", "graphnet.History", {"members": None}),
      ("class", "graphnet.Statistics", {"members": None}),
      ("class", "graphnet.GradientReport", {"members": None}),
      ("class", "graphnet.GraphDiff", {"members": None}),
      ("class", "graphnet.Attributions", {"members": None}),
      ("class", "graphnet.TransferReport", {"members": None}),
      ("class", "graphnet.CompiledPredict", {"members": None, "special-members": "__call__"})]),
    ("errors", "Errors", "Every error graphnet raises is a `GraphError` (itself a `ValueError`); "
     "all of them are in the top-level namespace.",
     [("exception", f"graphnet.{name}", {}) for name in (
         "GraphError", "CycleError", "NotFoundError", "ShapeError", "TrainingError", "ModelFileError",
         "RenderError", "ModelImportError")]),
    ("callbacks", "graphnet.callbacks", "", [("module", "graphnet.callbacks", {"exclude-members": "History"})]),
    ("activations", "graphnet.activations", "", [("module", "graphnet.activations", {})]),
    ("losses", "graphnet.losses", "", [("module", "graphnet.losses", {})]),
    ("metrics", "graphnet.metrics", "", [("module", "graphnet.metrics", {})]),
    ("optimizers", "graphnet.optimizers", "", [("module", "graphnet.optimizers", {})]),
    ("schedules", "graphnet.schedules", "", [("module", "graphnet.schedules", {})]),
    ("regularizers", "graphnet.regularizers", "", [("module", "graphnet.regularizers", {})]),
    ("initializers", "graphnet.initializers", "", [("module", "graphnet.initializers", {})]),
    ("sklearn", "graphnet.sklearn", "", [("module", "graphnet.sklearn", {"exclude-members": SKLEARN_ROUTING})]),
    ("distributed", "graphnet.distributed", "", [("module", "graphnet.distributed", {})]),
]


def _resolve(kind: str, path: str):
    if kind == "module":
        return importlib.import_module(path)
    module, _, attr = path.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def _page(title: str, intro: str, entries) -> str:
    lines = [title, "=" * len(title), ""]
    if intro:
        lines += [intro.replace("`", "``"), ""]
    for kind, path, options in entries:
        if kind == "module":
            lines += [f".. automodule:: {path}", "   :members:", "   :show-inheritance:"]
            lines += [f"   :{key}:" + (f" {value}" if value else "") for key, value in options.items()]
            lines.append("")
            continue
        directive = {"class": "autoclass", "function": "autofunction", "exception": "autoexception"}[kind]
        lines.append(f".. {directive}:: {path}")
        for key, value in options.items():
            lines.append(f"   :{key}:" + (f" {value}" if value else ""))
        lines.append("")
    return "\n".join(lines)


def documented() -> set[int]:
    """The ids of every object the API pages document."""
    ids = set()
    for _, _, _, entries in PAGES:
        for kind, path, _ in entries:
            obj = _resolve(kind, path)
            ids.add(id(obj))
            if kind == "module":
                ids.update(id(getattr(obj, name)) for name in getattr(obj, "__all__", ()))
    return ids


def missing_names() -> list[str]:
    """Names of ``graphnet.__all__`` that no API page documents."""
    import graphnet

    ids = documented()
    return [name for name in graphnet.__all__ if name != "__version__" and id(getattr(graphnet, name)) not in ids]


ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj):`~?([^`]+)`")


def plain_roles(text: str) -> str:
    """reStructuredText roles (``:class:`~a.B```) as Markdown code (`` `B` ``),
    for docstring lines shown in the generated Markdown tables."""
    return ROLE.sub(lambda m: "`" + (m[1].rsplit(".", 1)[-1] if m[0].count("~") else m[1]) + "`", text)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def write_api() -> None:
    missing = missing_names()
    if missing:
        raise ExtensionError("docs/_ext/graphnet_docs.py: these names of graphnet.__all__ are on no API page: "
                             + ", ".join(missing) + "; add them to PAGES")
    for stem, title, intro, entries in PAGES:
        _write(API / f"{stem}.rst", _page(title, intro, entries))
    stale = {p.stem for p in API.glob("*.rst")} - {stem for stem, *_ in PAGES}
    for stem in stale:
        (API / f"{stem}.rst").unlink()


def write_house() -> None:
    sys.path.insert(0, str(DOCS / "scripts"))
    import house

    _write(GENERATED / "house.md", plain_roles(house.table()) + "\n")
    svg = house.diagram().pipe(format="svg").decode()
    _write(GENERATED / "house.svg", svg)


def _demote(markdown: str, by: int = 1) -> str:
    """The report without its title, its headings ``by`` levels lower."""
    lines = markdown.splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return "\n".join(("#" * by + line) if re.match(r"#+ ", line) else line for line in lines).strip() + "\n"


def write_benchmarks() -> None:
    sys.path.insert(0, str(ROOT))
    from benchmarks import distributed, quality, report, tables

    for path in sorted((ROOT / "benchmarks" / "results").glob("*.json")):
        data = json.loads(path.read_text())
        module = (report if "sgemm" in data else distributed if "cluster" in data
                  else tables if "embedding" in data else quality)
        _write(GENERATED / f"bench-{path.stem}.md", _demote(module.markdown(data)))


#: The registries the guide lists: (file stem, module, registry name).
REGISTRIES = [
    ("activations", "graphnet.activations", "ACTIVATIONS"),
    ("losses", "graphnet.losses", "LOSSES"),
    ("metrics", "graphnet.metrics", "METRICS"),
    ("optimizers", "graphnet.optimizers", "OPTIMIZERS"),
    ("schedules", "graphnet.schedules", "SCHEDULES"),
    ("regularizers", "graphnet.regularizers", "REGULARIZERS"),
    ("initializers", "graphnet.initializers", "INITIALIZERS"),
]


def _summary(obj) -> str:
    """The first sentence of a docstring, on one line, with its table pipes escaped."""
    own = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
    if not own:  # a class without a docstring of its own: its name, in words
        words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", obj.__name__).lower()
        return words[:1].upper() + words[1:] + "."
    doc = inspect.cleandoc(own)
    first = doc.split("\n\n")[0].replace("\n", " ").strip()
    return plain_roles(first).replace("|", "\\|")


def _signature(cls_or_function) -> str:
    if inspect.isclass(cls_or_function) and cls_or_function.__init__ is object.__init__:
        return "()"
    try:
        target = cls_or_function.__init__ if inspect.isclass(cls_or_function) else cls_or_function
        parameters = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return ""
    if inspect.isclass(cls_or_function) or (parameters and parameters[0].name == "self"):
        parameters = parameters[1:]
    shown = []
    for p in parameters:
        if p.kind is p.VAR_KEYWORD:
            shown.append(f"**{p.name}")
        elif p.kind is p.VAR_POSITIONAL:
            shown.append(f"*{p.name}")
        elif p.default is p.empty:
            shown.append(p.name)
        else:
            shown.append(f"{p.name}={p.default!r}")
    return "(" + ", ".join(shown) + ")"


def registry_table(module_name: str, registry: str) -> str:
    """The names a family takes, each with its class (or function), arguments and summary."""
    module = importlib.import_module(module_name)
    lines = ["| name | class | arguments | what it is |", "|---|---|---|---|"]
    for name, obj in getattr(module, registry).items():
        role = "py:class" if inspect.isclass(obj) else "py:func"
        path = f"{obj.__module__}.{obj.__qualname__}"
        arguments = _signature(obj).replace("|", "\\|")
        lines.append(f"| `{name}` | {{{role}}}`~{path}` | `{arguments}` | {_summary(obj)} |")
    return "\n".join(lines) + "\n"


def callbacks_table() -> str:
    """Every callback of ``graphnet.callbacks`` with its arguments and summary."""
    from graphnet import callbacks

    lines = ["| callback | arguments | what it does |", "|---|---|---|"]
    for name in callbacks.__all__:
        obj = getattr(callbacks, name)
        arguments = _signature(obj).replace("|", "\\|")
        lines.append(f"| {{py:class}}`~graphnet.callbacks.{name}` | `{arguments}` | {_summary(obj)} |")
    return "\n".join(lines) + "\n"


def write_tables() -> None:
    for stem, module, registry in REGISTRIES:
        _write(GENERATED / f"registry-{stem}.md", registry_table(module, registry))
    _write(GENERATED / "callbacks.md", callbacks_table())


def generate(app) -> None:
    write_api()
    write_tables()
    write_house()
    write_benchmarks()


def setup(app):
    app.connect("builder-inited", generate)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
