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
