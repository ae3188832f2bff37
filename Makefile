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
# Shared by the files in mk/ (each says what else it defines; nothing crosses between them).
# Extra pytest arguments for every test target, e.g. PYTEST_ARGS="-k sync -x".
PYTEST_ARGS ?=
# The image the image, e2e and harness targets build or run.
IMAGE ?= dagfleet:dev
# The folders ruff lints and formats.
LINT_DIRS := entrypoint tests scripts docker $(wildcard bench)
# helm v4: one already on PATH wins, else the one `make tools` (mk/chart.mk) extracts into $(TOOLS)/bin.
# Looked up once per make run. Only the chart and harness targets use it; PATH changes for their test steps only.
HELM := $(or $(shell helm version --short 2>/dev/null | grep -q '^v4\.' && command -v helm),$(TOOLS)/bin/helm)
HELM_ON_PATH = PATH="$(abspath $(dir $(HELM))):$$PATH"

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
	$(BIN)/ruff check $(LINT_DIRS)
	$(BIN)/ruff format --check $(LINT_DIRS)

.PHONY: fmt
fmt: venv ## Format and auto-fix with ruff
	$(BIN)/ruff check --fix $(LINT_DIRS)
	$(BIN)/ruff format $(LINT_DIRS)

.PHONY: reference
reference: venv ## Regenerate the DAGFLEET_* table of docs/reference.md from dagfleet/fleet/settings.py
	$(BIN)/python scripts/settings_doc.py

.PHONY: clean
clean: ## Remove the virtualenv, tools and run state
	rm -rf $(VENV) $(TOOLS) .run .pytest_cache .ruff_cache

# The other targets, by topic (mk/test.mk holds every test target). Last, so that every shared
# variable above is set before any of them is read.
include $(sort $(wildcard mk/*.mk))
