# One command per job; CI (.ci/run) and people use the same ones.
PY ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install test test-fast lint format typecheck check demo bench clean

install:  ## create the venv and install the package with test extras
	$(PY) -m venv $(VENV) && $(BIN)/pip install -q -e '.[test,bench]'

test: install  ## the full suite (what CI runs)
	$(BIN)/python -m pytest

test-fast:  ## skip the end-to-end tests that start worker processes
	$(BIN)/python -m pytest -m "not slow"

lint:
	$(BIN)/ruff check worker tasks tests && $(BIN)/ruff format --check worker tasks tests

format:
	$(BIN)/ruff format worker tasks tests && $(BIN)/ruff check --fix worker tasks tests

typecheck:
	$(BIN)/mypy --strict worker tasks

check: lint typecheck test

demo:
	$(BIN)/imunban demo

bench:
	$(BIN)/imunban bench --plot docs/bench-drain.png

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
