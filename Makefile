# Two entry points: `make demo` and `make test`. Both set everything up and are safe to re-run.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DEPLOYSIM_HOME ?= $(CURDIR)/.deploysim
export DAGSTER_HOME ?= $(DEPLOYSIM_HOME)/dagster

LINT := .venv-lint
.PHONY: setup manifest demo test lint dev clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

setup: $(VENV)/.installed manifest

# The dbt manifest is prepared ahead of runs; nothing parses dbt at import time.
manifest: $(VENV)/.installed
	@mkdir -p $(DAGSTER_HOME)
	cd dbt && ../$(BIN)/dbt parse --quiet --profiles-dir . --project-dir .

demo: setup
	$(BIN)/deploysim demo

# ruff and mypy live in their own venv: mypy needs a pathspec newer than dbt-core allows.
$(LINT)/.installed: Makefile
	$(PY) -m venv $(LINT)
	$(LINT)/bin/pip install --quiet ruff==0.17.6 mypy==2.4.1 pydantic==2.14.4 pydantic-settings==2.16.3
	touch $@

lint: setup $(LINT)/.installed
	$(BIN)/lint-imports
	$(LINT)/bin/ruff check .
	$(LINT)/bin/ruff format --check .
	$(LINT)/bin/mypy --python-executable $(BIN)/python

test: lint
	$(BIN)/pytest -q

# The instance's dagster.yaml: SQLite, or Postgres and the run queue when DAGSTER_PG_URL is set.
dev: setup
	$(BIN)/python -m orchestration.instance
	$(BIN)/dagster dev -w workspace.yaml

clean:
	rm -rf $(DEPLOYSIM_HOME) dbt/target dbt/logs $(LINT)
