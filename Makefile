# The two commands of the README's quick start: `make demo` and `make test`.
# Each one sets up what it needs (a virtualenv in .venv, the package and its
# extras) and then runs.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: test test-fast install clean demo graphviz bench docs

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall whenever the dependencies change.
$(VENV)/.test-deps: pyproject.toml | $(PY)
	$(PIP) install -e '.[test,interop,dask]'
	touch $@

install: $(VENV)/.test-deps

# `make demo`: the project's main job (see `graphnet demo --help`; pass options
# with DEMO_ARGS="--epochs 10 --out results"). Writes demo-output/.
DEMO_ARGS ?=

$(VENV)/.demo-deps: pyproject.toml | $(PY)
	$(PIP) install -e '.[demo]'
	touch $@

demo: $(VENV)/.demo-deps graphviz
	$(VENV)/bin/graphnet demo $(DEMO_ARGS)

# Graphviz's `dot` draws the diagrams: installed with apt-get when missing and
# running as root; otherwise the exact command is printed and make stops.
graphviz:
	@command -v dot >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Graphviz's dot program is missing: installing the graphviz package with apt-get"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q graphviz; \
	  else \
	    echo "Graphviz's dot program is missing; install it, then run make again:" >&2; \
	    echo "    sudo apt-get install -y graphviz" >&2; \
	    exit 1; \
	  fi; }

test: $(VENV)/.test-deps
	$(PY) -m pytest

test-fast: $(VENV)/.test-deps
	$(PY) -m pytest -m "not slow"

# The speed suite and the quality panel (not part of `make test`): write
# benchmarks/results/latest.md/.json and quality.md/.json, and print both tables.
$(VENV)/.bench-deps: pyproject.toml | $(PY)
	$(PIP) install -e '.[bench]'
	touch $@

bench: $(VENV)/.bench-deps
	$(PY) -m benchmarks
	KERAS_BACKEND=torch $(PY) -m benchmarks.quality

# The documentation site (Sphinx, numpydoc, the PyData theme; see docs/about-these-docs.md):
# built from scratch into site/, every warning an error. Open site/index.html.
$(VENV)/.docs-deps: pyproject.toml | $(PY)
	$(PIP) install -e '.[docs]'
	touch $@

docs: $(VENV)/.docs-deps graphviz
	rm -rf site build/doctrees
	$(VENV)/bin/sphinx-build -W --keep-going -E -q -b html -d build/doctrees docs site
	@echo "The site is in site/ (open site/index.html)"

clean:
	rm -rf $(VENV) build site *.egg-info .pytest_cache docs/_generated docs/api/*.rst
