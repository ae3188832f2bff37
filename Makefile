# dagfleet — every routine task. `make help` lists them.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= python3
UV_VERSION ?= 0.13.9
VENV ?= .venv
TOOLS ?= .tools
UV := $(TOOLS)/uv/bin/uv
BIN := $(VENV)/bin
# Airflow writes its home on first import: keep it inside the project.
export AIRFLOW_HOME ?= $(CURDIR)/.run/airflow-home
export AIRFLOW__CORE__LOAD_EXAMPLES ?= False
PYTEST_ARGS ?=

##@ General

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} \
	  /^[a-zA-Z0-9_.-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } \
	  /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

$(UV):
	$(PYTHON) -m venv $(TOOLS)/uv
	$(TOOLS)/uv/bin/pip install -q "uv==$(UV_VERSION)"

$(VENV)/.installed: requirements.lock requirements-dev.lock pyproject.toml | $(UV)
	[ -x $(BIN)/python ] || $(UV) venv -q -p $(PYTHON) $(VENV)
	$(UV) pip sync -q --python $(BIN)/python --require-hashes requirements.lock requirements-dev.lock
	$(UV) pip install -q --python $(BIN)/python --no-deps -e .
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create .venv with the pinned dependencies (no-op when nothing changed)

.PHONY: lock
lock: | $(UV) ## Re-pin requirements*.lock from requirements*.in
	$(UV) pip compile -q --python-version 3.11 --generate-hashes --no-strip-extras requirements.in -o requirements.lock
	$(UV) pip compile -q --python-version 3.11 --generate-hashes --no-strip-extras requirements-dev.in -o requirements-dev.lock

.PHONY: lint
lint: venv ## Run ruff (lint + format check)
	$(BIN)/ruff check entrypoint tests scripts docker $(wildcard bench)
	$(BIN)/ruff format --check entrypoint tests scripts docker $(wildcard bench)

.PHONY: fmt
fmt: venv ## Format and auto-fix with ruff
	$(BIN)/ruff check --fix entrypoint tests scripts docker $(wildcard bench)
	$(BIN)/ruff format entrypoint tests scripts docker $(wildcard bench)

.PHONY: reference
reference: venv ## Regenerate the DAGFLEET_* table of docs/reference.md from dagfleet/fleet/settings.py
	$(BIN)/python scripts/settings_doc.py

.PHONY: clean
clean: ## Remove the virtualenv, tools and run state
	rm -rf $(VENV) $(TOOLS) .run .pytest_cache .ruff_cache

include $(sort $(wildcard mk/*.mk))

##@ Testing

# The suite in two steps: the tests marked `helm` (all of tests/chart, which renders the chart even
# while collecting, and a few others) need the chart tools; the rest needs none. When PYTEST_ARGS
# narrows the run, a step may select no test: pytest's exit code 5 then passes.
PYTEST_NONE_OK = $(if $(strip $(PYTEST_ARGS)),|| [ $$? -eq 5 ])

.PHONY: test
test: lint test-unit chart-test ## Run lint and the whole test suite (test-unit, then chart-test)

.PHONY: test-unit
test-unit: venv ## Every test that needs no helm (all but tests/chart and the tests marked `helm`)
	$(BIN)/pytest --ignore=tests/chart -m "not helm" $(PYTEST_ARGS) $(PYTEST_NONE_OK)
