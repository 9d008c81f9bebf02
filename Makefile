# mdsync: the two commands that matter are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Every Python folder: the app, the local tooling, the simulators and the tests.
LINT_PATHS := function_app.py functions shared mdsync simulators tests

.PHONY: setup test lint format demo bench chaos simulate devhost screenshots chromium azurite clean

setup: $(VENV)/.installed

# The Azure Functions Python worker (azure-functions-runtime) lets the local host index the app
# with the worker's own checks. It is published for Python 3.13+ only; its indexing code is the
# 3.11 worker's, hence --ignore-requires-python. Development only: never in requirements.txt.
WORKER := azure-functions-runtime==1.3.0

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]' --config-settings editable_mode=compat
	$(PY) -m pip install --quiet --no-deps --ignore-requires-python '$(WORKER)'
	touch $@

# The pinned Azurite (mdsync/azurite.py says why), installed when another version or none is.
azurite: setup
	$(PY) -m mdsync.azurite

# Debian's chromium for the console's browser tests (Playwright drives it; it downloads none).
chromium:
	bash .ci/ensure-chromium

# Lint first: CI runs `make test`, so the lint gate is part of it.
test: lint azurite chromium
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy

format: setup
	$(VENV)/bin/ruff format $(LINT_PATHS)
	$(VENV)/bin/ruff check --fix $(LINT_PATHS)

demo: setup
	$(VENV)/bin/mdsync demo

bench: setup
	$(VENV)/bin/mdsync bench $(if $(QUICK),--quick,)
	$(VENV)/bin/python -m mdsync.bench.backfill --records $(if $(QUICK),50000,1000000) --output bench/backfill.json

chaos: setup
	$(VENV)/bin/mdsync chaos $(if $(SEED),--seed $(SEED),) $(if $(SCENARIOS),--scenarios $(SCENARIOS),)

# The console's screenshots in docs/images/, taken in headless Chromium from a staged local system.
screenshots: setup chromium
	$(PY) -m tests.console.screenshots docs/images

simulate: setup
	$(VENV)/bin/mdsync simulate

devhost: setup
	$(VENV)/bin/mdsync devhost

clean:
	rm -rf $(VENV) .mdsync node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis
