# One command per job; CI (.ci/run) and people use the same ones.
PY ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
SOURCES = worker tasks tests

.PHONY: install test test-fast lint format typecheck check demo bench constraints clean

# The venv, made on first use; `make install` refreshes it after pyproject.toml changes.
$(BIN)/python:
	$(PY) -m venv $(VENV) && $(BIN)/pip install -q -e '.[test]'

install:  ## create or refresh the venv: the package, its test tools, ruff, mypy, import-linter
	$(PY) -m venv $(VENV) && $(BIN)/pip install -q -e '.[test]'

# pytest exits 5 when it collected no test: that fails the target like any other non-zero status.
define pytest
	$(BIN)/python -m pytest $(1) || { status=$$?; \
	  if [ $$status -eq 5 ]; then echo "pytest collected no tests: that is a failure, not a pass" >&2; fi; \
	  exit $$status; }
endef

test: $(BIN)/python  ## every tier: unit, redis, integration, e2e, repo
	$(call pytest,)

test-fast: $(BIN)/python  ## the unit and redis tiers (under a minute)
	$(call pytest,-m "unit or redis")

lint: $(BIN)/python  ## ruff (lint and format) and the import-linter contracts in pyproject.toml
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/lint-imports

format: $(BIN)/python
	$(BIN)/ruff format $(SOURCES) && $(BIN)/ruff check --fix $(SOURCES)

typecheck: $(BIN)/python  ## mypy --strict on the packages named in pyproject.toml
	$(BIN)/mypy --strict

check: lint typecheck test  ## what CI runs (the README's test command)

demo: $(BIN)/python
	$(BIN)/imunban demo

bench: $(BIN)/python
	$(BIN)/imunban bench --plot docs/bench-drain.png

# The image's pinned dependencies (the Dockerfile installs with --constraint constraints.txt); run after changing
# [project] dependencies in pyproject.toml. Needs uv (`pip install uv`); tests/repo/test_constraints.py checks it.
constraints:
	uv pip compile pyproject.toml --python-version 3.11 --python-platform linux --annotation-style line \
	  --custom-compile-command "make constraints" -o constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .grimp_cache *.egg-info
