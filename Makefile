# `make run`: create the virtualenv, install, start the daemon on config/aggregator.yaml
#             (http://127.0.0.1:8080/).
# `make test`: the same set-up with the test extras, then ruff, mypy and the whole test suite.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= config/aggregator.yaml

CHROMIUM ?= /usr/bin/chromium

.PHONY: run test lint typecheck pytest install clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall whenever pyproject.toml or the MinHash kernel (built at install) changes.
$(VENV)/.installed: pyproject.toml aggregator/dedupe/_kernel.c | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# Bytecode written ahead, as pip does for a package it installs (this one is installed editable):
# a `run --once` or a CLI command then starts without compiling the package, also where Python
# may not write its cache (PYTHONDONTWRITEBYTECODE, a read-only checkout). Up-to-date files are
# skipped; an edited one is compiled again here, or in memory by Python until the next install.
install: $(VENV)/.installed
	$(BIN)/python -m compileall -q aggregator

run: install
	$(BIN)/aggregator --config $(CONFIG) run

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy aggregator tests

# The index.html test renders the page in Debian's headless Chromium (CJK font for the tags).
chromium:
	@test -x $(CHROMIUM) || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends chromium fonts-wqy-zenhei; }

# One worker per core: most of the suite waits on real servers, subprocesses and daemons, and
# other tests' work fills those waits (timings: benchmarks/README.md, "The test suite"). A
# file's tests stay together, in order, on one worker, so its module fixtures (a pass over the
# whole real-world corpus) run once.
pytest: install chromium
	$(BIN)/pytest -q -n auto --dist loadfile

test: lint typecheck pytest

clean:
	rm -rf $(VENV) var public .mypy_cache .pytest_cache .ruff_cache
