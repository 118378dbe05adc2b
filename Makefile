# Two entry points: `make demo` and `make test`. Both set everything up and are safe to re-run.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DEPLOYSIM_HOME ?= $(CURDIR)/.deploysim
export DAGSTER_HOME ?= $(DEPLOYSIM_HOME)/dagster

.PHONY: setup manifest demo test dev clean

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

test: setup
	$(BIN)/lint-imports
	$(BIN)/pytest -q

dev: setup
	$(BIN)/dagster dev -w workspace.yaml

clean:
	rm -rf $(DEPLOYSIM_HOME) dbt/target dbt/logs
