# The two commands of the README's quick start: `make demo` and `make test`.
# Each one sets up what it needs (a virtualenv in .venv, the package and its
# extras) and then runs.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: test test-fast install clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall whenever the dependencies change.
$(VENV)/.test-deps: pyproject.toml | $(PY)
	$(PIP) install -e '.[test,interop]'
	touch $@

install: $(VENV)/.test-deps

test: $(VENV)/.test-deps
	$(PY) -m pytest

test-fast: $(VENV)/.test-deps
	$(PY) -m pytest -m "not slow"

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
