##@ Local stack

PORT ?= 8080
CONFIG_PORT ?= 8765
SYNC_INTERVAL ?= 10
WORKFLOWS ?= examples/workflows.yaml
# Your own templates folder (DAGFLEET_TEMPLATES): adds to the shipped templates, re-read every sync.
TEMPLATES ?=
RUN_DIR ?= .run

.PHONY: run
run: venv ## Run Airflow + reference config API + dagfleet watch on localhost (WORKFLOWS=file TEMPLATES=dir)
	$(BIN)/python scripts/devstack.py --workflows $(WORKFLOWS) --port $(PORT) \
	  --config-port $(CONFIG_PORT) --sync-interval $(SYNC_INTERVAL) --run-dir $(RUN_DIR) \
	  $(if $(TEMPLATES),--templates $(TEMPLATES))

.PHONY: status
status: venv ## `dagfleet status` of the fleet `make run` keeps (in RUN_DIR)
	@DAGFLEET_DAGS_FOLDER=$(RUN_DIR)/airflow/dags $(BIN)/dagfleet status
