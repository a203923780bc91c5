# Every target that needs the provider installs it first into .venv (created if missing).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# Pinned versions derived from a venv at that Airflow version (see each file's header); CONSTRAINTS= disables.
CONSTRAINTS ?= constraints/constraints-3.3.txt
CONSTRAINT_ARG := $(if $(CONSTRAINTS),-c $(CONSTRAINTS),)
FLOOR_AIRFLOW ?= 3.2.0
FLOOR_VENV ?= .venv-floor
UNIT_TESTS := tests/hooks tests/operators tests/sensors tests/triggers tests/utils

.PHONY: install test lint demo sandbox bench chaos screenshots clean dist check-wheel test-matrix test-floor constraints

# The sandbox is its own distribution (sandbox/), installed from this checkout, never from an index.
$(INSTALLED): pyproject.toml sandbox/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(CONSTRAINT_ARG) -e ".[test]" -e ./sandbox
	@touch $(INSTALLED)

install: $(INSTALLED)

# The whole suite, then the distributed e2e (its own target: it installs PostgreSQL and Redis when missing).
test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest --ignore=tests/e2e/distributed
	$(MAKE) e2e-distributed

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

# Wheel + sdist into dist/, their metadata and contents checked, then the wheel alone in a fresh venv.
dist: install
	$(BIN)/python -m pip install --quiet $(CONSTRAINT_ARG) -e ".[test,release]" -e ./sandbox
	rm -rf dist && $(BIN)/python -m build --outdir dist .
	$(BIN)/twine check --strict dist/*
	$(BIN)/check-wheel-contents dist/*.whl
	$(MAKE) check-wheel

# The built wheel installed alone in a fresh venv: imports, `airflow providers list` shows it, no sandbox.
check-wheel: install
	$(BIN)/python -m pytest -q -p no:cacheprovider -m slow tests/test_packaging.py

# Unit tests at the declared Airflow floor ($(FLOOR_AIRFLOW), in $(FLOOR_VENV)) and at the newest 3.3.x (.venv).
test-matrix: test-floor install
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not e2e and not chaos" $(UNIT_TESTS)

# The floor end of the matrix alone (.ci/run runs it after make test, which covers the newest 3.3.x).
test-floor:
	@test -x $(FLOOR_VENV)/bin/python || $(PYTHON) -m venv $(FLOOR_VENV)
	$(FLOOR_VENV)/bin/python -m pip install --quiet -c constraints/constraints-3.2.txt \
		"apache-airflow==$(FLOOR_AIRFLOW)" ".[test]" ./sandbox
	$(FLOOR_VENV)/bin/python -m pytest -q -p no:cacheprovider -m "not e2e and not chaos" $(UNIT_TESTS)

# Regenerate constraints/constraints-3.3.txt from .venv (re-create it first for a clean freeze).
constraints: install
	{ head -3 constraints/constraints-3.3.txt; $(BIN)/python -m pip freeze --exclude-editable \
		| grep -viE '^(airflow-provider-rewards|rewards-sandbox|build|twine|check-wheel-contents)=='; } > constraints/.new
	mv constraints/.new constraints/constraints-3.3.txt

clean:
	rm -rf $(FLOOR_VENV) $(VENV) .pytest_cache .ruff_cache build dist *.egg-info

# --- docs (helper "release") ---------------------------------------------------------------------------
# The docs site into site/: MkDocs + mkdocstrings, the reference generated from the docstrings, --strict
# (any warning fails: a broken link or anchor, an unparsable docstring, a page missing from the nav).
.PHONY: docs
docs: install
	$(BIN)/python -m pip install --quiet $(CONSTRAINT_ARG) -e ".[test,docs]" -e ./sandbox
	$(BIN)/mkdocs build --strict --site-dir site

# Distributed e2e (issue 17): Debian's PostgreSQL and Redis, installed only when missing (root, or sudo).
E2E_SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
.PHONY: e2e-deps e2e-distributed
e2e-deps:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || missing="postgresql"; \
	command -v redis-server >/dev/null || missing="$${missing:+$$missing }redis-server"; \
	if [ -n "$$missing" ]; then \
		echo "e2e-deps: apt-get install $$missing"; \
		$(E2E_SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$(E2E_SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing \
			>/dev/null; \
	fi

# The flagship teardown on CeleryExecutor + PostgreSQL + Redis with two workers and both faults (about 3 min),
# then the checker's own tests. Prints each phase's duration, the slots held by the waits and the wall time.
e2e-distributed: install e2e-deps
	$(BIN)/python -m pytest -q -s -p no:cacheprovider tests/e2e/distributed
