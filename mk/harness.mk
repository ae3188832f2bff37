# The chart harness: the rendered chart's pods under Docker, like a kubelet. Included by the Makefile.

HARNESS_SERVICES_IMAGE ?= dagfleet-harness-services:bookworm
export HARNESS_SERVICES_IMAGE

##@ Chart harness

.PHONY: harness-images
harness-images: ## Build the harness's PostgreSQL/Redis image from Debian packages (root, dockerd)
	bash tests/harness/build_services.sh

.PHONY: harness
harness: venv tools harness-images ## Run the chart like a cluster: LocalExecutor, CeleryExecutor, KubernetesExecutor, PgBouncer (needs `make image`)
	$(HELM_ON_PATH) DAGFLEET_HARNESS=1 DAGFLEET_TEST_IMAGE=$(IMAGE) $(BIN)/pytest tests/harness -p no:cacheprovider $(PYTEST_ARGS)
