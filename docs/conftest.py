"""Run the code blocks of the site's Markdown pages, so the pages cannot drift from the code.

Every fenced block of a page under ``docs/`` is a test item, run in order in
one namespace per page (a page reads like a notebook: a later block may use
what an earlier one made), in a fresh temporary folder per page:

- ```` ```python ````: executed; a traceback points at the page's own line.
- ```` ```pycon ````: ``>>>`` examples run by doctest in the same namespace, their
  printed output compared (``...`` matches anything, whitespace is normalised).
- ```` ```sh ````: run by bash in the page's folder, the virtualenv's ``bin`` first
  on ``PATH`` (so ``graphnet`` is this checkout's command); it must exit 0.
- any other language (``text``, ``none``, ...): shown, never run: output.

An HTML comment on the line before a fence (invisible on the site) changes that:
``<!-- notest: why -->`` shows a block without running it (the reason is
required, and is reported as the skip reason); ``<!-- slow -->`` marks it
``slow`` (``make test-fast`` leaves it out). Once a block of a page fails, the
page's later blocks are skipped, naming the block that failed.
"""

from __future__ import annotations

import doctest
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import traceback
from pathlib import Path

import pytest

#: Not pages: Sphinx's configuration and extension, the house script, the generated parts.
collect_ignore = ["conf.py", "_ext", "scripts", "_generated", "api"]

FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
MARKER = re.compile(r"^\s*<!--\s*(?P<word>notest|slow)\s*(?::\s*(?P<reason>.*?))?\s*-->\s*$")
RUN = {"python", "pycon", "sh"}
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# Figures drawn by a page go to files; no display is needed.
os.environ.setdefault("MPLBACKEND", "Agg")


def blocks(text: str) -> list[dict]:
    """The fenced blocks of a Markdown text: language, code, first code line (1-based), markers."""
    found, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence = len(match["indent"]), match["fence"]
        language = (match["info"].strip().split() or [""])[0].strip("{}")
        marker = MARKER.match(lines[i - 1]) if i else None
        start, body = i + 2, []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            line = lines[i]
            body.append(line[indent:] if line[:indent].strip() == "" else line.lstrip())
            i += 1
        found.append({"language": language, "code": "\n".join(body) + "\n", "line": start,
                      "marker": marker["word"] if marker else None,
                      "reason": (marker["reason"] or "") if marker else ""})
        i += 1
    return found


def pytest_collect_file(parent, file_path: Path):
    if file_path.suffix == ".md":
        return Page.from_parent(parent, path=file_path)
    return None


class Page(pytest.File):
    """One Markdown page: its runnable blocks, sharing a namespace and a folder."""

    def collect(self):
        self.namespace: dict = {"__name__": f"docs.{self.path.stem}"}
        self.folder: Path | None = None
        self.failed: int | None = None
        self.missing: str | None = None  # why the rest of the page is skipped: a package it imports is missing
        for block in blocks(self.path.read_text()):
            if block["language"] not in RUN:
                continue
            if block["marker"] == "notest" and not block["reason"]:
                raise pytest.UsageError(f"{self.path}:{block['line'] - 1}: <!-- notest --> needs a reason: "
                                        "<!-- notest: why -->")
            item = Block.from_parent(self, name=f"line {block['line']}", block=block)
            if block["marker"] == "slow":
                item.add_marker(pytest.mark.slow)
            yield item


class BlockFailed(Exception):
    """A block's failure, with the text to show instead of pytest's traceback."""


#: The top-level modules of graphnet's optional packages, by the extra that installs them
#: (`make test` installs them all: there every block runs).
OPTIONAL = {"torch": "interop", "keras": "interop", "onnx": "interop", "onnxruntime": "interop",
            "onnxscript": "interop", "skl2onnx": "interop", "h5py": "interop", "sklearn": "sklearn",
            "pandas": "tables", "polars": "test", "matplotlib": "plot", "yaml": "yaml", "dask": "dask",
            "distributed": "dask", "optuna": "search", "tensorboardX": "tensorboard", "tensorboard": "test",
            "captum": "test", "cupy": "cuda"}
IMPORT = re.compile(r"^\s*(?:>>>\s*|\.\.\.\s*)?(?:from\s+(\w+)|import\s+([\w.]+(?:\s+as\s+\w+)?"
                    r"(?:\s*,\s*[\w.]+(?:\s+as\s+\w+)?)*))", re.MULTILINE)


def missing_optional(code: str) -> str | None:
    """The first optional package that ``code`` imports (``import x``, ``from x
    import``, in a pycon block too) and that is not installed, or None. A
    package that is installed is not skipped for: a misspelt module in it fails."""
    for match in IMPORT.finditer(code):
        modules = [match[1]] if match[1] else [name.split()[0] for name in match[2].split(",")]
        for top in (module.partition(".")[0] for module in modules):
            if top in OPTIONAL and importlib.util.find_spec(top) is None:
                return top
    return None


class Block(pytest.Item):
    def __init__(self, *, block: dict, **kwargs):
        super().__init__(**kwargs)
        self.block = block

    def reportinfo(self):
        return self.path, self.block["line"] - 1, f"{self.path.name}:{self.block['line']} ({self.block['language']})"

    def setup(self):
        page = self.parent
        if self.block["marker"] == "notest":
            pytest.skip(f"not run: {self.block['reason']}")
        if page.failed is not None:
            pytest.skip(f"the block at line {page.failed} of this page failed")
        missing = page.missing is None and missing_optional(self.block["code"])
        if missing:
            page.missing = (f"the block at line {self.block['line']} imports {missing}, from graphnet's "
                            f"{OPTIONAL[missing]!r} extra, which is not installed (as tests skip without it)")
        if page.missing is not None:
            pytest.skip(page.missing)
        if page.folder is None:
            page.folder = Path(tempfile.mkdtemp(prefix=f"graphnet-docs-{self.path.stem}-"))
            self.config.add_cleanup(lambda: shutil.rmtree(page.folder, ignore_errors=True))

    def runtest(self):
        page, block = self.parent, self.block
        before = Path.cwd()
        os.chdir(page.folder)
        try:
            getattr(self, f"_run_{block['language']}")(page.namespace, block)
        except BaseException:
            page.failed = block["line"]
            raise
        finally:
            os.chdir(before)

    def _run_python(self, namespace: dict, block: dict) -> None:
        # Padding with blank lines makes the traceback's line numbers the page's.
        try:
            exec(compile("\n" * (block["line"] - 1) + block["code"], str(self.path), "exec"), namespace)
        except Exception:
            frames = traceback.format_exc().split("\n", 3)[-1]
            raise BlockFailed(f"{self.path.name}:{block['line']}: the block raised\n{frames}") from None

    def _run_pycon(self, namespace: dict, block: dict) -> None:
        test = doctest.DocTestParser().get_doctest(block["code"], namespace, self.name, str(self.path),
                                                   block["line"] - 1)
        out: list[str] = []
        runner = doctest.DocTestRunner(optionflags=FLAGS)
        result = runner.run(test, out=out.append, clear_globs=False)
        if result.failed:
            raise BlockFailed("".join(out))

    def _run_sh(self, namespace: dict, block: dict) -> None:
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                   MPLBACKEND="Agg", PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                                 os.environ.get("PYTHONPATH", "")]))
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", block["code"]], capture_output=True, text=True,
                              env=env, timeout=300)
        if done.returncode:
            raise BlockFailed(f"{self.path.name}:{block['line']}: exit status {done.returncode}\n"
                              + textwrap.indent(block["code"], "$ ") + done.stdout + done.stderr)

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, BlockFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo)
