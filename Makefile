# Every target that needs the provider installs it first into .venv (created if missing).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install test lint demo sandbox bench chaos screenshots clean

# The sandbox is its own distribution (sandbox/), installed from this checkout, never from an index.
$(INSTALLED): pyproject.toml sandbox/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]" -e ./sandbox
	@touch $(INSTALLED)

install: $(INSTALLED)

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

demo: install
	$(BIN)/python -m rewards_sandbox.demo

sandbox: install
	$(BIN)/rewards-sandbox --seed-demo

# Benchmarks against what users write today; BENCH_QUICK=1 for a run of about a minute.
bench: install
	$(BIN)/python -m pip install --quiet -e ".[test,bench]" -e ./sandbox
	$(BIN)/python bench/run_all.py

# The long chaos run: the teardown DAG under injected faults over CHAOS_SEEDS seeds (make test runs a short one).
CHAOS_SEEDS ?= 10
chaos: install
	CHAOS_SEEDS=$(CHAOS_SEEDS) $(BIN)/python -m pytest tests/chaos -m chaos -q

# PNGs of the connection forms and the teardown graph under docs/img/ (needs Debian's chromium).
screenshots: install
	$(BIN)/python -m pip install --quiet -e ".[test,screenshots]" -e ./sandbox
	$(BIN)/python docs/screenshots.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist *.egg-info
