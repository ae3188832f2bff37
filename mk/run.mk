##@ Local stack

PORT ?= 8080
CONFIG_PORT ?= 8765
SYNC_INTERVAL ?= 10
WORKFLOWS ?= examples/workflows.yaml

.PHONY: run
run: venv ## Run Airflow + reference config API + dagfleet watch on localhost (Ctrl-C stops all)
	$(BIN)/python scripts/devstack.py --workflows $(WORKFLOWS) --port $(PORT) \
	  --config-port $(CONFIG_PORT) --sync-interval $(SYNC_INTERVAL) --run-dir .run
