# Every target that needs the provider installs it first into .venv (created if missing).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install test lint demo sandbox bench clean

$(INSTALLED): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $(INSTALLED)

install: $(INSTALLED)

test: install
	$(BIN)/ruff check airflow_provider_rewards tests dags bench
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check airflow_provider_rewards tests dags bench
	$(BIN)/ruff format --check airflow_provider_rewards tests dags bench

demo: install
	$(BIN)/python -m airflow_provider_rewards.demo

sandbox: install
	$(BIN)/rewards-sandbox --seed-demo

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist *.egg-info
